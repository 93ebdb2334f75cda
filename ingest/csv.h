/* csv: RFC 4180 comma-separated values (CT-RATE's reports, labels and
 * metadata tables).
 *
 * Quoted fields may hold commas, doubled quotes and newlines; a UTF-8 BOM
 * is skipped; CRLF and LF both end a record. The first record is the
 * header; csv_col() finds a column by name (exact, after trimming spaces).
 * Field pointers are valid until the next csv_next(). */
#ifndef FVLM_INGEST_CSV_H
#define FVLM_INGEST_CSV_H

#include <stddef.h>

#include "buf.h"
#include "error.h"

typedef struct CsvReader {
    const char *p, *end;
    Buf store;           /* the current record's fields, NUL-separated */
    size_t *offs;        /* field offsets into store */
    int nf, cap;
    int row;             /* data row number, 1-based (the header is row 0) */
    int line;            /* physical line where the current record starts */
    char **header;
    int nheader;
    Buf hstore;
} CsvReader;

int csv_open(CsvReader *r, const char *text, size_t n, FvErr *e);
/* 1 for a record, 0 at the end, -1 for an unterminated quote. */
int csv_next(CsvReader *r, FvErr *e);
int csv_col(const CsvReader *r, const char *name);
/* Field i of the current record ("" when the record is shorter). */
const char *csv_field(const CsvReader *r, int i);
void csv_close(CsvReader *r);

#endif
