// utf8.h — strict UTF-8 (Unicode 15, Table 3-7 "well-formed byte sequences"): no overlong forms,
// no surrogates (U+D800..DFFF), nothing above U+10FFFF. The one validator the tokenizer and the
// safetensors container share.
#ifndef ATTNLAB_UTF8_H
#define ATTNLAB_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UTF8_MAX_CP 0x10FFFFu

// Decode one code point from s[0..n) (n >= 1). Returns its length 1..4, or 0 if the bytes at s do
// not start a well-formed sequence (including one cut off by the end of the text).
int utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);
// Bytes code point cp takes in UTF-8 (1..4); cp must be a scalar value.
int utf8_len(uint32_t cp);
// Write cp's UTF-8 bytes into buf (room for 4); returns the byte count.
int utf8_encode(uint32_t cp, uint8_t *buf);
// True if s[0..n) is well-formed UTF-8 throughout (NUL bytes are well-formed; callers that forbid
// them check separately).
bool utf8_valid(const uint8_t *s, size_t n);

#endif
