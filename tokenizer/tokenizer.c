// tokenizer.c — byte, char and BPE tokenizers, strict UTF-8, JSON form for checkpoints, tiktoken
// export (see tokenizer.h).
// UTF-8 validity is base/utf8.h's (Unicode 15 Table 3-7). Strings read from JSON appear in
// messages only through shown() (base/shown.h).
#include "tokenizer/tokenizer.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "base/shown.h"
#include "base/utf8.h"
#include "tokenizer/bpe_train.h"

#define TOK_MAX_CP 0x10FFFFu
#define TOK_BMP 0x10000u
#define TOK_MAX_VOCAB (1 << 21)
#define TOK_MAX_MERGES (1 << 20)

// ---------------------------------------------------------------------------- UTF-8 (base/utf8.h)

static int invalid_utf8(char *err, size_t errlen, const char *what, size_t off) {
    return seterr(err, errlen, "%s%schar tokenizer: invalid UTF-8 at byte offset %zu (use --tokenizer byte for binary text)",
                  what ? what : "", what ? ": " : "", off);
}

// ---------------------------------------------------------------------------- construction

void tok_init_byte(tokenizer_t *t) {
    memset(t, 0, sizeof *t);
    t->kind = TOK_BYTE;
    t->vocab_size = 256;
}

void tok_init_raw(tokenizer_t *t, int vocab) {
    CHECK(vocab >= 1 && vocab <= TOK_MAX_VOCAB);
    memset(t, 0, sizeof *t);
    t->kind = TOK_RAW;
    t->vocab_size = vocab;
}

int tok_is_text(const tokenizer_t *t) { return t->kind != TOK_RAW; }

// Fill the BMP lookup table from t->codepoints (char tokenizers only).
static void build_lookup(tokenizer_t *t) {
    t->bmp = xmalloc(TOK_BMP * sizeof(int32_t));
    memset(t->bmp, 0xFF, TOK_BMP * sizeof(int32_t));  // -1 everywhere
    for (int i = 0; i < t->vocab_size && t->codepoints[i] < TOK_BMP; i++) t->bmp[t->codepoints[i]] = i;
}

int tok_build_char(tokenizer_t *t, const uint8_t *text, size_t n, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    if (n == 0) return seterr(err, errlen, "char tokenizer: the text is empty");
    // One bit per possible code point (136 KiB): distinct + sorted in one pass.
    uint64_t *seen = xcalloc((TOK_MAX_CP + 1) / 64, sizeof(uint64_t));
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int len = utf8_decode(text + i, n - i, &cp);
        if (!len) {
            free(seen);
            return invalid_utf8(err, errlen, NULL, i);
        }
        seen[cp >> 6] |= 1ull << (cp & 63);
        i += (size_t)len;
    }
    int count = 0;
    for (size_t w = 0; w < (TOK_MAX_CP + 1) / 64; w++) count += __builtin_popcountll(seen[w]);
    t->kind = TOK_CHAR;
    t->vocab_size = count;
    t->codepoints = xmalloc((size_t)count * sizeof(uint32_t));
    int k = 0;
    for (size_t w = 0; w < (TOK_MAX_CP + 1) / 64; w++)  // the set bits of each word, lowest first
        for (uint64_t bits = seen[w]; bits; bits &= bits - 1)
            t->codepoints[k++] = (uint32_t)(64 * w) + (uint32_t)__builtin_ctzll(bits);
    free(seen);
    build_lookup(t);
    return 0;
}

int tok_from_merges(tokenizer_t *t, const int32_t *merges, int n_merges, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    bpe_t *b = xmalloc(sizeof *b);
    if (bpe_build(b, merges, n_merges, err, errlen)) {
        free(b);
        return -1;
    }
    t->kind = TOK_BPE;
    t->vocab_size = b->vocab;
    t->bpe = b;
    return 0;
}

int tok_learn_bpe(tokenizer_t *t, const uint8_t *text, size_t n, int vocab, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    bpe_counts_t *c = bpe_counts_new(err, errlen);
    if (!c) return -1;
    bpe_counts_add(c, text, n, 1);
    int32_t *merges;
    int rc = bpe_learn(c, vocab, &merges, err, errlen);
    bpe_counts_free(c);
    if (rc) return -1;
    rc = tok_from_merges(t, merges, vocab - 256, err, errlen);
    free(merges);
    return rc;
}

void tok_free(tokenizer_t *t) {
    free(t->codepoints);
    free(t->bmp);
    if (t->bpe) bpe_free(t->bpe);
    free(t->bpe);
    memset(t, 0, sizeof *t);
}

int tok_kind_parse(const char *name, tok_kind_t *kind) {
    if (!strcmp(name, "byte")) *kind = TOK_BYTE;
    else if (!strcmp(name, "char")) *kind = TOK_CHAR;
    else if (!strcmp(name, "bpe")) *kind = TOK_BPE;
    else return -1;
    return 0;
}

const char *tok_kind_name(tok_kind_t kind) {
    switch (kind) {
    case TOK_BYTE: return "byte";
    case TOK_CHAR: return "char";
    case TOK_BPE: return "bpe";
    case TOK_RAW: return "raw";
    }
    return "unknown";
}

// ---------------------------------------------------------------------------- encode / decode

// Id of code point cp, or -1 if it is not in the vocabulary.
static int32_t char_id(const tokenizer_t *t, uint32_t cp) {
    if (cp < TOK_BMP) return t->bmp[cp];
    int lo = 0, hi = t->vocab_size - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (t->codepoints[mid] < cp) lo = mid + 1;
        else if (t->codepoints[mid] > cp) hi = mid - 1;
        else return mid;
    }
    return -1;
}

// A cut-off UTF-8 sequence at the end of text[0..n) that more text could complete: its length
// (1..3), else 0.
static size_t incomplete_tail(const uint8_t *text, size_t n) {
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        uint8_t lead = text[n - k];
        if ((lead & 0xC0) == 0x80) continue;  // a continuation byte: look further back
        int need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        return need > (int)k ? k : 0;
    }
    return 0;
}

int tok_encode_stream(const tokenizer_t *t, const uint8_t *text, size_t n, int final, int32_t **out, size_t *n_out,
                      size_t *cap, size_t *consumed, size_t base, const char *what, char *err, size_t errlen) {
    size_t start = *n_out;
    if (t->kind == TOK_RAW)
        return seterr(err, errlen, "%s%sthe raw-id tokenizer of a synthetic task encodes no text", what ? what : "", what ? ": " : "");
    if (t->kind == TOK_BPE) {
        *consumed = bpe_encode(t->bpe, text, n, final, out, n_out, cap);
        return 0;
    }
    size_t end = n;
    if (t->kind == TOK_CHAR && !final) end = n - incomplete_tail(text, n);
    if (*cap - *n_out < end) {  // byte and char: at most one id per byte
        size_t want = *n_out + end;
        int32_t *grown = realloc(*out, (want ? want : 1) * sizeof **out);
        if (!grown) die(EXIT_RUNTIME, "out of memory (tokens)");
        *out = grown;
        *cap = want;
    }
    int32_t *ids = *out;
    size_t k = *n_out;
    if (t->kind == TOK_BYTE) {
        for (size_t i = 0; i < end; i++) ids[k++] = text[i];
    } else {
        for (size_t i = 0; i < end;) {
            uint32_t cp;
            int len = utf8_decode(text + i, end - i, &cp);
            if (!len) {
                *n_out = start;
                return invalid_utf8(err, errlen, what, base + i);
            }
            int32_t id = char_id(t, cp);
            if (id < 0) {
                *n_out = start;
                char shown[8] = "";
                if (cp >= 0x20 && cp <= 0x7E) snprintf(shown, sizeof shown, " ('%c')", (char)cp);
                return seterr(err, errlen,
                              "%s%scharacter U+%04X%s at byte offset %zu is not in the checkpoint's char vocabulary",
                              what ? what : "", what ? ": " : "", (unsigned)cp, shown, base + i);
            }
            ids[k++] = id;
            i += (size_t)len;
        }
    }
    *n_out = k;
    *consumed = end;
    return 0;
}

int tok_encode(const tokenizer_t *t, const uint8_t *text, size_t n, int32_t **out, size_t *n_out,
               const char *what, char *err, size_t errlen) {
    *out = NULL;
    *n_out = 0;
    size_t cap = 0, consumed;
    int32_t *ids = xmalloc(sizeof *ids);  // allocated even for an empty text
    cap = 1;
    if (tok_encode_stream(t, text, n, 1, &ids, n_out, &cap, &consumed, 0, what, err, errlen)) {
        free(ids);
        *n_out = 0;
        return -1;
    }
    *out = ids;
    return 0;
}

int tok_token_bytes(const tokenizer_t *t, int32_t id) {
    CHECK(id >= 0 && id < t->vocab_size && t->kind != TOK_RAW);
    if (t->kind == TOK_BPE) return (int)(t->bpe->offsets[id + 1] - t->bpe->offsets[id]);
    return t->kind == TOK_BYTE ? 1 : utf8_len(t->codepoints[id]);
}

int tok_max_token_bytes(const tokenizer_t *t) {
    return t->kind == TOK_BPE ? (int)t->bpe->max_token_bytes : t->kind == TOK_CHAR ? 4 : 1;
}

int tok_decode(const tokenizer_t *t, int32_t id, uint8_t *buf) {
    CHECK(id >= 0 && id < t->vocab_size && t->kind != TOK_RAW);
    if (t->kind == TOK_BYTE) {
        buf[0] = (uint8_t)id;
        return 1;
    }
    if (t->kind == TOK_BPE) {
        size_t len;
        const uint8_t *s = bpe_token(t->bpe, id, &len);
        memcpy(buf, s, len);
        return (int)len;
    }
    return utf8_encode(t->codepoints[id], buf);
}

int tok_write_tiktoken(const tokenizer_t *t, FILE *f) {
    static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint8_t *buf = xmalloc((size_t)tok_max_token_bytes(t));
    char *line = xmalloc(((size_t)tok_max_token_bytes(t) + 2) / 3 * 4 + 32);
    int rc = 0;
    for (int32_t id = 0; id < t->vocab_size && rc == 0; id++) {
        int n = tok_decode(t, id, buf), k = 0;
        for (int i = 0; i < n; i += 3) {  // 3 bytes -> 4 symbols, '=' for the missing ones
            uint32_t v = (uint32_t)buf[i] << 16 | (i + 1 < n ? (uint32_t)buf[i + 1] << 8 : 0) | (i + 2 < n ? buf[i + 2] : 0);
            line[k++] = B64[v >> 18 & 63];
            line[k++] = B64[v >> 12 & 63];
            line[k++] = i + 1 < n ? B64[v >> 6 & 63] : '=';
            line[k++] = i + 2 < n ? B64[v & 63] : '=';
        }
        k += snprintf(line + k, 32, " %d\n", (int)id);
        if (fwrite(line, 1, (size_t)k, f) != (size_t)k) rc = -1;
    }
    free(buf);
    free(line);
    return rc;
}

// ---------------------------------------------------------------------------- JSON

char *tok_to_json(const tokenizer_t *t) {
    if (t->kind == TOK_BYTE) return xstrdup("{\"kind\":\"byte\"}");
    if (t->kind == TOK_RAW) {
        char buf[64];
        snprintf(buf, sizeof buf, "{\"kind\":\"raw\",\"vocab\":%d}", t->vocab_size);
        return xstrdup(buf);
    }
    if (t->kind == TOK_BPE) {  // each pair is at most 2·7 digits and 4 characters
        int n = t->vocab_size - 256;
        size_t cap = 64 + (size_t)n * 20, len = 0;
        char *s = xmalloc(cap);
        len += (size_t)snprintf(s, cap, "{\"kind\":\"bpe\",\"merges\":[");
        for (int i = 0; i < n; i++)
            len += (size_t)snprintf(s + len, cap - len, "%s[%d,%d]", i ? "," : "", (int)t->bpe->merges[2 * i],
                                    (int)t->bpe->merges[2 * i + 1]);
        snprintf(s + len, cap - len, "]}");
        return s;
    }
    // Each code point is at most 7 digits plus a comma.
    size_t cap = 64 + (size_t)t->vocab_size * 8, len = 0;
    char *s = xmalloc(cap);
    len += (size_t)snprintf(s, cap, "{\"kind\":\"char\",\"codepoints\":[");
    for (int i = 0; i < t->vocab_size; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s%u", i ? "," : "", (unsigned)t->codepoints[i]);
    snprintf(s + len, cap - len, "]}");
    return s;
}

// Parse the codepoints array of a char tokenizer into t (kind already TOK_CHAR).
static int parse_codepoints(tokenizer_t *t, const cJSON *arr, char *err, size_t errlen) {
    if (!cJSON_IsArray(arr)) return seterr(err, errlen, "tokenizer JSON: \"codepoints\" must be an array");
    int n = cJSON_GetArraySize(arr);
    if (n < 1 || n > TOK_MAX_VOCAB)
        return seterr(err, errlen, "tokenizer JSON: \"codepoints\" has %d entries, expected 1..%d", n, TOK_MAX_VOCAB);
    t->codepoints = xmalloc((size_t)n * sizeof(uint32_t));
    t->vocab_size = n;
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, arr) {
        double d = cJSON_IsNumber(item) ? item->valuedouble : -1;
        if (!(d >= 0 && d <= TOK_MAX_CP) || d != (double)(uint32_t)d)
            return seterr(err, errlen, "tokenizer JSON: codepoints[%d] is not an integer in 0..0x10FFFF", i);
        uint32_t cp = (uint32_t)d;
        if (cp >= 0xD800 && cp <= 0xDFFF)
            return seterr(err, errlen, "tokenizer JSON: codepoints[%d] = U+%04X is a surrogate, not a character", i, (unsigned)cp);
        if (i > 0 && cp <= t->codepoints[i - 1])
            return seterr(err, errlen, "tokenizer JSON: codepoints are not strictly increasing at index %d", i);
        t->codepoints[i++] = cp;
    }
    return 0;
}

// Parse the merges array of a BPE tokenizer into t.
static int parse_merges(tokenizer_t *t, const cJSON *arr, char *err, size_t errlen) {
    if (!cJSON_IsArray(arr)) return seterr(err, errlen, "tokenizer JSON: \"merges\" must be an array");
    int n = cJSON_GetArraySize(arr);
    if (n < 1 || n > TOK_MAX_MERGES)
        return seterr(err, errlen, "tokenizer JSON: \"merges\" has %d entries, expected 1..%d", n, TOK_MAX_MERGES);
    int32_t *m = xmalloc((size_t)n * 2 * sizeof *m);
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, arr) {
        if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 2) {
            free(m);
            return seterr(err, errlen, "tokenizer JSON: merges[%d] is not a pair [left, right]", i);
        }
        for (int k = 0; k < 2; k++) {
            const cJSON *v = cJSON_GetArrayItem(item, k);
            double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
            if (!(d >= 0 && d < 256 + i) || d != (double)(int32_t)d) {
                free(m);
                return seterr(err, errlen, "tokenizer JSON: merges[%d][%d] is not a token id defined before it (0..%d)", i, k, 255 + i);
            }
            m[2 * i + k] = (int32_t)d;
        }
        i++;
    }
    char sub[256];
    int rc = tok_from_merges(t, m, n, sub, sizeof sub);
    free(m);
    if (rc) return seterr(err, errlen, "tokenizer JSON: %s", sub);
    return 0;
}

int tok_from_json(tokenizer_t *t, const char *json, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    cJSON *root = cJSON_Parse(json);
    if (!root) return seterr(err, errlen, "tokenizer JSON: not valid JSON");
    int rc = -1;
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(root, "kind");
    const cJSON *cps = cJSON_GetObjectItemCaseSensitive(root, "codepoints");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(root, "merges");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(root, "vocab");
    tok_kind_t k;
    if (!cJSON_IsObject(root)) {
        seterr(err, errlen, "tokenizer JSON: expected an object");
        goto done;
    }
    for (const cJSON *it = root->child; it; it = it->next)
        if (strcmp(it->string, "kind") && strcmp(it->string, "codepoints") && strcmp(it->string, "merges") &&
            strcmp(it->string, "vocab")) {
            seterr(err, errlen, "tokenizer JSON: unknown key \"%s\"", shown(it->string).s);
            goto done;
        }
    if (!cJSON_IsString(kind)) {
        seterr(err, errlen, "tokenizer JSON: missing string \"kind\"");
        goto done;
    }
    if (!strcmp(kind->valuestring, "raw")) {
        double v = cJSON_IsNumber(vocab) ? vocab->valuedouble : -1;
        if (cps || merges || !(v >= 1 && v <= TOK_MAX_VOCAB && v == floor(v))) {
            seterr(err, errlen, "tokenizer JSON: a raw tokenizer has an integer \"vocab\" in [1, %d] and no \"codepoints\" or \"merges\"", TOK_MAX_VOCAB);
            goto done;
        }
        tok_init_raw(t, (int)v);
        rc = 0;
        goto done;
    }
    if (vocab) {
        seterr(err, errlen, "tokenizer JSON: only a raw tokenizer has \"vocab\"");
        goto done;
    }
    if (tok_kind_parse(kind->valuestring, &k)) {
        seterr(err, errlen, "tokenizer JSON: unknown kind \"%s\" (known: byte, char, bpe, raw)", shown(kind->valuestring).s);
        goto done;
    }
    if (merges && k != TOK_BPE) {
        seterr(err, errlen, "tokenizer JSON: a %s tokenizer has no \"merges\"", tok_kind_name(k));
        goto done;
    }
    if (k == TOK_BPE) {
        if (cps) {
            seterr(err, errlen, "tokenizer JSON: a bpe tokenizer has no \"codepoints\"");
            goto done;
        }
        if (!merges) {
            seterr(err, errlen, "tokenizer JSON: bpe tokenizer without \"merges\"");
            goto done;
        }
        rc = parse_merges(t, merges, err, errlen);
        goto done;
    }
    if (k == TOK_BYTE) {
        if (cps) {
            seterr(err, errlen, "tokenizer JSON: a byte tokenizer has no \"codepoints\"");
            goto done;
        }
        tok_init_byte(t);
        rc = 0;
        goto done;
    }
    if (!cps) {
        seterr(err, errlen, "tokenizer JSON: char tokenizer without \"codepoints\"");
        goto done;
    }
    t->kind = TOK_CHAR;
    if (parse_codepoints(t, cps, err, errlen)) goto done;
    build_lookup(t);
    rc = 0;
done:
    cJSON_Delete(root);
    if (rc) tok_free(t);
    return rc;
}

int tok_copy(tokenizer_t *dst, const tokenizer_t *src, char *err, size_t errlen) {
    char *json = tok_to_json(src);
    int rc = tok_from_json(dst, json, err, errlen);
    free(json);
    return rc;
}
