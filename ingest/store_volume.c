/* ingest: a CT volume onto the corpus grid and into the corpus. */
#include "ingest_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* HU grid: clip and round to int16 (the stored CT). */
static int clip_to_i16(const Vol *src, double lo, double hi, Vol *out, FvErr *e)
{
    if (vol_alloc(out, VOL_I16, src->nx, src->ny, src->nz, vol_count(src), e))
        return -1;
    memcpy(out->affine, src->affine, sizeof out->affine);
    size_t n = (size_t)vol_count(src);
    int16_t *d = out->data;
    int16_t l = (int16_t)lo, h = (int16_t)hi;
    if (src->type == VOL_I16) {
        const int16_t *s = src->data;
        for (size_t i = 0; i < n; i++)
            d[i] = s[i] < l ? l : s[i] > h ? h : s[i];
    } else {
        const float *s = src->data;
        for (size_t i = 0; i < n; i++) {
            float v = s[i];
            d[i] = !(v >= (float)lo) ? l : v > (float)hi ? h : (int16_t)lrintf(v);
        }
    }
    return 0;
}

int ingest_ct_to_grid(Vol *v, const double spacing[3], double lo, double hi, int64_t max_voxels,
                      Vol *out, FvErr *e)
{
    memset(out, 0, sizeof *out);
    if (v->type == VOL_U8) {
        vol_free(v);
        return err_set(e, FV_EINTERNAL, "a uint8 volume is not a CT");
    }
    if (vol_reorient_canonical(v, e)) {
        vol_free(v);
        return -1;
    }
    Vol r;
    int rc = vol_resample(v, spacing, 0, max_voxels, &r, e);
    vol_free(v);
    if (rc)
        return -1;
    rc = clip_to_i16(&r, lo, hi, out, e);
    vol_free(&r);
    return rc;
}

static void hu_stats(const Vol *v, double *mn, double *mx, double *mean)
{
    const int16_t *d = v->data;
    size_t n = (size_t)vol_count(v);
    int lo = 32767, hi = -32768;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        lo = d[i] < lo ? d[i] : lo;
        hi = d[i] > hi ? d[i] : hi;
        sum += d[i];
    }
    *mn = lo;
    *mx = hi;
    *mean = n ? sum / (double)n : 0;
}

/* Source geometry at float32 precision (NIfTI-1's): DICOM decimal strings
 * and NIfTI-2 doubles describing the same grid then resample with exactly
 * the same weights, so one study read from any format lands as the same
 * tensor (differences below 1e-7 relative are not geometry). */
void ingest_affine_to_float(double a[4][4])
{
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            a[r][c] = (double)(float)a[r][c];
}

/* Stores a CT volume (HU, source geometry) for a study: skips it when the
 * study already has this volume, ignores it when the study has another.
 * Consumes v. Returns the study id (0 when nothing was stored). */
int ingest_store_volume(Ingest *g, const StudyRef *ref, Vol *v, const char *sha,
                        const char *source, const char *src_dtype, const char *notes,
                        SrcRec *srcs, int nsrc, int64_t *study_out, FvErr *e)
{
    *study_out = 0;
    int64_t sid;
    int mine = ingest_in_shard(g, ref, e);
    if (mine <= 0) {
        vol_free(v); /* another shard's study: its corpus records it */
        return mine;
    }
    if (ingest_study_get(g, ref, 0, &sid, e)) {
        vol_free(v);
        return -1;
    }
    if (sid > 0) {
        VolumeInfo vi;
        int found;
        if (corpus_volume_of(&g->corpus, sid, &vi, &found, e)) {
            vol_free(v);
            return -1;
        }
        if (found) {
            vol_free(v);
            int same = strcmp(vi.sha, sha) == 0;
            /* A known study met again (in another unit, say): its
             * identifiers from here are recorded too. */
            if (corpus_begin(&g->corpus, e) ||
                ingest_sources_commit(g, ingest_study_ids(g, ref, sid, e), srcs, nsrc,
                                      same ? NULL : "ignored",
                                      "the study already has another CT volume", sid,
                                      &g->cnt->ignored,
                               e))
                return -1;
            *study_out = sid;
            return 0;
        }
    }
    VolumeRow row;
    memset(&row, 0, sizeof row);
    ingest_affine_to_float(v->affine);
    row.src_dims[0] = v->nx;
    row.src_dims[1] = v->ny;
    row.src_dims[2] = v->nz;
    vol_spacing(v, row.src_spacing);
    memcpy(row.src_affine, v->affine, sizeof row.src_affine);
    vol_orient_code(v->affine, row.src_orient);
    Buf nb = {0};
    if (notes && *notes)
        buf_puts(&nb, notes);
    double obl = vol_obliquity(v->affine);
    if (obl > 1.0)
        buf_printf(&nb, "oblique by %.1f degrees: axes assigned to the nearest world axes; ",
                   obl);
    Vol grid;
    if (ingest_ct_to_grid(v, g->o->spacing, g->o->hu_lo, g->o->hu_hi, g->o->max_voxels, &grid,
                          e)) {
        buf_free(&nb);
        return -1;
    }
    hu_stats(&grid, &row.hu_min, &row.hu_max, &row.hu_mean);
    /* The values must be HU: a volume whose every voxel was clipped to one
     * bound (a rescale of 1e5, an intercept gone wrong) would be stored as
     * one constant, with no error and no note. */
    if (row.hu_min == row.hu_max && (row.hu_min <= g->o->hu_lo || row.hu_min >= g->o->hu_hi)) {
        vol_free(&grid);
        buf_free(&nb);
        return err_set(e, FV_EFORMAT,
                       "every voxel lies outside ingest.hu_clip %g..%g: the stored volume would "
                       "be one constant %g (check the rescale slope and intercept)",
                       g->o->hu_lo, g->o->hu_hi, row.hu_min);
    }
    char shard[64];
    if (corpus_write_shard(&g->corpus, "ct", &grid, shard, e)) {
        vol_free(&grid);
        buf_free(&nb);
        return -1;
    }
    row.sha = sha;
    row.source = source;
    row.src_dtype = src_dtype;
    while (nb.len >= 2 && nb.data[nb.len - 2] == ';')
        nb.len -= 2, nb.data[nb.len] = '\0';
    row.notes = nb.data;
    row.grid = &grid;
    row.shard = shard;
    int rc = corpus_begin(&g->corpus, e);
    if (rc == 0)
        rc = ingest_study_get(g, ref, 1, &sid, e);
    row.study_id = sid;
    /* Another ingest on this corpus may have stored the study's volume
     * since the check above: looked at again inside the (immediate, so
     * serialised) transaction, and then this one is known or ignored. */
    VolumeInfo now;
    int raced = 0;
    if (rc == 0)
        rc = corpus_volume_of(&g->corpus, sid, &now, &raced, e);
    int64_t vid;
    if (rc == 0 && !raced)
        rc = corpus_volume_put(&g->corpus, &row, &vid, e);
    rc = ingest_sources_commit(g, rc, srcs, nsrc,
                               raced && strcmp(now.sha, sha) ? "ignored" : NULL,
                               "the study already has another CT volume", sid, &g->cnt->ignored,
                               e);
    if (rc == 0 && raced) {
        *study_out = sid;
    } else if (rc == 0) {
        g->cnt->volumes++;
        *study_out = sid;
        if (nb.len)
            log_info("%s: %s", source, nb.data);
    }
    vol_free(&grid);
    buf_free(&nb);
    return rc;
}

/* Multiplies v by slope and adds inter (CT-RATE metadata rescale). */
static int vol_rescale(Vol *v, double slope, double inter, FvErr *e)
{
    if (slope == 1 && inter == 0)
        return 0;
    size_t n = (size_t)vol_count(v);
    if (v->type == VOL_I16 && slope == floor(slope) && inter == floor(inter)) {
        double a = -32768 * slope + inter, b = 32767 * slope + inter;
        const int16_t *d = v->data;
        int16_t lo = 32767, hi = -32768;
        for (size_t i = 0; i < n; i++) {
            lo = d[i] < lo ? d[i] : lo;
            hi = d[i] > hi ? d[i] : hi;
        }
        a = lo * slope + inter;
        b = hi * slope + inter;
        if (fmin(a, b) >= -32768 && fmax(a, b) <= 32767) {
            int16_t *w = v->data;
            for (size_t i = 0; i < n; i++)
                w[i] = (int16_t)(w[i] * slope + inter);
            return 0;
        }
    }
    float *f = malloc(n * sizeof *f);
    if (!f)
        return err_set(e, FV_ENOMEM, "rescale: out of memory");
    for (size_t i = 0; i < n; i++)
        f[i] = (float)(vol_get(v, (int64_t)(i % (size_t)v->nx),
                               (int64_t)((i / (size_t)v->nx) % (size_t)v->ny),
                               (int64_t)(i / ((size_t)v->nx * (size_t)v->ny))) *
                           slope +
                       inter);
    free(v->data);
    v->data = f;
    v->type = VOL_F32;
    return 0;
}

/* A CT-RATE volume with a blank header gets its geometry and rescale from
 * metadata.csv. */
int ingest_apply_ctrate_meta(Ingest *g, const NiftiHeader *h, const char *name, Vol *v,
                             Buf *notes, FvErr *e)
{
    if (h->sform_code > 0 || h->qform_code > 0)
        return 0;
    const CtrateMeta *m = ctrate_meta_find(&g->meta, name);
    if (!m)
        return err_set(e, FV_EFORMAT,
                       "blank header (no sform, no qform) and no metadata.csv row for this "
                       "volume: give CT-RATE's metadata.csv in the same run");
    if (ctrate_meta_affine(m, v->affine, e))
        return -1;
    if (m->has_rescale && !h->scaled) {
        if (vol_rescale(v, m->slope, m->inter, e))
            return -1;
    }
    buf_puts(notes, "blank header: geometry and rescale rebuilt from metadata.csv; ");
    return 0;
}
