/* fvlm stats: a corpus summarised. */
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "json.h"
#include "log.h"
#include "summary.h"

static const char *help =
    "usage: fvlm stats [--db FILE] [--json]\n\n"
    "Summarises a corpus: studies by split and dataset and how many have a volume,\n"
    "a mask and a report; volume grids (min/median/max), spacings, source orientations\n"
    "and dtypes, HU range; masks (resampled); reports by language, encoding and format\n"
    "with de-identification placeholders; members by kind and status; the last ingest\n"
    "runs; the most frequent errors; tensor shards on disk. Then every stage's runs\n"
    "(the last 20: stage, status, times, errors) and the studies without a volume, a\n"
    "mask or a report, each with why: its sources' members that failed or were\n"
    "ignored, and the errors recorded for its archives.\n\n"
    "options:\n"
    "  --db FILE          corpus database (default corpus.db)\n"
    "  --json             the summary as one JSON object\n"
    "  --help             this help\n";

static void print_obj(const JsonValue *o, const char *indent)
{
    for (size_t i = 0; i < o->len; i++) {
        const JsonValue *v = &o->items[i];
        const char *k = o->keys[i];
        if (!strcmp(k, "runs") || !strcmp(k, "incomplete_studies") ||
            !strcmp(k, "incomplete_total"))
            continue; /* printed by print_runs_and_incomplete */
        if (v->type == JSON_OBJ) {
            printf("%s%s:", indent, k);
            if (v->len == 0) {
                printf(" -\n");
                continue;
            }
            int flat = 1;
            for (size_t j = 0; j < v->len; j++)
                flat &= v->items[j].type == JSON_NUM;
            if (flat) {
                for (size_t j = 0; j < v->len; j++)
                    if (v->items[j].is_int)
                        printf("%s %s %lld", j ? "," : "", v->keys[j],
                               (long long)v->items[j].i);
                    else
                        printf("%s %s %g", j ? "," : "", v->keys[j], v->items[j].num);
                printf("\n");
            } else {
                printf("\n");
                char deeper[32];
                snprintf(deeper, sizeof deeper, "%s  ", indent);
                print_obj(v, deeper);
            }
        } else if (v->type == JSON_ARR) {
            printf("%s%s:", indent, k);
            for (size_t j = 0; j < v->len; j++) {
                const JsonValue *x = &v->items[j];
                if (x->type == JSON_NUM && x->is_int)
                    printf(" %lld", (long long)x->i);
                else if (x->type == JSON_NUM)
                    printf(" %g", x->num);
                else if (x->type == JSON_OBJ)
                    printf("\n%s  run %lld %s %s errors %lld", indent,
                           (long long)json_get_int(x, "id", 0), json_get_str(x, "status", "?"),
                           json_get_str(x, "started_at", "?"),
                           (long long)json_get_int(x, "errors", 0));
            }
            printf("\n");
        } else if (v->type == JSON_NUM && v->is_int) {
            printf("%s%s: %lld\n", indent, k, (long long)v->i);
        } else if (v->type == JSON_NUM) {
            printf("%s%s: %g\n", indent, k, v->num);
        } else if (v->type == JSON_STR) {
            printf("%s%s: %s\n", indent, k, v->str);
        }
    }
}

/* ---------------------------------------------------------------------------
 * Every stage's runs and the incomplete studies, added to the summary.
 * ------------------------------------------------------------------------ */

enum { STATS_RUNS = 20, STATS_INCOMPLETE = 50, STATS_WHY = 8 };

static const char *col(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : "";
}

static int put_runs(Db *db, JsonW *w, FvErr *e)
{
    sqlite3_stmt *st;
    if (db_prepare(db, &st,
                   "SELECT id, stage, status, started_at, coalesce(ended_at, ''), n_errors "
                   "FROM runs ORDER BY id DESC LIMIT ?",
                   e))
        return -1;
    int rc = db_bindf(db, st, e, "i", (int64_t)STATS_RUNS), got = 0;
    jw_key(w, "runs");
    jw_arr(w);
    while (rc == 0 && (got = db_step(db, st, e)) == 1) {
        jw_obj(w);
        jw_key(w, "id"); jw_int(w, sqlite3_column_int64(st, 0));
        jw_key(w, "stage"); jw_str(w, col(st, 1));
        jw_key(w, "status"); jw_str(w, col(st, 2));
        jw_key(w, "started_at"); jw_str(w, col(st, 3));
        jw_key(w, "ended_at"); jw_str(w, col(st, 4));
        jw_key(w, "errors"); jw_int(w, sqlite3_column_int64(st, 5));
        jw_obj_end(w);
    }
    jw_arr_end(w);
    sqlite3_finalize(st);
    return rc || got < 0 ? -1 : 0;
}

/* Why one study lacks something: the members of its sources (the archives
 * and files it came from) of the missing kinds that failed or were ignored,
 * then the errors recorded against those sources. At most STATS_WHY lines. */
static int put_why(Db *db, JsonW *w, int64_t study, int no_volume, int no_mask, int no_report,
                   FvErr *e)
{
    sqlite3_stmt *st;
    if (db_prepare(db, &st,
                   "WITH p AS (SELECT DISTINCT path FROM sources WHERE study_id = ?1) "
                   "SELECT 'member ' || s.member || ' (' || s.kind || '): ' || s.status "
                   "FROM sources s WHERE s.path IN (SELECT path FROM p) AND s.status != 'ok' "
                   "AND (s.study_id = ?1 OR s.study_id IS NULL) "
                   "AND ((?3 AND s.kind IN ('dicom', 'nifti')) OR (?4 AND s.kind IN ('mask', "
                   "'nifti')) OR (?5 AND s.kind IN ('report', 'other', 'metadata'))) "
                   "UNION ALL "
                   "SELECT 'error ' || coalesce(r.member, '') || ': ' || r.reason "
                   "FROM errors r WHERE r.source IN (SELECT path FROM p) "
                   "LIMIT ?2",
                   e))
        return -1;
    int rc = db_bindf(db, st, e, "iiiii", study, (int64_t)STATS_WHY, (int64_t)no_volume,
                      (int64_t)no_mask, (int64_t)no_report),
        got = 0;
    jw_key(w, "why");
    jw_arr(w);
    while (rc == 0 && (got = db_step(db, st, e)) == 1)
        jw_str(w, col(st, 0));
    jw_arr_end(w);
    sqlite3_finalize(st);
    return rc || got < 0 ? -1 : 0;
}

static int put_incomplete(Db *db, JsonW *w, FvErr *e)
{
    static const char *missing_sql =
        "SELECT id, study_key, split, "
        "NOT EXISTS (SELECT 1 FROM volumes v WHERE v.study_id = s.id), "
        "NOT EXISTS (SELECT 1 FROM masks m WHERE m.study_id = s.id), "
        "NOT EXISTS (SELECT 1 FROM reports r WHERE r.study_id = s.id) "
        "FROM studies s WHERE NOT EXISTS (SELECT 1 FROM volumes v WHERE v.study_id = s.id) "
        "OR NOT EXISTS (SELECT 1 FROM masks m WHERE m.study_id = s.id) "
        "OR NOT EXISTS (SELECT 1 FROM reports r WHERE r.study_id = s.id) ORDER BY id";
    sqlite3_stmt *st;
    if (db_prepare(db, &st, missing_sql, e))
        return -1;
    int64_t n = 0;
    int got, rc = 0;
    jw_key(w, "incomplete_studies");
    jw_arr(w);
    while ((got = db_step(db, st, e)) == 1) {
        if (++n > STATS_INCOMPLETE)
            continue; /* counted, not listed */
        jw_obj(w);
        jw_key(w, "id"); jw_int(w, sqlite3_column_int64(st, 0));
        jw_key(w, "study_key"); jw_strn(w, col(st, 1), strlen(col(st, 1)) < 16 ? strlen(col(st, 1)) : 16);
        jw_key(w, "split"); jw_str(w, col(st, 2));
        jw_key(w, "missing");
        jw_arr(w);
        static const char *what[3] = {"volume", "mask", "report"};
        for (int k = 0; k < 3; k++)
            if (sqlite3_column_int(st, 3 + k))
                jw_str(w, what[k]);
        jw_arr_end(w);
        if ((rc = put_why(db, w, sqlite3_column_int64(st, 0), sqlite3_column_int(st, 3),
                          sqlite3_column_int(st, 4), sqlite3_column_int(st, 5), e)))
            break;
        jw_obj_end(w);
    }
    sqlite3_finalize(st);
    if (rc || got < 0)
        return -1;
    jw_arr_end(w);
    jw_key(w, "incomplete_total");
    jw_int(w, n);
    return 0;
}

/* Appends the runs and incomplete studies to the summary object in out
 * (which ends with its closing brace). */
static int stats_extend(Db *db, Buf *out, FvErr *e)
{
    Buf more = {0};
    JsonW w;
    jw_init(&w, &more, 1);
    jw_obj(&w);
    if (put_runs(db, &w, e) || put_incomplete(db, &w, e)) {
        buf_free(&more);
        return -1;
    }
    jw_obj_end(&w);
    size_t end = out->len;
    while (end && out->data[end - 1] != '}')
        end--;
    const char *inner = more.data ? strchr(more.data, '{') : NULL;
    const char *close = more.data ? strrchr(more.data, '}') : NULL;
    if (!end || !inner || !close || more.failed) {
        buf_free(&more);
        return err_set(e, FV_EINTERNAL, "stats: summary JSON is not an object");
    }
    out->len = end - 1; /* drop the summary's closing brace */
    buf_putc(out, ',');
    buf_append(out, inner + 1, (size_t)(close - inner - 1));
    buf_puts(out, "}\n");
    buf_free(&more);
    if (out->failed)
        return err_set(e, FV_ENOMEM, "stats: out of memory");
    return 0;
}

static void print_runs_and_incomplete(const JsonValue *v)
{
    const JsonValue *runs = json_get(v, "runs");
    printf("  runs (last %d, every stage):\n", STATS_RUNS);
    for (size_t i = 0; runs && i < runs->len; i++) {
        const JsonValue *r = &runs->items[i];
        printf("    run %lld %-7s %-11s %s .. %s, %lld errors\n", (long long)json_get_int(r, "id", 0),
               json_get_str(r, "stage", "?"), json_get_str(r, "status", "?"),
               json_get_str(r, "started_at", "?"), json_get_str(r, "ended_at", ""),
               (long long)json_get_int(r, "errors", 0));
    }
    if (!runs || !runs->len)
        printf("    none\n");
    const JsonValue *inc = json_get(v, "incomplete_studies");
    int64_t total = json_get_int(v, "incomplete_total", 0);
    printf("  incomplete studies: %lld%s\n", (long long)total,
           total > STATS_INCOMPLETE ? " (the first 50 listed)" : "");
    for (size_t i = 0; inc && i < inc->len; i++) {
        const JsonValue *s = &inc->items[i];
        const JsonValue *m = json_get(s, "missing");
        printf("    study %lld (%s..., %s) without", (long long)json_get_int(s, "id", 0),
               json_get_str(s, "study_key", "?"), json_get_str(s, "split", "?"));
        for (size_t k = 0; m && k < m->len; k++)
            printf("%s %s", k ? "," : "", m->items[k].str);
        printf("\n");
        const JsonValue *why = json_get(s, "why");
        for (size_t k = 0; why && k < why->len; k++)
            printf("      %s\n", why->items[k].str);
        if (!why || !why->len)
            printf("      no member of its sources failed or was ignored: the export holds none\n");
    }
}

int cmd_stats(int argc, char **argv)
{
    CliCommon cc;
    int code;
    cli_common_init(&cc);
    if (cli_common_only(&cc, argc, argv, CLI_WANT_DB | CLI_WANT_JSON, "stats", help, &code))
        return code;
    if (optind < argc)
        return cli_usage("stats", "unexpected argument '%s'", argv[optind]);
    FvErr e = {0};
    Db *db;
    if (db_open(&db, cc.db, DB_READONLY | DB_MUST_EXIST, &e))
        return cli_fail(&e);
    Buf out = {0};
    int rc = corpus_summary(db, &out, &e) || stats_extend(db, &out, &e);
    db_close(&db);
    if (rc) {
        buf_free(&out);
        return cli_fail(&e);
    }
    if (cc.json)
        return cli_write(&out);
    JsonValue *v;
    rc = json_parse(out.data, out.len, &v, &e);
    buf_free(&out);
    if (rc)
        return cli_fail(&e);
    printf("corpus %s\n", cc.db);
    print_obj(v, "  ");
    print_runs_and_incomplete(v);
    json_free(&v);
    return EXIT_OK;
}
