#include "loss_supervised.h"

#include <math.h>

double sup_sigmoid(double z)
{
    if (z >= 0)
        return 1.0 / (1.0 + exp(-z));
    double ez = exp(z);
    return ez / (1.0 + ez);
}

float sup_bce(float *dlogit, const float *logit, const int8_t *y, size_t n)
{
    size_t nl = 0;
    for (size_t i = 0; i < n; i++)
        nl += y[i] >= 0;
    double loss = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (y[i] < 0) {
            if (dlogit)
                dlogit[i] = 0.0f;
            continue;
        }
        double z = logit[i];
        /* log(1 + e^z) - y z, without overflow */
        loss += fmax(z, 0.0) + log1p(exp(-fabs(z))) - (y[i] ? z : 0.0);
        if (dlogit)
            dlogit[i] = (float)((sup_sigmoid(z) - (y[i] ? 1.0 : 0.0)) / (double)nl);
    }
    return nl ? (float)(loss / (double)nl) : 0.0f;
}
