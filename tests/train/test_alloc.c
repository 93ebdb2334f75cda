/* A training step allocates nothing: batch assembly, forward, backward,
 * clipping and AdamW run in memory sized before the loop. malloc, calloc
 * and realloc are interposed (glibc's __libc_* underneath) and counted
 * while the steps run, by caller: fvlm's code must make none. OpenBLAS's
 * own small-matrix kernels (0.3.21, AVX-512) malloc a packing buffer per
 * call; those are counted apart and reported, not failed. Skipped under
 * AddressSanitizer, which owns malloc. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data.h"
#include "fixture.h"
#include "fvlm_config.h"
#include "net.h"
#include "ontology.h"
#include "optim.h"
#include "test.h"
#include "testdb.h"

#if defined(__SANITIZE_ADDRESS__)
int main(void)
{
    t_current = "test_training_steps_allocate_nothing";
    printf("%s: skipped: AddressSanitizer owns malloc\n", t_current);
    return 77;
}
#else
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

static volatile int g_counting;
static volatile long g_allocs, g_blas_allocs;

/* Counts one allocation made from the code at address caller. */
static void count(void *caller)
{
    if (!g_counting)
        return;
    Dl_info info;
    if (dladdr(caller, &info) && info.dli_fname && strstr(info.dli_fname, "openblas"))
        g_blas_allocs++;
    else
        g_allocs++;
}

void *malloc(size_t n)
{
    count(__builtin_return_address(0));
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    count(__builtin_return_address(0));
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    count(__builtin_return_address(0));
    return __libc_realloc(p, n);
}

static void test_training_steps_allocate_nothing(void)
{
    char db_path[128];
    snprintf(db_path, sizeof db_path, "/tmp/fvlm-test-alloc-%d.db", (int)getpid());
    FvErr e = {0};
    FixtureOpts o = {.n_studies = 24, .seed = 2, .p_abnormal = 0.5, .chinese = 1, .all_train = 1};
    Ontology *onto;
    Db *db;
    TrainSet c;
    CHECK_OK(fixture_corpus(db_path, &o, &e), &e);
    CHECK_OK(onto_load(&onto, &e), &e);
    CHECK_OK(db_open(&db, db_path, DB_MUST_EXIST, &e), &e);
    CHECK_OK(trainset_load(&c, db, onto, LOSS_FINE_FN_DISEASE, 1, NULL, 0, -1, NULL, &e), &e);
    const char **texts;
    int nt;
    Tokenizer t;
    TokConfig tc = {512, 2, 4};
    CHECK(trainset_train_texts(&c, &texts, &nt) == 0, "out of memory");
    CHECK_OK(tok_build(&t, texts, nt, &tc, &e), &e);
    free(texts);
    CHECK_OK(trainset_tokenize(&c, &t, 32, &e), &e);
    NetCfg nc = {.loss = LOSS_FINE_FN_DISEASE, .in_c = 1, .in_z = 16, .in_y = 32, .in_x = 32, .pz = 4,
                 .py = 8, .px = 8, .width = 16, .depth = 2, .heads = 2, .mlp = 32, .keep = {1, 2},
                 .n_keep = 2, .pool_heads = 2, .embed = 16, .t_width = 16, .t_depth = 1,
                 .t_heads = 2, .t_mlp = 32, .t_max_len = 32, .t_mean = 1, .vocab = t.n,
                 .n_anat = c.n_anat, .temp_init = 0.07f};
    DataCfg d = {.in_z = 16, .in_y = 32, .in_x = 32, .pz = 4, .py = 8, .px = 8, .n_win = 1, .hu_lo = {-1150},
                 .hu_hi = {350}, .margin_mm = {15, 20, 20}, .flip_p = 0.2, .aug_scale = 0.1,
                 .aug_shift = 0.05, .coverage = 1, .text_max_len = 32};
    OptCfg oc = {.lr = 1e-3, .lr_min = 1e-5, .warmup = 2, .total = 10, .beta1 = 0.9,
                 .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01, .clip = 1.0};
    NetCap cap = trainset_capacity(&c, 8);
    Net n;
    BatchBuf bb;
    CHECK_OK(net_alloc(&n, &nc, &cap, 1, &e), &e);
    CHECK_OK(batch_alloc(&bb, &c, &nc, 8, &e), &e);
    Rng r;
    rng_seed(&r, 4, 0);
    net_init(&n, &r);
    int idx[24];
    for (int i = 0; i < 24; i++)
        idx[i] = i;
    long allocs = 0;
    int steps = 0;
    for (int s = 0; s < 6; s++) {
        /* the first step warms OpenBLAS up (its buffers); count the others */
        g_counting = s > 0;
        batch_build(&bb, &c, &d, idx + (s % 3) * 8, 8, 1, &r);
        memset(n.grads, 0, n.n_floats * sizeof(float));
        float loss = net_step(&n, &bb.nb, 1);
        optim_clip(&n, &oc);
        optim_adamw(&n, &oc, optim_lr(&oc, s), s + 1);
        optim_clamp_temperature(&n);
        g_counting = 0;
        allocs = g_allocs;
        steps += isfinite(loss) && bb.nb.ng > 0;
    }
    CHECK(steps == 6, "only %d of 6 steps had a finite loss over some group", steps);
    CHECK(allocs == 0, "%ld allocations by fvlm in 5 training steps", allocs);
    printf("5 training steps: %ld allocations by fvlm, %ld inside OpenBLAS\n", allocs,
           g_blas_allocs);
    batch_free(&bb);
    net_free(&n);
    tok_free(&t);
    trainset_free(&c);
    db_close(&db);
    onto_free(&onto);
    test_remove_db(db_path);
}

int main(void)
{
    RUN(test_training_steps_allocate_nothing);
    return test_finish();
}
#endif
