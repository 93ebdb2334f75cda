/* nifti: NIfTI-1 and NIfTI-2 headers and voxel data (and Analyze 7.5).
 *
 * Byte order is detected from sizeof_hdr (348 or 540, or either swapped).
 * The affine follows nibabel's get_best_affine: sform when sform_code > 0,
 * else qform (quaternion, pixdim, qfac) when qform_code > 0, else the
 * Analyze-style base affine (x flipped, origin at the volume centre), so a
 * Python user reading the same file with nibabel sees the same geometry.
 * Values are scaled by scl_slope/scl_inter when the slope is finite and
 * non-zero. Every field used is validated: dims positive, the voxel count
 * under the caller's limit before any allocation, vox_offset plus the data
 * inside the file, extensions inside the header space. */
#ifndef FVLM_INGEST_NIFTI_H
#define FVLM_INGEST_NIFTI_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "vol.h"

enum { NIFTI_MAX_EXT = 32 };

typedef struct NiftiExt {
    int code;
    size_t offset, size; /* the extension's data (after its 8-byte head), in the header bytes */
} NiftiExt;

typedef struct NiftiHeader {
    int version;          /* 1, 2, or 0 for an Analyze 7.5 header (no magic) */
    int big;              /* stored big-endian */
    int pair;             /* "ni1"/"ni2": the data is in a separate .img file */
    size_t hdr_size;      /* 348 or 540 */
    int ndim;             /* dim[0] */
    int64_t dim[8];
    int datatype, bitpix;
    double pixdim[8];
    int64_t vox_offset;   /* bytes */
    double scl_slope, scl_inter;
    int scaled;           /* the slope is finite and non-zero */
    int qform_code, sform_code;
    double quatern[3], qoffset[3];
    double srow[3][4];
    int xyzt_units;
    char descrip[81];
    double affine[4][4];  /* voxel -> RAS+ mm, nibabel's best affine */
    const char *affine_from; /* "sform", "qform" or "pixdim" */
    NiftiExt ext[NIFTI_MAX_EXT];
    int n_ext;
    char ext_note[160];   /* why extensions were ignored, or "" */
    char code_note[96];   /* invalid sform/qform codes read as 0, or "" */
} NiftiHeader;

typedef struct NiftiLabel {
    int key;
    char name[64];
} NiftiLabel;

/* Name of a datatype code ("int16"), or NULL when unknown. */
const char *nifti_dtype_name(int datatype);
/* Bytes per voxel of a supported datatype, 0 when unsupported. */
int nifti_dtype_size(int datatype);

/* Parses the header at p (n bytes available: at least 348, or 540 for
 * NIfTI-2; extensions are read when n reaches vox_offset). Validates the
 * dims, datatype and geometry; does not look at the data. */
int nifti_header_parse(const unsigned char *p, size_t n, NiftiHeader *h, FvErr *e);

/* Voxels of the 3-D volume (dim1 * dim2 * dim3) and its data bytes; fails
 * with FV_ELIMIT over max_voxels, FV_EUNSUPPORTED for 4-D data with more
 * than one volume. */
int nifti_data_size(const NiftiHeader *h, int64_t max_voxels, int64_t *nvox, size_t *nbytes,
                    FvErr *e);

/* Reads the voxel data (data points at the first voxel, avail bytes from
 * there) into v. mask: uint8 labels (values must be integers in 0..255);
 * otherwise the smallest exact type: int16 when the scaled values are
 * integers in int16's range, else float32. Non-finite values become 0 and
 * are counted in *n_nonfinite (may be NULL). */
int nifti_read_data(const NiftiHeader *h, const unsigned char *data, size_t avail, int mask,
                    int64_t max_voxels, Vol *v, int64_t *n_nonfinite, FvErr *e);

/* A whole NIfTI file in memory (.nii, or .nii.gz: decompressed here with a
 * bound derived from the validated header). For a .hdr/.img pair pass the
 * .img bytes as img (gzip or not); otherwise img is NULL. On success the
 * header's extension offsets refer to *hdr_bytes (kept for the caller when
 * hdr_bytes is not NULL; caller frees). */
int nifti_load(const unsigned char *bytes, size_t n, const unsigned char *img, size_t img_n,
               int mask, int64_t max_voxels, NiftiHeader *h, Vol *v, unsigned char **hdr_bytes,
               size_t *hdr_len, FvErr *e);

/* Inflates a single-file .nii.gz after validating its header (the bound
 * is the size the header implies, under max_voxels), so the bytes can be
 * decoded later (or on another thread) without inflating again. */
int nifti_inflate(const unsigned char *gz, size_t n, int64_t max_voxels, unsigned char **out,
                  size_t *outlen, FvErr *e);

/* The label table of a multi-label mask: TotalSegmentator writes a Caret
 * XML extension (<Label Key="5" ...><![CDATA[liver]]></Label>). Returns the
 * number of labels found (0 when none), *labels malloc'd (caller frees). */
int nifti_label_table(const NiftiHeader *h, const unsigned char *hdr_bytes, size_t hdr_len,
                      NiftiLabel **labels, FvErr *e);

#endif
