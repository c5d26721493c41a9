// test_tokenizer.c — byte and char tokenizers: round trips, vocabularies, strict UTF-8 errors,
// out-of-vocabulary prompts, token byte counts, and the checkpoint JSON form.
#include <stdlib.h>
#include <string.h>

#include "tests/testlib.h"
#include "tokenizer/tokenizer.h"

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

// Build a char vocab from lit and return 0 if it succeeded.
static int build(tokenizer_t *t, const uint8_t *s, size_t n, char *err, size_t errlen) {
    err[0] = 0;
    return tok_build_char(t, s, n, err, errlen);
}

static void test_byte(void) {
    TEST_CASE("byte round trip of all 256 bytes") {
        tokenizer_t t;
        tok_init_byte(&t);
        EXPECT(t.kind == TOK_BYTE && t.vocab_size == 256 && t.codepoints == NULL);
        uint8_t all[256];
        for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
        int32_t *ids;
        size_t n;
        char err[256];
        EXPECT(tok_encode(&t, all, 256, &ids, &n, "prompt", err, sizeof err) == 0);
        EXPECT(n == 256);
        for (size_t i = 0; i < n; i++) {
            uint8_t buf[4];
            EXPECT_MSG(ids[i] == (int32_t)i, "byte %zu encoded as %d", i, ids[i]);
            EXPECT(tok_decode(&t, ids[i], buf) == 1 && buf[0] == i);
            EXPECT(tok_token_bytes(&t, ids[i]) == 1);
        }
        free(ids);
        tok_free(&t);
    }
}

static void test_char_vocab(void) {
    TEST_CASE("char vocab: sorted, distinct, multibyte, BOM and CRLF kept") {
        // BOM, CRLF, 2-byte é (U+E9), 3-byte € (U+20AC), 4-byte 😀 (U+1F600), repeats.
        const char *s = "\xEF\xBB\xBF" "ba\r\nab\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80" "a\r\n\xC3\xA9";
        tokenizer_t t;
        char err[256];
        EXPECT(build(&t, (const uint8_t *)s, strlen(s), err, sizeof err) == 0);
        const uint32_t want[] = {0x0A, 0x0D, 'a', 'b', 0xE9, 0x20AC, 0xFEFF, 0x1F600};
        EXPECT(t.kind == TOK_CHAR);
        EXPECT_MSG(t.vocab_size == 8, "vocab %d, want 8", t.vocab_size);
        for (int i = 0; i < 8 && i < t.vocab_size; i++)
            EXPECT_MSG(t.codepoints[i] == want[i], "codepoints[%d] = U+%04X, want U+%04X", i, t.codepoints[i], want[i]);
        // Round trip: encode then decode gives the text back byte for byte.
        int32_t *ids;
        size_t n;
        EXPECT(tok_encode(&t, (const uint8_t *)s, strlen(s), &ids, &n, "prompt", err, sizeof err) == 0);
        EXPECT(n == 14);
        EXPECT(n >= 1 && ids[0] == 6);  // the BOM is an ordinary token
        char back[64];
        size_t k = 0, bytes = 0;
        for (size_t i = 0; i < n; i++) {
            k += (size_t)tok_decode(&t, ids[i], (uint8_t *)back + k);
            bytes += (size_t)tok_token_bytes(&t, ids[i]);
        }
        EXPECT(k == strlen(s) && memcmp(back, s, k) == 0);
        EXPECT(bytes == strlen(s));
        free(ids);
        tok_free(&t);
    }
    TEST_CASE("tok_token_bytes is the UTF-8 length of each code point") {
        tokenizer_t t;
        char err[256];
        EXPECT(build(&t, S("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"), err, sizeof err) == 0);
        int want[] = {1, 2, 3, 4};
        EXPECT(t.vocab_size == 4);
        for (int i = 0; i < 4 && i < t.vocab_size; i++) EXPECT(tok_token_bytes(&t, i) == want[i]);
        tok_free(&t);
    }
    TEST_CASE("empty text is an error for char") {
        tokenizer_t t;
        char err[256];
        EXPECT(build(&t, (const uint8_t *)"", 0, err, sizeof err) == -1);
        EXPECT(strstr(err, "empty") != NULL);
        tok_free(&t);
    }
    TEST_CASE("char vocab of a text in Tiny Shakespeare's character set is 65 (each char once, round trip)") {
        // Tiny Shakespeare's 65 characters: newline, space, !$&',-.3:;? and both alphabets (13 + 52).
        const char *charset = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        const char *passage = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
                              "First Citizen:\nYou are all resolved rather to die than to famish?\n";
        size_t n_set = strlen(charset), n_passage = strlen(passage), len = 3 * n_passage + n_set;
        uint8_t *buf = malloc(len);
        for (int r = 0; r < 3; r++) memcpy(buf + r * n_passage, passage, n_passage);
        memcpy(buf + 3 * n_passage, charset, n_set);
        EXPECT(n_set == 65);
        tokenizer_t t;
        char err[256];
        EXPECT(build(&t, buf, len, err, sizeof err) == 0);
        EXPECT_MSG(t.vocab_size == 65, "vocab %d, want 65", t.vocab_size);
        int32_t *ids;
        size_t n;
        EXPECT(tok_encode(&t, buf, len, &ids, &n, "text", err, sizeof err) == 0);
        EXPECT(n == len);  // all ASCII: one token per byte
        int seen[65] = {0}, ok = 1;
        for (size_t i = 0; i < n && ok; i++) {
            uint8_t c[4];
            ok = ids[i] >= 0 && ids[i] < 65 && tok_decode(&t, ids[i], c) == 1 && c[0] == buf[i];
            if (ok) seen[ids[i]] = 1;
        }
        EXPECT_MSG(ok, "a token does not decode to its character");
        int distinct = 0;
        for (int i = 0; i < 65; i++) distinct += seen[i];
        EXPECT_MSG(distinct == 65, "%d of the 65 ids used", distinct);
        free(ids);
        free(buf);
        tok_free(&t);
    }
}

static void test_invalid_utf8(void) {
    TEST_CASE("invalid UTF-8 rejected with the offset of the bad sequence") {
        struct {
            const char *s;
            size_t n, off;
            const char *why;
        } cases[] = {
            {"ab\x80", 3, 2, "lone continuation byte"},
            {"a\xC3(", 3, 1, "bad continuation byte"},
            {"abc\xC0\xAF", 5, 3, "overlong 2-byte (C0)"},
            {"\xC1\xBF", 2, 0, "overlong 2-byte (C1)"},
            {"xy\xE0\x80\xAF", 5, 2, "overlong 3-byte"},
            {"x\xF0\x80\x80\xAF", 5, 1, "overlong 4-byte"},
            {"xyz\xED\xA0\x80", 6, 3, "surrogate U+D800"},
            {"\xED\xBF\xBF", 3, 0, "surrogate U+DFFF"},
            {"x\xF4\x90\x80\x80", 5, 1, "above U+10FFFF"},
            {"x\xF5\x80\x80\x80", 5, 1, "lead F5"},
            {"x\xFF", 2, 1, "byte FF"},
            {"abcd\xE2\x82", 6, 4, "truncated 3-byte at end"},
            {"ab\xF0\x9F\x98", 5, 2, "truncated 4-byte at end"},
            {"ab\xE2\x82z", 5, 2, "truncated 3-byte mid-text"},
            {"ab\xE2\x82\xAC", 4, 2, "sequence cut off by the length n"},
            {"\xF0\x9F\x98\x80", 3, 0, "4-byte sequence cut off by the length n"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            tokenizer_t t;
            char err[256], want[64];
            int rc = build(&t, (const uint8_t *)cases[i].s, cases[i].n, err, sizeof err);
            snprintf(want, sizeof want, "invalid UTF-8 at byte offset %zu ", cases[i].off);
            EXPECT_MSG(rc == -1 && strstr(err, want) && strstr(err, "--tokenizer byte"),
                       "%s: rc %d, message \"%s\"", cases[i].why, rc, err);
            EXPECT(t.codepoints == NULL && t.vocab_size == 0);
            tok_free(&t);
        }
        // The limits themselves are valid: U+7FF, U+800, U+D7FF, U+E000, U+FFFF, U+10000, U+10FFFF.
        tokenizer_t t;
        char err[256];
        EXPECT_MSG(build(&t, S("\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF"),
                         err, sizeof err) == 0, "boundary code points rejected: %s", err);
        EXPECT(t.vocab_size == 7 && t.codepoints[0] == 0x7FF && t.codepoints[6] == 0x10FFFF);
        tok_free(&t);
    }
    TEST_CASE("encode: invalid UTF-8 and out-of-vocabulary characters") {
        tokenizer_t t;
        char err[256];
        EXPECT(build(&t, S("hello world\n\xC3\xA9\xF0\x9F\x98\x80"), err, sizeof err) == 0);
        int32_t *ids = (int32_t *)&t;  // must be reset to NULL on error
        size_t n = 99;
        EXPECT(tok_encode(&t, S("hell\xC3"), &ids, &n, "prompt", err, sizeof err) == -1);
        EXPECT_MSG(strstr(err, "prompt") && strstr(err, "invalid UTF-8 at byte offset 4 "), "got \"%s\"", err);
        EXPECT(ids == NULL && n == 0);
        EXPECT(tok_encode(&t, S("hello Zed"), &ids, &n, "prompt", err, sizeof err) == -1);
        EXPECT_MSG(strstr(err, "prompt: character U+005A ('Z') at byte offset 6 is not in the checkpoint's char vocabulary"),
                   "got \"%s\"", err);
        EXPECT(tok_encode(&t, S("ol\tl"), &ids, &n, "prompt", err, sizeof err) == -1);
        EXPECT_MSG(strstr(err, "character U+0009 at byte offset 2 is not"), "got \"%s\"", err);
        EXPECT(tok_encode(&t, S("\xC3\xA9\xE2\x82\xAC"), &ids, &n, "prompt", err, sizeof err) == -1);
        EXPECT_MSG(strstr(err, "character U+20AC at byte offset 2 is not"), "got \"%s\"", err);
        EXPECT(tok_encode(&t, S("\xF0\x9F\x98\x81"), &ids, &n, "prompt", err, sizeof err) == -1);
        EXPECT_MSG(strstr(err, "character U+1F601 at byte offset 0 is not"), "got \"%s\"", err);
        // Astral code points in the vocab (binary-search path) and empty input encode fine.
        EXPECT(tok_encode(&t, S("\xF0\x9F\x98\x80h"), &ids, &n, "prompt", err, sizeof err) == 0);
        EXPECT(n == 2 && ids[0] == t.vocab_size - 1 && ids[1] == 4);  // vocab: \n ' ' d e h l o r w é 😀
        free(ids);
        EXPECT(tok_encode(&t, (const uint8_t *)"", 0, &ids, &n, "prompt", err, sizeof err) == 0 && n == 0);
        free(ids);
        tok_free(&t);
    }
}

static void test_json(void) {
    TEST_CASE("JSON round trip") {
        tokenizer_t t, u;
        char err[256];
        tok_init_byte(&t);
        char *js = tok_to_json(&t);
        EXPECT(strcmp(js, "{\"kind\":\"byte\"}") == 0);
        EXPECT(tok_from_json(&u, js, err, sizeof err) == 0 && u.kind == TOK_BYTE && u.vocab_size == 256);
        free(js);
        tok_free(&u);
        EXPECT(build(&t, S("\r\n\xEF\xBB\xBFzA\xF4\x8F\xBF\xBF"), err, sizeof err) == 0);
        js = tok_to_json(&t);
        EXPECT_MSG(strcmp(js, "{\"kind\":\"char\",\"codepoints\":[10,13,65,122,65279,1114111]}") == 0, "got %s", js);
        EXPECT(tok_from_json(&u, js, err, sizeof err) == 0);
        EXPECT(u.kind == TOK_CHAR && u.vocab_size == t.vocab_size &&
               memcmp(u.codepoints, t.codepoints, (size_t)t.vocab_size * sizeof(uint32_t)) == 0);
        // The parsed tokenizer encodes the same.
        int32_t *a, *b;
        size_t na, nb;
        EXPECT(tok_encode(&t, S("zA\r\n"), &a, &na, NULL, err, sizeof err) == 0);
        EXPECT(tok_encode(&u, S("zA\r\n"), &b, &nb, NULL, err, sizeof err) == 0);
        EXPECT(na == 4 && nb == 4 && memcmp(a, b, 4 * sizeof(int32_t)) == 0);
        free(a);
        free(b);
        free(js);
        tok_free(&t);
        tok_free(&u);
    }
    TEST_CASE("JSON rejection of malformed tokenizers") {
        struct {
            const char *js, *want;
        } cases[] = {
            {"not json", "not valid JSON"},
            {"{\"kind\":\"char\",\"codepoints\":[1,2]", "not valid JSON"},
            {"[1,2]", "expected an object"},
            {"{}", "missing string \"kind\""},
            {"{\"kind\":7}", "missing string \"kind\""},
            {"{\"kind\":\"wordpiece\"}", "unknown kind \"wordpiece\" (known: byte, char, bpe, raw)"},
            {"{\"kind\":\"bpe\"}", "bpe tokenizer without \"merges\""},
            {"{\"kind\":\"byte\",\"extra\":1}", "unknown key \"extra\""},
            {"{\"kind\":\"byte\",\"codepoints\":[1]}", "byte tokenizer has no"},
            {"{\"kind\":\"char\"}", "without \"codepoints\""},
            {"{\"kind\":\"char\",\"codepoints\":{}}", "must be an array"},
            {"{\"kind\":\"char\",\"codepoints\":[]}", "has 0 entries"},
            {"{\"kind\":\"char\",\"codepoints\":[10,32,20]}", "not strictly increasing at index 2"},
            {"{\"kind\":\"char\",\"codepoints\":[10,10]}", "not strictly increasing at index 1"},
            {"{\"kind\":\"char\",\"codepoints\":[10,55296]}", "surrogate"},
            {"{\"kind\":\"char\",\"codepoints\":[57343]}", "surrogate"},
            {"{\"kind\":\"char\",\"codepoints\":[10,1114112]}", "codepoints[1] is not an integer"},
            {"{\"kind\":\"char\",\"codepoints\":[-1]}", "codepoints[0] is not an integer"},
            {"{\"kind\":\"char\",\"codepoints\":[1.5]}", "codepoints[0] is not an integer"},
            {"{\"kind\":\"char\",\"codepoints\":[\"a\"]}", "codepoints[0] is not an integer"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            tokenizer_t t;
            char err[256] = "";
            int rc = tok_from_json(&t, cases[i].js, err, sizeof err);
            EXPECT_MSG(rc == -1 && strstr(err, cases[i].want), "%s: rc %d, message \"%s\"", cases[i].js, rc, err);
            EXPECT(t.codepoints == NULL && t.bmp == NULL);
            tok_free(&t);
        }
    }
    TEST_CASE("tok_kind_parse / tok_kind_name") {
        tok_kind_t k;
        EXPECT(tok_kind_parse("byte", &k) == 0 && k == TOK_BYTE);
        EXPECT(tok_kind_parse("char", &k) == 0 && k == TOK_CHAR);
        EXPECT(tok_kind_parse("bpe", &k) == 0 && k == TOK_BPE);
        EXPECT(tok_kind_parse("BPE", &k) == -1 && tok_kind_parse("Byte", &k) == -1);
        EXPECT(strcmp(tok_kind_name(TOK_BYTE), "byte") == 0 && strcmp(tok_kind_name(TOK_CHAR), "char") == 0 &&
               strcmp(tok_kind_name(TOK_BPE), "bpe") == 0);
    }
}

// Strings from a checkpoint's tokenizer JSON reach messages only escaped (issue 10 item 12).
static void test_untrusted_text(void) {
    TEST_CASE("control characters and terminal escapes from tokenizer JSON are escaped in messages") {
        tokenizer_t t;
        char err[512] = "";
        EXPECT(tok_from_json(&t, "{\"kind\":\"\\u001b[2J\\u009b\\u0007x\"}", err, sizeof err) == -1);
        EXPECT_MSG(strstr(err, "unknown kind \"\\x1b[2J\\xc2\\x9b\\x07x\"") != NULL, "%s", err);
        EXPECT(tok_from_json(&t, "{\"kind\":\"byte\",\"a\\nb\\u001b\":1}", err, sizeof err) == -1);
        EXPECT_MSG(strstr(err, "unknown key \"a\\x0ab\\x1b\"") != NULL, "%s", err);
        for (const unsigned char *p = (const unsigned char *)err; *p; p++) EXPECT(*p >= 0x20 && *p != 0x7f);
    }
    TEST_CASE("char vocabulary from code points in every plane, in order") {
        const char *text = "\xf4\x8f\xbf\xbf a\xc2\x80\xef\xbf\xbd\xf0\x90\x80\x80\x7f";
        tokenizer_t t;
        char err[256];
        EXPECT(tok_build_char(&t, (const uint8_t *)text, strlen(text), err, sizeof err) == 0);
        static const uint32_t want[] = {0x20, 0x61, 0x7f, 0x80, 0xfffd, 0x10000, 0x10ffff};
        EXPECT(t.vocab_size == 7 && memcmp(t.codepoints, want, sizeof want) == 0);
        tok_free(&t);
    }
}

int main(void) {
    test_untrusted_text();
    test_byte();
    test_char_vocab();
    test_invalid_utf8();
    test_json();
    return test_main_end();
}
