#include "task_labels.h"

#include <stdlib.h>
#include <string.h>

/* c->st's studies by id, for joining the label rows */
typedef struct IdIx {
    int64_t id;
    int ix;
} IdIx;

static int cmp_id(const void *a, const void *b)
{
    int64_t x = ((const IdIx *)a)->id, y = ((const IdIx *)b)->id;
    return (x > y) - (x < y);
}

static int study_of(const IdIx *by_id, int n, int64_t id)
{
    IdIx key = {id, 0};
    const IdIx *hit = bsearch(&key, by_id, (size_t)n, sizeof *by_id, cmp_id);
    return hit ? hit->ix : -1;
}

int task_labels_load(TrainSet *c, Db *db, FvErr *e)
{
    const Ontology *o = c->onto;
    int K = o->n_find, n = c->n_st;
    free(c->task_label);
    c->n_tasks = K;
    c->task_label = malloc((size_t)(n ? n : 1) * (size_t)(K ? K : 1));
    IdIx *by_id = malloc((size_t)(n ? n : 1) * sizeof *by_id);
    unsigned char *audit = calloc((size_t)(n ? n : 1) * (size_t)(K ? K : 1), 1);
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (!c->task_label || !by_id || !audit) {
        err_set(e, FV_ENOMEM, "labels: out of memory");
        goto out;
    }
    /* none until a parsed report says otherwise */
    memset(c->task_label, -1, (size_t)n * K);
    for (int i = 0; i < n; i++)
        by_id[i] = (IdIx){c->st[i].id, i};
    qsort(by_id, (size_t)n, sizeof *by_id, cmp_id);
    /* studies whose report was parsed: every task negative by default */
    if (db_prepare(db, &st, "SELECT DISTINCT r.study_id FROM reports r "
                            "JOIN sentences s ON s.report_id = r.id", e))
        goto out;
    int got;
    while ((got = db_step(db, st, e)) == 1) {
        int i = study_of(by_id, n, sqlite3_column_int64(st, 0));
        if (i >= 0)
            memset(c->task_label + (size_t)i * K, 0, (size_t)K);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (got < 0)
        goto out;
    if (db_prepare(db, &st, "SELECT study_id, task, value, source FROM labels "
                            "WHERE source IN ('parsed', 'audit')", e))
        goto out;
    while ((got = db_step(db, st, e)) == 1) {
        int i = study_of(by_id, n, sqlite3_column_int64(st, 0));
        int k = onto_finding(o, (const char *)sqlite3_column_text(st, 1));
        if (i < 0 || k < 0)
            continue;
        int is_audit = !strcmp((const char *)sqlite3_column_text(st, 3), "audit");
        size_t at = (size_t)i * K + k;
        if (audit[at] && !is_audit)
            continue;
        audit[at] |= (unsigned char)is_audit;
        int v = sqlite3_column_type(st, 2) == SQLITE_NULL ? 0 : sqlite3_column_int(st, 2);
        c->task_label[at] = (int8_t)(v == 1 ? 1 : v == 0 ? 0 : -1);
    }
    if (got < 0)
        goto out;
    rc = 0;
out:
    sqlite3_finalize(st);
    free(by_id);
    free(audit);
    return rc;
}

void task_labels_rows(const TrainSet *c, const int *ra, const int *cand_s, int nr, int8_t *out)
{
    const Ontology *o = c->onto;
    int K = c->n_tasks;
    for (int q = 0; q < nr; q++) {
        int8_t *y = out + (size_t)q * K;
        int s = cand_s[q];
        if (s < 0 || !c->task_label) {
            memset(y, -1, (size_t)K);
            continue;
        }
        int study = c->sm[s].study, a = c->anat_onto[ra[q]];
        const int8_t *lab = c->task_label + (size_t)study * K;
        for (int k = 0; k < K; k++)
            y[k] = o->find[k].anatomy == a ? lab[k] : -1;
    }
}
