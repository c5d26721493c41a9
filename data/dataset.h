// dataset.h — the tokens trained on, split into training and validation (nanoGPT's 90/10, or a
// separate --val file), and the windows drawn from them: random training/validation batches,
// segment-memory streams and full-split evaluation windows (ARCHITECTURE.md §4 and §6 "What --eval
// measures"; docs/tokenizers.md).
// The tokens come from a text file read whole and tokenized once, or from token shards
// (data/shard.h) memory-mapped: then the training split is never copied (resident memory does
// not grow with the corpus); the validation split is copied into memory (4 bytes a token).
// Shapes: B batch, T window length (T <= ctx), x and y are (B, T) row-major token ids.
#ifndef ATTNLAB_DATASET_H
#define ATTNLAB_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "base/rng.h"
#include "data/shard.h"
#include "data/streams.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    uint8_t *text;      // a text source: the whole file (text_bytes), read once; NULL for shards
    size_t text_bytes;  // shards: the bytes of the texts they were made from, summed
    uint64_t text_fnv1a64;  // fnv1a64(text, text_bytes): the hash of exactly the bytes tokenized
                            // (one shard: its text's; several: dataset_open_shards)
    int32_t *tokens;    // a text source: all tokens of the file (n_tokens); NULL for shards
    size_t n_tokens;
    size_t n_train;     // tokens[0, n_train) train; tokens[n_train, n_tokens) validate (unless --val);
                        // n_train = floor(0.9 n); bpe: the tokens that end within the text's first
                        // floor(0.9 bytes) bytes (dataset_bpe_train_tokens)
    int all_train;      // set after dataset_read / dataset_open_shards, before dataset_tokenize /
                        // dataset_check_shards: every token trains (--val gives validation)
    shard_t *shards;    // a shard source: n_shards mapped shards, shard k = tokens [shard_lo[k], shard_lo[k+1])
    int n_shards;
    uint64_t *shard_lo;
    int vocab;          // shard ids are checked against it as they are read
    const int32_t *val; // the validation tokens, contiguous (n_val): tokens + n_train, or val_owned
    size_t n_val;
    int32_t *val_owned;
} dataset_t;

// Where the bpe tokenizer's training split ends in a text of n bytes: cut = floor(0.9 n). The merges
// are learned on text[0, cut) alone; the whole text is encoded once, and the training split is its
// tokens that end by byte cut (dataset_bpe_train_tokens): a token straddling the cut starts the
// validation split (its first bytes are training text; no validation byte is ever learned from).
size_t dataset_bpe_cut(size_t n);
size_t dataset_bpe_train_tokens(const tokenizer_t *tok, const int32_t *ids, size_t n, size_t cut);

// The FNV-1a continuation: fnv1a64 of a text is fnv1a64_more(fnv1a64(NULL, 0), text, n).
uint64_t fnv1a64_more(uint64_t h, const uint8_t *p, size_t n);

// Read a whole file into *out (malloc'd, free()), *n bytes. Returns 0, or -1 with one line naming
// the path: "cannot open 'X': <reason>", "'X' is a directory, not a text file",
// "cannot read 'X': <reason>", "'X' is empty".
int read_file_bytes(const char *path, uint8_t **out, size_t *n, char *err, size_t errlen);

// The training file's hash that a checkpoint stores ("data_fnv1a64") and --resume compares:
// FNV-1a 64-bit (h = (h ^ byte) * 0x100000001b3) from offset basis 1469598103934665603
// (0x14650fb0739d0383), the value train.c has always used; it is the standard basis
// 14695981039346656037 (0xcbf29ce484222325) with its last digit lost, kept so that runs saved
// before can still be resumed.
uint64_t fnv1a64(const uint8_t *p, size_t n);

// The file is read exactly once, so a pipe or FIFO (`cat f | train /dev/stdin`) works and the hash
// describes the bytes trained on. Two steps, because a char tokenizer is built from the text first:
//   dataset_read(&ds, path)                  ds.text, ds.text_bytes, ds.text_fnv1a64; errors as
//                                            read_file_bytes. Returns 0, or -1 with *ds zeroed.
//   tok_build_char(&tok, ds.text, ds.text_bytes, ...)   (char tokenizer only)
//   dataset_tokenize(&ds, path, &tok, ctx)   tokens and split, errors as dataset_load; path only
//                                            names the file in messages. Returns 0, or -1 with
//                                            the dataset freed (zeroed).
int dataset_read(dataset_t *ds, const char *path, char *err, size_t errlen);
int dataset_tokenize(dataset_t *ds, const char *path, const tokenizer_t *tok, int ctx, char *err, size_t errlen);

// dataset_read then dataset_tokenize: read path, tokenize it with tok (byte, or a char vocab
// already built from this file's bytes) and split.
// Both splits must hold at least ctx+1 tokens, else e.g. "validation split of 'X' has 40 tokens,
// fewer than ctx+1 = 65; use a longer file or a smaller --ctx (the file has 400 tokens: 360 train,
// 40 validation)". Returns 0, or -1 with *ds zeroed.
int dataset_load(dataset_t *ds, const char *path, const tokenizer_t *tok, int ctx, char *err, size_t errlen);
void dataset_free(dataset_t *ds);

// Map the shards paths[0..n) as one token sequence in that order. All must record the same
// tokenizer ("shard 'B' was made by another tokenizer (byte, 256 tokens) than shard 'A' (bpe, 512
// tokens)"). The split (set by dataset_check_shards): the last shard's own n_train marks the start
// of validation (one shard: exactly the split training on its text makes); text_bytes sums, text_fnv1a64 = fnv1a64 of the
// shards' (text_fnv1a64, text_bytes) as 16 little-endian bytes each, or the one shard's own.
// Returns 0, or -1 with one line and *ds zeroed. The shards' tokenizer is ds->shards[0].tok.
int dataset_open_shards(dataset_t *ds, const char *const *paths, int n, char *err, size_t errlen);
// The shards against the run's tokenizer (the same JSON hash, else "shard 'X' was made by another
// tokenizer (bpe, 512 tokens) than <whose> (bpe, 300 tokens)"), then the splits as dataset_tokenize
// checks them; the validation tokens are read into memory. Returns 0, or -1 (dataset freed).
int dataset_check_shards(dataset_t *ds, const tokenizer_t *tok, const char *whose, int ctx, char *err, size_t errlen);

// --val: the validation tokens from path (a text, tokenized with tok, or a shard of tok), replacing
// the split (ds->all_train was set before loading). Needs at least ctx+1 tokens. Returns 0, or -1
// with one line (the dataset is kept; the caller exits).
int dataset_load_val(dataset_t *ds, const char *path, const tokenizer_t *tok, int ctx, char *err, size_t errlen);
// A whole token shard read into memory (*ids, n tokens, malloc'd), after checking it was made by tok
// (whose names tok's owner in the message). 0, or -1 with one line in err.
int dataset_read_shard(const char *path, const tokenizer_t *tok, const char *whose, int32_t **ids, size_t *n, char *err,
                       size_t errlen);

// Tokens [off, off + n) of the sequence into dst (a shard id outside the vocabulary dies with one
// line: the file was damaged after it was opened).
void dataset_tokens(const dataset_t *ds, size_t off, size_t n, int32_t *dst);
// The next segment of the training streams s into x, y: streams_next over dataset_tokens (the
// same rows as streams_next(s, ds->tokens, x, y) on a text). Returns 1 if the streams wrapped.
int dataset_stream_batch(const dataset_t *ds, streams_t *s, int32_t *x, int32_t *y);

// Training batch: for b = 0..B-1 in order, one draw off = rng_below(n_train - T), i.e. uniform in
// [0, n_train - T - 1]; x[b*T + t] = tokens[off + t], y[b*T + t] = tokens[off + t + 1] (t < T).
// Requires n_train >= T+1 (dataset_load guarantees it for T <= ctx).
void dataset_train_batch(const dataset_t *ds, rng_t *rng, int B, int T, int32_t *x, int32_t *y);
// Same inside the validation tokens: off = rng_below(n_val - T), x[b*T + t] = val[off + t] (for the
// 90/10 split that is tokens[n_train + off + t], as before --val existed).
void dataset_val_batch(const dataset_t *ds, rng_t *rng, int B, int T, int32_t *x, int32_t *y);

// Full-split evaluation of tokens t_0..t_{n-1}: window w covers t[w*ctx .. w*ctx+ctx] (ctx+1
// tokens, overlapping the next window by one), so every token after the first is predicted
// exactly once; the last window may be shorter (at least 2 tokens).
// eval_num_windows = ceil((n-1)/ctx), 0 if n < 2.
size_t eval_num_windows(size_t n, int ctx);
// Fill x[0..len) (inputs) and y[0..len) (targets, y[i] = x[i+1] in the text) for window w
// (w < eval_num_windows); returns len, the number of predicted tokens, 1 <= len <= ctx.
int eval_window(const int32_t *tokens, size_t n, int ctx, size_t w, int32_t *x, int32_t *y);

#endif
