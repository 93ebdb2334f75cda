#include "phrases.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "schemas.h"
#include "tsv.h"

/* ------------------------------------------------------------------------ */
/* Loading and checking                                                       */
/* ------------------------------------------------------------------------ */

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static void row_free(PhraseRow *r)
{
    free(r->prefix);
    for (int i = 0; i < r->nitems; i++)
        free(r->items[i]);
    free(r->items);
    free(r->text);
}

void phrases_free(Phrases **p)
{
    if (!*p)
        return;
    for (int i = 0; i < (*p)->n; i++)
        row_free(&(*p)->row[i]);
    free((*p)->row);
    free(*p);
    *p = NULL;
}

/* Case-insensitive (ASCII) substring test; UTF-8 bytes compare as is. */
static int contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    if (!n)
        return 0;
    for (const char *h = hay; *h; h++) {
        size_t i = 0;
        while (i < n && h[i] && tolower((unsigned char)h[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return 1;
    }
    return 0;
}

static int term_known(const char *term, const char *name, const StrList *syn)
{
    if (contains_ci(term, name))
        return 1;
    for (int i = 0; i < syn->n; i++)
        if (contains_ci(term, syn->s[i]))
            return 1;
    return 0;
}

/* Every form of every alternative must contain a vocabulary word. */
static int check_terms(const char *text, int lang, const char *name_en, const char *name_zh,
                       const StrList *en, const StrList *zh, char *bad, size_t nbad)
{
    const char *p = text;
    while (*p) {
        const char *end = strchr(p, '|');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char alt[256];
        snprintf(alt, sizeof alt, "%.*s", (int)n, p);
        char *slash = strchr(alt, '/');
        char *forms[2] = {alt, NULL};
        if (slash) {
            *slash = 0;
            forms[1] = slash + 1;
        }
        for (int k = 0; k < 2 && forms[k]; k++) {
            int ok = lang == LANG_EN ? term_known(forms[k], name_en, en)
                                     : term_known(forms[k], name_zh, zh);
            if (!ok) {
                snprintf(bad, nbad, "%s", forms[k]);
                return -1;
            }
        }
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

int phrases_parse(Phrases **out, const Ontology *o, const char *text, size_t len,
                  const char *name, FvErr *e)
{
    *out = NULL;
    Phrases *ph = calloc(1, sizeof *ph);
    if (!ph)
        return err_set(e, FV_ENOMEM, "%s: out of memory", name);
    TsvReader r;
    if (tsv_open(&r, text, len, name, e)) {
        free(ph);
        return -1;
    }
    static const char *const cols[] = {"key", "lang", "text", NULL};
    int col[3] = {0}, cap = 0, got;
    if (tsv_cols(&r, cols, col, e))
        goto fail;
    int ck = col[0], cl = col[1], ct = col[2];
    while ((got = tsv_next(&r, e)) == 1) {
        const char *key = r.fields[ck], *lg = r.fields[cl], *tx = r.fields[ct];
        int lang = !strcmp(lg, "zh") ? LANG_ZH : !strcmp(lg, "en") ? LANG_EN : -1;
        if (lang < 0) {
            err_set(e, FV_EFORMAT, "%s:%d: lang '%s' is not zh or en", name, r.line, lg);
            goto fail;
        }
        if (!*tx) {
            err_set(e, FV_EFORMAT, "%s:%d: empty text", name, r.line);
            goto fail;
        }
        if (arr_reserve(&ph->row, &cap, ph->n, sizeof *ph->row, 256)) {
            err_set(e, FV_ENOMEM, "%s: out of memory", name);
            goto fail;
        }
        PhraseRow *pr = &ph->row[ph->n];
        memset(pr, 0, sizeof *pr);
        pr->lang = lang;
        const char *colon = strchr(key, ':');
        pr->prefix = colon ? dupn(key, (size_t)(colon - key)) : dupn(key, strlen(key));
        pr->text = dupn(tx, strlen(tx));
        if (!pr->prefix || !pr->text) {
            row_free(pr);
            err_set(e, FV_ENOMEM, "%s: out of memory", name);
            goto fail;
        }
        ph->n++;
        if (colon) {
            const char *p = colon + 1;
            for (;;) {
                const char *c = strchr(p, ',');
                size_t n = c ? (size_t)(c - p) : strlen(p);
                char **ni = realloc(pr->items, sizeof(char *) * (size_t)(pr->nitems + 1));
                if (!ni) {
                    err_set(e, FV_ENOMEM, "%s: out of memory", name);
                    goto fail;
                }
                pr->items = ni;
                if (!(pr->items[pr->nitems] = dupn(p, n))) {
                    err_set(e, FV_ENOMEM, "%s: out of memory", name);
                    goto fail;
                }
                pr->nitems++;
                if (!c)
                    break;
                p = c + 1;
            }
        }
        /* vocabulary checks */
        char bad[256];
        if (!strcmp(pr->prefix, "term")) {
            if (pr->nitems != 1) {
                err_set(e, FV_EFORMAT, "%s:%d: a term: row names one task", name, r.line);
                goto fail;
            }
            char task[96];
            snprintf(task, sizeof task, "%s", pr->items[0]);
            char *sub = strchr(task, ':'); /* term:medical_material:pacemaker */
            if (sub)
                *sub = 0;
            int f = onto_finding(o, task);
            if (f < 0) {
                err_set(e, FV_EFORMAT, "%s:%d: unknown task '%s'", name, r.line, task);
                goto fail;
            }
            const Finding *fd = &o->find[f];
            if (check_terms(pr->text, lang, fd->en, fd->zh, &fd->en_syn, &fd->zh_syn, bad,
                            sizeof bad)) {
                err_set(e, FV_EFORMAT, "%s:%d: term '%s' contains no name or synonym of task '%s' "
                        "in findings.tsv", name, r.line, bad, task);
                goto fail;
            }
        } else if (!strcmp(pr->prefix, "anat")) {
            int a = pr->nitems == 1 ? onto_anatomy(o, pr->items[0]) : -1;
            if (a < 0) {
                err_set(e, FV_EFORMAT, "%s:%d: an anat: row names one anatomy of anatomy.tsv",
                        name, r.line);
                goto fail;
            }
            const Anatomy *an = &o->anat[a];
            if (check_terms(pr->text, lang, an->en, an->zh, &an->en_syn, &an->zh_syn, bad,
                            sizeof bad)) {
                err_set(e, FV_EFORMAT, "%s:%d: anatomy term '%s' contains no name or synonym of "
                        "'%s' in anatomy.tsv", name, r.line, bad, an->id);
                goto fail;
            }
        } else if (!strcmp(pr->prefix, "normal") || !strcmp(pr->prefix, "normal_group")) {
            int grp = pr->prefix[6] == '_';
            for (int i = 0; i < pr->nitems; i++)
                if ((grp ? onto_group(o, pr->items[i]) : onto_anatomy(o, pr->items[i])) < 0) {
                    err_set(e, FV_EFORMAT, "%s:%d: unknown %s '%s'", name, r.line,
                            grp ? "group" : "anatomy", pr->items[i]);
                    goto fail;
                }
        } else if (!strcmp(pr->prefix, "find") || !strcmp(pr->prefix, "imp") ||
                   !strcmp(pr->prefix, "neg") || !strcmp(pr->prefix, "ufind") ||
                   !strcmp(pr->prefix, "uimp") || !strcmp(pr->prefix, "cmp")) {
            for (int i = 0; i < pr->nitems; i++) {
                char item[128];
                snprintf(item, sizeof item, "%s", pr->items[i]);
                char *s = item, *plus;
                do {
                    plus = strchr(s, '+');
                    if (plus)
                        *plus = 0;
                    if (strcmp(s, "*") && onto_finding(o, s) < 0) {
                        err_set(e, FV_EFORMAT, "%s:%d: unknown task '%s'", name, r.line, s);
                        goto fail;
                    }
                    s = plus + 1;
                } while (plus);
            }
        }
    }
    if (got < 0)
        goto fail;
    tsv_close(&r);
    *out = ph;
    return 0;
fail:
    tsv_close(&r);
    phrases_free(&ph);
    return -1;
}

int phrases_load(Phrases **out, const Ontology *o, FvErr *e)
{
    char *text;
    size_t len;
    if (schema_load("synth_phrases.tsv", &text, &len, e))
        return -1;
    int rc = phrases_parse(out, o, text, len, "synth_phrases.tsv", e);
    free(text);
    return rc;
}

static int row_matches(const PhraseRow *r, const char *prefix, const char *item, int lang)
{
    if (r->lang != lang || strcmp(r->prefix, prefix))
        return 0;
    if (!item)
        return r->nitems == 0;
    for (int i = 0; i < r->nitems; i++)
        if (!strcmp(r->items[i], item))
            return 1;
    return 0;
}

int phrase_count(const Phrases *p, const char *prefix, const char *item, int lang)
{
    int n = 0;
    for (int i = 0; i < p->n; i++)
        n += row_matches(&p->row[i], prefix, item, lang);
    return n;
}

const char *phrase_nth(const Phrases *p, const char *prefix, const char *item, int lang, int k)
{
    for (int i = 0; i < p->n && k >= 0; i++)
        if (row_matches(&p->row[i], prefix, item, lang) && k-- == 0)
            return p->row[i].text;
    return NULL;
}

const char *phrase_pick(const Phrases *p, const char *prefix, const char *item, int lang,
                        int fallback, Rng *r)
{
    int n = phrase_count(p, prefix, item, lang);
    const char *it = item;
    if (!n && fallback) {
        it = "*";
        n = phrase_count(p, prefix, it, lang);
    }
    if (!n)
        return NULL;
    int k = (int)rng_below(r, (uint64_t)n);
    for (int i = 0; i < p->n; i++)
        if (row_matches(&p->row[i], prefix, it, lang) && k-- == 0)
            return p->row[i].text;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Expansion                                                                  */
/* ------------------------------------------------------------------------ */

/* End of the brace group that starts at s ('{'), or NULL when unbalanced. */
static const char *group_end(const char *s, const char *end)
{
    int depth = 0;
    for (const char *p = s; p < end; p++) {
        if (*p == '{')
            depth++;
        else if (*p == '}' && --depth == 0)
            return p;
    }
    return NULL;
}

/* Picks one '|' alternative of [s, end) at depth 0 (relative). */
static void pick_alt(const char *s, const char *end, Rng *r, const char **as, const char **ae)
{
    const char *starts[64], *ends[64];
    int n = 0, depth = 0;
    starts[0] = s;
    for (const char *p = s; p < end; p++) {
        if (*p == '{')
            depth++;
        else if (*p == '}')
            depth--;
        else if (*p == '|' && depth == 0 && n < 63) {
            ends[n++] = p;
            starts[n] = p + 1;
        }
    }
    ends[n++] = end;
    int k = (int)rng_below(r, (uint64_t)n);
    *as = starts[k];
    *ae = ends[k];
}

static void expand_range(Buf *out, const char *s, const char *end, const PhraseVar *vars,
                         int nvars, Rng *r, int depth)
{
    for (const char *p = s; p < end;) {
        if (*p == '{' && depth < 8) {
            const char *ge = group_end(p, end);
            if (!ge) {
                buf_putc(out, *p++);
                continue;
            }
            const char *as, *ae;
            pick_alt(p + 1, ge, r, &as, &ae);
            expand_range(out, as, ae, vars, nvars, r, depth + 1);
            p = ge + 1;
        } else if (*p == '\\' && p + 1 < end && p[1] == 'n') {
            buf_putc(out, '\n');
            p += 2;
        } else if (*p == '$' && p + 1 < end && isupper((unsigned char)p[1])) {
            const char *q = p + 1;
            while (q < end && (isupper((unsigned char)*q) || isdigit((unsigned char)*q)))
                q++;
            size_t n = (size_t)(q - p - 1);
            for (int i = 0; i < nvars; i++)
                if (strlen(vars[i].name) == n && !strncmp(vars[i].name, p + 1, n)) {
                    if (vars[i].value)
                        buf_puts(out, vars[i].value);
                    break;
                }
            p = q;
        } else
            buf_putc(out, *p++);
    }
}

void phrase_expand(Buf *out, const char *tmpl, const PhraseVar *vars, int nvars, Rng *r)
{
    const char *end = tmpl + strlen(tmpl), *as, *ae;
    pick_alt(tmpl, end, r, &as, &ae); /* top-level '|' alternatives */
    expand_range(out, as, ae, vars, nvars, r, 0);
}

void phrase_term(Buf *out, const char *text, int plural, Rng *r)
{
    const char *as, *ae;
    pick_alt(text, text + strlen(text), r, &as, &ae);
    const char *slash = memchr(as, '/', (size_t)(ae - as));
    if (!slash)
        buf_append(out, as, (size_t)(ae - as));
    else if (plural)
        buf_append(out, slash + 1, (size_t)(ae - slash - 1));
    else
        buf_append(out, as, (size_t)(slash - as));
}
