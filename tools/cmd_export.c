/* fvlm export: the anatomy-level texts in fVLM's layout, or everything as
 * JSON lines. */
#include <stdio.h>
#include <string.h>

#include "anatomy_meta.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "export.h"
#include "log.h"
#include "ontology.h"

static const char *help =
    "usage: fvlm export [--db FILE] --format fvlm|jsonl --out DIR [--split SPLIT]\n"
    "                   [--accession ACCESSION]\n\n"
    "Writes the aligned corpus for Python users (run fvlm align first).\n\n"
    "  --format fvlm   DIR/desc_info.json and DIR/conc_info.json, the layout of\n"
    "                  fVLM's released code: study -> {anatomy as fVLM names it\n"
    "                  (lung, heart, esophagus, aorta, ...) -> findings text}, and\n"
    "                  -> impression text. An anatomy without text is left out;\n"
    "                  fVLM then uses its normal template.\n"
    "  --format jsonl  DIR/anatomies.jsonl: one object per (study, anatomy) with\n"
    "                  status, texts, diseases, labels, region, linked sentences\n"
    "                  (method, confidence), flags, and the study's tensors.\n\n"
    "Studies are keyed by their pseudonymous study_key, HMAC-SHA256 under the\n"
    "corpus's de-identification key of \"study:<source id>\" (lib/deid.h): the\n"
    "corpus never stores source ids; whoever holds the key can compute the keys\n"
    "of their own id lists to join them.\n\n"
    "options:\n"
    "  --db FILE          corpus database (default corpus.db)\n"
    "  --format F         fvlm or jsonl (required)\n"
    "  --out DIR          output folder, created when missing (required)\n"
    "  --split SPLIT      only train, valid or test studies\n"
    "  --accession A      only the study of accession A: its DICOM AccessionNumber,\n"
    "                     archive or study-folder name, StudyInstanceUID or CT-RATE\n"
    "                     volume name, found by keyed hash as `fvlm key` finds it\n"
    "                     (needs FVLM_DEID_KEY or deid.key)\n"
    "  --config FILE      configuration file (for deid.key)\n"
    "  --json             print the counts as JSON\n"
    "  --quiet            errors only on stderr\n"
    "  --help             this help\n";

enum { OPT_FORMAT = OPT_FIRST_PRIVATE, OPT_OUT, OPT_SPLIT, OPT_ACCESSION };

int cmd_export(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, 0, OPT_DB},
        {"format", required_argument, 0, OPT_FORMAT},
        {"out", required_argument, 0, OPT_OUT},
        {"split", required_argument, 0, OPT_SPLIT},
        {"accession", required_argument, 0, OPT_ACCESSION},
        {"config", required_argument, 0, OPT_CONFIG},
        {"json", no_argument, 0, OPT_JSON},
        {"quiet", no_argument, 0, OPT_QUIET},
        {"help", no_argument, 0, OPT_HELP},
        {0, 0, 0, 0},
    };
    CliCommon cc;
    cli_common_init(&cc);
    const char *format = NULL, *out = NULL, *split = NULL, *accession = NULL;
    int opt, code;
    while ((opt = cli_next_opt(&cc, argc, argv, opts, "export", help, &code)) != CLI_DONE) {
        switch (opt) {
        case OPT_FORMAT: format = optarg; break;
        case OPT_OUT: out = optarg; break;
        case OPT_SPLIT: split = optarg; break;
        case OPT_ACCESSION: accession = optarg; break;
        default: return code; /* CLI_EXIT */
        }
    }
    if (optind < argc)
        return cli_usage("export", "unexpected argument '%s'", argv[optind]);
    if (!format || (strcmp(format, "fvlm") && strcmp(format, "jsonl")))
        return cli_usage("export", "--format must be fvlm or jsonl");
    if (!out || !*out)
        return cli_usage("export", "--out DIR is required");
    if (split && strcmp(split, "train") && strcmp(split, "valid") && strcmp(split, "test"))
        return cli_usage("export", "--split must be train, valid or test, got '%s'", split);
    FvErr e = {0};
    Ontology *o = NULL;
    AnatomyMetaTable meta = {0};
    Db *db = NULL;
    ExportCounts c = {0};
    int rc = EXIT_FAIL;
    ExportFormat f = !strcmp(format, "fvlm") ? EXPORT_FVLM : EXPORT_JSONL;
    int64_t study = 0;
    if (cli_common_finish(&cc, &e)) {
        rc = cli_finish_fail(&e);
        goto done;
    }
    if (onto_load(&o, &e) || anatomy_meta_load(o, &meta, &e) ||
        db_open(&db, cc.db, DB_READONLY | DB_MUST_EXIST, &e) ||
        (accession && cli_study_by_accession(&cc, db, accession, &study, &e)) ||
        export_write(db, o, &meta, f, out, split, study, &c, &e)) {
        cli_fail(&e);
        goto done;
    }
    /* What annotators decided (fvlm audit) is in the export where present:
     * say how much. */
    int64_t au_status = 0, au_labels = 0;
    int found = 0;
    if (db_query_int(db, &e, &au_status, &found,
                     "SELECT count(*) FROM anatomy_status a JOIN studies s ON s.id = a.study_id"
                     " WHERE a.source = 'audit' AND (?1 IS NULL OR s.split = ?1)", "s", split) ||
        db_query_int(db, &e, &au_labels, &found,
                     "SELECT count(*) FROM labels l JOIN studies s ON s.id = l.study_id"
                     " WHERE l.source = 'audit' AND (?1 IS NULL OR s.split = ?1)", "s", split)) {
        cli_fail(&e);
        goto done;
    }
    if (cc.json)
        printf("{\"format\": \"%s\", \"studies\": %lld, \"entries\": %lld, \"bytes\": %lld,"
               " \"audited\": {\"statuses\": %lld, \"labels\": %lld}}\n", format,
               (long long)c.studies, (long long)c.entries, (long long)c.bytes, (long long)au_status,
               (long long)au_labels);
    else
        printf("exported %lld studies, %lld %s, %lld bytes to %s (%s)\n", (long long)c.studies,
               (long long)c.entries, f == EXPORT_FVLM ? "anatomy texts" : "lines",
               (long long)c.bytes, out,
               f == EXPORT_FVLM ? "desc_info.json, conc_info.json" : "anatomies.jsonl");
    if (!cc.json && (au_status || au_labels))
        printf("annotators' decisions included: %lld anatomy statuses, %lld labels (source audit)\n",
               (long long)au_status, (long long)au_labels);
    rc = EXIT_OK;
    if (c.studies == 0) {
        /* An empty export is a stage not run (or a filter that matched
         * nothing), not a result. */
        if (split || accession)
            log_error("no aligned study%s%s%s: run `fvlm align --db %s` first if it was not",
                      split ? " in split " : "", split ? split : "",
                      accession ? " for that accession" : "", cc.db);
        else
            log_error("%s has no aligned study: run `fvlm parse --db %s` and `fvlm align --db %s` "
                      "first", cc.db, cc.db, cc.db);
        rc = EXIT_FAIL;
    }
done:
    db_close(&db);
    anatomy_meta_free(&meta);
    onto_free(&o);
    cli_common_free(&cc);
    return rc;
}
