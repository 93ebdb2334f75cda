/* safetensors: the tensor file format of Hugging Face's safetensors.
 *
 * Layout: u64 little-endian header length N; N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
 *    "__metadata__": {"key": "string", ...}}
 * padded with spaces to a multiple of 8; then the tensor bytes (little
 * endian, row-major), offsets relative to the end of the header.
 *
 * Writer: describe tensors (the caller keeps their memory alive until
 * st_write returns), then st_write streams them to "<path>.tmp.<pid>",
 * fsyncs and renames, so a reader never sees half a file.
 * Reader: st_open maps the file read-only and checks every offset, shape and
 * dtype against the file size before anything is used.
 *
 * Content hash: st_write records the SHA-256 of the data section (every byte
 * after the header) as the metadata value ST_META_SHA256, so a flipped bit
 * in a volume, a mask or a checkpoint is found when a stage loads it rather
 * than trained on: st_verify checks it (once per StFile; about 1 ms per MB
 * on one core with the SHA extensions). */
#ifndef FVLM_SAFETENSORS_H
#define FVLM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef enum {
    ST_BOOL, ST_U8, ST_I8, ST_I16, ST_U16, ST_F16, ST_BF16, ST_I32, ST_U32, ST_F32, ST_F64,
    ST_I64, ST_U64, ST_NDTYPES
} StDType;

enum { ST_MAX_DIMS = 8 };

/* Metadata key of the data section's SHA-256 (64 hex digits). */
#define ST_META_SHA256 "fvlm.data_sha256"

const char *st_dtype_name(StDType t);
size_t st_dtype_size(StDType t);

typedef struct StTensor {
    char *name;
    StDType dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;   /* writer: caller's memory; reader: inside the mapping */
    size_t nbytes;
} StTensor;

typedef struct StWriter {
    StTensor *t;
    int n, cap;
    char **meta_keys, **meta_vals;
    int nmeta, capmeta;
} StWriter;

void st_writer_init(StWriter *w);
void st_writer_free(StWriter *w);
int st_writer_add(StWriter *w, const char *name, StDType dtype, int ndim, const int64_t *shape,
                  const void *data, FvErr *e);
int st_writer_meta(StWriter *w, const char *key, const char *value, FvErr *e);
int st_write(StWriter *w, const char *path, FvErr *e);

typedef struct StFile {
    void *map;
    size_t size;
    StTensor *t;
    int n;
    char **meta_keys, **meta_vals;
    int nmeta;
    char *path;
    size_t data_off;    /* bytes before the data section: 8 + the header */
    int verified;       /* st_verify: 1 hash checked, -1 no hash recorded, 0 not yet */
} StFile;

int st_open(StFile **out, const char *path, FvErr *e);
/* Checks the data section against the recorded ST_META_SHA256 (the first
 * call reads every byte; later calls return at once). A mismatch is
 * FV_EDAMAGED naming the file. A file written without a hash (before fvlm
 * recorded one) passes with f->verified = -1 and one warning per process. */
int st_verify(StFile *f, FvErr *e);
void st_close(StFile **f);
const StTensor *st_get(const StFile *f, const char *name);
const char *st_meta(const StFile *f, const char *key);
/* A tensor of the given dtype and rank, or an error naming file and tensor. */
int st_get_checked(const StFile *f, const char *name, StDType dtype, int ndim,
                   const StTensor **out, FvErr *e);

#endif
