#include "sentences.h"

#include <string.h>

#include "parse_util.h"

/* ------------------------------------------------------------------------ */
/* 2. Sections.                                                             */
/* ------------------------------------------------------------------------ */

static int add_section(ParseResult *r, int sec, size_t a, size_t b, FvErr *e)
{
    if (grow((void **)&r->sec, r->nsec, &r->csec, sizeof *r->sec, e))
        return -1;
    ParseSection *x = &r->sec[r->nsec++];
    x->section = sec;
    x->nstart = a;
    x->nend = b;
    norm_orig_span(&r->norm, a, b, &x->start, &x->end);
    return 0;
}

/* A heading at line start `ls`: its section, and where its body starts. */
static int match_heading(const Lexicon *lex, const char *s, size_t n, size_t ls, size_t *body)
{
    int best = -1;
    size_t best_len = 0;
    for (int h = 0; h < lex->n_head; h++) {
        const LexHeading *x = &lex->head[h];
        if (x->len <= best_len || ls + x->len > n || memcmp(s + ls, x->text, x->len) != 0)
            continue;
        size_t k = ls + x->len;
        if (k < n && is_word((unsigned char)s[k]))
            continue;
        while (k < n && s[k] == ' ')
            k++;
        if (k < n && s[k] != ':' && s[k] != '\n')
            continue;
        if (k < n && s[k] == ':')
            k++;
        best = h;
        best_len = x->len;
        *body = k;
    }
    return best < 0 ? -1 : lex->head[best].section;
}

int sent_find_sections(const Parser *p, ParseResult *r, FvErr *e)
{
    const char *s = r->norm.s;
    size_t n = r->norm.n;
    r->nsec = 0;
    int cur = -1;
    size_t cur_start = 0, first_head = n;
    size_t pos = 0;
    while (pos < n) {
        size_t ls = pos;
        while (ls < n && s[ls] == ' ')
            ls++;
        size_t body;
        int sec = match_heading(p->lex, s, n, ls, &body);
        if (sec >= 0) {
            if (cur < 0) {
                first_head = ls;
            } else if (add_section(r, cur, cur_start, ls, e)) {
                return -1;
            }
            cur = sec;
            cur_start = body;
        }
        const char *nl = memchr(s + ls, '\n', n - ls);
        pos = nl ? (size_t)(nl - s) + 1 : n;
    }
    if (cur < 0)
        return add_section(r, SEC_FINDINGS, 0, n, e);
    /* Text before the first heading (clinical notes, a title) is 'other'. */
    if (first_head > 0 && add_section(r, SEC_OTHER, 0, first_head, e))
        return -1;
    if (add_section(r, cur, cur_start, n, e))
        return -1;
    /* keep report order: the 'other' prefix was appended after the others */
    if (first_head > 0 && r->nsec > 1) {
        int k = -1;
        for (int i = 0; i < r->nsec; i++)
            if (r->sec[i].nstart == 0 && r->sec[i].nend == first_head && r->sec[i].section == SEC_OTHER)
                k = i;
        if (k > 0) {
            ParseSection t = r->sec[k];
            memmove(r->sec + 1, r->sec, (size_t)k * sizeof *r->sec);
            r->sec[0] = t;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* 3. Sentences.                                                            */
/* ------------------------------------------------------------------------ */

int sent_has_content(const char *s, size_t a, size_t b)
{
    for (size_t i = a; i < b; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_word(c) || c >= 0x80)
            return 1;
    }
    return 0;
}

/* Bytes of a list number at s[a, b) followed by its blank space: "1." "2、"
 * "3)" "(4)" "①" (normalised to "1"), "一、"; 0 when there is none. A
 * decimal ("1.5 cm") or a count ("2 nodules") is no list number. */
static size_t list_marker(const ParseResult *r, size_t a, size_t b)
{
    const char *s = r->norm.s;
    size_t k = a;
    if (k < b && s[k] == '(') {
        size_t d = ++k;
        while (k < b && is_digit((unsigned char)s[k]) && k - d < 2)
            k++;
        if (k == d || k >= b || s[k] != ')')
            return 0;
        k++;
    } else if (k < b && is_digit((unsigned char)s[k])) {
        size_t d = k;
        while (k < b && is_digit((unsigned char)s[k]) && k - d < 2)
            k++;
        if (k < b && is_digit((unsigned char)s[k]))
            return 0;
        /* a circled number of the original ("①") was normalised to digits */
        size_t oa, ob;
        norm_orig_span(&r->norm, d, k, &oa, &ob);
        const unsigned char *o = (const unsigned char *)r->norm.orig;
        int circled = ob - oa == 3 && o[oa] == 0xE2 && o[oa + 1] == 0x91 && o[oa + 2] >= 0xA0 &&
                      o[oa + 2] <= 0xB3;
        if (circled) {
            /* done */
        } else if (k < b && (s[k] == '.' || s[k] == ')') &&
                   !(k + 1 < b && is_digit((unsigned char)s[k + 1]))) {
            k++;
        } else if (is_zh_enum(s, k, b)) {
            k += 3;
        } else {
            return 0;
        }
    } else {
        /* 一、 ... 十、: a Chinese numeral and the enumeration comma */
        static const char *const zh_num[] = {"一", "二", "三", "四", "五", "六", "七", "八", "九", "十"};
        size_t j = k;
        for (size_t z = 0; z < sizeof zh_num / sizeof zh_num[0] && j == k; z++)
            if (k + 3 <= b && !memcmp(s + k, zh_num[z], 3))
                j = k + 3;
        if (j == k || !is_zh_enum(s, j, b))
            return 0;
        k = j + 3;
    }
    while (k < b && is_space((unsigned char)s[k]))
        k++;
    return k - a;
}

int sent_add(ParseResult *r, int sec, size_t a, size_t b, FvErr *e)
{
    const char *s = r->norm.s;
    while (a < b && is_space((unsigned char)s[a]))
        a++;
    /* list numbers are not part of the sentence (nor of a training text) */
    a += list_marker(r, a, b);
    while (b > a && is_space((unsigned char)s[b - 1]))
        b--;
    if (!sent_has_content(s, a, b))
        return 0;
    if (grow((void **)&r->sent, r->nsent, &r->csent, sizeof *r->sent, e))
        return -1;
    ParseSentence *x = &r->sent[r->nsent++];
    x->section = sec;
    x->nstart = a;
    x->nend = b;
    norm_orig_span(&r->norm, a, b, &x->start, &x->end);
    x->zh = 0;
    for (size_t i = a; i < b; i++)
        if (is_cjk_lead((unsigned char)s[i])) {
            x->zh = 1;
            break;
        }
    return 0;
}

/* Cuts [a, b) into pieces of at most PARSE_MAX_SENTENCE bytes, preferring a
 * clause boundary, then a space, then any character boundary. */
static int add_sentence_cut(ParseResult *r, int sec, size_t a, size_t b, FvErr *e)
{
    const char *s = r->norm.s;
    int cut = 0;
    while (b - a > PARSE_MAX_SENTENCE) {
        size_t lim = a + PARSE_MAX_SENTENCE, at = 0;
        for (size_t i = lim; i > a + PARSE_MAX_SENTENCE / 2 && !at; i--)
            if (s[i - 1] == ',' || s[i - 1] == ';' || s[i - 1] == ':')
                at = i;
        for (size_t i = lim; i > a + PARSE_MAX_SENTENCE / 2 && !at; i--)
            if (s[i - 1] == ' ')
                at = i;
        if (!at) {
            at = lim;
            while (at > a && ((unsigned char)s[at] & 0xC0) == 0x80)
                at--;
        }
        if (sent_add(r, sec, a, at, e))
            return -1;
        a = at;
        cut = 1;
    }
    if (cut)
        r->n_cut++;
    return sent_add(r, sec, a, b, e);
}

/* A list number starts at i: "1." "2、" "3)" "(4)" not part of a decimal. */
static int item_start(const ParseResult *r, size_t sec_start, size_t i, size_t end)
{
    const char *s = r->norm.s;
    unsigned char c = (unsigned char)s[i];
    size_t k = i;
    if (c == '(') {
        k++;
        size_t d = k;
        while (k < end && is_digit((unsigned char)s[k]) && k - d < 3)
            k++;
        if (k == d || k >= end || s[k] != ')')
            return 0;
    } else if (is_digit(c)) {
        if (i > sec_start && is_word((unsigned char)s[i - 1]))
            return 0;
        size_t d = k;
        while (k < end && is_digit((unsigned char)s[k]) && k - d < 3)
            k++;
        if (k - d > 2 || k >= end)
            return 0;
        if (s[k] == '.' || s[k] == ')') {
            if (k + 1 < end && is_digit((unsigned char)s[k + 1]))
                return 0;
        } else if (!is_zh_enum(s, k, end)) {
            return 0;
        }
    } else {
        return 0;
    }
    /* what precedes: the section start, a line break, a sentence or clause
     * mark, or (Chinese) any character or space */
    if (i == sec_start)
        return 1;
    size_t j = i;
    while (j > sec_start && s[j - 1] == ' ')
        j--;
    if (j == sec_start)
        return 1;
    unsigned char pc = (unsigned char)s[j - 1];
    if (pc == '\n' || pc == '.' || pc == ';' || pc == ':' || pc == '!' || pc == '?')
        return 1;
    if (pc >= 0x80)
        return 1;   /* after Chinese text or 。 */
    if (r->lang == PARSE_LANG_ZH && (pc == ',' || j < i))
        return 1;
    return 0;
}

/* The word before the '.' at i (letters and inner dots), for abbreviations. */
static int abbrev_before(const Lexicon *lex, const char *s, size_t a, size_t i)
{
    size_t k = i;
    while (k > a && (((unsigned char)s[k - 1] >= 'a' && (unsigned char)s[k - 1] <= 'z') ||
                     s[k - 1] == '.'))
        k--;
    return k < i && lex_is_abbrev(lex, s + k, i - k);
}

/* Does the '.' at i end an English sentence? */
static int period_ends(const Parser *p, const ParseResult *r, size_t cur, size_t i, size_t end)
{
    const char *s = r->norm.s;
    unsigned char next = i + 1 < end ? (unsigned char)s[i + 1] : ' ';
    unsigned char prev = i > cur ? (unsigned char)s[i - 1] : ' ';
    if (is_digit(prev) && is_digit(next))
        return 0;                               /* decimal: 1.5 cm */
    if (!(is_space(next) || next >= 0x80 || next == '"' || next == ')' || next == '\''))
        return 0;                               /* inside a token: e.g., i.e., 3.a */
    /* a list number: the sentence so far is "12" */
    size_t k = cur;
    while (k < i && is_space((unsigned char)s[k]))
        k++;
    if (k < i && i - k <= 2) {
        int digits = 1;
        for (size_t j = k; j < i; j++)
            digits &= is_digit((unsigned char)s[j]);
        if (digits)
            return 0;
    }
    if (abbrev_before(p->lex, s, cur, i))
        return 0;
    /* "... approx. the" : a lower-case word after the period continues the
     * sentence, in reports that use capitals at all. */
    size_t j = i + 1;
    while (j < end && s[j] == ' ')
        j++;
    if (j < end && r->norm.n_upper > 0 && s[j] >= 'a' && s[j] <= 'z' && !norm_was_upper(&r->norm, j))
        return 0;
    return 1;
}

int sent_split_section(const Parser *p, ParseResult *r, const ParseSection *sec, FvErr *e)
{
    const char *s = r->norm.s;
    size_t a = sec->nstart, b = sec->nend, cur = a, i = a;
    int zh_report = r->lang == PARSE_LANG_ZH;
    while (i < b) {
        unsigned char c = (unsigned char)s[i];
        size_t endpos = 0, next = 0;
        if (c == '\n') {
            int split = 1;
            if (!zh_report) {
                /* English: a line wrapped inside a sentence continues when the
                 * next line starts with a lower-case letter. */
                size_t j = i + 1;
                while (j < b && s[j] == ' ')
                    j++;
                if (j < b && s[j] >= 'a' && s[j] <= 'z' && !norm_was_upper(&r->norm, j) &&
                    r->norm.n_upper > 0)
                    split = 0;
            }
            if (split) {
                endpos = i;
                next = i + 1;
            }
        } else if (c == 0xE3 && is_zh_stop(s, i, b)) {
            endpos = next = i + 3;
        } else if (c == '!' || c == '?') {
            size_t j = i + 1;
            int zh_ctx = zh_report || (i > a && (unsigned char)s[prev_cp(s, i)] >= 0x80);
            if (zh_ctx || j >= b || is_space((unsigned char)s[j]) || (unsigned char)s[j] >= 0x80)
                endpos = next = i + 1;
        } else if (c == ';') {
            int zh_ctx = zh_report || (i > a && (unsigned char)s[prev_cp(s, i)] >= 0x80);
            if (zh_ctx)
                endpos = next = i + 1;
        } else if (c == '.') {
            if (i > a && (unsigned char)s[prev_cp(s, i)] >= 0xE3 &&
                !(i + 1 < b && is_digit((unsigned char)s[i + 1])))
                endpos = next = i + 1;          /* "。"-like use after Chinese text */
            else if (period_ends(p, r, cur, i, b))
                endpos = next = i + 1;
        } else if ((is_digit(c) || c == '(') && i > cur && sent_has_content(s, cur, i) &&
                   item_start(r, a, i, b)) {
            endpos = next = i;
        }
        if (next) {
            if (add_sentence_cut(r, sec->section, cur, endpos, e))
                return -1;
            cur = next;
            i = next;
            continue;
        }
        i++;
    }
    return add_sentence_cut(r, sec->section, cur, b, e);
}

