/* Every op of the model and every loss: the double-precision reference
 * against central finite differences, and the fast float version (BLAS)
 * against the reference, forward and backward. */
#include <stdint.h>
#include <stdlib.h>

#include "fvlm_config.h"
#include "loss.h"
#include "loss_supervised.h"
#include "ops.h"
#include "ops_ref.h"
#include "rng.h"
#include "test.h"

static Rng g_rng;

static double *dalloc(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static float *falloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static void drand_fill(double *a, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++)
        a[i] = scale * (2.0 * rng_uniform(&g_rng) - 1.0);
}

static float *to_float(const double *a, size_t n)
{
    float *f = falloc(n);
    for (size_t i = 0; i < n; i++)
        f[i] = (float)a[i];
    return f;
}

/* max |f - r| over max(|r|, floor): the error relative to the tensor's scale. */
static double rel_err(const float *f, const double *r, size_t n)
{
    double mx = 0.0, scale = 1e-6;
    for (size_t i = 0; i < n; i++)
        scale = fabs(r[i]) > scale ? fabs(r[i]) : scale;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)f[i] - r[i]);
        mx = d > mx ? d : mx;
    }
    return mx / scale;
}

/* ------------------------------------------------- finite-difference driver */

/* A scalar function of the current contents of the tensors it reads:
 * L = sum(r * op(inputs)). */
typedef double (*LossFn)(void *ctx);

/* Central differences of L with respect to every element of x (h = 1e-6),
 * compared with the analytic gradient: max |a - n| / max(1e-3, max |n|). */
static double fd_err(double *x, size_t n, LossFn f, void *ctx, const double *analytic)
{
    const double h = 1e-6;
    double worst = 0.0, scale = 1e-3;
    double *num = dalloc(n);
    for (size_t i = 0; i < n; i++) {
        double keep = x[i];
        x[i] = keep + h;
        double lp = f(ctx);
        x[i] = keep - h;
        double lm = f(ctx);
        x[i] = keep;
        num[i] = (lp - lm) / (2 * h);
        scale = fabs(num[i]) > scale ? fabs(num[i]) : scale;
    }
    for (size_t i = 0; i < n; i++) {
        double d = fabs(analytic[i] - num[i]);
        worst = d > worst ? d : worst;
    }
    free(num);
    return worst / scale;
}

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

#define FD_TOL 1e-6
#define FAST_TOL 1e-4

/* ------------------------------------------------------------------ linear */

typedef struct {
    double *x, *w, *b, *r, *y;
    int n, c, o;
} LinCtx;

static double lin_loss(void *p)
{
    LinCtx *c = p;
    ref_linear_forward(c->y, c->x, c->w, c->b, c->n, c->c, c->o);
    return dot(c->y, c->r, (size_t)c->n * c->o);
}

static void test_linear_backward_matches_finite_differences_and_fast_matches_reference(void)
{
    LinCtx c = {.n = 5, .c = 7, .o = 6};
    size_t nx = (size_t)c.n * c.c, nw = (size_t)c.o * c.c, ny = (size_t)c.n * c.o;
    c.x = dalloc(nx); c.w = dalloc(nw); c.b = dalloc(c.o); c.r = dalloc(ny); c.y = dalloc(ny);
    drand_fill(c.x, nx, 1); drand_fill(c.w, nw, 0.5); drand_fill(c.b, c.o, 0.5);
    drand_fill(c.r, ny, 1);
    double *dx = dalloc(nx), *dw = dalloc(nw), *db = dalloc(c.o);
    ref_linear_backward(dx, dw, db, c.r, c.x, c.w, c.n, c.c, c.o);
    CHECK(fd_err(c.x, nx, lin_loss, &c, dx) < FD_TOL, "linear dx differs from finite differences");
    CHECK(fd_err(c.w, nw, lin_loss, &c, dw) < FD_TOL, "linear dw differs from finite differences");
    CHECK(fd_err(c.b, c.o, lin_loss, &c, db) < FD_TOL, "linear db differs from finite differences");

    lin_loss(&c);
    float *fx = to_float(c.x, nx), *fw = to_float(c.w, nw), *fb = to_float(c.b, c.o);
    float *fr = to_float(c.r, ny), *fy = falloc(ny);
    float *fdx = falloc(nx), *fdw = falloc(nw), *fdb = falloc(c.o);
    linear_forward(fy, fx, fw, fb, c.n, c.c, c.o);
    linear_backward(fdx, fdw, fdb, fr, fx, fw, c.n, c.c, c.o, 0);
    CHECK(rel_err(fy, c.y, ny) < FAST_TOL, "fast linear forward differs: %g", rel_err(fy, c.y, ny));
    CHECK(rel_err(fdx, dx, nx) < FAST_TOL, "fast linear dx differs");
    CHECK(rel_err(fdw, dw, nw) < FAST_TOL, "fast linear dw differs");
    CHECK(rel_err(fdb, db, c.o) < FAST_TOL, "fast linear db differs");
    /* accumulate = 1 adds to what dx holds */
    linear_backward(fdx, NULL, NULL, fr, fx, fw, c.n, c.c, c.o, 1);
    for (size_t i = 0; i < nx; i++)
        dx[i] *= 2;
    CHECK(rel_err(fdx, dx, nx) < FAST_TOL, "linear backward with accumulate does not add");
    free(c.x); free(c.w); free(c.b); free(c.r); free(c.y); free(dx); free(dw); free(db);
    free(fx); free(fw); free(fb); free(fr); free(fy); free(fdx); free(fdw); free(fdb);
}

/* -------------------------------------------------------------- layer norm */

typedef struct {
    double *x, *g, *b, *r, *y;
    int n, c;
} LnCtx;

static double ln_loss(void *p)
{
    LnCtx *c = p;
    ref_layernorm_forward(c->y, c->x, c->g, c->b, c->n, c->c);
    return dot(c->y, c->r, (size_t)c->n * c->c);
}

static void test_layernorm_backward_matches_finite_differences_and_fast_matches_reference(void)
{
    LnCtx c = {.n = 4, .c = 9};
    size_t nx = (size_t)c.n * c.c;
    c.x = dalloc(nx); c.g = dalloc(c.c); c.b = dalloc(c.c); c.r = dalloc(nx); c.y = dalloc(nx);
    drand_fill(c.x, nx, 2); drand_fill(c.g, c.c, 1); drand_fill(c.b, c.c, 1); drand_fill(c.r, nx, 1);
    double *dx = dalloc(nx), *dg = dalloc(c.c), *db = dalloc(c.c);
    CHECK(ref_layernorm_backward(dx, dg, db, c.r, c.x, c.g, c.n, c.c) == 0, "out of memory");
    CHECK(fd_err(c.x, nx, ln_loss, &c, dx) < FD_TOL, "layernorm dx differs from finite differences");
    CHECK(fd_err(c.g, c.c, ln_loss, &c, dg) < FD_TOL, "layernorm dg differs from finite differences");
    CHECK(fd_err(c.b, c.c, ln_loss, &c, db) < FD_TOL, "layernorm db differs from finite differences");

    ln_loss(&c);
    float *fx = to_float(c.x, nx), *fg = to_float(c.g, c.c), *fb = to_float(c.b, c.c);
    float *fr = to_float(c.r, nx), *fy = falloc(nx), *mean = falloc(c.n), *rstd = falloc(c.n);
    float *fdx = falloc(nx), *fdg = falloc(c.c), *fdb = falloc(c.c);
    layernorm_forward(fy, mean, rstd, fx, fg, fb, c.n, c.c);
    layernorm_backward(fdx, fdg, fdb, fr, fx, mean, rstd, fg, c.n, c.c, 0);
    CHECK(rel_err(fy, c.y, nx) < FAST_TOL, "fast layernorm forward differs");
    CHECK(rel_err(fdx, dx, nx) < FAST_TOL, "fast layernorm dx differs: %g", rel_err(fdx, dx, nx));
    CHECK(rel_err(fdg, dg, c.c) < FAST_TOL, "fast layernorm dg differs");
    CHECK(rel_err(fdb, db, c.c) < FAST_TOL, "fast layernorm db differs");
    free(c.x); free(c.g); free(c.b); free(c.r); free(c.y); free(dx); free(dg); free(db);
    free(fx); free(fg); free(fb); free(fr); free(fy); free(mean); free(rstd);
    free(fdx); free(fdg); free(fdb);
}

/* -------------------------------------------------------------------- GELU */

typedef struct {
    double *x, *r, *y;
    int n;
} GeluCtx;

static double gelu_loss(void *p)
{
    GeluCtx *c = p;
    ref_gelu_forward(c->y, c->x, c->n);
    return dot(c->y, c->r, (size_t)c->n);
}

static void test_gelu_backward_matches_finite_differences_and_fast_matches_reference(void)
{
    GeluCtx c = {.n = 64};
    c.x = dalloc(c.n); c.r = dalloc(c.n); c.y = dalloc(c.n);
    drand_fill(c.x, c.n, 4); drand_fill(c.r, c.n, 1);
    double *dx = dalloc(c.n);
    ref_gelu_backward(dx, c.r, c.x, c.n);
    CHECK(fd_err(c.x, c.n, gelu_loss, &c, dx) < FD_TOL, "gelu dx differs from finite differences");
    gelu_loss(&c);
    float *fx = to_float(c.x, c.n), *fr = to_float(c.r, c.n), *fy = falloc(c.n), *fdx = falloc(c.n);
    gelu_forward(fy, fx, (size_t)c.n);
    gelu_forward(fy, fx, (size_t)c.n);
    gelu_backward(fdx, fr, fx, fy, (size_t)c.n);
    CHECK(rel_err(fy, c.y, c.n) < FAST_TOL, "fast gelu forward differs");
    CHECK(rel_err(fdx, dx, c.n) < FAST_TOL, "fast gelu dx differs");
    /* the exact (erf) form, not the tanh approximation: gelu(1) = Phi(1) */
    float one = 1.0f, g1;
    gelu_forward(&g1, &one, 1);
    CHECK_NEAR(g1, 0.8413447460685429, 1e-6);
    free(c.x); free(c.r); free(c.y); free(dx); free(fx); free(fr); free(fy); free(fdx);
}

/* --------------------------------------------------------------- attention */

typedef struct {
    double *qkv, *r, *y;
    const int *off;
    int ns, c, h;
} AttCtx;

static double att_loss(void *p)
{
    AttCtx *c = p;
    ref_attention_forward(c->y, c->qkv, c->off, c->ns, c->c, c->h);
    return dot(c->y, c->r, (size_t)c->off[c->ns] * c->c);
}

static void test_attention_backward_matches_finite_differences_and_fast_matches_reference(void)
{
    /* three packed sequences of different lengths, one of a single token */
    static const int off[] = {0, 5, 6, 13};
    AttCtx c = {.off = off, .ns = 3, .c = 8, .h = 2};
    int n = off[3];
    size_t nq = (size_t)n * 3 * c.c, ny = (size_t)n * c.c;
    c.qkv = dalloc(nq); c.r = dalloc(ny); c.y = dalloc(ny);
    drand_fill(c.qkv, nq, 1.5); drand_fill(c.r, ny, 1);
    double *dqkv = dalloc(nq);
    CHECK(ref_attention_backward(dqkv, c.r, c.qkv, off, c.ns, c.c, c.h) == 0, "out of memory");
    CHECK(fd_err(c.qkv, nq, att_loss, &c, dqkv) < FD_TOL,
          "attention dqkv differs from finite differences");
    att_loss(&c);
    float *fq = to_float(c.qkv, nq), *fr = to_float(c.r, ny), *fy = falloc(ny);
    float *probs = falloc(attention_probs_size(off, 3, c.h)), *fd = falloc(nq);
    float *scratch = falloc(7 * 7);
    attention_forward(fy, probs, fq, off, 3, c.c, c.h);
    attention_backward(fd, fr, probs, fq, off, 3, c.c, c.h, scratch);
    CHECK(rel_err(fy, c.y, ny) < FAST_TOL, "fast attention forward differs: %g",
          rel_err(fy, c.y, ny));
    CHECK(rel_err(fd, dqkv, nq) < FAST_TOL, "fast attention dqkv differs: %g",
          rel_err(fd, dqkv, nq));
    /* the single-token sequence attends to itself only: y = its v */
    for (int k = 0; k < c.c; k++)
        CHECK_NEAR(fy[5 * c.c + k], fq[5 * 3 * c.c + 2 * c.c + k], 1e-6);
    free(c.qkv); free(c.r); free(c.y); free(dqkv); free(fq); free(fr); free(fy); free(probs);
    free(fd); free(scratch);
}

/* -------------------------------------------------------- patch embedding */

typedef struct {
    double *img, *w, *b, *r, *y;
    int nb, ci, z, yy, x, pz, py, px, c;
} PeCtx;

static double pe_loss(void *p)
{
    PeCtx *c = p;
    ref_patch_embed_forward(c->y, c->img, c->w, c->b, c->nb, c->ci, c->z, c->yy, c->x, c->pz,
                            c->py, c->px, c->c);
    int nt = (c->z / c->pz) * (c->yy / c->py) * (c->x / c->px);
    return dot(c->y, c->r, (size_t)c->nb * nt * c->c);
}

/* Two input channels (HU windows): a patch holds channel 0's voxels, then channel 1's. */
static void test_patch_embedding_matches_finite_differences_and_fast_matches_reference(void)
{
    PeCtx c = {.nb = 2, .ci = 2, .z = 4, .yy = 6, .x = 4, .pz = 2, .py = 3, .px = 2, .c = 5};
    int nt = 2 * 2 * 2, p = c.ci * c.pz * c.py * c.px;
    size_t vol = (size_t)c.z * c.yy * c.x;
    size_t ni = (size_t)c.nb * c.ci * vol, nw = (size_t)c.c * p, ny = (size_t)c.nb * nt * c.c;
    c.img = dalloc(ni); c.w = dalloc(nw); c.b = dalloc(c.c); c.r = dalloc(ny); c.y = dalloc(ny);
    drand_fill(c.img, ni, 1); drand_fill(c.w, nw, 0.5); drand_fill(c.b, c.c, 0.5);
    drand_fill(c.r, ny, 1);
    double *dw = dalloc(nw), *db = dalloc(c.c);
    ref_patch_embed_backward(dw, db, c.r, c.img, c.nb, c.ci, c.z, c.yy, c.x, c.pz, c.py, c.px,
                             c.c);
    CHECK(fd_err(c.w, nw, pe_loss, &c, dw) < FD_TOL, "patch embed dw differs from finite differences");
    CHECK(fd_err(c.b, c.c, pe_loss, &c, db) < FD_TOL, "patch embed db differs from finite differences");
    pe_loss(&c);
    float *fi = to_float(c.img, ni), *fw = to_float(c.w, nw), *fb = to_float(c.b, c.c);
    float *fr = to_float(c.r, ny), *fy = falloc(ny), *patches = falloc((size_t)c.nb * nt * p);
    float *fdw = falloc(nw), *fdb = falloc(c.c);
    patch_embed_forward(fy, patches, fi, fw, fb, c.nb, c.ci, c.z, c.yy, c.x, c.pz, c.py, c.px,
                        c.c);
    patch_embed_backward(fdw, fdb, fr, patches, c.nb * nt, p, c.c);
    CHECK(rel_err(fy, c.y, ny) < FAST_TOL, "fast patch embed forward differs");
    CHECK(rel_err(fdw, dw, nw) < FAST_TOL, "fast patch embed dw differs");
    CHECK(rel_err(fdb, db, c.c) < FAST_TOL, "fast patch embed db differs");
    /* token 3 of study 1 = (tz 0, ty 1, tx 1); its first voxel is (0, 3, 2) in each channel,
     * channel 1's after the pz py px voxels of channel 0 */
    int pv = c.pz * c.py * c.px;
    CHECK_NEAR(patches[(size_t)(nt + 3) * p], fi[2 * vol + 3 * c.x + 2], 0);
    CHECK_NEAR(patches[(size_t)(nt + 3) * p + pv], fi[3 * vol + 3 * c.x + 2], 0);
    free(fi); free(fw); free(fb); free(fr); free(fy); free(patches); free(fdw); free(fdb);
}

/* ------------------------------------------------- masked attention pooling */

typedef struct {
    double *q, *k, *v, *r, *y;
    const double *bias;
    const int *rb, *ra;
    int nr, na, m, t, c, h;
} PoolCtx;

static double pool_loss(void *p)
{
    PoolCtx *c = p;
    ref_attnpool_forward(c->y, c->q, c->k, c->v, c->bias, c->rb, c->ra, c->nr, c->na, c->m, c->t,
                         c->c, c->h);
    return dot(c->y, c->r, (size_t)c->nr * c->c);
}

static void test_masked_attention_pooling_matches_finite_differences_and_reference(void)
{
    /* 2 studies, 3 anatomies, T = 4 tokens, 2 kept depths (M = 8) */
    enum { NB = 2, NA = 3, T = 4, M = 8, C = 6, H = 2 };
    /* log-coverage biases; -inf: the token holds none of the anatomy */
    const double X = -INFINITY;
    const double bias[NB * NA * T] = {
        0, -0.7, X, X,   X, X, 0, X,   -2.1, 0, -0.1, -1.5,   /* study 0 */
        X, 0, X, -0.3,   X, X, X, X,   X, X, -1.2, 0,         /* study 1: anatomy 1 absent */
    };
    float fbias[NB * NA * T];
    for (int i = 0; i < NB * NA * T; i++)
        fbias[i] = (float)bias[i];
    static const int rb[] = {0, 0, 0, 1, 1}, ra[] = {0, 1, 2, 0, 2};
    PoolCtx c = {.bias = bias, .rb = rb, .ra = ra, .nr = 5, .na = NA, .m = M, .t = T, .c = C, .h = H};
    size_t nq = NA * C, nk = (size_t)NB * M * C, ny = (size_t)c.nr * C;
    c.q = dalloc(nq); c.k = dalloc(nk); c.v = dalloc(nk); c.r = dalloc(ny); c.y = dalloc(ny);
    drand_fill(c.q, nq, 1); drand_fill(c.k, nk, 1); drand_fill(c.v, nk, 1); drand_fill(c.r, ny, 1);
    double *dq = dalloc(nq), *dk = dalloc(nk), *dv = dalloc(nk);
    CHECK(ref_attnpool_backward(dq, dk, dv, c.r, c.q, c.k, c.v, bias, rb, ra, c.nr, NA, M, T, C,
                                H) == 0, "out of memory");
    CHECK(fd_err(c.q, nq, pool_loss, &c, dq) < FD_TOL, "pool dq differs from finite differences");
    CHECK(fd_err(c.k, nk, pool_loss, &c, dk) < FD_TOL, "pool dk differs from finite differences");
    CHECK(fd_err(c.v, nk, pool_loss, &c, dv) < FD_TOL, "pool dv differs from finite differences");
    pool_loss(&c);
    float *fq = to_float(c.q, nq), *fk = to_float(c.k, nk), *fv = to_float(c.v, nk);
    float *fr = to_float(c.r, ny), *fy = falloc(ny), *probs = falloc((size_t)c.nr * H * M);
    float *fdq = falloc(nq), *fdk = falloc(nk), *fdv = falloc(nk);
    float *scratch = falloc(attnpool_scratch_size(3, M, C));
    attnpool_forward(fy, probs, fq, fk, fv, fbias, rb, ra, c.nr, NA, M, T, C, H, scratch);
    attnpool_backward(fdq, fdk, fdv, fr, probs, fq, fk, fv, rb, ra, c.nr, M, C, H, scratch);
    CHECK(rel_err(fy, c.y, ny) < FAST_TOL, "fast pool forward differs: %g", rel_err(fy, c.y, ny));
    CHECK(rel_err(fdq, dq, nq) < FAST_TOL, "fast pool dq differs");
    CHECK(rel_err(fdk, dk, nk) < FAST_TOL, "fast pool dk differs");
    CHECK(rel_err(fdv, dv, nk) < FAST_TOL, "fast pool dv differs");
    /* tokens outside the anatomy get no weight: row 1 (study 0, anatomy 1)
     * holds token 2 only, at both depths, so each depth's copy gets a share
     * by its score alone */
    for (int hh = 0; hh < H; hh++)
        for (int j = 0; j < M; j++)
            if (j % T != 2)
                CHECK(probs[((size_t)1 * H + hh) * M + j] == 0.0f, "masked key %d has weight", j);
    free(c.q); free(c.k); free(c.v); free(c.r); free(c.y); free(dq); free(dk); free(dv);
    free(fq); free(fk); free(fv); free(fr); free(fy); free(probs); free(fdq); free(fdk); free(fdv);
    free(scratch);
}

/* ------------------------------------------------------------ L2 normalise */

typedef struct {
    double *x, *r, *y;
    int n, d;
} L2Ctx;

static double l2_loss(void *p)
{
    L2Ctx *c = p;
    ref_l2norm_forward(c->y, c->x, c->n, c->d);
    return dot(c->y, c->r, (size_t)c->n * c->d);
}

static void test_l2norm_backward_matches_finite_differences_and_fast_matches_reference(void)
{
    L2Ctx c = {.n = 3, .d = 7};
    size_t nx = (size_t)c.n * c.d;
    c.x = dalloc(nx); c.r = dalloc(nx); c.y = dalloc(nx);
    drand_fill(c.x, nx, 1); drand_fill(c.r, nx, 1);
    double *dx = dalloc(nx);
    ref_l2norm_backward(dx, c.r, c.x, c.n, c.d);
    CHECK(fd_err(c.x, nx, l2_loss, &c, dx) < FD_TOL, "l2norm dx differs from finite differences");
    l2_loss(&c);
    float *fx = to_float(c.x, nx), *fr = to_float(c.r, nx), *fy = falloc(nx), *fdx = falloc(nx);
    float *norm = falloc(c.n);
    l2norm_forward(fy, norm, fx, c.n, c.d);
    l2norm_backward(fdx, fr, fy, norm, c.n, c.d);
    CHECK(rel_err(fy, c.y, nx) < FAST_TOL, "fast l2norm forward differs");
    CHECK(rel_err(fdx, dx, nx) < FAST_TOL, "fast l2norm dx differs");
    double s = 0;
    for (int j = 0; j < c.d; j++)
        s += (double)fy[j] * fy[j];
    CHECK_NEAR(s, 1.0, 1e-6);
    free(c.x); free(c.r); free(c.y); free(dx); free(fx); free(fr); free(fy); free(fdx); free(norm);
}

/* ------------------------------------------------------------------ losses */

typedef struct {
    double *img, *txt, *t, tau;
    int n, d;
} LossCtx;

static double contrast_only(void *p)
{
    LossCtx *c = p;
    double l, *gi = dalloc((size_t)c->n * c->d), *gt = dalloc((size_t)c->n * c->d);
    ref_contrast_loss(&l, gi, gt, NULL, c->img, c->txt, c->t, c->n, c->d, c->tau);
    free(gi);
    free(gt);
    return l;
}

/* One batch of 6 samples: statuses, texts and disease sets chosen so each
 * rule of each mode fires at least once. */
enum { LN = 6, LD = 5, LWORDS = 2 };
static const uint8_t l_abn[LN] = {0, 0, 1, 1, 1, 1};
static const int l_text[LN] = {10, 11, 20, 21, 20, 22};
static const uint64_t l_dis[LN * LWORDS] = {
    0, 0,   0, 0,
    0x3, 0,            /* {0, 1} */
    0x1, 1ull << 3,    /* {0, 67} */
    0x3, 0,            /* {0, 1}: identical to sample 2 (and the same text) */
    0, 0,              /* abnormal, disease unknown */
};

static void check_loss_mode(LossMode mode)
{
    LossCtx c = {.n = LN, .d = LD, .tau = 0.3};
    size_t nf = (size_t)LN * LD;
    c.img = dalloc(nf); c.txt = dalloc(nf); c.t = dalloc((size_t)LN * LN);
    drand_fill(c.img, nf, 1); drand_fill(c.txt, nf, 1);
    ref_loss_targets(c.t, (int)mode, LN, l_abn, l_text, l_dis, LWORDS);
    float ft[LN * LN];
    loss_targets(ft, mode, LN, l_abn, l_text, l_dis, LWORDS);
    CHECK(rel_err(ft, c.t, LN * LN) < 1e-7, "%s: fast targets differ from the reference",
          loss_mode_name(mode));

    double loss, dtau, *di = dalloc(nf), *dt = dalloc(nf);
    CHECK(ref_contrast_loss(&loss, di, dt, &dtau, c.img, c.txt, c.t, LN, LD, c.tau) == 0, "oom");
    CHECK(fd_err(c.img, nf, contrast_only, &c, di) < FD_TOL, "%s: dimg differs from finite differences",
          loss_mode_name(mode));
    CHECK(fd_err(c.txt, nf, contrast_only, &c, dt) < FD_TOL, "%s: dtxt differs from finite differences",
          loss_mode_name(mode));
    double dtau_n;
    {
        double keep = c.tau;
        c.tau = keep + 1e-6;
        double lp = contrast_only(&c);
        c.tau = keep - 1e-6;
        double lm = contrast_only(&c);
        c.tau = keep;
        dtau_n = (lp - lm) / 2e-6;
    }
    CHECK_NEAR(dtau, dtau_n, 1e-6 * (1 + fabs(dtau_n)));

    float *fi = to_float(c.img, nf), *fx = to_float(c.txt, nf), *fdi = falloc(nf), *fdt = falloc(nf);
    float *scratch = falloc(contrast_scratch_size(LN)), fdtau;
    float fl = contrast_loss(fdi, fdt, &fdtau, fi, fx, ft, LN, LD, (float)c.tau, scratch);
    CHECK_NEAR(fl, loss, 1e-5 * (1 + fabs(loss)));
    CHECK(rel_err(fdi, di, nf) < FAST_TOL, "%s: fast dimg differs", loss_mode_name(mode));
    CHECK(rel_err(fdt, dt, nf) < FAST_TOL, "%s: fast dtxt differs", loss_mode_name(mode));
    CHECK_NEAR(fdtau, dtau, 1e-4 * (1 + fabs(dtau)));
    free(c.img); free(c.txt); free(c.t); free(di); free(dt); free(fi); free(fx); free(fdi);
    free(fdt); free(scratch);
}

/* ------------------------------------------------------------- supervised */

typedef struct {
    double *f, *w, *b, tau;
    const int8_t *y;
    int n, d, k;
} SupCtx;

static double sup_only(void *p)
{
    SupCtx *c = p;
    return ref_sup_loss(NULL, NULL, NULL, NULL, c->f, c->w, c->b, c->tau, c->y, c->n, c->d, c->k);
}

/* 4 anatomy rows, 5 tasks: each row labels the tasks of its anatomy (1, 0,
 * or -1 uncertain), the other tasks are -1; one row has no label at all. */
static void test_supervised_loss_matches_finite_differences_and_reference(void)
{
    enum { SN = 4, SD = 6, SK = 5 };
    static const int8_t y[SN * SK] = {
        1, 0, -1, -1, -1,
        0, -1, -1, -1, -1,
        -1, -1, 1, 1, 0,
        -1, -1, -1, -1, -1,
    };
    SupCtx c = {.y = y, .n = SN, .d = SD, .k = SK, .tau = 0.3};
    c.f = dalloc(SN * SD); c.w = dalloc(SK * SD); c.b = dalloc(SK);
    drand_fill(c.f, SN * SD, 1); drand_fill(c.w, SK * SD, 1); drand_fill(c.b, SK, 0.5);
    double *df = dalloc(SN * SD), *dw = dalloc(SK * SD), *db = dalloc(SK), dtau;
    double loss = ref_sup_loss(df, dw, db, &dtau, c.f, c.w, c.b, c.tau, y, SN, SD, SK);
    CHECK(fd_err(c.f, SN * SD, sup_only, &c, df) < FD_TOL, "supervised df differs from finite differences");
    CHECK(fd_err(c.w, SK * SD, sup_only, &c, dw) < FD_TOL, "supervised dW differs from finite differences");
    CHECK(fd_err(c.b, SK, sup_only, &c, db) < FD_TOL, "supervised db differs from finite differences");
    CHECK(fd_err(&c.tau, 1, sup_only, &c, &dtau) < FD_TOL, "supervised dtau differs from finite differences");
    /* rows without a label and tasks of other anatomies get no gradient */
    for (int j = 0; j < SD; j++)
        CHECK(df[3 * SD + j] == 0.0, "an unlabelled row has a gradient");
    /* the float path the network takes (net.c's sup_step): linear head over
     * tau plus bias, sup_bce, linear backward of dz / tau */
    float *ff = to_float(c.f, SN * SD), *fw = to_float(c.w, SK * SD), *fb = to_float(c.b, SK);
    float *z = falloc(SN * SK), *dz = falloc(SN * SK), *fdf = falloc(SN * SD);
    float *fdw = falloc(SK * SD), *fdb = falloc(SK), ftau = (float)c.tau;
    linear_forward(z, ff, fw, NULL, SN, SD, SK);
    for (int i = 0; i < SN * SK; i++)
        z[i] = z[i] / ftau + fb[i % SK];
    float fl = sup_bce(dz, z, y, SN * SK);
    for (int i = 0; i < SN * SK; i++) {
        fdb[i % SK] += dz[i];
        dz[i] /= ftau;
    }
    linear_backward(fdf, fdw, NULL, dz, ff, fw, SN, SD, SK, 0);
    CHECK_NEAR(fl, loss, 1e-5 * (1 + fabs(loss)));
    CHECK(rel_err(fdf, df, SN * SD) < FAST_TOL, "fast supervised df differs");
    CHECK(rel_err(fdw, dw, SK * SD) < FAST_TOL, "fast supervised dW differs");
    CHECK(rel_err(fdb, db, SK) < FAST_TOL, "fast supervised db differs");
    /* no label at all: no loss, no gradient; a large logit does not overflow */
    int8_t none[3] = {-1, -1, -1};
    float big[3] = {800.0f, -800.0f, 3.0f}, dbig[3];
    CHECK(sup_bce(dbig, big, none, 3) == 0.0f && dbig[0] == 0.0f, "no label should give 0");
    int8_t yb[3] = {0, 1, -1};
    float lb = sup_bce(dbig, big, yb, 3);
    CHECK(isfinite(lb) && fabs(lb - 800.0) < 1e-3 && fabs(dbig[0] - 0.5f) < 1e-6,
          "confidently wrong logits: loss %g (800 expected), d %g", lb, dbig[0]);
    free(c.f); free(c.w); free(c.b); free(df); free(dw); free(db); free(ff); free(fw); free(fb);
    free(z); free(dz); free(fdf); free(fdw); free(fdb);
}

static void test_global_loss_matches_finite_differences_and_reference(void)
{
    check_loss_mode(LOSS_GLOBAL);
}
static void test_fine_loss_matches_finite_differences_and_reference(void) { check_loss_mode(LOSS_FINE); }
static void test_fine_fn_loss_matches_finite_differences_and_reference(void)
{
    check_loss_mode(LOSS_FINE_FN);
}
static void test_fine_fn_disease_loss_matches_finite_differences_and_reference(void)
{
    check_loss_mode(LOSS_FINE_FN_DISEASE);
}

static void test_targets_follow_each_mode_rules(void)
{
    float t[LN * LN];
    loss_targets(t, LOSS_FINE, LN, l_abn, l_text, l_dis, LWORDS);
    for (int i = 0; i < LN; i++)
        for (int j = 0; j < LN; j++)
            CHECK(t[i * LN + j] == (i == j), "fine: target (%d, %d) = %g", i, j, t[i * LN + j]);
    loss_targets(t, LOSS_FINE_FN, LN, l_abn, l_text, l_dis, LWORDS);
    CHECK(t[0 * LN + 1] == 1.0f, "fine-fn: two normal samples are not positives");
    CHECK(t[2 * LN + 4] == 1.0f, "fine-fn: identical texts are not positives");
    CHECK(t[2 * LN + 3] == 0.0f, "fine-fn: abnormal pair with different texts is positive");
    CHECK(t[0 * LN + 2] == 0.0f, "fine-fn: normal-abnormal pair is positive");
    loss_targets(t, LOSS_FINE_FN_DISEASE, LN, l_abn, l_text, l_dis, LWORDS);
    CHECK_NEAR(t[2 * LN + 3], 1.0 / 3.0, 1e-7);   /* {0,1} vs {0,67}: 1 shared of 3 */
    CHECK_NEAR(t[3 * LN + 2], 1.0 / 3.0, 1e-7);
    CHECK(t[2 * LN + 5] == 0.0f, "fine-fn-disease: unknown disease pairs with a known one");
    CHECK(t[0 * LN + 3] == 0.0f, "fine-fn-disease: normal-abnormal pair is positive");
    LossMode m;
    CHECK(loss_mode_parse("fine-fn-disease", &m) == 0 && m == LOSS_FINE_FN_DISEASE,
          "loss mode name does not parse");
    CHECK(loss_mode_parse("clip", &m) == -1, "unknown loss mode accepted");
}

int main(void)
{
    rng_seed(&g_rng, 1234, 0);
    RUN(test_linear_backward_matches_finite_differences_and_fast_matches_reference);
    RUN(test_layernorm_backward_matches_finite_differences_and_fast_matches_reference);
    RUN(test_gelu_backward_matches_finite_differences_and_fast_matches_reference);
    RUN(test_attention_backward_matches_finite_differences_and_fast_matches_reference);
    RUN(test_patch_embedding_matches_finite_differences_and_fast_matches_reference);
    RUN(test_masked_attention_pooling_matches_finite_differences_and_reference);
    RUN(test_l2norm_backward_matches_finite_differences_and_fast_matches_reference);
    RUN(test_global_loss_matches_finite_differences_and_reference);
    RUN(test_fine_loss_matches_finite_differences_and_reference);
    RUN(test_fine_fn_loss_matches_finite_differences_and_reference);
    RUN(test_fine_fn_disease_loss_matches_finite_differences_and_reference);
    RUN(test_targets_follow_each_mode_rules);
    RUN(test_supervised_loss_matches_finite_differences_and_reference);
    return test_finish();
}
