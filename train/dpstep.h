/* dpstep: one training step of a data-parallel run, as one process would
 * take it over the whole global batch.
 *
 * Each rank holds its share of the global batch's studies, rendered by its
 * pipeline (pipeline.h). A step:
 *   1. the ranks' candidate rows (study, anatomy, sample) are gathered, and
 *      every rank groups the global batch's rows exactly as batch_rows would
 *      (an anatomy enters the loss with two rows, one abnormal, over the
 *      whole global batch);
 *   2. each rank encodes its own rows (image features) and their texts;
 *   3. the features of every row are all-gathered, so that each group's
 *      contrastive loss and its soft targets (normal pairs, identical
 *      texts, disease agreement) see the global batch's rows, as a single
 *      process would; the groups' losses are shared out among the ranks
 *      (group g on rank g mod N) and their gradients summed, so every rank
 *      holds the loss and the gradient of every gathered feature, and
 *      keeps those of its own rows (the gradients of the gathered features
 *      go back to their owners in that sum);
 *   4. each rank runs the backward pass of its rows; the parameter
 *      gradients are summed across ranks in buckets, tower by tower as the
 *      backward pass finishes each (text, heads, vision), so the sums of one
 *      tower travel while the next is computed; the temperature's gradient
 *      is counted once (rank 0).
 * After it every rank holds the global batch's gradients, and the same
 * optimiser step keeps the weights identical on every rank. */
#ifndef FVLM_DPSTEP_H
#define FVLM_DPSTEP_H

#include "data.h"
#include "dist.h"
#include "net.h"
#include "pipeline.h"

typedef struct DpStep DpStep;

/* For global batches of up to `batch` studies of c, on net n (allocated
 * for this rank's share). */
int dp_alloc(DpStep **dp, const TrainSet *c, const Net *n, int batch, Dist *d, FvErr *e);
void dp_free(DpStep **dp);
/* The loss of the global batch whose local share is job j; with backward,
 * n->grads then holds (adds) the global batch's gradients, on every rank.
 * *ng: the global batch's loss groups (0: no loss term, no gradient);
 * *pairs: its image-text pairs. */
int dp_step(DpStep *dp, Net *n, const PipeJob *j, int backward, float *loss, int *ng, int *pairs,
            FvErr *e);
/* Seconds this rank spent in its groups of the global batch's loss (it
 * grows with the square of the global batch, shared among at most as many
 * ranks as there are groups), over all steps so far. */
double dp_loss_seconds(const DpStep *dp);

#endif
