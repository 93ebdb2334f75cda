/* ckpt_diff A B TOL [KEY_TOL]: compares the parameters of two fvlm
 * checkpoints.
 *
 * Every tensor of A that is a model parameter (not opt.* or train.*) must be
 * in B with the same shape, and differ from it by at most TOL relative to
 * its scale: max |a - b| <= TOL * max |a| (per tensor; a tensor of zeros:
 * absolute). The key biases (the middle third of each attention's
 * qkv.bias, and pool.k.bias) are the exception: a softmax does not change
 * when one value is added to all its scores, so their gradient is zero in
 * exact arithmetic and float rounding alone moves them, by steps that AdamW
 * scales up to the learning rate; any other order of summation moves them
 * elsewhere. With KEY_TOL they are compared apart: max |a - b| <= KEY_TOL
 * (absolute; e.g. 2 x lr x steps, the most AdamW can move them).
 * Prints the worst tensor; exit 0 when all agree, 1 when one differs (each
 * named), 2 on bad usage or unreadable files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: ckpt_diff A.safetensors B.safetensors TOL [KEY_TOL]\n");
        return 2;
    }
    double tol = atof(argv[3]), key_tol = argc == 5 ? atof(argv[4]) : -1;
    double key_worst = 0;
    FvErr e = {0};
    StFile *a = NULL, *b = NULL;
    if (st_open(&a, argv[1], &e) || st_open(&b, argv[2], &e)) {
        fprintf(stderr, "ckpt_diff: %s\n", e.msg);
        st_close(&a);
        return 2;
    }
    int bad = 0, n = 0;
    double worst = 0;
    const char *worst_name = "-";
    for (int i = 0; i < a->n; i++) {
        const StTensor *x = &a->t[i];
        if (!strncmp(x->name, "opt.", 4) || !strncmp(x->name, "train.", 6))
            continue;
        const StTensor *y = st_get(b, x->name);
        if (!y || y->dtype != ST_F32 || x->dtype != ST_F32 || y->nbytes != x->nbytes) {
            fprintf(stderr, "ckpt_diff: %s: not in %s as the same float32 tensor\n", x->name,
                    argv[2]);
            bad++;
            continue;
        }
        size_t k = x->nbytes / sizeof(float);
        const float *p = x->data, *q = y->data;
        /* the key biases: [k0, k1) */
        size_t k0 = 0, k1 = 0, len = strlen(x->name);
        if (key_tol >= 0 && !strcmp(x->name, "pool.k.bias"))
            k1 = k;
        else if (key_tol >= 0 && len > 14 && !strcmp(x->name + len - 14, ".attn.qkv.bias")) {
            k0 = k / 3;
            k1 = 2 * k / 3;
        }
        double scale = 0, diff = 0, key = 0;
        for (size_t j = 0; j < k; j++) {
            double d = fabs((double)p[j] - q[j]);
            if (j >= k0 && j < k1) {
                key = fmax(key, d);
                continue;
            }
            scale = fmax(scale, fabs(p[j]));
            diff = fmax(diff, d);
        }
        if (k1 > k0) {
            key_worst = fmax(key_worst, key);
            if (!(key <= key_tol)) {
                fprintf(stderr, "ckpt_diff: %s: its key biases differ by %.3g (tolerance %g)\n",
                        x->name, key, key_tol);
                bad++;
            }
        }
        double rel = scale > 0 ? diff / scale : diff;
        if (!(rel <= tol)) {
            fprintf(stderr, "ckpt_diff: %s: max |a - b| = %.3g, %.3g of its scale %.3g (tolerance "
                    "%g)\n", x->name, diff, rel, scale, tol);
            bad++;
        }
        if (rel > worst || isnan(rel)) {
            worst = rel;
            worst_name = x->name;
        }
        n++;
    }
    printf("ckpt_diff: %d parameter tensors, worst %s at %.3g of its scale%s\n", n, worst_name,
           worst, bad ? "" : " (all within tolerance)");
    if (key_tol >= 0)
        printf("ckpt_diff: key biases (zero gradient in exact arithmetic) differ by %.3g at most\n",
               key_worst);
    st_close(&a);
    st_close(&b);
    return bad || !n ? 1 : 0;
}
