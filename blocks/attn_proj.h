// attn_proj.h — the projections every attention kind shares, with the same tensor names in every
// kind (so `--init-from` carries a trained softmax layer into a Performer, Linformer or adaptive one):
//   attn.wq, attn.wk, attn.wv (C,C) [out,in], registered consecutively so that they form one (3C,C)
//   matrix — one product computes q|k|v — attn.bq, attn.bk, attn.bv (C), attn.wo (C,C) with init std
//   0.02/sqrt(2L), attn.bo (C). Head h owns columns h·D … h·D+D−1 of q, k, v and rows of wo's input.
#ifndef ATTNLAB_ATTN_PROJ_H
#define ATTNLAB_ATTN_PROJ_H

#include "model/block.h"
#include "model/params.h"
#include "model/rope.h"

typedef struct {
    param_t *wq, *wk, *wv, *bq, *bk, *bv, *wo, *bo;
    // --pos rope (LONG_CONTEXT.md §1), for the kinds that rotate each head's q and k of the q|k|v
    // buffer (softmax(persist=0), performer, linformer): the head-width table, positions [0, min(ctx, 4096)).
    int rope_on;
    rope_table_t rope;
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


// --pos rope: when b's model uses rotary positions, build the head-width table (positions
// [0, min(ctx, 4096)); later ones are computed on the fly, bit-identical)
// and switch the rotations below on; refuses an odd head width with one line naming the block.
// No-op (returns 0) for learned or no positions. Call from configure; free with attn_proj_rope_free.
int attn_proj_rope_init(attn_proj_t *p, block_t *b, char *err, size_t errlen);
void attn_proj_rope_free(attn_proj_t *p);
// qkv (B,T,3C): each head's q and k (columns 0 … 2C, width D) ← R_{±t} of themselves in place, t the
// position in the window (dir ROPE_ROTATE after the projection's bias; ROPE_TRANSPOSE on dq, dk
// before the projection's backward, since R_tᵀ is the backward of R_t). v is never touched.
// No-op when rope is off.
void attn_proj_rope_qkv(const attn_proj_t *p, float *qkv, int B, int T, int C, int H, rope_dir_t dir);
// The same with the window's first row at position pos0 ≥ 0 (segment memory: the stream position).
void attn_proj_rope_qkv_at(const attn_proj_t *p, float *qkv, int B, int T, int C, int H, long pos0, rope_dir_t dir);
// Segment memory (LONG_CONTEXT.md §2): keys and values of remembered rows, recomputed each step.
// kv (N,2C) = x (N,C)·[Wk;Wv]ᵀ + [bk;bv]; its backward into the weights only (stop-gradient: the
// remembered x gets none): d[Wk;Wv] += dkvᵀ·x, d[bk;bv] += Σ dkv.
void attn_proj_kv_forward(const attn_proj_t *p, float *kv, const float *x, int N, int C);
void attn_proj_kv_backward_weights(attn_proj_t *p, const float *dkv, const float *x, int N, int C);
// heads (B,T,C) (row stride C, H heads of width C/H): each head of row t ← R_{±(pos0+t)} of itself. No-op when
// rope is off.
void attn_proj_rope_heads_at(const attn_proj_t *p, float *x, int B, int T, int C, int H, long pos0, rope_dir_t dir);
// One head vector x (C/H floats) ← R_pos x. No-op when rope is off.
void attn_proj_rope_vec(const attn_proj_t *p, float *x, int C, int H, int pos);
// kv (B,T,2C): each head's k (columns 0 … C) ← R_{±(pos0+t)} of itself; v untouched. No-op when rope is off.
void attn_proj_rope_kv_at(const attn_proj_t *p, float *kv, int B, int T, int C, int H, long pos0, rope_dir_t dir);
// Decode: the q and k heads of one position's q|k|v (3C) ← R_pos of themselves (any pos ≥ 0).
void attn_proj_rope_one(const attn_proj_t *p, float *qkv, int C, int H, int pos);

#endif
