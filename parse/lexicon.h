/* lexicon: the parser's rules, loaded from data files of schemas/.
 *
 * Terms come from the ontology (anatomy.tsv, groups.tsv, findings.tsv: names
 * and synonyms in both languages) and from the parser's own files:
 *   parse_terms.tsv     anatomy parts, group phrases, extra finding terms,
 *                       generic finding words (kind, target, lang, term);
 *                       kind part: a word for a part that several anatomies
 *                       have ("parenchyma", "lobe", "segment"), its target's
 *                       only when its clause names no other anatomy
 *   parse_generic.tsv   what a generic word means next to each anatomy
 *                       ("nodule" + thyroid -> thyroid_nodule)
 *   parse_triggers.tsv  negation, uncertainty, pseudo-negation, normal
 *                       statements, scope terminators, affirmative verbs,
 *                       each with a rule id and a direction
 *   parse_sections.tsv  section headings
 *   parse_abbrev.tsv    English abbreviations that do not end a sentence
 * Every term is normalised like report text (normalize.h) and goes into one
 * automaton (automaton.h). Terms fall in three layers that are resolved
 * separately (anatomy, finding, trigger): a phrase can be an anatomy mention
 * and part of a finding term at once ("右肺" in "右肺结节").
 * A later definition of the same term in the same layer replaces the earlier
 * one, so parse_terms.tsv can override a synonym of the ontology. */
#ifndef FVLM_PARSE_LEXICON_H
#define FVLM_PARSE_LEXICON_H

#include <stddef.h>
#include <stdint.h>

#include "automaton.h"
#include "error.h"
#include "ontology.h"

enum { LEX_LAYER_ANAT = 0, LEX_LAYER_FIND = 1, LEX_LAYER_TRIG = 2, LEX_NLAYERS = 3 };

typedef enum LexKind {
    LK_ANATOMY,   /* target: anatomy index */
    LK_GROUP,     /* target: group index */
    LK_TASK,      /* tasks[0..ntasks): task indices (compound terms name several) */
    LK_GENERIC,   /* target: generic index (meaning depends on the anatomy nearby) */
    LK_NEG,       /* negation */
    LK_UNC,       /* uncertainty */
    LK_UNC_NEG,   /* uncertainty phrased with a negation ("cannot be excluded") */
    LK_PSEUDO,    /* looks like a negation, is not ("no change") */
    LK_NORMAL,    /* normal statement ("is normal", "未见异常") */
    LK_TERM,      /* ends a trigger's scope ("but", "但") */
    LK_AFFIRM,    /* affirmative verb ("is seen"): ends a scope across commas */
    LK_ABNORMAL,  /* an unspecified abnormality ("lesion", "异常"): negated with anatomies
                     between ("no focal lung lesion"), a normal statement of them */
    LK_CMP,       /* a comparison with an earlier study ("compared with", "较前") */
    LK_COORD,     /* coordinating word ("and", "及", "、"): a finding joined to the one
                     before it by nothing else shares its polarity */
    LK_CONCLUDE,  /* a diagnostic conclusion ("consistent with", "考虑", "符合", "提示",
                     "可能性大"): the finding it names is present, unless a negation or
                     an uncertainty in scope says otherwise (parse/README.md) */
    LK_OTHER,     /* a structure outside the ontology whose name holds an anatomy's
                     ("胆总管" holds "胆"): matched so the shorter name is not, and it
                     is the subject of what follows, not the anatomy before it */
} LexKind;

enum { DIR_PRE = 1, DIR_POST = 2, DIR_BOTH = 3 };
enum { LEX_MAX_TASKS = 3 };

typedef struct LexEntry {
    char *term;            /* normalised */
    uint32_t len;
    uint8_t layer, kind, dir;
    uint8_t bound_l, bound_r; /* term starts/ends with an ASCII letter or digit: needs a word boundary */
    uint8_t part;          /* LK_ANATOMY from a `part` row: a part other anatomies have too
                            * ("parenchyma", "lobe"); its anatomy only when no other is named */
    int8_t ntasks;
    int16_t tasks[LEX_MAX_TASKS];
    int8_t aspect;         /* LK_NORMAL: the aspect it covers (parse_aspects.tsv), -1 all tasks */
    int32_t target;
    char *rule;            /* rule id shown in findings/mentions ("neg.en.no", "anatomy:lung") */
} LexEntry;

enum { SEC_FINDINGS = 0, SEC_IMPRESSION = 1, SEC_OTHER = 2 };

typedef struct LexHeading {
    char *text;            /* normalised heading without the colon */
    size_t len;
    int section;           /* SEC_* */
} LexHeading;

typedef struct Lexicon {
    const Ontology *onto;  /* borrowed */
    LexEntry *e;
    int n, cap;
    Automaton *ac;
    int32_t *pat_entry;         /* automaton pattern -> first entry of that spelling */
    int32_t *next_same;         /* entry -> next entry of the same spelling (other layer), or -1 */
    /* generic words: generic_task[g * n_anat + a] = task index for generic g next
     * to anatomy a; -1 no meaning there, -2 no row (use the default). */
    char **generic;
    int n_generic;
    int16_t *generic_task;
    int16_t *generic_default;   /* per generic: task index or -1 */
    LexHeading *head;
    int n_head;
    char **abbrev;              /* sorted, normalised, without the final '.' */
    int n_abbrev;
    /* aspects of normal statements (parse_aspects.tsv): a statement of size
     * ("心影不大", "normal heart size") covers the size tasks only.
     * aspect_task[k * n_find + t] = 1 when aspect k covers task t. */
    char **aspect;
    int n_aspect;
    uint8_t *aspect_task;
    /* per anatomy: the tasks of it (for normal statements) */
    int **anat_tasks;
    int *anat_ntasks;
    int body;                   /* index of the whole-scan anatomy 'body', or -1 */
    void *hash;                 /* term -> entry while building */
} Lexicon;

/* Loads the rule files (embedded or $FVLM_SCHEMAS) over the ontology o, which
 * must outlive the lexicon. Errors name the file and line. */
int lex_load(Lexicon **out, const Ontology *o, FvErr *e);
/* Same, from texts (tests); NULL texts count as empty files. */
int lex_parse(Lexicon **out, const Ontology *o, const char *terms_tsv, const char *generic_tsv,
              const char *aspects_tsv, const char *triggers_tsv, const char *sections_tsv,
              const char *abbrev_tsv, FvErr *e);
/* 1 when normal statement entry x covers task t. */
int lex_covers(const Lexicon *l, const LexEntry *x, int t);
void lex_free(Lexicon **l);

/* 1 when word (normalised, without the final '.') is a known abbreviation. */
int lex_is_abbrev(const Lexicon *l, const char *word, size_t n);

/* Task for generic g next to anatomy a (-1 when it means nothing there). */
int lex_generic_task(const Lexicon *l, int g, int a);

#endif
