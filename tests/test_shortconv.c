// test_shortconv.c — what the registry walk (test_kinds.c) cannot know of the shortconv mixer
// (blocks/mixer_shortconv.c):
//  - its option: kernel in [1, 64], refused outside in one line naming the layer and option;
//  - its math: the block's y against a direct double-precision loop of
//    y_t = (Σ_s w_s ⊙ x_{t−s} + b_c) ⊙ (x_t·Wᵀ + b), zeros before position 0, at kernels 1, 3 and 9
//    > T (every lag reaching before the window);
//  - its exact reach: in a one-layer shortconv/none model, position t's logits change with tokens
//    t−k+1 … t and with no other (bit for bit), also across a segment boundary with memory;
//  - decode == segment-wise forward with a memory shorter than k − 1 (the state then holds M rows,
//    and decoding must not read the older ring slots), under rope and none.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "model/model.h"
#include "tests/fixture.h"
#include "tests/fixture_mem.h"
#include "tests/testlib.h"

static void test_kernel_option(void) {
    TEST_CASE("kernel outside [1, 64] is refused in one line naming the layer and option; 1 and 64 build") {
        const char *bad[] = {"shortconv(kernel=0)", "shortconv(kernel=65)", "shortconv(kernel=-3)"};
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            model_dims_t d = {.vocab = 11, .dim = 8, .heads = 2, .ctx = 8};
            model_t m;
            char err[512] = "";
            int rc = model_build(&m, &d, bad[i], err, sizeof err);
            if (rc == 0) model_free(&m);
            EXPECT_MSG(rc != 0 && strstr(err, "kernel") && strstr(err, "layer 0") && !strchr(err, '\n'), "%s: rc %d '%s'",
                       bad[i], rc, err);
        }
        const char *good[] = {"shortconv(kernel=1)", "shortconv(kernel=64)"};
        for (size_t i = 0; i < 2; i++) {
            model_t m;
            EXPECT_MSG(fixture_model(&m, good[i], 11, 8, 2, 8, 0.3f, 1) == 0, "%s does not build", good[i]);
            model_free(&m);
        }
    }
}

// The mixer of a one-layer model run directly on random x (B 2, T 7, C 8) against the formula.
static void check_math(int k) {
    char spec[64], name[128];
    snprintf(spec, sizeof spec, "shortconv(kernel=%d)/none", k);
    snprintf(name, sizeof name, "%s: y equals the direct formula (B 2, T 7, C 8)", spec);
    TEST_CASE(name) {
        int B = 2, T = 7, C = 8;
        model_t m;
        if (fixture_model(&m, spec, 11, C, 2, T, 0.4f, 7 + k)) {
            EXPECT_MSG(0, "%s does not build", spec);
            continue;
        }
        block_t *b = &m.layers[0].mixer;
        size_t N = (size_t)B * T * C;
        float *x = xcalloc(N, sizeof *x), *y = xcalloc(N, sizeof *y);
        float *act = xcalloc(b->ops->act_floats(b, B, T) + 1, sizeof *act);
        float *scr = xcalloc(b->ops->scratch_floats(b, B, T) + 1, sizeof *scr);
        rng_t r;
        rng_seed(&r, 5);
        for (size_t i = 0; i < N; i++) x[i] = rng_normal(&r);
        b->ops->forward(b, y, x, act, scr, B, T, NULL);
        const float *w = params_find(&m.params, "layers.0.attn.conv_w")->data;
        const float *bc = params_find(&m.params, "layers.0.attn.conv_b")->data;
        const float *W = params_find(&m.params, "layers.0.attn.proj_w")->data;
        const float *bp = params_find(&m.params, "layers.0.attn.proj_b")->data;
        double worst = 0, scale = 0;
        for (int bb = 0; bb < B; bb++)
            for (int t = 0; t < T; t++)
                for (int c = 0; c < C; c++) {
                    double conv = bc[c], proj = bp[c];
                    for (int s = 0; s < k && t - s >= 0; s++) conv += (double)w[c * k + s] * x[((size_t)bb * T + t - s) * C + c];
                    for (int j = 0; j < C; j++) proj += (double)W[c * C + j] * x[((size_t)bb * T + t) * C + j];
                    double want = conv * proj, got = y[((size_t)bb * T + t) * C + c];
                    worst = fmax(worst, fabs(got - want));
                    scale = fmax(scale, fabs(want));
                }
        EXPECT_MSG(worst <= 1e-5 * scale + 1e-6, "max |y − formula| %g (scale %g)", worst, scale);
        free(x);
        free(y);
        free(act);
        free(scr);
        model_free(&m);
    }
}

// One-layer shortconv(kernel=k)/none, pos none: changing stream token t changes the logits at
// positions t … t+k−1 and at no other. With memory (ctx 12, M given), over three segments.
static void check_reach(int k, int M) {
    char spec[64], name[160];
    snprintf(spec, sizeof spec, "shortconv(kernel=%d)/none", k);
    snprintf(name, sizeof name, "%s: token t reaches exactly positions t … t+%d (memory %d, three segments of 12)", spec,
             k - 1, M);
    TEST_CASE(name) {
        fixture_pos_scheme = POS_NONE;
        int V = FMEM_V, S = FMEM_SEG, n = 3 * S;
        model_t m;
        char err[512];
        if (fixture_mem_model(&m, spec, V, FMEM_C, FMEM_H, S, M, 17, err, sizeof err)) {
            EXPECT_MSG(0, "%s: %s", spec, err);
            continue;
        }
        model_alloc_acts(&m, 1, S, 0.0f);
        seg_mem_t mem;
        model_mem_init(&mem, &m, 1);
        int32_t tok[3 * FMEM_SEG];
        fixture_tokens(tok, (size_t)n, V, 23);
        float *base = xcalloc((size_t)n * V, sizeof *base), *pert = xcalloc((size_t)n * V, sizeof *pert);
        fmem_stream(&m, &mem, tok, n, S, base);
        int wrong = 0;
        int k_reach = m.layers[0].mixer.ops->reach(&m.layers[0].mixer) + 1;
        EXPECT_MSG(k_reach == k, "reach() %d, kernel %d", k_reach - 1, k);
        for (int t = 0; t < n; t++) {
            fmem_stream_changed(&m, &mem, tok, n, S, t, (tok[t] + 1) % V, pert);
            for (int i = 0; i < n; i++) {
                float d = 0;
                for (int v = 0; v < V; v++) d = fmaxf(d, fabsf(pert[(size_t)i * V + v] - base[(size_t)i * V + v]));
                // position i sees t when t ≤ i < t + k and t is in i's segment or the M before it
                int seg_start = i - i % S, lo = seg_start - (seg_start < M ? seg_start : M);
                int sees = t <= i && i < t + k && t >= lo;
                if (sees != (d > 0) && wrong++ < 5)
                    EXPECT_MSG(0, "token %d, position %d: %s (max diff %g)", t, i, sees ? "should see it" : "should not",
                               d);
            }
        }
        EXPECT_MSG(wrong == 0, "%d (token, position) pairs wrong", wrong);
        model_mem_free(&mem);
        free(base);
        free(pert);
        model_free(&m);
        fixture_pos_scheme = POS_LEARNED;
    }
}

int main(void) {
    test_kernel_option();
    check_math(1);
    check_math(3);
    check_math(9);
    check_reach(3, 12);
    check_reach(9, 12);
    check_reach(9, 4);  // memory shorter than k − 1: the first rows of a segment see only 4 back
    for (int p = POS_ROPE; p <= POS_NONE; p++) {
        fixture_pos_scheme = (pos_scheme_t)p;
        char name[160];
        for (int M = 3; M <= 5; M += 2) {
            snprintf(name, sizeof name, "memory %d < k − 1: decode == segment-wise forward shortconv(kernel=9) --pos %s", M,
                     pos_scheme_name((pos_scheme_t)p));
            TEST_CASE(name) fixture_mem_decode("shortconv(kernel=9)", M);
        }
    }
    fixture_pos_scheme = POS_LEARNED;
    return test_main_end();
}
