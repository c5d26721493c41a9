// test_ops_math.c — the vectorized exp/tanh (model/fastmath.h) against libm in double, over the
// whole range that matters, and GELU against its definition.
#include <math.h>
#include <stdio.h>

#include "model/fastmath.h"
#include "model/ops.h"
#include "tests/testlib.h"

int main(void) {
    TEST_CASE("fast_expf within 3e-7 relative of exp on [-87, 88]") {
        double worst = 0, at = 0;
        for (double x = -87.0; x <= 88.0; x += 0.000731) {
            double want = exp((double)(float)x), got = fast_expf((float)x);
            double rel = fabs(got - want) / want;
            if (rel > worst) { worst = rel; at = x; }
        }
        EXPECT_MSG(worst < 3e-7, "worst relative error %.3g at x = %.6f", worst, at);
        EXPECT(fast_expf(-1000.0f) >= 0.0f && fast_expf(-1000.0f) < 1e-37f);
        EXPECT(isfinite(fast_expf(1000.0f)));
    }
    TEST_CASE("fast_tanhf within 2e-7 absolute of tanh") {
        double worst = 0, at = 0;
        for (double u = -20.0; u <= 20.0; u += 0.0001237) {
            double d = fabs(fast_tanhf((float)u) - tanh((double)(float)u));
            if (d > worst) { worst = d; at = u; }
        }
        EXPECT_MSG(worst < 2e-7, "worst absolute error %.3g at u = %.6f", worst, at);
    }
    TEST_CASE("NaN and infinities: NaN propagates, infinities clamp, no undefined behaviour") {
        // volatile: the values reach the code at run time (UBSan's float-cast-overflow sees them).
        volatile float nan = NAN, inf = INFINITY;
        EXPECT(isnan(fast_expf(nan)) && isnan(fast_expf(-nan)));
        EXPECT(fast_expf(inf) == fast_expf(88.0f) && isfinite(fast_expf(inf)));
        EXPECT(fast_expf(-inf) >= 0.0f && fast_expf(-inf) < 1e-37f);
        EXPECT(isnan(fast_tanhf(nan)));
        EXPECT(fabsf(fast_tanhf(inf) - 1.0f) < 2e-7f && fabsf(fast_tanhf(-inf) + 1.0f) < 2e-7f);
        enum { N = 67 };  // not a multiple of the vector width: the remainder loop runs too
        float x[N], y[N];
        for (int i = 0; i < N; i++) x[i] = i % 5 == 0 ? nan : i % 5 == 1 ? inf : i % 5 == 2 ? -inf : 0.1f * (float)i;
        gelu_forward(y, x, N);
        int ok = 1;
        for (int i = 0; i < N; i++) {
            if (i % 5 == 0) ok &= isnan(y[i]);
            else if (i % 5 == 1) ok &= !isnan(y[i]);  // x·(1+tanh) at +inf: inf
            else if (i % 5 == 2) ok &= isnan(y[i]) || y[i] == 0.0f;  // -inf·0 is NaN: fine either way
            else ok &= isfinite(y[i]);
        }
        EXPECT(ok);
    }
    TEST_CASE("gelu_forward matches the tanh-approximation definition") {
        enum { N = 4001 };
        static float x[N], y[N], want[N];
        for (int i = 0; i < N; i++) {
            x[i] = -10.0f + 20.0f * i / (N - 1);
            double xd = x[i];
            want[i] = (float)(0.5 * xd * (1.0 + tanh(0.7978845608028654 * (xd + 0.044715 * xd * xd * xd))));
        }
        gelu_forward(y, x, N);
        EXPECT_CLOSE("gelu", y, want, N, 1e-6, 1e-6);
    }
    return test_main_end();
}
