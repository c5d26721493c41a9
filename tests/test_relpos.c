// test_relpos.c — learned relative positions (--pos rel, blocks/relpos.h), registry-driven: every
// mixer example of every registered kind whose built table says rel_pos (softmax, adaptive, allattn,
// softmax(persist)) gets
//   - a double reference of its scores: after a one-sequence forward, the kind's attention map gives
//     a_ij, and log(a_ij / a_ii) must be scale·(q_i·(k_j − k_i) + q_i·(r_{i−j} − r_0)) + log m(i−j)
//     (m the adaptive span mask, 1 without) with q, k from the block's own weights and r_d column d
//     of attn.rel_k (fails for a distance off by one, a transposed table, a missing scale);
//   - a constant input's log-ratios depend on i − j only, and do depend on it;
//   - the gradient check of every tensor (attn.rel_k included) with and without dropout,
//     causality, decode == forward, the checkpoint round trip (fixture.h, roundtrip.h);
//   - segment memory (fixture_mem.h): two segments == one window at M 12 and 6 (the window's model
//     takes the memory model's tensors, attn.rel_k's first columns), causality across segments,
//     streams as batch rows, decode == segment-wise forward at M 12 and 24, the advance-0/1 gradient
//     identity and the gradient check with a filled memory;
// and every other mixer kind is refused under --pos rel in one line naming the layer and kind.
// Plus: the reach R = ctx + M bounds --memory and a wider --ctx (model_set_memory, eval_model_at_ctx).
// `test_relpos --dump DIR` instead writes, for tests/py_relpos.sh (the PyTorch twin's gradients), a
// checkpoint of a --pos rel model of every softmax-family kind whose adam.m.* tensors hold the
// gradient of one batch's mean loss, and the batch (DIR/batch.txt: B T, loss, tokens, targets).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "blocks/attn_span.h"
#include "cli/eval.h"
#include "tests/fixture_mem.h"
#include "tests/fixture_pos.h"
#include "tests/roundtrip.h"
#include "tests/testlib.h"

enum { MAX_CASES = 64 };

static uint64_t spec_seed(const char *s) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

// 1 if spec builds under --pos rel (its mixer's table has rel_pos); else err holds the refusal.
static int rel_builds(const char *spec, char *err, size_t errlen) {
    model_dims_t d = {.vocab = 11, .dim = 8, .heads = 2, .ctx = 8, .pos = POS_REL};
    model_t m;
    err[0] = 0;
    if (model_build(&m, &d, spec, err, errlen)) return 0;
    model_free(&m);
    return 1;
}

// ---------------------------------------------------------------------------------------------
// the double reference, through the kind's attention map

enum { RV = 11, RC = 16, RH = 4, RD = RC / RH, RT = 12 };

static double dotd(const double *a, const double *b) {
    double s = 0;
    for (int d = 0; d < RD; d++) s += a[d] * b[d];
    return s;
}

// q or k (which 0/1) of head h at row t: x·W[h·D…]ᵀ + b, in double, from the block's tensors.
static void proj_ref(const model_t *m, const float *x, int which, int h, int t, double *out) {
    const param_t *w = params_find((param_table_t *)&m->params, which ? "layers.0.attn.wk" : "layers.0.attn.wq");
    const param_t *bias = params_find((param_table_t *)&m->params, which ? "layers.0.attn.bk" : "layers.0.attn.bq");
    for (int d = 0; d < RD; d++) {
        int o = h * RD + d;
        double s = bias->data[o];
        for (int c = 0; c < RC; c++) s += (double)w->data[(size_t)o * RC + c] * x[(size_t)t * RC + c];
        out[d] = s;
    }
}

// The span mask m(x) of head h (1 for kinds without a span).
static double span_mask_ref(const block_t *b, int h, int x) {
    if (!b->ops->spans) return 1.0;
    const attn_span_t *a = b->priv;
    double z = (double)a->S * a->span->data[h];
    double v = ((double)a->R + z - x) / (double)a->R;
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

// Forward x (RT, RC) through the mixer of spec; log-ratio errors against the reference. constant: x
// is one row repeated and the test checks the diagonals instead.
static void check_reference(const char *spec) {
    model_t m;
    if (pos_fixture_model(&m, POS_REL, spec, RV, RC, RH, RT, 0.3f, 7)) {
        tl_case_failed = 1;
        return;
    }
    block_t *b = &m.layers[0].mixer;
    float *act = xcalloc(b->ops->act_floats(b, 1, RT), sizeof(float));
    float *scratch = xcalloc(b->ops->scratch_floats(b, 1, RT), sizeof(float));
    float *y = xcalloc((size_t)RT * RC, sizeof(float)), x[RT * RC];
    rng_t g;
    rng_seed(&g, 5);
    for (int i = 0; i < RT * RC; i++) x[i] = (float)rng_normal(&g);
    run_ctx_t rc = {.training = 0};
    b->ops->forward(b, y, x, act, scratch, 1, RT, &rc);
    int E = b->ops->attn_map(b, act, RT, 0, NULL), W = RT + E;
    float *map = xcalloc((size_t)RT * W, sizeof(float));
    const param_t *rel = params_find(&m.params, "layers.0.attn.rel_k");
    EXPECT_MSG(rel && rel->ndim == 2 && rel->shape[0] == RD && rel->shape[1] == RT, "attn.rel_k missing or not (D, ctx)");
    double worst = 0, seen = 0, scale = 1.0 / sqrt((double)RD);
    int pairs = 0;
    for (int h = 0; rel && h < RH; h++) {
        b->ops->attn_map(b, act, RT, h, map);
        for (int i = 0; i < RT; i++) {
            double q[RD], ki[RD], r0[RD];
            proj_ref(&m, x, 0, h, i, q);
            proj_ref(&m, x, 1, h, i, ki);
            for (int e = 0; e < RD; e++) r0[e] = rel->data[(size_t)e * RT];
            for (int j = 0; j < i; j++) {
                double mk = span_mask_ref(b, h, i - j);
                if (mk <= 0) continue;
                double kj[RD], rd[RD];
                proj_ref(&m, x, 1, h, j, kj);
                for (int e = 0; e < RD; e++) rd[e] = rel->data[(size_t)e * RT + (i - j)];
                double want = scale * (dotd(q, kj) + dotd(q, rd) - dotd(q, ki) - dotd(q, r0)) + log(mk);
                double got = log((double)map[(size_t)i * W + j] / map[(size_t)i * W + i]);
                worst = fmax(worst, fabs(got - want));
                seen = fmax(seen, fabs(want));
                pairs++;
            }
        }
    }
    printf("  %s: worst |log-ratio error| %.2e over %d pairs, scores up to %.2f\n", spec, worst, pairs, seen);
    EXPECT(pairs > RT && seen > 0.1);
    EXPECT_MSG(worst < 1e-4, "worst %g", worst);
    // A constant input: the log-ratios depend on i − j alone (only the relative term varies), and vary.
    for (int t = 1; t < RT; t++) memcpy(x + (size_t)t * RC, x, RC * sizeof(float));
    b->ops->forward(b, y, x, act, scratch, 1, RT, &rc);
    double spread = 0, lo = INFINITY, hi = -INFINITY;
    for (int h = 0; h < RH; h++) {
        b->ops->attn_map(b, act, RT, h, map);
        for (int i = 1; i < RT; i++)
            for (int j = 0; j < i; j++) {
                if (span_mask_ref(b, h, i - j) <= 0) continue;
                const float *row = map + (size_t)i * W, *ref = map + (size_t)(i - j) * W;
                double a = log((double)row[j] / row[i]), c = log((double)ref[0] / ref[i - j]);
                spread = fmax(spread, fabs(a - c));
                lo = fmin(lo, a);
                hi = fmax(hi, a);
            }
    }
    printf("  %s, constant input: worst difference along a diagonal %.2e; log-ratios span %.3f\n", spec, spread, hi - lo);
    EXPECT_MSG(spread < 1e-5, "spread %g", spread);
    EXPECT_MSG(hi - lo > 0.05, "positions change nothing: log-ratios span %g", hi - lo);
    free(map);
    free(act);
    free(scratch);
    free(y);
    model_free(&m);
}

// ---------------------------------------------------------------------------------------------
// segment memory: two segments == one window (fixture_mem.h's consistency, with the window model
// taking the memory model's tensors: its attn.rel_k is the first Tref columns of the memory model's)

static void copy_tensors(model_t *dst, const model_t *src) {
    for (int i = 0; i < dst->params.count; i++) {
        param_t *p = dst->params.items[i];
        const param_t *s = params_find((param_table_t *)&src->params, p->name);
        CHECK(s != NULL && s->ndim == p->ndim && s->shape[0] == p->shape[0]);
        if (p->ndim == 2 && s->shape[1] != p->shape[1]) {  // attn.rel_k (D, R): the first columns
            CHECK(strstr(p->name, "rel_k") && p->shape[1] <= s->shape[1]);
            for (int64_t e = 0; e < p->shape[0]; e++)
                memcpy(p->data + e * p->shape[1], s->data + e * s->shape[1], (size_t)p->shape[1] * sizeof(float));
        } else {
            CHECK(s->numel == p->numel);
            memcpy(p->data, s->data, p->numel * sizeof(float));
        }
    }
}

static void check_mem_consistency(const char *spec, int M) {
    int V = FMEM_V, S = FMEM_SEG, skip = M >= S ? 0 : S - M, Tref = 2 * S - skip;
    model_t m, ref;
    char err[512];
    if (fixture_mem_model(&m, spec, V, FMEM_C, FMEM_H, S, M, 51, err, sizeof err) ||
        fixture_mem_model(&ref, spec, V, FMEM_C, FMEM_H, Tref, 0, 52, err, sizeof err)) {
        EXPECT_MSG(0, "%s: %s", spec, err);
        return;
    }
    copy_tensors(&ref, &m);
    model_alloc_acts(&m, 1, S, 0.0f);
    model_alloc_acts(&ref, 1, Tref, 0.0f);
    int32_t tok[2 * FMEM_SEG];
    fixture_tokens(tok, 2 * S, V, 61);
    float *seg = xcalloc((size_t)2 * S * V, sizeof *seg), *full = xcalloc((size_t)Tref * V, sizeof *full);
    seg_mem_t mem;
    model_mem_init(&mem, &m, 1);
    fmem_stream(&m, &mem, tok, 2 * S, S, seg);
    fmem_forward(&ref, NULL, tok + skip, Tref, full);
    EXPECT_CLOSE("segment B with memory vs the one window", seg + (size_t)S * V, full + (size_t)(Tref - S) * V,
                 (size_t)S * V, 1e-4 * fmem_scale(full, (size_t)Tref * V), 1e-4);
    model_mem_free(&mem);
    free(seg);
    free(full);
    model_free(&m);
    model_free(&ref);
}

static void with_one_thread(void (*fn)(const char *, uint64_t), const char *spec, uint64_t seed) {
#ifdef _OPENMP
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    fn(spec, seed);
#ifdef _OPENMP
    omp_set_num_threads(saved);
#endif
}

// The fixture scales every random tensor to std 0.4, persistent keys (stored at 1/sqrt(D)) 20-fold
// too: their scores then take nearly all the attention (allattn's rel_k gradient fell to 4e-5, under
// the check's absolute tolerance 2e-4, where a missing drel_k passed). Back to their real scale.
static void tame_persistent_keys(model_t *m) {
    for (int i = 0; i < m->params.count; i++) {
        param_t *p = m->params.items[i];
        if (strstr(p->name, "persist_k"))
            for (size_t j = 0; j < p->numel; j++) p->data[j] *= 0.02f / 0.4f;
    }
}

// The gradient check (fixture tolerances), after requiring that attn.rel_k's gradient is large
// enough for the check to see it missing (max |g| > 5 × the absolute tolerance).
static void gradcheck_rel(const char *spec, float dropout, uint64_t seed) {
    fixture_ctx_t *c = fixture_gradcheck_begin(spec, dropout, 0.4f, seed, tame_persistent_keys);
    if (!c) return;
    const param_t *r = params_find(&c->m.params, "layers.0.attn.rel_k");
    double g = 0;
    for (size_t j = 0; r && j < r->numel; j++) g = fmax(g, fabs(r->grad[j]));
    EXPECT_MSG(r && g > 1e-3, "attn.rel_k's gradient is at most %g: too small to check", g);
    fixture_gradcheck_end(c);
    double w = fixture_gradcheck_model_ex(spec, dropout, 0.4f, seed, tame_persistent_keys, 1e-2f);
    EXPECT_MSG(w <= 1.0, "worst ratio %g", w);
}
static void gradcheck_plain(const char *spec, uint64_t seed) { gradcheck_rel(spec, 0.0f, seed); }
static void gradcheck_dropout(const char *spec, uint64_t seed) { gradcheck_rel(spec, 0.1f, seed); }
static void gradcheck_memory(const char *spec, uint64_t seed) {
    double w = fixture_mem_gradcheck(spec, seed);
    EXPECT_MSG(w <= 1.0, "worst ratio %g", w);
}

static void check_kind(const char *spec, const char *dir) {
    static char name[400];  // tl_case keeps a pointer to it until the next case
    uint64_t seed = spec_seed(spec);
    snprintf(name, sizeof name, "--pos rel reference scores (attention map, double) %s", spec);
    TEST_CASE(name) check_reference(spec);
    for (int d = 0; d < 2; d++) {
        snprintf(name, sizeof name, "gradcheck %s --pos rel dropout %.1f", spec, d * 0.1);
        TEST_CASE(name) with_one_thread(d ? gradcheck_dropout : gradcheck_plain, spec, seed);
        snprintf(name, sizeof name, "causality %s --pos rel T 37 dropout %.1f", spec, d * 0.1);
        TEST_CASE(name) fixture_causality(spec, 37, 37, d * 0.1f, NULL);
    }
    snprintf(name, sizeof name, "decode == forward %s --pos rel ctx 37", spec);
    TEST_CASE(name) fixture_decode(spec, 37, NULL);
    snprintf(name, sizeof name, "checkpoint round trip %s --pos rel", spec);
    TEST_CASE(name) roundtrip_check(spec, dir, seed);
    for (int M = FMEM_SEG; M >= FMEM_SEG / 2; M -= FMEM_SEG / 2) {
        snprintf(name, sizeof name, "memory %d: two segments == one window, %s --pos rel", M, spec);
        TEST_CASE(name) check_mem_consistency(spec, M);
    }
    snprintf(name, sizeof name, "memory causality across segments %s --pos rel", spec);
    TEST_CASE(name) fixture_mem_causality(spec);
    snprintf(name, sizeof name, "memory: two streams as batch rows == each alone %s --pos rel", spec);
    TEST_CASE(name) fixture_mem_rows(spec);
    for (int M = FMEM_SEG; M <= 2 * FMEM_SEG; M += FMEM_SEG) {
        snprintf(name, sizeof name, "memory %d: decode == segment-wise forward %s --pos rel", M, spec);
        TEST_CASE(name) fixture_mem_decode(spec, M);
    }
    snprintf(name, sizeof name, "memory: a training step's gradients do not see the advanced state %s --pos rel", spec);
    TEST_CASE(name) fixture_mem_advance_grad(spec, seed);
    snprintf(name, sizeof name, "memory gradcheck %s --pos rel (attn.rel_k at distances up to 23)", spec);
    TEST_CASE(name) with_one_thread(gradcheck_memory, spec, seed);
}

// ---------------------------------------------------------------------------------------------
// the reach R = ctx + M

static void test_reach(void) {
    TEST_CASE("--pos rel: attn.rel_k is (D, ctx + M); --memory and a wider ctx beyond it are refused in one line") {
        model_dims_t d = {.vocab = 11, .dim = 8, .heads = 2, .ctx = 8, .pos = POS_REL, .memory = 4};
        model_t m;
        char err[512] = "";
        EXPECT_MSG(model_build(&m, &d, "softmax", err, sizeof err) == 0, "%s", err);
        const param_t *r = params_find(&m.params, "layers.0.attn.rel_k");
        EXPECT(r && r->shape[0] == 4 && r->shape[1] == 12 && m.dims.rel_reach == 12);
        EXPECT(model_set_memory(&m, 0, err, sizeof err) == 0 && model_set_memory(&m, 4, err, sizeof err) == 0);
        err[0] = 0;
        EXPECT(model_set_memory(&m, 5, err, sizeof err) != 0);
        EXPECT_MSG(strstr(err, "--memory 5") && strstr(err, "rel_k") && !strchr(err, '\n'), "'%s'", err);
        // windows at ctx 12 = R after dropping the memory: built, the same weights; 13 refused
        model_t wide;
        EXPECT(model_set_memory(&m, 0, err, sizeof err) == 0);
        EXPECT_MSG(eval_model_at_ctx(&wide, &m, 12, err, sizeof err) == 0, "%s", err);
        if (!tl_case_failed) model_free(&wide);
        err[0] = 0;
        EXPECT(eval_model_at_ctx(&wide, &m, 13, err, sizeof err) != 0);
        EXPECT_MSG(strstr(err, "--ctx 13") && strstr(err, "rel_k") && !strchr(err, '\n'), "'%s'", err);
        // with the memory kept, the window may not grow at all
        EXPECT(model_set_memory(&m, 4, err, sizeof err) == 0);
        err[0] = 0;
        EXPECT(eval_model_at_ctx(&wide, &m, 9, err, sizeof err) != 0);
        model_free(&m);
    }
    TEST_CASE("--pos rel at a wider ctx (≤ R): the first ctx positions' logits equal the trained window's") {
        model_dims_t d = {.vocab = 11, .dim = 8, .heads = 2, .ctx = 6, .pos = POS_REL, .memory = 6};
        model_t m, wide;
        char err[512] = "";
        if (model_build(&m, &d, "softmax,adaptive(span=6,ramp=2)", err, sizeof err)) {
            EXPECT_MSG(0, "%s", err);
            return;
        }
        fixture_init_weights(&m, 0.3f, 3);
        EXPECT(model_set_memory(&m, 0, err, sizeof err) == 0);
        if (eval_model_at_ctx(&wide, &m, 12, err, sizeof err)) {
            EXPECT_MSG(0, "%s", err);
            model_free(&m);
            return;
        }
        model_alloc_acts(&m, 1, 6, 0.0f);
        model_alloc_acts(&wide, 1, 12, 0.0f);
        int32_t tok[12];
        fixture_tokens(tok, 12, 11, 9);
        float a[6 * 11], b[12 * 11];
        fmem_forward(&m, NULL, tok, 6, a);
        fmem_forward(&wide, NULL, tok, 12, b);
        EXPECT_CLOSE("first 6 positions at ctx 12 vs ctx 6", b, a, 6 * 11, 1e-6, 1e-5);
        model_free(&wide);
        model_free(&m);
    }
}

// --dump DIR: see the header. V 256 (byte tokenizer), C 16, H 2 (D 8), ctx 12 + memory 4 (rel_k (8, 16),
// of which a window uses the first 12 columns), B 2, T 12, weights at std 0.3 (persistent keys tamed).
// Spans S·z̃ = 3.7 and 4.8 keep every integer distance off the ramp's kinks (m = 0 or 1 exactly,
// where attnlab and autograd take different one-sided derivatives).
static int dump(const char *dir) {
    const char *spec = "softmax,softmax(persist=2),adaptive(span=10,ramp=3,init=0.37),"
                       "allattn(persist=3,span=8,ramp=2,init=0.6)";
    model_dims_t d = {.vocab = 256, .dim = 16, .heads = 2, .ctx = 12, .pos = POS_REL, .memory = 4};
    model_t m;
    char err[1024];
    if (model_build(&m, &d, spec, err, sizeof err)) {
        fprintf(stderr, "test_relpos --dump: %s\n", err);
        return 1;
    }
    fixture_init_weights(&m, 0.3f, 17);
    tame_persistent_keys(&m);
    enum { B = 2, T = 12 };
    int32_t tok[B * T], tgt[B * T];
    fixture_tokens(tok, B * T, 256, 18);
    fixture_tokens(tgt, B * T, 256, 19);
    model_alloc_acts(&m, B, T, 0.0f);
    params_zero_grad(&m.params);
    rng_t r;
    rng_seed(&r, 1);
    run_ctx_t rc = {.training = 1, .dropout = 0.0f, .rng = &r};  // rc.mem NULL: windows, as the twin
    float loss = model_forward(&m, tok, tgt, B, T, &rc);  // the mean cross-entropy (no span penalty: the twin has none)
    model_backward(&m, 1.0f, &rc);
    memcpy(m.params.m, m.params.grad, m.params.total * sizeof(float));
    tokenizer_t tk;
    tok_init_byte(&tk);
    char path[600];
    snprintf(path, sizeof path, "%s/rel.safetensors", dir);
    int rc_save = ckpt_save(path, &m, &tk, "{\"step\":1}", 1, err, sizeof err);
    if (rc_save) fprintf(stderr, "test_relpos --dump: %s\n", err);
    snprintf(path, sizeof path, "%s/batch.txt", dir);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%d %d\n%.9g\n", B, T, loss);
        for (int i = 0; i < B * T; i++) fprintf(f, "%d%c", tok[i], i + 1 < B * T ? ' ' : '\n');
        for (int i = 0; i < B * T; i++) fprintf(f, "%d%c", tgt[i], i + 1 < B * T ? ' ' : '\n');
        fclose(f);
    }
    tok_free(&tk);
    model_free(&m);
    return rc_save || !f;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--dump") == 0) return dump(argv[2]);
    static fixture_kind_case_t cases[MAX_CASES];
    int n = fixture_kind_cases(cases, MAX_CASES);
    char dir[] = "/tmp/attnlab-relpos-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    fixture_pos_scheme = POS_REL;
    int kinds = 0;
    for (int i = 0; i < n; i++) {
        if (cases[i].ops->role != ROLE_MIXER) continue;
        char err[512], name[600];
        if (rel_builds(cases[i].spec, err, sizeof err)) {
            check_kind(cases[i].spec, dir);
            kinds++;
        } else {
            snprintf(name, sizeof name, "%s under --pos rel: refused in one line naming layer and kind", cases[i].spec);
            TEST_CASE(name) {
                char want[200];
                snprintf(want, sizeof want, "layer 0 (%s)", cases[i].ops->kind);
                EXPECT_MSG(strstr(err, "--pos rel") && strstr(err, want) && !strchr(err, '\n'), "'%s'", err);
                EXPECT_MSG(!cases[i].ops->rel_pos, "%s says rel_pos but does not build: '%s'", cases[i].spec, err);
            }
        }
    }
    TEST_CASE("--pos rel: softmax takes it") EXPECT(kinds >= 1 && block_find("softmax")->rel_pos);
    test_reach();
    fixture_pos_scheme = POS_LEARNED;
    rmdir(dir);
    return test_main_end();
}
