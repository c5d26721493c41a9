// checkpoint.h — a model, its tokenizer and its training state in one safetensors file
// (ARCHITECTURE.md §5; every tensor and metadata key is documented in docs/checkpoint.md).
// Metadata: "format" = "attnlab", "format_version" = "1", "config" (JSON: vocab, dim, heads, ctx,
// layers — the spec with every option resolved, and pos ("rope" | "none") unless it is learned), "tokenizer" (JSON), and "train_state" (JSON, opaque
// here: train.c owns its keys); config has "memory" (tokens) when the model has segment memory.
// Tensors: every parameter-table entry by name, plus the training state unless exported without it:
// the AdamW moments "adam.m.<name>" and "adam.v.<name>", and a memory model's segment-memory state
// "memory.state.<i>" (1-D, seg_mem_t.state[i] of block i in model_block order, for blocks that keep one).
#ifndef ATTNLAB_CHECKPOINT_H
#define ATTNLAB_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "tokenizer/tokenizer.h"

#define CKPT_FORMAT_VERSION 1

#define CKPT_MEM_STATE_PREFIX "memory.state."

// Write atomically (the previous file survives any failure). train_state may be NULL.
int ckpt_save(const char *path, const model_t *m, const tokenizer_t *tok, const char *train_state,
              int with_optimizer, char *err, size_t errlen);
// The same, plus (with_optimizer and mem not NULL) every block's segment-memory state as
// "memory.state.<i>" — what `train` saves so that --resume continues the streams exactly.
int ckpt_save_run(const char *path, const model_t *m, const tokenizer_t *tok, const char *train_state,
                  int with_optimizer, const seg_mem_t *mem, char *err, size_t errlen);

typedef struct {
    model_t model;        // built from the file's config and filled with its weights
    tokenizer_t tok;
    char *train_state;    // JSON text or NULL
    int has_optimizer;    // 1 if AdamW moments were present and loaded
    // The segment-memory state, if the file has any (only with optimizer state and config memory > 0):
    // mem_blocks = model_n_blocks, mem_state[i] block i's floats (mem_floats[i] of them) or NULL when
    // absent. Sizes are not checked against the model here: they depend on the run's batch (train.c).
    int mem_blocks;
    float **mem_state;
    size_t *mem_floats;
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
