#include "trainer.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "db.h"
#include "dpstep.h"
#include "fsutil.h"
#include "json.h"
#include "log.h"
#include "ontology.h"
#include "pipeline.h"
#include "run.h"
#include "sha256.h"
#include "task_labels.h"

/* ---------------------------------------------------------------- settings */

/* Every key must be present: a preset sets them all, so a missing one is a
 * typo in a user's file or a preset out of date. */
static int need(Config *c, const char *key, FvErr *e)
{
    if (!config_str(c, key, NULL))
        return err_set(e, FV_EUSAGE, "config: '%s' is not set (every preset sets it)", key);
    return 0;
}

static int get_int(Config *c, const char *key, int64_t lo, int64_t hi, int64_t *out, FvErr *e)
{
    if (need(c, key, e) || config_int(c, key, 0, out, e))
        return -1;
    if (*out < lo || *out > hi)
        return err_set(e, FV_EUSAGE, "config %s = %lld: out of %lld..%lld", key, (long long)*out,
                       (long long)lo, (long long)hi);
    return 0;
}

static int get_i(Config *c, const char *key, int lo, int hi, int *out, FvErr *e)
{
    int64_t v;
    if (get_int(c, key, lo, hi, &v, e))
        return -1;
    *out = (int)v;
    return 0;
}

static int get_d(Config *c, const char *key, double lo, double hi, double *out, FvErr *e)
{
    if (need(c, key, e) || config_double(c, key, 0, out, e))
        return -1;
    if (!(*out >= lo && *out <= hi))
        return err_set(e, FV_EUSAGE, "config %s = %g: out of [%g, %g]", key, *out, lo, hi);
    return 0;
}

static int get_3i(Config *c, const char *key, int *a, int *b, int *d, FvErr *e)
{
    double v[3];
    if (need(c, key, e) || config_doubles(c, key, NULL, 3, v, e))
        return -1;
    for (int i = 0; i < 3; i++)
        if (v[i] != floor(v[i]) || v[i] < 1 || v[i] > 4096)
            return err_set(e, FV_EUSAGE, "config %s: '%g' is not a size in 1..4096", key, v[i]);
    *a = (int)v[0];
    *b = (int)v[1];
    *d = (int)v[2];
    return 0;
}

int train_settings(Config *c, TrainSettings *s, FvErr *e)
{
    memset(s, 0, sizeof *s);
    NetCfg *n = &s->net;
    if (get_3i(c, "model.input", &n->in_z, &n->in_y, &n->in_x, e) ||
        get_3i(c, "model.patch", &n->pz, &n->py, &n->px, e) ||
        get_i(c, "model.width", 1, 8192, &n->width, e) ||
        get_i(c, "model.depth", 1, NET_MAX_DEPTH, &n->depth, e) ||
        get_i(c, "model.heads", 1, 1024, &n->heads, e) ||
        get_i(c, "model.mlp", 1, 65536, &n->mlp, e) ||
        get_i(c, "model.pool_heads", 1, 1024, &n->pool_heads, e) ||
        get_i(c, "model.embed", 1, 8192, &n->embed, e) ||
        get_i(c, "model.text_width", 1, 8192, &n->t_width, e) ||
        get_i(c, "model.text_depth", 1, NET_MAX_DEPTH, &n->t_depth, e) ||
        get_i(c, "model.text_heads", 1, 1024, &n->t_heads, e) ||
        get_i(c, "model.text_mlp", 1, 65536, &n->t_mlp, e) ||
        get_i(c, "model.text_max_len", 2, 4096, &n->t_max_len, e) || need(c, "model.keep", e))
        return -1;
    double t;
    if (get_d(c, "model.temperature", 0.001, 0.5, &t, e) || need(c, "model.pool_mask", e))
        return -1;
    const char *pm = config_str(c, "model.pool_mask", "");
    if (strcmp(pm, "coverage") && strcmp(pm, "binary"))
        return err_set(e, FV_EUSAGE, "config model.pool_mask = '%s': expected coverage or binary",
                       pm);
    s->data.coverage = strcmp(pm, "coverage") == 0;
    const char *tp = config_str(c, "model.text_pool", NULL);
    if (!tp || (strcmp(tp, "cls") && strcmp(tp, "mean")))
        return err_set(e, FV_EUSAGE, "config model.text_pool = '%s': expected cls or mean",
                       tp ? tp : "");
    n->t_mean = strcmp(tp, "mean") == 0;
    const char *ah = config_str(c, "model.anat_hist", "off");
    if (strcmp(ah, "on") && strcmp(ah, "off"))
        return err_set(e, FV_EUSAGE, "config model.anat_hist = '%s': expected on or off", ah);
    n->hist = strcmp(ah, "on") == 0;
    n->temp_init = (float)t;
    /* model.keep: a comma-separated list of block numbers */
    const char *k = config_str(c, "model.keep", "");
    n->n_keep = 0;
    for (const char *p = k; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || n->n_keep == NET_MAX_KEEP)
            return err_set(e, FV_EUSAGE, "config model.keep = '%s': expected up to %d block "
                           "numbers", k, NET_MAX_KEEP);
        n->keep[n->n_keep++] = (int)v;
        p = end;
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
    }
    const char *loss = config_str(c, "train.loss", NULL);
    if (!loss || loss_mode_parse(loss, &n->loss))
        return err_set(e, FV_EUSAGE, "config train.loss = '%s': expected global, fine, fine-fn "
                       "fine-fn-disease or supervised", loss ? loss : "");
    /* checked in full once the vocabulary, anatomies and tasks are known */
    n->vocab = 1 << 10;
    n->n_anat = 1;
    n->n_tasks = n->loss == LOSS_SUPERVISED ? 1 : 0;
    n->in_c = 1; /* data.hu_window below gives the channels */
    if (netcfg_check(n, e))
        return -1;
    if (get_i(c, "tokenizer.vocab_size", 76, 1 << 22, &s->tok.vocab_size, e) ||
        get_i(c, "tokenizer.min_word_count", 1, 1 << 30, &s->tok.min_word_count, e) ||
        get_i(c, "tokenizer.max_piece_len", 1, 32, &s->tok.max_piece_len, e))
        return -1;
    DataCfg *d = &s->data;
    /* data.hu_window: low, high of each window, one input channel each */
    double win[2 * NET_MAX_CHANNELS];
    if (need(c, "data.hu_window", e))
        return -1;
    int nv = 1;
    for (const char *p = config_str(c, "data.hu_window", ""); *p; p++)
        nv += *p == ',';
    if (nv % 2 || nv > 2 * NET_MAX_CHANNELS)
        return err_set(e, FV_EUSAGE, "config data.hu_window = '%s': expected low, high pairs "
                       "(1 to %d windows)", config_str(c, "data.hu_window", ""), NET_MAX_CHANNELS);
    if (config_doubles(c, "data.hu_window", NULL, nv, win, e) || need(c, "data.margin_mm", e) ||
        config_doubles(c, "data.margin_mm", NULL, 3, d->margin_mm, e))
        return -1;
    d->n_win = nv / 2;
    n->in_c = d->n_win;
    for (int w = 0; w < d->n_win; w++) {
        if (!(win[2 * w] < win[2 * w + 1]) || win[2 * w] < -32768 || win[2 * w + 1] > 32767)
            return err_set(e, FV_EUSAGE, "config data.hu_window: window %d (%g, %g) needs "
                           "low < high in HU", w + 1, win[2 * w], win[2 * w + 1]);
        d->hu_lo[w] = win[2 * w];
        d->hu_hi[w] = win[2 * w + 1];
    }
    for (int i = 0; i < 3; i++)
        if (!(d->margin_mm[i] >= 0 && d->margin_mm[i] <= 1000))
            return err_set(e, FV_EUSAGE, "config data.margin_mm: %g mm out of 0..1000",
                           d->margin_mm[i]);
    if (need(c, "data.whole", e))
        return -1;
    const char *wr = config_str(c, "data.whole", "");
    if (strcmp(wr, "crop") && strcmp(wr, "scan"))
        return err_set(e, FV_EUSAGE, "config data.whole = '%s': expected crop or scan", wr);
    d->scan_whole = strcmp(wr, "scan") == 0;
    if (get_d(c, "aug.flip_p", 0, 1, &d->flip_p, e) || get_d(c, "aug.scale", 0, 0.9, &d->aug_scale, e) ||
        get_d(c, "aug.shift", 0, 0.9, &d->aug_shift, e))
        return -1;
    d->in_z = n->in_z;
    d->in_y = n->in_y;
    d->in_x = n->in_x;
    d->pz = n->pz;
    d->py = n->py;
    d->px = n->px;
    d->text_max_len = n->t_max_len;
    OptCfg *o = &s->opt;
    int64_t warm;
    if (get_i(c, "train.batch", 2, 4096, &s->batch, e) ||
        get_i(c, "train.epochs", 1, 1000000, &s->epochs, e) ||
        get_int(c, "train.steps", 0, INT64_C(1) << 40, &s->steps, e) ||
        get_d(c, "train.lr", 0, 10, &o->lr, e) || get_d(c, "train.lr_min", 0, 10, &o->lr_min, e) ||
        get_int(c, "train.warmup_steps", 0, INT64_C(1) << 40, &warm, e) ||
        get_d(c, "train.weight_decay", 0, 10, &o->weight_decay, e) ||
        get_d(c, "train.beta1", 0, 0.999999, &o->beta1, e) ||
        get_d(c, "train.beta2", 0, 0.999999, &o->beta2, e) ||
        get_d(c, "train.eps", 1e-30, 1, &o->eps, e) || get_d(c, "train.clip", 0, 1e9, &o->clip, e) ||
        get_int(c, "train.seed", 0, INT64_MAX, &s->seed, e) ||
        get_i(c, "train.threads", 0, 1024, &s->threads, e) ||
        get_d(c, "train.val_fraction", 0, 0.9, &s->val_fraction, e) ||
        get_i(c, "train.save_every", 0, 1 << 30, &s->save_every, e) ||
        get_i(c, "train.log_every", 1, 1 << 30, &s->log_every, e))
        return -1;
    o->warmup = warm;
    int64_t v;
    if (config_int(c, "train.loaders", 1, &v, e))
        return -1;
    if (v < 0 || v > 64)
        return err_set(e, FV_EUSAGE, "config train.loaders = %lld: out of 0..64", (long long)v);
    s->loaders = (int)v;
    if (config_int(c, "train.prefetch", 2, &v, e))
        return -1;
    if (v < 1 || v > 64)
        return err_set(e, FV_EUSAGE, "config train.prefetch = %lld: out of 1..64", (long long)v);
    s->prefetch = (int)v;
    return 0;
}

int train_settings_ini(const TrainSettings *s, Buf *b)
{
    const NetCfg *n = &s->net;
    const DataCfg *d = &s->data;
    const OptCfg *o = &s->opt;
    buf_printf(b, "[model]\ninput = %d, %d, %d\npatch = %d, %d, %d\nwidth = %d\ndepth = %d\n"
               "heads = %d\nmlp = %d\nkeep =", n->in_z, n->in_y, n->in_x, n->pz, n->py, n->px,
               n->width, n->depth, n->heads, n->mlp);
    for (int i = 0; i < n->n_keep; i++)
        buf_printf(b, "%s %d", i ? "," : "", n->keep[i]);
    buf_printf(b, "\npool_heads = %d\npool_mask = %s\nembed = %d\ntext_width = %d\ntext_depth = %d\n"
               "text_heads = %d\ntext_mlp = %d\ntext_max_len = %d\ntext_pool = %s\nanat_hist = %s\n"
               "temperature = %.17g\n",
               n->pool_heads, d->coverage ? "coverage" : "binary", n->embed, n->t_width, n->t_depth, n->t_heads, n->t_mlp,
               n->t_max_len, n->t_mean ? "mean" : "cls", n->hist ? "on" : "off",
               (double)n->temp_init);
    buf_printf(b, "[tokenizer]\nvocab_size = %d\nmin_word_count = %d\nmax_piece_len = %d\n",
               s->tok.vocab_size, s->tok.min_word_count, s->tok.max_piece_len);
    buf_printf(b, "[data]\nhu_window =");
    for (int w = 0; w < d->n_win; w++)
        buf_printf(b, "%s %.17g, %.17g", w ? "," : "", d->hu_lo[w], d->hu_hi[w]);
    buf_printf(b, "\nmargin_mm = %.17g, %.17g, %.17g\nwhole = %s\n", d->margin_mm[0],
               d->margin_mm[1], d->margin_mm[2], d->scan_whole ? "scan" : "crop");
    buf_printf(b, "[aug]\nflip_p = %.17g\nscale = %.17g\nshift = %.17g\n", d->flip_p,
               d->aug_scale, d->aug_shift);
    buf_printf(b, "[train]\nloss = %s\nbatch = %d\nepochs = %d\nsteps = %lld\nlr = %.17g\n"
               "lr_min = %.17g\nwarmup_steps = %lld\nweight_decay = %.17g\nbeta1 = %.17g\n"
               "beta2 = %.17g\neps = %.17g\nclip = %.17g\nseed = %lld\nthreads = %d\n"
               "val_fraction = %.17g\nsave_every = %d\nlog_every = %d\n",
               loss_mode_name(n->loss), s->batch, s->epochs, (long long)s->steps, o->lr,
               o->lr_min, (long long)o->warmup, o->weight_decay, o->beta1, o->beta2, o->eps,
               o->clip, (long long)s->seed, s->threads, s->val_fraction, s->save_every,
               s->log_every);
    return b->failed ? -1 : 0;
}

/* ------------------------------------------------------------------ metrics */

typedef struct Metric {
    int64_t step, epoch;
    const char *name;
    double value;
} Metric;

enum { METRIC_CAP = 4096 };

typedef struct Metrics {
    Metric m[METRIC_CAP];
    int n;
} Metrics;

static int metrics_flush(Metrics *m, Db *db, int64_t run_id, FvErr *e)
{
    if (!m->n)
        return 0;
    if (db_begin(db, e))
        return -1;
    sqlite3_stmt *st;
    if (db_prepare(db, &st,
                   "INSERT OR REPLACE INTO metrics (run_id, step, epoch, name, value)"
                   " VALUES (?, ?, ?, ?, ?)", e)) {
        db_rollback(db);
        return -1;
    }
    for (int i = 0; i < m->n; i++) {
        if (db_bindf(db, st, e, "iiisd", run_id, m->m[i].step, m->m[i].epoch, m->m[i].name,
                     m->m[i].value) ||
            db_step(db, st, e) < 0) {
            sqlite3_finalize(st);
            db_rollback(db);
            return -1;
        }
    }
    sqlite3_finalize(st);
    m->n = 0;
    return db_commit(db, e);
}

static int metric_add(Metrics *m, Db *db, int64_t run_id, int64_t step, int64_t epoch,
                      const char *name, double value, FvErr *e)
{
    if (m->n == METRIC_CAP && metrics_flush(m, db, run_id, e))
        return -1;
    m->m[m->n++] = (Metric){step, epoch, name, isfinite(value) ? value : 0.0};
    return 0;
}

/* ------------------------------------------------------------------ helpers */

/* Studies of a split that can give a loss term: fine modes, a whole
 * sample of a model anatomy; global, a report. */
static int list_split(const TrainSet *c, int split, int *out)
{
    int n = 0;
    for (int i = 0; i < c->n_st; i++) {
        const TrainStudy *s = &c->st[i];
        if (s->split != split)
            continue;
        int ok = c->mode == LOSS_GLOBAL ? s->report >= 0 : 0;
        for (int j = s->s0; j < s->s0 + s->ns && !ok; j++)
            ok = c->sm[j].anat >= 0 && c->sm[j].whole;
        if (ok)
            out[n++] = i;
    }
    return n;
}

static int same_net(const NetCfg *a, const NetCfg *b, FvErr *e)
{
    NetCfg x = *a, y = *b;
    x.vocab = y.vocab = 0;
    x.n_anat = y.n_anat = 0;
    x.temp_init = y.temp_init = 0;
    if (memcmp(&x, &y, sizeof x) != 0)
        return err_set(e, FV_EUSAGE, "the model configuration differs from the checkpoint's; "
                       "resume with the checkpoint's settings (drop the changed --set/--config)");
    return 0;
}

/* ---------------------------------------------------------------- the run */

/* Everything one training run holds, from set-up to the record. */
typedef struct Trainer {
    const TrainArgs *a;
    TrainResult *res;
    TrainSettings s;
    int threads;               /* OpenBLAS threads in use */
    Ontology *onto;
    Db *db;
    StFile *ck;                /* the checkpoint being resumed, open during set-up */
    Run run;
    int run_open;
    TrainSet set;
    Tokenizer tok;
    Net net;
    Pipe *pipe;
    Dist *dist;                /* the run's ranks (a one-rank Dist without MPI) */
    Dist solo;
    int writer;                /* rank 0: writes the run, metrics, checkpoints */
    DpStep *dp;                /* ranks > 1 */
    Metrics *metrics;
    int *train_idx, *valid_idx; /* studies of each split that can give a loss term */
    int n_train, n_valid;
    int *order;                /* (n_train) the epoch's order of train_idx, as of the last
                                * step taken */
    char **ck_anat;            /* the checkpoint's anatomies (n_ck_anat) */
    int n_ck_anat;
    const char **anat_ids;     /* (set.n_anat) the model's anatomies, for checkpoints */
    Buf ini, cfg_json;
    char sig[65];              /* trainset_signature */
    CkptMeta meta;
    Rng drng;                  /* data order and augmentation, as of the last step taken */
    int64_t step, spe, total;  /* steps done, per epoch, in all */
    double epoch_loss;         /* sum over the epoch's steps so far */
    int epoch_n;
    int saved;                 /* a checkpoint holds the current step */
    /* the checkpoint being written on a thread of its own (rank 0) */
    struct {
        pthread_t th;
        int running;
        float *mem;            /* (3, n_floats) parameters, AdamW m, v at its step */
        int *order;            /* (n_train) */
        Rng rng;
        Net snap;              /* views of mem, the table and config of net */
        CkptState st;
        int rc;
        FvErr err;
        double seconds;
    } ck_async;
} Trainer;

/* Opens the corpus and the run record, builds the vocabulary and the
 * network, and restores a resumed run's state. */
static int trainer_setup(Trainer *t, Config *cfg, FvErr *e)
{
    const TrainArgs *a = t->a;
    TrainSettings *s = &t->s;
    if (train_settings(cfg, s, e))
        return -1;
    /* Other stages' sections may share the file; a key no stage knows is
     * an error (lib/config.c holds the one table). */
    if (config_check(cfg, e))
        return -1;
    if (a->deterministic && s->threads == 0)
        return err_set(e, FV_EUSAGE, "--deterministic needs an explicit thread count "
                       "(train.threads >= 1): results may depend on it");
    /* a missing output folder fails now, not at the first checkpoint */
    char outdir[4096];
    fs_dirname(a->out_path, outdir, sizeof outdir);
    if (!fs_is_dir(outdir))
        return err_set(e, FV_EIO, "--out %s: folder %s does not exist", a->out_path, outdir);
    t->threads = s->threads ? s->threads : openblas_get_num_procs();
    openblas_set_num_threads(t->threads);

    t->solo = (Dist){.rank = 0, .size = 1};
    t->dist = a->dist ? a->dist : &t->solo;
    t->writer = t->dist->rank == 0;
    if (onto_load(&t->onto, e) || db_open(&t->db, a->db_path, DB_MUST_EXIST, e))
        return -1;
    config_to_json(cfg, &t->cfg_json);
    if (t->writer) {
        if (run_begin(&t->run, t->db, "train", a->argc, a->argv, t->cfg_json.data, s->seed, e))
            return -1;
        t->run_open = 1;
    }
    if (a->resume) {
        NetCfg ckc;
        if (st_open(&t->ck, a->out_path, e) || st_verify(t->ck, e) || ckpt_config(t->ck, &ckc, e) ||
            same_net(&s->net, &ckc, e) || ckpt_anatomies(t->ck, &t->ck_anat, &t->n_ck_anat, e))
            return -1;
    }
    log_info("loading the corpus %s", a->db_path);
    TrainSet *c = &t->set;
    if (trainset_load(c, t->db, t->onto, s->net.loss, s->data.scan_whole, t->ck_anat,
                      t->n_ck_anat, -1, t->writer ? &t->run : NULL, e))
        return -1;
    if (s->net.loss == LOSS_SUPERVISED && task_labels_load(c, t->db, e))
        return -1;
    trainset_split_validation(c, s->val_fraction, (uint64_t)s->seed);
    size_t n_st = (size_t)(c->n_st ? c->n_st : 1);
    t->train_idx = malloc(n_st * sizeof *t->train_idx);
    t->valid_idx = malloc(n_st * sizeof *t->valid_idx);
    t->order = malloc(n_st * sizeof *t->order);
    t->metrics = calloc(1, sizeof *t->metrics);
    t->anat_ids = malloc((size_t)(c->n_anat ? c->n_anat : 1) * sizeof *t->anat_ids);
    if (!t->train_idx || !t->valid_idx || !t->order || !t->metrics || !t->anat_ids)
        return err_set(e, FV_ENOMEM, "out of memory");
    for (int m = 0; m < c->n_anat; m++)
        t->anat_ids[m] = t->onto->anat[c->anat_onto[m]].id;
    t->n_train = list_split(c, SPLIT_TRAIN, t->train_idx);
    t->n_valid = list_split(c, SPLIT_VALID, t->valid_idx);
    int no_region = 0;
    for (int i = 0; i < c->n_sm; i++) {
        const TrainSample *x = &c->sm[i];
        no_region += x->anat >= 0 && x->whole &&
                     c->boxes[((size_t)x->study * c->n_anat + x->anat) * 6] < 0;
    }
    if (no_region)
        log_warn("%d whole samples have no region row for their anatomy (table regions); they "
                 "cannot be checked against the crop and are left out", no_region);
    if (t->n_train < 2)
        return err_set(e, FV_ENOTFOUND, "%s: %d training studies with a usable %s; need at "
                       "least 2", a->db_path, t->n_train,
                       s->net.loss == LOSS_GLOBAL ? "report" : "whole sample");
    /* the vocabulary: the checkpoint's, or built from the training texts */
    if (a->resume) {
        const char *v = st_meta(t->ck, "fvlm.vocab");
        if (!v)
            return err_set(e, FV_EFORMAT, "%s: metadata lacks fvlm.vocab", a->out_path);
        if (tok_from_json(&t->tok, v, e))
            return -1;
    } else {
        const char **texts;
        int nt;
        if (trainset_train_texts(c, &texts, &nt))
            return err_set(e, FV_ENOMEM, "out of memory");
        int rc = tok_build(&t->tok, texts, nt, &s->tok, e);
        free(texts);
        if (rc)
            return -1;
    }
    if (trainset_tokenize(c, &t->tok, s->net.t_max_len, e))
        return -1;
    s->net.vocab = t->tok.n;
    s->net.n_anat = c->n_anat;
    s->net.n_tasks = s->net.loss == LOSS_SUPERVISED ? c->n_tasks : 0;
    if (s->net.loss == LOSS_GLOBAL && s->net.n_anat == 0)
        s->net.n_anat = 1; /* no anatomy parameters in global mode; keeps the config valid */
    /* the network holds this rank's share of a batch */
    int ranks = t->dist->size;
    NetCap cap = trainset_capacity(c, (s->batch + ranks - 1) / ranks);
    if (net_alloc(&t->net, &s->net, &cap, 1, e) ||
        (ranks > 1 && dp_alloc(&t->dp, c, &t->net, s->batch, t->dist, e)))
        return -1;
    /* steps: ceil(n / batch) per epoch; a last batch of one study is dropped
     * (it cannot be contrasted) */
    t->spe = (t->n_train + s->batch - 1) / s->batch;
    if (t->n_train % s->batch == 1)
        t->spe--;
    t->total = s->steps > 0 ? s->steps : s->epochs * t->spe;
    s->opt.total = t->total;
    if (s->opt.warmup >= t->total)
        s->opt.warmup = t->total / 10;
    trainset_signature(c, t->sig);
    if (train_settings_ini(s, &t->ini))
        return err_set(e, FV_ENOMEM, "out of memory");
    if (a->resume) {
        int64_t ck_threads = 0, ck_ranks = 1;
        const char *ck_sig = st_meta(t->ck, "fvlm.corpus");
        if (st_meta(t->ck, "fvlm.ranks") && ckpt_meta_int(t->ck, "fvlm.ranks", &ck_ranks, e))
            return -1;
        if (ck_ranks != ranks)
            return err_set(e, FV_EUSAGE, "%s was written by a run of %lld process(es), this run "
                           "has %d: resume with the same count (mpirun -np %lld)", a->out_path,
                           (long long)ck_ranks, ranks, (long long)ck_ranks);
        if (ckpt_load_params(t->ck, &t->net, 1, e) ||
            ckpt_meta_int(t->ck, "fvlm.step", &t->step, e) ||
            ckpt_meta_int(t->ck, "fvlm.threads", &ck_threads, e) ||
            ckpt_load_state(t->ck, &t->drng, t->order, t->n_train, e))
            return -1;
        for (int i = 0; i < t->n_train; i++)
            if (t->order[i] >= c->n_st || c->st[t->order[i]].split != SPLIT_TRAIN)
                return err_set(e, FV_EFORMAT, "%s: train.order item %d is not a training study "
                               "of this corpus", a->out_path, i);
        if (!ck_sig || strcmp(ck_sig, t->sig) != 0) {
            if (a->deterministic)
                return err_set(e, FV_EUSAGE, "%s: the corpus changed since the checkpoint was "
                               "written; a deterministic run cannot resume on other data",
                               a->db_path);
            log_warn("the corpus changed since the checkpoint; the run continues on the new data");
        }
        if (ck_threads != t->threads) {
            if (a->deterministic)
                return err_set(e, FV_EUSAGE, "the checkpoint was written with %lld threads, this "
                               "run has %d: a deterministic run resumes with the same count",
                               (long long)ck_threads, t->threads);
            log_warn("the checkpoint ran with %lld threads, this run has %d: float sums may "
                     "round differently", (long long)ck_threads, t->threads);
        }
        st_close(&t->ck);
        log_info("resuming at step %lld of %lld", (long long)t->step, (long long)t->total);
    } else {
        Rng init;
        rng_seed(&init, (uint64_t)s->seed, 0);
        net_init(&t->net, &init);
        rng_seed(&t->drng, (uint64_t)s->seed, 1);
        memcpy(t->order, t->train_idx, (size_t)t->n_train * sizeof *t->order);
    }
    log_info("%d training studies (%d validation), %d anatomies, vocabulary %d, %zu parameters, "
             "%lld steps of %d studies, %d threads%s", t->n_train, t->n_valid, c->n_anat,
             t->tok.n, t->net.n_floats, (long long)t->total, s->batch, t->threads,
             ranks > 1 ? " in each rank" : "");
    if (ranks > 1)
        log_info("data parallel: %d ranks, each with its share of the %d studies of a batch",
                 ranks, s->batch);
    TrainResult *res = t->res;
    res->n_train = t->n_train;
    res->n_valid = t->n_valid;
    res->n_anat = c->n_anat;
    res->vocab = t->tok.n;
    res->params = t->net.n_floats;
    res->steps = t->total;
    res->run_id = t->run.id;
    t->meta = (CkptMeta){a->preset, t->ini.data, t->sig, t->threads, a->deterministic, ranks};
    PipeCfg pc = {.set = c, .data = &s->data, .net = &s->net, .batch = s->batch,
                  .valid_idx = t->valid_idx, .n_train = t->n_train, .n_valid = t->n_valid,
                  .spe = t->spe, .total = t->total, .loaders = s->loaders,
                  .prefetch = s->prefetch, .rank = t->dist->rank, .ranks = ranks};
    return pipe_start(&t->pipe, &pc, &t->drng, t->order, t->step, e);
}

/* The next job of the pipeline, which must be of this kind. */
static PipeJob *next_job(Trainer *t, int kind, FvErr *e)
{
    PipeJob *j = pipe_next(t->pipe);
    if (!j || j->kind != kind || (kind == PIPE_TRAIN && j->step != t->step)) {
        err_set(e, FV_EINTERNAL, "input pipeline: expected the %s batch of step %lld",
                kind == PIPE_TRAIN ? "training" : "validation", (long long)t->step);
        return NULL;
    }
    return j;
}

/* One training step on the pipeline's next batch: forward, backward,
 * clipping, AdamW; its metrics. */
static int trainer_step(Trainer *t, FvErr *e)
{
    TrainSettings *s = &t->s;
    double t0 = now_seconds();
    PipeJob *j = next_job(t, PIPE_TRAIN, e);
    if (!j)
        return -1;
    int64_t epoch = j->epoch;
    memset(t->net.grads, 0, t->net.n_floats * sizeof(float));
    float loss;
    int ng, pairs;
    if (t->dp) {
        /* the global batch across ranks; the gradients arrive summed */
        if (dp_step(t->dp, &t->net, j, 1, &loss, &ng, &pairs, e)) {
            pipe_release(t->pipe, j);
            return -1;
        }
    } else {
        loss = net_step(&t->net, &j->bb->nb, 1);
        ng = j->bb->nb.ng;
        pairs = j->bb->n_pairs;
    }
    double norm = optim_clip(&t->net, &s->opt);
    double lr = optim_lr(&s->opt, t->step);
    if (ng) {
        optim_adamw(&t->net, &s->opt, lr, t->step + 1);
        optim_clamp_temperature(&t->net);
    }
    /* the state a checkpoint after this step saves */
    t->drng = j->rng;
    memcpy(t->order, j->order, (size_t)t->n_train * sizeof *t->order);
    int nb = j->n;
    double wait = j->wait;
    pipe_release(t->pipe, j);
    double dt = now_seconds() - t0;
    int64_t step = ++t->step;
    t->saved = 0;
    t->epoch_loss += loss;
    t->epoch_n++;
    t->res->loss = loss;
    t->res->wait_s += wait;
    t->res->studies += nb;
    Metrics *m = t->metrics;
    int64_t run = t->run.id;
    if (t->writer && (metric_add(m, t->db, run, step, epoch, "loss", loss, e) ||
        metric_add(m, t->db, run, step, epoch, "lr", lr, e) ||
        metric_add(m, t->db, run, step, epoch, "grad_norm", norm, e) ||
        metric_add(m, t->db, run, step, epoch, "samples_per_s", dt > 0 ? pairs / dt : 0, e) ||
        metric_add(m, t->db, run, step, epoch, "studies_per_s", dt > 0 ? nb / dt : 0, e) ||
        metric_add(m, t->db, run, step, epoch, "data_wait_s", wait, e)))
        return -1;
    if (step % s->log_every == 0 || step == t->total)
        log_info("step %lld/%lld  epoch %lld  loss %.4f  lr %.3g  |g| %.3g  temp %.4f  "
                 "%.0f samples/s  waited %.3f s for data", (long long)step,
                 (long long)t->total, (long long)epoch + 1, loss, lr, norm, t->net.w.temp[0],
                 dt > 0 ? pairs / dt : 0.0, wait);
    return 0;
}

/* The mean loss over the validation studies in batches of train.batch,
 * without augmentation (the pipeline's validation jobs of the epoch): a
 * val_loss metric of the epoch just ended. */
static int trainer_validate(Trainer *t, int64_t epoch, FvErr *e)
{
    double t0 = now_seconds(), sum = 0.0;
    int batches = 0;
    for (int last = t->n_valid == 0; !last;) {
        PipeJob *j = next_job(t, PIPE_VALID, e);
        if (!j)
            return -1;
        last = j->last_valid;
        float loss = 0.0f;
        int ng = j->bb->nb.ng, pairs;
        if (t->dp && dp_step(t->dp, &t->net, j, 0, &loss, &ng, &pairs, e)) {
            pipe_release(t->pipe, j);
            return -1;
        }
        if (!t->dp && ng)
            loss = net_step(&t->net, &j->bb->nb, 0);
        if (ng) {
            sum += loss;
            batches++;
        }
        pipe_release(t->pipe, j);
    }
    double vl = batches ? sum / batches : NAN;
    if (!isnan(vl)) {
        t->res->val_loss = vl;
        if (t->writer &&
            metric_add(t->metrics, t->db, t->run.id, t->step, epoch, "val_loss", vl, e))
            return -1;
    }
    log_info("epoch %lld: train loss %.4f, validation loss %s%.4f", (long long)epoch + 1,
             t->epoch_n ? t->epoch_loss / t->epoch_n : 0.0, isnan(vl) ? "(none) " : "",
             isnan(vl) ? 0.0 : vl);
    if (t->epoch_n)
        t->res->loss = t->epoch_loss / t->epoch_n;
    t->epoch_loss = 0.0;
    t->epoch_n = 0;
    t->res->valid_s += now_seconds() - t0;
    return 0;
}

/* The checkpoint is written by a thread of its own from a copy of the state
 * (parameters, AdamW moments, data RNG and order: a memcpy), so the steps go
 * on while it is serialised and synced; the file appears by rename, whole,
 * as before. One write at a time: the next checkpoint, and the end of the
 * run, wait for it and fail with its error. */
static void *ckpt_thread(void *arg)
{
    Trainer *t = arg;
    double t0 = now_seconds();
    t->ck_async.rc = ckpt_save(t->a->out_path, &t->ck_async.snap, &t->tok, t->anat_ids,
                               t->set.n_anat, &t->ck_async.st, &t->meta, &t->ck_async.err);
    t->ck_async.seconds = now_seconds() - t0;
    return NULL;
}

/* Waits for the checkpoint being written; its error, if it failed. */
static int ckpt_wait(Trainer *t, FvErr *e)
{
    if (!t->ck_async.running)
        return 0;
    pthread_join(t->ck_async.th, NULL);
    t->ck_async.running = 0;
    if (t->ck_async.rc) {
        *e = t->ck_async.err;
        return -1;
    }
    return 0;
}

/* Starts writing the checkpoint of the current step (atomically) and
 * records the metrics gathered so far. */
static int trainer_checkpoint(Trainer *t, FvErr *e)
{
    double t0 = now_seconds();
    if (!t->writer) {
        /* rank 0 writes it; every rank holds the same state */
        t->saved = 1;
        return 0;
    }
    if (ckpt_wait(t, e))
        return -1;
    size_t nf = t->net.n_floats;
    if (!t->ck_async.mem) {
        t->ck_async.mem = malloc(3 * nf * sizeof(float));
        t->ck_async.order = malloc((size_t)t->n_train * sizeof(int));
        if (!t->ck_async.mem || !t->ck_async.order)
            return err_set(e, FV_ENOMEM, "checkpoint: out of memory");
    }
    float *m = t->ck_async.mem;
    memcpy(m, t->net.params, nf * sizeof(float));
    memcpy(m + nf, t->net.adam_m, nf * sizeof(float));
    memcpy(m + 2 * nf, t->net.adam_v, nf * sizeof(float));
    memcpy(t->ck_async.order, t->order, (size_t)t->n_train * sizeof(int));
    t->ck_async.rng = t->drng;
    t->ck_async.snap = t->net;
    t->ck_async.snap.params = m;
    t->ck_async.snap.adam_m = m + nf;
    t->ck_async.snap.adam_v = m + 2 * nf;
    t->ck_async.st = (CkptState){t->step, t->step / t->spe, &t->ck_async.rng, t->ck_async.order,
                                 t->n_train};
    if (pthread_create(&t->ck_async.th, NULL, ckpt_thread, t) != 0)
        return err_set(e, FV_EIO, "checkpoint: cannot start its writer thread");
    t->ck_async.running = 1;
    if (metrics_flush(t->metrics, t->db, t->run.id, e))
        return -1;
    t->saved = 1;
    t->res->ckpt_s += now_seconds() - t0;
    return 0;
}

/* Steps to the end of the epoch (or of the run, or a stop), then its
 * validation; checkpoints every train.save_every steps or at the epoch's
 * end. *stopped: a stop was asked for and the step it ended is saved. */
static int trainer_epoch(Trainer *t, Progress *prog, int *stopped, FvErr *e)
{
    const TrainSettings *s = &t->s;
    *stopped = 0;
    do {
        if (trainer_step(t, e))
            return -1;
        snprintf(prog->label, sizeof prog->label, "train  loss %.4f  lr %.2e", t->res->loss,
                 optim_lr(&s->opt, t->step - 1));
        progress_set(prog, t->step);
        int epoch_end = t->step % t->spe == 0;
        if (epoch_end && trainer_validate(t, t->step / t->spe - 1, e))
            return -1;
        /* every rank stops after the same step */
        *stopped = dist_any(t->dist, t->a->stop && *t->a->stop);
        if ((t->step == t->total || *stopped ||
             (s->save_every > 0 ? t->step % s->save_every == 0 : epoch_end)) &&
            trainer_checkpoint(t, e))
            return -1;
    } while (!*stopped && t->step < t->total && t->step % t->spe != 0);
    return 0;
}

/* The model's row (path, sha256) once its last checkpoint is written. */
static int trainer_record(Trainer *t, FvErr *e)
{
    if (!t->writer)
        return 0;
    char hex[65], now[32];
    if (sha256_file(t->a->out_path, hex, e))
        return -1;
    db_now_iso(now, sizeof now);
    /* The same bytes at the same path are one model: a run killed after it
     * registered its final checkpoint, then run again, finds that row (its
     * id, which evaluations name, stays) and makes it its own. */
    int64_t known;
    int found = 0;
    if (db_query_int(t->db, e, &known, &found,
                     "SELECT id FROM models WHERE path = ? AND sha256 = ? ORDER BY id LIMIT 1",
                     "ss", t->a->out_path, hex))
        return -1;
    if (found) {
        if (db_run(t->db, e, "UPDATE models SET run_id = ?, step = ?, created_at = ? WHERE id = ?",
                   "iisi", t->run.id, t->step, now, known))
            return -1;
        t->res->model_id = known;
        return 0;
    }
    if (db_run(t->db, e, "INSERT INTO models (run_id, path, sha256, preset, loss, step, "
               "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)", "issssis", t->run.id, t->a->out_path,
               hex, t->a->preset ? t->a->preset : "", loss_mode_name(t->s.net.loss), t->step,
               now))
        return -1;
    t->res->model_id = db_last_id(t->db);
    return 0;
}

/* Ends the run record (status from rc and the result) and frees it all. */
static void trainer_finish(Trainer *t, int rc)
{
    TrainResult *res = t->res;
    FvErr ce = {0};
    /* a run that failed early may still have a checkpoint on its way */
    if (ckpt_wait(t, &ce))
        log_error("%s", ce.msg);
    free(t->ck_async.mem);
    free(t->ck_async.order);
    if (t->run_open) {
        Buf counts = {0};
        buf_printf(&counts,
                   "{\"train_studies\": %d, \"valid_studies\": %d, \"samples\": %d, "
                   "\"anatomies\": %d, \"skipped_studies\": %lld, \"steps\": %lld, "
                   "\"vocab\": %d, \"params\": %zu}",
                   res->n_train, res->n_valid, t->set.n_sm, t->set.n_anat,
                   (long long)t->set.n_skipped, (long long)res->step, t->tok.n, t->net.n_floats);
        FvErr fe = {0};
        if (rc == 0 && t->metrics)
            metrics_flush(t->metrics, t->db, t->run.id, &fe);
        run_finish(&t->run, rc == 0 ? (res->stopped ? "interrupted" : "ok") : "failed",
                   counts.data, &fe);
        buf_free(&counts);
    }
    free(t->train_idx);
    free(t->valid_idx);
    free(t->order);
    free(t->metrics);
    free(t->anat_ids);
    for (int i = 0; i < t->n_ck_anat; i++)
        free(t->ck_anat[i]);
    free(t->ck_anat);
    buf_free(&t->ini);
    buf_free(&t->cfg_json);
    pipe_free(&t->pipe);
    dp_free(&t->dp);
    net_free(&t->net);
    tok_free(&t->tok);
    trainset_free(&t->set);
    st_close(&t->ck);
    db_close(&t->db);
    onto_free(&t->onto);
}

int train_run(const TrainArgs *a, Config *cfg, TrainResult *res, FvErr *e)
{
    memset(res, 0, sizeof *res);
    double t_start = now_seconds();
    Trainer t = {.a = a, .res = res};
    int rc = -1, stopped = 0;
    if (trainer_setup(&t, cfg, e))
        goto out;
    double t_loop = now_seconds();
    Progress prog;
    progress_start(&prog, "train", t.total, "steps");
    progress_set(&prog, t.step);
    while (t.step < t.total && !stopped)
        if (trainer_epoch(&t, &prog, &stopped, e))
            goto out;
    progress_end(&prog);
    res->loop_s = now_seconds() - t_loop;
    res->stopped = stopped;
    /* a resumed run that had nothing left to do still leaves a model */
    if ((!t.saved && trainer_checkpoint(&t, e)) || ckpt_wait(&t, e) ||
        metrics_flush(t.metrics, t.db, t.run.id, e) || trainer_record(&t, e))
        goto out;
    res->step = t.step;
    res->seconds = now_seconds() - t_start;
    rc = 0;
out:
    trainer_finish(&t, rc);
    return rc;
}
