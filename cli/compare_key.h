// compare_key.h — the name of one run of a comparison: OUTDIR/runs/<key>/, key = a readable slug of
// the spec and the seed, then 12 hex digits of a 64-bit FNV-1a hash of (spec, per-spec flags, shared
// flags, seed). Two runs share a key only if they train the same thing, whatever the order of the
// specs on the command line; the slug is for people, the hash for identity.
#ifndef ATTNLAB_COMPARE_KEY_H
#define ATTNLAB_COMPARE_KEY_H

#include <stddef.h>
#include <stdint.h>

enum { CMP_SLUG_MAX = 40, CMP_KEY_MAX = 96 };

// FNV-1a 64 of n bytes, continuing from h (start from CMP_FNV_OFFSET).
#define CMP_FNV_OFFSET 0xcbf29ce484222325ull
uint64_t cmp_fnv1a(uint64_t h, const void *p, size_t n);

// The spec as a file-name slug: lower-case letters and digits kept, '*' as 'x', every other run of
// characters as one '-', no leading or trailing '-', at most CMP_SLUG_MAX bytes ("run" if empty).
// "4*softmax/mlp(hidden=256)" -> "4xsoftmax-mlp-hidden-256".
void cmp_slug(const char *spec, char *out, size_t n);

// The run key "<slug>-s<seed>-<12 hex>". Each flag list is argv words; the hash covers every word
// with its length, so ("--lr", "1e-3") and ("--lr 1e-3") differ and no two lists collide by joining.
void cmp_run_key(const char *spec, char *const *spec_flags, int n_spec_flags, char *const *shared_flags,
                 int n_shared_flags, long seed, char out[CMP_KEY_MAX]);

#endif
