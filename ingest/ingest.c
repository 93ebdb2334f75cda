#include "ingest.h"

#include <ctype.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "corpus.h"
#include "csv.h"
#include "ctrate.h"
#include "deid.h"
#include "dicom.h"
#include "gz.h"
#include "json.h"
#include "log.h"
#include "mask.h"
#include "names.h"
#include "nifti.h"
#include "reader.h"
#include "report_text.h"
#include "series.h"
#include "sha256.h"
#include "walk.h"

/* ================================================================ options */

int ingest_opts_load(IngestOpts *o, Config *cfg, FvErr *e)
{
    memset(o, 0, sizeof *o);
    static const double def_sp[3] = {1, 1, 3}, def_clip[2] = {-1024, 3071},
                        def_frac[3] = {0.8, 0.1, 0.1};
    double clip[2];
    if (config_doubles(cfg, "ingest.spacing", def_sp, 3, o->spacing, e) ||
        config_doubles(cfg, "ingest.hu_clip", def_clip, 2, clip, e) ||
        config_int(cfg, "ingest.max_voxels", (int64_t)512 * 512 * 2000, &o->max_voxels, e) ||
        config_int(cfg, "ingest.max_report_bytes", (int64_t)1 << 20, &o->max_report_bytes, e) ||
        config_doubles(cfg, "ingest.split_fractions", def_frac, 3, o->fractions, e))
        return -1;
    for (int i = 0; i < 3; i++)
        if (!(o->spacing[i] >= 0.05 && o->spacing[i] <= 50))
            return err_set(e, FV_EUSAGE, "config ingest.spacing: %g mm is outside 0.05..50",
                           o->spacing[i]);
    if (!(clip[0] < clip[1]) || clip[0] < -32768 || clip[1] > 32767)
        return err_set(e, FV_EUSAGE,
                       "config ingest.hu_clip = %g, %g: need lo < hi inside -32768..32767", clip[0],
                       clip[1]);
    o->hu_lo = clip[0];
    o->hu_hi = clip[1];
    if (o->max_voxels < 1)
        return err_set(e, FV_EUSAGE, "config ingest.max_voxels must be positive");
    if (o->max_report_bytes < 16)
        return err_set(e, FV_EUSAGE, "config ingest.max_report_bytes must be at least 16");
    double s = o->fractions[0] + o->fractions[1] + o->fractions[2];
    if (o->fractions[0] < 0 || o->fractions[1] < 0 || o->fractions[2] < 0 || fabs(s - 1) > 1e-6)
        return err_set(e, FV_EUSAGE, "config ingest.split_fractions must be 3 non-negative "
                                     "fractions summing to 1");
    const char *split = config_str(cfg, "ingest.split", "path");
    if (!strcmp(split, "hash"))
        o->split_hash = 1;
    else if (strcmp(split, "path"))
        return err_set(e, FV_EUSAGE, "config ingest.split = '%s': expected path or hash", split);
    return deid_key(cfg, &o->key, e);
}

void ingest_counts_json(const IngestCounts *c, Buf *b)
{
    JsonW w;
    jw_init(&w, b, 0);
    jw_obj(&w);
#define F(name) jw_key(&w, #name), jw_int(&w, c->name)
    F(units); F(members); F(known); F(bytes_disk); F(bytes_members);
    F(studies_new); F(volumes); F(masks); F(reports); F(table_rows);
    F(ignored); F(failed); F(errors); F(swept_tmp); F(swept_orphans);
#undef F
    int64_t total = 0;
    jw_key(&w, "phi");
    jw_obj(&w);
    for (int k = 0; k < PHI_NKINDS; k++) {
        jw_key(&w, phi_kind_name((PhiKind)k));
        jw_int(&w, c->phi[k]);
        total += c->phi[k];
    }
    jw_obj_end(&w);
    jw_key(&w, "phi_total");
    jw_int(&w, total);
    jw_key(&w, "seconds");
    jw_num(&w, round(c->seconds * 1000) / 1000);
    jw_obj_end(&w);
}

/* ================================================================ state */

static volatile sig_atomic_t stop_requested;

void ingest_request_stop(void) { stop_requested = 1; }

typedef struct Ingest {
    const IngestOpts *o;
    Corpus corpus;
    Run *run;
    Phi *phi;
    TsClasses ts;
    CtrateMetaTable meta;
    IngestCounts *cnt;
    size_t member_limit;
    struct UnitState *cur; /* the unit being read (its header PHI scrubs stored names) */
    /* First pass: a mask whose study has no CT volume yet is put off, and
     * its unit is read again after all the others (a folder of masks may be
     * walked before the folder of volumes). */
    int defer_masks;
    const Unit **deferred;     /* units to read again (each once) */
    int n_deferred, cap_deferred;
    int64_t masks_deferred;
    /* The corpus cannot be written (a full disk, an I/O error, a database
     * error): not a fault of the item at hand, so the run stops here with
     * this error instead of failing every item after it and exiting 0. */
    FvErr fatal;
} Ingest;

/* What a held member turned out to be. */
typedef enum {
    H_OTHER, H_DICOM, H_VOLUME, H_MASK, H_CLASSMASK, H_HDR, H_IMG, H_TXT, H_JSON
} HeldKind;

/* A member kept until the end of its unit. */
typedef struct Held {
    char *source, *member, *name;
    size_t relofs;       /* name + relofs: the path below the INPUT folder */
    unsigned char *data; /* the member's bytes, or a .nii.gz member already inflated */
    size_t len;
    int64_t size;        /* the member's size in its archive (sources.size) */
    char sha[65];
    unsigned char sha_raw[32];
    int known;           /* recorded before as ok or ignored */
    HeldKind kind;
    int done;            /* recorded in this run */
    /* DICOM: parsed header */
    int parsed, parse_failed, decoded;
    char ts[68];         /* transfer syntax, kept after the header is freed */
    DcmFile dcm;
    DcmImage im;
} Held;

typedef struct UnitState {
    const Unit *u;
    Held *h;
    int nh, cap;
    PhiValue phi[64];
    int nphi;
    char dicom_study[68], dicom_patient[68];
    int n_dicom_studies;
    int n_volumes;       /* NIfTI CT volumes of this unit (not self-identifying) */
} UnitState;

/* Where an item's study comes from. */
typedef struct StudyRef {
    char src[256];       /* source study id (never stored) */
    char patient[128];   /* source patient id, "" when unknown */
    const char *dataset;
    char split[8];       /* "" when the path does not say */
} StudyRef;

/* ================================================================ helpers */

/* Records one failure: an error line and an `errors` row. */
static void fail(Ingest *g, const char *source, const char *member, const FvErr *err)
{
    if (g->fatal.code)
        return;
    if (err->code == FV_EDB || g->corpus.write_failed) {
        g->fatal = *err;
        return;
    }
    /* The line on stderr names the real file (the operator has to find
     * it); the `errors` row stores de-identified names, as every table. */
    if (member && *member)
        log_error("%s:%s: %s", source, member, err->msg);
    else
        log_error("%s: %s", source, err->msg);
    g->cnt->errors++;
    g->run->n_errors++;
    char sb[4200], mb[4200], rb[1100];
    FvErr e2 = {0};
    char now[32];
    db_now_iso(now, sizeof now);
    if (db_run(g->run->db, &e2,
               "INSERT INTO errors (run_id, source, member, reason, created_at) VALUES (?,?,?,?,?)",
               "issss", g->run->id, corpus_clean(&g->corpus, source, sb, sizeof sb),
               member && *member ? corpus_clean(&g->corpus, member, mb, sizeof mb) : NULL,
               corpus_clean(&g->corpus, err->msg, rb, sizeof rb), now) ||
        db_run(g->run->db, &e2, "UPDATE runs SET n_errors = ? WHERE id = ?", "ii",
               g->run->n_errors, g->run->id))
        g->fatal = e2;
}

/* The corpus's scrub: identifying values of the current unit's DICOM
 * headers, then the patterns of phi.h. */
static void scrub_name(void *ctx, const char *in, char *out, size_t n)
{
    Ingest *g = ctx;
    Buf b = {0};
    int counts[PHI_NKINDS] = {0};
    FvErr e = {0};
    const PhiValue *known = g->cur ? g->cur->phi : NULL;
    int nknown = g->cur ? g->cur->nphi : 0;
    if (phi_scrub(g->phi, in, strlen(in), known, nknown, &b, counts, &e) || !b.data)
        snprintf(out, n, "%s", in);
    else
        snprintf(out, n, "%s", b.data);
    buf_free(&b);
}

static void fail_msg(Ingest *g, const char *source, const char *member, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail_msg(Ingest *g, const char *source, const char *member, const char *fmt, ...)
{
    FvErr e = {0};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    fail(g, source, member, &e);
}

/* A source row in its own transaction (ignored or failed members). */
static void record_source(Ingest *g, const char *path, const char *member, const char *sha,
                          int64_t size, const char *kind, const char *status, int64_t study)
{
    FvErr e = {0};
    if (!strcmp(status, "ignored"))
        g->cnt->ignored++;
    else if (!strcmp(status, "failed"))
        g->cnt->failed++;
    if (g->fatal.code)
        return;
    if (corpus_begin(&g->corpus, &e) ||
        corpus_source_put(&g->corpus, path, member, sha, size, kind, status, study, &e) ||
        corpus_commit(&g->corpus, &e)) {
        corpus_rollback(&g->corpus);
        g->fatal = e;
    }
}

/* The split named by a path component. */
static void split_from_path(const char *path, char split[8])
{
    split[0] = '\0';
    const char *s = path;
    while (*s) {
        const char *slash = strchr(s, '/');
        size_t n = slash ? (size_t)(slash - s) : strlen(s);
        if (slash) { /* only folders count, not the file's own name */
            if ((n == 5 && !strncasecmp(s, "train", 5)))
                snprintf(split, 8, "train");
            else if ((n == 5 && !strncasecmp(s, "valid", 5)) ||
                     (n == 3 && !strncasecmp(s, "val", 3)) ||
                     (n == 10 && !strncasecmp(s, "validation", 10)))
                snprintf(split, 8, "valid");
            else if (n == 4 && !strncasecmp(s, "test", 4))
                snprintf(split, 8, "test");
        }
        if (!slash)
            break;
        s = slash + 1;
    }
}

/* The study row for a reference, created when absent (inside the caller's
 * transaction). */
static int study_get(Ingest *g, const StudyRef *ref, int create, int64_t *id, FvErr *e)
{
    char skey[65], pkey[65];
    if (deid_pseudonym(g->o->key, "study", ref->src, skey, e))
        return -1;
    int has_p = ref->patient[0] != '\0';
    if (has_p && deid_pseudonym(g->o->key, "patient", ref->patient, pkey, e))
        return -1;
    if (!create) {
        int found;
        if (db_query_int(g->corpus.db, e, id, &found, "SELECT id FROM studies WHERE study_key = ?",
                         "s", skey))
            return -1;
        if (!found)
            *id = 0;
        return 0;
    }
    char split[8];
    if (ref->split[0] && !g->o->split_hash) {
        snprintf(split, sizeof split, "%s", ref->split);
    } else {
        /* Keyed hash of the patient (or the study when no patient is
         * known), so a patient's studies share a split. */
        unsigned char mac[32];
        char msg[80];
        snprintf(msg, sizeof msg, "split:%s", has_p ? pkey : skey);
        hmac_sha256(g->o->key, strlen(g->o->key), msg, strlen(msg), mac);
        uint64_t x = 0;
        for (int i = 0; i < 8; i++)
            x = x << 8 | mac[i];
        double u = (double)(x >> 11) / 9007199254740992.0;
        snprintf(split, sizeof split, "%s",
                 u < g->o->fractions[0]                       ? "train"
                 : u < g->o->fractions[0] + g->o->fractions[1] ? "valid"
                                                                : "test");
    }
    int created;
    if (corpus_study(&g->corpus, skey, has_p ? pkey : NULL, ref->dataset, split, id, &created, e))
        return -1;
    if (created)
        g->cnt->studies_new++;
    return 0;
}

static void ref_ctrate(StudyRef *ref, const char *study, const char *patient, const char *split)
{
    memset(ref, 0, sizeof *ref);
    snprintf(ref->src, sizeof ref->src, "%s", study);
    snprintf(ref->patient, sizeof ref->patient, "%s", patient);
    snprintf(ref->split, sizeof ref->split, "%s", split);
    ref->dataset = "ctrate";
}

/* A held member's name inside its unit: the archive member, or the loose
 * file's path relative to the unit folder. */
static const char *rel_name(const UnitState *us, const char *name)
{
    size_t k = strlen(us->u->path);
    if (us->u->type == UNIT_FILES && strncmp(name, us->u->path, k) == 0 && name[k] == '/')
        return name + k + 1;
    return name;
}

/* "archive:member" or "file" into out. */
static void describe(const char *source, const char *member, char *out, size_t n)
{
    if (member && *member)
        snprintf(out, n, "%s:%s", source, member);
    else
        snprintf(out, n, "%s", source);
}

/* ================================================================ volumes */

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

/* A member's row for a volume's transaction. */
typedef struct SrcRec {
    const char *path, *member, *kind, *status;
    const char *sha;
    int64_t size;
} SrcRec;

/* Ends the transaction the caller began for one item: writes its members'
 * source rows (status NULL: each row's own; else this one for all), adds
 * those written as ignored to *ignored (when not NULL), and commits. When rc
 * (the caller's work so far) or a step here failed, rolls back instead.
 * Returns 0 or -1. */
static int sources_commit(Ingest *g, int rc, const SrcRec *srcs, int nsrc, const char *status,
                          int64_t study, int64_t *ignored, FvErr *e)
{
    for (int i = 0; rc == 0 && i < nsrc; i++) {
        const char *st = status ? status : srcs[i].status;
        if (ignored && !strcmp(st, "ignored"))
            (*ignored)++;
        rc = corpus_source_put(&g->corpus, srcs[i].path, srcs[i].member, srcs[i].sha,
                               srcs[i].size, srcs[i].kind, st, study, e);
    }
    if (rc == 0)
        rc = corpus_commit(&g->corpus, e);
    if (rc)
        corpus_rollback(&g->corpus);
    return rc ? -1 : 0;
}

/* Source geometry at float32 precision (NIfTI-1's): DICOM decimal strings
 * and NIfTI-2 doubles describing the same grid then resample with exactly
 * the same weights, so one study read from any format lands as the same
 * tensor (differences below 1e-7 relative are not geometry). */
static void affine_to_float(double a[4][4])
{
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            a[r][c] = (double)(float)a[r][c];
}

/* Stores a CT volume (HU, source geometry) for a study: skips it when the
 * study already has this volume, ignores it when the study has another.
 * Consumes v. Returns the study id (0 when nothing was stored). */
static int store_volume(Ingest *g, const StudyRef *ref, Vol *v, const char *sha,
                        const char *source, const char *src_dtype, const char *notes,
                        SrcRec *srcs, int nsrc, int64_t *study_out, FvErr *e)
{
    *study_out = 0;
    int64_t sid;
    if (study_get(g, ref, 0, &sid, e)) {
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
            if (!same)
                log_warn("%s: the study already has a volume (%s): this one is ignored", source,
                         vi.source);
            if (corpus_begin(&g->corpus, e) ||
                sources_commit(g, 0, srcs, nsrc, same ? NULL : "ignored", sid, &g->cnt->ignored,
                               e))
                return -1;
            *study_out = sid;
            return 0;
        }
    }
    VolumeRow row;
    memset(&row, 0, sizeof row);
    affine_to_float(v->affine);
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
    hu_stats(&grid, &row.hu_min, &row.hu_max, &row.hu_mean);
    int rc = corpus_begin(&g->corpus, e);
    if (rc == 0)
        rc = study_get(g, ref, 1, &sid, e);
    row.study_id = sid;
    int64_t vid;
    if (rc == 0)
        rc = corpus_volume_put(&g->corpus, &row, &vid, e);
    rc = sources_commit(g, rc, srcs, nsrc, NULL, sid, &g->cnt->ignored, e);
    if (rc == 0) {
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
static int apply_ctrate_meta(Ingest *g, const NiftiHeader *h, const char *name, Vol *v,
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

/* ================================================================ masks */

static int same_geometry(int64_t nx, int64_t ny, int64_t nz, const double a[4][4],
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
static int mask_defer(Ingest *g, const Unit *u, int no_volume)
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
static int store_mask(Ingest *g, const StudyRef *ref, Vol *m, int blank_header, const char *sha,
                      const char *source, Buf *notes, SrcRec *srcs, int nsrc, int *no_volume,
                      FvErr *e)
{
    *no_volume = 0;
    int64_t sid;
    if (study_get(g, ref, 0, &sid, e)) {
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
        if (!same)
            log_warn("%s: the study already has a mask: this one is ignored", source);
        if (corpus_begin(&g->corpus, e))
            return -1;
        return sources_commit(g, 0, srcs, nsrc, same ? NULL : "ignored", sid, &g->cnt->ignored, e);
    }
    affine_to_float(m->affine);
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
    if (rc == 0 && !same_geometry(out.nx, out.ny, out.nz, out.affine, vi.dims, vi.affine)) {
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
    if (rc == 0)
        rc = corpus_mask_put(&g->corpus, sid, vi.id, sha, source, shard, labels.data, resampled,
                             e);
    rc = sources_commit(g, rc, srcs, nsrc, NULL, sid, NULL, e);
    if (rc == 0) {
        g->cnt->masks++;
        if (notes->len)
            log_info("%s: %s", source, notes->data);
    }
    buf_free(&labels);
    return rc;
}

/* ================================================================ reports */

/* Stores a report text (UTF-8, not yet de-identified). */
static int store_report(Ingest *g, const StudyRef *ref, const char *text, size_t len,
                        const char *sha, const char *source, const char *format,
                        const char *encoding, const PhiValue *known, int nknown, SrcRec *srcs,
                        int nsrc, FvErr *e)
{
    Buf clean = {0};
    int counts[PHI_NKINDS] = {0};
    if (phi_scrub(g->phi, text, len, known, nknown, &clean, counts, e)) {
        buf_free(&clean);
        return -1;
    }
    int nphi = 0;
    for (int k = 0; k < PHI_NKINDS; k++)
        nphi += counts[k];
    if (!clean.data)
        buf_puts(&clean, "");
    const char *lang = report_language(clean.data, clean.len);
    int64_t sid;
    int rc = corpus_begin(&g->corpus, e);
    if (rc == 0)
        rc = study_get(g, ref, 1, &sid, e);
    char have[65] = "";
    if (rc == 0)
        rc = corpus_report_sha(&g->corpus, sid, have, e);
    const char *status = "ok";
    if (rc == 0 && have[0]) {
        if (strcmp(have, sha) != 0) {
            log_warn("%s: the study already has a report: this one is ignored", source);
            status = "ignored";
            g->cnt->ignored++;
        }
    } else if (rc == 0) {
        rc = corpus_report_put(&g->corpus, sid, sha, source, format, lang, encoding, clean.data,
                               nphi, e);
    }
    rc = sources_commit(g, rc, srcs, nsrc, status, sid, NULL, e);
    if (rc == 0 && !have[0]) {
        g->cnt->reports++;
        for (int k = 0; k < PHI_NKINDS; k++)
            g->cnt->phi[k] += counts[k];
    }
    buf_free(&clean);
    return rc;
}

/* CT-RATE reports.csv: one report per row, joined by VolumeName. Rows are
 * committed in batches; the table's own source row comes last, so an
 * interrupted table is read again (rows already stored are skipped). */
static int ctrate_reports_table(Ingest *g, const char *source, const char *member,
                                const unsigned char *data, size_t len, const char *sha)
{
    FvErr e = {0};
    CsvReader r = {0};
    Buf text = {0};
    const char *enc;
    int bad = report_decode(data, len, (size_t)1 << 34, &text, &enc, &e);
    if (!bad) {
        csv_open(&r, text.data, text.len, NULL, 0);
        bad = csv_header(&r, &e);
    }
    if (bad) {
        fail(g, source, member, &e);
        record_source(g, source, member, sha, (int64_t)len, "report", "failed", 0);
        csv_close(&r);
        buf_free(&text);
        return 0;
    }
    int cv = csv_col(&r, "VolumeName"), cf = csv_col(&r, "Findings_EN"),
        ci = csv_col(&r, "Impressions_EN");
    if (ci < 0)
        ci = csv_col(&r, "Impression_EN");
    if (cv < 0 || (cf < 0 && ci < 0)) {
        fail_msg(g, source, member,
                 "not a CT-RATE reports table: needs columns VolumeName and Findings_EN or "
                 "Impressions_EN");
        record_source(g, source, member, sha, (int64_t)len, "report", "failed", 0);
        csv_close(&r);
        buf_free(&text);
        return 0;
    }
    int rc, row_errors = 0;
    char where[64];
    Buf composed = {0};
    while ((rc = csv_next(&r, &e)) == 1) {
        snprintf(where, sizeof where, "%s%srow %d", member && *member ? member : "",
                 member && *member ? ":" : "", r.row);
        const char *vol = csv_field(&r, cv);
        char study[96], patient[96], split[8];
        int recon;
        if (!ctrate_parse_name(vol, study, patient, split, &recon)) {
            fail_msg(g, source, where, "VolumeName '%.80s' is not a CT-RATE volume name", vol);
            row_errors++;
            continue;
        }
        buf_reset(&composed);
        report_compose_ctrate(csv_field(&r, cf), csv_field(&r, ci), &composed);
        char rsha[65];
        sha256_hex(composed.data, composed.len, rsha);
        StudyRef ref;
        ref_ctrate(&ref, study, patient, split);
        char src[600];
        snprintf(src, sizeof src, "%s%s%s:row %d", source, member && *member ? ":" : "",
                 member && *member ? member : "", r.row);
        FvErr re = {0};
        if (store_report(g, &ref, composed.data, composed.len, rsha, src, "ctrate_csv", enc, NULL,
                         0, NULL, 0, &re)) {
            fail(g, source, where, &re);
            row_errors++;
        }
        g->cnt->table_rows++;
    }
    if (rc < 0) {
        fail(g, source, member, &e);
        row_errors++;
    }
    record_source(g, source, member, sha, (int64_t)len, "report", rc < 0 ? "failed" : "ok", 0);
    csv_close(&r);
    buf_free(&composed);
    buf_free(&text);
    return 0;
}

/* ================================================================ units */

static int hold(UnitState *us, Member *m, const char *sha, const unsigned char raw[32],
                int known, HeldKind kind, unsigned char **inflated, size_t inflated_len)
{
    if (arr_reserve(&us->h, &us->cap, us->nh, sizeof *us->h, 64))
        return -1;
    Held *h = &us->h[us->nh];
    memset(h, 0, sizeof *h);
    h->source = strdup(m->source);
    h->member = strdup(m->member ? m->member : "");
    h->name = strdup(m->name);
    if (!h->source || !h->member || !h->name) {
        free(h->source);
        free(h->member);
        free(h->name);
        return -1;
    }
    memcpy(h->sha, sha, 65);
    memcpy(h->sha_raw, raw, 32);
    h->known = known;
    h->kind = kind;
    h->size = (int64_t)m->len;
    h->relofs = m->relofs <= strlen(m->name) ? m->relofs : 0;
    if (inflated && *inflated) {
        /* Decompressed by the reader thread: keep that instead. */
        h->data = *inflated;
        h->len = inflated_len;
        *inflated = NULL;
    } else {
        h->len = m->len;
        h->data = members_take(m);
    }
    us->nh++;
    return 0;
}

static void held_free(Held *h)
{
    if (h->parsed)
        dcm_free(&h->dcm);
    free(h->source);
    free(h->member);
    free(h->name);
    free(h->data);
    memset(h, 0, sizeof *h);
}

static void held_record(Ingest *g, Held *h, const char *kind, const char *status, int64_t study)
{
    if (h->done)
        return;
    record_source(g, h->source, h->member, h->sha, h->size, kind, status, study);
    h->done = 1;
}

static void held_fail(Ingest *g, Held *h, const char *kind, const FvErr *e)
{
    if (h->done)
        return;
    fail(g, h->source, h->member, e);
    held_record(g, h, kind, "failed", 0);
}

/* The study source id for an item of this unit that has none of its own. */
static int unit_study(Ingest *g, UnitState *us, const char *item, StudyRef *ref, FvErr *e)
{
    memset(ref, 0, sizeof *ref);
    ref->dataset = "hospital";
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", us->u->path, item);
    split_from_path(path, ref->split);
    if (us->n_dicom_studies > 1)
        return err_set(e, FV_EFORMAT,
                       "the unit holds %d DICOM studies: cannot tell which one this belongs to",
                       us->n_dicom_studies);
    if (us->n_dicom_studies == 1) {
        snprintf(ref->src, sizeof ref->src, "%s", us->dicom_study);
        snprintf(ref->patient, sizeof ref->patient, "%s", us->dicom_patient);
        return 0;
    }
    if (us->n_volumes > 1) {
        /* Several volumes: join by file stem (case1.nii.gz, case1_seg.nii.gz,
         * case1.txt). */
        char stem[256];
        name_stem(item, stem, sizeof stem);
        const char *sfx[] = {"_seg", "_mask", "-seg", "-mask", "_segmentation", "_labels",
                             "_report", "-report"};
        for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++)
            if (name_ends_with(stem, sfx[i]) && strlen(stem) > strlen(sfx[i])) {
                stem[strlen(stem) - strlen(sfx[i])] = '\0';
                break;
            }
        snprintf(ref->src, sizeof ref->src, "%s", stem);
        return 0;
    }
    snprintf(ref->src, sizeof ref->src, "%s", us->u->name);
    return 0;
}

/* A CT-RATE-named item carries its own study. */
static int own_study(const char *name, StudyRef *ref)
{
    char study[96], patient[96], split[8];
    int recon;
    if (!ctrate_parse_name(name, study, patient, split, &recon))
        return 0;
    ref_ctrate(ref, study, patient, split);
    return 1;
}

/* --- NIfTI volumes and masks --- */

static void nifti_dtype_desc(const NiftiHeader *h, char *out, size_t n)
{
    const char *d = nifti_dtype_name(h->datatype);
    snprintf(out, n, "%s%s", d ? d : "?", h->big ? " big-endian" : "");
}

static void process_mask_vol(Ingest *g, UnitState *us, Held *h, Vol *m, const NiftiHeader *hdr,
                             const unsigned char *hb, size_t hl, Held *img);

static void process_nifti(Ingest *g, UnitState *us, Held *h, Held *img)
{
    FvErr e = {0};
    NiftiHeader hdr;
    Vol v;
    unsigned char *hb = NULL;
    size_t hl = 0;
    int as_mask = h->kind == H_MASK;
    if (nifti_load(h->data, h->len, img ? img->data : NULL, img ? img->len : 0, as_mask,
                   g->o->max_voxels, &hdr, &v, &hb, &hl, &e)) {
        /* A CT whose data will not fit uint8 is not a mask and vice versa;
         * report the reader's reason. */
        held_fail(g, h, as_mask ? "mask" : "nifti", &e);
        if (img)
            held_record(g, img, as_mask ? "mask" : "nifti", "failed", 0);
        return;
    }
    /* A label table makes any NIfTI a mask: read it again as labels. */
    NiftiLabel *labels = NULL;
    int nl = nifti_label_table(&hdr, hb, hl, &labels, &e);
    free(labels);
    if (!as_mask && nl > 0) {
        vol_free(&v);
        free(hb);
        hb = NULL;
        log_debug("%s: label table found: read as a mask", h->name);
        h->kind = H_MASK;
        as_mask = 1;
        if (nifti_load(h->data, h->len, img ? img->data : NULL, img ? img->len : 0, 1,
                       g->o->max_voxels, &hdr, &v, &hb, &hl, &e)) {
            held_fail(g, h, "mask", &e);
            if (img)
                held_record(g, img, "mask", "failed", 0);
            return;
        }
    }
    free(h->data);
    h->data = NULL;
    if (as_mask) {
        process_mask_vol(g, us, h, &v, &hdr, hb, hl, img);
        free(hb);
        return;
    }
    free(hb);
    StudyRef ref;
    if (!own_study(h->name, &ref) && unit_study(g, us, h->name, &ref, &e)) {
        vol_free(&v);
        held_fail(g, h, "nifti", &e);
        return;
    }
    Buf notes = {0};
    if (!strcmp(ref.dataset, "ctrate") && apply_ctrate_meta(g, &hdr, h->name, &v, &notes, &e)) {
        vol_free(&v);
        buf_free(&notes);
        held_fail(g, h, "nifti", &e);
        return;
    }
    if (hdr.ext_note[0])
        buf_printf(&notes, "%s; ", hdr.ext_note);
    char dtype[40], desc[4400];
    nifti_dtype_desc(&hdr, dtype, sizeof dtype);
    describe(h->source, h->member, desc, sizeof desc);
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
    if (store_volume(g, &ref, &v, sha, desc, dtype, notes.data, srcs, nsrc, &sid, &e)) {
        held_fail(g, h, "nifti", &e);
        if (img)
            held_record(g, img, "nifti", "failed", 0);
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
        held_fail(g, h, "mask", &e);
        return;
    }
    free(labels);
    StudyRef ref;
    if (!own_study(h->name, &ref) && unit_study(g, us, h->name, &ref, &e)) {
        vol_free(m);
        buf_free(&notes);
        held_fail(g, h, "mask", &e);
        return;
    }
    char desc[4400];
    describe(h->source, h->member, desc, sizeof desc);
    SrcRec srcs[2] = {{h->source, h->member, "mask", "ok", h->sha, h->size},
                      {NULL, NULL, "mask", "ok", NULL, 0}};
    int nsrc = 1;
    if (img) {
        srcs[1] = (SrcRec){img->source, img->member, "mask", "ok", img->sha, img->size};
        nsrc = 2;
    }
    int blank = hdr->sform_code <= 0 && hdr->qform_code <= 0, no_volume;
    if (store_mask(g, &ref, m, blank, h->sha, desc, &notes, srcs, nsrc, &no_volume, &e)) {
        if (mask_defer(g, us->u, no_volume)) {
            h->done = 1;
            if (img)
                img->done = 1;
        } else {
            held_fail(g, h, "mask", &e);
            if (img)
                held_record(g, img, "mask", "failed", 0);
        }
    } else {
        h->done = 1;
        if (img)
            img->done = 1;
    }
    buf_free(&notes);
}

/* Per-class masks (seg/<class>.nii.gz): all the unit's parts merged. */
static void process_class_masks(Ingest *g, UnitState *us)
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
            held_fail(g, h, "mask", &e);
            continue;
        }
        free(h->data);
        h->data = NULL;
        int id = ts_class_id(&g->ts, strrchr(h->name, '/') ? strrchr(h->name, '/') + 1 : h->name);
        if (!merged.data) {
            if (vol_alloc(&merged, VOL_U8, part.nx, part.ny, part.nz, g->o->max_voxels, &e)) {
                vol_free(&part);
                held_fail(g, h, "mask", &e);
                ok = 0;
                break;
            }
            memcpy(merged.affine, part.affine, sizeof merged.affine);
            blank = hdr.sform_code <= 0 && hdr.qform_code <= 0;
        } else if (!same_geometry(part.nx, part.ny, part.nz, part.affine,
                                  (int64_t[3]){merged.nx, merged.ny, merged.nz}, merged.affine)) {
            vol_free(&part);
            fail_msg(g, h->source, h->member,
                     "class mask grid differs from the other class masks of the study");
            held_record(g, h, "mask", "failed", 0);
            continue;
        }
        /* Binary files: any non-zero voxel is the class. */
        if (mask_merge_class(&merged, &part, id, &overlaps, &e)) {
            vol_free(&part);
            held_fail(g, h, "mask", &e);
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
    snprintf(desc, sizeof desc, "%s:%s/ (%d class masks)", us->u->path, rel_name(us, folder), ns);
    if (!own_study(folder, &ref) && unit_study(g, us, folder, &ref, &e)) {
        for (int i = 0; i < ns; i++)
            record_source(g, srcs[i].path, srcs[i].member, srcs[i].sha, srcs[i].size, "mask",
                          "failed", 0);
        fail(g, h0->source, folder, &e);
    } else if (store_mask(g, &ref, &merged, blank, sha, desc, &notes, srcs, ns, &no_volume, &e) &&
               !mask_defer(g, us->u, no_volume)) {
        fail(g, h0->source, folder, &e);
        for (int i = 0; i < ns; i++)
            record_source(g, srcs[i].path, srcs[i].member, srcs[i].sha, srcs[i].size, "mask",
                          "failed", 0);
    }
    for (int i = first; i < us->nh; i++)
        if (us->h[i].kind == H_CLASSMASK)
            us->h[i].done = 1;
    free(srcs);
    buf_free(&notes);
}

/* --- DICOM --- */

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
static void dicom_headers(Ingest *g, UnitState *us)
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
                held_fail(g, h, "dicom", &e);
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
            }
        }
    }
    us->n_dicom_studies = ns;
}

/* Decodes, groups and stacks the unit's DICOM images into volumes. */
static void dicom_volumes(Ingest *g, UnitState *us)
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
        if (!im->has_pixels) {
            err_set(&e, FV_EFORMAT, "DICOM image without pixel data (SOP class %s)",
                    im->sop_class[0] ? im->sop_class : "unknown");
            held_fail(g, h, "dicom", &e);
            continue;
        }
        int64_t px = (int64_t)im->rows * im->cols * im->frames;
        if (px > budget - held) {
            err_set(&e, FV_ELIMIT,
                    "the unit holds more than %lld voxels of DICOM images (2 x ingest.max_voxels)",
                    (long long)budget);
            held_fail(g, h, "dicom", &e);
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
            dcm_frame_geo(&h->dcm, im, k, &s->geo);
            s->rows = im->rows;
            s->cols = im->cols;
            memcpy(s->sha, h->sha_raw, 32);
            nsl++;
        }
        if (e.code) {
            /* Frames of this file decoded so far are dropped with it. */
            while (nsl > 0 && sl[nsl - 1].member == i)
                slice_free(&sl[--nsl]);
            held_fail(g, h, "dicom", &e);
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
        snprintf(dir, sizeof dir, "%s", rel_name(us, h0->name));
        char *slash = strrchr(dir, '/');
        if (slash)
            slash[1] = '\0';
        else
            snprintf(dir, sizeof dir, "./");
        if (series_choose(pick, np, &uid, &notes, &e)) {
            snprintf(where, sizeof where, "%s (%d DICOM images)", dir, np);
            fail(g, us->u->path, where, &e);
            for (int k = 0; k < np; k++) {
                Held *h = &us->h[pick[k]->member];
                held_record(g, h, "dicom", "failed", 0);
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
        int series_number = 0, all_loc = 1;
        for (int k = 0; k < np; k++)
            if (!strcmp(pick[k]->series_uid, series_uid)) {
                ser[ns++] = pick[k];
                series_number = pick[k]->series_number;
                all_loc &= pick[k]->localizer;
            }
        snprintf(where, sizeof where, "%s (series %d, %d images)", dir, series_number, ns);
        char desc[5200];
        snprintf(desc, sizeof desc, "%s:%s (series %d, %d images)", us->u->path, dir,
                 series_number, ns);
        if (all_loc) {
            log_warn("%s:%s: only scout/localizer images: no volume", us->u->path, where);
            for (int k = 0; k < np; k++)
                held_record(g, &us->h[pick[k]->member], "dicom", "ignored", 0);
            free(ser);
            free(sst);
            buf_free(&notes);
            continue;
        }
        SeriesOut so;
        if (series_assemble(ser, ns, g->o->max_voxels, &so, sst, &notes, &e)) {
            fail(g, us->u->path, where, &e);
            for (int k = 0; k < np; k++)
                held_record(g, &us->h[pick[k]->member], "dicom", "failed", 0);
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
            for (int q = 0; q < ns; q++)
                if (ser[q]->member == mi && sst[q] == SLICE_USED)
                    used = 1;
            for (int q = 0; q < nsrc && !seen; q++)
                seen = srcs[q].sha == us->h[mi].sha;
            if (seen)
                continue;
            Held *h = &us->h[mi];
            srcs[nsrc++] = (SrcRec){h->source, h->member, "dicom", used ? "ok" : "ignored",
                                    h->sha, h->size};
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
        snprintf(ref.patient, sizeof ref.patient, "%s", h0->im.patient_id);
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", us->u->path, h0->name);
        split_from_path(path, ref.split);
        if (!ref.src[0]) {
            /* No StudyInstanceUID: the unit names the study. */
            snprintf(ref.src, sizeof ref.src, "%s", us->u->name);
        }
        int64_t sid;
        if (!srcs) {
            vol_free(&so.vol);
        } else if (store_volume(g, &ref, &so.vol, sha, desc, dtype, notes.data, srcs, nsrc, &sid,
                                &e)) {
            fail(g, us->u->path, where, &e);
            for (int k = 0; k < nsrc; k++)
                record_source(g, srcs[k].path, srcs[k].member, srcs[k].sha, srcs[k].size,
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

/* --- reports of the unit --- */

static void process_report(Ingest *g, UnitState *us, Held *h)
{
    FvErr e = {0};
    Buf text = {0};
    const char *enc;
    if (report_decode(h->data, h->len, (size_t)g->o->max_report_bytes, &text, &enc, &e)) {
        held_fail(g, h, "report", &e);
        buf_free(&text);
        return;
    }
    StudyRef ref;
    if (!own_study(h->name, &ref) && unit_study(g, us, h->name, &ref, &e)) {
        held_fail(g, h, "report", &e);
        buf_free(&text);
        return;
    }
    char desc[4400];
    describe(h->source, h->member, desc, sizeof desc);
    SrcRec src = {h->source, h->member, "report", "ok", h->sha, h->size};
    if (store_report(g, &ref, text.data ? text.data : "", text.len, h->sha, desc, "txt", enc,
                     us->phi, us->nphi, &src, 1, &e))
        held_fail(g, h, "report", &e);
    else
        h->done = 1;
    buf_free(&text);
}

/* JSON lines: {"study_id" | "StudyInstanceUID" | "VolumeName" | "id": ...,
 * "text" | "report" | "findings" + "impression": ...} per line. */
static void process_jsonl(Ingest *g, UnitState *us, Held *h)
{
    FvErr e = {0};
    Buf text = {0};
    const char *enc;
    if (report_decode(h->data, h->len, (size_t)1 << 34, &text, &enc, &e)) {
        held_fail(g, h, "report", &e);
        buf_free(&text);
        return;
    }
    int line = 0, stored = 0, bad = 0;
    const char *p = text.data ? text.data : "", *end = p + text.len;
    /* A .json file may be one (pretty-printed) object. */
    JsonValue *whole = NULL;
    int single = json_parse(p, (size_t)(end - p), &whole, &e) == 0;
    err_clear(&e);
    /* JSON that never names a report field is not a report file (ground
     * truth, sidecars): ignored, not an error per line. */
    static const char *fields[] = {"\"text\"", "\"report\"", "\"findings\"", "\"impression\"",
                                   "\"Findings_EN\"", "\"Impressions_EN\""};
    int any = 0;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0] && !any; i++)
        any = strstr(p, fields[i]) != NULL;
    if (!any) {
        json_free(&whole);
        held_record(g, h, "other", "ignored", 0);
        buf_free(&text);
        return;
    }
    while (p < end || single) {
        const char *nl = single ? end : memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            nl = end;
        line++;
        JsonValue *v = NULL;
        size_t ln = (size_t)(nl - p);
        int blank = 1;
        for (size_t i = 0; i < ln; i++)
            blank &= isspace((unsigned char)p[i]) != 0;
        if (single) {
            v = whole;
            whole = NULL;
        } else if (blank) {
            p = nl + 1;
            continue;
        } else if (json_parse(p, ln, &v, &e)) {
            char where[300];
            snprintf(where, sizeof where, "%s%sline %d", h->member, h->member[0] ? ":" : "", line);
            fail(g, h->source, where, &e);
            err_clear(&e);
            bad++;
            p = nl + 1;
            continue;
        }
        const char *id = json_get_str(v, "study_id", NULL);
        if (!id) id = json_get_str(v, "StudyInstanceUID", NULL);
        if (!id) id = json_get_str(v, "VolumeName", NULL);
        if (!id) id = json_get_str(v, "study", NULL);
        if (!id) id = json_get_str(v, "id", NULL);
        const char *t = json_get_str(v, "text", NULL);
        if (!t) t = json_get_str(v, "report", NULL);
        Buf composed = {0};
        if (!t) {
            const char *f = json_get_str(v, "findings", json_get_str(v, "Findings_EN", NULL));
            const char *im = json_get_str(v, "impression", json_get_str(v, "Impressions_EN", NULL));
            if (f || im) {
                report_compose_ctrate(f ? f : "", im ? im : "", &composed);
                t = composed.data;
            }
        }
        char where[300];
        snprintf(where, sizeof where, "%s%sline %d", h->member, h->member[0] ? ":" : "", line);
        if (!t) {
            fail_msg(g, h->source, where, "JSON report without a text, report, findings or "
                                          "impression field");
            bad++;
        } else {
            StudyRef ref;
            int ok = 1;
            if (id && !own_study(id, &ref)) {
                memset(&ref, 0, sizeof ref);
                ref.dataset = "hospital";
                snprintf(ref.src, sizeof ref.src, "%s", id);
                char path[4200];
                snprintf(path, sizeof path, "%s/%s", us->u->path, h->name);
                split_from_path(path, ref.split);
            } else if (!id && unit_study(g, us, h->name, &ref, &e)) {
                fail(g, h->source, where, &e);
                ok = 0;
                bad++;
            }
            if (ok) {
                char sha[65], desc[4600];
                sha256_hex(t, strlen(t), sha);
                snprintf(desc, sizeof desc, "%s%s%s:line %d", h->source, h->member[0] ? ":" : "",
                         h->member, line);
                if (store_report(g, &ref, t, strlen(t), sha, desc, "jsonl", enc, us->phi, us->nphi,
                                 NULL, 0, &e)) {
                    fail(g, h->source, where, &e);
                    err_clear(&e);
                    bad++;
                } else {
                    stored++;
                }
            }
        }
        buf_free(&composed);
        json_free(&v);
        if (single)
            break;
        p = nl + 1;
    }
    json_free(&whole);
    if (!stored && !bad) {
        held_record(g, h, "other", "ignored", 0);
    } else {
        held_record(g, h, "report", bad && !stored ? "failed" : "ok", 0);
    }
    buf_free(&text);
}

static void process_sr(Ingest *g, UnitState *us, Held *h)
{
    FvErr e = {0};
    char *raw = NULL;
    size_t rl = 0;
    if (dcm_sr_text(&h->dcm, &raw, &rl, &e)) {
        held_fail(g, h, "dicom", &e);
        return;
    }
    if (!raw || !rl) {
        free(raw);
        log_info("%s:%s: structured report without text: ignored", h->source, h->member);
        held_record(g, h, "dicom", "ignored", 0);
        return;
    }
    Buf text = {0};
    const char *enc;
    if (report_decode_dicom((const unsigned char *)raw, rl, h->im.charset, &text, &enc, &e)) {
        free(raw);
        buf_free(&text);
        held_fail(g, h, "dicom", &e);
        return;
    }
    free(raw);
    StudyRef ref;
    memset(&ref, 0, sizeof ref);
    ref.dataset = "hospital";
    snprintf(ref.src, sizeof ref.src, "%s", h->im.study_uid[0] ? h->im.study_uid : us->u->name);
    snprintf(ref.patient, sizeof ref.patient, "%s", h->im.patient_id);
    char path[4200], desc[4400];
    snprintf(path, sizeof path, "%s/%s", us->u->path, h->name);
    split_from_path(path, ref.split);
    describe(h->source, h->member, desc, sizeof desc);
    SrcRec src = {h->source, h->member, "dicom", "ok", h->sha, h->size};
    if (store_report(g, &ref, text.data ? text.data : "", text.len, h->sha, desc, "dicom_sr", enc,
                     us->phi, us->nphi, &src, 1, &e))
        held_fail(g, h, "dicom", &e);
    else
        h->done = 1;
    buf_free(&text);
}

/* ================================================================ members */

static int sniff_nifti(const unsigned char *p, size_t n)
{
    unsigned char head[4];
    size_t got = 0;
    if (gz_is_gzip(p, n)) {
        FvErr e = {0};
        if (gz_peek(p, n, head, 4, &got, &e) || got < 4)
            return 0;
        p = head;
        n = 4;
    }
    if (n < 4)
        return 0;
    int32_t le = (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                           (uint32_t)p[3] << 24);
    int32_t be = (int32_t)((uint32_t)p[3] | (uint32_t)p[2] << 8 | (uint32_t)p[1] << 16 |
                           (uint32_t)p[0] << 24);
    return le == 348 || le == 540 || be == 348 || be == 540;
}

/* What a member is, from its name and, when that does not say, its
 * bytes. */
static NameKind member_kind(const Member *m)
{
    NameKind k = name_kind(m->name);
    if (k != NK_UNKNOWN)
        return k;
    if (dcm_sniff(m->data, m->len))
        return NK_DICOM;
    if (sniff_nifti(m->data, m->len))
        return NK_NIFTI;
    return NK_IGNORE;
}

/* One member (hashed, and for .nii.gz inflated, by the reader thread). */
static void handle_member(Ingest *g, UnitState *us, Member *m, const char *sha,
                          const unsigned char raw[32], unsigned char **inflated,
                          size_t inflated_len)
{
    g->cnt->members++;
    g->cnt->bytes_members += (int64_t)m->len;
    FvErr e = {0};
    char status[16];
    int st = corpus_source_status(&g->corpus, sha, status, &e);
    if (st < 0) {
        fail(g, m->source, m->member, &e);
        return;
    }
    int known = st == 1 && strcmp(status, "failed") != 0;
    NameKind k = member_kind(m);
    HeldKind hk = H_OTHER;
    switch (k) {
    case NK_DICOM: hk = H_DICOM; break;
    case NK_NIFTI: {
        hk = name_is_mask_path(m->name + (m->relofs <= strlen(m->name) ? m->relofs : 0))
                 ? H_MASK
                 : H_VOLUME;
        if (hk == H_MASK) {
            const char *b = strrchr(m->name, '/');
            if (ts_class_id(&g->ts, b ? b + 1 : m->name) > 0)
                hk = H_CLASSMASK;
        }
        break;
    }
    case NK_HDR: hk = H_HDR; break;
    case NK_IMG: hk = H_IMG; break;
    case NK_TXT: hk = H_TXT; break;
    case NK_JSON: hk = H_JSON; break;
    case NK_TABLE_META: {
        /* Always read: blank-header volumes of this run need it. */
        int bad = 0;
        if (ctrate_meta_load(&g->meta, (const char *)m->data, m->len, &bad, &e)) {
            fail(g, m->source, m->member, &e);
            if (!known)
                record_source(g, m->source, m->member, sha, (int64_t)m->len, "metadata", "failed",
                              0);
            return;
        }
        if (bad)
            log_warn("%s: %d metadata rows without a VolumeName skipped", m->source, bad);
        if (known)
            g->cnt->known++;
        else
            record_source(g, m->source, m->member, sha, (int64_t)m->len, "metadata", "ok", 0);
        return;
    }
    case NK_TABLE_REPORTS:
        if (known) {
            g->cnt->known++;
            return;
        }
        ctrate_reports_table(g, m->source, m->member, m->data, m->len, sha);
        return;
    case NK_TABLE_OTHER:
        /* labels.csv and other tables: eval reads truth tables itself. */
        if (known)
            g->cnt->known++;
        else
            record_source(g, m->source, m->member, sha, (int64_t)m->len, "metadata", "ignored",
                          0);
        return;
    case NK_ARCHIVE:
        if (!known) {
            log_warn("%s:%s: an archive inside an archive is not read: extract it or give it "
                     "as an input",
                     m->source, m->member);
            record_source(g, m->source, m->member, sha, (int64_t)m->len, "other", "ignored", 0);
        } else {
            g->cnt->known++;
        }
        return;
    default:
        if (known)
            g->cnt->known++;
        else
            record_source(g, m->source, m->member, sha, (int64_t)m->len, "other", "ignored", 0);
        return;
    }
    if (known && hk != H_DICOM && hk != H_HDR && hk != H_IMG) {
        g->cnt->known++;
        return;
    }
    if (known)
        g->cnt->known++;
    /* CT-RATE volumes and masks name their own study: done now, so a folder
     * of thousands of them is never held in memory. */
    StudyRef ref;
    if ((hk == H_VOLUME || hk == H_MASK) && own_study(m->name, &ref)) {
        UnitState one;
        memset(&one, 0, sizeof one);
        one.u = us->u;
        if (hold(&one, m, sha, raw, known, hk, inflated, inflated_len) == 0) {
            process_nifti(g, &one, &one.h[0], NULL);
            held_free(&one.h[0]);
        }
        free(one.h);
        return;
    }
    if (hold(us, m, sha, raw, known, hk, inflated, inflated_len))
        fail_msg(g, m->source, m->member, "out of memory holding the member");
}

/* The end of a unit: DICOM series, then volumes, masks, reports. */
static void finish_unit(Ingest *g, UnitState *us)
{
    dicom_headers(g, us);
    dicom_volumes(g, us);
    /* Free what is left of DICOM images (headers of SR stay parsed). */
    for (int i = 0; i < us->nh; i++) {
        Held *h = &us->h[i];
        if (h->kind == H_DICOM && h->parsed && !h->im.is_sr) {
            dcm_free(&h->dcm);
            h->parsed = 0;
            free(h->data);
            h->data = NULL;
        }
    }
    for (int i = 0; i < us->nh; i++)
        us->n_volumes += us->h[i].kind == H_VOLUME;
    /* .hdr/.img pairs: by stem. */
    for (int i = 0; i < us->nh; i++) {
        Held *h = &us->h[i];
        if (h->kind != H_HDR || h->done)
            continue;
        char s1[256], s2[256];
        name_stem(h->name, s1, sizeof s1);
        Held *img = NULL;
        for (int k = 0; k < us->nh && !img; k++) {
            if (us->h[k].kind != H_IMG || us->h[k].done)
                continue;
            name_stem(us->h[k].name, s2, sizeof s2);
            char d1[4096], d2[4096];
            snprintf(d1, sizeof d1, "%s", h->name);
            snprintf(d2, sizeof d2, "%s", us->h[k].name);
            char *a = strrchr(d1, '/'), *b = strrchr(d2, '/');
            if (a) *a = 0; else d1[0] = 0;
            if (b) *b = 0; else d2[0] = 0;
            if (!strcmp(s1, s2) && !strcmp(d1, d2))
                img = &us->h[k];
        }
        if (h->known && (!img || img->known)) {
            h->done = 1;
            if (img)
                img->done = 1;
            continue;
        }
        h->kind = name_is_mask_path(h->name + h->relofs) ? H_MASK : H_VOLUME;
        if (h->kind == H_VOLUME)
            us->n_volumes++;
        if (!img) {
            FvErr e = {0};
            /* A NIfTI single file misnamed .hdr reads fine without one. */
            NiftiHeader hdr;
            if (h->len >= 348 && nifti_header_parse(h->data, h->len, &hdr, &e) == 0 && !hdr.pair) {
                process_nifti(g, us, h, NULL);
                continue;
            }
            err_set(&e, FV_EFORMAT, "Analyze/NIfTI header without its .img file beside it");
            held_fail(g, h, "nifti", &e);
            continue;
        }
        process_nifti(g, us, h, img);
    }
    for (int i = 0; i < us->nh; i++) {
        Held *h = &us->h[i];
        if (h->kind == H_IMG && !h->done) {
            if (h->known) {
                h->done = 1;
                continue;
            }
            FvErr e = {0};
            err_set(&e, FV_EFORMAT, ".img file without its .hdr header");
            held_fail(g, h, "nifti", &e);
        }
    }
    for (int i = 0; i < us->nh; i++)
        if (us->h[i].kind == H_VOLUME && !us->h[i].done)
            process_nifti(g, us, &us->h[i], NULL);
    for (int i = 0; i < us->nh; i++)
        if (us->h[i].kind == H_MASK && !us->h[i].done)
            process_nifti(g, us, &us->h[i], NULL);
    process_class_masks(g, us);
    for (int i = 0; i < us->nh; i++) {
        Held *h = &us->h[i];
        if (h->done)
            continue;
        if (h->kind == H_TXT)
            process_report(g, us, h);
        else if (h->kind == H_JSON)
            process_jsonl(g, us, h);
        else if (h->kind == H_DICOM && h->parsed && h->im.is_sr && !h->known)
            process_sr(g, us, h);
    }
    for (int i = 0; i < us->nh; i++)
        held_free(&us->h[i]);
    free(us->h);
    us->h = NULL;
    us->nh = us->cap = 0;
}

/* On the reader thread: is this member new (worth inflating ahead)? */
static int wanted_member(void *ctx, const char *sha)
{
    Db *ro = ctx;
    int64_t n;
    FvErr e = {0};
    if (db_query_int(ro, &e, &n, NULL,
                     "SELECT count(*) FROM sources WHERE sha256 = ? AND status != 'failed'", "s",
                     sha))
        return 1;
    return n == 0;
}

/* Drops what was read of a unit that cannot be finished: a truncated or
 * corrupt archive (its members are recorded as failed, retried by the next
 * run: a series cut short would look whole), or a stop (nothing recorded). */
static void abandon_unit(Ingest *g, UnitState *us, int broken)
{
    for (int i = 0; i < us->nh; i++) {
        if (broken && !us->h[i].known)
            held_record(g, &us->h[i], us->h[i].kind == H_DICOM ? "dicom" : "other", "failed", 0);
        held_free(&us->h[i]);
    }
    free(us->h);
    us->h = NULL;
    us->nh = us->cap = 0;
}

/* Consumes the reader's items unit by unit. */
static int process_units(Ingest *g, const UnitList *units, Progress *prog, FvErr *e)
{
    Reader *rd;
    /* 192 MiB of read-ahead: about one study's members ahead. */
    if (reader_start(&rd, units, g->member_limit, (size_t)192 << 20, &stop_requested, e))
        return -1;
    /* The reader asks its own read-only connection whether a .nii.gz
     * member is already in the corpus before inflating it. */
    Db *ro = NULL;
    FvErr re = {0};
    if (db_open(&ro, g->corpus.db->path, DB_READONLY | DB_MUST_EXIST, &re) == 0)
        reader_inflate_nifti(rd, g->o->max_voxels, wanted_member, ro);
    else
        reader_inflate_nifti(rd, g->o->max_voxels, NULL, NULL);
    int64_t base = 0;
    for (int u = 0; u < units->n && !stop_requested && !g->fatal.code; u++) {
        UnitState us;
        memset(&us, 0, sizeof us);
        us.u = &units->u[u];
        g->cur = &us;
        g->cnt->units++;
        int broken = 0, ended = 0;
        ReadItem it;
        while (!ended && !g->fatal.code && reader_next(rd, &it)) {
            if (it.kind == RI_END) {
                ended = 1;
            } else if (it.kind == RI_ERROR) {
                fail(g, it.m.source, it.m.member, &it.err);
                broken |= it.fatal;
            } else if (!stop_requested) {
                handle_member(g, &us, &it.m, it.sha, it.sha_raw, &it.inflated,
                              it.inflated_len);
            }
            if (prog)
                progress_set(prog, (base + it.disk) >> 20);
            reader_item_free(&it);
        }
        if (broken || stop_requested || !ended)
            abandon_unit(g, &us, broken);
        else
            finish_unit(g, &us);
        g->cur = NULL;
        base += units->u[u].bytes;
        if (prog)
            progress_set(prog, base >> 20);
    }
    reader_close(&rd);
    db_close(&ro);
    if (g->fatal.code) {
        *e = g->fatal;
        return -1;
    }
    return 0;
}

/* The second pass: the units of masks put off by the first, read again now
 * that every volume of the run is in (their other members are known and
 * skipped). A mask still without its volume fails as usual. The counts of
 * units and members stay those of the inputs. */
static int read_deferred(Ingest *g, FvErr *e)
{
    log_info("%lld mask(s) came before their CT volume: reading %d unit(s) again",
             (long long)g->masks_deferred, g->n_deferred);
    UnitList again;
    memset(&again, 0, sizeof again);
    again.u = malloc((size_t)g->n_deferred * sizeof *again.u);
    if (!again.u)
        return err_set(e, FV_ENOMEM, "ingest: out of memory");
    /* Shallow copies: the walk's list still owns the names and paths. */
    for (int i = 0; i < g->n_deferred; i++) {
        again.u[i] = *g->deferred[i];
        again.bytes += again.u[i].bytes;
    }
    again.n = again.cap = g->n_deferred;
    IngestCounts kept = *g->cnt;
    g->defer_masks = 0;
    int rc = process_units(g, &again, NULL, e);
    g->cnt->units = kept.units;
    g->cnt->members = kept.members;
    g->cnt->known = kept.known;
    g->cnt->bytes_members = kept.bytes_members;
    free(again.u);
    return rc;
}

int ingest_run(Db *db, Run *run, const IngestOpts *o, char *const *inputs, int ninputs,
               int progress, IngestCounts *c, FvErr *e)
{
    memset(c, 0, sizeof *c);
    double t0 = now_seconds();
    Ingest g;
    memset(&g, 0, sizeof g);
    g.o = o;
    g.run = run;
    g.cnt = c;
    /* A member may be a whole volume of float64 plus headers. */
    g.member_limit = (size_t)o->max_voxels * 8 + ((size_t)64 << 20);
    if (corpus_open(&g.corpus, db, run, e) || ts_classes_load(&g.ts, e) || phi_new(&g.phi, e))
        return -1;
    g.corpus.scrub = scrub_name;
    g.corpus.scrub_ctx = &g;
    int ntmp, norph;
    if (corpus_sweep(&g.corpus, &ntmp, &norph, e)) {
        phi_free(&g.phi);
        return -1;
    }
    c->swept_tmp = ntmp;
    c->swept_orphans = norph;
    if (ntmp || norph)
        log_info("removed %d temporary file(s) and %d unreferenced shard(s) left by an "
                 "interrupted run",
                 ntmp, norph);
    UnitList units;
    if (walk_inputs(inputs, ninputs, db->path, &units, e)) {
        phi_free(&g.phi);
        return -1;
    }
    c->bytes_disk = units.bytes;
    Progress prog;
    if (progress)
        progress_start(&prog, "ingest", units.bytes >> 20, "MiB");
    g.defer_masks = 1;
    int rc = process_units(&g, &units, progress ? &prog : NULL, e);
    if (progress)
        progress_end(&prog);
    if (rc == 0 && !stop_requested && g.n_deferred > 0)
        rc = read_deferred(&g, e);
    free(g.deferred);
    walk_free(&units);
    ctrate_meta_free(&g.meta);
    phi_free(&g.phi);
    c->seconds = now_seconds() - t0;
    return rc < 0 ? -1 : stop_requested ? 1 : 0;
}
