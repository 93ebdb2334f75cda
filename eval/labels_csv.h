/* labels_csv: an RFC 4180 reader over a buffer in memory (labels files).
 *
 * Fields are separated by commas; a field may be quoted ("a, b"), with ""
 * standing for one quote inside; records end at LF or CRLF (a quoted field
 * may span lines). A UTF-8 byte-order mark at the start is skipped. Blank
 * lines are skipped. Field pointers refer to a buffer owned by the reader
 * and stay valid until the next labels_csv_next(). */
#ifndef FVLM_EVAL_LABELS_CSV_H
#define FVLM_EVAL_LABELS_CSV_H

#include <stddef.h>

#include "error.h"

enum { LABELS_CSV_MAX_FIELDS = 4096 };

typedef struct LabelsCsv {
    const char *p, *end;
    const char *name;      /* file name for messages */
    int line;              /* 1-based line where the current record starts */
    int next_line;
    char **fields;         /* (LABELS_CSV_MAX_FIELDS) */
    size_t *off;           /* (LABELS_CSV_MAX_FIELDS) field starts in buf while parsing */
    int nf;
    char *buf;             /* the current record's unescaped text */
    size_t cap;
} LabelsCsv;

int labels_csv_open(LabelsCsv *r, const char *text, size_t len, const char *name, FvErr *e);
/* 1 with a record in fields/nf, 0 at the end, -1 on malformed input (an
 * unterminated quote, a quote inside an unquoted field, text after a closing
 * quote, too many fields), naming file and line. */
int labels_csv_next(LabelsCsv *r, FvErr *e);
void labels_csv_close(LabelsCsv *r);

#endif
