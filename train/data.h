/* data: the training data of the corpus database, and its preprocessing.
 *
 * trainset_load reads what align and ingest produced (schemas/corpus.sql):
 * studies with a volume, a mask and a `_union` region; their `samples` rows
 * (fine modes) or report text (global mode); the region box of every
 * anatomy. Each study's CT (int16 HU) and mask (uint8 TotalSegmentator ids)
 * are memory-mapped from `<db>.tensors/<shard>`, checked against the
 * database's geometry first. A study that fails a check is recorded with
 * run_error and left out; the load goes on.
 *
 * Preprocessing, as fVLM's: crop to the union box of the anatomies plus a
 * margin (fVLM: 5 slices in z and 20 voxels in y and x at 1 x 1 x 3 mm, so
 * 15 mm and 20 mm, scaled to the corpus spacing), resample to the model's
 * input size (trilinear for the CT, nearest for the mask; outside the volume
 * is air, -1024 HU), HU window mapped to [0, 1] (several windows: one input
 * channel each, as a radiologist reads lung, soft tissue and bone windows;
 * the clipping at each window's ends is a per-voxel nonlinearity that a
 * linear patch embedding cannot make itself). A token holds an anatomy
 * when any voxel of its patch does (the max-pooled mask). Training
 * augmentation: the crop box is scaled and shifted at random and each axis
 * flipped with probability flip_p; an anatomy takes part only when its
 * region box lies whole inside the crop. */
#ifndef FVLM_DATA_H
#define FVLM_DATA_H

#include <stdint.h>

#include "db.h"
#include "error.h"
#include "loss.h"
#include "net.h"
#include "ontology.h"
#include "rng.h"
#include "run.h"
#include "safetensors.h"
#include "strindex.h"
#include "tokenizer.h"

enum { SPLIT_TRAIN = 0, SPLIT_VALID = 1, SPLIT_TEST = 2 };

typedef struct DataCfg {
    int in_z, in_y, in_x;      /* model input, voxels */
    int pz, py, px;            /* patch, voxels */
    int n_win;                 /* HU windows, one input channel each */
    double hu_lo[NET_MAX_CHANNELS], hu_hi[NET_MAX_CHANNELS]; /* each window's range, HU */
    double margin_mm[3];       /* crop margin (z, y, x), mm */
    double flip_p;             /* per axis */
    double aug_scale;          /* crop extent scaled by a factor in [1 - s, 1 + s] */
    double aug_shift;          /* crop centre moved by up to this fraction of the extent */
    int coverage;              /* pooling bias log(share of the token's voxels in the
                                * anatomy); 0: the binary mask (fVLM) */
    int text_max_len;          /* tokens, [CLS] and [SEP] included */
    int scan_whole;            /* data.whole = scan: see trainset_load */
} DataCfg;

typedef struct TrainSample {
    int study;                 /* index into TrainSet.st */
    int anat;                  /* model anatomy, -1 when the model has none for it */
    uint8_t abnormal;
    uint8_t whole;             /* may train: always under the crop rule; under the scan rule
                                * when align found the anatomy whole in the scan */
    int text;                  /* index into TrainSet.text */
} TrainSample;

typedef struct TrainStudy {
    int64_t id;
    int split;                 /* SPLIT_* (train studies held out for validation: SPLIT_VALID) */
    int nz, ny, nx;            /* corpus grid, voxels */
    double sz, sy, sx;         /* spacing, mm */
    const int16_t *ct;         /* (nz, ny, nx) HU, inside a mapped shard */
    const uint8_t *mask;       /* (nz, ny, nx) TotalSegmentator ids */
    int box[6];                /* union box z0, z1, y0, y1, x0, x1 (half-open) */
    int s0, ns;                /* its samples: TrainSet.sm[s0 .. s0 + ns) */
    int report;                /* report text (global mode), -1 */
    int tokens;                /* text tokens of its samples (or report), for capacity */
} TrainStudy;

typedef struct TrainSet {
    const Ontology *onto;
    LossMode mode;
    TrainStudy *st;
    int n_st;
    TrainSample *sm;
    int n_sm;
    uint64_t *dis;             /* (n_sm, dis_words) disease sets */
    int dis_words;
    int *boxes;                /* (n_st, n_anat, 6) region box per model anatomy, z0 = -1 when none */
    /* model anatomies, in ontology order */
    int n_anat;
    int *anat_onto;            /* model anatomy -> ontology index */
    int *lab_off, *lab_anat;   /* TotalSegmentator id -> model anatomies (CSR, 256 ids) */
    /* texts, each once */
    char **text;
    int n_text;
    int cap_text;
    StrIndex text_ix;
    int *tok_off, *tok_ids;    /* tokens of each text, after trainset_tokenize */
    /* mapped shards */
    StFile **shard;
    int n_shard, cap_shard;
    StrIndex shard_ix;         /* by path */
    char tensor_dir[4096];
    int64_t n_skipped;         /* studies left out by checks */
    /* supervised: each study's label per task of findings.tsv (task_labels.h) */
    int8_t *task_label;        /* (n_st, n_tasks) 1, 0 or -1 (uncertain or none) */
    int n_tasks;
} TrainSet;

/* Loads the corpus for training. scan_whole (config data.whole = scan): a
 * sample trains only when align found its anatomy whole in the scan (not
 * touching the scan's border); 0 (data.whole = crop, fVLM's rule): any
 * sample, its anatomy's region being checked against each step's crop.
 * anat_ids (n_anat ids) fixes the model's anatomies (a resumed run); NULL
 * chooses them: every anatomy with a training sample that may train (fine
 * modes: and an abnormal one). study_id >= 0 loads that study alone (no
 * samples; for inference). Bad studies are recorded through run (may be
 * NULL: logged only). */
int trainset_load(TrainSet *c, Db *db, const Ontology *onto, LossMode mode, int scan_whole,
                  char **anat_ids, int n_anat, int64_t study_id, Run *run, FvErr *e);
void trainset_free(TrainSet *c);

/* Marks a seeded fraction of the training studies as validation when the
 * corpus has no `valid` study. Returns the number of validation studies. */
int trainset_split_validation(TrainSet *c, double fraction, uint64_t seed);
/* Texts of training studies, for building the vocabulary (pointers into c). */
int trainset_train_texts(const TrainSet *c, const char ***texts, int *n);
/* Tokenizes every text. */
int trainset_tokenize(TrainSet *c, const Tokenizer *t, int max_len, FvErr *e);
/* Order-independent hash of the training data (study ids, samples, texts),
 * stored in checkpoints to notice a changed corpus on resume. */
void trainset_signature(const TrainSet *c, char hex[65]);

/* The crop of one study: box (z0, z1, y0, y1, x0, x1) in voxels, real
 * valued, and flips. */
typedef struct Crop {
    double box[6];
    uint8_t flip[3];
} Crop;

/* train: random scale, shift and flips from r; otherwise the plain crop. */
void data_crop(const TrainStudy *s, const DataCfg *d, Rng *r, int train, Crop *out);
/* Renders the crop: img (n_win, Z, Y, X) in [0, 1]; tokbias (n_anat, T): for
 * tokens holding the anatomy, 0 (binary) or the log of the share of the
 * token's voxels that are the anatomy's (coverage), -INFINITY for the
 * others; inside (n_anat): 1 when the anatomy's region box lies whole inside
 * the crop. */
void data_render(const TrainSet *c, int study, const DataCfg *d, const Crop *crop, float *img,
                  float *tokbias, uint8_t *inside);
/* The density summaries of the crop (model.anat_hist), on the input grid
 * with nearest-neighbour sampling of CT and mask: hist (n_anat + 1,
 * NET_HIST_DIM), each anatomy's (net.h), then the whole crop's (its volume:
 * the voxels above -500 HU). */
void data_hist(const TrainSet *c, int study, const DataCfg *d, const Crop *crop, float *hist);

/* ---- batches ---- */

typedef struct BatchBuf {
    int cap_b;
    float *img;                /* (B, Ci, Z, Y, X) */
    float *tokbias;            /* (B, A, T) */
    uint8_t *inside;           /* (B, A) */
    float *hist;               /* (B, A + 1, NET_HIST_DIM) when the model wants it, else NULL */
    Crop *crop;                /* (B) */
    int *rb, *ra, *rtext;      /* (R) */
    uint8_t *rabn;
    uint64_t *rdis;
    int8_t *rlab;              /* (R, n_tasks) supervised: row labels (NetBatch.rlab), else NULL */
    int *goff, *grow;
    int *toff, *tids;
    int *cand_s;               /* (R) candidate rows: sample index */
    int *local;                /* (n_text) corpus text -> batch text, -1 */
    int *uniq;                 /* batch text -> corpus text */
    int *anat_n, *anat_abn;    /* (A) */
    NetBatch nb;
    int n_pairs;               /* image-text pairs contrasted */
} BatchBuf;

/* Capacity the network needs for batches of up to b studies of c. */
NetCap trainset_capacity(const TrainSet *c, int b);
int batch_alloc(BatchBuf *bb, const TrainSet *c, const NetCfg *cfg, int cap_b, FvErr *e);
void batch_free(BatchBuf *bb);
/* Builds the batch of studies idx[0..n): crops (drawn from r in study order
 * when train), renders, and lists rows, groups and texts. Allocates nothing.
 * The four steps below, in this order; the input pipeline (pipeline.h)
 * draws the crops in order on one thread and renders on others. */
void batch_build(BatchBuf *bb, const TrainSet *c, const DataCfg *d, const int *idx, int n,
                  int train, Rng *r);
/* The crops of idx[0..n) into bb->crop, drawn from r in study order (train),
 * or the plain crops. */
void batch_crops(BatchBuf *bb, const TrainSet *c, const DataCfg *d, const int *idx, int n,
                 int train, Rng *r);
/* Renders studies idx[0..n) through bb->crop[0..n) into img, tokbias,
 * inside (and hist). Reads only c and bb: threads may render separate
 * BatchBufs at once. */
void batch_render(BatchBuf *bb, const TrainSet *c, const DataCfg *d, const int *idx, int n);
/* Lists the candidate rows of a rendered batch in bb->rb, ra, cand_s (study
 * order, then sample order): fine modes, the whole samples of model
 * anatomies inside the crop with a token; global, the studies with a report
 * (cand_s = -1 - report text). Returns their count. */
int batch_candidates(BatchBuf *bb, const TrainSet *c, const DataCfg *d, const int *idx, int n);
/* Keeps the candidates that enter the loss (in place: rb, ra, cand_s) and
 * groups them: fine modes, an anatomy with two rows or more, one abnormal;
 * global, every row when there are two or more. goff (groups + 1), grow
 * (rows of group g: grow[goff[g] .. goff[g+1])); anat_n, anat_abn (n_anat)
 * scratch. Returns the rows kept, *ng the groups. */
int batch_groups(const TrainSet *c, int *rb, int *ra, int *cand_s, int nc, int *anat_n,
                 int *anat_abn, int *goff, int *grow, int *ng);
/* batch_groups on bb's nc candidates, then the batch's texts, each once,
 * and bb->nb for n studies. */
void batch_rows(BatchBuf *bb, const TrainSet *c, int n, int nc);

#endif
