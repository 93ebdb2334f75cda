/* ctrate: the CT-RATE dataset's names and tables.
 *
 * Volumes are named <split>_<patient>_<scan>_<recon>.nii.gz; the study is
 * <split>_<patient>_<scan> (e.g. valid_3_a) and the patient
 * <split>_<patient>. The same ids join rows of reports.csv, labels.csv and
 * metadata.csv (column VolumeName).
 *
 * metadata.csv rebuilds the geometry of a volume whose header is blank (the
 * first CT-RATE release: no sform, no qform): the NIfTI array is read as a
 * stack of DICOM slices, i = column, j = row, k = slice, with
 *   x step = XYSpacing[0], y step = XYSpacing[1] (the "[x, y]" string),
 *   z step = ZSpacing along the normal (row x column cosine),
 *   origin = ImagePositionPatient of slice 0, axes from
 *   ImageOrientationPatient (LPS, converted to RAS),
 * and stored values are rescaled by RescaleSlope/RescaleIntercept. */
#ifndef FVLM_INGEST_CTRATE_H
#define FVLM_INGEST_CTRATE_H

#include <stddef.h>

#include "error.h"

/* Parses a CT-RATE volume name (a path: the last component that matches
 * counts; extensions .nii.gz/.nii and a trailing "_seg"/"_mask" are
 * ignored). Returns 1 and fills study/patient/split when it matches. */
int ctrate_parse_name(const char *path, char study[96], char patient[96], char split[8],
                      int *recon);

typedef struct CtrateMeta {
    char volume[96];                 /* VolumeName without extension */
    double xy[2], z, slope, inter, ipp[3], iop[6];
    int has_xy, has_z, has_rescale, has_ipp, has_iop;
} CtrateMeta;

typedef struct CtrateMetaTable {
    CtrateMeta *rows;
    int n, cap;
} CtrateMetaTable;

/* Adds the rows of a metadata.csv. Rows without a VolumeName are skipped
 * and counted in *bad_rows. */
int ctrate_meta_load(CtrateMetaTable *t, const char *csv, size_t n, int *bad_rows, FvErr *e);
const CtrateMeta *ctrate_meta_find(const CtrateMetaTable *t, const char *volume_path);
void ctrate_meta_free(CtrateMetaTable *t);
/* The affine of a blank-header volume (RAS+ mm). Fails when spacing is
 * missing; orientation and origin default to axial LPS at 0. */
int ctrate_meta_affine(const CtrateMeta *m, double affine[4][4], FvErr *e);

#endif
