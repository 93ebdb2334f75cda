#include "truth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "csv.h"
#include "deid.h"
#include "fsutil.h"
#include "log.h"

/* A labels CSV of a whole dataset is a few megabytes; this bounds a wrong
 * path (a volume, say) from being read whole. */
#define TRUTH_MAX_BYTES ((size_t)512 << 20)

void truth_free(Truth *t)
{
    free(t->study_id);
    free(t->value);
    free(t->has_task);
    memset(t, 0, sizeof *t);
}

static int truth_init(Truth *t, const Ontology *o, TruthKind kind, FvErr *e)
{
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->n_find = o->n_find;
    t->has_task = calloc((size_t)(o->n_find ? o->n_find : 1), 1);
    if (!t->has_task)
        return err_set(e, FV_ENOMEM, "labels: out of memory");
    return 0;
}

/* Appends a study row (all TRUTH_NONE); returns its index or -1. */
static int truth_add_study(Truth *t, int64_t id, int *cap, FvErr *e)
{
    if (t->n_studies == *cap) {
        int nc = *cap ? *cap * 2 : 256;
        int64_t *ids = realloc(t->study_id, (size_t)nc * sizeof *ids);
        if (ids)
            t->study_id = ids;
        signed char *v = realloc(t->value, (size_t)nc * (size_t)(t->n_find ? t->n_find : 1));
        if (v)
            t->value = v;
        if (!ids || !v)
            return err_set(e, FV_ENOMEM, "labels: out of memory for %d studies", nc);
        *cap = nc;
    }
    int i = t->n_studies++;
    t->study_id[i] = id;
    memset(t->value + (size_t)i * t->n_find, TRUTH_NONE, (size_t)t->n_find);
    return i;
}

static int find_study(const Truth *t, int64_t id)
{
    int lo = 0, hi = t->n_studies - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (t->study_id[mid] == id)
            return mid;
        if (t->study_id[mid] < id)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

int truth_get(const Truth *t, int64_t study_id, int task)
{
    if (task < 0 || task >= t->n_find)
        return TRUTH_NONE;
    int i = find_study(t, study_id);
    return i < 0 ? TRUTH_NONE : t->value[(size_t)i * t->n_find + task];
}

int truth_ctrate_study(const char *volume_name, char *out, size_t n)
{
    char name[512];
    size_t len = strlen(volume_name);
    if (len == 0 || len >= sizeof name)
        return -1;
    memcpy(name, volume_name, len + 1);
    if (len > 7 && strcmp(name + len - 7, ".nii.gz") == 0)
        name[len - 7] = '\0';
    else if (len > 4 && strcmp(name + len - 4, ".nii") == 0)
        name[len - 4] = '\0';
    /* <split>_<patient>_<scan>_<recon>: exactly four parts, all non-empty. */
    int parts = 1;
    for (const char *p = name; *p; p++)
        parts += *p == '_';
    char *last = strrchr(name, '_');
    if (parts != 4 || !last || !last[1] || strstr(name, "__") || name[0] == '_')
        return -1;
    *last = '\0';
    if (strlen(name) + 1 > n)
        return -1;
    memcpy(out, name, strlen(name) + 1);
    return 0;
}

/* Parses a label value: 1, 0, -1, empty; "1.0" / "0.0" too. */
static int parse_value(const char *s, int *v)
{
    while (*s == ' ')
        s++;
    if (!*s) {
        *v = TRUTH_NONE;
        return 0;
    }
    if (!strcmp(s, "1") || !strcmp(s, "1.0") || !strcmp(s, "True") || !strcmp(s, "true"))
        *v = 1;
    else if (!strcmp(s, "0") || !strcmp(s, "0.0") || !strcmp(s, "False") || !strcmp(s, "false"))
        *v = 0;
    else if (!strcmp(s, "-1") || !strcmp(s, "-1.0"))
        *v = TRUTH_UNCERTAIN;
    else
        return -1;
    return 0;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int report(Run *run, const char *src, const char *member, const char *reason, FvErr *e)
{
    if (run)
        return run_error(run, src, member, reason, e);
    log_error("%s:%s: %s", src, member ? member : "", reason);
    return 0;
}

/* One parsed data row, before rows of one study are merged. */
typedef struct Row {
    int64_t study;
    int line;
    int64_t first;   /* offset of its values in the value pool */
} Row;

static int row_cmp(const void *a, const void *b)
{
    const Row *x = a, *y = b;
    if (x->study != y->study)
        return x->study < y->study ? -1 : 1;
    return (x->line > y->line) - (x->line < y->line);
}

int truth_from_file(Truth *t, Db *db, const Ontology *o, const char *path, const char *deid_key,
                    Run *run, FvErr *e)
{
    char *text = NULL;
    size_t len;
    int *col_task = NULL;
    Row *rows = NULL;
    signed char *pool = NULL;
    sqlite3_stmt *st = NULL;
    CsvReader r;
    memset(&r, 0, sizeof r);
    int rc = -1, nrows = 0, caprows = 0;
    if (truth_init(t, o, TRUTH_FILE, e))
        return -1;
    if (!deid_key || !*deid_key) {
        err_set(e, FV_EUSAGE, "%s: joining a labels file to the corpus needs the de-identification "
                "key that ingest used (FVLM_DEID_KEY or deid.key)", path);
        goto out;
    }
    /* Another key would give study keys that match no study: every task
     * unscored, which must not pass for a result. */
    if (deid_check_corpus(db, deid_key, e))
        goto out;
    if (fs_read_file(path, TRUTH_MAX_BYTES, &text, &len, e))
        goto out;
    csv_open(&r, text, len, path, CSV_STRICT);
    int got = csv_next(&r, e);
    if (got < 0)
        goto out;
    if (got == 0) {
        err_set(e, FV_EFORMAT, "%s: empty file (no header row)", path);
        goto out;
    }
    int ncol = r.nf;
    if (!strcmp(r.field[0], "study_id"))
        t->kind = TRUTH_FILE;
    else if (!strcmp(r.field[0], "VolumeName"))
        t->kind = TRUTH_CTRATE;
    else {
        err_set(e, FV_EFORMAT, "%s:1: first column '%s' is neither 'study_id' (fvlm synth's truth "
                "file) nor 'VolumeName' (a CT-RATE labels CSV)", path, r.field[0]);
        goto out;
    }
    snprintf(t->source, sizeof t->source, "%s:%s", t->kind == TRUTH_FILE ? "truth" : "ctrate",
             base_name(path));
    col_task = malloc((size_t)ncol * sizeof *col_task);
    if (!col_task) {
        err_set(e, FV_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    col_task[0] = -1;
    for (int c = 1; c < ncol; c++) {
        const char *h = r.field[c];
        int task = -1;
        if (t->kind == TRUTH_FILE)
            task = onto_finding(o, h);
        else
            for (int k = 0; k < o->n_find && task < 0; k++)
                if (o->find[k].ctrate_label && !strcmp(o->find[k].ctrate_label, h))
                    task = k;
        if (task >= 0 && t->has_task[task]) {
            err_set(e, FV_EFORMAT, "%s:1: column '%s' appears twice", path, h);
            goto out;
        }
        col_task[c] = task;
        if (task >= 0)
            t->has_task[task] = 1;
        else {
            char member[64], reason[600];
            snprintf(member, sizeof member, "column %d", c + 1);
            snprintf(reason, sizeof reason, "column '%s' is not a %s; it is ignored", h,
                     t->kind == TRUTH_FILE ? "task id of findings.tsv"
                                           : "CT-RATE label of findings.tsv");
            if (report(run, path, member, reason, e))
                goto out;
        }
    }
    if (db_prepare(db, &st, "SELECT id FROM studies WHERE study_key = ?", e))
        goto out;
    size_t pool_cap = 0, pool_len = 0;
    while ((got = csv_next(&r, e)) == 1) {
        t->rows++;
        char member[64], reason[700];
        snprintf(member, sizeof member, "row %d", r.line);
        if (r.nf != ncol) {
            snprintf(reason, sizeof reason, "%d fields, the header has %d; row skipped", r.nf, ncol);
            t->rows_bad++;
            if (report(run, path, member, reason, e))
                goto out;
            continue;
        }
        char sid[512];
        if (t->kind == TRUTH_CTRATE) {
            if (truth_ctrate_study(r.field[0], sid, sizeof sid)) {
                snprintf(reason, sizeof reason, "VolumeName '%.300s' is not <split>_<patient>_"
                         "<scan>_<recon>[.nii.gz]; row skipped", r.field[0]);
                t->rows_bad++;
                if (report(run, path, member, reason, e))
                    goto out;
                continue;
            }
        } else {
            if (!*r.field[0] || strlen(r.field[0]) >= sizeof sid) {
                snprintf(reason, sizeof reason, "empty or over-long study_id; row skipped");
                t->rows_bad++;
                if (report(run, path, member, reason, e))
                    goto out;
                continue;
            }
            snprintf(sid, sizeof sid, "%s", r.field[0]);
        }
        char key[65];
        if (deid_pseudonym(deid_key, "study", sid, key, e))
            goto out;
        if (db_bindf(db, st, e, "s", key))
            goto out;
        int srow = db_step(db, st, e);
        if (srow < 0)
            goto out;
        if (srow == 0) {
            t->rows_not_in_corpus++;
            continue;
        }
        int64_t study = sqlite3_column_int64(st, 0);
        if (arr_reserve(&rows, &caprows, nrows, sizeof *rows, 1024)) {
            err_set(e, FV_ENOMEM, "%s: out of memory", path);
            goto out;
        }
        if (pool_len + (size_t)o->n_find > pool_cap) {
            size_t nc = pool_cap ? pool_cap * 2 : (size_t)o->n_find * 1024;
            signed char *np = realloc(pool, nc);
            if (!np) {
                err_set(e, FV_ENOMEM, "%s: out of memory", path);
                goto out;
            }
            pool = np;
            pool_cap = nc;
        }
        Row *row = &rows[nrows++];
        row->study = study;
        row->line = r.line;
        row->first = (int64_t)pool_len;
        signed char *v = pool + pool_len;
        pool_len += (size_t)o->n_find;
        memset(v, TRUTH_NONE, (size_t)o->n_find);
        for (int c = 1; c < ncol; c++) {
            if (col_task[c] < 0)
                continue;
            int val;
            if (parse_value(r.field[c], &val)) {
                snprintf(member, sizeof member, "row %d column %d", r.line, c + 1);
                snprintf(reason, sizeof reason, "value '%.40s' is not 1, 0, -1 or empty; "
                         "left unlabelled", r.field[c]);
                t->rows_bad++;
                if (report(run, path, member, reason, e))
                    goto out;
                continue;
            }
            v[col_task[c]] = (signed char)val;
        }
    }
    if (got < 0)
        goto out;
    /* Merge rows of one study (CT-RATE has a row per reconstruction). */
    if (nrows > 1)
        qsort(rows, (size_t)nrows, sizeof *rows, row_cmp);
    int cap = 0;
    for (int i = 0; i < nrows; i++) {
        const signed char *v = pool + rows[i].first;
        if (i == 0 || rows[i].study != rows[i - 1].study) {
            int k = truth_add_study(t, rows[i].study, &cap, e);
            if (k < 0)
                goto out;
            memcpy(t->value + (size_t)k * t->n_find, v, (size_t)t->n_find);
            continue;
        }
        signed char *dst = t->value + (size_t)(t->n_studies - 1) * t->n_find;
        for (int task = 0; task < t->n_find; task++) {
            if (v[task] == TRUTH_NONE || v[task] == dst[task])
                continue;
            if (dst[task] == TRUTH_NONE) {
                dst[task] = v[task];
                continue;
            }
            if (dst[task] == TRUTH_UNCERTAIN && v[task] != TRUTH_UNCERTAIN)
                continue;
            char member[64], reason[300];
            snprintf(member, sizeof member, "row %d", rows[i].line);
            snprintf(reason, sizeof reason, "task '%s': %d here, %d in an earlier row of the same "
                     "study; marked uncertain", o->find[task].id, v[task], dst[task]);
            t->conflicts++;
            dst[task] = TRUTH_UNCERTAIN;
            if (report(run, path, member, reason, e))
                goto out;
        }
    }
    rc = 0;
out:
    if (st)
        sqlite3_finalize(st);
    csv_close(&r);
    free(text);
    free(col_task);
    free(rows);
    free(pool);
    if (rc)
        truth_free(t);
    return rc;
}

int truth_from_labels(Truth *t, Db *db, const Ontology *o, FvErr *e)
{
    sqlite3_stmt *st = NULL;
    int rc = -1, cap = 0, got;
    if (truth_init(t, o, TRUTH_PARSED, e))
        return -1;
    snprintf(t->source, sizeof t->source, "parsed (silver)");
    /* Studies whose report was parsed: every task starts negative (not
     * mentioned); studies with label rows but no parsed report start
     * unlabelled. */
    if (db_prepare(db, &st,
                   "SELECT s.id, EXISTS (SELECT 1 FROM reports r WHERE r.study_id = s.id AND "
                   "r.parsed_run IS NOT NULL) FROM studies s WHERE EXISTS (SELECT 1 FROM reports r "
                   "WHERE r.study_id = s.id AND r.parsed_run IS NOT NULL) OR EXISTS (SELECT 1 FROM "
                   "labels l WHERE l.study_id = s.id) ORDER BY s.id",
                   e))
        goto out;
    while ((got = db_step(db, st, e)) == 1) {
        int k = truth_add_study(t, sqlite3_column_int64(st, 0), &cap, e);
        if (k < 0)
            goto out;
        if (sqlite3_column_int(st, 1))
            memset(t->value + (size_t)k * t->n_find, 0, (size_t)t->n_find);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (got < 0)
        goto out;
    for (int k = 0; k < o->n_find; k++)
        t->has_task[k] = t->n_studies > 0;
    if (db_prepare(db, &st, "SELECT study_id, task, value, source FROM labels", e))
        goto out;
    int64_t unknown = 0;
    while ((got = db_step(db, st, e)) == 1) {
        t->rows++;
        int64_t sid = sqlite3_column_int64(st, 0);
        const char *task = (const char *)sqlite3_column_text(st, 1);
        const char *src = (const char *)sqlite3_column_text(st, 3);
        int k = task ? onto_finding(o, task) : -1;
        int i = find_study(t, sid);
        if (k < 0 || i < 0) {
            unknown++;
            continue;
        }
        int val = sqlite3_column_type(st, 2) == SQLITE_NULL ? 0 : sqlite3_column_int(st, 2);
        if (val != 1 && val != 0 && val != -1) {
            unknown++;
            continue;
        }
        t->value[(size_t)i * t->n_find + k] = (signed char)(val == -1 ? TRUTH_UNCERTAIN : val);
        if (src && !strcmp(src, "gold"))
            t->from_gold++;
        else if (src && !strcmp(src, "audit"))
            t->from_audit++;
        else
            t->from_parsed++;
    }
    if (got < 0)
        goto out;
    if (unknown)
        log_warn("labels table: %lld rows name a task not in findings.tsv or hold a value other "
                 "than 1, 0, -1, NULL; ignored", (long long)unknown);
    t->rows_bad = unknown;
    if (t->from_gold || t->from_audit)
        snprintf(t->source, sizeof t->source, "parsed (silver; %lld gold, %lld audited)",
                 (long long)t->from_gold, (long long)t->from_audit);
    rc = 0;
out:
    if (st)
        sqlite3_finalize(st);
    if (rc)
        truth_free(t);
    return rc;
}
