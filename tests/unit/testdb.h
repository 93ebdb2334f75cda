/* testdb.h: what the stage tests share beside test.h: one value of an SQL
 * query, a shell command's exit status and output, a folder removed.
 *
 * Header-only like test.h (static functions; a test uses what it needs).
 * A query that fails prints the statement and SQLite's message on stderr
 * and returns the "no row" value, so the CHECK that uses it fails and says
 * what it expected. */
#ifndef FVLM_TESTDB_H
#define FVLM_TESTDB_H

#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "buf.h"
#include "db.h"

/* First column of the first row as an integer; -1 when there is no row or
 * the query fails. */
static inline int64_t sql_int(Db *db, const char *sql)
{
    FvErr e = {0};
    int64_t v = -1;
    int found;
    if (db_query_int(db, &e, &v, &found, sql, "")) {
        fprintf(stderr, "query failed: %s: %s\n", sql, e.msg);
        return -1;
    }
    return found ? v : -1;
}

/* First column of the first row as text ("" when there is none), in a
 * buffer that the next call overwrites. */
static inline const char *sql_str(Db *db, const char *sql)
{
    static char out[2048];
    out[0] = '\0';
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "query failed: %s: %s\n", sql, sqlite3_errmsg(db->h));
        snprintf(out, sizeof out, "(sql error: %s)", sqlite3_errmsg(db->h));
        return out;
    }
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(out, sizeof out, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return out;
}

/* The database file at path, opened read-only for one query (a test that
 * checks what another process wrote). */
static inline sqlite3 *sql_file_open(const char *path)
{
    sqlite3 *h;
    if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", path, sqlite3_errmsg(h));
        sqlite3_close(h);
        return NULL;
    }
    return h;
}

/* sql_int on the database file at path. */
static inline int64_t sql_file_int(const char *path, const char *sql)
{
    sqlite3 *h = sql_file_open(path);
    int64_t v = -1;
    if (!h)
        return -1;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    } else {
        fprintf(stderr, "query failed: %s: %s\n", sql, sqlite3_errmsg(h));
    }
    sqlite3_close(h);
    return v;
}

/* All rows of a query on the database file at path, appended to out as text:
 * one row a line, cells separated by '|', NULL as "NULL". */
static inline void sql_file_rows(const char *path, const char *sql, Buf *out)
{
    sqlite3 *h = sql_file_open(path);
    if (!h)
        return;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            for (int i = 0; i < sqlite3_column_count(st); i++) {
                const unsigned char *t = sqlite3_column_text(st, i);
                buf_printf(out, "%s%s", i ? "|" : "", t ? (const char *)t : "NULL");
            }
            buf_putc(out, '\n');
        }
        sqlite3_finalize(st);
    } else {
        fprintf(stderr, "query failed: %s: %s\n", sql, sqlite3_errmsg(h));
    }
    sqlite3_close(h);
}

/* The exit status of a shell command's wait status: its exit code, 128 +
 * the signal that killed it, or -1 when it could not run. */
static inline int test_exit_status(int st)
{
    if (st == -1)
        return -1;
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs a shell command (printf format); returns test_exit_status. */
static inline int test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int test_sh(const char *fmt, ...)
{
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof cmd) {
        fprintf(stderr, "test_sh: command longer than %zu bytes\n", sizeof cmd);
        return -1;
    }
    return test_exit_status(system(cmd));
}

/* Runs a shell command (printf format) with its stdout into out (emptied
 * first); returns test_exit_status. */
static inline int test_sh_output(Buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int test_sh_output(Buf *out, const char *fmt, ...)
{
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    buf_reset(out);
    if (n < 0 || (size_t)n >= sizeof cmd) {
        fprintf(stderr, "test_sh_output: command longer than %zu bytes\n", sizeof cmd);
        return -1;
    }
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, p)) > 0)
        buf_append(out, chunk, got);
    return test_exit_status(pclose(p));
}

/* Removes a test's scratch folder or files (rm -rf; each path quoted). */
static inline void test_remove(const char *path)
{
    if (test_sh("rm -rf '%s'", path) != 0)
        fprintf(stderr, "could not remove %s\n", path);
}

/* Removes a test's database with its WAL, shared-memory and tensor files. */
static inline void test_remove_db(const char *path)
{
    if (test_sh("rm -rf '%s' '%s-wal' '%s-shm' '%s.tensors'", path, path, path, path) != 0)
        fprintf(stderr, "could not remove %s\n", path);
}

#endif
