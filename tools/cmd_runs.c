/* fvlm runs: the runs a corpus records, read back for researchers: a list
 * with filters, one run whole (config, counts, metrics, errors, the models
 * and evaluations it made), and the differences between two runs.
 *
 * Config and counts are stored as JSON text; SQLite's own JSON functions
 * flatten them here (json_each, json_tree), so a key's path is what the
 * user sees and compares. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "json.h"

static const char *help =
    "usage: fvlm runs [--db FILE] [--stage STAGE] [--status STATUS] [--limit N] [--json]\n"
    "       fvlm runs show [--db FILE] [--json] ID\n"
    "       fvlm runs diff [--db FILE] [--json] A B\n\n"
    "Every stage run (ingest, parse, align, train, eval, probe, ...) is a row of the\n"
    "corpus's `runs` table. Without a subcommand: the runs, newest first, with stage,\n"
    "status, start, duration, errors, source revision and the main counts.\n"
    "show ID: one run whole: command line, version, revision, host, seed, corpus\n"
    "fingerprint, config, counts, errors, metrics (first, last, min, max per name),\n"
    "the models it wrote and the evaluations it made or that scored its models.\n"
    "diff A B: what differs between two runs: config keys, counts, seed, revision,\n"
    "corpus fingerprint, final metrics, and mean AUC with the tasks that moved most.\n\n"
    "options:\n"
    "  --db FILE          corpus database (default corpus.db)\n"
    "  --stage STAGE      only runs of this stage (list)\n"
    "  --status STATUS    only runs with this status: running, ok, failed, interrupted\n"
    "  --limit N          at most N runs (list; default 50, 0 = all)\n"
    "  --json             machine-readable output on stdout\n"
    "  --help             this help\n";

enum { OPT_STAGE = OPT_FIRST_PRIVATE, OPT_STATUS, OPT_LIMIT };

/* ------------------------------------------------------------------ helpers */

static const char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : NULL;
}

static const char *or_dash(const char *s)
{
    return s && *s ? s : "-";
}

/* Seconds between two ISO-8601 UTC times ("2026-12-07T23:10:00Z"), or -1. */
static double iso_seconds(const char *a, const char *b)
{
    if (!a || !b)
        return -1;
    struct tm ta = {0}, tb = {0};
    double fa = 0, fb = 0;
    int n1 = sscanf(a, "%d-%d-%dT%d:%d:%lf", &ta.tm_year, &ta.tm_mon, &ta.tm_mday, &ta.tm_hour,
                    &ta.tm_min, &fa);
    int n2 = sscanf(b, "%d-%d-%dT%d:%d:%lf", &tb.tm_year, &tb.tm_mon, &tb.tm_mday, &tb.tm_hour,
                    &tb.tm_min, &fb);
    if (n1 != 6 || n2 != 6)
        return -1;
    ta.tm_sec = (int)fa;
    tb.tm_sec = (int)fb;
    ta.tm_year -= 1900;
    tb.tm_year -= 1900;
    ta.tm_mon -= 1;
    tb.tm_mon -= 1;
    return difftime(timegm(&tb), timegm(&ta)) + (fb - (int)fb) - (fa - (int)fa);
}

static void format_duration(double s, char *out, size_t n)
{
    if (s < 0)
        snprintf(out, n, "-");
    else if (s < 60)
        snprintf(out, n, "%.1fs", s);
    else if (s < 3600)
        snprintf(out, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(out, n, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
}

/* A run's stored config, counts or args as (key, value) pairs, in key
 * order: config and counts flattened to their leaves ("train.lr",
 * "tasks.scored"), args as "argv[i]". */
typedef struct Pair {
    char *key, *val;
} Pair;

typedef struct Pairs {
    Pair *p;
    int n, cap;
} Pairs;

static void pairs_free(Pairs *p)
{
    for (int i = 0; i < p->n; i++) {
        free(p->p[i].key);
        free(p->p[i].val);
    }
    free(p->p);
    memset(p, 0, sizeof *p);
}

static int pairs_add(Pairs *p, const char *k, const char *v, FvErr *e)
{
    if (arr_reserve(&p->p, &p->cap, p->n, sizeof *p->p, 16) < 0)
        return err_set(e, FV_ENOMEM, "out of memory");
    Pair *x = &p->p[p->n];
    x->key = strdup(k);
    x->val = strdup(v ? v : "null");
    if (!x->key || !x->val) {
        free(x->key);
        free(x->val);
        return err_set(e, FV_ENOMEM, "out of memory");
    }
    p->n++;
    return 0;
}

/* column is "config" or "counts". The leaves of the JSON in key order;
 * json_tree's fullkey is "$.a.b" or "$.\"train.lr\"": shown without the
 * "$." and the quotes. Text that is not JSON is one pair with key "". */
static int run_pairs(Db *db, int64_t id, const char *column, Pairs *p, FvErr *e)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT replace(substr(t.fullkey, 3), '\"', ''),"
             " CASE WHEN t.type = 'text' THEN t.value ELSE json_quote(t.value) END"
             " FROM runs r, json_tree(r.%s) t"
             " WHERE r.id = ? AND json_valid(r.%s) AND t.type NOT IN ('object', 'array')"
             " ORDER BY 1",
             column, column);
    sqlite3_stmt *st;
    if (db_prepare(db, &st, sql, e) || db_bindf(db, st, e, "i", id))
        return -1;
    int rc;
    while ((rc = db_step(db, st, e)) == 1)
        if (pairs_add(p, col_text(st, 0) ? col_text(st, 0) : "", col_text(st, 1), e)) {
            rc = -1;
            break;
        }
    sqlite3_finalize(st);
    return rc < 0 ? -1 : 0;
}

typedef struct RunRow {
    int64_t id, seed, pid, n_errors;
    int has_seed;
    char stage[32], status[16];
    char *args, *version, *revision, *host, *fingerprint, *started, *ended;
} RunRow;

static void runrow_free(RunRow *r)
{
    free(r->args);
    free(r->version);
    free(r->revision);
    free(r->host);
    free(r->fingerprint);
    free(r->started);
    free(r->ended);
    memset(r, 0, sizeof *r);
}

static char *dup_col(sqlite3_stmt *st, int i)
{
    const char *t = col_text(st, i);
    return t ? strdup(t) : NULL;
}

/* Fails with "no run ID in FILE" when there is none. */
static int runrow_get(Db *db, int64_t id, RunRow *r, FvErr *e)
{
    memset(r, 0, sizeof *r);
    sqlite3_stmt *st;
    if (db_prepare(db, &st,
                   "SELECT id, stage, status, args, version, revision, host, corpus_fingerprint,"
                   " started_at, ended_at, seed, pid, n_errors FROM runs WHERE id = ?",
                   e) ||
        db_bindf(db, st, e, "i", id))
        return -1;
    int rc = db_step(db, st, e);
    if (rc == 1) {
        r->id = sqlite3_column_int64(st, 0);
        snprintf(r->stage, sizeof r->stage, "%s", or_dash(col_text(st, 1)));
        snprintf(r->status, sizeof r->status, "%s", or_dash(col_text(st, 2)));
        r->args = dup_col(st, 3);
        r->version = dup_col(st, 4);
        r->revision = dup_col(st, 5);
        r->host = dup_col(st, 6);
        r->fingerprint = dup_col(st, 7);
        r->started = dup_col(st, 8);
        r->ended = dup_col(st, 9);
        r->has_seed = sqlite3_column_type(st, 10) != SQLITE_NULL;
        r->seed = sqlite3_column_int64(st, 10);
        r->pid = sqlite3_column_int64(st, 11);
        r->n_errors = sqlite3_column_int64(st, 12);
    }
    sqlite3_finalize(st);
    if (rc == 0)
        return err_set(e, FV_ENOTFOUND, "%s: no run %lld (list them with `fvlm runs --db %s`)",
                       db->path, (long long)id, db->path);
    return rc < 0 ? -1 : 0;
}

/* The command line from the args JSON array, space-separated. */
static void args_line(Db *db, const char *args, Buf *out)
{
    sqlite3_stmt *st;
    FvErr e = {0};
    if (!args || db_prepare(db, &st, "SELECT value FROM json_each(?) ORDER BY key", &e))
        return;
    if (db_bindf(db, st, &e, "s", args) == 0)
        while (db_step(db, st, &e) == 1)
            buf_printf(out, "%s%s", out->len ? " " : "fvlm ", or_dash(col_text(st, 0)));
    sqlite3_finalize(st);
}

/* Mean AUC over the tasks that have one, per (method, style, split,
 * label_source) of one eval run; optionally restricted to one method. */
typedef struct EvalSum {
    char method[32], style[16], split[8], label_source[64];
    int64_t model_id;
    int tasks, scored;
    double mean_auc;
} EvalSum;

static int eval_sums(Db *db, int64_t run_id, EvalSum **out, int *n, FvErr *e)
{
    *out = NULL;
    *n = 0;
    int cap = 0;
    sqlite3_stmt *st;
    if (db_prepare(db, &st,
                   "SELECT method, style, split, label_source, coalesce(model_id, 0), count(*),"
                   " count(auc), avg(auc) FROM eval_results WHERE run_id = ?"
                   " GROUP BY method, style, split, label_source ORDER BY method, style",
                   e) ||
        db_bindf(db, st, e, "i", run_id))
        return -1;
    int rc;
    while ((rc = db_step(db, st, e)) == 1) {
        if (arr_reserve(out, &cap, *n + 1, sizeof **out, 4) < 0) {
            rc = err_set(e, FV_ENOMEM, "out of memory");
            break;
        }
        EvalSum *s = &(*out)[(*n)++];
        memset(s, 0, sizeof *s);
        snprintf(s->method, sizeof s->method, "%s", or_dash(col_text(st, 0)));
        snprintf(s->style, sizeof s->style, "%s", or_dash(col_text(st, 1)));
        snprintf(s->split, sizeof s->split, "%s", or_dash(col_text(st, 2)));
        snprintf(s->label_source, sizeof s->label_source, "%s", or_dash(col_text(st, 3)));
        s->model_id = sqlite3_column_int64(st, 4);
        s->tasks = sqlite3_column_int(st, 5);
        s->scored = sqlite3_column_int(st, 6);
        s->mean_auc = sqlite3_column_type(st, 7) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 7);
    }
    sqlite3_finalize(st);
    if (rc < 0) {
        free(*out);
        *out = NULL;
        *n = 0;
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ list */

static int runs_list(Db *db, const char *stage, const char *status, long long limit, int json)
{
    FvErr e = {0};
    sqlite3_stmt *st;
    if (db_prepare(db, &st,
                   "SELECT id, stage, status, started_at, ended_at, n_errors, revision, counts"
                   " FROM runs WHERE (?1 IS NULL OR stage = ?1) AND (?2 IS NULL OR status = ?2)"
                   " ORDER BY id DESC LIMIT ?3",
                   &e) ||
        db_bindf(db, st, &e, "ssi", stage, status, (int64_t)(limit > 0 ? limit : -1)))
        return cli_fail(&e);
    Buf out = {0};
    JsonW w;
    jw_init(&w, &out, 1);
    if (json)
        jw_arr(&w);
    else
        buf_printf(&out, "%6s  %-8s %-11s %-20s %9s %6s  %-14s %s\n", "id", "stage", "status",
                   "started (UTC)", "duration", "errors", "revision", "counts");
    int rc, n = 0;
    while ((rc = db_step(db, st, &e)) == 1) {
        n++;
        int64_t id = sqlite3_column_int64(st, 0);
        const char *started = col_text(st, 3), *ended = col_text(st, 4);
        double secs = iso_seconds(started, ended);
        if (json) {
            jw_obj(&w);
            jw_key(&w, "id");
            jw_int(&w, id);
            jw_key(&w, "stage");
            jw_str(&w, or_dash(col_text(st, 1)));
            jw_key(&w, "status");
            jw_str(&w, or_dash(col_text(st, 2)));
            jw_key(&w, "started_at");
            started ? jw_str(&w, started) : jw_null(&w);
            jw_key(&w, "ended_at");
            ended ? jw_str(&w, ended) : jw_null(&w);
            jw_key(&w, "seconds");
            secs >= 0 ? jw_num(&w, secs) : jw_null(&w);
            jw_key(&w, "errors");
            jw_int(&w, sqlite3_column_int64(st, 5));
            jw_key(&w, "revision");
            col_text(st, 6) ? jw_str(&w, col_text(st, 6)) : jw_null(&w);
            jw_key(&w, "counts");
            const char *c = col_text(st, 7);
            c ? jw_raw(&w, c) : jw_null(&w);
            jw_obj_end(&w);
            continue;
        }
        char dur[32];
        format_duration(secs, dur, sizeof dur);
        Pairs cnt = {0};
        Buf line = {0};
        if (run_pairs(db, id, "counts", &cnt, &e) == 0)
            for (int i = 0; i < cnt.n && line.len < 60; i++)
                buf_printf(&line, "%s%s %s", i ? ", " : "", cnt.p[i].key, cnt.p[i].val);
        if (line.len >= 60)
            buf_puts(&line, ", ...");
        pairs_free(&cnt);
        buf_printf(&out, "%6lld  %-8s %-11s %-20s %9s %6lld  %-14s %s\n", (long long)id,
                   or_dash(col_text(st, 1)), or_dash(col_text(st, 2)), or_dash(started), dur,
                   (long long)sqlite3_column_int64(st, 5), or_dash(col_text(st, 6)),
                   line.data ? line.data : "-");
        buf_free(&line);
    }
    sqlite3_finalize(st);
    if (rc < 0) {
        buf_free(&out);
        return cli_fail(&e);
    }
    if (json) {
        jw_arr_end(&w);
        buf_putc(&out, '\n');
    }
    if (n == 0) {
        buf_free(&out);
        fprintf(stderr, "fvlm runs: %s records no run%s%s%s%s%s\n", db->path,
                stage ? " of stage " : "", stage ? stage : "", status ? " with status " : "",
                status ? status : "", stage || status ? " (drop the filter to see all)" : "");
        return EXIT_FAIL;
    }
    return cli_write(&out);
}

/* ------------------------------------------------------------------ show */

static void text_pairs(Buf *out, const char *title, const Pairs *p)
{
    buf_printf(out, "%s:%s\n", title, p->n ? "" : " -");
    int w = 0;
    for (int i = 0; i < p->n; i++)
        if ((int)strlen(p->p[i].key) > w)
            w = (int)strlen(p->p[i].key);
    for (int i = 0; i < p->n; i++)
        buf_printf(out, "  %-*s  %s\n", w, p->p[i].key, p->p[i].val);
}

static void json_pairs(JsonW *w, const char *title, const Pairs *p)
{
    jw_key(w, title);
    jw_obj(w);
    for (int i = 0; i < p->n; i++) {
        jw_key(w, p->p[i].key);
        jw_str(w, p->p[i].val);
    }
    jw_obj_end(w);
}

static int show_metrics(Db *db, int64_t id, Buf *out, JsonW *w, int json, FvErr *e)
{
    sqlite3_stmt *st;
    /* first and last by step, min and max, per metric name */
    if (db_prepare(db, &st,
                   "SELECT m.name, count(*), min(m.value), max(m.value),"
                   " (SELECT value FROM metrics f WHERE f.run_id = m.run_id AND f.name = m.name"
                   "  ORDER BY step LIMIT 1),"
                   " (SELECT value FROM metrics l WHERE l.run_id = m.run_id AND l.name = m.name"
                   "  ORDER BY step DESC LIMIT 1), max(m.step)"
                   " FROM metrics m WHERE m.run_id = ? GROUP BY m.name ORDER BY m.name",
                   e) ||
        db_bindf(db, st, e, "i", id))
        return -1;
    if (json) {
        jw_key(w, "metrics");
        jw_obj(w);
    }
    int rc, n = 0;
    while ((rc = db_step(db, st, e)) == 1) {
        const char *name = or_dash(col_text(st, 0));
        if (json) {
            jw_key(w, name);
            jw_obj(w);
            jw_key(w, "points");
            jw_int(w, sqlite3_column_int64(st, 1));
            jw_key(w, "min");
            jw_num(w, sqlite3_column_double(st, 2));
            jw_key(w, "max");
            jw_num(w, sqlite3_column_double(st, 3));
            jw_key(w, "first");
            jw_num(w, sqlite3_column_double(st, 4));
            jw_key(w, "last");
            jw_num(w, sqlite3_column_double(st, 5));
            jw_key(w, "last_step");
            jw_int(w, sqlite3_column_int64(st, 6));
            jw_obj_end(w);
        } else {
            if (n == 0)
                buf_printf(out, "metrics:\n  %-18s %7s %12s %12s %12s %12s\n", "name", "points",
                           "first", "last", "min", "max");
            buf_printf(out, "  %-18s %7lld %12.6g %12.6g %12.6g %12.6g\n", name,
                       (long long)sqlite3_column_int64(st, 1), sqlite3_column_double(st, 4),
                       sqlite3_column_double(st, 5), sqlite3_column_double(st, 2),
                       sqlite3_column_double(st, 3));
        }
        n++;
    }
    sqlite3_finalize(st);
    if (json)
        jw_obj_end(w);
    else if (n == 0)
        buf_puts(out, "metrics: -\n");
    return rc < 0 ? -1 : 0;
}

static int show_errors(Db *db, const RunRow *r, Buf *out, JsonW *w, int json, FvErr *e)
{
    sqlite3_stmt *st;
    if (db_prepare(db, &st,
                   "SELECT source, member, reason FROM errors WHERE run_id = ? ORDER BY id LIMIT 10",
                   e) ||
        db_bindf(db, st, e, "i", r->id))
        return -1;
    if (json) {
        jw_key(w, "errors");
        jw_int(w, r->n_errors);
        jw_key(w, "first_errors");
        jw_arr(w);
    } else {
        buf_printf(out, "errors: %lld%s\n", (long long)r->n_errors,
                   r->n_errors > 10 ? " (the first 10)" : "");
    }
    int rc;
    while ((rc = db_step(db, st, e)) == 1) {
        const char *src = or_dash(col_text(st, 0)), *mem = col_text(st, 1),
                   *why = or_dash(col_text(st, 2));
        if (json) {
            jw_obj(w);
            jw_key(w, "source");
            jw_str(w, src);
            jw_key(w, "member");
            mem ? jw_str(w, mem) : jw_null(w);
            jw_key(w, "reason");
            jw_str(w, why);
            jw_obj_end(w);
        } else {
            buf_printf(out, "  %s%s%s: %s\n", src, mem ? ":" : "", mem ? mem : "", why);
        }
    }
    sqlite3_finalize(st);
    if (json)
        jw_arr_end(w);
    return rc < 0 ? -1 : 0;
}

/* The models the run wrote, and every evaluation that scored one of them
 * (or, for an eval run, what it scored). */
static int show_outputs(Db *db, const RunRow *r, Buf *out, JsonW *w, int json, FvErr *e)
{
    sqlite3_stmt *st;
    if (db_prepare(db, &st,
                   "SELECT id, path, sha256, preset, loss, step FROM models WHERE run_id = ?"
                   " ORDER BY id",
                   e) ||
        db_bindf(db, st, e, "i", r->id))
        return -1;
    if (json) {
        jw_key(w, "models");
        jw_arr(w);
    }
    int rc, n = 0;
    while ((rc = db_step(db, st, e)) == 1) {
        if (json) {
            jw_obj(w);
            jw_key(w, "id");
            jw_int(w, sqlite3_column_int64(st, 0));
            jw_key(w, "path");
            jw_str(w, or_dash(col_text(st, 1)));
            jw_key(w, "sha256");
            jw_str(w, or_dash(col_text(st, 2)));
            jw_key(w, "preset");
            jw_str(w, or_dash(col_text(st, 3)));
            jw_key(w, "loss");
            jw_str(w, or_dash(col_text(st, 4)));
            jw_key(w, "step");
            jw_int(w, sqlite3_column_int64(st, 5));
            jw_obj_end(w);
        } else {
            buf_printf(out, "%s  model %lld: %s (%s, loss %s, step %lld, sha256 %.12s)\n",
                       n ? "" : "models:\n", (long long)sqlite3_column_int64(st, 0),
                       or_dash(col_text(st, 1)), or_dash(col_text(st, 3)),
                       or_dash(col_text(st, 4)), (long long)sqlite3_column_int64(st, 5),
                       or_dash(col_text(st, 2)));
        }
        n++;
    }
    sqlite3_finalize(st);
    if (rc < 0)
        return -1;
    if (json)
        jw_arr_end(w);

    /* Evaluations: this run's own rows, then those of other runs that scored
     * this run's models. */
    if (db_prepare(db, &st,
                   "SELECT DISTINCT run_id FROM eval_results WHERE run_id = ?1"
                   " OR model_id IN (SELECT id FROM models WHERE run_id = ?1) ORDER BY run_id",
                   e) ||
        db_bindf(db, st, e, "i", r->id))
        return -1;
    if (json) {
        jw_key(w, "evaluations");
        jw_arr(w);
    }
    int ne = 0;
    while ((rc = db_step(db, st, e)) == 1) {
        int64_t eid = sqlite3_column_int64(st, 0);
        EvalSum *s;
        int ns;
        if (eval_sums(db, eid, &s, &ns, e)) {
            rc = -1;
            break;
        }
        for (int i = 0; i < ns; i++, ne++) {
            if (json) {
                jw_obj(w);
                jw_key(w, "run");
                jw_int(w, eid);
                jw_key(w, "model_id");
                s[i].model_id ? jw_int(w, s[i].model_id) : jw_null(w);
                jw_key(w, "method");
                jw_str(w, s[i].method);
                jw_key(w, "style");
                jw_str(w, s[i].style);
                jw_key(w, "split");
                jw_str(w, s[i].split);
                jw_key(w, "label_source");
                jw_str(w, s[i].label_source);
                jw_key(w, "tasks");
                jw_int(w, s[i].tasks);
                jw_key(w, "scored");
                jw_int(w, s[i].scored);
                jw_key(w, "mean_auc");
                jw_num(w, s[i].mean_auc);
                jw_obj_end(w);
            } else {
                buf_printf(out, "%s  run %lld: %s, %s prompts, %s split, labels %s: mean AUC %.3f over %d of %d tasks\n",
                           ne ? "" : "evaluations:\n", (long long)eid, s[i].method, s[i].style,
                           s[i].split, s[i].label_source, s[i].mean_auc, s[i].scored,
                           s[i].tasks);
            }
        }
        free(s);
    }
    sqlite3_finalize(st);
    if (json)
        jw_arr_end(w);
    return rc < 0 ? -1 : 0;
}

static int runs_show(Db *db, int64_t id, int json)
{
    FvErr e = {0};
    RunRow r;
    if (runrow_get(db, id, &r, &e))
        return cli_fail(&e);
    Pairs cfg = {0}, cnt = {0};
    Buf out = {0}, cmdline = {0};
    JsonW w;
    jw_init(&w, &out, 1);
    int rc = run_pairs(db, id, "config", &cfg, &e) || run_pairs(db, id, "counts", &cnt, &e);
    args_line(db, r.args, &cmdline);
    double secs = iso_seconds(r.started, r.ended);
    if (!rc && json) {
        jw_obj(&w);
        jw_key(&w, "id");
        jw_int(&w, r.id);
        jw_key(&w, "stage");
        jw_str(&w, r.stage);
        jw_key(&w, "status");
        jw_str(&w, r.status);
        jw_key(&w, "args");
        r.args ? jw_raw(&w, r.args) : jw_null(&w);
        jw_key(&w, "version");
        jw_str(&w, or_dash(r.version));
        jw_key(&w, "revision");
        r.revision ? jw_str(&w, r.revision) : jw_null(&w);
        jw_key(&w, "host");
        r.host ? jw_str(&w, r.host) : jw_null(&w);
        jw_key(&w, "corpus_fingerprint");
        r.fingerprint ? jw_str(&w, r.fingerprint) : jw_null(&w);
        jw_key(&w, "seed");
        r.has_seed ? jw_int(&w, r.seed) : jw_null(&w);
        jw_key(&w, "started_at");
        r.started ? jw_str(&w, r.started) : jw_null(&w);
        jw_key(&w, "ended_at");
        r.ended ? jw_str(&w, r.ended) : jw_null(&w);
        jw_key(&w, "seconds");
        secs >= 0 ? jw_num(&w, secs) : jw_null(&w);
        jw_key(&w, "pid");
        jw_int(&w, r.pid);
        json_pairs(&w, "config", &cfg);
        json_pairs(&w, "counts", &cnt);
    } else if (!rc) {
        char dur[32];
        format_duration(secs, dur, sizeof dur);
        buf_printf(&out, "run %lld: %s, %s\n", (long long)r.id, r.stage, r.status);
        buf_printf(&out, "started    %s, ended %s (%s)\n", or_dash(r.started), or_dash(r.ended),
                   dur);
        buf_printf(&out, "command    %s\n", cmdline.data ? cmdline.data : "-");
        buf_printf(&out, "fvlm       %s, revision %s, host %s, pid %lld\n", or_dash(r.version),
                   or_dash(r.revision), or_dash(r.host), (long long)r.pid);
        if (r.has_seed)
            buf_printf(&out, "seed       %lld\n", (long long)r.seed);
        buf_printf(&out, "corpus     fingerprint %s (at the start)\n", or_dash(r.fingerprint));
        text_pairs(&out, "config", &cfg);
        text_pairs(&out, "counts", &cnt);
    }
    if (!rc)
        rc = show_errors(db, &r, &out, &w, json, &e) || show_metrics(db, id, &out, &w, json, &e) ||
             show_outputs(db, &r, &out, &w, json, &e);
    if (!rc && json) {
        jw_obj_end(&w);
        buf_putc(&out, '\n');
    }
    pairs_free(&cfg);
    pairs_free(&cnt);
    buf_free(&cmdline);
    runrow_free(&r);
    if (rc) {
        buf_free(&out);
        return cli_fail(&e);
    }
    return cli_write(&out);
}

/* ------------------------------------------------------------------ diff */

/* Keys of a and b merged in order: one line per key whose value differs
 * (or that only one has). Returns how many differ. */
static int diff_pairs(const char *title, const Pairs *a, const Pairs *b, Buf *out, JsonW *w,
                      int json)
{
    int i = 0, j = 0, n = 0;
    if (json) {
        jw_key(w, title);
        jw_arr(w);
    }
    while (i < a->n || j < b->n) {
        int c = i >= a->n ? 1 : j >= b->n ? -1 : strcmp(a->p[i].key, b->p[j].key);
        const char *key = c <= 0 ? a->p[i].key : b->p[j].key;
        const char *va = c <= 0 ? a->p[i].val : NULL, *vb = c >= 0 ? b->p[j].val : NULL;
        if (c < 0)
            i++;
        else if (c > 0)
            j++;
        else {
            i++;
            j++;
        }
        if (va && vb && !strcmp(va, vb))
            continue;
        if (json) {
            jw_obj(w);
            jw_key(w, "key");
            jw_str(w, key);
            jw_key(w, "a");
            va ? jw_str(w, va) : jw_null(w);
            jw_key(w, "b");
            vb ? jw_str(w, vb) : jw_null(w);
            jw_obj_end(w);
        } else {
            if (n == 0)
                buf_printf(out, "%s:\n", title);
            buf_printf(out, "  %-32s %s -> %s\n", key, va ? va : "(unset)", vb ? vb : "(unset)");
        }
        n++;
    }
    if (json)
        jw_arr_end(w);
    else if (n == 0)
        buf_printf(out, "%s: %s\n", title, a->n ? "the same" : "- (neither run has any)");
    return n;
}

/* The last value of every metric, as pairs (for diff_pairs). */
static int final_metrics(Db *db, int64_t id, Pairs *p, FvErr *e)
{
    sqlite3_stmt *st;
    if (db_prepare(db, &st,
                   "SELECT m.name, printf('%.6g', m.value) FROM metrics m WHERE m.run_id = ?1"
                   " AND m.step = (SELECT max(step) FROM metrics x WHERE x.run_id = ?1"
                   " AND x.name = m.name) ORDER BY m.name",
                   e) ||
        db_bindf(db, st, e, "i", id))
        return -1;
    int rc;
    while ((rc = db_step(db, st, e)) == 1)
        if (pairs_add(p, or_dash(col_text(st, 0)), col_text(st, 1), e)) {
            rc = -1;
            break;
        }
    sqlite3_finalize(st);
    return rc < 0 ? -1 : 0;
}

/* The evaluation a run is judged by: its own (an eval or probe run), else
 * the newest evaluation of a model it wrote (a train run). */
#define NEWEST_EVAL                                                                  \
    "(SELECT max(run_id) FROM eval_results WHERE run_id = ?1"                        \
    " OR model_id IN (SELECT id FROM models WHERE run_id = ?1))"

/* Mean AUC per (method, style, split) and per task of the evaluation the
 * run is judged by, as pairs: the keys "<method>/<style>/<split>" and
 * "<task> <method>/<style>". */
static int eval_pairs(Db *db, int64_t id, Pairs *mean, Pairs *tasks, FvErr *e)
{
    sqlite3_stmt *st;
    if (db_prepare(db, &st,
                   "SELECT method || '/' || style || '/' || split, printf('%.3f', avg(auc)),"
                   " count(auc) FROM eval_results WHERE run_id = " NEWEST_EVAL
                   " AND auc IS NOT NULL GROUP BY 1 ORDER BY 1",
                   e) ||
        db_bindf(db, st, e, "i", id))
        return -1;
    int rc;
    while ((rc = db_step(db, st, e)) == 1) {
        char v[64];
        snprintf(v, sizeof v, "%s (%d tasks)", or_dash(col_text(st, 1)), sqlite3_column_int(st, 2));
        if (pairs_add(mean, or_dash(col_text(st, 0)), v, e)) {
            rc = -1;
            break;
        }
    }
    sqlite3_finalize(st);
    if (rc < 0)
        return -1;
    if (db_prepare(db, &st,
                   "SELECT task || ' ' || method || '/' || style, printf('%.3f', auc)"
                   " FROM eval_results WHERE run_id = " NEWEST_EVAL " AND auc IS NOT NULL"
                   " ORDER BY 1",
                   e) ||
        db_bindf(db, st, e, "i", id))
        return -1;
    while ((rc = db_step(db, st, e)) == 1)
        if (pairs_add(tasks, or_dash(col_text(st, 0)), col_text(st, 1), e)) {
            rc = -1;
            break;
        }
    sqlite3_finalize(st);
    return rc < 0 ? -1 : 0;
}

/* The per-task AUC changes, largest first, at most `max` lines. */
static void diff_tasks(const Pairs *a, const Pairs *b, Buf *out, JsonW *w, int json, int max)
{
    typedef struct {
        const char *key;
        double a, b;
    } Move;
    Move *mv = calloc((size_t)(a->n > 0 ? a->n : 1), sizeof *mv);
    int n = 0;
    for (int i = 0, j = 0; mv && i < a->n && j < b->n;) {
        int c = strcmp(a->p[i].key, b->p[j].key);
        if (c < 0)
            i++;
        else if (c > 0)
            j++;
        else {
            mv[n].key = a->p[i].key;
            mv[n].a = atof(a->p[i].val);
            mv[n].b = atof(b->p[j].val);
            n++;
            i++;
            j++;
        }
    }
    /* selection of the largest |b - a|, in place */
    for (int i = 0; i < n && i < max; i++) {
        int best = i;
        for (int k = i + 1; k < n; k++)
            if (fabs(mv[k].b - mv[k].a) > fabs(mv[best].b - mv[best].a))
                best = k;
        Move t = mv[i];
        mv[i] = mv[best];
        mv[best] = t;
    }
    if (json) {
        jw_key(w, "auc_moves");
        jw_arr(w);
    }
    int shown = 0;
    for (int i = 0; i < n && i < max; i++) {
        if (mv[i].a == mv[i].b)
            break;
        if (json) {
            jw_obj(w);
            jw_key(w, "task");
            jw_str(w, mv[i].key);
            jw_key(w, "a");
            jw_num(w, mv[i].a);
            jw_key(w, "b");
            jw_num(w, mv[i].b);
            jw_obj_end(w);
        } else {
            buf_printf(out, "%s  %-40s %.3f -> %.3f (%+.3f)\n",
                       shown ? "" : "tasks that moved most:\n", mv[i].key, mv[i].a, mv[i].b,
                       mv[i].b - mv[i].a);
        }
        shown++;
    }
    if (json)
        jw_arr_end(w);
    free(mv);
}

static int runs_diff(Db *db, int64_t ida, int64_t idb, int json)
{
    FvErr e = {0};
    RunRow a, b;
    if (runrow_get(db, ida, &a, &e))
        return cli_fail(&e);
    if (runrow_get(db, idb, &b, &e)) {
        runrow_free(&a);
        return cli_fail(&e);
    }
    Pairs ca = {0}, cb = {0}, na = {0}, nb = {0}, ma = {0}, mb = {0}, ea = {0}, eb = {0},
          ta = {0}, tb = {0}, ha = {0}, hb = {0};
    int rc = run_pairs(db, ida, "config", &ca, &e) || run_pairs(db, idb, "config", &cb, &e) ||
             run_pairs(db, ida, "counts", &na, &e) || run_pairs(db, idb, "counts", &nb, &e) ||
             final_metrics(db, ida, &ma, &e) || final_metrics(db, idb, &mb, &e) ||
             eval_pairs(db, ida, &ea, &ta, &e) || eval_pairs(db, idb, &eb, &tb, &e);
    /* The run's own facts, compared like config keys. */
    char sa[32], sb[32];
    snprintf(sa, sizeof sa, "%lld", (long long)a.seed);
    snprintf(sb, sizeof sb, "%lld", (long long)b.seed);
    Buf la = {0}, lb = {0};
    args_line(db, a.args, &la);
    args_line(db, b.args, &lb);
    rc = rc || pairs_add(&ha, "command", la.data ? la.data : "-", &e) ||
         pairs_add(&ha, "corpus_fingerprint", or_dash(a.fingerprint), &e) ||
         pairs_add(&ha, "revision", or_dash(a.revision), &e) ||
         pairs_add(&ha, "seed", a.has_seed ? sa : "-", &e) || pairs_add(&ha, "stage", a.stage, &e) ||
         pairs_add(&ha, "status", a.status, &e) || pairs_add(&ha, "version", or_dash(a.version), &e);
    rc = rc || pairs_add(&hb, "command", lb.data ? lb.data : "-", &e) ||
         pairs_add(&hb, "corpus_fingerprint", or_dash(b.fingerprint), &e) ||
         pairs_add(&hb, "revision", or_dash(b.revision), &e) ||
         pairs_add(&hb, "seed", b.has_seed ? sb : "-", &e) || pairs_add(&hb, "stage", b.stage, &e) ||
         pairs_add(&hb, "status", b.status, &e) || pairs_add(&hb, "version", or_dash(b.version), &e);
    buf_free(&la);
    buf_free(&lb);
    Buf out = {0};
    if (!rc) {
        JsonW w;
        jw_init(&w, &out, 1);
        if (json) {
            jw_obj(&w);
            jw_key(&w, "a");
            jw_int(&w, ida);
            jw_key(&w, "b");
            jw_int(&w, idb);
        } else {
            buf_printf(&out, "run %lld (%s, %s) -> run %lld (%s, %s)\n", (long long)ida, a.stage,
                       a.status, (long long)idb, b.stage, b.status);
        }
        diff_pairs("run", &ha, &hb, &out, &w, json);
        diff_pairs("config", &ca, &cb, &out, &w, json);
        diff_pairs("counts", &na, &nb, &out, &w, json);
        diff_pairs("final metrics", &ma, &mb, &out, &w, json);
        diff_pairs("mean AUC", &ea, &eb, &out, &w, json);
        diff_tasks(&ta, &tb, &out, &w, json, 10);
        if (json) {
            jw_obj_end(&w);
            buf_putc(&out, '\n');
        }
    }
    Pairs *all[] = {&ca, &cb, &na, &nb, &ma, &mb, &ea, &eb, &ta, &tb, &ha, &hb};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        pairs_free(all[i]);
    runrow_free(&a);
    runrow_free(&b);
    if (rc) {
        buf_free(&out);
        return cli_fail(&e);
    }
    return cli_write(&out);
}

/* ------------------------------------------------------------------ main */

static int parse_id(const char *s, int64_t *id)
{
    long long v;
    if (cli_parse_i64(s, 1, INT64_MAX, &v))
        return cli_usage("runs", "'%s' is not a run id (a positive number)", s);
    *id = v;
    return 0;
}

int cmd_runs(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, 0, OPT_DB},
        {"json", no_argument, 0, OPT_JSON},
        {"help", no_argument, 0, OPT_HELP},
        {"stage", required_argument, 0, OPT_STAGE},
        {"status", required_argument, 0, OPT_STATUS},
        {"limit", required_argument, 0, OPT_LIMIT},
        {0, 0, 0, 0},
    };
    CliCommon cc;
    cli_common_init(&cc);
    const char *stage = NULL, *status = NULL;
    long long limit = 50;
    int opt, code;
    while ((opt = cli_next_opt(&cc, argc, argv, opts, "runs", help, &code)) != CLI_DONE) {
        if (opt == CLI_EXIT)
            return code;
        switch (opt) {
        case OPT_STAGE: stage = optarg; break;
        case OPT_STATUS:
            if (strcmp(optarg, "running") && strcmp(optarg, "ok") && strcmp(optarg, "failed") &&
                strcmp(optarg, "interrupted"))
                return cli_usage("runs", "--status is running, ok, failed or interrupted, not '%s'",
                                 optarg);
            status = optarg;
            break;
        case OPT_LIMIT:
            if (cli_parse_i64(optarg, 0, 1000000000, &limit))
                return cli_usage("runs", "--limit wants a number >= 0, not '%s'", optarg);
            break;
        }
    }
    const char *sub = optind < argc ? argv[optind] : NULL;
    int64_t ida = 0, idb = 0;
    if (sub && !strcmp(sub, "show")) {
        if (argc - optind != 2)
            return cli_usage("runs", "show wants one run id");
        if ((code = parse_id(argv[optind + 1], &ida)))
            return code;
    } else if (sub && !strcmp(sub, "diff")) {
        if (argc - optind != 3)
            return cli_usage("runs", "diff wants two run ids");
        if ((code = parse_id(argv[optind + 1], &ida)) || (code = parse_id(argv[optind + 2], &idb)))
            return code;
    } else if (sub) {
        return cli_usage("runs", "'%s' is not a subcommand of runs (show, diff)", sub);
    }
    if ((stage || status || limit != 50) && sub)
        return cli_usage("runs", "--stage, --status and --limit filter the list, not %s", sub);
    FvErr e = {0};
    Db *db;
    if (db_open(&db, cc.db, DB_READONLY | DB_MUST_EXIST, &e))
        return cli_fail(&e);
    int rc = !sub                   ? runs_list(db, stage, status, limit, cc.json)
             : !strcmp(sub, "show") ? runs_show(db, ida, cc.json)
                                    : runs_diff(db, ida, idb, cc.json);
    db_close(&db);
    return rc;
}
