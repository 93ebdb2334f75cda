#include "study_page.h"

#include <stdio.h>
#include <string.h>

#include "audit_apply.h"
#include "decide.h"
#include "json.h"

/* Writes every row of sql (one parameter, or two with who) as an object
 * keyed by the column names; columns named "key" hold JSON and are written
 * as is. */
static int rows(Db *db, JsonW *w, const char *name, const char *sql, int64_t id, const char *who,
                FvErr *e)
{
    sqlite3_stmt *st;
    if (db_prepare(db, &st, sql, e))
        return err_prefix(e, "study page: %s", name);
    int rc = who ? db_bindf(db, st, e, "is", id, who) : db_bindf(db, st, e, "i", id);
    jw_key(w, name);
    jw_arr(w);
    int r = 0, nc = sqlite3_column_count(st);
    while (rc == 0 && (r = db_step(db, st, e)) == 1) {
        jw_obj(w);
        for (int i = 0; i < nc; i++) {
            const char *col = sqlite3_column_name(st, i);
            jw_key(w, col);
            switch (sqlite3_column_type(st, i)) {
            case SQLITE_NULL: jw_null(w); break;
            case SQLITE_INTEGER: jw_int(w, sqlite3_column_int64(st, i)); break;
            case SQLITE_FLOAT: jw_num(w, sqlite3_column_double(st, i)); break;
            default: {
                const char *t = (const char *)sqlite3_column_text(st, i);
                if (!strcmp(col, "key") && t && t[0] == '{')
                    jw_raw(w, t);
                else
                    jw_str(w, t);
            }
            }
        }
        jw_obj_end(w);
    }
    jw_arr_end(w);
    if (r < 0)
        rc = -1;
    sqlite3_finalize(st);
    return rc;
}

/* Current link decisions whose sentence is gone or changed (a re-parse
 * split or worded the report differently): align does not apply them, the
 * page asks for them again. */
static int stale_json(Db *db, int64_t id, JsonW *w, FvErr *e)
{
    sqlite3_stmt *cur = NULL, *sent = NULL;
    int rc = db_prepare(db, &cur, audit_current_sql, e) ||
             db_prepare(db, &sent, "SELECT text FROM sentences WHERE study_id = ? AND idx = ?", e)
                 ? -1 : db_bindf(db, cur, e, "i", id);
    jw_key(w, "stale");
    jw_arr(w);
    int r = 0;
    while (rc == 0 && (r = db_step(db, cur, e)) == 1) {
        const char *kind = (const char *)sqlite3_column_text(cur, 1);
        const char *key = (const char *)sqlite3_column_text(cur, 2);
        if (!kind || strcmp(kind, "link") || !key)
            continue;
        JsonValue *k = NULL;
        FvErr je = {0};
        if (json_parse(key, strlen(key), &k, &je))
            continue;
        int64_t idx = json_get_int(k, "sent", -1);
        char want[17], have[17] = "";
        snprintf(want, sizeof want, "%s", json_get_str(k, "sha", ""));
        json_free(&k);
        if (db_bindf(db, sent, e, "ii", id, idx) || (r = db_step(db, sent, e)) < 0) {
            rc = -1;
            break;
        }
        if (r == 1) {
            const unsigned char *t = sqlite3_column_text(sent, 0);
            audit_sentence_sha(t ? (const char *)t : "", have);
        }
        sqlite3_reset(sent);
        if (!strcmp(want, have))
            continue;
        jw_obj(w);
        jw_key(w, "id"); jw_int(w, sqlite3_column_int64(cur, 0));
        jw_key(w, "key"); jw_raw(w, key);
        jw_key(w, "new"); jw_str(w, (const char *)sqlite3_column_text(cur, 3));
        jw_key(w, "who"); jw_str(w, (const char *)sqlite3_column_text(cur, 4));
        jw_obj_end(w);
    }
    if (r < 0)
        rc = -1;
    jw_arr_end(w);
    sqlite3_finalize(cur);
    sqlite3_finalize(sent);
    return rc;
}

int study_page_json(Db *db, const Ontology *o, int64_t id, const char *who, Buf *out, FvErr *e)
{
    (void)o;
    int64_t x = 0;
    int found = 0;
    if (db_query_int(db, e, &x, &found, "SELECT id FROM studies WHERE id = ?", "i", id))
        return -1;
    if (!found)
        return err_set(e, FV_ENOTFOUND, "study %lld does not exist", (long long)id);
    JsonW w;
    jw_init(&w, out, 0);
    jw_obj(&w);
    sqlite3_stmt *st = NULL;
    int rc = db_prepare(db, &st,
                        "SELECT s.id, s.study_key, s.dataset, s.split, r.language, r.n_phi,"
                        " v.nz, v.ny, v.nx, v.sz, v.sy, v.sx, m.id IS NOT NULL"
                        " FROM studies s LEFT JOIN reports r ON r.study_id = s.id"
                        " LEFT JOIN volumes v ON v.study_id = s.id"
                        " LEFT JOIN masks m ON m.study_id = s.id WHERE s.id = ?",
                        e);
    if (rc == 0 && (db_bindf(db, st, e, "i", id) || db_step(db, st, e) != 1))
        rc = -1;
    if (rc == 0) {
        jw_key(&w, "study");
        jw_obj(&w);
        jw_key(&w, "id"); jw_int(&w, sqlite3_column_int64(st, 0));
        jw_key(&w, "study_key"); jw_str(&w, (const char *)sqlite3_column_text(st, 1));
        jw_key(&w, "dataset"); jw_str(&w, (const char *)sqlite3_column_text(st, 2));
        jw_key(&w, "split"); jw_str(&w, (const char *)sqlite3_column_text(st, 3));
        jw_key(&w, "language"); jw_str(&w, (const char *)sqlite3_column_text(st, 4));
        jw_key(&w, "n_phi"); jw_int(&w, sqlite3_column_int64(st, 5));
        jw_obj_end(&w);
        jw_key(&w, "volume");
        if (sqlite3_column_type(st, 6) == SQLITE_NULL) {
            jw_null(&w);
        } else {
            static const char *const k[] = {"nz", "ny", "nx", "sz", "sy", "sx"};
            jw_obj(&w);
            for (int i = 0; i < 3; i++) {
                jw_key(&w, k[i]);
                jw_int(&w, sqlite3_column_int64(st, 6 + i));
            }
            for (int i = 3; i < 6; i++) {
                jw_key(&w, k[i]);
                jw_num(&w, sqlite3_column_double(st, 6 + i));
            }
            jw_key(&w, "mask"); jw_bool(&w, sqlite3_column_int(st, 12));
            jw_obj_end(&w);
        }
    }
    sqlite3_finalize(st);
    /* The rule align ran under (its last run's recorded config). */
    st = NULL;
    if (rc == 0 &&
        db_prepare(db, &st,
                   "SELECT coalesce(json_extract(config, '$.\"align.status_rule\"'),"
                   " 'impression') FROM runs WHERE stage = 'align' AND json_valid(config)"
                   " ORDER BY id DESC LIMIT 1",
                   e))
        rc = -1;
    if (rc == 0) {
        int r = db_step(db, st, e);
        if (r < 0)
            rc = -1;
        jw_key(&w, "status_rule");
        jw_str(&w, r == 1 ? (const char *)sqlite3_column_text(st, 0) : "impression");
    }
    sqlite3_finalize(st);
    struct { const char *name, *sql; int with_who; } q[] = {
        {"sentences", "SELECT id, idx, section, start, end, text FROM sentences WHERE study_id = ?"
                      " ORDER BY idx, id", 0},
        {"links", "SELECT l.sentence_id, l.anatomy, l.method, l.confidence, l.source, l.accepted,"
                  " l.term, l.start, l.end, l.rule, l.continues FROM links l"
                  " JOIN sentences s ON s.id = l.sentence_id WHERE s.study_id = ?"
                  " ORDER BY s.idx, l.anatomy", 0},
        {"findings", "SELECT sentence_id, task, anatomy, polarity, term, rule FROM findings"
                     " WHERE study_id = ? ORDER BY id", 0},
        {"statuses", "SELECT anatomy, status, source FROM anatomy_status WHERE study_id = ?"
                     " ORDER BY anatomy", 0},
        {"regions", "SELECT anatomy, voxels, volume_ml, z0, z1, y0, y1, x0, x1, whole FROM regions"
                    " WHERE study_id = ? ORDER BY anatomy", 0},
        {"samples", "SELECT anatomy, status, text, diseases FROM samples WHERE study_id = ?"
                    " ORDER BY anatomy", 0},
        {"labels", "SELECT task, value, source, rule FROM labels WHERE study_id = ? ORDER BY task", 0},
        {"flags", "SELECT anatomy, kind, detail FROM flags WHERE study_id = ? ORDER BY id", 0},
        {"decisions", audit_current_sql, 0},
        {"mine", "SELECT id, kind, key, old, new, comment, at, undoes FROM audits"
                 " WHERE study_id = ? AND who = ? ORDER BY id DESC LIMIT 50", 1},
        /* Items annotators disagree on (each one's newest decision); a
         * lead's decision settles them. */
        {"conflicts", "WITH live AS (SELECT a.* FROM audits a WHERE a.study_id = ?"
                      " AND a.kind IN ('link', 'status', 'label', 'flag') AND NOT EXISTS"
                      " (SELECT 1 FROM audits u WHERE u.undoes = a.id AND u.kind = 'undo')),"
                      " per AS (SELECT kind, key, who, role, new, row_number() OVER (PARTITION BY"
                      " kind, key, who ORDER BY id DESC) AS rn FROM live)"
                      " SELECT kind, key, group_concat(who || ': ' || new, '; ') AS votes,"
                      " max(role = 'lead') AS settled FROM per WHERE rn = 1 GROUP BY kind, key"
                      " HAVING count(DISTINCT new) > 1", 0},
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0] && rc == 0; i++)
        rc = rows(db, &w, q[i].name, q[i].sql, id, q[i].with_who ? who : NULL, e);
    if (rc == 0)
        rc = stale_json(db, id, &w, e);
    jw_obj_end(&w);
    if (rc == 0 && out->failed)
        rc = err_set(e, FV_ENOMEM, "study page: out of memory");
    return rc;
}

void ontology_json(const Ontology *o, Buf *out)
{
    JsonW w;
    jw_init(&w, out, 0);
    jw_obj(&w);
    jw_key(&w, "anatomies");
    jw_arr(&w);
    for (int a = 0; a < o->n_anat; a++) {
        jw_obj(&w);
        jw_key(&w, "id"); jw_str(&w, o->anat[a].id);
        jw_key(&w, "en"); jw_str(&w, o->anat[a].en);
        jw_key(&w, "zh"); jw_str(&w, o->anat[a].zh);
        jw_key(&w, "main"); jw_bool(&w, o->anat[a].main);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_key(&w, "tasks");
    jw_arr(&w);
    for (int k = 0; k < o->n_find; k++) {
        jw_obj(&w);
        jw_key(&w, "id"); jw_str(&w, o->find[k].id);
        jw_key(&w, "anatomy"); jw_str(&w, o->anat[o->find[k].anatomy].id);
        jw_key(&w, "en"); jw_str(&w, o->find[k].en);
        jw_key(&w, "zh"); jw_str(&w, o->find[k].zh);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_key(&w, "flags");
    jw_arr(&w);
    for (int i = 0; i < decide_n_flags; i++)
        jw_str(&w, decide_flags[i]);
    jw_arr_end(&w);
    jw_obj_end(&w);
}
