#include "anat_stats.h"

#include <stdlib.h>
#include <string.h>

#include "data.h"

int anat_stats_study(Db *db, const Ontology *o, int64_t study_id, double *mean_hu, double *ml,
                     unsigned char *valid, FvErr *e)
{
    memset(valid, 0, (size_t)o->n_anat);
    char **ids = malloc((size_t)(o->n_anat ? o->n_anat : 1) * sizeof *ids);
    if (!ids)
        return err_set(e, FV_ENOMEM, "stats: out of memory");
    int n = 0;
    for (int a = 0; a < o->n_anat; a++)
        ids[n++] = o->anat[a].id;
    TrainSet c;
    int rc = trainset_load(&c, db, o, LOSS_FINE, 0, ids, n, study_id, NULL, e);
    free(ids);
    if (rc)
        return -1;
    if (c.n_st != 1) {
        trainset_free(&c);
        return err_set(e, FV_EFORMAT, "study %lld: no volume, mask or _union region to read",
                       (long long)study_id);
    }
    const TrainStudy *s = &c.st[0];
    double *sum = calloc((size_t)c.n_anat + 1, sizeof *sum);
    int64_t *cnt = calloc((size_t)c.n_anat + 1, sizeof *cnt);
    if (!sum || !cnt) {
        free(sum);
        free(cnt);
        trainset_free(&c);
        return err_set(e, FV_ENOMEM, "stats: out of memory");
    }
    size_t nv = (size_t)s->nz * s->ny * s->nx;
    for (size_t v = 0; v < nv; v++) {
        int id = s->mask[v];
        for (int q = c.lab_off[id]; q < c.lab_off[id + 1]; q++) {
            sum[c.lab_anat[q]] += s->ct[v];
            cnt[c.lab_anat[q]]++;
        }
    }
    double voxel_ml = s->sz * s->sy * s->sx / 1000.0;
    for (int m = 0; m < c.n_anat; m++) {
        int a = c.anat_onto[m];
        if (!cnt[m])
            continue;
        valid[a] = 1;
        mean_hu[a] = sum[m] / (double)cnt[m];
        ml[a] = (double)cnt[m] * voxel_ml;
    }
    free(sum);
    free(cnt);
    trainset_free(&c);
    return 0;
}
