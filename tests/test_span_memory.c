// test_span_memory.c — segment memory (--memory M, LONG_CONTEXT.md §2) of the attention core in
// blocks/attn_span.c, for adaptive, allattn and softmax(persist=N), under --pos rope and none:
//   - consistency: segment A then segment B with memory gives B the logits of one memory-free window
//     over A|B (M ≥ |A|), or over (the last M of A)|B (M < |A|, one layer: x̂ is then per token);
//   - rc->mem NULL on a model with M > 0 is bit-identical to the same weights at M = 0;
//   - gradients with memory (advance 0): every tensor against finite differences, so W_k, W_v, b_k,
//     b_v and the span get their gradient through the memory rows' keys; the memory matters for them;
//   - causality across the boundary; the state is only read with advance 0;
//   - decode == the segment-wise forward over 3+ segments (M < ctx, M > ctx, span > ctx);
//   - compute follows the span: a short span at M 64 projects and scores only what it reaches;
//   - check_memory: span ≤ max(ctx, M), one line naming the layer.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "blocks/attn_span.h"
#include "model/model.h"
#include "tests/fixture.h"
#include "tests/fixture_pos.h"
#include "tests/testlib.h"

enum { V = 13 };

// z̃ of head h (cyclic): with span 12, ramp 3: z = 4.8, 10.8, 6.6, 1.8 — non-integer, ramps live,
// keys with m clamped to 1 and, far enough, to 0.
static const float ztilde[4] = {0.4f, 0.9f, 0.55f, 0.15f};

// Span heads to ztilde; persistent tensors redrawn at 1.5× their init std (as test_adaptive.c).
static void tweak(model_t *m) {
    rng_t r;
    rng_seed(&r, 77);
    for (int i = 0; i < m->params.count; i++) {
        param_t *p = m->params.items[i];
        size_t len = strlen(p->name);
        if (len >= 4 && strcmp(p->name + len - 4, "span") == 0)
            for (size_t h = 0; h < p->numel; h++) p->data[h] = ztilde[h % 4];
        if (strstr(p->name, "persist_"))
            for (size_t j = 0; j < p->numel; j++) p->data[j] = 1.5f * p->init_scale * rng_normal(&r);
    }
}

// fixture_model's weights (std 0.3, LayerNorms near 1) at dims.memory = M, then tweak.
static int build(model_t *m, pos_scheme_t pos, const char *spec, int C, int H, int ctx, int M, uint64_t seed) {
    model_dims_t d = {.vocab = V, .dim = C, .heads = H, .ctx = ctx, .pos = pos, .memory = M};
    char err[512];
    if (model_build(m, &d, spec, err, sizeof err)) {
        printf("  model_build(%s, memory %d): %s\n", spec, M, err);
        tl_case_failed = 1;
        return -1;
    }
    fixture_init_weights(m, 0.3f, seed);
    tweak(m);
    return 0;
}

static const char *pos_name(pos_scheme_t pos) { return pos == POS_ROPE ? "rope" : "none"; }

static float max_abs(const float *x, size_t n) {
    float s = 0;
    for (size_t i = 0; i < n; i++) s = fmaxf(s, fabsf(x[i]));
    return s;
}

// Forward one segment of B = 1 stream with memory mem (NULL: memory-free), logits into out (T, V).
static void seg_forward(model_t *m, seg_mem_t *mem, const int32_t *tok, int T, float *out) {
    rng_t r;
    rng_seed(&r, 4);
    run_ctx_t rc = {.training = 0, .rng = &r, .mem = mem};
    model_forward(m, tok, NULL, 1, T, &rc);
    memcpy(out, m->probs, (size_t)T * V * sizeof(float));
}

// ---------------------------------------------------------------------------------------------
// consistency with one memory-free window

// Segment A (T1) then B (T2) with memory M, against the memory-free window over the last min(M, T1)
// tokens of A followed by B (M ≥ T1: all of A; M < T1 needs a one-layer spec: x̂ is per token there).
static void check_consistency(pos_scheme_t pos, const char *spec, int T1, int T2, int M) {
    int C = 16, H = 4, keep = M < T1 ? M : T1, Tw = keep + T2;
    model_t m;
    if (build(&m, pos, spec, C, H, T1 + T2, M, 5)) return;
    model_alloc_acts(&m, 1, T1 + T2, 0.0f);
    int32_t *tok = xcalloc((size_t)(T1 + T2), sizeof *tok);
    fixture_tokens(tok, (size_t)(T1 + T2), V, 8);
    float *want = xalloc_floats((size_t)Tw * V), *got = xalloc_floats((size_t)T2 * V), *ga = xalloc_floats((size_t)T1 * V);
    seg_forward(&m, NULL, tok + T1 - keep, Tw, want);
    seg_mem_t mem;
    model_mem_init(&mem, &m, 1);
    seg_forward(&m, &mem, tok, T1, ga);
    EXPECT(mem.n == (M < T1 ? M : T1) && mem.pos0 == T1);
    seg_forward(&m, &mem, tok + T1, T2, got);
    const float *w = want + (size_t)keep * V;
    float scale = max_abs(w, (size_t)T2 * V);
    EXPECT_CLOSE("segment B with memory == the window's last rows", got, w, (size_t)T2 * V, 1e-5 * scale, 1e-5);
    if (M >= T1) {  // A itself: the window's first rows (its memory was empty)
        EXPECT_CLOSE("segment A == the window's first rows", ga, want, (size_t)T1 * V, 1e-5 * scale, 1e-5);
    }
    // and the memory was used: B alone differs
    float *alone = xalloc_floats((size_t)T2 * V);
    seg_forward(&m, NULL, tok + T1, T2, alone);
    float d = 0;
    for (size_t i = 0; i < (size_t)T2 * V; i++) d = fmaxf(d, fabsf(alone[i] - got[i]));
    EXPECT_MSG(d > 1e-3f * scale, "segment B without memory differs only by %g: the memory is not used", d);
    model_mem_free(&mem);
    free(tok);
    free(want);
    free(got);
    free(ga);
    free(alone);
    model_free(&m);
}

static void test_consistency(void) {
    static const struct {
        const char *spec;
        int one_layer;
    } specs[] = {
        {"adaptive(span=12,ramp=3)/mlp,adaptive(span=24,ramp=4,persist=2)/mlp", 0},
        {"allattn(persist=3,span=20,ramp=5),allattn(persist=2,span=12,ramp=3)", 0},
        {"softmax(persist=3)/mlp,softmax(persist=3)/none", 0},
        {"adaptive(span=12,ramp=3,persist=2)/mlp", 1},
        {"allattn(persist=3,span=24,ramp=5)", 1},
        {"softmax(persist=3)/mlp", 1},
    };
    pos_scheme_t schemes[] = {POS_ROPE, POS_NONE};
    for (int s = 0; s < 2; s++)
        for (size_t k = 0; k < sizeof specs / sizeof *specs; k++) {
            char name[256];
            // T1 20 > every span + ramp, so with z 10.8 + 3 memory keys are both projected and trimmed
            snprintf(name, sizeof name, "%s: A(20) then B(12) with M 24 == window A|B: %s", pos_name(schemes[s]),
                     specs[k].spec);
            TEST_CASE(name) check_consistency(schemes[s], specs[k].spec, 20, 12, 24);
            if (!specs[k].one_layer) continue;
            snprintf(name, sizeof name, "%s: A(20) then B(12) with M 7 == window (last 7 of A)|B: %s",
                     pos_name(schemes[s]), specs[k].spec);
            TEST_CASE(name) check_consistency(schemes[s], specs[k].spec, 20, 12, 7);
        }
}

// ---------------------------------------------------------------------------------------------
// rc->mem NULL: exactly the memory-free block

static void test_no_memory_identical(void) {
    TEST_CASE("M > 0 with rc->mem NULL is bit-identical to M = 0 (forward, backward, decode), rope") {
        const char *spec = "adaptive(span=12,ramp=3,persist=2)/mlp,allattn(persist=3,span=8,ramp=2),softmax(persist=2)";
        model_t a, b;
        if (build(&a, POS_ROPE, spec, 16, 4, 16, 0, 3) || build(&b, POS_ROPE, spec, 16, 4, 16, 40, 3)) return;
        model_alloc_acts(&a, 2, 16, 0.1f);
        model_alloc_acts(&b, 2, 16, 0.1f);
        int32_t tok[32], tgt[32];
        fixture_tokens(tok, 32, V, 1);
        fixture_tokens(tgt, 32, V, 2);
        model_t *ms[2] = {&a, &b};
        float loss[2];
        for (int k = 0; k < 2; k++) {
            rng_t r;
            rng_seed(&r, 9);
            run_ctx_t rc = {.training = 1, .dropout = 0.1f, .rng = &r};
            params_zero_grad(&ms[k]->params);
            loss[k] = model_forward(ms[k], tok, tgt, 2, 16, &rc);
            model_backward(ms[k], 1.0f, &rc);
        }
        EXPECT(memcmp(&loss[0], &loss[1], sizeof(float)) == 0);
        EXPECT(memcmp(a.probs, b.probs, (size_t)32 * V * sizeof(float)) == 0);
        for (int i = 0; i < a.params.count; i++)
            EXPECT_MSG(memcmp(a.params.items[i]->grad, b.params.items[i]->grad, a.params.items[i]->numel * sizeof(float)) == 0,
                       "gradient of %s differs", a.params.items[i]->name);
        // decode within the first window: the same positions, the same order of sums
        decode_state_t da, db;
        decode_init(&da, &a);
        decode_init(&db, &b);
        for (int t = 0; t < 16; t++) {
            const float *la = decode_step(&a, &da, tok[t]), *lb = decode_step(&b, &db, tok[t]);
            EXPECT_MSG(memcmp(la, lb, V * sizeof(float)) == 0, "decode logits differ at %d", t);
        }
        decode_free(&da);
        decode_free(&db);
        model_free(&a);
        model_free(&b);
    }
}

// ---------------------------------------------------------------------------------------------
// gradients with memory (advance 0: the state is an input without gradient)

typedef struct {
    model_t m;
    seg_mem_t mem;
    int32_t tok[16], tgt[16];
    int B, T;
} grad_ctx_t;

static double grad_loss(void *p) {
    grad_ctx_t *c = p;
    rng_t r;
    rng_seed(&r, 99);
    run_ctx_t rc = {.training = 1, .rng = &r, .mem = &c->mem};
    return model_forward(&c->m, c->tok, c->tgt, c->B, c->T, &rc) + model_extra_loss(&c->m, 0);
}

// V 13, C 8, H 2, ctx 8, M 8; B 2 streams: segment A (6 tokens) fills the memory, then every tensor
// of the loss over segment B (5 tokens, advance 0) against finite differences. Returns the worst
// ratio to the tolerance; *memory_share gets |∇W_k with memory − ∇W_k without| / |∇W_k|.
static double gradcheck_memory(pos_scheme_t pos, const char *spec, double *memory_share) {
    grad_ctx_t *c = xcalloc(1, sizeof *c);
    c->B = 2;
    c->T = 5;
    if (build(&c->m, pos, spec, 8, 2, 8, 8, 3)) {
        free(c);
        return INFINITY;
    }
    param_t *span = params_find(&c->m.params, "layers.0.attn.span");
    if (span) span->data[0] = 0.45f, span->data[1] = 0.8f;  // z 2.7 and 4.8 of span 6: ramps at memory distances
    model_alloc_acts(&c->m, c->B, 6, 0.0f);
    model_mem_init(&c->mem, &c->m, c->B);
    int32_t a[12];
    fixture_tokens(a, 12, V, 4);
    rng_t r;
    rng_seed(&r, 1);
    run_ctx_t rc = {.training = 1, .rng = &r, .mem = &c->mem};
    model_forward(&c->m, a, NULL, c->B, 6, &rc);  // fills the memory (n 6, pos0 6)
    c->mem.advance = 0;
    fixture_tokens(c->tok, 10, V, 5);
    fixture_tokens(c->tgt, 10, V, 6);
    // the memory-free gradient of W_k, for the share the memory contributes
    param_t *wk = params_find(&c->m.params, "layers.0.attn.wk");
    float *wk_free = xalloc_floats(wk->numel);
    params_zero_grad(&c->m.params);
    run_ctx_t rc0 = {.training = 1, .rng = &r};
    model_forward(&c->m, c->tok, c->tgt, c->B, c->T, &rc0);
    model_backward(&c->m, 1.0f, &rc0);
    memcpy(wk_free, wk->grad, wk->numel * sizeof(float));
    params_zero_grad(&c->m.params);
    model_forward(&c->m, c->tok, c->tgt, c->B, c->T, &rc);
    model_backward(&c->m, 1.0f, &rc);
    model_extra_loss(&c->m, 1);
    double dn = 0, nn = 0;
    for (size_t j = 0; j < wk->numel; j++) {
        dn += (double)(wk->grad[j] - wk_free[j]) * (wk->grad[j] - wk_free[j]);
        nn += (double)wk->grad[j] * wk->grad[j];
    }
    *memory_share = sqrt(dn / nn);
    double worst = 0;
    for (int i = 0; i < c->m.params.count; i++) {
        param_t *p = c->m.params.items[i];
        if (!p->trainable) continue;
        double w = fd_check(p->name, grad_loss, c, p->data, p->grad, p->numel, 1e-2f, 2e-4, 1e-2);
        worst = w > worst ? w : worst;
    }
    EXPECT_MSG(c->mem.n == 6 && c->mem.pos0 == 6, "advance 0 moved the memory (n %d, pos0 %ld)", c->mem.n, c->mem.pos0);
    free(wk_free);
    model_mem_free(&c->mem);
    model_free(&c->m);
    free(c);
    return worst;
}

static void test_gradients(void) {
    const char *specs[] = {"adaptive(span=6,ramp=3,lambda=0.05)/mlp",
                           "adaptive(span=6,ramp=2,persist=2,lambda=0.05)/none",
                           "allattn(persist=3,span=6,ramp=3,lambda=0.05)",
                           "softmax(persist=3)/mlp"};
    pos_scheme_t schemes[] = {POS_ROPE, POS_NONE};
    for (int s = 0; s < 2; s++)
        for (size_t k = 0; k < sizeof specs / sizeof *specs; k++) {
            char name[200];
            snprintf(name, sizeof name, "%s: gradcheck with memory (advance 0) %s", pos_name(schemes[s]), specs[k]);
            TEST_CASE(name) {
                double share = 0, worst = gradcheck_memory(schemes[s], specs[k], &share);
                printf("  worst ratio to tolerance %.3f; memory's share of dW_k %.2f\n", worst, share);
                EXPECT_MSG(share > 0.05, "the memory rows barely change dW_k (%.3f)", share);
            }
        }
}

// ---------------------------------------------------------------------------------------------
// causality across the boundary

static void test_causality(void) {
    TEST_CASE("causality: perturbing B[i] changes no logit of B before i; A's state only moves with advance") {
        const char *spec = "adaptive(span=12,ramp=3,persist=2)/mlp,allattn(persist=3,span=12,ramp=4),softmax(persist=2)";
        enum { T1 = 10, T2 = 10, M = 12 };
        model_t m;
        if (build(&m, POS_ROPE, spec, 16, 4, 10, M, 7)) return;
        model_alloc_acts(&m, 1, 10, 0.0f);
        int32_t tok[T1 + T2];
        fixture_tokens(tok, T1 + T2, V, 12);
        float base[T2 * V], pert[T2 * V], scratch[T1 * V];
        seg_mem_t mem;
        model_mem_init(&mem, &m, 1);
        seg_forward(&m, &mem, tok, T1, scratch);
        // a snapshot of the state after A: advance 0 must leave it, and n, pos0, untouched
        float *snap[6];
        for (int i = 0; i < mem.n_blocks; i++) {
            snap[i] = mem.state[i] ? xalloc_floats(mem.floats[i]) : NULL;
            if (snap[i]) memcpy(snap[i], mem.state[i], mem.floats[i] * sizeof(float));
        }
        mem.advance = 0;
        seg_forward(&m, &mem, tok + T1, T2, base);
        for (int t = 0; t < T2; t++) {
            int32_t saved = tok[T1 + t];
            tok[T1 + t] = (saved + 1 + t % (V - 1)) % V;
            seg_forward(&m, &mem, tok + T1, T2, pert);
            tok[T1 + t] = saved;
            float worst = 0, own = 0;
            for (int i = 0; i < t * V; i++) worst = fmaxf(worst, fabsf(pert[i] - base[i]));
            for (int v = 0; v < V; v++) own = fmaxf(own, fabsf(pert[t * V + v] - base[t * V + v]));
            EXPECT_MSG(worst == 0.0f, "changing B[%d] changed an earlier logit by %g", t, worst);
            EXPECT_MSG(own > 1e-6f, "changing B[%d] did not change its own logits", t);
        }
        EXPECT(mem.n == T1 && mem.pos0 == T1);
        for (int i = 0; i < mem.n_blocks; i++)
            if (snap[i]) EXPECT_MSG(memcmp(snap[i], mem.state[i], mem.floats[i] * sizeof(float)) == 0,
                                    "block %d's state changed with advance 0", i);
        // with advance 1 the state moves (to the last M of A|B)
        mem.advance = 1;
        seg_forward(&m, &mem, tok + T1, T2, pert);
        EXPECT(mem.n == M && mem.pos0 == T1 + T2);
        EXPECT(memcmp(snap[0], mem.state[0], mem.floats[0] * sizeof(float)) != 0);
        for (int i = 0; i < mem.n_blocks; i++) free(snap[i]);
        model_mem_free(&mem);
        model_free(&m);
    }
    TEST_CASE("causality: perturbing A[j] changes B through the memory, never A before j") {
        enum { T1 = 10, T2 = 10, M = 12 };
        model_t m;
        if (build(&m, POS_NONE, "adaptive(span=12,ramp=3)/mlp,softmax(persist=2)/mlp", 16, 4, 10, M, 7)) return;
        model_alloc_acts(&m, 1, 10, 0.0f);
        int32_t tok[T1 + T2];
        fixture_tokens(tok, T1 + T2, V, 12);
        float a0[T1 * V], b0[T2 * V], a1[T1 * V], b1[T2 * V];
        seg_mem_t mem;
        model_mem_init(&mem, &m, 1);
        seg_forward(&m, &mem, tok, T1, a0);
        seg_forward(&m, &mem, tok + T1, T2, b0);
        int j = 6;
        tok[j] = (tok[j] + 5) % V;
        model_mem_clear(&mem);
        seg_forward(&m, &mem, tok, T1, a1);
        seg_forward(&m, &mem, tok + T1, T2, b1);
        float before = 0, after = 0;
        for (int i = 0; i < j * V; i++) before = fmaxf(before, fabsf(a1[i] - a0[i]));
        for (int i = 0; i < T2 * V; i++) after = fmaxf(after, fabsf(b1[i] - b0[i]));
        EXPECT_MSG(before == 0.0f, "changing A[%d] changed an earlier logit by %g", j, before);
        EXPECT_MSG(after > 1e-4f, "changing A[%d] did not reach segment B (%g)", j, after);
        model_mem_free(&mem);
        model_free(&m);
    }
}

// ---------------------------------------------------------------------------------------------
// decode == segment-wise forward

static void check_decode(pos_scheme_t pos, const char *spec, int ctx, int M, int len) {
    model_t m;
    if (build(&m, pos, spec, 16, 4, ctx, M, 31)) return;
    model_alloc_acts(&m, 1, ctx, 0.0f);
    int32_t *tok = xcalloc((size_t)len, sizeof *tok);
    fixture_tokens(tok, (size_t)len, V, 41);
    float *full = xalloc_floats((size_t)len * V), *inc = xalloc_floats((size_t)len * V);
    seg_mem_t mem;
    model_mem_init(&mem, &m, 1);
    for (int s = 0; s < len; s += ctx) seg_forward(&m, &mem, tok + s, len - s < ctx ? len - s : ctx, full + (size_t)s * V);
    decode_state_t ds;
    decode_init(&ds, &m);
    for (int t = 0; t < len; t++) memcpy(inc + (size_t)t * V, decode_step(&m, &ds, tok[t]), V * sizeof(float));
    float scale = max_abs(full, (size_t)len * V);
    EXPECT_CLOSE("decode == segment-wise forward", inc, full, (size_t)len * V, 1e-5 * scale, 1e-4);
    decode_free(&ds);
    model_mem_free(&mem);
    free(tok);
    free(full);
    free(inc);
    model_free(&m);
}

static void test_decode(void) {
    pos_scheme_t schemes[] = {POS_ROPE, POS_NONE};
    for (int s = 0; s < 2; s++) {
        const char *p = pos_name(schemes[s]);
        char name[256];
        const char *spec = "adaptive(span=8,ramp=3,persist=2)/mlp,allattn(persist=3,span=6,ramp=2),softmax(persist=3)/mlp";
        snprintf(name, sizeof name, "%s: decode == segment-wise forward, ctx 8, M 5, 3 segments + 3 (%s)", p, spec);
        TEST_CASE(name) check_decode(schemes[s], spec, 8, 5, 27);
        snprintf(name, sizeof name, "%s: decode == segment-wise forward, ctx 8, M 13, 4 segments (%s)", p, spec);
        TEST_CASE(name) check_decode(schemes[s], spec, 8, 13, 32);
        // span beyond ctx, reached through the memory only
        spec = "adaptive(span=20,ramp=4)/mlp,allattn(persist=2,span=16,ramp=3)";
        snprintf(name, sizeof name, "%s: decode == segment-wise forward, span > ctx 8, M 24, 5 segments (%s)", p, spec);
        TEST_CASE(name) check_decode(schemes[s], spec, 8, 24, 37);
    }
}

// ---------------------------------------------------------------------------------------------
// compute follows the span

static void test_compute(void) {
    TEST_CASE("short span at M 64: only the last W-1 memory rows projected, ~T*(W+RB) keys scored per head") {
        enum { T = 32, B = 2, C = 16, H = 4, M = 64 };
        model_t m;
        if (build(&m, POS_ROPE, "adaptive(span=4,ramp=2)/none", C, H, T, M, 1)) return;
        block_t *blk = &m.layers[0].mixer;
        attn_span_t *a = blk->priv;
        param_t *s = params_find(&m.params, "layers.0.attn.span");
        for (int h = 0; h < H; h++) s->data[h] = 1.0f;  // z 4: W = 4 + 2 = 6
        model_alloc_acts(&m, B, T, 0.0f);
        seg_mem_t mem;
        model_mem_init(&mem, &m, B);
        int32_t tok[B * T];
        rng_t r;
        rng_seed(&r, 1);
        run_ctx_t rc = {.training = 0, .rng = &r, .mem = &mem};
        for (int k = 0; k < 3; k++) {  // n 0, 32, 64
            fixture_tokens(tok, B * T, V, 10 + k);
            model_forward(&m, tok, NULL, B, T, &rc);
        }
        long long with_mem = a->keys_scored;
        int used = a->mem_rows_used;
        run_ctx_t rc0 = {.training = 0, .rng = &r};
        model_forward(&m, tok, NULL, B, T, &rc0);
        long long without = a->keys_scored;
        int W = 6, RB = 8;
        long long bound = (long long)B * H * T * (W + RB - 1);
        printf("  memory rows projected %d of %d; keys scored with memory %lld, without %lld, bound %lld, "
               "all of memory+segment would be %lld\n",
               used, mem.n, with_mem, without, bound, (long long)B * H * T * (M + (T + 1) / 2));
        EXPECT_MSG(used == W - 1, "projected %d memory rows, want W-1 = %d", used, W - 1);
        EXPECT_MSG(with_mem <= bound, "scored %lld > bound %lld", with_mem, bound);
        // only the first row block gains keys from the memory: at most RB·(W−1) more per head
        EXPECT_MSG(with_mem - without <= (long long)B * H * RB * (W - 1), "memory added %lld scores", with_mem - without);
        EXPECT(with_mem > without);
        model_mem_free(&mem);
        model_free(&m);
    }
    TEST_CASE("no span (softmax(persist)) at M 64: every remembered row is projected and scored") {
        enum { T = 16, B = 1, C = 16, H = 4, M = 64 };
        model_t m;
        if (build(&m, POS_ROPE, "softmax(persist=1)/none", C, H, T, M, 1)) return;
        attn_span_t *a = m.layers[0].mixer.priv;
        model_alloc_acts(&m, B, T, 0.0f);
        seg_mem_t mem;
        model_mem_init(&mem, &m, B);
        int32_t tok[T];
        rng_t r;
        rng_seed(&r, 1);
        run_ctx_t rc = {.training = 0, .rng = &r, .mem = &mem};
        for (int k = 0; k < 5; k++) {  // n 0, 16, 32, 48, 64
            fixture_tokens(tok, T, V, 10 + k);
            model_forward(&m, tok, NULL, B, T, &rc);
        }
        EXPECT(a->mem_rows_used == 64);
        EXPECT_MSG(a->keys_scored >= (long long)H * T * (64 + (T + 1) / 2), "scored %lld", a->keys_scored);
        model_mem_free(&mem);
        model_free(&m);
    }
}

// ---------------------------------------------------------------------------------------------
// check_memory

static int build_msg(const char *spec, int ctx, int M, char *err, size_t n) {
    model_t m;
    model_dims_t d = {.vocab = 11, .dim = 8, .heads = 2, .ctx = ctx, .pos = POS_ROPE, .memory = M};
    int rc = model_build(&m, &d, spec, err, n);
    if (rc == 0) model_free(&m);
    return rc;
}

static void test_check_memory(void) {
    TEST_CASE("check_memory: span <= max(ctx, M); one line naming the layer; softmax(persist) has no span") {
        char err[512] = "";
        EXPECT(build_msg("softmax(persist=2),adaptive(span=2048)", 128, 1024, err, sizeof err) != 0);
        printf("  %s\n", err);
        EXPECT_MSG(strstr(err, "layer 1 (adaptive): span 2048 exceeds both ctx 128 and --memory 1024; lower span or "
                               "raise --memory") && !strchr(err, '\n'), "'%s'", err);
        EXPECT(build_msg("allattn(span=200)", 128, 0, err, sizeof err) != 0);
        printf("  %s\n", err);
        EXPECT_MSG(strstr(err, "layer 0 (allattn): span=200 exceeds --ctx 128") && strstr(err, "--memory >= 200") &&
                       !strchr(err, '\n'), "'%s'", err);
        EXPECT(build_msg("adaptive(span=2048)", 128, 2048, err, sizeof err) == 0);
        EXPECT(build_msg("adaptive(span=128),allattn(span=1000)", 128, 1000, err, sizeof err) == 0);
        EXPECT(build_msg("softmax(persist=4)", 16, 1000, err, sizeof err) == 0);
        // model_set_memory on a built model: lowering M below the span is refused, M 0 included
        model_t m;
        model_dims_t d = {.vocab = 11, .dim = 8, .heads = 2, .ctx = 16, .pos = POS_NONE, .memory = 64};
        CHECK(model_build(&m, &d, "adaptive(span=40)/mlp", err, sizeof err) == 0);
        EXPECT(model_set_memory(&m, 40, err, sizeof err) == 0 && m.dims.memory == 40);
        EXPECT(model_set_memory(&m, 39, err, sizeof err) != 0 && strstr(err, "span 40 exceeds both ctx 16 and --memory 39"));
        EXPECT(model_set_memory(&m, 0, err, sizeof err) != 0 && strstr(err, "span=40 exceeds --ctx 16"));
        EXPECT(m.dims.memory == 40);
        model_free(&m);
    }
}

int main(void) {
    test_check_memory();
    test_no_memory_identical();
    test_consistency();
    test_causality();
    test_decode();
    test_gradients();
    test_compute();
    return test_main_end();
}
