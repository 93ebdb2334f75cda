/* db: the corpus database (SQLite).
 *
 * db_open creates or opens a corpus file with WAL journaling, a busy timeout
 * (other stages may hold the write lock for a while) and foreign keys on,
 * then brings the schema to FVLM_SCHEMA_VERSION: a new file gets
 * schemas/corpus.sql; an older one gets each schemas/migrations/NNN.sql in
 * order inside one transaction; a newer one is refused (it was written by a
 * newer fvlm, and this one would misread it).
 *
 * Every helper checks SQLite's result code and turns a failure into an FvErr
 * carrying the statement's context and SQLite's message. */
#ifndef FVLM_DB_H
#define FVLM_DB_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define FVLM_SCHEMA_VERSION 5

typedef struct Db {
    sqlite3 *h;
    char *path;
} Db;

enum { DB_READONLY = 1, DB_MUST_EXIST = 2 };

int db_open(Db **out, const char *path, int flags, FvErr *e);
void db_close(Db **db);

/* One SQL script (no parameters). */
int db_exec(Db *db, const char *sql, FvErr *e);

int db_prepare(Db *db, sqlite3_stmt **st, const char *sql, FvErr *e);
/* Binds parameters 1..n by a format: i int64_t (cast ints: (int64_t)x), d double, s text (NULL binds
 * null), n null, b blob (const void *, int64 length). Resets st first. */
int db_bindf(Db *db, sqlite3_stmt *st, FvErr *e, const char *fmt, ...);
/* Steps: returns 1 for a row, 0 when done, -1 on error. */
int db_step(Db *db, sqlite3_stmt *st, FvErr *e);
/* Prepare, bind, step to completion, finalize. */
int db_run(Db *db, FvErr *e, const char *sql, const char *fmt, ...);
/* First column of the first row as int64 (*found = 0 when no row). */
int db_query_int(Db *db, FvErr *e, int64_t *out, int *found, const char *sql,
                 const char *fmt, ...);

int db_begin(Db *db, FvErr *e);   /* BEGIN IMMEDIATE: take the write lock now */
int db_commit(Db *db, FvErr *e);
void db_rollback(Db *db);         /* never fails the caller; logs */
int64_t db_last_id(Db *db);

/* Folder that holds this database's tensor shards: "<path>.tensors". */
void db_tensor_dir(const Db *db, char *out, size_t n);

/* --- migrations (exposed for tests) --- */
typedef struct DbMigration {
    int version;       /* the version this step produces */
    const char *sql;
} DbMigration;

/* Brings an open connection from its user_version to target: a fresh file
 * (version 0, no tables) gets `schema`; otherwise the steps with
 * version in (current, target] run in order, all in one transaction. */
int db_migrate(sqlite3 *h, const char *schema, const DbMigration *steps, int nsteps,
               int target, FvErr *e);

/* UTC time as ISO 8601 "2026-11-28T12:00:00Z" into out (>= 21 bytes). */
void db_now_iso(char *out, size_t n);

#endif
