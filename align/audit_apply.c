#include "audit_apply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "sha256.h"

const char audit_current_sql[] =
    "WITH live AS (SELECT a.id, a.kind, a.key, a.new, a.who, a.role, a.comment, a.at, a.old"
    " FROM audits a WHERE a.study_id = ?1 AND a.kind IN ('link', 'status', 'label', 'flag')"
    " AND NOT EXISTS (SELECT 1 FROM audits u WHERE u.undoes = a.id AND u.kind = 'undo')),"
    " ranked AS (SELECT live.*, row_number() OVER (PARTITION BY kind, key"
    " ORDER BY coalesce(role = 'lead', 0) DESC, id DESC) AS rn FROM live)"
    " SELECT id, kind, key, new, who, role, comment, at, old FROM ranked WHERE rn = 1 ORDER BY id";

void audit_sentence_sha(const char *text, char out[17])
{
    char hex[65];
    sha256_hex(text, strlen(text), hex);
    memcpy(out, hex, 16);
    out[16] = '\0';
}

enum {
    Q_HAS, Q_CUR, Q_SENT, Q_LINK_RESET, Q_LINK_DEL, Q_LINK_SET, Q_LINK_ADD, Q_LINK_VERDICT,
    Q_STATUS_DEL, Q_STATUS_SET, Q_LABEL_AUDIT, Q_LABEL_FIRST, Q_LABEL_DEL, Q_LABEL_RESTORE, Q_LABEL_SET,
    Q_FLAG_DEL, Q_FLAG_ADD, Q_N
};

int audit_apply_open(AuditApply *a, Db *db, FvErr *e)
{
#define STUDY_SENTENCES "(SELECT id FROM sentences WHERE study_id = ?)"
    static const char *const sql[Q_N] = {
        [Q_HAS] = "SELECT EXISTS (SELECT 1 FROM audits WHERE study_id = ? AND kind IS NOT NULL)",
        [Q_CUR] = audit_current_sql,
        [Q_SENT] = "SELECT id, idx, text FROM sentences WHERE study_id = ? ORDER BY idx, id",
        [Q_LINK_RESET] = "UPDATE links SET accepted = NULL WHERE source = 'align'"
                         " AND accepted IS NOT NULL AND sentence_id IN " STUDY_SENTENCES,
        [Q_LINK_DEL] = "DELETE FROM links WHERE source = 'audit' AND sentence_id IN " STUDY_SENTENCES,
        [Q_LINK_SET] = "UPDATE links SET accepted = ? WHERE sentence_id = ? AND anatomy = ?",
        [Q_LINK_ADD] = "INSERT INTO links (sentence_id, anatomy, method, confidence, source)"
                       " VALUES (?, ?, 'audit', 1.0, 'audit')",
        /* A verdict on a link of align's that is not there yet (parse
         * re-ran): a row that holds the verdict, which align's own insert
         * then completes with its method and confidence. */
        [Q_LINK_VERDICT] = "INSERT INTO links (sentence_id, anatomy, method, confidence, source,"
                           " accepted) VALUES (?, ?, 'audit', 0.0, 'align', ?)",
        [Q_STATUS_DEL] = "DELETE FROM anatomy_status WHERE study_id = ? AND source = 'audit'",
        /* Empty texts and diseases: align builds them as it would have for
         * that status (status.h). */
        [Q_STATUS_SET] = "INSERT INTO anatomy_status (study_id, anatomy, status, findings_text,"
                         " impression_text, text, diseases, source) VALUES (?, ?, ?, '', '', '', '',"
                         " 'audit') ON CONFLICT (study_id, anatomy) DO UPDATE SET"
                         " status = excluded.status, findings_text = '', impression_text = '',"
                         " text = '', diseases = '', source = 'audit'",
        [Q_LABEL_AUDIT] = "SELECT task FROM labels WHERE study_id = ? AND source = 'audit'",
        [Q_LABEL_FIRST] = "SELECT old FROM audits WHERE study_id = ? AND kind = 'label' AND key = ?"
                          " ORDER BY id LIMIT 1",
        [Q_LABEL_DEL] = "DELETE FROM labels WHERE study_id = ? AND task = ?",
        [Q_LABEL_RESTORE] = "INSERT OR REPLACE INTO labels (study_id, task, value, source, start,"
                            " end, rule) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [Q_LABEL_SET] = "INSERT INTO labels (study_id, task, value, source) VALUES (?, ?, ?, 'audit')"
                        " ON CONFLICT (study_id, task) DO UPDATE SET value = excluded.value,"
                        " source = 'audit'",
        [Q_FLAG_DEL] = "DELETE FROM flags WHERE study_id = ? AND kind LIKE 'audit\\_%' ESCAPE '\\'",
        [Q_FLAG_ADD] = "INSERT INTO flags (study_id, anatomy, kind, detail) VALUES (?, NULL, ?, ?)",
    };
#undef STUDY_SENTENCES
    memset(a, 0, sizeof *a);
    a->db = db;
    for (int i = 0; i < Q_N; i++)
        if (db_prepare(db, &a->q[i], sql[i], e)) {
            audit_apply_close(a);
            return err_prefix(e, "audit decisions");
        }
    return 0;
}

void audit_apply_close(AuditApply *a)
{
    for (int i = 0; i < Q_N; i++) {
        sqlite3_finalize(a->q[i]);
        a->q[i] = NULL;
    }
}

static int step_done(AuditApply *a, sqlite3_stmt *st, FvErr *e)
{
    return db_step(a->db, st, e) < 0 ? -1 : 0;
}

typedef struct Cur {
    char *kind, *key, *val, *comment;
    int added;            /* a link: the decision added it (align had none) */
} Cur;

static void cur_free(Cur *c, int n)
{
    for (int i = 0; i < n; i++) {
        free(c[i].kind);
        free(c[i].key);
        free(c[i].val);
        free(c[i].comment);
    }
    free(c);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return strdup(t ? (const char *)t : "");
}

typedef struct Sent {
    int64_t id;
    int idx;
    char sha[17];
} Sent;

static int label_value(const char *v)
{
    if (!strcmp(v, "present"))
        return 1;
    if (!strcmp(v, "absent"))
        return 0;
    if (!strcmp(v, "uncertain"))
        return -1;
    return 2;
}

/* Puts back a label whose decisions were all taken back: the row the first
 * decision replaced (its `old`), or none when there was none. */
static int label_restore(AuditApply *a, int64_t study, const char *task, FvErr *e)
{
    Db *db = a->db;
    char key[256];
    Buf kb = {0};
    JsonW w;
    jw_init(&w, &kb, 0);
    jw_obj(&w);
    jw_key(&w, "task");
    jw_str(&w, task);
    jw_obj_end(&w);
    if (kb.failed) {
        buf_free(&kb);
        return err_set(e, FV_ENOMEM, "audit decisions: out of memory");
    }
    snprintf(key, sizeof key, "%s", kb.data);
    buf_free(&kb);
    sqlite3_stmt *q = a->q[Q_LABEL_FIRST];
    if (db_bindf(db, q, e, "is", study, key))
        return -1;
    int rc = db_step(db, q, e);
    if (rc < 0)
        return -1;
    char *old = rc == 1 && sqlite3_column_type(q, 0) != SQLITE_NULL ? col_dup(q, 0) : NULL;
    sqlite3_reset(q);
    JsonValue *v = NULL;
    FvErr je = {0};
    if (old && strcmp(old, "null") && json_parse(old, strlen(old), &v, &je) == 0 &&
        v->type == JSON_OBJ) {
        const JsonValue *val = json_get(v, "value");
        const char *src = json_get_str(v, "source", "parsed");
        if (!strcmp(src, "audit"))
            src = "parsed";
        const JsonValue *st = json_get(v, "start"), *en = json_get(v, "end");
        const char *rule = json_get_str(v, "rule", NULL);
        sqlite3_stmt *ins = a->q[Q_LABEL_RESTORE];
        rc = db_bindf(db, ins, e, "is", study, task);
        if (rc == 0) {
            if (val && val->type == JSON_NUM)
                sqlite3_bind_int64(ins, 3, val->i);
            else
                sqlite3_bind_null(ins, 3);
            sqlite3_bind_text(ins, 4, src, -1, SQLITE_TRANSIENT);
            if (st && st->type == JSON_NUM)
                sqlite3_bind_int64(ins, 5, st->i);
            else
                sqlite3_bind_null(ins, 5);
            if (en && en->type == JSON_NUM)
                sqlite3_bind_int64(ins, 6, en->i);
            else
                sqlite3_bind_null(ins, 6);
            if (rule)
                sqlite3_bind_text(ins, 7, rule, -1, SQLITE_TRANSIENT);
            else
                sqlite3_bind_null(ins, 7);
            rc = step_done(a, ins, e);
        }
    } else {
        rc = db_bindf(db, a->q[Q_LABEL_DEL], e, "is", study, task) ||
             step_done(a, a->q[Q_LABEL_DEL], e) ? -1 : 0;
    }
    json_free(&v);
    free(old);
    return rc;
}

int audit_apply_study(AuditApply *a, int64_t study, int *exclude, FvErr *e)
{
    Db *db = a->db;
    *exclude = 0;
    int64_t has = 0;
    if (db_bindf(db, a->q[Q_HAS], e, "i", study) || db_step(db, a->q[Q_HAS], e) < 0)
        return -1;
    has = sqlite3_column_int64(a->q[Q_HAS], 0);
    sqlite3_reset(a->q[Q_HAS]);
    if (!has)
        return 0;
    a->c.studies++;

    Cur *cur = NULL;
    Sent *sent = NULL;
    int n_cur = 0, cap_cur = 0, n_sent = 0, cap_sent = 0, rc = 0, r;
    if (db_bindf(db, a->q[Q_CUR], e, "i", study))
        return -1;
    while ((r = db_step(db, a->q[Q_CUR], e)) == 1) {
        if (arr_reserve(&cur, &cap_cur, n_cur, sizeof *cur, 16)) {
            rc = err_set(e, FV_ENOMEM, "audit decisions: out of memory");
            break;
        }
        Cur *c = &cur[n_cur++];
        c->kind = col_dup(a->q[Q_CUR], 1);
        c->key = col_dup(a->q[Q_CUR], 2);
        c->val = col_dup(a->q[Q_CUR], 3);
        c->comment = col_dup(a->q[Q_CUR], 6);
        /* What the link was when decided: none, or an annotator's own. */
        const char *old = (const char *)sqlite3_column_text(a->q[Q_CUR], 8);
        c->added = !old || !strcmp(old, "null") || strstr(old, "\"source\":\"audit\"") != NULL;
        if (!c->kind || !c->key || !c->val || !c->comment) {
            rc = err_set(e, FV_ENOMEM, "audit decisions: out of memory");
            break;
        }
    }
    sqlite3_reset(a->q[Q_CUR]);
    if (r < 0)
        rc = -1;
    if (rc == 0 && db_bindf(db, a->q[Q_SENT], e, "i", study))
        rc = -1;
    while (rc == 0 && (r = db_step(db, a->q[Q_SENT], e)) == 1) {
        if (arr_reserve(&sent, &cap_sent, n_sent, sizeof *sent, 32)) {
            rc = err_set(e, FV_ENOMEM, "audit decisions: out of memory");
            break;
        }
        Sent *s = &sent[n_sent++];
        s->id = sqlite3_column_int64(a->q[Q_SENT], 0);
        s->idx = sqlite3_column_int(a->q[Q_SENT], 1);
        const unsigned char *t = sqlite3_column_text(a->q[Q_SENT], 2);
        audit_sentence_sha(t ? (const char *)t : "", s->sha);
    }
    sqlite3_reset(a->q[Q_SENT]);
    if (rc == 0 && r < 0)
        rc = -1;

    /* Start from align's own rows, then lay the current decisions on them. */
    if (rc == 0 &&
        (db_bindf(db, a->q[Q_LINK_RESET], e, "i", study) || step_done(a, a->q[Q_LINK_RESET], e) ||
         db_bindf(db, a->q[Q_LINK_DEL], e, "i", study) || step_done(a, a->q[Q_LINK_DEL], e) ||
         db_bindf(db, a->q[Q_STATUS_DEL], e, "i", study) || step_done(a, a->q[Q_STATUS_DEL], e) ||
         db_bindf(db, a->q[Q_FLAG_DEL], e, "i", study) || step_done(a, a->q[Q_FLAG_DEL], e)))
        rc = -1;

    for (int i = 0; i < n_cur && rc == 0; i++) {
        Cur *c = &cur[i];
        JsonValue *k = NULL;
        FvErr je = {0};
        if (json_parse(c->key, strlen(c->key), &k, &je) || k->type != JSON_OBJ) {
            json_free(&k);
            a->c.stale++;
            continue;
        }
        if (!strcmp(c->kind, "link")) {
            int64_t idx = json_get_int(k, "sent", -1);
            const char *sha = json_get_str(k, "sha", "");
            const char *anat = json_get_str(k, "anatomy", "");
            const Sent *s = NULL;
            for (int j = 0; j < n_sent; j++)
                if (sent[j].idx == idx && !strcmp(sent[j].sha, sha))
                    s = &sent[j];
            int accept = !strcmp(c->val, "accept");
            if (!s || !anat[0] || (!accept && strcmp(c->val, "reject"))) {
                a->c.stale++;
            } else if (db_bindf(db, a->q[Q_LINK_SET], e, "iis", (int64_t)accept, s->id, anat) ||
                       step_done(a, a->q[Q_LINK_SET], e)) {
                rc = -1;
            } else if (sqlite3_changes(db->h) == 0 && accept && c->added &&
                       (db_bindf(db, a->q[Q_LINK_ADD], e, "is", s->id, anat) ||
                        step_done(a, a->q[Q_LINK_ADD], e))) {
                rc = -1;
            } else if (sqlite3_changes(db->h) == 0 && !c->added &&
                       (db_bindf(db, a->q[Q_LINK_VERDICT], e, "isi", s->id, anat, (int64_t)accept) ||
                        step_done(a, a->q[Q_LINK_VERDICT], e))) {
                rc = -1;
            } else {
                a->c.links++;
            }
        } else if (!strcmp(c->kind, "status")) {
            const char *anat = json_get_str(k, "anatomy", "");
            if (!anat[0] || (strcmp(c->val, "normal") && strcmp(c->val, "abnormal") &&
                             strcmp(c->val, "unmentioned")))
                a->c.stale++;
            else if (db_bindf(db, a->q[Q_STATUS_SET], e, "iss", study, anat, c->val) ||
                     step_done(a, a->q[Q_STATUS_SET], e))
                rc = -1;
            else
                a->c.statuses++;
        } else if (!strcmp(c->kind, "label")) {
            const char *task = json_get_str(k, "task", "");
            int v = label_value(c->val);
            if (!task[0] || v == 2)
                a->c.stale++;
            else if (db_bindf(db, a->q[Q_LABEL_SET], e, "isi", study, task, (int64_t)v) ||
                     step_done(a, a->q[Q_LABEL_SET], e))
                rc = -1;
            else
                a->c.labels++;
        } else if (!strcmp(c->kind, "flag")) {
            const char *flag = json_get_str(k, "flag", "");
            char kind[64];
            snprintf(kind, sizeof kind, "audit_%s", flag);
            if (!flag[0] || strlen(flag) > 40) {
                a->c.stale++;
            } else if (!strcmp(c->val, "1")) {
                if (db_bindf(db, a->q[Q_FLAG_ADD], e, "iss", study, kind, c->comment) ||
                    step_done(a, a->q[Q_FLAG_ADD], e))
                    rc = -1;
                a->c.flags++;
                if (!strcmp(flag, "wrong_series") || !strcmp(flag, "bad_mask") ||
                    !strcmp(flag, "not_ct"))
                    *exclude = 1;
            }
        }
        json_free(&k);
    }

    /* Labels set by decisions that were all taken back. */
    char **undone = NULL;
    int n_undone = 0, cap_undone = 0;
    if (rc == 0 && db_bindf(db, a->q[Q_LABEL_AUDIT], e, "i", study))
        rc = -1;
    while (rc == 0 && (r = db_step(db, a->q[Q_LABEL_AUDIT], e)) == 1) {
        const char *task = (const char *)sqlite3_column_text(a->q[Q_LABEL_AUDIT], 0);
        int live = 0;
        for (int i = 0; i < n_cur && !live && task; i++) {
            if (strcmp(cur[i].kind, "label"))
                continue;
            JsonValue *k = NULL;
            FvErr je = {0};
            if (json_parse(cur[i].key, strlen(cur[i].key), &k, &je) == 0)
                live = !strcmp(json_get_str(k, "task", ""), task);
            json_free(&k);
        }
        if (live || !task)
            continue;
        if (arr_reserve(&undone, &cap_undone, n_undone, sizeof *undone, 8) ||
            !(undone[n_undone] = strdup(task))) {
            rc = err_set(e, FV_ENOMEM, "audit decisions: out of memory");
            break;
        }
        n_undone++;
    }
    sqlite3_reset(a->q[Q_LABEL_AUDIT]);
    if (rc == 0 && r < 0)
        rc = -1;
    for (int i = 0; i < n_undone && rc == 0; i++)
        rc = label_restore(a, study, undone[i], e);
    for (int i = 0; i < n_undone; i++)
        free(undone[i]);
    free(undone);
    a->c.excluded += *exclude;
    cur_free(cur, n_cur);
    free(sent);
    return rc ? err_prefix(e, "study %lld: audit decisions", (long long)study) : 0;
}
