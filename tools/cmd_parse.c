/* fvlm parse: parse the reports of a corpus database into sentences, anatomy
 * mentions, findings and study labels (see parse/parse.h and parse/store.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "json.h"
#include "log.h"
#include "merge.h"
#include "parse.h"
#include "run.h"
#include "store.h"

static const char *help =
    "usage: fvlm parse [--db FILE] [--all] [--report ID] [--batch N] [options]\n\n"
    "Parses every report of the corpus not parsed yet (reports.parsed_run is NULL):\n"
    "sections, sentences with byte offsets, anatomy mentions, findings with polarity\n"
    "(present, absent, uncertain) and the rule that decided each, and one label per\n"
    "study and mentioned task (present wins over uncertain, uncertain over absent).\n"
    "A re-parsed report's rows are replaced in one transaction; labels set by an\n"
    "annotator (source 'audit') or from a truth file ('gold') are never overwritten.\n"
    "Bad input (invalid UTF-8, NUL bytes, empty reports, headings only, huge\n"
    "sentences) is parsed as far as it goes, with one warning per report recorded\n"
    "in the run's errors. The rules are built in; FVLM_SCHEMAS=DIR overrides them.\n\n"
    "options:\n"
    "  --all              re-parse every report, parsed or not\n"
    "  --report ID        parse this report only (repeatable)\n"
    "  --batch N          reports per transaction (default 512)\n"
    CLI_COMMON_HELP;

enum { OPT_ALL = OPT_FIRST_PRIVATE, OPT_REPORT, OPT_BATCH };

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

int cmd_parse(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"all", no_argument, 0, OPT_ALL},
        {"report", required_argument, 0, OPT_REPORT},
        {"batch", required_argument, 0, OPT_BATCH},
        {0, 0, 0, 0},
    };
    CliCommon c;
    cli_common_init(&c);
    int all = 0, opt, code;
    long long batch = 512;
    int64_t only[64];
    int nonly = 0;
    while ((opt = cli_next_opt(&c, argc, argv, opts, "parse", help, &code)) != CLI_DONE) {
        long long v;
        if (opt == OPT_ALL) {
            all = 1;
        } else if (opt == OPT_REPORT) {
            if (cli_parse_i64(optarg, 1, INT64_MAX, &v) || nonly >= 64)
                return cli_usage("parse", "--report expects a report id (at most 64), got '%s'",
                                 optarg);
            only[nonly++] = v;
        } else if (opt == OPT_BATCH) {
            if (cli_parse_i64(optarg, 1, 100000, &batch))
                return cli_usage("parse", "--batch expects 1..100000, got '%s'", optarg);
        } else {
            return code; /* CLI_EXIT */
        }
    }
    if (optind < argc) {
        cli_common_free(&c);
        return cli_usage("parse", "unexpected argument '%s'", argv[optind]);
    }
    FvErr e = {0};
    Db *db = NULL;
    Parser *p = NULL;
    ParseStore store = {0};
    sqlite3_stmt *sel = NULL;
    Item *items = NULL;
    int nitems = 0, rc = EXIT_FAIL, in_tx = 0;
    ParseResult r = {0};
    Run run = {0};
    int run_started = 0;
    Buf cfg = {0};
    if (cli_common_finish(&c, &e) || db_open(&db, c.db, DB_MUST_EXIST, &e) ||
        corpus_refuse_shard(db, "parse", &e) || parser_new(&p, &e))
        goto out;
    config_to_json(&c.config, &cfg);
    /* a larger page cache keeps the index pages of sentences, mentions and
     * findings in memory during a long run (KiB, negative by SQLite's rule) */
    if (db_exec(db, "PRAGMA cache_size = -65536", &e))
        goto out;
    if (run_begin(&run, db, "parse", argc, argv, cfg.data, -1, &e))
        goto out;
    run_started = 1;
    char where[1024] = "";
    if (nonly) {
        Buf w = {0};
        buf_puts(&w, " AND id IN (");
        for (int i = 0; i < nonly; i++)
            buf_printf(&w, "%s%lld", i ? "," : "", (long long)only[i]);
        buf_puts(&w, ")");
        snprintf(where, sizeof where, "%s", w.data ? w.data : "");
        buf_free(&w);
    } else if (!all) {
        snprintf(where, sizeof where, " AND parsed_run IS NULL");
    }
    char sql[1400];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM reports WHERE 1%s", where);
    int64_t total;
    int found;
    if (db_query_int(db, &e, &total, &found, sql, ""))
        goto out;
    snprintf(sql, sizeof sql,
             "SELECT id, study_id, language, text, parsed_run FROM reports"
             " WHERE id > ?%s ORDER BY id LIMIT ?", where);
    if (db_prepare(db, &sel, sql, &e) || pstore_open(&store, db, &e))
        goto out;
    items = calloc((size_t)batch, sizeof *items);
    if (!items) {
        err_set(&e, FV_ENOMEM, "out of memory");
        goto out;
    }
    Progress prog;
    progress_start(&prog, "parse", total, "reports");
    int64_t after = 0, n_done = 0, n_skipped = 0, n_warned = 0, n_bytes = 0;
    double t0 = now_seconds();
    for (;;) {
        items_free(items, nitems);
        nitems = 0;
        /* the batch is read inside its write transaction, so the report and
         * study ids the rows point to cannot change before they are written
         * (the store writes without foreign key checks: parse/store.h) */
        if (db_begin(db, &e))
            goto out;
        in_tx = 1;
        if (fetch(db, sel, after, (int)batch, items, &nitems, &e))
            goto out;
        if (nitems == 0) {
            if (db_commit(db, &e))
                goto out;
            in_tx = 0;
            break;
        }
        for (int i = 0; i < nitems; i++) {
            Item *x = &items[i];
            after = x->id;
            char member[64];
            snprintf(member, sizeof member, "report %lld", (long long)x->id);
            n_bytes += (int64_t)x->len;
            if (parse_report(p, x->text, x->len, x->lang, &r, &e)) {
                if (run_error(&run, "reports", member, e.msg, &e))
                    goto out;
                n_skipped++;
                continue;
            }
            for (int w = 0; w < r.nwarn; w++)
                if (run_error(&run, "reports", member, r.warn[w], &e))
                    goto out;
            n_warned += r.nwarn > 0;
            /* a report that fails leaves no rows (its own savepoint) */
            int s = pstore_report(&store, p, &r, x->id, x->study_id, run.id, x->reparse, &e);
            if (s != 0) {
                if (s < 0 && e.code == FV_ENOMEM)
                    goto out;
                char reason[1100];
                snprintf(reason, sizeof reason, "%s", e.msg);
                if (run_error(&run, "reports", member, reason, &e))
                    goto out;
                n_skipped++;
                continue;
            }
            n_done++;
        }
        if (db_commit(db, &e))
            goto out;
        in_tx = 0;
        progress_set(&prog, n_done + n_skipped);
    }
    progress_end(&prog);
    double secs = now_seconds() - t0;
    Buf counts = {0};
    buf_printf(&counts,
               "{\"reports\":%lld,\"parsed\":%lld,\"skipped\":%lld,\"with_warnings\":%lld,"
               "\"sentences\":%lld,\"mentions\":%lld,\"findings\":%lld,\"labels\":%lld,"
               "\"bytes\":%lld,\"seconds\":%.3f}",
               (long long)total, (long long)n_done, (long long)n_skipped, (long long)n_warned,
               (long long)store.n_sent, (long long)store.n_ment, (long long)store.n_find,
               (long long)store.n_label, (long long)n_bytes, secs);
    int frc = run_finish(&run, "ok", counts.data, &e);
    run_started = 0;
    if (frc) {
        buf_free(&counts);
        goto out;
    }
    if (c.json) {
        printf("%s\n", counts.data);
    } else {
        printf("parsed %lld of %lld reports (%lld skipped, %lld with warnings) in %.2f s: "
               "%lld sentences, %lld mentions, %lld findings, %lld labels\n",
               (long long)n_done, (long long)total, (long long)n_skipped, (long long)n_warned,
               secs, (long long)store.n_sent, (long long)store.n_ment, (long long)store.n_find,
               (long long)store.n_label);
    }
    buf_free(&counts);
    rc = EXIT_OK;
out:
    if (rc != EXIT_OK)
        cli_fail(&e);
    if (in_tx)
        db_rollback(db);
    if (run_started) {
        FvErr e2 = {0};
        run_finish(&run, "failed", NULL, &e2);
    }
    items_free(items, nitems);
    free(items);
    parse_result_free(&r);
    pstore_close(&store);
    sqlite3_finalize(sel);
    parser_free(&p);
    db_close(&db);
    buf_free(&cfg);
    cli_common_free(&c);
    return rc;
}
