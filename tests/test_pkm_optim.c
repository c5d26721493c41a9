// test_pkm_optim.c — train.c's fused optimizer step (model/optim.h: grad_norm_finite, adamw_step_clipped)
// against the sequence of calls it replaced (grad_all_finite, grad_global_norm, grad_scale when clipping,
// adamw_step), on a model with a pkm layer (sparse-rows values) and dense layers around it: every
// parameter, both Adam moments and the norm must be the same bits after every step, clipped or not, with
// 1 and with 2 threads (the sparse walk then runs in parallel); the fused step must leave the sparse
// gradient zero and its touched list empty, and the dense gradients as grad_scale leaves them. The norm's
// finiteness verdict must match grad_all_finite on a NaN or an infinity planted in a dense or a touched row.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "base/check.h"
#include "model/model.h"
#include "model/optim.h"
#include "tests/fixture.h"
#include "tests/testlib.h"

enum { V = 13, C = 64, H = 2, B = 4, T = 16 };
static const char *const SPEC = "softmax/mlp,softmax/pkm(slots=4096,k=8,heads=2,dk=8),softmax/mlp";

static void build(model_t *m) {
    CHECK(fixture_model(m, SPEC, V, C, H, T, 0.3f, 17) == 0);
    model_alloc_acts(m, B, T, 0.0f);
}

static void grads(model_t *m, long step) {
    int32_t x[B * T], y[B * T];
    fixture_tokens(x, B * T, V, 100 + step);
    fixture_tokens(y, B * T, V, 200 + step);
    run_ctx_t rc = {.training = 1};
    params_zero_grad(&m->params);
    model_forward(m, x, y, B, T, &rc);
    model_backward(m, 1.0f, &rc);
}

static size_t differ(const float *a, const float *b, size_t n) {
    size_t d = 0;
    for (size_t i = 0; i < n; i++) d += memcmp(a + i, b + i, sizeof *a) != 0;
    return d;
}

// Six steps of both paths; odd steps clip (threshold far below the norm), even steps do not.
static void compare_paths(int threads) {
#ifdef _OPENMP
    int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
#endif
    model_t a, f;  // a: the separate calls; f: the fused step
    build(&a);
    build(&f);
    param_t *Pa = params_find(&a.params, "layers.1.ffn.values"), *Pf = params_find(&f.params, "layers.1.ffn.values");
    CHECK(Pa && Pf && Pf->sparse_rows);
    const adamw_cfg_t cfg = {0.9f, 0.99f, 1e-8f, 0.1f};
    size_t total = a.params.total, rows = (size_t)Pf->shape[0];
    int clipped = 0, unclipped = 0;
    size_t least_touched = rows;
    for (long step = 1; step <= 6; step++) {
        double clip = step % 2 ? 1e-3 : 1e30;
        grads(&a, step);
        grads(&f, step);
        if (Pa->n_touched < least_touched) least_touched = Pa->n_touched;
        EXPECT(grad_all_finite(&a.params));
        double na = grad_global_norm(&a.params), nf = -1;
        if (na > clip) grad_scale(&a.params, (float)(clip / na));
        adamw_step(&a.params, &cfg, 3e-3f, step);
        EXPECT(grad_norm_finite(&f.params, &nf));
        adamw_step_clipped(&f.params, &cfg, 3e-3f, step, nf > clip ? (float)(clip / nf) : 1.0f);
        clipped += na > clip;
        unclipped += na <= clip;
        EXPECT_MSG(memcmp(&na, &nf, sizeof na) == 0, "step %ld: norm %.17g vs %.17g", step, na, nf);
        size_t dd = differ(a.params.data, f.params.data, total), dm = differ(a.params.m, f.params.m, total),
               dv = differ(a.params.v, f.params.v, total);
        EXPECT_MSG(dd == 0 && dm == 0 && dv == 0, "%d threads, step %ld (%s): %zu values, %zu m, %zu v differ of %zu", threads,
                   step, na > clip ? "clipped" : "not clipped", dd, dm, dv, total);
        // dense gradients as grad_scale left them; the sparse one zero, its list and marks empty
        size_t dg = 0, nonzero = 0, marks = 0;
        for (int i = 0; i < f.params.count; i++) {
            const param_t *p = f.params.items[i];
            if (p->sparse_rows) continue;
            dg += differ(a.params.items[i]->grad, p->grad, p->numel);
        }
        for (size_t i = 0; i < Pf->numel; i++) nonzero += Pf->grad[i] != 0.0f;
        for (size_t r = 0; r < rows; r++) marks += Pf->row_mark[r];
        EXPECT_MSG(dg == 0, "step %ld: %zu dense gradient elements differ", step, dg);
        EXPECT_MSG(nonzero == 0 && marks == 0 && Pf->n_touched == 0, "step %ld: sparse gradient left: %zu non-zero, %zu marks, %zu listed",
                   step, nonzero, marks, Pf->n_touched);
    }
    EXPECT(clipped == 3 && unclipped == 3);
    // above optim.c's SPARSE_PARALLEL_MIN (16,384 elements) the sparse walks run threaded
    EXPECT_MSG(least_touched * C > 16384, "%zu rows touched: the sparse walk did not reach its threaded size", least_touched);
    model_free(&a);
    model_free(&f);
#ifdef _OPENMP
    omp_set_num_threads(saved);
#endif
}

static void test_fused_equals_separate(void) {
    TEST_CASE("fused step == grad_all_finite, grad_global_norm, grad_scale, adamw_step: same bits, 1 thread") {
        compare_paths(1);
    }
    TEST_CASE("fused step == the separate calls: same bits, 2 threads") { compare_paths(2); }
}

static void test_finiteness(void) {
    TEST_CASE("grad_norm_finite: the norm's verdict is grad_all_finite's (NaN, ±inf, dense or touched row)") {
        model_t m;
        build(&m);
        grads(&m, 1);
        param_t *P = params_find(&m.params, "layers.1.ffn.values"), *W = params_find(&m.params, "layers.0.ffn.w1");
        CHECK(P && W && P->n_touched > 10);
        double n = -1, want = grad_global_norm(&m.params);
        EXPECT(grad_norm_finite(&m.params, &n) && grad_all_finite(&m.params));
        EXPECT(memcmp(&n, &want, sizeof n) == 0);
        const float bad[3] = {NAN, INFINITY, -INFINITY};
        int agree = 0;
        for (int b = 0; b < 3; b++)
            for (int where = 0; where < 2; where++) {
                float *g = where ? P->grad + (size_t)P->touched[P->n_touched - 3] * C + 7 : W->grad + W->numel / 2;
                float keep = *g;
                *g = bad[b];
                agree += !grad_norm_finite(&m.params, &n) && !grad_all_finite(&m.params);
                *g = keep;
            }
        EXPECT_MSG(agree == 6, "%d of 6 planted non-finite gradients found by both", agree);
        EXPECT(grad_norm_finite(&m.params, &n));
        model_free(&m);
    }
}

int main(void) {
    test_fused_equals_separate();
    test_finiteness();
    return test_main_end();
}
