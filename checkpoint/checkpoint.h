// checkpoint.h — a model, its tokenizer and its training state in one safetensors file
// (ARCHITECTURE.md §5; every tensor and metadata key is documented in docs/checkpoint.md).
// Metadata: "format" = "attnlab", "format_version" = "1", "config" (JSON: vocab, dim, heads, ctx,
// layers — the spec with every option resolved, and pos ("rope" | "none") unless it is learned), "tokenizer" (JSON), and "train_state" (JSON, opaque
// here: train.c owns its keys). Tensors: every parameter-table entry by name, plus the AdamW moments
// as "adam.m.<name>" and "adam.v.<name>" unless exported without them.
#ifndef ATTNLAB_CHECKPOINT_H
#define ATTNLAB_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "tokenizer/tokenizer.h"

#define CKPT_FORMAT_VERSION 1

// Write atomically (the previous file survives any failure). train_state may be NULL.
int ckpt_save(const char *path, const model_t *m, const tokenizer_t *tok, const char *train_state,
              int with_optimizer, char *err, size_t errlen);

typedef struct {
    model_t model;        // built from the file's config and filled with its weights
    tokenizer_t tok;
    char *train_state;    // JSON text or NULL
    int has_optimizer;    // 1 if AdamW moments were present and loaded
} ckpt_t;

// Read, validate and build (the activation arena is the caller's: model_alloc_acts). Checks the
// format name and version, the config, every tensor the config requires (present, right shape), and
// refuses tensors it does not know (a foreign or mismatched file). Returns 0 or -1 with one line.
int ckpt_load(const char *path, ckpt_t *out, char *err, size_t errlen);
void ckpt_free(ckpt_t *c);

// Copy every tensor of the checkpoint at `path` whose name and shape match a parameter of m into m
// (for --init-from); then let every block with an init_from hook (block.h) initialize itself from the
// source's tensors under its layer prefix (e.g. collab from softmax's Q/K, seeded by `seed`), their
// one-line notes joined by newlines into notes. *loaded / *total count tensors (a hook's count
// included). Moments are not copied. Returns 0 or -1.
int ckpt_init_from(const char *path, model_t *m, uint64_t seed, int *loaded, int *total, char *notes, size_t notes_len,
                   char *err, size_t errlen);

#endif
