#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "config.h"
#include "data.h"
#include "loss_supervised.h"
#include "net.h"
#include "ontology.h"
#include "tokenizer.h"
#include "trainer.h"

struct FvlmModel {
    Net net;
    Tokenizer tok;
    Ontology *onto;
    DataCfg data;
    char **anat_ids;           /* the model's anatomies, cfg.n_anat of them */
    int n_ids;
    int *anat_onto;            /* model anatomy -> ontology index */
    /* inference buffers, one study or one text at a time */
    float *img;                /* (Z, Y, X) */
    float *tokbias;            /* (A, T) */
    uint8_t *inside;           /* (A) */
    float *hist;               /* (A + 1, NET_HIST_DIM) */
    int *rb, *ra, *ids;        /* (A), (A), (max_len) */
    float *feat;               /* (A, D) */
};

void model_free(FvlmModel **pm)
{
    if (!pm || !*pm)
        return;
    FvlmModel *m = *pm;
    net_free(&m->net);
    tok_free(&m->tok);
    onto_free(&m->onto);
    for (int i = 0; i < m->n_ids; i++)
        free(m->anat_ids[i]);
    free(m->anat_ids);
    free(m->anat_onto);
    free(m->img);
    free(m->tokbias);
    free(m->inside);
    free(m->hist);
    free(m->rb);
    free(m->feat);
    free(m);
    *pm = NULL;
}

int model_load(FvlmModel **out, const char *path, FvErr *e)
{
    *out = NULL;
    FvlmModel *m = calloc(1, sizeof *m);
    if (!m)
        return err_set(e, FV_ENOMEM, "%s: out of memory", path);
    StFile *f = NULL;
    Config cfg;
    config_init(&cfg);
    NetCfg nc;
    if (st_open(&f, path, e) || st_verify(f, e) || ckpt_config(f, &nc, e) ||
        ckpt_anatomies(f, &m->anat_ids, &m->n_ids, e) || onto_load(&m->onto, e))
        goto fail;
    const char *vocab = st_meta(f, "fvlm.vocab"), *ini = st_meta(f, "fvlm.config");
    if (!vocab || !ini) {
        err_set(e, FV_EFORMAT, "%s: metadata lacks fvlm.vocab or fvlm.config", path);
        goto fail;
    }
    if (tok_from_json(&m->tok, vocab, e))
        goto fail;
    if (m->tok.n != nc.vocab) {
        err_set(e, FV_EFORMAT, "%s: the vocabulary has %d tokens, the network %d", path, m->tok.n,
                nc.vocab);
        goto fail;
    }
    TrainSettings s;
    if (config_parse(&cfg, ini, path, e) || train_settings(&cfg, &s, e)) {
        err_prefix(e, "%s: fvlm.config", path);
        goto fail;
    }
    m->data = s.data;
    if (nc.loss == LOSS_SUPERVISED && nc.n_tasks != m->onto->n_find) {
        err_set(e, FV_EFORMAT, "%s: a supervised model of %d tasks; this build's findings.tsv "
                "has %d", path, nc.n_tasks, m->onto->n_find);
        goto fail;
    }
    if (nc.loss != LOSS_GLOBAL && m->n_ids != nc.n_anat) {
        err_set(e, FV_EFORMAT, "%s: %d anatomies listed, the network has %d", path, m->n_ids,
                nc.n_anat);
        goto fail;
    }
    m->anat_onto = malloc((size_t)(m->n_ids ? m->n_ids : 1) * sizeof *m->anat_onto);
    if (!m->anat_onto) {
        err_set(e, FV_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (int i = 0; i < m->n_ids; i++)
        if ((m->anat_onto[i] = onto_anatomy(m->onto, m->anat_ids[i])) < 0) {
            err_set(e, FV_EFORMAT, "%s: anatomy '%s' is not in this build's ontology", path,
                    m->anat_ids[i]);
            goto fail;
        }
    int A = m->n_ids ? m->n_ids : 1;
    NetCap cap = {.studies = 1, .rows = A, .rows_per_study = A, .texts = 1,
                  .text_tokens = nc.t_max_len, .dis_words = 1};
    if (net_alloc(&m->net, &nc, &cap, 0, e) || ckpt_load_params(f, &m->net, 0, e))
        goto fail;
    size_t T = (size_t)netcfg_tokens(&nc);
    m->img = malloc((size_t)nc.in_c * nc.in_z * nc.in_y * nc.in_x * sizeof *m->img);
    m->tokbias = malloc((size_t)A * T * sizeof *m->tokbias);
    m->inside = malloc((size_t)A);
    m->hist = malloc(((size_t)A + 1) * NET_HIST_DIM * sizeof *m->hist);
    m->rb = malloc((2 * (size_t)A + (size_t)nc.t_max_len) * sizeof *m->rb);
    m->feat = malloc((size_t)A * nc.embed * sizeof *m->feat);
    if (!m->img || !m->tokbias || !m->inside || !m->hist || !m->rb || !m->feat) {
        err_set(e, FV_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    m->ra = m->rb + A;
    m->ids = m->ra + A;
    st_close(&f);
    config_free(&cfg);
    *out = m;
    return 0;
fail:
    st_close(&f);
    config_free(&cfg);
    model_free(&m);
    return -1;
}

int model_embed_dim(const FvlmModel *m) { return m->net.cfg.embed; }

float model_temperature(const FvlmModel *m)
{
    float t = m->net.w.temp[0];
    return t < 0.001f ? 0.001f : t > 0.5f ? 0.5f : t;
}

const char *model_loss_mode(const FvlmModel *m) { return loss_mode_name(m->net.cfg.loss); }

int model_is_supervised(const FvlmModel *m) { return m->net.cfg.loss == LOSS_SUPERVISED; }

double model_task_score(const FvlmModel *m, int task, const float *feat)
{
    const NetCfg *c = &m->net.cfg;
    if (c->loss != LOSS_SUPERVISED || task < 0 || task >= c->n_tasks)
        return NAN;
    const float *w = m->net.w.sup_w + (size_t)task * c->embed;
    double u = 0.0;
    for (int d = 0; d < c->embed; d++)
        u += (double)w[d] * feat[d];
    /* as training: the temperature is read raw (net.c), it is kept in range by the optimiser */
    return sup_sigmoid(u / m->net.w.temp[0] + m->net.w.sup_b[task]);
}

int model_n_anat(const FvlmModel *m) { return m->onto->n_anat; }

int model_encode_study(FvlmModel *m, Db *db, int64_t study_id, float *out, unsigned char *valid,
                       FvErr *e)
{
    const NetCfg *nc = &m->net.cfg;
    int D = nc->embed, T = netcfg_tokens(nc);
    memset(out, 0, (size_t)m->onto->n_anat * D * sizeof *out);
    memset(valid, 0, (size_t)m->onto->n_anat);
    TrainSet c;
    if (trainset_load(&c, db, m->onto, nc->loss, m->data.scan_whole, m->anat_ids, m->n_ids,
                      study_id, NULL, e))
        return -1;
    Crop crop;
    data_crop(&c.st[0], &m->data, NULL, 0, &crop);
    data_render(&c, 0, &m->data, &crop, m->img, m->tokbias, m->inside);
    data_hist(&c, 0, &m->data, &crop, m->hist);
    int hist_n = c.n_anat + 1;
    /* the anatomies whose tokens exist in this study */
    int nr = 0;
    for (int a = 0; a < c.n_anat; a++) {
        const float *tb = m->tokbias + (size_t)a * T;
        int any = 0;
        for (int t = 0; t < T && !any; t++)
            any = tb[t] > -INFINITY;
        if (any) {
            m->rb[nr] = 0;
            m->ra[nr] = a;
            nr++;
        }
    }
    trainset_free(&c);
    if (!nr)
        return 0;
    NetBatch b = {.nb = 1, .img = m->img, .tokbias = m->tokbias, .hist = m->hist,
                  .hist_n = hist_n, .rb = m->rb, .ra = m->ra};
    /* global: one whole-CT feature, given to every anatomy present */
    b.nr = nc->loss == LOSS_GLOBAL ? 1 : nr;
    net_encode(&m->net, &b, m->feat, NULL);
    for (int r = 0; r < nr; r++) {
        int a = m->anat_onto[m->ra[r]];
        memcpy(out + (size_t)a * D, m->feat + (size_t)(nc->loss == LOSS_GLOBAL ? 0 : r) * D,
               (size_t)D * sizeof *out);
        valid[a] = 1;
    }
    return 0;
}

int model_encode_text(FvlmModel *m, const char *text, float *out, FvErr *e)
{
    if (!text)
        return err_set(e, FV_EUSAGE, "model_encode_text: no text");
    int toff[2] = {0, tok_encode(&m->tok, text, m->ids, m->net.cfg.t_max_len)};
    NetBatch b = {.nb = 1, .nt = 1, .toff = toff, .tids = m->ids};
    net_encode(&m->net, &b, NULL, out);
    return 0;
}
