// streams.h — the training split as B parallel streams read segment by segment, for segment memory
// (../shared/design/LONG_CONTEXT.md §2 "Data"; docs/long_context.md "Segment memory: training").
//
// A split of n tokens t_0 … t_{n−1} is cut into B streams of len = ⌊n/B⌋ tokens; stream b is
// t[b·len, (b+1)·len) (the last n − B·len tokens are never read). Every segment reads T+1 tokens of
// every stream at the same offset (inputs t[o, o+T), targets t[o+1, o+T+1) within the stream) and
// advances the offset by T, so consecutive segments overlap by one token, as windows do. A segment
// that cannot read T+1 more tokens (offset + T + 1 > len) first wraps every stream to its start
// (offset 0): the streams are of equal length and move in lockstep, so they wrap together, and the
// caller clears the memory (model_mem_clear). Hence between segments offset is a multiple of T in
// [0, len) (a read leaves offset + 1 ≤ len), and it equals the memory's pos0 (the stream position since the memory was last empty).
// Pure index arithmetic over a token array: no model, no allocation.
#ifndef ATTNLAB_STREAMS_H
#define ATTNLAB_STREAMS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t lo;      // the split's first token in the token array
    size_t len;     // tokens per stream: ⌊n/B⌋ ≥ T + 1
    int B, T;       // streams (rows of a batch) and segment length
    size_t offset;  // where the next segment starts in every stream (before any wrap)
} streams_t;

// Streams over tokens[lo, lo+n). Returns 0, or -1 with one line when a stream would be shorter than
// T+1 tokens: "the training split's 100 tokens in 8 streams of 12 tokens: a stream needs at least
// ctx+1 = 17; use a smaller --batch or --ctx".
int streams_init(streams_t *s, size_t lo, size_t n, int B, int T, char *err, size_t errlen);
// Whether the next segment wraps (offset + T + 1 > len).
int streams_will_wrap(const streams_t *s);
// The next segment into x, y (B, T) row-major: row b = stream b. Returns 1 if the streams wrapped to
// their start before reading (the memory must be cleared before this segment's forward), else 0.
int streams_next(streams_t *s, const int32_t *tokens, int32_t *x, int32_t *y);
// A restored offset is one streams_next can have left: a multiple of T in [0, len). Returns 0, or -1
// with one line naming the value.
int streams_check_offset(const streams_t *s, double offset, char *err, size_t errlen);

#endif
