/* prompts: the zero-shot prompt pairs of schemas/prompts.tsv.
 *
 * One pair (negative, positive) per diagnosis task, report language (zh,
 * en) and style (fVLM's "Not X." / "X."; CT-CLIP's "X is not present." /
 * "X is present."; ours, `normal`: the anatomy's normal sentence /
 * fVLM's "X.", made from the ontology, not read from the file). Why
 * `normal`: fVLM's text tower is a pretrained BERT that knows what "Not"
 * means; ours learns from the corpus alone, whose normal anatomies all say
 * "Liver shows no significant abnormalities." and where "Not X." never
 * occurs, so the negative prompt that means "normal" to it is that
 * sentence. Loading checks the file against the ontology: an unknown
 * task, language or style, a duplicate row, an empty prompt, or a task of
 * findings.tsv without all four pairs is an error naming the file and line
 * (or the task). Everything is owned by the Prompts. */
#ifndef FVLM_EVAL_PROMPTS_H
#define FVLM_EVAL_PROMPTS_H

#include "error.h"
#include "ontology.h"

typedef enum { PROMPT_FVLM = 0, PROMPT_CTCLIP = 1, PROMPT_NORMAL = 2, PROMPT_NSTYLES } PromptStyle;
typedef enum { PROMPT_LANG_EN = 0, PROMPT_LANG_ZH = 1, PROMPT_LANG_N } PromptLang;

typedef struct PromptPair {
    char *neg, *pos;
} PromptPair;

typedef struct Prompts {
    int n_find;          /* = the ontology's n_find */
    PromptPair *pair;    /* (n_find, PROMPT_LANG_N, PROMPT_NSTYLES) */
} Prompts;

/* schemas/prompts.tsv (embedded, or $FVLM_SCHEMAS). */
int prompts_load(Prompts **out, const Ontology *o, FvErr *e);
/* From a text (tests); name is used in messages. */
int prompts_parse(Prompts **out, const Ontology *o, const char *text, const char *name, FvErr *e);
void prompts_free(Prompts **p);

const PromptPair *prompts_get(const Prompts *p, int task, PromptLang lang, PromptStyle style);

/* "fvlm" / "ctclip" / "normal" <-> PromptStyle; -1 for an unknown name. */
int prompt_style_parse(const char *s);
const char *prompt_style_name(PromptStyle s);
/* "zh" / "en" -> PromptLang; -1 for an unknown code. */
int prompt_lang_parse(const char *s);

#endif
