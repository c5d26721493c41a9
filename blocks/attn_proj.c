// attn_proj.c — the shared Q/K/V/O projections (see attn_proj.h).
#include "blocks/attn_proj.h"

#include <stdio.h>

#include "base/check.h"
#include "model/ops.h"

void attn_proj_register(attn_proj_t *p, const model_dims_t *dims, param_table_t *pt, const char *prefix) {
    int C = dims->dim;
    const param_spec_t in = {.shape = {C, C}, .init = INIT_NORMAL, .std = 0.02f, .decay = 1},
                       bias = {.shape = {C}, .init = INIT_ZEROS};
    // wq, wk, wv then bq, bk, bv one after another: each trio is one contiguous (3C, ·) block.
    p->wq = params_add(pt, prefix, "wq", in);
    p->wk = params_add(pt, prefix, "wk", in);
    p->wv = params_add(pt, prefix, "wv", in);
    p->bq = params_add(pt, prefix, "bq", bias);
    p->bk = params_add(pt, prefix, "bk", bias);
    p->bv = params_add(pt, prefix, "bv", bias);
    p->wo = params_add(pt, prefix, "wo", (param_spec_t){.shape = {C, C}, .init = INIT_NORMAL,
                                                        .std = block_out_proj_std(dims), .decay = 1});
    p->bo = params_add(pt, prefix, "bo", bias);
}

// The fused products read wq..wv (and bq..bv) as one block; the parameter table packs consecutive
// registrations, which this checks (it runs once per call: a pointer comparison).
static void check_fused(const attn_proj_t *p, int C) {
    CHECK(p->wk->data == p->wq->data + (size_t)C * C && p->wv->data == p->wk->data + (size_t)C * C);
    CHECK(p->bk->data == p->bq->data + C && p->bv->data == p->bk->data + C);
}

void attn_proj_in_forward(const attn_proj_t *p, float *qkv, const float *x, int N, int C) {
    check_fused(p, C);
    matmul_forward(qkv, x, p->wq->data, p->bq->data, N, C, 3 * C);
}

void attn_proj_out_forward(const attn_proj_t *p, float *y, const float *heads, int N, int C) {
    matmul_forward(y, heads, p->wo->data, p->bo->data, N, C, C);
}

void attn_proj_out_backward(attn_proj_t *p, float *dheads, const float *dy, const float *heads, int N, int C) {
    matmul_backward(dheads, p->wo->grad, p->bo->grad, dy, heads, p->wo->data, N, C, C);
}

void attn_proj_in_backward(attn_proj_t *p, float *dx, const float *dqkv, const float *x, int N, int C) {
    check_fused(p, C);
    matmul_backward(dx, p->wq->grad, p->bq->grad, dqkv, x, p->wq->data, N, C, 3 * C);
}
