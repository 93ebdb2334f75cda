#include "feature_set.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "prompts.h"

void features_free(FeatureSet *fs)
{
    free(fs->study_id);
    free(fs->lang);
    free(fs->slot);
    free(fs->feat);
    free(fs->valid);
    memset(fs, 0, sizeof *fs);
}

double features_dot(const float *a, const float *b, int d)
{
    double s = 0;
    for (int k = 0; k < d; k++)
        s += (double)a[k] * (double)b[k];
    return s;
}

const float *features_get(const FeatureSet *fs, int i, int a)
{
    if (i < 0 || i >= fs->n || a < 0 || a >= fs->n_anat || fs->slot[a] < 0)
        return NULL;
    size_t k = (size_t)i * fs->n_slots + (size_t)fs->slot[a];
    return fs->valid[k] ? fs->feat + k * (size_t)fs->dim : NULL;
}

int features_encode(FeatureSet *fs, Db *db, const Ontology *o, EvalEncoder *enc,
                    const int64_t *ids, int n, const unsigned char *keep, Run *run,
                    const char *label, FvErr *e)
{
    memset(fs, 0, sizeof *fs);
    if (enc->dim < 1 || enc->dim > 1 << 16)
        return err_set(e, FV_EUSAGE, "encoder: feature size %d is out of range", enc->dim);
    fs->n = n;
    fs->n_anat = o->n_anat;
    fs->dim = enc->dim;
    fs->slot = malloc((size_t)o->n_anat * sizeof *fs->slot);
    if (!fs->slot)
        goto oom;
    for (int a = 0; a < o->n_anat; a++)
        fs->slot[a] = keep[a] ? fs->n_slots++ : -1;
    size_t nn = n ? (size_t)n : 1, ns = fs->n_slots ? (size_t)fs->n_slots : 1;
    fs->study_id = malloc(nn * sizeof *fs->study_id);
    fs->lang = calloc(nn, 1);
    fs->valid = calloc(nn * ns, 1);
    fs->feat = calloc(nn * ns * (size_t)fs->dim, sizeof *fs->feat);
    float *all = malloc((size_t)o->n_anat * (size_t)fs->dim * sizeof *all);
    unsigned char *allv = malloc((size_t)o->n_anat);
    if (!fs->study_id || !fs->lang || !fs->valid || !fs->feat || !all || !allv) {
        free(all);
        free(allv);
        goto oom;
    }
    if (n > 0)
        memcpy(fs->study_id, ids, (size_t)n * sizeof *ids);

    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (db_prepare(db, &st, "SELECT language FROM reports WHERE study_id = ?", e))
        goto out;
    Progress pr;
    progress_start(&pr, label, n, "studies");
    for (int i = 0; i < n; i++) {
        if (db_bindf(db, st, e, "i", ids[i]))
            goto out;
        int got = db_step(db, st, e);
        if (got < 0)
            goto out;
        int lang = got ? prompt_lang_parse((const char *)sqlite3_column_text(st, 0)) : PROMPT_LANG_EN;
        fs->lang[i] = (unsigned char)(lang < 0 ? PROMPT_LANG_EN : lang);

        FvErr ee = {0};
        memset(allv, 0, (size_t)o->n_anat);
        int bad = enc->encode_study(enc->ctx, db, ids[i], all, allv, &ee);
        if (!bad) {
            /* A feature that is not finite or far from unit length is a
             * broken model output, not a feature. */
            for (int a = 0; a < o->n_anat && !bad; a++) {
                if (!allv[a] || fs->slot[a] < 0)
                    continue;
                const float *v = all + (size_t)a * fs->dim;
                double nrm = sqrt(features_dot(v, v, fs->dim));
                if (!isfinite(nrm) || (!enc->raw && fabs(nrm - 1.0) > 1e-3))
                    bad = err_set(&ee, FV_EFORMAT, "anatomy %s: feature norm %g is not 1",
                                  o->anat[a].id, nrm);
            }
        }
        if (bad && ee.code == FV_EDAMAGED) {
            /* a damaged tensor file stops the evaluation: skipping the study
             * would score a different test set without saying so */
            *e = ee;
            goto out;
        }
        if (bad) {
            char member[48];
            snprintf(member, sizeof member, "id %lld", (long long)ids[i]);
            fs->n_failed++;
            if (run_error(run, "studies", member, ee.msg, e))
                goto out;
            progress_tick(&pr, 1);
            continue;
        }
        for (int a = 0; a < o->n_anat; a++) {
            if (fs->slot[a] < 0 || !allv[a])
                continue;
            size_t k = (size_t)i * fs->n_slots + (size_t)fs->slot[a];
            fs->valid[k] = 1;
            memcpy(fs->feat + k * (size_t)fs->dim, all + (size_t)a * fs->dim,
                   (size_t)fs->dim * sizeof *all);
        }
        progress_tick(&pr, 1);
    }
    progress_end(&pr);
    rc = 0;
out:
    if (st)
        sqlite3_finalize(st);
    free(all);
    free(allv);
    if (rc)
        features_free(fs);
    return rc;
oom:
    features_free(fs);
    return err_set(e, FV_ENOMEM, "features: out of memory for %d studies", n);
}
