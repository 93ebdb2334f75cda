/* vol: a 3D volume (CT in HU, or a label mask) and its geometry.
 *
 * Memory order: x fastest, then y, then z: data[(z * ny + y) * nx + x], so
 * the array read as (z, y, x) is the order fVLM's code uses.
 * Geometry: `affine` maps a voxel index (x, y, z, 1) to world millimetres in
 * RAS+ (x toward the patient's Right... precisely: +x = Right, +y = Anterior,
 * +z = Superior, NIfTI's convention; DICOM's LPS+ has x and y negated).
 *
 * Canonical orientation of the corpus: RAS. Voxel index x increases toward
 * the patient's right, y toward anterior, z toward superior (nibabel's
 * as_closest_canonical), so a Python user gets the same array from
 * nib.as_closest_canonical(img).get_fdata().transpose(2, 1, 0).
 * Reorientation only permutes and flips axes (no interpolation); resampling
 * to the corpus spacing then interpolates (trilinear for CT, nearest for
 * masks). An oblique scan keeps its nearest axis assignment; its obliquity
 * is reported by vol_obliquity(). */
#ifndef FVLM_VOL_H
#define FVLM_VOL_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef enum { VOL_U8 = 0, VOL_I16 = 1, VOL_F32 = 2 } VolType;

typedef struct Vol {
    int64_t nx, ny, nz;     /* voxels */
    double affine[4][4];    /* voxel index -> RAS+ mm */
    VolType type;
    void *data;             /* owned by the Vol */
} Vol;

size_t vol_type_size(VolType t);
int64_t vol_count(const Vol *v);

/* Allocates zeroed data; fails with FV_ELIMIT when nx*ny*nz exceeds
 * max_voxels (checked before allocating) or a dimension is < 1. The affine
 * is set to the identity. */
int vol_alloc(Vol *v, VolType t, int64_t nx, int64_t ny, int64_t nz, int64_t max_voxels,
              FvErr *e);
void vol_free(Vol *v);

/* Voxel value as float (any type). No bounds check. */
float vol_get(const Vol *v, int64_t x, int64_t y, int64_t z);

/* Spacing in mm along the voxel axes x, y, z (norms of the affine columns). */
void vol_spacing(const Vol *v, double sp[3]);
/* Orientation code, three letters from RLAPSI: the direction in which each
 * voxel axis (x, y, z) points, e.g. "LPS" for a DICOM-ordered volume. */
void vol_orient_code(const double affine[4][4], char code[4]);
/* Largest angle in degrees between a voxel axis and its nearest world axis. */
double vol_obliquity(const double affine[4][4]);

/* Permutes and flips axes in place so the orientation code is "RAS". */
int vol_reorient_canonical(Vol *v, FvErr *e);

/* Threads the trilinear resampling uses (default 1; at most VOL_MAX_THREADS):
 * the output in slabs of z planes; results do not depend on the count. */
enum { VOL_MAX_THREADS = 64 };
void vol_set_threads(int n);
int vol_threads(void);

/* Resamples an axis-aligned volume to new spacing (mm, x y z) over the same
 * physical extent: n' = max(1, round(n * s / s')), voxel centres at
 * ((i + 0.5) * s' - 0.5 * s) mm from the first source centre. nearest
 * selects nearest-neighbour (masks) instead of trilinear; the output type
 * is the input type (values rounded for integer types). */
int vol_resample(const Vol *src, const double spacing[3], int nearest, int64_t max_voxels,
                 Vol *dst, FvErr *e);

/* Resamples src onto the grid of `grid` (its dims and affine; its data is
 * not read) through world coordinates; voxels outside src get 0. */
int vol_resample_to(const Vol *src, const Vol *grid, int nearest, Vol *dst, FvErr *e);

/* 4x4 helpers. */
void mat4_mul(const double a[4][4], const double b[4][4], double out[4][4]);
int mat4_inverse(const double m[4][4], double out[4][4]);

#endif
