// test_checkpoint.c — checkpoint round trip of one model holding every registered block kind (each
// kind's first example, tests/roundtrip.h; test_kinds.c runs the same round trip on every example of
// every kind alone). Also: --init-from copies by name and shape; segment memory in the file (config
// "memory", the memory.state.<i> tensors of training state: saved with the moments, dropped by an
// export, refused where the config cannot hold them).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint/checkpoint.h"
#include "tests/fixture.h"
#include "tests/roundtrip.h"
#include "tests/testlib.h"

// A state for every block of m that keeps one (B rows), filled with distinct values.
static void fake_states(seg_mem_t *mem, const model_t *m, int n_blocks, int B) {
    memset(mem, 0, sizeof *mem);
    mem->M = m->dims.memory;
    mem->B = B;
    mem->n_blocks = n_blocks;
    mem->state = xcalloc((size_t)n_blocks, sizeof *mem->state);
    mem->floats = xcalloc((size_t)n_blocks, sizeof *mem->floats);
    for (int i = 0; i < n_blocks; i++) {
        const block_t *b = i < model_n_blocks(m) ? model_block((model_t *)m, i) : NULL;
        size_t n = b && b->ops->mem_floats && m->dims.memory ? b->ops->mem_floats(b, B) : (size_t)(3 + i);
        if (b && m->dims.memory && !b->ops->mem_floats) continue;  // a memory model: only the blocks that keep one
        mem->floats[i] = n;
        mem->state[i] = xalloc_floats(n);
        for (size_t j = 0; j < n; j++) mem->state[i][j] = (float)(i * 1000 + (int)j) * 0.001f;
    }
}

static void expect_refused(const char *path, const char *want) {
    ckpt_t c;
    char err[1024];
    int rc = ckpt_load(path, &c, err, sizeof err);
    EXPECT_MSG(rc == -1, "loaded; wanted a refusal naming \"%s\"", want);
    if (rc == 0) {
        ckpt_free(&c);
        return;
    }
    EXPECT_MSG(strstr(err, want) && !strchr(err, '\n'), "message: %s (want \"%s\")", err, want);
}

static void test_memory_state(const char *dir, const tokenizer_t *tok) {
    char p[256], e[256];
    snprintf(p, sizeof p, "%s/mem.safetensors", dir);
    snprintf(e, sizeof e, "%s/mem-export.safetensors", dir);
    char err[1024];
    TEST_CASE("memory.state tensors in a memory-free config: refused with one line") {
        model_t m;
        CHECK(fixture_model(&m, "2*softmax/mlp", 256, 8, 2, 8, 0.3f, 80) == 0);
        seg_mem_t mem;
        fake_states(&mem, &m, 1, 2);
        EXPECT_MSG(ckpt_save_run(p, &m, tok, "{}", 1, &mem, err, sizeof err) == 0, "%s", err);
        expect_refused(p, "has tensor 'memory.state.0', which it cannot hold: its config has no segment memory");
        model_mem_free(&mem);
        model_free(&m);
    }
    TEST_CASE("segment memory: config memory, state tensors saved with the moments and restored bit for bit; export drops them") {
        model_t m;
        fixture_pos_scheme = POS_ROPE;
        CHECK(fixture_model(&m, "softmax/mlp,softmax/none", 256, 8, 2, 8, 0.3f, 81) == 0);
        fixture_pos_scheme = POS_LEARNED;
        CHECK(model_set_memory(&m, 12, err, sizeof err) == 0);
        seg_mem_t mem;
        fake_states(&mem, &m, model_n_blocks(&m), 3);
        EXPECT_MSG(ckpt_save_run(p, &m, tok, "{}", 1, &mem, err, sizeof err) == 0, "%s", err);
        ckpt_t c;
        EXPECT_MSG(ckpt_load(p, &c, err, sizeof err) == 0, "%s", err);
        EXPECT(c.model.dims.memory == 12 && c.has_optimizer && c.mem_blocks == model_n_blocks(&m));
        int states = 0;
        for (int i = 0; i < mem.n_blocks; i++) {
            EXPECT_MSG((c.mem_state[i] != NULL) == (mem.state[i] != NULL), "block %d: state present %d, saved %d", i,
                       c.mem_state[i] != NULL, mem.state[i] != NULL);
            if (!mem.state[i] || !c.mem_state[i]) continue;
            states++;
            EXPECT(c.mem_floats[i] == mem.floats[i] && memcmp(c.mem_state[i], mem.state[i], mem.floats[i] * 4) == 0);
        }
        EXPECT_MSG(states == 2, "%d blocks kept a state (want the two mixers)", states);
        // an export (no optimizer state) drops the memory state with the moments; the config keeps memory
        EXPECT(ckpt_save(e, &c.model, &c.tok, c.train_state, 0, err, sizeof err) == 0);
        ckpt_t x;
        EXPECT_MSG(ckpt_load(e, &x, err, sizeof err) == 0, "%s", err);
        EXPECT(x.model.dims.memory == 12 && !x.has_optimizer && x.mem_state == NULL);
        ckpt_free(&x);
        ckpt_free(&c);
        model_mem_free(&mem);
        // a state for a block index the config lacks, and for a block that keeps none (an ffn)
        fake_states(&mem, &m, model_n_blocks(&m) + 1, 3);
        EXPECT(ckpt_save_run(p, &m, tok, "{}", 1, &mem, err, sizeof err) == 0);
        expect_refused(p, "has tensor 'memory.state.4', which it cannot hold: no block of its config has that index");
        model_mem_free(&mem);
        fake_states(&mem, &m, 2, 3);
        mem.floats[1] = 5;
        mem.state[1] = xalloc_floats(5);
        memset(mem.state[1], 0, 5 * sizeof(float));
        EXPECT(ckpt_save_run(p, &m, tok, "{}", 1, &mem, err, sizeof err) == 0);
        expect_refused(p, "has tensor 'memory.state.1', which it cannot hold: that block keeps no memory");
        model_mem_free(&mem);
        model_free(&m);
    }
    unlink(p);
    unlink(e);
}

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
    test_memory_state(dir, &tok);
    tok_free(&tok);
    unlink(p1);
    rmdir(dir);
    return test_main_end();
}
