#include "ontology.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schemas.h"
#include "tsv.h"

static void strlist_free(StrList *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->s[i]);
    free(l->s);
    l->s = NULL;
    l->n = 0;
}

/* '|' separated; '-' or empty means none. */
static int strlist_parse(StrList *l, const char *field, FvErr *e)
{
    l->s = NULL;
    l->n = 0;
    if (!*field || strcmp(field, "-") == 0)
        return 0;
    char *copy = strdup(field);
    if (!copy)
        return err_set(e, FV_ENOMEM, "ontology: out of memory");
    int cap = 1;
    for (const char *p = field; *p; p++)
        cap += *p == '|';
    l->s = calloc((size_t)cap, sizeof *l->s);
    char **parts = calloc((size_t)cap, sizeof *parts);
    if (!l->s || !parts) {
        free(copy);
        free(parts);
        return err_set(e, FV_ENOMEM, "ontology: out of memory");
    }
    int n = str_split(copy, '|', parts, cap);
    for (int i = 0; i < n; i++) {
        if (!*parts[i])
            continue;
        if (!(l->s[l->n] = strdup(parts[i]))) {
            free(copy);
            free(parts);
            return err_set(e, FV_ENOMEM, "ontology: out of memory");
        }
        l->n++;
    }
    free(copy);
    free(parts);
    return 0;
}

void onto_free(Ontology **po)
{
    if (!po || !*po)
        return;
    Ontology *o = *po;
    for (int i = 0; i < o->n_anat; i++) {
        Anatomy *a = &o->anat[i];
        free(a->id); free(a->en); free(a->zh); free(a->region);
        free(a->ts_ids); free(a->region_of); free(a->groups);
        strlist_free(&a->en_syn);
        strlist_free(&a->zh_syn);
    }
    for (int i = 0; i < o->n_groups; i++) {
        AnatomyGroup *g = &o->groups[i];
        free(g->id); free(g->en); free(g->zh);
        strlist_free(&g->en_syn);
        strlist_free(&g->zh_syn);
    }
    for (int i = 0; i < o->n_find; i++) {
        Finding *f = &o->find[i];
        free(f->id); free(f->en); free(f->zh); free(f->ctrate_label);
        strlist_free(&f->en_syn);
        strlist_free(&f->zh_syn);
    }
    free(o->anat);
    free(o->groups);
    free(o->find);
    free(o);
    *po = NULL;
}

int onto_anatomy(const Ontology *o, const char *id)
{
    for (int i = 0; i < o->n_anat; i++)
        if (strcmp(o->anat[i].id, id) == 0)
            return i;
    return -1;
}

int onto_group(const Ontology *o, const char *id)
{
    for (int i = 0; i < o->n_groups; i++)
        if (strcmp(o->groups[i].id, id) == 0)
            return i;
    return -1;
}

int onto_finding(const Ontology *o, const char *id)
{
    for (int i = 0; i < o->n_find; i++)
        if (strcmp(o->find[i].id, id) == 0)
            return i;
    return -1;
}

int onto_in_group(const Ontology *o, int a, int g)
{
    for (int i = 0; i < o->anat[a].n_groups; i++)
        if (o->anat[a].groups[i] == g)
            return 1;
    return 0;
}

static int nonempty(TsvReader *r, const char *field, const char *what, FvErr *e)
{
    if (!*field || strcmp(field, "-") == 0)
        return err_set(e, FV_EFORMAT, "%s:%d: empty %s", r->name, r->line, what);
    return 0;
}

static char *dup_or_fail(const char *s, FvErr *e)
{
    char *d = strdup(s);
    if (!d)
        err_set(e, FV_ENOMEM, "ontology: out of memory");
    return d;
}

/* Parses "1,3,10-14" into ids (each in 1..ONTO_MAX_TS_ID). */
static int parse_ts_ids(TsvReader *r, const char *field, int **out, int *n, FvErr *e)
{
    *out = NULL;
    *n = 0;
    if (strcmp(field, "-") == 0)
        return 0;
    int cap = 0;
    const char *p = field;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10), b = a;
        if (end == p)
            return err_set(e, FV_EFORMAT, "%s:%d: bad ts_ids '%s'", r->name, r->line, field);
        p = end;
        if (*p == '-') {
            p++;
            b = strtol(p, &end, 10);
            if (end == p)
                return err_set(e, FV_EFORMAT, "%s:%d: bad ts_ids '%s'", r->name, r->line, field);
            p = end;
        }
        if (a < 1 || b > ONTO_MAX_TS_ID || b < a)
            return err_set(e, FV_EFORMAT, "%s:%d: ts_ids range %ld-%ld outside 1-%d", r->name,
                           r->line, a, b, ONTO_MAX_TS_ID);
        for (long v = a; v <= b; v++) {
            if (*n == cap) {
                cap = cap ? cap * 2 : 8;
                int *x = realloc(*out, (size_t)cap * sizeof *x);
                if (!x)
                    return err_set(e, FV_ENOMEM, "ontology: out of memory");
                *out = x;
            }
            (*out)[(*n)++] = (int)v;
        }
        if (*p == ',')
            p++;
        else if (*p)
            return err_set(e, FV_EFORMAT, "%s:%d: bad ts_ids '%s'", r->name, r->line, field);
    }
    return 0;
}

static int count_rows(const char *text, size_t len, const char *name, int *n, FvErr *e)
{
    TsvReader r;
    if (tsv_open(&r, text, len, name, e))
        return -1;
    int rc;
    *n = 0;
    while ((rc = tsv_next(&r, e)) == 1)
        (*n)++;
    tsv_close(&r);
    return rc;
}

static int load_groups(Ontology *o, const char *text, FvErr *e)
{
    static const char *const names[] = {"id", "en", "zh", "en_synonyms", "zh_synonyms", NULL};
    int c[5], n, rc;
    size_t len = strlen(text);
    if (count_rows(text, len, "groups.tsv", &n, e))
        return -1;
    if (!(o->groups = calloc((size_t)n + 1, sizeof *o->groups)))
        return err_set(e, FV_ENOMEM, "ontology: out of memory");
    TsvReader r;
    if (tsv_open(&r, text, len, "groups.tsv", e))
        return -1;
    if (tsv_cols(&r, names, c, e))
        goto fail;
    while ((rc = tsv_next(&r, e)) == 1) {
        AnatomyGroup *g = &o->groups[o->n_groups];
        if (nonempty(&r, r.fields[c[0]], "id", e) || nonempty(&r, r.fields[c[1]], "en", e) ||
            nonempty(&r, r.fields[c[2]], "zh", e))
            goto fail;
        if (onto_group(o, r.fields[c[0]]) >= 0) {
            err_set(e, FV_EFORMAT, "%s:%d: duplicate group id '%s'", r.name, r.line,
                    r.fields[c[0]]);
            goto fail;
        }
        o->n_groups++;
        if (!(g->id = dup_or_fail(r.fields[c[0]], e)) || !(g->en = dup_or_fail(r.fields[c[1]], e)) ||
            !(g->zh = dup_or_fail(r.fields[c[2]], e)) ||
            strlist_parse(&g->en_syn, r.fields[c[3]], e) ||
            strlist_parse(&g->zh_syn, r.fields[c[4]], e))
            goto fail;
    }
    if (rc < 0)
        goto fail;
    tsv_close(&r);
    return 0;
fail:
    tsv_close(&r);
    return -1;
}

/* Pass 1 reads ids so region_of can refer to later rows; pass 2 the rest. */
static int load_anatomy(Ontology *o, const char *text, FvErr *e)
{
    static const char *const names[] = {"id", "en", "zh", "region", "main", "ts_ids",
                                        "region_of", "groups", "en_synonyms", "zh_synonyms", NULL};
    int c[10], n, rc;
    size_t len = strlen(text);
    if (count_rows(text, len, "anatomy.tsv", &n, e))
        return -1;
    if (!(o->anat = calloc((size_t)n + 1, sizeof *o->anat)))
        return err_set(e, FV_ENOMEM, "ontology: out of memory");
    TsvReader r;
    if (tsv_open(&r, text, len, "anatomy.tsv", e))
        return -1;
    if (tsv_cols(&r, names, c, e))
        goto fail;
    while ((rc = tsv_next(&r, e)) == 1) {
        Anatomy *a = &o->anat[o->n_anat];
        if (nonempty(&r, r.fields[c[0]], "id", e) || nonempty(&r, r.fields[c[1]], "en", e) ||
            nonempty(&r, r.fields[c[2]], "zh", e))
            goto fail;
        if (onto_anatomy(o, r.fields[c[0]]) >= 0) {
            err_set(e, FV_EFORMAT, "%s:%d: duplicate anatomy id '%s'", r.name, r.line,
                    r.fields[c[0]]);
            goto fail;
        }
        o->n_anat++;
        if (!(a->id = dup_or_fail(r.fields[c[0]], e)) || !(a->en = dup_or_fail(r.fields[c[1]], e)) ||
            !(a->zh = dup_or_fail(r.fields[c[2]], e)) ||
            !(a->region = dup_or_fail(r.fields[c[3]], e)))
            goto fail;
        if (strcmp(r.fields[c[4]], "0") && strcmp(r.fields[c[4]], "1")) {
            err_set(e, FV_EFORMAT, "%s:%d: main must be 0 or 1", r.name, r.line);
            goto fail;
        }
        a->main = r.fields[c[4]][0] == '1';
        if (parse_ts_ids(&r, r.fields[c[5]], &a->ts_ids, &a->n_ts, e) ||
            strlist_parse(&a->en_syn, r.fields[c[8]], e) ||
            strlist_parse(&a->zh_syn, r.fields[c[9]], e))
            goto fail;
        for (int i = 0; i < a->n_ts; i++) {
            int id = a->ts_ids[i];
            for (int k = 0; k < o->n_anat - 1; k++)
                for (int m = 0; m < o->anat[k].n_ts; m++)
                    if (o->anat[k].ts_ids[m] == id) {
                        err_set(e, FV_EFORMAT, "%s:%d: TotalSegmentator id %d is already in '%s'",
                                r.name, r.line, id, o->anat[k].id);
                        goto fail;
                    }
        }
        /* groups */
        if (strcmp(r.fields[c[7]], "-") != 0) {
            StrList gl;
            if (strlist_parse(&gl, r.fields[c[7]], e))
                goto fail;
            a->groups = calloc((size_t)gl.n + 1, sizeof *a->groups);
            if (!a->groups) {
                strlist_free(&gl);
                err_set(e, FV_ENOMEM, "ontology: out of memory");
                goto fail;
            }
            for (int i = 0; i < gl.n; i++) {
                int g = onto_group(o, gl.s[i]);
                if (g < 0) {
                    err_set(e, FV_EFORMAT, "%s:%d: unknown group '%s' (not in groups.tsv)",
                            r.name, r.line, gl.s[i]);
                    strlist_free(&gl);
                    goto fail;
                }
                a->groups[a->n_groups++] = g;
            }
            strlist_free(&gl);
        }
    }
    if (rc < 0)
        goto fail;
    tsv_close(&r);

    /* Pass 2: region_of refers to anatomies by id. */
    if (tsv_open(&r, text, len, "anatomy.tsv", e))
        return -1;
    for (int i = 0; (rc = tsv_next(&r, e)) == 1; i++) {
        Anatomy *a = &o->anat[i];
        StrList rl;
        if (strlist_parse(&rl, r.fields[c[6]], e))
            goto fail;
        if (rl.n == 0 && strcmp(r.fields[c[6]], "-") != 0) {
            strlist_free(&rl);
            err_set(e, FV_EFORMAT, "%s:%d: empty region_of", r.name, r.line);
            goto fail;
        }
        /* region_of is ',' separated: re-split the single item. */
        char *copy = rl.n ? strdup(rl.s[0]) : NULL;
        strlist_free(&rl);
        if (!copy)
            continue;
        char *parts[64];
        int np = str_split(copy, ',', parts, 64);
        a->region_of = calloc((size_t)np, sizeof *a->region_of);
        if (!a->region_of) {
            free(copy);
            err_set(e, FV_ENOMEM, "ontology: out of memory");
            goto fail;
        }
        for (int k = 0; k < np; k++) {
            int x = onto_anatomy(o, parts[k]);
            if (x < 0 || x == i) {
                err_set(e, FV_EFORMAT, "%s:%d: region_of names unknown anatomy '%s'", r.name,
                        r.line, parts[k]);
                free(copy);
                goto fail;
            }
            a->region_of[a->n_region_of++] = x;
        }
        free(copy);
        if (a->n_ts) {
            err_set(e, FV_EFORMAT, "%s:%d: an anatomy has either ts_ids or region_of, not both",
                    r.name, r.line);
            goto fail;
        }
    }
    if (rc < 0)
        goto fail;
    tsv_close(&r);
    return 0;
fail:
    tsv_close(&r);
    return -1;
}

static int load_findings(Ontology *o, const char *text, FvErr *e)
{
    static const char *const names[] = {"id",     "anatomy",    "en",          "zh",
                                        "ctrate_label", "fvlm16", "prevalence", "en_synonyms",
                                        "zh_synonyms", NULL};
    int c[9], n, rc;
    size_t len = strlen(text);
    if (count_rows(text, len, "findings.tsv", &n, e))
        return -1;
    if (!(o->find = calloc((size_t)n + 1, sizeof *o->find)))
        return err_set(e, FV_ENOMEM, "ontology: out of memory");
    TsvReader r;
    if (tsv_open(&r, text, len, "findings.tsv", e))
        return -1;
    if (tsv_cols(&r, names, c, e))
        goto fail;
    while ((rc = tsv_next(&r, e)) == 1) {
        Finding *f = &o->find[o->n_find];
        if (nonempty(&r, r.fields[c[0]], "id", e) || nonempty(&r, r.fields[c[2]], "en", e) ||
            nonempty(&r, r.fields[c[3]], "zh", e))
            goto fail;
        if (onto_finding(o, r.fields[c[0]]) >= 0) {
            err_set(e, FV_EFORMAT, "%s:%d: duplicate task id '%s'", r.name, r.line,
                    r.fields[c[0]]);
            goto fail;
        }
        int a = onto_anatomy(o, r.fields[c[1]]);
        if (a < 0) {
            err_set(e, FV_EFORMAT, "%s:%d: task '%s' names unknown anatomy '%s'", r.name, r.line,
                    r.fields[c[0]], r.fields[c[1]]);
            goto fail;
        }
        char *end;
        double prev = strtod(r.fields[c[6]], &end);
        if (end == r.fields[c[6]] || *end || prev < 0 || prev > 1) {
            err_set(e, FV_EFORMAT, "%s:%d: prevalence '%s' is not in [0, 1]", r.name, r.line,
                    r.fields[c[6]]);
            goto fail;
        }
        o->n_find++;
        f->anatomy = a;
        f->prevalence = prev;
        f->fvlm16 = strcmp(r.fields[c[5]], "1") == 0;
        if (!(f->id = dup_or_fail(r.fields[c[0]], e)) || !(f->en = dup_or_fail(r.fields[c[2]], e)) ||
            !(f->zh = dup_or_fail(r.fields[c[3]], e)) ||
            strlist_parse(&f->en_syn, r.fields[c[7]], e) ||
            strlist_parse(&f->zh_syn, r.fields[c[8]], e))
            goto fail;
        if (strcmp(r.fields[c[4]], "-") != 0 && !(f->ctrate_label = dup_or_fail(r.fields[c[4]], e)))
            goto fail;
    }
    if (rc < 0)
        goto fail;
    tsv_close(&r);
    return 0;
fail:
    tsv_close(&r);
    return -1;
}

int onto_parse(Ontology **out, const char *anatomy_tsv, const char *groups_tsv,
               const char *findings_tsv, FvErr *e)
{
    *out = NULL;
    Ontology *o = calloc(1, sizeof *o);
    if (!o)
        return err_set(e, FV_ENOMEM, "ontology: out of memory");
    if (load_groups(o, groups_tsv, e) || load_anatomy(o, anatomy_tsv, e) ||
        load_findings(o, findings_tsv, e)) {
        onto_free(&o);
        return -1;
    }
    for (int i = 0; i <= ONTO_MAX_TS_ID; i++)
        o->ts_to_anat[i] = -1;
    for (int a = 0; a < o->n_anat; a++)
        for (int k = 0; k < o->anat[a].n_ts; k++)
            o->ts_to_anat[o->anat[a].ts_ids[k]] = a;
    *out = o;
    return 0;
}

int onto_load(Ontology **out, FvErr *e)
{
    char *a = NULL, *g = NULL, *f = NULL;
    size_t n;
    int rc = -1;
    if (schema_load("anatomy.tsv", &a, &n, e) || schema_load("groups.tsv", &g, &n, e) ||
        schema_load("findings.tsv", &f, &n, e))
        goto out;
    rc = onto_parse(out, a, g, f, e);
out:
    free(a);
    free(g);
    free(f);
    return rc;
}

void onto_normal_text(const Ontology *o, int a, int zh, Buf *b)
{
    const Anatomy *an = &o->anat[a];
    if (zh) {
        buf_printf(b, "%s未见明显异常。", an->zh);
        return;
    }
    size_t at = b->len;
    buf_printf(b, "%s shows no significant abnormalities.", an->en);
    if (!b->failed && b->len > at)
        b->data[at] = (char)toupper((unsigned char)b->data[at]);
}
