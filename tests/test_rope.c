// test_rope.c — rotary position embeddings (model/rope.h) against a direct double-precision
// implementation of LONG_CONTEXT.md §1: layouts, the relative-position property up to p = 100,000,
// the backward as the exact transpose (and by finite differences), table-independence, odd widths
// refused, and why the angles must be formed in double.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "model/rope.h"
#include "tests/testlib.h"

// ---------------------------------------------------------------------------- reference

// y = R_{sign·p} x in double, written from the definition (θ_i = 1 / 10000^(2i/w)).
static void ref_rotate(double *y, const double *x, int w, long long p, int sign) {
    int h = w / 2;
    for (int i = 0; i < h; i++) {
        double a = (double)sign * (double)p / pow(10000.0, 2.0 * i / w);
        y[i] = x[i] * cos(a) - x[i + h] * sin(a);
        y[i + h] = x[i + h] * cos(a) + x[i] * sin(a);
    }
}

static void fill_normal(float *x, size_t n, rng_t *r) {
    for (size_t i = 0; i < n; i++) x[i] = rng_normal(r);
}

static double dotf(const float *a, const float *b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static rope_table_t make_table(int w, int n_pos) {
    rope_table_t t;
    char err[128];
    if (rope_table_init(&t, w, n_pos, err, sizeof err)) {
        printf("  rope_table_init(%d, %d): %s\n", w, n_pos, err);
        exit(1);
    }
    return t;
}

// Rotate every vector of a layout with the reference; elements outside the layout are copied.
static void ref_apply(float *want, const float *in, size_t n, const rope_layout_t *L, int w, int pos0, int sign) {
    memcpy(want, in, n * sizeof(float));
    double x[512], y[512];
    for (int b = 0; b < L->B; b++)
        for (int t = 0; t < L->T; t++)
            for (int j = 0; j < L->n_vec; j++) {
                size_t off = (size_t)b * L->batch_stride + (size_t)t * L->pos_stride + (size_t)j * L->vec_stride;
                for (int i = 0; i < w; i++) x[i] = in[off + i];
                ref_rotate(y, x, w, (long long)pos0 + t, sign);
                for (int i = 0; i < w; i++) want[off + i] = (float)y[i];
            }
}

// ---------------------------------------------------------------------------- cases

static void test_against_reference(void) {
    rng_t r;
    rng_seed(&r, 1);
    TEST_CASE("rope_apply = direct double rotation: q|k of (B,T,3C), heads of (B,T,C) and (B,H,T,D), both directions") {
        const int widths[] = {2, 8, 16, 32, 64, 130, 256};  // 130, 256: more than one on-the-fly chunk
        for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++) {
            int D = widths[wi], H = 3, C = H * D, B = 2, T = 5;
            rope_table_t tab = make_table(D, 8);  // positions 8.. of pos0 = 6 come from the fly
            const int pos0s[] = {0, 3, 6, 1000, 99995};
            size_t n = (size_t)B * T * 3 * C;
            float *in = malloc(n * sizeof *in), *got = malloc(n * sizeof *got), *want = malloc(n * sizeof *want);
            fill_normal(in, n, &r);
            for (size_t k = 0; k < sizeof pos0s / sizeof *pos0s; k++) {
                for (int dir = -1; dir <= 1; dir += 2) {
                    rope_layout_t lays[3] = {rope_layout_qk(B, T, C, H), rope_layout_heads(B, T, C, H),
                                             {.B = B, .T = T, .n_vec = H, .batch_stride = (size_t)H * T * D,
                                              .pos_stride = (size_t)D, .vec_stride = (size_t)T * D}};
                    for (int li = 0; li < 3; li++) {
                        ref_apply(want, in, n, &lays[li], D, pos0s[k], dir);
                        // out of place: untouched floats of out stay as they were (here: copied from in)
                        memcpy(got, in, n * sizeof *got);
                        rope_apply(&tab, got, in, &lays[li], pos0s[k], (rope_dir_t)dir);
                        char what[96];
                        snprintf(what, sizeof what, "w %d pos0 %d dir %d layout %d out-of-place", D, pos0s[k], dir, li);
                        EXPECT_CLOSE(what, got, want, n, 1e-6, 1e-6);
                        float *inplace = malloc(n * sizeof *inplace);
                        memcpy(inplace, in, n * sizeof *inplace);
                        rope_apply(&tab, inplace, inplace, &lays[li], pos0s[k], (rope_dir_t)dir);
                        EXPECT_MSG(memcmp(inplace, got, n * sizeof *got) == 0, "%s: in place differs from out of place", what);
                        free(inplace);
                    }
                }
            }
            // the v third of q|k|v is never touched, bit for bit
            memcpy(got, in, n * sizeof *got);
            rope_layout_t qk = rope_layout_qk(B, T, C, H);
            rope_apply(&tab, got, got, &qk, 5, ROPE_ROTATE);
            int v_same = 1;
            for (int row = 0; row < B * T; row++)
                v_same &= memcmp(got + (size_t)row * 3 * C + 2 * C, in + (size_t)row * 3 * C + 2 * C, C * sizeof(float)) == 0;
            EXPECT(v_same);
            free(in);
            free(got);
            free(want);
            rope_table_free(&tab);
        }
    }
}

// (R_p q)·(R_s k) computed in float rotations equals q·(R_{s−p} k) in double, for p, s up to 1e5.
static void test_relative(void) {
    rng_t r;
    rng_seed(&r, 2);
    TEST_CASE("(R_p q)·(R_s k) = q·(R_{s-p} k) for p, s in [0, 100000], w 64: worst error stated") {
        const int w = 64;
        rope_table_t tab = make_table(w, 4096);
        float q[64], k[64], qp[64], ks[64];
        double qd[64], kd[64], kr[64];
        double worst = 0;
        long long worst_p = 0, worst_s = 0;
        for (int trial = 0; trial < 2000; trial++) {
            long long p, s;
            if (trial < 4) {
                p = (trial & 1) ? 100000 : 0;
                s = (trial & 2) ? 100000 : 0;
            } else {
                p = (long long)rng_below(&r, 100001);
                s = trial % 3 == 0 ? p + (long long)rng_below(&r, 200) : (long long)rng_below(&r, 100001);
                if (s > 100000) s = 100000;
            }
            fill_normal(q, w, &r);
            fill_normal(k, w, &r);
            memcpy(qp, q, sizeof q);
            memcpy(ks, k, sizeof k);
            rope_apply_one(&tab, qp, 1, 0, (int)p, ROPE_ROTATE);
            rope_apply_one(&tab, ks, 1, 0, (int)s, ROPE_ROTATE);
            for (int i = 0; i < w; i++) qd[i] = q[i], kd[i] = k[i];
            ref_rotate(kr, kd, w, s - p, 1);
            double want = 0, scale = sqrt(dotf(q, q, w) * dotf(k, k, w));
            for (int i = 0; i < w; i++) want += qd[i] * kr[i];
            double err = fabs(dotf(qp, ks, w) - want) / scale;
            if (err > worst) worst = err, worst_p = p, worst_s = s;
        }
        printf("  worst |(R_p q)·(R_s k) − q·R_{s−p}k| / (|q||k|) = %.3g at p %lld, s %lld\n", worst, worst_p,
               worst_s);
        EXPECT_MSG(worst < 2e-7, "worst relative error %.3g", worst);
        // the same difference far from the origin gives the same score
        fill_normal(q, w, &r);
        fill_normal(k, w, &r);
        double base = 0;
        int shift_ok = 1;
        for (long long p = 0; p <= 99000; p += 9000) {
            memcpy(qp, q, sizeof q);
            memcpy(ks, k, sizeof k);
            rope_apply_one(&tab, qp, 1, 0, (int)p, ROPE_ROTATE);
            rope_apply_one(&tab, ks, 1, 0, (int)(p + 37), ROPE_ROTATE);
            double d = dotf(qp, ks, w);
            if (p == 0) base = d;
            shift_ok &= fabs(d - base) < 1e-5 * sqrt(dotf(q, q, w) * dotf(k, k, w));
        }
        EXPECT(shift_ok);
        rope_table_free(&tab);
    }
}

static void test_transpose(void) {
    rng_t r;
    rng_seed(&r, 3);
    TEST_CASE("backward is the exact transpose: <R x, y> = <x, R^T y>, R^T R x = x, at p up to 1e5") {
        const int w = 32, B = 2, T = 7, C = 4 * w, H = 4;
        rope_table_t tab = make_table(w, 64);
        size_t n = (size_t)B * T * 3 * C;
        float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *Rx = malloc(n * sizeof *Rx),
              *Rty = malloc(n * sizeof *Rty), *back = malloc(n * sizeof *back);
        rope_layout_t lay = rope_layout_qk(B, T, C, H);
        double worst_ip = 0, worst_inv = 0;
        const int pos0s[] = {0, 40, 60, 70000, 99990};
        for (size_t k = 0; k < sizeof pos0s / sizeof *pos0s; k++) {
            fill_normal(x, n, &r);
            fill_normal(y, n, &r);
            rope_apply(&tab, Rx, x, &lay, pos0s[k], ROPE_ROTATE);
            rope_apply(&tab, Rty, y, &lay, pos0s[k], ROPE_TRANSPOSE);
            rope_apply(&tab, back, Rx, &lay, pos0s[k], ROPE_TRANSPOSE);
            // elements outside the layout: copy, so both sides see the identity there
            for (int row = 0; row < B * T; row++) {
                size_t v = (size_t)row * 3 * C + 2 * C;
                memcpy(Rx + v, x + v, C * sizeof(float));
                memcpy(Rty + v, y + v, C * sizeof(float));
                memcpy(back + v, Rx + v, C * sizeof(float));
            }
            double lhs = 0, rhs = 0, norm = 0;
            for (size_t i = 0; i < n; i++) lhs += (double)Rx[i] * y[i], rhs += (double)x[i] * Rty[i];
            for (size_t i = 0; i < n; i++) norm += (double)x[i] * x[i];
            double ip = fabs(lhs - rhs) / norm;
            if (ip > worst_ip) worst_ip = ip;
            for (size_t i = 0; i < n; i++)
                if (fabs(back[i] - x[i]) > worst_inv) worst_inv = fabs(back[i] - x[i]);
        }
        printf("  worst |<Rx,y> - <x,R^T y>| / |x|^2 = %.3g; worst |R^T R x - x| = %.3g\n", worst_ip, worst_inv);
        EXPECT_MSG(worst_ip < 1e-8, "inner products differ by %.3g", worst_ip);
        EXPECT_MSG(worst_inv < 2e-6, "R^T R x differs from x by %.3g", worst_inv);
        free(x), free(y), free(Rx), free(Rty), free(back);
        rope_table_free(&tab);
    }
}

// L(x) = Σ_e c_e · sin(y_e) with y = x rotated (q, k of a (B,T,3C) buffer; v passes unchanged).
// dL/dy = c ∘ cos(y), and the backward gives dL/dx = R_{−p} dL/dy.
static double fd_loss(const rope_table_t *tab, const float *x, const float *c, float *y, size_t n,
                      const rope_layout_t *lay, int pos0) {
    memcpy(y, x, n * sizeof *y);
    rope_apply(tab, y, y, lay, pos0, ROPE_ROTATE);
    double L = 0;
    for (size_t i = 0; i < n; i++) L += (double)c[i] * sin((double)y[i]);
    return L;
}

static void test_finite_difference(void) {
    rng_t r;
    rng_seed(&r, 4);
    TEST_CASE("finite differences of a scalar loss through the rotation (Richardson, 2e-4 + 1e-2|fd|)") {
        const int w = 8, B = 2, T = 5, H = 2, C = H * w;
        rope_table_t tab = make_table(w, 3);  // positions ≥ 3 on the fly
        rope_layout_t lay = rope_layout_qk(B, T, C, H);
        size_t n = (size_t)B * T * 3 * C;
        float *x = malloc(n * sizeof *x), *c = malloc(n * sizeof *c), *y = malloc(n * sizeof *y),
              *g = malloc(n * sizeof *g), *fd = malloc(n * sizeof *fd);
        fill_normal(x, n, &r);
        fill_normal(c, n, &r);
        double worst = 0;
        const int pos0s[] = {0, 12345};
        for (int k = 0; k < 2; k++) {
            fd_loss(&tab, x, c, y, n, &lay, pos0s[k]);
            for (size_t i = 0; i < n; i++) g[i] = (float)(c[i] * cos((double)y[i]));
            rope_apply(&tab, g, g, &lay, pos0s[k], ROPE_TRANSPOSE);
            for (size_t i = 0; i < n; i++) {
                float keep = x[i];
                double d[2];
                for (int s = 0; s < 2; s++) {
                    float h = s ? 5e-3f : 1e-2f;
                    x[i] = keep + h;
                    double lp = fd_loss(&tab, x, c, y, n, &lay, pos0s[k]);
                    x[i] = keep - h;
                    double lm = fd_loss(&tab, x, c, y, n, &lay, pos0s[k]);
                    d[s] = (lp - lm) / ((double)(keep + h) - (double)(keep - h));
                }
                x[i] = keep;
                fd[i] = (float)((4 * d[1] - d[0]) / 3);
            }
            char what[64];
            snprintf(what, sizeof what, "dL/dx at pos0 %d", pos0s[k]);
            double wr = EXPECT_CLOSE(what, g, fd, n, 2e-4, 1e-2);
            if (wr > worst) worst = wr;
        }
        printf("  worst element at %.3g of the tolerance\n", worst);
        free(x), free(c), free(y), free(g), free(fd);
        rope_table_free(&tab);
    }
}

static void test_table(void) {
    TEST_CASE("odd and non-positive widths are refused with one line") {
        rope_table_t t;
        char err[128] = "";
        EXPECT(rope_table_init(&t, 33, 16, err, sizeof err) == -1);
        EXPECT_MSG(strcmp(err, "rope needs an even head width, got 33") == 0, "got \"%s\"", err);
        EXPECT(t.cos == NULL && t.theta == NULL && t.w == 0);
        EXPECT(rope_table_init(&t, 0, 16, err, sizeof err) == -1);
        EXPECT_MSG(strcmp(err, "rope needs a positive head width, got 0") == 0, "got \"%s\"", err);
        EXPECT(rope_table_init(&t, -4, 16, err, sizeof err) == -1);
        EXPECT(rope_table_init(&t, 2, 0, err, sizeof err) == 0 && t.n_pos == 0);
        rope_table_free(&t);
    }
    TEST_CASE("results do not depend on the table's size: extend keeps entries, on-the-fly = table, bit for bit") {
        const int w = 48;
        rope_table_t small = make_table(w, 10), big = make_table(w, 3000);
        float keep_cos[24], keep_sin[24];
        memcpy(keep_cos, small.cos + 9 * 24, sizeof keep_cos);
        memcpy(keep_sin, small.sin + 9 * 24, sizeof keep_sin);
        rope_table_extend(&small, 2000);
        rope_table_extend(&small, 1500);  // no-op
        EXPECT(small.n_pos == 2000);
        EXPECT(memcmp(keep_cos, small.cos + 9 * 24, sizeof keep_cos) == 0 &&
               memcmp(keep_sin, small.sin + 9 * 24, sizeof keep_sin) == 0);
        EXPECT(memcmp(small.cos, big.cos, (size_t)2000 * 24 * sizeof(float)) == 0);
        EXPECT(memcmp(small.sin, big.sin, (size_t)2000 * 24 * sizeof(float)) == 0);
        rng_t r;
        rng_seed(&r, 5);
        float a[3 * 48], b[3 * 48];
        int same = 1;
        for (int p = 1990; p < 2010; p++) {  // straddles the small table's end
            fill_normal(a, 3 * 48, &r);
            memcpy(b, a, sizeof a);
            rope_apply_one(&small, a, 3, 48, p, ROPE_ROTATE);
            rope_apply_one(&big, b, 3, 48, p, ROPE_ROTATE);
            same &= memcmp(a, b, sizeof a) == 0;
            rope_layout_t one = {.B = 1, .T = 1, .n_vec = 3, .batch_stride = 0, .pos_stride = 0, .vec_stride = 48};
            rope_apply(&small, b, b, &one, p, ROPE_TRANSPOSE);
            rope_apply_one(&big, a, 3, 48, p, ROPE_TRANSPOSE);
            same &= memcmp(a, b, sizeof a) == 0;
        }
        EXPECT(same);
        rope_table_free(&small);
        rope_table_free(&big);
    }
    TEST_CASE("a layout large enough for OpenMP gives the per-position result bit for bit") {
        const int B = 16, T = 256, C = 128, H = 4, D = C / H;  // 16·256·2·128 = 2^20 floats: the parallel path
        rope_table_t tab = make_table(D, 200);                 // and rows beyond the table
        size_t n = (size_t)B * T * 3 * C;
        float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
        rng_t r;
        rng_seed(&r, 6);
        fill_normal(a, n, &r);
        memcpy(b, a, n * sizeof *a);
        rope_layout_t lay = rope_layout_qk(B, T, C, H);
        rope_apply(&tab, a, a, &lay, 7, ROPE_ROTATE);
        for (int bb = 0; bb < B; bb++)
            for (int t = 0; t < T; t++) rope_apply_one(&tab, b + ((size_t)bb * T + t) * 3 * C, 2 * H, D, 7 + t, ROPE_ROTATE);
        EXPECT(memcmp(a, b, n * sizeof *a) == 0);
        free(a), free(b);
        rope_table_free(&tab);
    }
}

// Why the angles are formed in double: the same rotation with float angles p·θ_i (as a float
// implementation would form them) against the double reference, for p in [99,000, 100,000).
static void test_angle_precision(void) {
    TEST_CASE("angle precision at p ~ 1e5: double angles within 1e-6, float angles off by > 1e-3") {
        const int w = 64, h = 32;
        rope_table_t tab = make_table(w, 16);
        double worst_double = 0, worst_float = 0;
        int worst_float_i = 0;
        float x[64], y[64];
        double xd[64], ref[64];
        for (int p = 99000; p < 100000; p += 7) {
            for (int i = 0; i < w; i++) x[i] = (i % 3) ? 0.5f : -1.0f, xd[i] = x[i];
            ref_rotate(ref, xd, w, p, 1);
            memcpy(y, x, sizeof x);
            rope_apply_one(&tab, y, 1, 0, p, ROPE_ROTATE);
            for (int i = 0; i < w; i++)
                if (fabs(y[i] - ref[i]) > worst_double) worst_double = fabs(y[i] - ref[i]);
            for (int i = 0; i < h; i++) {
                float theta = powf(10000.0f, -2.0f * (float)i / (float)w), a = (float)p * theta;
                float lo = x[i] * cosf(a) - x[i + h] * sinf(a), hi = x[i + h] * cosf(a) + x[i] * sinf(a);
                double e = fmax(fabs(lo - ref[i]), fabs(hi - ref[i + h]));
                if (e > worst_float) worst_float = e, worst_float_i = i;
            }
        }
        printf("  worst element error: double angles %.3g, float angles %.3g (pair i = %d)\n", worst_double,
               worst_float, worst_float_i);
        EXPECT_MSG(worst_double < 1e-6, "double-angle rotation off by %.3g", worst_double);
        EXPECT_MSG(worst_float > 1e-3, "float angles unexpectedly accurate (%.3g): the test shows nothing", worst_float);
        rope_table_free(&tab);
    }
}

int main(void) {
    test_against_reference();
    test_relative();
    test_transpose();
    test_finite_difference();
    test_table();
    test_angle_precision();
    return test_main_end();
}
