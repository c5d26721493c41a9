// fixture.h — tiny models and a finite-difference checker shared by the model tests.
#ifndef ATTNLAB_TEST_FIXTURE_H
#define ATTNLAB_TEST_FIXTURE_H

#include <stdlib.h>
#include <string.h>

#include "model/check.h"
#include "model/model.h"
#include "tests/testlib.h"

// Build a tiny model (V 11, C 8, H 2, ctx 8, or as given) for spec, with weights drawn at std `std`
// (larger than the real 0.02 so that every path of the math carries signal).
static inline int fixture_model(model_t *m, const char *spec, int V, int C, int H, int ctx, float dropout, float std,
                                uint64_t seed) {
    model_dims_t d = {.vocab = V, .dim = C, .heads = H, .ctx = ctx, .dropout = dropout};
    char err[512];
    if (model_build(m, &d, spec, err, sizeof err)) {
        printf("  model_build(%s): %s\n", spec, err);
        return -1;
    }
    rng_t r;
    rng_seed(&r, seed);
    model_init_weights(m, &r);
    // Scale every random tensor up; keep LayerNorm weights near 1 but not exactly (so their gradient path is live).
    for (int i = 0; i < m->params.count; i++) {
        param_t *p = m->params.items[i];
        for (size_t j = 0; j < p->numel; j++) {
            if (p->init == INIT_NORMAL || p->init == INIT_UNIFORM) p->data[j] *= std / 0.02f;
            else if (p->init == INIT_ONES) p->data[j] = 1.0f + 0.2f * rng_normal(&r);
            else if (p->init == INIT_ZEROS) p->data[j] = 0.1f * rng_normal(&r);
        }
    }
    return 0;
}

static inline void fixture_tokens(int32_t *tok, size_t n, int V, uint64_t seed) {
    rng_t r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) tok[i] = (int32_t)rng_below(&r, (uint64_t)V);
}

// Finite differences of a scalar function f(ctx) against an analytic gradient, for every element of
// x[0..n). Central differences at steps h and h/2, combined by Richardson extrapolation
// (4·D(h/2) − D(h))/3, whose truncation error is O(h⁴): the checks then resolve a 1–2% gradient error
// even through the strongly curved paths of a tiny model. Perturbs in float (the real precision) and
// divides by the float step actually taken. Passes when |fd − an| ≤ atol + rtol·|fd| for every
// element; prints the worst one otherwise and returns its ratio to the tolerance.
typedef double (*fd_loss_fn)(void *ctx);
static inline double fd_central(fd_loss_fn f, void *ctx, float *x, float h) {
    float x0 = *x, xp = x0 + h, xm = x0 - h;
    *x = xp;
    double lp = f(ctx);
    *x = xm;
    double lm = f(ctx);
    *x = x0;
    return (lp - lm) / ((double)xp - (double)xm);
}
static inline double fd_check(const char *what, fd_loss_fn f, void *ctx, float *x, const float *analytic, size_t n,
                              float eps, double atol, double rtol) {
    double worst = 0, worst_fd = 0, worst_an = 0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        double d1 = fd_central(f, ctx, &x[i], eps), d2 = fd_central(f, ctx, &x[i], eps / 2);
        double fd = (4.0 * d2 - d1) / 3.0;
        double r = fabs(fd - analytic[i]) / (atol + rtol * fabs(fd));
        if (!(r <= worst)) {
            worst = r;
            worst_i = i;
            worst_fd = fd;
            worst_an = analytic[i];
        }
    }
    if (!(worst <= 1.0)) {
        printf("  %s: element %zu: finite difference %.7g, analytic %.7g (ratio to tolerance %.3g)\n", what, worst_i,
               worst_fd, worst_an, worst);
        tl_case_failed = 1;
    }
    return worst;
}

#endif
