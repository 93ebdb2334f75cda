#include "series.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"

void slice_free(Slice *s)
{
    free(s->pix);
    s->pix = NULL;
}

static void normal_of(const double iop[6], double n[3])
{
    n[0] = iop[1] * iop[5] - iop[2] * iop[4];
    n[1] = iop[2] * iop[3] - iop[0] * iop[5];
    n[2] = iop[0] * iop[4] - iop[1] * iop[3];
}

static int same_iop(const double a[6], const double b[6])
{
    for (int i = 0; i < 6; i++)
        if (fabs(a[i] - b[i]) > 1e-3)
            return 0;
    return 1;
}

int series_is_scout(Slice *const *sl, int n, const char **why)
{
    *why = NULL;
    if (n < 1)
        return 0;
    int all_loc = 1;
    for (int i = 0; i < n; i++)
        all_loc &= sl[i]->localizer != 0;
    if (all_loc) {
        *why = "only scout/localizer images (ImageType LOCALIZER): no volume";
        return 1;
    }
    if (n < 2)
        return 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (!sl[i]->geo.has_iop || !sl[j]->geo.has_iop ||
                same_iop(sl[i]->geo.iop, sl[j]->geo.iop))
                return 0;
    *why = "only scout images (no two share an orientation): no volume";
    return 1;
}

/* An axial series: the normal is within 30 degrees of the z axis. */
static int is_axial(const Slice *s)
{
    if (!s->geo.has_iop)
        return 0;
    double n[3];
    normal_of(s->geo.iop, n);
    double len = sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
    return len > 0 && fabs(n[2]) / len > 0.866;
}

int series_choose(Slice *const *sl, int n, const char **uid, Buf *notes, FvErr *e)
{
    /* Score each distinct series: CT first, then non-localizer, axial, count. */
    const char *best = NULL;
    long best_score = -1;
    int nseries = 0;
    for (int i = 0; i < n; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = !strcmp(sl[j]->series_uid, sl[i]->series_uid);
        if (seen)
            continue;
        nseries++;
        int count = 0, ct = 0, nonloc = 0, axial = 0;
        for (int j = i; j < n; j++) {
            if (strcmp(sl[j]->series_uid, sl[i]->series_uid))
                continue;
            count++;
            ct |= !strcmp(sl[j]->modality, "CT");
            nonloc += !sl[j]->localizer;
            axial += is_axial(sl[j]);
        }
        if (!ct)
            continue;
        long score = (nonloc > 1 ? 1L << 40 : 0) + (axial * 2 > count ? 1L << 39 : 0) + count;
        if (score > best_score) {
            best_score = score;
            best = sl[i]->series_uid;
        }
    }
    if (!best) {
        char mods[64] = "";
        for (int i = 0; i < n && strlen(mods) < 40; i++)
            if (!strstr(mods, sl[i]->modality[0] ? sl[i]->modality : "?")) {
                if (mods[0])
                    strcat(mods, ",");
                strcat(mods, sl[i]->modality[0] ? sl[i]->modality : "?");
            }
        return err_set(e, FV_ENOTFOUND, "no CT image series in the study (modalities: %s)", mods);
    }
    if (nseries > 1)
        buf_printf(notes, "%d series in the study, used the CT series with %ld slices; ", nseries,
                   best_score & ((1L << 39) - 1));
    *uid = best;
    return 0;
}

/* Smallest and largest stored value of n pixels (one loop per type). */
static void pix_range(PixType t, const void *p, size_t n, double *lo, double *hi)
{
#define RANGE(T)                                                                           \
    do {                                                                                   \
        const T *d = p;                                                                    \
        T a = n ? d[0] : 0, b = a;                                                         \
        for (size_t i = 1; i < n; i++) {                                                   \
            a = d[i] < a ? d[i] : a;                                                       \
            b = d[i] > b ? d[i] : b;                                                       \
        }                                                                                  \
        *lo = a;                                                                           \
        *hi = b;                                                                           \
    } while (0)
    switch (t) {
    case PIX_U8: RANGE(uint8_t); break;
    case PIX_I8: RANGE(int8_t); break;
    case PIX_U16: RANGE(uint16_t); break;
    case PIX_I16: RANGE(int16_t); break;
    case PIX_U32: RANGE(uint32_t); break;
    default: RANGE(int32_t); break;
    }
#undef RANGE
}

/* HU of a slice into int16 (slope and intercept integers, result in range:
 * checked by the caller). */
static void copy_i16(const Slice *s, size_t n, int16_t *out)
{
    int64_t sl = (int64_t)s->geo.slope, in = (int64_t)s->geo.inter;
#define COPY(T)                                                                            \
    do {                                                                                   \
        const T *d = s->pix;                                                               \
        for (size_t i = 0; i < n; i++)                                                     \
            out[i] = (int16_t)((int64_t)d[i] * sl + in);                                   \
    } while (0)
    switch (s->type) {
    case PIX_U8: COPY(uint8_t); break;
    case PIX_I8: COPY(int8_t); break;
    case PIX_U16: COPY(uint16_t); break;
    case PIX_I16: COPY(int16_t); break;
    case PIX_U32: COPY(uint32_t); break;
    default: COPY(int32_t); break;
    }
#undef COPY
}

typedef struct Ord {
    const Slice *s;
    int idx;          /* input index */
    double d;         /* position along the normal, mm */
} Ord;

static int cmp_ord(const void *a, const void *b)
{
    const Ord *x = a, *y = b;
    if (x->d != y->d)
        return x->d < y->d ? -1 : 1;
    if (x->s->instance != y->s->instance)
        return x->s->instance < y->s->instance ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int series_assemble(Slice *const *sl, int n, int64_t max_voxels, SeriesOut *out, int *status,
                    Buf *notes, FvErr *e)
{
    memset(out, 0, sizeof *out);
    if (n < 1)
        return err_set(e, FV_EFORMAT, "empty series");
    for (int i = 0; i < n; i++)
        status[i] = SLICE_USED;
    /* 1. Slices without geometry cannot be placed. */
    int nogeo = 0;
    for (int i = 0; i < n; i++)
        if (!sl[i]->geo.has_ipp || !sl[i]->geo.has_iop || !sl[i]->geo.has_spacing) {
            status[i] = SLICE_NOGEO;
            nogeo++;
        }
    if (nogeo == 1 && n == 1) {
        /* One image without geometry (a secondary capture): it can still be
         * looked at, on an identity grid. */
        Slice *s0 = sl[0];
        if (!s0->geo.has_iop) {
            static const double axial[6] = {1, 0, 0, 0, 1, 0};
            memcpy(s0->geo.iop, axial, sizeof axial);
        }
        if (!s0->geo.has_spacing)
            s0->geo.spacing[0] = s0->geo.spacing[1] = 1;
        s0->geo.has_ipp = s0->geo.has_iop = s0->geo.has_spacing = 1;
        status[0] = SLICE_USED;
        nogeo = 0;
        buf_puts(notes, "no position/orientation/spacing: identity geometry assumed; ");
    }
    if (nogeo == n)
        return err_set(e, FV_EFORMAT,
                       "series of %d slice(s) without Image Position/Orientation or Pixel "
                       "Spacing: cannot place the slices",
                       n);
    if (nogeo)
        buf_printf(notes, "%d slice(s) without position/orientation dropped; ", nogeo);
    /* 2. Orientation groups: keep the largest group of non-localizer slices. */
    int best = -1, best_count = -1;
    for (int i = 0; i < n; i++) {
        if (status[i] != SLICE_USED)
            continue;
        int count = 0;
        for (int j = 0; j < n; j++)
            if (status[j] == SLICE_USED && same_iop(sl[i]->geo.iop, sl[j]->geo.iop))
                count += sl[j]->localizer ? 1 : 1000;
        if (count > best_count) {
            best_count = count;
            best = i;
        }
    }
    int scouts = 0;
    for (int i = 0; i < n; i++)
        if (status[i] == SLICE_USED &&
            (!same_iop(sl[i]->geo.iop, sl[best]->geo.iop) ||
             (sl[i]->localizer && !sl[best]->localizer))) {
            status[i] = SLICE_SCOUT;
            scouts++;
        }
    if (scouts)
        buf_printf(notes, "%d slice(s) of another orientation or marked LOCALIZER (scouts) "
                          "dropped; ", scouts);
    /* 3. One size and spacing for all. */
    const Slice *ref = sl[best];
    int odd = 0;
    const Slice *odd_s = NULL;
    int nref = 0;
    for (int i = 0; i < n; i++) {
        if (status[i] != SLICE_USED)
            continue;
        const Slice *s = sl[i];
        if (s->rows != ref->rows || s->cols != ref->cols ||
            fabs(s->geo.spacing[0] - ref->geo.spacing[0]) > 1e-4 * ref->geo.spacing[0] ||
            fabs(s->geo.spacing[1] - ref->geo.spacing[1]) > 1e-4 * ref->geo.spacing[1]) {
            odd++;
            odd_s = s;
        } else {
            nref++;
        }
    }
    if (odd)
        return err_set(e, FV_EFORMAT,
                       "inconsistent series: %d slice(s) of %dx%d at %.4gx%.4g mm and %d of "
                       "%dx%d at %.4gx%.4g mm",
                       nref, ref->cols, ref->rows, ref->geo.spacing[1], ref->geo.spacing[0], odd,
                       odd_s->cols, odd_s->rows, odd_s->geo.spacing[1], odd_s->geo.spacing[0]);
    if (!(ref->geo.spacing[0] > 0) || !(ref->geo.spacing[1] > 0))
        return err_set(e, FV_EFORMAT, "Pixel Spacing %g\\%g is not positive", ref->geo.spacing[0],
                       ref->geo.spacing[1]);
    double nrm[3];
    normal_of(ref->geo.iop, nrm);
    double nlen = sqrt(nrm[0] * nrm[0] + nrm[1] * nrm[1] + nrm[2] * nrm[2]);
    if (!(nlen > 0.5))
        return err_set(e, FV_EFORMAT, "Image Orientation row and column cosines are parallel");
    for (int k = 0; k < 3; k++)
        nrm[k] /= nlen;
    /* 4. Sort along the normal. */
    Ord *o = malloc((size_t)n * sizeof *o);
    if (!o)
        return err_set(e, FV_ENOMEM, "series: out of memory");
    int m = 0;
    for (int i = 0; i < n; i++)
        if (status[i] == SLICE_USED) {
            const double *p = sl[i]->geo.ipp;
            o[m].s = sl[i];
            o[m].idx = i;
            o[m].d = p[0] * nrm[0] + p[1] * nrm[1] + p[2] * nrm[2];
            m++;
        }
    qsort(o, (size_t)m, sizeof *o, cmp_ord);
    /* 5. Duplicates and overlaps: same position (within 1 micrometre per mm
     * of the median step, at least 0.001 mm). */
    double *steps = malloc((size_t)(m > 1 ? m : 1) * sizeof *steps);
    if (!steps) {
        free(o);
        return err_set(e, FV_ENOMEM, "series: out of memory");
    }
    int ns = 0;
    for (int i = 1; i < m; i++)
        if (o[i].d - o[i - 1].d > 1e-3)
            steps[ns++] = o[i].d - o[i - 1].d;
    double med = 0;
    if (ns) {
        qsort(steps, (size_t)ns, sizeof *steps, cmp_double);
        med = steps[(ns - 1) / 2];
    }
    double tol = med > 0 ? fmax(1e-3, 0.01 * med) : 1e-3;
    int dups = 0, overlaps = 0, k = 0;
    size_t npix = (size_t)ref->rows * (size_t)ref->cols;
    for (int i = 0; i < m; i++) {
        if (k > 0 && o[i].d - o[k - 1].d <= tol) {
            const Slice *a = o[k - 1].s, *b = o[i].s;
            int same = a->type == b->type && memcmp(a->pix, b->pix, npix * pix_size(a->type)) == 0 &&
                       a->geo.slope == b->geo.slope && a->geo.inter == b->geo.inter;
            if (same)
                dups++;
            else
                overlaps++;
            status[o[i].idx] = SLICE_DUPLICATE;
            continue;
        }
        o[k++] = o[i];
    }
    m = k;
    if (dups)
        buf_printf(notes, "%d duplicate slice(s) dropped; ", dups);
    if (overlaps)
        buf_printf(notes,
                   "%d slice(s) at an occupied position with different pixels dropped "
                   "(kept the lowest instance number); ",
                   overlaps);
    /* 6. The step and the gaps. */
    double step = 0;
    int64_t nz = m;
    if (m > 1) {
        ns = 0;
        for (int i = 1; i < m; i++)
            steps[ns++] = o[i].d - o[i - 1].d;
        qsort(steps, (size_t)ns, sizeof *steps, cmp_double);
        /* The lower median: gaps only lengthen steps. */
        step = steps[(ns - 1) / 2];
        double lo = steps[0], hi = steps[ns - 1];
        double extent = o[m - 1].d - o[0].d;
        nz = (int64_t)llround(extent / step) + 1;
        if (nz < m) {
            free(o);
            free(steps);
            return err_set(e, FV_EFORMAT,
                           "slice positions are irregular: %d slices over %.1f mm at a %.3g mm "
                           "median step",
                           m, extent, step);
        }
        if (nz > (int64_t)m + (int64_t)m / 3 + 1) {
            free(o);
            free(steps);
            return err_set(e, FV_EFORMAT,
                           "series has gaps: %d slices over %.1f mm at a %.3g mm step would need "
                           "%lld: more than a quarter missing",
                           m, extent, step, (long long)nz);
        }
        if (nz > m) {
            int gaps = 0;
            for (int i = 1; i < m; i++)
                gaps += o[i].d - o[i - 1].d > 1.5 * step;
            buf_printf(notes, "%d gap(s) (%lld missing slice(s)) filled by linear interpolation; ",
                       gaps, (long long)(nz - m));
        } else if (hi - lo > 0.05 * step) {
            buf_printf(notes, "slice step varies from %.3g to %.3g mm: resampled to %.3g mm; ", lo,
                       hi, step);
        }
    } else {
        step = ref->geo.thickness > 0 ? ref->geo.thickness : 1;
        buf_printf(notes, "single slice: thickness %.3g mm used as the step; ", step);
    }
    free(steps);
    /* 7. Output type: int16 when every slope and intercept is an integer and
     * the values stay inside int16. */
    int exact = 1;
    double vmin = 0, vmax = 0;
    for (int i = 0; i < m; i++) {
        const Slice *s = o[i].s;
        double sl_ = s->geo.slope, in = s->geo.inter;
        if (sl_ != floor(sl_) || in != floor(in))
            exact = 0;
        double lo, hi;
        pix_range(s->type, s->pix, npix, &lo, &hi);
        double a = lo * sl_ + in, b = hi * sl_ + in;
        if (a > b) {
            double t = a;
            a = b;
            b = t;
        }
        if (i == 0 || a < vmin)
            vmin = a;
        if (i == 0 || b > vmax)
            vmax = b;
    }
    VolType vt = exact && vmin >= -32768 && vmax <= 32767 ? VOL_I16 : VOL_F32;
    if (vol_alloc(&out->vol, vt, ref->cols, ref->rows, nz, max_voxels, e)) {
        free(o);
        return err_prefix(e, "series of %d slices", m);
    }
    /* 8. Fill: output slice z sits at o[0].d + z * step; copy the real slice
     * there, or interpolate between the two around it. */
    int j = 0;
    for (int64_t z = 0; z < nz; z++) {
        double d = o[0].d + (double)z * step;
        while (j + 1 < m && o[j + 1].d <= d + tol)
            j++;
        const Slice *a = o[j].s, *b = j + 1 < m ? o[j + 1].s : NULL;
        double w = 0;
        if (b && d - o[j].d > tol)
            w = (d - o[j].d) / (o[j + 1].d - o[j].d);
        if (w > 0)
            out->n_filled++;
        size_t base = (size_t)z * npix;
        if (w == 0 && vt == VOL_I16) {
            /* A real slice into int16: integer slope and intercept (that is
             * what chose int16), no rounding needed. */
            copy_i16(a, npix, (int16_t *)out->vol.data + base);
            continue;
        }
        for (size_t q = 0; q < npix; q++) {
            double v = pix_get(a->type, a->pix, q) * a->geo.slope + a->geo.inter;
            if (w > 0)
                v = v * (1 - w) +
                    (pix_get(b->type, b->pix, q) * b->geo.slope + b->geo.inter) * w;
            if (vt == VOL_I16)
                ((int16_t *)out->vol.data)[base + q] = (int16_t)lrint(v);
            else
                ((float *)out->vol.data)[base + q] = (float)v;
        }
    }
    /* 9. Geometry: x along the row cosine (column index), y along the column
     * cosine (row index), z along the normal; LPS -> RAS. */
    const double *r = ref->geo.iop, *c = ref->geo.iop + 3, *p0 = o[0].s->geo.ipp;
    double cs = ref->geo.spacing[1], rs = ref->geo.spacing[0];
    double lps[3][4];
    for (int q = 0; q < 3; q++) {
        lps[q][0] = r[q] * cs;
        lps[q][1] = c[q] * rs;
        lps[q][2] = nrm[q] * step;
        lps[q][3] = p0[q];
    }
    for (int q = 0; q < 4; q++) {
        out->vol.affine[0][q] = -lps[0][q];
        out->vol.affine[1][q] = -lps[1][q];
        out->vol.affine[2][q] = lps[2][q];
    }
    /* In-plane drift between first and last slice: gantry tilt. */
    if (m > 1) {
        const double *pl = o[m - 1].s->geo.ipp;
        double dv[3] = {pl[0] - p0[0], pl[1] - p0[1], pl[2] - p0[2]};
        double along = dv[0] * nrm[0] + dv[1] * nrm[1] + dv[2] * nrm[2];
        double off = sqrt(fmax(0, dv[0] * dv[0] + dv[1] * dv[1] + dv[2] * dv[2] - along * along));
        if (off > 0.5)
            buf_printf(notes, "slices drift %.1f mm in-plane (gantry tilt): stacked along the "
                              "normal; ",
                       off);
    }
    Sha256 h;
    sha256_init(&h);
    for (int i = 0; i < m; i++)
        sha256_update(&h, o[i].s->sha, 32);
    sha256_final(&h, out->sha);
    out->n_used = m;
    out->step = step;
    free(o);
    return 0;
}
