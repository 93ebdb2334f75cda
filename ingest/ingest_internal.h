/* ingest_internal: the state shared by the files of the ingest stage (not
 * part of the stage's interface: only the .c files of ingest/ include it).
 *
 * Where each concern lives:
 *   ingest.c        options, counts, the run loop: units, members, what each member is
 *   ingest_rows.c   error rows, source rows, the study an item belongs to
 *   store_volume.c  a CT volume onto the corpus grid and into the corpus
 *   store_mask.c    a mask onto its CT's grid and into the corpus
 *   store_report.c  report texts; CT-RATE reports.csv
 *   unit_nifti.c    a unit's NIfTI volumes and masks
 *   unit_dicom.c    a unit's DICOM headers and series
 *   unit_report.c   a unit's report files (text, JSON lines, DICOM SR) */
#ifndef FVLM_INGEST_INGEST_INTERNAL_H
#define FVLM_INGEST_INGEST_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "corpus.h"
#include "ctrate.h"
#include "deid.h"
#include "dicom.h"
#include "error.h"
#include "ingest.h"
#include "mask.h"
#include "nifti.h"
#include "phi.h"
#include "reader.h"
#include "run.h"
#include "vol.h"
#include "walk.h"

typedef struct Ingest {
    const IngestOpts *o;
    Corpus corpus;
    Run *run;
    Phi *phi;
    TsClasses ts;
    CtrateMetaTable meta;
    IngestCounts *cnt;
    size_t member_limit;
    struct UnitState *cur; /* the unit being read (its header PHI scrubs stored names) */
    /* First pass: a mask whose study has no CT volume yet is put off, and
     * its unit is read again after all the others (a folder of masks may be
     * walked before the folder of volumes). */
    int defer_masks;
    const Unit **deferred;     /* units to read again (each once) */
    int n_deferred, cap_deferred;
    int64_t masks_deferred;
    /* The corpus cannot be written (a full disk, an I/O error, a database
     * error): not a fault of the item at hand, so the run stops here with
     * this error instead of failing every item after it and exiting 0. */
    FvErr fatal;
} Ingest;


/* What a held member turned out to be. */
typedef enum {
    H_OTHER, H_DICOM, H_VOLUME, H_MASK, H_CLASSMASK, H_HDR, H_IMG, H_TXT, H_JSON
} HeldKind;

/* A member kept until the end of its unit. */
typedef struct Held {
    char *source, *member, *name;
    size_t relofs;       /* name + relofs: the path below the INPUT folder */
    unsigned char *data; /* the member's bytes, or a .nii.gz member already inflated */
    size_t len;
    int64_t size;        /* the member's size in its archive (sources.size) */
    char sha[65];
    unsigned char sha_raw[32];
    int known;           /* recorded before as ok or ignored */
    HeldKind kind;
    int done;            /* recorded in this run */
    /* DICOM: parsed header */
    int parsed, parse_failed, decoded;
    char ts[68];         /* transfer syntax, kept after the header is freed */
    DcmFile dcm;
    DcmImage im;
} Held;

typedef struct UnitState {
    const Unit *u;
    Held *h;
    int nh, cap;
    PhiValue phi[64];
    int nphi;
    char dicom_study[68], dicom_patient[68], dicom_accession[68];
    int n_dicom_studies;
    int n_volumes;       /* NIfTI CT volumes of this unit (not self-identifying; by name,
                          * without those whose header says uint8 labels) */
} UnitState;

/* Where an item's study comes from. */
typedef struct StudyRef {
    char src[256];       /* source study id (never stored) */
    char patient[128];   /* source patient id, "" when unknown */
    const char *dataset;
    char split[8];       /* "" when the path does not say */
    /* What else a user may type to find the study: their keyed hashes go
     * into study_ids (ingest_study_ids), the values themselves nowhere. */
    const char *src_kind; /* src's kind: DEID_ID_STUDY_UID for a StudyInstanceUID; NULL:
                           * DEID_ID_SOURCE (a name) */
    char accession[68];  /* DICOM AccessionNumber, "" when none */
    char alias[256];     /* the unit's name (archive without extension, study folder) or
                          * a CT-RATE volume name without extension; "" when none */
} StudyRef;

/* A member's row for a volume's transaction. */
typedef struct SrcRec {
    const char *path, *member, *kind, *status;
    const char *sha;
    int64_t size;
    const char *why;     /* status ignored: the reason logged (NULL: the commit's) */
} SrcRec;

/* ---------------------------------------------------------------- ingest_rows.c */

/* Records one failure: an error line (real names, for the operator) and an
 * `errors` row (de-identified names). */
void ingest_fail(Ingest *g, const char *source, const char *member, const FvErr *err);
void ingest_fail_msg(Ingest *g, const char *source, const char *member, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The corpus's scrub of stored names (CorpusScrub): deid_path with the
 * run's key. */
int ingest_scrub_name(void *ctx, const char *in, Buf *out, FvErr *e);
/* 1 when the test fault FVLM_TEST_DEID_FAIL asks de-identification of in
 * to fail (ingest_rows.c). */
int ingest_deid_fault(const char *in, size_t n);
/* A source row in its own transaction (ignored or failed members). */
void ingest_record_source(Ingest *g, const char *path, const char *member, const char *sha,
                          int64_t size, const char *kind, const char *status, int64_t study);
/* An ignored member: its source row, and one info line naming it and why. */
void ingest_record_ignored(Ingest *g, const char *path, const char *member, const char *sha,
                           int64_t size, const char *kind, const char *why, int64_t study);
/* The split named by a folder of path ("" when none). */
void ingest_split_from_path(const char *path, char split[8]);
/* The study row for a reference (create: made when absent, inside the
 * caller's transaction; else *id = 0 when absent). */
int ingest_study_get(Ingest *g, const StudyRef *ref, int create, int64_t *id, FvErr *e);
/* Records the keyed hashes of ref's identifiers (source id, accession,
 * alias) as study sid's in study_ids, inside the caller's transaction;
 * idempotent. ingest_study_get does it when it makes or meets a study;
 * the paths that attach an item to a known study call it too. */
int ingest_study_ids(Ingest *g, const StudyRef *ref, int64_t sid, FvErr *e);

/* 1 when the study of ref belongs to this run's shard (always without
 * --shard): shard = the first 8 bytes of HMAC(key, "shard:" + the study's
 * pseudonym) mod N, so all of a study's members, in whatever units, fall in
 * the same shard; 0 otherwise (counted in other_shard); -1 on error. */
int ingest_in_shard(Ingest *g, const StudyRef *ref, FvErr *e);
void ingest_ref_ctrate(StudyRef *ref, const char *study, const char *patient, const char *split);
/* A held member's name inside its unit. */
const char *ingest_rel_name(const UnitState *us, const char *name);
/* "archive:member" or "file" into out. */
void ingest_describe(const char *source, const char *member, char *out, size_t n);
/* Ends the transaction the caller began for one item: writes its members'
 * source rows and commits, or rolls back when rc or a step failed. */
int ingest_sources_commit(Ingest *g, int rc, const SrcRec *srcs, int nsrc, const char *status,
                          const char *why, int64_t study, int64_t *ignored, FvErr *e);
void ingest_held_record(Ingest *g, Held *h, const char *kind, const char *status, int64_t study);
void ingest_held_ignore(Ingest *g, Held *h, const char *kind, const char *why);
void ingest_held_fail(Ingest *g, Held *h, const char *kind, const FvErr *e);
/* The study of an item of this unit that names none of its own. */
int ingest_unit_study(Ingest *g, UnitState *us, const char *item, StudyRef *ref, FvErr *e);
/* 1 when a CT-RATE-named item carries its own study (ref filled). */
int ingest_own_study(const char *name, StudyRef *ref);

/* ---------------------------------------------------------------- store_volume.c */

/* Source geometry at float32 precision (see store_volume.c). */
void ingest_affine_to_float(double a[4][4]);
/* Stores a CT volume (HU, source geometry) for a study; consumes v. */
int ingest_store_volume(Ingest *g, const StudyRef *ref, Vol *v, const char *sha,
                        const char *source, const char *src_dtype, const char *notes,
                        SrcRec *srcs, int nsrc, int64_t *study_out, FvErr *e);
/* A CT-RATE volume with a blank header: geometry and rescale from metadata.csv. */
int ingest_apply_ctrate_meta(Ingest *g, const NiftiHeader *h, const char *name, Vol *v,
                             Buf *notes, FvErr *e);

/* ---------------------------------------------------------------- store_mask.c */

int ingest_same_geometry(int64_t nx, int64_t ny, int64_t nz, const double a[4][4],
                         const int64_t dims[3], const double b[4][4]);
/* Puts off a mask whose study has no CT volume yet (first pass). 1 when put off. */
int ingest_mask_defer(Ingest *g, const Unit *u, int no_volume);
/* Stores a mask for the study's volume; consumes m. */
int ingest_store_mask(Ingest *g, const StudyRef *ref, Vol *m, int blank_header, const char *sha,
                      const char *source, Buf *notes, SrcRec *srcs, int nsrc, int *no_volume,
                      FvErr *e);

/* ---------------------------------------------------------------- store_report.c */

/* Stores a report text (UTF-8, not yet de-identified). */
int ingest_store_report(Ingest *g, const StudyRef *ref, const char *text, size_t len,
                        const char *sha, const char *source, const char *format,
                        const char *encoding, const PhiValue *known, int nknown, SrcRec *srcs,
                        int nsrc, FvErr *e);
/* CT-RATE reports.csv: one report per row. */
int ingest_ctrate_reports_table(Ingest *g, const char *source, const char *member,
                                const unsigned char *data, size_t len, const char *sha);

/* ---------------------------------------------------------------- unit_*.c */

/* 0 when a NIfTI member's header says uint8 labels (unscaled), else 1
 * (it may be a CT: its values decide). */
int ingest_nifti_maybe_ct(const Held *h);
/* A NIfTI volume or mask (img: the .img of a .hdr/.img pair, or NULL): mask
 * or CT by content (label table, value range), the name breaking ties. */
void ingest_process_nifti(Ingest *g, UnitState *us, Held *h, Held *img);
/* Per-class masks (seg/<class>.nii.gz): all the unit's parts merged. */
void ingest_process_class_masks(Ingest *g, UnitState *us);
/* Parses every DICOM header of the unit: studies, identifying values. */
void ingest_dicom_headers(Ingest *g, UnitState *us);
/* Decodes, groups and stacks the unit's DICOM images into volumes. */
void ingest_dicom_volumes(Ingest *g, UnitState *us);
void ingest_process_report(Ingest *g, UnitState *us, Held *h);
void ingest_process_jsonl(Ingest *g, UnitState *us, Held *h);
void ingest_process_sr(Ingest *g, UnitState *us, Held *h);

#endif
