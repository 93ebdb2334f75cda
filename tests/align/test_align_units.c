/* Unit tests of the align stage's in-memory parts: links, status and texts,
 * mask regions, the per-anatomy table. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "anatomy_meta.h"
#include "fvlm_config.h"
#include "links.h"
#include "ontology.h"
#include "regions.h"
#include "rng.h"
#include "status.h"
#include "test.h"

static Ontology *O;
static LinkCues CUES;

static int A(const char *id)
{
    int a = onto_anatomy(O, id);
    if (a < 0) {
        fprintf(stderr, "test setup: unknown anatomy %s\n", id);
        exit(2);
    }
    return a;
}

static int G(const char *id) { return onto_group(O, id); }
static int T(const char *id) { return onto_finding(O, id); }

/* A report under construction. */
typedef struct Doc {
    AlignDoc d;
    DocSentence s[32];
    DocMention m[64];
    DocFinding f[64];
    DocLabel l[16];
    DocOverride v[16];
} Doc;

static void doc_init(Doc *x, int zh)
{
    memset(x, 0, sizeof *x);
    x->d.zh = zh;
    x->d.sent = x->s;
    x->d.men = x->m;
    x->d.find = x->f;
    x->d.lab = x->l;
    x->d.ovr = x->v;
}

static int sent(Doc *x, Section sec, const char *text)
{
    int i = x->d.n_sent++;
    x->s[i] = (DocSentence){100 + i, i, sec, text};
    return i;
}

static void mention(Doc *x, int s, const char *anatomy)
{
    x->m[x->d.n_men++] = (DocMention){s, A(anatomy), -1, 0};
}

/* A mention by a generic term ("parenchyma"). */
static void generic(Doc *x, int s, const char *anatomy)
{
    x->m[x->d.n_men++] = (DocMention){s, A(anatomy), -1, 1};
}

static void group(Doc *x, int s, const char *g)
{
    x->m[x->d.n_men++] = (DocMention){s, -1, G(g), 0};
}

static void finding(Doc *x, int s, const char *task, int polarity)
{
    int t = T(task);
    x->f[x->d.n_find++] = (DocFinding){s, t, O->find[t].anatomy, polarity};
}

/* The effective links of sentence s as "a,b,c" (ontology order; "-" for the
 * none record) with their methods. */
static const char *links_of(const LinkSet *ls, int s, char *buf, size_t n)
{
    buf[0] = '\0';
    for (int i = 0; i < ls->n; i++) {
        const Link *l = &ls->v[i];
        if (l->sent != s || l->rejected)
            continue;
        size_t k = strlen(buf);
        snprintf(buf + k, n - k, "%s%s:%s", k ? "," : "", l->anatomy >= 0 ? O->anat[l->anatomy].id : "-",
                 link_method_name(l->method));
    }
    return buf;
}

/* ---------------------------------------------------------------- links */

static void test_mention_and_finding_link_their_anatomies(void)
{
    Doc x;
    doc_init(&x, 0);
    int s0 = sent(&x, SECTION_FINDINGS, "Heart contour and size are normal.");
    mention(&x, s0, "heart");
    int s1 = sent(&x, SECTION_FINDINGS, "No pleural effusion was detected.");
    finding(&x, s1, "pleural_effusion", 0);
    LinkSet ls = {0};
    FvErr e = {0};
    CHECK_OK(links_build(O, &x.d, NULL, &CUES, &ls, &e), &e);
    char b[256];
    CHECK_STR(links_of(&ls, s0, b, sizeof b), "heart:mention");
    CHECK_STR(links_of(&ls, s1, b, sizeof b), "lung:finding");
    links_free(&ls);
}

static void test_continuation_inherits_previous_sentence_within_section(void)
{
    Doc x;
    doc_init(&x, 0);
    int s0 = sent(&x, SECTION_FINDINGS, "A nodule in the right lower lobe.");
    mention(&x, s0, "lung");
    finding(&x, s0, "lung_nodule", 1);
    int s1 = sent(&x, SECTION_FINDINGS, "It measures 12 mm.");
    int s2 = sent(&x, SECTION_FINDINGS, "Stable since the last study.");
    int s3 = sent(&x, SECTION_IMPRESSION, "Follow-up is recommended.");
    LinkSet ls = {0};
    FvErr e = {0};
    CHECK_OK(links_build(O, &x.d, NULL, &CUES, &ls, &e), &e);
    char b[256];
    CHECK_STR(links_of(&ls, s0, b, sizeof b), "lung:mention");
    CHECK_STR(links_of(&ls, s1, b, sizeof b), "lung:continuation");
    CHECK_STR(links_of(&ls, s2, b, sizeof b), "lung:continuation");
    /* A new section starts without context: the sentence links to none. */
    CHECK_STR(links_of(&ls, s3, b, sizeof b), "-:none");
    links_free(&ls);
}

static void test_group_statement_reaches_covered_members_only(void)
{
    Doc x;
    doc_init(&x, 0);
    int s0 = sent(&x, SECTION_FINDINGS, "Upper abdominal organs included in the sections are normal.");
    group(&x, s0, "upper_abdomen");
    mention(&x, s0, "body");
    unsigned char *covered = calloc((size_t)O->n_anat, 1);
    covered[A("liver")] = covered[A("spleen")] = covered[A("lung")] = 1;
    LinkSet ls = {0};
    FvErr e = {0};
    CHECK_OK(links_build(O, &x.d, covered, &CUES, &ls, &e), &e);
    char b[256];
    /* body ("sections") yields to the group; pancreas is not in the scan;
     * lung is covered but not upper abdomen. */
    CHECK_STR(links_of(&ls, s0, b, sizeof b), "liver:group,spleen:group");
    links_free(&ls);
    free(covered);
}

static void test_group_without_mask_reaches_members_with_tasks(void)
{
    Doc x;
    doc_init(&x, 1);
    int s0 = sent(&x, SECTION_FINDINGS, "纵隔结构未见异常。");
    group(&x, s0, "mediastinum");
    LinkSet ls = {0};
    FvErr e = {0};
    CHECK_OK(links_build(O, &x.d, NULL, &CUES, &ls, &e), &e);
    char b[512];
    links_of(&ls, s0, b, sizeof b);
    CHECK(strstr(b, "heart:group") && strstr(b, "aorta:group") && strstr(b, "esophagus:group") &&
              strstr(b, "trachea:group"),
          "mediastinum group without a mask links %s, expected heart, aorta, esophagus, trachea", b);
    CHECK(!strstr(b, "pulmonary_vein"), "a member without tasks was linked without a mask: %s", b);
    links_free(&ls);
}

/* Before the first heading, a region word that states no finding names the
 * examination or a symptom ("胸部平扫CT", "胸痛"): no group links; an organ
 * mention there still links, and so does a group with a finding. */
static void test_title_and_complaint_before_the_findings_link_no_group(void)
{
    Doc x;
    doc_init(&x, 1);
    int s0 = sent(&x, SECTION_OTHER, "胸部平扫CT");
    group(&x, s0, "mediastinum");
    int s1 = sent(&x, SECTION_OTHER, "肝癌术后复查");
    mention(&x, s1, "liver");
    int s2 = sent(&x, SECTION_FINDINGS, "纵隔结构未见异常。");
    group(&x, s2, "mediastinum");
    LinkSet ls = {0};
    FvErr e = {0};
    CHECK_OK(links_build(O, &x.d, NULL, &CUES, &ls, &e), &e);
    char b[512];
    CHECK_STR(links_of(&ls, s0, b, sizeof b), "-:none");
    CHECK_STR(links_of(&ls, s1, b, sizeof b), "liver:mention");
    links_of(&ls, s2, b, sizeof b);
    CHECK(strstr(b, "heart:group") != NULL, "the findings' group statement lost its links: %s", b);
    links_free(&ls);
}

static void test_body_finding_stays_beside_a_specific_anatomy(void)
{
    Doc x;
    doc_init(&x, 0);
    int s0 = sent(&x, SECTION_FINDINGS, "There is a cardiac pacemaker in place.");
    mention(&x, s0, "heart");
    finding(&x, s0, "medical_material", 1);
    int s1 = sent(&x, SECTION_FINDINGS, "No pleural effusion in the study area.");
    mention(&x, s1, "body");
    finding(&x, s1, "pleural_effusion", 0);
    LinkSet ls = {0};
    FvErr e = {0};
    CHECK_OK(links_build(O, &x.d, NULL, &CUES, &ls, &e), &e);
    char b[256];
    CHECK_STR(links_of(&ls, s0, b, sizeof b), "heart:mention,body:finding");
    CHECK_STR(links_of(&ls, s1, b, sizeof b), "lung:finding");
    links_free(&ls);
}

static void test_body_mention_alone_links_body(void)
{
    Doc x;
    doc_init(&x, 0);
    int s0 = sent(&x, SECTION_FINDINGS, "No abnormality in the study area.");
    mention(&x, s0, "body");
    LinkSet ls = {0};
    FvErr e = {0};
    CHECK_OK(links_build(O, &x.d, NULL, &CUES, &ls, &e), &e);
    char b[256];
    CHECK_STR(links_of(&ls, s0, b, sizeof b), "body:mention");
    links_free(&ls);
}

static void test_rejected_link_is_kept_but_not_used_or_continued(void)
{
    Doc x;
    doc_init(&x, 0);
    int s0 = sent(&x, SECTION_FINDINGS, "Heart and aorta are normal.");
    mention(&x, s0, "heart");
    mention(&x, s0, "aorta");
    int s1 = sent(&x, SECTION_FINDINGS, "Calibre is normal.");
    int s2 = sent(&x, SECTION_FINDINGS, "The thyroid is unremarkable.");
    x.v[x.d.n_ovr++] = (DocOverride){s0, A("heart"), 0};
    x.v[x.d.n_ovr++] = (DocOverride){s2, A("thyroid_gland"), 1};
    LinkSet ls = {0};
    FvErr e = {0};
    CHECK_OK(links_build(O, &x.d, NULL, &CUES, &ls, &e), &e);
    char b[256];
    CHECK_STR(links_of(&ls, s0, b, sizeof b), "aorta:mention");
    CHECK_STR(links_of(&ls, s1, b, sizeof b), "aorta:continuation");
    CHECK_STR(links_of(&ls, s2, b, sizeof b), "aorta:continuation,thyroid_gland:audit");
    int rejected_kept = 0, audit_computed = 1;
    for (int i = 0; i < ls.n; i++) {
        rejected_kept += ls.v[i].sent == s0 && ls.v[i].anatomy == A("heart") && ls.v[i].rejected;
        if (ls.v[i].method == LINK_AUDIT)
            audit_computed = ls.v[i].computed;
    }
    CHECK(rejected_kept == 1, "the rejected heart link is not kept for the record");
    CHECK(audit_computed == 0, "an annotator's link is marked as computed by align");
    CHECK(!links_has(&ls, s0, A("heart")), "links_has reports a rejected link");
    links_free(&ls);
}

static void test_technique_remark_does_not_inherit_the_previous_anatomy(void)
{
    Doc x;
    doc_init(&x, 0);
    int s0 = sent(&x, SECTION_FINDINGS, "A 7 mm nodule in the left upper lobe.");
    mention(&x, s0, "lung");
    int s1 = sent(&x, SECTION_FINDINGS, "It cannot be evaluated further without contrast.");
    int s2 = sent(&x, SECTION_FINDINGS, "Its margins are smooth.");
    int s3 = sent(&x, SECTION_FINDINGS, "甲状腺右叶见结节。");
    mention(&x, s3, "thyroid_gland");
    int s4 = sent(&x, SECTION_FINDINGS, "建议增强扫描。");
    LinkSet ls = {0};
    FvErr e = {0};
    CHECK_OK(links_build(O, &x.d, NULL, &CUES, &ls, &e), &e);
    char b[256];
    CHECK_STR(links_of(&ls, s1, b, sizeof b), "-:none");
    /* After an unlinked sentence there is no context to continue. */
    CHECK_STR(links_of(&ls, s2, b, sizeof b), "-:none");
    CHECK_STR(links_of(&ls, s4, b, sizeof b), "-:none");
    links_free(&ls);
    /* Without cues the same sentences inherit. */
    CHECK_OK(links_build(O, &x.d, NULL, NULL, &ls, &e), &e);
    CHECK_STR(links_of(&ls, s1, b, sizeof b), "lung:continuation");
    CHECK_STR(links_of(&ls, s4, b, sizeof b), "thyroid_gland:continuation");
    links_free(&ls);
}

static void test_group_normal_statement_findings_are_group_links(void)
{
    Doc x;
    doc_init(&x, 0);
    /* parse states every task of every member absent for a group normal
     * statement; those findings must not make finding links. */
    int s0 = sent(&x, SECTION_FINDINGS, "Upper abdominal organs are normal.");
    group(&x, s0, "upper_abdomen");
    finding(&x, s0, "fatty_liver", 0);
    finding(&x, s0, "kidney_cyst", 0);
    int s1 = sent(&x, SECTION_FINDINGS, "No free fluid.");
    int s2 = sent(&x, SECTION_FINDINGS, "Hepatic steatosis in the upper abdominal organs.");
    group(&x, s2, "upper_abdomen");
    finding(&x, s2, "fatty_liver", 1);
    unsigned char *covered = calloc((size_t)O->n_anat, 1);
    covered[A("liver")] = 1;
    LinkSet ls = {0};
    FvErr e = {0};
    CHECK_OK(links_build(O, &x.d, covered, &CUES, &ls, &e), &e);
    char b[256];
    /* The kidney is not in the scan: the group statement does not reach it. */
    CHECK_STR(links_of(&ls, s0, b, sizeof b), "liver:group");
    CHECK_STR(links_of(&ls, s1, b, sizeof b), "liver:group");
    /* A present finding is the sentence's own evidence. */
    CHECK_STR(links_of(&ls, s2, b, sizeof b), "liver:finding");
    AnatText *t = calloc((size_t)O->n_anat, sizeof *t);
    CHECK_OK(status_build(O, &x.d, &ls, covered, RULE_FINDINGS, TEXT_METHODS_DEFAULT, t, &e), &e);
    /* Group statements stay out of the texts by default. */
    CHECK_STR(t[A("liver")].findings_text.data, "Hepatic steatosis in the upper abdominal organs.");
    status_free(t, O->n_anat);
    memset(t, 0, (size_t)O->n_anat * sizeof *t);
    CHECK_OK(status_build(O, &x.d, &ls, covered, RULE_FINDINGS, TEXT_METHODS_DEFAULT | (1u << LINK_GROUP),
                          t, &e), &e);
    CHECK_STR(t[A("liver")].findings_text.data,
              "Upper abdominal organs are normal. No free fluid. Hepatic steatosis in the upper abdominal organs.");
    status_free(t, O->n_anat);
    free(t);
    links_free(&ls);
    free(covered);
}

static void test_generic_term_yields_to_a_named_anatomy(void)
{
    Doc x;
    doc_init(&x, 0);
    int s0 = sent(&x, SECTION_FINDINGS, "The parenchymal density of the liver is decreased.");
    generic(&x, s0, "lung");
    mention(&x, s0, "liver");
    int s1 = sent(&x, SECTION_FINDINGS, "Ground-glass areas in the right lower lobe.");
    generic(&x, s1, "lung");
    finding(&x, s1, "lung_opacity", 1);
    LinkSet ls = {0};
    FvErr e = {0};
    CHECK_OK(links_build(O, &x.d, NULL, &CUES, &ls, &e), &e);
    char b[256];
    CHECK_STR(links_of(&ls, s0, b, sizeof b), "liver:mention");
    CHECK_STR(links_of(&ls, s1, b, sizeof b), "lung:mention");
    links_free(&ls);
    CHECK(links_cues_generic(&CUES, " Parenchymal "), "'Parenchymal' is not a generic term");
    CHECK(links_cues_generic(&CUES, "上叶"), "'上叶' is not a generic term");
    CHECK(!links_cues_generic(&CUES, "right lung"), "'right lung' is a generic term");
}

static void test_a_sentence_of_weak_mentions_continues_its_context(void)
{
    Doc x;
    doc_init(&x, 0);
    int s0 = sent(&x, SECTION_FINDINGS, "A calcified focus in the liver dome.");
    mention(&x, s0, "liver");
    int s1 = sent(&x, SECTION_FINDINGS, "It may be compatible with parenchymal calcification.");
    generic(&x, s1, "lung");
    /* No context to continue: the generic term's own anatomy. */
    int s2 = sent(&x, SECTION_IMPRESSION, "Parenchymal calcification.");
    generic(&x, s2, "lung");
    /* A cause is weak too ("secondary to cardiac pathology"). */
    int s3 = sent(&x, SECTION_IMPRESSION, "The appearance may be secondary to cardiac pathology.");
    generic(&x, s3, "heart");
    LinkSet ls = {0};
    FvErr e = {0};
    CHECK_OK(links_build(O, &x.d, NULL, &CUES, &ls, &e), &e);
    char b[256];
    CHECK_STR(links_of(&ls, s1, b, sizeof b), "liver:continuation");
    CHECK_STR(links_of(&ls, s2, b, sizeof b), "lung:mention");
    CHECK_STR(links_of(&ls, s3, b, sizeof b), "lung:continuation");
    links_free(&ls);
}

static void test_cause_cue_marks_the_mentions_after_it_in_its_clause(void)
{
    const char *t = "Septal thickening in both lungs (secondary to cardiac pathology?).";
    size_t at = (size_t)(strstr(t, "cardiac") - t);
    CHECK(links_cues_cause(&CUES, t, at), "'cardiac' after 'secondary to' is not a cause");
    CHECK(!links_cues_cause(&CUES, t, (size_t)(strstr(t, "lungs") - t)),
          "'lungs' before the cue is a cause");
    const char *u = "Narrowing due to a mass, and the heart is enlarged.";
    CHECK(!links_cues_cause(&CUES, u, (size_t)(strstr(u, "heart") - u)),
          "a mention in the next clause is a cause");
    const char *v = "Trachea is narrowed secondary to thyroid compression.";
    CHECK(links_cues_cause(&CUES, v, (size_t)(strstr(v, "thyroid") - v)), "'thyroid' is not a cause");
    CHECK(!links_cues_cause(&CUES, v, strlen(v) + 5), "an offset past the sentence is a cause");
    const char *w = "双肺间质改变，继发于心功能不全可能。";
    CHECK(links_cues_cause(&CUES, w, (size_t)(strstr(w, "心") - w)), "'心' after '继发于' is not a cause");
}

static void test_a_technique_remark_without_a_finding_links_to_none(void)
{
    Doc x;
    doc_init(&x, 0);
    int s0 = sent(&x, SECTION_FINDINGS, "Heart size is normal.");
    mention(&x, s0, "heart");
    int s1 = sent(&x, SECTION_FINDINGS, "When examined in the lung parenchyma window;");
    generic(&x, s1, "lung");
    int s2 = sent(&x, SECTION_FINDINGS, "Calibration of the trachea and main bronchi is normal.");
    mention(&x, s2, "trachea");
    int s3 = sent(&x, SECTION_FINDINGS,
                  "Mediastinal vascular structures and cardiac examination were not evaluated "
                  "optimally because of the lack of IV contrast.");
    mention(&x, s3, "heart");
    mention(&x, s3, "mediastinum");
    int s4 = sent(&x, SECTION_FINDINGS, "It measures 12 mm.");
    /* A finding keeps the sentence's links, whatever the remark. */
    int s5 = sent(&x, SECTION_FINDINGS, "In the lung window, a 5 mm nodule in the right lung.");
    mention(&x, s5, "lung");
    finding(&x, s5, "lung_nodule", 1);
    LinkSet ls = {0};
    FvErr e = {0};
    CHECK_OK(links_build(O, &x.d, NULL, &CUES, &ls, &e), &e);
    char b[256];
    CHECK_STR(links_of(&ls, s1, b, sizeof b), "-:none");
    CHECK_STR(links_of(&ls, s2, b, sizeof b), "trachea:mention");
    CHECK_STR(links_of(&ls, s3, b, sizeof b), "-:none");
    CHECK_STR(links_of(&ls, s4, b, sizeof b), "-:none");
    CHECK_STR(links_of(&ls, s5, b, sizeof b), "lung:mention");
    links_free(&ls);
    CHECK(links_cues_stop(&CUES, "When examined in the lung parenchyma window;"),
          "a technique cue is not a stop cue");
    const char *lead = "In the evaluation of both lungs in the parenchyma window; Calibration of the "
                       "trachea is normal; no nodule in both lungs.";
    CHECK(links_cues_lead_in(&CUES, lead, (size_t)(strstr(lead, "lungs") - lead)),
          "a mention in the technique lead-in is not in it");
    CHECK(!links_cues_lead_in(&CUES, lead, (size_t)(strstr(lead, "trachea") - lead)),
          "a mention after the lead-in is in it");
    CHECK(!links_cues_lead_in(&CUES, lead, (size_t)(strstr(lead, "lungs.") - lead)),
          "a mention in the last clause is in the lead-in");
    const char *plain = "Nodules in both lungs; the largest is 5 mm.";
    CHECK(!links_cues_lead_in(&CUES, plain, 10), "a clause without a technique cue is a lead-in");
    CHECK(links_cues_stop(&CUES, "Clinical and laboratory correlation is recommended."),
          "a call for laboratory correlation is not a stop cue");
}

static void test_landmark_device_and_anaphor_cues(void)
{
    const char *t = "A nodule adjacent to the aortic arch in the right upper lobe.";
    CHECK(links_cues_landmark(&CUES, t, (size_t)(strstr(t, "aortic") - t)),
          "'aortic arch' after 'adjacent to the' is not a landmark");
    CHECK(!links_cues_landmark(&CUES, t, (size_t)(strstr(t, "right") - t)),
          "'right upper lobe' reads as a landmark");
    const char *u = "Lymph nodes at the level of the carina, and in the left hilum.";
    CHECK(!links_cues_landmark(&CUES, u, (size_t)(strstr(u, "left hilum") - u)),
          "a landmark reaches past a comma");
    CHECK(links_cues_device(&CUES, "port chamber") && links_cues_device(&CUES, "导管"),
          "a port chamber or a catheter is not a device cue");
    CHECK(!links_cues_device(&CUES, "stent"), "a stent (in the organ it treats) is a device cue");
    CHECK(links_cues_anaphor(&CUES, "It measures 12 mm.") && links_cues_anaphor(&CUES, "其大小约2cm。"),
          "an anaphor is not recognised");
    CHECK(!links_cues_anaphor(&CUES, "Hepatosteatosis.") && !links_cues_anaphor(&CUES, "Items are"),
          "a sentence naming something else reads as an anaphor");

    /* the linker: a device's place is weak; an impression item that does
     * not refer back does not continue the one before */
    Doc x;
    doc_init(&x, 0);
    int s0 = sent(&x, SECTION_FINDINGS, "The port chamber is observed in the right hemithorax.");
    mention(&x, s0, "lung");
    int t2 = T("medical_material");
    x.f[x.d.n_find++] = (DocFinding){s0, t2, O->find[t2].anatomy, 1, "port chamber", 4, 16};
    int s1 = sent(&x, SECTION_IMPRESSION, "Right lower lobe nodule.");
    mention(&x, s1, "lung");
    int s2 = sent(&x, SECTION_IMPRESSION, "Degenerative changes.");
    int s3 = sent(&x, SECTION_IMPRESSION, "Right lower lobe nodule.");
    mention(&x, s3, "lung");
    int s4 = sent(&x, SECTION_IMPRESSION, "It measures 8 mm.");
    int s5 = sent(&x, SECTION_FINDINGS, "Heart size is normal.");
    mention(&x, s5, "heart");
    /* a prior finding reported gone does not continue the heart */
    int s6 = sent(&x, SECTION_FINDINGS, "The previously described lesion is no longer seen.");
    LinkSet ls = {0};
    FvErr e = {0};
    CHECK_OK(links_build(O, &x.d, NULL, &CUES, &ls, &e), &e);
    char b[256];
    CHECK_STR(links_of(&ls, s0, b, sizeof b), "body:finding");
    CHECK_STR(links_of(&ls, s2, b, sizeof b), "-:none");
    CHECK_STR(links_of(&ls, s4, b, sizeof b), "lung:continuation");
    CHECK_STR(links_of(&ls, s6, b, sizeof b), "-:none");
    links_free(&ls);
}

static void test_links_explain_themselves_term_offsets_rule_and_continued_sentence(void)
{
    Doc x;
    doc_init(&x, 0);
    /* "Findings: The heart is enlarged. It measures 14 cm. Evaluation is suboptimal."
     * as a report: sentences at bytes 10, 34 and 52 */
    int s0 = sent(&x, SECTION_FINDINGS, "The heart is enlarged.");
    x.s[s0].start = 10;
    x.m[x.d.n_men++] = (DocMention){s0, A("heart"), -1, 0, "heart", 14, 19, "anatomy:heart"};
    int s1 = sent(&x, SECTION_FINDINGS, "It measures 14 cm.");
    x.s[s1].start = 34;
    int s2 = sent(&x, SECTION_FINDINGS, "No pleural effusion.");
    x.s[s2].start = 53;
    int t = T("pleural_effusion");
    x.f[x.d.n_find++] = (DocFinding){s2, t, O->find[t].anatomy, 0, "pleural effusion", 56, 72};
    int s3 = sent(&x, SECTION_FINDINGS, "Evaluation is suboptimal.");
    x.s[s3].start = 74;
    LinkSet ls = {0};
    FvErr e = {0};
    CHECK_OK(links_build(O, &x.d, NULL, &CUES, &ls, &e), &e);
    int seen = 0;
    for (int i = 0; i < ls.n; i++) {
        const Link *l = &ls.v[i];
        if (l->sent == s0) {
            CHECK_STR(l->rule, "anatomy:heart");
            CHECK_STR(l->term ? l->term : "(null)", "heart");
            CHECK(l->start == 14 && l->end == 19 && l->continues == -1,
                  "mention link offsets %lld-%lld, continues %d", (long long)l->start,
                  (long long)l->end, l->continues);
        } else if (l->sent == s1) {
            CHECK_STR(l->rule, "continuation");
            CHECK(l->term == NULL && l->start == -1, "a continuation has no term of its own");
            CHECK(l->continues == s0, "the continuation continues sentence %d, not %d", l->continues,
                  s0);
        } else if (l->sent == s2) {
            CHECK_STR(l->rule, "finding:pleural_effusion");
            CHECK(l->start == 56 && l->end == 72, "finding link offsets %lld-%lld",
                  (long long)l->start, (long long)l->end);
        } else if (l->sent == s3) {
            CHECK(l->anatomy < 0, "a remark on the examination links to an anatomy");
            CHECK_STR(l->rule, "none.stop");
            CHECK_STR(l->term ? l->term : "(null)", "suboptimal");
            CHECK(l->start == 74 + 14 && l->end == 74 + 24, "cue offsets %lld-%lld",
                  (long long)l->start, (long long)l->end);
        }
        seen++;
    }
    CHECK(seen == 4, "%d links for 4 sentences", seen);
    links_free(&ls);
}

static void test_confidence_is_the_rules_estimate_else_its_methods_else_the_prior(void)
{
    LinkCues c = {0};
    FvErr e = {0};
    const char *tsv = "rule\tlinks\tagree\n"
                      "anatomy:heart\t98\t49\n"
                      "method:mention\t8\t8\n";
    CHECK_OK(links_conf_parse(&c, tsv, strlen(tsv), "conf.tsv", &e), &e);
    CHECK(c.n_conf == 2, "%d estimates", c.n_conf);
    double h = links_confidence(&c, LINK_MENTION, "anatomy:heart");
    CHECK(h > 0.499 && h < 0.501, "anatomy:heart: %.4f, expected (49 + 1) / (98 + 2)", h);
    double m = links_confidence(&c, LINK_MENTION, "anatomy:lung");
    CHECK(m > 0.899 && m < 0.901, "a rule without a row takes its method's: %.4f, expected 0.9", m);
    CHECK(links_confidence(&c, LINK_FINDING, "finding:x") == link_confidence[LINK_FINDING],
          "a method without a row takes the prior");
    CHECK(links_confidence(&c, LINK_AUDIT, "audit") == 1.0, "an annotator's link is not certain");
    const char *bad[] = {"rule\tlinks\n", "rule\tlinks\tagree\nx\t3\t4\n",
                         "rule\tlinks\tagree\nx\t0\t0\n", "rule\tlinks\tagree\nx\tten\t1\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FvErr e2 = {0};
        CHECK(links_conf_parse(&c, bad[i], strlen(bad[i]), "conf.tsv", &e2) != 0 &&
                  strstr(e2.msg, "conf.tsv"),
              "bad confidence table %zu accepted or message lacks the file: %s", i, e2.msg);
    }
    /* the shipped table: every method that links has an estimate */
    for (int m2 = LINK_MENTION; m2 <= LINK_CONTINUATION; m2++) {
        char key[64];
        snprintf(key, sizeof key, "method:%s", link_method_name((LinkMethod)m2));
        int found = 0;
        for (int i = 0; i < CUES.n_conf; i++)
            found |= !strcmp(CUES.conf[i].rule, key);
        CHECK(found, "schemas/align_confidence.tsv has no row %s", key);
    }
    links_cues_free(&c);
}

static void test_cue_table_rejects_bad_rows(void)
{
    static const struct { const char *text, *want; } bad[] = {
        {"kind\tlang\tterm\ngo\ten\tx\n", "c.tsv:2: unknown kind 'go'"},
        {"kind\tlang\tterm\ncause\tde\tx\n", "c.tsv:2: unknown lang 'de'"},
        {"kind\tlang\tterm\ngeneric\tde\tx\n", "c.tsv:2: unknown lang 'de'"},
        {"kind\tlang\tterm\nstop\tfr\tx\n", "c.tsv:2: unknown lang 'fr'"},
        {"kind\tlang\tterm\nstop\ten\t\n", "c.tsv:2: empty term"},
        {"kind\tterm\nstop\tx\n", "header lacks"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        LinkCues c;
        FvErr e = {0};
        int rc = links_cues_parse(&c, bad[i].text, strlen(bad[i].text), "c.tsv", &e);
        CHECK(rc == -1 && strstr(e.msg, bad[i].want), "case %zu: rc %d, message '%s', expected '%s'",
              i, rc, e.msg, bad[i].want);
    }
    CHECK(links_cues_stop(&CUES, "FURTHER EVALUATION with MRI."), "a stop cue in capitals");
    CHECK(!links_cues_stop(&CUES, "Nonsuboptimal is not a word but must not match."), "a cue inside a word");
}

/* --------------------------------------------------------------- status */

static AnatText *status_of(const Doc *x, const unsigned char *covered, StatusRule rule, LinkSet *ls)
{
    FvErr e = {0};
    AnatText *t = calloc((size_t)O->n_anat, sizeof *t);
    memset(ls, 0, sizeof *ls);
    CHECK_OK(links_build(O, &x->d, covered, &CUES, ls, &e), &e);
    CHECK_OK(status_build(O, &x->d, ls, covered, rule, TEXT_METHODS_DEFAULT, t, &e), &e);
    return t;
}

static void test_status_follows_impression_rule_with_template_for_normal(void)
{
    Doc x;
    doc_init(&x, 0);
    int f0 = sent(&x, SECTION_FINDINGS, "Several nodules in both lungs, the largest 6 mm.");
    mention(&x, f0, "lung");
    finding(&x, f0, "lung_nodule", 1);
    int f1 = sent(&x, SECTION_FINDINGS, "Coronary artery calcification.");
    finding(&x, f1, "coronary_artery_wall_calcification", 1);
    int i0 = sent(&x, SECTION_IMPRESSION, "Bilateral pulmonary nodules.");
    mention(&x, i0, "lung");
    finding(&x, i0, "lung_nodule", 1);
    unsigned char *covered = calloc((size_t)O->n_anat, 1);
    covered[A("lung")] = covered[A("heart")] = covered[A("aorta")] = 1;
    LinkSet ls;
    AnatText *t = status_of(&x, covered, RULE_IMPRESSION, &ls);
    CHECK_STR(status_name(t[A("lung")].status), "abnormal");
    CHECK_STR(t[A("lung")].text.data,
              "Bilateral pulmonary nodules. Several nodules in both lungs, the largest 6 mm.");
    CHECK_STR(t[A("lung")].impression_text.data, "Bilateral pulmonary nodules.");
    /* The heart's finding is in the findings only: normal under fVLM's rule. */
    CHECK_STR(status_name(t[A("heart")].status), "normal");
    CHECK_STR(t[A("heart")].text.data, "Heart shows no significant abnormalities.");
    CHECK_STR(t[A("heart")].findings_text.data, "Coronary artery calcification.");
    CHECK_STR(t[A("heart")].diseases.data, "[\"coronary_artery_wall_calcification\"]");
    CHECK_STR(status_name(t[A("aorta")].status), "normal");
    CHECK_STR(status_name(t[A("liver")].status), "unmentioned");
    CHECK(t[A("liver")].text.len == 0, "an unmentioned anatomy has a training text");
    status_free(t, O->n_anat);
    free(t);
    links_free(&ls);

    t = status_of(&x, covered, RULE_FINDINGS, &ls);
    CHECK_STR(status_name(t[A("heart")].status), "abnormal");
    CHECK_STR(t[A("heart")].text.data, "Coronary artery calcification.");
    status_free(t, O->n_anat);
    free(t);
    links_free(&ls);
    free(covered);
}

static void test_chinese_texts_join_without_spaces_and_use_chinese_template(void)
{
    Doc x;
    doc_init(&x, 1);
    int f0 = sent(&x, SECTION_FINDINGS, "右肺下叶见小结节。");
    mention(&x, f0, "lung");
    finding(&x, f0, "lung_nodule", 1);
    int f1 = sent(&x, SECTION_FINDINGS, " 大小约5mm。 ");
    int i0 = sent(&x, SECTION_IMPRESSION, "右肺下叶小结节。");
    mention(&x, i0, "lung");
    finding(&x, i0, "lung_nodule", -1);
    (void)f1;
    unsigned char *covered = calloc((size_t)O->n_anat, 1);
    covered[A("lung")] = covered[A("liver")] = 1;
    LinkSet ls;
    AnatText *t = status_of(&x, covered, RULE_IMPRESSION, &ls);
    CHECK_STR(status_name(t[A("lung")].status), "abnormal");
    CHECK_STR(t[A("lung")].text.data, "右肺下叶小结节。右肺下叶见小结节。大小约5mm。");
    CHECK_STR(t[A("liver")].text.data, "肝未见明显异常。");
    status_free(t, O->n_anat);
    free(t);
    links_free(&ls);
    free(covered);
}

static void test_human_absent_label_cancels_impression_finding(void)
{
    Doc x;
    doc_init(&x, 0);
    int i0 = sent(&x, SECTION_IMPRESSION, "Possible small hiatal hernia.");
    finding(&x, i0, "hiatal_hernia", -1);
    unsigned char *covered = calloc((size_t)O->n_anat, 1);
    covered[A("esophagus")] = 1;
    LinkSet ls;
    AnatText *t = status_of(&x, covered, RULE_IMPRESSION, &ls);
    CHECK_STR(status_name(t[A("esophagus")].status), "abnormal");
    CHECK_STR(t[A("esophagus")].diseases.data, "[\"hiatal_hernia\"]");
    status_free(t, O->n_anat);
    free(t);
    links_free(&ls);

    x.l[x.d.n_lab++] = (DocLabel){T("hiatal_hernia"), 0, 1};
    t = status_of(&x, covered, RULE_IMPRESSION, &ls);
    CHECK_STR(status_name(t[A("esophagus")].status), "normal");
    CHECK_STR(t[A("esophagus")].diseases.data, "[]");
    status_free(t, O->n_anat);
    free(t);
    links_free(&ls);
    free(covered);
}

static void test_without_mask_the_reports_links_stand_for_coverage(void)
{
    Doc x;
    doc_init(&x, 0);
    int f0 = sent(&x, SECTION_FINDINGS, "The liver is normal.");
    mention(&x, f0, "liver");
    LinkSet ls;
    AnatText *t = status_of(&x, NULL, RULE_IMPRESSION, &ls);
    CHECK_STR(status_name(t[A("liver")].status), "normal");
    CHECK_STR(status_name(t[A("spleen")].status), "unmentioned");
    status_free(t, O->n_anat);
    free(t);
    links_free(&ls);
}

static void test_impression_mention_without_finding_is_counted_for_flags(void)
{
    Doc x;
    doc_init(&x, 0);
    int i0 = sent(&x, SECTION_IMPRESSION, "Post-operative changes in the left lung.");
    mention(&x, i0, "lung");
    LinkSet ls;
    AnatText *t = status_of(&x, NULL, RULE_IMPRESSION, &ls);
    CHECK_STR(status_name(t[A("lung")].status), "normal");
    CHECK_EQ_INT(t[A("lung")].imp_mention_only, 1);
    status_free(t, O->n_anat);
    free(t);
    links_free(&ls);
}

/* -------------------------------------------------------------- regions */

static int stats_equal(const LabelStats *a, const LabelStats *b, char *why, size_t n)
{
    for (int v = 0; v < REGIONS_NLABELS; v++) {
        if (a->count[v] != b->count[v]) {
            snprintf(why, n, "label %d: count %lld vs %lld", v, (long long)a->count[v],
                     (long long)b->count[v]);
            return 0;
        }
        if (a->count[v] && memcmp(&a->box[v], &b->box[v], sizeof a->box[v])) {
            snprintf(why, n, "label %d: boxes differ", v);
            return 0;
        }
    }
    return 1;
}

static void test_scan_matches_voxelwise_reference_on_random_masks(void)
{
    Rng r;
    rng_seed(&r, 7, 0);
    static const int64_t dims[][3] = {{1, 1, 1}, {3, 5, 7}, {9, 17, 31}, {20, 33, 64}, {4, 3, 130}};
    for (size_t k = 0; k < sizeof dims / sizeof dims[0]; k++) {
        int64_t nz = dims[k][0], ny = dims[k][1], nx = dims[k][2], n = nz * ny * nx;
        uint8_t *m = malloc((size_t)n);
        /* Runs of random labels with random lengths, like organs on a row. */
        for (int64_t i = 0; i < n;) {
            int64_t len = 1 + (int64_t)(rng_below(&r, 40));
            uint8_t v = (uint8_t)(rng_below(&r, 4) == 0 ? 0 : rng_below(&r, 256));
            for (int64_t j = 0; j < len && i < n; j++)
                m[i++] = v;
        }
        LabelStats *a = malloc(sizeof *a), *b = malloc(sizeof *b);
        regions_scan(m, nz, ny, nx, a);
        regions_scan_ref(m, nz, ny, nx, b);
        char why[128] = "";
        CHECK(stats_equal(a, b, why, sizeof why), "dims %lldx%lldx%lld: %s", (long long)nz,
              (long long)ny, (long long)nx, why);
        free(a);
        free(b);
        free(m);
    }
}

static void fill_box(uint8_t *m, const int64_t d[3], int v, Box b)
{
    for (int64_t z = b.z0; z < b.z1; z++)
        for (int64_t y = b.y0; y < b.y1; y++)
            for (int64_t x = b.x0; x < b.x1; x++)
                m[(z * d[1] + y) * d[2] + x] = (uint8_t)v;
}

static void test_merge_builds_anatomies_unions_and_crop_box(void)
{
    int64_t d[3] = {40, 60, 80};
    uint8_t *m = calloc((size_t)(d[0] * d[1] * d[2]), 1);
    fill_box(m, d, 10, (Box){5, 20, 10, 30, 10, 30});   /* left upper lobe */
    fill_box(m, d, 14, (Box){8, 25, 10, 30, 40, 60});   /* right lower lobe */
    fill_box(m, d, 51, (Box){10, 18, 32, 40, 30, 40});  /* heart */
    fill_box(m, d, 61, (Box){12, 14, 30, 32, 30, 32});  /* left atrial appendage: heart too */
    fill_box(m, d, 15, (Box){0, 30, 40, 42, 38, 40});   /* esophagus: touches z = 0 */
    fill_box(m, d, 90, (Box){35, 39, 1, 5, 1, 5});      /* brain: no tasks, not in the union */
    LabelStats *st = malloc(sizeof *st);
    regions_scan(m, d[0], d[1], d[2], st);
    Region *reg = calloc((size_t)O->n_anat, sizeof *reg), uni;
    double sp[3] = {3.0, 1.0, 1.0}, margin[3] = {15, 20, 20};
    regions_merge(O, st, d, sp, margin, reg, &uni);
    const Region *lung = &reg[A("lung")], *heart = &reg[A("heart")];
    CHECK_EQ_INT(lung->voxels, 15 * 20 * 20 + 17 * 20 * 20);
    CHECK_NEAR(lung->volume_ml, (15 * 20 * 20 + 17 * 20 * 20) * 3.0 / 1000.0, 1e-9);
    CHECK(lung->box.z0 == 5 && lung->box.z1 == 25 && lung->box.x0 == 10 && lung->box.x1 == 60,
          "lung box z [%lld, %lld) x [%lld, %lld), expected z [5, 25) x [10, 60)",
          (long long)lung->box.z0, (long long)lung->box.z1, (long long)lung->box.x0,
          (long long)lung->box.x1);
    CHECK_EQ_INT(lung->whole, 1);
    CHECK_EQ_INT(heart->voxels, 8 * 8 * 10 + 2 * 2 * 2);
    CHECK_EQ_INT(heart->box.y0, 30);
    CHECK_EQ_INT(reg[A("esophagus")].whole, 0);
    /* Mediastinum has no mask: the union of heart, aorta, esophagus, trachea. */
    const Region *med = &reg[A("mediastinum")];
    CHECK_EQ_INT(med->voxels, heart->voxels + reg[A("esophagus")].voxels);
    CHECK_EQ_INT(med->box.z0, 0);
    CHECK_EQ_INT(med->box.z1, 30);
    CHECK_EQ_INT(reg[A("pleura")].voxels, lung->voxels);
    /* Union of task anatomies (the brain is left out), widened by 5 slices
     * in z and 20 voxels in y, x, clipped to the volume. */
    CHECK_EQ_INT(uni.voxels, lung->voxels + heart->voxels + reg[A("esophagus")].voxels);
    CHECK(uni.box.z0 == 0 && uni.box.z1 == 35 && uni.box.y0 == 0 && uni.box.y1 == 60 &&
              uni.box.x0 == 0 && uni.box.x1 == 80,
          "union box z [%lld, %lld) y [%lld, %lld) x [%lld, %lld), expected z [0, 35) y [0, 60) "
          "x [0, 80)",
          (long long)uni.box.z0, (long long)uni.box.z1, (long long)uni.box.y0,
          (long long)uni.box.y1, (long long)uni.box.x0, (long long)uni.box.x1);
    CHECK_EQ_INT(uni.whole, 0);
    CHECK_EQ_INT(reg[A("liver")].voxels, 0);
    free(reg);
    free(st);
    free(m);
}

/* --------------------------------------------------------- anatomy_meta */

static void test_anatomy_meta_table_loads_and_rejects_bad_rows(void)
{
    AnatomyMetaTable t;
    FvErr e = {0};
    CHECK_OK(anatomy_meta_load(O, &t, &e), &e);
    CHECK_STR(t.m[A("lung")].fvlm_name, "lung");
    CHECK_STR(t.m[A("large_bowel")].fvlm_name, "colon");
    CHECK_STR(t.m[A("pleura")].fvlm_name, "pleura");
    CHECK(t.m[A("liver")].min_ml > 0 && t.m[A("liver")].max_ml > t.m[A("liver")].min_ml,
          "liver volume bounds missing");
    CHECK_EQ_INT(anatomy_meta_find(O, &t, "colon"), A("large_bowel"));
    CHECK_EQ_INT(anatomy_meta_find(O, &t, "heart"), A("heart"));
    anatomy_meta_free(&t);

    static const struct { const char *text, *want; } bad[] = {
        {"id\tfvlm_name\tmin_ml\tmax_ml\nspleen_x\tspleen\t1\t2\n", "x.tsv:2: unknown anatomy 'spleen_x'"},
        {"id\tfvlm_name\tmin_ml\tmax_ml\nliver\tliver\t1\t2\nliver\tliver\t1\t2\n", "listed twice"},
        {"id\tfvlm_name\tmin_ml\tmax_ml\nliver\tliver\tmany\t2\n", "must be '-' or a number"},
        {"id\tfvlm_name\tmin_ml\tmax_ml\nliver\tliver\t9\t2\n", "min_ml 9 > max_ml 2"},
        {"id\tfvlm_name\tmin_ml\tmax_ml\nliver\theart\t-\t-\n", "share the export name 'heart'"},
        {"id\tname\nliver\tx\n", "header lacks"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FvErr e2 = {0};
        int rc = anatomy_meta_parse(O, bad[i].text, strlen(bad[i].text), "x.tsv", &t, &e2);
        CHECK(rc == -1 && strstr(e2.msg, bad[i].want), "case %zu: rc %d, message '%s', expected '%s'",
              i, rc, e2.msg, bad[i].want);
    }
}

int main(void)
{
    FvErr e = {0};
    if (onto_load(&O, &e) || links_cues_load(&CUES, &e)) {
        fprintf(stderr, "ontology: %s\n", e.msg);
        return 1;
    }
    RUN(test_mention_and_finding_link_their_anatomies);
    RUN(test_continuation_inherits_previous_sentence_within_section);
    RUN(test_group_statement_reaches_covered_members_only);
    RUN(test_group_without_mask_reaches_members_with_tasks);
    RUN(test_title_and_complaint_before_the_findings_link_no_group);
    RUN(test_body_mention_alone_links_body);
    RUN(test_body_finding_stays_beside_a_specific_anatomy);
    RUN(test_rejected_link_is_kept_but_not_used_or_continued);
    RUN(test_technique_remark_does_not_inherit_the_previous_anatomy);
    RUN(test_group_normal_statement_findings_are_group_links);
    RUN(test_generic_term_yields_to_a_named_anatomy);
    RUN(test_a_sentence_of_weak_mentions_continues_its_context);
    RUN(test_cause_cue_marks_the_mentions_after_it_in_its_clause);
    RUN(test_a_technique_remark_without_a_finding_links_to_none);
    RUN(test_cue_table_rejects_bad_rows);
    RUN(test_links_explain_themselves_term_offsets_rule_and_continued_sentence);
    RUN(test_landmark_device_and_anaphor_cues);
    RUN(test_confidence_is_the_rules_estimate_else_its_methods_else_the_prior);
    RUN(test_status_follows_impression_rule_with_template_for_normal);
    RUN(test_chinese_texts_join_without_spaces_and_use_chinese_template);
    RUN(test_human_absent_label_cancels_impression_finding);
    RUN(test_without_mask_the_reports_links_stand_for_coverage);
    RUN(test_impression_mention_without_finding_is_counted_for_flags);
    RUN(test_scan_matches_voxelwise_reference_on_random_masks);
    RUN(test_merge_builds_anatomies_unions_and_crop_box);
    RUN(test_anatomy_meta_table_loads_and_rejects_bad_rows);
    links_cues_free(&CUES);
    onto_free(&O);
    return test_finish();
}
