// test_attn_map.c — `infer --attn-map`'s probabilities (cli/attn_map.h, block_ops_t.attn_map) against a
// direct double-precision computation from the layer's input and weights, for every kind that has a
// map: softmax, softmax(persist) (persistent columns), adaptive (a span window shorter than the prompt,
// so the trimmed tiles are read back at the right keys), allattn and collab; rows sum to 1 and keys
// after the query are exactly 0. Performer and linformer, and a layer or head out of range, are refused.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/attn_map.h"
#include "model/model.h"
#include "tests/fixture.h"
#include "tests/testlib.h"

enum { V = 11, C = 8, H = 2, D = C / H, CTX = 16, T = 13 };

static const float *tensor(model_t *m, int layer, const char *name) {
    char full[96];
    snprintf(full, sizeof full, "layers.%d.attn.%s", layer, name);
    const param_t *p = params_find(&m->params, full);
    if (!p) {
        printf("  no tensor %s\n", full);
        exit(1);
    }
    return p->data;
}

// row (n) = x (C) · Wᵀ (W: n × C) + b (n, or NULL), in double.
static void affine(double *row, const float *x, const float *W, const float *b, int n) {
    for (int o = 0; o < n; o++) {
        double s = b ? b[o] : 0;
        for (int c = 0; c < C; c++) s += (double)W[(size_t)o * C + c] * x[c];
        row[o] = s;
    }
}

// The expected map (T, T + N) of head h of layer l, from the layer's mixer input (the model's saved LN1
// output) and its tensors. kind: 's' softmax / allattn / adaptive (span S, ramp R: 0 = none), 'c' collab.
typedef struct {
    char kind;
    int persist;   // N persistent pairs (0: none)
    int span_on;   // adaptive span mask
    double S, R;   // span option and ramp
    int dk;        // collab's shared width
} shape_t;

static void direct_map(model_t *m, int l, int h, const shape_t *sh, double *out) {
    const float *x = m->layers[l].ln1;  // (T, C): B = 1
    int N = sh->persist, W = T + N;
    double q[T][16], k[T][16], cbias[T][H];  // widths C or dk ≤ 16
    for (int t = 0; t < T; t++) {
        if (sh->kind == 'c') {
            affine(q[t], x + t * C, tensor(m, l, "cq"), NULL, sh->dk);
            affine(k[t], x + t * C, tensor(m, l, "ck"), NULL, sh->dk);
            affine(cbias[t], x + t * C, tensor(m, l, "cb"), NULL, H);
        } else {
            affine(q[t], x + t * C, tensor(m, l, "wq"), tensor(m, l, "bq"), C);
            affine(k[t], x + t * C, tensor(m, l, "wk"), tensor(m, l, "bk"), C);
        }
    }
    double z = sh->span_on ? sh->S * tensor(m, l, "span")[h] : 0;
    for (int i = 0; i < T; i++) {
        double e[T + 8], sum = 0;
        for (int j = 0; j < W; j++) e[j] = 0;
        for (int j = 0; j <= i; j++) {
            double s = 0, mask = 1;
            if (sh->kind == 'c') {
                const float *mix = tensor(m, l, "mix") + (size_t)h * sh->dk;
                for (int r = 0; r < sh->dk; r++) s += q[i][r] * mix[r] * k[j][r];
                s = (s + cbias[j][h]) / sqrt((double)D);
            } else {
                for (int d = 0; d < D; d++) s += q[i][h * D + d] * k[j][h * D + d];
                s /= sqrt((double)D);
            }
            if (sh->span_on) {
                mask = (sh->R + z - (i - j)) / sh->R;
                mask = mask < 0 ? 0 : mask > 1 ? 1 : mask;
            }
            e[j] = mask * exp(s);
        }
        for (int n = 0; n < N; n++) {  // persistent logits q·Kp (the stored keys carry the 1/sqrt(D))
            const float *pk = tensor(m, l, "persist_k") + ((size_t)h * N + n) * D;
            double s = 0;
            for (int d = 0; d < D; d++) s += q[i][h * D + d] * pk[d];
            e[T + n] = exp(s);
        }
        for (int j = 0; j < W; j++) sum += e[j];
        for (int j = 0; j < W; j++) out[(size_t)i * W + j] = e[j] / sum;
    }
}

// spec's layer `l` (of a model whose layer 0 is softmax, so layer 1 reads a non-trivial input), every
// head: the map against direct_map, rows summing to 1, causal zeros exact.
static void check_kind(const char *spec, int l, const shape_t *sh, void (*tweak)(model_t *)) {
    char name[160];
    snprintf(name, sizeof name, "attn map of %s, layer %d: direct computation, rows sum to 1, causal zeros", spec, l);
    TEST_CASE(name) {
        model_t m;
        EXPECT(fixture_model(&m, spec, V, C, H, CTX, 0.4f, 7) == 0);
        if (tweak) tweak(&m);
        int32_t tok[T];
        fixture_tokens(tok, T, V, 3);
        for (int h = 0; h < H; h++) {
            attn_map_t a;
            char err[256];
            EXPECT(attn_map_compute(&m, tok, T, l, h, &a, err, sizeof err) == 0);
            EXPECT(a.T == T && a.E == sh->persist);
            int W = T + a.E;
            double *want = calloc((size_t)T * W, sizeof *want), worst = 0, worst_sum = 0;
            direct_map(&m, l, h, sh, want);
            int causal_ok = 1;
            for (int i = 0; i < T; i++) {
                double sum = 0;
                for (int j = 0; j < W; j++) {
                    double p = a.p[(size_t)i * W + j], d = fabs(p - want[(size_t)i * W + j]);
                    worst = d > worst ? d : worst;
                    sum += p;
                    if (j > i && j < T && p != 0.0f) causal_ok = 0;
                }
                worst_sum = fabs(sum - 1) > worst_sum ? fabs(sum - 1) : worst_sum;
            }
            EXPECT_MSG(worst < 2e-6, "head %d: worst |map - direct| %.3g", h, worst);
            EXPECT_MSG(worst_sum < 1e-5, "head %d: a row sums to 1 +- %.3g", h, worst_sum);
            EXPECT_MSG(causal_ok, "head %d: a key after its query has a nonzero probability", h);
            free(want);
            attn_map_free(&a);
        }
        model_free(&m);
    }
}

// Spans short against the prompt (z = 16·z̃: 3.2 and 6.4 tokens, ramp 2): windows of 6 and 9 keys < T.
static void short_spans(model_t *m) {
    param_t *p = params_find(&m->params, "layers.1.attn.span");
    p->data[0] = 0.2f;
    p->data[1] = 0.4f;
}

int main(void) {
    check_kind("softmax/mlp", 0, &(shape_t){.kind = 's'}, NULL);
    check_kind("softmax/mlp,softmax/mlp", 1, &(shape_t){.kind = 's'}, NULL);
    check_kind("softmax/mlp,softmax(persist=3)/mlp", 1, &(shape_t){.kind = 's', .persist = 3}, NULL);
    check_kind("softmax/mlp,adaptive(ramp=2)/mlp", 1, &(shape_t){.kind = 's', .span_on = 1, .S = CTX, .R = 2}, short_spans);
    check_kind("softmax/mlp,allattn(persist=4,ramp=2)", 1,
               &(shape_t){.kind = 's', .persist = 4, .span_on = 1, .S = CTX, .R = 2}, short_spans);
    check_kind("softmax/mlp,collab(dk=4)/mlp", 1, &(shape_t){.kind = 'c', .dk = 4}, NULL);
    check_kind("softmax/mlp,collab(dk=12)/mlp", 1, &(shape_t){.kind = 'c', .dk = 12}, NULL);

    TEST_CASE("attn map refused: performer and linformer (naming the layer and kind), layer or head out of range") {
        const char *specs[] = {"softmax/mlp,performer/mlp", "softmax/mlp,linformer(chunk=4)/mlp"};
        const char *kinds[] = {"layer 1 (performer)", "layer 1 (linformer)"};
        int32_t tok[T];
        fixture_tokens(tok, T, V, 3);
        for (int s = 0; s < 2; s++) {
            model_t m;
            EXPECT(fixture_model(&m, specs[s], V, C, H, CTX, 0.4f, 7) == 0);
            attn_map_t a;
            char err[256] = "";
            EXPECT(attn_map_compute(&m, tok, T, 1, 0, &a, err, sizeof err) == -1 && a.p == NULL);
            EXPECT_MSG(strstr(err, kinds[s]) && strstr(err, "has no attention map"), "message: %s", err);
            EXPECT(attn_map_compute(&m, tok, T, 0, 0, &a, err, sizeof err) == 0);  // its softmax layer has one
            attn_map_free(&a);
            EXPECT(attn_map_compute(&m, tok, T, 2, 0, &a, err, sizeof err) == -1 && strstr(err, "--layer 2"));
            EXPECT(attn_map_compute(&m, tok, T, 0, H, &a, err, sizeof err) == -1 && strstr(err, "--head 2"));
            EXPECT(attn_map_compute(&m, tok, CTX + 1, 0, 0, &a, err, sizeof err) == -1 && strstr(err, "17 tokens"));
            model_free(&m);
        }
    }
    return test_main_end();
}
