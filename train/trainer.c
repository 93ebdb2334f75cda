#include "trainer.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "db.h"
#include "fsutil.h"
#include "json.h"
#include "log.h"
#include "ontology.h"
#include "run.h"
#include "sha256.h"

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
                       "or fine-fn-disease", loss ? loss : "");
    /* checked in full once the vocabulary and anatomies are known */
    n->vocab = 1 << 10;
    n->n_anat = 1;
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

/* Mean loss over the studies idx[0..n) in batches of b, without augmentation. */
static double validate(Net *net, BatchBuf *bb, const TrainSet *c, const DataCfg *d, const int *idx,
                       int n, int b, Rng *unused)
{
    double sum = 0.0;
    int batches = 0;
    for (int i = 0; i < n; i += b) {
        int m = n - i < b ? n - i : b;
        batch_build(bb, c, d, idx + i, m, 0, unused);
        if (!bb->nb.ng)
            continue;
        sum += net_step(net, &bb->nb, 0);
        batches++;
    }
    return batches ? sum / batches : NAN;
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

/* ---------------------------------------------------------------- the loop */

int train_run(const TrainArgs *a, Config *cfg, TrainResult *res, FvErr *e)
{
    memset(res, 0, sizeof *res);
    double t_start = now_seconds();
    TrainSettings s;
    if (train_settings(cfg, &s, e))
        return -1;
    Buf unused = {0};
    config_unused(cfg, NULL, &unused);
    if (unused.len) {
        err_set(e, FV_EUSAGE, "config: unknown key(s): %s", unused.data);
        buf_free(&unused);
        return -1;
    }
    buf_free(&unused);
    if (a->deterministic && s.threads == 0)
        return err_set(e, FV_EUSAGE, "--deterministic needs an explicit thread count "
                       "(train.threads >= 1): results may depend on it");
    /* a missing output folder fails now, not at the first checkpoint */
    char outdir[4096];
    fs_dirname(a->out_path, outdir, sizeof outdir);
    if (!fs_is_dir(outdir))
        return err_set(e, FV_EIO, "--out %s: folder %s does not exist", a->out_path, outdir);
    int threads = s.threads ? s.threads : openblas_get_num_procs();
    openblas_set_num_threads(threads);

    Ontology *onto = NULL;
    Db *db = NULL;
    StFile *ck = NULL;
    TrainSet corpus = {0};
    Tokenizer tok = {0};
    Net net = {0};
    BatchBuf bb = {0};
    Run run = {0};
    Metrics *metrics = NULL;
    int *train_idx = NULL, *valid_idx = NULL, *order = NULL;
    char **ck_anat = NULL;
    int n_ck_anat = 0, rc = -1, run_open = 0;
    Buf ini = {0}, cfg_json = {0};
    const char **texts = NULL;

    if (onto_load(&onto, e) || db_open(&db, a->db_path, DB_MUST_EXIST, e))
        goto out;
    config_to_json(cfg, &cfg_json);
    if (run_begin(&run, db, "train", a->argc, a->argv, cfg_json.data, s.seed, e))
        goto out;
    run_open = 1;
    if (a->resume) {
        NetCfg ckc;
        if (st_open(&ck, a->out_path, e) || ckpt_config(ck, &ckc, e) ||
            same_net(&s.net, &ckc, e) || ckpt_anatomies(ck, &ck_anat, &n_ck_anat, e))
            goto out;
    }
    log_info("loading the corpus %s", a->db_path);
    if (trainset_load(&corpus, db, onto, s.net.loss, s.data.scan_whole, ck_anat, n_ck_anat, -1, &run,
                      e))
        goto out;
    trainset_split_validation(&corpus, s.val_fraction, (uint64_t)s.seed);
    train_idx = malloc((size_t)(corpus.n_st ? corpus.n_st : 1) * sizeof *train_idx);
    valid_idx = malloc((size_t)(corpus.n_st ? corpus.n_st : 1) * sizeof *valid_idx);
    order = malloc((size_t)(corpus.n_st ? corpus.n_st : 1) * sizeof *order);
    metrics = calloc(1, sizeof *metrics);
    if (!train_idx || !valid_idx || !order || !metrics) {
        err_set(e, FV_ENOMEM, "out of memory");
        goto out;
    }
    int n_train = list_split(&corpus, SPLIT_TRAIN, train_idx);
    int n_valid = list_split(&corpus, SPLIT_VALID, valid_idx);
    int no_region = 0;
    for (int i = 0; i < corpus.n_sm; i++) {
        const TrainSample *x = &corpus.sm[i];
        no_region += x->anat >= 0 && x->whole &&
                     corpus.boxes[((size_t)x->study * corpus.n_anat + x->anat) * 6] < 0;
    }
    if (no_region)
        log_warn("%d whole samples have no region row for their anatomy (table regions); they "
                 "cannot be checked against the crop and are left out", no_region);
    if (n_train < 2) {
        err_set(e, FV_ENOTFOUND, "%s: %d training studies with a usable %s; need at least 2",
                a->db_path, n_train, s.net.loss == LOSS_GLOBAL ? "report" : "whole sample");
        goto out;
    }
    /* the vocabulary: the checkpoint's, or built from the training texts */
    if (a->resume) {
        const char *v = st_meta(ck, "fvlm.vocab");
        if (!v) {
            err_set(e, FV_EFORMAT, "%s: metadata lacks fvlm.vocab", a->out_path);
            goto out;
        }
        if (tok_from_json(&tok, v, e))
            goto out;
    } else {
        int nt;
        if (trainset_train_texts(&corpus, &texts, &nt)) {
            err_set(e, FV_ENOMEM, "out of memory");
            goto out;
        }
        if (tok_build(&tok, texts, nt, &s.tok, e))
            goto out;
        free(texts);
        texts = NULL;
    }
    if (trainset_tokenize(&corpus, &tok, s.net.t_max_len, e))
        goto out;
    s.net.vocab = tok.n;
    s.net.n_anat = corpus.n_anat;
    if (s.net.loss == LOSS_GLOBAL && s.net.n_anat == 0)
        s.net.n_anat = 1; /* no anatomy parameters in global mode; keeps the config valid */
    NetCap cap = trainset_capacity(&corpus, s.batch);
    if (net_alloc(&net, &s.net, &cap, 1, e) || batch_alloc(&bb, &corpus, &s.net, s.batch, e))
        goto out;
    /* steps: ceil(n / batch) per epoch; a last batch of one study is dropped
     * (it cannot be contrasted) */
    int64_t spe = (n_train + s.batch - 1) / s.batch;
    if (n_train % s.batch == 1)
        spe--;
    int64_t total = s.steps > 0 ? s.steps : s.epochs * spe;
    s.opt.total = total;
    if (s.opt.warmup >= total)
        s.opt.warmup = total / 10;
    char sig[65];
    trainset_signature(&corpus, sig);
    if (train_settings_ini(&s, &ini)) {
        err_set(e, FV_ENOMEM, "out of memory");
        goto out;
    }
    Rng drng;
    int64_t step = 0;
    if (a->resume) {
        int64_t ck_threads = 0;
        const char *ck_sig = st_meta(ck, "fvlm.corpus");
        if (ckpt_load_params(ck, &net, 1, e) || ckpt_meta_int(ck, "fvlm.step", &step, e) ||
            ckpt_meta_int(ck, "fvlm.threads", &ck_threads, e) ||
            ckpt_load_state(ck, &drng, order, n_train, e))
            goto out;
        for (int i = 0; i < n_train; i++)
            if (order[i] >= corpus.n_st || corpus.st[order[i]].split != SPLIT_TRAIN) {
                err_set(e, FV_EFORMAT, "%s: train.order item %d is not a training study of this "
                        "corpus", a->out_path, i);
                goto out;
            }
        if (!ck_sig || strcmp(ck_sig, sig) != 0) {
            if (a->deterministic) {
                err_set(e, FV_EUSAGE, "%s: the corpus changed since the checkpoint was written; "
                        "a deterministic run cannot resume on other data", a->db_path);
                goto out;
            }
            log_warn("the corpus changed since the checkpoint; the run continues on the new data");
        }
        if (ck_threads != threads) {
            if (a->deterministic) {
                err_set(e, FV_EUSAGE, "the checkpoint was written with %lld threads, this run "
                        "has %d: a deterministic run resumes with the same count",
                        (long long)ck_threads, threads);
                goto out;
            }
            log_warn("the checkpoint ran with %lld threads, this run has %d: float sums may "
                     "round differently", (long long)ck_threads, threads);
        }
        st_close(&ck);
        log_info("resuming at step %lld of %lld", (long long)step, (long long)total);
    } else {
        Rng init;
        rng_seed(&init, (uint64_t)s.seed, 0);
        net_init(&net, &init);
        rng_seed(&drng, (uint64_t)s.seed, 1);
        memcpy(order, train_idx, (size_t)n_train * sizeof *order);
    }
    const char **anat_ids = malloc((size_t)(corpus.n_anat ? corpus.n_anat : 1) * sizeof *anat_ids);
    if (!anat_ids) {
        err_set(e, FV_ENOMEM, "out of memory");
        goto out;
    }
    for (int m = 0; m < corpus.n_anat; m++)
        anat_ids[m] = onto->anat[corpus.anat_onto[m]].id;
    log_info("%d training studies (%d validation), %d anatomies, vocabulary %d, %zu parameters, "
             "%lld steps of %d studies, %d threads", n_train, n_valid, corpus.n_anat, tok.n,
             net.n_floats, (long long)total, s.batch, threads);
    res->n_train = n_train;
    res->n_valid = n_valid;
    res->n_anat = corpus.n_anat;
    res->vocab = tok.n;
    res->params = net.n_floats;
    res->steps = total;
    res->run_id = run.id;

    CkptMeta meta = {a->preset, ini.data, sig, threads, a->deterministic};
    Progress prog;
    progress_start(&prog, "train", total, "steps");
    progress_set(&prog, step);
    double epoch_loss = 0.0;
    int epoch_n = 0;
    int saved = 0;
    while (step < total) {
        int64_t epoch = step / spe, pos = step % spe;
        if (pos == 0)
            rng_shuffle_int(&drng, order, (size_t)n_train);
        int first = (int)(pos * s.batch);
        int nb = n_train - first < s.batch ? n_train - first : s.batch;
        double t0 = now_seconds();
        batch_build(&bb, &corpus, &s.data, order + first, nb, 1, &drng);
        memset(net.grads, 0, net.n_floats * sizeof(float));
        float loss = net_step(&net, &bb.nb, 1);
        double norm = optim_clip(&net, &s.opt);
        double lr = optim_lr(&s.opt, step);
        if (bb.nb.ng) {
            optim_adamw(&net, &s.opt, lr, step + 1);
            optim_clamp_temperature(&net);
        }
        double dt = now_seconds() - t0;
        step++;
        saved = 0;
        epoch_loss += loss;
        epoch_n++;
        res->loss = loss;
        if (metric_add(metrics, db, run.id, step, epoch, "loss", loss, e) ||
            metric_add(metrics, db, run.id, step, epoch, "lr", lr, e) ||
            metric_add(metrics, db, run.id, step, epoch, "grad_norm", norm, e) ||
            metric_add(metrics, db, run.id, step, epoch, "samples_per_s",
                       dt > 0 ? bb.n_pairs / dt : 0, e) ||
            metric_add(metrics, db, run.id, step, epoch, "studies_per_s", dt > 0 ? nb / dt : 0,
                       e))
            goto out;
        if (step % s.log_every == 0 || step == total)
            log_info("step %lld/%lld  epoch %lld  loss %.4f  lr %.3g  |g| %.3g  temp %.4f  "
                     "%.0f samples/s", (long long)step, (long long)total, (long long)epoch + 1,
                     loss, lr, norm, net.w.temp[0], dt > 0 ? bb.n_pairs / dt : 0.0);
        snprintf(prog.label, sizeof prog.label, "train  loss %.4f  lr %.2e", loss, lr);
        progress_set(&prog, step);
        int epoch_end = step % spe == 0;
        if (epoch_end) {
            double vl = validate(&net, &bb, &corpus, &s.data, valid_idx, n_valid, s.batch, &drng);
            if (!isnan(vl)) {
                res->val_loss = vl;
                if (metric_add(metrics, db, run.id, step, epoch, "val_loss", vl, e))
                    goto out;
            }
            log_info("epoch %lld: train loss %.4f, validation loss %s%.4f", (long long)epoch + 1,
                     epoch_n ? epoch_loss / epoch_n : 0.0, isnan(vl) ? "(none) " : "",
                     isnan(vl) ? 0.0 : vl);
            res->loss = epoch_n ? epoch_loss / epoch_n : loss;
            epoch_loss = 0.0;
            epoch_n = 0;
        }
        int stop = a->stop && *a->stop;
        if (step == total || stop ||
            (s.save_every > 0 ? step % s.save_every == 0 : epoch_end)) {
            CkptState st = {step, step / spe, &drng, order, n_train};
            if (ckpt_save(a->out_path, &net, &tok, anat_ids, corpus.n_anat, &st, &meta, e) ||
                metrics_flush(metrics, db, run.id, e)) {
                free(anat_ids);
                goto out;
            }
            saved = 1;
        }
        if (stop) {
            res->stopped = 1;
            break;
        }
    }
    progress_end(&prog);
    if (!saved) {
        /* a resumed run that had nothing left to do still leaves a model */
        CkptState st = {step, step / spe, &drng, order, n_train};
        if (ckpt_save(a->out_path, &net, &tok, anat_ids, corpus.n_anat, &st, &meta, e)) {
            free(anat_ids);
            goto out;
        }
    }
    free(anat_ids);
    if (metrics_flush(metrics, db, run.id, e))
        goto out;
    char hex[65], now[32];
    if (sha256_file(a->out_path, hex, e))
        goto out;
    db_now_iso(now, sizeof now);
    if (db_run(db, e, "INSERT INTO models (run_id, path, sha256, preset, loss, step, created_at)"
               " VALUES (?, ?, ?, ?, ?, ?, ?)", "issssis", run.id, a->out_path, hex,
               a->preset ? a->preset : "", loss_mode_name(s.net.loss), step, now))
        goto out;
    res->model_id = db_last_id(db);
    res->step = step;
    res->seconds = now_seconds() - t_start;
    rc = 0;
out:
    if (run_open) {
        Buf counts = {0};
        buf_printf(&counts,
                   "{\"train_studies\": %d, \"valid_studies\": %d, \"samples\": %d, "
                   "\"anatomies\": %d, \"skipped_studies\": %lld, \"steps\": %lld, "
                   "\"vocab\": %d, \"params\": %zu}",
                   res->n_train, res->n_valid, corpus.n_sm, corpus.n_anat,
                   (long long)corpus.n_skipped, (long long)res->step, tok.n, net.n_floats);
        FvErr fe = {0};
        if (rc == 0 && metrics)
            metrics_flush(metrics, db, run.id, &fe);
        run_finish(&run, rc == 0 ? (res->stopped ? "interrupted" : "ok") : "failed", counts.data,
                   &fe);
        buf_free(&counts);
    }
    free(texts);
    free(train_idx);
    free(valid_idx);
    free(order);
    free(metrics);
    for (int i = 0; i < n_ck_anat; i++)
        free(ck_anat[i]);
    free(ck_anat);
    buf_free(&ini);
    buf_free(&cfg_json);
    batch_free(&bb);
    net_free(&net);
    tok_free(&tok);
    trainset_free(&corpus);
    st_close(&ck);
    db_close(&db);
    onto_free(&onto);
    return rc;
}
