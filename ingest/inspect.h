/* inspect: what ingest would read from a file, folder or archive member,
 * as JSON (the `fvlm inspect` command).
 *
 * PATH is a file, a folder (everything under it), an archive (every
 * member) or "archive:member" (one member, or with a trailing '/' every
 * member under that folder of the archive). Each item found is described:
 * NIfTI (header fields, extensions, label table size), DICOM (one file:
 * its attributes; several: the series stacked as ingest stacks them, with
 * the notes on scouts, gaps and duplicates), reports (encoding, language,
 * de-identified text). Volumes get their geometry in the source
 * orientation (shape x y z, spacing, affine to RAS+ mm, orientation code,
 * obliquity) and value statistics (HU for CT: min, max, mean, std). No
 * identifying DICOM attribute is printed. */
#ifndef FVLM_INGEST_INSPECT_H
#define FVLM_INGEST_INSPECT_H

#include <stdint.h>

#include "buf.h"
#include "error.h"

typedef struct InspectOpts {
    int64_t max_voxels;
    const char *tensor_out;  /* write the first volume (float32 (z, y, x), source orientation) here */
    int as_mask;             /* read NIfTI files as uint8 label masks */
} InspectOpts;

int inspect_path(const char *spec, const InspectOpts *o, Buf *json, FvErr *e);

#endif
