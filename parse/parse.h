/* parse: radiology reports (Chinese and English) into sections, sentences,
 * anatomy mentions, findings with polarity, and study labels.
 *
 * The public interface of the parser, for `fvlm parse` (through
 * parse_run.h, the corpus loop) and `fvlm parse-text`. The other stages read
 * what parse stored (sentences, mentions, findings, labels) from the
 * database; none of them calls the parser.
 *
 *   Parser *p;  parser_new(&p, &e);               // ontology + rule files, once
 *   ParseResult r = {0};
 *   parse_report(p, text, len, PARSE_LANG_AUTO, &r, &e);
 *   ... r.sent[i], r.ment[j], r.find[k], r.label[task] ...
 *   parse_result_free(&r);  parser_free(&p);
 *
 * Offsets: every span has original byte offsets into the text given
 * (start/end, what the database stores) and normalised offsets (nstart/nend
 * into r.norm.s, what the rules saw). A ParseResult can be reused for the
 * next report without freeing (its buffers are kept). */
#ifndef FVLM_PARSE_PARSE_H
#define FVLM_PARSE_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"
#include "lexicon.h"
#include "normalize.h"
#include "ontology.h"

enum { PARSE_LANG_AUTO = 0, PARSE_LANG_ZH = 1, PARSE_LANG_EN = 2 };

/* Label values; PARSE_UNMENTIONED is NULL in the database. */
enum { PARSE_ABSENT = 0, PARSE_PRESENT = 1, PARSE_UNCERTAIN = -1, PARSE_UNMENTIONED = 2 };

/* A sentence longer than this many normalised bytes is cut at a clause
 * boundary (or, failing one, a space or character boundary) with a warning. */
#define PARSE_MAX_SENTENCE 4000
/* Sentences longer than this that join findings of different anatomies are
 * split at the clause boundaries between them. */
#define PARSE_LONG_SENTENCE 160

typedef struct ParseSection {
    int section;            /* SEC_FINDINGS, SEC_IMPRESSION, SEC_OTHER */
    size_t start, end;      /* original offsets of the body (after the heading) */
    size_t nstart, nend;
} ParseSection;

typedef struct ParseSentence {
    int section;
    size_t start, end;      /* original byte offsets */
    size_t nstart, nend;    /* normalised byte offsets */
    int zh;                 /* Chinese clause rules applied (the sentence holds CJK text) */
} ParseSentence;

typedef struct ParseMention {
    int sentence;
    int anatomy;            /* anatomy index, or -1 for a group */
    int group;              /* group index, or -1 */
    size_t start, end, nstart, nend;
    const char *rule;       /* lexicon rule id (owned by the lexicon) */
} ParseMention;

typedef struct ParseFinding {
    int sentence;
    int task;               /* task index of the ontology */
    int polarity;           /* PARSE_PRESENT, PARSE_ABSENT, PARSE_UNCERTAIN */
    size_t start, end, nstart, nend;
    const char *rule;       /* the rule that decided the polarity (lexicon-owned or static) */
    int normal;             /* 1 when it comes from a normal statement about its anatomy */
} ParseFinding;

/* Internal token (a resolved lexicon hit). */
typedef struct ParseTok {
    uint32_t start, end;    /* normalised offsets */
    int32_t entry;          /* lexicon entry */
    int32_t layer;          /* LEX_LAYER_* of the entry */
} ParseTok;

enum { PARSE_MAX_WARN = 8 };

typedef struct ParseResult {
    NormText norm;
    int lang;                           /* PARSE_LANG_ZH or PARSE_LANG_EN */
    ParseSection *sec; int nsec, csec;
    ParseSentence *sent; int nsent, csent;
    ParseMention *ment; int nment, cment;
    ParseFinding *find; int nfind, cfind;
    int8_t *label;                      /* per task: PARSE_* value */
    int32_t *label_from;                /* per task: index of the deciding finding, or -1 */
    int ntasks;
    char warn[PARSE_MAX_WARN][200];     /* per-report warnings, one line each */
    int nwarn;
    int n_cut;                          /* sentences cut at PARSE_MAX_SENTENCE */
    /* scratch */
    AcHit *hits; size_t nhits, chits;
    ParseTok *tok; size_t ntok, ctok;
    int32_t *stamp;                     /* per task: last sentence that named it explicitly */
} ParseResult;

typedef struct Parser {
    Ontology *own_onto;     /* set when parser_new loaded it */
    const Ontology *onto;
    Lexicon *lex;
} Parser;

/* Loads the ontology and the rule files (embedded, or $FVLM_SCHEMAS). */
int parser_new(Parser **out, FvErr *e);
/* Over an ontology and lexicon the caller made (tests); takes ownership of lex. */
int parser_from(Parser **out, const Ontology *o, Lexicon *lex, FvErr *e);
void parser_free(Parser **p);

/* Parses one report. lang: PARSE_LANG_AUTO detects it from the text. Bad
 * bytes never fail the parse: they are replaced and reported in r->warn.
 * Fails only when memory runs out or the text exceeds NORM_MAX_INPUT. */
int parse_report(const Parser *p, const char *text, size_t n, int lang, ParseResult *r, FvErr *e);
void parse_result_free(ParseResult *r);

/* PARSE_LANG_ZH when the text holds more CJK characters than Latin words. */
int parse_detect_lang(const char *text, size_t n);

/* Study labels as the CheXpert labeler aggregates them: per task, present
 * wins over uncertain, uncertain over absent; PARSE_UNMENTIONED when no
 * finding names the task. from[t] is the first finding (report order) with
 * the winning value, -1 when unmentioned. */
void parse_labels_aggregate(const ParseFinding *f, int nf, int ntasks, int8_t *value, int32_t *from);

/* The result as JSON: language, warnings, sections, sentences (with their
 * mentions and findings), and a top-level `labels` object {task id: 1|0|-1}. */
void parse_result_json(const Parser *p, const ParseResult *r, Buf *b, int pretty);

/* Names for output. */
const char *parse_section_name(int section);
/* "lung", or "group:upper_abdomen" written into out. */
const char *parse_mention_name(const Parser *p, const ParseMention *m, char *out, size_t n);

#endif
