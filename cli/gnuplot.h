// gnuplot.h — every picture attnlab draws (infer --by-position, --spans, --attn-map; bench_scaling) is a
// gnuplot script run by gnuplot (Debian package gnuplot-nox) as a subprocess reading it on stdin.
#ifndef ATTNLAB_GNUPLOT_H
#define ATTNLAB_GNUPLOT_H

#include <stddef.h>

// s as a gnuplot single-quoted string into out ('' stands for '); -1 if it has a control character or
// does not fit in n.
int gnuplot_quote(char *out, size_t n, const char *s);

// Draw a PNG of width × height pixels: runs gnuplot on "set terminal pngcairo…; set output TMP" followed
// by body (the caller's settings and plot commands), TMP being "<png>.tmp-<pid>", then renames TMP over
// png, so a failure leaves the previous picture as it was (and no temporary). Returns 0, or -1 with one
// line: gnuplot not installed (naming the package), it failed (its own message is above on stderr), or a
// path it cannot quote. what names the picture in messages (e.g. "--spans-png").
int gnuplot_png(const char *png, int width, int height, const char *body, const char *what, char *err, size_t errlen);

#endif
