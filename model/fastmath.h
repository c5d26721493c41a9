// fastmath.h — branch-free, vectorizable exp and tanh for the elementwise loops (GELU).
// glibc's tanhf/expm1f are scalar calls that the compiler cannot vectorize; they cost more than
// every matrix product of the default model together (measured with perf). These versions inline
// into `#pragma omp simd` loops.
//
// fast_expf: Cephes' expf — x = n·ln2 + r with n = round(x·log2 e), ln2 split in two parts so r is
// exact, e^r by a degree-6 polynomial (relative error ≤ 2 ulp on the clamped range), times 2^n
// built in the exponent bits. Inputs are clamped to [−87.3, 88] (e^88 < FLT_MAX) (no inf, no denormals);
// ±inf give the clamped ends, NaN gives NaN (never undefined behaviour).
// fast_tanhf: 1 − 2/(e^{2u} + 1) with u clamped to ±9 (tanh(9) = 1 − 3e−8); absolute error ≤ 2e−7,
// which is what GELU (½x(1 + tanh u)) needs; NaN gives NaN. tests/test_ops_math.c checks both against libm.
#ifndef ATTNLAB_FASTMATH_H
#define ATTNLAB_FASTMATH_H

#include <stdint.h>
#include <string.h>

static inline float fast_expf(float x_in) {
    // Clamps written so that NaN fails both comparisons and lands on a bound: the float→int
    // conversion below then always sees a value in range (on NaN it would be undefined behaviour);
    // NaN itself is returned at the end by a select, which vectorizes as a compare and a blend.
    float x = x_in > -87.3f ? x_in : -87.3f;
    x = x < 88.0f ? x : 88.0f;
    // n = round(x·log2 e): adding and subtracting 1.5·2²³ rounds to nearest in float arithmetic
    // (a floorf call would not vectorize).
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float r2 = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r2 + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x_in == x_in ? y * scale : x_in;
}

static inline float fast_tanhf(float u) {
    u = u > 9.0f ? 9.0f : u;
    u = u < -9.0f ? -9.0f : u;
    return 1.0f - 2.0f / (fast_expf(2.0f * u) + 1.0f);
}

#endif
