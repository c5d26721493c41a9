// attn_span.h — the causal attention core shared by `adaptive` (Adaptive Attention Span, Sukhbaatar
// et al. 2019, arXiv 1905.07799), `allattn` (all-attention with persistent memory, arXiv 1907.01470)
// and `softmax(persist=N>0)`: multi-head softmax attention with an optional per-head soft span mask
// and N optional persistent key/value pairs per head, in one joint softmax. docs/blocks/adaptive.md
// has the math, the backward derivation and the compute skipping.
//
//   q, k, v = x·Wqᵀ + bq, x·Wkᵀ + bk, x·Wvᵀ + bv                  (B,T,C); head h owns cols h·D…h·D+D−1
//   (--pos rope: q_i ← R_i q_i, k_j ← R_j k_j per head for the content scores s_ij; the persistent
//    scores s_in keep the unrotated q_i — persistent keys have no position. rope.h, LONG_CONTEXT.md §1)
//   s_ij    = q_i·k_j / sqrt(D)  (j ≤ i),   s_in = q_i·Kp_h[n]   (persistent: stored K already /sqrt(D))
//   m_h(x)  = clamp((R + z_h − x)/R, 0, 1), x = i − j, z_h = S·z̃_h  (m ≡ 1 without a span)
//   a_ij    = m·e^{s_ij} / Z_i,  a_in = e^{s_in} / Z_i,   Z_i = Σ_j m·e^{s_ij} + Σ_n e^{s_in}
//   o_i     = Σ_j a_ij v_j + sqrt(N)·Σ_n a_in Vp_h[n],   y = concat_h(o)·Woᵀ + bo
//
// Tensors (prefix e.g. "layers.2.attn."): wq, wk, wv (C,C), bq, bk, bv (C), wo (C,C), bo (C) —
// softmax's names and order, so wq|wk|wv and bq|bk|bv are each one contiguous (3C,·) block — then
// span (H) = z̃ (span kinds only; no weight decay, clamped to [0,1] after every step), then
// persist_k, persist_v (H, N, D) (persist > 0 only): head h's N stored keys / values as one
// contiguous (N, D) matrix, the layout the per-head products read directly.
//
// Compute follows the span: head h reads only keys at distance < W_h = min(T, ceil(z_h) + R) (the
// mask is 0 beyond); rows are processed in blocks of RB (8…32, from W_h) whose products cover keys
// [r0 − W_h + 1, r1 − 1] only. The decode cache is a ring of min(ctx, S + R) positions.
//
// Segment memory (--memory M, LONG_CONTEXT.md §2; docs/blocks/adaptive.md "Segment memory"): the
// state is the x̂ of the last M positions (blocks/mem_rows.h). A forward with rc->mem projects k|v of
// only the last P0 = min(n, max_h(ceil(z_h) + R) − 1) remembered rows (all n without a span: no key
// farther is ever scored) and q|k|v of the T segment rows; the queries are the segment's only, and a
// query at segment row i reads keys at distance < W_h = min(P0 + T, ceil(z_h) + R), at most P0 + i.
// rope: segment row t sits at pos0 + t, memory row r of the P0 at pos0 − P0 + r. The span may exceed
// ctx up to M (check_memory). Decoding with M > 0 keeps a ring of min(M + ctx, S + R) positions.
//
// --pos rel (blocks/relpos.h): attn.rel_k (D, ctx + M) follows attn.bo; every content score gains
// scale·q_i·r_{i−j} at the key's distance (memory keys included; the span mask applies after, as to
// the content score), persistent scores none. Per head the product QR = scale·Q·rel_k[:, 0:W_h]
// (T, W_h) is gathered into each row's keys; the backward scatters dS into dQR (scratch) and adds
// dQ += scale·dQR·rel_kᵀ and drel_k += scale·Qᵀ·dQR (serially over batch rows and heads).
#ifndef ATTNLAB_ATTN_SPAN_H
#define ATTNLAB_ATTN_SPAN_H

#include <stddef.h>

#include "blocks/attn_proj.h"
#include "blocks/relpos.h"
#include "model/block.h"
#include "model/rope.h"

typedef struct {
    const block_t *block;  // the block this core serves (its dropout_masks flag sizes act)
    int span_on;       // 1: per-head adaptive span mask
    long S, R;         // maximum span and ramp, in tokens (span kinds)
    double init;       // initial z̃
    double lambda;     // span penalty λ·Σ_layers mean_h z_h
    long N;            // persistent key/value pairs per head (0: none)
    attn_proj_t proj;  // attn.wq|wk|wv, bq|bk|bv, wo, bo (blocks/attn_proj.h)
    relpos_t rel;      // attn.rel_k under --pos rel (blocks/relpos.h), else off
    param_t *span;                                   // (H) z̃, or NULL
    param_t *pk, *pv;                                // (H,N,D) each, or NULL
    long long keys_scored;  // score entries computed by the last forward (Σ over batch, heads): for tests
    int mem_rows_used;      // memory rows (P0) whose keys and values the last forward projected: for tests
    // --pos rope (dims->pos == POS_ROPE): each head's q and k are rotated (width D, positions of the
    // window); persistent keys carry no position and are scored with the UNROTATED query. The table
    // covers [0, ctx), built at configure time, freed by attn_span_block_free.
    int rope_on;
    rope_table_t rope;
} attn_span_t;

// Read the options span, ramp, init, lambda and persist (default persist_default) of a span kind
// into a. Returns 0, or -1 with a message naming the layer (block_where) and option. A span above
// ctx is accepted here (memory may allow it); attn_span_check_memory decides once M is known.
int attn_span_configure(attn_span_t *a, block_t *b, spec_block_t *spec, long persist_default, char *err,
                        size_t errlen);
// A plain causal softmax attention with N persistent pairs per head (softmax(persist=N)). Returns 0,
// or -1 with a message naming the layer (--pos rope with an odd head width).
int attn_span_init_persist(attn_span_t *a, block_t *b, long N, char *err, size_t errlen);
void attn_span_register(attn_span_t *a, const block_t *b, param_table_t *pt, const char *prefix);

size_t attn_span_act_floats(const attn_span_t *a, const model_dims_t *dims, int B, int T);
size_t attn_span_scratch_floats(const attn_span_t *a, const model_dims_t *dims, int B, int T);
// y (B,T,C) = attention of x (B,T,C); saves qkv, probabilities (and dropout masks) in act. With
// rc->mem: the segment continues the state's streams (keys and values of the memory rows too; the
// memory rows' x̂ copied into act for backward), and with rc->mem->advance the state takes x.
void attn_span_forward(attn_span_t *a, const model_dims_t *dims, float *y, const float *x, float *act, float *scratch,
                       int B, int T, const run_ctx_t *rc);
// dx += ∂/∂x, and every parameter's ->grad += (span: through the mask; persistent: through sqrt(N)).
// rc->mem (the forward's n and pos0): W_k, W_v, b_k, b_v and the span also get gradient through the
// memory rows' keys and values; dx has the segment's rows only (nothing flows into the state).
void attn_span_backward(attn_span_t *a, const model_dims_t *dims, float *dx, const float *dy, const float *x,
                        const float *act, float *scratch, int B, int T, const run_ctx_t *rc);
// λ·mean_h(S·z̃_h); with add_grad, span->grad[h] += λ·S/H. 0 without a span.
float attn_span_extra_loss(attn_span_t *a, const model_dims_t *dims, int add_grad);
// Clamp z̃ to [0, 1].
void attn_span_after_step(attn_span_t *a);
// out[h] = z_h = S·z̃_h in tokens; returns H, or 0 without a span.
int attn_span_spans(const attn_span_t *a, const model_dims_t *dims, float *out);
// Head h's key window at sequence length T: keys at distance ≥ the result are never read.
int attn_span_window(const attn_span_t *a, int h, int T);
// block_ops_t.attn_map after a one-sequence forward without memory: head h's (T, T + N) probabilities
// (keys beyond the head's window and j > i are 0; the N persistent columns last). Returns N.
int attn_span_block_attn_map(const block_t *b, const float *act, int T, int head, float *out);
// Segment memory: the state is B·M·C floats (every remembered x̂ row, mem_rows.h).
size_t attn_span_mem_floats(const attn_span_t *a, const model_dims_t *dims, int B);
// Refuse span > max(ctx, M) (M = 0: no memory, span ≤ ctx), one line naming the layer; 0 if fine.
// Kinds without a span (softmax(persist)) accept every M.
int attn_span_check_memory(const attn_span_t *a, block_t *b, int M, char *err, size_t errlen);

size_t attn_span_cache_floats(const attn_span_t *a, const model_dims_t *dims);
size_t attn_span_decode_scratch_floats(const attn_span_t *a, const model_dims_t *dims);
// pos: the position in the window (< ctx) without memory; with dims->memory = M > 0 the stream
// position, the token at segment index i = pos mod ctx seeing positions pos − i − min(pos − i, M) … pos.
void attn_span_decode_step(attn_span_t *a, const model_dims_t *dims, float *y, const float *x, int pos, float *cache,
                           float *scratch);

// Block-level wrappers for kinds whose priv is an attn_span_t (adaptive, allattn, softmax(persist=N)).
void attn_span_block_register(block_t *b, param_table_t *pt, const char *prefix);
size_t attn_span_block_act_floats(const block_t *b, int B, int T);
size_t attn_span_block_scratch_floats(const block_t *b, int B, int T);
void attn_span_block_forward(block_t *b, float *y, const float *x, float *act, float *scratch, int B, int T,
                             const run_ctx_t *rc);
void attn_span_block_backward(block_t *b, float *dx, const float *dy, const float *x, const float *act, float *scratch,
                              int B, int T, const run_ctx_t *rc);
float attn_span_block_extra_loss(block_t *b, int add_grad);
void attn_span_block_after_step(block_t *b, long step, rng_t *rng);
size_t attn_span_block_cache_floats(const block_t *b);
size_t attn_span_block_decode_scratch_floats(const block_t *b);
void attn_span_block_decode_step(block_t *b, float *y, const float *x, int pos, float *cache, float *scratch);
int attn_span_block_spans(const block_t *b, float *out);
size_t attn_span_block_mem_floats(const block_t *b, int B);
int attn_span_block_check_memory(block_t *b, int M, char *err, size_t errlen);
void attn_span_block_free(block_t *b);  // free_priv: the rope table

// The ops-table entries every kind on this core shares, for designated initializers:
//   ATTN_SPAN_CORE_OPS  the computation, decoding, segment memory and cleanup (adaptive, allattn,
//                       softmax(persist=N));
//   ATTN_SPAN_SPAN_OPS  what a learned span adds: its penalty, its clamp, its report (adaptive, allattn).
#define ATTN_SPAN_CORE_OPS                                                                                  \
    .register_params = attn_span_block_register, .act_floats = attn_span_block_act_floats,                 \
    .scratch_floats = attn_span_block_scratch_floats, .forward = attn_span_block_forward,                  \
    .backward = attn_span_block_backward, .cache_floats = attn_span_block_cache_floats,                    \
    .decode_scratch_floats = attn_span_block_decode_scratch_floats, .decode_step = attn_span_block_decode_step, \
    .mem_floats = attn_span_block_mem_floats, .check_memory = attn_span_block_check_memory,                \
    .free_priv = attn_span_block_free, .attn_map = attn_span_block_attn_map, .rel_pos = 1
#define ATTN_SPAN_SPAN_OPS \
    .extra_loss = attn_span_block_extra_loss, .after_step = attn_span_block_after_step, .spans = attn_span_block_spans

#endif
