/* csv: an RFC 4180 reader, one record at a time, over text in memory
 * (CT-RATE's reports, labels and metadata tables; fvlm synth's truth files).
 *
 * Fields are separated by commas; a quoted field may hold commas, line
 * breaks and "" for one quote. LF or CRLF ends a record; a UTF-8 byte-order
 * mark at the start is skipped, and so are blank lines. Two dialects:
 *   - strict (CSV_STRICT): RFC 4180 to the letter: a quote inside an
 *     unquoted field or text between a closing quote and the next separator
 *     is an error; a lone CR inside an unquoted field is kept as text;
 *   - lenient (0): such quotes and text are kept as they are, and a lone CR
 *     ends a record (old Mac line ends), as spreadsheet exports need.
 * Limits: at most max_fields fields in a record and max_record bytes in one
 * record (its unescaped fields, each with its terminating NUL); more is an
 * FV_ELIMIT error, so no input makes the reader allocate without bound.
 *
 * Errors name the file and the line where the record starts ("labels.csv:12:
 * a quoted field is never closed"; "line 12: ..." when the reader has no
 * name, for callers that prefix their own). Field pointers point into a
 * buffer the reader owns and stay valid until the next csv_next().
 * csv_put_field is the matching writer. */
#ifndef FVLM_CSV_H
#define FVLM_CSV_H

#include <stddef.h>

#include "buf.h"
#include "error.h"

enum {
    CSV_STRICT = 1,               /* flags of csv_open */
    CSV_MAX_FIELDS = 4096,        /* default fields per record */
};
#define CSV_MAX_RECORD ((size_t)64 << 20) /* default bytes per record (64 MiB) */

typedef struct CsvReader {
    const char *p, *end;
    const char *name;     /* file name for messages, or NULL */
    int flags;
    int max_fields;
    size_t max_record;    /* bytes */
    int line;             /* 1-based line where the current record starts */
    int next_line;
    int row;              /* records csv_next has returned (csv_header's is not one) */
    char **field;         /* (nf) the current record's fields, NUL-terminated */
    size_t *len;          /* (nf) their lengths in bytes (a field may hold a NUL) */
    int nf, cap_fields;
    char *buf;            /* the current record's unescaped text */
    size_t cap;
    char **header;        /* (nheader) names read by csv_header, trimmed */
    int nheader;
    char *hbuf;
} CsvReader;

/* Starts reading text[0..len) (not copied: it must outlive the reader).
 * name (may be NULL) is kept for messages; flags is 0 or CSV_STRICT. The
 * limits start at CSV_MAX_FIELDS and CSV_MAX_RECORD; a caller may lower
 * r->max_fields and r->max_record before the first csv_next. */
void csv_open(CsvReader *r, const char *text, size_t len, const char *name, int flags);
/* 1 with a record in field/len/nf, 0 at the end, -1 on malformed input or
 * a limit (the message names file and line). */
int csv_next(CsvReader *r, FvErr *e);
/* Reads the next record as the header: names trimmed of spaces (and tabs at
 * the end), for csv_col. An input without records is an error. */
int csv_header(CsvReader *r, FvErr *e);
/* Column of a header name (exact match), or -1. */
int csv_col(const CsvReader *r, const char *name);
/* Field i of the current record; "" when the record is shorter or i < 0. */
const char *csv_field(const CsvReader *r, int i);
void csv_close(CsvReader *r);

/* Writes one field: as it is, or quoted (with "" for a quote) when it holds
 * a comma, a quote or a line break or begins with a space, so a reader gets
 * it back exactly. NULL writes an empty field. */
void csv_put_field(Buf *b, const char *s);

#endif
