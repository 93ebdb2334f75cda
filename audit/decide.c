#include "decide.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts.h"
#include "audit_apply.h"
#include "json.h"
#include "utf8.h"

const char *const decide_flags[] = {"phi_seen", "wrong_series", "bad_mask", "not_ct"};
const int decide_n_flags = 4;

static int one_of(const char *v, const char *const *set, int n)
{
    for (int i = 0; i < n; i++)
        if (v && !strcmp(v, set[i]))
            return 1;
    return 0;
}

static void put_col(JsonW *w, sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_NULL: jw_null(w); break;
    case SQLITE_INTEGER: jw_int(w, sqlite3_column_int64(st, i)); break;
    case SQLITE_FLOAT: jw_num(w, sqlite3_column_double(st, i)); break;
    default: jw_str(w, (const char *)sqlite3_column_text(st, i)); break;
    }
}

/* The item's current row as a JSON object of the named columns, or "null"
 * when there is none. sql takes the parameters of fmt. */
static int old_row(Db *db, Buf *out, const char *const *cols, int ncol, FvErr *e, const char *sql,
                   const char *fmt, ...)
{
    sqlite3_stmt *st;
    if (db_prepare(db, &st, sql, e))
        return -1;
    va_list ap;
    va_start(ap, fmt);
    /* db_bindf has no va_list form: the decisions bind at most two values. */
    const char *s1 = NULL, *s2 = NULL;
    int64_t i1 = 0;
    int rc = 0;
    if (!strcmp(fmt, "is")) {
        i1 = va_arg(ap, int64_t);
        s1 = va_arg(ap, const char *);
        rc = db_bindf(db, st, e, "is", i1, s1);
    } else if (!strcmp(fmt, "ss")) {
        s1 = va_arg(ap, const char *);
        s2 = va_arg(ap, const char *);
        rc = db_bindf(db, st, e, "ss", s1, s2);
    } else {
        rc = err_set(e, FV_EINTERNAL, "old_row: format %s", fmt);
    }
    va_end(ap);
    if (rc == 0)
        rc = db_step(db, st, e);
    if (rc == 1) {
        JsonW w;
        jw_init(&w, out, 0);
        jw_obj(&w);
        for (int i = 0; i < ncol; i++) {
            jw_key(&w, cols[i]);
            put_col(&w, st, i);
        }
        jw_obj_end(&w);
        rc = 0;
    } else if (rc == 0) {
        buf_puts(out, "null");
    }
    sqlite3_finalize(st);
    return rc < 0 ? -1 : 0;
}

int decide_record(Db *db, const Ontology *o, const char *who, int role, const Decision *d,
                  int64_t *id, FvErr *e)
{
    static const char *const link_v[] = {"accept", "reject"};
    static const char *const status_v[] = {"normal", "abnormal", "unmentioned"};
    static const char *const label_v[] = {"present", "absent", "uncertain"};
    static const char *const flag_v[] = {"1", "0"};
    int64_t found_id = 0;
    int found = 0;
    if (db_query_int(db, e, &found_id, &found, "SELECT id FROM studies WHERE id = ?", "i",
                     d->study_id))
        return -1;
    if (!found)
        return err_set(e, FV_ENOTFOUND, "study %lld does not exist", (long long)d->study_id);
    if (d->comment && (strlen(d->comment) > 2000 || utf8_count_invalid(d->comment, strlen(d->comment)) != 0))
        return err_set(e, FV_EUSAGE, "comment: at most 2000 bytes of UTF-8");
    const char *kind = d->kind ? d->kind : "";
    Buf key = {0}, old = {0};
    JsonW w;
    jw_init(&w, &key, 0);
    const char *target = NULL;
    int rc = 0;
    if (!strcmp(kind, "link")) {
        target = "links";
        if (!one_of(d->value, link_v, 2))
            rc = err_set(e, FV_EUSAGE, "link decision '%.40s': expected accept or reject",
                         d->value ? d->value : "");
        else if (!d->anatomy || onto_anatomy(o, d->anatomy) < 0)
            rc = err_set(e, FV_EUSAGE, "unknown anatomy '%.80s'", d->anatomy ? d->anatomy : "");
        sqlite3_stmt *st = NULL;
        if (rc == 0 && db_prepare(db, &st, "SELECT idx, text FROM sentences WHERE id = ? AND study_id = ?",
                                  e))
            rc = -1;
        if (rc == 0 && db_bindf(db, st, e, "ii", d->sentence_id, d->study_id))
            rc = -1;
        int r = rc == 0 ? db_step(db, st, e) : -1;
        if (rc == 0 && r == 0)
            rc = err_set(e, FV_ENOTFOUND, "sentence %lld is not one of study %lld",
                         (long long)d->sentence_id, (long long)d->study_id);
        else if (rc == 0 && r < 0)
            rc = -1;
        if (rc == 0) {
            char sha[17];
            const unsigned char *t = sqlite3_column_text(st, 1);
            audit_sentence_sha(t ? (const char *)t : "", sha);
            jw_obj(&w);
            jw_key(&w, "sent"); jw_int(&w, sqlite3_column_int64(st, 0));
            jw_key(&w, "sha"); jw_str(&w, sha);
            jw_key(&w, "anatomy"); jw_str(&w, d->anatomy);
            jw_obj_end(&w);
            static const char *const cols[] = {"method", "source", "accepted", "rule"};
            char sid[32];
            snprintf(sid, sizeof sid, "%lld", (long long)d->sentence_id);
            rc = old_row(db, &old, cols, 4, e,
                         "SELECT method, source, accepted, rule FROM links WHERE sentence_id = ?"
                         " AND anatomy = ?", "ss", sid, d->anatomy);
        }
        sqlite3_finalize(st);
    } else if (!strcmp(kind, "status")) {
        target = "anatomy_status";
        if (!one_of(d->value, status_v, 3))
            rc = err_set(e, FV_EUSAGE, "status '%.40s': expected normal, abnormal or unmentioned",
                         d->value ? d->value : "");
        else if (!d->anatomy || onto_anatomy(o, d->anatomy) < 0)
            rc = err_set(e, FV_EUSAGE, "unknown anatomy '%.80s'", d->anatomy ? d->anatomy : "");
        if (rc == 0) {
            jw_obj(&w);
            jw_key(&w, "anatomy"); jw_str(&w, d->anatomy);
            jw_obj_end(&w);
            static const char *const cols[] = {"status", "source"};
            rc = old_row(db, &old, cols, 2, e,
                         "SELECT status, source FROM anatomy_status WHERE study_id = ? AND anatomy = ?",
                         "is", d->study_id, d->anatomy);
        }
    } else if (!strcmp(kind, "label")) {
        target = "labels";
        if (!one_of(d->value, label_v, 3))
            rc = err_set(e, FV_EUSAGE, "label '%.40s': expected present, absent or uncertain",
                         d->value ? d->value : "");
        else if (!d->task || onto_finding(o, d->task) < 0)
            rc = err_set(e, FV_EUSAGE, "unknown task '%.80s'", d->task ? d->task : "");
        if (rc == 0) {
            jw_obj(&w);
            jw_key(&w, "task"); jw_str(&w, d->task);
            jw_obj_end(&w);
            static const char *const cols[] = {"value", "source", "rule", "start", "end"};
            rc = old_row(db, &old, cols, 5, e,
                         "SELECT value, source, rule, start, end FROM labels WHERE study_id = ?"
                         " AND task = ?", "is", d->study_id, d->task);
        }
    } else if (!strcmp(kind, "flag")) {
        target = "flags";
        if (!one_of(d->value, flag_v, 2))
            rc = err_set(e, FV_EUSAGE, "flag value '%.40s': expected 1 (set) or 0 (clear)",
                         d->value ? d->value : "");
        else if (!one_of(d->flag, decide_flags, decide_n_flags))
            rc = err_set(e, FV_EUSAGE,
                         "flag '%.40s': expected phi_seen, wrong_series, bad_mask or not_ct",
                         d->flag ? d->flag : "");
        if (rc == 0) {
            jw_obj(&w);
            jw_key(&w, "flag"); jw_str(&w, d->flag);
            jw_obj_end(&w);
            char fk[64];
            snprintf(fk, sizeof fk, "audit_%s", d->flag);
            static const char *const cols[] = {"detail"};
            rc = old_row(db, &old, cols, 1, e,
                         "SELECT detail FROM flags WHERE study_id = ? AND kind = ?", "is",
                         d->study_id, fk);
        }
    } else if (!strcmp(kind, "done")) {
        /* The study was reviewed whole: links and labels not decided on
         * stand as correct (what precision from the random sample counts). */
        target = "studies";
        if (!d->value || strcmp(d->value, "1"))
            rc = err_set(e, FV_EUSAGE, "done: the value is 1");
        buf_puts(&key, "{}");
        buf_puts(&old, "null");
    } else {
        rc = err_set(e, FV_EUSAGE,
                     "decision kind '%.40s': expected link, status, label, flag or done", kind);
    }
    if (rc == 0 && (key.failed || old.failed))
        rc = err_set(e, FV_ENOMEM, "decision: out of memory");
    char now[32];
    db_now_iso(now, sizeof now);
    if (rc == 0 &&
        db_run(db, e,
               "INSERT INTO audits (who, at, target, key, old, new, study_id, kind, comment, role,"
               " queue) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               "ssssssissss", who, now, target, key.data, old.data, d->value, d->study_id, kind,
               d->comment && d->comment[0] ? d->comment : NULL, acc_role_name(role), d->queue))
        rc = -1;
    if (rc == 0 && id)
        *id = db_last_id(db);
    buf_free(&key);
    buf_free(&old);
    return rc;
}

int decide_undo(Db *db, const char *who, int role, int64_t *study_id, FvErr *e)
{
    sqlite3_stmt *st;
    if (db_prepare(db, &st,
                   "SELECT id, study_id, target, key, old, new FROM audits a WHERE who = ?"
                   " AND kind IN ('link', 'status', 'label', 'flag', 'done')"
                   " AND NOT EXISTS (SELECT 1 FROM audits u WHERE u.undoes = a.id AND u.kind = 'undo')"
                   " ORDER BY id DESC LIMIT 1",
                   e))
        return -1;
    int rc = db_bindf(db, st, e, "s", who) ? -1 : db_step(db, st, e);
    if (rc == 0)
        rc = err_set(e, FV_ENOTFOUND, "%s has no decision left to undo", who);
    else if (rc == 1) {
        char now[32];
        db_now_iso(now, sizeof now);
        int64_t id = sqlite3_column_int64(st, 0);
        *study_id = sqlite3_column_int64(st, 1);
        /* The undo row's old is what the decision set, its new what it replaced. */
        rc = db_run(db, e,
                    "INSERT INTO audits (who, at, target, key, old, new, study_id, kind, undoes, role)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, 'undo', ?, ?)",
                    "ssssssiis", who, now, (const char *)sqlite3_column_text(st, 2),
                    (const char *)sqlite3_column_text(st, 3),
                    (const char *)sqlite3_column_text(st, 5),
                    (const char *)sqlite3_column_text(st, 4), *study_id, id, acc_role_name(role));
    }
    sqlite3_finalize(st);
    return rc < 0 ? -1 : 0;
}

int decide_realign(const Realign *r, int64_t study_id, FvErr *e)
{
    AlignOptions opt = *r->opt;
    opt.studies = &study_id;
    opt.n_studies = 1;
    AlignCounts c = {0};
    if (align_run(r->db, r->run, r->o, r->meta, &opt, &c, e))
        return err_prefix(e, "re-aligning study %lld", (long long)study_id);
    return 0;
}
