// model.h — the decoder-only Transformer with GPT-2 conventions (ARCHITECTURE.md §2):
//   x = wte[tok] + wpe[t] (wpe only with --pos learned; rope and none: x = wte[tok]); per layer: x += drop(mixer(LN1(x))); x += drop(ffn(LN2(x))) (no LN2/ffn
//   when the ffn is `none`); logits = LNf(x)·wteᵀ; loss = mean cross-entropy over the B·T positions (over the scored ones when some targets are MODEL_NO_TARGET).
// Glossary: B batch, T time (≤ ctx), C width, H heads, V vocabulary, L layers.
#ifndef ATTNLAB_MODEL_H
#define ATTNLAB_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "model/block.h"
#include "model/params.h"

#define MODEL_NO_TARGET (-1)  // a target that is not scored (see model_forward)

typedef struct {
    block_t mixer, ffn;
    int has_ffn;                       // 0 when the ffn kind is `none`
    param_t *ln1w, *ln1b, *ln2w, *ln2b; // (C) each; ln2 NULL without ffn
    // activation views for the current (B, T), set by model_alloc_acts
    float *res_in;      // (B,T,C) residual stream entering the layer
    float *ln1, *ln1_mean, *ln1_rstd;   // (B,T,C), (B,T), (B,T)
    float *res_mid;     // (B,T,C) after the mixer's residual add
    float *ln2, *ln2_mean, *ln2_rstd;
    float *mask1, *mask2;               // (B,T,C) residual-branch dropout masks (NULL without dropout)
    float *mixer_act, *ffn_act;         // the blocks' own saved activations
} layer_t;

typedef struct {
    model_dims_t dims;
    char *spec;          // the layer spec with every option resolved (checkpoint config)
    int L;
    layer_t *layers;
    param_t *wte, *wpe, *lnfw, *lnfb;  // (V,C), (ctx,C), (C), (C); wpe NULL unless dims.pos == POS_LEARNED
    param_table_t params;

    // activation arena, sized once for (max_B, max_T) by model_alloc_acts
    int max_B, max_T;
    float *acts;
    float *emb_mask;     // (B,T,C) embedding dropout mask (NULL without dropout)
    float *res_out;      // (B,T,C) residual stream after the last layer
    float *lnf, *lnf_mean, *lnf_rstd;
    float *probs;        // (B,T,V) logits, overwritten by probabilities in the loss
    float *losses;       // (B,T) per-position nats
    int32_t *targets;    // (B,T) copy of the last forward's targets
    int32_t *tokens;     // (B,T) copy of the last forward's inputs
    // backward buffers
    float *dres, *dln, *dbranch, *dlogits, *scratch;
    int last_B, last_T;  // shape of the last forward
    int last_scored;     // targets ≥ 0 in the last forward with targets (the loss's denominator)
    seg_mem_t last_mem;  // the last forward's memory (its n and pos0 before advancing), for backward
    int last_has_mem;    // 1 if the last forward ran with memory
} model_t;

// The one walk over the blocks: block i (0 ≤ i < model_n_blocks) is layer i/2's mixer (i even) or
// ffn (i odd), so every walk goes layer by layer, mixer before ffn (identity ffns included).
static inline int model_n_blocks(const model_t *m) { return 2 * m->L; }
static inline block_t *model_block(const model_t *m, int i) {
    return i % 2 ? &m->layers[i / 2].ffn : &m->layers[i / 2].mixer;
}

// The position schemes by name (--pos, checkpoint config "pos"): "learned", "rope", "none".
// pos_scheme_name returns NULL for a value outside the enum; pos_scheme_parse returns -1 for an
// unknown name (or NULL), 0 and *out otherwise.
const char *pos_scheme_name(pos_scheme_t p);
int pos_scheme_parse(const char *s, pos_scheme_t *out);

// Build the model for dims and a --layers spec: parse, configure every block (validating options),
// register parameters, allocate the parameter arenas. Returns 0, or -1 with one clear message.
int model_build(model_t *m, const model_dims_t *dims, const char *layers_spec, char *err, size_t errlen);
// model_build in two steps, for a caller that checks the registered parameters (names, shapes,
// m->params.total) before the arenas exist (ckpt_load against a file's header): parse, configure,
// register — nothing proportional to a parameter's size is allocated — then params_allocate(&m->params).
// Until then no parameter has data; model_free frees either state.
int model_build_registry(model_t *m, const model_dims_t *dims, const char *layers_spec, char *err, size_t errlen);
// Segment memory (LONG_CONTEXT.md §2): set the model's memory length M in tokens (dims.memory) before
// model_alloc_acts (act sizes depend on it). M = 0 switches it off. Refuses, with one line: M < 0,
// --pos learned ("use --pos rope or none"), a mixer kind without memory, and what a block's
// check_memory refuses (linformer chunk multiples, a span above max(ctx, M)). Returns 0 or -1.
int model_set_memory(model_t *m, int M, char *err, size_t errlen);
// Every block accepts memory segments of T rows (block_ops_t.check_segment): 0, or -1 with the first
// refusal's line.
int model_check_segments(model_t *m, int T, char *err, size_t errlen);
// The state of every block for B rows at M = m->dims.memory (> 0), empty (n = 0, pos0 = 0), advance 1.
// Allocates: once per run (training streams: B = batch; evaluation and decoding: B = 1).
void model_mem_init(seg_mem_t *mem, const model_t *m, int B);
// Forget everything (a stream wrapped, or a new text): n = 0, pos0 = 0.
void model_mem_clear(seg_mem_t *mem);
void model_mem_free(seg_mem_t *mem);
// Initialize every parameter from the rng (ARCHITECTURE.md §2 init), and zero the AdamW moments.
void model_init_weights(model_t *m, rng_t *rng);
// Allocate the activation arena for batches up to (B, T) (T ≤ ctx) of a run whose training dropout
// is `dropout` (in [0, 1); > 0 adds the dropout masks, and every block is told so). Once per run.
void model_alloc_acts(model_t *m, int B, int T, float dropout);
// Forward over tokens (B,T). With rc->mem (B rows), the segment continues the memory's streams: blocks
// read and (advance = 1) update their state, and then n = min(n + T, M), pos0 += T. With targets (B,T) returns the mean loss and keeps per-position losses
// in m->losses; a target < 0 (MODEL_NO_TARGET) is not scored: the loss is the mean over the scored positions
// (0 if none), an unscored position's loss is 0 and backward sends no gradient from it (MQAR's answer mask); without, returns 0 and leaves probabilities... (logits) in m->probs.
float model_forward(model_t *m, const int32_t *tokens, const int32_t *targets, int B, int T, const run_ctx_t *rc);
// Backward of (loss_scale · mean loss) after model_forward with targets; accumulates into ->grad.
void model_backward(model_t *m, float loss_scale, const run_ctx_t *rc);
// Sum of the blocks' extra training-objective terms (adds their gradients when add_grad); 0 if none.
float model_extra_loss(model_t *m, int add_grad);
// Per-step hooks of the blocks: before_step before training step `step` (1-based) runs (redraws),
// after_step after its optimizer update (clamps).
void model_before_step(model_t *m, long step, rng_t *rng);
void model_after_step(model_t *m, long step, rng_t *rng);
void model_free(model_t *m);
// Usage statistics of the blocks that keep them (block_ops_t.stats_begin, e.g. pkm) over the forwards
// run between begin and print. begin returns how many blocks count (0: nothing to do, no cost);
// print writes one line per such block to f, each starting with prefix.
int model_stats_begin(model_t *m);
void model_stats_print(model_t *m, FILE *f, const char *prefix);

// ---------------------------------------------------------------------------------------------
// Incremental decoding of one sequence with per-layer caches.
typedef struct {
    float *cache;          // all layers' caches, one allocation
    size_t *cache_offset;  // (2L): block i's cache offset (model_block order)
    float *x, *xn, *y, *scratch, *logits;  // (C), (C), (C), scratch, (V)
    float *mean_rstd;      // 2 floats for the LayerNorm calls
    int pos;               // positions consumed so far
} decode_state_t;

void decode_init(decode_state_t *ds, const model_t *m);
void decode_reset(decode_state_t *ds);
// Feed token at position ds->pos; returns the logits (V) for the next token. pos < ctx unless every
// mixer is unbounded (performer) or the model has segment memory (dims.memory > 0: pos is the stream
// position, and each block shows the token what the segment-wise forward would, LONG_CONTEXT.md §2).
const float *decode_step(model_t *m, decode_state_t *ds, int32_t token);
void decode_free(decode_state_t *ds);

#endif
