/* study_view: everything the corpus holds about one study's alignment, read
 * back from the database (what `fvlm show` prints and `fvlm export --format
 * jsonl` writes): the study, its volume and mask tensors, its sentences, and
 * per anatomy the status and texts, the region, the linked sentences, the
 * labels of its tasks and its flags.
 *
 * All strings are owned by the view; view_free releases them. */
#ifndef FVLM_ALIGN_STUDY_VIEW_H
#define FVLM_ALIGN_STUDY_VIEW_H

#include <stdint.h>

#include "anatomy_meta.h"
#include "db.h"
#include "error.h"
#include "json.h"
#include "ontology.h"
#include "regions.h"

typedef struct ViewSentence {
    int64_t id;
    int idx;
    char *section;
    char *text;
    int n_links;                 /* links to an anatomy, rejected ones excluded */
} ViewSentence;

typedef struct ViewLink {
    int sent;                    /* index into StudyView.sent */
    int anatomy;                 /* ontology index; -1 for the "links to none" record */
    char *method;
    double confidence;
    char *source;                /* align or audit */
    int accepted;                /* 1, 0, or -1 when not audited */
    /* why it exists (links.h, Link): NULL / -1 when the row has none */
    char *term;                  /* the matched term or cue */
    int64_t start, end;          /* its byte offsets into the report text */
    char *rule;                  /* the rule or cue that fired */
    int continues;               /* index into StudyView.sent of the sentence continued */
} ViewLink;

typedef struct ViewLabel {
    int task;                    /* ontology index */
    int value;                   /* 1, 0, -1, or 2 when NULL */
    char *source;
} ViewLabel;

typedef struct ViewFlag {
    int anatomy;                 /* ontology index, -1 for the study */
    char *kind, *detail;
} ViewFlag;

typedef struct ViewAnatomy {
    int has_status;
    char *status, *status_source;
    char *findings_text, *impression_text, *text, *diseases;
    int has_region;
    Region region;
    int is_sample;
} ViewAnatomy;

typedef struct StudyView {
    int64_t id;
    char *study_key, *dataset, *split, *language;
    int has_volume;
    int64_t dims[3];             /* nz, ny, nx */
    double spacing[3];           /* mm, (z, y, x) */
    char *volume_shard, *volume_tensor, *mask_shard, *mask_tensor;
    int has_union;
    Region uni;                  /* the crop box (_union) */
    ViewSentence *sent;
    int n_sent;
    ViewLink *links;
    int n_links;
    ViewLabel *labels;
    int n_labels;
    ViewFlag *flags;
    int n_flags;
    ViewAnatomy *anat;           /* n_anat, ontology order */
    int n_anat;
} StudyView;

/* Prepared statements reused across studies (export walks many). */
typedef struct ViewReader {
    Db *db;
    const Ontology *o;
    sqlite3_stmt *q[9];
} ViewReader;

int view_reader_open(ViewReader *r, Db *db, const Ontology *o, FvErr *e);
void view_reader_close(ViewReader *r);
/* FV_ENOTFOUND when the study does not exist. */
int view_load(ViewReader *r, int64_t study_id, StudyView *v, FvErr *e);
void view_free(StudyView *v);

/* 1 when the view has anything to say about anatomy a (a status other than
 * unmentioned, a region, a link or a flag). */
int view_anatomy_relevant(const StudyView *v, int a);

/* The study as one JSON object (study fields, crop box, study flags,
 * sentences, and an "anatomies" array of the relevant anatomies). */
void view_study_json(const StudyView *v, const Ontology *o, const AnatomyMetaTable *meta,
                     JsonW *w);
/* One (study, anatomy) as one JSON object with the study fields repeated,
 * for JSON lines. */
void view_anatomy_json(const StudyView *v, const Ontology *o, const AnatomyMetaTable *meta,
                       int a, JsonW *w);

#endif
