/* gz: gzip streams (a .nii.gz member) decompressed in memory, with a bound.
 *
 * The size in a gzip trailer is untrusted (and only modulo 2^32), so the
 * caller states how many bytes it expects (from a header it has already
 * validated) and the most it will accept; nothing larger is ever allocated.
 * The fast path is libdeflate (one call, about twice zlib's speed); streams
 * libdeflate cannot take in one call (several gzip members, or a trailer
 * that lies) go through zlib, growing the output up to the limit. */
#ifndef FVLM_INGEST_GZ_H
#define FVLM_INGEST_GZ_H

#include <stddef.h>

#include "error.h"

/* 1 when p starts with the gzip magic bytes 1f 8b. */
int gz_is_gzip(const void *p, size_t n);

/* Decompresses at most `want` bytes from the start of the stream into out
 * (for reading a header); *got may be less when the stream is shorter. */
int gz_peek(const void *in, size_t n, void *out, size_t want, size_t *got, FvErr *e);

/* Decompresses the whole stream. expect: the size the caller needs (0 when
 * unknown); limit: the largest output accepted (FV_ELIMIT beyond it).
 * *out is malloc'd (caller frees), NUL-terminated past *outlen. Truncated
 * or corrupt data is FV_EFORMAT with the byte offset where it failed. */
int gz_inflate(const void *in, size_t n, size_t expect, size_t limit, unsigned char **out,
               size_t *outlen, FvErr *e);

#endif
