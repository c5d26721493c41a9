// eval.h — loss, perplexity and bits per byte over a token sequence, exactly as ARCHITECTURE.md §6
// defines them: windows of ctx+1 tokens overlapping by one (window w covers t[w·ctx … w·ctx+ctx]),
// each a fresh context, every token after the first predicted once; loss = mean nats per predicted
// token; bpb = total nats / (ln 2 · bytes of the predicted tokens).
#ifndef ATTNLAB_EVAL_H
#define ATTNLAB_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "data/eval_plan.h"
#include "model/model.h"
#include "base/rng.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    double nats;     // total
    size_t tokens;   // predicted tokens
    size_t bytes;    // bytes of text those tokens stand for
} eval_sums_t;

// Full evaluation of tokens[0..n) with the model's ctx (windows mode of eval_run_plan below); runs up
// to m->max_B windows per forward. Fewer than 2 tokens: zero sums.
void eval_sequence(model_t *m, const tokenizer_t *tok, const int32_t *tokens, size_t n, eval_sums_t *out);
// Add one forward's per-position losses (m->losses, B·T) and their targets' byte counts.
void eval_accumulate(const model_t *m, const tokenizer_t *tok, const int32_t *targets, int B, int T, eval_sums_t *s);

// Evaluation by plan (the modes of data/eval_plan.h, ../shared/design/LONG_CONTEXT.md §3): each window
// (segment) of p is one forward of len ≤ p->ctx tokens; its scored positions [first_scored, len) add
// their nats and bytes to out and, when bk is not NULL, to the bucket of their visible context
// (eval_visible). Needs m->max_T ≥ p->ctx. Sums in target order, so stride S = ctx gives windows
// mode's digits exactly.
//  - windows and stride: every window starts empty (no memory, even on a memory model); up to m->max_B
//    full windows run per forward, a shorter last window alone.
//  - memory M > 0 (needs m->dims.memory = M: model_set_memory before model_alloc_acts): one stream,
//    one segment per forward (B = 1), the memory carried from segment to segment in a seg_mem_t of its
//    own, made and freed here (a training run's memory is never touched); the first segment starts
//    empty. Memory mode with M = 0 is windows mode.
void eval_run_plan(model_t *m, const tokenizer_t *tok, const int32_t *tokens, const eval_plan_t *p, eval_sums_t *out,
                   eval_buckets_t *bk);

// The model m with its window set to ctx tokens (for --ctx longer than trained): builds *out from
// m's resolved spec with dims.ctx = ctx and copies every tensor by name. Only for position schemes
// without a table (rope, none): per kind, nothing else depends on ctx in the forward (the rope tables
// compute positions past their size on the fly; adaptive's span is in the resolved spec, so it stays;
// linformer's chunks are ctx-free; softmax/collab/linformer size only decode caches by ctx). Returns 0,
// or -1 with one line: a learned table has ctx rows, or a tensor whose shape depends on ctx.
int eval_model_at_ctx(model_t *out, const model_t *m, int ctx, char *err, size_t errlen);

double eval_loss(const eval_sums_t *s);
double eval_bpb(const eval_sums_t *s);

#endif
