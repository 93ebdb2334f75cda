/* names: what a file is, judged from its path (before reading it).
 *
 * Extensions decide most things: .dcm/.ima DICOM, .nii(.gz) NIfTI,
 * .hdr/.img pairs, .txt reports, .jsonl/.json report lines, .csv tables
 * (CT-RATE's reports, metadata and labels by name). A NIfTI is a mask when
 * its path below the input says so: a folder named seg, segmentation(s),
 * mask(s), label(s) or totalseg(mentator), or a file named seg/mask/... or ending in _seg, _mask,
 * _segmentation, _labels. Files without a known extension are sniffed
 * later from their bytes. */
#ifndef FVLM_INGEST_NAMES_H
#define FVLM_INGEST_NAMES_H

#include <stddef.h>

typedef enum {
    NK_UNKNOWN,        /* sniff the bytes */
    NK_DICOM,
    NK_NIFTI,
    NK_HDR,
    NK_IMG,
    NK_TXT,
    NK_JSON,
    NK_TABLE_REPORTS,
    NK_TABLE_META,
    NK_TABLE_OTHER,
    NK_ARCHIVE,
    NK_IGNORE,         /* documentation, checksums, images for people */
} NameKind;

NameKind name_kind(const char *path);
/* Processing order inside a folder unit: DICOM, volumes, pairs, masks,
 * reports, the rest. */
int name_rank(NameKind k, const char *path);
int name_ends_with(const char *s, const char *suffix);   /* case-insensitive */
int name_is_generic_dir(const char *base);
/* path: an archive member, or a loose file's path below the INPUT folder
 * it was found in (folders above what the user named do not count). */
int name_is_mask_path(const char *path);
/* The base name without folders and known extensions (.nii.gz, .dcm, ...). */
void name_stem(const char *path, char *out, size_t n);

#endif
