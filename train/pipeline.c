#include "pipeline.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"

enum { SLOT_FREE, SLOT_BUSY, SLOT_READY };

typedef struct Slot {
    PipeJob job;
    BatchBuf bb;
    int *idx;                  /* (batch) */
    int *order;                /* (n_train) */
    int state;
    int64_t seq;               /* the job it holds */
} Slot;

struct Pipe {
    PipeCfg c;
    Slot *slot;
    int n_slot;
    pthread_t *th;
    int n_th;
    pthread_mutex_t mu;
    pthread_cond_t ready, freed;
    int quit;
    /* the planner: the state of the next job to plan */
    Rng rng;
    int *order;                /* (n_train) */
    Crop *crops;               /* (batch) the global batch's crops */
    int64_t plan_step;         /* next training step */
    int plan_valid;            /* next validation batch of the epoch just ended, -1: none */
    int plan_done;
    int64_t next_plan, next_take; /* job sequence numbers */
};

void pipe_share(int n, int rank, int ranks, int *lo, int *hi)
{
    /* contiguous shares in rank order, so that the rows of the global batch
     * (study order) are the ranks' rows one after the other */
    *lo = (int)((int64_t)n * rank / ranks);
    *hi = (int)((int64_t)n * (rank + 1) / ranks);
}

/* Plans the next job into s (under the lock): every draw from the data RNG
 * happens here, in job order. Returns 0 when the run has no more jobs. */
static int plan(Pipe *p, Slot *s)
{
    const PipeCfg *c = &p->c;
    PipeJob *j = &s->job;
    memset(j, 0, sizeof *j);
    int B = c->batch;
    if (p->plan_valid >= 0) {
        int first = p->plan_valid * B;
        j->kind = PIPE_VALID;
        j->step = p->plan_step - 1;
        j->epoch = j->step / c->spe;
        j->n = c->n_valid - first < B ? c->n_valid - first : B;
        memcpy(s->idx, c->valid_idx + first, (size_t)j->n * sizeof *s->idx);
        /* no augmentation: the plain crops, no draws */
        BatchBuf tmp = {.crop = p->crops};
        batch_crops(&tmp, c->set, c->data, s->idx, j->n, 0, &p->rng);
        p->plan_valid++;
        j->last_valid = p->plan_valid * B >= c->n_valid;
        if (j->last_valid)
            p->plan_valid = -1;
    } else if (p->plan_step < c->total) {
        int64_t pos = p->plan_step % c->spe;
        if (pos == 0)
            rng_shuffle_int(&p->rng, p->order, (size_t)c->n_train);
        int first = (int)(pos * B);
        j->kind = PIPE_TRAIN;
        j->step = p->plan_step;
        j->epoch = p->plan_step / c->spe;
        j->n = c->n_train - first < B ? c->n_train - first : B;
        memcpy(s->idx, p->order + first, (size_t)j->n * sizeof *s->idx);
        BatchBuf tmp = {.crop = p->crops};
        batch_crops(&tmp, c->set, c->data, s->idx, j->n, 1, &p->rng);
        j->rng = p->rng;
        memcpy(s->order, p->order, (size_t)c->n_train * sizeof *s->order);
        j->order = s->order;
        p->plan_step++;
        if (p->plan_step % c->spe == 0 && c->n_valid > 0 && p->plan_step <= c->total)
            p->plan_valid = 0;
    } else {
        p->plan_done = 1;
        return 0;
    }
    j->idx = s->idx;
    pipe_share(j->n, c->rank, c->ranks, &j->lo, &j->hi);
    memcpy(s->bb.crop, p->crops + j->lo, (size_t)(j->hi - j->lo) * sizeof *p->crops);
    j->bb = &s->bb;
    return 1;
}

/* Renders a planned job's local studies (no lock: reads only the training
 * set and the slot). */
static void render(const Pipe *p, Slot *s)
{
    const PipeCfg *c = &p->c;
    PipeJob *j = &s->job;
    int n = j->hi - j->lo;
    const int *idx = j->idx + j->lo;
    batch_render(&s->bb, c->set, c->data, idx, n);
    j->nc = batch_candidates(&s->bb, c->set, c->data, idx, n);
    if (c->ranks == 1)
        batch_rows(&s->bb, c->set, n, j->nc);
}

/* Loader threads run at a lower priority than the step's threads (nice +5
 * relative to the process: about a third of a step thread's share when both
 * want a core), so on a machine with as many cores as step threads they take
 * the time the step leaves idle (its single-threaded element-wise kernels,
 * the optimiser, waits) rather than slowing its matrix products. */
enum { LOADER_NICE = 5 };

static void *loader(void *arg)
{
    Pipe *p = arg;
    errno = 0;
    int nice_now = getpriority(PRIO_PROCESS, 0);
    if (errno == 0) {
        int want = nice_now + LOADER_NICE > 19 ? 19 : nice_now + LOADER_NICE;
        /* Linux: a thread id as the "process" sets that thread's nice alone */
        if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), want) != 0)
            log_debug("pipeline: loader thread keeps its priority: %s", strerror(errno));
    }
    pthread_mutex_lock(&p->mu);
    while (!p->quit && !p->plan_done) {
        Slot *s = &p->slot[p->next_plan % p->n_slot];
        if (s->state != SLOT_FREE) {
            pthread_cond_wait(&p->freed, &p->mu);
            continue;
        }
        if (!plan(p, s))
            break;
        s->seq = p->next_plan++;
        s->state = SLOT_BUSY;
        pthread_mutex_unlock(&p->mu);
        render(p, s);
        pthread_mutex_lock(&p->mu);
        s->state = SLOT_READY;
        pthread_cond_broadcast(&p->ready);
    }
    /* the consumer may be waiting for a job that will never come */
    pthread_cond_broadcast(&p->ready);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

PipeJob *pipe_next(Pipe *p)
{
    double t0 = now_seconds();
    Slot *s = &p->slot[p->next_take % p->n_slot];
    if (!p->n_th) {
        if (p->plan_done || !plan(p, s))
            return NULL;
        s->seq = p->next_plan++;
        render(p, s);
        s->state = SLOT_READY;
    } else {
        pthread_mutex_lock(&p->mu);
        while (!(s->state == SLOT_READY && s->seq == p->next_take)) {
            if (p->plan_done && p->next_plan <= p->next_take) {
                pthread_mutex_unlock(&p->mu);
                return NULL;
            }
            pthread_cond_wait(&p->ready, &p->mu);
        }
        pthread_mutex_unlock(&p->mu);
    }
    p->next_take++;
    s->job.wait = now_seconds() - t0;
    return &s->job;
}

void pipe_release(Pipe *p, PipeJob *j)
{
    Slot *s = (Slot *)((char *)j - offsetof(Slot, job));
    pthread_mutex_lock(&p->mu);
    s->state = SLOT_FREE;
    pthread_cond_broadcast(&p->freed);
    pthread_mutex_unlock(&p->mu);
}

void pipe_free(Pipe **pp)
{
    Pipe *p = *pp;
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->freed);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_th; i++)
        pthread_join(p->th[i], NULL);
    for (int i = 0; i < p->n_slot; i++) {
        batch_free(&p->slot[i].bb);
        free(p->slot[i].idx);
        free(p->slot[i].order);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->ready);
    pthread_cond_destroy(&p->freed);
    free(p->slot);
    free(p->th);
    free(p->order);
    free(p->crops);
    free(p);
    *pp = NULL;
}

int pipe_start(Pipe **out, const PipeCfg *cfg, const Rng *rng, const int *order, int64_t step,
               FvErr *e)
{
    *out = NULL;
    if (cfg->batch < 1 || cfg->spe < 1 || cfg->n_train < 1 || cfg->loaders < 0 ||
        cfg->prefetch < 1 || cfg->ranks < 1 || cfg->rank < 0 || cfg->rank >= cfg->ranks)
        return err_set(e, FV_EINTERNAL, "pipeline: bad configuration");
    Pipe *p = calloc(1, sizeof *p);
    if (!p)
        return err_set(e, FV_ENOMEM, "pipeline: out of memory");
    p->c = *cfg;
    p->rng = *rng;
    p->plan_step = step;
    p->plan_valid = -1;
    p->n_slot = cfg->loaders ? cfg->prefetch + 1 : 1;
    p->slot = calloc((size_t)p->n_slot, sizeof *p->slot);
    p->order = malloc((size_t)cfg->n_train * sizeof *p->order);
    p->crops = malloc((size_t)cfg->batch * sizeof *p->crops);
    p->th = calloc((size_t)(cfg->loaders ? cfg->loaders : 1), sizeof *p->th);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->ready, NULL);
    pthread_cond_init(&p->freed, NULL);
    if (!p->slot || !p->order || !p->crops || !p->th) {
        pipe_free(&p);
        return err_set(e, FV_ENOMEM, "pipeline: out of memory");
    }
    memcpy(p->order, order, (size_t)cfg->n_train * sizeof *p->order);
    /* a rank's share of a batch is at most ceil(batch / ranks) studies */
    int local = (cfg->batch + cfg->ranks - 1) / cfg->ranks;
    for (int i = 0; i < p->n_slot; i++) {
        Slot *s = &p->slot[i];
        s->idx = malloc((size_t)cfg->batch * sizeof *s->idx);
        s->order = malloc((size_t)cfg->n_train * sizeof *s->order);
        if (!s->idx || !s->order || batch_alloc(&s->bb, cfg->set, cfg->net, local, e)) {
            pipe_free(&p);
            return e->code ? -1 : err_set(e, FV_ENOMEM, "pipeline: out of memory");
        }
    }
    for (int i = 0; i < cfg->loaders; i++) {
        if (pthread_create(&p->th[i], NULL, loader, p) != 0) {
            pipe_free(&p);
            return err_set(e, FV_EIO, "pipeline: cannot start loader thread %d", i + 1);
        }
        p->n_th++;
    }
    *out = p;
    return 0;
}
