// compare_stats.h — the statistics of `compare`'s report: a figure over the seeds of one spec as its
// mean with a spread. The spread is the sample standard deviation (divisor n − 1); min and max are
// kept too (report.csv has them). A missing figure (NaN: a run without it) is left out of all of them.
#ifndef ATTNLAB_COMPARE_STATS_H
#define ATTNLAB_COMPARE_STATS_H

typedef struct {
    int n;                 // finite values counted
    double mean, sd;       // sd: sample standard deviation, NaN when n < 2 (no spread from one value)
    double min, max;       // NaN when n == 0
} cmp_stat_t;

// The statistics of the finite values among x[0..n).
cmp_stat_t cmp_stat(const double *x, int n);
// The median of the finite values among x[0..n) (NaN if none); x is not modified.
double cmp_median(const double *x, int n);

#endif
