#include "vol.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

size_t vol_type_size(VolType t) { return t == VOL_U8 ? 1 : t == VOL_I16 ? 2 : 4; }

int64_t vol_count(const Vol *v) { return v->nx * v->ny * v->nz; }

static void identity(double m[4][4])
{
    memset(m, 0, 16 * sizeof(double));
    for (int i = 0; i < 4; i++)
        m[i][i] = 1;
}

int vol_alloc(Vol *v, VolType t, int64_t nx, int64_t ny, int64_t nz, int64_t max_voxels,
              FvErr *e)
{
    memset(v, 0, sizeof *v);
    if (nx < 1 || ny < 1 || nz < 1)
        return err_set(e, FV_EFORMAT, "volume dimensions %lld x %lld x %lld are not positive",
                       (long long)nx, (long long)ny, (long long)nz);
    /* Check the product without overflowing: each factor is >= 1. */
    if (nx > max_voxels || ny > max_voxels / nx || nz > max_voxels / (nx * ny))
        return err_set(e, FV_ELIMIT,
                       "volume %lld x %lld x %lld is over the limit of %lld voxels",
                       (long long)nx, (long long)ny, (long long)nz, (long long)max_voxels);
    size_t n = (size_t)(nx * ny * nz);
    v->data = calloc(n, vol_type_size(t));
    if (!v->data)
        return err_set(e, FV_ENOMEM, "cannot allocate a volume of %zu voxels", n);
    v->nx = nx;
    v->ny = ny;
    v->nz = nz;
    v->type = t;
    identity(v->affine);
    return 0;
}

void vol_free(Vol *v)
{
    free(v->data);
    v->data = NULL;
    v->nx = v->ny = v->nz = 0;
}

float vol_get(const Vol *v, int64_t x, int64_t y, int64_t z)
{
    size_t i = (size_t)((z * v->ny + y) * v->nx + x);
    switch (v->type) {
    case VOL_U8: return ((const uint8_t *)v->data)[i];
    case VOL_I16: return ((const int16_t *)v->data)[i];
    default: return ((const float *)v->data)[i];
    }
}

static void vol_put(Vol *v, size_t i, float val)
{
    switch (v->type) {
    case VOL_U8:
        ((uint8_t *)v->data)[i] = (uint8_t)(val < 0 ? 0 : val > 255 ? 255 : lrintf(val));
        break;
    case VOL_I16:
        ((int16_t *)v->data)[i] =
            (int16_t)(val < -32768 ? -32768 : val > 32767 ? 32767 : lrintf(val));
        break;
    default: ((float *)v->data)[i] = val;
    }
}

void vol_spacing(const Vol *v, double sp[3])
{
    for (int j = 0; j < 3; j++)
        sp[j] = sqrt(v->affine[0][j] * v->affine[0][j] + v->affine[1][j] * v->affine[1][j] +
                     v->affine[2][j] * v->affine[2][j]);
}

/* For voxel axis j: the world axis it is closest to and the sign. Resolves
 * ties so that each world axis is used once (greedy on the largest cosine). */
static void axis_map(const double a[4][4], int world_of[3], int sign_of[3])
{
    int used[3] = {0, 0, 0}, done[3] = {0, 0, 0};
    for (int step = 0; step < 3; step++) {
        double best = -1;
        int bj = 0, bw = 0;
        for (int j = 0; j < 3; j++) {
            if (done[j])
                continue;
            double norm = sqrt(a[0][j] * a[0][j] + a[1][j] * a[1][j] + a[2][j] * a[2][j]);
            for (int w = 0; w < 3; w++) {
                if (used[w])
                    continue;
                double c = norm > 0 ? fabs(a[w][j]) / norm : 0;
                if (c > best) {
                    best = c;
                    bj = j;
                    bw = w;
                }
            }
        }
        done[bj] = used[bw] = 1;
        world_of[bj] = bw;
        sign_of[bj] = a[bw][bj] < 0 ? -1 : 1;
    }
}

void vol_orient_code(const double affine[4][4], char code[4])
{
    static const char pos[3] = {'R', 'A', 'S'}, neg[3] = {'L', 'P', 'I'};
    int w[3], s[3];
    axis_map(affine, w, s);
    for (int j = 0; j < 3; j++)
        code[j] = s[j] > 0 ? pos[w[j]] : neg[w[j]];
    code[3] = '\0';
}

double vol_obliquity(const double affine[4][4])
{
    int w[3], s[3];
    axis_map(affine, w, s);
    double worst = 0;
    for (int j = 0; j < 3; j++) {
        double norm = sqrt(affine[0][j] * affine[0][j] + affine[1][j] * affine[1][j] +
                           affine[2][j] * affine[2][j]);
        if (norm <= 0)
            continue;
        double c = fabs(affine[w[j]][j]) / norm;
        double ang = acos(c > 1 ? 1 : c) * 180.0 / M_PI;
        if (ang > worst)
            worst = ang;
    }
    return worst;
}

/* Reverses the axes whose sign is -1, in place. */
static int flip_in_place(Vol *v, const int s[3], FvErr *e)
{
    size_t es = vol_type_size(v->type);
    size_t row = (size_t)v->nx * es, plane = row * (size_t)v->ny;
    unsigned char *d = v->data;
    unsigned char *tmp = malloc(plane > 0 ? plane : 1);
    if (!tmp)
        return err_set(e, FV_ENOMEM, "reorienting: out of memory");
    if (s[0] < 0) {
        for (int64_t r = 0; r < v->ny * v->nz; r++) {
            unsigned char *a = d + (size_t)r * row;
            if (es == 2) {
                int16_t *x = (int16_t *)(void *)a;
                for (int64_t i = 0, j = v->nx - 1; i < j; i++, j--) {
                    int16_t t = x[i];
                    x[i] = x[j];
                    x[j] = t;
                }
            } else {
                for (int64_t i = 0, j = v->nx - 1; i < j; i++, j--) {
                    memcpy(tmp, a + (size_t)i * es, es);
                    memcpy(a + (size_t)i * es, a + (size_t)j * es, es);
                    memcpy(a + (size_t)j * es, tmp, es);
                }
            }
        }
    }
    if (s[1] < 0)
        for (int64_t z = 0; z < v->nz; z++) {
            unsigned char *p = d + (size_t)z * plane;
            for (int64_t i = 0, j = v->ny - 1; i < j; i++, j--) {
                memcpy(tmp, p + (size_t)i * row, row);
                memcpy(p + (size_t)i * row, p + (size_t)j * row, row);
                memcpy(p + (size_t)j * row, tmp, row);
            }
        }
    if (s[2] < 0)
        for (int64_t i = 0, j = v->nz - 1; i < j; i++, j--) {
            memcpy(tmp, d + (size_t)i * plane, plane);
            memcpy(d + (size_t)i * plane, d + (size_t)j * plane, plane);
            memcpy(d + (size_t)j * plane, tmp, plane);
        }
    free(tmp);
    return 0;
}

int vol_reorient_canonical(Vol *v, FvErr *e)
{
    int w[3], s[3];
    axis_map(v->affine, w, s);
    if (w[0] == 0 && w[1] == 1 && w[2] == 2 && s[0] > 0 && s[1] > 0 && s[2] > 0)
        return 0;
    /* Output axis k is source axis src_of[k], flipped when its sign is -1. */
    int src_of[3];
    for (int j = 0; j < 3; j++)
        src_of[w[j]] = j;
    int64_t sdim[3] = {v->nx, v->ny, v->nz};
    int64_t odim[3] = {sdim[src_of[0]], sdim[src_of[1]], sdim[src_of[2]]};
    size_t es = vol_type_size(v->type);
    size_t n = (size_t)vol_count(v);
    unsigned char *out;
    if (src_of[0] == 0 && src_of[1] == 1 && src_of[2] == 2) {
        /* Flips only (LPS DICOM, LAS NIfTI): done in place, no second copy
         * of the volume. */
        if (flip_in_place(v, s, e))
            return -1;
        out = v->data;
        goto affine;
    }
    out = malloc(n * es);
    if (!out)
        return err_set(e, FV_ENOMEM, "reorienting: cannot allocate %zu voxels", n);
    const unsigned char *in = v->data;
    int64_t sstride[3] = {1, v->nx, v->nx * v->ny};
    /* Output axis k walks source axis src_of[k], backwards when flipped:
     * its step in source elements, and where output voxel 0 sits. */
    int64_t step[3], start = 0;
    for (int k = 0; k < 3; k++) {
        int j = src_of[k];
        step[k] = s[j] > 0 ? sstride[j] : -sstride[j];
        if (s[j] < 0)
            start += (sdim[j] - 1) * sstride[j];
    }
    size_t oi = 0;
    for (int64_t oz = 0; oz < odim[2]; oz++)
        for (int64_t oy = 0; oy < odim[1]; oy++) {
            int64_t base = start + oz * step[2] + oy * step[1], st = step[0];
            if (es == 2) {
                const int16_t *src = (const int16_t *)(const void *)in + base;
                int16_t *dst = (int16_t *)(void *)out + oi;
                for (int64_t ox = 0; ox < odim[0]; ox++)
                    dst[ox] = src[ox * st];
            } else if (es == 1) {
                for (int64_t ox = 0; ox < odim[0]; ox++)
                    out[oi + (size_t)ox] = in[base + ox * st];
            } else {
                for (int64_t ox = 0; ox < odim[0]; ox++)
                    memcpy(out + (oi + (size_t)ox) * es, in + (size_t)(base + ox * st) * es, es);
            }
            oi += (size_t)odim[0];
        }
affine:;
    /* New affine: column k = sign * old column src_of[k]; origin moves to the
     * old index of output voxel 0. */
    double na[4][4];
    identity(na);
    for (int k = 0; k < 3; k++) {
        int j = src_of[k];
        for (int r = 0; r < 3; r++)
            na[r][k] = s[j] * v->affine[r][j];
    }
    double origin_idx[3];
    for (int j = 0; j < 3; j++)
        origin_idx[j] = s[j] > 0 ? 0 : (double)(sdim[j] - 1);
    for (int r = 0; r < 3; r++) {
        na[r][3] = v->affine[r][3];
        for (int j = 0; j < 3; j++)
            na[r][3] += v->affine[r][j] * origin_idx[j];
    }
    if (out != v->data)
        free(v->data);
    v->data = out;
    v->nx = odim[0];
    v->ny = odim[1];
    v->nz = odim[2];
    memcpy(v->affine, na, sizeof na);
    return 0;
}

/* lrintf for |v| < 2^22 without a library call: adding and subtracting
 * 1.5 * 2^23 leaves v rounded to the nearest integer, ties to even (the
 * default rounding mode, as lrintf; the project never builds with
 * -ffast-math, which could fold it away). */
static inline float round_even(float v)
{
    const float b = 12582912.0f;
    return (v + b) - b;
}

/* Trilinear interpolation plane by plane: each source z plane is
 * interpolated in x then y once (into a cached output-sized plane), and
 * output planes blend two such planes in z. The float operations are
 * exactly those of the per-voxel formula (x, then y, then z), so results
 * are bit-identical to it, with sequential memory access instead of eight
 * scattered reads per voxel. Returns -1 when memory runs out. */
static int trilinear_slab(const Vol *src, Vol *dst, const int64_t odim[3], int64_t *const i0[3],
                          float *const wt[3], int64_t z0, int64_t z1)
{
    int64_t sx = src->nx, sy = src->ny, sxy = sx * sy;
    size_t onx = (size_t)odim[0], ony = (size_t)odim[1];
    float *xrows = malloc((size_t)sy * onx * sizeof(float));
    float *plane[2] = {malloc(onx * ony * sizeof(float)), malloc(onx * ony * sizeof(float))};
    int64_t held[2] = {-1, -1};
    if (!xrows || !plane[0] || !plane[1]) {
        free(xrows);
        free(plane[0]);
        free(plane[1]);
        return -1;
    }
    int64_t xstep = src->nx > 1, ystep = src->ny > 1, zstep = src->nz > 1;
    uint8_t *d8 = dst->data;
    int16_t *d16 = dst->data;
    float *d32 = dst->data;
    for (int64_t z = z0; z < z1; z++) {
        int64_t zs[2] = {i0[2][z], i0[2][z] + zstep};
        float *pl[2];
        for (int k = 0; k < 2; k++) {
            int slot = held[0] == zs[k] ? 0 : held[1] == zs[k] ? 1 : -1;
            if (slot < 0) {
                /* Fill the slot the other source plane of this output
                 * plane does not use. */
                slot = (k == 1 && held[0] == zs[0]) ? 1 : (k == 1 && held[1] == zs[0]) ? 0 : k;
                int64_t zz = zs[k];
#define XPASS(T)                                                                           \
    do {                                                                                   \
        const T *sd = (const T *)src->data + zz * sxy;                                     \
        for (int64_t y = 0; y < sy; y++) {                                                 \
            const T *row = sd + y * sx;                                                    \
            float *xr = xrows + (size_t)y * onx;                                           \
            for (size_t x = 0; x < onx; x++) {                                             \
                int64_t xi = i0[0][x];                                                     \
                float wx = wt[0][x];                                                       \
                xr[x] = (float)row[xi] * (1 - wx) + (float)row[xi + xstep] * wx;           \
            }                                                                              \
        }                                                                                  \
    } while (0)
                if (src->type == VOL_U8)
                    XPASS(uint8_t);
                else if (src->type == VOL_I16)
                    XPASS(int16_t);
                else
                    XPASS(float);
#undef XPASS
                float *out = plane[slot];
                for (size_t y = 0; y < ony; y++) {
                    const float *a = xrows + (size_t)i0[1][y] * onx;
                    const float *b = xrows + (size_t)(i0[1][y] + ystep) * onx;
                    float wy = wt[1][y];
                    float *o = out + y * onx;
                    for (size_t x = 0; x < onx; x++)
                        o[x] = a[x] * (1 - wy) + b[x] * wy;
                }
                held[slot] = zz;
            }
            pl[k] = plane[slot];
        }
        float wz = wt[2][z];
        size_t base = (size_t)z * onx * ony, n = onx * ony;
        const float *a = pl[0], *b = pl[1];
        if (dst->type == VOL_F32) {
            for (size_t i = 0; i < n; i++)
                d32[base + i] = a[i] * (1 - wz) + b[i] * wz;
        } else if (dst->type == VOL_I16) {
            for (size_t i = 0; i < n; i++) {
                float v = a[i] * (1 - wz) + b[i] * wz;
                v = v < -32768 ? -32768 : v > 32767 ? 32767 : v;
                d16[base + i] = (int16_t)round_even(v);
            }
        } else {
            for (size_t i = 0; i < n; i++) {
                float v = a[i] * (1 - wz) + b[i] * wz;
                v = v < 0 ? 0 : v > 255 ? 255 : v;
                d8[base + i] = (uint8_t)round_even(v);
            }
        }
    }
    free(xrows);
    free(plane[0]);
    free(plane[1]);
    return 0;
}

/* Workers of the trilinear resampling (vol_set_threads). */
static int g_vol_threads = 1;

void vol_set_threads(int n)
{
    __atomic_store_n(&g_vol_threads, n < 1 ? 1 : n > VOL_MAX_THREADS ? VOL_MAX_THREADS : n,
                     __ATOMIC_RELAXED);
}

int vol_threads(void) { return __atomic_load_n(&g_vol_threads, __ATOMIC_RELAXED); }

typedef struct Slab {
    const Vol *src;
    Vol *dst;
    const int64_t *odim;
    int64_t *const *i0;
    float *const *wt;
    int64_t z0, z1;
    int rc;
} Slab;

static void *slab_run(void *arg)
{
    Slab *s = arg;
    s->rc = trilinear_slab(s->src, s->dst, s->odim, s->i0, s->wt, s->z0, s->z1);
    return NULL;
}

/* The output's z planes in vol_threads() contiguous slabs, one thread each
 * (the caller's among them). Every voxel is the same arithmetic whatever
 * the slab that holds it, so the result does not depend on the count; a
 * slab starts its own plane cache, which costs up to two source planes'
 * x-y passes more per slab. Volumes under 16384 output voxels a slab stay
 * on the caller's thread. */
static int trilinear_planes(const Vol *src, Vol *dst, const int64_t odim[3], int64_t *const i0[3],
                            float *const wt[3])
{
    int64_t plane = odim[0] * odim[1];
    int64_t n = vol_threads();
    if (n > odim[2])
        n = odim[2];
    while (n > 1 && plane * (odim[2] / n) < 16384)
        n--;
    if (n <= 1)
        return trilinear_slab(src, dst, odim, i0, wt, 0, odim[2]);
    Slab sl[VOL_MAX_THREADS];
    pthread_t th[VOL_MAX_THREADS];
    int started[VOL_MAX_THREADS] = {0};
    for (int64_t k = 0; k < n; k++) {
        sl[k] = (Slab){src, dst, odim, i0, wt, odim[2] * k / n, odim[2] * (k + 1) / n, 0};
        /* a thread that cannot start leaves its slab to the caller */
        if (k > 0)
            started[k] = pthread_create(&th[k], NULL, slab_run, &sl[k]) == 0;
    }
    slab_run(&sl[0]);
    int rc = sl[0].rc;
    for (int64_t k = 1; k < n; k++) {
        if (started[k])
            pthread_join(th[k], NULL);
        else
            slab_run(&sl[k]);
        rc |= sl[k].rc;
    }
    return rc ? -1 : 0;
}

int vol_resample(const Vol *src, const double spacing[3], int nearest, int64_t max_voxels,
                 Vol *dst, FvErr *e)
{
    double sp[3];
    vol_spacing(src, sp);
    int64_t sdim[3] = {src->nx, src->ny, src->nz}, odim[3];
    double scale[3]; /* source index units per output index unit */
    for (int j = 0; j < 3; j++) {
        if (!(spacing[j] > 0) || !(sp[j] > 0))
            return err_set(e, FV_EFORMAT, "resampling: spacing must be positive");
        double n = round((double)sdim[j] * sp[j] / spacing[j]);
        odim[j] = n < 1 ? 1 : (int64_t)n;
        scale[j] = spacing[j] / sp[j];
    }
    if (vol_alloc(dst, src->type, odim[0], odim[1], odim[2], max_voxels, e))
        return err_prefix(e, "resampling");
    /* Source coordinate of output index i along axis j. */
    double off[3];
    for (int j = 0; j < 3; j++)
        off[j] = 0.5 * scale[j] - 0.5;
    /* Precompute per-axis indices and weights. */
    int64_t *i0[3];
    float *wt[3];
    for (int j = 0; j < 3; j++) {
        i0[j] = malloc((size_t)odim[j] * sizeof(int64_t));
        wt[j] = malloc((size_t)odim[j] * sizeof(float));
        if (!i0[j] || !wt[j]) {
            for (int k = 0; k <= j; k++) {
                free(i0[k]);
                free(wt[k]);
            }
            vol_free(dst);
            return err_set(e, FV_ENOMEM, "resampling: out of memory");
        }
        for (int64_t i = 0; i < odim[j]; i++) {
            double c = i * scale[j] + off[j];
            if (c < 0)
                c = 0;
            if (c > (double)(sdim[j] - 1))
                c = (double)(sdim[j] - 1);
            if (nearest) {
                i0[j][i] = (int64_t)floor(c + 0.5);
                if (i0[j][i] > sdim[j] - 1)
                    i0[j][i] = sdim[j] - 1;
                wt[j][i] = 0;
            } else {
                int64_t f = (int64_t)floor(c);
                if (f >= sdim[j] - 1)
                    f = sdim[j] > 1 ? sdim[j] - 2 : 0;
                i0[j][i] = f;
                wt[j][i] = sdim[j] > 1 ? (float)(c - (double)f) : 0.f;
            }
        }
    }
    /* The same arithmetic for every type, with the element type fixed per
     * loop (a type switch per read costs more than the interpolation). */
#define RESAMPLE_LOOP(T, PUT)                                                              \
    do {                                                                                   \
        const T *sd = (const T *)src->data;                                                \
        size_t oi = 0;                                                                     \
        int64_t sx = src->nx, sxy = src->nx * src->ny;                                     \
        for (int64_t z = 0; z < odim[2]; z++)                                              \
            for (int64_t y = 0; y < odim[1]; y++)                                          \
                for (int64_t x = 0; x < odim[0]; x++, oi++) {                              \
                    int64_t xi = i0[0][x], yi = i0[1][y], zi = i0[2][z];                   \
                    if (nearest) {                                                         \
                        /* same type in and out: the value itself */                       \
                        ((T *)dst->data)[oi] = sd[zi * sxy + yi * sx + xi];                \
                        continue;                                                          \
                    }                                                                      \
                    float wx = wt[0][x], wy = wt[1][y], wz = wt[2][z];                     \
                    int64_t x1 = xi + (src->nx > 1), y1 = yi + (src->ny > 1),              \
                            z1 = zi + (src->nz > 1);                                       \
                    const T *p00 = sd + zi * sxy + yi * sx, *p10 = sd + zi * sxy + y1 * sx, \
                            *p01 = sd + z1 * sxy + yi * sx, *p11 = sd + z1 * sxy + y1 * sx; \
                    float c00 = (float)p00[xi] * (1 - wx) + (float)p00[x1] * wx;           \
                    float c10 = (float)p10[xi] * (1 - wx) + (float)p10[x1] * wx;           \
                    float c01 = (float)p01[xi] * (1 - wx) + (float)p01[x1] * wx;           \
                    float c11 = (float)p11[xi] * (1 - wx) + (float)p11[x1] * wx;           \
                    float c0 = c00 * (1 - wy) + c10 * wy, c1 = c01 * (1 - wy) + c11 * wy;  \
                    PUT(oi, c0 * (1 - wz) + c1 * wz);                                      \
                }                                                                          \
    } while (0)
    /* The output has the input's type: rounded and clamped like vol_put. */
    uint8_t *d8 = dst->data;
    int16_t *d16 = dst->data;
    float *d32 = dst->data;
#define PUT_U8(i, val)                                                                     \
    do {                                                                                   \
        float v_ = (val);                                                                  \
        d8[i] = (uint8_t)(v_ < 0 ? 0 : v_ > 255 ? 255 : lrintf(v_));                       \
    } while (0)
#define PUT_I16(i, val)                                                                    \
    do {                                                                                   \
        float v_ = (val);                                                                  \
        d16[i] = (int16_t)(v_ < -32768 ? -32768 : v_ > 32767 ? 32767 : lrintf(v_));        \
    } while (0)
#define PUT_F32(i, val) (d32[i] = (val))
    int rc = 0;
    if (!nearest) {
        rc = trilinear_planes(src, dst, odim, i0, wt);
    } else if (src->type == VOL_U8)
        RESAMPLE_LOOP(uint8_t, PUT_U8);
    else if (src->type == VOL_I16)
        RESAMPLE_LOOP(int16_t, PUT_I16);
    else
        RESAMPLE_LOOP(float, PUT_F32);
#undef RESAMPLE_LOOP
#undef PUT_U8
#undef PUT_I16
#undef PUT_F32
    for (int j = 0; j < 3; j++) {
        free(i0[j]);
        free(wt[j]);
    }
    if (rc) {
        vol_free(dst);
        return err_set(e, FV_ENOMEM, "resampling: out of memory");
    }
    /* Output affine: columns scaled; origin at source index off[]. */
    identity(dst->affine);
    for (int r = 0; r < 3; r++) {
        dst->affine[r][3] = src->affine[r][3];
        for (int j = 0; j < 3; j++) {
            dst->affine[r][j] = src->affine[r][j] * scale[j];
            dst->affine[r][3] += src->affine[r][j] * off[j];
        }
    }
    return 0;
}

void mat4_mul(const double a[4][4], const double b[4][4], double out[4][4])
{
    double t[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            t[i][j] = 0;
            for (int k = 0; k < 4; k++)
                t[i][j] += a[i][k] * b[k][j];
        }
    memcpy(out, t, sizeof t);
}

int mat4_inverse(const double m[4][4], double out[4][4])
{
    /* Gauss-Jordan with partial pivoting. */
    double a[4][8];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 8; j++)
            a[i][j] = j < 4 ? m[i][j] : (j - 4 == i);
    for (int c = 0; c < 4; c++) {
        int p = c;
        for (int r = c + 1; r < 4; r++)
            if (fabs(a[r][c]) > fabs(a[p][c]))
                p = r;
        if (fabs(a[p][c]) < 1e-12)
            return -1;
        if (p != c)
            for (int j = 0; j < 8; j++) {
                double t = a[c][j];
                a[c][j] = a[p][j];
                a[p][j] = t;
            }
        double d = a[c][c];
        for (int j = 0; j < 8; j++)
            a[c][j] /= d;
        for (int r = 0; r < 4; r++) {
            if (r == c)
                continue;
            double f = a[r][c];
            for (int j = 0; j < 8; j++)
                a[r][j] -= f * a[c][j];
        }
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            out[i][j] = a[i][j + 4];
    return 0;
}

int vol_resample_to(const Vol *src, const Vol *grid, int nearest, Vol *dst, FvErr *e)
{
    double inv[4][4], m[4][4];
    if (mat4_inverse(src->affine, inv))
        return err_set(e, FV_EFORMAT, "resampling: source affine is singular");
    mat4_mul(inv, grid->affine, m); /* grid index -> source index */
    int64_t lim = grid->nx * grid->ny * grid->nz;
    if (vol_alloc(dst, src->type, grid->nx, grid->ny, grid->nz, lim, e))
        return err_prefix(e, "resampling");
    memcpy(dst->affine, grid->affine, sizeof dst->affine);
    size_t oi = 0;
    for (int64_t z = 0; z < grid->nz; z++)
        for (int64_t y = 0; y < grid->ny; y++)
            for (int64_t x = 0; x < grid->nx; x++, oi++) {
                double c[3];
                for (int r = 0; r < 3; r++)
                    c[r] = m[r][0] * x + m[r][1] * y + m[r][2] * z + m[r][3];
                if (nearest) {
                    int64_t xi = (int64_t)floor(c[0] + 0.5), yi = (int64_t)floor(c[1] + 0.5),
                            zi = (int64_t)floor(c[2] + 0.5);
                    if (xi < 0 || yi < 0 || zi < 0 || xi >= src->nx || yi >= src->ny ||
                        zi >= src->nz)
                        continue;
                    vol_put(dst, oi, vol_get(src, xi, yi, zi));
                    continue;
                }
                if (c[0] < 0 || c[1] < 0 || c[2] < 0 || c[0] > src->nx - 1 ||
                    c[1] > src->ny - 1 || c[2] > src->nz - 1)
                    continue;
                int64_t xi = (int64_t)floor(c[0]), yi = (int64_t)floor(c[1]),
                        zi = (int64_t)floor(c[2]);
                int64_t x1 = xi + 1 < src->nx ? xi + 1 : xi, y1 = yi + 1 < src->ny ? yi + 1 : yi,
                        z1 = zi + 1 < src->nz ? zi + 1 : zi;
                float wx = (float)(c[0] - xi), wy = (float)(c[1] - yi), wz = (float)(c[2] - zi);
                float c00 = vol_get(src, xi, yi, zi) * (1 - wx) + vol_get(src, x1, yi, zi) * wx;
                float c10 = vol_get(src, xi, y1, zi) * (1 - wx) + vol_get(src, x1, y1, zi) * wx;
                float c01 = vol_get(src, xi, yi, z1) * (1 - wx) + vol_get(src, x1, yi, z1) * wx;
                float c11 = vol_get(src, xi, y1, z1) * (1 - wx) + vol_get(src, x1, y1, z1) * wx;
                float c0 = c00 * (1 - wy) + c10 * wy, c1 = c01 * (1 - wy) + c11 * wy;
                vol_put(dst, oi, c0 * (1 - wz) + c1 * wz);
            }
    return 0;
}
