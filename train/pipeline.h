/* pipeline: the training input pipeline: the next batches are read,
 * cropped, augmented, resampled and summarised on background threads while
 * the current step runs.
 *
 * The run is a fixed sequence of jobs: each training step's batch, and
 * after each epoch's last step the validation batches. One planner (under
 * a lock, in job order) does everything that draws from the data RNG: the
 * epoch's shuffle and each batch's crops, exactly as the loop without a
 * pipeline drew them; loader threads then render the planned studies into
 * the job's slot (one BatchBuf per slot, a ring of slots). So a batch's
 * content depends only on the seed, the epoch and the step, never on which
 * thread rendered it or when. The consumer takes the jobs in order; each
 * training job carries the RNG state after its draws and its epoch's study
 * order, which is what a checkpoint after that step saves.
 *
 * Volumes are read from the memory-mapped tensor shards (data.h): the page
 * cache holds them between epochs, nothing is decoded twice.
 *
 * Data parallel (ranks > 1): every rank plans the whole global batch (the
 * same draws on every rank) and renders only its share of the studies,
 * [lo, hi) of the batch; rows and groups of the global batch are then the
 * trainer's to build (dist.h). With one rank the loader also lists the
 * batch's rows, groups and texts (batch_rows). */
#ifndef FVLM_PIPELINE_H
#define FVLM_PIPELINE_H

#include <stdint.h>

#include "data.h"
#include "error.h"
#include "rng.h"

enum { PIPE_TRAIN = 0, PIPE_VALID = 1 };

typedef struct PipeCfg {
    const TrainSet *set;
    const DataCfg *data;
    const NetCfg *net;         /* for the batch buffers */
    int batch;                 /* studies per global batch */
    const int *valid_idx;      /* (n_valid) validation studies, in order */
    int n_train, n_valid;
    int64_t spe, total;        /* steps per epoch, in all */
    int loaders;               /* loader threads; 0: each job is made in pipe_next */
    int prefetch;              /* jobs made ahead of the one in use (>= 1) */
    int rank, ranks;           /* this process's share of each batch */
} PipeCfg;

typedef struct PipeJob {
    int kind;                  /* PIPE_TRAIN, PIPE_VALID */
    int64_t step;              /* train: the step it feeds (0-based); valid: the epoch's last */
    int64_t epoch;             /* 0-based */
    int last_valid;            /* valid: the epoch's last validation batch */
    int n;                     /* studies in the global batch */
    const int *idx;            /* (n) the global batch's studies */
    int lo, hi;                /* this rank's studies: idx[lo .. hi) */
    int nc;                    /* ranks > 1: candidate rows of the local studies (bb.rb/ra/
                                * cand_s, batch_candidates); ranks == 1: rows in bb.nb */
    BatchBuf *bb;              /* the local studies, rendered */
    Rng rng;                   /* train: the data RNG after this batch's draws */
    const int *order;          /* train: (n_train) the epoch's study order */
    double wait;               /* seconds pipe_next waited for it */
} PipeJob;

typedef struct Pipe Pipe;

/* Starts the pipeline at step (a resumed run's), with the data RNG and the
 * current epoch's order as they were after step - 1 (order is the training
 * studies in their initial order when step is 0). */
int pipe_start(Pipe **p, const PipeCfg *cfg, const Rng *rng, const int *order, int64_t step,
               FvErr *e);
/* The next job, in order, once it is made; NULL when the run has no more. */
PipeJob *pipe_next(Pipe *p);
/* Gives the job's slot back for a later job. */
void pipe_release(Pipe *p, PipeJob *j);
/* Stops the loaders (work in flight is dropped) and frees everything. */
void pipe_free(Pipe **p);
/* This rank's share [lo, hi) of a batch of n studies. */
void pipe_share(int n, int rank, int ranks, int *lo, int *hi);

#endif
