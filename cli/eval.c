// eval.c — full-sequence evaluation (see eval.h).
#include "cli/eval.h"

#include <math.h>
#include <stdlib.h>

#include "data/dataset.h"
#include "base/check.h"

void eval_accumulate(const model_t *m, const tokenizer_t *tok, const int32_t *targets, int B, int T, eval_sums_t *s) {
    for (int i = 0; i < B * T; i++) {
        s->nats += m->losses[i];
        s->bytes += (size_t)tok_token_bytes(tok, targets[i]);
    }
    s->tokens += (size_t)B * T;
}

void eval_sequence(model_t *m, const tokenizer_t *tok, const int32_t *tokens, size_t n, eval_sums_t *out) {
    int ctx = m->dims.ctx, B = m->max_B;
    CHECK(m->max_T == ctx);
    size_t W = eval_num_windows(n, ctx);
    int32_t *x = xmalloc((size_t)B * ctx * sizeof *x), *y = xmalloc((size_t)B * ctx * sizeof *y);
    run_ctx_t rc = {.training = 0};
    out->nats = 0;
    out->tokens = out->bytes = 0;
    size_t w = 0;
    while (w < W) {
        // a batch of full windows, or the shorter last window alone
        int b = 0;
        while (b < B && w < W) {
            int len = eval_window(tokens, n, ctx, w, x + (size_t)b * ctx, y + (size_t)b * ctx);
            if (len < ctx) {
                if (b > 0) break;  // run the full ones first; this window comes next on its own
                w++;
                model_forward(m, x, y, 1, len, &rc);
                eval_accumulate(m, tok, y, 1, len, out);
                b = -1;
                break;
            }
            b++;
            w++;
        }
        if (b > 0) {
            model_forward(m, x, y, b, ctx, &rc);
            eval_accumulate(m, tok, y, b, ctx, out);
        }
    }
    free(x);
    free(y);
}

double eval_loss(const eval_sums_t *s) { return s->tokens ? s->nats / (double)s->tokens : NAN; }
double eval_bpb(const eval_sums_t *s) { return s->bytes ? s->nats / (log(2.0) * (double)s->bytes) : NAN; }
