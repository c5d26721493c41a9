// compare_report.c — report.md, report.csv and the plots (compare_report.h).
#include "cli/compare_report.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/check.h"
#include "cli/compare_bypos.h"
#include "cli/compare_log.h"
#include "cli/compare_plot.h"
#include "cli/compare_stats.h"

// One spec's row: every figure over its finished runs.
typedef struct {
    int n_ok, n_failed;
    char failed[1024];          // "seed 1338 (exit 1), ..."
    cmp_stat_t loss, bpb, ms, tps, rss_mb, wall, steps, share;
    int has_final_eval;         // every run had train's final evaluation (else the last periodic one)
    cmp_stat_t span[CMP_MAX_LAYERS], pkm[CMP_MAX_LAYERS];
    int n_span_layers, n_pkm_layers;
    // loss by visible context (by_position.csv): per bucket over the runs that have the CSV
    cmp_stat_t bypos[EVAL_MAX_BUCKETS];
    int n_bypos_runs, n_bypos_buckets;
} row_t;

// The logs of one spec's finished runs (index into the command's runs kept in run_of).
typedef struct {
    cmp_log_t *logs;
    cmp_bypos_t *bypos;  // each run's by_position.csv (present 0: none, or unreadable)
    cmp_run_t **run_of;
    int n;
} spec_logs_t;

// Whether any of the spec's finished runs has a periodic evaluation (a point for the curves).
static int has_curve(const spec_logs_t *sl) {
    for (int i = 0; i < sl->n; i++)
        if (sl->logs[i].n_val > 0) return 1;
    return 0;
}

static int any_curve(const spec_logs_t *sls, int n_specs) {
    for (int s = 0; s < n_specs; s++)
        if (has_curve(&sls[s])) return 1;
    return 0;
}

static int any_ok(const row_t *rows, int n_specs) {
    for (int s = 0; s < n_specs; s++)
        if (rows[s].n_ok) return 1;
    return 0;
}

// Per-run medians of the progress rows after the first (its interval holds start-up).
static double run_median(const double *v, int n) {
    return n > 1 ? cmp_median(v + 1, n - 1) : cmp_median(v, n);
}

static void build_row(const spec_logs_t *sl, row_t *r) {
    int n = sl->n;
    double *a = xmalloc((size_t)(n > 0 ? n : 1) * 8 * sizeof *a);
    double *loss = a, *bpb = a + n, *ms = a + 2 * n, *tps = a + 3 * n, *rss = a + 4 * n, *wall = a + 5 * n, *steps = a + 6 * n,
           *share = a + 7 * n;
    r->has_final_eval = 1;
    for (int i = 0; i < n; i++) {
        const cmp_log_t *lg = &sl->logs[i];
        loss[i] = lg->final.loss;
        bpb[i] = lg->final.bpb;
        steps[i] = lg->final.step >= 0 ? (double)lg->final.step : NAN;
        ms[i] = run_median(lg->ms_per_step, lg->n_train);
        tps[i] = run_median(lg->tokens_per_s, lg->n_train);
        rss[i] = sl->run_of[i]->peak_rss_kb > 0 ? sl->run_of[i]->peak_rss_kb / 1024.0 : NAN;
        wall[i] = sl->run_of[i]->wall_s;
        share[i] = sl->run_of[i]->cpu_share;  // NaN (skipped) for runs from before compare recorded it
        if (!lg->has_final) r->has_final_eval = 0;
        if (lg->n_span_layers > r->n_span_layers) r->n_span_layers = lg->n_span_layers;
        if (lg->n_pkm_layers > r->n_pkm_layers) r->n_pkm_layers = lg->n_pkm_layers;
    }
    r->loss = cmp_stat(loss, n);
    r->bpb = cmp_stat(bpb, n);
    r->ms = cmp_stat(ms, n);
    r->tps = cmp_stat(tps, n);
    r->rss_mb = cmp_stat(rss, n);
    r->wall = cmp_stat(wall, n);
    r->share = cmp_stat(share, n);
    r->steps = cmp_stat(steps, n);
    for (int l = 0; l < r->n_span_layers; l++) {
        for (int i = 0; i < n; i++) loss[i] = sl->logs[i].span[l];
        r->span[l] = cmp_stat(loss, n);
    }
    for (int l = 0; l < r->n_pkm_layers; l++) {
        for (int i = 0; i < n; i++) loss[i] = sl->logs[i].pkm[l];
        r->pkm[l] = cmp_stat(loss, n);
    }
    for (int i = 0; i < n; i++) {
        r->n_bypos_runs += sl->bypos[i].present;
        if (sl->bypos[i].n_buckets > r->n_bypos_buckets) r->n_bypos_buckets = sl->bypos[i].n_buckets;
    }
    for (int b = 0; b < r->n_bypos_buckets; b++) {
        for (int i = 0; i < n; i++) loss[i] = sl->bypos[i].loss[b];  // NaN where a run has no CSV or no such bucket
        r->bypos[b] = cmp_stat(loss, n);
    }
    free(a);
}

// "mean ± sd" with a printf format for both; "–" when no run has the figure, "mean" alone (and no
// spread) from one run.
static void fmt_stat(char *buf, size_t n, const cmp_stat_t *s, const char *fmt) {
    char m[64], d[64];
    if (s->n == 0) {
        snprintf(buf, n, "–");
        return;
    }
    snprintf(m, sizeof m, fmt, s->mean);
    if (s->n < 2) {
        snprintf(buf, n, "%s", m);
        return;
    }
    snprintf(d, sizeof d, fmt, s->sd);
    snprintf(buf, n, "%s ± %s", m, d);
}

// Per-layer figures "L0 12.3 ± 1.0, L2 40.1 ± 2.2" (scale: ×100 for percentages).
static void fmt_layers(char *buf, size_t n, const cmp_stat_t *st, int layers, const char *fmt, double scale) {
    size_t j = 0;
    buf[0] = 0;
    for (int l = 0; l < layers && j + 1 < n; l++) {
        if (st[l].n == 0) continue;
        cmp_stat_t s = st[l];
        s.mean *= scale;
        s.sd *= scale;
        char one[160];
        fmt_stat(one, sizeof one, &s, fmt);
        j += (size_t)snprintf(buf + j, n - j, "%sL%d %s", j ? ", " : "", l, one);
    }
    if (!buf[0]) snprintf(buf, n, "–");
}

static void csv_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_stat(FILE *f, const cmp_stat_t *s) {
    double v[4] = {s->mean, s->sd, s->min, s->max};
    for (int i = 0; i < 4; i++) {
        if (isfinite(v[i])) fprintf(f, ",%.9g", v[i]);
        else fputc(',', f);
    }
}

// Per-layer means and sds, each ';'-joined by layer (empty where a layer has none).
static void csv_layers(FILE *f, const cmp_stat_t *st, int layers, int sd) {
    fputc(',', f);
    for (int l = 0; l < layers; l++) {
        if (l) fputc(';', f);
        double v = sd ? st[l].sd : st[l].mean;
        if (st[l].n && isfinite(v)) fprintf(f, "%.6g", v);
    }
}

static void words_text(char *buf, size_t n, char *const *w, int k) {
    size_t j = 0;
    buf[0] = 0;
    for (int i = 0; i < k && j + 1 < n; i++) j += (size_t)snprintf(buf + j, n - j, "%s%s", i ? " " : "", w[i]);
}

static int any_bypos(const row_t *rows, int n_specs) {
    for (int s = 0; s < n_specs; s++)
        if (rows[s].n_bypos_runs) return 1;
    return 0;
}

// "Loss by position": a row per bucket of visible context that some spec has, a column per spec
// (mean ± sd over the runs with a by_position.csv; n/a where no run of the spec has one).
static void write_md_bypos(FILE *f, const cmp_opts_t *o, const row_t *rows) {
    fprintf(f, "\n## Loss by position\n\n");
    if (!any_bypos(rows, o->n_specs)) {
        fprintf(f, "n/a: no finished run has a `by_position.csv` (runs trained before compare collected it, or without a "
                   "final evaluation).\n");
        return;
    }
    fprintf(f, "Train's final evaluation by visible context (`runs/<key>/by_position.csv`, written by `train --by-position`: "
               "windows mode, memory mode for a `--memory` model; the buckets of `infer --eval --by-position`): mean loss "
               "(nats per token) ± sample standard deviation over the seeds whose run has the CSV. n/a: no run of the spec has "
               "one (trained before compare collected it, or without a final evaluation); –: no target of the spec's runs "
               "sees that many tokens.\n\n");
    int nb = 0;
    for (int s = 0; s < o->n_specs; s++)
        if (rows[s].n_bypos_buckets > nb) nb = rows[s].n_bypos_buckets;
    fprintf(f, "| context (tokens) |");
    for (int s = 0; s < o->n_specs; s++) fprintf(f, " `%s` |", o->specs[s].spec);
    fprintf(f, "\n|---|");
    for (int s = 0; s < o->n_specs; s++) fprintf(f, "---|");
    fprintf(f, "\n");
    for (int b = 0; b < nb; b++) {
        int any = 0;
        for (int s = 0; s < o->n_specs; s++) any |= b < rows[s].n_bypos_buckets && rows[s].bypos[b].n > 0;
        if (!any) continue;
        long lo = eval_bucket_lo(b), hi = eval_bucket_hi(b);
        if (lo == hi) fprintf(f, "| %ld |", lo);
        else fprintf(f, "| %ld-%ld |", lo, hi);
        for (int s = 0; s < o->n_specs; s++) {
            char cell[160] = "n/a";
            if (rows[s].n_bypos_runs) {
                cmp_stat_t none = {0};
                fmt_stat(cell, sizeof cell, b < rows[s].n_bypos_buckets ? &rows[s].bypos[b] : &none, "%.4f");
            }
            fprintf(f, " %s |", cell);
        }
        fprintf(f, "\n");
    }
    for (int s = 0; s < o->n_specs; s++)
        if (rows[s].n_bypos_runs && rows[s].n_bypos_runs < rows[s].n_ok)
            fprintf(f, "\n- `%s`: from %d of its %d finished runs (the others have no `by_position.csv`)\n", o->specs[s].spec,
                    rows[s].n_bypos_runs, rows[s].n_ok);
    fprintf(f, "\n![loss by visible context, mean and standard deviation over seeds](loss_by_position.png)\n");
}

static int write_md(const cmp_report_in_t *in, const row_t *rows, const spec_logs_t *sls, const char *path, char *err, size_t errlen) {
    const cmp_opts_t *o = in->o;
    FILE *f = fopen(path, "w");
    if (!f) return seterr(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    char shared[4096];
    words_text(shared, sizeof shared, o->shared, o->n_shared);
    fprintf(f, "# Comparison\n\n");
    fprintf(f, "- file: `%s` (%zu bytes, FNV-1a 64 %016" PRIx64 ")\n", o->file, in->id->file_bytes, in->id->file_hash);
    fprintf(f, "- shared train flags: `%s`\n", shared[0] ? shared : "(none)");
    if (o->time_budget > 0) fprintf(f, "- budget: equal wall-clock time, `--time-budget %g` s per run\n", o->time_budget);
    else fprintf(f, "- budget: equal steps (each run's `--steps`, column *steps*)\n");
    fprintf(f, "- seeds: %ld per spec, %ld to %ld\n", o->seeds, o->seed_base, o->seed_base + o->seeds - 1);
    fprintf(f, "- every figure: mean ± sample standard deviation (n − 1) over the seeds that finished; one number where one seed "
               "finished; min and max in report.csv\n");
    fprintf(f, "- val loss and bpb: train's final evaluation over the whole validation split (marked * where a run had only "
               "periodic evaluations: the last one); ms/step and tokens/s: the median of a run's progress intervals after the first; "
               "peak RSS: the run's process (wait4); CPU share: the run's CPU time over its wall time × the cores it was given "
               "(near 1: it had them to itself; lower: it waited for a core, and its ms/step and tokens/s carry that load; – for "
               "runs trained before compare recorded it)\n\n");
    fprintf(f, "| spec | own flags | runs | parameters | steps | val loss | val bpb | ms/step | tokens/s | CPU share | peak RSS (MB) | spans (tokens, per layer) | pkm slot usage (%%) |\n");
    fprintf(f, "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int s = 0; s < o->n_specs; s++) {
        const row_t *r = &rows[s];
        char own[1024], loss[160], bpb[160], ms[160], tps[160], share[160], rss[160], steps[160], spans[2048], pkm[2048];
        words_text(own, sizeof own, o->specs[s].flags, o->specs[s].n_flags);
        fmt_stat(loss, sizeof loss, &r->loss, "%.4f");
        fmt_stat(bpb, sizeof bpb, &r->bpb, "%.4f");
        fmt_stat(ms, sizeof ms, &r->ms, "%.1f");
        fmt_stat(tps, sizeof tps, &r->tps, "%.0f");
        fmt_stat(share, sizeof share, &r->share, "%.2f");
        fmt_stat(rss, sizeof rss, &r->rss_mb, "%.1f");
        fmt_stat(steps, sizeof steps, &r->steps, "%.0f");
        fmt_layers(spans, sizeof spans, r->span, r->n_span_layers, "%.1f", 1);
        fmt_layers(pkm, sizeof pkm, r->pkm, r->n_pkm_layers, "%.1f", 100);
        const char *star = r->n_ok && !r->has_final_eval ? "*" : "";
        fprintf(f, "| `%s` | %s%s%s | %d of %d%s | %ld | %s | %s%s | %s%s | %s | %s | %s | %s | %s | %s |\n", o->specs[s].spec,
                own[0] ? "`" : "", own[0] ? own : "–", own[0] ? "`" : "", r->n_ok, r->n_ok + r->n_failed,
                r->n_failed ? " (**failed**)" : "", in->params[s], steps, loss, star, bpb, star, ms, tps, share, rss, spans, pkm);
    }
    int any_failed = 0;
    for (int s = 0; s < o->n_specs; s++) any_failed |= rows[s].n_failed > 0;
    if (any_failed) {
        fprintf(f, "\n## Failed runs\n\n");
        for (int s = 0; s < o->n_specs; s++)
            if (rows[s].n_failed) fprintf(f, "- `%s`: %s\n", o->specs[s].spec, rows[s].failed);
    }
    write_md_bypos(f, o, rows);
    fprintf(f, "\n## Plots\n\n");
    if (any_curve(sls, o->n_specs)) {
        fprintf(f, "Lines: the mean over seeds at each periodic evaluation; shading: ± one standard deviation.\n\n");
        fprintf(f, "![validation loss against step](val_loss_vs_step.png)\n\n");
        fprintf(f, "![validation loss against wall-clock time](val_loss_vs_time.png)\n\n");
        fprintf(f, "![validation loss against tokens seen](val_loss_vs_tokens.png)\n\n");
    } else {
        fprintf(f, "No finished run has a periodic evaluation: no loss curves.\n\n");
    }
    if (any_ok(rows, o->n_specs)) fprintf(f, "![final bpb, mean and standard deviation](final_bpb.png)\n");
    else fprintf(f, "No run finished: no plot of final bpb.\n");
    int any_spans = 0;
    for (int s = 0; s < o->n_specs; s++) any_spans |= rows[s].n_span_layers > 0;
    if (any_spans) fprintf(f, "\n![learned spans per layer](spans.png)\n");
    fprintf(f, "\nEach run's files (train.out, log.csv, by_position.csv, model.safetensors, result.json) are in `runs/<key>/`; "
               "the key is listed in `runs.csv`.\n");
    if (fclose(f) != 0) return seterr(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    return 0;
}

static int write_csv(const cmp_report_in_t *in, const row_t *rows, const char *path, char *err, size_t errlen) {
    const cmp_opts_t *o = in->o;
    FILE *f = fopen(path, "w");
    if (!f) return seterr(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    fprintf(f, "spec,own_flags,runs_ok,runs_failed,parameters");
    const char *stats[] = {"steps", "val_loss", "val_bpb", "ms_per_step", "tokens_per_s", "peak_rss_mb", "wall_s", "cpu_share"};
    for (size_t i = 0; i < sizeof stats / sizeof *stats; i++)
        fprintf(f, ",%s_mean,%s_sd,%s_min,%s_max", stats[i], stats[i], stats[i], stats[i]);
    fprintf(f, ",final_eval,spans_mean,spans_sd,pkm_usage_mean,pkm_usage_sd,failed\n");
    for (int s = 0; s < o->n_specs; s++) {
        const row_t *r = &rows[s];
        char own[1024];
        words_text(own, sizeof own, o->specs[s].flags, o->specs[s].n_flags);
        csv_string(f, o->specs[s].spec);
        fputc(',', f);
        csv_string(f, own);
        fprintf(f, ",%d,%d,%ld", r->n_ok, r->n_failed, in->params[s]);
        const cmp_stat_t *st[] = {&r->steps, &r->loss, &r->bpb, &r->ms, &r->tps, &r->rss_mb, &r->wall, &r->share};
        for (size_t i = 0; i < sizeof st / sizeof *st; i++) csv_stat(f, st[i]);
        fprintf(f, ",%s", r->n_ok == 0 ? "" : r->has_final_eval ? "whole_split" : "last_periodic");
        csv_layers(f, r->span, r->n_span_layers, 0);
        csv_layers(f, r->span, r->n_span_layers, 1);
        csv_layers(f, r->pkm, r->n_pkm_layers, 0);
        csv_layers(f, r->pkm, r->n_pkm_layers, 1);
        fputc(',', f);
        csv_string(f, r->failed);
        fputc('\n', f);
    }
    if (fclose(f) != 0) return seterr(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    return 0;
}

// runs.csv: every run of the command by key (spec, seed, status, exit code, wall time, peak RSS, CPU share).
static int write_runs_csv(const cmp_report_in_t *in, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "w");
    if (!f) return seterr(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    fprintf(f, "key,spec,seed,status,exit,wall_s,peak_rss_kb,cpu_share\n");
    for (int i = 0; i < in->n_runs; i++) {
        const cmp_run_t *r = &in->runs[i];
        fprintf(f, "%s,", r->key);
        csv_string(f, r->spec_text);
        fprintf(f, ",%ld,%s,%d,%.3f,%ld,", r->seed, r->state == CMP_OK ? "ok" : r->state == CMP_FAILED ? "failed" : "not run",
                r->exit_code, r->wall_s, r->peak_rss_kb);
        if (isfinite(r->cpu_share)) fprintf(f, "%.4f", r->cpu_share);
        fputc('\n', f);
    }
    if (fclose(f) != 0) return seterr(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    return 0;
}

static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

// plots/curve_<s>.dat: "step loss_mean loss_lo loss_hi elapsed_mean tokens_mean n" for every step at
// which at least one of the spec's runs evaluated (mean over the runs that did; lo/hi = mean ∓ sd).
static int write_curve(const spec_logs_t *sl, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    int total = 0;
    for (int i = 0; i < sl->n; i++) total += sl->logs[i].n_val;
    long *steps = xmalloc((size_t)(total + 1) * sizeof *steps);
    int k = 0;
    for (int i = 0; i < sl->n; i++)
        for (int j = 0; j < sl->logs[i].n_val; j++) steps[k++] = sl->logs[i].val[j].step;
    qsort(steps, (size_t)k, sizeof *steps, cmp_long);
    double *loss = xmalloc((size_t)(sl->n + 1) * 3 * sizeof *loss), *el = loss + sl->n + 1, *tok = el + sl->n + 1;
    fprintf(f, "# step loss_mean loss_lo loss_hi elapsed_s_mean tokens_seen_mean runs\n");
    for (int u = 0; u < k; u++) {
        if (u && steps[u] == steps[u - 1]) continue;
        int m = 0;
        for (int i = 0; i < sl->n; i++)
            for (int j = 0; j < sl->logs[i].n_val; j++)
                if (sl->logs[i].val[j].step == steps[u]) {
                    loss[m] = sl->logs[i].val[j].loss;
                    el[m] = sl->logs[i].val[j].elapsed;
                    tok[m] = sl->logs[i].val[j].tokens;
                    m++;
                }
        cmp_stat_t sl_ = cmp_stat(loss, m), se = cmp_stat(el, m), stok = cmp_stat(tok, m);
        double sd = isfinite(sl_.sd) ? sl_.sd : 0;
        fprintf(f, "%ld %.9g %.9g %.9g %.9g %.9g %d\n", steps[u], sl_.mean, sl_.mean - sd, sl_.mean + sd, se.mean, stok.mean, m);
    }
    free(steps);
    free(loss);
    return fclose(f);
}

static void plot_curves(FILE *g, const cmp_opts_t *o, const spec_logs_t *sls, const char *png, const char *xlabel, int xcol) {
    fprintf(g, "set output '%s'\nset xlabel '%s'\nset ylabel 'validation loss (nats per token)'\n", png, xlabel);
    fprintf(g, "plot ");
    int first = 1;
    for (int s = 0; s < o->n_specs; s++) {
        if (!has_curve(&sls[s])) continue;  // a spec whose runs all failed: no line (gnuplot refuses empty data)
        fprintf(g, "%s'plots/curve_%d.dat' using %d:3:4 with filledcurves lc %d fs transparent solid 0.2 noborder notitle, "
                   "'plots/curve_%d.dat' using %d:2 with linespoints lc %d lw 2 pt 7 ps 0.6 title ",
                first ? "" : ", \\\n     ", s, xcol, s + 1, s, xcol, s + 1);
        cmp_gnuplot_string(g, o->specs[s].spec);
        first = 0;
    }
    fprintf(g, "\n");
}

// plots/by_position_<s>.dat: "context_lo loss_mean loss_lo loss_hi runs" per bucket the spec's runs have
// (lo/hi = mean ∓ sd, the band 0 wide from one run).
static int write_bypos_data(const row_t *r, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "# context_lo loss_mean loss_lo loss_hi runs\n");
    for (int b = 0; b < r->n_bypos_buckets; b++) {
        const cmp_stat_t *st = &r->bypos[b];
        if (!st->n) continue;
        double sd = isfinite(st->sd) ? st->sd : 0;
        fprintf(f, "%ld %.9g %.9g %.9g %d\n", eval_bucket_lo(b), st->mean, st->mean - sd, st->mean + sd, st->n);
    }
    return fclose(f);
}

// loss_by_position.png: a line per spec with by-position data over log2 context, its ± sd shaded.
static void plot_bypos(FILE *g, const cmp_opts_t *o, const row_t *rows) {
    fprintf(g, "set output 'loss_by_position.png'\nset logscale x 2\n"
               "set xlabel 'visible context (tokens; bucket start, log scale)'\n"
               "set ylabel 'final validation loss (nats per token; mean over seeds)'\nplot ");
    int first = 1;
    for (int s = 0; s < o->n_specs; s++) {
        if (!rows[s].n_bypos_runs) continue;  // no CSV (or every run failed): no line
        fprintf(g, "%s'plots/by_position_%d.dat' using 1:3:4 with filledcurves lc %d fs transparent solid 0.2 noborder notitle, "
                   "'plots/by_position_%d.dat' using 1:2 with linespoints lc %d lw 2 pt 7 ps 0.6 title ",
                first ? "" : ", \\\n     ", s, s + 1, s, s + 1);
        cmp_gnuplot_string(g, o->specs[s].spec);
        first = 0;
    }
    fprintf(g, "\nunset logscale x\n");
}

static int write_plots(const cmp_report_in_t *in, const row_t *rows, const spec_logs_t *sls, char *err, size_t errlen) {
    const cmp_opts_t *o = in->o;
    char path[4608];
    snprintf(path, sizeof path, "%s/plots", o->outdir);
    if (mkdir(path, 0777) != 0 && errno != EEXIST) return seterr(err, errlen, "cannot create '%s': %s", path, strerror(errno));
    for (int s = 0; s < o->n_specs; s++) {
        snprintf(path, sizeof path, "%s/plots/curve_%d.dat", o->outdir, s);
        if (write_curve(&sls[s], path)) return seterr(err, errlen, "cannot write '%s'", path);
        snprintf(path, sizeof path, "%s/plots/by_position_%d.dat", o->outdir, s);
        if (rows[s].n_bypos_runs && write_bypos_data(&rows[s], path)) return seterr(err, errlen, "cannot write '%s'", path);
    }
    snprintf(path, sizeof path, "%s/plots/final_bpb.dat", o->outdir);
    FILE *d = fopen(path, "w");
    if (!d) return seterr(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    fprintf(d, "# index bpb_mean bpb_sd spec\n");
    for (int s = 0; s < o->n_specs; s++) {
        fprintf(d, "%d %.9g %.9g \"", s, rows[s].bpb.n ? rows[s].bpb.mean : 0.0, isfinite(rows[s].bpb.sd) ? rows[s].bpb.sd : 0.0);
        for (const char *c = o->specs[s].spec; *c; c++)
            if (*c != '"' && (unsigned char)*c >= 0x20) fputc(*c, d);
        fprintf(d, "%s\"\n", rows[s].n_ok ? "" : " (failed)");
    }
    fclose(d);
    int any_spans = 0;
    snprintf(path, sizeof path, "%s/plots/spans.dat", o->outdir);
    d = fopen(path, "w");
    if (!d) return seterr(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    for (int s = 0; s < o->n_specs; s++) {  // one gnuplot index block per spec: "layer mean sd"
        fprintf(d, "# spec %d\n", s);
        int any = 0;
        for (int l = 0; l < rows[s].n_span_layers; l++) {
            if (!rows[s].span[l].n) continue;
            fprintf(d, "%d %.9g %.9g\n", l, rows[s].span[l].mean, isfinite(rows[s].span[l].sd) ? rows[s].span[l].sd : 0.0);
            any = 1;
        }
        if (!any) fprintf(d, "-1 NaN NaN\n");
        any_spans |= any;
        fprintf(d, "\n\n");
    }
    fclose(d);

    snprintf(path, sizeof path, "%s/plots/plots.gp", o->outdir);
    FILE *g = fopen(path, "w");
    if (!g) return seterr(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    fprintf(g, "# compare's plots: run from OUTDIR as `gnuplot plots/plots.gp`\n"
               "set terminal png truecolor size 1000,620 font ',11'\nset grid\nset key outside below noenhanced\n"
               "set title noenhanced\n");
    if (any_curve(sls, o->n_specs)) {
        plot_curves(g, o, sls, "val_loss_vs_step.png", "step", 1);
        plot_curves(g, o, sls, "val_loss_vs_time.png", "wall-clock training time (s, mean over seeds)", 5);
        plot_curves(g, o, sls, "val_loss_vs_tokens.png", "training tokens seen", 6);
    }
    if (any_bypos(rows, o->n_specs)) plot_bypos(g, o, rows);
    if (!any_ok(rows, o->n_specs)) {
        if (fclose(g) != 0) return seterr(err, errlen, "cannot write the plot script");
        return any_curve(sls, o->n_specs) ? cmp_gnuplot_run(o->outdir, err, errlen) : 0;
    }
    fprintf(g, "set output 'final_bpb.png'\nset xlabel ''\nset ylabel 'final validation bpb (mean ± sd over seeds)'\n"
               "set style fill solid 0.5 border -1\nset boxwidth 0.6\nset xtics rotate by 30 right noenhanced\nset key off\n"
               "set bmargin 14\nset rmargin 4\nset xrange [-0.6:%d.6]\nset yrange [0:*]\n"
               "plot 'plots/final_bpb.dat' using 1:2:xtic(4) with boxes lc 3, '' using 1:2:3 with yerrorbars lc black pt -1 lw 2, "
               "'' using 1:($2+$3):(sprintf('%%.4f', $2)) with labels offset 0,0.8\nunset bmargin\nunset rmargin\n",
               o->n_specs - 1);
    if (any_spans) {
        int layers = 1;
        for (int s = 0; s < o->n_specs; s++)
            if (rows[s].n_span_layers > layers) layers = rows[s].n_span_layers;
        fprintf(g, "set output 'spans.png'\nset autoscale\nset xtics norotate 1\nset key outside below noenhanced\n"
                   "set xlabel 'layer'\nset ylabel 'mean learned span (tokens; mean ± sd over seeds)'\nset xrange [-0.5:%d.5]\n"
                   "set yrange [0:*]\nplot ", layers - 1);
        int first = 1;
        for (int s = 0; s < o->n_specs; s++) {
            if (!rows[s].n_span_layers) continue;
            fprintf(g, "%s'plots/spans.dat' index %d using 1:2:3 with yerrorlines lw 2 pt 7 title ", first ? "" : ", ", s);
            cmp_gnuplot_string(g, o->specs[s].spec);
            first = 0;
        }
        fprintf(g, "\n");
    }
    if (fclose(g) != 0) return seterr(err, errlen, "cannot write the plot script");
    return cmp_gnuplot_run(o->outdir, err, errlen);
}

int cmp_report_write(const cmp_report_in_t *in, char *err, size_t errlen) {
    const cmp_opts_t *o = in->o;
    row_t *rows = xcalloc((size_t)o->n_specs, sizeof *rows);
    spec_logs_t *sls = xcalloc((size_t)o->n_specs, sizeof *sls);
    for (int s = 0; s < o->n_specs; s++) {
        sls[s].logs = xcalloc((size_t)in->n_runs + 1, sizeof *sls[s].logs);
        sls[s].run_of = xcalloc((size_t)in->n_runs + 1, sizeof *sls[s].run_of);
        sls[s].bypos = xcalloc((size_t)in->n_runs + 1, sizeof *sls[s].bypos);
    }
    for (int i = 0; i < in->n_runs; i++) {
        cmp_run_t *r = &in->runs[i];
        row_t *row = &rows[r->spec];
        spec_logs_t *sl = &sls[r->spec];
        char why[512] = "";
        if (r->state == CMP_OK) {
            char csv[4608], out[4608], e[512];
            snprintf(csv, sizeof csv, "%s/log.csv", r->dir);
            snprintf(out, sizeof out, "%s/train.out", r->dir);
            if (cmp_log_read(csv, out, &sl->logs[sl->n], e, sizeof e) == 0) {
                // its loss by position: none (an older run) or unreadable (said once) is n/a, not a failure
                snprintf(csv, sizeof csv, "%s/by_position.csv", r->dir);
                if (cmp_bypos_read(csv, &sl->bypos[sl->n], e, sizeof e) < 0)
                    fprintf(stderr, "compare: %s seed %ld: %s (its loss by position is left out)\n", r->spec_text, r->seed, e);
                sl->run_of[sl->n++] = r;
                row->n_ok++;
                continue;
            }
            fprintf(stderr, "compare: %s seed %ld: %s\n", r->spec_text, r->seed, e);
            r->state = CMP_FAILED;
            snprintf(why, sizeof why, "its log cannot be read");
        } else if (r->state == CMP_FAILED) {
            snprintf(why, sizeof why, "exit %d", r->exit_code);
        } else {
            snprintf(why, sizeof why, "not run");
        }
        size_t len = strlen(row->failed);
        snprintf(row->failed + len, sizeof row->failed - len, "%sseed %ld (%s, runs/%s/train.out)", len ? ", " : "", r->seed, why, r->key);
        row->n_failed++;
    }
    for (int s = 0; s < o->n_specs; s++) build_row(&sls[s], &rows[s]);
    char path[4608];
    int rc = 0;
    snprintf(path, sizeof path, "%s/report.md", o->outdir);
    rc = write_md(in, rows, sls, path, err, errlen);
    snprintf(path, sizeof path, "%s/report.csv", o->outdir);
    if (!rc) rc = write_csv(in, rows, path, err, errlen);
    snprintf(path, sizeof path, "%s/runs.csv", o->outdir);
    if (!rc) rc = write_runs_csv(in, path, err, errlen);
    if (!rc) rc = write_plots(in, rows, sls, err, errlen);
    for (int s = 0; s < o->n_specs; s++) {
        for (int i = 0; i < sls[s].n; i++) cmp_log_free(&sls[s].logs[i]);
        free(sls[s].logs);
        free(sls[s].run_of);
        free(sls[s].bypos);
    }
    free(sls);
    free(rows);
    return rc;
}
