/* queue_model: the `model` queue order's scores: how far a trained model's
 * zero-shot judgement is from the parsed labels.
 *
 * For every study (of the split) with labels 1 or 0, each labelled task is
 * scored as eval does (eval_zero_shot_score: the softmax over the fVLM-style
 * negative and positive prompts of the report's language, on the task's
 * anatomy feature); the study's score is the largest |score - label|. A
 * study the model cannot encode, or without labels, gets no score. */
#ifndef FVLM_AUDIT_QUEUE_MODEL_H
#define FVLM_AUDIT_QUEUE_MODEL_H

#include "db.h"
#include "error.h"
#include "queue.h"

/* *scores (caller frees) receives *n studies. */
int queue_model_scores(Db *db, const char *model_path, const char *split, StudyScore **scores,
                       int *n, FvErr *e);

#endif
