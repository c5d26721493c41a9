// mixer_collab.c — collaborative multi-head attention (Cordonnier et al. 2020, arXiv 2006.16362;
// BLOCKS.md §7). The heads share one query/key projection of width R = D̃ (option dk, default C/2)
// and differ by a mixing vector m_h ∈ R^R:
//   Q̃ = x·Cqᵀ, K̃ = x·Ckᵀ (B,T,R), no biases;  cb = x·Cbᵀ (B,T,H) the content bias of each key
//   s^h_ij = ((Q̃_i ⊙ m_h)·K̃_j + cb_j,h) / sqrt(D),  D = C/H (the ORIGINAL head width, not R/H)
//   a^h = causal_softmax_j≤i(s^h_i),  heads = concat_h(Σ_j a^h_ij V^h_j),  y = heads·Woᵀ + bo
//   with V = x·Wvᵀ + bv exactly as in softmax attention.
// Tensors: attn.cq, attn.ck (R,C), attn.wv (C,C), attn.cb (H,C) — registered consecutively so that
// one (N,C)×(C,2R+C+H) product computes Q̃|K̃|V|cb — then attn.mix (H,R) std 0.2, attn.bv (C),
// attn.wo (C,C) std 0.02/sqrt(2L), attn.bo (C). wv, bv, wo, bo carry softmax's names and inits, so
// `--init-from` copies them; cq, ck, mix, cb are built from softmax's wq, wk, bq by init_from below
// (concatenate at R = C, CP/ALS decomposition (blocks/cp_als.c) below it).
// Attention dropout as in softmax: one mask per (b,h,i,j), drawn serially before the parallel loop.
// --pos rope (LONG_CONTEXT.md §1): the score of head h uses the rotated MIXED query and the rotated
// shared key (width R = dk, which must be even):
//   s^h_ij = ((R_i(Q̃_i ⊙ m_h))·(R_j K̃_j) + cb_j,h) / sqrt(D)
// so the mixed part is (Q̃_i⊙m_h)·R_{j−i}K̃_j: a function of j − i only. Rotating Q̃ before the mixing
// would give Q̃_iᵀ R_iᵀ diag(m_h) R_j K̃_j, and R_iᵀ diag(m_h) R_j depends on i and j separately
// unless m_h is constant within each rotation pair (i, i + R/2). cb (content bias) and V carry no
// position. Backward in seq_backward; docs/blocks/collab.md "Rotary positions".
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/block.h"
#include "base/check.h"
#include "blocks/cp_als.h"
#include "model/ops.h"
#include "model/rope.h"

typedef struct {
    long R;  // D̃
    param_t *cq, *ck, *wv, *cb, *mix, *bv, *wo, *bo;
    int rope_on;       // dims->pos == POS_ROPE
    rope_table_t rope; // width R, positions [0, min(ctx, ROPE_TABLE_MAX_POS)); built by configure, freed by collab_free
} collab_t;

enum { ROW_BLOCK = 32 };  // score rows per product (lower-triangle tiling, as in softmax)

static int collab_configure(block_t *b, spec_block_t *spec, char *err, size_t errlen) {
    const char *where = block_where(b);
    long def = b->dims->dim / 2 > 0 ? b->dims->dim / 2 : 1, R;
    if (spec_get_int(spec, "dk", def, 1, 1L << 16, &R, where, err, errlen)) return -1;
    collab_t *s = xcalloc(1, sizeof(collab_t));
    b->priv = s;
    s->R = R;
    if (b->dims->pos == POS_ROPE) {
        char why[128];
        if (R % 2 || rope_table_init(&s->rope, (int)R, rope_table_positions(b->dims->ctx), why, sizeof why))
            return seterr(err, errlen, "%s: --pos rope needs an even dk (the shared query/key width), got dk=%ld",
                          where, R);
        s->rope_on = 1;
    }
    return 0;
}

static void collab_free(block_t *b) {
    collab_t *s = b->priv;
    if (s) rope_table_free(&s->rope);
}

// Layouts of the rotated vectors (width R): the shared keys K̃ in proj rows (stride P) of B
// sequences, and one sequence's mixed queries Qh (T,R) contiguous.
static rope_layout_t keys_layout(int B, int T, int P) {
    return (rope_layout_t){.B = B, .T = T, .n_vec = 1, .batch_stride = (size_t)T * P, .pos_stride = (size_t)P, .vec_stride = 0};
}
static rope_layout_t mixed_layout(int T, int R) {
    return (rope_layout_t){.B = 1, .T = T, .n_vec = 1, .batch_stride = (size_t)T * R, .pos_stride = (size_t)R, .vec_stride = 0};
}

static void collab_describe(const block_t *b, char *buf, size_t n) {
    const collab_t *s = b->priv;
    snprintf(buf, n, "collab(dk=%ld)", s->R);
}

static void collab_register(block_t *b, param_table_t *pt, const char *prefix) {
    collab_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, R = (int)s->R;
    const param_spec_t qk = {.shape = {R, C}, .init = INIT_NORMAL, .std = 0.02f, .decay = 1},
                       bias = {.shape = {C}, .init = INIT_ZEROS};
    s->cq = params_add(pt, prefix, "cq", qk);
    s->ck = params_add(pt, prefix, "ck", qk);
    s->wv = params_add(pt, prefix, "wv", (param_spec_t){.shape = {C, C}, .init = INIT_NORMAL, .std = 0.02f, .decay = 1});
    s->cb = params_add(pt, prefix, "cb", (param_spec_t){.shape = {H, C}, .init = INIT_NORMAL, .std = 0.02f, .decay = 1});
    s->mix = params_add(pt, prefix, "mix", (param_spec_t){.shape = {H, R}, .init = INIT_NORMAL, .std = 0.2f, .decay = 1});
    s->bv = params_add(pt, prefix, "bv", bias);
    s->wo = params_add(pt, prefix, "wo", (param_spec_t){.shape = {C, C}, .init = INIT_NORMAL,
                                                        .std = block_out_proj_std(b->dims), .decay = 1});
    s->bo = params_add(pt, prefix, "bo", bias);
}

// Width of the fused projection row: Q̃ (R) | K̃ (R) | V (C) | cb (H).
static int proj_width(const block_t *b) {
    const collab_t *s = b->priv;
    return 2 * (int)s->R + b->dims->dim + b->dims->heads;
}
static void check_fused(const collab_t *s, int C, int H) {
    size_t RC = (size_t)s->R * C;
    CHECK(s->ck->data == s->cq->data + RC && s->wv->data == s->ck->data + RC &&
          s->cb->data == s->wv->data + (size_t)C * C && s->cb->numel == (size_t)H * C);
}
// proj (N,P) = x (N,C)·[Cq;Ck;Wv;Cb]ᵀ, then V += bv
static void project(const collab_t *s, float *proj, const float *x, int N, int C, int H, int P) {
    check_fused(s, C, H);
    matmul_forward(proj, x, s->cq->data, NULL, N, C, P);
    int off = 2 * (int)s->R;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) proj[(size_t)n * P + off + c] += s->bv->data[c];
}

// act layout: proj (B,T,P) | probs (B,H,T,T) | [dropped (B,H,T,T) | mask (B,H,T,T)] | heads (B,T,C)
// --pos rope: proj's K̃ columns hold the ROTATED keys R_j K̃_j (rotated in place: the backward needs
// only them, since the projection's backward reads x); Q̃ stays unrotated (the mixing comes first,
// and dm needs Q̃); the rotated mixed queries are recomputed per head, as Qh is today. No extra memory.
static size_t att_floats(const block_t *b, int B, int T) { return (size_t)B * b->dims->heads * T * T; }
static int has_dropout(const block_t *b) { return b->dropout_masks; }

static size_t collab_act_floats(const block_t *b, int B, int T) {
    size_t BT = (size_t)B * T;
    return BT * proj_width(b) + att_floats(b, B, T) * (has_dropout(b) ? 3 : 1) + BT * b->dims->dim;
}
// scratch: forward  Qh (B,T,R);
//          backward dheads (B,T,C) | dproj (B,T,P) | dP (B,H,T,T) | Qh (B,T,R) | dQh (B,T,R) | dmix (B,H,R)
static size_t collab_scratch_floats(const block_t *b, int B, int T) {
    const collab_t *s = b->priv;
    size_t BT = (size_t)B * T;
    return BT * b->dims->dim + BT * proj_width(b) + att_floats(b, B, T) + 2 * BT * s->R +
           (size_t)B * b->dims->heads * s->R;
}

typedef struct {
    float *proj, *probs, *dropped, *mask, *heads;
} views_t;

static views_t views(const block_t *b, float *act, int B, int T) {
    size_t BT = (size_t)B * T, A = att_floats(b, B, T);
    views_t v = {.proj = act};
    v.heads = attn_probs_layout(act + BT * proj_width(b), A, has_dropout(b), &v.probs, &v.dropped, &v.mask);
    return v;
}

// Qh (T,R) = Q̃ (T,R; row stride P) ⊙ m (R), broadcast over rows.
static void mix_query(float *Qh, const float *Qt, const float *m, int T, int R, int P) {
    for (int i = 0; i < T; i++)
        for (int r = 0; r < R; r++) Qh[(size_t)i * R + r] = Qt[(size_t)i * P + r] * m[r];
}

// One (batch, head): S = scale·(Qh·K̃ᵀ + 1·cbᵀ) (causal), P = softmax(S), P' = P⊙mask, O = P'·V.
// Qh (T,R) contiguous; K̃ (T,R), V (T,D), cb (T) strided views into proj (row stride P); O into heads (stride C).
static void head_forward(float *Pr, const float *Qh, const float *K, const float *V, const float *cb, float *O,
                         const float *mask, float *Pd, int T, int R, int D, int P, int C, float scale) {
    for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) {
        int r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T;
        // S[r0:r1, 0:r1] = scale·Qh[r0:r1]·K̃[0:r1]ᵀ  (j > i overwritten below)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, r1, R, scale, Qh + (size_t)r0 * R, R, K, P,
                    0.0f, Pr + (size_t)r0 * T, T);
    }
    for (int i = 0; i < T; i++) {
        float *row = Pr + (size_t)i * T;
        for (int j = 0; j <= i; j++) row[j] += scale * cb[(size_t)j * P];
        causal_softmax_row(row, i, T);
        if (mask) {
            const float *mk = mask + (size_t)i * T;
            float *pd = Pd + (size_t)i * T;
            for (int j = 0; j < T; j++) pd[j] = row[j] * mk[j];
        }
    }
    const float *Pw = mask ? Pd : Pr;
    for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) {
        int r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T;
        // O[r0:r1] = P'[r0:r1, 0:r1]·V[0:r1]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, D, r1, 1.0f, Pw + (size_t)r0 * T, T, V, P,
                    0.0f, O + (size_t)r0 * C, C);
    }
}

static void collab_forward(block_t *b, float *y, const float *x, float *act, float *scratch, int B, int T,
                           const run_ctx_t *rc) {
    collab_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, D = C / H, R = (int)s->R, P = proj_width(b), N = B * T;
    views_t v = views(b, act, B, T);
    project(s, v.proj, x, N, C, H, P);
    if (s->rope_on) {  // K̃_j ← R_j K̃_j in place
        rope_layout_t kl = keys_layout(B, T, P);
        rope_apply(&s->rope, v.proj + R, v.proj + R, &kl, 0, ROPE_ROTATE);
    }
    // Attention dropout: masks drawn serially, in (b,h,i,j) order, before the parallel loop.
    if (v.mask) dropout_mask_draw(v.mask, rc->training ? rc->dropout : 0.0f, rc->rng, att_floats(b, B, T));
    float scale = 1.0f / sqrtf((float)D);
    // One thread per sequence: its heads share Q̃ and the Qh buffer.
#pragma omp parallel for schedule(static)
    for (int bb = 0; bb < B; bb++) {
        const float *base = v.proj + (size_t)bb * T * P;
        float *Qh = scratch + (size_t)bb * T * R;
        for (int h = 0; h < H; h++) {
            size_t bh = (size_t)bb * H + h, TT = (size_t)T * T;
            mix_query(Qh, base, s->mix->data + (size_t)h * R, T, R, P);
            if (s->rope_on) {  // Qh_i ← R_i (Q̃_i ⊙ m_h): the MIXED query is rotated
                rope_layout_t ql = mixed_layout(T, R);
                rope_apply(&s->rope, Qh, Qh, &ql, 0, ROPE_ROTATE);
            }
            head_forward(v.probs + bh * TT, Qh, base + R, base + 2 * R + h * D, base + 2 * R + C + h,
                         v.heads + (size_t)bb * T * C + h * D, v.mask ? v.mask + bh * TT : NULL,
                         v.mask ? v.dropped + bh * TT : NULL, T, R, D, P, C, scale);
        }
    }
    matmul_forward(y, v.heads, s->wo->data, s->bo->data, N, C, C);
}

// Backward of one sequence, all heads. For head h (forward above):
//   dP' = dO·V_hᵀ,  dV_h += P'ᵀ·dO,  dP = dP'⊙mask,  dS = P⊙(dP − rowsum(dP⊙P))     (j ≤ i only)
//   S = scale·(Qh·K̃ᵀ + 1·cb_hᵀ):  dcb_h[j] += scale·Σ_i dS_ij,  dQh = scale·dS·K̃,  dK̃ += scale·dSᵀ·Qh
//   Qh = Q̃ ⊙ m_h:  dQ̃ += dQh ⊙ m_h,  dm_h += Σ_i dQh_i ⊙ Q̃_i  (into this sequence's dmix row)
// --pos rope: the scores read Qh'_i = R_i(Q̃_i ⊙ m_h) and K̃'_j = R_j K̃_j (K̃' is what act holds):
//   dQh'  = scale·dS·K̃',   dK̃' += scale·dSᵀ·Qh'                     (the same products, rotated operands)
//   dQh_i = R_iᵀ·dQh'_i, then dQ̃ and dm_h as above through the elementwise mixing (no rotation there)
//   dK̃_j  = R_jᵀ·dK̃'_j, once after all heads (every head adds to the same shared-key gradient)
static void seq_backward(const collab_t *s, const views_t *v, const float *dheads, float *dproj, float *dPall,
                         float *Qh, float *dQh, float *dmix, int bb, int T, int C, int H, int P, float scale) {
    int R = (int)s->R, D = C / H;
    size_t TT = (size_t)T * T;
    const float *base = v->proj + (size_t)bb * T * P, *Q = base, *K = base + R;
    float *dbase = dproj + (size_t)bb * T * P, *dQ = dbase, *dK = dbase + R;
    for (int h = 0; h < H; h++) {
        size_t bh = (size_t)bb * H + h;
        const float *Pr = v->probs + bh * TT, *Pd = v->dropped + bh * TT, *mask = v->mask ? v->mask + bh * TT : NULL;
        const float *V = base + 2 * R + h * D, *dO = dheads + (size_t)bb * T * C + h * D;
        float *dV = dbase + 2 * R + h * D, *dcb = dbase + 2 * R + C + h, *dP = dPall + bh * TT;
        const float *m = s->mix->data + (size_t)h * R;
        for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) {
            int r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T;
            // dP'[r0:r1, 0:r1] = dO[r0:r1]·V[0:r1]ᵀ
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, r1, D, 1.0f, dO + (size_t)r0 * C, C, V, P,
                        0.0f, dP + (size_t)r0 * T, T);
            // dV[0:r1] += P'[r0:r1, 0:r1]ᵀ·dO[r0:r1]
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, D, r1 - r0, 1.0f, Pd + (size_t)r0 * T, T,
                        dO + (size_t)r0 * C, C, 1.0f, dV, P);
        }
        for (int i = 0; i < T; i++) {
            float *d = dP + (size_t)i * T;
            const float *p = Pr + (size_t)i * T;
            if (mask) {
                const float *mk = mask + (size_t)i * T;
                for (int j = 0; j <= i; j++) d[j] *= mk[j];
            }
            causal_softmax_row_backward(d, p, i, T);
            for (int j = 0; j <= i; j++) dcb[(size_t)j * P] += scale * d[j];
        }
        mix_query(Qh, Q, m, T, R, P);
        rope_layout_t ql = mixed_layout(T, R);
        if (s->rope_on) rope_apply(&s->rope, Qh, Qh, &ql, 0, ROPE_ROTATE);
        for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) {
            int r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T;
            // dQh[r0:r1] = scale·dS[r0:r1, 0:r1]·K̃[0:r1]
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, R, r1, scale, dP + (size_t)r0 * T, T, K, P,
                        0.0f, dQh + (size_t)r0 * R, R);
            // dK̃[0:r1] += scale·dS[r0:r1, 0:r1]ᵀ·Qh[r0:r1]
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, R, r1 - r0, scale, dP + (size_t)r0 * T, T,
                        Qh + (size_t)r0 * R, R, 1.0f, dK, P);
        }
        if (s->rope_on) rope_apply(&s->rope, dQh, dQh, &ql, 0, ROPE_TRANSPOSE);
        float *dm = dmix + ((size_t)bb * H + h) * R;
        for (int i = 0; i < T; i++)
            for (int r = 0; r < R; r++) {
                float g = dQh[(size_t)i * R + r];
                dQ[(size_t)i * P + r] += g * m[r];
                dm[r] += g * Q[(size_t)i * P + r];
            }
    }
    if (s->rope_on) {
        rope_layout_t kl = keys_layout(1, T, P);
        rope_apply(&s->rope, dK, dK, &kl, 0, ROPE_TRANSPOSE);
    }
}

static void collab_backward(block_t *b, float *dx, const float *dy, const float *x, const float *act, float *scratch,
                            int B, int T, const run_ctx_t *rc) {
    collab_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, D = C / H, R = (int)s->R, P = proj_width(b), N = B * T;
    views_t v = views(b, (float *)act, B, T);
    float *dheads = scratch, *dproj = dheads + (size_t)N * C, *dP = dproj + (size_t)N * P;
    float *Qh = dP + att_floats(b, B, T), *dQh = Qh + (size_t)N * R, *dmix = dQh + (size_t)N * R;
    memset(dheads, 0, ((size_t)N * C + (size_t)N * P) * sizeof(float));
    memset(dmix, 0, (size_t)B * H * R * sizeof(float));
    // y = heads·Woᵀ + bo
    matmul_backward(dheads, s->wo->grad, s->bo->grad, dy, v.heads, s->wo->data, N, C, C);
    float scale = 1.0f / sqrtf((float)D);
#pragma omp parallel for schedule(static)
    for (int bb = 0; bb < B; bb++)
        seq_backward(s, &v, dheads, dproj, dP, Qh + (size_t)bb * T * R, dQh + (size_t)bb * T * R, dmix, bb, T, C, H, P,
                     scale);
    // dm_h = Σ_b dmix[b,h]; dbv = Σ_n dV_n
    for (int bb = 0; bb < B; bb++)
        for (size_t k = 0; k < (size_t)H * R; k++) s->mix->grad[k] += dmix[(size_t)bb * H * R + k];
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) s->bv->grad[c] += dproj[(size_t)n * P + 2 * R + c];
    // proj = x·[Cq;Ck;Wv;Cb]ᵀ (+ bv):  dx += dproj·W, dW += dprojᵀ·x
    check_fused(s, C, H);
    matmul_backward(dx, s->cq->grad, NULL, dproj, x, s->cq->data, N, C, P);
}

// ---------------------------------------------------------------------------------------------
// decode: the cache holds K̃ (ctx,R), V (ctx,C) and the per-key content bias cb (ctx,H) of the
// positions seen so far. Per head: w = scale·(K̃[0..pos]·(Q̃⊙m_h) + cb[0..pos,h]), softmax,
// o_h = V[0..pos, head h]ᵀ·w.

static size_t collab_cache_floats(const block_t *b) {
    const collab_t *s = b->priv;
    return (size_t)b->dims->ctx * (s->R + b->dims->dim + b->dims->heads);
}
// scratch: proj row (P) | qh (R) | heads (C) | w (ctx)
static size_t collab_decode_scratch_floats(const block_t *b) {
    const collab_t *s = b->priv;
    return (size_t)proj_width(b) + s->R + b->dims->dim + b->dims->ctx;
}

static void collab_decode_step(block_t *b, float *y, const float *x, int pos, float *cache, float *scratch) {
    collab_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, D = C / H, R = (int)s->R, P = proj_width(b), ctx = b->dims->ctx;
    CHECK(pos >= 0 && pos < ctx);
    float *proj = scratch, *qh = proj + P, *heads = qh + R, *w = heads + C;
    float *Kc = cache, *Vc = Kc + (size_t)ctx * R, *cbc = Vc + (size_t)ctx * C;
    project(s, proj, x, 1, C, H, P);
    if (s->rope_on) rope_apply_one(&s->rope, proj + R, 1, (size_t)R, pos, ROPE_ROTATE);  // the cache holds R_j K̃_j
    memcpy(Kc + (size_t)pos * R, proj + R, (size_t)R * sizeof(float));
    memcpy(Vc + (size_t)pos * C, proj + 2 * R, (size_t)C * sizeof(float));
    memcpy(cbc + (size_t)pos * H, proj + 2 * R + C, (size_t)H * sizeof(float));
    float scale = 1.0f / sqrtf((float)D);
    for (int h = 0; h < H; h++) {
        const float *m = s->mix->data + (size_t)h * R;
        for (int r = 0; r < R; r++) qh[r] = proj[r] * m[r];
        if (s->rope_on) rope_apply_one(&s->rope, qh, 1, (size_t)R, pos, ROPE_ROTATE);  // R_pos (Q̃ ⊙ m_h)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, pos + 1, R, scale, Kc, R, qh, 1, 0.0f, w, 1);
        for (int j = 0; j <= pos; j++) w[j] += scale * cbc[(size_t)j * H + h];
        float mx = w[0];
        for (int j = 1; j <= pos; j++) mx = w[j] > mx ? w[j] : mx;
        float sum = 0;
        for (int j = 0; j <= pos; j++) {
            w[j] = expf(w[j] - mx);
            sum += w[j];
        }
        cblas_sgemv(CblasRowMajor, CblasTrans, pos + 1, D, 1.0f / sum, Vc + h * D, C, w, 1, 0.0f, heads + h * D, 1);
    }
    matmul_forward(y, heads, s->wo->data, s->bo->data, 1, C, C);
}

// ---------------------------------------------------------------------------------------------
// --init-from a softmax layer (BLOCKS.md §7). The source's per-head bilinear maps, in input space:
//   T[a,h,c] = Σ_{e ∈ head h} wq[e,a]·wk[e,c]          (d×H×d; wq, wk stored [out,in])
// so that (x_i·Wq^h)·(x_j·Wk^h) = Σ_{a,c} x_i[a] T[a,h,c] x_j[c]. A rank-R CP model
//   T[a,h,c] ≈ Σ_r A[a,r]·M[h,r]·B[c,r]  gives cq = Aᵀ, mix = M, ck = Bᵀ.
// R = C: "concatenate" (cq = wq, ck = wk, M[h,r] = 1 on head h's block) is exact. R > C: the same
// with the extra mixing columns 0 (exact; the extra cq/ck rows keep their fresh init so they can
// learn). R < C: ALS (blocks/cp_als.c). The query bias contributes bq^h·(x_j·Wk^h), a per-key term:
//   cb[h,c] = Σ_{e ∈ head h} bq[e]·wk[e,c];  bk's terms are constant along a softmax row and drop.
static int collab_init_from(block_t *b, const block_source_t *src, uint64_t seed, char *msg, size_t msglen) {
    collab_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, D = C / H, R = (int)s->R;
    int64_t cc[2] = {C, C}, c1[1] = {C};
    const float *wq = src->find(src->ctx, "wq", cc, 2), *wk = src->find(src->ctx, "wk", cc, 2),
                *bq = src->find(src->ctx, "bq", c1, 1);
    if (!wq || !wk || !bq) return 0;  // no softmax Q/K here: nothing to convert
    if (src->heads != H)
        return seterr(msg, msglen, "--init-from: layer %d: the source has %d heads, collab here has %d; conversion needs the same heads",
                      b->layer, src->heads, H);
    for (int h = 0; h < H; h++)
        for (int c = 0; c < C; c++) {
            double acc = 0;
            for (int e = h * D; e < (h + 1) * D; e++) acc += (double)bq[e] * wk[(size_t)e * C + c];
            s->cb->data[(size_t)h * C + c] = (float)acc;
        }
    if (R >= C) {
        memcpy(s->cq->data, wq, (size_t)C * C * sizeof(float));
        memcpy(s->ck->data, wk, (size_t)C * C * sizeof(float));
        for (int h = 0; h < H; h++)
            for (int r = 0; r < R; r++) s->mix->data[(size_t)h * R + r] = (r < C && r / D == h) ? 1.0f : 0.0f;
        snprintf(msg, msglen, "layer %d: softmax -> collab(dk=%d) by concatenation (exact)", b->layer, R);
        return 4;
    }
    double *T = xmalloc((size_t)C * H * C * sizeof(double));
    for (int h = 0; h < H; h++)
        // T[:,h,:] = wq[hD:hD+D,:]ᵀ·wk[hD:hD+D,:]  (d×d), in double
        for (int a = 0; a < C; a++)
            for (int c = 0; c < C; c++) {
                double acc = 0;
                for (int e = h * D; e < (h + 1) * D; e++) acc += (double)wq[(size_t)e * C + a] * wk[(size_t)e * C + c];
                T[((size_t)a * H + h) * C + c] = acc;
            }
    cp_result_t res;
    double *A = xmalloc((size_t)C * R * sizeof(double)), *M = xmalloc((size_t)H * R * sizeof(double)),
           *Bf = xmalloc((size_t)C * R * sizeof(double));
    cp_als(T, C, H, C, R, seed + 0x9E3779B97F4A7C15ULL * (uint64_t)(b->layer + 1), CP_MAX_SWEEPS, CP_TOL, CP_DEFAULT, A, M, Bf, &res);
    cp_normalize(A, M, Bf, C, H, C, R);
    for (int r = 0; r < R; r++)
        for (int a = 0; a < C; a++) {
            s->cq->data[(size_t)r * C + a] = (float)A[(size_t)a * R + r];
            s->ck->data[(size_t)r * C + a] = (float)Bf[(size_t)a * R + r];
        }
    for (size_t k = 0; k < (size_t)H * R; k++) s->mix->data[k] = (float)M[k];
    snprintf(msg, msglen, "layer %d: softmax -> collab(dk=%d) by CP/ALS: relative reconstruction error %.4g after %d sweeps",
             b->layer, R, res.rel_error, res.sweeps);
    free(T);
    free(A);
    free(M);
    free(Bf);
    return 4;
}

static const char *const collab_examples[] = {"collab", "collab(dk=3)", "collab(dk=40)", NULL};

const block_ops_t mixer_collab_ops = {
    .kind = "collab",
    .role = ROLE_MIXER,
    .options = "dk",
    .examples = collab_examples,
    .configure = collab_configure,
    .describe = collab_describe,
    .register_params = collab_register,
    .act_floats = collab_act_floats,
    .scratch_floats = collab_scratch_floats,
    .forward = collab_forward,
    .backward = collab_backward,
    .cache_floats = collab_cache_floats,
    .decode_scratch_floats = collab_decode_scratch_floats,
    .decode_step = collab_decode_step,
    .free_priv = collab_free,
    .init_from = collab_init_from,
};
