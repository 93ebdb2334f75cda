/* eval_e2e_setup: turns the train stage's fixture corpus (tests/train/
 * make_corpus) into an evaluation corpus for test_eval_e2e.sh.
 *
 * usage: eval_e2e_setup DB KEY TRUTH_CSV
 *   - study i gets source id "E<id>" and study_key deid_pseudonym(KEY, ...),
 *     as ingest would have keyed it; 3 of every 5 studies are train, the
 *     rest test (studies and samples);
 *   - TRUTH_CSV: fvlm synth's truth format, `study_id,<every task>`; a task
 *     is 1 when the study's sample of its anatomy lists it among its
 *     diseases, 0 when it does not, empty when the study has no sample of
 *     that anatomy;
 *   - the labels table holds the same positives (source parsed; absent means
 *     not mentioned), the reports are marked parsed, and one positive of the
 *     first test study is made uncertain (-1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "db.h"
#include "deid.h"
#include "fsutil.h"
#include "ontology.h"
#include "run.h"

static int fail(const FvErr *e)
{
    fprintf(stderr, "eval_e2e_setup: %s\n", e->msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: eval_e2e_setup DB KEY TRUTH_CSV\n");
        return 2;
    }
    FvErr e = {0};
    Db *db;
    Ontology *o;
    if (db_open(&db, argv[1], DB_MUST_EXIST, &e) || onto_load(&o, &e))
        return fail(&e);
    Run run;
    char *rargv[] = {"eval_e2e_setup"};
    if (run_begin(&run, db, "parse", 1, rargv, NULL, -1, &e) || db_begin(db, &e))
        return fail(&e);
    sqlite3_stmt *st;
    if (db_prepare(db, &st, "SELECT id FROM studies ORDER BY id", &e))
        return fail(&e);
    int64_t ids[4096];
    int n = 0, got;
    while ((got = db_step(db, st, &e)) == 1 && n < 4096)
        ids[n++] = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (got < 0)
        return fail(&e);
    Buf csv = {0};
    buf_puts(&csv, "study_id");
    for (int k = 0; k < o->n_find; k++)
        buf_printf(&csv, ",%s", o->find[k].id);
    buf_putc(&csv, '\n');
    int first_test = 1;
    for (int i = 0; i < n; i++) {
        char sid[32], key[65];
        snprintf(sid, sizeof sid, "E%lld", (long long)ids[i]);
        if (deid_pseudonym(argv[2], "study", sid, key, &e))
            return fail(&e);
        const char *split = i % 5 < 3 ? "train" : "test";
        if (db_run(db, &e, "UPDATE studies SET study_key = ?, split = ? WHERE id = ?", "ssi", key,
                   split, ids[i]) ||
            db_run(db, &e, "UPDATE samples SET split = ? WHERE study_id = ?", "si", split,
                   ids[i]) ||
            db_run(db, &e, "UPDATE reports SET parsed_run = ? WHERE study_id = ?", "ii", run.id,
                   ids[i]))
            return fail(&e);
        buf_puts(&csv, sid);
        for (int k = 0; k < o->n_find; k++) {
            const Finding *f = &o->find[k];
            int64_t has, pos;
            int found;
            char like[96];
            snprintf(like, sizeof like, "%%\"%s\"%%", f->id);
            if (db_query_int(db, &e, &has, &found,
                             "SELECT count(*) FROM samples WHERE study_id = ? AND anatomy = ?",
                             "is", ids[i], o->anat[f->anatomy].id) ||
                db_query_int(db, &e, &pos, &found,
                             "SELECT count(*) FROM samples WHERE study_id = ? AND anatomy = ? AND "
                             "diseases LIKE ?", "iss", ids[i], o->anat[f->anatomy].id, like))
                return fail(&e);
            if (!has) {
                buf_putc(&csv, ',');
                continue;
            }
            buf_printf(&csv, ",%d", pos ? 1 : 0);
            if (pos) {
                int value = 1;
                if (first_test && strcmp(split, "test") == 0) {
                    value = -1;
                    first_test = 0;
                }
                if (db_run(db, &e, "INSERT INTO labels (study_id, task, value, source, run_id) "
                                   "VALUES (?, ?, ?, 'parsed', ?)",
                           "isii", ids[i], f->id, (int64_t)value, run.id))
                    return fail(&e);
            }
        }
        buf_putc(&csv, '\n');
    }
    if (db_commit(db, &e) || run_finish(&run, "ok", NULL, &e))
        return fail(&e);
    if (csv.failed || fs_write_atomic(argv[3], csv.data, csv.len, &e))
        return fail(&e);
    buf_free(&csv);
    onto_free(&o);
    db_close(&db);
    printf("%d studies keyed and split, truth in %s\n", n, argv[3]);
    return 0;
}
