/* series: DICOM slices grouped into series and stacked into a volume.
 *
 * A study's slices are grouped by SeriesInstanceUID; the CT series is the
 * one with modality CT, preferring axial and non-localizer series, then the
 * most slices. Inside a series: slices of another orientation (scouts,
 * localizers) are dropped; all remaining slices must share rows, columns
 * and pixel spacing (else the series is refused as inconsistent); slices are
 * sorted by their position projected on the normal (row cosine x column
 * cosine); slices at the same position are duplicates (identical pixels:
 * one kept) or overlaps (different pixels: the lowest instance number
 * kept); the slice step is the median step, and gaps up to a quarter of
 * the series are filled by linear interpolation between the neighbours,
 * larger ones refuse the series. Every decision is written to `notes`.
 * The volume is in HU (RescaleSlope/Intercept per slice), array (z, y, x)
 * with x = column index, y = row index, z = along the normal; its affine
 * maps to RAS+ mm (DICOM's LPS with x and y negated). */
#ifndef FVLM_INGEST_SERIES_H
#define FVLM_INGEST_SERIES_H

#include <stdint.h>

#include "buf.h"
#include "dicom.h"
#include "error.h"
#include "vol.h"

typedef struct Slice {
    int member;               /* the member it came from (index in the caller's list) */
    int frame;                /* frame of a multi-frame file */
    char study_uid[68], series_uid[68], modality[20];
    int localizer, instance, series_number;
    DcmFrameGeo geo;
    int rows, cols;
    PixType type;
    void *pix;                /* rows * cols values of `type`, owned */
    unsigned char sha[32];    /* sha256 of the member */
} Slice;

void slice_free(Slice *s);

/* What happened to each slice of an assembled series. */
enum { SLICE_USED = 0, SLICE_SCOUT = 1, SLICE_DUPLICATE = 2, SLICE_NOGEO = 3 };

typedef struct SeriesOut {
    Vol vol;                  /* HU: int16 when exact, else float32 */
    unsigned char sha[32];    /* sha256 over the used slices' member hashes, in order */
    int n_used, n_filled;     /* slices used; slices interpolated into gaps */
    double step;              /* slice step, mm */
} SeriesOut;

/* Chooses the CT series among n slices of one study: sets *uid to the
 * series UID (points into a slice). Fails when the study has no CT image;
 * notes name the other series skipped. */
int series_choose(Slice *const *sl, int n, const char **uid, Buf *notes, FvErr *e);

/* 1 when a series holds scouts only, with *why the reason (static text):
 * every slice marked LOCALIZER, or two or more slices of which no two share
 * an orientation (an AP and a lateral scout); else 0. Ingest skips such a
 * series (no volume) and inspect says the same: one decision for both. */
int series_is_scout(Slice *const *sl, int n, const char **why);

/* Stacks the n slices of one series. status[i] receives SLICE_* for each
 * input slice. max_voxels bounds the volume before it is allocated. */
int series_assemble(Slice *const *sl, int n, int64_t max_voxels, SeriesOut *out, int *status,
                    Buf *notes, FvErr *e);

#endif
