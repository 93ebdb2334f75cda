#include "queue_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "log.h"
#include "model.h"
#include "ontology.h"
#include "prompts.h"

int queue_model_scores(Db *db, const char *model_path, const char *split, StudyScore **scores,
                       int *n, FvErr *e)
{
    *scores = NULL;
    *n = 0;
    Ontology *o = NULL;
    FvlmModel *m = NULL;
    Prompts *pr = NULL;
    sqlite3_stmt *st = NULL;
    float *img = NULL, *txt = NULL;
    unsigned char *valid = NULL, *have = NULL;
    int rc = -1, cap = 0, d = 0;
    if (onto_load(&o, e) || prompts_load(&pr, o, e) || model_load(&m, model_path, e))
        goto out;
    if (model_n_anat(m) != o->n_anat) {
        err_set(e, FV_EFORMAT, "%s: the model has %d anatomy rows, this fvlm's ontology %d",
                model_path, model_n_anat(m), o->n_anat);
        goto out;
    }
    d = model_embed_dim(m);
    double temp = model_temperature(m);
    img = calloc((size_t)o->n_anat * (size_t)d, sizeof *img);
    valid = calloc((size_t)o->n_anat, 1);
    /* Prompt features, (task, language, neg/pos, D), encoded when first needed. */
    txt = calloc((size_t)o->n_find * PROMPT_LANG_N * 2 * (size_t)d, sizeof *txt);
    have = calloc((size_t)o->n_find * PROMPT_LANG_N, 1);
    if (!img || !valid || !txt || !have) {
        err_set(e, FV_ENOMEM, "model order: out of memory");
        goto out;
    }
    if (db_prepare(db, &st,
                   "SELECT l.study_id, l.task, l.value, coalesce(r.language, 'en') FROM labels l"
                   " JOIN studies s ON s.id = l.study_id LEFT JOIN reports r ON r.study_id = s.id"
                   " WHERE l.value IN (0, 1) AND (?1 IS NULL OR s.split = ?1)"
                   " ORDER BY l.study_id, l.task",
                   e) ||
        db_bindf(db, st, e, "s", split))
        goto out;
    int64_t cur = 0;
    int ok = 0, r;
    rc = 0;
    while (rc == 0 && (r = db_step(db, st, e)) == 1) {
        int64_t sid = sqlite3_column_int64(st, 0);
        int task = onto_finding(o, (const char *)sqlite3_column_text(st, 1));
        int label = sqlite3_column_int(st, 2);
        const char *lang = (const char *)sqlite3_column_text(st, 3);
        int zh = lang && !strcmp(lang, "zh");
        if (sid != cur) {
            cur = sid;
            FvErr se = {0};
            ok = model_encode_study(m, db, sid, img, valid, &se) == 0;
            if (!ok)
                log_warn("model order: study %lld: %s", (long long)sid, se.msg);
        }
        if (!ok || task < 0)
            continue;
        int a = o->find[task].anatomy;
        if (!valid[a])
            continue;
        size_t slot = (size_t)task * PROMPT_LANG_N + (size_t)zh;
        float *neg = txt + slot * 2 * (size_t)d, *pos = neg + d;
        if (!have[slot]) {
            const PromptPair *pp = prompts_get(pr, task, zh ? PROMPT_LANG_ZH : PROMPT_LANG_EN,
                                               PROMPT_FVLM);
            if (!pp || model_encode_text(m, pp->neg, neg, e) || model_encode_text(m, pp->pos, pos, e)) {
                if (!pp)
                    err_set(e, FV_ENOTFOUND, "no prompt for task %s", o->find[task].id);
                rc = -1;
                break;
            }
            have[slot] = 1;
        }
        double p = eval_zero_shot_score(img + (size_t)a * (size_t)d, neg, pos, d, temp);
        double dis = fabs(p - label);
        if (*n > 0 && (*scores)[*n - 1].study_id == sid) {
            if (dis > (*scores)[*n - 1].score)
                (*scores)[*n - 1].score = dis;
        } else {
            if (arr_reserve(scores, &cap, *n, sizeof **scores, 256)) {
                rc = err_set(e, FV_ENOMEM, "model order: out of memory");
                break;
            }
            (*scores)[(*n)++] = (StudyScore){sid, dis};
        }
    }
    if (rc == 0 && r < 0)
        rc = -1;
out:
    sqlite3_finalize(st);
    free(img);
    free(valid);
    free(txt);
    free(have);
    prompts_free(&pr);
    model_free(&m);
    onto_free(&o);
    if (rc) {
        free(*scores);
        *scores = NULL;
        *n = 0;
    }
    return rc;
}
