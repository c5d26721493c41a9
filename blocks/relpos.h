// relpos.h — learned relative positions (--pos rel) for the softmax family (softmax, adaptive,
// allattn): the position term of the Adaptive Attention Span reference (Sukhbaatar et al. 2019,
// facebookresearch/adaptive-span models.py, `key_pe`), written from its math.
//
//   score_ij = (q_i·k_j + q_i·r_{i−j}) / sqrt(D)      d = i − j ≥ 0 the distance (stream positions)
//
// r_d is column d of attn.rel_k (D, R), R = dims->rel_reach = ctx + M (every distance a query sees:
// its segment so far and the M remembered positions before it). One table per layer, shared by the
// layer's heads (the reference shares one table across heads AND layers; per layer keeps each block
// the owner of its tensors, docs/long_context.md). No rope and no wpe under rel; persistent keys
// (persist=N) carry no position and get no relative term.
//
// Computed as a product then a gather, per head with queries Q (T, D):
//   QR = scale·Q·rel_k[:, 0:W]    (T, W)   W the widest distance + 1 that any query reads
//   S_ij += QR[i, d(i,j)]                   (the caller's score layout gives d for each column)
// Backward, with dS the scores' gradient (scale included in QR, so):
//   dQR[i, d(i,j)] = dS_ij (one j per (i, d)), 0 where no key sits at that distance
//   dQ += scale·dQR·rel_kᵀ,   drel_k[:, 0:W] += scale·Σ_{b,h} Q_bhᵀ·dQR_bh
// Init: N(0, 1), the reference's draw, weight decay on (a matrix). Measured on Transformer-XL (long-
// range corpus, memory 1024, step 1,000): val 1.6986 at N(0, 1) against 2.2558 at N(0, 0.02²), where
// the term starts near zero and the model content-only (docs/results.md).
#ifndef ATTNLAB_RELPOS_H
#define ATTNLAB_RELPOS_H

#include "model/block.h"
#include "model/params.h"

typedef struct {
    param_t *k;  // attn.rel_k (D, R) row-major: element (e, d) at k->data[e·R + d]; NULL unless --pos rel
    int R;       // distances 0 … R−1
} relpos_t;

// Registers attn.rel_k (D, dims->rel_reach) when dims->pos == POS_REL; otherwise leaves r->k NULL.
void relpos_register(relpos_t *r, const model_dims_t *dims, param_table_t *pt, const char *prefix);
static inline int relpos_on(const relpos_t *r) { return r->k != NULL; }

// QR (T, W), row stride ldqr ≥ W: QR = scale·Q·rel_k[:, 0:W], Q (T, D) with row stride ldq. W ≤ R.
void relpos_qr(const relpos_t *r, float *QR, int ldqr, const float *Q, int ldq, int T, int D, int W, float scale);
// One score row: S[c] += QR_row[d0 − c] for c = c_lo … c_hi (column c at distance d0 − c).
static inline void relpos_row_add(float *S, const float *QR_row, int d0, int c_lo, int c_hi) {
    for (int c = c_lo; c <= c_hi; c++) S[c] += QR_row[d0 - c];
}
// Its backward for one row: dQR_row[d0 − c] = dS[c] for c = c_lo … c_hi, every other entry of
// dQR_row[0 … W) zero.
void relpos_row_grad(float *dQR_row, int W, const float *dS, int d0, int c_lo, int c_hi);
// dQ (T, D; row stride lddq) += scale·dQR·rel_k[:, 0:W]ᵀ.
void relpos_dq(const relpos_t *r, float *dQ, int lddq, const float *dQR, int lddqr, int T, int D, int W, float scale);
// drel_k[:, 0:W] += scale·Qᵀ·dQR for Q (N, D; row stride ldq) and dQR (N, W; row stride lddqr), N
// rows of queries (all batch rows of one head at once). Call serially (it is the shared tensor's sum).
void relpos_dk(relpos_t *r, const float *Q, int ldq, const float *dQR, int lddqr, int N, int D, int W, float scale);
// Decode, one query q (D): out[d] = scale·q·r_d for d = 0 … W−1.
void relpos_decode(const relpos_t *r, float *out, const float *q, int D, int W, float scale);

#endif
