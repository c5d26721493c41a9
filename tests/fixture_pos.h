// fixture_pos.h — fixture.h's tiny model, whole-model gradient check, causality and decode checks
// for a given position scheme (model_dims_t.pos): thin wrappers that set fixture.h's
// fixture_pos_scheme for one call (the same sizes, weight scaling, seeds and tolerances), for the
// kinds' own rope tests (test_adaptive.c, test_collab.c, test_rope_attn.c).
#ifndef ATTNLAB_TEST_FIXTURE_POS_H
#define ATTNLAB_TEST_FIXTURE_POS_H

#include "tests/fixture.h"

// The fixtures of fixture.h under scheme pos: set fixture_pos_scheme for the call, then restore it.
#define POS_FIXTURE_WITH(pos, expr)                   \
    pos_scheme_t saved_scheme_ = fixture_pos_scheme; \
    fixture_pos_scheme = (pos);                      \
    expr;                                            \
    fixture_pos_scheme = saved_scheme_

// fixture_model with dims.pos = pos.
static inline int pos_fixture_model(model_t *m, pos_scheme_t pos, const char *spec, int V, int C, int H, int ctx,
                                    float std, uint64_t seed) {
    int rc;
    POS_FIXTURE_WITH(pos, rc = fixture_model(m, spec, V, C, H, ctx, std, seed));
    return rc;
}

// fixture_gradcheck_model_ex with dims.pos = pos (V 11, C 8, H 2, ctx 8, B 2, T 7; every trainable
// tensor, Richardson finite differences at step eps, tolerance 2e-4 + 1e-2·|fd|).
static inline double pos_fixture_gradcheck(pos_scheme_t pos, const char *spec, float dropout, float std, uint64_t seed,
                                           void (*tweak)(model_t *), float eps) {
    double worst;
    POS_FIXTURE_WITH(pos, worst = fixture_gradcheck_model_ex(spec, dropout, std, seed, tweak, eps));
    return worst;
}

// fixture_causality with dims.pos = pos (V 13, C 16, H 4): changing token t changes no logit before t
// (bit for bit) and does change position t's.
static inline void pos_fixture_causality(pos_scheme_t pos, const char *spec, int ctx, int T, float dropout,
                                         void (*tweak)(model_t *)) {
    POS_FIXTURE_WITH(pos, fixture_causality(spec, ctx, T, dropout, tweak));
}

// fixture_decode with dims.pos = pos (V 17, C 16, H 4, T = ctx): incremental logits == the full
// forward's at every position, also after decode_reset.
static inline void pos_fixture_decode(pos_scheme_t pos, const char *spec, int ctx, void (*tweak)(model_t *)) {
    POS_FIXTURE_WITH(pos, fixture_decode(spec, ctx, tweak));
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
