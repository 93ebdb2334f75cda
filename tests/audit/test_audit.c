/* test_audit: the workbench's handlers (audit/server.c) called directly,
 * over a small synthetic corpus written by the real `fvlm` (synth, ingest,
 * parse, align): sessions, CSRF, limits, paths, decisions and their effect on
 * links, statuses, labels and training texts, undo, survival across parse
 * and align re-runs, concurrent writers, escaping, stats and export. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fvlm_config.h"
#include "accounts.h"
#include "db.h"
#include "decide.h"
#include "deid.h"
#include "fsutil.h"
#include "json.h"
#include "queue.h"
#include "server.h"
#include "stats.h"
#include "test.h"
#include "testdb.h"

static const char *KEY = "test-audit-deid-key";
static char dir[256], dbpath[300];
static char tok_alice[65], tok_bob[65], tok_lead[65];

static void sh_ok(const char *what, int rc)
{
    if (rc != 0) {
        fprintf(stderr, "test_audit: %s failed (exit %d)\n", what, rc);
        exit(1);
    }
}

/* A six-study corpus, and three users. */
static void corpus_make(void)
{
    const char *bin = getenv("FVLM_BIN");
    if (!bin) {
        fprintf(stderr, "FVLM_BIN is not set\n");
        exit(1);
    }
    snprintf(dir, sizeof dir, "/tmp/fvlm-test-audit.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(dbpath, sizeof dbpath, "%s/c.db", dir);
    setenv("FVLM_DEID_KEY", KEY, 1);
    sh_ok("synth", test_sh("'%s' synth --quiet --force --out '%s/corpus' --studies 6 --seed 3 --size tiny",
                           bin, dir));
    sh_ok("ingest", test_sh("'%s' ingest --quiet --db '%s' --set 'ingest.spacing=4, 4, 8' '%s/corpus/hospital'",
                            bin, dbpath, dir));
    sh_ok("parse", test_sh("'%s' parse --quiet --db '%s'", bin, dbpath));
    sh_ok("align", test_sh("'%s' align --quiet --db '%s' 2>/dev/null", bin, dbpath));
    Db *db = NULL;
    FvErr e = {0};
    if (db_open(&db, dbpath, DB_MUST_EXIST, &e) || acc_add(db, "alice", ACC_ANNOTATOR, tok_alice, &e) ||
        acc_add(db, "bob", ACC_ANNOTATOR, tok_bob, &e) || acc_add(db, "lea", ACC_LEAD, tok_lead, &e)) {
        fprintf(stderr, "test_audit: setup: %s\n", e.msg);
        exit(1);
    }
    db_close(&db);
}

static AuditServer *srv;

static void server_up(void)
{
    ServerOptions o = {.db_path = dbpath, .deid_key = KEY};
    FvErr e = {0};
    if (server_open(&srv, &o, 0, &e)) {
        fprintf(stderr, "test_audit: server_open: %s\n", e.msg);
        exit(1);
    }
}

static void req(const char *method, const char *path, const char *query, const char *session,
                const char *csrf, const char *body, HttpResp *rs)
{
    HttpReq rq = {method, path, query, session, csrf, body, body ? strlen(body) : 0, 0, "127.0.0.9"};
    server_handle(srv, &rq, rs);
}

typedef struct Login {
    char session[65], csrf[65];
} Login;

static int login(const char *name, const char *token, const char *client, Login *out)
{
    char body[256];
    snprintf(body, sizeof body, "{\"name\": \"%s\", \"token\": \"%s\"}", name, token);
    HttpReq rq = {"POST", "/api/login", NULL, NULL, NULL, body, strlen(body), 0, client};
    HttpResp rs;
    server_handle(srv, &rq, &rs);
    int status = rs.status;
    if (status == 200 && out) {
        const char *c = strstr(rs.set_cookie, "fvlm_session=");
        snprintf(out->session, sizeof out->session, "%.64s", c ? c + 13 : "");
        JsonValue *v = NULL;
        FvErr e = {0};
        if (json_parse(rs.body.data, rs.body.len, &v, &e) == 0)
            snprintf(out->csrf, sizeof out->csrf, "%s", json_get_str(v, "csrf", ""));
        json_free(&v);
    }
    http_resp_free(&rs);
    return status;
}

static int post(const Login *l, const char *path, const char *body, Buf *reply)
{
    HttpResp rs;
    req("POST", path, NULL, l->session, l->csrf, body, &rs);
    if (reply)
        buf_puts(reply, rs.body.data ? rs.body.data : "");
    int st = rs.status;
    http_resp_free(&rs);
    return st;
}

static int get(const Login *l, const char *path, const char *query, Buf *reply)
{
    HttpResp rs;
    req("GET", path, query, l ? l->session : NULL, NULL, NULL, &rs);
    if (reply)
        buf_append(reply, rs.body.data ? rs.body.data : "", rs.body.len);
    int st = rs.status;
    http_resp_free(&rs);
    return st;
}

static Db *db_ro(void)
{
    Db *db = NULL;
    FvErr e = {0};
    if (db_open(&db, dbpath, DB_MUST_EXIST, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        exit(1);
    }
    return db;
}

/* ------------------------------------------------------------------------ */

static void test_kappa_and_wilson_match_hand_computed_values(void)
{
    /* 10 items: 8 agree (5 accept, 3 reject), 2 disagree. po = 0.8;
     * pa(acc) = 0.6, pb(acc) = 0.6 -> pe = 0.36 + 0.16 = 0.52;
     * kappa = 0.28 / 0.48. */
    const char *a[] = {"accept", "accept", "accept", "accept", "accept", "reject", "reject", "reject",
                       "accept", "reject"};
    const char *b[] = {"accept", "accept", "accept", "accept", "accept", "reject", "reject", "reject",
                       "reject", "accept"};
    CHECK_NEAR(stats_kappa(a, b, 10), 0.28 / 0.48, 1e-12);
    CHECK(isnan(stats_kappa(a, a, 0)), "kappa of no items is not NaN");
    /* Wilson 95% of 8/10: [0.4902, 0.9433] (published tables). */
    double lo, hi;
    stats_wilson(8, 10, &lo, &hi);
    CHECK_NEAR(lo, 0.4902, 5e-4);
    CHECK_NEAR(hi, 0.9433, 5e-4);
    stats_wilson(0, 5, &lo, &hi);
    CHECK(lo == 0 && hi > 0.4 && hi < 0.45, "Wilson of 0/5 is [%g, %g]", lo, hi);
}

static void test_no_data_answers_without_a_session(void)
{
    const char *paths[] = {"/api/study/1", "/api/study/1/slice", "/api/study/1/centre", "/api/queue",
                           "/api/next", "/api/stats", "/api/export", "/api/search", "/api/ontology",
                           "/api/me"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        Buf b = {0};
        int st = get(NULL, paths[i], "q=1&plane=axial", &b);
        CHECK(st == 401, "GET %s without a session answered %d", paths[i], st);
        CHECK(!strstr(b.data ? b.data : "", "study_key"), "GET %s leaked data", paths[i]);
        buf_free(&b);
    }
    Login fake;
    memset(fake.session, 'a', 64);
    fake.session[64] = '\0';
    CHECK_EQ_INT(get(&fake, "/api/study/1", NULL, NULL), 401);
    Buf b = {0};
    CHECK_EQ_INT(get(NULL, "/", NULL, &b), 200);
    CHECK(strstr(b.data, "app.js") != NULL, "the page does not load app.js");
    buf_free(&b);
}

static void test_login_sets_an_httponly_samesite_cookie(void)
{
    char body[256];
    snprintf(body, sizeof body, "{\"name\": \"alice\", \"token\": \"%s\"}", tok_alice);
    HttpReq rq = {"POST", "/api/login", NULL, NULL, NULL, body, strlen(body), 0, "10.0.0.1"};
    HttpResp rs;
    server_handle(srv, &rq, &rs);
    CHECK_EQ_INT(rs.status, 200);
    CHECK(strstr(rs.set_cookie, "HttpOnly") && strstr(rs.set_cookie, "SameSite=Strict"),
          "cookie lacks HttpOnly or SameSite=Strict: %s", rs.set_cookie);
    CHECK(!strstr(rs.body.data, tok_alice), "the token is echoed back");
    http_resp_free(&rs);
    Login l;
    CHECK_EQ_INT(login("alice", tok_alice, "10.0.0.1", &l), 200);
    Buf me = {0};
    CHECK_EQ_INT(get(&l, "/api/me", NULL, &me), 200);
    CHECK(strstr(me.data, "\"alice\"") != NULL, "/api/me: %s", me.data);
    buf_free(&me);
}

static void test_failed_logins_are_rate_limited_per_address(void)
{
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(login("bob", "0000", "10.0.0.2", NULL), 401);
    /* Locked now: even the right token waits. */
    CHECK_EQ_INT(login("bob", tok_bob, "10.0.0.2", NULL), 429);
    /* Another address is not locked. */
    CHECK_EQ_INT(login("bob", tok_bob, "10.0.0.3", NULL), 200);
    /* A removed user cannot log in. */
    CHECK_EQ_INT(login("nobody", tok_bob, "10.0.0.4", NULL), 401);
}

static void test_posts_need_the_csrf_token(void)
{
    Login l;
    CHECK_EQ_INT(login("alice", tok_alice, "10.0.0.5", &l), 200);
    const char *body = "{\"study_id\": 1, \"kind\": \"status\", \"anatomy\": \"heart\", \"value\": \"normal\"}";
    HttpResp rs;
    req("POST", "/api/decide", NULL, l.session, NULL, body, &rs);
    CHECK_EQ_INT(rs.status, 403);
    http_resp_free(&rs);
    char wrong[65];
    memcpy(wrong, l.csrf, 65);
    wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
    req("POST", "/api/decide", NULL, l.session, wrong, body, &rs);
    CHECK_EQ_INT(rs.status, 403);
    http_resp_free(&rs);
    Db *db = db_ro();
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM audits"), 0);
    db_close(&db);
}

static void test_request_paths_never_reach_the_file_system(void)
{
    Login l;
    CHECK_EQ_INT(login("alice", tok_alice, "10.0.0.6", &l), 200);
    const char *bad[] = {"/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/etc/passwd",
                         "/static/", "/static/..", "/etc/passwd", "/api/study/1/../../../etc/passwd",
                         "/api/study/abc", "/api/study/-1", "/api/study/0", "/api/study/1x",
                         "/api/study/99999999999999999999", "/static/app.js/", "/api/study//1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        Buf b = {0};
        int st = get(&l, bad[i], NULL, &b);
        CHECK(st == 404, "GET %s answered %d", bad[i], st);
        CHECK(!strstr(b.data ? b.data : "", "root:"), "GET %s shows a file", bad[i]);
        buf_free(&b);
    }
    CHECK_EQ_INT(get(&l, "/static/app.js", NULL, NULL), 200);
    CHECK_EQ_INT(get(&l, "/api/study/424242", NULL, NULL), 404);
    HttpResp rs;
    req("DELETE", "/api/study/1", NULL, l.session, l.csrf, NULL, &rs);
    CHECK_EQ_INT(rs.status, 405);
    http_resp_free(&rs);
    HttpReq big = {"POST", "/api/decide", NULL, l.session, l.csrf, "{}", 2, 1, "10.0.0.6"};
    server_handle(srv, &big, &rs);
    CHECK_EQ_INT(rs.status, 413);
    http_resp_free(&rs);
}

static void test_malformed_requests_get_clear_errors(void)
{
    Login l;
    CHECK_EQ_INT(login("alice", tok_alice, "10.0.0.7", &l), 200);
    const char *bodies[] = {"", "{", "[]", "null", "{\"study_id\": \"x\"}",
                            "{\"study_id\": 1, \"kind\": \"drop table\", \"value\": \"1\"}",
                            "{\"study_id\": 1, \"kind\": \"link\", \"sentence_id\": 1, \"anatomy\": \"heart\","
                            " \"value\": \"maybe\"}",
                            "{\"study_id\": 1, \"kind\": \"status\", \"anatomy\": \"'; DROP TABLE audits; --\","
                            " \"value\": \"normal\"}",
                            "{\"study_id\": 1, \"kind\": \"label\", \"task\": \"nope\", \"value\": \"present\"}",
                            "{\"study_id\": 1, \"kind\": \"flag\", \"flag\": \"nope\", \"value\": \"1\"}"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        int st = post(&l, "/api/decide", bodies[i], NULL);
        CHECK(st == 400, "decide %s answered %d", bodies[i], st);
    }
    /* A sentence of another study is not this study's. */
    CHECK_EQ_INT(post(&l, "/api/decide", "{\"study_id\": 2, \"kind\": \"link\", \"sentence_id\": 1,"
                                         " \"anatomy\": \"heart\", \"value\": \"accept\"}", NULL), 404);
    const char *slices[] = {"plane=oblique", "i=-1", "i=100000", "ww=0", "wc=nan", "i=1.5",
                            "overlay=x", "anatomy=nope", "i=%zz"};
    for (size_t i = 0; i < sizeof slices / sizeof slices[0]; i++) {
        int st = get(&l, "/api/study/1/slice", slices[i], NULL);
        CHECK(st == 400 || st == 404, "slice?%s answered %d", slices[i], st);
    }
    Db *db = db_ro();
    CHECK(sql_int(db, "SELECT count(*) FROM audits") == 0, "a malformed decision was recorded");
    db_close(&db);
}

static void test_slices_and_centres_answer_for_a_logged_in_user(void)
{
    Login l;
    CHECK_EQ_INT(login("alice", tok_alice, "10.0.0.8", &l), 200);
    HttpResp rs;
    req("GET", "/api/study/1/slice", "plane=coronal&anatomy=liver&overlay=fill&preset=lung", l.session,
        NULL, NULL, &rs);
    CHECK_EQ_INT(rs.status, 200);
    CHECK(rs.body.len > 8 && !memcmp(rs.body.data, "\x89PNG", 4), "the slice is not a PNG");
    CHECK_STR(rs.type, "image/png");
    http_resp_free(&rs);
    Buf b = {0};
    CHECK_EQ_INT(get(&l, "/api/study/1/centre", "anatomy=liver", &b), 200);
    CHECK(strstr(b.data, "\"z\"") != NULL, "centre: %s", b.data);
    buf_free(&b);
}

/* Parses the study page and returns the training text of an anatomy. */
static char *sample_text(Db *db, int study, const char *anatomy)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT coalesce((SELECT text FROM samples WHERE study_id = %d AND anatomy = '%s'), '')",
             study, anatomy);
    return strdup(sql_str(db, sql));
}

static int64_t a_sentence(Db *db, int study, const char *anatomy, const char *method)
{
    char sql[400];
    snprintf(sql, sizeof sql,
             "SELECT coalesce((SELECT l.sentence_id FROM links l JOIN sentences s ON s.id = l.sentence_id"
             " WHERE s.study_id = %d AND l.anatomy = '%s' AND l.method = '%s' ORDER BY s.idx LIMIT 1), 0)",
             study, anatomy, method);
    return sql_int(db, sql);
}

static void test_decisions_change_links_statuses_labels_and_training_texts(void)
{
    Login l;
    CHECK_EQ_INT(login("alice", tok_alice, "10.0.1.1", &l), 200);
    Db *db = db_ro();
    int64_t s_aorta = a_sentence(db, 1, "aorta", "mention");
    CHECK(s_aorta > 0, "study 1 has no aorta mention link");
    char *before = sample_text(db, 1, "aorta");
    char body[512];
    snprintf(body, sizeof body, "{\"study_id\": 1, \"kind\": \"link\", \"sentence_id\": %lld,"
             " \"anatomy\": \"aorta\", \"value\": \"reject\"}", (long long)s_aorta);
    CHECK_EQ_INT(post(&l, "/api/decide", body, NULL), 200);
    char q[256];
    snprintf(q, sizeof q, "SELECT accepted FROM links WHERE sentence_id = %lld AND anatomy = 'aorta'",
             (long long)s_aorta);
    CHECK_EQ_INT(sql_int(db, q), 0);
    char *after = sample_text(db, 1, "aorta");
    snprintf(q, sizeof q, "SELECT text FROM sentences WHERE id = %lld", (long long)s_aorta);
    const char *stext = sql_str(db, q);
    CHECK(strstr(before, stext) != NULL, "the aorta text did not hold the sentence before");
    CHECK(!strstr(after, stext), "the rejected sentence is still in the aorta's training text: %s", after);
    free(before);
    free(after);

    /* An added link puts the sentence into the other anatomy's text. */
    snprintf(body, sizeof body, "{\"study_id\": 1, \"kind\": \"link\", \"sentence_id\": %lld,"
             " \"anatomy\": \"esophagus\", \"value\": \"accept\"}", (long long)s_aorta);
    CHECK_EQ_INT(post(&l, "/api/decide", body, NULL), 200);
    snprintf(q, sizeof q, "SELECT method || ':' || source FROM links WHERE sentence_id = %lld AND anatomy = 'esophagus'",
             (long long)s_aorta);
    CHECK_STR(sql_str(db, q), "audit:audit");

    /* A status: heart abnormal; its text is no longer the normal template. */
    CHECK_EQ_INT(post(&l, "/api/decide", "{\"study_id\": 1, \"kind\": \"status\", \"anatomy\": \"heart\","
                                         " \"value\": \"abnormal\"}", NULL), 200);
    CHECK_STR(sql_str(db, "SELECT status || ':' || source FROM anatomy_status WHERE study_id = 1 AND anatomy = 'heart'"),
              "abnormal:audit");
    CHECK_STR(sql_str(db, "SELECT status FROM samples WHERE study_id = 1 AND anatomy = 'heart'"), "abnormal");
    CHECK(!strstr(sql_str(db, "SELECT text FROM samples WHERE study_id = 1 AND anatomy = 'heart'"),
                  "no significant abnormalities"),
          "an abnormal heart still trains on the normal template");
    /* The status row holds the text align built, as exports read it. */
    char heart[2048];
    snprintf(heart, sizeof heart, "%s", sql_str(db, "SELECT text FROM samples WHERE study_id = 1 AND anatomy = 'heart'"));
    CHECK_STR(sql_str(db, "SELECT text FROM anatomy_status WHERE study_id = 1 AND anatomy = 'heart'"), heart);

    /* A label. */
    CHECK_EQ_INT(post(&l, "/api/decide", "{\"study_id\": 1, \"kind\": \"label\", \"task\": \"cardiomegaly\","
                                         " \"value\": \"present\"}", NULL), 200);
    CHECK_STR(sql_str(db, "SELECT value || ':' || source FROM labels WHERE study_id = 1 AND task = 'cardiomegaly'"),
              "1:audit");
    CHECK(strstr(sql_str(db, "SELECT diseases FROM samples WHERE study_id = 1 AND anatomy = 'heart'"),
                 "cardiomegaly") != NULL, "the heart's diseases lack the audited cardiomegaly");

    /* A flag that excludes the study's image: no samples any more. */
    CHECK_EQ_INT(post(&l, "/api/decide", "{\"study_id\": 3, \"kind\": \"flag\", \"flag\": \"wrong_series\","
                                         " \"value\": \"1\", \"comment\": \"a scout\"}", NULL), 200);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM samples WHERE study_id = 3"), 0);
    CHECK_STR(sql_str(db, "SELECT detail FROM flags WHERE study_id = 3 AND kind = 'audit_wrong_series'"), "a scout");

    /* Every decision is one row; the table refuses edits. */
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM audits WHERE who = 'alice'"), 5);
    FvErr e = {0};
    CHECK(db_exec(db, "UPDATE audits SET new = 'x'", &e) == -1 && strstr(e.msg, "append-only"),
          "audits accepted an UPDATE");
    CHECK(db_exec(db, "DELETE FROM audits", &e) == -1, "audits accepted a DELETE");
    db_close(&db);
}

static void test_undo_takes_back_the_last_decision_and_restores_the_parsed_label(void)
{
    Login l;
    CHECK_EQ_INT(login("alice", tok_alice, "10.0.1.2", &l), 200);
    Db *db = db_ro();
    CHECK_EQ_INT(post(&l, "/api/decide", "{\"study_id\": 1, \"kind\": \"label\", \"task\": \"consolidation\","
                                         " \"value\": \"uncertain\"}", NULL), 200);
    CHECK_STR(sql_str(db, "SELECT value FROM labels WHERE study_id = 1 AND task = 'consolidation'"), "-1");
    Buf r = {0};
    CHECK_EQ_INT(post(&l, "/api/undo", "{}", &r), 200);
    CHECK(strstr(r.data, "\"study_id\": 1") != NULL, "undo: %s", r.data);
    buf_free(&r);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM labels WHERE study_id = 1 AND task = 'consolidation'"
                             " AND source = 'audit'"), 0);
    /* Undo walks back: the flag on study 3 goes next; its samples return. */
    CHECK_EQ_INT(post(&l, "/api/undo", "{}", NULL), 200);
    CHECK(sql_int(db, "SELECT count(*) FROM samples WHERE study_id = 3") > 0,
          "the study's samples did not come back after the flag was undone");
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM audits WHERE kind = 'undo' AND who = 'alice'"), 2);
    /* Someone with nothing to undo. */
    Login lb;
    CHECK_EQ_INT(login("bob", tok_bob, "10.0.1.3", &lb), 200);
    CHECK_EQ_INT(post(&lb, "/api/undo", "{}", NULL), 404);
    db_close(&db);
}

static void test_decisions_survive_parse_all_and_align_reruns(void)
{
    const char *bin = getenv("FVLM_BIN");
    Db *db = db_ro();
    int64_t rejected = sql_int(db, "SELECT count(*) FROM links WHERE accepted = 0");
    int64_t added = sql_int(db, "SELECT count(*) FROM links WHERE source = 'audit'");
    CHECK(rejected >= 1 && added >= 1, "no decisions to carry (%lld, %lld)", (long long)rejected,
          (long long)added);
    db_close(&db);
    CHECK_EQ_INT(test_sh("'%s' parse --quiet --all --db '%s' 2>/dev/null", bin, dbpath), 0);
    CHECK_EQ_INT(test_sh("'%s' align --quiet --db '%s' 2>/dev/null", bin, dbpath), 0);
    db = db_ro();
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM reports WHERE parsed_run <>"
                             " (SELECT max(id) FROM runs WHERE stage = 'parse')"), 0);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM links WHERE accepted = 0"), rejected);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM links WHERE source = 'audit'"), added);
    CHECK_STR(sql_str(db, "SELECT status || ':' || source FROM anatomy_status WHERE study_id = 1 AND anatomy = 'heart'"),
              "abnormal:audit");
    CHECK_STR(sql_str(db, "SELECT value || ':' || source FROM labels WHERE study_id = 1 AND task = 'cardiomegaly'"),
              "1:audit");
    CHECK(sql_int(db, "SELECT json_extract(counts, '$.audited_studies') FROM runs WHERE stage = 'align'"
                      " ORDER BY id DESC LIMIT 1") >= 1,
          "the align run does not record that it used audited decisions");
    /* A report worded differently on the next parse: the link decision on
     * the changed sentence is stale, shown, and not laid on another one. */
    int64_t sid = sql_int(db, "SELECT s.id FROM links l JOIN sentences s ON s.id = l.sentence_id"
                              " WHERE l.accepted = 0 LIMIT 1");
    char q[200];
    snprintf(q, sizeof q, "UPDATE sentences SET text = text || ' (edited)' WHERE id = %lld", (long long)sid);
    FvErr e = {0};
    CHECK_OK(db_exec(db, q, &e), &e);
    db_close(&db);
    CHECK_EQ_INT(test_sh("'%s' align --quiet --db '%s' 2>/dev/null", bin, dbpath), 0);
    db = db_ro();
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM links WHERE accepted = 0"), rejected - 1);
    CHECK(sql_int(db, "SELECT json_extract(counts, '$.audit_stale') FROM runs WHERE stage = 'align'"
                      " ORDER BY id DESC LIMIT 1") >= 1, "align does not count the stale decision");
    Login l;
    CHECK_EQ_INT(login("alice", tok_alice, "10.0.1.9", &l), 200);
    Buf pg = {0};
    CHECK_EQ_INT(get(&l, "/api/study/1", NULL, &pg), 200);
    CHECK(strstr(pg.data, "\"stale\":[{") != NULL, "the page does not list the stale decision");
    buf_free(&pg);
    /* Put the sentence back (parse would): the decision applies again. */
    snprintf(q, sizeof q, "UPDATE sentences SET text = substr(text, 1, length(text) - 9) WHERE id = %lld",
             (long long)sid);
    CHECK_OK(db_exec(db, q, &e), &e);
    db_close(&db);
    CHECK_EQ_INT(test_sh("'%s' align --quiet --db '%s' 2>/dev/null", bin, dbpath), 0);
    db = db_ro();
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM links WHERE accepted = 0"), rejected);
    db_close(&db);
}

typedef struct Writer {
    Login l;
    int study, n, failures;
} Writer;

static void *writer(void *p)
{
    Writer *w = p;
    static const char *const st[] = {"normal", "abnormal"};
    for (int i = 0; i < w->n; i++) {
        char body[256];
        snprintf(body, sizeof body, "{\"study_id\": %d, \"kind\": \"status\", \"anatomy\": \"%s\","
                 " \"value\": \"%s\"}", w->study, i % 2 ? "liver" : "spleen", st[i % 2]);
        if (post(&w->l, "/api/decide", body, NULL) != 200)
            w->failures++;
    }
    return NULL;
}

static void test_two_annotators_writing_at_once_are_both_kept(void)
{
    Writer w[2] = {{.study = 4, .n = 20}, {.study = 4, .n = 20}};
    CHECK_EQ_INT(login("alice", tok_alice, "10.0.2.1", &w[0].l), 200);
    CHECK_EQ_INT(login("bob", tok_bob, "10.0.2.2", &w[1].l), 200);
    Db *db = db_ro();
    int64_t before = sql_int(db, "SELECT count(*) FROM audits WHERE study_id = 4");
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, writer, &w[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_INT(w[0].failures + w[1].failures, 0);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM audits WHERE study_id = 4") - before, 40);
    CHECK_EQ_INT(sql_int(db, "SELECT count(DISTINCT who) FROM audits WHERE study_id = 4"), 2);
    db_close(&db);
}

static void test_a_leads_decision_resolves_a_conflict(void)
{
    Login a, b, lead;
    CHECK_EQ_INT(login("alice", tok_alice, "10.0.3.1", &a), 200);
    CHECK_EQ_INT(login("bob", tok_bob, "10.0.3.2", &b), 200);
    CHECK_EQ_INT(login("lea", tok_lead, "10.0.3.3", &lead), 200);
#define KIDNEY "{\"study_id\": 5, \"kind\": \"status\", \"anatomy\": \"kidney\", \"value\": \"%s\"}"
    char body[200];
    snprintf(body, sizeof body, KIDNEY, "abnormal");
    CHECK_EQ_INT(post(&a, "/api/decide", body, NULL), 200);
    snprintf(body, sizeof body, KIDNEY, "unmentioned");
    CHECK_EQ_INT(post(&lead, "/api/decide", body, NULL), 200);
    snprintf(body, sizeof body, KIDNEY, "normal");
    CHECK_EQ_INT(post(&b, "/api/decide", body, NULL), 200); /* newer, but not a lead's */
    Db *db = db_ro();
    CHECK_STR(sql_str(db, "SELECT status FROM anatomy_status WHERE study_id = 5 AND anatomy = 'kidney'"),
              "unmentioned");
    db_close(&db);
    Buf pg = {0};
    CHECK_EQ_INT(get(&a, "/api/study/5", NULL, &pg), 200);
    CHECK(strstr(pg.data, "\"conflicts\":[{\"kind\":\"status\"") && strstr(pg.data, "\"settled\":1"),
          "the page does not show the settled conflict: %.300s", strstr(pg.data, "\"conflicts\"") ? strstr(pg.data, "\"conflicts\"") : "");
    buf_free(&pg);
    /* Agreement sees the item two annotators decided (alice, bob) or more. */
    Buf s = {0};
    CHECK_EQ_INT(get(&a, "/api/stats", NULL, &s), 200);
    CHECK(strstr(s.data, "\"kind\":\"status\"") != NULL, "stats lack status agreement: %.400s", s.data);
    buf_free(&s);
}

static void test_hostile_text_round_trips_escaped_through_json_csv_and_jsonl(void)
{
    const char *hostile = "<script>alert(1)</script> \"><img src=x onerror=alert(2)> javascript:alert(3) 肺部见结节，约5mm。";
    Db *db = db_ro();
    sqlite3_stmt *st;
    FvErr e = {0};
    CHECK_OK(db_prepare(db, &st, "UPDATE sentences SET text = ? WHERE id = (SELECT min(id) FROM sentences WHERE study_id = 2)", &e), &e);
    CHECK_OK(db_bindf(db, st, &e, "s", hostile), &e);
    CHECK(db_step(db, st, &e) == 0, "%s", e.msg);
    sqlite3_finalize(st);
    db_close(&db);
    Login l;
    CHECK_EQ_INT(login("alice", tok_alice, "10.0.4.1", &l), 200);
    Buf page = {0};
    CHECK_EQ_INT(get(&l, "/api/study/2", NULL, &page), 200);
    JsonValue *v = NULL;
    CHECK(json_parse(page.data, page.len, &v, &e) == 0, "the study page is not JSON: %s", e.msg);
    const JsonValue *sent = v ? json_get(v, "sentences") : NULL;
    int found = 0;
    for (size_t i = 0; sent && i < sent->len; i++)
        found |= !strcmp(json_get_str(&sent->items[i], "text", ""), hostile);
    CHECK(found, "the hostile sentence did not come back exactly");
    json_free(&v);
    buf_free(&page);
    /* A hostile comment survives the exports exactly. */
    char body[600];
    Buf jb = {0};
    JsonW w;
    jw_init(&w, &jb, 0);
    jw_obj(&w);
    jw_key(&w, "study_id"); jw_int(&w, 2);
    jw_key(&w, "kind"); jw_str(&w, "flag");
    jw_key(&w, "flag"); jw_str(&w, "phi_seen");
    jw_key(&w, "value"); jw_str(&w, "1");
    jw_key(&w, "comment"); jw_str(&w, hostile);
    jw_obj_end(&w);
    snprintf(body, sizeof body, "%s", jb.data);
    buf_free(&jb);
    CHECK_EQ_INT(post(&l, "/api/decide", body, NULL), 200);
    Buf x = {0};
    CHECK_EQ_INT(get(&l, "/api/export", "format=jsonl", &x), 200);
    int ok = 0;
    for (char *line = strtok(x.data, "\n"); line; line = strtok(NULL, "\n")) {
        JsonValue *r = NULL;
        if (json_parse(line, strlen(line), &r, &e) == 0)
            ok |= !strcmp(json_get_str(r, "comment", ""), hostile);
        json_free(&r);
    }
    CHECK(ok, "the hostile comment did not come back exactly from JSON lines");
    buf_free(&x);
    CHECK_EQ_INT(get(&l, "/api/export", "format=csv", &x), 200);
    CHECK(strstr(x.data, "\"<script>alert(1)</script> \"\"><img") != NULL, "CSV does not quote the comment");
    buf_free(&x);
}

static void test_search_finds_a_study_by_id_key_prefix_and_original_id(void)
{
    Login l;
    CHECK_EQ_INT(login("alice", tok_alice, "10.0.5.1", &l), 200);
    Db *db = db_ro();
    char key[65];
    snprintf(key, sizeof key, "%s", sql_str(db, "SELECT study_key FROM studies WHERE id = 2"));
    db_close(&db);
    Buf b = {0};
    CHECK_EQ_INT(get(&l, "/api/search", "q=2", &b), 200);
    CHECK(strstr(b.data, "\"study_id\":2") != NULL, "search by id: %s", b.data);
    buf_reset(&b);
    char q[64];
    snprintf(q, sizeof q, "q=%.10s", key);
    CHECK_EQ_INT(get(&l, "/api/search", q, &b), 200);
    CHECK(strstr(b.data, "\"study_id\":2") != NULL, "search by key prefix: %s", b.data);
    buf_reset(&b);
    /* The original study id: only its keyed hash is compared. */
    char pseudo[65];
    FvErr e = {0};
    const char *uid = "2.25.999";
    CHECK_OK(deid_pseudonym(KEY, "study", uid, pseudo, &e), &e);
    db = db_ro();
    sqlite3_stmt *st;
    CHECK_OK(db_prepare(db, &st, "UPDATE studies SET study_key = ? WHERE id = 6", &e), &e);
    CHECK_OK(db_bindf(db, st, &e, "s", pseudo), &e);
    CHECK(db_step(db, st, &e) == 0, "%s", e.msg);
    sqlite3_finalize(st);
    db_close(&db);
    CHECK_EQ_INT(get(&l, "/api/search", "q=2.25.999", &b), 200);
    CHECK(strstr(b.data, "\"study_id\":6") && strstr(b.data, "accession"), "search by original id: %s", b.data);
    CHECK(!strstr(b.data, uid), "the typed id is echoed back");
    buf_free(&b);
}

/* The hospital's AccessionNumber and archive name (what an annotator
 * holds) find the study; the corpus holds neither, only keyed hashes. */
static void test_search_finds_a_study_by_its_dicom_accession_and_archive_name(void)
{
    char tpath[400], *truth = NULL;
    size_t tlen;
    FvErr e = {0};
    snprintf(tpath, sizeof tpath, "%s/corpus/truth/studies.jsonl", dir);
    CHECK_OK(fs_read_file(tpath, 1 << 24, &truth, &tlen, &e), &e);
    char acc[64] = "", uid[128] = "", arch[128] = "";
    for (char *line = strtok(truth, "\n"); line && !acc[0]; line = strtok(NULL, "\n")) {
        JsonValue *r = NULL;
        if (json_parse(line, strlen(line), &r, &e) == 0 &&
            !strcmp(json_get_str(r, "layout", ""), "hospital")) {
            const JsonValue *scan = json_get(r, "scan");
            const JsonValue *phi = scan ? json_get(scan, "phi") : NULL;
            const char *p = json_get_str(r, "path", "");
            snprintf(acc, sizeof acc, "%s", phi ? json_get_str(phi, "accession", "") : "");
            snprintf(uid, sizeof uid, "%s", json_get_str(r, "study_id", ""));
            snprintf(arch, sizeof arch, "%s", strrchr(p, '/') ? strrchr(p, '/') + 1 : p);
        }
        json_free(&r);
    }
    free(truth);
    CHECK(acc[0] && uid[0] && arch[0], "no hospital study with an accession in %s", tpath);
    char skey[65], want[64];
    CHECK_OK(deid_pseudonym(KEY, "study", uid, skey, &e), &e);
    Db *db = db_ro();
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT id FROM studies WHERE study_key = '%s'", skey);
    snprintf(want, sizeof want, "\"study_id\":%s", sql_str(db, sql));
    db_close(&db);
    Login l;
    CHECK_EQ_INT(login("alice", tok_alice, "10.0.5.2", &l), 200);
    Buf b = {0};
    char q[200];
    snprintf(q, sizeof q, "q=%s", acc);
    CHECK_EQ_INT(get(&l, "/api/search", q, &b), 200);
    CHECK(strstr(b.data, want) && strstr(b.data, "\"as\":\"accession"),
          "search by AccessionNumber %s: want %s, got %s", acc, want, b.data);
    CHECK(!strstr(b.data, acc), "the typed accession is echoed back: %s", b.data);
    buf_reset(&b);
    snprintf(q, sizeof q, "q=%s", arch); /* with its extension: CT....tar.gz */
    CHECK_EQ_INT(get(&l, "/api/search", q, &b), 200);
    CHECK(strstr(b.data, want) && strstr(b.data, "source"), "search by archive name %s: want %s, got %s",
          arch, want, b.data);
    buf_reset(&b);
    CHECK_EQ_INT(get(&l, "/api/search", "q=A000000999999", &b), 200);
    CHECK(!strcmp(b.data, "[]"), "an unknown accession finds: %s", b.data);
    buf_free(&b);
    /* Only keyed hashes: neither the accession nor the archive name is in
     * the database file or its write-ahead log. */
    for (int k = 0; k < 2; k++) {
        char path[320];
        snprintf(path, sizeof path, "%s%s", dbpath, k ? "-wal" : "");
        char *raw = NULL;
        size_t rl;
        if (k && access(path, F_OK) != 0)
            continue;
        CHECK_OK(fs_read_file(path, (size_t)1 << 30, &raw, &rl, &e), &e);
        CHECK(!memmem(raw, rl, acc, strlen(acc)), "%s holds the accession %s", path, acc);
        CHECK(!memmem(raw, rl, arch, strlen(arch)), "%s holds the archive name %s", path, arch);
        free(raw);
    }
}

/* Accession search hashes what is typed: a server with another key would
 * match nothing, so it does not start. */
static void test_server_refuses_another_deid_key(void)
{
    ServerOptions o = {.db_path = dbpath, .deid_key = "another-deid-key-0987"};
    AuditServer *other = NULL;
    FvErr e = {0};
    CHECK(server_open(&other, &o, 0, &e) != 0, "a server with another key started");
    CHECK(strstr(e.msg, "another de-identification key") != NULL, "message: %s", e.msg);
    server_close(&other);
}

static void test_queue_orders_and_next(void)
{
    Db *db = db_ro();
    FvErr e = {0};
    char *who[] = {"alice", "bob"};
    QueueSpec q = {ORD_RANDOM, who, 2, 0.5, 7, 0, NULL, NULL, 0};
    QueueCounts c;
    CHECK_OK(queue_build(db, &q, &c, &e), &e);
    CHECK_EQ_INT(c.studies, 6);
    CHECK_EQ_INT(c.assigned, 6 + c.doubled);
    Buf a1 = {0}, a2 = {0};
    CHECK_OK(queue_json(db, "alice", &a1, &e), &e);
    CHECK_OK(queue_build(db, &q, &c, &e), &e);
    CHECK_OK(queue_json(db, "alice", &a2, &e), &e);
    CHECK(a1.data && a2.data && !strcmp(a1.data, a2.data), "the seeded random queue changed between builds");
    buf_free(&a1);
    buf_free(&a2);
    QueueSpec f = {ORD_WEAKEST, who, 1, 0, 1, 3, NULL, NULL, 0};
    CHECK_OK(queue_build(db, &f, &c, &e), &e);
    CHECK_EQ_INT(c.studies, 3);
    int64_t first = 0;
    CHECK_OK(queue_next(db, "alice", -1, &first, &e), &e);
    CHECK(first > 0, "no next study");
    char *nobody[] = {"mallory"};
    QueueSpec bad = {ORD_FLAGS, nobody, 1, 0, 1, 0, NULL, NULL, 0};
    CHECK(queue_build(db, &bad, &c, &e) == -1 && e.code == FV_ENOTFOUND, "an unknown user got a queue");
    db_close(&db);
    /* bob reviews his first random-order study whole, rejecting one of its
     * links: the precision estimate counts that study's links. */
    db = db_ro();
    int64_t rs = sql_int(db, "SELECT study_id FROM audit_queue WHERE who = 'bob' AND ord = 'random'"
                             " ORDER BY pos LIMIT 1");
    char q2[300];
    snprintf(q2, sizeof q2, "SELECT l.sentence_id FROM links l JOIN sentences s ON s.id = l.sentence_id"
             " WHERE s.study_id = %lld AND l.source = 'align' AND l.anatomy = 'lung' AND l.accepted IS NULL"
             " ORDER BY s.idx LIMIT 1", (long long)rs);
    int64_t lung_sent = sql_int(db, q2);
    snprintf(q2, sizeof q2, "SELECT count(*) FROM links l JOIN sentences s ON s.id = l.sentence_id"
             " WHERE s.study_id = %lld AND l.source = 'align' AND l.anatomy = 'lung'", (long long)rs);
    int64_t n_lung = sql_int(db, q2);
    db_close(&db);
    Login lb;
    CHECK_EQ_INT(login("bob", tok_bob, "10.0.6.2", &lb), 200);
    char rb[200];
    if (lung_sent > 0) {
        snprintf(rb, sizeof rb, "{\"study_id\": %lld, \"kind\": \"link\", \"sentence_id\": %lld,"
                 " \"anatomy\": \"lung\", \"value\": \"reject\", \"queue\": \"random\"}",
                 (long long)rs, (long long)lung_sent);
        CHECK_EQ_INT(post(&lb, "/api/decide", rb, NULL), 200);
    }
    snprintf(rb, sizeof rb, "{\"study_id\": %lld, \"kind\": \"done\", \"value\": \"1\", \"queue\": \"random\"}",
             (long long)rs);
    CHECK_EQ_INT(post(&lb, "/api/decide", rb, NULL), 200);
    /* After the re-alignment (a rejected link passes nothing on to the
     * sentences that continued it). */
    db = db_ro();
    snprintf(q2, sizeof q2, "SELECT count(*) FROM links l JOIN sentences s ON s.id = l.sentence_id"
             " WHERE s.study_id = %lld AND l.source = 'align' AND l.method <> 'audit' AND l.anatomy = 'lung'",
             (long long)rs);
    n_lung = sql_int(db, q2);
    db_close(&db);
    Buf sj = {0};
    CHECK_EQ_INT(get(&lb, "/api/stats", NULL, &sj), 200);
    JsonValue *sv = NULL;
    CHECK(json_parse(sj.data, sj.len, &sv, &e) == 0, "stats are not JSON: %s", e.msg);
    CHECK_EQ_INT(sv ? json_get_int(sv, "sample_studies", -1) : -1, 1);
    const JsonValue *pa = sv ? json_get(sv, "link_precision_by_anatomy") : NULL;
    int seen_lung = 0;
    for (size_t i = 0; pa && i < pa->len; i++) {
        const JsonValue *g = &pa->items[i];
        double lo = json_get_num(g, "lo", -1), hi = json_get_num(g, "hi", -1), pr = json_get_num(g, "precision", -1);
        CHECK(lo >= 0 && lo <= pr && pr <= hi && hi <= 1, "interval [%g, %g] around %g", lo, hi, pr);
        if (!strcmp(json_get_str(g, "name", ""), "lung")) {
            seen_lung = 1;
            CHECK_EQ_INT(json_get_int(g, "n", -1), n_lung);
            CHECK_EQ_INT(json_get_int(g, "correct", -1), n_lung - (lung_sent > 0));
        }
    }
    CHECK(seen_lung || n_lung == 0, "no lung precision from the reviewed random study");
    json_free(&sv);
    buf_free(&sj);
    Login l;
    CHECK_EQ_INT(login("alice", tok_alice, "10.0.6.1", &l), 200);
    char body[128];
    snprintf(body, sizeof body, "{\"study_id\": %lld, \"kind\": \"done\", \"value\": \"1\", \"queue\": \"weakest\"}",
             (long long)first);
    CHECK_EQ_INT(post(&l, "/api/decide", body, NULL), 200);
    Buf n = {0};
    CHECK_EQ_INT(get(&l, "/api/next", "after=-1", &n), 200);
    char not_first[64];
    snprintf(not_first, sizeof not_first, "\"study_id\": %lld,", (long long)first);
    CHECK(!strstr(n.data, not_first), "next gives the study marked done: %s", n.data);
    buf_free(&n);
}

static void test_a_recorded_but_unapplied_decision_is_applied_at_the_next_start(void)
{
    /* As if the server died between recording and re-aligning: a row
     * written straight into audits. */
    Db *db = db_ro();
    FvErr e = {0};
    CHECK_OK(db_exec(db, "INSERT INTO audits (who, at, target, key, old, new, study_id, kind, role)"
                         " VALUES ('alice', '2026-01-01T00:00:00Z', 'anatomy_status',"
                         " '{\"anatomy\":\"stomach\"}', NULL, 'abnormal', 6, 'status', 'annotator')", &e), &e);
    CHECK(strcmp(sql_str(db, "SELECT status || source FROM anatomy_status WHERE study_id = 6 AND anatomy = 'stomach'"),
                 "abnormalaudit"),
          "applied before the restart");
    db_close(&db);
    server_close(&srv);
    server_up();
    db = db_ro();
    CHECK_STR(sql_str(db, "SELECT status || ':' || source FROM anatomy_status WHERE study_id = 6 AND anatomy = 'stomach'"),
              "abnormal:audit");
    db_close(&db);
}

static void test_cli_users_queues_by_model_stats_and_export(void)
{
    const char *bin = getenv("FVLM_BIN");
    char out[400];
    snprintf(out, sizeof out, "%s/out.txt", dir);
    /* A user removed cannot log in; their decisions stay. */
    CHECK_EQ_INT(test_sh("'%s' audit user remove bob --db '%s' > '%s'", bin, dbpath, out), 0);
    CHECK_EQ_INT(login("bob", tok_bob, "10.0.7.1", NULL), 401);
    CHECK_EQ_INT(test_sh("'%s' audit user remove bob --db '%s' 2>/dev/null", bin, dbpath), 1);
    CHECK_EQ_INT(test_sh("'%s' audit user add 'bad name' --db '%s' 2>/dev/null", bin, dbpath), 2);
    CHECK_EQ_INT(test_sh("'%s' audit user list --json --db '%s' > '%s'", bin, dbpath, out), 0);
    CHECK_EQ_INT(test_sh("/usr/bin/python3 -c \"import json,sys; u={x['name']: x for x in json.load(open(sys.argv[1]))};"
                         " assert u['bob']['removed_at'] and u['bob']['decisions'] > 0 and not u['alice']['removed_at']\" '%s'",
                         out), 0);
    /* The model order: a tiny model's zero-shot scores against the labels. */
    CHECK_EQ_INT(test_sh("'%s' train --quiet --db '%s' --preset tiny --steps 2 --out '%s/m.safetensors' >/dev/null 2>&1",
                         bin, dbpath, dir), 0);
    CHECK_EQ_INT(test_sh("'%s' audit queue --db '%s' --order model --model '%s/m.safetensors' --assign lea > '%s'",
                         bin, dbpath, dir, out), 0);
    Db *db = db_ro();
    CHECK(sql_int(db, "SELECT count(*) FROM audit_queue WHERE who = 'lea' AND ord = 'model'") >= 1,
          "the model order queued nothing");
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM audit_queue WHERE who = 'lea' AND NOT (score BETWEEN 0 AND 1)"), 0);
    CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM (SELECT score, pos FROM audit_queue q WHERE who = 'lea' AND"
                             " EXISTS (SELECT 1 FROM audit_queue p WHERE p.who = 'lea' AND p.pos < q.pos AND p.score < q.score))"), 0);
    CHECK(sql_int(db, "SELECT json_extract(counts, '$.audited.studies') FROM runs WHERE stage = 'train'"
                      " ORDER BY id DESC LIMIT 1") >= 1,
          "the train run does not record the audited decisions it used");
    db_close(&db);
    CHECK_EQ_INT(test_sh("'%s' audit queue --db '%s' --order model --assign lea 2>/dev/null", bin, dbpath), 2);
    CHECK_EQ_INT(test_sh("'%s' audit queue --db '%s' --order sideways --assign lea 2>/dev/null", bin, dbpath), 2);
    /* Stats and export. */
    CHECK_EQ_INT(test_sh("'%s' audit stats --json --db '%s' > '%s'", bin, dbpath, out), 0);
    CHECK_EQ_INT(test_sh("/usr/bin/python3 -c \"import json,sys; s=json.load(open(sys.argv[1]));"
                         " assert s['studies'] == 6 and len(s['per_day']) >= 2 and s['agreement']\" '%s'", out), 0);
    CHECK_EQ_INT(test_sh("'%s' audit stats --db '%s' | grep -q 'Cohen'", bin, dbpath), 0);
    CHECK_EQ_INT(test_sh("'%s' audit export --format csv --db '%s' | head -1 | grep -q '^id,who,role,at,study_id'",
                         bin, dbpath), 0);
    CHECK_EQ_INT(test_sh("'%s' audit export --format xml --db '%s' 2>/dev/null", bin, dbpath), 2);
    CHECK_EQ_INT(test_sh("'%s' audit serve --db '%s' --bind 10.1.2.3 2>/dev/null", bin, dbpath), 2);
}

int main(void)
{
    corpus_make();
    server_up();
    RUN(test_kappa_and_wilson_match_hand_computed_values);
    RUN(test_no_data_answers_without_a_session);
    RUN(test_login_sets_an_httponly_samesite_cookie);
    RUN(test_failed_logins_are_rate_limited_per_address);
    RUN(test_posts_need_the_csrf_token);
    RUN(test_request_paths_never_reach_the_file_system);
    RUN(test_malformed_requests_get_clear_errors);
    RUN(test_slices_and_centres_answer_for_a_logged_in_user);
    RUN(test_decisions_change_links_statuses_labels_and_training_texts);
    RUN(test_undo_takes_back_the_last_decision_and_restores_the_parsed_label);
    RUN(test_decisions_survive_parse_all_and_align_reruns);
    RUN(test_two_annotators_writing_at_once_are_both_kept);
    RUN(test_a_leads_decision_resolves_a_conflict);
    RUN(test_hostile_text_round_trips_escaped_through_json_csv_and_jsonl);
    RUN(test_search_finds_a_study_by_id_key_prefix_and_original_id);
    RUN(test_search_finds_a_study_by_its_dicom_accession_and_archive_name);
    RUN(test_server_refuses_another_deid_key);
    RUN(test_queue_orders_and_next);
    RUN(test_a_recorded_but_unapplied_decision_is_applied_at_the_next_start);
    RUN(test_cli_users_queues_by_model_stats_and_export);
    server_close(&srv);
    int rc = test_finish();
    if (rc == 0)
        test_sh("rm -rf '%s'", dir);
    return rc;
}
