// test_noalloc.c — nothing is allocated inside a training step. The test binary is linked with
// -Wl,--wrap for malloc, calloc, realloc and aligned_alloc (see the Makefile), so every allocation
// made by attnlab's own code goes through the counters below; a full step (zero grad, forward,
// backward, extra loss, clip, AdamW, after-step hooks) must make none, for every block kind.
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

static const char *specs[] = {
    "softmax/mlp,softmax/none",
    "adaptive(span=12,ramp=4)/mlp,allattn(persist=4,span=12,ramp=4),softmax(persist=2)/mlp",
    "performer(features=12,redraw=1)/mlp,performer(kernel=relu)/mlp",
    "linformer(chunk=4,k=2)/mlp,linformer(chunk=3,k=1,window=1,share=kv)/mlp",
    "collab(dk=5)/mlp,collab/none",
    "softmax/pkm(slots=64,k=4,heads=2,dk=8),softmax/pkm(slots=16,k=4,heads=3,dk=6)",
};

int main(void) {
    for (size_t k = 0; k < sizeof specs / sizeof *specs; k++) {
        char name[200];
        snprintf(name, sizeof name, "no allocation in a training step: %s", specs[k]);
        TEST_CASE(name) {
            model_t m;
            if (fixture_model(&m, specs[k], 13, 16, 2, 16, 0.3f, 9)) {
                tl_case_failed = 1;
                continue;
            }
            int B = 2, T = 16;
            model_alloc_acts(&m, B, T, 0.1f);
            int32_t x[32], y[32];
            fixture_tokens(x, 32, 13, 1);
            fixture_tokens(y, 32, 13, 2);
            rng_t r;
            rng_seed(&r, 5);
            adamw_cfg_t cfg = {0.9f, 0.99f, 1e-8f, 0.1f};
            long before = 0;
            for (long step = 1; step <= 3; step++) {
                if (step == 2) before = n_allocs;  // the first step may warm up libraries
                run_ctx_t rc = {.training = 1, .dropout = 0.1f, .rng = &r};
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
    }
    TEST_CASE("the counter sees the library's allocations (the test can fail)") {
        long before = n_allocs;
        free(xmalloc(16));  // check.c's wrapper, inside libattnlab.a like every block kind
        EXPECT(n_allocs == before + 1);
    }
    return test_main_end();
}
