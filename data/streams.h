// streams.h — the training split as B parallel streams read segment by segment, for segment memory
// (../shared/design/LONG_CONTEXT.md §2 "Data"; docs/long_context.md "Segment memory: training").
//
// Contiguous streams (chunk 0, the default): a split of n tokens t_0 … t_{n−1} is cut into B streams
// of len = ⌊n/B⌋ tokens; stream b is t[b·len, (b+1)·len) (the last n − B·len tokens are never read).
//
// Shuffled chunks (chunk L > 0, `train --stream-chunk L`): the split is cut into C = ⌊n/L⌋ chunks of
// L tokens (chunk i is t[i·L, (i+1)·L)), and each cycle k gives row b the chunk π(k·B + b), where π
// walks the chunks in one fresh seeded permutation per epoch of C draws: π(q) = perm_e[q mod C],
// e = ⌊q/C⌋, perm_e a Fisher–Yates shuffle drawn from rng_fork(seed, e). Every chunk is read once per
// epoch, and the rows of a batch come from B different places of the split, chosen anew every cycle.
// len = L then.
//
// Either way, every segment reads T+1 tokens of every row's stream at the same offset (inputs
// t[o, o+T), targets t[o+1, o+T+1) within the stream) and advances the offset by T, so consecutive
// segments overlap by one token, as windows do. A segment that cannot read T+1 more tokens
// (offset + T + 1 > len) first wraps every row to the start of its next stream (offset 0; contiguous:
// the same stream again; chunks: cycle k+1's chunks): the rows move in lockstep, so they wrap
// together, after c = ⌊(len−1)/T⌋ segments, and the caller clears the memory (model_mem_clear).
// Hence between segments offset is a multiple of T in [0, len) (a read leaves offset + 1 ≤ len), and
// it equals the memory's pos0 (the stream position since the memory was last empty).
// Index arithmetic over a token array; chunk mode holds one permutation of C indices (streams_free).
#ifndef ATTNLAB_STREAMS_H
#define ATTNLAB_STREAMS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t lo;      // the split's first token in the token array
    size_t len;     // tokens per stream: ⌊n/B⌋ (contiguous) or L (chunks), ≥ T + 1
    int B, T;       // rows of a batch and segment length
    size_t offset;  // where the next segment starts in every row's stream (before any wrap)
    // Chunk mode (chunk > 0) only:
    size_t chunk;       // L, tokens per chunk (0: contiguous streams)
    size_t n_chunks;    // C = ⌊n/L⌋ ≥ B
    uint64_t seed;      // the permutations' seed
    long cycle;         // cycles begun: the current chunks are those of cycle `cycle`
    size_t *perm;       // perm_e (C entries) of epoch perm_epoch, drawn when first needed
    long perm_epoch;    // -1: none drawn
} streams_t;

// Contiguous streams over tokens[lo, lo+n). Returns 0, or -1 with one line when a stream would be
// shorter than T+1 tokens: "the training split's 100 tokens in 8 streams of 12 tokens: a stream needs
// at least ctx+1 = 17; use a smaller --batch or --ctx". Allocates nothing.
int streams_init(streams_t *s, size_t lo, size_t n, int B, int T, char *err, size_t errlen);
// Shuffled chunks of `chunk` tokens (chunk > 0; 0 is streams_init), permuted from `seed`, at cycle 0.
// Returns 0, or -1 with one line: a chunk shorter than T+1 ("--stream-chunk 16 is shorter than
// ctx+1 = 17"), or fewer chunks than rows ("the training split's 100 tokens hold 3 chunks of 32
// tokens, fewer than the 4 rows of a batch; use a smaller --stream-chunk or --batch").
int streams_init_chunked(streams_t *s, size_t lo, size_t n, int B, int T, size_t chunk, uint64_t seed, char *err,
                         size_t errlen);
void streams_free(streams_t *s);
// Where row b's stream starts in the token array (contiguous: lo + b·len; chunks: lo + π(cycle·B + b)·L).
size_t streams_row_start(streams_t *s, int b);
// Whether the next segment wraps (offset + T + 1 > len).
int streams_will_wrap(const streams_t *s);
// Wrap now if the next segment would not fit (offset 0; chunk mode: cycle + 1); returns 1 if it did —
// the memory must be cleared before the segment's forward — else 0. Then advance_offset after reading.
int streams_begin_segment(streams_t *s);
// The next segment into x, y (B, T) row-major: row b = stream b. Returns streams_begin_segment's value.
int streams_next(streams_t *s, const int32_t *tokens, int32_t *x, int32_t *y);
// A restored offset is one streams_next can have left: a multiple of T in [0, len). Returns 0, or -1
// with one line naming the value.
int streams_check_offset(const streams_t *s, double offset, char *err, size_t errlen);
// A restored cycle (chunk mode): an integer in [0, 2^50]. Returns 0, or -1 with one line.
int streams_check_cycle(const streams_t *s, double cycle, char *err, size_t errlen);

#endif
