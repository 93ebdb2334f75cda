#include "eval_report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "fsutil.h"

/* ------------------------------------------------------------------------
 * Small formatting helpers
 * ------------------------------------------------------------------------ */

void eval_report_xml_escape(Buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': buf_puts(b, "&amp;"); break;
        case '<': buf_puts(b, "&lt;"); break;
        case '>': buf_puts(b, "&gt;"); break;
        case '"': buf_puts(b, "&quot;"); break;
        case '\'': buf_puts(b, "&#39;"); break;
        default: buf_putc(b, *s);
        }
    }
}

/* A Markdown table cell: pipes and angle brackets escaped (renderers take
 * <x> for HTML), newlines flattened. */
static void md_cell(Buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            buf_puts(b, "\\|");
        else if (*s == '<')
            buf_puts(b, "&lt;");
        else if (*s == '>')
            buf_puts(b, "&gt;");
        else if (*s == '\n' || *s == '\r')
            buf_putc(b, ' ');
        else
            buf_putc(b, *s);
    }
}

static void num(Buf *b, double v, const char *missing)
{
    if (isfinite(v))
        buf_printf(b, "%.4f", v);
    else
        buf_puts(b, missing);
}

static void ci(Buf *b, const Metrics *m, const char *missing)
{
    if (isfinite(m->auc_lo) && isfinite(m->auc_hi))
        buf_printf(b, "%.4f-%.4f", m->auc_lo, m->auc_hi);
    else
        buf_puts(b, missing);
}

static const char *method_title(const EvalResults *res)
{
    return strcmp(res->method, "probe") == 0 ? "Linear probe (supervised)" : "Zero-shot";
}

typedef struct MacroRow {
    const char *name;
    const MacroAvg *m;
} MacroRow;

static int macro_rows(const EvalResults *res, MacroRow rows[3])
{
    rows[0] = (MacroRow){"all tasks", &res->macro_all};
    rows[1] = (MacroRow){"CT-RATE 18 labels", &res->macro_ctrate18};
    rows[2] = (MacroRow){"fVLM 16 labels", &res->macro_fvlm16};
    return 3;
}

/* ------------------------------------------------------------------------
 * CSV
 * ------------------------------------------------------------------------ */

static void csv_num(Buf *b, double v)
{
    buf_putc(b, ',');
    if (isfinite(v))
        buf_printf(b, "%.6f", v);
}

void eval_report_csv(Buf *b, const EvalResults *res)
{
    buf_puts(b, "method,style,split,label_source,task,anatomy,ctrate,fvlm16,n_pos,n_neg,"
                "n_uncertain,n_no_feature,auc,auc_lo,auc_hi,threshold,accuracy,f1_weighted,"
                "precision,sensitivity,specificity,note\n");
    for (int i = 0; i < res->n_tasks; i++) {
        const TaskResult *t = &res->tasks[i];
        csv_put_field(b, res->method);
        buf_putc(b, ',');
        csv_put_field(b, res->style);
        buf_putc(b, ',');
        csv_put_field(b, res->split);
        buf_putc(b, ',');
        csv_put_field(b, res->label_source);
        buf_putc(b, ',');
        csv_put_field(b, t->task);
        buf_putc(b, ',');
        csv_put_field(b, t->anatomy);
        buf_printf(b, ",%d,%d,%d,%d,%d,%d", t->is_ctrate, t->fvlm16, t->m.n_pos, t->m.n_neg,
                   t->n_uncertain, t->n_no_feature);
        csv_num(b, t->m.auc);
        csv_num(b, t->m.auc_lo);
        csv_num(b, t->m.auc_hi);
        csv_num(b, t->m.threshold);
        csv_num(b, t->m.accuracy);
        csv_num(b, t->m.f1_weighted);
        csv_num(b, t->m.precision);
        csv_num(b, t->m.sensitivity);
        csv_num(b, t->m.specificity);
        buf_putc(b, ',');
        csv_put_field(b, t->note);
        buf_putc(b, '\n');
    }
}

/* ------------------------------------------------------------------------
 * Markdown
 * ------------------------------------------------------------------------ */

static void md_facts(Buf *b, const EvalResults *res)
{
    buf_printf(b, "# %s evaluation: split `%s`", method_title(res), res->split);
    if (strcmp(res->method, "probe") != 0)
        buf_printf(b, ", %s prompts", res->style);
    buf_puts(b, "\n\n");
    buf_puts(b, "- model: `");
    md_cell(b, res->model_path);
    buf_printf(b, "` (sha256 %.12s, loss `", res->model_sha256);
    md_cell(b, res->loss_mode);
    buf_printf(b, "`, temperature %.4f, %d-dimensional features", res->temperature, res->dim);
    if (res->model_id > 0)
        buf_printf(b, ", model %lld of this corpus)\n", (long long)res->model_id);
    else
        buf_puts(b, ", not registered in this corpus)\n");
    buf_puts(b, "- labels: ");
    md_cell(b, res->label_source);
    buf_putc(b, '\n');
    buf_printf(b, "- studies: %lld in the split, %lld labelled, %lld failed to encode",
               (long long)res->n_split, (long long)res->n_labelled, (long long)res->n_failed);
    if (strcmp(res->method, "probe") == 0)
        buf_printf(b, "; %lld labelled training studies", (long long)res->n_train);
    buf_putc(b, '\n');
    buf_printf(b, "- AUROC 95%% CI: %d bootstrap resamples, seed %llu\n", res->n_boot,
               (unsigned long long)res->seed);
    if (res->silver)
        buf_puts(b, "\n**Silver labels**: the ground truth was parsed from the reports, not "
                    "annotated; uncertain mentions are left out.\n");
    buf_putc(b, '\n');
}

void eval_report_markdown(Buf *b, const EvalResults *res)
{
    md_facts(b, res);
    buf_puts(b, "| average | mean AUC | 95% CI | tasks scored |\n|---|---:|---:|---:|\n");
    MacroRow rows[3];
    int nr = macro_rows(res, rows);
    for (int i = 0; i < nr; i++) {
        buf_printf(b, "| %s | ", rows[i].name);
        num(b, rows[i].m->auc, "-");
        buf_puts(b, " | ");
        if (isfinite(rows[i].m->lo) && isfinite(rows[i].m->hi))
            buf_printf(b, "%.4f-%.4f", rows[i].m->lo, rows[i].m->hi);
        else
            buf_puts(b, "-");
        buf_printf(b, " | %d of %d |\n", rows[i].m->n_scored, rows[i].m->n_set);
    }
    buf_puts(b, "\n| task | anatomy | AUC | 95% CI | threshold | accuracy | F1 (weighted) | "
                "precision | sensitivity | specificity | pos | neg | uncertain | note |\n"
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for (int i = 0; i < res->n_tasks; i++) {
        const TaskResult *t = &res->tasks[i];
        buf_puts(b, "| ");
        md_cell(b, t->name);
        buf_puts(b, " | ");
        md_cell(b, t->anatomy);
        buf_puts(b, " | ");
        num(b, t->m.auc, "-");
        buf_puts(b, " | ");
        ci(b, &t->m, "-");
        const double v[6] = {t->m.threshold, t->m.accuracy, t->m.f1_weighted, t->m.precision,
                             t->m.sensitivity, t->m.specificity};
        for (int k = 0; k < 6; k++) {
            buf_puts(b, " | ");
            num(b, v[k], "-");
        }
        buf_printf(b, " | %d | %d | %d | ", t->m.n_pos, t->m.n_neg, t->n_uncertain);
        md_cell(b, t->note);
        buf_puts(b, " |\n");
    }
}

/* ------------------------------------------------------------------------
 * SVG: ROC panels, one per anatomy
 * ------------------------------------------------------------------------ */

enum {
    SVG_COLS = 3,
    PANEL_CURVES = 6,  /* at most this many curves a panel: more are unreadable */
    PANEL_W = 320,
    PLOT_X = 48,       /* left edge of the plot area in the panel, px */
    PLOT_Y = 30,
    PLOT_S = 220,      /* plot area side, px */
    LEGEND_LINE = 14,
};

/* Okabe and Ito's colour-blind-safe palette: six curves a panel at most,
 * each its own colour. */
static const char *palette[] = {"#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00",
                                "#56b4e9"};
enum { NPALETTE = sizeof palette / sizeof palette[0] };

/* A panel: up to PANEL_CURVES curves of one anatomy's scored tasks, from
 * its first-th (an anatomy with more tasks gets several panels). */
typedef struct Panel {
    const char *anatomy;
    int first, count, part, parts;
} Panel;

static int anatomy_curves(const EvalResults *res, const char *anatomy)
{
    int k = 0;
    for (int i = 0; i < res->n_tasks; i++)
        k += res->tasks[i].n_roc >= 2 && strcmp(res->tasks[i].anatomy, anatomy) == 0;
    return k;
}

/* The panels of the scored tasks' anatomies, in task order. */
static int curve_panels(const EvalResults *res, Panel *pan, int max)
{
    int n = 0;
    const char *seen[256];
    int nseen = 0;
    for (int i = 0; i < res->n_tasks; i++) {
        const TaskResult *t = &res->tasks[i];
        if (t->n_roc < 2)
            continue;
        int dup = 0;
        for (int k = 0; k < nseen && !dup; k++)
            dup = strcmp(seen[k], t->anatomy) == 0;
        if (dup || nseen == 256)
            continue;
        seen[nseen++] = t->anatomy;
        int total = anatomy_curves(res, t->anatomy);
        int parts = (total + PANEL_CURVES - 1) / PANEL_CURVES;
        for (int p = 0; p < parts && n < max; p++) {
            int left = total - p * PANEL_CURVES;
            pan[n++] = (Panel){t->anatomy, p * PANEL_CURVES,
                               left < PANEL_CURVES ? left : PANEL_CURVES, p + 1, parts};
        }
    }
    return n;
}

static int panel_height(int ntasks) { return PLOT_Y + PLOT_S + 40 + LEGEND_LINE * ntasks + 8; }

static void svg_panel(Buf *b, const EvalResults *res, const Panel *pan, int x0, int y0)
{
    const char *anatomy = pan->anatomy;
    buf_printf(b, "<g transform=\"translate(%d,%d)\">\n", x0, y0);
    buf_puts(b, "<text x=\"160\" y=\"18\" text-anchor=\"middle\" font-size=\"14\" "
                "font-weight=\"bold\">");
    eval_report_xml_escape(b, anatomy);
    if (pan->parts > 1)
        buf_printf(b, " (%d of %d)", pan->part, pan->parts);
    buf_puts(b, "</text>\n");
    /* Frame, grid, diagonal. */
    buf_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#fff\" "
                  "stroke=\"#333\"/>\n", PLOT_X, PLOT_Y, PLOT_S, PLOT_S);
    for (int k = 1; k < 4; k++) {
        double p = PLOT_S * k / 4.0;
        buf_printf(b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n",
                   PLOT_X + p, PLOT_Y, PLOT_X + p, PLOT_Y + PLOT_S);
        buf_printf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
                   PLOT_X, PLOT_Y + p, PLOT_X + PLOT_S, PLOT_Y + p);
    }
    buf_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#999\" "
                  "stroke-dasharray=\"4 3\"/>\n", PLOT_X, PLOT_Y + PLOT_S, PLOT_X + PLOT_S, PLOT_Y);
    for (int k = 0; k <= 4; k++) {
        double v = k / 4.0, p = PLOT_S * v;
        buf_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"10\">%.2f"
                      "</text>\n", PLOT_X + p, PLOT_Y + PLOT_S + 13, v);
        buf_printf(b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" font-size=\"10\">%.2f"
                      "</text>\n", PLOT_X - 4, PLOT_Y + PLOT_S - p + 3, v);
    }
    buf_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"11\">false positive "
                  "rate</text>\n", PLOT_X + PLOT_S / 2, PLOT_Y + PLOT_S + 28);
    buf_printf(b, "<text x=\"12\" y=\"%d\" text-anchor=\"middle\" font-size=\"11\" "
                  "transform=\"rotate(-90 12 %d)\">true positive rate</text>\n",
               PLOT_Y + PLOT_S / 2, PLOT_Y + PLOT_S / 2);
    int c = 0, k_anat = -1;
    for (int i = 0; i < res->n_tasks; i++) {
        const TaskResult *t = &res->tasks[i];
        if (t->n_roc < 2 || strcmp(t->anatomy, anatomy) != 0)
            continue;
        k_anat++;
        if (k_anat < pan->first || k_anat >= pan->first + pan->count)
            continue;
        const char *col = palette[c % NPALETTE];
        buf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
                   col);
        for (int k = 0; k < t->n_roc; k++)
            buf_printf(b, "%s%.1f,%.1f", k ? " " : "", PLOT_X + PLOT_S * t->roc_fpr[k],
                       PLOT_Y + PLOT_S * (1 - t->roc_tpr[k]));
        buf_puts(b, "\"><title>");
        eval_report_xml_escape(b, t->name);
        buf_printf(b, " AUC %.3f</title></polyline>\n", t->m.auc);
        /* The operating point at the chosen threshold. */
        if (isfinite(t->m.specificity) && isfinite(t->m.sensitivity)) {
            buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>",
                       PLOT_X + PLOT_S * (1 - t->m.specificity),
                       PLOT_Y + PLOT_S * (1 - t->m.sensitivity), col);
            eval_report_xml_escape(b, t->name);
            buf_printf(b, " threshold %.3f</title></circle>\n", t->m.threshold);
        }
        int ly = PLOT_Y + PLOT_S + 44 + LEGEND_LINE * c;
        buf_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" "
                      "stroke-width=\"3\"/>\n", PLOT_X - 30, ly - 4, PLOT_X - 14, ly - 4, col);
        buf_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"11\">", PLOT_X - 8, ly);
        eval_report_xml_escape(b, t->name);
        buf_printf(b, " (AUC %.3f)</text>\n", t->m.auc);
        c++;
    }
    buf_puts(b, "</g>\n");
}

/* The panel grid; with `standalone` the XML declaration and a fixed size,
 * else it scales to the page's full width (viewBox). */
static void svg_grid(Buf *b, const EvalResults *res, int standalone)
{
    enum { MAXP = 512 };
    Panel *pan = malloc(MAXP * sizeof *pan);
    int np = pan ? curve_panels(res, pan, MAXP) : 0;
    int rows = (np + SVG_COLS - 1) / SVG_COLS;
    int total_h = 0;
    for (int r = 0; r < rows; r++) {
        int h = 0;
        for (int k = r * SVG_COLS; k < np && k < (r + 1) * SVG_COLS; k++)
            if (panel_height(pan[k].count) > h)
                h = panel_height(pan[k].count);
        total_h += h;
    }
    int width = PANEL_W * (np < SVG_COLS ? (np ? np : 1) : SVG_COLS);
    if (!np)
        total_h = 40;
    if (standalone)
        buf_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    if (standalone)
        buf_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" ",
                   width, total_h);
    else
        buf_puts(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"roc\" ");
    buf_printf(b, "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n", width, total_h);
    if (!np)
        buf_puts(b, "<text x=\"10\" y=\"24\" font-size=\"13\">No task has both classes: no ROC "
                    "curve to draw.</text>\n");
    int y = 0;
    for (int r = 0; r < rows; r++) {
        int h = 0;
        for (int k = r * SVG_COLS; k < np && k < (r + 1) * SVG_COLS; k++) {
            svg_panel(b, res, &pan[k], PANEL_W * (k - r * SVG_COLS), y);
            if (panel_height(pan[k].count) > h)
                h = panel_height(pan[k].count);
        }
        y += h;
    }
    buf_puts(b, "</svg>\n");
    free(pan);
}

void eval_report_svg(Buf *b, const EvalResults *res) { svg_grid(b, res, 1); }

/* ------------------------------------------------------------------------
 * HTML (polyglot: valid HTML5 and well-formed XML)
 * ------------------------------------------------------------------------ */

/* Figures on the page have three places (the CSV keeps them all). */
static void html_num(Buf *b, double v)
{
    if (isfinite(v))
        buf_printf(b, "%.3f", v);
    else
        buf_puts(b, "-");
}

/* A table cell of a sortable column: the shown figure, and the exact one
 * in data-v for the sort (missing sorts last). */
static void html_cell(Buf *b, double v)
{
    if (isfinite(v))
        buf_printf(b, "<td class=\"n\" data-v=\"%.17g\">%.3f</td>", v, v);
    else
        buf_puts(b, "<td class=\"n\" data-v=\"\">-</td>");
}

static void html_count(Buf *b, int v) { buf_printf(b, "<td class=\"n\" data-v=\"%d\">%d</td>", v, v); }

static void html_interval(Buf *b, double lo, double hi)
{
    if (isfinite(lo) && isfinite(hi))
        buf_printf(b, "%.3f-%.3f", lo, hi);
    else
        buf_puts(b, "-");
}

/* Click a header to sort the table by that column (again: the other way).
 * Numbers sort by their exact value (data-v), text by the locale. In a
 * CDATA section so that the page stays well-formed XML. */
static const char sort_script[] =
    "<script>//<![CDATA[\n"
    "document.querySelectorAll('table.sortable').forEach(function (t) {\n"
    "  var heads = t.querySelectorAll('th');\n"
    "  heads.forEach(function (th, col) {\n"
    "    th.addEventListener('click', function () {\n"
    "      var up = th.getAttribute('aria-sort') !== 'ascending';\n"
    "      heads.forEach(function (h) { h.removeAttribute('aria-sort'); });\n"
    "      th.setAttribute('aria-sort', up ? 'ascending' : 'descending');\n"
    "      var rows = Array.prototype.slice.call(t.querySelectorAll('tr')).slice(1);\n"
    "      function key(r) {\n"
    "        var c = r.children[col], v = c.getAttribute('data-v');\n"
    "        if (v === null) return c.textContent;\n"
    "        return v === '' ? null : parseFloat(v);\n"
    "      }\n"
    "      rows.sort(function (a, b) {\n"
    "        var x = key(a), y = key(b);\n"
    "        if (x === null || y === null) return (x === null) - (y === null);\n"
    "        var d = typeof x === 'number' ? x - y : String(x).localeCompare(String(y));\n"
    "        return up ? d : -d;\n"
    "      });\n"
    "      rows.forEach(function (r) { r.parentNode.appendChild(r); });\n"
    "    });\n"
    "  });\n"
    "});\n"
    "//]]></script>\n";

static void html_history_row(Buf *b, const char *run, const char *when, const char *method,
                             const char *loss, const char *style, const char *labels,
                             const double auc[3], const int scored[3], int current)
{
    buf_printf(b, "<tr%s><td>%s</td><td>", current ? " class=\"current\"" : "", run);
    eval_report_xml_escape(b, when);
    buf_puts(b, "</td><td>");
    eval_report_xml_escape(b, method);
    buf_puts(b, "</td><td>");
    eval_report_xml_escape(b, loss);
    buf_puts(b, "</td><td>");
    eval_report_xml_escape(b, style);
    buf_puts(b, "</td><td>");
    eval_report_xml_escape(b, labels);
    buf_puts(b, "</td>");
    for (int k = 0; k < 3; k++) {
        buf_puts(b, "<td class=\"n\">");
        html_num(b, auc[k]);
        buf_printf(b, " (%d)</td>", scored[k]);
    }
    buf_puts(b, "</tr>\n");
}

/* Earlier evaluations of the same split, then this one. */
static void html_history(Buf *b, const EvalResults *res, const EvalHistory *hist)
{
    buf_puts(b, "<h2>Evaluations of this corpus on split ");
    eval_report_xml_escape(b, res->split);
    buf_puts(b, "</h2>\n<p>Mean AUC (tasks scored) of every finished eval and probe run on this "
                "split: the loss modes and the supervised probe side by side. Compare rows with "
                "the same labels.</p>\n<table>\n<tr><th>run</th><th>started</th><th>method</th>"
                "<th>loss mode</th><th>prompts</th><th>labels</th><th>all tasks</th>"
                "<th>CT-RATE 18</th><th>fVLM 16</th></tr>\n");
    int empty = 0;
    for (int i = 0; i < hist->n; i++) {
        const HistoryRow *r = &hist->rows[i];
        /* an evaluation that scored no task compares nothing */
        if (r->n_scored[0] == 0 || !isfinite(r->auc[0])) {
            empty++;
            continue;
        }
        char run[32];
        snprintf(run, sizeof run, "%lld", (long long)r->run_id);
        html_history_row(b, run, r->started, r->method, r->loss_mode, r->style, r->label_source,
                         r->auc, r->n_scored, 0);
    }
    const double auc[3] = {res->macro_all.auc, res->macro_ctrate18.auc, res->macro_fvlm16.auc};
    const int scored[3] = {res->macro_all.n_scored, res->macro_ctrate18.n_scored,
                           res->macro_fvlm16.n_scored};
    char run[48];
    snprintf(run, sizeof run, "%lld (this)", (long long)res->run_id);
    html_history_row(b, run, "", res->method, res->loss_mode, res->style, res->label_source, auc,
                     scored, 1);
    buf_puts(b, "</table>\n");
    if (empty)
        buf_printf(b, "<p>%d earlier evaluation%s scored no task and %s left out.</p>\n", empty,
                   empty == 1 ? "" : "s", empty == 1 ? "is" : "are");
}

void eval_report_html(Buf *b, const EvalResults *res, const EvalHistory *hist)
{
    buf_puts(b, "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n"
                "<head>\n<meta charset=\"utf-8\"/>\n<title>fvlm: ");
    eval_report_xml_escape(b, method_title(res));
    buf_puts(b, " evaluation</title>\n<style>\n"
                "body { font-family: sans-serif; margin: 2em; color: #222; }\n"
                "table { border-collapse: collapse; margin: 1em 0; }\n"
                "th, td { border: 1px solid #ccc; padding: 3px 8px; font-size: 13px; }\n"
                "td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }\n"
                "tr.degenerate td { color: #888; }\n"
                "tr.current td { font-weight: bold; }\n"
                "p.warn { background: #fff3cd; border: 1px solid #e0c060; padding: 8px; }\n"
                "dt { font-weight: bold; float: left; width: 11em; }\n"
                "dd { margin-left: 12em; }\n"
                "svg.roc { display: block; width: 100%; height: auto; }\n"
                "table.sortable th { cursor: pointer; user-select: none; }\n"
                "table.sortable th[aria-sort=ascending]::after { content: \" \\25B2\"; }\n"
                "table.sortable th[aria-sort=descending]::after { content: \" \\25BC\"; }\n"
                "</style>\n</head>\n<body>\n<h1>");
    eval_report_xml_escape(b, method_title(res));
    buf_puts(b, " evaluation, split ");
    eval_report_xml_escape(b, res->split);
    buf_puts(b, "</h1>\n<dl>\n<dt>model</dt><dd>");
    eval_report_xml_escape(b, res->model_path);
    buf_printf(b, " (sha256 %.12s", res->model_sha256);
    if (res->model_id > 0)
        buf_printf(b, ", model %lld of this corpus", (long long)res->model_id);
    else
        buf_puts(b, ", not registered in this corpus");
    buf_puts(b, ")</dd>\n<dt>loss mode</dt><dd>");
    eval_report_xml_escape(b, res->loss_mode);
    buf_printf(b, "</dd>\n<dt>temperature</dt><dd>%.4f</dd>\n<dt>feature size</dt><dd>%d</dd>\n",
               res->temperature, res->dim);
    if (strcmp(res->method, "probe") != 0) {
        buf_puts(b, "<dt>prompt style</dt><dd>");
        eval_report_xml_escape(b, res->style);
        buf_puts(b, "</dd>\n");
    }
    buf_puts(b, "<dt>labels</dt><dd>");
    eval_report_xml_escape(b, res->label_source);
    buf_printf(b, "</dd>\n<dt>studies</dt><dd>%lld in the split, %lld labelled, %lld failed to "
                  "encode", (long long)res->n_split, (long long)res->n_labelled,
               (long long)res->n_failed);
    if (strcmp(res->method, "probe") == 0)
        buf_printf(b, "; %lld labelled training studies", (long long)res->n_train);
    buf_printf(b, "</dd>\n<dt>run</dt><dd>%lld</dd>\n</dl>\n", (long long)res->run_id);
    if (res->silver)
        buf_puts(b, "<p class=\"warn\">Silver labels: the ground truth was parsed from the "
                    "reports, not annotated. Uncertain mentions are left out.</p>\n");
    if (res->label_rows_bad || res->label_conflicts)
        buf_printf(b, "<p class=\"warn\">The labels file had %lld bad values or rows and %lld "
                      "conflicting duplicates (see the run's errors).</p>\n",
                   (long long)res->label_rows_bad, (long long)res->label_conflicts);

    buf_puts(b, "<h2>Macro averages</h2>\n<table>\n<tr><th>average</th><th>mean AUC</th>"
                "<th>95% CI</th><th>tasks scored</th></tr>\n");
    MacroRow rows[3];
    int nr = macro_rows(res, rows);
    for (int i = 0; i < nr; i++) {
        buf_printf(b, "<tr><td>%s</td><td class=\"n\">", rows[i].name);
        html_num(b, rows[i].m->auc);
        buf_puts(b, "</td><td class=\"n\">");
        html_interval(b, rows[i].m->lo, rows[i].m->hi);
        buf_printf(b, "</td><td class=\"n\">%d of %d</td></tr>\n", rows[i].m->n_scored,
                   rows[i].m->n_set);
    }
    buf_puts(b, "</table>\n");
    if (hist && hist->n > 0)
        html_history(b, res, hist);
    buf_puts(b, "<h2>ROC curves</h2>\n");
    svg_grid(b, res, 0);
    buf_puts(b, "<h2>Tasks</h2>\n<p>Click a column's header to sort by it.</p>\n"
                "<table class=\"sortable\">\n<tr><th>task</th><th>anatomy</th><th>AUC</th>"
                "<th>95% CI</th><th>threshold</th><th>accuracy</th><th>F1 (weighted)</th>"
                "<th>precision</th><th>sensitivity</th><th>specificity</th><th>pos</th>"
                "<th>neg</th><th>uncertain</th><th>no feature</th><th>note</th></tr>\n");
    for (int i = 0; i < res->n_tasks; i++) {
        const TaskResult *t = &res->tasks[i];
        buf_printf(b, "<tr%s><td>", isfinite(t->m.auc) ? "" : " class=\"degenerate\"");
        eval_report_xml_escape(b, t->name);
        if (t->is_ctrate)
            buf_puts(b, t->fvlm16 ? " <sup>CT-RATE, fVLM-16</sup>" : " <sup>CT-RATE</sup>");
        buf_puts(b, "</td><td>");
        eval_report_xml_escape(b, t->anatomy);
        buf_puts(b, "</td>");
        html_cell(b, t->m.auc);
        /* the interval sorts by its lower bound */
        if (isfinite(t->m.auc_lo))
            buf_printf(b, "<td class=\"n\" data-v=\"%.17g\">", t->m.auc_lo);
        else
            buf_puts(b, "<td class=\"n\" data-v=\"\">");
        html_interval(b, t->m.auc_lo, t->m.auc_hi);
        buf_puts(b, "</td>");
        const double v[6] = {t->m.threshold, t->m.accuracy, t->m.f1_weighted, t->m.precision,
                             t->m.sensitivity, t->m.specificity};
        for (int k = 0; k < 6; k++)
            html_cell(b, v[k]);
        html_count(b, t->m.n_pos);
        html_count(b, t->m.n_neg);
        html_count(b, t->n_uncertain);
        html_count(b, t->n_no_feature);
        buf_puts(b, "<td>");
        eval_report_xml_escape(b, t->note);
        buf_puts(b, "</td></tr>\n");
    }
    buf_puts(b, "</table>\n<h2>Protocol</h2>\n<p>");
    if (strcmp(res->method, "probe") == 0)
        buf_puts(b, "Score: the probability of an L2-regularised logistic regression trained per "
                    "task on the frozen anatomy feature of the training split (features "
                    "standardised with the training mean and deviation).");
    else
        buf_puts(b, "Score: softmax over the prompt pair (negative, positive) of the anatomy "
                    "feature's dot product with each prompt's text feature divided by the "
                    "temperature; the positive prompt's probability. Prompts are in the "
                    "language of the study's report.");
    buf_printf(b, " AUROC is exact with ties counted one half; its 95%% interval comes from %d "
                  "bootstrap resamples of the studies (seed %llu), resamples with one class "
                  "left out. The threshold is the value of the 100-point grid on [0, 1] whose "
                  "(false positive rate, true positive rate) lies closest to (0, 1) (the dot on "
                  "each ROC curve); accuracy, "
                  "weighted F1, precision, sensitivity and specificity are taken at it. Tasks "
                  "with one class are listed but not averaged. The macro averages' intervals "
                  "resample the studies jointly across tasks (each resample's mean over the "
                  "tasks with both classes in it).</p>\n",
               res->n_boot, (unsigned long long)res->seed);
    buf_puts(b, sort_script);
    buf_puts(b, "</body>\n</html>\n");
}

/* ------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------ */

typedef void (*Writer)(Buf *, const EvalResults *);

int eval_report_write_dir(const EvalResults *res, const EvalHistory *hist, const char *dir,
                     char *html_path, size_t n, FvErr *e)
{
    if (fs_mkdir_p(dir, e))
        return -1;
    struct {
        const char *suffix;
        Writer w;
    } files[] = {
        {".csv", eval_report_csv},
        {".md", eval_report_markdown},
        {"-roc.svg", eval_report_svg},
        {".html", NULL},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s%s", dir, res->method, files[i].suffix);
        Buf b = {0};
        if (files[i].w)
            files[i].w(&b, res);
        else
            eval_report_html(&b, res, hist);
        if (b.failed) {
            buf_free(&b);
            return err_set(e, FV_ENOMEM, "%s: out of memory", path);
        }
        int rc = fs_write_atomic(path, b.data, b.len, e);
        buf_free(&b);
        if (rc)
            return -1;
        if (html_path && strcmp(files[i].suffix, ".html") == 0)
            snprintf(html_path, n, "%s", path);
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Comparison across results
 * ------------------------------------------------------------------------ */

static const TaskResult *find_task(const EvalResults *r, const char *task)
{
    for (int i = 0; i < r->n_tasks; i++)
        if (strcmp(r->tasks[i].task, task) == 0)
            return &r->tasks[i];
    return NULL;
}

void eval_report_comparison(Buf *b, const EvalResults *const *all_sets,
                            const char *const *all_labels, int n_all)
{
    /* An evaluation that scored no task (a failed or empty run) compares
     * nothing: it is named below the table, not given a column of dashes. */
    const EvalResults *sets[64];
    const char *labels[64];
    int n = 0;
    for (int s = 0; s < n_all && n < 64; s++)
        if (all_sets[s] && all_sets[s]->macro_all.n_scored > 0) {
            sets[n] = all_sets[s];
            labels[n++] = all_labels[s];
        }
    buf_puts(b, "| task | anatomy |");
    for (int s = 0; s < n; s++) {
        buf_putc(b, ' ');
        md_cell(b, labels[s]);
        buf_puts(b, " |");
    }
    buf_puts(b, "\n|---|---|");
    for (int s = 0; s < n; s++)
        buf_puts(b, "---:|");
    buf_putc(b, '\n');
    for (int s = 0; s < n; s++) {
        for (int i = 0; i < sets[s]->n_tasks; i++) {
            const TaskResult *t = &sets[s]->tasks[i];
            int earlier = 0;
            for (int p = 0; p < s && !earlier; p++)
                earlier = find_task(sets[p], t->task) != NULL;
            if (earlier)
                continue;
            buf_puts(b, "| ");
            md_cell(b, t->name);
            buf_puts(b, " | ");
            md_cell(b, t->anatomy);
            buf_puts(b, " |");
            for (int q = 0; q < n; q++) {
                const TaskResult *x = find_task(sets[q], t->task);
                buf_putc(b, ' ');
                num(b, x ? x->m.auc : NAN, "-");
                buf_puts(b, " |");
            }
            buf_putc(b, '\n');
        }
    }
    const char *names[3] = {"**mean, all tasks**", "**mean, CT-RATE 18**", "**mean, fVLM 16**"};
    for (int k = 0; k < 3; k++) {
        buf_printf(b, "| %s | |", names[k]);
        for (int s = 0; s < n; s++) {
            const MacroAvg *m = k == 0 ? &sets[s]->macro_all
                              : k == 1 ? &sets[s]->macro_ctrate18 : &sets[s]->macro_fvlm16;
            buf_puts(b, " ");
            num(b, m->auc, "-");
            if (isfinite(m->lo) && isfinite(m->hi))
                buf_printf(b, " [%.3f, %.3f]", m->lo, m->hi);
            buf_printf(b, " (%d) |", m->n_scored);
        }
        buf_putc(b, '\n');
    }
    for (int s = 0; s < n_all; s++)
        if (!all_sets[s] || all_sets[s]->macro_all.n_scored == 0) {
            buf_puts(b, "\nLeft out: ");
            md_cell(b, all_labels[s]);
            buf_puts(b, " scored no task.\n");
        }
}
