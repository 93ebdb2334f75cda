/* parse_util: small helpers the parser's modules share (parser.c,
 * sentences.c, polarity.c): byte classes of normalised text and array growth.
 * Private to parse/. */
#ifndef FVLM_PARSE_UTIL_H
#define FVLM_PARSE_UTIL_H

#include <stddef.h>
#include <stdlib.h>

#include "buf.h"
#include "error.h"

/* Grows an array of `size`-byte items so that one more fits. */
static inline int grow(void **arr, int n, int *cap, size_t size, FvErr *e)
{
    return arr_reserve(arr, cap, n, size, 64)
               ? err_set(e, FV_ENOMEM, "parsing report: out of memory")
               : 0;
}

static inline int is_word(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z');
}

static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static inline int is_space(unsigned char c) { return c == ' ' || c == '\n'; }

/* Lead byte of a code point in U+3000..U+9FFF (CJK punctuation, kana, ideographs). */
static inline int is_cjk_lead(unsigned char c) { return c >= 0xE3 && c <= 0xE9; }

/* U+3002 IDEOGRAPHIC FULL STOP. */
static inline int is_zh_stop(const char *s, size_t i, size_t n)
{
    return i + 2 < n && (unsigned char)s[i] == 0xE3 &&
           (unsigned char)s[i + 1] == 0x80 && (unsigned char)s[i + 2] == 0x82;
}

/* U+3001 IDEOGRAPHIC COMMA (an enumeration mark, not a clause boundary). */
static inline int is_zh_enum(const char *s, size_t i, size_t n)
{
    return i + 2 < n && (unsigned char)s[i] == 0xE3 && (unsigned char)s[i + 1] == 0x80 &&
           (unsigned char)s[i + 2] == 0x81;
}

/* Start of the code point before byte i (i > 0). */
static inline size_t prev_cp(const char *s, size_t i)
{
    size_t k = i - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    return k;
}

#endif
