// spans_plot.h — the `infer --spans` picture: a layer × head heatmap of learned attention spans drawn
// by gnuplot (cli/gnuplot.h), each cell labelled with its span in tokens, the colour scale in tokens
// from 0 to the longest span the model can learn (not the longest learned), layers top to bottom.
#ifndef ATTNLAB_SPANS_PLOT_H
#define ATTNLAB_SPANS_PLOT_H

#include <stddef.h>

// grid (L, H) spans in tokens; a negative value marks a layer without spans (drawn grey, "no span").
// kinds[l] names layer l's mixer (the y labels); max_span is the top of the colour scale (tokens);
// title heads the picture. Written atomically (gnuplot_png). Returns 0 or -1 with one line.
int spans_plot_png(const char *png, const float *grid, int L, int H, const char *const *kinds, double max_span,
                   const char *title, char *err, size_t errlen);

#endif
