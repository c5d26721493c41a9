// spans_png.h — a layer × head heatmap of learned attention spans, as a PNG (stb_image_write).
#ifndef ATTNLAB_SPANS_PNG_H
#define ATTNLAB_SPANS_PNG_H

#include <stddef.h>

// grid (L, H) spans in tokens; a negative value marks "no span" (drawn grey). Each cell is drawn as
// a 32×32 block, brightness proportional to span / max span. Written atomically (a temporary
// "<path>.tmp-<pid>" renamed over path). Returns 0 or -1 with a message.
int spans_write_png(const char *path, const float *grid, int L, int H, char *err, size_t errlen);

#endif
