// test_shown.c — base/shown.h: untrusted text made printable for one-line messages (issue 10 item
// 12) — every control byte, C1 control and malformed byte as \xNN, a backslash doubled, readable
// UTF-8 kept, long text cut at SHOWN_MAX bytes with "...".
#include "base/shown.h"
#include "tests/testlib.h"

#include <string.h>

static void expect_shown(const char *in, const char *want) {
    const char *got = shown(in).s;
    EXPECT_MSG(strcmp(got, want) == 0, "shown(...) = '%s', want '%s'", got, want);
}

int main(void) {
    TEST_CASE("printable text unchanged; controls, DEL, C1 and malformed bytes escaped") {
        expect_shown("layers.0.attn.wq", "layers.0.attn.wq");
        expect_shown("a\nb\rc\td", "a\\x0ab\\x0dc\\x09d");
        expect_shown("\x1b[2J\x1b]0;title\x07", "\\x1b[2J\\x1b]0;title\\x07");
        expect_shown("\x7f", "\\x7f");
        expect_shown("csi\xc2\x9b" "31m", "csi\\xc2\\x9b31m");            // U+009B, the 8-bit CSI
        expect_shown("caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80");
        expect_shown("bad\xff\xc0\xaf\xed\xa0\x80", "bad\\xff\\xc0\\xaf\\xed\\xa0\\x80");  // invalid, overlong, surrogate
        expect_shown("cut\xe6\x97", "cut\\xe6\\x97");                      // truncated sequence
        expect_shown("back\\slash", "back\\\\slash");
        expect_shown("", "");
        expect_shown(NULL, "(null)");
    }
    TEST_CASE("long text is cut and marked; the worst case fits") {
        char in[4 * SHOWN_MAX];
        memset(in, 'x', sizeof in - 1);
        in[sizeof in - 1] = 0;
        const char *got = shown(in).s;
        EXPECT(strlen(got) == SHOWN_MAX + 3 && strcmp(got + SHOWN_MAX, "...") == 0);
        memset(in, 0x01, sizeof in - 1);
        shown_t r = shown(in);
        EXPECT(strlen(r.s) == 4 * SHOWN_MAX + 3 && strncmp(r.s, "\\x01\\x01", 8) == 0);
    }
    return test_main_end();
}
