/* parse_run: the parse stage's corpus loop (see parse_run.h). */
#include "parse_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store.h"

typedef struct Item {
    int64_t id, study_id;
    int lang, reparse;
    char *text;
    size_t len;
} Item;

static void items_free(Item *it, int n)
{
    for (int i = 0; i < n; i++)
        free(it[i].text);
}

/* Reads the next batch of reports with id > after. */
static int fetch(Db *db, sqlite3_stmt *st, int64_t after, int batch, Item *it, int *n, FvErr *e)
{
    *n = 0;
    if (db_bindf(db, st, e, "ii", after, (int64_t)batch))
        return -1;
    int rc;
    while ((rc = db_step(db, st, e)) == 1) {
        Item *x = &it[*n];
        x->id = sqlite3_column_int64(st, 0);
        x->study_id = sqlite3_column_int64(st, 1);
        const char *lang = (const char *)sqlite3_column_text(st, 2);
        x->lang = lang && !strcmp(lang, "zh") ? PARSE_LANG_ZH : PARSE_LANG_EN;
        const void *t = sqlite3_column_blob(st, 3);
        x->len = (size_t)sqlite3_column_bytes(st, 3);
        x->reparse = sqlite3_column_type(st, 4) != SQLITE_NULL;
        x->text = malloc(x->len + 1);
        if (!x->text) {
            sqlite3_reset(st);
            return err_set(e, FV_ENOMEM, "reading report %lld: out of memory", (long long)x->id);
        }
        if (x->len)
            memcpy(x->text, t, x->len);
        x->text[x->len] = '\0';
        (*n)++;
    }
    sqlite3_reset(st);
    return rc < 0 ? -1 : 0;
}

/* Parses and stores one report; 1 when it was skipped (recorded), -1 on a
 * database error or out of memory. */
static int one_report(Run *run, const Parser *p, ParseStore *store, ParseResult *r, const Item *x,
                      ParseRunCounts *c, FvErr *e)
{
    char member[64];
    snprintf(member, sizeof member, "report %lld", (long long)x->id);
    c->bytes += (int64_t)x->len;
    char reason[sizeof e->msg];
    if (parse_report(p, x->text, x->len, x->lang, r, e)) {
        if (e->code == FV_ENOMEM)
            return -1;
        snprintf(reason, sizeof reason, "%s", e->msg);
        return run_error(run, "reports", member, reason, e) ? -1 : 1;
    }
    for (int w = 0; w < r->nwarn; w++)
        if (run_error(run, "reports", member, r->warn[w], e))
            return -1;
    c->with_warnings += r->nwarn > 0;
    /* a report that fails leaves no rows (its own savepoint) */
    int s = pstore_report(store, p, r, x->id, x->study_id, run->id, x->reparse, e);
    if (s == 0)
        return 0;
    if (s < 0 && e->code == FV_ENOMEM)
        return -1;
    snprintf(reason, sizeof reason, "%s", e->msg);
    return run_error(run, "reports", member, reason, e) ? -1 : 1;
}

int parse_run(Db *db, Run *run, const Parser *p, const ParseRunOptions *opt, ParseRunCounts *c,
              FvErr *e)
{
    memset(c, 0, sizeof *c);
    if (opt->batch < 1 || opt->n_reports < 0 || opt->n_reports > PARSE_RUN_MAX_IDS)
        return err_set(e, FV_EUSAGE, "parse: batch %d or %d report ids out of range", opt->batch,
                       opt->n_reports);
    /* a larger page cache keeps the index pages of sentences, mentions and
     * findings in memory during a long run (KiB, negative by SQLite's rule) */
    if (db_exec(db, "PRAGMA cache_size = -65536", e))
        return -1;
    Buf where = {0};
    if (opt->reports && opt->n_reports) {
        buf_puts(&where, " AND id IN (");
        for (int i = 0; i < opt->n_reports; i++)
            buf_printf(&where, "%s%lld", i ? "," : "", (long long)opt->reports[i]);
        buf_puts(&where, ")");
    } else if (!opt->all) {
        buf_puts(&where, " AND parsed_run IS NULL");
    }
    const char *w = where.data ? where.data : "";
    char sql[2048];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM reports WHERE 1%s", w);
    int found, rc = -1, in_tx = 0, nitems = 0;
    ParseStore store = {0};
    sqlite3_stmt *sel = NULL;
    ParseResult r = {0};
    Item *items = NULL;
    if (db_query_int(db, e, &c->reports, &found, sql, ""))
        goto out;
    snprintf(sql, sizeof sql,
             "SELECT id, study_id, language, text, parsed_run FROM reports"
             " WHERE id > ?%s ORDER BY id LIMIT ?", w);
    if (db_prepare(db, &sel, sql, e) || pstore_open(&store, db, e))
        goto out;
    if (!(items = calloc((size_t)opt->batch, sizeof *items))) {
        err_set(e, FV_ENOMEM, "parse: out of memory");
        goto out;
    }
    Progress prog;
    progress_start(&prog, "parse", c->reports, "reports");
    int64_t after = 0;
    double t0 = now_seconds();
    for (;;) {
        items_free(items, nitems);
        nitems = 0;
        /* the batch is read inside its write transaction (see parse_run.h) */
        if (db_begin(db, e))
            goto out;
        in_tx = 1;
        if (fetch(db, sel, after, opt->batch, items, &nitems, e))
            goto out;
        for (int i = 0; i < nitems; i++) {
            after = items[i].id;
            int s = one_report(run, p, &store, &r, &items[i], c, e);
            if (s < 0)
                goto out;
            c->parsed += s == 0;
            c->skipped += s == 1;
        }
        if (db_commit(db, e))
            goto out;
        in_tx = 0;
        if (nitems == 0)
            break;
        progress_set(&prog, c->parsed + c->skipped);
    }
    progress_end(&prog);
    c->seconds = now_seconds() - t0;
    rc = 0;
out:
    if (in_tx)
        db_rollback(db);
    c->sentences = store.n_sent;
    c->mentions = store.n_ment;
    c->findings = store.n_find;
    c->labels = store.n_label;
    items_free(items, nitems);
    free(items);
    parse_result_free(&r);
    pstore_close(&store);
    sqlite3_finalize(sel);
    buf_free(&where);
    return rc;
}

void parse_run_counts_json(const ParseRunCounts *c, Buf *b)
{
    buf_printf(b,
               "{\"reports\":%lld,\"parsed\":%lld,\"skipped\":%lld,\"with_warnings\":%lld,"
               "\"sentences\":%lld,\"mentions\":%lld,\"findings\":%lld,\"labels\":%lld,"
               "\"bytes\":%lld,\"seconds\":%.3f}",
               (long long)c->reports, (long long)c->parsed, (long long)c->skipped,
               (long long)c->with_warnings, (long long)c->sentences, (long long)c->mentions,
               (long long)c->findings, (long long)c->labels, (long long)c->bytes, c->seconds);
}
