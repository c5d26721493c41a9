// mqar_score.h — recall accuracy on MQAR (data/mqar.h): the share of answer tokens whose most probable
// prediction is the value paired with the query key, over the answer tokens only, and the mean loss over
// the same tokens (what training minimizes).
#ifndef ATTNLAB_MQAR_SCORE_H
#define ATTNLAB_MQAR_SCORE_H

#include <stdint.h>

#include "data/mqar.h"
#include "model/model.h"

typedef struct {
    long answers;    // scored targets seen
    long correct;    // of which argmax == target
    double nats;     // their summed cross-entropy
} mqar_score_t;

// Add rows n < N of probs (N,V) whose target y[n] is scored: correct when argmax_v probs[n,v] == y[n]
// (ties: the lowest id wins, so a model that predicts a flat distribution is wrong unless the answer is
// the lowest id), losses[n] added to nats.
void mqar_count(const float *probs, const float *losses, const int32_t *y, int N, int V, mqar_score_t *s);

// Score n sequences of the held-out set `seed` (mqar_sequence(c, seed, 0..n−1)), at most m->max_B per
// forward; the model's window must hold c->len (m->max_T ≥ len). x, y: room for max_B·len each.
void mqar_score_set(model_t *m, const mqar_cfg_t *c, uint64_t seed, int n, int32_t *x, int32_t *y, mqar_score_t *s);

double mqar_accuracy(const mqar_score_t *s);   // correct / answers (0 when nothing was scored)
double mqar_loss(const mqar_score_t *s);       // nats / answers

#endif
