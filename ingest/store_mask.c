/* ingest: a segmentation mask onto its CT's grid and into the corpus. */
#include "ingest_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mask.h"

int ingest_same_geometry(int64_t nx, int64_t ny, int64_t nz, const double a[4][4],
                         const int64_t dims[3], const double b[4][4])
{
    if (nx != dims[0] || ny != dims[1] || nz != dims[2])
        return 0;
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            if (fabs(a[r][c] - b[r][c]) > 1e-3 * (c == 3 ? 10 : 1))
                return 0;
    return 1;
}

/* In the first pass, puts off a mask that store_mask could not attach
 * because its study has no CT volume yet: its unit is read again once every
 * unit has been read (nothing is recorded for the mask now, so the second
 * reading takes it as new). Returns 1 when put off. */
int ingest_mask_defer(Ingest *g, const Unit *u, int no_volume)
{
    if (!g->defer_masks || !no_volume)
        return 0;
    int have = 0;
    for (int i = 0; i < g->n_deferred && !have; i++)
        have = g->deferred[i] == u;
    if (!have) {
        if (arr_reserve(&g->deferred, &g->cap_deferred, g->n_deferred, sizeof *g->deferred, 16))
            return 0; /* the mask fails now, as without deferral */
        g->deferred[g->n_deferred++] = u;
    }
    g->masks_deferred++;
    log_debug("%s: no CT volume for this mask's study yet: tried again at the end of the run",
              u->path);
    return 1;
}

/* Stores a mask (uint8 TotalSegmentator ids, source geometry) for the
 * study's volume. Consumes m. *no_volume is set when it fails because the
 * study has no CT volume (yet). */
int ingest_store_mask(Ingest *g, const StudyRef *ref, Vol *m, int blank_header, const char *sha,
                      const char *source, Buf *notes, SrcRec *srcs, int nsrc, int *no_volume,
                      FvErr *e)
{
    *no_volume = 0;
    int64_t sid;
    int mine = ingest_in_shard(g, ref, e);
    if (mine <= 0) {
        vol_free(m); /* another shard's study: its corpus records it */
        return mine;
    }
    if (ingest_study_get(g, ref, 0, &sid, e)) {
        vol_free(m);
        return -1;
    }
    VolumeInfo vi;
    int found = 0;
    if (sid > 0 && corpus_volume_of(&g->corpus, sid, &vi, &found, e)) {
        vol_free(m);
        return -1;
    }
    if (!found) {
        vol_free(m);
        *no_volume = 1;
        return err_set(e, FV_ENOTFOUND,
                       "no CT volume for this mask's study (yet): ingest the volume first, "
                       "then run again");
    }
    char have[65];
    if (corpus_mask_sha(&g->corpus, sid, have, e)) {
        vol_free(m);
        return -1;
    }
    if (have[0]) {
        vol_free(m);
        int same = strcmp(have, sha) == 0;
        if (corpus_begin(&g->corpus, e))
            return -1;
        return ingest_sources_commit(g, ingest_study_ids(g, ref, sid, e), srcs, nsrc,
                                     same ? NULL : "ignored",
                                     "the study already has another mask", sid, &g->cnt->ignored,
                                     e);
    }
    ingest_affine_to_float(m->affine);
    /* Geometry: a blank mask header of the CT's size takes the CT's
     * geometry (the mask was made from that file). */
    if (blank_header && m->nx == vi.src_dims[0] && m->ny == vi.src_dims[1] &&
        m->nz == vi.src_dims[2]) {
        memcpy(m->affine, vi.src_affine, sizeof m->affine);
        buf_puts(notes, "blank mask header: the CT's geometry assumed; ");
    }
    Vol grid;
    memset(&grid, 0, sizeof grid);
    grid.nx = vi.dims[0];
    grid.ny = vi.dims[1];
    grid.nz = vi.dims[2];
    memcpy(grid.affine, vi.affine, sizeof grid.affine);
    int resampled = 0, rc;
    Vol out;
    memset(&out, 0, sizeof out);
    /* On the CT's own grid (in any orientation), the same reorientation and
     * nearest resampling give the corpus grid exactly; otherwise the mask
     * is resampled onto the corpus grid through world coordinates. */
    rc = vol_reorient_canonical(m, e);
    if (rc == 0)
        rc = vol_resample(m, g->o->spacing, 1, g->o->max_voxels, &out, e);
    if (rc == 0 && !ingest_same_geometry(out.nx, out.ny, out.nz, out.affine, vi.dims, vi.affine)) {
        vol_free(&out);
        buf_puts(notes, "mask grid differs from the CT's: resampled onto the CT grid (nearest); ");
        rc = vol_resample_to(m, &grid, 1, &out, e);
        resampled = 1;
    }
    vol_free(m);
    if (rc)
        return -1;
    int64_t hist[256];
    mask_histogram(&out, hist);
    Buf labels = {0};
    buf_putc(&labels, '[');
    int nl = 0;
    for (int i = 1; i < 256; i++)
        if (hist[i])
            buf_printf(&labels, "%s%d", nl++ ? "," : "", i);
    buf_putc(&labels, ']');
    char shard[64];
    rc = corpus_write_shard(&g->corpus, "mask", &out, shard, e);
    vol_free(&out);
    if (rc == 0)
        rc = corpus_begin(&g->corpus, e);
    /* Another ingest may have stored the study's mask since the check
     * above: looked at again inside the serialised transaction. */
    char now[65] = "";
    if (rc == 0)
        rc = corpus_mask_sha(&g->corpus, sid, now, e);
    if (rc == 0)
        rc = ingest_study_ids(g, ref, sid, e);
    if (rc == 0 && !now[0])
        rc = corpus_mask_put(&g->corpus, sid, vi.id, sha, source, shard, labels.data, resampled,
                             e);
    rc = ingest_sources_commit(g, rc, srcs, nsrc, now[0] && strcmp(now, sha) ? "ignored" : NULL,
                               "the study already has another mask", sid,
                               now[0] ? &g->cnt->ignored : NULL, e);
    if (rc == 0 && !now[0]) {
        g->cnt->masks++;
        if (notes->len)
            log_info("%s: %s", source, notes->data);
    }
    buf_free(&labels);
    return rc;
}
