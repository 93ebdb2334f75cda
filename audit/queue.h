/* queue: which studies each annotator audits, in the order the lead chose.
 *
 * Orders (score per study, the queue sorted by it):
 *   flags    align's flags first: flags rows, sentences that link to nothing,
 *            continuation links and tasks whose findings disagree in
 *            polarity, counted (most first);
 *   weakest  the study's weakest link first (lowest confidence);
 *   model    disagreement of a trained model with the parsed labels: the
 *            largest |zero-shot score - label| over the study's labelled tasks
 *            (scores supplied by the caller: eval's scoring, see cmd_audit.c);
 *   random   a seeded random sample: the only order whose decisions estimate
 *            the precision of the automatic links and labels without bias.
 * Studies are dealt round-robin to the annotators; with `doubled` = f, a
 * fraction f of them (drawn with the seed) also goes to the next annotator,
 * so agreement can be measured. Building a queue for a user replaces that
 * user's queue. */
#ifndef FVLM_AUDIT_QUEUE_H
#define FVLM_AUDIT_QUEUE_H

#include <stdint.h>

#include "buf.h"
#include "db.h"
#include "error.h"

typedef enum { ORD_FLAGS = 0, ORD_WEAKEST, ORD_MODEL, ORD_RANDOM } QueueOrder;

const char *queue_order_name(QueueOrder o);
int queue_order_parse(const char *s); /* -1 when unknown */

typedef struct StudyScore {
    int64_t study_id;
    double score;
} StudyScore;

typedef struct QueueSpec {
    QueueOrder order;
    char **who;               /* annotators (active users) */
    int n_who;
    double doubled;           /* fraction of studies given to two annotators, [0, 1] */
    uint64_t seed;
    int64_t limit;            /* studies to deal; 0: all */
    const char *split;        /* only this split; NULL: all */
    const StudyScore *model;  /* ORD_MODEL: scores per study (higher first) */
    int n_model;
} QueueSpec;

typedef struct QueueCounts {
    int64_t studies, assigned, doubled;
} QueueCounts;

int queue_build(Db *db, const QueueSpec *q, QueueCounts *c, FvErr *e);

/* The user's queue as a JSON array of {study_id, study_key, pos, ord,
 * score, doubled, done, decisions}. */
int queue_json(Db *db, const char *who, Buf *out, FvErr *e);

/* The first study of the user's queue after position `after` (-1: from the
 * start) that the user has not marked done; *study_id = 0 when none. */
int queue_next(Db *db, const char *who, int64_t after, int64_t *study_id, FvErr *e);

/* Studies matching what a user typed, as a JSON array of {study_id,
 * study_key, matched}: a study id (digits, matched "id"), a study key or its
 * first 8+ hex digits ("key"), or an original identifier ("accession", with
 * "as" naming the kinds it matched): the DICOM AccessionNumber, an archive
 * or study-folder name, a StudyInstanceUID, a CT-RATE volume name, looked up
 * by keyed hash under deid_key (deid_study_lookup; NULL: not searched; the
 * caller checks the key's fingerprint). What was typed is never stored. */
int queue_search(Db *db, const char *q, const char *deid_key, Buf *out, FvErr *e);

#endif
