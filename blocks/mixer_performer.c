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
// the heads, redrawn every `redraw` optimizer steps from the run's RNG.
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
// last column is the denominator z. Forward keeps S' at the start of every block (T/R states, not
// T) and backward walks the blocks in reverse, carrying dS'.
//
// Segment memory (--memory M > 0, LONG_CONTEXT.md §2): the prefix state at the end of a segment,
// S' (m, D+1) relative to the running max c, per (row, head), computed with this step's weights, is
// carried to the next segment without gradient (truncated backprop through time): the segment's
// first block then has a prefix like any later block, and the running max starts at the carried c.
// The carry covers the whole stream since the memory was last empty (pos0 > 0), whatever M. Rope
// rotates segment row t at stream position pos0 + t. The state also keeps the Ω it was computed
// with: after a redraw the carried S' (old features) is dropped and the segment starts empty.
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks/attn_proj.h"
#include "model/block.h"
#include "base/check.h"
#include "blocks/favor.h"
#include "model/ops.h"

enum { KERNEL_SOFTMAX = 0, KERNEL_RELU = 1 };
#define RELU_EPS 1e-3f
#define DEN_TINY 1e-30f  // y = numerator / max(denominator, DEN_TINY)

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
    if (spec_get_int(spec, "redraw", 1000, 0, 1L << 40, &redraw, where, err, errlen)) return -1;
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

static int n_blocks(const performer_t *s, int T) { return (T + s->rows - 1) / s->rows; }

// per (batch, head): qf (T,m) | kf (T,m) | c (T) | den (T) | vp (T,D+1) | S (nblocks, m, D+1)
//   [| c0 (1): with segment memory, the carried running max (−∞: nothing carried); S block 0 is the carried S']
static size_t head_act(const performer_t *s, int T, int mem_on) {
    size_t D1 = (size_t)s->D + 1;
    return 2 * (size_t)T * s->m + 2 * (size_t)T + (size_t)T * D1 + (size_t)n_blocks(s, T) * s->m * D1 + (mem_on ? 1 : 0);
}
// per (batch, head) scratch: A (R,R) | dA (R,R) | dqf (R,m) | dkf (R,m) | G, Ge, dV, t1 (R,D+1) | dS (m,D+1)
static size_t head_scratch(const performer_t *s) {
    size_t R = (size_t)s->rows, D1 = (size_t)s->D + 1;
    return 2 * R * R + 2 * R * s->m + 4 * R * D1 + (size_t)s->m * D1;
}

static int mem_on(const block_t *b) { return b->dims->memory > 0; }

static size_t performer_act_floats(const block_t *b, int B, int T) {
    size_t BTC = (size_t)B * T * b->dims->dim;
    return 4 * BTC + (size_t)B * b->dims->heads * head_act(b->priv, T, mem_on(b));
}
static size_t performer_scratch_floats(const block_t *b, int B, int T) {
    size_t BTC = (size_t)B * T * b->dims->dim;
    return 4 * BTC + (size_t)B * b->dims->heads * head_scratch(b->priv);
}

typedef struct {
    float *qf, *kf, *c, *den, *vp, *S;
    float *c0;  // with segment memory: the carried running max (−∞: none carried); NULL without
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
    v.c0 = mem_on ? v.S + (size_t)n_blocks(s, T) * s->m * D1 : NULL;
    return v;
}

// ---------------------------------------------------------------------------------------------
// features

// qf (n,m) = φ(q̂) for n rows of Q (row stride ld). Softmax kernel: m^(-1/2)·exp(a − max_r a), a = ω·q̂.
static void query_features(const performer_t *s, float *qf, const float *Q, int ld, int n) {
    int m = s->m, D = s->D;
    float alpha = powf((float)D, -0.25f), sm = 1.0f / sqrtf((float)m);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m, D, alpha, Q, ld, s->omega->data, D, 0.0f, qf, m);
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
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m, D, alpha, K, ld, s->omega->data, D, 0.0f, kf, m);
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

// A (n,n) = (qf kfᵀ) ⊙ ρ on the lower triangle (ρ_ij = exp(c_j − c_i)), 0 above it.
static void block_scores(float *A, const float *qf, const float *kf, const float *c, int n, int m) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, m, 1.0f, qf, m, kf, m, 0.0f, A, n);
    for (int i = 0; i < n; i++) {
        float *a = A + (size_t)i * n;
        for (int j = 0; j <= i; j++) a[j] *= expf(c[j] - c[i]);
        for (int j = i + 1; j < n; j++) a[j] = 0.0f;
    }
}

// ---------------------------------------------------------------------------------------------
// forward

// One (batch, head). Q, K, V: row stride ld; O: row stride ldo. hv: this head's saved views.
// A, N: scratch (R,R) and (R,D+1). Segment memory: carry_in (m·(D+1) + 1: S' then its reference c),
// the prefix of the earlier segments, or NULL (start empty); carry_out (same layout, may equal
// carry_in) receives the state after the last position, or NULL.
static void head_forward(const performer_t *s, head_views_t hv, const float *Q, const float *K, const float *V,
                         int ld, float *O, int ldo, float *A, float *N, int T, const float *carry_in,
                         float *carry_out) {
    int m = s->m, D = s->D, D1 = D + 1, R = s->rows;
    size_t SD = (size_t)m * D1;
    query_features(s, hv.qf, Q, ld, T);
    float cmax = -INFINITY, c0 = -INFINITY;  // c0: the reference of the carried S' (block 0's prefix)
    if (carry_in) {
        memcpy(hv.S, carry_in, SD * sizeof(float));  // backward reads the carried S' as block 0's
        cmax = c0 = carry_in[SD];
    }
    if (hv.c0) *hv.c0 = c0;
    key_features(s, hv.kf, hv.c, K, ld, T, &cmax);
    for (int j = 0; j < T; j++) {
        memcpy(hv.vp + (size_t)j * D1, V + (size_t)j * ld, (size_t)D * sizeof(float));
        hv.vp[(size_t)j * D1 + D] = 1.0f;
    }
    int nb = n_blocks(s, T);
    for (int u = 0; u < nb; u++) {
        int s0 = u * R, n = T - s0 < R ? T - s0 : R;
        float *Su = hv.S + (size_t)u * m * D1;
        const float *qf = hv.qf + (size_t)s0 * m, *kf = hv.kf + (size_t)s0 * m, *c = hv.c + s0,
                    *vp = hv.vp + (size_t)s0 * D1;
        int prefix = u > 0 || carry_in;      // a state S'_u to read: earlier blocks, or earlier segments
        float cprev = u > 0 ? c[-1] : c0;    // its reference
        if (!prefix) {
            memset(Su, 0, (size_t)m * D1 * sizeof(float));
            memset(N, 0, (size_t)n * D1 * sizeof(float));
        } else {
            // N_i = exp(c_{s0−1} − c_i) · φq_i S'_u   (the earlier blocks, moved to reference c_i)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D1, m, 1.0f, qf, m, Su, D1, 0.0f, N, D1);
            for (int i = 0; i < n; i++) {
                float e = expf(cprev - c[i]);
                for (int d = 0; d < D1; d++) N[(size_t)i * D1 + d] *= e;
            }
        }
        block_scores(A, qf, kf, c, n, m);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D1, n, 1.0f, A, n, vp, D1, 1.0f, N, D1);
        for (int i = 0; i < n; i++) {
            const float *num = N + (size_t)i * D1;
            float den = num[D], inv = 1.0f / fmaxf(den, DEN_TINY);
            hv.den[s0 + i] = den;
            float *o = O + (size_t)(s0 + i) * ldo;
            for (int d = 0; d < D; d++) o[d] = num[d] * inv;
        }
        // the state after this block: the next block's, or (last block) what the next segment carries
        float *Sn = u + 1 < nb ? Su + SD : carry_out;
        if (Sn) {
            // S'_{u+1} = λ S'_u + Σ_j φk_j ρ_{j,last} v'_jᵀ,  λ = exp(c_{s0−1} − c_last)
            float clast = c[n - 1];
            for (int j = 0; j < n; j++) {
                float r = expf(c[j] - clast);
                for (int d = 0; d < D1; d++) N[(size_t)j * D1 + d] = r * vp[(size_t)j * D1 + d];
            }
            float lambda = prefix ? expf(cprev - clast) : 0.0f;
            memcpy(Sn, Su, SD * sizeof(float));
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, D1, n, 1.0f, kf, m, N, D1, lambda, Sn, D1);
            if (Sn == carry_out) carry_out[SD] = clast;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// segment memory state: per (row, head) S' (m, D+1) then its reference c — m·(D+1) + 1 floats —
// then, once, the Ω (m, D) it was computed with (a redraw since then makes the carry meaningless).

static size_t head_state(const performer_t *s) { return (size_t)s->m * (s->D + 1) + 1; }

static size_t performer_mem_floats(const block_t *b, int B) {
    const performer_t *s = b->priv;
    return (size_t)B * b->dims->heads * head_state(s) + (size_t)s->m * s->D;
}

// The carried prefix is usable: the stream has one (pos0 > 0) and it was computed with today's Ω.
static int carry_usable(const performer_t *s, const seg_mem_t *mem, const float *state, int B, int H) {
    if (!mem || mem->pos0 <= 0) return 0;
    const float *omega_then = state + (size_t)B * H * head_state(s);
    return memcmp(omega_then, s->omega->data, (size_t)s->m * s->D * sizeof(float)) == 0;
}

static void performer_forward(block_t *b, float *y, const float *x, float *act, float *scratch, int B, int T,
                              const run_ctx_t *rc) {
    performer_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, D = C / H, N = B * T, mon = mem_on(b);
    size_t BTC = (size_t)N * C, HA = head_act(s, T, mon), HS = head_scratch(s), R = (size_t)s->rows;
    float *qkv = act, *heads = act + 3 * BTC, *hbase = act + 4 * BTC;
    // segment memory: read the carried prefix (if usable), and with advance leave the new one
    const seg_mem_t *mem = rc ? rc->mem : NULL;
    float *state = block_mem_state(b, rc);
    CHECK(!mem || (mon && state && mem->B == B));
    int carry = carry_usable(s, mem, state, B, H), advance = mem && mem->advance;
    size_t HSt = head_state(s);
    attn_proj_in_forward(&s->proj, qkv, x, N, C);
    attn_proj_rope_qkv_at(&s->proj, qkv, B, T, C, H, mem ? mem->pos0 : 0, ROPE_ROTATE);  // --pos rope: before φ
#pragma omp parallel for collapse(2) schedule(static)
    for (int bb = 0; bb < B; bb++)
        for (int h = 0; h < H; h++) {
            size_t bh = (size_t)bb * H + h;
            const float *base = qkv + (size_t)bb * T * 3 * C;
            float *sc = scratch + 4 * BTC + bh * HS;
            head_forward(s, head_views(s, hbase + bh * HA, T, mon), base + h * D, base + C + h * D,
                         base + 2 * C + h * D, 3 * C, heads + (size_t)bb * T * C + h * D, C, sc, sc + R * R, T,
                         carry ? state + bh * HSt : NULL, advance ? state + bh * HSt : NULL);
        }
    if (advance) memcpy(state + (size_t)B * H * HSt, s->omega->data, (size_t)s->m * s->D * sizeof(float));
    attn_proj_out_forward(&s->proj, y, heads, N, C);
}

// ---------------------------------------------------------------------------------------------
// backward
//
// Per block, with G'_i = [dy_i/den_i, −(dy_i·y_i)/den_i] (the gradient of [numerator, denominator]):
//   N = diag(e)·φQ·S'_u + A·V'            A = (φQ φKᵀ) ⊙ ρ (lower triangle), e_i = exp(c_{s0−1} − c_i)
//   dA = G'V'ᵀ,  dV' = AᵀG',  dφQ = (dA⊙ρ)·φK + diag(e)·G'·S'_uᵀ,  dφK = (dA⊙ρ)ᵀ·φQ
//   dS'_u (to the earlier blocks) = λ_u·dS'_{u+1} + φQᵀ·diag(e)·G'
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
    int nb = n_blocks(s, T);
    // segment memory: block 0's S' is the carried prefix (reference c0) when one was carried; it is a
    // constant here (truncated backprop: no dS' flows into it)
    float c0 = hv.c0 ? *hv.c0 : -INFINITY;
    int carried = c0 > -INFINITY;
    for (int u = nb - 1; u >= 0; u--) {
        int s0 = u * R, n = T - s0 < R ? T - s0 : R;
        const float *Su = hv.S + (size_t)u * m * D1;
        const float *qf = hv.qf + (size_t)s0 * m, *kf = hv.kf + (size_t)s0 * m, *c = hv.c + s0,
                    *vp = hv.vp + (size_t)s0 * D1;
        float cprev = u > 0 ? c[-1] : c0;  // the reference of S'_u
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
        block_scores(A, qf, kf, c, n, m);
        // dA = G'V'ᵀ, then ⊙ρ on the lower triangle
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, D1, 1.0f, G, D1, vp, D1, 0.0f, dA, n);
        for (int i = 0; i < n; i++) {
            float *a = dA + (size_t)i * n;
            for (int j = 0; j <= i; j++) a[j] *= expf(c[j] - c[i]);
            for (int j = i + 1; j < n; j++) a[j] = 0.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, D1, n, 1.0f, A, n, G, D1, 0.0f, dVp, D1);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, m, n, 1.0f, dA, n, kf, m, 0.0f, dqf, m);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, m, n, 1.0f, dA, n, qf, m, 0.0f, dkf, m);
        if (u > 0 || carried) {
            for (int i = 0; i < n; i++) {
                float e = expf(cprev - c[i]);
                for (int d = 0; d < D1; d++) Ge[(size_t)i * D1 + d] = e * G[(size_t)i * D1 + d];
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m, D1, 1.0f, Ge, D1, Su, D1, 1.0f, dqf, m);
        }
        if (u + 1 < nb) {  // dS holds dS'_{u+1}, the gradient from the later blocks
            float clast = c[n - 1];
            for (int j = 0; j < n; j++) {
                float r = expf(c[j] - clast);
                for (int d = 0; d < D1; d++) t1[(size_t)j * D1 + d] = r * vp[(size_t)j * D1 + d];
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m, D1, 1.0f, t1, D1, dS, D1, 1.0f, dkf, m);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D1, m, 1.0f, kf, m, dS, D1, 0.0f, t1, D1);
            for (int j = 0; j < n; j++) {
                float r = expf(c[j] - clast);
                for (int d = 0; d < D1; d++) dVp[(size_t)j * D1 + d] += r * t1[(size_t)j * D1 + d];
            }
        }
        if (u > 0) {
            float lambda = expf(c[-1] - c[n - 1]);
            if (u + 1 == nb) memset(dS, 0, (size_t)m * D1 * sizeof(float));
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, D1, n, 1.0f, qf, m, Ge, D1, lambda, dS, D1);
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
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D, m, alpha, dqf, m, om, D, 1.0f,
                    dQ + (size_t)s0 * ld, ld);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D, m, alpha, dkf, m, om, D, 1.0f,
                    dK + (size_t)s0 * ld, ld);
    }
    (void)Q;
}

static void performer_backward(block_t *b, float *dx, const float *dy, const float *x, const float *act,
                               float *scratch, int B, int T, const run_ctx_t *rc) {
    performer_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, D = C / H, N = B * T, mon = mem_on(b);
    size_t BTC = (size_t)N * C, HA = head_act(s, T, mon), HS = head_scratch(s);
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
    attn_proj_rope_qkv_at(&s->proj, dqkv, B, T, C, H, rc && rc->mem ? rc->mem->pos0 : 0, ROPE_TRANSPOSE);
    attn_proj_in_backward(&s->proj, dx, dqkv, x, N, C);
}

// ---------------------------------------------------------------------------------------------
// decode: constant state per head, S' (m, D+1) and the running max c — any number of positions.

static size_t performer_cache_floats(const block_t *b) {
    const performer_t *s = b->priv;
    return (size_t)b->dims->heads * ((size_t)s->m * (s->D + 1) + 1);
}
static size_t performer_decode_scratch_floats(const block_t *b) {
    const performer_t *s = b->priv;
    return 4 * (size_t)b->dims->dim + 2 * (size_t)s->m + s->D + 1;
}

static void performer_decode_step(block_t *b, float *y, const float *x, int pos, float *cache, float *scratch) {
    performer_t *s = b->priv;
    int C = b->dims->dim, H = b->dims->heads, D = s->D, D1 = D + 1, m = s->m;
    CHECK(pos >= 0);
    float *qkv = scratch, *heads = qkv + 3 * C, *qf = heads + C, *kf = qf + m, *num = kf + m;
    attn_proj_in_forward(&s->proj, qkv, x, 1, C);
    attn_proj_rope_one(&s->proj, qkv, C, H, pos);  // --pos rope: at the true position, also ≥ ctx
    size_t per_head = (size_t)m * D1 + 1;
    for (int h = 0; h < H; h++) {
        float *S = cache + h * per_head, *cstate = S + (size_t)m * D1;
        if (pos == 0) {
            memset(S, 0, (size_t)m * D1 * sizeof(float));
            *cstate = -INFINITY;
        }
        const float *q = qkv + h * D, *k = qkv + C + h * D, *v = qkv + 2 * C + h * D;
        float cold = *cstate, cnew = cold, cj;
        key_features(s, kf, &cj, k, D, 1, &cnew);
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
    .free_priv = performer_free,
    .unbounded_decode = 1,
};
