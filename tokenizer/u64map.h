// u64map.h — an open-addressing hash map from 64-bit keys to 64-bit values (linear probing, load
// ≤ 1/2, grows by doubling), for BPE's pair and piece tables. The key UINT64_MAX is reserved
// (empty slot): callers' keys are token pairs (a << 32 | b, a and b < 2^31) or hashes with the top
// bit cleared.
#ifndef ATTNLAB_U64MAP_H
#define ATTNLAB_U64MAP_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"

#define U64MAP_EMPTY UINT64_MAX

typedef struct u64map {
    uint64_t *keys;
    int64_t *vals;
    size_t cap, count;  // cap a power of two
} u64map_t;

static inline uint64_t u64map_mix(uint64_t k) {  // splitmix64's finalizer
    k ^= k >> 30;
    k *= 0xbf58476d1ce4e5b9ull;
    k ^= k >> 27;
    k *= 0x94d049bb133111ebull;
    return k ^ (k >> 31);
}

static inline void u64map_init(u64map_t *m, size_t expect) {
    size_t cap = 16;
    while (cap < 2 * expect) cap *= 2;
    m->cap = cap;
    m->count = 0;
    m->keys = xmalloc(cap * sizeof *m->keys);
    m->vals = xmalloc(cap * sizeof *m->vals);
    memset(m->keys, 0xFF, cap * sizeof *m->keys);
}

static inline void u64map_free(u64map_t *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

// Pointer to key's value, or NULL when absent.
static inline int64_t *u64map_find(const u64map_t *m, uint64_t key) {
    for (size_t i = u64map_mix(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key) return &m->vals[i];
        if (m->keys[i] == U64MAP_EMPTY) return NULL;
    }
}

static inline void u64map_grow(u64map_t *m);

// Pointer to key's value, inserted as init when absent (*fresh = 1 then). Valid until the next insert.
static inline int64_t *u64map_put(u64map_t *m, uint64_t key, int64_t init, int *fresh) {
    CHECK(key != U64MAP_EMPTY);
    if (2 * (m->count + 1) > m->cap) u64map_grow(m);
    size_t i = u64map_mix(key) & (m->cap - 1);
    for (; m->keys[i] != U64MAP_EMPTY; i = (i + 1) & (m->cap - 1))
        if (m->keys[i] == key) {
            if (fresh) *fresh = 0;
            return &m->vals[i];
        }
    m->keys[i] = key;
    m->vals[i] = init;
    m->count++;
    if (fresh) *fresh = 1;
    return &m->vals[i];
}

static inline void u64map_grow(u64map_t *m) {
    u64map_t big;
    u64map_init(&big, m->cap);  // twice the capacity
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] != U64MAP_EMPTY) *u64map_put(&big, m->keys[i], 0, NULL) = m->vals[i];
    u64map_free(m);
    *m = big;
}

#endif
