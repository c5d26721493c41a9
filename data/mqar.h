// mqar.h — multi-query associative recall (MQAR; Arora et al., "Zoology", arXiv 2312.04927), generated
// deterministically from a random stream.
//
// One sequence of length N over vocabulary V with D key–value pairs:
//   ids: 0 is the filler; keys are drawn from [1, V/2), values from [V/2, V) (disjoint ranges, as in
//   Zoology), D distinct keys and D distinct values per sequence, paired in drawing order.
//   positions [0, 2D): the pairs, k_0 v_0 k_1 v_1 ... (the context);
//   positions [2D, N): S = ⌊(N − 2D)/2⌋ slots of two tokens (slot s at 2D + 2s, 2D + 2s + 1); every key
//   is queried once, in a random order, in D distinct slots chosen uniformly: the slot holds the key
//   followed by its value. Every other token is the filler 0 (a last odd position included).
// The answer tokens are the values in the query slots: the model, reading the query key at position p,
// must predict the value at p + 1. In next-token form (input x[t] = seq[t], target y[t] = seq[t + 1])
// the only scored targets are y[p] at each query key's position p; every other target is MQAR_NO_TARGET.
// Differences from Zoology's generator: query slots are uniform over the query region (Zoology draws
// them from a power law that favours early slots), the value follows its query in the input (Zoology
// leaves a 0 there), and non-query tokens are the filler (Zoology may draw them at random).
#ifndef ATTNLAB_MQAR_H
#define ATTNLAB_MQAR_H

#include <stddef.h>
#include <stdint.h>

#include "base/rng.h"

#define MQAR_NO_TARGET (-1)   // a target position that is not scored (the model's ignored target)
#define MQAR_MAX_VOCAB (1 << 21)
#define MQAR_MAX_LEN (1 << 20)
// The held-out set train and infer score (mqar_sequence's seed): training draws its sequences from the
// run's data stream instead, a different seeding, so no evaluation sequence is a training one except by
// chance (with keys, values and slots drawn at random, practically never).
#define MQAR_EVAL_SEED 0x2312049270ull

typedef struct {
    int vocab;  // V: ids [0, V)
    int len;    // N: tokens per sequence
    int pairs;  // D: key–value pairs, each queried once
} mqar_cfg_t;

// Checks that the parameters describe a generable task; 0, or -1 with one line naming the problem:
// V in [3, 2^21], N in [4, 2^20], D ≥ 1, the context and the queries fit (2D + 2D ≤ N, i.e. N ≥ 4D: D
// pairs and D query slots), enough keys (D ≤ V/2 − 1) and values (D ≤ V − V/2).
int mqar_check(const mqar_cfg_t *c, char *err, size_t errlen);

// One sequence drawn from rng: seq (N) the tokens; targets (N) the next-token targets, MQAR_NO_TARGET
// except at each query key's position, where it is the paired value. Allocates nothing.
// Precondition: mqar_check(c) == 0.
void mqar_generate(const mqar_cfg_t *c, rng_t *rng, int32_t *seq, int32_t *targets);

// Sequence `index` of the set named by `seed`: mqar_generate from an rng seeded by (seed, index), so a
// set of sequences (e.g. the held-out evaluation set) is fixed by its seed.
void mqar_sequence(const mqar_cfg_t *c, uint64_t seed, uint64_t index, int32_t *seq, int32_t *targets);

// B sequences from rng, one per row: x (B,N) the tokens, y (B,N) their targets (as mqar_generate).
void mqar_batch(const mqar_cfg_t *c, rng_t *rng, int B, int32_t *x, int32_t *y);

// Number of scored targets in targets (N): D for a generated sequence.
int mqar_count_targets(const int32_t *targets, int n);

#endif
