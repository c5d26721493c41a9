// runtime.h — process-level helpers shared by train and infer: threads and a monotonic clock.
#ifndef ATTNLAB_RUNTIME_H
#define ATTNLAB_RUNTIME_H

// Set the OpenMP and OpenBLAS thread counts together (they share one pool: Debian's OpenMP build
// of OpenBLAS). n <= 0 means every core.
void cli_set_threads(long n);
// Change the OpenMP team size between steps (n ≥ 1); the results do not depend on it (model/gemm.h).
void cli_use_threads(int n);
// The thread count cli_set_threads set (1 without OpenMP).
int cli_get_threads(void);
// Seconds on a monotonic clock.
double cli_now(void);
// qsort comparator for doubles, ascending (for medians of timings).
int cli_cmp_double(const void *a, const void *b);

#endif
