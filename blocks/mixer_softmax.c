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
#include "model/block.h"
#include "base/check.h"
#include "model/ops.h"

typedef struct {
    attn_proj_t proj;  // attn.wq|wk|wv, bq|bk|bv, wo, bo (blocks/attn_proj.h)
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
}

// act layout: qkv (B,T,3C) | probs (B,H,T,T) | [dropped probs (B,H,T,T) | mask (B,H,T,T)] | heads (B,T,C)
static size_t att_floats(const block_t *b, int B, int T) { return (size_t)B * b->dims->heads * T * T; }
static int has_dropout(const block_t *b) { return b->dropout_masks; }

static size_t softmax_act_floats(const block_t *b, int B, int T) {
    size_t BTC = (size_t)B * T * b->dims->dim;
    return 3 * BTC + att_floats(b, B, T) * (has_dropout(b) ? 3 : 1) + BTC;
}
// scratch: dheads (B,T,C) | dqkv (B,T,3C) | dP (B,H,T,T)
static size_t softmax_scratch_floats(const block_t *b, int B, int T) {
    return 4 * (size_t)B * T * b->dims->dim + att_floats(b, B, T);
}

typedef struct {
    float *qkv, *probs, *dropped, *mask, *heads;
} views_t;

static views_t views(const block_t *b, float *act, int B, int T) {
    size_t BTC = (size_t)B * T * b->dims->dim, A = att_floats(b, B, T);
    views_t v = {.qkv = act};
    v.heads = attn_probs_layout(act + 3 * BTC, A, has_dropout(b), &v.probs, &v.dropped, &v.mask);
    return v;
}

// Forward for one (batch, head): P = causal_softmax(Q·Kᵀ/sqrt(D)), O = P'·V with P' = P⊙mask.
// Q, K, V are strided views into qkv (row stride 3C); O is a strided view into heads (row stride C).
static void head_forward(float *P, const float *Pd, const float *Q, const float *K, const float *V, float *O,
                         const float *mask, float *Pdrop, int T, int D, int C3, int C, float scale) {
    for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) {
        int r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T;
        // S[r0:r1, 0:r1] = scale · Q[r0:r1]·K[0:r1]ᵀ  (entries with j > i are overwritten below)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, r1, D, scale, Q + (size_t)r0 * C3, C3, K, C3,
                    0.0f, P + (size_t)r0 * T, T);
    }
    for (int i = 0; i < T; i++) {
        float *row = P + (size_t)i * T;
        causal_softmax_row(row, i, T);
        if (mask) {
            const float *m = mask + (size_t)i * T;
            float *pd = Pdrop + (size_t)i * T;
            for (int j = 0; j < T; j++) pd[j] = row[j] * m[j];
        }
    }
    for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) {
        int r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T;
        // O[r0:r1] = P'[r0:r1, 0:r1]·V[0:r1]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, D, r1, 1.0f, Pd + (size_t)r0 * T, T, V, C3,
                    0.0f, O + (size_t)r0 * C, C);
    }
}

static void softmax_forward(block_t *b, float *y, const float *x, float *act, float *scratch, int B, int T,
                            const run_ctx_t *rc) {
    softmax_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, D = C / H, N = B * T;
    views_t v = views(b, act, B, T);
    // qkv = x·[Wq;Wk;Wv]ᵀ + [bq;bk;bv], one (N,C)×(C,3C) product over the contiguous weights.
    attn_proj_in_forward(&s->proj, v.qkv, x, N, C);
    attn_proj_rope_qkv(&s->proj, v.qkv, B, T, C, H, ROPE_ROTATE);  // --pos rope: q_t, k_t ← R_t q_t, R_t k_t
    // Attention dropout: masks drawn serially, in (b,h,i,j) order, before the parallel loop.
    if (v.mask) dropout_mask_draw(v.mask, rc->training ? rc->dropout : 0.0f, rc->rng, att_floats(b, B, T));
    float scale = 1.0f / sqrtf((float)D);
#pragma omp parallel for collapse(2) schedule(static)
    for (int bb = 0; bb < B; bb++)
        for (int h = 0; h < H; h++) {
            size_t bh = (size_t)bb * H + h, TT = (size_t)T * T;
            const float *base = v.qkv + (size_t)bb * T * 3 * C;
            head_forward(v.probs + bh * TT, v.dropped + bh * TT, base + h * D, base + C + h * D, base + 2 * C + h * D,
                         v.heads + (size_t)bb * T * C + h * D, v.mask ? v.mask + bh * TT : NULL,
                         v.mask ? v.dropped + bh * TT : NULL, T, D, 3 * C, C, scale);
        }
    attn_proj_out_forward(&s->proj, y, v.heads, N, C);
}

// Backward for one (batch, head). Forward: S = scale·QKᵀ (causal), P = softmax(S), P' = P⊙M, O = P'V.
//   dP' = dO·Vᵀ,  dV += P'ᵀ·dO,  dP = dP'⊙M,  dS = P⊙(dP − rowsum(dP⊙P)),
//   dQ += scale·dS·K,  dK += scale·dSᵀ·Q.      Only the lower triangle (j ≤ i) is touched.
static void head_backward(const float *P, const float *Pd, const float *mask, const float *Q, const float *K,
                          const float *V, const float *dO, float *dQ, float *dK, float *dV, float *dP, int T, int D,
                          int C3, int C, float scale) {
    for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) {
        int r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T;
        // dP'[r0:r1, 0:r1] = dO[r0:r1]·V[0:r1]ᵀ
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, r1, D, 1.0f, dO + (size_t)r0 * C, C, V, C3, 0.0f,
                    dP + (size_t)r0 * T, T);
        // dV[0:r1] += P'[r0:r1, 0:r1]ᵀ·dO[r0:r1]
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, D, r1 - r0, 1.0f, Pd + (size_t)r0 * T, T,
                    dO + (size_t)r0 * C, C, 1.0f, dV, C3);
    }
    for (int i = 0; i < T; i++) {
        float *d = dP + (size_t)i * T;
        const float *p = P + (size_t)i * T;
        if (mask) {
            const float *m = mask + (size_t)i * T;
            for (int j = 0; j <= i; j++) d[j] *= m[j];
        }
        causal_softmax_row_backward(d, p, i, T);
    }
    for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) {
        int r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T;
        // dQ[r0:r1] += scale·dS[r0:r1, 0:r1]·K[0:r1]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, D, r1, scale, dP + (size_t)r0 * T, T, K, C3,
                    1.0f, dQ + (size_t)r0 * C3, C3);
        // dK[0:r1] += scale·dS[r0:r1, 0:r1]ᵀ·Q[r0:r1]
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, D, r1 - r0, scale, dP + (size_t)r0 * T, T,
                    Q + (size_t)r0 * C3, C3, 1.0f, dK, C3);
    }
}

static void softmax_backward(block_t *b, float *dx, const float *dy, const float *x, const float *act, float *scratch,
                             int B, int T, const run_ctx_t *rc) {
    softmax_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, D = C / H, N = B * T;
    views_t v = views(b, (float *)act, B, T);
    float *dheads = scratch, *dqkv = scratch + (size_t)N * C, *dP = dqkv + (size_t)N * 3 * C;
    memset(dheads, 0, (size_t)N * 4 * C * sizeof(float));
    // y = heads·Woᵀ + bo
    attn_proj_out_backward(&s->proj, dheads, dy, v.heads, N, C);
    float scale = 1.0f / sqrtf((float)D);
#pragma omp parallel for collapse(2) schedule(static)
    for (int bb = 0; bb < B; bb++)
        for (int h = 0; h < H; h++) {
            size_t bh = (size_t)bb * H + h, TT = (size_t)T * T;
            const float *base = v.qkv + (size_t)bb * T * 3 * C;
            float *dbase = dqkv + (size_t)bb * T * 3 * C;
            head_backward(v.probs + bh * TT, v.dropped + bh * TT, v.mask ? v.mask + bh * TT : NULL, base + h * D,
                          base + C + h * D, base + 2 * C + h * D, dheads + (size_t)bb * T * C + h * D, dbase + h * D,
                          dbase + C + h * D, dbase + 2 * C + h * D, dP + bh * TT, T, D, 3 * C, C, scale);
        }
    // --pos rope: q' = R_t q ⇒ dq = R_tᵀ dq' (and k); dv is untouched
    attn_proj_rope_qkv(&s->proj, dqkv, B, T, C, H, ROPE_TRANSPOSE);
    // qkv = x·Wqkvᵀ + bqkv
    attn_proj_in_backward(&s->proj, dx, dqkv, x, N, C);
}

// ---------------------------------------------------------------------------------------------
// decode: the cache holds, per head h, K_h (ctx, D) then V_h (ctx, D) of the positions seen so far —
// per-head contiguous, so a head's scores s = K_h[0..pos]·q and output o = V_h[0..pos]ᵀ·w are one
// matrix-vector product each.

static size_t softmax_cache_floats(const block_t *b) {
    return 2 * (size_t)b->dims->ctx * b->dims->dim;
}
static size_t softmax_decode_scratch_floats(const block_t *b) {
    return 4 * (size_t)b->dims->dim + b->dims->ctx;
}

static void softmax_decode_step(block_t *b, float *y, const float *x, int pos, float *cache, float *scratch) {
    softmax_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, D = C / H, ctx = b->dims->ctx;
    CHECK(pos >= 0 && pos < ctx);
    float *qkv = scratch, *heads = scratch + 3 * C, *w = heads + C;
    attn_proj_in_forward(&s->proj, qkv, x, 1, C);
    attn_proj_rope_one(&s->proj, qkv, C, H, pos);  // --pos rope: the cache holds R_j k_j
    float scale = 1.0f / sqrtf((float)D);
    for (int h = 0; h < H; h++) {
        float *Kh = cache + (size_t)2 * h * ctx * D, *Vh = Kh + (size_t)ctx * D;
        memcpy(Kh + (size_t)pos * D, qkv + C + h * D, (size_t)D * sizeof(float));
        memcpy(Vh + (size_t)pos * D, qkv + 2 * C + h * D, (size_t)D * sizeof(float));
        // w = scale·K_h[0..pos]·q, softmax over j ≤ pos, o = V_h[0..pos]ᵀ·w
        cblas_sgemv(CblasRowMajor, CblasNoTrans, pos + 1, D, scale, Kh, D, qkv + h * D, 1, 0.0f, w, 1);
        float mx = w[0];
        for (int j = 1; j <= pos; j++) mx = w[j] > mx ? w[j] : mx;
        float sum = 0;
        for (int j = 0; j <= pos; j++) {
            w[j] = expf(w[j] - mx);
            sum += w[j];
        }
        cblas_sgemv(CblasRowMajor, CblasTrans, pos + 1, D, 1.0f / sum, Vh, D, w, 1, 0.0f, heads + h * D, 1);
    }
    attn_proj_out_forward(&s->proj, y, heads, 1, C);
}

static const char *const softmax_examples[] = {"softmax", "softmax(persist=3)", NULL};

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
    .free_priv = softmax_free,
};
