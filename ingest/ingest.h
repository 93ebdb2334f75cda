/* ingest: CT exports into the corpus (the `fvlm ingest` stage).
 *
 * ingest_run walks the inputs (walk.h), reads each unit's members through
 * libarchive or from disk, hashes every member (a member recorded before
 * as ok or ignored at the same place with the same sha256 is skipped; the
 * same bytes in another study are that study's own member), decodes NIfTI
 * and DICOM (mask or CT by content),
 * stacks DICOM series (series.h), reorients to RAS and resamples to the
 * corpus spacing (trilinear for CT, nearest for masks), clips HU, writes
 * int16 CT and uint8 mask shards, de-identifies report text (phi.h) and
 * records everything in the corpus database, one transaction per item,
 * every stored name de-identified (deid_path; a name or report that cannot
 * be de-identified fails its item). A failing member is one error line
 * and one `errors` row; an ignored member one info line; the run goes on.
 * The files of the stage: see ingest_internal.h.
 * A mask met before its study's CT volume (CT-RATE members are stored as
 * they are met, so a masks/ folder or archive member walked first) is put
 * off: its unit is read again once every other unit is in, so one run
 * attaches it whatever the order.
 *
 * Study identifiers (pseudonymised with deid_pseudonym before storage):
 * DICOM StudyInstanceUID; CT-RATE <split>_<patient>_<scan>; otherwise the
 * unit's name (the archive's name without extension, or the study folder's
 * name); when a folder unit holds several NIfTI volumes, each volume's file
 * stem (masks and reports then join by stem). Patients: DICOM PatientID,
 * CT-RATE <split>_<patient>. Splits: a path component train, valid (val,
 * validation) or test, or CT-RATE's prefix; otherwise (and always with
 * ingest.split = hash) a keyed hash of the patient pseudonym. */
#ifndef FVLM_INGEST_INGEST_H
#define FVLM_INGEST_INGEST_H

#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "db.h"
#include "error.h"
#include "phi.h"
#include "run.h"
#include "vol.h"

typedef struct IngestOpts {
    double spacing[3];          /* corpus grid spacing, mm, x y z (ingest.spacing) */
    double hu_lo, hu_hi;        /* ingest.hu_clip */
    int64_t max_voxels;         /* ingest.max_voxels */
    int64_t max_report_bytes;   /* ingest.max_report_bytes */
    int split_hash;             /* ingest.split = hash */
    double fractions[3];        /* ingest.split_fractions: train, valid, test */
    const char *key;            /* de-identification secret (deid.key / FVLM_DEID_KEY) */
    int shard_k, shard_n;       /* --shard K/N: only the studies whose keyed hash falls in
                                 * shard K of N (ingest_in_shard); n = 0: all */
} IngestOpts;

/* Reads the ingest.* keys (defaults: spacing 1, 1, 3; hu_clip -1024, 3071;
 * max_voxels 512*512*2000; max_report_bytes 1 MiB; split path; fractions
 * 0.8, 0.1, 0.1) and the de-identification key (required). */
int ingest_opts_load(IngestOpts *o, Config *cfg, FvErr *e);

typedef struct IngestCounts {
    int64_t units, members, known, bytes_disk, bytes_members;
    int64_t studies_new, volumes, masks, reports, table_rows;
    int64_t ignored, failed, errors;
    int64_t other_shard;        /* items of studies of another shard (--shard), left out */
    int64_t swept_tmp, swept_orphans;
    int64_t phi[PHI_NKINDS];
    double seconds;
} IngestCounts;

void ingest_counts_json(const IngestCounts *c, Buf *b);

/* Asks a running ingest_run to stop after the current member (from a signal
 * handler: it only sets a flag). ingest_run then returns 1. */
void ingest_request_stop(void);

/* progress: draw progress on stderr. Returns 0 when done, 1 when stopped
 * by ingest_request_stop, -1 on a failure that ends the run. */
int ingest_run(Db *db, Run *run, const IngestOpts *o, char *const *inputs, int ninputs,
               int progress, IngestCounts *c, FvErr *e);

/* Reorients v (HU) to RAS, resamples it to `spacing` (trilinear) and clips
 * to [lo, hi] into an int16 grid (out). v is consumed (freed). */
int ingest_ct_to_grid(Vol *v, const double spacing[3], double lo, double hi, int64_t max_voxels,
                      Vol *out, FvErr *e);

#endif
