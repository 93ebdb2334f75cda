#include "anatomy_meta.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "schemas.h"
#include "tsv.h"

void anatomy_meta_free(AnatomyMetaTable *t)
{
    if (t->names)
        for (int i = 0; i < t->n; i++)
            free(t->names[i]);
    free(t->names);
    free(t->m);
    memset(t, 0, sizeof *t);
}

/* A bound in ml: '-' for none, else a finite number >= 0. */
static int parse_ml(const char *s, double *out)
{
    if (!strcmp(s, "-")) {
        *out = -1;
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0)
        return -1;
    *out = v;
    return 0;
}

int anatomy_meta_parse(const Ontology *o, const char *text, size_t len, const char *name,
                       AnatomyMetaTable *t, FvErr *e)
{
    memset(t, 0, sizeof *t);
    t->n = o->n_anat;
    t->m = calloc((size_t)(o->n_anat > 0 ? o->n_anat : 1), sizeof *t->m);
    t->names = calloc((size_t)(o->n_anat > 0 ? o->n_anat : 1), sizeof *t->names);
    if (!t->m || !t->names) {
        anatomy_meta_free(t);
        return err_set(e, FV_ENOMEM, "%s: out of memory", name);
    }
    for (int i = 0; i < o->n_anat; i++) {
        t->m[i].fvlm_name = o->anat[i].id;
        t->m[i].min_ml = t->m[i].max_ml = -1;
    }
    TsvReader r;
    if (tsv_open(&r, text, len, name, e)) {
        tsv_close(&r);
        anatomy_meta_free(t);
        return -1;
    }
    static const char *const cols[] = {"id", "fvlm_name", "min_ml", "max_ml", NULL};
    int c[4] = {0};
    int rc = tsv_cols(&r, cols, c, e);
    int c_id = c[0], c_name = c[1], c_min = c[2], c_max = c[3];
    while (rc == 0) {
        int got = tsv_next(&r, e);
        if (got < 0)
            rc = -1;
        if (got <= 0)
            break;
        const char *id = r.fields[c_id];
        int a = onto_anatomy(o, id);
        double lo, hi;
        if (a < 0)
            rc = err_set(e, FV_EFORMAT, "%s:%d: unknown anatomy '%s'", name, r.line, id);
        else if (t->names[a])
            rc = err_set(e, FV_EFORMAT, "%s:%d: anatomy '%s' listed twice", name, r.line, id);
        else if (!*r.fields[c_name] || strchr(r.fields[c_name], ' '))
            rc = err_set(e, FV_EFORMAT, "%s:%d: fvlm_name of '%s' is empty or has a space", name,
                         r.line, id);
        else if (parse_ml(r.fields[c_min], &lo) || parse_ml(r.fields[c_max], &hi))
            rc = err_set(e, FV_EFORMAT, "%s:%d: min_ml/max_ml of '%s' must be '-' or a number >= 0",
                         name, r.line, id);
        else if (lo >= 0 && hi >= 0 && lo > hi)
            rc = err_set(e, FV_EFORMAT, "%s:%d: min_ml %g > max_ml %g for '%s'", name, r.line, lo,
                         hi, id);
        else if (!(t->names[a] = strdup(r.fields[c_name])))
            rc = err_set(e, FV_ENOMEM, "%s: out of memory", name);
        else {
            t->m[a].fvlm_name = t->names[a];
            t->m[a].min_ml = lo;
            t->m[a].max_ml = hi;
        }
    }
    tsv_close(&r);
    /* Two anatomies under one export name would overwrite each other's text. */
    for (int a = 0; a < t->n && rc == 0; a++)
        for (int b = a + 1; b < t->n && rc == 0; b++)
            if (!strcmp(t->m[a].fvlm_name, t->m[b].fvlm_name))
                rc = err_set(e, FV_EFORMAT, "%s: '%s' and '%s' share the export name '%s'", name,
                             o->anat[a].id, o->anat[b].id, t->m[a].fvlm_name);
    if (rc)
        anatomy_meta_free(t);
    return rc;
}

int anatomy_meta_load(const Ontology *o, AnatomyMetaTable *t, FvErr *e)
{
    char *text;
    size_t len;
    if (schema_load("align_anatomy.tsv", &text, &len, e))
        return -1;
    int rc = anatomy_meta_parse(o, text, len, "align_anatomy.tsv", t, e);
    free(text);
    return rc;
}

int anatomy_meta_find(const Ontology *o, const AnatomyMetaTable *t, const char *name)
{
    for (int a = 0; a < t->n; a++)
        if (!strcmp(t->m[a].fvlm_name, name))
            return a;
    return onto_anatomy(o, name);
}
