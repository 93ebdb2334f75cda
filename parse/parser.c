/* parser: one report -> sections -> sentences -> tokens -> findings -> labels.
 *
 * The steps, in the order parse_report runs them:
 *   1. normalise (normalize.c) and scan the whole text once with the lexicon
 *      automaton; keep the leftmost-longest hits per layer;
 *   2. sections from headings at line starts;
 *   3. sentences (Chinese and English rules, numbered items, abbreviations,
 *      decimals), cut when absurdly long;
 *   4. per sentence: clauses, polarity of each finding (pre-negation
 *      uncertainty > negation > uncertainty, nearest trigger in scope), generic
 *      words resolved by the anatomy next to them, normal statements;
 *   5. long sentences that join findings of different anatomies split at the
 *      clause boundaries between them;
 *   6. study labels (present > uncertain > absent). */
#include "parse.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static const char RULE_PRESENT[] = "present.default";

/* ------------------------------------------------------------------------ */
/* Parser object.                                                           */
/* ------------------------------------------------------------------------ */

int parser_from(Parser **out, const Ontology *o, Lexicon *lex, FvErr *e)
{
    Parser *p = calloc(1, sizeof *p);
    if (!p) {
        lex_free(&lex);
        return err_set(e, FV_ENOMEM, "parser: out of memory");
    }
    p->onto = o;
    p->lex = lex;
    *out = p;
    return 0;
}

int parser_new(Parser **out, FvErr *e)
{
    *out = NULL;
    Ontology *o;
    Lexicon *lex;
    if (onto_load(&o, e))
        return -1;
    if (lex_load(&lex, o, e)) {
        onto_free(&o);
        return -1;
    }
    if (parser_from(out, o, lex, e)) {
        onto_free(&o);
        return -1;
    }
    (*out)->own_onto = o;
    return 0;
}

void parser_free(Parser **pp)
{
    Parser *p = *pp;
    if (!p)
        return;
    lex_free(&p->lex);
    onto_free(&p->own_onto);
    free(p);
    *pp = NULL;
}

void parse_result_free(ParseResult *r)
{
    norm_free(&r->norm);
    free(r->sec);
    free(r->sent);
    free(r->ment);
    free(r->find);
    free(r->label);
    free(r->label_from);
    free(r->hits);
    free(r->tok);
    free(r->stamp);
    memset(r, 0, sizeof *r);
}

/* Grows an array of `size`-byte items so that one more fits. */
static int grow(void **arr, int n, int *cap, size_t size, FvErr *e)
{
    if (n < *cap)
        return 0;
    int nc = *cap ? *cap * 2 : 64;
    void *p = realloc(*arr, (size_t)nc * size);
    if (!p)
        return err_set(e, FV_ENOMEM, "parsing report: out of memory");
    *arr = p;
    *cap = nc;
    return 0;
}

static void warn(ParseResult *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(ParseResult *r, const char *fmt, ...)
{
    if (r->nwarn >= PARSE_MAX_WARN)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->warn[r->nwarn++], sizeof r->warn[0], fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* Characters.                                                              */
/* ------------------------------------------------------------------------ */

static int is_word(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z');
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_space(unsigned char c) { return c == ' ' || c == '\n'; }

/* Lead byte of a code point in U+3000..U+9FFF (CJK punctuation, kana, ideographs). */
static int is_cjk_lead(unsigned char c) { return c >= 0xE3 && c <= 0xE9; }

/* U+3002 IDEOGRAPHIC FULL STOP. */
static int is_zh_stop(const char *s, size_t i, size_t n)
{
    return i + 2 < n && (unsigned char)s[i] == 0xE3 &&
           (unsigned char)s[i + 1] == 0x80 && (unsigned char)s[i + 2] == 0x82;
}

/* U+3001 IDEOGRAPHIC COMMA (an enumeration mark, not a clause boundary). */
static int is_zh_enum(const char *s, size_t i, size_t n)
{
    return i + 2 < n && (unsigned char)s[i] == 0xE3 && (unsigned char)s[i + 1] == 0x80 &&
           (unsigned char)s[i + 2] == 0x81;
}

/* Start of the code point before byte i (i > 0). */
static size_t prev_cp(const char *s, size_t i)
{
    size_t k = i - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    return k;
}

int parse_detect_lang(const char *text, size_t n)
{
    size_t cjk = 0, latin = 0;
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < n; i++) {
        if (is_cjk_lead(s[i]))
            cjk++;
        else if ((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z')
            latin++;
    }
    /* an English word is about six letters; a Chinese word one or two characters */
    return cjk * 4 >= latin ? (cjk ? PARSE_LANG_ZH : PARSE_LANG_EN) : PARSE_LANG_EN;
}

/* ------------------------------------------------------------------------ */
/* 1. Tokens.                                                               */
/* ------------------------------------------------------------------------ */

static int cmp_tok_layer(const void *pa, const void *pb)
{
    const ParseTok *a = pa, *b = pb;
    if (a->layer != b->layer)
        return a->layer - b->layer;
    if (a->start != b->start)
        return a->start < b->start ? -1 : 1;
    uint32_t la = a->end - a->start, lb = b->end - b->start;
    if (la != lb)
        return la > lb ? -1 : 1;
    return a->entry - b->entry;
}

static int cmp_tok_pos(const void *pa, const void *pb)
{
    const ParseTok *a = pa, *b = pb;
    if (a->start != b->start)
        return a->start < b->start ? -1 : 1;
    if (a->layer != b->layer)
        return a->layer - b->layer;
    return a->entry - b->entry;
}

static int make_tokens(const Parser *p, ParseResult *r, FvErr *e)
{
    const Lexicon *lex = p->lex;
    const char *s = r->norm.s;
    size_t n = r->norm.n;
    r->nhits = 0;
    r->ntok = 0;
    if (ac_scan(lex->ac, s, n, &r->hits, &r->nhits, &r->chits, e))
        return -1;
    for (size_t h = 0; h < r->nhits; h++) {
        uint32_t st = r->hits[h].start;
        for (int32_t i = lex->pat_entry[r->hits[h].pat]; i >= 0; i = lex->next_same[i]) {
            const LexEntry *x = &lex->e[i];
            uint32_t en = st + x->len;
            if (x->bound_l && st > 0 && is_word((unsigned char)s[st - 1]))
                continue;
            if (x->bound_r && en < n && is_word((unsigned char)s[en]))
                continue;
            if (r->ntok == r->ctok) {
                size_t nc = r->ctok ? r->ctok * 2 : 256;
                ParseTok *t = realloc(r->tok, nc * sizeof *t);
                if (!t)
                    return err_set(e, FV_ENOMEM, "parsing report: out of memory");
                r->tok = t;
                r->ctok = nc;
            }
            r->tok[r->ntok++] = (ParseTok){st, en, i, x->layer};
        }
    }
    /* Leftmost-longest per layer. */
    qsort(r->tok, r->ntok, sizeof *r->tok, cmp_tok_layer);
    size_t k = 0;
    uint32_t last_end[LEX_NLAYERS] = {0};
    int any[LEX_NLAYERS] = {0};
    for (size_t i = 0; i < r->ntok; i++) {
        ParseTok t = r->tok[i];
        if (any[t.layer] && t.start < last_end[t.layer])
            continue;
        any[t.layer] = 1;
        last_end[t.layer] = t.end;
        r->tok[k++] = t;
    }
    r->ntok = k;
    /* A trigger inside a finding term is part of the term: dropped. (A
     * finding word inside a normal statement stays: decide_polarity makes it
     * absent.) Each layer is sorted by start here. */
    size_t f0 = 0, f1;
    while (f0 < r->ntok && r->tok[f0].layer < LEX_LAYER_FIND)
        f0++;
    f1 = f0;
    while (f1 < r->ntok && r->tok[f1].layer == LEX_LAYER_FIND)
        f1++;
    k = 0;
    size_t fi = f0;
    for (size_t i = 0; i < r->ntok; i++) {
        ParseTok t = r->tok[i];
        if (t.layer == LEX_LAYER_TRIG) {
            while (fi < f1 && r->tok[fi].end <= t.start)
                fi++;
            int inside = 0;
            for (size_t j = fi; j < f1 && r->tok[j].start <= t.start && !inside; j++)
                inside = r->tok[j].end >= t.end;
            if (inside)
                continue;
        }
        r->tok[k++] = t;
    }
    r->ntok = k;
    qsort(r->tok, r->ntok, sizeof *r->tok, cmp_tok_pos);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* 2. Sections.                                                             */
/* ------------------------------------------------------------------------ */

static int add_section(ParseResult *r, int sec, size_t a, size_t b, FvErr *e)
{
    if (grow((void **)&r->sec, r->nsec, &r->csec, sizeof *r->sec, e))
        return -1;
    ParseSection *x = &r->sec[r->nsec++];
    x->section = sec;
    x->nstart = a;
    x->nend = b;
    norm_orig_span(&r->norm, a, b, &x->start, &x->end);
    return 0;
}

/* A heading at line start `ls`: its section, and where its body starts. */
static int match_heading(const Lexicon *lex, const char *s, size_t n, size_t ls, size_t *body)
{
    int best = -1;
    size_t best_len = 0;
    for (int h = 0; h < lex->n_head; h++) {
        const LexHeading *x = &lex->head[h];
        if (x->len <= best_len || ls + x->len > n || memcmp(s + ls, x->text, x->len) != 0)
            continue;
        size_t k = ls + x->len;
        if (k < n && is_word((unsigned char)s[k]))
            continue;
        while (k < n && s[k] == ' ')
            k++;
        if (k < n && s[k] != ':' && s[k] != '\n')
            continue;
        if (k < n && s[k] == ':')
            k++;
        best = h;
        best_len = x->len;
        *body = k;
    }
    return best < 0 ? -1 : lex->head[best].section;
}

static int find_sections(const Parser *p, ParseResult *r, FvErr *e)
{
    const char *s = r->norm.s;
    size_t n = r->norm.n;
    r->nsec = 0;
    int cur = -1;
    size_t cur_start = 0, first_head = n;
    size_t pos = 0;
    while (pos < n) {
        size_t ls = pos;
        while (ls < n && s[ls] == ' ')
            ls++;
        size_t body;
        int sec = match_heading(p->lex, s, n, ls, &body);
        if (sec >= 0) {
            if (cur < 0) {
                first_head = ls;
            } else if (add_section(r, cur, cur_start, ls, e)) {
                return -1;
            }
            cur = sec;
            cur_start = body;
        }
        const char *nl = memchr(s + ls, '\n', n - ls);
        pos = nl ? (size_t)(nl - s) + 1 : n;
    }
    if (cur < 0)
        return add_section(r, SEC_FINDINGS, 0, n, e);
    /* Text before the first heading (clinical notes, a title) is 'other'. */
    if (first_head > 0 && add_section(r, SEC_OTHER, 0, first_head, e))
        return -1;
    if (add_section(r, cur, cur_start, n, e))
        return -1;
    /* keep report order: the 'other' prefix was appended after the others */
    if (first_head > 0 && r->nsec > 1) {
        int k = -1;
        for (int i = 0; i < r->nsec; i++)
            if (r->sec[i].nstart == 0 && r->sec[i].nend == first_head && r->sec[i].section == SEC_OTHER)
                k = i;
        if (k > 0) {
            ParseSection t = r->sec[k];
            memmove(r->sec + 1, r->sec, (size_t)k * sizeof *r->sec);
            r->sec[0] = t;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* 3. Sentences.                                                            */
/* ------------------------------------------------------------------------ */

static int has_content(const char *s, size_t a, size_t b)
{
    for (size_t i = a; i < b; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_word(c) || c >= 0x80)
            return 1;
    }
    return 0;
}

static int add_sentence(ParseResult *r, int sec, size_t a, size_t b, FvErr *e)
{
    const char *s = r->norm.s;
    while (a < b && is_space((unsigned char)s[a]))
        a++;
    while (b > a && is_space((unsigned char)s[b - 1]))
        b--;
    if (!has_content(s, a, b))
        return 0;
    if (grow((void **)&r->sent, r->nsent, &r->csent, sizeof *r->sent, e))
        return -1;
    ParseSentence *x = &r->sent[r->nsent++];
    x->section = sec;
    x->nstart = a;
    x->nend = b;
    norm_orig_span(&r->norm, a, b, &x->start, &x->end);
    x->zh = 0;
    for (size_t i = a; i < b; i++)
        if (is_cjk_lead((unsigned char)s[i])) {
            x->zh = 1;
            break;
        }
    return 0;
}

/* Cuts [a, b) into pieces of at most PARSE_MAX_SENTENCE bytes, preferring a
 * clause boundary, then a space, then any character boundary. */
static int add_sentence_cut(ParseResult *r, int sec, size_t a, size_t b, FvErr *e)
{
    const char *s = r->norm.s;
    int cut = 0;
    while (b - a > PARSE_MAX_SENTENCE) {
        size_t lim = a + PARSE_MAX_SENTENCE, at = 0;
        for (size_t i = lim; i > a + PARSE_MAX_SENTENCE / 2 && !at; i--)
            if (s[i - 1] == ',' || s[i - 1] == ';' || s[i - 1] == ':')
                at = i;
        for (size_t i = lim; i > a + PARSE_MAX_SENTENCE / 2 && !at; i--)
            if (s[i - 1] == ' ')
                at = i;
        if (!at) {
            at = lim;
            while (at > a && ((unsigned char)s[at] & 0xC0) == 0x80)
                at--;
        }
        if (add_sentence(r, sec, a, at, e))
            return -1;
        a = at;
        cut = 1;
    }
    if (cut)
        r->n_cut++;
    return add_sentence(r, sec, a, b, e);
}

/* A list number starts at i: "1." "2、" "3)" "(4)" not part of a decimal. */
static int item_start(const ParseResult *r, size_t sec_start, size_t i, size_t end)
{
    const char *s = r->norm.s;
    unsigned char c = (unsigned char)s[i];
    size_t k = i;
    if (c == '(') {
        k++;
        size_t d = k;
        while (k < end && is_digit((unsigned char)s[k]) && k - d < 3)
            k++;
        if (k == d || k >= end || s[k] != ')')
            return 0;
    } else if (is_digit(c)) {
        if (i > sec_start && is_word((unsigned char)s[i - 1]))
            return 0;
        size_t d = k;
        while (k < end && is_digit((unsigned char)s[k]) && k - d < 3)
            k++;
        if (k - d > 2 || k >= end)
            return 0;
        if (s[k] == '.' || s[k] == ')') {
            if (k + 1 < end && is_digit((unsigned char)s[k + 1]))
                return 0;
        } else if (!is_zh_enum(s, k, end)) {
            return 0;
        }
    } else {
        return 0;
    }
    /* what precedes: the section start, a line break, a sentence or clause
     * mark, or (Chinese) any character or space */
    if (i == sec_start)
        return 1;
    size_t j = i;
    while (j > sec_start && s[j - 1] == ' ')
        j--;
    if (j == sec_start)
        return 1;
    unsigned char pc = (unsigned char)s[j - 1];
    if (pc == '\n' || pc == '.' || pc == ';' || pc == ':' || pc == '!' || pc == '?')
        return 1;
    if (pc >= 0x80)
        return 1;   /* after Chinese text or 。 */
    if (r->lang == PARSE_LANG_ZH && (pc == ',' || j < i))
        return 1;
    return 0;
}

/* The word before the '.' at i (letters and inner dots), for abbreviations. */
static int abbrev_before(const Lexicon *lex, const char *s, size_t a, size_t i)
{
    size_t k = i;
    while (k > a && (((unsigned char)s[k - 1] >= 'a' && (unsigned char)s[k - 1] <= 'z') ||
                     s[k - 1] == '.'))
        k--;
    return k < i && lex_is_abbrev(lex, s + k, i - k);
}

/* Does the '.' at i end an English sentence? */
static int period_ends(const Parser *p, const ParseResult *r, size_t cur, size_t i, size_t end)
{
    const char *s = r->norm.s;
    unsigned char next = i + 1 < end ? (unsigned char)s[i + 1] : ' ';
    unsigned char prev = i > cur ? (unsigned char)s[i - 1] : ' ';
    if (is_digit(prev) && is_digit(next))
        return 0;                               /* decimal: 1.5 cm */
    if (!(is_space(next) || next >= 0x80 || next == '"' || next == ')' || next == '\''))
        return 0;                               /* inside a token: e.g., i.e., 3.a */
    /* a list number: the sentence so far is "12" */
    size_t k = cur;
    while (k < i && is_space((unsigned char)s[k]))
        k++;
    if (k < i && i - k <= 2) {
        int digits = 1;
        for (size_t j = k; j < i; j++)
            digits &= is_digit((unsigned char)s[j]);
        if (digits)
            return 0;
    }
    if (abbrev_before(p->lex, s, cur, i))
        return 0;
    /* "... approx. the" : a lower-case word after the period continues the
     * sentence, in reports that use capitals at all. */
    size_t j = i + 1;
    while (j < end && s[j] == ' ')
        j++;
    if (j < end && r->norm.n_upper > 0 && s[j] >= 'a' && s[j] <= 'z' && !norm_was_upper(&r->norm, j))
        return 0;
    return 1;
}

static int split_section(const Parser *p, ParseResult *r, const ParseSection *sec, FvErr *e)
{
    const char *s = r->norm.s;
    size_t a = sec->nstart, b = sec->nend, cur = a, i = a;
    int zh_report = r->lang == PARSE_LANG_ZH;
    while (i < b) {
        unsigned char c = (unsigned char)s[i];
        size_t endpos = 0, next = 0;
        if (c == '\n') {
            int split = 1;
            if (!zh_report) {
                /* English: a line wrapped inside a sentence continues when the
                 * next line starts with a lower-case letter. */
                size_t j = i + 1;
                while (j < b && s[j] == ' ')
                    j++;
                if (j < b && s[j] >= 'a' && s[j] <= 'z' && !norm_was_upper(&r->norm, j) &&
                    r->norm.n_upper > 0)
                    split = 0;
            }
            if (split) {
                endpos = i;
                next = i + 1;
            }
        } else if (c == 0xE3 && is_zh_stop(s, i, b)) {
            endpos = next = i + 3;
        } else if (c == '!' || c == '?') {
            size_t j = i + 1;
            int zh_ctx = zh_report || (i > a && (unsigned char)s[prev_cp(s, i)] >= 0x80);
            if (zh_ctx || j >= b || is_space((unsigned char)s[j]) || (unsigned char)s[j] >= 0x80)
                endpos = next = i + 1;
        } else if (c == ';') {
            int zh_ctx = zh_report || (i > a && (unsigned char)s[prev_cp(s, i)] >= 0x80);
            if (zh_ctx)
                endpos = next = i + 1;
        } else if (c == '.') {
            if (i > a && (unsigned char)s[prev_cp(s, i)] >= 0xE3 &&
                !(i + 1 < b && is_digit((unsigned char)s[i + 1])))
                endpos = next = i + 1;          /* "。"-like use after Chinese text */
            else if (period_ends(p, r, cur, i, b))
                endpos = next = i + 1;
        } else if ((is_digit(c) || c == '(') && i > cur && has_content(s, cur, i) &&
                   item_start(r, a, i, b)) {
            endpos = next = i;
        }
        if (next) {
            if (add_sentence_cut(r, sec->section, cur, endpos, e))
                return -1;
            cur = next;
            i = next;
            continue;
        }
        i++;
    }
    return add_sentence_cut(r, sec->section, cur, b, e);
}

/* ------------------------------------------------------------------------ */
/* 4. Findings per sentence.                                                */
/* ------------------------------------------------------------------------ */

/* Scope marks inside a sentence: clause boundaries end every trigger's scope;
 * segment boundaries (commas, brackets in English) bound generic words. */
typedef struct Scope {
    size_t *clause;   /* positions of clause boundaries, ascending */
    int nclause, cclause;
    size_t *seg;
    int nseg, cseg;
} Scope;

static int scope_add(size_t **arr, int *n, int *cap, size_t pos, FvErr *e)
{
    if (grow((void **)arr, *n, cap, sizeof **arr, e))
        return -1;
    (*arr)[(*n)++] = pos;
    return 0;
}

/* Number of boundaries at or before pos: equal numbers = same clause. */
static int scope_index(const size_t *arr, int n, size_t pos)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (arr[mid] < pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int build_scope(const Lexicon *lex, const ParseResult *r, const ParseSentence *st,
                       size_t t0, size_t t1, Scope *sc, FvErr *e)
{
    const char *s = r->norm.s;
    sc->nclause = sc->nseg = 0;
    size_t ti = t0;
    for (size_t i = st->nstart; i < st->nend; i++) {
        unsigned char c = (unsigned char)s[i];
        /* terminator tokens starting here */
        while (ti < t1 && r->tok[ti].start < i)
            ti++;
        for (size_t k = ti; k < t1 && r->tok[k].start == i; k++) {
            if (lex->e[r->tok[k].entry].kind == LK_TERM &&
                (scope_add(&sc->clause, &sc->nclause, &sc->cclause, i, e) ||
                 scope_add(&sc->seg, &sc->nseg, &sc->cseg, i, e)))
                return -1;
        }
        int clause = c == ';' || c == ':' || c == '!' || c == '?' || c == '.' || c == '\n' ||
                     (c == 0xE3 && is_zh_stop(s, i, st->nend));
        int seg = c == ',';
        /* brackets hold asides ("(cyst?)"): their triggers stay inside */
        if (c == '(' || c == ')' || c == '[' || c == ']' || (st->zh && c == ','))
            clause = 1;
        /* a decimal point is no boundary */
        if (c == '.' && i > st->nstart && i + 1 < st->nend && is_digit((unsigned char)s[i - 1]) &&
            is_digit((unsigned char)s[i + 1]))
            clause = 0;
        if (clause && scope_add(&sc->clause, &sc->nclause, &sc->cclause, i, e))
            return -1;
        if ((clause || seg) && scope_add(&sc->seg, &sc->nseg, &sc->cseg, i, e))
            return -1;
    }
    return 0;
}

static int kind_of(const Lexicon *lex, const ParseTok *t) { return lex->e[t->entry].kind; }

static int is_polarity_trigger(int kind)
{
    return kind == LK_NEG || kind == LK_UNC || kind == LK_UNC_NEG || kind == LK_PSEUDO;
}

static int trig_rank(int kind)
{
    return kind == LK_UNC_NEG ? 4 : kind == LK_NEG ? 3 : kind == LK_UNC ? 2 : kind == LK_PSEUDO ? 1 : 0;
}

/* Polarity of the finding token at index f (in [t0, t1)), and the rule.
 *
 * Before the finding: the pre-triggers of its clause. Among those in its own
 * segment (no comma between) the strongest wins, as the CheXpert labeler
 * orders its phases (pre-negation uncertainty, negation, uncertainty): "no
 * finding suggestive of X" is a negation. With none in its segment, the
 * nearest in the clause decides ("no effusion, possible nodule").
 * After the finding: the nearest post-trigger of the clause, unless an
 * affirmative verb or a normal statement comes first. A normal statement right
 * after the finding ("lymph nodes are not enlarged") makes it absent. */
static int decide_polarity(const Lexicon *lex, const ParseResult *r, const Scope *sc, size_t t0,
                           size_t t1, size_t f, const char **rule)
{
    const ParseTok *ft = &r->tok[f];
    int cl = scope_index(sc->clause, sc->nclause, ft->start);
    int seg = scope_index(sc->seg, sc->nseg, ft->start);
    const ParseTok *pre = NULL, *post = NULL, *normal = NULL;
    int pre_same_seg = 0;
    /* a normal statement that covers the finding word: "the heart is not
     * enlarged", "未见肿大淋巴结" */
    for (size_t k = t0; k < t1 && r->tok[k].start < ft->end; k++) {
        const ParseTok *t = &r->tok[k];
        if (t->layer == LEX_LAYER_TRIG && t->end > ft->start && lex->e[t->entry].kind == LK_NORMAL) {
            *rule = lex->e[t->entry].rule;
            return PARSE_ABSENT;
        }
    }
    for (size_t k = f; k-- > t0;) {
        const ParseTok *t = &r->tok[k];
        if (scope_index(sc->clause, sc->nclause, t->start) != cl)
            break;
        if (t->layer != LEX_LAYER_TRIG || t->start >= ft->start)
            continue;
        const LexEntry *x = &lex->e[t->entry];
        if (!is_polarity_trigger(x->kind) || !(x->dir & DIR_PRE))
            continue;
        int same = scope_index(sc->seg, sc->nseg, t->start) == seg;
        if (!pre) {
            pre = t;
            pre_same_seg = same;
        } else if (same && pre_same_seg && trig_rank(x->kind) > trig_rank(kind_of(lex, pre))) {
            pre = t;
        }
        if (!same)
            break;
    }
    int anat_between = 0;
    for (size_t k = f + 1; k < t1; k++) {
        const ParseTok *t = &r->tok[k];
        if (t->start < ft->end)
            continue;
        if (t->layer == LEX_LAYER_ANAT) {
            anat_between = 1;   /* "plaques in the aorta with a normal ...": not the finding's */
            continue;
        }
        if (scope_index(sc->clause, sc->nclause, t->start) != cl)
            break;
        if (t->layer == LEX_LAYER_FIND) {
            if (!normal)
                normal = ft;   /* another finding: a normal statement no longer applies */
            continue;
        }
        const LexEntry *x = &lex->e[t->entry];
        if (x->kind == LK_AFFIRM)
            break;              /* "a nodule is seen and no effusion ...": stated */
        if (x->kind == LK_NORMAL && (x->dir & DIR_POST)) {
            if (!normal && !anat_between && scope_index(sc->seg, sc->nseg, t->start) == seg)
                normal = t;
            continue;
        }
        if (is_polarity_trigger(x->kind) && (x->dir & DIR_POST)) {
            /* a two-way trigger with a finding after it in the clause is that
             * finding's ("结节不能除外转移": the metastasis is uncertain) */
            int later = 0;
            if (x->dir == DIR_BOTH && x->kind != LK_NEG)
                for (size_t j = k + 1; j < t1 && !later; j++)
                    later = r->tok[j].layer == LEX_LAYER_FIND &&
                            scope_index(sc->clause, sc->nclause, r->tok[j].start) == cl;
            if (!later)
                post = t;
            break;
        }
    }
    if (normal == ft)
        normal = NULL;
    int kpre = pre ? kind_of(lex, pre) : -1, kpost = post ? kind_of(lex, post) : -1;
    if (kpre == LK_UNC_NEG || kpost == LK_UNC_NEG) {
        *rule = lex->e[(kpre == LK_UNC_NEG ? pre : post)->entry].rule;
        return PARSE_UNCERTAIN;
    }
    if (kpre == LK_NEG || kpost == LK_NEG) {
        *rule = lex->e[(kpre == LK_NEG ? pre : post)->entry].rule;
        return PARSE_ABSENT;
    }
    if (kpre == LK_UNC || kpost == LK_UNC) {
        *rule = lex->e[(kpre == LK_UNC ? pre : post)->entry].rule;
        return PARSE_UNCERTAIN;
    }
    if (normal) {
        *rule = lex->e[normal->entry].rule;
        return PARSE_ABSENT;
    }
    if (kpre == LK_PSEUDO || kpost == LK_PSEUDO) {
        *rule = lex->e[(kpre == LK_PSEUDO ? pre : post)->entry].rule;
        return PARSE_PRESENT;
    }
    *rule = RULE_PRESENT;
    return PARSE_PRESENT;
}

static int add_finding(ParseResult *r, int sentence, int task, int polarity, size_t na, size_t nb,
                       const char *rule, int normal, FvErr *e)
{
    if (grow((void **)&r->find, r->nfind, &r->cfind, sizeof *r->find, e))
        return -1;
    ParseFinding *x = &r->find[r->nfind++];
    x->sentence = sentence;
    x->task = task;
    x->polarity = polarity;
    x->nstart = na;
    x->nend = nb;
    norm_orig_span(&r->norm, na, nb, &x->start, &x->end);
    x->rule = rule;
    x->normal = normal;
    return 0;
}

/* One step of resolve_generic's walk from the word: 0 to stop. */
typedef struct GenericWalk {
    const Lexicon *lex;
    const ParseResult *r;
    const Scope *sc;
    const ParseTok *ft;
    int g, seg, last;
    int *tasks;
    int max, nt, found, named;
} GenericWalk;

static int generic_step(GenericWalk *w, size_t k)
{
    const Lexicon *lex = w->lex;
    const ParseTok *t = &w->r->tok[k];
    const LexEntry *x = &lex->e[t->entry];
    int ks = scope_index(w->sc->seg, w->sc->nseg, t->start);
    if (ks < w->seg || ks > w->last)
        return 0;
    if (x->kind == LK_GROUP || x->kind == LK_AFFIRM)
        return 1;
    if (x->kind != LK_ANATOMY)
        /* a finding overlapping the word itself is no separator */
        return t->layer == LEX_LAYER_FIND && t->start < w->ft->end && t->end > w->ft->start;
    w->named |= x->target != lex->body;
    size_t cell = (size_t)w->g * (size_t)lex->onto->n_anat + (size_t)x->target;
    if (lex->generic_task[cell] == -2)
        return 1;
    w->found = 1;
    int task = lex_generic_task(lex, w->g, x->target);
    int dup = 0;
    for (int i = 0; i < w->nt; i++)
        dup |= w->tasks[i] == task;
    if (task >= 0 && !dup && w->nt < w->max)
        w->tasks[w->nt++] = task;
    return 1;
}

/* The tasks a generic word means here: anatomies with a row for it in the
 * same segment, else the nearest in the clause, else in the sentence, else
 * the word's default. Writes up to `max` tasks; returns the count. */
static int resolve_generic(const Lexicon *lex, const ParseResult *r, const Scope *sc, size_t t0,
                           size_t t1, size_t f, int *tasks, int max)
{
    const ParseTok *ft = &r->tok[f];
    int g = lex->e[ft->entry].target;
    int na = lex->onto->n_anat;
    int seg = scope_index(sc->seg, sc->nseg, ft->start);
    int cl = scope_index(sc->clause, sc->nclause, ft->start);
    /* "plaques in the aortic arch, ascending aorta, and coronary arteries":
     * the segments after the word's that name anatomies only are its list */
    int last = seg;
    for (size_t k = f + 1; k < t1; k++) {
        const ParseTok *t = &r->tok[k];
        int ks = scope_index(sc->seg, sc->nseg, t->start);
        if (scope_index(sc->clause, sc->nclause, t->start) != cl)
            break;
        int kind = lex->e[t->entry].kind;
        if (kind == LK_ANATOMY || kind == LK_GROUP) {
            if (ks > last)
                last = ks;
        } else if (kind != LK_AFFIRM && ks > seg) {
            /* a segment with its own finding or trigger ends the list */
            if (ks <= last)
                last = ks - 1;
            break;
        }
    }
    GenericWalk w = {lex, r, sc, ft, g, seg, last, tasks, max, 0, 0, 0};
    /* walk out from the word both ways; a finding or a trigger (other than an
     * affirmative verb) between the word and an anatomy separates them:
     * "plaques in the aorta with a normal heart size" */
    for (size_t k = f + 1; k < t1 && generic_step(&w, k); k++)
        ;
    for (size_t k = f; k > t0 && generic_step(&w, k - 1); k--)
        ;
    int nt = w.nt, found = w.found, named = w.named;
    /* an anatomy named next to the word where it means nothing: nothing */
    if (found || named)
        return nt;
    for (int pass = 0; pass < 2; pass++) {
        size_t best_d = (size_t)-1;
        int best_a = -1;
        for (size_t k = t0; k < t1; k++) {
            const ParseTok *t = &r->tok[k];
            const LexEntry *x = &lex->e[t->entry];
            if (x->kind != LK_ANATOMY)
                continue;
            if (pass == 0 && scope_index(sc->clause, sc->nclause, t->start) != cl)
                continue;
            named |= pass == 0 && x->target != lex->body;
            if (lex->generic_task[(size_t)g * (size_t)na + (size_t)x->target] == -2)
                continue;
            size_t d = t->start > ft->start ? t->start - ft->start : ft->start - t->start;
            if (d < best_d) {
                best_d = d;
                best_a = x->target;
            }
        }
        if (best_a >= 0) {
            int task = lex_generic_task(lex, g, best_a);
            if (task >= 0)
                tasks[nt++] = task;
            return nt;
        }
        if (pass == 0 && named)
            return nt;
    }
    int task = lex->generic_default[g];
    if (task >= 0)
        tasks[nt++] = task;
    return nt;
}

/* Anatomies a normal statement at token n speaks of: the anatomy mentions
 * next to it in its clause, up to the nearest finding or polarity trigger. */
static int normal_targets(const Lexicon *lex, const ParseResult *r, const Scope *sc, size_t t0,
                          size_t t1, size_t n, size_t *ment, int max)
{
    const ParseTok *nt = &r->tok[n];
    int cl = scope_index(sc->clause, sc->nclause, nt->start);
    int dir = lex->e[nt->entry].dir, cnt = 0;
    /* a two-way statement right before an anatomy is about it: "normal heart size" */
    if (dir == DIR_BOTH && n + 1 < t1) {
        const ParseTok *nx = &r->tok[n + 1];
        int kind = kind_of(lex, nx);
        if ((kind == LK_ANATOMY || kind == LK_GROUP) && nx->start <= nt->end + 1 &&
            scope_index(sc->clause, sc->nclause, nx->start) == cl)
            dir = DIR_PRE;
    }
    if (dir & DIR_POST) {
        for (size_t k = n; k-- > t0;) {
            const ParseTok *t = &r->tok[k];
            if (scope_index(sc->clause, sc->nclause, t->start) != cl)
                break;
            int kind = kind_of(lex, t);
            if (kind == LK_ANATOMY || kind == LK_GROUP) {
                if (cnt < max)
                    ment[cnt++] = k;
            } else if (kind == LK_TASK || kind == LK_GENERIC || is_polarity_trigger(kind)) {
                break;
            }
        }
    }
    /* "Lungs: clear." The anatomy named before a colon, alone in its clause. */
    if ((dir & DIR_POST) && cnt == 0 && cl > 0 && r->norm.s[sc->clause[cl - 1]] == ':') {
        size_t colon = sc->clause[cl - 1];
        size_t from = cl > 1 ? sc->clause[cl - 2] : 0;
        int only = 1, found = 0;
        size_t first = n;
        for (size_t k = n; k-- > t0;) {
            const ParseTok *t = &r->tok[k];
            if (t->start >= colon)
                continue;
            if (t->start < from)
                break;
            int kind = kind_of(lex, t);
            if (kind == LK_ANATOMY || kind == LK_GROUP) {
                found = 1;
                first = k;
            } else {
                only = 0;
            }
        }
        if (found && only)
            for (size_t k = first; k < n && r->tok[k].start < colon && cnt < max; k++)
                ment[cnt++] = k;
    }
    if ((dir & DIR_PRE) && (cnt == 0 || dir == DIR_PRE)) {
        for (size_t k = n + 1; k < t1; k++) {
            const ParseTok *t = &r->tok[k];
            if (scope_index(sc->clause, sc->nclause, t->start) != cl)
                break;
            int kind = kind_of(lex, t);
            if (kind == LK_ANATOMY || kind == LK_GROUP) {
                if (cnt < max)
                    ment[cnt++] = k;
            } else if (kind == LK_TASK || kind == LK_GENERIC || is_polarity_trigger(kind)) {
                break;
            }
        }
    }
    return cnt;
}

static int analyse_sentence(const Parser *p, ParseResult *r, int si, size_t t0, size_t t1,
                            Scope *sc, FvErr *e)
{
    const Lexicon *lex = p->lex;
    const Ontology *o = p->onto;
    ParseSentence st = r->sent[si];
    if (build_scope(lex, r, &st, t0, t1, sc, e))
        return -1;
    /* mentions */
    for (size_t k = t0; k < t1; k++) {
        const ParseTok *t = &r->tok[k];
        const LexEntry *x = &lex->e[t->entry];
        if (x->kind != LK_ANATOMY && x->kind != LK_GROUP)
            continue;
        if (grow((void **)&r->ment, r->nment, &r->cment, sizeof *r->ment, e))
            return -1;
        ParseMention *m = &r->ment[r->nment++];
        m->sentence = si;
        m->anatomy = x->kind == LK_ANATOMY ? x->target : -1;
        m->group = x->kind == LK_GROUP ? x->target : -1;
        m->nstart = t->start;
        m->nend = t->end;
        norm_orig_span(&r->norm, t->start, t->end, &m->start, &m->end);
        m->rule = x->rule;
    }
    /* explicit findings */
    for (size_t k = t0; k < t1; k++) {
        const ParseTok *t = &r->tok[k];
        const LexEntry *x = &lex->e[t->entry];
        if (x->kind != LK_TASK && x->kind != LK_GENERIC)
            continue;
        int tasks[8], nt = 0;
        if (x->kind == LK_TASK) {
            for (int i = 0; i < x->ntasks; i++)
                tasks[nt++] = x->tasks[i];
        } else {
            nt = resolve_generic(lex, r, sc, t0, t1, k, tasks, 8);
        }
        if (nt == 0)
            continue;
        const char *rule;
        int pol = decide_polarity(lex, r, sc, t0, t1, k, &rule);
        for (int i = 0; i < nt; i++) {
            r->stamp[tasks[i]] = si;
            if (add_finding(r, si, tasks[i], pol, t->start, t->end, rule, 0, e))
                return -1;
        }
    }
    /* normal statements */
    for (size_t k = t0; k < t1; k++) {
        const ParseTok *nt = &r->tok[k];
        if (kind_of(lex, nt) != LK_NORMAL)
            continue;
        size_t ment[32];
        int nm = normal_targets(lex, r, sc, t0, t1, k, ment, 32);
        int others = 0;
        for (int i = 0; i < nm; i++) {
            const LexEntry *x = &lex->e[r->tok[ment[i]].entry];
            others += !(x->kind == LK_ANATOMY && !strcmp(o->anat[x->target].id, "body"));
        }
        for (int i = 0; i < nm; i++) {
            const ParseTok *mt = &r->tok[ment[i]];
            const LexEntry *x = &lex->e[mt->entry];
            size_t a = mt->start < nt->start ? mt->start : nt->start;
            size_t b = mt->end > nt->end ? mt->end : nt->end;
            for (int an = 0; an < o->n_anat; an++) {
                if (x->kind == LK_ANATOMY ? an != x->target : !onto_in_group(o, an, x->target))
                    continue;
                /* "sections", "study area": the whole scan only when nothing
                 * else is named */
                if (!strcmp(o->anat[an].id, "body") && others)
                    continue;
                for (int j = 0; j < lex->anat_ntasks[an]; j++) {
                    int task = lex->anat_tasks[an][j];
                    if (r->stamp[task] == si || r->stamp[task] == -2 - si)
                        continue;
                    r->stamp[task] = -2 - si;   /* one normal finding per task and sentence */
                    if (add_finding(r, si, task, PARSE_ABSENT, a, b, lex->e[nt->entry].rule, 1, e))
                        return -1;
                }
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* 5. Long sentences joining several anatomies.                             */
/* ------------------------------------------------------------------------ */

static int item_anatomy(const Parser *p, const ParseResult *r, int is_find, int i)
{
    if (is_find)
        return p->onto->find[r->find[i].task].anatomy;
    return r->ment[i].anatomy;   /* -1 for groups: they join any piece */
}

static int cmp_mention(const void *pa, const void *pb)
{
    const ParseMention *a = pa, *b = pb;
    if (a->sentence != b->sentence)
        return a->sentence - b->sentence;
    return a->nstart < b->nstart ? -1 : a->nstart > b->nstart;
}

static int cmp_finding(const void *pa, const void *pb)
{
    const ParseFinding *a = pa, *b = pb;
    if (a->sentence != b->sentence)
        return a->sentence - b->sentence;
    if (a->nstart != b->nstart)
        return a->nstart < b->nstart ? -1 : 1;
    return a->task - b->task;
}

/* Splits sentence si (whose mentions start at m0 and findings at f0) at
 * segment boundaries where the anatomies before and after differ. */
static int split_long(const Parser *p, ParseResult *r, int si, int m0, int f0, const Scope *sc,
                      FvErr *e)
{
    ParseSentence st = r->sent[si];
    if (st.nend - st.nstart <= PARSE_LONG_SENTENCE || sc->nseg == 0)
        return 0;
    int nb = sc->nseg;
    /* the anatomy set of each piece between segment boundaries, as a list */
    size_t cuts[64];
    int ncut = 0;
    int cur[64], ncur = 0;
    for (int piece = 0; piece <= nb && ncut < 64; piece++) {
        size_t a = piece == 0 ? st.nstart : sc->seg[piece - 1];
        size_t b = piece == nb ? st.nend : sc->seg[piece];
        int set[64], nset = 0;
        for (int pass = 0; pass < 2; pass++) {
            int from = pass ? f0 : m0, to = pass ? r->nfind : r->nment;
            for (int i = from; i < to; i++) {
                size_t pos = pass ? r->find[i].nstart : r->ment[i].nstart;
                if (pos < a || pos >= b)
                    continue;
                int an = item_anatomy(p, r, pass, i);
                if (an < 0)
                    continue;
                int dup = 0;
                for (int k = 0; k < nset; k++)
                    dup |= set[k] == an;
                if (!dup && nset < 64)
                    set[nset++] = an;
            }
        }
        if (nset == 0)
            continue;
        int overlap = 0;
        for (int i = 0; i < nset; i++)
            for (int k = 0; k < ncur; k++)
                overlap |= set[i] == cur[k];
        if (ncur > 0 && !overlap && piece > 0) {
            /* cut after the boundary mark */
            size_t at = a + 1;
            cuts[ncut++] = at;
            ncur = 0;
        }
        for (int i = 0; i < nset; i++) {
            int dup = 0;
            for (int k = 0; k < ncur; k++)
                dup |= set[i] == cur[k];
            if (!dup && ncur < 64)
                cur[ncur++] = set[i];
        }
    }
    if (ncut == 0)
        return 0;
    /* Replace sentence si by ncut + 1 pieces (si is the last sentence so far). */
    r->nsent--;
    size_t a = st.nstart;
    int base = r->nsent;
    for (int c = 0; c <= ncut; c++) {
        size_t b = c < ncut ? cuts[c] : st.nend;
        int before = r->nsent;
        if (add_sentence(r, st.section, a, b, e))
            return -1;
        if (r->nsent == before) {
            /* an empty piece: fold it into the next */
            continue;
        }
        a = b;
    }
    /* reassign mentions and findings to the pieces by position */
    for (int pass = 0; pass < 2; pass++) {
        int from = pass ? f0 : m0, to = pass ? r->nfind : r->nment;
        for (int i = from; i < to; i++) {
            size_t pos = pass ? r->find[i].nstart : r->ment[i].nstart;
            int k = base;
            while (k + 1 < r->nsent && r->sent[k + 1].nstart <= pos)
                k++;
            if (pass)
                r->find[i].sentence = k;
            else
                r->ment[i].sentence = k;
        }
    }
    qsort(r->ment + m0, (size_t)(r->nment - m0), sizeof *r->ment, cmp_mention);
    qsort(r->find + f0, (size_t)(r->nfind - f0), sizeof *r->find, cmp_finding);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* 6. Labels.                                                               */
/* ------------------------------------------------------------------------ */

static int rank(int v) { return v == PARSE_PRESENT ? 3 : v == PARSE_UNCERTAIN ? 2 : v == PARSE_ABSENT ? 1 : 0; }

void parse_labels_aggregate(const ParseFinding *f, int nf, int ntasks, int8_t *value, int32_t *from)
{
    for (int t = 0; t < ntasks; t++) {
        value[t] = PARSE_UNMENTIONED;
        from[t] = -1;
    }
    for (int i = 0; i < nf; i++) {
        int t = f[i].task;
        if (t < 0 || t >= ntasks)
            continue;
        if (rank(f[i].polarity) > rank(value[t])) {
            value[t] = (int8_t)f[i].polarity;
            from[t] = i;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* The whole report.                                                        */
/* ------------------------------------------------------------------------ */

int parse_report(const Parser *p, const char *text, size_t n, int lang, ParseResult *r, FvErr *e)
{
    r->nsec = r->nsent = r->nment = r->nfind = 0;
    r->nwarn = 0;
    r->n_cut = 0;
    int ntasks = p->onto->n_find;
    if (r->ntasks != ntasks || !r->label) {
        int8_t *lv = realloc(r->label, (size_t)(ntasks ? ntasks : 1));
        if (lv)
            r->label = lv;
        int32_t *lf = realloc(r->label_from, (size_t)(ntasks ? ntasks : 1) * sizeof *lf);
        if (lf)
            r->label_from = lf;
        int32_t *sp = realloc(r->stamp, (size_t)(ntasks ? ntasks : 1) * sizeof *sp);
        if (sp)
            r->stamp = sp;
        if (!lv || !lf || !sp)
            return err_set(e, FV_ENOMEM, "parsing report: out of memory");
        r->ntasks = ntasks;
    }
    for (int t = 0; t < ntasks; t++) {
        r->label[t] = PARSE_UNMENTIONED;
        r->label_from[t] = -1;
        r->stamp[t] = -1;
    }
    if (norm_build(&r->norm, text, n, e))
        return -1;
    if (r->norm.n_invalid)
        warn(r, "invalid UTF-8: %zu byte sequence(s) replaced by U+FFFD", r->norm.n_invalid);
    if (r->norm.n_nul)
        warn(r, "%zu NUL byte(s) dropped", r->norm.n_nul);
    r->lang = lang == PARSE_LANG_AUTO ? parse_detect_lang(r->norm.s, r->norm.n) : lang;
    if (!has_content(r->norm.s, 0, r->norm.n)) {
        warn(r, "empty report: nothing to parse");
        return 0;
    }
    if (make_tokens(p, r, e) || find_sections(p, r, e))
        return -1;
    for (int i = 0; i < r->nsec; i++)
        if (split_section(p, r, &r->sec[i], e))
            return -1;
    if (r->nsent == 0) {
        warn(r, "report has headings only: no sentences");
        return 0;
    }
    if (r->n_cut)
        warn(r, "%d sentence(s) longer than %d bytes cut at clause boundaries", r->n_cut,
             PARSE_MAX_SENTENCE);
    /* Sentences are analysed in order; split_long may append pieces, so the
     * original list is taken out first. */
    int nraw = r->nsent;
    ParseSentence *raw = malloc((size_t)nraw * sizeof *raw);
    if (!raw)
        return err_set(e, FV_ENOMEM, "parsing report: out of memory");
    memcpy(raw, r->sent, (size_t)nraw * sizeof *raw);
    r->nsent = 0;
    Scope sc = {0};
    size_t t0 = 0;
    int rc = 0;
    for (int i = 0; i < nraw && rc == 0; i++) {
        if (grow((void **)&r->sent, r->nsent, &r->csent, sizeof *r->sent, e)) {
            rc = -1;
            break;
        }
        int si = r->nsent++;
        r->sent[si] = raw[i];
        while (t0 < r->ntok && r->tok[t0].start < raw[i].nstart)
            t0++;
        size_t t1 = t0;
        while (t1 < r->ntok && r->tok[t1].start < raw[i].nend)
            t1++;
        /* tokens that run past the sentence end (across a line break) are dropped */
        size_t k = t0;
        for (size_t j = t0; j < t1; j++)
            if (r->tok[j].end <= raw[i].nend)
                r->tok[k++] = r->tok[j];
        size_t t1k = k;
        int m0 = r->nment, f0 = r->nfind;
        if (analyse_sentence(p, r, si, t0, t1k, &sc, e) ||
            split_long(p, r, si, m0, f0, &sc, e))
            rc = -1;
        /* keep the dropped tail tokens out of later sentences */
        t0 = t1;
    }
    free(raw);
    free(sc.clause);
    free(sc.seg);
    if (rc)
        return -1;
    parse_labels_aggregate(r->find, r->nfind, ntasks, r->label, r->label_from);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Output.                                                                  */
/* ------------------------------------------------------------------------ */

const char *parse_section_name(int section)
{
    return section == SEC_FINDINGS ? "findings" : section == SEC_IMPRESSION ? "impression" : "other";
}

const char *parse_mention_name(const Parser *p, const ParseMention *m, char *out, size_t n)
{
    if (m->anatomy >= 0)
        snprintf(out, n, "%s", p->onto->anat[m->anatomy].id);
    else
        snprintf(out, n, "group:%s", p->onto->groups[m->group].id);
    return out;
}

static void json_span(JsonW *w, const ParseResult *r, size_t a, size_t b)
{
    jw_key(w, "start");
    jw_int(w, (int64_t)a);
    jw_key(w, "end");
    jw_int(w, (int64_t)b);
    jw_key(w, "text");
    jw_strn(w, r->norm.orig + a, b - a);
}

void parse_result_json(const Parser *p, const ParseResult *r, Buf *b, int pretty)
{
    JsonW w;
    jw_init(&w, b, pretty);
    jw_obj(&w);
    jw_key(&w, "language");
    jw_str(&w, r->lang == PARSE_LANG_ZH ? "zh" : "en");
    jw_key(&w, "warnings");
    jw_arr(&w);
    for (int i = 0; i < r->nwarn; i++)
        jw_str(&w, r->warn[i]);
    jw_arr_end(&w);
    jw_key(&w, "sections");
    jw_arr(&w);
    for (int i = 0; i < r->nsec; i++) {
        jw_obj(&w);
        jw_key(&w, "section");
        jw_str(&w, parse_section_name(r->sec[i].section));
        jw_key(&w, "start");
        jw_int(&w, (int64_t)r->sec[i].start);
        jw_key(&w, "end");
        jw_int(&w, (int64_t)r->sec[i].end);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_key(&w, "sentences");
    jw_arr(&w);
    int mi = 0, fi = 0;
    for (int i = 0; i < r->nsent; i++) {
        const ParseSentence *st = &r->sent[i];
        jw_obj(&w);
        jw_key(&w, "idx");
        jw_int(&w, i);
        jw_key(&w, "section");
        jw_str(&w, parse_section_name(st->section));
        json_span(&w, r, st->start, st->end);
        jw_key(&w, "norm");
        jw_strn(&w, r->norm.s + st->nstart, st->nend - st->nstart);
        jw_key(&w, "mentions");
        jw_arr(&w);
        for (; mi < r->nment && r->ment[mi].sentence == i; mi++) {
            const ParseMention *m = &r->ment[mi];
            char name[128];
            jw_obj(&w);
            jw_key(&w, "anatomy");
            jw_str(&w, parse_mention_name(p, m, name, sizeof name));
            json_span(&w, r, m->start, m->end);
            jw_key(&w, "rule");
            jw_str(&w, m->rule);
            jw_obj_end(&w);
        }
        jw_arr_end(&w);
        jw_key(&w, "findings");
        jw_arr(&w);
        for (; fi < r->nfind && r->find[fi].sentence == i; fi++) {
            const ParseFinding *f = &r->find[fi];
            jw_obj(&w);
            jw_key(&w, "task");
            jw_str(&w, p->onto->find[f->task].id);
            jw_key(&w, "anatomy");
            jw_str(&w, p->onto->anat[p->onto->find[f->task].anatomy].id);
            jw_key(&w, "polarity");
            jw_int(&w, f->polarity);
            json_span(&w, r, f->start, f->end);
            jw_key(&w, "rule");
            jw_str(&w, f->rule);
            jw_obj_end(&w);
        }
        jw_arr_end(&w);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_key(&w, "labels");
    jw_obj(&w);
    for (int t = 0; t < r->ntasks; t++) {
        if (r->label[t] == PARSE_UNMENTIONED)
            continue;
        jw_key(&w, p->onto->find[t].id);
        jw_int(&w, r->label[t]);
    }
    jw_obj_end(&w);
    jw_obj_end(&w);
}
