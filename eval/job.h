/* job: one evaluation as a recorded run, from a model file to stored rows
 * and report files. What `fvlm eval`, `fvlm probe` and `fvlm demo` call.
 *
 * eval_job_run loads the model (train/model.h), begins a run (stage "eval"
 * or "probe"), evaluates (eval.h), identifies the model in the `models`
 * table by its sha256, stores the eval_results rows, writes the report files
 * when out_dir is set, and finishes the run with its counts: status 'ok', or
 * 'failed' when any step fails (the error is returned; per-item problems
 * such as a bad label row or a study that cannot be encoded are errors rows
 * of the run and do not fail it). */
#ifndef FVLM_EVAL_JOB_H
#define FVLM_EVAL_JOB_H

#include "db.h"
#include "error.h"
#include "eval.h"

typedef struct EvalJob {
    const char *model_path;
    const char *out_dir;       /* NULL: no files */
    int probe;                 /* 1: the linear probe; 0: zero-shot */
    EvalOptions opt;
    int argc;                  /* the command line recorded in the run */
    char **argv;
    const char *config_json;   /* the effective config recorded in the run (may be NULL) */
} EvalJob;

/* res receives the results (eval_results_free); html_path (may be NULL)
 * the HTML report's path, "" when no files were written. */
int eval_job_run(Db *db, const EvalJob *job, EvalResults *res, char *html_path, size_t n,
                 FvErr *e);

#endif
