// mem_rows.h — the segment memory of the kinds that remember their input x̂ (softmax, collab,
// adaptive, allattn, softmax(persist); LONG_CONTEXT.md §2, Transformer-XL): per row (stream) b the
// state is an (M, C) matrix whose LAST n rows, M−n … M−1, are the x̂ of the n positions before the
// current segment, oldest first. Keys and values of those positions are recomputed from them each
// step with the current weights; no gradient flows into the state.
#ifndef ATTNLAB_MEM_ROWS_H
#define ATTNLAB_MEM_ROWS_H

#include <stddef.h>

// Floats of state for B rows: B·M·C.
size_t mem_rows_floats(int B, int M, int C);
// The n remembered rows of row b: (n, C), contiguous, oldest first.
static inline const float *mem_rows_of(const float *state, int b, int M, int n, int C) {
    return state + ((size_t)b * M + (M - n)) * C;
}
// dst (B, n+T, C): per row b, [the n remembered rows ; x_b (T, C)].
void mem_rows_concat(float *dst, const float *state, const float *x, int B, int M, int n, int T, int C);
// state ← per row b the last min(n+T, M) rows of [the n remembered rows ; x_b (T, C)].
void mem_rows_advance(float *state, const float *x, int B, int M, int n, int T, int C);

#endif
