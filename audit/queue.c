#include "queue.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deid.h"
#include "json.h"
#include "rng.h"

static const char *const order_names[] = {"flags", "weakest", "model", "random"};

const char *queue_order_name(QueueOrder o)
{
    return (unsigned)o < 4 ? order_names[o] : "?";
}

int queue_order_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (s && !strcmp(s, order_names[i]))
            return i;
    return -1;
}

static int cmp_desc(const void *a, const void *b)
{
    const StudyScore *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->study_id < y->study_id ? -1 : x->study_id > y->study_id;
}

static int cmp_asc(const void *a, const void *b)
{
    const StudyScore *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? -1 : 1;
    return x->study_id < y->study_id ? -1 : x->study_id > y->study_id;
}

/* Every study (of the split) with its score under the order. */
static int scores_load(Db *db, const QueueSpec *q, StudyScore **out, int *n, FvErr *e)
{
    static const char *const sql[] = {
        [ORD_FLAGS] =
            "SELECT s.id,"
            " (SELECT count(*) FROM flags f WHERE f.study_id = s.id AND f.kind NOT LIKE 'audit\\_%'"
            "  ESCAPE '\\')"
            " + (SELECT count(*) FROM links l JOIN sentences t ON t.id = l.sentence_id"
            "    WHERE t.study_id = s.id AND (l.anatomy = '' OR l.method = 'continuation'))"
            " + (SELECT count(*) FROM (SELECT task FROM findings WHERE study_id = s.id"
            "    GROUP BY task HAVING min(polarity) <> max(polarity)))"
            " FROM studies s WHERE (?1 IS NULL OR s.split = ?1)",
        [ORD_WEAKEST] =
            "SELECT s.id, coalesce((SELECT min(l.confidence) FROM links l JOIN sentences t"
            " ON t.id = l.sentence_id WHERE t.study_id = s.id AND l.anatomy <> ''), 2.0)"
            " FROM studies s WHERE (?1 IS NULL OR s.split = ?1)",
        [ORD_MODEL] = "SELECT s.id, 0 FROM studies s WHERE (?1 IS NULL OR s.split = ?1)",
        [ORD_RANDOM] = "SELECT s.id, 0 FROM studies s WHERE (?1 IS NULL OR s.split = ?1)",
    };
    sqlite3_stmt *st;
    if (db_prepare(db, &st, sql[q->order], e))
        return -1;
    int rc = db_bindf(db, st, e, "s", q->split) ? -1 : 0, r = 0, cap = 0;
    while (rc == 0 && (r = db_step(db, st, e)) == 1) {
        if (arr_reserve(out, &cap, *n, sizeof **out, 1024)) {
            rc = err_set(e, FV_ENOMEM, "audit queue: out of memory");
            break;
        }
        (*out)[(*n)++] = (StudyScore){sqlite3_column_int64(st, 0), sqlite3_column_double(st, 1)};
    }
    if (r < 0)
        rc = -1;
    sqlite3_finalize(st);
    return rc;
}

int queue_build(Db *db, const QueueSpec *q, QueueCounts *c, FvErr *e)
{
    memset(c, 0, sizeof *c);
    if (q->n_who < 1)
        return err_set(e, FV_EUSAGE, "audit queue: no annotator to assign to (--assign)");
    if (!(q->doubled >= 0 && q->doubled <= 1))
        return err_set(e, FV_EUSAGE, "audit queue: --double %g is outside [0, 1]", q->doubled);
    if (q->doubled > 0 && q->n_who < 2)
        return err_set(e, FV_EUSAGE, "audit queue: --double needs two annotators or more");
    for (int i = 0; i < q->n_who; i++) {
        int64_t ok = 0;
        int found = 0;
        if (db_query_int(db, e, &ok, &found,
                         "SELECT 1 FROM audit_users WHERE name = ? AND removed_at IS NULL", "s",
                         q->who[i]))
            return -1;
        if (!found)
            return err_set(e, FV_ENOTFOUND,
                           "audit queue: no active user '%.80s' (fvlm audit user add %.80s)",
                           q->who[i], q->who[i]);
    }
    StudyScore *s = NULL;
    int n = 0;
    if (scores_load(db, q, &s, &n, e))
        return -1;
    Rng rng;
    rng_seed(&rng, q->seed, 0x61756469u);
    if (q->order == ORD_MODEL) {
        /* Studies the model scored, by disagreement; the others are left out. */
        int k = 0;
        for (int i = 0; i < n; i++) {
            int hit = -1;
            for (int j = 0; j < q->n_model && hit < 0; j++)
                if (q->model[j].study_id == s[i].study_id)
                    hit = j;
            if (hit >= 0)
                s[k++] = (StudyScore){s[i].study_id, q->model[hit].score};
        }
        n = k;
        if (n > 1)
            qsort(s, (size_t)n, sizeof *s, cmp_desc);
    } else if (q->order == ORD_RANDOM) {
        for (int i = n - 1; i > 0; i--) {
            int j = (int)rng_below(&rng, (uint64_t)i + 1);
            StudyScore t = s[i];
            s[i] = s[j];
            s[j] = t;
        }
    } else {
        if (n > 1)
            qsort(s, (size_t)n, sizeof *s, q->order == ORD_WEAKEST ? cmp_asc : cmp_desc);
    }
    if (q->limit > 0 && n > q->limit)
        n = (int)q->limit;
    c->studies = n;

    char now[32];
    db_now_iso(now, sizeof now);
    sqlite3_stmt *ins = NULL;
    int rc = db_begin(db, e);
    for (int i = 0; i < q->n_who && rc == 0; i++)
        rc = db_run(db, e, "DELETE FROM audit_queue WHERE who = ?", "s", q->who[i]);
    if (rc == 0)
        rc = db_prepare(db, &ins,
                        "INSERT OR IGNORE INTO audit_queue (who, study_id, pos, ord, score, doubled,"
                        " seed, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        e);
    Rng dbl;
    rng_seed(&dbl, q->seed, 0x646f75626cu);
    for (int i = 0; i < n && rc == 0; i++) {
        int first = i % q->n_who;
        int twice = q->doubled > 0 && rng_uniform(&dbl) < q->doubled;
        for (int k = 0; k <= twice && rc == 0; k++) {
            const char *who = q->who[(first + k) % q->n_who];
            if (db_bindf(db, ins, e, "siisdiis", who, s[i].study_id, (int64_t)i,
                         queue_order_name(q->order), s[i].score, (int64_t)twice,
                         (int64_t)q->seed, now) ||
                db_step(db, ins, e) < 0)
                rc = -1;
            c->assigned++;
        }
        c->doubled += twice;
    }
    sqlite3_finalize(ins);
    if (rc == 0)
        rc = db_commit(db, e);
    else
        db_rollback(db);
    free(s);
    return rc;
}

int queue_json(Db *db, const char *who, Buf *out, FvErr *e)
{
    sqlite3_stmt *st;
    if (db_prepare(db, &st,
                   "SELECT q.study_id, s.study_key, q.pos, q.ord, q.score, q.doubled,"
                   " EXISTS (SELECT 1 FROM audits a WHERE a.study_id = q.study_id AND a.who = q.who"
                   "  AND a.kind = 'done' AND NOT EXISTS (SELECT 1 FROM audits u WHERE u.undoes = a.id)),"
                   " (SELECT count(*) FROM audits a WHERE a.study_id = q.study_id AND a.who = q.who"
                   "  AND a.kind IN ('link', 'status', 'label', 'flag'))"
                   " FROM audit_queue q JOIN studies s ON s.id = q.study_id WHERE q.who = ?"
                   " ORDER BY q.pos LIMIT 5000",
                   e))
        return -1;
    JsonW w;
    jw_init(&w, out, 0);
    jw_arr(&w);
    int rc = db_bindf(db, st, e, "s", who) ? -1 : 0, r = 0;
    while (rc == 0 && (r = db_step(db, st, e)) == 1) {
        jw_obj(&w);
        jw_key(&w, "study_id"); jw_int(&w, sqlite3_column_int64(st, 0));
        jw_key(&w, "study_key"); jw_str(&w, (const char *)sqlite3_column_text(st, 1));
        jw_key(&w, "pos"); jw_int(&w, sqlite3_column_int64(st, 2));
        jw_key(&w, "ord"); jw_str(&w, (const char *)sqlite3_column_text(st, 3));
        jw_key(&w, "score"); jw_num(&w, sqlite3_column_double(st, 4));
        jw_key(&w, "doubled"); jw_bool(&w, sqlite3_column_int(st, 5));
        jw_key(&w, "done"); jw_bool(&w, sqlite3_column_int(st, 6));
        jw_key(&w, "decisions"); jw_int(&w, sqlite3_column_int64(st, 7));
        jw_obj_end(&w);
    }
    if (r < 0)
        rc = -1;
    jw_arr_end(&w);
    sqlite3_finalize(st);
    if (rc == 0 && out->failed)
        rc = err_set(e, FV_ENOMEM, "audit queue: out of memory");
    return rc;
}

int queue_next(Db *db, const char *who, int64_t after, int64_t *study_id, FvErr *e)
{
    int found = 0;
    *study_id = 0;
    if (db_query_int(db, e, study_id, &found,
                     "SELECT q.study_id FROM audit_queue q WHERE q.who = ?1 AND q.pos > ?2"
                     " AND NOT EXISTS (SELECT 1 FROM audits a WHERE a.study_id = q.study_id"
                     "  AND a.who = ?1 AND a.kind = 'done'"
                     "  AND NOT EXISTS (SELECT 1 FROM audits u WHERE u.undoes = a.id))"
                     " ORDER BY q.pos LIMIT 1",
                     "si", who, after))
        return -1;
    if (!found)
        *study_id = 0;
    return 0;
}

static int all_hex(const char *s)
{
    for (; *s; s++)
        if (!isxdigit((unsigned char)*s))
            return 0;
    return 1;
}

int queue_search(Db *db, const char *q, const char *deid_key, Buf *out, FvErr *e)
{
    char term[200];
    size_t n = strlen(q);
    while (n && isspace((unsigned char)q[n - 1]))
        n--;
    while (n && isspace((unsigned char)*q))
        q++, n--;
    if (n == 0 || n >= sizeof term)
        return err_set(e, FV_EUSAGE, "search: type 1 to %zu characters", sizeof term - 1);
    memcpy(term, q, n);
    term[n] = '\0';
    char lower[200];
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)tolower((unsigned char)term[i]);
    /* The original identifiers (accession, archive name, study UID, CT-RATE
     * volume name), by their keyed hashes in study_ids and as study keys
     * (lib/deid.h): the server checked the key's fingerprint at start. */
    DeidMatch *m = NULL;
    int nm = 0, rc = 0;
    if (deid_key && deid_study_lookup(db, deid_key, term, &m, &nm, e))
        rc = -1;
    sqlite3_stmt *st = NULL;
    if (rc == 0 &&
        db_prepare(db, &st,
                   "SELECT id, study_key, 'id' FROM studies WHERE ?1 GLOB '[0-9]*'"
                   "  AND ?1 NOT GLOB '*[^0-9]*' AND id = CAST(?1 AS INTEGER)"
                   " UNION SELECT id, study_key, 'key' FROM studies WHERE length(?2) >= 8"
                   "  AND substr(study_key, 1, length(?2)) = ?2"
                   " ORDER BY 1 LIMIT 50",
                   e))
        rc = -1;
    if (rc == 0 && db_bindf(db, st, e, "ss", term, all_hex(lower) ? lower : ""))
        rc = -1;
    JsonW w;
    jw_init(&w, out, 0);
    jw_arr(&w);
    int r = 0, rows = 0;
    while (rc == 0 && (r = db_step(db, st, e)) == 1) {
        jw_obj(&w);
        jw_key(&w, "study_id"); jw_int(&w, sqlite3_column_int64(st, 0));
        jw_key(&w, "study_key"); jw_str(&w, (const char *)sqlite3_column_text(st, 1));
        jw_key(&w, "matched"); jw_str(&w, (const char *)sqlite3_column_text(st, 2));
        jw_obj_end(&w);
        rows++;
    }
    if (r < 0)
        rc = -1;
    /* matched "accession" for any original identifier; "as" says which
     * kinds it matched (accession, study_uid, source, study). */
    for (int k = 0; rc == 0 && k < nm && rows < 50; k++, rows++) {
        jw_obj(&w);
        jw_key(&w, "study_id"); jw_int(&w, m[k].study_id);
        jw_key(&w, "study_key"); jw_str(&w, m[k].study_key);
        jw_key(&w, "matched"); jw_str(&w, "accession");
        jw_key(&w, "as"); jw_str(&w, m[k].matched);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    sqlite3_finalize(st);
    free(m);
    /* The typed accession must not outlive the request. */
    explicit_bzero(term, sizeof term);
    explicit_bzero(lower, sizeof lower);
    return rc;
}
