// shard.h — token shards: a text tokenized once into a binary file that training memory-maps
// (docs/tokenizers.md "Token shards"). All integers little-endian.
//
//   offset  size  field
//        0     8  magic "ATNLSHRD"
//        8     4  version (1)
//       12     4  token width in bits: 16 (vocab <= 65536) or 32
//       16     8  n_tokens: tokens in the shard
//       24     8  n_train: the training split's tokens when the shard is trained on alone (the
//                 split training on the text would make: floor(0.9 n) tokens, or for bpe the
//                 tokens of the text's first floor(0.9 bytes) bytes)
//       32     8  text_bytes: bytes of the text it was made from
//       40     8  text_fnv1a64: that text's hash (data/dataset.h fnv1a64, what a checkpoint keeps)
//       48     8  tokenizer_fnv1a64: fnv1a64 of the tokenizer's JSON form (tokenizer.h tok_to_json)
//       56     4  tokenizer JSON length J
//       60     4  data offset D = 64 + J rounded up to a multiple of 64
//       64     J  the tokenizer's JSON form (so a shard alone names its tokenizer), zero padding to D
//        D     …  n_tokens token ids, width/8 bytes each; the file ends there
//
// Opening checks every field (magic, version, width, the file's size = D + n_tokens·width/8
// exactly, the JSON parses and matches its hash, n_train <= n_tokens) and maps the tokens
// read-only; the ids themselves are checked against the vocabulary as they are read.
#ifndef ATTNLAB_SHARD_H
#define ATTNLAB_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

#define SHARD_MAGIC "ATNLSHRD"
#define SHARD_VERSION 1
#define SHARD_HEADER 64

typedef struct {
    char *path;
    int width;                 // bytes per token: 2 or 4
    uint64_t n_tokens, n_train, text_bytes, text_fnv1a64, tok_fnv1a64;
    tokenizer_t tok;           // parsed from the header
    void *map;                 // the whole file, mapped read-only
    size_t map_len;
    const uint8_t *data;       // map + D
} shard_t;

// Whether path starts with the shard magic (a file that cannot be read is "not a shard": the text
// reader then names the problem).
int shard_is_shard(const char *path);

// Open and map. Errors, one line naming the path: "shard 'X' is truncated: its header says N
// tokens of 2 bytes after byte D (M bytes), the file has K", "'X' is not a token shard (no
// ATNLSHRD magic)", "shard 'X' has version 7; this build reads version 1", ... Returns 0, or -1
// with *s zeroed.
int shard_open(shard_t *s, const char *path, char *err, size_t errlen);
void shard_close(shard_t *s);

// Tokens [off, off + n) widened into dst. Returns 0, or -1 with one line naming the first id that
// is not below vocab ("shard 'X': token 70000 at index 12 is outside the vocabulary of 512").
int shard_read(const shard_t *s, uint64_t off, size_t n, int vocab, int32_t *dst, char *err, size_t errlen);

// fnv1a64 of tok_to_json(tok): what a shard records and a run compares.
uint64_t shard_tok_hash(const tokenizer_t *tok);

// Bytes of text shard_prepare and shard_learn_bpe read at a time (4 MiB; tests make it small to
// cross many chunk ends on a small text).
extern size_t shard_chunk_bytes;

// Tokenize the text file in_path into the shard out_path, streaming: the text is read in chunks
// of a few MiB and tokens are written as they come (memory does not grow with the file). The
// token width is 16 bits when the vocabulary fits, else 32. n_train as in the header comment.
// The shard is written to out_path.tmp and renamed over out_path when complete. Errors, one line:
// the text cannot be read, is empty, or is not encodable (char); the output cannot be written.
// On success *n_tokens_out holds the count.
int shard_prepare(const char *in_path, const char *out_path, const tokenizer_t *tok, uint64_t *n_tokens_out, char *err,
                  size_t errlen);

// Learn a BPE vocabulary from the first floor(0.9·size) bytes of the text file path (its training
// split), streaming. Errors as tok_learn_bpe, or the file cannot be read.
int shard_learn_bpe(const char *path, int vocab, tokenizer_t *tok, char *err, size_t errlen);

#endif
