// runtime.c — threads and clock (see runtime.h).
#include "cli/runtime.h"

#include <cblas.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void cli_set_threads(long n) {
#ifdef _OPENMP
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads((int)n);
#endif
    openblas_set_num_threads((int)(n > 0 ? n : 1));
}

void cli_use_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

int cli_get_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
