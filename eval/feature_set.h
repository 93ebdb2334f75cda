/* feature_set: frozen image features of a list of studies, per anatomy, and the
 * encoder interface they come from.
 *
 * EvalEncoder is what evaluation needs of a model: anatomy features of a
 * study and a text feature, both L2-normalised rows of `dim` floats, and the
 * temperature. `fvlm eval` fills it from the trained model (train/model.h);
 * tests fill it with known numbers. */
#ifndef FVLM_EVAL_FEATURE_SET_H
#define FVLM_EVAL_FEATURE_SET_H

#include <stdint.h>

#include "db.h"
#include "error.h"
#include "ontology.h"
#include "run.h"

typedef struct EvalEncoder {
    void *ctx;
    int dim;                 /* D */
    double temperature;      /* > 0 */
    const char *loss_mode;   /* global, fine, fine-fn, fine-fn-disease (for the report) */
    /* out: (onto n_anat, D); valid[a] = 1 when anatomy a has a feature. */
    int (*encode_study)(void *ctx, Db *db, int64_t study_id, float *out, unsigned char *valid,
                        FvErr *e);
    /* out: (D) */
    int (*encode_text)(void *ctx, const char *text, float *out, FvErr *e);
    int raw;                 /* 1: features are not unit rows (the trivial baseline's
                              * statistics): only their finiteness is checked */
    /* a supervised model's own probability of task (findings.tsv index)
     * from its anatomy's feature; NULL: scored by prompts (zero-shot) */
    double (*task_score)(void *ctx, int task, const float *feat);
} EvalEncoder;

typedef struct FeatureSet {
    int n;                   /* studies */
    int64_t *study_id;       /* (n) */
    unsigned char *lang;     /* (n) PromptLang of the study's report (en when it has none) */
    int n_anat;              /* the ontology's anatomies */
    int n_slots;             /* anatomies kept */
    int *slot;               /* (n_anat) slot of an anatomy, or -1 when not kept */
    int dim;
    float *feat;             /* (n, n_slots, dim) */
    unsigned char *valid;    /* (n, n_slots) */
    int64_t n_failed;        /* studies whose encoding failed (recorded with run_error) */
} FeatureSet;

/* Encodes studies ids[0..n) keeping the anatomies with keep[a] = 1. A study
 * that fails to encode is recorded (run_error: table studies, its id, the
 * reason), gets no valid feature, and the run goes on; only a database
 * error or running out of memory fails the call. Progress is shown under
 * `label`. */
int features_encode(FeatureSet *fs, Db *db, const Ontology *o, EvalEncoder *enc,
                    const int64_t *ids, int n, const unsigned char *keep, Run *run,
                    const char *label, FvErr *e);

/* Feature of study i (index into fs) for anatomy a, or NULL when it has none. */
const float *features_get(const FeatureSet *fs, int i, int a);

void features_free(FeatureSet *fs);

/* Dot product in double. */
double features_dot(const float *a, const float *b, int d);

#endif
