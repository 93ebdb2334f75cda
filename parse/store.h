/* store: a parsed report into the corpus database.
 *
 * pstore_report replaces the parse rows of one report (sentences, mentions,
 * findings, its study's 'parsed' labels) and marks the report parsed. Labels
 * set by an annotator ('audit') or from a truth file ('gold') are never
 * overwritten; links that align computed for the old sentences are removed
 * (align recomputes them); a report whose sentences carry audited links is not
 * re-parsed (the annotator's work would lose its sentences). Call it inside a
 * transaction: the caller decides how many reports one commit holds; each
 * report is written under its own savepoint, so a failed one leaves no rows.
 *
 * Foreign keys: while a ParseStore is open its connection does not enforce
 * them (pstore_open turns enforcement off when no transaction is open, and
 * pstore_close turns it back on). The checks cost a fifth of the write time
 * and cannot fail here: the report and study ids come from the reports row the
 * caller read inside the same write transaction, the sentence ids are the ones
 * this report's rows just inserted, the run id is the caller's run; a re-parse
 * deletes every row that points to the old sentences (mentions, findings,
 * links) or unlinks it (labels) first. tests/parse/test_parse_db.c runs
 * PRAGMA foreign_key_check after parsing and re-parsing. pstore_open also
 * keeps temporary files (the per-report savepoints' sub-journals) in memory
 * (PRAGMA temp_store), restored by pstore_close. */
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
        *del_sent, *max_sent, *mark, *sp_begin, *sp_release, *sp_rollback;
    int fk_restore;          /* 1 when pstore_close turns foreign keys back on */
    int temp_restore;        /* PRAGMA temp_store to restore + 1, or 0 */
    MultiInsert ins_sent, ins_ment, ins_find, ins_label;
    int *label_task;         /* tasks labelled in the current report */
    int cap_label;
    /* totals written */
    int64_t n_sent, n_ment, n_find, n_label;
} ParseStore;

int pstore_open(ParseStore *s, Db *db, FvErr *e);
void pstore_close(ParseStore *s);

/* Returns 0 when stored, 1 when skipped because the report has audited links
 * (e holds the reason), -1 on a database error; in both last cases nothing of
 * the report was written. `reparse` is 1 when the report may hold rows of an
 * earlier parse (its parsed_run was set). */
int pstore_report(ParseStore *s, const Parser *p, const ParseResult *r, int64_t report_id,
                  int64_t study_id, int64_t run_id, int reparse, FvErr *e);

#endif
