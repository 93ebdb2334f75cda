/* status: each anatomy's status in a study and the text fVLM trains on.
 *
 * Status (fVLM's rule, `align.status_rule = impression`): an anatomy is
 * abnormal when an impression sentence linked to it states a present or
 * uncertain finding of that anatomy; normal when the scan covers it and it is
 * not abnormal; unmentioned when the scan does not cover it. Under
 * `findings`, a present or uncertain finding in a findings sentence makes it
 * abnormal too. A finding whose task an annotator (or a gold label) set to
 * absent does not count.
 *
 * Coverage comes from the mask (a non-empty region). A study without a mask
 * has no image evidence, so the report's own links stand in for it: an
 * anatomy the report speaks of is taken as covered.
 *
 * Texts per anatomy: its impression sentences and its findings sentences in
 * report order (joined by a space in English, directly in Chinese), taken
 * from the links whose method is in `text_methods` (by default all but
 * group statements: "upper abdominal organs are normal" says nothing about
 * an abnormal liver that its own sentences do not, and fVLM's per-anatomy
 * texts leave such sentences out); the
 * training text is the impression text then the findings text for an
 * abnormal anatomy, the normal template of the report's language for a
 * normal one ("Lung shows no significant abnormalities." / "肺未见明显异常。"),
 * and empty for an unmentioned one.
 *
 * Diseases: the anatomy's tasks whose study label is present or uncertain;
 * for a task without a label, what the report's findings say (present wins
 * over uncertain over absent). */
#ifndef FVLM_ALIGN_STATUS_H
#define FVLM_ALIGN_STATUS_H

#include "buf.h"
#include "error.h"
#include "links.h"
#include "ontology.h"

typedef enum { STATUS_UNMENTIONED = 0, STATUS_NORMAL = 1, STATUS_ABNORMAL = 2 } AnatStatus;
typedef enum { RULE_IMPRESSION = 0, RULE_FINDINGS = 1 } StatusRule;

const char *status_name(AnatStatus s);
/* "normal" ... -> AnatStatus, -1 when unknown. */
int status_parse(const char *s);
/* "impression" or "findings" -> StatusRule, -1 when unknown. */
int status_rule_parse(const char *s);

typedef struct AnatText {
    AnatStatus status;
    int covered;            /* the scan covers it (or, with no mask, the report speaks of it) */
    int linked;             /* sentences linked to it (findings + impression + other) */
    int imp_mention_only;   /* impression sentences that name it with no finding of it */
    Buf findings_text;      /* its findings sentences, report order */
    Buf impression_text;    /* its impression sentences, report order */
    Buf text;               /* the training text */
    Buf diseases;           /* JSON array of task ids present or uncertain */
    int n_diseases;
} AnatText;

/* Link methods whose sentences feed the texts: a bit (1u << LinkMethod) each. */
#define TEXT_METHODS_DEFAULT                                                          \
    ((1u << LINK_MENTION) | (1u << LINK_FINDING) | (1u << LINK_CONTINUATION) |          \
     (1u << LINK_AUDIT))

/* Fills out[0 .. n_anat) (zero-initialise it first; free with
 * status_free). covered: n_anat flags from the mask, or NULL when the study
 * has no mask. */
int status_build(const Ontology *o, const AlignDoc *d, const LinkSet *links,
                 const unsigned char *covered, StatusRule rule, unsigned text_methods,
                 AnatText *out, FvErr *e);
void status_free(AnatText *t, int n);

#endif
