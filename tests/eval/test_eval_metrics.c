/* eval/metrics.c and eval/logreg.c against scikit-learn (the committed
 * fixture of gen_metrics_fixture.py), and their edge cases. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "fsutil.h"
#include "fvlm_config.h"
#include "logreg.h"
#include "metrics.h"
#include "rng.h"
#include "test.h"

/* ---- fixture reader: "key v v v" lines, cases between a header and "end" */

typedef struct Case {
    char kind[16], name[64];
    int n, d, nboot;
    uint64_t seed;
    double C;
    double *s, *X, *w;
    unsigned char *y;
    double b, auc, threshold, accuracy, f1w, precision, sens, spec, lo, hi;
    int n_valid;
} Case;

static double *read_doubles(char *p, int n)
{
    double *v = calloc((size_t)(n ? n : 1), sizeof *v);
    for (int i = 0; i < n; i++)
        v[i] = strtod(p, &p);
    return v;
}

static void case_free(Case *c)
{
    free(c->s);
    free(c->X);
    free(c->w);
    free(c->y);
    memset(c, 0, sizeof *c);
}

/* Next case from *cur (advanced); 0 at the end. */
static int next_case(char **cur, Case *c)
{
    memset(c, 0, sizeof *c);
    char *line;
    int in = 0;
    while ((line = strsep(cur, "\n")) != NULL) {
        if (!*line || line[0] == '#')
            continue;
        char *sp = strchr(line, ' ');
        char *rest = sp ? sp + 1 : line + strlen(line);
        if (!in) {
            if (!strncmp(line, "metrics ", 8)) {
                unsigned long long seed;
                sscanf(line, "metrics %63s %d %llu %d", c->name, &c->n, &seed, &c->nboot);
                c->seed = seed;
                strcpy(c->kind, "metrics");
            } else if (!strncmp(line, "logreg ", 7)) {
                sscanf(line, "logreg %63s %d %d %lf", c->name, &c->n, &c->d, &c->C);
                strcpy(c->kind, "logreg");
            }
            in = 1;
            continue;
        }
        if (!strcmp(line, "end"))
            return 1;
        if (!strncmp(line, "s ", 2))
            c->s = read_doubles(rest, c->n);
        else if (!strncmp(line, "X ", 2))
            c->X = read_doubles(rest, c->n * c->d);
        else if (!strncmp(line, "w ", 2))
            c->w = read_doubles(rest, c->d);
        else if (!strncmp(line, "y ", 2)) {
            double *v = read_doubles(rest, c->n);
            c->y = malloc((size_t)c->n);
            for (int i = 0; i < c->n; i++)
                c->y[i] = (unsigned char)v[i];
            free(v);
        } else if (!strncmp(line, "b ", 2))
            c->b = strtod(rest, NULL);
        else if (!strncmp(line, "auc ", 4))
            c->auc = strtod(rest, NULL);
        else if (!strncmp(line, "threshold ", 10))
            c->threshold = strtod(rest, NULL);
        else if (!strncmp(line, "accuracy ", 9))
            c->accuracy = strtod(rest, NULL);
        else if (!strncmp(line, "f1_weighted ", 12))
            c->f1w = strtod(rest, NULL);
        else if (!strncmp(line, "precision ", 10))
            c->precision = strtod(rest, NULL);
        else if (!strncmp(line, "sensitivity ", 12))
            c->sens = strtod(rest, NULL);
        else if (!strncmp(line, "specificity ", 12))
            c->spec = strtod(rest, NULL);
        else if (!strncmp(line, "ci ", 3)) {
            char *p = rest;
            c->lo = strtod(p, &p);
            c->hi = strtod(p, &p);
            c->n_valid = (int)strtol(p, NULL, 10);
        }
    }
    return 0;
}

/* The next case of the given kind (cases of other kinds are skipped). */
static int next_case_of(char **cur, const char *kind, Case *c)
{
    while (next_case(cur, c)) {
        if (!strcmp(c->kind, kind))
            return 1;
        case_free(c);
    }
    return 0;
}

static char *load_fixture(void)
{
    char path[4096], *text = NULL;
    size_t len;
    FvErr e = {0};
    snprintf(path, sizeof path, "%s/tests/eval/fixtures/metrics_sklearn.txt", FVLM_SOURCE_ROOT);
    if (fs_read_file(path, 16 << 20, &text, &len, &e))
        CHECK(0, "cannot read the fixture: %s", e.msg);
    return text;
}

/* ---- tests */

static void test_metrics_agree_with_sklearn_to_1e9(void)
{
    char *text = load_fixture(), *cur = text;
    if (!text)
        return;
    int ncases = 0;
    Case c;
    while (next_case_of(&cur, "metrics", &c)) {
        ncases++;
        Metrics m;
        FvErr e = {0};
        CHECK_OK(metrics_compute(c.s, c.y, (size_t)c.n, c.nboot, c.seed, &m, &e), &e);
        const double tol = 1e-9;
        CHECK(fabs(m.auc - c.auc) <= tol, "%s: AUC %.17g, sklearn %.17g", c.name, m.auc, c.auc);
        CHECK(m.threshold == c.threshold, "%s: threshold %.17g, CT-CLIP's %.17g", c.name,
              m.threshold, c.threshold);
        CHECK(fabs(m.accuracy - c.accuracy) <= tol, "%s: accuracy %.17g, sklearn %.17g", c.name,
              m.accuracy, c.accuracy);
        CHECK(fabs(m.f1_weighted - c.f1w) <= tol, "%s: weighted F1 %.17g, sklearn %.17g", c.name,
              m.f1_weighted, c.f1w);
        CHECK(fabs(m.precision - c.precision) <= tol, "%s: precision %.17g, sklearn %.17g",
              c.name, m.precision, c.precision);
        CHECK(fabs(m.sensitivity - c.sens) <= tol, "%s: sensitivity %.17g, sklearn %.17g", c.name,
              m.sensitivity, c.sens);
        CHECK(fabs(m.specificity - c.spec) <= tol, "%s: specificity %.17g, sklearn %.17g",
              c.name, m.specificity, c.spec);
        CHECK(m.n_boot_valid == c.n_valid, "%s: %d valid resamples, oracle %d", c.name,
              m.n_boot_valid, c.n_valid);
        CHECK(fabs(m.auc_lo - c.lo) <= tol && fabs(m.auc_hi - c.hi) <= tol,
              "%s: CI [%.17g, %.17g], oracle [%.17g, %.17g]", c.name, m.auc_lo, m.auc_hi, c.lo,
              c.hi);
        case_free(&c);
    }
    CHECK(ncases >= 10, "only %d metrics cases in the fixture", ncases);
    free(text);
}

static void test_logreg_matches_sklearn_coefficients(void)
{
    char *text = load_fixture(), *cur = text;
    if (!text)
        return;
    int ncases = 0;
    Case c;
    while (next_case_of(&cur, "logreg", &c)) {
        ncases++;
        LogReg m;
        FvErr e = {0};
        CHECK_OK(logreg_fit(c.X, c.y, (size_t)c.n, c.d, c.C, 100, 1e-12, &m, &e), &e);
        if (!m.w) {
            case_free(&c);
            continue;
        }
        /* sklearn's newton-cg stops near |gradient| 1e-9; ours goes further. */
        CHECK(m.grad_max < 1e-9, "%s: max |gradient| %g after %d steps", c.name, m.grad_max,
              m.iters);
        for (int j = 0; j < c.d; j++)
            CHECK(fabs(m.w[j] - c.w[j]) < 1e-7, "%s: w[%d] = %.12g, sklearn %.12g", c.name, j,
                  m.w[j], c.w[j]);
        CHECK(fabs(m.b - c.b) < 1e-7, "%s: b = %.12g, sklearn %.12g", c.name, m.b, c.b);
        logreg_free(&m);
        case_free(&c);
    }
    CHECK(ncases >= 4, "only %d logreg cases in the fixture", ncases);
    free(text);
}

static void test_one_class_task_is_degenerate_with_nan_figures(void)
{
    double s[4] = {0.1, 0.2, 0.3, 0.4};
    unsigned char y[4] = {0, 0, 0, 0};
    Metrics m;
    FvErr e = {0};
    CHECK_OK(metrics_compute(s, y, 4, 100, 1, &m, &e), &e);
    CHECK(metrics_degenerate(&m), "an all-negative task is not degenerate");
    CHECK_EQ_INT(m.n_neg, 4);
    CHECK_EQ_INT(m.n_pos, 0);
    CHECK(isnan(m.auc) && isnan(m.auc_lo) && isnan(m.threshold) && isnan(m.accuracy),
          "degenerate task has figures: auc %g threshold %g", m.auc, m.threshold);
    double auc;
    CHECK_OK(metrics_auroc(s, y, 4, &auc, &e), &e);
    CHECK(isnan(auc), "AUROC of one class = %g, expected NaN", auc);
}

static void test_non_finite_score_is_an_error(void)
{
    double s[3] = {0.1, NAN, 0.3};
    unsigned char y[3] = {0, 1, 1};
    Metrics m;
    FvErr e = {0};
    CHECK(metrics_compute(s, y, 3, 10, 1, &m, &e) == -1, "a NaN score was accepted");
    CHECK(strstr(e.msg, "score 1") != NULL, "message does not name the item: %s", e.msg);
}

static void test_bootstrap_depends_on_seed_only(void)
{
    enum { N = 64 };
    double s[N];
    unsigned char y[N];
    for (int i = 0; i < N; i++) {
        s[i] = (double)((i * 37) % N) / N;
        y[i] = (unsigned char)(i % 3 == 0);
    }
    double lo1, hi1, lo2, hi2, lo3, hi3;
    int v1, v2, v3;
    FvErr e = {0};
    CHECK_OK(metrics_bootstrap_auc(s, y, N, 200, 5, &lo1, &hi1, &v1, NULL, &e), &e);
    CHECK_OK(metrics_bootstrap_auc(s, y, N, 200, 5, &lo2, &hi2, &v2, NULL, &e), &e);
    CHECK_OK(metrics_bootstrap_auc(s, y, N, 200, 6, &lo3, &hi3, &v3, NULL, &e), &e);
    CHECK(lo1 == lo2 && hi1 == hi2 && v1 == v2, "same seed, different interval");
    CHECK(lo1 != lo3 || hi1 != hi3, "another seed gave the same interval");
    CHECK(lo1 <= hi1, "interval [%g, %g] is reversed", lo1, hi1);
    CHECK_OK(metrics_bootstrap_auc(s, y, N, 0, 5, &lo1, &hi1, &v1, NULL, &e), &e);
    CHECK(isnan(lo1) && isnan(hi1) && v1 == 0, "0 resamples did not give NaN bounds");
    CHECK(metrics_bootstrap_auc(s, y, N, -1, 5, &lo1, &hi1, &v1, NULL, &e) == -1,
          "-1 resamples accepted");
}

static void test_roc_curve_runs_from_origin_to_corner_monotonically(void)
{
    double s[8] = {0.9, 0.8, 0.8, 0.7, 0.5, 0.5, 0.2, 0.1};
    unsigned char y[8] = {1, 1, 0, 1, 0, 1, 0, 0};
    double *fpr, *tpr;
    int n;
    FvErr e = {0};
    CHECK_OK(metrics_roc_curve(s, y, 8, &fpr, &tpr, &n, &e), &e);
    if (!fpr)
        return;
    CHECK(n >= 3, "%d points", n);
    CHECK(fpr[0] == 0 && tpr[0] == 0, "starts at (%g, %g)", fpr[0], tpr[0]);
    CHECK(fpr[n - 1] == 1 && tpr[n - 1] == 1, "ends at (%g, %g)", fpr[n - 1], tpr[n - 1]);
    double area = 0;
    for (int i = 1; i < n; i++) {
        CHECK(fpr[i] >= fpr[i - 1] && tpr[i] >= tpr[i - 1], "point %d goes back", i);
        area += (fpr[i] - fpr[i - 1]) * (tpr[i] + tpr[i - 1]) / 2;
    }
    double auc;
    CHECK_OK(metrics_auroc(s, y, 8, &auc, &e), &e);
    CHECK_NEAR(area, auc, 1e-12);
    free(fpr);
    free(tpr);
    /* A degenerate task gets the diagonal. */
    unsigned char y0[8] = {0};
    CHECK_OK(metrics_roc_curve(s, y0, 8, &fpr, &tpr, &n, &e), &e);
    CHECK(n == 2 && fpr[1] == 1 && tpr[1] == 1, "degenerate curve has %d points", n);
    free(fpr);
    free(tpr);
}

static void test_zero_shot_score_is_softmax_over_the_pair(void)
{
    float img[2] = {1, 0}, neg[2] = {0.2f, 0.9797959f}, pos[2] = {0.5f, 0.8660254f};
    double p = eval_zero_shot_score(img, neg, pos, 2, 0.1);
    double want = exp(0.5 / 0.1) / (exp(0.2 / 0.1) + exp(0.5 / 0.1));
    CHECK_NEAR(p, want, 1e-6);
    /* A tiny temperature must not overflow. */
    p = eval_zero_shot_score(img, neg, pos, 2, 1e-6);
    CHECK(p == 1.0, "p = %.17g at temperature 1e-6", p);
    p = eval_zero_shot_score(img, pos, neg, 2, 1e-6);
    CHECK(p >= 0 && p < 1e-100, "p = %g with the prompts swapped", p);
}

static void test_logreg_rejects_bad_input(void)
{
    double X[4] = {0, 1, NAN, 2};
    unsigned char y[2] = {0, 1};
    LogReg m;
    FvErr e = {0};
    CHECK(logreg_fit(X, y, 2, 2, 1.0, 10, 1e-9, &m, &e) == -1, "NaN feature accepted");
    X[2] = 1;
    CHECK(logreg_fit(X, y, 2, 2, 0.0, 10, 1e-9, &m, &e) == -1, "C = 0 accepted");
    CHECK(logreg_fit(X, y, 2, 0, 1.0, 10, 1e-9, &m, &e) == -1, "d = 0 accepted");
}

/* The macro average's interval resamples studies jointly across tasks: the
 * weighted AUROC of each resample equals the plain AUROC of the resample
 * written out (items repeated as often as their study was drawn), and the
 * bounds are the percentiles of the resampled means. */
static void test_macro_interval_is_a_bootstrap_over_studies(void)
{
    Ontology *o;
    FvErr e = {0};
    CHECK_OK(onto_load(&o, &e), &e);
    if (!o)
        return;
    enum { NS = 40, NB = 200 };
    static int item[2][NS];
    static double score[2][NS];
    static unsigned char label[2][NS];
    Rng g;
    rng_seed(&g, 7, 0);
    TaskResult t[2];
    memset(t, 0, sizeof t);
    for (int k = 0; k < 2; k++) {
        int n = 0;
        for (int s = 0; s < NS; s++) {
            if (k == 1 && s % 4 == 0)
                continue; /* the second task lacks some studies */
            item[k][n] = s;
            label[k][n] = (unsigned char)rng_bernoulli(&g, 0.4);
            /* rounded: ties must count one half in both paths */
            score[k][n] = round((rng_uniform(&g) + 0.5 * label[k][n]) * 8) / 8;
            n++;
        }
        t[k].item = item[k];
        t[k].score = score[k];
        t[k].label = label[k];
        t[k].n_items = n;
        t[k].is_ctrate = k == 0;
        CHECK_OK(metrics_auroc(score[k], label[k], (size_t)n, &t[k].m.auc, &e), &e);
    }
    EvalResults r;
    memset(&r, 0, sizeof r);
    r.tasks = t;
    r.n_tasks = 2;
    r.n_items = NS;
    CHECK_OK(eval_macros(&r, o, NB, 11, &e), &e);
    CHECK(r.macro_all.lo < r.macro_all.auc && r.macro_all.auc < r.macro_all.hi,
          "macro AUC %g outside its interval [%g, %g]", r.macro_all.auc, r.macro_all.lo,
          r.macro_all.hi);

    /* the reference: each resample written out */
    Rng rng;
    rng_seed(&rng, 11, NB + 1);
    static double means[NB];
    int nm = 0;
    for (int b = 0; b < NB; b++) {
        int w[NS] = {0};
        for (int s = 0; s < NS; s++)
            w[rng_below(&rng, NS)]++;
        double sum = 0;
        int nt = 0;
        for (int k = 0; k < 2; k++) {
            static double xs[4 * NS * NS];
            static unsigned char xl[4 * NS * NS];
            size_t m = 0;
            for (int i = 0; i < t[k].n_items; i++)
                for (int c = 0; c < w[item[k][i]]; c++) {
                    xs[m] = score[k][i];
                    xl[m++] = label[k][i];
                }
            double auc;
            CHECK_OK(metrics_auroc(xs, xl, m, &auc, &e), &e);
            if (isfinite(auc)) {
                sum += auc;
                nt++;
            }
        }
        if (nt)
            means[nm++] = sum / nt;
    }
    for (int i = 1; i < nm; i++)
        for (int j = i; j > 0 && means[j - 1] > means[j]; j--) {
            double x = means[j];
            means[j] = means[j - 1];
            means[j - 1] = x;
        }
    CHECK_NEAR(r.macro_all.lo, means[(int)(0.025 * nm) - 1], 1e-12);
    CHECK_NEAR(r.macro_all.hi, means[(int)(0.975 * nm) - 1], 1e-12);
    /* the CT-RATE set holds the first task alone: its own interval */
    CHECK(isfinite(r.macro_ctrate18.lo) && r.macro_ctrate18.lo != r.macro_all.lo,
          "CT-RATE interval %g", r.macro_ctrate18.lo);
    /* no resampling asked: no bounds */
    CHECK_OK(eval_macros(&r, o, 0, 11, &e), &e);
    CHECK(isnan(r.macro_all.lo) && isnan(r.macro_all.hi), "bounds without a bootstrap");
    onto_free(&o);
}

static void test_macro_averages_skip_degenerate_tasks(void)
{
    Ontology *o;
    FvErr e = {0};
    CHECK_OK(onto_load(&o, &e), &e);
    if (!o)
        return;
    EvalResults r;
    memset(&r, 0, sizeof r);
    TaskResult t[3];
    memset(t, 0, sizeof t);
    t[0].m.auc = 0.8;
    t[0].is_ctrate = 1;
    t[0].fvlm16 = 1;
    t[1].m.auc = 0.6;
    t[1].is_ctrate = 1;
    t[2].m.auc = NAN;
    t[2].is_ctrate = 1;
    t[2].fvlm16 = 1;
    r.tasks = t;
    r.n_tasks = 3;
    CHECK_OK(eval_macros(&r, o, 0, 0, &e), &e);
    CHECK_NEAR(r.macro_all.auc, 0.7, 1e-12);
    CHECK_EQ_INT(r.macro_all.n_scored, 2);
    CHECK_EQ_INT(r.macro_ctrate18.n_set, 18);
    CHECK_EQ_INT(r.macro_fvlm16.n_set, 16);
    CHECK_NEAR(r.macro_fvlm16.auc, 0.8, 1e-12);
    CHECK_EQ_INT(r.macro_fvlm16.n_scored, 1);
    onto_free(&o);
}

int main(void)
{
    RUN(test_metrics_agree_with_sklearn_to_1e9);
    RUN(test_logreg_matches_sklearn_coefficients);
    RUN(test_one_class_task_is_degenerate_with_nan_figures);
    RUN(test_non_finite_score_is_an_error);
    RUN(test_bootstrap_depends_on_seed_only);
    RUN(test_roc_curve_runs_from_origin_to_corner_monotonically);
    RUN(test_zero_shot_score_is_softmax_over_the_pair);
    RUN(test_logreg_rejects_bad_input);
    RUN(test_macro_averages_skip_degenerate_tasks);
    RUN(test_macro_interval_is_a_bootstrap_over_studies);
    return test_finish();
}
