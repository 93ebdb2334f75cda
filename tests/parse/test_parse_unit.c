/* Unit tests of the parse stage: normalisation and its offset map, the
 * automaton against a naive search, sentences and their offsets, label
 * aggregation, rule-file errors, and hostile input (invalid UTF-8, NUL bytes,
 * empty reports, headings only, a 10 MB report, a 100,000-character sentence,
 * mixed Chinese and English). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "automaton.h"
#include "fvlm_config.h"
#include "log.h"
#include "normalize.h"
#include "parse.h"
#include "rng.h"
#include "test.h"

static Parser *P;

static void test_normalise_folds_fullwidth_and_case(void)
{
    NormText t = {0};
    FvErr e = {0};
    const char *in = "ＣＴ：Ｌｕｎｇ，正常！  Two\tspaces\r\nEND";
    CHECK_OK(norm_build(&t, in, strlen(in), &e), &e);
    CHECK_STR(t.s, "ct:lung,正常! two spaces\nend");
    CHECK_EQ_INT(t.n_invalid, 0);
    norm_free(&t);
}

static void test_normalise_maps_every_span_back_to_the_original(void)
{
    NormText t = {0};
    FvErr e = {0};
    const char *in = "ＣＴ：右肺上叶  Nodule，１．５ｃｍ\r\nok";
    CHECK_OK(norm_build(&t, in, strlen(in), &e), &e);
    const char *want[] = {"右肺上叶", "nodule", "1.5cm", "ok"};
    const char *orig[] = {"右肺上叶", "Nodule", "１．５ｃｍ", "ok"};
    for (int i = 0; i < 4; i++) {
        const char *at = strstr(t.s, want[i]);
        CHECK(at != NULL, "'%s' not in normalised text '%s'", want[i], t.s);
        if (!at)
            continue;
        size_t a = (size_t)(at - t.s), o0, o1;
        norm_orig_span(&t, a, a + strlen(want[i]), &o0, &o1);
        CHECK(o1 - o0 == strlen(orig[i]) && !memcmp(in + o0, orig[i], o1 - o0),
              "span of '%s' maps to '%.*s', expected '%s'", want[i], (int)(o1 - o0), in + o0,
              orig[i]);
    }
    /* map is monotonic and ends at the original length */
    int mono = 1;
    for (size_t i = 1; i <= t.n; i++)
        mono &= t.map[i] >= t.map[i - 1];
    CHECK(mono, "offset map is not monotonic");
    CHECK_EQ_INT(t.map[t.n], strlen(in));
    norm_free(&t);
}

static void test_normalise_replaces_invalid_utf8_and_drops_nul(void)
{
    NormText t = {0};
    FvErr e = {0};
    const char in[] = "ab\xff\xfe" "c\0d\xe4\xb8";  /* two bad bytes, a NUL, a truncated sequence */
    CHECK_OK(norm_build(&t, in, sizeof in - 1, &e), &e);
    CHECK_EQ_INT(t.n_nul, 1);
    CHECK_EQ_INT(t.n_invalid, 4);
    CHECK(strstr(t.s, "\xef\xbf\xbd") != NULL, "no U+FFFD in '%s'", t.s);
    CHECK(memchr(t.s, 0, t.n) == NULL, "a NUL byte survived");
    norm_free(&t);
}

/* The automaton finds exactly what a naive search finds. */
static void test_automaton_matches_naive_search(void)
{
    Rng rng;
    rng_seed(&rng, 42, 7);
    for (int round = 0; round < 20; round++) {
        int np = 1 + (int)rng_below(&rng, 40);
        char *pats[40];
        uint32_t lens[40];
        int n = 0;
        for (int i = 0; i < np; i++) {
            int len = 1 + (int)rng_below(&rng, 5);
            char *p = malloc((size_t)len + 1);
            for (int k = 0; k < len; k++)
                p[k] = (char)('a' + rng_below(&rng, 3));
            p[len] = '\0';
            int dup = 0;
            for (int j = 0; j < n; j++)
                dup |= !strcmp(pats[j], p);
            if (dup) {
                free(p);
                continue;
            }
            pats[n] = p;
            lens[n] = (uint32_t)len;
            n++;
        }
        Automaton *a;
        FvErr e = {0};
        CHECK_OK(ac_build(&a, (const char *const *)pats, lens, n, &e), &e);
        char text[300];
        for (int k = 0; k < 299; k++)
            text[k] = (char)('a' + rng_below(&rng, 4));
        text[299] = '\0';
        AcHit *hits = NULL;
        size_t nh = 0, cap = 0;
        CHECK_OK(ac_scan(a, text, 299, &hits, &nh, &cap, &e), &e);
        size_t naive = 0;
        int all_found = 1;
        for (int i = 0; i < n; i++)
            for (size_t s = 0; s + lens[i] <= 299; s++)
                if (!memcmp(text + s, pats[i], lens[i])) {
                    naive++;
                    int f = 0;
                    for (size_t h = 0; h < nh && !f; h++)
                        f = hits[h].pat == i && hits[h].start == s;
                    all_found &= f;
                }
        CHECK_EQ_INT(nh, naive);
        CHECK(all_found, "round %d: a naive match is missing from the automaton's hits", round);
        free(hits);
        ac_free(&a);
        for (int i = 0; i < n; i++)
            free(pats[i]);
    }
}

static void test_sentence_offsets_point_at_original_text_without_list_numbers(void)
{
    ParseResult r = {0};
    FvErr e = {0};
    const char *in = "Findings: A 1.5 cm nodule (approx. 2 mm wall) in the RUL. No effusion!\n\n"
                     "Impression: 1. Nodule. 2. No effusion.";
    CHECK_OK(parse_report(P, in, strlen(in), PARSE_LANG_EN, &r, &e), &e);
    const char *want[] = {"A 1.5 cm nodule (approx. 2 mm wall) in the RUL.", "No effusion!",
                          "Nodule.", "No effusion."};   /* list numbers are not sentence text */
    int sec[] = {SEC_FINDINGS, SEC_FINDINGS, SEC_IMPRESSION, SEC_IMPRESSION};
    CHECK_EQ_INT(r.nsent, 4);
    for (int i = 0; i < r.nsent && i < 4; i++) {
        const ParseSentence *s = &r.sent[i];
        CHECK(s->end - s->start == strlen(want[i]) && !memcmp(in + s->start, want[i], strlen(want[i])),
              "sentence %d is '%.*s', expected '%s'", i, (int)(s->end - s->start), in + s->start,
              want[i]);
        CHECK_EQ_INT(s->section, sec[i]);
    }
    /* a finding's span is its term in the original text */
    int ok = 0;
    for (int i = 0; i < r.nfind; i++)
        ok |= r.find[i].end - r.find[i].start == 6 && !memcmp(in + r.find[i].start, "nodule", 6);
    CHECK(ok, "no finding spans 'nodule' in the original text");
    parse_result_free(&r);
}

static void test_chinese_sentences_split_at_stops_and_numbers(void)
{
    ParseResult r = {0};
    FvErr e = {0};
    const char *in = "影像所见：双肺纹理清晰；右肺上叶见结节。\n诊断：1、右肺结节 2、肺气肿（1）胸腔积液";
    CHECK_OK(parse_report(P, in, strlen(in), PARSE_LANG_ZH, &r, &e), &e);
    /* list numbers are split at and left out of the sentence */
    const char *want[] = {"双肺纹理清晰；", "右肺上叶见结节。", "右肺结节", "肺气肿", "胸腔积液"};
    CHECK_EQ_INT(r.nsent, 5);
    for (int i = 0; i < r.nsent && i < 5; i++) {
        const ParseSentence *s = &r.sent[i];
        CHECK(s->end - s->start == strlen(want[i]) && !memcmp(in + s->start, want[i], strlen(want[i])),
              "sentence %d is '%.*s', expected '%s'", i, (int)(s->end - s->start), in + s->start,
              want[i]);
    }
    parse_result_free(&r);
}

static void test_labels_aggregate_present_over_uncertain_over_absent(void)
{
    ParseFinding f[5] = {
        {.task = 0, .polarity = PARSE_ABSENT},  {.task = 0, .polarity = PARSE_UNCERTAIN},
        {.task = 1, .polarity = PARSE_ABSENT},  {.task = 2, .polarity = PARSE_PRESENT},
        {.task = 2, .polarity = PARSE_ABSENT},
    };
    int8_t v[4];
    int32_t from[4];
    parse_labels_aggregate(f, 5, 4, v, from);
    CHECK_EQ_INT(v[0], PARSE_UNCERTAIN);
    CHECK_EQ_INT(from[0], 1);
    CHECK_EQ_INT(v[1], PARSE_ABSENT);
    CHECK_EQ_INT(v[2], PARSE_PRESENT);
    CHECK_EQ_INT(from[2], 3);
    CHECK_EQ_INT(v[3], PARSE_UNMENTIONED);
    CHECK_EQ_INT(from[3], -1);
}

static void test_bad_rule_file_names_file_and_line(void)
{
    Lexicon *lex = NULL;
    FvErr e = {0};
    const char *trig = "id\tlang\tkind\tdir\tterm\tcovers\nneg.x\ten\tneg\tpre\tno\t*\nbad.x\ten\tnegate\tpre\tnope\t*\n";
    int rc = lex_parse(&lex, P->onto, NULL, NULL, NULL, trig, NULL, NULL, &e);
    CHECK(rc == -1, "a bad trigger kind was accepted");
    CHECK(strstr(e.msg, "parse_triggers.tsv:3") && strstr(e.msg, "negate"),
          "message '%s' does not name the file, line and kind", e.msg);
    const char *terms = "kind\ttarget\tlang\tterm\nfinding\tno_such_task\ten\tfoo\n";
    rc = lex_parse(&lex, P->onto, terms, NULL, NULL, NULL, NULL, NULL, &e);
    CHECK(rc == -1 && strstr(e.msg, "parse_terms.tsv:2") && strstr(e.msg, "no_such_task"),
          "unknown task: '%s'", e.msg);
}

static int has_warning(const ParseResult *r, const char *what)
{
    for (int i = 0; i < r->nwarn; i++)
        if (strstr(r->warn[i], what))
            return 1;
    return 0;
}

static void test_invalid_utf8_and_nul_are_flagged_not_fatal(void)
{
    ParseResult r = {0};
    FvErr e = {0};
    const char in[] = "No pleural \xff\xfe effusion.\0 Emphysema \xc3 is seen.";
    CHECK_OK(parse_report(P, in, sizeof in - 1, PARSE_LANG_EN, &r, &e), &e);
    CHECK(has_warning(&r, "invalid UTF-8"), "no invalid UTF-8 warning");
    CHECK(has_warning(&r, "NUL"), "no NUL warning");
    int emph = onto_finding(P->onto, "emphysema");
    CHECK_EQ_INT(r.label[emph], PARSE_PRESENT);
    parse_result_free(&r);
}

static void test_empty_and_heading_only_reports_warn(void)
{
    ParseResult r = {0};
    FvErr e = {0};
    CHECK_OK(parse_report(P, "", 0, PARSE_LANG_AUTO, &r, &e), &e);
    CHECK(has_warning(&r, "empty report"), "empty report: no warning");
    CHECK_EQ_INT(r.nsent, 0);
    const char *ws = " \n\t \r\n";
    CHECK_OK(parse_report(P, ws, strlen(ws), PARSE_LANG_EN, &r, &e), &e);
    CHECK(has_warning(&r, "empty report"), "white-space report: no warning");
    const char *heads = "FINDINGS:\n\nIMPRESSION:\n";
    CHECK_OK(parse_report(P, heads, strlen(heads), PARSE_LANG_EN, &r, &e), &e);
    CHECK(has_warning(&r, "headings only"), "headings-only report: no warning");
    CHECK_EQ_INT(r.nsent, 0);
    const char *zh = "检查所见：\n诊断意见：";
    CHECK_OK(parse_report(P, zh, strlen(zh), PARSE_LANG_ZH, &r, &e), &e);
    CHECK(has_warning(&r, "headings only"), "Chinese headings-only report: no warning");
    parse_result_free(&r);
}

static void test_huge_sentence_is_cut_with_a_warning(void)
{
    size_t n = 100000;
    char *in = malloc(n + 64);
    size_t k = 0;
    k += (size_t)sprintf(in, "Emphysema ");
    while (k < n) {
        in[k] = "abcdefg "[k % 8];
        k++;
    }
    k += (size_t)sprintf(in + k, " no pleural effusion.");
    ParseResult r = {0};
    FvErr e = {0};
    CHECK_OK(parse_report(P, in, k, PARSE_LANG_EN, &r, &e), &e);
    CHECK(has_warning(&r, "cut"), "no warning for a 100,000-character sentence");
    CHECK(r.nsent >= 25, "%d sentences from a 100,000-character sentence", r.nsent);
    int ok = 1;
    for (int i = 0; i < r.nsent; i++)
        ok &= r.sent[i].nend - r.sent[i].nstart <= PARSE_MAX_SENTENCE;
    CHECK(ok, "a piece is longer than %d bytes", PARSE_MAX_SENTENCE);
    CHECK_EQ_INT(r.label[onto_finding(P->onto, "emphysema")], PARSE_PRESENT);
    /* the same in Chinese, without any punctuation */
    k = 0;
    while (k + 3 <= n) {
        memcpy(in + k, "肺", 3);
        k += 3;
    }
    CHECK_OK(parse_report(P, in, k, PARSE_LANG_ZH, &r, &e), &e);
    CHECK(has_warning(&r, "cut"), "no warning for a long Chinese sentence");
    for (int i = 0; i < r.nsent; i++) {
        const ParseSentence *s = &r.sent[i];
        CHECK((s->end - s->start) % 3 == 0, "piece %d cuts a character in two", i);
    }
    parse_result_free(&r);
    free(in);
}

static void test_ten_megabyte_report_parses(void)
{
    const char *unit = "Findings: No pleural effusion. A 5 mm nodule in the right upper lobe.\n"
                       "影像所见：双肺纹理清晰，未见胸腔积液。\n";
    size_t ul = strlen(unit), n = 10u << 20;
    char *in = malloc(n + ul);
    size_t k = 0;
    while (k < n) {
        memcpy(in + k, unit, ul);
        k += ul;
    }
    ParseResult r = {0};
    FvErr e = {0};
    double t0 = now_seconds();
    CHECK_OK(parse_report(P, in, k, PARSE_LANG_AUTO, &r, &e), &e);
    double secs = now_seconds() - t0;
    CHECK(r.nsent > 100000, "%d sentences in a 10 MB report", r.nsent);
    CHECK_EQ_INT(r.label[onto_finding(P->onto, "lung_nodule")], PARSE_PRESENT);
    CHECK_EQ_INT(r.label[onto_finding(P->onto, "pleural_effusion")], PARSE_ABSENT);
    CHECK(secs < 30, "10 MB took %.1f s", secs);
    parse_result_free(&r);
    free(in);
}

static void test_mixed_chinese_and_english_report(void)
{
    ParseResult r = {0};
    FvErr e = {0};
    const char *in = "CT chest: 右肺上叶见一结节。 No pleural effusion. 心脏不大。Emphysema.";
    CHECK_OK(parse_report(P, in, strlen(in), PARSE_LANG_AUTO, &r, &e), &e);
    CHECK_EQ_INT(r.label[onto_finding(P->onto, "lung_nodule")], PARSE_PRESENT);
    CHECK_EQ_INT(r.label[onto_finding(P->onto, "pleural_effusion")], PARSE_ABSENT);
    CHECK_EQ_INT(r.label[onto_finding(P->onto, "cardiomegaly")], PARSE_ABSENT);
    CHECK_EQ_INT(r.label[onto_finding(P->onto, "emphysema")], PARSE_PRESENT);
    CHECK_EQ_INT(r.nsent, 4);
    parse_result_free(&r);
}

/* Every name and synonym of findings.tsv, next to its anatomy's name, is read
 * as its task, present when stated and absent when negated, in both
 * languages: the synthetic reports use exactly these words. */
static void test_every_ontology_term_is_its_task(void)
{
    const Ontology *o = P->onto;
    ParseResult r = {0};
    FvErr e = {0};
    char text[1024];
    int bad = 0, n = 0;
    for (int t = 0; t < o->n_find; t++) {
        const Finding *f = &o->find[t];
        const Anatomy *a = &o->anat[f->anatomy];
        for (int lang = 0; lang < 2; lang++) {
            const StrList *syn = lang ? &f->zh_syn : &f->en_syn;
            for (int k = -1; k < syn->n; k++) {
                const char *term = k < 0 ? (lang ? f->zh : f->en) : syn->s[k];
                for (int neg = 0; neg < 2; neg++) {
                    if (lang)
                        snprintf(text, sizeof text, "%s%s%s。", a->zh, neg ? "未见" : "见", term);
                    else
                        snprintf(text, sizeof text, "%s %s in the %s.", neg ? "No" : "There is", term,
                                 a->en);
                    n++;
                    if (parse_report(P, text, strlen(text), lang ? PARSE_LANG_ZH : PARSE_LANG_EN, &r, &e)) {
                        CHECK(0, "%s: %s", text, e.msg);
                        continue;
                    }
                    int want = neg ? PARSE_ABSENT : PARSE_PRESENT;
                    if (r.label[t] != want) {
                        if (bad++ < 20)
                            fprintf(stderr, "  '%s': %s = %d, expected %d\n", text, f->id, r.label[t], want);
                    }
                }
            }
        }
    }
    CHECK(bad == 0, "%d of %d ontology-term sentences read wrongly", bad, n);
    parse_result_free(&r);
}

/* How many anatomies and groups list this term (names and synonyms). */
static int term_owners(const Ontology *o, const char *term)
{
    int n = 0;
    for (int a = 0; a < o->n_anat + o->n_groups; a++) {
        int g = a >= o->n_anat;
        const char *names[2] = {g ? o->groups[a - o->n_anat].en : o->anat[a].en,
                                g ? o->groups[a - o->n_anat].zh : o->anat[a].zh};
        const StrList *syn[2] = {g ? &o->groups[a - o->n_anat].en_syn : &o->anat[a].en_syn,
                                 g ? &o->groups[a - o->n_anat].zh_syn : &o->anat[a].zh_syn};
        int hit = !strcasecmp(names[0], term) || !strcmp(names[1], term);
        for (int l = 0; l < 2 && !hit; l++)
            for (int k = 0; k < syn[l]->n && !hit; k++)
                hit = !strcasecmp(syn[l]->s[k], term);
        n += hit;
    }
    return n;
}

/* "X is normal" / "X未见异常" for every anatomy name and synonym and every
 * group of the ontology makes every task of X (of the group's members)
 * absent and none present. Terms that the ontology gives to two anatomies
 * or groups ("mediastinal vascular structures") are left out: which one the
 * parser picks is a choice of parse_terms.tsv, not a fact to test. */
static void test_every_anatomy_and_group_has_normal_statements(void)
{
    const Ontology *o = P->onto;
    ParseResult r = {0};
    FvErr e = {0};
    char text[1024];
    int bad = 0, n = 0;
    for (int a = 0; a < o->n_anat + o->n_groups; a++) {
        int is_group = a >= o->n_anat;
        const char *en = is_group ? o->groups[a - o->n_anat].en : o->anat[a].en;
        const char *zh = is_group ? o->groups[a - o->n_anat].zh : o->anat[a].zh;
        const StrList *ens = is_group ? &o->groups[a - o->n_anat].en_syn : &o->anat[a].en_syn;
        const StrList *zhs = is_group ? &o->groups[a - o->n_anat].zh_syn : &o->anat[a].zh_syn;
        for (int lang = 0; lang < 2; lang++) {
            const StrList *syn = lang ? zhs : ens;
            for (int k = -1; k < syn->n; k++) {
                const char *term = k < 0 ? (lang ? zh : en) : syn->s[k];
                if (term_owners(o, term) > 1)
                    continue;
                if (lang)
                    snprintf(text, sizeof text, "%s未见异常。", term);
                else
                    snprintf(text, sizeof text, "The %s is normal.", term);
                n++;
                if (parse_report(P, text, strlen(text), lang ? PARSE_LANG_ZH : PARSE_LANG_EN, &r, &e)) {
                    CHECK(0, "%s: %s", text, e.msg);
                    continue;
                }
                for (int t = 0; t < o->n_find; t++) {
                    int an = o->find[t].anatomy;
                    int member = is_group ? onto_in_group(o, an, a - o->n_anat) : an == a;
                    /* a group speaks of its members; "body" is the whole scan */
                    int want = member ? PARSE_ABSENT : -9;
                    int got = r.label[t];
                    int ok = want == -9 ? got != PARSE_PRESENT && got != PARSE_UNCERTAIN : got == want;
                    if (!ok && bad++ < 20)
                        fprintf(stderr, "  '%s': %s = %d, expected %s\n", text, o->find[t].id, got,
                                want == -9 ? "not present" : "0");
                }
            }
        }
    }
    CHECK(bad == 0, "%d wrong labels from %d normal statements", bad, n);
    parse_result_free(&r);
}

/* Longest match everywhere: for every pair of terms of the anatomy layer
 * (anatomies, groups, structures outside the ontology) or of the finding
 * layer where one holds the other ("肾上腺" holds "肾", "胆总管" holds "胆",
 * "pulmonary artery" holds "pulmonary"), the longer term alone is read as
 * itself: its anatomy (or nothing, for an outside structure), never the
 * shorter one's. Enumerates every such pair of the lexicon. */
static void test_a_term_holding_another_is_read_as_itself(void)
{
    const Lexicon *lex = P->lex;
    ParseResult r = {0};
    FvErr e = {0};
    char text[512], name[128];
    int pairs = 0, bad = 0;
    for (int i = 0; i < lex->n; i++) {
        const LexEntry *a = &lex->e[i];
        if (a->layer != LEX_LAYER_ANAT && a->layer != LEX_LAYER_FIND)
            continue;
        int holds = 0;
        for (int j = 0; j < lex->n && !holds; j++) {
            const LexEntry *b = &lex->e[j];
            holds = j != i && b->layer == a->layer && b->len < a->len && strstr(a->term, b->term) &&
                    (b->kind != a->kind || b->target != a->target || b->kind == LK_TASK);
        }
        if (!holds)
            continue;
        pairs++;
        int zh = (unsigned char)a->term[0] >= 0x80;
        snprintf(text, sizeof text, zh ? "%s。" : "%s.", a->term);
        if (parse_report(P, text, strlen(text), zh ? PARSE_LANG_ZH : PARSE_LANG_EN, &r, &e)) {
            CHECK(0, "%s: %s", text, e.msg);
            continue;
        }
        int ok = 1;
        if (a->layer == LEX_LAYER_ANAT) {
            /* exactly one mention, spanning the whole term, of the term's target */
            int want = a->kind == LK_OTHER ? 0 : 1;
            ok = r.nment == want;
            if (ok && want) {
                const ParseMention *m = &r.ment[0];
                ok = m->nend - m->nstart == a->len &&
                     (a->kind == LK_ANATOMY ? m->anatomy == a->target : m->group == a->target);
            }
        } else {
            /* no finding comes from a shorter term inside it */
            for (int k = 0; k < r.nfind && ok; k++)
                ok = r.find[k].nend - r.find[k].nstart == a->len || r.find[k].normal;
        }
        if (!ok && bad++ < 15) {
            fprintf(stderr, "  '%s' (%s): %d mention(s)", a->term, a->rule, r.nment);
            for (int k = 0; k < r.nment; k++)
                fprintf(stderr, " %s", parse_mention_name(P, &r.ment[k], name, sizeof name));
            fprintf(stderr, "\n");
        }
    }
    fprintf(stderr, "longest match: %d terms that hold another term checked\n", pairs);
    CHECK(pairs > 100, "only %d terms hold another: the enumeration is broken", pairs);
    CHECK(bad == 0, "%d of %d terms holding another term are not read as themselves", bad, pairs);
    parse_result_free(&r);
}

static void test_language_detection(void)
{
    const char *zh = "双肺纹理清晰，未见异常。CT";
    const char *en = "The lungs are clear. 结节";
    CHECK_EQ_INT(parse_detect_lang(zh, strlen(zh)), PARSE_LANG_ZH);
    CHECK_EQ_INT(parse_detect_lang(en, strlen(en)), PARSE_LANG_EN);
}

int main(void)
{
    FvErr e = {0};
    log_set_level(LOG_ERROR);
    if (parser_new(&P, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    RUN(test_normalise_folds_fullwidth_and_case);
    RUN(test_normalise_maps_every_span_back_to_the_original);
    RUN(test_normalise_replaces_invalid_utf8_and_drops_nul);
    RUN(test_automaton_matches_naive_search);
    RUN(test_sentence_offsets_point_at_original_text_without_list_numbers);
    RUN(test_chinese_sentences_split_at_stops_and_numbers);
    RUN(test_labels_aggregate_present_over_uncertain_over_absent);
    RUN(test_bad_rule_file_names_file_and_line);
    RUN(test_invalid_utf8_and_nul_are_flagged_not_fatal);
    RUN(test_empty_and_heading_only_reports_warn);
    RUN(test_huge_sentence_is_cut_with_a_warning);
    RUN(test_ten_megabyte_report_parses);
    RUN(test_mixed_chinese_and_english_report);
    RUN(test_language_detection);
    RUN(test_every_ontology_term_is_its_task);
    RUN(test_every_anatomy_and_group_has_normal_statements);
    RUN(test_a_term_holding_another_is_read_as_itself);
    parser_free(&P);
    return test_finish();
}
