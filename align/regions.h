/* regions: anatomy regions from a TotalSegmentator label mask.
 *
 * regions_scan makes one pass over a uint8 mask of shape (nz, ny, nx) (x
 * fastest) and keeps, per label id, the voxel count and the bounding box.
 * It walks each row in runs of equal labels, comparing 8 bytes at a time, so
 * the large uniform stretches of a mask (background, organ interiors) cost a
 * fraction of a cycle per voxel.
 *
 * regions_merge turns label statistics into anatomy regions: an anatomy
 * with TotalSegmentator ids merges them; one without a mask of its own
 * (lymph node, pleura, mediastinum, body) takes the union of its `region_of`
 * anatomies. The union region covers every anatomy that carries diagnosis
 * tasks, and its box is widened by fVLM's crop margin (5 slices of 3 mm in
 * z, 20 voxels of 1 mm in y and x: 15, 20, 20 mm) and clipped to the volume.
 *
 * Boxes are half-open voxel ranges [lo, hi) in (z, y, x). A region is whole
 * when its box does not touch the volume's border (fVLM trains an anatomy
 * only when it lies whole inside the crop); the union's `whole` is decided
 * on its box before the margin. */
#ifndef FVLM_ALIGN_REGIONS_H
#define FVLM_ALIGN_REGIONS_H

#include <stdint.h>

#include "ontology.h"

enum { REGIONS_NLABELS = 256 };

typedef struct Box {
    int64_t z0, z1, y0, y1, x0, x1;  /* voxels, half-open */
} Box;

typedef struct LabelStats {
    int64_t count[REGIONS_NLABELS];  /* voxels per label id (id 0: background) */
    Box box[REGIONS_NLABELS];        /* valid where count > 0 */
} LabelStats;

typedef struct Region {
    int64_t voxels;                  /* 0: the anatomy is absent from the mask */
    double volume_ml;
    Box box;
    int whole;
} Region;

/* mask: nz * ny * nx label ids, x fastest. Dimensions must be >= 1. */
void regions_scan(const uint8_t *mask, int64_t nz, int64_t ny, int64_t nx, LabelStats *st);

/* The plain reference of regions_scan (one voxel at a time), for tests. */
void regions_scan_ref(const uint8_t *mask, int64_t nz, int64_t ny, int64_t nx, LabelStats *st);

/* out: n_anat regions; uni: the union region. spacing and margin in mm,
 * (z, y, x) order. */
void regions_merge(const Ontology *o, const LabelStats *st, const int64_t dims[3],
                   const double spacing[3], const double margin_mm[3], Region *out,
                   Region *uni);

/* 1 when box touches none of the faces of a (nz, ny, nx) volume. */
int box_whole(const Box *b, const int64_t dims[3]);

#endif
