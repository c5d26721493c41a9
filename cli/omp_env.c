// omp_env.c — set libgomp's spin count and re-execute (see omp_env.h).
#include "cli/omp_env.h"

#include <stdlib.h>
#include <unistd.h>

#define MARK "ATTNLAB_OMP_ENV"  // set in the re-executed process: never re-execute twice

void omp_env_apply(char **argv) {
#ifdef _OPENMP
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT") || getenv(MARK)) return;
    if (setenv("GOMP_SPINCOUNT", ATTNLAB_SPINCOUNT, 1) != 0 || setenv(MARK, "1", 1) != 0) return;
    execv("/proc/self/exe", argv);
    // exec failed (no /proc): go on with libgomp's defaults; the variables set above are harmless
#else
    (void)argv;
#endif
}
