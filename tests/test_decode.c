// test_decode.c — incremental decoding with the softmax KV cache equals the full forward pass at
// every position (fixture_decode). Other kinds check themselves the same way in their own files.
#include "tests/fixture.h"

int main(void) {
    TEST_CASE("decode == forward softmax/mlp") fixture_decode("softmax/mlp", 16, NULL);
    TEST_CASE("decode == forward 3*softmax/mlp ctx 40") fixture_decode("3*softmax/mlp", 40, NULL);
    TEST_CASE("decode == forward softmax/none,softmax/mlp") fixture_decode("softmax/none,softmax/mlp(hidden=4)", 9, NULL);
    return test_main_end();
}
