/* decide: annotators' decisions, recorded as append-only `audits` rows, and
 * their effect on the corpus.
 *
 * decide_record validates a decision against the ontology and the study
 * (the sentence belongs to it, the anatomy and task exist, the value is one
 * of the kind's), reads the item's current value as `old`, and inserts one
 * audits row (one autocommitted statement: a crash loses at most the
 * decision being made). decide_realign then re-aligns the study with
 * align_run, which lays the current decisions on it (align/audit_apply.h)
 * and rebuilds its statuses, texts, flags and samples the way align does. A
 * crash between the two leaves the decision recorded and applied by the next
 * align of the study (the server re-aligns audited studies when it starts).
 *
 * Kinds and values (see schemas/migrations/003.sql):
 *   link    sentence + anatomy: accept | reject (accepting a link align did
 *           not find adds it)
 *   status  anatomy: normal | abnormal | unmentioned
 *   label   task: present | absent | uncertain
 *   flag    flag (phi_seen, wrong_series, bad_mask, not_ct): 1 set | 0 clear
 *   done    the study was reviewed whole: 1 (what it left alone stands)
 * decide_undo takes back the user's newest decision that is not yet taken
 * back, with an undo row. */
#ifndef FVLM_AUDIT_DECIDE_H
#define FVLM_AUDIT_DECIDE_H

#include <stdint.h>

#include "align.h"
#include "anatomy_meta.h"
#include "db.h"
#include "error.h"
#include "ontology.h"
#include "run.h"

typedef struct Decision {
    int64_t study_id;
    const char *kind;        /* link, status, label, flag, done */
    int64_t sentence_id;     /* link */
    const char *anatomy;     /* link, status */
    const char *task;        /* label */
    const char *flag;        /* flag */
    const char *value;
    const char *comment;     /* may be NULL; at most 2000 bytes */
    const char *queue;       /* the order the study was served from, or NULL */
} Decision;

/* The flags an annotator can raise. */
extern const char *const decide_flags[];
extern const int decide_n_flags;

/* FV_EUSAGE for a decision that does not fit the study or the ontology,
 * FV_ENOTFOUND for a study or sentence that does not exist. *id: the row. */
int decide_record(Db *db, const Ontology *o, const char *who, int role, const Decision *d,
                  int64_t *id, FvErr *e);

/* FV_ENOTFOUND when the user has nothing left to undo. *study_id: the study
 * the undone decision was about. */
int decide_undo(Db *db, const char *who, int role, int64_t *study_id, FvErr *e);

/* What align needs to re-align one study. */
typedef struct Realign {
    Db *db;
    Run *run;
    const Ontology *o;
    const AnatomyMetaTable *meta;
    const AlignOptions *opt;
} Realign;

int decide_realign(const Realign *r, int64_t study_id, FvErr *e);

#endif
