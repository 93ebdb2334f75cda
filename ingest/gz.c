#include "gz.h"

#include <libdeflate.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int gz_is_gzip(const void *p, size_t n)
{
    const unsigned char *c = p;
    return n >= 2 && c[0] == 0x1f && c[1] == 0x8b;
}

/* zlib takes uInt lengths: feed at most 1 GiB per call. */
enum { ZCHUNK = 1 << 30 };

int gz_peek(const void *in, size_t n, void *out, size_t want, size_t *got, FvErr *e)
{
    z_stream s;
    memset(&s, 0, sizeof s);
    *got = 0;
    if (inflateInit2(&s, 15 + 16) != Z_OK)
        return err_set(e, FV_ENOMEM, "gzip: cannot initialise zlib");
    s.next_in = (unsigned char *)in;
    s.avail_in = (uInt)(n > ZCHUNK ? ZCHUNK : n);
    s.next_out = out;
    s.avail_out = (uInt)want;
    int rc = inflate(&s, Z_SYNC_FLUSH);
    *got = want - s.avail_out;
    inflateEnd(&s);
    if (rc != Z_OK && rc != Z_STREAM_END && !(rc == Z_BUF_ERROR && *got > 0))
        return err_set(e, FV_EFORMAT, "corrupt gzip stream at byte %zu: %s",
                       (size_t)(s.next_in - (const unsigned char *)in),
                       s.msg ? s.msg : "cannot decompress");
    return 0;
}

/* zlib streaming, for what libdeflate could not do in one call: several
 * concatenated gzip members, or a trailer that does not state the size. */
static int inflate_zlib(const unsigned char *in, size_t n, size_t expect, size_t limit,
                        unsigned char **out, size_t *outlen, FvErr *e)
{
    size_t cap = expect ? expect : (n * 4 < (64u << 20) ? n * 4 + 4096 : (64u << 20));
    if (cap > limit)
        cap = limit;
    unsigned char *buf = malloc(cap + 1);
    if (!buf)
        return err_set(e, FV_ENOMEM, "gzip: cannot allocate %zu bytes", cap);
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit2(&s, 15 + 16) != Z_OK) {
        free(buf);
        return err_set(e, FV_ENOMEM, "gzip: cannot initialise zlib");
    }
    size_t used = 0, pos = 0;
    int rc = Z_OK;
    for (;;) {
        if (used == cap) {
            if (cap >= limit) {
                inflateEnd(&s);
                free(buf);
                return err_set(e, FV_ELIMIT, "gzip stream inflates past the limit of %zu bytes",
                               limit);
            }
            size_t nc = cap > limit / 2 ? limit : cap * 2;
            unsigned char *nb = realloc(buf, nc + 1);
            if (!nb) {
                inflateEnd(&s);
                free(buf);
                return err_set(e, FV_ENOMEM, "gzip: cannot allocate %zu bytes", nc);
            }
            buf = nb;
            cap = nc;
        }
        size_t in_left = n - pos, out_left = cap - used;
        s.next_in = (unsigned char *)in + pos;
        s.avail_in = (uInt)(in_left > ZCHUNK ? ZCHUNK : in_left);
        s.next_out = buf + used;
        s.avail_out = (uInt)(out_left > ZCHUNK ? ZCHUNK : out_left);
        uInt ain = s.avail_in, aout = s.avail_out;
        rc = inflate(&s, Z_NO_FLUSH);
        pos += ain - s.avail_in;
        used += aout - s.avail_out;
        if (rc == Z_STREAM_END) {
            /* Another gzip member may follow (concatenated streams). */
            if (pos + 2 <= n && gz_is_gzip(in + pos, n - pos)) {
                inflateReset(&s);
                continue;
            }
            break;
        }
        if (rc == Z_BUF_ERROR && pos == n) {
            inflateEnd(&s);
            free(buf);
            return err_set(e, FV_EFORMAT,
                           "truncated gzip stream: input ends after %zu bytes (%zu bytes out)", n,
                           used);
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            const char *m = s.msg ? s.msg : "cannot decompress";
            err_set(e, FV_EFORMAT, "corrupt gzip stream at byte %zu: %s", pos, m);
            inflateEnd(&s);
            free(buf);
            return -1;
        }
    }
    inflateEnd(&s);
    buf[used] = 0;
    *out = buf;
    *outlen = used;
    return 0;
}

int gz_inflate(const void *in_, size_t n, size_t expect, size_t limit, unsigned char **out,
               size_t *outlen, FvErr *e)
{
    const unsigned char *in = in_;
    *out = NULL;
    *outlen = 0;
    if (!gz_is_gzip(in, n) || n < 18)
        return err_set(e, FV_EFORMAT, "not a gzip stream (%zu bytes)", n);
    if (expect > limit)
        return err_set(e, FV_ELIMIT, "%zu bytes expected, over the limit of %zu", expect, limit);
    /* Deflate expands at most 1032:1 (a 258-byte match per two bits), so n
     * bytes never hold more than this, whatever a header or the trailer
     * claims: nothing larger is allocated (fuzz_nifti found a 662-byte
     * .nii.gz whose vox_offset made this allocate 5.9 GB). */
    size_t most = n > (SIZE_MAX - 65536) / 1032 ? SIZE_MAX : n * 1032 + 65536;
    if (expect > most)
        return err_set(e, FV_EFORMAT,
                       "%zu compressed bytes cannot hold the %zu bytes the header needs: "
                       "truncated or corrupt", n, expect);
    if (limit > most)
        limit = most;
    /* The trailer holds the size modulo 2^32: take the smallest size >= expect
     * that agrees with it. A stream that is larger than the limit, or a lying
     * trailer, falls through to zlib, which stops at the limit. */
    uint64_t isize = (uint64_t)in[n - 4] | (uint64_t)in[n - 3] << 8 | (uint64_t)in[n - 2] << 16 |
                     (uint64_t)in[n - 1] << 24;
    uint64_t cap = isize;
    while (cap < expect)
        cap += (uint64_t)1 << 32;
    if (cap <= limit && (expect == 0 || cap - expect <= (16u << 20))) {
        unsigned char *buf = malloc((size_t)cap + 1);
        if (!buf)
            return err_set(e, FV_ENOMEM, "gzip: cannot allocate %llu bytes",
                           (unsigned long long)cap);
        struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
        if (!d) {
            free(buf);
            return err_set(e, FV_ENOMEM, "gzip: cannot allocate a decompressor");
        }
        size_t ain = 0, aout = 0;
        enum libdeflate_result r =
            libdeflate_gzip_decompress_ex(d, in, n, buf, (size_t)cap, &ain, &aout);
        libdeflate_free_decompressor(d);
        if (r == LIBDEFLATE_SUCCESS && ain == n && aout == cap) {
            buf[aout] = 0;
            *out = buf;
            *outlen = aout;
            return 0;
        }
        free(buf);
        if (r == LIBDEFLATE_BAD_DATA) {
            /* libdeflate cannot tell truncation from corruption: let zlib,
             * which streams, say which one it is. */
            return inflate_zlib(in, n, expect, limit, out, outlen, e);
        }
    }
    return inflate_zlib(in, n, expect, limit, out, outlen, e);
}
