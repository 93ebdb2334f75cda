/* metrics: binary classification metrics of one diagnosis task, following
 * CT-CLIP's evaluation protocol (the one fVLM reports).
 *
 * Inputs are n scores (the positive prompt's probability, in [0, 1] for the
 * threshold grid to make sense; any finite value for the AUROC) and n labels
 * (1 positive, 0 negative). Everything agrees with scikit-learn to 1e-9
 * (tests/eval/gen_metrics_fixture.py writes the committed fixture):
 *   - AUROC: exact, ties count one half (sklearn.metrics.roc_auc_score).
 *   - Threshold: of the grid t_k = k / 99, k = 0..99 (numpy.linspace(0, 1,
 *     100)), predictions `score > t`, the t whose (FPR, TPR) lies closest to
 *     (0, 1); on equal distances the larger t wins (CT-CLIP's `<=`).
 *   - At that threshold: accuracy, support-weighted F1 over both classes,
 *     positive-class precision (0 when nothing is predicted positive, as
 *     sklearn's zero_division default), sensitivity, specificity.
 *   - AUROC 95 % CI: n_boot resamples of the n items with replacement; the
 *     indices of resample b come from rng stream b of `seed` (lib/rng.h), so
 *     tasks scored on the same item list are resampled jointly, like
 *     CT-CLIP's study-level bootstrap. Resamples with one class only have no
 *     AUROC and are left out (counted in n_boot_valid). Bounds as CT-CLIP's
 *     compute_cis: of the k valid AUROCs sorted ascending, the elements at
 *     int(0.025 k) - 1 and int(0.975 k) - 1 (clamped to 0).
 * A task with one class only is degenerate: counts are reported, every
 * other figure is NaN. */
#ifndef FVLM_EVAL_METRICS_H
#define FVLM_EVAL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

enum { METRICS_GRID = 100, METRICS_BOOT_DEFAULT = 1000 };

typedef struct Metrics {
    int n_pos, n_neg;
    double auc;                 /* NaN when degenerate */
    double auc_lo, auc_hi;      /* NaN when degenerate, bootstrap off or no valid resample */
    int n_boot;                 /* resamples drawn */
    int n_boot_valid;           /* of them with both classes */
    double threshold;           /* grid value chosen */
    double accuracy, f1_weighted, precision, sensitivity, specificity;
} Metrics;

/* 1 when the task has one class only (or no items). */
int metrics_degenerate(const Metrics *m);

/* Exact AUROC; NaN when one class is missing. Allocates a sorted copy:
 * returns -1 (FV_ENOMEM) only when that fails. */
int metrics_auroc(const double *score, const unsigned char *label, size_t n, double *auc,
                  FvErr *e);

/* CT-CLIP's grid threshold; NaN when one class is missing. */
double metrics_grid_threshold(const double *score, const unsigned char *label, size_t n);

/* The figures at threshold t (predictions score > t) into m (counts too). */
void metrics_at_threshold(const double *score, const unsigned char *label, size_t n, double t,
                          Metrics *m);

/* Bootstrap CI of the AUROC (see the top of this file). idx_dump, when not
 * NULL, receives the resample indices, (n_boot, n) row-major, so an outside
 * oracle can reproduce the interval. n_boot = 0 gives NaN bounds. */
int metrics_bootstrap_auc(const double *score, const unsigned char *label, size_t n, int n_boot,
                          uint64_t seed, double *lo, double *hi, int *n_valid,
                          uint32_t *idx_dump, FvErr *e);

/* All of the above. Scores must be finite (checked: FV_EUSAGE). */
int metrics_compute(const double *score, const unsigned char *label, size_t n, int n_boot,
                    uint64_t seed, Metrics *m, FvErr *e);

/* The ROC curve for plotting: (FPR, TPR) at every distinct score, from
 * (0, 0) to (1, 1), with collinear middle points dropped. *fpr and *tpr are
 * malloc'd (caller frees); *npts >= 2. Degenerate input gives the diagonal. */
int metrics_roc_curve(const double *score, const unsigned char *label, size_t n, double **fpr,
                      double **tpr, int *npts, FvErr *e);

/* Mean of the non-NaN values of v (NaN when none); *count receives how many. */
double metrics_mean_finite(const double *v, int n, int *count);

#endif
