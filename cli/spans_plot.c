// spans_plot.c — the span heatmap as a gnuplot script (see spans_plot.h).
#include "cli/spans_plot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "cli/gnuplot.h"

int spans_plot_png(const char *png, const float *grid, int L, int H, const char *const *kinds, double max_span,
                   const char *title, char *err, size_t errlen) {
    char *body = NULL, q[1200];
    size_t len = 0;
    FILE *f = open_memstream(&body, &len);
    CHECK(f != NULL);
    // the grid as a gnuplot datablock: row l = layer l, column h = head h; -1 = no span (not drawn)
    fprintf(f, "$grid << EOD\n");
    for (int l = 0; l < L; l++) {
        for (int h = 0; h < H; h++) {
            float v = grid[(size_t)l * H + h];
            fprintf(f, "%s%.3f", h ? " " : "", v < 0 ? -1.0f : v);
        }
        fprintf(f, "\n");
    }
    fprintf(f, "EOD\n");
    if (gnuplot_quote(q, sizeof q, title)) snprintf(q, sizeof q, "'learned attention spans'");
    fprintf(f, "set title %s.\"\\n\".'colour scale: 0 to %g tokens, the longest span the model can learn' noenhanced\n", q, max_span);
    fprintf(f, "set xlabel 'head'\nset ylabel 'layer'\n");
    fprintf(f, "set xrange [-0.5:%g]\nset yrange [%g:-0.5]\n", H - 0.5, L - 0.5);
    fprintf(f, "set xtics 1 out nomirror\nset ytics out nomirror (");
    for (int l = 0; l < L; l++) {
        char label[96];
        snprintf(label, sizeof label, "%d %s", l, kinds[l]);
        if (gnuplot_quote(q, sizeof q, label)) snprintf(q, sizeof q, "'%d'", l);
        fprintf(f, "%s%s %d", l ? ", " : "", q, l);
    }
    fprintf(f, ")\nset ytics noenhanced\n");
    // viridis; grey behind the grid shows through the NaN cells of layers without spans
    fprintf(f, "set palette defined (0 '#440154', 1 '#3b528b', 2 '#21908d', 3 '#5dc863', 4 '#fde725')\n");
    fprintf(f, "set cbrange [0:%g]\nset cblabel 'span (tokens)' offset 1.5,0\n", max_span);
    fprintf(f, "set object 1 rectangle from graph 0,0 to graph 1,1 behind fillcolor rgb '#c8c8c8' fillstyle solid noborder\n");
    fprintf(f, "set key off\nset tics font ',11'\n");
    // cell labels: the span in tokens, white on the dark half of the scale, black on the light half;
    // "no span" on a layer without
    fprintf(f, "dark(v) = v >= 0 && v < %g\n", 0.55 * max_span);
    fprintf(f, "plot $grid matrix using 1:2:($3 >= 0 ? $3 : NaN) with image, \\\n"
               "     $grid matrix using 1:2:(dark($3) ? sprintf('%%.1f', $3) : '') with labels tc rgb 'white', \\\n"
               "     $grid matrix using 1:2:($3 >= 0 && !dark($3) ? sprintf('%%.1f', $3) : '') with labels tc rgb 'black', \\\n"
               "     $grid matrix using 1:2:($3 >= 0 ? '' : 'no span') with labels tc rgb '#505050'\n");
    fclose(f);
    int w = 160 + 110 * H, h = 150 + 70 * L;
    int rc = gnuplot_png(png, w < 640 ? 640 : w, h < 360 ? 360 : h, body, "--spans-png", err, errlen);
    free(body);
    return rc;
}
