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
#include "parse_util.h"
#include "polarity.h"
#include "sentences.h"

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
    if (r->ntok > 1)
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
     * absent. An abnormality word stays too: "no focal lung lesion" needs the
     * word that is also the generic finding "lesion".) Each layer is sorted by
     * start here. */
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
        if (t.layer == LEX_LAYER_TRIG && lex->e[t.entry].kind != LK_ABNORMAL) {
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
    if (r->ntok > 1)
        qsort(r->tok, r->ntok, sizeof *r->tok, cmp_tok_pos);
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
    if (!sent_has_content(r->norm.s, 0, r->norm.n)) {
        warn(r, "empty report: nothing to parse");
        return 0;
    }
    if (make_tokens(p, r, e) || sent_find_sections(p, r, e))
        return -1;
    for (int i = 0; i < r->nsec; i++)
        if (sent_split_section(p, r, &r->sec[i], e))
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
        if (pol_analyse_sentence(p, r, si, t0, t1k, &sc, e) ||
            pol_split_long(p, r, si, m0, f0, &sc, e))
            rc = -1;
        /* keep the dropped tail tokens out of later sentences */
        t0 = t1;
    }
    free(raw);
    pol_scope_free(&sc);
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

