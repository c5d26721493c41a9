// mixer_softmax.c — causal multi-head softmax attention, the baseline (Vaswani et al. 2017; GPT-2).
//   q, k, v = x·Wqᵀ + bq, x·Wkᵀ + bk, x·Wvᵀ + bv     (B,T,C); head h owns columns h·D … h·D+D−1
//   a_ij    = softmax_{j≤i}(q_i·k_j / sqrt(D)),  y = concat_h(Σ_j a_ij v_j)·Woᵀ + bo
// Tensors: attn.wq, attn.wk, attn.wv (C,C) — registered consecutively so that they form one (3C,C)
// matrix for a single product — attn.bq, attn.bk, attn.bv (C), attn.wo (C,C) std 0.02/sqrt(2L), attn.bo (C).
// The score and weighted-sum products run over row blocks of the lower triangle only.
// --pos rope (LONG_CONTEXT.md §1): each head's q and k are rotated after the bias, q_t ← R_t q_t,
// k_t ← R_t k_t at their window position t, so q_i·k_j depends on j − i only; qkv in act holds the
// ROTATED q and k (the score products read them as they are), the backward turns dq, dk back with
// R_tᵀ before the projection's backward, and decode rotates at pos. Learned/none: no rotation.
// --memory M (LONG_CONTEXT.md §2, Transformer-XL): the state is the layer input x̂ of the last n ≤ M
// stream positions (blocks/mem_rows.h). Each forward recomputes their keys and values with the
// current weights, kvm (B,n,2C) = x̂_mem·[Wk;Wv]ᵀ + [bk;bv] (rope: rotated at stream positions
// pos0−n … pos0−1), and query i of the segment (position pos0+i) attends to the n memory keys and
// segment keys 0…i: scores P (T, n+T) per head, memory columns first. Backward: dWk, dWv (and biases)
// also get the memory rows' share, dkvmᵀ·x̂_mem; no gradient reaches x̂_mem (stop-gradient).
// --pos rel (blocks/relpos.h): attn.rel_k (D, ctx+M) after attn.bo; each head's scores gain
// scale·q_i·r_{i−j} (memory keys too, at their stream distance), a (T, n+T) product QR = scale·Q·rel_k
// per head gathered by distance; the backward scatters dS back into dQR (scratch, (H,B,T,n+T)), then
// dQ += scale·dQR·rel_kᵀ per head and drel_k += scale·Q_hᵀ·dQR_h per head over all batch rows.
// persist=N>0 (persistent key/value pairs per head, arXiv 1907.01470): configure switches the block
// to softmax_persist_ops, the shared core in attn_span.c (adds attn.persist_k, attn.persist_v
// (H,N,D)); persist=0 keeps this file's fast path.
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks/attn_span.h"
#include "blocks/attn_proj.h"
#include "blocks/mem_rows.h"
#include "blocks/relpos.h"
#include "model/block.h"
#include "model/gemm.h"
#include "base/check.h"
#include "model/ops.h"

typedef struct {
    attn_proj_t proj;  // attn.wq|wk|wv, bq|bk|bv, wo, bo (blocks/attn_proj.h)
    relpos_t rel;      // attn.rel_k under --pos rel (blocks/relpos.h), else off
} softmax_t;

enum { ROW_BLOCK = 32 };  // rows of the score matrix handled per product (lower-triangle tiling)

// softmax(persist=N>0): its own ops table, of kind "softmax", with an attn_span_t as priv and the
// attn_span core's functions (no span: no penalty, no clamp, no spans to report). Not in the
// registry and without configure: softmax_configure installs it after reading persist.
static void persist_describe(const block_t *b, char *buf, size_t n) {
    snprintf(buf, n, "softmax(persist=%ld)", ((const attn_span_t *)b->priv)->N);
}

static const block_ops_t softmax_persist_ops = {
    .kind = "softmax",
    .role = ROLE_MIXER,
    .options = "persist",
    .describe = persist_describe,
    ATTN_SPAN_CORE_OPS,
};

static int softmax_configure(block_t *b, spec_block_t *spec, char *err, size_t errlen) {
    long persist;
    if (spec_get_int(spec, "persist", 0, 0, 1L << 20, &persist, block_where(b), err, errlen)) return -1;
    if (persist) {
        attn_span_t *a = xcalloc(1, sizeof *a);
        b->priv = a;  // freed by model_free (with the rope table, through softmax_persist_ops), also on error
        b->ops = &softmax_persist_ops;
        return attn_span_init_persist(a, b, persist, err, errlen);
    }
    softmax_t *s = xcalloc(1, sizeof *s);
    b->priv = s;  // freed by model_free (with the rope table, through softmax_free), also on error
    return attn_proj_rope_init(&s->proj, b, err, errlen);
}

static void softmax_free(block_t *b) {
    softmax_t *s = b->priv;
    if (s) attn_proj_rope_free(&s->proj);
}

static void softmax_describe(const block_t *b, char *buf, size_t n) { snprintf(buf, n, "softmax(persist=0)"); }

static void softmax_register(block_t *b, param_table_t *pt, const char *prefix) {
    softmax_t *s = b->priv;
    attn_proj_register(&s->proj, b->dims, pt, prefix);
    relpos_register(&s->rel, b->dims, pt, prefix);
}

// act layout, with n remembered positions (0 without memory) and Tk = n + T keys per query row:
//   qkv (B,T,3C) | probs (B,H,T,Tk) | [dropped probs | mask (B,H,T,Tk)] | heads (B,T,C)
//   | memory (only when dims->memory > 0): kvm (B,M,2C) | xmem (B,M,C)   (first n rows of each used)
// Sized for n = M; without memory (M = 0) exactly the memory-free layout.
static size_t att_floats(const block_t *b, int B, int T, int n) { return (size_t)B * b->dims->heads * T * (n + T); }
static int has_dropout(const block_t *b) { return b->dropout_masks; }

static size_t softmax_act_floats(const block_t *b, int B, int T) {
    size_t BTC = (size_t)B * T * b->dims->dim, BMC = (size_t)B * b->dims->memory * b->dims->dim;
    return 3 * BTC + att_floats(b, B, T, b->dims->memory) * (has_dropout(b) ? 3 : 1) + BTC + 3 * BMC;
}
// scratch: dheads (B,T,C) | dqkv (B,T,3C) | dP (B,H,T,Tk) | dkvm (B,M,2C) (memory only)
//   | dQR (H,B,T,Tk) (--pos rel only; the forward's QR uses the same place)
static size_t softmax_scratch_floats(const block_t *b, int B, int T) {
    size_t BMC = (size_t)B * b->dims->memory * b->dims->dim, A = att_floats(b, B, T, b->dims->memory);
    int rel = b->dims->pos == POS_REL;
    return 4 * (size_t)B * T * b->dims->dim + A + 2 * BMC + (rel ? A : 0);
}

// Where the rel QR / dQR of (batch row bb, head h) sits in scratch: (H,B,T,Tk), so that one head's
// rows of every batch row are one (B·T, Tk) matrix for drel_k's product.
static float *rel_buffer(const block_t *b, float *scratch, int B, int T) {
    size_t BMC = (size_t)B * b->dims->memory * b->dims->dim;
    return scratch + 4 * (size_t)B * T * b->dims->dim + att_floats(b, B, T, b->dims->memory) + 2 * BMC;
}

typedef struct {
    float *qkv, *probs, *dropped, *mask, *heads, *kvm, *xmem;
} views_t;

static views_t views(const block_t *b, float *act, int B, int T, int n) {
    size_t BTC = (size_t)B * T * b->dims->dim, A = att_floats(b, B, T, n);
    size_t Amax = att_floats(b, B, T, b->dims->memory), BMC = (size_t)B * b->dims->memory * b->dims->dim;
    views_t v = {.qkv = act};
    attn_probs_layout(act + 3 * BTC, A, has_dropout(b), &v.probs, &v.dropped, &v.mask);
    // heads and the memory buffers sit after the probabilities sized for n = M, wherever n is now
    v.heads = act + 3 * BTC + Amax * (has_dropout(b) ? 3 : 1);
    v.kvm = v.heads + BTC;
    v.xmem = v.kvm + 2 * BMC;
    return v;
}

static size_t softmax_mem_floats(const block_t *b, int B) { return mem_rows_floats(B, b->dims->memory, b->dims->dim); }

// One head's memory keys and values (segment memory): Km, Vm (n, D), row stride C2 = 2C; n = 0 without.
typedef struct {
    const float *K, *V;
    int n, C2;
} head_mem_t;

// Forward for one (batch, head): P = causal_softmax(Q·Kᵀ/sqrt(D)), O = P'·V with P' = P⊙mask.
// Q, K, V are strided views into qkv (row stride 3C); O is a strided view into heads (row stride C).
// With memory (hm.n > 0) each row of P has Tk = n + T columns, the n memory keys first: query i sees
// columns 0 … n+i; O gains P'[:, 0:n]·Vm. With n = 0 the products are exactly the memory-free ones.
// --pos rel (QR non-NULL, (T, Tk) scratch): S[i, c] += QR[i, n+i−c], QR = scale·Q·rel_k[:, 0:Tk] —
// column c is the key at stream offset c, at distance n + i − c from query i.
static void head_forward(float *P, const float *Pd, const float *Q, const float *K, const float *V, float *O,
                         const float *mask, float *Pdrop, int T, int D, int C3, int C, float scale, head_mem_t hm,
                         const relpos_t *rel, float *QR) {
    int n = hm.n, Tk = n + T;
    for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) {
        int r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T;
        // S[r0:r1, n : n+r1] = scale · Q[r0:r1]·K[0:r1]ᵀ  (entries with j > i are overwritten below)
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, r1, D, scale, Q + (size_t)r0 * C3, C3, K, C3,
                    0.0f, P + (size_t)r0 * Tk + n, Tk);
    }
    // S[:, 0:n] = scale · Q·Kmᵀ (every query sees every memory key)
    if (n) par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, n, D, scale, Q, C3, hm.K, hm.C2, 0.0f, P, Tk);
    if (QR) relpos_qr(rel, QR, Tk, Q, C3, T, D, Tk, scale);
    for (int i = 0; i < T; i++) {
        float *row = P + (size_t)i * Tk;
        if (QR) relpos_row_add(row, QR + (size_t)i * Tk, n + i, 0, n + i);
        causal_softmax_row(row, n + i, Tk);
        if (mask) {
            const float *m = mask + (size_t)i * Tk;
            float *pd = Pdrop + (size_t)i * Tk;
            for (int j = 0; j < Tk; j++) pd[j] = row[j] * m[j];
        }
    }
    for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) {
        int r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T;
        // O[r0:r1] = P'[r0:r1, n : n+r1]·V[0:r1]
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, D, r1, 1.0f, Pd + (size_t)r0 * Tk + n, Tk, V,
                    C3, 0.0f, O + (size_t)r0 * C, C);
    }
    // O += P'[:, 0:n]·Vm
    if (n) par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, n, 1.0f, Pd, Tk, hm.V, hm.C2, 1.0f, O, C);
}

// The memory keys and values of head h of batch row bb, from kvm (B,n,2C); none when n = 0.
static head_mem_t head_mem(const float *kvm, int bb, int h, int n, int C, int D) {
    head_mem_t hm = {.n = n, .C2 = 2 * C};
    if (n) {
        hm.K = kvm + (size_t)bb * n * 2 * C + h * D;
        hm.V = hm.K + C;
    }
    return hm;
}

static void softmax_forward(block_t *b, float *y, const float *x, float *act, float *scratch, int B, int T,
                            const run_ctx_t *rc) {
    softmax_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, D = C / H, N = B * T;
    seg_mem_t *mem = rc ? rc->mem : NULL;
    int n = mem ? mem->n : 0, M = b->dims->memory;
    long pos0 = mem ? mem->pos0 : 0;
    views_t v = views(b, act, B, T, n);
    // qkv = x·[Wq;Wk;Wv]ᵀ + [bq;bk;bv], one (N,C)×(C,3C) product over the contiguous weights.
    attn_proj_in_forward(&s->proj, v.qkv, x, N, C);
    // --pos rope: q_t, k_t ← R_p q_t, R_p k_t at p = pos0 + t (pos0 = 0 without memory)
    attn_proj_rope_qkv_at(&s->proj, v.qkv, B, T, C, H, pos0, ROPE_ROTATE);
    if (mem) {
        float *state = block_mem_state(b, rc);
        // the n remembered rows → xmem (kept for the backward), their keys and values with today's weights
        for (int bb = 0; bb < B; bb++)
            memcpy(v.xmem + (size_t)bb * n * C, mem_rows_of(state, bb, M, n, C), (size_t)n * C * sizeof(float));
        if (n) {
            attn_proj_kv_forward(&s->proj, v.kvm, v.xmem, B * n, C);
            attn_proj_rope_kv_at(&s->proj, v.kvm, B, n, C, H, pos0 - n, ROPE_ROTATE);
        }
        if (mem->advance) mem_rows_advance(state, x, B, M, n, T, C);
    }
    // Attention dropout: masks drawn serially, in (b,h,i,j) order, before the parallel loop.
    if (v.mask) dropout_mask_draw(v.mask, rc->training ? rc->dropout : 0.0f, rc->rng, att_floats(b, B, T, n));
    float scale = 1.0f / sqrtf((float)D), *QR = relpos_on(&s->rel) ? rel_buffer(b, scratch, B, T) : NULL;
#pragma omp parallel for collapse(2) schedule(static)
    for (int bb = 0; bb < B; bb++)
        for (int h = 0; h < H; h++) {
            size_t bh = (size_t)bb * H + h, TT = (size_t)T * (n + T);
            const float *base = v.qkv + (size_t)bb * T * 3 * C;
            head_forward(v.probs + bh * TT, v.dropped + bh * TT, base + h * D, base + C + h * D, base + 2 * C + h * D,
                         v.heads + (size_t)bb * T * C + h * D, v.mask ? v.mask + bh * TT : NULL,
                         v.mask ? v.dropped + bh * TT : NULL, T, D, 3 * C, C, scale, head_mem(v.kvm, bb, h, n, C, D),
                         &s->rel, QR ? QR + ((size_t)h * B + bb) * TT : NULL);
        }
    attn_proj_out_forward(&s->proj, y, v.heads, N, C);
}

// Backward for one (batch, head). Forward: S = scale·QKᵀ (causal), P = softmax(S), P' = P⊙M, O = P'V.
//   dP' = dO·Vᵀ,  dV += P'ᵀ·dO,  dP = dP'⊙M,  dS = P⊙(dP − rowsum(dP⊙P)),
//   dQ += scale·dS·K,  dK += scale·dSᵀ·Q.      Only the lower triangle (j ≤ i) is touched.
// With memory (hm.n > 0, Tk = n + T columns, memory first) the memory columns add
//   dP'[:, 0:n] = dO·Vmᵀ,  dVm += P'[:, 0:n]ᵀ·dO,  dQ += scale·dS[:, 0:n]·Km,  dKm += scale·dS[:, 0:n]ᵀ·Q
// into dKm, dVm (rows of dkvm, stride 2C).
// --pos rel (dQR non-NULL, (T, Tk)): dQR[i, n+i−c] = dS[i, c] (0 for distances beyond n+i), then
// dQ += scale·dQR·rel_kᵀ; drel_k's share is summed by the caller over the batch rows.
static void head_backward(const float *P, const float *Pd, const float *mask, const float *Q, const float *K,
                          const float *V, const float *dO, float *dQ, float *dK, float *dV, float *dP, int T, int D,
                          int C3, int C, float scale, head_mem_t hm, float *dKm, float *dVm, const relpos_t *rel,
                          float *dQR) {
    int n = hm.n, Tk = n + T;
    for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) {
        int r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T;
        // dP'[r0:r1, n : n+r1] = dO[r0:r1]·V[0:r1]ᵀ
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, r1, D, 1.0f, dO + (size_t)r0 * C, C, V, C3, 0.0f,
                    dP + (size_t)r0 * Tk + n, Tk);
        // dV[0:r1] += P'[r0:r1, n : n+r1]ᵀ·dO[r0:r1]
        par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, D, r1 - r0, 1.0f, Pd + (size_t)r0 * Tk + n, Tk,
                    dO + (size_t)r0 * C, C, 1.0f, dV, C3);
    }
    if (n) {
        // dP'[:, 0:n] = dO·Vmᵀ;  dVm += P'[:, 0:n]ᵀ·dO
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, n, D, 1.0f, dO, C, hm.V, hm.C2, 0.0f, dP, Tk);
        par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, D, T, 1.0f, Pd, Tk, dO, C, 1.0f, dVm, hm.C2);
    }
    for (int i = 0; i < T; i++) {
        float *d = dP + (size_t)i * Tk;
        const float *p = P + (size_t)i * Tk;
        if (mask) {
            const float *m = mask + (size_t)i * Tk;
            for (int j = 0; j <= n + i; j++) d[j] *= m[j];
        }
        causal_softmax_row_backward(d, p, n + i, Tk);
        if (dQR) relpos_row_grad(dQR + (size_t)i * Tk, Tk, d, n + i, 0, n + i);
    }
    if (dQR) relpos_dq(rel, dQ, C3, dQR, Tk, T, D, Tk, scale);
    for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) {
        int r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T;
        // dQ[r0:r1] += scale·dS[r0:r1, n : n+r1]·K[0:r1]
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, D, r1, scale, dP + (size_t)r0 * Tk + n, Tk, K,
                    C3, 1.0f, dQ + (size_t)r0 * C3, C3);
        // dK[0:r1] += scale·dS[r0:r1, n : n+r1]ᵀ·Q[r0:r1]
        par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, D, r1 - r0, scale, dP + (size_t)r0 * Tk + n, Tk,
                    Q + (size_t)r0 * C3, C3, 1.0f, dK, C3);
    }
    if (n) {
        // dQ += scale·dS[:, 0:n]·Km;  dKm += scale·dS[:, 0:n]ᵀ·Q
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, n, scale, dP, Tk, hm.K, hm.C2, 1.0f, dQ, C3);
        par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, D, T, scale, dP, Tk, Q, C3, 1.0f, dKm, hm.C2);
    }
}

static void softmax_backward(block_t *b, float *dx, const float *dy, const float *x, const float *act, float *scratch,
                             int B, int T, const run_ctx_t *rc) {
    softmax_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, D = C / H, N = B * T;
    const seg_mem_t *mem = rc ? rc->mem : NULL;
    int n = mem ? mem->n : 0;
    long pos0 = mem ? mem->pos0 : 0;
    views_t v = views(b, (float *)act, B, T, n);
    float *dheads = scratch, *dqkv = scratch + (size_t)N * C, *dP = dqkv + (size_t)N * 3 * C;
    float *dkvm = dP + att_floats(b, B, T, n);  // (B,n,2C) memory keys' and values' gradient
    memset(dheads, 0, (size_t)N * 4 * C * sizeof(float));
    if (n) memset(dkvm, 0, (size_t)B * n * 2 * C * sizeof(float));
    // y = heads·Woᵀ + bo
    attn_proj_out_backward(&s->proj, dheads, dy, v.heads, N, C);
    float scale = 1.0f / sqrtf((float)D), *dQR = relpos_on(&s->rel) ? rel_buffer(b, scratch, B, T) : NULL;
#pragma omp parallel for collapse(2) schedule(static)
    for (int bb = 0; bb < B; bb++)
        for (int h = 0; h < H; h++) {
            size_t bh = (size_t)bb * H + h, TT = (size_t)T * (n + T);
            const float *base = v.qkv + (size_t)bb * T * 3 * C;
            float *dbase = dqkv + (size_t)bb * T * 3 * C, *dmem = dkvm + (size_t)bb * n * 2 * C + h * D;
            head_backward(v.probs + bh * TT, v.dropped + bh * TT, v.mask ? v.mask + bh * TT : NULL, base + h * D,
                          base + C + h * D, base + 2 * C + h * D, dheads + (size_t)bb * T * C + h * D, dbase + h * D,
                          dbase + C + h * D, dbase + 2 * C + h * D, dP + bh * TT, T, D, 3 * C, C, scale,
                          head_mem(v.kvm, bb, h, n, C, D), dmem, dmem + C, &s->rel,
                          dQR ? dQR + ((size_t)h * B + bb) * TT : NULL);
        }
    // --pos rel: drel_k += scale·Q_hᵀ·dQR_h, head by head over all B·T query rows (a fixed order)
    if (dQR)
        for (int h = 0; h < H; h++)
            relpos_dk(&s->rel, v.qkv + h * D, 3 * C, dQR + (size_t)h * B * T * (n + T), n + T, N, D, n + T, scale);
    // --pos rope: q' = R_p q ⇒ dq = R_pᵀ dq' (and k); dv is untouched
    attn_proj_rope_qkv_at(&s->proj, dqkv, B, T, C, H, pos0, ROPE_TRANSPOSE);
    // qkv = x·Wqkvᵀ + bqkv
    attn_proj_in_backward(&s->proj, dx, dqkv, x, N, C);
    if (n) {  // kvm = x̂_mem·[Wk;Wv]ᵀ + [bk;bv], rotated at pos0−n…: the weights' share, none for x̂_mem
        attn_proj_rope_kv_at(&s->proj, dkvm, B, n, C, H, pos0 - n, ROPE_TRANSPOSE);
        attn_proj_kv_backward_weights(&s->proj, dkvm, v.xmem, B * n, C);
    }
}

// ---------------------------------------------------------------------------------------------
// decode: the cache holds, per head h, K_h (R, D) then V_h (R, D), a ring of R positions (position p in
// slot p mod R): R = ctx without memory (positions 0 … ctx−1, slot = p), R = M + ctx with memory.
// A token at position p sees positions lo … p: lo = 0 without memory; with memory lo = s − min(s, M)
// for its segment's start s = p − p mod ctx — the M positions before its segment and the segment so
// far, exactly the segment-wise forward's keys. Those are at most R consecutive slots (two runs when
// they wrap); a head's scores and output are one matrix-vector product per run. --pos rel: the key
// at slot run index j (position lo + j) is at distance pos − lo − j; its term scale·q·r_d is one
// product rel_k[:, 0:count]ᵀ·q per head.

static int cache_positions(const block_t *b) { return b->dims->ctx + b->dims->memory; }

static size_t softmax_cache_floats(const block_t *b) {
    return 2 * (size_t)cache_positions(b) * b->dims->dim;
}
static size_t softmax_decode_scratch_floats(const block_t *b) {
    return 4 * (size_t)b->dims->dim + cache_positions(b) * (b->dims->pos == POS_REL ? 2 : 1);
}

static void softmax_decode_step(block_t *b, float *y, const float *x, int pos, float *cache, float *scratch) {
    softmax_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, D = C / H, ctx = b->dims->ctx, M = b->dims->memory;
    int R = cache_positions(b);
    CHECK(pos >= 0 && (M > 0 || pos < ctx));
    int seg_start = pos - pos % ctx, lo = M ? seg_start - (seg_start < M ? seg_start : M) : 0;
    int count = pos - lo + 1, first = lo % R, run1 = count < R - first ? count : R - first, run2 = count - run1;
    float *qkv = scratch, *heads = scratch + 3 * C, *w = heads + C, *qr = w + R;
    attn_proj_in_forward(&s->proj, qkv, x, 1, C);
    attn_proj_rope_one(&s->proj, qkv, C, H, pos);  // --pos rope: the cache holds R_j k_j
    float scale = 1.0f / sqrtf((float)D);
    for (int h = 0; h < H; h++) {
        float *Kh = cache + (size_t)2 * h * R * D, *Vh = Kh + (size_t)R * D;
        memcpy(Kh + (size_t)(pos % R) * D, qkv + C + h * D, (size_t)D * sizeof(float));
        memcpy(Vh + (size_t)(pos % R) * D, qkv + 2 * C + h * D, (size_t)D * sizeof(float));
        // w = scale·K_h[lo..pos]·q, softmax over them, o = V_h[lo..pos]ᵀ·w (slots first…, then 0… if wrapped)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, run1, D, scale, Kh + (size_t)first * D, D, qkv + h * D, 1, 0.0f, w, 1);
        if (run2) cblas_sgemv(CblasRowMajor, CblasNoTrans, run2, D, scale, Kh, D, qkv + h * D, 1, 0.0f, w + run1, 1);
        if (relpos_on(&s->rel)) {  // w[j] += scale·q·r_{count−1−j}
            relpos_decode(&s->rel, qr, qkv + h * D, D, count, scale);
            relpos_row_add(w, qr, count - 1, 0, count - 1);
        }
        float mx = w[0];
        for (int j = 1; j < count; j++) mx = w[j] > mx ? w[j] : mx;
        float sum = 0;
        for (int j = 0; j < count; j++) {
            w[j] = expf(w[j] - mx);
            sum += w[j];
        }
        cblas_sgemv(CblasRowMajor, CblasTrans, run1, D, 1.0f / sum, Vh + (size_t)first * D, D, w, 1, 0.0f,
                    heads + h * D, 1);
        if (run2) cblas_sgemv(CblasRowMajor, CblasTrans, run2, D, 1.0f / sum, Vh, D, w + run1, 1, 1.0f, heads + h * D, 1);
    }
    attn_proj_out_forward(&s->proj, y, heads, 1, C);
}

static const char *const softmax_examples[] = {"softmax", "softmax(persist=3)", NULL};

// infer --attn-map: head h's probabilities of a one-sequence forward without memory (n = 0), as saved.
static int softmax_attn_map(const block_t *b, const float *act, int T, int head, float *out) {
    if (!out) return 0;
    const float *P = views(b, (float *)act, 1, T, 0).probs + (size_t)head * T * T;
    for (int i = 0; i < T; i++)
        for (int j = 0; j < T; j++) out[(size_t)i * T + j] = j <= i ? P[(size_t)i * T + j] : 0.0f;
    return 0;
}

const block_ops_t mixer_softmax_ops = {
    .kind = "softmax",
    .role = ROLE_MIXER,
    .options = "persist",
    .examples = softmax_examples,
    .configure = softmax_configure,
    .describe = softmax_describe,
    .register_params = softmax_register,
    .act_floats = softmax_act_floats,
    .scratch_floats = softmax_scratch_floats,
    .forward = softmax_forward,
    .backward = softmax_backward,
    .cache_floats = softmax_cache_floats,
    .decode_scratch_floats = softmax_decode_scratch_floats,
    .decode_step = softmax_decode_step,
    .attn_map = softmax_attn_map,
    .mem_floats = softmax_mem_floats,
    .free_priv = softmax_free,
    .rel_pos = 1,
};
