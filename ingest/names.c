#include "names.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int name_ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

static const char *base_of(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

static const char *archive_like[] = {".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz",
                                     ".txz", ".tar.zst", ".tzst", ".tar.lz4", ".tar.lzma",
                                     ".tar", ".zip", ".7z", ".cpio"};

NameKind name_kind(const char *path)
{
    const char *b = base_of(path);
    for (size_t i = 0; i < sizeof archive_like / sizeof archive_like[0]; i++)
        if (name_ends_with(b, archive_like[i]))
            return NK_ARCHIVE;
    if (name_ends_with(b, ".nii") || name_ends_with(b, ".nii.gz"))
        return NK_NIFTI;
    if (name_ends_with(b, ".hdr") || name_ends_with(b, ".hdr.gz"))
        return NK_HDR;
    if (name_ends_with(b, ".img") || name_ends_with(b, ".img.gz"))
        return NK_IMG;
    if (name_ends_with(b, ".dcm") || name_ends_with(b, ".dicom") || name_ends_with(b, ".ima"))
        return NK_DICOM;
    if (name_ends_with(b, ".csv")) {
        char low[256];
        snprintf(low, sizeof low, "%s", b);
        for (char *c = low; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        if (strstr(low, "metadata") || strstr(low, "meta"))
            return NK_TABLE_META;
        if (strstr(low, "report"))
            return NK_TABLE_REPORTS;
        return NK_TABLE_OTHER;
    }
    if (name_ends_with(b, ".txt")) {
        char low[256];
        snprintf(low, sizeof low, "%s", b);
        for (char *c = low; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        static const char *docs[] = {"readme", "license", "licence", "manifest", "checksum",
                                     "md5", "sha256", "notes", "index", "source"};
        for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
            if (!strncmp(low, docs[i], strlen(docs[i])))
                return NK_IGNORE;
        return NK_TXT;
    }
    if (name_ends_with(b, ".jsonl") || name_ends_with(b, ".ndjson") || name_ends_with(b, ".json"))
        return NK_JSON;
    static const char *ignored[] = {".md", ".pdf", ".png", ".jpg", ".jpeg", ".html", ".xml",
                                    ".py", ".sh", ".md5", ".sha256", ".log", ".yaml", ".yml",
                                    ".tsv", ".ini", ".cfg"};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        if (name_ends_with(b, ignored[i]))
            return NK_IGNORE;
    if (!strncasecmp(b, "readme", 6) || !strncasecmp(b, "license", 7) ||
        !strcasecmp(b, "DICOMDIR"))
        return NK_IGNORE;
    return NK_UNKNOWN;
}

static int is_mask_dir(const char *c, size_t n)
{
    static const char *dirs[] = {"seg", "segs", "segmentation", "segmentations", "mask",
                                 "masks", "label", "labels", "totalseg", "totalsegmentator"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        if (strlen(dirs[i]) == n && strncasecmp(c, dirs[i], n) == 0)
            return 1;
    return 0;
}

void name_stem(const char *path, char *out, size_t n)
{
    snprintf(out, n, "%s", base_of(path));
    static const char *exts[] = {".nii.gz", ".nii", ".hdr.gz", ".img.gz", ".hdr", ".img",
                                 ".dcm", ".dicom", ".ima", ".txt", ".jsonl", ".ndjson",
                                 ".json", ".csv", ".gz"};
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (name_ends_with(out, exts[i])) {
            out[strlen(out) - strlen(exts[i])] = '\0';
            return;
        }
}

int name_is_mask_path(const char *path)
{
    /* A folder component. */
    const char *s = path;
    for (;;) {
        const char *slash = strchr(s, '/');
        if (!slash)
            break;
        if (is_mask_dir(s, (size_t)(slash - s)))
            return 1;
        s = slash + 1;
    }
    char stem[256];
    name_stem(path, stem, sizeof stem);
    static const char *names[] = {"seg", "mask", "segmentation", "segmentations", "labels",
                                  "label", "multilabel", "totalseg"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(stem, names[i]))
            return 1;
    static const char *sfx[] = {"_seg", "_mask", "-seg", "-mask", "_segmentation", "_labels",
                                ".seg", "_multilabel", "_totalseg"};
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++)
        if (name_ends_with(stem, sfx[i]))
            return 1;
    return 0;
}

int name_is_generic_dir(const char *b)
{
    static const char *g[] = {"dicom", "dcm", "images", "image", "imgs", "ct", "cts",
                              "seg", "segs", "segmentation", "segmentations", "mask", "masks",
                              "label", "labels", "report", "reports", "text", "nifti", "nii",
                              "volume", "volumes", "totalseg", "totalsegmentator"};
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++)
        if (!strcasecmp(b, g[i]))
            return 1;
    /* "series", "series2", "Series_003", "series 4" */
    if (!strncasecmp(b, "series", 6)) {
        const char *c = b + 6;
        if (*c == '_' || *c == '-' || *c == ' ')
            c++;
        while (isdigit((unsigned char)*c))
            c++;
        return *c == '\0';
    }
    /* SE0001-style series folders of DICOM exports. */
    if ((b[0] == 'S' || b[0] == 's') && (b[1] == 'E' || b[1] == 'e') && isdigit((unsigned char)b[2])) {
        const char *c = b + 2;
        while (isdigit((unsigned char)*c))
            c++;
        return *c == '\0';
    }
    return 0;
}

int name_rank(NameKind k, const char *path)
{
    switch (k) {
    case NK_DICOM:
    case NK_UNKNOWN: return 0;
    case NK_NIFTI: return name_is_mask_path(path) ? 3 : 1;
    case NK_HDR:
    case NK_IMG: return name_is_mask_path(path) ? 3 : 2;
    case NK_TXT:
    case NK_JSON: return 4;
    default: return 5;
    }
}
