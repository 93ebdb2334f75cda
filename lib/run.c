#include "run.h"

#include <signal.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "deid.h"
#include "fvlm_config.h"
#include "json.h"
#include "log.h"

/* Marks runs whose process no longer exists as interrupted. A pid that was
 * reused by another process keeps its run 'running'; that is harmless. */
static int sweep_dead_runs(Db *db, FvErr *e)
{
    sqlite3_stmt *st;
    if (db_prepare(db, &st, "SELECT id, pid FROM runs WHERE status = 'running'", e))
        return -1;
    int64_t dead[256];
    int ndead = 0, rc;
    while ((rc = db_step(db, st, e)) == 1 && ndead < 256) {
        int64_t pid = sqlite3_column_int64(st, 1);
        if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno == ESRCH))
            dead[ndead++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (rc < 0)
        return -1;
    for (int i = 0; i < ndead; i++) {
        if (db_run(db, e, "UPDATE runs SET status = 'interrupted' WHERE id = ?", "i", dead[i]))
            return -1;
    }
    return 0;
}

/* One argument as recorded: a path (an existing file, anything with a '/',
 * or a positional argument) de-identified by deid_path; options and their
 * plain values as given. */
static int arg_clean(const char *key, const char *prev, const char *a, Buf *out, FvErr *e)
{
    struct stat st;
    if (a[0] == '-') {
        const char *eq = strchr(a, '=');
        if (!eq || (!strchr(eq + 1, '/') && stat(eq + 1, &st) != 0))
            return buf_puts(out, a);
        buf_append(out, a, (size_t)(eq + 1 - a));
        return deid_path(key, eq + 1, out, e);
    }
    int option_value = prev && prev[0] == '-' && prev[1] && !strchr(prev, '=');
    if (option_value && !strchr(a, '/') && stat(a, &st) != 0)
        return buf_puts(out, a);
    return deid_path(key, a, out, e);
}

int run_begin(Run *run, Db *db, const char *stage, int argc, char **argv,
              const char *config_json, int64_t seed, FvErr *e)
{
    return run_begin_deid(run, db, stage, argc, argv, config_json, seed,
                          getenv("FVLM_DEID_KEY"), e);
}

int run_begin_deid(Run *run, Db *db, const char *stage, int argc, char **argv,
                   const char *config_json, int64_t seed, const char *key, FvErr *e)
{
    memset(run, 0, sizeof *run);
    run->db = db;
    snprintf(run->stage, sizeof run->stage, "%s", stage);
    if (key && !*key)
        key = NULL;
    if (sweep_dead_runs(db, e))
        return -1;
    Buf args = {0}, one = {0};
    JsonW w;
    jw_init(&w, &args, 0);
    jw_arr(&w);
    for (int i = 0; i < argc; i++) {
        buf_reset(&one);
        if (i == 0 ? buf_puts(&one, argv[i])
                   : arg_clean(key, argv[i - 1], argv[i], &one, e)) {
            buf_free(&one);
            buf_free(&args);
            return -1;
        }
        jw_str(&w, one.data ? one.data : "");
    }
    jw_arr_end(&w);
    buf_free(&one);
    if (args.failed) {
        buf_free(&args);
        return err_set(e, FV_ENOMEM, "recording run: out of memory");
    }
    char now[32];
    db_now_iso(now, sizeof now);
    int rc = db_run(db, e,
                    "INSERT INTO runs (stage, args, config, version, seed, started_at, status, pid)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'running', ?)",
                    "ssssssi", stage, args.data, config_json, FVLM_VERSION,
                    (const char *)NULL, now, (int64_t)getpid());
    buf_free(&args);
    if (rc)
        return -1;
    run->id = db_last_id(db);
    if (seed >= 0 &&
        db_run(db, e, "UPDATE runs SET seed = ? WHERE id = ?", "ii", seed, run->id))
        return -1;
    return 0;
}

int run_args_deid(const char *key, const char *args_json, Buf *out, FvErr *e)
{
    JsonValue *v = NULL;
    if (json_parse(args_json, strlen(args_json), &v, e))
        return -1;
    if (v->type != JSON_ARR) {
        json_free(&v);
        return err_set(e, FV_EFORMAT, "runs.args is not a JSON array");
    }
    Buf one = {0};
    JsonW w;
    jw_init(&w, out, 0);
    jw_arr(&w);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < v->len; i++) {
        const JsonValue *a = &v->items[i];
        if (a->type != JSON_STR) {
            rc = err_set(e, FV_EFORMAT, "runs.args holds a value that is not a string");
            break;
        }
        const JsonValue *p = i > 0 && v->items[i - 1].type == JSON_STR ? &v->items[i - 1] : NULL;
        buf_reset(&one);
        rc = i == 0 ? buf_puts(&one, a->str) : arg_clean(key, p ? p->str : NULL, a->str, &one, e);
        if (rc == 0)
            jw_str(&w, one.data ? one.data : "");
    }
    jw_arr_end(&w);
    buf_free(&one);
    json_free(&v);
    if (rc == 0 && out->failed)
        rc = err_set(e, FV_ENOMEM, "out of memory");
    return rc ? -1 : 0;
}

int run_error(Run *run, const char *source, const char *member, const char *reason, FvErr *e)
{
    if (member && *member)
        log_error("%s:%s: %s", source, member, reason);
    else
        log_error("%s: %s", source, reason);
    run->n_errors++;
    if (!run->db)
        return 0;
    char now[32];
    db_now_iso(now, sizeof now);
    if (db_run(run->db, e,
               "INSERT INTO errors (run_id, source, member, reason, created_at) VALUES (?,?,?,?,?)",
               "issss", run->id, source, member, reason, now))
        return -1;
    return db_run(run->db, e, "UPDATE runs SET n_errors = ? WHERE id = ?", "ii", run->n_errors,
                  run->id);
}

int run_finish(Run *run, const char *status, const char *counts_json, FvErr *e)
{
    if (!run->db)
        return 0;
    char now[32];
    db_now_iso(now, sizeof now);
    return db_run(run->db, e,
                  "UPDATE runs SET ended_at = ?, status = ?, counts = ?, n_errors = ? WHERE id = ?",
                  "sssii", now, status, counts_json, run->n_errors, run->id);
}
