// test_mqar.c — the MQAR task (data/mqar.h, cli/mqar_score.h, docs/mqar.md): the generator's
// determinism and layout, its parameter checks, the masked loss (value and finite-difference gradient),
// recall-accuracy counting, and the raw-id tokenizer a task checkpoint carries.
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cli/mqar_score.h"
#include "data/mqar.h"
#include "tests/fixture.h"
#include "tests/testlib.h"
#include "tokenizer/tokenizer.h"

// Every property of one generated sequence that mqar.h promises; returns the number of violations
// (each printed).
static int layout_violations(const mqar_cfg_t *c, const int32_t *seq, const int32_t *tgt) {
    int bad = 0, N = c->len, D = c->pairs, half = c->vocab / 2;
#define BAD(...) do { printf("  "); printf(__VA_ARGS__); printf("\n"); bad++; } while (0)
    for (int i = 0; i < D; i++) {  // the context: distinct keys and values from disjoint ranges
        int32_t k = seq[2 * i], v = seq[2 * i + 1];
        if (k < 1 || k >= half) BAD("key %d at %d outside [1, %d)", k, 2 * i, half);
        if (v < half || v >= c->vocab) BAD("value %d at %d outside [%d, %d)", v, 2 * i + 1, half, c->vocab);
        for (int j = 0; j < i; j++) {
            if (seq[2 * j] == k) BAD("key %d repeated at %d and %d", k, 2 * j, 2 * i);
            if (seq[2 * j + 1] == v) BAD("value %d repeated", v);
        }
        if (tgt[2 * i] != MQAR_NO_TARGET || tgt[2 * i + 1] != MQAR_NO_TARGET) BAD("a context position is scored (%d)", 2 * i);
    }
    int *queried = xcalloc((size_t)(D > 0 ? D : 1), sizeof *queried), answers = 0;
    for (int p = 2 * D; p < N; p++) {
        int slot_start = (p - 2 * D) % 2 == 0 && p + 1 < N;
        if (seq[p] == 0) {  // filler: never scored
            if (tgt[p] != MQAR_NO_TARGET) BAD("filler at %d is scored", p);
            continue;
        }
        if (!slot_start) {  // a value: the slot's second token, after a query key
            if (tgt[p] != MQAR_NO_TARGET) BAD("value position %d is scored", p);
            if (p == 2 * D || seq[p - 1] == 0) BAD("token %d at %d follows no query", seq[p], p);
            continue;
        }
        int i = 0;  // the query key at a slot start: its pair i in the context
        while (i < D && seq[2 * i] != seq[p]) i++;
        if (i == D) { BAD("query %d at %d is no key of the context", seq[p], p); continue; }
        queried[i]++;
        if (seq[p + 1] != seq[2 * i + 1]) BAD("query %d at %d is followed by %d, not its value %d", seq[p], p, seq[p + 1], seq[2 * i + 1]);
        if (tgt[p] != seq[2 * i + 1]) BAD("the target at query %d is %d, not the value %d", p, tgt[p], seq[2 * i + 1]);
        if (tgt[p] != seq[p + 1]) BAD("target at %d is not the next token", p);
        answers++;
    }
    for (int i = 0; i < D; i++)
        if (queried[i] != 1) BAD("key %d queried %d times", seq[2 * i], queried[i]);
    free(queried);
    if (answers != D || mqar_count_targets(tgt, N) != D) BAD("%d answers, %d scored targets, expected %d", answers, mqar_count_targets(tgt, N), D);
#undef BAD
    return bad;
}

static void test_generator(void) {
    const mqar_cfg_t cfgs[] = {{512, 256, 16}, {64, 64, 4}, {11, 8, 2}, {2 * 65 + 2, 261, 65}, {40, 100, 19}};
    TEST_CASE("generator layout: distinct keys/values in disjoint ranges, each key queried once, answers = the paired values") {
        for (size_t k = 0; k < sizeof cfgs / sizeof *cfgs; k++) {
            const mqar_cfg_t *c = &cfgs[k];
            char err[256];
            EXPECT_MSG(mqar_check(c, err, sizeof err) == 0, "cfg %zu: %s", k, err);
            int32_t *seq = malloc((size_t)c->len * sizeof *seq), *tgt = malloc((size_t)c->len * sizeof *tgt);
            int bad = 0;
            for (int s = 0; s < 50 && !bad; s++) {
                mqar_sequence(c, 7, (uint64_t)s, seq, tgt);
                bad = layout_violations(c, seq, tgt);
            }
            EXPECT_MSG(bad == 0, "cfg V %d N %d D %d: %d violations", c->vocab, c->len, c->pairs, bad);
            free(seq);
            free(tgt);
        }
    }
    TEST_CASE("generator is deterministic by (seed, index) and varies with each") {
        mqar_cfg_t c = {512, 256, 16};
        int32_t a[256], at[256], b[256], bt[256];
        mqar_sequence(&c, 3, 5, a, at);
        mqar_sequence(&c, 3, 5, b, bt);
        EXPECT(memcmp(a, b, sizeof a) == 0 && memcmp(at, bt, sizeof at) == 0);
        mqar_sequence(&c, 3, 6, b, bt);
        EXPECT(memcmp(a, b, sizeof a) != 0);
        mqar_sequence(&c, 4, 5, b, bt);
        EXPECT(memcmp(a, b, sizeof a) != 0);
        // A batch from an rng is its rows' sequences drawn one after another from the same rng.
        rng_t r1, r2;
        rng_seed(&r1, 11);
        rng_seed(&r2, 11);
        int32_t x[2 * 256], y[2 * 256];
        mqar_batch(&c, &r1, 2, x, y);
        mqar_generate(&c, &r2, a, at);
        mqar_generate(&c, &r2, b, bt);
        EXPECT(memcmp(x, a, sizeof a) == 0 && memcmp(x + 256, b, sizeof b) == 0);
        EXPECT(memcmp(y, at, sizeof at) == 0 && memcmp(y + 256, bt, sizeof bt) == 0);
    }
    TEST_CASE("query slots cover the whole query region (uniform, not only early slots)") {
        mqar_cfg_t c = {512, 256, 16};
        int32_t seq[256], tgt[256];
        int late = 0, early = 0;
        for (int s = 0; s < 200; s++) {
            mqar_sequence(&c, 1, (uint64_t)s, seq, tgt);
            for (int p = 0; p < 256; p++)
                if (tgt[p] != MQAR_NO_TARGET) *(p >= 32 + 112 ? &late : &early) += 1;
        }
        // 112 slots; half of them are in the late half: expect ~1600 each of 3200.
        EXPECT_MSG(late > 1400 && early > 1400, "early %d, late %d", early, late);
    }
}

static void expect_refused(mqar_cfg_t c, const char *needle) {
    char err[512] = "";
    int rc = mqar_check(&c, err, sizeof err);
    EXPECT_MSG(rc == -1 && strstr(err, needle), "V %d N %d D %d: rc %d, message '%s' lacks '%s'", c.vocab, c.len, c.pairs, rc, err, needle);
}

static void test_check(void) {
    TEST_CASE("parameter checks: each problem named in one line") {
        expect_refused((mqar_cfg_t){512, 63, 16}, "do not fit in length 63");
        expect_refused((mqar_cfg_t){512, 64, 17}, "17 pairs do not fit");
        expect_refused((mqar_cfg_t){32, 256, 16}, "vocabulary 32 is too small for 16 pairs");
        expect_refused((mqar_cfg_t){33, 256, 16}, "too small");
        expect_refused((mqar_cfg_t){2, 16, 1}, "vocabulary 2 is outside");
        expect_refused((mqar_cfg_t){512, 2, 1}, "sequence length 2 is outside");
        expect_refused((mqar_cfg_t){512, 64, 0}, "at least 1");
        char err[256];
        EXPECT(mqar_check(&(mqar_cfg_t){34, 64, 16}, err, sizeof err) == 0);  // exactly enough ids and room
        EXPECT(mqar_check(&(mqar_cfg_t){4, 4, 1}, err, sizeof err) == 0);
    }
}

// ---------------------------------------------------------------------------------------------
// the masked loss

typedef struct {
    model_t m;
    int32_t x[16], y[16];
    int B, T;
} masked_t;

static double masked_loss(void *p) {
    masked_t *c = p;
    run_ctx_t rc = {.training = 0};
    return model_forward(&c->m, c->x, c->y, c->B, c->T, &rc);
}

static void test_masked_loss(void) {
    mqar_cfg_t cfg = {11, 8, 2};  // V 11 (the fixture's), N 8 = ctx, D 2: two answers per row
    masked_t *c = xcalloc(1, sizeof *c);
    c->B = 2;
    c->T = 8;
    if (fixture_model(&c->m, "softmax/mlp", 11, 8, 2, 8, 0.3f, 3)) abort();
    model_alloc_acts(&c->m, c->B, c->T, 0.0f);
    rng_t r;
    rng_seed(&r, 5);
    mqar_batch(&cfg, &r, c->B, c->x, c->y);
    TEST_CASE("masked loss = mean of the scored positions' losses") {
        int32_t full[16];
        for (int i = 0; i < 16; i++) full[i] = c->y[i] >= 0 ? c->y[i] : c->x[(i + 1) % 16];
        run_ctx_t rc = {.training = 0};
        model_forward(&c->m, c->x, full, c->B, c->T, &rc);
        double sum = 0;
        int n = 0;
        for (int i = 0; i < 16; i++)
            if (c->y[i] >= 0) sum += c->m.losses[i], n++;
        EXPECT(n == 4);
        double masked = masked_loss(c);
        EXPECT_MSG(fabs(masked - sum / n) < 1e-6, "masked %.9g, mean of scored %.9g", masked, sum / n);
        EXPECT(c->m.last_scored == 4);
    }
    TEST_CASE("masked loss: finite-difference gradient of every tensor (only answer positions send gradient)") {
        params_zero_grad(&c->m.params);
        run_ctx_t rc = {.training = 0};
        model_forward(&c->m, c->x, c->y, c->B, c->T, &rc);
        model_backward(&c->m, 1.0f, &rc);
        double worst = fixture_fd_all_params(&c->m, masked_loss, c);
        EXPECT_MSG(worst <= 1.0, "worst ratio %.3f", worst);
    }
    TEST_CASE("no scored target: loss 0 and no gradient") {
        int32_t none[16];
        for (int i = 0; i < 16; i++) none[i] = MODEL_NO_TARGET;
        params_zero_grad(&c->m.params);
        run_ctx_t rc = {.training = 0};
        float loss = model_forward(&c->m, c->x, none, c->B, c->T, &rc);
        model_backward(&c->m, 1.0f, &rc);
        EXPECT(loss == 0.0f);
        double g = 0;
        for (int i = 0; i < c->m.params.count; i++)
            for (size_t j = 0; j < c->m.params.items[i]->numel; j++) g += fabs(c->m.params.items[i]->grad[j]);
        EXPECT_MSG(g == 0.0, "sum |grad| %.3g", g);
    }
    model_free(&c->m);
    free(c);
}

// ---------------------------------------------------------------------------------------------
// accuracy counting

static void test_count(void) {
    TEST_CASE("accuracy counts argmax == target over the scored targets only") {
        enum { V = 4 };
        const float probs[5 * V] = {
            0.1f, 0.2f, 0.6f, 0.1f,   // argmax 2, target 2: correct
            0.9f, 0.0f, 0.1f, 0.0f,   // not scored (its argmax 0 would match nothing)
            0.1f, 0.5f, 0.2f, 0.2f,   // argmax 1, target 0: wrong
            0.25f, 0.25f, 0.25f, 0.25f,  // a tie: the lowest id (0) is the prediction, target 3: wrong
            0.3f, 0.3f, 0.2f, 0.2f,   // tie between 0 and 1, target 0: correct
        };
        const float losses[5] = {0.5f, 7.0f, 1.5f, 1.3f, 1.2f};
        const int32_t y[5] = {2, MQAR_NO_TARGET, 0, 3, 0};
        mqar_score_t s = {0};
        mqar_count(probs, losses, y, 5, V, &s);
        EXPECT_MSG(s.answers == 4 && s.correct == 2, "answers %ld correct %ld", s.answers, s.correct);
        EXPECT(fabs(mqar_accuracy(&s) - 0.5) < 1e-12);
        EXPECT(fabs(mqar_loss(&s) - (0.5 + 1.5 + 1.3 + 1.2) / 4) < 1e-6);
        mqar_score_t empty = {0};
        EXPECT(mqar_accuracy(&empty) == 0.0 && mqar_loss(&empty) == 0.0);
    }
}

// ---------------------------------------------------------------------------------------------
// the raw-id tokenizer

static void test_raw_tokenizer(void) {
    TEST_CASE("raw tokenizer: JSON round trip, refuses text, is no --tokenizer choice") {
        tokenizer_t t, u;
        tok_init_raw(&t, 512);
        EXPECT(t.kind == TOK_RAW && t.vocab_size == 512 && !tok_is_text(&t));
        char *json = tok_to_json(&t), err[256];
        EXPECT(strcmp(json, "{\"kind\":\"raw\",\"vocab\":512}") == 0);
        EXPECT(tok_from_json(&u, json, err, sizeof err) == 0 && u.kind == TOK_RAW && u.vocab_size == 512);
        free(json);
        int32_t *ids = NULL;
        size_t n = 1;
        EXPECT(tok_encode(&u, (const uint8_t *)"ab", 2, &ids, &n, "prompt", err, sizeof err) == -1 && !ids && n == 0);
        EXPECT_MSG(strstr(err, "prompt: the raw-id tokenizer") != NULL, "%s", err);
        tok_kind_t k;
        EXPECT(tok_kind_parse("raw", &k) == -1);
        EXPECT(strcmp(tok_kind_name(TOK_RAW), "raw") == 0);
        tok_free(&t);
        tok_free(&u);
        tokenizer_t byte;
        tok_init_byte(&byte);
        EXPECT(tok_is_text(&byte));
        const char *bad[] = {"{\"kind\":\"raw\"}", "{\"kind\":\"raw\",\"vocab\":0}", "{\"kind\":\"raw\",\"vocab\":2.5}",
                             "{\"kind\":\"raw\",\"vocab\":4194304}", "{\"kind\":\"raw\",\"vocab\":4,\"codepoints\":[65]}",
                             "{\"kind\":\"byte\",\"vocab\":256}", "{\"kind\":\"raw\",\"vocab\":\"8\"}"};
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            int rc = tok_from_json(&u, bad[i], err, sizeof err);
            EXPECT_MSG(rc == -1 && err[0], "accepted %s", bad[i]);
            if (rc == 0) tok_free(&u);
        }
    }
}

int main(void) {
    omp_set_num_threads(1);  // finite differences on a busy 2-core machine: one thread (test_kinds.c says why)
    test_generator();
    test_check();
    test_masked_loss();
    test_count();
    test_raw_tokenizer();
    return test_main_end();
}
