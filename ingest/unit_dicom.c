/* ingest: a unit's DICOM images: headers, series choice, stacking. */
#include "ingest_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "series.h"
#include "sha256.h"

static void add_unit_phi(UnitState *us, const DcmImage *im)
{
    for (int i = 0; i < im->nphi; i++) {
        int dup = 0;
        for (int k = 0; k < us->nphi && !dup; k++)
            dup = us->phi[k].kind == im->phi[i].kind &&
                  !strcmp(us->phi[k].value, im->phi[i].value);
        if (!dup && us->nphi < (int)(sizeof us->phi / sizeof us->phi[0]))
            us->phi[us->nphi++] = im->phi[i];
    }
}

/* Parses every DICOM header of the unit: studies, identifying values. */
void ingest_dicom_headers(Ingest *g, UnitState *us)
{
    char studies[8][68];
    int ns = 0;
    for (int i = 0; i < us->nh; i++) {
        Held *h = &us->h[i];
        if (h->kind != H_DICOM)
            continue;
        FvErr e = {0};
        if (dcm_parse(&h->dcm, h->data, h->len, g->member_limit, &e) ||
            dcm_image_info(&h->dcm, &h->im, &e)) {
            if (h->dcm.el || h->dcm.owned)
                dcm_free(&h->dcm);
            h->parse_failed = 1;
            if (!h->known)
                ingest_held_fail(g, h, "dicom", &e);
            continue;
        }
        h->parsed = 1;
        add_unit_phi(us, &h->im);
        if (!h->im.study_uid[0])
            continue;
        int seen = 0;
        for (int k = 0; k < ns && k < 8 && !seen; k++)
            seen = !strcmp(studies[k], h->im.study_uid);
        if (!seen) {
            if (ns < 8)
                snprintf(studies[ns], 68, "%s", h->im.study_uid);
            ns++;
            if (ns == 1) {
                snprintf(us->dicom_study, sizeof us->dicom_study, "%s", h->im.study_uid);
                snprintf(us->dicom_patient, sizeof us->dicom_patient, "%s", h->im.patient_id);
                snprintf(us->dicom_accession, sizeof us->dicom_accession, "%s",
                         h->im.accession);
            }
        }
    }
    us->n_dicom_studies = ns;
}

/* Decodes, groups and stacks the unit's DICOM images into volumes. */
void ingest_dicom_volumes(Ingest *g, UnitState *us)
{
    int any_new = 0, n_img = 0;
    for (int i = 0; i < us->nh; i++) {
        Held *h = &us->h[i];
        if (h->kind == H_DICOM && h->parsed && !h->im.is_sr) {
            n_img++;
            any_new |= !h->known;
        }
    }
    if (!n_img)
        return;
    if (!any_new) {
        for (int i = 0; i < us->nh; i++)
            if (us->h[i].kind == H_DICOM && us->h[i].parsed && !us->h[i].im.is_sr)
                us->h[i].done = 1; /* all recorded before */
        return;
    }
    /* Decode every image of the unit (the known ones too: a series may be
     * partly new). */
    Slice *sl = NULL;
    int nsl = 0, cap = 0;
    int64_t held = 0, budget = g->o->max_voxels * 2;
    for (int i = 0; i < us->nh; i++) {
        Held *h = &us->h[i];
        if (h->kind != H_DICOM || !h->parsed || h->im.is_sr)
            continue;
        FvErr e = {0};
        const DcmImage *im = &h->im;
        if (dcm_frames_check(im, &e)) {
            ingest_held_fail(g, h, "dicom", &e);
            continue;
        }
        if (!im->has_pixels) {
            err_set(&e, FV_EFORMAT, "DICOM image without pixel data (SOP class %s)",
                    im->sop_class[0] ? im->sop_class : "unknown");
            ingest_held_fail(g, h, "dicom", &e);
            continue;
        }
        int64_t px = (int64_t)im->rows * im->cols * im->frames;
        if (px > budget - held) {
            err_set(&e, FV_ELIMIT,
                    "the unit holds more than %lld voxels of DICOM images (2 x ingest.max_voxels)",
                    (long long)budget);
            ingest_held_fail(g, h, "dicom", &e);
            continue;
        }
        for (int k = 0; k < im->frames; k++) {
            if (arr_reserve(&sl, &cap, nsl, sizeof *sl, 256)) {
                err_set(&e, FV_ENOMEM, "out of memory");
                break;
            }
            Slice *s = &sl[nsl];
            memset(s, 0, sizeof *s);
            s->pix = malloc((size_t)im->rows * (size_t)im->cols * (size_t)(im->bits_alloc / 8));
            if (!s->pix) {
                err_set(&e, FV_ENOMEM, "out of memory");
                break;
            }
            if (dcm_decode_frame(&h->dcm, im, k, s->pix, &s->type, &e)) {
                free(s->pix);
                break;
            }
            s->member = i;
            s->frame = k;
            snprintf(s->study_uid, sizeof s->study_uid, "%s", im->study_uid);
            snprintf(s->series_uid, sizeof s->series_uid, "%s", im->series_uid);
            snprintf(s->modality, sizeof s->modality, "%s", im->modality);
            s->localizer = im->localizer;
            s->instance = im->instance;
            s->series_number = im->series_number;
            if (dcm_frame_geo(&h->dcm, im, k, &s->geo, &e)) {
                char msg[sizeof e.msg];
                snprintf(msg, sizeof msg, "%s", e.msg);
                if (im->frames > 1)
                    err_set(&e, e.code, "frame %d: %s", k + 1, msg);
                free(s->pix);
                break;
            }
            s->rows = im->rows;
            s->cols = im->cols;
            memcpy(s->sha, h->sha_raw, 32);
            nsl++;
        }
        if (e.code) {
            /* Frames of this file decoded so far are dropped with it. */
            while (nsl > 0 && sl[nsl - 1].member == i)
                slice_free(&sl[--nsl]);
            ingest_held_fail(g, h, "dicom", &e);
            continue;
        }
        held += px;
        /* The pixels are decoded: the file's bytes and parsed header are
         * no longer needed (h->im keeps copies of what is used). */
        snprintf(h->ts, sizeof h->ts, "%s", h->dcm.ts);
        dcm_free(&h->dcm);
        h->parsed = 0;
        h->decoded = 1;
        free(h->data);
        h->data = NULL;
    }
    /* Per study: choose the series, stack it, store it. */
    int *done_study = calloc((size_t)(nsl ? nsl : 1), sizeof *done_study);
    Slice **pick = malloc((size_t)(nsl ? nsl : 1) * sizeof *pick);
    for (int a = 0; done_study && pick && a < nsl; a++) {
        if (done_study[a])
            continue;
        int np = 0;
        for (int b = a; b < nsl; b++)
            if (!done_study[b] && !strcmp(sl[b].study_uid, sl[a].study_uid)) {
                done_study[b] = 1;
                pick[np++] = &sl[b];
            }
        Held *h0 = &us->h[sl[a].member];
        Buf notes = {0};
        FvErr e = {0};
        const char *uid = NULL;
        char where[600];
        /* Members of the study: where its files live. */
        char dir[512];
        snprintf(dir, sizeof dir, "%s", ingest_rel_name(us, h0->name));
        char *slash = strrchr(dir, '/');
        if (slash)
            slash[1] = '\0';
        else
            snprintf(dir, sizeof dir, "./");
        if (series_choose(pick, np, &uid, &notes, &e)) {
            snprintf(where, sizeof where, "%s (%d DICOM images)", dir, np);
            ingest_fail(g, us->u->path, where, &e);
            for (int k = 0; k < np; k++) {
                Held *h = &us->h[pick[k]->member];
                ingest_held_record(g, h, "dicom", "failed", 0);
            }
            buf_free(&notes);
            continue;
        }
        /* The chosen series' slices. */
        int ns = 0;
        Slice **ser = malloc((size_t)np * sizeof *ser);
        int *sst = malloc((size_t)np * sizeof *sst);
        if (!ser || !sst) {
            free(ser);
            free(sst);
            buf_free(&notes);
            break;
        }
        char series_uid[68];
        snprintf(series_uid, sizeof series_uid, "%s", uid);
        int series_number = 0;
        for (int k = 0; k < np; k++)
            if (!strcmp(pick[k]->series_uid, series_uid)) {
                ser[ns++] = pick[k];
                series_number = pick[k]->series_number;
            }
        const char *scout_why;
        snprintf(where, sizeof where, "%s (series %d, %d images)", dir, series_number, ns);
        char desc[5200];
        snprintf(desc, sizeof desc, "%s:%s (series %d, %d images)", us->u->path, dir,
                 series_number, ns);
        if (series_is_scout(ser, ns, &scout_why)) {
            log_warn("%s:%s: %s", us->u->path, where, scout_why);
            for (int k = 0; k < np; k++)
                ingest_held_ignore(g, &us->h[pick[k]->member], "dicom",
                                   "a series of scout/localizer images only");
            free(ser);
            free(sst);
            buf_free(&notes);
            continue;
        }
        SeriesOut so;
        if (series_assemble(ser, ns, g->o->max_voxels, &so, sst, &notes, &e)) {
            ingest_fail(g, us->u->path, where, &e);
            for (int k = 0; k < np; k++)
                ingest_held_record(g, &us->h[pick[k]->member], "dicom", "failed", 0);
            free(ser);
            free(sst);
            buf_free(&notes);
            continue;
        }
        /* The volume holds the pixels now: the study's slices can go
         * before the volume is resampled (memory: one copy, not two). */
        for (int k = 0; k < np; k++)
            slice_free(pick[k]);
        /* Member statuses: ok when any of its frames is used; ignored for
         * scouts, duplicates, other series. */
        SrcRec *srcs = calloc((size_t)np, sizeof *srcs);
        int nsrc = 0;
        for (int k = 0; srcs && k < np; k++) {
            int mi = pick[k]->member;
            int used = 0, seen = 0;
            const char *why = "another series of the study was chosen";
            for (int q = 0; q < ns; q++)
                if (ser[q]->member == mi) {
                    used |= sst[q] == SLICE_USED;
                    why = sst[q] == SLICE_SCOUT       ? "a scout/localizer image"
                          : sst[q] == SLICE_DUPLICATE ? "a duplicate of another slice"
                          : sst[q] == SLICE_NOGEO     ? "an image without position"
                                                      : why;
                }
            for (int q = 0; q < nsrc && !seen; q++)
                seen = srcs[q].sha == us->h[mi].sha;
            if (seen)
                continue;
            Held *h = &us->h[mi];
            srcs[nsrc++] = (SrcRec){h->source, h->member, "dicom", used ? "ok" : "ignored",
                                    h->sha, h->size, used ? NULL : why};
        }
        char sha[65];
        sha256_to_hex(so.sha, sha);
        char dtype[96];
        snprintf(dtype, sizeof dtype, "DICOM %s",
                 h0->ts[0] ? (dcm_ts_name(h0->ts) ? dcm_ts_name(h0->ts) : h0->ts)
                           : "without transfer syntax");
        StudyRef ref;
        memset(&ref, 0, sizeof ref);
        ref.dataset = "hospital";
        snprintf(ref.src, sizeof ref.src, "%s", sl[a].study_uid);
        ref.src_kind = DEID_ID_STUDY_UID;
        snprintf(ref.patient, sizeof ref.patient, "%s", h0->im.patient_id);
        snprintf(ref.accession, sizeof ref.accession, "%s", h0->im.accession);
        snprintf(ref.alias, sizeof ref.alias, "%s", us->u->name);
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", us->u->path, h0->name);
        ingest_split_from_path(path, ref.split);
        if (!ref.src[0]) {
            /* No StudyInstanceUID: the unit names the study. */
            snprintf(ref.src, sizeof ref.src, "%s", us->u->name);
            ref.src_kind = NULL;
        }
        int64_t sid;
        if (!srcs) {
            vol_free(&so.vol);
        } else if (ingest_store_volume(g, &ref, &so.vol, sha, desc, dtype, notes.data, srcs, nsrc, &sid,
                                &e)) {
            ingest_fail(g, us->u->path, where, &e);
            for (int k = 0; k < nsrc; k++)
                ingest_record_source(g, srcs[k].path, srcs[k].member, srcs[k].sha, srcs[k].size,
                              "dicom", "failed", 0);
        }
        for (int k = 0; k < np; k++)
            us->h[pick[k]->member].done = 1;
        free(srcs);
        free(ser);
        free(sst);
        buf_free(&notes);
    }
    free(done_study);
    free(pick);
    for (int i = 0; i < nsl; i++)
        slice_free(&sl[i]);
    free(sl);
}
