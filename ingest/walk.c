#include "walk.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "buf.h"
#include "fsutil.h"
#include "names.h"

/* ------------------------------------------------------------------ names */

static const char *archive_exts[] = {".tar.gz", ".tgz",     ".tar.bz2", ".tbz2", ".tbz",
                                     ".tar.xz", ".txz",     ".tar.zst", ".tzst", ".tar.lz4",
                                     ".tar.lzma", ".tar",   ".zip",     ".7z",   ".cpio"};

int walk_is_archive_name(const char *name)
{
    for (size_t i = 0; i < sizeof archive_exts / sizeof archive_exts[0]; i++)
        if (name_ends_with(name, archive_exts[i]))
            return 1;
    return 0;
}

void walk_archive_stem(const char *path, char *out, size_t n)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(out, n, "%s", b);
    for (size_t i = 0; i < sizeof archive_exts / sizeof archive_exts[0]; i++)
        if (name_ends_with(out, archive_exts[i])) {
            out[strlen(out) - strlen(archive_exts[i])] = '\0';
            return;
        }
}

/* ------------------------------------------------------------------ lists */

typedef struct FileList {
    char **p;
    int64_t *size;
    size_t *relofs;      /* where the path continues below its input folder */
    size_t cur_relofs;   /* for the input being walked */
    int n, cap;
} FileList;

/* Resizes the array whose pointer is at pp to n items of elem bytes (the
 * pointer is copied with memcpy: pp may point to any object pointer). On
 * failure the old array stays. */
static int resize(void *pp, size_t elem, int n, FvErr *e)
{
    void *old, *p;
    memcpy(&old, pp, sizeof old);
    if (!(p = realloc(old, (size_t)n * elem)))
        return err_set(e, FV_ENOMEM, "walk: out of memory");
    memcpy(pp, &p, sizeof p);
    return 0;
}

static int fl_add(FileList *l, const char *path, int64_t size, FvErr *e)
{
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 256;
        if (resize(&l->p, sizeof *l->p, nc, e) || resize(&l->size, sizeof *l->size, nc, e) ||
            resize(&l->relofs, sizeof *l->relofs, nc, e))
            return -1;
        l->cap = nc;
    }
    if (!(l->p[l->n] = strdup(path)))
        return err_set(e, FV_ENOMEM, "walk: out of memory");
    l->relofs[l->n] = l->cur_relofs <= strlen(path) ? l->cur_relofs : 0;
    l->size[l->n++] = size;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_skipped(const char *path, const char *skip_real)
{
    if (!skip_real)
        return 0;
    char real[PATH_MAX];
    if (!realpath(path, real))
        return 0;
    size_t k = strlen(skip_real);
    /* The database, its -wal/-shm/-journal files and its .tensors folder. */
    return strncmp(real, skip_real, k) == 0 &&
           (real[k] == '\0' || real[k] == '-' || real[k] == '.');
}

static int walk_dir(const char *dir, const char *skip_real, FileList *out, int depth, FvErr *e)
{
    if (depth > 64)
        return err_set(e, FV_EUSAGE, "%s: folders nested deeper than 64", dir);
    DIR *d = opendir(dir);
    if (!d)
        return err_set(e, FV_EIO, "%s: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0, rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !strcmp(de->d_name, "__MACOSX"))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            if ((rc = resize(&names, sizeof *names, cap, e)))
                break;
        }
        if (!(names[n] = strdup(de->d_name))) {
            rc = err_set(e, FV_ENOMEM, "walk: out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == 0 && n) /* an empty folder: names is NULL, which qsort must not get */
        qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n && rc == 0; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        char *p = malloc(len);
        if (!p) {
            rc = err_set(e, FV_ENOMEM, "walk: out of memory");
            break;
        }
        snprintf(p, len, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", names[i]);
        struct stat st, lst;
        if (stat(p, &st) != 0) {
            free(p);
            continue; /* a dangling link */
        }
        if (is_skipped(p, skip_real)) {
            free(p);
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            /* Linked folders are not followed (no loops). */
            if (lstat(p, &lst) == 0 && !S_ISLNK(lst.st_mode))
                rc = walk_dir(p, skip_real, out, depth + 1, e);
        } else if (S_ISREG(st.st_mode)) {
            rc = fl_add(out, p, (int64_t)st.st_size, e);
        }
        free(p);
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* ------------------------------------------------------------------ units */

static int add_unit(UnitList *l, UnitType t, const char *path, const char *name, int phase,
                    FvErr *e)
{
    if (arr_reserve(&l->u, &l->cap, l->n, sizeof *l->u, 64))
        return err_set(e, FV_ENOMEM, "walk: out of memory");
    Unit *u = &l->u[l->n];
    memset(u, 0, sizeof *u);
    u->type = t;
    u->phase = phase;
    u->path = strdup(path);
    u->name = strdup(name);
    if (!u->path || !u->name) {
        free(u->path);
        free(u->name);
        return err_set(e, FV_ENOMEM, "walk: out of memory");
    }
    l->n++;
    return 0;
}

static int unit_add_file(Unit *u, const char *path, size_t relofs, int64_t size, FvErr *e)
{
    if ((u->nfiles & (u->nfiles - 1)) == 0) {
        int nc = u->nfiles ? u->nfiles * 2 : 1;
        if (resize(&u->files, sizeof *u->files, nc, e) ||
            resize(&u->relofs, sizeof *u->relofs, nc, e))
            return -1;
    }
    if (!(u->files[u->nfiles] = strdup(path)))
        return err_set(e, FV_ENOMEM, "walk: out of memory");
    u->relofs[u->nfiles] = relofs;
    u->nfiles++;
    u->bytes += size;
    return 0;
}

/* The unit folder of a loose file: its folder, or the nearest ancestor
 * whose name is not generic. */
static void unit_dir_of(const char *file, char *out, size_t n)
{
    fs_dirname(file, out, n);
    for (;;) {
        char *slash = strrchr(out, '/');
        const char *base = slash ? slash + 1 : out;
        if (!name_is_generic_dir(base) || !slash || slash == out)
            break;
        *slash = '\0';
    }
}

typedef struct Loose {
    char *path;
    char *unit;
    int64_t size;
    size_t relofs;
    int rank;
} Loose;

static int cmp_loose(const void *a, const void *b)
{
    const Loose *x = a, *y = b;
    int c = strcmp(x->unit, y->unit);
    if (c)
        return c;
    if (x->rank != y->rank)
        return x->rank - y->rank;
    return strcmp(x->path, y->path);
}

static int cmp_unit(const void *a, const void *b)
{
    const Unit *x = a, *y = b;
    if (x->phase != y->phase)
        return x->phase - y->phase;
    return strcmp(x->path, y->path);
}

int walk_inputs(char *const *inputs, int n, const char *skip, UnitList *out, FvErr *e)
{
    memset(out, 0, sizeof *out);
    char skip_real[PATH_MAX] = "";
    if (skip && !realpath(skip, skip_real))
        snprintf(skip_real, sizeof skip_real, "%s", skip);
    FileList files = {0};
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        struct stat st;
        if (stat(inputs[i], &st) != 0) {
            rc = err_set(e, FV_ENOTFOUND, "%s: %s", inputs[i], strerror(errno));
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            size_t k = strlen(inputs[i]);
            files.cur_relofs = k + (k && inputs[i][k - 1] != '/');
            rc = walk_dir(inputs[i], skip_real[0] ? skip_real : NULL, &files, 0, e);
        } else if (S_ISREG(st.st_mode)) {
            const char *b = strrchr(inputs[i], '/');
            files.cur_relofs = b ? (size_t)(b + 1 - inputs[i]) : 0;
            rc = fl_add(&files, inputs[i], (int64_t)st.st_size, e);
        }
        else
            rc = err_set(e, FV_EUSAGE, "%s: not a file or folder", inputs[i]);
    }
    Loose *loose = rc == 0 && files.n ? calloc((size_t)files.n, sizeof *loose) : NULL;
    int nl = 0;
    if (rc == 0 && files.n && !loose)
        rc = err_set(e, FV_ENOMEM, "walk: out of memory");
    for (int i = 0; i < files.n && rc == 0; i++) {
        const char *p = files.p[i];
        out->bytes += files.size[i];
        if (walk_is_archive_name(p)) {
            char stem[512];
            walk_archive_stem(p, stem, sizeof stem);
            if ((rc = add_unit(out, UNIT_ARCHIVE, p, stem, 1, e)) == 0)
                out->u[out->n - 1].bytes = files.size[i];
            continue;
        }
        NameKind k = name_kind(p);
        if (k == NK_TABLE_META || k == NK_TABLE_REPORTS || k == NK_TABLE_OTHER) {
            const char *b = strrchr(p, '/');
            if ((rc = add_unit(out, UNIT_FILES, p, b ? b + 1 : p, 0, e)) == 0) {
                Unit *u = &out->u[out->n - 1];
                rc = unit_add_file(u, p, files.relofs[i], files.size[i], e);
                /* Metadata before reports before the rest. */
                u->phase = 0;
                u->bytes = files.size[i];
            }
            continue;
        }
        char dir[4096];
        unit_dir_of(p, dir, sizeof dir);
        loose[nl].path = files.p[i];
        loose[nl].unit = strdup(dir);
        loose[nl].size = files.size[i];
        loose[nl].relofs = files.relofs[i];
        loose[nl].rank = name_rank(k, p + files.relofs[i]);
        if (!loose[nl].unit)
            rc = err_set(e, FV_ENOMEM, "walk: out of memory");
        nl++;
    }
    if (rc == 0 && nl)
        qsort(loose, (size_t)nl, sizeof *loose, cmp_loose);
    for (int i = 0; i < nl && rc == 0; i++) {
        if (i == 0 || strcmp(loose[i].unit, loose[i - 1].unit) != 0) {
            char real[PATH_MAX];
            const char *base = loose[i].unit;
            if (realpath(loose[i].unit, real))
                base = real;
            const char *s = strrchr(base, '/');
            rc = add_unit(out, UNIT_FILES, loose[i].unit, s && s[1] ? s + 1 : base, 2, e);
        }
        if (rc == 0) {
            Unit *u = &out->u[out->n - 1];
            rc = unit_add_file(u, loose[i].path, loose[i].relofs, loose[i].size, e);
            if (loose[i].rank <= 2)
                u->phase = 1; /* holds volumes */
        }
    }
    /* Tables: metadata first, then reports, then others (phase 0 keeps its
     * sub-order through the names' ranks). */
    for (int i = 0; i < out->n; i++)
        if (out->u[i].phase == 0) {
            NameKind k = name_kind(out->u[i].path);
            out->u[i].phase = k == NK_TABLE_META ? -3 : k == NK_TABLE_REPORTS ? -2 : -1;
        }
    if (rc == 0 && out->n)
        qsort(out->u, (size_t)out->n, sizeof *out->u, cmp_unit);
    for (int i = 0; i < out->n; i++)
        if (out->u[i].phase < 0)
            out->u[i].phase = 0;
    for (int i = 0; i < nl; i++)
        free(loose[i].unit);
    free(loose);
    for (int i = 0; i < files.n; i++)
        free(files.p[i]);
    free(files.p);
    free(files.size);
    free(files.relofs);
    if (rc)
        walk_free(out);
    return rc;
}

void walk_free(UnitList *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->u[i].path);
        free(l->u[i].name);
        for (int k = 0; k < l->u[i].nfiles; k++)
            free(l->u[i].files[k]);
        free(l->u[i].files);
        free(l->u[i].relofs);
    }
    free(l->u);
    memset(l, 0, sizeof *l);
}

/* ---------------------------------------------------------------- members */

struct MemberReader {
    const Unit *u;
    size_t limit;
    struct archive *a;
    int next_file;
    int done;
    unsigned char *data;
    size_t len;
    char name[4096];
    int64_t disk_done;   /* loose files: bytes of the files read */
};

int members_open(MemberReader **out, const Unit *u, size_t limit, FvErr *e)
{
    MemberReader *r = calloc(1, sizeof *r);
    if (!r)
        return err_set(e, FV_ENOMEM, "out of memory");
    r->u = u;
    r->limit = limit;
    if (u->type == UNIT_ARCHIVE) {
        r->a = archive_read_new();
        if (!r->a) {
            free(r);
            return err_set(e, FV_ENOMEM, "libarchive: out of memory");
        }
        archive_read_support_filter_all(r->a);
        archive_read_support_format_all(r->a);
        if (archive_read_open_filename(r->a, u->path, 1 << 20) != ARCHIVE_OK) {
            err_set(e, FV_EFORMAT, "cannot open archive: %s", archive_error_string(r->a));
            archive_read_free(r->a);
            free(r);
            return -1;
        }
    }
    *out = r;
    return 0;
}

void members_close(MemberReader **pr)
{
    if (!pr || !*pr)
        return;
    MemberReader *r = *pr;
    if (r->a)
        archive_read_free(r->a);
    free(r->data);
    free(r);
    *pr = NULL;
}

unsigned char *members_take(Member *m)
{
    unsigned char *d = m->data;
    if (m->owner)
        *m->owner = NULL;
    m->data = NULL;
    return d;
}

int64_t members_disk_bytes(const MemberReader *r)
{
    if (r->a)
        return archive_filter_bytes(r->a, -1);
    return r->disk_done;
}

/* Reads the current archive entry's data into r->data (growing as bytes
 * arrive: the size in the entry header is not trusted for allocation). */
static int read_entry(MemberReader *r, int64_t declared, int *fatal, FvErr *e)
{
    size_t cap = declared > 0 && (uint64_t)declared < (64u << 20) ? (size_t)declared + 1
                                                                   : (size_t)(1u << 20);
    if (cap > r->limit + 1)
        cap = r->limit + 1;
    unsigned char *buf = malloc(cap + 1);
    if (!buf)
        return err_set(e, FV_ENOMEM, "cannot allocate %zu bytes", cap);
    size_t len = 0;
    for (;;) {
        if (len == cap) {
            if (cap > r->limit) {
                free(buf);
                archive_read_data_skip(r->a);
                return err_set(e, FV_ELIMIT, "member is larger than the limit of %zu bytes",
                               r->limit);
            }
            size_t nc = cap * 2 > r->limit + 1 ? r->limit + 1 : cap * 2;
            unsigned char *nb = realloc(buf, nc + 1);
            if (!nb) {
                free(buf);
                return err_set(e, FV_ENOMEM, "cannot allocate %zu bytes", nc);
            }
            buf = nb;
            cap = nc;
        }
        la_ssize_t k = archive_read_data(r->a, buf + len, cap - len);
        if (k == 0)
            break;
        if (k < 0) {
            int fat = k == ARCHIVE_FATAL;
            err_set(e, FV_EFORMAT, "%s: %s", fat ? "archive is truncated or corrupt" : "bad member",
                    archive_error_string(r->a) ? archive_error_string(r->a) : "read error");
            free(buf);
            *fatal = fat;
            return -1;
        }
        len += (size_t)k;
    }
    buf[len] = 0;
    r->data = buf;
    r->len = len;
    return 0;
}

int members_next(MemberReader *r, Member *m, int *fatal, FvErr *e)
{
    free(r->data);
    r->data = NULL;
    r->len = 0;
    *fatal = 0;
    memset(m, 0, sizeof *m);
    m->source = r->u->path;
    if (r->done)
        return 0;
    if (r->u->type == UNIT_FILES) {
        if (r->next_file >= r->u->nfiles)
            return 0;
        const char *p = r->u->files[r->next_file];
        m->relofs = r->u->relofs[r->next_file++];
        m->name = p;
        m->source = p;
        m->member = "";
        char *data;
        size_t len;
        if (fs_read_file(p, r->limit, &data, &len, e))
            return -1;
        r->data = (unsigned char *)data;
        r->len = len;
        r->disk_done += (int64_t)len;
        m->data = r->data;
        m->len = len;
        m->owner = &r->data;
        return 1;
    }
    for (;;) {
        struct archive_entry *ent;
        int rc = archive_read_next_header(r->a, &ent);
        if (rc == ARCHIVE_EOF) {
            r->done = 1;
            return 0;
        }
        if (rc == ARCHIVE_FATAL || rc == ARCHIVE_RETRY) {
            r->done = 1;
            *fatal = 1;
            snprintf(r->name, sizeof r->name, "%s", "(next member header)");
            m->name = m->member = r->name;
            return err_set(e, FV_EFORMAT, "archive is truncated or corrupt: %s",
                           archive_error_string(r->a) ? archive_error_string(r->a)
                                                      : "cannot read the next member");
        }
        const char *name = archive_entry_pathname(ent);
        if (name && strlen(name) >= sizeof r->name) {
            /* Never cut: two long names would become one member. */
            size_t nl = strlen(name);
            snprintf(r->name, sizeof r->name, "%.200s...", name);
            m->name = m->member = r->name;
            archive_read_data_skip(r->a);
            return err_set(e, FV_ELIMIT, "member name of %zu bytes is over the %zu-byte limit",
                           nl, sizeof r->name - 1);
        }
        snprintf(r->name, sizeof r->name, "%s", name ? name : "(unnamed member)");
        m->name = m->member = r->name;
        if (archive_entry_filetype(ent) != AE_IFREG)
            continue;
        /* Hidden files and resource forks (__MACOSX/, ._x, .DS_Store). */
        const char *base = strrchr(r->name, '/');
        base = base ? base + 1 : r->name;
        if (base[0] == '.' || strstr(r->name, "__MACOSX/"))
            continue;
        int64_t declared = archive_entry_size_is_set(ent) ? archive_entry_size(ent) : -1;
        if (declared > 0 && (uint64_t)declared > r->limit) {
            archive_read_data_skip(r->a);
            return err_set(e, FV_ELIMIT, "member of %lld bytes is over the limit of %zu bytes",
                           (long long)declared, r->limit);
        }
        if (read_entry(r, declared, fatal, e)) {
            if (*fatal)
                r->done = 1;
            return -1;
        }
        m->data = r->data;
        m->len = r->len;
        m->owner = &r->data;
        return 1;
    }
}
