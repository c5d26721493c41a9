// fixture_mem.h — the segment-memory checks (LONG_CONTEXT.md §2 and §4 "Traps") of one model spec,
// for test_kinds.c's walk over every mixer example under --pos rope and none. Tiny models
// (V 13, C 16, H 4 unless said), weights at std 0.3, no dropout; every length a multiple of 12 so
// that every linformer example's chunk (2, 3, 4) divides it.
//   - consistency: with memory M, segment A (12 tokens, empty memory) then segment B (12) give for B
//     the logits of ONE memory-free forward over A|B — restricted to B — when M ≥ 12; with M = 6, of
//     the memory-free forward over A's last 6 tokens and B. The memory model's ctx is the segment
//     length, as in training (the performer needs M a multiple of ctx, so it refuses M = 6). Relative
//     positions only: under rope the memory run rotates at stream positions 0…23, the reference at 0…17.
//   - causality across segments: in a stream of three segments, changing the token at stream
//     position t changes no logit before t (bit for bit) and changes t's own.
//   - decode == forward: token-by-token decoding with dims.memory = M over 3 segments and 5 tokens
//     reproduces the segment-wise forward's logits (M = ctx and M = 2·ctx).
//   - streams are independent: two streams run as the B = 2 rows of one memory over three segments
//     give each row the logits it gets alone (B = 1) — no state leaks between rows.
//   - gradient check with memory: a first segment fills the memory (advance 1), then every
//     trainable tensor's gradient of the loss over a second segment, read-only memory (advance 0),
//     against finite differences: W_k and W_v get their memory positions' share (nothing flows into
//     the state itself, which is an input here).
#ifndef ATTNLAB_TEST_FIXTURE_MEM_H
#define ATTNLAB_TEST_FIXTURE_MEM_H

#include "tests/fixture.h"

enum { FMEM_V = 13, FMEM_C = 16, FMEM_H = 4, FMEM_SEG = 12 };

// fixture_model with dims.memory = M (model_build validates it). Returns 0, or -1 with the message
// in err (a kind that refuses this M, e.g. a linformer chunk that does not divide it).
static inline int fixture_mem_model(model_t *m, const char *spec, int V, int C, int H, int ctx, int M, uint64_t seed,
                                    char *err, size_t errlen) {
    model_dims_t d = {.vocab = V, .dim = C, .heads = H, .ctx = ctx, .pos = fixture_pos_scheme, .memory = M};
    if (model_build(m, &d, spec, err, errlen)) return -1;
    fixture_init_weights(m, 0.3f, seed);
    return 0;
}

// Logits (T, V) of tok[0..T) as one segment of the memory's stream (mem NULL: memory-free window).
static inline void fmem_forward(model_t *m, seg_mem_t *mem, const int32_t *tok, int T, float *out) {
    rng_t r;
    rng_seed(&r, 4);
    run_ctx_t rc = {.training = 1, .dropout = 0.0f, .rng = &r, .mem = mem};
    model_forward(m, tok, NULL, 1, T, &rc);
    memcpy(out, m->probs, (size_t)T * m->dims.vocab * sizeof(float));
}

// Segment-wise logits of tok[0..n) from an empty memory, in segments of seg (the last may be shorter).
static inline void fmem_stream(model_t *m, seg_mem_t *mem, const int32_t *tok, int n, int seg, float *out) {
    model_mem_clear(mem);
    mem->advance = 1;
    for (int s = 0; s < n; s += seg) {
        int T = n - s < seg ? n - s : seg;
        fmem_forward(m, mem, tok + s, T, out + (size_t)s * m->dims.vocab);
    }
}

// The logits of stream tok[0..n) with token t changed (tok is restored), in segments of seg.
static inline void fmem_stream_changed(model_t *m, seg_mem_t *mem, int32_t *tok, int n, int seg, int t, int32_t to,
                                       float *out) {
    int32_t saved = tok[t];
    tok[t] = to;
    fmem_stream(m, mem, tok, n, seg, out);
    tok[t] = saved;
}

static inline float fmem_scale(const float *x, size_t n) {
    float s = 0;
    for (size_t i = 0; i < n; i++) s = fmaxf(s, fabsf(x[i]));
    return s;
}

// Consistency at memory M (12 or 6): see the header. Returns 1 if the kind refused M (err set).
static inline int fixture_mem_consistency(const char *spec, int M, char *err, size_t errlen) {
    int V = FMEM_V, S = FMEM_SEG;
    model_t m, ref;
    if (fixture_mem_model(&m, spec, V, FMEM_C, FMEM_H, S, M, 51, err, errlen)) return 1;
    char rerr[512];
    if (fixture_mem_model(&ref, spec, V, FMEM_C, FMEM_H, 2 * S, 0, 51, rerr, sizeof rerr)) {
        EXPECT_MSG(0, "memory-free %s: %s", spec, rerr);
        model_free(&m);
        return 0;
    }
    int whole = M >= S;  // what B sees of A
    int skip = whole ? 0 : S - M, Tref = 2 * S - skip;
    model_alloc_acts(&m, 1, S, 0.0f);
    model_alloc_acts(&ref, 1, 2 * S, 0.0f);
    int32_t tok[2 * FMEM_SEG];
    fixture_tokens(tok, 2 * S, V, 61);
    float *seg = xcalloc((size_t)2 * S * V, sizeof *seg), *full = xcalloc((size_t)2 * S * V, sizeof *full);
    seg_mem_t mem;
    model_mem_init(&mem, &m, 1);
    fmem_stream(&m, &mem, tok, 2 * S, S, seg);
    fmem_forward(&ref, NULL, tok + skip, Tref, full);
    EXPECT_MSG(mem.n == (M < 2 * S ? M : 2 * S) && mem.pos0 == 2 * S, "after two segments n %d pos0 %ld", mem.n,
               mem.pos0);
    const float *want = full + (size_t)(Tref - S) * V, *got = seg + (size_t)S * V;
    char what[200];
    snprintf(what, sizeof what, "segment B with memory %d vs one window over %s", M, whole ? "A|B" : "A's tail|B");
    EXPECT_CLOSE(what, got, want, (size_t)S * V, 1e-4 * fmem_scale(want, (size_t)S * V), 1e-4);
    if (!whole) {  // and the memory did matter: the forward over B alone differs
        float *alone = xcalloc((size_t)S * V, sizeof *alone);
        fmem_forward(&m, NULL, tok + S, S, alone);
        float diff = 0;
        for (int i = 0; i < S * V; i++) diff = fmaxf(diff, fabsf(alone[i] - got[i]));
        EXPECT_MSG(diff > 1e-4f, "segment B's logits do not depend on the memory (max diff %g)", diff);
        free(alone);
    }
    model_mem_free(&mem);
    free(seg);
    free(full);
    model_free(&m);
    model_free(&ref);
    return 0;
}

// Causality across segments (ctx 12, M 12, three segments).
static inline void fixture_mem_causality(const char *spec) {
    int V = FMEM_V, S = FMEM_SEG, n = 3 * S;
    model_t m;
    char err[512];
    if (fixture_mem_model(&m, spec, V, FMEM_C, FMEM_H, S, S, 71, err, sizeof err)) {
        EXPECT_MSG(0, "%s with memory %d: %s", spec, S, err);
        return;
    }
    model_alloc_acts(&m, 1, S, 0.0f);
    seg_mem_t mem;
    model_mem_init(&mem, &m, 1);
    int32_t tok[3 * FMEM_SEG];
    fixture_tokens(tok, (size_t)n, V, 81);
    float *base = xcalloc((size_t)n * V, sizeof *base), *pert = xcalloc((size_t)n * V, sizeof *pert);
    fmem_stream(&m, &mem, tok, n, S, base);
    for (int t = 0; t < n; t++) {
        fmem_stream_changed(&m, &mem, tok, n, S, t, (tok[t] + 1 + t % (V - 1)) % V, pert);
        float worst = 0, seen = 0, later = 0;
        int where = -1;
        for (int i = 0; i < t * V; i++) {
            float d = fabsf(pert[i] - base[i]);
            if (!(d <= worst)) { worst = d; where = i / V; }
        }
        for (int v = 0; v < V; v++) seen = fmaxf(seen, fabsf(pert[t * V + v] - base[t * V + v]));
        EXPECT_MSG(worst == 0.0f, "changing stream token %d changed logits at position %d by %g", t, where, worst);
        EXPECT_MSG(seen > 1e-6f, "changing stream token %d did not change its own logits", t);
        // a token of the first segment reaches the next segment's first position through the memory:
        // every one within the mixer's reach (block_ops_t.reach; none: all of them); with a learned span
        // (adaptive, allattn) the mask cuts keys at distance ≥ z + R, so there only the last one, at
        // distance 1, must
        const block_t *mx = &m.layers[0].mixer;
        int reach = mx->ops->reach ? mx->ops->reach(mx) : S;
        if (t < S && (t == S - 1 || (!mx->ops->spans && S - t <= reach))) {
            for (int v = 0; v < V; v++) later = fmaxf(later, fabsf(pert[S * V + v] - base[S * V + v]));
            EXPECT_MSG(later > 1e-7f, "changing stream token %d did not reach position %d through the memory", t, S);
        }
    }
    model_mem_free(&mem);
    free(base);
    free(pert);
    model_free(&m);
}

// Streams are independent (ctx 12, M 12, three segments, B 2 vs each row alone).
static inline void fixture_mem_rows(const char *spec) {
    int V = FMEM_V, S = FMEM_SEG, n = 3 * S;
    model_t m;
    char err[512];
    if (fixture_mem_model(&m, spec, V, FMEM_C, FMEM_H, S, S, 111, err, sizeof err)) {
        EXPECT_MSG(0, "%s with memory %d: %s", spec, S, err);
        return;
    }
    model_alloc_acts(&m, 2, S, 0.0f);
    seg_mem_t one, two;
    model_mem_init(&one, &m, 1);
    model_mem_init(&two, &m, 2);
    int32_t tok[2][3 * FMEM_SEG], seg[2 * FMEM_SEG];
    fixture_tokens(tok[0], (size_t)n, V, 121);
    fixture_tokens(tok[1], (size_t)n, V, 131);
    float *alone = xcalloc((size_t)2 * n * V, sizeof *alone), *both = xcalloc((size_t)2 * n * V, sizeof *both);
    for (int r = 0; r < 2; r++) fmem_stream(&m, &one, tok[r], n, S, alone + (size_t)r * n * V);
    rng_t rg;
    rng_seed(&rg, 4);
    run_ctx_t rc = {.training = 1, .dropout = 0.0f, .rng = &rg, .mem = &two};
    for (int s0 = 0; s0 < n; s0 += S) {
        for (int r = 0; r < 2; r++) memcpy(seg + r * S, tok[r] + s0, (size_t)S * sizeof(int32_t));
        model_forward(&m, seg, NULL, 2, S, &rc);
        for (int r = 0; r < 2; r++)
            memcpy(both + ((size_t)r * n + s0) * V, m.probs + (size_t)r * S * V, (size_t)S * V * sizeof(float));
    }
    EXPECT_CLOSE("two streams as the rows of one memory vs each alone", both, alone, (size_t)2 * n * V,
                 1e-4 * fmem_scale(alone, (size_t)2 * n * V), 1e-4);
    model_mem_free(&one);
    model_mem_free(&two);
    free(alone);
    free(both);
    model_free(&m);
}

// decode == segment-wise forward over 3 segments + 5 tokens (ctx 12, memory M).
static inline void fixture_mem_decode(const char *spec, int M) {
    int V = FMEM_V, S = FMEM_SEG, n = 3 * S + 5;
    model_t m;
    char err[512];
    if (fixture_mem_model(&m, spec, V, FMEM_C, FMEM_H, S, M, 91, err, sizeof err)) {
        EXPECT_MSG(0, "%s with memory %d: %s", spec, M, err);
        return;
    }
    model_alloc_acts(&m, 1, S, 0.0f);
    seg_mem_t mem;
    model_mem_init(&mem, &m, 1);
    int32_t tok[3 * FMEM_SEG + 5];
    fixture_tokens(tok, (size_t)n, V, 101);
    float *full = xcalloc((size_t)n * V, sizeof *full), *inc = xcalloc((size_t)n * V, sizeof *inc);
    fmem_stream(&m, &mem, tok, n, S, full);
    decode_state_t ds;
    decode_init(&ds, &m);
    for (int t = 0; t < n; t++) memcpy(inc + (size_t)t * V, decode_step(&m, &ds, tok[t]), (size_t)V * sizeof(float));
    EXPECT_CLOSE("decoded logits across segment boundaries", inc, full, (size_t)n * V, 1e-4 * fmem_scale(full, (size_t)n * V),
                 1e-4);
    decode_free(&ds);
    model_mem_free(&mem);
    free(full);
    free(inc);
    model_free(&m);
}

// Gradient check with memory (V 11, C 8, H 2, ctx 12, M 12, B 2 streams, weights std 0.4).
typedef struct {
    model_t m;
    seg_mem_t mem;
    int32_t tok[2 * FMEM_SEG], tgt[2 * FMEM_SEG];
} fmem_grad_t;

static inline double fmem_grad_loss(void *p) {
    fmem_grad_t *c = p;
    rng_t r;
    rng_seed(&r, 99);
    run_ctx_t rc = {.training = 1, .dropout = 0.0f, .rng = &r, .mem = &c->mem};
    return model_forward(&c->m, c->tok, c->tgt, 2, FMEM_SEG, &rc) + model_extra_loss(&c->m, 0);
}

// The gradient cases' model (V 11, C 8, H 2, ctx 12, M 12, 2 streams) with its memory and tokens:
// warm (the segment that fills the memory), c->tok, c->tgt. Returns NULL (case failed) if the kind
// refuses memory 12.
static inline fmem_grad_t *fmem_grad_setup(const char *spec, uint64_t seed, int32_t *warm) {
    int S = FMEM_SEG, V = 11;
    fmem_grad_t *c = xcalloc(1, sizeof *c);
    char err[512];
    pos_scheme_t saved = fixture_pos_scheme;
    int rc = fixture_mem_model(&c->m, spec, V, 8, 2, S, S, seed, err, sizeof err);
    fixture_pos_scheme = saved;
    if (rc) {
        EXPECT_MSG(0, "%s with memory %d: %s", spec, S, err);
        free(c);
        return NULL;
    }
    model_alloc_acts(&c->m, 2, S, 0.0f);
    model_mem_init(&c->mem, &c->m, 2);
    fixture_tokens(warm, 2 * S, V, 4);
    fixture_tokens(c->tok, 2 * S, V, 5);
    fixture_tokens(c->tgt, 2 * S, V, 6);
    return c;
}

static inline void fmem_grad_free(fmem_grad_t *c) {
    model_mem_free(&c->mem);
    model_free(&c->m);
    free(c);
}

// Returns the worst ratio to tolerance (fd_check_piecewise, as test_kinds.c's own gradient checks).
static inline double fixture_mem_gradcheck(const char *spec, uint64_t seed) {
    int S = FMEM_SEG;
    int32_t warm[2 * FMEM_SEG];
    fmem_grad_t *c = fmem_grad_setup(spec, seed, warm);
    if (!c) return INFINITY;
    for (int i = 0; i < c->m.params.count; i++) {  // std 0.4 as the memory-free gradient checks
        param_t *p = c->m.params.items[i];
        if (p->init == INIT_NORMAL || p->init == INIT_UNIFORM)
            for (size_t j = 0; j < p->numel; j++) p->data[j] *= 0.4f / 0.3f;
    }
    rng_t r;
    rng_seed(&r, 99);
    run_ctx_t run = {.training = 1, .dropout = 0.0f, .rng = &r, .mem = &c->mem};
    model_forward(&c->m, warm, NULL, 2, S, &run);  // fills the memory: n = 12, pos0 = 12
    c->mem.advance = 0;
    params_zero_grad(&c->m.params);
    fmem_grad_loss(c);
    rng_seed(&r, 99);
    model_backward(&c->m, 1.0f, &run);
    model_extra_loss(&c->m, 1);
    EXPECT(c->mem.n == S && c->mem.pos0 == S);
    double worst = fixture_fd_all_params(&c->m, fmem_grad_loss, c);
    fmem_grad_free(c);
    return worst;
}

// A training step with memory (advance 1: the forward moves the state on before the backward runs)
// gives exactly the gradients of the same step with the state only read (advance 0): the backward
// must use what the forward saw, never the state as the forward left it. The gradient check above
// runs read-only, so without this a backward reading the advanced state would pass it. Bit for bit.
static inline void fixture_mem_advance_grad(const char *spec, uint64_t seed) {
    int S = FMEM_SEG;
    int32_t warm[2 * FMEM_SEG];
    fmem_grad_t *c = fmem_grad_setup(spec, seed, warm);
    if (!c) return;
    rng_t r;
    rng_seed(&r, 99);
    run_ctx_t run = {.training = 1, .dropout = 0.0f, .rng = &r, .mem = &c->mem};
    c->mem.advance = 1;
    model_forward(&c->m, warm, NULL, 2, S, &run);  // fills the memory: n = 12, pos0 = 12
    model_forward(&c->m, c->tok, NULL, 2, S, &run);  // and once more: n = 12, pos0 = 24 (a full memory)
    float **kept = xcalloc((size_t)c->mem.n_blocks, sizeof *kept);
    for (int i = 0; i < c->mem.n_blocks; i++)
        if (c->mem.state[i]) {
            kept[i] = xmalloc(c->mem.floats[i] * sizeof(float));
            memcpy(kept[i], c->mem.state[i], c->mem.floats[i] * sizeof(float));
        }
    int n0 = c->mem.n;
    long p0 = c->mem.pos0;
    size_t G = c->m.params.total;
    float *g[2] = {xmalloc(G * sizeof(float)), xmalloc(G * sizeof(float))};
    for (int adv = 0; adv <= 1; adv++) {
        for (int i = 0; i < c->mem.n_blocks; i++)
            if (kept[i]) memcpy(c->mem.state[i], kept[i], c->mem.floats[i] * sizeof(float));
        c->mem.n = n0;
        c->mem.pos0 = p0;
        c->mem.advance = adv;
        params_zero_grad(&c->m.params);
        rng_seed(&r, 99);
        model_forward(&c->m, warm, c->tgt, 2, S, &run);
        rng_seed(&r, 99);
        model_backward(&c->m, 1.0f, &run);
        memcpy(g[adv], c->m.params.grad, G * sizeof(float));
    }
    size_t diff = 0;
    for (size_t j = 0; j < G; j++) diff += g[0][j] != g[1][j];
    EXPECT_MSG(diff == 0, "%s: %zu of %zu gradient entries differ between advance 1 and advance 0", spec, diff, G);
    for (int i = 0; i < c->mem.n_blocks; i++) free(kept[i]);
    free(kept);
    free(g[0]);
    free(g[1]);
    fmem_grad_free(c);
}

#endif
