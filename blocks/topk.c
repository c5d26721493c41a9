// topk.c — exact top-k selection for product keys (see topk.h), linear in the number of scores.
//
// Each score and its index are packed into one 64-bit key whose unsigned order is the selection order
// (key_of): the float's bits mapped onto an unsigned order in the high half, 0xFFFFFFFF − index in the
// low half. Keys of distinct indices are distinct, so "the k best" is a unique set and "before" is a
// plain integer comparison (no branches on ties). A running selection (sel_t) keeps a buffer of 2k
// keys and a threshold tau that the k-th best key can only exceed: a key ≤ tau is dropped with one
// comparison; when the buffer fills, a quickselect moves its k best to the front and the k-th becomes
// tau — O(k) work per k keys discarded, so O(n) in all, never an insertion into a sorted list. Only the
// k survivors are sorted at the end.
#include "blocks/topk.h"

#include <math.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// keys

// x + 0.0f turns −0 into +0 (round to nearest), so −0 and +0 tie as they compare equal; a negative
// float's bits are inverted (more negative → smaller), a positive one's sign bit is set. NaN never
// reaches here. The lowest possible key (−inf at index 0xFFFFFFFF) is > 0, so 0 means "no threshold".
static inline uint64_t key_of(float v, uint32_t i) {
    float c = v + 0.0f;
    uint32_t u;
    memcpy(&u, &c, sizeof u);
    u ^= (uint32_t)((int32_t)u >> 31) | 0x80000000u;  // negative: all bits flipped; else the sign bit set
    return ((uint64_t)u << 32) | (uint32_t)(0xFFFFFFFFu - i);
}
static inline uint32_t key_index(uint64_t key) { return 0xFFFFFFFFu - (uint32_t)key; }
// The score of a key (a −0 comes back as +0).
static inline float key_score(uint64_t key) {
    uint32_t u = (uint32_t)(key >> 32);
    u = (u & 0x80000000u) ? (u & 0x7FFFFFFFu) : ~u;
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

// ---------------------------------------------------------------------------------------------
// selection and sorting of distinct keys, descending

static inline void swap_keys(uint64_t *a, uint64_t *b) {
    uint64_t t = *a;
    *a = *b;
    *b = t;
}

static void insertion_sort_desc(uint64_t *a, int n) {
    for (int i = 1; i < n; i++) {
        uint64_t x = a[i];
        int j = i;
        for (; j > 0 && a[j - 1] < x; j--) a[j] = a[j - 1];
        a[j] = x;
    }
}

// Heapsort (a min-heap, then each minimum moved to the back): O(n log n) whatever the input.
static void heap_sift(uint64_t *a, int n, int i) {
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) return;
        if (c + 1 < n && a[c + 1] < a[c]) c++;
        if (a[i] <= a[c]) return;
        swap_keys(&a[i], &a[c]);
        i = c;
    }
}
static void sort_desc(uint64_t *a, int n) {
    if (n <= 32) {
        insertion_sort_desc(a, n);
        return;
    }
    for (int i = n / 2 - 1; i >= 0; i--) heap_sift(a, n, i);
    for (int end = n - 1; end > 0; end--) {
        swap_keys(&a[0], &a[end]);
        heap_sift(a, end, 0);
    }
}

// Reorder a[0..n) (distinct keys, 1 ≤ k ≤ n) so that a[0..k) are the k largest and a[k−1] is the k-th
// largest (nth_element). Quickselect with a median-of-three pivot and Hoare partition; after
// 2·log2(n) + 4 rounds without finishing (adversarial input) the remaining range is sorted instead,
// so the worst case is O(n log n).
static void select_largest(uint64_t *a, int n, int k) {
    int lo = 0, hi = n - 1, budget = 4;
    for (int m = n; m > 1; m >>= 1) budget += 2;
    while (lo < hi) {
        if (budget-- == 0) {
            sort_desc(a + lo, hi - lo + 1);
            return;
        }
        int mid = lo + (hi - lo) / 2;
        if (a[mid] > a[lo]) swap_keys(&a[mid], &a[lo]);
        if (a[hi] > a[lo]) swap_keys(&a[hi], &a[lo]);
        if (a[hi] > a[mid]) swap_keys(&a[hi], &a[mid]);  // a[lo] ≥ a[mid] ≥ a[hi]
        uint64_t pivot = a[mid];
        int i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot) i++;
            while (a[j] < pivot) j--;
            if (i <= j) {
                swap_keys(&a[i], &a[j]);
                i++;
                j--;
            }
        }
        // a[lo..j] ≥ pivot ≥ a[i..hi]; anything strictly between j and i equals the pivot (in place)
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else return;
    }
}

// ---------------------------------------------------------------------------------------------
// the running selection

typedef struct {
    uint64_t *buf;  // (2k) every key offered so far that may still be among the k best
    int m, k;       // keys in buf; how many are wanted
    uint64_t tau;   // 0, or a key the k-th best is known to be ≥: keys ≤ tau other than tau itself are out
} sel_t;

static inline void sel_offer(sel_t *s, uint64_t key) {
    if (key <= s->tau) return;
    s->buf[s->m++] = key;
    if (s->m == s->k && !s->tau) {  // the first k keys: their minimum bounds the k-th best from below
        uint64_t mn = s->buf[0];
        for (int j = 1; j < s->k; j++) mn = s->buf[j] < mn ? s->buf[j] : mn;
        s->tau = mn;
    } else if (s->m == 2 * s->k) {  // full: keep the k best, the k-th is the new bound
        select_largest(s->buf, s->m, s->k);
        s->tau = s->buf[s->k - 1];
        s->m = s->k;
    }
}

// The k best of n distinct keys, in order, into out (k + 1 entries: out[k] receives the rest), by
// ranking every key against all (n² comparisons, no branch): for small n cheaper than select + sort.
static void rank_top(const uint64_t *in, int n, int k, uint64_t *out) {
    for (int i = 0; i < n; i++) {
        int r = 0;
        for (int j = 0; j < n; j++) r += in[j] > in[i];
        out[r < k ? r : k] = in[i];
    }
}

// The selection's keys in order (best first) into out (k + 1 entries); returns how many (min(m, k)).
static int sel_finish(sel_t *s, uint64_t *out) {
    int cnt = s->m < s->k ? s->m : s->k;
    if (s->m <= 128) {
        rank_top(s->buf, s->m, s->k, out);
        return cnt;
    }
    select_largest(s->buf, s->m, s->k);
    sort_desc(s->buf, cnt);
    memcpy(out, s->buf, (size_t)cnt * sizeof *out);
    return cnt;
}

static int contains(const int32_t *idx, int cnt, int64_t i) {
    for (int j = 0; j < cnt; j++)
        if (idx[j] == i) return 1;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// public

// A score's unsigned order (as in key_of); 0 for NaN, below every other score (−inf gives 0x007FFFFF).
// Integer operations only, so that a loop over scores vectorizes.
static inline uint32_t order_of(float v) {
    float c = v + 0.0f;
    uint32_t b;
    memcpy(&b, &c, sizeof b);
    uint32_t flip = (uint32_t)((int32_t)b >> 31) | 0x80000000u;  // all ones if negative, else the sign bit
    return (b & 0x7FFFFFFFu) > 0x7F800000u ? 0u : b ^ flip;
}

static int count_at_least(const uint32_t *u, int n, uint32_t t) {
    int c = 0;
    for (int i = 0; i < n; i++) c += u[i] >= t;
    return c;
}

// topk_row: the k-th best score's order t by bisection on counts (the count of scores ≥ t is a
// non-increasing step function of t; each probe is one vectorized pass), stopping early when exactly k
// scores are ≥ the probe; once few scores remain above the lower end, the probes count only those
// (compacted). Then one pass takes every score above t and, of those equal to t, the lowest indices;
// only those k are sorted.
void topk_row(const float *s, int n, int k, float *val, int32_t *idx) {
    uint32_t u[n], w[n];  // n ≤ 4096 sub-keys per half: at most 32 KB of stack
    for (int i = 0; i < n; i++) u[i] = order_of(s[i]);
    int finite = count_at_least(u, n, 1);  // not NaN
    uint32_t t = 1;                        // all of them when they are no more than k
    if (finite > k) {
        // invariant: count(≥ lo) ≥ k > count(≥ hi) (no score orders above +inf's 0xFF800000);
        // cand[0..m) holds every score ≥ lo (or all of u)
        uint32_t lo = 1, hi = UINT32_MAX;
        const uint32_t *cand = u;
        int m = n;
        while (hi - lo > 1) {
            uint32_t mid = lo + (hi - lo) / 2;
            int c = count_at_least(cand, m, mid);
            if (c >= k) lo = mid;
            else hi = mid;
            if (c == k) break;  // exactly k at or above mid: those are the k best
            if (c >= k && cand == u && 4 * c <= n && n > 64) {  // few left: count only those from now on
                int j = 0;
                for (int i = 0; i < n; i++) {
                    w[j] = u[i];
                    j += u[i] >= lo;
                }
                cand = w;
                m = j;
            }
        }
        t = lo;
    }
    // the indices taken, without branches: every index is written at pick[cnt], and cnt moves on only for
    // those taken (exactly min(k, finite) of them; the cap keeps every write inside pick[0..k] regardless)
    int32_t pick[k + 1];
    int cnt = 0;
    if (count_at_least(u, n, t) <= k) {  // every score ≥ t fits (the usual case)
        for (int i = 0; i < n; i++) {
            pick[cnt] = i;
            cnt += (u[i] >= t) & (cnt < k);
        }
    } else {  // more scores equal t than fit: those with the lowest indices
        int above = 0;
        for (int i = 0; i < n; i++) above += u[i] > t;
        int ties = k - above;
        for (int i = 0; i < n; i++) {
            int eq = u[i] == t, take = (u[i] > t) | (eq & (ties > 0));
            ties -= eq;
            pick[cnt] = i;
            cnt += take & (cnt < k);
        }
    }
    uint64_t chosen[k + 1], sorted[k + 1];
    for (int j = 0; j < cnt; j++) chosen[j] = key_of(s[pick[j]], (uint32_t)pick[j]);
    uint64_t *out = chosen;
    if (cnt <= 64) {
        rank_top(chosen, cnt, k, sorted);
        out = sorted;
    } else {
        sort_desc(chosen, cnt);
    }
    for (int j = 0; j < cnt; j++) {
        idx[j] = (int32_t)key_index(out[j]);
        val[j] = s[idx[j]];  // the score itself (keeps a −0)
    }
    for (int i = 0; cnt < k && i < n; i++)  // NaN inputs only
        if (!contains(idx, cnt, i)) {
            val[cnt] = NAN;
            idx[cnt++] = i;
        }
}

void topk_product(const float *v1, const int32_t *i1, const float *v2, const int32_t *i2, int k, int n, float *val,
                  int32_t *slot) {
    // A first bound on the k-th best sum: for a = 1 … k the first a rows × first ceil(k/a) columns hold
    // ≥ k pairs, each scoring ≥ v1[a−1] + v2[ceil(k/a)−1] (both lists descend). A NaN bound is skipped;
    // a finite or infinite one has no NaN pair in its rectangle (NaN scores come last in each list).
    float bound = -INFINITY;
    for (int a = 1; a <= k; a++) {
        float x = v1[a - 1] + v2[(k + a - 1) / a - 1];
        bound = x > bound ? x : bound;
    }
    uint64_t buf[2 * k], top[k + 1];
    sel_t sel = {buf, 0, k, 0};
    for (int a = 0; a < k; a++) {
        // v1[a] + v2[0] bounds every later pair of this row and of all later rows (both lists descend;
        // float addition is monotone); a NaN compares false and stops nothing
        if (v1[a] + v2[0] < bound) break;
        int64_t base = (int64_t)i1[a] * n;
        for (int b = 0; b < k; b++) {
            float x = v1[a] + v2[b];
            if (x < bound) break;  // equal sums may still win on the slot index: only < stops
            if (isnan(x)) continue;
            sel_offer(&sel, key_of(x, (uint32_t)(base + i2[b])));
            if (sel.tau) bound = fmaxf(bound, key_score(sel.tau));
        }
    }
    int cnt = sel_finish(&sel, top);
    for (int j = 0; j < cnt; j++) {
        slot[j] = (int32_t)key_index(top[j]);
        val[j] = key_score(top[j]);
        if (val[j] == 0.0f) {  // the key lost a −0: recompute the sum of the pair that made this slot
            int32_t sa = slot[j] / n, sb = slot[j] % n;
            int a = 0, b = 0;
            while (i1[a] != sa) a++;
            while (i2[b] != sb) b++;
            val[j] = v1[a] + v2[b];
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
