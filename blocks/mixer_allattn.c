// mixer_allattn.c — all-attention with persistent memory (Sukhbaatar et al. 2019, arXiv 1907.01470):
// N learned key/value pairs per head joined to the context keys in one softmax, with an adaptive span
// as in the paper; the layer has no ffn (its ops declare `implied_ffn = "none"`).
// Options: persist (256), span (ctx; up to max(ctx, --memory)), ramp (32), init (0.5), lambda (2e-6). The
// math and the segment memory (--memory M) are in attn_span.c.
// --pos rope: q and k rotated per head, persistent scores on the unrotated query (attn_span.c,
// docs/blocks/adaptive.md "Rotary positions").
#include <stdio.h>
#include <stdlib.h>

#include "blocks/attn_span.h"
#include "base/check.h"

static int allattn_configure(block_t *b, spec_block_t *spec, char *err, size_t errlen) {
    attn_span_t *a = xcalloc(1, sizeof *a);
    b->priv = a;  // freed by model_free, also on error
    if (attn_span_configure(a, b, spec, 256, err, errlen)) return -1;
    if (a->N < 1)
        return seterr(err, errlen, "%s: persist=0 leaves allattn without memory and without an ffn; use persist >= 1, "
                      "or adaptive(...)/none", block_where(b));
    return 0;
}

static void allattn_describe(const block_t *b, char *buf, size_t n) {
    const attn_span_t *a = b->priv;
    snprintf(buf, n, "allattn(persist=%ld,span=%ld,ramp=%ld,init=%.9g,lambda=%.9g)", a->N, a->S, a->R, a->init,
             a->lambda);
}

static const char *const allattn_examples[] = {"allattn(persist=4,span=6,ramp=3,init=0.4,lambda=0.05)", NULL};

const block_ops_t mixer_allattn_ops = {
    .kind = "allattn",
    .role = ROLE_MIXER,
    .options = "persist, span, ramp, init, lambda",
    .implied_ffn = "none",
    .examples = allattn_examples,
    .configure = allattn_configure,
    .describe = allattn_describe,
    ATTN_SPAN_CORE_OPS,
    ATTN_SPAN_SPAN_OPS,
};
