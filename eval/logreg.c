#include "logreg.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* log(1 + exp(z)) without overflow. */
static double softplus(double z) { return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z)); }

static double sigmoid(double z)
{
    if (z >= 0)
        return 1.0 / (1.0 + exp(-z));
    double t = exp(z);
    return t / (1.0 + t);
}

/* f at theta = (w, b); z receives X w + b (n). */
static double objective(const double *X, const unsigned char *y, size_t n, int d, double C,
                        const double *theta, double *z)
{
    double reg = 0, loss = 0;
    for (int j = 0; j < d; j++)
        reg += theta[j] * theta[j];
    cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)n, d, 1.0, X, d, theta, 1, 0.0, z, 1);
    for (size_t i = 0; i < n; i++) {
        z[i] += theta[d];
        loss += softplus(z[i]) - (y[i] ? z[i] : 0.0);
    }
    return 0.5 * reg + C * loss;
}

/* In-place Cholesky of the (m, m) row-major symmetric matrix A (lower
 * triangle used): A = L L^T, column by column; the column below the
 * diagonal is one matrix-vector product with the rows already done, so the
 * O(m^3) work runs in BLAS. Returns -1 when A is not positive definite. */
static int cholesky(double *A, int m)
{
    for (int j = 0; j < m; j++) {
        double *rowj = A + (size_t)j * m;
        double s = rowj[j] - (j ? cblas_ddot(j, rowj, 1, rowj, 1) : 0.0);
        if (!(s > 0))
            return -1;
        double ljj = sqrt(s);
        rowj[j] = ljj;
        int below = m - j - 1;
        if (below == 0)
            continue;
        double *col = A + (size_t)(j + 1) * m + j;   /* A[j+1.., j], stride m */
        if (j)
            cblas_dgemv(CblasRowMajor, CblasNoTrans, below, j, -1.0, A + (size_t)(j + 1) * m, m,
                        rowj, 1, 1.0, col, m);
        cblas_dscal(below, 1.0 / ljj, col, m);
    }
    return 0;
}

/* Solves L L^T x = g in place (x holds g on entry). */
static void chol_solve(const double *L, int m, double *x)
{
    for (int i = 0; i < m; i++) {
        double t = x[i];
        for (int k = 0; k < i; k++)
            t -= L[(size_t)i * m + k] * x[k];
        x[i] = t / L[(size_t)i * m + i];
    }
    for (int i = m - 1; i >= 0; i--) {
        double t = x[i];
        for (int k = i + 1; k < m; k++)
            t -= L[(size_t)k * m + i] * x[k];
        x[i] = t / L[(size_t)i * m + i];
    }
}

static void free_all(double *a, double *b, double *c, double *d, double *e, double *f,
                     double *g, double *h, double *i)
{
    free(a); free(b); free(c); free(d); free(e); free(f); free(g); free(h); free(i);
}

int logreg_fit(const double *X, const unsigned char *y, size_t n, int d, double C,
               int max_iter, double tol, LogReg *out, FvErr *e)
{
    memset(out, 0, sizeof *out);
    if (d < 1 || d > 65536 || n < 1 || n > (size_t)1 << 30)
        return err_set(e, FV_EUSAGE, "logistic regression: bad size n = %zu, d = %d", n, d);
    if (!(C > 0) || !isfinite(C))
        return err_set(e, FV_EUSAGE, "logistic regression: C = %g must be > 0", C);
    for (size_t k = 0; k < n * (size_t)d; k++)
        if (!isfinite(X[k]))
            return err_set(e, FV_EUSAGE, "logistic regression: feature %zu of row %zu is not finite",
                           k % (size_t)d, k / (size_t)d);
    int m = d + 1;
    size_t mm = (size_t)m * m;
    double *theta = calloc((size_t)m, sizeof *theta);
    double *trial = malloc((size_t)m * sizeof *trial);
    double *g = malloc((size_t)m * sizeof *g);
    double *step = malloc((size_t)m * sizeof *step);
    double *H = malloc(mm * sizeof *H);
    double *H0 = malloc(mm * sizeof *H0);
    double *A = malloc(n * (size_t)m * sizeof *A);   /* (n, m): sqrt(C p (1 - p)) [x 1] */
    double *z = malloc(n * sizeof *z);
    double *r = malloc(n * sizeof *r);                /* C (p - y) */
    if (!theta || !trial || !g || !step || !H || !H0 || !A || !z || !r) {
        free_all(theta, trial, g, step, H, H0, A, z, r);
        return err_set(e, FV_ENOMEM, "logistic regression: out of memory (n = %zu, d = %d)", n, d);
    }
    double f = objective(X, y, n, d, C, theta, z);
    double gscale = fmax(1.0, C * (double)n);
    int it = 0;
    double gmax = INFINITY;
    for (;;) {
        /* Gradient: w + C X^T (p - y); for b: C sum (p - y). */
        double gb = 0;
        for (size_t i = 0; i < n; i++) {
            double p = sigmoid(z[i]);
            r[i] = C * (p - (y[i] ? 1.0 : 0.0));
            gb += r[i];
            double s = sqrt(C * p * (1 - p));
            memcpy(A + i * (size_t)m, X + i * (size_t)d, (size_t)d * sizeof *A);
            for (int j = 0; j < d; j++)
                A[i * (size_t)m + j] *= s;
            A[i * (size_t)m + d] = s;
        }
        memcpy(g, theta, (size_t)d * sizeof *g);
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)n, d, 1.0, X, d, r, 1, 1.0, g, 1);
        g[d] = gb;
        gmax = 0;
        for (int j = 0; j < m; j++)
            gmax = fmax(gmax, fabs(g[j]));
        if (gmax <= tol * gscale || it >= max_iter)
            break;
        /* Hessian: I (not for b) + A^T A, lower triangle (what cholesky()
         * reads). */
        cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, m, (int)n, 1.0, A, m, 0.0, H0, m);
        for (int j = 0; j < d; j++)
            H0[(size_t)j * m + j] += 1.0;
        /* The intercept's diagonal can vanish when the classes are separated
         * far from the boundary: add a growing ridge until H factors. */
        double jitter = 0;
        int ok = -1;
        for (int attempt = 0; attempt < 30 && ok; attempt++) {
            memcpy(H, H0, mm * sizeof *H);
            for (int j = 0; j < m; j++)
                H[(size_t)j * m + j] += jitter;
            ok = cholesky(H, m);
            jitter = jitter > 0 ? jitter * 10 : 1e-12 * gscale;
        }
        if (ok) {
            free_all(theta, trial, g, step, H, H0, A, z, r);
            return err_set(e, FV_EINTERNAL, "logistic regression: Hessian not positive definite");
        }
        memcpy(step, g, (size_t)m * sizeof *step);
        chol_solve(H, m, step);
        double slope = 0;
        for (int j = 0; j < m; j++)
            slope += g[j] * step[j];
        /* Backtracking (Armijo) line search along -step. */
        double t = 1.0, fnew = f;
        int accepted = 0;
        while (t > 1e-12) {
            for (int j = 0; j < m; j++)
                trial[j] = theta[j] - t * step[j];
            fnew = objective(X, y, n, d, C, trial, z);
            if (fnew <= f - 1e-4 * t * slope) {
                accepted = 1;
                break;
            }
            t *= 0.5;
        }
        it++;
        if (!accepted) {
            /* No decrease is representable: f is at its minimum to double
             * precision. Restore z for the final gradient. */
            objective(X, y, n, d, C, theta, z);
            break;
        }
        memcpy(theta, trial, (size_t)m * sizeof *theta);
        f = fnew;
    }
    free_all(NULL, trial, g, step, H, H0, A, z, r);
    out->d = d;
    out->w = theta;  /* the first d entries; the last is b */
    out->b = theta[d];
    out->iters = it;
    out->grad_max = gmax;
    out->objective = f;
    return 0;
}

double logreg_prob(const LogReg *m, const double *x)
{
    double z = m->b;
    for (int j = 0; j < m->d; j++)
        z += m->w[j] * x[j];
    return sigmoid(z);
}

void logreg_free(LogReg *m)
{
    free(m->w);
    memset(m, 0, sizeof *m);
}
