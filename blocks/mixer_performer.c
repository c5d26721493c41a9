// mixer_performer.c — causal FAVOR+ attention (Performer; Choromanski et al., ICLR 2021, arXiv 2009.14794).
//   q, k, v = x·Wqᵀ + bq, x·Wkᵀ + bk, x·Wvᵀ + bv; per head q̂ = D^(-1/4)·q, k̂ = D^(-1/4)·k
//   softmax kernel: φ(q̂)_r = m^(-1/2)·exp(ω_r·q̂ − c^q_i),  φ(k̂_j)_r = m^(-1/2)·exp(ω_r·k̂_j − |k̂_j|²/2 − c_i)
//   relu kernel:    φ(x̂)_r = ReLU(ω_r·x̂) + 1e-3
//   y_i = Σ_{j≤i} (φq_i·φk_j) v_j / Σ_{j≤i} φq_i·φk_j,  then concat_h(y)·Woᵀ + bo
// c^q_i is the query's own max over features (the |q̂|²/2 term is constant along a query's row
// and cancels with it); c_i is the running max over keys j ≤ i and all features — never a
// future key. Both cancel between numerator and denominator and are constants for the gradient.
// Tensors: attn.wq, wk, wv (C,C) consecutive, attn.bq, bk, bv (C), attn.wo, bo as in softmax (so a
// softmax checkpoint loads by name), attn.omega (m, D): a buffer (saved, never trained), shared by
// the heads, redrawn every `redraw` optimizer steps from the run's RNG (default 0: never).
// --pos rope (LONG_CONTEXT.md §1): q and k are rotated after the bias and BEFORE the feature map,
// q_t ← R_t q_t, k_t ← R_t k_t (qkv in act holds them rotated), so φ(R_i q̂)·φ(R_j k̂) estimates
// exp((R_i q̂)·(R_j k̂)) = exp(q̂·R_{j−i} k̂); the stabilizer c and |k̂|² are those of the rotated keys
// (what φ sees; the norm is unchanged by a rotation). Backward: dq, dk ← R_tᵀ dq, R_tᵀ dk before the
// projection's backward. Decode rotates at the true position pos, also past ctx (streaming).
//
// Algorithm (per batch row and head): positions are cut into blocks of R rows (performer_set_chunk).
// Inside a block the exact masked product (φQ φKᵀ ⊙ ρ) V' runs as small matrix products, ρ_ij =
// exp(c_j − c_i) ≤ 1 moving key j's features from its own reference c_j to the query's c_i; the
// earlier blocks arrive through the prefix state S' = Σ φk_j v'_jᵀ (m, D+1), v' = [v, 1] so the
// last column is the denominator z. Forward keeps what each block reads, P' (S' at its start, plus
// with memory the carried window), one per block (T/R states, not T), and backward walks the blocks
// in reverse, carrying dS'.
//
// Segment memory (--memory M > 0, LONG_CONTEXT.md §2, superseded here): a BOUNDED window. Stream
// positions are cut into window blocks of L = ctx; with K = M/L (M a multiple of ctx), a query in
// block b sums over the keys of blocks b−K … b up to itself. Carried without gradient (truncated
// backprop): per (row, head) a ring of K finished block states and the current block's partial
// state, each with its own reference c — see "segment memory" below. Rope rotates segment row t at
// stream position pos0 + t. A redraw of Ω empties the carry (the states hold the old features).
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks/attn_proj.h"
#include "model/block.h"
#include "model/gemm.h"
#include "base/check.h"
#include "blocks/favor.h"
#include "model/ops.h"

enum { KERNEL_SOFTMAX = 0, KERNEL_RELU = 1 };
#define RELU_EPS 1e-3f
#define DEN_TINY 1e-30f  // y = numerator / max(denominator, DEN_TINY)
// The reference of an empty memory slot: finite, because the training memory is saved in checkpoints
// and the loader refuses non-finite values. No real reference comes near it (softmax: the max of
// ω_r·k̂ − |k̂|²/2; relu: 0).
#define EMPTY_REF (-FLT_MAX)
static int slot_full(const float *slot, size_t SD) { return slot[SD] > EMPTY_REF; }

typedef struct {
    attn_proj_t proj;  // attn.wq|wk|wv, bq|bk|bv, wo, bo (blocks/attn_proj.h)
    param_t *omega;
    int m, kernel, rows;
    long redraw;
    int D;
    double *work;  // (D, D) for drawing Ω; NULL until the first draw (omega_work)
} performer_t;

// ---------------------------------------------------------------------------------------------
// Ω

void favor_draw_omega(float *omega, int m, int D, rng_t *rng, double *work) {
    for (int r0 = 0; r0 < m; r0 += D) {
        for (int i = 0; i < D * D; i++) work[i] = rng_normal(rng);
        // modified Gram-Schmidt on the rows: an orthonormal basis, uniformly distributed (Haar)
        for (int i = 0; i < D; i++) {
            double *gi = work + (size_t)i * D;
            for (int j = 0; j < i; j++) {
                const double *gj = work + (size_t)j * D;
                double d = 0;
                for (int e = 0; e < D; e++) d += gi[e] * gj[e];
                for (int e = 0; e < D; e++) gi[e] -= d * gj[e];
            }
            double nn = 0;
            for (int e = 0; e < D; e++) nn += gi[e] * gi[e];
            CHECK(nn > 1e-20);  // a Gaussian matrix is singular with probability 0
            double inv = 1.0 / sqrt(nn);
            for (int e = 0; e < D; e++) gi[e] *= inv;
        }
        int n = m - r0 < D ? m - r0 : D;
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int e = 0; e < D; e++) {
                double g = rng_normal(rng);
                s += g * g;
            }
            s = sqrt(s);
            for (int e = 0; e < D; e++) omega[(size_t)(r0 + i) * D + e] = (float)(work[(size_t)i * D + e] * s);
        }
    }
}

// The (D,D) draw buffer, allocated at the first draw (weight init, or the first redraw between
// steps), not by configure: a checkpoint's config is configured before its tensors' shapes are
// checked (ckpt_load), and D² doubles is not bounded by anything until then.
static double *omega_work(performer_t *s) {
    if (!s->work) s->work = xcalloc((size_t)s->D * s->D, sizeof(double));
    return s->work;
}

static void omega_init(param_t *p, rng_t *rng, void *owner) {
    performer_t *s = owner;
    favor_draw_omega(p->data, s->m, s->D, rng, omega_work(s));
}

void performer_set_chunk(block_t *b, int rows) {
    CHECK(strcmp(b->ops->kind, "performer") == 0 && rows >= 1);
    ((performer_t *)b->priv)->rows = rows;
}

// ---------------------------------------------------------------------------------------------
// configuration

static int performer_configure(block_t *b, spec_block_t *spec, char *err, size_t errlen) {
    const char *where = block_where(b);
    long m, redraw;
    int kernel;
    if (spec_get_int(spec, "features", 128, 1, 1L << 16, &m, where, err, errlen)) return -1;
    if (spec_get_enum(spec, "kernel", "softmax|relu", KERNEL_SOFTMAX, &kernel, where, err, errlen)) return -1;
    if (spec_get_int(spec, "redraw", 0, 0, 1L << 40, &redraw, where, err, errlen)) return -1;
    performer_t *s = xcalloc(1, sizeof *s);
    s->m = (int)m;
    s->kernel = kernel;
    s->redraw = redraw;
    s->rows = 32;
    s->D = b->dims->dim / b->dims->heads;
    b->priv = s;  // freed by performer_free, also on error
    return attn_proj_rope_init(&s->proj, b, err, errlen);
}

static void performer_free(block_t *b) {
    performer_t *s = b->priv;
    if (s) {
        free(s->work);
        attn_proj_rope_free(&s->proj);
    }
}

static void performer_describe(const block_t *b, char *buf, size_t n) {
    const performer_t *s = b->priv;
    snprintf(buf, n, "performer(features=%d,kernel=%s,redraw=%ld)", s->m, s->kernel == KERNEL_RELU ? "relu" : "softmax",
             s->redraw);
}

static void performer_register(block_t *b, param_table_t *pt, const char *prefix) {
    performer_t *s = b->priv;
    attn_proj_register(&s->proj, b->dims, pt, prefix);
    s->omega = params_add(pt, prefix, "omega", (param_spec_t){.shape = {s->m, s->D}, .init = INIT_CUSTOM,
                                                              .init_fn = omega_init, .init_owner = s, .buffer = 1});
}

// Redraw Ω before steps redraw+1, 2·redraw+1, … (step = the 1-based step about to run): each Ω
// trains for `redraw` steps, and the Ω a run ends with is one it trained with (redrawing after the
// last step would hand evaluation features the weights never saw). Eval never calls this.
static void performer_before_step(block_t *b, long step, rng_t *rng) {
    performer_t *s = b->priv;
    if (s->redraw > 0 && step > 1 && (step - 1) % s->redraw == 0) favor_draw_omega(s->omega->data, s->m, s->D, rng, omega_work(s));
}

// ---------------------------------------------------------------------------------------------
// activation and scratch layout
//
// Compute blocks of R rows (the chunked algorithm): block u holds rows [u·R, min((u+1)·R, T)). A segment
// with memory lies inside one window block (performer_check_segment), so every row reads one window.

static int n_cblocks(const performer_t *s, int T) { return (T + s->rows - 1) / s->rows; }
static int cblock_len(const performer_t *s, int T, int u) { return T - u * s->rows < s->rows ? T - u * s->rows : s->rows; }

// per (batch, head): qf (T,m) | kf (T,m) | c (T) | den (T) | vp (T,D+1) | P (n_cblocks, m, D+1)
//   [| cq (T) | cp (n_cblocks): with segment memory, each query's and each block prefix's reference]
static size_t head_act(const performer_t *s, int T, int mem_on) {
    size_t D1 = (size_t)s->D + 1, nb = (size_t)n_cblocks(s, T);
    return 2 * (size_t)T * s->m + 2 * (size_t)T + (size_t)T * D1 + nb * s->m * D1 + (mem_on ? T + nb : 0);
}
// per (batch, head) scratch: A (R,R) | dA (R,R) | dqf (R,m) | dkf (R,m) | G, Ge, dV, t1 (R,D+1) | dS (m,D+1)
//   [| W0 (m,D+1): with segment memory, the window's finished blocks combined (forward)]
// The forward keeps the running prefix ("chain") in dS's place.
static size_t head_scratch(const performer_t *s, int mem_on) {
    size_t R = (size_t)s->rows, D1 = (size_t)s->D + 1;
    return 2 * R * R + 2 * R * s->m + 4 * R * D1 + (size_t)s->m * D1 + (mem_on ? (size_t)s->m * D1 : 0);
}

static int mem_on(const block_t *b) { return b->dims->memory > 0; }

static size_t performer_act_floats(const block_t *b, int B, int T) {
    size_t BTC = (size_t)B * T * b->dims->dim;
    return 4 * BTC + (size_t)B * b->dims->heads * head_act(b->priv, T, mem_on(b));
}
static size_t performer_scratch_floats(const block_t *b, int B, int T) {
    size_t BTC = (size_t)B * T * b->dims->dim;
    return 4 * BTC + (size_t)B * b->dims->heads * head_scratch(b->priv, mem_on(b));
}

// c: each key's reference, the running max of its window block so far (the chain's). cq: each
// query's, max(c_i, c_W) with c_W the reference of the finished window blocks it reads (= c without
// memory). cp: the reference of each compute block's prefix P' (−∞: none; NULL without memory:
// c_{s0−1}, none for block 0).
typedef struct {
    float *qf, *kf, *c, *den, *vp, *S;
    float *cq, *cp;
} head_views_t;

static head_views_t head_views(const performer_t *s, float *base, int T, int mem_on) {
    size_t D1 = (size_t)s->D + 1;
    head_views_t v;
    v.qf = base;
    v.kf = v.qf + (size_t)T * s->m;
    v.c = v.kf + (size_t)T * s->m;
    v.den = v.c + T;
    v.vp = v.den + T;
    v.S = v.vp + (size_t)T * D1;
    v.cq = mem_on ? v.S + (size_t)n_cblocks(s, T) * s->m * D1 : v.c;
    v.cp = mem_on ? v.cq + T : NULL;
    return v;
}

// ---------------------------------------------------------------------------------------------
// features

// qf (n,m) = φ(q̂) for n rows of Q (row stride ld). Softmax kernel: m^(-1/2)·exp(a − max_r a), a = ω·q̂.
static void query_features(const performer_t *s, float *qf, const float *Q, int ld, int n) {
    int m = s->m, D = s->D;
    float alpha = powf((float)D, -0.25f), sm = 1.0f / sqrtf((float)m);
    par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m, D, alpha, Q, ld, s->omega->data, D, 0.0f, qf, m);
    for (int i = 0; i < n; i++) {
        float *a = qf + (size_t)i * m;
        if (s->kernel == KERNEL_RELU) {
            for (int r = 0; r < m; r++) a[r] = (a[r] > 0.0f ? a[r] : 0.0f) + RELU_EPS;
            continue;
        }
        float mx = a[0];
        for (int r = 1; r < m; r++) mx = a[r] > mx ? a[r] : mx;
        for (int r = 0; r < m; r++) a[r] = sm * expf(a[r] - mx);
    }
}

// kf (n,m) = φ(k̂) for n consecutive keys, continuing the running max in *cmax (−∞ at position 0);
// c[j] receives the reference of key j (its prefix max; 0 for the relu kernel).
static void key_features(const performer_t *s, float *kf, float *c, const float *K, int ld, int n, float *cmax) {
    int m = s->m, D = s->D;
    float alpha = powf((float)D, -0.25f), sm = 1.0f / sqrtf((float)m);
    par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m, D, alpha, K, ld, s->omega->data, D, 0.0f, kf, m);
    for (int j = 0; j < n; j++) {
        float *a = kf + (size_t)j * m;
        if (s->kernel == KERNEL_RELU) {
            for (int r = 0; r < m; r++) a[r] = (a[r] > 0.0f ? a[r] : 0.0f) + RELU_EPS;
            c[j] = 0.0f;
            continue;
        }
        const float *k = K + (size_t)j * ld;
        float nn = 0;
        for (int e = 0; e < D; e++) nn += k[e] * k[e];
        nn *= 0.5f * alpha * alpha;  // |k̂|²/2
        float mx = *cmax;
        for (int r = 0; r < m; r++) {
            a[r] -= nn;
            mx = a[r] > mx ? a[r] : mx;
        }
        for (int r = 0; r < m; r++) a[r] = sm * expf(a[r] - mx);
        c[j] = *cmax = mx;
    }
}

// A (n,n) = (qf kfᵀ) ⊙ ρ on the lower triangle (ρ_ij = exp(c_j − cq_i)), 0 above it.
static void block_scores(float *A, const float *qf, const float *kf, const float *cq, const float *c, int n, int m) {
    par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, m, 1.0f, qf, m, kf, m, 0.0f, A, n);
    for (int i = 0; i < n; i++) {
        float *a = A + (size_t)i * n;
        for (int j = 0; j <= i; j++) a[j] *= expf(c[j] - cq[i]);
        for (int j = i + 1; j < n; j++) a[j] = 0.0f;
    }
}

// ---------------------------------------------------------------------------------------------
// forward

// What segment memory hands one (batch row, head) — see "segment memory" below. Without memory the
// forward gets NULL: it starts empty and every row sees its whole prefix in the segment.
typedef struct {
    const float *P0;    // the current window block's state S' before row 0 (m, D+1), or NULL (none)
    float cP0;          // its reference
    const float *W;     // the window's finished blocks, combined; NULL: none
    float cW;           // their reference
    float *partial;     // advance: receives the chain's end (the current window block so far), S' then c
} head_mem_t;

// One (batch, head). Q, K, V: row stride ld; O: row stride ldo. hv: this head's saved views. sc: this
// head's scratch (head_scratch). hm: segment memory, or NULL.
//
// The chain is the running state of the current window block since its start (the carried P0, then
// the segment's keys), at the reference of its last key. Compute block u's rows read
//   P'_u = exp(c_chain − cp_u)·chain_u + exp(c_W − cp_u)·W,   cp_u = max(c_chain, c_W)
// (W: the window's finished blocks, a constant), and query i moves it to its own reference
// cq_i = max(c_i, c_W) ≥ cp_u. The keys' references c never see c_W, so a stored block
// depends on its own keys only.
static void head_forward(const performer_t *s, head_views_t hv, const float *Q, const float *K, const float *V,
                         int ld, float *O, int ldo, float *sc, int T, const head_mem_t *hm) {
    int m = s->m, D = s->D, D1 = D + 1, R = s->rows;
    size_t SD = (size_t)m * D1;
    float *A = sc, *N = A + (size_t)R * R, *chain = sc + 2 * (size_t)R * R + 2 * (size_t)R * m + 4 * (size_t)R * D1;
    query_features(s, hv.qf, Q, ld, T);
    float cchain = -INFINITY;  // the chain's reference before row 0 (−∞: empty)
    if (hm && hm->P0) {
        memcpy(chain, hm->P0, SD * sizeof(float));
        cchain = hm->cP0;
    } else {
        memset(chain, 0, SD * sizeof(float));
    }
    float cmax = cchain;
    key_features(s, hv.kf, hv.c, K, ld, T, &cmax);
    if (hv.cq != hv.c)  // a memory model (also when this forward runs without its memory)
        for (int i = 0; i < T; i++) {
            hv.cq[i] = hm && hm->W ? fmaxf(hv.c[i], hm->cW) : hv.c[i];
        }
    for (int j = 0; j < T; j++) {
        memcpy(hv.vp + (size_t)j * D1, V + (size_t)j * ld, (size_t)D * sizeof(float));
        hv.vp[(size_t)j * D1 + D] = 1.0f;
    }
    int nb = n_cblocks(s, T);
    for (int u = 0; u < nb; u++) {
        int s0 = u * R, n = cblock_len(s, T, u);
        float *Pu = hv.S + (size_t)u * SD;
        const float *qf = hv.qf + (size_t)s0 * m, *kf = hv.kf + (size_t)s0 * m, *c = hv.c + s0, *cq = hv.cq + s0,
                    *vp = hv.vp + (size_t)s0 * D1;
        const float *W = hm ? hm->W : NULL;
        float cW = hm ? hm->cW : -INFINITY;
        float cc = u > 0 ? c[-1] : cchain;     // the chain's reference
        float cp = W ? fmaxf(cc, cW) : cc;     // P'_u's
        int prefix = cp > -INFINITY;           // a state to read: earlier blocks, or what memory carries
        if (hv.cp) hv.cp[u] = cp;
        if (!prefix) {
            memset(Pu, 0, SD * sizeof(float));
            memset(N, 0, (size_t)n * D1 * sizeof(float));
        } else {
            if (!W) {
                memcpy(Pu, chain, SD * sizeof(float));
            } else {
                float a = expf(cc - cp), w = expf(cW - cp);
                for (size_t i = 0; i < SD; i++) Pu[i] = a * chain[i] + w * W[i];
            }
            // N_i = exp(cp_u − cq_i) · φq_i P'_u   (the earlier blocks, moved to reference cq_i)
            par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D1, m, 1.0f, qf, m, Pu, D1, 0.0f, N, D1);
            for (int i = 0; i < n; i++) {
                float e = expf(cp - cq[i]);
                for (int d = 0; d < D1; d++) N[(size_t)i * D1 + d] *= e;
            }
        }
        block_scores(A, qf, kf, cq, c, n, m);
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D1, n, 1.0f, A, n, vp, D1, 1.0f, N, D1);
        for (int i = 0; i < n; i++) {
            const float *num = N + (size_t)i * D1;
            float den = num[D], inv = 1.0f / fmaxf(den, DEN_TINY);
            hv.den[s0 + i] = den;
            float *o = O + (size_t)(s0 + i) * ldo;
            for (int d = 0; d < D; d++) o[d] = num[d] * inv;
        }
        if (u + 1 < nb || hm) {
            // the chain past this block: S'_{u+1} = λ S'_u + Σ_j φk_j ρ_{j,last} v'_jᵀ,  λ = exp(c_chain − c_last)
            float clast = c[n - 1];
            for (int j = 0; j < n; j++) {
                float r = expf(c[j] - clast);
                for (int d = 0; d < D1; d++) N[(size_t)j * D1 + d] = r * vp[(size_t)j * D1 + d];
            }
            float lambda = cc > -INFINITY ? expf(cc - clast) : 0.0f;
            par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, D1, n, 1.0f, kf, m, N, D1, lambda, chain, D1);
        }
    }
    if (hm && hm->partial) {  // the chain's end: the current window block so far
        memcpy(hm->partial, chain, SD * sizeof(float));
        hm->partial[SD] = hv.c[T - 1];
    }
}

// ---------------------------------------------------------------------------------------------
// segment memory (--memory M, LONG_CONTEXT.md §2, docs/blocks/performer.md "Segment memory"):
// a BOUNDED window with BLOCK-LOCAL rotations. Stream positions are cut into window blocks of L = ctx
// positions (block j holds [jL, (j+1)L), counted since the memory was last empty); with K = M / L
// (check_memory: M a multiple of ctx), a query at position p in block b sees the keys of blocks
// b−K … b up to p — the M positions before its block and its block so far, what softmax's memory
// shows it when segments are ctx-aligned.
//
// Rope angles are measured from an origin that moves in steps of K blocks: the query's block b lies in
// group g(b) = ⌊b/K⌋, and its window's origin is o(b) = max(0, g(b) − 1)·K·L — at or before block b−K,
// the window's first. The key at position p of block j is rotated at p − o(b) when block b reads it.
// Every angle any query and key see then lies in [0, 2K·L) however long the stream is, where stream
// positions would grow without bound. That matters because a fixed Ω is not rotation invariant:
// φ(R_i q̂)·φ(R_j k̂) estimates exp(q̂·R_{j−i} k̂) with errors that depend on i and j themselves, so a
// model trained at stream positions meets new errors in every block (docs/results.md, "Performer with
// a carried state").
//
// Offsets in units of L: a block's own rows (and its chain) sit at own(j) = j − max(0, g(j) − 1)·K; a
// reader in the same group reads block j there too, a reader in the next group (b ≤ j + K reaches no
// further) reads it at next(j) = j mod K. So each block's keys are summed twice — accumulator 0 at
// own(j) (the chain the forward runs), accumulator 1 at next(j) (the same sum while g(j) = 0, where
// both origins are 0) — whatever K is. State per (row, head): a ring of K finished blocks × 2 versions
// (block j in slot j mod K: [own, next]), then the 2 accumulators of the current block, each S' (m, D+1)
// then its own reference c (EMPTY_REF: empty); then, once, the Ω they were computed with (a redraw
// since then makes every carried state meaningless). Constant in stream length. Finished blocks
// combine by rescaling: W = Σ_d exp(c_d − c_W) S'_d, c_W = max_d c_d — never a subtraction. A segment
// must not cross a block boundary (check_segment: ctx-aligned training and evaluation segments, or
// segments of a length dividing ctx).

static int window_blocks(const block_t *b) { return b->dims->memory / b->dims->ctx; }  // K

static size_t state_floats(const performer_t *s) { return (size_t)s->m * (s->D + 1) + 1; }  // S' then c
static size_t head_state(const block_t *b) { return (2 * (size_t)window_blocks(b) + 2) * state_floats(b->priv); }
static long own_offset(long j, int K) { return j - (j / K > 1 ? j / K - 1 : 0) * K; }  // own(j), in blocks
// block j's sum as the reader d blocks later (1 ≤ d ≤ K) reads it: its own version within the group,
// the next one across it (ring slot j mod K holds [own, next])
static float *ring_version(float *st, long j, int d, int K, size_t SS) {
    return st + ((size_t)(j % K) * 2 + ((j + d) / K != j / K)) * SS;
}
static float *accumulator(float *st, int a, int K, size_t SS) { return st + (2 * (size_t)K + (size_t)a) * SS; }  // 0 own, 1 next

// The rope position of a segment's row 0: its block's own offset plus its place in the block (0 without memory).
static long segment_rope_pos(const block_t *b, const seg_mem_t *mem) {
    if (!mem) return 0;
    int L = b->dims->ctx;
    return own_offset(mem->pos0 / L, window_blocks(b)) * L + mem->pos0 % L;
}

static size_t performer_mem_floats(const block_t *b, int B) {
    const performer_t *s = b->priv;
    return (size_t)B * b->dims->heads * head_state(b) + (size_t)s->m * s->D;
}

static int performer_check_memory(block_t *b, int M, char *err, size_t errlen) {
    if (M % b->dims->ctx)
        return seterr(err, errlen,
                      "%s: --memory %d is not a multiple of ctx %d (the performer carries M/ctx whole blocks of ctx "
                      "positions)",
                      block_where(b), M, b->dims->ctx);
    return 0;
}

// Segments of T rows from stream position 0 never cross a window block: T divides L.
static int performer_check_segment(block_t *b, int T, char *err, size_t errlen) {
    if (b->dims->memory > 0 && b->dims->ctx % T)
        return seterr(err, errlen,
                      "%s: memory segments of %d tokens would cross its window blocks of %d positions (each block "
                      "rotates from its own origin); use a length dividing %d",
                      block_where(b), T, b->dims->ctx, b->dims->ctx);
    return 0;
}

// dst = the versions the queries of block b0 read (block b0−d's version d, d = 1 … K, blocks ≥ 0,
// non-empty) of one head's state, combined at the largest reference (returned in *cref). NULL if none.
static const float *window_combine(const block_t *b, float *dst, float *st, long b0, float *cref) {
    const performer_t *s = b->priv;
    int K = window_blocks(b);
    size_t SS = state_floats(s), SD = SS - 1;
    float cw = EMPTY_REF;
    for (int d = 1; d <= K && b0 - d >= 0; d++) cw = fmaxf(cw, ring_version(st, b0 - d, d, K, SS)[SD]);
    if (cw == EMPTY_REF) return NULL;
    int first = 1;
    for (int d = 1; d <= K && b0 - d >= 0; d++) {
        const float *slot = ring_version(st, b0 - d, d, K, SS);
        if (!slot_full(slot, SD)) continue;
        float r = expf(slot[SD] - cw);
        for (size_t i = 0; i < SD; i++) dst[i] = first ? r * slot[i] : dst[i] + r * slot[i];
        first = 0;
    }
    *cref = cw;
    return dst;
}

// Block b0 ended: its two versions join the ring (slot b0 mod K, where block b0−K no longer has a
// reader; in group 0 both are the own sum), and the accumulators empty for the next block.
static void window_finish_block(const block_t *b, float *st, long b0) {
    const performer_t *s = b->priv;
    int K = window_blocks(b);
    size_t SS = state_floats(s), SD = SS - 1;
    float *slot = st + (size_t)(b0 % K) * 2 * SS;
    memcpy(slot, accumulator(st, 0, K, SS), SS * sizeof(float));
    memcpy(slot + SS, accumulator(st, own_offset(b0, K) == b0 % K ? 0 : 1, K, SS), SS * sizeof(float));
    accumulator(st, 0, K, SS)[SD] = accumulator(st, 1, K, SS)[SD] = EMPTY_REF;
}

// acc (S' then c) += the n keys kf (n, m) with references c (their running max from acc's), values vp
// (n, D+1): acc ← λ·acc + Σ_j exp(c_j − c_last) φk_j v'_jᵀ, λ = exp(c_acc − c_last); w: (n, D+1) scratch.
static void accumulate_keys(const performer_t *s, float *acc, const float *kf, const float *c, const float *vp, int n, float *w) {
    int m = s->m, D1 = s->D + 1;
    size_t SD = (size_t)m * D1;
    float clast = c[n - 1], lambda = slot_full(acc, SD) ? expf(acc[SD] - clast) : 0.0f;
    if (!slot_full(acc, SD)) memset(acc, 0, SD * sizeof(float));
    for (int j = 0; j < n; j++) {
        float r = expf(c[j] - clast);
        for (int d = 0; d < D1; d++) w[(size_t)j * D1 + d] = r * vp[(size_t)j * D1 + d];
    }
    par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, D1, n, 1.0f, kf, m, w, D1, lambda, acc, D1);
    acc[SD] = clast;
}

// The carried state is usable: the stream has one (pos0 > 0) and it was computed with today's Ω.
static int carry_usable(const block_t *b, const seg_mem_t *mem, const float *state, int B) {
    const performer_t *s = b->priv;
    if (!mem || mem->pos0 <= 0) return 0;
    const float *omega_then = state + (size_t)B * b->dims->heads * head_state(b);
    return memcmp(omega_then, s->omega->data, (size_t)s->m * s->D * sizeof(float)) == 0;
}

// One (row, head)'s memory view for a segment of T rows inside one window block (see head_mem_t): the
// chain starts from the own accumulator, the rows read W (the window's finished blocks), and with
// advance the chain's end goes back to the own accumulator. With advance and an unusable carry, first
// marks every stored block empty.
static head_mem_t head_mem(const block_t *b, const seg_mem_t *mem, float *st, int carry, int T, float *W0) {
    const performer_t *s = b->priv;
    int K = window_blocks(b), L = b->dims->ctx, off = (int)(mem->pos0 % L);
    long b0 = mem->pos0 / L;
    size_t SS = state_floats(s), SD = SS - 1;
    float *own = accumulator(st, 0, K, SS);
    head_mem_t hm = {0};
    if (carry) {
        if (off > 0 && slot_full(own, SD)) {
            hm.P0 = own;
            hm.cP0 = own[SD];
        }
        hm.W = window_combine(b, W0, st, b0, &hm.cW);
    } else if (mem->advance) {
        for (int k = 0; k < 2 * K + 2; k++) st[(size_t)k * SS + SD] = EMPTY_REF;
    }
    if (mem->advance) hm.partial = own;
    return hm;
}

// advance: the segment's keys also join accumulator 1, rotated at next(b0)·L + their place in the block
// (from k_raw (B,T,C), unrotated, into k_rot) — unless that is the own offset (group 0); then, if the
// segment ends its block, the block joins the ring.
static void advance_versions(block_t *b, const seg_mem_t *mem, float *state, const float *qkv, const float *k_raw,
                             float *k_rot, float *scratch, int B, int T) {
    performer_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, D = s->D, D1 = D + 1, K = window_blocks(b), L = b->dims->ctx, R = s->rows;
    long b0 = mem->pos0 / L, off = mem->pos0 % L, next = b0 % K;
    size_t BTC = (size_t)B * T * C, HSt = head_state(b), SS = state_floats(s), HS = head_scratch(s, 1);
    if (next != own_offset(b0, K)) {
        long v = next;
        memcpy(k_rot, k_raw, BTC * sizeof(float));
        attn_proj_rope_heads_at(&s->proj, k_rot, B, T, C, H, v * L + off, ROPE_ROTATE);
#pragma omp parallel for collapse(2) schedule(static)
        for (int bb = 0; bb < B; bb++)
            for (int h = 0; h < H; h++) {
                size_t bh = (size_t)bb * H + h;
                float *acc = accumulator(state + bh * HSt, 1, K, SS), *sc = scratch + 4 * BTC + bh * HS;
                // per R rows: kf in dqf's place (R, m), c in dkf's (R), v' in G's (R, D+1), weighted v' in Ge's
                float *kf = sc + 2 * (size_t)R * R, *c = kf + (size_t)R * s->m, *vp = c + (size_t)R * s->m, *w = vp + (size_t)R * D1;
                if (off == 0) acc[SS - 1] = EMPTY_REF;
                for (int r0 = 0; r0 < T; r0 += R) {
                    int n = T - r0 < R ? T - r0 : R;
                    float cmax = slot_full(acc, SS - 1) ? acc[SS - 1] : -INFINITY;
                    key_features(s, kf, c, k_rot + ((size_t)bb * T + r0) * C + h * D, C, n, &cmax);
                    for (int j = 0; j < n; j++) {
                        memcpy(vp + (size_t)j * D1, qkv + ((size_t)bb * T + r0 + j) * 3 * C + 2 * C + h * D, (size_t)D * sizeof(float));
                        vp[(size_t)j * D1 + D] = 1.0f;
                    }
                    accumulate_keys(s, acc, kf, c, vp, n, w);
                }
            }
    }
    if (off + T == L)
        for (int r = 0; r < B * H; r++) window_finish_block(b, state + (size_t)r * HSt, b0);
}

static void performer_forward(block_t *b, float *y, const float *x, float *act, float *scratch, int B, int T,
                              const run_ctx_t *rc) {
    performer_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, D = C / H, N = B * T, mon = mem_on(b);
    size_t BTC = (size_t)N * C, HA = head_act(s, T, mon), HS = head_scratch(s, mon);
    size_t W0 = head_scratch(s, 0);
    float *qkv = act, *heads = act + 3 * BTC, *hbase = act + 4 * BTC;
    // segment memory: read the carried window (if usable), and with advance leave the next one
    const seg_mem_t *mem = rc ? rc->mem : NULL;
    float *state = block_mem_state(b, rc);
    CHECK(!mem || (mon && state && mem->B == B && T <= b->dims->ctx && mem->pos0 % b->dims->ctx + T <= b->dims->ctx));
    int carry = mem && carry_usable(b, mem, state, B), advance = mem && mem->advance;
    size_t HSt = mem ? head_state(b) : 0;
    attn_proj_in_forward(&s->proj, qkv, x, N, C);
    // advance: the keys unrotated (scratch[0, BTC): free in the forward), for the block's other offsets
    float *k_raw = scratch, *k_rot = scratch + BTC;
    if (advance)
        for (size_t r = 0; r < (size_t)N; r++) memcpy(k_raw + r * C, qkv + r * 3 * C + C, (size_t)C * sizeof(float));
    attn_proj_rope_qkv_at(&s->proj, qkv, B, T, C, H, segment_rope_pos(b, mem), ROPE_ROTATE);  // --pos rope: before φ
#pragma omp parallel for collapse(2) schedule(static)
    for (int bb = 0; bb < B; bb++)
        for (int h = 0; h < H; h++) {
            size_t bh = (size_t)bb * H + h;
            const float *base = qkv + (size_t)bb * T * 3 * C;
            float *sc = scratch + 4 * BTC + bh * HS;
            head_mem_t hm;
            if (mem) hm = head_mem(b, mem, state + bh * HSt, carry, T, sc + W0);
            head_forward(s, head_views(s, hbase + bh * HA, T, mon), base + h * D, base + C + h * D,
                         base + 2 * C + h * D, 3 * C, heads + (size_t)bb * T * C + h * D, C, sc, T, mem ? &hm : NULL);
        }
    if (advance) {
        advance_versions(b, mem, state, qkv, k_raw, k_rot, scratch, B, T);
        memcpy(state + (size_t)B * H * HSt, s->omega->data, (size_t)s->m * s->D * sizeof(float));
    }
    attn_proj_out_forward(&s->proj, y, heads, N, C);
}

// ---------------------------------------------------------------------------------------------
// backward
//
// Per block, with G'_i = [dy_i/den_i, −(dy_i·y_i)/den_i] (the gradient of [numerator, denominator]):
//   N = diag(e)·φQ·P'_u + A·V'            A = (φQ φKᵀ) ⊙ ρ (lower triangle), e_i = exp(cp_u − cq_i)
//   dA = G'V'ᵀ,  dV' = AᵀG',  dφQ = (dA⊙ρ)·φK + diag(e)·G'·P'_uᵀ,  dφK = (dA⊙ρ)ᵀ·φQ
//   P'_u = a_u S'_u + (constant W),  a_u = exp(c_{s0−1} − cp_u)  (1 without memory)
//   dS'_u (to the earlier blocks) = λ_u·dS'_{u+1} + a_u·φQᵀ·diag(e)·G'
//   S'_{u+1} = λ_u S'_u + φKᵀ diag(ρ_last) V'  ⇒  dφK += diag(ρ_last) V' dS'_{u+1}ᵀ,  dV' += diag(ρ_last) φK dS'_{u+1}
// then features to inputs (c constant): softmax kernel, dq̂ = Ωᵀ(dφq⊙φq), dk̂ = Ωᵀ(dφk⊙φk) − k̂·Σ_r(dφk⊙φk);
// relu kernel, dx̂ = Ωᵀ(dφ⊙[ω·x̂ > 0]); and dq = D^(-1/4) dq̂.
static void head_backward(const performer_t *s, head_views_t hv, const float *Q, const float *K, int ld,
                          const float *O, const float *dO, int ldo, float *dQ, float *dK, float *dV, float *sc, int T) {
    int m = s->m, D = s->D, D1 = D + 1, R = s->rows;
    float alpha = powf((float)D, -0.25f);
    const float *om = s->omega->data;
    float *A = sc, *dA = A + (size_t)R * R, *dqf = dA + (size_t)R * R, *dkf = dqf + (size_t)R * m;
    float *G = dkf + (size_t)R * m, *Ge = G + (size_t)R * D1, *dVp = Ge + (size_t)R * D1, *t1 = dVp + (size_t)R * D1;
    float *dS = t1 + (size_t)R * D1;
    int nb = n_cblocks(s, T);
    // segment memory: block 0's P' is what memory carried, and every block's P' holds the finished
    // window blocks W besides the chain; both are constants here (truncated backprop: no dS' flows
    // into them), so dS' flows along the chain as without memory
    for (int u = nb - 1; u >= 0; u--) {
        int s0 = u * R, n = cblock_len(s, T, u);
        const float *Su = hv.S + (size_t)u * m * D1;
        const float *qf = hv.qf + (size_t)s0 * m, *kf = hv.kf + (size_t)s0 * m, *c = hv.c + s0, *cq = hv.cq + s0,
                    *vp = hv.vp + (size_t)s0 * D1;
        float cp = hv.cp ? hv.cp[u] : u > 0 ? c[-1] : -INFINITY;  // the reference of P'_u (−∞: none)
        for (int i = 0; i < n; i++) {
            const float *o = O + (size_t)(s0 + i) * ldo, *dy = dO + (size_t)(s0 + i) * ldo;
            float den = hv.den[s0 + i], inv = 1.0f / fmaxf(den, DEN_TINY), dot = 0;
            float *g = G + (size_t)i * D1;
            for (int d = 0; d < D; d++) {
                g[d] = dy[d] * inv;
                dot += dy[d] * o[d];
            }
            g[D] = den > DEN_TINY ? -dot * inv : 0.0f;
        }
        block_scores(A, qf, kf, cq, c, n, m);
        // dA = G'V'ᵀ, then ⊙ρ on the lower triangle
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, D1, 1.0f, G, D1, vp, D1, 0.0f, dA, n);
        for (int i = 0; i < n; i++) {
            float *a = dA + (size_t)i * n;
            for (int j = 0; j <= i; j++) a[j] *= expf(c[j] - cq[i]);
            for (int j = i + 1; j < n; j++) a[j] = 0.0f;
        }
        par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, D1, n, 1.0f, A, n, G, D1, 0.0f, dVp, D1);
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, m, n, 1.0f, dA, n, kf, m, 0.0f, dqf, m);
        par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, m, n, 1.0f, dA, n, qf, m, 0.0f, dkf, m);
        if (cp > -INFINITY) {
            for (int i = 0; i < n; i++) {
                float e = expf(cp - cq[i]);
                for (int d = 0; d < D1; d++) Ge[(size_t)i * D1 + d] = e * G[(size_t)i * D1 + d];
            }
            par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m, D1, 1.0f, Ge, D1, Su, D1, 1.0f, dqf, m);
        }
        if (u + 1 < nb) {  // dS holds dS'_{u+1}, the gradient from the later blocks
            float clast = c[n - 1];
            for (int j = 0; j < n; j++) {
                float r = expf(c[j] - clast);
                for (int d = 0; d < D1; d++) t1[(size_t)j * D1 + d] = r * vp[(size_t)j * D1 + d];
            }
            par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m, D1, 1.0f, t1, D1, dS, D1, 1.0f, dkf, m);
            par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D1, m, 1.0f, kf, m, dS, D1, 0.0f, t1, D1);
            for (int j = 0; j < n; j++) {
                float r = expf(c[j] - clast);
                for (int d = 0; d < D1; d++) dVp[(size_t)j * D1 + d] += r * t1[(size_t)j * D1 + d];
            }
        }
        if (u > 0) {
            float lambda = expf(c[-1] - c[n - 1]), a = expf(c[-1] - cp);
            if (u + 1 == nb) memset(dS, 0, (size_t)m * D1 * sizeof(float));
            par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, D1, n, a, qf, m, Ge, D1, lambda, dS, D1);
        }
        // features → inputs
        for (int i = 0; i < n; i++) {
            float *dq = dqf + (size_t)i * m, *dk = dkf + (size_t)i * m;
            const float *q = qf + (size_t)i * m, *k = kf + (size_t)i * m;
            if (s->kernel == KERNEL_RELU) {
                for (int r = 0; r < m; r++) {
                    dq[r] = q[r] > RELU_EPS ? dq[r] : 0.0f;
                    dk[r] = k[r] > RELU_EPS ? dk[r] : 0.0f;
                }
            } else {
                float sum = 0;
                for (int r = 0; r < m; r++) {
                    dq[r] *= q[r];
                    dk[r] *= k[r];
                    sum += dk[r];
                }
                // the −|k̂|²/2 term: dk̂ −= k̂·Σ_r db_r, i.e. dk −= α²·k·Σ_r db_r
                const float *kin = K + (size_t)(s0 + i) * ld;
                float *dkout = dK + (size_t)(s0 + i) * ld;
                for (int e = 0; e < D; e++) dkout[e] -= alpha * alpha * sum * kin[e];
            }
            const float *dv = dVp + (size_t)i * D1;
            float *dvout = dV + (size_t)(s0 + i) * ld;
            for (int e = 0; e < D; e++) dvout[e] += dv[e];
        }
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D, m, alpha, dqf, m, om, D, 1.0f,
                    dQ + (size_t)s0 * ld, ld);
        par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D, m, alpha, dkf, m, om, D, 1.0f,
                    dK + (size_t)s0 * ld, ld);
    }
    (void)Q;
}

static void performer_backward(block_t *b, float *dx, const float *dy, const float *x, const float *act,
                               float *scratch, int B, int T, const run_ctx_t *rc) {
    performer_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, D = C / H, N = B * T, mon = mem_on(b);
    size_t BTC = (size_t)N * C, HA = head_act(s, T, mon), HS = head_scratch(s, mon);
    const float *qkv = act, *heads = act + 3 * BTC;
    float *hbase = (float *)act + 4 * BTC;
    float *dheads = scratch, *dqkv = scratch + BTC;
    memset(dheads, 0, 4 * BTC * sizeof(float));
    attn_proj_out_backward(&s->proj, dheads, dy, heads, N, C);
#pragma omp parallel for collapse(2) schedule(static)
    for (int bb = 0; bb < B; bb++)
        for (int h = 0; h < H; h++) {
            size_t bh = (size_t)bb * H + h, row = (size_t)bb * T;
            const float *base = qkv + row * 3 * C;
            float *dbase = dqkv + row * 3 * C;
            head_backward(s, head_views(s, hbase + bh * HA, T, mon), base + h * D, base + C + h * D, 3 * C,
                          heads + row * C + h * D, dheads + row * C + h * D, C, dbase + h * D, dbase + C + h * D,
                          dbase + 2 * C + h * D, scratch + 4 * BTC + bh * HS, T);
        }
    // --pos rope: dq, dk ← R_tᵀ dq, R_tᵀ dk at the forward's positions
    attn_proj_rope_qkv_at(&s->proj, dqkv, B, T, C, H, segment_rope_pos(b, rc ? rc->mem : NULL), ROPE_TRANSPOSE);
    attn_proj_in_backward(&s->proj, dx, dqkv, x, N, C);
}


// ---------------------------------------------------------------------------------------------
// decode: constant state per head. Without memory S' (m, D+1) and the running max c — the whole
// prefix, any number of positions (streaming). With memory the window of "segment memory" above: the
// ring of K finished blocks × 2 versions, the 2 accumulators of the current block and the finished
// blocks of the window combined (W, recomputed once per block) — (2K + 3)·(m·(D+1) + 1) floats per head.

static size_t performer_cache_floats(const block_t *b) {
    const performer_t *s = b->priv;
    size_t per_head = mem_on(b) ? head_state(b) + state_floats(s) : state_floats(s);
    return (size_t)b->dims->heads * per_head;
}
// qkv (3C) | heads (C) | qf, kf (m each) | num (D+1) | k_raw (C): the unrotated keys | k (D): one rotated
static size_t performer_decode_scratch_floats(const block_t *b) {
    const performer_t *s = b->priv;
    return 5 * (size_t)b->dims->dim + 2 * (size_t)s->m + 2 * (size_t)s->D + 1;
}

// num (D+1) += scale · φq S'
static void read_state(float *num, const float *qf, const float *S, int m, int D1, float scale) {
    for (int r = 0; r < m; r++) {
        const float *Sr = S + (size_t)r * D1;
        float a = scale * qf[r];
        for (int d = 0; d < D1; d++) num[d] += a * Sr[d];
    }
}

// acc (S' then c) += one key's features kf (reference cj, the key's own max) and value v (D).
static void accumulate_one(const performer_t *s, float *acc, const float *kf, float cj, const float *v) {
    int m = s->m, D = s->D, D1 = D + 1;
    size_t SD = (size_t)m * D1;
    float cold = acc[SD], cnew = slot_full(acc, SD) ? fmaxf(cold, cj) : cj;
    if (!slot_full(acc, SD)) {
        memset(acc, 0, SD * sizeof(float));
    } else if (cnew > cold) {
        float r = expf(cold - cnew);
        for (size_t i = 0; i < SD; i++) acc[i] *= r;
    }
    float e = expf(cj - cnew);  // the key's features at the accumulator's reference
    acc[SD] = cnew;
    for (int r = 0; r < m; r++) {
        float *Ar = acc + (size_t)r * D1, f = e * kf[r];
        for (int d = 0; d < D; d++) Ar[d] += f * v[d];
        Ar[D] += f;
    }
}

// One head's step with memory, at stream position pos in block j = pos / L: at a block boundary the
// finished block's versions join the ring and W is recombined; then the key joins accumulator 0 rotated
// at own(j)·L + pos mod L and accumulator 1 at next(j)·L + pos mod L (k_raw unrotated; q arrives rotated
// at own(j)·L + pos mod L), and the query reads W and accumulator 0 at their common reference.
static void decode_head_window(const block_t *b, float *out, const float *q, const float *k_raw, const float *v, int pos,
                               float *st, float *qf, float *kf, float *num, float *k) {
    const performer_t *s = b->priv;
    int m = s->m, D = s->D, D1 = D + 1, K = window_blocks(b), L = b->dims->ctx, C = b->dims->dim, H = b->dims->heads;
    size_t SS = state_floats(s), SD = SS - 1;
    float *W = accumulator(st, 2, K, SS);  // after the 2 accumulators
    long blk = pos / L, off = pos % L, own = own_offset(blk, K), next = blk % K;
    if (pos == 0) {
        for (int i = 0; i < 2 * K + 3; i++) st[(size_t)i * SS + SD] = EMPTY_REF;
    } else if (off == 0) {
        window_finish_block(b, st, blk - 1);
        if (!window_combine(b, W, st, blk, &W[SD])) W[SD] = EMPTY_REF;
    }
    for (int a = 0; a < (next == own ? 1 : 2); a++) {
        memcpy(k, k_raw, (size_t)D * sizeof(float));
        attn_proj_rope_vec(&s->proj, k, C, H, (int)((a ? next : own) * L + off));
        float cj = -INFINITY;
        key_features(s, kf, &cj, k, D, 1, &cj);
        accumulate_one(s, accumulator(st, a, K, SS), kf, cj, v);
    }
    const float *P = accumulator(st, 0, K, SS);
    query_features(s, qf, q, D, 1);
    float cref = fmaxf(P[SD], W[SD]);
    for (int d = 0; d < D1; d++) num[d] = 0;
    read_state(num, qf, P, m, D1, expf(P[SD] - cref));
    if (slot_full(W, SD)) read_state(num, qf, W, m, D1, expf(W[SD] - cref));
    float inv = 1.0f / fmaxf(num[D], DEN_TINY);
    for (int d = 0; d < D; d++) out[d] = num[d] * inv;
}

static void performer_decode_step(block_t *b, float *y, const float *x, int pos, float *cache, float *scratch) {
    performer_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, D = s->D, D1 = D + 1, m = s->m;
    CHECK(pos >= 0);
    float *qkv = scratch, *heads = qkv + 3 * C, *qf = heads + C, *kf = qf + m, *num = kf + m, *k_raw = num + D1,
          *k = k_raw + C;
    attn_proj_in_forward(&s->proj, qkv, x, 1, C);
    if (mem_on(b)) {
        int L = b->dims->ctx;
        memcpy(k_raw, qkv + C, (size_t)C * sizeof(float));
        attn_proj_rope_one(&s->proj, qkv, C, H, (int)(own_offset(pos / L, window_blocks(b)) * L + pos % L));
        size_t per_head = head_state(b) + state_floats(s);  // ring, accumulators, W
        for (int h = 0; h < H; h++)
            decode_head_window(b, heads + h * D, qkv + h * D, k_raw + h * D, qkv + 2 * C + h * D, pos,
                               cache + h * per_head, qf, kf, num, k);
        attn_proj_out_forward(&s->proj, y, heads, 1, C);
        return;
    }
    attn_proj_rope_one(&s->proj, qkv, C, H, pos);  // --pos rope: at the true position, also ≥ ctx
    size_t per_head = (size_t)m * D1 + 1;
    for (int h = 0; h < H; h++) {
        float *S = cache + h * per_head, *cstate = S + (size_t)m * D1;
        if (pos == 0) {
            memset(S, 0, (size_t)m * D1 * sizeof(float));
            *cstate = -INFINITY;
        }
        const float *q = qkv + h * D, *kk = qkv + C + h * D, *v = qkv + 2 * C + h * D;
        float cold = *cstate, cnew = cold, cj;
        key_features(s, kf, &cj, kk, D, 1, &cnew);
        if (s->kernel == KERNEL_SOFTMAX && pos > 0 && cnew > cold) {
            float r = expf(cold - cnew);
            for (size_t i = 0; i < (size_t)m * D1; i++) S[i] *= r;
        }
        *cstate = cnew;
        for (int r = 0; r < m; r++) {
            float *Sr = S + (size_t)r * D1;
            for (int d = 0; d < D; d++) Sr[d] += kf[r] * v[d];
            Sr[D] += kf[r];
        }
        query_features(s, qf, q, D, 1);
        for (int d = 0; d < D1; d++) num[d] = 0;
        for (int r = 0; r < m; r++) {
            const float *Sr = S + (size_t)r * D1;
            for (int d = 0; d < D1; d++) num[d] += qf[r] * Sr[d];
        }
        float inv = 1.0f / fmaxf(num[D], DEN_TINY);
        for (int d = 0; d < D; d++) heads[h * D + d] = num[d] * inv;
    }
    attn_proj_out_forward(&s->proj, y, heads, 1, C);
}


static const char *const performer_examples[] = {"performer(features=8)", "performer(features=6,kernel=relu)", "performer(features=5,redraw=1)", NULL};

const block_ops_t mixer_performer_ops = {
    .kind = "performer",
    .role = ROLE_MIXER,
    .options = "features, kernel, redraw",
    .examples = performer_examples,
    .configure = performer_configure,
    .describe = performer_describe,
    .register_params = performer_register,
    .act_floats = performer_act_floats,
    .scratch_floats = performer_scratch_floats,
    .forward = performer_forward,
    .backward = performer_backward,
    .before_step = performer_before_step,
    .cache_floats = performer_cache_floats,
    .decode_scratch_floats = performer_decode_scratch_floats,
    .decode_step = performer_decode_step,
    .mem_floats = performer_mem_floats,
    .check_memory = performer_check_memory,
    .check_segment = performer_check_segment,
    .free_priv = performer_free,
    .unbounded_decode = 1,
};
