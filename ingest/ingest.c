#include "ingest.h"
#include "ingest_internal.h"

#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "corpus.h"
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
    F(ignored); F(failed); F(errors); F(swept_tmp); F(swept_orphans); F(other_shard);
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
    int st = corpus_source_status(&g->corpus, sha, m->source, m->member, status, &e);
    if (st < 0) {
        ingest_fail(g, m->source, m->member, &e);
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
            ingest_fail(g, m->source, m->member, &e);
            if (!known)
                ingest_record_source(g, m->source, m->member, sha, (int64_t)m->len, "metadata", "failed",
                              0);
            return;
        }
        if (bad)
            log_warn("%s: %d metadata rows without a VolumeName skipped", m->source, bad);
        if (known)
            g->cnt->known++;
        else
            ingest_record_source(g, m->source, m->member, sha, (int64_t)m->len, "metadata", "ok", 0);
        return;
    }
    case NK_TABLE_REPORTS:
        if (known) {
            g->cnt->known++;
            return;
        }
        ingest_ctrate_reports_table(g, m->source, m->member, m->data, m->len, sha);
        return;
    case NK_TABLE_OTHER:
        /* labels.csv and other tables: eval reads truth tables itself. */
        if (known)
            g->cnt->known++;
        else
            ingest_record_ignored(g, m->source, m->member, sha, (int64_t)m->len, "metadata",
                                  "a table other than metadata.csv and reports.csv (eval reads "
                                  "truth tables itself)",
                                  0);
        return;
    case NK_ARCHIVE:
        if (!known) {
            log_warn("%s:%s: an archive inside an archive is not read: extract it or give it "
                     "as an input",
                     m->source, m->member);
            ingest_record_ignored(g, m->source, m->member, sha, (int64_t)m->len, "other",
                                  "an archive inside an archive", 0);
        } else {
            g->cnt->known++;
        }
        return;
    default:
        if (known)
            g->cnt->known++;
        else
            ingest_record_ignored(g, m->source, m->member, sha, (int64_t)m->len, "other",
                                  "not a CT volume, mask, report or table fvlm reads", 0);
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
    if ((hk == H_VOLUME || hk == H_MASK) && ingest_own_study(m->name, &ref)) {
        UnitState one;
        memset(&one, 0, sizeof one);
        one.u = us->u;
        if (hold(&one, m, sha, raw, known, hk, inflated, inflated_len) == 0) {
            ingest_process_nifti(g, &one, &one.h[0], NULL);
            held_free(&one.h[0]);
        }
        free(one.h);
        return;
    }
    if (hold(us, m, sha, raw, known, hk, inflated, inflated_len))
        ingest_fail_msg(g, m->source, m->member, "out of memory holding the member");
}

/* The end of a unit: DICOM series, then volumes, masks, reports. */
static void finish_unit(Ingest *g, UnitState *us)
{
    ingest_dicom_headers(g, us);
    ingest_dicom_volumes(g, us);
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
        us->n_volumes += us->h[i].kind == H_VOLUME && ingest_nifti_maybe_ct(&us->h[i]);
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
                ingest_process_nifti(g, us, h, NULL);
                continue;
            }
            err_set(&e, FV_EFORMAT, "Analyze/NIfTI header without its .img file beside it");
            ingest_held_fail(g, h, "nifti", &e);
            continue;
        }
        ingest_process_nifti(g, us, h, img);
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
            ingest_held_fail(g, h, "nifti", &e);
        }
    }
    for (int i = 0; i < us->nh; i++)
        if (us->h[i].kind == H_VOLUME && !us->h[i].done)
            ingest_process_nifti(g, us, &us->h[i], NULL);
    /* Named as masks: those whose header may hold a CT first (a CT in a
     * seg/ folder is read as a CT, by content), so the masks find it. */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < us->nh; i++)
            if (us->h[i].kind == H_MASK && !us->h[i].done &&
                ingest_nifti_maybe_ct(&us->h[i]) == (pass == 0))
                ingest_process_nifti(g, us, &us->h[i], NULL);
    ingest_process_class_masks(g, us);
    for (int i = 0; i < us->nh; i++) {
        Held *h = &us->h[i];
        if (h->done)
            continue;
        if (h->kind == H_TXT)
            ingest_process_report(g, us, h);
        else if (h->kind == H_JSON)
            ingest_process_jsonl(g, us, h);
        else if (h->kind == H_DICOM && h->parsed && h->im.is_sr && !h->known)
            ingest_process_sr(g, us, h);
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
            ingest_held_record(g, &us->h[i], us->h[i].kind == H_DICOM ? "dicom" : "other", "failed", 0);
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
    for (int u = 0; u < units->n && !stop_requested; u++) {
        UnitState us;
        memset(&us, 0, sizeof us);
        us.u = &units->u[u];
        g->cur = &us;
        g->cnt->units++;
        int broken = 0, ended = 0;
        ReadItem it;
        while (!ended && reader_next(rd, &it)) {
            if (it.kind == RI_END) {
                ended = 1;
            } else if (it.kind == RI_ERROR) {
                ingest_fail(g, it.m.source, it.m.member, &it.err);
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
    g.corpus.scrub = ingest_scrub_name;
    g.corpus.scrub_ctx = &g;
    int64_t renamed;
    if (corpus_deid_names(&g.corpus, o->key, &renamed, e)) {
        phi_free(&g.phi);
        return -1;
    }
    if (renamed)
        log_info("%lld name(s) stored before names were de-identified are now keyed hashes",
                 (long long)renamed);
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
