/* optim: AdamW, the learning-rate schedule and gradient clipping.
 *
 * AdamW as PyTorch's torch.optim.AdamW (decoupled weight decay: the
 * parameter shrinks by lr * wd before the Adam step; bias-corrected
 * moments), over the flat parameter block of net.h, with weight decay only
 * on the parameters whose table entry asks for it (not norms, biases and
 * embeddings). The schedule: linear warm-up from 0 to lr over warmup steps,
 * then cosine from lr down to lr_min at the last step. */
#ifndef FVLM_OPTIM_H
#define FVLM_OPTIM_H

#include <stdint.h>

#include "net.h"

typedef struct OptCfg {
    double lr, lr_min;
    int64_t warmup, total;      /* steps */
    double beta1, beta2, eps;
    double weight_decay;
    double clip;                /* global gradient norm limit; 0 = none */
} OptCfg;

/* Learning rate of step (0-based). */
double optim_lr(const OptCfg *o, int64_t step);
/* L2 norm of all gradients (summed in double). */
double optim_grad_norm(const Net *n);
/* Scales the gradients so their norm is at most o->clip. Returns the norm before. */
double optim_clip(Net *n, const OptCfg *o);
/* One AdamW step; t is the 1-based step count for the bias correction. */
void optim_adamw(Net *n, const OptCfg *o, double lr, int64_t t);
/* The temperature's range, [0.001, 0.5], applied after each update as fVLM does. */
void optim_clamp_temperature(Net *n);

#endif
