// bpe.h — byte-level BPE: a vocabulary of byte strings, GPT-2 pre-tokenization (pretok.h) and
// tiktoken's rank-based merging; learned from text by bpe_train.h.
//
// Vocabulary: token ids 0..255 are the single bytes 0x00..0xFF; token 256 + i is the byte string
// bytes(left_i) ‖ bytes(right_i) of merge i (left_i, right_i < 256 + i), learned in that order.
// No two tokens have the same bytes. A token's rank is its id.
//
// Encoding (tiktoken's algorithm) of each piece of the pre-tokenized text, independently:
//   a piece whose bytes are a token's is that one token; otherwise
//   parts = the piece's bytes, one token each;
//   while some adjacent parts (a, b) have bytes(a) ‖ bytes(b) equal to a token's bytes:
//       merge the pair whose token has the lowest rank (the leftmost such pair on a tie) into it.
// Decoding writes each
// token's bytes, so decode(encode(s)) = s for every byte string s, invalid UTF-8 included.
#ifndef ATTNLAB_BPE_H
#define ATTNLAB_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/pretok.h"

typedef struct {
    int vocab;              // 256 + n_merges
    int32_t *merges;        // (n_merges, 2): left, right of token 256 + i
    uint32_t *offsets;      // (vocab + 1): token id's bytes are blob[offsets[id], offsets[id + 1])
    uint8_t *blob;
    // private: encode tables (bpe_build)
    struct u64map *pair_rank;   // (a << 32 | b) -> token whose bytes are bytes(a) ‖ bytes(b), for every such pair
    struct u64map *piece_id;    // hash of a token's bytes -> id (whole-piece lookup); collisions checked
    pretok_t *split;
    size_t max_token_bytes;
} bpe_t;

// Build from merges[0 .. 2·n_merges) (copied). Errors, one line: a merge refers to a token not
// yet defined ("merge 5 refers to token 300, defined only after it"), or makes bytes that an
// earlier token already has ("merge 7 repeats the bytes of token 291").
int bpe_build(bpe_t *b, const int32_t *merges, int n_merges, char *err, size_t errlen);
void bpe_free(bpe_t *b);

// Token id's bytes and their count.
static inline const uint8_t *bpe_token(const bpe_t *b, int32_t id, size_t *len) {
    *len = b->offsets[id + 1] - b->offsets[id];
    return b->blob + b->offsets[id];
}

// Append the tokens of one piece to *out (a growing array: *n used of *cap).
void bpe_encode_piece(const bpe_t *b, const uint8_t *piece, size_t len, int32_t **out, size_t *n, size_t *cap);

// Encode text[0..n): see pretok_split for final/streaming; returns the bytes consumed, whose tokens
// were appended to *out (*n_out used of *cap).
size_t bpe_encode(const bpe_t *b, const uint8_t *text, size_t n, int final, int32_t **out, size_t *n_out, size_t *cap);

#endif
