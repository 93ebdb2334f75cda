/* report: a radiology report for one synthetic study, and what it states.
 *
 * Written as radiologists write: a findings section anatomy by anatomy
 * (abnormal ones described with location, size and comparison; normal ones
 * with normal statements, sometimes several anatomies or a whole group in
 * one sentence, plus pertinent negatives), then an impression that names
 * every abnormal anatomy with its present or uncertain findings. Wording
 * comes from schemas/synth_phrases.tsv.
 *
 * Label noise: a few present findings (~3 %) are missed (not reported) or
 * hedged (reported uncertain), and a few studies hedge a finding that is not
 * there. `reported` records what the text states per task after all that:
 * 1 present, -1 uncertain, 0 absent (negated, or its anatomy stated normal),
 * REPORT_UNMENTIONED otherwise; `status` is fVLM's anatomy status: abnormal
 * when the impression names the anatomy with a present or uncertain finding,
 * normal when the mask covers it and it is not abnormal, not listed (an
 * unmentioned anatomy) otherwise. A normal anatomy is stated normal as a
 * whole (normal: rows), or now and then by pertinent negatives of several of
 * its findings (neg:<task>+<task> rows: "双肺未见实变及结节影"), which state
 * those findings absent and no others. */
#ifndef FVLM_SYNTH_REPORT_H
#define FVLM_SYNTH_REPORT_H

#include "buf.h"
#include "error.h"
#include "lesions.h"
#include "ontology.h"
#include "phrases.h"
#include "rng.h"

enum { REPORT_HOSPITAL = 0, REPORT_CTRATE = 1 };
enum { REPORT_UNMENTIONED = 2 };

typedef struct ReportInput {
    const Ontology *o;
    const Phrases *ph;
    int lang;                   /* LANG_ZH or LANG_EN */
    int style;                  /* REPORT_HOSPITAL or REPORT_CTRATE */
    const LesionSet *ls;        /* shown tasks and their lesions */
    const double *cover;        /* per anatomy: fraction of its height inside the scan */
    const unsigned char *covered; /* per anatomy: 1 when the mask holds it (the truth's
                                   * `covered`); NULL: cover > 0 */
    const char *scan_type;      /* chest, chest_abdomen, abdomen */
    int enhanced;
    double thickness_mm;
    const char *prior_date;     /* a previous scan of the patient, or NULL */
    double noise_rate;          /* fraction of present findings missed or hedged (0.03) */
    /* header fields of hospital reports (fake personal data) */
    const char *name, *pid, *date, *dob, *phone, *sex, *age, *inst, *doc, *doc2;
} ReportInput;

typedef struct Report {
    Buf text;                   /* hospital: the whole report; CT-RATE: unused */
    Buf findings, impression;   /* the sections' text */
    Buf history, technique;     /* CT-RATE's other two columns */
    signed char reported[256];  /* per task */
    signed char status[256];    /* per anatomy: 1 abnormal, 0 normal, -1 not listed */
    int n_missed, n_hedged, n_false_hedge;
} Report;

int report_write(const ReportInput *in, Rng *r, Report *out, FvErr *e);
void report_free(Report *rep);

#endif
