// test_decode.c — incremental decoding with each block's cache gives the logits of a full forward pass
// at every position, for every spec (relative tolerance 1e-4 of the logits' scale).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "tests/fixture.h"
#include "tests/testlib.h"

static const struct {
    const char *spec;
    int ctx;
} cases[] = {
    {"softmax/mlp", 16},
    {"3*softmax/mlp", 40},
    {"softmax/none,softmax/mlp(hidden=4)", 9},
};

int main(void) {
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char name[160];
        snprintf(name, sizeof name, "decode == forward %s (ctx %d)", cases[k].spec, cases[k].ctx);
        TEST_CASE(name) {
            model_t m;
            int V = 17, T = cases[k].ctx;
            if (fixture_model(&m, cases[k].spec, V, 16, 4, T, 0.0f, 0.3f, 31 + k)) {
                tl_case_failed = 1;
                continue;
            }
            model_alloc_acts(&m, 1, T);
            int32_t *tok = xcalloc((size_t)T, sizeof *tok);
            float *full = xcalloc((size_t)T * V, sizeof *full), *inc = xcalloc((size_t)T * V, sizeof *inc);
            fixture_tokens(tok, (size_t)T, V, 41);
            rng_t r;
            rng_seed(&r, 1);
            run_ctx_t rc = {.training = 0, .rng = &r};
            model_forward(&m, tok, NULL, 1, T, &rc);
            memcpy(full, m.probs, (size_t)T * V * sizeof(float));
            decode_state_t ds;
            decode_init(&ds, &m);
            for (int t = 0; t < T; t++) memcpy(inc + (size_t)t * V, decode_step(&m, &ds, tok[t]), (size_t)V * sizeof(float));
            float scale = 0;
            for (int i = 0; i < T * V; i++) scale = fmaxf(scale, fabsf(full[i]));
            EXPECT_CLOSE("incremental logits", inc, full, (size_t)T * V, 1e-4 * scale, 1e-4);
            // a second sequence after reset must not see the first one's cache
            decode_reset(&ds);
            for (int t = 0; t < T; t++) memcpy(inc + (size_t)t * V, decode_step(&m, &ds, tok[t]), (size_t)V * sizeof(float));
            EXPECT_CLOSE("after reset", inc, full, (size_t)T * V, 1e-4 * scale, 1e-4);
            decode_free(&ds);
            free(tok);
            free(full);
            free(inc);
            model_free(&m);
        }
    }
    return test_main_end();
}
