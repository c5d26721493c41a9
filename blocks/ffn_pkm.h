// ffn_pkm.h — what tests and benchmarks may see of the pkm ffn (blocks/ffn_pkm.c) beyond its vtable.
#ifndef ATTNLAB_FFN_PKM_H
#define ATTNLAB_FFN_PKM_H

#include <stdint.h>

#include "model/block.h"

// Resolved options of a pkm block.
void pkm_shape(const block_t *b, int *slots, int *k, int *heads, int *dk);
// Views into a pkm block's saved activations for N = B·T rows: the selected slots (N, heads, k) in
// order (best first), their softmax weights (N, heads, k), the pre-LayerNorm query (N, heads·dk).
const int32_t *pkm_act_slots(const block_t *b, const float *act, int N);
const float *pkm_act_weights(const block_t *b, const float *act, int N);
const float *pkm_act_query(const block_t *b, const float *act, int N);
// Usage since stats_begin: fraction of slots selected at least once, and KL(p || uniform) in nats of
// p = each slot's summed softmax weight / the total.
void pkm_usage(const block_t *b, double *used_frac, double *kl);

#endif
