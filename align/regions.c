#include "regions.h"

#include <math.h>
#include <string.h>

/* Adds the run [x0, x1) of label v on row (z, y). Rows arrive in increasing
 * (z, y) order, so z1 only grows and z0 is set once. */
static inline void run_add(LabelStats *st, int v, int64_t z, int64_t y, int64_t x0, int64_t x1)
{
    Box *b = &st->box[v];
    if (st->count[v] == 0) {
        *b = (Box){z, z + 1, y, y + 1, x0, x1};
    } else {
        b->z1 = z + 1;
        if (y < b->y0)
            b->y0 = y;
        if (y + 1 > b->y1)
            b->y1 = y + 1;
        if (x0 < b->x0)
            b->x0 = x0;
        if (x1 > b->x1)
            b->x1 = x1;
    }
    st->count[v] += x1 - x0;
}

/* Index of the first (lowest-addressed) non-zero byte of a word loaded by
 * memcpy, d != 0. */
static inline int first_diff_byte(uint64_t d)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return __builtin_ctzll(d) >> 3;
#else
    unsigned char b[8];
    memcpy(b, &d, 8);
    int i = 0;
    while (!b[i])
        i++;
    return i;
#endif
}

void regions_scan(const uint8_t *mask, int64_t nz, int64_t ny, int64_t nx, LabelStats *st)
{
    memset(st, 0, sizeof *st);
    for (int64_t z = 0; z < nz; z++) {
        for (int64_t y = 0; y < ny; y++) {
            const uint8_t *p = mask + (z * ny + y) * nx;
            int64_t x = 0;
            while (x < nx) {
                uint8_t v = p[x];
                int64_t start = x++;
                /* Skip 8 equal bytes at a time; at the first word that
                 * differs, its lowest differing byte ends the run. */
                uint64_t pattern = (uint64_t)v * 0x0101010101010101ull;
                int ended = 0;
                while (x + 8 <= nx) {
                    uint64_t w;
                    memcpy(&w, p + x, 8);
                    if (w != pattern) {
                        x += first_diff_byte(w ^ pattern);
                        ended = 1;
                        break;
                    }
                    x += 8;
                }
                while (!ended && x < nx && p[x] == v)
                    x++;
                run_add(st, v, z, y, start, x);
            }
        }
    }
}

void regions_scan_ref(const uint8_t *mask, int64_t nz, int64_t ny, int64_t nx, LabelStats *st)
{
    memset(st, 0, sizeof *st);
    for (int64_t z = 0; z < nz; z++)
        for (int64_t y = 0; y < ny; y++)
            for (int64_t x = 0; x < nx; x++) {
                int v = mask[(z * ny + y) * nx + x];
                Box *b = &st->box[v];
                if (st->count[v]++ == 0) {
                    *b = (Box){z, z + 1, y, y + 1, x, x + 1};
                    continue;
                }
                if (z < b->z0) b->z0 = z;
                if (z + 1 > b->z1) b->z1 = z + 1;
                if (y < b->y0) b->y0 = y;
                if (y + 1 > b->y1) b->y1 = y + 1;
                if (x < b->x0) b->x0 = x;
                if (x + 1 > b->x1) b->x1 = x + 1;
            }
}

int box_whole(const Box *b, const int64_t dims[3])
{
    return b->z0 > 0 && b->z1 < dims[0] && b->y0 > 0 && b->y1 < dims[1] && b->x0 > 0 &&
           b->x1 < dims[2];
}

/* Grows region r by the box and voxels of another region. */
static void region_add(Region *r, const Box *b, int64_t voxels)
{
    if (voxels <= 0)
        return;
    if (r->voxels == 0) {
        r->box = *b;
    } else {
        if (b->z0 < r->box.z0) r->box.z0 = b->z0;
        if (b->z1 > r->box.z1) r->box.z1 = b->z1;
        if (b->y0 < r->box.y0) r->box.y0 = b->y0;
        if (b->y1 > r->box.y1) r->box.y1 = b->y1;
        if (b->x0 < r->box.x0) r->box.x0 = b->x0;
        if (b->x1 > r->box.x1) r->box.x1 = b->x1;
    }
    r->voxels += voxels;
}

void regions_merge(const Ontology *o, const LabelStats *st, const int64_t dims[3],
                   const double spacing[3], const double margin_mm[3], Region *out,
                   Region *uni)
{
    double voxel_ml = spacing[0] * spacing[1] * spacing[2] / 1000.0;
    memset(out, 0, (size_t)o->n_anat * sizeof *out);
    memset(uni, 0, sizeof *uni);
    /* Anatomies with masks of their own first: the others are built from them. */
    for (int a = 0; a < o->n_anat; a++) {
        const Anatomy *an = &o->anat[a];
        for (int k = 0; k < an->n_ts; k++) {
            int id = an->ts_ids[k];
            if (id > 0 && id < REGIONS_NLABELS)
                region_add(&out[a], &st->box[id], st->count[id]);
        }
    }
    for (int a = 0; a < o->n_anat; a++) {
        const Anatomy *an = &o->anat[a];
        if (an->n_ts)
            continue;
        for (int k = 0; k < an->n_region_of; k++) {
            const Anatomy *part = &o->anat[an->region_of[k]];
            /* Labels belong to one anatomy each, so the parts are disjoint
             * and their voxel counts add up. */
            if (part->n_ts)
                region_add(&out[a], &out[an->region_of[k]].box, out[an->region_of[k]].voxels);
        }
    }
    /* The union: every anatomy with a mask of its own that a task-carrying
     * anatomy is made of, each counted once. */
    for (int a = 0; a < o->n_anat; a++) {
        const Anatomy *an = &o->anat[a];
        int in_union = an->n_ts && an->main;
        for (int b = 0; b < o->n_anat && an->n_ts && !in_union; b++) {
            const Anatomy *bn = &o->anat[b];
            if (!bn->main || bn->n_ts)
                continue;
            for (int k = 0; k < bn->n_region_of && !in_union; k++)
                in_union = bn->region_of[k] == a;
        }
        if (in_union)
            region_add(uni, &out[a].box, out[a].voxels);
    }
    for (int a = 0; a < o->n_anat; a++) {
        out[a].volume_ml = (double)out[a].voxels * voxel_ml;
        out[a].whole = out[a].voxels > 0 && box_whole(&out[a].box, dims);
    }
    uni->volume_ml = (double)uni->voxels * voxel_ml;
    if (uni->voxels > 0) {
        uni->whole = box_whole(&uni->box, dims);
        int64_t m[3];
        for (int i = 0; i < 3; i++)
            m[i] = spacing[i] > 0 ? (int64_t)lround(margin_mm[i] / spacing[i]) : 0;
        Box *b = &uni->box;
        b->z0 = b->z0 - m[0] < 0 ? 0 : b->z0 - m[0];
        b->y0 = b->y0 - m[1] < 0 ? 0 : b->y0 - m[1];
        b->x0 = b->x0 - m[2] < 0 ? 0 : b->x0 - m[2];
        b->z1 = b->z1 + m[0] > dims[0] ? dims[0] : b->z1 + m[0];
        b->y1 = b->y1 + m[1] > dims[1] ? dims[1] : b->y1 + m[1];
        b->x1 = b->x1 + m[2] > dims[2] ? dims[2] : b->x1 + m[2];
    }
}
