// fuzz_tokenizer.c — libFuzzer harness for the tokenizers. The first byte picks the tokenizer and
// where the input splits; the char tokenizer's vocabulary is built from the first part (when it is
// valid UTF-8), or a BPE vocabulary of 257..288 tokens is learned from it (when it supports that
// many). Then, on the second part: encode of any bytes (byte and bpe always succeed; whatever
// encodes must decode back to the same bytes), decode of any id sequence (ids taken from the bytes,
// modulo the vocabulary; re-encoding the decoded text must give the same ids — for bpe, the same
// text), the JSON form's round trip, and tok_from_json on the raw input (a bpe "merges" list
// included). See docs/testing.md "Fuzzing".
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

static void check_round_trip(const tokenizer_t *t, const unsigned char *s, size_t n) {
    int32_t *ids = NULL;
    size_t k = 0;
    char err[512];
    if (tok_encode(t, s, n, &ids, &k, "fuzz", err, sizeof err) != 0) {
        if (t->kind != TOK_CHAR || !err[0] || ids || k) abort();  // byte and bpe accept anything
        return;
    }
    unsigned char *back = malloc((size_t)tok_max_token_bytes(t) * k + 1);
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        if (ids[i] < 0 || ids[i] >= t->vocab_size) abort();
        int len = tok_decode(t, ids[i], back + m);
        if (len != tok_token_bytes(t, ids[i])) abort();
        m += (size_t)len;
    }
    if (m != n || memcmp(back, s, n) != 0) abort();  // encode then decode is the identity
    free(back);
    free(ids);
}

static void check_decode_ids(const tokenizer_t *t, const unsigned char *s, size_t n) {
    size_t k = n / 2;
    int32_t *ids = malloc((k + 1) * sizeof *ids);
    unsigned char *text = malloc((size_t)tok_max_token_bytes(t) * k + 1);
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        ids[i] = (int32_t)(((unsigned)s[2 * i] << 8 | s[2 * i + 1]) % (unsigned)t->vocab_size);
        m += (size_t)tok_decode(t, ids[i], text + m);
    }
    int32_t *again = NULL;
    size_t k2 = 0;
    char err[512];
    if (tok_encode(t, text, m, &again, &k2, NULL, err, sizeof err) != 0) abort();  // decoded text is encodable
    if (t->kind == TOK_BPE) {  // bpe may spell the text with other ids, never other bytes
        check_round_trip(t, text, m);
    } else if (k2 != k || (k && memcmp(again, ids, k * sizeof *ids) != 0)) {
        abort();  // to the same ids
    }
    free(again);
    free(text);
    free(ids);
}

static void check_json(const tokenizer_t *t) {
    char *json = tok_to_json(t), err[512];
    tokenizer_t u;
    if (tok_from_json(&u, json, err, sizeof err) != 0) abort();
    if (u.kind != t->kind || u.vocab_size != t->vocab_size) abort();
    if (t->kind == TOK_CHAR && memcmp(u.codepoints, t->codepoints, (size_t)t->vocab_size * sizeof *t->codepoints)) abort();
    if (t->kind == TOK_BPE && memcmp(u.bpe->merges, t->bpe->merges, (size_t)(t->vocab_size - 256) * 2 * sizeof(int32_t))) abort();
    tok_free(&u);
    free(json);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size < 1) return 0;
    unsigned sel = data[0];
    const unsigned char *s = data + 1;
    size_t n = size - 1, split = n ? (sel >> 1) % (n + 1) : 0;
    tokenizer_t t;
    char err[512];
    if (sel & 1) {
        if (tok_build_char(&t, s, split, err, sizeof err) != 0) {
            if (!err[0]) abort();
            tok_init_byte(&t);
        }
    } else if (sel & 2) {
        if (tok_learn_bpe(&t, s, split, 257 + (int)(sel >> 3) % 32, err, sizeof err) != 0) {
            if (!err[0] || !strstr(err, "more than the training text supports")) abort();
            tok_init_byte(&t);
        }
    } else {
        tok_init_byte(&t);
    }
    check_round_trip(&t, s + split, n - split);
    check_round_trip(&t, s, split);
    check_decode_ids(&t, s + split, n - split);
    check_json(&t);
    tok_free(&t);

    // The raw input as tokenizer JSON (a checkpoint's "tokenizer" metadata).
    char *json = malloc(size + 1);
    memcpy(json, data, size);
    json[size] = 0;
    tokenizer_t u;
    if (tok_from_json(&u, json, err, sizeof err) == 0) {
        check_json(&u);
        tok_free(&u);
    } else if (!err[0]) {
        abort();
    }
    free(json);
    return 0;
}
