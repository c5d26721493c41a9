// ffn_none.c — "no feed-forward": the layer has no LN2 and no ffn term (all-attention layers).
// The model loop skips a block whose ops is ffn_none_ops; its functions exist so the table is complete.
#include <stdio.h>
#include <stdlib.h>

#include "model/block.h"

static int none_configure(block_t *b, spec_block_t *spec, char *err, size_t errlen) {
    b->priv = NULL;
    return 0;
}
static void none_describe(const block_t *b, char *buf, size_t n) { snprintf(buf, n, "none"); }
static void none_register(block_t *b, param_table_t *pt, const char *prefix) {}
static size_t none_zero(const block_t *b, int B, int T) { return 0; }
static size_t none_zero1(const block_t *b) { return 0; }

static const char *const none_examples[] = {"none", NULL};

const block_ops_t ffn_none_ops = {
    .kind = "none",
    .role = ROLE_FFN,
    .options = "",
    .examples = none_examples,
    .configure = none_configure,
    .describe = none_describe,
    .register_params = none_register,
    .act_floats = none_zero,
    .scratch_floats = none_zero,
    .forward = NULL,   // never called: the model loop checks for this kind
    .backward = NULL,
    .cache_floats = none_zero1,
    .decode_scratch_floats = none_zero1,
    .decode_step = NULL,
};
