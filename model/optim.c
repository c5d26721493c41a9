// optim.c — AdamW, clipping and the learning-rate schedule (see optim.h). Tensors flagged
// sparse_rows (params.h) are walked through their touched rows only: lazy Adam, as PyTorch's
// SparseAdam — a row's moments and value change only in steps whose gradient reached it, and bias
// correction uses the global update count t (so nothing beyond the moments is stored; resume is exact).
// Every sparse walk (Adam, the norm, clipping, the finiteness check) is split over threads by rows; the
// norm's sum is grouped so that its bits do not depend on the thread count (sparse_sumsq).
#include "model/optim.h"

#include <math.h>

// A sparse walk goes parallel above this many elements (touched rows × row length).
#define SPARSE_PARALLEL_MIN 16384

// One Adam(W) update of n elements x, g, m, v (a touched row of a sparse-rows tensor). The Makefile
// builds this file with -fno-math-errno so that sqrtf vectorizes (v ≥ 0: errno is never set; sqrt and
// division are correctly rounded either way, so results do not change).
static inline void adam_span(float *x, const float *g, float *m, float *v, size_t n, float b1, float b2, float c1,
                             float c2, float lr, float wd, float eps) {
#pragma omp simd
    for (size_t j = 0; j < n; j++) {
        float gj = g[j];
        m[j] = b1 * m[j] + (1.0f - b1) * gj;
        v[j] = b2 * v[j] + (1.0f - b2) * gj * gj;
        float mh = m[j] / c1, vh = v[j] / c2;
        x[j] -= lr * (wd * x[j] + mh / (sqrtf(vh) + eps));
    }
}

void adamw_step(param_table_t *pt, const adamw_cfg_t *cfg, float lr, long t) {
    float b1 = cfg->beta1, b2 = cfg->beta2;
    float c1 = 1.0f - powf(b1, (float)t), c2 = 1.0f - powf(b2, (float)t);
    for (int i = 0; i < pt->count; i++) {
        param_t *p = pt->items[i];
        if (!p->trainable) continue;
        float wd = p->decay ? cfg->weight_decay : 0.0f, plr = p->fixed_lr > 0.0f ? p->fixed_lr : lr;
        if (p->sparse_rows) {
            size_t len = (size_t)p->shape[1];
            long nt = (long)p->n_touched;
            // rows are distinct: no two threads write the same element
#pragma omp parallel for schedule(static) if (nt * (long)len > SPARSE_PARALLEL_MIN)
            for (long r = 0; r < nt; r++) {
                size_t o = (size_t)p->touched[r] * len;
                adam_span(p->data + o, p->grad + o, p->m + o, p->v + o, len, b1, b2, c1, c2, plr, wd, cfg->eps);
            }
            continue;
        }
        float *x = p->data, *g = p->grad, *m = p->m, *v = p->v;
        size_t n = p->numel;
#pragma omp parallel for simd if (n > 16384)
        for (size_t j = 0; j < n; j++) {
            float gj = g[j];
            m[j] = b1 * m[j] + (1.0f - b1) * gj;
            v[j] = b2 * v[j] + (1.0f - b2) * gj * gj;
            float mh = m[j] / c1, vh = v[j] / c2;
            x[j] -= plr * (wd * x[j] + mh / (sqrtf(vh) + cfg->eps));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// the sparse-rows walks: touched rows only, split over threads by rows

// Σ g² of one row: eight interleaved double accumulators (element j goes to lane j mod 8; the products
// are exact in double) combined pairwise — a fixed order, and eight independent dependency chains
// instead of one.
static inline double row_sumsq(const float *g, size_t len) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t j = 0;
    for (; j + 8 <= len; j += 8)
        for (int l = 0; l < 8; l++) acc[l] += (double)g[j + l] * g[j + l];
    for (; j < len; j++) acc[j % 8] += (double)g[j] * g[j];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// Σ g² over a sparse-rows tensor's touched rows, with bits independent of the thread count: the touched
// list is cut into SUMSQ_CHUNKS fixed stretches (boundaries from n_touched alone), each stretch sums its
// rows' row_sumsq in touched order, and the stretch sums are added in order. (A dense tensor's sum, one
// serial chain over every element, would cost one dependent addition per element: 17 ms for the
// 10 million touched values of a 262,144-slot pkm step.)
enum { SUMSQ_CHUNKS = 64 };
static double sparse_sumsq(const param_t *p) {
    size_t len = (size_t)p->shape[1], nt = p->n_touched;
    double part[SUMSQ_CHUNKS];
#pragma omp parallel for schedule(static) if (nt * len > SPARSE_PARALLEL_MIN)
    for (int c = 0; c < SUMSQ_CHUNKS; c++) {
        size_t r0 = nt * (size_t)c / SUMSQ_CHUNKS, r1 = nt * (size_t)(c + 1) / SUMSQ_CHUNKS;
        double s = 0;
        for (size_t r = r0; r < r1; r++) s += row_sumsq(p->grad + (size_t)p->touched[r] * len, len);
        part[c] = s;
    }
    double s = 0;
    for (int c = 0; c < SUMSQ_CHUNKS; c++) s += part[c];
    return s;
}

static void sparse_scale(param_t *p, float s) {
    size_t len = (size_t)p->shape[1];
    long nt = (long)p->n_touched;
#pragma omp parallel for schedule(static) if (nt * (long)len > SPARSE_PARALLEL_MIN)
    for (long r = 0; r < nt; r++) {
        float *g = p->grad + (size_t)p->touched[r] * len;
        for (size_t j = 0; j < len; j++) g[j] *= s;
    }
}

static int sparse_all_finite(const param_t *p) {
    size_t len = (size_t)p->shape[1];
    long nt = (long)p->n_touched;
    int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad) if (nt * (long)len > SPARSE_PARALLEL_MIN)
    for (long r = 0; r < nt; r++) {
        const float *g = p->grad + (size_t)p->touched[r] * len;
        for (size_t j = 0; j < len; j++) bad |= !isfinite(g[j]);
    }
    return !bad;
}

// ---------------------------------------------------------------------------------------------
// norm, clipping, finiteness: dense tensors whole (serial), sparse-rows tensors by their touched rows

double grad_global_norm(const param_table_t *pt) {
    double s = 0;
    for (int i = 0; i < pt->count; i++) {
        const param_t *p = pt->items[i];
        if (!p->trainable) continue;
        if (p->sparse_rows) {
            s += sparse_sumsq(p);
            continue;
        }
        double ps = 0;
        // serial on purpose: an OpenMP reduction may combine in a varying order (runs must repeat bit for bit)
        const float *g = p->grad;
        for (size_t j = 0; j < p->numel; j++) ps += (double)g[j] * g[j];
        s += ps;
    }
    return sqrt(s);
}

void grad_scale(param_table_t *pt, float s) {
    for (int i = 0; i < pt->count; i++) {
        param_t *p = pt->items[i];
        if (p->sparse_rows) {
            sparse_scale(p, s);
            continue;
        }
        float *g = p->grad;
        for (size_t j = 0; j < p->numel; j++) g[j] *= s;
    }
}

int grad_all_finite(const param_table_t *pt) {
    for (int i = 0; i < pt->count; i++) {
        const param_t *p = pt->items[i];
        if (p->sparse_rows) {
            if (!sparse_all_finite(p)) return 0;
            continue;
        }
        const float *g = p->grad;
        for (size_t j = 0; j < p->numel; j++)
            if (!isfinite(g[j])) return 0;
    }
    return 1;
}

float lr_at(long it, long warmup, long total, float lr, float min_lr) {
    if (it < warmup) return lr * (float)(it + 1) / (float)(warmup + 1);
    if (it >= total) return min_lr;
    double ratio = (double)(it - warmup) / (double)(total - warmup);
    double coeff = 0.5 * (1.0 + cos(M_PI * ratio));
    return (float)(min_lr + coeff * (lr - min_lr));
}
