#include "deid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "sha256.h"

int deid_key(Config *cfg, const char **key, FvErr *e)
{
    const char *k = cfg ? config_str(cfg, "deid.key", NULL) : NULL;
    if (!k || !*k)
        k = getenv("FVLM_DEID_KEY");
    if (!k || !*k)
        return err_set(e, FV_EUSAGE,
                       "no de-identification key: set FVLM_DEID_KEY in the environment or "
                       "deid.key in the config (any secret string, kept the same for one corpus)");
    if (strlen(k) < 8)
        return err_set(e, FV_EUSAGE, "the de-identification key is shorter than 8 characters");
    *key = k;
    return 0;
}

int deid_pseudonym(const char *key, const char *kind, const char *source_id, char out[65],
                   FvErr *e)
{
    Buf msg = {0};
    buf_printf(&msg, "%s:%s", kind, source_id);
    if (msg.failed) {
        buf_free(&msg);
        return err_set(e, FV_ENOMEM, "de-identification: out of memory");
    }
    unsigned char mac[32];
    hmac_sha256(key, strlen(key), msg.data, msg.len, mac);
    buf_free(&msg);
    sha256_to_hex(mac, out);
    return 0;
}

/* ---------------------------------------------------------------------------
 * The corpus's key fingerprint (T-trust).
 * ------------------------------------------------------------------------ */

void deid_fingerprint(const char *key, char out[65])
{
    unsigned char mac[32];
    hmac_sha256(key, strlen(key), DEID_FINGERPRINT_MSG, strlen(DEID_FINGERPRINT_MSG), mac);
    sha256_to_hex(mac, out);
}

/* The stored fingerprint into out ("" when none). */
static int stored_fingerprint(Db *db, char out[65], FvErr *e)
{
    sqlite3_stmt *st;
    out[0] = '\0';
    if (db_prepare(db, &st, "SELECT value FROM meta WHERE key = 'deid_fingerprint'", e))
        return -1;
    int got = db_step(db, st, e);
    if (got == 1) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        snprintf(out, 65, "%s", v ? (const char *)v : "");
    }
    sqlite3_finalize(st);
    return got < 0 ? -1 : 0;
}

int deid_check_corpus(Db *db, const char *key, FvErr *e)
{
    char mine[65], theirs[65];
    deid_fingerprint(key, mine);
    if (stored_fingerprint(db, theirs, e))
        return -1;
    if (!theirs[0] && !sqlite3_db_readonly(db->h, "main")) {
        int64_t any = 0;
        int found = 0;
        if (db_query_int(db, e, &any, &found, "SELECT EXISTS (SELECT 1 FROM studies)", ""))
            return -1;
        if (any)
            log_warn("%s has studies but no key fingerprint (built before fvlm kept one): this "
                     "key cannot be checked against them and is recorded as the corpus's",
                     db->path);
        if (db_run(db, e, "INSERT OR IGNORE INTO meta (key, value) VALUES ('deid_fingerprint', ?)",
                   "s", mine) ||
            stored_fingerprint(db, theirs, e))
            return -1;
    }
    if (theirs[0] && strcmp(theirs, mine) != 0) {
        return err_set(e, FV_EUSAGE,
                       "%s was built with another de-identification key (fingerprint %.12s..., "
                       "this key %.12s...): set FVLM_DEID_KEY to the corpus's key",
                       db->path, theirs, mine);
    }
    return 0;
}

int deid_study_find(Db *db, const char *key, const char *accession, char study_key[65],
                    int64_t *study_id, FvErr *e)
{
    *study_id = 0;
    if (deid_check_corpus(db, key, e) || deid_pseudonym(key, "study", accession, study_key, e))
        return -1;
    int found = 0;
    if (db_query_int(db, e, study_id, &found, "SELECT id FROM studies WHERE study_key = ?", "s",
                     study_key))
        return -1;
    if (!found)
        *study_id = 0;
    return 0;
}
