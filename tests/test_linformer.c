// test_linformer.c — the causal chunked linformer mixer (model/mixer_linformer.c): gradient checks for
// each option that changes the math (chunk/k, window, share=kv) with several complete chunks in T 7,
// exact causality with the perturbed token inside and across chunks (also with keys ×10), decode ==
// forward (an independent implementation of the same math), equality with softmax attention when
// nothing is compressed, cache size, and option errors.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/check.h"
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
    static const struct {
        const char *spec;
        float dropout;
    } cases[] = {
        {"linformer(chunk=2,k=1)/mlp", 0.0f},
        {"linformer(chunk=2,k=2)/mlp", 0.0f},
        {"linformer(chunk=2,k=1,window=1)/mlp", 0.0f},
        {"linformer(chunk=3,k=2,share=kv)/mlp", 0.0f},
        {"linformer(chunk=2,k=2,window=1,share=kv)/none,linformer(chunk=3,k=1)/mlp", 0.0f},
        {"linformer(chunk=2,k=1)/mlp", 0.2f},  // residual and embedding dropout around it
        {"linformer/mlp", 0.0f},               // defaults: chunk 32 > T, plain causal attention
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char name[200];
        snprintf(name, sizeof name, "gradcheck %s dropout %.1f", cases[k].spec, cases[k].dropout);
        TEST_CASE(name) {
            double w = fixture_gradcheck_model(cases[k].spec, cases[k].dropout, 0.2f, 1 + k);
            printf("  worst ratio to tolerance %.3f\n", w);
        }
    }
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
        CHECK(fixture_model(&sm, "softmax/mlp", V, C, H, T, 0.0f, 0.3f, 2) == 0);
        model_alloc_acts(&sm, 1, T);
        int32_t tok[T];
        fixture_tokens(tok, T, V, 8);
        float want[T * V], got[T * V];
        fixture_logits(&sm, tok, T, 0.0f, want);
        for (int k = 0; k < 2; k++) {
            model_t lf;
            CHECK(fixture_model(&lf, specs[k], V, C, H, T, 0.0f, 0.3f, 2) == 0);
            for (int i = 0; i < sm.params.count; i++) {
                param_t *a = sm.params.items[i], *b = params_find(&lf.params, a->name);
                CHECK(b && b->numel == a->numel);
                memcpy(b->data, a->data, a->numel * sizeof(float));
            }
            model_alloc_acts(&lf, 1, T);
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

int main(void) {
    test_gradcheck();
    test_causality();
    test_decode();
    test_equals_softmax();
    test_cache_and_params();
    return test_main_end();
}
