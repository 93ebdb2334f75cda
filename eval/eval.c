#include "eval.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json.h"
#include "log.h"
#include "logreg.h"
#include "rng.h"
#include "sha256.h"
#include "truth.h"

void eval_options_default(EvalOptions *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->split = "test";
    opt->train_split = "train";
    opt->style = PROMPT_NORMAL; /* see eval/prompts.h: our text tower never read "Not X." */
    opt->n_boot = METRICS_BOOT_DEFAULT;
    opt->seed = 0;
    opt->probe_c = 1.0;
}

void eval_results_free(EvalResults *res)
{
    for (int i = 0; i < res->n_tasks; i++) {
        free(res->tasks[i].roc_fpr);
        free(res->tasks[i].roc_tpr);
        free(res->tasks[i].item);
        free(res->tasks[i].score);
        free(res->tasks[i].label);
    }
    free(res->tasks);
    memset(res, 0, sizeof *res);
}

double eval_zero_shot_score(const float *img, const float *neg, const float *pos, int d,
                            double temperature)
{
    double zn = features_dot(img, neg, d) / temperature;
    double zp = features_dot(img, pos, d) / temperature;
    /* softmax([zn, zp])[1] = 1 / (1 + exp(zn - zp)), in the form that
     * cannot overflow. */
    double t = zn - zp;
    if (t > 0) {
        double u = exp(-t);
        return u / (1.0 + u);
    }
    return 1.0 / (1.0 + exp(t));
}

/* The AUROC of one task on a resample: items in ascending score order
 * (order), each weighted by how often its study was drawn (w). Ties count
 * one half, as metrics_auroc. NaN when a class has no weight. */
static double weighted_auroc(const TaskResult *t, const int *order, const int *w)
{
    double wpos = 0, wneg = 0, num = 0, neg_below = 0;
    for (int a = 0; a < t->n_items;) {
        /* one group of tied scores */
        int b = a;
        double gpos = 0, gneg = 0;
        while (b < t->n_items && t->score[order[b]] == t->score[order[a]]) {
            int k = order[b++];
            double wk = w[t->item[k]];
            if (t->label[k])
                gpos += wk;
            else
                gneg += wk;
        }
        num += gpos * (neg_below + 0.5 * gneg);
        neg_below += gneg;
        wpos += gpos;
        wneg += gneg;
        a = b;
    }
    return wpos > 0 && wneg > 0 ? num / (wpos * wneg) : NAN;
}

static int by_score(const void *a, const void *b, void *score)
{
    const double *s = score;
    double x = s[*(const int *)a], y = s[*(const int *)b];
    return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int eval_macros(EvalResults *res, const Ontology *o, int n_boot, uint64_t seed, FvErr *e)
{
    MacroAvg *sets[3] = {&res->macro_all, &res->macro_ctrate18, &res->macro_fvlm16};
    for (int s = 0; s < 3; s++) {
        memset(sets[s], 0, sizeof *sets[s]);
        sets[s]->auc = sets[s]->lo = sets[s]->hi = NAN;
    }
    for (int k = 0; k < o->n_find; k++) {
        res->macro_all.n_set++;
        res->macro_ctrate18.n_set += o->find[k].ctrate_label != NULL;
        res->macro_fvlm16.n_set += o->find[k].fvlm16 != 0;
    }
    double sum[3] = {0, 0, 0};
    for (int i = 0; i < res->n_tasks; i++) {
        const TaskResult *t = &res->tasks[i];
        if (!isfinite(t->m.auc))
            continue;
        int in[3] = {1, t->is_ctrate, t->fvlm16};
        for (int s = 0; s < 3; s++)
            if (in[s]) {
                sum[s] += t->m.auc;
                sets[s]->n_scored++;
            }
    }
    for (int s = 0; s < 3; s++)
        if (sets[s]->n_scored)
            sets[s]->auc = sum[s] / sets[s]->n_scored;
    if (n_boot <= 0 || res->n_items <= 0 || res->macro_all.n_scored == 0)
        return 0;

    /* The bootstrap: the scored tasks' items sorted by score once, then
     * each resample is a weight per study. */
    int nt = res->n_tasks, ntot = 0;
    for (int i = 0; i < nt; i++)
        if (isfinite(res->tasks[i].m.auc) && res->tasks[i].item)
            ntot += res->tasks[i].n_items;
    int *order = malloc((size_t)(ntot ? ntot : 1) * sizeof *order);
    int **ord = calloc((size_t)(nt ? nt : 1), sizeof *ord);
    int *w = malloc((size_t)res->n_items * sizeof *w);
    double *means = malloc((size_t)n_boot * 3 * sizeof *means);
    if (!order || !ord || !w || !means) {
        free(order);
        free(ord);
        free(w);
        free(means);
        return err_set(e, FV_ENOMEM, "macro AUC intervals: out of memory");
    }
    for (int i = 0, off = 0; i < nt; i++) {
        const TaskResult *t = &res->tasks[i];
        if (!isfinite(t->m.auc) || !t->item)
            continue;
        ord[i] = order + off;
        for (int k = 0; k < t->n_items; k++)
            ord[i][k] = k;
        qsort_r(ord[i], (size_t)t->n_items, sizeof *ord[i], by_score, t->score);
        off += t->n_items;
    }
    int nvalid[3] = {0, 0, 0};
    Rng rng;
    rng_seed(&rng, seed, (uint64_t)n_boot + 1);
    for (int b = 0; b < n_boot; b++) {
        memset(w, 0, (size_t)res->n_items * sizeof *w);
        for (int k = 0; k < res->n_items; k++)
            w[rng_below(&rng, (uint64_t)res->n_items)]++;
        double bsum[3] = {0, 0, 0};
        int bn[3] = {0, 0, 0};
        for (int i = 0; i < nt; i++) {
            if (!ord[i])
                continue;
            const TaskResult *t = &res->tasks[i];
            double auc = weighted_auroc(t, ord[i], w);
            if (!isfinite(auc))
                continue;
            int in[3] = {1, t->is_ctrate, t->fvlm16};
            for (int s = 0; s < 3; s++)
                if (in[s]) {
                    bsum[s] += auc;
                    bn[s]++;
                }
        }
        for (int s = 0; s < 3; s++)
            if (bn[s])
                means[(size_t)s * n_boot + nvalid[s]++] = bsum[s] / bn[s];
    }
    for (int s = 0; s < 3; s++) {
        int k = nvalid[s];
        if (k < 2 || !sets[s]->n_scored)
            continue;
        double *m = means + (size_t)s * n_boot;
        qsort(m, (size_t)k, sizeof *m, cmp_double);
        /* the percentile bounds of metrics.h's per-task interval */
        int lo = (int)(0.025 * k) - 1, hi = (int)(0.975 * k) - 1;
        sets[s]->lo = m[lo < 0 ? 0 : lo];
        sets[s]->hi = m[hi < 0 ? 0 : hi];
    }
    free(order);
    free(ord);
    free(w);
    free(means);
    return 0;
}

int eval_results_check(const EvalResults *r, FvErr *e)
{
    if (r->macro_all.n_scored > 0)
        return 0;
    if (r->n_split == 0)
        return err_set(e, FV_ENOTFOUND,
                       "no task scored: the %s split has no studies (ingest assigns splits; "
                       "choose another with --split)", r->split);
    if (r->n_labelled == 0 && r->silver)
        return err_set(e, FV_ENOTFOUND,
                       "no task scored: none of the %lld %s studies has a parsed label: run "
                       "`fvlm parse` first, or give a truth file with --labels",
                       (long long)r->n_split, r->split);
    if (r->n_labelled == 0)
        return err_set(e, FV_ENOTFOUND,
                       "no task scored: no row of %s names one of the %lld %s studies (%lld rows "
                       "name studies not in the corpus, %lld rows unreadable): are its ids the "
                       "source study ids that ingest read?",
                       r->label_source, (long long)r->n_split, r->split,
                       (long long)r->label_rows_not_in_corpus, (long long)r->label_rows_bad);
    return err_set(e, FV_ENOTFOUND,
                   "no task scored: no task has both a positive and a negative study among the "
                   "%lld labelled %s studies (AUC needs both; %lld studies failed to encode)",
                   (long long)r->n_labelled, r->split, (long long)r->n_failed);
}

/* ------------------------------------------------------------------------
 * Shared steps: labels, the studies of a split, the result header.
 * ------------------------------------------------------------------------ */

static int load_truth(Db *db, const Ontology *o, const EvalOptions *opt, Run *run, Truth *t,
                      FvErr *e)
{
    if (opt->labels_path)
        return truth_from_file(t, db, o, opt->labels_path, opt->deid_key, run, e);
    return truth_from_labels(t, db, o, e);
}

/* Studies of `split` with at least one label (any value) of a labelled
 * task, ascending ids; *n_split receives all studies of the split. */
static int split_studies(Db *db, const char *split, const Truth *t, int64_t **ids, int *n,
                         int64_t *n_split, FvErr *e)
{
    sqlite3_stmt *st;
    *ids = NULL;
    *n = 0;
    *n_split = 0;
    if (db_prepare(db, &st, "SELECT id FROM studies WHERE split = ? ORDER BY id", e))
        return -1;
    if (db_bindf(db, st, e, "s", split)) {
        sqlite3_finalize(st);
        return -1;
    }
    int cap = 0, got;
    while ((got = db_step(db, st, e)) == 1) {
        int64_t id = sqlite3_column_int64(st, 0);
        (*n_split)++;
        int any = 0;
        for (int k = 0; k < t->n_find && !any; k++)
            any = t->has_task[k] && truth_get(t, id, k) != TRUTH_NONE;
        if (!any)
            continue;
        if (arr_reserve(ids, &cap, *n, sizeof **ids, 256)) {
            sqlite3_finalize(st);
            free(*ids);
            *ids = NULL;
            return err_set(e, FV_ENOMEM, "split %s: out of memory", split);
        }
        (*ids)[(*n)++] = id;
    }
    sqlite3_finalize(st);
    if (got < 0) {
        free(*ids);
        *ids = NULL;
        return -1;
    }
    return 0;
}

/* Anatomies of the tasks the labels cover. */
static void anatomies_needed(const Ontology *o, const Truth *t, unsigned char *keep)
{
    memset(keep, 0, (size_t)o->n_anat);
    for (int k = 0; k < o->n_find; k++)
        if (t->has_task[k])
            keep[o->find[k].anatomy] = 1;
}

static void result_header(EvalResults *res, const char *method, const char *style,
                          const EvalOptions *opt, const EvalEncoder *enc, const Truth *t,
                          const Run *run)
{
    snprintf(res->method, sizeof res->method, "%s", method);
    snprintf(res->style, sizeof res->style, "%s", style);
    snprintf(res->split, sizeof res->split, "%s", opt->split);
    snprintf(res->label_source, sizeof res->label_source, "%s", t->source);
    res->silver = t->kind == TRUTH_PARSED;
    snprintf(res->loss_mode, sizeof res->loss_mode, "%s", enc->loss_mode ? enc->loss_mode : "");
    res->temperature = enc->temperature;
    res->dim = enc->dim;
    res->run_id = run ? run->id : 0;
    res->n_boot = opt->n_boot;
    res->seed = opt->seed;
    res->label_rows_bad = t->rows_bad;
    res->label_rows_not_in_corpus = t->rows_not_in_corpus;
    res->label_conflicts = t->conflicts;
}

/* Scores study i of fs for the task (its anatomy feature given). */
typedef double (*ScoreFn)(void *ctx, int task, int i, const float *feat);

/* Collects the labelled studies of one task, scores them and appends a
 * TaskResult to res (nothing when the split holds no label for it). With
 * fn NULL the task is counted only and `note` says why. */
static int score_task(EvalResults *res, const Ontology *o, int task, const Truth *t,
                      const FeatureSet *fs, ScoreFn fn, void *ctx, const char *note,
                      const EvalOptions *opt, FvErr *e)
{
    const Finding *f = &o->find[task];
    int n_unc = 0, n_nofeat = 0;
    size_t n = 0;
    double *score = malloc((size_t)(fs->n ? fs->n : 1) * sizeof *score);
    unsigned char *label = malloc((size_t)(fs->n ? fs->n : 1));
    int *item = malloc((size_t)(fs->n ? fs->n : 1) * sizeof *item);
    if (!score || !label || !item) {
        free(score);
        free(label);
        free(item);
        return err_set(e, FV_ENOMEM, "task %s: out of memory", f->id);
    }
    for (int i = 0; i < fs->n; i++) {
        int v = truth_get(t, fs->study_id[i], task);
        if (v == TRUTH_NONE)
            continue;
        if (v == TRUTH_UNCERTAIN) {
            n_unc++;
            continue;
        }
        const float *x = features_get(fs, i, f->anatomy);
        if (!x) {
            n_nofeat++;
            continue;
        }
        score[n] = fn ? fn(ctx, task, i, x) : 0.0;
        label[n] = (unsigned char)v;
        item[n] = i;
        n++;
    }
    if (n == 0 && n_unc == 0 && n_nofeat == 0) {
        free(score);
        free(label);
        free(item);
        return 0;
    }
    TaskResult *r = &res->tasks[res->n_tasks];
    memset(r, 0, sizeof *r);
    snprintf(r->task, sizeof r->task, "%s", f->id);
    snprintf(r->anatomy, sizeof r->anatomy, "%s", o->anat[f->anatomy].id);
    snprintf(r->name, sizeof r->name, "%s", f->en);
    r->is_ctrate = f->ctrate_label != NULL;
    r->fvlm16 = f->fvlm16;
    r->n_uncertain = n_unc;
    r->n_no_feature = n_nofeat;
    int rc = 0;
    if (fn) {
        rc = metrics_compute(score, label, n, opt->n_boot, opt->seed, &r->m, e);
        if (rc)
            err_prefix(e, "task %s", f->id);
    } else {
        memset(&r->m, 0, sizeof r->m);
        metrics_at_threshold(score, label, n, 0.5, &r->m);
        r->m.auc = r->m.auc_lo = r->m.auc_hi = r->m.threshold = NAN;
        r->m.accuracy = r->m.f1_weighted = r->m.precision = NAN;
        r->m.sensitivity = r->m.specificity = NAN;
        snprintf(r->note, sizeof r->note, "%s", note ? note : "not scored");
    }
    if (!rc && fn) {
        if (metrics_degenerate(&r->m)) {
            if (n == 0 && n_nofeat > 0)
                snprintf(r->note, sizeof r->note, "the model gives no %s feature (%d labelled "
                         "studies)", r->anatomy, n_nofeat);
            else if (n == 0)
                snprintf(r->note, sizeof r->note, "every label is uncertain");
            else
                snprintf(r->note, sizeof r->note, "one class only (%d positive, %d negative)",
                         r->m.n_pos, r->m.n_neg);
        } else {
            rc = metrics_roc_curve(score, label, n, &r->roc_fpr, &r->roc_tpr, &r->n_roc, e);
            /* kept for the macro averages' bootstrap over studies */
            r->item = item;
            r->score = score;
            r->label = label;
            r->n_items = (int)n;
            item = NULL;
            score = NULL;
            label = NULL;
        }
    }
    free(score);
    free(label);
    free(item);
    if (rc)
        return -1;
    res->n_tasks++;
    return 0;
}

/* ------------------------------------------------------------------------
 * Zero-shot
 * ------------------------------------------------------------------------ */

typedef struct ZsCtx {
    const FeatureSet *fs;
    int dim;
    double temperature;
    float *text;             /* (n_find, PROMPT_LANG_N, 2, dim): negative then positive */
    unsigned char *have;     /* (n_find, PROMPT_LANG_N) */
} ZsCtx;

static double zs_score(void *vctx, int task, int i, const float *feat)
{
    ZsCtx *c = vctx;
    int lang = c->fs->lang[i];
    const float *neg = c->text + (((size_t)task * PROMPT_LANG_N + lang) * 2) * c->dim;
    return eval_zero_shot_score(feat, neg, neg + c->dim, c->dim, c->temperature);
}

static int check_text_feature(const float *v, int d, const char *text, FvErr *e)
{
    double nrm = sqrt(features_dot(v, v, d));
    if (!isfinite(nrm) || fabs(nrm - 1.0) > 1e-3)
        return err_set(e, FV_EFORMAT, "text feature of \"%s\" has norm %g, not 1", text, nrm);
    return 0;
}

static double sup_score(void *vctx, int task, int i, const float *feat)
{
    const EvalEncoder *enc = vctx;
    (void)i;
    return enc->task_score(enc->ctx, task, feat);
}

int eval_zero_shot(Db *db, const Ontology *o, EvalEncoder *enc, const EvalOptions *opt,
                   Run *run, EvalResults *res, FvErr *e)
{
    Truth t;
    Prompts *pr = NULL;
    FeatureSet fs;
    ZsCtx zc;
    int64_t *ids = NULL;
    unsigned char *keep = NULL;
    int n = 0, rc = -1;
    memset(res, 0, sizeof *res);
    memset(&t, 0, sizeof t);
    memset(&fs, 0, sizeof fs);
    memset(&zc, 0, sizeof zc);
    if (!(enc->temperature > 0) || !isfinite(enc->temperature))
        return err_set(e, FV_EUSAGE, "model temperature %g is not > 0", enc->temperature);
    if (prompts_load(&pr, o, e))
        return -1;
    if (load_truth(db, o, opt, run, &t, e))
        goto out;
    /* a supervised model scores with its own heads, not with prompts */
    result_header(res, enc->task_score ? "supervised" : "zero-shot",
                  enc->task_score ? "-" : prompt_style_name(opt->style), opt, enc, &t, run);
    if (split_studies(db, opt->split, &t, &ids, &n, &res->n_split, e))
        goto out;
    res->n_labelled = n;
    if (n == 0)
        log_warn("split '%s' has %lld studies, none with a label from %s", opt->split,
                 (long long)res->n_split, t.source);
    keep = malloc((size_t)o->n_anat);
    res->tasks = calloc((size_t)(o->n_find ? o->n_find : 1), sizeof *res->tasks);
    if (!keep || !res->tasks) {
        err_set(e, FV_ENOMEM, "eval: out of memory");
        goto out;
    }
    anatomies_needed(o, &t, keep);
    char label[48];
    snprintf(label, sizeof label, "encode %s", opt->split);
    if (features_encode(&fs, db, o, enc, ids, n, keep, run, label, e))
        goto out;
    res->n_failed = fs.n_failed;
    if (enc->task_score) {
        for (int k = 0; k < o->n_find; k++)
            if (t.has_task[k] && score_task(res, o, k, &t, &fs, sup_score, enc, NULL, opt, e))
                goto out;
        res->n_items = fs.n;
        if (eval_macros(res, o, opt->n_boot, opt->seed, e))
            goto out;
        rc = 0;
        goto out;
    }

    /* Prompt features for the languages present. */
    int lang_used[PROMPT_LANG_N] = {0};
    for (int i = 0; i < fs.n; i++)
        lang_used[fs.lang[i]] = 1;
    zc.fs = &fs;
    zc.dim = enc->dim;
    zc.temperature = enc->temperature;
    zc.text = calloc((size_t)o->n_find * PROMPT_LANG_N * 2 * (size_t)enc->dim, sizeof *zc.text);
    zc.have = calloc((size_t)o->n_find * PROMPT_LANG_N, 1);
    if (!zc.text || !zc.have) {
        err_set(e, FV_ENOMEM, "eval: out of memory for prompt features");
        goto out;
    }
    for (int k = 0; k < o->n_find; k++) {
        if (!t.has_task[k])
            continue;
        for (int l = 0; l < PROMPT_LANG_N; l++) {
            if (!lang_used[l])
                continue;
            const PromptPair *pp = prompts_get(pr, k, (PromptLang)l, opt->style);
            float *dst = zc.text + (((size_t)k * PROMPT_LANG_N + l) * 2) * enc->dim;
            const char *txt[2] = {pp->neg, pp->pos};
            for (int s = 0; s < 2; s++) {
                if (enc->encode_text(enc->ctx, txt[s], dst + (size_t)s * enc->dim, e) ||
                    check_text_feature(dst + (size_t)s * enc->dim, enc->dim, txt[s], e)) {
                    err_prefix(e, "prompt of task %s", o->find[k].id);
                    goto out;
                }
            }
            zc.have[(size_t)k * PROMPT_LANG_N + l] = 1;
        }
    }
    for (int k = 0; k < o->n_find; k++)
        if (t.has_task[k] && score_task(res, o, k, &t, &fs, zs_score, &zc, NULL, opt, e))
            goto out;
    res->n_items = fs.n;
    if (eval_macros(res, o, opt->n_boot, opt->seed, e))
        goto out;
    rc = 0;
out:
    free(zc.text);
    free(zc.have);
    features_free(&fs);
    free(ids);
    free(keep);
    truth_free(&t);
    prompts_free(&pr);
    if (rc)
        eval_results_free(res);
    return rc;
}

/* ------------------------------------------------------------------------
 * Probe
 * ------------------------------------------------------------------------ */

typedef struct ProbeCtx {
    const LogReg *model;     /* (n_find) */
    const double *mean, *sd; /* (n_find, dim) standardisation of each task's fit */
    int dim;
    double *row;             /* (dim) scratch */
} ProbeCtx;

static double probe_score(void *vctx, int task, int i, const float *feat)
{
    ProbeCtx *c = vctx;
    const double *mu = c->mean + (size_t)task * c->dim, *sd = c->sd + (size_t)task * c->dim;
    for (int j = 0; j < c->dim; j++)
        c->row[j] = ((double)feat[j] - mu[j]) / sd[j];
    (void)i;
    return logreg_prob(&c->model[task], c->row);
}

/* Fits task k's head on the training features. *trained = 0 (and note
 * filled) when the training split cannot train it. */
static int probe_fit_task(const Ontology *o, int k, const Truth *t, const FeatureSet *tr,
                          double C, LogReg *model, double *mean, double *sd, int *trained,
                          char *note, size_t note_n, FvErr *e)
{
    const Finding *f = &o->find[k];
    int d = tr->dim;
    *trained = 0;
    size_t n = 0;
    int npos = 0;
    double *X = malloc((size_t)(tr->n ? tr->n : 1) * (size_t)d * sizeof *X);
    unsigned char *y = malloc((size_t)(tr->n ? tr->n : 1));
    if (!X || !y) {
        free(X);
        free(y);
        return err_set(e, FV_ENOMEM, "probe %s: out of memory", f->id);
    }
    for (int i = 0; i < tr->n; i++) {
        int v = truth_get(t, tr->study_id[i], k);
        const float *x = features_get(tr, i, f->anatomy);
        if ((v != 0 && v != 1) || !x)
            continue;
        for (int j = 0; j < d; j++)
            X[n * (size_t)d + (size_t)j] = x[j];
        y[n] = (unsigned char)v;
        npos += v;
        n++;
    }
    int rc = 0;
    if (npos == 0 || (size_t)npos == n) {
        snprintf(note, note_n, "not trained: the training split has %d positive and %d negative",
                 npos, (int)n - npos);
        goto done;
    }
    /* Standardise each feature with the training mean and standard
     * deviation, so C means the same whatever the feature scale. */
    for (int j = 0; j < d; j++) {
        double s = 0, ss = 0;
        for (size_t i = 0; i < n; i++)
            s += X[i * (size_t)d + (size_t)j];
        double mu = s / (double)n;
        for (size_t i = 0; i < n; i++) {
            double c = X[i * (size_t)d + (size_t)j] - mu;
            ss += c * c;
        }
        double sdv = sqrt(ss / (double)n);
        if (!(sdv > 1e-12))
            sdv = 1.0;
        mean[j] = mu;
        sd[j] = sdv;
        for (size_t i = 0; i < n; i++)
            X[i * (size_t)d + (size_t)j] = (X[i * (size_t)d + (size_t)j] - mu) / sdv;
    }
    rc = logreg_fit(X, y, n, d, C, 100, 1e-10, model, e);
    if (rc)
        err_prefix(e, "probe %s", f->id);
    else
        *trained = 1;
done:
    free(X);
    free(y);
    return rc;
}

int eval_probe(Db *db, const Ontology *o, EvalEncoder *enc, const EvalOptions *opt, Run *run,
               EvalResults *res, FvErr *e)
{
    Truth t;
    FeatureSet tr, te;
    int64_t *tr_ids = NULL, *te_ids = NULL;
    unsigned char *keep = NULL;
    LogReg *models = NULL;
    double *mean = NULL, *sd = NULL, *row = NULL;
    int n_tr = 0, n_te = 0, rc = -1;
    memset(res, 0, sizeof *res);
    memset(&t, 0, sizeof t);
    memset(&tr, 0, sizeof tr);
    memset(&te, 0, sizeof te);
    if (!strcmp(opt->split, opt->train_split))
        return err_set(e, FV_EUSAGE, "probe: the training and evaluated splits are both '%s'",
                       opt->split);
    if (!(opt->probe_c > 0) || !isfinite(opt->probe_c))
        return err_set(e, FV_EUSAGE, "probe: C = %g must be > 0", opt->probe_c);
    if (load_truth(db, o, opt, run, &t, e))
        return -1;
    result_header(res, "probe", "-", opt, enc, &t, run);
    int64_t n_split_tr;
    if (split_studies(db, opt->train_split, &t, &tr_ids, &n_tr, &n_split_tr, e) ||
        split_studies(db, opt->split, &t, &te_ids, &n_te, &res->n_split, e))
        goto out;
    res->n_labelled = n_te;
    res->n_train = n_tr;
    keep = malloc((size_t)o->n_anat);
    res->tasks = calloc((size_t)(o->n_find ? o->n_find : 1), sizeof *res->tasks);
    models = calloc((size_t)(o->n_find ? o->n_find : 1), sizeof *models);
    mean = calloc((size_t)o->n_find * (size_t)enc->dim, sizeof *mean);
    sd = calloc((size_t)o->n_find * (size_t)enc->dim, sizeof *sd);
    row = calloc((size_t)enc->dim, sizeof *row);
    if (!keep || !res->tasks || !models || !mean || !sd || !row) {
        err_set(e, FV_ENOMEM, "probe: out of memory");
        goto out;
    }
    anatomies_needed(o, &t, keep);
    char label[48];
    snprintf(label, sizeof label, "encode %s", opt->train_split);
    if (features_encode(&tr, db, o, enc, tr_ids, n_tr, keep, run, label, e))
        goto out;
    snprintf(label, sizeof label, "encode %s", opt->split);
    if (features_encode(&te, db, o, enc, te_ids, n_te, keep, run, label, e))
        goto out;
    res->n_failed = te.n_failed;
    ProbeCtx pc = {models, mean, sd, enc->dim, row};
    Progress pg;
    int ntasks = 0;
    for (int k = 0; k < o->n_find; k++)
        ntasks += t.has_task[k];
    progress_start(&pg, "probe fit", ntasks, "tasks");
    for (int k = 0; k < o->n_find; k++) {
        if (!t.has_task[k])
            continue;
        int trained;
        char note[160] = "";
        if (probe_fit_task(o, k, &t, &tr, opt->probe_c, &models[k],
                           mean + (size_t)k * enc->dim, sd + (size_t)k * enc->dim, &trained,
                           note, sizeof note, e))
            goto out;
        if (trained)
            log_debug("probe %s: %d Newton steps, max |gradient| %.3g", o->find[k].id,
                      models[k].iters, models[k].grad_max);
        if (score_task(res, o, k, &t, &te, trained ? probe_score : NULL, &pc, note, opt, e))
            goto out;
        progress_tick(&pg, 1);
    }
    progress_end(&pg);
    res->n_items = te.n;
    if (eval_macros(res, o, opt->n_boot, opt->seed, e))
        goto out;
    rc = 0;
out:
    if (models)
        for (int k = 0; k < o->n_find; k++)
            logreg_free(&models[k]);
    free(models);
    free(mean);
    free(sd);
    free(row);
    features_free(&tr);
    features_free(&te);
    free(tr_ids);
    free(te_ids);
    free(keep);
    truth_free(&t);
    if (rc)
        eval_results_free(res);
    return rc;
}

/* ------------------------------------------------------------------------
 * Model identity, database rows, run counts
 * ------------------------------------------------------------------------ */

int eval_identify_model(Db *db, const char *path, EvalResults *res, FvErr *e)
{
    snprintf(res->model_path, sizeof res->model_path, "%s", path);
    if (sha256_file(path, res->model_sha256, e))
        return -1;
    int found;
    if (db_query_int(db, e, &res->model_id, &found,
                     "SELECT id FROM models WHERE sha256 = ? ORDER BY id DESC LIMIT 1", "s",
                     res->model_sha256))
        return -1;
    if (!found)
        res->model_id = 0;
    return 0;
}

static void bind_real(sqlite3_stmt *st, int i, double v)
{
    if (isfinite(v))
        sqlite3_bind_double(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

int eval_store(Db *db, const EvalResults *res, FvErr *e)
{
    sqlite3_stmt *st = NULL;
    if (db_begin(db, e))
        return -1;
    if (db_prepare(db, &st,
                   "INSERT INTO eval_results (run_id, model_id, method, task, anatomy, split, style,"
                   " label_source, n_pos, n_neg, n_uncertain, auc, auc_lo, auc_hi, threshold,"
                   " accuracy, f1_weighted, precision, sensitivity, specificity)"
                   " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   e))
        goto fail;
    for (int i = 0; i < res->n_tasks; i++) {
        const TaskResult *t = &res->tasks[i];
        if (db_bindf(db, st, e, "i", res->run_id))
            goto fail;
        if (res->model_id > 0)
            sqlite3_bind_int64(st, 2, res->model_id);
        else
            sqlite3_bind_null(st, 2);
        sqlite3_bind_text(st, 3, res->method, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, t->task, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 5, t->anatomy, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 6, res->split, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 7, res->style, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 8, res->label_source, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 9, t->m.n_pos);
        sqlite3_bind_int64(st, 10, t->m.n_neg);
        sqlite3_bind_int64(st, 11, t->n_uncertain);
        const double v[9] = {t->m.auc, t->m.auc_lo, t->m.auc_hi, t->m.threshold,
                             t->m.accuracy, t->m.f1_weighted, t->m.precision,
                             t->m.sensitivity, t->m.specificity};
        for (int k = 0; k < 9; k++)
            bind_real(st, 12 + k, v[k]);
        if (db_step(db, st, e) < 0) {
            err_prefix(e, "storing task %s", t->task);
            goto fail;
        }
    }
    sqlite3_finalize(st);
    return db_commit(db, e);
fail:
    if (st)
        sqlite3_finalize(st);
    db_rollback(db);
    return -1;
}

static void jw_macro(JsonW *w, const char *key, const MacroAvg *m)
{
    jw_key(w, key);
    jw_obj(w);
    jw_key(w, "auc");
    jw_num(w, m->auc);
    jw_key(w, "auc_lo");
    jw_num(w, m->lo);
    jw_key(w, "auc_hi");
    jw_num(w, m->hi);
    jw_key(w, "n_scored");
    jw_int(w, m->n_scored);
    jw_key(w, "n_set");
    jw_int(w, m->n_set);
    jw_obj_end(w);
}

char *eval_counts_json(const EvalResults *res)
{
    Buf b = {0};
    JsonW w;
    jw_init(&w, &b, 0);
    int scored = 0;
    for (int i = 0; i < res->n_tasks; i++)
        scored += isfinite(res->tasks[i].m.auc) != 0;
    jw_obj(&w);
    jw_key(&w, "method"); jw_str(&w, res->method);
    jw_key(&w, "split"); jw_str(&w, res->split);
    jw_key(&w, "style"); jw_str(&w, res->style);
    jw_key(&w, "label_source"); jw_str(&w, res->label_source);
    jw_key(&w, "model"); jw_str(&w, res->model_path);
    jw_key(&w, "loss_mode"); jw_str(&w, res->loss_mode);
    jw_key(&w, "studies_in_split"); jw_int(&w, res->n_split);
    jw_key(&w, "studies_labelled"); jw_int(&w, res->n_labelled);
    jw_key(&w, "studies_failed"); jw_int(&w, res->n_failed);
    if (!strcmp(res->method, "probe")) {
        jw_key(&w, "train_studies_labelled");
        jw_int(&w, res->n_train);
    }
    jw_key(&w, "tasks_reported"); jw_int(&w, res->n_tasks);
    jw_key(&w, "tasks_scored"); jw_int(&w, scored);
    jw_key(&w, "label_rows_bad"); jw_int(&w, res->label_rows_bad);
    jw_key(&w, "label_rows_not_in_corpus"); jw_int(&w, res->label_rows_not_in_corpus);
    jw_key(&w, "label_conflicts"); jw_int(&w, res->label_conflicts);
    jw_macro(&w, "macro_all", &res->macro_all);
    jw_macro(&w, "macro_ctrate18", &res->macro_ctrate18);
    jw_macro(&w, "macro_fvlm16", &res->macro_fvlm16);
    jw_obj_end(&w);
    if (b.failed) {
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b);
}

void eval_history_free(EvalHistory *h)
{
    free(h->rows);
    memset(h, 0, sizeof *h);
}

static void copy_str(char *dst, size_t n, const JsonValue *o, const char *key)
{
    snprintf(dst, n, "%s", json_get_str(o, key, ""));
}

int eval_history_load(Db *db, const char *split, int64_t exclude_run, EvalHistory *h, FvErr *e)
{
    memset(h, 0, sizeof *h);
    sqlite3_stmt *st;
    if (db_prepare(db, &st,
                   "SELECT id, started_at, counts FROM runs WHERE stage IN ('eval', 'probe') AND "
                   "status = 'ok' AND counts IS NOT NULL AND id <> ? ORDER BY id",
                   e))
        return -1;
    if (db_bindf(db, st, e, "i", exclude_run)) {
        sqlite3_finalize(st);
        return -1;
    }
    int got, cap = 0, rc = 0;
    while ((got = db_step(db, st, e)) == 1) {
        const char *counts = (const char *)sqlite3_column_text(st, 2);
        JsonValue *v = NULL;
        FvErr ignored = {0};
        /* A run whose counts do not parse (another version wrote them) is
         * not history this report can show; it is skipped, not an error. */
        if (!counts || json_parse(counts, strlen(counts), &v, &ignored) || v->type != JSON_OBJ ||
            strcmp(json_get_str(v, "split", ""), split) != 0) {
            json_free(&v);
            continue;
        }
        if (arr_reserve(&h->rows, &cap, h->n, sizeof *h->rows, 16)) {
            json_free(&v);
            rc = err_set(e, FV_ENOMEM, "evaluation history: out of memory");
            break;
        }
        HistoryRow *r = &h->rows[h->n++];
        memset(r, 0, sizeof *r);
        r->run_id = sqlite3_column_int64(st, 0);
        snprintf(r->started, sizeof r->started, "%s", (const char *)sqlite3_column_text(st, 1));
        copy_str(r->method, sizeof r->method, v, "method");
        copy_str(r->style, sizeof r->style, v, "style");
        copy_str(r->loss_mode, sizeof r->loss_mode, v, "loss_mode");
        copy_str(r->model, sizeof r->model, v, "model");
        copy_str(r->label_source, sizeof r->label_source, v, "label_source");
        const char *keys[3] = {"macro_all", "macro_ctrate18", "macro_fvlm16"};
        for (int k = 0; k < 3; k++) {
            const JsonValue *m = json_get(v, keys[k]);
            r->auc[k] = m ? json_get_num(m, "auc", NAN) : NAN;
            r->n_scored[k] = m ? (int)json_get_int(m, "n_scored", 0) : 0;
        }
        json_free(&v);
    }
    sqlite3_finalize(st);
    if (got < 0)
        rc = -1;
    if (rc)
        eval_history_free(h);
    return rc;
}
