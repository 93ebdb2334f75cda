#include "polarity.h"

#include <stdint.h>
#include <string.h>

#include "parse_util.h"
#include "sentences.h"

static const char RULE_PRESENT[] = "present.default";

void pol_scope_free(Scope *sc)
{
    free(sc->clause);
    free(sc->seg);
    memset(sc, 0, sizeof *sc);
}

/* ------------------------------------------------------------------------ */
/* 4. Findings per sentence.                                                */
/* ------------------------------------------------------------------------ */

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
    return kind == LK_NEG || kind == LK_UNC || kind == LK_UNC_NEG || kind == LK_PSEUDO ||
           kind == LK_CONCLUDE;
}

/* a conclusion ranks with a pseudo-negation: anything stronger in scope wins */
static int trig_rank(int kind)
{
    return kind == LK_UNC_NEG ? 4 : kind == LK_NEG ? 3 : kind == LK_UNC ? 2
         : kind == LK_PSEUDO || kind == LK_CONCLUDE ? 1 : 0;
}

static int is_present_trigger(int kind) { return kind == LK_PSEUDO || kind == LK_CONCLUDE; }

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
                           size_t t1, size_t f, const ParseSentence *st, const char **rule)
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
    /* A negation or uncertainty right before a conclusion governs it and what
     * it lists: "no finding compatible with effusion, pneumothorax or
     * pneumonia", "未见符合...". */
    if (pre && kind_of(lex, pre) == LK_CONCLUDE) {
        int pseg = scope_index(sc->seg, sc->nseg, pre->start);
        for (size_t k = (size_t)(pre - r->tok); k-- > t0;) {
            const ParseTok *t = &r->tok[k];
            if (scope_index(sc->seg, sc->nseg, t->start) != pseg ||
                scope_index(sc->clause, sc->nclause, t->start) != cl)
                break;
            int kk = t->layer == LEX_LAYER_TRIG ? kind_of(lex, t) : -1;
            if ((kk == LK_NEG || kk == LK_UNC || kk == LK_UNC_NEG) && (lex->e[t->entry].dir & DIR_PRE)) {
                pre = t;
                break;
            }
        }
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
    /* Chinese: a clause that is only a change over time ("已愈合", "较前消失")
     * or an exclusion ("待排"), after a comma, is about the clause before it:
     * "多发肋骨陈旧性骨折，已愈合". A recommendation ("建议随访") is not. */
    if (st->zh && !post && !normal) {
        size_t k = f + 1;
        while (k < t1 && scope_index(sc->clause, sc->nclause, r->tok[k].start) == cl)
            k++;
        int ncl = k < t1 ? scope_index(sc->clause, sc->nclause, r->tok[k].start) : -1;
        if (ncl == cl + 1 && r->norm.s[sc->clause[cl]] == ',') {
            const ParseTok *only = NULL;
            int other = 0;
            for (; k < t1 && scope_index(sc->clause, sc->nclause, r->tok[k].start) == ncl; k++) {
                const ParseTok *t = &r->tok[k];
                int kk = t->layer == LEX_LAYER_TRIG ? kind_of(lex, t) : -1;
                if ((kk == LK_NEG || kk == LK_UNC_NEG || kk == LK_PSEUDO) &&
                    (lex->e[t->entry].dir & DIR_POST) && !only)
                    only = t;
                else if (kk != LK_CMP)
                    other = 1;
            }
            /* the trigger ends its clause: "不除外间皮瘤" names what it hedges */
            size_t end = ncl < sc->nclause ? sc->clause[ncl] : st->nend;
            for (size_t i = only ? only->end : end; i < end && !other; i++)
                other = is_word((unsigned char)r->norm.s[i]) || (unsigned char)r->norm.s[i] >= 0x80;
            if (only && !other)
                post = only;
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
    if (is_present_trigger(kpre) || is_present_trigger(kpost)) {
        *rule = lex->e[(is_present_trigger(kpre) ? pre : post)->entry].rule;
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
    size_t t0, t1;
    int g, seg, last;
    int *tasks;
    int max, nt, found, named;
    int part;          /* the first part word met ("parenchyma"), or -1: used when nothing
                        * more specific is named in the clause */
    int other;         /* the walk stopped at a structure outside the ontology ("胆总管扩张") */
} GenericWalk;

/* 1 when token k lies inside a finding token other than ft. Tokens are
 * sorted by start; a term is at most a few dozen bytes long. */
static int in_other_finding(const ParseResult *r, size_t k, size_t t0, size_t t1, const ParseTok *ft)
{
    const ParseTok *t = &r->tok[k];
    for (size_t j = k + 1; j < t1 && r->tok[j].start == t->start; j++)
        if (r->tok[j].layer == LEX_LAYER_FIND && r->tok[j].end >= t->end && &r->tok[j] != ft)
            return 1;
    for (size_t j = k; j-- > t0 && r->tok[j].start + 256 > t->start;)
        if (r->tok[j].layer == LEX_LAYER_FIND && r->tok[j].end >= t->end && &r->tok[j] != ft)
            return 1;
    return 0;
}

static int generic_step(GenericWalk *w, size_t k)
{
    const Lexicon *lex = w->lex;
    const ParseTok *t = &w->r->tok[k];
    const LexEntry *x = &lex->e[t->entry];
    int ks = scope_index(w->sc->seg, w->sc->nseg, t->start);
    if (ks < w->seg || ks > w->last)
        return 0;
    /* a negation or uncertainty does not separate: "胸腔及心包未见积液" */
    if (x->kind == LK_GROUP || x->kind == LK_AFFIRM || x->kind == LK_COORD || x->kind == LK_CMP ||
        x->kind == LK_NEG || x->kind == LK_UNC || x->kind == LK_UNC_NEG || x->kind == LK_CONCLUDE)
        return 1;
    /* a structure outside the ontology is what the word is about ("胆总管结石") */
    if (x->kind == LK_OTHER) {
        w->other = 1;
        return 0;
    }
    if (x->kind != LK_ANATOMY)
        /* a finding or an abnormality word overlapping the word itself is no separator */
        return (t->layer == LEX_LAYER_FIND || x->kind == LK_ABNORMAL) && t->start < w->ft->end &&
               t->end > w->ft->start;
    /* an anatomy inside another finding's term is that finding's ("a nodule
     * in the right upper lobe and a liver cyst") */
    if (in_other_finding(w->r, k, w->t0, w->t1, w->ft))
        return 0;
    if (x->part) {
        if (w->part < 0)
            w->part = x->target;
        return 1;
    }
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

/* 1 when the segment of token ft holds a comparison with an earlier study
 * ("较前", "compared with", or a pseudo-negation such as "较前增大", "stable"). */
static int segment_compares(const Lexicon *lex, const ParseResult *r, const Scope *sc, size_t t0,
                            size_t t1, const ParseTok *ft)
{
    int seg = scope_index(sc->seg, sc->nseg, ft->start);
    for (size_t k = t0; k < t1; k++) {
        const ParseTok *t = &r->tok[k];
        int kind = lex->e[t->entry].kind;
        if ((kind == LK_CMP || kind == LK_PSEUDO) && scope_index(sc->seg, sc->nseg, t->start) == seg)
            return 1;
    }
    return 0;
}

/* Whether the groups named in clause cl (when any) reach the body region of
 * anatomy a: "nodular densities surrounding the intestinal loops" names the
 * bowel, so the word's default (a lung finding) does not apply. 1 when the
 * clause names no group. */
static int group_reaches_region(const Lexicon *lex, const ParseResult *r, const Scope *sc,
                                size_t t0, size_t t1, int cl, int a)
{
    const Ontology *o = lex->onto;
    int groups = 0;
    for (size_t k = t0; k < t1; k++) {
        const ParseTok *t = &r->tok[k];
        const LexEntry *x = &lex->e[t->entry];
        if (x->kind != LK_GROUP || scope_index(sc->clause, sc->nclause, t->start) != cl)
            continue;
        groups++;
        for (int m = 0; m < o->n_anat; m++)
            if (onto_in_group(o, m, x->target) && o->anat[m].region && o->anat[a].region &&
                !strcmp(o->anat[m].region, o->anat[a].region))
                return 1;
    }
    return groups == 0;
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
        } else if (kind != LK_AFFIRM && kind != LK_COORD && kind != LK_CMP && kind != LK_CONCLUDE &&
                   ks > seg) {
            /* a segment with its own finding or trigger ends the list */
            if (ks <= last)
                last = ks - 1;
            break;
        }
    }
    GenericWalk w = {lex, r, sc, ft, t0, t1, g, seg, last, tasks, max, 0, 0, 0, -1, 0};
    /* walk out from the word both ways; a finding or a trigger (other than an
     * affirmative verb) between the word and an anatomy separates them:
     * "plaques in the aorta with a normal heart size" */
    for (size_t k = f + 1; k < t1 && generic_step(&w, k); k++)
        ;
    for (size_t k = f; k > t0 && generic_step(&w, k - 1); k--)
        ;
    int nt = w.nt, found = w.found, named = w.named;
    /* an anatomy named next to the word where it means nothing: nothing; a
     * structure we do not model named next to it: its finding, not ours */
    if (found || named || w.other)
        return nt;
    /* A comparison with no anatomy in its segment, after a finding, is about
     * that finding: "肝内见囊肿，较前增大" (the cyst grew, not the liver),
     * "lesions in the liver, increased in size compared with prior". */
    if (lex->generic_default[g] < 0 && segment_compares(lex, r, sc, t0, t1, ft))
        for (size_t k = t0; k < f; k++)
            if (r->tok[k].layer == LEX_LAYER_FIND && r->tok[k].end <= ft->start)
                return 0;
    /* "thyroid gland enlarged, hypodense nodules in the parenchyma": a part
     * word is the organ named in its clause */
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
            if (x->part) {
                if (w.part < 0 && pass == 0)
                    w.part = x->target;
                continue;
            }
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
        if (pass == 0 && w.part >= 0) {
            int task = lex_generic_task(lex, g, w.part);
            if (task >= 0)
                tasks[nt++] = task;
            return nt;
        }
    }
    int task = lex->generic_default[g];
    if (task >= 0 && !group_reaches_region(lex, r, sc, t0, t1, cl, lex->onto->find[task].anatomy))
        task = -1;
    if (task >= 0)
        tasks[nt++] = task;
    return nt;
}

/* 1 when token k lies inside a normal statement token (a trigger). Tokens
 * are sorted by start, then layer: one starting where k starts comes after it. */
static int inside_normal(const Lexicon *lex, const ParseResult *r, size_t t0, size_t t1, size_t k)
{
    const ParseTok *t = &r->tok[k];
    for (size_t j = k + 1; j < t1 && r->tok[j].start == t->start; j++)
        if (r->tok[j].layer == LEX_LAYER_TRIG && kind_of(lex, &r->tok[j]) == LK_NORMAL &&
            r->tok[j].end >= t->end)
            return 1;
    for (size_t j = k; j-- > t0 && r->tok[j].start + 64 > t->start;)
        if (r->tok[j].layer == LEX_LAYER_TRIG && kind_of(lex, &r->tok[j]) == LK_NORMAL &&
            r->tok[j].end >= t->end)
            return 1;
    return 0;
}

/* Anatomies a normal statement at token n speaks of: the anatomy mentions
 * next to it in its clause, up to the nearest finding or polarity trigger.
 * In Chinese the subject of a sentence carries over its commas ("双肺透亮度可，
 * 未见异常": the lungs): a statement with no anatomy in its own clause takes
 * those of the nearest earlier comma clause that names one. */
static int normal_targets(const Lexicon *lex, const ParseResult *r, const Scope *sc, size_t t0,
                          size_t t1, size_t n, int zh, size_t *ment, int max)
{
    const ParseTok *nt = &r->tok[n];
    int cl = scope_index(sc->clause, sc->nclause, nt->start);
    int dir = lex->e[nt->entry].dir, cnt = 0;
    /* A statement right before an anatomy is about it: "normal heart size",
     * "未见肿大淋巴结" (no enlarged lymph nodes, whatever was named before).
     * Tokens inside the statement itself are passed over. */
    for (size_t k = n + 1; k < t1 && dir != DIR_PRE; k++) {
        const ParseTok *nx = &r->tok[k];
        if (nx->start < nt->end)
            continue;
        int kind = kind_of(lex, nx);
        if (nx->start > nt->end + 1 || scope_index(sc->clause, sc->nclause, nx->start) != cl)
            break;
        if (kind == LK_ANATOMY || kind == LK_GROUP)
            dir = DIR_PRE;
    }
    if (dir & DIR_POST) {
        int in = cl;   /* the clause being searched */
        for (size_t k = n; k-- > t0;) {
            const ParseTok *t = &r->tok[k];
            int kc = scope_index(sc->clause, sc->nclause, t->start);
            if (kc != in) {
                /* only across Chinese commas, and only while nothing is found */
                int comma = 1;
                for (int c = kc; c < in && comma; c++)
                    comma = r->norm.s[sc->clause[c]] == ',';
                if (!zh || cnt > 0 || !comma)
                    break;
                in = kc;
            }
            int kind = kind_of(lex, t);
            /* a finding word inside an earlier normal statement ("胆囊未见增大，
             * 壁不厚") is part of that statement, not a finding between */
            if ((kind == LK_TASK || kind == LK_GENERIC) && inside_normal(lex, r, t0, t1, k))
                continue;
            if (kind == LK_ANATOMY || kind == LK_GROUP) {
                if (cnt < max)
                    ment[cnt++] = k;
            } else if (kind == LK_OTHER) {
                /* "胆囊不大，胆总管未见扩张": the statement is the duct's, a
                 * structure we do not model; it says nothing of the organ before */
                if (cnt == 0)
                    return 0;
                break;
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
            if (t->start < nt->end)
                continue;
            if (scope_index(sc->clause, sc->nclause, t->start) != cl)
                break;
            int kind = kind_of(lex, t);
            if (kind == LK_ANATOMY || kind == LK_GROUP) {
                if (cnt < max)
                    ment[cnt++] = k;
            } else if (kind == LK_TASK || kind == LK_GENERIC || kind == LK_OTHER ||
                       is_polarity_trigger(kind)) {
                break;
            }
        }
    }
    return cnt;
}

/* "No focal lung lesion", "未见明显肝脏异常": a negation, anatomies, then a
 * word for an unspecified abnormality (token n) state those anatomies normal.
 * Returns the anatomy tokens between the negation and the word (0 when the
 * word is not negated so, or names none). */
static int negated_targets(const Lexicon *lex, const ParseResult *r, const Scope *sc, size_t t0,
                           size_t n, size_t *ment, int max)
{
    const ParseTok *w = &r->tok[n];
    int seg = scope_index(sc->seg, sc->nseg, w->start);
    int cnt = 0;
    for (size_t k = n; k-- > t0;) {
        const ParseTok *t = &r->tok[k];
        if (t->start >= w->start)
            continue;   /* the same word in the finding layer ("lesion") */
        if (t->end > w->start || scope_index(sc->seg, sc->nseg, t->start) != seg)
            return 0;
        const LexEntry *x = &lex->e[t->entry];
        if (x->kind == LK_ANATOMY || x->kind == LK_GROUP) {
            if (cnt < max)
                ment[cnt++] = k;
        } else if (x->kind == LK_NEG && (x->dir & DIR_PRE)) {
            return cnt;
        } else if (x->kind != LK_COORD) {
            return 0;
        }
    }
    return 0;
}

/* 1 when finding token f follows finding token g (g < f) in the same clause
 * with nothing between them but one coordinating word: "食管未见扩张及管壁增厚",
 * where the negation inside the normal statement reaches the second finding. */
static int coordinated(const Lexicon *lex, const ParseResult *r, const Scope *sc, size_t t0,
                       size_t t1, size_t g, size_t f)
{
    const ParseTok *a = &r->tok[g], *b = &r->tok[f];
    if (g < t0 || f >= t1 || a->end > b->start ||
        scope_index(sc->clause, sc->nclause, a->start) != scope_index(sc->clause, sc->nclause, b->start))
        return 0;
    size_t pos = a->end;
    int ncoord = 0;
    for (size_t k = g + 1; k < f; k++) {
        const ParseTok *t = &r->tok[k];
        if (t->end <= a->end || t->start >= b->start)
            continue;   /* inside the first finding (or its statement), or the second */
        if (t->start < pos || kind_of(lex, t) != LK_COORD || t->end > b->start)
            return 0;
        for (size_t i = pos; i < t->start; i++)
            if (!is_space((unsigned char)r->norm.s[i]))
                return 0;
        pos = t->end;
        ncoord++;
    }
    for (size_t i = pos; i < b->start; i++)
        if (!is_space((unsigned char)r->norm.s[i]))
            return 0;
    return ncoord == 1;
}

int pol_analyse_sentence(const Parser *p, ParseResult *r, int si, size_t t0, size_t t1,
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
    /* explicit findings; prev: the token of the last one (SIZE_MAX: none yet) */
    size_t prev = SIZE_MAX;
    int prev_pol = PARSE_PRESENT;
    const char *prev_rule = RULE_PRESENT;
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
        int pol = decide_polarity(lex, r, sc, t0, t1, k, &st, &rule);
        if (rule == RULE_PRESENT && prev != SIZE_MAX && coordinated(lex, r, sc, t0, t1, prev, k)) {
            pol = prev_pol;
            rule = prev_rule;
        }
        prev = k;
        prev_pol = pol;
        prev_rule = rule;
        for (int i = 0; i < nt; i++) {
            r->stamp[tasks[i]] = si;
            if (add_finding(r, si, tasks[i], pol, t->start, t->end, rule, 0, e))
                return -1;
        }
    }
    /* normal statements */
    for (size_t k = t0; k < t1; k++) {
        const ParseTok *nt = &r->tok[k];
        int kind = kind_of(lex, nt);
        if (kind != LK_NORMAL && kind != LK_ABNORMAL)
            continue;
        size_t ment[32];
        int nm = kind == LK_NORMAL ? normal_targets(lex, r, sc, t0, t1, k, st.zh, ment, 32)
                                   : negated_targets(lex, r, sc, t0, k, ment, 32);
        int others = 0, named = 0;
        for (int i = 0; i < nm; i++) {
            const LexEntry *x = &lex->e[r->tok[ment[i]].entry];
            others += !(x->kind == LK_ANATOMY && x->target == lex->body);
            named += !(x->kind == LK_ANATOMY && (x->target == lex->body || x->part));
        }
        for (int i = 0; i < nm; i++) {
            const ParseTok *mt = &r->tok[ment[i]];
            const LexEntry *x = &lex->e[mt->entry];
            /* "the liver and parenchymal density are normal": the part is
             * the liver's, not the lung's */
            if (x->kind == LK_ANATOMY && x->part && named)
                continue;
            size_t a = mt->start < nt->start ? mt->start : nt->start;
            size_t b = mt->end > nt->end ? mt->end : nt->end;
            int a0 = x->kind == LK_ANATOMY ? x->target : 0;
            int a1 = x->kind == LK_ANATOMY ? x->target + 1 : o->n_anat;
            for (int an = a0; an < a1; an++) {
                if (x->kind == LK_GROUP && !onto_in_group(o, an, x->target))
                    continue;
                /* "sections", "study area": the whole scan only when nothing
                 * else is named */
                if (an == lex->body && others)
                    continue;
                for (int j = 0; j < lex->anat_ntasks[an]; j++) {
                    int task = lex->anat_tasks[an][j];
                    if (r->stamp[task] == si || r->stamp[task] == -2 - si)
                        continue;
                    /* "心影不大" is about size: not calcification, not effusion */
                    if (kind == LK_NORMAL && !lex_covers(lex, &lex->e[nt->entry], task))
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
    int a = is_find ? p->onto->find[r->find[i].task].anatomy : r->ment[i].anatomy;
    /* -1 for groups: they join any piece; and for a mention of the whole
     * scan ("section 227", "sections"), which says where, not what */
    if (!is_find && a == p->lex->body)
        return -1;
    return a;
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
int pol_split_long(const Parser *p, ParseResult *r, int si, int m0, int f0, const Scope *sc,
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
        int set[64], nset = 0, nfound = 0;
        for (int pass = 0; pass < 2; pass++) {
            int from = pass ? f0 : m0, to = pass ? r->nfind : r->nment;
            for (int i = from; i < to; i++) {
                size_t pos = pass ? r->find[i].nstart : r->ment[i].nstart;
                if (pos < a || pos >= b)
                    continue;
                nfound += pass;
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
        /* a piece that states no finding of its own says where the finding
         * before it lies or reaches ("A mass is observed in the right hilar
         * region, surrounding the left main bronchus"): no cut */
        if (ncur > 0 && !overlap && piece > 0 && nfound > 0) {
            /* cut after a punctuation mark; a terminator word ("which",
             * "but") starts the next piece */
            unsigned char bc = (unsigned char)r->norm.s[a];
            size_t at = is_word(bc) || (bc >= 0x80 && !is_zh_stop(r->norm.s, a, st.nend)) ? a
                                                                                     : a + 1;
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
        if (sent_add(r, st.section, a, b, e))
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
    if (r->nment - m0 > 1)
        qsort(r->ment + m0, (size_t)(r->nment - m0), sizeof *r->ment, cmp_mention);
    if (r->nfind - f0 > 1)
        qsort(r->find + f0, (size_t)(r->nfind - f0), sizeof *r->find, cmp_finding);
    return 0;
}

