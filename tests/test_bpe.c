// test_bpe.c — byte-level BPE: the GPT-2 split on tricky cases, streaming split == whole split,
// learning (tie rule, determinism, errors), encoding == a slow reference of tiktoken's definition,
// round trips of random byte strings (invalid UTF-8 included), streaming encode, the JSON form and
// the tiktoken export.
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "tests/testlib.h"
#include "tokenizer/bpe_train.h"
#include "tokenizer/pretok.h"
#include "tokenizer/tokenizer.h"

// ---------------------------------------------------------------------------- the split

typedef struct {
    char pieces[64][64];
    int n;
    size_t bytes;
} pieces_t;

static void collect(void *ctx, const uint8_t *s, size_t len) {
    pieces_t *p = ctx;
    if (p->n < 64 && len < 64) {
        memcpy(p->pieces[p->n], s, len);
        p->pieces[p->n][len] = 0;
    }
    p->n++;
    p->bytes += len;
}

// Split text and compare with the expected pieces (NULL-terminated).
static void expect_split(pretok_t *pt, const char *text, const char *const *want) {
    pieces_t got = {0};
    pretok_split(pt, (const uint8_t *)text, strlen(text), 1, collect, &got);
    int nw = 0;
    while (want[nw]) nw++;
    int same = got.n == nw;
    for (int i = 0; same && i < nw; i++) same = strcmp(got.pieces[i], want[i]) == 0;
    if (!same) {
        printf("  split of \"%s\": got %d pieces:", text, got.n);
        for (int i = 0; i < got.n && i < 64; i++) printf(" [%s]", got.pieces[i]);
        printf("\n");
    }
    EXPECT(same);
}

static void test_split(void) {
    char err[256];
    pretok_t *pt = pretok_new(err, sizeof err);
    EXPECT(pt != NULL);
    if (!pt) return;
    TEST_CASE("split: words, contractions, case-sensitive 's") {
        expect_split(pt, "Hello world", (const char *[]){"Hello", " world", NULL});
        expect_split(pt, "I'm here, it's we'll they've you're I'd don't",
                     (const char *[]){"I", "'m", " here", ",", " it", "'s", " we", "'ll", " they", "'ve", " you", "'re",
                                      " I", "'d", " don", "'t", NULL});
        expect_split(pt, "IT'S", (const char *[]){"IT", "'", "S", NULL});  // 's only in lower case
        expect_split(pt, "'sand", (const char *[]){"'s", "and", NULL});
    }
    TEST_CASE("split: numbers and punctuation") {
        expect_split(pt, "abc123def 42 3.14", (const char *[]){"abc", "123", "def", " 42", " 3", ".", "14", NULL});
        expect_split(pt, "hello!!! ...?", (const char *[]){"hello", "!!!", " ...?", NULL});
        expect_split(pt, "x=-1", (const char *[]){"x", "=-", "1", NULL});
    }
    TEST_CASE("split: spaces (a run gives its last space to the next word)") {
        expect_split(pt, "  hello", (const char *[]){" ", " hello", NULL});
        expect_split(pt, "a   b", (const char *[]){"a", "  ", " b", NULL});
        expect_split(pt, "hi  \n", (const char *[]){"hi", "  \n", NULL});           // \s++$ at the end
        expect_split(pt, "hi  \nx", (const char *[]){"hi", "  ", "\n", "x", NULL});  // \s+(?!\S), then \s
        expect_split(pt, "a\n\nb", (const char *[]){"a", "\n", "\n", "b", NULL});
        expect_split(pt, "a \tb", (const char *[]){"a", " ", "\t", "b", NULL});
        expect_split(pt, "end \n", (const char *[]){"end", " \n", NULL});
    }
    TEST_CASE("split: Unicode letters and digits") {
        expect_split(pt, "na\xC3\xAFve caf\xC3\xA9", (const char *[]){"na\xC3\xAFve", " caf\xC3\xA9", NULL});
        // 日本語 (letters), U+1D518 MATHEMATICAL FRAKTUR CAPITAL U (a letter outside the BMP)
        expect_split(pt, "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9D\x94\x98!",
                     (const char *[]){"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", " \xF0\x9D\x94\x98", "!", NULL});
        // Arabic-Indic digits ٣٤ are \p{N}; a no-break space U+00A0 is \s, not " "
        expect_split(pt, "x \xD9\xA3\xD9\xA4", (const char *[]){"x", " \xD9\xA3\xD9\xA4", NULL});
        expect_split(pt, "a\xC2\xA0" "b", (const char *[]){"a", "\xC2\xA0", "b", NULL});
    }
    TEST_CASE("split: invalid UTF-8 bytes are pieces of their own") {
        expect_split(pt, "a\xFF" "b", (const char *[]){"a", "\xFF", "b", NULL});
        expect_split(pt, "ab\xE2\x82", (const char *[]){"ab", "\xE2", "\x82", NULL});  // cut-off sequence
        expect_split(pt, "\xC0\xAF!", (const char *[]){"\xC0", "\xAF", "!", NULL});   // overlong '/'
        expect_split(pt, " \xFF", (const char *[]){" ", "\xFF", NULL});
    }
    TEST_CASE("split: streaming in chunks gives the pieces of the whole text") {
        rng_t r;
        rng_seed(&r, 7);
        static const char *atoms[] = {"a", "Z", " ", "  ", "\n", "'s", "'", "7", ".", "\xC3\xA9", "\xFF", "\xE2\x82", "\xAC", "\t"};
        for (int trial = 0; trial < 200; trial++) {
            char text[600];
            size_t n = 0;
            while (n < 500) {
                const char *a = atoms[rng_below(&r, sizeof atoms / sizeof *atoms)];
                int rep = rng_below(&r, 8) == 0 ? 40 : 1;  // long runs cross chunk ends
                for (int k = 0; k < rep && n + strlen(a) < sizeof text; k++) {
                    memcpy(text + n, a, strlen(a));
                    n += strlen(a);
                }
            }
            pieces_t whole = {0}, parts = {0};
            pretok_split(pt, (const uint8_t *)text, n, 1, collect, &whole);
            // feed growing prefixes as a reader would: keep the unconsumed tail, add a chunk
            size_t done = 0, have = 0;
            while (have < n) {
                have += 1 + rng_below(&r, 40);
                if (have > n) have = n;
                done += pretok_split(pt, (const uint8_t *)text + done, have - done, have == n, collect, &parts);
            }
            int same = whole.n == parts.n && whole.bytes == n && parts.bytes == n && done == n;
            for (int i = 0; same && i < whole.n && i < 64; i++) same = strcmp(whole.pieces[i], parts.pieces[i]) == 0;
            EXPECT_MSG(same, "trial %d: %d pieces whole, %d streamed", trial, whole.n, parts.n);
            if (!same) break;
        }
    }
    pretok_free(pt);
}

// ---------------------------------------------------------------------------- learning

static int learn(const char *text, int vocab, tokenizer_t *t, char *err, size_t errlen) {
    return tok_learn_bpe(t, (const uint8_t *)text, strlen(text), vocab, err, errlen);
}

static void test_learn(void) {
    char err[256];
    TEST_CASE("learn: ties go to the smallest (left, right) ids") {
        // pieces "ab", " cd": every pair occurs once; (' ', c) = (32, 99) < (97, 98) < (99, 100)
        tokenizer_t t;
        EXPECT(learn("ab cd", 259, &t, err, sizeof err) == 0);
        const int32_t want[] = {32, 99, 97, 98, 256, 100};
        for (int i = 0; i < 6 && t.bpe; i++) EXPECT_MSG(t.bpe->merges[i] == want[i], "merges[%d] = %d, want %d", i, t.bpe->merges[i], want[i]);
        tok_free(&t);
    }
    TEST_CASE("learn: the most frequent pair first, counted over repeated pieces") {
        tokenizer_t t;
        EXPECT(learn("xy xy xy ab", 257, &t, err, sizeof err) == 0);  // (x, y) 3 beats (' ', x) 2
        EXPECT(t.bpe && t.bpe->merges[0] == 'x' && t.bpe->merges[1] == 'y');
        tok_free(&t);
        EXPECT(learn("aaaa", 258, &t, err, sizeof err) == 0);  // (a,a) x3 -> [aa, aa]; then (aa, aa)
        EXPECT(t.bpe && t.bpe->merges[0] == 'a' && t.bpe->merges[1] == 'a' && t.bpe->merges[2] == 256 && t.bpe->merges[3] == 256);
        tok_free(&t);
    }
    TEST_CASE("learn: the same text gives the same merges") {
        char text[4000];
        rng_t r;
        rng_seed(&r, 3);
        static const char *words[] = {"the", " cat", " sat", " on", " mat", "'s", "\n", " the", " a", "!"};
        size_t n = 0;
        while (n < 3900) {
            const char *w = words[rng_below(&r, 10)];
            memcpy(text + n, w, strlen(w));
            n += strlen(w);
        }
        text[n] = 0;
        tokenizer_t a, b;
        EXPECT(learn(text, 270, &a, err, sizeof err) == 0 && learn(text, 270, &b, err, sizeof err) == 0);
        EXPECT(a.vocab_size == 270 && b.vocab_size == 270);
        EXPECT(a.bpe && b.bpe && memcmp(a.bpe->merges, b.bpe->merges, 14 * 2 * sizeof(int32_t)) == 0);
        tok_free(&a);
        tok_free(&b);
    }
    TEST_CASE("learn: vocab below 257 or beyond what the text supports is refused") {
        tokenizer_t t;
        EXPECT(learn("hello", 256, &t, err, sizeof err) == -1 && strstr(err, "at least 257"));
        EXPECT(learn("hello", 100, &t, err, sizeof err) == -1 && strstr(err, "--vocab 100"));
        // "ab ab": pieces "ab", " ab" -> at most 3 merges (a b, ' ' a|ab, ...)
        EXPECT(learn("ab ab", 300, &t, err, sizeof err) == -1);
        EXPECT_MSG(strstr(err, "--vocab 300 is more than the training text supports"), "%s", err);
        EXPECT(t.vocab_size == 0 && t.bpe == NULL);
    }
}

// ---------------------------------------------------------------------------- encoding

// tiktoken's definition, directly: a piece that is a token is that token; else merge the adjacent
// pair whose concatenated bytes are the lowest-ranked token (leftmost on ties), found by searching
// the whole vocabulary, until no pair is a token.
static int32_t find_token(const tokenizer_t *t, const uint8_t *s, size_t n) {
    for (int32_t id = 0; id < t->vocab_size; id++) {
        size_t len;
        const uint8_t *b = bpe_token(t->bpe, id, &len);
        if (len == n && memcmp(b, s, n) == 0) return id;
    }
    return -1;
}

typedef struct {
    const tokenizer_t *t;
    int32_t *ids;
    size_t n;
} ref_ctx_t;

static void ref_piece(void *ctx, const uint8_t *s, size_t len) {
    ref_ctx_t *c = ctx;
    int32_t whole = find_token(c->t, s, len);
    if (whole >= 0) {
        c->ids[c->n++] = whole;
        return;
    }
    size_t start[256], plen[256], parts = len;
    for (size_t i = 0; i < len; i++) start[i] = i, plen[i] = 1;
    for (;;) {
        int32_t best = -1;
        size_t at = 0;
        for (size_t i = 0; i + 1 < parts; i++) {
            int32_t id = find_token(c->t, s + start[i], plen[i] + plen[i + 1]);
            if (id >= 0 && (best < 0 || id < best)) best = id, at = i;
        }
        if (best < 0) break;
        plen[at] += plen[at + 1];
        memmove(start + at + 1, start + at + 2, (parts - at - 2) * sizeof *start);
        memmove(plen + at + 1, plen + at + 2, (parts - at - 2) * sizeof *plen);
        parts--;
    }
    for (size_t i = 0; i < parts; i++) c->ids[c->n++] = find_token(c->t, s + start[i], plen[i]);
}

static size_t random_text(rng_t *r, uint8_t *out, size_t max) {
    static const char *atoms[] = {"a", "b", "ab", " ", "  ", "'s", "\n", "c", "1", "\xC3\xA9", "\xFF", "\xE2\x82", "!"};
    size_t n = 0, want = 1 + rng_below(r, max - 8);
    while (n < want) {
        if (rng_below(r, 10) == 0) {
            out[n++] = (uint8_t)rng_below(r, 256);  // any byte
            continue;
        }
        const char *a = atoms[rng_below(r, sizeof atoms / sizeof *atoms)];
        size_t l = strlen(a);
        if (n + l > max) break;
        memcpy(out + n, a, l);
        n += l;
    }
    return n;
}

static void test_encode(void) {
    char err[256];
    rng_t r;
    rng_seed(&r, 11);
    // A vocabulary learned from random text over a small alphabet (many overlapping merges).
    uint8_t train[20000];
    size_t nt = random_text(&r, train, sizeof train);
    while (nt < 15000) nt += random_text(&r, train + nt, sizeof train - nt);
    tokenizer_t t;
    TEST_CASE("encode: a learned vocabulary") { EXPECT(tok_learn_bpe(&t, train, nt, 400, err, sizeof err) == 0); }
    if (!t.bpe) return;
    pretok_t *pt = pretok_new(err, sizeof err);
    TEST_CASE("encode == the slow reference of tiktoken's definition (300 random texts)") {
        for (int trial = 0; trial < 300; trial++) {
            uint8_t s[200];
            size_t n = random_text(&r, s, sizeof s);
            int32_t *ids;
            size_t k;
            EXPECT(tok_encode(&t, s, n, &ids, &k, NULL, err, sizeof err) == 0);
            int32_t ref[200];
            ref_ctx_t c = {&t, ref, 0};
            pretok_split(pt, s, n, 1, ref_piece, &c);
            int same = k == c.n && memcmp(ids, ref, k * sizeof *ids) == 0;
            EXPECT_MSG(same, "trial %d: %zu tokens, reference %zu", trial, k, c.n);
            free(ids);
            if (!same) break;
        }
    }
    TEST_CASE("encode: decode(encode(s)) == s for random byte strings, invalid UTF-8 included") {
        uint8_t *buf = malloc((size_t)tok_max_token_bytes(&t));
        for (int trial = 0; trial < 500; trial++) {
            uint8_t s[300], back[300];
            size_t n = 1 + rng_below(&r, 299);
            for (size_t i = 0; i < n; i++) s[i] = trial % 2 ? (uint8_t)rng_below(&r, 256) : (uint8_t)"ab \n\xFF\xC3"[rng_below(&r, 6)];
            int32_t *ids;
            size_t k, m = 0;
            EXPECT(tok_encode(&t, s, n, &ids, &k, NULL, err, sizeof err) == 0);
            int ok = 1;
            for (size_t i = 0; i < k && ok; i++) {
                int len = tok_decode(&t, ids[i], buf);
                ok = len == tok_token_bytes(&t, ids[i]) && m + (size_t)len <= n;
                if (ok) memcpy(back + m, buf, (size_t)len), m += (size_t)len;
            }
            EXPECT_MSG(ok && m == n && memcmp(back, s, n) == 0, "trial %d: %zu bytes back of %zu", trial, m, n);
            free(ids);
        }
        free(buf);
    }
    TEST_CASE("encode: streaming in chunks == encoding the whole text") {
        for (int trial = 0; trial < 100; trial++) {
            uint8_t s[2000];
            size_t n = random_text(&r, s, sizeof s);
            int32_t *whole, *parts = NULL;
            size_t k, kp = 0, cap = 0, done = 0, have = 0;
            EXPECT(tok_encode(&t, s, n, &whole, &k, NULL, err, sizeof err) == 0);
            while (have < n) {
                have += 1 + rng_below(&r, 64);
                if (have > n) have = n;
                size_t used;
                EXPECT(tok_encode_stream(&t, s + done, have - done, have == n, &parts, &kp, &cap, &used, done, NULL, err, sizeof err) == 0);
                done += used;
            }
            EXPECT(done == n && kp == k && memcmp(whole, parts, k * sizeof *whole) == 0);
            free(whole);
            free(parts);
        }
    }
    TEST_CASE("encode: a long run of one byte (one piece) stays fast and exact") {
        size_t n = 200000;
        uint8_t *s = malloc(n);
        memset(s, 'a', n);
        int32_t *ids;
        size_t k, m = 0;
        EXPECT(tok_encode(&t, s, n, &ids, &k, NULL, err, sizeof err) == 0);
        for (size_t i = 0; i < k; i++) m += (size_t)tok_token_bytes(&t, ids[i]);
        EXPECT(m == n && k < n);
        free(ids);
        free(s);
    }
    pretok_free(pt);
    tok_free(&t);
}

// ---------------------------------------------------------------------------- JSON and export

static void test_json(void) {
    char err[256];
    TEST_CASE("json: bpe round trip, same merges and encodings") {
        tokenizer_t t, u;
        EXPECT(tok_learn_bpe(&t, (const uint8_t *)"the cat the hat the mat", 23, 262, err, sizeof err) == 0);
        char *j = tok_to_json(&t);
        EXPECT(tok_from_json(&u, j, err, sizeof err) == 0);
        EXPECT(u.kind == TOK_BPE && u.vocab_size == 262 && memcmp(u.bpe->merges, t.bpe->merges, 6 * 2 * sizeof(int32_t)) == 0);
        char *j2 = tok_to_json(&u);
        EXPECT(strcmp(j, j2) == 0);
        free(j);
        free(j2);
        tok_free(&t);
        tok_free(&u);
    }
    TEST_CASE("json: bad merges are refused with one line") {
        tokenizer_t u;
        struct { const char *json, *msg; } bad[] = {
            {"{\"kind\":\"bpe\"}", "without \"merges\""},
            {"{\"kind\":\"bpe\",\"merges\":[]}", "has 0 entries"},
            {"{\"kind\":\"bpe\",\"merges\":[[97,98],[256,257]]}", "merges[1][1] is not a token id defined before it"},
            {"{\"kind\":\"bpe\",\"merges\":[[97,-1]]}", "merges[0][1]"},
            {"{\"kind\":\"bpe\",\"merges\":[[97,98.5]]}", "merges[0][1]"},
            {"{\"kind\":\"bpe\",\"merges\":[[97]]}", "merges[0] is not a pair"},
            {"{\"kind\":\"bpe\",\"merges\":[[97,98],[97,98]]}", "merge 1 repeats the bytes of token 256"},
            {"{\"kind\":\"bpe\",\"merges\":[[97,98],[256,99],[97,257]]}", "merge 2 repeats"},  // a|bc? no: a + abc
            {"{\"kind\":\"byte\",\"merges\":[[97,98]]}", "a byte tokenizer has no \"merges\""},
            {"{\"kind\":\"bpe\",\"merges\":[[97,98]],\"codepoints\":[97]}", "no \"codepoints\""},
        };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            err[0] = 0;
            int rc = tok_from_json(&u, bad[i].json, err, sizeof err);
            if (i == 7) {  // [97,257] is "a"+"abc" = "aabc": new bytes, accepted
                EXPECT_MSG(rc == 0, "%s: %s", bad[i].json, err);
                tok_free(&u);
                continue;
            }
            EXPECT_MSG(rc == -1 && strstr(err, bad[i].msg) && !strchr(err, '\n'), "%s: got \"%s\"", bad[i].json, err);
        }
    }
    TEST_CASE("export: tiktoken format, base64 of each token's bytes and its rank") {
        tokenizer_t t;
        EXPECT(tok_from_json(&t, "{\"kind\":\"bpe\",\"merges\":[[104,105],[256,33],[32,257]]}", err, sizeof err) == 0);
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        EXPECT(tok_write_tiktoken(&t, f) == 0);
        fclose(f);
        // token 0 = "\0" -> AA==, 65 'A' -> QQ==, 256 "hi" -> aGk=, 257 "hi!" -> aGkh, 258 " hi!" -> IGhpIQ==
        EXPECT(strncmp(out, "AA== 0\nAQ== 1\n", 14) == 0);
        EXPECT(strstr(out, "\nQQ== 65\n") != NULL);
        EXPECT(strstr(out, "\naGk= 256\naGkh 257\nIGhpIQ== 258\n") != NULL);
        int lines = 0;
        for (size_t i = 0; i < len; i++) lines += out[i] == '\n';
        EXPECT(lines == 259);
        free(out);
        tok_free(&t);
    }
}

int main(void) {
    test_split();
    test_learn();
    test_encode();
    test_json();
    return test_main_end();
}
