#include "optim.h"

#include "ops.h"

#include <math.h>

double optim_lr(const OptCfg *o, int64_t step)
{
    if (o->warmup > 0 && step < o->warmup)
        return o->lr * (double)(step + 1) / (double)o->warmup;
    int64_t span = o->total - o->warmup;
    if (span <= 1)
        return o->lr;
    double p = (double)(step - o->warmup) / (double)(span - 1);
    if (p > 1.0)
        p = 1.0;
    return o->lr_min + 0.5 * (o->lr - o->lr_min) * (1.0 + cos(M_PI * p));
}

double optim_grad_norm(const Net *n)
{
    double s = 0.0;
    for (size_t i = 0; i < n->n_floats; i++)
        s += (double)n->grads[i] * (double)n->grads[i];
    return sqrt(s);
}

double optim_clip(Net *n, const OptCfg *o)
{
    double norm = optim_grad_norm(n);
    if (o->clip > 0.0 && norm > o->clip) {
        /* as torch.nn.utils.clip_grad_norm_: scale by clip / (norm + 1e-6) */
        float s = (float)(o->clip / (norm + 1e-6));
        for (size_t i = 0; i < n->n_floats; i++)
            n->grads[i] *= s;
    }
    return norm;
}

FV_VECTOR_CLONES
void optim_adamw(Net *n, const OptCfg *o, double lr, int64_t t)
{
    const float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
    const double bc1 = 1.0 - pow(o->beta1, (double)t), bc2 = 1.0 - pow(o->beta2, (double)t);
    const float step = (float)(lr / bc1), rbc2 = (float)(1.0 / sqrt(bc2));
    for (int k = 0; k < n->n_params; k++) {
        const ParamInfo *p = &n->info[k];
        float *w = n->params + p->off, *g = n->grads + p->off;
        float *m = n->adam_m + p->off, *v = n->adam_v + p->off;
        const float decay = p->decay ? (float)(1.0 - lr * o->weight_decay) : 1.0f;
        for (size_t i = 0; i < p->numel; i++) {
            w[i] *= decay;
            m[i] = b1 * m[i] + (1.0f - b1) * g[i];
            v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
            w[i] -= step * m[i] / (sqrtf(v[i]) * rbc2 + eps);
        }
    }
}

void optim_clamp_temperature(Net *n)
{
    float *t = n->w.temp;
    if (!(t[0] >= 0.001f))
        t[0] = 0.001f;
    if (t[0] > 0.5f)
        t[0] = 0.5f;
}
