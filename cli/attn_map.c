// attn_map.c — one head's attention probabilities over a prompt, and their gnuplot picture (attn_map.h).
#include "cli/attn_map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "cli/gnuplot.h"

int attn_map_compute(model_t *m, const int32_t *tokens, int T, int layer, int head, attn_map_t *out, char *err,
                     size_t errlen) {
    *out = (attn_map_t){0};
    if (layer < 0 || layer >= m->L) return seterr(err, errlen, "--layer %d: the model has layers 0 to %d", layer, m->L - 1);
    if (head < 0 || head >= m->dims.heads)
        return seterr(err, errlen, "--head %d: the model has heads 0 to %d", head, m->dims.heads - 1);
    block_t *b = &m->layers[layer].mixer;
    if (!b->ops->attn_map)
        return seterr(err, errlen, "%s has no attention map: it never forms the attention probabilities (kinds with one: "
                      "softmax, adaptive, allattn, collab)", block_where(b));
    if (T < 1 || T > m->dims.ctx)
        return seterr(err, errlen, "the prompt has %d tokens; the map covers one window of 1 to %d (ctx) tokens", T, m->dims.ctx);
    if (!m->acts) model_alloc_acts(m, 1, T, 0.0f);  // infer: once; a model with activations must hold (1, T)
    CHECK(m->max_B >= 1 && m->max_T >= T);
    run_ctx_t rc = {.training = 0};
    model_forward(m, tokens, NULL, 1, T, &rc);
    out->T = T;
    out->E = b->ops->attn_map(b, NULL, T, head, NULL);
    out->p = xcalloc((size_t)T * (T + out->E), sizeof *out->p);
    b->ops->attn_map(b, m->layers[layer].mixer_act, T, head, out->p);
    return 0;
}

void attn_map_free(attn_map_t *a) {
    free(a->p);
    a->p = NULL;
}

// Tick labels: one per token when there are few enough to read, else every position gnuplot picks.
enum { MAX_LABELLED = 80 };

static void tics(FILE *f, const char *axis, const char *const *labels, int T) {
    if (!labels || T > MAX_LABELLED) {
        fprintf(f, "set %stics out\n", axis);
        return;
    }
    fprintf(f, "set %stics out noenhanced font ',9' (", axis);
    for (int t = 0; t < T; t++) {
        char q[200];
        if (gnuplot_quote(q, sizeof q, labels[t])) snprintf(q, sizeof q, "'%d'", t);
        fprintf(f, "%s%s %d", t ? ", " : "", q, t);
    }
    fprintf(f, ")\n");
}

int attn_map_png(const char *png, const attn_map_t *a, const char *const *labels, const char *title, char *err,
                 size_t errlen) {
    int T = a->T, W = T + a->E;
    char *body = NULL, q[1200];
    size_t len = 0;
    FILE *f = open_memstream(&body, &len);
    CHECK(f != NULL);
    fprintf(f, "$map << EOD\n");
    for (int i = 0; i < T; i++) {
        for (int j = 0; j < W; j++) fprintf(f, "%s%.6g", j ? " " : "", a->p[(size_t)i * W + j]);
        fprintf(f, "\n");
    }
    fprintf(f, "EOD\n");
    if (gnuplot_quote(q, sizeof q, title)) snprintf(q, sizeof q, "'attention map'");
    fprintf(f, "set title %s noenhanced\n", q);
    fprintf(f, "set xlabel 'key (attended to)%s'\nset ylabel 'query (attending)'\n",
            a->E ? ", then the persistent slots" : "");
    fprintf(f, "set xrange [-0.5:%g]\nset yrange [%g:-0.5]\nset size ratio %g\n", W - 0.5, T - 0.5, (double)T / W);
    tics(f, "x", labels, T);
    tics(f, "y", labels, T);
    if (labels && T <= MAX_LABELLED) fprintf(f, "set xtics rotate by 90 right\n");
    if (a->E) {  // the persistent slots: after a rule, one tick in their middle
        fprintf(f, "set arrow from %g, graph 0 to %g, graph 1 nohead front lc rgb '#d62728' lw 2\n", T - 0.5, T - 0.5);
        fprintf(f, "set xtics add ('persistent' %g)\n", T + (a->E - 1) / 2.0);
    }
    fprintf(f, "set palette defined (0 '#ffffff', 1 '#fde725', 2 '#21908d', 3 '#3b528b', 4 '#440154')\n");
    fprintf(f, "set cbrange [0:*]\nset cblabel 'attention probability'\nset key off\n");
    fprintf(f, "plot $map matrix with image\n");
    fclose(f);
    int side = 260 + 14 * W;
    side = side < 720 ? 720 : side > 2400 ? 2400 : side;
    int rc = gnuplot_png(png, side + 160, side, body, "--attn-map", err, errlen);
    free(body);
    return rc;
}
