// bench_train.c — training-step and decode throughput of one model shape (docs/performance.md).
//
//   bench_train [--layers SPEC] [--dim 128] [--heads 4] [--ctx 64] [--batch 12] [--vocab 65]
//               [--steps 30] [--warmup-steps 3] [--threads 0] [--seed 1337] [--pos learned|rope|none|rel]
//               [--memory M] [--stream-pos P] [--init-from CKPT]
//   bench_train --decode [--dim ..] [--reps 20] ...      KV-cached generation instead of training
//   bench_train --decode --positions 10100 --layers '4*performer/mlp' [--reps 3] ...
//                                                          per-token cost early vs late in a long stream
//
// Training mode builds the model from the flags, fills random tokens, and times full optimizer
// steps exactly as train.c's loop makes them: params_zero_grad, model_forward, model_backward,
// model_extra_loss, grad_norm_finite (norm and finiteness), adamw_step_clipped, model_after_step
// (batch drawing excluded: it is a memcpy of B·T ints). It prints one machine-readable line:
//
//   train layers=.. dim=.. ... ms_step=MEDIAN tokens_per_s=.. flops_per_token=.. gflops=.. fwd_ms=..
//         bwd_ms=.. opt_ms=.. peak_rss_mb=..
//
// Model FLOPs per token (nanoGPT's estimate_mfu / llm.c convention, with the causal half of attention):
//   flops_per_token = 6·P_mm + 6·L·T·d
//   P_mm = parameters that take part in a matrix product: per softmax layer 4d² (Wq, Wk, Wv, Wo),
//          per mlp 2·d·hidden (W1, W2), plus V·d for the tied logits product (wte used as lm_head).
//          Biases, LayerNorms and the embedding lookups (wte gather, wpe) are not counted.
//   6 = 2 (multiply-add) × 3 (forward, and backward's two products: dX and dW).
//   6·L·T·d = attention scores Q·Kᵀ and P·V: 2 products × 2 flops × d × T/2 causal keys on average per
//          token = 2·T·d forward, ×3 with backward. nanoGPT counts 12·L·T·d (no causal halving).
// achieved GFLOP/s = flops_per_token · tokens/s; MFU = that / the cblas_sgemm ceiling (sgemm_ceiling).
//
// --memory M (needs --pos rope or none): every step is a segment of B streams with segment memory
// (LONG_CONTEXT.md §2), the memory full (n = M) from the first step, and the segment at stream
// position --stream-pos rounded down to a multiple of ctx, as training's segments are (default
// 100,000: rope angles past the cached table, as in real training streams; the performer's window
// blocks need aligned segments). The state holds zeros: the work is that of a full memory whatever it
// holds.
//
// --init-from CKPT copies the checkpoint's tensors that match by name and shape (train --init-from's
// rule), e.g. to time an adaptive model at its learned spans.
//
// Decode mode times decode_step (the KV-cached path `infer` uses, one thread as infer sets it) over
// full windows of ctx tokens, reps times, and prints tokens/s and the median per-token time at the
// first 8 and the last 8 positions of the window (flat = the cache works; quadratic work would grow).
//
// Decode with --positions P (P ≥ 300) instead decodes one stream of P tokens per rep (random tokens,
// decode_reset between reps; the warm-up rep decodes only the first 200) and prints the median
// per-token time of positions 100–199 and of the last 100, P−100 … P−1, and their ratio:
//
//   decode_positions layers=.. positions=P ... us_token_pos100_199=.. us_token_posA_B=.. late_over_early=..
//
// The first 100 positions are left out so that both windows run with warm caches and branch
// predictors. P may exceed ctx only when every mixer keeps constant-size decode state
// (block_ops_t.unbounded_decode, e.g. performer): decode_step then embeds positions ≥ ctx with
// wpe[ctx−1] (docs/blocks/performer.md). Any other model is refused for P > ctx: its cache is
// bounded by ctx, and `infer` slides the window for it — a different measurement.
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cli/thread_tuner.h"
#include "cli/runtime.h"
#include "base/check.h"
#include "checkpoint/checkpoint.h"
#include "model/model.h"
#include "model/optim.h"
#include "base/rng.h"

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cli_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;  // Linux: kilobytes
}

static void set_threads(int n) {
#ifdef _OPENMP
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
#endif
    openblas_set_num_threads(n > 0 ? n : 1);
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench_train [--layers SPEC] [--dim 128] [--heads 4] [--ctx 64] [--batch 12] [--vocab 65]\n"
            "                   [--steps 30] [--warmup-steps 3] [--threads 0] [--seed 1337] [--decode] [--reps 20]\n"
            "                   [--positions P]   (with --decode: one stream of P tokens, positions 100-199 vs the last 100)\n"
            "                   [--pos learned|rope|none|rel] [--memory M] [--stream-pos P]   (training with segment memory)\n"
            "                   [--init-from CKPT]   (start from a checkpoint's matching tensors)\n");
    exit(EXIT_USAGE);
}

static long int_arg(const char *flag, const char *v, long lo, long hi) {
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) die(EXIT_USAGE, "bench_train: %s expects an integer in [%ld, %ld], got '%s'", flag, lo, hi, v);
    return x;
}

// Model FLOPs per token (see the header comment): 6·P_mm + 6·L·T·d.
static double flops_per_token(const model_t *m, int T) {
    double p_mm = (double)m->dims.vocab * m->dims.dim;  // tied logits
    const param_table_t *pt = &m->params;
    for (int i = 0; i < pt->count; i++) {
        const param_t *p = pt->items[i];
        // Wq,Wk,Wv,Wo,W1,W2 (pkm's Wq too); not pkm's value table, a gather of k rows per head, not a product
        if (p->ndim == 2 && !p->sparse_rows && strncmp(p->name, "layers.", 7) == 0) p_mm += (double)p->numel;
    }
    return 6.0 * p_mm + 6.0 * m->L * (double)T * m->dims.dim;
}

int main(int argc, char **argv) {
    const char *layers = NULL, *init_from = NULL;
    int dim = 128, heads = 4, ctx = 64, batch = 12, vocab = 65, steps = 30, warm = 3, threads = 0, decode = 0, reps = 20, positions = 0;
    long seed = 1337, stream_pos = 100000;
    int memory = 0;
    pos_scheme_t pos = POS_LEARNED;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--decode") == 0) { decode = 1; continue; }
        if (strcmp(a, "--help") == 0) usage();
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (strcmp(a, "--layers") == 0) layers = v;
        else if (strcmp(a, "--dim") == 0) dim = (int)int_arg(a, v, 1, 65536);
        else if (strcmp(a, "--heads") == 0) heads = (int)int_arg(a, v, 1, 4096);
        else if (strcmp(a, "--ctx") == 0) ctx = (int)int_arg(a, v, 1, 1 << 20);
        else if (strcmp(a, "--batch") == 0) batch = (int)int_arg(a, v, 1, 1 << 20);
        else if (strcmp(a, "--vocab") == 0) vocab = (int)int_arg(a, v, 1, 1 << 24);
        else if (strcmp(a, "--steps") == 0) steps = (int)int_arg(a, v, 1, 1 << 20);
        else if (strcmp(a, "--warmup-steps") == 0) warm = (int)int_arg(a, v, 0, 1 << 20);
        else if (strcmp(a, "--threads") == 0) threads = (int)int_arg(a, v, 0, 4096);
        else if (strcmp(a, "--seed") == 0) seed = int_arg(a, v, 0, 1L << 62);
        else if (strcmp(a, "--reps") == 0) reps = (int)int_arg(a, v, 1, 1 << 20);
        else if (strcmp(a, "--positions") == 0) positions = (int)int_arg(a, v, 300, 1 << 26);
        else if (strcmp(a, "--init-from") == 0) init_from = v;
        else if (strcmp(a, "--memory") == 0) memory = (int)int_arg(a, v, 0, 1 << 20);
        else if (strcmp(a, "--stream-pos") == 0) stream_pos = int_arg(a, v, 0, 1L << 30);
        else if (strcmp(a, "--pos") == 0) {
            if (pos_scheme_parse(v, &pos)) die(EXIT_USAGE, "bench_train: --pos expects learned, rope or none, got '%s'", v);
        }
        else {
            fprintf(stderr, "bench_train: unknown flag '%s'\n", a);
            usage();
        }
    }
    if (positions && !decode) die(EXIT_USAGE, "bench_train: --positions goes with --decode");
    if (memory && decode) die(EXIT_USAGE, "bench_train: --memory times training steps; drop --decode");
    char spec_buf[64];
    if (!layers) {
        snprintf(spec_buf, sizeof spec_buf, "4*softmax/mlp");
        layers = spec_buf;
    }
    set_threads(decode ? 1 : threads);
    int nthreads = 1;
#ifdef _OPENMP
    nthreads = omp_get_max_threads();
#endif

    model_dims_t dims = {.vocab = vocab, .dim = dim, .heads = heads, .ctx = ctx, .pos = pos, .memory = memory};
    model_t m;
    char err[1024];
    if (model_build(&m, &dims, layers, err, sizeof err)) die(EXIT_USAGE, "bench_train: %s", err);
    rng_t rng;
    rng_seed(&rng, (uint64_t)seed);
    model_init_weights(&m, &rng);
    if (init_from) {
        int loaded, total;
        char notes[1024];
        if (ckpt_init_from(init_from, &m, (uint64_t)seed, &loaded, &total, notes, sizeof notes, err, sizeof err))
            die(EXIT_USAGE, "bench_train: %s", err);
        fprintf(stderr, "bench_train: %d of %d tensors from %s\n", loaded, total, init_from);
    }
    double fpt = flops_per_token(&m, ctx);

    if (decode && positions) {
        int unbounded = m.L > 0, first_bounded = -1;
        for (int l = 0; l < m.L; l++)
            if (!m.layers[l].mixer.ops->unbounded_decode) {
                unbounded = 0;
                if (first_bounded < 0) first_bounded = l;
            }
        if (!unbounded && positions > ctx)
            die(EXIT_USAGE,
                "bench_train: --positions %d exceeds --ctx %d, and layer %d's mixer '%s' decodes only positions < ctx "
                "(its cache is bounded by ctx). Only models whose every mixer keeps constant-size state (e.g. "
                "performer) decode past ctx; for bounded models `infer` slides the window, which this benchmark "
                "does not measure. Raise --ctx to at least %d, or use an all-performer --layers.",
                positions, ctx, first_bounded, m.layers[first_bounded >= 0 ? first_bounded : 0].mixer.ops->kind, positions);
        size_t cache_floats = 0;
        for (int l = 0; l < m.L; l++)
            cache_floats += m.layers[l].mixer.ops->cache_floats(&m.layers[l].mixer) + m.layers[l].ffn.ops->cache_floats(&m.layers[l].ffn);
        enum { W = 100, E0 = 100 };  // window width; the early window starts at position E0
        int L0 = positions - W;      // the late window: L0 … positions−1
        decode_state_t ds;
        decode_init(&ds, &m);
        int32_t *toks = xmalloc((size_t)positions * sizeof *toks);
        for (int t = 0; t < positions; t++) toks[t] = (int32_t)rng_below(&rng, (uint64_t)vocab);
        double *early = xmalloc((size_t)reps * W * sizeof *early), *late = xmalloc((size_t)reps * W * sizeof *late);
        double *stream = xmalloc((size_t)reps * sizeof *stream);
        volatile float sink = 0;
        for (int r = -1; r < reps; r++) {  // r = -1: a short warm-up
            decode_reset(&ds);
            int n = r < 0 ? 2 * W : positions;
            double ts = cli_now();
            for (int t = 0; t < n; t++) {
                double t0 = cli_now();
                const float *logits = decode_step(&m, &ds, toks[t]);
                double dt = cli_now() - t0;
                sink += logits[0];
                if (r < 0) continue;
                if (t >= E0 && t < E0 + W) early[(size_t)r * W + (t - E0)] = dt;
                if (t >= L0) late[(size_t)r * W + (t - L0)] = dt;
            }
            if (r >= 0) stream[r] = cli_now() - ts;
        }
        double e = median(early, reps * W) * 1e6, l = median(late, reps * W) * 1e6;
        printf("decode_positions layers=%s dim=%d heads=%d ctx=%d vocab=%d threads=1 reps=%d positions=%d "
               "us_token_pos%d_%d=%.1f us_token_pos%d_%d=%.1f late_over_early=%.3f stream_tokens_per_s=%.0f "
               "cache_kib=%.1f peak_rss_mb=%.1f\n",
               layers, dim, heads, ctx, vocab, reps, positions, E0, E0 + W - 1, e, L0, positions - 1, l, l / e,
               positions / median(stream, reps), (double)cache_floats * sizeof(float) / 1024.0, peak_rss_mb());
        (void)sink;
        free(toks);
        free(early);
        free(late);
        free(stream);
        decode_free(&ds);
        model_free(&m);
        return 0;
    }

    if (decode) {
        decode_state_t ds;
        decode_init(&ds, &m);
        int32_t *toks = xmalloc((size_t)ctx * sizeof *toks);
        for (int t = 0; t < ctx; t++) toks[t] = (int32_t)rng_below(&rng, (uint64_t)vocab);
        double *per = xmalloc((size_t)reps * ctx * sizeof *per);
        int edge = ctx >= 16 ? 8 : (ctx + 1) / 2;
        double *early = xmalloc((size_t)reps * edge * sizeof *early), *late = xmalloc((size_t)reps * edge * sizeof *late);
        volatile float sink = 0;
        for (int r = -1; r < reps; r++) {  // r = -1 warms caches up
            decode_reset(&ds);
            for (int t = 0; t < ctx; t++) {
                double t0 = cli_now();
                const float *logits = decode_step(&m, &ds, toks[t]);
                double dt = cli_now() - t0;
                sink += logits[0];
                if (r < 0) continue;
                per[(size_t)r * ctx + t] = dt;
                if (t < edge) early[(size_t)r * edge + t] = dt;
                if (t >= ctx - edge) late[(size_t)r * edge + (t - (ctx - edge))] = dt;
            }
        }
        double total = 0;
        for (int i = 0; i < reps * ctx; i++) total += per[i];
        double rep_time[1024];
        int nr = reps < 1024 ? reps : 1024;
        for (int r = 0; r < nr; r++) {
            rep_time[r] = 0;
            for (int t = 0; t < ctx; t++) rep_time[r] += per[(size_t)r * ctx + t];
        }
        double med_window = median(rep_time, nr);
        double e = median(early, reps * edge) * 1e6, l = median(late, reps * edge) * 1e6;
        printf("decode layers=%s dim=%d heads=%d ctx=%d vocab=%d threads=1 reps=%d tokens_per_s=%.0f "
               "tokens_per_s_mean=%.0f us_token_first%d=%.1f us_token_last%d=%.1f late_over_early=%.2f peak_rss_mb=%.1f\n",
               layers, dim, heads, ctx, vocab, reps, ctx / med_window, reps * ctx / total, edge, e, edge, l, l / e,
               peak_rss_mb());
        (void)sink;
        free(toks);
        free(per);
        free(early);
        free(late);
        decode_free(&ds);
        model_free(&m);
        return 0;
    }

    model_alloc_acts(&m, batch, ctx, 0.0f);
    size_t BT = (size_t)batch * ctx;
    int32_t *x = xmalloc(BT * sizeof *x), *y = xmalloc(BT * sizeof *y);
    for (size_t i = 0; i < BT; i++) {
        x[i] = (int32_t)rng_below(&rng, (uint64_t)vocab);
        y[i] = (int32_t)rng_below(&rng, (uint64_t)vocab);
    }
    adamw_cfg_t acfg = {.beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.1f};
    run_ctx_t rc = {.training = 1, .dropout = 0.0f, .rng = &rng};
    seg_mem_t mem;
    if (memory) {  // a full memory from the first step, the segment far into its streams
        model_mem_init(&mem, &m, batch);
        mem.n = memory;
        long p0 = stream_pos > memory ? stream_pos : memory;
        mem.pos0 = p0 / ctx * ctx < memory ? (p0 + ctx - 1) / ctx * ctx : p0 / ctx * ctx;  // ctx-aligned, ≥ M
        rc.mem = &mem;
    }
    double *t_step = xmalloc((size_t)steps * sizeof(double)), *t_fwd = xmalloc((size_t)steps * sizeof(double)),
           *t_bwd = xmalloc((size_t)steps * sizeof(double)), *t_opt = xmalloc((size_t)steps * sizeof(double));
    double first_loss = 0, last_loss = 0, t_all = 0;
    // --threads 0: the thread count follows the load as in train (cli/thread_tuner.h)
    thread_tuner_t tuner;
    int tune = threads == 0 && nthreads >= 2;
    tuner_init(&tuner, nthreads);
    for (int s = -warm; s < steps; s++) {
        long step = s + warm + 1;
        if (tune) cli_use_threads(tuner_next(&tuner));
        double t0 = cli_now();
        params_zero_grad(&m.params);
        model_before_step(&m, step, &rng);
        float loss = model_forward(&m, x, y, batch, ctx, &rc);
        double t1 = cli_now();
        model_backward(&m, 1.0f, &rc);
        double t2 = cli_now();
        model_extra_loss(&m, 1);
        double gnorm;
        if (!isfinite(loss) || !grad_norm_finite(&m.params, &gnorm)) die(EXIT_RUNTIME, "bench_train: non-finite loss at step %ld", step);
        adamw_step_clipped(&m.params, &acfg, 1e-3f, step, gnorm > 1.0 ? (float)(1.0 / gnorm) : 1.0f);
        model_after_step(&m, step, &rng);
        double t3 = cli_now();
        if (tune) tuner_done(&tuner, t3 - t0, stderr);
        if (s == -warm) first_loss = loss;
        last_loss = loss;
        if (s < 0) continue;
        // zero_grad is counted with the forward, extra loss + clip + AdamW as the optimizer
        t_fwd[s] = t1 - t0;
        t_bwd[s] = t2 - t1;
        t_opt[s] = t3 - t2;
        t_step[s] = t3 - t0;
        t_all += t3 - t0;
    }
    double ms = median(t_step, steps) * 1e3;
    double tps = (double)BT / (ms * 1e-3);
    // tokens_per_s: at the median step; tokens_per_s_mean: every timed step's tokens over their total time
    printf("train layers=%s dim=%d heads=%d ctx=%d batch=%d vocab=%d pos=%s memory=%d threads=%d threads_end=%d steps=%d "
           "ms_step=%.3f tokens_per_s=%.0f tokens_per_s_mean=%.0f "
           "flops_per_token=%.0f gflops=%.2f fwd_ms=%.3f bwd_ms=%.3f opt_ms=%.3f loss_first=%.4f loss_last=%.4f "
           "peak_rss_mb=%.1f\n",
           layers, dim, heads, ctx, batch, vocab, pos_scheme_name(pos), memory, nthreads, tune ? tuner.cur : nthreads, steps,
           ms, tps, (double)BT * steps / t_all, fpt, fpt * tps * 1e-9, median(t_fwd, steps) * 1e3,
           median(t_bwd, steps) * 1e3, median(t_opt, steps) * 1e3, first_loss, last_loss, peak_rss_mb());
    if (memory) model_mem_free(&mem);
    free(x);
    free(y);
    free(t_step);
    free(t_fwd);
    free(t_bwd);
    free(t_opt);
    model_free(&m);
    return 0;
}
