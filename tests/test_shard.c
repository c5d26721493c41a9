// test_shard.c — token shards (data/shard.h) and the dataset over them (data/dataset.h): a shard
// holds exactly the tokens and split of its text (byte, char, bpe; chunk ends everywhere), 16- and
// 32-bit widths, several shards read as one sequence across their boundaries, batches and streams
// from a mapped shard == from the text, --val, and every kind of damage refused with one line.
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/rng.h"
#include "base/utf8.h"
#include "data/dataset.h"
#include "data/shard.h"
#include "data/streams.h"
#include "tests/testlib.h"

static char dir[64];

// dir/name in a buffer of its own (never reused: the tests make fewer than 256 paths).
static const char *path_of(const char *name) {
    static char path[256][128];
    static int k;
    if (k == 256) exit(1);
    snprintf(path[k], sizeof path[k], "%s/%s", dir, name);
    return path[k++];
}

static const char *write_file(const char *name, const void *data, size_t n) {
    const char *p = path_of(name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        printf("  cannot write %s\n", p);
        exit(1);
    }
    fclose(f);
    return p;
}

static uint8_t *read_all(const char *p, size_t *n) {
    uint8_t *b;
    char err[256];
    if (read_file_bytes(p, &b, n, err, sizeof err)) {
        printf("  %s\n", err);
        exit(1);
    }
    return b;
}

// English-like text with some invalid UTF-8 and multibyte letters, n bytes.
static uint8_t *make_text(size_t n, uint64_t seed) {
    static const char *w[] = {"the", " king", " said", "'s", " \xC3\xA9t\xC3\xA9", "\n", "  ", " 42", "!", " of", "\xFF"};
    uint8_t *t = malloc(n);
    rng_t r;
    rng_seed(&r, seed);
    size_t k = 0;
    while (k < n) {
        const char *a = w[rng_below(&r, 11)];
        for (size_t i = 0; a[i] && k < n; i++) t[k++] = (uint8_t)a[i];
    }
    return t;
}

// The shard at p holds exactly the text-dataset's tokens and split.
static void expect_shard_is_text(const char *p, const dataset_t *txt, const tokenizer_t *tok, const char *how) {
    dataset_t sh;
    char err[512];
    const char *one[1] = {p};
    EXPECT_MSG(dataset_open_shards(&sh, one, 1, err, sizeof err) == 0, "%s: %s", how, err);
    EXPECT_MSG(dataset_check_shards(&sh, tok, "the test", 4, err, sizeof err) == 0, "%s: %s", how, err);
    if (!sh.shards) return;
    EXPECT_MSG(sh.n_tokens == txt->n_tokens && sh.n_train == txt->n_train, "%s: %zu tokens (%zu train), text %zu (%zu)", how,
               sh.n_tokens, sh.n_train, txt->n_tokens, txt->n_train);
    EXPECT(sh.text_bytes == txt->text_bytes && sh.text_fnv1a64 == txt->text_fnv1a64);
    EXPECT(sh.shards[0].width == (tok->vocab_size <= 65536 ? 2 : 4));
    if (sh.n_tokens == txt->n_tokens) {
        int32_t *all = malloc(sh.n_tokens * sizeof *all);
        dataset_tokens(&sh, 0, sh.n_tokens, all);
        EXPECT_MSG(memcmp(all, txt->tokens, sh.n_tokens * sizeof *all) == 0, "%s: tokens differ", how);
        EXPECT(sh.n_val == txt->n_val && memcmp(sh.val, txt->val, sh.n_val * sizeof *all) == 0);
        free(all);
    }
    dataset_free(&sh);
}

static void test_round_trip(void) {
    char err[512];
    size_t n = 60000;
    uint8_t *text = make_text(n, 1);
    const char *tp = write_file("text.txt", text, n);
    tokenizer_t byte, bpe;
    tok_init_byte(&byte);
    EXPECT(tok_learn_bpe(&bpe, text, dataset_bpe_cut(n), 300, err, sizeof err) == 0);
    TEST_CASE("prepare: the shard holds the text's tokens and split (byte, bpe; 4 MiB and 97-byte chunks)") {
        size_t chunks[2] = {4 << 20, 97};
        for (int c = 0; c < 2; c++) {
            shard_chunk_bytes = chunks[c];
            const tokenizer_t *toks[2] = {&byte, &bpe};
            for (int k = 0; k < 2; k++) {
                dataset_t txt;
                EXPECT(dataset_load(&txt, tp, toks[k], 4, err, sizeof err) == 0);
                uint64_t count;
                const char *sp = path_of("t.shard");
                EXPECT_MSG(shard_prepare(tp, sp, toks[k], &count, err, sizeof err) == 0, "%s", err);
                EXPECT(count == txt.n_tokens);
                char how[64];
                snprintf(how, sizeof how, "%s, chunk %zu", tok_kind_name(toks[k]->kind), chunks[c]);
                expect_shard_is_text(sp, &txt, toks[k], how);
                dataset_free(&txt);
            }
        }
        shard_chunk_bytes = 4 << 20;
    }
    TEST_CASE("prepare: learning bpe streamed from the file's first 90% == learning from memory") {
        shard_chunk_bytes = 101;
        tokenizer_t t;
        EXPECT_MSG(shard_learn_bpe(tp, 300, &t, err, sizeof err) == 0, "%s", err);
        EXPECT(t.vocab_size == 300 && memcmp(t.bpe->merges, bpe.bpe->merges, 44 * 2 * sizeof(int32_t)) == 0);
        tok_free(&t);
        shard_chunk_bytes = 4 << 20;
    }
    TEST_CASE("prepare: a char vocabulary of 70000 code points makes 32-bit tokens; cut-off sequences at chunk ends") {
        size_t cap = 70000 * 4 + 16, m = 0;
        uint8_t *u = malloc(cap);
        for (uint32_t cp = 0x100, k = 0; k < 70000; cp++) {
            if (cp >= 0xD800 && cp <= 0xDFFF) continue;
            m += (size_t)utf8_encode(cp, u + m);
            k++;
        }
        const char *up = write_file("wide.txt", u, m);
        tokenizer_t ch;
        EXPECT(tok_build_char(&ch, u, m, err, sizeof err) == 0 && ch.vocab_size == 70000);
        dataset_t txt;
        EXPECT(dataset_load(&txt, up, &ch, 4, err, sizeof err) == 0);
        shard_chunk_bytes = 1001;  // not a multiple of any sequence length
        uint64_t count;
        const char *sp = path_of("wide.shard");
        EXPECT_MSG(shard_prepare(up, sp, &ch, &count, err, sizeof err) == 0, "%s", err);
        shard_chunk_bytes = 4 << 20;
        expect_shard_is_text(sp, &txt, &ch, "char, 32-bit");
        dataset_free(&txt);
        tok_free(&ch);
        free(u);
    }
    TEST_CASE("batches and streams from a mapped shard == from the text") {
        dataset_t txt, sh;
        EXPECT(dataset_load(&txt, tp, &bpe, 16, err, sizeof err) == 0);
        uint64_t count;
        const char *sp = path_of("b.shard");
        EXPECT(shard_prepare(tp, sp, &bpe, &count, err, sizeof err) == 0);
        const char *one[1] = {sp};
        EXPECT(dataset_open_shards(&sh, one, 1, err, sizeof err) == 0 && dataset_check_shards(&sh, &bpe, "t", 16, err, sizeof err) == 0);
        enum { B = 5, T = 16 };
        int32_t x1[B * T], y1[B * T], x2[B * T], y2[B * T];
        rng_t r1, r2;
        rng_seed(&r1, 9);
        rng_seed(&r2, 9);
        int same = 1;
        for (int it = 0; it < 50; it++) {
            dataset_train_batch(&txt, &r1, B, T, x1, y1);
            dataset_train_batch(&sh, &r2, B, T, x2, y2);
            same &= !memcmp(x1, x2, sizeof x1) && !memcmp(y1, y2, sizeof y1);
            dataset_val_batch(&txt, &r1, B, T, x1, y1);
            dataset_val_batch(&sh, &r2, B, T, x2, y2);
            same &= !memcmp(x1, x2, sizeof x1) && !memcmp(y1, y2, sizeof y1);
        }
        EXPECT(same);
        streams_t s1, s2;
        EXPECT(streams_init(&s1, 0, txt.n_train, B, T, err, sizeof err) == 0);
        s2 = s1;
        int wraps = 0;
        for (int it = 0; it < 400; it++) {
            int w1 = streams_next(&s1, txt.tokens, x1, y1), w2 = dataset_stream_batch(&sh, &s2, x2, y2);
            same &= w1 == w2 && !memcmp(x1, x2, sizeof x1) && !memcmp(y1, y2, sizeof y1) && s1.offset == s2.offset;
            wraps += w1;
        }
        EXPECT_MSG(same && wraps > 0, "streams: same %d, %d wraps", same, wraps);
        dataset_free(&txt);
        dataset_free(&sh);
    }
    TEST_CASE("several shards: one sequence across their boundaries; the last one's split validates") {
        const char *pa = write_file("a.txt", text, 1000), *pb = write_file("b.txt", text + 1000, 37), *pc = write_file("c.txt", text + 1037, 5000);
        const char *sa = path_of("a.shard"), *sb = path_of("b.shard"), *sc = path_of("c.shard");
        uint64_t c;
        EXPECT(shard_prepare(pa, sa, &byte, &c, err, sizeof err) == 0 && shard_prepare(pb, sb, &byte, &c, err, sizeof err) == 0 &&
               shard_prepare(pc, sc, &byte, &c, err, sizeof err) == 0);
        const char *three[3] = {sa, sb, sc};
        dataset_t ds;
        EXPECT(dataset_open_shards(&ds, three, 3, err, sizeof err) == 0 && dataset_check_shards(&ds, &byte, "t", 8, err, sizeof err) == 0);
        EXPECT_MSG(ds.n_tokens == 6037 && ds.n_train == 1037 + 4500 && ds.n_val == 500, "%zu tokens, %zu train", ds.n_tokens, ds.n_train);
        int32_t got[2000];
        int ok = 1;
        for (size_t off = 900; off < 1100; off += 7) {  // windows over both boundaries
            dataset_tokens(&ds, off, 900, got);
            for (int i = 0; i < 900; i++) ok &= got[i] == text[off + (size_t)i];
        }
        EXPECT(ok);
        EXPECT(ds.text_bytes == 6037 && ds.text_fnv1a64 != fnv1a64(text, 6037));  // a combined hash
        dataset_free(&ds);
    }
    TEST_CASE("--val: a text or a shard; their tokens are the same") {
        const char *vp = write_file("val.txt", text + 100, 3000), *vs = path_of("val.shard");
        uint64_t c;
        EXPECT(shard_prepare(vp, vs, &bpe, &c, err, sizeof err) == 0);
        dataset_t a, b;
        EXPECT(dataset_read(&a, tp, err, sizeof err) == 0);
        a.all_train = 1;
        EXPECT(dataset_tokenize(&a, tp, &bpe, 8, err, sizeof err) == 0 && a.n_train == a.n_tokens && a.val == NULL);
        EXPECT(dataset_read(&b, tp, err, sizeof err) == 0);
        b.all_train = 1;
        EXPECT(dataset_tokenize(&b, tp, &bpe, 8, err, sizeof err) == 0);
        EXPECT(dataset_load_val(&a, vp, &bpe, 8, err, sizeof err) == 0 && dataset_load_val(&b, vs, &bpe, 8, err, sizeof err) == 0);
        EXPECT(a.n_val == b.n_val && a.n_val > 500 && memcmp(a.val, b.val, a.n_val * sizeof(int32_t)) == 0);
        dataset_free(&a);
        EXPECT(dataset_read(&a, tp, err, sizeof err) == 0);
        a.all_train = 1;
        EXPECT(dataset_tokenize(&a, tp, &byte, 8, err, sizeof err) == 0);
        EXPECT(dataset_load_val(&a, vs, &byte, 8, err, sizeof err) == -1 && strstr(err, "another tokenizer (bpe, 300 tokens)"));
        const char *tiny = write_file("tiny.txt", "abc", 3);
        EXPECT(dataset_load_val(&a, tiny, &byte, 8, err, sizeof err) == -1 && strstr(err, "fewer than ctx+1 = 9"));
        dataset_free(&a);
        dataset_free(&b);
    }
    tok_free(&bpe);
    free(text);
}

// Open the bytes as a shard and require failure with a message containing want.
static void expect_bad(const char *what, const uint8_t *b, size_t n, const char *want) {
    const char *p = write_file("bad.shard", b, n);
    shard_t s;
    char err[512] = "";
    int rc = shard_open(&s, p, err, sizeof err);
    EXPECT_MSG(rc == -1 && strstr(err, want) && !strchr(err, '\n'), "%s: rc %d, \"%s\" (want \"%s\")", what, rc, err, want);
    if (rc == 0) shard_close(&s);
}

static void test_damage(void) {
    char err[512];
    const char *tp = write_file("d.txt", "hello world, hello shards", 25), *sp = path_of("d.shard");
    tokenizer_t byte;
    tok_init_byte(&byte);
    uint64_t c;
    EXPECT(shard_prepare(tp, sp, &byte, &c, err, sizeof err) == 0 && c == 25);
    size_t n;
    uint8_t *good = read_all(sp, &n), *b = malloc(n + 8);
    TEST_CASE("damage: every truncation, a longer file, each header field") {
        for (size_t k = 0; k < n; k++) expect_bad("truncated", good, k, k < 8 ? "truncated" : "truncated");
        memcpy(b, good, n);
        b[n] = 0;
        expect_bad("longer", b, n + 1, "longer than its header says");
        memcpy(b, good, n);
        b[0] = 'X';
        expect_bad("magic", b, n, "is not a token shard (no ATNLSHRD magic)");
        memcpy(b, good, n);
        b[8] = 7;
        expect_bad("version", b, n, "has version 7; this build reads version 1");
        memcpy(b, good, n);
        b[12] = 8;
        expect_bad("width", b, n, "token width 8 bits");
        memcpy(b, good, n);
        b[24] = 200;  // n_train 200 > 25 tokens
        expect_bad("n_train", b, n, "its training split (200) exceeds its 25 tokens");
        memcpy(b, good, n);
        b[64 + 3] ^= 1;  // a byte of the tokenizer JSON
        expect_bad("json", b, n, "tokenizer JSON does not match the hash");
        memcpy(b, good, n);
        b[60] += 64;
        expect_bad("data offset", b, n, "data offset");
    }
    TEST_CASE("damage: a token outside the vocabulary is named when read") {
        memcpy(b, good, n);
        uint32_t off = (uint32_t)b[60] | (uint32_t)b[61] << 8;
        b[off + 2 * 3 + 1] = 0x02;  // token 3 becomes 0x02xx >= 256
        const char *p = write_file("oov.shard", b, n);
        shard_t s;
        EXPECT(shard_open(&s, p, err, sizeof err) == 0);
        int32_t ids[25];
        EXPECT(shard_read(&s, 0, 3, 256, ids, err, sizeof err) == 0);
        EXPECT(shard_read(&s, 0, 25, 256, ids, err, sizeof err) == -1 && strstr(err, "at index 3 is outside the vocabulary of 256"));
        shard_close(&s);
    }
    TEST_CASE("damage: a text given as a shard, a missing file") {
        EXPECT(shard_is_shard(tp) == 0 && shard_is_shard(sp) == 1 && shard_is_shard(path_of("none")) == 0);
        shard_t s;
        EXPECT(shard_open(&s, path_of("none"), err, sizeof err) == -1 && strstr(err, "No such file"));
        EXPECT(shard_prepare(path_of("none"), path_of("x.shard"), &byte, &c, err, sizeof err) == -1 && strstr(err, "cannot open"));
        const char *empty = write_file("empty.txt", "", 0);
        EXPECT(shard_prepare(empty, path_of("x.shard"), &byte, &c, err, sizeof err) == -1 && strstr(err, "is empty"));
        EXPECT(access(path_of("x.shard"), F_OK) != 0 && access(path_of("x.shard.tmp"), F_OK) != 0);
    }
    free(good);
    free(b);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/attnlab_test_shard_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    test_round_trip();
    test_damage();
    int rc = test_main_end();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) rc = 1;
    return rc;
}
