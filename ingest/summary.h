/* summary: a corpus described in numbers (the `fvlm stats` command).
 *
 * Studies by split and dataset, and how many have a volume, a mask and a
 * report; volume grids (min / median / max of each dimension), source
 * orientations and dtypes, HU means; masks resampled; reports by language,
 * encoding and format with placeholder counts; members by kind and status;
 * the last ingest runs; the most frequent error reasons; tensor shards on
 * disk. */
#ifndef FVLM_INGEST_SUMMARY_H
#define FVLM_INGEST_SUMMARY_H

#include "buf.h"
#include "db.h"
#include "error.h"

int corpus_summary(Db *db, Buf *json, FvErr *e);

#endif
