#include "stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "json.h"

double stats_kappa(const char *const *a, const char *const *b, int n)
{
    if (n <= 0)
        return NAN;
    /* Categories seen in either rating (decision values: a handful). */
    enum { MAXC = 16 };
    const char *cat[MAXC];
    int nc = 0;
    double pa[MAXC] = {0}, pb[MAXC] = {0};
    int agree = 0;
    for (int i = 0; i < n; i++) {
        const char *v[2] = {a[i], b[i]};
        int idx[2];
        for (int s = 0; s < 2; s++) {
            int c = 0;
            while (c < nc && strcmp(cat[c], v[s]))
                c++;
            if (c == nc) {
                if (nc == MAXC)
                    return NAN;
                cat[nc++] = v[s];
            }
            idx[s] = c;
        }
        pa[idx[0]] += 1.0 / n;
        pb[idx[1]] += 1.0 / n;
        agree += idx[0] == idx[1];
    }
    double po = (double)agree / n, pe = 0;
    for (int c = 0; c < nc; c++)
        pe += pa[c] * pb[c];
    if (fabs(1 - pe) < 1e-12)
        return NAN;
    return (po - pe) / (1 - pe);
}

void stats_wilson(int64_t k, int64_t n, double *lo, double *hi)
{
    if (n <= 0) {
        *lo = NAN;
        *hi = NAN;
        return;
    }
    const double z = 1.959963984540054;
    double p = (double)k / (double)n, z2n = z * z / (double)n;
    double centre = (p + z2n / 2) / (1 + z2n);
    double half = z * sqrt(p * (1 - p) / (double)n + z2n / (4.0 * (double)n)) / (1 + z2n);
    *lo = fmax(0, centre - half);
    *hi = fmin(1, centre + half);
}

typedef struct Group {
    char name[160];
    int64_t n, k;
} Group;

typedef struct Groups {
    Group *g;
    int n, cap;
} Groups;

static int group_add(Groups *gs, const char *name, int correct)
{
    for (int i = 0; i < gs->n; i++)
        if (!strcmp(gs->g[i].name, name)) {
            gs->g[i].n++;
            gs->g[i].k += correct != 0;
            return 0;
        }
    if (arr_reserve(&gs->g, &gs->cap, gs->n, sizeof *gs->g, 32))
        return -1;
    Group *g = &gs->g[gs->n++];
    snprintf(g->name, sizeof g->name, "%s", name);
    g->n = 1;
    g->k = correct != 0;
    return 0;
}

static int cmp_group(const void *a, const void *b)
{
    return strcmp(((const Group *)a)->name, ((const Group *)b)->name);
}

#define LIVE_CTE                                                                              \
    "live AS (SELECT a.* FROM audits a WHERE a.kind IN ('link', 'status', 'label', 'flag', 'done')" \
    " AND NOT EXISTS (SELECT 1 FROM audits u WHERE u.undoes = a.id AND u.kind = 'undo'))"
#define SAMPLE_CTE                                                                            \
    "sample AS (SELECT DISTINCT q.study_id FROM audit_queue q WHERE q.ord = 'random'"           \
    " AND EXISTS (SELECT 1 FROM live d WHERE d.study_id = q.study_id AND d.kind = 'done'))"

static void put_groups(JsonW *w, Buf *txt, const char *title, Groups *gs)
{
    if (gs->n > 1) /* (qsort of a NULL array is undefined even for 0 elements) */
        qsort(gs->g, (size_t)gs->n, sizeof *gs->g, cmp_group);
    if (w) {
        jw_key(w, title);
        jw_arr(w);
    } else {
        buf_printf(txt, "\n%s (random sample; 95%% Wilson interval)\n", title);
        if (gs->n == 0)
            buf_puts(txt, "  none yet: build a queue with --order random and mark studies done\n");
    }
    for (int i = 0; i < gs->n; i++) {
        const Group *g = &gs->g[i];
        double lo, hi;
        stats_wilson(g->k, g->n, &lo, &hi);
        if (w) {
            jw_obj(w);
            jw_key(w, "name"); jw_str(w, g->name);
            jw_key(w, "n"); jw_int(w, g->n);
            jw_key(w, "correct"); jw_int(w, g->k);
            jw_key(w, "precision"); jw_num(w, (double)g->k / (double)g->n);
            jw_key(w, "lo"); jw_num(w, lo);
            jw_key(w, "hi"); jw_num(w, hi);
            jw_obj_end(w);
        } else {
            buf_printf(txt, "  %-32s %5lld/%-5lld %.3f [%.3f, %.3f]\n", g->name, (long long)g->k,
                       (long long)g->n, (double)g->k / (double)g->n, lo, hi);
        }
    }
    if (w)
        jw_arr_end(w);
}

int stats_write(Db *db, int json, Buf *out, FvErr *e)
{
    JsonW jw, *w = json ? &jw : NULL;
    if (w) {
        jw_init(w, out, 0);
        jw_obj(w);
    }
    sqlite3_stmt *st = NULL;
    int rc = 0, r = 0;

    /* Decisions per annotator and day. */
    if (db_prepare(db, &st,
                   "SELECT who, substr(at, 1, 10), count(*) FROM audits WHERE kind <> 'undo'"
                   " AND kind IS NOT NULL GROUP BY who, substr(at, 1, 10) ORDER BY 2, 1",
                   e))
        return -1;
    if (w) {
        jw_key(w, "per_day");
        jw_arr(w);
    } else {
        buf_puts(out, "decisions per annotator and day\n");
    }
    int any = 0;
    while ((r = db_step(db, st, e)) == 1) {
        any = 1;
        const char *who = (const char *)sqlite3_column_text(st, 0);
        const char *day = (const char *)sqlite3_column_text(st, 1);
        int64_t n = sqlite3_column_int64(st, 2);
        if (w) {
            jw_obj(w);
            jw_key(w, "who"); jw_str(w, who);
            jw_key(w, "day"); jw_str(w, day);
            jw_key(w, "decisions"); jw_int(w, n);
            jw_obj_end(w);
        } else {
            buf_printf(out, "  %s  %-20s %lld\n", day, who, (long long)n);
        }
    }
    if (!any && !w)
        buf_puts(out, "  none yet\n");
    if (w)
        jw_arr_end(w);
    sqlite3_finalize(st);
    if (r < 0)
        return -1;

    /* Agreement on items two annotators decided. */
    if (db_prepare(db, &st,
                   "WITH " LIVE_CTE ","
                   " per AS (SELECT study_id, kind, key, who, new, row_number() OVER"
                   "  (PARTITION BY study_id, kind, key, who ORDER BY id DESC) AS rn FROM live"
                   "  WHERE kind <> 'done'),"
                   " last AS (SELECT * FROM per WHERE rn = 1),"
                   " ranked AS (SELECT last.*, row_number() OVER (PARTITION BY study_id, kind, key"
                   "  ORDER BY who) AS r2 FROM last)"
                   " SELECT x.kind, x.new, y.new FROM ranked x JOIN ranked y ON x.study_id = y.study_id"
                   " AND x.kind = y.kind AND x.key = y.key AND x.r2 = 1 AND y.r2 = 2 ORDER BY x.kind",
                   e))
        return -1;
    char **va = NULL, **vb = NULL, *cur_kind = NULL;
    int n = 0, cap_a = 0, cap_b = 0;
    if (w) {
        jw_key(w, "agreement");
        jw_arr(w);
    } else {
        buf_puts(out, "\nagreement on doubly-audited items (Cohen's kappa)\n");
    }
    any = 0;
    for (;;) {
        r = db_step(db, st, e);
        const char *kind = r == 1 ? (const char *)sqlite3_column_text(st, 0) : NULL;
        if (cur_kind && (!kind || strcmp(kind, cur_kind))) {
            double k = stats_kappa((const char *const *)va, (const char *const *)vb, n);
            int same = 0;
            for (int i = 0; i < n; i++)
                same += !strcmp(va[i], vb[i]);
            any = 1;
            if (w) {
                jw_obj(w);
                jw_key(w, "kind"); jw_str(w, cur_kind);
                jw_key(w, "items"); jw_int(w, n);
                jw_key(w, "agree"); jw_int(w, same);
                jw_key(w, "kappa"); jw_num(w, k);
                jw_obj_end(w);
            } else {
                buf_printf(out, "  %-8s %5d items, %5d agree, kappa %s%.3f\n", cur_kind, n, same,
                           isnan(k) ? "undefined " : "", isnan(k) ? 0.0 : k);
            }
            for (int i = 0; i < n; i++) {
                free(va[i]);
                free(vb[i]);
            }
            n = 0;
            free(cur_kind);
            cur_kind = NULL;
        }
        if (r != 1)
            break;
        if (!cur_kind && !(cur_kind = strdup(kind))) {
            rc = err_set(e, FV_ENOMEM, "audit stats: out of memory");
            break;
        }
        if (arr_reserve(&va, &cap_a, n, sizeof *va, 64) || arr_reserve(&vb, &cap_b, n, sizeof *vb, 64)) {
            rc = err_set(e, FV_ENOMEM, "audit stats: out of memory");
            break;
        }
        const unsigned char *x = sqlite3_column_text(st, 1), *y = sqlite3_column_text(st, 2);
        va[n] = strdup(x ? (const char *)x : "");
        vb[n] = strdup(y ? (const char *)y : "");
        n++;
    }
    if (!any && !w)
        buf_puts(out, "  no item decided by two annotators yet (queue --double)\n");
    for (int i = 0; i < n; i++) {
        free(va[i]);
        free(vb[i]);
    }
    free(va);
    free(vb);
    free(cur_kind);
    if (w)
        jw_arr_end(w);
    sqlite3_finalize(st);
    if (r < 0 || rc)
        return -1;

    /* Precision from the random sample. */
    Groups by_anat = {0}, by_rule = {0}, by_task = {0};
    int64_t n_sample = 0;
    int found = 0;
    if (db_query_int(db, e, &n_sample, &found, "WITH " LIVE_CTE ", " SAMPLE_CTE
                     " SELECT count(*) FROM sample", ""))
        return -1;
    if (db_prepare(db, &st,
                   "WITH " LIVE_CTE ", " SAMPLE_CTE
                   " SELECT l.anatomy, coalesce(l.rule, l.method), coalesce(l.accepted, 1) FROM links l"
                   " JOIN sentences s ON s.id = l.sentence_id WHERE s.study_id IN sample"
                   " AND l.source = 'align' AND l.method <> 'audit' AND l.anatomy <> ''",
                   e))
        return -1;
    while (rc == 0 && (r = db_step(db, st, e)) == 1) {
        const char *an = (const char *)sqlite3_column_text(st, 0);
        const char *rule = (const char *)sqlite3_column_text(st, 1);
        int ok = sqlite3_column_int(st, 2) != 0;
        if (group_add(&by_anat, an ? an : "", ok) || group_add(&by_rule, rule ? rule : "", ok))
            rc = err_set(e, FV_ENOMEM, "audit stats: out of memory");
    }
    sqlite3_finalize(st);
    if (r < 0)
        rc = -1;
    if (rc == 0 &&
        db_prepare(db, &st,
                   "WITH " LIVE_CTE ", " SAMPLE_CTE
                   " SELECT lb.task, CASE WHEN lb.source = 'audit' THEN (SELECT json_extract(a.old,"
                   " '$.value') FROM audits a WHERE a.study_id = lb.study_id AND a.kind = 'label'"
                   " AND json_extract(a.key, '$.task') = lb.task ORDER BY a.id LIMIT 1)"
                   " ELSE lb.value END, lb.value FROM labels lb WHERE lb.study_id IN sample"
                   " AND lb.source IN ('parsed', 'audit')",
                   e))
        rc = -1;
    while (rc == 0 && (r = db_step(db, st, e)) == 1) {
        if (sqlite3_column_type(st, 1) == SQLITE_NULL)
            continue; /* parse said nothing: a miss, not a precision error */
        const char *task = (const char *)sqlite3_column_text(st, 0);
        int ok = sqlite3_column_type(st, 2) != SQLITE_NULL &&
                 sqlite3_column_int(st, 1) == sqlite3_column_int(st, 2);
        if (group_add(&by_task, task ? task : "", ok))
            rc = err_set(e, FV_ENOMEM, "audit stats: out of memory");
    }
    if (r < 0)
        rc = -1;
    sqlite3_finalize(st);
    st = NULL;
    if (rc == 0) {
        if (w) {
            jw_key(w, "sample_studies");
            jw_int(w, n_sample);
        } else {
            buf_printf(out, "\nrandom sample: %lld studies reviewed whole\n", (long long)n_sample);
        }
        put_groups(w, out, "link_precision_by_anatomy", &by_anat);
        put_groups(w, out, "link_precision_by_rule", &by_rule);
        put_groups(w, out, "label_precision_by_task", &by_task);
    }
    free(by_anat.g);
    free(by_rule.g);
    free(by_task.g);
    if (rc)
        return -1;

    /* What remains. */
    if (db_prepare(db, &st,
                   "WITH " LIVE_CTE " SELECT q.who, count(*), sum(EXISTS (SELECT 1 FROM live d"
                   " WHERE d.study_id = q.study_id AND d.who = q.who AND d.kind = 'done'))"
                   " FROM audit_queue q GROUP BY q.who ORDER BY q.who",
                   e))
        return -1;
    if (w) {
        jw_key(w, "remaining");
        jw_arr(w);
    } else {
        buf_puts(out, "\nremaining\n");
    }
    while ((r = db_step(db, st, e)) == 1) {
        const char *who = (const char *)sqlite3_column_text(st, 0);
        int64_t q = sqlite3_column_int64(st, 1), d = sqlite3_column_int64(st, 2);
        if (w) {
            jw_obj(w);
            jw_key(w, "who"); jw_str(w, who);
            jw_key(w, "queued"); jw_int(w, q);
            jw_key(w, "done"); jw_int(w, d);
            jw_obj_end(w);
        } else {
            buf_printf(out, "  %-20s %lld of %lld queued studies left\n", who, (long long)(q - d),
                       (long long)q);
        }
    }
    if (w)
        jw_arr_end(w);
    sqlite3_finalize(st);
    if (r < 0)
        return -1;
    int64_t never = 0, total = 0;
    if (db_query_int(db, e, &never, &found,
                     "SELECT count(*) FROM studies s WHERE NOT EXISTS (SELECT 1 FROM audits a"
                     " WHERE a.study_id = s.id)", "") ||
        db_query_int(db, e, &total, &found, "SELECT count(*) FROM studies", ""))
        return -1;
    if (w) {
        jw_key(w, "studies"); jw_int(w, total);
        jw_key(w, "never_audited"); jw_int(w, never);
        jw_obj_end(w);
    } else {
        buf_printf(out, "  %lld of %lld studies never audited\n", (long long)never, (long long)total);
    }
    return out->failed ? err_set(e, FV_ENOMEM, "audit stats: out of memory") : 0;
}

int stats_export(Db *db, int csv, Buf *out, FvErr *e)
{
    static const char *const cols[] = {"id", "who", "role", "at", "study_id", "study_key", "kind",
                                       "target", "key", "old", "new", "comment", "undoes",
                                       "queue", "current"};
    const int nc = (int)(sizeof cols / sizeof cols[0]);
    sqlite3_stmt *st;
    if (db_prepare(db, &st,
                   "WITH live AS (SELECT a.id, a.kind, a.key, a.study_id, a.role FROM audits a"
                   " WHERE a.kind IN ('link', 'status', 'label', 'flag')"
                   " AND NOT EXISTS (SELECT 1 FROM audits u WHERE u.undoes = a.id AND u.kind = 'undo')),"
                   " cur AS (SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY study_id, kind,"
                   " key ORDER BY coalesce(role = 'lead', 0) DESC, id DESC) AS rn FROM live) WHERE rn = 1)"
                   " SELECT a.id, a.who, a.role, a.at, a.study_id, s.study_key, a.kind, a.target,"
                   " a.key, a.old, a.new, a.comment, a.undoes, a.queue, a.id IN cur"
                   " FROM audits a LEFT JOIN studies s ON s.id = a.study_id ORDER BY a.id",
                   e))
        return -1;
    if (csv) {
        for (int i = 0; i < nc; i++) {
            if (i)
                buf_putc(out, ',');
            csv_put_field(out, cols[i]);
        }
        buf_puts(out, "\r\n");
    }
    int r;
    while ((r = db_step(db, st, e)) == 1) {
        if (csv) {
            for (int i = 0; i < nc; i++) {
                if (i)
                    buf_putc(out, ',');
                csv_put_field(out, (const char *)sqlite3_column_text(st, i));
            }
            buf_puts(out, "\r\n");
        } else {
            JsonW w;
            jw_init(&w, out, 0);
            jw_obj(&w);
            for (int i = 0; i < nc; i++) {
                jw_key(&w, cols[i]);
                int t = sqlite3_column_type(st, i);
                const char *txt = (const char *)sqlite3_column_text(st, i);
                if (t == SQLITE_NULL)
                    jw_null(&w);
                else if (t == SQLITE_INTEGER && i == nc - 1)
                    jw_bool(&w, sqlite3_column_int(st, i));
                else if (t == SQLITE_INTEGER)
                    jw_int(&w, sqlite3_column_int64(st, i));
                else if ((i == 8 || i == 9) && txt && (txt[0] == '{' || !strcmp(txt, "null")))
                    jw_raw(&w, txt);
                else
                    jw_str(&w, txt);
            }
            jw_obj_end(&w);
            buf_putc(out, '\n');
        }
    }
    sqlite3_finalize(st);
    if (r < 0)
        return -1;
    return out->failed ? err_set(e, FV_ENOMEM, "audit export: out of memory") : 0;
}
