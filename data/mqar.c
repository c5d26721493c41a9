// mqar.c — the MQAR generator (layout and rules in mqar.h).
#include "data/mqar.h"

#include <string.h>

#include "base/check.h"

int mqar_check(const mqar_cfg_t *c, char *err, size_t errlen) {
    if (c->vocab < 3 || c->vocab > MQAR_MAX_VOCAB)
        return seterr(err, errlen, "mqar: vocabulary %d is outside [3, %d]", c->vocab, MQAR_MAX_VOCAB);
    if (c->len < 4 || c->len > MQAR_MAX_LEN)
        return seterr(err, errlen, "mqar: sequence length %d is outside [4, %d]", c->len, MQAR_MAX_LEN);
    if (c->pairs < 1) return seterr(err, errlen, "mqar: %d key-value pairs; at least 1 is needed", c->pairs);
    if ((long)c->pairs * 4 > c->len)
        return seterr(err, errlen, "mqar: %d pairs do not fit in length %d: the pairs take 2D = %ld tokens and their queries "
                    "another 2D (length >= 4D = %ld)", c->pairs, c->len, 2L * c->pairs, 4L * c->pairs);
    int keys = c->vocab / 2 - 1, values = c->vocab - c->vocab / 2;
    if (c->pairs > keys || c->pairs > values)
        return seterr(err, errlen, "mqar: vocabulary %d is too small for %d pairs: keys are ids [1, %d) (%d of them) and values "
                    "[%d, %d); it needs a vocabulary of at least %d", c->vocab, c->pairs, c->vocab / 2, keys, c->vocab / 2,
                    c->vocab, 2 * c->pairs + 2);
    return 0;
}

// Is v among a[0], a[stride], ..., a[(n−1)·stride]?
static int seen(const int32_t *a, int n, int stride, int32_t v) {
    for (int i = 0; i < n; i++)
        if (a[(size_t)i * stride] == v) return 1;
    return 0;
}

void mqar_generate(const mqar_cfg_t *c, rng_t *rng, int32_t *seq, int32_t *targets) {
    int N = c->len, D = c->pairs, half = c->vocab / 2;
    for (int t = 0; t < N; t++) {
        seq[t] = 0;
        targets[t] = MQAR_NO_TARGET;
    }
    // The context: D distinct keys at even positions, D distinct values at odd ones, drawn by rejection
    // (each draw is uniform over the ids not yet taken, so the pairing is a uniform random one).
    for (int i = 0; i < D; i++) {
        int32_t k, v;
        do k = 1 + (int32_t)rng_below(rng, (uint64_t)(half - 1)); while (seen(seq, i, 2, k));
        do v = half + (int32_t)rng_below(rng, (uint64_t)(c->vocab - half)); while (seen(seq + 1, i, 2, v));
        seq[2 * i] = k;
        seq[2 * i + 1] = v;
    }
    // The queries: pair i goes to a free slot drawn uniformly (a slot is free while its key position
    // still holds the filler 0; keys are never 0), so the query order is a random permutation too.
    int slots = (N - 2 * D) / 2;
    for (int i = 0; i < D; i++) {
        int p;
        do p = 2 * D + 2 * (int)rng_below(rng, (uint64_t)slots); while (seq[p] != 0);
        seq[p] = seq[2 * i];
        seq[p + 1] = seq[2 * i + 1];
        targets[p] = seq[2 * i + 1];
    }
}

void mqar_sequence(const mqar_cfg_t *c, uint64_t seed, uint64_t index, int32_t *seq, int32_t *targets) {
    rng_t base, r;
    rng_seed(&base, seed ^ 0x6D71617200000000ull);  // "mqar": sets by seed never share the training streams' seeding
    rng_fork(&base, index, &r);
    mqar_generate(c, &r, seq, targets);
}

void mqar_batch(const mqar_cfg_t *c, rng_t *rng, int B, int32_t *x, int32_t *y) {
    for (int b = 0; b < B; b++) mqar_generate(c, rng, x + (size_t)b * c->len, y + (size_t)b * c->len);
}

int mqar_count_targets(const int32_t *targets, int n) {
    int k = 0;
    for (int t = 0; t < n; t++) k += targets[t] != MQAR_NO_TARGET;
    return k;
}
