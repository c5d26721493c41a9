// grad_sync.c — gradient summation over the ranks (see grad_sync.h).
#include "dist/grad_sync.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/check.h"
#include "dist/dist.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void grad_sync_init(grad_sync_t *g, const param_table_t *pt) {
    *g = (grad_sync_t){0};
    g->run_off = xcalloc((size_t)pt->count + 1, sizeof *g->run_off);
    g->run_len = xcalloc((size_t)pt->count + 1, sizeof *g->run_len);
    for (int i = 0; i < pt->count; i++) {  // merge tensors adjacent in the arena
        const param_t *p = pt->items[i];
        if (!p->trainable || p->sparse_rows) continue;
        if (g->n_runs && g->run_off[g->n_runs - 1] + g->run_len[g->n_runs - 1] == p->offset) {
            g->run_len[g->n_runs - 1] += p->numel;
        } else {
            g->run_off[g->n_runs] = p->offset;
            g->run_len[g->n_runs++] = p->numel;
        }
    }
    g->counts = xcalloc((size_t)dist_size(), sizeof *g->counts);
}

// v[0..n) summed over the ranks in buckets of GRAD_SYNC_BUCKET floats, in order.
static void sum_in_buckets(grad_sync_t *g, float *v, size_t n) {
    for (size_t done = 0; done < n; done += GRAD_SYNC_BUCKET) {
        size_t len = n - done < GRAD_SYNC_BUCKET ? n - done : GRAD_SYNC_BUCKET;
        dist_sum_floats(v + done, len);
        g->buckets++;
    }
    g->floats += (double)n;
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return p;
    size_t n = *cap ? *cap : 1024;
    while (n < need) n *= 2;
    void *q = realloc(p, n * elem);
    if (!q) die(EXIT_RUNTIME, "out of memory (gradient sync, %zu bytes)", n * elem);
    *cap = n;
    return q;
}

// A sparse-rows tensor: the union of every rank's touched rows in canonical order, then their sum.
static void sum_sparse(grad_sync_t *g, param_t *p) {
    int size = dist_size();
    dist_allgather_int((int)p->n_touched, g->counts);
    size_t total = 0;
    for (int r = 0; r < size; r++) total += (size_t)g->counts[r];
    g->rows = grow(g->rows, &g->rows_cap, total ? total : 1, sizeof *g->rows);
    dist_allgatherv_i32(p->touched, (int)p->n_touched, g->rows, g->counts);
    // Rebuild the list: forget this rank's order, then touch every rank's rows in rank order. Rows new to
    // this rank have zero gradient here (a sparse gradient is zero outside its touched rows).
    for (size_t i = 0; i < p->n_touched; i++) p->row_mark[p->touched[i]] = 0;
    p->n_touched = 0;
    for (size_t i = 0; i < total; i++) params_touch_row(p, (size_t)g->rows[i]);
    size_t cols = p->numel / (size_t)p->shape[0], n = p->n_touched * cols;
    g->pack = grow(g->pack, &g->pack_cap, n ? n : 1, sizeof *g->pack);
    for (size_t i = 0; i < p->n_touched; i++)
        memcpy(g->pack + i * cols, p->grad + (size_t)p->touched[i] * cols, cols * sizeof(float));
    sum_in_buckets(g, g->pack, n);
    for (size_t i = 0; i < p->n_touched; i++)
        memcpy(p->grad + (size_t)p->touched[i] * cols, g->pack + i * cols, cols * sizeof(float));
}

void grad_sync_run(grad_sync_t *g, param_table_t *pt) {
    if (dist_size() == 1) return;
    // A barrier first, so that the time of the sums is the transfers' alone, not a wait for a slower rank.
    double t_wait = now();
    dist_barrier();
    double t0 = now();
    g->wait_seconds += t0 - t_wait;
    for (int r = 0; r < g->n_runs; r++) sum_in_buckets(g, pt->grad + g->run_off[r], g->run_len[r]);
    for (int i = 0; i < pt->count; i++)
        if (pt->items[i]->trainable && pt->items[i]->sparse_rows) sum_sparse(g, pt->items[i]);
    g->seconds += now() - t0;
    g->calls++;
}

void grad_sync_free(grad_sync_t *g) {
    free(g->run_off);
    free(g->run_len);
    free(g->counts);
    free(g->rows);
    free(g->pack);
    *g = (grad_sync_t){0};
}

static uint64_t fnv1a_words(uint64_t h, const float *v, size_t n) {
    const uint32_t *w = (const uint32_t *)(const void *)v;
    for (size_t i = 0; i < n; i++) h = (h ^ w[i]) * 0x100000001b3ull;
    return h;
}

uint64_t grad_sync_state_hash(const param_table_t *pt) {
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv1a_words(h, pt->data, pt->total);
    h = fnv1a_words(h, pt->m, pt->total);
    return fnv1a_words(h, pt->v, pt->total);
}
