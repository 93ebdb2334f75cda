/* fvlm merge: corpora ingested apart into one (ingest/merge.h). */
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "json.h"
#include "log.h"
#include "merge.h"
#include "run.h"

static const char *help =
    "usage: fvlm merge --db ALL.db CORPUS.db... [--json]\n\n"
    "Merges corpora ingested apart (the shards of fvlm ingest --shard K/N, or ingests\n"
    "of disjoint inputs) into ALL.db (created when absent): studies, volumes, masks,\n"
    "reports, sources, runs and errors with new ids; tensor files hard-linked into\n"
    "ALL.db.tensors/ (copied across file systems). A study already in ALL.db (by its\n"
    "keyed id) keeps its rows. Refused: an input of another schema version, one\n"
    "de-identified with another key, one that was parsed or aligned (parse and align\n"
    "run on the merged corpus), a shard given twice. Then: fvlm parse --db ALL.db.\n\n"
    "options:\n" CLI_COMMON_HELP;

int cmd_merge(int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS, {0, 0, 0, 0}};
    CliCommon cc;
    cli_common_init(&cc);
    int opt, code;
    while ((opt = cli_next_opt(&cc, argc, argv, opts, "merge", help, &code)) != CLI_DONE)
        if (opt == CLI_EXIT)
            return code;
    if (optind >= argc) {
        cli_common_free(&cc);
        return cli_usage("merge", "no input corpus given");
    }
    FvErr e = {0};
    Db *db = NULL;
    Run run = {0};
    int begun = 0, rc = EXIT_FAIL;
    Buf cfg = {0}, counts = {0};
    MergeCounts c;
    memset(&c, 0, sizeof c);
    if (cli_common_finish(&cc, &e) || db_open(&db, cc.db, 0, &e))
        goto fail;
    int k, n;
    if (corpus_shard_mark(db, &k, &n, &e))
        goto fail;
    if (n) {
        err_set(&e, FV_EUSAGE, "%s is itself shard %d/%d: merge into a corpus of its own", cc.db,
                k, n);
        goto fail;
    }
    config_to_json(&cc.config, &cfg);
    if (run_begin(&run, db, "merge", argc, argv, cfg.data, -1, &e))
        goto fail;
    begun = 1;
    if (merge_corpora(db, &run, argv + optind, argc - optind, &c, &e))
        goto fail;
    merge_counts_json(&c, &counts);
    if (run_finish(&run, "ok", counts.data, &e)) {
        begun = 0;
        goto fail;
    }
    begun = 0;
    if (cc.json)
        printf("%s\n", counts.data);
    else
        printf("%s: merged %lld corpora: %lld studies (%lld already there), %lld volumes, "
               "%lld masks, %lld reports, %lld members, %lld runs, %lld errors; tensors "
               "%lld linked, %lld copied, %lld present%s\n",
               cc.db, (long long)c.inputs, (long long)c.studies, (long long)c.studies_known,
               (long long)c.volumes, (long long)c.masks, (long long)c.reports,
               (long long)c.sources, (long long)c.runs, (long long)c.errors,
               (long long)c.tensors_linked, (long long)c.tensors_copied,
               (long long)c.tensors_present, c.shards_missing ? " (shards missing)" : "");
    rc = EXIT_OK;
    goto done;
fail:
    rc = cli_fail(&e);
    if (begun) {
        FvErr fe = {0};
        merge_counts_json(&c, &counts);
        run_finish(&run, "failed", counts.data, &fe);
    }
done:
    buf_free(&cfg);
    buf_free(&counts);
    db_close(&db);
    cli_common_free(&cc);
    return rc;
}
