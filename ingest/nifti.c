#include "nifti.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "gz.h"

/* -------------------------------------------------------------- datatypes */

typedef struct DType {
    int code, size;
    const char *name;
    int is_float;
} DType;

static const DType dtypes[] = {
    {2, 1, "uint8", 0},    {4, 2, "int16", 0},    {8, 4, "int32", 0},
    {16, 4, "float32", 1}, {64, 8, "float64", 1}, {256, 1, "int8", 0},
    {512, 2, "uint16", 0}, {768, 4, "uint32", 0}, {1024, 8, "int64", 0},
    {1280, 8, "uint64", 0},
};

static const DType *dtype_find(int code)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (dtypes[i].code == code)
            return &dtypes[i];
    return NULL;
}

const char *nifti_dtype_name(int datatype)
{
    const DType *d = dtype_find(datatype);
    return d ? d->name : NULL;
}

int nifti_dtype_size(int datatype)
{
    const DType *d = dtype_find(datatype);
    return d ? d->size : 0;
}

/* Names of datatypes that are valid NIfTI but not a scalar image. */
static const char *other_dtype_name(int code)
{
    switch (code) {
    case 1: return "binary (1 bit)";
    case 32: return "complex64";
    case 128: return "rgb24";
    case 1536: return "float128";
    case 1792: return "complex128";
    case 2048: return "complex256";
    case 2304: return "rgba32";
    default: return NULL;
    }
}

/* ------------------------------------------------------------------ affine */

static void identity(double m[4][4])
{
    memset(m, 0, 16 * sizeof(double));
    for (int i = 0; i < 4; i++)
        m[i][i] = 1;
}

/* nibabel's quaternion handling: a = sqrt(1 - b^2 - c^2 - d^2), with small
 * negative values (float32 rounding) taken as 0; the rotation matrix is
 * computed from the normalised quaternion. */
static int qform_affine(const NiftiHeader *h, double out[4][4], FvErr *e)
{
    double b = h->quatern[0], c = h->quatern[1], d = h->quatern[2];
    double w2 = 1.0 - (b * b + c * c + d * d);
    if (w2 < 0) {
        if (w2 < -3.0 * 1.1920929e-07)
            return err_set(e, FV_EFORMAT,
                           "quaternion (%g, %g, %g) has a norm above 1: not a rotation", b, c, d);
        w2 = 0;
    }
    double a = sqrt(w2);
    double nq = a * a + b * b + c * c + d * d;
    double R[3][3];
    if (nq < 1e-12) {
        memset(R, 0, sizeof R);
        R[0][0] = R[1][1] = R[2][2] = 1;
    } else {
        double s = 2.0 / nq;
        double X = b * s, Y = c * s, Z = d * s;
        double wX = a * X, wY = a * Y, wZ = a * Z;
        double xX = b * X, xY = b * Y, xZ = b * Z;
        double yY = c * Y, yZ = c * Z, zZ = d * Z;
        R[0][0] = 1.0 - (yY + zZ); R[0][1] = xY - wZ;         R[0][2] = xZ + wY;
        R[1][0] = xY + wZ;         R[1][1] = 1.0 - (xX + zZ); R[1][2] = yZ - wX;
        R[2][0] = xZ - wY;         R[2][1] = yZ + wX;         R[2][2] = 1.0 - (xX + yY);
    }
    double z[3];
    for (int i = 0; i < 3; i++) {
        z[i] = h->pixdim[i + 1];
        if (!isfinite(z[i]))
            return err_set(e, FV_EFORMAT, "pixdim[%d] = %g is not finite", i + 1, z[i]);
        if (z[i] < 0)
            z[i] = -z[i];
    }
    if (h->pixdim[0] < 0)
        z[2] = -z[2];
    identity(out);
    for (int r = 0; r < 3; r++) {
        for (int k = 0; k < 3; k++)
            out[r][k] = R[r][k] * z[k];
        out[r][3] = h->qoffset[r];
    }
    return 0;
}

/* Analyze-style affine when neither form is set (nibabel's base affine):
 * diag(-sx, sy, sz), centred on the volume. */
static void base_affine(const NiftiHeader *h, double out[4][4])
{
    identity(out);
    for (int i = 0; i < 3; i++) {
        double z = fabs(h->pixdim[i + 1]);
        if (!(z > 0) || !isfinite(z))
            z = 1;
        int64_t n = h->ndim > i ? h->dim[i + 1] : 1;
        double sign = i == 0 ? -1 : 1;
        out[i][i] = sign * z;
        out[i][3] = -((double)(n - 1) / 2.0) * z * sign;
    }
}

static int affine_ok(const double a[4][4])
{
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            if (!isfinite(a[r][c]))
                return 0;
    double det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) -
                 a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
                 a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
    return fabs(det) > 1e-12;
}

/* ------------------------------------------------------------------ header */

static void copy_text(char *dst, const unsigned char *src, size_t n)
{
    size_t k = 0;
    for (; k < n && src[k]; k++)
        dst[k] = (src[k] >= 32 && src[k] < 127) ? (char)src[k] : '?';
    dst[k] = '\0';
}

static void parse_extensions(NiftiHeader *h, const unsigned char *p, size_t n)
{
    size_t start = h->hdr_size + 4;
    size_t end = h->pair ? n : (size_t)h->vox_offset;
    if (end > n)
        end = n;
    if (h->hdr_size + 4 > n || p[h->hdr_size] == 0)
        return;
    size_t off = start;
    while (off + 8 <= end) {
        int32_t esize = rd_i32(p + off, h->big), ecode = rd_i32(p + off + 4, h->big);
        if (esize < 8 || (size_t)esize > end - off) {
            snprintf(h->ext_note, sizeof h->ext_note,
                     "extension at byte %zu has size %d past byte %zu: extensions ignored", off,
                     (int)esize, end);
            h->n_ext = 0;
            return;
        }
        if (h->n_ext < NIFTI_MAX_EXT) {
            NiftiExt *x = &h->ext[h->n_ext++];
            x->code = ecode;
            x->offset = off + 8;
            x->size = (size_t)esize - 8;
        }
        off += (size_t)esize;
    }
}

int nifti_header_parse(const unsigned char *p, size_t n, NiftiHeader *h, FvErr *e)
{
    memset(h, 0, sizeof *h);
    if (n < 348)
        return err_set(e, FV_EFORMAT, "file of %zu bytes is shorter than a NIfTI header", n);
    int32_t sz = rd_i32(p, 0);
    int big;
    if (sz == 348 || sz == 540)
        big = 0;
    else if (rd_i32(p, 1) == 348 || rd_i32(p, 1) == 540)
        big = 1, sz = rd_i32(p, 1);
    else
        return err_set(e, FV_EFORMAT, "not a NIfTI header: sizeof_hdr = %d (expected 348 or 540)",
                       (int)sz);
    h->big = big;
    h->hdr_size = (size_t)sz;
    if (sz == 540) {
        if (n < 540)
            return err_set(e, FV_EFORMAT, "NIfTI-2 header cut short at %zu of 540 bytes", n);
        if (memcmp(p + 4, "n+2\0", 4) == 0)
            h->pair = 0;
        else if (memcmp(p + 4, "ni2\0", 4) == 0)
            h->pair = 1;
        else
            return err_set(e, FV_EFORMAT, "NIfTI-2 header without the n+2/ni2 magic");
        h->version = 2;
        h->datatype = rd_i16(p + 12, big);
        h->bitpix = rd_i16(p + 14, big);
        for (int i = 0; i < 8; i++) {
            h->dim[i] = rd_i64(p + 16 + 8 * i, big);
            h->pixdim[i] = rd_f64(p + 104 + 8 * i, big);
        }
        h->vox_offset = rd_i64(p + 168, big);
        h->scl_slope = rd_f64(p + 176, big);
        h->scl_inter = rd_f64(p + 184, big);
        copy_text(h->descrip, p + 240, 80);
        h->qform_code = rd_i32(p + 344, big);
        h->sform_code = rd_i32(p + 348, big);
        for (int i = 0; i < 3; i++) {
            h->quatern[i] = rd_f64(p + 352 + 8 * i, big);
            h->qoffset[i] = rd_f64(p + 376 + 8 * i, big);
            for (int k = 0; k < 4; k++)
                h->srow[i][k] = rd_f64(p + 400 + 32 * i + 8 * k, big);
        }
        h->xyzt_units = rd_i32(p + 500, big);
    } else {
        if (memcmp(p + 344, "n+1\0", 4) == 0)
            h->version = 1, h->pair = 0;
        else if (memcmp(p + 344, "ni1\0", 4) == 0)
            h->version = 1, h->pair = 1;
        else
            h->version = 0; /* Analyze 7.5: no orientation fields */
        h->datatype = rd_i16(p + 70, big);
        h->bitpix = rd_i16(p + 72, big);
        for (int i = 0; i < 8; i++) {
            h->dim[i] = rd_i16(p + 40 + 2 * i, big);
            h->pixdim[i] = rd_f32(p + 76 + 4 * i, big);
        }
        double vo = rd_f32(p + 108, big);
        if (!isfinite(vo) || vo < 0 || vo > 1e15 || vo != floor(vo))
            return err_set(e, FV_EFORMAT, "vox_offset = %g is not a byte offset", vo);
        h->vox_offset = (int64_t)vo;
        copy_text(h->descrip, p + 148, 80);
        if (h->version == 1) {
            h->scl_slope = rd_f32(p + 112, big);
            h->scl_inter = rd_f32(p + 116, big);
            h->xyzt_units = p[123];
            h->qform_code = rd_i16(p + 252, big);
            h->sform_code = rd_i16(p + 254, big);
            for (int i = 0; i < 3; i++) {
                h->quatern[i] = rd_f32(p + 256 + 4 * i, big);
                h->qoffset[i] = rd_f32(p + 268 + 4 * i, big);
                for (int k = 0; k < 4; k++)
                    h->srow[i][k] = rd_f32(p + 280 + 16 * i + 4 * k, big);
            }
        } else {
            h->pair = 1; /* Analyze keeps its data in a .img file */
        }
    }
    /* Dimensions: rank 1..7, each used dim positive. */
    h->ndim = (int)h->dim[0];
    if (h->ndim < 1 || h->ndim > 7)
        return err_set(e, FV_EFORMAT, "dim[0] = %lld is not a rank between 1 and 7",
                       (long long)h->dim[0]);
    for (int i = 1; i <= h->ndim; i++)
        if (h->dim[i] < 1)
            return err_set(e, FV_EFORMAT, "dim[%d] = %lld is not positive", i,
                           (long long)h->dim[i]);
    for (int i = h->ndim + 1; i < 8; i++)
        h->dim[i] = 1;
    if (!dtype_find(h->datatype)) {
        const char *o = other_dtype_name(h->datatype);
        if (o)
            return err_set(e, FV_EUNSUPPORTED, "datatype %d (%s) is not a scalar image",
                           h->datatype, o);
        return err_set(e, FV_EFORMAT, "unknown datatype %d", h->datatype);
    }
    if (!h->pair && h->vox_offset < (int64_t)h->hdr_size) {
        /* A single file whose offset points into the header: nibabel reads
         * 0 as "right after the header"; anything else is broken. */
        if (h->vox_offset != 0)
            return err_set(e, FV_EFORMAT, "vox_offset = %lld points inside the %zu-byte header",
                           (long long)h->vox_offset, h->hdr_size);
        h->vox_offset = (int64_t)h->hdr_size + 4;
    }
    /* Codes outside 0..4 are invalid: nibabel resets them to 0 (unknown)
     * when it loads a header, and so does this reader. */
    h->code_note[0] = '\0';
    if (h->version > 0 && (h->sform_code < 0 || h->sform_code > 4 || h->qform_code < 0 ||
                           h->qform_code > 4)) {
        snprintf(h->code_note, sizeof h->code_note,
                 "invalid sform_code %d / qform_code %d: codes outside 0..4 read as 0 (nibabel)",
                 h->sform_code, h->qform_code);
        if (h->sform_code < 0 || h->sform_code > 4)
            h->sform_code = 0;
        if (h->qform_code < 0 || h->qform_code > 4)
            h->qform_code = 0;
    }
    h->scaled = isfinite(h->scl_slope) && h->scl_slope != 0;
    if (h->scaled && !isfinite(h->scl_inter))
        return err_set(e, FV_EFORMAT, "scl_slope = %g with a non-finite scl_inter", h->scl_slope);
    if (h->scaled && h->scl_slope == 1 && h->scl_inter == 0)
        h->scaled = 0;
    /* Geometry: nibabel's choice. */
    if (h->version > 0 && h->sform_code > 0) {
        identity(h->affine);
        for (int r = 0; r < 3; r++)
            for (int k = 0; k < 4; k++)
                h->affine[r][k] = h->srow[r][k];
        h->affine_from = "sform";
    } else if (h->version > 0 && h->qform_code > 0) {
        if (qform_affine(h, h->affine, e))
            return -1;
        h->affine_from = "qform";
    } else {
        base_affine(h, h->affine);
        h->affine_from = "pixdim";
    }
    if (!affine_ok(h->affine))
        return err_set(e, FV_EFORMAT, "the %s affine is singular or not finite", h->affine_from);
    parse_extensions(h, p, n);
    return 0;
}

int nifti_data_size(const NiftiHeader *h, int64_t max_voxels, int64_t *nvox, size_t *nbytes,
                    FvErr *e)
{
    int64_t extra = 1;
    for (int i = 4; i <= h->ndim; i++) {
        if (h->dim[i] > 1 && extra > INT64_MAX / h->dim[i])
            return err_set(e, FV_EFORMAT, "dims overflow");
        extra *= h->dim[i];
    }
    if (extra > 1)
        return err_set(e, FV_EUNSUPPORTED,
                       "%lld-D data with %lld volumes: a CT is one 3-D volume", (long long)h->ndim,
                       (long long)extra);
    int64_t nx = h->dim[1], ny = h->dim[2], nz = h->dim[3];
    if (nx > max_voxels || ny > max_voxels / nx || nz > max_voxels / (nx * ny))
        return err_set(e, FV_ELIMIT,
                       "volume %lld x %lld x %lld is over the limit of %lld voxels "
                       "(ingest.max_voxels)",
                       (long long)nx, (long long)ny, (long long)nz, (long long)max_voxels);
    *nvox = nx * ny * nz;
    *nbytes = (size_t)*nvox * (size_t)nifti_dtype_size(h->datatype);
    return 0;
}

/* -------------------------------------------------------------------- data */

/* The loops below run once per datatype with the conversion inlined (a
 * switch per voxel costs more than the conversion): EACH(body) runs body
 * for every voxel i with x holding its raw value. */
#define EACH(body)                                                                          \
    switch (dt) {                                                                           \
    case 2: for (size_t i = 0; i < n; i++) { double x = p[i]; body; } break;                \
    case 256: for (size_t i = 0; i < n; i++) { double x = (int8_t)p[i]; body; } break;      \
    case 4: for (size_t i = 0; i < n; i++) { double x = rd_i16(p + 2 * i, big); body; } break; \
    case 512: for (size_t i = 0; i < n; i++) { double x = rd_u16(p + 2 * i, big); body; } break; \
    case 8: for (size_t i = 0; i < n; i++) { double x = rd_i32(p + 4 * i, big); body; } break; \
    case 768: for (size_t i = 0; i < n; i++) { double x = rd_u32(p + 4 * i, big); body; } break; \
    case 1024: for (size_t i = 0; i < n; i++) { double x = (double)rd_i64(p + 8 * i, big); body; } break; \
    case 1280: for (size_t i = 0; i < n; i++) { double x = (double)rd_u64(p + 8 * i, big); body; } break; \
    case 16: for (size_t i = 0; i < n; i++) { double x = rd_f32(p + 4 * i, big); body; } break; \
    default: for (size_t i = 0; i < n; i++) { double x = rd_f64(p + 8 * i, big); body; } break; \
    }

/* The range of raw values a datatype can hold (for integer types). */
static int dtype_range(int dt, double *lo, double *hi)
{
    switch (dt) {
    case 2: *lo = 0, *hi = 255; return 1;
    case 256: *lo = -128, *hi = 127; return 1;
    case 4: *lo = -32768, *hi = 32767; return 1;
    case 512: *lo = 0, *hi = 65535; return 1;
    default: return 0;
    }
}

int nifti_read_data(const NiftiHeader *h, const unsigned char *data, size_t avail, int mask,
                    int64_t max_voxels, Vol *v, int64_t *n_nonfinite, FvErr *e)
{
    int64_t nvox;
    size_t nbytes;
    memset(v, 0, sizeof *v);
    if (n_nonfinite)
        *n_nonfinite = 0;
    if (nifti_data_size(h, max_voxels, &nvox, &nbytes, e))
        return -1;
    if (nbytes > avail)
        return err_set(e, FV_EFORMAT,
                       "data needs %zu bytes from vox_offset %lld, the file has %zu: truncated",
                       nbytes, (long long)h->vox_offset, avail);
    const DType *dtp = dtype_find(h->datatype);
    const int dt = h->datatype, big = h->big;
    const unsigned char *p = data;
    double slope = h->scaled ? h->scl_slope : 1, inter = h->scaled ? h->scl_inter : 0;
    size_t n = (size_t)nvox;
    /* Pick the output type: masks are uint8; CT is int16 when every scaled
     * value is an integer inside int16's range (from the datatype's range
     * when that suffices, else from one pass over the data), else float32. */
    VolType vt = VOL_F32;
    int integral = !dtp->is_float && slope == floor(slope) && inter == floor(inter);
    if (mask) {
        vt = VOL_U8;
    } else if (integral) {
        double lo, hi;
        if (!dtype_range(dt, &lo, &hi)) {
            lo = INFINITY, hi = -INFINITY;
            EACH(lo = x < lo ? x : lo; hi = x > hi ? x : hi);
        }
        double a = fmin(lo * slope + inter, hi * slope + inter);
        double b = fmax(lo * slope + inter, hi * slope + inter);
        if (n && a >= -32768 && b <= 32767)
            vt = VOL_I16;
        else if (n && dtype_range(dt, &lo, &hi)) {
            /* The type's range is too wide; the data's may not be. */
            lo = INFINITY, hi = -INFINITY;
            EACH(lo = x < lo ? x : lo; hi = x > hi ? x : hi);
            a = fmin(lo * slope + inter, hi * slope + inter);
            b = fmax(lo * slope + inter, hi * slope + inter);
            if (a >= -32768 && b <= 32767)
                vt = VOL_I16;
        }
    }
    if (vol_alloc(v, vt, h->dim[1], h->dim[2], h->dim[3], max_voxels, e))
        return -1;
    memcpy(v->affine, h->affine, sizeof v->affine);
    int64_t bad = 0;
    if (vt == VOL_I16 && dt == 4 && !big && slope == 1 && inter == 0) {
        memcpy(v->data, data, n * 2); /* the common CT case: no conversion */
    } else if (vt == VOL_U8 && dt == 2 && slope == 1 && inter == 0) {
        memcpy(v->data, data, n);     /* the common mask case */
    } else if (vt == VOL_I16) {
        int16_t *o = v->data;
        if (slope == 1 && inter == 0) {
            EACH(o[i] = (int16_t)x);
        } else {
            EACH(o[i] = (int16_t)(x * slope + inter));
        }
    } else if (vt == VOL_F32) {
        float *o = v->data;
        /* A scaled value beyond float32 (scl_slope 1e38) is no measurement:
         * an error naming the scaling, never an infinity clipped later. */
        size_t overi = (size_t)-1;
        double overv = 0;
        EACH(double y = x * slope + inter; if (!isfinite(y)) { if (isfinite(x)) { if (overi == (size_t)-1) { overi = i; overv = y; } } y = 0; bad++; }
             else if (fabs(y) > FLT_MAX) { if (overi == (size_t)-1) { overi = i; overv = y; } y = 0; }
             o[i] = (float)y);
        if (overi != (size_t)-1) {
            vol_free(v);
            return err_set(e, FV_EFORMAT,
                           "scl_slope = %g, scl_inter = %g: voxel %zu scales to %g, beyond "
                           "float32: not a measurement",
                           slope, inter, overi, overv);
        }
    } else {
        uint8_t *o = v->data;
        size_t badi = (size_t)-1;
        double badv = 0;
        EACH(double y = x * slope + inter;
             if (!(y >= 0 && y <= 255 && y == floor(y))) { if (badi == (size_t)-1) { badi = i; badv = y; } }
             else o[i] = (uint8_t)y);
        if (badi != (size_t)-1) {
            vol_free(v);
            return err_set(e, FV_EFORMAT,
                           "mask voxel %zu has value %g: labels must be integers 0..255", badi,
                           badv);
        }
    }
    if (n_nonfinite)
        *n_nonfinite = bad;
    return 0;
}

#undef EACH

/* ------------------------------------------------------------- whole file */

/* The bytes of a possibly gzip-compressed file: inflated with a bound of
 * `need` (+ the header slack) when compressed, else borrowed. */
static int maybe_inflate(const unsigned char *p, size_t n, size_t need, size_t limit,
                         const unsigned char **out, size_t *outlen, unsigned char **owned,
                         FvErr *e)
{
    *owned = NULL;
    if (!gz_is_gzip(p, n)) {
        *out = p;
        *outlen = n;
        return 0;
    }
    if (gz_inflate(p, n, need, limit, owned, outlen, e))
        return -1;
    *out = *owned;
    return 0;
}

/* Enough bytes of a header (gzip or not) to parse it and its extensions:
 * first the fixed part, then up to vox_offset. */
static int read_header(const unsigned char *p, size_t n, NiftiHeader *h, unsigned char **hbuf,
                       size_t *hlen, FvErr *e)
{
    *hbuf = NULL;
    *hlen = 0;
    if (!gz_is_gzip(p, n))
        return nifti_header_parse(p, n, h, e);
    unsigned char first[544];
    size_t got;
    if (gz_peek(p, n, first, sizeof first, &got, e))
        return -1;
    if (nifti_header_parse(first, got, h, e))
        return -1;
    /* Extensions live between the header and vox_offset: decompress that
     * much (bounded: a header area over 64 MiB is not a header). */
    size_t want = h->pair ? (size_t)16 << 20 : (size_t)h->vox_offset;
    if (!h->pair && h->vox_offset > ((int64_t)64 << 20))
        return err_set(e, FV_EFORMAT, "vox_offset = %lld is implausibly large",
                       (long long)h->vox_offset);
    if (want <= got)
        return 0;
    unsigned char *b = malloc(want);
    if (!b)
        return err_set(e, FV_ENOMEM, "cannot allocate %zu bytes for the header", want);
    if (gz_peek(p, n, b, want, &got, e) || nifti_header_parse(b, got, h, e)) {
        free(b);
        return -1;
    }
    *hbuf = b;
    *hlen = got;
    return 0;
}

int nifti_inflate(const unsigned char *gz, size_t n, int64_t max_voxels, unsigned char **out,
                  size_t *outlen, FvErr *e)
{
    *out = NULL;
    *outlen = 0;
    NiftiHeader h;
    unsigned char *hb = NULL;
    size_t hl = 0;
    if (!gz_is_gzip(gz, n))
        return err_set(e, FV_EFORMAT, "not a gzip stream");
    if (read_header(gz, n, &h, &hb, &hl, e))
        return -1;
    free(hb);
    int64_t nvox;
    size_t nbytes;
    if (h.pair || nifti_data_size(&h, max_voxels, &nvox, &nbytes, e))
        return h.pair ? err_set(e, FV_EFORMAT, "a .hdr of a pair") : -1;
    size_t need = (size_t)h.vox_offset + nbytes;
    return gz_inflate(gz, n, need, need + (1u << 20), out, outlen, e);
}

int nifti_load(const unsigned char *bytes, size_t n, const unsigned char *img, size_t img_n,
               int mask, int64_t max_voxels, NiftiHeader *h, Vol *v, unsigned char **hdr_bytes,
               size_t *hdr_len, FvErr *e)
{
    memset(v, 0, sizeof *v);
    if (hdr_bytes) {
        *hdr_bytes = NULL;
        *hdr_len = 0;
    }
    unsigned char *hb = NULL;
    size_t hl = 0;
    if (read_header(bytes, n, h, &hb, &hl, e))
        return -1;
    int64_t nvox;
    size_t nbytes;
    if (nifti_data_size(h, max_voxels, &nvox, &nbytes, e)) {
        free(hb);
        return -1;
    }
    if (h->pair && !img) {
        free(hb);
        return err_set(e, FV_EFORMAT, "header of a .hdr/.img pair without its .img file");
    }
    const unsigned char *src = h->pair ? img : bytes;
    size_t src_n = h->pair ? img_n : n;
    size_t need = (size_t)h->vox_offset + nbytes;
    /* Accept up to 1 MiB of trailing bytes after the data in a compressed
     * file; more is not this header's data. */
    const unsigned char *d;
    size_t dn;
    unsigned char *owned = NULL;
    if (maybe_inflate(src, src_n, need, need + (1u << 20), &d, &dn, &owned, e)) {
        free(hb);
        return -1;
    }
    int rc;
    if ((size_t)h->vox_offset > dn || dn - (size_t)h->vox_offset < nbytes) {
        rc = err_set(e, FV_EFORMAT,
                     "vox_offset %lld + %zu data bytes is past the end of the %s (%zu bytes)",
                     (long long)h->vox_offset, nbytes, h->pair ? ".img file" : "file", dn);
    } else {
        if (!h->pair && !hb) {
            /* Re-read the extensions from the full bytes (a plain .nii). */
            NiftiHeader full;
            if (nifti_header_parse(d, dn, &full, e) == 0)
                *h = full;
        }
        rc = nifti_read_data(h, d + h->vox_offset, dn - (size_t)h->vox_offset, mask, max_voxels,
                             v, NULL, e);
    }
    if (rc == 0 && hdr_bytes) {
        if (hb) {
            *hdr_bytes = hb;
            *hdr_len = hl;
            hb = NULL;
        } else {
            const unsigned char *hp = h->pair ? bytes : d;
            size_t len = h->pair ? n : (size_t)h->vox_offset;
            if (len > (h->pair ? n : dn))
                len = h->pair ? n : dn;
            *hdr_bytes = malloc(len + 1);
            if (!*hdr_bytes) {
                vol_free(v);
                rc = err_set(e, FV_ENOMEM, "out of memory");
            } else {
                memcpy(*hdr_bytes, hp, len);
                *hdr_len = len;
            }
        }
    }
    free(owned);
    free(hb);
    return rc;
}

/* ------------------------------------------------------------ label table */

/* Finds needle in [p, end), or NULL. */
static const unsigned char *find(const unsigned char *p, const unsigned char *end,
                                 const char *needle)
{
    size_t k = strlen(needle);
    if ((size_t)(end - p) < k)
        return NULL;
    for (const unsigned char *q = p; q + k <= end; q++)
        if (*q == (unsigned char)needle[0] && memcmp(q, needle, k) == 0)
            return q;
    return NULL;
}

int nifti_label_table(const NiftiHeader *h, const unsigned char *hdr_bytes, size_t hdr_len,
                      NiftiLabel **labels, FvErr *e)
{
    *labels = NULL;
    int n = 0, cap = 0;
    for (int x = 0; x < h->n_ext; x++) {
        const NiftiExt *ext = &h->ext[x];
        if (ext->offset > hdr_len || ext->size > hdr_len - ext->offset)
            continue;
        const unsigned char *p = hdr_bytes + ext->offset, *end = p + ext->size;
        if (!find(p, end, "<LabelTable"))
            continue;
        while ((p = find(p, end, "<Label ")) != NULL) {
            const unsigned char *close = find(p, end, "</Label>");
            if (!close)
                break;
            const unsigned char *k = find(p, close, "Key=");
            const unsigned char *gt = find(p, close, ">");
            if (k && gt && k < gt) {
                k += 4;
                if (k < gt && (*k == '"' || *k == '\''))
                    k++;
                long key = strtol((const char *)k, NULL, 10);
                const unsigned char *ns = gt + 1, *ne = close;
                const unsigned char *cd = find(ns, close, "<![CDATA[");
                if (cd) {
                    ns = cd + 9;
                    const unsigned char *ce = find(ns, close, "]]>");
                    ne = ce ? ce : close;
                }
                while (ns < ne && (*ns == ' ' || *ns == '\n' || *ns == '\t' || *ns == '\r'))
                    ns++;
                while (ne > ns && (ne[-1] == ' ' || ne[-1] == '\n' || ne[-1] == '\t' ||
                                   ne[-1] == '\r'))
                    ne--;
                if (key >= 0 && key <= 65535 && ne > ns) {
                    if (n == cap) {
                        int nc = cap ? cap * 2 : 64;
                        NiftiLabel *nl = realloc(*labels, (size_t)nc * sizeof *nl);
                        if (!nl) {
                            free(*labels);
                            *labels = NULL;
                            return err_set(e, FV_ENOMEM, "label table: out of memory");
                        }
                        *labels = nl;
                        cap = nc;
                    }
                    NiftiLabel *l = &(*labels)[n++];
                    l->key = (int)key;
                    size_t len = (size_t)(ne - ns);
                    if (len >= sizeof l->name)
                        len = sizeof l->name - 1;
                    memcpy(l->name, ns, len);
                    l->name[len] = '\0';
                }
            }
            p = close + 8;
        }
        if (n)
            break;
    }
    return n;
}
