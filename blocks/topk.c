// topk.c — exact top-k selection for product keys (see topk.h).
#include "blocks/topk.h"

#include <math.h>
#include <string.h>

// (va, ia) comes before (vb, ib): higher score, or equal score and lower index.
static inline int before(float va, int64_t ia, float vb, int64_t ib) { return va > vb || (va == vb && ia < ib); }

// Insert (v, i) into the sorted buffer val/idx of *cnt ≤ k entries, keeping the best k: binary search
// for the first entry (v, i) comes before, then one memmove of the tail.
static inline void insert(float *val, int32_t *idx, int *cnt, int k, float v, int64_t i) {
    if (isnan(v)) return;
    if (*cnt == k && !before(v, i, val[k - 1], idx[k - 1])) return;
    int lo = 0, hi = *cnt < k ? *cnt : k - 1;  // the answer lies in [lo, hi]
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (before(v, i, val[mid], idx[mid])) hi = mid;
        else lo = mid + 1;
    }
    int last = *cnt < k ? (*cnt)++ : k - 1;  // the entry at `last` falls off (or is the free slot)
    memmove(val + lo + 1, val + lo, (size_t)(last - lo) * sizeof *val);
    memmove(idx + lo + 1, idx + lo, (size_t)(last - lo) * sizeof *idx);
    val[lo] = v;
    idx[lo] = (int32_t)i;
}

static int contains(const int32_t *idx, int cnt, int64_t i) {
    for (int j = 0; j < cnt; j++)
        if (idx[j] == i) return 1;
    return 0;
}

void topk_row(const float *s, int n, int k, float *val, int32_t *idx) {
    int cnt = 0;
    for (int i = 0; i < n; i++) insert(val, idx, &cnt, k, s[i], i);  // ascending i: ties keep the earlier
    for (int i = 0; cnt < k && i < n; i++)  // NaN inputs only
        if (!contains(idx, cnt, i)) {
            val[cnt] = NAN;
            idx[cnt++] = i;
        }
}

void topk_product(const float *v1, const int32_t *i1, const float *v2, const int32_t *i2, int k, int n, float *val,
                  int32_t *slot) {
    int cnt = 0;
    for (int a = 0; a < k; a++) {
        // v1[a] + v2[0] bounds every later pair of this row and of all later rows (v1, v2 descending)
        if (cnt == k && v1[a] + v2[0] < val[k - 1]) break;
        int64_t base = (int64_t)i1[a] * n;
        for (int b = 0; b < k; b++) {
            float s = v1[a] + v2[b];
            if (cnt == k && s < val[k - 1]) break;  // ties may still win on the index: only < stops
            insert(val, slot, &cnt, k, s, base + i2[b]);
        }
    }
    for (int a = 0; cnt < k && a < k; a++)  // NaN inputs only
        for (int b = 0; cnt < k && b < k; b++) {
            int64_t i = (int64_t)i1[a] * n + i2[b];
            if (!contains(slot, cnt, i)) {
                val[cnt] = NAN;
                slot[cnt++] = (int32_t)i;
            }
        }
}
