#include "ops.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "vmath.h"

uint64_t ops_flops;

void gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
          const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0) {
        /* An empty sum: C = beta C (BLAS would do the same, but some
         * builds reject k = 0 with lda < 1). */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                c[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[(size_t)i * ldc + j];
        return;
    }
    ops_flops += 2ull * (uint64_t)m * (uint64_t)n * (uint64_t)k;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m,
                n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

FV_VECTOR_CLONES
void vec_add(float *y, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

FV_VECTOR_CLONES
void vec_acc(float *y, const float *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += a[i];
}

/* ------------------------------------------------------------------ linear */

void linear_forward(float *y, const float *x, const float *w, const float *b, int n, int c, int o)
{
    if (b) {
        /* Start from the bias rows and let sgemm add x W^T (beta = 1):
         * one pass over y instead of two. */
        for (int i = 0; i < n; i++)
            memcpy(y + (size_t)i * o, b, (size_t)o * sizeof *y);
        gemm(0, 1, n, o, c, 1.0f, x, c, w, c, 1.0f, y, o);
    } else {
        gemm(0, 1, n, o, c, 1.0f, x, c, w, c, 0.0f, y, o);
    }
}

void linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                     const float *w, int n, int c, int o, int accumulate)
{
    if (dx)
        gemm(0, 0, n, c, o, 1.0f, dy, o, w, c, accumulate ? 1.0f : 0.0f, dx, c);
    if (dw)
        gemm(1, 0, o, c, n, 1.0f, dy, o, x, c, 1.0f, dw, c);
    if (db)
        for (int i = 0; i < n; i++) {
            const float *r = dy + (size_t)i * o;
            for (int j = 0; j < o; j++)
                db[j] += r[j];
        }
}

/* -------------------------------------------------------------- layer norm */

FV_VECTOR_CLONES
void layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *g,
                       const float *b, int n, int c)
{
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * c;
        float *yi = y + (size_t)i * c;
        float m = 0.0f;
        for (int j = 0; j < c; j++)
            m += xi[j];
        m /= (float)c;
        float v = 0.0f;
        for (int j = 0; j < c; j++) {
            float d = xi[j] - m;
            v += d * d;
        }
        v /= (float)c;
        float r = 1.0f / sqrtf(v + 1e-5f);
        for (int j = 0; j < c; j++)
            yi[j] = (xi[j] - m) * r * g[j] + b[j];
        mean[i] = m;
        rstd[i] = r;
    }
}

FV_VECTOR_CLONES
void layernorm_backward(float *dx, float *dg, float *db, const float *dy, const float *x,
                        const float *mean, const float *rstd, const float *g, int n, int c,
                        int accumulate)
{
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * c, *dyi = dy + (size_t)i * c;
        float *dxi = dx + (size_t)i * c;
        float m = mean[i], r = rstd[i];
        /* dxhat = dy g; dx = r (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) */
        float s1 = 0.0f, s2 = 0.0f;
        for (int j = 0; j < c; j++) {
            float xh = (xi[j] - m) * r;
            float dxh = dyi[j] * g[j];
            s1 += dxh;
            s2 += dxh * xh;
            dg[j] += dyi[j] * xh;
            db[j] += dyi[j];
        }
        s1 /= (float)c;
        s2 /= (float)c;
        for (int j = 0; j < c; j++) {
            float xh = (xi[j] - m) * r;
            float v = r * (dyi[j] * g[j] - s1 - xh * s2);
            dxi[j] = accumulate ? dxi[j] + v : v;
        }
    }
}

/* -------------------------------------------------------------------- GELU */

FV_VECTOR_CLONES
void gelu_forward(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = 0.5f * x[i] * (1.0f + verff(x[i] * (float)M_SQRT1_2));
}

FV_VECTOR_CLONES
void gelu_backward(float *dx, const float *dy, const float *x, const float *y, size_t n)
{
    const float inv_sqrt_2pi = 0.3989422804014327f;
    for (size_t i = 0; i < n; i++) {
        float xi = x[i];
        /* Phi(x) = gelu(x) / x; near 0, where the quotient loses digits, it is 1/2 + x phi(0) */
        float cdf = xi > 1e-3f || xi < -1e-3f ? y[i] / xi : 0.5f + inv_sqrt_2pi * xi;
        float pdf = inv_sqrt_2pi * vexpf(-0.5f * xi * xi);
        dx[i] = dy[i] * (cdf + xi * pdf);
    }
}

/* --------------------------------------------------------------- attention */

size_t attention_probs_size(const int *off, int n_seq, int h)
{
    size_t o = 0;
    for (int i = 0; i < n_seq; i++) {
        size_t len = (size_t)(off[i + 1] - off[i]);
        o += len * len;
    }
    return o * (size_t)h;
}

/* Sum of a[0..n) with four running sums (the loop then pipelines). */
static float sum4(const float *a, int n)
{
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        s0 += a[j];
        s1 += a[j + 1];
        s2 += a[j + 2];
        s3 += a[j + 3];
    }
    for (; j < n; j++)
        s0 += a[j];
    return (s0 + s1) + (s2 + s3);
}

/* Largest of a[0..n), n >= 1, with four running maxima. */
static float max4(const float *a, int n)
{
    float m0 = a[0], m1 = a[0], m2 = a[0], m3 = a[0];
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        m0 = a[j] > m0 ? a[j] : m0;
        m1 = a[j + 1] > m1 ? a[j + 1] : m1;
        m2 = a[j + 2] > m2 ? a[j + 2] : m2;
        m3 = a[j + 3] > m3 ? a[j + 3] : m3;
    }
    for (; j < n; j++)
        m0 = a[j] > m0 ? a[j] : m0;
    m0 = m1 > m0 ? m1 : m0;
    m2 = m3 > m2 ? m3 : m2;
    return m2 > m0 ? m2 : m0;
}

/* Softmax of each row of a (rows, cols) matrix in place. */
FV_VECTOR_CLONES
static void softmax_rows(float *a, int rows, int cols, int ld)
{
    for (int i = 0; i < rows; i++) {
        float *r = a + (size_t)i * ld;
        float mx = max4(r, cols);
        for (int j = 0; j < cols; j++)
            r[j] = vexpf(r[j] - mx);
        float inv = 1.0f / sum4(r, cols);
        for (int j = 0; j < cols; j++)
            r[j] *= inv;
    }
}

void attention_forward(float *y, float *probs, const float *qkv, const int *off, int n_seq,
                       int c, int h)
{
    int dh = c / h, ld = 3 * c;
    float scale = 1.0f / sqrtf((float)dh);
    size_t po = 0;
    for (int s = 0; s < n_seq; s++) {
        int len = off[s + 1] - off[s];
        const float *base = qkv + (size_t)off[s] * ld;
        for (int hh = 0; hh < h; hh++) {
            float *p = probs + po + (size_t)hh * len * len;
            const float *q = base + hh * dh, *k = base + c + hh * dh, *v = base + 2 * c + hh * dh;
            gemm(0, 1, len, len, dh, scale, q, ld, k, ld, 0.0f, p, len);
            softmax_rows(p, len, len, len);
            gemm(0, 0, len, dh, len, 1.0f, p, len, v, ld, 0.0f, y + (size_t)off[s] * c + hh * dh,
                 c);
        }
        po += (size_t)h * len * len;
    }
}

void attention_backward(float *dqkv, const float *dy, const float *probs, const float *qkv,
                        const int *off, int n_seq, int c, int h, float *scratch)
{
    int dh = c / h, ld = 3 * c;
    float scale = 1.0f / sqrtf((float)dh);
    size_t po = 0;
    for (int s = 0; s < n_seq; s++) {
        int len = off[s + 1] - off[s];
        const float *base = qkv + (size_t)off[s] * ld;
        float *dbase = dqkv + (size_t)off[s] * ld;
        const float *dys = dy + (size_t)off[s] * c;
        for (int hh = 0; hh < h; hh++) {
            const float *p = probs + po + (size_t)hh * len * len;
            const float *q = base + hh * dh, *k = base + c + hh * dh, *v = base + 2 * c + hh * dh;
            float *dq = dbase + hh * dh, *dk = dbase + c + hh * dh, *dv = dbase + 2 * c + hh * dh;
            const float *dyh = dys + hh * dh;
            /* dv = P^T dy; dP = dy v^T; dS = P (dP - rowsum(dP P)) */
            gemm(1, 0, len, dh, len, 1.0f, p, len, dyh, c, 0.0f, dv, ld);
            float *ds = scratch;
            gemm(0, 1, len, len, dh, 1.0f, dyh, c, v, ld, 0.0f, ds, len);
            for (int i = 0; i < len; i++) {
                const float *pi = p + (size_t)i * len;
                float *di = ds + (size_t)i * len;
                float dot = 0.0f;
                for (int j = 0; j < len; j++)
                    dot += pi[j] * di[j];
                for (int j = 0; j < len; j++)
                    di[j] = pi[j] * (di[j] - dot);
            }
            gemm(0, 0, len, dh, len, scale, ds, len, k, ld, 0.0f, dq, ld);
            gemm(1, 0, len, dh, len, scale, ds, len, q, ld, 0.0f, dk, ld);
        }
        po += (size_t)h * len * len;
    }
}

/* -------------------------------------------------------- patch embedding */

FV_VECTOR_CLONES
void patchify(float *patches, const float *img, int nb, int ci, int z, int y, int x, int pz,
              int py, int px)
{
    int tz = z / pz, ty = y / py, tx = x / px;
    size_t p = (size_t)ci * pz * py * px, vol = (size_t)z * y * x;
    for (int b = 0; b < nb; b++)
        for (int iz = 0; iz < tz; iz++)
            for (int iy = 0; iy < ty; iy++)
                for (int ix = 0; ix < tx; ix++) {
                    size_t t = ((size_t)b * tz * ty + (size_t)iz * ty + iy) * tx + ix;
                    float *dst = patches + t * p;
                    for (int ch = 0; ch < ci; ch++) {
                        const float *im = img + ((size_t)b * ci + ch) * vol;
                        for (int dz = 0; dz < pz; dz++)
                            for (int dy = 0; dy < py; dy++) {
                                const float *src = im + ((size_t)(iz * pz + dz) * y + iy * py + dy) *
                                                            x + (size_t)ix * px;
                                memcpy(dst, src, (size_t)px * sizeof *dst);
                                dst += px;
                            }
                    }
                }
}

void patch_embed_forward(float *y, float *patches, const float *img, const float *w,
                         const float *b, int nb, int ci, int z, int yy, int x, int pz, int py,
                         int px, int c)
{
    patchify(patches, img, nb, ci, z, yy, x, pz, py, px);
    int nt = nb * (z / pz) * (yy / py) * (x / px);
    linear_forward(y, patches, w, b, nt, ci * pz * py * px, c);
}

void patch_embed_backward(float *dw, float *db, const float *dy, const float *patches, int nt,
                          int p, int c)
{
    linear_backward(NULL, dw, db, dy, patches, NULL, nt, p, c, 0);
}

/* ------------------------------------------------- masked attention pooling */

size_t attnpool_scratch_size(int rows_per_study, int m, int c)
{
    return (size_t)rows_per_study * (size_t)(2 * c + m);
}

void attnpool_forward(float *y, float *probs, const float *q, const float *k, const float *v,
                      const float *bias, const int *rb, const int *ra, int nr, int na, int m,
                      int t, int c, int h, float *scratch)
{
    int dh = c / h;
    float scale = 1.0f / sqrtf((float)dh);
    float *qrows = scratch; /* (rows of one study, C) */
    for (int r0 = 0; r0 < nr;) {
        int b = rb[r0], r1 = r0;
        while (r1 < nr && rb[r1] == b)
            r1++;
        int nrb = r1 - r0;
        for (int i = 0; i < nrb; i++)
            memcpy(qrows + (size_t)i * c, q + (size_t)ra[r0 + i] * c, (size_t)c * sizeof *q);
        const float *kb = k + (size_t)b * m * c, *vb = v + (size_t)b * m * c;
        for (int hh = 0; hh < h; hh++) {
            /* probs rows of this head: row r at probs + (r H + hh) M */
            float *p = probs + ((size_t)r0 * h + hh) * m;
            int ldp = h * m;
            gemm(0, 1, nrb, m, dh, scale, qrows + hh * dh, c, kb + hh * dh, c, 0.0f, p, ldp);
            for (int i = 0; i < nrb; i++) {
                float *pr = p + (size_t)i * ldp;
                const float *bk = bias + ((size_t)b * na + ra[r0 + i]) * t;
                float mx = -FLT_MAX;
                for (int j0 = 0; j0 < m; j0 += t)
                    for (int j = 0; j < t; j++) {
                        pr[j0 + j] += bk[j];
                        mx = pr[j0 + j] > mx ? pr[j0 + j] : mx;
                    }
                for (int j0 = 0; j0 < m; j0 += t)
                    for (int j = 0; j < t; j++)
                        pr[j0 + j] = bk[j] > -FLT_MAX ? vexpf(pr[j0 + j] - mx) : 0.0f;
                float inv = 1.0f / sum4(pr, m);
                for (int j = 0; j < m; j++)
                    pr[j] *= inv;
            }
            gemm(0, 0, nrb, dh, m, 1.0f, p, ldp, vb + hh * dh, c, 0.0f,
                 y + (size_t)r0 * c + hh * dh, c);
        }
        r0 = r1;
    }
}

void attnpool_backward(float *dq, float *dk, float *dv, const float *dy, const float *probs,
                       const float *q, const float *k, const float *v, const int *rb,
                       const int *ra, int nr, int m, int c, int h, float *scratch)
{
    int dh = c / h;
    float scale = 1.0f / sqrtf((float)dh);
    for (int r0 = 0; r0 < nr;) {
        int b = rb[r0], r1 = r0;
        while (r1 < nr && rb[r1] == b)
            r1++;
        int nrb = r1 - r0;
        float *qrows = scratch;                   /* (nrb, C) */
        float *dqrows = qrows + (size_t)nrb * c;  /* (nrb, C) */
        float *ds = dqrows + (size_t)nrb * c;     /* (nrb, M) */
        for (int i = 0; i < nrb; i++)
            memcpy(qrows + (size_t)i * c, q + (size_t)ra[r0 + i] * c, (size_t)c * sizeof *q);
        const float *kb = k + (size_t)b * m * c, *vb = v + (size_t)b * m * c;
        float *dkb = dk + (size_t)b * m * c, *dvb = dv + (size_t)b * m * c;
        for (int hh = 0; hh < h; hh++) {
            const float *p = probs + ((size_t)r0 * h + hh) * m;
            int ldp = h * m;
            const float *dyh = dy + (size_t)r0 * c + hh * dh;
            gemm(1, 0, m, dh, nrb, 1.0f, p, ldp, dyh, c, 1.0f, dvb + hh * dh, c);
            gemm(0, 1, nrb, m, dh, 1.0f, dyh, c, vb + hh * dh, c, 0.0f, ds, m);
            for (int i = 0; i < nrb; i++) {
                const float *pi = p + (size_t)i * ldp;
                float *di = ds + (size_t)i * m;
                float dot = 0.0f;
                for (int j = 0; j < m; j++)
                    dot += pi[j] * di[j];
                for (int j = 0; j < m; j++)
                    di[j] = pi[j] * (di[j] - dot);
            }
            gemm(0, 0, nrb, dh, m, scale, ds, m, kb + hh * dh, c, 0.0f, dqrows + hh * dh, c);
            gemm(1, 0, m, dh, nrb, scale, ds, m, qrows + hh * dh, c, 1.0f, dkb + hh * dh, c);
        }
        for (int i = 0; i < nrb; i++)
            vec_acc(dq + (size_t)ra[r0 + i] * c, dqrows + (size_t)i * c, (size_t)c);
        r0 = r1;
    }
}

/* ------------------------------------------------------------ L2 normalise */

FV_VECTOR_CLONES
void l2norm_forward(float *y, float *norm, const float *x, int n, int d)
{
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d;
        float s = 0.0f;
        for (int j = 0; j < d; j++)
            s += xi[j] * xi[j];
        float nr = sqrtf(s);
        norm[i] = nr;
        float inv = 1.0f / (nr > 1e-12f ? nr : 1e-12f);
        for (int j = 0; j < d; j++)
            y[(size_t)i * d + j] = xi[j] * inv;
    }
}

FV_VECTOR_CLONES
void l2norm_backward(float *dx, const float *dy, const float *y, const float *norm, int n, int d)
{
    for (int i = 0; i < n; i++) {
        const float *yi = y + (size_t)i * d, *dyi = dy + (size_t)i * d;
        float *dxi = dx + (size_t)i * d;
        if (norm[i] <= 1e-12f) {
            /* Below the clamp y = x / 1e-12 is linear in x. */
            for (int j = 0; j < d; j++)
                dxi[j] = dyi[j] * 1e12f;
            continue;
        }
        float dot = 0.0f;
        for (int j = 0; j < d; j++)
            dot += yi[j] * dyi[j];
        float inv = 1.0f / norm[i];
        for (int j = 0; j < d; j++)
            dxi[j] = (dyi[j] - yi[j] * dot) * inv;
    }
}
