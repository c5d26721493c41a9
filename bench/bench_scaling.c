// bench_scaling.c — step time of one mixer layer against context length: softmax (quadratic),
// performer (linear) and linformer (quadratic / (c/k)), at d 128 (4 heads) and d 384 (6 heads).
// Batch × ctx is held fixed (tokens per step), so a linear kind's µs per token stays flat while
// softmax's grows with ctx. Times forward + backward of the mixer alone (no LayerNorm, ffn,
// embeddings), median of `reps` runs after one warm-up, in one process, so the ratios to softmax
// are side by side (ARCHITECTURE.md §8: quote ratios, not lone absolute times).
//   usage: bench_scaling [tokens=4096] [max_ctx=4096] [reps=3] [softmax_max_ctx=4096]
// About 90 s on a shared 2-core machine with the defaults. Softmax above softmax_max_ctx is skipped
// (printed "-"): its T×T probabilities and their gradient take 2·B·H·T² floats (0.8 GB at ctx 4096,
// d 384). With batch × ctx fixed, softmax's quadratic part costs tokens·ctx, so its time per token
// grows linearly with ctx while the projections' part stays constant.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/check.h"
#include "model/model.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// Median ms of forward+backward of layer 0's mixer of `spec` at (B, T), width C, heads H.
static double time_mixer(const char *spec, int C, int H, int B, int T, int reps) {
    model_dims_t d = {.vocab = 8, .dim = C, .heads = H, .ctx = T};
    model_t m;
    char err[256];
    if (model_build(&m, &d, spec, err, sizeof err)) die(EXIT_RUNTIME, "%s: %s", spec, err);
    rng_t r;
    rng_seed(&r, 1);
    model_init_weights(&m, &r);
    block_t *b = &m.layers[0].mixer;
    size_t n = (size_t)B * T * C;
    float *x = xalloc_floats(n), *y = xalloc_floats(n), *dy = xalloc_floats(n), *dx = xalloc_floats(n);
    float *act = xalloc_floats(b->ops->act_floats(b, B, T)), *scratch = xalloc_floats(b->ops->scratch_floats(b, B, T));
    for (size_t i = 0; i < n; i++) {
        x[i] = rng_normal(&r);
        dy[i] = 1e-3f * rng_normal(&r);
    }
    run_ctx_t rc = {.training = 1, .rng = &r};
    double *t = xcalloc((size_t)reps, sizeof *t);
    for (int k = -1; k < reps; k++) {
        double t0 = now();
        b->ops->forward(b, y, x, act, scratch, B, T, &rc);
        b->ops->backward(b, dx, dy, x, act, scratch, B, T, &rc);
        if (k >= 0) t[k] = 1e3 * (now() - t0);
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    double med = t[reps / 2];
    free(t);
    free(x);
    free(y);
    free(dy);
    free(dx);
    free(act);
    free(scratch);
    model_free(&m);
    return med;
}

int main(int argc, char **argv) {
    int tokens = argc > 1 ? atoi(argv[1]) : 4096, max_ctx = argc > 2 ? atoi(argv[2]) : 4096;
    int reps = argc > 3 ? atoi(argv[3]) : 3, sm_max = argc > 4 ? atoi(argv[4]) : 4096;
    if (tokens < 128 || max_ctx < 128 || reps < 1) {
        fprintf(stderr, "usage: bench_scaling [tokens>=128] [max_ctx>=128] [reps>=1] [softmax_max_ctx]\n");
        return 2;
    }
    const char *kinds[] = {"softmax/none", "performer/none", "linformer/none"};
    const char *names[] = {"softmax", "performer", "linformer"};
    const int dims[][2] = {{128, 4}, {384, 6}};
    double start = now();
    printf("# one mixer layer, forward+backward, batch x ctx = %d tokens, median of %d\n", tokens, reps);
    printf("# performer: features 128, kernel softmax; linformer: chunk 32, k 4, window 0\n");
    for (int di = 0; di < 2; di++) {
        int C = dims[di][0], H = dims[di][1];
        printf("\nd %d, heads %d\n%6s  %-10s %10s %10s %10s\n", C, H, "ctx", "kind", "ms/step", "us/token",
               "x softmax");
        for (int T = 128; T <= max_ctx; T *= 2) {
            int B = tokens / T > 0 ? tokens / T : 1;
            double sm = NAN;
            for (int k = 0; k < 3; k++) {
                if (k == 0 && T > sm_max) {
                    printf("%6d  %-10s %10s %10s %10s\n", T, names[k], "-", "-", "-");
                    continue;
                }
                double ms = time_mixer(kinds[k], C, H, B, T, reps);
                if (k == 0) sm = ms;
                char ratio[32] = "-";
                if (!isnan(sm)) snprintf(ratio, sizeof ratio, "%.2f", ms / sm);
                printf("%6d  %-10s %10.2f %10.3f %10s\n", T, names[k], ms, 1e3 * ms / ((double)B * T), ratio);
                fflush(stdout);
            }
        }
    }
    printf("\n# total %.1f s\n", now() - start);
    return 0;
}
