#include "labels_csv.h"

#include <stdlib.h>
#include <string.h>

int labels_csv_open(LabelsCsv *r, const char *text, size_t len, const char *name, FvErr *e)
{
    memset(r, 0, sizeof *r);
    r->p = text;
    r->end = text + len;
    r->name = name;
    r->next_line = 1;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        r->p += 3;
    r->fields = malloc(LABELS_CSV_MAX_FIELDS * sizeof *r->fields);
    r->off = malloc(LABELS_CSV_MAX_FIELDS * sizeof *r->off);
    if (!r->fields || !r->off)
        return err_set(e, FV_ENOMEM, "%s: out of memory", name);
    return 0;
}

void labels_csv_close(LabelsCsv *r)
{
    free(r->fields);
    free(r->off);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

static int put(LabelsCsv *r, size_t *len, char c, FvErr *e)
{
    if (*len + 1 >= r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 256;
        char *b = realloc(r->buf, nc);
        if (!b)
            return err_set(e, FV_ENOMEM, "%s:%d: out of memory", r->name, r->line);
        r->buf = b;
        r->cap = nc;
    }
    r->buf[(*len)++] = c;
    return 0;
}

int labels_csv_next(LabelsCsv *r, FvErr *e)
{
    /* Skip blank lines. */
    while (r->p < r->end && (*r->p == '\n' || *r->p == '\r')) {
        if (*r->p == '\n')
            r->next_line++;
        r->p++;
    }
    if (r->p >= r->end)
        return 0;
    r->line = r->next_line;
    size_t len = 0;
    /* Field starts are kept as offsets: buf may move while it grows. */
    size_t *off = r->off;
    int nf = 0, rc = -1;
    off[nf++] = 0;
    const char *p = r->p;
    for (;;) {
        if (p < r->end && *p == '"') {
            /* Quoted field: up to the closing quote; "" is one quote. */
            p++;
            for (;;) {
                if (p >= r->end) {
                    err_set(e, FV_EFORMAT, "%s:%d: a quoted field is not closed", r->name, r->line);
                    goto out;
                }
                if (*p == '"') {
                    if (p + 1 < r->end && p[1] == '"') {
                        if (put(r, &len, '"', e))
                            goto out;
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                if (*p == '\n')
                    r->next_line++;
                if (put(r, &len, *p, e))
                    goto out;
                p++;
            }
            if (p < r->end && *p == '\r' && p + 1 < r->end && p[1] == '\n')
                p++;
            if (p < r->end && *p != ',' && *p != '\n') {
                err_set(e, FV_EFORMAT, "%s:%d: text after the closing quote of field %d", r->name,
                        r->line, nf);
                goto out;
            }
        } else {
            while (p < r->end && *p != ',' && *p != '\n') {
                if (*p == '"') {
                    err_set(e, FV_EFORMAT, "%s:%d: a quote inside unquoted field %d", r->name,
                            r->line, nf);
                    goto out;
                }
                if (*p == '\r' && (p + 1 == r->end || p[1] == '\n')) {
                    p++;
                    continue;
                }
                if (put(r, &len, *p, e))
                    goto out;
                p++;
            }
        }
        if (put(r, &len, '\0', e))
            goto out;
        if (p < r->end && *p == ',') {
            p++;
            if (nf >= LABELS_CSV_MAX_FIELDS) {
                err_set(e, FV_ELIMIT, "%s:%d: more than %d fields", r->name, r->line,
                        LABELS_CSV_MAX_FIELDS);
                goto out;
            }
            off[nf++] = len;
            continue;
        }
        if (p < r->end && *p == '\n') {
            p++;
            r->next_line++;
        }
        break;
    }
    r->p = p;
    for (int i = 0; i < nf; i++)
        r->fields[i] = r->buf + off[i];
    r->nf = nf;
    rc = 1;
out:
    return rc;
}
