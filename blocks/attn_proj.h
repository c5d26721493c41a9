// attn_proj.h — the projections every attention kind shares, with the same tensor names in every
// kind (so `--init-from` carries a trained softmax layer into a Performer, Linformer or adaptive one):
//   attn.wq, attn.wk, attn.wv (C,C) [out,in], registered consecutively so that they form one (3C,C)
//   matrix — one product computes q|k|v — attn.bq, attn.bk, attn.bv (C), attn.wo (C,C) with init std
//   0.02/sqrt(2L), attn.bo (C). Head h owns columns h·D … h·D+D−1 of q, k, v and rows of wo's input.
#ifndef ATTNLAB_ATTN_PROJ_H
#define ATTNLAB_ATTN_PROJ_H

#include "model/block.h"
#include "model/params.h"

typedef struct {
    param_t *wq, *wk, *wv, *bq, *bk, *bv, *wo, *bo;
} attn_proj_t;

void attn_proj_register(attn_proj_t *p, const model_dims_t *dims, param_table_t *pt, const char *prefix);
// qkv (N,3C) = x (N,C)·[Wq;Wk;Wv]ᵀ + [bq;bk;bv]
void attn_proj_in_forward(const attn_proj_t *p, float *qkv, const float *x, int N, int C);
// y (N,C) = heads (N,C)·Woᵀ + bo
void attn_proj_out_forward(const attn_proj_t *p, float *y, const float *heads, int N, int C);
// dheads += dy·Wo; dWo += dyᵀ·heads; dbo += Σ dy
void attn_proj_out_backward(attn_proj_t *p, float *dheads, const float *dy, const float *heads, int N, int C);
// dx += dqkv·[Wq;Wk;Wv]; d[Wq;Wk;Wv] += dqkvᵀ·x; d[bq;bk;bv] += Σ dqkv
void attn_proj_in_backward(attn_proj_t *p, float *dx, const float *dqkv, const float *x, int N, int C);

#endif
