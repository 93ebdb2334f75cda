/* store: a parsed report into the corpus database.
 *
 * pstore_report replaces the parse rows of one report (sentences, mentions,
 * findings, its study's 'parsed' labels) and marks the report parsed. Labels
 * set by an annotator ('audit') or from a truth file ('gold') are never
 * overwritten; links that align computed for the old sentences are removed
 * (align recomputes them); a report whose sentences carry audited links is not
 * re-parsed (the annotator's work would lose its sentences). Call it inside a
 * transaction: the caller decides how many reports one commit holds. */
#ifndef FVLM_PARSE_STORE_H
#define FVLM_PARSE_STORE_H

#include <stdint.h>

#include "buf.h"
#include "db.h"
#include "error.h"
#include "parse.h"

/* An INSERT of 1, 2, 4, ... 32 rows: a report's rows go in a few statements. */
enum { MI_SIZES = 6 };
typedef struct MultiInsert {
    sqlite3_stmt *st[MI_SIZES];
    int ncol;
} MultiInsert;

typedef struct ParseStore {
    Db *db;
    sqlite3_stmt *audited, *del_links, *del_labels, *unlink_labels, *del_find, *del_ment,
        *del_sent, *max_sent, *mark;
    MultiInsert ins_sent, ins_ment, ins_find, ins_label;
    int *label_task;         /* tasks labelled in the current report */
    int cap_label;
    /* totals written */
    int64_t n_sent, n_ment, n_find, n_label;
} ParseStore;

int pstore_open(ParseStore *s, Db *db, FvErr *e);
void pstore_close(ParseStore *s);

/* Returns 0 when stored, 1 when skipped because the report has audited links
 * (e holds the reason), -1 on a database error. `reparse` is 1 when the report
 * may hold rows of an earlier parse (its parsed_run was set). */
int pstore_report(ParseStore *s, const Parser *p, const ParseResult *r, int64_t report_id,
                  int64_t study_id, int64_t run_id, int reparse, FvErr *e);

#endif
