#include "phi.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

static const char *placeholders[PHI_NKINDS] = {"[NAME]", "[ID]", "[DATE]", "[ADDRESS]",
                                               "[PHONE]"};
static const char *kind_names[PHI_NKINDS] = {"name", "id", "date", "address", "phone"};

const char *phi_placeholder(PhiKind k) { return k < PHI_NKINDS ? placeholders[k] : "[PHI]"; }
const char *phi_kind_name(PhiKind k) { return k < PHI_NKINDS ? kind_names[k] : "phi"; }

/* ---------------------------------------------------------------- patterns */

/* A labelled value runs to the end of the line, or to a separator: two
 * spaces, a tab, a comma or semicolon (ASCII or full-width), or the next
 * "label:" on the same line. */
#define VALUE "([^\\n\\r]+?)(?=[ \\t]*$|[ \\t]{2,}|\\t|[,，;；|]|[ \\t]+[^\\s:：]{1,24}[ \\t]*[:：])"
#define LABEL_START "(?<![\\p{L}\\p{N}])"
#define SEP "[ \\t]*[:：][ \\t]*"

typedef struct Pattern {
    PhiKind kind;
    int group;         /* capture group replaced (0: the whole match) */
    const char *re;
} Pattern;

static const Pattern patterns[] = {
    /* Labelled header lines. */
    {PHI_NAME, 1,
     LABEL_START "(?i:patient'?s?[ \\t]+name|patient|name|full[ \\t]+name|referring[ \\t]+"
                 "(?:physician|doctor)|radiologist|reported[ \\t]+by|signed[ \\t]+by|physician|"
                 "doctor)" SEP VALUE},
    {PHI_NAME, 1,
     LABEL_START "(?:患者姓名|病人姓名|姓[ \\t]*名|名字|报告医[师生]|审核医[师生]|申请医[师生]|"
                 "诊断医[师生]|记录者|检查医[师生]|送检医[师生])" SEP VALUE},
    {PHI_ID, 1,
     LABEL_START "(?i:patient[ \\t]+id|id|pid|mrn|medical[ \\t]+record(?:[ \\t]+(?:no\\.?|"
                 "number))?|accession(?:[ \\t]+(?:no\\.?|number|#))?|acc\\.?[ \\t]*(?:no\\.?|#)|"
                 "hospital[ \\t]+(?:no\\.?|number)|study[ \\t]+id|exam[ \\t]+(?:no\\.?|number|"
                 "id))" SEP VALUE},
    {PHI_ID, 1,
     LABEL_START "(?:住院号|门诊号|检查号|影像号|ID号|病历号|病案号|登记号|身份证号?|医保号|"
                 "卡号|放射号|检查编号|申请单号)" SEP VALUE},
    {PHI_DATE, 1,
     LABEL_START "(?i:dob|date[ \\t]+of[ \\t]+birth|birth[ \\t]*date|exam[ \\t]+date|study"
                 "[ \\t]+date|report[ \\t]+date|date)" SEP VALUE},
    {PHI_DATE, 1,
     LABEL_START "(?:出生日期|出生年月|检查日期|报告日期|检查时间|报告时间|申请日期|日期)" SEP
         VALUE},
    {PHI_ADDRESS, 1,
     LABEL_START "(?i:home[ \\t]+address|address|addr\\.?)" SEP VALUE},
    {PHI_ADDRESS, 1, LABEL_START "(?:家庭住址|联系地址|住址|地址)" SEP VALUE},
    {PHI_PHONE, 1,
     LABEL_START "(?i:phone|tel\\.?|telephone|mobile|cell)" SEP VALUE},
    {PHI_PHONE, 1, LABEL_START "(?:联系电话|电话|手机号?码?)" SEP VALUE},
    /* Dates anywhere. */
    {PHI_DATE, 0,
     "(?<!\\d)(?:19|20)\\d{2}[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\\d|3[01])"
     "(?:[ T]\\d{1,2}:\\d{2}(?::\\d{2})?)?(?!\\d)"},
    {PHI_DATE, 0, "(?<![\\d.])\\d{1,2}[-/.]\\d{1,2}[-/.](?:19|20)\\d{2}(?!\\d)"},
    {PHI_DATE, 0,
     "(?<!\\d)(?:19|20)\\d{2}[ \\t]*年[ \\t]*\\d{1,2}[ \\t]*月(?:[ \\t]*\\d{1,2}[ \\t]*[日号])?"},
    {PHI_DATE, 0,
     "(?<![\\p{L}])(?i:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|"
     "aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\\.?[ \\t]+"
     "\\d{1,2}(?:st|nd|rd|th)?,?[ \\t]+(?:19|20)\\d{2}(?!\\d)"},
    {PHI_DATE, 0,
     "(?<!\\d)\\d{1,2}(?:st|nd|rd|th)?[ \\t]+(?i:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|"
     "apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|"
     "dec(?:ember)?)\\.?,?[ \\t]+(?:19|20)\\d{2}(?!\\d)"},
    {PHI_DATE, 0,
     "(?<![\\p{L}])(?i:january|february|march|april|june|july|august|september|october|"
     "november|december)[ \\t]+(?:19|20)\\d{2}(?!\\d)"},
    {PHI_DATE, 0,
     "(?<![\\d.])(?:19|20)\\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\\d|3[01])(?![\\d.])"},
    /* Phone numbers. */
    {PHI_PHONE, 0, "(?<![\\d+])(?:\\+?86[- ]?)?1[3-9]\\d{9}(?!\\d)"},
    {PHI_PHONE, 0, "(?<![\\d.])0\\d{2,3}-\\d{7,8}(?!\\d)"},
    {PHI_PHONE, 0, "\\(\\d{3}\\)[ \\t]*\\d{3}[-. ]\\d{4}(?!\\d)"},
    {PHI_PHONE, 0, "(?<![\\d.])\\d{3}[-.]\\d{3}[-.]\\d{4}(?!\\d)"},
    {PHI_PHONE, 0, "\\+\\d{1,3}[ -]?\\(?\\d{2,4}\\)?[ -]?\\d{3,4}[ -]?\\d{3,4}(?!\\d)"},
    /* Identifiers: long digit runs (not a measurement), national ids,
     * letter-prefixed record numbers. */
    {PHI_ID, 0, "(?<![\\dA-Za-z])\\d{17}[\\dXx](?![\\dA-Za-z])"},
    {PHI_ID, 0, "(?<![\\p{L}\\d])[A-Z]{1,4}-?\\d{6,}(?![\\d.])"},
    {PHI_ID, 0,
     "(?<![\\d.,])\\d{7,}(?![\\d.,]|[ \\t]*(?i:mm|cm|ml|cc|hu|mg|kg|g\\b|%|毫米|厘米))"},
};
enum { NPAT = sizeof patterns / sizeof patterns[0] };

struct Phi {
    pcre2_code *re[NPAT];
    pcre2_match_data *md;
};

int phi_new(Phi **out, FvErr *e)
{
    *out = NULL;
    Phi *p = calloc(1, sizeof *p);
    if (!p)
        return err_set(e, FV_ENOMEM, "de-identification: out of memory");
    for (int i = 0; i < NPAT; i++) {
        int ec;
        PCRE2_SIZE off;
        p->re[i] = pcre2_compile((PCRE2_SPTR)patterns[i].re, PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &ec, &off, NULL);
        if (!p->re[i]) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(ec, msg, sizeof msg);
            phi_free(&p);
            return err_set(e, FV_EINTERNAL, "de-identification pattern %d: %s at offset %zu", i,
                           (const char *)msg, (size_t)off);
        }
        pcre2_jit_compile(p->re[i], PCRE2_JIT_COMPLETE); /* interpreted when JIT is absent */
    }
    p->md = pcre2_match_data_create(8, NULL);
    if (!p->md) {
        phi_free(&p);
        return err_set(e, FV_ENOMEM, "de-identification: out of memory");
    }
    *out = p;
    return 0;
}

void phi_free(Phi **pp)
{
    if (!pp || !*pp)
        return;
    Phi *p = *pp;
    for (int i = 0; i < NPAT; i++)
        pcre2_code_free(p->re[i]);
    pcre2_match_data_free(p->md);
    free(p);
    *pp = NULL;
}

/* ------------------------------------------------------------ known values */

static int is_placeholder(const char *s, size_t n)
{
    for (int k = 0; k < PHI_NKINDS; k++) {
        size_t l = strlen(placeholders[k]);
        if (n == l && memcmp(s, placeholders[k], l) == 0)
            return 1;
    }
    return 0;
}

/* Case-insensitive (ASCII) search. */
static const char *find_ci(const char *h, size_t hn, const char *needle, size_t nn)
{
    if (nn == 0 || nn > hn)
        return NULL;
    for (size_t i = 0; i + nn <= hn; i++) {
        size_t k = 0;
        while (k < nn && tolower((unsigned char)h[i + k]) == tolower((unsigned char)needle[k]))
            k++;
        if (k == nn)
            return h + i;
    }
    return NULL;
}

/* Replaces every occurrence of needle in *text by the placeholder.
 * capital: only occurrences that start with a capital letter (a name part
 * that may also be a word: "Long", "May"). */
static int replace_all_cap(Buf *text, const char *needle, PhiKind kind, int *count, int capital)
{
    size_t nn = strlen(needle);
    if (nn < 2)
        return 0;
    /* A Latin needle must stand alone (not inside a longer word). */
    int word = isalnum((unsigned char)needle[0]);
    Buf out = {0};
    const char *s = text->data, *end = text->data + text->len;
    int hits = 0;
    while (s < end) {
        const char *m = find_ci(s, (size_t)(end - s), needle, nn);
        while (m && ((word && ((m > text->data && isalnum((unsigned char)m[-1])) ||
                                (m + nn < end && isalnum((unsigned char)m[nn])))) ||
                     (capital && !isupper((unsigned char)m[0])))) {
            const char *from = m + 1;
            m = find_ci(from, (size_t)(end - from), needle, nn);
        }
        if (!m)
            break;
        buf_append(&out, s, (size_t)(m - s));
        buf_puts(&out, placeholders[kind]);
        s = m + nn;
        hits++;
    }
    if (!hits) {
        buf_free(&out);
        return 0;
    }
    buf_append(&out, s, (size_t)(end - s));
    if (out.failed) {
        buf_free(&out);
        return -1;
    }
    buf_free(text);
    *text = out;
    *count += hits;
    return 0;
}

static int replace_all(Buf *text, const char *needle, PhiKind kind, int *count)
{
    return replace_all_cap(text, needle, kind, count, 0);
}

enum { NAME_PIECE = 128 }; /* bytes of one piece of a person name, NUL included */

/* Splits s at sep into at most max pieces (each cut to NAME_PIECE - 1
 * bytes); empty pieces are dropped unless keep_empty. Returns the count. */
static int split_pieces(const char *s, char sep, char (*out)[NAME_PIECE], int max,
                        int keep_empty)
{
    int n = 0;
    while (n < max) {
        const char *end = strchr(s, sep);
        size_t l = end ? (size_t)(end - s) : strlen(s);
        if (l >= NAME_PIECE)
            l = NAME_PIECE - 1;
        memcpy(out[n], s, l);
        out[n][l] = '\0';
        if (l || keep_empty)
            n++;
        if (!end)
            break;
        s = end + 1;
    }
    return n;
}

/* The spellings of one known value that reports use. */
static int scrub_known(Buf *text, const PhiValue *v, int counts[PHI_NKINDS])
{
    const char *val = v->value;
    if (v->kind == PHI_NAME) {
        /* DICOM person names: groups separated by '=' (alphabetic,
         * ideographic, phonetic), components by '^'. */
        char groups[3][NAME_PIECE];
        int ng = split_pieces(val, '=', groups, 3, 1);
        for (int i = 0; i < ng; i++) {
            char comp[5][NAME_PIECE];
            int nc = split_pieces(groups[i], '^', comp, 5, 0);
            if (nc == 0)
                continue;
            char form[300];
            /* Full forms first, so a family name alone never splits them. */
            if (replace_all(text, groups[i], PHI_NAME, &counts[PHI_NAME]))
                return -1;
            if (nc >= 2) {
                const char *seps[] = {" ", ", ", ",", ""};
                for (size_t f = 0; f < sizeof seps / sizeof seps[0]; f++) {
                    snprintf(form, sizeof form, "%s%s%s", comp[0], seps[f], comp[1]);
                    if (replace_all(text, form, PHI_NAME, &counts[PHI_NAME]))
                        return -1;
                    snprintf(form, sizeof form, "%s%s%s", comp[1], seps[f], comp[0]);
                    if (replace_all(text, form, PHI_NAME, &counts[PHI_NAME]))
                        return -1;
                }
            }
            /* Single components: Latin ones of 3+ letters where the text
             * capitalises them ("Mr. Doe"); CJK ones of 2+ characters. */
            for (int k = 0; k < nc; k++) {
                size_t l = strlen(comp[k]);
                int latin = (unsigned char)comp[k][0] < 0x80;
                if ((latin && l >= 3) || (!latin && l >= 6))
                    if (replace_all_cap(text, comp[k], PHI_NAME, &counts[PHI_NAME], latin))
                        return -1;
            }
        }
        return 0;
    }
    if (v->kind == PHI_DATE) {
        /* DA: YYYYMMDD. */
        size_t l = strlen(val);
        if (l == 8) {
            int ok = 1;
            for (int i = 0; i < 8; i++)
                ok &= isdigit((unsigned char)val[i]) != 0;
            if (ok) {
                char y[5], m[3], d[3], f[40];
                memcpy(y, val, 4), y[4] = 0;
                memcpy(m, val + 4, 2), m[2] = 0;
                memcpy(d, val + 6, 2), d[2] = 0;
                const char *seps = "-/.";
                for (int s = 0; s < 3; s++) {
                    snprintf(f, sizeof f, "%s%c%s%c%s", y, seps[s], m, seps[s], d);
                    if (replace_all(text, f, PHI_DATE, &counts[PHI_DATE]))
                        return -1;
                    snprintf(f, sizeof f, "%s%c%s%c%s", d, seps[s], m, seps[s], y);
                    if (replace_all(text, f, PHI_DATE, &counts[PHI_DATE]))
                        return -1;
                    snprintf(f, sizeof f, "%s%c%s%c%s", m, seps[s], d, seps[s], y);
                    if (replace_all(text, f, PHI_DATE, &counts[PHI_DATE]))
                        return -1;
                }
                snprintf(f, sizeof f, "%s年%d月%d日", y, atoi(m), atoi(d));
                if (replace_all(text, f, PHI_DATE, &counts[PHI_DATE]))
                    return -1;
                snprintf(f, sizeof f, "%s年%s月%s日", y, m, d);
                if (replace_all(text, f, PHI_DATE, &counts[PHI_DATE]))
                    return -1;
            }
        }
        return replace_all(text, val, PHI_DATE, &counts[PHI_DATE]);
    }
    if (strlen(val) < (v->kind == PHI_ID ? 4u : 6u))
        return 0;
    return replace_all(text, val, v->kind, &counts[v->kind]);
}

/* ---------------------------------------------------------------- patterns */

static int apply_pattern(Phi *p, int i, Buf *text, int counts[PHI_NKINDS], FvErr *e)
{
    const Pattern *pt = &patterns[i];
    Buf out = {0};
    PCRE2_SIZE start = 0, copied = 0;
    int hits = 0;
    while (start <= text->len) {
        int rc = pcre2_match(p->re[i], (PCRE2_SPTR)text->data, text->len, start, 0, p->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            buf_free(&out);
            return err_set(e, FV_EINTERNAL, "de-identification pattern %d: %s", i,
                           (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(p->md);
        PCRE2_SIZE ms = ov[2 * pt->group], me = ov[2 * pt->group + 1];
        PCRE2_SIZE next = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
        if (ms != PCRE2_UNSET && me > ms && !is_placeholder(text->data + ms, me - ms)) {
            buf_append(&out, text->data + copied, ms - copied);
            buf_puts(&out, placeholders[pt->kind]);
            copied = me;
            hits++;
        }
        /* Step over a whole UTF-8 character after an empty match. */
        while (next < text->len && ((unsigned char)text->data[next] & 0xC0) == 0x80)
            next++;
        start = next;
    }
    if (!hits) {
        buf_free(&out);
        return 0;
    }
    buf_append(&out, text->data + copied, text->len - copied);
    if (out.failed) {
        buf_free(&out);
        return err_set(e, FV_ENOMEM, "de-identification: out of memory");
    }
    buf_free(text);
    *text = out;
    counts[pt->kind] += hits;
    return 0;
}

int phi_scrub(Phi *p, const char *text, size_t n, const PhiValue *known, int nknown, Buf *out,
              int counts[PHI_NKINDS], FvErr *e)
{
    Buf t = {0};
    buf_append(&t, text, n);
    if (t.failed)
        return err_set(e, FV_ENOMEM, "de-identification: out of memory");
    for (int i = 0; i < nknown; i++)
        if (scrub_known(&t, &known[i], counts)) {
            buf_free(&t);
            return err_set(e, FV_ENOMEM, "de-identification: out of memory");
        }
    for (int i = 0; i < NPAT; i++)
        if (apply_pattern(p, i, &t, counts, e)) {
            buf_free(&t);
            return -1;
        }
    buf_append(out, t.data, t.len);
    buf_free(&t);
    return out->failed ? err_set(e, FV_ENOMEM, "de-identification: out of memory") : 0;
}
