// mixer_adaptive.c — Adaptive Attention Span (Sukhbaatar et al., ACL 2019, arXiv 1905.07799): softmax
// attention whose heads each learn a soft span z_h = S·z̃_h (mask clamp((R+z−x)/R,0,1) inside the
// normalization), with an L1 penalty on the spans and optional persistent memory (persist=N).
// Options: span (ctx; up to max(ctx, --memory)), ramp (32), init (0.5), lambda (2e-6), persist (0). The math
// and the segment memory (--memory M) are in attn_span.c.
// --pos rope: q and k rotated per head, persistent scores on the unrotated query (attn_span.c,
// docs/blocks/adaptive.md "Rotary positions").
#include <stdio.h>
#include <stdlib.h>

#include "blocks/attn_span.h"
#include "base/check.h"

static int adaptive_configure(block_t *b, spec_block_t *spec, char *err, size_t errlen) {
    attn_span_t *a = xcalloc(1, sizeof *a);
    b->priv = a;  // freed by model_free, also on error
    return attn_span_configure(a, b, spec, 0, err, errlen);
}

static void adaptive_describe(const block_t *b, char *buf, size_t n) {
    const attn_span_t *a = b->priv;
    snprintf(buf, n, "adaptive(span=%ld,ramp=%ld,init=%.9g,lambda=%.9g,persist=%ld)", a->S, a->R, a->init, a->lambda,
             a->N);
}

static const char *const adaptive_examples[] = {"adaptive(span=6,ramp=3,init=0.4,lambda=0.05)", "adaptive(span=5,ramp=2,init=0.3,lambda=0.02,persist=2)", NULL};

const block_ops_t mixer_adaptive_ops = {
    .kind = "adaptive",
    .role = ROLE_MIXER,
    .options = "span, ramp, init, lambda, persist",
    .examples = adaptive_examples,
    .configure = adaptive_configure,
    .describe = adaptive_describe,
    ATTN_SPAN_CORE_OPS,
    ATTN_SPAN_SPAN_OPS,
};
