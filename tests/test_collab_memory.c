// test_collab_memory.c — segment memory of the collab mixer (blocks/mixer_collab.c, --memory M;
// LONG_CONTEXT.md §2), under --pos rope and none:
//  - consistency: segments fed one after another with memory give, for each segment, the y of the
//    memory-free forward over the window [start − min(start, M), end) (its last rows): M ≥ the whole
//    text, M ≥ T1, M < T1, unequal segments, more than one 32-row score tile;
//  - gradient (advance = 0, a partly and a fully filled memory, with attention dropout): finite
//    differences of Σ G⊙y against every collab tensor and dx; the state is left untouched;
//  - causality: a segment row changes no earlier y (bit for bit); a row of the previous segment
//    reaches the next segment through memory when it is among the last M, not when it is older;
//  - decode == segment-wise model forward over 3+ segments (M < ctx, = ctx, > ctx; two layers);
//  - rc->mem NULL on a model with memory: logits and every gradient bit-identical to the same
//    model without memory (training mode with dropout).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "model/model.h"
#include "tests/fixture.h"
#include "tests/fixture_pos.h"
#include "tests/testlib.h"

static const char *pos_name(pos_scheme_t pos) { return pos == POS_ROPE ? "rope" : "none"; }

// ---------------------------------------------------------------------------------------------
// The collab mixer of a one-layer model, driven directly: its own act/scratch and memory state.

typedef struct {
    model_t m;
    block_t *b;
    int B, C, M;
    float *act, *scr;
    seg_mem_t mem;
    rng_t rng;
    float dropout;
} blk_t;

static int blk_init(blk_t *k, pos_scheme_t pos, const char *spec, int C, int H, int ctx, int M, int B, int Tmax,
                    float dropout, uint64_t seed) {
    memset(k, 0, sizeof *k);
    char err[512];
    if (pos_fixture_model(&k->m, pos, spec, 11, C, H, ctx, 0.3f, seed)) return -1;
    if (model_set_memory(&k->m, M, err, sizeof err)) {
        printf("  model_set_memory: %s\n", err);
        model_free(&k->m);
        return -1;
    }
    k->b = &k->m.layers[0].mixer;
    k->b->dropout_masks = dropout > 0;
    k->B = B, k->C = C, k->M = M, k->dropout = dropout;
    k->act = xalloc_floats(k->b->ops->act_floats(k->b, B, Tmax));
    k->scr = xalloc_floats(k->b->ops->scratch_floats(k->b, B, Tmax));
    model_mem_init(&k->mem, &k->m, B);
    return 0;
}
static void blk_free(blk_t *k) {
    free(k->act);
    free(k->scr);
    model_mem_free(&k->mem);
    model_free(&k->m);
}
static float *blk_state(blk_t *k) { return k->mem.state[0]; }
static size_t blk_state_floats(blk_t *k) { return k->mem.floats[0]; }

// y (B,T,C) = the block's forward of x; with_mem: continues the memory (and, with advance, moves n
// and pos0 on as model_forward does). The dropout masks are drawn from the same seed every call.
static void blk_forward(blk_t *k, float *y, const float *x, int T, int with_mem, int advance) {
    rng_seed(&k->rng, 99);
    run_ctx_t rc = {.training = k->dropout > 0, .dropout = k->dropout, .rng = &k->rng, .mem = with_mem ? &k->mem : NULL};
    k->mem.advance = advance;
    k->b->ops->forward(k->b, y, x, k->act, k->scr, k->B, T, &rc);
    if (with_mem && advance) {
        k->mem.n = k->mem.n + T < k->M ? k->mem.n + T : k->M;
        k->mem.pos0 += T;
    }
}

static void fill_normal(float *x, size_t n, uint64_t seed) {
    rng_t r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = rng_normal(&r);
}

// Rows [t0, t0+T) of each of B sequences of length Tall (C wide) into out (B,T,C).
static void rows_of(float *out, const float *x, int B, int Tall, int t0, int T, int C) {
    for (int b = 0; b < B; b++) memcpy(out + (size_t)b * T * C, x + ((size_t)b * Tall + t0) * C, (size_t)T * C * sizeof(float));
}

// ---------------------------------------------------------------------------------------------
// 1. consistency with the memory-free forward over the window

static void check_consistency(pos_scheme_t pos, const char *spec, int M, const int *lens, int nseg) {
    enum { C = 16, H = 4, B = 2 };
    int total = 0, maxlen = 0;
    for (int s = 0; s < nseg; s++) total += lens[s], maxlen = lens[s] > maxlen ? lens[s] : maxlen;
    int Tmax = M + maxlen < total ? M + maxlen : total;  // the longest window the reference runs
    blk_t k;
    if (blk_init(&k, pos, spec, C, H, Tmax, M, B, Tmax, 0.0f, 7)) {
        tl_case_failed = 1;
        return;
    }
    float *x = xalloc_floats((size_t)B * total * C), *seg = xalloc_floats((size_t)B * Tmax * C),
          *y = xalloc_floats((size_t)B * Tmax * C), *yw = xalloc_floats((size_t)B * Tmax * C),
          *want = xalloc_floats((size_t)B * Tmax * C);
    fill_normal(x, (size_t)B * total * C, 5);
    double worst = 0;
    int start = 0;
    for (int s = 0; s < nseg; s++) {
        int T = lens[s], w0 = start - (start < M ? start : M), W = start + T - w0;
        CHECK(W <= Tmax && k.mem.n == start - w0 && k.mem.pos0 == start);
        rows_of(seg, x, B, total, start, T, C);
        blk_forward(&k, y, seg, T, 1, 1);
        rows_of(seg, x, B, total, w0, W, C);  // the window, memory-free
        blk_forward(&k, yw, seg, W, 0, 0);
        rows_of(want, yw, B, W, W - T, T, C);
        float scale = 0;
        for (size_t i = 0; i < (size_t)B * T * C; i++) scale = fmaxf(scale, fabsf(want[i]));
        char what[96];
        snprintf(what, sizeof what, "segment %d (rows %d…%d, window from %d)", s, start, start + T - 1, w0);
        double r = EXPECT_CLOSE(what, y, want, (size_t)B * T * C, 1e-5 * scale, 1e-5);
        worst = fmax(worst, r);
        start += T;
    }
    printf("  worst ratio to tolerance (1e-5 of max|y|, 1e-5 relative) %.3f\n", worst);
    free(x), free(seg), free(y), free(yw), free(want);
    blk_free(&k);
}

static void test_consistency(void) {
    static const struct {
        const char *spec;
        int M, nseg, lens[4];
        const char *what;
    } cases[] = {
        {"collab(dk=6)/mlp", 40, 3, {9, 7, 11}, "M ≥ the whole text: one window"},
        {"collab(dk=6)/mlp", 9, 2, {9, 7}, "M = T1"},
        {"collab(dk=16)/mlp", 12, 3, {9, 7, 8}, "M > T1, partly filled then trimmed"},
        {"collab(dk=6)/mlp", 4, 3, {9, 7, 5}, "M < T1: the last M positions of A only"},
        {"collab(dk=4)/mlp", 5, 4, {3, 1, 2, 6}, "segments shorter than M"},
        {"collab(dk=6)/mlp", 37, 3, {40, 35, 33}, "T > the 32-row score tiles"},
    };
    for (int p = 0; p < 2; p++)
        for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
            pos_scheme_t pos = p ? POS_NONE : POS_ROPE;
            char name[200];
            snprintf(name, sizeof name, "%s: consistency %s M %d: %s", pos_name(pos), cases[c].spec, cases[c].M,
                     cases[c].what);
            TEST_CASE(name) check_consistency(pos, cases[c].spec, cases[c].M, cases[c].lens, cases[c].nseg);
        }
}

// ---------------------------------------------------------------------------------------------
// 2. gradient with memory (advance = 0)

typedef struct {
    blk_t *k;
    const float *x, *G;
    float *y;
    int T;
} gc_t;

// Σ G⊙y of the segment, the memory only read.
static double gc_loss(void *p) {
    gc_t *g = p;
    blk_forward(g->k, g->y, g->x, g->T, 1, 0);
    double l = 0;
    for (size_t i = 0; i < (size_t)g->k->B * g->T * g->k->C; i++) l += (double)g->G[i] * g->y[i];
    return l;
}

static const char *const collab_tensors[] = {"cq", "ck", "wv", "cb", "mix", "bv", "wo", "bo"};

static void check_gradient(pos_scheme_t pos, const char *spec, int M, const int *before, int nbefore, int T,
                           float dropout) {
    enum { C = 8, H = 2, B = 2 };
    blk_t k;
    int Tmax = T;
    for (int s = 0; s < nbefore; s++) Tmax = before[s] > Tmax ? before[s] : Tmax;
    if (blk_init(&k, pos, spec, C, H, Tmax + M, M, B, Tmax, dropout, 3)) {
        tl_case_failed = 1;
        return;
    }
    float *x = xalloc_floats((size_t)B * Tmax * C), *y = xalloc_floats((size_t)B * Tmax * C),
          *G = xalloc_floats((size_t)B * T * C), *dx = xalloc_floats((size_t)B * T * C);
    for (int s = 0; s < nbefore; s++) {  // earlier segments fill the memory
        fill_normal(x, (size_t)B * before[s] * C, 100 + s);
        blk_forward(&k, y, x, before[s], 1, 1);
    }
    printf("  memory n %d of M %d, pos0 %ld, segment T %d\n", k.mem.n, M, k.mem.pos0, T);
    CHECK(k.mem.n > 0);
    size_t sf = blk_state_floats(&k);
    float *state0 = xalloc_floats(sf);
    memcpy(state0, blk_state(&k), sf * sizeof(float));
    fill_normal(x, (size_t)B * T * C, 200);
    fill_normal(G, (size_t)B * T * C, 201);
    params_zero_grad(&k.m.params);
    memset(dx, 0, (size_t)B * T * C * sizeof(float));
    blk_forward(&k, y, x, T, 1, 0);
    run_ctx_t rc = {.training = dropout > 0, .dropout = dropout, .rng = &k.rng, .mem = &k.mem};
    k.b->ops->backward(k.b, dx, G, x, k.act, k.scr, B, T, &rc);
    gc_t g = {.k = &k, .x = x, .G = G, .y = y, .T = T};
    double worst = 0;
    for (size_t t = 0; t < sizeof collab_tensors / sizeof *collab_tensors; t++) {
        char name[64];
        snprintf(name, sizeof name, "layers.0.attn.%s", collab_tensors[t]);
        param_t *p = params_find(&k.m.params, name);
        CHECK(p);
        worst = fmax(worst, fd_check(name, gc_loss, &g, p->data, p->grad, p->numel, 1e-2f, 2e-4, 1e-2));
    }
    worst = fmax(worst, fd_check("dx (segment rows)", gc_loss, &g, x, dx, (size_t)B * T * C, 1e-2f, 2e-4, 1e-2));
    printf("  worst ratio to tolerance %.3f\n", worst);
    EXPECT_MSG(memcmp(state0, blk_state(&k), sf * sizeof(float)) == 0, "advance = 0 changed the memory state");
    free(x), free(y), free(G), free(dx), free(state0);
    blk_free(&k);
}

static void test_gradient(void) {
    static const struct {
        const char *spec;
        int M, nbefore, before[2], T;
        float dropout;
        const char *what;
    } cases[] = {
        {"collab(dk=4)/mlp", 6, 1, {4}, 5, 0.0f, "memory partly filled (n 4 of 6)"},
        {"collab(dk=6)/mlp", 5, 2, {4, 3}, 4, 0.0f, "memory full (n = M 5)"},
        {"collab(dk=12)/none", 7, 1, {9}, 3, 0.0f, "dk > d, T < n"},
        {"collab(dk=4)/mlp", 5, 1, {6}, 5, 0.2f, "attention dropout"},
    };
    for (int p = 0; p < 2; p++)
        for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
            pos_scheme_t pos = p ? POS_NONE : POS_ROPE;
            char name[200];
            snprintf(name, sizeof name, "%s: gradcheck with memory %s M %d: %s", pos_name(pos), cases[c].spec,
                     cases[c].M, cases[c].what);
            TEST_CASE(name)
            check_gradient(pos, cases[c].spec, cases[c].M, cases[c].before, cases[c].nbefore, cases[c].T,
                           cases[c].dropout);
        }
    TEST_CASE("none: gradcheck with memory collab(dk=3)/mlp (dk not a multiple of H)") {
        int before[1] = {5};
        check_gradient(POS_NONE, "collab(dk=3)/mlp", 4, before, 1, 4, 0.0f);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. causality across the boundary

static float max_abs_diff(const float *a, const float *b, size_t n) {
    float w = 0;
    for (size_t i = 0; i < n; i++) w = fmaxf(w, fabsf(a[i] - b[i]));
    return w;
}

static void check_causality(pos_scheme_t pos, const char *spec, int M, int T1, int T2) {
    enum { C = 16, H = 4, B = 1 };
    int Tmax = T1 > T2 ? T1 : T2;
    blk_t k;
    if (blk_init(&k, pos, spec, C, H, Tmax, M, B, Tmax, 0.1f, 9)) {
        tl_case_failed = 1;
        return;
    }
    size_t sf = blk_state_floats(&k);
    float *xa = xalloc_floats((size_t)T1 * C), *xb = xalloc_floats((size_t)T2 * C), *ya = xalloc_floats((size_t)T1 * C),
          *ya2 = xalloc_floats((size_t)T1 * C), *yb = xalloc_floats((size_t)T2 * C), *yb2 = xalloc_floats((size_t)T2 * C),
          *after_a = xalloc_floats(sf), saved[C];
    fill_normal(xa, (size_t)T1 * C, 31);
    fill_normal(xb, (size_t)T2 * C, 32);
    blk_forward(&k, ya, xa, T1, 1, 1);
    memcpy(after_a, blk_state(&k), sf * sizeof(float));
    blk_forward(&k, yb, xb, T2, 1, 0);
    // (a) a row i of segment B changes no y of B before i (bit for bit), does change row i; B's
    //     forward without advance leaves the state after A as it was.
    for (int i = 0; i < T2; i++) {
        memcpy(saved, xb + (size_t)i * C, sizeof saved);
        for (int c = 0; c < C; c++) xb[(size_t)i * C + c] += 0.5f;
        blk_forward(&k, yb2, xb, T2, 1, 0);
        memcpy(xb + (size_t)i * C, saved, sizeof saved);
        float before = max_abs_diff(yb2, yb, (size_t)i * C), own = max_abs_diff(yb2 + (size_t)i * C, yb + (size_t)i * C, C);
        EXPECT_MSG(before == 0.0f, "segment row %d changed earlier rows by %g", i, before);
        EXPECT_MSG(own > 1e-6f, "segment row %d did not change its own y", i);
    }
    EXPECT_MSG(memcmp(after_a, blk_state(&k), sf * sizeof(float)) == 0, "B's forward (advance 0) changed the state");
    // (b) a row j of segment A: no y of A before j changes; B changes iff j is among A's last M rows.
    for (int j = 0; j < T1; j++) {
        model_mem_clear(&k.mem);
        memcpy(saved, xa + (size_t)j * C, sizeof saved);
        for (int c = 0; c < C; c++) xa[(size_t)j * C + c] += 0.5f;
        blk_forward(&k, ya2, xa, T1, 1, 1);
        memcpy(xa + (size_t)j * C, saved, sizeof saved);
        blk_forward(&k, yb2, xb, T2, 1, 0);
        float before = max_abs_diff(ya2, ya, (size_t)j * C), db = max_abs_diff(yb2, yb, (size_t)T2 * C);
        EXPECT_MSG(before == 0.0f, "A row %d changed earlier rows of A by %g", j, before);
        if (j >= T1 - M) EXPECT_MSG(db > 1e-6f, "A row %d (in memory) did not reach segment B", j);
        else EXPECT_MSG(db == 0.0f, "A row %d (older than the last %d) changed segment B by %g", j, M, db);
    }
    free(xa), free(xb), free(ya), free(ya2), free(yb), free(yb2), free(after_a);
    blk_free(&k);
}

static void test_causality(void) {
    for (int p = 0; p < 2; p++) {
        pos_scheme_t pos = p ? POS_NONE : POS_ROPE;
        char name[200];
        snprintf(name, sizeof name, "%s: causality across the boundary collab(dk=6)/mlp M 7 < T1 12, T2 10, dropout 0.1",
                 pos_name(pos));
        TEST_CASE(name) check_causality(pos, "collab(dk=6)/mlp", 7, 12, 10);
        snprintf(name, sizeof name, "%s: causality across the boundary collab(dk=16)/mlp M 40 ≥ T1 36, T2 34", pos_name(pos));
        TEST_CASE(name) check_causality(pos, "collab(dk=16)/mlp", 40, 36, 34);
    }
}

// ---------------------------------------------------------------------------------------------
// 4. decode == segment-wise model forward

static void check_decode(pos_scheme_t pos, const char *spec, int ctx, int M, int len) {
    model_t m;
    int V = 17;
    char err[512];
    if (pos_fixture_model(&m, pos, spec, V, 16, 4, ctx, 0.3f, 31) || model_set_memory(&m, M, err, sizeof err)) {
        tl_case_failed = 1;
        return;
    }
    model_alloc_acts(&m, 1, ctx, 0.0f);
    seg_mem_t mem;
    model_mem_init(&mem, &m, 1);
    int32_t *tok = xcalloc((size_t)len, sizeof *tok);
    float *seg = xcalloc((size_t)len * V, sizeof *seg), *inc = xcalloc((size_t)len * V, sizeof *inc);
    fixture_tokens(tok, (size_t)len, V, 41);
    rng_t r;
    rng_seed(&r, 1);
    run_ctx_t rc = {.training = 0, .rng = &r, .mem = &mem};
    for (int s0 = 0; s0 < len; s0 += ctx) {
        int T = len - s0 < ctx ? len - s0 : ctx;
        model_forward(&m, tok + s0, NULL, 1, T, &rc);
        memcpy(seg + (size_t)s0 * V, m.probs, (size_t)T * V * sizeof(float));
    }
    float scale = 0;
    for (int i = 0; i < len * V; i++) scale = fmaxf(scale, fabsf(seg[i]));
    decode_state_t ds;
    decode_init(&ds, &m);
    for (int pass = 0; pass < 2; pass++) {  // the second pass after a reset
        decode_reset(&ds);
        for (int t = 0; t < len; t++) memcpy(inc + (size_t)t * V, decode_step(&m, &ds, tok[t]), (size_t)V * sizeof(float));
        double w = EXPECT_CLOSE(pass ? "decode after reset" : "decode", inc, seg, (size_t)len * V, 1e-5 * scale, 1e-4);
        if (!pass) printf("  worst ratio to tolerance %.3f over %d positions\n", w, len);
    }
    // The same tokens without memory (rc->mem NULL, windows of ctx) differ past the first segment:
    // the check above is not passing for want of memory.
    rc.mem = NULL;
    model_forward(&m, tok + ctx, NULL, 1, ctx, &rc);
    EXPECT_MSG(max_abs_diff(m.probs, seg + (size_t)ctx * V, (size_t)ctx * V) > 1e-4f,
               "the second segment does not depend on the memory");
    decode_free(&ds);
    model_mem_free(&mem);
    free(tok), free(seg), free(inc);
    model_free(&m);
}

static void test_decode(void) {
    static const struct {
        const char *spec;
        int ctx, M, len;
    } cases[] = {
        {"collab(dk=6)/mlp", 8, 5, 3 * 8 + 5},                       // M < ctx
        {"collab(dk=6)/mlp,collab(dk=4)/none", 8, 8, 4 * 8 + 3},     // M = ctx, two layers
        {"collab(dk=4)/mlp,collab(dk=16)/mlp", 7, 13, 4 * 7 + 6},    // M > ctx (ring wraps inside the window)
        {"collab(dk=6)/mlp", 36, 20, 3 * 36 + 1},                    // T > the 32-row score tiles
    };
    for (int p = 0; p < 2; p++)
        for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
            pos_scheme_t pos = p ? POS_NONE : POS_ROPE;
            char name[200];
            snprintf(name, sizeof name, "%s: decode == segment-wise forward %s ctx %d M %d, %d tokens", pos_name(pos),
                     cases[c].spec, cases[c].ctx, cases[c].M, cases[c].len);
            TEST_CASE(name) check_decode(pos, cases[c].spec, cases[c].ctx, cases[c].M, cases[c].len);
        }
}

// ---------------------------------------------------------------------------------------------
// 5. rc->mem NULL: the memory-free model, bit for bit

static void check_no_mem_identical(pos_scheme_t pos, const char *spec) {
    enum { B = 2, T = 9, V = 11 };
    float dropout = 0.1f;
    model_t a, m;
    char err[512];
    if (pos_fixture_model(&a, pos, spec, V, 8, 2, T, 0.3f, 5) || pos_fixture_model(&m, pos, spec, V, 8, 2, T, 0.3f, 5) ||
        model_set_memory(&m, 6, err, sizeof err)) {
        tl_case_failed = 1;
        return;
    }
    model_alloc_acts(&a, B, T, dropout);
    model_alloc_acts(&m, B, T, dropout);
    int32_t tok[B * T], tgt[B * T];
    fixture_tokens(tok, B * T, V, 1);
    fixture_tokens(tgt, B * T, V, 2);
    model_t *ms[2] = {&a, &m};
    float loss[2];
    for (int i = 0; i < 2; i++) {
        rng_t r;
        rng_seed(&r, 8);
        run_ctx_t rc = {.training = 1, .dropout = dropout, .rng = &r};
        params_zero_grad(&ms[i]->params);
        loss[i] = model_forward(ms[i], tok, tgt, B, T, &rc);
        model_backward(ms[i], 1.0f, &rc);
    }
    EXPECT_MSG(memcmp(&loss[0], &loss[1], sizeof(float)) == 0, "loss %.9g vs %.9g", loss[0], loss[1]);
    EXPECT_MSG(memcmp(a.probs, m.probs, (size_t)B * T * V * sizeof(float)) == 0, "probabilities differ");
    for (int i = 0; i < a.params.count; i++) {
        param_t *p = a.params.items[i], *q = m.params.items[i];
        EXPECT_MSG(memcmp(p->grad, q->grad, p->numel * sizeof(float)) == 0, "gradient of %s differs", p->name);
    }
    model_free(&a);
    model_free(&m);
}

static void test_no_mem(void) {
    TEST_CASE("rope: rc->mem NULL on a model with --memory 6 == the model without (bit for bit, dropout 0.1)")
    check_no_mem_identical(POS_ROPE, "collab(dk=4)/mlp,collab(dk=6)/none");
    TEST_CASE("none: the same, collab(dk=3)")
    check_no_mem_identical(POS_NONE, "collab(dk=3)/mlp,collab/none");
    TEST_CASE("mem_floats: the x̂ rows, B·M·C; the cache holds M + ctx positions") {
        model_t m;
        char err[512];
        if (pos_fixture_model(&m, POS_ROPE, "collab(dk=6)/mlp", 11, 16, 4, 64, 0.3f, 1) ||
            model_set_memory(&m, 100, err, sizeof err)) {
            tl_case_failed = 1;
        } else {
            block_t *b = &m.layers[0].mixer;
            EXPECT_MSG(b->ops->mem_floats(b, 3) == (size_t)3 * 100 * 16, "mem %zu", b->ops->mem_floats(b, 3));
            EXPECT_MSG(b->ops->cache_floats(b) == (size_t)(64 + 100) * (6 + 16 + 4), "cache %zu", b->ops->cache_floats(b));
            model_free(&m);
        }
    }
}

int main(void) {
    test_consistency();
    test_gradient();
    test_causality();
    test_decode();
    test_no_mem();
    return test_main_end();
}
