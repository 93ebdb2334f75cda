/* corpus: what ingest writes: sources, studies, volumes, masks, reports
 * rows of the corpus database, and tensor shards under <db>.tensors/.
 *
 * Shards: one tensor per file, named by content: the first 32 hex digits
 * of the SHA-256 of the tensor's dtype, shape, affine and bytes, plus
 * ".safetensors" (tensor "ct": int16 HU, or "mask": uint8 ids, shape
 * (z, y, x); metadata: kind, affine, spacing). A shard is written to a
 * temporary name, fsynced and renamed before the row that points to it is
 * committed; at start-up corpus_sweep removes temporary files and shards
 * no row points to, which is what a kill -9 between the rename and the
 * commit leaves behind. Identical content is written once.
 *
 * Rows of one item (a volume and its sources, a mask, a report) are
 * written in one transaction by the caller (corpus_begin/commit), so an
 * interrupted run never leaves half an item. */
#ifndef FVLM_INGEST_CORPUS_H
#define FVLM_INGEST_CORPUS_H

#include <stdint.h>

#include "buf.h"
#include "db.h"
#include "error.h"
#include "run.h"
#include "vol.h"

/* Names of files and members can carry identifiers (hospitals name
 * archives by accession number): every path-like string is passed through
 * this before it is stored; the de-identified text is appended to out.
 * Returns 0, or -1 (e set) when the name cannot be de-identified: then
 * nothing of the item is stored (de-identification fails closed). */
typedef int (*CorpusScrub)(void *ctx, const char *in, Buf *out, FvErr *e);

typedef struct Corpus {
    Db *db;
    Run *run;
    char tensor_dir[4096];
    CorpusScrub scrub;   /* NULL: stored as given */
    void *scrub_ctx;
} Corpus;

/* The de-identified form of a path-like string into out (reset first; in
 * as given when no scrub is set). in NULL gives "". Returns 0 or -1. */
int corpus_clean(Corpus *c, const char *in, Buf *out, FvErr *e);

int corpus_open(Corpus *c, Db *db, Run *run, FvErr *e);

/* A corpus written before names were de-identified keeps archive and
 * folder names in sources, errors, volumes/masks/reports.source and
 * runs.args: rewrites every such value once through the scrub (runs.args
 * and error reasons through deid_path / deid_text_paths with key), marks
 * the corpus (meta names_deidentified = 1) and VACUUMs, so no old page
 * keeps a name. A new or already marked corpus is only marked. Sets
 * *rows to the number of values rewritten. Run before anything else of the
 * run is written. */
int corpus_deid_names(Corpus *c, const char *key, int64_t *rows, FvErr *e);

/* Removes temporary files and unreferenced shards, unless another ingest
 * run is live on this database (then nothing is touched). */
int corpus_sweep(Corpus *c, int *n_tmp, int *n_orphans, FvErr *e);

int corpus_begin(Corpus *c, FvErr *e);
int corpus_commit(Corpus *c, FvErr *e);
void corpus_rollback(Corpus *c);

/* A member's identity is its place and its bytes: the same bytes in two
 * studies (a template report, a shared mask file) are two members, each
 * recorded and stored for its own study. Status of the member at this
 * place (path and member as given: compared de-identified) with this
 * sha256 (any kind): 1 and status ("ok", "failed", "ignored") when
 * recorded before, else 0. */
int corpus_source_status(Corpus *c, const char *sha, const char *path, const char *member,
                         char status[16], FvErr *e);

/* Records a member. On a repeat (same sha256, kind, path and member) only
 * a 'failed' row is updated (a retry that now succeeds or fails again).
 * study_id <= 0 is NULL; reason (why it was ignored) may be NULL. */
int corpus_source_put(Corpus *c, const char *path, const char *member, const char *sha,
                      int64_t size, const char *kind, const char *status, int64_t study_id,
                      const char *reason, FvErr *e);

/* The study with this key, created when absent (patient_key may be NULL). */
int corpus_study(Corpus *c, const char *study_key, const char *patient_key, const char *dataset,
                 const char *split, int64_t *id, int *created, FvErr *e);

/* The study's volume, if any: id, sha256 and the grids. */
typedef struct VolumeInfo {
    int64_t id;
    char sha[65];
    char source[512];
    int64_t dims[3];          /* corpus grid nx, ny, nz */
    double affine[4][4];      /* corpus grid */
    int64_t src_dims[3];
    double src_affine[4][4];
} VolumeInfo;

int corpus_volume_of(Corpus *c, int64_t study_id, VolumeInfo *v, int *found, FvErr *e);
/* sha256 of the study's mask or report ("" when none). */
int corpus_mask_sha(Corpus *c, int64_t study_id, char sha[65], FvErr *e);
int corpus_report_sha(Corpus *c, int64_t study_id, char sha[65], FvErr *e);

/* Writes one tensor shard (content-addressed); shard receives the file
 * name (no folder). */
int corpus_write_shard(Corpus *c, const char *tensor, const Vol *v, char shard[64], FvErr *e);

typedef struct VolumeRow {
    int64_t study_id;
    const char *sha, *source, *src_dtype, *notes;
    int64_t src_dims[3];
    double src_spacing[3];
    double src_affine[4][4];
    char src_orient[4];
    const Vol *grid;          /* the stored tensor (int16) */
    const char *shard;
    double hu_min, hu_max, hu_mean;
} VolumeRow;

int corpus_volume_put(Corpus *c, const VolumeRow *r, int64_t *id, FvErr *e);
int corpus_mask_put(Corpus *c, int64_t study_id, int64_t volume_id, const char *sha,
                    const char *source, const char *shard, const char *labels_json,
                    int resampled, FvErr *e);
int corpus_report_put(Corpus *c, int64_t study_id, const char *sha, const char *source,
                      const char *format, const char *language, const char *encoding,
                      const char *text, int n_phi, FvErr *e);

/* JSON helpers for geometry columns. */
void json_affine(const double a[4][4], char *out, size_t n);
int json_affine_parse(const char *s, double a[4][4]);

#endif
