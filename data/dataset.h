// dataset.h — a text file read whole, tokenized once, split 90/10 (nanoGPT), and the windows
// drawn from it: random training/validation batches and full-split evaluation windows
// (ARCHITECTURE.md §4 and §6 "What --eval measures").
// Shapes: B batch, T window length (T <= ctx), x and y are (B, T) row-major token ids.
#ifndef ATTNLAB_DATASET_H
#define ATTNLAB_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "base/rng.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    uint8_t *text;      // the whole file (text_bytes), read once
    size_t text_bytes;
    uint64_t text_fnv1a64;  // fnv1a64(text, text_bytes): the hash of exactly the bytes tokenized
    int32_t *tokens;    // all tokens of the file (n_tokens)
    size_t n_tokens;
    size_t n_train;     // tokens[0, n_train) train; tokens[n_train, n_tokens) validate; n_train = floor(0.9 n)
} dataset_t;

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

// Training batch: for b = 0..B-1 in order, one draw off = rng_below(n_train - T), i.e. uniform in
// [0, n_train - T - 1]; x[b*T + t] = tokens[off + t], y[b*T + t] = tokens[off + t + 1] (t < T).
// Requires n_train >= T+1 (dataset_load guarantees it for T <= ctx).
void dataset_train_batch(const dataset_t *ds, rng_t *rng, int B, int T, int32_t *x, int32_t *y);
// Same inside the validation split: off = n_train + rng_below(n_val - T), in [n_train, n_tokens - T - 1].
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
