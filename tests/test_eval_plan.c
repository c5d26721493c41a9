// test_eval_plan.c — evaluation plans (data/eval_plan.h): every target scored exactly once in
// windows, stride and memory modes over many (n, ctx, S), against a definition written
// independently here; stride S = ctx equals today's windows (data/dataset.h); the minimum context
// after the first window; memory mode's visible context; bucket boundaries and accumulation.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "data/eval_plan.h"
#include "tests/testlib.h"

static eval_plan_t plan(eval_mode_t mode, size_t n, int ctx, int S, int M) {
    eval_plan_t p;
    char err[160];
    if (eval_plan_init(&p, mode, n, ctx, S, M, err, sizeof err)) {
        printf("  eval_plan_init(n %zu, ctx %d, S %d, M %d): %s\n", n, ctx, S, M, err);
        exit(1);
    }
    return p;
}

// The window that scores target tau (1 ≤ tau ≤ n−1) by LONG_CONTEXT.md §3's words: the first window
// where it is among the last S targets of the window's full extent (start + ctx − S, start + ctx],
// window 0 scoring all of (0, ctx].
static size_t scoring_window(size_t tau, int ctx, int S) {
    if (tau <= (size_t)ctx) return 0;
    for (size_t w = 1;; w++)
        if (tau > w * S + ctx - S && tau <= w * S + ctx) return w;
}

// Check one plan against the definition; returns 1 if everything holds (messages for the first problem).
static int check_plan(const eval_plan_t *p, unsigned char *count) {
    size_t n = p->n, W = eval_plan_num_windows(p);
    int ctx = p->ctx, S = p->stride;
    memset(count, 0, n);
    for (size_t w = 0; w < W; w++) {
        eval_window_t win = eval_plan_window(p, w);
        int ok = win.start == w * (size_t)S && win.len >= 1 && win.len <= ctx && win.start + win.len <= n - 1 &&
                 (win.len == ctx || w == W - 1) && win.first_scored >= 0 && win.first_scored < win.len &&
                 win.first_scored == (w == 0 ? 0 : ctx - S);
        if (w == W - 1) ok &= win.start + win.len == n - 1;           // the last window reaches the end
        if (w + 1 < W) ok &= win.start + (size_t)ctx < n - 1;          // and no earlier one does
        if (p->mode == EVAL_MEMORY) {
            ok &= win.fresh == (w == 0 || p->memory == 0);
        } else {
            ok &= win.fresh == 1 && win.memory == 0;
        }
        if (!ok) {
            printf("  n %zu ctx %d S %d M %d: window %zu/%zu bad (start %zu len %d first %d mem %d fresh %d)\n", n, ctx,
                   S, p->memory, w, W, win.start, win.len, win.first_scored, win.memory, win.fresh);
            return 0;
        }
        for (int i = win.first_scored; i < win.len; i++) {
            size_t tau = win.start + (size_t)i + 1, j = win.start + (size_t)i;
            count[tau]++;
            long visible = eval_visible(&win, i), want_visible;
            if (p->mode == EVAL_MEMORY) {
                size_t m = j < (size_t)p->memory + (size_t)i ? j : (size_t)p->memory + (size_t)i;  // min(j, M+i)
                want_visible = (long)m + 1;
            } else {
                want_visible = i + 1;
            }
            int bad = visible != want_visible || (p->mode == EVAL_STRIDE && scoring_window(tau, ctx, S) != w) ||
                      (p->mode == EVAL_STRIDE && w > 0 && visible < ctx - S + 1);
            if (bad) {
                printf("  n %zu ctx %d S %d M %d: target %zu in window %zu: visible %ld (want %ld), definition's window %zu\n",
                       n, ctx, S, p->memory, tau, w, visible, want_visible, scoring_window(tau, ctx, S));
                return 0;
            }
        }
    }
    for (size_t tau = 1; tau < n; tau++)
        if (count[tau] != 1) {
            printf("  n %zu ctx %d S %d M %d: target %zu scored %d times\n", n, ctx, S, p->memory, tau, count[tau]);
            return 0;
        }
    return count[0] == 0;
}

static void test_every_target_once(void) {
    unsigned char *count = malloc(4096);
    TEST_CASE("stride: every target scored exactly once, in the window the definition names, (n, ctx, S) exhaustive") {
        int plans = 0, ok = 1;
        for (size_t n = 2; n <= 90 && ok; n++)
            for (int ctx = 1; ctx <= 24 && ok; ctx++)
                for (int S = 1; S <= ctx && ok; S++, plans++) {
                    eval_plan_t p = plan(EVAL_STRIDE, n, ctx, S, 0);
                    ok = check_plan(&p, count);
                }
        const size_t big_n[] = {1000, 1025, 1089, 4096};
        for (size_t k = 0; k < 4 && ok; k++)
            for (int S = 1; S <= 64 && ok; S += 9, plans++) {
                eval_plan_t p = plan(EVAL_STRIDE, big_n[k], 64, S, 0);
                ok = check_plan(&p, count);
            }
        EXPECT(ok);
        printf("  %d plans checked\n", plans);
    }
    TEST_CASE("stride edge cases: n < ctx+1 is one short window, S = 1, S = ctx, n = 2") {
        eval_plan_t p = plan(EVAL_STRIDE, 10, 64, 16, 0);  // 9 targets < ctx
        EXPECT(eval_plan_num_windows(&p) == 1);
        eval_window_t w = eval_plan_window(&p, 0);
        EXPECT(w.start == 0 && w.len == 9 && w.first_scored == 0);
        p = plan(EVAL_STRIDE, 65, 64, 16, 0);  // exactly ctx+1 tokens: one full window
        EXPECT(eval_plan_num_windows(&p) == 1 && eval_plan_window(&p, 0).len == 64);
        p = plan(EVAL_STRIDE, 66, 64, 16, 0);  // one more target: a second window scoring only it
        EXPECT(eval_plan_num_windows(&p) == 2);
        w = eval_plan_window(&p, 1);
        EXPECT(w.start == 16 && w.len == 49 && w.first_scored == 48);
        p = plan(EVAL_STRIDE, 2, 1, 1, 0);
        EXPECT(eval_plan_num_windows(&p) == 1 && eval_plan_window(&p, 0).len == 1);
        p = plan(EVAL_STRIDE, 100, 8, 1, 0);  // S = 1: one new target per window, 7 tokens before it
        EXPECT(eval_plan_num_windows(&p) == 92);
        w = eval_plan_window(&p, 91);
        EXPECT(w.start == 91 && w.len == 8 && w.first_scored == 7 && eval_visible(&w, 7) == 8);
    }
    TEST_CASE("stride S = ctx and windows mode equal today's eval windows (data/dataset.h)") {
        int ok = 1;
        int32_t tokens[300], x[32], y[32];
        for (int i = 0; i < 300; i++) tokens[i] = i;
        for (size_t n = 2; n <= 300 && ok; n += 7)
            for (int ctx = 1; ctx <= 32 && ok; ctx++) {
                eval_plan_t s = plan(EVAL_STRIDE, n, ctx, ctx, 0), wm = plan(EVAL_WINDOWS, n, ctx, 0, 0);
                size_t W = eval_num_windows(n, ctx);
                ok &= eval_plan_num_windows(&s) == W && eval_plan_num_windows(&wm) == W;
                for (size_t w = 0; w < W && ok; w++) {
                    int len = eval_window(tokens, n, ctx, w, x, y);
                    eval_window_t a = eval_plan_window(&s, w), b = eval_plan_window(&wm, w);
                    ok &= a.len == len && (size_t)x[0] == a.start && a.first_scored == 0 && memcmp(&a, &b, sizeof a) == 0;
                }
                if (!ok) printf("  n %zu ctx %d differs\n", n, ctx);
            }
        EXPECT(ok);
    }
    TEST_CASE("windows and memory modes: every target once; memory sees min(j, M+i)+1; M = 0 and M >= n") {
        int ok = 1;
        for (size_t n = 2; n <= 120 && ok; n++)
            for (int ctx = 1; ctx <= 12 && ok; ctx++) {
                eval_plan_t p = plan(EVAL_WINDOWS, n, ctx, 0, 0);
                ok = check_plan(&p, count);
                const int Ms[] = {0, 1, ctx - 1, ctx, 2 * ctx + 3, 1000};
                for (int k = 0; k < 6 && ok; k++) {
                    p = plan(EVAL_MEMORY, n, ctx, 0, Ms[k]);
                    ok = check_plan(&p, count);
                }
            }
        EXPECT(ok);
        eval_plan_t p = plan(EVAL_MEMORY, 1001, 100, 0, 5000);  // memory longer than the text: one stream
        eval_window_t last = eval_plan_window(&p, eval_plan_num_windows(&p) - 1);
        EXPECT(last.start == 900 && last.memory == 900 && eval_visible(&last, 99) == 1000 && !last.fresh);
        p = plan(EVAL_MEMORY, 1001, 100, 0, 0);  // M = 0: disjoint windows, each fresh
        last = eval_plan_window(&p, 5);
        EXPECT(last.memory == 0 && last.fresh && eval_visible(&last, 0) == 1);
        p = plan(EVAL_MEMORY, 1001, 100, 0, 250);
        EXPECT(eval_plan_window(&p, 1).memory == 100 && eval_plan_window(&p, 3).memory == 250);
    }
    free(count);
    TEST_CASE("bad plans are refused with one line") {
        eval_plan_t p;
        char err[160];
        EXPECT(eval_plan_init(&p, EVAL_STRIDE, 100, 64, 0, 0, err, sizeof err) == -1);
        EXPECT_MSG(strcmp(err, "--stride must be between 1 and ctx = 64 (got 0)") == 0, "got \"%s\"", err);
        EXPECT(eval_plan_init(&p, EVAL_STRIDE, 100, 64, 65, 0, err, sizeof err) == -1);
        EXPECT(eval_plan_init(&p, EVAL_WINDOWS, 100, 0, 0, 0, err, sizeof err) == -1);
        EXPECT_MSG(strcmp(err, "--ctx must be at least 1 (got 0)") == 0, "got \"%s\"", err);
        EXPECT(eval_plan_init(&p, EVAL_MEMORY, 100, 64, 0, -1, err, sizeof err) == -1);
        EXPECT_MSG(strcmp(err, "--memory must be at least 0 (got -1)") == 0, "got \"%s\"", err);
        EXPECT(eval_plan_init(&p, EVAL_WINDOWS, 1, 64, 0, 0, err, sizeof err) == -1);
        EXPECT_MSG(strcmp(err, "the text has 1 token; evaluation needs at least 2") == 0, "got \"%s\"", err);
        EXPECT(eval_plan_init(&p, EVAL_WINDOWS, 100, 64, 999, -5, err, sizeof err) == 0);  // S, M unread here
        EXPECT(p.stride == 64 && p.memory == 0);
    }
}

static void test_buckets(void) {
    TEST_CASE("bucket boundaries: 1 | 2-3 | 4-7 | ..., up to 2^46") {
        EXPECT(eval_bucket_of(1) == 0 && eval_bucket_of(2) == 1 && eval_bucket_of(3) == 1 && eval_bucket_of(4) == 2);
        EXPECT(eval_bucket_of(7) == 2 && eval_bucket_of(8) == 3 && eval_bucket_of(255) == 7 && eval_bucket_of(256) == 8);
        int ok = 1;
        for (int b = 0; b < EVAL_MAX_BUCKETS - 1; b++) {
            ok &= eval_bucket_lo(b) == (1L << b) && eval_bucket_hi(b) == 2 * (1L << b) - 1;
            ok &= eval_bucket_of(eval_bucket_lo(b)) == b && eval_bucket_of(eval_bucket_hi(b)) == b;
            ok &= eval_bucket_of(eval_bucket_hi(b) + 1) == b + 1;
        }
        for (long v = 1; v < 5000; v++) ok &= eval_bucket_lo(eval_bucket_of(v)) <= v && v <= eval_bucket_hi(eval_bucket_of(v));
        EXPECT(ok);
    }
    TEST_CASE("bucket accumulation: scored positions only, totals equal the whole pass, bpb = nats/(ln2 bytes)") {
        eval_buckets_t bk;
        eval_buckets_clear(&bk);
        EXPECT(bk.n_buckets == 0 && isnan(eval_bucket_loss(&bk, 0)) && isnan(eval_bucket_bpb(&bk, 3)));
        eval_plan_t p = plan(EVAL_STRIDE, 200, 16, 5, 0);
        float losses[16];
        int bytes[16];
        double total = 0;
        size_t total_bytes = 0, scored = 0;
        for (size_t w = 0; w < eval_plan_num_windows(&p); w++) {
            eval_window_t win = eval_plan_window(&p, w);
            for (int i = 0; i < win.len; i++) {
                losses[i] = (float)(0.25 * (i + 1) + 0.001 * (double)w);  // position-dependent
                bytes[i] = 1 + (int)((win.start + i) % 3);
            }
            for (int i = win.first_scored; i < win.len; i++) total += losses[i], total_bytes += bytes[i], scored++;
            eval_buckets_add_window(&bk, &win, losses, bytes);
        }
        double nats = 0;
        size_t toks = 0, byt = 0;
        for (int b = 0; b < bk.n_buckets; b++) nats += bk.nats[b], toks += bk.tokens[b], byt += bk.bytes[b];
        EXPECT(toks == 199 && scored == 199 && byt == total_bytes && fabs(nats - total) < 1e-9 * total);
        EXPECT(bk.n_buckets == 5);  // visible 1 … 16
        // after window 0 every target sees ≥ ctx − S + 1 = 12: buckets 0–2 hold window 0's first 7 only
        EXPECT(bk.tokens[0] == 1 && bk.tokens[1] == 2 && bk.tokens[2] == 4);
        EXPECT(bk.tokens[3] + bk.tokens[4] == 192);
        EXPECT(fabs(eval_bucket_loss(&bk, 0) - 0.25) < 1e-9);
        EXPECT(fabs(eval_bucket_bpb(&bk, 2) - bk.nats[2] / (log(2.0) * (double)bk.bytes[2])) < 1e-12);
        eval_buckets_t one;
        eval_buckets_clear(&one);
        eval_window_t win = eval_plan_window(&p, 3);
        eval_buckets_add_window(&one, &win, losses, NULL);  // byte tokenizer: one byte per target
        EXPECT(one.tokens[3] == 4 && one.bytes[3] == 4 && one.tokens[2] == 0 && one.tokens[4] == 1);
    }
}

int main(void) {
    test_every_target_once();
    test_buckets();
    return test_main_end();
}
