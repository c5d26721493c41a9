// bench_collab.c — collaborative attention's cost against softmax, and its CP/ALS conversion.
//   bench_collab [ROUNDS [THREADS]]        (defaults 5, 2)
// 1. One mixer layer's forward+backward at d 128, H 4, batch 16, ctx 256 (the results.md shape):
//    softmax, collab(dk=32|64|128), interleaved round by round so that load hits every kind alike;
//    the median time per kind and its ratio to softmax's.
// 2. Conversion: the wall time of a rank-64 ALS of a random (128,4,128) softmax-like tensor (per-head
//    products of N(0, 0.02²) maps, the shape of one d 128, 4-head layer).
// 3. ALS recovery of tensors of known CP rank r (random N(0,1) factors, 10 per shape): how many reach a
//    relative error < 1e-6 within 500 sweeps, for plain ALS from N(0,1) factors, + subspace starts,
//    + line search (the default). docs/blocks/collab.md quotes this table.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/runtime.h"
#include "base/check.h"
#include "blocks/cp_als.h"
#include "model/model.h"

typedef struct {
    model_t m;
    float *x, *y, *dy, *dx, *act, *scratch;
} rig_t;

static void rig_init(rig_t *g, const char *spec, int C, int H, int B, int T) {
    model_dims_t d = {.vocab = 8, .dim = C, .heads = H, .ctx = T};
    char err[256];
    if (model_build(&g->m, &d, spec, err, sizeof err)) {
        fprintf(stderr, "bench_collab: %s: %s\n", spec, err);
        exit(1);
    }
    rng_t r;
    rng_seed(&r, 1);
    model_init_weights(&g->m, &r);
    block_t *b = &g->m.layers[0].mixer;
    size_t n = (size_t)B * T * C;
    g->x = xalloc_floats(n), g->y = xalloc_floats(n), g->dy = xalloc_floats(n), g->dx = xalloc_floats(n);
    g->act = xalloc_floats(b->ops->act_floats(b, B, T));
    g->scratch = xalloc_floats(b->ops->scratch_floats(b, B, T));
    for (size_t i = 0; i < n; i++) {
        g->x[i] = rng_normal(&r);
        g->dy[i] = 1e-3f * rng_normal(&r);
    }
}

static double rig_time(rig_t *g, int B, int T) {
    block_t *b = &g->m.layers[0].mixer;
    rng_t r;
    rng_seed(&r, 2);
    run_ctx_t rc = {.training = 1, .rng = &r};
    double t0 = cli_now();
    b->ops->forward(b, g->y, g->x, g->act, g->scratch, B, T, &rc);
    b->ops->backward(b, g->dx, g->dy, g->x, g->act, g->scratch, B, T, &rc);
    return 1e3 * (cli_now() - t0);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cli_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 5, threads = argc > 2 ? atoi(argv[2]) : 2;
    if (rounds < 1 || threads < 1) {
        fprintf(stderr, "usage: bench_collab [ROUNDS>=1 [THREADS>=1]]\n");
        return 2;
    }
    cli_set_threads(threads);
    enum { C = 128, H = 4, B = 16, T = 256, K = 4 };
    const char *specs[K] = {"softmax/none", "collab(dk=32)/none", "collab(dk=64)/none", "collab(dk=128)/none"};
    printf("== collab vs softmax: one mixer layer, forward+backward, d %d, H %d, batch %d, ctx %d, %d threads, %d rounds ==\n",
           C, H, B, T, threads, rounds);
    rig_t rigs[K];
    for (int k = 0; k < K; k++) {
        rig_init(&rigs[k], specs[k], C, H, B, T);
        rig_time(&rigs[k], B, T);  // warm-up
    }
    double *t = xcalloc((size_t)K * rounds, sizeof *t);
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < K; k++) t[(size_t)k * rounds + r] = rig_time(&rigs[k], B, T);
    double sm = 0;
    printf("%-22s %10s %10s\n", "mixer", "ms (median)", "/ softmax");
    for (int k = 0; k < K; k++) {
        double med = median(t + (size_t)k * rounds, rounds);
        if (k == 0) sm = med;
        printf("%-22s %10.2f %10.2f\n", specs[k], med, med / sm);
    }
    for (int k = 0; k < K; k++) model_free(&rigs[k].m);
    free(t);

    printf("\n== conversion: rank-64 CP/ALS of a (128,4,128) softmax-like tensor (one d 128 layer) ==\n");
    {
        int d = 128, h = 4, dh = d / h, R = 64;
        rng_t g;
        rng_seed(&g, 9);
        double *wq = malloc(sizeof(double) * d * d), *wk = malloc(sizeof(double) * d * d);
        for (int i = 0; i < d * d; i++) wq[i] = 0.02 * rng_normal(&g), wk[i] = 0.02 * rng_normal(&g);
        double *X = calloc((size_t)d * h * d, sizeof(double));
        for (int a = 0; a < d; a++)
            for (int hh = 0; hh < h; hh++)
                for (int c = 0; c < d; c++) {
                    double s = 0;
                    for (int e = hh * dh; e < (hh + 1) * dh; e++) s += wq[e * d + a] * wk[e * d + c];
                    X[((size_t)a * h + hh) * d + c] = s;
                }
        double *A = malloc(sizeof(double) * d * R), *M = malloc(sizeof(double) * h * R), *Bf = malloc(sizeof(double) * d * R);
        cp_result_t res;
        double t0 = cli_now();
        cp_als(X, d, h, d, R, 1, CP_MAX_SWEEPS, CP_TOL, CP_DEFAULT, A, M, Bf, &res);
        printf("relative error %.4f after %d sweeps in %.2f s\n", res.rel_error, res.sweeps, cli_now() - t0);
        free(wq), free(wk), free(X), free(A), free(M), free(Bf);
    }

    printf("\n== ALS recovery of exact CP-rank-r tensors (10 random per row): recovered to < 1e-6 within 500 sweeps ==\n");
    printf("%-14s %4s %22s %22s %22s\n", "shape", "r", "plain (N(0,1) start)", "+ subspace start", "+ line search (default)");
    const int shapes[][3] = {{16, 4, 16}, {32, 4, 32}};
    const int flags[3] = {0, CP_SPAN_INIT, CP_DEFAULT};
    for (int s = 0; s < 2; s++)
        for (int R = 2; R <= 8; R += 2) {
            int n1 = shapes[s][0], n2 = shapes[s][1], n3 = shapes[s][2];
            char shape[32];
            snprintf(shape, sizeof shape, "(%d,%d,%d)", n1, n2, n3);
            printf("%-14s %4d", shape, R);
            for (int f = 0; f < 3; f++) {
                int ok = 0, sweeps = 0;
                for (int trial = 0; trial < 10; trial++) {
                    double *A = malloc(sizeof(double) * n1 * R), *Bm = malloc(sizeof(double) * n2 * R),
                           *Cf = malloc(sizeof(double) * n3 * R), *X = malloc(sizeof(double) * n1 * n2 * n3);
                    cp_random_exact_rank(1000 + trial, n1, n2, n3, R, A, Bm, Cf, X);
                    cp_result_t res;
                    cp_als(X, n1, n2, n3, R, 1, CP_MAX_SWEEPS, CP_TOL, flags[f], A, Bm, Cf, &res);
                    ok += res.rel_error < 1e-6;
                    sweeps += res.sweeps;
                    free(A), free(Bm), free(Cf), free(X);
                }
                char cell[40];
                snprintf(cell, sizeof cell, "%d/10, %d sweeps", ok, sweeps / 10);
                printf(" %22s", cell);
            }
            printf("\n");
            fflush(stdout);
        }
    return 0;
}
