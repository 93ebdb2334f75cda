#include "csv.h"

#include <stdlib.h>
#include <string.h>

/* Reads one record into r->store / r->offs. */
static int read_record(CsvReader *r, FvErr *e)
{
    buf_reset(&r->store);
    r->nf = 0;
    if (r->p >= r->end)
        return 0;
    int line = r->line;
    for (;;) {
        if (r->nf == r->cap) {
            int nc = r->cap ? r->cap * 2 : 32;
            size_t *o = realloc(r->offs, (size_t)nc * sizeof *o);
            if (!o)
                return err_set(e, FV_ENOMEM, "csv: out of memory");
            r->offs = o;
            r->cap = nc;
        }
        r->offs[r->nf++] = r->store.len;
        if (r->p < r->end && *r->p == '"') {
            r->p++;
            for (;;) {
                if (r->p >= r->end)
                    return err_set(e, FV_EFORMAT, "line %d: quoted field never closed", line);
                char c = *r->p++;
                if (c == '"') {
                    if (r->p < r->end && *r->p == '"') {
                        buf_putc(&r->store, '"');
                        r->p++;
                        continue;
                    }
                    break;
                }
                if (c == '\n')
                    r->line++;
                buf_putc(&r->store, c);
            }
            /* Anything after the closing quote up to the separator is kept. */
            while (r->p < r->end && *r->p != ',' && *r->p != '\n' && *r->p != '\r')
                buf_putc(&r->store, *r->p++);
        } else {
            const char *s = r->p;
            while (r->p < r->end && *r->p != ',' && *r->p != '\n' && *r->p != '\r')
                r->p++;
            buf_append(&r->store, s, (size_t)(r->p - s));
        }
        buf_putc(&r->store, '\0');
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == '\r')
            r->p++;
        if (r->p < r->end && *r->p == '\n')
            r->p++;
        r->line++;
        break;
    }
    if (r->store.failed)
        return err_set(e, FV_ENOMEM, "csv: out of memory");
    return 1;
}

int csv_open(CsvReader *r, const char *text, size_t n, FvErr *e)
{
    memset(r, 0, sizeof *r);
    r->p = text;
    r->end = text + n;
    r->line = 1;
    if (n >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        r->p += 3;
    int rc = read_record(r, e);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return err_set(e, FV_EFORMAT, "empty file: no header row");
    buf_append(&r->hstore, r->store.data, r->store.len);
    r->header = malloc((size_t)r->nf * sizeof *r->header);
    if (!r->header || r->hstore.failed)
        return err_set(e, FV_ENOMEM, "csv: out of memory");
    r->nheader = r->nf;
    for (int i = 0; i < r->nf; i++) {
        char *h = r->hstore.data + r->offs[i];
        while (*h == ' ')
            h++;
        size_t l = strlen(h);
        while (l && (h[l - 1] == ' ' || h[l - 1] == '\t'))
            h[--l] = '\0';
        r->header[i] = h;
    }
    return 0;
}

int csv_next(CsvReader *r, FvErr *e)
{
    for (;;) {
        int rc = read_record(r, e);
        if (rc <= 0)
            return rc;
        /* Skip blank lines. */
        if (r->nf == 1 && r->store.data[0] == '\0')
            continue;
        r->row++;
        return 1;
    }
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
    return r->store.data + r->offs[i];
}

void csv_close(CsvReader *r)
{
    buf_free(&r->store);
    buf_free(&r->hstore);
    free(r->offs);
    free(r->header);
    memset(r, 0, sizeof *r);
}
