// test_linformer.c — the causal chunked linformer mixer (blocks/mixer_linformer.c): gradient checks for
// each option that changes the math (chunk/k, window, share=kv) with several complete chunks in T 7,
// exact causality with the perturbed token inside and across chunks (also with keys ×10), decode ==
// forward (an independent implementation of the same math), equality with softmax attention when
// nothing is compressed, cache size, and option errors. Attention dropout: gradient checks and causality
// with p > 0, eval == the no-dropout model bit for bit, training mode differs, and the mean over many
// masks converges to the eval output (the 1/(1−p) scaling).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "model/model.h"
#include "tests/fixture.h"
#include "tests/testlib.h"

static float g_key_scale = 1.0f;
static void scale_keys(model_t *m) {
    for (int l = 0; l < m->L; l++) {
        const char *which[] = {"wk", "bk"};
        for (int w = 0; w < 2; w++) {
            char name[80];
            snprintf(name, sizeof name, "layers.%d.attn.%s", l, which[w]);
            param_t *p = params_find(&m->params, name);
            for (size_t i = 0; p && i < p->numel; i++) p->data[i] *= g_key_scale;
        }
    }
}

static void test_gradcheck(void) {
    // fixture_gradcheck_model: T 7, D 4. chunk 2 → chunks {0,1} {2,3} {4,5} {6}: three compressed.
    static const fixture_spec_t cases[] = {
        {"linformer(chunk=2,k=1)/mlp", 0.0f},
        {"linformer(chunk=2,k=2)/mlp", 0.0f},
        {"linformer(chunk=2,k=1,window=1)/mlp", 0.0f},
        {"linformer(chunk=3,k=2,share=kv)/mlp", 0.0f},
        {"linformer(chunk=2,k=2,window=1,share=kv)/none,linformer(chunk=3,k=1)/mlp", 0.0f},
        {"linformer(chunk=2,k=1)/mlp", 0.2f},  // attention, residual and embedding dropout
        {"linformer/mlp", 0.0f},               // defaults: chunk 32 > T, plain causal attention
        // attention dropout on the joint softmax (compressed and exact columns)
        {"linformer(chunk=2,k=2)/mlp", 0.25f},
        {"linformer(chunk=3,k=2,window=1)/none", 0.25f},
        {"linformer(chunk=2,k=2,window=1,share=kv)/none,linformer(chunk=3,k=1)/mlp", 0.25f},
    };
    fixture_gradcheck_cases(cases, sizeof cases / sizeof *cases, 0.2f);
}

static void test_causality(void) {
    static const struct {
        const char *spec;
        float key_scale, dropout;
    } cases[] = {
        {"linformer(chunk=3,k=2)/mlp", 1.0f, 0.0f},
        {"linformer(chunk=4,k=3,window=1)/mlp", 1.0f, 0.0f},
        {"linformer(chunk=3,k=2,share=kv)/mlp", 10.0f, 0.0f},
        {"linformer(chunk=2,k=1,window=2)/mlp,linformer(chunk=5,k=2)/mlp", 10.0f, 0.1f},
        {"linformer(chunk=3,k=2)/mlp", 1.0f, 0.1f},
        {"linformer(chunk=4,k=3,window=1,share=kv)/mlp", 10.0f, 0.1f},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char name[200];
        snprintf(name, sizeof name, "causality %s keys x%g dropout %.1f", cases[k].spec, cases[k].key_scale,
                 cases[k].dropout);
        TEST_CASE(name) {
            g_key_scale = cases[k].key_scale;
            fixture_causality(cases[k].spec, 20, 20, cases[k].dropout, scale_keys);
        }
    }
    g_key_scale = 1.0f;
}

static void test_decode(void) {
    static const struct {
        const char *spec;
        int ctx;
    } cases[] = {
        {"linformer(chunk=3,k=2)/mlp", 20},
        {"linformer(chunk=4,k=3,window=1)/mlp", 21},
        {"linformer(chunk=3,k=2,window=2,share=kv)/mlp,softmax/mlp", 20},
        {"linformer(chunk=1,k=1)/mlp", 7},
        {"linformer/mlp", 16},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char name[200];
        snprintf(name, sizeof name, "decode == forward %s ctx %d", cases[k].spec, cases[k].ctx);
        TEST_CASE(name) fixture_decode(cases[k].spec, cases[k].ctx, NULL);
    }
}

// With no completed chunk outside the window, linformer is exactly causal softmax attention.
static void test_equals_softmax(void) {
    TEST_CASE("linformer without compressed chunks == softmax (same weights)") {
        enum { V = 13, C = 16, H = 4, T = 12 };
        const char *specs[] = {"linformer(chunk=16,k=4)/mlp", "linformer(chunk=3,k=2,window=3)/mlp"};
        model_t sm;
        CHECK(fixture_model(&sm, "softmax/mlp", V, C, H, T, 0.3f, 2) == 0);
        model_alloc_acts(&sm, 1, T, 0.0f);
        int32_t tok[T];
        fixture_tokens(tok, T, V, 8);
        float want[T * V], got[T * V];
        fixture_logits(&sm, tok, T, 0.0f, want);
        for (int k = 0; k < 2; k++) {
            model_t lf;
            CHECK(fixture_model(&lf, specs[k], V, C, H, T, 0.3f, 2) == 0);
            for (int i = 0; i < sm.params.count; i++) {
                param_t *a = sm.params.items[i], *b = params_find(&lf.params, a->name);
                CHECK(b && b->numel == a->numel);
                memcpy(b->data, a->data, a->numel * sizeof(float));
            }
            model_alloc_acts(&lf, 1, T, 0.0f);
            fixture_logits(&lf, tok, T, 0.0f, got);
            EXPECT_CLOSE(specs[k], got, want, T * V, 1e-5, 1e-5);
            model_free(&lf);
        }
        model_free(&sm);
    }
}

static void test_cache_and_params(void) {
    TEST_CASE("linformer cache holds ctx·k/c + (w+1)·c vectors per head; E, F shapes and sharing") {
        model_dims_t d = {.vocab = 11, .dim = 16, .heads = 4, .ctx = 256};
        model_t m;
        char err[512];
        CHECK(model_build(&m, &d, "linformer/mlp", err, sizeof err) == 0);
        block_t *b = &m.layers[0].mixer;
        // 8 chunks of 32: the last is the current one, 7 compressed to 4 vectors each; K and V
        size_t vectors = 7 * 4 + 32;
        EXPECT_MSG(b->ops->cache_floats(b) == 2 * vectors * 16, "cache %zu floats, want %zu", b->ops->cache_floats(b),
                   2 * vectors * 16);
        param_t *E = params_find(&m.params, "layers.0.attn.E"), *F = params_find(&m.params, "layers.0.attn.F");
        EXPECT(E && F && E->shape[0] == 4 && E->shape[1] == 32 && F->shape[0] == 4 && F->trainable);
        float bound = 1.0f / sqrtf(32.0f);
        EXPECT(E->init == INIT_UNIFORM && fabsf(E->init_scale - bound) < 1e-7f);
        EXPECT_MSG(strstr(m.spec, "linformer(chunk=32,k=4,window=0,share=none)"), "spec %s", m.spec);
        model_free(&m);
        CHECK(model_build(&m, &d, "linformer(share=kv)/mlp", err, sizeof err) == 0);
        EXPECT(params_find(&m.params, "layers.0.attn.E") && !params_find(&m.params, "layers.0.attn.F"));
        model_free(&m);
    }
    TEST_CASE("linformer options: clear errors") {
        model_dims_t d = {.vocab = 11, .dim = 8, .heads = 2, .ctx = 64};
        model_t m;
        char err[512];
        const struct {
            const char *spec, *want;
        } bad[] = {
            {"linformer(chunk=0)", "chunk"},
            {"linformer(chunk=4,k=8)", "k=8 exceeds chunk=4"},
            {"linformer(k=0)", "k"},
            {"linformer(window=-1)", "window"},
            {"linformer(share=qk)", "none|kv"},
            {"linformer(features=4)", "unknown option 'features'"},
        };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            err[0] = 0;
            int rc = model_build(&m, &d, bad[i].spec, err, sizeof err);
            EXPECT_MSG(rc != 0 && strstr(err, bad[i].want), "%s: rc %d, message '%s'", bad[i].spec, rc, err);
            if (rc == 0) model_free(&m);
        }
    }
}

// Attention dropout at the block level (no residual dropout around it): the mixer of a model allocated
// for dropout 0.3, against the same weights without dropout.
static void test_dropout(void) {
    enum { V = 11, C = 16, H = 4, B = 2, T = 14 };
    const char *specs[] = {"linformer(chunk=3,k=2)/mlp", "linformer(chunk=2,k=1,window=1,share=kv)/mlp"};
    for (int k = 0; k < 2; k++) {
        char name[200];
        snprintf(name, sizeof name, "attention dropout %s: eval == no dropout, training differs, mean → eval",
                 specs[k]);
        TEST_CASE(name) {
            model_t md, m0;
            CHECK(fixture_model(&md, specs[k], V, C, H, T, 0.3f, 3 + k) == 0);
            CHECK(fixture_model(&m0, specs[k], V, C, H, T, 0.3f, 3 + k) == 0);
            model_alloc_acts(&md, B, T, 0.3f);  // tells its blocks the run has dropout (their act holds masks)
            block_t *bd = &md.layers[0].mixer, *b0 = &m0.layers[0].mixer;
            EXPECT(bd->ops->act_floats(bd, B, T) > b0->ops->act_floats(b0, B, T));
            size_t n = (size_t)B * T * C;
            float *actd = xalloc_floats(bd->ops->act_floats(bd, B, T));
            float *scrd = xalloc_floats(bd->ops->scratch_floats(bd, B, T));
            float *act0 = xalloc_floats(b0->ops->act_floats(b0, B, T));
            float *scr0 = xalloc_floats(b0->ops->scratch_floats(b0, B, T));
            float *x = xalloc_floats(n), *y0 = xalloc_floats(n), *y = xalloc_floats(n);
            double *mean = calloc(n, sizeof(double)), *sq = calloc(n, sizeof(double));
            rng_t r;
            rng_seed(&r, 17);
            for (size_t i = 0; i < n; i++) x[i] = rng_normal(&r);
            run_ctx_t rc0 = {.training = 0, .rng = &r};
            b0->ops->forward(b0, y0, x, act0, scr0, B, T, &rc0);
            // eval: the same output bit for bit, and no draw from the rng
            rng_t before = r;
            run_ctx_t rce = {.training = 0, .dropout = 0.3f, .rng = &r};
            bd->ops->forward(bd, y, x, actd, scrd, B, T, &rce);
            EXPECT_MSG(memcmp(y, y0, n * sizeof(float)) == 0, "eval output differs from the no-dropout model's");
            EXPECT_MSG(memcmp(&before, &r, sizeof r) == 0, "eval consumed random numbers");
            // training with p = 0: also identical
            run_ctx_t rcz = {.training = 1, .dropout = 0.0f, .rng = &r};
            bd->ops->forward(bd, y, x, actd, scrd, B, T, &rcz);
            EXPECT_MSG(memcmp(y, y0, n * sizeof(float)) == 0, "training at p 0 differs from the no-dropout model");
            // training with p > 0: differs; averaged over many masks it converges to the eval output
            run_ctx_t rct = {.training = 1, .dropout = 0.3f, .rng = &r};
            enum { DRAWS = 1000 };
            float maxdiff = 0;
            for (int d = 0; d < DRAWS; d++) {
                bd->ops->forward(bd, y, x, actd, scrd, B, T, &rct);
                for (size_t i = 0; i < n; i++) {
                    double e = (double)y[i] - y0[i];
                    mean[i] += e;
                    sq[i] += e * e;
                    if (d == 0) maxdiff = fmaxf(maxdiff, fabsf((float)e));
                }
            }
            EXPECT_MSG(maxdiff > 1e-3f, "training output with p 0.3 equals the eval output (max diff %g)", maxdiff);
            double worst = 0;
            size_t wi = 0;
            for (size_t i = 0; i < n; i++) {
                double m = mean[i] / DRAWS, sd = sqrt(fmax(sq[i] / DRAWS - m * m, 0.0));
                double z = fabs(m) / (sd / sqrt((double)DRAWS) + 1e-7);
                if (z > worst) { worst = z; wi = i; }
            }
            EXPECT_MSG(worst < 6.0, "mean over %d masks is %.1f standard errors off the eval output at %zu", DRAWS,
                       worst, wi);
            printf("  first draw max |y − y_eval| %.3g; mean over %d draws within %.2f standard errors\n", maxdiff,
                   DRAWS, worst);
            free(actd);
            free(scrd);
            free(act0);
            free(scr0);
            free(x);
            free(y0);
            free(y);
            free(mean);
            free(sq);
            model_free(&md);
            model_free(&m0);
        }
    }
}

static void test_dropout_model(void) {
    TEST_CASE("attention dropout: model at eval == the no-dropout model (logits, bit for bit)") {
        enum { V = 13, C = 16, H = 4, T = 16 };
        const char *spec = "linformer(chunk=3,k=2,window=1)/mlp,linformer(chunk=4,k=1)/none";
        model_t md, m0;
        CHECK(fixture_model(&md, spec, V, C, H, T, 0.3f, 9) == 0);
        CHECK(fixture_model(&m0, spec, V, C, H, T, 0.3f, 9) == 0);
        model_alloc_acts(&md, 1, T, 0.25f);
        model_alloc_acts(&m0, 1, T, 0.0f);
        int32_t tok[T];
        fixture_tokens(tok, T, V, 10);
        rng_t r;
        rng_seed(&r, 1);
        run_ctx_t rc0 = {.training = 0, .rng = &r};
        run_ctx_t rce = {.training = 0, .dropout = 0.25f, .rng = &r};
        model_forward(&m0, tok, NULL, 1, T, &rc0);
        model_forward(&md, tok, NULL, 1, T, &rce);
        EXPECT_MSG(memcmp(md.probs, m0.probs, (size_t)T * V * sizeof(float)) == 0, "eval logits differ");
        run_ctx_t rct = {.training = 1, .dropout = 0.25f, .rng = &r};
        model_forward(&md, tok, NULL, 1, T, &rct);
        EXPECT_MSG(memcmp(md.probs, m0.probs, (size_t)T * V * sizeof(float)) != 0, "training logits equal eval's");
        model_free(&md);
        model_free(&m0);
    }
}

int main(void) {
    test_gradcheck();
    test_causality();
    test_decode();
    test_equals_softmax();
    test_dropout();
    test_dropout_model();
    test_cache_and_params();
    return test_main_end();
}
