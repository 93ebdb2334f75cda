#include "lexicon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "normalize.h"
#include "schemas.h"
#include "tsv.h"

/* ------------------------------------------------------------------------ */
/* Term table: (layer, term) -> entry, open addressing.                     */
/* ------------------------------------------------------------------------ */

typedef struct TermHash {
    int *slot;      /* entry index + 1; 0 = empty */
    size_t cap;     /* power of two */
} TermHash;

static uint64_t term_hash(int layer, const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)layer;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static int hash_grow(TermHash *h, const Lexicon *l)
{
    size_t cap = h->cap ? h->cap * 2 : 1024;
    int *slot = calloc(cap, sizeof *slot);
    if (!slot)
        return -1;
    for (int i = 0; i < l->n; i++) {
        const LexEntry *x = &l->e[i];
        size_t k = term_hash(x->layer, x->term, x->len) & (cap - 1);
        while (slot[k])
            k = (k + 1) & (cap - 1);
        slot[k] = i + 1;
    }
    free(h->slot);
    h->slot = slot;
    h->cap = cap;
    return 0;
}

/* Index of the entry with this layer and term, or -1. */
static int hash_find(const TermHash *h, const Lexicon *l, int layer, const char *s, size_t n)
{
    if (!h->cap)
        return -1;
    size_t k = term_hash(layer, s, n) & (h->cap - 1);
    while (h->slot[k]) {
        const LexEntry *x = &l->e[h->slot[k] - 1];
        if (x->layer == layer && x->len == n && memcmp(x->term, s, n) == 0)
            return h->slot[k] - 1;
        k = (k + 1) & (h->cap - 1);
    }
    return -1;
}

static int is_alnum_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z');
}

static void entry_clear(LexEntry *x)
{
    free(x->term);
    free(x->rule);
}

/* Adds (or, when replace is set, replaces) a term. `raw` is normalised here.
 * Returns the entry index, or -1 on error. */
static int lex_add(Lexicon *l, const char *raw, const LexEntry *tmpl, const char *rule, int replace,
                   FvErr *e)
{
    TermHash *h = l->hash;
    char *t = norm_string(raw, strlen(raw));
    if (!t)
        return err_set(e, FV_ENOMEM, "lexicon: out of memory");
    size_t n = strlen(t);
    if (n == 0 || n > 1000) {
        free(t);
        return err_set(e, FV_EFORMAT, "lexicon term '%s' is empty or longer than 1000 bytes", raw);
    }
    int at = hash_find(h, l, tmpl->layer, t, n);
    int is_new = at < 0;
    if (at >= 0) {
        if (!replace) {
            free(t);
            return at;
        }
        entry_clear(&l->e[at]);
    } else {
        if (arr_reserve(&l->e, &l->cap, l->n, sizeof *l->e, 512)) {
            free(t);
            return err_set(e, FV_ENOMEM, "lexicon: out of memory");
        }
        if ((size_t)(l->n + 1) * 2 > h->cap && hash_grow(h, l)) {
            free(t);
            return err_set(e, FV_ENOMEM, "lexicon: out of memory");
        }
        at = l->n++;
    }
    LexEntry *x = &l->e[at];
    *x = *tmpl;
    x->term = t;
    x->len = (uint32_t)n;
    x->bound_l = (uint8_t)is_alnum_byte((unsigned char)t[0]);
    x->bound_r = (uint8_t)is_alnum_byte((unsigned char)t[n - 1]);
    x->rule = strdup(rule);
    if (!x->rule)
        return err_set(e, FV_ENOMEM, "lexicon: out of memory");
    if (is_new) {
        size_t k = term_hash(x->layer, t, n) & (h->cap - 1);
        while (h->slot[k])
            k = (k + 1) & (h->cap - 1);
        h->slot[k] = at + 1;
    }
    return at;
}

/* English plurals: "nodule" also matches "nodules", "opacity" "opacities".
 * Added only where no entry of that spelling exists. */
static int add_with_plural(Lexicon *l, const char *raw, const LexEntry *tmpl, const char *rule,
                           int replace, int english, FvErr *e)
{
    if (lex_add(l, raw, tmpl, rule, replace, e) < 0)
        return -1;
    size_t n = strlen(raw);
    if (!english || n < 3 || n > 900)
        return 0;
    char c = raw[n - 1];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) || c == 's' || c == 'S')
        return 0;
    char buf[1024];
    if ((c == 'y' || c == 'Y') && !strchr("aeiou", raw[n - 2]))
        snprintf(buf, sizeof buf, "%.*sies", (int)(n - 1), raw);
    else
        snprintf(buf, sizeof buf, "%ss", raw);
    return lex_add(l, buf, tmpl, rule, 0, e) < 0 ? -1 : 0;
}

static int has_cjk(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0xE0)
            return 1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Ontology terms.                                                          */
/* ------------------------------------------------------------------------ */

static int add_list(Lexicon *l, const StrList *sl, const LexEntry *tmpl, const char *rule, FvErr *e)
{
    for (int i = 0; i < sl->n; i++)
        if (add_with_plural(l, sl->s[i], tmpl, rule, 1, !has_cjk(sl->s[i]), e))
            return -1;
    return 0;
}

static int add_ontology(Lexicon *l, FvErr *e)
{
    const Ontology *o = l->onto;
    char rule[160];
    for (int a = 0; a < o->n_anat; a++) {
        const Anatomy *x = &o->anat[a];
        LexEntry t = {.layer = LEX_LAYER_ANAT, .kind = LK_ANATOMY, .target = a};
        snprintf(rule, sizeof rule, "anatomy:%s", x->id);
        if (add_with_plural(l, x->en, &t, rule, 1, 1, e) || lex_add(l, x->zh, &t, rule, 1, e) < 0 ||
            add_list(l, &x->en_syn, &t, rule, e) || add_list(l, &x->zh_syn, &t, rule, e))
            return -1;
    }
    for (int g = 0; g < o->n_groups; g++) {
        const AnatomyGroup *x = &o->groups[g];
        LexEntry t = {.layer = LEX_LAYER_ANAT, .kind = LK_GROUP, .target = g};
        snprintf(rule, sizeof rule, "group:%s", x->id);
        if (add_with_plural(l, x->en, &t, rule, 1, 1, e) || lex_add(l, x->zh, &t, rule, 1, e) < 0 ||
            add_list(l, &x->en_syn, &t, rule, e) || add_list(l, &x->zh_syn, &t, rule, e))
            return -1;
    }
    for (int f = 0; f < o->n_find; f++) {
        const Finding *x = &o->find[f];
        LexEntry t = {.layer = LEX_LAYER_FIND, .kind = LK_TASK, .ntasks = 1, .tasks = {(int16_t)f},
                      .target = -1};
        snprintf(rule, sizeof rule, "task:%s", x->id);
        if (add_with_plural(l, x->en, &t, rule, 1, 1, e) || lex_add(l, x->zh, &t, rule, 1, e) < 0 ||
            add_list(l, &x->en_syn, &t, rule, e) || add_list(l, &x->zh_syn, &t, rule, e))
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The parser's own files.                                                  */
/* ------------------------------------------------------------------------ */

static int generic_index(Lexicon *l, const char *name, int create, FvErr *e)
{
    for (int i = 0; i < l->n_generic; i++)
        if (strcmp(l->generic[i], name) == 0)
            return i;
    if (!create)
        return -1;
    char **g = realloc(l->generic, (size_t)(l->n_generic + 1) * sizeof *g);
    if (!g)
        return err_set(e, FV_ENOMEM, "lexicon: out of memory");
    l->generic = g;
    if (!(g[l->n_generic] = strdup(name)))
        return err_set(e, FV_ENOMEM, "lexicon: out of memory");
    return l->n_generic++;
}

/* One row of a lexicon table; c[k] is the column of the k-th name that
 * load_table was given. Returns 0 or -1 (e names file and line). */
typedef int (*RowFn)(Lexicon *l, const TsvReader *r, const int *c, FvErr *e);

enum { TABLE_MAX_COLS = 8 }; /* more than the widest table names (4) */

/* Reads one of the parser's tables (NULL text: the table is absent, nothing
 * to read): finds the named columns (cols ends with NULL) and hands each row
 * to row; the first failure ends the reading. */
static int load_table(Lexicon *l, const char *text, const char *name, const char *const *cols,
                      RowFn row, FvErr *e)
{
    if (!text)
        return 0;
    TsvReader r;
    if (tsv_open(&r, text, strlen(text), name, e))
        return -1;
    int c[TABLE_MAX_COLS], rc = -1, got;
    if (tsv_cols(&r, cols, c, e))
        goto out;
    while ((got = tsv_next(&r, e)) == 1)
        if (row(l, &r, c, e))
            goto out;
    rc = got < 0 ? -1 : 0;
out:
    tsv_close(&r);
    return rc;
}

static int load_terms(Lexicon *l, const char *text, FvErr *e)
{
    if (!text)
        return 0;
    TsvReader r;
    const char *name = "parse_terms.tsv";
    if (tsv_open(&r, text, strlen(text), name, e))
        return -1;
    static const char *const cols[] = {"kind", "target", "lang", "term", NULL};
    int c[4] = {0}, rc = -1, got;
    if (tsv_cols(&r, cols, c, e))
        goto out;
    int ck = c[0], ct = c[1], cl = c[2], cterm = c[3];
    while ((got = tsv_next(&r, e)) == 1) {
        const char *kind = r.fields[ck], *target = r.fields[ct], *lang = r.fields[cl],
                   *term = r.fields[cterm];
        if (strcmp(lang, "en") && strcmp(lang, "zh")) {
            err_set(e, FV_EFORMAT, "%s:%d: lang '%s' is not en or zh", name, r.line, lang);
            goto out;
        }
        LexEntry t = {.target = -1};
        char rule[200];
        if (!strcmp(kind, "anatomy") || !strcmp(kind, "part")) {
            t.layer = LEX_LAYER_ANAT;
            t.kind = LK_ANATOMY;
            t.part = !strcmp(kind, "part");
            t.target = onto_anatomy(l->onto, target);
            snprintf(rule, sizeof rule, "anatomy:%s", target);
        } else if (!strcmp(kind, "other")) {
            t.layer = LEX_LAYER_ANAT;
            t.kind = LK_OTHER;
            t.target = 0;
            snprintf(rule, sizeof rule, "other:%s", target);
        } else if (!strcmp(kind, "group")) {
            t.layer = LEX_LAYER_ANAT;
            t.kind = LK_GROUP;
            t.target = onto_group(l->onto, target);
            snprintf(rule, sizeof rule, "group:%s", target);
        } else if (!strcmp(kind, "finding")) {
            t.layer = LEX_LAYER_FIND;
            t.kind = LK_TASK;
            char buf[256];
            snprintf(buf, sizeof buf, "%s", target);
            char *parts[LEX_MAX_TASKS + 1];
            int np = str_split(buf, '+', parts, LEX_MAX_TASKS + 1);
            if (np > LEX_MAX_TASKS) {
                err_set(e, FV_EFORMAT, "%s:%d: more than %d tasks in '%s'", name, r.line,
                        LEX_MAX_TASKS, target);
                goto out;
            }
            for (int i = 0; i < np; i++) {
                int f = onto_finding(l->onto, parts[i]);
                if (f < 0) {
                    err_set(e, FV_EFORMAT, "%s:%d: unknown task '%s'", name, r.line, parts[i]);
                    goto out;
                }
                t.tasks[t.ntasks++] = (int16_t)f;
            }
            t.target = 0;
            snprintf(rule, sizeof rule, "task:%s", target);
        } else if (!strcmp(kind, "generic")) {
            t.layer = LEX_LAYER_FIND;
            t.kind = LK_GENERIC;
            t.target = generic_index(l, target, 1, e);
            if (t.target < 0)
                goto out;
            snprintf(rule, sizeof rule, "generic:%s", target);
        } else {
            err_set(e, FV_EFORMAT,
                    "%s:%d: kind '%s' is not anatomy, part, other, group, finding or generic", name,
                    r.line, kind);
            goto out;
        }
        if (t.target < 0) {
            err_set(e, FV_EFORMAT, "%s:%d: unknown %s '%s'", name, r.line, kind, target);
            goto out;
        }
        if (add_with_plural(l, term, &t, rule, 1, !strcmp(lang, "en"), e)) {
            err_prefix(e, "%s:%d", name, r.line);
            goto out;
        }
    }
    rc = got < 0 ? -1 : 0;
out:
    tsv_close(&r);
    return rc;
}

/* parse_generic.tsv: generic, anatomy, task. */
static int generic_row(Lexicon *l, const TsvReader *r, const int *c, FvErr *e)
{
    const char *generic = r->fields[c[0]], *anatomy = r->fields[c[1]], *task_id = r->fields[c[2]];
    int g = generic_index(l, generic, 0, e);
    if (g < 0)
        return err_set(e, FV_EFORMAT, "%s:%d: generic '%s' has no term in parse_terms.tsv",
                       r->name, r->line, generic);
    int task = -1;
    if (strcmp(task_id, "-")) {
        task = onto_finding(l->onto, task_id);
        if (task < 0)
            return err_set(e, FV_EFORMAT, "%s:%d: unknown task '%s'", r->name, r->line, task_id);
    }
    if (!strcmp(anatomy, "*")) {
        l->generic_default[g] = (int16_t)task;
        return 0;
    }
    int a = onto_anatomy(l->onto, anatomy);
    if (a < 0)
        return err_set(e, FV_EFORMAT, "%s:%d: unknown anatomy '%s'", r->name, r->line, anatomy);
    l->generic_task[(size_t)g * (size_t)l->onto->n_anat + (size_t)a] = (int16_t)task;
    return 0;
}

static int load_generic(Lexicon *l, const char *text, FvErr *e)
{
    int na = l->onto->n_anat;
    size_t cells = (size_t)(l->n_generic ? l->n_generic : 1) * (size_t)na;
    l->generic_task = malloc(cells * sizeof *l->generic_task);
    l->generic_default = malloc((size_t)(l->n_generic ? l->n_generic : 1) * sizeof(int16_t));
    if (!l->generic_task || !l->generic_default)
        return err_set(e, FV_ENOMEM, "lexicon: out of memory");
    for (size_t i = 0; i < cells; i++)
        l->generic_task[i] = -2;
    for (int g = 0; g < l->n_generic; g++)
        l->generic_default[g] = -1;
    static const char *const cols[] = {"generic", "anatomy", "task", NULL};
    return load_table(l, text, "parse_generic.tsv", cols, generic_row, e);
}

/* parse_triggers.tsv: id, kind, dir, term. */
static int trigger_row(Lexicon *l, const TsvReader *r, const int *c, FvErr *e)
{
    static const struct { const char *name; int kind; } kinds[] = {
        {"neg", LK_NEG}, {"unc", LK_UNC}, {"unc_neg", LK_UNC_NEG}, {"pseudo", LK_PSEUDO},
        {"normal", LK_NORMAL}, {"term", LK_TERM}, {"affirm", LK_AFFIRM}, {"coord", LK_COORD}, {"cmp", LK_CMP},
        {"abnormal", LK_ABNORMAL}, {"conclude", LK_CONCLUDE},
    };
    LexEntry t = {.layer = LEX_LAYER_TRIG, .target = -1, .aspect = -1};
    int kind = -1;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        if (!strcmp(r->fields[c[1]], kinds[k].name))
            kind = kinds[k].kind;
    if (kind < 0)
        return err_set(e, FV_EFORMAT, "%s:%d: unknown trigger kind '%s'", r->name, r->line,
                       r->fields[c[1]]);
    t.kind = (uint8_t)kind;
    const char *d = r->fields[c[2]];
    if (!strcmp(d, "pre"))
        t.dir = DIR_PRE;
    else if (!strcmp(d, "post"))
        t.dir = DIR_POST;
    else if (!strcmp(d, "both") || !strcmp(d, "-"))
        t.dir = DIR_BOTH;
    else
        return err_set(e, FV_EFORMAT, "%s:%d: dir '%s' is not pre, post, both or -", r->name,
                       r->line, d);
    const char *covers = r->fields[c[4]];
    if (strcmp(covers, "*")) {
        for (int k = 0; k < l->n_aspect && t.aspect < 0; k++)
            if (!strcmp(l->aspect[k], covers))
                t.aspect = (int8_t)k;
        if (t.aspect < 0)
            return err_set(e, FV_EFORMAT, "%s:%d: covers '%s' is neither '*' nor an aspect of "
                                          "parse_aspects.tsv", r->name, r->line, covers);
        if (t.kind != LK_NORMAL)
            return err_set(e, FV_EFORMAT, "%s:%d: only a normal statement covers an aspect",
                           r->name, r->line);
    }
    if (lex_add(l, r->fields[c[3]], &t, r->fields[c[0]], 1, e) < 0)
        return err_prefix(e, "%s:%d", r->name, r->line);
    return 0;
}

/* parse_aspects.tsv: aspect, task. */
static int aspect_row(Lexicon *l, const TsvReader *r, const int *c, FvErr *e)
{
    const char *name = r->fields[c[0]], *task_id = r->fields[c[1]];
    /* '-': an aspect that covers no task ("纵隔居中": position) */
    int task = strcmp(task_id, "-") ? onto_finding(l->onto, task_id) : -1;
    if (task < 0 && strcmp(task_id, "-"))
        return err_set(e, FV_EFORMAT, "%s:%d: unknown task '%s'", r->name, r->line, task_id);
    int k = -1;
    for (int i = 0; i < l->n_aspect && k < 0; i++)
        if (!strcmp(l->aspect[i], name))
            k = i;
    int nf = l->onto->n_find;
    if (k < 0) {
        if (l->n_aspect >= 100)
            return err_set(e, FV_ELIMIT, "%s:%d: more than 100 aspects", r->name, r->line);
        char **a = realloc(l->aspect, (size_t)(l->n_aspect + 1) * sizeof *a);
        if (!a)
            return err_set(e, FV_ENOMEM, "lexicon: out of memory");
        l->aspect = a;
        uint8_t *at = realloc(l->aspect_task, (size_t)(l->n_aspect + 1) * (size_t)(nf ? nf : 1));
        if (!at)
            return err_set(e, FV_ENOMEM, "lexicon: out of memory");
        l->aspect_task = at;
        memset(at + (size_t)l->n_aspect * (size_t)nf, 0, (size_t)nf);
        if (!(a[l->n_aspect] = strdup(name)))
            return err_set(e, FV_ENOMEM, "lexicon: out of memory");
        k = l->n_aspect++;
    }
    if (task >= 0)
        l->aspect_task[(size_t)k * (size_t)nf + (size_t)task] = 1;
    return 0;
}

int lex_covers(const Lexicon *l, const LexEntry *x, int t)
{
    if (x->aspect < 0 || x->aspect >= l->n_aspect)
        return 1;
    return l->aspect_task[(size_t)x->aspect * (size_t)l->onto->n_find + (size_t)t];
}

/* parse_sections.tsv: section, heading. */
static int section_row(Lexicon *l, const TsvReader *r, const int *c, FvErr *e)
{
    const char *section = r->fields[c[0]], *heading = r->fields[c[1]];
    int sec;
    if (!strcmp(section, "findings"))
        sec = SEC_FINDINGS;
    else if (!strcmp(section, "impression"))
        sec = SEC_IMPRESSION;
    else if (!strcmp(section, "other"))
        sec = SEC_OTHER;
    else
        return err_set(e, FV_EFORMAT, "%s:%d: section '%s' is not findings, impression or other",
                       r->name, r->line, section);
    LexHeading *h = realloc(l->head, (size_t)(l->n_head + 1) * sizeof *h);
    if (!h)
        return err_set(e, FV_ENOMEM, "lexicon: out of memory");
    l->head = h;
    char *t = norm_string(heading, strlen(heading));
    if (!t || !*t) {
        free(t);
        return err_set(e, FV_EFORMAT, "%s:%d: empty heading", r->name, r->line);
    }
    h[l->n_head++] = (LexHeading){t, strlen(t), sec};
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* parse_abbrev.tsv: abbrev (kept normalised, without its final '.'). */
static int abbrev_row(Lexicon *l, const TsvReader *r, const int *c, FvErr *e)
{
    char **a = realloc(l->abbrev, (size_t)(l->n_abbrev + 1) * sizeof *a);
    if (!a)
        return err_set(e, FV_ENOMEM, "lexicon: out of memory");
    l->abbrev = a;
    char *t = norm_string(r->fields[c[0]], strlen(r->fields[c[0]]));
    if (!t)
        return err_set(e, FV_ENOMEM, "lexicon: out of memory");
    size_t n = strlen(t);
    if (n && t[n - 1] == '.')
        t[n - 1] = '\0';
    a[l->n_abbrev++] = t;
    return 0;
}

static int load_tables(Lexicon *l, const char *terms_tsv, const char *generic_tsv,
                       const char *aspects_tsv, const char *triggers_tsv, const char *sections_tsv,
                       const char *abbrev_tsv, FvErr *e)
{
    static const char *const aspects[] = {"aspect", "task", NULL};
    static const char *const triggers[] = {"id", "kind", "dir", "term", "covers", NULL};
    static const char *const sections[] = {"section", "heading", NULL};
    static const char *const abbrev[] = {"abbrev", NULL};
    if (load_terms(l, terms_tsv, e) || load_generic(l, generic_tsv, e) ||
        load_table(l, aspects_tsv, "parse_aspects.tsv", aspects, aspect_row, e) ||
        load_table(l, triggers_tsv, "parse_triggers.tsv", triggers, trigger_row, e) ||
        load_table(l, sections_tsv, "parse_sections.tsv", sections, section_row, e) ||
        load_table(l, abbrev_tsv, "parse_abbrev.tsv", abbrev, abbrev_row, e))
        return -1;
    if (l->n_abbrev > 1)
        qsort(l->abbrev, (size_t)l->n_abbrev, sizeof *l->abbrev, cmp_str);
    return 0;
}

int lex_is_abbrev(const Lexicon *l, const char *word, size_t n)
{
    char buf[32];
    if (n == 0 || n >= sizeof buf)
        return 0;
    memcpy(buf, word, n);
    buf[n] = '\0';
    const char *key = buf;
    return bsearch(&key, l->abbrev, (size_t)l->n_abbrev, sizeof *l->abbrev, cmp_str) != NULL;
}

int lex_generic_task(const Lexicon *l, int g, int a)
{
    if (g < 0 || g >= l->n_generic)
        return -1;
    if (a >= 0 && a < l->onto->n_anat) {
        int t = l->generic_task[(size_t)g * (size_t)l->onto->n_anat + (size_t)a];
        if (t != -2)
            return t;
    }
    return l->generic_default[g];
}

static int build_anat_tasks(Lexicon *l, FvErr *e)
{
    const Ontology *o = l->onto;
    l->anat_tasks = calloc((size_t)o->n_anat, sizeof *l->anat_tasks);
    l->anat_ntasks = calloc((size_t)o->n_anat, sizeof *l->anat_ntasks);
    if (!l->anat_tasks || !l->anat_ntasks)
        return err_set(e, FV_ENOMEM, "lexicon: out of memory");
    for (int a = 0; a < o->n_anat; a++) {
        l->anat_tasks[a] = malloc((size_t)(o->n_find ? o->n_find : 1) * sizeof(int));
        if (!l->anat_tasks[a])
            return err_set(e, FV_ENOMEM, "lexicon: out of memory");
        for (int f = 0; f < o->n_find; f++)
            if (o->find[f].anatomy == a)
                l->anat_tasks[a][l->anat_ntasks[a]++] = f;
    }
    return 0;
}

void lex_free(Lexicon **pl)
{
    Lexicon *l = *pl;
    if (!l)
        return;
    for (int i = 0; i < l->n; i++)
        entry_clear(&l->e[i]);
    free(l->e);
    ac_free(&l->ac);
    free(l->pat_entry);
    free(l->next_same);
    for (int i = 0; i < l->n_generic; i++)
        free(l->generic[i]);
    free(l->generic);
    free(l->generic_task);
    free(l->generic_default);
    for (int i = 0; i < l->n_head; i++)
        free(l->head[i].text);
    free(l->head);
    for (int i = 0; i < l->n_abbrev; i++)
        free(l->abbrev[i]);
    free(l->abbrev);
    for (int i = 0; i < l->n_aspect; i++)
        free(l->aspect[i]);
    free(l->aspect);
    free(l->aspect_task);
    if (l->anat_tasks)
        for (int a = 0; a < l->onto->n_anat; a++)
            free(l->anat_tasks[a]);
    free(l->anat_tasks);
    free(l->anat_ntasks);
    if (l->hash) {
        free(((TermHash *)l->hash)->slot);
        free(l->hash);
    }
    free(l);
    *pl = NULL;
}

int lex_parse(Lexicon **out, const Ontology *o, const char *terms_tsv, const char *generic_tsv,
              const char *aspects_tsv, const char *triggers_tsv, const char *sections_tsv,
              const char *abbrev_tsv, FvErr *e)
{
    *out = NULL;
    Lexicon *l = calloc(1, sizeof *l);
    TermHash *h = calloc(1, sizeof *h);
    if (!l || !h) {
        free(l);
        free(h);
        return err_set(e, FV_ENOMEM, "lexicon: out of memory");
    }
    l->onto = o;
    l->hash = h;
    l->body = onto_anatomy(o, "body");
    if (hash_grow(h, l) || add_ontology(l, e) ||
        load_tables(l, terms_tsv, generic_tsv, aspects_tsv, triggers_tsv, sections_tsv, abbrev_tsv,
                    e) ||
        build_anat_tasks(l, e))
        goto fail;
    const char **pats = malloc((size_t)(l->n ? l->n : 1) * sizeof *pats);
    uint32_t *lens = malloc((size_t)(l->n ? l->n : 1) * sizeof *lens);
    if (!pats || !lens) {
        free(pats);
        free(lens);
        err_set(e, FV_ENOMEM, "lexicon: out of memory");
        goto fail;
    }
    /* The same spelling may live in two layers ("心包" anatomy, trigger...):
     * the automaton gets each spelling once, and a hit fans out to the
     * layers in lex_scan's caller through `same` chains. To keep this simple
     * the automaton patterns are the entries themselves with the layer byte
     * appended out of band: identical spellings are merged below. */
    int np = 0;
    int *pat_of = malloc((size_t)(l->n ? l->n : 1) * sizeof *pat_of);
    if (!pat_of) {
        free(pats);
        free(lens);
        err_set(e, FV_ENOMEM, "lexicon: out of memory");
        goto fail;
    }
    for (int i = 0; i < l->n; i++) {
        int dup = -1;
        for (int layer = 0; layer < l->e[i].layer && dup < 0; layer++) {
            int j = hash_find(h, l, layer, l->e[i].term, l->e[i].len);
            if (j >= 0 && j != i)
                dup = j;
        }
        if (dup >= 0) {
            pat_of[i] = pat_of[dup];
            continue;
        }
        pat_of[i] = np;
        pats[np] = l->e[i].term;
        lens[np] = l->e[i].len;
        np++;
    }
    int rc = ac_build(&l->ac, pats, lens, np, e);
    free(pats);
    free(lens);
    if (rc) {
        free(pat_of);
        goto fail;
    }
    /* pattern -> first entry, then entry -> next entry of the same spelling */
    l->pat_entry = malloc((size_t)(np ? np : 1) * sizeof *l->pat_entry);
    l->next_same = malloc((size_t)(l->n ? l->n : 1) * sizeof *l->next_same);
    if (!l->pat_entry || !l->next_same) {
        free(pat_of);
        err_set(e, FV_ENOMEM, "lexicon: out of memory");
        goto fail;
    }
    for (int p = 0; p < np; p++)
        l->pat_entry[p] = -1;
    for (int i = l->n - 1; i >= 0; i--) {
        l->next_same[i] = l->pat_entry[pat_of[i]];
        l->pat_entry[pat_of[i]] = i;
    }
    free(pat_of);
    free(h->slot);
    free(h);
    l->hash = NULL;
    *out = l;
    return 0;
fail:
    lex_free(&l);
    return -1;
}

static int load_one(const char *name, char **text, FvErr *e)
{
    size_t len;
    if (schema_load(name, text, &len, e))
        return -1;
    if (strlen(*text) != len) {
        free(*text);
        *text = NULL;
        return err_set(e, FV_EFORMAT, "%s: contains a NUL byte", name);
    }
    return 0;
}

int lex_load(Lexicon **out, const Ontology *o, FvErr *e)
{
    static const char *names[6] = {"parse_terms.tsv",    "parse_generic.tsv",  "parse_aspects.tsv",
                                   "parse_triggers.tsv", "parse_sections.tsv", "parse_abbrev.tsv"};
    char *t[6] = {0};
    int rc = -1;
    for (int i = 0; i < 6; i++)
        if (load_one(names[i], &t[i], e))
            goto out;
    rc = lex_parse(out, o, t[0], t[1], t[2], t[3], t[4], t[5], e);
out:
    for (int i = 0; i < 6; i++)
        free(t[i]);
    return rc;
}
