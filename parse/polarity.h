/* polarity: what each sentence says: anatomy mentions, findings with their
 * polarity and the rule that decided it, normal statements, generic words.
 *
 * Scope: clauses end at ; : ! ? brackets, terminator triggers ("but", "但")
 * and, in Chinese, commas; English commas only separate segments. A finding's
 * polarity comes from the triggers of its clause (pre-negation uncertainty >
 * negation > uncertainty within its own segment, else the nearest); a normal
 * statement makes every task of the anatomies next to it absent (in Chinese,
 * the subject of an earlier comma clause when its own clause names none); so
 * does a negated abnormality word with anatomies between ("no focal lung
 * lesion"); a finding joined to the one before it by a coordinating word
 * alone shares its polarity ("食管未见扩张及管壁增厚"); a generic word
 * ("nodule", "钙化") takes its task from the anatomies next to it
 * (parse_generic.tsv), unless it is a comparison after a finding ("囊肿，较前
 * 增大": the cyst grew); its default applies only when the groups its clause
 * names (if any) reach the default's body region ("nodular densities around
 * the intestinal loops" are no lung finding). A part word ("parenchyma",
 * "lobe") is its anatomy's for normal statements and generic words only when
 * its clause names no other anatomy. A long sentence that joins findings of
 * different anatomies is split at the clause boundaries between them (before
 * a terminator word such as "which", after a mark); a mention of the whole
 * scan ("section 227") does not count. Private to parse/. */
#ifndef FVLM_PARSE_POLARITY_H
#define FVLM_PARSE_POLARITY_H

#include <stddef.h>

#include "error.h"
#include "parse.h"

/* Scope marks of one sentence, reused from sentence to sentence. */
typedef struct Scope {
    size_t *clause;   /* positions of clause boundaries, ascending */
    int nclause, cclause;
    size_t *seg;      /* clause and segment (comma) boundaries */
    int nseg, cseg;
} Scope;

/* Mentions and findings of sentence si, whose tokens are r->tok[t0, t1). */
int pol_analyse_sentence(const Parser *p, ParseResult *r, int si, size_t t0, size_t t1, Scope *sc,
                         FvErr *e);
/* Splits sentence si (the last one; its mentions start at m0, findings at f0)
 * when it is long and joins findings of different anatomies. */
int pol_split_long(const Parser *p, ParseResult *r, int si, int m0, int f0, const Scope *sc,
                   FvErr *e);
void pol_scope_free(Scope *sc);

#endif
