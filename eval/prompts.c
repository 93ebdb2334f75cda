#include "prompts.h"

#include <stdlib.h>
#include <string.h>

#include "schemas.h"
#include "tsv.h"

static const char *style_names[PROMPT_NSTYLES] = {"fvlm", "ctclip", "normal"};
static const char *lang_names[PROMPT_LANG_N] = {"en", "zh"};

int prompt_style_parse(const char *s)
{
    for (int i = 0; i < PROMPT_NSTYLES; i++)
        if (s && strcmp(s, style_names[i]) == 0)
            return i;
    return -1;
}

const char *prompt_style_name(PromptStyle s)
{
    return s >= 0 && s < PROMPT_NSTYLES ? style_names[s] : "?";
}

int prompt_lang_parse(const char *s)
{
    for (int i = 0; i < PROMPT_LANG_N; i++)
        if (s && strcmp(s, lang_names[i]) == 0)
            return i;
    return -1;
}

static PromptPair *slot(const Prompts *p, int task, int lang, int style)
{
    return &p->pair[((size_t)task * PROMPT_LANG_N + (size_t)lang) * PROMPT_NSTYLES + (size_t)style];
}

const PromptPair *prompts_get(const Prompts *p, int task, PromptLang lang, PromptStyle style)
{
    if (task < 0 || task >= p->n_find || lang < 0 || lang >= PROMPT_LANG_N || style < 0 ||
        style >= PROMPT_NSTYLES)
        return NULL;
    const PromptPair *pp = slot(p, task, lang, style);
    return pp->neg ? pp : NULL;
}

void prompts_free(Prompts **pp)
{
    Prompts *p = *pp;
    if (!p)
        return;
    size_t n = (size_t)p->n_find * PROMPT_LANG_N * PROMPT_NSTYLES;
    for (size_t i = 0; i < n; i++) {
        free(p->pair[i].neg);
        free(p->pair[i].pos);
    }
    free(p->pair);
    free(p);
    *pp = NULL;
}

int prompts_parse(Prompts **out, const Ontology *o, const char *text, const char *name, FvErr *e)
{
    *out = NULL;
    Prompts *p = calloc(1, sizeof *p);
    if (!p)
        return err_set(e, FV_ENOMEM, "%s: out of memory", name);
    p->n_find = o->n_find;
    p->pair = calloc((size_t)(o->n_find ? o->n_find : 1) * PROMPT_LANG_N * PROMPT_NSTYLES,
                     sizeof *p->pair);
    if (!p->pair) {
        free(p);
        return err_set(e, FV_ENOMEM, "%s: out of memory", name);
    }
    TsvReader r;
    if (tsv_open(&r, text, strlen(text), name, e)) {
        prompts_free(&p);
        return -1;
    }
    static const char *const cols[] = {"task", "lang", "style", "negative", "positive", NULL};
    int c[5] = {0};
    int rc = -1;
    if (tsv_cols(&r, cols, c, e))
        goto out;
    int ct = c[0], cl = c[1], cs = c[2], cn = c[3], cp = c[4];
    int got;
    while ((got = tsv_next(&r, e)) == 1) {
        const char *task = r.fields[ct], *lang = r.fields[cl], *style = r.fields[cs];
        const char *neg = r.fields[cn], *pos = r.fields[cp];
        int t = onto_finding(o, task), l = prompt_lang_parse(lang), s = prompt_style_parse(style);
        if (t < 0) {
            err_set(e, FV_EFORMAT, "%s:%d: task '%s' is not in findings.tsv", name, r.line, task);
            goto out;
        }
        if (l < 0) {
            err_set(e, FV_EFORMAT, "%s:%d: language '%s' is not zh or en", name, r.line, lang);
            goto out;
        }
        if (s < 0 || s == PROMPT_NORMAL) {
            err_set(e, FV_EFORMAT, "%s:%d: style '%s' is not fvlm or ctclip%s", name, r.line, style,
                    s == PROMPT_NORMAL ? " (normal prompts are made from the ontology)" : "");
            goto out;
        }
        if (!*neg || !*pos || strcmp(neg, pos) == 0) {
            err_set(e, FV_EFORMAT, "%s:%d: task '%s': the two prompts must be non-empty and differ",
                    name, r.line, task);
            goto out;
        }
        PromptPair *pp = slot(p, t, l, s);
        if (pp->neg) {
            err_set(e, FV_EFORMAT, "%s:%d: a second row for task '%s' %s %s", name, r.line, task,
                    lang, style);
            goto out;
        }
        pp->neg = strdup(neg);
        pp->pos = strdup(pos);
        if (!pp->neg || !pp->pos) {
            err_set(e, FV_ENOMEM, "%s: out of memory", name);
            goto out;
        }
    }
    if (got < 0)
        goto out;
    for (int t = 0; t < o->n_find; t++)
        for (int l = 0; l < PROMPT_LANG_N; l++)
            for (int s = 0; s < PROMPT_NORMAL; s++)
                if (!slot(p, t, l, s)->neg) {
                    err_set(e, FV_EFORMAT, "%s: task '%s' has no %s prompts in style %s", name,
                            o->find[t].id, lang_names[l], style_names[s]);
                    goto out;
                }
    /* normal: the anatomy's normal sentence against fVLM's positive */
    for (int t = 0; t < o->n_find; t++)
        for (int l = 0; l < PROMPT_LANG_N; l++) {
            Buf b = {0};
            onto_normal_text(o, o->find[t].anatomy, l == PROMPT_LANG_ZH, &b);
            PromptPair *pp = slot(p, t, l, PROMPT_NORMAL);
            pp->neg = b.failed ? NULL : buf_steal(&b);
            buf_free(&b);
            pp->pos = strdup(slot(p, t, l, PROMPT_FVLM)->pos);
            if (!pp->neg || !pp->pos) {
                err_set(e, FV_ENOMEM, "%s: out of memory", name);
                goto out;
            }
        }
    rc = 0;
out:
    tsv_close(&r);
    if (rc)
        prompts_free(&p);
    *out = p;
    return rc;
}

int prompts_load(Prompts **out, const Ontology *o, FvErr *e)
{
    char *text;
    size_t len;
    *out = NULL;
    if (schema_load("prompts.tsv", &text, &len, e))
        return -1;
    int rc = prompts_parse(out, o, text, "prompts.tsv", e);
    free(text);
    return rc;
}
