// attn_proj.c — the shared Q/K/V/O projections (see attn_proj.h).
#include "blocks/attn_proj.h"

#include <limits.h>
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

// The table caches positions [0, rope_table_positions(ctx)) (capped: model/rope.h).

int attn_proj_rope_init(attn_proj_t *p, block_t *b, char *err, size_t errlen) {
    if (b->dims->pos != POS_ROPE) return 0;
    int D = b->dims->dim / b->dims->heads, n_pos = rope_table_positions(b->dims->ctx);
    char why[128];
    if (rope_table_init(&p->rope, D, n_pos, why, sizeof why))
        return seterr(err, errlen, "%s: --pos rope needs an even head width (dim/heads), got %d", block_where(b), D);
    p->rope_on = 1;
    return 0;
}

void attn_proj_rope_free(attn_proj_t *p) {
    rope_table_free(&p->rope);
    p->rope_on = 0;
}

void attn_proj_rope_qkv(const attn_proj_t *p, float *qkv, int B, int T, int C, int H, rope_dir_t dir) {
    attn_proj_rope_qkv_at(p, qkv, B, T, C, H, 0, dir);
}

void attn_proj_rope_qkv_at(const attn_proj_t *p, float *qkv, int B, int T, int C, int H, long pos0, rope_dir_t dir) {
    if (!p->rope_on) return;
    CHECK(pos0 >= 0 && pos0 + T <= INT_MAX);
    rope_layout_t qk = rope_layout_qk(B, T, C, H);
    rope_apply(&p->rope, qkv, qkv, &qk, (int)pos0, dir);
}

void attn_proj_kv_forward(const attn_proj_t *p, float *kv, const float *x, int N, int C) {
    check_fused(p, C);
    matmul_forward(kv, x, p->wk->data, p->bk->data, N, C, 2 * C);
}

void attn_proj_kv_backward_weights(attn_proj_t *p, const float *dkv, const float *x, int N, int C) {
    check_fused(p, C);
    matmul_backward(NULL, p->wk->grad, p->bk->grad, dkv, x, p->wk->data, N, C, 2 * C);
}

void attn_proj_rope_kv_at(const attn_proj_t *p, float *kv, int B, int T, int C, int H, long pos0, rope_dir_t dir) {
    if (!p->rope_on || T == 0) return;
    CHECK(pos0 >= 0 && pos0 + T <= INT_MAX);
    int D = C / H;
    rope_layout_t k = {.B = B, .T = T, .n_vec = H, .batch_stride = (size_t)T * 2 * C, .pos_stride = (size_t)2 * C,
                       .vec_stride = (size_t)D};
    rope_apply(&p->rope, kv, kv, &k, (int)pos0, dir);
}

void attn_proj_rope_heads_at(const attn_proj_t *p, float *x, int B, int T, int C, int H, long pos0, rope_dir_t dir) {
    if (!p->rope_on || T == 0) return;
    CHECK(pos0 >= 0 && pos0 + T <= INT_MAX);
    rope_layout_t l = {.B = B, .T = T, .n_vec = H, .batch_stride = (size_t)T * C, .pos_stride = (size_t)C,
                       .vec_stride = (size_t)(C / H)};
    rope_apply(&p->rope, x, x, &l, (int)pos0, dir);
}

void attn_proj_rope_vec(const attn_proj_t *p, float *x, int C, int H, int pos) {
    if (p->rope_on) rope_apply_one(&p->rope, x, 1, (size_t)(C / H), pos, ROPE_ROTATE);
}

void attn_proj_rope_one(const attn_proj_t *p, float *qkv, int C, int H, int pos) {
    if (p->rope_on) rope_apply_one(&p->rope, qkv, 2 * H, (size_t)(C / H), pos, ROPE_ROTATE);
}
