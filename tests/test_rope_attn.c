// test_rope_attn.c — rotary positions in softmax(persist=0) at block level: the attention scores are
// those of LONG_CONTEXT.md §1, (R_i q_i)·(R_j k_j)/√D, and so depend on the offset j − i only.
//   - reference: for a random input, log(P_ij / P_ii) of every head and causal pair equals
//     scale·((R_i q_i)·(R_j k_j) − (R_i q_i)·(R_i k_i)), q and k from the block's own projection and
//     rotated in double by pos_rope_ref (fails if q or k is rotated at a wrong position, e.g. q at
//     i+1, or not at all);
//   - relative: for a constant input (every position the same x), log(P_ij / P_ii) depends on i − j
//     alone (fails for any absolute use of positions, e.g. a rotation by 2i of the query only);
//   - a rope model at config ctx 2^20 (what a checkpoint may claim with no wpe to bound it) builds
//     without allocating ctx-sized tables: every rope kind (softmax, performer, linformer, adaptive,
//     allattn, softmax(persist), collab) caches at most ROPE_TABLE_MAX_POS = 4096 positions;
//   - learned/none: the same block's probabilities do not depend on the position at all for a
//     constant input (no rotation, and the block sees no table).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "tests/fixture_pos.h"
#include "tests/testlib.h"

enum { V = 11, C = 16, H = 4, D = C / H, T = 12 };

typedef struct {
    model_t m;
    block_t *b;
    float *act, *scratch, *y;
} rig_t;

// Builds or exits (a failure to build is the test's failure: run.sh counts the non-zero exit).
static int rig_build(rig_t *r, pos_scheme_t pos) {
    memset(r, 0, sizeof *r);
    if (pos_fixture_model(&r->m, pos, "softmax", V, C, H, T, 0.3f, 7)) exit(1);
    r->b = &r->m.layers[0].mixer;
    r->act = xcalloc(r->b->ops->act_floats(r->b, 1, T), sizeof(float));
    r->scratch = xcalloc(r->b->ops->scratch_floats(r->b, 1, T), sizeof(float));
    r->y = xcalloc((size_t)T * C, sizeof(float));
    return 0;
}

static void rig_free(rig_t *r) {
    free(r->act);
    free(r->scratch);
    free(r->y);
    model_free(&r->m);
}

// Forward x (T,C) through the block; returns its probabilities (H,T,T) (act: qkv (T,3C) | probs).
static const float *rig_probs(rig_t *r, const float *x) {
    run_ctx_t rc = {.training = 0};
    r->b->ops->forward(r->b, r->y, x, r->act, r->scratch, 1, T, &rc);
    return r->act + (size_t)3 * T * C;
}

// q or k (which 0/1) of head h at position t from the block's own weights (attn.wq/bq, wk/bk), in double.
static void proj_ref(const rig_t *r, const float *x, int which, int h, int t, double *out) {
    const param_t *w = params_find((param_table_t *)&r->m.params, which ? "layers.0.attn.wk" : "layers.0.attn.wq");
    const param_t *bias = params_find((param_table_t *)&r->m.params, which ? "layers.0.attn.bk" : "layers.0.attn.bq");
    for (int d = 0; d < D; d++) {
        int o = h * D + d;
        double s = bias->data[o];
        for (int c = 0; c < C; c++) s += (double)w->data[(size_t)o * C + c] * x[(size_t)t * C + c];
        out[d] = s;
    }
}

static double dot(const double *a, const double *b) {
    double s = 0;
    for (int d = 0; d < D; d++) s += a[d] * b[d];
    return s;
}

static void test_reference(void) {
    TEST_CASE("softmax --pos rope: log(P_ij/P_ii) = scale·((R_i q_i)·(R_j k_j) − (R_i q_i)·(R_i k_i)) (double reference)") {
        rig_t r;
        if (rig_build(&r, POS_ROPE)) return;
        float x[T * C];
        rng_t g;
        rng_seed(&g, 5);
        for (int i = 0; i < T * C; i++) x[i] = (float)rng_normal(&g);
        const float *P = rig_probs(&r, x);
        double worst = 0, scale = 1.0 / sqrt((double)D), seen = 0;
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                double q[D], ki[D];
                proj_ref(&r, x, 0, h, i, q);
                pos_rope_ref(q, D, i);
                proj_ref(&r, x, 1, h, i, ki);
                pos_rope_ref(ki, D, i);
                for (int j = 0; j < i; j++) {
                    double kj[D];
                    proj_ref(&r, x, 1, h, j, kj);
                    pos_rope_ref(kj, D, j);
                    double want = scale * (dot(q, kj) - dot(q, ki));
                    const float *row = P + ((size_t)h * T + i) * T;
                    double got = log((double)row[j] / row[i]);
                    worst = fmax(worst, fabs(got - want));
                    seen = fmax(seen, fabs(want));
                }
            }
        printf("  worst |log-ratio error| %.2e over scores up to %.2f\n", worst, seen);
        EXPECT(seen > 0.1);  // the scores are not trivially flat
        EXPECT_MSG(worst < 1e-4, "worst %g", worst);
        rig_free(&r);
    }
}

// For a constant input, log(P_ij/P_ii) as a function of (i, j): relative iff equal along diagonals.
static double diagonal_spread(const float *P, double *range) {
    double worst = 0, lo = INFINITY, hi = -INFINITY;
    for (int h = 0; h < H; h++)
        for (int i = 1; i < T; i++)
            for (int j = 0; j < i; j++) {
                const float *row = P + ((size_t)h * T + i) * T, *ref = P + ((size_t)h * T + (i - j)) * T;
                double a = log((double)row[j] / row[i]), b = log((double)ref[0] / ref[i - j]);  // same offset i − j, from row i − j
                worst = fmax(worst, fabs(a - b));
                lo = fmin(lo, a);
                hi = fmax(hi, a);
            }
    *range = hi - lo;
    return worst;
}

static void test_relative(void) {
    TEST_CASE("softmax --pos rope: for a constant input, log(P_ij/P_ii) depends on i − j only, and on it") {
        rig_t r;
        if (rig_build(&r, POS_ROPE)) return;
        float x[T * C];
        rng_t g;
        rng_seed(&g, 6);
        for (int c = 0; c < C; c++) x[c] = (float)rng_normal(&g);
        for (int t = 1; t < T; t++) memcpy(x + (size_t)t * C, x, C * sizeof(float));
        double range, spread = diagonal_spread(rig_probs(&r, x), &range);
        printf("  worst difference along a diagonal %.2e; log-ratios span %.3f\n", spread, range);
        EXPECT_MSG(spread < 1e-5, "spread %g", spread);
        EXPECT_MSG(range > 0.05, "the rotation changes nothing: log-ratios span %g", range);  // positions matter
        rig_free(&r);
    }
    TEST_CASE("softmax --pos learned / none at block level: a constant input gives position-free scores") {
        for (int p = POS_LEARNED; p <= POS_NONE; p += 2) {
            rig_t r;
            if (rig_build(&r, (pos_scheme_t)p)) return;
            float x[T * C];
            rng_t g;
            rng_seed(&g, 6);
            for (int c = 0; c < C; c++) x[c] = (float)rng_normal(&g);
            for (int t = 1; t < T; t++) memcpy(x + (size_t)t * C, x, C * sizeof(float));
            double range;
            diagonal_spread(rig_probs(&r, x), &range);
            EXPECT_MSG(range < 1e-5, "--pos %s: log-ratios span %g", pos_scheme_name((pos_scheme_t)p), range);
            rig_free(&r);
        }
    }
}

static long max_rss_kib(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss;
}

static void test_table_cap(void) {
    TEST_CASE("--pos rope at ctx 2^20, head width 64: softmax, performer, linformer, adaptive, allattn, softmax(persist), collab build in < 64 MiB (tables capped)") {
        model_dims_t d = {.vocab = 11, .dim = 64, .heads = 1, .ctx = 1 << 20, .pos = POS_ROPE};
        model_t m;
        char err[512];
        long before = max_rss_kib();
        int rc = model_build(&m, &d, "softmax,performer(features=8),linformer(chunk=4,k=2),adaptive,allattn(persist=4),"
                             "softmax(persist=4),collab(dk=64)",
                             err, sizeof err);
        EXPECT_MSG(rc == 0, "%s", err);
        long grew = max_rss_kib() - before;
        printf("  peak resident memory grew by %ld KiB (uncapped tables: 7 x 256 MiB)\n", grew);
        EXPECT_MSG(grew < 64 * 1024, "grew by %ld KiB", grew);
        if (rc == 0) model_free(&m);
    }
}

int main(void) {
    test_table_cap();
    test_reference();
    test_relative();
    return test_main_end();
}
