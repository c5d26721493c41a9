// spans_png.c — the span heatmap (see spans_png.h).
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBIW_WINDOWS_UTF8
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <stb_image_write.h>
#pragma GCC diagnostic pop

#include "cli/spans_png.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"

int spans_write_png(const char *path, const float *grid, int L, int H, char *err, size_t errlen) {
    enum { CELL = 32 };
    int w = H * CELL, h = L * CELL;
    float mx = 1e-6f;
    for (int i = 0; i < L * H; i++) mx = grid[i] > mx ? grid[i] : mx;
    uint8_t *img = xmalloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float v = grid[(y / CELL) * H + x / CELL];
            uint8_t *px = img + ((size_t)y * w + x) * 3;
            int border = x % CELL == 0 || y % CELL == 0;
            if (v < 0) {
                px[0] = px[1] = px[2] = border ? 60 : 128;
            } else {
                float t = v / mx;  // dark blue (short) to yellow (long)
                px[0] = border ? 0 : (uint8_t)(255 * t);
                px[1] = border ? 0 : (uint8_t)(40 + 200 * t);
                px[2] = border ? 0 : (uint8_t)(120 * (1 - t));
            }
        }
    errno = 0;
    int ok = stbi_write_png(path, w, h, 3, img, w * 3);
    free(img);
    if (!ok) return seterr(err, errlen, "cannot write '%s': %s", path, errno ? strerror(errno) : "write failed");
    return 0;
}
