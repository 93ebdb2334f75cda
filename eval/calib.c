#include "calib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "anat_stats.h"
#include "buf.h"
#include "csv.h"
#include "deid.h"
#include "fsutil.h"
#include "metrics.h"
#include "truth.h"

#define ORACLE_MAX_BYTES ((size_t)512 << 20)

void calib_free(Calib *c)
{
    free(c->oracle);
    free(c->trivial);
    memset(c, 0, sizeof *c);
}

int calib_seen(const Calib *c, int k)
{
    return !c->has_oracle || !(c->oracle[k] < CALIB_SEEN);
}

/* ---------------------------------------------------------------- trivial */

typedef struct StatsCtx {
    const Ontology *o;
    double *hu, *ml;
    unsigned char *valid;
} StatsCtx;

/* EvalEncoder of the trivial baseline: per anatomy (mean HU / 100,
 * log10 ml); the probe standardises them. */
static int stats_encode(void *ctx, Db *db, int64_t study_id, float *out, unsigned char *valid,
                        FvErr *e)
{
    StatsCtx *s = ctx;
    if (anat_stats_study(db, s->o, study_id, s->hu, s->ml, valid, e))
        return -1;
    for (int a = 0; a < s->o->n_anat; a++) {
        out[2 * a] = valid[a] ? (float)(s->hu[a] / 100.0) : 0.0f;
        out[2 * a + 1] = valid[a] ? (float)log10(1.0 + s->ml[a]) : 0.0f;
    }
    return 0;
}

static int stats_text(void *ctx, const char *text, float *out, FvErr *e)
{
    (void)ctx;
    (void)text;
    (void)out;
    return err_set(e, FV_EUSAGE, "the trivial baseline has no text encoder");
}

static int trivial_aucs(Calib *c, Db *db, const Ontology *o, const EvalOptions *opt, FvErr *e)
{
    StatsCtx s = {o, calloc((size_t)o->n_anat + 1, sizeof(double)),
                  calloc((size_t)o->n_anat + 1, sizeof(double)), NULL};
    if (!s.hu || !s.ml) {
        free(s.hu);
        free(s.ml);
        return err_set(e, FV_ENOMEM, "calibration: out of memory");
    }
    EvalEncoder enc = {&s, 2, 1.0, "trivial", stats_encode, stats_text, 1};
    EvalResults res;
    int rc = eval_probe(db, o, &enc, opt, NULL, &res, e);
    if (!rc)
        for (int i = 0; i < res.n_tasks; i++) {
            int k = onto_finding(o, res.tasks[i].task);
            if (k >= 0)
                c->trivial[k] = res.tasks[i].m.auc;
        }
    eval_results_free(&res);
    free(s.hu);
    free(s.ml);
    return rc;
}

/* ----------------------------------------------------------------- oracle */

static int oracle_aucs(Calib *c, Db *db, const Ontology *o, const EvalOptions *opt,
                       const char *path, FvErr *e)
{
    Truth t;
    memset(&t, 0, sizeof t);
    char *text = NULL;
    size_t len;
    int *col = NULL, rc = -1, cap = 0, cap_rows = 0, n = 0;
    int64_t *sid = NULL, *split_ids = NULL;
    double *share = NULL, *score = NULL;
    unsigned char *lab = NULL;
    sqlite3_stmt *st = NULL;
    CsvReader r;
    memset(&r, 0, sizeof r);
    if (truth_from_file(&t, db, o, opt->labels_path, opt->deid_key, NULL, e) ||
        fs_read_file(path, ORACLE_MAX_BYTES, &text, &len, e))
        goto out;
    csv_open(&r, text, len, path, CSV_STRICT);
    int got = csv_next(&r, e);
    if (got <= 0) {
        if (!got)
            err_set(e, FV_EFORMAT, "%s: empty file (no header row)", path);
        goto out;
    }
    if (strcmp(r.field[0], "study_id")) {
        err_set(e, FV_EFORMAT, "%s:1: first column '%s' is not 'study_id'", path, r.field[0]);
        goto out;
    }
    int ncol = r.nf;
    col = malloc((size_t)ncol * sizeof *col);
    if (!col) {
        err_set(e, FV_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    for (int k = 0; k < ncol; k++)
        col[k] = k ? onto_finding(o, r.field[k]) : -1;
    if (db_prepare(db, &st, "SELECT id FROM studies WHERE study_key = ?", e))
        goto out;
    while ((got = csv_next(&r, e)) == 1) {
        if (r.nf != ncol) {
            err_set(e, FV_EFORMAT, "%s:%d: %d fields, the header has %d", path, r.line, r.nf, ncol);
            goto out;
        }
        char key[65];
        if (deid_pseudonym(opt->deid_key, "study", r.field[0], key, e) ||
            db_bindf(db, st, e, "s", key))
            goto out;
        int row = db_step(db, st, e);
        if (row < 0)
            goto out;
        if (!row) {
            c->oracle_rows_not_in_corpus++;
            continue;
        }
        /* share grows by rows of n_find values */
        if (arr_reserve(&sid, &cap, n, sizeof *sid, 256) ||
            arr_reserve(&share, &cap_rows, n, (size_t)o->n_find * sizeof *share, 256)) {
            err_set(e, FV_ENOMEM, "%s: out of memory", path);
            goto out;
        }
        sid[n] = sqlite3_column_int64(st, 0);
        double *v = share + (size_t)n * o->n_find;
        for (int k = 0; k < o->n_find; k++)
            v[k] = NAN;
        for (int k = 1; k < ncol; k++) {
            if (col[k] < 0)
                continue;
            char *end;
            double x = strtod(r.field[k], &end);
            if (end == r.field[k] || *end || !isfinite(x) || x < 0) {
                err_set(e, FV_EFORMAT, "%s:%d column %d: '%.40s' is not a share >= 0", path,
                        r.line, k + 1, r.field[k]);
                goto out;
            }
            v[col[k]] = x;
        }
        n++;
    }
    if (got < 0)
        goto out;
    /* the evaluated split's studies, in the order of the oracle rows */
    score = malloc((size_t)(n ? n : 1) * sizeof *score);
    lab = malloc((size_t)(n ? n : 1));
    split_ids = malloc((size_t)(n ? n : 1) * sizeof *split_ids);
    if (!score || !lab || !split_ids) {
        err_set(e, FV_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    sqlite3_finalize(st);
    if (db_prepare(db, &st, "SELECT split = ? FROM studies WHERE id = ?", e))
        goto out;
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (db_bindf(db, st, e, "si", opt->split, sid[i]))
            goto out;
        int row = db_step(db, st, e);
        if (row < 0)
            goto out;
        if (row && sqlite3_column_int(st, 0))
            split_ids[m++] = i;
    }
    for (int k = 0; k < o->n_find; k++) {
        size_t q = 0;
        for (int j = 0; j < m; j++) {
            int i = (int)split_ids[j];
            int y = truth_get(&t, sid[i], k);
            double x = share[(size_t)i * o->n_find + k];
            if ((y != 0 && y != 1) || isnan(x))
                continue;
            score[q] = x;
            lab[q] = (unsigned char)y;
            q++;
        }
        if (metrics_auroc(score, lab, q, &c->oracle[k], e))
            goto out;
    }
    c->has_oracle = 1;
    rc = 0;
out:
    sqlite3_finalize(st);
    csv_close(&r);
    truth_free(&t);
    free(text);
    free(col);
    free(sid);
    free(share);
    free(score);
    free(lab);
    free(split_ids);
    return rc;
}

int calib_compute(Calib *c, Db *db, const Ontology *o, const EvalOptions *opt,
                  const char *oracle_path, FvErr *e)
{
    memset(c, 0, sizeof *c);
    if (!opt->labels_path)
        return err_set(e, FV_EUSAGE, "calibration needs the synthetic truth (a labels file)");
    c->n_find = o->n_find;
    c->oracle = malloc((size_t)(o->n_find ? o->n_find : 1) * sizeof *c->oracle);
    c->trivial = malloc((size_t)(o->n_find ? o->n_find : 1) * sizeof *c->trivial);
    if (!c->oracle || !c->trivial) {
        calib_free(c);
        return err_set(e, FV_ENOMEM, "calibration: out of memory");
    }
    for (int k = 0; k < o->n_find; k++)
        c->oracle[k] = c->trivial[k] = NAN;
    if ((oracle_path && oracle_aucs(c, db, o, opt, oracle_path, e)) ||
        trivial_aucs(c, db, o, opt, e)) {
        calib_free(c);
        return -1;
    }
    return 0;
}

double calib_mean_seen(const Calib *c, const EvalResults *res, const Ontology *o, int *n)
{
    double sum = 0;
    *n = 0;
    for (int i = 0; i < res->n_tasks; i++) {
        const TaskResult *t = &res->tasks[i];
        int k = onto_finding(o, t->task);
        if (k < 0 || isnan(t->m.auc) || !calib_seen(c, k))
            continue;
        sum += t->m.auc;
        (*n)++;
    }
    return *n ? sum / *n : NAN;
}
