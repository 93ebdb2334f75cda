/* reader: members read and hashed on a second thread, ahead of ingest.
 *
 * Decompressing archives (libarchive) and hashing members (SHA-256) take
 * as long as decoding and resampling them; a producer thread does the
 * first while the caller does the second. Items come out in exactly the
 * order a single thread would read them (unit by unit, member by member),
 * so results do not depend on timing. The queue holds at most queue_bytes
 * of member data (and at least one member), which bounds memory. */
#ifndef FVLM_INGEST_READER_H
#define FVLM_INGEST_READER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "walk.h"

enum { RI_MEMBER = 1, RI_ERROR = 2, RI_END = 3 };

typedef struct ReadItem {
    int kind;                /* RI_MEMBER, RI_ERROR (a member or the unit failed), RI_END */
    int unit;                /* index in the UnitList */
    Member m;                /* RI_MEMBER: source/name/member point into owned copies */
    char sha[65];
    unsigned char sha_raw[32];
    FvErr err;               /* RI_ERROR */
    int fatal;               /* RI_ERROR: nothing more comes from this unit */
    int64_t disk;            /* bytes of the unit read from disk so far */
    char *strings;           /* owned storage of the names */
    unsigned char *data;     /* owned member bytes (m.data; members_take clears it) */
    unsigned char *inflated; /* a .nii.gz member decompressed ahead (owned), or NULL */
    size_t inflated_len;
} ReadItem;

/* Decides, on the reader thread, whether a member is worth decompressing
 * ahead (not already in the corpus): returns 1 to inflate. */
typedef int (*ReaderWanted)(void *ctx, const char *sha);

typedef struct Reader Reader;

/* Starts the thread. stop: checked between members (may be NULL). */
int reader_start(Reader **r, const UnitList *units, size_t member_limit, size_t queue_bytes,
                 volatile sig_atomic_t *stop, FvErr *e);
/* Single-file .nii.gz members are inflated on the reader thread (bounded by
 * their validated header and max_voxels) when wanted(ctx, sha) says so;
 * call before the first reader_next. */
void reader_inflate_nifti(Reader *r, int64_t max_voxels, ReaderWanted wanted, void *ctx);
/* The next item; 0 when every unit has ended. */
int reader_next(Reader *r, ReadItem *it);
void reader_item_free(ReadItem *it);
/* Stops (if still running) and joins the thread. */
void reader_close(Reader **r);

#endif
