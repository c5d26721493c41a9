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
// Then a log-log plot of µs per token against ctx, one panel per width, is written to
// DIR/scaling.png (DIR = --png, default bench/out, created if missing).
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include <stb_image_write.h>  // implementation compiled once into libattnlab.a (cli/spans_png.c)

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

// ---------------------------------------------------------------------------------------------
// The plot: an RGB canvas, a 5×7 pixel font, lines, markers.

typedef struct {
    int w, h;
    uint8_t *px;
} canvas_t;

typedef struct {
    uint8_t r, g, b;
} rgb_t;

static void put(canvas_t *cv, int x, int y, rgb_t c) {
    if (x < 0 || y < 0 || x >= cv->w || y >= cv->h) return;
    uint8_t *p = cv->px + ((size_t)y * cv->w + x) * 3;
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
}

static void fill_rect(canvas_t *cv, int x0, int y0, int x1, int y1, rgb_t c) {  // inclusive
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) put(cv, x, y, c);
}

// Bresenham with a (2r+1)² square brush.
static void line(canvas_t *cv, int x0, int y0, int x1, int y1, int r, rgb_t c) {
    int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1, dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1, e = dx + dy;
    for (;;) {
        fill_rect(cv, x0 - r, y0 - r, x0 + r, y0 + r, c);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) {
            e += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            e += dx;
            y0 += sy;
        }
    }
}

// shape 0 square, 1 disc, 2 diamond, radius r
static void marker(canvas_t *cv, int cx, int cy, int shape, int r, rgb_t c) {
    for (int y = -r; y <= r; y++)
        for (int x = -r; x <= r; x++) {
            int in = shape == 0 ? 1 : shape == 1 ? x * x + y * y <= r * r + r : abs(x) + abs(y) <= r + 1;
            if (in) put(cv, cx + x, cy + y, c);
        }
}

// 5×7 glyphs: the 7 rows of 5 pixels, top to bottom, '#' = ink. Lowercase, digits, some punctuation.
static const struct {
    char c;
    char rows[36];
} GLYPHS[] = {
    {'0', ".###.#...##..###.#.###..##...#.###."},
    {'1', "..#...##....#....#....#....#...###."},
    {'2', ".###.#...#....#...#...#...#...#####"},
    {'3', "#####...#...#.....#.....##...#.###."},
    {'4', "...#...##..#.#.#..#.#####...#....#."},
    {'5', "######....####.....#....##...#.###."},
    {'6', "..##..#...#....####.#...##...#.###."},
    {'7', "#####....#...#...#...#....#....#..."},
    {'8', ".###.#...##...#.###.#...##...#.###."},
    {'9', ".###.#...##...#.####....#...#..##.."},
    {'a', "...........###.....#.#####...#.####"},
    {'b', "#....#....#.##.##..##...##...#####."},
    {'c', "...........###.#....#....#...#.###."},
    {'d', "....#....#.##.##..###...##...#.####"},
    {'e', "...........###.#...#######.....###."},
    {'f', "..##..#..#.#...###...#....#....#..."},
    {'g', "...........#####...#.####....#.###."},
    {'h', "#....#....#.##.##..##...##...##...#"},
    {'i', "..#........##....#....#....#...###."},
    {'j', "...#........##....#....#.#..#..##.."},
    {'k', "#....#....#..#.#.#..##...#.#..#..#."},
    {'l', ".##....#....#....#....#....#...###."},
    {'m', "..........##.#.#.#.##.#.##...##...#"},
    {'n', "..........#.##.##..##...##...##...#"},
    {'o', "...........###.#...##...##...#.###."},
    {'p', "..........####.#...#####.#....#...."},
    {'q', "...........#####...#.####....#....#"},
    {'r', "..........#.##.##..##....#....#...."},
    {'s', "...........###.#.....###.....#####."},
    {'t', ".#....#...###...#....#....#..#..##."},
    {'u', "..........#...##...##...##..##.##.#"},
    {'v', "..........#...##...##...#.#.#...#.."},
    {'w', "..........#...##...##.#.##.#.#.#.#."},
    {'x', "..........#...#.#.#...#...#.#.#...#"},
    {'y', "..........#...##...#.####....#.###."},
    {'z', "..........#####...#...#...#...#####"},
    {'.', "..........................##...##.."},
    {',', ".....................##....#...#..."},
    {'/', ".........#...#...#...#...#........."},
    {'-', "...............#####..............."},
    {'(', "...#...#...#....#....#.....#.....#."},
    {')', ".#.....#.....#....#....#...#...#..."},
    {'+', ".......#....#..#####..#....#......."},
    {'=', "..........#####.....#####.........."},
    {':', "......##...##........##...##......."},
};

static const char *glyph(char ch) {
    for (size_t i = 0; i < sizeof GLYPHS / sizeof GLYPHS[0]; i++)
        if (GLYPHS[i].c == ch) return GLYPHS[i].rows;
    return NULL;  // space and anything unknown: blank
}

enum { FONT_SCALE = 2, ADV = 6 * FONT_SCALE, TEXT_H = 7 * FONT_SCALE };

static int text_w(const char *s) { return (int)strlen(s) * ADV - FONT_SCALE; }

static void text(canvas_t *cv, int x, int y, const char *s, rgb_t c) {  // (x, y) = top left
    for (; *s; s++, x += ADV) {
        const char *g = glyph(*s);
        if (!g) continue;
        for (int r = 0; r < 7; r++)
            for (int k = 0; k < 5; k++)
                if (g[r * 5 + k] == '#') fill_rect(cv, x + k * FONT_SCALE, y + r * FONT_SCALE, x + k * FONT_SCALE + FONT_SCALE - 1, y + r * FONT_SCALE + FONT_SCALE - 1, c);
    }
}

enum { NKIND = 3, NDIM = 2, MAX_ROWS = 32 };

typedef struct {
    int n;                           // ctx values
    int ctx[MAX_ROWS];
    double us[NDIM][MAX_ROWS][NKIND];  // µs per token, NAN where skipped
} results_t;

static const char *const NAMES[NKIND] = {"softmax", "performer", "linformer"};
static const rgb_t COLORS[NKIND] = {{214, 39, 40}, {31, 119, 180}, {44, 160, 44}};

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

// Two panels side by side (d 128 | d 384) on one shared log-log scale.
static int write_plot(const char *path, const results_t *res, const int dims[][2], int tokens) {
    enum { PW = 640, PH = 520, ML = 84, MR = 24, MT = 56, MB = 64 };
    canvas_t cv = {.w = NDIM * PW, .h = PH};
    cv.px = xmalloc((size_t)cv.w * cv.h * 3);
    memset(cv.px, 255, (size_t)cv.w * cv.h * 3);
    const rgb_t black = {0, 0, 0}, grid_major = {170, 170, 170}, grid_minor = {225, 225, 225}, grey = {90, 90, 90};

    double lo = INFINITY, hi = 0;
    for (int di = 0; di < NDIM; di++)
        for (int i = 0; i < res->n; i++)
            for (int k = 0; k < NKIND; k++) {
                double v = res->us[di][i][k];
                if (isfinite(v) && v > 0) {
                    lo = v < lo ? v : lo;
                    hi = v > hi ? v : hi;
                }
            }
    if (!(hi > 0)) lo = 1, hi = 10;
    int e_lo = (int)floor(log10(lo)), e_hi = (int)ceil(log10(hi));
    if (e_hi <= e_lo) e_hi = e_lo + 1;
    double lx0 = log2((double)res->ctx[0]) - 0.35, lx1 = log2((double)res->ctx[res->n - 1]) + 0.35;
    int labels_125 = e_hi - e_lo <= 2;  // label 1, 2, 5 × 10^e on short ranges, else powers of ten

    for (int di = 0; di < NDIM; di++) {
        int ox = di * PW, x0 = ox + ML, x1 = ox + PW - MR, y0 = MT, y1 = PH - MB;  // plot area
#define XPIX(c) (x0 + (int)lround((log2((double)(c)) - lx0) / (lx1 - lx0) * (x1 - x0)))
#define YPIX(v) (y1 - (int)lround((log10(v) - e_lo) / (double)(e_hi - e_lo) * (y1 - y0)))
        char buf[96];
        // gridlines and y labels
        for (int e = e_lo; e <= e_hi; e++)
            for (int k = 1; k <= 9; k++) {
                double v = k * pow(10.0, e);
                if (v > pow(10.0, e_hi) * 1.0001) break;
                int y = YPIX(v);
                line(&cv, x0, y, x1, y, 0, k == 1 ? grid_major : grid_minor);
                if (k == 1 || (labels_125 && (k == 2 || k == 5))) {
                    snprintf(buf, sizeof buf, "%g", v);
                    text(&cv, x0 - 8 - text_w(buf), y - TEXT_H / 2, buf, black);
                }
            }
        for (int i = 0; i < res->n; i++) {
            int x = XPIX(res->ctx[i]);
            line(&cv, x, y0, x, y1, 0, grid_major);
            snprintf(buf, sizeof buf, "%d", res->ctx[i]);
            text(&cv, x - text_w(buf) / 2, y1 + 8, buf, black);
        }
        // frame
        line(&cv, x0, y0, x1, y0, 0, black);
        line(&cv, x0, y1, x1, y1, 0, black);
        line(&cv, x0, y0, x0, y1, 0, black);
        line(&cv, x1, y0, x1, y1, 0, black);
        // titles
        snprintf(buf, sizeof buf, "d %d, %d heads: one mixer, fwd+bwd", dims[di][0], dims[di][1]);
        text(&cv, ox + (PW - text_w(buf)) / 2, 10, buf, black);
        snprintf(buf, sizeof buf, "us per token (log), batch x ctx = %d", tokens);
        text(&cv, x0, 34, buf, grey);
        const char *xl = "ctx (log)";
        text(&cv, x0 + (x1 - x0 - text_w(xl)) / 2, y1 + 8 + TEXT_H + 10, xl, grey);
        // curves
        for (int k = 0; k < NKIND; k++) {
            int px = -1, py = -1;
            for (int i = 0; i < res->n; i++) {
                double v = res->us[di][i][k];
                if (!(isfinite(v) && v > 0)) {
                    px = -1;
                    continue;
                }
                int x = XPIX(res->ctx[i]), y = YPIX(v);
                if (px >= 0) line(&cv, px, py, x, y, 1, COLORS[k]);
                px = x;
                py = y;
            }
            for (int i = 0; i < res->n; i++) {
                double v = res->us[di][i][k];
                if (isfinite(v) && v > 0) marker(&cv, XPIX(res->ctx[i]), YPIX(v), k, 4, COLORS[k]);
            }
        }
        // legend: the inside corner of the plot area that the curves cross least (top left on ties)
        int lw = 44 + text_w("performer") + 12, lh = NKIND * 24 + 8, lx = x0 + 12, ly = y0 + 12, best = -1;
        for (int corner = 0; corner < 4; corner++) {
            int cx = corner & 1 ? x1 - 12 - lw : x0 + 12, cy = corner & 2 ? y1 - 12 - lh : y0 + 12, hits = 0;
            for (int k = 0; k < NKIND; k++)
                for (int i = 0; i + 1 < res->n; i++) {
                    double va = res->us[di][i][k], vb = res->us[di][i + 1][k];
                    if (!(isfinite(va) && va > 0 && isfinite(vb) && vb > 0)) continue;
                    int xa = XPIX(res->ctx[i]), ya = YPIX(va), xb = XPIX(res->ctx[i + 1]), yb = YPIX(vb);
                    for (int q = 0; q <= 64; q++) {
                        int x = xa + (xb - xa) * q / 64, y = ya + (yb - ya) * q / 64;
                        hits += x >= cx - 6 && x <= cx + lw + 6 && y >= cy - 6 && y <= cy + lh + 6;
                    }
                }
            if (best < 0 || hits < best) {
                best = hits;
                lx = cx;
                ly = cy;
            }
        }
        fill_rect(&cv, lx, ly, lx + lw, ly + lh, (rgb_t){255, 255, 255});
        line(&cv, lx, ly, lx + lw, ly, 0, grey);
        line(&cv, lx, ly + lh, lx + lw, ly + lh, 0, grey);
        line(&cv, lx, ly, lx, ly + lh, 0, grey);
        line(&cv, lx + lw, ly, lx + lw, ly + lh, 0, grey);
        for (int k = 0; k < NKIND; k++) {
            int cy = ly + 16 + k * 24;
            line(&cv, lx + 8, cy, lx + 36, cy, 1, COLORS[k]);
            marker(&cv, lx + 22, cy, k, 4, COLORS[k]);
            text(&cv, lx + 44, cy - TEXT_H / 2, NAMES[k], black);
        }
#undef XPIX
#undef YPIX
    }
    errno = 0;
    int ok = stbi_write_png(path, cv.w, cv.h, 3, cv.px, cv.w * 3);
    free(cv.px);
    return ok ? 0 : -1;
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
    char path[4200];
    snprintf(path, sizeof path, "%s/scaling.png", png_dir);
    if (mkdir_p(png_dir) != 0)
        fprintf(stderr, "bench_scaling: cannot create '%s': %s (no plot)\n", png_dir, strerror(errno));
    else if (write_plot(path, &res, dims, tokens) != 0)
        fprintf(stderr, "bench_scaling: cannot write '%s': %s\n", path, errno ? strerror(errno) : "write failed");
    else
        printf("\n# plot: %s (us per token vs ctx, log-log, one panel per width)\n", path);
    printf("\n# total %.1f s\n", cli_now() - start);
    return 0;
}
