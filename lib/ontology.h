/* ontology: anatomies, anatomy groups and diagnosis tasks of schemas/.
 *
 * Loaded once at start-up from anatomy.tsv, groups.tsv and findings.tsv and
 * checked: duplicate ids, empty names, a task whose anatomy does not exist,
 * an unknown group, a TotalSegmentator id out of range or claimed by two
 * anatomies are errors naming file and line. Everything is owned by the
 * Ontology; indices are stable for its lifetime. */
#ifndef FVLM_ONTOLOGY_H
#define FVLM_ONTOLOGY_H

#include "buf.h"
#include "error.h"

enum { ONTO_MAX_TS_ID = 255 };

typedef struct StrList {
    char **s;
    int n;
} StrList;

typedef struct Anatomy {
    char *id, *en, *zh, *region;
    int main;                  /* carries diagnosis tasks */
    int *ts_ids;               /* TotalSegmentator label ids merged into it */
    int n_ts;
    int *region_of;            /* anatomy indices whose union is its region (no mask of its own) */
    int n_region_of;
    int *groups;               /* group indices */
    int n_groups;
    StrList en_syn, zh_syn;
} Anatomy;

typedef struct AnatomyGroup {
    char *id, *en, *zh;
    StrList en_syn, zh_syn;
} AnatomyGroup;

typedef struct Finding {
    char *id;
    int anatomy;               /* index into anatomies */
    char *en, *zh;
    char *ctrate_label;        /* NULL when not a CT-RATE label */
    int fvlm16;                /* in fVLM's 16-label average */
    double prevalence;         /* for fvlm synth, in [0, 1] */
    StrList en_syn, zh_syn;
} Finding;

typedef struct Ontology {
    Anatomy *anat;
    int n_anat;
    AnatomyGroup *groups;
    int n_groups;
    Finding *find;
    int n_find;
    int ts_to_anat[ONTO_MAX_TS_ID + 1]; /* -1 for background or unassigned ids */
} Ontology;

/* From the schema files (embedded, or $FVLM_SCHEMAS). */
int onto_load(Ontology **out, FvErr *e);
/* From texts (tests). */
int onto_parse(Ontology **out, const char *anatomy_tsv, const char *groups_tsv,
               const char *findings_tsv, FvErr *e);
void onto_free(Ontology **o);

int onto_anatomy(const Ontology *o, const char *id);  /* index or -1 */
int onto_group(const Ontology *o, const char *id);
int onto_finding(const Ontology *o, const char *id);
/* 1 when anatomy a belongs to group g. */
int onto_in_group(const Ontology *o, int a, int g);
/* Anatomy a's normal sentence, appended to b: "Lung shows no significant
 * abnormalities." or "肺未见明显异常。" (fVLM's text for an anatomy its
 * report calls normal; train learns it, eval's `normal` prompts use it). */
void onto_normal_text(const Ontology *o, int a, int zh, Buf *b);

#endif
