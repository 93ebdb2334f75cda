#include "report.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* The order in which the findings section walks the anatomies, and the
 * subheading category each belongs to (English hospital reports). */
enum { CAT_NECK, CAT_LUNG, CAT_MED, CAT_HEART, CAT_ABD, CAT_PELVIS, CAT_BONE, CAT_OTHER };
static const struct {
    const char *anat;
    int cat;
} BLOCKS[] = {
    {"thyroid_gland", CAT_NECK}, {"trachea", CAT_LUNG},        {"lung", CAT_LUNG},
    {"lymph_node", CAT_MED},     {"esophagus", CAT_MED},       {"heart", CAT_HEART},
    {"aorta", CAT_HEART},        {"liver", CAT_ABD},           {"gallbladder", CAT_ABD},
    {"spleen", CAT_ABD},         {"pancreas", CAT_ABD},        {"adrenal_gland", CAT_ABD},
    {"kidney", CAT_ABD},         {"stomach", CAT_ABD},         {"small_bowel", CAT_ABD},
    {"large_bowel", CAT_ABD},    {"peritoneum", CAT_ABD},      {"bladder", CAT_PELVIS},
    {"thoracic_vertebrae", CAT_BONE}, {"rib", CAT_BONE},       {"body", CAT_OTHER},
};
enum { NBLOCKS = sizeof BLOCKS / sizeof BLOCKS[0] };
static const char *const CAT_EN[] = {"NECK", "LUNGS AND AIRWAYS", "MEDIASTINUM",
                                     "HEART AND VESSELS", "ABDOMEN", "PELVIS", "BONES", "OTHER"};

typedef struct Ctx {
    const ReportInput *in;
    const Ontology *o;
    Rng *r;
    Report *rep;
    int lang;
    signed char state[256];   /* what the report will say: 1, -1, or 0 (not reported) */
    unsigned char done[256];  /* task already written in the findings */
    int combo_calc;           /* aortic and coronary calcification written together */
} Ctx;

static void set_label(Ctx *c, int task, int v)
{
    signed char *p = &c->rep->reported[task];
    /* present > uncertain > absent, as the parser aggregates */
    if (*p == REPORT_UNMENTIONED || v == 1 || (v == -1 && *p == 0))
        *p = (signed char)v;
}

static void anatomy_absent(Ctx *c, int a)
{
    for (int t = 0; t < c->o->n_find; t++)
        if (c->o->find[t].anatomy == a)
            set_label(c, t, 0);
}

static int task_id(const Ctx *c, const char *id) { return onto_finding(c->o, id); }

static int is_pleural(const Ctx *c, int t)
{
    const char *id = c->o->find[t].id;
    return !strcmp(id, "pleural_effusion") || !strcmp(id, "pneumothorax") ||
           !strcmp(id, "pleural_thickening");
}

/* ------------------------------------------------------------------------ */
/* Words                                                                      */
/* ------------------------------------------------------------------------ */

static void anat_term(Ctx *c, int a, int canonical, Buf *out)
{
    const char *t = phrase_pick(c->in->ph, "anat", c->o->anat[a].id, c->lang, 0, c->r);
    if (!t) {
        buf_puts(out, c->lang == LANG_ZH ? c->o->anat[a].zh : c->o->anat[a].en);
        return;
    }
    if (canonical) {
        const char *bar = strchr(t, '|');
        buf_append(out, t, bar ? (size_t)(bar - t) : strlen(t));
    } else
        phrase_term(out, t, 0, c->r);
}

static int lesions_of(const Ctx *c, int task, const Lesion **out, int max)
{
    int n = 0;
    for (int i = 0; i < c->in->ls->nles && n < max; i++)
        if (c->in->ls->les[i].finding == task)
            out[n++] = &c->in->ls->les[i];
    return n;
}

static void loc_key(Ctx *c, const char *key, Buf *out)
{
    const char *colon = strchr(key, ':');
    char prefix[16];
    snprintf(prefix, sizeof prefix, "%.*s", (int)(colon - key), key);
    const char *t = phrase_pick(c->in->ph, prefix, colon + 1, c->lang, 0, c->r);
    if (t)
        phrase_term(out, t, 0, c->r);
}

static const char *ordinal_en(int n)
{
    static const char *const s[] = {"th", "st", "nd", "rd"};
    return (n % 100 >= 11 && n % 100 <= 13) || n % 10 > 3 ? "th" : s[n % 10];
}

/* Where the finding is: lobes, side, segment, level ... or the anatomy. */
static void loc_text(Ctx *c, int task, Buf *out)
{
    const Lesion *l[64];
    int n = lesions_of(c, task, l, 64);
    const char *id = c->o->find[task].id;
    const char *anat = c->o->anat[c->o->find[task].anatomy].id;
    char key[64];
    int right = 0, left = 0;
    for (int i = 0; i < n; i++) {
        if (l[i]->side == 'R')
            right = 1;
        else if (l[i]->side == 'L')
            left = 1;
        else if (l[i]->side == 'B')
            right = left = 1;
    }
    char sd = right && left ? 'B' : right ? 'R' : left ? 'L' : 0;
    if (!strcmp(anat, "lung") && is_pleural(c, task) && sd) {
        snprintf(key, sizeof key, "loc:pleura:%c", sd);
        loc_key(c, key, out);
        return;
    }
    if (!strcmp(anat, "lung") && n) {
        int lobe = -1, same = 1;
        for (int i = 0; i < n; i++) {
            if (l[i]->ts < 10 || l[i]->ts > 14)
                continue;
            if (lobe < 0)
                lobe = l[i]->ts;
            else if (lobe != l[i]->ts)
                same = 0;
        }
        if (lobe > 0 && same)
            snprintf(key, sizeof key, "loc:lobe:%d", lobe);
        else
            snprintf(key, sizeof key, "loc:lobe:%s", sd == 'R' ? "right" : sd == 'L' ? "left" : "both");
        loc_key(c, key, out);
        return;
    }
    if ((!strcmp(anat, "kidney") || !strcmp(anat, "adrenal_gland")) && sd) {
        if (sd == 'B' && !strcmp(anat, "kidney")) {
            anat_term(c, c->o->find[task].anatomy, 0, out);
            return;
        }
        snprintf(key, sizeof key, "loc:%s:%c", !strcmp(anat, "kidney") ? "kidney" : "adrenal", sd);
        loc_key(c, key, out);
        return;
    }
    if ((!strcmp(id, "liver_cyst") || !strcmp(id, "liver_mass") || !strcmp(id, "liver_calcification")) && n) {
        int rl = 0, ll = 0;
        for (int i = 0; i < n; i++) {
            if (l[i]->c[0] > -15)
                rl = 1;
            else
                ll = 1;
        }
        if (rl && ll)
            anat_term(c, c->o->find[task].anatomy, 0, out);
        else {
            snprintf(key, sizeof key, "loc:liver:%c", rl ? 'R' : 'L');
            loc_key(c, key, out);
        }
        return;
    }
    if (!strcmp(id, "thyroid_nodule") && n) {
        snprintf(key, sizeof key, "loc:thyroid:%c", l[0]->c[0] >= 0 ? 'R' : 'L');
        loc_key(c, key, out);
        return;
    }
    if ((!strcmp(anat, "aorta") || !strcmp(anat, "esophagus")) && n && l[0]->site[0]) {
        snprintf(key, sizeof key, "loc:%s:%s", anat, l[0]->site);
        loc_key(c, key, out);
        if (out->len)
            return;
    }
    if (!strcmp(id, "lymphadenopathy") && n && l[0]->site[0]) {
        snprintf(key, sizeof key, "loc:node:%s", l[0]->site);
        loc_key(c, key, out);
        return;
    }
    if (!strcmp(anat, "large_bowel")) {
        loc_key(c, "loc:colon:any", out);
        return;
    }
    if (!strcmp(anat, "thoracic_vertebrae") && n && l[0]->site[0]) {
        char names[8][24];
        int nn = 0;
        for (int i = 0; i < n && nn < 8; i++) {
            int dup = 0;
            for (int k = 0; k < nn; k++)
                dup |= !strcmp(names[k], l[i]->site);
            if (!dup && l[i]->site[0])
                snprintf(names[nn++], sizeof names[0], "%s", l[i]->site);
        }
        for (int i = 0; i < nn; i++) {
            if (i)
                buf_puts(out, c->lang == LANG_ZH ? "、" : i == nn - 1 ? " and " : ", ");
            buf_puts(out, names[i]);
        }
        buf_puts(out, c->lang == LANG_ZH ? "椎体" : nn > 1 ? " vertebral bodies" : " vertebral body");
        return;
    }
    if (!strcmp(anat, "rib") && n) {
        int nums[16], nn = 0;
        for (int i = 0; i < n && nn < 16; i++)
            if (l[i]->ts >= 92 && l[i]->ts <= 115)
                nums[nn++] = l[i]->ts >= 104 ? l[i]->ts - 103 : l[i]->ts - 91;
        if (!nn) {
            anat_term(c, c->o->find[task].anatomy, 0, out);
            return;
        }
        if (c->lang == LANG_ZH) {
            buf_puts(out, sd == 'B' ? "双侧" : sd == 'R' ? "右侧" : "左侧");
            buf_puts(out, "第");
            for (int i = 0; i < nn; i++)
                buf_printf(out, "%s%d", i ? "、" : "", nums[i]);
            buf_puts(out, "肋");
        } else {
            buf_puts(out, sd == 'B' ? "bilateral " : sd == 'R' ? "right " : "left ");
            for (int i = 0; i < nn; i++)
                buf_printf(out, "%s%d%s", i == 0 ? "" : i == nn - 1 ? " and " : ", ", nums[i],
                           ordinal_en(nums[i]));
            buf_puts(out, nn > 1 ? " ribs" : " rib");
        }
        return;
    }
    anat_term(c, c->o->find[task].anatomy, 0, out);
}

/* A measurement of the largest lesion. */
static void size_text(Ctx *c, int task, Buf *out)
{
    const Lesion *l[64];
    int n = lesions_of(c, task, l, 64);
    double d1 = 0, d2 = 0;
    for (int i = 0; i < n; i++)
        if (l[i]->size > d1) {
            d1 = l[i]->size;
            d2 = l[i]->size2;
        }
    if (d1 <= 0)
        d1 = 10;
    /* a radiologist's measurement is not the truth to the millimetre */
    d1 *= rng_range(c->r, 0.93, 1.07);
    d2 = d2 > 0 && d2 < d1 * 1.2 ? d2 * rng_range(c->r, 0.93, 1.07) : 0;
    int v = (int)rng_below(c->r, d2 > 0 ? 4 : 2);
    if (c->lang == LANG_ZH) {
        static const char *const x[] = {"×", "×", "*", "x"};
        const char *m = x[rng_below(c->r, 4)];
        switch (v) {
        case 0: buf_printf(out, "%.1fcm", d1 / 10); break;
        case 1: buf_printf(out, "%.0fmm", d1); break;
        case 2: buf_printf(out, "%.1f%s%.1fcm", d1 / 10, m, d2 / 10); break;
        default: buf_printf(out, "%.0fmm%s%.0fmm", d1, m, d2); break;
        }
    } else {
        switch (v) {
        case 0: buf_printf(out, "%.1f cm", d1 / 10); break;
        case 1: buf_printf(out, "%.0f mm", d1); break;
        case 2: buf_printf(out, "%.1f x %.1f cm", d1 / 10, d2 / 10); break;
        default: buf_printf(out, "%.0f x %.0f mm", d1, d2); break;
        }
    }
}

static void count_word(Ctx *c, int n, Buf *out)
{
    static const char *const zhn[] = {"", "一", "两", "三", "四", "五", "六", "七", "八", "九", "十"};
    if (c->lang == LANG_ZH) {
        if (n <= 1) {
            static const char *const one[] = {"", "一枚", "一个", ""};
            buf_puts(out, one[rng_below(c->r, 4)]);
        } else {
            int v = (int)rng_below(c->r, 3);
            if (v == 0 || n > 10)
                buf_puts(out, "多发");
            else if (v == 1)
                buf_puts(out, "数枚");
            else
                buf_printf(out, "%s枚", zhn[n]);
        }
    } else {
        static const char *const enn[] = {"", "one", "two", "three", "four", "five", "six",
                                          "seven", "eight", "nine", "ten"};
        if (n <= 1)
            buf_puts(out, "a");
        else {
            int v = (int)rng_below(c->r, 3);
            buf_puts(out, v == 0 || n > 10 ? "multiple" : v == 1 ? "several" : enn[n]);
        }
    }
}

static void finding_term(Ctx *c, int task, int plural, Buf *out)
{
    const Lesion *l[1];
    char key[96];
    int n = lesions_of(c, task, l, 1);
    if (n && l[0]->site[0] && !strcmp(c->o->find[task].id, "medical_material"))
        snprintf(key, sizeof key, "%s:%s", c->o->find[task].id, l[0]->site);
    else
        snprintf(key, sizeof key, "%s", c->o->find[task].id);
    const char *t = phrase_pick(c->in->ph, "term", key, c->lang, 0, c->r);
    if (!t && strchr(key, ':'))
        t = phrase_pick(c->in->ph, "term", "medical_material:pacemaker", c->lang, 0, c->r);
    if (t)
        phrase_term(out, t, plural, c->r);
    else
        buf_puts(out, c->lang == LANG_ZH ? c->o->find[task].zh : c->o->find[task].en);
}

/* Whether an English term is plural ("nodules", "calculi", "bullae"; not
 * "atelectasis", "mucus", "ascites"), so the verb agrees with the word used. */
static int en_plural(const char *t)
{
    size_t n = strlen(t);
    if (n < 2)
        return 0;
    if (n >= 7 && !strcmp(t + n - 7, "ascites"))
        return 0;
    if (!strcmp(t + n - 2, "is") || !strcmp(t + n - 2, "us") || !strcmp(t + n - 2, "ss"))
        return 0;
    if (t[n - 1] == 's' || !strcmp(t + n - 2, "ae") || !strcmp(t + n - 2, "li") ||
        (n >= 5 && !strcmp(t + n - 5, "icula")))
        return 1;
    return 0;
}

/* Expands the template `tmpl` for a task (or a combination written together). */
static void expand_task(Ctx *c, const char *tmpl, int task, Buf *out)
{
    const Lesion *l[64];
    int n = lesions_of(c, task, l, 64);
    int count = n > 1 ? n : 1;
    const char *id = c->o->find[task].id;
    /* diffuse findings are one thing however many patches painted them */
    if (!strcmp(id, "emphysema") || !strcmp(id, "mosaic_attenuation_pattern") ||
        !strcmp(id, "interlobular_septal_thickening") || !strcmp(id, "pleural_effusion") ||
        !strcmp(id, "lymphadenopathy") || !strcmp(id, "degenerative_spine") ||
        !strcmp(id, "arterial_wall_calcification") || !strcmp(id, "medical_material") ||
        !strcmp(id, "atelectasis") || !strcmp(id, "pulmonary_fibrotic_sequela") ||
        !strcmp(id, "lung_opacity"))
        count = strcmp(id, "lymphadenopathy") ? 1 : count;
    Buf f = {0}, loc = {0}, size = {0}, nw = {0}, cmp = {0}, a = {0};
    finding_term(c, task, count > 1, &f);
    loc_text(c, task, &loc);
    size_text(c, task, &size);
    count_word(c, count, &nw);
    anat_term(c, c->o->find[task].anatomy, 0, &a);
    /* a comparison with the patient's previous scan; growth and "new" only
     * for findings that have a size (cmp: rows per task, else the stable ones) */
    if (c->in->prior_date && strcmp(id, "medical_material") && rng_bernoulli(c->r, 0.45)) {
        const char *t = phrase_pick(c->in->ph, "cmp", id, c->lang, 1, c->r);
        if (t)
            phrase_expand(&cmp, t, NULL, 0, c->r);
    }
    PhraseVar v[] = {
        {"F", f.data},       {"LOC", loc.data},  {"SIZE", size.data}, {"N", nw.data},
        {"A", a.data},       {"CMP", cmp.data},
        {"BE", NULL}, {"THEREBE", NULL}, {"ART", NULL},
    };
    int pl = c->lang == LANG_EN ? en_plural(f.data ? f.data : "") : count > 1;
    v[6].value = pl ? "are" : "is";
    v[7].value = pl ? "there are" : "there is";
    v[8].value = pl ? "" : "a";
    phrase_expand(out, tmpl, v, (int)(sizeof v / sizeof v[0]), c->r);
    buf_free(&f);
    buf_free(&loc);
    buf_free(&size);
    buf_free(&nw);
    buf_free(&cmp);
    buf_free(&a);
}

/* ------------------------------------------------------------------------ */
/* Sections                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct Sentences {
    Buf b[96];
    int cat[96];
    int block[96];
    int n;
} Sentences;

static Buf *sent_new(Sentences *s, int block, int cat)
{
    if (s->n >= 96)
        return NULL;
    Buf *b = &s->b[s->n];
    memset(b, 0, sizeof *b);
    s->cat[s->n] = cat;
    s->block[s->n] = block;
    s->n++;
    return b;
}

static void sent_free(Sentences *s)
{
    for (int i = 0; i < s->n; i++)
        buf_free(&s->b[i]);
    s->n = 0;
}

static double cover_of(const Ctx *c, int a) { return c->in->cover[a]; }

static int group_members_normal(Ctx *c, int g, double need)
{
    int members = 0;
    for (int a = 0; a < c->o->n_anat; a++) {
        if (!c->o->anat[a].main || !onto_in_group(c->o, a, g))
            continue;
        members++;
        if (cover_of(c, a) < need)
            return 0;
        for (int t = 0; t < c->o->n_find; t++)
            if (c->o->find[t].anatomy == a && c->state[t])
                return 0;
    }
    return members > 0;
}

static void group_absent(Ctx *c, int g)
{
    for (int a = 0; a < c->o->n_anat; a++)
        if (c->o->anat[a].main && onto_in_group(c->o, a, g))
            anatomy_absent(c, a);
}

static int anatomy_has_report(const Ctx *c, int a)
{
    for (int t = 0; t < c->o->n_find; t++)
        if (c->o->find[t].anatomy == a && c->state[t])
            return 1;
    return 0;
}

static void add_negative(Ctx *c, Sentences *s, int bi, const char *neg_key, const char *const *tasks,
                         int ntasks)
{
    for (int i = 0; i < ntasks; i++) {
        int t = task_id(c, tasks[i]);
        if (t < 0 || c->state[t])
            return;
    }
    const char *tm = phrase_pick(c->in->ph, "neg", neg_key, c->lang, 0, c->r);
    Buf *b;
    if (!tm || !(b = sent_new(s, bi, BLOCKS[bi].cat)))
        return;
    phrase_expand(b, tm, NULL, 0, c->r);
    for (int i = 0; i < ntasks; i++)
        set_label(c, task_id(c, tasks[i]), 0);
}

/* The tasks of a "neg:<task>+<task>..." row: up to max task indices
 * (-1 for a name that is not a task). Returns the count, 0 when the row
 * names fewer than two. */
static int row_task_list(const Ctx *c, const PhraseRow *pr, int *tasks, int max)
{
    if (pr->nitems != 1 || !strchr(pr->items[0], '+'))
        return 0;
    int n = 0;
    for (const char *p = pr->items[0]; *p && n < max;) {
        size_t len = strcspn(p, "+");
        char id[96];
        snprintf(id, sizeof id, "%.*s", (int)(len < sizeof id ? len : sizeof id - 1), p);
        tasks[n++] = task_id(c, id);
        p += len + (p[len] == '+');
    }
    return n;
}

/* Rows neg:<task>+<task>... in the report's language that name several
 * findings, all of anatomy a and none of them reported: pertinent negatives
 * that can stand for a normal statement of a. Returns the count. */
static int partial_rows(const Ctx *c, int a, const PhraseRow **out, int max)
{
    const Phrases *ph = c->in->ph;
    int n = 0;
    for (int i = 0; i < ph->n && n < max; i++) {
        const PhraseRow *pr = &ph->row[i];
        int tasks[8], nt;
        if (pr->lang != c->lang || strcmp(pr->prefix, "neg") ||
            (nt = row_task_list(c, pr, tasks, 8)) == 0)
            continue;
        int ok = 1;
        for (int k = 0; k < nt && ok; k++)
            ok = tasks[k] >= 0 && c->o->find[tasks[k]].anatomy == a && !c->state[tasks[k]];
        if (ok)
            out[n++] = pr;
    }
    return n;
}

static void row_tasks_absent(Ctx *c, const PhraseRow *pr)
{
    int tasks[8];
    int nt = row_task_list(c, pr, tasks, 8);
    for (int k = 0; k < nt; k++)
        if (tasks[k] >= 0)
            set_label(c, tasks[k], 0);
}

static void findings_section(Ctx *c, Sentences *s)
{
    const Ontology *o = c->o;
    int ab = onto_group(o, "upper_abdomen"), gb = onto_group(o, "bones"),
        gm = onto_group(o, "mediastinum"), gw = onto_group(o, "bowel");
    int used_group[64] = {0}, tried_group[64] = {0};
    int aw = task_id(c, "arterial_wall_calcification"), cc = task_id(c, "coronary_artery_wall_calcification");
    c->combo_calc = aw >= 0 && cc >= 0 && c->state[aw] == 1 && c->state[cc] == 1 &&
                    rng_bernoulli(c->r, 0.5);
    for (int bi = 0; bi < NBLOCKS; bi++) {
        int a = onto_anatomy(o, BLOCKS[bi].anat);
        if (a < 0)
            continue;
        double cov = cover_of(c, a);
        if (anatomy_has_report(c, a)) {
            /* parenchymal findings first, the pleura after them */
            for (int pass = 0; pass < 2; pass++)
                for (int t = 0; t < o->n_find; t++) {
                    if (o->find[t].anatomy != a || !c->state[t] || c->done[t])
                        continue;
                    if (is_pleural(c, t) != pass)
                        continue;
                    Buf *b = sent_new(s, bi, BLOCKS[bi].cat);
                    if (!b)
                        break;
                    if (c->combo_calc && (t == aw || t == cc)) {
                        const char *tm = phrase_pick(c->in->ph, "find",
                                                     "arterial_wall_calcification+coronary_artery_wall_calcification",
                                                     c->lang, 0, c->r);
                        expand_task(c, tm, aw, b);
                        c->done[aw] = c->done[cc] = 1;
                        set_label(c, aw, 1);
                        set_label(c, cc, 1);
                        continue;
                    }
                    const char *tm = c->state[t] == 1
                                         ? phrase_pick(c->in->ph, "find", o->find[t].id, c->lang, 1, c->r)
                                         : phrase_pick(c->in->ph, "ufind", o->find[t].id, c->lang, 1, c->r);
                    if (tm)
                        expand_task(c, tm, t, b);
                    c->done[t] = 1;
                    set_label(c, t, c->state[t]);
                }
            /* pertinent negatives beside the abnormal findings */
            if (!strcmp(BLOCKS[bi].anat, "lung") && rng_bernoulli(c->r, 0.4)) {
                static const char *const pe[] = {"pleural_effusion"};
                add_negative(c, s, bi, "pleural_effusion", pe, 1);
            }
            if (!strcmp(BLOCKS[bi].anat, "heart") && rng_bernoulli(c->r, 0.3)) {
                static const char *const pe[] = {"pericardial_effusion"};
                add_negative(c, s, bi, "pericardial_effusion", pe, 1);
            }
            if (!strcmp(BLOCKS[bi].anat, "kidney") && rng_bernoulli(c->r, 0.3)) {
                static const char *const hy[] = {"hydronephrosis"};
                add_negative(c, s, bi, "hydronephrosis", hy, 1);
            }
            if (!strcmp(BLOCKS[bi].anat, "gallbladder") && rng_bernoulli(c->r, 0.25)) {
                static const char *const gs[] = {"gallstone"};
                add_negative(c, s, bi, "gallstone", gs, 1);
            }
            continue;
        }
        if (!strcmp(BLOCKS[bi].anat, "body"))
            continue; /* nothing to say about the scan as a whole when it holds no device */
        /* a normal anatomy: a group statement, a sentence about several, or its own */
        int g = -1;
        if (ab >= 0 && onto_in_group(o, a, ab))
            g = ab;
        else if (gb >= 0 && onto_in_group(o, a, gb))
            g = gb;
        else if (gw >= 0 && onto_in_group(o, a, gw) && strcmp(BLOCKS[bi].anat, "stomach"))
            g = gw;
        if (g >= 0 && g < 64 && used_group[g])
            continue;
        int try_group = g >= 0 && g < 64 && !tried_group[g];
        if (try_group)
            tried_group[g] = 1;
        if (try_group && group_members_normal(c, g, 0.2) && rng_bernoulli(c->r, 0.35)) {
            const char *tm = phrase_pick(c->in->ph, "normal_group", o->groups[g].id, c->lang, 0, c->r);
            Buf *b;
            if (tm && (b = sent_new(s, bi, BLOCKS[bi].cat))) {
                phrase_expand(b, tm, NULL, 0, c->r);
                group_absent(c, g);
                used_group[g] = 1;
                continue;
            }
        }
        if (!strcmp(BLOCKS[bi].anat, "heart") && gm >= 0 && !used_group[gm] &&
            group_members_normal(c, gm, 0.6) && rng_bernoulli(c->r, 0.15)) {
            const char *tm = phrase_pick(c->in->ph, "normal_group", "mediastinum", c->lang, 0, c->r);
            Buf *b;
            if (tm && (b = sent_new(s, bi, BLOCKS[bi].cat))) {
                phrase_expand(b, tm, NULL, 0, c->r);
                group_absent(c, gm);
                used_group[gm] = 1;
                continue;
            }
        }
        if (cov < 0.5 || rng_bernoulli(c->r, 0.12))
            continue;
        /* several consecutive normal abdominal organs in one sentence */
        if (BLOCKS[bi].cat == CAT_ABD && rng_bernoulli(c->r, 0.3)) {
            int list[6], nl = 0;
            for (int bj = bi; bj < NBLOCKS && nl < 4; bj++) {
                int aj = onto_anatomy(o, BLOCKS[bj].anat);
                if (BLOCKS[bj].cat != CAT_ABD || aj < 0 || anatomy_has_report(c, aj) ||
                    cover_of(c, aj) < 0.5 || !strcmp(BLOCKS[bj].anat, "peritoneum"))
                    break;
                list[nl++] = aj;
            }
            if (nl >= 2) {
                Buf lst = {0};
                for (int i = 0; i < nl; i++) {
                    if (i)
                        buf_puts(&lst, c->lang == LANG_ZH ? (i == nl - 1 && rng_bernoulli(c->r, 0.5) ? "及" : "、")
                                                          : (i == nl - 1 ? " and " : ", "));
                    anat_term(c, list[i], 1, &lst);
                }
                const char *tm = phrase_pick(c->in->ph, "normal_multi", NULL, c->lang, 0, c->r);
                Buf *b;
                if (tm && (b = sent_new(s, bi, BLOCKS[bi].cat))) {
                    PhraseVar v[] = {{"LIST", lst.data}};
                    phrase_expand(b, tm, v, 1, c->r);
                    for (int i = 0; i < nl; i++)
                        anatomy_absent(c, list[i]);
                    bi += nl - 1;
                }
                buf_free(&lst);
                continue;
            }
        }
        /* a normal statement, or pertinent negatives that stand for one */
        const PhraseRow *part[16];
        int n_part = partial_rows(c, a, part, 16);
        int n_norm = phrase_count(c->in->ph, "normal", BLOCKS[bi].anat, c->lang);
        const char *tm = NULL;
        const PhraseRow *pr = NULL;
        if (n_norm + n_part > 0) {
            int k = (int)rng_below(c->r, (uint64_t)(n_norm + n_part));
            if (k < n_norm)
                tm = phrase_nth(c->in->ph, "normal", BLOCKS[bi].anat, c->lang, k);
            else
                tm = (pr = part[k - n_norm])->text;
        }
        Buf *b;
        if (tm && (b = sent_new(s, bi, BLOCKS[bi].cat))) {
            phrase_expand(b, tm, NULL, 0, c->r);
            if (pr)
                row_tasks_absent(c, pr);
            else
                anatomy_absent(c, a);
        }
        if (!strcmp(BLOCKS[bi].anat, "lung") && rng_bernoulli(c->r, 0.3)) {
            static const char *const pe[] = {"pleural_effusion"};
            add_negative(c, s, bi, "pleural_effusion", pe, 1);
        }
    }
}

static void impression_items(Ctx *c, Sentences *items)
{
    const Ontology *o = c->o;
    int aw = task_id(c, "arterial_wall_calcification"), cc = task_id(c, "coronary_artery_wall_calcification");
    int calc_done = 0;
    for (int bi = 0; bi < NBLOCKS; bi++) {
        int a = onto_anatomy(o, BLOCKS[bi].anat);
        for (int pass = 0; pass < 2; pass++)
            for (int t = 0; t < o->n_find; t++) {
                if (o->find[t].anatomy != a || !c->state[t] || is_pleural(c, t) != pass)
                    continue;
                if (c->combo_calc && (t == aw || t == cc)) {
                    if (calc_done)
                        continue;
                    calc_done = 1;
                    Buf *b = sent_new(items, bi, 0);
                    const char *tm = phrase_pick(c->in->ph, "imp",
                                                 "arterial_wall_calcification+coronary_artery_wall_calcification",
                                                 c->lang, 0, c->r);
                    if (b && tm)
                        expand_task(c, tm, aw, b);
                    continue;
                }
                Buf *b = sent_new(items, bi, 0);
                if (!b)
                    return;
                const char *tm = c->state[t] == 1
                                     ? phrase_pick(c->in->ph, "imp", o->find[t].id, c->lang, 1, c->r)
                                     : phrase_pick(c->in->ph, "uimp", o->find[t].id, c->lang, 1, c->r);
                if (tm)
                    expand_task(c, tm, t, b);
                set_label(c, t, c->state[t]);
            }
    }
}

/* English clean-up: sentence capitals, "a" before a vowel, stray spaces. */
static void polish_en(Buf *b)
{
    Buf o = {0};
    const char *s = b->data ? b->data : "";
    size_t n = b->len;
    int cap = 1;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == ' ' && (!o.len || o.data[o.len - 1] == ' ' || o.data[o.len - 1] == '\n'))
            continue;
        if ((ch == ',' || ch == '.') && o.len && o.data[o.len - 1] == ' ')
            o.len--;
        if (!strncmp(s + i, "the both ", 9) || !strncmp(s + i, "the bilateral ", 14) ||
            !strncmp(s + i, "The both ", 9) || !strncmp(s + i, "The bilateral ", 14)) {
            i += 3; /* drop "the"; the space after it is dropped as a double space */
            continue;
        }
        if ((ch == 'a' || ch == 'A') && (i == 0 || !isalpha((unsigned char)s[i - 1])) &&
            i + 2 < n && s[i + 1] == ' ' && strchr("aeiouAEIOU", s[i + 2])) {
            buf_puts(&o, cap || ch == 'A' ? "An" : "an");
            cap = 0;
            continue;
        }
        if (cap && isalpha((unsigned char)ch)) {
            ch = (char)toupper((unsigned char)ch);
            cap = 0;
        } else if (!isspace((unsigned char)ch) && ch != '"' && ch != '(')
            cap = 0;
        buf_putc(&o, ch);
        if (ch == '\n')
            cap = 1;
        else if ((ch == '.' || ch == ':' || ch == ')') && i + 1 < n && s[i + 1] == ' ')
            cap = 1;
    }
    if (!o.data)
        buf_puts(&o, "");
    buf_free(b);
    *b = o;
}

/* Adds the item's closing punctuation unless it has one. */
static void close_item(Buf *b, int lang)
{
    while (b->len && (b->data[b->len - 1] == ' ' || b->data[b->len - 1] == '\n'))
        b->len--;
    if (b->data)
        b->data[b->len] = 0;
    const char *end = lang == LANG_ZH ? "。" : ".";
    size_t el = strlen(end);
    if (b->len >= el && !memcmp(b->data + b->len - el, end, el))
        return;
    if (lang == LANG_ZH && b->len >= 3 && !memcmp(b->data + b->len - 3, "；", 3))
        b->len -= 3;
    buf_puts(b, end);
}

static void pick_into(Ctx *c, Buf *out, const char *prefix, const char *item,
                      const PhraseVar *v, int nv)
{
    const char *t = phrase_pick(c->in->ph, prefix, item, c->lang, 0, c->r);
    if (t)
        phrase_expand(out, t, v, nv, c->r);
}

int report_write(const ReportInput *in, Rng *r, Report *rep, FvErr *e)
{
    memset(rep, 0, sizeof *rep);
    const Ontology *o = in->o;
    if (o->n_find > 256 || o->n_anat > 256)
        return err_set(e, FV_ELIMIT, "report: more than 256 tasks or anatomies");
    Ctx c;
    memset(&c, 0, sizeof c);
    c.in = in;
    c.o = o;
    c.r = r;
    c.rep = rep;
    c.lang = in->lang;
    memset(rep->reported, REPORT_UNMENTIONED, sizeof rep->reported);
    memset(rep->status, -1, sizeof rep->status);

    /* what the radiologist saw: most present findings, a few missed or hedged */
    for (int t = 0; t < o->n_find; t++) {
        if (!lesions_shown(in->ls, t))
            continue;
        double u = rng_uniform(r);
        if (u < in->noise_rate * 0.5) {
            c.state[t] = 0;
            rep->n_missed++;
        } else if (u < in->noise_rate) {
            c.state[t] = -1;
            rep->n_hedged++;
        } else
            c.state[t] = 1;
    }
    if (rng_bernoulli(r, 2 * in->noise_rate)) {
        int cand[256], n = 0;
        for (int t = 0; t < o->n_find; t++)
            if (!lesions_shown(in->ls, t) && in->cover[o->find[t].anatomy] >= 0.5 &&
                strcmp(o->find[t].id, "medical_material"))
                cand[n++] = t;
        if (n) {
            c.state[cand[rng_below(r, (uint64_t)n)]] = -1;
            rep->n_false_hedge++;
        }
    }

    Sentences fs, items;
    memset(&fs, 0, sizeof fs);
    memset(&items, 0, sizeof items);
    findings_section(&c, &fs);
    impression_items(&c, &items);

    /* findings text: one paragraph, or a line per anatomy (English hospital
     * reports sometimes with organ subheadings) */
    int lines = in->style == REPORT_HOSPITAL && rng_bernoulli(r, 0.5);
    int subheads = lines && c.lang == LANG_EN && rng_bernoulli(r, 0.4);
    int last_cat = -1, last_block = -1;
    for (int i = 0; i < fs.n; i++) {
        Buf *b = &fs.b[i];
        if (!b->len)
            continue;
        if (subheads && fs.cat[i] != last_cat) {
            if (rep->findings.len)
                buf_putc(&rep->findings, '\n');
            buf_printf(&rep->findings, "%s: ", CAT_EN[fs.cat[i]]);
        } else if (lines && fs.block[i] != last_block && rep->findings.len)
            buf_puts(&rep->findings, c.lang == LANG_ZH && rng_bernoulli(r, 0.5) ? "\n　　" : "\n");
        else if (rep->findings.len && c.lang == LANG_EN)
            buf_putc(&rep->findings, ' ');
        buf_append(&rep->findings, b->data, b->len);
        last_cat = fs.cat[i];
        last_block = fs.block[i];
    }

    /* impression: numbered items, or plain sentences */
    int nitems = 0;
    for (int i = 0; i < items.n; i++)
        nitems += items.b[i].len > 0;
    int numstyle = nitems > 1 ? (int)rng_below(r, 4) : 3;
    int k = 0;
    for (int i = 0; i < items.n; i++) {
        Buf *b = &items.b[i];
        if (!b->len)
            continue;
        close_item(b, c.lang);
        k++;
        if (rep->impression.len)
            buf_puts(&rep->impression, in->style == REPORT_CTRATE ? " " : "\n");
        if (numstyle == 0)
            buf_printf(&rep->impression, "%d. ", k);
        else if (numstyle == 1)
            buf_printf(&rep->impression, c.lang == LANG_ZH ? "%d、" : "%d) ", k);
        else if (numstyle == 2)
            buf_printf(&rep->impression, c.lang == LANG_ZH ? "（%d）" : "(%d) ", k);
        buf_append(&rep->impression, b->data, b->len);
    }
    if (!nitems)
        pick_into(&c, &rep->impression, "imp_normal", NULL, NULL, 0);
    else if (rng_bernoulli(r, 0.25)) {
        buf_puts(&rep->impression, in->style == REPORT_CTRATE ? " " : "\n");
        if (numstyle <= 2) {
            k++;
            buf_printf(&rep->impression, numstyle == 0 ? "%d. " : numstyle == 1 ? (c.lang == LANG_ZH ? "%d、" : "%d) ")
                                                      : (c.lang == LANG_ZH ? "（%d）" : "(%d) "), k);
        }
        pick_into(&c, &rep->impression, "imp_rest", NULL, NULL, 0);
    }
    sent_free(&fs);
    sent_free(&items);

    /* the other parts */
    char thick[32], phase_key[16], exam_key[96];
    snprintf(thick, sizeof thick, "%.2g", in->thickness_mm);
    snprintf(phase_key, sizeof phase_key, "%s", in->enhanced ? "enhanced" : "plain");
    snprintf(exam_key, sizeof exam_key, "%s:%s", in->scan_type, phase_key);
    PhraseVar tv[] = {{"THICK", thick}};
    pick_into(&c, &rep->technique, "tech", phase_key, tv, 1);
    pick_into(&c, &rep->history, "history", NULL, NULL, 0);
    if (c.lang == LANG_EN) {
        polish_en(&rep->findings);
        polish_en(&rep->impression);
        polish_en(&rep->technique);
        polish_en(&rep->history);
    }
    if (in->style == REPORT_HOSPITAL) {
        Buf *t = &rep->text;
        PhraseVar pv[] = {{"NAME", in->name},   {"ID", in->pid},      {"DATE", in->date},
                          {"DOB", in->dob},     {"PHONE", in->phone}, {"SEX", in->sex},
                          {"AGE", in->age},     {"INST", in->inst},   {"DOC", in->doc},
                          {"DOC2", in->doc2},   {"PRIOR", in->prior_date}};
        int npv = (int)(sizeof pv / sizeof pv[0]);
        pick_into(&c, t, "phi", NULL, pv, npv);
        buf_putc(t, '\n');
        if (rng_bernoulli(r, 0.5)) {
            buf_puts(t, in->inst);
            buf_putc(t, '\n');
        }
        pick_into(&c, t, "head", "exam", NULL, 0);
        if (c.lang == LANG_EN)
            buf_putc(t, ' ');
        pick_into(&c, t, "exam", exam_key, NULL, 0);
        buf_putc(t, '\n');
        if (rng_bernoulli(r, 0.6)) {
            pick_into(&c, t, "head", "history", NULL, 0);
            if (c.lang == LANG_EN)
                buf_putc(t, ' ');
            buf_append(t, rep->history.data, rep->history.len);
            buf_putc(t, '\n');
        }
        if (rng_bernoulli(r, c.lang == LANG_EN ? 0.7 : 0.3)) {
            pick_into(&c, t, "head", "technique", NULL, 0);
            if (c.lang == LANG_EN)
                buf_putc(t, ' ');
            buf_append(t, rep->technique.data, rep->technique.len);
            buf_putc(t, '\n');
        }
        if (c.lang == LANG_EN && rng_bernoulli(r, 0.6)) {
            pick_into(&c, t, "head", "comparison", NULL, 0);
            buf_putc(t, ' ');
            if (in->prior_date)
                pick_into(&c, t, "withcmp", NULL, pv, npv);
            else
                pick_into(&c, t, "nocmp", NULL, NULL, 0);
            buf_putc(t, '\n');
        }
        buf_putc(t, '\n');
        pick_into(&c, t, "head", "findings", NULL, 0);
        buf_puts(t, c.lang == LANG_ZH && rng_bernoulli(r, 0.5) ? "\n　　" : "\n");
        buf_append(t, rep->findings.data, rep->findings.len);
        buf_puts(t, "\n\n");
        pick_into(&c, t, "head", "impression", NULL, 0);
        buf_putc(t, '\n');
        buf_append(t, rep->impression.data, rep->impression.len);
        buf_puts(t, "\n\n");
        pick_into(&c, t, "footer", NULL, pv, npv);
        buf_putc(t, '\n');
    }

    /* anatomy status: abnormal when the impression names it; normal when
     * the scan covers it (align's rule: an anatomy outside the mask is
     * unmentioned, whatever the report says) */
    for (int a = 0; a < o->n_anat; a++) {
        if (!o->anat[a].main)
            continue;
        int abn = 0;
        for (int t = 0; t < o->n_find; t++)
            if (o->find[t].anatomy == a && c.state[t])
                abn = 1;
        int covered = in->covered ? in->covered[a] != 0 : in->cover[a] > 0;
        if (abn || covered)
            rep->status[a] = (signed char)abn;
    }
    Buf *all[] = {&rep->text, &rep->findings, &rep->impression, &rep->history, &rep->technique};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]->failed) {
            report_free(rep);
            return err_set(e, FV_ENOMEM, "report: out of memory");
        }
    return 0;
}

void report_free(Report *rep)
{
    buf_free(&rep->text);
    buf_free(&rep->findings);
    buf_free(&rep->impression);
    buf_free(&rep->history);
    buf_free(&rep->technique);
}
