#include "tsv.h"

#include <stdlib.h>
#include <string.h>

int str_split(char *s, char sep, char **out, int max)
{
    int n = 0;
    char *p = s;
    while (n < max) {
        out[n++] = p;
        char *q = strchr(p, sep);
        if (!q)
            break;
        *q = '\0';
        p = q + 1;
    }
    return n;
}

/* Reads the next non-comment, non-blank line into buf. 1 = got one, 0 = end. */
static int next_line(TsvReader *r, char **buf, FvErr *e)
{
    while (r->p < r->end) {
        const char *nl = memchr(r->p, '\n', (size_t)(r->end - r->p));
        size_t len = nl ? (size_t)(nl - r->p) : (size_t)(r->end - r->p);
        const char *s = r->p;
        r->p = nl ? nl + 1 : r->end;
        r->line++;
        if (len && s[len - 1] == '\r')
            len--;
        if (len == 0 || s[0] == '#')
            continue;
        if (len + 1 > r->cap || !*buf) {
            size_t nc = len + 1 > 256 ? len + 1 : 256;
            char *b = realloc(*buf, nc);
            if (!b)
                return err_set(e, FV_ENOMEM, "%s: out of memory", r->name);
            *buf = b;
            r->cap = nc;
        }
        memcpy(*buf, s, len);
        (*buf)[len] = '\0';
        return 1;
    }
    return 0;
}

int tsv_open(TsvReader *r, const char *text, size_t len, const char *name, FvErr *e)
{
    memset(r, 0, sizeof *r);
    r->p = text;
    r->end = text + len;
    r->name = name;
    int rc = next_line(r, &r->headbuf, e);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return err_set(e, FV_EFORMAT, "%s: no header row", name);
    r->nheader = str_split(r->headbuf, '\t', r->header, TSV_MAX_FIELDS);
    r->cap = 0; /* the header buffer is separate from the row buffer */
    return 0;
}

int tsv_next(TsvReader *r, FvErr *e)
{
    int rc = next_line(r, &r->linebuf, e);
    if (rc <= 0)
        return rc;
    r->nf = str_split(r->linebuf, '\t', r->fields, TSV_MAX_FIELDS);
    if (r->nf != r->nheader)
        return err_set(e, FV_EFORMAT, "%s:%d: %d fields, the header has %d", r->name, r->line,
                       r->nf, r->nheader);
    return 1;
}

int tsv_col(const TsvReader *r, const char *name)
{
    for (int i = 0; i < r->nheader; i++)
        if (strcmp(r->header[i], name) == 0)
            return i;
    return -1;
}

int tsv_cols(const TsvReader *r, const char *const *names, int *cols, FvErr *e)
{
    for (int i = 0; names[i]; i++)
        if ((cols[i] = tsv_col(r, names[i])) < 0)
            return err_set(e, FV_EFORMAT, "%s: header lacks column '%s'", r->name, names[i]);
    return 0;
}

void tsv_close(TsvReader *r)
{
    free(r->linebuf);
    free(r->headbuf);
    memset(r, 0, sizeof *r);
}
