/* bench_eval: speed of the evaluation metrics and the probe, beside a
 * physical floor and a peer, in one run, as ratios.
 *
 *   AUROC of N scores          vs sorting N (score, label) pairs (the floor:
 *                              an exact AUROC needs the order) and vs
 *                              scikit-learn's roc_auc_score
 *   bootstrap CI, 1000 x n     vs re-sorting every resample (the textbook way)
 *                              and vs CT-CLIP's loop over roc_auc_score
 *   probe fit (n x d)          vs scikit-learn's LogisticRegression: lbfgs at its
 *                              default tolerance, and newton-cg at ours
 *
 * The peer runs in Debian's /usr/bin/python3 on the same numbers (written to
 * a temporary file); without scikit-learn its columns say so.
 *
 * usage: bench_eval [N_AUC] [N_BOOT_ITEMS] [N_PROBE] [D_PROBE] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "logreg.h"
#include "metrics.h"
#include "rng.h"

static int cmp_pair(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Best of `reps` runs, seconds. */
#define TIME_BEST(reps, out, body)                 \
    do {                                           \
        double best_ = 1e30;                       \
        for (int r_ = 0; r_ < (reps); r_++) {      \
            double t0_ = now_seconds();            \
            body;                                  \
            double dt_ = now_seconds() - t0_;      \
            if (dt_ < best_)                       \
                best_ = dt_;                       \
        }                                          \
        (out) = best_;                             \
    } while (0)

/* The textbook bootstrap: copy each resample and compute its AUROC from
 * scratch (sorting it). */
static double naive_bootstrap(const double *s, const unsigned char *y, size_t n, int nboot)
{
    double *rs = malloc(n * sizeof *rs);
    unsigned char *ry = malloc(n);
    double acc = 0;
    FvErr e = {0};
    for (int b = 0; b < nboot; b++) {
        Rng r;
        rng_seed(&r, 1, (uint64_t)b);
        for (size_t i = 0; i < n; i++) {
            size_t k = (size_t)rng_below(&r, n);
            rs[i] = s[k];
            ry[i] = y[k];
        }
        double a;
        if (metrics_auroc(rs, ry, n, &a, &e) == 0 && !isnan(a))
            acc += a;
    }
    free(rs);
    free(ry);
    return acc;
}

static int write_file(const char *path, const double *v, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(v, sizeof *v, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static const char *peer_py =
    "import sys, time, warnings\n"
    "import numpy as np\n"
    "from sklearn.metrics import roc_auc_score\n"
    "from sklearn.linear_model import LogisticRegression\n"
    "warnings.simplefilter('ignore')\n"
    "d = sys.argv[1]; na, nb, npr, dp = map(int, sys.argv[2:6])\n"
    "def best(f, reps):\n"
    "    b = 1e30\n"
    "    for _ in range(reps):\n"
    "        t = time.perf_counter(); f(); b = min(b, time.perf_counter() - t)\n"
    "    return b\n"
    "s = np.fromfile(d + '/as.bin'); y = np.fromfile(d + '/ay.bin').astype(int)\n"
    "print('auc', best(lambda: roc_auc_score(y, s), 5))\n"
    "s = np.fromfile(d + '/bs.bin'); y = np.fromfile(d + '/by.bin').astype(int)\n"
    "idx = np.arange(len(y))\n"
    "def boot():\n"
    "    rng = np.random.default_rng(0)\n"
    "    for i in range(1000):\n"
    "        k = rng.integers(0, len(y), len(y))\n"
    "        if y[k].min() != y[k].max(): roc_auc_score(y[k], s[k])\n"
    "print('boot', best(boot, 1))\n"
    "X = np.fromfile(d + '/px.bin').reshape(npr, dp); y = np.fromfile(d + '/py.bin').astype(int)\n"
    "print('probe', best(lambda: LogisticRegression(C=1.0, max_iter=1000).fit(X, y), 3))\n"
    "print('probe_ncg', best(lambda: LogisticRegression(C=1.0, solver='newton-cg', tol=1e-10,\n"
    "                                                 max_iter=1000).fit(X, y), 3))\n";

int main(int argc, char **argv)
{
    size_t n_auc = argc > 1 ? (size_t)atol(argv[1]) : 1000000;
    size_t n_boot_items = argc > 2 ? (size_t)atol(argv[2]) : 1000;
    size_t n_probe = argc > 3 ? (size_t)atol(argv[3]) : 2000;
    int d_probe = argc > 4 ? atoi(argv[4]) : 256;
    if (!n_auc || !n_boot_items || !n_probe || d_probe < 1) {
        fprintf(stderr, "usage: bench_eval [N_AUC] [N_BOOT_ITEMS] [N_PROBE] [D_PROBE]\n");
        return 2;
    }
    Rng r;
    rng_seed(&r, 2025, 0);
    size_t nmax = n_auc > n_boot_items ? n_auc : n_boot_items;
    double *s = malloc(nmax * sizeof *s), *yd = malloc(nmax * sizeof *yd);
    double *pairs = malloc(2 * nmax * sizeof *pairs);
    unsigned char *y = malloc(nmax);
    double *X = malloc(n_probe * (size_t)d_probe * sizeof *X), *pyd = malloc(n_probe * sizeof *pyd);
    unsigned char *py = malloc(n_probe);
    if (!s || !yd || !pairs || !y || !X || !pyd || !py) {
        fprintf(stderr, "bench_eval: out of memory\n");
        return 1;
    }
    /* Scores rounded to 1e-3, so ties occur as they do with real models'
     * saturated probabilities. */
    for (size_t i = 0; i < nmax; i++) {
        y[i] = (unsigned char)rng_bernoulli(&r, 0.2);
        s[i] = round(1000 * (1 / (1 + exp(-(rng_normal(&r) + 1.2 * y[i]))))) / 1000;
        yd[i] = y[i];
    }
    for (size_t i = 0; i < n_probe; i++) {
        py[i] = (unsigned char)rng_bernoulli(&r, 0.3);
        pyd[i] = py[i];
        for (int j = 0; j < d_probe; j++)
            X[i * (size_t)d_probe + (size_t)j] = rng_normal(&r) + (j < 8 ? 0.4 * py[i] : 0);
    }
    FvErr e = {0};
    double t_auc, t_sort, t_boot, t_naive, t_probe, auc = 0;
    TIME_BEST(5, t_auc, metrics_auroc(s, y, n_auc, &auc, &e));
    TIME_BEST(5, t_sort, {
        for (size_t i = 0; i < n_auc; i++) {
            pairs[2 * i] = s[i];
            pairs[2 * i + 1] = y[i];
        }
        qsort(pairs, n_auc, 2 * sizeof *pairs, cmp_pair);
    });
    double lo, hi;
    int valid;
    TIME_BEST(3, t_boot,
              metrics_bootstrap_auc(s, y, n_boot_items, 1000, 1, &lo, &hi, &valid, NULL, &e));
    double sink;
    TIME_BEST(1, t_naive, sink = naive_bootstrap(s, y, n_boot_items, 1000));
    LogReg m;
    TIME_BEST(3, t_probe, {
        logreg_fit(X, py, n_probe, d_probe, 1.0, 100, 1e-10, &m, &e);
        logreg_free(&m);
    });

    /* The peer, on the same numbers. */
    double p_auc = NAN, p_boot = NAN, p_probe = NAN, p_ncg = NAN;
    char dir[] = "/tmp/fvlm-bench-eval-XXXXXX";
    if (access("/usr/bin/python3", X_OK) == 0 && mkdtemp(dir)) {
        char path[128], cmd[512];
        int ok = 1;
        snprintf(path, sizeof path, "%s/as.bin", dir);
        ok &= write_file(path, s, n_auc) == 0;
        snprintf(path, sizeof path, "%s/ay.bin", dir);
        ok &= write_file(path, yd, n_auc) == 0;
        snprintf(path, sizeof path, "%s/bs.bin", dir);
        ok &= write_file(path, s, n_boot_items) == 0;
        snprintf(path, sizeof path, "%s/by.bin", dir);
        ok &= write_file(path, yd, n_boot_items) == 0;
        snprintf(path, sizeof path, "%s/px.bin", dir);
        ok &= write_file(path, X, n_probe * (size_t)d_probe) == 0;
        snprintf(path, sizeof path, "%s/py.bin", dir);
        ok &= write_file(path, pyd, n_probe) == 0;
        snprintf(path, sizeof path, "%s/peer.py", dir);
        FILE *f = fopen(path, "w");
        ok &= f && fputs(peer_py, f) >= 0;
        if (f)
            ok &= fclose(f) == 0;
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/peer.py %s %zu %zu %zu %d 2>/dev/null", dir,
                 dir, n_auc, n_boot_items, n_probe, d_probe);
        FILE *p = ok ? popen(cmd, "r") : NULL;
        char line[256];
        while (p && fgets(line, sizeof line, p)) {
            double v;
            if (sscanf(line, "auc %lf", &v) == 1)
                p_auc = v;
            else if (sscanf(line, "boot %lf", &v) == 1)
                p_boot = v;
            else if (sscanf(line, "probe %lf", &v) == 1)
                p_probe = v;
            else if (sscanf(line, "probe_ncg %lf", &v) == 1)
                p_ncg = v;
        }
        if (p)
            pclose(p);
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_eval: could not remove %s\n", dir);
    }

    printf("eval metrics and probe (best of several runs; ratio = other / fvlm)\n\n");
    printf("%-34s %12s %14s %8s %16s %8s\n", "what", "fvlm", "floor/naive", "ratio",
           "scikit-learn", "ratio");
    printf("%-34s %10.2f ms %12.2f ms %8.2f", "AUROC, exact with ties", 1e3 * t_auc, 1e3 * t_sort,
           t_sort / t_auc);
    printf(" %14.2f ms %8.1f\n", 1e3 * p_auc, p_auc / t_auc);
    printf("  (%zu scores; floor = qsort of the (score, label) pairs)\n", n_auc);
    printf("%-34s %10.2f ms %12.2f ms %8.1f", "bootstrap CI, 1000 resamples", 1e3 * t_boot,
           1e3 * t_naive, t_naive / t_boot);
    printf(" %14.2f ms %8.1f\n", 1e3 * p_boot, p_boot / t_boot);
    printf("  (%zu studies; naive = re-sort every resample; peer = CT-CLIP's roc_auc_score loop)\n",
           n_boot_items);
    printf("%-34s %10.2f ms %15s %8s", "probe fit (Newton, L2)", 1e3 * t_probe, "", "");
    printf(" %14.2f ms %8.1f\n", 1e3 * p_probe, p_probe / t_probe);
    printf("%-34s %10.2f ms %15s %8s", "  same, peer at equal precision", 1e3 * t_probe, "", "");
    printf(" %14.2f ms %8.1f\n", 1e3 * p_ncg, p_ncg / t_probe);
    printf("  (%zu x %d features; fvlm stops at |gradient| <= 1e-10 C n; peers: LogisticRegression\n"
           "   lbfgs with its default tol 1e-4, and newton-cg with tol 1e-10)\n", n_probe, d_probe);
    if (isnan(p_auc))
        printf("\nscikit-learn peer not run (needs /usr/bin/python3 with python3-sklearn)\n");
    /* Keep the results observable so nothing is optimised away. */
    fprintf(stderr, "check: auc %.4f ci [%.4f, %.4f] %d naive %.1f\n", auc, lo, hi, valid, sink);
    free(s);
    free(yd);
    free(pairs);
    free(y);
    free(X);
    free(pyd);
    free(py);
    return 0;
}
