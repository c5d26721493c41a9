// attn_map.h — `infer CKPT --attn-map OUT.png --prompt TEXT --layer L --head H`: the attention
// probabilities one head of one layer gives the prompt's tokens (block_ops_t.attn_map: softmax,
// softmax(persist), adaptive, allattn, collab), and their picture drawn by gnuplot (cli/gnuplot.h).
// The prompt is one window (T ≤ ctx) run without segment memory; performer and linformer never form
// the probabilities and are refused.
#ifndef ATTNLAB_ATTN_MAP_H
#define ATTNLAB_ATTN_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

typedef struct {
    int T;     // queries and key positions (the prompt's tokens)
    int E;     // extra key columns without a position (persistent pairs), after the T
    float *p;  // (T, T + E): p[i·(T+E) + j], row i summing to 1, 0 for key positions j > i
} attn_map_t;

// The map of (layer, head) for tokens (1 ≤ T ≤ ctx): allocates m's activations for (1, T) if it has
// none (a model with activations must hold B = 1 and T), runs the forward (inference, no memory), reads the mixer's probabilities. Returns 0, or -1
// with one line: layer or head out of range, T out of range, or a kind without probabilities (naming
// the layer and kind).
int attn_map_compute(model_t *m, const int32_t *tokens, int T, int layer, int head, attn_map_t *out, char *err,
                     size_t errlen);
void attn_map_free(attn_map_t *a);

// The picture: queries as rows (top to bottom), key positions as columns (then the E persistent ones
// after a rule), colour = probability; labels[t] (T strings, or NULL for positions) name the tokens.
int attn_map_png(const char *png, const attn_map_t *a, const char *const *labels, const char *title, char *err,
                 size_t errlen);

#endif
