/* parse_run: the parse stage over a corpus database (what `fvlm parse`
 * runs; the tool only reads its options).
 *
 * Selects the reports to parse (not parsed yet; every report with `all`; or
 * the ids asked for), reads them in batches, each inside its own write
 * transaction (so the report and study ids the rows point to cannot change
 * before they are written: store.h writes without foreign key checks),
 * parses each (parse.h) and stores it (store.h). A report that fails to
 * parse or to store is recorded with run_error and skipped; its warnings
 * (invalid UTF-8, NUL bytes, empty, headings only, huge sentences) are
 * recorded as errors of the run too, and the report is stored as far as it
 * goes. Progress goes to stderr (lib/log). */
#ifndef FVLM_PARSE_PARSE_RUN_H
#define FVLM_PARSE_PARSE_RUN_H

#include <stdint.h>

#include "buf.h"
#include "db.h"
#include "error.h"
#include "parse.h"
#include "run.h"

enum { PARSE_RUN_MAX_IDS = 64 };

typedef struct ParseRunOptions {
    int all;                    /* re-parse every report, parsed or not */
    const int64_t *reports;     /* report ids to parse (at most PARSE_RUN_MAX_IDS); NULL: all
                                 * not parsed yet (or every one with `all`) */
    int n_reports;
    int batch;                  /* reports per transaction, >= 1 */
} ParseRunOptions;

typedef struct ParseRunCounts {
    int64_t reports;            /* selected */
    int64_t parsed, skipped, with_warnings;
    int64_t sentences, mentions, findings, labels;
    int64_t bytes;              /* report bytes read */
    double seconds;
} ParseRunCounts;

/* Parses the selected reports with parser p, recording errors in run.
 * Returns 0 when the run went through (reports that failed are counted in
 * skipped), -1 on a database error or when memory runs out. */
int parse_run(Db *db, Run *run, const Parser *p, const ParseRunOptions *opt, ParseRunCounts *c,
              FvErr *e);

/* The counts as one JSON object (what the runs row records). */
void parse_run_counts_json(const ParseRunCounts *c, Buf *b);

#endif
