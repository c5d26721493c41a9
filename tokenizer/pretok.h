// pretok.h — GPT-2's pre-tokenization: the text is cut into pieces by the pattern tiktoken's "gpt2"
// encoding uses, and BPE merges never cross a piece boundary.
//
//   '(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s
//
// matched left to right, leftmost-first alternation (tiktoken's form of the original GPT-2
// pattern; the possessive quantifiers give the same matches). Compiled with PCRE2 (8-bit, UTF,
// Unicode properties for \s, \p{L}, \p{N}; JIT when the library has it), $ matching only at the
// end of the text. Invalid UTF-8 (which tiktoken never sees: it splits str) matches no alternative:
// every byte that is not part of a well-formed UTF-8 sequence is a piece of its own. The pieces
// concatenate to the text exactly.
#ifndef ATTNLAB_PRETOK_H
#define ATTNLAB_PRETOK_H

#include <stddef.h>
#include <stdint.h>

typedef struct pretok pretok_t;

// Compile the pattern. Returns NULL with one line in err if PCRE2 refuses it (it does not).
pretok_t *pretok_new(char *err, size_t errlen);
void pretok_free(pretok_t *p);

typedef void (*pretok_piece_fn)(void *ctx, const uint8_t *piece, size_t len);

// A piece is final when more text appended after s[0..n) could not change it: a match is
// examined at most one character past its end (and an alternative fails for lack of text only
// within 5 bytes of the end), so a piece ending at least PRETOK_MARGIN bytes before n is final.
#define PRETOK_MARGIN 16

// Call fn for each piece of s[0..n) in order. final != 0: the text ends at n; every piece is
// emitted and n is returned. final == 0 (streaming): only final pieces are emitted; returns the
// number of bytes they cover (the caller keeps s[ret..n) and calls again with more text after it).
// Not thread-safe on one pretok_t (it owns the match data).
size_t pretok_split(pretok_t *p, const uint8_t *s, size_t n, int final, pretok_piece_fn fn, void *ctx);

#endif
