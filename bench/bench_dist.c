/* bench_dist: data-parallel training steps (train/dpstep.h) beside one
 * process, at the same global batch, and a projection to many nodes.
 *
 *   bench_dist [--preset small] [--reps 5] [--studies 96] [--ranks 2]
 *              [--set section.key=value]...
 *
 * Builds a synthetic corpus (tests/train/fixture.h) and one global batch of
 * the preset's size (plain crops, so every rank renders its share without
 * a shared RNG), then times:
 *   - 1 process x R threads: net_step, clipping, AdamW on the whole batch;
 *   - R ranks x 1 thread (itself under mpirun): dp_step on each rank's share,
 *     clipping, AdamW; per step the time in collectives (gathers and the
 *     gradient sums, waiting for the other ranks included), the bytes
 *     summed and gathered, the rank's share of the global loss's time.
 * and prints them side by side. From the measured compute (the one-process
 * step at the preset's batch per node), the loss time (which grows with the
 * square of the global batch) and the message sizes, it projects a step on
 * 8 and 64 nodes at 10 and 100 Gbit/s, each node training a batch of the
 * preset's size (weak scaling): ring all-reduce of the gradients, 2 (P - 1)
 * / P x bytes / bandwidth + 2 (P - 1) x 5 us per bucket; the all-gather of
 * the rows' features, (P - 1) x a node's feature bytes / bandwidth, and the
 * ring sum of their loss gradients; the loss, (P B)^2 work shared by at
 * most as many ranks as the batch has groups; no overlap with the backward
 * pass counted. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "data.h"
#include "dist.h"
#include "dpstep.h"
#include "fixture.h"
#include "json.h"
#include "log.h"
#include "net.h"
#include "optim.h"
#include "pipeline.h"
#include "schemas.h"
#include "trainer.h"

typedef struct Opts {
    const char *preset;
    int reps, studies, ranks, nsets;
    const char *sets[32];
    const char *worker_db;     /* --worker DB: a rank of the data-parallel run */
} Opts;

typedef struct Setup {
    TrainSettings s;
    Ontology *onto;
    Db *db;
    TrainSet c;
    Tokenizer tok;
    int B;
} Setup;

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

/* The preset's settings (density summary as set), the corpus and its vocabulary. */
static int setup(Setup *u, const Opts *o, const char *db_path, FvErr *e)
{
    Config cfg;
    config_init(&cfg);
    char name[64], *text = NULL;
    size_t len;
    snprintf(name, sizeof name, "preset_%s.ini", o->preset);
    int rc = schema_load(name, &text, &len, e) || config_parse(&cfg, text, name, e);
    for (int i = 0; i < o->nsets && !rc; i++) {
        char key[128];
        const char *eq = strchr(o->sets[i], '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - o->sets[i]), o->sets[i]);
        rc = config_set(&cfg, key, eq + 1, e);
    }
    rc = rc || train_settings(&cfg, &u->s, e);
    free(text);
    config_free(&cfg);
    const char **texts;
    int nt;
    if (rc || onto_load(&u->onto, e) || db_open(&u->db, db_path, DB_MUST_EXIST, e) ||
        trainset_load(&u->c, u->db, u->onto, u->s.net.loss, 1, NULL, 0, -1, NULL, e) ||
        trainset_train_texts(&u->c, &texts, &nt) || tok_build(&u->tok, texts, nt, &u->s.tok, e))
        return -1;
    free(texts);
    if (trainset_tokenize(&u->c, &u->tok, u->s.net.t_max_len, e))
        return -1;
    u->s.net.vocab = u->tok.n;
    u->s.net.n_anat = u->c.n_anat;
    u->B = u->s.batch < u->c.n_st ? u->s.batch : u->c.n_st;
    u->s.opt.total = 1000;
    return 0;
}

static void teardown(Setup *u)
{
    tok_free(&u->tok);
    trainset_free(&u->c);
    db_close(&u->db);
    onto_free(&u->onto);
}

/* One rank of the data-parallel run: prints one JSON line (rank 0). */
static int worker(const Opts *o, int *argc, char ***argv)
{
    FvErr e = {0};
    Dist d;
    Setup u;
    if (dist_init(&d, argc, argv, &e) || setup(&u, o, o->worker_db, &e)) {
        fprintf(stderr, "bench_dist: %s\n", e.msg);
        dist_abort(&d, 1);
        return 1;
    }
    openblas_set_num_threads(1);
    int lo, hi, B = u.B;
    pipe_share(B, d.rank, d.size, &lo, &hi);
    NetCap cap = trainset_capacity(&u.c, (B + d.size - 1) / d.size);
    Net net;
    BatchBuf bb;
    DpStep *dp;
    int *idx = malloc(sizeof(int) * B);
    for (int i = 0; i < B; i++)
        idx[i] = i;
    Rng r;
    rng_seed(&r, 1, 0);
    if (net_alloc(&net, &u.s.net, &cap, 1, &e) ||
        batch_alloc(&bb, &u.c, &u.s.net, hi - lo > 0 ? hi - lo : 1, &e) ||
        dp_alloc(&dp, &u.c, &net, B, &d, &e)) {
        fprintf(stderr, "bench_dist: %s\n", e.msg);
        dist_abort(&d, 1);
        return 1;
    }
    net_init(&net, &r);
    batch_crops(&bb, &u.c, &u.s.data, idx + lo, hi - lo, 0, &r);
    batch_render(&bb, &u.c, &u.s.data, idx + lo, hi - lo);
    PipeJob j = {.kind = PIPE_TRAIN, .n = B, .idx = idx, .lo = lo, .hi = hi, .bb = &bb};
    j.nc = batch_candidates(&bb, &u.c, &u.s.data, idx + lo, hi - lo);
    int n = o->reps + 2;
    double *t = malloc(sizeof(double) * n), *comm = malloc(sizeof(double) * n);
    double sum0 = 0, gat0 = 0, loss0 = 0, loss_s = 0;
    float loss = 0;
    int ng = 0, pairs = 0;
    for (int i = 0; i < n; i++) {
        if (i == 2) {
            /* the first two steps warm up: count the others */
            sum0 = d.sum_bytes;
            gat0 = d.gather_bytes;
            loss0 = dp_loss_seconds(dp);
        }
        double c0 = d.comm_s, t0 = now_seconds();
        memset(net.grads, 0, net.n_floats * sizeof(float));
        float l;
        if (dp_step(dp, &net, &j, 1, &l, &ng, &pairs, &e)) {
            fprintf(stderr, "bench_dist: %s\n", e.msg);
            dist_abort(&d, 1);
            return 1;
        }
        optim_clip(&net, &u.s.opt);
        optim_adamw(&net, &u.s.opt, 1e-4, i + 1);
        optim_clamp_temperature(&net);
        t[i] = now_seconds() - t0;
        comm[i] = d.comm_s - c0;
        if (i == 0)
            loss = l;
    }
    loss_s = (dp_loss_seconds(dp) - loss0) / o->reps;
    double step = median(t + 2, o->reps), cm = median(comm + 2, o->reps);
    if (d.rank == 0)
        printf("{\"step_s\": %.6f, \"comm_s\": %.6f, \"loss_s\": %.6f, \"sum_bytes\": %.0f, "
               "\"gather_bytes\": %.0f, \"loss\": %.6f, \"pairs\": %d, \"groups\": %d, "
               "\"buckets\": %zu, \"lossgrad_bytes\": %.0f}\n",
               step, cm, loss_s, (d.sum_bytes - sum0) / o->reps, (d.gather_bytes - gat0) / o->reps,
               loss, pairs, ng, (net.n_floats + (1 << 20) - 1) / (1 << 20) + 2,
               2.0 * pairs * net.cfg.embed * sizeof(float));
    fflush(stdout);
    free(t);
    free(comm);
    free(idx);
    dp_free(&dp);
    batch_free(&bb);
    net_free(&net);
    teardown(&u);
    dist_finish(&d);
    return 0;
}

int main(int argc, char **argv)
{
    Opts o = {.preset = "small", .reps = 5, .studies = 96, .ranks = 2};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--preset") && i + 1 < argc)
            o.preset = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            o.reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--studies") && i + 1 < argc)
            o.studies = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ranks") && i + 1 < argc)
            o.ranks = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--worker") && i + 1 < argc)
            o.worker_db = argv[++i];
        else if (!strcmp(argv[i], "--set") && i + 1 < argc && o.nsets < 32 &&
                 strchr(argv[i + 1], '='))
            o.sets[o.nsets++] = argv[++i];
        else {
            fprintf(stderr, "usage: bench_dist [--preset small] [--reps 5] [--studies 96] "
                    "[--ranks 2] [--set KEY=VALUE]...\n");
            return 2;
        }
    }
    if (o.reps < 1 || o.studies < 4 || o.ranks < 2 || o.ranks > 64) {
        fprintf(stderr, "bench_dist: --reps >= 1, --studies >= 4, --ranks 2..64\n");
        return 2;
    }
    log_set_level(LOG_WARN);
    if (o.worker_db)
        return worker(&o, &argc, &argv);
    if (!dist_built_with_mpi()) {
        fprintf(stderr, "bench_dist: this build has no MPI (meson -Dmpi=enabled)\n");
        return 1;
    }

    /* the corpus, and the one-process step on the whole batch */
    FvErr e = {0};
    char dir[] = "/tmp/fvlm-bench-dist-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char db_path[256];
    snprintf(db_path, sizeof db_path, "%s/corpus.db", dir);
    FixtureOpts fo = {.n_studies = o.studies, .seed = 3, .p_abnormal = 0.4, .chinese = 1,
                      .all_train = 1};
    Setup u;
    if (fixture_corpus(db_path, &fo, &e) || setup(&u, &o, db_path, &e)) {
        fprintf(stderr, "bench_dist: %s\n", e.msg);
        return 1;
    }
    openblas_set_num_threads(o.ranks);
    int B = u.B;
    NetCap cap = trainset_capacity(&u.c, B);
    Net net;
    BatchBuf bb;
    if (net_alloc(&net, &u.s.net, &cap, 1, &e) || batch_alloc(&bb, &u.c, &u.s.net, B, &e)) {
        fprintf(stderr, "bench_dist: %s\n", e.msg);
        return 1;
    }
    Rng r;
    rng_seed(&r, 1, 0);
    net_init(&net, &r);
    int *idx = malloc(sizeof(int) * B);
    for (int i = 0; i < B; i++)
        idx[i] = i;
    batch_build(&bb, &u.c, &u.s.data, idx, B, 0, &r);
    double *t = malloc(sizeof(double) * (o.reps + 2));
    float loss1 = 0;
    for (int i = 0; i < o.reps + 2; i++) {
        double t0 = now_seconds();
        memset(net.grads, 0, net.n_floats * sizeof(float));
        float l = net_step(&net, &bb.nb, 1);
        optim_clip(&net, &u.s.opt);
        optim_adamw(&net, &u.s.opt, 1e-4, i + 1);
        optim_clamp_temperature(&net);
        t[i] = now_seconds() - t0;
        if (i == 0)
            loss1 = l;
    }
    double t1 = median(t + 2, o.reps);
    size_t n_floats = net.n_floats;
    batch_free(&bb);
    net_free(&net);

    /* the ranks */
    char self[4096], cmd[8192];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) {
        fprintf(stderr, "bench_dist: cannot find its own executable\n");
        return 1;
    }
    self[sl] = '\0';
    int at = snprintf(cmd, sizeof cmd, "mpirun %s--oversubscribe -np %d %s --worker %s --preset %s "
                      "--reps %d", geteuid() == 0 ? "--allow-run-as-root " : "", o.ranks, self,
                      db_path, o.preset, o.reps);
    for (int i = 0; i < o.nsets && at < (int)sizeof cmd - 300; i++)
        at += snprintf(cmd + at, sizeof cmd - (size_t)at, " --set '%s'", o.sets[i]);
    FILE *p = popen(cmd, "r");
    char line[4096] = "";
    JsonValue *v = NULL;
    if (!p || !fgets(line, sizeof line, p) || json_parse(line, strlen(line), &v, &e)) {
        fprintf(stderr, "bench_dist: the ranks gave no result (%s)\n", cmd);
        if (p)
            pclose(p);
        return 1;
    }
    pclose(p);
    double tp = json_get_num(v, "step_s", 0), comm = json_get_num(v, "comm_s", 0);
    double loss_s = json_get_num(v, "loss_s", 0), sum_b = json_get_num(v, "sum_bytes", 0);
    double gat_b = json_get_num(v, "gather_bytes", 0), lossp = json_get_num(v, "loss", 0);
    double buckets = json_get_num(v, "buckets", 3);
    int pairs = (int)json_get_num(v, "pairs", 0), groups = (int)json_get_num(v, "groups", 1);
    double lossgrad_b = json_get_num(v, "lossgrad_bytes", 0);
    json_free(&v);
    if (groups < 1)
        groups = 1;

    printf("fvlm bench_dist: preset %s, global batch of %d studies (%d image-text pairs), "
           "%zu parameters\n", o.preset, B, pairs, n_floats);
    printf("  %-32s %10s %10s %14s %14s %10s\n", "", "step s", "comm", "grads/step",
           "features/step", "loss");
    printf("  %-32s %10.4f %10s %14s %14s %10.5f\n", "1 process x 2 threads", t1, "-", "-", "-",
           loss1);
    char who[64];
    snprintf(who, sizeof who, "%d ranks x 1 thread", o.ranks);
    printf("  %-32s %10.4f %9.1f%% %11.2f MB %11.3f MB %10.5f\n", who, tp, 100.0 * comm / tp,
           sum_b / 1e6, gat_b / 1e6, lossp);
    printf("  ratio (ranks / one process)      %.2f   (comm: time in collectives, waiting for "
           "the other ranks included;\n  grads: parameter gradients summed; features: rows and "
           "features gathered, their loss gradients summed)\n", tp / t1);
    /* projection: weak scaling, every node a batch of B. The loss of the
     * global batch grows with its square and is shared among at most
     * `groups` ranks (one anatomy group each); measured on one of o.ranks
     * ranks, each with its share of the groups. */
    int sharing = o.ranks < groups ? o.ranks : groups;
    double loss_all = loss_s * sharing;                   /* all groups, global batch B */
    double gather_node = (gat_b - lossgrad_b) / o.ranks; /* one rank's rows and features */
    printf("\n  projection, each node a batch of %d (compute %.3f s as the one process above; "
           "the loss of all %d groups %.4f s at %d studies, x (P B / %d)^2 / min(P, %d)):\n", B,
           t1, groups, loss_all, B, B, groups);
    printf("  %-8s %-10s %10s %10s %10s %10s %12s\n", "nodes", "link", "compute", "loss",
           "all-reduce", "gather", "step s");
    const int nodes[2] = {8, 64};
    const double gbit[2] = {10, 100};
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            double P = nodes[a], bw = gbit[b] * 1e9 / 8;
            double ar = 2 * (P - 1) / P * sum_b / bw + 2 * (P - 1) * 5e-6 * buckets;
            /* features gathered; their loss gradients (2 P R D floats) summed */
            double ga = (P - 1) * gather_node / bw + 2 * (P - 1) / P * lossgrad_b * P / bw +
                        (P - 1) * 5e-6 * 6;
            double lo = loss_all * P * P / (P < groups ? P : groups);
            double step = t1 + lo + ar + ga;
            char link[16];
            snprintf(link, sizeof link, "%.0f Gbit/s", gbit[b]);
            printf("  %-8d %-10s %10.4f %10.4f %10.4f %10.4f %12.4f   (%.0f%% of one node's "
                   "studies/s per node)\n", nodes[a], link, t1, lo, ar, ga, step,
                   100.0 * t1 / step);
        }
    char rm[600];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    if (system(rm) != 0)
        fprintf(stderr, "bench_dist: could not remove %s\n", dir);
    free(t);
    free(idx);
    teardown(&u);
    return 0;
}
