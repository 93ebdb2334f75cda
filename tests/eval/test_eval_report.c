/* Report writers on a small fixed result set: CSV and Markdown against the
 * golden files in tests/eval/golden/ (FVLM_UPDATE_GOLDEN=1 rewrites them);
 * with a folder argument it also writes all four files there, for
 * check_report_xml.py to parse the SVG and HTML. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "eval.h"
#include "fsutil.h"
#include "fvlm_config.h"
#include "eval_report.h"
#include "test.h"

static double g_fpr[3][5] = {{0, 0.1, 0.3, 1, 1}, {0, 0.5, 1}, {0, 0.2, 0.25, 0.6, 1}};
static double g_tpr[3][5] = {{0, 0.6, 0.9, 1, 1}, {0, 0.5, 1}, {0, 0.4, 0.8, 0.95, 1}};

static void task(TaskResult *t, const char *id, const char *anat, const char *name, int ctrate,
                 int fvlm16, int npos, int nneg, int nunc, double auc)
{
    memset(t, 0, sizeof *t);
    snprintf(t->task, sizeof t->task, "%s", id);
    snprintf(t->anatomy, sizeof t->anatomy, "%s", anat);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->is_ctrate = ctrate;
    t->fvlm16 = fvlm16;
    t->m.n_pos = npos;
    t->m.n_neg = nneg;
    t->n_uncertain = nunc;
    t->m.auc = auc;
    if (isfinite(auc)) {
        t->m.auc_lo = auc - 0.05;
        t->m.auc_hi = auc + 0.04;
        t->m.threshold = 0.4848484848484848;
        t->m.accuracy = 0.8125;
        t->m.f1_weighted = 0.80321;
        t->m.precision = 0.5;
        t->m.sensitivity = 0.75;
        t->m.specificity = 0.8333333333333334;
        t->m.n_boot = 1000;
        t->m.n_boot_valid = 1000;
    } else {
        t->m.auc_lo = t->m.auc_hi = t->m.threshold = NAN;
        t->m.accuracy = t->m.f1_weighted = t->m.precision = NAN;
        t->m.sensitivity = t->m.specificity = NAN;
    }
}

/* The fixed result set: two lung tasks, one heart task, a degenerate task
 * whose note holds characters every format must escape. */
static void sample(EvalResults *r, TaskResult *t)
{
    memset(r, 0, sizeof *r);
    snprintf(r->method, sizeof r->method, "zero-shot");
    snprintf(r->style, sizeof r->style, "fvlm");
    snprintf(r->split, sizeof r->split, "test");
    snprintf(r->label_source, sizeof r->label_source, "truth:labels.csv");
    snprintf(r->model_path, sizeof r->model_path, "runs/model.safetensors");
    snprintf(r->model_sha256, sizeof r->model_sha256, "%s",
             "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    r->model_id = 2;
    snprintf(r->loss_mode, sizeof r->loss_mode, "fine-fn");
    r->temperature = 0.07;
    r->dim = 64;
    r->run_id = 7;
    r->n_boot = 1000;
    r->seed = 42;
    r->n_split = 40;
    r->n_labelled = 38;
    r->n_failed = 1;
    task(&t[0], "emphysema", "lung", "Emphysema", 1, 1, 8, 30, 0, 0.9125);
    task(&t[1], "lung_bulla", "lung", "Bulla", 0, 0, 3, 35, 2, 0.5);
    task(&t[2], "cardiomegaly", "heart", "Cardiomegaly", 1, 1, 5, 33, 0, 0.875);
    task(&t[3], "hiatal_hernia", "esophagus", "Hiatal hernia", 1, 1, 0, 38, 1, NAN);
    snprintf(t[3].note, sizeof t[3].note, "one class only (0 positive, 38 negative) | \"x\", <y> & z");
    for (int k = 0; k < 3; k++) {
        t[k].roc_fpr = g_fpr[k];
        t[k].roc_tpr = g_tpr[k];
        t[k].n_roc = k == 1 ? 3 : 5;
    }
    r->tasks = t;
    r->n_tasks = 4;
    r->macro_all = (MacroAvg){.auc = (0.9125 + 0.5 + 0.875) / 3, .lo = 0.70, .hi = 0.83,
                              .n_scored = 3, .n_set = 60};
    r->macro_ctrate18 = (MacroAvg){.auc = (0.9125 + 0.875) / 2, .lo = NAN, .hi = NAN,
                                   .n_scored = 2, .n_set = 18};
    r->macro_fvlm16 = (MacroAvg){.auc = (0.9125 + 0.875) / 2, .lo = 0.81, .hi = 0.95,
                                 .n_scored = 2, .n_set = 16};
}

static void golden(const char *name, const Buf *got)
{
    char path[4096], *want = NULL;
    size_t len;
    FvErr e = {0};
    snprintf(path, sizeof path, "%s/tests/eval/golden/%s", FVLM_SOURCE_ROOT, name);
    const char *upd = getenv("FVLM_UPDATE_GOLDEN");
    if (upd && !strcmp(upd, "1")) {
        CHECK_OK(fs_write_atomic(path, got->data, got->len, &e), &e);
        return;
    }
    if (fs_read_file(path, 1 << 20, &want, &len, &e)) {
        CHECK(0, "no golden file: %s", e.msg);
        return;
    }
    if (len != got->len || memcmp(want, got->data, len) != 0) {
        size_t i = 0;
        while (i < len && i < got->len && want[i] == got->data[i])
            i++;
        size_t from = i > 40 ? i - 40 : 0;
        CHECK(0, "%s differs from the golden file at byte %zu:\n got: %.80s\nwant: %.80s", name, i,
              got->data + from, want + from);
    }
    free(want);
}

static void test_csv_matches_golden(void)
{
    EvalResults r;
    TaskResult t[4];
    sample(&r, t);
    Buf b = {0};
    eval_report_csv(&b, &r);
    golden("zero-shot.csv", &b);
    buf_free(&b);
}

static void test_markdown_matches_golden(void)
{
    EvalResults r;
    TaskResult t[4];
    sample(&r, t);
    Buf b = {0};
    eval_report_markdown(&b, &r);
    golden("zero-shot.md", &b);
    buf_free(&b);
}

static void test_silver_labels_are_marked(void)
{
    EvalResults r;
    TaskResult t[4];
    sample(&r, t);
    r.silver = 1;
    snprintf(r.label_source, sizeof r.label_source, "parsed (silver)");
    Buf b = {0};
    eval_report_markdown(&b, &r);
    CHECK(strstr(b.data, "Silver labels") != NULL, "Markdown does not mark silver labels");
    buf_reset(&b);
    eval_report_html(&b, &r, NULL);
    CHECK(strstr(b.data, "Silver labels") != NULL, "HTML does not mark silver labels");
    buf_free(&b);
}

static void test_svg_has_one_panel_per_anatomy(void)
{
    EvalResults r;
    TaskResult t[4];
    sample(&r, t);
    Buf b = {0};
    eval_report_svg(&b, &r);
    int panels = 0, curves = 0;
    for (const char *p = b.data; (p = strstr(p, "<g transform")); p++)
        panels++;
    for (const char *p = b.data; (p = strstr(p, "<polyline")); p++)
        curves++;
    /* lung and heart have curves; the degenerate esophagus task has none */
    CHECK_EQ_INT(panels, 2);
    CHECK_EQ_INT(curves, 3);
    buf_free(&b);
}

static void test_comparison_table_lists_every_task_and_the_means(void)
{
    EvalResults a, p;
    TaskResult ta[4], tp[4];
    sample(&a, ta);
    sample(&p, tp);
    p.n_tasks = 2;  /* the second set has fewer tasks: the rest print "-" */
    tp[0].m.auc = 0.7;
    const EvalResults *sets[2] = {&a, &p};
    const char *labels[2] = {"fine-fn", "probe"};
    Buf b = {0};
    eval_report_comparison(&b, sets, labels, 2);
    CHECK(strstr(b.data, "| Emphysema | lung | 0.9125 | 0.7000 |") != NULL, "row: %s", b.data);
    CHECK(strstr(b.data, "| Cardiomegaly | heart | 0.8750 | - |") != NULL, "missing task: %s",
          b.data);
    CHECK(strstr(b.data, "**mean, all tasks**") != NULL, "no mean row");
    buf_free(&b);
}

/* A panel holds six curves at most, each its own colour: an anatomy with
 * eight scored tasks gets two panels (6 + 2). */
static void test_roc_panels_hold_six_distinct_curves_at_most(void)
{
    EvalResults r;
    TaskResult t[4];
    sample(&r, t);
    TaskResult many[8];
    char id[8][16];
    for (int k = 0; k < 8; k++) {
        snprintf(id[k], sizeof id[k], "lung_t%d", k);
        task(&many[k], id[k], "lung", id[k], 0, 0, 5, 5, 0, 0.6 + 0.01 * k);
        many[k].roc_fpr = g_fpr[0];
        many[k].roc_tpr = g_tpr[0];
        many[k].n_roc = 5;
    }
    r.tasks = many;
    r.n_tasks = 8;
    Buf b = {0};
    eval_report_svg(&b, &r);
    int panels = 0;
    for (const char *p = b.data; (p = strstr(p, "<g transform")); p++)
        panels++;
    CHECK_EQ_INT(panels, 2);
    CHECK(strstr(b.data, "lung (1 of 2)") && strstr(b.data, "lung (2 of 2)"),
          "panels are not numbered: %.200s", b.data);
    /* within each panel no colour repeats */
    const char *g2 = strstr(b.data, "lung (2 of 2)");
    for (const char *p = b.data; (p = strstr(p, "<polyline")) && p < g2; p++) {
        const char *col = strstr(p, "stroke=\"");
        char c[16];
        snprintf(c, sizeof c, "%.7s", col + 8);
        int same = 0;
        for (const char *q = b.data; (q = strstr(q, "<polyline")) && q < g2; q++)
            same += strncmp(strstr(q, "stroke=\"") + 8, c, 7) == 0;
        CHECK(same == 1, "colour %s drawn %d times in one panel", c, same);
    }
    buf_free(&b);
}

/* The HTML task table sorts by any column (exact values in data-v), shows
 * three places, and the macro averages carry their intervals. */
static void test_html_table_sorts_and_shows_three_places(void)
{
    EvalResults r;
    TaskResult t[4];
    sample(&r, t);
    Buf b = {0};
    eval_report_html(&b, &r, NULL);
    CHECK(strstr(b.data, "<table class=\"sortable\">") != NULL, "no sortable table");
    CHECK(strstr(b.data, "aria-sort") != NULL, "no sort script");
    CHECK(strstr(b.data, "<td class=\"n\" data-v=\"0.91249999999999998\">0.912</td>") != NULL ||
              strstr(b.data, "<td class=\"n\" data-v=\"0.91249999999999998\">0.913</td>") != NULL,
          "AUC cell: %s", strstr(b.data, "Emphysema"));
    CHECK(strstr(b.data, "0.9125<") == NULL, "a figure with four places on the page");
    CHECK(strstr(b.data, "0.700-0.830") != NULL, "macro interval missing");
    CHECK(strstr(b.data, "width: 100%") != NULL, "ROC figure not full width");
    buf_free(&b);
}

/* A failed or empty evaluation gets no column of dashes in the comparison:
 * it is named below the table. */
static void test_comparison_leaves_out_empty_evaluations(void)
{
    EvalResults a, empty;
    TaskResult ta[4];
    sample(&a, ta);
    memset(&empty, 0, sizeof empty);
    const EvalResults *sets[2] = {&a, &empty};
    const char *labels[2] = {"fine-fn", "global"};
    Buf b = {0};
    eval_report_comparison(&b, sets, labels, 2);
    CHECK(strstr(b.data, "| task | anatomy | fine-fn |\n") != NULL, "header: %s", b.data);
    CHECK(strstr(b.data, "Left out: global scored no task.") != NULL, "not named: %s", b.data);
    CHECK(strstr(b.data, "0.7625 [0.700, 0.830] (3)") != NULL, "mean with interval: %s", b.data);
    buf_free(&b);
}

int main(int argc, char **argv)
{
    RUN(test_csv_matches_golden);
    RUN(test_markdown_matches_golden);
    RUN(test_silver_labels_are_marked);
    RUN(test_svg_has_one_panel_per_anatomy);
    RUN(test_roc_panels_hold_six_distinct_curves_at_most);
    RUN(test_html_table_sorts_and_shows_three_places);
    RUN(test_comparison_leaves_out_empty_evaluations);
    RUN(test_comparison_table_lists_every_task_and_the_means);
    if (argc > 1) {
        EvalResults r;
        TaskResult t[4];
        sample(&r, t);
        char html[4096];
        FvErr e = {0};
        HistoryRow rows[1] = {{3, "2026-11-28T12:00:00Z", "probe", "-", "fine-fn", "m.st",
                               "truth:labels.csv", {0.71, 0.72, 0.73}, {3, 2, 2}}};
        EvalHistory hist = {rows, 1};
        CHECK_OK(eval_report_write_dir(&r, &hist, argv[1], html, sizeof html, &e), &e);
    }
    return test_finish();
}
