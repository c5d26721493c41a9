// ops.c — forward/backward of the elementary ops (see ops.h for the conventions).
#include "model/ops.h"
#include "model/gemm.h"

#include "model/fastmath.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// encoder

void encoder_forward(float *out, const int32_t *tok, const float *wte, const float *wpe, int B, int T, int C) {
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *o = out + ((size_t)b * T + t) * C;
            const float *e = wte + (size_t)tok[b * T + t] * C;
            if (!wpe) {  // --pos rope / none: no position table
                memcpy(o, e, (size_t)C * sizeof(float));
                continue;
            }
            const float *p = wpe + (size_t)t * C;
            for (int c = 0; c < C; c++) o[c] = e[c] + p[c];
        }
}

// Forward was out = wte[tok] + wpe[t]: each output row's gradient lands on one wte row and one wpe row.
// Serial over rows (token rows repeat; a parallel scatter would race), vectorized over C.
void encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tok, int B, int T, int C) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *d = dout + ((size_t)b * T + t) * C;
            float *de = dwte + (size_t)tok[b * T + t] * C;
            if (!dwpe) {
                for (int c = 0; c < C; c++) de[c] += d[c];
                continue;
            }
            float *dp = dwpe + (size_t)t * C;
            for (int c = 0; c < C; c++) {
                de[c] += d[c];
                dp[c] += d[c];
            }
        }
}

// ---------------------------------------------------------------------------------------------
// layernorm

// One row: μ, then the biased variance around μ, then out. The sums are `omp simd` reductions (a
// fixed lane order chosen at compile time: the same bits on any thread count), not serial chains.
static inline void layernorm_row(float *o, float *mean, float *rstd, const float *x, const float *w, const float *b,
                                 int C) {
    float m = 0;
#pragma omp simd reduction(+ : m)
    for (int c = 0; c < C; c++) m += x[c];
    m /= C;
    float v = 0;
#pragma omp simd reduction(+ : v)
    for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
    v /= C;
    float s = 1.0f / sqrtf(v + 1e-5f);
#pragma omp simd
    for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * w[c] + b[c];
    *mean = m;
    *rstd = s;
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                       int N, int C) {
#pragma omp parallel for
    for (int n = 0; n < N; n++)
        layernorm_row(out + (size_t)n * C, mean + n, rstd + n, inp + (size_t)n * C, w, b, C);
}

// res = a + b row by row, each row normalized while it is in cache: the same bits as
// residual_forward then layernorm_forward.
void residual_layernorm_forward(float *res, float *out, float *mean, float *rstd, const float *a, const float *b,
                                const float *w, const float *bias, int N, int C) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        float *r = res + (size_t)n * C;
        const float *ra = a + (size_t)n * C, *rb = b + (size_t)n * C;
#pragma omp simd
        for (int c = 0; c < C; c++) r[c] = ra[c] + rb[c];
        layernorm_row(out + (size_t)n * C, mean + n, rstd + n, r, w, bias, C);
    }
}

// Forward: x̂ = (x-μ)·rstd, out = x̂·w + b. With g = dout·w:
//   db += Σ_n dout,  dw += Σ_n dout·x̂,  dx += rstd·(g − mean(g) − x̂·mean(g·x̂)).
// Rows are independent for dx; dw/db are reduced into LN_CHUNKS partials, one per fixed block of
// rows (not one per thread), then summed in chunk order: the sums are bit-for-bit the same whatever
// the thread count (docs/design.md, Determinism).
enum { LN_CHUNKS = 16 };
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                        const float *mean, const float *rstd, int N, int C) {
    float partial[LN_CHUNKS][2 * C];  // C is the model width: small
    memset(partial, 0, sizeof partial);
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < LN_CHUNKS; ch++) {
        float *dw_local = partial[ch], *db_local = dw_local + C;
        int n0 = (int)((long)N * ch / LN_CHUNKS), n1 = (int)((long)N * (ch + 1) / LN_CHUNKS);
        for (int n = n0; n < n1; n++) {
            const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
            float m = mean[n], s = rstd[n];
            float g_mean = 0, gx_mean = 0;
#pragma omp simd reduction(+ : g_mean, gx_mean)
            for (int c = 0; c < C; c++) {
                float xh = (x[c] - m) * s, g = d[c] * w[c];
                g_mean += g;
                gx_mean += g * xh;
            }
            g_mean /= C;
            gx_mean /= C;
            float *dx = dinp + (size_t)n * C;
#pragma omp simd
            for (int c = 0; c < C; c++) {
                float xh = (x[c] - m) * s, g = d[c] * w[c];
                dx[c] += s * (g - g_mean - xh * gx_mean);
                dw_local[c] += d[c] * xh;
                db_local[c] += d[c];
            }
        }
    }
    for (int t = 0; t < LN_CHUNKS; t++)
        for (int c = 0; c < C; c++) {
            dw[c] += partial[t][c];
            db[c] += partial[t][C + c];
        }
}

// ---------------------------------------------------------------------------------------------
// matmul (OpenBLAS)

void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int IN, int OUT) {
    float beta = 0.0f;
    if (bias) {
#pragma omp parallel for
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OUT, bias, (size_t)OUT * sizeof(float));
        beta = 1.0f;
    }
    par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OUT, IN, 1.0f, inp, IN, w, IN, beta, out, OUT);
}

// Forward was out = inp·wᵀ + b, so dinp = dout·w (N,OUT)(OUT,IN), dw = doutᵀ·inp (OUT,N)(N,IN), db = Σ_n dout.
void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w,
                     int N, int IN, int OUT) {
    if (dinp) par_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IN, OUT, 1.0f, dout, OUT, w, IN, 1.0f, dinp, IN);
    if (dw) par_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OUT, IN, N, 1.0f, dout, OUT, inp, IN, 1.0f, dw, IN);
    if (dbias) {
        // Column sums, walked row by row so the inner loop is contiguous (vectorized); each thread owns
        // a range of 64 columns, so the summation order is fixed whatever the thread count.
#pragma omp parallel for schedule(static)
        for (int o0 = 0; o0 < OUT; o0 += 64) {
            int o1 = o0 + 64 < OUT ? o0 + 64 : OUT;
            float acc[64] = {0};
            for (int n = 0; n < N; n++) {
                const float *row = dout + (size_t)n * OUT;
#pragma omp simd
                for (int o = o0; o < o1; o++) acc[o - o0] += row[o];
            }
            for (int o = o0; o < o1; o++) dbias[o] += acc[o - o0];
        }
    }
}

// ---------------------------------------------------------------------------------------------
// GELU

#define GELU_K 0.7978845608028654f  // sqrt(2/pi)

void gelu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for simd
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + fast_tanhf(GELU_K * (x + 0.044715f * x * x * x)));
    }
}

// y = ½x(1 + tanh u), u = k(x + 0.044715x³):
// dy/dx = ½(1 + tanh u) + ½x·(1 − tanh²u)·k(1 + 3·0.044715x²).
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    int in_place = dinp == dout;
#pragma omp parallel for simd
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float th = fast_tanhf(GELU_K * (x + 0.044715f * x * x * x));
        float grad = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
        if (in_place) dinp[i] = grad * dout[i];
        else dinp[i] += grad * dout[i];
    }
}

// GELU and its derivative from one tanh: ½(1 + th) + ½x(1 − th²)·k(1 + 3·0.044715x²), as gelu_backward.
void gelu_forward_deriv(float *out, float *deriv, const float *inp, const float *bias, int N, int OUT) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *ir = inp + (size_t)n * OUT;
        float *orow = out + (size_t)n * OUT, *drow = deriv + (size_t)n * OUT;
#pragma omp simd
        for (int o = 0; o < OUT; o++) {
            float x = bias ? ir[o] + bias[o] : ir[o];
            float th = fast_tanhf(GELU_K * (x + 0.044715f * x * x * x));
            orow[o] = 0.5f * x * (1.0f + th);
            drow[o] = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
        }
    }
}

// d ← d·deriv, and the bias sum walking rows in order within column blocks of 64, exactly as
// matmul_backward's dbias: the same bits as gelu_backward then matmul_backward's bias sum.
void gelu_backward_bias(float *d, float *dbias, const float *deriv, int N, int OUT) {
#pragma omp parallel for schedule(static)
    for (int o0 = 0; o0 < OUT; o0 += 64) {
        int o1 = o0 + 64 < OUT ? o0 + 64 : OUT;
        float acc[64] = {0};
        for (int n = 0; n < N; n++) {
            float *dr = d + (size_t)n * OUT;
            const float *gr = deriv + (size_t)n * OUT;
#pragma omp simd
            for (int o = o0; o < o1; o++) {
                dr[o] *= gr[o];
                acc[o - o0] += dr[o];
            }
        }
        for (int o = o0; o < o1; o++) dbias[o] += acc[o - o0];
    }
}

void residual_forward(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for simd
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

// ---------------------------------------------------------------------------------------------
// softmax cross-entropy

void crossentropy_forward(float *losses, float *probs, const float *logits, const int32_t *targets, int N, int V) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * V;
        float *p = probs + (size_t)n * V;
        float mx = l[0];
        for (int v = 1; v < V; v++) mx = l[v] > mx ? l[v] : mx;
        double sum = 0;
        float target_logit = targets[n] >= 0 ? l[targets[n]] : 0.0f;
        for (int v = 0; v < V; v++) {
            p[v] = expf(l[v] - mx);
            sum += p[v];
        }
        float inv = (float)(1.0 / sum);
        for (int v = 0; v < V; v++) p[v] *= inv;
        losses[n] = targets[n] >= 0 ? (float)(log(sum) - (double)(target_logit - mx)) : 0.0f;
    }
}

// Forward was loss = log Σ exp(l) − l[target], so dl = (softmax(l) − onehot(target)) · dloss.
void crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets, const float *dloss, int N, int V) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) continue;  // not scored: no loss, no gradient
        const float *p = probs + (size_t)n * V;
        float *d = dlogits + (size_t)n * V;
        float s = dloss[n];
        for (int v = 0; v < V; v++) d[v] += p[v] * s;
        d[targets[n]] -= s;
    }
}

// ---------------------------------------------------------------------------------------------
// dropout

void dropout_mask_draw(float *mask, float p, rng_t *rng, size_t n) {
    if (p <= 0.0f) {
        for (size_t i = 0; i < n; i++) mask[i] = 1.0f;
        return;
    }
    float keep_scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++) mask[i] = rng_uniform(rng) < p ? 0.0f : keep_scale;
}

void dropout_forward(float *out, float *mask, const float *inp, float p, rng_t *rng, size_t n) {
    dropout_mask_draw(mask, p, rng, n);
    if (p <= 0.0f) {
        if (out != inp) memcpy(out, inp, n * sizeof(float));
        return;
    }
#pragma omp parallel for simd
    for (size_t i = 0; i < n; i++) out[i] = inp[i] * mask[i];
}

void dropout_backward(float *dinp, const float *dout, const float *mask, size_t n) {
#pragma omp parallel for simd
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * mask[i];
}

// ---------------------------------------------------------------------------------------------
// causal attention rows

// Max, exponentials and sums are `omp simd` loops (fast_expf inlines; glibc's expf is a scalar call):
// the lane order is fixed at compile time, so the bits do not depend on the thread count.
void causal_softmax_row(float *row, int i, int T) {
    float mx = row[0];
#pragma omp simd reduction(max : mx)
    for (int j = 0; j <= i; j++) mx = row[j] > mx ? row[j] : mx;
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j <= i; j++) {
        row[j] = fast_expf(row[j] - mx);
        sum += row[j];
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int j = 0; j <= i; j++) row[j] *= inv;
    for (int j = i + 1; j < T; j++) row[j] = 0.0f;
}

void causal_softmax_row_backward(float *d, const float *p, int i, int T) {
    float dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int j = 0; j <= i; j++) dot += d[j] * p[j];
#pragma omp simd
    for (int j = 0; j <= i; j++) d[j] = p[j] * (d[j] - dot);
    for (int j = i + 1; j < T; j++) d[j] = 0.0f;
}
