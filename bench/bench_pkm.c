// bench_pkm.c — does a product-key memory cost about what the mlp it replaces costs, whatever its
// slot count? (BLOCKS.md §4, docs/blocks/pkm.md.) Times one ffn block's full training step at the
// default training shape (d 128, batch 12, ctx 64 → N = 768 rows, as bench_train's default): zeroing
// its gradients, forward, backward, the global norm (which decides finiteness too), and clipping + the
// AdamW update of its own parameter table (train.c's calls; the values table as sparse rows, lazy Adam,
// whose gradient rows that walk also zeroes), each phase timed. Arms: mlp (hidden 4d)
// and pkm at the given slot counts with BLOCKS.md's defaults (k 32, heads 4, dk 128), interleaved round
// by round so machine load hits all alike; prints medians (wall time by phase, and the step's CPU time,
// which load inflates far less), the ratio to mlp, and each arm's memory (parameters, gradient, Adam
// moments, activations).
//   build/release/bench/bench_pkm [rounds 7] [slots 16384,262144] [--threads N]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cli/runtime.h"
#include "model/block.h"
#include "base/check.h"
#include "model/optim.h"
#include "model/spec.h"

enum { MAX_ARMS = 8, MAX_ROUNDS = 64 };

typedef struct {
    char label[64];
    block_t blk;
    param_table_t pt;
    float *act, *scratch;
    double t_zero[MAX_ROUNDS], t_fwd[MAX_ROUNDS], t_bwd[MAX_ROUNDS], t_norm[MAX_ROUNDS], t_adam[MAX_ROUNDS], t_all[MAX_ROUNDS];
    double t_cpu[MAX_ROUNDS];  // the step's CPU time, every thread's (spin-waits included)
    size_t touched;
} arm_t;

// CPU time of the process, every thread's, in seconds: under load it counts what the step computed, not
// the time other processes held the cores.
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double median(double *v, int n) {
    double w[MAX_ROUNDS];
    memcpy(w, v, (size_t)n * sizeof *w);
    qsort(w, (size_t)n, sizeof *w, cli_cmp_double);
    return n % 2 ? w[n / 2] : 0.5 * (w[n / 2 - 1] + w[n / 2]);
}

static void arm_init(arm_t *a, const char *ffn_spec, const model_dims_t *d, int N) {
    char full[128], err[512];
    snprintf(full, sizeof full, "softmax/%s", ffn_spec);
    spec_layer_t *layers;
    int L;
    if (spec_parse(full, &layers, &L, err, sizeof err)) die(EXIT_USAGE, "bench_pkm: %s", err);
    const block_ops_t *ops = block_find(layers[0].ffn.kind);
    if (!ops || ops->role != ROLE_FFN) die(EXIT_USAGE, "bench_pkm: '%s' is not an ffn", layers[0].ffn.kind);
    a->blk = (block_t){.ops = ops, .dims = d, .layer = 0};
    if (ops->configure(&a->blk, &layers[0].ffn, err, sizeof err)) die(EXIT_USAGE, "bench_pkm: %s", err);
    free(layers);
    ops->describe(&a->blk, a->label, sizeof a->label);
    params_init_table(&a->pt);
    ops->register_params(&a->blk, &a->pt, "ffn.");
    params_allocate(&a->pt);
    rng_t r;
    rng_seed(&r, 7);
    params_init_values(&a->pt, &r);
    a->act = xalloc_floats(ops->act_floats(&a->blk, 1, N));
    a->scratch = xalloc_floats(ops->scratch_floats(&a->blk, 1, N));
}

static void arm_step(arm_t *a, int rep, float *y, float *dx, const float *x, const float *dy, int N, long t) {
    const adamw_cfg_t cfg = {0.9f, 0.99f, 1e-8f, 0.1f};
    run_ctx_t rc = {.training = 1};
    double c0 = cpu_now(), t0 = cli_now();
    params_zero_grad(&a->pt);
    double t1 = cli_now();
    a->blk.ops->forward(&a->blk, y, x, a->act, a->scratch, 1, N, &rc);
    double t2 = cli_now();
    memset(dx, 0, (size_t)N * a->blk.dims->dim * sizeof(float));
    a->blk.ops->backward(&a->blk, dx, dy, x, a->act, a->scratch, 1, N, &rc);
    double t3 = cli_now();
    double norm;
    if (!grad_norm_finite(&a->pt, &norm)) die(EXIT_RUNTIME, "bench_pkm: non-finite gradient");
    double t4 = cli_now();
    a->touched = 0;  // (adamw_step_clipped empties the lists)
    for (int i = 0; i < a->pt.count; i++) a->touched += a->pt.items[i]->n_touched;
    adamw_step_clipped(&a->pt, &cfg, 1e-3f, t, norm > 1.0 ? (float)(1.0 / norm) : 1.0f);
    double t5 = cli_now(), c5 = cpu_now();
    if (rep < 0) return;
    a->t_cpu[rep] = c5 - c0;
    a->t_zero[rep] = t1 - t0;
    a->t_fwd[rep] = t2 - t1;
    a->t_bwd[rep] = t3 - t2;
    a->t_norm[rep] = t4 - t3;
    a->t_adam[rep] = t5 - t4;
    a->t_all[rep] = t5 - t0;
}

int main(int argc, char **argv) {
    int rounds = 7, threads = 0;
    const char *slot_list = "16384,262144";
    int pos = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (pos == 0 && (pos = 1)) rounds = atoi(argv[i]);
        else slot_list = argv[i];
    }
    if (rounds < 1 || rounds > MAX_ROUNDS) die(EXIT_USAGE, "usage: bench_pkm [rounds 1..64] [slots,slots,...] [--threads N]");
    cli_set_threads(threads);
    int nthreads = 1;
#ifdef _OPENMP
    nthreads = omp_get_max_threads();
#endif
    const int C = 128, B = 12, T = 64, N = B * T;
    model_dims_t d = {.vocab = 65, .dim = C, .heads = 4, .ctx = T, .n_layers = 4};
    arm_t *arms = xcalloc(MAX_ARMS, sizeof *arms);
    int na = 0;
    arm_init(&arms[na++], "mlp", &d, N);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", slot_list);
    for (char *tok = strtok(buf, ","); tok && na < MAX_ARMS; tok = strtok(NULL, ",")) {
        char spec[64];
        snprintf(spec, sizeof spec, "pkm(slots=%s)", tok);
        arm_init(&arms[na++], spec, &d, N);
    }
    size_t n = (size_t)N * C;
    float *x = xalloc_floats(n), *y = xalloc_floats(n), *dx = xalloc_floats(n), *dy = xalloc_floats(n);
    rng_t r;
    rng_seed(&r, 3);
    for (size_t i = 0; i < n; i++) {
        x[i] = rng_normal(&r);
        dy[i] = 1e-3f * rng_normal(&r);
    }
    for (int k = 0; k < na; k++) arm_step(&arms[k], -1, y, dx, x, dy, N, 1);  // warm-up
    for (int rep = 0; rep < rounds; rep++)
        for (int k = 0; k < na; k++) arm_step(&arms[k], rep, y, dx, x, dy, N, rep + 2);
    printf("bench_pkm: one ffn's training step (zero grad, forward, backward, norm+finite, clip+AdamW(+zero sparse)), d %d, N = %d x %d rows, "
           "%d threads, median of %d interleaved rounds (ms)\n", C, B, T, nthreads, rounds);
    double base = median(arms[0].t_all, rounds), cpu_base = median(arms[0].t_cpu, rounds);
    for (int k = 0; k < na; k++) {
        arm_t *a = &arms[k];
        double all = median(a->t_all, rounds);
        size_t pbytes = a->pt.total * sizeof(float);
        double act_mb = (double)(a->blk.ops->act_floats(&a->blk, 1, N) + a->blk.ops->scratch_floats(&a->blk, 1, N)) * 4 / 1e6;
        printf("  %-36s step %8.2f (zero %5.2f | fwd %7.2f | bwd %7.2f | norm+finite %5.2f | clip+adam %5.2f)  x%.2f of mlp  "
               "| cpu %8.2f x%.2f | params %.1f MB, +grad %.1f, +Adam m,v %.1f MB, acts+scratch %.1f MB | rows updated %zu\n",
               a->label, 1e3 * all, 1e3 * median(a->t_zero, rounds), 1e3 * median(a->t_fwd, rounds),
               1e3 * median(a->t_bwd, rounds), 1e3 * median(a->t_norm, rounds), 1e3 * median(a->t_adam, rounds),
               all / base, 1e3 * median(a->t_cpu, rounds), median(a->t_cpu, rounds) / cpu_base, pbytes / 1e6, pbytes / 1e6, 2 * pbytes / 1e6, act_mb, a->touched);
    }
    printf("ratio pkm/mlp step:");
    for (int k = 1; k < na; k++) printf(" %s %.2fx", arms[k].label, median(arms[k].t_all, rounds) / base);
    printf(" (CPU time:");
    for (int k = 1; k < na; k++) printf(" %.2fx", median(arms[k].t_cpu, rounds) / cpu_base);
    printf(")\n");
    for (int k = 0; k < na; k++) {
        if (arms[k].blk.ops->free_priv) arms[k].blk.ops->free_priv(&arms[k].blk);
        free(arms[k].blk.priv);
        params_free(&arms[k].pt);
        free(arms[k].act);
        free(arms[k].scratch);
    }
    free(arms);
    free(x), free(y), free(dx), free(dy);
    return 0;
}
