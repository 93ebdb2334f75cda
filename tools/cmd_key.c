/* fvlm key: the identifiers a user holds (accession, archive name, study
 * UID, CT-RATE volume name) to studies, so a user can find a study without
 * the corpus ever holding one. */
#include <stdio.h>
#include <stdlib.h>
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
    "Finds the studies of identifiers a user holds, without the corpus ever\n"
    "holding one: ingest keeps only keyed hashes (HMAC-SHA256 under the\n"
    "de-identification key) of each study's identifiers. ACCESSION may be:\n"
    "  - the DICOM AccessionNumber (0008,0050), as the hospital's systems show it;\n"
    "  - the archive or study-folder name the hospital gave, with or without its\n"
    "    extension or folders (CT20231118002.tar.gz, CT20231118002);\n"
    "  - the DICOM StudyInstanceUID;\n"
    "  - a CT-RATE VolumeName or study name (train_1_a_1.nii.gz, train_1_a).\n"
    "Surrounding spaces are ignored; the rest must match exactly. The key comes\n"
    "from FVLM_DEID_KEY or deid.key in the config, and must be the corpus's (its\n"
    "fingerprint is checked first). The identifiers are printed here only, never\n"
    "stored. Then `fvlm show STUDY_ID`, `fvlm show --accession A` and\n"
    "`fvlm export --accession A` select that study.\n\n"
    "Output: one line per study found, ACCESSION<TAB>STUDY_KEY<TAB>STUDY_ID<TAB>\n"
    "MATCHED (what it matched: accession, study_uid, source for an archive, folder\n"
    "or file name, study for the study key itself; comma-separated). An identifier\n"
    "that names several studies (an archive holding a prior) gives a line for each.\n"
    "One that names none gives ACCESSION<TAB>-<TAB>-<TAB>- and an error line; then\n"
    "the exit status is 1.\n\n"
    "options:\n"
    "  --db FILE          corpus database (default corpus.db)\n"
    "  --config FILE      configuration file (for deid.key)\n"
    "  --json             a JSON array of {accession, study_key, study_id, matched},\n"
    "                     nulls for an identifier with no study\n"
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
        DeidMatch *m = NULL;
        int n = 0;
        if (deid_study_find(db, key, argv[i], &m, &n, &e)) {
            rc = cli_fail(&e);
            goto done;
        }
        if (n == 0) {
            log_error("%s: no study with this identifier in %s (an AccessionNumber, archive or "
                      "study-folder name, StudyInstanceUID or CT-RATE volume name)",
                      argv[i], cc.db);
            missing++;
        }
        if (cc.json) {
            for (int k = 0; k < (n ? n : 1); k++) {
                jw_obj(&w);
                jw_key(&w, "accession"); jw_str(&w, argv[i]);
                jw_key(&w, "study_key");
                if (n) jw_str(&w, m[k].study_key); else jw_null(&w);
                jw_key(&w, "study_id");
                if (n) jw_int(&w, m[k].study_id); else jw_null(&w);
                jw_key(&w, "matched");
                if (n) jw_str(&w, m[k].matched); else jw_null(&w);
                jw_obj_end(&w);
            }
        } else if (n == 0) {
            buf_printf(&b, "%s\t-\t-\t-\n", argv[i]);
        } else {
            for (int k = 0; k < n; k++)
                buf_printf(&b, "%s\t%s\t%lld\t%s\n", argv[i], m[k].study_key,
                           (long long)m[k].study_id, m[k].matched);
        }
        free(m);
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
