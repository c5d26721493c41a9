// mqar_mix.h — a training mixture of MQAR settings (docs/mqar.md, "Training on a mixture"), as Zoology
// trains its MQAR models: each training row draws one (length, pairs) setting with probability
// proportional to its weight, generates one sequence of that setting (mqar_generate) and pads it to the
// run's ctx with the filler 0 and unscored targets. Causal attention never lets the padding after a
// sequence change that sequence's predictions.
//
// Written as "N:D[:W],N:D[:W],..." (length N, pairs D, integer weight W ≥ 1, default 1), e.g. Zoology's
// training set "64:4:5,128:8,256:16,256:32,256:64" (100,000 sequences of the first kind and 20,000 of
// each other one).
#ifndef ATTNLAB_MQAR_MIX_H
#define ATTNLAB_MQAR_MIX_H

#include <stddef.h>
#include <stdint.h>

#include "base/rng.h"
#include "data/mqar.h"

#define MQAR_MIX_MAX 16  // settings in one mixture

typedef struct {
    int n;                            // settings (0: no mixture)
    mqar_cfg_t cfg[MQAR_MIX_MAX];     // each setting, at the run's vocabulary
    long weight[MQAR_MIX_MAX];        // W of each
    long total;                       // Σ W
} mqar_mix_t;

// Parses `text` into mix at vocabulary `vocab` for rows of `ctx` tokens. 0, or -1 with one line naming the
// problem: syntax, more than MQAR_MIX_MAX settings, a weight outside [1, 1000000], a setting mqar_check
// refuses, or a length above ctx.
int mqar_mix_parse(const char *text, int vocab, int ctx, mqar_mix_t *mix, char *err, size_t errlen);

// B rows of ctx tokens from rng: for each row a setting drawn by weight (one rng_below(total)), then its
// sequence (mqar_generate with the same rng) in the first N tokens, filler 0 and MQAR_NO_TARGET after.
// x, y (B, ctx). Allocates nothing.
void mqar_mix_batch(const mqar_mix_t *mix, int ctx, rng_t *rng, int B, int32_t *x, int32_t *y);

#endif
