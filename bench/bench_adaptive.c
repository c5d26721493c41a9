// bench_adaptive.c — does compute follow the learned span? Times forward+backward of one attention
// mixer at long context: softmax vs adaptive with short spans (z + R ≤ 128) vs adaptive at full span,
// interleaved round by round so machine load hits all alike; prints medians and ratios, for the whole
// mixer and for the attention core (mixer minus the identical Q/K/V and output projections, timed
// on their own).
//   build/release/bench/bench_adaptive [ctx 1024] [batch 2] [rounds 7]      (dim 128, heads 4)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blocks/attn_span.h"
#include "cli/runtime.h"
#include "base/check.h"
#include "model/model.h"
#include "model/ops.h"

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cli_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct {
    const char *label;
    model_t m;
    block_t *blk;
    float *act, *scratch;
} arm_t;

static void arm_init(arm_t *a, const char *label, const char *spec, const model_dims_t *d, int B, int T, float ztilde) {
    char err[512];
    a->label = label;
    if (model_build(&a->m, d, spec, err, sizeof err)) die(EXIT_USAGE, "%s", err);
    rng_t r;
    rng_seed(&r, 1);
    model_init_weights(&a->m, &r);
    a->blk = &a->m.layers[0].mixer;
    param_t *s = params_find(&a->m.params, "layers.0.attn.span");
    if (s)
        for (size_t h = 0; h < s->numel; h++) s->data[h] = ztilde;
    a->act = xalloc_floats(a->blk->ops->act_floats(a->blk, B, T));
    a->scratch = xalloc_floats(a->blk->ops->scratch_floats(a->blk, B, T));
}

static double arm_time(arm_t *a, float *y, float *dx, const float *x, int B, int T) {
    rng_t r;
    rng_seed(&r, 2);
    run_ctx_t rc = {.training = 1, .rng = &r};
    double t0 = cli_now();
    a->blk->ops->forward(a->blk, y, x, a->act, a->scratch, B, T, &rc);
    a->blk->ops->backward(a->blk, dx, y, x, a->act, a->scratch, B, T, &rc);
    return cli_now() - t0;
}

int main(int argc, char **argv) {
    int T = argc > 1 ? atoi(argv[1]) : 1024, B = argc > 2 ? atoi(argv[2]) : 2, rounds = argc > 3 ? atoi(argv[3]) : 7;
    if (T < 256 || B < 1 || rounds < 1) die(EXIT_USAGE, "usage: bench_adaptive [ctx >= 256] [batch] [rounds]");
    int C = 128, H = 4, N = B * T;
    model_dims_t d = {.vocab = 256, .dim = C, .heads = H, .ctx = T};
    float zshort = 96.0f / (float)T;  // z = 96 tokens, R 32: every head reads 128 keys at most
    enum { ARMS = 3 };
    arm_t arms[ARMS];
    arm_init(&arms[0], "softmax", "softmax/none", &d, B, T, 0);
    arm_init(&arms[1], "adaptive z+R=128", "adaptive(ramp=32)/none", &d, B, T, zshort);
    arm_init(&arms[2], "adaptive z=ctx", "adaptive(ramp=32)/none", &d, B, T, 1.0f);
    size_t n = (size_t)N * C;
    float *x = xalloc_floats(n), *y = xalloc_floats(n), *dx = xalloc_floats(n);
    float *qkv = xalloc_floats(3 * n), *dqkv = xalloc_floats(3 * n), *w = xalloc_floats((size_t)4 * C * C);
    float *dw = xalloc_floats((size_t)4 * C * C), *bias = xalloc_floats(4 * (size_t)C), *db = xalloc_floats(4 * (size_t)C);
    rng_t r;
    rng_seed(&r, 3);
    for (size_t i = 0; i < n; i++) x[i] = rng_normal(&r);
    for (size_t i = 0; i < (size_t)4 * C * C; i++) w[i] = 0.02f * rng_normal(&r);
    double t[ARMS + 1][64];
    if (rounds > 64) rounds = 64;
    for (int k = 0; k < ARMS; k++) arm_time(&arms[k], y, dx, x, B, T);  // warm-up
    for (int rep = 0; rep < rounds; rep++) {
        for (int k = 0; k < ARMS; k++) t[k][rep] = arm_time(&arms[k], y, dx, x, B, T);
        // the projections every arm shares: qkv = x·Wqkvᵀ, y = heads·Woᵀ, and their backward
        double t0 = cli_now();
        matmul_forward(qkv, x, w, bias, N, C, 3 * C);
        matmul_forward(y, x, w + 3 * C * C, bias, N, C, C);
        matmul_backward(dx, dw + 3 * C * C, db, y, x, w + 3 * C * C, N, C, C);
        matmul_backward(dx, dw, db, qkv, x, w, N, C, 3 * C);
        t[ARMS][rep] = cli_now() - t0;
    }
    double med[ARMS + 1];
    for (int k = 0; k <= ARMS; k++) med[k] = median(t[k], rounds);
    printf("bench_adaptive: one mixer forward+backward, B %d, ctx %d, dim %d, heads %d, median of %d rounds (ms)\n", B, T,
           C, H, rounds);
    printf("  projections alone (shared by all)   %8.2f\n", 1e3 * med[ARMS]);
    for (int k = 0; k < ARMS; k++) {
        double core = med[k] - med[ARMS];
        printf("  %-20s mixer %8.2f  core %8.2f", arms[k].label, 1e3 * med[k], 1e3 * core);
        if (k) printf("  (score entries %lld)", ((attn_span_t *)arms[k].blk->priv)->keys_scored);
        printf("\n");
    }
    double core0 = med[0] - med[ARMS], core1 = med[1] - med[ARMS], core2 = med[2] - med[ARMS];
    printf("ratio softmax/adaptive(z+R=128): mixer %.2fx, core %.2fx\n", med[0] / med[1], core0 / core1);
    printf("ratio adaptive(z=ctx)/softmax (overhead of the span path at full span): mixer %.2fx, core %.2fx\n",
           med[2] / med[0], core2 / core0);
    for (int k = 0; k < ARMS; k++) {
        free(arms[k].act);
        free(arms[k].scratch);
        model_free(&arms[k].m);
    }
    free(x), free(y), free(dx), free(qkv), free(dqkv), free(w), free(dw), free(bias), free(db);
    return 0;
}
