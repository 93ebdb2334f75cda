#include "study_view.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "links.h"

enum { Q_STUDY, Q_SENT, Q_LINKS, Q_STATUS, Q_REGIONS, Q_LABELS, Q_FLAGS, Q_SAMPLES, Q_N };

int view_reader_open(ViewReader *r, Db *db, const Ontology *o, FvErr *e)
{
    static const char *const sql[Q_N] = {
        [Q_STUDY] = "SELECT s.study_key, s.dataset, s.split, r.language, v.nz, v.ny, v.nx,"
                    " v.sz, v.sy, v.sx, v.shard, v.tensor, m.shard, m.tensor, v.id"
                    " FROM studies s LEFT JOIN reports r ON r.study_id = s.id"
                    " LEFT JOIN volumes v ON v.study_id = s.id"
                    " LEFT JOIN masks m ON m.study_id = s.id WHERE s.id = ?",
        [Q_SENT] = "SELECT id, idx, section, text FROM sentences WHERE study_id = ?"
                   " ORDER BY idx, id",
        [Q_LINKS] = "SELECT l.sentence_id, l.anatomy, l.method, l.confidence, l.source, l.accepted,"
                    " l.term, l.start, l.end, l.rule, l.continues"
                    " FROM links l JOIN sentences s ON s.id = l.sentence_id WHERE s.study_id = ?"
                    " ORDER BY s.idx, l.anatomy",
        [Q_STATUS] = "SELECT anatomy, status, source, findings_text, impression_text, text, diseases"
                     " FROM anatomy_status WHERE study_id = ?",
        [Q_REGIONS] = "SELECT anatomy, voxels, volume_ml, z0, z1, y0, y1, x0, x1, whole"
                      " FROM regions WHERE study_id = ?",
        [Q_LABELS] = "SELECT task, value, source FROM labels WHERE study_id = ? ORDER BY task",
        [Q_FLAGS] = "SELECT anatomy, kind, detail FROM flags WHERE study_id = ? ORDER BY id",
        [Q_SAMPLES] = "SELECT anatomy FROM samples WHERE study_id = ?",
    };
    memset(r, 0, sizeof *r);
    r->db = db;
    r->o = o;
    for (int i = 0; i < Q_N; i++)
        if (db_prepare(db, &r->q[i], sql[i], e)) {
            view_reader_close(r);
            return -1;
        }
    return 0;
}

void view_reader_close(ViewReader *r)
{
    for (int i = 0; i < (int)(sizeof r->q / sizeof r->q[0]); i++) {
        sqlite3_finalize(r->q[i]);
        r->q[i] = NULL;
    }
}

void view_free(StudyView *v)
{
    free(v->study_key); free(v->dataset); free(v->split); free(v->language);
    free(v->volume_shard); free(v->volume_tensor); free(v->mask_shard); free(v->mask_tensor);
    for (int i = 0; i < v->n_sent; i++) {
        free(v->sent[i].section);
        free(v->sent[i].text);
    }
    for (int i = 0; i < v->n_links; i++) {
        free(v->links[i].method);
        free(v->links[i].source);
        free(v->links[i].term);
        free(v->links[i].rule);
    }
    for (int i = 0; i < v->n_labels; i++)
        free(v->labels[i].source);
    for (int i = 0; i < v->n_flags; i++) {
        free(v->flags[i].kind);
        free(v->flags[i].detail);
    }
    for (int i = 0; i < v->n_anat; i++) {
        ViewAnatomy *a = &v->anat[i];
        free(a->status); free(a->status_source); free(a->findings_text);
        free(a->impression_text); free(a->text); free(a->diseases);
    }
    free(v->sent);
    free(v->links);
    free(v->labels);
    free(v->flags);
    free(v->anat);
    memset(v, 0, sizeof *v);
}

/* A text column as an owned string; NULL stays NULL. *oom is set when the
 * copy fails. */
static char *col(sqlite3_stmt *st, int c, int *oom)
{
    const unsigned char *t = sqlite3_column_text(st, c);
    if (!t)
        return NULL;
    char *s = strdup((const char *)t);
    if (!s)
        *oom = 1;
    return s;
}

/* Makes room for element n of an array whose capacity is implied by n: 8,
 * then doubling, so it grows when n is 0 or a power of two from 8 on. */
static int grow(void *pp, int n, FvErr *e, size_t size)
{
    void **p = pp;
    int power_of_two = n >= 8 && (n & (n - 1)) == 0;
    if (n != 0 && !power_of_two)
        return 0;
    if (n >= INT_MAX / 4)
        return err_set(e, FV_ELIMIT, "study view: too many rows");
    size_t cap = n ? (size_t)n * 2 : 8;
    void *q = realloc(*p, cap * size);
    if (!q)
        return err_set(e, FV_ENOMEM, "study view: out of memory");
    *p = q;
    return 0;
}

static Region region_row(sqlite3_stmt *st, int c0)
{
    Region r = {0};
    r.voxels = sqlite3_column_int64(st, c0);
    r.volume_ml = sqlite3_column_double(st, c0 + 1);
    r.box.z0 = sqlite3_column_int64(st, c0 + 2);
    r.box.z1 = sqlite3_column_int64(st, c0 + 3);
    r.box.y0 = sqlite3_column_int64(st, c0 + 4);
    r.box.y1 = sqlite3_column_int64(st, c0 + 5);
    r.box.x0 = sqlite3_column_int64(st, c0 + 6);
    r.box.x1 = sqlite3_column_int64(st, c0 + 7);
    r.whole = sqlite3_column_int(st, c0 + 8);
    return r;
}

int view_load(ViewReader *r, int64_t study_id, StudyView *v, FvErr *e)
{
    Db *db = r->db;
    const Ontology *o = r->o;
    int rc, oom = 0;
    memset(v, 0, sizeof *v);
    v->id = study_id;
    v->n_anat = o->n_anat;
    if (!(v->anat = calloc((size_t)(o->n_anat > 0 ? o->n_anat : 1), sizeof *v->anat)))
        return err_set(e, FV_ENOMEM, "study view: out of memory");

    sqlite3_stmt *st = r->q[Q_STUDY];
    if (db_bindf(db, st, e, "i", study_id) || (rc = db_step(db, st, e)) < 0)
        return -1;
    if (rc == 0)
        return err_set(e, FV_ENOTFOUND, "study %lld does not exist", (long long)study_id);
    v->study_key = col(st, 0, &oom);
    v->dataset = col(st, 1, &oom);
    v->split = col(st, 2, &oom);
    v->language = col(st, 3, &oom);
    v->has_volume = sqlite3_column_type(st, 14) != SQLITE_NULL;
    for (int i = 0; i < 3; i++) {
        v->dims[i] = sqlite3_column_int64(st, 4 + i);
        v->spacing[i] = sqlite3_column_double(st, 7 + i);
    }
    v->volume_shard = col(st, 10, &oom);
    v->volume_tensor = col(st, 11, &oom);
    v->mask_shard = col(st, 12, &oom);
    v->mask_tensor = col(st, 13, &oom);
    sqlite3_reset(st);

    st = r->q[Q_SENT];
    if (db_bindf(db, st, e, "i", study_id))
        return -1;
    while ((rc = db_step(db, st, e)) == 1) {
        if (grow(&v->sent, v->n_sent, e, sizeof *v->sent))
            return -1;
        ViewSentence *s = &v->sent[v->n_sent++];
        memset(s, 0, sizeof *s);
        s->id = sqlite3_column_int64(st, 0);
        s->idx = sqlite3_column_int(st, 1);
        s->section = col(st, 2, &oom);
        s->text = col(st, 3, &oom);
    }
    if (rc < 0)
        return -1;

    st = r->q[Q_LINKS];
    if (db_bindf(db, st, e, "i", study_id))
        return -1;
    while ((rc = db_step(db, st, e)) == 1) {
        int64_t sid = sqlite3_column_int64(st, 0);
        int sent = -1;
        for (int i = 0; i < v->n_sent && sent < 0; i++)
            if (v->sent[i].id == sid)
                sent = i;
        const char *anat = (const char *)sqlite3_column_text(st, 1);
        int a = anat && anat[0] ? onto_anatomy(o, anat) : -1;
        if (sent < 0 || (anat && anat[0] && a < 0))
            continue;
        if (grow(&v->links, v->n_links, e, sizeof *v->links))
            return -1;
        ViewLink *l = &v->links[v->n_links++];
        l->sent = sent;
        l->anatomy = a;
        l->method = col(st, 2, &oom);
        l->confidence = sqlite3_column_double(st, 3);
        l->source = col(st, 4, &oom);
        l->accepted = sqlite3_column_type(st, 5) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 5);
        l->term = col(st, 6, &oom);
        l->start = sqlite3_column_type(st, 7) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 7);
        l->end = sqlite3_column_type(st, 8) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 8);
        l->rule = col(st, 9, &oom);
        l->continues = -1;
        if (sqlite3_column_type(st, 10) != SQLITE_NULL) {
            int64_t cid = sqlite3_column_int64(st, 10);
            for (int i = 0; i < v->n_sent && l->continues < 0; i++)
                if (v->sent[i].id == cid)
                    l->continues = i;
        }
        if (a >= 0 && l->accepted != 0)
            v->sent[sent].n_links++;
    }
    if (rc < 0)
        return -1;

    st = r->q[Q_STATUS];
    if (db_bindf(db, st, e, "i", study_id))
        return -1;
    while ((rc = db_step(db, st, e)) == 1) {
        int a = onto_anatomy(o, (const char *)sqlite3_column_text(st, 0));
        if (a < 0 || v->anat[a].has_status)
            continue;
        ViewAnatomy *va = &v->anat[a];
        va->has_status = 1;
        va->status = col(st, 1, &oom);
        va->status_source = col(st, 2, &oom);
        va->findings_text = col(st, 3, &oom);
        va->impression_text = col(st, 4, &oom);
        va->text = col(st, 5, &oom);
        va->diseases = col(st, 6, &oom);
    }
    if (rc < 0)
        return -1;

    st = r->q[Q_REGIONS];
    if (db_bindf(db, st, e, "i", study_id))
        return -1;
    while ((rc = db_step(db, st, e)) == 1) {
        const char *anat = (const char *)sqlite3_column_text(st, 0);
        if (anat && !strcmp(anat, "_union")) {
            v->has_union = 1;
            v->uni = region_row(st, 1);
            continue;
        }
        int a = anat ? onto_anatomy(o, anat) : -1;
        if (a < 0)
            continue;
        v->anat[a].has_region = 1;
        v->anat[a].region = region_row(st, 1);
    }
    if (rc < 0)
        return -1;

    st = r->q[Q_LABELS];
    if (db_bindf(db, st, e, "i", study_id))
        return -1;
    while ((rc = db_step(db, st, e)) == 1) {
        int t = onto_finding(o, (const char *)sqlite3_column_text(st, 0));
        if (t < 0)
            continue;
        if (grow(&v->labels, v->n_labels, e, sizeof *v->labels))
            return -1;
        ViewLabel *l = &v->labels[v->n_labels++];
        l->task = t;
        l->value = sqlite3_column_type(st, 1) == SQLITE_NULL ? 2 : sqlite3_column_int(st, 1);
        l->source = col(st, 2, &oom);
    }
    if (rc < 0)
        return -1;

    st = r->q[Q_FLAGS];
    if (db_bindf(db, st, e, "i", study_id))
        return -1;
    while ((rc = db_step(db, st, e)) == 1) {
        const char *anat = (const char *)sqlite3_column_text(st, 0);
        if (grow(&v->flags, v->n_flags, e, sizeof *v->flags))
            return -1;
        ViewFlag *f = &v->flags[v->n_flags++];
        f->anatomy = anat ? onto_anatomy(o, anat) : -1;
        f->kind = col(st, 1, &oom);
        f->detail = col(st, 2, &oom);
    }
    if (rc < 0)
        return -1;

    st = r->q[Q_SAMPLES];
    if (db_bindf(db, st, e, "i", study_id))
        return -1;
    while ((rc = db_step(db, st, e)) == 1) {
        int a = onto_anatomy(o, (const char *)sqlite3_column_text(st, 0));
        if (a >= 0)
            v->anat[a].is_sample = 1;
    }
    if (rc < 0)
        return -1;
    if (oom)
        return err_set(e, FV_ENOMEM, "study view: out of memory");
    return 0;
}

int view_anatomy_relevant(const StudyView *v, int a)
{
    const ViewAnatomy *va = &v->anat[a];
    if (va->has_region || va->is_sample)
        return 1;
    if (va->has_status && va->status && strcmp(va->status, "unmentioned"))
        return 1;
    for (int i = 0; i < v->n_links; i++)
        if (v->links[i].anatomy == a)
            return 1;
    for (int i = 0; i < v->n_flags; i++)
        if (v->flags[i].anatomy == a)
            return 1;
    return 0;
}

static void json_region(JsonW *w, const Region *r)
{
    jw_obj(w);
    jw_key(w, "voxels"); jw_int(w, r->voxels);
    jw_key(w, "volume_ml"); jw_num(w, r->volume_ml);
    jw_key(w, "box_zyx");
    jw_arr(w);
    jw_int(w, r->box.z0); jw_int(w, r->box.z1);
    jw_int(w, r->box.y0); jw_int(w, r->box.y1);
    jw_int(w, r->box.x0); jw_int(w, r->box.x1);
    jw_arr_end(w);
    jw_key(w, "whole"); jw_bool(w, r->whole);
    jw_obj_end(w);
}

static void json_label_value(JsonW *w, int value)
{
    if (value == 2)
        jw_null(w);
    else
        jw_int(w, value);
}

static void json_flags(JsonW *w, const StudyView *v, int a)
{
    jw_arr(w);
    for (int i = 0; i < v->n_flags; i++) {
        if (v->flags[i].anatomy != a)
            continue;
        jw_obj(w);
        jw_key(w, "kind"); jw_str(w, v->flags[i].kind);
        jw_key(w, "detail"); jw_str(w, v->flags[i].detail);
        jw_obj_end(w);
    }
    jw_arr_end(w);
}

static void json_study_fields(JsonW *w, const StudyView *v)
{
    jw_key(w, "study_id"); jw_int(w, v->id);
    jw_key(w, "study_key"); jw_str(w, v->study_key);
    jw_key(w, "dataset"); jw_str(w, v->dataset);
    jw_key(w, "split"); jw_str(w, v->split);
    jw_key(w, "language"); jw_str(w, v->language);
    jw_key(w, "volume");
    if (v->has_volume) {
        jw_obj(w);
        jw_key(w, "shape_zyx");
        jw_arr(w);
        for (int i = 0; i < 3; i++)
            jw_int(w, v->dims[i]);
        jw_arr_end(w);
        jw_key(w, "spacing_zyx_mm");
        jw_arr(w);
        for (int i = 0; i < 3; i++)
            jw_num(w, v->spacing[i]);
        jw_arr_end(w);
        jw_key(w, "shard"); jw_str(w, v->volume_shard);
        jw_key(w, "tensor"); jw_str(w, v->volume_tensor);
        jw_key(w, "mask_shard"); jw_str(w, v->mask_shard);
        jw_key(w, "mask_tensor"); jw_str(w, v->mask_tensor);
        jw_obj_end(w);
    } else {
        jw_null(w);
    }
    jw_key(w, "crop_box");
    if (v->has_union)
        json_region(w, &v->uni);
    else
        jw_null(w);
    jw_key(w, "study_flags");
    json_flags(w, v, -1);
}

/* Why a link exists: "why": {rule, term, start, end, continues (the idx of
 * the sentence continued)}, null members when the row has none. */
static void json_link_why(JsonW *w, const StudyView *v, const ViewLink *l)
{
    jw_key(w, "why");
    jw_obj(w);
    jw_key(w, "rule");
    if (l->rule)
        jw_str(w, l->rule);
    else
        jw_null(w);
    jw_key(w, "term");
    if (l->term)
        jw_str(w, l->term);
    else
        jw_null(w);
    jw_key(w, "start");
    if (l->start >= 0)
        jw_int(w, l->start);
    else
        jw_null(w);
    jw_key(w, "end");
    if (l->end >= 0)
        jw_int(w, l->end);
    else
        jw_null(w);
    jw_key(w, "continues");
    if (l->continues >= 0)
        jw_int(w, v->sent[l->continues].idx);
    else
        jw_null(w);
    jw_obj_end(w);
}

/* The anatomy's own fields (without the study's). */
static void json_anatomy_fields(JsonW *w, const StudyView *v, const Ontology *o,
                                const AnatomyMetaTable *meta, int a)
{
    const ViewAnatomy *va = &v->anat[a];
    jw_key(w, "anatomy"); jw_str(w, o->anat[a].id);
    jw_key(w, "fvlm_name"); jw_str(w, meta->m[a].fvlm_name);
    jw_key(w, "status"); jw_str(w, va->has_status ? va->status : NULL);
    jw_key(w, "status_source"); jw_str(w, va->has_status ? va->status_source : NULL);
    jw_key(w, "findings_text"); jw_str(w, va->findings_text ? va->findings_text : "");
    jw_key(w, "impression_text"); jw_str(w, va->impression_text ? va->impression_text : "");
    jw_key(w, "text"); jw_str(w, va->text ? va->text : "");
    jw_key(w, "diseases");
    jw_raw(w, va->diseases && va->diseases[0] == '[' ? va->diseases : "[]");
    jw_key(w, "sample"); jw_bool(w, va->is_sample);
    jw_key(w, "region");
    if (va->has_region)
        json_region(w, &va->region);
    else
        jw_null(w);
    jw_key(w, "labels");
    jw_obj(w);
    for (int i = 0; i < v->n_labels; i++) {
        if (o->find[v->labels[i].task].anatomy != a)
            continue;
        jw_key(w, o->find[v->labels[i].task].id);
        json_label_value(w, v->labels[i].value);
    }
    jw_obj_end(w);
    /* Where each label came from: parsed, gold, or audit (an annotator). */
    jw_key(w, "label_sources");
    jw_obj(w);
    for (int i = 0; i < v->n_labels; i++) {
        if (o->find[v->labels[i].task].anatomy != a)
            continue;
        jw_key(w, o->find[v->labels[i].task].id);
        jw_str(w, v->labels[i].source);
    }
    jw_obj_end(w);
    jw_key(w, "sentences");
    jw_arr(w);
    for (int i = 0; i < v->n_links; i++) {
        const ViewLink *l = &v->links[i];
        if (l->anatomy != a)
            continue;
        const ViewSentence *s = &v->sent[l->sent];
        jw_obj(w);
        jw_key(w, "idx"); jw_int(w, s->idx);
        jw_key(w, "section"); jw_str(w, s->section);
        jw_key(w, "text"); jw_str(w, s->text);
        jw_key(w, "method"); jw_str(w, l->method);
        jw_key(w, "confidence"); jw_num(w, l->confidence);
        jw_key(w, "source"); jw_str(w, l->source);
        jw_key(w, "accepted");
        if (l->accepted < 0)
            jw_null(w);
        else
            jw_bool(w, l->accepted);
        json_link_why(w, v, l);
        jw_obj_end(w);
    }
    jw_arr_end(w);
    jw_key(w, "flags");
    json_flags(w, v, a);
}

void view_anatomy_json(const StudyView *v, const Ontology *o, const AnatomyMetaTable *meta,
                       int a, JsonW *w)
{
    jw_obj(w);
    json_study_fields(w, v);
    json_anatomy_fields(w, v, o, meta, a);
    jw_obj_end(w);
}

void view_study_json(const StudyView *v, const Ontology *o, const AnatomyMetaTable *meta,
                     JsonW *w)
{
    jw_obj(w);
    json_study_fields(w, v);
    jw_key(w, "sentences");
    jw_arr(w);
    for (int i = 0; i < v->n_sent; i++) {
        jw_obj(w);
        jw_key(w, "idx"); jw_int(w, v->sent[i].idx);
        jw_key(w, "section"); jw_str(w, v->sent[i].section);
        jw_key(w, "text"); jw_str(w, v->sent[i].text);
        jw_key(w, "linked"); jw_bool(w, v->sent[i].n_links > 0);
        /* an unlinked sentence says why (its "links to none" record) */
        for (int k = 0; k < v->n_links; k++)
            if (v->links[k].sent == i && v->links[k].anatomy < 0)
                json_link_why(w, v, &v->links[k]);
        jw_obj_end(w);
    }
    jw_arr_end(w);
    jw_key(w, "labels");
    jw_obj(w);
    for (int i = 0; i < v->n_labels; i++) {
        jw_key(w, o->find[v->labels[i].task].id);
        json_label_value(w, v->labels[i].value);
    }
    jw_obj_end(w);
    jw_key(w, "anatomies");
    jw_arr(w);
    for (int a = 0; a < o->n_anat; a++) {
        if (!view_anatomy_relevant(v, a))
            continue;
        jw_obj(w);
        json_anatomy_fields(w, v, o, meta, a);
        jw_obj_end(w);
    }
    jw_arr_end(w);
    jw_obj_end(w);
}
