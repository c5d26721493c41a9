// sampler.h — the next token from a row of logits (V): temperature, then top-k, then top-p (nucleus),
// then one draw from the sampler's own random stream (deterministic for a seed).
//   p_v ∝ exp((logit_v − max) / temperature)
//   top-k: keep the k most probable (ties to the lower id); k ≥ V keeps all
//   top-p: of those, keep the smallest most-probable-first prefix whose mass is ≥ top_p of theirs
//   draw:  r = uniform·Σ kept p, the first kept token whose running sum exceeds r
// Temperature 0, or one so small that it is 0 in float (e.g. 1e-50), is greedy: the argmax, ties to the
// lower id, with no draw.
#ifndef ATTNLAB_SAMPLER_H
#define ATTNLAB_SAMPLER_H

#include <stdint.h>

#include <stddef.h>

#include "base/rng.h"
#include "model/model.h"

typedef struct {
    double temperature;  // ≥ 0; 0 = greedy
    long top_k;          // ≥ 1; ≥ V = no truncation
    double top_p;        // (0, 1]; 1 = no truncation
} sampler_cfg_t;

typedef struct {
    float p;  // unnormalised probability exp((logit − max) / temperature)
    int id;
} sampler_cand_t;

typedef struct {
    sampler_cfg_t cfg;
    int V;
    rng_t rng;
    sampler_cand_t *cand;  // (V) scratch: the candidates of the last call
} sampler_t;

void sampler_init(sampler_t *s, const sampler_cfg_t *cfg, int V, uint64_t seed);
void sampler_free(sampler_t *s);
// The token drawn from logits (V).
int sampler_sample(sampler_t *s, const float *logits);
// The candidates the draw chooses among, in s->cand[0..n): by id without truncation, else most
// probable first. Returns n (1 when greedy: the argmax, p 1). What sampler_sample uses; for tests.
int sampler_candidates(sampler_t *s, const float *logits);

// ---------------------------------------------------------------------------------------------
// Feeding a generation's tokens to the decoder (infer.c): where the context window slides.
// A model whose caches hold ctx positions slides when its window is full: the last ctx/2 tokens are
// re-fed at positions 0 … ctx/2−1 (each ctx/2 new tokens cost ctx/2 extra steps, and every token sees
// at least ctx/2 tokens). A model that streams never slides: segment memory (dims.memory > 0:
// decode_step takes the stream position, the blocks window it as the segment-wise forward does), or
// every mixer with constant-size state (Performer).
typedef struct {
    int streams;       // 1: never slide
    int ctx;
    int32_t *history;  // the last tokens fed (up to 4·ctx; a slide re-feeds the last ctx/2)
    size_t n;
} gen_feed_t;

void gen_feed_init(gen_feed_t *g, const model_t *m);
// Whether the model streams (never slides): memory, or every mixer unbounded_decode.
int gen_model_streams(const model_t *m);
// Feed token (sliding first if the window is full); returns decode_step's logits (V).
const float *gen_feed(gen_feed_t *g, model_t *m, decode_state_t *ds, int32_t token);
void gen_feed_free(gen_feed_t *g);

#endif
