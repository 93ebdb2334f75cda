/* run: the record of one stage invocation, and its per-item errors.
 *
 * run_begin inserts a `runs` row (stage, command line, config, version,
 * seed, start time, status 'running'); run_error logs one line naming the
 * source, member and reason and inserts an `errors` row, so a long run goes
 * on past a bad item and the failures stay queryable; run_finish sets the end
 * time, status and counts. A run found 'running' whose process is gone is
 * marked 'interrupted' by the next run_begin on the same database. */
#ifndef FVLM_RUN_H
#define FVLM_RUN_H

#include <stdint.h>

#include "buf.h"
#include "db.h"
#include "error.h"

typedef struct Run {
    Db *db;
    int64_t id;
    int64_t n_errors;
    char stage[32];
} Run;

/* The command line is recorded de-identified: every argument that names
 * a path (an existing file, anything with a '/', a positional argument)
 * goes through deid_path (archives are named by accession number); options
 * and their plain values are kept. run_begin keys the hashes with
 * $FVLM_DEID_KEY (without it, such names are recorded as "_" plus their
 * extension); run_begin_deid with the given key (NULL: none). */
int run_begin(Run *run, Db *db, const char *stage, int argc, char **argv,
              const char *config_json, int64_t seed, FvErr *e);
int run_begin_deid(Run *run, Db *db, const char *stage, int argc, char **argv,
                   const char *config_json, int64_t seed, const char *key, FvErr *e);
/* A recorded runs.args (JSON array) de-identified as run_begin_deid does,
 * into out (for corpora written before arguments were de-identified). */
int run_args_deid(const char *key, const char *args_json, Buf *out, FvErr *e);
/* Records one item's failure (and prints it as one error line). member may
 * be NULL. Returns -1 only when the database write itself fails. */
int run_error(Run *run, const char *source, const char *member, const char *reason, FvErr *e);
/* status: "ok", "failed" or "interrupted"; counts_json may be NULL. */
int run_finish(Run *run, const char *status, const char *counts_json, FvErr *e);

#endif
