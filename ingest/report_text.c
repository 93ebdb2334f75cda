#include "report_text.h"

#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <string.h>

#include "utf8.h"

static int is_han(int32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2FFFF) || (c >= 0xF900 && c <= 0xFAFF);
}

static int is_latin_letter(int32_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= 0xC0 && c <= 0x24F);
}

static void count_letters(const char *s, size_t n, size_t *han, size_t *latin)
{
    *han = *latin = 0;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        int32_t c;
        size_t k = utf8_decode(p + i, n - i, &c);
        i += k ? k : 1;
        if (is_han(c))
            (*han)++;
        else if (is_latin_letter(c))
            (*latin)++;
    }
}

const char *report_language(const char *text, size_t n)
{
    size_t han, latin;
    count_letters(text, n, &han, &latin);
    return han > 0 && han * 10 >= han + latin ? "zh" : "en";
}

/* iconv from `from` to UTF-8; returns 0, or -1 with the failing offset. */
static int convert(const char *from, const unsigned char *p, size_t n, Buf *out, size_t *bad)
{
    iconv_t cd = iconv_open("UTF-8", from);
    if (cd == (iconv_t)-1) {
        *bad = 0;
        return -2;
    }
    size_t start = out->len;
    char *in = (char *)p;
    size_t left = n;
    char chunk[16384];
    int rc = 0;
    while (left > 0) {
        char *o = chunk;
        size_t room = sizeof chunk;
        size_t r = iconv(cd, &in, &left, &o, &room);
        buf_append(out, chunk, (size_t)(o - chunk));
        if (r == (size_t)-1 && errno != E2BIG) {
            *bad = (size_t)(in - (char *)p);
            rc = -1;
            break;
        }
    }
    iconv_close(cd);
    if (rc)
        out->len = start, out->data[start] = '\0';
    return rc;
}

int report_decode(const unsigned char *p, size_t n, size_t max_bytes, Buf *out,
                  const char **encoding, FvErr *e)
{
    if (n > max_bytes)
        return err_set(e, FV_ELIMIT, "report of %zu bytes is over the limit of %zu "
                                     "(ingest.max_report_bytes)",
                       n, max_bytes);
    size_t start = out->len, bad = 0;
    if (n >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF) {
        *encoding = "utf-8-bom";
        p += 3;
        n -= 3;
    } else if (n >= 2 && ((p[0] == 0xFF && p[1] == 0xFE) || (p[0] == 0xFE && p[1] == 0xFF))) {
        int le = p[0] == 0xFF;
        *encoding = le ? "utf-16le" : "utf-16be";
        if (convert(le ? "UTF-16LE" : "UTF-16BE", p + 2, n - 2, out, &bad))
            return err_set(e, FV_EFORMAT, "invalid %s text at byte %zu", *encoding, bad + 2);
        report_normalize(out);
        return 0;
    } else {
        *encoding = "utf-8";
    }
    if (memchr(p, 0, n) == NULL && utf8_count_invalid((const char *)p, n) == 0) {
        buf_append(out, p, n);
        report_normalize(out);
        return out->failed ? err_set(e, FV_ENOMEM, "report: out of memory") : 0;
    }
    if (!strcmp(*encoding, "utf-8-bom"))
        return err_set(e, FV_EFORMAT, "report has a UTF-8 byte order mark but invalid UTF-8");
    /* Not UTF-8: GB18030, when the result reads as Chinese. */
    size_t first_bad = 0;
    {
        const unsigned char *q = p;
        size_t i = 0;
        while (i < n) {
            int32_t c;
            size_t k = utf8_decode(q + i, n - i, &c);
            if (c < 0 || c == 0)
                break;
            i += k;
        }
        first_bad = i;
    }
    int rc = memchr(p, 0, n) ? -1 : convert("GB18030", p, n, out, &bad);
    if (rc == 0) {
        size_t han, latin;
        count_letters(out->data + start, out->len - start, &han, &latin);
        if (han * 10 >= (han + latin) * 3) {
            *encoding = "gb18030";
            report_normalize(out);
            return out->failed ? err_set(e, FV_ENOMEM, "report: out of memory") : 0;
        }
        out->len = start;
        out->data[start] = '\0';
    }
    return err_set(e, FV_EFORMAT,
                   "report in an unknown encoding: byte 0x%02X at offset %zu is not UTF-8, and "
                   "the text is not plausible GB18030",
                   first_bad < n ? p[first_bad] : 0, first_bad);
}

int report_decode_dicom(const unsigned char *p, size_t n, const char *charset, Buf *out,
                        const char **encoding, FvErr *e)
{
    /* The last value of a multi-valued charset names the G1 set in use. */
    const char *cs = strrchr(charset, '\\');
    cs = cs ? cs + 1 : charset;
    const char *from = NULL;
    if (!*cs || !strcmp(cs, "ISO_IR 6") || !strcmp(cs, "ISO_IR 192")) {
        if (utf8_count_invalid((const char *)p, n) == 0) {
            *encoding = "utf-8";
            buf_append(out, p, n);
            report_normalize(out);
            return 0;
        }
        from = "ISO-8859-1"; /* undeclared Latin-1 is the common mistake */
    } else if (!strcmp(cs, "GB18030") || !strcmp(cs, "GBK")) {
        from = "GB18030";
    } else if (!strcmp(cs, "ISO_IR 100")) {
        from = "ISO-8859-1";
    } else if (!strcmp(cs, "ISO_IR 101")) {
        from = "ISO-8859-2";
    } else if (!strcmp(cs, "ISO_IR 144")) {
        from = "ISO-8859-5";
    } else if (!strcmp(cs, "ISO_IR 148")) {
        from = "ISO-8859-9";
    } else {
        return err_set(e, FV_EUNSUPPORTED, "report text in character set '%s' is not supported",
                       charset);
    }
    size_t bad;
    if (convert(from, p, n, out, &bad))
        return err_set(e, FV_EFORMAT, "report text is not valid %s at byte %zu", from, bad);
    *encoding = !strcmp(from, "GB18030") ? "gb18030" : !strcmp(from, "ISO-8859-1") ? "latin-1"
                                                                                  : from;
    report_normalize(out);
    return 0;
}

static int not_given(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    size_t l = strlen(s);
    while (l && (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\n' || s[l - 1] == '\r'))
        l--;
    return l == 0 || (l == 10 && strncmp(s, "Not given.", 10) == 0) ||
           (l == 9 && strncmp(s, "Not given", 9) == 0);
}

static void put_trimmed(Buf *out, const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    size_t l = strlen(s);
    while (l && (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\n' || s[l - 1] == '\r'))
        l--;
    buf_append(out, s, l);
}

void report_compose_ctrate(const char *findings, const char *impression, Buf *out)
{
    buf_puts(out, "Findings: ");
    if (!not_given(findings))
        put_trimmed(out, findings);
    buf_puts(out, "\n\nImpression: ");
    if (!not_given(impression))
        put_trimmed(out, impression);
}

void report_normalize(Buf *b)
{
    size_t w = 0;
    for (size_t r = 0; r < b->len; r++) {
        char c = b->data[r];
        if (c == '\r') {
            if (r + 1 < b->len && b->data[r + 1] == '\n')
                continue;
            c = '\n';
        }
        if (c == '\0')
            continue;
        b->data[w++] = c;
    }
    while (w && (b->data[w - 1] == ' ' || b->data[w - 1] == '\n' || b->data[w - 1] == '\t'))
        w--;
    b->len = w;
    if (b->data)
        b->data[w] = '\0';
}
