// attn_span.c — the causal attention core with an optional adaptive span mask (arXiv 1905.07799) and
// optional persistent key/value pairs (arXiv 1907.01470); see attn_span.h and docs/blocks/adaptive.md.
#include "blocks/attn_span.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/check.h"
#include "blocks/mem_rows.h"
#include "model/ops.h"
#include "model/gemm.h"

// ---------------------------------------------------------------------------------------------
// options and parameters

// --pos rope: build the head-width table once (positions [0, rope_table_positions(ctx)), later ones
// on the fly: model/rope.h); an odd head width is refused.
static int rope_setup(attn_span_t *a, block_t *b, char *err, size_t errlen) {
    if (b->dims->pos != POS_ROPE) return 0;
    int D = b->dims->dim / b->dims->heads;
    char why[128];
    if (rope_table_init(&a->rope, D, rope_table_positions(b->dims->ctx), why, sizeof why))
        return seterr(err, errlen, "%s: --pos rope needs an even head width (dim/heads), got %d", block_where(b), D);
    a->rope_on = 1;
    return 0;
}

void attn_span_block_free(block_t *b) {
    attn_span_t *a = b->priv;
    if (a) rope_table_free(&a->rope);
}

int attn_span_configure(attn_span_t *a, block_t *b, spec_block_t *spec, long persist_default, char *err,
                        size_t errlen) {
    memset(a, 0, sizeof *a);
    a->block = b;
    a->span_on = 1;
    const char *where = block_where(b);
    long ctx = b->dims->ctx;
    // span > ctx is refused by attn_span_check_memory unless --memory reaches it (M is set after configure)
    if (spec_get_int(spec, "span", ctx, 1, 1L << 30, &a->S, where, err, errlen)) return -1;
    if (spec_get_int(spec, "ramp", 32, 1, 1L << 20, &a->R, where, err, errlen)) return -1;
    if (spec_get_float(spec, "init", 0.5, 0.0, 1.0, &a->init, where, err, errlen)) return -1;
    if (spec_get_float(spec, "lambda", 2e-6, 0.0, 1e3, &a->lambda, where, err, errlen)) return -1;
    if (spec_get_int(spec, "persist", persist_default, 0, 1L << 20, &a->N, where, err, errlen)) return -1;
    return rope_setup(a, b, err, errlen);
}

int attn_span_init_persist(attn_span_t *a, block_t *b, long N, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    a->block = b;
    a->N = N;
    return rope_setup(a, b, err, errlen);
}

// z̃ starts at the layer's `init` in every head.
static void init_span(param_t *p, rng_t *rng, void *owner) {
    const attn_span_t *a = owner;
    for (size_t j = 0; j < p->numel; j++) p->data[j] = (float)a->init;
}

void attn_span_register(attn_span_t *a, const block_t *b, param_table_t *pt, const char *prefix) {
    int C = b->dims->dim, H = b->dims->heads, D = C / H;
    attn_proj_register(&a->proj, b->dims, pt, prefix);
    relpos_register(&a->rel, b->dims, pt, prefix);
    // z̃: no weight decay (the L1 penalty is its only pressure).
    if (a->span_on)
        a->span = params_add(pt, prefix, "span",
                             (param_spec_t){.shape = {H}, .init = INIT_CUSTOM, .init_fn = init_span, .init_owner = a});
    if (a->N > 0) {
        // Stored so that sqrt(D)·K and sqrt(N)·V are what attention uses (paper's re-parametrization).
        a->pk = params_add(pt, prefix, "persist_k", (param_spec_t){.shape = {H, a->N, D}, .init = INIT_NORMAL,
                                                                   .std = 1.0f / sqrtf((float)D), .decay = 1});
        a->pv = params_add(pt, prefix, "persist_v", (param_spec_t){.shape = {H, a->N, D}, .init = INIT_NORMAL,
                                                                   .std = 1.0f / sqrtf((float)a->N), .decay = 1});
    }
}

// ---------------------------------------------------------------------------------------------
// geometry: per head, the key window W, the row block RB, and the probability tile layout.
// Keys are the P0 memory rows (segment memory; 0 without) followed by the T segment rows: key e of
// the L = P0 + T sits at distance P0 + i − e from query i (a segment row). Row i of a head's
// probabilities lives at P + i·LD; column c < LD−N is key k0(i) + c, where
// k0(i) = max(0, r0 + P0 − W + 1) is the first key of i's row block [r0, r0+RB); the last N columns
// are the persistent keys. A (batch, head) region is T·LD(cap) floats, cap the widest window.

int attn_span_window(const attn_span_t *a, int h, int T) {
    if (!a->span_on) return T;
    float zt = a->span->data[h];
    if (!(zt >= 0.0f)) zt = 0.0f;  // also NaN
    if (zt > 1.0f) zt = 1.0f;
    double w = ceil((double)((float)a->S * zt)) + (double)a->R;  // m(x) = 0 for every x ≥ z + R
    return w < (double)T ? (w < 1 ? 1 : (int)w) : T;
}

static int row_block(int W) {
    int rb = W / 8;  // a block's product reads W + RB − 1 keys per row: keep RB small against W
    return rb < 8 ? 8 : rb > 32 ? 32 : rb;
}

// A row block reads at most W + RB − 1 keys, and never more than the L there are.
static int tile_ld(int W, int L, long N) {
    int cw = W + row_block(W) - 1;
    return (cw < L ? cw : L) + (int)N;
}

// Monotone in P0 (and T): act and scratch sized at the largest P0 hold every smaller one.
static size_t region_floats(const attn_span_t *a, int T, int P0) {
    int L = T + P0, cap = L;
    if (a->span_on && a->S + a->R < L) cap = (int)(a->S + a->R);
    return (size_t)T * tile_ld(cap, L, a->N);
}

// Segment memory: how many of the n remembered rows a forward projects. A query at segment row i ≥ 0
// reads keys at distance < W_h ≤ ceil(z_h) + R only, so memory rows before the last max_h W_h − 1 are
// never scored (adaptive-span's trimmed cache); without a span every remembered row is.
static int memory_rows_used(const attn_span_t *a, const model_dims_t *dims, int n) {
    if (!a->span_on || n == 0) return n;
    int wmax = 1;
    for (int h = 0; h < dims->heads; h++) {
        int w = attn_span_window(a, h, INT_MAX);
        wmax = w > wmax ? w : wmax;
    }
    return n < wmax - 1 ? n : wmax - 1;
}

// The largest P0 at this model's M (act and scratch sizes): min(M, S + R − 1) with a span (z ≤ S).
static int memory_rows_cap(const attn_span_t *a, const model_dims_t *dims) {
    long M = dims->memory > 0 ? dims->memory : 0;
    if (a->span_on && a->S + a->R - 1 < M) M = a->S + a->R - 1;
    return (int)M;
}

typedef struct {
    int T, P0, D, C3, C, W, RB, LD, N;
    int span;  // 1: soft mask m(x) with z, R
    float z, R, invR, scale, sqrtN;
} geom_t;

// Head h over T query rows after P0 memory rows (P0 = 0: no memory).
static geom_t make_geom(const attn_span_t *a, const model_dims_t *dims, int h, int T, int P0) {
    int C = dims->dim, D = C / dims->heads;
    geom_t g = {.T = T, .P0 = P0, .D = D, .C3 = 3 * C, .C = C, .N = (int)a->N, .span = a->span_on};
    g.W = attn_span_window(a, h, P0 + T);
    g.RB = row_block(g.W);
    g.LD = tile_ld(g.W, P0 + T, a->N);
    if (a->span_on) {
        g.z = (float)a->S * a->span->data[h];
        g.R = (float)a->R;
        g.invR = 1.0f / g.R;
    }
    g.scale = 1.0f / sqrtf((float)D);
    g.sqrtN = sqrtf((float)a->N);
    return g;
}

// m(x) = clamp((R + z − x)/R, 0, 1) at distance x (1 without a span).
static inline float span_mask(const geom_t *g, int x) {
    if (!g->span) return 1.0f;
    float m = (g->R + g->z - (float)x) * g->invR;
    return m < 0.0f ? 0.0f : m > 1.0f ? 1.0f : m;
}

// Key indices (0 … P0+T−1): the first of query i's row block, the first query i reads.
static inline int first_key(const geom_t *g, int i) {
    int k0 = (i / g->RB) * g->RB + g->P0 - g->W + 1;
    return k0 > 0 ? k0 : 0;
}
static inline int row_lo(const geom_t *g, int i) { return i + g->P0 - g->W + 1 > 0 ? i + g->P0 - g->W + 1 : 0; }

// ---------------------------------------------------------------------------------------------
// forward

// act layout: qkv (B,P0+T,3C) | P (B,H,region) | [P⊙M (B,H,region) | M (B,H,region)] | heads (B,T,C)
//             | [q0 (B,T,C)] | [xmem (B,P0,C)]
// Segment memory (P0 > 0 rows used): per row b, qkv holds the P0 memory rows' k|v (their q columns
// zero) then the T segment rows' q|k|v, so one strided product reads keys across the boundary; xmem
// is the memory rows' x̂, copied from the state before it advances (backward's dW_k, dW_v need it).
// Without memory P0 = 0 and the layout is the memory-free one.
// --pos rope: qkv holds the ROTATED q and k (R_t q_t, R_t k_t: what the content scores and their
// backward read; rotated in place, no extra memory). With persistent pairs the persistent scores
// need the unrotated query too, and the backward needs it for dKp = dS_pᵀ·q0: q0 keeps it, B·T·C
// more floats (recomputing it as R_tᵀ·(R_t q) would not be bit-exact, so the gradient would not be
// that of the forward). Without rope or without persistent pairs there is no q0.
typedef struct {
    float *qkv, *P, *Pd, *mask, *heads, *q0, *xmem;
    size_t region;
} views_t;

static int has_dropout(const attn_span_t *a) { return a->block->dropout_masks; }
static int has_q0(const attn_span_t *a) { return a->rope_on && a->N > 0; }

static views_t views(const attn_span_t *a, const model_dims_t *dims, float *act, int B, int T, int P0) {
    size_t BTC = (size_t)B * T * dims->dim, reg = region_floats(a, T, P0), A = (size_t)B * dims->heads * reg;
    views_t v = {.qkv = act, .P = act + 3 * (size_t)B * (P0 + T) * dims->dim, .region = reg};
    float *p = v.P + A;
    if (has_dropout(a)) {
        v.Pd = p;
        v.mask = p + A;
        p += 2 * A;
    } else {
        v.Pd = v.P;
    }
    v.heads = p;
    p += BTC;
    if (has_q0(a)) {
        v.q0 = p;
        p += BTC;
    }
    v.xmem = P0 ? p : NULL;
    return v;
}

size_t attn_span_act_floats(const attn_span_t *a, const model_dims_t *dims, int B, int T) {
    int P0 = memory_rows_cap(a, dims);
    size_t BTC = (size_t)B * T * dims->dim, A = (size_t)B * dims->heads * region_floats(a, T, P0);
    size_t BPC = (size_t)B * P0 * dims->dim;
    return 4 * BTC + 4 * BPC + A * (has_dropout(a) ? 3 : 1) + (has_q0(a) ? BTC : 0);
}

// scratch: dheads (B,T,C) | dqkv (B,P0+T,3C) | dP (B,H,region) | dKp, dVp (B,H,N,D) each | dz (B,H)
//          | [dq0 (B,T,C): rope with persistent pairs, the persistent scores' dq (unrotated)]
//          | [dQR (H,B,T,rel_width): --pos rel; the forward's QR uses the same place]
// --pos rel: the widest key window any head can have, min(P0 + T, S + R) — a row of QR or dQR.
static int rel_width(const attn_span_t *a, int T, int P0) {
    int L = T + P0;
    return a->span_on && a->S + a->R < L ? (int)(a->S + a->R) : L;
}

static size_t rel_floats(const attn_span_t *a, const model_dims_t *dims, int B, int T, int P0) {
    return relpos_on(&a->rel) ? (size_t)B * dims->heads * T * rel_width(a, T, P0) : 0;
}

size_t attn_span_scratch_floats(const attn_span_t *a, const model_dims_t *dims, int B, int T) {
    int P0 = memory_rows_cap(a, dims);
    size_t BH = (size_t)B * dims->heads, BTC = (size_t)B * T * dims->dim, BPC = (size_t)B * P0 * dims->dim;
    return 4 * BTC + 3 * BPC + BH * region_floats(a, T, P0) + 2 * (size_t)B * a->N * dims->dim + BH +
           (has_q0(a) ? BTC : 0) + rel_floats(a, dims, B, T, P0);
}

// --pos rel's QR / dQR in scratch: after everything the backward uses, sized for the largest P0;
// (batch row bb, head h) at ((h·B + bb)·T)·rel_width(T, P0) for the current P0.
static float *rel_buffer(const attn_span_t *a, const model_dims_t *dims, float *scratch, int B, int T) {
    if (!relpos_on(&a->rel)) return NULL;
    return scratch + attn_span_scratch_floats(a, dims, B, T) - rel_floats(a, dims, B, T, memory_rows_cap(a, dims));
}

// One (batch, head). Q (T rows), K, V (P0 + T rows: memory then segment): strided rows (stride 3C)
// of qkv; O: strided rows (stride C) of heads; Kp, Vp (N,D) the stored persistent keys/values; Qp
// (row stride ldqp) the query the persistent scores read: Q itself, or with rope the unrotated query.
// Row block [r0, r1) reads keys k0 … r1+P0−1 only (query i is key P0 + i):
//   S = scale·Q[r0:r1]·K[k0:r1+P0]ᵀ | Qp[r0:r1]·Kpᵀ,  P = masked joint softmax,
//   O = P'·V[k0:r1+P0] + sqrt(N)·P'_p·Vp
// --pos rel (QR non-NULL, (T, W)): QR = scale·Q·rel_k[:, 0:W], and each row's content column c, at
// distance c1 − c, gains QR[i, c1 − c] before the softmax.
// Returns the number of score entries computed.
static long long head_forward(const geom_t *g, float *P, float *Pd, const float *mask, const float *Q, const float *K,
                              const float *V, const float *Qp, int ldqp, const float *Kp, const float *Vp, float *O,
                              const relpos_t *rel, float *QR) {
    int T = g->T, P0 = g->P0, D = g->D, C3 = g->C3, C = g->C, LD = g->LD, N = g->N, W = g->W;
    long long scored = 0;
    if (QR) relpos_qr(rel, QR, W, Q, C3, T, D, W, g->scale);
    for (int r0 = 0; r0 < T; r0 += g->RB) {
        int r1 = r0 + g->RB < T ? r0 + g->RB : T, k0 = r0 + P0 - W + 1 > 0 ? r0 + P0 - W + 1 : 0, cw = r1 + P0 - k0,
            M = r1 - r0;
        float *Pt = P + (size_t)r0 * LD;
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, cw, D, g->scale, Q + (size_t)r0 * C3, C3,
                    K + (size_t)k0 * C3, C3, 0.0f, Pt, LD);
        // persistent logits q·(sqrt(D)·Kp)/sqrt(D) = q·Kp: no scale here
        if (N) par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, D, 1.0f, Qp + (size_t)r0 * ldqp, ldqp, Kp, D,
                           0.0f, Pt + LD - N, LD);
        scored += (long long)M * (cw + N);
        for (int i = r0; i < r1; i++) {
            float *row = P + (size_t)i * LD, *pers = row + LD - N;
            int c0 = row_lo(g, i) - k0, c1 = i + P0 - k0;  // this row's keys: columns c0 … c1
            if (QR) relpos_row_add(row, QR + (size_t)i * W, c1, c0, c1);
            float mx = -INFINITY;
            for (int c = c0; c <= c1; c++)
                if (span_mask(g, c1 - c) > 0.0f && row[c] > mx) mx = row[c];
            for (int n = 0; n < N; n++) mx = pers[n] > mx ? pers[n] : mx;
            float sum = 0;
            for (int c = c0; c <= c1; c++) {
                float m = span_mask(g, c1 - c);  // distance i − j = c1 − c
                row[c] = m > 0.0f ? m * expf(row[c] - mx) : 0.0f;
                sum += row[c];
            }
            for (int n = 0; n < N; n++) {
                pers[n] = expf(pers[n] - mx);
                sum += pers[n];
            }
            float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
            for (int c = 0; c < c0; c++) row[c] = 0.0f;
            for (int c = c0; c <= c1; c++) row[c] *= inv;
            for (int c = c1 + 1; c < cw; c++) row[c] = 0.0f;
            for (int n = 0; n < N; n++) pers[n] *= inv;
            if (mask) {
                const float *mr = mask + (size_t)i * LD;
                float *pd = Pd + (size_t)i * LD;
                for (int c = 0; c < cw; c++) pd[c] = c >= c0 && c <= c1 ? row[c] * mr[c] : 0.0f;
                for (int n = LD - N; n < LD; n++) pd[n] = row[n] * mr[n];
            }
        }
        const float *Pdt = Pd + (size_t)r0 * LD;
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, D, cw, 1.0f, Pdt, LD, V + (size_t)k0 * C3, C3, 0.0f,
                    O + (size_t)r0 * C, C);
        if (N) par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, D, N, g->sqrtN, Pdt + LD - N, LD, Vp, D, 1.0f,
                           O + (size_t)r0 * C, C);
    }
    return scored;
}

// qkv (B, P0+T, 3C): per row b, the P0 memory rows' k|v = xmem_b·[Wk;Wv]ᵀ + [bk;bv] (q columns 0),
// then the segment's q|k|v = x_b·[Wq;Wk;Wv]ᵀ + [bq;bk;bv]. P0 = 0: one product over all B·T rows.
static void project_in(attn_span_t *a, int C, float *qkv, const float *x, const float *xmem, int B, int T, int P0) {
    if (P0 == 0) {
        attn_proj_in_forward(&a->proj, qkv, x, B * T, C);
        return;
    }
    const float *wkv = a->proj.wk->data, *bkv = a->proj.bk->data;  // (2C, C) and (2C): contiguous (attn_proj.h)
    size_t C3 = 3 * (size_t)C;
    for (int bb = 0; bb < B; bb++) {
        float *qb = qkv + (size_t)bb * (P0 + T) * C3;
        attn_proj_in_forward(&a->proj, qb + (size_t)P0 * C3, x + (size_t)bb * T * C, T, C);
        for (int r = 0; r < P0; r++) {
            memset(qb + r * C3, 0, (size_t)C * sizeof(float));
            memcpy(qb + r * C3 + C, bkv, 2 * (size_t)C * sizeof(float));
        }
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, P0, 2 * C, C, 1.0f, xmem + (size_t)bb * P0 * C, C, wkv, C,
                    1.0f, qb + C, (int)C3);
    }
}

// --pos rope on qkv (B, P0+T, 3C): the segment's q and k heads at pos0 + t, the memory rows' k heads
// at pos0 − P0 + r (dir ROPE_ROTATE: forward; ROPE_TRANSPOSE: the backward, on dq and dk).
static void rope_rows(const attn_span_t *a, float *qkv, int B, int T, int P0, int C, int H, long pos0, rope_dir_t dir) {
    CHECK(pos0 >= P0 && pos0 + T <= INT_MAX);
    size_t C3 = 3 * (size_t)C, stride = (size_t)(P0 + T) * C3;
    rope_layout_t seg = rope_layout_qk(B, T, C, H);
    seg.batch_stride = stride;  // the same as rope_layout_qk's when P0 = 0
    rope_apply(&a->rope, qkv + P0 * C3, qkv + P0 * C3, &seg, (int)pos0, dir);
    if (P0) {
        rope_layout_t mem = {.B = B, .T = P0, .n_vec = H, .batch_stride = stride, .pos_stride = C3,
                             .vec_stride = (size_t)(C / H)};
        rope_apply(&a->rope, qkv + C, qkv + C, &mem, (int)(pos0 - P0), dir);
    }
}

void attn_span_forward(attn_span_t *a, const model_dims_t *dims, float *y, const float *x, float *act, float *scratch,
                       int B, int T, const run_ctx_t *rc) {
    int C = dims->dim, H = dims->heads, D = C / H, NT = B * T;
    const seg_mem_t *mem = rc ? rc->mem : NULL;
    float *state = mem ? block_mem_state(a->block, rc) : NULL;
    CHECK(!mem || (state && mem->B == B && mem->M == dims->memory));
    int P0 = mem ? memory_rows_used(a, dims, mem->n) : 0;
    CHECK(P0 <= memory_rows_cap(a, dims));
    long pos0 = mem ? mem->pos0 : 0;
    views_t v = views(a, dims, act, B, T, P0);
    if (P0)  // the last P0 of the n remembered rows, before the state advances
        for (int bb = 0; bb < B; bb++)
            memcpy(v.xmem + (size_t)bb * P0 * C, mem_rows_of(state, bb, mem->M, P0, C), (size_t)P0 * C * sizeof(float));
    project_in(a, C, v.qkv, x, v.xmem, B, T, P0);
    size_t L3C = (size_t)(P0 + T) * 3 * C;  // floats per row b of qkv
    if (a->rope_on) {
        // q0 ← q (persistent scores), then q, k ← R_t q, R_t k in place (after the bias).
        if (v.q0)
            for (int bb = 0; bb < B; bb++)
                for (int t = 0; t < T; t++)
                    memcpy(v.q0 + ((size_t)bb * T + t) * C, v.qkv + bb * L3C + (size_t)(P0 + t) * 3 * C,
                           (size_t)C * sizeof(float));
        rope_rows(a, v.qkv, B, T, P0, C, H, pos0, ROPE_ROTATE);
    }
    if (v.mask) {
        // Attention dropout: masks drawn serially, in (b, h, i, key, persistent) order, for the
        // entries each row actually uses, before the parallel loop.
        float p = rc->training ? rc->dropout : 0.0f, keep = p > 0 ? 1.0f / (1.0f - p) : 1.0f;
        for (int bb = 0; bb < B; bb++)
            for (int h = 0; h < H; h++) {
                geom_t g = make_geom(a, dims, h, T, P0);
                float *mk = v.mask + ((size_t)bb * H + h) * v.region;
                for (int i = 0; i < T; i++) {
                    float *mr = mk + (size_t)i * g.LD;
                    int k0 = first_key(&g, i);
                    for (int c = row_lo(&g, i) - k0; c <= i + P0 - k0; c++)
                        mr[c] = p > 0 && rng_uniform(rc->rng) < p ? 0.0f : keep;
                    for (int n = g.LD - g.N; n < g.LD; n++) mr[n] = p > 0 && rng_uniform(rc->rng) < p ? 0.0f : keep;
                }
            }
    }
    const float *pk = a->pk ? a->pk->data : NULL, *pv = a->pv ? a->pv->data : NULL;
    float *QR = rel_buffer(a, dims, scratch, B, T);
    size_t relw = (size_t)T * rel_width(a, T, P0);  // QR floats per (batch, head)
    long long scored = 0;
#pragma omp parallel for collapse(2) schedule(static) reduction(+ : scored)
    for (int bb = 0; bb < B; bb++)
        for (int h = 0; h < H; h++) {
            geom_t g = make_geom(a, dims, h, T, P0);
            size_t off = ((size_t)bb * H + h) * v.region, nd = (size_t)h * a->N * D;
            const float *base = v.qkv + bb * L3C, *qseg = base + (size_t)P0 * 3 * C;
            const float *qp = v.q0 ? v.q0 + (size_t)bb * T * C + h * D : qseg + h * D;
            scored += head_forward(&g, v.P + off, v.Pd + off, v.mask ? v.mask + off : NULL, qseg + h * D,
                                   base + C + h * D, base + 2 * C + h * D, qp, v.q0 ? C : 3 * C, pk ? pk + nd : NULL,
                                   pv ? pv + nd : NULL, v.heads + (size_t)bb * T * C + h * D, &a->rel,
                                   QR ? QR + ((size_t)h * B + bb) * relw : NULL);
        }
    a->keys_scored = scored;
    a->mem_rows_used = P0;
    attn_proj_out_forward(&a->proj, y, v.heads, NT, C);
    // The segment joins the memory (x̂ rows; P0 of the old ones are in act for backward).
    if (mem && mem->advance) mem_rows_advance(state, x, B, mem->M, mem->n, T, C);
}

// ---------------------------------------------------------------------------------------------
// backward

// One (batch, head), the geometry of head_forward (keys k0 … r1+P0−1 of the memory and segment rows;
// dK, dV have P0 + T rows, the memory rows' included). Forward per row: u_c = m_c·e^{s_c},
// p_c = u_c/Z (persistent: m = 1), P' = P⊙M.
//   dP' = dO·V[k0:]ᵀ | sqrt(N)·dO·Vpᵀ,   dV[k0:] += P'ᵀ·dO,   dVp += sqrt(N)·P'_pᵀ·dO
//   dP = dP'⊙M,  dS = P⊙(dP − rowsum(dP⊙P))                         (as softmax: log m shifts s)
//   ∂L/∂m_c = (e^{s_c}/Z)(dP_c − rowsum) = dS_c/m_c,  ∂m/∂z = 1/R strictly inside the ramp (0<m<1)
//   dQ += scale·dS·K[k0:],  dQp += dS_p·Kp,  dK[k0:] += scale·dSᵀ·Q,  dKp += dS_pᵀ·Qp
// Qp/dQp (row stride ldqp): the query of the persistent scores and its gradient — Q/dQ themselves
// without rope; with rope the unrotated query and a separate buffer (the caller combines them).
// --pos rel (dQR non-NULL, (T, W)): dQR[i, c1 − c] = dS_c (0 at distances the row does not read),
// then dQ += scale·dQR·rel_kᵀ; drel_k's share is the caller's (a sum over batch rows and heads).
// Returns Σ dS/m over ramp entries (the caller multiplies by ∂z/∂z̃ · ∂m/∂z = S/R).
static float head_backward(const geom_t *g, const float *P, const float *Pd, const float *mask, const float *Q,
                           const float *K, const float *V, const float *Qp, float *dQp, int ldqp, const float *Kp,
                           const float *Vp, const float *dO, float *dQ, float *dK, float *dV, float *dKp, float *dVp,
                           float *dP, const relpos_t *rel, float *dQR) {
    int T = g->T, P0 = g->P0, D = g->D, C3 = g->C3, C = g->C, LD = g->LD, N = g->N, W = g->W;
    float dz = 0;
    for (int r0 = 0; r0 < T; r0 += g->RB) {
        int r1 = r0 + g->RB < T ? r0 + g->RB : T, k0 = r0 + P0 - W + 1 > 0 ? r0 + P0 - W + 1 : 0, cw = r1 + P0 - k0,
            M = r1 - r0;
        float *dPt = dP + (size_t)r0 * LD;
        const float *Pdt = Pd + (size_t)r0 * LD, *dOt = dO + (size_t)r0 * C;
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, cw, D, 1.0f, dOt, C, V + (size_t)k0 * C3, C3, 0.0f,
                    dPt, LD);
        par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cw, D, M, 1.0f, Pdt, LD, dOt, C, 1.0f,
                    dV + (size_t)k0 * C3, C3);
        if (N) {
            par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, D, g->sqrtN, dOt, C, Vp, D, 0.0f, dPt + LD - N,
                        LD);
            par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, D, M, g->sqrtN, Pdt + LD - N, LD, dOt, C, 1.0f, dVp,
                        D);
        }
        for (int i = r0; i < r1; i++) {
            float *d = dP + (size_t)i * LD, *dpers = d + LD - N;
            const float *p = P + (size_t)i * LD, *ppers = p + LD - N;
            int c0 = row_lo(g, i) - k0, c1 = i + P0 - k0;
            if (mask) {
                const float *mr = mask + (size_t)i * LD;
                for (int c = c0; c <= c1; c++) d[c] *= mr[c];
                for (int n = 0; n < N; n++) dpers[n] *= mr[LD - N + n];
            }
            float dot = 0;
            for (int c = c0; c <= c1; c++) dot += d[c] * p[c];
            for (int n = 0; n < N; n++) dot += dpers[n] * ppers[n];
            for (int c = 0; c < c0; c++) d[c] = 0.0f;
            for (int c = c0; c <= c1; c++) {
                float ds = p[c] * (d[c] - dot);
                if (g->span) {
                    float m = span_mask(g, c1 - c);
                    if (m > 0.0f && m < 1.0f) dz += ds / m;
                }
                d[c] = ds;
            }
            for (int c = c1 + 1; c < cw; c++) d[c] = 0.0f;
            for (int n = 0; n < N; n++) dpers[n] = ppers[n] * (dpers[n] - dot);
            if (dQR) relpos_row_grad(dQR + (size_t)i * W, W, d, c1, c0, c1);
        }
        const float *Qt = Q + (size_t)r0 * C3;
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, D, cw, g->scale, dPt, LD, K + (size_t)k0 * C3, C3,
                    1.0f, dQ + (size_t)r0 * C3, C3);
        par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cw, D, M, g->scale, dPt, LD, Qt, C3, 1.0f,
                    dK + (size_t)k0 * C3, C3);
        if (N) {
            par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, D, N, 1.0f, dPt + LD - N, LD, Kp, D, 1.0f,
                        dQp + (size_t)r0 * ldqp, ldqp);
            par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, D, M, 1.0f, dPt + LD - N, LD, Qp + (size_t)r0 * ldqp,
                        ldqp, 1.0f, dKp, D);
        }
    }
    if (dQR) relpos_dq(rel, dQ, C3, dQR, W, T, D, W, g->scale);
    return dz;
}

// The input projection's backward. P0 = 0: one product over all B·T rows. With memory rows, per row b:
//   dx_b += dqkv_seg·[Wq;Wk;Wv],  d[Wq;Wk;Wv] += dqkv_segᵀ·x_b,  d[bq;bk;bv] += Σ dqkv_seg   (segment)
//   d[Wk;Wv] += dkv_memᵀ·xmem_b,  d[bk;bv] += Σ dkv_mem           (memory rows: no dx, stop-gradient)
static void project_in_backward(attn_span_t *a, int C, float *dx, const float *dqkv, const float *x, const float *xmem,
                                int B, int T, int P0) {
    if (P0 == 0) {
        attn_proj_in_backward(&a->proj, dx, dqkv, x, B * T, C);
        return;
    }
    float *dwkv = a->proj.wk->grad, *dbkv = a->proj.bk->grad;
    CHECK(a->proj.wv->grad == dwkv + (size_t)C * C && a->proj.bv->grad == dbkv + C);
    size_t C3 = 3 * (size_t)C;
    for (int bb = 0; bb < B; bb++) {
        const float *db = dqkv + (size_t)bb * (P0 + T) * C3;
        attn_proj_in_backward(&a->proj, dx + (size_t)bb * T * C, db + (size_t)P0 * C3, x + (size_t)bb * T * C, T, C);
        par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 2 * C, C, P0, 1.0f, db + C, (int)C3,
                    xmem + (size_t)bb * P0 * C, C, 1.0f, dwkv, C);
        for (int r = 0; r < P0; r++)
            for (int c = 0; c < 2 * C; c++) dbkv[c] += db[r * C3 + C + c];
    }
}

void attn_span_backward(attn_span_t *a, const model_dims_t *dims, float *dx, const float *dy, const float *x,
                        const float *act, float *scratch, int B, int T, const run_ctx_t *rc) {
    int C = dims->dim, H = dims->heads, D = C / H, NT = B * T;
    const seg_mem_t *mem = rc ? rc->mem : NULL;
    int P0 = mem ? memory_rows_used(a, dims, mem->n) : 0;  // as the forward (same n, same z̃)
    long pos0 = mem ? mem->pos0 : 0;
    views_t v = views(a, dims, (float *)act, B, T, P0);
    size_t BH = (size_t)B * H, ND = (size_t)a->N * D, L3C = (size_t)(P0 + T) * 3 * C;
    float *dheads = scratch, *dqkv = scratch + (size_t)NT * C, *dP = dqkv + B * L3C;
    float *dKp = dP + BH * v.region, *dVp = dKp + BH * ND, *dz = dVp + BH * ND;
    float *dq0 = v.q0 ? dz + BH : NULL;  // (B,T,C) the persistent scores' gradient w.r.t. the unrotated q
    memset(dheads, 0, ((size_t)NT * C + B * L3C) * sizeof(float));
    memset(dKp, 0, (2 * BH * ND + BH) * sizeof(float));
    if (dq0) memset(dq0, 0, (size_t)NT * C * sizeof(float));
    // y = heads·Woᵀ + bo
    attn_proj_out_backward(&a->proj, dheads, dy, v.heads, NT, C);
    const float *pk = a->pk ? a->pk->data : NULL, *pv = a->pv ? a->pv->data : NULL;
    float *dQR = rel_buffer(a, dims, scratch, B, T);
    size_t relw = (size_t)T * rel_width(a, T, P0);  // dQR floats per (batch, head)
#pragma omp parallel for collapse(2) schedule(static)
    for (int bb = 0; bb < B; bb++)
        for (int h = 0; h < H; h++) {
            geom_t g = make_geom(a, dims, h, T, P0);
            size_t bh = (size_t)bb * H + h, off = bh * v.region, nd = (size_t)h * ND;
            const float *base = v.qkv + bb * L3C, *qseg = base + (size_t)P0 * 3 * C;
            float *dbase = dqkv + bb * L3C, *dqseg = dbase + (size_t)P0 * 3 * C;
            size_t q0off = (size_t)bb * T * C + h * D;
            dz[bh] = head_backward(&g, v.P + off, v.Pd + off, v.mask ? v.mask + off : NULL, qseg + h * D,
                                   base + C + h * D, base + 2 * C + h * D, v.q0 ? v.q0 + q0off : qseg + h * D,
                                   dq0 ? dq0 + q0off : dqseg + h * D, v.q0 ? C : 3 * C, pk ? pk + nd : NULL,
                                   pv ? pv + nd : NULL, dheads + (size_t)bb * T * C + h * D, dqseg + h * D,
                                   dbase + C + h * D, dbase + 2 * C + h * D, dKp + bh * ND, dVp + bh * ND, dP + off,
                                   &a->rel, dQR ? dQR + ((size_t)h * B + bb) * relw : NULL);
        }
    // --pos rel: drel_k[:, 0:W_h] += scale·Q_bhᵀ·dQR_bh, in (head, batch row) order (the segment's
    // query rows of batch row bb are not evenly strided across rows when memory rows sit between)
    if (dQR)
        for (int h = 0; h < H; h++) {
            geom_t g = make_geom(a, dims, h, T, P0);
            for (int bb = 0; bb < B; bb++)
                relpos_dk(&a->rel, v.qkv + bb * L3C + (size_t)P0 * 3 * C + h * D, 3 * C,
                          dQR + ((size_t)h * B + bb) * relw, g.W, T, D, g.W, g.scale);
        }
    if (a->rope_on) {
        // q_t = R_t q0_t feeds the content scores, q0_t the persistent ones; k_t = R_t k0_t (memory rows
        // too, at their positions):
        //   dq0_t = R_tᵀ·dq_t (content) + dq0_t (persistent),  dk0_t = R_tᵀ·dk_t   (R_tᵀ = R_{−t})
        rope_rows(a, dqkv, B, T, P0, C, H, pos0, ROPE_TRANSPOSE);
        if (dq0)
#pragma omp parallel for schedule(static)
            for (int n = 0; n < NT; n++) {
                float *dq = dqkv + (size_t)(n / T) * L3C + (size_t)(P0 + n % T) * 3 * C;
                for (int c = 0; c < C; c++) dq[c] += dq0[(size_t)n * C + c];
            }
    }
    // Per-(batch, head) partial gradients of shared tensors, summed in a fixed order.
    if (a->span_on) {
        float k = (float)a->S / (float)a->R;  // z = S·z̃, ∂m/∂z = 1/R
        for (int h = 0; h < H; h++) {
            float s = 0;
            for (int bb = 0; bb < B; bb++) s += dz[(size_t)bb * H + h];
            a->span->grad[h] += k * s;
        }
    }
    if (a->N > 0) {
        size_t HND = (size_t)H * ND;
#pragma omp parallel for schedule(static)
        for (size_t e = 0; e < HND; e++) {
            float sk = 0, sv = 0;
            for (int bb = 0; bb < B; bb++) {
                sk += dKp[(size_t)bb * HND + e];
                sv += dVp[(size_t)bb * HND + e];
            }
            a->pk->grad[e] += sk;
            a->pv->grad[e] += sv;
        }
    }
    // qkv = x·Wqkvᵀ + bqkv (and the memory rows' k|v = xmem·Wkvᵀ + bkv)
    project_in_backward(a, C, dx, dqkv, x, v.xmem, B, T, P0);
}

// ---------------------------------------------------------------------------------------------
// span penalty, clamp, report

float attn_span_extra_loss(attn_span_t *a, const model_dims_t *dims, int add_grad) {
    if (!a->span_on || a->lambda == 0.0) return 0.0f;
    int H = dims->heads;
    double sum = 0;
    for (int h = 0; h < H; h++) sum += (double)a->S * a->span->data[h];
    if (add_grad) {
        float g = (float)(a->lambda * (double)a->S / H);
        for (int h = 0; h < H; h++) a->span->grad[h] += g;
    }
    return (float)(a->lambda * sum / H);
}

void attn_span_after_step(attn_span_t *a) {
    if (!a->span_on) return;
    for (size_t h = 0; h < a->span->numel; h++) {
        float z = a->span->data[h];
        a->span->data[h] = z > 1.0f ? 1.0f : z >= 0.0f ? z : 0.0f;
    }
}

int attn_span_spans(const attn_span_t *a, const model_dims_t *dims, float *out) {
    if (!a->span_on) return 0;
    for (int h = 0; h < dims->heads; h++) out[h] = (float)a->S * a->span->data[h];
    return dims->heads;
}

// ---------------------------------------------------------------------------------------------
// segment memory: the state, and which spans a memory length allows

size_t attn_span_mem_floats(const attn_span_t *a, const model_dims_t *dims, int B) {
    (void)a;  // every remembered row is kept (cheap); forward projects only the tail the spans reach
    return mem_rows_floats(B, dims->memory, dims->dim);
}

int attn_span_check_memory(const attn_span_t *a, block_t *b, int M, char *err, size_t errlen) {
    long ctx = b->dims->ctx;
    if (!a->span_on || a->S <= ctx || a->S <= M) return 0;
    if (M == 0)
        return seterr(err, errlen, "%s: span=%ld exceeds --ctx %ld (no key is farther than ctx-1 tokens without "
                                   "--memory); use span <= %ld, or --memory >= %ld",
                      block_where(b), a->S, ctx, ctx, a->S);
    return seterr(err, errlen, "%s: span %ld exceeds both ctx %ld and --memory %d; lower span or raise --memory",
                  block_where(b), a->S, ctx, M);
}

// ---------------------------------------------------------------------------------------------
// decode: cache = K ring (P, C) | V ring (P, C), position j in slot j mod P. Without memory
// P = min(ctx, S + R) (ctx without a span); with M > 0 a token sees up to M + ctx positions (the M
// before its segment and its segment so far), so P = min(M + ctx, S + R). A step reads only the last
// W_h positions of head h: keys at distance < min(visible, ceil(z_h) + R).

static int ring_positions(const attn_span_t *a, const model_dims_t *dims) {
    long P = (long)dims->ctx + dims->memory;
    if (a->span_on && a->S + a->R < P) P = a->S + a->R;
    return (int)P;
}

size_t attn_span_cache_floats(const attn_span_t *a, const model_dims_t *dims) {
    return 2 * (size_t)ring_positions(a, dims) * dims->dim;
}

// scratch: qkv (3C) | heads (C) | w (ring + N) | [q0 (C): rope, the unrotated query]
//          | [qr (ring): --pos rel, scale·q·r_d at distance d (rope and rel exclude each other)]
size_t attn_span_decode_scratch_floats(const attn_span_t *a, const model_dims_t *dims) {
    return 4 * (size_t)dims->dim + ring_positions(a, dims) + a->N + (a->rope_on ? (size_t)dims->dim : 0) +
           (relpos_on(&a->rel) ? (size_t)ring_positions(a, dims) : 0);
}

void attn_span_decode_step(attn_span_t *a, const model_dims_t *dims, float *y, const float *x, int pos, float *cache,
                           float *scratch) {
    int C = dims->dim, H = dims->heads, D = C / H, N = (int)a->N, P = ring_positions(a, dims), M = dims->memory;
    CHECK(pos >= 0 && (M > 0 || pos < dims->ctx));
    // the positions this token sees: its segment so far (i + 1, i = pos mod ctx) and min(start, M) before
    int i = M > 0 ? pos % dims->ctx : pos, start = pos - i, visible = i + 1 + (start < M ? start : M);
    float *qkv = scratch, *heads = scratch + 3 * C, *w = heads + C, *q0 = qkv;
    float *Kc = cache, *Vc = cache + (size_t)P * C;
    attn_proj_in_forward(&a->proj, qkv, x, 1, C);
    if (a->rope_on) {
        // the ring holds rotated keys; q0 keeps the unrotated query for the persistent scores
        q0 = w + P + N;
        memcpy(q0, qkv, (size_t)C * sizeof(float));
        rope_apply_one(&a->rope, qkv, 2 * H, D, pos, ROPE_ROTATE);
    }
    memcpy(Kc + (size_t)(pos % P) * C, qkv + C, (size_t)C * sizeof(float));
    memcpy(Vc + (size_t)(pos % P) * C, qkv + 2 * C, (size_t)C * sizeof(float));
    for (int h = 0; h < H; h++) {
        geom_t g = make_geom(a, dims, h, visible, 0);
        int jlo = pos - g.W + 1;  // W ≤ P: every position read is still in the ring
        const float *q = qkv + h * D;
        const float *Kp = N ? a->pk->data + (size_t)h * N * D : NULL, *Vp = N ? a->pv->data + (size_t)h * N * D : NULL;
        float mx = -INFINITY, *wp = w + g.W, *qr = w + P + N;
        if (relpos_on(&a->rel)) relpos_decode(&a->rel, qr, q, D, g.W, g.scale);  // qr[d] = scale·q·r_d, d < W
        for (int j = jlo; j <= pos; j++) {
            const float *k = Kc + (size_t)(j % P) * C + h * D;
            float dot = 0;
            for (int e = 0; e < D; e++) dot += q[e] * k[e];
            w[j - jlo] = dot * g.scale;
            if (relpos_on(&a->rel)) w[j - jlo] += qr[pos - j];
            if (span_mask(&g, pos - j) > 0.0f && w[j - jlo] > mx) mx = w[j - jlo];
        }
        const float *qp = q0 + h * D;
        for (int n = 0; n < N; n++) {
            float dot = 0;
            for (int e = 0; e < D; e++) dot += qp[e] * Kp[(size_t)n * D + e];
            wp[n] = dot;
            mx = dot > mx ? dot : mx;
        }
        float sum = 0;
        for (int j = jlo; j <= pos; j++) {
            float m = span_mask(&g, pos - j);
            w[j - jlo] = m > 0.0f ? m * expf(w[j - jlo] - mx) : 0.0f;
            sum += w[j - jlo];
        }
        for (int n = 0; n < N; n++) {
            wp[n] = expf(wp[n] - mx);
            sum += wp[n];
        }
        float inv = sum > 0.0f ? 1.0f / sum : 0.0f, *o = heads + h * D;
        for (int e = 0; e < D; e++) o[e] = 0;
        for (int j = jlo; j <= pos; j++) {
            const float *vv = Vc + (size_t)(j % P) * C + h * D;
            float p = w[j - jlo] * inv;
            for (int e = 0; e < D; e++) o[e] += p * vv[e];
        }
        for (int n = 0; n < N; n++) {
            float p = wp[n] * inv * g.sqrtN;
            for (int e = 0; e < D; e++) o[e] += p * Vp[(size_t)n * D + e];
        }
    }
    attn_proj_out_forward(&a->proj, y, heads, 1, C);
}

// ---------------------------------------------------------------------------------------------
// block wrappers (priv is an attn_span_t)

void attn_span_block_register(block_t *b, param_table_t *pt, const char *prefix) {
    attn_span_register(b->priv, b, pt, prefix);
}
size_t attn_span_block_act_floats(const block_t *b, int B, int T) { return attn_span_act_floats(b->priv, b->dims, B, T); }
size_t attn_span_block_scratch_floats(const block_t *b, int B, int T) {
    return attn_span_scratch_floats(b->priv, b->dims, B, T);
}
void attn_span_block_forward(block_t *b, float *y, const float *x, float *act, float *scratch, int B, int T,
                             const run_ctx_t *rc) {
    attn_span_forward(b->priv, b->dims, y, x, act, scratch, B, T, rc);
}
void attn_span_block_backward(block_t *b, float *dx, const float *dy, const float *x, const float *act, float *scratch,
                              int B, int T, const run_ctx_t *rc) {
    attn_span_backward(b->priv, b->dims, dx, dy, x, act, scratch, B, T, rc);
}
float attn_span_block_extra_loss(block_t *b, int add_grad) { return attn_span_extra_loss(b->priv, b->dims, add_grad); }
void attn_span_block_after_step(block_t *b, long step, rng_t *rng) { attn_span_after_step(b->priv); }
size_t attn_span_block_cache_floats(const block_t *b) { return attn_span_cache_floats(b->priv, b->dims); }
size_t attn_span_block_decode_scratch_floats(const block_t *b) {
    return attn_span_decode_scratch_floats(b->priv, b->dims);
}
void attn_span_block_decode_step(block_t *b, float *y, const float *x, int pos, float *cache, float *scratch) {
    attn_span_decode_step(b->priv, b->dims, y, x, pos, cache, scratch);
}
// Row i of head h's tile holds key k0(i) + c in column c < LD − N and the persistent keys in the last N.
int attn_span_block_attn_map(const block_t *b, const float *act, int T, int head, float *out) {
    const attn_span_t *a = b->priv;
    int N = (int)a->N, W = T + N;
    if (!out) return N;
    views_t v = views(a, b->dims, (float *)act, 1, T, 0);
    geom_t g = make_geom(a, b->dims, head, T, 0);
    const float *P = v.P + (size_t)head * v.region;
    for (int i = 0; i < T; i++) {
        const float *row = P + (size_t)i * g.LD;
        float *o = out + (size_t)i * W;
        int k0 = first_key(&g, i);
        for (int j = 0; j < T; j++) o[j] = j >= row_lo(&g, i) && j <= i ? row[j - k0] : 0.0f;
        for (int n = 0; n < N; n++) o[T + n] = row[g.LD - N + n];
    }
    return N;
}

int attn_span_block_spans(const block_t *b, float *out) { return attn_span_spans(b->priv, b->dims, out); }
size_t attn_span_block_mem_floats(const block_t *b, int B) { return attn_span_mem_floats(b->priv, b->dims, B); }
int attn_span_block_check_memory(block_t *b, int M, char *err, size_t errlen) {
    return attn_span_check_memory(b->priv, b, M, err, errlen);
}
