// test_mqar_mix.c — the MQAR training mixture (data/mqar_mix.h, docs/mqar.md "Training on a mixture"):
// parsing and its refusals, each row one setting's sequence (the same tokens mqar_generate gives from
// the same random stream) padded with the filler and unscored targets, the settings drawn in proportion
// to their weights, and determinism by the stream.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/mqar_mix.h"
#include "tests/testlib.h"

static void expect_mix_refused(const char *text, int vocab, int ctx, const char *needle) {
    mqar_mix_t mix;
    char err[512] = "";
    int rc = mqar_mix_parse(text, vocab, ctx, &mix, err, sizeof err);
    EXPECT_MSG(rc == -1 && strstr(err, needle), "'%s' (V %d, ctx %d): rc %d, message '%s' lacks '%s'", text, vocab, ctx, rc,
               err, needle);
}

static void test_parse(void) {
    TEST_CASE("parse: settings, default weight 1, total") {
        mqar_mix_t mix;
        char err[512];
        EXPECT_MSG(mqar_mix_parse("64:4:5,128:8,256:16", 512, 256, &mix, err, sizeof err) == 0, "%s", err);
        EXPECT(mix.n == 3 && mix.total == 7);
        EXPECT(mix.cfg[0].len == 64 && mix.cfg[0].pairs == 4 && mix.weight[0] == 5 && mix.cfg[0].vocab == 512);
        EXPECT(mix.cfg[1].len == 128 && mix.cfg[1].pairs == 8 && mix.weight[1] == 1);
        EXPECT(mix.cfg[2].len == 256 && mix.cfg[2].pairs == 16 && mix.weight[2] == 1);
    }
    TEST_CASE("parse: each problem named in one line") {
        expect_mix_refused("", 512, 256, "setting 1 is not LEN:PAIRS[:WEIGHT]");
        expect_mix_refused("64", 512, 256, "setting 1 is not LEN:PAIRS");
        expect_mix_refused("64:4,", 512, 256, "setting 2 is not LEN:PAIRS");
        expect_mix_refused("64:4;128:8", 512, 256, "separated by ','");
        expect_mix_refused("64:-4", 512, 256, "setting 1 is not");
        expect_mix_refused("64:4:0", 512, 256, "weight is not an integer in [1, 1000000]");
        expect_mix_refused("64:4:x", 512, 256, "weight is not an integer");
        expect_mix_refused("64:4,64:17", 512, 256, "setting 2: mqar: 17 pairs do not fit in length 64");
        expect_mix_refused("64:4,512:16", 512, 256, "setting 2's length 512 is longer than --mqar-len 256");
        expect_mix_refused("256:40", 64, 256, "vocabulary 64 is too small");
        expect_mix_refused("99999999999999999999:4", 512, 256, "setting 1 is not");
        char many[256] = "";
        for (int i = 0; i < MQAR_MIX_MAX + 1; i++) strcat(many, i ? ",8:2" : "8:2");
        expect_mix_refused(many, 512, 256, "more than 16 settings");
    }
}

static void test_batch(void) {
    enum { B = 600, CTX = 64 };
    mqar_mix_t mix;
    char err[512];
    int ok = mqar_mix_parse("16:2:3,64:16:1,32:4:2", 256, CTX, &mix, err, sizeof err) == 0;
    EXPECT_MSG(ok, "%s", err);
    if (!ok) return;
    int32_t *x = malloc(sizeof(int32_t) * B * CTX), *y = malloc(sizeof(int32_t) * B * CTX);
    int32_t seq[CTX], tgt[CTX];
    rng_t r, replay;
    rng_seed(&r, 7);
    replay = r;
    mqar_mix_batch(&mix, CTX, &r, B, x, y);
    TEST_CASE("each row: a drawn setting's sequence from the same stream, then filler and unscored targets") {
        int bad = 0, count[3] = {0};
        for (int b = 0; b < B && bad < 5; b++) {
            // Replay the draw: one rng_below(total) picks the setting, mqar_generate continues the stream.
            long u = (long)rng_below(&replay, (uint64_t)mix.total);
            int i = 0;
            while (u >= mix.weight[i]) u -= mix.weight[i++];
            count[i]++;
            const mqar_cfg_t *c = &mix.cfg[i];
            mqar_generate(c, &replay, seq, tgt);
            const int32_t *xb = x + (size_t)b * CTX, *yb = y + (size_t)b * CTX;
            if (memcmp(xb, seq, sizeof(int32_t) * c->len) || memcmp(yb, tgt, sizeof(int32_t) * c->len)) {
                EXPECT_MSG(0, "row %d: not the sequence of setting %d from the stream", b, i);
                bad++;
            }
            for (int t = c->len; t < CTX; t++)
                if (xb[t] != 0 || yb[t] != MQAR_NO_TARGET) {
                    EXPECT_MSG(0, "row %d (length %d): position %d is %d / target %d, not filler / unscored", b, c->len, t, xb[t], yb[t]);
                    bad++;
                    break;
                }
            if (mqar_count_targets(yb, CTX) != c->pairs) {
                EXPECT_MSG(0, "row %d: %d scored targets, not the setting's %d pairs", b, mqar_count_targets(yb, CTX), c->pairs);
                bad++;
            }
        }
        // Weights 3 : 1 : 2 over 600 rows: expected 300, 100, 200; a binomial's 5 sigma is at most 61.
        double expect[3] = {300, 100, 200};
        for (int i = 0; i < 3; i++)
            EXPECT_MSG(fabs(count[i] - expect[i]) < 5 * sqrt(expect[i] * (1 - expect[i] / B)), "setting %d drawn %d times of %d, expected %.0f",
                       i, count[i], B, expect[i]);
    }
    TEST_CASE("the same stream gives the same batch; another seed another one") {
        int32_t *x2 = malloc(sizeof(int32_t) * B * CTX), *y2 = malloc(sizeof(int32_t) * B * CTX);
        rng_seed(&r, 7);
        mqar_mix_batch(&mix, CTX, &r, B, x2, y2);
        EXPECT(memcmp(x, x2, sizeof(int32_t) * B * CTX) == 0 && memcmp(y, y2, sizeof(int32_t) * B * CTX) == 0);
        rng_seed(&r, 8);
        mqar_mix_batch(&mix, CTX, &r, B, x2, y2);
        EXPECT(memcmp(x, x2, sizeof(int32_t) * B * CTX) != 0);
        free(x2);
        free(y2);
    }
    free(x);
    free(y);
}

int main(void) {
    test_parse();
    test_batch();
    return test_main_end();
}
