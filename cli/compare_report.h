// compare_report.h — the report of a comparison, from its runs' logs (docs/compare.md):
//   OUTDIR/report.md   one table, a row per spec: parameters, steps, final val loss and bpb, ms/step,
//                      tokens/s, peak RSS, learned spans per layer, pkm slot usage — each the mean
//                      ± sample standard deviation over the seeds that finished; failed runs named
//   OUTDIR/report.csv  the same figures with min and max, one row per spec (RFC 4180 quoting)
//   OUTDIR/*.png       the plots (compare_plot.h)
// Rows are found by spec, never by position: a row is computed from the runs of its spec's keys.
#ifndef ATTNLAB_COMPARE_REPORT_H
#define ATTNLAB_COMPARE_REPORT_H

#include <stddef.h>

#include "cli/compare_manifest.h"
#include "cli/compare_opts.h"
#include "cli/compare_run.h"

typedef struct {
    const cmp_opts_t *o;
    const cmp_file_id_t *id;
    const long *params;        // per spec (train --check)
    const long *steps;         // per spec: the --steps each run was given
    cmp_run_t *runs;           // every run of the command; a CMP_OK run whose log cannot be read is
    int n_runs;                // reported failed (its state becomes CMP_FAILED)
} cmp_report_in_t;

// Write report.md, report.csv, the plot data and script, and run gnuplot. Returns 0, or -1 with one
// line (a file not written, gnuplot missing or failing).
int cmp_report_write(const cmp_report_in_t *in, char *err, size_t errlen);

#endif
