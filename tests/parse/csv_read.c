#include "csv_read.h"

#include <stdlib.h>
#include <string.h>

void csv_init(CsvReader *r, const char *text, size_t n)
{
    memset(r, 0, sizeof *r);
    r->p = text;
    r->end = text + n;
}

void csv_free(CsvReader *r)
{
    free(r->buf);
    r->buf = NULL;
}

int csv_next(CsvReader *r)
{
    if (r->p >= r->end)
        return 0;
    /* a row never needs more room than its bytes in the file */
    size_t need = (size_t)(r->end - r->p) + 1;
    if (need > r->cap) {
        char *b = realloc(r->buf, need);
        if (!b)
            return -1;
        r->buf = b;
        r->cap = need;
    }
    char *w = r->buf;
    r->nf = 0;
    for (;;) {
        if (r->nf >= CSV_MAX_FIELDS)
            return -1;
        char *start = w;
        if (r->p < r->end && *r->p == '"') {
            r->p++;
            for (;;) {
                if (r->p >= r->end)
                    return -1;
                if (*r->p == '"') {
                    if (r->p + 1 < r->end && r->p[1] == '"') {
                        *w++ = '"';
                        r->p += 2;
                        continue;
                    }
                    r->p++;
                    break;
                }
                *w++ = *r->p++;
            }
        }
        while (r->p < r->end && *r->p != ',' && *r->p != '\n' && *r->p != '\r')
            *w++ = *r->p++;
        r->field[r->nf] = start;
        r->flen[r->nf] = (size_t)(w - start);
        *w++ = '\0';
        r->nf++;
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == '\r')
            r->p++;
        if (r->p < r->end && *r->p == '\n')
            r->p++;
        break;
    }
    r->row++;
    return 1;
}
