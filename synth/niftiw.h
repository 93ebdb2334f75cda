/* niftiw: NIfTI-1 single-file (.nii) encoding.
 *
 * The header is written field by field in little-endian order (offsets of
 * the NIfTI-1 standard), optionally followed by one header extension (code
 * 0, the way TotalSegmentator stores its label table), then the voxels at
 * vox_offset. The orientation can be stored as sform, qform (quaternion,
 * qfac for a left-handed grid), both, or neither ("blank": pixdim 1 and no
 * orientation, as CT-RATE's first release had). */
#ifndef FVLM_SYNTH_NIFTIW_H
#define FVLM_SYNTH_NIFTIW_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"

enum { NIFTI_UINT8 = 2, NIFTI_INT16 = 4 };
enum { NIFTI_HDR_SFORM = 1, NIFTI_HDR_QFORM = 2, NIFTI_HDR_BOTH = 3, NIFTI_HDR_BLANK = 0 };

typedef struct NiftiSpec {
    int64_t dim[3];            /* voxels along i, j, k */
    int datatype;              /* NIFTI_UINT8 or NIFTI_INT16 */
    double affine[4][4];       /* voxel (i, j, k) -> RAS+ mm */
    int header;                /* NIFTI_HDR_* */
    double scl_slope, scl_inter; /* slope 0: unscaled */
    const void *data;          /* dim[0]*dim[1]*dim[2] voxels, i fastest, little-endian */
    const char *ext;           /* extension payload (code 0) or NULL */
    size_t ext_len;
    const char *descrip;       /* <= 79 bytes used */
} NiftiSpec;

/* Appends the .nii bytes to out. */
int niftiw_encode(const NiftiSpec *s, Buf *out, FvErr *e);
/* Quaternion parameters of the rotation part of an affine: b, c, d, qfac and
 * pixdim[1..3] (exposed for tests). */
void niftiw_quatern(const double affine[4][4], double q[3], double *qfac, double pix[3]);
/* The label table of a multi-label mask in TotalSegmentator's XML form
 * (names[i] for id i, NULL to skip). */
void niftiw_label_xml(const char *const *names, int n, Buf *out);

#endif
