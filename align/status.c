#include "status.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

const char *status_name(AnatStatus s)
{
    switch (s) {
    case STATUS_UNMENTIONED: return "unmentioned";
    case STATUS_NORMAL: return "normal";
    case STATUS_ABNORMAL: return "abnormal";
    }
    return "?";
}

int status_parse(const char *s)
{
    if (!strcmp(s, "unmentioned"))
        return STATUS_UNMENTIONED;
    if (!strcmp(s, "normal"))
        return STATUS_NORMAL;
    if (!strcmp(s, "abnormal"))
        return STATUS_ABNORMAL;
    return -1;
}

int status_rule_parse(const char *s)
{
    if (!strcmp(s, "impression"))
        return RULE_IMPRESSION;
    if (!strcmp(s, "findings"))
        return RULE_FINDINGS;
    return -1;
}

void status_free(AnatText *t, int n)
{
    for (int i = 0; i < n; i++) {
        buf_free(&t[i].findings_text);
        buf_free(&t[i].impression_text);
        buf_free(&t[i].text);
        buf_free(&t[i].diseases);
    }
}

/* Appends one sentence to a text: trimmed, and separated from what is there
 * by a space in English (Chinese sentences carry their own full stop and
 * need no space). */
static void text_add(Buf *b, const char *s, int zh)
{
    const char *end = s + strlen(s);
    while (s < end && isspace((unsigned char)*s))
        s++;
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    if (end == s)
        return;
    if (b->len && !zh)
        buf_putc(b, ' ');
    buf_append(b, s, (size_t)(end - s));
}

/* Label of a task: its value and whether a human set it. */
static const DocLabel *label_of(const AlignDoc *d, int task)
{
    for (int i = 0; i < d->n_lab; i++)
        if (d->lab[i].task == task)
            return &d->lab[i];
    return NULL;
}

/* A finding counts as positive evidence when it is present or uncertain and
 * no human label says the task is absent. */
static int finding_positive(const AlignDoc *d, const DocFinding *f)
{
    if (f->polarity == 0)
        return 0;
    const DocLabel *l = label_of(d, f->task);
    return !(l && l->human && l->value == 0);
}

int status_build(const Ontology *o, const AlignDoc *d, const LinkSet *links,
                 const unsigned char *covered, StatusRule rule, unsigned text_methods,
                 AnatText *out, FvErr *e)
{
    int na = o->n_anat;
    /* Texts: links are grouped by sentence in report order, so appending in
     * link order keeps report order per anatomy. */
    for (int i = 0; i < links->n; i++) {
        const Link *l = &links->v[i];
        if (l->rejected || l->anatomy < 0 || l->anatomy >= na || l->sent < 0 || l->sent >= d->n_sent)
            continue;
        const DocSentence *s = &d->sent[l->sent];
        AnatText *t = &out[l->anatomy];
        t->linked++;
        if (!(text_methods & (1u << l->method)))
            continue;
        if (s->section == SECTION_IMPRESSION)
            text_add(&t->impression_text, s->text, d->zh);
        else if (s->section == SECTION_FINDINGS)
            text_add(&t->findings_text, s->text, d->zh);
    }
    /* Abnormal: a positive finding of the anatomy in a sentence linked to it,
     * in the sections the rule reads. */
    unsigned char *abnormal = calloc((size_t)na, 1);
    if (!abnormal)
        return err_set(e, FV_ENOMEM, "status: out of memory");
    for (int k = 0; k < d->n_find; k++) {
        const DocFinding *f = &d->find[k];
        if (f->anatomy < 0 || f->anatomy >= na || f->sent < 0 || f->sent >= d->n_sent)
            continue;
        Section sec = d->sent[f->sent].section;
        int counts = sec == SECTION_IMPRESSION || (rule == RULE_FINDINGS && sec == SECTION_FINDINGS);
        if (counts && finding_positive(d, f) && links_has(links, f->sent, f->anatomy))
            abnormal[f->anatomy] = 1;
    }
    /* Impression sentences naming an anatomy without any finding of it: the
     * text may describe something the task list lacks; auditors see it. */
    for (int i = 0; i < links->n; i++) {
        const Link *l = &links->v[i];
        if (l->rejected || l->anatomy < 0 || l->anatomy >= na || l->method != LINK_MENTION ||
            d->sent[l->sent].section != SECTION_IMPRESSION)
            continue;
        int has = 0;
        for (int k = 0; k < d->n_find && !has; k++)
            has = d->find[k].sent == l->sent && d->find[k].anatomy == l->anatomy;
        out[l->anatomy].imp_mention_only += !has;
    }
    /* Diseases per task: the label when there is one, else the findings. */
    signed char *task_val = malloc((size_t)(o->n_find > 0 ? o->n_find : 1));
    if (!task_val) {
        free(abnormal);
        return err_set(e, FV_ENOMEM, "status: out of memory");
    }
    for (int t = 0; t < o->n_find; t++) {
        const DocLabel *l = label_of(d, t);
        if (l) {
            task_val[t] = (signed char)(l->value == LABEL_UNSET ? 0 : l->value);
            continue;
        }
        int v = 0;
        for (int k = 0; k < d->n_find; k++) {
            const DocFinding *f = &d->find[k];
            if (f->task != t)
                continue;
            if (f->polarity == 1)
                v = 1;
            else if (f->polarity == -1 && v != 1)
                v = -1;
        }
        task_val[t] = (signed char)v;
    }
    for (int a = 0; a < na; a++) {
        AnatText *t = &out[a];
        t->covered = covered ? covered[a] != 0 : t->linked > 0;
        if (abnormal[a])
            t->status = STATUS_ABNORMAL;
        else
            t->status = t->covered ? STATUS_NORMAL : STATUS_UNMENTIONED;
        if (t->status == STATUS_ABNORMAL) {
            if (t->impression_text.len)
                buf_append(&t->text, t->impression_text.data, t->impression_text.len);
            if (t->findings_text.len) {
                if (t->text.len && !d->zh)
                    buf_putc(&t->text, ' ');
                buf_append(&t->text, t->findings_text.data, t->findings_text.len);
            }
        } else if (t->status == STATUS_NORMAL) {
            onto_normal_text(o, a, d->zh, &t->text);
        }
        JsonW w;
        jw_init(&w, &t->diseases, 0);
        jw_arr(&w);
        for (int k = 0; k < o->n_find; k++) {
            if (o->find[k].anatomy == a && task_val[k] != 0) {
                jw_str(&w, o->find[k].id);
                t->n_diseases++;
            }
        }
        jw_arr_end(&w);
    }
    free(task_val);
    free(abnormal);
    for (int a = 0; a < na; a++) {
        AnatText *t = &out[a];
        if (t->findings_text.failed || t->impression_text.failed || t->text.failed ||
            t->diseases.failed)
            return err_set(e, FV_ENOMEM, "status: out of memory");
    }
    return 0;
}
