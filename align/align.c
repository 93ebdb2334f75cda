#include "align.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_apply.h"
#include "json.h"
#include "links.h"
#include "log.h"
#include "regions.h"
#include "safetensors.h"

/* ------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------ */

void align_options_free(AlignOptions *opt)
{
    free(opt->sample_set);
    opt->sample_set = NULL;
}

static int sample_set_parse(const Ontology *o, const char *spec, unsigned char *set, FvErr *e)
{
    memset(set, 0, (size_t)o->n_anat);
    if (!strcmp(spec, "main") || !strcmp(spec, "all")) {
        for (int a = 0; a < o->n_anat; a++)
            set[a] = !strcmp(spec, "all") || o->anat[a].main;
        return 0;
    }
    char *copy = strdup(spec);
    if (!copy)
        return err_set(e, FV_ENOMEM, "align: out of memory");
    int rc = 0, n = 0;
    for (char *tok = strtok(copy, ", "); tok && rc == 0; tok = strtok(NULL, ", ")) {
        int a = onto_anatomy(o, tok);
        if (a < 0)
            rc = err_set(e, FV_EUSAGE, "config align.samples: unknown anatomy '%s'", tok);
        else
            set[a] = 1, n++;
    }
    free(copy);
    if (rc == 0 && n == 0)
        rc = err_set(e, FV_EUSAGE,
                     "config align.samples = '%s': expected main, all or anatomy ids", spec);
    return rc;
}

int align_options_from_config(const Ontology *o, Config *cfg, AlignOptions *opt, FvErr *e)
{
    memset(opt, 0, sizeof *opt);
    const char *rule = config_str(cfg, "align.status_rule", "impression");
    int r = status_rule_parse(rule);
    if (r < 0)
        return err_set(e, FV_EUSAGE,
                       "config align.status_rule = '%s': expected impression or findings", rule);
    opt->rule = (StatusRule)r;
    const char *methods = config_str(cfg, "align.text_methods", "mention,finding,continuation,audit");
    char methods_copy[256];
    snprintf(methods_copy, sizeof methods_copy, "%s", methods);
    opt->text_methods = 0;
    for (char *tok = strtok(methods_copy, ", "); tok; tok = strtok(NULL, ", ")) {
        int m = 0;
        while (m < LINK_NMETHODS && strcmp(link_method_name((LinkMethod)m), tok))
            m++;
        if (m == LINK_NMETHODS || m == LINK_NONE)
            return err_set(e, FV_EUSAGE,
                           "config align.text_methods: '%s' is not one of mention, finding, group,"
                           " continuation, audit", tok);
        opt->text_methods |= 1u << m;
    }
    static const double def_margin[3] = {15, 20, 20};
    if (config_doubles(cfg, "align.crop_margin_mm", def_margin, 3, opt->margin_mm, e))
        return -1;
    for (int i = 0; i < 3; i++)
        if (opt->margin_mm[i] < 0 || opt->margin_mm[i] > 1000)
            return err_set(e, FV_EUSAGE,
                           "config align.crop_margin_mm: %g mm is outside [0, 1000]",
                           opt->margin_mm[i]);
    const char *samples = config_str(cfg, "align.samples", "main");
    opt->sample_set = malloc((size_t)(o->n_anat > 0 ? o->n_anat : 1));
    if (!opt->sample_set)
        return err_set(e, FV_ENOMEM, "align: out of memory");
    char samples_copy[1024];
    snprintf(samples_copy, sizeof samples_copy, "%s", samples);
    if (sample_set_parse(o, samples_copy, opt->sample_set, e)) {
        align_options_free(opt);
        return -1;
    }
    /* Written back so the run records the effective values, defaults too. */
    char margin[96];
    snprintf(margin, sizeof margin, "%g, %g, %g", opt->margin_mm[0], opt->margin_mm[1],
             opt->margin_mm[2]);
    char rule_copy[32];
    snprintf(rule_copy, sizeof rule_copy, "%s", rule);
    snprintf(methods_copy, sizeof methods_copy, "%s", methods);
    if (config_set(cfg, "align.status_rule", rule_copy, e) ||
        config_set(cfg, "align.crop_margin_mm", margin, e) ||
        config_set(cfg, "align.samples", samples_copy, e) ||
        config_set(cfg, "align.text_methods", methods_copy, e)) {
        align_options_free(opt);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * One study in memory
 * ------------------------------------------------------------------------ */

typedef struct AuditStatus {
    int anatomy;
    AnatStatus status;
    char *findings_text, *impression_text, *text, *diseases;
} AuditStatus;

typedef struct Flag {
    int anatomy;          /* -1: the study as a whole */
    const char *kind;
    char detail[256];
} Flag;

typedef struct AlignStudy {
    int64_t id;
    char split[16];
    int64_t report_id;    /* 0: no report */
    AlignDoc doc;
    int cap_sent, cap_men, cap_find, cap_lab, cap_ovr;
    AuditStatus *audit;
    int n_audit, cap_audit;
    Flag *flags;
    int n_flags, cap_flags;
    int has_mask, mask_ok;
    int excluded;         /* an annotator's flag says its image cannot be trained on */
    Region *reg;          /* n_anat */
    Region uni;
    unsigned char *covered;
    AnatText *text;       /* n_anat */
    LinkSet links;
} AlignStudy;

/* Makes room for one more element in a growable array. */
static int grow(void *pp, int *cap, int n, size_t size, FvErr *e)
{
    return arr_reserve(pp, cap, n, size, 16)
               ? err_set(e, FV_ENOMEM, "align: out of memory (%d rows in one study)", n)
               : 0;
}

static void study_clear(AlignStudy *s, int n_anat)
{
    for (int i = 0; i < s->doc.n_sent; i++)
        free((char *)s->doc.sent[i].text);
    for (int i = 0; i < s->doc.n_men; i++) {
        free((char *)s->doc.men[i].term);
        free((char *)s->doc.men[i].rule);
    }
    for (int i = 0; i < s->doc.n_find; i++)
        free((char *)s->doc.find[i].term);
    for (int i = 0; i < s->n_audit; i++) {
        free(s->audit[i].findings_text);
        free(s->audit[i].impression_text);
        free(s->audit[i].text);
        free(s->audit[i].diseases);
    }
    if (s->text)
        status_free(s->text, n_anat);
    links_free(&s->links);
    s->id = 0;
    s->split[0] = '\0';
    s->report_id = 0;
    s->doc.zh = 0;
    s->doc.n_sent = s->doc.n_men = s->doc.n_find = s->doc.n_lab = s->doc.n_ovr = 0;
    s->n_audit = s->n_flags = 0;
    s->has_mask = s->mask_ok = s->excluded = 0;
    memset(&s->uni, 0, sizeof s->uni);
    if (s->reg)
        memset(s->reg, 0, (size_t)n_anat * sizeof *s->reg);
    if (s->covered)
        memset(s->covered, 0, (size_t)n_anat);
    if (s->text)
        memset(s->text, 0, (size_t)n_anat * sizeof *s->text);
}

static void study_free(AlignStudy *s, int n_anat)
{
    study_clear(s, n_anat);
    free(s->doc.sent);
    free(s->doc.men);
    free(s->doc.find);
    free(s->doc.lab);
    free(s->doc.ovr);
    free(s->audit);
    free(s->flags);
    free(s->reg);
    free(s->covered);
    free(s->text);
}

static int study_flag(AlignStudy *s, int anatomy, const char *kind, FvErr *e, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int study_flag(AlignStudy *s, int anatomy, const char *kind, FvErr *e, const char *fmt, ...)
{
    if (grow(&s->flags, &s->cap_flags, s->n_flags, sizeof *s->flags, e))
        return -1;
    Flag *f = &s->flags[s->n_flags++];
    f->anatomy = anatomy;
    f->kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->detail, sizeof f->detail, fmt, ap);
    va_end(ap);
    return 0;
}

/* Index of a sentence id in the study's sentences, -1 when not there. */
static int sent_index(const AlignStudy *s, int64_t id)
{
    for (int i = 0; i < s->doc.n_sent; i++)
        if (s->doc.sent[i].id == id)
            return i;
    return -1;
}

static char *dup_col(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return strdup(t ? (const char *)t : "");
}

/* ------------------------------------------------------------------------
 * The stage
 * ------------------------------------------------------------------------ */

typedef struct Ctx {
    Db *db;
    Run *run;
    const Ontology *o;
    const AnatomyMetaTable *meta;
    const AlignOptions *opt;
    AlignCounts *c;
    LinkCues cues;
    /* n_anat flags: the anatomy has diagnosis tasks. An impression naming an
     * anatomy without tasks (pleura in "pleural effusion") misses nothing,
     * so only anatomies with tasks get impression_without_finding. */
    unsigned char *has_task;
    char tensor_dir[4096];
    StFile *shard;            /* the shard opened last (studies of one shard are usually adjacent) */
    char shard_path[4096 + 1024 + 2];
    sqlite3_stmt *q_study, *q_sent, *q_men, *q_find, *q_lab, *q_ovr, *q_audit, *q_mask;
    sqlite3_stmt *d_links, *i_link, *d_status, *i_status, *d_regions, *i_region;
    sqlite3_stmt *d_flags, *i_flag, *d_samples, *i_sample, *u_audit_text;
    AuditApply audit;         /* annotators' decisions, laid on each study first */
} Ctx;

static const char *const flag_kinds_sql =
    "('no_report', 'unparsed', 'no_mask', 'mask_error', 'abnormal_without_mask', "
    "'implausible_volume', 'impression_without_finding', 'unknown_id')";

static int ctx_prepare(Ctx *x, FvErr *e)
{
    char del_flags[512];
    snprintf(del_flags, sizeof del_flags, "DELETE FROM flags WHERE study_id = ? AND kind IN %s",
             flag_kinds_sql);
    struct { sqlite3_stmt **st; const char *sql; } q[] = {
        {&x->q_study, "SELECT s.split, r.id, r.language FROM studies s"
                      " LEFT JOIN reports r ON r.study_id = s.id WHERE s.id = ?"},
        {&x->q_sent, "SELECT id, idx, section, text, start FROM sentences WHERE study_id = ?"
                     " ORDER BY idx, id"},
        {&x->q_men, "SELECT m.id, m.sentence_id, m.anatomy, m.term, m.start - s.start, m.start,"
                    " m.end, m.rule FROM mentions m"
                    " JOIN sentences s ON s.id = m.sentence_id WHERE s.study_id = ? ORDER BY m.id"},
        {&x->q_find, "SELECT id, sentence_id, task, anatomy, polarity, term, start, end FROM findings"
                     " WHERE study_id = ? ORDER BY id"},
        {&x->q_lab, "SELECT task, value, source FROM labels WHERE study_id = ?"},
        {&x->q_ovr, "SELECT l.sentence_id, l.anatomy, l.source, l.accepted FROM links l"
                    " JOIN sentences s ON s.id = l.sentence_id WHERE s.study_id = ?"
                    " AND (l.source = 'audit' OR l.accepted IS NOT NULL) AND l.anatomy <> ''"},
        {&x->q_audit, "SELECT anatomy, status, findings_text, impression_text, text, diseases"
                      " FROM anatomy_status WHERE study_id = ? AND source = 'audit'"},
        {&x->q_mask, "SELECT m.shard, m.tensor, v.nz, v.ny, v.nx, v.sz, v.sy, v.sx FROM masks m"
                     " JOIN volumes v ON v.id = m.volume_id WHERE m.study_id = ?"},
        {&x->d_links, "DELETE FROM links WHERE source = 'align' AND accepted IS NULL AND sentence_id IN"
                      " (SELECT id FROM sentences WHERE study_id = ?)"},
        {&x->i_link, "INSERT INTO links (sentence_id, anatomy, method, confidence, source, run_id,"
                     " term, start, end, rule, continues)"
                     " VALUES (?, ?, ?, ?, 'align', ?, ?, NULLIF(?, -1), NULLIF(?, -1), ?, NULLIF(?, -1))"
                     " ON CONFLICT (sentence_id, anatomy) DO UPDATE"
                     " SET method = excluded.method, confidence = excluded.confidence,"
                     " run_id = excluded.run_id, term = excluded.term, start = excluded.start,"
                     " end = excluded.end, rule = excluded.rule, continues = excluded.continues"
                     " WHERE links.source = 'align'"},
        {&x->d_status, "DELETE FROM anatomy_status WHERE study_id = ? AND source = 'align'"},
        {&x->i_status, "INSERT OR IGNORE INTO anatomy_status (study_id, anatomy, status,"
                       " findings_text, impression_text, text, diseases, source, run_id)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, 'align', ?)"},
        {&x->d_regions, "DELETE FROM regions WHERE study_id = ?"},
        {&x->i_region, "INSERT INTO regions (study_id, anatomy, voxels, volume_ml, z0, z1, y0, y1,"
                       " x0, x1, whole, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"},
        {&x->d_flags, del_flags},
        {&x->i_flag, "INSERT INTO flags (study_id, anatomy, kind, detail, run_id)"
                     " VALUES (?, ?, ?, ?, ?)"},
        {&x->d_samples, "DELETE FROM samples WHERE study_id = ?"},
        /* An annotator's status row keeps the texts align built for it, so
         * exports and `fvlm show` read them as they read align's rows. */
        {&x->u_audit_text, "UPDATE anatomy_status SET findings_text = ?, impression_text = ?,"
                           " text = ?, diseases = ? WHERE study_id = ? AND anatomy = ?"
                           " AND source = 'audit'"},
        {&x->i_sample, "INSERT INTO samples (study_id, anatomy, split, status, text, diseases,"
                       " whole, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"},
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++)
        if (db_prepare(x->db, q[i].st, q[i].sql, e))
            return -1;
    return audit_apply_open(&x->audit, x->db, e);
}

static void ctx_free(Ctx *x)
{
    sqlite3_stmt **all[] = {&x->q_study, &x->q_sent, &x->q_men, &x->q_find, &x->q_lab,
                            &x->q_ovr, &x->q_audit, &x->q_mask, &x->d_links, &x->i_link,
                            &x->d_status, &x->i_status, &x->d_regions, &x->i_region,
                            &x->d_flags, &x->i_flag, &x->d_samples, &x->i_sample,
                            &x->u_audit_text};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        sqlite3_finalize(*all[i]);
        *all[i] = NULL;
    }
    st_close(&x->shard);
    audit_apply_close(&x->audit);
    links_cues_free(&x->cues);
    free(x->has_task);
    x->has_task = NULL;
}

/* Records a bad row of the input: an errors row, and a flag for auditors. */
static int bad_input(Ctx *x, AlignStudy *s, const char *source, const char *member,
                     const char *reason, FvErr *e)
{
    if (run_error(x->run, source, member, reason, e))
        return -1;
    return study_flag(s, -1, "unknown_id", e, "%s %s: %s", source, member ? member : "", reason);
}

/* Reads the study's report side: language, sentences, mentions, findings,
 * labels, annotators' link decisions and statuses. */
static int study_load_text(Ctx *x, AlignStudy *s, FvErr *e)
{
    const Ontology *o = x->o;
    Db *db = x->db;
    int rc;
    if (db_bindf(db, x->q_study, e, "i", s->id))
        return -1;
    if ((rc = db_step(db, x->q_study, e)) < 0)
        return -1;
    if (rc == 0)
        return err_set(e, FV_ENOTFOUND, "study %lld does not exist", (long long)s->id);
    snprintf(s->split, sizeof s->split, "%s",
             sqlite3_column_text(x->q_study, 0) ? (const char *)sqlite3_column_text(x->q_study, 0)
                                                : "train");
    s->report_id = sqlite3_column_int64(x->q_study, 1);
    const unsigned char *lang = sqlite3_column_text(x->q_study, 2);
    s->doc.zh = lang && !strcmp((const char *)lang, "zh");
    sqlite3_reset(x->q_study);
    if (!s->report_id)
        return 0;

    if (db_bindf(db, x->q_sent, e, "i", s->id))
        return -1;
    while ((rc = db_step(db, x->q_sent, e)) == 1) {
        if (grow(&s->doc.sent, &s->cap_sent, s->doc.n_sent, sizeof *s->doc.sent, e))
            return -1;
        const char *sec = (const char *)sqlite3_column_text(x->q_sent, 2);
        int section = sec ? section_parse(sec) : -1;
        DocSentence *d = &s->doc.sent[s->doc.n_sent];
        d->id = sqlite3_column_int64(x->q_sent, 0);
        d->idx = sqlite3_column_int(x->q_sent, 1);
        d->section = section < 0 ? SECTION_OTHER : (Section)section;
        d->start = sqlite3_column_int64(x->q_sent, 4);
        if (!(d->text = dup_col(x->q_sent, 3)))
            return err_set(e, FV_ENOMEM, "align: out of memory");
        s->doc.n_sent++;
    }
    if (rc < 0)
        return -1;

    if (db_bindf(db, x->q_men, e, "i", s->id))
        return -1;
    while ((rc = db_step(db, x->q_men, e)) == 1) {
        int sent = sent_index(s, sqlite3_column_int64(x->q_men, 1));
        const char *id = (const char *)sqlite3_column_text(x->q_men, 2);
        int anatomy = -1, group = -1;
        if (id && !strncmp(id, "group:", 6))
            group = onto_group(o, id + 6);
        else if (id)
            anatomy = onto_anatomy(o, id);
        if (sent < 0)
            continue;
        if (anatomy < 0 && group < 0) {
            char member[64], reason[160];
            snprintf(member, sizeof member, "id %lld", (long long)sqlite3_column_int64(x->q_men, 0));
            snprintf(reason, sizeof reason, "unknown anatomy or group '%.100s'", id ? id : "");
            if (bad_input(x, s, "mentions", member, reason, e))
                return -1;
            continue;
        }
        if (grow(&s->doc.men, &s->cap_men, s->doc.n_men, sizeof *s->doc.men, e))
            return -1;
        /* A mention in a technique lead-in ("When examined in the lung
         * parenchyma window; ...") is not about the sentence's anatomy.
         * Weak: a generic term, or a cause ("secondary to cardiac
         * pathology"). An offset outside the sentence is neither. */
        int64_t at = sqlite3_column_int64(x->q_men, 4);
        const char *text = s->doc.sent[sent].text;
        if (at >= 0 && links_cues_lead_in(&x->cues, text, (size_t)at))
            continue;
        int weak = links_cues_generic(&x->cues, (const char *)sqlite3_column_text(x->q_men, 3)) ||
                   (at > 0 && (links_cues_cause(&x->cues, text, (size_t)at) ||
                               links_cues_landmark(&x->cues, text, (size_t)at)));
        DocMention dm = {sent, anatomy, group, weak, dup_col(x->q_men, 3),
                         sqlite3_column_int64(x->q_men, 5), sqlite3_column_int64(x->q_men, 6),
                         dup_col(x->q_men, 7)};
        if (!dm.term || !dm.rule) {
            free((char *)dm.term);
            free((char *)dm.rule);
            return err_set(e, FV_ENOMEM, "align: out of memory");
        }
        s->doc.men[s->doc.n_men++] = dm;
    }
    if (rc < 0)
        return -1;

    if (db_bindf(db, x->q_find, e, "i", s->id))
        return -1;
    while ((rc = db_step(db, x->q_find, e)) == 1) {
        int sent = sent_index(s, sqlite3_column_int64(x->q_find, 1));
        const char *task_id = (const char *)sqlite3_column_text(x->q_find, 2);
        const char *anat_id = (const char *)sqlite3_column_text(x->q_find, 3);
        int task = task_id ? onto_finding(o, task_id) : -1;
        if (sent < 0)
            continue;
        if (task < 0) {
            char member[64], reason[160];
            snprintf(member, sizeof member, "id %lld", (long long)sqlite3_column_int64(x->q_find, 0));
            snprintf(reason, sizeof reason, "unknown task '%.100s'", task_id ? task_id : "");
            if (bad_input(x, s, "findings", member, reason, e))
                return -1;
            continue;
        }
        int anatomy = anat_id ? onto_anatomy(o, anat_id) : -1;
        if (anatomy < 0)
            anatomy = o->find[task].anatomy;
        if (grow(&s->doc.find, &s->cap_find, s->doc.n_find, sizeof *s->doc.find, e))
            return -1;
        DocFinding df = {sent, task, anatomy, sqlite3_column_int(x->q_find, 4),
                         dup_col(x->q_find, 5), sqlite3_column_int64(x->q_find, 6),
                         sqlite3_column_int64(x->q_find, 7)};
        if (!df.term)
            return err_set(e, FV_ENOMEM, "align: out of memory");
        s->doc.find[s->doc.n_find++] = df;
    }
    if (rc < 0)
        return -1;

    if (db_bindf(db, x->q_lab, e, "i", s->id))
        return -1;
    while ((rc = db_step(db, x->q_lab, e)) == 1) {
        const char *task_id = (const char *)sqlite3_column_text(x->q_lab, 0);
        int task = task_id ? onto_finding(o, task_id) : -1;
        if (task < 0)
            continue; /* a label of a task this ontology lacks: not about an anatomy here */
        const char *src = (const char *)sqlite3_column_text(x->q_lab, 2);
        int value = sqlite3_column_type(x->q_lab, 1) == SQLITE_NULL
                        ? LABEL_UNSET : sqlite3_column_int(x->q_lab, 1);
        if (grow(&s->doc.lab, &s->cap_lab, s->doc.n_lab, sizeof *s->doc.lab, e))
            return -1;
        s->doc.lab[s->doc.n_lab++] =
            (DocLabel){task, value, src && (!strcmp(src, "audit") || !strcmp(src, "gold"))};
    }
    if (rc < 0)
        return -1;

    if (db_bindf(db, x->q_ovr, e, "i", s->id))
        return -1;
    while ((rc = db_step(db, x->q_ovr, e)) == 1) {
        int sent = sent_index(s, sqlite3_column_int64(x->q_ovr, 0));
        int anatomy = onto_anatomy(o, (const char *)sqlite3_column_text(x->q_ovr, 1));
        if (sent < 0 || anatomy < 0)
            continue;
        const char *src = (const char *)sqlite3_column_text(x->q_ovr, 2);
        int verdict_null = sqlite3_column_type(x->q_ovr, 3) == SQLITE_NULL;
        int accepted = sqlite3_column_int(x->q_ovr, 3);
        /* An annotator's own link holds unless they later rejected it. */
        int accept = src && !strcmp(src, "audit") ? (verdict_null || accepted) : accepted != 0;
        if (grow(&s->doc.ovr, &s->cap_ovr, s->doc.n_ovr, sizeof *s->doc.ovr, e))
            return -1;
        s->doc.ovr[s->doc.n_ovr++] = (DocOverride){sent, anatomy, accept};
    }
    if (rc < 0)
        return -1;

    if (db_bindf(db, x->q_audit, e, "i", s->id))
        return -1;
    while ((rc = db_step(db, x->q_audit, e)) == 1) {
        int anatomy = onto_anatomy(o, (const char *)sqlite3_column_text(x->q_audit, 0));
        const char *st = (const char *)sqlite3_column_text(x->q_audit, 1);
        int status = st ? status_parse(st) : -1;
        if (anatomy < 0 || status < 0)
            continue;
        if (grow(&s->audit, &s->cap_audit, s->n_audit, sizeof *s->audit, e))
            return -1;
        AuditStatus *a = &s->audit[s->n_audit++];
        memset(a, 0, sizeof *a);
        a->anatomy = anatomy;
        a->status = (AnatStatus)status;
        a->findings_text = dup_col(x->q_audit, 2);
        a->impression_text = dup_col(x->q_audit, 3);
        a->text = dup_col(x->q_audit, 4);
        a->diseases = dup_col(x->q_audit, 5);
        if (!a->findings_text || !a->impression_text || !a->text || !a->diseases)
            return err_set(e, FV_ENOMEM, "align: out of memory");
    }
    return rc < 0 ? -1 : 0;
}

/* A shard name from the database is a file name under <db>.tensors/: no
 * absolute paths and no way up. */
static int shard_name_ok(const char *name)
{
    if (!name[0] || name[0] == '/')
        return 0;
    for (const char *p = name; *p; p++)
        if (p[0] == '.' && p[1] == '.' && (p == name || p[-1] == '/') && (p[2] == '/' || !p[2]))
            return 0;
    return 1;
}

/* Reads the study's mask and computes its regions. A mask that cannot be
 * used is recorded (run_error + flag) and the study goes on without one. */
static int study_load_mask(Ctx *x, AlignStudy *s, FvErr *e)
{
    Db *db = x->db;
    int rc;
    if (db_bindf(db, x->q_mask, e, "i", s->id))
        return -1;
    if ((rc = db_step(db, x->q_mask, e)) < 0)
        return -1;
    if (rc == 0)
        return 0;
    s->has_mask = 1;
    char shard[1024], tensor[512], reason[1200];
    snprintf(shard, sizeof shard, "%s",
             sqlite3_column_text(x->q_mask, 0) ? (const char *)sqlite3_column_text(x->q_mask, 0) : "");
    snprintf(tensor, sizeof tensor, "%s",
             sqlite3_column_text(x->q_mask, 1) ? (const char *)sqlite3_column_text(x->q_mask, 1) : "");
    int64_t dims[3] = {sqlite3_column_int64(x->q_mask, 2), sqlite3_column_int64(x->q_mask, 3),
                       sqlite3_column_int64(x->q_mask, 4)};
    double spacing[3] = {sqlite3_column_double(x->q_mask, 5), sqlite3_column_double(x->q_mask, 6),
                         sqlite3_column_double(x->q_mask, 7)};
    sqlite3_reset(x->q_mask);

    reason[0] = '\0';
    for (int i = 0; i < 3 && !reason[0]; i++) {
        if (dims[i] < 1 || dims[i] > 100000)
            snprintf(reason, sizeof reason, "volume grid dimension %d = %lld is outside [1, 100000]",
                     i, (long long)dims[i]);
        else if (!(spacing[i] > 0 && spacing[i] <= 100))
            snprintf(reason, sizeof reason, "volume spacing %d = %g mm is outside (0, 100]", i,
                     spacing[i]);
    }
    if (!reason[0] && !shard_name_ok(shard))
        snprintf(reason, sizeof reason, "shard name '%.300s' is not a file under %.600s", shard,
                 x->tensor_dir);
    char path[sizeof x->tensor_dir + sizeof shard + 2];
    snprintf(path, sizeof path, "%s/%s", x->tensor_dir, shard);
    if (!reason[0] && (!x->shard || strcmp(x->shard_path, path))) {
        st_close(&x->shard);
        FvErr se = {0};
        if (st_open(&x->shard, path, &se) || st_verify(x->shard, &se))
            snprintf(reason, sizeof reason, "%s", se.msg);
        else
            snprintf(x->shard_path, sizeof x->shard_path, "%s", path);
    }
    const StTensor *t = NULL;
    if (!reason[0]) {
        FvErr se = {0};
        if (st_get_checked(x->shard, tensor, ST_U8, 3, &t, &se))
            snprintf(reason, sizeof reason, "%s", se.msg);
        else if (t->shape[0] != dims[0] || t->shape[1] != dims[1] || t->shape[2] != dims[2])
            snprintf(reason, sizeof reason,
                     "mask shape (%lld, %lld, %lld) differs from the volume grid (%lld, %lld, %lld)",
                     (long long)t->shape[0], (long long)t->shape[1], (long long)t->shape[2],
                     (long long)dims[0], (long long)dims[1], (long long)dims[2]);
        else if (t->nbytes != (size_t)(dims[0] * dims[1] * dims[2]))
            snprintf(reason, sizeof reason, "mask holds %zu bytes, its shape needs %lld", t->nbytes,
                     (long long)(dims[0] * dims[1] * dims[2]));
    }
    if (reason[0]) {
        char member[600];
        snprintf(member, sizeof member, "%s (study %lld)", tensor, (long long)s->id);
        if (run_error(x->run, path, member, reason, e) ||
            study_flag(s, -1, "mask_error", e, "%s", reason))
            return -1;
        return 0;
    }
    static LabelStats st; /* 14 KB: kept off the stack; the stage is single-threaded */
    double t0 = now_seconds();
    regions_scan(t->data, dims[0], dims[1], dims[2], &st);
    x->c->t_regions += now_seconds() - t0;
    x->c->mask_bytes += (int64_t)t->nbytes;
    regions_merge(x->o, &st, dims, spacing, x->opt->margin_mm, s->reg, &s->uni);
    for (int a = 0; a < x->o->n_anat; a++)
        s->covered[a] = s->reg[a].voxels > 0;
    s->mask_ok = 1;
    return 0;
}

static const AuditStatus *audit_of(const AlignStudy *s, int anatomy)
{
    for (int i = 0; i < s->n_audit; i++)
        if (s->audit[i].anatomy == anatomy)
            return &s->audit[i];
    return NULL;
}

/* The status, texts and diseases that count for anatomy a: the annotator's
 * row when there is one, else align's. *text_out is the training text. */
static AnatStatus effective_status(const AlignStudy *s, int a, const char **text_out,
                                   const char **diseases_out)
{
    const AuditStatus *au = audit_of(s, a);
    const AnatText *t = &s->text[a];
    if (!au) {
        *text_out = t->text.data ? t->text.data : "";
        *diseases_out = t->diseases.data ? t->diseases.data : "[]";
        return t->status;
    }
    /* A status set in the workbench comes with empty diseases: a normal
     * anatomy has none, an abnormal one has what align read for it. */
    *diseases_out = au->diseases[0]                ? au->diseases
                    : au->status == STATUS_NORMAL  ? "[]"
                    : t->diseases.data             ? t->diseases.data
                                                   : "[]";
    *text_out = au->text;
    return au->status;
}

/* The training text of anatomy a whose annotator's status came without a
 * text: the normal template for normal, its own impression then findings
 * sentences for abnormal (into made). Returns text itself otherwise. */
static const char *audit_text(const Ctx *x, const AlignStudy *s, int a, AnatStatus st,
                              const char *text, Buf *made)
{
    const AuditStatus *au = audit_of(s, a);
    if (text[0] || !au)
        return text;
    if (st == STATUS_NORMAL) {
        onto_normal_text(x->o, a, s->doc.zh, made);
    } else if (st == STATUS_ABNORMAL) {
        const char *imp = au->impression_text[0] ? au->impression_text
                          : s->text[a].impression_text.data ? s->text[a].impression_text.data : "";
        const char *fin = au->findings_text[0] ? au->findings_text
                          : s->text[a].findings_text.data ? s->text[a].findings_text.data : "";
        buf_puts(made, imp);
        if (made->len && fin[0] && !s->doc.zh)
            buf_putc(made, ' ');
        buf_puts(made, fin);
    }
    return made->data ? made->data : "";
}

static int study_flags(Ctx *x, AlignStudy *s, FvErr *e)
{
    const Ontology *o = x->o;
    const unsigned char *has_task = x->has_task;
    if (!s->report_id && study_flag(s, -1, "no_report", e, "the study has no report"))
        return -1;
    if (s->report_id && s->doc.n_sent == 0 &&
        study_flag(s, -1, "unparsed", e, "report %lld has no sentences: run fvlm parse",
                   (long long)s->report_id))
        return -1;
    if (!s->has_mask && study_flag(s, -1, "no_mask", e, "the study has no mask"))
        return -1;
    for (int a = 0; a < o->n_anat && s->doc.n_sent; a++) {
        const char *text, *dis;
        AnatStatus st = effective_status(s, a, &text, &dis);
        if (st == STATUS_ABNORMAL && s->mask_ok && s->reg[a].voxels == 0 &&
            (o->anat[a].n_ts || o->anat[a].n_region_of) &&
            study_flag(s, a, "abnormal_without_mask", e,
                       "%s is abnormal in the report but absent from the mask", o->anat[a].id))
            return -1;
        if (st != STATUS_ABNORMAL && s->text[a].imp_mention_only && has_task[a] &&
            study_flag(s, a, "impression_without_finding", e,
                       "the impression names %s in %d sentence(s) without a finding of it",
                       o->anat[a].id, s->text[a].imp_mention_only))
            return -1;
    }
    for (int a = 0; a < o->n_anat && s->mask_ok; a++) {
        const Region *r = &s->reg[a];
        const AnatomyMeta *m = &x->meta->m[a];
        if (r->voxels == 0)
            continue;
        if (m->max_ml >= 0 && r->volume_ml > m->max_ml &&
            study_flag(s, a, "implausible_volume", e, "%s: %.1f ml, above the plausible %g ml",
                       o->anat[a].id, r->volume_ml, m->max_ml))
            return -1;
        if (m->min_ml >= 0 && r->whole && r->volume_ml < m->min_ml &&
            study_flag(s, a, "implausible_volume", e,
                       "%s: %.1f ml lying whole inside the scan, below the plausible %g ml",
                       o->anat[a].id, r->volume_ml, m->min_ml))
            return -1;
    }
    return 0;
}

static int study_write(Ctx *x, AlignStudy *s, FvErr *e)
{
    const Ontology *o = x->o;
    Db *db = x->db;
    int64_t run_id = x->run->id;
    AlignCounts *c = x->c;
    if (db_bindf(db, x->d_links, e, "i", s->id) || db_step(db, x->d_links, e) < 0)
        return -1;
    for (int i = 0; i < s->links.n; i++) {
        const Link *l = &s->links.v[i];
        if (!l->computed)
            continue;
        const char *anat = l->anatomy >= 0 ? o->anat[l->anatomy].id : "";
        int64_t cont = l->continues >= 0 ? s->doc.sent[l->continues].id : -1;
        if (db_bindf(db, x->i_link, e, "issdisiisi", s->doc.sent[l->sent].id, anat,
                     link_method_name(l->method), l->confidence, run_id, l->term, l->start, l->end,
                     l->rule, cont) ||
            db_step(db, x->i_link, e) < 0)
            return -1;
        c->links += l->anatomy >= 0;
        c->unlinked += l->anatomy < 0;
    }
    c->sentences += s->doc.n_sent;

    if (db_bindf(db, x->d_status, e, "i", s->id) || db_step(db, x->d_status, e) < 0)
        return -1;
    for (int a = 0; a < o->n_anat && s->doc.n_sent; a++) {
        const AnatText *t = &s->text[a];
        if (db_bindf(db, x->i_status, e, "issssssi", s->id, o->anat[a].id, status_name(t->status),
                     t->findings_text.data ? t->findings_text.data : "",
                     t->impression_text.data ? t->impression_text.data : "",
                     t->text.data ? t->text.data : "", t->diseases.data ? t->diseases.data : "[]",
                     run_id) ||
            db_step(db, x->i_status, e) < 0)
            return -1;
        const char *text, *dis;
        AnatStatus st = effective_status(s, a, &text, &dis);
        const AuditStatus *au = audit_of(s, a);
        if (au && !au->text[0]) {
            Buf made = {0};
            const char *built = audit_text(x, s, a, st, text, &made);
            int urc = made.failed ? err_set(e, FV_ENOMEM, "align: out of memory") : 0;
            if (urc == 0 &&
                (db_bindf(db, x->u_audit_text, e, "ssssis",
                          t->findings_text.data ? t->findings_text.data : "",
                          t->impression_text.data ? t->impression_text.data : "", built, dis, s->id,
                          o->anat[a].id) ||
                 db_step(db, x->u_audit_text, e) < 0))
                urc = -1;
            buf_free(&made);
            if (urc)
                return -1;
        }
        c->normal += st == STATUS_NORMAL;
        c->abnormal += st == STATUS_ABNORMAL;
        c->unmentioned += st == STATUS_UNMENTIONED;
    }

    if (db_bindf(db, x->d_regions, e, "i", s->id) || db_step(db, x->d_regions, e) < 0)
        return -1;
    for (int a = 0; a <= o->n_anat && s->mask_ok; a++) {
        const Region *r = a < o->n_anat ? &s->reg[a] : &s->uni;
        if (r->voxels == 0)
            continue;
        if (db_bindf(db, x->i_region, e, "isidiiiiiiii", s->id,
                     a < o->n_anat ? o->anat[a].id : "_union", r->voxels, r->volume_ml, r->box.z0,
                     r->box.z1, r->box.y0, r->box.y1, r->box.x0, r->box.x1, (int64_t)r->whole,
                     run_id) ||
            db_step(db, x->i_region, e) < 0)
            return -1;
        c->regions++;
    }

    if (db_bindf(db, x->d_flags, e, "i", s->id) || db_step(db, x->d_flags, e) < 0)
        return -1;
    for (int i = 0; i < s->n_flags; i++) {
        const Flag *f = &s->flags[i];
        if (db_bindf(db, x->i_flag, e, "isssi", s->id, f->anatomy >= 0 ? o->anat[f->anatomy].id : NULL,
                     f->kind, f->detail, run_id) ||
            db_step(db, x->i_flag, e) < 0)
            return -1;
        c->flags++;
    }

    if (db_bindf(db, x->d_samples, e, "i", s->id) || db_step(db, x->d_samples, e) < 0)
        return -1;
    for (int a = 0; a < o->n_anat && s->mask_ok && s->doc.n_sent; a++) {
        const char *text, *dis;
        AnatStatus st = effective_status(s, a, &text, &dis);
        if (!x->opt->sample_set[a] || s->reg[a].voxels == 0 || st == STATUS_UNMENTIONED ||
            s->excluded)
            continue;
        /* An annotator set the status without writing a text: the
         * template for normal, the anatomy's sentences for abnormal. */
        Buf made = {0};
        text = audit_text(x, s, a, st, text, &made);
        if (made.failed) {
            buf_free(&made);
            return err_set(e, FV_ENOMEM, "align: out of memory");
        }
        int rc = 0;
        if (text[0]) {
            rc = db_bindf(db, x->i_sample, e, "isssssii", s->id, o->anat[a].id, s->split,
                          status_name(st), text, dis, (int64_t)s->reg[a].whole, run_id);
            if (rc == 0 && db_step(db, x->i_sample, e) < 0)
                rc = -1;
            c->samples += rc == 0;
        }
        buf_free(&made);
        if (rc)
            return -1;
    }
    return 0;
}

/* Aligns one study in one transaction. Returns -1 on a database failure. */
static int study_align(Ctx *x, AlignStudy *s, FvErr *e)
{
    const Ontology *o = x->o;
    if (db_begin(x->db, e))
        return -1;
    int rc = audit_apply_study(&x->audit, s->id, &s->excluded, e);
    if (rc == 0)
        rc = study_load_text(x, s, e);
    if (rc == 0)
        rc = study_load_mask(x, s, e);
    if (rc == 0 && s->doc.n_sent) {
        rc = links_build(o, &s->doc, s->mask_ok ? s->covered : NULL, &x->cues, &s->links, e);
        if (rc == 0)
            rc = status_build(o, &s->doc, &s->links, s->mask_ok ? s->covered : NULL, x->opt->rule,
                              x->opt->text_methods, s->text, e);
    }
    if (rc == 0)
        rc = study_flags(x, s, e);
    if (rc == 0)
        rc = study_write(x, s, e);
    if (rc == 0)
        rc = db_commit(x->db, e);
    if (rc) {
        db_rollback(x->db);
        return err_prefix(e, "study %lld", (long long)s->id);
    }
    x->c->no_report += !s->report_id;
    x->c->unparsed += s->report_id && !s->doc.n_sent;
    x->c->no_mask += !s->has_mask;
    for (int i = 0; i < s->n_flags; i++)
        if (!strcmp(s->flags[i].kind, "mask_error") || !strcmp(s->flags[i].kind, "unknown_id")) {
            x->c->failed++;
            break;
        }
    return 0;
}

int align_run(Db *db, Run *run, const Ontology *o, const AnatomyMetaTable *meta,
              const AlignOptions *opt, AlignCounts *c, FvErr *e)
{
    Ctx x = {.db = db, .run = run, .o = o, .meta = meta, .opt = opt, .c = c};
    db_tensor_dir(db, x.tensor_dir, sizeof x.tensor_dir);
    int64_t *ids = NULL;
    int n_ids = 0, cap_ids = 0, rc = 0;
    AlignStudy s = {0};
    s.reg = calloc((size_t)o->n_anat + 1, sizeof *s.reg);
    s.covered = calloc((size_t)o->n_anat + 1, 1);
    s.text = calloc((size_t)o->n_anat + 1, sizeof *s.text);
    if (!s.reg || !s.covered || !s.text) {
        study_free(&s, o->n_anat);
        return err_set(e, FV_ENOMEM, "align: out of memory");
    }
    if (!(x.has_task = calloc((size_t)o->n_anat + 1, 1)))
        rc = err_set(e, FV_ENOMEM, "align: out of memory");
    for (int k = 0; k < o->n_find && rc == 0; k++)
        if (o->find[k].anatomy >= 0 && o->find[k].anatomy < o->n_anat)
            x.has_task[o->find[k].anatomy] = 1;
    if (rc == 0 && (links_cues_load(&x.cues, e) || ctx_prepare(&x, e)))
        rc = -1;
    if (rc == 0 && opt->studies) {
        for (int i = 0; i < opt->n_studies && rc == 0; i++) {
            int64_t found_id;
            int found;
            if (db_query_int(db, e, &found_id, &found, "SELECT id FROM studies WHERE id = ?", "i",
                             opt->studies[i]))
                rc = -1;
            else if (!found)
                rc = err_set(e, FV_ENOTFOUND, "study %lld does not exist",
                             (long long)opt->studies[i]);
            else if ((rc = grow(&ids, &cap_ids, n_ids, sizeof *ids, e)) == 0)
                ids[n_ids++] = found_id;
        }
    } else if (rc == 0) {
        sqlite3_stmt *st;
        if (db_prepare(db, &st, "SELECT id FROM studies ORDER BY id", e))
            rc = -1;
        else {
            int r;
            while ((r = db_step(db, st, e)) == 1 && rc == 0)
                if ((rc = grow(&ids, &cap_ids, n_ids, sizeof *ids, e)) == 0)
                    ids[n_ids++] = sqlite3_column_int64(st, 0);
            if (r < 0)
                rc = -1;
            sqlite3_finalize(st);
        }
    }
    Progress p;
    progress_start(&p, "align", n_ids, "studies");
    for (int i = 0; i < n_ids && rc == 0; i++) {
        study_clear(&s, o->n_anat);
        s.id = ids[i];
        c->studies++;
        if (study_align(&x, &s, e))
            rc = -1;
        else
            c->aligned++;
        progress_tick(&p, 1);
    }
    progress_end(&p);
    study_free(&s, o->n_anat);
    free(ids);
    c->audited = x.audit.c.studies;
    c->audit_links = x.audit.c.links;
    c->audit_statuses = x.audit.c.statuses;
    c->audit_labels = x.audit.c.labels;
    c->audit_stale = x.audit.c.stale;
    c->audit_excluded = x.audit.c.excluded;
    ctx_free(&x);
    return rc;
}

void align_counts_json(const AlignCounts *c, Buf *b)
{
    JsonW w;
    jw_init(&w, b, 0);
    jw_obj(&w);
    struct { const char *k; int64_t v; } n[] = {
        {"studies", c->studies}, {"aligned", c->aligned}, {"failed", c->failed},
        {"sentences", c->sentences}, {"links", c->links}, {"unlinked_sentences", c->unlinked},
        {"normal", c->normal}, {"abnormal", c->abnormal}, {"unmentioned", c->unmentioned},
        {"regions", c->regions}, {"samples", c->samples}, {"flags", c->flags},
        {"no_report", c->no_report}, {"unparsed", c->unparsed}, {"no_mask", c->no_mask},
        {"mask_bytes", c->mask_bytes},
        {"audited_studies", c->audited}, {"audit_links", c->audit_links},
        {"audit_statuses", c->audit_statuses}, {"audit_labels", c->audit_labels},
        {"audit_stale", c->audit_stale}, {"audit_excluded", c->audit_excluded},
    };
    for (size_t i = 0; i < sizeof n / sizeof n[0]; i++) {
        jw_key(&w, n[i].k);
        jw_int(&w, n[i].v);
    }
    jw_key(&w, "region_seconds");
    jw_num(&w, c->t_regions);
    jw_obj_end(&w);
}
