/* fsutil: whole-file reads with a size limit, atomic writes, folders.
 *
 * fs_write_atomic writes to "<path>.tmp.<pid>", fsyncs, renames over path
 * and fsyncs the folder, so a crash leaves either the old file or the new
 * one, never half of one. */
#ifndef FVLM_FSUTIL_H
#define FVLM_FSUTIL_H

#include <stddef.h>

#include "error.h"

/* Reads a whole file; fails with FV_ELIMIT when it is larger than limit
 * bytes. *data is NUL-terminated and owned by the caller (free). */
int fs_read_file(const char *path, size_t limit, char **data, size_t *len, FvErr *e);
int fs_write_atomic(const char *path, const void *data, size_t len, FvErr *e);
/* Renames tmp to path and fsyncs the folder (for writers that stream). */
int fs_commit_rename(const char *tmp, const char *path, FvErr *e);
int fs_mkdir_p(const char *path, FvErr *e);
int fs_exists(const char *path);
int fs_is_dir(const char *path);
/* Directory part of path (".", when none) into out. */
void fs_dirname(const char *path, char *out, size_t n);

/* The regular files below dir, recursively, as "dir/<relative path>" in
 * sorted order: *paths holds *n strings (free with fs_list_free). Names
 * starting with '.' are skipped; links are followed, to a depth of 64
 * folders (deeper is an error: a link loop). */
int fs_list_files(const char *dir, char ***paths, int *n, FvErr *e);
void fs_list_free(char ***paths, int n);

#endif
