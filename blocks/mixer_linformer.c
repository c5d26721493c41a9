// mixer_linformer.c — causal chunked Linformer attention (Wang et al. 2020, arXiv 2006.04768, made causal by
// chunks as in Transformer-LS, arXiv 2107.02192).
//   q, k, v = x·Wqᵀ + bq, x·Wkᵀ + bk, x·Wvᵀ + bv          (per head, D wide)
//   positions in chunks of c; each COMPLETED chunk u is compressed to k vectors:
//     K̄_u = E·K[u·c … u·c+c−1],  V̄_u = F·V[…]            E, F (k, c), shared by chunks and heads
//   a query in chunk b attends in ONE softmax (scale 1/sqrt(D)) to the exact keys of chunks
//   b−w … b (causally: j ≤ i) and to the compressed vectors of chunks < b−w; then concat·Woᵀ + bo.
// The paper's E·K mixes all n positions, future ones included; here a compressed vector only ever
// mixes a chunk that lies wholly in the past of every query that sees it.
// Tensors: attn.wq, wk, wv (C,C) consecutive, attn.bq, bk, bv (C), attn.wo, bo (as softmax, so a softmax
// checkpoint loads by name), attn.E (k, c) and attn.F (k, c) (no F with share=kv), init U(±1/sqrt(c)).
// Attention dropout (in a run with dropout) on the joint softmax's probabilities, as softmax does: P' = P⊙M,
// M drawn before the parallel loop in (batch, head, row i, column j of P's (T, Lmax) layout) order;
// see docs/blocks/linformer.md.
// --pos rope (LONG_CONTEXT.md §1): q and k rotated after the bias at their window positions, each
// key at its own position BEFORE compression: K̄_ρ = Σ_τ E_ρτ R_τ k_τ, so a query at p scores
// Σ_τ E_ρτ q·R_{τ−p} k_τ (relative terms); values are never rotated. qkv in act holds the rotated
// q, k (the compression and scores read them); backward turns dq, dk back with R_tᵀ; decode rotates
// at pos before the ring, so compressed chunks are built from rotated keys as in the forward.
// Segment memory (--memory M, LONG_CONTEXT.md §2): the layer remembers its input x̂ of the last M
// positions (blocks/mem_rows.h) and RECOMPUTES their keys and values each step with the current
// weights, so W_k, W_v, b_k, b_v, E, F get gradient through memory positions (the x̂ rows none). The
// forward runs over [memory rows ; segment] (chunks aligned to the stream start: memory rows before
// the first chunk boundary inside the memory are dropped, so only chunks lying wholly within the last
// M positions are seen), with queries for the segment rows only; rope at stream positions.
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks/attn_proj.h"
#include "blocks/mem_rows.h"
#include "model/block.h"
#include "model/gemm.h"
#include "base/check.h"
#include "model/ops.h"

typedef struct {
    attn_proj_t proj;  // attn.wq|wk|wv, bq|bk|bv, wo, bo (blocks/attn_proj.h)
    param_t *E, *F;  // F == E with share=kv
    int c, k, w, share;
} linformer_t;

// ---------------------------------------------------------------------------------------------
// configuration

static int linformer_configure(block_t *b, spec_block_t *spec, char *err, size_t errlen) {
    const char *where = block_where(b);
    long c, k, w;
    int share;
    if (spec_get_int(spec, "chunk", 32, 1, 1L << 16, &c, where, err, errlen)) return -1;
    if (spec_get_int(spec, "k", 4, 1, 1L << 16, &k, where, err, errlen)) return -1;
    if (spec_get_int(spec, "window", 0, 0, 1L << 16, &w, where, err, errlen)) return -1;
    if (spec_get_enum(spec, "share", "none|kv", 0, &share, where, err, errlen)) return -1;
    if (k > c)
        return seterr(err, errlen, "%s: k=%ld exceeds chunk=%ld: each chunk of c tokens is compressed to k vectors, so k ≤ chunk",
                      where, k, c);
    linformer_t *s = xcalloc(1, sizeof *s);
    s->c = (int)c;
    s->k = (int)k;
    s->w = (int)w;
    s->share = share;
    b->priv = s;  // freed by linformer_free, also on error
    return attn_proj_rope_init(&s->proj, b, err, errlen);
}

static void linformer_free(block_t *b) {
    linformer_t *s = b->priv;
    if (s) attn_proj_rope_free(&s->proj);
}

static void linformer_describe(const block_t *b, char *buf, size_t n) {
    const linformer_t *s = b->priv;
    snprintf(buf, n, "linformer(chunk=%d,k=%d,window=%d,share=%s)", s->c, s->k, s->w, s->share ? "kv" : "none");
}

static void linformer_register(block_t *b, param_table_t *pt, const char *prefix) {
    linformer_t *s = b->priv;
    // E, F (k, c): U(-1/sqrt(c), 1/sqrt(c)), with weight decay; share=kv registers E only.
    const param_spec_t proj = {.shape = {s->k, s->c}, .init = INIT_UNIFORM, .bound = 1.0f / sqrtf((float)s->c),
                               .decay = 1};
    attn_proj_register(&s->proj, b->dims, pt, prefix);
    s->E = params_add(pt, prefix, "E", proj);
    s->F = s->share ? s->E : params_add(pt, prefix, "F", proj);
}

// ---------------------------------------------------------------------------------------------
// shapes: nb chunks, NC compressed chunks ever needed (those < nb−1−w), Lmax columns per score row

static int n_chunks(const linformer_t *s, int T) { return (T + s->c - 1) / s->c; }
static int n_comp(const linformer_t *s, int T) {
    int nc = n_chunks(s, T) - 1 - s->w;
    return nc > 0 ? nc : 0;
}
static int row_len(const linformer_t *s, int T) {
    int full = n_comp(s, T) * s->k + (s->w + 1) * s->c;
    return full < T + n_comp(s, T) * s->k ? full : T + n_comp(s, T) * s->k;
}

static int has_dropout(const block_t *b) { return b->dropout_masks; }

// Segment memory (dims->memory = M > 0): the layer runs over L = n' + T rows, the n' ≤ M remembered
// rows (mem_rows_used) and then the segment's T; only the segment's rows are queries. Without memory
// L = T and n' = 0.
//   act     qkv (B,L,3C) | heads (B,T,C) | [xcat (B,L,C): the rows projected, memory models only] | per head
//   scratch dheads (B,T,C) | dqkv (B,L,3C) | per head
// per (batch, head) act: Kbar, Vbar (NC·k, D) | P (T, Lmax) | [dropped P' (T, Lmax) | mask M (T, Lmax)],
// NC and Lmax those of L rows of keys, T query rows
static size_t head_act(const linformer_t *s, int T, int L, int D, int drop) {
    return 2 * (size_t)n_comp(s, L) * s->k * D + (size_t)T * row_len(s, L) * (drop ? 3 : 1);
}
// per (batch, head) scratch: dP (c, Lmax) | dKbar, dVbar (NC·k, D) | dE, dF (k, c)
static size_t head_scratch(const linformer_t *s, int L, int D) {
    return (size_t)s->c * row_len(s, L) + 2 * (size_t)n_comp(s, L) * s->k * D + 2 * (size_t)s->k * s->c;
}

static int mem_len(const block_t *b) { return b->dims->memory; }

static size_t linformer_act_floats(const block_t *b, int B, int T) {
    int C = b->dims->dim, D = C / b->dims->heads, L = T + mem_len(b);
    size_t xcat = mem_len(b) ? (size_t)B * L * C : 0;
    return (size_t)B * C * (3 * (size_t)L + T) + xcat +
           (size_t)B * b->dims->heads * head_act(b->priv, T, L, D, has_dropout(b));
}
static size_t linformer_scratch_floats(const block_t *b, int B, int T) {
    int C = b->dims->dim, D = C / b->dims->heads, L = T + mem_len(b);
    return (size_t)B * C * (T + 3 * (size_t)L) + (size_t)B * b->dims->heads * head_scratch(b->priv, L, D);
}

// The remembered rows this forward uses: the last n' of the memory's n, n' = n less the rows before
// the first chunk boundary inside the memory (stream position pos0 − n' a multiple of c), so that
// chunks stay aligned to the stream start and only chunks lying wholly within the memory are seen.
// With ctx and M multiples of c (check_memory) nothing is ever dropped. 0 without memory.
static int mem_rows_used(const linformer_t *s, const seg_mem_t *mem) {
    if (!mem) return 0;
    long start = mem->pos0 - mem->n;
    int drop = (int)((s->c - start % s->c) % s->c);
    return mem->n > drop ? mem->n - drop : 0;
}

// ---------------------------------------------------------------------------------------------
// forward

// One (batch, head). Q, K, V: L rows (row stride ld), chunk-aligned at row 0; the queries are rows
// q0 … L−1. O (row stride ldo), P, Pd, M hold the query rows only (row i − q0). Kbar, Vbar (NC·k, D);
// P (L−q0, Lmax). With mask M (NULL: no dropout), Pd = P⊙M and O = Pd·U; without, Pd == P.
static void head_forward(const linformer_t *s, const float *Q, const float *K, const float *V, int ld, float *O,
                         int ldo, float *Kbar, float *Vbar, float *P, float *Pd, const float *M, int L, int q0,
                         int D) {
    int c = s->c, kk = s->k, w = s->w, nb = n_chunks(s, L), NC = n_comp(s, L), Lr = row_len(s, L);
    float scale = 1.0f / sqrtf((float)D);
    for (int u = 0; u < NC; u++) {
        // K̄_u = E·K_u, V̄_u = F·V_u     (k,c)·(c,D)
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, kk, D, c, 1.0f, s->E->data, c, K + (size_t)u * c * ld,
                    ld, 0.0f, Kbar + (size_t)u * kk * D, D);
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, kk, D, c, 1.0f, s->F->data, c, V + (size_t)u * c * ld,
                    ld, 0.0f, Vbar + (size_t)u * kk * D, D);
    }
    for (int b = q0 / c; b < nb; b++) {
        int s0 = b * c, e0 = L - s0 < c ? L : s0 + c, ncb = b - w > 0 ? b - w : 0;
        int r0 = s0 > q0 ? s0 : q0, n = e0 - r0;  // this chunk's query rows r0 … e0−1
        int nk = ncb * kk, x0 = ncb * c, ne = e0 - x0;  // compressed columns, exact range [x0, e0)
        float *Pb = P + (size_t)(r0 - q0) * Lr;
        if (nk)
            par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, nk, D, scale, Q + (size_t)r0 * ld, ld, Kbar, D, 0.0f,
                        Pb, Lr);
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, ne, D, scale, Q + (size_t)r0 * ld, ld,
                    K + (size_t)x0 * ld, ld, 0.0f, Pb + nk, Lr);
        for (int i = 0; i < n; i++) {
            float *row = Pb + (size_t)i * Lr;
            int valid = nk + (r0 + i - x0) + 1;
            float mx = row[0];
            for (int j = 1; j < valid; j++) mx = row[j] > mx ? row[j] : mx;
            float sum = 0;
            for (int j = 0; j < valid; j++) {
                row[j] = expf(row[j] - mx);
                sum += row[j];
            }
            float inv = 1.0f / sum;
            for (int j = 0; j < valid; j++) row[j] *= inv;
            for (int j = valid; j < Lr; j++) row[j] = 0.0f;
            if (M) {
                const float *m = M + (size_t)(r0 - q0 + i) * Lr;
                float *pd = Pd + (size_t)(r0 - q0 + i) * Lr;
                for (int j = 0; j < Lr; j++) pd[j] = row[j] * m[j];
            }
        }
        const float *Pdb = Pd + (size_t)(r0 - q0) * Lr;
        float *Ob = O + (size_t)(r0 - q0) * ldo;
        if (nk) par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D, nk, 1.0f, Pdb, Lr, Vbar, D, 0.0f, Ob, ldo);
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D, ne, 1.0f, Pdb + nk, Lr, V + (size_t)x0 * ld, ld,
                    nk ? 1.0f : 0.0f, Ob, ldo);
    }
}

static void linformer_forward(block_t *b, float *y, const float *x, float *act, float *scratch, int B, int T,
                              const run_ctx_t *rc) {
    linformer_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, D = C / H, N = B * T;
    int drop = has_dropout(b);
    // segment memory: the remembered rows this forward uses (n'), and where row 0 sits in the stream
    const seg_mem_t *mem = rc ? rc->mem : NULL;
    float *state = block_mem_state(b, rc);
    CHECK(!mem || (mem_len(b) > 0 && state && mem->B == B && mem->M == mem_len(b)));
    int nm = mem_rows_used(s, mem), L = nm + T;
    size_t BTC = (size_t)N * C, BLC = (size_t)B * L * C, HA = head_act(s, T, L, D, drop);
    size_t KB = (size_t)n_comp(s, L) * s->k * D, TL = (size_t)T * row_len(s, L);
    float *qkv = act, *heads = act + 3 * BLC, *xcat = heads + BTC;
    float *hbase = xcat + (mem_len(b) ? (size_t)B * (T + mem_len(b)) * C : 0);
    if (nm) {  // [memory rows ; segment] per batch row, kept for the weights' backward
        mem_rows_concat(xcat, state, x, B, mem->M, nm, T, C);
        attn_proj_in_forward(&s->proj, qkv, xcat, B * L, C);
    } else {
        attn_proj_in_forward(&s->proj, qkv, x, N, C);
    }
    // --pos rope: keys before compression, at stream positions (row 0 at pos0 − n')
    attn_proj_rope_qkv_at(&s->proj, qkv, B, L, C, H, mem ? mem->pos0 - nm : 0, ROPE_ROTATE);
    if (drop) {
        // Attention dropout: masks drawn serially, before the parallel loop, in (batch, head, i, j) order
        // over each head's whole (T, Lmax) probability layout (the unused tail of a row draws too).
        float p = rc->training ? rc->dropout : 0.0f, keep = p > 0 ? 1.0f / (1.0f - p) : 1.0f;
        for (size_t bh = 0; bh < (size_t)B * H; bh++) {
            float *M = hbase + bh * HA + 2 * KB + 2 * TL;
            if (p > 0)
                for (size_t i = 0; i < TL; i++) M[i] = rng_uniform(rc->rng) < p ? 0.0f : keep;
            else
                for (size_t i = 0; i < TL; i++) M[i] = 1.0f;
        }
    }
#pragma omp parallel for collapse(2) schedule(static)
    for (int bb = 0; bb < B; bb++)
        for (int h = 0; h < H; h++) {
            size_t bh = (size_t)bb * H + h;
            const float *base = qkv + (size_t)bb * L * 3 * C;
            float *ha = hbase + bh * HA, *P = ha + 2 * KB;
            head_forward(s, base + h * D, base + C + h * D, base + 2 * C + h * D, 3 * C,
                         heads + (size_t)bb * T * C + h * D, C, ha, ha + KB, P, drop ? P + TL : P,
                         drop ? P + 2 * TL : NULL, L, nm, D);
        }
    if (mem && mem->advance) mem_rows_advance(state, x, B, mem->M, mem->n, T, C);
    attn_proj_out_forward(&s->proj, y, heads, N, C);
}

// ---------------------------------------------------------------------------------------------
// backward. Per query chunk, with W = [K̄_<b−w ; K_x0..] and U = [V̄ ; V] the rows the chunk sees, and
// P' = P⊙M the dropped probabilities (P' == P, M == 1 without dropout):
//   dP' = dO·Uᵀ,  dU += P'ᵀ·dO,  dP = dP'⊙M,  dS = P⊙(dP − rowsum(dP⊙P)),  dQ += scale·dS·W,  dW += scale·dSᵀ·Q
// then for each compressed chunk (K̄_u = E·K_u):  dE += dK̄_u·K_uᵀ,  dK_u += Eᵀ·dK̄_u  (same for F, V)
// — over every chunk and head; per-head dE partials are summed after the parallel loop.
// Rows and layouts as head_forward's (L key rows, queries q0 … L−1; dO, P rows the query rows).
static void head_backward(const linformer_t *s, const float *Q, const float *K, const float *V, int ld,
                          const float *dO, int ldo, float *dQ, float *dK, float *dV, const float *Kbar,
                          const float *Vbar, const float *P, const float *Pd, const float *M, float *sc, int L,
                          int q0, int D) {
    int c = s->c, kk = s->k, w = s->w, nb = n_chunks(s, L), NC = n_comp(s, L), Lr = row_len(s, L);
    float scale = 1.0f / sqrtf((float)D);
    float *dP = sc, *dKbar = dP + (size_t)c * Lr, *dVbar = dKbar + (size_t)NC * kk * D;
    float *dE = dVbar + (size_t)NC * kk * D, *dF = dE + (size_t)kk * c;
    memset(dKbar, 0, 2 * (size_t)NC * kk * D * sizeof(float));
    memset(dE, 0, 2 * (size_t)kk * c * sizeof(float));
    for (int b = q0 / c; b < nb; b++) {
        int s0 = b * c, e0 = L - s0 < c ? L : s0 + c, ncb = b - w > 0 ? b - w : 0;
        int r0 = s0 > q0 ? s0 : q0, n = e0 - r0;
        int nk = ncb * kk, x0 = ncb * c, ne = e0 - x0;
        const float *Pb = P + (size_t)(r0 - q0) * Lr, *Pdb = Pd + (size_t)(r0 - q0) * Lr;
        const float *dOb = dO + (size_t)(r0 - q0) * ldo, *Qb = Q + (size_t)r0 * ld;
        if (nk) {
            par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, nk, D, 1.0f, dOb, ldo, Vbar, D, 0.0f, dP, Lr);
            par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, n, 1.0f, Pdb, Lr, dOb, ldo, 1.0f, dVbar, D);
        }
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, ne, D, 1.0f, dOb, ldo, V + (size_t)x0 * ld, ld, 0.0f,
                    dP + nk, Lr);
        par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ne, D, n, 1.0f, Pdb + nk, Lr, dOb, ldo, 1.0f,
                    dV + (size_t)x0 * ld, ld);
        for (int i = 0; i < n; i++) {
            float *d = dP + (size_t)i * Lr;
            const float *p = Pb + (size_t)i * Lr;
            int valid = nk + (r0 + i - x0) + 1;
            if (M) {
                const float *m = M + (size_t)(r0 - q0 + i) * Lr;
                for (int j = 0; j < valid; j++) d[j] *= m[j];
            }
            float dot = 0;
            for (int j = 0; j < valid; j++) dot += d[j] * p[j];
            for (int j = 0; j < valid; j++) d[j] = p[j] * (d[j] - dot);
            for (int j = valid; j < nk + ne; j++) d[j] = 0.0f;
        }
        if (nk) {
            par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D, nk, scale, dP, Lr, Kbar, D, 1.0f,
                        dQ + (size_t)r0 * ld, ld);
            par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, n, scale, dP, Lr, Qb, ld, 1.0f, dKbar, D);
        }
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D, ne, scale, dP + nk, Lr, K + (size_t)x0 * ld, ld,
                    1.0f, dQ + (size_t)r0 * ld, ld);
        par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ne, D, n, scale, dP + nk, Lr, Qb, ld, 1.0f,
                    dK + (size_t)x0 * ld, ld);
    }
    for (int u = 0; u < NC; u++) {
        const float *dKu = dKbar + (size_t)u * kk * D, *dVu = dVbar + (size_t)u * kk * D;
        const float *Ku = K + (size_t)u * c * ld, *Vu = V + (size_t)u * c * ld;
        // dE (k,c) += dK̄_u (k,D) · K_uᵀ (D,c);  dK_u (c,D) += Eᵀ (c,k) · dK̄_u (k,D)
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, kk, c, D, 1.0f, dKu, D, Ku, ld, 1.0f, dE, c);
        par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, c, D, kk, 1.0f, s->E->data, c, dKu, D, 1.0f,
                    dK + (size_t)u * c * ld, ld);
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, kk, c, D, 1.0f, dVu, D, Vu, ld, 1.0f, dF, c);
        par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, c, D, kk, 1.0f, s->F->data, c, dVu, D, 1.0f,
                    dV + (size_t)u * c * ld, ld);
    }
}

static void linformer_backward(block_t *b, float *dx, const float *dy, const float *x, const float *act,
                               float *scratch, int B, int T, const run_ctx_t *rc) {
    linformer_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, D = C / H, N = B * T;
    int drop = has_dropout(b);
    const seg_mem_t *mem = rc ? rc->mem : NULL;  // n and pos0 as the forward saw them
    int nm = mem_rows_used(s, mem), L = nm + T;
    size_t BTC = (size_t)N * C, BLC = (size_t)B * L * C, HA = head_act(s, T, L, D, drop), HS = head_scratch(s, L, D);
    size_t KB = (size_t)n_comp(s, L) * s->k * D, EC = (size_t)s->k * s->c, TL = (size_t)T * row_len(s, L);
    const float *qkv = act, *heads = act + 3 * BLC, *xcat = heads + BTC;
    const float *hbase = xcat + (mem_len(b) ? (size_t)B * (T + mem_len(b)) * C : 0);
    float *dheads = scratch, *dqkv = scratch + BTC, *sbase = dqkv + 3 * BLC;
    memset(dheads, 0, (BTC + 3 * BLC) * sizeof(float));
    attn_proj_out_backward(&s->proj, dheads, dy, heads, N, C);
#pragma omp parallel for collapse(2) schedule(static)
    for (int bb = 0; bb < B; bb++)
        for (int h = 0; h < H; h++) {
            size_t bh = (size_t)bb * H + h, row = (size_t)bb * L;
            const float *base = qkv + row * 3 * C, *ha = hbase + bh * HA, *P = ha + 2 * KB;
            float *dbase = dqkv + row * 3 * C;
            head_backward(s, base + h * D, base + C + h * D, base + 2 * C + h * D, 3 * C,
                          dheads + (size_t)bb * T * C + h * D, C, dbase + h * D, dbase + C + h * D,
                          dbase + 2 * C + h * D, ha, ha + KB, P, drop ? P + TL : P, drop ? P + 2 * TL : NULL,
                          sbase + bh * HS, L, nm, D);
        }
    // E and F gradients: the sum over every batch row and head (fixed order: deterministic)
    for (size_t bh = 0; bh < (size_t)B * H; bh++) {
        const float *dE = sbase + bh * HS + HS - 2 * EC, *dF = dE + EC;
        for (size_t i = 0; i < EC; i++) s->E->grad[i] += dE[i];
        for (size_t i = 0; i < EC; i++) s->F->grad[i] += dF[i];  // F == E with share=kv
    }
    // --pos rope: dq, dk ← R_tᵀ dq, R_tᵀ dk at the forward's positions
    attn_proj_rope_qkv_at(&s->proj, dqkv, B, L, C, H, mem ? mem->pos0 - nm : 0, ROPE_TRANSPOSE);
    if (!nm) {
        attn_proj_in_backward(&s->proj, dx, dqkv, x, N, C);
        return;
    }
    // memory rows: their keys and values give the weights gradient (d[Wq;Wk;Wv] += dqkvᵀ·xcat over all L
    // rows), but the remembered x̂ gets none; dx takes the segment's rows only: dx += dqkv_seg·[Wq;Wk;Wv]
    attn_proj_in_backward(&s->proj, NULL, dqkv, xcat, B * L, C);
    for (int bb = 0; bb < B; bb++)
        matmul_backward(dx + (size_t)bb * T * C, NULL, NULL, dqkv + ((size_t)bb * L + nm) * 3 * C, NULL,
                        s->proj.wq->data, T, C, 3 * C);
}

// ---------------------------------------------------------------------------------------------
// decode. cache: raw K, V of the last w+1 chunks in a ring ((w+1)·c, C) each, then K̄, V̄ of the
// compressed chunks in a ring of NCr slots (NCr·k, C) each, chunk u in slot u mod NCr — T·k/c + (w+1)·c
// vectors per head instead of T. NCr is the most compressed chunks one position sees: n_comp(ctx),
// or with segment memory n_comp(M + ctx) (M before its segment, plus the segment so far).
// With memory pos is the stream position: a token of the segment starting at seg0 = ⌊pos/ctx⌋·ctx
// sees the chunks from lo = max(seg0 − M, 0)/c on, as the segment-wise forward shows it.

static int decode_ncomp(const block_t *b) { return n_comp(b->priv, b->dims->ctx + b->dims->memory); }

static size_t linformer_cache_floats(const block_t *b) {
    const linformer_t *s = b->priv;
    size_t C = (size_t)b->dims->dim;
    return 2 * (size_t)(s->w + 1) * s->c * C + 2 * (size_t)decode_ncomp(b) * s->k * C;
}
static size_t linformer_decode_scratch_floats(const block_t *b) {
    const linformer_t *s = b->priv;
    return 4 * (size_t)b->dims->dim + (size_t)decode_ncomp(b) * s->k + (size_t)(s->w + 1) * s->c;
}

static void linformer_decode_step(block_t *b, float *y, const float *x, int pos, float *cache, float *scratch) {
    linformer_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, D = C / H, ctx = b->dims->ctx, c = s->c, kk = s->k, w = s->w;
    int M = b->dims->memory;
    CHECK(pos >= 0 && (M > 0 || pos < ctx));
    int R = (w + 1) * c, NCr = decode_ncomp(b), seg0 = pos / ctx * ctx, lo = seg0 > M ? (seg0 - M) / c : 0;
    float *Kr = cache, *Vr = Kr + (size_t)R * C, *Kb = Vr + (size_t)R * C, *Vb = Kb + (size_t)NCr * kk * C;
    float *qkv = scratch, *heads = qkv + 3 * C, *sc = heads + C;
    attn_proj_in_forward(&s->proj, qkv, x, 1, C);
    attn_proj_rope_one(&s->proj, qkv, C, H, pos);  // --pos rope: the ring and K̄ hold rotated keys
    int cb = pos / c, t = pos % c;
    if (t == 0 && cb >= w + 1 && NCr > 0) {
        // chunk cb−w−1 leaves the exact window: compress it before its ring slot is reused (into the slot
        // of chunk cb−w−1−NCr, which lies before lo: at most NCr compressed chunks are visible)
        int u = cb - w - 1, slot = u % (w + 1), cslot = u % NCr;
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, kk, C, c, 1.0f, s->E->data, c, Kr + (size_t)slot * c * C,
                    C, 0.0f, Kb + (size_t)cslot * kk * C, C);
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, kk, C, c, 1.0f, s->F->data, c, Vr + (size_t)slot * c * C,
                    C, 0.0f, Vb + (size_t)cslot * kk * C, C);
    }
    size_t rowi = (size_t)(cb % (w + 1)) * c + t;
    memcpy(Kr + rowi * C, qkv + C, (size_t)C * sizeof(float));
    memcpy(Vr + rowi * C, qkv + 2 * C, (size_t)C * sizeof(float));
    // compressed chunks lo … ncb−1 (columns 0 … nk−1), then the exact keys x0 … pos
    int ncb = cb - w > lo ? cb - w : lo, nk = (ncb - lo) * kk, x0 = ncb * c, n = nk + pos - x0 + 1;
    float scale = 1.0f / sqrtf((float)D);
#define COMP_ROW(j) (((size_t)((lo + (j) / kk) % NCr) * kk + (j) % kk) * C)
#define RING_ROW(j) (((size_t)(((x0 + (j) - nk) / c) % (w + 1)) * c + (x0 + (j) - nk) % c) * C)
#define KEY_ROW(j) ((j) < nk ? Kb + COMP_ROW(j) : Kr + RING_ROW(j))
#define VAL_ROW(j) ((j) < nk ? Vb + COMP_ROW(j) : Vr + RING_ROW(j))
    for (int h = 0; h < H; h++) {
        const float *q = qkv + h * D;
        float mx = -INFINITY;
        for (int j = 0; j < n; j++) {
            const float *kr = KEY_ROW(j) + h * D;
            float d = 0;
            for (int e = 0; e < D; e++) d += q[e] * kr[e];
            sc[j] = d * scale;
            mx = sc[j] > mx ? sc[j] : mx;
        }
        float sum = 0;
        for (int j = 0; j < n; j++) {
            sc[j] = expf(sc[j] - mx);
            sum += sc[j];
        }
        float *o = heads + h * D;
        for (int e = 0; e < D; e++) o[e] = 0;
        for (int j = 0; j < n; j++) {
            const float *vr = VAL_ROW(j) + h * D;
            float a = sc[j] / sum;
            for (int e = 0; e < D; e++) o[e] += a * vr[e];
        }
    }
#undef KEY_ROW
#undef VAL_ROW
#undef COMP_ROW
#undef RING_ROW
    attn_proj_out_forward(&s->proj, y, heads, 1, C);
}

// ---------------------------------------------------------------------------------------------
// segment memory: the x̂ rows of the last M positions (blocks/mem_rows.h), B·M·C floats.

static size_t linformer_mem_floats(const block_t *b, int B) { return mem_rows_floats(B, b->dims->memory, b->dims->dim); }

// Chunks are aligned to the stream start, and a segment's chunks must be those of the stream: ctx and
// M multiples of chunk.
static int linformer_check_memory(block_t *b, int M, char *err, size_t errlen) {
    const linformer_t *s = b->priv;
    if (M == 0) return 0;  // no memory: windows need no alignment
    if (M % s->c) return seterr(err, errlen, "%s: --memory %d is not a multiple of chunk %d", block_where(b), M, s->c);
    if (b->dims->ctx % s->c)
        return seterr(err, errlen, "%s: --memory needs ctx to be a multiple of chunk %d (ctx %d)", block_where(b), s->c,
                      b->dims->ctx);
    return 0;
}

static const char *const linformer_examples[] = {"linformer(chunk=2,k=1)", "linformer(chunk=4,k=2)",
                                                 "linformer(chunk=3,k=2,window=1)",
                                                 "linformer(chunk=2,k=2,window=1,share=kv)", NULL};

const block_ops_t mixer_linformer_ops = {
    .kind = "linformer",
    .role = ROLE_MIXER,
    .options = "chunk, k, window, share",
    .examples = linformer_examples,
    .configure = linformer_configure,
    .describe = linformer_describe,
    .register_params = linformer_register,
    .act_floats = linformer_act_floats,
    .scratch_floats = linformer_scratch_floats,
    .forward = linformer_forward,
    .backward = linformer_backward,
    .cache_floats = linformer_cache_floats,
    .decode_scratch_floats = linformer_decode_scratch_floats,
    .decode_step = linformer_decode_step,
    .mem_floats = linformer_mem_floats,
    .check_memory = linformer_check_memory,
    .free_priv = linformer_free,
};
