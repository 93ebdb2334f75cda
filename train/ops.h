/* ops: the tensor operations of the model, forward and backward, in float.
 *
 * These are the fast versions: every matrix product goes through
 * cblas_sgemm (gemm() below, which also counts FLOPs for the bench). The
 * plain reference of each op, in double precision, is in ops_ref.h; the tests
 * check these against it and the reference against finite differences.
 *
 * Dimension letters, used in every shape comment of train/:
 *   N rows (tokens or samples)   C channels (width)    O output channels
 *   B studies in a batch          T tokens per study    P voxels per patch
 *   S sequences (texts)           L tokens of one text  H heads, dh = C / H
 *   A anatomies of the model      M pooled keys per study (n_keep * T)
 *   R pooled rows ((study, anatomy) pairs)             D embedding
 * Matrices are row-major; a weight W of a linear layer is (O, C) as PyTorch
 * stores it, so y = x W^T + b.
 *
 * Conventions: *_forward writes its outputs. *_backward ADDS parameter
 * gradients (dw, db, dg: accumulated over a step, zeroed by the caller) and
 * WRITES input gradients unless a function says it accumulates. No function
 * allocates: scratch space is passed in. */
#ifndef FVLM_OPS_H
#define FVLM_OPS_H

#include <stddef.h>
#include <stdint.h>

/* The element-wise kernels are compiled for AVX-512, AVX2 and plain x86-64
 * and picked at load time (GCC's target_clones): the same operations in the
 * same order in each, so every machine gets the same numbers. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define FV_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FV_VECTOR_CLONES
#endif

/* C = alpha op(A) op(B) + beta C, row-major, through cblas_sgemm; counts
 * 2 m n k FLOPs in ops_flops. ta/tb: 1 to transpose. */
void gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
          const float *b, int ldb, float beta, float *c, int ldc);
/* FLOPs done by gemm() since the last reset (matrix products only). */
extern uint64_t ops_flops;

/* ---- linear: y (N, O) = x (N, C) W^T + b; W (O, C), b (O) or NULL ---- */
void linear_forward(float *y, const float *x, const float *w, const float *b, int n, int c, int o);
/* dx (N, C) written (or added when accumulate), dw (O, C) and db (O) added; dx
 * or db may be NULL when not wanted. */
void linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                     const float *w, int n, int c, int o, int accumulate);

/* ---- layer norm over the last axis, eps 1e-5 (PyTorch's default) ----
 * y (N, C); mean, rstd (N) kept for backward. */
void layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *g,
                       const float *b, int n, int c);
/* dx written (or added when accumulate); dg, db added. */
void layernorm_backward(float *dx, float *dg, float *db, const float *dy, const float *x,
                        const float *mean, const float *rstd, const float *g, int n, int c,
                        int accumulate);

/* ---- GELU, exact (erf) form as PyTorch's nn.GELU() ---- */
void gelu_forward(float *y, const float *x, size_t n);
/* dx = dy * gelu'(x), written; y = gelu(x) from the forward pass gives
 * Phi(x) = y / x, so only the density is computed here. */
void gelu_backward(float *dx, const float *dy, const float *x, const float *y, size_t n);

/* ---- multi-head softmax self-attention over packed sequences ----
 * qkv (N, 3C): per row [q | k | v], head h in columns [h dh, (h+1) dh) of
 * each. Sequence s is rows [off[s], off[s+1]); tokens attend within their
 * sequence only (no padding exists). y (N, C). probs holds, sequence after
 * sequence, H blocks of (len, len) softmax rows: attention_probs_size()
 * floats in all. */
size_t attention_probs_size(const int *off, int n_seq, int h);
void attention_forward(float *y, float *probs, const float *qkv, const int *off, int n_seq,
                       int c, int h);
/* dqkv (N, 3C) written. scratch: (max len)^2 floats. */
void attention_backward(float *dqkv, const float *dy, const float *probs, const float *qkv,
                        const int *off, int n_seq, int c, int h, float *scratch);

/* ---- 3D patch embedding ----
 * img (B, Ci, Z, Y, X) -> patches (B T, P) in token order t = (tz Ty + ty) Tx + tx
 * and order (ci, dz, dy, dx) within a patch, x fastest, P = Ci pz py px; then
 * y (B T, C) = patches W^T + b with W (C, P). Ci: input channels (one per HU
 * window). */
void patchify(float *patches, const float *img, int nb, int ci, int z, int y, int x, int pz,
              int py, int px);
void patch_embed_forward(float *y, float *patches, const float *img, const float *w,
                         const float *b, int nb, int ci, int z, int yy, int x, int pz, int py,
                         int px, int c);
/* dw (C, P), db (C) added; the image needs no gradient. */
void patch_embed_backward(float *dw, float *db, const float *dy, const float *patches, int nt,
                          int p, int c);

/* ---- masked attention pooling ----
 * One learned query per anatomy pools the anatomy's tokens of one study.
 * q (A, C): the projected queries; k, v (B, M, C): projected keys and values
 * of each study's M = n_keep T tokens; bias (B, A, T): added to the scores
 * of token t for anatomy a, -INFINITY where the token holds none of the
 * anatomy (the same at each kept depth: key m uses t = m mod T). A binary
 * mask is bias 0 / -inf; data.h also gives log-coverage biases. Row r pools
 * anatomy ra[r] of study rb[r] (rows grouped by study, ascending); each row
 * must have at least one finite bias. y (R, C); probs (R, H, M). scratch:
 * attnpool_scratch_size(most rows of one study) floats. */
size_t attnpool_scratch_size(int rows_per_study, int m, int c);
void attnpool_forward(float *y, float *probs, const float *q, const float *k, const float *v,
                      const float *bias, const int *rb, const int *ra, int nr, int na, int m,
                      int t, int c, int h, float *scratch);
/* dq (A, C), dk, dv (B, M, C) ADDED. */
void attnpool_backward(float *dq, float *dk, float *dv, const float *dy, const float *probs,
                       const float *q, const float *k, const float *v, const int *rb,
                       const int *ra, int nr, int m, int c, int h, float *scratch);

/* ---- L2 normalisation of rows: y = x / max(|x|, 1e-12) ----
 * norm (N) kept for backward. */
void l2norm_forward(float *y, float *norm, const float *x, int n, int d);
/* dx written. */
void l2norm_backward(float *dx, const float *dy, const float *y, const float *norm, int n, int d);

/* ---- small helpers ---- */
void vec_add(float *y, const float *a, const float *b, size_t n);   /* y = a + b */
void vec_acc(float *y, const float *a, size_t n);                   /* y += a */

#endif
