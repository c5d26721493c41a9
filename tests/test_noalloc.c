// test_noalloc.c — nothing is allocated inside a training step. The test binary is linked with
// -Wl,--wrap for malloc, calloc, realloc and aligned_alloc (see the Makefile), so every allocation
// made by attnlab's own code goes through the counters below; a full step (zero grad, forward,
// backward, extra loss, clip, AdamW, after-step hooks) must make none, for every example of every
// registered block kind (block_ops_t.examples, as model specs by fixture_kind_cases), with and
// without dropout. The allocation counting needs this binary's link flags, so this walk of the
// registry lives here and not in test_kinds.c.
#include <stdio.h>
#include <stdlib.h>

#include "model/model.h"
#include "model/optim.h"
#include "tests/fixture.h"
#include "tests/testlib.h"

static long n_allocs;
void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t al, size_t n);
void *__wrap_malloc(size_t n) { n_allocs++; return __real_malloc(n); }
void *__wrap_calloc(size_t a, size_t b) { n_allocs++; return __real_calloc(a, b); }
void *__wrap_realloc(void *p, size_t n) { n_allocs++; return __real_realloc(p, n); }
void *__wrap_aligned_alloc(size_t al, size_t n) { n_allocs++; return __real_aligned_alloc(al, n); }

// Three full training steps of spec (V 13, C 16, H 2, ctx 16, B 2, T 16); steps 2 and 3 must not allocate.
static void check_steps(const char *spec, float dropout) {
    model_t m;
    if (fixture_model(&m, spec, 13, 16, 2, 16, 0.3f, 9)) {
        tl_case_failed = 1;
        return;
    }
    int B = 2, T = 16;
    model_alloc_acts(&m, B, T, dropout);
    int32_t x[32], y[32];
    fixture_tokens(x, 32, 13, 1);
    fixture_tokens(y, 32, 13, 2);
    rng_t r;
    rng_seed(&r, 5);
    adamw_cfg_t cfg = {0.9f, 0.99f, 1e-8f, 0.1f};
    long before = 0;
    for (long step = 1; step <= 3; step++) {
        if (step == 2) before = n_allocs;  // the first step may warm up libraries
        run_ctx_t rc = {.training = 1, .dropout = dropout, .rng = &r};
        model_before_step(&m, step, &r);  // performer redraw=1 redraws before every step after the first
        params_zero_grad(&m.params);
        model_forward(&m, x, y, B, T, &rc);
        model_backward(&m, 1.0f, &rc);
        model_extra_loss(&m, 1);
        double norm = grad_global_norm(&m.params);
        if (norm > 1.0) grad_scale(&m.params, (float)(1.0 / norm));
        adamw_step(&m.params, &cfg, 1e-3f, step);
        model_after_step(&m, step, &r);
    }
    EXPECT_MSG(n_allocs == before, "%ld allocations in two training steps", n_allocs - before);
    model_free(&m);
}

int main(void) {
    static fixture_kind_case_t cases[64];
    int n = fixture_kind_cases(cases, 64);
    TEST_CASE("the registry has examples to check") EXPECT(n > 0 && n < 64);
    for (int k = 0; k < n; k++)
        for (int d = 0; d < 2; d++) {
            char name[300];
            snprintf(name, sizeof name, "no allocation in a training step: %s dropout %.1f", cases[k].spec, d * 0.1);
            TEST_CASE(name) check_steps(cases[k].spec, d * 0.1f);
        }
    static char all[2048];
    fixture_all_kinds_spec(all, sizeof all);
    TEST_CASE("no allocation in a training step: one model of every kind, dropout 0.1") check_steps(all, 0.1f);
    // --pos rel: the mixer examples that take it (their QR/dQR live in scratch)
    fixture_pos_scheme = POS_REL;
    for (int k = 0; k < n; k++)
        if (cases[k].ops->role == ROLE_MIXER && cases[k].ops->rel_pos) {
            char name[300];
            snprintf(name, sizeof name, "no allocation in a training step: %s --pos rel dropout 0.1", cases[k].spec);
            TEST_CASE(name) check_steps(cases[k].spec, 0.1f);
        }
    fixture_pos_scheme = POS_LEARNED;
    TEST_CASE("the counter sees the library's allocations (the test can fail)") {
        long before = n_allocs;
        free(xmalloc(16));  // check.c's wrapper, inside libattnlab.a like every block kind
        EXPECT(n_allocs == before + 1);
    }
    return test_main_end();
}
