/* loss_supervised: the supervised baseline (the paper's third row): the same
 * image encoder and anatomy pooling as fVLM, trained end to end on the
 * labels instead of the reports.
 *
 * Each pooled anatomy row's feature f (D, L2-normalised as in the fine
 * modes) gets one logit per task of findings.tsv, z = (W f) / tau + b with
 * W (K, D), b (K) and tau the model's learnable temperature (the scale the
 * contrastive losses put on their cosine logits); only the tasks of the row's own anatomy carry a label (y 1 or
 * 0: the study's parsed or audited label, an uncertain one left out), the
 * others are -1. The loss is the mean binary cross-entropy over the labelled
 * (row, task) entries of the batch. The head is linear_forward/backward
 * (ops.h); this module holds the cross-entropy and the labels' layout. */
#ifndef FVLM_LOSS_SUPERVISED_H
#define FVLM_LOSS_SUPERVISED_H

#include <stddef.h>
#include <stdint.h>

/* Mean binary cross-entropy with logits over the entries with y >= 0 (y
 * (n) 1, 0, or -1 for none), computed stably (log1p(exp(-|z|))). dlogit
 * (n, may be NULL) receives d loss / d z: (sigmoid(z) - y) / n_labelled, 0
 * for unlabelled entries. Returns 0 (and zero gradients) with no label. */
float sup_bce(float *dlogit, const float *logit, const int8_t *y, size_t n);

/* sigmoid(z), stable for any finite z. */
double sup_sigmoid(double z);

#endif
