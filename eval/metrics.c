#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

typedef struct Item {
    double s;
    unsigned char y;
    uint32_t i;   /* index in the caller's arrays */
} Item;

static int item_cmp(const void *a, const void *b)
{
    const Item *x = a, *y = b;
    if (x->s < y->s)
        return -1;
    if (x->s > y->s)
        return 1;
    /* Ties in any order give the same figures; the index makes the order
     * total so qsort's output never depends on its algorithm. */
    return (x->i > y->i) - (x->i < y->i);
}

/* Items sorted by ascending score (caller frees). */
static Item *items_sorted(const double *score, const unsigned char *label, size_t n, FvErr *e)
{
    Item *it = malloc((n ? n : 1) * sizeof *it);
    if (!it) {
        err_set(e, FV_ENOMEM, "metrics: out of memory for %zu items", n);
        return NULL;
    }
    for (size_t k = 0; k < n; k++) {
        it[k].s = score[k];
        it[k].y = label[k] ? 1 : 0;
        it[k].i = (uint32_t)k;
    }
    qsort(it, n, sizeof *it, item_cmp);
    return it;
}

int metrics_degenerate(const Metrics *m) { return m->n_pos == 0 || m->n_neg == 0; }

/* AUROC over sorted items with per-item weights (NULL: all 1). Sums are
 * integers and halves, exact in double up to 2^52 items. */
static double auc_sweep(const Item *it, size_t n, const uint32_t *w)
{
    double num = 0, neg_below = 0, npos = 0, nneg = 0;
    size_t k = 0;
    while (k < n) {
        double gp = 0, gn = 0;
        size_t j = k;
        while (j < n && it[j].s == it[k].s) {
            double wt = w ? (double)w[it[j].i] : 1.0;
            if (it[j].y)
                gp += wt;
            else
                gn += wt;
            j++;
        }
        num += gp * (neg_below + 0.5 * gn);
        neg_below += gn;
        npos += gp;
        nneg += gn;
        k = j;
    }
    if (npos == 0 || nneg == 0)
        return NAN;
    return num / (npos * nneg);
}

int metrics_auroc(const double *score, const unsigned char *label, size_t n, double *auc,
                  FvErr *e)
{
    Item *it = items_sorted(score, label, n, e);
    if (!it)
        return -1;
    *auc = auc_sweep(it, n, NULL);
    free(it);
    return 0;
}

typedef struct Confusion {
    int64_t tp, fp, tn, fn;
} Confusion;

static Confusion confusion_at(const double *score, const unsigned char *label, size_t n, double t)
{
    Confusion c = {0, 0, 0, 0};
    for (size_t k = 0; k < n; k++) {
        int pred = score[k] > t;
        if (label[k])
            pred ? c.tp++ : c.fn++;
        else
            pred ? c.fp++ : c.tn++;
    }
    return c;
}

/* numpy.linspace(0, 1, 100): k * (1 / 99), the last value exactly 1. */
static double grid_value(int k)
{
    return k == METRICS_GRID - 1 ? 1.0 : (double)k * (1.0 / (double)(METRICS_GRID - 1));
}

double metrics_grid_threshold(const double *score, const unsigned char *label, size_t n)
{
    int64_t npos = 0;
    for (size_t k = 0; k < n; k++)
        npos += label[k] != 0;
    if (npos == 0 || npos == (int64_t)n)
        return NAN;
    double best_t = 0, best_d = 10000;
    for (int k = 0; k < METRICS_GRID; k++) {
        double t = grid_value(k);
        Confusion c = confusion_at(score, label, n, t);
        double tpr = (double)c.tp / (double)(c.tp + c.fn);
        double fpr = (double)c.fp / (double)(c.fp + c.tn);
        double d = sqrt((1 - tpr) * (1 - tpr) + fpr * fpr);
        if (d <= best_d) {
            best_d = d;
            best_t = t;
        }
    }
    return best_t;
}

static double ratio_or_zero(int64_t a, int64_t b) { return b ? (double)a / (double)b : 0.0; }

void metrics_at_threshold(const double *score, const unsigned char *label, size_t n, double t,
                          Metrics *m)
{
    Confusion c = confusion_at(score, label, n, t);
    m->n_pos = (int)(c.tp + c.fn);
    m->n_neg = (int)(c.tn + c.fp);
    m->threshold = t;
    if (metrics_degenerate(m)) {
        m->accuracy = m->f1_weighted = m->precision = m->sensitivity = m->specificity = NAN;
        return;
    }
    double total = (double)n;
    m->accuracy = (double)(c.tp + c.tn) / total;
    m->precision = ratio_or_zero(c.tp, c.tp + c.fp);
    m->sensitivity = ratio_or_zero(c.tp, c.tp + c.fn);
    m->specificity = ratio_or_zero(c.tn, c.tn + c.fp);
    /* F1 of each class, weighted by its support; 0 where undefined. */
    double f1_pos = ratio_or_zero(2 * c.tp, 2 * c.tp + c.fp + c.fn);
    double f1_neg = ratio_or_zero(2 * c.tn, 2 * c.tn + c.fn + c.fp);
    m->f1_weighted = (f1_pos * (double)m->n_pos + f1_neg * (double)m->n_neg) / total;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int metrics_bootstrap_auc(const double *score, const unsigned char *label, size_t n, int n_boot,
                          uint64_t seed, double *lo, double *hi, int *n_valid,
                          uint32_t *idx_dump, FvErr *e)
{
    *lo = *hi = NAN;
    *n_valid = 0;
    if (n_boot < 0 || n_boot > 1000000)
        return err_set(e, FV_EUSAGE, "bootstrap: %d resamples is out of range [0, 1000000]",
                       n_boot);
    if (n > UINT32_MAX)
        return err_set(e, FV_ELIMIT, "bootstrap: %zu items is more than 2^32 - 1", n);
    if (n_boot == 0 || n == 0)
        return 0;
    Item *it = items_sorted(score, label, n, e);
    uint32_t *count = calloc(n, sizeof *count);
    double *aucs = malloc((size_t)n_boot * sizeof *aucs);
    if (!it || !count || !aucs) {
        free(it);
        free(count);
        free(aucs);
        return err_set(e, FV_ENOMEM, "bootstrap: out of memory for %zu items", n);
    }
    int k = 0;
    for (int b = 0; b < n_boot; b++) {
        Rng r;
        rng_seed(&r, seed, (uint64_t)b);
        memset(count, 0, n * sizeof *count);
        for (size_t j = 0; j < n; j++) {
            uint32_t idx = (uint32_t)rng_below(&r, n);
            count[idx]++;
            if (idx_dump)
                idx_dump[(size_t)b * n + j] = idx;
        }
        /* A resample is a multiset of the original items: the sweep over the
         * items sorted once, weighted by multiplicity, is its exact AUROC
         * without sorting it again. */
        double a = auc_sweep(it, n, count);
        if (!isnan(a))
            aucs[k++] = a;
    }
    free(it);
    free(count);
    *n_valid = k;
    if (k > 0) {
        qsort(aucs, (size_t)k, sizeof *aucs, cmp_double);
        const double alpha = 0.05;
        int il = (int)(alpha / 2 * k) - 1;
        int ih = (int)((1 - alpha / 2) * k) - 1;
        *lo = aucs[il < 0 ? 0 : il];
        *hi = aucs[ih < 0 ? 0 : ih];
    }
    free(aucs);
    return 0;
}

int metrics_compute(const double *score, const unsigned char *label, size_t n, int n_boot,
                    uint64_t seed, Metrics *m, FvErr *e)
{
    memset(m, 0, sizeof *m);
    for (size_t k = 0; k < n; k++)
        if (!isfinite(score[k]))
            return err_set(e, FV_EUSAGE, "metrics: score %zu is not finite (%g)", k, score[k]);
    m->n_boot = n_boot;
    m->auc = m->auc_lo = m->auc_hi = NAN;
    metrics_at_threshold(score, label, n, 0.5, m);
    if (metrics_degenerate(m)) {
        m->threshold = NAN;
        return 0;
    }
    if (metrics_auroc(score, label, n, &m->auc, e))
        return -1;
    metrics_at_threshold(score, label, n, metrics_grid_threshold(score, label, n), m);
    return metrics_bootstrap_auc(score, label, n, n_boot, seed, &m->auc_lo, &m->auc_hi,
                                 &m->n_boot_valid, NULL, e);
}

int metrics_roc_curve(const double *score, const unsigned char *label, size_t n, double **fpr,
                      double **tpr, int *npts, FvErr *e)
{
    *fpr = *tpr = NULL;
    *npts = 0;
    Item *it = items_sorted(score, label, n, e);
    if (!it)
        return -1;
    double *x = malloc((n + 2) * sizeof *x), *y = malloc((n + 2) * sizeof *y);
    if (!x || !y) {
        free(it);
        free(x);
        free(y);
        return err_set(e, FV_ENOMEM, "ROC curve: out of memory for %zu items", n);
    }
    double npos = 0, nneg = 0;
    for (size_t k = 0; k < n; k++)
        it[k].y ? npos++ : nneg++;
    int m = 0;
    x[m] = 0;
    y[m] = 0;
    m++;
    if (npos > 0 && nneg > 0) {
        /* Lower the threshold from the top score down, one tie group at a
         * time: each group adds one point. */
        double tp = 0, fp = 0;
        size_t k = n;
        while (k > 0) {
            size_t j = k;
            while (j > 0 && it[j - 1].s == it[k - 1].s) {
                it[j - 1].y ? tp++ : fp++;
                j--;
            }
            double px = fp / nneg, py = tp / npos;
            /* Drop the previous point when it lies on the segment from the
             * one before it to this one (same direction). */
            if (m >= 2) {
                double ax = x[m - 1] - x[m - 2], ay = y[m - 1] - y[m - 2];
                double bx = px - x[m - 1], by = py - y[m - 1];
                if (ax * by - ay * bx == 0 && ax * bx + ay * by >= 0)
                    m--;
            }
            x[m] = px;
            y[m] = py;
            m++;
            k = j;
        }
    } else {
        x[m] = 1;
        y[m] = 1;
        m++;
    }
    free(it);
    *fpr = x;
    *tpr = y;
    *npts = m;
    return 0;
}

double metrics_mean_finite(const double *v, int n, int *count)
{
    double s = 0;
    int c = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) {
            s += v[i];
            c++;
        }
    if (count)
        *count = c;
    return c ? s / c : NAN;
}
