// optim.c — AdamW, clipping and the learning-rate schedule (see optim.h). Tensors flagged
// sparse_rows (params.h) are walked through their touched rows only: lazy Adam, as PyTorch's
// SparseAdam — a row's moments and value change only in steps whose gradient reached it, and bias
// correction uses the global update count t (so nothing beyond the moments is stored; resume is exact).
#include "model/optim.h"

#include <math.h>

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
#pragma omp parallel for schedule(static) if (nt * (long)len > 16384)
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

// Runs body with (span, len) bound to every stretch of p's gradient that may be non-zero: the whole tensor, or each
// touched row of a sparse-rows tensor (in touched order).
#define FOR_GRAD_SPANS(p, span, len, body)                                                  \
    do {                                                                                    \
        if ((p)->sparse_rows) {                                                             \
            size_t len = (size_t)(p)->shape[1];                                             \
            for (size_t r_ = 0; r_ < (p)->n_touched; r_++) {                                \
                float *span = (p)->grad + (size_t)(p)->touched[r_] * len;                   \
                body;                                                                       \
            }                                                                               \
        } else {                                                                            \
            size_t len = (p)->numel;                                                        \
            float *span = (p)->grad;                                                        \
            body;                                                                           \
        }                                                                                   \
    } while (0)

double grad_global_norm(const param_table_t *pt) {
    double s = 0;
    for (int i = 0; i < pt->count; i++) {
        const param_t *p = pt->items[i];
        if (!p->trainable) continue;
        double ps = 0;
        // serial on purpose: an OpenMP reduction may combine in a varying order (runs must repeat bit for bit)
        FOR_GRAD_SPANS(p, g, n, {
            for (size_t j = 0; j < n; j++) ps += (double)g[j] * g[j];
        });
        s += ps;
    }
    return sqrt(s);
}

void grad_scale(param_table_t *pt, float s) {
    for (int i = 0; i < pt->count; i++) {
        param_t *p = pt->items[i];
        FOR_GRAD_SPANS(p, g, n, {
            for (size_t j = 0; j < n; j++) g[j] *= s;
        });
    }
}

int grad_all_finite(const param_table_t *pt) {
    for (int i = 0; i < pt->count; i++) {
        const param_t *p = pt->items[i];
        FOR_GRAD_SPANS(p, g, n, {
            for (size_t j = 0; j < n; j++)
                if (!isfinite(g[j])) return 0;
        });
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
