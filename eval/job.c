#include "job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "model.h"
#include "ontology.h"
#include "eval_report.h"
#include "run.h"

/* The trained model behind the EvalEncoder interface. */
static int model_study(void *ctx, Db *db, int64_t study_id, float *out, unsigned char *valid,
                       FvErr *e)
{
    return model_encode_study(ctx, db, study_id, out, valid, e);
}

static double model_task(void *ctx, int task, const float *feat)
{
    return model_task_score(ctx, task, feat);
}

static int model_text(void *ctx, const char *text, float *out, FvErr *e)
{
    return model_encode_text(ctx, text, out, e);
}

int eval_job_run(Db *db, const EvalJob *job, EvalResults *res, char *html_path, size_t n,
                 FvErr *e)
{
    Ontology *o = NULL;
    FvlmModel *m = NULL;
    Run run;
    int begun = 0, rc = -1;
    memset(res, 0, sizeof *res);
    memset(&run, 0, sizeof run);
    if (html_path && n)
        html_path[0] = '\0';
    if (onto_load(&o, e))
        return -1;
    if (model_load(&m, job->model_path, e))
        goto out;
    if (model_n_anat(m) != o->n_anat) {
        err_set(e, FV_EFORMAT, "%s: the model has %d anatomy rows, this fvlm's ontology %d",
                job->model_path, model_n_anat(m), o->n_anat);
        goto out;
    }
    EvalEncoder enc = {m, model_embed_dim(m), (double)model_temperature(m), model_loss_mode(m),
                       model_study, model_text};
    if (model_is_supervised(m))
        enc.task_score = model_task;
    const char *stage = job->probe ? "probe" : "eval";
    if (run_begin(&run, db, stage, job->argc, job->argv, job->config_json,
                  (int64_t)(job->opt.seed & INT64_MAX), e))
        goto out;
    begun = 1;
    log_info("%s: model %s (%s, %d-dimensional, temperature %.4f), split %s", stage,
             job->model_path, enc.loss_mode, enc.dim, enc.temperature, job->opt.split);
    if (job->probe ? eval_probe(db, o, &enc, &job->opt, &run, res, e)
                   : eval_zero_shot(db, o, &enc, &job->opt, &run, res, e))
        goto out;
    if (eval_identify_model(db, job->model_path, res, e) || eval_store(db, res, e))
        goto out;
    if (job->out_dir) {
        EvalHistory hist;
        if (eval_history_load(db, res->split, run.id, &hist, e))
            goto out;
        int bad = eval_report_write_dir(res, &hist, job->out_dir, html_path, n, e);
        eval_history_free(&hist);
        if (bad)
            goto out;
    }
    char *counts = eval_counts_json(res);
    if (!counts) {
        err_set(e, FV_ENOMEM, "%s: out of memory", stage);
        goto out;
    }
    rc = run_finish(&run, "ok", counts, e);
    free(counts);
out:
    if (rc && begun) {
        FvErr ignored = {0};
        /* usually fails for the reason the caller prints (a full disk, an I/O
         * error): one line says it; the next run marks this one interrupted */
        if (run_finish(&run, "failed", NULL, &ignored))
            log_debug("recording the failed run: %s", ignored.msg);
    }
    if (rc)
        eval_results_free(res);
    model_free(&m);
    onto_free(&o);
    return rc;
}
