/* normalize: the text the parser's rules see, with a map back to the original.
 *
 * norm_build turns a report (UTF-8, possibly damaged) into its normalised form:
 * Unicode NFKC (utf8proc), full-width forms to ASCII, case folding, one space
 * for every run of horizontal white space, "\r\n" and "\r" to "\n", curly
 * quotes and dashes to ASCII, CJK brackets to ASCII. Invalid UTF-8 sequences
 * become U+FFFD and NUL bytes are dropped; both are counted so the caller can
 * warn. Every normalised byte maps to the original byte offset of the code
 * point that produced it, so a span found in the normalised text can always be
 * shown in the original text (norm_orig_span). */
#ifndef FVLM_PARSE_NORMALIZE_H
#define FVLM_PARSE_NORMALIZE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Reports longer than this are refused (offsets are stored as uint32). */
#define NORM_MAX_INPUT ((size_t)1 << 30)

typedef struct NormText {
    char *s;             /* normalised UTF-8, NUL-terminated; owned */
    size_t n;            /* bytes in s */
    uint32_t *map;       /* n + 1 entries: original offset of the code point behind byte i;
                          * map[n] = original length; owned */
    const char *orig;    /* the original text (borrowed, must outlive the NormText) */
    size_t orig_n;
    size_t n_invalid;    /* invalid UTF-8 sequences replaced by U+FFFD */
    size_t n_nul;        /* NUL bytes dropped */
    size_t n_upper;      /* ASCII capital letters seen (sentence splitting uses them) */
    size_t cap;
} NormText;

/* Builds t from src[0..n). t is reset first; on failure it is left empty.
 * The buffers are reused across calls: call norm_free once at the end. */
int norm_build(NormText *t, const char *src, size_t n, FvErr *e);
void norm_free(NormText *t);

/* The original byte span [*o0, *o1) behind normalised bytes [a, b). */
void norm_orig_span(const NormText *t, size_t a, size_t b, size_t *o0, size_t *o1);

/* 1 when the original character behind normalised byte i was an ASCII capital
 * letter (case folding hides it from the rules, sentence splitting needs it). */
int norm_was_upper(const NormText *t, size_t i);

/* Normalises a short string (a lexicon term) into a malloc'd NUL-terminated
 * copy. Returns NULL when memory runs out. */
char *norm_string(const char *s, size_t n);

#endif
