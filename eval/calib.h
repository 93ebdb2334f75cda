/* calib: what the benchmark can show, beside a model's results.
 *
 * Per task, two reference AUCs on the same studies and labels as the model:
 *   - the oracle: scores each study by the share of the anatomy's points on
 *     the model's input grid that the synthetic change moves (fvlm synth's
 *     truth/oracle.csv, synth/oracle.h), 0 without the finding. It knows
 *     where to look; when it cannot tell a study with the finding from one
 *     without (AUC < CALIB_SEEN: under half the findings move a single input
 *     point), no model at that input can, and the task is reported as
 *     unseen rather than averaged as a model failure.
 *   - the trivial baseline: an L2 logistic regression (the probe's, C = 1,
 *     fitted on the training split) on the anatomy's mean HU and log volume
 *     (train/anat_stats.h). A task it scores >= CALIB_TRIVIAL on is marked:
 *     a whole-organ density or size change, not a test of seeing. */
#ifndef FVLM_EVAL_CALIB_H
#define FVLM_EVAL_CALIB_H

#include "db.h"
#include "error.h"
#include "eval.h"
#include "ontology.h"

#define CALIB_SEEN 0.75
#define CALIB_TRIVIAL 0.90

typedef struct Calib {
    int n_find;
    double *oracle;          /* (n_find) oracle AUC; NaN when not scored or no oracle file */
    double *trivial;         /* (n_find) trivial baseline AUC; NaN when not scored */
    int has_oracle;          /* an oracle file was read */
    int64_t oracle_rows_not_in_corpus;
} Calib;

/* Both references on opt's split (opt->labels_path must be set: the oracle
 * is scored against the same truth). oracle_path: the synth truth's
 * oracle.csv, or NULL (no oracle column). */
int calib_compute(Calib *c, Db *db, const Ontology *o, const EvalOptions *opt,
                  const char *oracle_path, FvErr *e);
/* 1 when the oracle sees task k (or there is no oracle to say otherwise). */
int calib_seen(const Calib *c, int k);
/* Mean AUC of res's scored tasks that the oracle sees; *n receives how many. */
double calib_mean_seen(const Calib *c, const EvalResults *res, const Ontology *o, int *n);
void calib_free(Calib *c);

#endif
