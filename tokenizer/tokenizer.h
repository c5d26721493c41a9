// tokenizer.h — the byte, char and BPE tokenizers (ARCHITECTURE.md §4, docs/tokenizers.md).
// byte: token = one byte, vocab 256, accepts any input. char: token = one Unicode code point,
// vocab = the distinct code points of the training file sorted ascending (nanoGPT's
// Shakespeare-char setup: 65 on Tiny Shakespeare). A BOM (U+FEFF) and CR are ordinary text.
// bpe: byte-level BPE (tokenizer/bpe.h): 256 byte tokens and the merges learned from the training
// text (tokenizer/bpe_train.h); accepts any input, invalid UTF-8 included.
//
// Contracts: functions that can fail on user input return 0 on success and -1 with a one-line
// message in (err, errlen). Token ids are in [0, vocab_size); passing an id outside that range
// to tok_token_bytes/tok_decode is a programming error (dies). A tokenizer_t filled by
// tok_init_byte / tok_build_char / tok_from_json owns its memory; release it with tok_free
// (safe on a zeroed or already freed tokenizer). Failed builds/parses leave *t zeroed.
#ifndef ATTNLAB_TOKENIZER_H
#define ATTNLAB_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tokenizer/bpe.h"

// raw: token = an id in [0, vocab_size) with no text behind it (synthetic tasks such as MQAR,
// data/mqar.h); it encodes and decodes no text (callers refuse text work on it, tok_is_text).
typedef enum { TOK_BYTE = 0, TOK_CHAR = 1, TOK_BPE = 2, TOK_RAW = 3 } tok_kind_t;

typedef struct {
    tok_kind_t kind;
    int vocab_size;        // 256 for byte; number of distinct code points for char; 256 + merges for bpe
    bpe_t *bpe;            // bpe: the vocabulary and its encode tables; NULL otherwise
    uint32_t *codepoints;  // char: sorted code points (vocab_size); NULL for byte
    // private: encode lookup for char. bmp[cp] = id or -1 for cp < 0x10000 (65536 entries);
    // code points above the BMP are found by binary search over codepoints.
    int32_t *bmp;
} tokenizer_t;

void tok_init_byte(tokenizer_t *t);
// The raw-id tokenizer of vocab ids (1 ≤ vocab ≤ 2^21).
void tok_init_raw(tokenizer_t *t, int vocab);
// 1 for the text tokenizers (byte, char, bpe), 0 for raw: tok_encode fails on raw, and tok_token_bytes
// and tok_decode must not be called with it.
int tok_is_text(const tokenizer_t *t);

// Char vocab = the distinct code points of text[0..n), sorted ascending. Errors: empty text;
// invalid UTF-8 (bad lead/continuation byte, overlong, surrogate, > U+10FFFF, truncated) ->
// "char tokenizer: invalid UTF-8 at byte offset N (use --tokenizer byte for binary text)",
// N being the offset of the first byte of the bad sequence.
int tok_build_char(tokenizer_t *t, const uint8_t *text, size_t n, char *err, size_t errlen);

// BPE with vocab tokens learned from text[0..n) (bpe_train.h; its errors: vocab < 257, or more
// than the text supports).
int tok_learn_bpe(tokenizer_t *t, const uint8_t *text, size_t n, int vocab, char *err, size_t errlen);
// BPE from merges (2 ints each), checked as bpe_build checks them.
int tok_from_merges(tokenizer_t *t, const int32_t *merges, int n_merges, char *err, size_t errlen);

// Encode text[0..n) into *n_out tokens in *out (malloc'd; free() it; allocated even if n == 0).
// Char errors, prefixed "<what>: " when what is non-NULL (e.g. "prompt", "'file.txt'"):
//   "char tokenizer: invalid UTF-8 at byte offset N (...)" as above;
//   "character U+XXXX ('c') at byte offset N is not in the checkpoint's char vocabulary"
//   (the ('c') part only for printable ASCII). On error *out = NULL, *n_out = 0.
int tok_encode(const tokenizer_t *t, const uint8_t *text, size_t n, int32_t **out, size_t *n_out,
               const char *what, char *err, size_t errlen);

// Streaming form of tok_encode for a text read in parts: encodes the longest prefix of
// text[0..n) whose tokens more text could not change (all of it when final != 0), appends them to
// *out (*n_out used of *cap, grown with realloc) and sets *consumed to that prefix's length; the
// caller keeps text[*consumed..n) and passes it again with what follows. base is the offset of
// text[0] in the whole text (for messages). Errors as tok_encode (nothing appended).
int tok_encode_stream(const tokenizer_t *t, const uint8_t *text, size_t n, int final, int32_t **out, size_t *n_out,
                      size_t *cap, size_t *consumed, size_t base, const char *what, char *err, size_t errlen);

// Number of bytes of text token id stands for (byte: 1; char: UTF-8 length of its code point;
// bpe: its byte string's length).
int tok_token_bytes(const tokenizer_t *t, int32_t id);
// The longest token's byte count (byte 1, char <= 4, bpe up to the longest merge).
int tok_max_token_bytes(const tokenizer_t *t);

// Write the bytes of token id into buf (room for tok_max_token_bytes); returns the byte count.
int tok_decode(const tokenizer_t *t, int32_t id, uint8_t *buf);

// Checkpoint metadata form, malloc'd: {"kind":"byte"}, {"kind":"char","codepoints":[10,32,...]}
// or {"kind":"bpe","merges":[[116,104],[32,116],...]} (merge i makes token 256 + i), or
// {"kind":"raw","vocab":V}.
char *tok_to_json(const tokenizer_t *t);

// Parse tok_to_json's output. Validates: a JSON object with only known keys, a known kind, for
// char a codepoints array of 1..2^21 integers that are Unicode scalar values (no surrogates,
// <= U+10FFFF) and strictly increasing; for byte neither codepoints nor merges; for bpe a merges
// array of 1..2^20 pairs of integer ids, each defined before its merge, no two tokens with the same bytes.
// For raw an integer vocab in [1, 2^21] and nothing else (vocab only for raw).
int tok_from_json(tokenizer_t *t, const char *json, char *err, size_t errlen);
// A deep copy of src into dst (through the JSON form, so dst is built and validated as a loaded one).
// Returns 0, or -1 with a message.
int tok_copy(tokenizer_t *dst, const tokenizer_t *src, char *err, size_t errlen);

// The vocabulary in tiktoken's file format: one line per token id, ascending, "BASE64 RANK\n"
// with the token's bytes in standard base64 (with padding) and its id as the rank.
// Returns 0, or -1 on a write error (errno set).
int tok_write_tiktoken(const tokenizer_t *t, FILE *f);

// "byte" / "char" / "bpe" -> 0 and *kind set; anything else -> -1 (raw included: it is no
// --tokenizer choice, a synthetic task sets it).
int tok_kind_parse(const char *name, tok_kind_t *kind);
const char *tok_kind_name(tok_kind_t kind);

void tok_free(tokenizer_t *t);

#endif
