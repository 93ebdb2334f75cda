/* eval: zero-shot evaluation and the supervised linear probe, from encoded
 * features to per-task metrics, database rows and report files.
 *
 * Zero-shot (fVLM / CT-CLIP): for task (anatomy a, disease) and a study in
 * the evaluated split, the score is the positive prompt's probability of the
 * softmax over the pair, (image_a . text_neg, image_a . text_pos) /
 * temperature, with the prompts of the study's report language and the
 * chosen style. Probe: an L2 logistic regression per task on the frozen
 * anatomy feature (standardised with the training split's mean and standard
 * deviation), trained on the training split and scored on the evaluated one.
 *
 * A task is reported when the split holds at least one label for it; it is
 * scored when it has both classes (a degenerate task keeps its counts and
 * has no figures); macro averages take the scored tasks only, over all
 * tasks, CT-RATE's 18 labels and fVLM's 16 (with how many of the set were
 * scored). Uncertain labels and studies without a feature for the anatomy
 * are left out and counted.
 *
 * The pieces are callable in-process (fvlm demo): eval_zero_shot or
 * eval_probe fills an EvalResults; eval_store writes its eval_results rows;
 * eval_report_write_dir (eval_report.h) its files. */
#ifndef FVLM_EVAL_EVAL_H
#define FVLM_EVAL_EVAL_H

#include <stdint.h>

#include "db.h"
#include "error.h"
#include "feature_set.h"
#include "metrics.h"
#include "ontology.h"
#include "prompts.h"
#include "run.h"

typedef struct EvalOptions {
    const char *split;         /* evaluated split (default "test") */
    const char *train_split;   /* probe: training split (default "train") */
    const char *labels_path;   /* truth file or CT-RATE labels CSV; NULL: the labels table */
    const char *deid_key;      /* needed with labels_path */
    PromptStyle style;
    int n_boot;                /* bootstrap resamples (default 1000) */
    uint64_t seed;             /* bootstrap seed */
    double probe_c;            /* probe: inverse regularisation strength C (default 1) */
} EvalOptions;

void eval_options_default(EvalOptions *opt);

typedef struct TaskResult {
    char task[64], anatomy[64], name[128];
    int is_ctrate, fvlm16;
    Metrics m;
    int n_uncertain;           /* labels left out as uncertain */
    int n_no_feature;          /* labelled studies without a feature for the anatomy */
    char note[160];            /* why a task has no figures, for the report; "" otherwise */
    double *roc_fpr, *roc_tpr; /* (n_roc) the ROC curve; owned */
    int n_roc;
    /* The scored items, for the macro averages' bootstrap: study index in
     * the evaluated list (0 .. EvalResults.n_items - 1), score, label;
     * (n_items) each, owned; NULL for a task that was not scored. */
    int *item;
    double *score;
    unsigned char *label;
    int n_items;
} TaskResult;

typedef struct MacroAvg {
    double auc;                /* NaN when no task of the set was scored */
    double lo, hi;             /* its 95 % bootstrap interval over studies; NaN when none */
    int n_scored;              /* tasks of the set with an AUROC */
    int n_set;                 /* tasks in the set (findings.tsv) */
} MacroAvg;

typedef struct EvalResults {
    char method[16];           /* "zero-shot" or "probe" */
    char style[16];            /* prompt style, "-" for the probe */
    char split[16];
    char label_source[300];
    int silver;                /* labels from the parsed reports */
    char model_path[1024];
    char model_sha256[65];
    int64_t model_id;          /* models.id, 0 when the model is not registered */
    char loss_mode[32];
    double temperature;
    int dim;
    int64_t run_id;
    int n_boot;
    uint64_t seed;
    int n_tasks;
    TaskResult *tasks;         /* reported tasks in findings.tsv order; owned */
    int n_items;               /* studies the tasks' items index (the evaluated list) */
    MacroAvg macro_all, macro_ctrate18, macro_fvlm16;
    int64_t n_split;           /* studies in the split */
    int64_t n_labelled;        /* of them with at least one label */
    int64_t n_failed;          /* of them whose encoding failed */
    int64_t n_train;           /* probe: labelled training studies */
    int64_t label_rows_bad, label_rows_not_in_corpus, label_conflicts;
} EvalResults;

int eval_zero_shot(Db *db, const Ontology *o, EvalEncoder *enc, const EvalOptions *opt,
                   Run *run, EvalResults *res, FvErr *e);
int eval_probe(Db *db, const Ontology *o, EvalEncoder *enc, const EvalOptions *opt, Run *run,
               EvalResults *res, FvErr *e);

/* The softmax-over-the-pair score of one image feature and prompt pair. */
double eval_zero_shot_score(const float *img, const float *neg, const float *pos, int d,
                            double temperature);

/* Macro averages over res->tasks (called by the pipelines; exposed for
 * results built by hand), with their 95 % intervals: n_boot resamples of
 * the res->n_items studies with replacement (rng stream n_boot + 1 of seed:
 * apart from the per-task streams), each task's AUROC recomputed on the
 * resample (a study drawn twice counts twice; a task with one class in the
 * resample is left out of that resample's mean), the mean over each set's
 * tasks, and the 2.5th and 97.5th percentiles of those means. Scores,
 * labels and study indices come from the tasks' item arrays; n_boot = 0 or
 * no items leaves the bounds NaN. Returns -1 (FV_ENOMEM) only when memory
 * runs out. */
int eval_macros(EvalResults *res, const Ontology *o, int n_boot, uint64_t seed, FvErr *e);

/* An evaluation that scored no task is not a result: fails (FV_ENOTFOUND)
 * saying why (no study in the split, no label matched a study, no task
 * with both classes) and what to run; 0 when at least one task has an AUC. */
int eval_results_check(const EvalResults *r, FvErr *e);

/* sha256 of the model file and its models.id (0 when no row has that
 * hash), into res. */
int eval_identify_model(Db *db, const char *path, EvalResults *res, FvErr *e);

/* One eval_results row per reported task, tied to res->run_id and
 * res->model_id, in one transaction. */
int eval_store(Db *db, const EvalResults *res, FvErr *e);

/* The run's counts as a JSON object (for run_finish): studies, tasks,
 * label-file problems, the model and loss mode, the macro averages. Caller
 * frees. */
char *eval_counts_json(const EvalResults *res);

/* Earlier evaluations of a corpus (runs of stage eval or probe that ended
 * 'ok'), read back from their counts: what the HTML report lists beside the
 * current run, so loss modes and the probe compare on one page. */
typedef struct HistoryRow {
    int64_t run_id;
    char started[32], method[16], style[16], loss_mode[32], model[256], label_source[300];
    double auc[3];             /* macro: all tasks, CT-RATE 18, fVLM 16; NaN when none */
    int n_scored[3];
} HistoryRow;

typedef struct EvalHistory {
    HistoryRow *rows;          /* oldest first; owned */
    int n;
} EvalHistory;

/* Evaluations of `split`, leaving out run exclude_run. */
int eval_history_load(Db *db, const char *split, int64_t exclude_run, EvalHistory *h, FvErr *e);
void eval_history_free(EvalHistory *h);

void eval_results_free(EvalResults *res);

#endif
