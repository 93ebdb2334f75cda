#include "ops_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ linear */

void ref_linear_forward(double *y, const double *x, const double *w, const double *b, int n,
                        int c, int o)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < o; j++) {
            double s = b ? b[j] : 0.0;
            for (int k = 0; k < c; k++)
                s += x[i * c + k] * w[j * c + k];
            y[i * o + j] = s;
        }
}

void ref_linear_backward(double *dx, double *dw, double *db, const double *dy, const double *x,
                         const double *w, int n, int c, int o)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < c; k++) {
            double s = 0.0;
            for (int j = 0; j < o; j++)
                s += dy[i * o + j] * w[j * c + k];
            if (dx)
                dx[i * c + k] = s;
        }
    for (int j = 0; j < o; j++)
        for (int k = 0; k < c; k++) {
            double s = 0.0;
            for (int i = 0; i < n; i++)
                s += dy[i * o + j] * x[i * c + k];
            if (dw)
                dw[j * c + k] += s;
        }
    if (db)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < o; j++)
                db[j] += dy[i * o + j];
}

/* -------------------------------------------------------------- layer norm */

void ref_layernorm_forward(double *y, const double *x, const double *g, const double *b, int n,
                           int c)
{
    for (int i = 0; i < n; i++) {
        double m = 0.0, v = 0.0;
        for (int k = 0; k < c; k++)
            m += x[i * c + k];
        m /= c;
        for (int k = 0; k < c; k++)
            v += (x[i * c + k] - m) * (x[i * c + k] - m);
        v /= c;
        for (int k = 0; k < c; k++)
            y[i * c + k] = (x[i * c + k] - m) / sqrt(v + 1e-5) * g[k] + b[k];
    }
}

/* Written from the Jacobian itself: dx_k = sum_j dy_j g_j d xhat_j / d x_k
 * with d xhat_j / d x_k = r (delta_jk - 1/c) - xhat_j xhat_k r / c. */
int ref_layernorm_backward(double *dx, double *dg, double *db, const double *dy,
                            const double *x, const double *g, int n, int c)
{
    double *xh = malloc((size_t)c * sizeof *xh);
    if (!xh)
        return -1;
    for (int i = 0; i < n; i++) {
        double m = 0.0, v = 0.0;
        for (int k = 0; k < c; k++)
            m += x[i * c + k];
        m /= c;
        for (int k = 0; k < c; k++)
            v += (x[i * c + k] - m) * (x[i * c + k] - m);
        v /= c;
        double r = 1.0 / sqrt(v + 1e-5);
        for (int k = 0; k < c; k++)
            xh[k] = (x[i * c + k] - m) * r;
        for (int k = 0; k < c; k++) {
            double s = 0.0;
            for (int j = 0; j < c; j++) {
                double jac = r * ((j == k) - 1.0 / c) - xh[j] * xh[k] * r / c;
                s += dy[i * c + j] * g[j] * jac;
            }
            dx[i * c + k] = s;
            dg[k] += dy[i * c + k] * xh[k];
            db[k] += dy[i * c + k];
        }
    }
    free(xh);
    return 0;
}

/* -------------------------------------------------------------------- GELU */

void ref_gelu_forward(double *y, const double *x, int n)
{
    for (int i = 0; i < n; i++)
        y[i] = 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0)));
}

void ref_gelu_backward(double *dx, const double *dy, const double *x, int n)
{
    for (int i = 0; i < n; i++) {
        double phi = exp(-0.5 * x[i] * x[i]) / sqrt(2.0 * M_PI);
        double cdf = 0.5 * (1.0 + erf(x[i] / sqrt(2.0)));
        dx[i] = dy[i] * (cdf + x[i] * phi);
    }
}

/* --------------------------------------------------------------- attention */

/* Softmax probabilities of query row i of head hh in sequence [s0, s1). */
static void attn_row(double *p, const double *qkv, int s0, int s1, int i, int c, int h, int hh)
{
    int dh = c / h, len = s1 - s0;
    double mx = -INFINITY, sum = 0.0;
    for (int j = 0; j < len; j++) {
        double s = 0.0;
        for (int d = 0; d < dh; d++)
            s += qkv[(size_t)i * 3 * c + hh * dh + d] *
                 qkv[(size_t)(s0 + j) * 3 * c + c + hh * dh + d];
        p[j] = s / sqrt((double)dh);
        if (p[j] > mx)
            mx = p[j];
    }
    for (int j = 0; j < len; j++) {
        p[j] = exp(p[j] - mx);
        sum += p[j];
    }
    for (int j = 0; j < len; j++)
        p[j] /= sum;
}

int ref_attention_forward(double *y, const double *qkv, const int *off, int n_seq, int c, int h)
{
    int dh = c / h;
    for (int s = 0; s < n_seq; s++) {
        int len = off[s + 1] - off[s];
        double *p = malloc((size_t)len * sizeof *p);
        if (!p)
            return -1;
        for (int i = off[s]; i < off[s + 1]; i++)
            for (int hh = 0; hh < h; hh++) {
                attn_row(p, qkv, off[s], off[s + 1], i, c, h, hh);
                for (int d = 0; d < dh; d++) {
                    double acc = 0.0;
                    for (int j = 0; j < len; j++)
                        acc += p[j] * qkv[(size_t)(off[s] + j) * 3 * c + 2 * c + hh * dh + d];
                    y[(size_t)i * c + hh * dh + d] = acc;
                }
            }
        free(p);
    }
    return 0;
}

int ref_attention_backward(double *dqkv, const double *dy, const double *qkv, const int *off,
                            int n_seq, int c, int h)
{
    int dh = c / h;
    double scale = 1.0 / sqrt((double)dh);
    memset(dqkv, 0, (size_t)off[n_seq] * 3 * c * sizeof *dqkv);
    for (int s = 0; s < n_seq; s++) {
        int len = off[s + 1] - off[s];
        double *p = malloc((size_t)len * sizeof *p), *dp = malloc((size_t)len * sizeof *dp);
        if (!p || !dp) {
            free(p);
            free(dp);
            return -1;
        }
        for (int i = off[s]; i < off[s + 1]; i++)
            for (int hh = 0; hh < h; hh++) {
                attn_row(p, qkv, off[s], off[s + 1], i, c, h, hh);
                /* y_i = sum_j p_j v_j: dv_j += p_j dy_i; dp_j = dy_i . v_j */
                for (int j = 0; j < len; j++) {
                    const double *vj = qkv + (size_t)(off[s] + j) * 3 * c + 2 * c + hh * dh;
                    double *dvj = dqkv + (size_t)(off[s] + j) * 3 * c + 2 * c + hh * dh;
                    dp[j] = 0.0;
                    for (int d = 0; d < dh; d++) {
                        dvj[d] += p[j] * dy[(size_t)i * c + hh * dh + d];
                        dp[j] += dy[(size_t)i * c + hh * dh + d] * vj[d];
                    }
                }
                /* softmax Jacobian: ds_j = sum_k dp_k p_k (delta_jk - p_j) */
                for (int j = 0; j < len; j++) {
                    double ds = 0.0;
                    for (int k = 0; k < len; k++)
                        ds += dp[k] * p[k] * ((j == k) - p[j]);
                    /* s_j = scale q_i . k_j */
                    for (int d = 0; d < dh; d++) {
                        dqkv[(size_t)i * 3 * c + hh * dh + d] +=
                            ds * scale * qkv[(size_t)(off[s] + j) * 3 * c + c + hh * dh + d];
                        dqkv[(size_t)(off[s] + j) * 3 * c + c + hh * dh + d] +=
                            ds * scale * qkv[(size_t)i * 3 * c + hh * dh + d];
                    }
                }
            }
        free(p);
        free(dp);
    }
    return 0;
}

/* -------------------------------------------------------- patch embedding */

/* Element k of token t's patch: channel k / (pz py px), then (dz, dy, dx). */
static double patch_voxel(const double *img, int b, int ci, int z, int yy, int x, int pz, int py,
                          int px, int t, int k)
{
    int tyn = yy / py, txn = x / px;
    int tx = t % txn, ty = (t / txn) % tyn, tz = t / (txn * tyn);
    int dx = k % px, dy = (k / px) % py, dz = (k / (px * py)) % pz, ch = k / (px * py * pz);
    return img[((((size_t)b * ci + ch) * z + tz * pz + dz) * yy + ty * py + dy) * x + tx * px + dx];
}

void ref_patch_embed_forward(double *y, const double *img, const double *w, const double *b,
                             int nb, int ci, int z, int yy, int x, int pz, int py, int px, int c)
{
    int nt = (z / pz) * (yy / py) * (x / px), p = ci * pz * py * px;
    for (int bb = 0; bb < nb; bb++)
        for (int t = 0; t < nt; t++)
            for (int j = 0; j < c; j++) {
                double s = b[j];
                for (int k = 0; k < p; k++)
                    s += w[(size_t)j * p + k] *
                         patch_voxel(img, bb, ci, z, yy, x, pz, py, px, t, k);
                y[((size_t)bb * nt + t) * c + j] = s;
            }
}

void ref_patch_embed_backward(double *dw, double *db, const double *dy, const double *img, int nb,
                              int ci, int z, int yy, int x, int pz, int py, int px, int c)
{
    int nt = (z / pz) * (yy / py) * (x / px), p = ci * pz * py * px;
    for (int bb = 0; bb < nb; bb++)
        for (int t = 0; t < nt; t++)
            for (int j = 0; j < c; j++) {
                double g = dy[((size_t)bb * nt + t) * c + j];
                db[j] += g;
                for (int k = 0; k < p; k++)
                    dw[(size_t)j * p + k] +=
                        g * patch_voxel(img, bb, ci, z, yy, x, pz, py, px, t, k);
            }
}

/* ------------------------------------------------- masked attention pooling */

static void pool_row(double *p, const double *q, const double *k, const double *bias, int b,
                     int a, int na, int m, int t, int c, int h, int hh)
{
    int dh = c / h;
    double mx = -INFINITY, sum = 0.0;
    for (int j = 0; j < m; j++) {
        double bj = bias[((size_t)b * na + a) * t + j % t];
        if (bj == -INFINITY) {
            p[j] = -INFINITY;
            continue;
        }
        double s = 0.0;
        for (int d = 0; d < dh; d++)
            s += q[(size_t)a * c + hh * dh + d] * k[((size_t)b * m + j) * c + hh * dh + d];
        p[j] = s / sqrt((double)dh) + bj;
        if (p[j] > mx)
            mx = p[j];
    }
    for (int j = 0; j < m; j++) {
        p[j] = p[j] == -INFINITY ? 0.0 : exp(p[j] - mx);
        sum += p[j];
    }
    for (int j = 0; j < m; j++)
        p[j] /= sum;
}

int ref_attnpool_forward(double *y, const double *q, const double *k, const double *v,
                          const double *bias, const int *rb, const int *ra, int nr, int na,
                          int m, int t, int c, int h)
{
    int dh = c / h;
    double *p = malloc((size_t)m * sizeof *p);
    if (!p)
        return -1;
    for (int r = 0; r < nr; r++)
        for (int hh = 0; hh < h; hh++) {
            pool_row(p, q, k, bias, rb[r], ra[r], na, m, t, c, h, hh);
            for (int d = 0; d < dh; d++) {
                double s = 0.0;
                for (int j = 0; j < m; j++)
                    s += p[j] * v[((size_t)rb[r] * m + j) * c + hh * dh + d];
                y[(size_t)r * c + hh * dh + d] = s;
            }
        }
    free(p);
    return 0;
}

int ref_attnpool_backward(double *dq, double *dk, double *dv, const double *dy,
                           const double *q, const double *k, const double *v,
                           const double *bias, const int *rb, const int *ra, int nr, int na,
                           int m, int t, int c, int h)
{
    int dh = c / h;
    double scale = 1.0 / sqrt((double)dh);
    double *p = malloc((size_t)m * sizeof *p), *dp = malloc((size_t)m * sizeof *dp);
    if (!p || !dp) {
        free(p);
        free(dp);
        return -1;
    }
    for (int r = 0; r < nr; r++)
        for (int hh = 0; hh < h; hh++) {
            int b = rb[r], a = ra[r];
            pool_row(p, q, k, bias, b, a, na, m, t, c, h, hh);
            for (int j = 0; j < m; j++) {
                dp[j] = 0.0;
                for (int d = 0; d < dh; d++) {
                    double g = dy[(size_t)r * c + hh * dh + d];
                    dv[((size_t)b * m + j) * c + hh * dh + d] += p[j] * g;
                    dp[j] += g * v[((size_t)b * m + j) * c + hh * dh + d];
                }
            }
            for (int j = 0; j < m; j++) {
                double ds = 0.0;
                for (int i = 0; i < m; i++)
                    ds += dp[i] * p[i] * ((i == j) - p[j]);
                for (int d = 0; d < dh; d++) {
                    dq[(size_t)a * c + hh * dh + d] +=
                        ds * scale * k[((size_t)b * m + j) * c + hh * dh + d];
                    dk[((size_t)b * m + j) * c + hh * dh + d] +=
                        ds * scale * q[(size_t)a * c + hh * dh + d];
                }
            }
        }
    free(p);
    free(dp);
    return 0;
}

/* ------------------------------------------------------------ L2 normalise */

void ref_l2norm_forward(double *y, const double *x, int n, int d)
{
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int j = 0; j < d; j++)
            s += x[i * d + j] * x[i * d + j];
        double nr = fmax(sqrt(s), 1e-12);
        for (int j = 0; j < d; j++)
            y[i * d + j] = x[i * d + j] / nr;
    }
}

/* d y_j / d x_k = (delta_jk - y_j y_k) / |x| */
void ref_l2norm_backward(double *dx, const double *dy, const double *x, int n, int d)
{
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int j = 0; j < d; j++)
            s += x[i * d + j] * x[i * d + j];
        double nr = sqrt(s);
        for (int k = 0; k < d; k++) {
            double acc = 0.0;
            for (int j = 0; j < d; j++)
                acc += dy[i * d + j] * ((j == k) - x[i * d + j] * x[i * d + k] / s) / nr;
            dx[i * d + k] = acc;
        }
    }
}

/* ------------------------------------------------------------------ losses */

/* Members of set i, of sets i and j (both), of either. */
static void set_counts(const uint64_t *dis, int words, int i, int j, int *both, int *either)
{
    *both = *either = 0;
    for (int w = 0; w < words; w++)
        for (int b = 0; b < 64; b++) {
            int in_i = (int)((dis[(size_t)i * words + w] >> b) & 1u);
            int in_j = (int)((dis[(size_t)j * words + w] >> b) & 1u);
            *both += in_i && in_j;
            *either += in_i || in_j;
        }
}

void ref_loss_targets(double *t, int mode, int n, const uint8_t *abnormal, const int *text,
                      const uint64_t *dis, int words)
{
    /* mode: 0 global, 1 fine, 2 fine-fn, 3 fine-fn-disease */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double v = i == j ? 1.0 : 0.0;
            if (mode >= 2) {
                if (!abnormal[i] && !abnormal[j])
                    v = 1.0;
                if (text[i] == text[j])
                    v = 1.0;
            }
            if (mode == 3 && abnormal[i] && abnormal[j] && i != j) {
                int both, either;
                set_counts(dis, words, i, j, &both, &either);
                /* Two empty sets (abnormal, disease unknown) are no evidence
                 * that the two findings agree: weight 0. */
                double jac = either ? (double)both / either : 0.0;
                if (jac > v)
                    v = jac;
            }
            t[i * n + j] = v;
        }
}

int ref_contrast_loss(double *loss_out, double *dimg, double *dtxt, double *dtau, const double *img,
                         const double *txt, const double *t, int n, int d, double tau)
{
    double *s = malloc((size_t)n * n * sizeof *s), *g = calloc((size_t)n * n, sizeof *g);
    if (!s || !g) {
        free(s);
        free(g);
        return -1;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double dot = 0.0;
            for (int k = 0; k < d; k++)
                dot += img[i * d + k] * txt[j * d + k];
            s[i * n + j] = dot / tau;
        }
    double loss = 0.0;
    /* image -> text: row i of s against row i of t, normalised; then text
     * -> image: column j of s against column j of t, normalised. g collects
     * d loss / d s. */
    for (int dir = 0; dir < 2; dir++)
        for (int i = 0; i < n; i++) {
            double mx = -INFINITY, z = 0.0, tsum = 0.0;
            for (int j = 0; j < n; j++) {
                double sij = dir == 0 ? s[i * n + j] : s[j * n + i];
                mx = fmax(mx, sij);
                tsum += dir == 0 ? t[i * n + j] : t[j * n + i];
            }
            for (int j = 0; j < n; j++)
                z += exp((dir == 0 ? s[i * n + j] : s[j * n + i]) - mx);
            for (int j = 0; j < n; j++) {
                double sij = dir == 0 ? s[i * n + j] : s[j * n + i];
                double tij = (dir == 0 ? t[i * n + j] : t[j * n + i]) / tsum;
                double p = exp(sij - mx) / z;
                loss -= tij * (sij - mx - log(z)) / (2.0 * n);
                double gij = (p - tij) / (2.0 * n);
                if (dir == 0)
                    g[i * n + j] += gij;
                else
                    g[j * n + i] += gij;
            }
        }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < d; k++) {
            double a = 0.0, b = 0.0;
            for (int j = 0; j < n; j++) {
                a += g[i * n + j] * txt[j * d + k];
                b += g[j * n + i] * img[j * d + k];
            }
            dimg[i * d + k] = a / tau;
            dtxt[i * d + k] = b / tau;
        }
    if (dtau) {
        double acc = 0.0;
        for (int i = 0; i < n * n; i++)
            acc -= g[i] * s[i] / tau;
        *dtau = acc;
    }
    free(s);
    free(g);
    *loss_out = loss;
    return 0;
}

double ref_sup_loss(double *df, double *dw, double *db, double *dtau, const double *f,
                    const double *w, const double *b, double tau, const int8_t *y, int n, int d,
                    int k)
{
    int nl = 0;
    for (int i = 0; i < n * k; i++)
        nl += y[i] >= 0;
    if (df)
        memset(df, 0, (size_t)n * d * sizeof *df);
    if (dw)
        memset(dw, 0, (size_t)k * d * sizeof *dw);
    if (db)
        memset(db, 0, (size_t)k * sizeof *db);
    if (dtau)
        *dtau = 0.0;
    double loss = 0.0;
    for (int i = 0; i < n; i++)
        for (int t = 0; t < k; t++) {
            int8_t yy = y[i * k + t];
            if (yy < 0)
                continue;
            double u = 0.0;
            for (int j = 0; j < d; j++)
                u += w[t * d + j] * f[i * d + j];
            double z = u / tau + b[t];
            /* log(1 + e^z) - y z; d/dz = sigmoid(z) - y */
            loss += log(1.0 + exp(z)) - yy * z;
            double g = (1.0 / (1.0 + exp(-z)) - yy) / nl;
            for (int j = 0; j < d; j++) {
                if (df)
                    df[i * d + j] += g / tau * w[t * d + j];
                if (dw)
                    dw[t * d + j] += g / tau * f[i * d + j];
            }
            if (db)
                db[t] += g;
            if (dtau)
                *dtau -= g * u / (tau * tau);
        }
    return nl ? loss / nl : 0.0;
}
