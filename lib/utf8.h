/* utf8: strict UTF-8 decoding and encoding (RFC 3629).
 *
 * The parse stage uses utf8proc for normalisation; these are the small
 * helpers every module needs (JSON escaping, validation, sanitising input). */
#ifndef FVLM_UTF8_H
#define FVLM_UTF8_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Decodes one code point from s (n bytes available). Returns the bytes used
 * (>= 1 when n >= 1) and sets *cp; *cp = -1 for an invalid or truncated
 * sequence, overlong form or surrogate (then 1 byte is consumed). */
size_t utf8_decode(const unsigned char *s, size_t n, int32_t *cp);

/* Encodes cp into out (4 bytes room). Returns the bytes written; an invalid
 * code point is written as U+FFFD. */
size_t utf8_encode(int32_t cp, unsigned char out[4]);

/* Number of invalid sequences in s. */
size_t utf8_count_invalid(const char *s, size_t n);

/* Appends s to b with every invalid sequence replaced by U+FFFD and NUL
 * bytes dropped. Returns the number of replacements and drops. */
size_t utf8_sanitize(Buf *b, const char *s, size_t n);

#endif
