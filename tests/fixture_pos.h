// fixture_pos.h — fixture.h's tiny model, whole-model gradient check, causality and decode checks
// for a given position scheme (model_dims_t.pos). fixture.h builds learned-position models only;
// these are the same sizes, weight scaling, seeds and tolerances with dims.pos set, for the kinds'
// own rope tests (test_adaptive.c, test_collab.c).
#ifndef ATTNLAB_TEST_FIXTURE_POS_H
#define ATTNLAB_TEST_FIXTURE_POS_H

#include "tests/fixture.h"

// fixture_model with dims.pos = pos.
static inline int pos_fixture_model(model_t *m, pos_scheme_t pos, const char *spec, int V, int C, int H, int ctx,
                                    float std, uint64_t seed) {
    model_dims_t d = {.vocab = V, .dim = C, .heads = H, .ctx = ctx, .pos = pos};
    char err[512];
    if (model_build(m, &d, spec, err, sizeof err)) {
        printf("  model_build(%s): %s\n", spec, err);
        return -1;
    }
    rng_t r;
    rng_seed(&r, seed);
    model_init_weights(m, &r);
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

// fixture_gradcheck_model_ex with dims.pos = pos (V 11, C 8, H 2, ctx 8, B 2, T 7; every trainable
// tensor, Richardson finite differences at step eps, tolerance 2e-4 + 1e-2·|fd|).
static inline double pos_fixture_gradcheck(pos_scheme_t pos, const char *spec, float dropout, float std, uint64_t seed,
                                           void (*tweak)(model_t *), float eps) {
    fixture_ctx_t *c = xcalloc(1, sizeof *c);
    c->B = 2;
    c->T = 7;
    c->dropout = dropout;
    if (pos_fixture_model(&c->m, pos, spec, 11, 8, 2, 8, std, seed)) {
        tl_case_failed = 1;
        free(c);
        return INFINITY;
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

// fixture_causality with dims.pos = pos (V 13, C 16, H 4): changing token t changes no logit before t
// (bit for bit) and does change position t's.
static inline void pos_fixture_causality(pos_scheme_t pos, const char *spec, int ctx, int T, float dropout,
                                         void (*tweak)(model_t *)) {
    model_t m;
    int V = 13;
    if (pos_fixture_model(&m, pos, spec, V, 16, 4, ctx, 0.3f, 11)) {
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
            if (!(d <= worst)) {
                worst = d;
                where = i / V;
            }
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

// fixture_decode with dims.pos = pos (V 17, C 16, H 4, T = ctx): incremental logits == the full
// forward's at every position, also after decode_reset.
static inline void pos_fixture_decode(pos_scheme_t pos, const char *spec, int ctx, void (*tweak)(model_t *)) {
    model_t m;
    int V = 17, T = ctx;
    if (pos_fixture_model(&m, pos, spec, V, 16, 4, T, 0.3f, 31)) {
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
    for (int pass = 0; pass < 2; pass++) {
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

// Rotate x (width w, even) to position p in double, exactly LONG_CONTEXT.md §1's formula:
// x'[i] = x[i]cos(pθ_i) − x[i+w/2]sin(pθ_i), x'[i+w/2] = x[i+w/2]cos(pθ_i) + x[i]sin(pθ_i), θ_i = 10000^(−2i/w).
static inline void pos_rope_ref(double *x, int w, int p) {
    for (int i = 0; i < w / 2; i++) {
        double th = pow(10000.0, -2.0 * i / w), c = cos(p * th), s = sin(p * th);
        double a = x[i], b = x[i + w / 2];
        x[i] = a * c - b * s;
        x[i + w / 2] = b * c + a * s;
    }
}

#endif
