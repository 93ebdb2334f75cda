#include "db.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "faultvfs.h"
#include "log.h"
#include "schemas.h"

static int sqlerr(Db *db, FvErr *e, const char *what)
{
    return err_set(e, FV_EDB, "%s: %s: %s", db->path, what, sqlite3_errmsg(db->h));
}

void db_now_iso(char *out, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int exec_raw(sqlite3 *h, const char *sql, FvErr *e, const char *what)
{
    char *msg = NULL;
    if (sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        err_set(e, FV_EDB, "%s: %s", what, msg ? msg : sqlite3_errmsg(h));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int user_version(sqlite3 *h, int *v, FvErr *e)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return err_set(e, FV_EDB, "reading schema version: %s", sqlite3_errmsg(h));
    int rc = sqlite3_step(st);
    *v = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return err_set(e, FV_EDB, "reading schema version: %s", sqlite3_errmsg(h));
    return 0;
}

static int count_tables(sqlite3 *h, int *n, FvErr *e)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h, "SELECT count(*) FROM sqlite_master WHERE type='table'", -1,
                           &st, NULL) != SQLITE_OK)
        return err_set(e, FV_EDB, "reading tables: %s", sqlite3_errmsg(h));
    int rc = sqlite3_step(st);
    *n = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : err_set(e, FV_EDB, "reading tables: %s", sqlite3_errmsg(h));
}

int db_migrate(sqlite3 *h, const char *schema, const DbMigration *steps, int nsteps,
               int target, FvErr *e)
{
    if (exec_raw(h, "BEGIN IMMEDIATE", e, "starting migration"))
        return -1;
    int cur, ntables;
    if (user_version(h, &cur, e) || count_tables(h, &ntables, e))
        goto fail;
    if (cur > target) {
        err_set(e, FV_EUNSUPPORTED,
                "schema version %d is newer than this fvlm understands (%d): use a newer fvlm",
                cur, target);
        goto fail;
    }
    if (cur == 0 && ntables > 0) {
        err_set(e, FV_EFORMAT, "not an fvlm corpus (tables present, no schema version)");
        goto fail;
    }
    if (cur == 0) {
        if (exec_raw(h, schema, e, "creating schema"))
            goto fail;
    } else {
        for (int v = cur + 1; v <= target; v++) {
            const DbMigration *m = NULL;
            for (int i = 0; i < nsteps; i++)
                if (steps[i].version == v)
                    m = &steps[i];
            if (!m) {
                err_set(e, FV_EINTERNAL, "no migration to schema version %d", v);
                goto fail;
            }
            char what[64];
            snprintf(what, sizeof what, "migrating to schema version %d", v);
            if (exec_raw(h, m->sql, e, what))
                goto fail;
        }
    }
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", target);
    if (exec_raw(h, sql, e, "setting schema version") ||
        exec_raw(h, "COMMIT", e, "committing migration"))
        goto fail;
    return 0;
fail:
    sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

/* Migrations are embedded as schemas/migrations/NNN.sql (by base name). */
static int load_migrations(DbMigration *steps, char **texts, int max, int target, FvErr *e)
{
    int n = 0;
    for (int v = 2; v <= target && n < max; v++) {
        char name[32];
        snprintf(name, sizeof name, "%03d.sql", v);
        size_t len;
        if (schema_load(name, &texts[n], &len, e))
            return -1;
        steps[n].version = v;
        steps[n].sql = texts[n];
        n++;
    }
    return n;
}

int db_open(Db **out, const char *path, int flags, FvErr *e)
{
    *out = NULL;
    Db *db = calloc(1, sizeof *db);
    if (!db || !(db->path = strdup(path))) {
        free(db);
        return err_set(e, FV_ENOMEM, "%s: out of memory", path);
    }
    if (faultvfs_install(e)) {
        free(db->path);
        free(db);
        return -1;
    }
    int oflags = (flags & DB_READONLY) ? SQLITE_OPEN_READONLY
                 : (flags & DB_MUST_EXIST) ? SQLITE_OPEN_READWRITE
                                           : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(path, &db->h, oflags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        err_set(e, FV_EDB, "%s: cannot open database: %s", path,
                db->h ? sqlite3_errmsg(db->h) : "out of memory");
        db_close(&db);
        return -1;
    }
    sqlite3_extended_result_codes(db->h, 1);
    sqlite3_busy_timeout(db->h, 30000);
    if (!(flags & DB_READONLY)) {
        if (exec_raw(db->h, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", e,
                     "setting WAL mode")) {
            err_prefix(e, "%s", path);
            db_close(&db);
            return -1;
        }
    }
    if (exec_raw(db->h, "PRAGMA foreign_keys=ON", e, "enabling foreign keys")) {
        db_close(&db);
        return -1;
    }
    int cur;
    if (user_version(db->h, &cur, e)) {
        err_prefix(e, "%s", path);
        db_close(&db);
        return -1;
    }
    if (cur > FVLM_SCHEMA_VERSION) {
        err_set(e, FV_EUNSUPPORTED,
                "%s: schema version %d is newer than this fvlm understands (%d): use a newer fvlm",
                path, cur, FVLM_SCHEMA_VERSION);
        db_close(&db);
        return -1;
    }
    if (cur < FVLM_SCHEMA_VERSION) {
        if (flags & DB_READONLY) {
            err_set(e, FV_EUSAGE, "%s: schema version %d needs migrating; open it read-write once",
                    path, cur);
            db_close(&db);
            return -1;
        }
        char *schema = NULL;
        size_t len;
        char *texts[64] = {0};
        DbMigration steps[64];
        int nsteps = 0;
        int rc = schema_load("corpus.sql", &schema, &len, e);
        if (rc == 0)
            rc = nsteps = load_migrations(steps, texts, 64, FVLM_SCHEMA_VERSION, e);
        if (rc >= 0)
            rc = db_migrate(db->h, schema, steps, nsteps, FVLM_SCHEMA_VERSION, e);
        free(schema);
        for (int i = 0; i < 64; i++)
            free(texts[i]);
        if (rc < 0) {
            err_prefix(e, "%s", path);
            db_close(&db);
            return -1;
        }
        if (cur > 0)
            log_info("%s: migrated schema from version %d to %d", path, cur,
                     FVLM_SCHEMA_VERSION);
    }
    *out = db;
    return 0;
}

void db_close(Db **pdb)
{
    if (!pdb || !*pdb)
        return;
    Db *db = *pdb;
    if (db->h && sqlite3_close(db->h) != SQLITE_OK) {
        log_warn("%s: closing with statements still open: %s", db->path,
                 sqlite3_errmsg(db->h));
        sqlite3_close_v2(db->h);
    }
    free(db->path);
    free(db);
    *pdb = NULL;
}

int db_exec(Db *db, const char *sql, FvErr *e)
{
    char *msg = NULL;
    if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        err_set(e, FV_EDB, "%s: %s", db->path, msg ? msg : sqlite3_errmsg(db->h));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

int db_prepare(Db *db, sqlite3_stmt **st, const char *sql, FvErr *e)
{
    if (sqlite3_prepare_v2(db->h, sql, -1, st, NULL) != SQLITE_OK) {
        char what[160];
        snprintf(what, sizeof what, "preparing \"%.100s\"", sql);
        return sqlerr(db, e, what);
    }
    return 0;
}

static int bind_va(Db *db, sqlite3_stmt *st, FvErr *e, const char *fmt, va_list ap)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    int idx = 1;
    for (const char *f = fmt; f && *f; f++, idx++) {
        int rc;
        switch (*f) {
        case 'i': rc = sqlite3_bind_int64(st, idx, va_arg(ap, int64_t)); break;
        case 'd': rc = sqlite3_bind_double(st, idx, va_arg(ap, double)); break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            rc = s ? sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT)
                   : sqlite3_bind_null(st, idx);
            break;
        }
        case 'n': rc = sqlite3_bind_null(st, idx); break;
        case 'b': {
            const void *p = va_arg(ap, const void *);
            int64_t n = va_arg(ap, int64_t);
            rc = sqlite3_bind_blob64(st, idx, p, (sqlite3_uint64)n, SQLITE_TRANSIENT);
            break;
        }
        default:
            return err_set(e, FV_EINTERNAL, "db_bindf: bad format character '%c'", *f);
        }
        if (rc != SQLITE_OK) {
            char what[64];
            snprintf(what, sizeof what, "binding parameter %d", idx);
            return sqlerr(db, e, what);
        }
    }
    return 0;
}

int db_bindf(Db *db, sqlite3_stmt *st, FvErr *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = bind_va(db, st, e, fmt, ap);
    va_end(ap);
    return rc;
}

int db_step(Db *db, sqlite3_stmt *st, FvErr *e)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    char what[160];
    snprintf(what, sizeof what, "running \"%.100s\"", sqlite3_sql(st));
    return sqlerr(db, e, what);
}

int db_run(Db *db, FvErr *e, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st;
    if (db_prepare(db, &st, sql, e))
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int rc = bind_va(db, st, e, fmt, ap);
    va_end(ap);
    while (rc == 0 && (rc = db_step(db, st, e)) == 1)
        rc = 0;
    sqlite3_finalize(st);
    return rc < 0 ? -1 : 0;
}

int db_query_int(Db *db, FvErr *e, int64_t *out, int *found, const char *sql,
                 const char *fmt, ...)
{
    sqlite3_stmt *st;
    *out = 0;
    if (found)
        *found = 0;
    if (db_prepare(db, &st, sql, e))
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int rc = bind_va(db, st, e, fmt, ap);
    va_end(ap);
    if (rc == 0) {
        rc = db_step(db, st, e);
        if (rc == 1) {
            *out = sqlite3_column_int64(st, 0);
            if (found)
                *found = 1;
            rc = 0;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

int db_begin(Db *db, FvErr *e) { return db_exec(db, "BEGIN IMMEDIATE", e); }
int db_commit(Db *db, FvErr *e) { return db_exec(db, "COMMIT", e); }

void db_rollback(Db *db)
{
    if (sqlite3_get_autocommit(db->h))
        return; /* no transaction open */
    char *msg = NULL;
    if (sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, &msg) != SQLITE_OK)
        log_warn("%s: rollback: %s", db->path, msg ? msg : sqlite3_errmsg(db->h));
    sqlite3_free(msg);
}

int64_t db_last_id(Db *db) { return sqlite3_last_insert_rowid(db->h); }

void db_tensor_dir(const Db *db, char *out, size_t n) { snprintf(out, n, "%s.tensors", db->path); }
