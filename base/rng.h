// rng.h — the run's random number generator: xoshiro256** seeded by splitmix64.
// Its whole state is four uint64 words, saved in the checkpoint so that resume is exact.
#ifndef ATTNLAB_RNG_H
#define ATTNLAB_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} rng_t;

void rng_seed(rng_t *r, uint64_t seed);
uint64_t rng_u64(rng_t *r);
// Uniform in [0, n) without modulo bias; n > 0.
uint64_t rng_below(rng_t *r, uint64_t n);
// Uniform float in [0, 1) with 24 random bits.
float rng_uniform(rng_t *r);
// Standard normal (Box-Muller, one value per call; deterministic given the state).
float rng_normal(rng_t *r);
// An independent stream derived from this one's current state and a stream id
// (used for eval sampling, dropout, so that evaluating never changes training).
void rng_fork(const rng_t *parent, uint64_t stream, rng_t *child);

#endif
