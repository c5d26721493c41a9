// eval_report.h — the --by-position report of `infer --eval` (../shared/design/LONG_CONTEXT.md §3):
// mean loss and bits per byte per log-spaced bucket of visible context (data/eval_plan.h), as a
// table, a CSV and a PNG line plot drawn by gnuplot (cli/gnuplot.h, reading the CSV).
#ifndef ATTNLAB_EVAL_REPORT_H
#define ATTNLAB_EVAL_REPORT_H

#include <stdio.h>

#include "data/eval_plan.h"

// The table, one row per bucket that holds a target: "context  tokens  loss  bpb", e.g. "4-7".
void eval_report_table(FILE *f, const eval_buckets_t *bk);
// CSV with header "context_lo,context_hi,tokens,bytes,loss,bpb", one row per bucket that holds a
// target (full double precision). Returns 0, or -1 with one line naming the path and the problem.
int eval_report_csv(const char *path, const eval_buckets_t *bk, char *err, size_t errlen);
// A PNG of loss against visible context (x: the bucket's first context, log scale) plotted by
// gnuplot from the CSV eval_report_csv wrote; title names the run. Returns 0, or -1 with one line:
// gnuplot not installed (Debian package gnuplot-nox), it failed, or a path gnuplot cannot quote.
int eval_report_png(const char *png, const char *csv, const char *title, char *err, size_t errlen);

#endif
