// mqar_score.c — recall accuracy on MQAR (see mqar_score.h).
#include "cli/mqar_score.h"

#include "base/check.h"

_Static_assert(MQAR_NO_TARGET == MODEL_NO_TARGET, "the generator's unscored target is the model's");

void mqar_count(const float *probs, const float *losses, const int32_t *y, int N, int V, mqar_score_t *s) {
    for (int n = 0; n < N; n++) {
        if (y[n] < 0) continue;
        const float *p = probs + (size_t)n * V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (p[v] > p[best]) best = v;
        s->answers++;
        s->correct += best == y[n];
        s->nats += losses[n];
    }
}

void mqar_score_set(model_t *m, const mqar_cfg_t *c, uint64_t seed, int n, int32_t *x, int32_t *y, mqar_score_t *s) {
    CHECK(m->max_T >= c->len && m->dims.vocab >= c->vocab);
    run_ctx_t rc = {.training = 0};
    for (int done = 0; done < n;) {
        int B = n - done < m->max_B ? n - done : m->max_B;
        for (int b = 0; b < B; b++)
            mqar_sequence(c, seed, (uint64_t)(done + b), x + (size_t)b * c->len, y + (size_t)b * c->len);
        model_forward(m, x, y, B, c->len, &rc);
        mqar_count(m->probs, m->losses, y, B * c->len, m->dims.vocab, s);
        done += B;
    }
}

double mqar_accuracy(const mqar_score_t *s) { return s->answers ? (double)s->correct / (double)s->answers : 0.0; }
double mqar_loss(const mqar_score_t *s) { return s->answers ? s->nats / (double)s->answers : 0.0; }
