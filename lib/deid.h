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
#include "error.h"

/* The secret: config deid.key (may be env:NAME), else $FVLM_DEID_KEY.
 * Fails with a message saying how to set it. Points into cfg or environ. */
int deid_key(Config *cfg, const char **key, FvErr *e);

/* kind is "study" or "patient"; out receives 64 hex characters + NUL. */
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

#endif
