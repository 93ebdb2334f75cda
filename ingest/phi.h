/* phi: de-identification of report text.
 *
 * Protected health information in a report is replaced by typed
 * placeholders: [NAME], [ID], [DATE], [PHONE], [ADDRESS]. Three sources of
 * evidence, applied in this order:
 *   1. values known to identify this patient (from the DICOM header of the
 *      same study: patient name in its usual spellings, ids, birth date,
 *      address, phone), replaced wherever they occur;
 *   2. labelled header lines ("Name: ...", "姓名：...", "MRN: ...",
 *      "住院号：...", "Address: ...", "电话：..."): the value after the label;
 *   3. patterns: dates (2021-03-04, 04/03/2021, 2021年3月4日, March 4, 2021),
 *      phone numbers (Chinese mobile and landline, +country forms,
 *      (555) 123-4567), and long digit runs that are identifiers (7 or more
 *      digits not followed by a unit).
 * Measurements ("3.5 cm", "12 mm", "T12", "segment 7") are left alone.
 * Patterns are PCRE2 (UTF mode, JIT when available), compiled once. */
#ifndef FVLM_INGEST_PHI_H
#define FVLM_INGEST_PHI_H

#include <stddef.h>

#include "buf.h"
#include "error.h"

typedef enum { PHI_NAME, PHI_ID, PHI_DATE, PHI_ADDRESS, PHI_PHONE, PHI_NKINDS } PhiKind;

typedef struct PhiValue {
    PhiKind kind;
    char value[128];
} PhiValue;

/* Placeholder text of a kind: "[NAME]". */
const char *phi_placeholder(PhiKind k);
/* Lower-case name of a kind for counts: "name". */
const char *phi_kind_name(PhiKind k);

typedef struct Phi Phi;

int phi_new(Phi **out, FvErr *e);
void phi_free(Phi **p);

/* De-identifies UTF-8 text (n bytes) into out (appended). known: identifying
 * values of this study (may be NULL). counts[k] is increased by the number
 * of placeholders of each kind substituted. */
int phi_scrub(Phi *p, const char *text, size_t n, const PhiValue *known, int nknown, Buf *out,
              int counts[PHI_NKINDS], FvErr *e);

#endif
