/* walk: inputs -> units -> members.
 *
 * An INPUT is an archive, a folder (walked recursively, sorted by name,
 * hidden entries skipped, archives inside included) or a file. The walk
 * lists everything first (names and sizes only), so the order is fixed and
 * the total is known for progress; then units are read one at a time.
 *
 * A unit is what one study is expected to come in:
 *   - an archive (every member, read through libarchive in stored order,
 *     never extracted);
 *   - a study folder: the loose files of a folder together with those of its
 *     generic subfolders (dicom/, seg/, masks/, images/, report/, ...), so
 *     study1/dicom/ (DICOM files), study1/seg.nii.gz and study1/report.txt form one
 *     unit named "study1";
 *   - each loose CSV table (CT-RATE reports.csv, metadata.csv, labels.csv).
 * Units run in three phases: tables (metadata first), then units holding
 * volumes (archives, DICOM, CT NIfTI), then units of masks and reports only,
 * so a mask or a report finds its study's volume already ingested. Inside a
 * folder unit files run DICOM first, then volumes, masks, reports. */
#ifndef FVLM_INGEST_WALK_H
#define FVLM_INGEST_WALK_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef enum { UNIT_ARCHIVE, UNIT_FILES } UnitType;

typedef struct Unit {
    UnitType type;
    char *path;         /* archive path, or the unit folder */
    char *name;         /* archive name without extension, or folder name */
    char **files;       /* UNIT_FILES: file paths in processing order */
    size_t *relofs;     /* UNIT_FILES: where each path continues below its INPUT folder */
    int nfiles;
    int64_t bytes;      /* on disk */
    int phase;
} Unit;

typedef struct UnitList {
    Unit *u;
    int n, cap;
    int64_t bytes;
} UnitList;

/* Lists the inputs. skip: a path never read (the database and its files);
 * may be NULL. Inputs that do not exist are errors. */
int walk_inputs(char *const *inputs, int n, const char *skip, UnitList *out, FvErr *e);
void walk_free(UnitList *l);

/* 1 when the file name is an archive libarchive reads (by extension). */
int walk_is_archive_name(const char *name);
/* Name without directories and without the archive extension. */
void walk_archive_stem(const char *path, char *out, size_t n);

/* ---- reading members ---- */

typedef struct Member {
    const char *source;   /* archive path, or the file's path */
    const char *name;     /* member path inside the archive; the file's path for a loose file */
    const char *member;   /* what sources.member records: the member path, "" for a file */
    size_t relofs;        /* name + relofs: the path below the INPUT folder (archives: 0), which
                           * judges names such as masks/ (folders above the input do not) */
    unsigned char *data;  /* owned by the reader until the next call, or taken with members_take */
    size_t len;
    unsigned char **owner; /* the reader's pointer to data */
} Member;

/* Takes ownership of m->data (the caller frees it). */
unsigned char *members_take(Member *m);

typedef struct MemberReader MemberReader;

int members_open(MemberReader **r, const Unit *u, size_t limit, FvErr *e);
/* 1: *m holds a member; 0: the unit is done; -1: this member failed (e says
 * why; m->source/m->name say which); *fatal set when nothing more can be
 * read from the unit (a corrupt or truncated archive). */
int members_next(MemberReader *r, Member *m, int *fatal, FvErr *e);
/* Bytes of the unit read from disk so far. */
int64_t members_disk_bytes(const MemberReader *r);
void members_close(MemberReader **r);

#endif
