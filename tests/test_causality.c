// test_causality.c — softmax attention, mlp and none are causal: changing token t changes no logit
// at positions < t (fixture_causality sweeps every t, in training mode with dropout).
// Other kinds check themselves the same way in their own test files.
#include "tests/fixture.h"

int main(void) {
    TEST_CASE("causality softmax/mlp") fixture_causality("softmax/mlp", 16, 16, 0.0f, NULL);
    // longer than one 32-row block of the triangle tiling, with dropout masks
    TEST_CASE("causality 2*softmax/mlp T 40 dropout 0.1") fixture_causality("2*softmax/mlp", 40, 40, 0.1f, NULL);
    TEST_CASE("causality softmax/none,softmax/mlp") fixture_causality("softmax/none,softmax/mlp(hidden=4)", 12, 12, 0.0f, NULL);
    return test_main_end();
}
