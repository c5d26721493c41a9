// test_gradcheck.c — central finite differences against the hand-written backward:
// every elementary op, every block kind (each option that changes the math), the whole model's loss.
// The tolerance is tight enough that a planted bug fails: see the "checker sensitivity" case, which
// plants a 2% error and a sign flip in one element of a correct gradient and expects the check to fail.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "model/model.h"
#include "model/ops.h"
#include "tests/fixture.h"
#include "tests/testlib.h"

// Tolerances (float32 forward, double accumulation of the probe loss): see docs/testing.md.
#define OP_EPS 1e-2f
#define OP_ATOL 2e-4
#define OP_RTOL 5e-3


// ---------------------------------------------------------------------------------------------
// ops: probe loss = Σ w·out for a fixed random w, so dout = w.

enum { N_ = 6, C_ = 5, OUT_ = 7 };

typedef struct {
    float inp[N_ * C_], w[OUT_ * C_], b[OUT_], out[N_ * OUT_], probe[N_ * OUT_], mean[N_], rstd[N_];
} op_ctx_t;

static double ln_loss(void *p) {
    op_ctx_t *c = p;
    layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->w, c->b, N_, C_);
    return fixture_dot(c->out, c->probe, N_ * C_);
}
static double mm_loss(void *p) {
    op_ctx_t *c = p;
    matmul_forward(c->out, c->inp, c->w, c->b, N_, C_, OUT_);
    return fixture_dot(c->out, c->probe, N_ * OUT_);
}
static double gelu_loss(void *p) {
    op_ctx_t *c = p;
    gelu_forward(c->out, c->inp, N_ * C_);
    return fixture_dot(c->out, c->probe, N_ * C_);
}

static void test_ops(void) {
    rng_t r;
    rng_seed(&r, 7);
    op_ctx_t c;
    TEST_CASE("gradcheck layernorm") {
        fixture_fill_normal(c.inp, N_ * C_, 1.0f, &r);
        fixture_fill_normal(c.w, C_, 1.0f, &r);
        fixture_fill_normal(c.b, C_, 1.0f, &r);
        fixture_fill_normal(c.probe, N_ * C_, 1.0f, &r);
        float dinp[N_ * C_] = {0}, dw[C_] = {0}, db[C_] = {0};
        ln_loss(&c);
        layernorm_backward(dinp, dw, db, c.probe, c.inp, c.w, c.mean, c.rstd, N_, C_);
        fd_check("dinp", ln_loss, &c, c.inp, dinp, N_ * C_, OP_EPS, OP_ATOL, OP_RTOL);
        fd_check("dw", ln_loss, &c, c.w, dw, C_, OP_EPS, OP_ATOL, OP_RTOL);
        fd_check("db", ln_loss, &c, c.b, db, C_, OP_EPS, OP_ATOL, OP_RTOL);
    }
    TEST_CASE("gradcheck matmul") {
        fixture_fill_normal(c.inp, N_ * C_, 1.0f, &r);
        fixture_fill_normal(c.w, OUT_ * C_, 1.0f, &r);
        fixture_fill_normal(c.b, OUT_, 1.0f, &r);
        fixture_fill_normal(c.probe, N_ * OUT_, 1.0f, &r);
        float dinp[N_ * C_] = {0}, dw[OUT_ * C_] = {0}, db[OUT_] = {0};
        matmul_backward(dinp, dw, db, c.probe, c.inp, c.w, N_, C_, OUT_);
        fd_check("dinp", mm_loss, &c, c.inp, dinp, N_ * C_, OP_EPS, OP_ATOL, OP_RTOL);
        fd_check("dw", mm_loss, &c, c.w, dw, OUT_ * C_, OP_EPS, OP_ATOL, OP_RTOL);
        fd_check("db", mm_loss, &c, c.b, db, OUT_, OP_EPS, OP_ATOL, OP_RTOL);
    }
    TEST_CASE("gradcheck gelu (accumulating and in place)") {
        fixture_fill_normal(c.inp, N_ * C_, 2.0f, &r);
        fixture_fill_normal(c.probe, N_ * C_, 1.0f, &r);
        float dinp[N_ * C_];
        for (int i = 0; i < N_ * C_; i++) dinp[i] = 0.5f;
        gelu_backward(dinp, c.inp, c.probe, N_ * C_);
        for (int i = 0; i < N_ * C_; i++) dinp[i] -= 0.5f;  // backward accumulates: remove the seed
        fd_check("dinp", gelu_loss, &c, c.inp, dinp, N_ * C_, OP_EPS, OP_ATOL, OP_RTOL);
        float inplace[N_ * C_];
        memcpy(inplace, c.probe, sizeof inplace);
        gelu_backward(inplace, c.inp, inplace, N_ * C_);
        EXPECT_CLOSE("in-place gelu backward", inplace, dinp, N_ * C_, 1e-6, 1e-6);
    }
}

// cross-entropy and encoder: probe directly.
enum { CE_N = 4, CE_V = 9 };
typedef struct {
    float logits[CE_N * CE_V], probs[CE_N * CE_V], losses[CE_N];
    int32_t targets[CE_N];
} ce_ctx_t;
static double ce_loss(void *p) {
    ce_ctx_t *c = p;
    crossentropy_forward(c->losses, c->probs, c->logits, c->targets, CE_N, CE_V);
    double s = 0;
    for (int n = 0; n < CE_N; n++) s += (n + 1.0) * c->losses[n];  // unequal row weights
    return s;
}

enum { EB = 2, ET = 3, EC = 4, EV = 5 };
typedef struct {
    float wte[EV * EC], wpe[ET * EC], out[EB * ET * EC], probe[EB * ET * EC];
    int32_t tok[EB * ET];
} enc_ctx_t;
static double enc_loss(void *p) {
    enc_ctx_t *c = p;
    encoder_forward(c->out, c->tok, c->wte, c->wpe, EB, ET, EC);
    return fixture_dot(c->out, c->probe, EB * ET * EC);
}

static void test_loss_and_encoder(void) {
    rng_t r;
    rng_seed(&r, 8);
    TEST_CASE("gradcheck cross-entropy") {
        ce_ctx_t c;
        fixture_fill_normal(c.logits, CE_N * CE_V, 2.0f, &r);
        for (int n = 0; n < CE_N; n++) c.targets[n] = (int32_t)rng_below(&r, CE_V);
        float dl[CE_N * CE_V] = {0}, dloss[CE_N];
        for (int n = 0; n < CE_N; n++) dloss[n] = n + 1.0f;
        ce_loss(&c);
        crossentropy_backward(dl, c.probs, c.targets, dloss, CE_N, CE_V);
        fd_check("dlogits", ce_loss, &c, c.logits, dl, CE_N * CE_V, OP_EPS, OP_ATOL, OP_RTOL);
        // loss equals log-sum-exp minus the target logit, computed independently in double
        double want = 0;
        for (int n = 0; n < CE_N; n++) {
            double s = 0;
            for (int v = 0; v < CE_V; v++) s += exp(c.logits[n * CE_V + v]);
            want += (n + 1.0) * (log(s) - c.logits[n * CE_V + c.targets[n]]);
        }
        EXPECT_MSG(fabs(ce_loss(&c) - want) < 1e-5 * fabs(want), "cross-entropy value %g, want %g", ce_loss(&c), want);
    }
    TEST_CASE("gradcheck encoder (repeated tokens accumulate)") {
        enc_ctx_t c;
        fixture_fill_normal(c.wte, EV * EC, 1.0f, &r);
        fixture_fill_normal(c.wpe, ET * EC, 1.0f, &r);
        fixture_fill_normal(c.probe, EB * ET * EC, 1.0f, &r);
        int32_t tok[EB * ET] = {1, 3, 1, 3, 3, 0};
        memcpy(c.tok, tok, sizeof tok);
        float dwte[EV * EC] = {0}, dwpe[ET * EC] = {0};
        encoder_backward(dwte, dwpe, c.probe, c.tok, EB, ET, EC);
        fd_check("dwte", enc_loss, &c, c.wte, dwte, EV * EC, OP_EPS, OP_ATOL, OP_RTOL);
        fd_check("dwpe", enc_loss, &c, c.wpe, dwpe, ET * EC, OP_EPS, OP_ATOL, OP_RTOL);
    }
}

// ---------------------------------------------------------------------------------------------
// whole model: every parameter tensor of each spec, element by element (fixture_gradcheck_model).
// Each block kind's own test file checks its specs the same way.

static const struct {
    const char *spec;
    float dropout;
} model_cases[] = {
    {"softmax/mlp", 0.0f},
    {"softmax/mlp(hidden=12),softmax/none", 0.0f},
    {"2*softmax/mlp", 0.25f},  // dropout on embeddings, attention probabilities and residual branches
};

static void test_models(void) {
    for (size_t k = 0; k < sizeof model_cases / sizeof *model_cases; k++) {
        char name[160];
        snprintf(name, sizeof name, "gradcheck model %s dropout %.2f", model_cases[k].spec, model_cases[k].dropout);
        TEST_CASE(name) {
            double worst = fixture_gradcheck_model(model_cases[k].spec, model_cases[k].dropout, 0.4f, 1 + k);
            printf("  worst ratio to tolerance %.3f\n", worst);
        }
    }
}

// The checker itself must notice small planted errors in a correct gradient.
static void test_sensitivity(void) {
    TEST_CASE("checker sensitivity: planted errors fail") {
        fixture_ctx_t *c = xcalloc(1, sizeof *c);
        c->B = 2;
        c->T = 7;
        CHECK(fixture_model(&c->m, "softmax/mlp", 11, 8, 2, 8, 0.4f, 3) == 0);
        model_alloc_acts(&c->m, c->B, c->T, 0.0f);
        fixture_tokens(c->tok, 14, 11, 5);
        fixture_tokens(c->tgt, 14, 11, 6);
        params_zero_grad(&c->m.params);
        rng_t r;
        rng_seed(&r, 99);
        run_ctx_t rc = {.training = 1, .rng = &r};
        model_forward(&c->m, c->tok, c->tgt, c->B, c->T, &rc);
        model_backward(&c->m, 1.0f, &rc);
        const char *names[] = {"layers.0.attn.wq", "layers.0.attn.bv", "layers.0.ln1.weight", "wpe"};
        int saved = tl_case_failed;
        for (int i = 0; i < 4; i++) {
            param_t *p = params_find(&c->m.params, names[i]);
            // the element with the largest gradient, to plant on
            size_t j = 0;
            for (size_t e = 1; e < p->numel; e++)
                if (fabsf(p->grad[e]) > fabsf(p->grad[j])) j = e;
            float g = p->grad[j];
            p->grad[j] = g * 1.02f;  // a 2% error
            tl_case_failed = 0;
            printf("  (expected failure follows)\n");
            double w1 = fd_check(names[i], fixture_model_loss, c, p->data, p->grad, p->numel, 1e-2f, 2e-4, 1e-2);
            p->grad[j] = -g;  // a sign flip
            double w2 = fd_check(names[i], fixture_model_loss, c, p->data, p->grad, p->numel, 1e-2f, 2e-4, 1e-2);
            p->grad[j] = g;
            tl_case_failed = saved;
            EXPECT_MSG(w1 > 1.0 && w2 > 1.0, "%s: planted errors not caught (ratios %.3g, %.3g)", names[i], w1, w2);
        }
        model_free(&c->m);
        free(c);
    }
}

int main(void) {
    test_ops();
    test_loss_and_encoder();
    test_models();
    test_sensitivity();
    return test_main_end();
}
