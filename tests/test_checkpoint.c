// test_checkpoint.c — checkpoint round trip for every block kind: save a model (with optimizer
// moments and a train state), load it back, and require the same resolved spec, every tensor and
// moment bit for bit, the same logits, and a loaded model whose own save is byte-identical.
// Also: exported copies (no moments) load, --init-from copies by name and shape.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint/checkpoint.h"
#include "tests/fixture.h"
#include "tests/testlib.h"

static const char *specs[] = {
    "softmax/mlp,softmax/none",
    "adaptive(span=6,ramp=3,init=0.37)/mlp,softmax(persist=3)/mlp(hidden=5)",
    "allattn(persist=4,span=7,ramp=2),adaptive(persist=2)/mlp",
    "performer(features=12)/mlp,performer(kernel=relu,features=8,redraw=0)/none",
    "linformer(chunk=2,k=1)/mlp,linformer(chunk=3,k=2,window=1,share=kv)/mlp",
    "collab(dk=3)/mlp,collab/none,collab(dk=11)/mlp",
    "softmax/pkm(slots=64,k=4,heads=2,dk=8),softmax/pkm(slots=16,k=3,heads=1,dk=6),softmax/mlp",
};

static int files_equal(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int eq = fa && fb;
    while (eq) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) eq = 0;
        if (ca == EOF || cb == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return eq;
}

int main(void) {
    char dir[] = "/tmp/attnlab-ckpt-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char p1[256], p2[256], p3[256];
    snprintf(p1, sizeof p1, "%s/a.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/b.safetensors", dir);
    snprintf(p3, sizeof p3, "%s/export.safetensors", dir);
    tokenizer_t tok;
    tok_init_byte(&tok);
    for (size_t k = 0; k < sizeof specs / sizeof *specs; k++) {
        char name[256];
        snprintf(name, sizeof name, "round trip %s", specs[k]);
        TEST_CASE(name) {
            model_t m;
            // vocab 256 (byte tokenizer), width 8, 2 heads, ctx 8
            if (fixture_model(&m, specs[k], 256, 8, 2, 8, 0.3f, 50 + k)) {
                tl_case_failed = 1;
                continue;
            }
            for (size_t i = 0; i < m.params.total; i++) {  // distinct moments, so a mix-up shows
                m.params.m[i] = 0.001f * (float)i;
                m.params.v[i] = 0.002f * (float)i;
            }
            char err[1024];
            EXPECT_MSG(ckpt_save(p1, &m, &tok, "{\"step\":7}", 1, err, sizeof err) == 0, "save: %s", err);
            ckpt_t c;
            if (ckpt_load(p1, &c, err, sizeof err)) {
                EXPECT_MSG(0, "load: %s", err);
                model_free(&m);
                continue;
            }
            EXPECT_MSG(strcmp(c.model.spec, m.spec) == 0, "spec '%s' came back as '%s'", m.spec, c.model.spec);
            EXPECT(c.has_optimizer && c.train_state && strcmp(c.train_state, "{\"step\":7}") == 0);
            EXPECT(c.model.params.count == m.params.count && c.model.params.total == m.params.total);
            if (c.model.params.total == m.params.total) {
                EXPECT(memcmp(c.model.params.data, m.params.data, m.params.total * sizeof(float)) == 0);
                // moments exist for trainable tensors only (buffers such as Performer's omega have none)
                for (int i = 0; i < m.params.count; i++) {
                    const param_t *a = m.params.items[i], *b = c.model.params.items[i];
                    EXPECT_MSG(strcmp(a->name, b->name) == 0, "tensor %d: %s vs %s", i, a->name, b->name);
                    if (a->trainable)
                        EXPECT_MSG(memcmp(a->m, b->m, a->numel * 4) == 0 && memcmp(a->v, b->v, a->numel * 4) == 0,
                                   "moments of %s differ", a->name);
                }
            }
            // same logits
            int32_t tokens[8];
            fixture_tokens(tokens, 8, 256, 3);
            model_alloc_acts(&m, 1, 8, 0.0f);
            model_alloc_acts(&c.model, 1, 8, 0.0f);
            run_ctx_t rc = {.training = 0};
            model_forward(&m, tokens, NULL, 1, 8, &rc);
            model_forward(&c.model, tokens, NULL, 1, 8, &rc);
            EXPECT(memcmp(m.probs, c.model.probs, 8 * 256 * sizeof(float)) == 0);
            // the loaded model saves to the identical file
            EXPECT_MSG(ckpt_save(p2, &c.model, &c.tok, c.train_state, 1, err, sizeof err) == 0, "resave: %s", err);
            EXPECT_MSG(files_equal(p1, p2), "re-saved checkpoint differs from the original");
            // an exported copy loads without moments
            EXPECT_MSG(ckpt_save(p3, &c.model, &c.tok, c.train_state, 0, err, sizeof err) == 0, "export: %s", err);
            ckpt_t e;
            if (ckpt_load(p3, &e, err, sizeof err) == 0) {
                EXPECT(!e.has_optimizer);
                EXPECT(memcmp(e.model.params.data, m.params.data, m.params.total * sizeof(float)) == 0);
                ckpt_free(&e);
            } else {
                EXPECT_MSG(0, "load export: %s", err);
            }
            ckpt_free(&c);
            model_free(&m);
        }
    }
    TEST_CASE("init-from copies tensors by name and shape") {
        model_t src, dst;
        CHECK(fixture_model(&src, "2*softmax/mlp", 256, 8, 2, 8, 0.3f, 70) == 0);
        CHECK(fixture_model(&dst, "performer(features=12)/mlp,linformer(chunk=2,k=1)/mlp(hidden=16)", 256, 8, 2, 8, 0.3f, 71) == 0);
        char err[512];
        EXPECT(ckpt_save(p1, &src, &tok, NULL, 0, err, sizeof err) == 0);
        int loaded = 0, total = 0;
        EXPECT(ckpt_init_from(p1, &dst, 1, &loaded, &total, NULL, 0, err, sizeof err) == 0);
        param_t *a = params_find(&src.params, "layers.0.attn.wq"), *b = params_find(&dst.params, "layers.0.attn.wq");
        EXPECT(a && b && memcmp(a->data, b->data, a->numel * 4) == 0);
        param_t *w1 = params_find(&dst.params, "layers.1.ffn.w1"), *w1s = params_find(&src.params, "layers.1.ffn.w1");
        EXPECT(w1 && w1s && memcmp(w1->data, w1s->data, 4 * 8) != 0);  // different shape: left as initialized
        // every tensor except layer 1's w1, b1, w2 (hidden 16 vs 32; b2 keeps its shape) and the
        // kinds' own tensors (performer's omega, linformer's E and F)
        EXPECT_MSG(loaded == dst.params.count - 3 - 3, "loaded %d of %d", loaded, total);
        model_free(&src);
        model_free(&dst);
    }
    tok_free(&tok);
    unlink(p1);
    unlink(p2);
    unlink(p3);
    rmdir(dir);
    return test_main_end();
}
