/* tsv: reading the tab-separated data files of schemas/.
 *
 * Lines starting with '#' and blank lines are skipped; fields are split at
 * tabs (no quoting: the files never need it). The first non-comment row is
 * the header; tsv_col() finds a column by name so files can gain columns.
 * Row fields point into a line buffer owned by the reader and are valid
 * until the next tsv_next(). */
#ifndef FVLM_TSV_H
#define FVLM_TSV_H

#include <stddef.h>

#include "error.h"

enum { TSV_MAX_FIELDS = 64 };

typedef struct TsvReader {
    const char *p, *end;
    const char *name;        /* file name for messages */
    int line;                /* 1-based line of the current row */
    char *fields[TSV_MAX_FIELDS];
    int nf;
    char *header[TSV_MAX_FIELDS];
    int nheader;
    char *linebuf, *headbuf;
    size_t cap;
} TsvReader;

/* Reads the header row. */
int tsv_open(TsvReader *r, const char *text, size_t len, const char *name, FvErr *e);
/* 1 for a row (with exactly nheader fields, else an error), 0 at the end. */
int tsv_next(TsvReader *r, FvErr *e);
/* Column index of a header name, or -1. */
int tsv_col(const TsvReader *r, const char *name);
/* The columns a file must have: cols[i] = tsv_col(names[i]) for the
 * NULL-terminated names; a missing one is an error naming file and column. */
int tsv_cols(const TsvReader *r, const char *const *names, int *cols, FvErr *e);
void tsv_close(TsvReader *r);

/* Splits s in place at sep; returns the count (at most max). */
int str_split(char *s, char sep, char **out, int max);

#endif
