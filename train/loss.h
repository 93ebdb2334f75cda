/* loss: the contrastive losses of the four training modes.
 *
 * Every mode is the same symmetric soft-target InfoNCE over a similarity
 * matrix s = img txt^T / tau (n image rows against n text rows):
 *   loss = (mean_i CE(s_i., t_i. / sum t_i.) + mean_j CE(s_.j, t_.j / sum t_.j)) / 2
 * and differs only in its targets t (before normalisation):
 *   global           the whole CT against the whole report: identity (CLIP)
 *   fine             per anatomy: identity
 *   fine-fn          per anatomy: identity + every normal-normal pair + every
 *                    pair of identical texts (fVLM's false-negative
 *                    calibration of the normal side)
 *   fine-fn-disease  fine-fn, and a pair of abnormal samples weighs the
 *                    Jaccard agreement of their disease sets (1 when
 *                    identical; 0 when both sets are empty, as an unknown
 *                    disease is no evidence of agreement)
 * The reference of both parts is in ops_ref.h. */
#ifndef FVLM_LOSS_H
#define FVLM_LOSS_H

#include <stddef.h>
#include <stdint.h>

/* LOSS_SUPERVISED is no contrast: the supervised baseline (loss_supervised.h),
 * one logit per task on each anatomy's feature; it pools as the fine modes. */
typedef enum {
    LOSS_GLOBAL = 0, LOSS_FINE = 1, LOSS_FINE_FN = 2, LOSS_FINE_FN_DISEASE = 3, LOSS_SUPERVISED = 4
} LossMode;

const char *loss_mode_name(LossMode m);
/* 0 and *m set for "global", "fine", "fine-fn", "fine-fn-disease", "supervised"; -1
 * otherwise. */
int loss_mode_parse(const char *s, LossMode *m);

/* Targets (n, n) before normalisation. abnormal (n): 1 abnormal, 0 normal;
 * text (n): equal ids mean identical texts; dis (n, words): disease sets as
 * bitsets (only read by fine-fn-disease). */
void loss_targets(float *t, LossMode mode, int n, const uint8_t *abnormal, const int *text,
                  const uint64_t *dis, int words);

/* Scratch floats contrast_loss needs for n rows. */
size_t contrast_scratch_size(int n);
/* img, txt (n, D): L2-normalised features; t (n, n) targets. Returns the
 * loss; writes dimg, dtxt (n, D) and *dtau (d loss / d tau). On return the
 * first n * n floats of scratch hold the logits s (n, n). */
float contrast_loss(float *dimg, float *dtxt, float *dtau, const float *img, const float *txt,
                    const float *t, int n, int d, float tau, float *scratch);

#endif
