// fixture.h — tiny models and a finite-difference checker shared by the model tests.
#ifndef ATTNLAB_TEST_FIXTURE_H
#define ATTNLAB_TEST_FIXTURE_H

#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "base/rng.h"
#include "model/model.h"
#include "tests/testlib.h"

// The position scheme of every model the fixtures below build (model_dims_t.pos): learned unless a
// test sets it (test_kinds.c runs its whole walk under each scheme).
// Threads for the OpenMP loops of the code under test (a no-op without OpenMP).
static inline void fixture_set_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}
// x[0..n) drawn from N(0, std²).
static inline void fixture_fill_normal(float *x, size_t n, float std, rng_t *r) {
    for (size_t i = 0; i < n; i++) x[i] = std * rng_normal(r);
}
// Σ a[i]·b[i] in double precision.
static inline double fixture_dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static pos_scheme_t fixture_pos_scheme = POS_LEARNED;

// Initialize m's weights from seed, then scale every random tensor up to std `std` (from the real
// 0.02) and keep LayerNorm weights near 1 but not exactly (so their gradient path is live). A tensor
// drawn at scale 0.5 or more (attn.rel_k's N(0, 1)) is already at a scale that carries signal, and is
// left as drawn.
static inline void fixture_init_weights(model_t *m, float std, uint64_t seed) {
    rng_t r;
    rng_seed(&r, seed);
    model_init_weights(m, &r);
    for (int i = 0; i < m->params.count; i++) {
        param_t *p = m->params.items[i];
        for (size_t j = 0; j < p->numel; j++) {
            if ((p->init == INIT_NORMAL || p->init == INIT_UNIFORM) && p->init_scale < 0.5f) p->data[j] *= std / 0.02f;
            else if (p->init == INIT_ONES) p->data[j] = 1.0f + 0.2f * rng_normal(&r);
            else if (p->init == INIT_ZEROS) p->data[j] = 0.1f * rng_normal(&r);
        }
    }
}

// Build a tiny model (V 11, C 8, H 2, ctx 8, or as given) for spec, with weights drawn at std `std`
// (larger than the real 0.02 so that every path of the math carries signal), positions fixture_pos_scheme.
static inline int fixture_model(model_t *m, const char *spec, int V, int C, int H, int ctx, float std, uint64_t seed) {
    model_dims_t d = {.vocab = V, .dim = C, .heads = H, .ctx = ctx, .pos = fixture_pos_scheme};
    char err[512];
    if (model_build(m, &d, spec, err, sizeof err)) {
        printf("  model_build(%s): %s\n", spec, err);
        return -1;
    }
    fixture_init_weights(m, std, seed);
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


// fd_check for a loss that is only piecewise smooth (a top-k selection, a ReLU feature, a clamped
// span ramp). An element whose central differences at eps fail is measured again: central at eps/4
// and eps/16, then one-sided on each side at eps/4 and eps/16 (Richardson 2·D(h/2) − D(h), error
// O(h²)); it passes if one measurement is within the same tolerance. A kink or jump straddled by the
// central step lies beyond a smaller one, or, when it sits right beside the weight (a near-tie of a
// selection), on one side of it, and the other side's derivative is the one backprop computes. A
// wrong analytic gradient is wrong in every measurement, so it still fails. *remeasured (added to)
// counts the elements that needed more than the first measurement.
static inline double fd_one_sided(fd_loss_fn f, void *ctx, float *x, float h, double f0) {
    float x0 = *x, x1 = x0 + h, x2 = x0 + h / 2;
    *x = x1;
    double l1 = f(ctx);
    *x = x2;
    double l2 = f(ctx);
    *x = x0;
    double d1 = (l1 - f0) / ((double)x1 - (double)x0), d2 = (l2 - f0) / ((double)x2 - (double)x0);
    return 2.0 * d2 - d1;
}
static inline double fd_check_piecewise(const char *what, fd_loss_fn f, void *ctx, float *x, const float *analytic,
                                        size_t n, float eps, double atol, double rtol, size_t *remeasured) {
    double worst = 0, worst_fd = 0, worst_an = 0, f0 = f(ctx);
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        double fds[7];
        int m = 0;
        for (float h = eps; h >= eps / 16; h /= 4) {
            double d1 = fd_central(f, ctx, &x[i], h), d2 = fd_central(f, ctx, &x[i], h / 2);
            fds[m++] = (4.0 * d2 - d1) / 3.0;
            if (m == 1 && fabs(fds[0] - analytic[i]) <= atol + rtol * fabs(fds[0])) break;
        }
        if (m > 1)
            for (float h = eps / 4; h >= eps / 16; h /= 4) {
                fds[m++] = fd_one_sided(f, ctx, &x[i], h, f0);
                fds[m++] = fd_one_sided(f, ctx, &x[i], -h, f0);
            }
        *remeasured += m > 1;
        double best = INFINITY, best_fd = fds[0];
        for (int j = 0; j < m; j++) {
            double r = fabs(fds[j] - analytic[i]) / (atol + rtol * fabs(fds[j]));
            if (r < best) { best = r; best_fd = fds[j]; }
        }
        if (!(best <= worst)) {
            worst = best;
            worst_i = i;
            worst_fd = best_fd;
            worst_an = analytic[i];
        }
    }
    if (!(worst <= 1.0)) {
        printf("  %s: element %zu: finite difference %.7g, analytic %.7g (ratio to tolerance %.3g, best measurement)\n",
               what, worst_i, worst_fd, worst_an, worst);
        tl_case_failed = 1;
    }
    return worst;
}

// Every trainable tensor of m, element by element, against finite differences of f(ctx) through
// fd_check_piecewise (step 1e-2, tolerance 2e-4 + 1e-2·|fd|); prints the worst ratio to the tolerance
// and how many elements needed more than the first measurement, and returns the worst ratio.
static inline double fixture_fd_all_params(model_t *m, fd_loss_fn f, void *ctx) {
    double worst = 0;
    size_t remeasured = 0, elements = 0;
    for (int i = 0; i < m->params.count; i++) {
        param_t *p = m->params.items[i];
        if (!p->trainable) continue;
        double w = fd_check_piecewise(p->name, f, ctx, p->data, p->grad, p->numel, 1e-2f, 2e-4, 1e-2, &remeasured);
        worst = w > worst ? w : worst;
        elements += p->numel;
    }
    printf("  worst ratio to tolerance %.3f over %zu elements; %zu needed more than one measurement\n", worst,
           elements, remeasured);
    EXPECT(elements > 0);
    return worst;
}

// ---------------------------------------------------------------------------------------------
// Generic per-spec checks. Each block kind's test file calls these with its own specs.

typedef struct {
    model_t m;
    int32_t tok[64], tgt[64];
    int B, T;
    float dropout;
} fixture_ctx_t;

static inline double fixture_model_loss(void *p) {
    fixture_ctx_t *c = p;
    rng_t r;
    rng_seed(&r, 99);  // the same dropout masks on every evaluation
    run_ctx_t rc = {.training = 1, .dropout = c->dropout, .rng = &r};
    return model_forward(&c->m, c->tok, c->tgt, c->B, c->T, &rc) + model_extra_loss(&c->m, 0);
}

// Set up a whole-model gradient check of spec (V 11, C 8, H 2, ctx 8, B 2, T 7, weights std `std`):
// build, apply tweak (optional, e.g. a block-size hook), run forward, backward and the extra loss's
// gradient once. NULL if the model does not build (the case is marked failed).
static inline fixture_ctx_t *fixture_gradcheck_begin(const char *spec, float dropout, float std, uint64_t seed,
                                                     void (*tweak)(model_t *)) {
    fixture_ctx_t *c = xcalloc(1, sizeof *c);
    c->B = 2;
    c->T = 7;
    c->dropout = dropout;
    if (fixture_model(&c->m, spec, 11, 8, 2, 8, std, seed)) {
        tl_case_failed = 1;
        free(c);
        return NULL;
    }
    if (tweak) tweak(&c->m);
    model_alloc_acts(&c->m, c->B, c->T, dropout);
    fixture_tokens(c->tok, 14, 11, 5);
    fixture_tokens(c->tgt, 14, 11, 6);
    params_zero_grad(&c->m.params);
    rng_t r;
    rng_seed(&r, 99);
    run_ctx_t rc = {.training = 1, .dropout = dropout, .rng = &r};
    model_forward(&c->m, c->tok, c->tgt, c->B, c->T, &rc);
    model_backward(&c->m, 1.0f, &rc);
    model_extra_loss(&c->m, 1);
    return c;
}

static inline void fixture_gradcheck_end(fixture_ctx_t *c) {
    model_free(&c->m);
    free(c);
}

// Every trainable tensor of the model set up by fixture_gradcheck_begin, element by element, against
// finite differences of (loss + extra loss) with step eps. Returns the worst ratio to the tolerance
// (≤ 1 passes; INFINITY if the model did not build).
static inline double fixture_gradcheck_model_ex(const char *spec, float dropout, float std, uint64_t seed,
                                                void (*tweak)(model_t *), float eps) {
    fixture_ctx_t *c = fixture_gradcheck_begin(spec, dropout, std, seed, tweak);
    if (!c) return INFINITY;
    double worst = 0;
    int checked = 0;
    for (int i = 0; i < c->m.params.count; i++) {
        param_t *p = c->m.params.items[i];
        if (!p->trainable) continue;
        double w = fd_check(p->name, fixture_model_loss, c, p->data, p->grad, p->numel, eps, 2e-4, 1e-2);
        worst = w > worst ? w : worst;
        checked++;
    }
    EXPECT(checked > 0);
    fixture_gradcheck_end(c);
    return worst;
}

static inline double fixture_gradcheck_model(const char *spec, float dropout, float std, uint64_t seed) {
    return fixture_gradcheck_model_ex(spec, dropout, std, seed, NULL, 1e-2f);
}

// One test case per (spec, dropout), "gradcheck SPEC dropout P", weights at std `std`, seeds 1, 2, ...
typedef struct {
    const char *spec;
    float dropout;
} fixture_spec_t;
static inline void fixture_gradcheck_cases(const fixture_spec_t *cases, size_t n, float std) {
    for (size_t k = 0; k < n; k++) {
        char name[200];
        snprintf(name, sizeof name, "gradcheck %s dropout %.2f", cases[k].spec, cases[k].dropout);
        TEST_CASE(name) {
            double w = fixture_gradcheck_model(cases[k].spec, cases[k].dropout, std, 1 + k);
            printf("  worst ratio to tolerance %.3f\n", w);
        }
    }
}

static inline void fixture_logits(model_t *m, const int32_t *tok, int T, float dropout, float *out) {
    rng_t r;
    rng_seed(&r, 4);
    run_ctx_t rc = {.training = 1, .dropout = dropout, .rng = &r};
    model_forward(m, tok, NULL, 1, T, &rc);
    memcpy(out, m->probs, (size_t)T * m->dims.vocab * sizeof(float));
}

// Causality of spec (V 13, C 16, H 4): for every position t, changing token t changes no logit at
// positions < t (bit for bit, training mode, same dropout masks) and does change position t's.
// tweak (optional) is called on the built model before the check, e.g. to scale keys up.
static inline void fixture_causality(const char *spec, int ctx, int T, float dropout, void (*tweak)(model_t *)) {
    model_t m;
    int V = 13;
    if (fixture_model(&m, spec, V, 16, 4, ctx, 0.3f, 11)) {
        tl_case_failed = 1;
        return;
    }
    if (tweak) tweak(&m);
    model_alloc_acts(&m, 1, T, dropout);
    int32_t *tok = xcalloc((size_t)T, sizeof *tok);
    float *base = xcalloc((size_t)T * V, sizeof *base), *pert = xcalloc((size_t)T * V, sizeof *pert);
    fixture_tokens(tok, (size_t)T, V, 21);
    fixture_logits(&m, tok, T, dropout, base);
    for (int t = 0; t < T; t++) {
        int32_t saved = tok[t];
        tok[t] = (saved + 1 + t % (V - 1)) % V;
        fixture_logits(&m, tok, T, dropout, pert);
        tok[t] = saved;
        float worst = 0;
        int where = -1;
        for (int i = 0; i < t * V; i++) {
            float d = fabsf(pert[i] - base[i]);
            if (!(d <= worst)) { worst = d; where = i / V; }
        }
        EXPECT_MSG(worst == 0.0f, "changing token %d changed logits at position %d by %g", t, where, worst);
        float seen = 0;
        for (int v = 0; v < V; v++) seen = fmaxf(seen, fabsf(pert[t * V + v] - base[t * V + v]));
        EXPECT_MSG(seen > 1e-6f, "changing token %d did not change its own logits", t);
    }
    free(tok);
    free(base);
    free(pert);
    model_free(&m);
}

// Incremental decoding of spec (V 17, C 16, H 4, T = ctx) equals the full forward at every position,
// also after decode_reset. tweak as above.
static inline void fixture_decode(const char *spec, int ctx, void (*tweak)(model_t *)) {
    model_t m;
    int V = 17, T = ctx;
    if (fixture_model(&m, spec, V, 16, 4, T, 0.3f, 31)) {
        tl_case_failed = 1;
        return;
    }
    if (tweak) tweak(&m);
    model_alloc_acts(&m, 1, T, 0.0f);
    int32_t *tok = xcalloc((size_t)T, sizeof *tok);
    float *full = xcalloc((size_t)T * V, sizeof *full), *inc = xcalloc((size_t)T * V, sizeof *inc);
    fixture_tokens(tok, (size_t)T, V, 41);
    rng_t r;
    rng_seed(&r, 1);
    run_ctx_t rc = {.training = 0, .rng = &r};
    model_forward(&m, tok, NULL, 1, T, &rc);
    memcpy(full, m.probs, (size_t)T * V * sizeof(float));
    float scale = 0;
    for (int i = 0; i < T * V; i++) scale = fmaxf(scale, fabsf(full[i]));
    decode_state_t ds;
    decode_init(&ds, &m);
    for (int pass = 0; pass < 2; pass++) {  // the second pass runs after a reset
        decode_reset(&ds);
        for (int t = 0; t < T; t++) memcpy(inc + (size_t)t * V, decode_step(&m, &ds, tok[t]), (size_t)V * sizeof(float));
        EXPECT_CLOSE(pass ? "incremental logits after reset" : "incremental logits", inc, full, (size_t)T * V,
                     1e-4 * scale, 1e-4);
    }
    decode_free(&ds);
    free(tok);
    free(full);
    free(inc);
    model_free(&m);
}

// ---------------------------------------------------------------------------------------------
// The registry's examples (block_ops_t.examples) as model specs: a mixer's example alone (its ffn
// is the default: mlp, or what the kind implies), an ffn's under softmax ("softmax/" example).

typedef struct {
    const block_ops_t *ops;
    const char *example;
    char spec[200];
} fixture_kind_case_t;

// Fills out[0..max) with every example of every registered kind, in registry order; returns the count.
static inline int fixture_kind_cases(fixture_kind_case_t *out, int max) {
    int n = 0;
    for (int k = 0; k < block_kind_count(); k++) {
        const block_ops_t *ops = block_kind_at(k);
        for (const char *const *e = ops->examples; e && *e && n < max; e++, n++) {
            out[n].ops = ops;
            out[n].example = *e;
            snprintf(out[n].spec, sizeof out[n].spec, "%s%s", ops->role == ROLE_FFN ? "softmax/" : "", *e);
        }
    }
    return n;
}

// One model of every kind: each kind's first example as one layer (as above), comma-separated.
static inline void fixture_all_kinds_spec(char *buf, size_t n) {
    buf[0] = 0;
    for (int k = 0; k < block_kind_count(); k++) {
        const block_ops_t *ops = block_kind_at(k);
        if (!ops->examples || !ops->examples[0]) continue;
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, "%s%s%s", len ? "," : "", ops->role == ROLE_FFN ? "softmax/" : "", ops->examples[0]);
    }
}

#endif
