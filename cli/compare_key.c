// compare_key.c — run keys: slug and hash (compare_key.h).
#include "cli/compare_key.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

uint64_t cmp_fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

void cmp_slug(const char *spec, char *out, size_t n) {
    size_t j = 0, cap = n - 1 < CMP_SLUG_MAX ? n - 1 : CMP_SLUG_MAX;
    int dash = 0;
    for (const char *s = spec; *s && j < cap; s++) {
        char c = *s;
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c == '*') c = 'x';
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            if (dash && j > 0 && j + 1 < cap) out[j++] = '-';
            dash = 0;
            out[j++] = c;
        } else {
            dash = 1;
        }
    }
    while (j > 0 && out[j - 1] == '-') j--;
    if (j == 0) {
        snprintf(out, n, "run");
        return;
    }
    out[j] = 0;
}

// One word into the hash: its length (8 bytes, little-endian) then its bytes.
static uint64_t hash_word(uint64_t h, const char *w) {
    uint64_t len = strlen(w);
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(len >> (8 * i));
    h = cmp_fnv1a(h, le, 8);
    return cmp_fnv1a(h, w, (size_t)len);
}

static uint64_t hash_list(uint64_t h, char *const *words, int n) {
    char count[32];
    snprintf(count, sizeof count, "%d", n);
    h = hash_word(h, count);
    for (int i = 0; i < n; i++) h = hash_word(h, words[i]);
    return h;
}

void cmp_run_key(const char *spec, char *const *spec_flags, int n_spec_flags, char *const *shared_flags,
                 int n_shared_flags, long seed, char out[CMP_KEY_MAX]) {
    uint64_t h = hash_word(CMP_FNV_OFFSET, "attnlab-compare-run-1");
    h = hash_word(h, spec);
    h = hash_list(h, spec_flags, n_spec_flags);
    h = hash_list(h, shared_flags, n_shared_flags);
    char s[32];
    snprintf(s, sizeof s, "%ld", seed);
    h = hash_word(h, s);
    h ^= h >> 33;  // murmur3's finalizer: every input bit moves the printed digits
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    char slug[CMP_SLUG_MAX + 1];
    cmp_slug(spec, slug, sizeof slug);
    snprintf(out, CMP_KEY_MAX, "%s-s%ld-%012" PRIx64, slug, seed, h >> 16);
}
