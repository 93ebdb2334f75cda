/* ops_ref: plain reference implementations of every op and loss, in double.
 *
 * Written for obviousness, not speed: loops that follow the formulas one
 * element at a time, no BLAS, no shared code with ops.c or loss.c. The tests
 * check these against central finite differences (double precision) and the
 * fast float versions against these. Shapes and conventions are those of
 * ops.h and loss.h (backward functions ADD parameter gradients and WRITE
 * input gradients). Functions that need working memory allocate it and
 * return -1 when that fails (0 otherwise). */
#ifndef FVLM_OPS_REF_H
#define FVLM_OPS_REF_H

#include <stdint.h>

void ref_linear_forward(double *y, const double *x, const double *w, const double *b, int n,
                        int c, int o);
void ref_linear_backward(double *dx, double *dw, double *db, const double *dy, const double *x,
                         const double *w, int n, int c, int o);

void ref_layernorm_forward(double *y, const double *x, const double *g, const double *b, int n,
                           int c);
int ref_layernorm_backward(double *dx, double *dg, double *db, const double *dy,
                            const double *x, const double *g, int n, int c);

void ref_gelu_forward(double *y, const double *x, int n);
void ref_gelu_backward(double *dx, const double *dy, const double *x, int n);

/* Packed sequences as attention_forward; probs are recomputed in backward. */
int ref_attention_forward(double *y, const double *qkv, const int *off, int n_seq, int c,
                           int h);
int ref_attention_backward(double *dqkv, const double *dy, const double *qkv, const int *off,
                            int n_seq, int c, int h);

/* Direct 3D patch embedding (no im2col) of img (B, Ci, Z, Y, X): y (B T, C). */
void ref_patch_embed_forward(double *y, const double *img, const double *w, const double *b,
                             int nb, int ci, int z, int yy, int x, int pz, int py, int px, int c);
void ref_patch_embed_backward(double *dw, double *db, const double *dy, const double *img, int nb,
                              int ci, int z, int yy, int x, int pz, int py, int px, int c);

int ref_attnpool_forward(double *y, const double *q, const double *k, const double *v,
                          const double *bias, const int *rb, const int *ra, int nr, int na,
                          int m, int t, int c, int h);
int ref_attnpool_backward(double *dq, double *dk, double *dv, const double *dy,
                           const double *q, const double *k, const double *v,
                           const double *bias, const int *rb, const int *ra, int nr, int na,
                           int m, int t, int c, int h);

void ref_l2norm_forward(double *y, const double *x, int n, int d);
void ref_l2norm_backward(double *dx, const double *dy, const double *x, int n, int d);

/* Targets of the four loss modes (loss.h's LossMode numbering), written
 * from the method's rules one pair at a time: t (n, n) before
 * normalisation. dis: n disease sets of `words` uint64 words each. */
void ref_loss_targets(double *t, int mode, int n, const uint8_t *abnormal, const int *text,
                      const uint64_t *dis, int words);
/* Symmetric soft-target InfoNCE: s = img txt^T / tau, loss = (mean over i of
 * CE(rows of s, rows of t normalised) + the same over columns) / 2, into
 * *loss; gradients written (not added); dtau may be NULL. */
int ref_contrast_loss(double *loss, double *dimg, double *dtxt, double *dtau, const double *img,
                         const double *txt, const double *t, int n, int d, double tau);

/* The supervised head (loss_supervised.h): logits z (n, K) = f W^T / tau + b,
 * loss the mean binary cross-entropy over the entries with y >= 0 (0 with
 * none). Gradients of f (n, D), W (K, D), b (K) and tau written (not added);
 * any may be NULL. */
double ref_sup_loss(double *df, double *dw, double *db, double *dtau, const double *f,
                    const double *w, const double *b, double tau, const int8_t *y, int n, int d,
                    int k);

#endif
