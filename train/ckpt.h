/* ckpt: model checkpoints (safetensors).
 *
 * Tensors: every parameter under its table name (net.h), in float32; when
 * the training state is saved too, the AdamW moments as "opt.m.<name>" and
 * "opt.v.<name>", the data RNG as "train.rng" (U64, 4) and the current
 * epoch's study order as "train.order" (I32). Metadata (strings, so Python's
 * safetensors reads them): fvlm.format, fvlm.net (the network config, JSON),
 * fvlm.vocab (JSON array), fvlm.anatomies (JSON array of anatomy ids),
 * fvlm.step, fvlm.epoch, fvlm.loss, fvlm.preset, fvlm.config (the effective
 * configuration, INI text), fvlm.corpus (signature of the training data),
 * fvlm.threads, fvlm.deterministic, fvlm.version; fvlm.ranks (data-parallel
 * runs only: the processes that trained it). Nothing in a checkpoint
 * depends on the clock, so two runs that reach the same state write the
 * same bytes. */
#ifndef FVLM_CKPT_H
#define FVLM_CKPT_H

#include <stdint.h>

#include "error.h"
#include "net.h"
#include "rng.h"
#include "safetensors.h"
#include "tokenizer.h"

#define CKPT_FORMAT "fvlm-model/1"

typedef struct CkptState {
    int64_t step, epoch;
    const Rng *rng;             /* NULL: no training state */
    const int *order;           /* (n_order) */
    int n_order;
} CkptState;

typedef struct CkptMeta {
    const char *preset, *config_ini, *corpus_sig;
    int threads, deterministic;
    int ranks;                  /* data-parallel processes (fvlm.ranks, written when > 1) */
} CkptMeta;

/* Writes path atomically. anat_ids: the model's n_anat anatomies. */
int ckpt_save(const char *path, const Net *n, const Tokenizer *t, const char *const *anat_ids,
              int n_anat, const CkptState *s, const CkptMeta *m, FvErr *e);

/* Reads the network config of an open checkpoint (format checked). */
int ckpt_config(const StFile *f, NetCfg *cfg, FvErr *e);
/* Copies parameters (and the AdamW moments when n has them and want_opt)
 * into an allocated net whose config matches. */
int ckpt_load_params(const StFile *f, Net *n, int want_opt, FvErr *e);
/* The anatomy ids listed in the metadata; *ids is an array of n strings
 * (free each, then the array). */
int ckpt_anatomies(const StFile *f, char ***ids, int *n, FvErr *e);
/* An integer metadata value. */
int ckpt_meta_int(const StFile *f, const char *key, int64_t *v, FvErr *e);
/* The training state: rng and order (n_order studies). */
int ckpt_load_state(const StFile *f, Rng *r, int *order, int n_order, FvErr *e);

#endif
