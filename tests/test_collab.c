// test_collab.c — collaborative attention (blocks/mixer_collab.c) and its conversion from softmax
// (init_from hook, blocks/cp_als.c): options and messages; the block's forward against a direct
// double-precision implementation of BLOCKS.md §7; finite-difference gradient checks (dk < d, = d,
// > d, not a multiple of H, with attention dropout); exact causality over more than one row block;
// decode == forward; "concatenate" mixing reproduces softmax MHA; conversion through a checkpoint
// (dk = d: same loss; dk < d: ALS error reported and decreasing in dk); ALS recovers a tensor of known
// CP rank; cache size. With --pos rope (dims.pos = POS_ROPE): forward against the formula with the
// rotated MIXED query R_i(Q̃_i⊙m_h) and rotated shared key R_j K̃_j; gradients of every tensor;
// causality; decode == forward; the trap (score differences along a row depend on j − i only: a
// prefix shifts every position and must not change them); an odd dk refused.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/check.h"
#include "checkpoint/checkpoint.h"
#include "blocks/cp_als.h"
#include "model/model.h"
#include "tests/fixture.h"
#include "tests/fixture_pos.h"
#include "tests/testlib.h"
#include "tokenizer/tokenizer.h"

static void test_options(void) {
    TEST_CASE("collab options: default dk = d/2, resolved spec, clear errors") {
        model_dims_t d = {.vocab = 11, .dim = 16, .heads = 4, .ctx = 32};
        model_t m;
        char err[512];
        CHECK(model_build(&m, &d, "collab/mlp,collab(dk=5)/none", err, sizeof err) == 0);
        EXPECT_MSG(strstr(m.spec, "collab(dk=8)/mlp") && strstr(m.spec, "collab(dk=5)/none"), "spec %s", m.spec);
        param_t *cq = params_find(&m.params, "layers.0.attn.cq"), *mix = params_find(&m.params, "layers.1.attn.mix"),
                *cb = params_find(&m.params, "layers.0.attn.cb"), *wo = params_find(&m.params, "layers.0.attn.wo");
        EXPECT(cq && cq->shape[0] == 8 && cq->shape[1] == 16 && cq->init == INIT_NORMAL && cq->init_scale == 0.02f);
        EXPECT(mix && mix->shape[0] == 4 && mix->shape[1] == 5 && mix->init_scale == 0.2f);
        EXPECT(cb && cb->shape[0] == 4 && cb->shape[1] == 16 && cb->init_scale == 0.02f);
        EXPECT(wo && fabsf(wo->init_scale - block_out_proj_std(&m.dims)) < 1e-9f);
        EXPECT(!params_find(&m.params, "layers.0.attn.wq") && params_find(&m.params, "layers.0.attn.wv") &&
               params_find(&m.params, "layers.0.attn.bv") && params_find(&m.params, "layers.0.attn.bo"));
        model_free(&m);
        const struct {
            const char *spec, *want;
        } bad[] = {
            {"collab(dk=0)", "layer 0 (collab)"},
            {"softmax/mlp,collab(dk=-3)", "layer 1 (collab)"},
            {"collab(dk=0)", "dk"},
            {"collab(dk=2.5)", "dk"},
            {"collab(heads=2)", "unknown option 'heads'"},
        };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            err[0] = 0;
            int rc = model_build(&m, &d, bad[i].spec, err, sizeof err);
            EXPECT_MSG(rc != 0 && strstr(err, bad[i].want) && !strchr(err, '\n'), "%s: rc %d, message '%s'",
                       bad[i].spec, rc, err);
            if (rc == 0) model_free(&m);
            else printf("  %s -> %s\n", bad[i].spec, err);
        }
    }
}

// The block's forward against the formula, written directly in double (no tiling, no fused product).
static void test_forward_reference(void) {
    const char *specs[] = {"collab(dk=6)/mlp", "collab(dk=16)/mlp", "collab(dk=21)/mlp", "collab(dk=6)/mlp",
                           "collab(dk=22)/mlp"};
    for (int k = 0; k < 5; k++) {
        pos_scheme_t pos = k < 3 ? POS_LEARNED : POS_ROPE;
        char name[160];
        snprintf(name, sizeof name, "%sforward == direct double implementation: %s, T 37", pos == POS_ROPE ? "rope: " : "",
                 specs[k]);
        TEST_CASE(name) {
            enum { C = 16, H = 4, D = 4, B = 2, T = 37 };
            model_t m;
            CHECK(pos_fixture_model(&m, pos, specs[k], 11, C, H, T, 0.3f, 50 + k) == 0);
            block_t *b = &m.layers[0].mixer;
            int R = (int)params_find(&m.params, "layers.0.attn.mix")->shape[1];
            const float *cq = params_find(&m.params, "layers.0.attn.cq")->data,
                        *ck = params_find(&m.params, "layers.0.attn.ck")->data,
                        *wv = params_find(&m.params, "layers.0.attn.wv")->data,
                        *cb = params_find(&m.params, "layers.0.attn.cb")->data,
                        *mix = params_find(&m.params, "layers.0.attn.mix")->data,
                        *bv = params_find(&m.params, "layers.0.attn.bv")->data,
                        *wo = params_find(&m.params, "layers.0.attn.wo")->data,
                        *bo = params_find(&m.params, "layers.0.attn.bo")->data;
            size_t n = (size_t)B * T * C;
            float *x = xalloc_floats(n), *y = xalloc_floats(n), *want = xalloc_floats(n);
            float *act = xalloc_floats(b->ops->act_floats(b, B, T)), *scr = xalloc_floats(b->ops->scratch_floats(b, B, T));
            rng_t r;
            rng_seed(&r, 3);
            for (size_t i = 0; i < n; i++) x[i] = rng_normal(&r);
            run_ctx_t rc = {.training = 0, .rng = &r};
            b->ops->forward(b, y, x, act, scr, B, T, &rc);
            double *q = malloc(sizeof(double) * T * R), *kk = malloc(sizeof(double) * T * R),
                   *v = malloc(sizeof(double) * T * C), *cbx = malloc(sizeof(double) * T * H),
                   *heads = malloc(sizeof(double) * T * C), s[T], qm[64];
            for (int bb = 0; bb < B; bb++) {
                const float *xb = x + (size_t)bb * T * C;
                for (int t = 0; t < T; t++) {
                    for (int rr = 0; rr < R; rr++) {
                        double a = 0, c = 0;
                        for (int i = 0; i < C; i++) {
                            a += (double)xb[t * C + i] * cq[rr * C + i];
                            c += (double)xb[t * C + i] * ck[rr * C + i];
                        }
                        q[t * R + rr] = a;
                        kk[t * R + rr] = c;
                    }
                    for (int o = 0; o < C; o++) {
                        double a = bv[o];
                        for (int i = 0; i < C; i++) a += (double)xb[t * C + i] * wv[o * C + i];
                        v[t * C + o] = a;
                    }
                    for (int h = 0; h < H; h++) {
                        double a = 0;
                        for (int i = 0; i < C; i++) a += (double)xb[t * C + i] * cb[h * C + i];
                        cbx[t * H + h] = a;
                    }
                }
                if (pos == POS_ROPE)  // K̃_j ← R_j K̃_j
                    for (int t = 0; t < T; t++) pos_rope_ref(kk + t * R, R, t);
                CHECK(R <= 64);
                for (int h = 0; h < H; h++)
                    for (int i = 0; i < T; i++) {
                        double mx = -INFINITY, sum = 0;
                        // the mixed query Q̃_i ⊙ m_h, rotated to position i under rope
                        for (int rr = 0; rr < R; rr++) qm[rr] = q[i * R + rr] * mix[h * R + rr];
                        if (pos == POS_ROPE) pos_rope_ref(qm, R, i);
                        for (int j = 0; j <= i; j++) {
                            double a = cbx[j * H + h];
                            for (int rr = 0; rr < R; rr++) a += qm[rr] * kk[j * R + rr];
                            s[j] = a / sqrt((double)D);
                            mx = fmax(mx, s[j]);
                        }
                        for (int j = 0; j <= i; j++) sum += (s[j] = exp(s[j] - mx));
                        for (int e = 0; e < D; e++) {
                            double a = 0;
                            for (int j = 0; j <= i; j++) a += s[j] / sum * v[j * C + h * D + e];
                            heads[i * C + h * D + e] = a;
                        }
                    }
                for (int t = 0; t < T; t++)
                    for (int o = 0; o < C; o++) {
                        double a = bo[o];
                        for (int i = 0; i < C; i++) a += heads[t * C + i] * wo[o * C + i];
                        want[(size_t)bb * T * C + t * C + o] = (float)a;
                    }
            }
            EXPECT_CLOSE("y", y, want, n, 1e-5, 1e-4);
            free(q), free(kk), free(v), free(cbx), free(heads);
            free(x), free(y), free(want), free(act), free(scr);
            model_free(&m);
        }
    }
}

static void test_gradcheck(void) {
    // fixture_gradcheck_model: C 8, H 2 (D 4), T 7.
    static const fixture_spec_t cases[] = {
        {"collab(dk=4)/mlp", 0.0f},                  // dk = d/2 (the default)
        {"collab(dk=8)/mlp", 0.0f},                  // dk = d
        {"collab(dk=3)/mlp", 0.0f},                  // dk not a multiple of H
        {"collab(dk=11)/none", 0.0f},                // dk > d
        {"collab(dk=5)/none,collab(dk=2)/mlp", 0.0f},
        {"collab/mlp", 0.2f},                        // attention, residual and embedding dropout
        {"collab(dk=3)/none,collab(dk=8)/mlp", 0.25f},
    };
    fixture_gradcheck_cases(cases, sizeof cases / sizeof *cases, 0.2f);
}

static void test_causality_decode(void) {
    // T 40 > the 32-row tiles of the score products.
    const struct {
        const char *spec;
        float dropout;
    } cc[] = {{"collab(dk=6)/mlp", 0.0f}, {"collab(dk=16)/mlp,collab(dk=3)/none", 0.0f}, {"collab/mlp", 0.1f}};
    for (int k = 0; k < 3; k++) {
        char name[160];
        snprintf(name, sizeof name, "causality %s T 40 dropout %.1f", cc[k].spec, cc[k].dropout);
        TEST_CASE(name) fixture_causality(cc[k].spec, 40, 40, cc[k].dropout, NULL);
    }
    const struct {
        const char *spec;
        int ctx;
    } dc[] = {{"collab(dk=6)/mlp", 20}, {"collab(dk=16)/mlp,softmax/mlp", 37}, {"collab(dk=3)/none,collab/mlp", 40}};
    for (int k = 0; k < 3; k++) {
        char name[160];
        snprintf(name, sizeof name, "decode == forward %s ctx %d", dc[k].spec, dc[k].ctx);
        TEST_CASE(name) fixture_decode(dc[k].spec, dc[k].ctx, NULL);
    }
    TEST_CASE("collab cache holds K̃ (ctx·dk), V (ctx·d) and the content bias (ctx·H)") {
        model_dims_t d = {.vocab = 11, .dim = 16, .heads = 4, .ctx = 64};
        model_t m;
        char err[512];
        CHECK(model_build(&m, &d, "collab(dk=6)/mlp", err, sizeof err) == 0);
        block_t *b = &m.layers[0].mixer;
        EXPECT_MSG(b->ops->cache_floats(b) == 64 * (6 + 16 + 4), "cache %zu", b->ops->cache_floats(b));
        model_free(&m);
    }
}

// An in-memory block_source_t over a model's parameters (the hook's view of a checkpoint).
typedef struct {
    const model_t *m;
    int layer;
} model_source_t;
static const float *model_source_find(const void *ctx, const char *name, const int64_t *shape, int ndim) {
    const model_source_t *s = ctx;
    char full[128];
    snprintf(full, sizeof full, "layers.%d.attn.%s", s->layer, name);
    param_t *p = params_find(&s->m->params, full);
    if (!p || p->ndim != ndim) return NULL;
    for (int d = 0; d < ndim; d++)
        if (p->shape[d] != shape[d]) return NULL;
    return p->data;
}

// Copy every same-named tensor of src into dst, then run dst's init_from hooks against src.
static int convert(model_t *dst, const model_t *src, char *msg, size_t msglen) {
    for (int i = 0; i < dst->params.count; i++) {
        param_t *p = dst->params.items[i], *q = params_find(&src->params, p->name);
        if (q && q->numel == p->numel) memcpy(p->data, q->data, p->numel * sizeof(float));
    }
    int total = 0;
    for (int l = 0; l < dst->L; l++) {
        block_t *b = &dst->layers[l].mixer;
        if (!b->ops->init_from) continue;
        model_source_t ms = {src, l};
        block_source_t bs = {.ctx = &ms, .find = model_source_find, .heads = src->dims.heads, .dim = src->dims.dim};
        int n = b->ops->init_from(b, &bs, 7, msg, msglen);
        if (n < 0) return n;
        total += n;
    }
    return total;
}

static void test_concatenate(void) {
    TEST_CASE("concatenate: collab(dk=d) with converted weights == softmax MHA (logits, T 40)") {
        enum { V = 13, C = 16, H = 4, T = 40 };
        model_t sm, cm;
        CHECK(fixture_model(&sm, "softmax/mlp,softmax/none", V, C, H, T, 0.3f, 2) == 0);
        CHECK(fixture_model(&cm, "collab(dk=16)/mlp,collab(dk=16)/none", V, C, H, T, 0.3f, 3) == 0);
        char msg[256];
        EXPECT(convert(&cm, &sm, msg, sizeof msg) == 8);
        printf("  %s\n", msg);
        // mixing is the block indicator and cq, ck are softmax's wq, wk
        const float *mix = params_find(&cm.params, "layers.1.attn.mix")->data;
        int ok = 1;
        for (int h = 0; h < H; h++)
            for (int r = 0; r < C; r++) ok &= mix[h * C + r] == (r / (C / H) == h ? 1.0f : 0.0f);
        EXPECT(ok);
        model_alloc_acts(&sm, 1, T, 0.0f);
        model_alloc_acts(&cm, 1, T, 0.0f);
        int32_t tok[T];
        fixture_tokens(tok, T, V, 8);
        float want[T * V], got[T * V];
        fixture_logits(&sm, tok, T, 0.0f, want);
        fixture_logits(&cm, tok, T, 0.0f, got);
        EXPECT_CLOSE("logits", got, want, T * V, 1e-5, 1e-5);
        model_free(&sm);
        model_free(&cm);
    }
    TEST_CASE("conversion: a source without softmax Q/K converts nothing; heads must match") {
        model_t src, dst, src8;
        CHECK(fixture_model(&src, "collab(dk=4)/mlp", 13, 16, 4, 8, 0.3f, 2) == 0);
        CHECK(fixture_model(&dst, "collab(dk=4)/mlp", 13, 16, 4, 8, 0.3f, 3) == 0);
        char msg[256] = "";
        EXPECT(convert(&dst, &src, msg, sizeof msg) == 0);
        CHECK(fixture_model(&src8, "softmax/mlp", 13, 16, 8, 8, 0.3f, 2) == 0);
        EXPECT(convert(&dst, &src8, msg, sizeof msg) == -1 && strstr(msg, "8 heads"));
        printf("  %s\n", msg);
        model_free(&src);
        model_free(&dst);
        model_free(&src8);
    }
}

// A tensor of known CP rank r: ALS at rank r recovers it.
static void test_als_known_rank(void) {
    const struct {
        int n1, n2, n3, r;
    } cases[] = {{12, 4, 10, 5}, {16, 4, 16, 8}, {32, 4, 32, 8}, {9, 3, 7, 2}};
    for (int k = 0; k < 4; k++) {
        char name[160];
        snprintf(name, sizeof name, "ALS recovers a (%d,%d,%d) tensor of CP rank %d", cases[k].n1, cases[k].n2,
                 cases[k].n3, cases[k].r);
        TEST_CASE(name) {
            int n1 = cases[k].n1, n2 = cases[k].n2, n3 = cases[k].n3, R = cases[k].r;
            double *A = malloc(sizeof(double) * n1 * R), *Bm = malloc(sizeof(double) * n2 * R),
                   *Cf = malloc(sizeof(double) * n3 * R), *X = malloc(sizeof(double) * n1 * n2 * n3);
            cp_random_exact_rank(100 + k, n1, n2, n3, R, A, Bm, Cf, X);
            cp_result_t res;
            cp_als(X, n1, n2, n3, R, 1, CP_MAX_SWEEPS, CP_TOL, CP_DEFAULT, A, Bm, Cf, &res);
            printf("  relative error %.3g after %d sweeps\n", res.rel_error, res.sweeps);
            EXPECT_MSG(res.rel_error < 1e-6, "relative error %g", res.rel_error);
            cp_normalize(A, Bm, Cf, n1, n2, n3, R);
            double after = cp_rel_error(X, n1, n2, n3, R, A, Bm, Cf);
            EXPECT_MSG(fabs(after - res.rel_error) < 1e-9, "normalizing changed the error: %g -> %g", res.rel_error, after);
            for (int r = 0; r < R; r++) {
                double nb = 0, na = 0, nc = 0;
                for (int j = 0; j < n2; j++) nb += Bm[j * R + r] * Bm[j * R + r];
                for (int i = 0; i < n1; i++) na += A[i * R + r] * A[i * R + r];
                for (int l = 0; l < n3; l++) nc += Cf[l * R + r] * Cf[l * R + r];
                EXPECT_MSG(fabs(nb - 1) < 1e-12 && fabs(na - nc) < 1e-9 * na, "column %d: |M| %g, |A|² %g, |B|² %g", r,
                           sqrt(nb), na, nc);
            }
            free(A), free(Bm), free(Cf), free(X);
        }
    }
}

// Through a checkpoint file and ckpt_init_from, as `train --init-from` does.
static void test_checkpoint_conversion(void) {
    TEST_CASE("init-from softmax checkpoint: dk=d keeps the loss; dk<d reports ALS errors that fall as dk grows") {
        enum { V = 256, C = 16, H = 4, T = 24, B = 2 };
        char dir[] = "/tmp/attnlab-collab-XXXXXX";
        CHECK(mkdtemp(dir));
        char path[256];
        snprintf(path, sizeof path, "%s/src.safetensors", dir);
        tokenizer_t tok;
        tok_init_byte(&tok);
        model_t src;
        CHECK(fixture_model(&src, "2*softmax/mlp", V, C, H, T, 0.3f, 12) == 0);
        char err[512];
        CHECK(ckpt_save(path, &src, &tok, NULL, 0, err, sizeof err) == 0);
        model_alloc_acts(&src, B, T, 0.0f);
        int32_t x[B * T], y[B * T];
        fixture_tokens(x, B * T, V, 1);
        fixture_tokens(y, B * T, V, 2);
        rng_t r;
        rng_seed(&r, 1);
        run_ctx_t rc = {.training = 0, .rng = &r};
        float want = model_forward(&src, x, y, B, T, &rc);
        const int dks[] = {16, 12, 8, 4, 2};
        double prev_err = 0;
        for (int k = 0; k < 5; k++) {
            char spec[64], notes[1024];
            snprintf(spec, sizeof spec, "2*collab(dk=%d)/mlp", dks[k]);
            model_t dst;
            CHECK(fixture_model(&dst, spec, V, C, H, T, 0.3f, 13) == 0);
            int loaded, total;
            CHECK(ckpt_init_from(path, &dst, 5, &loaded, &total, notes, sizeof notes, err, sizeof err) == 0);
            EXPECT_MSG(loaded == total, "%s: %d of %d tensors", spec, loaded, total);
            model_alloc_acts(&dst, B, T, 0.0f);
            float got = model_forward(&dst, x, y, B, T, &rc);
            printf("  %s: loss %.7f (source %.7f)\n  %s\n", spec, got, want, notes);
            if (dks[k] == C) {
                EXPECT_MSG(fabsf(got - want) <= 1e-5f * fabsf(want), "loss %.8f, source %.8f", got, want);
                EXPECT(strstr(notes, "concatenation"));
            } else {
                // the worse of the two layers' errors
                double e = 0;
                for (const char *p = notes; (p = strstr(p, "error ")); p += 6) e = fmax(e, atof(p + 6));
                EXPECT_MSG(e > 0 && e < 1, "%s: error %g", spec, e);
                if (k > 1) EXPECT_MSG(e > prev_err, "%s: error %g not above dk=%d's %g", spec, e, dks[k - 1], prev_err);
                prev_err = e;
            }
            model_free(&dst);
        }
        model_free(&src);
        tok_free(&tok);
        unlink(path);
        rmdir(dir);
    }
}

// ---------------------------------------------------------------------------------------------
// rotary positions (--pos rope; LONG_CONTEXT.md §1)

// The trap: the mixed query must be rotated, not Q̃ before the mixing. Scores then depend on j − i
// only, which shows in the attention probabilities: log(a_ij / a_ii) = s_ij − s_ii is unchanged when a
// prefix of d tokens shifts every position by d (x' = prefix ++ x: row i+d, columns j+d of x' against
// row i, columns j of x). Read from the block's saved probabilities (act: proj (B,T,P) | probs (B,H,T,T)).
static void check_shift(const char *spec, int dk) {
    enum { C = 16, H = 4, T = 12, SHIFT = 5, T2 = T + SHIFT };
    model_t m;
    if (pos_fixture_model(&m, POS_ROPE, spec, 11, C, H, T2, 0.3f, 17)) {
        tl_case_failed = 1;
        return;
    }
    block_t *b = &m.layers[0].mixer;
    int P = 2 * dk + C + H;
    float *x2 = xalloc_floats((size_t)T2 * C), *y = xalloc_floats((size_t)T2 * C);
    rng_t r;
    rng_seed(&r, 23);
    for (int i = 0; i < T2 * C; i++) x2[i] = rng_normal(&r);
    const float *x = x2 + SHIFT * C;  // the same tokens without the prefix
    float *act1 = xalloc_floats(b->ops->act_floats(b, 1, T)), *act2 = xalloc_floats(b->ops->act_floats(b, 1, T2));
    float *scr = xalloc_floats(b->ops->scratch_floats(b, 1, T2));
    run_ctx_t rc = {.training = 0, .rng = &r};
    b->ops->forward(b, y, x, act1, scr, 1, T, &rc);
    b->ops->forward(b, y, x2, act2, scr, 1, T2, &rc);
    const float *p1 = act1 + (size_t)T * P, *p2 = act2 + (size_t)T2 * P;
    double worst = 0, spread = 0;
    for (int h = 0; h < H; h++)
        for (int i = 0; i < T; i++)
            for (int j = 0; j <= i; j++) {
                const float *r1 = p1 + ((size_t)h * T + i) * T, *r2 = p2 + ((size_t)h * T2 + i + SHIFT) * T2;
                double l1 = log((double)r1[j] / r1[i]), l2 = log((double)r2[j + SHIFT] / r2[i + SHIFT]);
                worst = fmax(worst, fabs(l1 - l2));
                spread = fmax(spread, fabs(l1));
            }
    printf("  max |Δ log-ratio| %.3g over rows of log-ratio spread %.3g\n", worst, spread);
    EXPECT_MSG(spread > 0.1, "scores too flat to test (%g)", spread);
    EXPECT_MSG(worst < 1e-4, "score differences changed by %g under a shift of %d", worst, SHIFT);
    free(x2);
    free(y);
    free(act1);
    free(act2);
    free(scr);
    model_free(&m);
}

static void test_rope(void) {
    // pos_fixture_gradcheck: C 8, H 2 (D 4), T 7; std 0.2 as test_gradcheck.
    static const fixture_spec_t cases[] = {
        {"collab(dk=4)/mlp", 0.0f},
        {"collab(dk=8)/mlp", 0.0f},
        {"collab(dk=12)/none", 0.0f},  // dk > d
        {"collab(dk=6)/none,collab(dk=2)/mlp", 0.0f},
        {"collab/mlp", 0.2f},
        {"collab(dk=6)/none,collab(dk=8)/mlp", 0.25f},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char name[200];
        snprintf(name, sizeof name, "rope: gradcheck %s dropout %.2f", cases[k].spec, cases[k].dropout);
        TEST_CASE(name) {
            double w = pos_fixture_gradcheck(POS_ROPE, cases[k].spec, cases[k].dropout, 0.2f, 1 + k, NULL, 1e-2f);
            printf("  worst ratio to tolerance %.3f\n", w);
        }
    }
    TEST_CASE("rope: causality collab(dk=6)/mlp,collab(dk=16)/none T 40 dropout 0.1")
        pos_fixture_causality(POS_ROPE, "collab(dk=6)/mlp,collab(dk=16)/none", 40, 40, 0.1f, NULL);
    TEST_CASE("rope: decode == forward collab(dk=6)/mlp,collab(dk=20)/mlp ctx 37")
        pos_fixture_decode(POS_ROPE, "collab(dk=6)/mlp,collab(dk=20)/mlp", 37, NULL);
    TEST_CASE("rope trap: collab scores depend on j - i only (shift by a prefix), dk 6") check_shift("collab(dk=6)/none", 6);
    TEST_CASE("rope trap: the same at dk 16") check_shift("collab(dk=16)/none", 16);
    TEST_CASE("rope: an odd dk is refused at configure, naming the layer; accepted without rope") {
        model_dims_t d = {.vocab = 11, .dim = 16, .heads = 4, .ctx = 8, .pos = POS_ROPE};
        model_t m;
        char err[512] = "";
        int rc = model_build(&m, &d, "collab(dk=4)/mlp,collab(dk=5)/mlp", err, sizeof err);
        if (rc == 0) model_free(&m);
        EXPECT_MSG(rc != 0 && strstr(err, "layer 1 (collab)") && strstr(err, "even dk") && strstr(err, "dk=5") &&
                       !strchr(err, '\n'),
                   "rc %d, '%s'", rc, err);
        printf("  -> %s\n", err);
        d.pos = POS_LEARNED;
        rc = model_build(&m, &d, "collab(dk=4)/mlp,collab(dk=5)/mlp", err, sizeof err);
        EXPECT_MSG(rc == 0, "without rope: %s", err);
        if (rc == 0) model_free(&m);
    }
}

int main(void) {
    test_options();
    test_forward_reference();
    test_gradcheck();
    test_causality_decode();
    test_rope();
    test_concatenate();
    test_als_known_rank();
    test_checkpoint_conversion();
    return test_main_end();
}
