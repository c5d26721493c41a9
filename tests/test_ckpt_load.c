// test_ckpt_load.c — what ckpt_load refuses in a hostile checkpoint, and how cheaply (issue 10:
// items 3, 10, 12, 15): a config whose sizes disagree with the tensors the header lists (checked
// before anything is allocated), non-canonical format_version, out-of-range config numbers,
// non-finite tensors, control characters from the file in messages, and a 1000-layer load.
#include "checkpoint/checkpoint.h"
#include "checkpoint/safetensors.h"
#include "tests/testlib.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char g_dir[64];
static char g_good[128];  // a valid 2-layer checkpoint (byte tokenizer, dim 8, ctx 8), with moments

static int load(const char *path, ckpt_t *c, char *err, size_t errlen) { return ckpt_load(path, c, err, errlen); }

static int save_model(const char *path, const char *spec, int dim, int heads, int ctx) {
    model_t m;
    model_dims_t d = {.vocab = 256, .dim = dim, .heads = heads, .ctx = ctx};
    char err[512];
    if (model_build(&m, &d, spec, err, sizeof err)) {
        printf("  model_build: %s\n", err);
        return -1;
    }
    rng_t r;
    rng_seed(&r, 1);
    model_init_weights(&m, &r);
    tokenizer_t tok;
    tok_init_byte(&tok);
    int rc = ckpt_save(path, &m, &tok, "{}", 1, err, sizeof err);
    if (rc) printf("  ckpt_save: %s\n", err);
    model_free(&m);
    return rc;
}

// Copy g_good to `out` with metadata `key` set to `value` (removed when value is NULL) and, when
// `tensor` is given, element 5 of that tensor set to `x`; extra_name adds a 1-element tensor.
static void rewrite(const char *out, const char *key, const char *value, const char *tensor, float x,
                    const char *extra_name) {
    st_file_t f;
    char err[512];
    if (st_read(g_good, &f, err, sizeof err)) { printf("  %s\n", err); exit(1); }
    st_tensor_t *ts = calloc((size_t)f.n_tensors + 1, sizeof *ts);
    int n = 0;
    static const float one = 1.0f;
    for (int i = 0; i < f.n_tensors; i++) {
        st_entry_t *e = &f.tensors[i];
        if (tensor && strcmp(e->name, tensor) == 0) e->data[5] = x;
        ts[n] = (st_tensor_t){.name = e->name, .ndim = e->ndim, .data = e->data};
        for (int d = 0; d < e->ndim; d++) ts[n].shape[d] = e->shape[d];
        n++;
    }
    if (extra_name) ts[n++] = (st_tensor_t){.name = extra_name, .ndim = 1, .shape = {1}, .data = &one};
    st_meta_t meta[8];
    int nm = 0, found = 0;
    for (int i = 0; i < f.n_meta; i++) {
        if (key && strcmp(f.meta[i].key, key) == 0) {
            found = 1;
            if (value) meta[nm++] = (st_meta_t){key, value};
        } else {
            meta[nm++] = f.meta[i];
        }
    }
    if (key && !found && value) meta[nm++] = (st_meta_t){key, value};
    if (st_write(out, ts, n, meta, nm, err, sizeof err)) { printf("  %s\n", err); exit(1); }
    free(ts);
    st_free(&f);
}

// ckpt_load must fail with one printable line containing `want`.
static void expect_load_fails(const char *label, const char *path, const char *want) {
    ckpt_t c;
    char err[1024] = "";
    int rc = load(path, &c, err, sizeof err);
    EXPECT_MSG(rc == -1, "%s: ckpt_load returned %d", label, rc);
    EXPECT_MSG(strstr(err, want) != NULL, "%s: message lacks '%s': %s", label, want, err);
    int printable = 1;
    for (const unsigned char *p = (const unsigned char *)err; *p; p++)
        if (*p < 0x20 || *p == 0x7f || (*p == 0xc2 && p[1] >= 0x80 && p[1] < 0xa0)) printable = 0;
    EXPECT_MSG(printable, "%s: message has control characters: %s", label, err);
    if (rc == 0) ckpt_free(&c);
}

static const char *config_with(const char *ctx, const char *layers) {
    static char buf[512];
    snprintf(buf, sizeof buf, "{\"vocab\":256,\"dim\":8,\"heads\":2,\"ctx\":%s,\"n_layers\":2,\"layers\":\"%s\"}", ctx,
             layers);
    return buf;
}

#ifndef __SANITIZE_ADDRESS__
// ckpt_load of `path`, in a child under a 64 MiB address-space allowance beyond what the process
// uses now, returns -1 with a message containing `want` (1), or dies or loads (0): a load that
// allocates its model's arenas before comparing shapes dies "out of memory" there.
static int refused_within_64mib(const char *path, const char *want) {
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl;
        getrlimit(RLIMIT_AS, &rl);
        FILE *f = fopen("/proc/self/statm", "r");
        unsigned long pages = 0;
        if (f && fscanf(f, "%lu", &pages) != 1) pages = 0;
        if (f) fclose(f);
        rl.rlim_cur = pages * (unsigned long)sysconf(_SC_PAGESIZE) + (64ul << 20);
        setrlimit(RLIMIT_AS, &rl);
        ckpt_t c;
        char err[512];
        _exit(load(path, &c, err, sizeof err) == -1 && strstr(err, want) ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}
#endif

static void test_config_sizes(void) {
    char p[160];
    snprintf(p, sizeof p, "%s/ctx.safetensors", g_dir);
    TEST_CASE("config ctx 1,048,576 against an 8-row wpe: refused before allocating") {
        rewrite(p, "config", config_with("1048576", "2*softmax/mlp"), NULL, 0, NULL);
        expect_load_fails("ctx", p, "implies tensor 'wpe' (1048576, 8) but the file lists (8, 8)");
#ifndef __SANITIZE_ADDRESS__
        // Without the check, building the model allocates and zeroes 4 arenas holding wpe's 8.4 M
        // floats (128 MiB) before any tensor is compared: under a 64 MiB allowance beyond what the
        // process uses now, that dies "out of memory" instead of returning the error.
        EXPECT_MSG(refused_within_64mib(p, "wpe"), "under a 64 MiB allowance: not refused");
#endif
    }
    TEST_CASE("config block options against the tensors the file lists: mlp(hidden=1048576) refused before allocating") {
        rewrite(p, "config", config_with("8", "2*softmax/mlp(hidden=1048576)"), NULL, 0, NULL);
        expect_load_fails("hidden", p, "tensor 'layers.0.ffn.");
        expect_load_fails("hidden", p, "its config requires");
        rewrite(p, "config", config_with("8", "2*softmax/pkm(slots=1048576)"), NULL, 0, NULL);
        expect_load_fails("pkm slots", p, "that its config requires");
        rewrite(p, "config", config_with("8", "softmax/mlp,softmax/mlp"), NULL, 0, NULL);
        {
            ckpt_t c;
            char err[512] = "";
            EXPECT_MSG(load(p, &c, err, sizeof err) == 0, "the same layers spelt out: %s", err);
            ckpt_free(&c);
        }
#ifndef __SANITIZE_ADDRESS__
        // Without the check, the build allocates 4 arenas of 2 layers x 2 x 8 x 1048576 floats
        // (128 MiB each) before any tensor is compared.
        rewrite(p, "config", config_with("8", "2*softmax/mlp(hidden=1048576)"), NULL, 0, NULL);
        EXPECT_MSG(refused_within_64mib(p, "its config requires"), "mlp(hidden=1048576) under a 64 MiB allowance: not refused");
#endif
    }
    TEST_CASE("config layer count against the layers the file lists") {
        rewrite(p, "config", config_with("8", "3*softmax/mlp"), NULL, 0, NULL);
        expect_load_fails("3 of 2 layers", p, "implies tensor 'layers.2.ln1.weight'");
        rewrite(p, "config", config_with("8", "softmax/mlp"), NULL, 0, NULL);
        expect_load_fails("1 of 2 layers", p, "its config has 1 layers but the file lists tensors of layer 1");
        rewrite(p, "config", config_with("8", "1000*softmax/mlp"), NULL, 0, NULL);
        expect_load_fails("1000 of 2 layers", p, "implies tensor 'layers.999.ln1.weight'");
    }
    TEST_CASE("config numbers out of range: refused (checked as doubles, no overflowing cast)") {
        const char *bad[] = {"4294967296", "-4294967296", "1e300", "-1e300", "8.5", "0", "\"8\""};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            rewrite(p, "config", config_with(bad[i], "2*softmax/mlp"), NULL, 0, NULL);
            expect_load_fails(bad[i], p, "config.ctx is missing or not an integer in [1, 1048576]");
        }
    }
}

static void test_format_version(void) {
    char p[160];
    snprintf(p, sizeof p, "%s/ver.safetensors", g_dir);
    TEST_CASE("format_version: only the canonical \"1\"") {
        const char *bad[] = {" 1", "+1", "01", "1 ", "1.0", "", "0", "-1", "1e0", "0x1", "99999999999999999999"};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            rewrite(p, "format_version", bad[i], NULL, 0, NULL);
            expect_load_fails(bad[i], p, "format_version");
            expect_load_fails(bad[i], p, "is invalid (expected \"1\")");
        }
        rewrite(p, "format_version", "2", NULL, 0, NULL);
        expect_load_fails("2", p, "has format version 2, newer than this attnlab reads (1)");
        rewrite(p, "format_version", NULL, NULL, 0, NULL);
        expect_load_fails("missing", p, "format_version is missing");
        rewrite(p, "format_version", "1", NULL, 0, NULL);
        ckpt_t c;
        char err[512] = "";
        EXPECT_MSG(load(p, &c, err, sizeof err) == 0, "\"1\": %s", err);
        ckpt_free(&c);
    }
}

static void test_non_finite(void) {
    char p[160];
    snprintf(p, sizeof p, "%s/nan.safetensors", g_dir);
    TEST_CASE("non-finite weights or moments are refused, naming the tensor") {
        rewrite(p, NULL, NULL, "wte", NAN, NULL);
        expect_load_fails("NaN", p, "tensor 'wte' holds a non-finite value (NaN at element 5)");
        rewrite(p, NULL, NULL, "layers.1.ln1.bias", -INFINITY, NULL);
        expect_load_fails("-inf", p, "tensor 'layers.1.ln1.bias' holds a non-finite value (-inf at element 5)");
        rewrite(p, NULL, NULL, "adam.v.wpe", INFINITY, NULL);
        expect_load_fails("+inf moment", p, "tensor 'adam.v.wpe' holds a non-finite value (+inf at element 5)");
        model_t m;
        model_dims_t d = {.vocab = 256, .dim = 8, .heads = 2, .ctx = 8};
        char err[512] = "", notes[256];
        EXPECT(model_build(&m, &d, "2*softmax/mlp", err, sizeof err) == 0);
        int loaded = 0, total = 0;
        EXPECT(ckpt_init_from(p, &m, 1, &loaded, &total, notes, sizeof notes, err, sizeof err) == -1);
        EXPECT_MSG(strstr(err, "tensor 'adam.v.wpe' holds a non-finite value") != NULL, "--init-from: %s", err);
        model_free(&m);
    }
}

static void test_untrusted_text(void) {
    char p[160];
    snprintf(p, sizeof p, "%s/esc.safetensors", g_dir);
    TEST_CASE("control characters and terminal escapes from the file never reach a message") {
        rewrite(p, "config", config_with("8", "2*softmax/mlp,\x1b[2J\x1b]0;x\x07"), NULL, 0, NULL);
        expect_load_fails("escape in layers", p, "\\x1b[2J");
        rewrite(p, "tokenizer", "{\"kind\":\"\x1b[31mred\\u009b\"}", NULL, 0, NULL);
        expect_load_fails("escape in tokenizer kind", p, "unknown kind \"\\x1b[31mred\\xc2\\x9b\"");
        rewrite(p, "tokenizer", "{\"kind\":\"byte\",\"\\r\\n\":1}", NULL, 0, NULL);
        expect_load_fails("CR LF in tokenizer key", p, "unknown key \"\\x0d\\x0a\"");
        rewrite(p, NULL, NULL, NULL, 0, "layers.0.attn.\x1b[2Jx");
        expect_load_fails("escape in a stray tensor name", p, "has tensor 'layers.0.attn.\\x1b[2Jx'");
        rewrite(p, "format_version", "\r1\x1b", NULL, 0, NULL);
        expect_load_fails("escape in format_version", p, "'\\x0d1\\x1b' is invalid");
    }
}

static void test_many_layers(void) {
    TEST_CASE("a 1000-layer checkpoint loads in under 2 s of CPU (ASan included)") {
        char p[160], err[512] = "";
        snprintf(p, sizeof p, "%s/deep.safetensors", g_dir);
        EXPECT(save_model(p, "1000*softmax/mlp(hidden=4)", 4, 1, 4) == 0);
        struct timespec t0, t1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);  // CPU time: other processes do not count
        ckpt_t c;
        int rc = load(p, &c, err, sizeof err);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
        double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        EXPECT_MSG(rc == 0 && c.model.L == 1000 && c.has_optimizer, "load: %s", err);
        printf("  1000-layer load: %.3f s CPU\n", secs);
        EXPECT_MSG(secs < 2.0, "1000-layer load took %.2f s (quadratic lookups?)", secs);
        if (rc == 0) ckpt_free(&c);
    }
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/attnlab_ckl_XXXXXX");
    if (!mkdtemp(g_dir)) { perror("mkdtemp"); return 1; }
    snprintf(g_good, sizeof g_good, "%s/good.safetensors", g_dir);
    if (save_model(g_good, "2*softmax/mlp", 8, 2, 8)) return 1;
    test_config_sizes();
    test_format_version();
    test_non_finite();
    test_untrusted_text();
    test_many_layers();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) printf("  could not remove %s\n", g_dir);
    return test_main_end();
}
