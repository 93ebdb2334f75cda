#include "run.h"

#include <signal.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
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

int run_begin(Run *run, Db *db, const char *stage, int argc, char **argv,
              const char *config_json, int64_t seed, FvErr *e)
{
    memset(run, 0, sizeof *run);
    run->db = db;
    snprintf(run->stage, sizeof run->stage, "%s", stage);
    if (sweep_dead_runs(db, e))
        return -1;
    Buf args = {0};
    JsonW w;
    jw_init(&w, &args, 0);
    jw_arr(&w);
    for (int i = 0; i < argc; i++)
        jw_str(&w, argv[i]);
    jw_arr_end(&w);
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
    /* A stage that learns from or scores against the corpus's labels and
     * texts records how many of them annotators decided (fvlm audit): its
     * figures rest on those where present. */
    return db_run(run->db, e,
                  "UPDATE runs SET ended_at = ?1, status = ?2, n_errors = ?4,"
                  " counts = CASE WHEN stage IN ('train', 'eval', 'probe') AND json_valid(?3)"
                  " AND json_type(?3) = 'object' THEN json_set(?3, '$.audited', json_object("
                  "  'studies', (SELECT count(DISTINCT study_id) FROM audits"
                  "   WHERE kind IN ('link', 'status', 'label', 'flag')),"
                  "  'labels', (SELECT count(*) FROM labels WHERE source = 'audit'),"
                  "  'statuses', (SELECT count(*) FROM anatomy_status WHERE source = 'audit'),"
                  "  'links', (SELECT count(*) FROM links WHERE source = 'audit' OR accepted IS NOT NULL)))"
                  " ELSE ?3 END WHERE id = ?5",
                  "sssii", now, status, counts_json, run->n_errors, run->id);
}
