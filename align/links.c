#include "links.h"

#include <stdlib.h>
#include <string.h>

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
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 64;
        Link *v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v)
            return err_set(e, FV_ENOMEM, "links: out of memory");
        s->v = v;
        s->cap = cap;
    }
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

int links_build(const Ontology *o, const AlignDoc *d, const unsigned char *covered,
                LinkSet *out, FvErr *e)
{
    int na = o->n_anat;
    if (na <= 0 || d->n_sent <= 0)
        return 0;
    /* Per anatomy: the best method found for the current sentence
     * (LINK_NONE when none), and the previous sentence's effective links. */
    unsigned char *cand = malloc((size_t)na);
    unsigned char *prev = calloc((size_t)na, 1);
    unsigned char *rejected = malloc((size_t)na);
    unsigned char *group_hit = calloc((size_t)(o->n_groups > 0 ? o->n_groups : 1), 1);
    if (!cand || !prev || !rejected || !group_hit) {
        free(cand);
        free(prev);
        free(rejected);
        free(group_hit);
        return err_set(e, FV_ENOMEM, "links: out of memory");
    }
    int rc = 0, prev_section = -1, prev_any = 0;
    for (int s = 0; s < d->n_sent && rc == 0; s++) {
        memset(cand, LINK_NONE, (size_t)na);
        memset(group_hit, 0, (size_t)(o->n_groups > 0 ? o->n_groups : 1));
        int n_groups = 0;
        for (int k = 0; k < d->n_men; k++) {
            const DocMention *m = &d->men[k];
            if (m->sent != s)
                continue;
            if (m->anatomy >= 0 && m->anatomy < na)
                cand[m->anatomy] = LINK_MENTION;
            else if (m->group >= 0 && m->group < o->n_groups && !group_hit[m->group]) {
                group_hit[m->group] = 1;
                n_groups++;
            }
        }
        for (int k = 0; k < d->n_find; k++) {
            const DocFinding *f = &d->find[k];
            if (f->sent == s && f->anatomy >= 0 && f->anatomy < na && cand[f->anatomy] > LINK_FINDING)
                cand[f->anatomy] = LINK_FINDING;
        }
        int specific = n_groups > 0;
        for (int a = 0; a < na && !specific; a++)
            specific = cand[a] != LINK_NONE && !is_whole_region(&o->anat[a]);
        if (specific)
            for (int a = 0; a < na; a++)
                if (is_whole_region(&o->anat[a]))
                    cand[a] = LINK_NONE;
        for (int g = 0; g < o->n_groups && n_groups; g++) {
            if (!group_hit[g])
                continue;
            for (int a = 0; a < na; a++) {
                int reach = covered ? covered[a] : o->anat[a].main;
                if (reach && cand[a] > LINK_GROUP && onto_in_group(o, a, g))
                    cand[a] = LINK_GROUP;
            }
        }
        int any = 0;
        for (int a = 0; a < na && !any; a++)
            any = cand[a] != LINK_NONE;
        if (!any && prev_any && (int)d->sent[s].section == prev_section)
            for (int a = 0; a < na; a++)
                if (prev[a])
                    cand[a] = LINK_CONTINUATION;

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
            Link l = {s, a, (LinkMethod)cand[a], link_confidence[cand[a]], cand[a] != LINK_AUDIT,
                      rejected[a] && cand[a] != LINK_AUDIT};
            rc = set_push(out, l, e);
            n_effective += !l.rejected;
        }
        if (rc == 0 && n_effective == 0) {
            Link l = {s, -1, LINK_NONE, link_confidence[LINK_NONE], 1, 0};
            rc = set_push(out, l, e);
        }
        /* This sentence's effective links are the context of the next one. */
        for (int a = 0; a < na; a++)
            prev[a] = cand[a] != LINK_NONE && !rejected[a];
        prev_any = n_effective > 0;
        prev_section = (int)d->sent[s].section;
    }
    free(cand);
    free(prev);
    free(rejected);
    free(group_hit);
    return rc;
}
