// ffn_mlp.c — the GPT-2 feed-forward block: y = GELU_tanh(x·W1ᵀ + b1)·W2ᵀ + b2, hidden 4C by default.
// Tensors: ffn.w1 (hidden, C), ffn.b1 (hidden), ffn.w2 (C, hidden) init std 0.02/sqrt(2L), ffn.b2 (C).
#include <stdio.h>
#include <stdlib.h>

#include "model/block.h"
#include "model/gemm.h"
#include "base/check.h"
#include "model/ops.h"

typedef struct {
    int hidden;
    param_t *w1, *b1, *w2, *b2;
} mlp_t;

static int mlp_configure(block_t *b, spec_block_t *spec, char *err, size_t errlen) {
    const char *where = block_where(b);
    long hidden;
    if (spec_get_int(spec, "hidden", 4L * b->dims->dim, 1, 1L << 20, &hidden, where, err, errlen)) return -1;
    mlp_t *m = xcalloc(1, sizeof *m);
    m->hidden = (int)hidden;
    b->priv = m;
    return 0;
}

static void mlp_describe(const block_t *b, char *buf, size_t n) {
    snprintf(buf, n, "mlp(hidden=%d)", ((const mlp_t *)b->priv)->hidden);
}

static void mlp_register(block_t *b, param_table_t *pt, const char *prefix) {
    mlp_t *m = b->priv;
    int C = b->dims->dim, Hd = m->hidden;
    m->w1 = params_add(pt, prefix, "w1", (param_spec_t){.shape = {Hd, C}, .init = INIT_NORMAL, .std = 0.02f, .decay = 1});
    m->b1 = params_add(pt, prefix, "b1", (param_spec_t){.shape = {Hd}, .init = INIT_ZEROS});
    m->w2 = params_add(pt, prefix, "w2", (param_spec_t){.shape = {C, Hd}, .init = INIT_NORMAL,
                                                        .std = block_out_proj_std(b->dims), .decay = 1});
    m->b2 = params_add(pt, prefix, "b2", (param_spec_t){.shape = {C}, .init = INIT_ZEROS});
}

// act: g (B,T,hidden) = gelu'(pre) with pre = x·W1ᵀ + b1 (the product's output x·W1ᵀ, overwritten by
// the derivative: the backward needs nothing else of pre), then h (B,T,hidden) = GELU(pre).
static size_t mlp_act_floats(const block_t *b, int B, int T) {
    return 2 * (size_t)B * T * ((const mlp_t *)b->priv)->hidden;
}
static size_t mlp_scratch_floats(const block_t *b, int B, int T) {
    return (size_t)B * T * ((const mlp_t *)b->priv)->hidden;
}

static void mlp_forward(block_t *b, float *y, const float *x, float *act, float *scratch, int B, int T,
                        const run_ctx_t *rc) {
    mlp_t *m = b->priv;
    int N = B * T, C = b->dims->dim, Hd = m->hidden;
    float *pre = act, *h = act + (size_t)N * Hd;
    matmul_forward(pre, x, m->w1->data, NULL, N, C, Hd);       // x·W1ᵀ (b1 added by the GELU pass)
    gelu_forward_deriv(h, pre, pre, m->b1->data, N, Hd);      // h = GELU(pre + b1), pre → g in place
    matmul_forward(y, h, m->w2->data, m->b2->data, N, Hd, C);
}

// Backward: dh = dy·W2 (written by the product, beta 0: no zeroing pass), dW2 += dyᵀ·h, db2 += Σ dy;
// then one pass dpre = dh·g (in place) with db1 += Σ dpre; dx += dpre·W1, dW1 += dpreᵀ·x.
static void mlp_backward(block_t *b, float *dx, const float *dy, const float *x, const float *act, float *scratch,
                         int B, int T, const run_ctx_t *rc) {
    mlp_t *m = b->priv;
    int N = B * T, C = b->dims->dim, Hd = m->hidden;
    const float *g = act, *h = act + (size_t)N * Hd;
    float *dh = scratch;
    par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, Hd, C, 1.0f, dy, C, m->w2->data, Hd, 0.0f, dh, Hd);
    matmul_backward(NULL, m->w2->grad, m->b2->grad, dy, h, m->w2->data, N, Hd, C);
    gelu_backward_bias(dh, m->b1->grad, g, N, Hd);
    matmul_backward(dx, m->w1->grad, NULL, dh, x, m->w1->data, N, C, Hd);
}

static size_t mlp_cache_floats(const block_t *b) { return 0; }
static size_t mlp_decode_scratch_floats(const block_t *b) { return 2 * (size_t)((const mlp_t *)b->priv)->hidden; }

static void mlp_decode_step(block_t *b, float *y, const float *x, int pos, float *cache, float *scratch) {
    mlp_t *m = b->priv;
    int C = b->dims->dim, Hd = m->hidden;
    matmul_forward(scratch, x, m->w1->data, m->b1->data, 1, C, Hd);
    gelu_forward(scratch + Hd, scratch, (size_t)Hd);
    matmul_forward(y, scratch + Hd, m->w2->data, m->b2->data, 1, Hd, C);
}

static const char *const mlp_examples[] = {"mlp", "mlp(hidden=5)", NULL};

const block_ops_t ffn_mlp_ops = {
    .kind = "mlp",
    .role = ROLE_FFN,
    .options = "hidden",
    .examples = mlp_examples,
    .configure = mlp_configure,
    .describe = mlp_describe,
    .register_params = mlp_register,
    .act_floats = mlp_act_floats,
    .scratch_floats = mlp_scratch_floats,
    .forward = mlp_forward,
    .backward = mlp_backward,
    .cache_floats = mlp_cache_floats,
    .decode_scratch_floats = mlp_decode_scratch_floats,
    .decode_step = mlp_decode_step,
};
