// bpe_train.h — learning BPE merges from text (byte-level, on GPT-2 pre-tokenized pieces).
//
// The text is cut into pieces (pretok.h) and each distinct piece counted. Every piece starts as
// its bytes (tokens 0..255). Each step takes the adjacent token pair (a, b) with the most
// occurrences, summed over pieces weighted by their counts, and replaces every occurrence of it,
// left to right within each piece, with the token for bytes(a) ‖ bytes(b): a new token 256 + i
// recorded as merge i = (a, b), or — when those bytes already form a token — that token, with
// nothing recorded. Ties between pairs of equal count go to the smallest a, then the smallest b
// (token ids), so the same text always gives the same merges. Learning stops when the vocabulary
// has the requested size; pairs never cross a piece boundary.
//
// The counts can be fed in parts (a file streamed in chunks): memory grows with the distinct
// pieces, not with the text.
#ifndef ATTNLAB_BPE_TRAIN_H
#define ATTNLAB_BPE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

typedef struct bpe_counts bpe_counts_t;

bpe_counts_t *bpe_counts_new(char *err, size_t errlen);
void bpe_counts_free(bpe_counts_t *c);
// Count the pieces of s[0..n); final/streaming and the return value as pretok_split.
size_t bpe_counts_add(bpe_counts_t *c, const uint8_t *s, size_t n, int final);

// Learn vocab − 256 merges into *merges (malloc'd, 2 ints each: left, right). Errors, one line:
// vocab < 257, or more merges than the text supports ("--vocab 9000 is more than the training
// text supports: no pair is left after 4321 merges (vocab 4577)"). The counts are consumed (call
// bpe_counts_free after).
int bpe_learn(bpe_counts_t *c, int vocab, int32_t **merges, char *err, size_t errlen);

#endif
