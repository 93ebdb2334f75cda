/* archw: the archives and gzip streams synth writes, built in memory.
 *
 * Determinism: every member gets the same fixed mtime (the study date, not
 * the clock), uid/gid 0 and fixed user names; gzip streams come from
 * libdeflate, whose header has no timestamp or file name; tar blocks and zip
 * records carry nothing that depends on the machine or the time. */
#ifndef FVLM_SYNTH_ARCHW_H
#define FVLM_SYNTH_ARCHW_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"

typedef struct ArchMember {
    char name[160];        /* "dicom/IM0001.dcm"; a name ending in '/' is a folder */
    const void *data;      /* not owned */
    size_t len;
} ArchMember;

enum { ARCH_TAR_GZ = 0, ARCH_ZIP = 1 };

/* Writes the members in order as a tar.gz (pax/ustar) or zip (deflate). */
int archw_write(int kind, const ArchMember *m, int n, int64_t mtime, int gzip_level, Buf *out,
                FvErr *e);
/* gzip of a buffer (libdeflate, no timestamp). */
int archw_gzip(const void *in, size_t n, int level, Buf *out, FvErr *e);

#endif
