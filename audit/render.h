/* render: one CT slice as an RGB PNG, with a CT window, an anatomy's mask
 * overlay and its region box, for the audit viewer.
 *
 * Geometry. The corpus volume is RAS: voxel x grows toward the patient's
 * right, y toward anterior, z toward superior; arrays are (z, y, x), x
 * fastest. Slices are shown in the radiological convention:
 *   axial    (index = z): columns x from the patient's right (image left) to
 *            left, rows y from anterior (top) to posterior;
 *   coronal  (index = y): columns x right (image left) to left, rows z from
 *            superior (top) to inferior;
 *   sagittal (index = x): columns y from anterior (image left) to posterior,
 *            rows z from superior (top) to inferior.
 * So in every plane both image axes run against their voxel axis: column c
 * shows voxel u = nu - 1 - c when no resampling happens.
 *
 * Square pixels. The pixel size is the finer of the two in-plane spacings
 * (coarser when a side would pass RENDER_MAX_SIDE); an axis of n voxels of
 * s mm becomes max(1, round(n * s / p)) pixels whose centres sit at
 * (k + 0.5) * p mm from the volume's edge (k counted along the voxel axis).
 * The CT is sampled linearly between voxel centres (clamped at the edges),
 * the mask and the region box by nearest voxel, so the outline and the box
 * stay on voxel boundaries. A 1 mm axial slice is copied unresampled.
 *
 * Window: grey = clamp(floor((hu - (wc - ww / 2)) * 255 / ww + 0.5), 0, 255).
 *
 * Overlay, painted in this order over the grey image:
 *   fill:    inside the anatomy, (grey * (256 - A) + C * A + 128) >> 8 per
 *            channel, C = RENDER_MASK_RGB, A = RENDER_FILL_ALPHA;
 *   box:     the region box's border pixels (the outermost pixels whose
 *            nearest voxel is inside the box) in RENDER_BOX_RGB, when the
 *            slice index lies in the box's range along the plane's normal;
 *   outline: the anatomy's pixels with a 4-neighbour outside it (or on the
 *            image's edge) in RENDER_MASK_RGB.
 *
 * The box and outline are drawn only with an overlay (outline or fill).
 *
 * Errors: FV_EUSAGE for a bad request (index out of range, a window that is
 * not finite, ww <= 0 or beyond RENDER_MAX_WINDOW, no volume), FV_ENOTFOUND
 * for a study or anatomy with no such row, FV_EFORMAT for a tensor that does
 * not match its row, FV_EIO / FV_ENOMEM / FV_EINTERNAL otherwise. A server
 * answers 400, 404 and 500. Thread-safe: any number of calls at once may
 * share one RenderCache. */
#ifndef FVLM_AUDIT_RENDER_H
#define FVLM_AUDIT_RENDER_H

#include <stdint.h>

#include "buf.h"
#include "db.h"
#include "error.h"
#include "ontology.h"

typedef enum { RENDER_AXIAL = 0, RENDER_CORONAL = 1, RENDER_SAGITTAL = 2 } RenderPlane;
typedef enum { RENDER_OVERLAY_NONE = 0, RENDER_OVERLAY_OUTLINE = 1, RENDER_OVERLAY_FILL = 2 } RenderOverlay;

enum {
    RENDER_MAX_SIDE = 2048,     /* pixels: the longest side of an image */
    RENDER_MAX_DIM = 100000,    /* voxels along one axis that a row may claim */
    RENDER_FILL_ALPHA = 96,     /* of 256: the fill's opacity */
    RENDER_PNG_LEVEL = 1,       /* zlib level: fast (a slice is seen once) */
};
#define RENDER_MAX_WINDOW 100000.0   /* HU: |wc| and ww above it are refused */

/* Overlay colours (R, G, B): the anatomy, and its region box. */
extern const uint8_t RENDER_MASK_RGB[3];
extern const uint8_t RENDER_BOX_RGB[3];

/* A half-open voxel box, (z, y, x), as the regions table holds it. */
typedef struct RenderBox {
    int64_t z0, z1, y0, y1, x0, x1;
} RenderBox;

/* A small thread-safe cache of open (mmapped) safetensors files, so the
 * slices of one study do not reopen its shard each time. A file replaced on
 * disk (another inode or mtime) is reopened; an evicted file stays mapped
 * until its last user is done. */
typedef struct RenderCache RenderCache;

/* slots: files kept open, >= 1. */
int render_cache_new(RenderCache **out, int slots, FvErr *e);
void render_cache_free(RenderCache **c);
/* Opens counted since creation (tests and benches check the cache works). */
int64_t render_cache_opens(RenderCache *c);

typedef struct RenderReq {
    /* The CT, int16 HU, (nz, ny, nx): in memory (hu), or the tensor vol_tensor
     * of the safetensors file vol_path. */
    const int16_t *hu;
    const char *vol_path, *vol_tensor;
    int64_t dims[3];            /* nz, ny, nx: the corpus grid of the volumes row */
    double spacing[3];          /* mm, (z, y, x) */
    /* The mask, uint8 TotalSegmentator ids on the same grid: in memory, in a
     * file, or none (mask and mask_path NULL). */
    const uint8_t *mask;
    const char *mask_path, *mask_tensor;
    uint8_t labels[256];        /* 1 for the ids that make the anatomy */
    int has_box;
    RenderBox box;              /* the anatomy's region box */
    RenderPlane plane;
    int64_t index;              /* slice along the plane's normal: z, y or x */
    double wc, ww;              /* window centre and width, HU */
    RenderOverlay overlay;
    RenderCache *cache;         /* NULL: files are opened for this call only */
} RenderReq;

/* A request with no volume, no mask, axial slice 0, the mediastinum window. */
void render_req_init(RenderReq *r);

/* Names: "axial" "coronal" "sagittal"; "none" "outline" "fill"; window
 * presets "lung" (-600/1500), "mediastinum" (40/400), "bone" (500/2000).
 * Return 0, or -1 with FV_EUSAGE naming the value. */
int render_plane_parse(const char *s, RenderPlane *out, FvErr *e);
int render_overlay_parse(const char *s, RenderOverlay *out, FvErr *e);
int render_window_preset(const char *name, double *wc, double *ww, FvErr *e);
const char *render_plane_name(RenderPlane p);

/* Marks in labels[256] the TotalSegmentator ids of anatomy a: its own ids,
 * or for an anatomy with no mask of its own (region_of) those of the
 * anatomies whose union is its region. Clears labels first. */
void render_anatomy_labels(const Ontology *o, int a, uint8_t labels[256]);

/* The size of the image render_slice_png would make for req's volume
 * geometry and plane (width = columns, height = rows). */
int render_slice_size(const RenderReq *req, int *width, int *height, FvErr *e);

/* Renders the slice into png (cleared first), as render_png_encode. */
int render_slice_png(const RenderReq *req, Buf *png, FvErr *e);

/* Same, as raw RGB (width * height * 3 bytes, row-major) into a buffer the
 * caller frees; *coloured (may be NULL) is 1 when an overlay pixel was
 * painted. For tests and the bench's encoder floor. */
int render_slice_rgb(const RenderReq *req, uint8_t **rgb, int *width, int *height, int *coloured,
                     FvErr *e);

/* Encodes an RGB image as an 8-bit PNG into png (cleared first), zlib level
 * RENDER_PNG_LEVEL and the Sub filter, in the exact form with the fewest
 * bytes per pixel: greyscale when every pixel is grey (a slice without
 * overlay), indexed when it holds at most 256 colours (a slice with an
 * outline, mostly), RGB otherwise. One byte per pixel encodes in about
 * half the time of three; browsers and libspng's SPNG_FMT_RGB8 decode all
 * three forms to the same RGB pixels. */
int render_png_encode(const uint8_t *rgb, int width, int height, Buf *png, FvErr *e);

/* The voxel (z, y, x) to jump to for the anatomy: the anatomy's mask voxel
 * nearest to its centroid (so it lies inside the organ even when the
 * organ, like the lungs, is not convex), searched in the region box when
 * there is one; without a mask, the box's centre. FV_ENOTFOUND when the
 * anatomy has neither mask voxels nor a box. */
int render_anatomy_centre(const RenderReq *req, int64_t centre[3], FvErr *e);

/* Everything a RenderReq needs about one study from the corpus: the
 * volumes and masks rows (shard files under the database's tensor folder)
 * and, when anatomy is not NULL, its labels and its regions box. */
typedef struct RenderStudy {
    char vol_path[4400], vol_tensor[512];
    char mask_path[4400], mask_tensor[512];
    int has_mask;
    int64_t dims[3];            /* nz, ny, nx */
    double spacing[3];          /* mm, (z, y, x) */
    uint8_t labels[256];
    int has_box;
    RenderBox box;
} RenderStudy;

/* Reads study_id's rows. anatomy: an ontology id, or NULL for none. A
 * study without a volume, or an unknown anatomy, is FV_ENOTFOUND; a shard
 * name that is not a plain file name under the tensor folder, or a row's
 * geometry out of range, is FV_EFORMAT naming the row. */
int render_study_load(Db *db, const Ontology *o, int64_t study_id, const char *anatomy,
                      RenderStudy *s, FvErr *e);
/* Points req's volume, mask, labels and box at s (s must outlive req's use). */
void render_req_from_study(RenderReq *req, const RenderStudy *s);

#endif
