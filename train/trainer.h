/* trainer: `fvlm train`: settings, the training loop, checkpoints and the
 * run record.
 *
 * Every size and rate is a configuration value (sections model, tokenizer,
 * data, aug, train); the presets of schemas/preset_*.ini set them all, a
 * --config file and --set override them. The loop: seeded data order and
 * augmentation (one RNG stream, saved in checkpoints), AdamW with warm-up
 * and cosine decay, gradient clipping, validation loss per epoch, metrics
 * (loss, lr, grad_norm, samples_per_s per step; val_loss per epoch) and the
 * run in the database, a `models` row for the checkpoint written. A resumed
 * run continues from the checkpoint's step with its weights, AdamW moments,
 * RNG state and epoch order, so it ends with the same bytes as a run that was
 * never stopped. */
#ifndef FVLM_TRAINER_H
#define FVLM_TRAINER_H

#include <signal.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "data.h"
#include "error.h"
#include "net.h"
#include "optim.h"
#include "tokenizer.h"

typedef struct TrainSettings {
    NetCfg net;                /* vocab and n_anat come from the corpus */
    DataCfg data;
    TokConfig tok;
    OptCfg opt;                /* warmup from config; total from epochs or steps */
    int batch;                 /* studies per step */
    int epochs;
    int64_t steps;             /* > 0: this many steps instead of epochs */
    int64_t seed;
    int threads;               /* OpenBLAS threads; 0 = every core */
    double val_fraction;       /* held out of train when no study is `valid` */
    int save_every;            /* steps between checkpoints; 0 = each epoch end */
    int log_every;             /* steps between log lines */
    /* the input pipeline (pipeline.h); neither changes a result, so neither
     * is part of a checkpoint's settings, and both may be left out */
    int loaders;               /* train.loaders: loader threads (0: batches made on the
                                * training thread, between steps); default 1 */
    int prefetch;              /* train.prefetch: batches made ahead; default 2 */
} TrainSettings;

/* Reads every setting (all must be present: the presets set them all). */
int train_settings(Config *c, TrainSettings *s, FvErr *e);
/* The settings as INI text (canonical: the same settings give the same text). */
int train_settings_ini(const TrainSettings *s, Buf *b);

typedef struct TrainArgs {
    const char *db_path, *out_path, *preset;
    int resume;                /* continue from out_path */
    int deterministic;         /* threads must be explicit; resume refuses any change */
    int argc;
    char **argv;               /* the command line, for the run record */
    volatile sig_atomic_t *stop; /* set (by a signal) to save and stop after the current step */
} TrainArgs;

typedef struct TrainResult {
    int64_t run_id, model_id;
    int64_t step, steps;
    double loss, val_loss;     /* last step's loss (mean of the last epoch), last validation */
    double seconds;
    double loop_s;             /* of which in the epochs: steps, validation, checkpoints */
    double wait_s;             /* of which the steps waited for their batches */
    double valid_s, ckpt_s;    /* of which validation, checkpoints */
    int64_t studies;           /* training studies the steps of this process took */
    int stopped;               /* stopped by *stop before the end */
    int n_train, n_valid, n_anat, vocab;
    size_t params;
} TrainResult;

int train_run(const TrainArgs *a, Config *cfg, TrainResult *res, FvErr *e);

#endif
