// test_eval.c — cli/eval.c's evaluation by plan against independent references: windows mode (and
// eval_sequence, and stride = ctx) gives the sums of dataset.h's windows batched as before, exactly; stride mode gives, target by target, the loss of the window the
// contract names (docs/long_context.md, "Evaluation modes": the first window where the target is among
// the last S of its ctx targets; window 0 scores all), each run alone; the by-position buckets
// partition the scored targets; and eval_model_at_ctx (--ctx longer than trained).
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/eval.h"
#include "data/dataset.h"
#include "tests/fixture.h"
#include "tests/testlib.h"

enum { V = 256, CTX = 8, N_TOK = 61, BATCH = 3 };
static const char *SPEC = "softmax/mlp,adaptive(span=6,ramp=2)/mlp";

// The window of target j (1 ≤ j < n) by the contract's words, found by walking the windows in order:
// window w starts at w·S and nominally holds targets w·S+1 … w·S+ctx; the target is scored in window 0
// if j ≤ ctx, else in the first window whose last S nominal targets hold it.
static size_t contract_start(size_t j, int ctx, int S) {
    for (size_t start = 0;; start += (size_t)S) {
        size_t last = start + (size_t)ctx;
        if (start == 0 && j <= last) return 0;
        if (j <= last && j > last - (size_t)S) return start;
    }
}

// Mean loss of every target, each from a forward of its own window alone (B = 1); visible context
// of each scored target goes to bk.
static double reference_stride(model_t *m, const tokenizer_t *tok, const int32_t *t, size_t n, int ctx, int S,
                               eval_buckets_t *bk, size_t *min_context_after_first) {
    run_ctx_t rc = {.training = 0};
    double nats = 0;
    *min_context_after_first = (size_t)-1;
    eval_buckets_clear(bk);
    for (size_t j = 1; j < n; j++) {
        size_t start = contract_start(j, ctx, S);
        int len = n - 1 - start < (size_t)ctx ? (int)(n - 1 - start) : ctx;
        int i = (int)(j - 1 - start);  // input position that predicts target j
        CHECK(i >= 0 && i < len);
        model_forward(m, t + start, t + start + 1, 1, len, &rc);
        nats += m->losses[i];
        eval_buckets_add(bk, i + 1, m->losses[i], tok_token_bytes(tok, t[j]));
        if (start > 0 && (size_t)i < *min_context_after_first) *min_context_after_first = (size_t)i;
    }
    return nats / (double)(n - 1);
}

// Windows mode as eval_sequence computed it before it ran through eval_run_plan: dataset.h's windows,
// up to B full ones per forward, the shorter last alone, every position summed by eval_accumulate.
static void reference_windows(model_t *m, const tokenizer_t *tok, const int32_t *t, size_t n, eval_sums_t *out) {
    int ctx = m->dims.ctx, B = m->max_B;
    int32_t x[BATCH * CTX], y[BATCH * CTX];
    run_ctx_t rc = {.training = 0};
    memset(out, 0, sizeof *out);
    size_t W = eval_num_windows(n, ctx), w = 0;
    while (w < W) {
        int b = 0, len = ctx;
        while (b < B && w < W) {
            len = eval_window(t, n, ctx, w, x + (size_t)b * ctx, y + (size_t)b * ctx);
            if (len < ctx) break;
            b++;
            w++;
        }
        if (b > 0) {
            model_forward(m, x, y, b, ctx, &rc);
            eval_accumulate(m, tok, y, b, ctx, out);
        } else {  // the short last window, alone
            eval_window(t, n, ctx, w++, x, y);
            model_forward(m, x, y, 1, len, &rc);
            eval_accumulate(m, tok, y, 1, len, out);
        }
    }
}

static void test_windows_equals_reference(void) {
    size_t lens[] = {N_TOK, 2 * CTX + 1, 4, 2};  // a short last window; full windows only; one short; one target
    for (int li = 0; li < 4; li++) {
        char name[96];
        snprintf(name, sizeof name, "%zu tokens: windows plan, eval_sequence, stride=ctx == dataset.h windows, exactly",
                 lens[li]);
        TEST_CASE(name) {
            model_t m;
            tokenizer_t tok;
            tok_init_byte(&tok);
            CHECK(fixture_model(&m, SPEC, V, 8, 2, CTX, 0.3f, 11) == 0);
            model_alloc_acts(&m, BATCH, CTX, 0.0f);
            int32_t t[N_TOK];
            fixture_tokens(t, N_TOK, V, 5);
            size_t n = lens[li];
            eval_sums_t ref, a, b;
            reference_windows(&m, &tok, t, n, &ref);
            eval_sequence(&m, &tok, t, n, &a);
            EXPECT_MSG(a.nats == ref.nats, "eval_sequence nats %.17g vs reference %.17g", a.nats, ref.nats);
            EXPECT(a.tokens == ref.tokens && a.tokens == n - 1 && a.bytes == ref.bytes);
            eval_plan_t p;
            char err[256];
            EXPECT(eval_plan_init(&p, EVAL_STRIDE, n, CTX, CTX, 0, err, sizeof err) == 0);
            eval_run_plan(&m, &tok, t, &p, &b, NULL);
            EXPECT_MSG(b.nats == ref.nats, "stride=ctx nats %.17g vs reference %.17g", b.nats, ref.nats);
            EXPECT(b.tokens == ref.tokens);
            model_free(&m);
            tok_free(&tok);
        }
    }
}

static void test_stride_against_contract(void) {
    model_t m;
    tokenizer_t tok;
    tok_init_byte(&tok);
    CHECK(fixture_model(&m, SPEC, V, 8, 2, CTX, 0.3f, 12) == 0);
    model_alloc_acts(&m, BATCH, CTX, 0.0f);
    int32_t t[N_TOK];
    fixture_tokens(t, N_TOK, V, 6);
    int strides[] = {1, 3, 5, CTX};
    size_t lens[] = {N_TOK, 14, CTX + 1, 5};  // several windows; two windows (the second cut); one; one cut
    for (int si = 0; si < 4; si++) {
        for (int li = 0; li < 4; li++) {
            int S = strides[si];
            size_t n = lens[li];
            char name[96];
            snprintf(name, sizeof name, "stride %d, %zu tokens: each target's loss from the contract's window", S, n);
            TEST_CASE(name) {
                eval_plan_t p;
                char err[256];
                EXPECT(eval_plan_init(&p, EVAL_STRIDE, n, CTX, S, 0, err, sizeof err) == 0);
                eval_sums_t s;
                eval_buckets_t bk, ref_bk;
                eval_run_plan(&m, &tok, t, &p, &s, &bk);
                size_t min_ctx;
                double ref = reference_stride(&m, &tok, t, n, CTX, S, &ref_bk, &min_ctx);
                EXPECT(s.tokens == n - 1 && s.bytes == n - 1);
                EXPECT_MSG(fabs(eval_loss(&s) - ref) <= 1e-6, "loss %.9f, reference %.9f", eval_loss(&s), ref);
                // every target after window 0 sees at least ctx − S tokens before its input token
                if (n - 1 > CTX) EXPECT_MSG(min_ctx >= (size_t)(CTX - S), "min context %zu < ctx-S", min_ctx);
                // the buckets: same counts as the reference's, summing to the scored targets and loss
                size_t tok_sum = 0;
                double nats_sum = 0;
                EXPECT(bk.n_buckets == ref_bk.n_buckets);
                for (int b = 0; b < bk.n_buckets; b++) {
                    EXPECT_MSG(bk.tokens[b] == ref_bk.tokens[b], "bucket %d: %zu targets, reference %zu", b,
                               bk.tokens[b], ref_bk.tokens[b]);
                    EXPECT(fabs(bk.nats[b] - ref_bk.nats[b]) <= 1e-5 * (1 + ref_bk.tokens[b]));
                    tok_sum += bk.tokens[b];
                    nats_sum += bk.nats[b];
                }
                EXPECT(tok_sum == s.tokens);
                EXPECT_MSG(fabs(nats_sum - s.nats) <= 1e-9 * s.nats, "bucket nats %.12g, total %.12g", nats_sum, s.nats);
            }
        }
    }
    model_free(&m);
    tok_free(&tok);
}

static void test_model_at_ctx(void) {
    TEST_CASE("--ctx longer than trained: refused for learned positions, the table named") {
        model_t m, w;
        CHECK(fixture_model(&m, SPEC, V, 8, 2, CTX, 0.3f, 13) == 0);
        char err[512] = "";
        EXPECT(eval_model_at_ctx(&w, &m, 2 * CTX, err, sizeof err) == -1);
        EXPECT_MSG(strstr(err, "learned positions") && strstr(err, "table of 8 rows"), "message: %s", err);
        model_free(&m);
    }
}

// rope and none: the same weights at a longer window. Windows of the trained length give the trained
// model's losses exactly; longer windows give finite losses. While model.c registers wpe for every
// scheme (before rope-core), the rebuild is refused naming wpe instead.
// Returns 0 if checked, 1 if the example does not take this scheme (an odd rope width, refused by design).
static int check_model_at_ctx(const char *spec, pos_scheme_t pos) {
    model_dims_t d = {.vocab = V, .dim = 8, .heads = 2, .ctx = CTX, .pos = pos};
    model_t m, w;
    char err[512] = "";
    if (model_build(&m, &d, spec, err, sizeof err)) {
        if (pos == POS_ROPE && strstr(err, "--pos rope needs an even")) return 1;
        printf("  %s: %s\n", spec, err);
        tl_case_failed = 1;
        return 0;
    }
    rng_t r;
    rng_seed(&r, 14);
    model_init_weights(&m, &r);
    // every tensor away from its init (zero biases, unit LayerNorms), so a tensor not copied shows
    for (int i = 0; i < m.params.count; i++)
        for (size_t j = 0; j < m.params.items[i]->numel; j++) m.params.items[i]->data[j] += 0.1f * rng_normal(&r);
    int rc = eval_model_at_ctx(&w, &m, 2 * CTX, err, sizeof err);
    if (params_find(&m.params, "wpe")) {
        EXPECT_MSG(rc == -1 && strstr(err, "'wpe'"), "rc %d, message: %s", rc, err);
        model_free(&m);
        return 0;
    }
    EXPECT_MSG(rc == 0, "%s", err);
    if (rc) {
        model_free(&m);
        return 0;
    }
    EXPECT(w.dims.ctx == 2 * CTX && w.dims.pos == pos);
    model_alloc_acts(&m, BATCH, CTX, 0.0f);
    model_alloc_acts(&w, BATCH, 2 * CTX, 0.0f);
    tokenizer_t tok;
    tok_init_byte(&tok);
    int32_t t[N_TOK];
    fixture_tokens(t, N_TOK, V, 7);
    eval_plan_t p;
    eval_sums_t a, b;
    EXPECT(eval_plan_init(&p, EVAL_WINDOWS, N_TOK, CTX, 0, 0, err, sizeof err) == 0);
    eval_run_plan(&m, &tok, t, &p, &a, NULL);
    eval_run_plan(&w, &tok, t, &p, &b, NULL);
    EXPECT_MSG(a.nats == b.nats, "%s: nats %.17g vs %.17g", spec, a.nats, b.nats);
    EXPECT(eval_plan_init(&p, EVAL_STRIDE, N_TOK, 2 * CTX, 4, 0, err, sizeof err) == 0);
    eval_run_plan(&w, &tok, t, &p, &b, NULL);
    EXPECT_MSG(b.tokens == N_TOK - 1 && isfinite(b.nats), "%s: at 2*ctx %zu targets, %g nats", spec, b.tokens, b.nats);
    tok_free(&tok);
    model_free(&w);
    model_free(&m);
    return 0;
}

// Every registered kind's examples (a mixer's under its default ffn, an ffn's under softmax).
static void test_model_at_ctx_tableless(void) {
    const char *names[] = {"none", "rope"};
    pos_scheme_t schemes[] = {POS_NONE, POS_ROPE};
    for (int s = 0; s < 2; s++) {
        char name[96];
        snprintf(name, sizeof name, "--ctx 2*ctx, pos %s, every kind: same losses at ctx, finite at 2*ctx", names[s]);
        TEST_CASE(name) {
            int checked = 0, refused = 0;
            for (int k = 0; k < block_kind_count(); k++) {
                const block_ops_t *ops = block_kind_at(k);
                for (int e = 0; ops->examples && ops->examples[e]; e++) {
                    char spec[256];
                    if (ops->role == ROLE_MIXER) snprintf(spec, sizeof spec, "%s", ops->examples[e]);
                    else snprintf(spec, sizeof spec, "softmax/%s", ops->examples[e]);
                    if (check_model_at_ctx(spec, schemes[s])) refused++;
                    else checked++;
                }
            }
            printf("  %d examples checked, %d refuse this scheme (odd rope width)\n", checked, refused);
            EXPECT(checked >= block_kind_count());
        }
    }
}

int main(void) {
    test_windows_equals_reference();
    test_stride_against_contract();
    test_model_at_ctx();
    test_model_at_ctx_tableless();
    return test_main_end();
}
