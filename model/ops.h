// ops.h — the elementary ops of the model, each a forward/backward pair (llm.c's convention).
//
// Argument order: outputs, saved buffers, inputs, weights, dimensions.
// Backward ACCUMULATES (+=) into every gradient it writes, input gradients included; callers zero
// gradient buffers once. Shapes in PyTorch order: N rows (= B·T), C/IN/OUT widths; a linear weight
// is stored [OUT, IN] and the math reads y = x·Wᵀ + b.
// Matrix products go to OpenBLAS; the other loops are OpenMP-parallel over rows.
#ifndef ATTNLAB_OPS_H
#define ATTNLAB_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "base/rng.h"

// out[b,t,:] = wte[tok[b,t],:] + wpe[t,:]           out (B,T,C), wte (V,C), wpe (ctx,C)
// wpe NULL (--pos rope or none: no learned table): out[b,t,:] = wte[tok[b,t],:].
void encoder_forward(float *out, const int32_t *tok, const float *wte, const float *wpe, int B, int T, int C);
// dwte[tok] += dout; dwpe[t] += Σ_b dout[b,t] (dwpe NULL: no table, only dwte)
void encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tok, int B, int T, int C);

// LayerNorm over the last axis, eps 1e-5, biased variance: out = (x - μ)·rstd·w + b.
// mean, rstd (N) are saved for backward.
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                       int N, int C);
// res = a + b (N,C), then out = LayerNorm(res) as layernorm_forward, one row at a time (one pass
// over the residual stream instead of two); res may alias a or b. Same bits as the two calls.
void residual_layernorm_forward(float *res, float *out, float *mean, float *rstd, const float *a, const float *b,
                                const float *w, const float *bias, int N, int C);
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                        const float *mean, const float *rstd, int N, int C);

// out (N,OUT) = inp (N,IN) · wᵀ + bias; w (OUT,IN); bias (OUT) or NULL.
void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int IN, int OUT);
// dinp += dout·w; dw += doutᵀ·inp; dbias += Σ_n dout. Any of dinp/dw/dbias may be NULL.
void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w,
                     int N, int IN, int OUT);

// GELU, tanh approximation: out = ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
void gelu_forward(float *out, const float *inp, size_t n);
// dinp += dout · gelu'(inp). dinp may alias dout (in-place: dinp = dout · gelu'(inp) then).
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

// GELU forward with the bias of the product before it, saving its derivative for gelu_backward_bias:
// with x = inp + bias (bias (OUT) broadcast over the N rows; NULL: none), out = GELU(x) and deriv =
// gelu'(x) from the same tanh (the backward then needs no tanh of its own). deriv may alias inp.
// The product that made inp runs with beta 0 and no bias: this pass adds it.
void gelu_forward_deriv(float *out, float *deriv, const float *inp, const float *bias, int N, int OUT);
// GELU backward fused with the bias gradient of the product that made its input pre (N,OUT): on
// entry d holds dL/dh for h = GELU(pre), on exit dL/dpre = d·deriv (overwritten, not accumulated),
// with deriv = gelu'(pre) as gelu_forward_deriv saved it; dbias (OUT) += Σ_n dL/dpre[n,:]. One
// memory-bound pass instead of gelu_backward's tanh per element and matmul_backward's bias sum.
void gelu_backward_bias(float *d, float *dbias, const float *deriv, int N, int OUT);

// out = a + b (n). May alias.
void residual_forward(float *out, const float *a, const float *b, size_t n);

// Per-row softmax cross-entropy over V logits. losses (N) = -log p[target], 0 where target < 0 (a
// position that is not scored: its probabilities are still computed, backward leaves its row alone);
// probs (N,V) may alias logits (then logits are overwritten by probabilities).
void crossentropy_forward(float *losses, float *probs, const float *logits, const int32_t *targets, int N, int V);
// dlogits (N,V) += (probs - onehot(target)) · dloss[n]   (dloss: scale per row, e.g. 1/N for a mean).
void crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets, const float *dloss, int N, int V);

// Dropout: mask[i] = 0 with probability p, else 1/(1-p); out = inp·mask. Masks are drawn in index
// order from rng, so a run is deterministic. p == 0 writes mask = 1 without drawing.
void dropout_forward(float *out, float *mask, const float *inp, float p, rng_t *rng, size_t n);
// The masks alone: mask[i] = 0 with probability p, else 1/(1−p); all 1 when p ≤ 0. Drawn serially
// from rng in index order (callers draw before their parallel loops, so runs are reproducible).
void dropout_mask_draw(float *mask, float p, rng_t *rng, size_t n);
// dinp += dout·mask
void dropout_backward(float *dinp, const float *dout, const float *mask, size_t n);

// Causal attention rows (softmax, collab). Row i of a (T,T) score matrix:
//   forward   row[0..i] ← softmax(row[0..i]) (max-subtracted), row[i+1..T) ← 0
//   backward  with p = that softmax and d = dL/dp: d[j] ← p[j]·(d[j] − Σ_{j'≤i} d[j']·p[j']) for j ≤ i,
//             d[i+1..T) ← 0   (the softmax Jacobian diag(p) − p·pᵀ applied to d)
void causal_softmax_row(float *row, int i, int T);
// The probability buffers of such an attention, laid out from p: probs (A) | [dropped (A) | mask (A)].
// Without dropout, dropped aliases probs and mask is NULL. Returns the first float after them.
static inline float *attn_probs_layout(float *p, size_t A, int dropout, float **probs, float **dropped,
                                       float **mask) {
    *probs = p;
    *dropped = dropout ? p + A : p;
    *mask = dropout ? p + 2 * A : NULL;
    return p + (dropout ? 3 * A : A);
}
void causal_softmax_row_backward(float *d, const float *p, int i, int T);

#endif
