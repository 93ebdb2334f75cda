#include "totalseg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "schemas.h"
#include "tsv.h"

int ts_classes_load(TsClasses *t, FvErr *e)
{
    memset(t, 0, sizeof *t);
    char *text;
    size_t len;
    if (schema_load("totalseg_classes.tsv", &text, &len, e))
        return -1;
    TsvReader r;
    if (tsv_open(&r, text, len, "totalseg_classes.tsv", e)) {
        free(text);
        return -1;
    }
    static const char *const cols[] = {"id", "name", NULL};
    int c[2] = {0};
    int rc = tsv_cols(&r, cols, c, e), cid = c[0], cname = c[1];
    while (rc == 0 && (rc = tsv_next(&r, e)) == 1) {
        int id = atoi(r.fields[cid]);
        if (id < 1 || id > TS_MAX_ID || t->name[id][0]) {
            rc = err_set(e, FV_EFORMAT, "totalseg_classes.tsv:%d: bad or repeated id '%s'", r.line,
                         r.fields[cid]);
            break;
        }
        snprintf(t->name[id], sizeof t->name[id], "%s", r.fields[cname]);
        if (id > t->max_id)
            t->max_id = id;
        rc = 0; /* one more row */
    }
    tsv_close(&r);
    free(text);
    return rc < 0 ? -1 : 0;
}

int ts_class_id(const TsClasses *t, const char *name)
{
    char n[64];
    snprintf(n, sizeof n, "%s", name);
    const char *exts[] = {".nii.gz", ".nii", ".gz"};
    for (size_t i = 0; i < 3; i++) {
        size_t l = strlen(n), k = strlen(exts[i]);
        if (l > k && strcasecmp(n + l - k, exts[i]) == 0) {
            n[l - k] = '\0';
            break;
        }
    }
    for (int id = 1; id <= t->max_id; id++)
        if (t->name[id][0] && strcasecmp(t->name[id], n) == 0)
            return id;
    return -1;
}
