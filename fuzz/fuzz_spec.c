// fuzz_spec.c — libFuzzer harness for the --layers grammar: spec_parse on any text, then
// model_build of the parsed spec with tiny dimensions, and one forward pass of a model that builds.
// A spec that parses must build or fail with one line; a model that builds must re-parse from its
// resolved spec (m.spec) to the same number of layers. Option values above 4096 and more than 8
// layers are parsed but not built (their size, not their syntax, would be under test).
// See docs/testing.md "Fuzzing".
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/spec.h"

static int small_enough(const spec_layer_t *ls, int L) {
    if (L > 8) return 0;
    for (int l = 0; l < L; l++)
        for (int b = 0; b < 2; b++) {
            const spec_block_t *blk = b ? &ls[l].ffn : &ls[l].mixer;
            for (int o = 0; o < blk->n_opts; o++)
                if (strtod(blk->opts[o].value, NULL) > 4096 || strtod(blk->opts[o].value, NULL) < -4096) return 0;
        }
    return 1;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    spec_layer_t *layers = NULL;
    int L = 0;
    char err[512] = "";
    if (spec_parse(text, &layers, &L, err, sizeof err) != 0) {
        if (!err[0] || layers || L) abort();
        free(text);
        return 0;
    }
    if (L < 1 || L > 1000) abort();
    int build = small_enough(layers, L);
    free(layers);
    if (build) {
        model_t m;
        model_dims_t d = {.vocab = 7, .dim = 8, .heads = 2, .ctx = 8};
        if (model_build(&m, &d, text, err, sizeof err) == 0) {
            spec_layer_t *again = NULL;
            int L2 = 0;
            if (spec_parse(m.spec, &again, &L2, err, sizeof err) != 0 || L2 != L) abort();
            free(again);
            rng_t rng;
            rng_seed(&rng, 1);
            model_init_weights(&m, &rng);
            model_alloc_acts(&m, 1, 4, 0.0f);
            int32_t tok[4] = {1, 2, 3, 4}, tgt[4] = {2, 3, 4, 5};
            run_ctx_t rc = {.training = 0, .rng = &rng};
            float loss = model_forward(&m, tok, tgt, 1, 4, &rc);
            if (!(loss >= 0)) abort();  // finite and non-negative cross-entropy
            model_free(&m);
        } else if (!err[0]) {
            abort();
        }
    }
    free(text);
    return 0;
}
