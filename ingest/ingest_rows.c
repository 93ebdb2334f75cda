/* ingest: error rows, source rows and the study a member belongs to. */
#include "ingest_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "deid.h"
#include "log.h"
#include "names.h"
#include "sha256.h"

/* The stored form of an error's reason: the item's names in it replaced
 * by their de-identified forms (and any other path-like word), then the
 * PHI patterns. Returns -1 when it cannot be de-identified. */
static int clean_reason(Ingest *g, const char *source, const char *member, const char *msg,
                        Buf *out, FvErr *e)
{
    Buf a = {0}, b = {0};
    int rc = 0;
    /* The names as given, longest first, so "archive:member" goes whole. */
    const char *names[2] = {source, member && *member ? member : NULL};
    buf_puts(&a, msg);
    for (int k = 0; k < 2 && rc == 0; k++) {
        if (!names[k] || !*names[k] || !a.data)
            continue;
        Buf h = {0};
        rc = deid_path(g->o->key, names[k], &h, e);
        size_t nl = strlen(names[k]);
        buf_reset(&b);
        for (const char *p = a.data; rc == 0 && *p;) {
            const char *q = strstr(p, names[k]);
            if (!q) {
                buf_puts(&b, p);
                break;
            }
            buf_append(&b, p, (size_t)(q - p));
            buf_append(&b, h.data, h.len);
            p = q + nl;
        }
        buf_free(&h);
        if (rc == 0) {
            Buf t = a;
            a = b;
            b = t;
            if (!a.data)
                buf_puts(&a, "");
        }
    }
    buf_reset(&b);
    if (rc == 0)
        rc = deid_text_paths(g->o->key, a.data ? a.data : "", &b, e);
    int counts[PHI_NKINDS] = {0};
    if (rc == 0)
        rc = phi_scrub(g->phi, b.data, b.len, g->cur ? g->cur->phi : NULL,
                       g->cur ? g->cur->nphi : 0, out, counts, e);
    if (rc == 0 && (a.failed || b.failed || out->failed))
        rc = err_set(e, FV_ENOMEM, "out of memory");
    buf_free(&a);
    buf_free(&b);
    return rc ? -1 : 0;
}

void ingest_fail(Ingest *g, const char *source, const char *member, const FvErr *err)
{
    if (g->fatal.code)
        return;
    if (err->code == FV_EDB || g->corpus.write_failed) {
        g->fatal = *err;
        return;
    }
    /* The line on stderr names the real file (the operator has to find
     * it); the `errors` row stores de-identified names, as every table.
     * A name that cannot be de-identified is stored as a placeholder. */
    if (member && *member)
        log_error("%s:%s: %s", source, member, err->msg);
    else
        log_error("%s: %s", source, err->msg);
    g->cnt->errors++;
    g->run->n_errors++;
    static const char withheld[] = "[name withheld: it could not be de-identified]";
    Buf sb = {0}, mb = {0}, rb = {0};
    FvErr e2 = {0};
    int has_member = member && *member;
    if (corpus_clean(&g->corpus, source, &sb, &e2)) {
        buf_reset(&sb);
        buf_puts(&sb, withheld);
    }
    if (has_member && corpus_clean(&g->corpus, member, &mb, &e2)) {
        buf_reset(&mb);
        buf_puts(&mb, withheld);
    }
    if (clean_reason(g, source, member, err->msg, &rb, &e2)) {
        buf_reset(&rb);
        buf_printf(&rb, "[reason withheld: it could not be de-identified (%s)]", e2.msg);
    }
    err_clear(&e2);
    char now[32];
    db_now_iso(now, sizeof now);
    if (db_run(g->run->db, &e2,
               "INSERT INTO errors (run_id, source, member, reason, created_at) VALUES (?,?,?,?,?)",
               "issss", g->run->id, sb.data ? sb.data : withheld,
               has_member ? (mb.data ? mb.data : withheld) : NULL,
               rb.data ? rb.data : "[reason withheld]", now) ||
        db_run(g->run->db, &e2, "UPDATE runs SET n_errors = ? WHERE id = ?", "ii",
               g->run->n_errors, g->run->id))
        g->fatal = e2;
    buf_free(&sb);
    buf_free(&mb);
    buf_free(&rb);
}

/* The corpus's scrub of stored names: keyed hashes of every component that
 * is not a generic name (deid_path). */
int ingest_scrub_name(void *ctx, const char *in, Buf *out, FvErr *e)
{
    Ingest *g = ctx;
    if (ingest_deid_fault(in, strlen(in)))
        return err_set(e, FV_EINTERNAL, "de-identification of a name failed (test fault)");
    return deid_path(g->o->key, in, out, e);
}

/* Fault injection for the fail-closed tests: FVLM_TEST_DEID_FAIL=<text>
 * makes de-identification fail for every name and report text that holds
 * <text>. Never set in production; one getenv per name. */
int ingest_deid_fault(const char *in, size_t n)
{
    const char *s = getenv("FVLM_TEST_DEID_FAIL");
    return s && *s && in && memmem(in, n, s, strlen(s)) != NULL;
}

void ingest_fail_msg(Ingest *g, const char *source, const char *member, const char *fmt, ...)
{
    FvErr e = {0};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    ingest_fail(g, source, member, &e);
}

/* One info line per ignored member, with the reason (the terminal keeps
 * the real name; `sources` keeps the row). */
static void log_ignored(const char *path, const char *member, const char *why)
{
    if (member && *member)
        log_info("%s:%s: ignored: %s", path, member, why);
    else
        log_info("%s: ignored: %s", path, why);
}

static void record_source(Ingest *g, const char *path, const char *member, const char *sha,
                          int64_t size, const char *kind, const char *status, int64_t study,
                          const char *why);

void ingest_record_ignored(Ingest *g, const char *path, const char *member, const char *sha,
                           int64_t size, const char *kind, const char *why, int64_t study)
{
    log_ignored(path, member, why);
    record_source(g, path, member, sha, size, kind, "ignored", study, why);
}

/* A source row in its own transaction (ignored or failed members). */
void ingest_record_source(Ingest *g, const char *path, const char *member, const char *sha,
                          int64_t size, const char *kind, const char *status, int64_t study)
{
    record_source(g, path, member, sha, size, kind, status, study, NULL);
}

static void record_source(Ingest *g, const char *path, const char *member, const char *sha,
                          int64_t size, const char *kind, const char *status, int64_t study,
                          const char *why)
{
    FvErr e = {0};
    if (!strcmp(status, "ignored"))
        g->cnt->ignored++;
    else if (!strcmp(status, "failed"))
        g->cnt->failed++;
    if (g->fatal.code)
        return;
    if (corpus_begin(&g->corpus, &e) ||
        corpus_source_put(&g->corpus, path, member, sha, size, kind, status, study, why, &e) ||
        corpus_commit(&g->corpus, &e)) {
        corpus_rollback(&g->corpus);
        g->fatal = e;
    }
}

/* The split named by a path component. */
void ingest_split_from_path(const char *path, char split[8])
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

int ingest_in_shard(Ingest *g, const StudyRef *ref, FvErr *e)
{
    if (g->o->shard_n <= 1)
        return 1;
    char skey[65], msg[80];
    if (deid_pseudonym(g->o->key, "study", ref->src, skey, e))
        return -1;
    unsigned char mac[32];
    snprintf(msg, sizeof msg, "shard:%s", skey);
    hmac_sha256(g->o->key, strlen(g->o->key), msg, strlen(msg), mac);
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | mac[i];
    if ((int)(x % (uint64_t)g->o->shard_n) == g->o->shard_k)
        return 1;
    g->cnt->other_shard++;
    return 0;
}

/* The study row for a reference, created when absent (inside the caller's
 * transaction). */
int ingest_study_get(Ingest *g, const StudyRef *ref, int create, int64_t *id, FvErr *e)
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
    if (corpus_study(&g->corpus, skey, has_p ? pkey : NULL, ref->dataset, split, id, &created, e) ||
        ingest_study_ids(g, ref, *id, e))
        return -1;
    if (created)
        g->cnt->studies_new++;
    return 0;
}

int ingest_study_ids(Ingest *g, const StudyRef *ref, int64_t sid, FvErr *e)
{
    Db *db = g->corpus.db;
    const char *key = g->o->key;
    /* A generic unit name (the input folder "dicom", "train") names no
     * study. */
    const char *alias =
        ref->alias[0] && !deid_component_is_generic(ref->alias, strlen(ref->alias)) ? ref->alias
                                                                                     : NULL;
    if (deid_study_id_put(db, key, sid, ref->src_kind ? ref->src_kind : DEID_ID_SOURCE, ref->src,
                          e) ||
        deid_study_id_put(db, key, sid, DEID_ID_ACCESSION, ref->accession, e) ||
        deid_study_id_put(db, key, sid, DEID_ID_SOURCE, alias, e))
        return -1;
    return 0;
}

void ingest_ref_ctrate(StudyRef *ref, const char *study, const char *patient, const char *split)
{
    memset(ref, 0, sizeof *ref);
    snprintf(ref->src, sizeof ref->src, "%s", study);
    snprintf(ref->patient, sizeof ref->patient, "%s", patient);
    snprintf(ref->split, sizeof ref->split, "%s", split);
    ref->dataset = "ctrate";
}

/* A held member's name inside its unit: the archive member, or the loose
 * file's path relative to the unit folder. */
const char *ingest_rel_name(const UnitState *us, const char *name)
{
    size_t k = strlen(us->u->path);
    if (us->u->type == UNIT_FILES && strncmp(name, us->u->path, k) == 0 && name[k] == '/')
        return name + k + 1;
    return name;
}

/* "archive:member" or "file" into out. */
void ingest_describe(const char *source, const char *member, char *out, size_t n)
{
    if (member && *member)
        snprintf(out, n, "%s:%s", source, member);
    else
        snprintf(out, n, "%s", source);
}

/* Ends the transaction the caller began for one item: writes its members'
 * source rows (status NULL: each row's own; else this one for all), adds
 * those written as ignored to *ignored (when not NULL), and commits. When rc
 * (the caller's work so far) or a step here failed, rolls back instead.
 * Returns 0 or -1. */
int ingest_sources_commit(Ingest *g, int rc, const SrcRec *srcs, int nsrc, const char *status,
                          const char *why, int64_t study, int64_t *ignored, FvErr *e)
{
    for (int i = 0; rc == 0 && i < nsrc; i++) {
        const char *st = status ? status : srcs[i].status;
        if (ignored && !strcmp(st, "ignored"))
            (*ignored)++;
        /* (a row's own reason, else the commit's) */
        int ign = !strcmp(st, "ignored");
        rc = corpus_source_put(&g->corpus, srcs[i].path, srcs[i].member, srcs[i].sha,
                               srcs[i].size, srcs[i].kind, st, study,
                               !ign ? NULL : srcs[i].why ? srcs[i].why : why ? why : "not used",
                               e);
    }
    if (rc == 0)
        rc = corpus_commit(&g->corpus, e);
    if (rc) {
        corpus_rollback(&g->corpus);
        return -1;
    }
    for (int i = 0; i < nsrc; i++)
        if (!strcmp(status ? status : srcs[i].status, "ignored"))
            log_ignored(srcs[i].path, srcs[i].member,
                        srcs[i].why ? srcs[i].why : why ? why : "not used");
    return 0;
}

void ingest_held_record(Ingest *g, Held *h, const char *kind, const char *status, int64_t study)
{
    if (h->done)
        return;
    ingest_record_source(g, h->source, h->member, h->sha, h->size, kind, status, study);
    h->done = 1;
}

void ingest_held_ignore(Ingest *g, Held *h, const char *kind, const char *why)
{
    if (h->done)
        return;
    ingest_record_ignored(g, h->source, h->member, h->sha, h->size, kind, why, 0);
    h->done = 1;
}

void ingest_held_fail(Ingest *g, Held *h, const char *kind, const FvErr *e)
{
    if (h->done)
        return;
    ingest_fail(g, h->source, h->member, e);
    ingest_held_record(g, h, kind, "failed", 0);
}

/* The study source id for an item of this unit that has none of its own. */
int ingest_unit_study(Ingest *g, UnitState *us, const char *item, StudyRef *ref, FvErr *e)
{
    memset(ref, 0, sizeof *ref);
    ref->dataset = "hospital";
    snprintf(ref->alias, sizeof ref->alias, "%s", us->u->name);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", us->u->path, item);
    ingest_split_from_path(path, ref->split);
    if (us->n_dicom_studies > 1)
        return err_set(e, FV_EFORMAT,
                       "the unit holds %d DICOM studies: cannot tell which one this belongs to",
                       us->n_dicom_studies);
    if (us->n_dicom_studies == 1) {
        snprintf(ref->src, sizeof ref->src, "%s", us->dicom_study);
        snprintf(ref->patient, sizeof ref->patient, "%s", us->dicom_patient);
        snprintf(ref->accession, sizeof ref->accession, "%s", us->dicom_accession);
        ref->src_kind = DEID_ID_STUDY_UID;
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
int ingest_own_study(const char *name, StudyRef *ref)
{
    char study[96], patient[96], split[8];
    int recon;
    if (!ctrate_parse_name(name, study, patient, split, &recon))
        return 0;
    ingest_ref_ctrate(ref, study, patient, split);
    /* The volume's name (train_1_a_1), which a CT-RATE user holds. */
    name_stem(name, ref->alias, sizeof ref->alias);
    return 1;
}
