// mixer_shortconv.c — a gated short convolution, Zoology's BaseConv (Arora et al. 2023,
// arXiv 2312.04927) without its "+ u" (the block's residual already carries the stream; see
// docs/blocks/shortconv.md for what our layer computes relative to Zoology's):
//   c_t = Σ_{s=0}^{k−1} w_s ⊙ x_{t−s} + b_c     depthwise causal convolution of kernel k, x_{t−s} = 0 before
//                                               the window (with segment memory: before what it remembers)
//   p_t = x_t·Wᵀ + b                             a (C,C) projection
//   y_t = c_t ⊙ p_t
// for the block's LayerNorm output x (B,T,C). Tensors: attn.conv_w (C,k) — row c holds channel c's
// taps, column s the lag s (PyTorch's Conv1d weight[c,0,j] is conv_w[c, k−1−j]) — attn.conv_b (C),
// both U(±1/sqrt(k)) as Conv1d initialises them; attn.proj_w (C,C) N(0, 0.02²) and attn.proj_b (C)
// zeros, like every other projection. Option kernel (3) in [1, 64]. No positions: nothing to rotate
// under rope, and --pos rel is refused by the model (rel_pos 0).
// --memory M: the state is the layer input x of the last min(n, M, k−1) stream positions
// (blocks/mem_rows.h with capacity min(M, k−1)); the convolution reads them as the positions before
// the segment; they get no gradient (stop-gradient), conv_w gets their share.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks/mem_rows.h"
#include "model/block.h"
#include "base/check.h"
#include "model/ops.h"

typedef struct {
    int k;  // kernel size
    param_t *conv_w, *conv_b, *proj_w, *proj_b;
} shortconv_t;

enum { CHANNEL_BLOCK = 64 };  // channels per thread in the weight-gradient sums (a fixed order)

static int shortconv_configure(block_t *b, spec_block_t *spec, char *err, size_t errlen) {
    long k;
    if (spec_get_int(spec, "kernel", 3, 1, 64, &k, block_where(b), err, errlen)) return -1;
    shortconv_t *s = xcalloc(1, sizeof *s);
    s->k = (int)k;
    b->priv = s;
    return 0;
}

static void shortconv_describe(const block_t *b, char *buf, size_t n) {
    snprintf(buf, n, "shortconv(kernel=%d)", ((const shortconv_t *)b->priv)->k);
}

static void shortconv_register(block_t *b, param_table_t *pt, const char *prefix) {
    shortconv_t *s = b->priv;
    int C = b->dims->dim;
    float bound = 1.0f / sqrtf((float)s->k);  // Conv1d's default: fan-in k (one input channel per group)
    s->conv_w = params_add(pt, prefix, "conv_w", (param_spec_t){.shape = {C, s->k}, .init = INIT_UNIFORM, .bound = bound, .decay = 1});
    s->conv_b = params_add(pt, prefix, "conv_b", (param_spec_t){.shape = {C}, .init = INIT_UNIFORM, .bound = bound});
    s->proj_w = params_add(pt, prefix, "proj_w", (param_spec_t){.shape = {C, C}, .init = INIT_NORMAL, .std = 0.02f, .decay = 1});
    s->proj_b = params_add(pt, prefix, "proj_b", (param_spec_t){.shape = {C}, .init = INIT_ZEROS});
}

// Rows of state per stream: the k−1 previous inputs at most, and no more than the memory holds.
static int mem_capacity(const block_t *b) {
    int lags = ((const shortconv_t *)b->priv)->k - 1, M = b->dims->memory;
    return M < lags ? M : lags;
}

// act: conv c (B,T,C) | proj p (B,T,C) | xmem (B,Mc,C), Mc = mem_capacity (0 without memory): the
// remembered rows the forward read, first n_eff·C floats per row used.
static size_t shortconv_act_floats(const block_t *b, int B, int T) {
    return 2 * (size_t)B * T * b->dims->dim + (size_t)B * mem_capacity(b) * b->dims->dim;
}
// scratch: dc (B,T,C) | dp (B,T,C)
static size_t shortconv_scratch_floats(const block_t *b, int B, int T) { return 2 * (size_t)B * T * b->dims->dim; }

static size_t shortconv_mem_floats(const block_t *b, int B) { return mem_rows_floats(B, mem_capacity(b), b->dims->dim); }

// Remembered rows this call uses: min(n, M, k−1) (n the memory's count; 0 without memory).
static int mem_used(const block_t *b, const run_ctx_t *rc) {
    int n = rc && rc->mem ? rc->mem->n : 0, cap = mem_capacity(b);
    return n < cap ? n : cap;
}

// The input row at lag s from row t of stream bb: x (B,T,C) for t−s ≥ 0, else remembered row
// n_eff − (s−t) of xmem (B,n_eff,C), else NULL (zero padding).
static inline const float *lagged_row(const float *x, const float *xmem, int bb, int t, int s, int T, int n_eff, int C) {
    int j = t - s;
    if (j >= 0) return x + ((size_t)bb * T + j) * C;
    if (-j <= n_eff) return xmem + ((size_t)bb * n_eff + n_eff + j) * C;
    return NULL;
}

static void shortconv_forward(block_t *b, float *y, const float *x, float *act, float *scratch, int B, int T,
                              const run_ctx_t *rc) {
    shortconv_t *s = b->priv;
    int C = b->dims->dim, k = s->k, N = B * T, n_eff = mem_used(b, rc), cap = mem_capacity(b);
    float *conv = act, *proj = act + (size_t)N * C, *xmem = proj + (size_t)N * C;
    if (rc && rc->mem && cap) {  // kernel 1 remembers nothing
        float *state = block_mem_state(b, rc);
        // the remembered rows → xmem (the backward reads them), then the state for the next segment
        for (int bb = 0; bb < B; bb++)
            memcpy(xmem + (size_t)bb * n_eff * C, mem_rows_of(state, bb, cap, n_eff, C), (size_t)n_eff * C * sizeof(float));
        if (rc->mem->advance) mem_rows_advance(state, x, B, cap, n_eff, T, C);
    }
    // p = x·Wᵀ + b
    matmul_forward(proj, x, s->proj_w->data, s->proj_b->data, N, C, C);
    const float *w = s->conv_w->data, *bc = s->conv_b->data;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < N; r++) {
        int bb = r / T, t = r % T;
        float *ct = conv + (size_t)r * C, *yt = y + (size_t)r * C;
        const float *pt = proj + (size_t)r * C;
        // c_t = b_c + w_0 ⊙ x_t + w_1 ⊙ x_{t−1} + … (in this order: decode sums the same way)
        memcpy(ct, bc, (size_t)C * sizeof(float));
        for (int lag = 0; lag < k; lag++) {
            const float *xs = lagged_row(x, xmem, bb, t, lag, T, n_eff, C);
            if (!xs) break;
            for (int c = 0; c < C; c++) ct[c] += w[(size_t)c * k + lag] * xs[c];
        }
        for (int c = 0; c < C; c++) yt[c] = ct[c] * pt[c];
    }
}

// Forward: y = c ⊙ p, c_t = Σ_s w_s ⊙ x_{t−s} + b_c, p = x·Wᵀ + b. Backward, dy (B,T,C):
//   dc = dy ⊙ p,  dp = dy ⊙ c                                        (B,T,C) each, in scratch
//   dx += dp·W,  dW += dpᵀ·x,  db += Σ_{b,t} dp                       (matmul_backward)
//   dw[c,s] += Σ_{b,t} dc[b,t,c]·x[b,t−s,c]   (memory rows included; padding contributes 0)
//   db_c    += Σ_{b,t} dc[b,t]
//   dx[b,j] += Σ_{s: j+s<T} w_s ⊙ dc[b,j+s]  (the window's rows only: no gradient into memory)
// The weight sums run per channel block over (b,t) in order, the dx sum per output row: the same
// bits on any thread count.
static void shortconv_backward(block_t *b, float *dx, const float *dy, const float *x, const float *act,
                               float *scratch, int B, int T, const run_ctx_t *rc) {
    shortconv_t *s = b->priv;
    int C = b->dims->dim, k = s->k, N = B * T, n_eff = mem_used(b, rc);
    const float *conv = act, *proj = act + (size_t)N * C, *xmem = proj + (size_t)N * C;
    float *dc = scratch, *dp = scratch + (size_t)N * C;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < N; r++) {
        size_t o = (size_t)r * C;
        for (int c = 0; c < C; c++) {
            dc[o + c] = dy[o + c] * proj[o + c];
            dp[o + c] = dy[o + c] * conv[o + c];
        }
    }
    matmul_backward(dx, s->proj_w->grad, s->proj_b->grad, dp, x, s->proj_w->data, N, C, C);
    float *dw = s->conv_w->grad, *dbc = s->conv_b->grad;
    const float *w = s->conv_w->data;
#pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < C; c0 += CHANNEL_BLOCK) {
        int c1 = c0 + CHANNEL_BLOCK < C ? c0 + CHANNEL_BLOCK : C;
        for (int r = 0; r < N; r++) {
            int bb = r / T, t = r % T;
            const float *d = dc + (size_t)r * C;
            for (int c = c0; c < c1; c++) dbc[c] += d[c];
            for (int lag = 0; lag < k; lag++) {
                const float *xs = lagged_row(x, xmem, bb, t, lag, T, n_eff, C);
                if (!xs) break;
                for (int c = c0; c < c1; c++) dw[(size_t)c * k + lag] += d[c] * xs[c];
            }
        }
    }
#pragma omp parallel for schedule(static)
    for (int r = 0; r < N; r++) {
        int t = r % T;
        float *dxr = dx + (size_t)r * C;
        for (int lag = 0; lag < k && t + lag < T; lag++) {
            const float *d = dc + (size_t)(r + lag) * C;
            for (int c = 0; c < C; c++) dxr[c] += w[(size_t)c * k + lag] * d[c];
        }
    }
}

// Decoding: the cache is a ring of the last k−1 inputs, position p at slot p mod (k−1). Position pos
// sees x_{pos−s} for pos − s ≥ lo: lo = 0 without memory; with memory lo = start − min(start, M) for
// its segment's start = pos − pos mod ctx — what the segment-wise forward shows it (the ring's older
// slots, e.g. after decode_reset, are never read).
static size_t shortconv_cache_floats(const block_t *b) {
    return (size_t)(((const shortconv_t *)b->priv)->k - 1) * b->dims->dim;
}
static size_t shortconv_decode_scratch_floats(const block_t *b) { return (size_t)b->dims->dim; }

static void shortconv_decode_step(block_t *b, float *y, const float *x, int pos, float *cache, float *scratch) {
    shortconv_t *s = b->priv;
    int C = b->dims->dim, k = s->k, ctx = b->dims->ctx, M = b->dims->memory, ring = k - 1;
    CHECK(pos >= 0 && (M > 0 || pos < ctx));
    int start = pos - pos % ctx, lo = M ? start - (start < M ? start : M) : 0;
    float *p = scratch;
    matmul_forward(p, x, s->proj_w->data, s->proj_b->data, 1, C, C);
    const float *w = s->conv_w->data, *bc = s->conv_b->data;
    for (int c = 0; c < C; c++) {
        float acc = bc[c];
        acc += w[(size_t)c * k] * x[c];
        for (int lag = 1; lag < k && pos - lag >= lo; lag++) acc += w[(size_t)c * k + lag] * cache[(size_t)((pos - lag) % ring) * C + c];
        y[c] = acc * p[c];
    }
    if (ring) memcpy(cache + (size_t)(pos % ring) * C, x, (size_t)C * sizeof(float));
}

// kernel 9 reaches past the gradient check's 7 positions and past memory 6 (the state then holds
// fewer than k−1 rows).
static const char *const shortconv_examples[] = {"shortconv", "shortconv(kernel=9)", NULL};

// The convolution sees kernel − 1 positions back, whatever the window and memory hold.
static int shortconv_reach(const block_t *b) { return ((const shortconv_t *)b->priv)->k - 1; }

const block_ops_t mixer_shortconv_ops = {
    .kind = "shortconv",
    .role = ROLE_MIXER,
    .options = "kernel",
    .examples = shortconv_examples,
    .configure = shortconv_configure,
    .describe = shortconv_describe,
    .register_params = shortconv_register,
    .act_floats = shortconv_act_floats,
    .scratch_floats = shortconv_scratch_floats,
    .forward = shortconv_forward,
    .backward = shortconv_backward,
    .cache_floats = shortconv_cache_floats,
    .decode_scratch_floats = shortconv_decode_scratch_floats,
    .decode_step = shortconv_decode_step,
    .mem_floats = shortconv_mem_floats,
    .reach = shortconv_reach,
    .no_positions = 1,
};
