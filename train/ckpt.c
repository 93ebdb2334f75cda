#include "ckpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fvlm_config.h"
#include "json.h"
#include "loss.h"

int ckpt_save(const char *path, const Net *n, const Tokenizer *t, const char *const *anat_ids,
              int n_anat, const CkptState *s, const CkptMeta *m, FvErr *e)
{
    StWriter w;
    st_writer_init(&w);
    char (*names)[64] = NULL;
    Buf net = {0}, vocab = {0}, anat = {0};
    int rc = -1, with_state = s->rng != NULL;
    int nnames = with_state ? 2 * n->n_params : 0;
    if (nnames && !(names = malloc((size_t)nnames * sizeof *names))) {
        err_set(e, FV_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    for (int i = 0; i < n->n_params; i++) {
        const ParamInfo *p = &n->info[i];
        if (st_writer_add(&w, p->name, ST_F32, p->ndim, p->shape, n->params + p->off, e))
            goto out;
        if (!with_state)
            continue;
        snprintf(names[2 * i], 64, "opt.m.%s", p->name);
        snprintf(names[2 * i + 1], 64, "opt.v.%s", p->name);
        if (st_writer_add(&w, names[2 * i], ST_F32, p->ndim, p->shape, n->adam_m + p->off, e) ||
            st_writer_add(&w, names[2 * i + 1], ST_F32, p->ndim, p->shape, n->adam_v + p->off,
                          e))
            goto out;
    }
    if (with_state) {
        int64_t four = 4, no = s->n_order;
        if (st_writer_add(&w, "train.rng", ST_U64, 1, &four, s->rng->s, e) ||
            st_writer_add(&w, "train.order", ST_I32, 1, &no, s->order, e))
            goto out;
    }
    JsonW j;
    jw_init(&j, &net, 0);
    netcfg_to_json(&n->cfg, &j);
    if (tok_to_json(t, &vocab)) {
        err_set(e, FV_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    jw_init(&j, &anat, 0);
    jw_arr(&j);
    for (int i = 0; i < n_anat; i++)
        jw_str(&j, anat_ids[i]);
    jw_arr_end(&j);
    if (net.failed || anat.failed) {
        err_set(e, FV_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    char step[32], epoch[32], threads[32];
    snprintf(step, sizeof step, "%lld", (long long)s->step);
    snprintf(epoch, sizeof epoch, "%lld", (long long)s->epoch);
    snprintf(threads, sizeof threads, "%d", m->threads);
    if (st_writer_meta(&w, "fvlm.format", CKPT_FORMAT, e) ||
        st_writer_meta(&w, "fvlm.version", FVLM_VERSION, e) ||
        st_writer_meta(&w, "fvlm.net", net.data, e) ||
        st_writer_meta(&w, "fvlm.vocab", vocab.data, e) ||
        st_writer_meta(&w, "fvlm.anatomies", anat.data, e) ||
        st_writer_meta(&w, "fvlm.step", step, e) || st_writer_meta(&w, "fvlm.epoch", epoch, e) ||
        st_writer_meta(&w, "fvlm.loss", loss_mode_name(n->cfg.loss), e) ||
        st_writer_meta(&w, "fvlm.preset", m->preset ? m->preset : "", e) ||
        st_writer_meta(&w, "fvlm.config", m->config_ini ? m->config_ini : "", e) ||
        st_writer_meta(&w, "fvlm.corpus", m->corpus_sig ? m->corpus_sig : "", e) ||
        st_writer_meta(&w, "fvlm.threads", threads, e) ||
        st_writer_meta(&w, "fvlm.deterministic", m->deterministic ? "1" : "0", e))
        goto out;
    /* only a data-parallel run says so: a single process's checkpoint keeps
     * the bytes it always had */
    char ranks[32];
    snprintf(ranks, sizeof ranks, "%d", m->ranks);
    if (m->ranks > 1 && st_writer_meta(&w, "fvlm.ranks", ranks, e))
        goto out;
    rc = st_write(&w, path, e);
out:
    st_writer_free(&w);
    free(names);
    buf_free(&net);
    buf_free(&vocab);
    buf_free(&anat);
    return rc;
}

int ckpt_config(const StFile *f, NetCfg *cfg, FvErr *e)
{
    const char *fmt = st_meta(f, "fvlm.format");
    if (!fmt || strcmp(fmt, CKPT_FORMAT) != 0)
        return err_set(e, FV_EFORMAT, "%s: not an fvlm model (fvlm.format is '%s', expected '%s')",
                       f->path, fmt ? fmt : "(none)", CKPT_FORMAT);
    const char *js = st_meta(f, "fvlm.net");
    if (!js)
        return err_set(e, FV_EFORMAT, "%s: metadata lacks fvlm.net", f->path);
    JsonValue *v;
    if (json_parse(js, strlen(js), &v, e))
        return err_prefix(e, "%s: fvlm.net", f->path);
    int rc = netcfg_from_json(cfg, v, e);
    json_free(&v);
    return rc ? err_prefix(e, "%s", f->path) : 0;
}

int ckpt_load_params(const StFile *f, Net *n, int want_opt, FvErr *e)
{
    for (int i = 0; i < n->n_params; i++) {
        const ParamInfo *p = &n->info[i];
        for (int part = 0; part < (want_opt && n->adam_m ? 3 : 1); part++) {
            char name[80];
            snprintf(name, sizeof name, "%s%s", part == 0 ? "" : part == 1 ? "opt.m." : "opt.v.",
                     p->name);
            const StTensor *t;
            if (st_get_checked(f, name, ST_F32, p->ndim, &t, e))
                return -1;
            for (int d = 0; d < p->ndim; d++)
                if (t->shape[d] != p->shape[d])
                    return err_set(e, FV_EFORMAT, "%s: tensor %s has dimension %d = %lld, the "
                                   "config gives %lld", f->path, name, d,
                                   (long long)t->shape[d], (long long)p->shape[d]);
            float *dst = part == 0 ? n->params : part == 1 ? n->adam_m : n->adam_v;
            memcpy(dst + p->off, t->data, p->numel * sizeof(float));
        }
    }
    return 0;
}

int ckpt_anatomies(const StFile *f, char ***ids, int *n, FvErr *e)
{
    *ids = NULL;
    *n = 0;
    const char *js = st_meta(f, "fvlm.anatomies");
    if (!js)
        return err_set(e, FV_EFORMAT, "%s: metadata lacks fvlm.anatomies", f->path);
    JsonValue *v;
    if (json_parse(js, strlen(js), &v, e))
        return err_prefix(e, "%s: fvlm.anatomies", f->path);
    int rc = -1;
    if (v->type != JSON_ARR || v->len > 4096) {
        err_set(e, FV_EFORMAT, "%s: fvlm.anatomies is not an array of ids", f->path);
        goto out;
    }
    char **a = calloc(v->len ? v->len : 1, sizeof *a);
    if (!a) {
        err_set(e, FV_ENOMEM, "%s: out of memory", f->path);
        goto out;
    }
    for (size_t i = 0; i < v->len; i++)
        if (v->items[i].type != JSON_STR || !(a[i] = strdup(v->items[i].str))) {
            for (size_t k = 0; k < i; k++)
                free(a[k]);
            free(a);
            err_set(e, FV_EFORMAT, "%s: fvlm.anatomies item %zu is not a string", f->path, i);
            goto out;
        }
    *ids = a;
    *n = (int)v->len;
    rc = 0;
out:
    json_free(&v);
    return rc;
}

int ckpt_meta_int(const StFile *f, const char *key, int64_t *v, FvErr *e)
{
    const char *s = st_meta(f, key);
    char *end;
    if (!s || !*s)
        return err_set(e, FV_EFORMAT, "%s: metadata lacks %s", f->path, key);
    long long x = strtoll(s, &end, 10);
    if (*end || x < 0)
        return err_set(e, FV_EFORMAT, "%s: metadata %s = '%.40s' is not a count", f->path, key, s);
    *v = x;
    return 0;
}

int ckpt_load_state(const StFile *f, Rng *r, int *order, int n_order, FvErr *e)
{
    const StTensor *t;
    if (st_get_checked(f, "train.rng", ST_U64, 1, &t, e))
        return err_prefix(e, "no training state (written without it?)");
    if (t->shape[0] != 4)
        return err_set(e, FV_EFORMAT, "%s: train.rng has %lld words, expected 4", f->path,
                       (long long)t->shape[0]);
    memcpy(r->s, t->data, sizeof r->s);
    /* xoshiro never leaves the all-zero state: it would draw zeros forever */
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
        return err_set(e, FV_EFORMAT, "%s: train.rng is all zeros", f->path);
    if (st_get_checked(f, "train.order", ST_I32, 1, &t, e))
        return -1;
    if (t->shape[0] != n_order)
        return err_set(e, FV_EFORMAT, "%s: train.order lists %lld studies, the corpus has %d "
                       "training studies", f->path, (long long)t->shape[0], n_order);
    const int32_t *o = t->data;
    for (int i = 0; i < n_order; i++) {
        if (o[i] < 0)
            return err_set(e, FV_EFORMAT, "%s: train.order item %d is negative", f->path, i);
        order[i] = o[i];
    }
    return 0;
}
