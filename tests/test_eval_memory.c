// test_eval_memory.c — segment memory outside the blocks: memory-mode evaluation (cli/eval.c) and
// generation without sliding (cli/sampler.h gen_feed), against references that do not use the memory
// code path they check (docs/long_context.md, "Segment memory" and "Evaluation modes on a memory model").
//  - One layer of rope softmax: a layer's memory holds its input x̂ = LN(embedding), which depends on
//    the token alone, so memory mode's loss at segment position i equals the memory-free forward over
//    the window of exactly its visible tokens (the min(start, M) before the segment and the segment up
//    to i) — rope scores depend on position differences only (float rounding aside: 1e-4).
//  - Memory M ≥ the text: memory mode equals one window over the whole text (the --ctx-wide model).
//  - Memory mode with M = 0 is windows mode, bit for bit.
//  - gen_feed on a memory model never slides: its logits over 3·ctx+5 tokens equal the segment-wise
//    forward with memory (a model that slid would re-feed at position ctx and differ from there on).
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/eval.h"
#include "cli/sampler.h"
#include "tests/fixture.h"
#include "tests/testlib.h"

enum { V = 256, C = 8, H = 2, CTX = 8, N_TOK = 53 };

// A rope model of spec with segment memory M (0: none), activations for B rows of ctx.
static int memory_model(model_t *m, const char *spec, int ctx, int M, int B, uint64_t seed) {
    fixture_pos_scheme = POS_ROPE;
    int rc = fixture_model(m, spec, V, C, H, ctx, 0.3f, seed);
    fixture_pos_scheme = POS_LEARNED;
    if (rc) return -1;
    char err[512];
    if (M && model_set_memory(m, M, err, sizeof err)) {
        printf("  model_set_memory(%d): %s\n", M, err);
        model_free(m);
        return -1;
    }
    model_alloc_acts(m, B, ctx, 0.0f);
    return 0;
}

// Memory mode of a 1-layer model against the window of each target's visible tokens (see the top).
static void test_memory_mode_against_windows(void) {
    const int Ms[] = {CTX, 3 * CTX, 13, 100};
    for (int mi = 0; mi < 4; mi++) {
        int M = Ms[mi];
        char name[128];
        snprintf(name, sizeof name, "memory mode M %d, one rope softmax layer: each loss equals its visible window's", M);
        TEST_CASE(name) {
            model_t m, wide;
            tokenizer_t tok;
            tok_init_byte(&tok);
            if (memory_model(&m, "softmax/mlp", CTX, M, 1, 21)) {
                tl_case_failed = 1;
                break;
            }
            char err[512];
            int wide_ctx = M + CTX;  // the same weights, memory-free, with room for M + ctx positions
            CHECK(eval_model_at_ctx(&wide, &m, wide_ctx, err, sizeof err) == 0);
            CHECK(model_set_memory(&wide, 0, err, sizeof err) == 0);
            model_alloc_acts(&wide, 1, wide_ctx, 0.0f);
            int32_t t[N_TOK];
            fixture_tokens(t, N_TOK, V, 9);
            eval_plan_t p;
            EXPECT(eval_plan_init(&p, EVAL_MEMORY, N_TOK, CTX, 0, M, err, sizeof err) == 0);
            eval_sums_t s;
            eval_buckets_t bk, ref_bk;
            eval_run_plan(&m, &tok, t, &p, &s, &bk);
            // reference: target j+1 (input index j = start + i) from the window t[start − min(start, M), j]
            eval_buckets_clear(&ref_bk);
            run_ctx_t rc = {.training = 0};
            double ref = 0, worst = 0;
            for (size_t j = 0; j + 1 < N_TOK; j++) {
                size_t start = j / CTX * CTX, i = j - start, mem = start < (size_t)M ? start : (size_t)M;
                size_t lo = start - mem;
                int len = (int)(j + 1 - lo);
                model_forward(&wide, t + lo, t + lo + 1, 1, len, &rc);
                double l = wide.losses[len - 1];
                ref += l;
                eval_buckets_add(&ref_bk, (long)(mem + i + 1), l, 1);
            }
            for (int b = 0; b < EVAL_MAX_BUCKETS; b++) {
                EXPECT_MSG(bk.tokens[b] == ref_bk.tokens[b], "bucket %d: %zu targets, reference %zu", b, bk.tokens[b],
                           ref_bk.tokens[b]);
                double d = fabs(bk.nats[b] - ref_bk.nats[b]) / (1e-6 + fabs(ref_bk.nats[b]));
                worst = d > worst ? d : worst;
            }
            EXPECT(s.tokens == N_TOK - 1 && s.bytes == N_TOK - 1);
            EXPECT_MSG(fabs(s.nats - ref) <= 1e-4 * fabs(ref), "memory mode %.9g nats, visible windows %.9g", s.nats, ref);
            EXPECT_MSG(worst <= 1e-4, "a bucket's nats differ by %.3g relative", worst);
            model_free(&wide);
            model_free(&m);
            tok_free(&tok);
        }
    }
}

// Two layers (the memory of layer 1 holds states that saw earlier context): M ≥ the text equals one
// window over it; M = 0 is windows mode exactly.
static void test_memory_mode_limits(void) {
    TEST_CASE("memory mode, two rope softmax layers: M >= text == one window; M = 0 == windows mode exactly") {
        model_t m, one, free_m;
        tokenizer_t tok;
        tok_init_byte(&tok);
        const char *spec = "2*softmax/mlp";
        int M = 64;  // > N_TOK
        CHECK(memory_model(&m, spec, CTX, M, 1, 31) == 0);
        char err[512];
        CHECK(eval_model_at_ctx(&one, &m, N_TOK, err, sizeof err) == 0);
        CHECK(model_set_memory(&one, 0, err, sizeof err) == 0);
        model_alloc_acts(&one, 1, N_TOK, 0.0f);
        int32_t t[N_TOK];
        fixture_tokens(t, N_TOK, V, 10);
        eval_plan_t p;
        eval_sums_t s, ref;
        EXPECT(eval_plan_init(&p, EVAL_MEMORY, N_TOK, CTX, 0, M, err, sizeof err) == 0);
        eval_run_plan(&m, &tok, t, &p, &s, NULL);
        EXPECT(eval_plan_init(&p, EVAL_WINDOWS, N_TOK, N_TOK, 0, 0, err, sizeof err) == 0 && eval_plan_num_windows(&p) == 1);
        eval_run_plan(&one, &tok, t, &p, &ref, NULL);
        EXPECT_MSG(s.tokens == ref.tokens && fabs(s.nats - ref.nats) <= 1e-4 * fabs(ref.nats),
                   "memory mode %.9g nats (%zu), one window %.9g (%zu)", s.nats, s.tokens, ref.nats, ref.tokens);
        // M = 0: the same windows as windows mode, every one empty, in the batched path
        CHECK(memory_model(&free_m, spec, CTX, 0, 3, 31) == 0);
        eval_sums_t a, b;
        EXPECT(eval_plan_init(&p, EVAL_MEMORY, N_TOK, CTX, 0, 0, err, sizeof err) == 0);
        eval_run_plan(&free_m, &tok, t, &p, &a, NULL);
        EXPECT(eval_plan_init(&p, EVAL_WINDOWS, N_TOK, CTX, 0, 0, err, sizeof err) == 0);
        eval_run_plan(&free_m, &tok, t, &p, &b, NULL);
        EXPECT_MSG(a.nats == b.nats && a.tokens == b.tokens, "M 0: %.17g vs windows %.17g", a.nats, b.nats);
        model_free(&free_m);
        model_free(&one);
        model_free(&m);
        tok_free(&tok);
    }
}

// gen_feed's logits against the segment-wise forward with memory (B = 1, segments of ctx).
static void test_generation_does_not_slide(void) {
    TEST_CASE("gen_feed with memory: streams past ctx, logits == segment-wise forward over 3*ctx+5 tokens") {
        model_t m;
        const int M = 2 * CTX, n = 3 * CTX + 5;
        CHECK(memory_model(&m, "2*softmax/mlp", CTX, M, 1, 41) == 0);
        EXPECT(gen_model_streams(&m));
        int32_t t[3 * CTX + 5];
        fixture_tokens(t, (size_t)n, V, 11);
        float *ref = xmalloc((size_t)n * V * sizeof *ref);
        seg_mem_t mem;
        model_mem_init(&mem, &m, 1);
        run_ctx_t rc = {.training = 0, .mem = &mem};
        for (int start = 0; start < n; start += CTX) {
            int len = n - start < CTX ? n - start : CTX;
            model_forward(&m, t + start, NULL, 1, len, &rc);
            memcpy(ref + (size_t)start * V, m.probs, (size_t)len * V * sizeof *ref);
        }
        model_mem_free(&mem);
        decode_state_t ds;
        decode_init(&ds, &m);
        gen_feed_t g;
        gen_feed_init(&g, &m);
        double scale = 0, worst = 0;  // |decoded − forward| / (1e-4·max|logit| + 1e-4·|logit|), as fixture_mem.h
        for (size_t k = 0; k < (size_t)n * V; k++) scale = fabs(ref[k]) > scale ? fabs(ref[k]) : scale;
        int worst_at = -1;
        for (int i = 0; i < n; i++) {
            const float *logits = gen_feed(&g, &m, &ds, t[i]);
            for (int v = 0; v < V; v++) {
                double r = ref[(size_t)i * V + v], d = fabs(logits[v] - r) / (1e-4 * scale + 1e-4 * fabs(r));
                if (d > worst) worst = d, worst_at = i;
            }
        }
        EXPECT_MSG(worst <= 1, "logits differ by %.3g of the tolerance at position %d", worst, worst_at);
        gen_feed_free(&g);
        decode_free(&ds);
        free(ref);
        model_free(&m);
    }
}

int main(void) {
    test_memory_mode_against_windows();
    test_memory_mode_limits();
    test_generation_does_not_slide();
    return test_main_end();
}
