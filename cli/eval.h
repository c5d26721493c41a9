// eval.h — loss, perplexity and bits per byte over a token sequence, exactly as ARCHITECTURE.md §6
// defines them: windows of ctx+1 tokens overlapping by one (window w covers t[w·ctx … w·ctx+ctx]),
// each a fresh context, every token after the first predicted once; loss = mean nats per predicted
// token; bpb = total nats / (ln 2 · bytes of the predicted tokens).
#ifndef ATTNLAB_EVAL_H
#define ATTNLAB_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "base/rng.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    double nats;     // total
    size_t tokens;   // predicted tokens
    size_t bytes;    // bytes of text those tokens stand for
} eval_sums_t;

// Full evaluation of tokens[0..n) with the model's ctx; runs up to m->max_B windows per forward.
void eval_sequence(model_t *m, const tokenizer_t *tok, const int32_t *tokens, size_t n, eval_sums_t *out);
// Add one forward's per-position losses (m->losses, B·T) and their targets' byte counts.
void eval_accumulate(const model_t *m, const tokenizer_t *tok, const int32_t *targets, int B, int T, eval_sums_t *s);
double eval_loss(const eval_sums_t *s);
double eval_bpb(const eval_sums_t *s);

#endif
