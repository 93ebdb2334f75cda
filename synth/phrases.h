/* phrases: the report wording of schemas/synth_phrases.tsv and its
 * template language.
 *
 * Rows are (key, lang, text). A key "prefix:a,b,c" answers lookups of
 * "prefix:a", "prefix:b" and "prefix:c"; "prefix:*" is the fallback of its
 * prefix. Text alternatives: '|' at the top level of a row, and {a|b}
 * anywhere (nested braces allowed); "\n" is a line break. Variables are $
 * followed by capitals ($F, $LOC, $SIZE, ...), looked up by name.
 *
 * Loading checks that every term: row term contains a name or synonym of its
 * task in findings.tsv and every anat: term one of its anatomy in
 * anatomy.tsv, so the parser's lexicon can always find what the reports say. */
#ifndef FVLM_SYNTH_PHRASES_H
#define FVLM_SYNTH_PHRASES_H

#include "buf.h"
#include "error.h"
#include "ontology.h"
#include "rng.h"

enum { LANG_ZH = 0, LANG_EN = 1 };

typedef struct PhraseRow {
    char *prefix;   /* "find" */
    char **items;   /* "lung_nodule", ... ("*" for the fallback) */
    int nitems;
    int lang;
    char *text;
} PhraseRow;

typedef struct Phrases {
    PhraseRow *row;
    int n;
} Phrases;

int phrases_load(Phrases **out, const Ontology *o, FvErr *e);
int phrases_parse(Phrases **out, const Ontology *o, const char *text, size_t len,
                  const char *name, FvErr *e);
void phrases_free(Phrases **p);

/* A random row's text for prefix:item in lang (NULL when none; the "*"
 * fallback is used only when fallback is set). */
const char *phrase_pick(const Phrases *p, const char *prefix, const char *item, int lang,
                        int fallback, Rng *r);
/* Number of rows for prefix:item in lang (no fallback). */
int phrase_count(const Phrases *p, const char *prefix, const char *item, int lang);
/* The text of the k-th of those rows (from 0), NULL when there are fewer. */
const char *phrase_nth(const Phrases *p, const char *prefix, const char *item, int lang, int k);

typedef struct PhraseVar {
    const char *name;  /* without '$' */
    const char *value;
} PhraseVar;

/* Expands a template: alternatives chosen with r, variables substituted
 * (an unknown variable expands to nothing), appended to out. */
void phrase_expand(Buf *out, const char *tmpl, const PhraseVar *vars, int nvars, Rng *r);

/* Terms of a term: row split for a count: the singular (count 1) or plural
 * form of one randomly chosen '|' alternative. */
void phrase_term(Buf *out, const char *text, int plural, Rng *r);

#endif
