#include "csv.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sets e to "<name>:<line>: <reason>" (or "line <line>: <reason>") for the
 * current record. Returns -1. */
static int csv_fail(const CsvReader *r, FvErr *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int csv_fail(const CsvReader *r, FvErr *e, int code, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (r->name)
        return err_set(e, code, "%s:%d: %s", r->name, r->line, why);
    return err_set(e, code, "line %d: %s", r->line, why);
}

void csv_open(CsvReader *r, const char *text, size_t len, const char *name, int flags)
{
    memset(r, 0, sizeof *r);
    r->p = text;
    r->end = text + len;
    r->name = name;
    r->flags = flags;
    r->max_fields = CSV_MAX_FIELDS;
    r->max_record = CSV_MAX_RECORD;
    r->next_line = 1;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        r->p += 3;
}

void csv_close(CsvReader *r)
{
    free(r->field);
    free(r->len);
    free(r->buf);
    free(r->header);
    free(r->hbuf);
    memset(r, 0, sizeof *r);
}

/* Appends n bytes to the record being read, within max_record. */
static int put(CsvReader *r, size_t *len, const char *s, size_t n, FvErr *e)
{
    if (n > r->max_record || *len > r->max_record - n)
        return csv_fail(r, e, FV_ELIMIT, "a record longer than %zu bytes", r->max_record);
    if (*len + n > r->cap) {
        size_t nc = r->cap ? r->cap : 256;
        while (nc < *len + n)
            nc = nc > SIZE_MAX / 2 ? *len + n : nc * 2;
        char *b = realloc(r->buf, nc);
        if (!b)
            return csv_fail(r, e, FV_ENOMEM, "out of memory");
        r->buf = b;
        r->cap = nc;
    }
    if (n)
        memcpy(r->buf + *len, s, n);
    *len += n;
    return 0;
}

/* Starts field r->nf at offset off of the record text, within max_fields.
 * Offsets wait in r->len until the record is complete: buf may move while
 * it grows. */
static int add_field(CsvReader *r, size_t off, FvErr *e)
{
    if (r->nf >= r->max_fields)
        return csv_fail(r, e, FV_ELIMIT, "more than %d fields", r->max_fields);
    if (r->nf == r->cap_fields) {
        int nc = r->cap_fields ? r->cap_fields * 2 : 32;
        if (nc > r->max_fields)
            nc = r->max_fields;
        char **f = realloc(r->field, (size_t)nc * sizeof *f);
        if (!f)
            return csv_fail(r, e, FV_ENOMEM, "out of memory");
        r->field = f;
        size_t *l = realloc(r->len, (size_t)nc * sizeof *l);
        if (!l)
            return csv_fail(r, e, FV_ENOMEM, "out of memory");
        r->len = l;
        r->cap_fields = nc;
    }
    r->len[r->nf++] = off;
    return 0;
}

int csv_next(CsvReader *r, FvErr *e)
{
    const int strict = r->flags & CSV_STRICT;
    const char *p = r->p, *end = r->end;
    /* Blank lines; a lone CR is a line end only where it ends records. */
    while (p < end && (*p == '\n' || *p == '\r')) {
        if (*p == '\n' || (!strict && (p + 1 == end || p[1] != '\n')))
            r->next_line++;
        p++;
    }
    r->p = p;
    if (p >= end)
        return 0;
    r->line = r->next_line;
    r->nf = 0;
    size_t len = 0;
    for (;;) {
        if (add_field(r, len, e))
            return -1;
        if (p < end && *p == '"') {
            /* Quoted: up to the closing quote; "" is one quote. */
            p++;
            for (;;) {
                const char *q = memchr(p, '"', (size_t)(end - p));
                if (!q)
                    return csv_fail(r, e, FV_EFORMAT, "a quoted field is never closed");
                for (const char *s = p; (s = memchr(s, '\n', (size_t)(q - s))) != NULL; s++)
                    r->next_line++;
                if (put(r, &len, p, (size_t)(q - p), e))
                    return -1;
                if (q + 1 < end && q[1] == '"') {
                    if (put(r, &len, "\"", 1, e))
                        return -1;
                    p = q + 2;
                    continue;
                }
                p = q + 1;
                break;
            }
            if (strict) {
                if (p < end && *p != ',' && *p != '\n' && !(*p == '\r' && p + 1 < end && p[1] == '\n'))
                    return csv_fail(r, e, FV_EFORMAT, "text after the closing quote of field %d",
                                    r->nf);
            } else {
                /* Kept as it is, up to the separator. */
                const char *s = p;
                while (p < end && *p != ',' && *p != '\n' && *p != '\r')
                    p++;
                if (put(r, &len, s, (size_t)(p - s), e))
                    return -1;
            }
        } else {
            const char *s = p;
            while (p < end && *p != ',' && *p != '\n') {
                if (*p == '\r' && (!strict || p + 1 == end || p[1] == '\n'))
                    break;
                if (*p == '"' && strict)
                    return csv_fail(r, e, FV_EFORMAT, "a quote inside unquoted field %d", r->nf);
                p++;
            }
            if (put(r, &len, s, (size_t)(p - s), e))
                return -1;
        }
        if (put(r, &len, "", 1, e))
            return -1;
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p < end && *p == '\r')
            p++;
        if (p < end && *p == '\n')
            p++;
        r->next_line++;
        break;
    }
    r->p = p;
    /* Offsets to pointers and lengths (each field is followed by its NUL). */
    for (int i = 0; i < r->nf; i++) {
        size_t off = r->len[i], next = i + 1 < r->nf ? r->len[i + 1] : len;
        r->field[i] = r->buf + off;
        r->len[i] = next - off - 1;
    }
    r->row++;
    return 1;
}

int csv_header(CsvReader *r, FvErr *e)
{
    int rc = csv_next(r, e);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return r->name ? err_set(e, FV_EFORMAT, "%s: empty file: no header row", r->name)
                       : err_set(e, FV_EFORMAT, "empty file: no header row");
    r->row--;
    size_t bytes = 0;
    for (int i = 0; i < r->nf; i++)
        bytes += r->len[i] + 1;
    free(r->header);
    free(r->hbuf);
    r->nheader = 0;
    r->header = malloc((size_t)r->nf * sizeof *r->header);
    r->hbuf = malloc(bytes);
    if (!r->header || !r->hbuf)
        return csv_fail(r, e, FV_ENOMEM, "out of memory");
    memcpy(r->hbuf, r->buf, bytes);
    for (int i = 0; i < r->nf; i++) {
        char *h = r->hbuf + (r->field[i] - r->buf);
        while (*h == ' ')
            h++;
        size_t l = strlen(h);
        while (l && (h[l - 1] == ' ' || h[l - 1] == '\t'))
            h[--l] = '\0';
        r->header[i] = h;
    }
    r->nheader = r->nf;
    return 0;
}

int csv_col(const CsvReader *r, const char *name)
{
    for (int i = 0; i < r->nheader; i++)
        if (strcmp(r->header[i], name) == 0)
            return i;
    return -1;
}

const char *csv_field(const CsvReader *r, int i)
{
    if (i < 0 || i >= r->nf)
        return "";
    return r->field[i];
}

void csv_put_field(Buf *b, const char *s)
{
    if (!s)
        s = "";
    if (!strpbrk(s, ",\"\r\n") && *s != ' ') {
        buf_puts(b, s);
        return;
    }
    buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"')
            buf_putc(b, '"');
        buf_putc(b, *s);
    }
    buf_putc(b, '"');
}
