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

#include <stddef.h>

#include "buf.h"
#include "config.h"
#include "db.h"
#include "error.h"

/* The secret: config deid.key (may be env:NAME), else $FVLM_DEID_KEY.
 * Fails with a message saying how to set it. Points into cfg or environ. */
int deid_key(Config *cfg, const char **key, FvErr *e);

/* kind is "study" or "patient" (the keys stored in studies), or one of the
 * DEID_ID_* kinds below; out receives 64 hex characters + NUL. */
int deid_pseudonym(const char *key, const char *kind, const char *source_id, char out[65],
                   FvErr *e);

/* Paths keep identifiers: hospitals name archives and folders by accession
 * number or patient name (CT20231118002.tar.gz, Zhang_San_0042.zip). The
 * de-identified form of a path, or of "archive:member": each component
 * (between '/' and ':') that is not a generic name is replaced by the
 * first 12 hex digits of HMAC-SHA256(key, "path:<component without its
 * extension>"), its extension kept (.tar.gz, .nii.gz, .dcm) so a reader
 * still sees what the file was. Generic names stay: the folder and file
 * names of the layouts fvlm reads (dicom, seg, masks, report.txt, ct.nii.gz,
 * train/valid/test, metadata.csv, ...), numbered files (IM0001.dcm, 0001,
 * slice_12: a prefix of at most 5 letters and at most 6 digits; an
 * accession's 8+ digits are not generic), "row N" and "line N". A trailing
 * " (...)" that fvlm itself adds to a description (" (series 3, 120
 * images)") is kept. key NULL: non-generic components become "_" plus
 * their extension (nothing keyed, nothing kept). Appends to out; fails
 * (nothing appended) on an allocation failure or a path longer than
 * DEID_PATH_MAX bytes, so a caller never stores a name it could not
 * de-identify. */
#define DEID_PATH_MAX 8192
int deid_path(const char *key, const char *path, Buf *out, FvErr *e);

/* deid_path into a caller's buffer of n bytes: fails when it does not fit
 * (a cut name could end inside a hash). */
int deid_path_to(const char *key, const char *path, char *out, size_t n, FvErr *e);

/* 1 when a path component (without folder) is a generic name. */
int deid_component_is_generic(const char *comp, size_t n);

/* Free text that may name files (an error message): every whitespace-
 * separated word holding a '/' or ending in a known file extension goes
 * through deid_path; the rest is kept. Appends to out. */
int deid_text_paths(const char *key, const char *text, Buf *out, FvErr *e);
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

/* ---- finding a study by what a user holds ----
 *
 * Ingest records, for every study, the keyed hash of each identifier a user
 * may type (table study_ids): deid_pseudonym(key, kind, identifier) with
 * kind DEID_ID_ACCESSION (the DICOM AccessionNumber), DEID_ID_STUDY_UID (the
 * StudyInstanceUID) or DEID_ID_SOURCE (the archive or study-folder name
 * without extension, a volume's file stem, a CT-RATE study or volume name).
 * The identifiers themselves are never stored. */
#define DEID_ID_ACCESSION "accession"
#define DEID_ID_STUDY_UID "study_uid"
#define DEID_ID_SOURCE "source"

/* Records the hash of one identifier of a study (INSERT OR IGNORE, in the
 * caller's transaction). An empty or all-blank id records nothing; the id
 * is trimmed of surrounding whitespace first, as deid_study_lookup trims
 * what a user types. */
int deid_study_id_put(Db *db, const char *key, int64_t study_id, const char *kind,
                      const char *id, FvErr *e);

/* One study that typed text names. */
typedef struct DeidMatch {
    int64_t study_id;
    char study_key[65];
    /* the kinds it matched, comma-separated, in the order accession,
     * study_uid, source, study (the last: the study key itself is the hash
     * of the text, as for studies ingested before study_ids was kept) */
    char matched[48];
} DeidMatch;

/* Every study that an identifier a user typed names, looked up by keyed
 * hash under each kind of study_ids, and as a study key (the hash of the
 * source study id). The text is trimmed of surrounding whitespace; when it
 * looks like a path or a file name (CT20231118002.tar.gz,
 * train_1_a_1.nii.gz), its name without folders and extension is looked up
 * too. *out (ordered by study id; free() it) and *n receive the matches;
 * none is n = 0, not an error. No fingerprint check: see deid_study_find. */
int deid_study_lookup(Db *db, const char *key, const char *text, DeidMatch **out, int *n,
                      FvErr *e);

/* deid_study_lookup after deid_check_corpus (the key must be the corpus's:
 * another key's hashes match nothing, and that must not read as "no such
 * study"). Used by fvlm key and --accession on show and export. */
int deid_study_find(Db *db, const char *key, const char *text, DeidMatch **out, int *n,
                    FvErr *e);

#endif
