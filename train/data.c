#include "data.h"
#include "task_labels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json.h"
#include "log.h"
#include "sha256.h"

enum { MAX_DIM = 4096 };

/* ------------------------------------------------------------------- texts */

static const char *text_key(const void *ctx, int i) { return ((const TrainSet *)ctx)->text[i]; }

/* Index of text s in c->text, adding it when absent; -1 when out of memory. */
static int text_intern(TrainSet *c, const char *s)
{
    int i = stridx_find(&c->text_ix, s, text_key, c);
    if (i >= 0)
        return i;
    if (stridx_reserve(&c->text_ix, c->n_text, c->n_text + 1, text_key, c))
        return -1;
    if (arr_reserve(&c->text, &c->cap_text, c->n_text, sizeof *c->text, 512))
        return -1;
    if (!(c->text[c->n_text] = strdup(s)))
        return -1;
    stridx_put(&c->text_ix, c->n_text, s);
    return c->n_text++;
}

/* ------------------------------------------------------------------ shards */

static const char *shard_key(const void *ctx, int i)
{
    return ((const TrainSet *)ctx)->shard[i]->path;
}

static int shard_open(TrainSet *c, const char *name, StFile **out, FvErr *e)
{
    /* a file name under the tensor folder, nothing that climbs out of it */
    size_t len = strlen(name);
    if (!len || len > 255 || strchr(name, '/') || name[0] == '.')
        return err_set(e, FV_EFORMAT, "shard name '%.80s' is not a file name", name);
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", c->tensor_dir, name);
    int at = stridx_find(&c->shard_ix, path, shard_key, c);
    if (at >= 0) {
        *out = c->shard[at];
        return 0;
    }
    if (stridx_reserve(&c->shard_ix, c->n_shard, c->n_shard + 1, shard_key, c))
        return err_set(e, FV_ENOMEM, "%s: out of memory", path);
    if (arr_reserve(&c->shard, &c->cap_shard, c->n_shard, sizeof *c->shard, 128))
        return err_set(e, FV_ENOMEM, "%s: out of memory", path);
    if (st_open(&c->shard[c->n_shard], path, e))
        return -1;
    /* A damaged shard (its bytes no longer match the hash st_write recorded)
     * stops the run: skipping it would quietly train on fewer studies. */
    if (st_verify(c->shard[c->n_shard], e)) {
        st_close(&c->shard[c->n_shard]);
        return -1;
    }
    stridx_put(&c->shard_ix, c->n_shard, path);
    *out = c->shard[c->n_shard++];
    return 0;
}

static int shard_tensor(TrainSet *c, const char *shard, const char *tensor, StDType dt,
                        const TrainStudy *s, const void **data, FvErr *e)
{
    StFile *f;
    if (shard_open(c, shard, &f, e))
        return -1;
    const StTensor *t;
    if (st_get_checked(f, tensor, dt, 3, &t, e))
        return -1;
    if (t->shape[0] != s->nz || t->shape[1] != s->ny || t->shape[2] != s->nx)
        return err_set(e, FV_EFORMAT, "%s: tensor %s is (%lld, %lld, %lld), the database says "
                       "(%d, %d, %d)", f->path, tensor, (long long)t->shape[0],
                       (long long)t->shape[1], (long long)t->shape[2], s->nz, s->ny, s->nx);
    *data = t->data;
    return 0;
}

/* ------------------------------------------------------------------ loading */

void trainset_free(TrainSet *c)
{
    for (int i = 0; i < c->n_text; i++)
        free(c->text[i]);
    for (int i = 0; i < c->n_shard; i++)
        st_close(&c->shard[i]);
    free(c->shard);
    stridx_free(&c->shard_ix);
    free(c->text);
    stridx_free(&c->text_ix);
    free(c->st);
    free(c->sm);
    free(c->dis);
    free(c->boxes);
    free(c->anat_onto);
    free(c->lab_off);
    free(c->lab_anat);
    free(c->tok_off);
    free(c->tok_ids);
    free(c->task_label);
    memset(c, 0, sizeof *c);
}

static int parse_split(const char *s)
{
    if (s && strcmp(s, "valid") == 0)
        return SPLIT_VALID;
    if (s && strcmp(s, "test") == 0)
        return SPLIT_TEST;
    return SPLIT_TRAIN;
}

static int study_index(const TrainSet *c, int64_t id)
{
    int lo = 0, hi = c->n_st - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (c->st[mid].id == id)
            return mid;
        if (c->st[mid].id < id)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* Records one bad item: through the run when there is one. */
static int bad_item(Run *run, const char *source, const char *member, const char *reason,
                    FvErr *e)
{
    if (run)
        return run_error(run, source, member, reason, e);
    log_warn("%s:%s: %s", source, member ? member : "", reason);
    return 0;
}

static int load_studies(TrainSet *c, Db *db, int64_t only, Run *run, FvErr *e)
{
    sqlite3_stmt *st;
    /* two statements, not one with "?1 < 0 OR s.id = ?1": SQLite would
     * scan every study for each single-study load */
#define STUDY_SQL                                                                           \
    "SELECT s.id, s.split, v.nz, v.ny, v.nx, v.sz, v.sy, v.sx, v.shard, v.tensor,"          \
    " m.shard, m.tensor, r.z0, r.z1, r.y0, r.y1, r.x0, r.x1, rep.text"                        \
    " FROM studies s JOIN volumes v ON v.study_id = s.id JOIN masks m ON m.study_id = s.id"   \
    " JOIN regions r ON r.study_id = s.id AND r.anatomy = '_union'"                           \
    " LEFT JOIN reports rep ON rep.study_id = s.id"
    if (only >= 0 ? db_prepare(db, &st, STUDY_SQL " WHERE s.id = ?", e) ||
                        db_bindf(db, st, e, "i", only)
                  : db_prepare(db, &st, STUDY_SQL " ORDER BY s.id", e))
        return -1;
#undef STUDY_SQL
    int cap = 0, rc;
    while ((rc = db_step(db, st, e)) == 1) {
        if (arr_reserve(&c->st, &cap, c->n_st, sizeof *c->st, 256)) {
            sqlite3_finalize(st);
            return err_set(e, FV_ENOMEM, "corpus: out of memory");
        }
        TrainStudy *s = &c->st[c->n_st];
        memset(s, 0, sizeof *s);
        s->id = sqlite3_column_int64(st, 0);
        s->split = parse_split((const char *)sqlite3_column_text(st, 1));
        int64_t dims[3] = {sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3),
                           sqlite3_column_int64(st, 4)};
        double sp[3] = {sqlite3_column_double(st, 5), sqlite3_column_double(st, 6),
                        sqlite3_column_double(st, 7)};
        int64_t bx[6];
        for (int k = 0; k < 6; k++)
            bx[k] = sqlite3_column_int64(st, 12 + k);
        char member[64], reason[1200];
        snprintf(member, sizeof member, "study %lld", (long long)s->id);
        reason[0] = '\0';
        for (int k = 0; k < 3 && !reason[0]; k++) {
            if (dims[k] < 1 || dims[k] > MAX_DIM)
                snprintf(reason, sizeof reason, "volume grid (%lld, %lld, %lld) out of 1..%d",
                         (long long)dims[0], (long long)dims[1], (long long)dims[2], MAX_DIM);
            else if (!(sp[k] > 0.0 && sp[k] < 100.0))
                snprintf(reason, sizeof reason, "volume spacing (%g, %g, %g) mm out of (0, 100)",
                         sp[0], sp[1], sp[2]);
            else if (bx[2 * k] < 0 || bx[2 * k] >= bx[2 * k + 1] || bx[2 * k + 1] > dims[k])
                snprintf(reason, sizeof reason,
                         "_union region [%lld, %lld) on axis %c outside the grid of %lld voxels",
                         (long long)bx[2 * k], (long long)bx[2 * k + 1], "zyx"[k],
                         (long long)dims[k]);
        }
        const char *vshard = (const char *)sqlite3_column_text(st, 8);
        const char *vname = (const char *)sqlite3_column_text(st, 9);
        const char *mshard = (const char *)sqlite3_column_text(st, 10);
        const char *mname = (const char *)sqlite3_column_text(st, 11);
        const char *report = (const char *)sqlite3_column_text(st, 18);
        if (!reason[0]) {
            s->nz = (int)dims[0];
            s->ny = (int)dims[1];
            s->nx = (int)dims[2];
            s->sz = sp[0];
            s->sy = sp[1];
            s->sx = sp[2];
            for (int k = 0; k < 6; k++)
                s->box[k] = (int)bx[k];
            FvErr te = {0};
            const void *ct = NULL, *mk = NULL;
            if (!vshard || !vname || !mshard || !mname)
                snprintf(reason, sizeof reason, "volume or mask row without a shard or tensor");
            else if (shard_tensor(c, vshard, vname, ST_I16, s, &ct, &te) ||
                     shard_tensor(c, mshard, mname, ST_U8, s, &mk, &te))
                snprintf(reason, sizeof reason, "%s", te.msg);
            if (te.code == FV_EDAMAGED) {
                sqlite3_finalize(st);
                *e = te;
                return -1;
            }
            s->ct = ct;
            s->mask = mk;
        }
        if (!reason[0] && c->mode == LOSS_GLOBAL && only < 0 && (!report || !*report))
            snprintf(reason, sizeof reason, "no report text for the global loss");
        if (reason[0]) {
            c->n_skipped++;
            if (only >= 0) {
                sqlite3_finalize(st);
                return err_set(e, FV_EFORMAT, "%s: %s", member, reason);
            }
            if (bad_item(run, "volumes", member, reason, e)) {
                sqlite3_finalize(st);
                return -1;
            }
            continue;
        }
        s->report = -1;
        if (report && *report && only < 0 && (s->report = text_intern(c, report)) < 0) {
            sqlite3_finalize(st);
            return err_set(e, FV_ENOMEM, "corpus: out of memory");
        }
        c->n_st++;
    }
    sqlite3_finalize(st);
    if (rc < 0)
        return -1;
    if (only >= 0 && c->n_st == 0)
        return err_set(e, FV_ENOTFOUND,
                       "study %lld: no volume, mask and _union region in the database",
                       (long long)only);
    return 0;
}

/* Raw sample rows before the model's anatomies are known. */
typedef struct RawSample {
    int study, onto;
    uint8_t abnormal, whole;
    int text;
} RawSample;

static int cmp_raw(const void *a, const void *b)
{
    const RawSample *x = a, *y = b;
    if (x->study != y->study)
        return x->study < y->study ? -1 : 1;
    return x->onto < y->onto ? -1 : x->onto > y->onto;
}

/* Parses a JSON array of task ids into a bitset; unknown ids are counted. */
static int parse_diseases(const Ontology *o, const char *json, uint64_t *bits, int words,
                          int *unknown)
{
    memset(bits, 0, (size_t)words * sizeof *bits);
    if (!json || !*json)
        return 0;
    JsonValue *v;
    FvErr je = {0};
    if (json_parse(json, strlen(json), &v, &je))
        return -1;
    int rc = 0;
    if (v->type != JSON_ARR)
        rc = -1;
    for (size_t i = 0; rc == 0 && i < v->len; i++) {
        if (v->items[i].type != JSON_STR) {
            rc = -1;
            break;
        }
        int f = onto_finding(o, v->items[i].str);
        if (f < 0)
            (*unknown)++;
        else
            bits[f / 64] |= 1ull << (f % 64);
    }
    json_free(&v);
    return rc;
}

static int load_samples(TrainSet *c, Db *db, int scan_whole, RawSample **out, int *nout,
                        Run *run, FvErr *e)
{
    *out = NULL;
    *nout = 0;
    sqlite3_stmt *st;
    if (db_prepare(db, &st,
                   "SELECT study_id, anatomy, status, text, diseases, whole FROM samples"
                   " ORDER BY study_id, anatomy", e))
        return -1;
    RawSample *raw = NULL;
    uint64_t *dis = NULL;
    int n = 0, cap = 0, rc, unknown_tasks = 0;
    while ((rc = db_step(db, st, e)) == 1) {
        int64_t sid = sqlite3_column_int64(st, 0);
        int si = study_index(c, sid);
        if (si < 0)
            continue; /* a study left out above (or without volume): already reported */
        const char *an = (const char *)sqlite3_column_text(st, 1);
        const char *status = (const char *)sqlite3_column_text(st, 2);
        const char *text = (const char *)sqlite3_column_text(st, 3);
        const char *dj = (const char *)sqlite3_column_text(st, 4);
        char member[300], reason[300] = "";
        snprintf(member, sizeof member, "study %lld anatomy %.200s", (long long)sid,
                 an ? an : "(null)");
        int a = an ? onto_anatomy(c->onto, an) : -1;
        if (a < 0)
            snprintf(reason, sizeof reason, "unknown anatomy");
        else if (!status || (strcmp(status, "normal") && strcmp(status, "abnormal")))
            snprintf(reason, sizeof reason, "status is neither normal nor abnormal");
        else if (!text || !*text)
            snprintf(reason, sizeof reason, "empty text");
        if (n == cap && !reason[0]) {
            cap = cap ? 2 * cap : 1024;
            RawSample *nr = realloc(raw, (size_t)cap * sizeof *nr);
            uint64_t *nd = nr ? realloc(dis, (size_t)cap * c->dis_words * sizeof *nd) : NULL;
            if (nr)
                raw = nr;
            if (nd)
                dis = nd;
            if (!nr || !nd) {
                sqlite3_finalize(st);
                free(raw);
                free(dis);
                return err_set(e, FV_ENOMEM, "corpus: out of memory");
            }
        }
        if (!reason[0] && parse_diseases(c->onto, dj, dis + (size_t)n * c->dis_words,
                                         c->dis_words, &unknown_tasks))
            snprintf(reason, sizeof reason, "diseases is not a JSON array of task ids");
        if (reason[0]) {
            if (bad_item(run, "samples", member, reason, e)) {
                sqlite3_finalize(st);
                free(raw);
                free(dis);
                return -1;
            }
            continue;
        }
        RawSample *r = &raw[n];
        r->study = si;
        r->onto = a;
        r->abnormal = strcmp(status, "abnormal") == 0;
        /* the crop rule (fVLM's): any sample may train, the crop check decides
         * per step; the scan rule also wants align's `whole` */
        r->whole = scan_whole ? sqlite3_column_int64(st, 5) != 0 : 1;
        if ((r->text = text_intern(c, text)) < 0) {
            sqlite3_finalize(st);
            free(raw);
            free(dis);
            return err_set(e, FV_ENOMEM, "corpus: out of memory");
        }
        n++;
    }
    sqlite3_finalize(st);
    if (rc < 0) {
        free(raw);
        free(dis);
        return -1;
    }
    if (unknown_tasks)
        log_warn("samples: %d disease ids are not tasks of findings.tsv; ignored", unknown_tasks);
    int *perm = malloc((size_t)(n ? n : 1) * sizeof *perm);
    RawSample *sorted = malloc((size_t)(n ? n : 1) * sizeof *sorted);
    c->dis = malloc((size_t)(n ? n : 1) * c->dis_words * sizeof *c->dis);
    if (!perm || !sorted || !c->dis) {
        free(perm);
        free(sorted);
        free(raw);
        free(dis);
        return err_set(e, FV_ENOMEM, "corpus: out of memory");
    }
    /* rows arrive grouped by study; within a study, insertion sort by
     * ontology index (a study has few samples) */
    for (int i = 0; i < n; i++)
        perm[i] = i;
    for (int i = 1; i < n; i++) {
        int p = perm[i], j = i;
        while (j > 0 && cmp_raw(&raw[perm[j - 1]], &raw[p]) > 0) {
            perm[j] = perm[j - 1];
            j--;
        }
        perm[j] = p;
    }
    for (int i = 0; i < n; i++) {
        sorted[i] = raw[perm[i]];
        memcpy(c->dis + (size_t)i * c->dis_words, dis + (size_t)perm[i] * c->dis_words,
               (size_t)c->dis_words * sizeof *dis);
    }
    free(perm);
    free(raw);
    free(dis);
    *out = sorted;
    *nout = n;
    return 0;
}

/* Anatomies whose tokens can be found: own TotalSegmentator ids, or the
 * union of region_of anatomies that have some. */
static int maskable(const Ontology *o, int a)
{
    if (o->anat[a].n_ts)
        return 1;
    for (int k = 0; k < o->anat[a].n_region_of; k++)
        if (o->anat[o->anat[a].region_of[k]].n_ts)
            return 1;
    return 0;
}

static int choose_anatomies(TrainSet *c, const RawSample *raw, int n, char **ids, int nids,
                            FvErr *e)
{
    const Ontology *o = c->onto;
    int *model = calloc((size_t)o->n_anat, sizeof *model);
    if (!model)
        return err_set(e, FV_ENOMEM, "corpus: out of memory");
    if (ids) {
        for (int i = 0; i < nids; i++) {
            int a = onto_anatomy(o, ids[i]);
            if (a < 0) {
                free(model);
                return err_set(e, FV_EFORMAT,
                               "the model's anatomy '%s' is not in this build's ontology", ids[i]);
            }
            model[a] = 1;
        }
    } else {
        int *whole = calloc((size_t)o->n_anat, sizeof *whole);
        int *abn = calloc((size_t)o->n_anat, sizeof *abn);
        if (!whole || !abn) {
            free(whole);
            free(abn);
            free(model);
            return err_set(e, FV_ENOMEM, "corpus: out of memory");
        }
        for (int i = 0; i < n; i++)
            if (raw[i].whole && c->st[raw[i].study].split == SPLIT_TRAIN) {
                whole[raw[i].onto]++;
                abn[raw[i].onto] += raw[i].abnormal;
            }
        for (int a = 0; a < o->n_anat; a++)
            model[a] = whole[a] > 0 && maskable(o, a) && (c->mode == LOSS_GLOBAL || abn[a] > 0);
        free(whole);
        free(abn);
    }
    c->n_anat = 0;
    for (int a = 0; a < o->n_anat; a++)
        c->n_anat += model[a];
    c->anat_onto = malloc((size_t)(c->n_anat ? c->n_anat : 1) * sizeof *c->anat_onto);
    if (!c->anat_onto) {
        free(model);
        return err_set(e, FV_ENOMEM, "corpus: out of memory");
    }
    for (int a = 0, k = 0; a < o->n_anat; a++)
        if (model[a])
            c->anat_onto[k++] = a;
    free(model);
    return 0;
}

/* TotalSegmentator id -> model anatomies (an id can serve several: heart is
 * also part of the mediastinum's region). */
static int build_label_map(TrainSet *c, FvErr *e)
{
    const Ontology *o = c->onto;
    c->lab_off = calloc(ONTO_MAX_TS_ID + 2, sizeof *c->lab_off);
    int cap = 0;
    for (int m = 0; m < c->n_anat; m++) {
        const Anatomy *an = &o->anat[c->anat_onto[m]];
        cap += an->n_ts;
        for (int k = 0; k < an->n_region_of; k++)
            cap += o->anat[an->region_of[k]].n_ts;
    }
    c->lab_anat = malloc((size_t)(cap ? cap : 1) * sizeof *c->lab_anat);
    if (!c->lab_off || !c->lab_anat)
        return err_set(e, FV_ENOMEM, "corpus: out of memory");
    int n = 0;
    for (int id = 0; id <= ONTO_MAX_TS_ID; id++) {
        c->lab_off[id] = n;
        for (int m = 0; m < c->n_anat; m++) {
            const Anatomy *an = &o->anat[c->anat_onto[m]];
            int hit = 0;
            for (int k = 0; k < an->n_ts; k++)
                hit |= an->ts_ids[k] == id;
            for (int r = 0; r < an->n_region_of; r++) {
                const Anatomy *part = &o->anat[an->region_of[r]];
                for (int k = 0; k < part->n_ts; k++)
                    hit |= part->ts_ids[k] == id;
            }
            if (hit && n < cap)
                c->lab_anat[n++] = m;
        }
    }
    c->lab_off[ONTO_MAX_TS_ID + 1] = n;
    return 0;
}

static int load_regions(TrainSet *c, Db *db, int64_t only, FvErr *e)
{
    size_t nb = (size_t)c->n_st * (size_t)(c->n_anat ? c->n_anat : 1) * 6;
    c->boxes = malloc((nb ? nb : 1) * sizeof *c->boxes);
    if (!c->boxes)
        return err_set(e, FV_ENOMEM, "corpus: out of memory");
    for (size_t i = 0; i < nb; i++)
        c->boxes[i] = -1;
    int *model_of = malloc((size_t)c->onto->n_anat * sizeof *model_of);
    if (!model_of)
        return err_set(e, FV_ENOMEM, "corpus: out of memory");
    for (int a = 0; a < c->onto->n_anat; a++)
        model_of[a] = -1;
    for (int m = 0; m < c->n_anat; m++)
        model_of[c->anat_onto[m]] = m;
    sqlite3_stmt *st;
    const char *sql = "SELECT study_id, anatomy, z0, z1, y0, y1, x0, x1 FROM regions"
                      " WHERE anatomy != '_union'";
    const char *sql1 = "SELECT study_id, anatomy, z0, z1, y0, y1, x0, x1 FROM regions"
                       " WHERE study_id = ? AND anatomy != '_union'";
    if (only >= 0 ? db_prepare(db, &st, sql1, e) || db_bindf(db, st, e, "i", only)
                  : db_prepare(db, &st, sql, e)) {
        free(model_of);
        return -1;
    }
    int rc;
    while ((rc = db_step(db, st, e)) == 1) {
        int si = study_index(c, sqlite3_column_int64(st, 0));
        const char *an = (const char *)sqlite3_column_text(st, 1);
        int a = an ? onto_anatomy(c->onto, an) : -1;
        if (si < 0 || a < 0 || model_of[a] < 0)
            continue;
        const TrainStudy *s = &c->st[si];
        int dims[3] = {s->nz, s->ny, s->nx}, bx[6], ok = 1;
        for (int k = 0; k < 6; k++)
            bx[k] = (int)sqlite3_column_int64(st, 2 + k);
        for (int k = 0; k < 3; k++)
            ok &= bx[2 * k] >= 0 && bx[2 * k] < bx[2 * k + 1] && bx[2 * k + 1] <= dims[k];
        /* a box outside the grid is treated as absent: the anatomy cannot be
         * shown whole in any crop */
        if (ok)
            memcpy(c->boxes + ((size_t)si * c->n_anat + model_of[a]) * 6, bx, sizeof bx);
    }
    sqlite3_finalize(st);
    free(model_of);
    return rc < 0 ? -1 : 0;
}

int trainset_load(TrainSet *c, Db *db, const Ontology *onto, LossMode mode, int scan_whole,
                  char **anat_ids, int n_anat, int64_t study_id, Run *run, FvErr *e)
{
    memset(c, 0, sizeof *c);
    c->onto = onto;
    c->mode = mode;
    c->dis_words = (onto->n_find + 63) / 64 ? (onto->n_find + 63) / 64 : 1;
    db_tensor_dir(db, c->tensor_dir, sizeof c->tensor_dir);
    RawSample *raw = NULL;
    int nraw = 0;
    if (load_studies(c, db, study_id, run, e))
        goto fail;
    if (study_id < 0 && load_samples(c, db, scan_whole, &raw, &nraw, run, e))
        goto fail;
    if (choose_anatomies(c, raw, nraw, anat_ids, n_anat, e))
        goto fail;
    if (study_id < 0 && c->n_anat == 0 && mode != LOSS_GLOBAL) {
        err_set(e, FV_ENOTFOUND,
                "no anatomy has both a whole and an abnormal training sample (table samples, "
                "%d rows usable)%s", nraw,
                nraw ? "" : ": run `fvlm parse` and `fvlm align` on the corpus first");
        goto fail;
    }
    c->sm = malloc((size_t)(nraw ? nraw : 1) * sizeof *c->sm);
    if (!c->sm) {
        err_set(e, FV_ENOMEM, "corpus: out of memory");
        goto fail;
    }
    int *model_of = malloc((size_t)onto->n_anat * sizeof *model_of);
    if (!model_of) {
        err_set(e, FV_ENOMEM, "corpus: out of memory");
        goto fail;
    }
    for (int a = 0; a < onto->n_anat; a++)
        model_of[a] = -1;
    for (int m = 0; m < c->n_anat; m++)
        model_of[c->anat_onto[m]] = m;
    for (int i = 0; i < nraw; i++) {
        c->sm[i] = (TrainSample){raw[i].study, model_of[raw[i].onto], raw[i].abnormal,
                                 raw[i].whole, raw[i].text};
    }
    free(model_of);
    c->n_sm = nraw;
    for (int i = 0, s = -1; i < nraw; i++) {
        if (c->sm[i].study != s) {
            s = c->sm[i].study;
            c->st[s].s0 = i;
        }
        c->st[s].ns++;
    }
    free(raw);
    raw = NULL;
    if (build_label_map(c, e) || load_regions(c, db, study_id, e))
        goto fail;
    return 0;
fail:
    free(raw);
    trainset_free(c);
    return -1;
}

int trainset_split_validation(TrainSet *c, double fraction, uint64_t seed)
{
    int nvalid = 0;
    for (int i = 0; i < c->n_st; i++)
        nvalid += c->st[i].split == SPLIT_VALID;
    if (nvalid || fraction <= 0.0)
        return nvalid;
    for (int i = 0; i < c->n_st; i++) {
        if (c->st[i].split != SPLIT_TRAIN)
            continue;
        /* a hash of (seed, study id): the same studies whatever the order */
        uint64_t x = seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)c->st[i].id);
        double u = (double)(rng_splitmix64(&x) >> 11) * (1.0 / 9007199254740992.0);
        if (u < fraction) {
            c->st[i].split = SPLIT_VALID;
            nvalid++;
        }
    }
    return nvalid;
}

int trainset_train_texts(const TrainSet *c, const char ***texts, int *n)
{
    const char **t = malloc((size_t)(c->n_text ? c->n_text : 1) * sizeof *t);
    unsigned char *seen = calloc((size_t)(c->n_text ? c->n_text : 1), 1);
    if (!t || !seen) {
        free(t);
        free(seen);
        return -1;
    }
    int k = 0;
    for (int i = 0; i < c->n_st; i++) {
        const TrainStudy *s = &c->st[i];
        if (s->split != SPLIT_TRAIN)
            continue;
        if (c->mode == LOSS_GLOBAL) {
            if (s->report >= 0 && !seen[s->report]) {
                seen[s->report] = 1;
                t[k++] = c->text[s->report];
            }
            continue;
        }
        for (int j = s->s0; j < s->s0 + s->ns; j++)
            if (c->sm[j].anat >= 0 && !seen[c->sm[j].text]) {
                seen[c->sm[j].text] = 1;
                t[k++] = c->text[c->sm[j].text];
            }
    }
    free(seen);
    *texts = t;
    *n = k;
    return 0;
}

int trainset_tokenize(TrainSet *c, const Tokenizer *t, int max_len, FvErr *e)
{
    free(c->tok_off);
    free(c->tok_ids);
    c->tok_off = malloc(((size_t)c->n_text + 1) * sizeof *c->tok_off);
    c->tok_ids = malloc(((size_t)c->n_text * max_len + 1) * sizeof *c->tok_ids);
    if (!c->tok_off || !c->tok_ids)
        return err_set(e, FV_ENOMEM, "corpus: out of memory tokenizing %d texts", c->n_text);
    c->tok_off[0] = 0;
    for (int i = 0; i < c->n_text; i++)
        c->tok_off[i + 1] = c->tok_off[i] + tok_encode(t, c->text[i], c->tok_ids + c->tok_off[i],
                                                       max_len);
    for (int i = 0; i < c->n_st; i++) {
        TrainStudy *s = &c->st[i];
        s->tokens = 0;
        if (c->mode == LOSS_GLOBAL) {
            if (s->report >= 0)
                s->tokens = c->tok_off[s->report + 1] - c->tok_off[s->report];
            continue;
        }
        for (int j = s->s0; j < s->s0 + s->ns; j++)
            if (c->sm[j].anat >= 0)
                s->tokens += c->tok_off[c->sm[j].text + 1] - c->tok_off[c->sm[j].text];
    }
    return 0;
}

void trainset_signature(const TrainSet *c, char hex[65])
{
    Sha256 h;
    sha256_init(&h);
    for (int m = 0; m < c->n_anat; m++) {
        const char *id = c->onto->anat[c->anat_onto[m]].id;
        sha256_update(&h, id, strlen(id) + 1);
    }
    for (int i = 0; i < c->n_st; i++) {
        const TrainStudy *s = &c->st[i];
        int64_t rec[3] = {s->id, s->split, s->ns};
        sha256_update(&h, rec, sizeof rec);
        if (s->report >= 0)
            sha256_update(&h, c->text[s->report], strlen(c->text[s->report]) + 1);
        for (int j = s->s0; j < s->s0 + s->ns; j++) {
            const TrainSample *x = &c->sm[j];
            int32_t r[3] = {x->anat, x->abnormal, x->whole};
            sha256_update(&h, r, sizeof r);
            sha256_update(&h, c->text[x->text], strlen(c->text[x->text]) + 1);
            sha256_update(&h, c->dis + (size_t)j * c->dis_words,
                          (size_t)c->dis_words * sizeof *c->dis);
        }
    }
    unsigned char d[32];
    sha256_final(&h, d);
    sha256_to_hex(d, hex);
}

/* ---------------------------------------------------------- preprocessing */

void data_crop(const TrainStudy *s, const DataCfg *d, Rng *r, int train, Crop *out)
{
    const double sp[3] = {s->sz, s->sy, s->sx};
    for (int k = 0; k < 3; k++) {
        double m = d->margin_mm[k] / sp[k];
        double lo = s->box[2 * k] - m, hi = s->box[2 * k + 1] + m;
        if (train) {
            /* always two draws per axis, so the stream does not depend on values */
            double u1 = rng_uniform(r), u2 = rng_uniform(r);
            double ext = hi - lo, c = 0.5 * (lo + hi);
            ext *= 1.0 + d->aug_scale * (2.0 * u1 - 1.0);
            c += d->aug_shift * (2.0 * u2 - 1.0) * (hi - lo);
            lo = c - 0.5 * ext;
            hi = c + 0.5 * ext;
        }
        out->box[2 * k] = lo;
        out->box[2 * k + 1] = hi;
    }
    for (int k = 0; k < 3; k++)
        out->flip[k] = train ? (uint8_t)(rng_uniform(r) < d->flip_p) : 0;
}

/* Source coordinate of output index i of n along an axis [lo, hi), voxel
 * centres aligned, flipped when asked. */
static double src_coord(const Crop *c, int axis, int i, int n)
{
    int k = c->flip[axis] ? n - 1 - i : i;
    double lo = c->box[2 * axis], hi = c->box[2 * axis + 1];
    return lo + (k + 0.5) * (hi - lo) / n - 0.5;
}

enum { MAX_IN = 4096 };

void data_render(const TrainSet *c, int study, const DataCfg *d, const Crop *crop, float *img,
                  float *tokbias, uint8_t *inside)
{
    const TrainStudy *s = &c->st[study];
    int Z = d->in_z, Y = d->in_y, X = d->in_x;
    int ty = Y / d->py, tx = X / d->px, T = (Z / d->pz) * ty * tx;
    /* Per-axis tables: the two neighbours of each output voxel (clamped
     * into the grid) with their weights, a neighbour outside the grid
     * weighing 0. Outside is air, so v = air + sum w (ct - air): the corners
     * outside add nothing and the inner loop has no branch. */
    int i0[3][MAX_IN], i1[3][MAX_IN], nn[3][MAX_IN];
    float w0[3][MAX_IN], w1[3][MAX_IN];
    int nout[3] = {Z, Y, X}, dims[3] = {s->nz, s->ny, s->nx};
    for (int a = 0; a < 3; a++)
        for (int i = 0; i < nout[a]; i++) {
            double p = src_coord(crop, a, i, nout[a]);
            double f = floor(p), w = p - f;
            int lo = f < -2.0 ? -2 : f > dims[a] ? dims[a] : (int)f, hi = lo + 1;
            int lo_in = lo >= 0 && lo < dims[a], hi_in = hi >= 0 && hi < dims[a];
            i0[a][i] = lo_in ? lo : 0;
            i1[a][i] = hi_in ? hi : 0;
            w0[a][i] = lo_in ? (float)(1.0 - w) : 0.0f;
            w1[a][i] = hi_in ? (float)w : 0.0f;
            double r = floor(p + 0.5);
            nn[a][i] = r < 0.0 || r >= dims[a] ? -1 : (int)r;
        }
    const float air = -1024.0f;
    float scale[NET_MAX_CHANNELS], off[NET_MAX_CHANNELS];
    for (int w = 0; w < d->n_win; w++) {
        scale[w] = (float)(1.0 / (d->hu_hi[w] - d->hu_lo[w]));
        off[w] = (float)d->hu_lo[w];
    }
    const size_t vol = (size_t)Z * Y * X;
    const size_t sy = (size_t)s->nx, sz = (size_t)s->ny * s->nx;
    for (int k = 0; k < Z; k++)
        for (int j = 0; j < Y; j++) {
            float *row = img + ((size_t)k * Y + j) * X;
            const int16_t *r00 = s->ct + (size_t)i0[0][k] * sz + (size_t)i0[1][j] * sy;
            const int16_t *r01 = s->ct + (size_t)i0[0][k] * sz + (size_t)i1[1][j] * sy;
            const int16_t *r10 = s->ct + (size_t)i1[0][k] * sz + (size_t)i0[1][j] * sy;
            const int16_t *r11 = s->ct + (size_t)i1[0][k] * sz + (size_t)i1[1][j] * sy;
            float a00 = w0[0][k] * w0[1][j], a01 = w0[0][k] * w1[1][j];
            float a10 = w1[0][k] * w0[1][j], a11 = w1[0][k] * w1[1][j];
            for (int i = 0; i < X; i++) {
                int x0 = i0[2][i], x1 = i1[2][i];
                float b0 = w0[2][i], b1 = w1[2][i];
                float v = a00 * (b0 * ((float)r00[x0] - air) + b1 * ((float)r00[x1] - air)) +
                          a01 * (b0 * ((float)r01[x0] - air) + b1 * ((float)r01[x1] - air)) +
                          a10 * (b0 * ((float)r10[x0] - air) + b1 * ((float)r10[x1] - air)) +
                          a11 * (b0 * ((float)r11[x0] - air) + b1 * ((float)r11[x1] - air));
                v += air;
                for (int w = 0; w < d->n_win; w++) {
                    float u = (v - off[w]) * scale[w];
                    row[(size_t)w * vol + i] = u < 0.0f ? 0.0f : u > 1.0f ? 1.0f : u;
                }
            }
        }
    int *zn = nn[0], *yn = nn[1], *xn = nn[2];
    /* voxels of each token that hold each anatomy (nearest-neighbour mask on
     * the input grid), counted in tokbias, then turned into the bias */
    for (size_t q = 0; q < (size_t)c->n_anat * T; q++)
        tokbias[q] = 0.0f;
    for (int k = 0; k < Z; k++) {
        if (zn[k] < 0)
            continue;
        for (int j = 0; j < Y; j++) {
            if (yn[j] < 0)
                continue;
            const uint8_t *mrow = s->mask + (size_t)zn[k] * sz + (size_t)yn[j] * sy;
            int tbase = ((k / d->pz) * ty + j / d->py) * tx;
            for (int i = 0; i < X; i++) {
                if (xn[i] < 0)
                    continue;
                int id = mrow[xn[i]];
                for (int q = c->lab_off[id]; q < c->lab_off[id + 1]; q++)
                    tokbias[(size_t)c->lab_anat[q] * T + tbase + i / d->px] += 1.0f;
            }
        }
    }
    const float per_token = (float)(d->pz * d->py * d->px);
    for (size_t q = 0; q < (size_t)c->n_anat * T; q++) {
        float n = tokbias[q];
        tokbias[q] = n == 0.0f ? -INFINITY : d->coverage ? logf(n / per_token) : 0.0f;
    }
    for (int m = 0; m < c->n_anat; m++) {
        const int *b = c->boxes + ((size_t)study * c->n_anat + m) * 6;
        int in = b[0] >= 0;
        for (int a = 0; a < 3 && in; a++)
            in = crop->box[2 * a] <= b[2 * a] && b[2 * a + 1] <= crop->box[2 * a + 1];
        inside[m] = (uint8_t)in;
    }
}

/* Upper edges (HU) of the density summary's bins, the last bin open: air,
 * emphysema and lung (-1000 .. -700), ground glass and fat (-700 .. -50),
 * fluid and soft tissue in 15 HU steps (fatty liver, effusions, masses),
 * contrast, calcification and bone. */
static const float hist_edges[NET_HIST_BINS - 1] = {
    -1000, -950, -900, -850, -800, -700, -500, -300, -100, -50, -20, 0,
    15,    30,   45,   60,   75,   90,   120,  200,  400,  800, 1500};

/* counts of one half of a summary to sqrt(bins x share), then the volume */
static void hist_finish(float *h, double count, double voxel_ml)
{
    double total = 0;
    for (int b = 0; b < NET_HIST_BINS; b++)
        total += h[b];
    if (total <= 0)
        return;
    for (int b = 0; b < NET_HIST_BINS; b++)
        h[b] = (float)sqrt(NET_HIST_BINS * h[b] / total);
    h[NET_HIST_BINS] = (float)log10(1.0 + count * voxel_ml);
}

/* the bin of a HU value through the table of data_hist, from -1024 up */
enum { HIST_LUT_LO = -1024, HIST_LUT_N = 4096 };
static int hu_bin(const uint8_t *lut, int hu)
{
    int v = hu - HIST_LUT_LO;
    return lut[v < 0 ? 0 : v >= HIST_LUT_N ? HIST_LUT_N - 1 : v];
}

static int label_is(const TrainSet *c, int id, int a)
{
    for (int q = c->lab_off[id]; q < c->lab_off[id + 1]; q++)
        if (c->lab_anat[q] == a)
            return 1;
    return 0;
}

void data_hist(const TrainSet *c, int study, const DataCfg *d, const Crop *crop, float *hist)
{
    const TrainStudy *s = &c->st[study];
    int n[3] = {d->in_z, d->in_y, d->in_x}, dims[3] = {s->nz, s->ny, s->nx};
    const double sp[3] = {s->sz, s->sy, s->sx};
    int nn[3][MAX_IN];
    double voxel_ml = 1e-3;
    for (int a = 0; a < 3; a++) {
        for (int i = 0; i < n[a]; i++) {
            double r = floor(src_coord(crop, a, i, n[a]) + 0.5);
            nn[a][i] = r < 0.0 || r >= dims[a] ? -1 : (int)r;
        }
        voxel_ml *= (crop->box[2 * a + 1] - crop->box[2 * a]) * sp[a] / n[a];
    }
    /* bin of each HU value from -1024 (air; lower is clamped) up */
    uint8_t lut[HIST_LUT_N];
    for (int v = 0, b = 0; v < HIST_LUT_N; v++) {
        while (b < NET_HIST_BINS - 1 && (float)(v + HIST_LUT_LO) >= hist_edges[b])
            b++;
        lut[v] = (uint8_t)b;
    }
    const int A = c->n_anat, H = NET_HIST_DIM;
    memset(hist, 0, (size_t)(A + 1) * H * sizeof *hist);
    float *whole = hist + (size_t)A * H;
    double body = 0;
    const size_t sy = (size_t)s->nx, sz = (size_t)s->ny * s->nx;
    /* the anatomies' own voxels, and the whole crop */
    for (int k = 0; k < n[0]; k++)
        for (int j = 0; j < n[1]; j++)
            for (int i = 0; i < n[2]; i++) {
                int z = nn[0][k], y = nn[1][j], x = nn[2][i];
                if (z < 0 || y < 0 || x < 0) {
                    whole[0] += 1.0f; /* outside the scan: air */
                    continue;
                }
                size_t at = (size_t)z * sz + (size_t)y * sy + (size_t)x;
                int bin = hu_bin(lut, s->ct[at]);
                whole[bin] += 1.0f;
                body += s->ct[at] > -500;
                int id = s->mask[at];
                for (int q = c->lab_off[id]; q < c->lab_off[id + 1]; q++)
                    hist[(size_t)c->lab_anat[q] * H + bin] += 1.0f;
            }
    /* the surroundings: the voxels of each region box that are not the
     * anatomy's; the input indices whose source lies in the box */
    for (int a = 0; a < A; a++) {
        const int *bx = c->boxes + ((size_t)study * A + a) * 6;
        if (bx[0] < 0)
            continue;
        float *h = hist + (size_t)a * H + NET_HIST_HALF;
        double count = 0;
        for (int k = 0; k < n[0]; k++) {
            int z = nn[0][k];
            if (z < bx[0] || z >= bx[1])
                continue;
            for (int j = 0; j < n[1]; j++) {
                int y = nn[1][j];
                if (y < bx[2] || y >= bx[3])
                    continue;
                for (int i = 0; i < n[2]; i++) {
                    int x = nn[2][i];
                    if (x < bx[4] || x >= bx[5])
                        continue;
                    size_t at = (size_t)z * sz + (size_t)y * sy + (size_t)x;
                    if (label_is(c, s->mask[at], a))
                        continue;
                    h[hu_bin(lut, s->ct[at])] += 1.0f;
                    count += 1;
                }
            }
        }
        hist_finish(h, count, voxel_ml);
    }
    for (int a = 0; a < A; a++) {
        float *h = hist + (size_t)a * H;
        double count = 0;
        for (int b = 0; b < NET_HIST_BINS; b++)
            count += h[b];
        hist_finish(h, count, voxel_ml);
    }
    hist_finish(whole, body, voxel_ml);
}

/* ------------------------------------------------------------------ batches */

NetCap trainset_capacity(const TrainSet *c, int b)
{
    NetCap cap = {.studies = b, .dis_words = c->dis_words};
    int per = 1;
    for (int i = 0; i < c->n_st; i++) {
        int k = 0;
        for (int j = c->st[i].s0; j < c->st[i].s0 + c->st[i].ns; j++)
            k += c->sm[j].anat >= 0;
        per = k > per ? k : per;
    }
    cap.rows_per_study = c->mode == LOSS_GLOBAL ? 1 : per;
    cap.rows = b * cap.rows_per_study;
    cap.texts = cap.rows;
    /* the b studies with the most text tokens bound any batch */
    int64_t top[1024] = {0};
    int nb = b < 1024 ? b : 1024;
    for (int i = 0; i < c->n_st; i++) {
        int64_t t = c->st[i].tokens;
        for (int k = 0; k < nb; k++)
            if (t > top[k]) {
                int64_t x = top[k];
                top[k] = t;
                t = x;
            }
    }
    int64_t sum = 0;
    for (int k = 0; k < nb; k++)
        sum += top[k];
    if (b > nb)
        sum += (int64_t)(b - nb) * top[nb - 1];
    cap.text_tokens = sum > 0 ? (sum < (1 << 26) ? (int)sum : 1 << 26) : 1;
    return cap;
}

void batch_free(BatchBuf *bb)
{
    free(bb->img);
    free(bb->tokbias);
    free(bb->inside);
    free(bb->hist);
    free(bb->crop);
    free(bb->rb);
    free(bb->rabn);
    free(bb->rdis);
    free(bb->local);
    free(bb->anat_n);
    free(bb->rlab);
    memset(bb, 0, sizeof *bb);
}

int batch_alloc(BatchBuf *bb, const TrainSet *c, const NetCfg *cfg, int cap_b, FvErr *e)
{
    memset(bb, 0, sizeof *bb);
    NetCap cap = trainset_capacity(c, cap_b);
    size_t B = (size_t)cap_b, A = (size_t)(c->n_anat ? c->n_anat : 1), T = (size_t)netcfg_tokens(cfg);
    size_t R = (size_t)cap.rows, vox = (size_t)cfg->in_c * cfg->in_z * cfg->in_y * cfg->in_x;
    bb->cap_b = cap_b;
    bb->img = malloc(B * vox * sizeof *bb->img);
    bb->tokbias = malloc(B * A * T * sizeof *bb->tokbias);
    bb->inside = malloc(B * A);
    if (cfg->hist && !(bb->hist = malloc(B * (A + 1) * NET_HIST_DIM * sizeof *bb->hist))) {
        batch_free(bb);
        return err_set(e, FV_ENOMEM, "batch: out of memory");
    }
    bb->crop = malloc(B * sizeof *bb->crop);
    /* the int arrays in one block: rb, ra, rtext, cand_s, grow, uniq (R
     * each), goff (A + 2), toff (R + 1), tids (tokens) */
    size_t nint = 7 * R + (A + 2) + 1 + (size_t)cap.text_tokens;
    bb->rb = malloc(nint * sizeof *bb->rb);
    bb->rabn = malloc(R);
    bb->rdis = malloc(R * (size_t)c->dis_words * sizeof *bb->rdis);
    bb->local = malloc(((size_t)c->n_text + 1) * sizeof *bb->local);
    bb->anat_n = malloc(2 * A * sizeof *bb->anat_n);
    if (c->mode == LOSS_SUPERVISED)
        bb->rlab = malloc(R * (size_t)(c->n_tasks ? c->n_tasks : 1));
    if (!bb->img || !bb->tokbias || !bb->inside || !bb->crop || !bb->rb || !bb->rabn ||
        !bb->rdis || !bb->local || !bb->anat_n || (c->mode == LOSS_SUPERVISED && !bb->rlab)) {
        batch_free(bb);
        return err_set(e, FV_ENOMEM, "batch: out of memory");
    }
    bb->ra = bb->rb + R;
    bb->rtext = bb->ra + R;
    bb->cand_s = bb->rtext + R;
    bb->grow = bb->cand_s + R;
    bb->uniq = bb->grow + R;
    bb->goff = bb->uniq + R;
    bb->toff = bb->goff + A + 2;
    bb->tids = bb->toff + R + 1;
    bb->anat_abn = bb->anat_n + A;
    for (int i = 0; i <= c->n_text; i++)
        bb->local[i] = -1;
    return 0;
}

void batch_crops(BatchBuf *bb, const TrainSet *c, const DataCfg *d, const int *idx, int n,
                 int train, Rng *r)
{
    for (int i = 0; i < n; i++)
        data_crop(&c->st[idx[i]], d, r, train, &bb->crop[i]);
}

void batch_render(BatchBuf *bb, const TrainSet *c, const DataCfg *d, const int *idx, int n)
{
    int A = c->n_anat, T = (d->in_z / d->pz) * (d->in_y / d->py) * (d->in_x / d->px);
    size_t vox = (size_t)d->n_win * d->in_z * d->in_y * d->in_x;
    for (int i = 0; i < n; i++) {
        data_render(c, idx[i], d, &bb->crop[i], bb->img + (size_t)i * vox,
                    bb->tokbias + (size_t)i * A * T, bb->inside + (size_t)i * A);
        if (bb->hist)
            data_hist(c, idx[i], d, &bb->crop[i], bb->hist + (size_t)i * (A + 1) * NET_HIST_DIM);
    }
}

int batch_candidates(BatchBuf *bb, const TrainSet *c, const DataCfg *d, const int *idx, int n)
{
    int A = c->n_anat, T = (d->in_z / d->pz) * (d->in_y / d->py) * (d->in_x / d->px);
    int nc = 0;
    if (c->mode == LOSS_GLOBAL) {
        for (int i = 0; i < n; i++)
            if (c->st[idx[i]].report >= 0) {
                bb->rb[nc] = i;
                bb->ra[nc] = 0;
                bb->cand_s[nc] = -1 - c->st[idx[i]].report; /* a report, not a sample */
                nc++;
            }
        return nc;
    }
    /* whole samples of the model's anatomies, inside the crop, with tokens */
    for (int i = 0; i < n; i++) {
        const TrainStudy *s = &c->st[idx[i]];
        for (int j = s->s0; j < s->s0 + s->ns; j++) {
            const TrainSample *x = &c->sm[j];
            if (x->anat < 0 || !x->whole || !bb->inside[(size_t)i * A + x->anat])
                continue;
            const float *tb = bb->tokbias + ((size_t)i * A + x->anat) * T;
            int any = 0;
            for (int t = 0; t < T && !any; t++)
                any = tb[t] > -INFINITY;
            if (!any)
                continue;
            bb->rb[nc] = i;
            bb->ra[nc] = x->anat;
            bb->cand_s[nc] = j;
            nc++;
        }
    }
    return nc;
}

static int group_enters(const TrainSet *c, int n, int abnormal)
{
    return c->mode == LOSS_SUPERVISED ? n >= 1 : n >= 2 && abnormal >= 1;
}

int batch_groups(const TrainSet *c, int *rb, int *ra, int *cand_s, int nc, int *anat_n,
                 int *anat_abn, int *goff, int *grow, int *ng_out)
{
    int nr = 0, ng = 0;
    goff[0] = 0;
    if (c->mode == LOSS_GLOBAL) {
        for (int k = 0; k < nc; k++)
            grow[k] = k;
        if (nc >= 2) {
            goff[1] = nc;
            ng = 1;
        }
        *ng_out = ng;
        return nc;
    }
    int A = c->n_anat;
    for (int a = 0; a < A; a++)
        anat_n[a] = anat_abn[a] = 0;
    for (int k = 0; k < nc; k++) {
        anat_n[ra[k]]++;
        anat_abn[ra[k]] += c->sm[cand_s[k]].abnormal;
    }
    /* an anatomy enters the loss with two samples or more, one abnormal (a
     * contrast needs a pair and a finding); the supervised loss with one */
    for (int k = 0; k < nc; k++) {
        int a = ra[k];
        if (!group_enters(c, anat_n[a], anat_abn[a]))
            continue;
        rb[nr] = rb[k];
        ra[nr] = a;
        cand_s[nr] = cand_s[k];
        nr++;
    }
    int k = 0;
    for (int a = 0; a < A; a++) {
        if (!group_enters(c, anat_n[a], anat_abn[a]))
            continue;
        for (int q = 0; q < nr; q++)
            if (ra[q] == a)
                grow[k++] = q;
        goff[++ng] = k;
    }
    *ng_out = ng;
    return nr;
}

void batch_rows(BatchBuf *bb, const TrainSet *c, int n, int nc)
{
    int A = c->n_anat, ng;
    int nr = batch_groups(c, bb->rb, bb->ra, bb->cand_s, nc, bb->anat_n, bb->anat_abn, bb->goff,
                          bb->grow, &ng);
    /* texts, each once */
    int nt = 0;
    bb->toff[0] = 0;
    bb->n_pairs = nr;
    for (int q = 0; q < nr; q++) {
        int s = bb->cand_s[q];
        int text = s >= 0 ? c->sm[s].text : -1 - s;
        if (bb->local[text] < 0) {
            bb->local[text] = nt;
            bb->uniq[nt] = text;
            int len = c->tok_off[text + 1] - c->tok_off[text];
            memcpy(bb->tids + bb->toff[nt], c->tok_ids + c->tok_off[text], (size_t)len * sizeof(int));
            bb->toff[nt + 1] = bb->toff[nt] + len;
            nt++;
        }
        bb->rtext[q] = bb->local[text];
        bb->rabn[q] = s >= 0 ? c->sm[s].abnormal : 0;
        if (s >= 0)
            memcpy(bb->rdis + (size_t)q * c->dis_words, c->dis + (size_t)s * c->dis_words,
                   (size_t)c->dis_words * sizeof(uint64_t));
        else
            memset(bb->rdis + (size_t)q * c->dis_words, 0, (size_t)c->dis_words * sizeof(uint64_t));
    }
    for (int s = 0; s < nt; s++)
        bb->local[bb->uniq[s]] = -1;
    if (bb->rlab)
        task_labels_rows(c, bb->ra, bb->cand_s, nr, bb->rlab);
    bb->nb = (NetBatch){
        .nb = n, .img = bb->img, .tokbias = bb->tokbias, .hist = bb->hist, .hist_n = A + 1,
        .nr = nr, .rb = bb->rb, .ra = bb->ra,
        .rtext = bb->rtext, .rabn = bb->rabn, .rdis = bb->rdis, .dis_words = c->dis_words,
        .ng = ng, .goff = bb->goff, .grow = bb->grow, .nt = nt, .toff = bb->toff, .tids = bb->tids,
        .rlab = bb->rlab,
    };
}

void batch_build(BatchBuf *bb, const TrainSet *c, const DataCfg *d, const int *idx, int n,
                 int train, Rng *r)
{
    batch_crops(bb, c, d, idx, n, train, r);
    batch_render(bb, c, d, idx, n);
    batch_rows(bb, c, n, batch_candidates(bb, c, d, idx, n));
}
