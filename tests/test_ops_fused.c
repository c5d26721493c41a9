// test_ops_fused.c — the fused element-wise ops of model/ops.h against finite differences and
// against the unfused calls they replace:
//   gelu_forward_deriv +         dpre and dbias by central differences (the bias added by the forward
//                                pass); without a bias the same bits as gelu_forward,
//   gelu_backward_bias           and as gelu_backward then matmul_backward's bias sum (deriv in place too);
//   residual_layernorm_forward   the same bits as residual_forward then layernorm_forward (aliased too);
//   causal_softmax_row(_backward) the forward against a double softmax, the backward by central
//                                differences, rows longer than a vector register.
// Widths above 64 cross gelu_backward_bias's column blocks; row lengths are not multiples of 8 or 16,
// so the vector loops' remainders are exercised.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/ops.h"
#include "tests/fixture.h"
#include "tests/testlib.h"

#define EPS 1e-2f
#define ATOL 2e-4
#define RTOL 5e-3

enum { N = 6, OUT = 70, T = 23, LN_N = 37, LN_C = 100 };


// loss = Σ probe·GELU(x + b), b broadcast over rows: dL/dx = dpre, dL/db = Σ_n dpre.
typedef struct {
    float x[N * OUT], b[OUT], z[N * OUT], h[N * OUT], probe[N * OUT];
} gelu_ctx_t;

static void gelu_z(gelu_ctx_t *c) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OUT; o++) c->z[n * OUT + o] = c->x[n * OUT + o] + c->b[o];
}
static double gelu_loss(void *p) {
    gelu_ctx_t *c = p;
    gelu_z(c);
    gelu_forward(c->h, c->z, N * OUT);
    return fixture_dot(c->h, c->probe, N * OUT);
}

// loss = Σ_i Σ_j probe[i,j]·softmax_{j≤i}(S[i,:])
typedef struct {
    float s[T * T], p[T * T], probe[T * T];
} sm_ctx_t;

static void sm_forward(sm_ctx_t *c) {
    memcpy(c->p, c->s, sizeof c->p);
    for (int i = 0; i < T; i++) causal_softmax_row(c->p + i * T, i, T);
}
static double sm_loss(void *p) {
    sm_ctx_t *c = p;
    sm_forward(c);
    return fixture_dot(c->p, c->probe, T * T);
}

int main(void) {
    rng_t r;
    rng_seed(&r, 11);
    TEST_CASE("gelu_forward_deriv with a bias: GELU(x + b) as the unfused ops; dpre and dbias by finite differences") {
        gelu_ctx_t c;
        fixture_fill_normal(c.x, N * OUT, 1.5f, &r);
        fixture_fill_normal(c.b, OUT, 0.5f, &r);
        fixture_fill_normal(c.probe, N * OUT, 1.0f, &r);
        float d[N * OUT], db[OUT];
        for (int o = 0; o < OUT; o++) db[o] = 0.25f;  // accumulates into what is there
        float g[N * OUT];
        gelu_forward_deriv(c.h, g, c.x, c.b, N, OUT);  // the bias added inside, as ffn_mlp.c calls it
        float h_fused[N * OUT];
        memcpy(h_fused, c.h, sizeof h_fused);
        gelu_loss(&c);  // c.h = gelu_forward(x + b), unfused
        EXPECT(memcmp(h_fused, c.h, sizeof h_fused) == 0);
        memcpy(d, c.probe, sizeof d);
        gelu_backward_bias(d, db, g, N, OUT);
        for (int o = 0; o < OUT; o++) db[o] -= 0.25f;
        fd_check("dpre", gelu_loss, &c, c.x, d, N * OUT, EPS, ATOL, RTOL);
        fd_check("dbias", gelu_loss, &c, c.b, db, OUT, EPS, ATOL, RTOL);
    }
    TEST_CASE("gelu_forward_deriv + gelu_backward_bias: the same bits as the unfused ops, deriv in place") {
        float pre[N * OUT], dh[N * OUT], d1[N * OUT], d2[N * OUT], db1[OUT] = {0}, db2[OUT] = {0};
        float h1[N * OUT], h2[N * OUT], g[N * OUT];
        fixture_fill_normal(pre, N * OUT, 2.0f, &r);
        fixture_fill_normal(dh, N * OUT, 1.0f, &r);
        gelu_forward(h1, pre, N * OUT);
        memcpy(d1, dh, sizeof d1);
        gelu_backward(d1, pre, d1, N * OUT);
        matmul_backward(NULL, NULL, db1, d1, NULL, NULL, N, 1, OUT);
        memcpy(g, pre, sizeof g);
        gelu_forward_deriv(h2, g, g, NULL, N, OUT);  // in place, as ffn_mlp.c calls it
        memcpy(d2, dh, sizeof d2);
        gelu_backward_bias(d2, db2, g, N, OUT);
        EXPECT(memcmp(h1, h2, sizeof h1) == 0);
        EXPECT(memcmp(d1, d2, sizeof d1) == 0 && memcmp(db1, db2, sizeof db1) == 0);
    }
    TEST_CASE("residual_layernorm_forward: the same bits as the add then the norm, also in place") {
        size_t n = (size_t)LN_N * LN_C;
        float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float)), w[LN_C], bias[LN_C];
        float *res1 = malloc(n * sizeof(float)), *out1 = malloc(n * sizeof(float)), mean1[LN_N], rstd1[LN_N];
        float *res2 = malloc(n * sizeof(float)), *out2 = malloc(n * sizeof(float)), mean2[LN_N], rstd2[LN_N];
        fixture_fill_normal(a, n, 1.0f, &r);
        fixture_fill_normal(b, n, 0.3f, &r);
        fixture_fill_normal(w, LN_C, 1.0f, &r);
        fixture_fill_normal(bias, LN_C, 0.1f, &r);
        residual_forward(res1, a, b, n);
        layernorm_forward(out1, mean1, rstd1, res1, w, bias, LN_N, LN_C);
        residual_layernorm_forward(res2, out2, mean2, rstd2, a, b, w, bias, LN_N, LN_C);
        EXPECT(memcmp(res1, res2, n * sizeof(float)) == 0 && memcmp(out1, out2, n * sizeof(float)) == 0);
        EXPECT(memcmp(mean1, mean2, sizeof mean1) == 0 && memcmp(rstd1, rstd2, sizeof rstd1) == 0);
        memcpy(res2, a, n * sizeof(float));  // res aliasing a
        residual_layernorm_forward(res2, out2, mean2, rstd2, res2, b, w, bias, LN_N, LN_C);
        EXPECT(memcmp(res1, res2, n * sizeof(float)) == 0 && memcmp(out1, out2, n * sizeof(float)) == 0);
        free(a), free(b), free(res1), free(out1), free(res2), free(out2);
    }
    TEST_CASE("causal_softmax_row: a double softmax over j ≤ i, zeros after") {
        sm_ctx_t c;
        fixture_fill_normal(c.s, T * T, 3.0f, &r);
        sm_forward(&c);
        float want[T * T];
        for (int i = 0; i < T; i++) {
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j <= i; j++) mx = fmax(mx, c.s[i * T + j]);
            for (int j = 0; j <= i; j++) sum += exp((double)c.s[i * T + j] - mx);
            for (int j = 0; j < T; j++) want[i * T + j] = j <= i ? (float)(exp((double)c.s[i * T + j] - mx) / sum) : 0.0f;
        }
        EXPECT_CLOSE("softmax rows", c.p, want, T * T, 1e-7, 1e-6);
    }
    TEST_CASE("causal_softmax_row_backward: by finite differences") {
        sm_ctx_t c;
        fixture_fill_normal(c.s, T * T, 2.0f, &r);
        fixture_fill_normal(c.probe, T * T, 1.0f, &r);
        sm_forward(&c);
        float d[T * T];
        memcpy(d, c.probe, sizeof d);
        for (int i = 0; i < T; i++) causal_softmax_row_backward(d + i * T, c.p + i * T, i, T);
        fd_check("dS", sm_loss, &c, c.s, d, T * T, EPS, ATOL, RTOL);
    }
    return test_main_end();
}
