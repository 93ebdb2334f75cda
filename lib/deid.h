/* deid: pseudonyms for study and patient identifiers.
 *
 * A pseudonym is HMAC-SHA256(key, "<kind>:<source id>") in hex, so the same
 * source id always maps to the same key under one secret, and nobody without
 * the secret can go back. The secret comes from the config (`deid.key`) or
 * the environment (FVLM_DEID_KEY); there is no default, on purpose: a
 * default would be a published key. Ingest and eval (which joins truth files
 * to studies) use the same function. */
#ifndef FVLM_DEID_H
#define FVLM_DEID_H

#include "config.h"
#include "db.h"
#include "error.h"

/* The secret: config deid.key (may be env:NAME), else $FVLM_DEID_KEY.
 * Fails with a message saying how to set it. Points into cfg or environ. */
int deid_key(Config *cfg, const char **key, FvErr *e);

/* kind is "study" or "patient"; out receives 64 hex characters + NUL. */
int deid_pseudonym(const char *key, const char *kind, const char *source_id, char out[65],
                   FvErr *e);

/* ---- the corpus's key fingerprint (T-trust) ----
 *
 * A corpus records which key made its study keys: the fingerprint is
 * HMAC-SHA256(key, DEID_FINGERPRINT_MSG) in hex, kept in meta under
 * `deid_fingerprint`. It tells keys apart without revealing the key (the
 * HMAC is one-way), so a command that hashes accessions with another key
 * stops instead of making study keys that match nothing. */
#define DEID_FINGERPRINT_MSG "fvlm key fingerprint v1"

/* out receives 64 hex characters + NUL. */
void deid_fingerprint(const char *key, char out[65]);

/* Checks key against the corpus's fingerprint. When the corpus has none
 * yet and db is writable, records this key's (the first command that
 * hashes with a key claims the corpus; a concurrent claim with another key
 * is caught by reading back what was stored). A corpus with studies but no
 * fingerprint (built before fingerprints were kept) cannot be checked: it
 * gets this key's, with a warning on stderr. Fails with FV_EUSAGE naming
 * both fingerprints (first 12 hex digits) when the keys differ. */
int deid_check_corpus(Db *db, const char *key, FvErr *e);

/* An accession (a source study id as ingest read it: the DICOM
 * StudyInstanceUID, else the archive or file name without extension) to
 * its study key, after deid_check_corpus; *study_id receives studies.id,
 * or 0 when the corpus has no study with that key. The accession itself is
 * never stored. */
int deid_study_find(Db *db, const char *key, const char *accession, char study_key[65],
                    int64_t *study_id, FvErr *e);

#endif
