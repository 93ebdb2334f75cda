#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "json.h"
#include "log.h"
#include "sha256.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c writes host byte order and needs a little-endian machine"
#endif

static const char *dtype_names[ST_NDTYPES] = {"BOOL", "U8",  "I8",  "I16", "U16", "F16", "BF16",
                                              "I32",  "U32", "F32", "F64", "I64", "U64"};
static const size_t dtype_sizes[ST_NDTYPES] = {1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 8, 8, 8};

const char *st_dtype_name(StDType t) { return t < ST_NDTYPES ? dtype_names[t] : "?"; }
size_t st_dtype_size(StDType t) { return t < ST_NDTYPES ? dtype_sizes[t] : 0; }

static int numel_bytes(StDType dt, int ndim, const int64_t *shape, size_t *out)
{
    size_t n = st_dtype_size(dt);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return -1;
        if (shape[i] && n > SIZE_MAX / (size_t)shape[i])
            return -1;
        n *= (size_t)shape[i];
    }
    *out = n;
    return 0;
}

/* ---------------------------------------------------------------- writer */

void st_writer_init(StWriter *w) { memset(w, 0, sizeof *w); }

void st_writer_free(StWriter *w)
{
    for (int i = 0; i < w->n; i++)
        free(w->t[i].name);
    for (int i = 0; i < w->nmeta; i++) {
        free(w->meta_keys[i]);
        free(w->meta_vals[i]);
    }
    free(w->t);
    free(w->meta_keys);
    free(w->meta_vals);
    memset(w, 0, sizeof *w);
}

int st_writer_add(StWriter *w, const char *name, StDType dtype, int ndim, const int64_t *shape,
                  const void *data, FvErr *e)
{
    if (ndim < 0 || ndim > ST_MAX_DIMS || dtype >= ST_NDTYPES)
        return err_set(e, FV_EINTERNAL, "safetensors: tensor %s: bad rank or dtype", name);
    if (arr_reserve(&w->t, &w->cap, w->n, sizeof *w->t, 16))
        return err_set(e, FV_ENOMEM, "safetensors: out of memory");
    StTensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    if (numel_bytes(dtype, ndim, shape, &t->nbytes))
        return err_set(e, FV_EINTERNAL, "safetensors: tensor %s: bad shape", name);
    if (!(t->name = strdup(name)))
        return err_set(e, FV_ENOMEM, "safetensors: out of memory");
    t->dtype = dtype;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->data = data;
    w->n++;
    return 0;
}

int st_writer_meta(StWriter *w, const char *key, const char *value, FvErr *e)
{
    if (w->nmeta == w->capmeta) {
        int nc = w->capmeta ? w->capmeta * 2 : 8;
        char **k = realloc(w->meta_keys, (size_t)nc * sizeof *k);
        if (!k)
            return err_set(e, FV_ENOMEM, "safetensors: out of memory");
        w->meta_keys = k;
        char **v = realloc(w->meta_vals, (size_t)nc * sizeof *v);
        if (!v)
            return err_set(e, FV_ENOMEM, "safetensors: out of memory");
        w->meta_vals = v;
        w->capmeta = nc;
    }
    w->meta_keys[w->nmeta] = strdup(key);
    w->meta_vals[w->nmeta] = strdup(value);
    if (!w->meta_keys[w->nmeta] || !w->meta_vals[w->nmeta]) {
        free(w->meta_keys[w->nmeta]);
        free(w->meta_vals[w->nmeta]);
        return err_set(e, FV_ENOMEM, "safetensors: out of memory");
    }
    w->nmeta++;
    return 0;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t k = write(fd, c, n > (1u << 30) ? (1u << 30) : n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Larger element sizes first, then by name (as the reference implementation
 * orders them): with a header padded to 8 bytes, every tensor then starts at
 * an address aligned for its dtype, so readers can use the mapping directly. */
static int cmp_tensor(const void *a, const void *b)
{
    const StTensor *x = a, *y = b;
    size_t sx = st_dtype_size(x->dtype), sy = st_dtype_size(y->dtype);
    if (sx != sy)
        return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

int st_write(StWriter *w, const char *path, FvErr *e)
{
    qsort(w->t, (size_t)w->n, sizeof *w->t, cmp_tensor);
    /* The data section's hash, in the order the tensors are written. */
    int have_hash = 0;
    for (int i = 0; i < w->nmeta; i++)
        have_hash |= strcmp(w->meta_keys[i], ST_META_SHA256) == 0;
    if (!have_hash) {
        Sha256 c;
        sha256_init(&c);
        for (int i = 0; i < w->n; i++)
            sha256_update(&c, w->t[i].data, w->t[i].nbytes);
        unsigned char dg[32];
        char hex[65];
        sha256_final(&c, dg);
        sha256_to_hex(dg, hex);
        if (st_writer_meta(w, ST_META_SHA256, hex, e))
            return err_prefix(e, "%s", path);
    }
    Buf h = {0};
    JsonW j;
    jw_init(&j, &h, 0);
    jw_obj(&j);
    if (w->nmeta) {
        jw_key(&j, "__metadata__");
        jw_obj(&j);
        for (int i = 0; i < w->nmeta; i++) {
            jw_key(&j, w->meta_keys[i]);
            jw_str(&j, w->meta_vals[i]);
        }
        jw_obj_end(&j);
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        StTensor *t = &w->t[i];
        jw_key(&j, t->name);
        jw_obj(&j);
        jw_key(&j, "dtype");
        jw_str(&j, st_dtype_name(t->dtype));
        jw_key(&j, "shape");
        jw_arr(&j);
        for (int d = 0; d < t->ndim; d++)
            jw_int(&j, t->shape[d]);
        jw_arr_end(&j);
        jw_key(&j, "data_offsets");
        jw_arr(&j);
        jw_int(&j, (int64_t)off);
        jw_int(&j, (int64_t)(off + t->nbytes));
        jw_arr_end(&j);
        jw_obj_end(&j);
        off += t->nbytes;
    }
    jw_obj_end(&j);
    while (h.len % 8)
        buf_putc(&h, ' ');
    if (h.failed) {
        buf_free(&h);
        return err_set(e, FV_ENOMEM, "%s: out of memory writing header", path);
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        buf_free(&h);
        return err_set(e, FV_EIO, "%s: %s", tmp, strerror(errno));
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    int bad = write_all(fd, len8, 8) || write_all(fd, h.data, h.len);
    buf_free(&h);
    for (int i = 0; !bad && i < w->n; i++)
        bad = write_all(fd, w->t[i].data, w->t[i].nbytes);
    if (bad || fsync(fd) != 0) {
        int er = errno;
        close(fd);
        unlink(tmp);
        return err_set(e, FV_EIO, "%s: write: %s", tmp, strerror(er));
    }
    if (close(fd) != 0) {
        int er = errno;
        unlink(tmp);
        return err_set(e, FV_EIO, "%s: close: %s", tmp, strerror(er));
    }
    return fs_commit_rename(tmp, path, e);
}

/* ---------------------------------------------------------------- reader */

void st_close(StFile **pf)
{
    if (!pf || !*pf)
        return;
    StFile *f = *pf;
    if (f->map)
        munmap(f->map, f->size);
    for (int i = 0; i < f->n; i++)
        free(f->t[i].name);
    for (int i = 0; i < f->nmeta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->t);
    free(f->meta_keys);
    free(f->meta_vals);
    free(f->path);
    free(f);
    *pf = NULL;
}

static int parse_header(StFile *f, const char *hdr, size_t hlen, size_t data_size, FvErr *e)
{
    JsonValue *root;
    if (json_parse(hdr, hlen, &root, e))
        return err_prefix(e, "%s: header", f->path);
    int rc = -1;
    if (root->type != JSON_OBJ) {
        err_set(e, FV_EFORMAT, "%s: header is not a JSON object", f->path);
        goto out;
    }
    f->t = calloc(root->len ? root->len : 1, sizeof *f->t);
    f->meta_keys = calloc(root->len ? root->len : 1, sizeof(char *));
    f->meta_vals = calloc(root->len ? root->len : 1, sizeof(char *));
    if (!f->t || !f->meta_keys || !f->meta_vals) {
        err_set(e, FV_ENOMEM, "%s: out of memory", f->path);
        goto out;
    }
    for (size_t i = 0; i < root->len; i++) {
        const char *name = root->keys[i];
        const JsonValue *v = &root->items[i];
        if (strcmp(name, "__metadata__") == 0) {
            if (v->type != JSON_OBJ) {
                err_set(e, FV_EFORMAT, "%s: __metadata__ is not an object", f->path);
                goto out;
            }
            /* JSON allows a key twice; a second __metadata__ would write past
             * the arrays sized for the first (found by tests/fuzz). */
            if (f->nmeta) {
                err_set(e, FV_EFORMAT, "%s: __metadata__ appears twice", f->path);
                goto out;
            }
            char **mk = realloc(f->meta_keys, (v->len + 1) * sizeof(char *));
            if (mk)
                f->meta_keys = mk;
            char **mv = mk ? realloc(f->meta_vals, (v->len + 1) * sizeof(char *)) : NULL;
            if (mv)
                f->meta_vals = mv;
            if (!mk || !mv) {
                err_set(e, FV_ENOMEM, "%s: out of memory", f->path);
                goto out;
            }
            for (size_t k = 0; k < v->len; k++) {
                if (v->items[k].type != JSON_STR) {
                    err_set(e, FV_EFORMAT, "%s: metadata %s is not a string", f->path,
                            v->keys[k]);
                    goto out;
                }
                f->meta_keys[f->nmeta] = strdup(v->keys[k]);
                f->meta_vals[f->nmeta] = strdup(v->items[k].str);
                f->nmeta++;
                if (!f->meta_keys[f->nmeta - 1] || !f->meta_vals[f->nmeta - 1]) {
                    err_set(e, FV_ENOMEM, "%s: out of memory", f->path);
                    goto out;
                }
            }
            continue;
        }
        StTensor *t = &f->t[f->n];
        const char *dt = json_get_str(v, "dtype", NULL);
        const JsonValue *shape = json_get(v, "shape");
        const JsonValue *offs = json_get(v, "data_offsets");
        if (!dt || !shape || shape->type != JSON_ARR || !offs || offs->type != JSON_ARR ||
            offs->len != 2) {
            err_set(e, FV_EFORMAT, "%s: tensor %s: missing dtype, shape or data_offsets",
                    f->path, name);
            goto out;
        }
        int found = -1;
        for (int d = 0; d < ST_NDTYPES; d++)
            if (strcmp(dt, dtype_names[d]) == 0)
                found = d;
        if (found < 0) {
            err_set(e, FV_EFORMAT, "%s: tensor %s: unknown dtype %s", f->path, name, dt);
            goto out;
        }
        if (shape->len > ST_MAX_DIMS) {
            err_set(e, FV_EFORMAT, "%s: tensor %s: rank %zu over %d", f->path, name, shape->len,
                    ST_MAX_DIMS);
            goto out;
        }
        t->dtype = (StDType)found;
        t->ndim = (int)shape->len;
        for (int d = 0; d < t->ndim; d++) {
            const JsonValue *s = &shape->items[d];
            if (s->type != JSON_NUM || !s->is_int || s->i < 0) {
                err_set(e, FV_EFORMAT, "%s: tensor %s: bad shape", f->path, name);
                goto out;
            }
            t->shape[d] = s->i;
        }
        const JsonValue *b = &offs->items[0], *en = &offs->items[1];
        if (b->type != JSON_NUM || en->type != JSON_NUM || !b->is_int || !en->is_int ||
            b->i < 0 || en->i < b->i || (uint64_t)en->i > data_size) {
            err_set(e, FV_EFORMAT, "%s: tensor %s: data_offsets outside the file", f->path,
                    name);
            goto out;
        }
        size_t want = 0;
        if (numel_bytes(t->dtype, t->ndim, t->shape, &want) || want != (size_t)(en->i - b->i)) {
            err_set(e, FV_EFORMAT, "%s: tensor %s: %lld bytes for shape that needs %zu", f->path,
                    name, (long long)(en->i - b->i), want);
            goto out;
        }
        t->name = strdup(name);
        if (!t->name) {
            err_set(e, FV_ENOMEM, "%s: out of memory", f->path);
            goto out;
        }
        t->nbytes = want;
        if ((8 + hlen + (size_t)b->i) % st_dtype_size(t->dtype)) {
            err_set(e, FV_EUNSUPPORTED, "%s: tensor %s is not aligned for %s", f->path, name,
                    dt);
            free(t->name);
            goto out;
        }
        t->data = (const char *)f->map + 8 + hlen + b->i;
        f->n++;
    }
    rc = 0;
out:
    json_free(&root);
    return rc;
}

int st_open(StFile **out, const char *path, FvErr *e)
{
    *out = NULL;
    StFile *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return err_set(e, FV_ENOMEM, "%s: out of memory", path);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_set(e, FV_EIO, "%s: %s", path, strerror(errno));
        st_close(&f);
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 8) {
        close(fd);
        err_set(e, FV_EFORMAT, "%s: too short for a safetensors file", path);
        st_close(&f);
        return -1;
    }
    f->size = (size_t)st.st_size;
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        err_set(e, FV_EIO, "%s: mmap: %s", path, strerror(errno));
        st_close(&f);
        return -1;
    }
    const unsigned char *p = f->map;
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)p[i] << (8 * i);
    if (hlen > f->size - 8 || hlen > (100u << 20)) {
        err_set(e, FV_EFORMAT, "%s: header length %llu is past the end of the file", path,
                (unsigned long long)hlen);
        st_close(&f);
        return -1;
    }
    if (parse_header(f, (const char *)p + 8, (size_t)hlen, f->size - 8 - (size_t)hlen, e)) {
        st_close(&f);
        return -1;
    }
    f->data_off = 8 + (size_t)hlen;
    *out = f;
    return 0;
}

int st_verify(StFile *f, FvErr *e)
{
    if (f->verified)
        return 0;
    const char *want = st_meta(f, ST_META_SHA256);
    if (!want) {
        static int warned;
        if (!warned++)
            log_warn("%s: no content hash recorded (written before fvlm kept one): not verified",
                     f->path);
        f->verified = -1;
        return 0;
    }
    char hex[65];
    sha256_hex((const char *)f->map + f->data_off, f->size - f->data_off, hex);
    if (strcmp(hex, want) != 0)
        return err_set(e, FV_EDAMAGED,
                       "%s: damaged: the SHA-256 of its tensor bytes is %.16s..., the file "
                       "records %.16s... (re-create it: re-run the stage that wrote it)",
                       f->path, hex, want);
    f->verified = 1;
    return 0;
}

const StTensor *st_get(const StFile *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0)
            return &f->t[i];
    return NULL;
}

const char *st_meta(const StFile *f, const char *key)
{
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_vals[i];
    return NULL;
}

int st_get_checked(const StFile *f, const char *name, StDType dtype, int ndim,
                   const StTensor **out, FvErr *e)
{
    const StTensor *t = st_get(f, name);
    if (!t)
        return err_set(e, FV_ENOTFOUND, "%s: no tensor %s", f->path, name);
    if (t->dtype != dtype || (ndim >= 0 && t->ndim != ndim))
        return err_set(e, FV_EFORMAT, "%s: tensor %s is %s rank %d, expected %s rank %d",
                       f->path, name, st_dtype_name(t->dtype), t->ndim, st_dtype_name(dtype),
                       ndim);
    *out = t;
    return 0;
}
