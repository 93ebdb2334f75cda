/* eval_bootdump: prints the bootstrap resample indices that
 * metrics_bootstrap_auc draws, so an outside oracle (the scikit-learn
 * fixture generator) computes the interval from the very same resamples.
 *
 * usage: eval_bootdump N SEED NBOOT
 * Writes NBOOT lines of N indices in [0, N). */
#include <stdio.h>
#include <stdlib.h>

#include "metrics.h"

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: eval_bootdump N SEED NBOOT\n");
        return 2;
    }
    long n = strtol(argv[1], NULL, 10), nboot = strtol(argv[3], NULL, 10);
    unsigned long long seed = strtoull(argv[2], NULL, 10);
    if (n < 1 || n > 1000000 || nboot < 1 || nboot > 100000) {
        fprintf(stderr, "eval_bootdump: N or NBOOT out of range\n");
        return 2;
    }
    double *s = calloc((size_t)n, sizeof *s);
    unsigned char *y = calloc((size_t)n, 1);
    uint32_t *idx = malloc((size_t)n * (size_t)nboot * sizeof *idx);
    if (!s || !y || !idx)
        return 1;
    y[0] = 1; /* the labels do not change the indices; two classes keep the call whole */
    double lo, hi;
    int valid;
    FvErr e = {0};
    if (metrics_bootstrap_auc(s, y, (size_t)n, (int)nboot, seed, &lo, &hi, &valid, idx, &e)) {
        fprintf(stderr, "eval_bootdump: %s\n", e.msg);
        return 1;
    }
    for (long b = 0; b < nboot; b++)
        for (long i = 0; i < n; i++)
            printf("%u%c", idx[b * n + i], i + 1 == n ? '\n' : ' ');
    free(s);
    free(y);
    free(idx);
    return fflush(stdout) ? 1 : 0;
}
