// roundtrip.h — the checkpoint round trip of one model spec, shared by test_kinds.c (every example
// of every registered kind) and test_checkpoint.c (one model holding every kind).
#ifndef ATTNLAB_TEST_ROUNDTRIP_H
#define ATTNLAB_TEST_ROUNDTRIP_H

#include <stdio.h>
#include <string.h>

#include "checkpoint/checkpoint.h"
#include "tests/fixture.h"

static inline int roundtrip_files_equal(const char *a, const char *b) {
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

// Save a model of spec (vocab 256 for the byte tokenizer, width 8, 2 heads, ctx 8) with distinct
// optimizer moments and a train state into dir, load it back, and require: the same resolved spec,
// every tensor and moment bit for bit, identical logits, a byte-identical re-save, and an exported
// copy (no moments) that loads with the same tensors.
static inline void roundtrip_check(const char *spec, const char *dir, uint64_t seed) {
    char p1[512], p2[512], p3[512];
    snprintf(p1, sizeof p1, "%s/a.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/b.safetensors", dir);
    snprintf(p3, sizeof p3, "%s/export.safetensors", dir);
    tokenizer_t tok;
    tok_init_byte(&tok);
    model_t m;
    if (fixture_model(&m, spec, 256, 8, 2, 8, 0.3f, seed)) {
        tl_case_failed = 1;
        tok_free(&tok);
        return;
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
        tok_free(&tok);
        return;
    }
    EXPECT_MSG(strcmp(c.model.spec, m.spec) == 0, "spec '%s' came back as '%s'", m.spec, c.model.spec);
    EXPECT(c.has_optimizer && c.train_state && strcmp(c.train_state, "{\"step\":7}") == 0);
    EXPECT(c.model.params.count == m.params.count && c.model.params.total == m.params.total);
    if (c.model.params.count == m.params.count && c.model.params.total == m.params.total) {
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
    EXPECT_MSG(memcmp(m.probs, c.model.probs, 8 * 256 * sizeof(float)) == 0, "the loaded model's logits differ");
    // the loaded model saves to the identical file
    EXPECT_MSG(ckpt_save(p2, &c.model, &c.tok, c.train_state, 1, err, sizeof err) == 0, "resave: %s", err);
    EXPECT_MSG(roundtrip_files_equal(p1, p2), "re-saved checkpoint differs from the original");
    // an exported copy loads without moments
    EXPECT_MSG(ckpt_save(p3, &c.model, &c.tok, c.train_state, 0, err, sizeof err) == 0, "export: %s", err);
    ckpt_t e;
    if (ckpt_load(p3, &e, err, sizeof err) == 0) {
        EXPECT(!e.has_optimizer);
        EXPECT(e.model.params.total == m.params.total &&
               memcmp(e.model.params.data, m.params.data, m.params.total * sizeof(float)) == 0);
        ckpt_free(&e);
    } else {
        EXPECT_MSG(0, "load export: %s", err);
    }
    ckpt_free(&c);
    model_free(&m);
    tok_free(&tok);
    remove(p1);
    remove(p2);
    remove(p3);
}

#endif
