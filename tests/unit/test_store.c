/* Unit tests of lib/: db (schema, migrations, runs, errors), safetensors, file lists. */
#include <stdint.h>
#include <unistd.h>

#include "db.h"
#include "deid.h"
#include "fsutil.h"
#include "fvlm_config.h"
#include "run.h"
#include "safetensors.h"
#include "test.h"
#include "testdb.h"

static char g_dir[256];

static void path_in_tmp(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", g_dir, name);
}

static void test_db_new_file_gets_schema_and_wal(void)
{
    char p[300];
    path_in_tmp(p, sizeof p, "a.db");
    Db *db;
    FvErr e = {0};
    CHECK_OK(db_open(&db, p, 0, &e), &e);
    if (!db)
        return;
    int64_t v, n;
    CHECK_OK(db_query_int(db, &e, &v, NULL, "PRAGMA user_version", ""), &e);
    CHECK_EQ_INT(v, FVLM_SCHEMA_VERSION);
    CHECK_OK(db_query_int(db, &e, &n, NULL,
                          "SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN "
                          "('runs','errors','studies','labels','links','samples','eval_results')",
                          ""),
             &e);
    CHECK_EQ_INT(n, 7);
    sqlite3_stmt *st;
    CHECK_OK(db_prepare(db, &st, "PRAGMA journal_mode", &e), &e);
    CHECK(db_step(db, st, &e) == 1 && strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0,
          "journal mode is not WAL");
    sqlite3_finalize(st);
    db_close(&db);
    CHECK(db == NULL, "db_close did not clear the pointer");
    /* Reopening keeps the data and does not re-create the schema. */
    CHECK_OK(db_open(&db, p, DB_MUST_EXIST, &e), &e);
    db_close(&db);
}

static void test_db_refuses_newer_schema_and_foreign_files(void)
{
    char p[300];
    path_in_tmp(p, sizeof p, "newer.db");
    sqlite3 *h;
    sqlite3_open(p, &h);
    sqlite3_exec(h, "CREATE TABLE x(a); PRAGMA user_version = 99;", NULL, NULL, NULL);
    sqlite3_close(h);
    Db *db = NULL;
    FvErr e = {0};
    CHECK(db_open(&db, p, 0, &e) == -1 && db == NULL, "opened a version-99 database");
    CHECK(strstr(e.msg, "newer") && strstr(e.msg, p), "message: %s", e.msg);

    path_in_tmp(p, sizeof p, "foreign.db");
    sqlite3_open(p, &h);
    sqlite3_exec(h, "CREATE TABLE other(a);", NULL, NULL, NULL);
    sqlite3_close(h);
    CHECK(db_open(&db, p, 0, &e) == -1, "adopted a database that is not a corpus");
    CHECK(strstr(e.msg, "not an fvlm corpus") != NULL, "message: %s", e.msg);

    path_in_tmp(p, sizeof p, "missing.db");
    CHECK(db_open(&db, p, DB_MUST_EXIST, &e) == -1, "DB_MUST_EXIST created a file");
}

static void test_db_migrations_run_in_order_in_one_transaction(void)
{
    sqlite3 *h;
    FvErr e = {0};
    sqlite3_open(":memory:", &h);
    const char *v1 = "CREATE TABLE t(a INTEGER);";
    DbMigration steps[] = {
        {3, "ALTER TABLE t ADD COLUMN c TEXT; INSERT INTO t(a, b, c) VALUES (3, 'b', 'c');"},
        {2, "ALTER TABLE t ADD COLUMN b TEXT;"},
    };
    CHECK_OK(db_migrate(h, v1, steps, 2, 1, &e), &e);
    CHECK_OK(db_migrate(h, v1, steps, 2, 3, &e), &e);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(h, "SELECT a, b, c FROM t", -1, &st, NULL);
    CHECK(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 3,
          "migrated rows missing");
    sqlite3_finalize(st);
    /* A failing step leaves the database at its old version, unchanged. */
    DbMigration broken[] = {{4, "ALTER TABLE t ADD COLUMN d TEXT; THIS IS NOT SQL;"}};
    CHECK(db_migrate(h, v1, broken, 1, 4, &e) == -1, "broken migration succeeded");
    CHECK(strstr(e.msg, "version 4") != NULL, "message: %s", e.msg);
    sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL);
    sqlite3_step(st);
    CHECK_EQ_INT(sqlite3_column_int(st, 0), 3);
    sqlite3_finalize(st);
    CHECK(sqlite3_prepare_v2(h, "SELECT d FROM t", -1, &st, NULL) != SQLITE_OK,
          "column of the failed migration exists");
    sqlite3_finalize(st);
    /* A missing step is an error, not a skip. */
    CHECK(db_migrate(h, v1, steps, 2, 5, &e) == -1, "gap in migrations accepted");
    sqlite3_close(h);
}

/* Every column, default and index of a table, as one string per table, in
 * an order that does not depend on how the table was made. */
static void schema_shape(sqlite3 *h, Buf *out)
{
    sqlite3_stmt *t;
    sqlite3_prepare_v2(h, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name", -1,
                       &t, NULL);
    while (sqlite3_step(t) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(t, 0);
        char sql[300];
        snprintf(sql, sizeof sql,
                 "SELECT name, type, \"notnull\", coalesce(dflt_value, ''), pk FROM pragma_table_info('%s')",
                 name);
        sqlite3_stmt *c;
        sqlite3_prepare_v2(h, sql, -1, &c, NULL);
        buf_printf(out, "%s:", name);
        while (sqlite3_step(c) == SQLITE_ROW)
            buf_printf(out, " %s %s %d '%s' %d,", sqlite3_column_text(c, 0),
                       sqlite3_column_text(c, 1), sqlite3_column_int(c, 2),
                       sqlite3_column_text(c, 3), sqlite3_column_int(c, 4));
        sqlite3_finalize(c);
        buf_printf(out, "\n");
    }
    sqlite3_finalize(t);
    sqlite3_prepare_v2(h,
                       "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' "
                       "AND name NOT LIKE 'sqlite_autoindex%' ORDER BY name",
                       -1, &t, NULL);
    while (sqlite3_step(t) == SQLITE_ROW)
        buf_printf(out, "index %s on %s\n", sqlite3_column_text(t, 0), sqlite3_column_text(t, 1));
    sqlite3_finalize(t);
}

/* A corpus made by the first released schema, migrated by db_open, has the
 * shape of a new corpus: what the migrations do and what corpus.sql says
 * never drift apart. */
static void test_db_version1_corpus_migrates_to_the_current_shape(void)
{
    char fixture[400], p[300], q[300];
    snprintf(fixture, sizeof fixture, "%s/tests/unit/fixtures/corpus_v1.sql", FVLM_SOURCE_ROOT);
    char *v1 = NULL;
    size_t v1_len;
    FvErr e = {0};
    CHECK_OK(fs_read_file(fixture, 1 << 20, &v1, &v1_len, &e), &e);
    if (!v1)
        return;
    path_in_tmp(p, sizeof p, "v1.db");
    sqlite3 *h;
    sqlite3_open(p, &h);
    CHECK(sqlite3_exec(h, v1, NULL, NULL, NULL) == SQLITE_OK, "v1 schema: %s",
          sqlite3_errmsg(h));
    sqlite3_exec(h, "PRAGMA user_version = 1", NULL, NULL, NULL);
    sqlite3_close(h);
    free(v1);

    Db *db = NULL;
    CHECK_OK(db_open(&db, p, 0, &e), &e);
    path_in_tmp(q, sizeof q, "fresh.db");
    Db *fresh = NULL;
    CHECK_OK(db_open(&fresh, q, 0, &e), &e);
    if (!db || !fresh) {
        db_close(&db);
        db_close(&fresh);
        return;
    }
    Buf a = {0}, b = {0};
    schema_shape(db->h, &a);
    schema_shape(fresh->h, &b);
    CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0,
          "migrated schema differs from corpus.sql:\n--- migrated\n%s--- new\n%s", a.data, b.data);
    buf_free(&a);
    buf_free(&b);
    db_close(&db);
    db_close(&fresh);
}

static void test_runs_record_errors_and_finish(void)
{
    char p[300];
    path_in_tmp(p, sizeof p, "runs.db");
    Db *db;
    FvErr e = {0};
    CHECK_OK(db_open(&db, p, 0, &e), &e);
    char *argv[] = {"fvlm", "ingest", "x.tar"};
    Run run;
    CHECK_OK(run_begin(&run, db, "ingest", 3, argv, "{\"a\":\"1\"}", 5, &e), &e);
    CHECK_OK(run_error(&run, "x.tar", "s1/ct.nii", "bad header", &e), &e);
    CHECK_OK(run_finish(&run, "ok", "{\"studies\":3}", &e), &e);
    int64_t n;
    CHECK_OK(db_query_int(db, &e, &n, NULL, "SELECT n_errors FROM runs WHERE id = ?", "i",
                          run.id),
             &e);
    CHECK_EQ_INT(n, 1);
    CHECK_OK(db_query_int(db, &e, &n, NULL,
                          "SELECT count(*) FROM errors WHERE run_id = ? AND member = 's1/ct.nii'",
                          "i", run.id),
             &e);
    CHECK_EQ_INT(n, 1);
    CHECK_OK(db_query_int(db, &e, &n, NULL, "SELECT seed FROM runs WHERE id = ?", "i", run.id),
             &e);
    CHECK_EQ_INT(n, 5);
    /* A run left 'running' by a process that is gone becomes 'interrupted'. */
    CHECK_OK(db_run(db, &e,
                    "INSERT INTO runs (stage, args, version, started_at, status, pid) "
                    "VALUES ('parse', '[]', 'x', 'now', 'running', 999999999)",
                    ""),
             &e);
    Run r2;
    CHECK_OK(run_begin(&r2, db, "parse", 3, argv, NULL, -1, &e), &e);
    CHECK_OK(db_query_int(db, &e, &n, NULL,
                          "SELECT count(*) FROM runs WHERE status = 'interrupted'", ""),
             &e);
    CHECK_EQ_INT(n, 1);
    db_close(&db);
}

static void test_safetensors_roundtrip_and_alignment(void)
{
    char p[300];
    path_in_tmp(p, sizeof p, "t.safetensors");
    int16_t ct[2 * 3 * 5];
    uint8_t mask[7];
    float w[4] = {1.5f, -2, 0, 3};
    double d[1] = {0.25};
    for (int i = 0; i < 30; i++)
        ct[i] = (int16_t)(i * 100 - 1000);
    for (int i = 0; i < 7; i++)
        mask[i] = (uint8_t)i;
    StWriter w8;
    st_writer_init(&w8);
    FvErr e = {0};
    int64_t s_ct[3] = {2, 3, 5}, s_m[1] = {7}, s_w[2] = {2, 2}, s_d[1] = {1};
    CHECK_OK(st_writer_add(&w8, "mask", ST_U8, 1, s_m, mask, &e), &e);
    CHECK_OK(st_writer_add(&w8, "ct", ST_I16, 3, s_ct, ct, &e), &e);
    CHECK_OK(st_writer_add(&w8, "w", ST_F32, 2, s_w, w, &e), &e);
    CHECK_OK(st_writer_add(&w8, "d", ST_F64, 1, s_d, d, &e), &e);
    CHECK_OK(st_writer_meta(&w8, "config", "{\"preset\":\"tiny\"}", &e), &e);
    CHECK_OK(st_write(&w8, p, &e), &e);
    st_writer_free(&w8);
    StFile *f;
    CHECK_OK(st_open(&f, p, &e), &e);
    if (!f)
        return;
    const StTensor *t;
    CHECK_OK(st_get_checked(f, "ct", ST_I16, 3, &t, &e), &e);
    CHECK(t && memcmp(t->data, ct, sizeof ct) == 0, "ct bytes differ");
    CHECK(t && ((uintptr_t)t->data % 2) == 0, "ct not aligned");
    CHECK_OK(st_get_checked(f, "w", ST_F32, 2, &t, &e), &e);
    CHECK(t && ((uintptr_t)t->data % 4) == 0 && ((const float *)t->data)[1] == -2.0f, "w");
    CHECK_STR(st_meta(f, "config"), "{\"preset\":\"tiny\"}");
    CHECK(st_get_checked(f, "ct", ST_F32, 3, &t, &e) == -1 && strstr(e.msg, "I16"),
          "dtype mismatch not reported: %s", e.msg);
    st_close(&f);
    char tmp[320];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", p, (long)getpid());
    CHECK(!fs_exists(tmp), "temporary file left behind");
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
}

static void test_safetensors_rejects_hostile_headers(void)
{
    char p[300];
    path_in_tmp(p, sizeof p, "bad.safetensors");
    struct {
        const char *json;
        const char *why;
    } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", "past the end"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", "size mismatch"},
        {"{\"a\":{\"dtype\":\"Q8\",\"shape\":[1],\"data_offsets\":[0,1]}}", "unknown dtype"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}}", "negative dim"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[9223372036854775807,9223372036854775807],"
         "\"data_offsets\":[0,8]}}", "overflowing shape"},
        {"[1,2]", "not an object"},
        {"{\"__metadata__\":{\"a\":\"1\",\"b\":\"2\"},\"__metadata__\":{\"c\":\"3\"}}",
         "__metadata__ twice (wrote past its arrays before)"},
        {"{\"a\":", "truncated JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        unsigned char file[512] = {0};
        size_t hl = strlen(cases[i].json);
        for (int k = 0; k < 8; k++)
            file[k] = (unsigned char)(hl >> (8 * k));
        memcpy(file + 8, cases[i].json, hl);
        write_bytes(p, file, 8 + hl + 8); /* 8 data bytes */
        StFile *f = NULL;
        FvErr e = {0};
        CHECK(st_open(&f, p, &e) == -1 && f == NULL, "accepted %s", cases[i].why);
        CHECK(strstr(e.msg, p) != NULL, "message does not name the file: %s", e.msg);
    }
    /* Header length beyond the file. */
    unsigned char file[16] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    write_bytes(p, file, sizeof file);
    StFile *f = NULL;
    FvErr e = {0};
    CHECK(st_open(&f, p, &e) == -1, "accepted a header length past the end");
}

static void test_file_list_is_recursive_sorted_and_stops_at_link_loops(void)
{
    char root[300], p[400];
    FvErr e = {0};
    path_in_tmp(root, sizeof root, "tree");
    const char *files[] = {"b.txt", "a/z.bin", "a/c/d.nii", ".hidden", "a/.git/x"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", root, files[i]);
        char dir[400];
        fs_dirname(p, dir, sizeof dir);
        CHECK_OK(fs_mkdir_p(dir, &e), &e);
        write_bytes(p, "x", 1);
    }
    char **paths;
    int n;
    CHECK_OK(fs_list_files(root, &paths, &n, &e), &e);
    const char *want[] = {"a/c/d.nii", "a/z.bin", "b.txt"};
    CHECK_EQ_INT(n, 3);
    for (int i = 0; i < n && i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", root, want[i]);
        CHECK(!strcmp(paths[i], p), "path %d is %s, expected %s", i, paths[i], p);
    }
    fs_list_free(&paths, n);
    CHECK(paths == NULL, "the list is not cleared");
    snprintf(p, sizeof p, "%s/a/loop", root);
    CHECK(symlink("..", p) == 0, "symlink %s", p);
    CHECK(fs_list_files(root, &paths, &n, &e) == -1 && e.code == FV_ELIMIT && paths == NULL &&
              n == 0,
          "a link loop: %s", e.msg);
    snprintf(p, sizeof p, "%s/missing", root);
    CHECK(fs_list_files(p, &paths, &n, &e) == -1 && strstr(e.msg, "missing"), "no folder: %s",
          e.msg);
}

/* The first key claims an empty corpus; the same key passes again; another
 * is refused naming both fingerprints; a read-only open records nothing. */
static void test_deid_fingerprint_claims_a_corpus_and_refuses_another_key(void)
{
    char fp[65];
    /* Python: hmac.new(b"secretkey1", b"fvlm key fingerprint v1", hashlib.sha256) */
    deid_fingerprint("secretkey1", fp);
    CHECK_STR(fp, "0d4fc5db48002c96893fc2a9763a1c9179f345a1c5e797a40ff148075cc15fde");
    char p[300];
    path_in_tmp(p, sizeof p, "fp.db");
    Db *db = NULL;
    FvErr e = {0};
    CHECK_OK(db_open(&db, p, 0, &e), &e);
    if (!db)
        return;
    db_close(&db);
    CHECK_OK(db_open(&db, p, DB_READONLY, &e), &e);
    if (!db)
        return;
    CHECK_OK(deid_check_corpus(db, "secretkey1", &e), &e);
    int64_t n = -1;
    CHECK_OK(db_query_int(db, &e, &n, NULL, "SELECT count(*) FROM meta", ""), &e);
    CHECK_EQ_INT(n, 0);
    db_close(&db);
    CHECK_OK(db_open(&db, p, 0, &e), &e);
    if (!db)
        return;
    CHECK_OK(deid_check_corpus(db, "secretkey1", &e), &e);
    CHECK_OK(deid_check_corpus(db, "secretkey1", &e), &e);
    CHECK(deid_check_corpus(db, "another-key-2", &e) == -1, "another key was accepted");
    CHECK(strstr(e.msg, "another de-identification key") && strstr(e.msg, "0d4fc5db4800") &&
              strstr(e.msg, "FVLM_DEID_KEY"),
          "refusal does not name the fingerprints and the fix: %s", e.msg);
    err_clear(&e);
    db_close(&db);
    /* Still refused after reopening: the fingerprint is stored. */
    CHECK_OK(db_open(&db, p, DB_READONLY, &e), &e);
    if (!db)
        return;
    CHECK(deid_check_corpus(db, "another-key-2", &e) == -1, "another key accepted read-only");
    db_close(&db);
}

/* study_ids: what a user types finds every study it names, by keyed hash
 * under each kind, trimmed and without folders or extension; a study key
 * (corpora before study_ids) still matches; only hashes are stored. */
static void test_deid_study_lookup_finds_every_study_an_identifier_names(void)
{
    const char *K = "secretkey1";
    char p[300];
    path_in_tmp(p, sizeof p, "ids.db");
    Db *db = NULL;
    FvErr e = {0};
    CHECK_OK(db_open(&db, p, 0, &e), &e);
    if (!db)
        return;
    char k1[65], k2[65], k3[65], h[65];
    CHECK_OK(deid_pseudonym(K, "study", "1.2.3", k1, &e), &e);
    CHECK_OK(deid_pseudonym(K, "study", "1.2.4", k2, &e), &e);
    CHECK_OK(deid_pseudonym(K, "study", "old-study", k3, &e), &e);
    CHECK_OK(db_run(db, &e, "INSERT INTO studies (id, study_key) VALUES (1, ?), (2, ?), (3, ?)",
                    "sss", k1, k2, k3),
             &e);
    /* Study 1: accession A100, archive CT2023 (stem); study 2 came in an
     * archive of the same name; study 3 has no study_ids rows (old). */
    CHECK_OK(deid_study_id_put(db, K, 1, DEID_ID_STUDY_UID, "1.2.3", &e), &e);
    CHECK_OK(deid_study_id_put(db, K, 1, DEID_ID_ACCESSION, " A100 ", &e), &e);
    CHECK_OK(deid_study_id_put(db, K, 1, DEID_ID_SOURCE, "CT2023", &e), &e);
    CHECK_OK(deid_study_id_put(db, K, 1, DEID_ID_SOURCE, "CT2023", &e), &e); /* idempotent */
    CHECK_OK(deid_study_id_put(db, K, 2, DEID_ID_SOURCE, "CT2023", &e), &e);
    CHECK_OK(deid_study_id_put(db, K, 2, DEID_ID_ACCESSION, "", &e), &e); /* none: no row */
    int64_t n = -1;
    CHECK_OK(db_query_int(db, &e, &n, NULL, "SELECT count(*) FROM study_ids", ""), &e);
    CHECK_EQ_INT(n, 4);
    CHECK_OK(deid_pseudonym(K, "accession", "A100", h, &e), &e);
    CHECK_OK(db_query_int(db, &e, &n, NULL,
                          "SELECT count(*) FROM study_ids WHERE kind = 'accession' AND id_hash = ?",
                          "s", h),
             &e);
    CHECK_EQ_INT(n, 1);
    DeidMatch *m = NULL;
    int nm = -1;
    CHECK_OK(deid_study_find(db, K, "A100", &m, &nm, &e), &e);
    CHECK(nm == 1 && m[0].study_id == 1 && !strcmp(m[0].matched, "accession") &&
              !strcmp(m[0].study_key, k1),
          "A100: %d matches", nm);
    free(m);
    CHECK_OK(deid_study_find(db, K, "\tdata/train/CT2023.tar.gz ", &m, &nm, &e), &e);
    CHECK(nm == 2 && m[0].study_id == 1 && m[1].study_id == 2 &&
              !strcmp(m[0].matched, "source") && !strcmp(m[1].matched, "source"),
          "an archive path names %d studies, not 1 and 2", nm);
    free(m);
    /* The study UID is both a study_uid row and the study key: one match,
     * both kinds ("study" is not mistaken for "study_uid"). */
    CHECK_OK(deid_study_find(db, K, "1.2.3", &m, &nm, &e), &e);
    CHECK(nm == 1 && !strcmp(m[0].matched, "study_uid,study"), "1.2.3: %d, %s", nm,
          nm ? m[0].matched : "");
    free(m);
    CHECK_OK(deid_study_find(db, K, "old-study", &m, &nm, &e), &e);
    CHECK(nm == 1 && m[0].study_id == 3 && !strcmp(m[0].matched, "study"), "old-study: %d", nm);
    free(m);
    CHECK_OK(deid_study_find(db, K, "a100", &m, &nm, &e), &e);
    CHECK_EQ_INT(nm, 0);
    free(m);
    CHECK_OK(deid_study_find(db, K, "   ", &m, &nm, &e), &e);
    CHECK_EQ_INT(nm, 0);
    free(m);
    /* Another key: refused, not "no such study". */
    CHECK(deid_study_find(db, "another-key-2", "A100", &m, &nm, &e) == -1 && nm == 0,
          "another key was accepted");
    err_clear(&e);
    db_close(&db);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/fvlm-test-store-%ld", (long)getpid());
    FvErr e = {0};
    if (fs_mkdir_p(g_dir, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    RUN(test_db_new_file_gets_schema_and_wal);
    RUN(test_db_refuses_newer_schema_and_foreign_files);
    RUN(test_db_migrations_run_in_order_in_one_transaction);
    RUN(test_db_version1_corpus_migrates_to_the_current_shape);
    RUN(test_runs_record_errors_and_finish);
    RUN(test_safetensors_roundtrip_and_alignment);
    RUN(test_safetensors_rejects_hostile_headers);
    RUN(test_file_list_is_recursive_sorted_and_stops_at_link_loops);
    RUN(test_deid_fingerprint_claims_a_corpus_and_refuses_another_key);
    RUN(test_deid_study_lookup_finds_every_study_an_identifier_names);
    test_remove(g_dir);
    return test_finish();
}
