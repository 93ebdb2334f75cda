/* mkarchive: packs a folder into an archive with libarchive's writers (a
 * test helper: the fixtures are archived in every format ingest reads).
 *
 * usage: mkarchive FORMAT OUT DIR [--reverse]
 * FORMAT: tar, tar.gz, tar.bz2, tar.xz, tar.zst, zip, 7z. Members are named
 * relative to DIR, in sorted order (reversed with --reverse, so readers
 * cannot rely on the order). */
#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: mkarchive FORMAT OUT DIR [--reverse]\n");
        return 2;
    }
    const char *fmt = argv[1], *out = argv[2], *root = argv[3];
    int reverse = argc > 4 && !strcmp(argv[4], "--reverse");
    struct archive *a = archive_write_new();
    int rc;
    if (!strncmp(fmt, "tar", 3)) {
        rc = archive_write_set_format_pax_restricted(a);
        if (!strcmp(fmt, "tar.gz"))
            rc |= archive_write_add_filter_gzip(a);
        else if (!strcmp(fmt, "tar.bz2"))
            rc |= archive_write_add_filter_bzip2(a);
        else if (!strcmp(fmt, "tar.xz"))
            rc |= archive_write_add_filter_xz(a);
        else if (!strcmp(fmt, "tar.zst"))
            rc |= archive_write_add_filter_zstd(a);
        else if (strcmp(fmt, "tar"))
            rc = -1;
    } else if (!strcmp(fmt, "zip")) {
        rc = archive_write_set_format_zip(a);
    } else if (!strcmp(fmt, "7z")) {
        rc = archive_write_set_format_7zip(a);
    } else {
        rc = -1;
    }
    if (rc != ARCHIVE_OK) {
        fprintf(stderr, "mkarchive: format %s: %s\n", fmt, archive_error_string(a));
        return 1;
    }
    if (archive_write_open_filename(a, out) != ARCHIVE_OK) {
        fprintf(stderr, "mkarchive: %s: %s\n", out, archive_error_string(a));
        return 1;
    }
    char **paths;
    int npaths;
    FvErr err = {0};
    if (fs_list_files(root, &paths, &npaths, &err)) {
        fprintf(stderr, "mkarchive: %s\n", err.msg);
        return 1;
    }
    size_t skip = strlen(root) + 1; /* members are named relative to root */
    for (int k = 0; k < npaths; k++) {
        int i = reverse ? npaths - 1 - k : k;
        char *buf;
        size_t n;
        if (fs_read_file(paths[i], (size_t)1 << 31, &buf, &n, &err)) {
            fprintf(stderr, "mkarchive: %s\n", err.msg);
            return 1;
        }
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, paths[i] + skip);
        archive_entry_set_size(e, (la_int64_t)n);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_mtime(e, 1700000000, 0);
        if (archive_write_header(a, e) != ARCHIVE_OK ||
            archive_write_data(a, buf, n) != (la_ssize_t)n) {
            fprintf(stderr, "mkarchive: %s: %s\n", paths[i], archive_error_string(a));
            return 1;
        }
        archive_entry_free(e);
        free(buf);
    }
    fs_list_free(&paths, npaths);
    if (archive_write_close(a) != ARCHIVE_OK) {
        fprintf(stderr, "mkarchive: close: %s\n", archive_error_string(a));
        return 1;
    }
    archive_write_free(a);
    return 0;
}
