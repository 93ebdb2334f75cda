#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pstore_open(ParseStore *s, Db *db, FvErr *e)
{
    memset(s, 0, sizeof *s);
    s->db = db;
#define IN_REPORT "(SELECT id FROM sentences WHERE report_id = ?)"
    struct { sqlite3_stmt **st; const char *sql; } q[] = {
        {&s->audited, "SELECT count(*) FROM links WHERE source = 'audit' AND sentence_id IN " IN_REPORT},
        {&s->del_links, "DELETE FROM links WHERE sentence_id IN " IN_REPORT},
        {&s->del_labels, "DELETE FROM labels WHERE study_id = ? AND source = 'parsed'"},
        {&s->unlink_labels, "UPDATE labels SET sentence_id = NULL WHERE sentence_id IN " IN_REPORT},
        {&s->del_find, "DELETE FROM findings WHERE sentence_id IN " IN_REPORT},
        {&s->del_ment, "DELETE FROM mentions WHERE sentence_id IN " IN_REPORT},
        {&s->del_sent, "DELETE FROM sentences WHERE report_id = ?"},
        {&s->ins_sent, "INSERT INTO sentences (report_id, study_id, idx, section, start, end, text, norm)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"},
        {&s->ins_ment, "INSERT INTO mentions (sentence_id, anatomy, start, end, term, rule)"
                       " VALUES (?, ?, ?, ?, ?, ?)"},
        {&s->ins_find, "INSERT INTO findings (sentence_id, study_id, task, anatomy, polarity, start,"
                       " end, term, rule) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"},
        /* a conflict left after deleting the study's parsed rows is an audit or
         * gold label: it stays */
        {&s->ins_label, "INSERT INTO labels (study_id, task, value, source, sentence_id, start, end,"
                        " rule, run_id) VALUES (?, ?, ?, 'parsed', ?, ?, ?, ?, ?)"
                        " ON CONFLICT (study_id, task) DO NOTHING"},
        {&s->mark, "UPDATE reports SET parsed_run = ? WHERE id = ?"},
    };
#undef IN_REPORT
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        if (db_prepare(db, q[i].st, q[i].sql, e)) {
            pstore_close(s);
            return -1;
        }
    }
    return 0;
}

void pstore_close(ParseStore *s)
{
    sqlite3_stmt **all[] = {&s->audited, &s->del_links, &s->del_labels, &s->unlink_labels,
                            &s->del_find, &s->del_ment, &s->del_sent, &s->ins_sent,
                            &s->ins_ment, &s->ins_find, &s->ins_label, &s->mark};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        sqlite3_finalize(*all[i]);
        *all[i] = NULL;
    }
    free(s->sent_ids);
    s->sent_ids = NULL;
    s->cap = 0;
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

int pstore_report(ParseStore *s, const Parser *p, const ParseResult *r, int64_t report_id,
                  int64_t study_id, int64_t run_id, int reparse, FvErr *e)
{
    Db *db = s->db;
    const Ontology *o = p->onto;
    if (reparse) {
        int rc = remove_old(s, report_id, study_id, e);
        if (rc)
            return rc;
    }
    if (r->nsent > s->cap) {
        int64_t *ids = realloc(s->sent_ids, (size_t)r->nsent * sizeof *ids);
        if (!ids)
            return err_set(e, FV_ENOMEM, "storing report %lld: out of memory", (long long)report_id);
        s->sent_ids = ids;
        s->cap = r->nsent;
    }
    const char *text = r->norm.orig;
    for (int i = 0; i < r->nsent; i++) {
        const ParseSentence *st = &r->sent[i];
        if (db_bindf(db, s->ins_sent, e, "iiisii", report_id, study_id, (int64_t)i,
                     parse_section_name(st->section), (int64_t)st->start, (int64_t)st->end) ||
            sqlite3_bind_text(s->ins_sent, 7, text + st->start, (int)(st->end - st->start),
                              SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_text(s->ins_sent, 8, r->norm.s + st->nstart, (int)(st->nend - st->nstart),
                              SQLITE_STATIC) != SQLITE_OK ||
            run_stmt(s, s->ins_sent, e))
            return err_prefix(e, "report %lld sentence %d", (long long)report_id, i);
        s->sent_ids[i] = db_last_id(db);
    }
    for (int i = 0; i < r->nment; i++) {
        const ParseMention *m = &r->ment[i];
        char name[128];
        parse_mention_name(p, m, name, sizeof name);
        if (db_bindf(db, s->ins_ment, e, "isii", s->sent_ids[m->sentence], name, (int64_t)m->start,
                     (int64_t)m->end) ||
            sqlite3_bind_text(s->ins_ment, 5, text + m->start, (int)(m->end - m->start),
                              SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_text(s->ins_ment, 6, m->rule, -1, SQLITE_STATIC) != SQLITE_OK ||
            run_stmt(s, s->ins_ment, e))
            return err_prefix(e, "report %lld mention %d", (long long)report_id, i);
    }
    for (int i = 0; i < r->nfind; i++) {
        const ParseFinding *f = &r->find[i];
        const Finding *task = &o->find[f->task];
        if (db_bindf(db, s->ins_find, e, "iissiii", s->sent_ids[f->sentence], study_id, task->id,
                     o->anat[task->anatomy].id, (int64_t)f->polarity, (int64_t)f->start,
                     (int64_t)f->end) ||
            sqlite3_bind_text(s->ins_find, 8, text + f->start, (int)(f->end - f->start),
                              SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_text(s->ins_find, 9, f->rule, -1, SQLITE_STATIC) != SQLITE_OK ||
            run_stmt(s, s->ins_find, e))
            return err_prefix(e, "report %lld finding %d", (long long)report_id, i);
    }
    int64_t nl = 0;
    for (int t = 0; t < r->ntasks; t++) {
        if (r->label[t] == PARSE_UNMENTIONED)
            continue;
        const ParseFinding *f = &r->find[r->label_from[t]];
        if (db_bindf(db, s->ins_label, e, "isiiiisi", study_id, o->find[t].id, (int64_t)r->label[t],
                     s->sent_ids[f->sentence], (int64_t)f->start, (int64_t)f->end, f->rule,
                     run_id) ||
            run_stmt(s, s->ins_label, e))
            return err_prefix(e, "report %lld label %s", (long long)report_id, o->find[t].id);
        nl++;
    }
    if (db_bindf(db, s->mark, e, "ii", run_id, report_id) || run_stmt(s, s->mark, e))
        return err_prefix(e, "report %lld", (long long)report_id);
    s->n_sent += r->nsent;
    s->n_ment += r->nment;
    s->n_find += r->nfind;
    s->n_label += nl;
    return 0;
}
