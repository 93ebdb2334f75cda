/* ingest: a unit's NIfTI volumes and masks (single files, .hdr/.img pairs,
 * per-class mask folders). */
#include "ingest_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gz.h"
#include "log.h"
#include "mask.h"
#include "sha256.h"

static void nifti_dtype_desc(const NiftiHeader *h, char *out, size_t n)
{
    const char *d = nifti_dtype_name(h->datatype);
    snprintf(out, n, "%s%s", d ? d : "?", h->big ? " big-endian" : "");
}

static void process_mask_vol(Ingest *g, UnitState *us, Held *h, Vol *m, const NiftiHeader *hdr,
                             const unsigned char *hb, size_t hl, Held *img);

/* The header of a NIfTI member (gzip or not) without reading its data: 0
 * when it parses. */
static int peek_header(const Held *h, NiftiHeader *hdr)
{
    unsigned char head[540];
    const unsigned char *p = h->data;
    size_t n = h->len;
    FvErr e = {0};
    if (!p)
        return -1;
    if (gz_is_gzip(p, n)) {
        size_t got = 0;
        if (gz_peek(p, n, head, sizeof head, &got, &e))
            return -1;
        p = head;
        n = got;
    }
    return n >= 348 && nifti_header_parse(p, n, hdr, &e) == 0 ? 0 : -1;
}

int ingest_nifti_maybe_ct(const Held *h)
{
    NiftiHeader hdr;
    return peek_header(h, &hdr) != 0 || hdr.datatype != 2 ||
           (hdr.scaled && (hdr.scl_slope != 1 || hdr.scl_inter != 0));
}

void ingest_process_nifti(Ingest *g, UnitState *us, Held *h, Held *img)
{
    FvErr e = {0};
    NiftiHeader hdr;
    Vol v;
    unsigned char *hb = NULL;
    size_t hl = 0;
    /* Mask or CT by content first, the name only breaking ties: a CT in a
     * folder named seg/ or masks/ is a CT, a uint8 label volume in ct/ is a
     * mask. Unscaled uint8 is read as labels directly (the common mask,
     * no conversion); anything else as CT, then judged by its values. */
    int name_mask = h->kind == H_MASK;
    int as_mask = !ingest_nifti_maybe_ct(h);
    if (nifti_load(h->data, h->len, img ? img->data : NULL, img ? img->len : 0, as_mask,
                   g->o->max_voxels, &hdr, &v, &hb, &hl, &e)) {
        ingest_held_fail(g, h, name_mask ? "mask" : "nifti", &e);
        if (img)
            ingest_held_record(g, img, name_mask ? "mask" : "nifti", "failed", 0);
        return;
    }
    NiftiLabel *labels = NULL;
    int nl = nifti_label_table(&hdr, hb, hl, &labels, &e);
    free(labels);
    err_clear(&e);
    double witness;
    int verdict = nl > 0 ? 1 : mask_content_verdict(&v, &witness);
    int want_mask = verdict < 0 ? name_mask : verdict;
    if (nl > 0)
        log_debug("%s: label table found: read as a mask", h->name);
    else if (verdict >= 0 && want_mask != name_mask)
        log_info("%s: read as a %s by its content (%s %g), whatever its name says", h->name,
                 want_mask ? "mask" : "CT volume", want_mask ? "integer labels up to" : "a value of",
                 witness);
    if (want_mask && !as_mask && mask_to_labels(&v, &e)) {
        vol_free(&v);
        free(hb);
        ingest_held_fail(g, h, "mask", &e);
        if (img)
            ingest_held_record(g, img, "mask", "failed", 0);
        return;
    }
    if (!want_mask && as_mask) {
        /* a blank uint8 volume that its name calls a CT */
        vol_free(&v);
        free(hb);
        hb = NULL;
        if (nifti_load(h->data, h->len, img ? img->data : NULL, img ? img->len : 0, 0,
                       g->o->max_voxels, &hdr, &v, &hb, &hl, &e)) {
            ingest_held_fail(g, h, "nifti", &e);
            if (img)
                ingest_held_record(g, img, "nifti", "failed", 0);
            return;
        }
    }
    as_mask = want_mask;
    h->kind = as_mask ? H_MASK : H_VOLUME;
    free(h->data);
    h->data = NULL;
    if (as_mask) {
        process_mask_vol(g, us, h, &v, &hdr, hb, hl, img);
        free(hb);
        return;
    }
    free(hb);
    StudyRef ref;
    if (!ingest_own_study(h->name, &ref) && ingest_unit_study(g, us, h->name, &ref, &e)) {
        vol_free(&v);
        ingest_held_fail(g, h, "nifti", &e);
        return;
    }
    Buf notes = {0};
    if (!strcmp(ref.dataset, "ctrate") && ingest_apply_ctrate_meta(g, &hdr, h->name, &v, &notes, &e)) {
        vol_free(&v);
        buf_free(&notes);
        ingest_held_fail(g, h, "nifti", &e);
        return;
    }
    if (hdr.ext_note[0])
        buf_printf(&notes, "%s; ", hdr.ext_note);
    if (hdr.code_note[0])
        buf_printf(&notes, "%s; ", hdr.code_note);
    char dtype[40], desc[4400];
    nifti_dtype_desc(&hdr, dtype, sizeof dtype);
    ingest_describe(h->source, h->member, desc, sizeof desc);
    char sha[65];
    memcpy(sha, h->sha, 65);
    SrcRec srcs[2] = {{h->source, h->member, "nifti", "ok", h->sha, h->size},
                      {NULL, NULL, "nifti", "ok", NULL, 0}};
    int nsrc = 1;
    if (img) {
        srcs[1] = (SrcRec){img->source, img->member, "nifti", "ok", img->sha, img->size};
        nsrc = 2;
        /* The pair's identity is both files. */
        char both[130];
        snprintf(both, sizeof both, "%s%s", h->sha, img->sha);
        sha256_hex(both, 128, sha);
    }
    int64_t sid;
    if (ingest_store_volume(g, &ref, &v, sha, desc, dtype, notes.data, srcs, nsrc, &sid, &e)) {
        ingest_held_fail(g, h, "nifti", &e);
        if (img)
            ingest_held_record(g, img, "nifti", "failed", 0);
    } else {
        h->done = 1;
        if (img)
            img->done = 1;
    }
    buf_free(&notes);
}

static void process_mask_vol(Ingest *g, UnitState *us, Held *h, Vol *m, const NiftiHeader *hdr,
                             const unsigned char *hb, size_t hl, Held *img)
{
    FvErr e = {0};
    Buf notes = {0};
    NiftiLabel *labels = NULL;
    int nl = nifti_label_table(hdr, hb, hl, &labels, &e);
    if (nl > 0 && mask_remap(m, labels, nl, &g->ts, &notes, &e)) {
        free(labels);
        vol_free(m);
        buf_free(&notes);
        ingest_held_fail(g, h, "mask", &e);
        return;
    }
    free(labels);
    StudyRef ref;
    if (!ingest_own_study(h->name, &ref) && ingest_unit_study(g, us, h->name, &ref, &e)) {
        vol_free(m);
        buf_free(&notes);
        ingest_held_fail(g, h, "mask", &e);
        return;
    }
    char desc[4400];
    ingest_describe(h->source, h->member, desc, sizeof desc);
    SrcRec srcs[2] = {{h->source, h->member, "mask", "ok", h->sha, h->size},
                      {NULL, NULL, "mask", "ok", NULL, 0}};
    int nsrc = 1;
    if (img) {
        srcs[1] = (SrcRec){img->source, img->member, "mask", "ok", img->sha, img->size};
        nsrc = 2;
    }
    int blank = hdr->sform_code <= 0 && hdr->qform_code <= 0, no_volume;
    if (ingest_store_mask(g, &ref, m, blank, h->sha, desc, &notes, srcs, nsrc, &no_volume, &e)) {
        if (ingest_mask_defer(g, us->u, no_volume)) {
            h->done = 1;
            if (img)
                img->done = 1;
        } else {
            ingest_held_fail(g, h, "mask", &e);
            if (img)
                ingest_held_record(g, img, "mask", "failed", 0);
        }
    } else {
        h->done = 1;
        if (img)
            img->done = 1;
    }
    buf_free(&notes);
}

/* Per-class masks (seg/<class>.nii.gz): all the unit's parts merged. */
void ingest_process_class_masks(Ingest *g, UnitState *us)
{
    int first = -1, nparts = 0;
    for (int i = 0; i < us->nh; i++)
        if (us->h[i].kind == H_CLASSMASK && !us->h[i].done) {
            if (first < 0)
                first = i;
            nparts++;
        }
    if (first < 0)
        return;
    FvErr e = {0};
    Vol merged;
    memset(&merged, 0, sizeof merged);
    int64_t overlaps = 0;
    int ok = 1, blank = 0, no_volume;
    Sha256 hs;
    sha256_init(&hs);
    SrcRec *srcs = calloc((size_t)nparts, sizeof *srcs);
    int ns = 0;
    for (int i = first; i < us->nh && ok && srcs; i++) {
        Held *h = &us->h[i];
        if (h->kind != H_CLASSMASK || h->done)
            continue;
        NiftiHeader hdr;
        Vol part;
        if (nifti_load(h->data, h->len, NULL, 0, 1, g->o->max_voxels, &hdr, &part, NULL, NULL,
                       &e)) {
            ingest_held_fail(g, h, "mask", &e);
            continue;
        }
        free(h->data);
        h->data = NULL;
        int id = ts_class_id(&g->ts, strrchr(h->name, '/') ? strrchr(h->name, '/') + 1 : h->name);
        if (!merged.data) {
            if (vol_alloc(&merged, VOL_U8, part.nx, part.ny, part.nz, g->o->max_voxels, &e)) {
                vol_free(&part);
                ingest_held_fail(g, h, "mask", &e);
                ok = 0;
                break;
            }
            memcpy(merged.affine, part.affine, sizeof merged.affine);
            blank = hdr.sform_code <= 0 && hdr.qform_code <= 0;
        } else if (!ingest_same_geometry(part.nx, part.ny, part.nz, part.affine,
                                  (int64_t[3]){merged.nx, merged.ny, merged.nz}, merged.affine)) {
            vol_free(&part);
            ingest_fail_msg(g, h->source, h->member,
                     "class mask grid differs from the other class masks of the study");
            ingest_held_record(g, h, "mask", "failed", 0);
            continue;
        }
        /* Binary files: any non-zero voxel is the class. */
        if (mask_merge_class(&merged, &part, id, &overlaps, &e)) {
            vol_free(&part);
            ingest_held_fail(g, h, "mask", &e);
            continue;
        }
        vol_free(&part);
        sha256_update(&hs, h->sha_raw, 32);
        srcs[ns++] = (SrcRec){h->source, h->member, "mask", "ok", h->sha, h->size};
    }
    if (!srcs || !ok || !ns) {
        free(srcs);
        vol_free(&merged);
        return;
    }
    Buf notes = {0};
    buf_printf(&notes, "%d per-class mask files merged; ", ns);
    if (overlaps)
        buf_printf(&notes, "%lld voxels claimed by two classes kept their first; ",
                   (long long)overlaps);
    unsigned char d[32];
    char sha[65];
    sha256_final(&hs, d);
    sha256_to_hex(d, sha);
    Held *h0 = &us->h[first];
    StudyRef ref;
    char folder[4200];
    snprintf(folder, sizeof folder, "%s", h0->name);
    char *slash = strrchr(folder, '/');
    if (slash)
        *slash = '\0';
    char desc[4400];
    snprintf(desc, sizeof desc, "%s:%s/ (%d class masks)", us->u->path, ingest_rel_name(us, folder), ns);
    if (!ingest_own_study(folder, &ref) && ingest_unit_study(g, us, folder, &ref, &e)) {
        for (int i = 0; i < ns; i++)
            ingest_record_source(g, srcs[i].path, srcs[i].member, srcs[i].sha, srcs[i].size, "mask",
                          "failed", 0);
        ingest_fail(g, h0->source, folder, &e);
    } else if (ingest_store_mask(g, &ref, &merged, blank, sha, desc, &notes, srcs, ns, &no_volume, &e) &&
               !ingest_mask_defer(g, us->u, no_volume)) {
        ingest_fail(g, h0->source, folder, &e);
        for (int i = 0; i < ns; i++)
            ingest_record_source(g, srcs[i].path, srcs[i].member, srcs[i].sha, srcs[i].size, "mask",
                          "failed", 0);
    }
    for (int i = first; i < us->nh; i++)
        if (us->h[i].kind == H_CLASSMASK)
            us->h[i].done = 1;
    free(srcs);
    buf_free(&notes);
}
