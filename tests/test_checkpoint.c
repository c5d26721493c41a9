// test_checkpoint.c — checkpoint round trip of one model holding every registered block kind (each
// kind's first example, tests/roundtrip.h; test_kinds.c runs the same round trip on every example of
// every kind alone). Also: --init-from copies by name and shape.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint/checkpoint.h"
#include "tests/fixture.h"
#include "tests/roundtrip.h"
#include "tests/testlib.h"

int main(void) {
    char dir[] = "/tmp/attnlab-ckpt-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char p1[256];
    snprintf(p1, sizeof p1, "%s/a.safetensors", dir);
    tokenizer_t tok;
    tok_init_byte(&tok);
    char all[2048];
    fixture_all_kinds_spec(all, sizeof all);
    char name[2100];
    snprintf(name, sizeof name, "round trip of one model of every kind: %s", all);
    TEST_CASE(name) roundtrip_check(all, dir, 50);
    TEST_CASE("init-from copies tensors by name and shape") {
        model_t src, dst;
        CHECK(fixture_model(&src, "2*softmax/mlp", 256, 8, 2, 8, 0.3f, 70) == 0);
        CHECK(fixture_model(&dst, "performer(features=12)/mlp,linformer(chunk=2,k=1)/mlp(hidden=16)", 256, 8, 2, 8, 0.3f, 71) == 0);
        char err[512];
        EXPECT(ckpt_save(p1, &src, &tok, NULL, 0, err, sizeof err) == 0);
        int loaded = 0, total = 0;
        EXPECT(ckpt_init_from(p1, &dst, 1, &loaded, &total, NULL, 0, err, sizeof err) == 0);
        param_t *a = params_find(&src.params, "layers.0.attn.wq"), *b = params_find(&dst.params, "layers.0.attn.wq");
        EXPECT(a && b && memcmp(a->data, b->data, a->numel * 4) == 0);
        param_t *w1 = params_find(&dst.params, "layers.1.ffn.w1"), *w1s = params_find(&src.params, "layers.1.ffn.w1");
        EXPECT(w1 && w1s && memcmp(w1->data, w1s->data, 4 * 8) != 0);  // different shape: left as initialized
        // every tensor except layer 1's w1, b1, w2 (hidden 16 vs 32; b2 keeps its shape) and the
        // kinds' own tensors (performer's omega, linformer's E and F)
        EXPECT_MSG(loaded == dst.params.count - 3 - 3, "loaded %d of %d", loaded, total);
        model_free(&src);
        model_free(&dst);
    }
    tok_free(&tok);
    unlink(p1);
    rmdir(dir);
    return test_main_end();
}
