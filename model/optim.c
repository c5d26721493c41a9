// optim.c — AdamW, clipping and the learning-rate schedule (see optim.h). Tensors flagged
// sparse_rows (params.h) are walked through their touched rows only: lazy Adam, as PyTorch's
// SparseAdam — a row's moments and value change only in steps whose gradient reached it, and bias
// correction uses the global update count t (so nothing beyond the moments is stored; resume is exact).
// Every sparse walk (Adam, the norm, clipping, the finiteness check) is split over threads by rows; the
// norm's sum is grouped so that its bits do not depend on the thread count (sparse_sumsq). train.c's step
// walks the touched rows twice: the norm (which also decides finiteness: grad_norm_finite) and one walk
// of clipping + Adam + zeroing (adamw_step_clipped), each asking for rows a few places ahead.
#include "model/optim.h"

#include <math.h>

// A sparse walk goes parallel above this many elements (touched rows × row length).
#define SPARSE_PARALLEL_MIN 16384
// The touched rows lie scattered over a table far larger than the caches (at 262,144 slots × 128, one
// array is 134 MB): a walk asks for the row this many places ahead in the touched list before working on
// the current one, so that several rows' memory requests are in flight at once. Changes no result.
#define SPARSE_PREFETCH_ROWS 8

// Request the cache lines of n floats at x (for writing if w).
static inline void prefetch_span(const float *x, size_t n, int w) {
    for (size_t j = 0; j < n; j += 16) {
        if (w) __builtin_prefetch(x + j, 1);
        else __builtin_prefetch(x + j, 0);
    }
}

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

// One AdamW update of a dense tensor, every element.
// Element-wise, so cutting it into 4,096-element spans over the threads changes no bit.
static void dense_adam(param_t *p, float b1, float b2, float c1, float c2, float plr, float wd, float eps) {
    size_t n = p->numel, span = 4096, spans = (n + span - 1) / span;
#pragma omp parallel for if (n > 16384)
    for (size_t k = 0; k < spans; k++) {
        size_t j = k * span, len = n - j < span ? n - j : span;
        adam_span(p->data + j, p->grad + j, p->m + j, p->v + j, len, b1, b2, c1, c2, plr, wd, eps);
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
        dense_adam(p, b1, b2, c1, c2, plr, wd, cfg->eps);
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
        for (size_t r = r0; r < r1; r++) {
            if (r + SPARSE_PREFETCH_ROWS < nt) prefetch_span(p->grad + (size_t)p->touched[r + SPARSE_PREFETCH_ROWS] * len, len, 0);
            s += row_sumsq(p->grad + (size_t)p->touched[r] * len, len);
        }
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

// ---------------------------------------------------------------------------------------------
// train.c's step: the norm walk decides finiteness; clipping, Adam and the zeroing in one walk

int grad_norm_finite(const param_table_t *pt, double *norm) {
    *norm = grad_global_norm(pt);
    return isfinite(*norm);
}

// adam_span on g·s, with the gradient zeroed once read: m, v and x get the bits that grad_scale's g *= s
// followed by adam_span give (the same float product, then the same expressions).
static inline void adam_span_scaled_zero(float *x, float *g, float *m, float *v, size_t n, float s, float b1, float b2,
                                         float c1, float c2, float lr, float wd, float eps) {
#pragma omp simd
    for (size_t j = 0; j < n; j++) {
        float gj = g[j] * s;
        g[j] = 0.0f;
        m[j] = b1 * m[j] + (1.0f - b1) * gj;
        v[j] = b2 * v[j] + (1.0f - b2) * gj * gj;
        float mh = m[j] / c1, vh = v[j] / c2;
        x[j] -= lr * (wd * x[j] + mh / (sqrtf(vh) + eps));
    }
}

// One walk over a sparse-rows tensor's touched rows: clipping, lazy Adam, zeroing; the list is emptied.
static void sparse_adam_scaled_zero(param_t *p, float s, float b1, float b2, float c1, float c2, float lr, float wd,
                                    float eps) {
    size_t len = (size_t)p->shape[1];
    long nt = (long)p->n_touched;
    // rows are distinct: no two threads write the same element
#pragma omp parallel for schedule(static) if (nt * (long)len > SPARSE_PARALLEL_MIN)
    for (long r = 0; r < nt; r++) {
        if (r + SPARSE_PREFETCH_ROWS < nt) {
            size_t a = (size_t)p->touched[r + SPARSE_PREFETCH_ROWS] * len;
            prefetch_span(p->data + a, len, 1);
            prefetch_span(p->grad + a, len, 1);
            prefetch_span(p->m + a, len, 1);
            prefetch_span(p->v + a, len, 1);
        }
        size_t row = (size_t)p->touched[r], o = row * len;
        adam_span_scaled_zero(p->data + o, p->grad + o, p->m + o, p->v + o, len, s, b1, b2, c1, c2, lr, wd, eps);
        p->row_mark[row] = 0;
    }
    p->n_touched = 0;
}

void adamw_step_clipped(param_table_t *pt, const adamw_cfg_t *cfg, float lr, long t, float s) {
    float b1 = cfg->beta1, b2 = cfg->beta2;
    float c1 = 1.0f - powf(b1, (float)t), c2 = 1.0f - powf(b2, (float)t);
    for (int i = 0; i < pt->count; i++) {
        param_t *p = pt->items[i];
        if (p->sparse_rows && p->trainable) {
            float wd = p->decay ? cfg->weight_decay : 0.0f, plr = p->fixed_lr > 0.0f ? p->fixed_lr : lr;
            sparse_adam_scaled_zero(p, s, b1, b2, c1, c2, plr, wd, cfg->eps);
            continue;
        }
        if (s != 1.0f) {  // grad_scale's loop (every tensor, as grad_scale: the untrained buffers too)
            if (p->sparse_rows) {
                sparse_scale(p, s);
            } else {
                float *g = p->grad;
                for (size_t j = 0; j < p->numel; j++) g[j] *= s;
            }
        }
        if (!p->trainable) continue;
        float wd = p->decay ? cfg->weight_decay : 0.0f, plr = p->fixed_lr > 0.0f ? p->fixed_lr : lr;
        dense_adam(p, b1, b2, c1, c2, plr, wd, cfg->eps);
    }
}

float lr_at(long it, long warmup, long total, float lr, float min_lr) {
    if (it < warmup) return lr * (float)(it + 1) / (float)(warmup + 1);
    if (it >= total) return min_lr;
    double ratio = (double)(it - warmup) / (double)(total - warmup);
    double coeff = 0.5 * (1.0 + cos(M_PI * ratio));
    return (float)(min_lr + coeff * (lr - min_lr));
}
