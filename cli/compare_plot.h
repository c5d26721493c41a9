// compare_plot.h — the PNGs of a comparison, drawn by gnuplot (Debian package gnuplot-nox) from data
// files and one script that compare writes under OUTDIR/plots/ (rerun by hand: cd OUTDIR && gnuplot
// plots/plots.gp):
//   val_loss_vs_step.png, val_loss_vs_time.png, val_loss_vs_tokens.png — one line per spec (the mean
//     over seeds at each evaluation) with its mean ± standard deviation shaded;
//   final_bpb.png — a bar per spec (mean final bpb) with ± standard deviation error bars;
//   spans.png — mean learned span per layer for the specs that have spans, with error bars.
#ifndef ATTNLAB_COMPARE_PLOT_H
#define ATTNLAB_COMPARE_PLOT_H

#include <stdio.h>
#include <stddef.h>

// s as a gnuplot single-quoted string ('' for ', control characters dropped) on f.
void cmp_gnuplot_string(FILE *f, const char *s);
// Run `gnuplot plots/plots.gp` in outdir and wait. Returns 0, or -1 with one line (gnuplot missing:
// names the Debian package; gnuplot failed: its messages are in OUTDIR/plots/gnuplot.err).
int cmp_gnuplot_run(const char *outdir, char *err, size_t errlen);

#endif
