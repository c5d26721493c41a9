// topk.h — exact top-k selection for the product-key memory (Lample et al. 2019, arXiv 1907.05242).
// Order everywhere: score descending, ties to the LOWER index. NaN scores are never selected; if
// fewer than k finite-or-infinite scores exist (only with NaN inputs), the list is completed with the
// lowest unselected indices carrying NaN scores, so indices stay valid and distinct and the NaN
// reaches the loss (where training stops with a message).
#ifndef ATTNLAB_TOPK_H
#define ATTNLAB_TOPK_H

#include <stdint.h>

// The k best of s[0..n) (1 ≤ k ≤ n ≤ 4096): val[k], idx[k] in order. Linear in n: the k-th best score
// by bisection on counts (vectorized passes, stopping once exactly k scores clear the probe), one
// pass picking the k, then a sort of those k only (by rank counting: k² branch-free comparisons).
void topk_row(const float *s, int n, int k, float *val, int32_t *idx);

// The k best pairs of two lists as topk_row returns them (v1/i1, v2/i2, k each, distinct sub-key
// indices in [0, n)), scored v1[a] + v2[b] (float) with index i1[a]·n + i2[b] (computed in 64-bit,
// < n²): val[k], slot[k] in order. A bound from the k rectangles a × ceil(k/a) prunes the k² sums
// (rows and columns are walked with early exits: both lists are sorted, and float addition is
// monotone); the survivors go through a buffer of 2k with a rising threshold (a quickselect when it
// fills), and the final k are ranked. When k ≤ n the result equals the top-k over all n² sums
// s1[a'] + s2[b'] of the full score vectors (a pair outside either list has k pairs at least as good,
// ahead of it in the order), except where float rounding makes two different sums exactly equal.
void topk_product(const float *v1, const int32_t *i1, const float *v2, const int32_t *i2, int k, int n, float *val,
                  int32_t *slot);

#endif
