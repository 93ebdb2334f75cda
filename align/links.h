/* links: which anatomies each report sentence describes.
 *
 * The input is one parsed report as align sees it (an AlignDoc: sentences in
 * report order, the anatomy and group mentions parse found in them, the
 * findings with their anatomy and polarity, the study's labels, and the
 * annotators' decisions on earlier links). links_build decides, sentence by
 * sentence, in this order of evidence:
 *   mention       the sentence names the anatomy (parts already mapped to it);
 *   finding       the sentence states a finding of the anatomy, in any
 *                 polarity ("no pleural effusion" is about the lung, as fVLM
 *                 counts pleural effusion);
 *   group         the sentence speaks of a group ("upper abdominal organs are
 *                 normal"): every member the scan covers;
 *   continuation  a sentence with none of the above belongs to the anatomies
 *                 of the sentence before it in the same section ("It measures
 *                 12 mm."); in the impression, whose items are separate
 *                 diagnoses, only one that refers back (an anaphor cue: "It",
 *                 "These", "其"); never one that holds a stop cue of align_cues.tsv (a
 *                 remark on the technique, a call for clinical and laboratory
 *                 correlation, a structure the ontology lacks: about no
 *                 anatomy of ours); after a group statement it stays a group
 *                 link;
 *   audit         an annotator added the link.
 * A whole-body anatomy ("study area", "sections") links only when the
 * sentence names nothing more specific. A weak mention links only when the
 * sentence names no other anatomy: one by a generic term ("parenchyma",
 * "lobe": cues of kind generic; "the parenchyma of the liver" is the
 * liver's), one after a cause cue ("secondary to cardiac pathology": the
 * heart is the cause, the lung is described), or one named as a landmark
 * ("adjacent to the aortic arch", "at the level of the carina": where the
 * finding lies, not what it is about); and a sentence whose only
 * evidence is weak mentions continues the sentence before it when it can
 * ("It may be compatible with parenchymal calcification." after a liver
 * sentence is the liver's). A sentence holding a technique cue ("in the lung
 * parenchyma window;", "not evaluated optimally without contrast") and
 * stating no finding is about the examination: it links to none and passes
 * nothing on; one that states findings keeps them, but a mention inside its
 * technique lead-in ("When examined in the lung parenchyma window; ...") is
 * dropped when align reads the mentions (links_cues_lead_in). A sentence
 * that links to nothing gets
 * one link with anatomy -1 and method none, so "unlinked" is recorded, not
 * implied. Annotators' rejections remove a link before the next sentence's
 * continuation is decided, so a rejected link does not propagate.
 *
 * Everything here is computed in memory; align.c reads and writes the
 * database. */
#ifndef FVLM_ALIGN_LINKS_H
#define FVLM_ALIGN_LINKS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "ontology.h"

typedef enum { SECTION_FINDINGS = 0, SECTION_IMPRESSION = 1, SECTION_OTHER = 2 } Section;

typedef enum {
    LINK_MENTION = 0, LINK_FINDING, LINK_GROUP, LINK_CONTINUATION, LINK_AUDIT, LINK_NONE,
    LINK_NMETHODS
} LinkMethod;

/* The prior confidence of each method, in [0, 1], used only for a rule the
 * development reference has no estimate of (links_confidence): an
 * annotator's link is certain, the others are the CT-RATE dev precision of
 * their whole method (schemas/align_confidence.tsv rows "method:NAME"). */
extern const double link_confidence[LINK_NMETHODS];

const char *link_method_name(LinkMethod m);
const char *section_name(Section s);
/* "findings", "impression" or "other" -> Section; -1 when unknown. */
int section_parse(const char *s);

/* A label value that was never set (labels.value NULL or no row). */
enum { LABEL_UNSET = 2 };

typedef struct DocSentence {
    int64_t id;          /* sentences.id (or any id the caller uses) */
    int idx;             /* order in the report, from 0 */
    Section section;
    const char *text;    /* the original span; owned by the caller */
    int64_t start;       /* byte offset of the span in the report text */
} DocSentence;

typedef struct DocMention {
    int sent;            /* index into AlignDoc.sent */
    int anatomy;         /* anatomy index, or -1 for a group mention */
    int group;           /* group index, or -1 */
    int generic;         /* weak: its term is a generic cue, or it follows a cause cue
                          * (links_cues_cause); it yields to other anatomies named */
    /* the evidence, for the link's explanation (NULL term: unknown) */
    const char *term;    /* the words matched; owned by the caller */
    int64_t start, end;  /* byte offsets into the report text */
    const char *rule;    /* parse's rule id ("anatomy:lung"); owned by the caller */
} DocMention;

typedef struct DocFinding {
    int sent;            /* index into AlignDoc.sent */
    int task;            /* finding index of the ontology */
    int anatomy;         /* anatomy index (the task's, unless parse said otherwise) */
    int polarity;        /* 1 present, 0 absent, -1 uncertain */
    /* the evidence, for the link's explanation (NULL term: unknown) */
    const char *term;    /* the words matched; owned by the caller */
    int64_t start, end;  /* byte offsets into the report text */
} DocFinding;

typedef struct DocLabel {
    int task;
    int value;           /* 1, 0, -1, or LABEL_UNSET */
    int human;           /* source gold or audit: wins over what the text says */
} DocLabel;

/* An annotator's decision on a link of this study. */
typedef struct DocOverride {
    int sent;            /* index into AlignDoc.sent */
    int anatomy;         /* anatomy index */
    int accept;          /* 1: the link holds (added or accepted); 0: rejected */
} DocOverride;

typedef struct AlignDoc {
    int zh;              /* report language: 1 Chinese, 0 English */
    DocSentence *sent;   /* sorted by idx */
    int n_sent;
    DocMention *men;
    int n_men;
    DocFinding *find;
    int n_find;
    DocLabel *lab;
    int n_lab;
    DocOverride *ovr;
    int n_ovr;
} AlignDoc;

/* Longest link rule id kept ("finding:" + a task id, a cue). */
enum { LINK_RULE_MAX = 96 };

typedef struct Link {
    int sent;            /* index into AlignDoc.sent */
    int anatomy;         /* anatomy index; -1 for the "links to none" record */
    LinkMethod method;
    double confidence;   /* the rule's precision on the development reference (links_confidence) */
    int computed;        /* 1: align's rules found it; 0: only an annotator says so */
    int rejected;        /* an annotator rejected it: kept for the record, not used */
    /* Why the link exists (the links table's term, start, end, rule, continues):
     *   mention, group  the mention's term and offsets, parse's rule ("anatomy:lung",
     *                   "group:upper_abdomen");
     *   finding         the finding's term and offsets, "finding:<task id>";
     *   continuation    "continuation" ("continuation.weak" when the sentence's only
     *                   mentions were weak; "group.continuation" after a group
     *                   statement), continues = the sentence continued, no term;
     *   audit           "audit";
     *   none            "none.technique" or "none.stop" with the cue's words and
     *                   offsets; "none.no_evidence" (nothing named, stated or
     *                   continued); "none.rejected" (annotators rejected every link). */
    const char *term;    /* NULL when the rule has no words (owned by the AlignDoc or cues) */
    int64_t start, end;  /* byte offsets into the report text; -1 when no term */
    char rule[LINK_RULE_MAX];
    int continues;       /* index into AlignDoc.sent of the sentence continued, -1 */
} Link;

typedef struct LinkSet {
    Link *v;             /* grouped by sentence, in report order */
    int n, cap;
} LinkSet;

/* The linker's cues (schemas/align_cues.tsv). */
/* One estimate of schemas/align_confidence.tsv. */
typedef struct LinkConf {
    char *rule;          /* a link rule id, or "method:NAME" */
    double precision;    /* smoothed: (agree + 1) / (links + 2) */
} LinkConf;

typedef struct LinkCues {
    char **stop_en, **stop_zh;   /* owned; English ones lower-case */
    int n_en, n_zh;
    char **generic;              /* owned; English ones lower-case */
    int n_generic;
    char **tech_en, **tech_zh;   /* technique cues; owned; English ones lower-case */
    int n_tech_en, n_tech_zh;
    char **cause_en, **cause_zh; /* cause cues; owned; English ones lower-case */
    int n_cause_en, n_cause_zh;
    char **land_en, **land_zh;   /* landmark cues; owned; English ones lower-case */
    int n_land_en, n_land_zh;
    char **dev_en, **dev_zh;     /* device cues; owned; English ones lower-case */
    int n_dev_en, n_dev_zh;
    char **ana_en, **ana_zh;     /* anaphor cues; owned; English ones lower-case */
    int n_ana_en, n_ana_zh;
    LinkConf *conf;              /* per-rule confidence estimates; owned */
    int n_conf;
} LinkCues;

/* Loads align_cues.tsv and align_confidence.tsv. */
int links_cues_load(LinkCues *c, FvErr *e);
/* The confidence estimates from a text (columns rule, links, agree,
 * precision); name is used in messages. Replaces c's estimates. */
int links_conf_parse(LinkCues *c, const char *text, size_t len, const char *name, FvErr *e);
/* The confidence of a link with this method and rule: the estimate of the
 * rule, else of its method ("method:mention"), else link_confidence[m]. */
double links_confidence(const LinkCues *c, LinkMethod m, const char *rule);
/* From a text (tests); name is used in messages. */
int links_cues_parse(LinkCues *c, const char *text, size_t len, const char *name, FvErr *e);
void links_cues_free(LinkCues *c);
/* 1 when the sentence holds a stop cue (a technique cue counts as one). */
int links_cues_stop(const LinkCues *c, const char *sentence);
/* 1 when the sentence's main clause (after its last semicolon) holds a
 * technique cue: the sentence is a remark on the examination, not a finding
 * introduced by a lead-in. */
int links_cues_technique(const LinkCues *c, const char *sentence);
/* 1 when byte offset `at` of the sentence lies in a technique lead-in: a
 * clause ending at a semicolon that holds a technique cue ("When examined
 * in the lung parenchyma window; Calibration of the trachea is normal."). A
 * mention there says how the examination was read, not what the sentence is
 * about: align drops it. */
int links_cues_lead_in(const LinkCues *c, const char *sentence, size_t at);
/* 1 when a cause cue ("secondary to", "due to", "继发于") comes before byte
 * offset `at` of the sentence, in the same clause (no , ; : between): a
 * mention starting at `at` then names a cause, not what is described. */
int links_cues_cause(const LinkCues *c, const char *sentence, size_t at);
/* 1 when a landmark cue ("at the level of", "adjacent to", "水平") ends at
 * most three words before byte offset `at` of the sentence, with no
 * punctuation between: a mention starting at `at` says where the finding
 * lies, not what the sentence describes ("a nodule adjacent to the aortic
 * arch" is the lung's). */
int links_cues_landmark(const LinkCues *c, const char *sentence, size_t at);
/* 1 when the sentence starts with an anaphor cue ("It", "These", "Which",
 * "其", "上述"): it refers back to the sentence before. In the impression,
 * whose items are separate diagnoses, only such a sentence continues. */
int links_cues_anaphor(const LinkCues *c, const char *sentence);
/* 1 when a finding's term holds a device cue: a device that passes through
 * or lies in a region (port, catheter, pacemaker lead, 导管), whose sentence
 * names anatomies as its place ("the port chamber is observed in the right
 * hemithorax"); a stent, graft or suture lies in the organ it treats and is
 * no cue. */
int links_cues_device(const LinkCues *c, const char *term);
/* 1 when a mention's term (as matched, any case, surrounding spaces
 * ignored) is a generic cue. */
int links_cues_generic(const LinkCues *c, const char *term);

/* covered: n_anat flags, 1 when the scan covers the anatomy (its mask region
 * is not empty); NULL when the study has no mask, in which case a group
 * statement reaches the group's members that carry diagnosis tasks.
 * cues may be NULL (no stop cues). Appends to out (which starts empty: {0}). */
int links_build(const Ontology *o, const AlignDoc *d, const unsigned char *covered,
                const LinkCues *cues, LinkSet *out, FvErr *e);
void links_free(LinkSet *s);

/* 1 when sentence s is linked to anatomy a and the link is not rejected. */
int links_has(const LinkSet *s, int sent, int anatomy);

#endif
