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
#include "error.h"

/* The secret: config deid.key (may be env:NAME), else $FVLM_DEID_KEY.
 * Fails with a message saying how to set it. Points into cfg or environ. */
int deid_key(Config *cfg, const char **key, FvErr *e);

/* kind is "study" or "patient"; out receives 64 hex characters + NUL. */
int deid_pseudonym(const char *key, const char *kind, const char *source_id, char out[65],
                   FvErr *e);

#endif
