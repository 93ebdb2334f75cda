/* net: the fVLM network: parameters, activations, forward and backward.
 *
 * llm.c style: the model is data plus free functions. Parameters live in
 * one allocation with named views (NetW); the gradients, and the AdamW
 * moments when training, use the same layout in the same allocation, so
 * zeroing, the optimiser and a checkpoint are flat loops over it. The
 * activations of one step live in a second allocation sized once for the
 * largest batch the data can produce (NetCap), so a training step
 * allocates nothing.
 *
 * Vision: the cropped, resampled CT (B, Ci, Z, Y, X) in [0, 1], one channel
 * per HU window -> 3D patch
 * embedding + learnable positions -> pre-LN blocks -> the outputs of the
 * kept blocks, each through the shared final layer norm. Fine modes: one
 * learned query per anatomy pools the anatomy's tokens of all kept depths
 * through a shared multi-head attention, a per-anatomy linear projection and
 * L2 normalisation give the anatomy feature. Global mode: the mean of the
 * last block's tokens, a linear projection, L2. With cfg.hist (ours, not
 * fVLM's), a linear map of the row's density summary (the anatomy's HU
 * histogram and volume; global: the whole crop's) is added before the
 * projection: at a few hundred studies a ViT from scratch does not learn
 * densities and sizes, which is what most findings change.
 * Text: token + position embedding -> pre-LN blocks over packed texts ->
 * final layer norm of [CLS] (or of the mean of the tokens) -> shared
 * projection -> L2.
 * Loss: per group of rows (one anatomy, or the whole batch in global mode)
 * the soft-target contrastive loss of loss.h over features / temperature,
 * summed over groups; supervised: the binary cross-entropy of one logit per
 * task on each row's feature (loss_supervised.h), no text tower. */
#ifndef FVLM_NET_H
#define FVLM_NET_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "json.h"
#include "loss.h"
#include "rng.h"

enum { NET_MAX_DEPTH = 48, NET_MAX_KEEP = 8, NET_MAX_CHANNELS = 8 };

/* The density summary of one anatomy (model.anat_hist), two halves of
 * NET_HIST_BINS + 1 values: its voxels, then its surroundings (the voxels
 * of its region box that are not its own: pleural fluid and air around the
 * lung, nodes around the airways). Each half: the share of the voxels in
 * each of NET_HIST_BINS HU bins (edges in data.c) as sqrt(bins x share),
 * then log10(1 + their volume in ml); all zero when the crop holds none. */
enum { NET_HIST_BINS = 24, NET_HIST_HALF = NET_HIST_BINS + 1, NET_HIST_DIM = 2 * NET_HIST_HALF };

typedef struct NetCfg {
    LossMode loss;
    int in_c;                      /* input channels: one per HU window (fVLM: 1) */
    int in_z, in_y, in_x;          /* input voxels after crop and resample (z, y, x) */
    int pz, py, px;                /* patch voxels; they divide the input */
    int width, depth, heads, mlp;  /* vision C, blocks, heads, MLP hidden width */
    int keep[NET_MAX_KEEP];        /* 1-based blocks whose outputs are pooled */
    int n_keep;
    int pool_heads;
    int embed;                     /* D */
    int t_width, t_depth, t_heads, t_mlp, t_max_len;
    int t_mean;                    /* text feature: 0 the [CLS] token, 1 the mean of all tokens */
    int hist;                      /* 1: the density summary (NET_HIST_DIM) joins each pooled
                                    * feature through a linear layer (model.anat_hist) */
    int vocab;                     /* V */
    int n_anat;                    /* A: anatomies with a query and a projection */
    int n_tasks;                   /* K: supervised: tasks of findings.tsv, one logit each */
    float temp_init;
} NetCfg;

/* Checks ranges and divisibility; errors name the config key. */
int netcfg_check(const NetCfg *c, FvErr *e);
/* The config as one JSON object (stored in checkpoints), and back (checked). */
void netcfg_to_json(const NetCfg *c, JsonW *w);
int netcfg_from_json(NetCfg *c, const JsonValue *obj, FvErr *e);
int netcfg_tokens(const NetCfg *c);  /* T */
int netcfg_patch(const NetCfg *c);   /* P */

typedef struct BlockW {
    float *ln1_w, *ln1_b;      /* (C) */
    float *qkv_w, *qkv_b;      /* (3C, C), (3C) */
    float *proj_w, *proj_b;    /* (C, C), (C) */
    float *ln2_w, *ln2_b;      /* (C) */
    float *fc1_w, *fc1_b;      /* (Hm, C), (Hm) */
    float *fc2_w, *fc2_b;      /* (C, Hm), (C) */
} BlockW;

typedef struct NetW {
    float *patch_w, *patch_b;  /* (C, P), (C) */
    float *vpos;               /* (T, C) */
    BlockW vb[NET_MAX_DEPTH];
    float *vln_w, *vln_b;      /* (C) */
    /* fine modes */
    float *query;              /* (A, C) */
    float *pq_w, *pq_b, *pk_w, *pk_b, *pv_w, *pv_b, *po_w, *po_b; /* (C, C), (C) */
    float *aproj_w, *aproj_b;  /* (A, D, C), (A, D) */
    /* global mode */
    float *gproj_w, *gproj_b;  /* (D, C), (D) */
    /* density summary (cfg.hist) */
    float *hist_w, *hist_b;    /* (C, NET_HIST_DIM), (C) */
    /* text */
    float *tok;                /* (V, Ct) */
    float *tpos;               /* (L, Ct) */
    BlockW tb[NET_MAX_DEPTH];
    float *tln_w, *tln_b;      /* (Ct) */
    float *tproj_w, *tproj_b;  /* (D, Ct), (D) */
    float *temp;               /* (1) */
    /* supervised (loss_supervised.h) */
    float *sup_w, *sup_b;      /* (K, D), (K) */
} NetW;

typedef struct ParamInfo {
    char name[48];             /* checkpoint tensor name */
    int ndim;
    int64_t shape[3];
    size_t off, numel;         /* floats into the parameter block */
    int decay;                 /* AdamW weight decay applies (not norms, biases, embeddings) */
    int init;                  /* NET_INIT_* */
    size_t field;              /* byte offset of its view in NetW */
} ParamInfo;

enum { NET_INIT_NORMAL, NET_INIT_ZERO, NET_INIT_ONE, NET_INIT_TEMP };

/* The largest batch the activations must hold. */
typedef struct NetCap {
    int studies;               /* B */
    int rows;                  /* pooled rows R (global mode: B) */
    int rows_per_study;        /* most pooled rows of one study */
    int texts;                 /* unique texts U */
    int text_tokens;           /* packed text tokens */
    int dis_words;             /* uint64 words of a disease set */
} NetCap;

/* One batch, as the network sees it. Pooled rows are (study, anatomy)
 * pairs grouped by study, ascending; a group is the rows of one loss term
 * (one anatomy, or every study in global mode), listed by row index. */
typedef struct NetBatch {
    int nb;                    /* studies */
    const float *img;          /* (B, Ci, Z, Y, X) in [0, 1] */
    const float *tokbias;      /* (B, A, T): pooling score bias of token t for anatomy a,
                                * -INFINITY where the token holds none of it (fine modes) */
    const float *hist;         /* (B, hist_n, NET_HIST_DIM) when cfg.hist: each anatomy's density
                                * summary (by anatomy index), the whole crop's last */
    int hist_n;
    int nr;
    const int *rb, *ra;        /* (R): study and anatomy of each row; global: rb[r] = r */
    const int *rtext;          /* (R): its text, an index into the texts below */
    const uint8_t *rabn;       /* (R): 1 abnormal */
    const uint64_t *rdis;      /* (R, dis_words): disease set */
    int dis_words;
    int ng;
    const int *goff;           /* (ng + 1) */
    const int *grow;           /* rows of group g: grow[goff[g] .. goff[g+1]) */
    int nt;                    /* unique texts U */
    const int *toff;           /* (U + 1): text s is tokens [toff[s], toff[s+1]) */
    const int *tids;           /* token ids */
    const int8_t *rlab;        /* (R, n_tasks) supervised: each row's label per task, 1, 0 or
                                * -1 (uncertain, unlabelled or another anatomy's task) */
} NetBatch;

typedef struct NetActs NetActs;

typedef struct Net {
    NetCfg cfg;
    ParamInfo *info;
    int n_params;
    size_t n_floats;           /* parameter floats */
    float *mem;                /* params, grads[, adam m, adam v]: one allocation */
    float *params, *grads, *adam_m, *adam_v;
    NetW w, g;                 /* named views of params and grads */
    NetCap cap;
    NetActs *act;              /* activations: one allocation */
} Net;

/* Builds the parameter table and allocates parameters (and grads and AdamW
 * moments when training) and activations for cap. */
int net_alloc(Net *n, const NetCfg *cfg, const NetCap *cap, int training, FvErr *e);
void net_free(Net *n);
/* Initial values: N(0, 0.02) for weights and embeddings, zeros for biases
 * and the anatomy queries (as fVLM), ones for norm gains, temp_init. */
void net_init(Net *n, Rng *r);
const ParamInfo *net_param(const Net *n, const char *name);

/* Checks a batch against the capacity and the config (sizes only). */
int net_batch_check(const Net *n, const NetBatch *b, FvErr *e);
/* Forward (and backward when grads is set: gradients ADDED to n->grads).
 * Returns the loss, the sum over groups. */
float net_step(Net *n, const NetBatch *b, int backward);

/* The last forward's outputs, for tests and inference: image features
 * (R, D) in group order (global: study order), text features (U, D), and
 * the logits of group g (n_g, n_g). */
const float *net_image_features(const Net *n);
const float *net_text_features(const Net *n);
const float *net_group_logits(const Net *n, int g);

/* Inference without a loss: image features of the batch's rows (rows in
 * study order; ng may be 0) into out (R, D), and text features of its
 * texts into tout (U, D). Either output may be NULL to skip that tower. */
void net_encode(Net *n, const NetBatch *b, float *out, float *tout);

/* The pieces of net_step for data-parallel training (dpstep.h), where the
 * loss over the global batch runs between them on every rank:
 * net_forward_rows computes the image features of the rows order[0..nr)
 * (pooled row indices; into net_image_features, in that order) and the text
 * features of the batch's texts (net_text_features). The caller then writes
 * d loss / d image features (nr, D) to net_feature_grads, d loss / d text
 * features (texts, D) to net_text_grads, adds d loss / d temperature to the
 * temperature's gradient, and runs net_backward_rows: it ADDS the gradients
 * to n->grads, tower by tower (text, then the image heads, then the vision
 * tower), calling done(ctx, part) as each part's parameter gradients are
 * final, so their reduction across ranks can start while the rest runs. */
enum { NET_PART_VISION = 0, NET_PART_HEADS = 1, NET_PART_TEXT = 2, NET_PARTS = 3 };
typedef void (*NetPartDone)(void *ctx, int part);
void net_forward_rows(Net *n, const NetBatch *b, const int *order, int nr);
float *net_feature_grads(Net *n);
float *net_text_grads(Net *n);
void net_backward_rows(Net *n, const NetBatch *b, const int *order, int nr, NetPartDone done,
                       void *ctx);
/* The floats [lo, hi) of the parameter block (and of the gradients) that
 * hold a part's parameters; the temperature belongs to the text part. */
void net_part_range(const Net *n, int part, size_t *lo, size_t *hi);

#endif
