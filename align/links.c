#include "links.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "schemas.h"
#include "tsv.h"

const double link_confidence[LINK_NMETHODS] = {
    [LINK_MENTION] = 0.95,
    [LINK_FINDING] = 0.90,
    [LINK_GROUP] = 0.75,
    [LINK_CONTINUATION] = 0.60,
    [LINK_AUDIT] = 1.00,
    [LINK_NONE] = 0.00,
};

static const char *const method_names[LINK_NMETHODS] = {
    "mention", "finding", "group", "continuation", "audit", "none",
};

const char *link_method_name(LinkMethod m)
{
    return (unsigned)m < LINK_NMETHODS ? method_names[m] : "?";
}

const char *section_name(Section s)
{
    switch (s) {
    case SECTION_FINDINGS: return "findings";
    case SECTION_IMPRESSION: return "impression";
    case SECTION_OTHER: return "other";
    }
    return "?";
}

int section_parse(const char *s)
{
    if (!strcmp(s, "findings"))
        return SECTION_FINDINGS;
    if (!strcmp(s, "impression"))
        return SECTION_IMPRESSION;
    if (!strcmp(s, "other"))
        return SECTION_OTHER;
    return -1;
}

static int set_push(LinkSet *s, Link l, FvErr *e)
{
    if (arr_reserve(&s->v, &s->cap, s->n, sizeof *s->v, 64))
        return err_set(e, FV_ENOMEM, "links: out of memory");
    s->v[s->n++] = l;
    return 0;
}

void links_free(LinkSet *s)
{
    free(s->v);
    memset(s, 0, sizeof *s);
}

int links_has(const LinkSet *s, int sent, int anatomy)
{
    for (int i = 0; i < s->n; i++)
        if (s->v[i].sent == sent && s->v[i].anatomy == anatomy && !s->v[i].rejected)
            return 1;
    return 0;
}

/* The whole-body anatomy ("body": study area, sections, field of view) says
 * where, not what: it only links when nothing more specific is named. */
static int is_whole_region(const Anatomy *a) { return a->region && !strcmp(a->region, "whole"); }

static void cue_list_free(char **list, int n)
{
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

void links_cues_free(LinkCues *c)
{
    cue_list_free(c->stop_en, c->n_en);
    cue_list_free(c->stop_zh, c->n_zh);
    cue_list_free(c->generic, c->n_generic);
    cue_list_free(c->tech_en, c->n_tech_en);
    cue_list_free(c->tech_zh, c->n_tech_zh);
    cue_list_free(c->cause_en, c->n_cause_en);
    cue_list_free(c->cause_zh, c->n_cause_zh);
    cue_list_free(c->land_en, c->n_land_en);
    cue_list_free(c->land_zh, c->n_land_zh);
    cue_list_free(c->dev_en, c->n_dev_en);
    cue_list_free(c->dev_zh, c->n_dev_zh);
    cue_list_free(c->ana_en, c->n_ana_en);
    cue_list_free(c->ana_zh, c->n_ana_zh);
    for (int i = 0; i < c->n_conf; i++)
        free(c->conf[i].rule);
    free(c->conf);
    memset(c, 0, sizeof *c);
}

static int cue_add(char ***list, int *n, const char *term, int lower, FvErr *e)
{
    char **v = realloc(*list, (size_t)(*n + 1) * sizeof *v);
    if (!v)
        return err_set(e, FV_ENOMEM, "cues: out of memory");
    *list = v;
    if (!(v[*n] = strdup(term)))
        return err_set(e, FV_ENOMEM, "cues: out of memory");
    for (char *p = v[*n]; lower && *p; p++)
        *p = (char)tolower((unsigned char)*p);
    (*n)++;
    return 0;
}

int links_cues_parse(LinkCues *c, const char *text, size_t len, const char *name, FvErr *e)
{
    memset(c, 0, sizeof *c);
    TsvReader r;
    if (tsv_open(&r, text, len, name, e)) {
        tsv_close(&r);
        return -1;
    }
    int c_kind = tsv_col(&r, "kind"), c_lang = tsv_col(&r, "lang"), c_term = tsv_col(&r, "term");
    int rc = 0;
    if (c_kind < 0 || c_lang < 0 || c_term < 0)
        rc = err_set(e, FV_EFORMAT, "%s: header lacks kind, lang or term", name);
    while (rc == 0) {
        int got = tsv_next(&r, e);
        if (got <= 0) {
            rc = got;
            break;
        }
        const char *kind = r.fields[c_kind], *lang = r.fields[c_lang], *term = r.fields[c_term];
        int en = !strcmp(lang, "en");
        if (strcmp(kind, "stop") && strcmp(kind, "generic") && strcmp(kind, "technique") &&
            strcmp(kind, "cause") && strcmp(kind, "landmark") && strcmp(kind, "device") &&
            strcmp(kind, "anaphor"))
            rc = err_set(e, FV_EFORMAT,
                         "%s:%d: unknown kind '%s' (expected stop, generic, technique, cause, "
                         "landmark, device or anaphor)",
                         name, r.line, kind);
        else if (!term[0])
            rc = err_set(e, FV_EFORMAT, "%s:%d: empty term", name, r.line);
        else if (!en && strcmp(lang, "zh"))
            rc = err_set(e, FV_EFORMAT, "%s:%d: unknown lang '%s' (expected en or zh)", name, r.line,
                         lang);
        else if (!strcmp(kind, "generic"))
            rc = cue_add(&c->generic, &c->n_generic, term, en, e);
        else if (!strcmp(kind, "technique"))
            rc = en ? cue_add(&c->tech_en, &c->n_tech_en, term, 1, e)
                    : cue_add(&c->tech_zh, &c->n_tech_zh, term, 0, e);
        else if (!strcmp(kind, "anaphor"))
            rc = en ? cue_add(&c->ana_en, &c->n_ana_en, term, 1, e)
                    : cue_add(&c->ana_zh, &c->n_ana_zh, term, 0, e);
        else if (!strcmp(kind, "device"))
            rc = en ? cue_add(&c->dev_en, &c->n_dev_en, term, 1, e)
                    : cue_add(&c->dev_zh, &c->n_dev_zh, term, 0, e);
        else if (!strcmp(kind, "landmark"))
            rc = en ? cue_add(&c->land_en, &c->n_land_en, term, 1, e)
                    : cue_add(&c->land_zh, &c->n_land_zh, term, 0, e);
        else if (!strcmp(kind, "cause"))
            rc = en ? cue_add(&c->cause_en, &c->n_cause_en, term, 1, e)
                    : cue_add(&c->cause_zh, &c->n_cause_zh, term, 0, e);
        else if (en)
            rc = cue_add(&c->stop_en, &c->n_en, term, 1, e);
        else
            rc = cue_add(&c->stop_zh, &c->n_zh, term, 0, e);
    }
    tsv_close(&r);
    if (rc)
        links_cues_free(c);
    return rc;
}

int links_conf_parse(LinkCues *c, const char *text, size_t len, const char *name, FvErr *e)
{
    for (int i = 0; i < c->n_conf; i++)
        free(c->conf[i].rule);
    free(c->conf);
    c->conf = NULL;
    c->n_conf = 0;
    TsvReader r;
    if (tsv_open(&r, text, len, name, e)) {
        tsv_close(&r);
        return -1;
    }
    int c_rule = tsv_col(&r, "rule"), c_links = tsv_col(&r, "links"), c_agree = tsv_col(&r, "agree");
    int cap = 0, rc = 0;
    if (c_rule < 0 || c_links < 0 || c_agree < 0)
        rc = err_set(e, FV_EFORMAT, "%s: header lacks rule, links or agree", name);
    while (rc == 0) {
        int got = tsv_next(&r, e);
        if (got <= 0) {
            rc = got;
            break;
        }
        char *end1, *end2;
        long links = strtol(r.fields[c_links], &end1, 10);
        long agree = strtol(r.fields[c_agree], &end2, 10);
        if (!r.fields[c_rule][0] || *end1 || *end2 || end1 == r.fields[c_links] ||
            end2 == r.fields[c_agree] || links < 1 || agree < 0 || agree > links) {
            rc = err_set(e, FV_EFORMAT,
                         "%s:%d: expected a rule and counts 0 <= agree <= links, links >= 1", name,
                         r.line);
            break;
        }
        if (arr_reserve(&c->conf, &cap, c->n_conf, sizeof *c->conf, 64) ||
            !(c->conf[c->n_conf].rule = strdup(r.fields[c_rule]))) {
            rc = err_set(e, FV_ENOMEM, "%s: out of memory", name);
            break;
        }
        /* Laplace's rule of succession: a rule seen 3 times, all right, is
         * not certain */
        c->conf[c->n_conf++].precision = ((double)agree + 1.0) / ((double)links + 2.0);
    }
    tsv_close(&r);
    return rc;
}

double links_confidence(const LinkCues *c, LinkMethod m, const char *rule)
{
    if (m == LINK_AUDIT || !c)
        return link_confidence[m < LINK_NMETHODS ? m : LINK_NONE];
    char key[LINK_RULE_MAX + 16];
    snprintf(key, sizeof key, "method:%s", link_method_name(m));
    double by_method = -1.0;
    for (int i = 0; i < c->n_conf; i++) {
        if (rule && !strcmp(c->conf[i].rule, rule))
            return c->conf[i].precision;
        if (!strcmp(c->conf[i].rule, key))
            by_method = c->conf[i].precision;
    }
    return by_method >= 0 ? by_method : link_confidence[m < LINK_NMETHODS ? m : LINK_NONE];
}

int links_cues_load(LinkCues *c, FvErr *e)
{
    char *text;
    size_t len;
    if (schema_load("align_cues.tsv", &text, &len, e))
        return -1;
    int rc = links_cues_parse(c, text, len, "align_cues.tsv", e);
    free(text);
    if (rc)
        return rc;
    if (schema_load("align_confidence.tsv", &text, &len, e)) {
        links_cues_free(c);
        return -1;
    }
    rc = links_conf_parse(c, text, len, "align_confidence.tsv", e);
    free(text);
    if (rc)
        links_cues_free(c);
    return rc;
}

/* The first place in s[0, n) where a term of the lists occurs (English
 * terms case-insensitively at the start of a word, Chinese ones anywhere);
 * sets *len to the term's length. NULL when none does. */
static const char *cue_find_which(char *const *en, int n_en, char *const *zh, int n_zh,
                                  const char *s, size_t n, size_t *len, const char **cue)
{
    const char *best = NULL;
    for (int i = 0; i < n_zh; i++) {
        size_t l = strlen(zh[i]);
        for (const char *p = s; l && p + l <= s + n && (!best || p < best); p++)
            if (!memcmp(p, zh[i], l)) {
                best = p;
                *len = l;
                *cue = zh[i];
                break;
            }
    }
    for (const char *p = s; p < s + n && (!best || p < best); p++) {
        if (p != s && isalnum((unsigned char)p[-1]))
            continue;
        for (int i = 0; i < n_en; i++) {
            size_t l = strlen(en[i]);
            if (p + l <= s + n && !strncasecmp(p, en[i], l)) {
                best = p;
                *len = l;
                *cue = en[i];
                break;
            }
        }
    }
    return best;
}

static const char *cue_find(char *const *en, int n_en, char *const *zh, int n_zh, const char *s,
                            size_t n, size_t *len)
{
    const char *cue;
    return cue_find_which(en, n_en, zh, n_zh, s, n, len, &cue);
}

/* Start of the semicolon (';' or '；') at or after s + i, or NULL. */
static const char *semicolon_from(const char *s, size_t i)
{
    for (const char *p = s + i; *p; p++)
        if (*p == ';' || !strncmp(p, "；", 3))
            return p;
    return NULL;
}

/* The technique cue of a sentence's main clause (links_cues_technique):
 * its position in s, NULL when none. */
static const char *technique_cue(const LinkCues *c, const char *s, const char **cue, size_t *len)
{
    if (!c)
        return NULL;
    /* the last clause with content ("...window;" alone is its own main clause) */
    const char *main = s;
    for (const char *p; (p = semicolon_from(main, 0)) != NULL;) {
        const char *next = p + (*p == ';' ? 1 : 3);
        const char *q = next;
        while (*q && (isspace((unsigned char)*q) || *q == '.'))
            q++;
        if (!*q)
            break;
        main = next;
    }
    return cue_find_which(c->tech_en, c->n_tech_en, c->tech_zh, c->n_tech_zh, main, strlen(main),
                          len, cue);
}

int links_cues_technique(const LinkCues *c, const char *s)
{
    const char *cue;
    size_t len;
    return technique_cue(c, s, &cue, &len) != NULL;
}

/* The stop (or technique) cue a sentence holds: its position in s, NULL
 * when none; *cue the cue as listed, *len its length in s. */
static const char *stop_cue(const LinkCues *c, const char *s, const char **cue, size_t *len)
{
    if (!c)
        return NULL;
    const char *p = cue_find_which(c->stop_en, c->n_en, c->stop_zh, c->n_zh, s, strlen(s), len, cue);
    return p ? p : cue_find_which(c->tech_en, c->n_tech_en, c->tech_zh, c->n_tech_zh, s, strlen(s),
                                  len, cue);
}

int links_cues_stop(const LinkCues *c, const char *s)
{
    const char *cue;
    size_t len;
    return stop_cue(c, s, &cue, &len) != NULL;
}

int links_cues_lead_in(const LinkCues *c, const char *s, size_t at)
{
    if (!c || at > strlen(s))
        return 0;
    const char *end = semicolon_from(s, at);
    if (!end)
        return 0;
    /* the clause: from after the semicolon before it (or the start) */
    const char *from = s;
    for (const char *p; (p = semicolon_from(from, 0)) != NULL && p < s + at && p < end;)
        from = p + (*p == ';' ? 1 : 3);
    size_t len;
    return cue_find(c->tech_en, c->n_tech_en, c->tech_zh, c->n_tech_zh, from, (size_t)(end - from),
                    &len) != NULL;
}

int links_cues_cause(const LinkCues *c, const char *s, size_t at)
{
    if (!c || at > strlen(s))
        return 0;
    size_t from = 0, len = 0;
    const char *hit, *last = NULL;
    while ((hit = cue_find(c->cause_en, c->n_cause_en, c->cause_zh, c->n_cause_zh, s + from,
                           at - from, &len)) != NULL) {
        last = hit;
        from = (size_t)(hit - s) + len;
    }
    if (!last)
        return 0;
    /* the cue governs the mention only within its clause */
    for (const char *p = last + len; p < s + at; p++)
        if (*p == ',' || *p == ';' || *p == ':' || !strncmp(p, "，", 3) || !strncmp(p, "；", 3))
            return 0;
    return 1;
}

int links_cues_landmark(const LinkCues *c, const char *s, size_t at)
{
    if (!c || at > strlen(s))
        return 0;
    size_t from = 0, len = 0;
    const char *hit, *last = NULL;
    while ((hit = cue_find(c->land_en, c->n_land_en, c->land_zh, c->n_land_zh, s + from,
                           at - from, &len)) != NULL) {
        last = hit;
        from = (size_t)(hit - s) + len;
    }
    if (!last)
        return 0;
    /* at most three words ("the right main") and no punctuation between */
    int words = 0, in_word = 0;
    for (const char *p = last + len; p < s + at; p++) {
        if (*p == ',' || *p == ';' || *p == ':' || *p == '.' || !strncmp(p, "，", 3) ||
            !strncmp(p, "；", 3))
            return 0;
        int w = !isspace((unsigned char)*p);
        words += w && !in_word;
        in_word = w;
    }
    return words <= 3;
}

int links_cues_anaphor(const LinkCues *c, const char *s)
{
    if (!c || !s)
        return 0;
    while (*s && isspace((unsigned char)*s))
        s++;
    /* a fragment of a sentence cut before ("small vessel disease?).") goes on */
    if (*s && ((*s >= 'a' && *s <= 'z') || isdigit((unsigned char)*s) || ispunct((unsigned char)*s)))
        return 1;
    for (int i = 0; i < c->n_ana_zh; i++)
        if (!strncmp(s, c->ana_zh[i], strlen(c->ana_zh[i])))
            return 1;
    for (int i = 0; i < c->n_ana_en; i++) {
        size_t l = strlen(c->ana_en[i]);
        if (!strncasecmp(s, c->ana_en[i], l) && !isalnum((unsigned char)s[l]))
            return 1;
    }
    return 0;
}

int links_cues_device(const LinkCues *c, const char *term)
{
    size_t len;
    return c && term &&
           cue_find(c->dev_en, c->n_dev_en, c->dev_zh, c->n_dev_zh, term, strlen(term), &len) != NULL;
}

int links_cues_generic(const LinkCues *c, const char *term)
{
    if (!c || !term)
        return 0;
    while (isspace((unsigned char)*term))
        term++;
    size_t n = strlen(term);
    while (n && isspace((unsigned char)term[n - 1]))
        n--;
    for (int i = 0; i < c->n_generic; i++)
        if (strlen(c->generic[i]) == n && !strncasecmp(term, c->generic[i], n))
            return 1;
    return 0;
}

/* The evidence of a candidate link: what made it (EV_MENTION: the mention
 * k, EV_FINDING: the finding k, EV_GROUP: the group mention k). */
enum { EV_NONE = 0, EV_MENTION, EV_FINDING, EV_GROUP };

typedef struct Evidence {
    unsigned char kind;
    int k;
} Evidence;

/* Fills l's explanation from its evidence; prev_sent: the sentence a
 * continuation continues. */
static void link_explain(const AlignDoc *d, const LinkCues *cues, const Ontology *o, Link *l,
                         Evidence ev, int weak_cont, int prev_sent)
{
    l->term = NULL;
    l->start = l->end = -1;
    l->continues = -1;
    l->rule[0] = '\0';
    switch (l->method) {
    case LINK_MENTION:
    case LINK_GROUP:
        if (ev.kind == EV_MENTION || ev.kind == EV_GROUP) {
            const DocMention *m = &d->men[ev.k];
            if (m->term) {
                l->term = m->term;
                l->start = m->start;
                l->end = m->end;
            }
            snprintf(l->rule, sizeof l->rule, "%s", m->rule ? m->rule : link_method_name(l->method));
        } else if (l->method == LINK_GROUP && prev_sent >= 0) {
            snprintf(l->rule, sizeof l->rule, "group.continuation");
            l->continues = prev_sent;
        }
        break;
    case LINK_FINDING:
        if (ev.kind == EV_FINDING) {
            const DocFinding *f = &d->find[ev.k];
            if (f->term) {
                l->term = f->term;
                l->start = f->start;
                l->end = f->end;
            }
            snprintf(l->rule, sizeof l->rule, "finding:%s", o->find[f->task].id);
        }
        break;
    case LINK_CONTINUATION:
        snprintf(l->rule, sizeof l->rule, weak_cont ? "continuation.weak" : "continuation");
        l->continues = prev_sent;
        break;
    case LINK_AUDIT:
        snprintf(l->rule, sizeof l->rule, "audit");
        break;
    case LINK_NONE:
    case LINK_NMETHODS: {
        const DocSentence *st = &d->sent[l->sent];
        const char *cue = NULL, *at;
        size_t len = 0;
        if ((at = technique_cue(cues, st->text, &cue, &len)) != NULL)
            snprintf(l->rule, sizeof l->rule, "none.technique");
        else if ((at = stop_cue(cues, st->text, &cue, &len)) != NULL)
            snprintf(l->rule, sizeof l->rule, "none.stop");
        else
            snprintf(l->rule, sizeof l->rule, "none.no_evidence");
        if (at) {
            l->term = cue;
            l->start = st->start + (at - st->text);
            l->end = l->start + (int64_t)len;
        }
        break;
    }
    }
    if (!l->rule[0])
        snprintf(l->rule, sizeof l->rule, "%s", link_method_name(l->method));
}

int links_build(const Ontology *o, const AlignDoc *d, const unsigned char *covered,
                const LinkCues *cues, LinkSet *out, FvErr *e)
{
    int na = o->n_anat;
    if (na <= 0 || d->n_sent <= 0)
        return 0;
    /* Per anatomy: the best method found for the current sentence
     * (LINK_NONE when none), and the previous sentence's effective links. */
    unsigned char *cand = malloc((size_t)na);
    unsigned char *prev = malloc((size_t)na);
    unsigned char *rejected = malloc((size_t)na);
    unsigned char *found = malloc((size_t)na); /* a finding of the anatomy in this sentence */
    Evidence *ev = malloc((size_t)na * sizeof *ev);
    int ng = o->n_groups > 0 ? o->n_groups : 1;
    int *group_hit = malloc((size_t)ng * sizeof *group_hit);  /* the group's mention, -1 */
    if (!cand || !prev || !rejected || !found || !ev || !group_hit) {
        free(cand);
        free(prev);
        free(rejected);
        free(found);
        free(ev);
        free(group_hit);
        return err_set(e, FV_ENOMEM, "links: out of memory");
    }
    memset(prev, LINK_NONE, (size_t)na);
    int rc = 0, prev_section = -1, prev_any = 0;
    for (int s = 0; s < d->n_sent && rc == 0; s++) {
        memset(cand, LINK_NONE, (size_t)na);
        memset(found, 0, (size_t)na);
        memset(ev, 0, (size_t)na * sizeof *ev);
        for (int g = 0; g < ng; g++)
            group_hit[g] = -1;
        int n_groups = 0;
        /* A sentence whose only findings are of the whole body (medical
         * material: "the port chamber is observed in the right hemithorax",
         * "a catheter extending to the right atrium") names anatomies as the
         * place of the device: they are weak. */
        int n_body = 0, n_other = 0;
        for (int k = 0; k < d->n_find; k++)
            if (d->find[k].sent == s && d->find[k].anatomy >= 0 && d->find[k].anatomy < na) {
                if (is_whole_region(&o->anat[d->find[k].anatomy]))
                    n_body += links_cues_device(cues, d->find[k].term);
                else
                    n_other++;
            }
        int device = n_body > 0 && n_other == 0;
        /* Weak mentions (generic terms, causes, landmarks, a device's place)
         * count only when nothing else is named. */
        int named = 0, weak = 0;
        for (int k = 0; k < d->n_men && !named; k++)
            named = d->men[k].sent == s && !device &&
                    (d->men[k].anatomy >= 0 ? !d->men[k].generic : d->men[k].group >= 0);
        for (int k = 0; k < d->n_men && !weak; k++)
            weak = d->men[k].sent == s && d->men[k].anatomy >= 0 && (d->men[k].generic || device);
        for (int k = 0; k < d->n_men; k++) {
            const DocMention *m = &d->men[k];
            if (m->sent != s || ((m->generic || device) && (named || device)))
                continue;
            if (m->anatomy >= 0 && m->anatomy < na) {
                if (cand[m->anatomy] != LINK_MENTION)
                    ev[m->anatomy] = (Evidence){EV_MENTION, k};
                cand[m->anatomy] = LINK_MENTION;
            } else if (m->group >= 0 && m->group < o->n_groups && group_hit[m->group] < 0) {
                group_hit[m->group] = k;
                n_groups++;
            }
        }
        for (int k = 0; k < d->n_find; k++) {
            const DocFinding *f = &d->find[k];
            if (f->sent != s || f->anatomy < 0 || f->anatomy >= na || found[f->anatomy])
                continue;
            /* "Upper abdominal organs are normal" makes parse state every
             * task of every member absent: that is the group statement
             * speaking, so it reaches the members the group reaches. */
            int from_group = 0;
            for (int g = 0; g < o->n_groups && f->polarity == 0 && !from_group; g++)
                from_group = group_hit[g] >= 0 && onto_in_group(o, f->anatomy, g);
            if (!from_group) {
                found[f->anatomy] = 1;
                if (cand[f->anatomy] > LINK_FINDING) {
                    cand[f->anatomy] = LINK_FINDING;
                    ev[f->anatomy] = (Evidence){EV_FINDING, k};
                }
            }
        }
        /* A whole-body *mention* yields to anything more specific; a
         * finding of the whole body ("a pacemaker", medical material) is
         * the sentence's own evidence and stays. */
        int specific = n_groups > 0;
        for (int a = 0; a < na && !specific; a++)
            specific = cand[a] != LINK_NONE && !is_whole_region(&o->anat[a]);
        if (specific)
            for (int a = 0; a < na; a++)
                if (is_whole_region(&o->anat[a]) && cand[a] == LINK_MENTION) {
                    cand[a] = LINK_NONE;
                    ev[a].kind = EV_NONE;
                    /* its first finding, when it has one */
                    for (int k = 0; k < d->n_find && found[a] && cand[a] == LINK_NONE; k++)
                        if (d->find[k].sent == s && d->find[k].anatomy == a) {
                            cand[a] = LINK_FINDING;
                            ev[a] = (Evidence){EV_FINDING, k};
                        }
                }
        for (int g = 0; g < o->n_groups && n_groups; g++) {
            if (group_hit[g] < 0)
                continue;
            for (int a = 0; a < na; a++) {
                int reach = covered ? covered[a] : o->anat[a].main;
                if (reach && cand[a] > LINK_GROUP && onto_in_group(o, a, g)) {
                    cand[a] = LINK_GROUP;
                    ev[a] = (Evidence){EV_GROUP, group_hit[g]};
                }
            }
        }
        /* Before the first heading (the examination's title, the clinical
         * question): a region word in a sentence that states no finding
         * ("胸部平扫CT", "胸痛", "CT of the chest") names the examination or
         * a symptom, not the state of every organ of the region. */
        if (n_groups && d->sent[s].section == SECTION_OTHER) {
            int stated = 0;
            for (int k = 0; k < d->n_find && !stated; k++)
                stated = d->find[k].sent == s;
            for (int a = 0; a < na && !stated; a++)
                if (cand[a] == LINK_GROUP) {
                    cand[a] = LINK_NONE;
                    ev[a].kind = EV_NONE;
                }
        }
        int any = 0, n_found = 0;
        for (int a = 0; a < na && !any; a++)
            any = cand[a] != LINK_NONE;
        for (int a = 0; a < na; a++)
            n_found += found[a];
        /* Only weak mentions: the context, when there is one, says more. */
        int weak_only = any && weak && !named && !n_groups && !n_found;
        /* A remark on the examination that states no finding is about no
         * anatomy ("When examined in the lung parenchyma window;"). */
        int n_stated = 0;
        for (int k = 0; k < d->n_find && !n_stated; k++)
            n_stated = d->find[k].sent == s;
        if (!n_stated && links_cues_technique(cues, d->sent[s].text)) {
            memset(cand, LINK_NONE, (size_t)na);
            any = 0;
        }
        /* A continuation is as strong as what it continues: a sentence
         * after a group statement stays a group statement. */
        int continued = 0;
        if ((!any || weak_only) && prev_any && (int)d->sent[s].section == prev_section &&
            !links_cues_stop(cues, d->sent[s].text) &&
            (d->sent[s].section != SECTION_IMPRESSION || !cues || !cues->n_ana_en ||
             links_cues_anaphor(cues, d->sent[s].text))) {
            if (weak_only)
                memset(cand, LINK_NONE, (size_t)na);
            for (int a = 0; a < na; a++)
                if (prev[a] != LINK_NONE) {
                    cand[a] = prev[a] == LINK_GROUP ? LINK_GROUP : LINK_CONTINUATION;
                    ev[a].kind = EV_NONE;
                }
            continued = 1;
        }

        /* Annotators: a rejection marks the computed link; an acceptance of a
         * link the rules did not find adds it. */
        memset(rejected, 0, (size_t)na);
        for (int k = 0; k < d->n_ovr; k++) {
            const DocOverride *v = &d->ovr[k];
            if (v->sent != s || v->anatomy < 0 || v->anatomy >= na)
                continue;
            if (!v->accept)
                rejected[v->anatomy] = 1;
            else if (cand[v->anatomy] == LINK_NONE)
                cand[v->anatomy] = LINK_AUDIT;
        }
        int n_effective = 0;
        for (int a = 0; a < na && rc == 0; a++) {
            if (cand[a] == LINK_NONE)
                continue;
            Link l = {s, a, (LinkMethod)cand[a], 0.0, cand[a] != LINK_AUDIT,
                      rejected[a] && cand[a] != LINK_AUDIT, NULL, -1, -1, "", -1};
            link_explain(d, cues, o, &l, ev[a], continued && weak_only, continued ? s - 1 : -1);
            l.confidence = links_confidence(cues, l.method, l.rule);
            rc = set_push(out, l, e);
            n_effective += !l.rejected;
        }
        if (rc == 0 && n_effective == 0) {
            Link l = {s, -1, LINK_NONE, 0.0, 1, 0, NULL, -1, -1, "", -1};
            link_explain(d, cues, o, &l, (Evidence){EV_NONE, 0}, 0, -1);
            if (any && !strcmp(l.rule, "none.no_evidence"))
                snprintf(l.rule, sizeof l.rule, "none.rejected");
            l.confidence = links_confidence(cues, l.method, l.rule);
            rc = set_push(out, l, e);
        }
        /* This sentence's effective links are the context of the next one. */
        for (int a = 0; a < na; a++)
            prev[a] = rejected[a] ? LINK_NONE : cand[a];
        prev_any = n_effective > 0;
        prev_section = (int)d->sent[s].section;
    }
    free(cand);
    free(prev);
    free(rejected);
    free(found);
    free(ev);
    free(group_hit);
    return rc;
}
