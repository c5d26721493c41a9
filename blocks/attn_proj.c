// attn_proj.c — the shared Q/K/V/O projections (see attn_proj.h).
#include "blocks/attn_proj.h"

#include <stdio.h>

#include "base/check.h"
#include "model/ops.h"

void attn_proj_register(attn_proj_t *p, const model_dims_t *dims, param_table_t *pt, const char *prefix) {
    int C = dims->dim;
    char name[80];
#define ADD(field, init, scale, decay, ...)           \
    snprintf(name, sizeof name, "%s" #field, prefix); \
    p->field = params_add(pt, name, init, scale, decay, __VA_ARGS__)
    ADD(wq, INIT_NORMAL, 0.02f, 1, 2, C, C);
    ADD(wk, INIT_NORMAL, 0.02f, 1, 2, C, C);
    ADD(wv, INIT_NORMAL, 0.02f, 1, 2, C, C);
    ADD(bq, INIT_ZEROS, 0, 0, 1, C);
    ADD(bk, INIT_ZEROS, 0, 0, 1, C);
    ADD(bv, INIT_ZEROS, 0, 0, 1, C);
    ADD(wo, INIT_NORMAL, block_out_proj_std(dims), 1, 2, C, C);
    ADD(bo, INIT_ZEROS, 0, 0, 1, C);
#undef ADD
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
