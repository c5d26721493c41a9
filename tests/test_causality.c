// test_causality.c — every mixer and ffn is causal: changing token t changes no logit at positions < t,
// in training mode (dropout masks identical between the two runs). For each spec, t is swept over
// every position; the change at t is checked to reach position t (the test would pass vacuously otherwise).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "tests/fixture.h"
#include "tests/testlib.h"

// Specs under test: one line per kind and per option that changes the causal structure.
static const struct {
    const char *spec;
    int ctx, T;
    float dropout;
} cases[] = {
    {"softmax/mlp", 16, 16, 0.0f},
    {"2*softmax/mlp", 40, 40, 0.1f},  // longer than one 32-row block of the triangle tiling
    {"softmax/none,softmax/mlp(hidden=4)", 12, 12, 0.0f},
};

static void logits_for(model_t *m, const int32_t *tok, int T, float dropout, float *out) {
    rng_t r;
    rng_seed(&r, 4);
    run_ctx_t rc = {.training = 1, .dropout = dropout, .rng = &r};
    model_forward(m, tok, NULL, 1, T, &rc);
    memcpy(out, m->probs, (size_t)T * m->dims.vocab * sizeof(float));
}

int main(void) {
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char name[160];
        snprintf(name, sizeof name, "causality %s (T %d, dropout %.1f)", cases[k].spec, cases[k].T, cases[k].dropout);
        TEST_CASE(name) {
            model_t m;
            int V = 13, T = cases[k].T;
            if (fixture_model(&m, cases[k].spec, V, 16, 4, cases[k].ctx, cases[k].dropout, 0.3f, 11 + k)) {
                tl_case_failed = 1;
                continue;
            }
            model_alloc_acts(&m, 1, T);
            int32_t *tok = xcalloc((size_t)T, sizeof *tok);
            float *base = xcalloc((size_t)T * V, sizeof *base), *pert = xcalloc((size_t)T * V, sizeof *pert);
            fixture_tokens(tok, (size_t)T, V, 21);
            logits_for(&m, tok, T, cases[k].dropout, base);
            for (int t = 0; t < T; t++) {
                int32_t saved = tok[t];
                tok[t] = (saved + 1 + t % (V - 1)) % V;
                logits_for(&m, tok, T, cases[k].dropout, pert);
                tok[t] = saved;
                // positions before t: bit-for-bit identical
                float worst = 0;
                int where = -1;
                for (int i = 0; i < t * V; i++) {
                    float d = fabsf(pert[i] - base[i]);
                    if (d > worst) { worst = d; where = i / V; }
                }
                EXPECT_MSG(worst == 0.0f, "changing token %d changed logits at position %d by %g", t, where, worst);
                // position t itself must see the change (otherwise the test proves nothing)
                float seen = 0;
                for (int v = 0; v < V; v++) seen = fmaxf(seen, fabsf(pert[t * V + v] - base[t * V + v]));
                EXPECT_MSG(seen > 1e-6f, "changing token %d did not change its own logits", t);
            }
            free(tok);
            free(base);
            free(pert);
            model_free(&m);
        }
    }
    return test_main_end();
}
