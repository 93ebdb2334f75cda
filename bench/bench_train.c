/* bench_train: one training step of fvlm beside its PyTorch twin, in one run.
 *
 *   bench_train [--preset small] [--threads 2] [--reps 5] [--studies 96]
 *               [--twin tests/train/twin.py] [--python /usr/bin/python3] [--no-twin]
 *               [--end-to-end] [--epochs 2] [--rounds 3] [--set section.key=value]...
 *
 * Builds a synthetic corpus (tests/train/fixture.h), the preset's model and
 * one batch (the preset's batch size, with augmentation, as training draws
 * it), then times, with the same thread count:
 *   - fvlm: one step = forward, backward, gradient clipping, AdamW, the
 *     temperature clamp (no allocation inside);
 *   - the PyTorch twin (tests/train/twin.py step) on the same weights and
 *     batch, dumped to a temporary safetensors file, with OPENBLAS_NUM_THREADS
 *     and OMP_NUM_THREADS set to the same count (torch.set_num_threads
 *     alone leaves its OpenBLAS on every core);
 *   - cblas_sgemm on square matrices: the machine's matrix-product peak.
 * Prints the time ratio, the step's achieved GFLOP/s (its matrix products'
 * FLOPs over the step's time) beside the sgemm peak, the data preparation
 * time of the batch, and peak memory (fvlm's allocations and both processes'
 * peak resident size).
 *
 * --end-to-end: then trains whole epochs with train_run (what `fvlm train`
 * runs: the input pipeline, validation, checkpoints, metrics) on the same
 * corpus, settings and threads, once with the batches made between steps
 * (train.loaders = 0) and once with the pipeline's loader thread, and
 * prints each one's studies/s beside the step alone's (batch / step time),
 * with the time the steps waited for data, validation and checkpoints. */
#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "data.h"
#include "fixture.h"
#include "fvlm_config.h"
#include "json.h"
#include "log.h"
#include "net.h"
#include "ops.h"
#include "optim.h"
#include "safetensors.h"
#include "schemas.h"
#include "tokenizer.h"
#include "trainer.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Best GFLOP/s of cblas_sgemm on n x n x n. */
static double sgemm_peak(int n, int reps)
{
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n);
    float *c = malloc(sizeof(float) * n * n);
    if (!a || !b || !c)
        return 0;
    for (int i = 0; i < n * n; i++) {
        a[i] = (float)(i % 7) * 0.01f;
        b[i] = (float)(i % 5) * 0.02f;
    }
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t = now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                    c, n);
        t = now_seconds() - t;
        best = t < best ? t : best;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * n * (double)n * n / best * 1e-9;
}

static int add_i32(StWriter *w, const char *name, const int *p, int64_t n, FvErr *e)
{
    return st_writer_add(w, name, ST_I32, 1, &n, p, e);
}

/* Weights and batch for the twin. */
static int dump(const char *path, const Net *n, const NetBatch *b, FvErr *e)
{
    const NetCfg *c = &n->cfg;
    StWriter w;
    st_writer_init(&w);
    int rc = 0;
    for (int i = 0; i < n->n_params && !rc; i++) {
        const ParamInfo *p = &n->info[i];
        char key[80];
        snprintf(key, sizeof key, "decay.%s", p->name);
        rc = st_writer_add(&w, p->name, ST_F32, p->ndim, p->shape, n->params + p->off, e) ||
             st_writer_meta(&w, key, p->decay ? "1" : "0", e);
    }
    int64_t ishape[5] = {b->nb, c->in_c, c->in_z, c->in_y, c->in_x};
    int64_t mshape[3] = {b->nb, c->n_anat, netcfg_tokens(c)}, nr = b->nr;
    int64_t dshape[2] = {b->nr, b->dis_words};
    rc = rc || st_writer_add(&w, "batch.img", ST_F32, 5, ishape, b->img, e) ||
         add_i32(&w, "batch.rb", b->rb, b->nr, e) || add_i32(&w, "batch.rtext", b->rtext, b->nr, e) ||
         add_i32(&w, "batch.goff", b->goff, b->ng + 1, e) ||
         add_i32(&w, "batch.grow", b->grow, b->goff[b->ng], e) ||
         add_i32(&w, "batch.toff", b->toff, b->nt + 1, e) ||
         add_i32(&w, "batch.tids", b->tids, b->toff[b->nt], e);
    if (c->loss != LOSS_GLOBAL)
        rc = rc || st_writer_add(&w, "batch.tokbias", ST_F32, 3, mshape, b->tokbias, e) ||
             add_i32(&w, "batch.ra", b->ra, b->nr, e) ||
             st_writer_add(&w, "batch.rabn", ST_U8, 1, &nr, b->rabn, e) ||
             st_writer_add(&w, "batch.rdis", ST_U64, 2, dshape, b->rdis, e);
    Buf js = {0};
    JsonW jw;
    jw_init(&jw, &js, 0);
    netcfg_to_json(c, &jw);
    rc = rc || st_writer_meta(&w, "fvlm.net", js.data, e) || st_write(&w, path, e);
    buf_free(&js);
    st_writer_free(&w);
    return rc ? -1 : 0;
}

/* Trains `epochs` epochs of the corpus at db_path with train_run, on the
 * preset's settings and sets, anat_hist off as in the step timing above. */
static int end_to_end(const char *preset, const char *const *sets, int nsets, int threads,
                      int loaders, int epochs, const char *db_path, const char *out,
                      TrainResult *r, FvErr *e)
{
    Config cfg;
    config_init(&cfg);
    char name[64], *text = NULL, v[32];
    size_t len;
    snprintf(name, sizeof name, "preset_%s.ini", preset);
    int rc = schema_load(name, &text, &len, e) || config_parse(&cfg, text, name, e) ||
             config_set(&cfg, "model.anat_hist", "off", e);
    for (int i = 0; i < nsets && !rc; i++) {
        char key[128];
        const char *eq = strchr(sets[i], '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - sets[i]), sets[i]);
        rc = config_set(&cfg, key, eq + 1, e);
    }
    snprintf(v, sizeof v, "%d", threads);
    rc = rc || config_set(&cfg, "train.threads", v, e);
    snprintf(v, sizeof v, "%d", loaders);
    rc = rc || config_set(&cfg, "train.loaders", v, e);
    snprintf(v, sizeof v, "%d", epochs);
    rc = rc || config_set(&cfg, "train.epochs", v, e) || config_set(&cfg, "train.steps", "0", e);
    char *argv[] = {"bench_train", NULL};
    TrainArgs a = {db_path, out, preset, 0, 0, 1, argv, NULL};
    rc = rc || train_run(&a, &cfg, r, e);
    free(text);
    config_free(&cfg);
    return rc ? -1 : 0;
}

/* Median seconds of `reps` training steps on one batch (after one warm-up). */
static double time_steps(Net *net, const NetBatch *b, const OptCfg *o, int reps)
{
    double t[16];
    int n = reps < 15 ? reps : 15;
    for (int i = 0; i <= n; i++) {
        double t0 = now_seconds();
        memset(net->grads, 0, net->n_floats * sizeof(float));
        net_step(net, b, 1);
        optim_clip(net, o);
        optim_adamw(net, o, 1e-4, i + 1);
        optim_clamp_temperature(net);
        if (i)
            t[i - 1] = now_seconds() - t0;
    }
    return median(t, n);
}

static long peak_rss_bytes(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss * 1024L;
}

int main(int argc, char **argv)
{
    const char *preset = "small", *twin = FVLM_SOURCE_ROOT "/tests/train/twin.py";
    const char *python = "/usr/bin/python3";
    int threads = 2, reps = 5, studies = 96, no_twin = 0, nsets = 0, e2e = 0, epochs = 2;
    int rounds = 3;
    const char *sets[32];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--preset") && i + 1 < argc)
            preset = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--studies") && i + 1 < argc)
            studies = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--twin") && i + 1 < argc)
            twin = argv[++i];
        else if (!strcmp(argv[i], "--python") && i + 1 < argc)
            python = argv[++i];
        else if (!strcmp(argv[i], "--no-twin"))
            no_twin = 1;
        else if (!strcmp(argv[i], "--end-to-end"))
            e2e = 1;
        else if (!strcmp(argv[i], "--epochs") && i + 1 < argc)
            epochs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--set") && i + 1 < argc && nsets < 32 && strchr(argv[i + 1], '='))
            sets[nsets++] = argv[++i];
        else {
            fprintf(stderr, "usage: bench_train [--preset small] [--threads 2] [--reps 5] "
                    "[--studies 96] [--twin PATH] [--python PATH] [--no-twin] "
                    "[--end-to-end] [--epochs 2] [--rounds 3] [--set KEY=VALUE]...\n");
            return 2;
        }
    }
    if (threads < 1 || reps < 1 || studies < 4 || epochs < 1 || rounds < 1 || rounds > 16) {
        fprintf(stderr, "bench_train: --threads, --reps, --epochs >= 1, --rounds 1..16, "
                "--studies >= 4\n");
        return 2;
    }
    log_set_level(LOG_WARN);
    openblas_set_num_threads(threads);
    FvErr e = {0};
    char dir[] = "/tmp/fvlm-bench-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char db_path[256], dump_path[256];
    snprintf(db_path, sizeof db_path, "%s/corpus.db", dir);
    snprintf(dump_path, sizeof dump_path, "%s/step.safetensors", dir);

    /* settings of the preset */
    Config cfg;
    config_init(&cfg);
    char name[64], *text;
    size_t len;
    snprintf(name, sizeof name, "preset_%s.ini", preset);
    TrainSettings s;
    if (schema_load(name, &text, &len, &e) || config_parse(&cfg, text, name, &e)) {
        fprintf(stderr, "bench_train: %s\n", e.msg);
        return 1;
    }
    /* the twin has no density summary (a small linear layer, well under 1 %
     * of the step's FLOPs): off here so both run the same network */
    if (config_set(&cfg, "model.anat_hist", "off", &e)) {
        fprintf(stderr, "bench_train: %s\n", e.msg);
        return 1;
    }
    for (int i = 0; i < nsets; i++) {
        char key[128];
        const char *eq = strchr(sets[i], '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - sets[i]), sets[i]);
        if (config_set(&cfg, key, eq + 1, &e)) {
            fprintf(stderr, "bench_train: %s\n", e.msg);
            return 1;
        }
    }
    if (train_settings(&cfg, &s, &e)) {
        fprintf(stderr, "bench_train: %s\n", e.msg);
        return 1;
    }
    free(text);
    FixtureOpts fo = {.n_studies = studies, .seed = 3, .p_abnormal = 0.4, .chinese = 1,
                      .all_train = 1};
    Ontology *onto;
    Db *db;
    TrainSet c;
    Tokenizer tok;
    const char **texts;
    int nt;
    if (fixture_corpus(db_path, &fo, &e) || onto_load(&onto, &e) ||
        db_open(&db, db_path, DB_MUST_EXIST, &e) ||
        trainset_load(&c, db, onto, s.net.loss, 1, NULL, 0, -1, NULL, &e) ||
        trainset_train_texts(&c, &texts, &nt) || tok_build(&tok, texts, nt, &s.tok, &e) ||
        trainset_tokenize(&c, &tok, s.net.t_max_len, &e)) {
        fprintf(stderr, "bench_train: %s\n", e.msg);
        return 1;
    }
    free(texts);
    s.net.vocab = tok.n;
    s.net.n_anat = c.n_anat;
    int B = s.batch < c.n_st ? s.batch : c.n_st;
    NetCap cap = trainset_capacity(&c, B);
    Net net;
    BatchBuf bb;
    if (net_alloc(&net, &s.net, &cap, 1, &e) || batch_alloc(&bb, &c, &s.net, B, &e)) {
        fprintf(stderr, "bench_train: %s\n", e.msg);
        return 1;
    }
    Rng r;
    rng_seed(&r, 1, 0);
    net_init(&net, &r);
    int *idx = malloc(sizeof(int) * B);
    for (int i = 0; i < B; i++)
        idx[i] = i;
    double t_data = now_seconds();
    batch_build(&bb, &c, &s.data, idx, B, 1, &r);
    t_data = now_seconds() - t_data;
    if (dump(dump_path, &net, &bb.nb, &e)) {
        fprintf(stderr, "bench_train: %s\n", e.msg);
        return 1;
    }
    s.opt.total = 1000;

    /* fvlm: warm-up steps, then timed ones */
    double *times = malloc(sizeof(double) * (reps + 2));
    uint64_t flops = 0;
    float loss = 0;
    for (int i = 0; i < reps + 2; i++) {
        double t = now_seconds();
        ops_flops = 0;
        memset(net.grads, 0, net.n_floats * sizeof(float));
        float l = net_step(&net, &bb.nb, 1);
        if (i == 0)
            loss = l; /* on the dumped weights: the twin's first loss */
        optim_clip(&net, &s.opt);
        optim_adamw(&net, &s.opt, 1e-4, i + 1);
        optim_clamp_temperature(&net);
        t = now_seconds() - t;
        flops = ops_flops;
        if (i >= 2)
            times[i - 2] = t;
    }
    double t_c = median(times, reps);
    double peak = sgemm_peak(2048, 3);
    size_t model_bytes = net.n_floats * 4 * sizeof(float);

    /* the twin */
    double t_py = 0, py_loss = 0, py_rss = 0;
    char py_ver[64] = "-";
    if (!no_twin) {
        char cmd[1024];
        /* torch.set_num_threads sets its OpenMP pool only; its OpenBLAS would
         * take every core unless told at start: the same count for both */
        snprintf(cmd, sizeof cmd,
                 "OPENBLAS_NUM_THREADS=%d OMP_NUM_THREADS=%d %s %s step %s --threads %d --reps %d",
                 threads, threads, python, twin, dump_path, threads, reps);
        FILE *p = popen(cmd, "r");
        char line[4096] = "";
        if (!p || !fgets(line, sizeof line, p)) {
            fprintf(stderr, "bench_train: the twin gave no result (%s)\n", cmd);
        } else {
            JsonValue *v;
            if (json_parse(line, strlen(line), &v, &e) == 0) {
                t_py = json_get_num(v, "seconds", 0);
                py_loss = json_get_num(v, "loss", 0);
                py_rss = json_get_num(v, "peak_rss_bytes", 0);
                snprintf(py_ver, sizeof py_ver, "%s", json_get_str(v, "torch", "?"));
                json_free(&v);
            }
        }
        if (p)
            pclose(p);
    }

    int T = netcfg_tokens(&s.net);
    printf("fvlm bench_train: preset %s, %d threads, batch of %d studies (%d tokens each), "
           "%d image-text pairs in %d loss groups, %d texts of %d tokens in all\n",
           preset, threads, B, T, bb.nb.goff[bb.nb.ng], bb.nb.ng, bb.nb.nt,
           bb.nb.toff[bb.nb.nt]);
    printf("  %-34s %10s %12s %12s\n", "", "seconds", "GFLOP/s", "peak memory");
    printf("  %-34s %10.4f %12.1f %9.0f MiB   (loss %.5f; model, grads, AdamW %.0f MiB; "
           "activations and batch %.0f MiB)\n",
           "fvlm step (fwd+bwd+clip+AdamW)", t_c, flops / t_c * 1e-9,
           peak_rss_bytes() / 1048576.0, loss, model_bytes / 1048576.0,
           (peak_rss_bytes() - (double)model_bytes) / 1048576.0);
    if (!no_twin && t_py > 0)
        printf("  %-34s %10.4f %12.1f %9.0f MiB   (loss %.5f, torch %s)\n",
               "PyTorch twin step (same batch)", t_py, flops / t_py * 1e-9, py_rss / 1048576.0,
               py_loss, py_ver);
    printf("  %-34s %10s %12.1f\n", "cblas_sgemm 2048^3 (peak)", "", peak);
    printf("  %-34s %10.4f\n", "data: crop, resample, batch", t_data);
    printf("\n  step FLOPs (matrix products) %.2f G\n", flops * 1e-9);
    if (!no_twin && t_py > 0)
        printf("  time ratio fvlm / PyTorch    %.3f   (goal <= 0.7)\n", t_c / t_py);
    printf("  achieved / sgemm peak        %.1f %%  (goal >= 50 %%)\n",
           100.0 * flops / t_c * 1e-9 / peak);

    if (e2e) {
        /* each round times the step alone again, then the two ways, and
         * takes their ratios to that round's step: a busy spell on a shared
         * machine falls on all three; the median of each ratio is printed,
         * with its range */
        double step_rate = B / t_c;
        char out[300];
        snprintf(out, sizeof out, "%s/model.safetensors", dir);
        printf("\n  end to end: train_run (fvlm train), %d epochs of the %d studies, batch %d, "
               "%d threads, %d rounds\n", epochs, studies, B, threads, rounds);
        printf("  %-34s %10s %8s %15s %10s %10s %10s\n", "", "studies/s", "ratio", "(range)",
               "data wait", "validation", "checkpts");
        printf("  %-34s %10.1f %8.2f   (the ratios: to each round's own step alone)\n",
               "step alone (batch / step time)", step_rate, 1.0);
        double rate[2][16], wait[2][16], valid[2][16], ckpt[2][16];
        long long steps = 0;
        for (int k = 0; k < rounds; k++) {
            double round_rate = B / time_steps(&net, &bb.nb, &s.opt, reps);
            for (int loaders = 0; loaders <= 1; loaders++) {
                TrainResult tr;
                if (end_to_end(preset, sets, nsets, threads, loaders, epochs, db_path, out, &tr,
                               &e)) {
                    fprintf(stderr, "bench_train: end to end: %s\n", e.msg);
                    return 1;
                }
                rate[loaders][k] = tr.studies / tr.loop_s / round_rate;
                wait[loaders][k] = tr.wait_s;
                valid[loaders][k] = tr.valid_s;
                ckpt[loaders][k] = tr.ckpt_s;
                steps = tr.step;
            }
        }
        for (int loaders = 0; loaders <= 1; loaders++) {
            double lo = 1e30, hi = 0;
            for (int k = 0; k < rounds; k++) {
                lo = rate[loaders][k] < lo ? rate[loaders][k] : lo;
                hi = rate[loaders][k] > hi ? rate[loaders][k] : hi;
            }
            double m = median(rate[loaders], rounds);
            char range[32];
            snprintf(range, sizeof range, "(%.2f-%.2f)", lo, hi);
            printf("  %-34s %10.1f %8.2f %15s %8.2f s %8.2f s %8.2f s\n",
                   loaders ? "epochs, 1 loader thread" : "epochs, batches between steps",
                   m * step_rate, m, range, median(wait[loaders], rounds),
                   median(valid[loaders], rounds), median(ckpt[loaders], rounds));
        }
        printf("  (%lld steps a run; data wait, validation, checkpoints: seconds a run)\n", steps);
        printf("  epoch / step-alone throughput  %.2f   (goal >= 0.9)\n", median(rate[1], rounds));
    }

    char cmd[600];
    if (getenv("FVLM_BENCH_KEEP")) {
        printf("  kept %s\n", dump_path);
        goto keep;
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_train: could not remove %s\n", dir);
keep:
    free(idx);
    free(times);
    batch_free(&bb);
    net_free(&net);
    tok_free(&tok);
    trainset_free(&c);
    db_close(&db);
    onto_free(&onto);
    config_free(&cfg);
    return 0;
}
