/* anat_stats: each anatomy's mean HU and volume in one study, from the
 * corpus tensors (public, for eval's trivial baseline).
 *
 * What a reader of the scan gets without looking at any structure: the
 * anatomy's voxels (its own TotalSegmentator ids, or those of its region_of
 * anatomies) at the corpus grid, their mean HU and their volume. A
 * benchmark task a logistic regression solves from these two numbers is
 * not a test of a vision model. */
#ifndef FVLM_TRAIN_ANAT_STATS_H
#define FVLM_TRAIN_ANAT_STATS_H

#include <stdint.h>

#include "db.h"
#include "error.h"
#include "ontology.h"

/* mean_hu, ml: (o->n_anat); valid[a] = 1 when the anatomy has voxels in
 * the study. -1 (e) when the study's tensors cannot be read. */
int anat_stats_study(Db *db, const Ontology *o, int64_t study_id, double *mean_hu, double *ml,
                     unsigned char *valid, FvErr *e);

#endif
