// shown.c — untrusted text made printable (see shown.h).
#include "base/shown.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/utf8.h"

shown_t shown(const char *text) {
    shown_t r;
    char *o = r.s;
    if (!text) text = "(null)";
    size_t n = strlen(text), i = 0;
    const uint8_t *s = (const uint8_t *)text;
    size_t limit = n < SHOWN_MAX ? n : SHOWN_MAX;
    while (i < limit) {
        uint8_t c = s[i];
        if (c >= 0x20 && c < 0x7F) {
            if (c == '\\') *o++ = '\\';
            *o++ = (char)c;
            i++;
            continue;
        }
        uint32_t cp;
        int len = c >= 0x80 ? utf8_decode(s + i, limit - i, &cp) : 0;
        if (len > 0 && cp >= 0xA0) {  // a printable non-ASCII character: keep its bytes
            memcpy(o, s + i, (size_t)len);
            o += len;
            i += (size_t)len;
            continue;
        }
        o += snprintf(o, 5, "\\x%02x", c);  // control, C1 control, or malformed byte
        i++;
    }
    if (limit < n) {
        memcpy(o, "...", 3);
        o += 3;
    }
    *o = 0;
    return r;
}
