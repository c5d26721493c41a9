// test_kinds.c — the registry drives the cross-kind checks. For every example spec of every
// registered block kind (block_ops_t.examples; a mixer's example under its default ffn, an ffn's
// under softmax, see fixture_kind_cases), with and without dropout:
//   - a whole-model finite-difference gradient check of every trainable tensor (V 11, C 8, H 2,
//     T 7; the tolerance of fixture_gradcheck_model, with the smaller-step remeasure of
//     fd_check_piecewise for the kinds whose loss is only piecewise smooth);
//   - causality: changing token t changes no logit before t, bit for bit, in training mode with the
//     same dropout masks (T 37: past one 32-row block and not a multiple of any chunk);
//   - decode == forward: token-by-token decoding reproduces the forward's logits (ctx 37), also
//     after a reset;
//   - the checkpoint round trip of tests/roundtrip.h.
// The walk runs under each position scheme (--pos learned, rope, none: fixture_pos_scheme); learned
// with and without dropout, rope and none without (dropout's masks do not depend on positions, and
// the binary stays fast), and the gradient check under rope of every mixer example, under none of
// each mixer kind's first (ffns do not see positions; none runs the mixers' learned code path and
// differs only by the missing wpe). An example whose own width is odd (collab(dk=3)) cannot exist
// under rope and is checked to be refused instead. A mixer with an odd head width is refused under
// rope and builds otherwise. The weights differ between schemes even at the same seed: without wpe
// the initializer's draws shift to the next tensors.
// One model stacking every kind gets the same checks except the gradient check. A registered kind
// without examples fails the guard, so a new kind cannot join the registry unchecked. (No
// allocation in a training step is checked over the same examples by test_noalloc.c, which needs
// its own link flags.)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "tests/fixture.h"
#include "tests/fixture_mem.h"
#include "tests/roundtrip.h"
#include "tests/testlib.h"

enum { MAX_CASES = 64 };
static const float DROPOUT = 0.2f;

// Every example builds, as the kind it is listed under, with no whitespace (train --list-kinds
// prints examples separated by spaces), and every kind has at least one.
static void test_guard(const fixture_kind_case_t *cases, int n) {
    TEST_CASE("every registered kind has examples, and each builds as that kind") {
        EXPECT(block_kind_count() > 0);
        for (int k = 0; k < block_kind_count(); k++) {
            const block_ops_t *ops = block_kind_at(k);
            int count = 0;
            for (int i = 0; i < n; i++) count += cases[i].ops == ops;
            EXPECT_MSG(count > 0, "kind '%s' has no examples (block_ops_t.examples)", ops->kind);
        }
        EXPECT_MSG(n < MAX_CASES, "more than %d examples: raise MAX_CASES", MAX_CASES - 1);
        for (int i = 0; i < n; i++) {
            EXPECT_MSG(strcspn(cases[i].example, " \t\n") == strlen(cases[i].example), "example '%s' has whitespace",
                       cases[i].example);
            model_t m;
            if (fixture_model(&m, cases[i].spec, 11, 8, 2, 8, 0.3f, 1)) {
                EXPECT_MSG(0, "example '%s' of kind '%s' does not build", cases[i].example, cases[i].ops->kind);
                continue;
            }
            const block_t *b = cases[i].ops->role == ROLE_MIXER ? &m.layers[0].mixer : &m.layers[0].ffn;
            // by name: a kind may install a specialised ops table of its own kind (softmax(persist=N))
            EXPECT_MSG(m.L == 1 && strcmp(b->ops->kind, cases[i].ops->kind) == 0, "example '%s' builds as '%s', not '%s'", cases[i].example,
                       b->ops->kind, cases[i].ops->kind);
            model_free(&m);
        }
    }
    TEST_CASE("block_kind_at: every kind is found by name, out of range is NULL") {
        for (int k = 0; k < block_kind_count(); k++) EXPECT(block_find(block_kind_at(k)->kind) == block_kind_at(k));
        EXPECT(block_kind_at(-1) == NULL && block_kind_at(block_kind_count()) == NULL);
    }
}

// Every trainable tensor of the model set up by fixture_gradcheck_begin against finite differences
// of its loss (fixture tolerances), each element through fd_check_piecewise; prints the worst ratio
// and how many elements needed more than the first measurement.
static void gradcheck_run(fixture_ctx_t *c) { fixture_fd_all_params(&c->m, fixture_model_loss, c); }

// The gradient check of spec (V 11, C 8, H 2, ctx 8, B 2, T 7, weights std 0.4), on one thread:
// the check is some 5000 forward passes, each a few dozen short parallel regions, and with two
// threads on a busy 2-core machine every region waits for a descheduled thread (this binary took
// 2 min instead of 4 s). The threaded paths are exercised by the other checks here and by each
// kind's own gradient checks.
static void gradcheck(const char *spec, float dropout, uint64_t seed) {
#ifdef _OPENMP
    int saved_threads = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    fixture_ctx_t *c = fixture_gradcheck_begin(spec, dropout, 0.4f, seed, NULL);
    if (c) {
        gradcheck_run(c);
        fixture_gradcheck_end(c);
    }
#ifdef _OPENMP
    omp_set_num_threads(saved_threads);
#endif
}

static uint64_t spec_seed(const char *s) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static void check_all(const char *what, const char *spec, uint64_t seed, const char *dir, int with_gradcheck) {
    char name[2300];
    const char *pos = pos_scheme_name(fixture_pos_scheme);
    int n_drop = fixture_pos_scheme == POS_LEARNED ? 2 : 1;
    for (int d = 0; d < n_drop && with_gradcheck; d++) {
        snprintf(name, sizeof name, "gradcheck %s --pos %s dropout %.1f", what, pos, d * DROPOUT);
        TEST_CASE(name) gradcheck(spec, d * DROPOUT, seed);
    }
    for (int d = 0; d < n_drop; d++) {
        snprintf(name, sizeof name, "causality %s --pos %s T 37 dropout %.1f", what, pos, d * DROPOUT);
        TEST_CASE(name) fixture_causality(spec, 37, 37, d * DROPOUT, NULL);
    }
    snprintf(name, sizeof name, "decode == forward %s --pos %s ctx 37", what, pos);
    TEST_CASE(name) fixture_decode(spec, 37, NULL);
    snprintf(name, sizeof name, "checkpoint round trip %s --pos %s", what, pos);
    TEST_CASE(name) {
        roundtrip_check(spec, dir, seed);
        // the scheme survives the file (config "pos"; wpe only for learned)
        model_t m;
        if (fixture_model(&m, spec, 256, 8, 2, 8, 0.3f, seed) == 0) {
            tokenizer_t tok;
            tok_init_byte(&tok);
            char path[600], err[1024];
            snprintf(path, sizeof path, "%s/pos.safetensors", dir);
            EXPECT_MSG(ckpt_save(path, &m, &tok, NULL, 0, err, sizeof err) == 0, "save: %s", err);
            ckpt_t c;
            int loaded = ckpt_load(path, &c, err, sizeof err) == 0;
            EXPECT_MSG(loaded, "load: %s", err);
            if (loaded) {
                EXPECT_MSG(c.model.dims.pos == fixture_pos_scheme, "--pos %s came back as %s", pos,
                           pos_scheme_name(c.model.dims.pos));
                EXPECT((c.model.wpe != NULL) == (fixture_pos_scheme == POS_LEARNED));
                ckpt_free(&c);
            }
            remove(path);
            tok_free(&tok);
            model_free(&m);
        }
    }
}

// An example that does not build under rope because a width of its own is odd (collab(dk=3)): a
// case checks the refusal's one line, and the caller skips the example's other checks under rope.
static int rope_refused(const char *spec) {
    model_dims_t d = {.vocab = 11, .dim = 16, .heads = 4, .ctx = 8, .pos = POS_ROPE};
    model_t m;
    char err[512] = "", name[400];
    if (model_build(&m, &d, spec, err, sizeof err) == 0) {
        model_free(&m);
        return 0;
    }
    snprintf(name, sizeof name, "%s under --pos rope: refused (an odd width of its own)", spec);
    TEST_CASE(name) EXPECT_MSG(strstr(err, "--pos rope needs an even") && !strchr(err, '\n'), "'%s'", err);
    return 1;
}

// --pos rope needs an even head width: every mixer example at C 6, H 2 (D 3) is refused under rope
// with one line saying so (a kind with no_positions, which rotates nothing, builds), and builds under learned
// and none.
static void test_odd_width(const fixture_kind_case_t *cases, int n) {
    TEST_CASE("--pos rope refuses an odd head width in every mixer example (C 6, H 2); learned and none build") {
        for (int i = 0; i < n; i++) {
            if (cases[i].ops->role != ROLE_MIXER) continue;
            for (int p = POS_LEARNED; p <= POS_NONE; p++) {
                model_dims_t d = {.vocab = 11, .dim = 6, .heads = 2, .ctx = 8, .pos = (pos_scheme_t)p};
                model_t m;
                char err[512] = "";
                int rc = model_build(&m, &d, cases[i].spec, err, sizeof err);
                if (rc == 0) model_free(&m);
                if (p == POS_ROPE && strstr(cases[i].spec, "dk=")) continue;  // collab's rotated width is dk, not D
                if (p == POS_ROPE && cases[i].ops->no_positions)  // nothing to rotate
                    EXPECT_MSG(rc == 0, "%s under rope at head width 3: %s", cases[i].spec, err);
                else if (p == POS_ROPE)
                    EXPECT_MSG(rc != 0 && strstr(err, "--pos rope needs an even") && !strchr(err, '\n'),
                               "%s under rope at head width 3: rc %d, '%s'", cases[i].spec, rc, err);
                else
                    EXPECT_MSG(rc == 0, "%s under --pos %s at head width 3: %s", cases[i].spec,
                               pos_scheme_name((pos_scheme_t)p), err);
            }
        }
    }
}

// 1 if spec's mixer keeps segment memory (block_ops_t.mem_floats of the built block: a kind may
// specialise its table, softmax(persist=N)).
static int has_memory(const char *spec) {
    model_t m;
    if (fixture_model(&m, spec, 11, 8, 2, 12, 0.3f, 1)) return 0;
    int yes = m.layers[0].mixer.ops->mem_floats != NULL;
    model_free(&m);
    return yes;
}

// The segment-memory checks of fixture_mem.h for one mixer example under fixture_pos_scheme: the
// consistency with one window at M 12 and M 6 (a kind that cannot take M 6 must say so in one line),
// causality across segments, decode == forward at M = ctx and 2·ctx, and (grad) the gradient check
// with a filled, read-only memory.
static void check_memory(const char *spec, uint64_t seed, int grad) {
    static char name[400];  // tl_case keeps a pointer to it until the next case
    char err[512];
    const char *pos = pos_scheme_name(fixture_pos_scheme);
    for (int M = FMEM_SEG; M >= FMEM_SEG / 2; M -= FMEM_SEG / 2) {
        snprintf(name, sizeof name, "memory %d: two segments == one window, %s --pos %s", M, spec, pos);
        TEST_CASE(name) {
            err[0] = 0;
            if (fixture_mem_consistency(spec, M, err, sizeof err)) {
                printf("  refused: %s\n", err);
                EXPECT_MSG(M != FMEM_SEG && strstr(err, "--memory") && !strchr(err, '\n'), "refused memory %d: '%s'", M, err);
            }
        }
    }
    snprintf(name, sizeof name, "memory causality across segments %s --pos %s", spec, pos);
    TEST_CASE(name) fixture_mem_causality(spec);
    snprintf(name, sizeof name, "memory: two streams as batch rows == each alone %s --pos %s", spec, pos);
    TEST_CASE(name) fixture_mem_rows(spec);
    for (int M = FMEM_SEG; M <= 2 * FMEM_SEG; M += FMEM_SEG) {
        snprintf(name, sizeof name, "memory %d: decode == segment-wise forward %s --pos %s", M, spec, pos);
        TEST_CASE(name) fixture_mem_decode(spec, M);
    }
    snprintf(name, sizeof name, "memory: a training step's gradients do not see the advanced state %s --pos %s", spec, pos);
    TEST_CASE(name) fixture_mem_advance_grad(spec, seed);
    if (grad) {
        snprintf(name, sizeof name, "memory gradcheck %s --pos %s", spec, pos);
        TEST_CASE(name) {
#ifdef _OPENMP
            int saved_threads = omp_get_max_threads();
            omp_set_num_threads(1);
#endif
            fixture_mem_gradcheck(spec, seed);
#ifdef _OPENMP
            omp_set_num_threads(saved_threads);
#endif
        }
    }
}

// --memory needs relative positions: refused with a learned table, one line naming the fix.
static void test_memory_learned_refused(void) {
    TEST_CASE("--memory with --pos learned is refused in one line naming rope and none") {
        model_dims_t d = {.vocab = 11, .dim = 8, .heads = 2, .ctx = 8, .pos = POS_LEARNED, .memory = 8};
        model_t m;
        char err[512] = "";
        int rc = model_build(&m, &d, "softmax", err, sizeof err);
        if (rc == 0) model_free(&m);
        EXPECT_MSG(rc != 0 && strstr(err, "--pos rope") && !strchr(err, '\n'), "rc %d '%s'", rc, err);
    }
}

int main(void) {
    static fixture_kind_case_t cases[MAX_CASES];
    int n = fixture_kind_cases(cases, MAX_CASES);
    test_guard(cases, n);
    test_odd_width(cases, n);
    char dir[] = "/tmp/attnlab-kinds-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    static char all[2048];
    fixture_all_kinds_spec(all, sizeof all);
    char what[2100];
    snprintf(what, sizeof what, "of one model of every kind (%s)", all);
    for (int p = POS_LEARNED; p <= POS_NONE; p++) {
        fixture_pos_scheme = (pos_scheme_t)p;
        // seeds from the spec's text, so that adding a kind changes no other example's weights
        for (int i = 0; i < n; i++) {
            int mixer = cases[i].ops->role == ROLE_MIXER;
            int first = i == 0 || cases[i - 1].ops != cases[i].ops;
            int grad = p == POS_LEARNED || (mixer && (p == POS_ROPE || first));
            if (p == POS_ROPE && rope_refused(cases[i].spec)) continue;
            check_all(cases[i].spec, cases[i].spec, spec_seed(cases[i].spec), dir, grad);
        }
        // No gradient check of this one: nine layers at weight std 0.4 make a loss too curved for
        // differences at 1e-2 (worst ratios 5-10 at every step); each kind is checked alone above, and
        // test_gradcheck.c checks the interplay of layers on two-layer models.
        check_all(what, all, 100, dir, 0);
        if (p == POS_LEARNED) continue;
        for (int i = 0; i < n; i++) {
            if (cases[i].ops->role != ROLE_MIXER) continue;
            if (p == POS_ROPE && rope_refused(cases[i].spec)) continue;
            if (!has_memory(cases[i].spec)) {  // every mixer kind keeps segment memory (LONG_CONTEXT.md §2)
                snprintf(what, sizeof what, "%s keeps segment memory (block_ops_t.mem_floats)", cases[i].spec);
                TEST_CASE(what) EXPECT_MSG(0, "%s has no mem_floats", cases[i].spec);
                continue;
            }
            int first = i == 0 || cases[i - 1].ops != cases[i].ops;
            check_memory(cases[i].spec, spec_seed(cases[i].spec), p == POS_ROPE || first);
        }
    }
    test_memory_learned_refused();
    fixture_pos_scheme = POS_LEARNED;
    rmdir(dir);
    return test_main_end();
}
