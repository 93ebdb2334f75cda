/* csv_read: a small RFC 4180 reader for the CT-RATE CSV files the parse
 * tests and benchmark read (quoted fields, "" escapes, line breaks inside
 * quotes). Fields point into a buffer owned by the reader, valid until the
 * next csv_next. */
#ifndef FVLM_TESTS_CSV_READ_H
#define FVLM_TESTS_CSV_READ_H

#include <stddef.h>

enum { CSV_MAX_FIELDS = 64 };

typedef struct CsvReader {
    const char *p, *end;
    char *buf;
    size_t cap;
    char *field[CSV_MAX_FIELDS];
    size_t flen[CSV_MAX_FIELDS];
    int nf;
    int row;       /* 1-based row just read */
} CsvReader;

void csv_init(CsvReader *r, const char *text, size_t n);
/* 1 for a row, 0 at the end, -1 on malformed input (unterminated quote,
 * too many fields, no memory). */
int csv_next(CsvReader *r);
void csv_free(CsvReader *r);

#endif
