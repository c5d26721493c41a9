// shown.h — untrusted text (from a file or the command line) made safe to print in a one-line
// message: every byte that is not printable is written as \xNN, so no control character or terminal
// escape sequence (ESC, CSI, BEL, CR, newline, ...) reaches the terminal; a backslash becomes \\.
// Well-formed UTF-8 above U+009F passes through (names in any script stay readable); C1 controls
// (U+0080..U+009F) and bytes that are not well-formed UTF-8 are escaped byte by byte. Long text is
// cut after SHOWN_MAX input bytes and marked "...".
//
// Returned by value so several can appear in one message: `shown(name).s` lives until the end of
// the full expression, e.g. seterr(err, n, "tensor '%s' ...", shown(name).s).
#ifndef ATTNLAB_SHOWN_H
#define ATTNLAB_SHOWN_H

#define SHOWN_MAX 200

typedef struct {
    char s[4 * SHOWN_MAX + 4];  // every input byte as \xNN at worst, then "..." and NUL
} shown_t;

shown_t shown(const char *text);

#endif
