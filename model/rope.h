// rope.h — rotary position embeddings (RoFormer, arXiv 2104.09864) in the half-split layout of
// GPT-NeoX and LLaMA, exactly as ../shared/design/LONG_CONTEXT.md §1 defines them.
//
// For a vector x of even width w at position p, with θ_i = 10000^(−2i/w), i < w/2:
//     x'[i]     = x[i]·cos(pθ_i) − x[i+w/2]·sin(pθ_i)
//     x'[i+w/2] = x[i+w/2]·cos(pθ_i) + x[i]·sin(pθ_i)                       (x' = R_p x)
// R_p is orthogonal and R_pᵀ = R_{−p}, so (R_p q)·(R_s k) = q·(R_{s−p} k) and the backward of
// y = R_p x is dx = R_pᵀ dy = R_{−p} dy (ROPE_TRANSPOSE below).
//
// Precision: every angle pθ_i is formed in double and passed to double cos/sin, then rounded to
// float once. A float angle p·θ_i is off by up to half a float ulp of the angle itself (plus θ_i's
// own rounding times p): at p ~ 10⁵ the fast pairs have angles ~10⁵ rad, where that is ~4e-3 rad,
// so the rotation is wrong in the third digit (tests/test_rope.c: 5e-3 on unit-sized elements at
// p in [99,000, 100,000) with float angles, 1e-7 with double ones).
//
// The table caches cos and sin for positions [0, n_pos); positions at or beyond n_pos are
// computed on the fly with the same double expression, so the result does not depend on the
// table's size (bit for bit). Memory: 2 · n_pos · (w/2) floats = 4·n_pos·w bytes
// (ctx 8,192 at head width 32: 1 MiB), plus w/2 doubles of frequencies.
#ifndef ATTNLAB_ROPE_H
#define ATTNLAB_ROPE_H

#include <stddef.h>

typedef struct {
    int w;         // vector width (even); the rotation pairs i and i + w/2
    int n_pos;     // positions cached: [0, n_pos)
    double *theta; // (w/2) θ_i = 10000^(−2i/w)
    float *cos;    // (n_pos, w/2) cos(p·θ_i), row p
    float *sin;    // (n_pos, w/2) sin(p·θ_i)
} rope_table_t;

// The direction of a rotation: R_p (forward) or R_pᵀ = R_{−p} (backward of the forward).
typedef enum { ROPE_ROTATE = 1, ROPE_TRANSPOSE = -1 } rope_dir_t;

// Where the vectors to rotate live in a buffer, in floats. Sequence b, position t, vector j
// (each w floats, contiguous) starts at b·batch_stride + t·pos_stride + j·vec_stride and sits at
// position pos0 + t. E.g. the q and k heads of a (B,T,3C) q|k|v buffer with H heads of width D:
// rope_layout_qk(B, T, C, H) = {B, T, 2H, T·3C, 3C, D}; a (B,H,T,D) buffer: {B, T, H, H·T·D, D, T·D}.
typedef struct {
    int B, T;             // sequences, positions per sequence
    int n_vec;            // vectors per position
    size_t batch_stride;  // floats between sequences
    size_t pos_stride;    // floats between consecutive positions
    size_t vec_stride;    // floats between the vectors of one position
} rope_layout_t;

// The positions a block caches: [0, rope_table_positions(ctx)) = [0, min(ctx, ROPE_TABLE_MAX_POS)).
// Later positions are computed on the fly, bit-identical, at w/2 sincos per position and call —
// negligible next to attention at such lengths. The cap bounds what a checkpoint's config can make
// the loader allocate: a rope model has no wpe, so nothing in the file bounds ctx (config ctx ≤ 2^20
// would otherwise cost 4·ctx·w bytes per layer, 256 MiB at w 64); capped, ≤ 4096·w floats per layer.
// Every rope-using kind (attn_proj, attn_span, collab) sizes its table with this.
enum { ROPE_TABLE_MAX_POS = 4096 };
static inline int rope_table_positions(long ctx) { return ctx < ROPE_TABLE_MAX_POS ? (int)ctx : ROPE_TABLE_MAX_POS; }

// Build a table for width w covering positions [0, n_pos) (n_pos ≥ 0). Returns 0, or −1 with
// "rope needs an even head width, got 33" (or "…a positive…") in err and *t zeroed.
// Allocates: call when a model is built, never inside a step.
int rope_table_init(rope_table_t *t, int w, int n_pos, char *err, size_t errlen);
// Grow the table to cover at least [0, n_pos) (no-op if it already does). Existing entries keep
// their values; the cos/sin pointers may move. Allocates: call between steps only.
void rope_table_extend(rope_table_t *t, int n_pos);
void rope_table_free(rope_table_t *t);

// out ← R_{±(pos0+t)} in for every vector of the layout (dir ROPE_ROTATE: +, ROPE_TRANSPOSE: −).
// out may equal in (in place); otherwise the two must not overlap, and out uses the same layout.
// Floats of the buffer outside the layout's vectors are not touched (out's included).
// pos0 ≥ 0; positions beyond the table are computed on the fly (slower: w/2 sincos per position).
// OpenMP over (sequence, position) when the layout holds enough floats to pay for it.
void rope_apply(const rope_table_t *t, float *out, const float *in, const rope_layout_t *lay, int pos0,
                rope_dir_t dir);

// Decode: rotate in place n_vec vectors of one position p (vector j at x + j·vec_stride).
// Any p ≥ 0: beyond the table it computes cos/sin in double, bit-identical to a table entry.
void rope_apply_one(const rope_table_t *t, float *x, int n_vec, size_t vec_stride, int p, rope_dir_t dir);

// The layouts the attention kinds use: the q and k heads (2H vectors of width C/H, at columns
// 0 … 2C) of a (B,T,3C) q|k|v buffer; and the H heads of a (B,T,C) buffer.
rope_layout_t rope_layout_qk(int B, int T, int C, int H);
rope_layout_t rope_layout_heads(int B, int T, int C, int H);

#endif
