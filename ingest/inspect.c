#include "inspect.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "dicom.h"
#include "gz.h"
#include "json.h"
#include "mask.h"
#include "names.h"
#include "nifti.h"
#include "phi.h"
#include "report_text.h"
#include "safetensors.h"
#include "series.h"
#include "walk.h"

typedef struct Insp {
    const InspectOpts *o;
    JsonW *w;
    int wrote_tensor;
    Phi *phi;
    /* DICOM images collected over all members, stacked at the end. */
    Slice *sl;
    int nsl, cap;
    char **names;        /* member name per slice index's member */
    int nnames;
    DcmFile first_dcm;   /* the first DICOM file, for a one-file description */
    DcmImage first_im;
    unsigned char *first_bytes;
    int n_dicom;
} Insp;

/* ------------------------------------------------------------- geometry */

static void put_affine(JsonW *w, const double a[4][4])
{
    jw_arr(w);
    for (int r = 0; r < 4; r++) {
        jw_arr(w);
        for (int c = 0; c < 4; c++)
            jw_num(w, a[r][c] == 0 ? 0.0 : a[r][c]);
        jw_arr_end(w);
    }
    jw_arr_end(w);
}

static void put_geometry(JsonW *w, const Vol *v)
{
    jw_key(w, "geometry");
    jw_obj(w);
    jw_key(w, "shape_xyz");
    jw_arr(w);
    jw_int(w, v->nx);
    jw_int(w, v->ny);
    jw_int(w, v->nz);
    jw_arr_end(w);
    double sp[3];
    vol_spacing(v, sp);
    jw_key(w, "spacing_mm");
    jw_arr(w);
    for (int i = 0; i < 3; i++)
        jw_num(w, sp[i]);
    jw_arr_end(w);
    jw_key(w, "affine");
    put_affine(w, v->affine);
    char code[4];
    vol_orient_code(v->affine, code);
    jw_key(w, "orientation");
    jw_str(w, code);
    jw_key(w, "obliquity_deg");
    jw_num(w, vol_obliquity(v->affine));
    jw_obj_end(w);
}

static void put_values(JsonW *w, const Vol *v, int hu)
{
    size_t n = (size_t)vol_count(v);
    jw_key(w, "dtype");
    jw_str(w, v->type == VOL_U8 ? "uint8" : v->type == VOL_I16 ? "int16" : "float32");
    if (v->type == VOL_U8) {
        int64_t hist[256];
        mask_histogram(v, hist);
        jw_key(w, "labels");
        jw_obj(w);
        for (int i = 0; i < 256; i++)
            if (hist[i]) {
                char k[8];
                snprintf(k, sizeof k, "%d", i);
                jw_key(w, k);
                jw_int(w, hist[i]);
            }
        jw_obj_end(w);
        return;
    }
    double mn = INFINITY, mx = -INFINITY, sum = 0, sum2 = 0;
    for (size_t i = 0; i < n; i++) {
        double x = v->type == VOL_I16 ? ((const int16_t *)v->data)[i] : ((const float *)v->data)[i];
        mn = x < mn ? x : mn;
        mx = x > mx ? x : mx;
        sum += x;
        sum2 += x * x;
    }
    double mean = n ? sum / (double)n : 0;
    jw_key(w, hu ? "hu" : "values");
    jw_obj(w);
    jw_key(w, "count");
    jw_int(w, (int64_t)n);
    jw_key(w, "min");
    jw_num(w, mn);
    jw_key(w, "max");
    jw_num(w, mx);
    jw_key(w, "mean");
    jw_num(w, mean);
    jw_key(w, "std");
    jw_num(w, n ? sqrt(fmax(0, sum2 / (double)n - mean * mean)) : 0);
    jw_obj_end(w);
}

/* The first volume goes to --tensor as float32 (z, y, x). */
static int maybe_tensor(Insp *s, const Vol *v, FvErr *e)
{
    if (!s->o->tensor_out || s->wrote_tensor)
        return 0;
    size_t n = (size_t)vol_count(v);
    float *f = malloc(n * sizeof *f);
    if (!f)
        return err_set(e, FV_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        f[i] = v->type == VOL_U8    ? ((const uint8_t *)v->data)[i]
               : v->type == VOL_I16 ? ((const int16_t *)v->data)[i]
                                    : ((const float *)v->data)[i];
    StWriter w;
    st_writer_init(&w);
    int64_t shape[3] = {v->nz, v->ny, v->nx};
    Buf aff = {0};
    JsonW j;
    jw_init(&j, &aff, 0);
    put_affine(&j, v->affine);
    int rc = st_writer_add(&w, "volume", ST_F32, 3, shape, f, e);
    if (rc == 0)
        rc = st_writer_meta(&w, "affine", aff.data, e);
    if (rc == 0)
        rc = st_write(&w, s->o->tensor_out, e);
    st_writer_free(&w);
    buf_free(&aff);
    free(f);
    s->wrote_tensor = rc == 0;
    return rc;
}

/* ------------------------------------------------------------------ items */

static void item_error(JsonW *w, const char *kind, const char *name, const FvErr *e)
{
    jw_obj(w);
    jw_key(w, "kind");
    jw_str(w, kind);
    jw_key(w, "member");
    jw_str(w, name);
    jw_key(w, "error");
    jw_str(w, e->msg);
    jw_obj_end(w);
}

static void put_nifti_header(JsonW *w, const NiftiHeader *h)
{
    jw_key(w, "header");
    jw_obj(w);
    jw_key(w, "version");
    jw_int(w, h->version);
    jw_key(w, "format");
    jw_str(w, h->version == 0 ? "analyze" : h->pair ? "pair" : "single");
    jw_key(w, "byte_order");
    jw_str(w, h->big ? "big" : "little");
    jw_key(w, "dim");
    jw_arr(w);
    for (int i = 0; i <= h->ndim && i < 8; i++)
        jw_int(w, i == 0 ? h->ndim : h->dim[i]);
    jw_arr_end(w);
    jw_key(w, "datatype");
    jw_int(w, h->datatype);
    jw_key(w, "datatype_name");
    jw_str(w, nifti_dtype_name(h->datatype));
    jw_key(w, "bitpix");
    jw_int(w, h->bitpix);
    jw_key(w, "pixdim");
    jw_arr(w);
    for (int i = 0; i < 8; i++)
        jw_num(w, h->pixdim[i]);
    jw_arr_end(w);
    jw_key(w, "vox_offset");
    jw_int(w, h->vox_offset);
    jw_key(w, "scl_slope");
    jw_num(w, h->scl_slope);
    jw_key(w, "scl_inter");
    jw_num(w, h->scl_inter);
    jw_key(w, "qform_code");
    jw_int(w, h->qform_code);
    jw_key(w, "sform_code");
    jw_int(w, h->sform_code);
    jw_key(w, "quatern_bcd");
    jw_arr(w);
    for (int i = 0; i < 3; i++)
        jw_num(w, h->quatern[i]);
    jw_arr_end(w);
    jw_key(w, "qoffset");
    jw_arr(w);
    for (int i = 0; i < 3; i++)
        jw_num(w, h->qoffset[i]);
    jw_arr_end(w);
    jw_key(w, "srow");
    jw_arr(w);
    for (int r = 0; r < 3; r++) {
        jw_arr(w);
        for (int c = 0; c < 4; c++)
            jw_num(w, h->srow[r][c]);
        jw_arr_end(w);
    }
    jw_arr_end(w);
    jw_key(w, "xyzt_units");
    jw_int(w, h->xyzt_units);
    jw_key(w, "descrip");
    jw_str(w, h->descrip);
    jw_key(w, "affine_from");
    jw_str(w, h->affine_from);
    jw_key(w, "extensions");
    jw_arr(w);
    for (int i = 0; i < h->n_ext; i++) {
        jw_obj(w);
        jw_key(w, "code");
        jw_int(w, h->ext[i].code);
        jw_key(w, "size");
        jw_int(w, (int64_t)h->ext[i].size);
        jw_obj_end(w);
    }
    jw_arr_end(w);
    if (h->ext_note[0]) {
        jw_key(w, "extension_note");
        jw_str(w, h->ext_note);
    }
    jw_obj_end(w);
}

static void inspect_nifti(Insp *s, const char *name, const unsigned char *p, size_t n,
                          const unsigned char *img, size_t img_n)
{
    FvErr e = {0};
    NiftiHeader h;
    Vol v;
    unsigned char *hb = NULL;
    size_t hl = 0;
    /* The folder that holds the file and its name decide, as in a unit. */
    const char *rel = name + strlen(name);
    for (int slashes = 0; rel > name; rel--)
        if (rel[-1] == '/' && ++slashes == 2)
            break;
    int mask = s->o->as_mask || name_is_mask_path(rel);
    if (nifti_load(p, n, img, img_n, mask, s->o->max_voxels, &h, &v, &hb, &hl, &e)) {
        /* Show the header even when the data cannot be read. */
        NiftiHeader hh;
        FvErr e2 = {0};
        if (!gz_is_gzip(p, n) && nifti_header_parse(p, n, &hh, &e2) == 0) {
            jw_obj(s->w);
            jw_key(s->w, "kind");
            jw_str(s->w, "nifti");
            jw_key(s->w, "member");
            jw_str(s->w, name);
            put_nifti_header(s->w, &hh);
            jw_key(s->w, "error");
            jw_str(s->w, e.msg);
            jw_obj_end(s->w);
        } else {
            item_error(s->w, "nifti", name, &e);
        }
        return;
    }
    NiftiLabel *labels = NULL;
    int nl = nifti_label_table(&h, hb, hl, &labels, &e);
    free(labels);
    free(hb);
    jw_obj(s->w);
    jw_key(s->w, "kind");
    jw_str(s->w, mask ? "mask" : "nifti");
    jw_key(s->w, "member");
    jw_str(s->w, name);
    put_nifti_header(s->w, &h);
    jw_key(s->w, "label_table");
    jw_int(s->w, nl > 0 ? nl : 0);
    put_geometry(s->w, &v);
    put_values(s->w, &v, !mask);
    if (maybe_tensor(s, &v, &e)) {
        jw_key(s->w, "tensor_error");
        jw_str(s->w, e.msg);
    }
    jw_obj_end(s->w);
    vol_free(&v);
}

static void inspect_report(Insp *s, const char *name, const unsigned char *p, size_t n)
{
    FvErr e = {0};
    Buf text = {0}, clean = {0};
    const char *enc;
    if (report_decode(p, n, (size_t)1 << 30, &text, &enc, &e)) {
        item_error(s->w, "report", name, &e);
        buf_free(&text);
        return;
    }
    int counts[PHI_NKINDS] = {0};
    if (!s->phi && phi_new(&s->phi, &e)) {
        item_error(s->w, "report", name, &e);
        buf_free(&text);
        return;
    }
    if (phi_scrub(s->phi, text.data ? text.data : "", text.len, NULL, 0, &clean, counts, &e)) {
        item_error(s->w, "report", name, &e);
        buf_free(&text);
        buf_free(&clean);
        return;
    }
    jw_obj(s->w);
    jw_key(s->w, "kind");
    jw_str(s->w, "report");
    jw_key(s->w, "member");
    jw_str(s->w, name);
    jw_key(s->w, "bytes");
    jw_int(s->w, (int64_t)n);
    jw_key(s->w, "encoding");
    jw_str(s->w, enc);
    jw_key(s->w, "language");
    jw_str(s->w, report_language(clean.data ? clean.data : "", clean.len));
    jw_key(s->w, "phi");
    jw_obj(s->w);
    for (int k = 0; k < PHI_NKINDS; k++) {
        jw_key(s->w, phi_kind_name((PhiKind)k));
        jw_int(s->w, counts[k]);
    }
    jw_obj_end(s->w);
    jw_key(s->w, "text");
    jw_strn(s->w, clean.data ? clean.data : "", clean.len);
    jw_obj_end(s->w);
    buf_free(&text);
    buf_free(&clean);
}

static void put_dicom_attrs(JsonW *w, const DcmFile *f, const DcmImage *im)
{
    jw_key(w, "header");
    jw_obj(w);
    jw_key(w, "transfer_syntax");
    jw_str(w, f->ts[0] ? f->ts : NULL);
    jw_key(w, "transfer_syntax_name");
    jw_str(w, f->ts[0] ? dcm_ts_name(f->ts) : (f->implicit ? "implicit VR (guessed)" : "explicit VR (guessed)"));
    jw_key(w, "preamble");
    jw_bool(w, f->has_preamble);
    jw_key(w, "meta_header");
    jw_bool(w, f->has_meta);
    jw_key(w, "big_endian");
    jw_bool(w, f->big);
    jw_key(w, "modality");
    jw_str(w, im->modality);
    jw_key(w, "sop_class");
    jw_str(w, im->sop_class);
    jw_key(w, "image_type");
    jw_str(w, im->image_type);
    jw_key(w, "photometric");
    jw_str(w, im->photometric);
    jw_key(w, "rows");
    jw_int(w, im->rows);
    jw_key(w, "columns");
    jw_int(w, im->cols);
    jw_key(w, "frames");
    jw_int(w, im->frames);
    jw_key(w, "samples_per_pixel");
    jw_int(w, im->samples);
    jw_key(w, "bits_allocated");
    jw_int(w, im->bits_alloc);
    jw_key(w, "bits_stored");
    jw_int(w, im->bits_stored);
    jw_key(w, "pixel_representation");
    jw_int(w, im->pixel_rep);
    jw_key(w, "rescale_slope");
    jw_num(w, im->geo.slope);
    jw_key(w, "rescale_intercept");
    jw_num(w, im->geo.inter);
    if (im->geo.has_ipp) {
        jw_key(w, "image_position");
        jw_arr(w);
        for (int i = 0; i < 3; i++)
            jw_num(w, im->geo.ipp[i]);
        jw_arr_end(w);
    }
    if (im->geo.has_iop) {
        jw_key(w, "image_orientation");
        jw_arr(w);
        for (int i = 0; i < 6; i++)
            jw_num(w, im->geo.iop[i]);
        jw_arr_end(w);
    }
    if (im->geo.has_spacing) {
        jw_key(w, "pixel_spacing");
        jw_arr(w);
        jw_num(w, im->geo.spacing[0]);
        jw_num(w, im->geo.spacing[1]);
        jw_arr_end(w);
    }
    jw_key(w, "slice_thickness");
    jw_num(w, im->geo.thickness);
    jw_key(w, "structured_report");
    jw_bool(w, im->is_sr);
    jw_key(w, "enhanced_multiframe");
    jw_bool(w, im->enhanced);
    jw_obj_end(w);
}

/* A DICOM member: its slices are collected; SR text is printed now. */
static void collect_dicom(Insp *s, const char *name, const unsigned char *p, size_t n)
{
    FvErr e = {0};
    DcmFile f;
    DcmImage im;
    if (dcm_parse(&f, p, n, (size_t)s->o->max_voxels * 8, &e) || dcm_image_info(&f, &im, &e)) {
        dcm_free(&f);
        item_error(s->w, "dicom", name, &e);
        return;
    }
    if (im.is_sr) {
        char *raw = NULL;
        size_t rl = 0;
        Buf t = {0};
        const char *enc = "";
        jw_obj(s->w);
        jw_key(s->w, "kind");
        jw_str(s->w, "dicom_sr");
        jw_key(s->w, "member");
        jw_str(s->w, name);
        put_dicom_attrs(s->w, &f, &im);
        if (dcm_sr_text(&f, &raw, &rl, &e) == 0 && raw &&
            report_decode_dicom((const unsigned char *)raw, rl, im.charset, &t, &enc, &e) == 0) {
            Buf clean = {0};
            int counts[PHI_NKINDS] = {0};
            if ((s->phi || phi_new(&s->phi, &e) == 0) &&
                phi_scrub(s->phi, t.data, t.len, im.phi, im.nphi, &clean, counts, &e) == 0) {
                jw_key(s->w, "encoding");
                jw_str(s->w, enc);
                jw_key(s->w, "text");
                jw_strn(s->w, clean.data ? clean.data : "", clean.len);
            }
            buf_free(&clean);
        }
        free(raw);
        buf_free(&t);
        jw_obj_end(s->w);
        dcm_free(&f);
        return;
    }
    if (!im.has_pixels) {
        err_set(&e, FV_EFORMAT, "DICOM without pixel data");
        item_error(s->w, "dicom", name, &e);
        dcm_free(&f);
        return;
    }
    if (dcm_frames_check(&im, &e)) { /* as ingest decides */
        item_error(s->w, "dicom", name, &e);
        dcm_free(&f);
        return;
    }
    int64_t px = (int64_t)im.rows * im.cols * im.frames;
    if (px > s->o->max_voxels) {
        err_set(&e, FV_ELIMIT, "%lld pixels over the voxel limit", (long long)px);
        item_error(s->w, "dicom", name, &e);
        dcm_free(&f);
        return;
    }
    char *nm = strdup(name);
    char **nn = realloc(s->names, (size_t)(s->nnames + 1) * sizeof *nn);
    if (!nm || !nn) {
        free(nm);
        if (nn)
            s->names = nn;
        dcm_free(&f);
        return;
    }
    s->names = nn;
    s->names[s->nnames] = nm;
    for (int k = 0; k < im.frames; k++) {
        if (arr_reserve(&s->sl, &s->cap, s->nsl, sizeof *s->sl, 64))
            break;
        Slice *sl = &s->sl[s->nsl];
        memset(sl, 0, sizeof *sl);
        sl->pix = malloc((size_t)im.rows * (size_t)im.cols * (size_t)(im.bits_alloc / 8));
        if (!sl->pix)
            break;
        if (dcm_decode_frame(&f, &im, k, sl->pix, &sl->type, &e)) {
            free(sl->pix);
            item_error(s->w, "dicom", name, &e);
            break;
        }
        sl->member = s->nnames;
        sl->frame = k;
        snprintf(sl->study_uid, sizeof sl->study_uid, "%s", im.study_uid);
        snprintf(sl->series_uid, sizeof sl->series_uid, "%s", im.series_uid);
        snprintf(sl->modality, sizeof sl->modality, "%s", im.modality);
        sl->localizer = im.localizer;
        sl->instance = im.instance;
        sl->series_number = im.series_number;
        if (dcm_frame_geo(&f, &im, k, &sl->geo, &e)) {
            free(sl->pix);
            item_error(s->w, "dicom", name, &e);
            break;
        }
        sl->rows = im.rows;
        sl->cols = im.cols;
        s->nsl++;
    }
    s->nnames++;
    dcm_free(&f);
    if (s->n_dicom++ == 0) {
        /* The first file is described in full when it is the only one:
         * parse it again over a private copy (the member buffer goes). */
        s->first_bytes = malloc(n ? n : 1);
        FvErr e2 = {0};
        if (s->first_bytes) {
            memcpy(s->first_bytes, p, n);
            if (dcm_parse(&s->first_dcm, s->first_bytes, n, (size_t)s->o->max_voxels * 8, &e2) ||
                dcm_image_info(&s->first_dcm, &s->first_im, &e2)) {
                dcm_free(&s->first_dcm);
                free(s->first_bytes);
                s->first_bytes = NULL;
            }
        }
    }
}

/* Stacks the collected DICOM images per series. */
static void finish_dicom(Insp *s)
{
    if (!s->nsl) {
        if (s->first_bytes) {
            dcm_free(&s->first_dcm);
            free(s->first_bytes);
        }
        return;
    }
    int *done = calloc((size_t)s->nsl, sizeof *done);
    Slice **ser = malloc((size_t)s->nsl * sizeof *ser);
    int *st = malloc((size_t)s->nsl * sizeof *st);
    for (int a = 0; done && ser && st && a < s->nsl; a++) {
        if (done[a])
            continue;
        int n = 0;
        for (int b = a; b < s->nsl; b++)
            if (!done[b] && !strcmp(s->sl[b].series_uid, s->sl[a].series_uid) &&
                !strcmp(s->sl[b].study_uid, s->sl[a].study_uid)) {
                done[b] = 1;
                ser[n++] = &s->sl[b];
            }
        FvErr e = {0};
        Buf notes = {0};
        SeriesOut so;
        jw_obj(s->w);
        jw_key(s->w, "kind");
        jw_str(s->w, n == 1 && s->n_dicom == 1 ? "dicom" : "dicom_series");
        jw_key(s->w, "member");
        jw_str(s->w, s->names[s->sl[a].member]);
        jw_key(s->w, "modality");
        jw_str(s->w, s->sl[a].modality);
        jw_key(s->w, "series_number");
        jw_int(s->w, s->sl[a].series_number);
        jw_key(s->w, "images");
        jw_int(s->w, n);
        if (s->n_dicom == 1 && s->first_bytes)
            put_dicom_attrs(s->w, &s->first_dcm, &s->first_im);
        const char *scout_why;
        if (series_is_scout(ser, n, &scout_why)) {
            /* what ingest decides for this series (series_is_scout) */
            jw_key(s->w, "skipped");
            jw_str(s->w, scout_why);
        } else if (series_assemble(ser, n, s->o->max_voxels, &so, st, &notes, &e)) {
            jw_key(s->w, "error");
            jw_str(s->w, e.msg);
        } else {
            int used = 0;
            for (int k = 0; k < n; k++)
                used += st[k] == SLICE_USED;
            jw_key(s->w, "slices_used");
            jw_int(s->w, so.n_used);
            jw_key(s->w, "slices_interpolated");
            jw_int(s->w, so.n_filled);
            jw_key(s->w, "slice_step_mm");
            jw_num(s->w, so.step);
            while (notes.len >= 2 && notes.data[notes.len - 2] == ';')
                notes.len -= 2, notes.data[notes.len] = '\0';
            jw_key(s->w, "notes");
            jw_str(s->w, notes.data ? notes.data : "");
            put_geometry(s->w, &so.vol);
            put_values(s->w, &so.vol, !strcmp(s->sl[a].modality, "CT"));
            if (maybe_tensor(s, &so.vol, &e)) {
                jw_key(s->w, "tensor_error");
                jw_str(s->w, e.msg);
            }
            vol_free(&so.vol);
            (void)used;
        }
        jw_obj_end(s->w);
        buf_free(&notes);
    }
    free(done);
    free(ser);
    free(st);
    for (int i = 0; i < s->nsl; i++)
        slice_free(&s->sl[i]);
    free(s->sl);
    s->sl = NULL;
    s->nsl = s->cap = 0;
    if (s->first_bytes) {
        dcm_free(&s->first_dcm);
        free(s->first_bytes);
    }
}

/* --------------------------------------------------------------- members */

typedef struct Pending {
    char *name;
    unsigned char *data;
    size_t len;
} Pending;

static void inspect_member(Insp *s, Member *m, Pending *hdr, Pending *img)
{
    NameKind k = name_kind(m->name);
    if (k == NK_UNKNOWN)
        k = dcm_sniff(m->data, m->len) ? NK_DICOM : NK_UNKNOWN;
    switch (k) {
    case NK_NIFTI: inspect_nifti(s, m->name, m->data, m->len, NULL, 0); break;
    case NK_DICOM: collect_dicom(s, m->name, m->data, m->len); break;
    case NK_TXT: inspect_report(s, m->name, m->data, m->len); break;
    case NK_HDR:
    case NK_IMG: {
        Pending *p = k == NK_HDR ? hdr : img;
        free(p->name);
        free(p->data);
        p->name = strdup(m->name);
        p->len = m->len;
        p->data = members_take(m);
        if (hdr->data && img->data) {
            inspect_nifti(s, hdr->name, hdr->data, hdr->len, img->data, img->len);
            free(hdr->name);
            free(hdr->data);
            free(img->name);
            free(img->data);
            memset(hdr, 0, sizeof *hdr);
            memset(img, 0, sizeof *img);
        }
        break;
    }
    default:
        jw_obj(s->w);
        jw_key(s->w, "kind");
        jw_str(s->w, k == NK_TABLE_META      ? "ctrate_metadata"
                     : k == NK_TABLE_REPORTS ? "ctrate_reports"
                     : k == NK_JSON          ? "json_reports"
                                             : "other");
        jw_key(s->w, "member");
        jw_str(s->w, m->name);
        jw_key(s->w, "bytes");
        jw_int(s->w, (int64_t)m->len);
        jw_obj_end(s->w);
    }
}

static int member_wanted(const char *name, const char *filter)
{
    if (!filter || !*filter)
        return 1;
    size_t k = strlen(filter);
    if (filter[k - 1] == '/')
        return strncmp(name, filter, k) == 0;
    return strcmp(name, filter) == 0;
}

int inspect_path(const char *spec, const InspectOpts *o, Buf *json, FvErr *e)
{
    char path[4096];
    const char *filter = NULL;
    snprintf(path, sizeof path, "%s", spec);
    struct stat stt;
    if (stat(path, &stt) != 0) {
        /* archive.tar.gz:member: the longest prefix before a ':' that is a
         * file. */
        for (char *c = path + strlen(path); c > path && !filter; c--) {
            if (*c != ':')
                continue;
            *c = '\0';
            if (stat(path, &stt) == 0 && S_ISREG(stt.st_mode))
                filter = spec + (c - path) + 1;
            else
                *c = ':';
        }
        if (!filter)
            return err_set(e, FV_ENOTFOUND, "%s: no such file, folder or archive member", spec);
    }
    /* A .hdr comes with the .img beside it. */
    char imgpath[4200];
    char *inputs[2] = {path, NULL};
    int ninputs = 1;
    if (!filter && (name_ends_with(path, ".hdr") || name_ends_with(path, ".hdr.gz"))) {
        size_t k = strlen(path) - (name_ends_with(path, ".hdr") ? 4 : 7);
        snprintf(imgpath, sizeof imgpath, "%.*s.img%s", (int)k, path,
                 name_ends_with(path, ".gz") ? ".gz" : "");
        if (stat(imgpath, &stt) == 0)
            inputs[ninputs++] = imgpath;
    }
    UnitList units;
    if (walk_inputs(inputs, ninputs, NULL, &units, e))
        return -1;
    Insp s;
    memset(&s, 0, sizeof s);
    s.o = o;
    JsonW w;
    jw_init(&w, json, 1);
    s.w = &w;
    jw_obj(&w);
    jw_key(&w, "path");
    jw_str(&w, spec);
    jw_key(&w, "items");
    jw_arr(&w);
    int matched = 0, rc = 0;
    for (int i = 0; i < units.n; i++) {
        MemberReader *r;
        FvErr ue = {0};
        if (members_open(&r, &units.u[i], (size_t)o->max_voxels * 8 + ((size_t)64 << 20), &ue)) {
            item_error(&w, "archive", units.u[i].path, &ue);
            continue;
        }
        Pending hdr = {0}, img = {0};
        Member m;
        int fatal, k;
        while ((k = members_next(r, &m, &fatal, &ue)) != 0) {
            if (k < 0) {
                item_error(&w, "member", m.name ? m.name : units.u[i].path, &ue);
                if (fatal)
                    break;
                continue;
            }
            if (!member_wanted(m.member && *m.member ? m.member : m.name, filter))
                continue;
            matched++;
            inspect_member(&s, &m, &hdr, &img);
        }
        if (hdr.data || img.data) {
            FvErr pe = {0};
            err_set(&pe, FV_EFORMAT, "%s without its %s", hdr.data ? ".hdr" : ".img",
                    hdr.data ? ".img" : ".hdr");
            if (hdr.data && nifti_header_parse(hdr.data, hdr.len, &(NiftiHeader){0}, &pe) == 0)
                inspect_nifti(&s, hdr.name, hdr.data, hdr.len, NULL, 0);
            else
                item_error(&w, "nifti", hdr.data ? hdr.name : img.name, &pe);
        }
        free(hdr.name);
        free(hdr.data);
        free(img.name);
        free(img.data);
        members_close(&r);
    }
    finish_dicom(&s);
    jw_arr_end(&w);
    jw_obj_end(&w);
    buf_putc(json, '\n');
    for (int i = 0; i < s.nnames; i++)
        free(s.names[i]);
    free(s.names);
    phi_free(&s.phi);
    walk_free(&units);
    if (filter && !matched)
        rc = err_set(e, FV_ENOTFOUND, "%s: no member '%s' in the archive", path, filter);
    if (o->tensor_out && !s.wrote_tensor && rc == 0)
        rc = err_set(e, FV_ENOTFOUND, "%s: no volume to write to %s", spec, o->tensor_out);
    return rc;
}
