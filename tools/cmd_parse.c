/* fvlm parse: parse the reports of a corpus database into sentences, anatomy
 * mentions, findings and study labels. The options only: the stage is
 * parse/parse_run.h (the corpus loop), parse.h (the parser), store.h. */
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
#include "parse_run.h"

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
    int64_t only[PARSE_RUN_MAX_IDS];
    int nonly = 0;
    while ((opt = cli_next_opt(&c, argc, argv, opts, "parse", help, &code)) != CLI_DONE) {
        long long v;
        if (opt == OPT_ALL) {
            all = 1;
        } else if (opt == OPT_REPORT) {
            if (cli_parse_i64(optarg, 1, INT64_MAX, &v) || nonly >= PARSE_RUN_MAX_IDS)
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
    Run run = {0};
    int run_started = 0, rc = EXIT_FAIL;
    Buf cfg = {0}, counts = {0};
    ParseRunOptions po = {all, nonly ? only : NULL, nonly, (int)batch};
    ParseRunCounts pc;
    if (cli_common_finish(&c, &e)) {
        cli_common_free(&c);
        return cli_finish_fail(&e);
    }
    if (db_open(&db, c.db, DB_MUST_EXIST, &e) || corpus_refuse_shard(db, "parse", &e) ||
        parser_new(&p, &e))
        goto out;
    config_to_json(&c.config, &cfg);
    if (run_begin(&run, db, "parse", argc, argv, cfg.data, -1, &e))
        goto out;
    run_started = 1;
    int prc = parse_run(db, &run, p, &po, &pc, &e);
    parse_run_counts_json(&pc, &counts);
    if (prc)
        goto out;
    int ndistinct = 0;
    for (int i = 0; i < nonly; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = only[j] == only[i];
        ndistinct += !seen;
    }
    if (nonly && pc.reports < ndistinct) {
        /* --report names a report that is not there: nothing to do is not done. */
        err_set(&e, FV_ENOTFOUND, "%lld of the %d --report ids are not reports of %s",
                (long long)(ndistinct - pc.reports), ndistinct, c.db);
        goto out;
    }
    /* Exit 0 only when parse did its job: an empty corpus or reports that
     * all failed are not a parsed corpus. */
    int64_t any_report = 0;
    int found;
    if (pc.reports == 0 && db_query_int(db, &e, &any_report, &found,
                                        "SELECT EXISTS (SELECT 1 FROM reports)", ""))
        goto out;
    if (pc.reports == 0 && !any_report) {
        err_set(&e, FV_ENOTFOUND, "%s has no report: run `fvlm ingest --db %s ...` first", c.db,
                c.db);
        goto out;
    }
    if (pc.parsed == 0 && pc.skipped > 0) {
        err_set(&e, FV_EFORMAT, "none of the %lld reports could be parsed (the errors of run %lld "
                "say why: fvlm stats --db %s)", (long long)pc.skipped, (long long)run.id, c.db);
        goto out;
    }
    run_started = 0;
    if (run_finish(&run, "ok", counts.data, &e))
        goto out;
    if (c.json)
        printf("%s\n", counts.data);
    else
        printf("parsed %lld of %lld reports (%lld skipped, %lld with warnings) in %.2f s: "
               "%lld sentences, %lld mentions, %lld findings, %lld labels\n",
               (long long)pc.parsed, (long long)pc.reports, (long long)pc.skipped,
               (long long)pc.with_warnings, pc.seconds, (long long)pc.sentences,
               (long long)pc.mentions, (long long)pc.findings, (long long)pc.labels);
    rc = EXIT_OK;
out:
    if (rc != EXIT_OK)
        cli_fail(&e);
    if (run_started) {
        FvErr e2 = {0};
        run_finish(&run, "failed", counts.data, &e2);
    }
    parser_free(&p);
    db_close(&db);
    buf_free(&cfg);
    buf_free(&counts);
    cli_common_free(&c);
    return rc;
}
