#include "normalize.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "utf8.h"

/* Worst case output of one input code point: utf8proc's longest compatibility
 * decomposition is 18 code points of up to 4 bytes each. */
enum { NORM_MAX_CP_OUT = 18, NORM_MAX_BYTES_OUT = NORM_MAX_CP_OUT * 4 };

void norm_free(NormText *t)
{
    free(t->s);
    free(t->map);
    memset(t, 0, sizeof *t);
}

static int reserve(NormText *t, size_t extra, FvErr *e)
{
    if (t->n + extra + 1 <= t->cap)
        return 0;
    size_t cap = t->cap ? t->cap : 256;
    while (cap < t->n + extra + 1)
        cap *= 2;
    char *s = realloc(t->s, cap);
    if (!s)
        return err_set(e, FV_ENOMEM, "normalising report: out of memory (%zu bytes)", cap);
    t->s = s;
    uint32_t *m = realloc(t->map, cap * sizeof *m);
    if (!m)
        return err_set(e, FV_ENOMEM, "normalising report: out of memory (%zu bytes)", cap * 4);
    t->map = m;
    t->cap = cap;
    return 0;
}

/* Punctuation and spaces that NFKC leaves alone but the rules should see in
 * one form. Returns the replacement, or cp itself. */
static int32_t unify(int32_t cp)
{
    switch (cp) {
    case 0x2018: case 0x2019: case 0x201A: case 0x2032: return '\'';
    case 0x201C: case 0x201D: case 0x201E: case 0x2033: return '"';
    case 0x2010: case 0x2011: case 0x2012: case 0x2013: case 0x2014: case 0x2015:
    case 0x2212: case 0xFE58: case 0xFE63: return '-';
    case 0x3010: case 0x3014: case 0x3016: case 0x300C: case 0x300E: return '[';
    case 0x3011: case 0x3015: case 0x3017: case 0x300D: case 0x300F: return ']';
    case 0x00B7: case 0x2022: case 0x30FB: return 0x00B7;
    case 0xFF61: return 0x3002;  /* half-width ideographic full stop */
    case 0xFF64: return 0x3001;  /* half-width ideographic comma */
    case 0x3000: case 0x00A0: case 0x2007: case 0x202F: case 0x200B: return ' ';
    default: return cp;
    }
}

static int is_hspace(int32_t cp)
{
    return cp == ' ' || cp == '\t' || cp == '\v' || cp == '\f' || (cp >= 0x2000 && cp <= 0x200A);
}

/* Appends one normalised code point that came from original offset `from`.
 * *space is 1 while the previous output was a collapsed space. */
static void put_cp(NormText *t, int32_t cp, uint32_t from, int *space)
{
    cp = unify(cp);
    if (cp == '\r')
        cp = '\n';
    if (is_hspace(cp)) {
        if (*space)
            return;
        *space = 1;
        cp = ' ';
    } else {
        *space = 0;
    }
    if (cp < 0x80) {
        t->map[t->n] = from;
        t->s[t->n++] = (char)cp;
        return;
    }
    unsigned char out[4];
    size_t k = utf8_encode(cp, out);
    for (size_t i = 0; i < k; i++) {
        t->map[t->n] = from;
        t->s[t->n++] = (char)out[i];
    }
}

int norm_build(NormText *t, const char *src, size_t n, FvErr *e)
{
    t->n = 0;
    t->n_invalid = t->n_nul = t->n_upper = 0;
    t->orig = src;
    t->orig_n = n;
    if (n >= NORM_MAX_INPUT)
        return err_set(e, FV_ELIMIT, "report of %zu bytes is larger than the limit of %zu bytes", n,
                       NORM_MAX_INPUT);
    /* Most reports grow little: reserve the input size plus slack up front. */
    if (reserve(t, n + n / 8 + 16, e))
        return -1;
    const unsigned char *p = (const unsigned char *)src;
    int space = 0;
    size_t i = 0;
    while (i < n) {
        if (t->n + NORM_MAX_BYTES_OUT + 5 > t->cap && reserve(t, NORM_MAX_BYTES_OUT + 4, e))
            return -1;
        unsigned char c = p[i];
        uint32_t from = (uint32_t)i;
        /* ASCII fast path: the bulk of English text. */
        if (c < 0x80) {
            i++;
            if (c == 0) {
                t->n_nul++;
                continue;
            }
            if (c == '\r') {
                if (i < n && p[i] == '\n')
                    i++;
                put_cp(t, '\n', from, &space);
                continue;
            }
            if (c >= 'A' && c <= 'Z') {
                t->n_upper++;
                c = (unsigned char)(c + 32);
            }
            if (is_hspace(c)) {
                if (space)
                    continue;
                space = 1;
                c = ' ';
            } else {
                space = 0;
            }
            t->map[t->n] = from;
            t->s[t->n++] = (char)c;
            continue;
        }
        int32_t cp;
        size_t used = utf8_decode(p + i, n - i, &cp);
        i += used;
        if (cp < 0) {
            t->n_invalid++;
            put_cp(t, 0xFFFD, from, &space);
            continue;
        }
        /* CJK unified ideographs have no decomposition and no case. */
        if (cp >= 0x4E00 && cp <= 0x9FFF) {
            put_cp(t, cp, from, &space);
            continue;
        }
        utf8proc_int32_t buf[NORM_MAX_CP_OUT];
        int last_bound = 0;
        utf8proc_ssize_t k = utf8proc_decompose_char(
            cp, buf, NORM_MAX_CP_OUT, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD,
            &last_bound);
        if (k < 0 || k > NORM_MAX_CP_OUT) {
            put_cp(t, cp, from, &space);
            continue;
        }
        if (k > 1) {
            utf8proc_ssize_t m = utf8proc_normalize_utf32(buf, k, UTF8PROC_COMPOSE | UTF8PROC_STABLE);
            if (m > 0)
                k = m;
        }
        for (utf8proc_ssize_t j = 0; j < k; j++) {
            int32_t c2 = buf[j];
            if (c2 == 0) {
                t->n_nul++;
                continue;
            }
            put_cp(t, c2, from, &space);
        }
    }
    t->map[t->n] = (uint32_t)n;
    t->s[t->n] = '\0';
    return 0;
}

void norm_orig_span(const NormText *t, size_t a, size_t b, size_t *o0, size_t *o1)
{
    if (a > t->n)
        a = t->n;
    if (b > t->n)
        b = t->n;
    if (b <= a) {
        *o0 = *o1 = t->map[a];
        return;
    }
    *o0 = t->map[a];
    size_t last = t->map[b - 1];
    int32_t cp;
    size_t len = utf8_decode((const unsigned char *)t->orig + last, t->orig_n - last, &cp);
    if (len == 0)
        len = 1;
    /* "\r\n" became one "\n": the span covers both bytes. */
    if (t->orig[last] == '\r' && last + 1 < t->orig_n && t->orig[last + 1] == '\n')
        len = 2;
    *o1 = last + len;
    if (*o1 > t->orig_n)
        *o1 = t->orig_n;
}

int norm_was_upper(const NormText *t, size_t i)
{
    if (i >= t->n)
        return 0;
    unsigned char c = (unsigned char)t->orig[t->map[i]];
    return c >= 'A' && c <= 'Z';
}

char *norm_string(const char *s, size_t n)
{
    NormText t = {0};
    FvErr e = {0};
    if (norm_build(&t, s, n, &e)) {
        norm_free(&t);
        return NULL;
    }
    /* Terms never carry leading or trailing space. */
    size_t a = 0, b = t.n;
    while (a < b && (t.s[a] == ' ' || t.s[a] == '\n'))
        a++;
    while (b > a && (t.s[b - 1] == ' ' || t.s[b - 1] == '\n'))
        b--;
    char *out = malloc(b - a + 1);
    if (out) {
        memcpy(out, t.s + a, b - a);
        out[b - a] = '\0';
    }
    norm_free(&t);
    return out;
}
