// eval_report.c — the --by-position table, CSV and gnuplot PNG (see eval_report.h).
#include "cli/eval_report.h"

#include <errno.h>
#include <string.h>

#include "base/check.h"
#include "cli/gnuplot.h"

void eval_report_table(FILE *f, const eval_buckets_t *bk) {
    fprintf(f, "%-15s %10s %8s %8s\n", "context", "tokens", "loss", "bpb");
    for (int b = 0; b < bk->n_buckets; b++) {
        if (!bk->tokens[b]) continue;
        char range[48];
        long lo = eval_bucket_lo(b), hi = eval_bucket_hi(b);
        if (lo == hi) snprintf(range, sizeof range, "%ld", lo);
        else snprintf(range, sizeof range, "%ld-%ld", lo, hi);
        fprintf(f, "%-15s %10zu %8.4f %8.4f\n", range, bk->tokens[b], eval_bucket_loss(bk, b), eval_bucket_bpb(bk, b));
    }
}

int eval_report_csv(const char *path, const eval_buckets_t *bk, char *err, size_t errlen) {
    FILE *f = fopen(path, "w");
    if (!f) return seterr(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    fprintf(f, "context_lo,context_hi,tokens,bytes,loss,bpb\n");
    for (int b = 0; b < bk->n_buckets; b++) {
        if (!bk->tokens[b]) continue;
        fprintf(f, "%ld,%ld,%zu,%zu,%.17g,%.17g\n", eval_bucket_lo(b), eval_bucket_hi(b), bk->tokens[b], bk->bytes[b],
                eval_bucket_loss(bk, b), eval_bucket_bpb(bk, b));
    }
    if (fclose(f) != 0) return seterr(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    return 0;
}

int eval_report_png(const char *png, const char *csv, const char *title, char *err, size_t errlen) {
    char qcsv[4200], qtitle[1100], body[6000];
    if (gnuplot_quote(qcsv, sizeof qcsv, csv))
        return seterr(err, errlen, "cannot plot: the path '%s' is too long or has a control character", csv);
    if (gnuplot_quote(qtitle, sizeof qtitle, title)) snprintf(qtitle, sizeof qtitle, "'loss by visible context'");
    snprintf(body, sizeof body,
             "set datafile separator ','\n"
             "set logscale x 2\n"
             "set grid\n"
             "set key off\n"
             "set title %s noenhanced\n"
             "set xlabel 'visible context (tokens; bucket start, log scale)'\n"
             "set ylabel 'loss (nats per token)'\n"
             "plot %s using 1:5 skip 1 with linespoints pointtype 7\n",
             qtitle, qcsv);
    if (gnuplot_png(png, 800, 500, body, "--by-position-out (PNG)", err, errlen) == 0) return 0;
    size_t len = strlen(err);
    snprintf(err + len, errlen - len, "; the CSV is '%s'", csv);
    return -1;
}
