/* dicom: DICOM files: the dataset as a tree, the image attributes a CT
 * reader needs, and pixel decoding.
 *
 * Parsing: with or without the 128-byte preamble and "DICM"; with or
 * without the group-0002 meta header (then the encoding is guessed from the
 * first element); implicit VR little endian, explicit VR little and big
 * endian, deflated explicit VR little endian; sequences and items of
 * defined or undefined length; encapsulated pixel data as fragments. Every
 * length is checked against the bytes left before it is used; nesting is
 * limited to DCM_MAX_DEPTH and the element count to DCM_MAX_ELEMENTS.
 * Values are not copied: elements point into the file's bytes (or into the
 * inflated dataset of a deflated file, owned by the DcmFile).
 *
 * Pixel data: native (8/16/32 bits), RLE lossless, JPEG 2000 (libopenjp2)
 * and JPEG-LS (CharLS); any other transfer syntax is FV_EUNSUPPORTED naming
 * its UID. Signed data whose BitsStored is below BitsAllocated is sign
 * extended, as pydicom does. */
#ifndef FVLM_INGEST_DICOM_H
#define FVLM_INGEST_DICOM_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "phi.h"

enum { DCM_MAX_DEPTH = 24, DCM_MAX_ELEMENTS = 1 << 20 };

#define DCM_TAG(g, e) ((uint32_t)(g) << 16 | (uint32_t)(e))

typedef struct DcmElem {
    uint32_t tag;
    char vr[3];
    uint32_t len;        /* value length; 0xFFFFFFFF when undefined */
    size_t off;          /* value offset in DcmFile.buf */
    int next;            /* next element of the same dataset, or -1 */
    int item;            /* SQ: first item, or -1 */
    int frag, nfrag;     /* encapsulated pixel data: fragments */
    int big;             /* the value is big-endian */
} DcmElem;

typedef struct DcmItem {
    int first;           /* first element, or -1 when empty */
    int next;            /* next item of the sequence, or -1 */
} DcmItem;

typedef struct DcmFrag {
    size_t off, len;
} DcmFrag;

typedef struct DcmFile {
    const unsigned char *buf;  /* dataset bytes (the input, or `owned`) */
    size_t len;
    unsigned char *owned;      /* inflated dataset of a deflated file */
    char ts[68];               /* transfer syntax UID ("" when guessed) */
    int big, implicit, deflated, has_preamble, has_meta;
    DcmElem *el;
    int nel, capel;
    DcmItem *it;
    int nit, capit;
    DcmFrag *fr;
    int nfr, capfr;
    int meta;                  /* first meta element, or -1 */
    int root;                  /* first dataset element, or -1 */
} DcmFile;

/* Parses n bytes. The DcmFile borrows p (keep it alive while using f),
 * except for a deflated file, whose inflated dataset it owns (limit bounds
 * that inflation). */
int dcm_parse(DcmFile *f, const unsigned char *p, size_t n, size_t limit, FvErr *e);
void dcm_free(DcmFile *f);
/* 1 when the bytes look like DICOM: "DICM" at 128, or a plausible first
 * element of group 0002 or 0008 at 0. */
int dcm_sniff(const unsigned char *p, size_t n);

/* The element with this tag among the siblings starting at `first`, or
 * NULL. */
const DcmElem *dcm_find(const DcmFile *f, int first, uint32_t tag);
/* First element of item number k of a sequence element (or -1). */
int dcm_item(const DcmFile *f, const DcmElem *sq, int k);
int dcm_item_count(const DcmFile *f, const DcmElem *sq);
/* Text value, trimmed of padding spaces and NULs; "" when absent. */
void dcm_str(const DcmFile *f, const DcmElem *el, char *out, size_t n);
/* Numbers from a DS/IS/US/UL/SS/SL/FL/FD value; returns how many were read
 * (at most max), 0 when absent; text values are read strictly (each a
 * whole finite decimal number), stopping at the first that is not. */
int dcm_nums(const DcmFile *f, const DcmElem *el, double *out, int max);
/* Exactly `want` numbers, each in lo..hi, from el: 1 when read, 0 when
 * absent, -1 (e names the attribute `name` and the value) when the text is
 * not decimal numbers, holds another count of values ("0\\0\\0" for one),
 * or a value is out of range. */
int dcm_num_checked(const DcmFile *f, const DcmElem *el, const char *name, double *out,
                    int want, double lo, double hi, FvErr *e);

typedef enum { PIX_U8, PIX_I8, PIX_U16, PIX_I16, PIX_U32, PIX_I32 } PixType;
size_t pix_size(PixType t);
double pix_get(PixType t, const void *p, size_t i);

/* What ingest and inspect need from an image; no identifying values are
 * kept except where noted (they are only used to scrub report text and to
 * derive pseudonyms, never stored). */
typedef struct DcmFrameGeo {
    double ipp[3];             /* Image Position (Patient), LPS mm */
    double iop[6];             /* row and column direction cosines */
    double spacing[2];         /* Pixel Spacing: between rows, between columns (mm) */
    double thickness;
    double slope, inter;
    int has_ipp, has_iop, has_spacing;
} DcmFrameGeo;

enum { DCM_MAX_PHI = 16 };

typedef struct DcmImage {
    char sop_class[68], study_uid[68], series_uid[68], modality[20];
    char photometric[20], image_type[72];
    int rows, cols, frames, samples, bits_alloc, bits_stored, pixel_rep;
    int instance, series_number;
    int localizer;             /* ImageType says LOCALIZER (a scout) */
    int has_pixels;
    const DcmElem *pixel;
    DcmFrameGeo geo;           /* of the file, or of frame 0 of a multi-frame image */
    int enhanced;              /* per-frame functional groups present */
    /* Identifying values (for pseudonyms and for scrubbing reports). */
    char patient_id[68];
    char accession[68];        /* AccessionNumber (0008,0050): only its keyed hash is stored */
    PhiValue phi[DCM_MAX_PHI];   /* names, ids, dates, addresses, phones of the header */
    int nphi;
    char charset[68];          /* Specific Character Set */
    int is_sr;                 /* a structured report */
} DcmImage;

/* Reads the attributes. An image with no pixel data still succeeds
 * (has_pixels = 0) so structured reports can be read. */
int dcm_image_info(const DcmFile *f, DcmImage *im, FvErr *e);
/* Whether an image's frames can be read as CT slices: a multi-frame file
 * must be a CT (modality CT; CT, Enhanced CT or Legacy Converted Enhanced
 * CT Image Storage) with per-frame functional groups placing each frame.
 * Anything else with several frames (RT Dose with GridFrameOffsetVector,
 * Enhanced MR, a secondary capture cine) is refused here, naming the
 * modality and SOP class: its frames are never silently cut to one. */
int dcm_frames_check(const DcmImage *im, FvErr *e);

/* Geometry and rescale of frame k (per-frame functional groups, else the
 * file's). Fails naming the attribute when a value is not a valid number
 * in range (a RescaleSlope of "na" or 0, a SliceThickness of "1.2.840..."). */
int dcm_frame_geo(const DcmFile *f, const DcmImage *im, int k, DcmFrameGeo *g, FvErr *e);

/* Decodes frame k into out (rows * cols values of *type, host order;
 * out must hold rows * cols * BitsAllocated / 8 bytes). */
int dcm_decode_frame(const DcmFile *f, const DcmImage *im, int k, void *out, PixType *type,
                     FvErr *e);

/* Name of a transfer syntax UID ("JPEG 2000") or NULL. */
const char *dcm_ts_name(const char *uid);

/* Text of a structured report: each TEXT content item as "Concept: text",
 * one per line, in document order. Appends to *text (malloc'd, caller
 * frees); returns 0, or -1 on allocation failure. */
int dcm_sr_text(const DcmFile *f, char **text, size_t *len, FvErr *e);

#endif
