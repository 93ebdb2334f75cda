/* render: CT slices as PNG for the audit viewer (see render.h for the
 * geometry, window and overlay rules). */
#include "render.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <spng.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "safetensors.h"

const uint8_t RENDER_MASK_RGB[3] = {255, 140, 0};  /* orange: stands out on grey and on red-free CT */
const uint8_t RENDER_BOX_RGB[3] = {0, 200, 255};   /* light blue */

/* ------------------------------------------------------------------ names */

static const char *const plane_names[] = {"axial", "coronal", "sagittal"};
static const char *const overlay_names[] = {"none", "outline", "fill"};

const char *render_plane_name(RenderPlane p)
{
    return (unsigned)p < 3 ? plane_names[p] : "?";
}

int render_plane_parse(const char *s, RenderPlane *out, FvErr *e)
{
    for (int i = 0; i < 3; i++)
        if (s && !strcmp(s, plane_names[i])) {
            *out = (RenderPlane)i;
            return 0;
        }
    return err_set(e, FV_EUSAGE, "unknown plane '%.40s' (axial, coronal or sagittal)",
                   s ? s : "");
}

int render_overlay_parse(const char *s, RenderOverlay *out, FvErr *e)
{
    for (int i = 0; i < 3; i++)
        if (s && !strcmp(s, overlay_names[i])) {
            *out = (RenderOverlay)i;
            return 0;
        }
    return err_set(e, FV_EUSAGE, "unknown overlay '%.40s' (none, outline or fill)", s ? s : "");
}

int render_window_preset(const char *name, double *wc, double *ww, FvErr *e)
{
    /* HU, the usual chest CT windows */
    static const struct { const char *name; double wc, ww; } presets[] = {
        {"lung", -600, 1500}, {"mediastinum", 40, 400}, {"bone", 500, 2000},
    };
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (name && !strcmp(name, presets[i].name)) {
            *wc = presets[i].wc;
            *ww = presets[i].ww;
            return 0;
        }
    return err_set(e, FV_EUSAGE, "unknown window preset '%.40s' (lung, mediastinum or bone)",
                   name ? name : "");
}

void render_req_init(RenderReq *r)
{
    memset(r, 0, sizeof *r);
    r->plane = RENDER_AXIAL;
    r->wc = 40;
    r->ww = 400;
    r->overlay = RENDER_OVERLAY_NONE;
}

static void labels_add(const Ontology *o, int a, uint8_t labels[256], int depth)
{
    if (a < 0 || a >= o->n_anat || depth > 8)
        return;
    const Anatomy *an = &o->anat[a];
    for (int i = 0; i < an->n_ts; i++)
        if (an->ts_ids[i] > 0 && an->ts_ids[i] < 256)
            labels[an->ts_ids[i]] = 1;
    for (int i = 0; i < an->n_region_of; i++)
        labels_add(o, an->region_of[i], labels, depth + 1);
}

void render_anatomy_labels(const Ontology *o, int a, uint8_t labels[256])
{
    memset(labels, 0, 256);
    labels_add(o, a, labels, 0);
}

/* ------------------------------------------------------------------ cache */

/* One open file; lives until it is out of the cache and its last user is done. */
typedef struct Open {
    char *path;
    StFile *f;
    dev_t dev;
    ino_t ino;
    struct timespec mtime;
    int refs;
    int cached;                 /* still in a cache slot */
    uint64_t used;              /* LRU clock */
} Open;

struct RenderCache {
    pthread_mutex_t mu;
    Open **slot;
    int n;
    uint64_t clock;
    int64_t opens;
};

int render_cache_new(RenderCache **out, int slots, FvErr *e)
{
    *out = NULL;
    if (slots < 1 || slots > 1024)
        return err_set(e, FV_EUSAGE, "render cache: %d slots is outside [1, 1024]", slots);
    RenderCache *c = calloc(1, sizeof *c);
    if (!c || !(c->slot = calloc((size_t)slots, sizeof *c->slot))) {
        free(c);
        return err_set(e, FV_ENOMEM, "render cache: out of memory");
    }
    if (pthread_mutex_init(&c->mu, NULL)) {
        free(c->slot);
        free(c);
        return err_set(e, FV_EINTERNAL, "render cache: cannot create its mutex");
    }
    c->n = slots;
    *out = c;
    return 0;
}

static void open_free(Open *o)
{
    if (!o)
        return;
    st_close(&o->f);
    free(o->path);
    free(o);
}

void render_cache_free(RenderCache **pc)
{
    RenderCache *c = *pc;
    if (!c)
        return;
    /* The owner frees the cache after its last render: no user remains. */
    for (int i = 0; i < c->n; i++)
        open_free(c->slot[i]);
    free(c->slot);
    pthread_mutex_destroy(&c->mu);
    free(c);
    *pc = NULL;
}

int64_t render_cache_opens(RenderCache *c)
{
    pthread_mutex_lock(&c->mu);
    int64_t n = c->opens;
    pthread_mutex_unlock(&c->mu);
    return n;
}

static int same_file(const Open *o, const struct stat *sb)
{
    return o->dev == sb->st_dev && o->ino == sb->st_ino && o->mtime.tv_sec == sb->st_mtim.tv_sec &&
           o->mtime.tv_nsec == sb->st_mtim.tv_nsec;
}

static int file_open(const char *path, const struct stat *sb, Open **out, FvErr *e)
{
    Open *o = calloc(1, sizeof *o);
    if (!o || !(o->path = strdup(path))) {
        free(o);
        return err_set(e, FV_ENOMEM, "%s: out of memory", path);
    }
    if (st_open(&o->f, path, e)) {
        open_free(o);
        return -1;
    }
    o->dev = sb->st_dev;
    o->ino = sb->st_ino;
    o->mtime = sb->st_mtim;
    o->refs = 1;
    *out = o;
    return 0;
}

/* The open file at path, its use counted: give it back with file_release. */
static int file_acquire(RenderCache *c, const char *path, Open **out, FvErr *e)
{
    struct stat sb;
    if (stat(path, &sb))
        return err_set(e, FV_EIO, "%s: cannot read the tensor file: %s", path, strerror(errno));
    if (!c)
        return file_open(path, &sb, out, e);
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->n; i++) {
        Open *o = c->slot[i];
        if (o && !strcmp(o->path, path) && same_file(o, &sb)) {
            o->refs++;
            o->used = ++c->clock;
            pthread_mutex_unlock(&c->mu);
            *out = o;
            return 0;
        }
    }
    pthread_mutex_unlock(&c->mu);
    /* Open outside the lock (it maps and checks a whole header); two threads
     * may open the same file at once, and both copies are fine. */
    Open *o;
    if (file_open(path, &sb, &o, e))
        return -1;
    pthread_mutex_lock(&c->mu);
    c->opens++;
    int victim = 0;
    for (int i = 0; i < c->n; i++) {
        if (!c->slot[i]) {
            victim = i;
            break;
        }
        if (c->slot[i]->used < c->slot[victim]->used)
            victim = i;
    }
    Open *old = c->slot[victim];
    if (old) {
        old->cached = 0;
        if (old->refs > 0)
            old = NULL;   /* its last user frees it */
    }
    o->cached = 1;
    o->used = ++c->clock;
    c->slot[victim] = o;
    pthread_mutex_unlock(&c->mu);
    open_free(old);
    *out = o;
    return 0;
}

static void file_release(RenderCache *c, Open *o)
{
    if (!o)
        return;
    if (!c) {
        open_free(o);
        return;
    }
    pthread_mutex_lock(&c->mu);
    int last = --o->refs == 0 && !o->cached;
    pthread_mutex_unlock(&c->mu);
    if (last)
        open_free(o);
}

/* ------------------------------------------------------------------ inputs */

/* The voxel data of one request, and the files it holds open. */
typedef struct Src {
    const int16_t *hu;
    const uint8_t *mask;
    Open *vol_file, *mask_file;
} Src;

static int check_geometry(const RenderReq *r, FvErr *e)
{
    static const char axis[] = "zyx";
    for (int i = 0; i < 3; i++) {
        if (r->dims[i] < 1 || r->dims[i] > RENDER_MAX_DIM)
            return err_set(e, FV_EFORMAT, "volume dimension %c = %lld is outside [1, %d]", axis[i],
                           (long long)r->dims[i], RENDER_MAX_DIM);
        if (!(r->spacing[i] > 0 && r->spacing[i] <= 100))
            return err_set(e, FV_EFORMAT, "volume spacing %c = %g mm is outside (0, 100]", axis[i],
                           r->spacing[i]);
    }
    if (r->dims[0] * r->dims[1] > INT64_MAX / r->dims[2] / 2)
        return err_set(e, FV_EFORMAT, "volume of %lld x %lld x %lld voxels is too large",
                       (long long)r->dims[0], (long long)r->dims[1], (long long)r->dims[2]);
    return 0;
}

static int tensor_get(RenderCache *c, const char *path, const char *name, StDType dt,
                      const int64_t dims[3], Open **held, const void **data, FvErr *e)
{
    if (!name || !name[0])
        return err_set(e, FV_EUSAGE, "%s: no tensor name given", path);
    if (file_acquire(c, path, held, e))
        return -1;
    const StTensor *t;
    if (st_get_checked((*held)->f, name, dt, 3, &t, e))
        return -1;
    if (t->shape[0] != dims[0] || t->shape[1] != dims[1] || t->shape[2] != dims[2])
        return err_set(e, FV_EFORMAT, "%s: tensor %s is (%lld, %lld, %lld), the database says "
                       "(%lld, %lld, %lld)", path, name, (long long)t->shape[0],
                       (long long)t->shape[1], (long long)t->shape[2], (long long)dims[0],
                       (long long)dims[1], (long long)dims[2]);
    *data = t->data;
    return 0;
}

static void src_release(const RenderReq *r, Src *s)
{
    file_release(r->cache, s->vol_file);
    file_release(r->cache, s->mask_file);
    memset(s, 0, sizeof *s);
}

/* Maps what the request needs: the CT when want_hu, the mask when want_mask
 * and the request has one. */
static int src_get(const RenderReq *r, int want_hu, int want_mask, Src *s, FvErr *e)
{
    memset(s, 0, sizeof *s);
    if (check_geometry(r, e))
        return -1;
    const void *p;
    if (want_hu) {
        if (r->hu)
            s->hu = r->hu;
        else if (r->vol_path) {
            if (tensor_get(r->cache, r->vol_path, r->vol_tensor, ST_I16, r->dims, &s->vol_file,
                           &p, e))
                goto fail;
            s->hu = p;
        } else
            return err_set(e, FV_EUSAGE, "no volume to render");
    }
    if (want_mask) {
        if (r->mask)
            s->mask = r->mask;
        else if (r->mask_path) {
            if (tensor_get(r->cache, r->mask_path, r->mask_tensor, ST_U8, r->dims, &s->mask_file,
                           &p, e))
                goto fail;
            s->mask = p;
        }
    }
    return 0;
fail:
    src_release(r, s);
    return -1;
}

/* ------------------------------------------------------------------ geometry */

/* The plane's normal axis and its column (u) and row (v) axes, as indices
 * into (z, y, x). */
static void plane_axes(RenderPlane p, int *n, int *u, int *v)
{
    switch (p) {
    case RENDER_AXIAL: *n = 0; *u = 2; *v = 1; break;
    case RENDER_CORONAL: *n = 1; *u = 2; *v = 0; break;
    default: *n = 2; *u = 1; *v = 0; break;
    }
}

static double pixel_mm(const RenderReq *r, int u, int v)
{
    double su = r->spacing[u], sv = r->spacing[v];
    double p = su < sv ? su : sv;
    double fu = (double)r->dims[u] * su / RENDER_MAX_SIDE, fv = (double)r->dims[v] * sv / RENDER_MAX_SIDE;
    if (p < fu) p = fu;
    if (p < fv) p = fv;
    return p;
}

static int axis_pixels(int64_t n, double s, double p)
{
    long k = lround((double)n * s / p);
    return k < 1 ? 1 : k > RENDER_MAX_SIDE ? RENDER_MAX_SIDE : (int)k;
}

int render_slice_size(const RenderReq *req, int *width, int *height, FvErr *e)
{
    if ((unsigned)req->plane > RENDER_SAGITTAL)
        return err_set(e, FV_EUSAGE, "unknown plane %d", (int)req->plane);
    if (check_geometry(req, e))
        return -1;
    int n, u, v;
    plane_axes(req->plane, &n, &u, &v);
    double p = pixel_mm(req, u, v);
    *width = axis_pixels(req->dims[u], req->spacing[u], p);
    *height = axis_pixels(req->dims[v], req->spacing[v], p);
    return 0;
}

/* Output pixel j of one image axis: the two voxels it blends (i0, i1 with
 * weight w on i1) and its nearest voxel, as offsets along that axis already
 * multiplied by the axis stride. Pixels run against the voxel axis (see
 * render.h), so pixel j is sample k = count - 1 - j. */
typedef struct AxisMap {
    int count;
    int64_t *i0, *i1, *nn;      /* element offsets */
    int *vox;                   /* nearest voxel index (box drawing) */
    float *w;
    int exact;                  /* every w is 0 */
} AxisMap;

static void axis_free(AxisMap *m)
{
    free(m->i0);
    free(m->i1);
    free(m->nn);
    free(m->vox);
    free(m->w);
    memset(m, 0, sizeof *m);
}

static int axis_build(AxisMap *m, int count, int64_t n, double s, double p, int64_t stride)
{
    memset(m, 0, sizeof *m);
    m->count = count;
    m->i0 = malloc((size_t)count * sizeof *m->i0);
    m->i1 = malloc((size_t)count * sizeof *m->i1);
    m->nn = malloc((size_t)count * sizeof *m->nn);
    m->vox = malloc((size_t)count * sizeof *m->vox);
    m->w = malloc((size_t)count * sizeof *m->w);
    if (!m->i0 || !m->i1 || !m->nn || !m->vox || !m->w) {
        axis_free(m);
        return -1;
    }
    m->exact = 1;
    for (int k = 0; k < count; k++) {
        /* the sample's centre in voxel units from the first voxel's centre */
        double t = ((double)k + 0.5) * p / s - 0.5;
        if (fabs(t - nearbyint(t)) < 1e-6)
            t = nearbyint(t);
        double tc = t < 0 ? 0 : t > (double)(n - 1) ? (double)(n - 1) : t;
        int64_t a = (int64_t)floor(tc);
        int64_t b = a + 1 < n ? a + 1 : n - 1;
        float w = (float)(tc - (double)a);
        int64_t near = (int64_t)floor(t + 0.5);
        if (near < 0) near = 0;
        if (near > n - 1) near = n - 1;
        int j = count - 1 - k;
        m->i0[j] = a * stride;
        m->i1[j] = b * stride;
        m->w[j] = w;
        m->nn[j] = near * stride;
        m->vox[j] = (int)near;
        if (w != 0)
            m->exact = 0;
    }
    return 0;
}

/* ------------------------------------------------------------------ render */

static int check_request(const RenderReq *r, FvErr *e)
{
    if ((unsigned)r->plane > RENDER_SAGITTAL)
        return err_set(e, FV_EUSAGE, "unknown plane %d", (int)r->plane);
    if ((unsigned)r->overlay > RENDER_OVERLAY_FILL)
        return err_set(e, FV_EUSAGE, "unknown overlay %d", (int)r->overlay);
    if (!isfinite(r->wc) || fabs(r->wc) > RENDER_MAX_WINDOW)
        return err_set(e, FV_EUSAGE, "window centre %g HU is outside [-%g, %g]", r->wc,
                       RENDER_MAX_WINDOW, RENDER_MAX_WINDOW);
    if (!isfinite(r->ww) || r->ww < 1 || r->ww > RENDER_MAX_WINDOW)
        return err_set(e, FV_EUSAGE, "window width %g HU is outside [1, %g]", r->ww,
                       RENDER_MAX_WINDOW);
    if (check_geometry(r, e))
        return -1;
    int n, u, v;
    plane_axes(r->plane, &n, &u, &v);
    if (r->index < 0 || r->index >= r->dims[n])
        return err_set(e, FV_EUSAGE, "%s slice %lld is outside [0, %lld)",
                       render_plane_name(r->plane), (long long)r->index, (long long)r->dims[n]);
    return 0;
}

/* In double with a division, so that integer HU on the usual windows give
 * the exact value of the formula in render.h (255 / 400 is not a float). */
static inline uint8_t window_grey(double hu, double lo, double ww)
{
    double g = (hu - lo) * 255.0 / ww + 0.5;
    if (!(g > 0))
        return 0;
    if (g >= 255)
        return 255;
    return (uint8_t)g;  /* truncation of a positive value: the floor */
}

static void paint(uint8_t *px, const uint8_t c[3])
{
    px[0] = c[0];
    px[1] = c[1];
    px[2] = c[2];
}

/* The range [lo, hi] of pixels whose nearest voxel lies in [v0, v1), or
 * lo > hi when none does. */
static void box_span(const AxisMap *m, int64_t v0, int64_t v1, int *lo, int *hi)
{
    *lo = m->count;
    *hi = -1;
    for (int j = 0; j < m->count; j++)
        if (m->vox[j] >= v0 && m->vox[j] < v1) {
            if (j < *lo) *lo = j;
            if (j > *hi) *hi = j;
        }
}

int render_slice_rgb(const RenderReq *req, uint8_t **rgb_out, int *width, int *height,
                     int *coloured, FvErr *e)
{
    *rgb_out = NULL;
    int painted = 0;
    if (check_request(req, e))
        return -1;
    int want_mask = req->overlay != RENDER_OVERLAY_NONE;
    Src src;
    if (src_get(req, 1, want_mask, &src, e))
        return -1;
    int n, u, v, W, H;
    plane_axes(req->plane, &n, &u, &v);
    const int64_t stride[3] = {req->dims[1] * req->dims[2], req->dims[2], 1};
    double p = pixel_mm(req, u, v);
    W = axis_pixels(req->dims[u], req->spacing[u], p);
    H = axis_pixels(req->dims[v], req->spacing[v], p);

    AxisMap mu, mv;
    uint8_t *rgb = NULL, *in = NULL;
    int16_t *slab = NULL;
    uint8_t *mslab = NULL;
    int rc = -1;
    memset(&mu, 0, sizeof mu);
    memset(&mv, 0, sizeof mv);
    /* The slice's voxels: axial and coronal rows are contiguous in x; a
     * sagittal slice (one x) is gathered first into a (z, y) slab, one pass
     * in memory order, instead of every pixel reading its own cache line. */
    const int64_t base = req->index * stride[n];
    const int16_t *hu = src.hu + base;
    const uint8_t *mk = src.mask ? src.mask + base : NULL;
    int64_t su = stride[u], sv = stride[v];
    if (req->plane == RENDER_SAGITTAL) {
        const int64_t nz = req->dims[0], ny = req->dims[1];
        if (!(slab = malloc((size_t)(nz * ny) * sizeof *slab)) ||
            (mk && want_mask && !(mslab = malloc((size_t)(nz * ny))))) {
            err_set(e, FV_ENOMEM, "render: out of memory for a sagittal slab");
            goto done;
        }
        for (int64_t z = 0; z < nz; z++)
            for (int64_t y = 0; y < ny; y++)
                slab[z * ny + y] = hu[z * stride[0] + y * stride[1]];
        if (mslab)
            for (int64_t z = 0; z < nz; z++)
                for (int64_t y = 0; y < ny; y++)
                    mslab[z * ny + y] = mk[z * stride[0] + y * stride[1]];
        hu = slab;
        mk = mslab;
        su = 1;
        sv = ny;
    }
    if (axis_build(&mu, W, req->dims[u], req->spacing[u], p, su) ||
        axis_build(&mv, H, req->dims[v], req->spacing[v], p, sv) ||
        !(rgb = malloc((size_t)W * (size_t)H * 3)) ||
        (mk && !(in = malloc((size_t)W * (size_t)H)))) {
        err_set(e, FV_ENOMEM, "render: out of memory for a %d x %d image", W, H);
        goto done;
    }

    const double lo = req->wc - req->ww / 2, ww = req->ww;
    for (int r = 0; r < H; r++) {
        const int16_t *row0 = hu + mv.i0[r], *row1 = hu + mv.i1[r];
        const float wv = mv.w[r];
        uint8_t *out = rgb + (size_t)r * (size_t)W * 3;
        if (mu.exact && wv == 0) {
            for (int c = 0; c < W; c++) {
                uint8_t g = window_grey(row0[mu.i0[c]], lo, ww);
                out[3 * c] = out[3 * c + 1] = out[3 * c + 2] = g;
            }
        } else {
            for (int c = 0; c < W; c++) {
                float a = row0[mu.i0[c]], b = row0[mu.i1[c]];
                float top = a + mu.w[c] * (b - a);
                float val = top;
                if (wv != 0) {
                    float cc = row1[mu.i0[c]], d = row1[mu.i1[c]];
                    float bot = cc + mu.w[c] * (d - cc);
                    val = top + wv * (bot - top);
                }
                uint8_t g = window_grey(val, lo, ww);
                out[3 * c] = out[3 * c + 1] = out[3 * c + 2] = g;
            }
        }
    }

    if (want_mask && mk) {
        for (int r = 0; r < H; r++) {
            const uint8_t *mrow = mk + mv.nn[r];
            uint8_t *irow = in + (size_t)r * (size_t)W;
            for (int c = 0; c < W; c++)
                irow[c] = req->labels[mrow[mu.nn[c]]];
        }
        if (req->overlay == RENDER_OVERLAY_FILL) {
            const unsigned A = RENDER_FILL_ALPHA;
            for (size_t i = 0; i < (size_t)W * (size_t)H; i++)
                if (in[i] && (painted = 1))
                    for (int k = 0; k < 3; k++)
                        rgb[3 * i + k] = (uint8_t)((rgb[3 * i + k] * (256 - A) +
                                                    RENDER_MASK_RGB[k] * A + 128) >> 8);
        }
    }

    if (want_mask && req->has_box) {
        const int64_t b0[3] = {req->box.z0, req->box.y0, req->box.x0};
        const int64_t b1[3] = {req->box.z1, req->box.y1, req->box.x1};
        int c0, c1, r0, r1;
        box_span(&mu, b0[u], b1[u], &c0, &c1);
        box_span(&mv, b0[v], b1[v], &r0, &r1);
        if (req->index >= b0[n] && req->index < b1[n] && c0 <= c1 && r0 <= r1) {
            painted = 1;
            for (int c = c0; c <= c1; c++) {
                paint(rgb + ((size_t)r0 * W + c) * 3, RENDER_BOX_RGB);
                paint(rgb + ((size_t)r1 * W + c) * 3, RENDER_BOX_RGB);
            }
            for (int r = r0; r <= r1; r++) {
                paint(rgb + ((size_t)r * W + c0) * 3, RENDER_BOX_RGB);
                paint(rgb + ((size_t)r * W + c1) * 3, RENDER_BOX_RGB);
            }
        }
    }

    if (req->overlay == RENDER_OVERLAY_OUTLINE && in) {
        for (int r = 0; r < H; r++)
            for (int c = 0; c < W; c++) {
                size_t i = (size_t)r * W + c;
                if (!in[i])
                    continue;
                if (r == 0 || r == H - 1 || c == 0 || c == W - 1 || !in[i - 1] || !in[i + 1] ||
                    !in[i - W] || !in[i + W]) {
                    paint(rgb + i * 3, RENDER_MASK_RGB);
                    painted = 1;
                }
            }
    }

    *rgb_out = rgb;
    rgb = NULL;
    *width = W;
    *height = H;
    if (coloured)
        *coloured = painted;
    rc = 0;
done:
    free(rgb);
    free(in);
    free(slab);
    free(mslab);
    axis_free(&mu);
    axis_free(&mv);
    src_release(req, &src);
    return rc;
}

/* ------------------------------------------------------------------ PNG */

static int png_write(spng_ctx *ctx, void *user, void *data, size_t len)
{
    (void)ctx;
    return buf_append(user, data, len) ? SPNG_IO_ERROR : 0;
}

/* The exact form of an RGB image with the fewest bytes per pixel: its
 * grey channel when every pixel is grey; palette indices when it holds at
 * most 256 colours (a grey slice with an outline, usually); else nothing
 * (RGB). Palette entries are the greys in ascending order, then the other
 * colours, so an index grows with brightness the way a grey value does and
 * the Sub filter works on it as on grey. Returns RENDER_PNG_GREY with px
 * filled, RENDER_PNG_INDEXED with px and plte filled, RENDER_PNG_RGB, or -1
 * when memory runs out. */
enum { RENDER_PNG_RGB = 0, RENDER_PNG_GREY = 1, RENDER_PNG_INDEXED = 2 };

static int png_form(const uint8_t *rgb, size_t npx, uint8_t **px_out, struct spng_plte *plte)
{
    enum { HASH = 1024 };       /* open addressing: at most 256 of 1024 slots used */
    uint8_t grey_used[256] = {0};
    uint32_t key[HASH];          /* 0: empty; else colour + 1 */
    uint8_t slot_ix[HASH];
    int ncol = 0, nother = 0;
    memset(key, 0, sizeof key);
    *px_out = NULL;
    uint32_t last = UINT32_MAX;  /* the last non-grey colour seen (runs of one colour) */
    for (size_t i = 0; i < npx; i++) {
        const uint8_t *p = rgb + 3 * i;
        if (p[0] == p[1] && p[1] == p[2]) {
            if (!grey_used[p[0]]) {
                grey_used[p[0]] = 1;
                if (++ncol > 256)
                    return RENDER_PNG_RGB;
            }
            continue;
        }
        uint32_t c = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
        if (c == last)
            continue;
        last = c;
        uint32_t h = (c * 2654435761u) >> 22;
        while (key[h] && key[h] != c + 1)
            h = (h + 1) & (HASH - 1);
        if (!key[h]) {
            key[h] = c + 1;
            nother++;
            if (++ncol > 256)
                return RENDER_PNG_RGB;
        }
    }
    uint8_t *px = malloc(npx);
    if (!px)
        return -1;
    if (!nother) {
        for (size_t i = 0; i < npx; i++)
            px[i] = rgb[3 * i];
        *px_out = px;
        return RENDER_PNG_GREY;
    }
    uint8_t grey_ix[256];
    uint32_t n = 0;
    for (int g = 0; g < 256; g++)
        if (grey_used[g]) {
            grey_ix[g] = (uint8_t)n;
            plte->entries[n] = (struct spng_plte_entry){.red = (uint8_t)g, .green = (uint8_t)g,
                                                        .blue = (uint8_t)g, .alpha = 255};
            n++;
        }
    for (int h = 0; h < HASH; h++)
        if (key[h]) {
            uint32_t c = key[h] - 1;
            slot_ix[h] = (uint8_t)n;
            plte->entries[n] = (struct spng_plte_entry){.red = (uint8_t)(c >> 16),
                                                        .green = (uint8_t)(c >> 8),
                                                        .blue = (uint8_t)c, .alpha = 255};
            n++;
        }
    plte->n_entries = n;
    for (size_t i = 0; i < npx; i++) {
        const uint8_t *p = rgb + 3 * i;
        if (p[0] == p[1] && p[1] == p[2]) {
            px[i] = grey_ix[p[0]];
            continue;
        }
        uint32_t c = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
        uint32_t h = (c * 2654435761u) >> 22;
        while (key[h] != c + 1)
            h = (h + 1) & (HASH - 1);
        px[i] = slot_ix[h];
    }
    *px_out = px;
    return RENDER_PNG_INDEXED;
}

int render_png_encode(const uint8_t *rgb, int width, int height, Buf *png, FvErr *e)
{
    buf_reset(png);
    if (width < 1 || height < 1 || width > RENDER_MAX_SIDE || height > RENDER_MAX_SIDE)
        return err_set(e, FV_EUSAGE, "png: image of %d x %d pixels is outside [1, %d]", width,
                       height, RENDER_MAX_SIDE);
    const size_t npx = (size_t)width * (size_t)height;
    uint8_t *px = NULL;
    struct spng_plte plte;
    int form = png_form(rgb, npx, &px, &plte);
    if (form < 0)
        return err_set(e, FV_ENOMEM, "png: out of memory");
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    if (!ctx) {
        free(px);
        return err_set(e, FV_ENOMEM, "png: out of memory");
    }
    static const uint8_t colour_type[] = {SPNG_COLOR_TYPE_TRUECOLOR, SPNG_COLOR_TYPE_GRAYSCALE,
                                          SPNG_COLOR_TYPE_INDEXED};
    struct spng_ihdr ih = {
        .width = (uint32_t)width, .height = (uint32_t)height, .bit_depth = 8,
        .color_type = colour_type[form],
    };
    int rc = spng_set_png_stream(ctx, png_write, png);
    if (!rc)
        rc = spng_set_ihdr(ctx, &ih);
    if (!rc && form == RENDER_PNG_INDEXED)
        rc = spng_set_plte(ctx, &plte);
    /* Level 1 with the Sub filter, the fastest setting that keeps the size
     * of adaptive filtering (bench_render's encoder table: adaptive costs
     * twice the time for 1% less, level 6 six times for 14% less); one
     * byte per pixel with zlib's run-length strategy, both faster and
     * smaller there (on RGB it loses half the compression). */
    if (!rc)
        rc = spng_set_option(ctx, SPNG_IMG_COMPRESSION_LEVEL, RENDER_PNG_LEVEL);
    if (!rc)
        rc = spng_set_option(ctx, SPNG_FILTER_CHOICE, SPNG_FILTER_CHOICE_SUB);
    if (!rc && form != RENDER_PNG_RGB)
        rc = spng_set_option(ctx, SPNG_IMG_COMPRESSION_STRATEGY, Z_RLE);
    if (!rc)
        rc = spng_encode_image(ctx, px ? px : rgb, npx * (px ? 1 : 3), SPNG_FMT_PNG,
                               SPNG_ENCODE_FINALIZE);
    spng_ctx_free(ctx);
    free(px);
    if (rc || png->failed) {
        buf_reset(png);
        return err_set(e, png->failed ? FV_ENOMEM : FV_EINTERNAL, "png: %s",
                       png->failed ? "out of memory" : spng_strerror(rc));
    }
    return 0;
}

int render_slice_png(const RenderReq *req, Buf *png, FvErr *e)
{
    uint8_t *rgb;
    int w, h;
    buf_reset(png);
    if (render_slice_rgb(req, &rgb, &w, &h, NULL, e))
        return -1;
    int rc = render_png_encode(rgb, w, h, png, e);
    free(rgb);
    return rc;
}

/* ------------------------------------------------------------------ centre */

int render_anatomy_centre(const RenderReq *req, int64_t centre[3], FvErr *e)
{
    Src src;
    if (src_get(req, 0, 1, &src, e))
        return -1;
    const int64_t nz = req->dims[0], ny = req->dims[1], nx = req->dims[2];
    int64_t lo[3] = {0, 0, 0}, hi[3] = {nz, ny, nx};
    if (req->has_box) {
        const int64_t b0[3] = {req->box.z0, req->box.y0, req->box.x0};
        const int64_t b1[3] = {req->box.z1, req->box.y1, req->box.x1};
        for (int i = 0; i < 3; i++) {
            lo[i] = b0[i] < 0 ? 0 : b0[i];
            hi[i] = b1[i] > req->dims[i] ? req->dims[i] : b1[i];
        }
    }
    int rc = 0;
    double sum[3] = {0, 0, 0};
    int64_t count = 0;
    const uint8_t *m = src.mask;
    if (m)
        for (int64_t z = lo[0]; z < hi[0]; z++)
            for (int64_t y = lo[1]; y < hi[1]; y++) {
                const uint8_t *row = m + (z * ny + y) * nx;
                int64_t k = 0, sx = 0;
                for (int64_t x = lo[2]; x < hi[2]; x++)
                    if (req->labels[row[x]]) {
                        k++;
                        sx += x;
                    }
                if (k) {
                    count += k;
                    sum[0] += (double)z * k;
                    sum[1] += (double)y * k;
                    sum[2] += (double)sx;
                }
            }
    if (count == 0) {
        if (req->has_box && lo[0] < hi[0] && lo[1] < hi[1] && lo[2] < hi[2]) {
            for (int i = 0; i < 3; i++)
                centre[i] = (lo[i] + hi[i] - 1) / 2;
        } else
            rc = err_set(e, FV_ENOTFOUND, "the anatomy has no mask voxels and no region box");
        src_release(req, &src);
        return rc;
    }
    /* The nearest anatomy voxel to the centroid, in mm. Slices are visited
     * outward from the centroid's and the walk stops once a slice is
     * farther than the best voxel found. */
    const double c[3] = {sum[0] / count, sum[1] / count, sum[2] / count};
    const double *sp = req->spacing;
    double best = INFINITY;
    int64_t cz = (int64_t)nearbyint(c[0]);
    for (int64_t d = 0;; d++) {
        int64_t zs[2] = {cz - d, cz + d};
        int any = 0;
        for (int s = 0; s < (d ? 2 : 1); s++) {
            int64_t z = zs[s];
            if (z < lo[0] || z >= hi[0])
                continue;
            any = 1;
            double dz = ((double)z - c[0]) * sp[0];
            if (dz * dz >= best)
                continue;
            for (int64_t y = lo[1]; y < hi[1]; y++) {
                double dy = ((double)y - c[1]) * sp[1];
                double dzy = dz * dz + dy * dy;
                if (dzy >= best)
                    continue;
                const uint8_t *row = m + (z * ny + y) * nx;
                for (int64_t x = lo[2]; x < hi[2]; x++)
                    if (req->labels[row[x]]) {
                        double dx = ((double)x - c[2]) * sp[2];
                        double d2 = dzy + dx * dx;
                        if (d2 < best) {
                            best = d2;
                            centre[0] = z;
                            centre[1] = y;
                            centre[2] = x;
                        }
                    }
            }
        }
        /* the next slices lie at least d + 0.5 slices from the centroid */
        double dmin = ((double)d + 0.5) * sp[0];
        if (!any || dmin * dmin >= best)
            break;
    }
    src_release(req, &src);
    return 0;
}

/* ------------------------------------------------------------------ corpus */

/* A shard name from the database is a file name under <db>.tensors/: no
 * absolute path and no way up, so no row can point the server elsewhere. */
static int shard_name_ok(const char *name)
{
    if (!name[0] || name[0] == '/' || strlen(name) > 255)
        return 0;
    for (const char *p = name; *p; p++)
        if (p[0] == '.' && p[1] == '.' && (p == name || p[-1] == '/') && (p[2] == '/' || !p[2]))
            return 0;
    return 1;
}

static int copy_col(sqlite3_stmt *st, int col, char *out, size_t n, const char *what,
                    int64_t study_id, FvErr *e)
{
    const unsigned char *s = sqlite3_column_text(st, col);
    if (!s || !s[0] || strlen((const char *)s) >= n)
        return err_set(e, FV_EFORMAT, "study %lld: %s is empty or too long", (long long)study_id,
                       what);
    memcpy(out, s, strlen((const char *)s) + 1);
    return 0;
}

int render_study_load(Db *db, const Ontology *o, int64_t study_id, const char *anatomy,
                      RenderStudy *s, FvErr *e)
{
    memset(s, 0, sizeof *s);
    int a = -1;
    if (anatomy && (a = onto_anatomy(o, anatomy)) < 0)
        return err_set(e, FV_ENOTFOUND, "unknown anatomy '%.60s'", anatomy);
    char dir[4096];
    db_tensor_dir(db, dir, sizeof dir);
    sqlite3_stmt *st = NULL;
    int rc = -1, row;
    char vshard[300], mshard[300];
    if (db_prepare(db, &st,
                   "SELECT v.shard, v.tensor, v.nz, v.ny, v.nx, v.sz, v.sy, v.sx, m.shard, m.tensor"
                   " FROM volumes v LEFT JOIN masks m ON m.study_id = v.study_id"
                   " WHERE v.study_id = ?", e) ||
        db_bindf(db, st, e, "i", study_id) || (row = db_step(db, st, e)) < 0)
        goto done;
    if (row == 0) {
        err_set(e, FV_ENOTFOUND, "study %lld has no volume", (long long)study_id);
        goto done;
    }
    if (copy_col(st, 0, vshard, sizeof vshard, "volumes.shard", study_id, e) ||
        copy_col(st, 1, s->vol_tensor, sizeof s->vol_tensor, "volumes.tensor", study_id, e))
        goto done;
    for (int i = 0; i < 3; i++) {
        s->dims[i] = sqlite3_column_int64(st, 2 + i);
        s->spacing[i] = sqlite3_column_double(st, 5 + i);
    }
    if (!shard_name_ok(vshard)) {
        err_set(e, FV_EFORMAT, "study %lld: volumes.shard '%.100s' is not a file under %.200s",
                (long long)study_id, vshard, dir);
        goto done;
    }
    snprintf(s->vol_path, sizeof s->vol_path, "%s/%s", dir, vshard);
    if (sqlite3_column_type(st, 8) != SQLITE_NULL) {
        if (copy_col(st, 8, mshard, sizeof mshard, "masks.shard", study_id, e) ||
            copy_col(st, 9, s->mask_tensor, sizeof s->mask_tensor, "masks.tensor", study_id, e))
            goto done;
        if (!shard_name_ok(mshard)) {
            err_set(e, FV_EFORMAT, "study %lld: masks.shard '%.100s' is not a file under %.200s",
                    (long long)study_id, mshard, dir);
            goto done;
        }
        snprintf(s->mask_path, sizeof s->mask_path, "%s/%s", dir, mshard);
        s->has_mask = 1;
    }
    RenderReq chk;
    render_req_init(&chk);
    memcpy(chk.dims, s->dims, sizeof chk.dims);
    memcpy(chk.spacing, s->spacing, sizeof chk.spacing);
    if (check_geometry(&chk, e)) {
        err_prefix(e, "study %lld: volumes row", (long long)study_id);
        goto done;
    }
    if (a >= 0) {
        render_anatomy_labels(o, a, s->labels);
        sqlite3_finalize(st);
        st = NULL;
        if (db_prepare(db, &st, "SELECT voxels, z0, z1, y0, y1, x0, x1 FROM regions"
                                " WHERE study_id = ? AND anatomy = ?", e) ||
            db_bindf(db, st, e, "is", study_id, anatomy) || (row = db_step(db, st, e)) < 0)
            goto done;
        if (row && sqlite3_column_int64(st, 0) > 0) {
            RenderBox *b = &s->box;
            int64_t *f[6] = {&b->z0, &b->z1, &b->y0, &b->y1, &b->x0, &b->x1};
            for (int i = 0; i < 6; i++)
                *f[i] = sqlite3_column_int64(st, 1 + i);
            for (int i = 0; i < 3; i++)
                if (*f[2 * i] < 0 || *f[2 * i] >= *f[2 * i + 1] || *f[2 * i + 1] > s->dims[i]) {
                    err_set(e, FV_EFORMAT, "study %lld: regions row of %s: box [%lld, %lld) on "
                            "axis %c is outside the volume's [0, %lld)", (long long)study_id,
                            anatomy, (long long)*f[2 * i], (long long)*f[2 * i + 1], "zyx"[i],
                            (long long)s->dims[i]);
                    goto done;
                }
            s->has_box = 1;
        }
    }
    rc = 0;
done:
    sqlite3_finalize(st);
    return rc;
}

void render_req_from_study(RenderReq *req, const RenderStudy *s)
{
    req->hu = NULL;
    req->vol_path = s->vol_path;
    req->vol_tensor = s->vol_tensor;
    memcpy(req->dims, s->dims, sizeof req->dims);
    memcpy(req->spacing, s->spacing, sizeof req->spacing);
    req->mask = NULL;
    req->mask_path = s->has_mask ? s->mask_path : NULL;
    req->mask_tensor = s->has_mask ? s->mask_tensor : NULL;
    memcpy(req->labels, s->labels, sizeof req->labels);
    req->has_box = s->has_box;
    req->box = s->box;
}
