// eval.c — full-sequence evaluation (see eval.h).
#include "cli/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"

void eval_accumulate(const model_t *m, const tokenizer_t *tok, const int32_t *targets, int B, int T, eval_sums_t *s) {
    for (int i = 0; i < B * T; i++) {
        s->nats += m->losses[i];
        s->bytes += (size_t)tok_token_bytes(tok, targets[i]);
    }
    s->tokens += (size_t)B * T;
}

// Inputs t[start, start+len) and targets t[start+1, start+len+1) of window win into x, y.
static void fill_window(const int32_t *tokens, const eval_window_t *win, int32_t *x, int32_t *y) {
    memcpy(x, tokens + win->start, (size_t)win->len * sizeof *x);
    memcpy(y, tokens + win->start + 1, (size_t)win->len * sizeof *y);
}

// Add the scored positions of the windows wins[0..b) of the last forward (row stride T).
static void score_windows(const model_t *m, const tokenizer_t *tok, const eval_window_t *wins, int b, int T,
                          const int32_t *y, eval_sums_t *s, eval_buckets_t *bk) {
    for (int r = 0; r < b; r++) {
        const eval_window_t *win = &wins[r];
        for (int i = win->first_scored; i < win->len; i++) {
            double nats = m->losses[(size_t)r * T + i];
            int bytes = tok_token_bytes(tok, y[(size_t)r * T + i]);
            s->nats += nats;
            s->bytes += (size_t)bytes;
            s->tokens++;
            if (bk) eval_buckets_add(bk, eval_visible(win, i), nats, bytes);
        }
    }
}

// Memory mode (M > 0): one stream, one segment per forward (B = 1), the memory carried from segment to
// segment in a state of its own (model_mem_init for one row), cleared where the plan says fresh.
static void run_memory_plan(model_t *m, const tokenizer_t *tok, const int32_t *tokens, const eval_plan_t *p,
                            eval_sums_t *out, eval_buckets_t *bk) {
    CHECK(p->memory == m->dims.memory && p->ctx <= m->max_T);
    seg_mem_t mem;
    model_mem_init(&mem, m, 1);
    run_ctx_t rc = {.training = 0, .mem = &mem};
    int32_t *x = xmalloc((size_t)p->ctx * sizeof *x), *y = xmalloc((size_t)p->ctx * sizeof *y);
    size_t W = eval_plan_num_windows(p);
    for (size_t w = 0; w < W; w++) {
        eval_window_t win = eval_plan_window(p, w);
        if (win.fresh) model_mem_clear(&mem);
        CHECK(mem.n == win.memory && mem.pos0 == (long)win.start);  // the plan's visible counts are the model's
        fill_window(tokens, &win, x, y);
        model_forward(m, x, y, 1, win.len, &rc);
        score_windows(m, tok, &win, 1, win.len, y, out, bk);
    }
    free(x);
    free(y);
    model_mem_free(&mem);
}

void eval_run_plan(model_t *m, const tokenizer_t *tok, const int32_t *tokens, const eval_plan_t *p, eval_sums_t *out,
                   eval_buckets_t *bk) {
    memset(out, 0, sizeof *out);
    if (bk) eval_buckets_clear(bk);
    if (p->mode == EVAL_MEMORY && p->memory > 0) {
        run_memory_plan(m, tok, tokens, p, out, bk);
        return;
    }
    // windows, stride, and memory mode with M = 0 (its windows are windows mode's, every one fresh)
    int ctx = p->ctx, B = m->max_B;
    CHECK(ctx <= m->max_T && B >= 1);
    size_t W = eval_plan_num_windows(p);
    int32_t *x = xmalloc((size_t)B * ctx * sizeof *x), *y = xmalloc((size_t)B * ctx * sizeof *y);
    eval_window_t *wins = xmalloc((size_t)B * sizeof *wins);
    run_ctx_t rc = {.training = 0};
    size_t w = 0;
    while (w < W) {
        // a batch of full windows, or the shorter last window alone (every window but the last is full)
        eval_window_t first = eval_plan_window(p, w);
        int b = 0, T = first.len;
        if (first.len < ctx) {
            wins[b++] = first;
            w++;
        } else {
            while (b < B && w < W) {
                eval_window_t win = eval_plan_window(p, w);
                if (win.len < ctx) break;
                wins[b++] = win;
                w++;
            }
        }
        for (int r = 0; r < b; r++) fill_window(tokens, &wins[r], x + (size_t)r * T, y + (size_t)r * T);
        model_forward(m, x, y, b, T, &rc);
        score_windows(m, tok, wins, b, T, y, out, bk);
    }
    free(x);
    free(y);
    free(wins);
}

void eval_sequence(model_t *m, const tokenizer_t *tok, const int32_t *tokens, size_t n, eval_sums_t *out) {
    CHECK(m->max_T == m->dims.ctx);
    memset(out, 0, sizeof *out);
    if (n < 2) return;  // no target
    eval_plan_t p;
    char err[256];
    CHECK(eval_plan_init(&p, EVAL_WINDOWS, n, m->dims.ctx, 0, 0, err, sizeof err) == 0);
    eval_run_plan(m, tok, tokens, &p, out, NULL);
}

int eval_model_at_ctx(model_t *out, const model_t *m, int ctx, char *err, size_t errlen) {
    if (m->dims.pos == POS_LEARNED && ctx > m->dims.ctx)
        return seterr(err, errlen,
                      "--ctx %d exceeds the trained ctx %d: this model has learned positions (a table of %d rows); "
                      "only --pos rope or none models evaluate longer windows",
                      ctx, m->dims.ctx, m->dims.ctx);
    model_dims_t d = m->dims;
    d.ctx = ctx;
    char sub[512];
    if (model_build(out, &d, m->spec, sub, sizeof sub)) return seterr(err, errlen, "--ctx %d: the model does not build: %s", ctx, sub);
    CHECK(out->params.count == m->params.count);
    for (int i = 0; i < out->params.count; i++) {
        param_t *dst = out->params.items[i];
        const param_t *src = params_find(&m->params, dst->name);
        CHECK(src != NULL);  // the same spec registers the same names
        int same = src->ndim == dst->ndim && src->numel == dst->numel;
        for (int k = 0; same && k < src->ndim; k++) same = src->shape[k] == dst->shape[k];
        if (!same) {
            model_free(out);
            return seterr(err, errlen, "--ctx %d: tensor '%s' depends on the window length; evaluate at the trained ctx %d",
                          ctx, src->name, m->dims.ctx);
        }
        memcpy(dst->data, src->data, src->numel * sizeof(float));
    }
    return 0;
}

double eval_loss(const eval_sums_t *s) { return s->tokens ? s->nats / (double)s->tokens : NAN; }
double eval_bpb(const eval_sums_t *s) { return s->bytes ? s->nats / (log(2.0) * (double)s->bytes) : NAN; }
