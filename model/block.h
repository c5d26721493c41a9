// block.h — the block interface: every mixer (attention) and ffn kind is one `block_ops_t`
// instance in its own file, listed in blocks/registry.c. The model loop (model.c) owns embeddings,
// LayerNorms, residuals, dropout on residual branches and the loss; it calls blocks only through
// this table. Adding a kind = one file + one registry line.
//
// Dimension letters (PyTorch order everywhere): B batch, T time (≤ ctx), C model width d,
// H heads, D head width C/H, V vocabulary.
//
// Conventions shared by every kind:
//  - forward reads x (B,T,C), the layer's LayerNorm output, writes y (B,T,C) (overwrites), and
//    saves what backward needs in `act` (its own slice of the activation arena, act_floats long).
//  - backward reads dy (B,T,C) and the same x and act, ACCUMULATES into dx (B,T,C) (+=) and into
//    its parameters' ->grad (+=). Gradients are zeroed once per step by the model.
//  - scratch is shared by all blocks (scratch_floats long), valid only during one call.
//  - decode_step processes one token at position pos (0 ≤ pos < ctx) of one sequence, with cache
//    (cache_floats long) holding what earlier positions left; it must give the same y as forward.
//  - optional slots may be NULL.
#ifndef ATTNLAB_BLOCK_H
#define ATTNLAB_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "model/params.h"
#include "base/rng.h"
#include "model/spec.h"

// How the model knows positions (docs/long_context.md; LONG_CONTEXT.md §1): a learned absolute
// table `wpe` added to the token embedding (GPT-2, the default), rotary embeddings applied by every
// attention kind to its queries and keys (no table), none (causal masking alone, no table), or
// learned relative keys (rel: each softmax-family layer's attn.rel_k (D, R), a key per distance
// i − j added to the content key, blocks/relpos.h; the Adaptive Span reference's key_pe).
typedef enum { POS_LEARNED = 0, POS_ROPE = 1, POS_NONE = 2, POS_REL = 3 } pos_scheme_t;

typedef struct {
    int vocab;     // V
    int dim;       // C
    int heads;     // H
    int ctx;       // maximum T
    int n_layers;  // L (for the 0.02/sqrt(2L) output-projection init)
    pos_scheme_t pos;  // position scheme (model-wide; stored in the checkpoint config)
    int memory;    // M: segment memory in tokens (0: none); set by model_set_memory, stored in the config when > 0
    int rel_reach; // --pos rel: R, the distances 0 … R−1 that attn.rel_k holds; 0 when building means
                   // ctx + memory (model_build fills it in; a model rebuilt at another ctx keeps it)
} model_dims_t;

// Segment memory (LONG_CONTEXT.md §2; docs/long_context.md "Segment memory"): what the blocks
// remember of earlier segments of the same B streams, without gradient (Transformer-XL). Every row
// shares n and pos0 — training streams advance in lockstep and wrap together; evaluation and
// decoding have one stream. Made by model_mem_init (model.h), passed to model_forward in run_ctx_t.
typedef struct {
    int M;           // capacity in tokens (the model's dims.memory when made), > 0
    int B;           // rows (streams) the state is sized for; a forward must have exactly B rows
    int n;           // positions remembered before the current segment: 0 ≤ n ≤ min(M, pos0)
    long pos0;       // stream position of the segment's first token, counted since the memory was last
                     // empty: the rope origin (segment row t sits at pos0 + t, memory row r of n at pos0 − n + r)
    int advance;     // 1: forward leaves each block's state as the next segment needs it (and model_forward
                     // advances n and pos0); 0: the state is only read (gradient checks, repeated forwards)
    int n_blocks;    // 2L, model_block order
    float **state;   // (n_blocks): block i's state, mem_floats(b, B) floats, NULL for blocks that keep none
    size_t *floats;  // (n_blocks): their sizes (for the checkpoint's training state)
} seg_mem_t;

typedef struct {
    int training;   // 1: dropout active and random features may be redrawn
    float dropout;  // probability, 0 = off
    rng_t *rng;     // dropout masks are drawn from here, in a fixed order
    seg_mem_t *mem; // segment memory, or NULL: the forward starts empty (no memory, or windows evaluation)
} run_ctx_t;

typedef enum { ROLE_MIXER = 0, ROLE_FFN = 1 } block_role_t;

typedef struct block block_t;

// Read access to a source checkpoint's tensors under one layer's block prefix (for --init-from):
// find(ctx, "wq", shape, ndim) returns the data of "<prefix>wq" if the source has it with exactly
// that shape, else NULL. heads and dim are the source model's.
typedef struct {
    const void *ctx;
    const float *(*find)(const void *ctx, const char *name, const int64_t *shape, int ndim);
    int heads, dim;
} block_source_t;

typedef struct {
    const char *kind;       // name used in --layers
    block_role_t role;
    const char *options;    // the option names it takes, for messages: "persist" or "" for none
    // Mixers: the ffn kind this mixer implies (allattn: "none"); the layer may not name an ffn, and
    // the resolved spec leaves it out. NULL: the layer's ffn is as named, `mlp` when omitted.
    const char *implied_ffn;
    // Ffns: 1 if the block is the identity (`none`): the layer has no LN2 and no ffn term, and the
    // model calls nothing of it but configure, describe and the sizes (which are 0).
    int identity;
    // Small example specs of this block alone, NULL-terminated, e.g. {"softmax", "softmax(persist=3)", NULL}:
    // one per option path that changes the math, small enough for finite differences at width 8.
    // tests/test_kinds.c runs every cross-kind check on each (a mixer's under the default ffn, an
    // ffn's under softmax), and `train --list-kinds` prints them for the script tests.
    const char *const *examples;
    // Read and validate options from spec (spec_get_*), fill b->priv. Return 0 or -1 with a message.
    // It may replace b->ops by a specialised table of the same kind (softmax with persist): every
    // later call goes through b->ops, never through the registry's table.
    int (*configure)(block_t *b, spec_block_t *spec, char *err, size_t errlen);
    // Write the fully resolved spec of this block, e.g. "mlp(hidden=512)", for the checkpoint config.
    void (*describe)(const block_t *b, char *buf, size_t n);
    // Register tensors under prefix (e.g. "layers.2.attn."), keeping the param_t pointers in priv:
    // params_add(pt, prefix, "wq", (param_spec_t){...}) names the tensor "layers.2.attn.wq".
    void (*register_params)(block_t *b, param_table_t *pt, const char *prefix);
    size_t (*act_floats)(const block_t *b, int B, int T);
    size_t (*scratch_floats)(const block_t *b, int B, int T);
    void (*forward)(block_t *b, float *y, const float *x, float *act, float *scratch, int B, int T,
                    const run_ctx_t *rc);
    void (*backward)(block_t *b, float *dx, const float *dy, const float *x, const float *act,
                     float *scratch, int B, int T, const run_ctx_t *rc);
    // Optional: a term added to the training objective (not to reported loss); adds its gradient
    // to the parameters' ->grad when add_grad is 1.
    float (*extra_loss)(block_t *b, int add_grad);
    // Optional: called after every optimizer step `step` (1-based) — clamps that the saved
    // parameters must satisfy.
    void (*after_step)(block_t *b, long step, rng_t *rng);
    // Optional: called before training step `step` (1-based) runs — random-feature redraws, so that
    // a redraw always precedes steps that train with it and never follows the last one.
    void (*before_step)(block_t *b, long step, rng_t *rng);
    // Incremental decoding of one sequence.
    size_t (*cache_floats)(const block_t *b);
    size_t (*decode_scratch_floats)(const block_t *b);
    void (*decode_step)(block_t *b, float *y, const float *x, int pos, float *cache, float *scratch);
    // Segment memory (LONG_CONTEXT.md §2). Mixers implement it (the model refuses --memory for a mixer
    // whose mem_floats is NULL); ffns remember nothing and leave both NULL.
    //  - mem_floats: floats of state this block keeps for B rows at M = b->dims->memory (> 0).
    //  - forward with rc->mem non-NULL: x (B,T,C) is the segment at stream positions pos0 … pos0+T−1;
    //    the block's state, block_mem_state(b, rc), holds what the n earlier positions left. With
    //    rc->mem->advance it then overwrites the state with what the next segment needs (the last
    //    min(n+T, M) positions, or the carried prefix state). What backward needs of the OLD state it
    //    copies into act first (act_floats and scratch_floats may depend on dims->memory).
    //  - backward gets rc->mem with the forward's n and pos0 (the model keeps them). Stop-gradient: nothing
    //    flows into the state, but the weights get gradient through memory positions' keys and values
    //    computed from it (W_k, W_v).
    //  - rc->mem NULL: exactly the memory-free block (every window starts empty), even if dims->memory > 0.
    //  - decode_step with dims->memory > 0: pos is the stream position (any pos ≥ 0; the model never
    //    slides); a token at segment index pos % ctx sees the positions the segment-wise forward shows it
    //    (memory before its segment, plus its segment so far); cache_floats covers that.
    size_t (*mem_floats)(const block_t *b, int B);
    // Optional: refuse a memory length this block cannot use, one line naming the block (block_where),
    // e.g. linformer: ctx and M multiples of chunk; adaptive: span ≤ max(ctx, M). 0 if fine. Called by
    // model_set_memory for every M, 0 included (model_build calls it with dims->memory): a block with
    // no constraint without memory must accept M = 0.
    int (*check_memory)(block_t *b, int M, char *err, size_t errlen);
    // Optional: refuse memory segments of T rows, read one after another from stream position 0, that
    // this block's memory cannot take, one line naming the block; 0 if fine (e.g. the performer: T must
    // divide ctx, so that no segment crosses one of its window blocks). Called by model_check_segments.
    int (*check_segment)(block_t *b, int T, char *err, size_t errlen);
    void (*free_priv)(block_t *b);  // optional: free what configure allocated beyond priv itself
    // Optional: the learned attention span of each head in tokens (adaptive kinds); returns the
    // number of heads written to out (≤ H), 0 if the kind has no spans. Used by the training log and
    // `infer --spans`.
    int (*spans)(const block_t *b, float *out);
    // Optional: the farthest distance back, in positions, a mixer's output can depend on when its window
    // and memory do not bound it first (shortconv: kernel − 1). NULL: only the window and memory bound it.
    // The memory fixtures (tests/fixture_mem.h) read it to know which earlier tokens must be seen.
    int (*reach)(const block_t *b);
    // Optional: usage statistics gathered over an evaluation pass (PKM: the fraction of memory slots
    // selected and the KL divergence from uniform of the slot weights). stats_begin zeroes the counters
    // and switches counting on (forward then adds to them, outside any timed training step);
    // stats_report switches it off and writes a one-line summary of what was counted since ("" when
    // nothing was). Kinds without statistics leave both NULL and cost nothing.
    void (*stats_begin)(block_t *b);
    void (*stats_report)(block_t *b, char *buf, size_t n);
    // Optional, with stats_begin: the fraction of the block's units used since stats_begin (pkm: slots
    // selected at least once), in [0, 1], or −1 when nothing was counted. Read before stats_report
    // (train's CSV column pkm_usage, docs/logs.md).
    double (*stats_usage)(const block_t *b);
    // Optional (mixers that form attention probabilities; `infer --attn-map`): after forward over ONE
    // sequence (B = 1, T rows, rc->mem NULL, not training) left act, write head h's probabilities into
    // out (T, T + E) row-major: out[i·(T+E) + j] = a_ij, the weight query i gives key position j (0 for
    // j > i: causal zeros), then E columns for keys without a position (persistent pairs), each row
    // summing to 1. Returns E ≥ 0; with out NULL it only returns E. Kinds that never form the T×T
    // probabilities (performer's kernel features, linformer's compressed chunks) leave it NULL.
    int (*attn_map)(const block_t *b, const float *act, int T, int head, float *out);
    // 1: decode_step keeps constant-size state and accepts any pos ≥ 0 (Performer streaming); the
    // model then never slides its window (see model.c decode_step for how positions ≥ ctx embed).
    int unbounded_decode;
    // Mixers: 1 if the kind scores learned relative positions under --pos rel (blocks/relpos.h:
    // softmax, adaptive, allattn); model_build refuses --pos rel for a mixer without it.
    int rel_pos;
    // Mixers: 1 if the kind reads no position signal at all (shortconv: order comes from its causal
    // kernel); --pos rope then rotates nothing in it, and it builds at any head width.
    int no_positions;
    // Optional (--init-from): after the copy by name and shape, initialize this block's tensors as a
    // function of the source's tensors under the same prefix (e.g. collab from a softmax layer's Q/K).
    // seed is the run's --seed. Returns the number of tensors it set (> 0) with a one-line note in
    // msg, 0 if the source has nothing it converts from (msg untouched), or -1 with an error in msg.
    int (*init_from)(block_t *b, const block_source_t *src, uint64_t seed, char *msg, size_t msglen);
} block_ops_t;

struct block {
    const block_ops_t *ops;
    const model_dims_t *dims;
    int layer;  // index, for messages and names
    int dropout_masks;  // 1: the run trains with dropout, so act holds the block's dropout masks (set by model_alloc_acts)
    void *priv; // kind-specific state (options, param_t pointers), malloc'd by configure
    char where[64];  // written by block_where
};

// This block's segment-memory state in rc->mem (NULL when rc or rc->mem is NULL).
float *block_mem_state(const block_t *b, const run_ctx_t *rc);

// How messages name a block: "layer 2 (adaptive)" (b->layer, b->ops->kind), kept in b->where.
const char *block_where(block_t *b);

// registry.c
const block_ops_t *block_find(const char *kind);  // NULL if no such built kind
// The registered kinds, in registry order: block_kind_at(i) for 0 <= i < block_kind_count().
int block_kind_count(void);
const block_ops_t *block_kind_at(int i);
// Error for an unknown or unbuilt kind: names it and lists what is known.
int block_unknown_kind_error(const char *kind, block_role_t role, int layer, char *err, size_t errlen);

// Init std of every output projection: 0.02 / sqrt(2L).
float block_out_proj_std(const model_dims_t *dims);

#endif
