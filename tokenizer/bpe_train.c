// bpe_train.c — BPE merges learned from piece counts (see bpe_train.h).
//
// Data: each distinct piece of two or more bytes is a word w with a count c_w and its current
// tokens. For each pair (a, b): count(a, b) = Σ_w c_w · #{adjacent (a, b) in w}, and the words
// it occurs in (a list that may hold words where it no longer occurs; checked on use). A max-heap
// of (count, a, b) entries, pushed whenever a count changes; an entry whose count is no longer
// the pair's is skipped when popped. Merging (a, b): for each word on its list, remove the word's
// pairs from the counts, rewrite the word, add its pairs back (new pairs hold the new token, and
// the word joins their lists).
#include "tokenizer/bpe_train.h"

#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "tokenizer/pretok.h"
#include "tokenizer/u64map.h"

struct bpe_counts {
    pretok_t *split;
    u64map_t index;      // probe key (from the piece's hash) -> word index
    uint8_t *bytes;      // the distinct pieces, concatenated
    size_t n_bytes, cap_bytes;
    struct word { size_t off; uint32_t len; int64_t count; } *words;
    size_t n_words, cap_words;
};

static void *grow(void *p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return p;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(p, c * elem);
    if (!q) die(EXIT_RUNTIME, "out of memory (BPE training)");
    *cap = c;
    return q;
}

bpe_counts_t *bpe_counts_new(char *err, size_t errlen) {
    pretok_t *split = pretok_new(err, errlen);
    if (!split) return NULL;
    bpe_counts_t *c = xcalloc(1, sizeof *c);
    c->split = split;
    u64map_init(&c->index, 1024);
    return c;
}

void bpe_counts_free(bpe_counts_t *c) {
    if (!c) return;
    pretok_free(c->split);
    u64map_free(&c->index);
    free(c->bytes);
    free(c->words);
    free(c);
}

static void count_piece(void *ctx, const uint8_t *s, size_t n) {
    bpe_counts_t *c = ctx;
    if (n < 2) return;  // nothing to merge in one byte
    if (n > UINT32_MAX) die(EXIT_RUNTIME, "a pre-tokenized piece of %zu bytes is too long for BPE", n);
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
    for (uint64_t probe = 0;; probe++) {  // distinct pieces with equal hashes take the next keys
        uint64_t key = (h + probe * 0x9e3779b97f4a7c15ull) & ~(1ull << 63);
        int fresh;
        int64_t *slot = u64map_put(&c->index, key, (int64_t)c->n_words, &fresh);
        if (fresh) {
            c->bytes = grow(c->bytes, &c->cap_bytes, c->n_bytes + n, 1);
            memcpy(c->bytes + c->n_bytes, s, n);
            c->words = grow(c->words, &c->cap_words, c->n_words + 1, sizeof *c->words);
            c->words[c->n_words++] = (struct word){c->n_bytes, (uint32_t)n, 1};
            c->n_bytes += n;
            return;
        }
        struct word *w = &c->words[*slot];
        if (w->len == n && memcmp(c->bytes + w->off, s, n) == 0) {
            w->count++;
            return;
        }
    }
}

size_t bpe_counts_add(bpe_counts_t *c, const uint8_t *s, size_t n, int final) {
    return pretok_split(c->split, s, n, final, count_piece, c);
}

// ---------------------------------------------------------------------------- learning

typedef struct {
    int64_t count;
    int32_t a, b;
    uint32_t *words;  // words it occurs in (maybe stale); consecutive duplicates suppressed
    size_t n_words, cap_words;
    int stamp;        // the last merge step that queued it
} pair_t;

typedef struct {
    int64_t count;
    int32_t a, b;
} entry_t;

static int entry_above(const entry_t *x, const entry_t *y) {  // max-heap order: count, then smaller a, b
    if (x->count != y->count) return x->count > y->count;
    if (x->a != y->a) return x->a < y->a;
    return x->b < y->b;
}

typedef struct {
    entry_t *h;
    size_t n, cap;
} heap_t;

static void heap_push(heap_t *q, entry_t e) {
    q->h = grow(q->h, &q->cap, q->n + 1, sizeof *q->h);
    size_t i = q->n++;
    while (i > 0 && entry_above(&e, &q->h[(i - 1) / 2])) {
        q->h[i] = q->h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    q->h[i] = e;
}

static entry_t heap_pop(heap_t *q) {
    entry_t top = q->h[0], last = q->h[--q->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->n) break;
        if (c + 1 < q->n && entry_above(&q->h[c + 1], &q->h[c])) c++;
        if (!entry_above(&q->h[c], &last)) break;
        q->h[i] = q->h[c];
        i = c;
    }
    if (q->n > 0) q->h[i] = last;
    return top;
}

typedef struct {
    u64map_t index;  // (a << 32 | b) -> pair index
    pair_t *pairs;
    size_t n_pairs, cap_pairs;
    size_t *touched;  // pairs whose count changed in this step
    size_t n_touched, cap_touched;
    heap_t heap;
    int step;
} learner_t;

static size_t pair_of(learner_t *L, int32_t a, int32_t b) {
    int fresh;
    int64_t *slot = u64map_put(&L->index, (uint64_t)(uint32_t)a << 32 | (uint32_t)b, (int64_t)L->n_pairs, &fresh);
    if (fresh) {
        L->pairs = grow(L->pairs, &L->cap_pairs, L->n_pairs + 1, sizeof *L->pairs);
        L->pairs[L->n_pairs] = (pair_t){.a = a, .b = b, .stamp = -1};
        return L->n_pairs++;
    }
    return (size_t)*slot;
}

// Add delta · c_w to every adjacent pair of word w's tokens t[0..n). w joins the lists of every
// pair (join_id −1), of the pairs that hold token join_id (≥ 0), or of none (−2).
static void add_pairs(learner_t *L, const int32_t *t, uint32_t n, uint32_t w, int64_t delta, int32_t join_id) {
    for (uint32_t i = 0; i + 1 < n; i++) {
        size_t p = pair_of(L, t[i], t[i + 1]);
        pair_t *pp = &L->pairs[p];
        pp->count += delta;
        if (pp->stamp != L->step) {
            pp->stamp = L->step;
            L->touched = grow(L->touched, &L->cap_touched, L->n_touched + 1, sizeof *L->touched);
            L->touched[L->n_touched++] = p;
        }
        if ((join_id == -1 || (join_id >= 0 && (t[i] == join_id || t[i + 1] == join_id))) && (pp->n_words == 0 || pp->words[pp->n_words - 1] != w)) {
            pp->words = grow(pp->words, &pp->cap_words, pp->n_words + 1, sizeof *pp->words);
            pp->words[pp->n_words++] = w;
        }
    }
}

int bpe_learn(bpe_counts_t *c, int vocab, int32_t **merges_out, char *err, size_t errlen) {
    *merges_out = NULL;
    if (vocab < 257) return seterr(err, errlen, "--vocab %d: a BPE vocabulary needs at least 257 tokens (256 bytes and one merge)", vocab);
    int want = vocab - 256;
    // Words' tokens in one array; word w's are tok[start[w], start[w] + len[w]) (len shrinks).
    size_t W = c->n_words;
    int32_t *tok = xmalloc((c->n_bytes ? c->n_bytes : 1) * sizeof *tok);
    for (size_t i = 0; i < c->n_bytes; i++) tok[i] = c->bytes[i];
    uint32_t *len = xmalloc((W ? W : 1) * sizeof *len);
    int *seen = xmalloc((W ? W : 1) * sizeof *seen);
    for (size_t w = 0; w < W; w++) {
        len[w] = c->words[w].len;
        seen[w] = -1;
    }
    // The tokens' bytes, to find a merge that repeats an existing token's bytes.
    size_t *tstart = xmalloc((size_t)vocab * sizeof *tstart), *tlen = xmalloc((size_t)vocab * sizeof *tlen);
    uint8_t *tbytes = NULL;
    size_t n_tbytes = 0, cap_tbytes = 0;
    u64map_t by_bytes;
    u64map_init(&by_bytes, (size_t)vocab);
    tbytes = grow(tbytes, &cap_tbytes, 256, 1);
    for (int i = 0; i < 256; i++) {
        tstart[i] = (size_t)i;
        tlen[i] = 1;
        tbytes[i] = (uint8_t)i;
    }
    n_tbytes = 256;

    learner_t L = {.step = -1};
    u64map_init(&L.index, 1 << 16);
    for (size_t w = 0; w < W; w++) add_pairs(&L, tok + c->words[w].off, len[w], (uint32_t)w, c->words[w].count, -1);
    for (size_t p = 0; p < L.n_pairs; p++) heap_push(&L.heap, (entry_t){L.pairs[p].count, L.pairs[p].a, L.pairs[p].b});
    L.n_touched = 0;

    int32_t *merges = xmalloc((size_t)want * 2 * sizeof *merges);
    int made = 0, rc = 0, ids = 256;
    for (int step = 0; made < want; step++) {
        entry_t e;
        size_t p = 0;
        int found = 0;
        while (L.heap.n > 0) {
            e = heap_pop(&L.heap);
            const int64_t *slot = u64map_find(&L.index, (uint64_t)(uint32_t)e.a << 32 | (uint32_t)e.b);
            p = (size_t)*slot;
            if (L.pairs[p].count == e.count && e.count > 0) {
                found = 1;
                break;
            }
        }
        if (!found) {
            rc = seterr(err, errlen, "--vocab %d is more than the training text supports: no pair is left after %d merges (vocab %d)",
                        vocab, made, 256 + made);
            break;
        }
        // The token for bytes(a) ‖ bytes(b): an existing one, or the next id.
        size_t la = tlen[e.a], lb = tlen[e.b], n = la + lb;
        tbytes = grow(tbytes, &cap_tbytes, n_tbytes + n, 1);
        memcpy(tbytes + n_tbytes, tbytes + tstart[e.a], la);
        memcpy(tbytes + n_tbytes + la, tbytes + tstart[e.b], lb);
        uint64_t h = 0xcbf29ce484222325ull;
        for (size_t i = 0; i < n; i++) h = (h ^ tbytes[n_tbytes + i]) * 0x100000001b3ull;
        int32_t new_id = -1;
        for (uint64_t probe = 0;; probe++) {
            uint64_t key = (h + probe * 0x9e3779b97f4a7c15ull) & ~(1ull << 63);
            const int64_t *v = u64map_find(&by_bytes, key);
            if (!v) {
                new_id = ids++;
                *u64map_put(&by_bytes, key, new_id, NULL) = new_id;
                tstart[new_id] = n_tbytes;
                tlen[new_id] = n;
                n_tbytes += n;
                merges[2 * made] = e.a;
                merges[2 * made + 1] = e.b;
                made++;
                break;
            }
            if (tlen[*v] == n && memcmp(tbytes + tstart[*v], tbytes + n_tbytes, n) == 0) {
                new_id = (int32_t)*v;  // the bytes are a token already: reuse it
                break;
            }
        }
        // Rewrite every word that holds (a, b).
        L.step = step;
        L.n_touched = 0;
        uint32_t *list = L.pairs[p].words;
        size_t n_list = L.pairs[p].n_words;
        L.pairs[p].words = NULL;  // rebuilt below: a word keeps (a, b) only if it still has it (it does not)
        L.pairs[p].n_words = L.pairs[p].cap_words = 0;
        for (size_t k = 0; k < n_list; k++) {
            uint32_t w = list[k];
            if (seen[w] == step) continue;
            seen[w] = step;
            int32_t *t = tok + c->words[w].off;
            uint32_t m = len[w], j = 0;
            int has = 0;
            for (uint32_t i = 0; i + 1 < m; i++)
                if (t[i] == e.a && t[i + 1] == e.b) has = 1;
            if (!has) continue;
            int64_t cw = c->words[w].count;
            add_pairs(&L, t, m, w, -cw, -2);
            for (uint32_t i = 0; i < m; i++) {
                if (i + 1 < m && t[i] == e.a && t[i + 1] == e.b) {
                    t[j++] = new_id;
                    i++;
                } else {
                    t[j++] = t[i];
                }
            }
            len[w] = j;
            add_pairs(&L, t, j, w, cw, new_id);
        }
        free(list);
        for (size_t k = 0; k < L.n_touched; k++) {
            pair_t *pp = &L.pairs[L.touched[k]];
            if (pp->count > 0) heap_push(&L.heap, (entry_t){pp->count, pp->a, pp->b});
        }
    }
    for (size_t p = 0; p < L.n_pairs; p++) free(L.pairs[p].words);
    free(L.pairs);
    free(L.touched);
    free(L.heap.h);
    u64map_free(&L.index);
    u64map_free(&by_bytes);
    free(tbytes);
    free(tstart);
    free(tlen);
    free(tok);
    free(len);
    free(seen);
    if (rc) {
        free(merges);
        return -1;
    }
    *merges_out = merges;
    return 0;
}
