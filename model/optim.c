// optim.c — AdamW, clipping and the learning-rate schedule (see optim.h).
#include "model/optim.h"

#include <math.h>

void adamw_step(param_table_t *pt, const adamw_cfg_t *cfg, float lr, long t) {
    float b1 = cfg->beta1, b2 = cfg->beta2;
    float c1 = 1.0f - powf(b1, (float)t), c2 = 1.0f - powf(b2, (float)t);
    for (int i = 0; i < pt->count; i++) {
        param_t *p = pt->items[i];
        if (!p->trainable) continue;
        float wd = p->decay ? cfg->weight_decay : 0.0f;
        float *x = p->data, *g = p->grad, *m = p->m, *v = p->v;
        size_t n = p->numel;
#pragma omp parallel for simd if (n > 16384)
        for (size_t j = 0; j < n; j++) {
            float gj = g[j];
            m[j] = b1 * m[j] + (1.0f - b1) * gj;
            v[j] = b2 * v[j] + (1.0f - b2) * gj * gj;
            float mh = m[j] / c1, vh = v[j] / c2;
            x[j] -= lr * (wd * x[j] + mh / (sqrtf(vh) + cfg->eps));
        }
    }
}

double grad_global_norm(const param_table_t *pt) {
    double s = 0;
    for (int i = 0; i < pt->count; i++) {
        const param_t *p = pt->items[i];
        if (!p->trainable) continue;
        double ps = 0;
        // serial on purpose: an OpenMP reduction may combine in a varying order (runs must repeat bit for bit)
        for (size_t j = 0; j < p->numel; j++) ps += (double)p->grad[j] * p->grad[j];
        s += ps;
    }
    return sqrt(s);
}

void grad_scale(param_table_t *pt, float s) {
    for (size_t j = 0; j < pt->total; j++) pt->grad[j] *= s;
}

int grad_all_finite(const param_table_t *pt) {
    for (size_t j = 0; j < pt->total; j++)
        if (!isfinite(pt->grad[j])) return 0;
    return 1;
}

float lr_at(long it, long warmup, long total, float lr, float min_lr) {
    if (it < warmup) return lr * (float)(it + 1) / (float)(warmup + 1);
    if (it >= total) return min_lr;
    double ratio = (double)(it - warmup) / (double)(total - warmup);
    double coeff = 0.5 * (1.0 + cos(M_PI * ratio));
    return (float)(min_lr + coeff * (lr - min_lr));
}
