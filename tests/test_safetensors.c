// test_safetensors.c — checkpoint file format: round trip, Python readability, every corruption
// the reader must reject, and atomic writes that keep the old file (checkpoint/safetensors.h).
#include "checkpoint/safetensors.h"
#include "tests/testlib.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char g_dir[64];  // the test's mkdtemp directory

static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", g_dir, name); }

// A value every test can recompute (also from Python): exact in float.
static float val(int t, int i) { return (float)(t * 100 + i) * 0.5f - 7.0f; }

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

static void spit(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(1); }
    if (n && fwrite(b, 1, n, f) != n) { perror(path); exit(1); }
    fclose(f);
}

// A file whose 8-byte length field says hlen_field, followed by hdr and ndata zero bytes.
static void write_raw(const char *path, uint64_t hlen_field, const char *hdr, size_t hdrlen, size_t ndata) {
    size_t n = 8 + hdrlen + ndata;
    unsigned char *b = calloc(1, n);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hlen_field >> (8 * i));
    memcpy(b + 8, hdr, hdrlen);
    spit(path, b, n);
    free(b);
}

// Number of entries in the test directory whose name contains ".tmp-" (leftover temp files).
static int count_temp_files(void) {
    DIR *d = opendir(g_dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) n += strstr(e->d_name, ".tmp-") != NULL;
    if (d) closedir(d);
    return n;
}

// st_read must fail with a one-line message naming the path and containing `want`.
static void expect_read_fails(const char *label, const char *path, const char *want) {
    st_file_t f;
    char err[512] = "";
    int rc = st_read(path, &f, err, sizeof err);
    EXPECT_MSG(rc == -1, "%s: st_read returned %d, want -1", label, rc);
    EXPECT_MSG(strstr(err, path) != NULL, "%s: message does not name the file: %s", label, err);
    EXPECT_MSG(strstr(err, want) != NULL, "%s: message lacks '%s': %s", label, want, err);
    EXPECT_MSG(strchr(err, '\n') == NULL, "%s: message is not one line: %s", label, err);
    EXPECT_MSG(f.tensors == NULL && f.meta == NULL && f.priv == NULL && f.n_tensors == 0,
               "%s: output not zeroed on failure", label);
    st_free(&f);
}

// ---------------------------------------------------------------------------------------------
// A fixed set of tensors and metadata shared by the round-trip, Python and atomicity tests.

#define N_T 6
static float g_data[N_T][256];
static st_tensor_t g_t[N_T];
// JSON-in-a-string with quotes, backslashes, newlines, a tab, a control byte and non-ASCII text.
static const char *g_config =
    "{\"dim\": 64, \"name\": \"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x99\x82\",\n"
    " \"q\": \"a\\\"b\\\\c\"}\t\x01" "end";
static st_meta_t g_meta[3];

static void make_fixture(void) {
    static const struct { const char *name; int ndim; int64_t shape[4]; } spec[N_T] = {
        {"scalar", 0, {0}},
        {"wte", 2, {7, 5}},
        {"layers.0.attn.wq", 4, {2, 3, 1, 4}},
        {"empty", 2, {0, 3}},
        {"b\xc3\xa9ta \"q\"", 1, {3}},
        {"layers.0.ffn.w1", 3, {2, 2, 2}},
    };
    for (int t = 0; t < N_T; t++) {
        g_t[t].name = spec[t].name;
        g_t[t].ndim = spec[t].ndim;
        memcpy(g_t[t].shape, spec[t].shape, sizeof g_t[t].shape);
        for (int i = 0; i < 256; i++) g_data[t][i] = val(t, i);
        g_t[t].data = spec[t].shape[0] == 0 && spec[t].ndim ? NULL : g_data[t];
    }
    g_meta[0] = (st_meta_t){"format_version", "1"};
    g_meta[1] = (st_meta_t){"config", g_config};
    g_meta[2] = (st_meta_t){"", "empty key"};
}

static size_t numel_of(const st_tensor_t *t) {
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    return n;
}

// Every tensor and metadata entry of the fixture is in f, exactly.
static void expect_fixture(const st_file_t *f, const char *label) {
    EXPECT_MSG(f->n_tensors == N_T, "%s: n_tensors %d", label, f->n_tensors);
    EXPECT_MSG(f->n_meta == 3, "%s: n_meta %d", label, f->n_meta);
    for (int t = 0; t < N_T && t < f->n_tensors; t++) {
        const st_entry_t *e = &f->tensors[t];
        EXPECT_MSG(strcmp(e->name, g_t[t].name) == 0, "%s: tensor %d is '%s', want '%s' (order kept)", label, t,
                   e->name, g_t[t].name);
        EXPECT_MSG(st_find(f, g_t[t].name) == e, "%s: st_find('%s')", label, g_t[t].name);
        EXPECT_MSG(e->ndim == g_t[t].ndim, "%s: '%s' ndim %d", label, e->name, e->ndim);
        for (int d = 0; d < g_t[t].ndim && d < e->ndim; d++) EXPECT(e->shape[d] == g_t[t].shape[d]);
        EXPECT_MSG(e->numel == numel_of(&g_t[t]), "%s: '%s' numel %zu", label, e->name, e->numel);
        EXPECT_MSG(((uintptr_t)e->data % 64) == 0, "%s: '%s' data not 64-byte aligned", label, e->name);
        if (e->numel == numel_of(&g_t[t]) && e->numel)
            EXPECT_CLOSE(e->name, e->data, g_data[t], e->numel, 1e-30, 0.0);  // exact
    }
    const char *v = st_meta_get(f, "config");
    EXPECT_MSG(v && strcmp(v, g_config) == 0, "%s: config metadata differs: %s", label, v ? v : "(absent)");
    v = st_meta_get(f, "format_version");
    EXPECT(v && strcmp(v, "1") == 0);
    v = st_meta_get(f, "");
    EXPECT(v && strcmp(v, "empty key") == 0);
    EXPECT(st_meta_get(f, "nope") == NULL);
    EXPECT(st_find(f, "nope") == NULL);
}

// ---------------------------------------------------------------------------------------------

static void test_round_trip(void) {
    TEST_CASE("round trip: 0-d..4-d, empty tensor, metadata with quotes/newlines/unicode") {
        char path[128], err[512] = "";
        path_in(path, sizeof path, "rt.safetensors");
        int rc = st_write(path, g_t, N_T, g_meta, 3, err, sizeof err);
        EXPECT_MSG(rc == 0, "st_write: %s", err);
        EXPECT(count_temp_files() == 0);
        size_t n = 0;
        unsigned char *b = slurp(path, &n);
        EXPECT(b && n >= 8);
        if (b && n >= 8) {
            uint64_t hlen = 0;
            for (int i = 0; i < 8; i++) hlen |= (uint64_t)b[i] << (8 * i);
            size_t data = 0;
            for (int t = 0; t < N_T; t++) data += 4 * numel_of(&g_t[t]);
            EXPECT_MSG((8 + hlen) % 8 == 0, "data starts at %llu, not 8-aligned", (unsigned long long)(8 + hlen));
            EXPECT_MSG(8 + hlen + data == n, "file is %zu bytes, want 8 + %llu + %zu", n, (unsigned long long)hlen, data);
            // Data is little-endian F32, contiguous, in the order given: the scalar comes first.
            if (8 + hlen + 4 <= n) {
                uint32_t u = (uint32_t)b[8 + hlen] | (uint32_t)b[9 + hlen] << 8 | (uint32_t)b[10 + hlen] << 16 |
                             (uint32_t)b[11 + hlen] << 24;
                float x;
                memcpy(&x, &u, 4);
                EXPECT_MSG(x == val(0, 0), "first data float %g, want %g", x, val(0, 0));
            }
        }
        free(b);
        st_file_t f;
        rc = st_read(path, &f, err, sizeof err);
        EXPECT_MSG(rc == 0, "st_read: %s", err);
        if (rc == 0) expect_fixture(&f, "round trip");
        st_free(&f);
        st_free(&f);  // idempotent
        EXPECT(f.tensors == NULL && f.n_tensors == 0);
    }
    TEST_CASE("round trip: no tensors, no metadata") {
        char path[128], err[512] = "";
        path_in(path, sizeof path, "empty.safetensors");
        EXPECT_MSG(st_write(path, NULL, 0, NULL, 0, err, sizeof err) == 0, "%s", err);
        st_file_t f;
        EXPECT_MSG(st_read(path, &f, err, sizeof err) == 0, "%s", err);
        EXPECT(f.n_tensors == 0 && f.n_meta == 0);
        EXPECT(st_find(&f, "x") == NULL && st_meta_get(&f, "x") == NULL);
        st_free(&f);
    }
    TEST_CASE("overwrite replaces the file") {
        char path[128], err[512] = "";
        path_in(path, sizeof path, "over.safetensors");
        EXPECT(st_write(path, g_t, 2, NULL, 0, err, sizeof err) == 0);
        EXPECT_MSG(st_write(path, g_t, N_T, g_meta, 3, err, sizeof err) == 0, "%s", err);
        st_file_t f;
        EXPECT_MSG(st_read(path, &f, err, sizeof err) == 0, "%s", err);
        expect_fixture(&f, "overwrite");
        st_free(&f);
        EXPECT(count_temp_files() == 0);
    }
}

// The writer's exact bytes (the header as cJSON prints it, in the given order, padded to 8): the
// same bytes the hand-written header had, so checkpoints stay byte-identical.
static void test_golden_header(void) {
    TEST_CASE("written header bytes are exactly the expected JSON") {
        static const float x[6] = {1, 2, 3, 4, 5, 6}, sc = 7;
        st_tensor_t ts[2] = {{.name = "x", .ndim = 2, .shape = {2, 3}, .data = x}, {.name = "s", .ndim = 0, .data = &sc}};
        st_meta_t meta[2] = {{"k", "a\"b\\c\nd\x01\xc3\xa9"}, {"z", ""}};
        char path[128], err[512] = "";
        path_in(path, sizeof path, "golden.safetensors");
        EXPECT(st_write(path, ts, 2, meta, 2, err, sizeof err) == 0);
        const char *want = "{\"__metadata__\":{\"k\":\"a\\\"b\\\\c\\nd\\u0001\xc3\xa9\",\"z\":\"\"},"
                           "\"x\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                           "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[24,28]}}";
        size_t n = 0, wl = strlen(want), padded = (wl + 7) / 8 * 8;
        unsigned char *b = slurp(path, &n);
        uint64_t hlen = 0;
        for (int i = 0; b && n >= 8 && i < 8; i++) hlen |= (uint64_t)b[i] << (8 * i);
        EXPECT_MSG(b && hlen == padded && n == 8 + padded + 28, "header length %llu, file %zu bytes",
                   (unsigned long long)hlen, n);
        if (b && n >= 8 + padded) {
            EXPECT_MSG(memcmp(b + 8, want, wl) == 0, "header: %.*s", (int)wl, (const char *)b + 8);
            int spaces = 1;
            for (size_t i = wl; i < padded; i++) spaces &= b[8 + i] == ' ';
            EXPECT(spaces);
        }
        free(b);
    }
}

static void test_python(void) {
    TEST_CASE("file readable by Python with plain struct/json (and numpy if present)") {
        if (access("/usr/bin/python3", X_OK) != 0) {
            printf("  note: /usr/bin/python3 not found; Python readability not checked\n");
            continue;  // ends the case (TEST_CASE is a one-pass for loop)
        }
        char path[128], exp[128], py[128], cmd[512], err[512] = "";
        path_in(path, sizeof path, "py.safetensors");
        path_in(exp, sizeof exp, "py_config.bin");
        path_in(py, sizeof py, "check.py");
        EXPECT_MSG(st_write(path, g_t, N_T, g_meta, 3, err, sizeof err) == 0, "%s", err);
        spit(exp, g_config, strlen(g_config));
        static const char script[] =
            "import json, struct, sys\n"
            "b = open(sys.argv[1], 'rb').read()\n"
            "n, = struct.unpack('<Q', b[:8])\n"
            "assert (8 + n) % 8 == 0, n\n"
            "h = json.loads(b[8:8 + n].decode('utf-8'))\n"
            "meta = h.pop('__metadata__')\n"
            "assert meta['config'].encode('utf-8') == open(sys.argv[2], 'rb').read(), meta\n"
            "assert meta['format_version'] == '1' and meta[''] == 'empty key', meta\n"
            "names = ['scalar', 'wte', 'layers.0.attn.wq', 'empty', 'b\\u00e9ta \"q\"', 'layers.0.ffn.w1']\n"
            "shapes = [[], [7, 5], [2, 3, 1, 4], [0, 3], [3], [2, 2, 2]]\n"
            "assert list(h) == names, list(h)\n"
            "try:\n"
            "    import numpy as np\n"
            "except ImportError:\n"
            "    np = None\n"
            "    print('  note: numpy not found; checked with struct only')\n"
            "data = b[8 + n:]\n"
            "off = 0\n"
            "for t, (name, shape) in enumerate(zip(names, shapes)):\n"
            "    e = h[name]\n"
            "    assert e['dtype'] == 'F32' and e['shape'] == shape, e\n"
            "    k = 1\n"
            "    for d in shape: k *= d\n"
            "    assert e['data_offsets'] == [off, off + 4 * k], (name, e, off)\n"
            "    want = [(t * 100 + i) * 0.5 - 7.0 for i in range(k)]\n"
            "    raw = data[off:off + 4 * k]\n"
            "    if np is not None:\n"
            "        a = np.frombuffer(raw, dtype='<f4').reshape(shape)\n"
            "        assert a.shape == tuple(shape) and a.ravel().tolist() == want, (name, a)\n"
            "    else:\n"
            "        assert list(struct.unpack('<%df' % k, raw)) == want, name\n"
            "    off += 4 * k\n"
            "assert off == len(data), (off, len(data))\n"
            "print('  python: ok')\n";
        spit(py, script, sizeof script - 1);
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' '%s'", py, path, exp);
        fflush(stdout);
        int rc = system(cmd);
        EXPECT_MSG(rc == 0, "python check failed (system() returned %d)", rc);
    }
}

// Header-level corruptions: each JSON (with ndata zero bytes of data) must be rejected.
static void test_bad_headers(void) {
    static const struct { const char *label, *json; size_t ndata; const char *want; } cases[] = {
        {"bad JSON", "{\"a\": {", 16, "not valid JSON"},
        {"trailing garbage", "{} x", 0, "not valid JSON"},
        {"header is an array", "[1, 2]", 0, "not a JSON object"},
        {"header is a string", "\"F32\"", 0, "not a JSON object"},
        {"invalid UTF-8", "{\"a\xff\": 1}", 0, "UTF-8"},
        {"NUL byte", "{}\0  ", 0, "UTF-8"},
        {"entry not an object", "{\"a\": 5}", 0, "entry is not a JSON object"},
        {"missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "has no dtype"},
        {"missing shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "has no shape"},
        {"missing offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "has no data_offsets"},
        {"dtype not a string", "{\"a\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype is not a string"},
        {"shape not an array", "{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", 4, "shape is not an array"},
        {"offsets not a pair", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "data_offsets is not an array of two"},
        {"offsets an object", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{\"b\":0,\"e\":4}}}", 4, "data_offsets is not an array of two"},
        {"offsets strings", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",\"4\"]}}", 4, "non-negative integers"},
        {"offsets fractional", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.5]}}", 8, "non-negative integers"},
        {"offsets negative", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, "non-negative integers"},
        {"dtype F16", "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "tensor 'a' has dtype F16; attnlab checkpoints are F32"},
        {"dtype BF16 in 2nd", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[4,8]}}", 8, "tensor 'b' has dtype BF16"},
        {"negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "non-negative integers"},
        {"fractional dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "non-negative integers"},
        {"string dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, "not a number"},
        {"huge dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]}}", 4, "too large"},
        {"9 dims", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "at most 8"},
        {"shape mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "needs 12 bytes"},
        {"shape mismatch (0-d)", "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,0]}}", 8, "needs 4 bytes"},
        {"shape product overflows", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}", 4, "too many elements"},
        {"shape product wraps to 4 bytes", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2147549185,2147418113],\"data_offsets\":[0,4]}}", 4, "too many elements"},
        {"offsets past the data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "run past the end"},
        {"offsets begin > end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, "end before they begin"},
        {"offsets near 2^63", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[9223372036854775800,9223372036854775808]}}", 8, "run past the end"},
        {"offsets near 2^64", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[18446744073709551612,18446744073709551616]}}", 8, "run past the end"},
        {"overlapping offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap"},
        {"same offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "overlap"},
        {"contained offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 16, "overlap"},
        {"duplicate names", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "'a' appears twice"},
        {"two __metadata__", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "two __metadata__"},
        {"__metadata__ a string", "{\"__metadata__\":\"x\"}", 0, "__metadata__ is not a JSON object"},
        {"__metadata__ null", "{\"__metadata__\":null}", 0, "__metadata__ is not a JSON object"},
        {"__metadata__ number value", "{\"__metadata__\":{\"step\":10}}", 0, "value for 'step' is not a string"},
        {"__metadata__ nested value", "{\"__metadata__\":{\"cfg\":{\"dim\":\"4\"}}}", 0, "value for 'cfg' is not a string"},
        {"duplicate metadata key", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "'k' appears twice"},
        {"control bytes in name shown safely", "{\"a\\nb\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2, "tensor 'a\\x0ab' has dtype F16"},
        {"terminal escape in name shown safely", "{\"a\\u001b[2J\\u009bb\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2, "tensor 'a\\x1b[2J\\xc2\\x9bb' has dtype F16"},
        {"terminal escape in dtype shown safely", "{\"a\":{\"dtype\":\"\\u0007F\\r\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2, "has dtype \\x07F\\x0d;"},
        {"escaped NUL in a name", "{\"wte\\u0000junk\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "escaped NUL"},
        {"escaped NUL in metadata", "{\"__metadata__\":{\"format_version\":\"1\\u0000junk\"}}", 0, "escaped NUL"},
    };
    TEST_CASE("every header corruption is one clear error") {
        char path[128];
        path_in(path, sizeof path, "bad.safetensors");
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            size_t len = strlen(cases[i].json);
            if (strcmp(cases[i].label, "NUL byte") == 0) len = 5;
            write_raw(path, len, cases[i].json, len, cases[i].ndata);
            expect_read_fails(cases[i].label, path, cases[i].want);
        }
    }

    static const struct { const char *label, *json; size_t ndata; int n; } good[] = {
        {"empty header", "{}", 0, 0},
        {"header padded with whitespace", "{}\n \t\r      ", 0, 0},
        {"only metadata", "{\"__metadata__\":{\"a\":\"b\"}}", 0, 0},
        {"gap before data (not covered is OK)", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 16, 1},
        {"zero-size tensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[9007199254740992,0],\"data_offsets\":[4,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"c\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}", 4, 3},
        {"escaped backslash before u0000 is no NUL", "{\"a\\\\u0000\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 1},
        {"unknown entry keys ignored", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[0,4],\"x\":[1]}}", 4, 1},
    };
    TEST_CASE("valid edge cases are accepted") {
        char path[128], err[512];
        path_in(path, sizeof path, "edge.safetensors");
        for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
            size_t len = strlen(good[i].json);
            write_raw(path, len, good[i].json, len, good[i].ndata);
            st_file_t f;
            err[0] = 0;
            int rc = st_read(path, &f, err, sizeof err);
            EXPECT_MSG(rc == 0 && f.n_tensors == good[i].n, "%s: rc %d, %d tensors: %s", good[i].label, rc,
                       f.n_tensors, err);
            for (int t = 0; t < f.n_tensors; t++) EXPECT(((uintptr_t)f.tensors[t].data % 64) == 0);
            st_free(&f);
        }
    }
}

// File-level corruptions: missing, directory, short, bad header length, truncation.
static void test_bad_files(void) {
    char good[128], bad[128], err[512] = "";
    path_in(good, sizeof good, "good.safetensors");
    path_in(bad, sizeof bad, "bad.safetensors");
    st_write(good, g_t, N_T, g_meta, 3, err, sizeof err);
    size_t n = 0;
    unsigned char *b = slurp(good, &n);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)b[i] << (8 * i);
    unsigned char *c = malloc(n);

    TEST_CASE("missing file, directory") {
        char missing[128];
        path_in(missing, sizeof missing, "no-such-file.safetensors");
        expect_read_fails("missing", missing, "cannot open");
        expect_read_fails("missing", missing, "No such file");
        expect_read_fails("directory", g_dir, "is a directory");
    }
    TEST_CASE("a FIFO is refused at once, not opened and waited on") {
        char fifo[128];
        path_in(fifo, sizeof fifo, "fifo.safetensors");
        EXPECT(mkfifo(fifo, 0600) == 0);
        alarm(10);  // a reader that blocks in open() would hang here: the alarm kills the test instead
        expect_read_fails("fifo", fifo, "not a regular file (a FIFO)");
        alarm(0);
        unlink(fifo);
        expect_read_fails("character device", "/dev/null", "not a regular file (a character device)");
    }
    TEST_CASE("shorter than 8 bytes") {
        for (size_t k = 0; k < 8; k++) {
            spit(bad, b, k);
            expect_read_fails("short", bad, "truncated or not a safetensors file");
        }
    }
    TEST_CASE("header length 0, absurd, or past the end") {
        static const uint64_t lens[] = {0, UINT64_MAX, UINT64_MAX - 7, (uint64_t)1 << 63, 100000001};
        static const char *wants[] = {"header length is 0", "absurd", "absurd", "absurd", "absurd"};
        for (int i = 0; i < 5; i++) {
            write_raw(bad, lens[i], "{}      ", 8, 0);
            expect_read_fails("length field", bad, wants[i]);
            expect_read_fails("length field", bad, "truncated or not a safetensors file");
        }
        write_raw(bad, 16, "{}      ", 8, 0);
        expect_read_fails("one past", bad, "runs past the end");
        write_raw(bad, 100000000, "{}      ", 8, 0);  // just under the limit, still past the end
        expect_read_fails("100 MB", bad, "truncated or not a safetensors file");
    }
    TEST_CASE("flipped header length") {
        memcpy(c, b, n);
        c[1] ^= 0x10;  // +4096: past the end of this small file
        spit(bad, c, n);
        expect_read_fails("flip up", bad, "truncated");
        memcpy(c, b, n);
        for (int i = 0; i < 8; i++) c[i] = (unsigned char)((hlen - 8) >> (8 * i));  // shorter: JSON cut
        spit(bad, c, n);
        expect_read_fails("flip down", bad, "not valid JSON");
        memcpy(c, b, n);
        c[7] ^= 0x80;  // 2^63 + N
        spit(bad, c, n);
        expect_read_fails("flip top bit", bad, "absurd");
    }
    TEST_CASE("truncated header, truncated data, every truncation") {
        spit(bad, b, 8 + hlen / 2);
        expect_read_fails("truncated header", bad, "truncated");
        spit(bad, b, n - 1);
        expect_read_fails("truncated data", bad, "truncated");
        expect_read_fails("truncated data", bad, "run past the end");
        // The fixture's data covers the whole data region, so any cut must be caught.
        for (size_t k = 0; k < n; k++) {
            spit(bad, b, k);
            st_file_t f;
            int rc = st_read(bad, &f, err, sizeof err);
            EXPECT_MSG(rc == -1, "file cut to %zu of %zu bytes was accepted", k, n);
            st_free(&f);
        }
    }
    TEST_CASE("single-byte header corruption never crashes") {
        // Under ASan/UBSan this is the real check: every result is a clean accept or reject.
        static const unsigned char flips[] = {0x01, 0x20, 0x80, 0xff};
        int rejected = 0;
        for (size_t k = 8; k < 8 + hlen; k++) {
            for (size_t j = 0; j < sizeof flips; j++) {
                memcpy(c, b, n);
                c[k] ^= flips[j];
                spit(bad, c, n);
                st_file_t f;
                int rc = st_read(bad, &f, err, sizeof err);
                if (rc == 0) {
                    for (int t = 0; t < f.n_tensors; t++) EXPECT(((uintptr_t)f.tensors[t].data % 64) == 0);
                } else {
                    EXPECT(f.tensors == NULL && strstr(err, bad));
                    rejected++;
                }
                st_free(&f);
            }
        }
        EXPECT_MSG(rejected > (int)hlen, "only %d of %d corruptions rejected", rejected, (int)(4 * hlen));
    }
    free(c);
    free(b);
}

// The child of a fork: with RLIMIT_FSIZE at `limit` bytes (the "disk" fills up), overwrite path
// with a file of `nfloats` floats; send st_write's message down the pipe `out` (stdout may be a
// file, which the limit would also cut). Exits 0 if st_write failed with the expected message.
static void child_write_big(const char *path, rlim_t limit, size_t nfloats, int out) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {limit, limit};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(3);
    float *x = calloc(nfloats, sizeof *x);
    st_tensor_t t = {"big", 1, {(int64_t)nfloats}, x};
    char err[512] = "(write succeeded)";
    int rc = st_write(path, &t, 1, g_meta, 3, err, sizeof err);
    if (write(out, err, strlen(err)) < 0) _exit(4);
    int ok = rc == -1 && strstr(err, path) && strstr(err, "cannot write checkpoint") &&
             strstr(err, "File too large") && strstr(err, "the previous file is kept");
    free(x);
    _exit(ok ? 0 : 1);
}

static void expect_old_file_intact(const char *path, const char *label) {
    st_file_t f;
    char err[512] = "";
    int rc = st_read(path, &f, err, sizeof err);
    EXPECT_MSG(rc == 0, "%s: old file no longer reads: %s", label, err);
    if (rc == 0) expect_fixture(&f, label);
    st_free(&f);
    EXPECT_MSG(count_temp_files() == 0, "%s: a temp file was left behind", label);
}

// st_find over many tensors: every name found, absent names not, and in O(log n) (a linear scan
// per lookup makes the loop below take seconds: 30000² / 2 string compares).
static void test_many_names(void) {
    TEST_CASE("st_find over 30000 tensors: exact and fast") {
        enum { NT = 30000 };
        st_tensor_t *ts = calloc(NT, sizeof *ts);
        char (*names)[32] = calloc(NT, sizeof *names);
        static const float one = 1.0f;
        for (int i = 0; i < NT; i++) {
            snprintf(names[i], sizeof names[i], "layers.%d.w", (i * 7919) % NT);  // not in sorted order
            ts[i] = (st_tensor_t){.name = names[i], .ndim = 0, .data = &one};
        }
        char path[128], err[512] = "";
        path_in(path, sizeof path, "many.safetensors");
        EXPECT(st_write(path, ts, NT, NULL, 0, err, sizeof err) == 0);
        st_file_t f;
        EXPECT(st_read(path, &f, err, sizeof err) == 0);
        struct timespec t0, t1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);  // CPU time: a loaded machine does not count
        int found = 0;
        for (int i = 0; i < NT; i++) found += st_find(&f, names[i]) == &f.tensors[i];
        char absent[32];
        for (int i = 0; i < 100; i++) {
            snprintf(absent, sizeof absent, "layers.%d.w", NT + i);
            found -= st_find(&f, absent) != NULL;
        }
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
        double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        EXPECT_MSG(found == NT, "%d of %d found", found, NT);
        EXPECT_MSG(secs < 0.5, "30000 lookups took %.2f s (a linear scan per lookup?)", secs);
        st_free(&f);
        unlink(path);
        free(ts);
        free(names);
    }
}

static void test_atomic(void) {
    char path[128], err[512];
    path_in(path, sizeof path, "ckpt.safetensors");
    TEST_CASE("disk full (RLIMIT_FSIZE) keeps the old file, leaves no temp") {
        err[0] = 0;
        EXPECT_MSG(st_write(path, g_t, N_T, g_meta, 3, err, sizeof err) == 0, "%s", err);
        // 4 MB in 64 KB fwrites fails in fwrite; 1 KB of floats over a 1 KB limit fails at fflush
        // (the stdio buffer holds it all until then).
        static const struct { rlim_t limit; size_t nfloats; } runs[] = {{65536, 1 << 20}, {1024, 256}, {0, 16}};
        for (int r = 0; r < 3; r++) {
            int fds[2];
            EXPECT(pipe(fds) == 0);
            fflush(stdout);
            pid_t pid = fork();
            if (pid == 0) {
                close(fds[0]);
                child_write_big(path, runs[r].limit, runs[r].nfloats, fds[1]);
            }
            close(fds[1]);
            char msg[512];
            ssize_t k = read(fds[0], msg, sizeof msg - 1);
            msg[k > 0 ? k : 0] = 0;
            close(fds[0]);
            int status = -1;
            EXPECT(pid > 0 && waitpid(pid, &status, 0) == pid);
            printf("  limit %llu bytes: %s\n", (unsigned long long)runs[r].limit, msg);
            EXPECT_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "run %d: child status %d", r, status);
            expect_old_file_intact(path, "disk full");
        }
    }
    TEST_CASE("missing directory: clear error, nothing written") {
        char p2[160];
        snprintf(p2, sizeof p2, "%s/no-such-dir/ckpt.safetensors", g_dir);
        err[0] = 0;
        int rc = st_write(p2, g_t, N_T, g_meta, 3, err, sizeof err);
        EXPECT(rc == -1);
        EXPECT_MSG(strstr(err, "cannot write checkpoint") && strstr(err, p2) && strstr(err, "No such file or directory"),
                   "message: %s", err);
        EXPECT(count_temp_files() == 0);
    }
    TEST_CASE("path is a directory: rename fails, directory kept, no temp left") {
        char d[160], inside[200];
        snprintf(d, sizeof d, "%s/somedir", g_dir);
        snprintf(inside, sizeof inside, "%s/keep", d);
        mkdir(d, 0755);
        spit(inside, "x", 1);
        err[0] = 0;
        int rc = st_write(d, g_t, N_T, g_meta, 3, err, sizeof err);
        EXPECT(rc == -1);
        EXPECT_MSG(strstr(err, "cannot write checkpoint") && strstr(err, d) && strstr(err, "Is a directory"),
                   "message: %s", err);
        struct stat st;
        EXPECT(stat(d, &st) == 0 && S_ISDIR(st.st_mode) && access(inside, F_OK) == 0);
        EXPECT(count_temp_files() == 0);
        unlink(inside);
        rmdir(d);
    }
    TEST_CASE("invalid arguments: rejected before anything is written") {
        st_tensor_t bad[2] = {g_t[1], g_t[1]};
        err[0] = 0;
        EXPECT(st_write(path, bad, 2, NULL, 0, err, sizeof err) == -1);
        EXPECT_MSG(strstr(err, "given twice") && strstr(err, "previous file is kept"), "message: %s", err);
        bad[1].name = "other";
        bad[1].ndim = 5;
        EXPECT(st_write(path, bad, 2, NULL, 0, err, sizeof err) == -1 && strstr(err, "ndim 5"));
        bad[1].ndim = 1;
        bad[1].shape[0] = -3;
        EXPECT(st_write(path, bad, 2, NULL, 0, err, sizeof err) == -1 && strstr(err, "negative"));
        bad[1].shape[0] = 4;
        bad[1].data = NULL;
        EXPECT(st_write(path, bad, 2, NULL, 0, err, sizeof err) == -1 && strstr(err, "no data"));
        bad[1].data = g_data[0];
        bad[1].name = "__metadata__";
        EXPECT(st_write(path, bad, 2, NULL, 0, err, sizeof err) == -1 && strstr(err, "reserved"));
        bad[1].name = "bad\xff";
        EXPECT(st_write(path, bad, 2, NULL, 0, err, sizeof err) == -1 && strstr(err, "UTF-8"));
        st_meta_t m2[2] = {{"k", "1"}, {"k", "2"}};
        EXPECT(st_write(path, g_t, 1, m2, 2, err, sizeof err) == -1 && strstr(err, "'k' is given twice"));
        m2[1] = (st_meta_t){"j", "\xc0\x80"};  // overlong NUL
        EXPECT(st_write(path, g_t, 1, m2, 2, err, sizeof err) == -1 && strstr(err, "UTF-8"));
        expect_old_file_intact(path, "invalid arguments");
    }
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/attnlab_st_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    make_fixture();
    test_round_trip();
    test_golden_header();
    test_python();
    test_bad_headers();
    test_bad_files();
    test_many_names();
    test_atomic();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) printf("  note: could not remove %s\n", g_dir);
    return test_main_end();
}
