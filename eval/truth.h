/* truth: the labels an evaluation is scored against, per (study, task).
 *
 * Three sources:
 *   - the synthetic truth file that `fvlm synth` writes (DIR/truth/labels.csv,
 *     header `study_id,<task ids of findings.tsv>`, values 1/0);
 *   - a CT-RATE labels CSV (`VolumeName` and CT-RATE's label columns, named as
 *     findings.tsv's ctrate_label; volume `valid_3_a_1.nii.gz` is study
 *     `valid_3_a`);
 *   - otherwise the `labels` table (parsed from the reports: silver). There a
 *     study whose report was parsed and that has no row, or a NULL value, for
 *     a task is negative (the report does not mention it); -1 is uncertain.
 * A file's study ids are joined to the corpus by their keyed pseudonym
 * (deid_pseudonym(key, "study", id) == studies.study_key), the key being the
 * one ingest used. Values in a file: 1, 0, -1 (uncertain), empty (no label);
 * "1.0"/"0.0" and True/False (pandas) are accepted. A bad value, a row with the wrong number of
 * fields, or two rows of one study that disagree is recorded with run_error
 * (file, row, reason) and the run goes on: the bad value is no label, the
 * disagreeing pair is uncertain. Rows whose study is not in the corpus are
 * counted, not errors (a labels file usually covers a whole dataset). */
#ifndef FVLM_EVAL_TRUTH_H
#define FVLM_EVAL_TRUTH_H

#include <stdint.h>

#include "db.h"
#include "error.h"
#include "ontology.h"
#include "run.h"

enum { TRUTH_NONE = -2, TRUTH_UNCERTAIN = -1 };
typedef enum { TRUTH_FILE, TRUTH_CTRATE, TRUTH_PARSED } TruthKind;

typedef struct Truth {
    TruthKind kind;
    char source[300];         /* eval_results.label_source: "truth:<file>", "ctrate:<file>", "parsed (silver)" */
    int n_find;
    int n_studies;
    int64_t *study_id;        /* (n_studies) corpus ids, ascending */
    signed char *value;       /* (n_studies, n_find): 1, 0, TRUTH_UNCERTAIN, TRUTH_NONE */
    unsigned char *has_task;  /* (n_find) 1 when the source labels the task at all */
    /* what the source held */
    int64_t rows;             /* data rows read (files) or label rows (table) */
    int64_t rows_not_in_corpus, rows_bad, conflicts;
    int64_t from_gold, from_audit, from_parsed;  /* labels table: rows by source */
} Truth;

/* Reads a truth file or a CT-RATE labels CSV (told apart by the first header
 * column). run may be NULL (errors then only fail nothing and are counted). */
int truth_from_file(Truth *t, Db *db, const Ontology *o, const char *path, const char *deid_key,
                    Run *run, FvErr *e);
/* The labels table. */
int truth_from_labels(Truth *t, Db *db, const Ontology *o, FvErr *e);

/* Value for (study, task): 1, 0, TRUTH_UNCERTAIN or TRUTH_NONE. */
int truth_get(const Truth *t, int64_t study_id, int task);

/* "valid_3_a_1.nii.gz" -> "valid_3_a" into out; -1 when the name does not
 * have CT-RATE's <split>_<patient>_<scan>_<recon> shape. */
int truth_ctrate_study(const char *volume_name, char *out, size_t n);

void truth_free(Truth *t);

#endif
