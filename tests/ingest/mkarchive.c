/* mkarchive: packs a folder into an archive with libarchive's writers (a
 * test helper: the fixtures are archived in every format ingest reads).
 *
 * usage: mkarchive FORMAT OUT DIR [--reverse]
 * FORMAT: tar, tar.gz, tar.bz2, tar.xz, tar.zst, zip, 7z. Members are named
 * relative to DIR, in sorted order (reversed with --reverse, so readers
 * cannot rely on the order). */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char **paths;
static int npaths, cap;

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void collect(const char *root, const char *rel)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char r[4096], full[8200];
        snprintf(r, sizeof r, "%s%s%s", rel, *rel ? "/" : "", de->d_name);
        snprintf(full, sizeof full, "%s/%s", root, r);
        struct stat st;
        if (stat(full, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            collect(root, r);
        } else if (S_ISREG(st.st_mode)) {
            if (npaths == cap) {
                cap = cap ? cap * 2 : 64;
                paths = realloc(paths, (size_t)cap * sizeof *paths);
                if (!paths)
                    exit(1);
            }
            paths[npaths++] = strdup(r);
        }
    }
    closedir(d);
}

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
    collect(root, "");
    qsort(paths, (size_t)npaths, sizeof *paths, cmp);
    for (int k = 0; k < npaths; k++) {
        int i = reverse ? npaths - 1 - k : k;
        char full[8200];
        snprintf(full, sizeof full, "%s/%s", root, paths[i]);
        FILE *f = fopen(full, "rb");
        if (!f)
            return 1;
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *buf = malloc((size_t)n + 1);
        if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
            return 1;
        fclose(f);
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, paths[i]);
        archive_entry_set_size(e, n);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_mtime(e, 1700000000, 0);
        if (archive_write_header(a, e) != ARCHIVE_OK ||
            archive_write_data(a, buf, (size_t)n) != n) {
            fprintf(stderr, "mkarchive: %s: %s\n", paths[i], archive_error_string(a));
            return 1;
        }
        archive_entry_free(e);
        free(buf);
        free(paths[i]);
    }
    free(paths);
    if (archive_write_close(a) != ARCHIVE_OK) {
        fprintf(stderr, "mkarchive: close: %s\n", archive_error_string(a));
        return 1;
    }
    archive_write_free(a);
    return 0;
}
