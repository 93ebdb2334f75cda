/* model: the trained fVLM model as other stages use it (fvlm eval).
 *
 * A checkpoint written by `fvlm train` (safetensors: the weights, the
 * config, the tokenizer's vocabulary, the anatomy list and the step in its
 * metadata) is loaded read-only; the functions below run inference with it
 * exactly as training preprocessed its data, without augmentation.
 *
 * Anatomy rows follow the ontology this binary was built with (onto_load():
 * row a is Ontology.anat[a]); the model maps its own anatomy list onto it by
 * id when it is loaded. A model is not thread-safe: it owns one inference
 * workspace; use one FvlmModel per thread. */
#ifndef FVLM_MODEL_H
#define FVLM_MODEL_H

#include <stdint.h>

#include "db.h"
#include "error.h"

typedef struct FvlmModel FvlmModel;

/* Loads a checkpoint written by fvlm train. *m is owned by the caller (model_free). */
int model_load(FvlmModel **m, const char *path, FvErr *e);
void model_free(FvlmModel **m);
int model_embed_dim(const FvlmModel *m);
/* The learned temperature, clamped to [0.001, 0.5] as in training. */
float model_temperature(const FvlmModel *m);
/* "global", "fine", "fine-fn", "fine-fn-disease" or "supervised". */
const char *model_loss_mode(const FvlmModel *m);
/* 1 for the supervised baseline (loss_supervised.h), which scores tasks with
 * its own heads rather than prompts. */
int model_is_supervised(const FvlmModel *m);
/* The supervised model's probability of task (findings.tsv index) from its
 * anatomy's feature (a row of model_encode_study); NaN for any other model. */
double model_task_score(const FvlmModel *m, int task, const float *feat);
/* Number of anatomy rows of model_encode_study's output (the ontology's n_anat). */
int model_n_anat(const FvlmModel *m);

/* Image features of one study of the corpus, preprocessed as in training without augmentation.
 * out: (onto->n_anat, D) L2-normalised rows; valid[a] = 1 when anatomy a has a feature (its tokens
 * exist and it was trained). A `global` model gives the whole-CT feature in every valid row. */
int model_encode_study(FvlmModel *m, Db *db, int64_t study_id, float *out, unsigned char *valid,
                       FvErr *e);
/* Text feature (D floats, L2-normalised) of one text, through the model's own tokenizer. */
int model_encode_text(FvlmModel *m, const char *text, float *out, FvErr *e);

#endif
