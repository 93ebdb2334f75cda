/* merge: corpora ingested apart (the shards of `fvlm ingest --shard K/N`,
 * or any ingests of disjoint inputs) into one corpus (`fvlm merge`).
 *
 * Each input is checked first, and refused when it cannot be merged: a
 * schema version other than this fvlm's (open it with this fvlm first: any
 * command migrates it), a de-identification key other than the target's
 * (meta `deid_fingerprint`, compared when both have it), parse or align
 * results (they run on the merged corpus: sentence ids are per corpus), or
 * the same shard number twice. Then, one transaction per input, its runs,
 * errors, studies, volumes, masks, reports, study_ids and sources are copied with new
 * ids (a study already in the target, by its keyed study id, keeps the
 * target's rows; a member already recorded at its place with its bytes is
 * not recorded twice), and its tensor files, whose names are hashes of
 * their content, are hard-linked into the target's tensor folder (copied
 * when on another file system; a name already there is the same bytes).
 * Files first, rows after: no row points to a file that is not there.
 *
 * Shards: `fvlm ingest --shard K/N` writes meta `shard` = "K/N" into its
 * corpus, and parse and align refuse a corpus so marked (corpus_is_shard):
 * labels and alignments are made once, on the merged corpus, where every
 * study's report and masks are. The merged corpus has no mark. */
#ifndef FVLM_INGEST_MERGE_H
#define FVLM_INGEST_MERGE_H

#include <stdint.h>

#include "buf.h"
#include "db.h"
#include "error.h"
#include "run.h"

typedef struct MergeCounts {
    int64_t inputs, runs, errors, studies, studies_known, volumes, masks, reports, sources;
    int64_t tensors_linked, tensors_copied, tensors_present;
    int shard_n;               /* the shards' N (0: no input was a shard) */
    int64_t shards_missing;    /* of 0..N-1, the numbers no input had */
} MergeCounts;

/* Merges the corpora inputs[0..n) into db (its tensors beside it). */
int merge_corpora(Db *db, Run *run, char *const *inputs, int n, MergeCounts *c, FvErr *e);
void merge_counts_json(const MergeCounts *c, Buf *b);

/* The shard mark of a corpus: *k, *n from meta `shard` ("K/N"), or n = 0. */
int corpus_shard_mark(Db *db, int *k, int *n, FvErr *e);
/* Marks db as shard k of n (n > 1; meta shard = "K/N"), or checks that an
 * unsharded ingest (n <= 1) does not add to a shard; refuses a corpus that
 * holds another shard, or studies ingested without --shard. */
int ingest_mark_shard(Db *db, int k, int n, FvErr *e);
/* An error naming the stage when db is a shard (parse and align run on the
 * merged corpus), 0 otherwise. */
int corpus_refuse_shard(Db *db, const char *stage, FvErr *e);

#endif
