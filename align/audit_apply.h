/* audit_apply: annotators' decisions (the append-only `audits` table) turned
 * into the rows align reads, so they win over the rules on every re-run.
 *
 * The current decision per item is derived from audits: rows of kind link,
 * status, label or flag that no undo row takes back; per (study, kind, key)
 * a lead's newest decision wins (a lead resolves conflicts), else the newest
 * one. audit_apply_study rewrites the study's human rows from them, inside
 * the caller's transaction:
 *   link    {"sent":IDX,"sha":S,"anatomy":A}: accept sets links.accepted = 1
 *           on the link align found, or adds a link (method and source
 *           'audit') when it found none; reject sets accepted = 0. IDX is the
 *           sentence's place in the report and S the first 16 hex digits of
 *           the SHA-256 of its text: a decision outlives `fvlm parse --all`
 *           (sentence ids change), and one whose sentence changed is stale
 *           and counted, not applied to another sentence.
 *   status  {"anatomy":A}: anatomy_status source 'audit' with the status and
 *           empty texts, so align builds the text the way it would have
 *           (the normal template, or the anatomy's sentences).
 *   label   {"task":T}: labels source 'audit' (present 1, absent 0,
 *           uncertain -1); a label whose decisions were all taken back gets
 *           back the value it had before the first one (kept in `old`).
 *   flag    {"flag":F}: a flags row of kind audit_F with the comment;
 *           wrong_series, bad_mask and not_ct exclude the study's samples.
 * A study without any audits row is left alone (rows written by hand before
 * the workbench existed keep working). */
#ifndef FVLM_ALIGN_AUDIT_APPLY_H
#define FVLM_ALIGN_AUDIT_APPLY_H

#include <sqlite3.h>
#include <stdint.h>

#include "db.h"
#include "error.h"

/* The SQL of the current decisions of one study (parameter 1: study id);
 * columns: id, kind, key, new, who, role, comment, at, old. Shared with audit/. */
extern const char audit_current_sql[];

/* Sentence fingerprint used in link keys: 16 hex digits + NUL. */
void audit_sentence_sha(const char *text, char out[17]);

typedef struct AuditApplyCounts {
    int64_t studies;        /* studies that had decisions */
    int64_t links, statuses, labels, flags;
    int64_t stale;          /* link decisions whose sentence is gone or changed */
    int64_t excluded;       /* studies whose samples a flag excludes */
} AuditApplyCounts;

typedef struct AuditApply {
    Db *db;
    sqlite3_stmt *q[24];
    AuditApplyCounts c;
} AuditApply;

int audit_apply_open(AuditApply *a, Db *db, FvErr *e);
void audit_apply_close(AuditApply *a);
/* Rewrites the study's audit rows; *exclude is set to 1 when a current flag
 * says its image cannot be trained on. Call inside a transaction. */
int audit_apply_study(AuditApply *a, int64_t study_id, int *exclude, FvErr *e);

#endif
