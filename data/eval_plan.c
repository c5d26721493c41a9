// eval_plan.c — evaluation windows for windows, stride and memory modes, and by-position buckets
// (see eval_plan.h).
#include "data/eval_plan.h"

#include <math.h>
#include <string.h>

#include "base/check.h"

// ---------------------------------------------------------------------------- plans

int eval_plan_init(eval_plan_t *p, eval_mode_t mode, size_t n, int ctx, int stride, int memory, char *err,
                   size_t errlen) {
    memset(p, 0, sizeof *p);
    CHECK(mode == EVAL_WINDOWS || mode == EVAL_STRIDE || mode == EVAL_MEMORY);
    if (ctx < 1) return seterr(err, errlen, "--ctx must be at least 1 (got %d)", ctx);
    if (mode == EVAL_STRIDE && (stride < 1 || stride > ctx))
        return seterr(err, errlen, "--stride must be between 1 and ctx = %d (got %d)", ctx, stride);
    if (mode == EVAL_MEMORY && memory < 0) return seterr(err, errlen, "--memory must be at least 0 (got %d)", memory);
    if (n < 2) return seterr(err, errlen, "the text has %zu token%s; evaluation needs at least 2", n, n == 1 ? "" : "s");
    *p = (eval_plan_t){.mode = mode, .n = n, .ctx = ctx, .stride = mode == EVAL_STRIDE ? stride : ctx,
                       .memory = mode == EVAL_MEMORY ? memory : 0};
    return 0;
}

size_t eval_plan_num_windows(const eval_plan_t *p) {
    size_t targets = p->n - 1, ctx = (size_t)p->ctx, S = (size_t)p->stride;
    if (targets <= ctx) return 1;
    return 1 + (targets - ctx + S - 1) / S;  // the first w with w·S + ctx ≥ n − 1 is the last
}

eval_window_t eval_plan_window(const eval_plan_t *p, size_t w) {
    CHECK(w < eval_plan_num_windows(p));
    size_t start = w * (size_t)p->stride, left = p->n - 1 - start;  // targets from start + 1 to the end
    eval_window_t win = {.start = start, .len = left < (size_t)p->ctx ? (int)left : p->ctx};
    // Window w − 1 scored every target up to (w−1)·S + ctx = start + ctx − S, i.e. input positions < ctx − S.
    win.first_scored = w == 0 ? 0 : p->ctx - p->stride;
    if (p->mode == EVAL_MEMORY) {
        win.memory = start < (size_t)p->memory ? (int)start : p->memory;
        win.fresh = w == 0 || p->memory == 0;
    } else {
        win.fresh = 1;
    }
    CHECK(win.first_scored < win.len);  // the last window still has a target of its own
    return win;
}

// ---------------------------------------------------------------------------- buckets

int eval_bucket_of(long visible) {
    CHECK(visible >= 1);
    int b = 0;
    while (visible >> (b + 1)) b++;
    return b;
}

long eval_bucket_lo(int b) { return 1L << b; }
long eval_bucket_hi(int b) { return (1L << (b + 1)) - 1; }

void eval_buckets_clear(eval_buckets_t *bk) { memset(bk, 0, sizeof *bk); }

void eval_buckets_add(eval_buckets_t *bk, long visible, double nats, int bytes) {
    int b = eval_bucket_of(visible);
    CHECK(b < EVAL_MAX_BUCKETS && bytes >= 0);
    bk->nats[b] += nats;
    bk->tokens[b] += 1;
    bk->bytes[b] += (size_t)bytes;
    if (b + 1 > bk->n_buckets) bk->n_buckets = b + 1;
}

void eval_buckets_add_window(eval_buckets_t *bk, const eval_window_t *win, const float *losses, const int *bytes) {
    for (int i = win->first_scored; i < win->len; i++)
        eval_buckets_add(bk, eval_visible(win, i), losses[i], bytes ? bytes[i] : 1);
}

double eval_bucket_loss(const eval_buckets_t *bk, int b) {
    CHECK(b >= 0 && b < EVAL_MAX_BUCKETS);
    return bk->tokens[b] ? bk->nats[b] / (double)bk->tokens[b] : NAN;
}

double eval_bucket_bpb(const eval_buckets_t *bk, int b) {
    CHECK(b >= 0 && b < EVAL_MAX_BUCKETS);
    return bk->bytes[b] ? bk->nats[b] / (log(2.0) * (double)bk->bytes[b]) : NAN;
}
