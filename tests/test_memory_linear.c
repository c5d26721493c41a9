// test_memory_linear.c — segment memory (--memory M, LONG_CONTEXT.md §2) of the performer (a
// bounded window of K = M/ctx carried blocks of ctx positions, blocks/mixer_performer.c) and the
// linformer (remembered x̂ rows, chunks aligned to the stream start, blocks/mixer_linformer.c), under
// --pos rope and none:
//   - performer window: one layer, any split of the stream into segments (block boundaries inside
//     segments included) == for each window block b, a forward that starts empty at block b−K's first
//     position, restricted to block b's rows; several layers: every split == the ctx-aligned one; a key
//     K+1 blocks back changes nothing (bit for bit), one K blocks back does; the state's size;
//   - linformer consistency: segments with memory == the memory-free forward over the whole stream,
//     restricted to each segment's rows (M covering the past); M < the past == the memory-free forward
//     over the last chunks within M;
//   - gradient check of a segment read from a filled memory (advance = 0);
//   - causality across the boundary; the state is only written by a forward with advance = 1;
//   - decode == the segment-wise forward over 3+ segments (stream positions);
//   - performer: a redraw of Ω drops the carried state; --memory must be a multiple of ctx;
//     rc->mem NULL == the memory-free model bit for bit; linformer: --memory and ctx must be multiples
//     of chunk.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "base/check.h"
#include "blocks/favor.h"
#include "model/model.h"
#include "tests/fixture_pos.h"
#include "tests/testlib.h"

enum { V = 13, C = 16, H = 4 };

static const pos_scheme_t schemes[] = {POS_ROPE, POS_NONE};
static const char *scheme_name(pos_scheme_t p) { return p == POS_ROPE ? "rope" : "none"; }

static int g_rows = 3;           // performer block rows (several blocks per segment)
static float g_key_scale = 1.0f;  // performer keys ×10: the running max matters

// Build spec (V 13, C 16, H 4, or C 8, H 2 for the gradient checks) at ctx, memory M (0: none), acts for
// (B, Tmax). Returns 0, or −1 with the case marked failed.
static int build(model_t *m, pos_scheme_t pos, const char *spec, int c, int h, int ctx, int M, int B, int Tmax,
                 uint64_t seed) {
    if (pos_fixture_model(m, pos, spec, V, c, h, ctx, 0.3f, seed)) {
        tl_case_failed = 1;
        return -1;
    }
    for (int l = 0; l < m->L; l++) {
        block_t *b = &m->layers[l].mixer;
        if (strcmp(b->ops->kind, "performer")) continue;
        performer_set_chunk(b, g_rows);
        char name[80];
        const char *which[] = {"wk", "bk"};
        for (int w = 0; w < 2; w++) {
            snprintf(name, sizeof name, "layers.%d.attn.%s", l, which[w]);
            param_t *p = params_find(&m->params, name);
            for (size_t i = 0; i < p->numel; i++) p->data[i] *= g_key_scale;
        }
    }
    char err[256];
    if (M && model_set_memory(m, M, err, sizeof err)) {
        printf("  model_set_memory(%d): %s\n", M, err);
        model_free(m);
        tl_case_failed = 1;
        return -1;
    }
    model_alloc_acts(m, B, Tmax, 0.0f);
    return 0;
}

// Logits (B, T, V) of tok (B rows of `stride` tokens, from column t0) over T positions, memory mem (or NULL).
static void logits(model_t *m, const int32_t *tok, int stride, int t0, int B, int T, seg_mem_t *mem, float *out,
                   int out_stride, int out_t0) {
    int32_t *seg = xcalloc((size_t)B * T, sizeof *seg);
    for (int b = 0; b < B; b++) memcpy(seg + (size_t)b * T, tok + (size_t)b * stride + t0, (size_t)T * sizeof *seg);
    rng_t r;
    rng_seed(&r, 1);
    run_ctx_t rc = {.training = 0, .rng = &r, .mem = mem};
    model_forward(m, seg, NULL, B, T, &rc);
    for (int b = 0; b < B; b++)
        memcpy(out + ((size_t)b * out_stride + out_t0) * V, m->probs + (size_t)b * T * V, (size_t)T * V * sizeof(float));
    free(seg);
}

// Segment-wise logits of the B streams tok (B, total) cut into segs[0..nseg), from an empty memory.
static void segment_logits(model_t *m, const int32_t *tok, int B, const int *segs, int nseg, float *out) {
    int total = 0;
    for (int k = 0; k < nseg; k++) total += segs[k];
    seg_mem_t mem;
    model_mem_init(&mem, m, B);
    for (int k = 0, t0 = 0; k < nseg; t0 += segs[k++]) logits(m, tok, total, t0, B, segs[k], &mem, out, total, t0);
    EXPECT(mem.pos0 == total);
    model_mem_free(&mem);
}

static float max_abs(const float *a, size_t n) {
    float s = 0;
    for (size_t i = 0; i < n; i++) s = fmaxf(s, fabsf(a[i]));
    return s;
}

// ---------------------------------------------------------------------------------------------
// consistency

// Segments with memory M == one memory-free forward over the whole stream (ctx ≥ total), rows of
// every segment, B = 2 streams.
static void check_whole_stream(pos_scheme_t pos, const char *spec, int ctx, int M, const int *segs, int nseg) {
    int total = 0, B = 2;
    for (int k = 0; k < nseg; k++) total += segs[k];
    model_t m;
    if (build(&m, pos, spec, C, H, ctx, M, B, total, 7)) return;
    int32_t *tok = xcalloc((size_t)B * total, sizeof *tok);
    float *full = xcalloc((size_t)B * total * V, sizeof *full), *seg = xcalloc((size_t)B * total * V, sizeof *seg);
    fixture_tokens(tok, (size_t)B * total, V, 17);
    logits(&m, tok, total, 0, B, total, NULL, full, total, 0);
    segment_logits(&m, tok, B, segs, nseg, seg);
    double worst = EXPECT_CLOSE("segments with memory vs the whole stream", seg, full, (size_t)B * total * V,
                                2e-5 * max_abs(full, (size_t)B * total * V), 1e-5);
    printf("  worst ratio to tolerance %.3f\n", worst);
    free(tok);
    free(full);
    free(seg);
    model_free(&m);
}

// ---------------------------------------------------------------------------------------------
// performer: the window

// Logits (T, V) of tok[0..T) forwarded from an EMPTY state at stream position pos0 (rope rotates there;
// nothing is carried: the fresh state's Ω copy is zeros, so carry_usable refuses it).
static void logits_fresh_at(model_t *m, const int32_t *tok, int T, long pos0, float *out) {
    seg_mem_t e;
    model_mem_init(&e, m, 1);
    e.pos0 = pos0;
    e.advance = 0;
    logits(m, tok, T, 0, 1, T, &e, out, T, 0);
    model_mem_free(&e);
}

// Copy every tensor of src into dst (the same spec: the same names and shapes).
static void copy_weights(model_t *dst, const model_t *src) {
    for (int i = 0; i < src->params.count; i++) {
        param_t *d = dst->params.items[i];
        const param_t *s = src->params.items[i];
        CHECK(d->numel == s->numel && strcmp(d->name, s->name) == 0);
        memcpy(d->data, s->data, s->numel * sizeof(float));
    }
}

// One layer (its input depends on the token alone), ctx L, M = K·L, one stream of total tokens cut
// into segs: block b's rows == the forward from empty over blocks max(0, b−K) … b, rotated from block b's
// origin o(b) = max(0, ⌊b/K⌋ − 1)·K·L (positions from max(0, b−K)·L − o(b): a model of ctx 2K·L),
// restricted to block b.
static void check_window(pos_scheme_t pos, const char *spec, int L, int K, const int *segs, int nseg) {
    int total = 0;
    for (int k = 0; k < nseg; k++) total += segs[k];
    model_t m, ref;
    if (build(&m, pos, spec, C, H, L, K * L, 1, L, 7)) return;
    if (build(&ref, pos, spec, C, H, 2 * K * L, 2 * K * L, 1, 2 * K * L, 7)) {
        model_free(&m);
        return;
    }
    copy_weights(&ref, &m);
    int32_t *tok = xcalloc((size_t)total, sizeof *tok);
    float *seg = xcalloc((size_t)total * V, sizeof *seg), *want = xcalloc((size_t)total * V, sizeof *want);
    float *win = xcalloc((size_t)(K + 1) * L * V, sizeof *win);
    fixture_tokens(tok, (size_t)total, V, 17);
    segment_logits(&m, tok, 1, segs, nseg, seg);
    for (int b = 0; b * L < total; b++) {
        int ws = (b - K > 0 ? b - K : 0) * L, we = (b + 1) * L < total ? (b + 1) * L : total;
        int origin = (b / K > 1 ? b / K - 1 : 0) * K * L;  // block-local rotations: from the origin of b's group
        logits_fresh_at(&ref, tok + ws, we - ws, ws - origin, win);
        memcpy(want + (size_t)b * L * V, win + (size_t)(b * L - ws) * V, (size_t)(we - b * L) * V * sizeof(float));
    }
    double worst = EXPECT_CLOSE("segments with memory vs each block's window from empty", seg, want, (size_t)total * V,
                                2e-5 * max_abs(want, (size_t)total * V), 1e-5);
    printf("  %d segments: worst ratio to tolerance %.3f\n", nseg, worst);
    free(tok);
    free(seg);
    free(want);
    free(win);
    model_free(&m);
    model_free(&ref);
}

// splits of a 30-token stream (ctx 6: five window blocks): ctx-aligned, and uneven ones whose segments
// start and end inside blocks (never crossing one: performer_check_segment)
static const int win_splits[][10] = {{6, 6, 6, 6, 6}, {4, 2, 3, 3, 6, 5, 1, 6}, {1, 5, 3, 3, 6, 2, 4, 1, 5}, {2, 2, 2, 5, 1, 6, 6, 6}};
static const int win_nsplit[] = {5, 8, 9, 8};

static void test_performer_window(void) {
    static const char *const specs[] = {"performer(features=8)/mlp", "performer(features=6,kernel=relu)/none"};
    for (int p = 0; p < 2; p++)
        for (int ks = 0; ks < 2; ks++)
            for (int k = 0; k < 2; k++) {
                char name[240];
                g_key_scale = ks ? 10.0f : 1.0f;
                snprintf(name, sizeof name, "performer memory, %s, keys x%d, %s: each block sees blocks b-K..b (ctx 6, M 12), any split",
                         scheme_name(schemes[p]), ks ? 10 : 1, specs[k]);
                TEST_CASE(name) {
                    for (size_t s = 0; s < sizeof win_nsplit / sizeof *win_nsplit; s++)
                        check_window(schemes[p], specs[k], 6, 2, win_splits[s], win_nsplit[s]);
                }
                g_key_scale = 1.0f;
            }
}

// Several layers: every split gives the logits of the ctx-aligned segments (L 6, M 12, B 2 streams).
static void test_performer_splits(void) {
    const char *spec = "performer(features=8)/mlp,performer(features=6,kernel=relu)/mlp,performer(features=7)/none";
    for (int p = 0; p < 2; p++)
        for (int ks = 0; ks < 2; ks++) {
            char name[200];
            g_key_scale = ks ? 10.0f : 1.0f;
            snprintf(name, sizeof name, "performer memory, %s, keys x%d, 3 layers: uneven segments == ctx-aligned segments",
                     scheme_name(schemes[p]), ks ? 10 : 1);
            TEST_CASE(name) {
                int B = 2, total = 30;
                model_t m;
                if (build(&m, schemes[p], spec, C, H, 6, 12, B, 6, 7)) continue;
                int32_t tok[2 * 30];
                fixture_tokens(tok, (size_t)B * total, V, 27);
                float *ref = xcalloc((size_t)B * total * V, sizeof *ref), *got = xcalloc((size_t)B * total * V, sizeof *got);
                segment_logits(&m, tok, B, win_splits[0], win_nsplit[0], ref);
                for (size_t s = 1; s < sizeof win_nsplit / sizeof *win_nsplit; s++) {
                    segment_logits(&m, tok, B, win_splits[s], win_nsplit[s], got);
                    double worst = EXPECT_CLOSE("uneven segments vs ctx-aligned ones", got, ref, (size_t)B * total * V,
                                                2e-5 * max_abs(ref, (size_t)B * total * V), 1e-5);
                    printf("  split %zu: worst ratio to tolerance %.3f\n", s, worst);
                }
                free(ref);
                free(got);
                model_free(&m);
            }
            g_key_scale = 1.0f;
        }
}

// One layer, ctx 4, M 8 (K 2), six aligned segments: a token in block b−K−1 changes none of block b's
// logits (bit for bit); every token of block b−K changes them.
static void test_performer_reach(void) {
    static const char *const specs[] = {"performer(features=8)/mlp", "performer(features=6,kernel=relu)/mlp"};
    for (int p = 0; p < 2; p++)
        for (int k = 0; k < 2; k++) {
            char name[200];
            snprintf(name, sizeof name, "performer memory, %s, %s: a key K+1 blocks back has no influence, K blocks back has",
                     scheme_name(schemes[p]), specs[k]);
            TEST_CASE(name) {
                int L = 4, K = 2, nb = 6, total = nb * L, segs[6] = {4, 4, 4, 4, 4, 4}, b = nb - 1;
                model_t m;
                if (build(&m, schemes[p], specs[k], C, H, L, K * L, 1, L, 11)) continue;
                int32_t tok[24];
                fixture_tokens(tok, (size_t)total, V, 29);
                float *base = xcalloc((size_t)total * V, sizeof *base), *pert = xcalloc((size_t)total * V, sizeof *pert);
                segment_logits(&m, tok, 1, segs, nb, base);
                const float *bb = base + (size_t)b * L * V, *pb = pert + (size_t)b * L * V;
                for (int t = (b - K - 1) * L; t < (b - K + 1) * L; t++) {
                    int32_t saved = tok[t];
                    tok[t] = (saved + 1 + t % (V - 1)) % V;
                    segment_logits(&m, tok, 1, segs, nb, pert);
                    tok[t] = saved;
                    float diff = 0;
                    for (int i = 0; i < L * V; i++) diff = fmaxf(diff, fabsf(pb[i] - bb[i]));
                    if (t < (b - K) * L)
                        EXPECT_MSG(diff == 0.0f, "token %d (block %d) changed block %d's logits by %g", t, t / L, b, diff);
                    else
                        EXPECT_MSG(diff > 1e-6f, "token %d (block %d) did not change block %d's logits", t, t / L, b);
                }
                free(base);
                free(pert);
                model_free(&m);
            }
        }
}

// The state does not grow with the stream: mem_floats per row = H·(2K+2)·(m(D+1)+1) + m·D/B (a ring of K
// blocks × 2 versions, 2 accumulators), the decode cache H·(2K+3)·(m(D+1)+1) (and W); decoding 40 window
// blocks still equals the segment-wise forward.
static void test_performer_state_size(void) {
    TEST_CASE("performer memory: the carried state and the decode cache have the window's constant size") {
        model_t m;
        int L = 4, K = 3, m_feat = 8, D = C / H;
        if (build(&m, POS_ROPE, "performer(features=8)/mlp", C, H, L, K * L, 2, L, 5)) continue;
        const block_t *b = &m.layers[0].mixer;
        size_t one = (size_t)m_feat * (D + 1) + 1;
        EXPECT_MSG(b->ops->mem_floats(b, 2) == 2 * H * (2 * K + 2) * one + (size_t)m_feat * D, "mem_floats %zu",
                   b->ops->mem_floats(b, 2));
        EXPECT_MSG(b->ops->cache_floats(b) == H * (2 * K + 3) * one, "cache_floats %zu", b->ops->cache_floats(b));
        model_free(&m);
    }
    TEST_CASE("performer memory: every carried float is finite (checkpoints refuse -inf and NaN), also empty slots") {
        model_t m;
        int L = 4, B = 2;
        if (build(&m, POS_NONE, "performer(features=8)/mlp,performer(features=6,kernel=relu)/mlp", C, H, L, 2 * L, B, L, 5))
            continue;
        int32_t tok[2 * 14];
        fixture_tokens(tok, (size_t)B * 14, V, 9);
        static const int segs[][4] = {{4, 4, 4, 2}, {3, 1, 4, 3}};  // ends inside a block / segments ending blocks
        for (int s = 0; s < 2; s++) {
            float *out = xcalloc((size_t)B * 14 * V, sizeof *out);
            seg_mem_t mem;
            model_mem_init(&mem, &m, B);
            for (int k = 0, t0 = 0; k < 4; t0 += segs[s][k++]) {
                logits(&m, tok, 14, t0, B, segs[s][k], &mem, out, 14, t0);
                for (int i = 0; i < mem.n_blocks; i++)
                    for (size_t j = 0; mem.state[i] && j < mem.floats[i]; j++)
                        if (!isfinite(mem.state[i][j])) {
                            EXPECT_MSG(0, "block %d's state float %zu is %g after segment %d", i, j, mem.state[i][j], k);
                            j = mem.floats[i];
                        }
            }
            model_mem_free(&mem);
            free(out);
        }
        model_free(&m);
    }
    TEST_CASE("performer memory: decode == segment-wise forward over 40 window blocks (ctx 4, M 12)") {
        model_t m;
        int L = 4, total = 160;
        if (build(&m, POS_ROPE, "performer(features=8)/mlp,performer(features=6,kernel=relu)/mlp", C, H, L, 3 * L, 1, L, 5))
            continue;
        int32_t tok[160];
        int segs[40];
        for (int i = 0; i < 40; i++) segs[i] = L;
        fixture_tokens(tok, (size_t)total, V, 3);
        float *fwd = xcalloc((size_t)total * V, sizeof *fwd), *inc = xcalloc((size_t)total * V, sizeof *inc);
        segment_logits(&m, tok, 1, segs, 40, fwd);
        decode_state_t ds;
        decode_init(&ds, &m);
        for (int t = 0; t < total; t++) memcpy(inc + (size_t)t * V, decode_step(&m, &ds, tok[t]), (size_t)V * sizeof(float));
        double worst = EXPECT_CLOSE("decode vs segment-wise forward, 40 blocks", inc, fwd, (size_t)total * V,
                                    1e-4 * max_abs(fwd, (size_t)total * V), 1e-4);
        printf("  worst ratio to tolerance %.3f\n", worst);
        decode_free(&ds);
        free(fwd);
        free(inc);
        model_free(&m);
    }
}

static const char *const lin_specs[] = {"linformer(chunk=2,k=1)/mlp", "linformer(chunk=4,k=2)/mlp",
                                        "linformer(chunk=3,k=2,window=1)/mlp",
                                        "linformer(chunk=2,k=2,window=1,share=kv)/mlp",
                                        "linformer(chunk=3,k=1)/mlp,linformer(chunk=2,k=2,window=2)/none"};

static void test_linformer_consistency(void) {
    // ctx 24 and M 24: multiples of every chunk; M covers the whole past of each segment
    static const int splits[][3] = {{12, 12}, {7, 17}, {6, 6, 12}, {5, 4, 15}};
    for (int p = 0; p < 2; p++)
        for (size_t k = 0; k < sizeof lin_specs / sizeof *lin_specs; k++) {
            char name[200];
            snprintf(name, sizeof name, "linformer memory, %s, M >= the past: segments equal the full window, %s",
                     scheme_name(schemes[p]), lin_specs[k]);
            TEST_CASE(name) {
                for (int s = 0; s < 4; s++) check_whole_stream(schemes[p], lin_specs[k], 24, 24, splits[s], s < 2 ? 2 : 3);
            }
        }
}

// One layer, M < the past: segment B after A (T1) sees only the chunks lying wholly within the last M
// positions, i.e. equals the memory-free forward over tokens [s, T1 + T2) with s the first chunk
// boundary ≥ T1 − M (one layer: its input x̂ does not depend on context). Rope scores are relative,
// so shifting the window's origin changes only rounding.
static void check_within_M(pos_scheme_t pos, const char *spec, int chunk, int T1, int T2, int M) {
    int B = 2, total = T1 + T2, s = ((T1 - M) + chunk - 1) / chunk * chunk, Tw = total - s;
    model_t m;
    if (build(&m, pos, spec, C, H, 24, M, B, total, 9)) return;
    int32_t *tok = xcalloc((size_t)B * total, sizeof *tok);
    float *ref = xcalloc((size_t)B * Tw * V, sizeof *ref), *seg = xcalloc((size_t)B * total * V, sizeof *seg);
    float *got = xcalloc((size_t)B * T2 * V, sizeof *got), *want = xcalloc((size_t)B * T2 * V, sizeof *want);
    fixture_tokens(tok, (size_t)B * total, V, 19);
    logits(&m, tok, total, s, B, Tw, NULL, ref, Tw, 0);
    int segs[2] = {T1, T2};
    segment_logits(&m, tok, B, segs, 2, seg);
    for (int b = 0; b < B; b++) {
        memcpy(got + (size_t)b * T2 * V, seg + ((size_t)b * total + T1) * V, (size_t)T2 * V * sizeof(float));
        memcpy(want + (size_t)b * T2 * V, ref + ((size_t)b * Tw + (T1 - s)) * V, (size_t)T2 * V * sizeof(float));
    }
    double worst = EXPECT_CLOSE("segment after memory vs the window from the first chunk within M", got, want,
                                (size_t)B * T2 * V, 2e-5 * max_abs(want, (size_t)B * T2 * V), 1e-5);
    printf("  T1 %d, T2 %d, M %d: window from %d, worst ratio to tolerance %.3f\n", T1, T2, M, s, worst);
    // and it differs from the full window (the chunks before s matter there)
    float *full = xcalloc((size_t)B * total * V, sizeof *full);
    logits(&m, tok, total, 0, B, total, NULL, full, total, 0);
    float diff = 0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T2 * V; i++)
            diff = fmaxf(diff, fabsf(got[(size_t)b * T2 * V + i] - full[((size_t)b * total + T1) * V + i]));
    EXPECT_MSG(diff > 1e-4f, "memory M = %d < T1 = %d but segment B equals the full window (diff %g)", M, T1, diff);
    free(full);
    free(tok);
    free(ref);
    free(seg);
    free(got);
    free(want);
    model_free(&m);
}

static void test_linformer_within_M(void) {
    static const struct {
        const char *spec;
        int chunk, T1, T2, M;
    } cases[] = {
        {"linformer(chunk=2,k=1)/mlp", 2, 12, 12, 4},
        {"linformer(chunk=4,k=2)/mlp", 4, 12, 12, 8},
        {"linformer(chunk=3,k=2,window=1)/mlp", 3, 12, 12, 6},
        {"linformer(chunk=2,k=2,window=1,share=kv)/mlp", 2, 7, 9, 4},  // T1 odd: a partial chunk is dropped
        {"linformer(chunk=3,k=1,window=1)/mlp", 3, 10, 8, 6},          // T1 − M = 4: chunks from 6 on
    };
    for (int p = 0; p < 2; p++)
        for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
            char name[200];
            snprintf(name, sizeof name, "linformer memory, %s, M %d < T1 %d: only chunks within M are seen, %s",
                     scheme_name(schemes[p]), cases[k].M, cases[k].T1, cases[k].spec);
            TEST_CASE(name) check_within_M(schemes[p], cases[k].spec, cases[k].chunk, cases[k].T1, cases[k].T2, cases[k].M);
        }
}

// ---------------------------------------------------------------------------------------------
// gradient check with memory: segment A fills the memory, then the loss of segment B with the memory
// read only (advance = 0), against finite differences of every trainable tensor.

typedef struct {
    model_t m;
    seg_mem_t mem;
    int32_t tok[64], tgt[64];
    int B, T;
} mem_grad_ctx_t;

static double mem_loss(void *p) {
    mem_grad_ctx_t *c = p;
    rng_t r;
    rng_seed(&r, 99);
    run_ctx_t rc = {.training = 1, .rng = &r, .mem = &c->mem};
    return model_forward(&c->m, c->tok, c->tgt, c->B, c->T, &rc) + model_extra_loss(&c->m, 0);
}

static void check_mem_gradient(pos_scheme_t pos, const char *spec, int ctx, int M, int T1, int nwarm, int T2) {
    mem_grad_ctx_t *c = xcalloc(1, sizeof *c);
    c->B = 2;
    c->T = T2;
    if (build(&c->m, pos, spec, 8, 2, ctx, M, c->B, ctx, 3)) {
        free(c);
        return;
    }
    model_mem_init(&c->mem, &c->m, c->B);
    int32_t a[64];
    fixture_tokens(a, (size_t)c->B * T1, V, 4);
    rng_t r;
    rng_seed(&r, 1);
    run_ctx_t rc0 = {.training = 0, .rng = &r, .mem = &c->mem};
    for (int w = 0; w < nwarm; w++) model_forward(&c->m, a, NULL, c->B, T1, &rc0);  // fills the memory
    c->mem.advance = 0;
    fixture_tokens(c->tok, (size_t)c->B * T2, V, 5);
    fixture_tokens(c->tgt, (size_t)c->B * T2, V, 6);
    size_t nstate = c->mem.n_blocks ? c->mem.floats[0] : 0;
    float *before = xcalloc(nstate + 1, sizeof *before);
    if (nstate) memcpy(before, c->mem.state[0], nstate * sizeof(float));
    params_zero_grad(&c->m.params);
    rng_seed(&r, 99);
    run_ctx_t rc = {.training = 1, .rng = &r, .mem = &c->mem};
    model_forward(&c->m, c->tok, c->tgt, c->B, c->T, &rc);
    model_backward(&c->m, 1.0f, &rc);
    model_extra_loss(&c->m, 1);
    EXPECT(c->mem.pos0 == (long)nwarm * T1);
    EXPECT_MSG(!nstate || memcmp(before, c->mem.state[0], nstate * sizeof(float)) == 0,
               "a forward with advance = 0 changed the state");
    double worst = 0;
    for (int i = 0; i < c->m.params.count; i++) {
        param_t *p = c->m.params.items[i];
        if (!p->trainable) continue;
        double w = fd_check(p->name, mem_loss, c, p->data, p->grad, p->numel, 1e-2f, 2e-4, 1e-2);
        worst = w > worst ? w : worst;
    }
    printf("  %d x T1 %d, T2 %d, M %d: worst ratio to tolerance %.3f\n", nwarm, T1, T2, M, worst);
    free(before);
    model_mem_free(&c->mem);
    model_free(&c->m);
    free(c);
}

static void test_gradient(void) {
    static const struct {
        const char *spec;
        int ctx, M, T1, nwarm, T2;
    } cases[] = {
        // rows 3. Performer: pos0 8, B opens block 1 and reads block 0 (its version for the next block)
        {"performer(features=8)/mlp", 8, 8, 8, 1, 6},
        // pos0 12: B ends block 1, reading the carried partial block 1 (its chain) and block 0
        {"performer(features=8)/mlp", 8, 8, 4, 3, 4},
        // three blocks finished, K 2: B reads a combined window of two carried blocks
        {"performer(features=6,kernel=softmax)/none,performer(features=5)/mlp", 4, 8, 4, 3, 4},
        // pos0 12 (K 2): B is block 2 (group 1), reading blocks 0 and 1 at their versions for the next group
        {"performer(features=7)/mlp", 6, 12, 6, 2, 6},
        {"linformer(chunk=2,k=1)/mlp", 8, 8, 6, 1, 7},                                  // memory chunks compressed
        {"linformer(chunk=2,k=2,window=1,share=kv)/mlp,linformer(chunk=2,k=1)/none", 8, 4, 6, 1, 6},  // M < T1
        {"linformer(chunk=3,k=2,window=1)/mlp", 6, 6, 6, 1, 6},
    };
    for (int p = 0; p < 2; p++)
        for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
            char name[200];
            snprintf(name, sizeof name, "gradcheck with memory (advance 0), %s, %s", scheme_name(schemes[p]), cases[k].spec);
            TEST_CASE(name) check_mem_gradient(schemes[p], cases[k].spec, cases[k].ctx, cases[k].M, cases[k].T1, cases[k].nwarm,
                                               cases[k].T2);
        }
}

// ---------------------------------------------------------------------------------------------
// causality across the boundary: A then B with memory (fresh each time). Changing token i of B changes no
// logit of B before i (bit for bit) and changes row i; changing a token of A changes B's logits exactly
// when A's position is within what the memory shows (performer: A lies in B's window here; one-layer
// linformer: the chunks within M).

static void check_causality(pos_scheme_t pos, const char *spec, int ctx, int M, int T1, int T2, int first_seen) {
    model_t m;
    int total = T1 + T2, segs[2] = {T1, T2};
    if (build(&m, pos, spec, C, H, ctx, M, 1, ctx, 13)) return;
    int32_t tok[64];
    float *base = xcalloc((size_t)total * V, sizeof *base), *pert = xcalloc((size_t)total * V, sizeof *pert);
    fixture_tokens(tok, (size_t)total, V, 23);
    segment_logits(&m, tok, 1, segs, 2, base);
    const float *bB = base + (size_t)T1 * V, *pB = pert + (size_t)T1 * V;
    for (int t = 0; t < total; t++) {
        int32_t saved = tok[t];
        tok[t] = (saved + 1 + t % (V - 1)) % V;
        segment_logits(&m, tok, 1, segs, 2, pert);
        tok[t] = saved;
        float before = 0, at = 0;
        int i0 = t < T1 ? 0 : t - T1;  // B's rows before t
        for (int i = 0; i < i0 * V; i++) before = fmaxf(before, fabsf(pB[i] - bB[i]));
        for (int i = 0; i < T2 * V; i++) at = fmaxf(at, fabsf(pB[i] - bB[i]));
        if (t >= T1) {
            EXPECT_MSG(before == 0.0f, "changing token %d (segment B) changed B's earlier logits by %g", t, before);
            float own = 0;
            for (int v = 0; v < V; v++) own = fmaxf(own, fabsf(pB[i0 * V + v] - bB[i0 * V + v]));
            EXPECT_MSG(own > 1e-6f, "changing token %d did not change its own logits", t);
        } else if (t >= first_seen) {
            EXPECT_MSG(at > 1e-6f, "changing token %d of segment A (in memory) did not change segment B", t);
        } else {
            EXPECT_MSG(at == 0.0f, "changing token %d of segment A (outside memory) changed segment B by %g", t, at);
        }
    }
    free(base);
    free(pert);
    model_free(&m);
}

static void test_causality(void) {
    static const struct {
        const char *spec;
        int ctx, M, T1, T2, first_seen;
    } cases[] = {
        {"performer(features=8)/mlp,performer(features=6,kernel=relu)/mlp", 8, 8, 8, 8, 0},  // B is the next block
        {"performer(features=8)/mlp,performer(features=6,kernel=relu)/mlp", 8, 8, 3, 5, 0},  // B ends A's block
        {"linformer(chunk=2,k=1)/mlp", 8, 8, 8, 8, 0},
        {"linformer(chunk=2,k=1,window=1)/mlp", 8, 4, 8, 8, 4},  // one layer: tokens before 4 unseen
        {"linformer(chunk=3,k=2)/mlp", 9, 3, 7, 6, 6},            // T1 − M = 4: the chunk from 6 on
        {"linformer(chunk=2,k=2,window=1)/mlp,linformer(chunk=2,k=1)/mlp", 8, 8, 6, 8, 0},
    };
    for (int p = 0; p < 2; p++)
        for (int ks = 0; ks < 2; ks++)
            for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
                if (ks && strncmp(cases[k].spec, "performer", 9)) continue;
                char name[200];
                g_key_scale = ks ? 10.0f : 1.0f;
                snprintf(name, sizeof name, "causality across segments with memory, %s%s, %s", scheme_name(schemes[p]),
                         ks ? ", keys x10" : "", cases[k].spec);
                TEST_CASE(name) check_causality(schemes[p], cases[k].spec, cases[k].ctx, cases[k].M, cases[k].T1,
                                                cases[k].T2, cases[k].first_seen);
                g_key_scale = 1.0f;
            }
}

// ---------------------------------------------------------------------------------------------
// decode == forward: decode_step token by token over 3+ segments of ctx (stream positions) equals the
// segment-wise forward with memory.

static void check_decode(pos_scheme_t pos, const char *spec, int ctx, int M, int total) {
    model_t m;
    if (build(&m, pos, spec, C, H, ctx, M, 1, ctx, 31)) return;
    int32_t tok[128];
    int segs[16], nseg = 0;
    for (int t0 = 0; t0 < total; t0 += ctx) segs[nseg++] = total - t0 < ctx ? total - t0 : ctx;
    float *fwd = xcalloc((size_t)total * V, sizeof *fwd), *inc = xcalloc((size_t)total * V, sizeof *inc);
    fixture_tokens(tok, (size_t)total, V, 41);
    segment_logits(&m, tok, 1, segs, nseg, fwd);
    decode_state_t ds;
    decode_init(&ds, &m);
    for (int pass = 0; pass < 2; pass++) {  // the second after a reset
        decode_reset(&ds);
        for (int t = 0; t < total; t++) memcpy(inc + (size_t)t * V, decode_step(&m, &ds, tok[t]), (size_t)V * sizeof(float));
        double worst = EXPECT_CLOSE("decode vs segment-wise forward with memory", inc, fwd, (size_t)total * V,
                                    1e-4 * max_abs(fwd, (size_t)total * V), 1e-4);
        if (!pass) printf("  %d segments: worst ratio to tolerance %.3f\n", nseg, worst);
    }
    decode_free(&ds);
    free(fwd);
    free(inc);
    model_free(&m);
}

static void test_decode(void) {
    static const struct {
        const char *spec;
        int ctx, M, total;
    } cases[] = {
        {"performer(features=8)/mlp,performer(features=6,kernel=relu)/mlp", 6, 6, 22},
        {"performer(features=8)/mlp,performer(features=6,kernel=relu)/mlp", 4, 8, 26},  // K 2, 6.5 blocks
        {"linformer(chunk=2,k=1)/mlp", 6, 6, 22},
        {"linformer(chunk=2,k=1)/mlp", 6, 12, 27},           // memory of two segments
        {"linformer(chunk=4,k=2)/mlp", 8, 8, 30},
        {"linformer(chunk=3,k=2,window=1)/mlp,linformer(chunk=2,k=2,window=1,share=kv)/mlp", 6, 18, 26},
        {"linformer(chunk=2,k=1,window=2)/mlp", 4, 2, 15},  // the window reaches past the memory
    };
    for (int p = 0; p < 2; p++)
        for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
            char name[200];
            snprintf(name, sizeof name, "decode == segment-wise forward with memory, %s, ctx %d, M %d, %d tokens, %s",
                     scheme_name(schemes[p]), cases[k].ctx, cases[k].M, cases[k].total, cases[k].spec);
            TEST_CASE(name) check_decode(schemes[p], cases[k].spec, cases[k].ctx, cases[k].M, cases[k].total);
        }
}

// ---------------------------------------------------------------------------------------------
// performer: a redraw of Ω between segments drops the carried state (it was computed with the old
// features): B after A and a redraw == B from an empty carry at the same stream positions.

static void test_redraw(void) {
    for (int p = 0; p < 2; p++) {
        char name[160];
        snprintf(name, sizeof name, "performer memory, %s: a redraw of omega drops the carried state", scheme_name(schemes[p]));
        TEST_CASE(name) {
            int T1 = 5, T2 = 3, B = 2;  // B ends A's block (a segment never crosses one)
            model_t m;
            if (build(&m, schemes[p], "performer(features=8,redraw=1)/mlp", C, H, 8, 8, B, 8, 5)) continue;
            int32_t tok[2 * 13];
            fixture_tokens(tok, (size_t)B * (T1 + T2), V, 3);
            float *after = xcalloc((size_t)B * T2 * V, sizeof *after), *fresh = xcalloc((size_t)B * T2 * V, sizeof *fresh);
            float *kept = xcalloc((size_t)B * T2 * V, sizeof *kept), *scrap = xcalloc((size_t)B * T1 * V, sizeof *scrap);
            seg_mem_t mem, empty;
            model_mem_init(&mem, &m, B);
            model_mem_init(&empty, &m, B);
            // without a redraw the carry matters
            logits(&m, tok, T1 + T2, 0, B, T1, &mem, scrap, T1, 0);
            logits(&m, tok, T1 + T2, T1, B, T2, &mem, kept, T2, 0);
            empty.pos0 = T1;  // the same stream positions, nothing carried
            logits(&m, tok, T1 + T2, T1, B, T2, &empty, fresh, T2, 0);
            float diff = 0;
            for (int i = 0; i < B * T2 * V; i++) diff = fmaxf(diff, fabsf(kept[i] - fresh[i]));
            EXPECT_MSG(diff > 1e-4f, "the carried state made no difference (%g)", diff);
            // A, then a redraw (before step 2 with redraw=1), then B
            model_mem_clear(&mem);
            logits(&m, tok, T1 + T2, 0, B, T1, &mem, scrap, T1, 0);
            rng_t r;
            rng_seed(&r, 77);
            block_t *b = &m.layers[0].mixer;
            b->ops->before_step(b, 2, &r);
            logits(&m, tok, T1 + T2, T1, B, T2, &mem, after, T2, 0);
            model_mem_clear(&empty);
            empty.pos0 = T1;
            logits(&m, tok, T1 + T2, T1, B, T2, &empty, fresh, T2, 0);
            EXPECT_MSG(memcmp(after, fresh, (size_t)B * T2 * V * sizeof(float)) == 0,
                       "after a redraw, segment B still used the state carried from the old features");
            // and the state written after the redraw is carried again
            int32_t c3[2 * 5];
            fixture_tokens(c3, (size_t)B * 5, V, 8);
            float *next = xcalloc((size_t)B * 5 * V, sizeof *next), *next_fresh = xcalloc((size_t)B * 5 * V, sizeof *next_fresh);
            logits(&m, c3, 5, 0, B, 5, &mem, next, 5, 0);
            seg_mem_t e2;
            model_mem_init(&e2, &m, B);
            e2.pos0 = T1 + T2;
            logits(&m, c3, 5, 0, B, 5, &e2, next_fresh, 5, 0);
            diff = 0;
            for (int i = 0; i < B * 5 * V; i++) diff = fmaxf(diff, fabsf(next[i] - next_fresh[i]));
            EXPECT_MSG(diff > 1e-4f, "the state written after the redraw was not carried (%g)", diff);
            model_mem_free(&e2);
            free(next);
            free(next_fresh);
            model_mem_free(&mem);
            model_mem_free(&empty);
            free(after);
            free(fresh);
            free(kept);
            free(scrap);
            model_free(&m);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// rc->mem NULL on a memory model == the memory-free model, bit for bit (forward and gradients).

static void test_no_memory_bit_identical(void) {
    static const char *const specs[] = {"performer(features=8)/mlp,performer(features=6,kernel=relu)/mlp",
                                        "linformer(chunk=2,k=1,window=1)/mlp,linformer(chunk=3,k=2,share=kv)/mlp"};
    for (int p = 0; p < 2; p++)
        for (int k = 0; k < 2; k++) {
            char name[200];
            snprintf(name, sizeof name, "memory model without rc->mem == memory-free model, bit for bit, %s, %s",
                     scheme_name(schemes[p]), specs[k]);
            TEST_CASE(name) {
                model_t a, b;
                int B = 2, T = 12;
                if (build(&a, schemes[p], specs[k], C, H, 12, 0, B, T, 6)) continue;
                if (build(&b, schemes[p], specs[k], C, H, 12, 12, B, T, 6)) {
                    model_free(&a);
                    continue;
                }
                int32_t tok[24], tgt[24];
                fixture_tokens(tok, 24, V, 1);
                fixture_tokens(tgt, 24, V, 2);
                model_t *ms[2] = {&a, &b};
                float loss[2];
                for (int i = 0; i < 2; i++) {
                    rng_t r;
                    rng_seed(&r, 1);
                    run_ctx_t rc = {.training = 1, .rng = &r};
                    params_zero_grad(&ms[i]->params);
                    loss[i] = model_forward(ms[i], tok, tgt, B, T, &rc);
                    model_backward(ms[i], 1.0f, &rc);
                }
                EXPECT(memcmp(&loss[0], &loss[1], sizeof(float)) == 0);
                for (int i = 0; i < a.params.count; i++) {
                    param_t *pa = a.params.items[i], *pb = b.params.items[i];
                    EXPECT_MSG(memcmp(pa->grad, pb->grad, pa->numel * sizeof(float)) == 0, "%s: gradient differs", pa->name);
                }
                model_free(&a);
                model_free(&b);
            }
        }
}

// ---------------------------------------------------------------------------------------------
// linformer: --memory and ctx must be multiples of chunk.

static void test_check_memory(void) {
    TEST_CASE("performer --memory: a multiple of ctx, else one line naming the layer") {
        model_t m;
        model_dims_t d = {.vocab = V, .dim = C, .heads = H, .ctx = 32, .pos = POS_ROPE};
        char err[256];
        CHECK(model_build(&m, &d, "softmax/mlp,performer/mlp", err, sizeof err) == 0);
        EXPECT(model_set_memory(&m, 48, err, sizeof err) == -1);
        EXPECT_MSG(strcmp(err, "layer 1 (performer): --memory 48 is not a multiple of ctx 32 (the performer carries "
                               "M/ctx whole blocks of ctx positions)") == 0,
                   "got: %s", err);
        EXPECT(m.dims.memory == 0);
        EXPECT(model_set_memory(&m, 64, err, sizeof err) == 0 && m.dims.memory == 64);
        EXPECT(model_set_memory(&m, 0, err, sizeof err) == 0);
        model_free(&m);
    }
    TEST_CASE("linformer --memory: M and ctx multiples of chunk, else one line naming the layer") {
        model_t m;
        model_dims_t d = {.vocab = V, .dim = C, .heads = H, .ctx = 32, .pos = POS_ROPE};
        char err[256];
        CHECK(model_build(&m, &d, "softmax/mlp,linformer(chunk=16)/mlp", err, sizeof err) == 0);
        EXPECT(model_set_memory(&m, 100, err, sizeof err) == -1);
        EXPECT_MSG(strcmp(err, "layer 1 (linformer): --memory 100 is not a multiple of chunk 16") == 0, "got: %s", err);
        EXPECT(m.dims.memory == 0);
        EXPECT(model_set_memory(&m, 48, err, sizeof err) == 0 && m.dims.memory == 48);
        model_free(&m);
        d.ctx = 40;
        CHECK(model_build(&m, &d, "linformer(chunk=16)/mlp", err, sizeof err) == 0);
        EXPECT(model_set_memory(&m, 32, err, sizeof err) == -1);
        EXPECT_MSG(strcmp(err, "layer 0 (linformer): --memory needs ctx to be a multiple of chunk 16 (ctx 40)") == 0,
                   "got: %s", err);
        EXPECT(model_set_memory(&m, 0, err, sizeof err) == 0);  // no memory: any ctx
        model_free(&m);
    }
}

int main(void) {
    test_performer_window();
    test_performer_splits();  // threaded: B 2 × H 4 heads write their carried states in parallel
    test_performer_reach();
    test_performer_state_size();
    test_linformer_consistency();
    test_linformer_within_M();
#ifdef _OPENMP
    // the gradient checks and causality loops are thousands of tiny forwards, each a few dozen short
    // parallel regions: on a busy 2-core machine every region waits for a descheduled thread (as in
    // test_kinds.c). The threaded paths are exercised above.
    int saved_threads = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    test_gradient();
    test_causality();
#ifdef _OPENMP
    omp_set_num_threads(saved_threads);
#endif
    test_decode();
    test_redraw();
    test_no_memory_bit_identical();
    test_check_memory();
    return test_main_end();
}
