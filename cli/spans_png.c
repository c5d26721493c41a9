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
#include <unistd.h>

#include "base/check.h"
#include "base/output_guard.h"

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
    // Atomically, like checkpoints: the whole picture to "<path>.tmp-<pid>" (every write checked),
    // then renamed over path, so a failure (full disk, a kill) leaves the previous file as it was.
    int png_len = 0;
    unsigned char *png = stbi_write_png_to_mem(img, w * 3, w, h, 3, &png_len);
    free(img);
    if (!png) return seterr(err, errlen, "cannot write '%s': the PNG encoder failed", path);
    size_t tlen = strlen(path) + 32;
    char *tmp = xmalloc(tlen);
    snprintf(tmp, tlen, "%s" OUTPUT_TEMP_SUFFIX "%ld", path, (long)getpid());
    errno = 0;
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(png, 1, (size_t)png_len, f) == (size_t)png_len && fflush(f) == 0;
    int e = errno;
    if (f && fclose(f) != 0 && ok) ok = 0, e = errno;
    free(png);
    if (ok && rename(tmp, path) != 0) ok = 0, e = errno;
    if (!ok) {
        if (f) unlink(tmp);
        free(tmp);
        return seterr(err, errlen, "cannot write '%s': %s", path, e ? strerror(e) : "write failed");
    }
    free(tmp);
    return 0;
}
