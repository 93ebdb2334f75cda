/* dicomw: DICOM Part 10 file encoding (little endian, uncompressed).
 *
 * A DcmData collects the data elements of one dataset in ascending tag order
 * (the caller's order; a tag out of order is a bug and fails dcmw_file).
 * Explicit VR writes the two-letter VR and a 16- or 32-bit length as the
 * standard prescribes per VR; implicit VR writes a 32-bit length only.
 * Strings are padded to even length: UIDs with NUL, others with a space.
 * dcmw_file wraps the dataset in the 128-byte preamble, "DICM" and the file
 * meta group (always explicit VR little endian), or writes the bare dataset
 * (no preamble, no meta: readers assume implicit VR little endian). */
#ifndef FVLM_SYNTH_DICOMW_H
#define FVLM_SYNTH_DICOMW_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"

#define DCM_TS_IMPLICIT "1.2.840.10008.1.2"
#define DCM_TS_EXPLICIT "1.2.840.10008.1.2.1"
#define DCM_CT_STORAGE "1.2.840.10008.5.1.4.1.1.2"

typedef struct DcmData {
    Buf b;
    int explicit_vr;
    uint32_t last_tag;
    int bad_order;
} DcmData;

void dcmw_init(DcmData *d, int explicit_vr);
void dcmw_free(DcmData *d);
void dcmw_str(DcmData *d, uint16_t group, uint16_t elem, const char *vr, const char *value);
void dcmw_us(DcmData *d, uint16_t group, uint16_t elem, uint16_t v);
void dcmw_ul(DcmData *d, uint16_t group, uint16_t elem, uint32_t v);
void dcmw_bytes(DcmData *d, uint16_t group, uint16_t elem, const char *vr, const void *p, size_t n);
/* Pixel data (7FE0,0010) as OW from int16 or uint16 samples, little-endian. */
void dcmw_pixels(DcmData *d, const uint16_t *px, size_t n);

/* The whole file: with_meta selects preamble + meta group (transfer syntax
 * from the dataset's VR mode); else the bare dataset. */
int dcmw_file(const DcmData *d, const char *sop_class, const char *sop_instance, int with_meta,
              Buf *out, FvErr *e);

/* A UID "2.25.<decimal>" from the first 128 bits of SHA-256(text): the same
 * text always gives the same UID (so the same seed gives the same files). */
void dcmw_uid(const char *text, char out[64]);

#endif
