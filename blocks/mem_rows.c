// mem_rows.c — see mem_rows.h.
#include "blocks/mem_rows.h"

#include <string.h>

#include "base/check.h"

size_t mem_rows_floats(int B, int M, int C) { return (size_t)B * M * C; }

void mem_rows_concat(float *dst, const float *state, const float *x, int B, int M, int n, int T, int C) {
    CHECK(n >= 0 && n <= M && T >= 0);
    size_t row = (size_t)C * sizeof(float);
    for (int b = 0; b < B; b++) {
        float *d = dst + (size_t)b * (n + T) * C;
        memcpy(d, mem_rows_of(state, b, M, n, C), (size_t)n * row);
        memcpy(d + (size_t)n * C, x + (size_t)b * T * C, (size_t)T * row);
    }
}

void mem_rows_advance(float *state, const float *x, int B, int M, int n, int T, int C) {
    CHECK(n >= 0 && n <= M && T >= 0);
    size_t row = (size_t)C * sizeof(float);
    for (int b = 0; b < B; b++) {
        float *s = state + (size_t)b * M * C;
        const float *xb = x + (size_t)b * T * C;
        if (T >= M) {  // the segment alone fills the memory
            memcpy(s, xb + (size_t)(T - M) * C, (size_t)M * row);
            continue;
        }
        int keep = n + T < M ? n : M - T;  // old rows kept: the newest `keep` of the n
        // old rows M−keep … M−1 move up by T to M−keep−T … M−T−1; the segment fills M−T … M−1
        memmove(s + (size_t)(M - keep - T) * C, s + (size_t)(M - keep) * C, (size_t)keep * row);
        memcpy(s + (size_t)(M - T) * C, xb, (size_t)T * row);
    }
}
