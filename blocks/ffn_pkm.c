// ffn_pkm.c — the Product-Key Memory layer as an ffn (Lample et al., NeurIPS 2019, arXiv 1907.05242;
// BLOCKS.md §4, docs/blocks/pkm.md). Per token x (C) and memory head h (H of them), n = sqrt(slots):
//   q      = x·Wqᵀ + bq (H·dk), laid out (head, half, dk/2): q_h = [q1 | q2]
//   q1, q2 = LN(q1), LN(q2)            one affine LayerNorm of width dk/2 shared by heads and halves
//   σ1 = K1_h·q1, σ2 = K2_h·q2 (n each); top-k of each; the k² sums σ1_a + σ2_b with slot a·n + b;
//   top-k of those: slots I_h (k), scores s_h (k);  w_h = softmax(s_h) (per head)
//   y      = Σ_h Σ_j w_hj · V[I_hj]     one value table V (slots, C) shared by the heads
// Tensors: ffn.wq (H·dk, C) std 0.02, ffn.bq (H·dk), ffn.qln.weight/bias (dk/2), ffn.keys (H, 2, n,
// dk/2) U(±1/sqrt(dk/2)) — keys[h][0] = K1_h, keys[h][1] = K2_h — and ffn.values (slots, C) std
// 1/sqrt(C), updated as sparse rows (lazy Adam, constant lr 1e-3, no weight decay: params.h).
// Top-k: blocks/topk.c (ties to the lower index). Backward treats the selected indices as constants.
#include "blocks/ffn_pkm.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "model/block.h"
#include "model/gemm.h"
#include "base/check.h"
#include "model/ops.h"
#include "blocks/topk.h"

// The reference's (XLM) constant learning rate of the value table, independent of --lr and its schedule.
#define PKM_VALUES_LR 1e-3f
#define PKM_MAX_SLOTS (1L << 24)  // 4096²: slot indices stay far inside int32
#define PKM_MAX_N 4096            // sub-keys per half at most (sqrt of PKM_MAX_SLOTS)
#define PKM_PREFETCH 8            // value rows requested ahead of the one being read
#define SORT_MAX_THREADS 64       // threads the backward's radix sort uses at most

// Ask for the cache lines of one value row (C floats) ahead of use; changes no result.
static inline void prefetch_row(const float *row, int C) {
    for (int c = 0; c < C; c += 16) __builtin_prefetch(row + c);
}

// The same for a row about to be written (the dV scatter's gradient rows).
static inline void prefetch_row_w(float *row, int C) {
    for (int c = 0; c < C; c += 16) __builtin_prefetch(row + c, 1);
}
#define PKM_SCATTER_AHEAD 32  // the sorted backward walk requests V and dV rows this many selections ahead

// The sub-key of slot sl in half f: a = sl / n (f 0) or b = sl mod n (f 1), without an integer division:
// (sl + 0.5)/n lies at least 0.5/n ≥ 2⁻¹³ from every integer, and the double product's error is below
// sl·2⁻⁵² < 2⁻²⁸ (sl < 2²⁴), so its floor is exactly a.
static inline int sub_key(int32_t sl, int n, double inv_n, int f) {
    int a = (int)(((double)sl + 0.5) * inv_n);
    return f ? sl - a * n : a;
}

// Sixteen floats as one vector (GCC/Clang vector extension); v16u reads and writes them unaligned.
typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4), may_alias));
#define LD16(p) (*(const v16u *)(p))
#define ST16(p, v) (*(v16u *)(p) = (v))
#define ROWS_CHUNK 256  // terms add_weighted_rows takes at once (callers split longer sums)

// y[0..n) += Σ_{e<m} w[e]·src[e][0..n), each element's terms added one at a time in e order: the bits
// of the plain loop `for e: for c: y[c] += w[e]·src[e][c]` (a product, then a sum: the build's -std=c11
// means -ffp-contract=off, no fused multiply-add), but with 64 columns held in four vector registers
// across all e, where the plain loop stores every partial sum and loads it back for the next term (each
// addition waiting on the previous one's store). With prefetch, the first pass over the columns asks
// for the row PKM_PREFETCH terms ahead (the value table's gather; changes no result).
static void add_weighted_rows(float *y, int n, const float *w, const float *const *src, int m, int prefetch) {
    int c = 0;
    for (; c + 64 <= n; c += 64) {
        v16 a0 = LD16(y + c), a1 = LD16(y + c + 16), a2 = LD16(y + c + 32), a3 = LD16(y + c + 48);
        for (int e = 0; e < m; e++) {
            if (prefetch && c == 0 && e + PKM_PREFETCH < m) prefetch_row(src[e + PKM_PREFETCH], n);
            const float *x = src[e] + c;
            float we = w[e];
            a0 += we * LD16(x);
            a1 += we * LD16(x + 16);
            a2 += we * LD16(x + 32);
            a3 += we * LD16(x + 48);
        }
        ST16(y + c, a0);
        ST16(y + c + 16, a1);
        ST16(y + c + 32, a2);
        ST16(y + c + 48, a3);
    }
    for (; c + 16 <= n; c += 16) {
        v16 a0 = LD16(y + c);
        for (int e = 0; e < m; e++) {
            if (prefetch && c == 0 && e + PKM_PREFETCH < m) prefetch_row(src[e + PKM_PREFETCH], n);
            a0 += w[e] * LD16(src[e] + c);
        }
        ST16(y + c, a0);
    }
    for (; c < n; c++) {
        float a = y[c];
        for (int e = 0; e < m; e++) a += w[e] * src[e][c];
        y[c] = a;
    }
}

typedef struct {
    int slots, n, k, H, dk, half;  // half = dk/2
    param_t *wq, *bq, *lnw, *lnb, *keys, *values;
    // usage statistics (stats_begin/stats_report), allocated at the first stats_begin
    int stats_on;
    double *slot_w;    // (slots) summed softmax weight
    uint8_t *slot_hit; // (slots) selected at least once
    double total_w;
    long long hits;    // selections counted
} pkm_t;

// ---------------------------------------------------------------------------------------------
// configuration

static int pkm_configure(block_t *b, spec_block_t *spec, char *err, size_t errlen) {
    const char *where = block_where(b);
    long slots, k, heads, dk;
    if (spec_get_int(spec, "slots", 16384, 1, PKM_MAX_SLOTS, &slots, where, err, errlen)) return -1;
    long n = lround(sqrt((double)slots));
    while (n * n > slots) n--;
    while ((n + 1) * (n + 1) <= slots) n++;
    if (n * n != slots)
        return seterr(err, errlen, "%s: option slots=%ld is not a perfect square (slots = n² for n sub-keys per half, e.g. 16384 = 128²)",
                      where, slots);
    if (spec_get_int(spec, "k", 32, 1, 1L << 20, &k, where, err, errlen)) return -1;
    if (k > n)
        return seterr(err, errlen, "%s: option k=%ld exceeds sqrt(slots)=%ld (each half picks k of its n sub-keys)",
                      where, k, n);
    if (spec_get_int(spec, "heads", 4, 1, 4096, &heads, where, err, errlen)) return -1;
    if (spec_get_int(spec, "dk", 128, 4, 1L << 16, &dk, where, err, errlen)) return -1;
    if (dk % 2)
        return seterr(err, errlen, "%s: option dk=%ld must be even (the query splits into two halves of dk/2)",
                      where, dk);
    pkm_t *p = xcalloc(1, sizeof *p);
    p->slots = (int)slots;
    p->n = (int)n;
    p->k = (int)k;
    p->H = (int)heads;
    p->dk = (int)dk;
    p->half = (int)dk / 2;
    b->priv = p;
    return 0;
}

static void pkm_describe(const block_t *b, char *buf, size_t n) {
    const pkm_t *p = b->priv;
    snprintf(buf, n, "pkm(slots=%d,k=%d,heads=%d,dk=%d)", p->slots, p->k, p->H, p->dk);
}

static void pkm_register(block_t *b, param_table_t *pt, const char *prefix) {
    pkm_t *p = b->priv;
    int C = b->dims->dim, Q = p->H * p->dk;
    p->wq = params_add(pt, prefix, "wq", (param_spec_t){.shape = {Q, C}, .init = INIT_NORMAL, .std = 0.02f, .decay = 1});
    p->bq = params_add(pt, prefix, "bq", (param_spec_t){.shape = {Q}, .init = INIT_ZEROS});
    p->lnw = params_add(pt, prefix, "qln.weight", (param_spec_t){.shape = {p->half}, .init = INIT_ONES});
    p->lnb = params_add(pt, prefix, "qln.bias", (param_spec_t){.shape = {p->half}, .init = INIT_ZEROS});
    // sub-keys: no weight decay (a retrieval table, as the reference trains it; decay would shrink
    // every score, selected or not)
    p->keys = params_add(pt, prefix, "keys", (param_spec_t){.shape = {p->H, 2, p->n, p->half}, .init = INIT_UNIFORM,
                                                            .bound = 1.0f / sqrtf((float)p->half)});
    p->values = params_add(pt, prefix, "values",
                           (param_spec_t){.shape = {p->slots, C}, .init = INIT_NORMAL, .std = 1.0f / sqrtf((float)C)});
    params_set_sparse_rows(p->values, PKM_VALUES_LR);
}

static void pkm_free(block_t *b) {
    pkm_t *p = b->priv;
    if (!p) return;
    free(p->slot_w);
    free(p->slot_hit);
}

// ---------------------------------------------------------------------------------------------
// activation and scratch layout, for N = B·T rows:
//   act:     qpre (N, H·dk) | qn (N, H·dk) | mean, rstd (N·H·2 each) | idx (N, H, k) int32 | w (N, H, k)
//   scratch: forward  S (N, n) | hv (N, H, 2, k) | hi (N, H, 2, k) int32
//            backward dqn (N, H·dk) | dqpre (N, H·dk) | ds (N, H, k) | (8-byte alignment) |
//                     two (N·H·k) uint64 arrays and (SORT_MAX_THREADS, 256) size_t digit counts for the radix sort
//                     of the selections by slot

typedef struct {
    float *qpre, *qn, *mean, *rstd, *w;
    int32_t *idx;
} pkm_act_t;

static size_t act_size(const pkm_t *p, size_t N) {
    return 2 * N * p->H * p->dk + 4 * N * p->H + 2 * N * p->H * p->k;
}
static pkm_act_t act_views(const pkm_t *p, float *act, size_t N) {
    pkm_act_t a;
    size_t Q = N * p->H * p->dk, R = N * p->H * 2, K = N * p->H * p->k;
    a.qpre = act;
    a.qn = a.qpre + Q;
    a.mean = a.qn + Q;
    a.rstd = a.mean + R;
    a.idx = (int32_t *)(a.rstd + R);  // int32 in float-sized slots (never read as float)
    a.w = a.rstd + R + K;
    return a;
}
static size_t scratch_size(const pkm_t *p, size_t N) {
    size_t fwd = N * p->n + 4 * N * p->H * p->k;
    size_t bwd = 2 * N * p->H * p->dk + N * p->H * p->k + 2 + 4 * N * p->H * p->k +
                 SORT_MAX_THREADS * 256 * sizeof(size_t) / sizeof(float);
    return fwd > bwd ? fwd : bwd;
}

static size_t pkm_act_floats(const block_t *b, int B, int T) { return act_size(b->priv, (size_t)B * T); }
static size_t pkm_scratch_floats(const block_t *b, int B, int T) { return scratch_size(b->priv, (size_t)B * T); }

// ---------------------------------------------------------------------------------------------
// forward

static void pkm_run(pkm_t *p, float *y, const float *x, float *act, float *scratch, int N, int C) {
    int H = p->H, dk = p->dk, half = p->half, n = p->n, k = p->k, Q = H * dk;
    pkm_act_t a = act_views(p, act, (size_t)N);
    float *S = scratch, *hv = S + (size_t)N * n;
    int32_t *hi = (int32_t *)(hv + (size_t)N * H * 2 * k);
    // q = x·Wqᵀ + bq, then the shared LayerNorm over each (row, head, half) of width dk/2
    matmul_forward(a.qpre, x, p->wq->data, p->bq->data, N, C, Q);
    layernorm_forward(a.qn, a.mean, a.rstd, a.qpre, p->lnw->data, p->lnb->data, N * H * 2, half);
    // sub-key scores of one (head, half) for every row: S (N, n) = q_half (N, dk/2, row stride Q)·Kᵀ,
    // then each row's top-k into hv/hi[row, h, half, :]
    for (int h = 0; h < H; h++)
        for (int f = 0; f < 2; f++) {
            const float *K = p->keys->data + ((size_t)h * 2 + f) * n * half;
            par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, n, half, 1.0f, a.qn + (size_t)h * dk + f * half, Q,
                        K, half, 0.0f, S, n);
#pragma omp parallel for schedule(static)
            for (int r = 0; r < N; r++) {
                size_t o = (((size_t)r * H + h) * 2 + f) * k;
                topk_row(S + (size_t)r * n, n, k, hv + o, hi + o);
            }
        }
    // per (row, head): top-k of the k² candidate sums, softmax over those k; then y = Σ_h Σ_j w·V[I]
    // over the row's H·k selections in (h, j) order, each value row prefetched PKM_PREFETCH selections
    // ahead (a gather from a table far larger than the caches waits on memory, not on arithmetic)
    const float *V = p->values->data;
    int HK = H * k;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < N; r++) {
        for (int h = 0; h < H; h++) {
            size_t o = ((size_t)r * H + h) * 2 * k, oj = ((size_t)r * H + h) * k;
            float *w = a.w + oj;
            int32_t *sl = a.idx + oj;
            topk_product(hv + o, hi + o, hv + o + k, hi + o + k, k, n, w, sl);
            float mx = w[0], sum = 0.0f;  // w[0] is the largest score
            for (int j = 0; j < k; j++) {
                w[j] = expf(w[j] - mx);
                sum += w[j];
            }
            float inv = 1.0f / sum;
            for (int j = 0; j < k; j++) w[j] *= inv;
        }
        const float *w = a.w + (size_t)r * HK;
        const int32_t *sl = a.idx + (size_t)r * HK;
        float *yr = y + (size_t)r * C;
        for (int c = 0; c < C; c++) yr[c] = 0.0f;
        const float *src[ROWS_CHUNK];
        for (int e0 = 0; e0 < HK; e0 += ROWS_CHUNK) {
            int m = HK - e0 < ROWS_CHUNK ? HK - e0 : ROWS_CHUNK;
            for (int e = 0; e < m; e++) src[e] = V + (size_t)sl[e0 + e] * C;
            for (int e = 0; e < PKM_PREFETCH && e < m; e++) prefetch_row(src[e], C);
            add_weighted_rows(yr, C, w + e0, src, m, 1);
        }
    }
    if (p->stats_on) {  // evaluation statistics: serial, O(N·H·k)
        for (size_t j = 0; j < (size_t)N * H * k; j++) {
            p->slot_w[a.idx[j]] += a.w[j];
            p->slot_hit[a.idx[j]] = 1;
            p->total_w += a.w[j];
        }
        p->hits += (long long)N * H * k;
    }
}

static void pkm_forward(block_t *b, float *y, const float *x, float *act, float *scratch, int B, int T,
                        const run_ctx_t *rc) {
    pkm_run(b->priv, y, x, act, scratch, B * T, b->dims->dim);
}

// ---------------------------------------------------------------------------------------------
// backward. Selected slots I are constants; per row r, head h, j < k (g = dy_r):
//   y = Σ w_j V[I_j]          →  dV[I_j] += w_j·g,   u_j = g·V[I_j]
//   w = softmax(s)            →  ds_j = w_j·(u_j − Σ_i w_i u_i)
//   s_j = σ1[a_j] + σ2[b_j]   (a_j = I_j / n, b_j = I_j mod n: the sub-keys that made slot I_j)
//   σ1[a] = K1[a]·q1          →  dq1 += ds_j·K1[a_j],  dK1[a_j] += ds_j·q1   (likewise half 2 with b_j)
// then the LayerNorm backward and dx += dq·Wq, dWq += dqᵀ·x, dbq += Σ dq. Only the rows of K1, K2
// and V that were selected receive gradient; a slot selected several times (by other heads, rows or
// batch entries) accumulates every contribution.

// The selections idx[0..NK) (slots < slots_n) as (slot << 32 | selection index), sorted by slot, ties in
// selection order: an LSD radix sort (stable) with digits of at most 8 bits, between a and b (NK each),
// with digit counts in offs (SORT_MAX_THREADS rows); returns the one holding the result. O(NK · passes),
// no comparison. Threads split the array into contiguous chunks; each pass counts digits per chunk, and
// chunk t's share of digit d goes after every smaller digit and after chunks < t's share of d — the
// serial sort's placement exactly.
static uint64_t *sort_by_slot(const int32_t *idx, size_t NK, int slots_n, uint64_t *a, uint64_t *b,
                              size_t (*offs)[256]) {
    int bits = 1;
    while ((1L << bits) < slots_n) bits++;
    int passes = (bits + 7) / 8, digit = (bits + passes - 1) / passes;
    size_t buckets = (size_t)1 << digit;
    int nthreads = 1;
#ifdef _OPENMP
    nthreads = omp_get_max_threads() < SORT_MAX_THREADS ? omp_get_max_threads() : SORT_MAX_THREADS;
    if (NK < 16384) nthreads = 1;
#endif
    (void)nthreads;  // read only by the pragma below (ignored without OpenMP)
#pragma omp parallel num_threads(nthreads)
    {
        int nt = 1, t = 0;
#ifdef _OPENMP
        nt = omp_get_num_threads();
        t = omp_get_thread_num();
#endif
        size_t i0 = NK * (size_t)t / nt, i1 = NK * (size_t)(t + 1) / nt;
        uint64_t *src = a, *dst = b;
        for (size_t i = i0; i < i1; i++) src[i] = (uint64_t)(uint32_t)idx[i] << 32 | i;
        for (int pass = 0; pass < passes; pass++) {
            int shift = 32 + pass * digit;
            uint64_t mask = buckets - 1;
            size_t *cnt = offs[t];
            memset(cnt, 0, buckets * sizeof *cnt);
            for (size_t i = i0; i < i1; i++) cnt[(src[i] >> shift) & mask]++;
#pragma omp barrier
#pragma omp single
            {
                size_t sum = 0;
                for (size_t d = 0; d < buckets; d++)
                    for (int u = 0; u < nt; u++) {
                        size_t c = offs[u][d];
                        offs[u][d] = sum;
                        sum += c;
                    }
            }  // implicit barrier
            for (size_t i = i0; i < i1; i++) dst[cnt[(src[i] >> shift) & mask]++] = src[i];
#pragma omp barrier
            uint64_t *tt = src;
            src = dst;
            dst = tt;
        }
    }
    return passes % 2 ? b : a;
}

// The first position ≥ i that starts a run of one slot in sorted selections (NK at the end).
static size_t slot_run_start(const uint64_t *sel, size_t NK, size_t i) {
    while (i > 0 && i < NK && sel[i] >> 32 == sel[i - 1] >> 32) i++;
    return i;
}

static void pkm_backward(block_t *b, float *dx, const float *dy, const float *x, const float *act, float *scratch,
                         int B, int T, const run_ctx_t *rc) {
    pkm_t *p = b->priv;
    int N = B * T, C = b->dims->dim, H = p->H, dk = p->dk, half = p->half, n = p->n, k = p->k, Q = H * dk;
    pkm_act_t a = act_views(p, (float *)act, (size_t)N);
    float *dqn = scratch, *dqpre = dqn + (size_t)N * Q, *ds = dqpre + (size_t)N * Q;
    const float *V = p->values->data;
    // The N·H·k selections, sorted by slot with a stable sort, list each slot's selections in selection
    // order (r, h, j) — the order a plain walk over the selections adds their dV terms in. One walk of
    // the sorted list reads each selected value row V[s] and gradient row dV[s] once, ascending through
    // memory (rows requested PKM_SCATTER_AHEAD selections ahead): u_j = g·V[I_j] for each of the slot's
    // selections, and dV[s] += Σ_j w_j·g in that order. Threads own runs of whole slots: no two write one
    // element, and every element sums in the same order whatever the thread count. The touched list
    // receives the slots in ascending order (what the optimizer's walks then follow).
    size_t NK = (size_t)N * H * k;
    uint32_t HK = (uint32_t)H * (uint32_t)k;
    uintptr_t at = (uintptr_t)(ds + NK);
    uint64_t *sel_base = (uint64_t *)((at + 7) & ~(uintptr_t)7), *sel = sel_base, *tmp = sel + NK;
    sel = sort_by_slot(a.idx, NK, p->slots, sel, tmp, (size_t (*)[256])(tmp + NK));
    for (size_t i = 0; i < NK; i++)
        if (i == 0 || sel[i] >> 32 != sel[i - 1] >> 32) params_touch_row(p->values, (size_t)(sel[i] >> 32));
    float *dV = p->values->grad;
#pragma omp parallel
    {
        int nt = 1, t = 0;
#ifdef _OPENMP
        nt = omp_get_num_threads();
        t = omp_get_thread_num();
#endif
        size_t i0 = slot_run_start(sel, NK, NK * (size_t)t / nt), i1 = slot_run_start(sel, NK, NK * (size_t)(t + 1) / nt);
        const float *src[ROWS_CHUNK];
        float wts[ROWS_CHUNK];
        for (size_t i = i0; i < i1;) {  // one slot's run of selections, ROWS_CHUNK at a time
            uint64_t slot = sel[i] >> 32;
            if (i + PKM_SCATTER_AHEAD < i1) {
                size_t ahead = (sel[i + PKM_SCATTER_AHEAD] >> 32) * C;
                prefetch_row(V + ahead, C);
                prefetch_row_w(dV + ahead, C);
            }
            const float *v = V + slot * C;
            int m = 0;
            for (; i < i1 && sel[i] >> 32 == slot && m < ROWS_CHUNK; i++, m++) {
                uint32_t j = (uint32_t)sel[i];
                const float *g = dy + (size_t)(j / HK) * C;
                float u = 0.0f;
#pragma omp simd reduction(+ : u)
                for (int c = 0; c < C; c++) u += g[c] * v[c];
                ds[j] = u;
                src[m] = g;
                wts[m] = a.w[j];
            }
            add_weighted_rows(dV + slot * C, C, wts, src, m, 0);
        }
    }
    // the softmax backward per (row, head): ds_j = w_j·(u_j − Σ_i w_i·u_i), u_j in ds
#pragma omp parallel for schedule(static)
    for (int r = 0; r < N; r++)
        for (int h = 0; h < H; h++) {
            size_t oj = ((size_t)r * H + h) * k;
            const float *w = a.w + oj;
            float *d = ds + oj, wu = 0.0f;
            for (int j = 0; j < k; j++) wu += w[j] * d[j];
            for (int j = 0; j < k; j++) d[j] = w[j] * (d[j] - wu);
        }
    // dq1 += ds_j·K1[a_j], dq2 += ds_j·K2[b_j] (per row)
    memset(dqn, 0, (size_t)N * Q * sizeof(float));
    memset(dqpre, 0, (size_t)N * Q * sizeof(float));
    const float *Kd = p->keys->data;
    double inv_n = 1.0 / n;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < N; r++)
        for (int h = 0; h < H; h++) {
            size_t oj = ((size_t)r * H + h) * k;
            float *dq1 = dqn + (size_t)r * Q + (size_t)h * dk, *dq2 = dq1 + half;
            const float *K1 = Kd + (size_t)h * 2 * n * half, *K2 = K1 + (size_t)n * half;
            const float *s1[ROWS_CHUNK], *s2[ROWS_CHUNK];
            for (int j0 = 0; j0 < k; j0 += ROWS_CHUNK) {
                int m = k - j0 < ROWS_CHUNK ? k - j0 : ROWS_CHUNK;
                for (int j = 0; j < m; j++) {
                    int32_t sl = a.idx[oj + j0 + j];
                    s1[j] = K1 + (size_t)sub_key(sl, n, inv_n, 0) * half;
                    s2[j] = K2 + (size_t)sub_key(sl, n, inv_n, 1) * half;
                }
                add_weighted_rows(dq1, half, ds + oj + j0, s1, m, 0);
                add_weighted_rows(dq2, half, ds + oj + j0, s2, m, 0);
            }
        }
    // dK1[a_j] += ds_j·q1, dK2[b_j] += ds_j·q2: one task per (head, half), which owns its table (no races).
    // A sub-key row is shared by many rows and selections; its terms are added in (r, j) order: a stable
    // counting sort of the task's N·k selections by sub-key row (into the radix sort's arrays, free now),
    // then each row's terms summed in registers (add_weighted_rows).
    float *dK = p->keys->grad;
    // (2H, N·k) selection indices and (2H, N·k) rows: 4·NK int32, the sort's two NK uint64 arrays
    int32_t *by_sel = (int32_t *)sel_base, *by_r = by_sel + 2 * NK;
#pragma omp parallel for schedule(static)
    for (int hf = 0; hf < 2 * H; hf++) {
        int h = hf / 2, f = hf % 2;
        float *dKt = dK + (size_t)hf * n * half;
        int32_t *og = by_sel + (size_t)hf * N * k, *orow = by_r + (size_t)hf * N * k;
        int cnt[PKM_MAX_N + 1];
        memset(cnt, 0, (size_t)(n + 1) * sizeof *cnt);
        for (int r = 0; r < N; r++)
            for (size_t o = ((size_t)r * H + h) * k, j = 0; j < (size_t)k; j++) cnt[sub_key(a.idx[o + j], n, inv_n, f) + 1]++;
        for (int u = 0; u < n; u++) cnt[u + 1] += cnt[u];
        for (int r = 0; r < N; r++)
            for (size_t o = ((size_t)r * H + h) * k, j = 0; j < (size_t)k; j++) {
                int at_u = cnt[sub_key(a.idx[o + j], n, inv_n, f)]++;
                og[at_u] = (int32_t)(o + j);
                orow[at_u] = r;
            }
        const float *src[ROWS_CHUNK];
        float wts[ROWS_CHUNK];
        for (int u = 0, i = 0; u < n; u++)  // row u's terms: og[cnt[u − 1] .. cnt[u]), in (r, j) order
            while (i < cnt[u]) {
                int m = 0;
                for (; i < cnt[u] && m < ROWS_CHUNK; i++, m++) {
                    src[m] = a.qn + (size_t)orow[i] * Q + (size_t)h * dk + (size_t)f * half;
                    wts[m] = ds[og[i]];
                }
                add_weighted_rows(dKt + (size_t)u * half, half, wts, src, m, 0);
            }
    }
    layernorm_backward(dqpre, p->lnw->grad, p->lnb->grad, dqn, a.qpre, p->lnw->data, a.mean, a.rstd, N * H * 2, half);
    matmul_backward(dx, p->wq->grad, p->bq->grad, dqpre, x, p->wq->data, N, C, Q);
}

// ---------------------------------------------------------------------------------------------
// decoding: a lookup per token, no cache; the forward on one row

static size_t pkm_cache_floats(const block_t *b) { return 0; }
static size_t pkm_decode_scratch_floats(const block_t *b) { return act_size(b->priv, 1) + scratch_size(b->priv, 1); }

static void pkm_decode_step(block_t *b, float *y, const float *x, int pos, float *cache, float *scratch) {
    pkm_run(b->priv, y, x, scratch, scratch + act_size(b->priv, 1), 1, b->dims->dim);
}

// ---------------------------------------------------------------------------------------------
// usage statistics (the paper's memory-health figures)

static void pkm_stats_begin(block_t *b) {
    pkm_t *p = b->priv;
    if (!p->slot_w) {
        p->slot_w = xcalloc((size_t)p->slots, sizeof *p->slot_w);
        p->slot_hit = xcalloc((size_t)p->slots, 1);
    } else {
        memset(p->slot_w, 0, (size_t)p->slots * sizeof *p->slot_w);
        memset(p->slot_hit, 0, (size_t)p->slots);
    }
    p->total_w = 0;
    p->hits = 0;
    p->stats_on = 1;
}

void pkm_usage(const block_t *b, double *used_frac, double *kl) {
    const pkm_t *p = b->priv;
    long used = 0;
    double s = 0;
    for (int i = 0; i < p->slots; i++) {
        used += p->slot_hit[i];
        if (p->slot_w[i] > 0) {
            double q = p->slot_w[i] / p->total_w;
            s += q * log(q * p->slots);
        }
    }
    *used_frac = (double)used / p->slots;
    *kl = s;
}

// The fraction of slots selected since stats_begin, −1 when nothing was counted.
static double pkm_stats_usage(const block_t *b) {
    const pkm_t *p = b->priv;
    if (!p->slot_w || !p->hits) return -1;
    double frac, kl;
    pkm_usage(b, &frac, &kl);
    return frac;
}

static void pkm_stats_report(block_t *b, char *buf, size_t n) {
    pkm_t *p = b->priv;
    buf[0] = 0;
    if (!p->slot_w || !p->stats_on) return;
    p->stats_on = 0;
    if (!p->hits) return;
    double frac, kl;
    pkm_usage(b, &frac, &kl);
    snprintf(buf, n, "pkm layer %d: %.1f%% of %d slots selected (%.0f), KL(slot weights || uniform) %.3f nats over %lld selections",
             b->layer, 100.0 * frac, p->slots, frac * p->slots, kl, p->hits);
}

// ---------------------------------------------------------------------------------------------
// views for tests and benchmarks

const int32_t *pkm_act_slots(const block_t *b, const float *act, int N) {
    return act_views(b->priv, (float *)act, (size_t)N).idx;
}
const float *pkm_act_weights(const block_t *b, const float *act, int N) {
    return act_views(b->priv, (float *)act, (size_t)N).w;
}
const float *pkm_act_query(const block_t *b, const float *act, int N) { return act; }
void pkm_shape(const block_t *b, int *slots, int *k, int *heads, int *dk) {
    const pkm_t *p = b->priv;
    *slots = p->slots;
    *k = p->k;
    *heads = p->H;
    *dk = p->dk;
}

static const char *const pkm_examples[] = {"pkm(slots=16,k=2,heads=1,dk=6)", "pkm(slots=36,k=3,heads=2,dk=8)", NULL};

const block_ops_t ffn_pkm_ops = {
    .kind = "pkm",
    .role = ROLE_FFN,
    .options = "slots, k, heads, dk",
    .examples = pkm_examples,
    .configure = pkm_configure,
    .describe = pkm_describe,
    .register_params = pkm_register,
    .act_floats = pkm_act_floats,
    .scratch_floats = pkm_scratch_floats,
    .forward = pkm_forward,
    .backward = pkm_backward,
    .cache_floats = pkm_cache_floats,
    .decode_scratch_floats = pkm_decode_scratch_floats,
    .decode_step = pkm_decode_step,
    .free_priv = pkm_free,
    .stats_begin = pkm_stats_begin,
    .stats_report = pkm_stats_report,
    .stats_usage = pkm_stats_usage,
};
