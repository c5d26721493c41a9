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
// Segment memory (--memory M; LONG_CONTEXT.md §2, Transformer-XL): the state is the x̂ rows of the
// last n ≤ M positions before the segment (blocks/mem_rows.h). Each forward recomputes their shared
// keys K̃, values V and content bias cb with the current weights, so the T segment queries attend
// over Tk = n + T keys: memory row r at stream position pos0 − n + r, segment row t at pos0 + t
// (query i sees keys 0 … n + i). Queries only for the segment rows. Stop-gradient into the state:
// Ck, Wv, bv and Cb get gradient through the memory rows, dx only the segment's. n = 0 (and
// rc->mem NULL) runs exactly the memory-free code. docs/blocks/collab.md "Segment memory".
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/block.h"
#include "model/gemm.h"
#include "base/check.h"
#include "blocks/cp_als.h"
#include "blocks/mem_rows.h"
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

// The keys one forward attends over: n memory rows (0 without memory) then the T segment rows,
// Tk = n + T; the segment starts at stream position pos0 (0 without memory).
typedef struct {
    int n, Tk, pos0;
} keys_t;

static keys_t keys_of(const block_t *b, const run_ctx_t *rc, int B, int T) {
    keys_t k = {.n = 0, .Tk = T, .pos0 = 0};
    const seg_mem_t *mem = rc ? rc->mem : NULL;
    if (!mem) return k;
    CHECK(b->dims->memory > 0 && mem->B == B && mem->n >= 0 && mem->n <= b->dims->memory && mem->n <= mem->pos0 &&
          mem->pos0 + T <= 0x7fffffffL);
    k.n = mem->n;
    k.Tk = k.n + T;
    k.pos0 = (int)mem->pos0;
    return k;
}

// act layout: proj (B,Tk,P) | probs (B,H,T,Tk) | [dropped (B,H,T,Tk) | mask (B,H,T,Tk)] | heads (B,T,C)
//             | with dims->memory > 0: xe (B,Tk,C), the memory rows then the segment's x (backward's dW)
// Rows 0 … n−1 of each sequence's proj are its memory rows: their K̃ | V | cb columns are computed,
// their Q̃ columns are not (zero). Sized for Tk = M + T; a forward uses the part its n needs.
// --pos rope: proj's K̃ columns hold the ROTATED keys R_j K̃_j (rotated in place: the backward needs
// only them, since the projection's backward reads x); Q̃ stays unrotated (the mixing comes first,
// and dm needs Q̃); the rotated mixed queries are recomputed per head, as Qh is today. No extra memory.
static size_t att_floats(const block_t *b, int B, int T, int Tk) { return (size_t)B * b->dims->heads * T * Tk; }
static int has_dropout(const block_t *b) { return b->dropout_masks; }

static size_t collab_act_floats(const block_t *b, int B, int T) {
    int M = b->dims->memory, Tk = M + T;
    size_t BT = (size_t)B * T, BTk = (size_t)B * Tk;
    return BTk * proj_width(b) + att_floats(b, B, T, Tk) * (has_dropout(b) ? 3 : 1) + BT * b->dims->dim +
           (M > 0 ? BTk * b->dims->dim : 0);
}
// scratch: forward  Qh (B,T,R);
//          backward dheads (B,T,C) | dproj (B,Tk,P) | dP (B,H,T,Tk) | Qh (B,T,R) | dQh (B,T,R) | dmix (B,H,R)
static size_t collab_scratch_floats(const block_t *b, int B, int T) {
    const collab_t *s = b->priv;
    int Tk = b->dims->memory + T;
    size_t BT = (size_t)B * T;
    return BT * b->dims->dim + (size_t)B * Tk * proj_width(b) + att_floats(b, B, T, Tk) + 2 * BT * s->R +
           (size_t)B * b->dims->heads * s->R;
}

typedef struct {
    float *proj, *probs, *dropped, *mask, *heads, *xe;
} views_t;

static views_t views(const block_t *b, float *act, int B, int T, int Tk) {
    size_t BTk = (size_t)B * Tk, A = att_floats(b, B, T, Tk);
    views_t v = {.proj = act};
    v.heads = attn_probs_layout(act + BTk * proj_width(b), A, has_dropout(b), &v.probs, &v.dropped, &v.mask);
    v.xe = v.heads + (size_t)B * T * b->dims->dim;
    return v;
}

// With n > 0 memory rows: xe (B,Tk,C) = [memory rows ; x] per sequence (mem_rows_concat), then
//   proj[:, :, R:P] = xe·[Ck;Wv;Cb]ᵀ for every row (keys, values, content bias of all Tk positions),
//   proj[b, n+t, 0:R] = x[b,t]·Cqᵀ for the segment rows only (queries), V += bv.
static void project_with_memory(const collab_t *s, float *proj, float *xe, const float *x, const float *state, int B,
                                int T, int M, int n, int C, int H, int P) {
    int R = (int)s->R, Tk = n + T;
    check_fused(s, C, H);
    mem_rows_concat(xe, state, x, B, M, n, T, C);
    par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B * Tk, P - R, C, 1.0f, xe, C, s->ck->data, C, 0.0f, proj + R,
                P);
    for (int bb = 0; bb < B; bb++) {
        float *pb = proj + (size_t)bb * Tk * P;
        for (int r = 0; r < n; r++) memset(pb + (size_t)r * P, 0, (size_t)R * sizeof(float));
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, R, C, 1.0f, x + (size_t)bb * T * C, C, s->cq->data, C,
                    0.0f, pb + (size_t)n * P, P);
    }
#pragma omp parallel for schedule(static)
    for (int r = 0; r < B * Tk; r++)
        for (int c = 0; c < C; c++) proj[(size_t)r * P + 2 * R + c] += s->bv->data[c];
}

// Qh (T,R) = Q̃ (T,R; row stride P) ⊙ m (R), broadcast over rows.
static void mix_query(float *Qh, const float *Qt, const float *m, int T, int R, int P) {
    for (int i = 0; i < T; i++)
        for (int r = 0; r < R; r++) Qh[(size_t)i * R + r] = Qt[(size_t)i * P + r] * m[r];
}

// One (batch, head): S = scale·(Qh·K̃ᵀ + 1·cbᵀ) (causal: query i sees keys 0 … n+i), P = softmax(S),
// P' = P⊙mask, O = P'·V. Qh (T,R) contiguous; K̃ (Tk,R), V (Tk,D), cb (Tk) strided views into proj
// (row stride P) starting at the first memory row; S, P, P' (T,Tk); O into heads (stride C).
static void head_forward(float *Pr, const float *Qh, const float *K, const float *V, const float *cb, float *O,
                         const float *mask, float *Pd, int T, int n, int R, int D, int P, int C, float scale) {
    int Tk = n + T;
    for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) {
        int r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T;
        // S[r0:r1, 0:n+r1] = scale·Qh[r0:r1]·K̃[0:n+r1]ᵀ  (j > n+i overwritten below)
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, n + r1, R, scale, Qh + (size_t)r0 * R, R, K, P,
                    0.0f, Pr + (size_t)r0 * Tk, Tk);
    }
    for (int i = 0; i < T; i++) {
        float *row = Pr + (size_t)i * Tk;
        for (int j = 0; j <= n + i; j++) row[j] += scale * cb[(size_t)j * P];
        causal_softmax_row(row, n + i, Tk);
        if (mask) {
            const float *mk = mask + (size_t)i * Tk;
            float *pd = Pd + (size_t)i * Tk;
            for (int j = 0; j < Tk; j++) pd[j] = row[j] * mk[j];
        }
    }
    const float *Pw = mask ? Pd : Pr;
    for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) {
        int r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T;
        // O[r0:r1] = P'[r0:r1, 0:n+r1]·V[0:n+r1]
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, D, n + r1, 1.0f, Pw + (size_t)r0 * Tk, Tk, V, P,
                    0.0f, O + (size_t)r0 * C, C);
    }
}

static void collab_forward(block_t *b, float *y, const float *x, float *act, float *scratch, int B, int T,
                           const run_ctx_t *rc) {
    collab_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, D = C / H, R = (int)s->R, P = proj_width(b), N = B * T;
    keys_t k = keys_of(b, rc, B, T);
    int n = k.n, Tk = k.Tk;
    views_t v = views(b, act, B, T, Tk);
    float *state = block_mem_state(b, rc);
    if (n > 0) project_with_memory(s, v.proj, v.xe, x, state, B, T, b->dims->memory, n, C, H, P);
    else project(s, v.proj, x, N, C, H, P);
    if (rc && rc->mem && rc->mem->advance) mem_rows_advance(state, x, B, b->dims->memory, n, T, C);  // xe holds the old rows
    if (s->rope_on) {  // K̃_j ← R_j K̃_j in place, key row j at stream position pos0 − n + j
        rope_layout_t kl = keys_layout(B, Tk, P);
        rope_apply(&s->rope, v.proj + R, v.proj + R, &kl, k.pos0 - n, ROPE_ROTATE);
    }
    // Attention dropout: masks drawn serially, in (b,h,i,j) order, before the parallel loop.
    if (v.mask) dropout_mask_draw(v.mask, rc->training ? rc->dropout : 0.0f, rc->rng, att_floats(b, B, T, Tk));
    float scale = 1.0f / sqrtf((float)D);
    // One thread per sequence: its heads share Q̃ and the Qh buffer.
#pragma omp parallel for schedule(static)
    for (int bb = 0; bb < B; bb++) {
        const float *base = v.proj + (size_t)bb * Tk * P;
        float *Qh = scratch + (size_t)bb * T * R;
        for (int h = 0; h < H; h++) {
            size_t bh = (size_t)bb * H + h, TTk = (size_t)T * Tk;
            mix_query(Qh, base + (size_t)n * P, s->mix->data + (size_t)h * R, T, R, P);
            if (s->rope_on) {  // Qh_i ← R_{pos0+i} (Q̃_i ⊙ m_h): the MIXED query is rotated
                rope_layout_t ql = mixed_layout(T, R);
                rope_apply(&s->rope, Qh, Qh, &ql, k.pos0, ROPE_ROTATE);
            }
            head_forward(v.probs + bh * TTk, Qh, base + R, base + 2 * R + h * D, base + 2 * R + C + h,
                         v.heads + (size_t)bb * T * C + h * D, v.mask ? v.mask + bh * TTk : NULL,
                         v.mask ? v.dropped + bh * TTk : NULL, T, n, R, D, P, C, scale);
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
// With n memory rows the key index runs over 0 … Tk−1 (query i sees 0 … n+i): dV, dK̃, dcb of the
// memory rows are filled like the others (they reach Ck, Wv, bv, Cb in collab_backward); the query
// side (dQ̃, dm) has the segment rows only.
static void seq_backward(const collab_t *s, const views_t *v, const float *dheads, float *dproj, float *dPall,
                         float *Qh, float *dQh, float *dmix, int bb, int T, const keys_t *k, int C, int H, int P,
                         float scale) {
    int R = (int)s->R, D = C / H, n = k->n, Tk = k->Tk;
    size_t TTk = (size_t)T * Tk;
    const float *base = v->proj + (size_t)bb * Tk * P, *Q = base + (size_t)n * P, *K = base + R;
    float *dbase = dproj + (size_t)bb * Tk * P, *dQ = dbase + (size_t)n * P, *dK = dbase + R;
    for (int h = 0; h < H; h++) {
        size_t bh = (size_t)bb * H + h;
        const float *Pr = v->probs + bh * TTk, *Pd = v->dropped + bh * TTk, *mask = v->mask ? v->mask + bh * TTk : NULL;
        const float *V = base + 2 * R + h * D, *dO = dheads + (size_t)bb * T * C + h * D;
        float *dV = dbase + 2 * R + h * D, *dcb = dbase + 2 * R + C + h, *dP = dPall + bh * TTk;
        const float *m = s->mix->data + (size_t)h * R;
        for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) {
            int r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T;
            // dP'[r0:r1, 0:n+r1] = dO[r0:r1]·V[0:n+r1]ᵀ
            par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, n + r1, D, 1.0f, dO + (size_t)r0 * C, C, V, P,
                        0.0f, dP + (size_t)r0 * Tk, Tk);
            // dV[0:n+r1] += P'[r0:r1, 0:n+r1]ᵀ·dO[r0:r1]
            par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n + r1, D, r1 - r0, 1.0f, Pd + (size_t)r0 * Tk, Tk,
                        dO + (size_t)r0 * C, C, 1.0f, dV, P);
        }
        for (int i = 0; i < T; i++) {
            float *d = dP + (size_t)i * Tk;
            const float *p = Pr + (size_t)i * Tk;
            if (mask) {
                const float *mk = mask + (size_t)i * Tk;
                for (int j = 0; j <= n + i; j++) d[j] *= mk[j];
            }
            causal_softmax_row_backward(d, p, n + i, Tk);
            for (int j = 0; j <= n + i; j++) dcb[(size_t)j * P] += scale * d[j];
        }
        mix_query(Qh, Q, m, T, R, P);
        rope_layout_t ql = mixed_layout(T, R);
        if (s->rope_on) rope_apply(&s->rope, Qh, Qh, &ql, k->pos0, ROPE_ROTATE);
        for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) {
            int r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T;
            // dQh[r0:r1] = scale·dS[r0:r1, 0:n+r1]·K̃[0:n+r1]
            par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, R, n + r1, scale, dP + (size_t)r0 * Tk, Tk,
                        K, P, 0.0f, dQh + (size_t)r0 * R, R);
            // dK̃[0:n+r1] += scale·dS[r0:r1, 0:n+r1]ᵀ·Qh[r0:r1]
            par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n + r1, R, r1 - r0, scale, dP + (size_t)r0 * Tk, Tk,
                        Qh + (size_t)r0 * R, R, 1.0f, dK, P);
        }
        if (s->rope_on) rope_apply(&s->rope, dQh, dQh, &ql, k->pos0, ROPE_TRANSPOSE);
        float *dm = dmix + ((size_t)bb * H + h) * R;
        for (int i = 0; i < T; i++)
            for (int r = 0; r < R; r++) {
                float g = dQh[(size_t)i * R + r];
                dQ[(size_t)i * P + r] += g * m[r];
                dm[r] += g * Q[(size_t)i * P + r];
            }
    }
    if (s->rope_on) {
        rope_layout_t kl = keys_layout(1, Tk, P);
        rope_apply(&s->rope, dK, dK, &kl, k->pos0 - n, ROPE_TRANSPOSE);
    }
}

static void collab_backward(block_t *b, float *dx, const float *dy, const float *x, const float *act, float *scratch,
                            int B, int T, const run_ctx_t *rc) {
    collab_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, D = C / H, R = (int)s->R, P = proj_width(b), N = B * T;
    keys_t k = keys_of(b, rc, B, T);
    int n = k.n, Tk = k.Tk, Nk = B * Tk;
    views_t v = views(b, (float *)act, B, T, Tk);
    float *dheads = scratch, *dproj = dheads + (size_t)N * C, *dP = dproj + (size_t)Nk * P;
    float *Qh = dP + att_floats(b, B, T, Tk), *dQh = Qh + (size_t)N * R, *dmix = dQh + (size_t)N * R;
    memset(dheads, 0, ((size_t)N * C + (size_t)Nk * P) * sizeof(float));
    memset(dmix, 0, (size_t)B * H * R * sizeof(float));
    // y = heads·Woᵀ + bo
    matmul_backward(dheads, s->wo->grad, s->bo->grad, dy, v.heads, s->wo->data, N, C, C);
    float scale = 1.0f / sqrtf((float)D);
#pragma omp parallel for schedule(static)
    for (int bb = 0; bb < B; bb++)
        seq_backward(s, &v, dheads, dproj, dP, Qh + (size_t)bb * T * R, dQh + (size_t)bb * T * R, dmix, bb, T, &k, C, H,
                     P, scale);
    // dm_h = Σ_b dmix[b,h]; dbv = Σ_rows dV (memory rows included: their V has bv too)
    for (int bb = 0; bb < B; bb++)
        for (size_t e = 0; e < (size_t)H * R; e++) s->mix->grad[e] += dmix[(size_t)bb * H * R + e];
    for (int r = 0; r < Nk; r++)
        for (int c = 0; c < C; c++) s->bv->grad[c] += dproj[(size_t)r * P + 2 * R + c];
    // proj = x·[Cq;Ck;Wv;Cb]ᵀ (+ bv):  dx += dproj·W, dW += dprojᵀ·x
    check_fused(s, C, H);
    if (n == 0) {
        matmul_backward(dx, s->cq->grad, NULL, dproj, x, s->cq->data, N, C, P);
        return;
    }
    // With memory: dW += dprojᵀ·xe over all Tk rows (memory rows' dQ̃ columns are zero); dx (the
    // segment's rows only; the state gets no gradient) += dproj[b, n:Tk]·W per sequence.
    par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, P, C, Nk, 1.0f, dproj, P, v.xe, C, 1.0f, s->cq->grad, C);
    for (int bb = 0; bb < B; bb++)
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, C, P, 1.0f, dproj + ((size_t)bb * Tk + n) * P, P,
                    s->cq->data, C, 1.0f, dx + (size_t)bb * T * C, C);
}

// Segment memory: the x̂ rows of the last M positions (blocks/mem_rows.h).
static size_t collab_mem_floats(const block_t *b, int B) { return mem_rows_floats(B, b->dims->memory, b->dims->dim); }

// ---------------------------------------------------------------------------------------------
// decode: the cache holds K̃ (S,R), V (S,C) and the per-key content bias cb (S,H) of the positions
// seen so far, position p in slot p mod S, S = ctx + M (M = dims->memory; S = ctx without memory,
// where pos < ctx and slot = pos). The token at pos sees positions lo … pos: lo = 0 without memory;
// with it, its segment starts at s0 = pos − pos mod ctx and lo = s0 − min(s0, M), as in the
// segment-wise forward (at most M + ctx positions, so the ring never overwrites one still seen).
// Per head: w = scale·(K̃[lo..pos]·(Q̃⊙m_h) + cb[lo..pos,h]), softmax, o_h = V[lo..pos, head h]ᵀ·w,
// each product in at most two pieces (the window's slots wrap at most once).

static int cache_slots(const block_t *b) { return b->dims->ctx + b->dims->memory; }

static size_t collab_cache_floats(const block_t *b) {
    const collab_t *s = b->priv;
    return (size_t)cache_slots(b) * (s->R + b->dims->dim + b->dims->heads);
}
// scratch: proj row (P) | qh (R) | heads (C) | w (S)
static size_t collab_decode_scratch_floats(const block_t *b) {
    const collab_t *s = b->priv;
    return (size_t)proj_width(b) + s->R + b->dims->dim + cache_slots(b);
}

static void collab_decode_step(block_t *b, float *y, const float *x, int pos, float *cache, float *scratch) {
    collab_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, D = C / H, R = (int)s->R, P = proj_width(b), ctx = b->dims->ctx;
    int M = b->dims->memory, S = cache_slots(b);
    CHECK(pos >= 0 && (M > 0 || pos < ctx));
    int s0 = pos - pos % ctx, lo = M > 0 ? s0 - (s0 < M ? s0 : M) : 0;
    int L = pos - lo + 1, first = lo % S, L1 = first + L <= S ? L : S - first;  // slots first … first+L1−1, then 0 … L−L1−1
    int slot = pos % S;
    float *proj = scratch, *qh = proj + P, *heads = qh + R, *w = heads + C;
    float *Kc = cache, *Vc = Kc + (size_t)S * R, *cbc = Vc + (size_t)S * C;
    project(s, proj, x, 1, C, H, P);
    if (s->rope_on) rope_apply_one(&s->rope, proj + R, 1, (size_t)R, pos, ROPE_ROTATE);  // the cache holds R_j K̃_j
    memcpy(Kc + (size_t)slot * R, proj + R, (size_t)R * sizeof(float));
    memcpy(Vc + (size_t)slot * C, proj + 2 * R, (size_t)C * sizeof(float));
    memcpy(cbc + (size_t)slot * H, proj + 2 * R + C, (size_t)H * sizeof(float));
    float scale = 1.0f / sqrtf((float)D);
    for (int h = 0; h < H; h++) {
        const float *m = s->mix->data + (size_t)h * R;
        for (int r = 0; r < R; r++) qh[r] = proj[r] * m[r];
        if (s->rope_on) rope_apply_one(&s->rope, qh, 1, (size_t)R, pos, ROPE_ROTATE);  // R_pos (Q̃ ⊙ m_h)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, L1, R, scale, Kc + (size_t)first * R, R, qh, 1, 0.0f, w, 1);
        if (L1 < L) cblas_sgemv(CblasRowMajor, CblasNoTrans, L - L1, R, scale, Kc, R, qh, 1, 0.0f, w + L1, 1);
        for (int j = 0; j < L; j++) w[j] += scale * cbc[(size_t)((first + j) % S) * H + h];
        float mx = w[0];
        for (int j = 1; j < L; j++) mx = w[j] > mx ? w[j] : mx;
        float sum = 0;
        for (int j = 0; j < L; j++) {
            w[j] = expf(w[j] - mx);
            sum += w[j];
        }
        cblas_sgemv(CblasRowMajor, CblasTrans, L1, D, 1.0f / sum, Vc + (size_t)first * C + h * D, C, w, 1, 0.0f,
                    heads + h * D, 1);
        if (L1 < L)
            cblas_sgemv(CblasRowMajor, CblasTrans, L - L1, D, 1.0f / sum, Vc + h * D, C, w + L1, 1, 1.0f, heads + h * D, 1);
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

// infer --attn-map: head h's probabilities of a one-sequence forward without memory (Tk = T), as saved.
static int collab_attn_map(const block_t *b, const float *act, int T, int head, float *out) {
    if (!out) return 0;
    const float *P = views(b, (float *)act, 1, T, T).probs + (size_t)head * T * T;
    for (int i = 0; i < T; i++)
        for (int j = 0; j < T; j++) out[(size_t)i * T + j] = j <= i ? P[(size_t)i * T + j] : 0.0f;
    return 0;
}

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
    .attn_map = collab_attn_map,
    .mem_floats = collab_mem_floats,
    .free_priv = collab_free,
    .init_from = collab_init_from,
};
