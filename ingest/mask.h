/* mask: TotalSegmentator masks onto the `total` task's label ids.
 *
 * A multi-label NIfTI with a label table (TotalSegmentator --ml writes one
 * in a Caret XML extension) is remapped by class name onto the ids of
 * schemas/totalseg_classes.tsv, so a mask from another version or task with
 * other numbers still lands on the same ids; labels whose names are not
 * classes become 0 (and are noted). Without a table, values are taken as
 * ids already. A folder of per-class files (<class>.nii.gz, 0/1) is merged
 * into one label volume, each class written with its id. */
#ifndef FVLM_INGEST_MASK_H
#define FVLM_INGEST_MASK_H

#include "buf.h"
#include "error.h"
#include "nifti.h"
#include "totalseg.h"
#include "vol.h"

/* Remaps mask values through a label table (see above). */
int mask_remap(Vol *mask, const NiftiLabel *labels, int nlabels, const TsClasses *t, Buf *notes,
               FvErr *e);

/* Adds binary class mask `part` (same grid as `into`) as label id. Voxels
 * already labelled keep their first label; overlaps are counted. */
int mask_merge_class(Vol *into, const Vol *part, int id, int64_t *overlaps, FvErr *e);

/* Mask or CT by content: 1 when the values are labels (integers in 0..255,
 * at least two of them: a uint8 or int16 volume of ids), 0 when they are
 * not (a value below 0 or above 255, or a fraction: HU), -1 when the
 * content cannot tell (one integer value in 0..255 everywhere: an empty
 * mask or a blank volume; the caller's name rule decides). *witness: the
 * value that decided (the first that is no label; else the largest). The
 * scan stops at the first value that is no label, so a CT costs little. */
int mask_content_verdict(const Vol *v, double *witness);

/* Converts a volume whose values are integers in 0..255 to uint8 labels in
 * place; fails (v unchanged) on any other value. */
int mask_to_labels(Vol *v, FvErr *e);

/* present[id] = voxel count of each label id (present has 256 entries). */
void mask_histogram(const Vol *mask, int64_t present[256]);

#endif
