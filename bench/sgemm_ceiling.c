// sgemm_ceiling.c — the machine's cblas_sgemm GFLOP/s, the denominator of MFU (docs/performance.md).
//
//   sgemm_ceiling [--threads 2] [--reps 7]
//
// Times row-major C = A·B for square products of 1024, 1536 and 2048 (2·n³ flops each) on the given
// number of threads (OpenBLAS's own; no OpenMP region around the call), after one untimed warm-up
// product per size, and prints the median GFLOP/s per size and the best of those medians as the
// ceiling, in one machine-readable line: "sgemm threads=2 n1024=.. n1536=.. n2048=.. ceiling_gflops=..".
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cli/runtime.h"
#include "base/check.h"

int main(int argc, char **argv) {
    int threads = 2, reps = 7;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0) threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--reps") == 0) reps = atoi(argv[i + 1]);
        else die(EXIT_USAGE, "usage: sgemm_ceiling [--threads 2] [--reps 7]");
    }
    if (threads < 1 || reps < 1 || reps > 1000) die(EXIT_USAGE, "sgemm_ceiling: --threads and --reps must be positive");
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    openblas_set_num_threads(threads);
    const int sizes[] = {1024, 1536, 2048};
    const int n_sizes = (int)(sizeof sizes / sizeof *sizes);
    int nmax = sizes[n_sizes - 1];
    float *a = xalloc_floats((size_t)nmax * nmax), *b = xalloc_floats((size_t)nmax * nmax),
          *c = xalloc_floats((size_t)nmax * nmax);
    for (size_t i = 0; i < (size_t)nmax * nmax; i++) {
        a[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
        b[i] = (float)((i * 40503u) % 1000) * 1e-3f - 0.5f;
    }
    double med[8], best = 0;
    double *g = xmalloc((size_t)reps * sizeof *g);
    for (int s = 0; s < n_sizes; s++) {
        int n = sizes[s];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);  // warm-up
        for (int r = 0; r < reps; r++) {
            double t0 = cli_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
            g[r] = 2.0 * n * (double)n * n / (cli_now() - t0) * 1e-9;
        }
        qsort(g, (size_t)reps, sizeof *g, cli_cmp_double);
        med[s] = reps % 2 ? g[reps / 2] : 0.5 * (g[reps / 2 - 1] + g[reps / 2]);
        if (med[s] > best) best = med[s];
    }
    printf("sgemm threads=%d reps=%d", threads, reps);
    for (int s = 0; s < n_sizes; s++) printf(" n%d=%.1f", sizes[s], med[s]);
    printf(" ceiling_gflops=%.1f\n", best);
    free(a);
    free(b);
    free(c);
    free(g);
    return 0;
}
