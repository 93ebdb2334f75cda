#include "archw.h"

#include <archive.h>
#include <archive_entry.h>
#include <libdeflate.h>
#include <stdio.h>
#include <string.h>

int archw_gzip(const void *in, size_t n, int level, Buf *out, FvErr *e)
{
    struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
    if (!c)
        return err_set(e, FV_ENOMEM, "gzip: cannot create a level %d compressor", level);
    size_t bound = libdeflate_gzip_compress_bound(c, n);
    if (buf_reserve(out, bound)) {
        libdeflate_free_compressor(c);
        return err_set(e, FV_ENOMEM, "gzip: cannot allocate %zu bytes", bound);
    }
    size_t got = libdeflate_gzip_compress(c, in, n, out->data + out->len, bound);
    libdeflate_free_compressor(c);
    if (!got)
        return err_set(e, FV_EINTERNAL, "gzip: compression of %zu bytes failed", n);
    out->len += got;
    out->data[out->len] = 0;
    return 0;
}

static la_ssize_t sink(struct archive *a, void *ctx, const void *p, size_t n)
{
    (void)a;
    Buf *b = ctx;
    return buf_append(b, p, n) ? -1 : (la_ssize_t)n;
}

int archw_write(int kind, const ArchMember *m, int n, int64_t mtime, int gzip_level, Buf *out,
                FvErr *e)
{
    Buf raw = {0};
    Buf *dst = kind == ARCH_ZIP ? out : &raw;
    struct archive *a = archive_write_new();
    struct archive_entry *en = archive_entry_new();
    int rc = -1;
    if (!a || !en) {
        err_set(e, FV_ENOMEM, "archive: out of memory");
        goto done;
    }
    int r;
    if (kind == ARCH_ZIP) {
        r = archive_write_set_format_zip(a);
        char optbuf[64];
        snprintf(optbuf, sizeof optbuf, "zip:compression=deflate,zip:compression-level=%d",
                 gzip_level < 1 ? 1 : gzip_level > 9 ? 9 : gzip_level);
        if (r == ARCHIVE_OK)
            r = archive_write_set_options(a, optbuf);
    } else
        r = archive_write_set_format_pax_restricted(a);
    if (r == ARCHIVE_OK)
        r = archive_write_add_filter_none(a);
    if (r == ARCHIVE_OK)
        r = archive_write_open(a, dst, NULL, sink, NULL);
    if (r != ARCHIVE_OK) {
        err_set(e, FV_EINTERNAL, "archive: %s", archive_error_string(a));
        goto done;
    }
    for (int i = 0; i < n; i++) {
        archive_entry_clear(en);
        size_t nl = strlen(m[i].name);
        int dir = nl && m[i].name[nl - 1] == '/';
        archive_entry_set_pathname(en, m[i].name);
        archive_entry_set_filetype(en, dir ? AE_IFDIR : AE_IFREG);
        archive_entry_set_perm(en, dir ? 0755 : 0644);
        archive_entry_set_size(en, dir ? 0 : (la_int64_t)m[i].len);
        archive_entry_set_mtime(en, (time_t)mtime, 0);
        archive_entry_set_uid(en, 0);
        archive_entry_set_gid(en, 0);
        archive_entry_set_uname(en, "pacs");
        archive_entry_set_gname(en, "pacs");
        if (archive_write_header(a, en) != ARCHIVE_OK) {
            err_set(e, FV_EIO, "archive: member %s: %s", m[i].name, archive_error_string(a));
            goto done;
        }
        if (!dir && m[i].len &&
            archive_write_data(a, m[i].data, m[i].len) != (la_ssize_t)m[i].len) {
            err_set(e, FV_EIO, "archive: member %s: %s", m[i].name, archive_error_string(a));
            goto done;
        }
    }
    if (archive_write_close(a) != ARCHIVE_OK) {
        err_set(e, FV_EIO, "archive: %s", archive_error_string(a));
        goto done;
    }
    if (dst->failed) {
        err_set(e, FV_ENOMEM, "archive: out of memory");
        goto done;
    }
    if (kind != ARCH_ZIP && archw_gzip(raw.data, raw.len, gzip_level, out, e))
        goto done;
    rc = 0;
done:
    if (en)
        archive_entry_free(en);
    if (a)
        archive_write_free(a);
    buf_free(&raw);
    return rc;
}
