// pretok.c — GPT-2 pre-tokenization with PCRE2 (see pretok.h).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pretok.h"

#include <pcre2.h>
#include <stdlib.h>

#include "base/check.h"

static const char GPT2_PATTERN[] =
    "'(?:[sdmt]|ll|ve|re)| ?\\p{L}++| ?\\p{N}++| ?[^\\s\\p{L}\\p{N}]++|\\s++$|\\s+(?!\\S)|\\s";

struct pretok {
    pcre2_code *code;
    pcre2_match_data *md;
};

pretok_t *pretok_new(char *err, size_t errlen) {
    int ecode;
    PCRE2_SIZE eoff;
    // MATCH_INVALID_UTF: invalid sequences are never matched (they become one-byte pieces) instead
    // of failing the whole match; UCP: \s follows Unicode's White_Space like tiktoken's regex crate.
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)GPT2_PATTERN, PCRE2_ZERO_TERMINATED,
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY, &ecode,
                                     &eoff, NULL);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ecode, msg, sizeof msg);
        seterr(err, errlen, "PCRE2 refused the GPT-2 split pattern at offset %zu: %s", (size_t)eoff, (char *)msg);
        return NULL;
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // without JIT support the interpreter matches the same
    pretok_t *p = xmalloc(sizeof *p);
    p->code = code;
    p->md = pcre2_match_data_create_from_pattern(code, NULL);
    if (!p->md) die(EXIT_RUNTIME, "out of memory (PCRE2 match data)");
    return p;
}

void pretok_free(pretok_t *p) {
    if (!p) return;
    pcre2_match_data_free(p->md);
    pcre2_code_free(p->code);
    free(p);
}

size_t pretok_split(pretok_t *p, const uint8_t *s, size_t n, int final, pretok_piece_fn fn, void *ctx) {
    size_t pos = 0;
    size_t safe = final ? n : (n > PRETOK_MARGIN ? n - PRETOK_MARGIN : 0);  // pieces must end by here
    while (pos < n) {
        int rc = pcre2_match(p->code, (PCRE2_SPTR)s, n, pos, 0, p->md, NULL);
        size_t start = n, end = n;
        if (rc >= 0) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(p->md);
            start = ov[0];
            end = ov[1];
        } else if (rc != PCRE2_ERROR_NOMATCH) {
            die(EXIT_RUNTIME, "PCRE2 match failed (error %d)", rc);
        }
        // Bytes skipped before the match are invalid UTF-8: one piece each. They are final as soon
        // as a later match (or the end of a final text) shows nothing there could match.
        if (rc < 0 && !final) end = start = (safe > pos ? safe : pos);
        for (; pos < start; pos++) fn(ctx, s + pos, 1);
        if (rc < 0) break;
        if (end > safe) break;  // may still grow or change with more text
        CHECK(end > start);     // every alternative consumes at least one character
        fn(ctx, s + start, end - start);
        pos = end;
    }
    return pos;
}
