// rope.c — rotary position embeddings: the cos/sin table and the strided rotations (see rope.h).
#include "model/rope.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"

// Serial below 2^20 floats (~0.3 ms on one core here: 0.25–0.32 ns per float measured at B·T·2C =
// 2e5 … 3e6); the default model's q|k (B 12, T 64, C 128: 2e5 floats, 50 µs) stays serial, where a
// fork/join would cost a visible share and, on a shared busy machine, far more.
#define ROPE_PARALLEL_MIN_FLOATS (1 << 20)
// Positions beyond the table: cos/sin computed for this many pairs at a time (stack buffers).
#define ROPE_CHUNK 64

// ---------------------------------------------------------------------------- table

// cos and sin of p·θ_i for i in [i0, i1), angles in double, rounded to float once.
static void angles_at(const double *theta, long long p, int i0, int i1, float *c, float *s) {
    for (int i = i0; i < i1; i++) {
        double a = (double)p * theta[i];
        c[i - i0] = (float)cos(a);
        s[i - i0] = (float)sin(a);
    }
}

int rope_table_init(rope_table_t *t, int w, int n_pos, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    if (w <= 0) return seterr(err, errlen, "rope needs a positive head width, got %d", w);
    if (w % 2) return seterr(err, errlen, "rope needs an even head width, got %d", w);
    CHECK(n_pos >= 0);
    int h = w / 2;
    t->w = w;
    t->theta = xmalloc((size_t)h * sizeof *t->theta);
    for (int i = 0; i < h; i++) t->theta[i] = pow(10000.0, -2.0 * i / w);
    rope_table_extend(t, n_pos);
    return 0;
}

void rope_table_extend(rope_table_t *t, int n_pos) {
    CHECK(t->w > 0 && n_pos >= 0);
    if (n_pos <= t->n_pos) return;
    size_t h = (size_t)(t->w / 2), bytes = (size_t)n_pos * h * sizeof(float);
    float *c = realloc(t->cos, bytes), *s = c ? realloc(t->sin, bytes) : NULL;
    if (!c || !s) die(EXIT_RUNTIME, "out of memory for a rope table of %d positions", n_pos);
    t->cos = c;
    t->sin = s;
    for (int p = t->n_pos; p < n_pos; p++) angles_at(t->theta, p, 0, (int)h, c + (size_t)p * h, s + (size_t)p * h);
    t->n_pos = n_pos;
}

void rope_table_free(rope_table_t *t) {
    free(t->theta);
    free(t->cos);
    free(t->sin);
    memset(t, 0, sizeof *t);
}

// ---------------------------------------------------------------------------- rotations

// One pair block of n (the rotation only couples element i with i + w/2, so any range of i can be
// done alone): ylo = xlo·c − xhi·(σs), yhi = xhi·c + xlo·(σs), σ = ±1 the direction.
// Out of place; the four ranges are disjoint.
static void rotate_copy(float *restrict ylo, float *restrict yhi, const float *restrict xlo,
                        const float *restrict xhi, const float *restrict c, const float *restrict s, int n,
                        float sigma) {
    for (int i = 0; i < n; i++) {
        float a = xlo[i], b = xhi[i], si = sigma * s[i];
        ylo[i] = a * c[i] - b * si;
        yhi[i] = b * c[i] + a * si;
    }
}

// The same in place: lo = x[0..n), hi = x[w/2 .. w/2+n), disjoint.
static void rotate_inplace(float *restrict lo, float *restrict hi, const float *restrict c,
                           const float *restrict s, int n, float sigma) {
    for (int i = 0; i < n; i++) {
        float a = lo[i], b = hi[i], si = sigma * s[i];
        lo[i] = a * c[i] - b * si;
        hi[i] = b * c[i] + a * si;
    }
}

// Rotate the n_vec vectors at in/out (vector j at + j·vs) by the pairs [i0, i0+n) with c, s.
static void rotate_vectors(float *out, const float *in, int n_vec, size_t vs, int h, int i0, int n,
                           const float *c, const float *s, float sigma) {
    for (int j = 0; j < n_vec; j++) {
        float *y = out + (size_t)j * vs + i0;
        const float *x = in + (size_t)j * vs + i0;
        if (y == x)
            rotate_inplace(y, y + h, c, s, n, sigma);
        else
            rotate_copy(y, y + h, x, x + h, c, s, n, sigma);
    }
}

// All vectors of position p in the B sequences (sequence b's at + b·bs): from the table, or computed
// on the fly chunk by chunk — once per position, shared by the B sequences (training with memory
// runs B streams in lockstep at positions far past the table).
static void rotate_position(const rope_table_t *t, float *out, const float *in, int B, size_t bs, int n_vec, size_t vs,
                            long long p, float sigma) {
    int h = t->w / 2;
    if (p < t->n_pos) {
        size_t row = (size_t)p * (size_t)h;
        for (int b = 0; b < B; b++)
            rotate_vectors(out + (size_t)b * bs, in + (size_t)b * bs, n_vec, vs, h, 0, h, t->cos + row, t->sin + row,
                           sigma);
        return;
    }
    float c[ROPE_CHUNK], s[ROPE_CHUNK];
    for (int i0 = 0; i0 < h; i0 += ROPE_CHUNK) {
        int n = h - i0 < ROPE_CHUNK ? h - i0 : ROPE_CHUNK;
        angles_at(t->theta, p, i0, i0 + n, c, s);
        for (int b = 0; b < B; b++)
            rotate_vectors(out + (size_t)b * bs, in + (size_t)b * bs, n_vec, vs, h, i0, n, c, s, sigma);
    }
}

void rope_apply(const rope_table_t *t, float *out, const float *in, const rope_layout_t *lay, int pos0,
                rope_dir_t dir) {
    CHECK(t->w > 0 && pos0 >= 0 && lay->B >= 0 && lay->T >= 0 && lay->n_vec >= 0);
    CHECK(dir == ROPE_ROTATE || dir == ROPE_TRANSPOSE);
    CHECK(lay->n_vec <= 1 || lay->vec_stride >= (size_t)t->w);  // vectors of one position must not overlap
    const int B = lay->B, T = lay->T;
    const float sigma = (float)dir;
    const size_t floats = (size_t)B * (size_t)T * (size_t)lay->n_vec * (size_t)t->w;
    (void)floats;  // used by the OpenMP clause only
    // Each element is rotated independently: the split over threads does not change any result.
#pragma omp parallel for schedule(static) if (floats >= ROPE_PARALLEL_MIN_FLOATS)
    for (int tt = 0; tt < T; tt++) {
        size_t off = (size_t)tt * lay->pos_stride;
        rotate_position(t, out + off, in + off, B, lay->batch_stride, lay->n_vec, lay->vec_stride, (long long)pos0 + tt,
                        sigma);
    }
}

void rope_apply_one(const rope_table_t *t, float *x, int n_vec, size_t vec_stride, int p, rope_dir_t dir) {
    CHECK(t->w > 0 && p >= 0 && n_vec >= 0);
    CHECK(dir == ROPE_ROTATE || dir == ROPE_TRANSPOSE);
    rotate_position(t, x, x, 1, 0, n_vec, vec_stride, p, (float)dir);
}

// ---------------------------------------------------------------------------- layouts

rope_layout_t rope_layout_qk(int B, int T, int C, int H) {
    CHECK(H > 0 && C % H == 0);
    return (rope_layout_t){.B = B, .T = T, .n_vec = 2 * H, .batch_stride = (size_t)T * 3 * (size_t)C,
                           .pos_stride = 3 * (size_t)C, .vec_stride = (size_t)(C / H)};
}

rope_layout_t rope_layout_heads(int B, int T, int C, int H) {
    CHECK(H > 0 && C % H == 0);
    return (rope_layout_t){.B = B, .T = T, .n_vec = H, .batch_stride = (size_t)T * (size_t)C,
                           .pos_stride = (size_t)C, .vec_stride = (size_t)(C / H)};
}
