/* The input pipeline (train/pipeline.h) hands out the batches the plain
 * loop builds, byte for byte, whatever its loader threads and prefetch
 * depth and however slowly the consumer takes them; a run started at step
 * k (a resume) continues the same sequence; each rank of a data-parallel
 * run renders exactly its share of the global batch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data.h"
#include "fixture.h"
#include "fvlm_config.h"
#include "ontology.h"
#include "pipeline.h"
#include "test.h"
#include "testdb.h"

enum { B = 5, MAX_JOBS = 256 };

static TrainSet g_set;
static Tokenizer g_tok;
static Ontology *g_onto;
static Db *g_db;
static int g_train[64], g_valid[64], g_ntrain, g_nvalid;
static char g_path[128];
static NetCfg g_nc;
static DataCfg g_d = {.in_z = 16, .in_y = 32, .in_x = 32, .pz = 4, .py = 8, .px = 8, .n_win = 2,
                      .hu_lo = {-1150, -160}, .hu_hi = {350, 240}, .margin_mm = {15, 20, 20},
                      .flip_p = 0.3, .aug_scale = 0.1, .aug_shift = 0.05, .coverage = 1,
                      .text_max_len = 32};

/* One batch as a hash of everything the network and the loss read. */
typedef struct Seen {
    int kind;
    int64_t step;
    uint64_t h;
    Rng rng;
} Seen;

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static uint64_t hash_batch(const BatchBuf *bb, int n)
{
    const NetBatch *b = &bb->nb;
    int A = g_set.n_anat, T = (16 / 4) * (32 / 8) * (32 / 8);
    uint64_t h = 1469598103934665603ull;
    h = fnv(h, bb->img, (size_t)n * 2 * 16 * 32 * 32 * sizeof(float));
    h = fnv(h, bb->tokbias, (size_t)n * A * T * sizeof(float));
    h = fnv(h, bb->inside, (size_t)n * A);
    h = fnv(h, bb->crop, (size_t)n * sizeof *bb->crop);
    h = fnv(h, &b->nr, sizeof b->nr);
    h = fnv(h, b->rb, (size_t)b->nr * sizeof(int));
    h = fnv(h, b->ra, (size_t)b->nr * sizeof(int));
    h = fnv(h, b->rtext, (size_t)b->nr * sizeof(int));
    h = fnv(h, b->rabn, (size_t)b->nr);
    h = fnv(h, &b->ng, sizeof b->ng);
    h = fnv(h, b->goff, (size_t)(b->ng + 1) * sizeof(int));
    h = fnv(h, b->grow, (size_t)(b->ng ? b->goff[b->ng] : 0) * sizeof(int));
    h = fnv(h, b->toff, (size_t)(b->nt + 1) * sizeof(int));
    h = fnv(h, b->tids, (size_t)b->toff[b->nt] * sizeof(int));
    return h;
}

static void setup(void)
{
    FvErr e = {0};
    snprintf(g_path, sizeof g_path, "/tmp/fvlm-test-pipeline-%d.db", (int)getpid());
    FixtureOpts o = {.n_studies = 40, .seed = 5, .p_abnormal = 0.5, .chinese = 1};
    CHECK_OK(fixture_corpus(g_path, &o, &e), &e);
    CHECK_OK(onto_load(&g_onto, &e), &e);
    CHECK_OK(db_open(&g_db, g_path, DB_MUST_EXIST, &e), &e);
    CHECK_OK(trainset_load(&g_set, g_db, g_onto, LOSS_FINE_FN_DISEASE, 1, NULL, 0, -1, NULL, &e),
             &e);
    const char **texts;
    int nt;
    TokConfig tc = {512, 2, 4};
    CHECK(trainset_train_texts(&g_set, &texts, &nt) == 0, "out of memory");
    CHECK_OK(tok_build(&g_tok, texts, nt, &tc, &e), &e);
    free(texts);
    CHECK_OK(trainset_tokenize(&g_set, &g_tok, 32, &e), &e);
    for (int i = 0; i < g_set.n_st; i++) {
        if (g_set.st[i].split == SPLIT_TRAIN)
            g_train[g_ntrain++] = i;
        else if (g_set.st[i].split == SPLIT_VALID)
            g_valid[g_nvalid++] = i;
    }
    CHECK(g_ntrain > 2 * B && g_nvalid > 0, "fixture: %d train, %d valid studies", g_ntrain,
          g_nvalid);
    g_nc = (NetCfg){.loss = LOSS_FINE_FN_DISEASE, .in_c = 2, .in_z = 16, .in_y = 32, .in_x = 32,
                    .pz = 4, .py = 8, .px = 8, .width = 16, .depth = 1, .heads = 2, .mlp = 16,
                    .keep = {1}, .n_keep = 1, .pool_heads = 2, .embed = 8, .t_width = 8,
                    .t_depth = 1, .t_heads = 2, .t_mlp = 8, .t_max_len = 32, .t_mean = 1,
                    .hist = 0, .vocab = g_tok.n, .n_anat = g_set.n_anat, .temp_init = 0.07f};
}

static int64_t spe(void) { return (g_ntrain + B - 1) / B - (g_ntrain % B == 1); }

/* The plain loop's batches (the trainer before the pipeline): shuffle at
 * each epoch's start, crops drawn in study order, validation after each
 * epoch's last step. */
static int reference(Seen *out, int64_t total)
{
    FvErr e = {0};
    BatchBuf bb;
    CHECK_OK(batch_alloc(&bb, &g_set, &g_nc, B, &e), &e);
    Rng r;
    rng_seed(&r, 11, 1);
    int order[64];
    memcpy(order, g_train, sizeof order);
    int n = 0;
    for (int64_t step = 0; step < total; step++) {
        int64_t pos = step % spe();
        if (pos == 0)
            rng_shuffle_int(&r, order, (size_t)g_ntrain);
        int first = (int)pos * B, nb = g_ntrain - first < B ? g_ntrain - first : B;
        batch_build(&bb, &g_set, &g_d, order + first, nb, 1, &r);
        out[n++] = (Seen){PIPE_TRAIN, step, hash_batch(&bb, nb), r};
        if ((step + 1) % spe())
            continue;
        for (int i = 0; i < g_nvalid; i += B) {
            int m = g_nvalid - i < B ? g_nvalid - i : B;
            batch_build(&bb, &g_set, &g_d, g_valid + i, m, 0, &r);
            out[n++] = (Seen){PIPE_VALID, step, hash_batch(&bb, m), r};
        }
    }
    batch_free(&bb);
    return n;
}

/* The pipeline's jobs from step `from` (with the reference's state after
 * step from - 1), the consumer pausing `pause_us` at random after each. */
static int through_pipe(Seen *out, int64_t total, int loaders, int prefetch, int64_t from,
                        const Rng *rng, const int *order, int pause_us)
{
    FvErr e = {0};
    PipeCfg pc = {.set = &g_set, .data = &g_d, .net = &g_nc, .batch = B, .valid_idx = g_valid,
                  .n_train = g_ntrain, .n_valid = g_nvalid, .spe = spe(), .total = total,
                  .loaders = loaders, .prefetch = prefetch, .rank = 0, .ranks = 1};
    Pipe *p;
    CHECK_OK(pipe_start(&p, &pc, rng, order, from, &e), &e);
    int n = 0;
    Rng jitter;
    rng_seed(&jitter, (uint64_t)loaders * 31 + (uint64_t)prefetch, 7);
    PipeJob *j;
    while ((j = pipe_next(p)) && n < MAX_JOBS) {
        out[n++] = (Seen){j->kind, j->step, hash_batch(j->bb, j->n), j->rng};
        if (pause_us)
            usleep((useconds_t)rng_below(&jitter, (uint64_t)pause_us));
        pipe_release(p, j);
    }
    pipe_free(&p);
    return n;
}

static void check_same(const Seen *ref, int nref, const Seen *got, int ngot, const char *what)
{
    CHECK(nref == ngot, "%s: %d jobs, the plain loop made %d", what, ngot, nref);
    for (int i = 0; i < nref; i++) {
        CHECK(ref[i].kind == got[i].kind && ref[i].step == got[i].step,
              "%s: job %d is %s of step %lld, expected %s of step %lld", what, i,
              got[i].kind ? "validation" : "training", (long long)got[i].step,
              ref[i].kind ? "validation" : "training", (long long)ref[i].step);
        CHECK(ref[i].h == got[i].h, "%s: job %d (step %lld) differs from the plain loop's batch",
              what, i, (long long)ref[i].step);
        if (ref[i].kind == PIPE_TRAIN)
            CHECK(memcmp(&ref[i].rng, &got[i].rng, sizeof(Rng)) == 0,
                  "%s: the RNG state after step %lld differs", what, (long long)ref[i].step);
    }
}

static void test_pipeline_batches_equal_the_plain_loop_whatever_threads_and_timing(void)
{
    static Seen ref[MAX_JOBS], got[MAX_JOBS];
    int64_t total = 3 * spe() + 1; /* three epochs and a step */
    int nref = reference(ref, total);
    Rng r;
    rng_seed(&r, 11, 1);
    const int cfgs[][3] = {{0, 1, 0}, {1, 1, 0}, {1, 2, 300}, {2, 2, 0}, {3, 4, 500}, {4, 1, 200}};
    for (size_t k = 0; k < sizeof cfgs / sizeof cfgs[0]; k++) {
        char what[64];
        snprintf(what, sizeof what, "%d loaders, prefetch %d, pauses %d us", cfgs[k][0],
                 cfgs[k][1], cfgs[k][2]);
        int n = through_pipe(got, total, cfgs[k][0], cfgs[k][1], 0, &r, g_train, cfgs[k][2]);
        check_same(ref, nref, got, n, what);
    }
}

static void test_pipeline_started_at_a_step_continues_the_sequence(void)
{
    static Seen ref[MAX_JOBS], got[MAX_JOBS];
    int64_t total = 2 * spe() + 2;
    int nref = reference(ref, total);
    /* the state after step k - 1, as a checkpoint holds it: replay the
     * plain loop's draws up to there */
    for (int64_t k = 1; k < total; k += 3) {
        Rng r;
        rng_seed(&r, 11, 1);
        int order[64];
        memcpy(order, g_train, sizeof order);
        Crop crops[B];
        BatchBuf tmp = {.crop = crops};
        for (int64_t step = 0; step < k; step++) {
            int64_t pos = step % spe();
            if (pos == 0)
                rng_shuffle_int(&r, order, (size_t)g_ntrain);
            int first = (int)pos * B, nb = g_ntrain - first < B ? g_ntrain - first : B;
            batch_crops(&tmp, &g_set, &g_d, order + first, nb, 1, &r);
        }
        int skip = 0;
        while (!(ref[skip].kind == PIPE_TRAIN && ref[skip].step == k))
            skip++;
        int n = through_pipe(got, total, 2, 2, k, &r, order, 0);
        char what[64];
        snprintf(what, sizeof what, "started at step %lld", (long long)k);
        check_same(ref + skip, nref - skip, got, n, what);
    }
}

static void test_pipeline_ranks_render_their_share_of_the_global_batch(void)
{
    FvErr e = {0};
    int64_t total = spe() + 1;
    BatchBuf whole;
    CHECK_OK(batch_alloc(&whole, &g_set, &g_nc, B, &e), &e);
    for (int ranks = 2; ranks <= 3; ranks++) {
        Pipe *p[3];
        for (int rk = 0; rk < ranks; rk++) {
            PipeCfg pc = {.set = &g_set, .data = &g_d, .net = &g_nc, .batch = B,
                          .valid_idx = g_valid, .n_train = g_ntrain, .n_valid = g_nvalid,
                          .spe = spe(), .total = total, .loaders = 1, .prefetch = 2, .rank = rk,
                          .ranks = ranks};
            Rng r;
            rng_seed(&r, 11, 1);
            CHECK_OK(pipe_start(&p[rk], &pc, &r, g_train, 0, &e), &e);
        }
        size_t vox = 2 * 16 * 32 * 32;
        for (int job = 0;; job++) {
            PipeJob *j[3];
            for (int rk = 0; rk < ranks; rk++)
                j[rk] = pipe_next(p[rk]);
            if (!j[0])
                break;
            /* the whole batch, rendered by the plain functions from rank 0's plan */
            int covered = 0, cand = 0;
            for (int rk = 0; rk < ranks; rk++) {
                CHECK(j[rk] && j[rk]->n == j[0]->n && j[rk]->lo == covered &&
                          memcmp(j[rk]->idx, j[0]->idx, (size_t)j[0]->n * sizeof(int)) == 0,
                      "%d ranks, job %d: rank %d's batch is not its share of rank 0's", ranks,
                      job, rk);
                int m = j[rk]->hi - j[rk]->lo;
                memcpy(whole.crop + covered, j[rk]->bb->crop, (size_t)m * sizeof(Crop));
                covered = j[rk]->hi;
            }
            CHECK(covered == j[0]->n, "%d ranks, job %d: shares cover %d of %d studies", ranks,
                  job, covered, j[0]->n);
            batch_render(&whole, &g_set, &g_d, j[0]->idx, j[0]->n);
            int nc = batch_candidates(&whole, &g_set, &g_d, j[0]->idx, j[0]->n);
            for (int rk = 0; rk < ranks; rk++) {
                const PipeJob *x = j[rk];
                int m = x->hi - x->lo;
                CHECK(memcmp(x->bb->img, whole.img + (size_t)x->lo * vox,
                             (size_t)m * vox * sizeof(float)) == 0,
                      "%d ranks, job %d: rank %d's images differ from the whole batch's", ranks,
                      job, rk);
                for (int q = 0; q < x->nc; q++, cand++)
                    CHECK(cand < nc && x->bb->cand_s[q] == whole.cand_s[cand] &&
                              x->bb->rb[q] + x->lo == whole.rb[cand],
                          "%d ranks, job %d: rank %d's candidate %d is not the whole batch's",
                          ranks, job, rk, q);
            }
            CHECK(cand == nc, "%d ranks, job %d: the ranks list %d candidates, the whole batch %d",
                  ranks, job, cand, nc);
            for (int rk = 0; rk < ranks; rk++)
                pipe_release(p[rk], j[rk]);
        }
        for (int rk = 0; rk < ranks; rk++)
            pipe_free(&p[rk]);
    }
    batch_free(&whole);
}

static void test_pipeline_share_splits_a_batch_in_rank_order(void)
{
    for (int n = 1; n <= 12; n++)
        for (int ranks = 1; ranks <= 5; ranks++) {
            int at = 0;
            for (int r = 0; r < ranks; r++) {
                int lo, hi;
                pipe_share(n, r, ranks, &lo, &hi);
                CHECK(lo == at && hi >= lo && hi - lo <= (n + ranks - 1) / ranks,
                      "pipe_share(%d, %d, %d) = [%d, %d)", n, r, ranks, lo, hi);
                at = hi;
            }
            CHECK(at == n, "pipe_share: %d ranks cover %d of %d", ranks, at, n);
        }
}

int main(void)
{
    setup();
    RUN(test_pipeline_batches_equal_the_plain_loop_whatever_threads_and_timing);
    RUN(test_pipeline_started_at_a_step_continues_the_sequence);
    RUN(test_pipeline_ranks_render_their_share_of_the_global_batch);
    RUN(test_pipeline_share_splits_a_batch_in_rank_order);
    tok_free(&g_tok);
    trainset_free(&g_set);
    db_close(&g_db);
    onto_free(&g_onto);
    test_remove_db(g_path);
    return test_finish();
}
