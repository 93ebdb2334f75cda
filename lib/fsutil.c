#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"

int fs_read_file(const char *path, size_t limit, char **data, size_t *len, FvErr *e)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(e, FV_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int er = errno;
        close(fd);
        return err_set(e, FV_EIO, "%s: %s", path, strerror(er));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(e, FV_EIO, "%s: not a regular file", path);
    }
    if ((unsigned long long)st.st_size > limit) {
        close(fd);
        return err_set(e, FV_ELIMIT, "%s: %lld bytes is over the limit of %zu", path,
                       (long long)st.st_size, limit);
    }
    size_t n = (size_t)st.st_size;
    char *p = malloc(n + 1);
    if (!p) {
        close(fd);
        return err_set(e, FV_ENOMEM, "%s: cannot allocate %zu bytes", path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int er = errno;
            free(p);
            close(fd);
            return err_set(e, FV_EIO, "%s: short read at byte %zu: %s", path, got,
                           r == 0 ? "file shrank" : strerror(er));
        }
        got += (size_t)r;
    }
    close(fd);
    p[n] = '\0';
    *data = p;
    *len = n;
    return 0;
}

void fs_dirname(const char *path, char *out, size_t n)
{
    const char *s = strrchr(path, '/');
    if (!s)
        snprintf(out, n, ".");
    else if (s == path)
        snprintf(out, n, "/");
    else
        snprintf(out, n, "%.*s", (int)(s - path), path);
}

static int fsync_dir_of(const char *path, FvErr *e)
{
    char dir[4096];
    fs_dirname(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return err_set(e, FV_EIO, "%s: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int er = errno;
    close(fd);
    if (rc != 0 && er != EINVAL) /* some filesystems cannot fsync folders */
        return err_set(e, FV_EIO, "%s: fsync: %s", dir, strerror(er));
    return 0;
}

int fs_commit_rename(const char *tmp, const char *path, FvErr *e)
{
    if (rename(tmp, path) != 0) {
        int er = errno;
        unlink(tmp);
        return err_set(e, FV_EIO, "%s: rename: %s", path, strerror(er));
    }
    return fsync_dir_of(path, e);
}

int fs_write_atomic(const char *path, const void *data, size_t len, FvErr *e)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return err_set(e, FV_EIO, "%s: %s", tmp, strerror(errno));
    const char *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, p + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int er = errno;
            close(fd);
            unlink(tmp);
            return err_set(e, FV_EIO, "%s: write: %s", tmp, strerror(er));
        }
        done += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int er = errno;
        unlink(tmp);
        return err_set(e, FV_EIO, "%s: %s", tmp, strerror(er));
    }
    return fs_commit_rename(tmp, path, e);
}

int fs_mkdir_p(const char *path, FvErr *e)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return err_set(e, FV_EUSAGE, "bad folder path '%s'", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return err_set(e, FV_EIO, "%s: mkdir: %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
    if (!fs_is_dir(path))
        return err_set(e, FV_EIO, "%s: exists and is not a folder", path);
    return 0;
}

int fs_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int fs_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ------------------------------------------------------------------ lists */

typedef struct PathList {
    char **p;
    int n, cap;
} PathList;

static int list_dir(const char *dir, int depth, PathList *l, FvErr *e)
{
    if (depth > 64)
        return err_set(e, FV_ELIMIT, "%s: folders nested deeper than 64 (a link loop?)", dir);
    DIR *d = opendir(dir);
    if (!d)
        return err_set(e, FV_EIO, "%s: %s", dir, strerror(errno));
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= sizeof path) {
            rc = err_set(e, FV_ELIMIT, "%s/%s: path too long", dir, de->d_name);
            break;
        }
        struct stat st;
        if (stat(path, &st) != 0)
            continue; /* a dangling link */
        if (S_ISDIR(st.st_mode)) {
            rc = list_dir(path, depth + 1, l, e);
        } else if (S_ISREG(st.st_mode)) {
            if (arr_reserve(&l->p, &l->cap, l->n, sizeof *l->p, 64)) {
                rc = err_set(e, FV_ENOMEM, "%s: out of memory", dir);
                break;
            }
            if (!(l->p[l->n] = strdup(path)))
                rc = err_set(e, FV_ENOMEM, "%s: out of memory", dir);
            else
                l->n++;
        }
    }
    closedir(d);
    return rc;
}

static int cmp_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int fs_list_files(const char *dir, char ***paths, int *n, FvErr *e)
{
    PathList l = {0};
    *paths = NULL;
    *n = 0;
    if (list_dir(dir, 0, &l, e)) {
        fs_list_free(&l.p, l.n);
        return -1;
    }
    if (l.n > 1)
        qsort(l.p, (size_t)l.n, sizeof *l.p, cmp_path);
    *paths = l.p;
    *n = l.n;
    return 0;
}

void fs_list_free(char ***paths, int n)
{
    for (int i = 0; *paths && i < n; i++)
        free((*paths)[i]);
    free(*paths);
    *paths = NULL;
}
