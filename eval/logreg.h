/* logreg: L2-regularised binary logistic regression, fitted by Newton's
 * method (the supervised head of `fvlm probe`).
 *
 * Objective (scikit-learn's LogisticRegression with penalty 'l2'):
 *     f(w, b) = 0.5 |w|^2 + C * sum_i [log(1 + exp(z_i)) - y_i z_i],  z = X w + b
 * the intercept b is not penalised. Each step solves H d = g (H the exact
 * Hessian, by Cholesky) and halves the step until f decreases (Armijo), so
 * the fit is deterministic and needs no learning rate. It stops when the
 * largest gradient component is below tol * max(1, C * n) or after max_iter
 * steps. */
#ifndef FVLM_EVAL_LOGREG_H
#define FVLM_EVAL_LOGREG_H

#include <stddef.h>

#include "error.h"

typedef struct LogReg {
    int d;
    double *w;        /* (d) weights; owned */
    double b;         /* intercept */
    int iters;        /* Newton steps taken */
    double grad_max;  /* largest |gradient component| at the end */
    double objective; /* f at the end */
} LogReg;

/* X: (n, d) row-major; y: n labels 0/1. C > 0. On success out owns w
 * (logreg_free). Fails (FV_EUSAGE) on bad sizes, non-finite inputs or C <= 0. */
int logreg_fit(const double *X, const unsigned char *y, size_t n, int d, double C,
               int max_iter, double tol, LogReg *out, FvErr *e);

/* P(y = 1 | x) for one row x of d values. */
double logreg_prob(const LogReg *m, const double *x);

void logreg_free(LogReg *m);

#endif
