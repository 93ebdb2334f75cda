/* fvlm key: accessions to study keys, so a user can find a study without
 * the corpus ever holding an accession. */
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "deid.h"
#include "json.h"
#include "log.h"

static const char *help =
    "usage: fvlm key [--db FILE] [--config FILE] [--json] ACCESSION...\n\n"
    "Prints each accession's study key: the keyed hash that ingest stores in place\n"
    "of the source study id (HMAC-SHA256 under the de-identification key of\n"
    "\"study:<ACCESSION>\"), and the study's id in the corpus. ACCESSION is the\n"
    "study's source id as ingest read it: the DICOM StudyInstanceUID, else the\n"
    "archive or file name without extension (CT20231118002 for\n"
    "CT20231118002.tar.gz). The key comes from FVLM_DEID_KEY or deid.key in the\n"
    "config, and must be the corpus's (its fingerprint is checked first). The\n"
    "accessions are printed here only, never stored. Then `fvlm show --accession A`\n"
    "and `fvlm export --accession A` select that study.\n\n"
    "Output: one line per accession, ACCESSION<TAB>STUDY_KEY<TAB>STUDY_ID (- when\n"
    "the corpus has no such study). Exit 1 when any accession has no study.\n\n"
    "options:\n"
    "  --db FILE          corpus database (default corpus.db)\n"
    "  --config FILE      configuration file (for deid.key)\n"
    "  --json             a JSON array of {accession, study_key, study_id}\n"
    "  --help             this help\n";

int cmd_key(int argc, char **argv)
{
    CliCommon cc;
    int code;
    cli_common_init(&cc);
    if (cli_common_only(&cc, argc, argv, CLI_WANT_DB | CLI_WANT_CONFIG | CLI_WANT_JSON, "key",
                        help, &code))
        return code;
    if (optind >= argc)
        return cli_usage("key", "no ACCESSION given");
    FvErr e = {0};
    Db *db = NULL;
    const char *key;
    if (cli_common_finish(&cc, &e) || deid_key(&cc.config, &key, &e)) {
        cli_common_free(&cc);
        return cli_finish_fail(&e);
    }
    int rc = EXIT_OK, missing = 0;
    Buf b = {0};
    JsonW w;
    jw_init(&w, &b, 0);
    if (cc.json)
        jw_arr(&w);
    /* Read-write: the first command with a key claims an unclaimed corpus,
     * so a later ingest with another key is refused. */
    if (db_open(&db, cc.db, DB_MUST_EXIST, &e)) {
        rc = cli_fail(&e);
        goto done;
    }
    for (int i = optind; i < argc; i++) {
        char skey[65];
        int64_t id;
        if (deid_study_find(db, key, argv[i], skey, &id, &e)) {
            rc = cli_fail(&e);
            goto done;
        }
        if (!id) {
            log_error("%s: no study with this accession in %s", argv[i], cc.db);
            missing++;
        }
        if (cc.json) {
            jw_obj(&w);
            jw_key(&w, "accession"); jw_str(&w, argv[i]);
            jw_key(&w, "study_key"); jw_str(&w, skey);
            jw_key(&w, "study_id");
            if (id)
                jw_int(&w, id);
            else
                jw_null(&w);
            jw_obj_end(&w);
        } else if (id) {
            buf_printf(&b, "%s\t%s\t%lld\n", argv[i], skey, (long long)id);
        } else {
            buf_printf(&b, "%s\t%s\t-\n", argv[i], skey);
        }
    }
    if (cc.json) {
        jw_arr_end(&w);
        buf_putc(&b, '\n');
    }
    rc = cli_write(&b); /* frees b */
    if (rc == EXIT_OK && missing)
        rc = EXIT_FAIL;
done:
    buf_free(&b);
    db_close(&db);
    cli_common_free(&cc);
    return rc;
}
