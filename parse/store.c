#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* ------------------------------------------------------------------------ */
/* Multi-row inserts: one statement per power of two up to 32 rows, so a     */
/* report's rows go in a handful of statements instead of one per row.      */
/* ------------------------------------------------------------------------ */

static int mi_prepare(Db *db, MultiInsert *m, const char *head, const char *tail, int ncol,
                      FvErr *e)
{
    m->ncol = ncol;
    for (int k = 0; k < MI_SIZES; k++) {
        Buf b = {0};
        buf_puts(&b, head);
        for (int r = 0; r < (1 << k); r++) {
            buf_puts(&b, r ? ",(" : "(");
            for (int c = 0; c < ncol; c++)
                buf_puts(&b, c ? ",?" : "?");
            buf_putc(&b, ')');
        }
        buf_puts(&b, tail);
        int rc = b.failed ? err_set(e, FV_ENOMEM, "out of memory") : db_prepare(db, &m->st[k], b.data, e);
        buf_free(&b);
        if (rc)
            return -1;
    }
    return 0;
}

static void mi_finalize(MultiInsert *m)
{
    for (int k = 0; k < MI_SIZES; k++) {
        sqlite3_finalize(m->st[k]);
        m->st[k] = NULL;
    }
}

typedef int (*BindRow)(sqlite3_stmt *st, int p, int row, const void *ctx);

/* Inserts rows [0, n) through bind(st, first parameter, row, ctx). */
static int mi_run(Db *db, MultiInsert *m, int n, BindRow bind, const void *ctx, FvErr *e)
{
    int row = 0;
    for (int k = MI_SIZES - 1; k >= 0; k--) {
        int size = 1 << k;
        while (n - row >= size) {
            sqlite3_stmt *st = m->st[k];
            sqlite3_reset(st);
            for (int r = 0; r < size; r++)
                if (bind(st, 1 + r * m->ncol, row + r, ctx) != SQLITE_OK)
                    return err_set(e, FV_EDB, "%s: binding row %d: %s", db->path, row + r,
                                   sqlite3_errmsg(db->h));
            if (db_step(db, st, e) < 0)
                return -1;
            row += size;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */

int pstore_open(ParseStore *s, Db *db, FvErr *e)
{
    memset(s, 0, sizeof *s);
    s->db = db;
    /* see store.h: enforcement can only change outside a transaction */
    if (sqlite3_get_autocommit(db->h)) {
        int on = 0;
        if (sqlite3_db_config(db->h, SQLITE_DBCONFIG_ENABLE_FKEY, -1, &on) != SQLITE_OK ||
            (on && sqlite3_db_config(db->h, SQLITE_DBCONFIG_ENABLE_FKEY, 0, NULL) != SQLITE_OK))
            return err_set(e, FV_EDB, "%s: turning foreign keys off: %s", db->path,
                           sqlite3_errmsg(db->h));
        s->fk_restore = on;
        /* Each report's savepoint keeps the pages it changes in a
         * sub-journal; in memory (a report changes a few pages) rather than in
         * a temporary file, which costs a fifth of the write time. */
        int64_t ts = 0;
        int found = 0;
        if (db_query_int(db, e, &ts, &found, "PRAGMA temp_store", "") ||
            (ts != 2 && db_exec(db, "PRAGMA temp_store = MEMORY", e)))
            return -1;
        s->temp_restore = found && ts != 2 ? (int)ts + 1 : 0;
    }
#define IN_REPORT "(SELECT id FROM sentences WHERE report_id = ?)"
    struct { sqlite3_stmt **st; const char *sql; } q[] = {
        /* Links an annotator wrote by hand (no audits rows): a re-parse
         * would lose them. Decisions made in the workbench live in audits,
         * keyed by sentence position and text, and align lays them on the
         * new sentences (align/audit_apply.h), so those reports re-parse. */
        {&s->audited, "SELECT count(*) FROM links WHERE source = 'audit' AND sentence_id IN"
                      " (SELECT id FROM sentences WHERE report_id = ?1) AND NOT EXISTS (SELECT 1"
                      " FROM audits a JOIN reports r ON r.study_id = a.study_id WHERE r.id = ?1"
                      " AND a.kind IS NOT NULL)"},
        {&s->del_links, "DELETE FROM links WHERE sentence_id IN " IN_REPORT},
        {&s->del_labels, "DELETE FROM labels WHERE study_id = ? AND source = 'parsed'"},
        {&s->unlink_labels, "UPDATE labels SET sentence_id = NULL WHERE sentence_id IN " IN_REPORT},
        {&s->del_find, "DELETE FROM findings WHERE sentence_id IN " IN_REPORT},
        {&s->del_ment, "DELETE FROM mentions WHERE sentence_id IN " IN_REPORT},
        {&s->del_sent, "DELETE FROM sentences WHERE report_id = ?"},
        {&s->max_sent, "SELECT coalesce(max(id), 0) FROM sentences"},
        {&s->mark, "UPDATE reports SET parsed_run = ? WHERE id = ?"},
        {&s->sp_begin, "SAVEPOINT pstore_report"},
        {&s->sp_release, "RELEASE pstore_report"},
        {&s->sp_rollback, "ROLLBACK TO pstore_report"},
    };
#undef IN_REPORT
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        if (db_prepare(db, q[i].st, q[i].sql, e)) {
            pstore_close(s);
            return -1;
        }
    }
    if (mi_prepare(db, &s->ins_sent,
                   "INSERT INTO sentences (id, report_id, study_id, idx, section, start, end, text,"
                   " norm) VALUES ", "", 9, e) ||
        mi_prepare(db, &s->ins_ment,
                   "INSERT INTO mentions (sentence_id, anatomy, start, end, term, rule) VALUES ", "",
                   6, e) ||
        mi_prepare(db, &s->ins_find,
                   "INSERT INTO findings (sentence_id, study_id, task, anatomy, polarity, start, end,"
                   " term, rule) VALUES ", "", 9, e) ||
        /* a conflict left after deleting the study's parsed rows is an audit or
         * gold label: it stays */
        mi_prepare(db, &s->ins_label,
                   "INSERT INTO labels (study_id, task, value, source, sentence_id, start, end, rule,"
                   " run_id) VALUES ", " ON CONFLICT (study_id, task) DO NOTHING", 9, e)) {
        pstore_close(s);
        return -1;
    }
    return 0;
}

void pstore_close(ParseStore *s)
{
    sqlite3_stmt **all[] = {&s->audited, &s->del_links, &s->del_labels, &s->unlink_labels,
                            &s->del_find, &s->del_ment, &s->del_sent, &s->max_sent, &s->mark,
                            &s->sp_begin, &s->sp_release, &s->sp_rollback};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        sqlite3_finalize(*all[i]);
        *all[i] = NULL;
    }
    mi_finalize(&s->ins_sent);
    mi_finalize(&s->ins_ment);
    mi_finalize(&s->ins_find);
    mi_finalize(&s->ins_label);
    free(s->label_task);
    s->label_task = NULL;
    s->cap_label = 0;
    /* a caller that left a transaction open keeps enforcement off: it cannot change there */
    if (s->fk_restore && s->db && sqlite3_get_autocommit(s->db->h) &&
        sqlite3_db_config(s->db->h, SQLITE_DBCONFIG_ENABLE_FKEY, 1, NULL) == SQLITE_OK)
        s->fk_restore = 0;
    if (s->temp_restore && s->db && sqlite3_get_autocommit(s->db->h)) {
        char sql[64];
        FvErr e = {0};
        snprintf(sql, sizeof sql, "PRAGMA temp_store = %d", s->temp_restore - 1);
        if (db_exec(s->db, sql, &e) == 0)
            s->temp_restore = 0;
    }
}

static int run_stmt(ParseStore *s, sqlite3_stmt *st, FvErr *e)
{
    int rc = db_step(s->db, st, e);
    return rc < 0 ? -1 : 0;
}

static int remove_old(ParseStore *s, int64_t report_id, int64_t study_id, FvErr *e)
{
    if (db_bindf(s->db, s->audited, e, "i", report_id))
        return -1;
    int rc = db_step(s->db, s->audited, e);
    if (rc < 0)
        return -1;
    int64_t n = rc ? sqlite3_column_int64(s->audited, 0) : 0;
    sqlite3_reset(s->audited);
    if (n > 0) {
        err_set(e, FV_EUSAGE, "not re-parsed: %lld of its sentence links were audited",
                (long long)n);
        return 1;
    }
    if (db_bindf(s->db, s->del_links, e, "i", report_id) || run_stmt(s, s->del_links, e) ||
        db_bindf(s->db, s->del_labels, e, "i", study_id) || run_stmt(s, s->del_labels, e) ||
        db_bindf(s->db, s->unlink_labels, e, "i", report_id) || run_stmt(s, s->unlink_labels, e) ||
        db_bindf(s->db, s->del_find, e, "i", report_id) || run_stmt(s, s->del_find, e) ||
        db_bindf(s->db, s->del_ment, e, "i", report_id) || run_stmt(s, s->del_ment, e) ||
        db_bindf(s->db, s->del_sent, e, "i", report_id) || run_stmt(s, s->del_sent, e))
        return -1;
    return 0;
}

/* What the row binders need. */
typedef struct Ctx {
    const ParseStore *s;
    const Parser *p;
    const ParseResult *r;
    int64_t report_id, study_id, run_id, first_id;
} Ctx;

static int text_span(sqlite3_stmt *st, int p, const char *base, size_t a, size_t b)
{
    return sqlite3_bind_text(st, p, base + a, (int)(b - a), SQLITE_STATIC);
}

static int bind_sentence(sqlite3_stmt *st, int p, int i, const void *vc)
{
    const Ctx *c = vc;
    const ParseSentence *x = &c->r->sent[i];
    int rc = sqlite3_bind_int64(st, p, c->first_id + i);
    rc |= sqlite3_bind_int64(st, p + 1, c->report_id);
    rc |= sqlite3_bind_int64(st, p + 2, c->study_id);
    rc |= sqlite3_bind_int64(st, p + 3, i);
    rc |= sqlite3_bind_text(st, p + 4, parse_section_name(x->section), -1, SQLITE_STATIC);
    rc |= sqlite3_bind_int64(st, p + 5, (int64_t)x->start);
    rc |= sqlite3_bind_int64(st, p + 6, (int64_t)x->end);
    rc |= text_span(st, p + 7, c->r->norm.orig, x->start, x->end);
    rc |= text_span(st, p + 8, c->r->norm.s, x->nstart, x->nend);
    return rc;
}

static int bind_mention(sqlite3_stmt *st, int p, int i, const void *vc)
{
    const Ctx *c = vc;
    const ParseMention *m = &c->r->ment[i];
    const Ontology *o = c->p->onto;
    int rc = sqlite3_bind_int64(st, p, c->first_id + m->sentence);
    if (m->anatomy >= 0) {
        rc |= sqlite3_bind_text(st, p + 1, o->anat[m->anatomy].id, -1, SQLITE_STATIC);
    } else {
        char name[128];
        parse_mention_name(c->p, m, name, sizeof name);
        rc |= sqlite3_bind_text(st, p + 1, name, -1, SQLITE_TRANSIENT);
    }
    rc |= sqlite3_bind_int64(st, p + 2, (int64_t)m->start);
    rc |= sqlite3_bind_int64(st, p + 3, (int64_t)m->end);
    rc |= text_span(st, p + 4, c->r->norm.orig, m->start, m->end);
    rc |= sqlite3_bind_text(st, p + 5, m->rule, -1, SQLITE_STATIC);
    return rc;
}

static int bind_finding(sqlite3_stmt *st, int p, int i, const void *vc)
{
    const Ctx *c = vc;
    const ParseFinding *f = &c->r->find[i];
    const Finding *task = &c->p->onto->find[f->task];
    int rc = sqlite3_bind_int64(st, p, c->first_id + f->sentence);
    rc |= sqlite3_bind_int64(st, p + 1, c->study_id);
    rc |= sqlite3_bind_text(st, p + 2, task->id, -1, SQLITE_STATIC);
    rc |= sqlite3_bind_text(st, p + 3, c->p->onto->anat[task->anatomy].id, -1, SQLITE_STATIC);
    rc |= sqlite3_bind_int64(st, p + 4, f->polarity);
    rc |= sqlite3_bind_int64(st, p + 5, (int64_t)f->start);
    rc |= sqlite3_bind_int64(st, p + 6, (int64_t)f->end);
    rc |= text_span(st, p + 7, c->r->norm.orig, f->start, f->end);
    rc |= sqlite3_bind_text(st, p + 8, f->rule, -1, SQLITE_STATIC);
    return rc;
}

static int bind_label(sqlite3_stmt *st, int p, int i, const void *vc)
{
    const Ctx *c = vc;
    int t = c->s->label_task[i];
    const ParseFinding *f = &c->r->find[c->r->label_from[t]];
    int rc = sqlite3_bind_int64(st, p, c->study_id);
    rc |= sqlite3_bind_text(st, p + 1, c->p->onto->find[t].id, -1, SQLITE_STATIC);
    rc |= sqlite3_bind_int64(st, p + 2, c->r->label[t]);
    rc |= sqlite3_bind_text(st, p + 3, "parsed", -1, SQLITE_STATIC);
    rc |= sqlite3_bind_int64(st, p + 4, c->first_id + f->sentence);
    rc |= sqlite3_bind_int64(st, p + 5, (int64_t)f->start);
    rc |= sqlite3_bind_int64(st, p + 6, (int64_t)f->end);
    rc |= sqlite3_bind_text(st, p + 7, f->rule, -1, SQLITE_STATIC);
    rc |= sqlite3_bind_int64(st, p + 8, c->run_id);
    return rc;
}

static int store_rows(ParseStore *s, const Parser *p, const ParseResult *r, int64_t report_id,
                      int64_t study_id, int64_t run_id, int reparse, FvErr *e)
{
    Db *db = s->db;
    if (reparse) {
        int rc = remove_old(s, report_id, study_id, e);
        if (rc)
            return rc;
    }
    /* Sentence ids are given explicitly (the caller holds the write lock), so
     * mentions and findings can name them without a round trip per row. */
    int rc = db_step(db, s->max_sent, e);
    int64_t max_id = rc == 1 ? sqlite3_column_int64(s->max_sent, 0) : 0;
    sqlite3_reset(s->max_sent);
    if (rc < 0)
        return err_prefix(e, "report %lld", (long long)report_id);
    if (r->ntasks > s->cap_label) {
        int *lt = realloc(s->label_task, (size_t)r->ntasks * sizeof *lt);
        if (!lt)
            return err_set(e, FV_ENOMEM, "storing report %lld: out of memory", (long long)report_id);
        s->label_task = lt;
        s->cap_label = r->ntasks;
    }
    int nl = 0;
    for (int t = 0; t < r->ntasks; t++)
        if (r->label[t] != PARSE_UNMENTIONED)
            s->label_task[nl++] = t;
    Ctx c = {s, p, r, report_id, study_id, run_id, max_id + 1};
    if (mi_run(db, &s->ins_sent, r->nsent, bind_sentence, &c, e) ||
        mi_run(db, &s->ins_ment, r->nment, bind_mention, &c, e) ||
        mi_run(db, &s->ins_find, r->nfind, bind_finding, &c, e) ||
        mi_run(db, &s->ins_label, nl, bind_label, &c, e))
        return err_prefix(e, "report %lld", (long long)report_id);
    if (db_bindf(db, s->mark, e, "ii", run_id, report_id) || run_stmt(s, s->mark, e))
        return err_prefix(e, "report %lld", (long long)report_id);
    s->n_sent += r->nsent;
    s->n_ment += r->nment;
    s->n_find += r->nfind;
    s->n_label += nl;
    return 0;
}

int pstore_report(ParseStore *s, const Parser *p, const ParseResult *r, int64_t report_id,
                  int64_t study_id, int64_t run_id, int reparse, FvErr *e)
{
    if (run_stmt(s, s->sp_begin, e))
        return err_prefix(e, "report %lld", (long long)report_id);
    int rc = store_rows(s, p, r, report_id, study_id, run_id, reparse, e);
    if (rc != 0) {
        /* the error in e stays; the rollback's own failure is the worse one */
        FvErr e2 = {0};
        if (run_stmt(s, s->sp_rollback, &e2) || run_stmt(s, s->sp_release, &e2)) {
            *e = e2;
            return -1;
        }
        return rc;
    }
    if (run_stmt(s, s->sp_release, e))
        return err_prefix(e, "report %lld", (long long)report_id);
    return 0;
}
