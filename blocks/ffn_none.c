// ffn_none.c — "no feed-forward": the identity (`.identity = 1`): the layer has no LN2 and no ffn
// term (all-attention layers). The model skips it; run on its own, its branch is y = 0, which the
// residual add turns into the identity, so the table is complete and correct.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/block.h"

static int none_configure(block_t *b, spec_block_t *spec, char *err, size_t errlen) {
    b->priv = NULL;
    return 0;
}
static void none_describe(const block_t *b, char *buf, size_t n) { snprintf(buf, n, "none"); }
static void none_register(block_t *b, param_table_t *pt, const char *prefix) {}
static size_t none_zero(const block_t *b, int B, int T) { return 0; }
static size_t none_zero1(const block_t *b) { return 0; }
static void none_forward(block_t *b, float *y, const float *x, float *act, float *scratch, int B, int T,
                         const run_ctx_t *rc) {
    memset(y, 0, (size_t)B * T * b->dims->dim * sizeof(float));
}
// y = 0 depends on nothing: dx and no parameter gradient change.
static void none_backward(block_t *b, float *dx, const float *dy, const float *x, const float *act, float *scratch,
                          int B, int T, const run_ctx_t *rc) {}
static void none_decode_step(block_t *b, float *y, const float *x, int pos, float *cache, float *scratch) {
    memset(y, 0, (size_t)b->dims->dim * sizeof(float));
}

static const char *const none_examples[] = {"none", NULL};

const block_ops_t ffn_none_ops = {
    .kind = "none",
    .role = ROLE_FFN,
    .options = "",
    .identity = 1,
    .examples = none_examples,
    .configure = none_configure,
    .describe = none_describe,
    .register_params = none_register,
    .act_floats = none_zero,
    .scratch_floats = none_zero,
    .forward = none_forward,
    .backward = none_backward,
    .cache_floats = none_zero1,
    .decode_scratch_floats = none_zero1,
    .decode_step = none_decode_step,
};
