/* fvlm align: sentences to anatomies, anatomy status, regions from masks,
 * the anatomy-level training samples. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "align.h"
#include "anatomy_meta.h"
#include "buf.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "log.h"
#include "merge.h"
#include "ontology.h"
#include "run.h"

static const char *help =
    "usage: fvlm align [--db FILE] [--study ID]... [options]\n\n"
    "Turns parsed reports and ingested masks into fVLM's anatomy-level samples:\n"
    "  links      each sentence -> the anatomies it describes (mention, finding,\n"
    "             group statement, continuation), with method and confidence;\n"
    "             a sentence that links to none is recorded as such\n"
    "  status     per (study, anatomy): abnormal / normal / unmentioned, its\n"
    "             findings and impression text, the training text (impression\n"
    "             then findings; the normal template for a normal anatomy)\n"
    "  regions    per anatomy from the TotalSegmentator mask: voxels, ml,\n"
    "             bounding box (z, y, x), whole inside the scan; `_union` is the\n"
    "             crop box of the anatomies that carry tasks (with fVLM's margin)\n"
    "  flags      for auditors: abnormal anatomy absent from the mask,\n"
    "             implausible volume, no mask, no report, ...\n"
    "  samples    one row per (study, anatomy) to train on\n"
    "Each study is replaced in one transaction; links, statuses and labels set\n"
    "by annotators (source 'audit', accepted/rejected links) are kept.\n\n"
    "options:\n"
    "  --study ID         align only this study (repeatable; the id in the database)\n"
    CLI_COMMON_HELP
    "\nconfiguration (--set or --config):\n"
    "  align.status_rule = impression|findings   abnormal from the impression only\n"
    "                     (fVLM's rule, the default) or from the findings too\n"
    "  align.samples = main|all|ID,ID,...        anatomies that get samples\n"
    "                     (default main: those that carry diagnosis tasks)\n"
    "  align.crop_margin_mm = Z, Y, X            margin of the crop box (15, 20, 20)\n"
    "  align.text_methods = M,M,...              link methods whose sentences feed the\n"
    "                     texts (default mention,finding,continuation,audit; add\n"
    "                     group to include statements such as \"upper abdominal\n"
    "                     organs are normal\")\n";

enum { OPT_STUDY = OPT_FIRST_PRIVATE };

int cmd_align(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"study", required_argument, 0, OPT_STUDY},
        {0, 0, 0, 0},
    };
    CliCommon cli;
    cli_common_init(&cli);
    int64_t *studies = NULL;
    int n_studies = 0, opt, code;
    while ((opt = cli_next_opt(&cli, argc, argv, opts, "align", help, &code)) != CLI_DONE) {
        if (opt == CLI_EXIT) {
            free(studies);
            return code;
        }
        /* OPT_STUDY */
        long long id;
        int64_t *p = realloc(studies, (size_t)(n_studies + 1) * sizeof *p);
        if (!p || cli_parse_i64(optarg, 1, INT64_MAX, &id)) {
            free(p ? p : studies);
            return cli_usage("align", "--study expects a study id (a positive integer), got '%s'",
                             optarg);
        }
        studies = p;
        studies[n_studies++] = id;
    }
    if (optind < argc) {
        free(studies);
        cli_common_free(&cli);
        return cli_usage("align", "unexpected argument '%s'", argv[optind]);
    }
    FvErr e = {0};
    Ontology *o = NULL;
    AnatomyMetaTable meta = {0};
    AlignOptions ao = {0};
    Db *db = NULL;
    Run run = {0};
    AlignCounts c = {0};
    Buf cfg = {0}, counts = {0}, unused = {0};
    int rc = EXIT_FAIL;
    if (cli_common_finish(&cli, &e)) {
        rc = cli_finish_fail(&e);
        goto done;
    }
    if (onto_load(&o, &e) || anatomy_meta_load(o, &meta, &e)) {
        cli_fail(&e);
        goto done;
    }
    if (align_options_from_config(o, &cli.config, &ao, &e)) {
        cli_fail(&e);
        rc = EXIT_USAGE;
        goto done;
    }
    ao.studies = studies;
    ao.n_studies = n_studies;
    if (db_open(&db, cli.db, DB_MUST_EXIST, &e) || corpus_refuse_shard(db, "align", &e)) {
        cli_fail(&e);
        goto done;
    }
    config_to_json(&cli.config, &cfg);
    if (run_begin(&run, db, "align", argc, argv, cfg.data, -1, &e)) {
        cli_fail(&e);
        goto done;
    }
    int arc = align_run(db, &run, o, &meta, &ao, &c, &e);
    align_counts_json(&c, &counts);
    if (arc) {
        cli_fail(&e);
        FvErr e2 = {0};
        /* Marking the run failed usually fails for the reason just printed (a
         * full disk, an I/O error): one line says it; the next run finds this
         * one's process gone and marks it interrupted. */
        if (run_finish(&run, "failed", counts.data, &e2))
            log_debug("recording the failed run: %s", e2.msg);
        goto done;
    }
    if (run_finish(&run, "ok", counts.data, &e)) {
        cli_fail(&e);
        goto done;
    }
    if (cli.json) {
        printf("{\"run_id\": %lld, \"counts\": %s}\n", (long long)run.id, counts.data);
    } else {
        printf("align run %lld: %lld studies (%lld with input errors), %lld sentences, %lld links, "
               "%lld unlinked sentences\n",
               (long long)run.id, (long long)c.aligned, (long long)c.failed,
               (long long)c.sentences, (long long)c.links, (long long)c.unlinked);
        printf("status: %lld abnormal, %lld normal, %lld unmentioned; %lld regions, %lld samples, "
               "%lld flags\n",
               (long long)c.abnormal, (long long)c.normal, (long long)c.unmentioned,
               (long long)c.regions, (long long)c.samples, (long long)c.flags);
        if (c.audited)
            printf("annotators' decisions (fvlm audit) on %lld studies: %lld links, %lld statuses, "
                   "%lld labels applied; %lld stale (their sentence changed); %lld studies kept out "
                   "of the samples by a flag\n",
                   (long long)c.audited, (long long)c.audit_links, (long long)c.audit_statuses,
                   (long long)c.audit_labels, (long long)c.audit_stale, (long long)c.audit_excluded);
        if (c.no_report || c.unparsed || c.no_mask)
            printf("without report: %lld, report not parsed: %lld, without mask: %lld\n",
                   (long long)c.no_report, (long long)c.unparsed, (long long)c.no_mask);
    }
    /* Exit 0 only when align did its job: a report that parse has not read
     * yet gives no links, statuses or samples, which is a stage not run,
     * not a result. */
    rc = EXIT_OK;
    if (c.studies == 0) {
        log_error("%s: no study to align: run `fvlm ingest --db %s ...` first", cli.db, cli.db);
        rc = EXIT_FAIL;
    } else if (c.unparsed) {
        log_error("%lld of %lld studies have a report that is not parsed: run `fvlm parse --db %s` "
                  "first, then align again",
                  (long long)c.unparsed, (long long)c.studies, cli.db);
        rc = EXIT_FAIL;
    }
done:
    buf_free(&cfg);
    buf_free(&counts);
    buf_free(&unused);
    db_close(&db);
    align_options_free(&ao);
    anatomy_meta_free(&meta);
    onto_free(&o);
    free(studies);
    cli_common_free(&cli);
    return rc;
}
