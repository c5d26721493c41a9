// bench_scaling.c — step time and activation memory of one mixer layer against context length:
// softmax (quadratic), performer (linear) and linformer (quadratic / (c/k)), at d 128 (4 heads) and
// d 384 (6 heads). Batch × ctx is held fixed (tokens per step), so a linear kind's µs per token stays
// flat while softmax's grows with ctx. Times forward + backward of the mixer alone (no LayerNorm, ffn,
// embeddings), median of `reps` runs after one warm-up (the mean of the middle two for even reps),
// in one process, so the ratios to softmax are side by side (ARCHITECTURE.md §8: quote ratios, not
// lone absolute times).
//   usage: bench_scaling [tokens=4096] [max_ctx=4096] [reps=3] [softmax_max_ctx=4096] [--png DIR]
// Run time is proportional to reps + 1 (the warm-up) and dominated by the d 384 rows and by softmax at
// ctx 2048–4096: reps=1 took 26 s on the shared 2-core machine while two other processes kept both
// cores busy, so the defaults take about twice that there. Softmax above softmax_max_ctx is skipped
// (printed "-"): its T×T probabilities and their gradient take 2·B·H·T² floats (0.8 GB at ctx 4096,
// d 384). With batch × ctx fixed, softmax's quadratic part costs tokens·ctx, so its time per token
// grows linearly with ctx while the projections' part stays constant.
//
// Columns besides the times:
//   act MiB   the layer's activation memory for one step, exactly (act_floats + scratch_floats)(B,T)
//             × 4 bytes: act is what forward saves for backward, which model_alloc_acts carves once
//             per layer; scratch is the working space, which the model allocates once and shares
//             between layers (sized by the largest block's need), so it is counted once. This is the
//             part of a step's memory that scales with ctx (parameters and the B·T·C inputs/outputs
//             are the same for every kind and ctx at fixed tokens per step).
//   RSS MiB   the process's peak resident set (getrusage ru_maxrss) after the row. ru_maxrss never
//             decreases, so it is an upper envelope over every row run so far, not the row's own use.
// Then a log-log plot of µs per token against ctx, one panel per width, is drawn by gnuplot to
// DIR/scaling.png (DIR = --png, default bench/out, created if missing).
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/gnuplot.h"
#include "cli/runtime.h"
#include "base/check.h"
#include "model/model.h"

static double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;  // Linux: kilobytes
}

// Median ms of forward+backward of layer 0's mixer of `spec` at (B, T), width C, heads H; the
// floats its act + scratch take go to *mem_floats.
static double time_mixer(const char *spec, int C, int H, int B, int T, int reps, size_t *mem_floats) {
    model_dims_t d = {.vocab = 8, .dim = C, .heads = H, .ctx = T};
    model_t m;
    char err[256];
    if (model_build(&m, &d, spec, err, sizeof err)) die(EXIT_RUNTIME, "%s: %s", spec, err);
    rng_t r;
    rng_seed(&r, 1);
    model_init_weights(&m, &r);
    block_t *b = &m.layers[0].mixer;
    size_t n = (size_t)B * T * C;
    size_t n_act = b->ops->act_floats(b, B, T), n_scratch = b->ops->scratch_floats(b, B, T);
    *mem_floats = n_act + n_scratch;
    float *x = xalloc_floats(n), *y = xalloc_floats(n), *dy = xalloc_floats(n), *dx = xalloc_floats(n);
    float *act = xalloc_floats(n_act), *scratch = xalloc_floats(n_scratch);
    for (size_t i = 0; i < n; i++) {
        x[i] = rng_normal(&r);
        dy[i] = 1e-3f * rng_normal(&r);
    }
    run_ctx_t rc = {.training = 1, .rng = &r};
    double *t = xcalloc((size_t)reps, sizeof *t);
    for (int k = -1; k < reps; k++) {
        double t0 = cli_now();
        b->ops->forward(b, y, x, act, scratch, B, T, &rc);
        b->ops->backward(b, dx, dy, x, act, scratch, B, T, &rc);
        if (k >= 0) t[k] = 1e3 * (cli_now() - t0);
    }
    qsort(t, (size_t)reps, sizeof *t, cli_cmp_double);
    double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
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

enum { NKIND = 3, NDIM = 2, MAX_ROWS = 32 };

typedef struct {
    int n;                           // ctx values
    int ctx[MAX_ROWS];
    double us[NDIM][MAX_ROWS][NKIND];  // µs per token, NAN where skipped
} results_t;

static const char *const NAMES[NKIND] = {"softmax", "performer", "linformer"};
static const char *const COLORS[NKIND] = {"#d62728", "#1f77b4", "#2ca02c"};

static int mkdir_p(const char *dir) {
    char buf[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char keep = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        buf[i] = keep;
    }
    struct stat st;
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

// Two panels side by side (d 128 | d 384) on one shared log-log scale, drawn by gnuplot (cli/gnuplot.h):
// the rows as datablocks ("-" where a kind was skipped), one line per kind. Returns 0 or -1 with err.
static int write_plot(const char *path, const results_t *res, const int dims[][2], int tokens, char *err, size_t errlen) {
    char *body = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&body, &len);
    CHECK(f != NULL);
    double lo = INFINITY, hi = 0;
    for (int di = 0; di < NDIM; di++) {
        fprintf(f, "$d%d << EOD\n", di);
        for (int i = 0; i < res->n; i++) {
            fprintf(f, "%d", res->ctx[i]);
            for (int k = 0; k < NKIND; k++) {
                double v = res->us[di][i][k];
                if (isfinite(v) && v > 0) {
                    fprintf(f, " %.6g", v);
                    lo = v < lo ? v : lo;
                    hi = v > hi ? v : hi;
                } else {
                    fprintf(f, " -");
                }
            }
            fprintf(f, "\n");
        }
        fprintf(f, "EOD\n");
    }
    if (!(hi > 0)) lo = 1, hi = 10;
    fprintf(f, "set datafile missing '-'\nset logscale xy\nset grid xtics ytics mytics lc rgb '#cccccc', lc rgb '#eeeeee'\n"
               "set xrange [%g:%g]\nset yrange [%g:%g]\nset xtics (", res->ctx[0] / 1.25, res->ctx[res->n - 1] * 1.25,
            pow(10, floor(log10(lo))), pow(10, ceil(log10(hi))));
    for (int i = 0; i < res->n; i++) fprintf(f, "%s'%d' %d", i ? ", " : "", res->ctx[i], res->ctx[i]);
    fprintf(f, ")\nset xlabel 'ctx (log scale)'\nset ylabel 'us per token (log scale)'\nset key top left box opaque\n"
               "set multiplot layout 1,%d title 'one mixer layer, forward + backward, batch x ctx = %d tokens'\n",
            NDIM, tokens);
    for (int di = 0; di < NDIM; di++) {
        fprintf(f, "set title 'd %d, %d heads'\nplot ", dims[di][0], dims[di][1]);
        for (int k = 0; k < NKIND; k++)
            fprintf(f, "%s$d%d using 1:%d with linespoints lw 2 pt %d ps 1.3 lc rgb '%s' title '%s'", k ? ", " : "", di,
                    k + 2, 5 + 2 * k, COLORS[k], NAMES[k]);
        fprintf(f, "\n");
    }
    fprintf(f, "unset multiplot\n");
    fclose(f);
    int rc = gnuplot_png(path, 1280, 560, body, "the scaling plot", err, errlen);
    free(body);
    return rc;
}

static void usage(void) {
    fprintf(stderr, "usage: bench_scaling [tokens>=128] [max_ctx>=128] [reps>=1] [softmax_max_ctx] [--png DIR]\n");
    exit(EXIT_USAGE);
}

int main(int argc, char **argv) {
    int pos[4] = {4096, 4096, 3, 4096}, npos = 0;
    const char *png_dir = "bench/out";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--png") == 0) {
            if (i + 1 >= argc || !argv[i + 1][0]) usage();
            png_dir = argv[++i];
        } else if (argv[i][0] == '-' || npos == 4) {
            usage();
        } else {
            pos[npos++] = atoi(argv[i]);
        }
    }
    int tokens = pos[0], max_ctx = pos[1], reps = pos[2], sm_max = pos[3];
    if (tokens < 128 || max_ctx < 128 || reps < 1) usage();
    const char *kinds[NKIND] = {"softmax/none", "performer/none", "linformer/none"};
    const int dims[NDIM][2] = {{128, 4}, {384, 6}};
    results_t res = {0};
    for (int T = 128; T <= max_ctx && res.n < MAX_ROWS; T *= 2) res.ctx[res.n++] = T;
    double start = cli_now();
    printf("# one mixer layer, forward+backward, batch x ctx = %d tokens, median of %d\n", tokens, reps);
    printf("# performer: features 128, kernel softmax; linformer: chunk 32, k 4, window 0\n");
    printf("# act MiB: one layer's activation memory per step = the block's (act_floats + scratch_floats)(B, T)\n"
           "#   x 4 bytes, as the model allocates it: the part of a step's memory that scales with ctx\n");
    printf("# RSS MiB: process peak RSS (getrusage ru_maxrss) after the row; monotone, so an upper envelope\n");
    for (int di = 0; di < NDIM; di++) {
        int C = dims[di][0], H = dims[di][1];
        printf("\nd %d, heads %d\n%6s  %-10s %10s %10s %10s %10s %10s\n", C, H, "ctx", "kind", "ms/step", "us/token",
               "x softmax", "act MiB", "RSS MiB");
        for (int i = 0; i < res.n; i++) {
            int T = res.ctx[i];
            int B = tokens / T > 0 ? tokens / T : 1;
            double sm = NAN;
            for (int k = 0; k < NKIND; k++) {
                res.us[di][i][k] = NAN;
                if (k == 0 && T > sm_max) {
                    printf("%6d  %-10s %10s %10s %10s %10s %10s\n", T, NAMES[k], "-", "-", "-", "-", "-");
                    continue;
                }
                size_t mem = 0;
                double ms = time_mixer(kinds[k], C, H, B, T, reps, &mem);
                if (k == 0) sm = ms;
                char ratio[32] = "-";
                if (!isnan(sm)) snprintf(ratio, sizeof ratio, "%.2f", ms / sm);
                res.us[di][i][k] = 1e3 * ms / ((double)B * T);
                printf("%6d  %-10s %10.2f %10.3f %10s %10.1f %10.1f\n", T, NAMES[k], ms, res.us[di][i][k], ratio,
                       (double)mem * sizeof(float) / (1024.0 * 1024.0), peak_rss_mib());
                fflush(stdout);
            }
        }
    }
    char path[4200], err[1024];
    snprintf(path, sizeof path, "%s/scaling.png", png_dir);
    if (mkdir_p(png_dir) != 0)
        fprintf(stderr, "bench_scaling: cannot create '%s': %s (no plot)\n", png_dir, strerror(errno));
    else if (write_plot(path, &res, dims, tokens, err, sizeof err) != 0)
        fprintf(stderr, "bench_scaling: %s\n", err);
    else
        printf("\n# plot: %s (us per token vs ctx, log-log, one panel per width)\n", path);
    printf("\n# total %.1f s\n", cli_now() - start);
    return 0;
}
