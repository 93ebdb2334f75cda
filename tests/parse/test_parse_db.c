/* `fvlm parse` on a small corpus database: rows written, offsets that point
 * into reports.text, re-parsing that replaces rows in place, annotator labels
 * that survive, per-report warnings recorded in the run's errors, and no row
 * that points nowhere (parse writes without foreign key checks: store.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "fvlm_config.h"
#include "test.h"
#include "testdb.h"

static char dbpath[256];

static int run_parse(const char *extra)
{
    return test_sh("\"%s\" parse --quiet --db %s %s >/dev/null 2>&1", getenv("FVLM_BIN"), dbpath,
                   extra);
}

static void add_report(Db *db, int id, const char *lang, const char *text, size_t len)
{
    FvErr e = {0};
    char key[32];
    snprintf(key, sizeof key, "study%d", id);
    CHECK_OK(db_run(db, &e, "INSERT INTO studies (id, study_key) VALUES (?, ?)", "is", (int64_t)id, key),
             &e);
    CHECK_OK(db_run(db, &e,
                    "INSERT INTO reports (id, study_id, sha256, source, format, language, encoding, text)"
                    " VALUES (?, ?, 'x', 'test', 'txt', ?, 'utf-8', '')",
                    "iis", (int64_t)id, (int64_t)id, lang),
             &e);
    /* bind the text as a blob-sized string so NUL bytes survive */
    sqlite3_stmt *st;
    CHECK_OK(db_prepare(db, &st, "UPDATE reports SET text = ? WHERE id = ?", &e), &e);
    sqlite3_bind_text(st, 1, text, (int)len, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, id);
    CHECK(sqlite3_step(st) == SQLITE_DONE, "update report text: %s", sqlite3_errmsg(db->h));
    sqlite3_finalize(st);
}

int main(void)
{
    if (!getenv("FVLM_BIN")) {
        printf("SKIP: FVLM_BIN not set\n");
        return 77;
    }
    snprintf(dbpath, sizeof dbpath, "/tmp/fvlm-parse-test-%d.db", (int)getpid());
    unlink(dbpath);
    Db *db;
    FvErr e = {0};
    CHECK_OK(db_open(&db, dbpath, 0, &e), &e);
    const char *en = "Findings: No pleural effusion. A 5 mm nodule in the right upper lobe.\n\n"
                     "Impression: Pulmonary nodule.";
    const char *zh = "影像所见：双肺纹理清晰，右肺上叶见一小结节。心脏不大。\n诊断意见：右肺上叶结节。";
    const char bad[] = "Emphysema \xff is seen.\0";
    add_report(db, 1, "en", en, strlen(en));
    add_report(db, 2, "zh", zh, strlen(zh));
    add_report(db, 3, "en", "", 0);
    add_report(db, 4, "en", bad, sizeof bad - 1);
    db_close(&db);

    CHECK_EQ_INT(run_parse(""), 0);
    CHECK_OK(db_open(&db, dbpath, DB_MUST_EXIST, &e), &e);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM reports WHERE parsed_run IS NULL"), 0);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM sentences WHERE report_id = 1"), 3);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM sentences WHERE report_id = 2"), 3);
    CHECK_EQ_INT(sql_int(db, "SELECT value FROM labels WHERE study_id = 1 AND task = 'lung_nodule'"), 1);
    CHECK_EQ_INT(sql_int(db, "SELECT value FROM labels WHERE study_id = 1 AND task = 'pleural_effusion'"), 0);
    CHECK_EQ_INT(sql_int(db, "SELECT value FROM labels WHERE study_id = 2 AND task = 'lung_nodule'"), 1);
    CHECK_EQ_INT(sql_int(db, "SELECT value FROM labels WHERE study_id = 2 AND task = 'cardiomegaly'"), 0);
    CHECK_EQ_INT(sql_int(db, "SELECT value FROM labels WHERE study_id = 4 AND task = 'emphysema'"), 1);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM labels WHERE source = 'parsed' AND rule IS NULL"), 0);
    /* every stored span is the original text at its offsets */
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM sentences s JOIN reports r ON r.id = s.report_id"
                       " WHERE substr(CAST(r.text AS BLOB), s.start + 1, s.end - s.start)"
                       " != CAST(s.text AS BLOB)"), 0);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM findings f JOIN sentences s ON s.id = f.sentence_id"
                       " JOIN reports r ON r.id = s.report_id"
                       " WHERE substr(CAST(r.text AS BLOB), f.start + 1, f.end - f.start)"
                       " != CAST(f.term AS BLOB) OR f.start < s.start OR f.end > s.end"), 0);
    CHECK(sql_int(db, "SELECT count(*) FROM mentions WHERE anatomy = 'lung'") >= 2, "lung mentions missing");
    /* warnings of the empty and the damaged report are in the run's errors */
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM errors WHERE member = 'report 3' AND reason LIKE '%empty%'"), 1);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM errors WHERE member = 'report 4' AND reason LIKE '%UTF-8%'"), 1);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM runs WHERE stage = 'parse' AND status = 'ok'"), 1);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
    int64_t nsent = sql_int(db, "SELECT count(*) FROM sentences"), nfind = sql_int(db, "SELECT count(*) FROM findings");

    /* nothing left to do: a second run parses nothing */
    db_close(&db);
    CHECK_EQ_INT(run_parse(""), 0);
    CHECK_OK(db_open(&db, dbpath, DB_MUST_EXIST, &e), &e);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM sentences"), nsent);
    /* an annotator corrects a label; --all re-parses and keeps it */
    CHECK_OK(db_run(db, &e, "UPDATE labels SET value = 0, source = 'audit' WHERE study_id = 1 AND task = 'lung_nodule'", ""), &e);
    db_close(&db);
    CHECK_EQ_INT(run_parse("--all"), 0);
    CHECK_OK(db_open(&db, dbpath, DB_MUST_EXIST, &e), &e);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM sentences"), nsent);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM findings"), nfind);
    CHECK_EQ_INT(sql_int(db, "SELECT value FROM labels WHERE study_id = 1 AND task = 'lung_nodule'"), 0);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM labels WHERE study_id = 1 AND task = 'lung_nodule' AND source = 'audit'"), 1);
    CHECK_EQ_INT(sql_int(db, "SELECT value FROM labels WHERE study_id = 1 AND task = 'pleural_effusion'"), 0);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM runs WHERE stage = 'parse' AND status = 'ok'"), 3);
    CHECK_EQ_INT(sql_int(db, "SELECT count(DISTINCT parsed_run) FROM reports"), 1);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
    /* a report whose sentence links were audited is left alone */
    CHECK_OK(db_run(db, &e, "INSERT INTO links (sentence_id, anatomy, method, confidence, source)"
                            " SELECT id, 'lung', 'audit', 1.0, 'audit' FROM sentences WHERE report_id = 2 LIMIT 1", ""), &e);
    db_close(&db);
    CHECK_EQ_INT(run_parse("--report 2 --report 1"), 0);
    CHECK_OK(db_open(&db, dbpath, DB_MUST_EXIST, &e), &e);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM errors WHERE member = 'report 2' AND reason LIKE '%audited%'"), 1);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM links WHERE source = 'audit'"), 1);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM sentences"), nsent);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
    db_close(&db);
    /* usage errors */
    CHECK_EQ_INT(run_parse("--batch 0"), 2);
    CHECK(test_sh("\"%s\" parse --quiet --db /nonexistent/x.db 2>/dev/null", getenv("FVLM_BIN")) == 1,
          "a missing database does not fail with exit 1");
    test_remove_db(dbpath);
    return test_finish();
}
