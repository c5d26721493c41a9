// sampler.c — temperature, top-k, top-p sampling (see sampler.h).
#include "cli/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"

void sampler_init(sampler_t *s, const sampler_cfg_t *cfg, int V, uint64_t seed) {
    CHECK(V >= 1 && cfg->temperature >= 0 && cfg->top_k >= 1 && cfg->top_p > 0 && cfg->top_p <= 1);
    s->cfg = *cfg;
    s->V = V;
    rng_seed(&s->rng, seed);
    s->cand = xmalloc((size_t)V * sizeof *s->cand);
}

void sampler_free(sampler_t *s) {
    free(s->cand);
    s->cand = NULL;
}

static int cand_desc(const void *a, const void *b) {
    const sampler_cand_t *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->id - y->id;  // ties to the lower id
}

// The weights are computed in float: a temperature that is 0 there (1e-50) would make the top logit's
// weight 0/0 = NaN and every other one 0, so it is greedy, as temperature 0 is.
static int greedy(const sampler_t *s) { return (float)s->cfg.temperature == 0.0f; }

int sampler_candidates(sampler_t *s, const float *logits) {
    int V = s->V;
    sampler_cand_t *cand = s->cand;
    float temperature = (float)s->cfg.temperature;
    if (greedy(s)) {
        int best = 0;
        for (int v = 1; v < V; v++)
            if (logits[v] > logits[best]) best = v;
        cand[0] = (sampler_cand_t){.p = 1.0f, .id = best};
        return 1;
    }
    float mx = logits[0];
    for (int v = 1; v < V; v++) mx = logits[v] > mx ? logits[v] : mx;
    for (int v = 0; v < V; v++) {
        cand[v].id = v;
        cand[v].p = expf((logits[v] - mx) / temperature);
    }
    int n = V;
    if (s->cfg.top_k < V || s->cfg.top_p < 1.0) {
        qsort(cand, (size_t)V, sizeof *cand, cand_desc);
        if (s->cfg.top_k < n) n = (int)s->cfg.top_k;
        if (s->cfg.top_p < 1.0) {
            double total = 0, acc = 0;
            for (int i = 0; i < n; i++) total += cand[i].p;
            int keep = 0;
            while (keep < n) {
                acc += cand[keep++].p;
                if (acc >= s->cfg.top_p * total) break;
            }
            n = keep;
        }
    }
    return n;
}

int sampler_sample(sampler_t *s, const float *logits) {
    int n = sampler_candidates(s, logits);
    if (greedy(s)) return s->cand[0].id;  // no draw
    double sum = 0;
    for (int i = 0; i < n; i++) sum += s->cand[i].p;
    double r = rng_uniform(&s->rng) * sum, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += s->cand[i].p;
        if (r < acc) return s->cand[i].id;
    }
    return s->cand[n - 1].id;
}

// ---------------------------------------------------------------------------------------------
// feeding the decoder

int gen_model_streams(const model_t *m) {
    if (m->dims.memory > 0) return 1;
    for (int l = 0; l < m->L; l++)
        if (!m->layers[l].mixer.ops->unbounded_decode) return 0;
    return 1;
}

void gen_feed_init(gen_feed_t *g, const model_t *m) {
    g->streams = gen_model_streams(m);
    g->ctx = m->dims.ctx;
    g->history = xmalloc((size_t)4 * g->ctx * sizeof *g->history);
    g->n = 0;
}

const float *gen_feed(gen_feed_t *g, model_t *m, decode_state_t *ds, int32_t token) {
    int ctx = g->ctx;
    if (!g->streams && ds->pos == ctx) {
        int keep = ctx / 2;
        decode_reset(ds);
        for (size_t i = g->n - (size_t)keep; i < g->n; i++) decode_step(m, ds, g->history[i]);
    }
    g->history[g->n++] = token;
    if (g->n >= (size_t)(4 * ctx)) {  // keep the history buffer bounded
        memmove(g->history, g->history + g->n - ctx, (size_t)ctx * sizeof *g->history);
        g->n = (size_t)ctx;
    }
    return decode_step(m, ds, token);
}

void gen_feed_free(gen_feed_t *g) {
    free(g->history);
    g->history = NULL;
}
