// compare_stats.c — mean, sample standard deviation, min, max and median over seeds (compare_stats.h).
#include "cli/compare_stats.h"

#include <math.h>
#include <stdlib.h>

#include "base/check.h"
#include "cli/runtime.h"

cmp_stat_t cmp_stat(const double *x, int n) {
    cmp_stat_t s = {0, NAN, NAN, NAN, NAN};
    double sum = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i])) continue;
        if (s.n == 0 || x[i] < s.min) s.min = x[i];
        if (s.n == 0 || x[i] > s.max) s.max = x[i];
        sum += x[i];
        s.n++;
    }
    if (s.n == 0) return s;
    s.mean = sum / s.n;
    if (s.n < 2) return s;
    double ss = 0;  // two passes: Σ (x − mean)², not Σ x² − n·mean² (no cancellation)
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) ss += (x[i] - s.mean) * (x[i] - s.mean);
    s.sd = sqrt(ss / (s.n - 1));
    return s;
}

double cmp_median(const double *x, int n) {
    double *v = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) v[m++] = x[i];
    double med = NAN;
    if (m) {
        qsort(v, (size_t)m, sizeof *v, cli_cmp_double);
        med = m % 2 ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
    }
    free(v);
    return med;
}
