// bpe.c — byte-level BPE vocabulary and tiktoken's rank-based encoding (see bpe.h).
#include "tokenizer/bpe.h"

#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "tokenizer/u64map.h"

// 63-bit FNV-1a of a byte string (the top bit cleared: U64MAP_EMPTY is never a key).
static uint64_t bytes_key(const uint8_t *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
    return h & ~(1ull << 63);
}

static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }

// Id of the token with bytes s[0..n), or -1.
static int32_t lookup_bytes(const bpe_t *b, const uint8_t *s, size_t n) {
    if (n == 1) return s[0];
    const int64_t *v = u64map_find(b->piece_id, bytes_key(s, n));
    if (!v) return -1;
    size_t len;
    const uint8_t *t = bpe_token(b, (int32_t)*v, &len);
    return len == n && memcmp(t, s, n) == 0 ? (int32_t)*v : -1;
}

int bpe_build(bpe_t *b, const int32_t *merges, int n_merges, char *err, size_t errlen) {
    memset(b, 0, sizeof *b);
    CHECK(n_merges >= 0);
    int V = 256 + n_merges;
    size_t blob_len = 256;
    for (int i = 0; i < n_merges; i++) {
        int32_t l = merges[2 * i], r = merges[2 * i + 1];
        int32_t bad = l < 0 || l >= 256 + i ? l : r < 0 || r >= 256 + i ? r : -1;
        if (bad != -1 || l < 0 || r < 0)
            return seterr(err, errlen, "merge %d refers to token %d, which is not defined before it (tokens 0..%d)", i,
                          (int)bad, 255 + i);
    }
    b->vocab = V;
    b->merges = xmalloc((size_t)(n_merges ? n_merges : 1) * 2 * sizeof(int32_t));
    memcpy(b->merges, merges, (size_t)n_merges * 2 * sizeof(int32_t));
    b->offsets = xmalloc((size_t)(V + 1) * sizeof(uint32_t));
    // Lengths first (each merge's = the sum of its parts'), then the bytes.
    uint64_t *lens = xmalloc((size_t)V * sizeof *lens);
    for (int i = 0; i < 256; i++) lens[i] = 1;
    for (int i = 0; i < n_merges; i++) {
        lens[256 + i] = lens[merges[2 * i]] + lens[merges[2 * i + 1]];
        blob_len += lens[256 + i];
        if (blob_len > UINT32_MAX) {
            free(lens);
            bpe_free(b);
            return seterr(err, errlen, "merge %d makes the vocabulary's bytes exceed 4 GiB", i);
        }
    }
    b->blob = xmalloc(blob_len);
    uint32_t off = 0;
    for (int i = 0; i < 256; i++) {
        b->offsets[i] = off;
        b->blob[off++] = (uint8_t)i;
    }
    b->piece_id = xmalloc(sizeof(u64map_t));
    b->pair_rank = xmalloc(sizeof(u64map_t));
    u64map_init(b->piece_id, (size_t)V);
    u64map_init(b->pair_rank, (size_t)V * 4);
    b->max_token_bytes = 1;
    for (int i = 0; i < n_merges; i++) {
        int32_t id = 256 + i;
        b->offsets[id] = off;
        size_t ll, rl;
        const uint8_t *lb = bpe_token(b, merges[2 * i], &ll);
        memcpy(b->blob + off, lb, ll);
        const uint8_t *rb = bpe_token(b, merges[2 * i + 1], &rl);
        memcpy(b->blob + off + ll, rb, rl);
        b->offsets[id + 1] = off + (uint32_t)(ll + rl);  // provisional, for the lookup below
        int32_t dup = lookup_bytes(b, b->blob + off, ll + rl);
        if (dup >= 0) {
            free(lens);
            bpe_free(b);
            return seterr(err, errlen, "merge %d repeats the bytes of token %d", i, (int)dup);
        }
        int fresh;
        int64_t *slot = u64map_put(b->piece_id, bytes_key(b->blob + off, ll + rl), id, &fresh);
        (void)slot;  // a 63-bit hash collision keeps the first token; lookups compare bytes
        off += (uint32_t)(ll + rl);
        if (ll + rl > b->max_token_bytes) b->max_token_bytes = ll + rl;
    }
    b->offsets[V] = off;
    free(lens);
    // Every split of every token into two tokens is a mergeable pair of that token's rank.
    for (int32_t id = 256; id < V; id++) {
        size_t len;
        const uint8_t *s = bpe_token(b, id, &len);
        for (size_t k = 1; k < len; k++) {
            int32_t l = lookup_bytes(b, s, k), r = l < 0 ? -1 : lookup_bytes(b, s + k, len - k);
            if (l >= 0 && r >= 0) *u64map_put(b->pair_rank, pair_key(l, r), id, NULL) = id;
        }
    }
    char perr[256];
    b->split = pretok_new(perr, sizeof perr);
    if (!b->split) {
        bpe_free(b);
        return seterr(err, errlen, "%s", perr);
    }
    return 0;
}

void bpe_free(bpe_t *b) {
    free(b->merges);
    free(b->offsets);
    free(b->blob);
    if (b->pair_rank) u64map_free(b->pair_rank);
    if (b->piece_id) u64map_free(b->piece_id);
    free(b->pair_rank);
    free(b->piece_id);
    pretok_free(b->split);
    memset(b, 0, sizeof *b);
}

// ---------------------------------------------------------------------------- encoding

static void push_id(int32_t id, int32_t **out, size_t *n, size_t *cap) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        int32_t *grown = realloc(*out, *cap * sizeof **out);
        if (!grown) die(EXIT_RUNTIME, "out of memory (BPE tokens)");
        *out = grown;
    }
    (*out)[(*n)++] = id;
}

// A candidate merge: the pair starting at part pos, whose ids were (a, b) when it was queued.
typedef struct {
    int32_t rank, pos, a, b;
} cand_t;

static int cand_before(const cand_t *x, const cand_t *y) {
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static void heap_push(cand_t *h, int *n, cand_t c) {
    int i = (*n)++;
    while (i > 0 && cand_before(&c, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = c;
}

static cand_t heap_pop(cand_t *h, int *n) {
    cand_t top = h[0], last = h[--*n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && cand_before(&h[c + 1], &h[c])) c++;
        if (!cand_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = last;
    return top;
}

// Parts are a linked list over the piece's byte positions (a merged part keeps its left position,
// so list order is position order and "leftmost" is "smallest pos"). The heap holds every
// adjacent pair that is a token, keyed (rank, pos); an entry is stale once either part changed.
enum { SMALL_PIECE = 64 };

void bpe_encode_piece(const bpe_t *b, const uint8_t *piece, size_t len, int32_t **out, size_t *n, size_t *cap) {
    int32_t whole = lookup_bytes(b, piece, len);
    if (whole >= 0) {
        push_id(whole, out, n, cap);
        return;
    }
    int32_t small_id[SMALL_PIECE], small_next[SMALL_PIECE], small_prev[SMALL_PIECE];
    cand_t small_heap[3 * SMALL_PIECE];
    int32_t *id = small_id, *next = small_next, *prev = small_prev;
    cand_t *heap = small_heap;
    if (len > SMALL_PIECE) {
        if (len > INT32_MAX / 4) die(EXIT_RUNTIME, "a pre-tokenized piece of %zu bytes is too long for BPE", len);
        id = xmalloc(len * sizeof *id);
        next = xmalloc(len * sizeof *next);
        prev = xmalloc(len * sizeof *prev);
        heap = xmalloc(3 * len * sizeof *heap);
    }
    int L = (int)len, nh = 0;
    for (int i = 0; i < L; i++) {
        id[i] = piece[i];
        next[i] = i + 1 < L ? i + 1 : -1;
        prev[i] = i - 1;
    }
    for (int i = 0; i + 1 < L; i++) {
        const int64_t *r = u64map_find(b->pair_rank, pair_key(id[i], id[i + 1]));
        if (r) heap_push(heap, &nh, (cand_t){(int32_t)*r, i, id[i], id[i + 1]});
    }
    while (nh > 0) {
        cand_t c = heap_pop(heap, &nh);
        int p = c.pos, q = next[p];
        if (id[p] != c.a || q < 0 || id[q] != c.b) continue;  // stale: a part changed since
        id[p] = c.rank;  // merge q into p
        next[p] = next[q];
        if (next[q] >= 0) prev[next[q]] = p;
        id[q] = -1;
        if (prev[p] >= 0) {
            int o = prev[p];
            const int64_t *r = u64map_find(b->pair_rank, pair_key(id[o], id[p]));
            if (r) heap_push(heap, &nh, (cand_t){(int32_t)*r, o, id[o], id[p]});
        }
        if (next[p] >= 0) {
            int o = next[p];
            const int64_t *r = u64map_find(b->pair_rank, pair_key(id[p], id[o]));
            if (r) heap_push(heap, &nh, (cand_t){(int32_t)*r, p, id[p], id[o]});
        }
    }
    for (int i = 0; i >= 0; i = next[i]) push_id(id[i], out, n, cap);
    if (len > SMALL_PIECE) {
        free(id);
        free(next);
        free(prev);
        free(heap);
    }
}

typedef struct {
    const bpe_t *b;
    int32_t **out;
    size_t *n, *cap;
} encode_ctx_t;

static void encode_piece_cb(void *ctx, const uint8_t *piece, size_t len) {
    encode_ctx_t *e = ctx;
    bpe_encode_piece(e->b, piece, len, e->out, e->n, e->cap);
}

size_t bpe_encode(const bpe_t *b, const uint8_t *text, size_t n, int final, int32_t **out, size_t *n_out, size_t *cap) {
    encode_ctx_t e = {b, out, n_out, cap};
    return pretok_split(b->split, text, n, final, encode_piece_cb, &e);
}
