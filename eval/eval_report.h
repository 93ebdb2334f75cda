/* eval_report: the files of an evaluation, written from an EvalResults.
 *
 *   <method>.csv      one row per reported task (machine-readable, full figures)
 *   <method>.md       the macro averages and the task table (Markdown)
 *   <method>-roc.svg  ROC curves, one panel per anatomy (own SVG, no library)
 *   <method>.html     one self-contained page: run facts, averages, the ROC
 *                     panels inline, the task table, the protocol
 * with <method> "zero-shot" or "probe". The HTML is also well-formed XML
 * (polyglot), so a plain XML parser can check it. Numbers print with the C
 * locale; missing figures are empty in CSV and "-" elsewhere. The writers
 * append to a Buf (golden-testable); eval_report_write_dir writes all four
 * atomically. */
#ifndef FVLM_EVAL_EVAL_REPORT_H
#define FVLM_EVAL_EVAL_REPORT_H

#include "buf.h"
#include "error.h"
#include "eval.h"

void eval_report_csv(Buf *b, const EvalResults *res);
void eval_report_markdown(Buf *b, const EvalResults *res);
void eval_report_svg(Buf *b, const EvalResults *res);
/* hist (may be NULL): earlier evaluations of the corpus, listed beside this one. */
void eval_report_html(Buf *b, const EvalResults *res, const EvalHistory *hist);

/* Writes the four files into dir (created when missing); html_path, when
 * not NULL, receives the HTML file's path. */
int eval_report_write_dir(const EvalResults *res, const EvalHistory *hist, const char *dir,
                     char *html_path, size_t n, FvErr *e);

/* One Markdown table comparing several results (columns: each label's AUC
 * per task, then the macro averages with their bootstrap intervals): the
 * paper's comparison of loss modes and the probe. Tasks are those of any
 * set, in the first set's order and then the rest's. A set that scored no
 * task (a failed or empty evaluation) gets no column: it is named below. */
void eval_report_comparison(Buf *b, const EvalResults *const *sets, const char *const *labels,
                                int n);

/* Appends s with &, <, >, " and ' escaped. */
void eval_report_xml_escape(Buf *b, const char *s);

#endif
