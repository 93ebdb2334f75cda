#include "dicom.h"

#include <charls/charls.h>
#include <ctype.h>
#include <math.h>
#include <openjpeg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "buf.h"
#include "bytes.h"

enum { UNDEFINED = (int)0xFFFFFFFF };
#define LEN_UNDEFINED 0xFFFFFFFFu

#define TAG_ITEM DCM_TAG(0xFFFE, 0xE000)
#define TAG_ITEM_END DCM_TAG(0xFFFE, 0xE00D)
#define TAG_SEQ_END DCM_TAG(0xFFFE, 0xE0DD)
#define TAG_PIXEL DCM_TAG(0x7FE0, 0x0010)

/* ------------------------------------------------------------ the arrays */

static int add_elem(DcmFile *f, FvErr *e)
{
    if (f->nel >= DCM_MAX_ELEMENTS)
        return err_set(e, FV_ELIMIT, "more than %d elements: not a plausible DICOM file",
                       DCM_MAX_ELEMENTS);
    if (arr_reserve(&f->el, &f->capel, f->nel, sizeof *f->el, 256))
        return err_set(e, FV_ENOMEM, "DICOM: out of memory");
    DcmElem *x = &f->el[f->nel];
    memset(x, 0, sizeof *x);
    x->next = x->item = -1;
    return f->nel++;
}

static int add_item(DcmFile *f, FvErr *e)
{
    if (f->nit >= DCM_MAX_ELEMENTS)
        return err_set(e, FV_ELIMIT, "more than %d items: not a plausible DICOM file",
                       DCM_MAX_ELEMENTS);
    if (arr_reserve(&f->it, &f->capit, f->nit, sizeof *f->it, 64))
        return err_set(e, FV_ENOMEM, "DICOM: out of memory");
    f->it[f->nit].first = f->it[f->nit].next = -1;
    return f->nit++;
}

static int add_frag(DcmFile *f, size_t off, size_t len, FvErr *e)
{
    if (f->nfr >= DCM_MAX_ELEMENTS)
        return err_set(e, FV_ELIMIT, "more than %d pixel fragments", DCM_MAX_ELEMENTS);
    if (arr_reserve(&f->fr, &f->capfr, f->nfr, sizeof *f->fr, 64))
        return err_set(e, FV_ENOMEM, "DICOM: out of memory");
    f->fr[f->nfr].off = off;
    f->fr[f->nfr].len = len;
    return f->nfr++;
}

/* --------------------------------------------------------------- parsing */

static int vr_is_long(const char *vr)
{
    static const char *longs[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ",
                                  "SV", "UC", "UN", "UR", "UT", "UV"};
    for (size_t i = 0; i < sizeof longs / sizeof longs[0]; i++)
        if (vr[0] == longs[i][0] && vr[1] == longs[i][1])
            return 1;
    return 0;
}

/* Sequences whose VR an implicit-VR file does not state but whose contents
 * we read (structured reports, functional groups). */
static int implicit_is_sq(uint32_t tag)
{
    static const uint32_t sq[] = {
        DCM_TAG(0x0040, 0xA730), DCM_TAG(0x0040, 0xA043), DCM_TAG(0x0040, 0xA168),
        DCM_TAG(0x0040, 0xA300), DCM_TAG(0x0040, 0x08EA), DCM_TAG(0x0040, 0xA504),
        DCM_TAG(0x0040, 0xA073), DCM_TAG(0x0040, 0xA088), DCM_TAG(0x0040, 0xA360),
        DCM_TAG(0x0040, 0xA370), DCM_TAG(0x0040, 0xA372), DCM_TAG(0x0040, 0xA375),
        DCM_TAG(0x0040, 0xA385), DCM_TAG(0x0040, 0xA525), DCM_TAG(0x5200, 0x9229),
        DCM_TAG(0x5200, 0x9230), DCM_TAG(0x0020, 0x9113), DCM_TAG(0x0020, 0x9116),
        DCM_TAG(0x0028, 0x9110), DCM_TAG(0x0028, 0x9145), DCM_TAG(0x0020, 0x9111),
        DCM_TAG(0x0008, 0x1115), DCM_TAG(0x0008, 0x1140), DCM_TAG(0x0008, 0x1110),
        DCM_TAG(0x0008, 0x1111), DCM_TAG(0x0008, 0x1032), DCM_TAG(0x0008, 0x1250),
        DCM_TAG(0x0088, 0x0200), DCM_TAG(0x0040, 0x0275), DCM_TAG(0x0040, 0x0260),
    };
    for (size_t i = 0; i < sizeof sq / sizeof sq[0]; i++)
        if (sq[i] == tag)
            return 1;
    return 0;
}

/* Binary attributes we read from implicit-VR files (image pixel module). */
static int implicit_is_us(uint32_t tag)
{
    static const uint32_t us[] = {
        DCM_TAG(0x0028, 0x0002), DCM_TAG(0x0028, 0x0010), DCM_TAG(0x0028, 0x0011),
        DCM_TAG(0x0028, 0x0100), DCM_TAG(0x0028, 0x0101), DCM_TAG(0x0028, 0x0102),
        DCM_TAG(0x0028, 0x0103), DCM_TAG(0x0028, 0x0006),
    };
    for (size_t i = 0; i < sizeof us / sizeof us[0]; i++)
        if (us[i] == tag)
            return 1;
    return 0;
}

typedef struct Ctx {
    DcmFile *f;
    FvErr *e;
} Ctx;

static int parse_ds(Ctx *c, size_t *pos, size_t end, int big, int implicit, int depth,
                    int in_undefined_item, int group2_only, int *first);

static int truncated(Ctx *c, const char *what, size_t pos)
{
    return err_set(c->e, FV_EFORMAT, "%s at byte %zu of %zu: truncated or corrupt file", what,
                   pos, c->f->len);
}

/* Items of a sequence, in [*pos, end); undefined: ends at a sequence
 * delimiter. */
static int parse_seq(Ctx *c, size_t *pos, size_t end, int big, int implicit, int depth,
                     int undefined, int *first_item)
{
    const unsigned char *b = c->f->buf;
    int prev = -1;
    *first_item = -1;
    if (depth > DCM_MAX_DEPTH)
        return err_set(c->e, FV_EFORMAT, "sequences nested deeper than %d at byte %zu",
                       DCM_MAX_DEPTH, *pos);
    while (*pos < end) {
        if (end - *pos < 8)
            return truncated(c, "sequence item header cut short", *pos);
        uint32_t tag = (uint32_t)rd_u16(b + *pos, big) << 16 | rd_u16(b + *pos + 2, big);
        uint32_t len = rd_u32(b + *pos + 4, big);
        if (tag == TAG_SEQ_END) {
            *pos += 8;
            return 0;
        }
        if (tag != TAG_ITEM)
            return err_set(c->e, FV_EFORMAT,
                           "expected a sequence item at byte %zu, found (%04X,%04X)", *pos,
                           tag >> 16, tag & 0xFFFF);
        *pos += 8;
        int it = add_item(c->f, c->e);
        if (it < 0)
            return -1;
        if (prev >= 0)
            c->f->it[prev].next = it;
        else
            *first_item = it;
        prev = it;
        int first = -1;
        if (len == LEN_UNDEFINED) {
            if (parse_ds(c, pos, end, big, implicit, depth + 1, 1, 0, &first))
                return -1;
        } else {
            if (len > end - *pos)
                return truncated(c, "sequence item runs past its end", *pos);
            size_t iend = *pos + len;
            if (parse_ds(c, pos, iend, big, implicit, depth + 1, 0, 0, &first))
                return -1;
            *pos = iend;
        }
        c->f->it[it].first = first;
    }
    if (undefined)
        return truncated(c, "sequence without its delimiter", *pos);
    return 0;
}

/* Encapsulated pixel data: items (fragments; the first is the offset
 * table) up to the sequence delimiter. */
static int parse_frags(Ctx *c, size_t *pos, size_t end, int big, DcmElem *el_unused, int idx)
{
    const unsigned char *b = c->f->buf;
    (void)el_unused;
    int first = -1, n = 0;
    while (*pos < end) {
        if (end - *pos < 8)
            return truncated(c, "pixel data fragment header cut short", *pos);
        uint32_t tag = (uint32_t)rd_u16(b + *pos, big) << 16 | rd_u16(b + *pos + 2, big);
        uint32_t len = rd_u32(b + *pos + 4, big);
        *pos += 8;
        if (tag == TAG_SEQ_END) {
            c->f->el[idx].frag = first;
            c->f->el[idx].nfrag = n;
            return 0;
        }
        if (tag != TAG_ITEM)
            return err_set(c->e, FV_EFORMAT,
                           "expected a pixel data fragment at byte %zu, found (%04X,%04X)",
                           *pos - 8, tag >> 16, tag & 0xFFFF);
        if (len == LEN_UNDEFINED || len > end - *pos)
            return truncated(c, "pixel data fragment runs past the end", *pos);
        int k = add_frag(c->f, *pos, len, c->e);
        if (k < 0)
            return -1;
        if (first < 0)
            first = k;
        n++;
        *pos += len;
    }
    return truncated(c, "encapsulated pixel data without its delimiter", *pos);
}

static int parse_ds(Ctx *c, size_t *pos, size_t end, int big, int implicit, int depth,
                    int in_undefined_item, int group2_only, int *first)
{
    DcmFile *f = c->f;
    const unsigned char *b = f->buf;
    int prev = -1;
    *first = -1;
    if (depth > DCM_MAX_DEPTH)
        return err_set(c->e, FV_EFORMAT, "datasets nested deeper than %d at byte %zu",
                       DCM_MAX_DEPTH, *pos);
    while (*pos < end) {
        size_t start = *pos;
        if (end - start < 8) {
            /* A few trailing pad bytes after the last element happen. */
            if (!in_undefined_item && depth == 0)
                return 0;
            return truncated(c, "element header cut short", start);
        }
        /* Group 0002 is always explicit VR little endian. */
        int ebig = big, eimpl = implicit;
        uint16_t g = rd_u16(b + start, ebig);
        if (group2_only) {
            if (rd_u16(b + start, 0) != 0x0002)
                return 0;
            ebig = 0;
            g = 2;
            eimpl = !(isupper(b[start + 4]) && isupper(b[start + 5]));
        }
        uint32_t tag = (uint32_t)g << 16 | rd_u16(b + start + 2, ebig);
        if (tag == TAG_ITEM_END) {
            *pos += 8;
            if (in_undefined_item)
                return 0;
            continue; /* a stray delimiter: skip it, as most readers do */
        }
        if (tag == TAG_SEQ_END) {
            *pos += 8;
            continue;
        }
        if ((tag >> 16) == 0xFFFE)
            return err_set(c->e, FV_EFORMAT, "unexpected item tag (FFFE,%04X) at byte %zu",
                           tag & 0xFFFF, start);
        char vr[3] = "UN";
        uint32_t len;
        size_t hdr;
        if (eimpl) {
            if (tag == TAG_PIXEL)
                memcpy(vr, "OW", 2);
            else if (implicit_is_sq(tag))
                memcpy(vr, "SQ", 2);
            else if (implicit_is_us(tag))
                memcpy(vr, "US", 2);
            len = rd_u32(b + start + 4, ebig);
            hdr = 8;
        } else {
            vr[0] = (char)b[start + 4];
            vr[1] = (char)b[start + 5];
            if (!isupper((unsigned char)vr[0]) || !isupper((unsigned char)vr[1]))
                return err_set(c->e, FV_EFORMAT,
                               "element (%04X,%04X) at byte %zu has no valid VR (bytes %02X %02X)",
                               tag >> 16, tag & 0xFFFF, start, b[start + 4], b[start + 5]);
            if (vr_is_long(vr)) {
                if (end - start < 12)
                    return truncated(c, "element header cut short", start);
                len = rd_u32(b + start + 8, ebig);
                hdr = 12;
            } else {
                len = rd_u16(b + start + 6, ebig);
                hdr = 8;
            }
        }
        *pos = start + hdr;
        int idx = add_elem(f, c->e);
        if (idx < 0)
            return -1;
        DcmElem *el = &f->el[idx];
        el->tag = tag;
        memcpy(el->vr, vr, 3);
        el->len = len;
        el->off = *pos;
        el->big = ebig;
        if (prev >= 0)
            f->el[prev].next = idx;
        else
            *first = idx;
        prev = idx;
        if (len == LEN_UNDEFINED) {
            if (tag == TAG_PIXEL) {
                if (parse_frags(c, pos, end, ebig, NULL, idx))
                    return -1;
            } else if (!strcmp(vr, "SQ") || !strcmp(vr, "UN") || eimpl) {
                /* UN of undefined length is a sequence in implicit VR LE. */
                int un = !strcmp(vr, "UN");
                int item;
                if (parse_seq(c, pos, end, un ? 0 : ebig, un ? 1 : eimpl, depth + 1, 1, &item))
                    return -1;
                f->el[idx].item = item;
                memcpy(f->el[idx].vr, "SQ", 3);
            } else {
                return err_set(c->e, FV_EFORMAT,
                               "element (%04X,%04X) with VR %s has undefined length at byte %zu",
                               tag >> 16, tag & 0xFFFF, vr, start);
            }
        } else {
            if (len > end - *pos) {
                char what[96];
                snprintf(what, sizeof what, "element (%04X,%04X) of %u bytes runs past the end",
                         tag >> 16, tag & 0xFFFF, len);
                return truncated(c, what, *pos);
            }
            if (!strcmp(vr, "SQ")) {
                size_t send = *pos + len;
                int item;
                if (parse_seq(c, pos, send, ebig, eimpl, depth + 1, 0, &item))
                    return -1;
                f->el[idx].item = item;
                *pos = send;
            } else {
                *pos += len;
            }
        }
        if (tag == TAG_PIXEL && depth == 0 && !group2_only)
            return 0; /* nothing after the pixels matters (trailing padding) */
    }
    if (in_undefined_item)
        return truncated(c, "item without its delimiter", *pos);
    return 0;
}

int dcm_sniff(const unsigned char *p, size_t n)
{
    if (n >= 132 && memcmp(p + 128, "DICM", 4) == 0)
        return 1;
    if (n < 8)
        return 0;
    /* A raw dataset starts with a low group (0002 or 0008), in either byte
     * order, followed by an explicit VR or a small implicit length. */
    uint16_t gl = rd_u16(p, 0), gb = rd_u16(p, 1);
    if (gl != 0x0002 && gl != 0x0008 && gb != 0x0008)
        return 0;
    if (isupper(p[4]) && isupper(p[5]))
        return 1;
    return rd_u32(p + 4, 0) < 0x10000;
}

/* Inflates a deflated dataset into f->owned, after a copy of the first
 * `pos` bytes (so meta elements keep their offsets). */
static int inflate_dataset(DcmFile *f, const unsigned char *p, size_t n, size_t pos,
                           size_t limit, FvErr *e)
{
    size_t cap = (n - pos) * 4 + pos + 4096;
    if (cap > limit)
        cap = limit;
    if (cap < pos + 1)
        cap = pos + 1;
    unsigned char *buf = malloc(cap);
    if (!buf)
        return err_set(e, FV_ENOMEM, "deflated dataset: out of memory");
    memcpy(buf, p, pos);
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit2(&s, -15) != Z_OK) {
        free(buf);
        return err_set(e, FV_ENOMEM, "deflated dataset: cannot initialise zlib");
    }
    s.next_in = (unsigned char *)p + pos;
    s.avail_in = (uInt)(n - pos);
    size_t used = pos;
    for (;;) {
        if (used == cap) {
            if (cap >= limit) {
                inflateEnd(&s);
                free(buf);
                return err_set(e, FV_ELIMIT, "deflated dataset inflates past %zu bytes", limit);
            }
            size_t nc = cap > limit / 2 ? limit : cap * 2;
            unsigned char *nb = realloc(buf, nc);
            if (!nb) {
                inflateEnd(&s);
                free(buf);
                return err_set(e, FV_ENOMEM, "deflated dataset: out of memory");
            }
            buf = nb;
            cap = nc;
        }
        s.next_out = buf + used;
        s.avail_out = (uInt)(cap - used > (1u << 30) ? (1u << 30) : cap - used);
        uInt before = s.avail_out;
        int rc = inflate(&s, Z_NO_FLUSH);
        used += before - s.avail_out;
        if (rc == Z_STREAM_END)
            break;
        if (rc == Z_BUF_ERROR && s.avail_in == 0) {
            inflateEnd(&s);
            free(buf);
            return err_set(e, FV_EFORMAT, "deflated dataset is truncated (%zu bytes inflated)",
                           used - pos);
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            err_set(e, FV_EFORMAT, "deflated dataset is corrupt: %s", s.msg ? s.msg : "zlib");
            inflateEnd(&s);
            free(buf);
            return -1;
        }
    }
    inflateEnd(&s);
    f->owned = buf;
    f->buf = buf;
    f->len = used;
    return 0;
}

int dcm_parse(DcmFile *f, const unsigned char *p, size_t n, size_t limit, FvErr *e)
{
    memset(f, 0, sizeof *f);
    f->meta = f->root = -1;
    f->buf = p;
    f->len = n;
    Ctx c = {f, e};
    size_t pos = 0;
    if (n >= 132 && memcmp(p + 128, "DICM", 4) == 0) {
        f->has_preamble = 1;
        pos = 132;
    } else if (n >= 4 && memcmp(p, "DICM", 4) == 0) {
        pos = 4;
    }
    if (n - pos >= 8 && rd_u16(p + pos, 0) == 0x0002) {
        f->has_meta = 1;
        if (parse_ds(&c, &pos, n, 0, 0, 0, 0, 1, &f->meta))
            return err_prefix(e, "meta header");
        const DcmElem *ts = dcm_find(f, f->meta, DCM_TAG(0x0002, 0x0010));
        dcm_str(f, ts, f->ts, sizeof f->ts);
    } else if (!f->has_preamble && !dcm_sniff(p, n)) {
        return err_set(e, FV_EFORMAT, "not a DICOM file (no DICM marker, no plausible dataset)");
    }
    if (f->ts[0]) {
        f->implicit = strcmp(f->ts, "1.2.840.10008.1.2") == 0;
        f->big = strcmp(f->ts, "1.2.840.10008.1.2.2") == 0;
        f->deflated = strcmp(f->ts, "1.2.840.10008.1.2.1.99") == 0;
    } else if (n - pos >= 8) {
        /* No transfer syntax: guess from the first element. */
        f->big = rd_u16(p + pos, 0) >= 0x0100 && rd_u16(p + pos, 1) < 0x0100;
        f->implicit = !(isupper(p[pos + 4]) && isupper(p[pos + 5]));
    }
    if (f->deflated && inflate_dataset(f, p, n, pos, limit, e))
        return -1;
    int first = -1;
    if (parse_ds(&c, &pos, f->len, f->big, f->implicit, 0, 0, 0, &first))
        return -1;
    f->root = first;
    if (f->root < 0 && f->meta < 0)
        return err_set(e, FV_EFORMAT, "empty DICOM dataset");
    return 0;
}

void dcm_free(DcmFile *f)
{
    free(f->owned);
    free(f->el);
    free(f->it);
    free(f->fr);
    memset(f, 0, sizeof *f);
    f->meta = f->root = -1;
}

/* ---------------------------------------------------------------- access */

const DcmElem *dcm_find(const DcmFile *f, int first, uint32_t tag)
{
    for (int i = first; i >= 0; i = f->el[i].next)
        if (f->el[i].tag == tag)
            return &f->el[i];
    return NULL;
}

int dcm_item(const DcmFile *f, const DcmElem *sq, int k)
{
    if (!sq)
        return -1;
    int it = sq->item;
    for (int i = 0; it >= 0 && i < k; i++)
        it = f->it[it].next;
    return it >= 0 ? f->it[it].first : -1;
}

int dcm_item_count(const DcmFile *f, const DcmElem *sq)
{
    int n = 0;
    for (int it = sq ? sq->item : -1; it >= 0; it = f->it[it].next)
        n++;
    return n;
}

void dcm_str(const DcmFile *f, const DcmElem *el, char *out, size_t n)
{
    out[0] = '\0';
    if (!el || el->len == LEN_UNDEFINED || n == 0)
        return;
    const unsigned char *s = f->buf + el->off;
    size_t len = el->len;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\0'))
        len--;
    while (len && *s == ' ') {
        s++;
        len--;
    }
    if (len >= n)
        len = n - 1;
    memcpy(out, s, len);
    out[len] = '\0';
}

static int ds_value(char *s, double *x, char **next);

int dcm_nums(const DcmFile *f, const DcmElem *el, double *out, int max)
{
    if (!el || el->len == LEN_UNDEFINED || el->len == 0)
        return 0;
    const unsigned char *v = f->buf + el->off;
    const char *vr = el->vr;
    int size = 0, sgn = 0, flt = 0;
    if (!strcmp(vr, "US")) size = 2;
    else if (!strcmp(vr, "SS")) size = 2, sgn = 1;
    else if (!strcmp(vr, "UL")) size = 4;
    else if (!strcmp(vr, "SL")) size = 4, sgn = 1;
    else if (!strcmp(vr, "FL")) size = 4, flt = 1;
    else if (!strcmp(vr, "FD")) size = 8, flt = 1;
    if (size) {
        int n = 0;
        for (size_t o = 0; o + (size_t)size <= el->len && n < max; o += (size_t)size, n++) {
            if (flt)
                out[n] = size == 4 ? rd_f32(v + o, el->big) : rd_f64(v + o, el->big);
            else if (size == 2)
                out[n] = sgn ? (double)rd_i16(v + o, el->big) : (double)rd_u16(v + o, el->big);
            else
                out[n] = sgn ? (double)rd_i32(v + o, el->big) : (double)rd_u32(v + o, el->big);
        }
        return n;
    }
    /* DS, IS (and UN in implicit files: text for the tags we ask about). */
    char text[512];
    size_t len = el->len < sizeof text - 1 ? el->len : sizeof text - 1;
    memcpy(text, v, len);
    text[len] = '\0';
    int n = 0;
    char *s = text;
    while (n < max) {
        double x;
        char *next;
        if (ds_value(s, &x, &next))
            return n;
        out[n++] = x;
        if (!next)
            return n;
        s = next;
    }
    return n;
}

/* One value of a DS or IS string at s (up to '\\' or the end), strictly:
 * a whole decimal number ([+-]digits[.digits][e[+-]digits]) between
 * padding spaces, finite. *next: after the backslash, or NULL at the end.
 * Returns 0, or -1 when the value is not such a number ("1.2.840...",
 * "na", "inf", "0x10", "" are not). */
static int ds_value(char *s, double *x, char **next)
{
    char *end = strchr(s, '\\');
    char *stop = end ? end : s + strlen(s);
    *next = end ? end + 1 : NULL;
    while (s < stop && (*s == ' ' || *s == '\0'))
        s++;
    char *t = stop;
    while (t > s && (t[-1] == ' ' || t[-1] == '\0'))
        t--;
    if (t == s)
        return -1;
    for (char *c = s; c < t; c++)
        if (!isdigit((unsigned char)*c) && *c != '+' && *c != '-' && *c != '.' && *c != 'e' &&
            *c != 'E')
            return -1;
    char saved = *t, *e;
    *t = '\0';
    *x = strtod(s, &e);
    *t = saved;
    return e == t && isfinite(*x) ? 0 : -1;
}

int dcm_num_checked(const DcmFile *f, const DcmElem *el, const char *name, double *out,
                    int want, double lo, double hi, FvErr *e)
{
    if (!el || el->len == 0)
        return 0;
    if (el->len == LEN_UNDEFINED)
        return err_set(e, FV_EFORMAT, "%s has an undefined length", name);
    double v[16];
    int got = dcm_nums(f, el, v, 16);
    int is_text = !strcmp(el->vr, "DS") || !strcmp(el->vr, "IS") || !strcmp(el->vr, "UN") ||
                  !el->vr[0];
    char text[80] = "";
    if (is_text) {
        dcm_str(f, el, text, sizeof text);
        for (char *c = text; *c; c++)
            if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
                *c = '?';
        /* every value must parse: count the values the text holds */
        int nvals = 1;
        for (const char *c = text; *c; c++)
            nvals += *c == '\\';
        if (got < nvals && got < 16)
            return err_set(e, FV_EFORMAT, "%s = '%s': not a decimal number%s", name, text,
                           nvals > 1 ? " list" : "");
    }
    if (got != want)
        return err_set(e, FV_EFORMAT, "%s = '%s': %d value(s) where %d %s expected", name, text,
                       got, want, want == 1 ? "is" : "are");
    for (int i = 0; i < want; i++) {
        if (!(v[i] >= lo && v[i] <= hi))
            return err_set(e, FV_EFORMAT, "%s = %g is outside %g..%g", name, v[i], lo, hi);
        out[i] = v[i];
    }
    return 1;
}

/* A numeric attribute as an int, def when absent. */
static int num_int(const DcmFile *f, int first, uint32_t tag, int def)
{
    double v;
    if (dcm_nums(f, dcm_find(f, first, tag), &v, 1) != 1 || !(v >= -2147483647.0) ||
        !(v <= 2147483647.0))
        return def;
    return (int)v;
}

/* ----------------------------------------------------------- image info */

static void add_phi(DcmImage *im, PhiKind kind, const DcmFile *f, const DcmElem *el)
{
    if (!el || im->nphi >= DCM_MAX_PHI)
        return;
    char v[128];
    dcm_str(f, el, v, sizeof v);
    if (strlen(v) < 2)
        return;
    im->phi[im->nphi].kind = kind;
    memcpy(im->phi[im->nphi].value, v, sizeof v);
    im->nphi++;
}

/* The element `tag` inside sequence `seq` of a functional group item. */
static const DcmElem *group_attr(const DcmFile *f, int group_item, uint32_t seq, uint32_t tag)
{
    if (group_item < 0)
        return NULL;
    const DcmElem *sq = dcm_find(f, group_item, seq);
    int it = dcm_item(f, sq, 0);
    return it >= 0 ? dcm_find(f, it, tag) : NULL;
}

/* The checked numbers of geometry and rescale (one bad value is an error
 * naming the attribute and the value; ranges in mm and HU). */
#define A_IPP "ImagePositionPatient (0020,0032)", 3, -1e6, 1e6
#define A_IOP "ImageOrientationPatient (0020,0037)", 6, -1.01, 1.01
#define A_SPACING "PixelSpacing (0028,0030)", 2, 1e-4, 1e4
#define A_THICK "SliceThickness (0018,0050)", 1, 0, 1e4
#define A_SLOPE "RescaleSlope (0028,1053)", 1, -1e6, 1e6
#define A_INTER "RescaleIntercept (0028,1052)", 1, -1e6, 1e6

static int geo_set(const DcmFile *f, const DcmElem *el, double *out, int *has, const char *name,
                   int want, double lo, double hi, FvErr *e)
{
    double v[6];
    int rc = dcm_num_checked(f, el, name, v, want, lo, hi, e);
    if (rc == 1) {
        memcpy(out, v, (size_t)want * sizeof *v);
        if (has)
            *has = 1;
    }
    return rc < 0 ? -1 : 0;
}

static int slope_ok(const DcmFrameGeo *g, FvErr *e)
{
    if (g->slope == 0)
        return err_set(e, FV_EFORMAT, "RescaleSlope (0028,1053) = 0: every voxel would be equal");
    return 0;
}

static int geo_from(const DcmFile *f, DcmFrameGeo *g, int first, FvErr *e)
{
    if (geo_set(f, dcm_find(f, first, DCM_TAG(0x0020, 0x0032)), g->ipp, &g->has_ipp, A_IPP, e) ||
        geo_set(f, dcm_find(f, first, DCM_TAG(0x0020, 0x0037)), g->iop, &g->has_iop, A_IOP, e) ||
        geo_set(f, dcm_find(f, first, DCM_TAG(0x0028, 0x0030)), g->spacing, &g->has_spacing,
                A_SPACING, e) ||
        geo_set(f, dcm_find(f, first, DCM_TAG(0x0018, 0x0050)), &g->thickness, NULL, A_THICK, e) ||
        geo_set(f, dcm_find(f, first, DCM_TAG(0x0028, 0x1053)), &g->slope, NULL, A_SLOPE, e) ||
        geo_set(f, dcm_find(f, first, DCM_TAG(0x0028, 0x1052)), &g->inter, NULL, A_INTER, e))
        return -1;
    return slope_ok(g, e);
}

int dcm_frame_geo(const DcmFile *f, const DcmImage *im, int k, DcmFrameGeo *g, FvErr *e)
{
    memset(g, 0, sizeof *g);
    g->slope = 1;
    int r = f->root;
    if (geo_from(f, g, r, e))
        return -1;
    if (!im->enhanced)
        return 0;
    const DcmElem *shared = dcm_find(f, r, DCM_TAG(0x5200, 0x9229));
    const DcmElem *perframe = dcm_find(f, r, DCM_TAG(0x5200, 0x9230));
    int items[2] = {dcm_item(f, shared, 0), dcm_item(f, perframe, k)};
    /* Shared first, then per-frame values override. */
    for (int i = 0; i < 2; i++) {
        int gi = items[i];
        if (gi < 0)
            continue;
        if (geo_set(f, group_attr(f, gi, DCM_TAG(0x0020, 0x9113), DCM_TAG(0x0020, 0x0032)),
                    g->ipp, &g->has_ipp, A_IPP, e) ||
            geo_set(f, group_attr(f, gi, DCM_TAG(0x0020, 0x9116), DCM_TAG(0x0020, 0x0037)),
                    g->iop, &g->has_iop, A_IOP, e) ||
            geo_set(f, group_attr(f, gi, DCM_TAG(0x0028, 0x9110), DCM_TAG(0x0028, 0x0030)),
                    g->spacing, &g->has_spacing, A_SPACING, e) ||
            geo_set(f, group_attr(f, gi, DCM_TAG(0x0028, 0x9110), DCM_TAG(0x0018, 0x0050)),
                    &g->thickness, NULL, A_THICK, e) ||
            geo_set(f, group_attr(f, gi, DCM_TAG(0x0028, 0x9145), DCM_TAG(0x0028, 0x1053)),
                    &g->slope, NULL, A_SLOPE, e) ||
            geo_set(f, group_attr(f, gi, DCM_TAG(0x0028, 0x9145), DCM_TAG(0x0028, 0x1052)),
                    &g->inter, NULL, A_INTER, e))
            return -1;
    }
    return slope_ok(g, e);
}

/* Names of the SOP classes an error may meet, for the message. */
static const char *sop_class_name(const char *uid)
{
    static const struct {
        const char *uid, *name;
    } names[] = {
        {"1.2.840.10008.5.1.4.1.1.481.2", "RT Dose Storage"},
        {"1.2.840.10008.5.1.4.1.1.481.1", "RT Image Storage"},
        {"1.2.840.10008.5.1.4.1.1.4.1", "Enhanced MR Image Storage"},
        {"1.2.840.10008.5.1.4.1.1.4", "MR Image Storage"},
        {"1.2.840.10008.5.1.4.1.1.128", "PET Image Storage"},
        {"1.2.840.10008.5.1.4.1.1.130", "Enhanced PET Image Storage"},
        {"1.2.840.10008.5.1.4.1.1.7", "Secondary Capture Image Storage"},
        {"1.2.840.10008.5.1.4.1.1.7.2", "Multi-frame Grayscale Byte Secondary Capture"},
        {"1.2.840.10008.5.1.4.1.1.7.3", "Multi-frame Grayscale Word Secondary Capture"},
        {"1.2.840.10008.5.1.4.1.1.6.1", "Ultrasound Image Storage"},
        {"1.2.840.10008.5.1.4.1.1.3.1", "Ultrasound Multi-frame Image Storage"},
        {"1.2.840.10008.5.1.4.1.1.12.1", "X-Ray Angiographic Image Storage"},
        {"1.2.840.10008.5.1.4.1.1.20", "Nuclear Medicine Image Storage"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(uid, names[i].uid))
            return names[i].name;
    return NULL;
}

int dcm_frames_check(const DcmImage *im, FvErr *e)
{
    if (im->frames <= 1)
        return 0;
    static const char *const ct_classes[] = {
        "1.2.840.10008.5.1.4.1.1.2",   /* CT Image Storage */
        "1.2.840.10008.5.1.4.1.1.2.1", /* Enhanced CT Image Storage */
        "1.2.840.10008.5.1.4.1.1.2.2", /* Legacy Converted Enhanced CT Image Storage */
    };
    int ct_class = 0;
    for (size_t i = 0; i < sizeof ct_classes / sizeof ct_classes[0]; i++)
        ct_class |= !strcmp(im->sop_class, ct_classes[i]);
    if (strcmp(im->modality, "CT") != 0 || !ct_class)
        return err_set(e, FV_EUNSUPPORTED,
                       "not a CT volume (modality %s, SOP class %s%s%s): its %d frames are not "
                       "read",
                       im->modality[0] ? im->modality : "none",
                       im->sop_class[0] ? im->sop_class : "none",
                       sop_class_name(im->sop_class) ? ", " : "",
                       sop_class_name(im->sop_class) ? sop_class_name(im->sop_class) : "",
                       im->frames);
    if (!im->enhanced)
        return err_set(e, FV_EUNSUPPORTED,
                       "multi-frame CT of %d frames without per-frame functional groups: the "
                       "frames cannot be placed",
                       im->frames);
    return 0;
}

int dcm_image_info(const DcmFile *f, DcmImage *im, FvErr *e)
{
    memset(im, 0, sizeof *im);
    int r = f->root;
    dcm_str(f, dcm_find(f, r, DCM_TAG(0x0008, 0x0016)), im->sop_class, sizeof im->sop_class);
    if (!im->sop_class[0] && f->meta >= 0)
        dcm_str(f, dcm_find(f, f->meta, DCM_TAG(0x0002, 0x0002)), im->sop_class,
                sizeof im->sop_class);
    dcm_str(f, dcm_find(f, r, DCM_TAG(0x0020, 0x000D)), im->study_uid, sizeof im->study_uid);
    dcm_str(f, dcm_find(f, r, DCM_TAG(0x0020, 0x000E)), im->series_uid, sizeof im->series_uid);
    dcm_str(f, dcm_find(f, r, DCM_TAG(0x0008, 0x0060)), im->modality, sizeof im->modality);
    dcm_str(f, dcm_find(f, r, DCM_TAG(0x0028, 0x0004)), im->photometric, sizeof im->photometric);
    dcm_str(f, dcm_find(f, r, DCM_TAG(0x0008, 0x0008)), im->image_type, sizeof im->image_type);
    dcm_str(f, dcm_find(f, r, DCM_TAG(0x0008, 0x0005)), im->charset, sizeof im->charset);
    dcm_str(f, dcm_find(f, r, DCM_TAG(0x0010, 0x0020)), im->patient_id, sizeof im->patient_id);
    dcm_str(f, dcm_find(f, r, DCM_TAG(0x0008, 0x0050)), im->accession, sizeof im->accession);
    for (char *c = im->image_type; *c; c++)
        *c = (char)toupper((unsigned char)*c);
    im->localizer = strstr(im->image_type, "LOCALIZER") != NULL;
    im->is_sr = !strncmp(im->sop_class, "1.2.840.10008.5.1.4.1.1.88.", 27) ||
                !strcmp(im->modality, "SR");
    im->rows = num_int(f, r, DCM_TAG(0x0028, 0x0010), 0);
    im->cols = num_int(f, r, DCM_TAG(0x0028, 0x0011), 0);
    /* NumberOfFrames strictly: "3x" read as absent would keep one frame. */
    double nf = 1;
    if (dcm_num_checked(f, dcm_find(f, r, DCM_TAG(0x0028, 0x0008)),
                        "NumberOfFrames (0028,0008)", &nf, 1, 1, 1000000, e) < 0)
        return -1;
    if (nf != floor(nf))
        return err_set(e, FV_EFORMAT, "NumberOfFrames (0028,0008) = %g is not an integer", nf);
    im->frames = (int)nf;
    im->samples = num_int(f, r, DCM_TAG(0x0028, 0x0002), 1);
    im->bits_alloc = num_int(f, r, DCM_TAG(0x0028, 0x0100), 0);
    im->bits_stored = num_int(f, r, DCM_TAG(0x0028, 0x0101), im->bits_alloc);
    im->pixel_rep = num_int(f, r, DCM_TAG(0x0028, 0x0103), 0);
    im->instance = num_int(f, r, DCM_TAG(0x0020, 0x0013), 0);
    im->series_number = num_int(f, r, DCM_TAG(0x0020, 0x0011), 0);
    im->enhanced = dcm_find(f, r, DCM_TAG(0x5200, 0x9230)) != NULL;
    add_phi(im, PHI_NAME, f, dcm_find(f, r, DCM_TAG(0x0010, 0x0010)));
    add_phi(im, PHI_ID, f, dcm_find(f, r, DCM_TAG(0x0010, 0x0020)));
    add_phi(im, PHI_DATE, f, dcm_find(f, r, DCM_TAG(0x0010, 0x0030)));
    add_phi(im, PHI_ID, f, dcm_find(f, r, DCM_TAG(0x0008, 0x0050)));
    add_phi(im, PHI_ID, f, dcm_find(f, r, DCM_TAG(0x0010, 0x1000)));
    add_phi(im, PHI_NAME, f, dcm_find(f, r, DCM_TAG(0x0010, 0x1001)));
    add_phi(im, PHI_NAME, f, dcm_find(f, r, DCM_TAG(0x0008, 0x0090)));
    add_phi(im, PHI_NAME, f, dcm_find(f, r, DCM_TAG(0x0008, 0x1050)));
    add_phi(im, PHI_NAME, f, dcm_find(f, r, DCM_TAG(0x0008, 0x1070)));
    add_phi(im, PHI_NAME, f, dcm_find(f, r, DCM_TAG(0x0010, 0x1060)));
    add_phi(im, PHI_ADDRESS, f, dcm_find(f, r, DCM_TAG(0x0010, 0x1040)));
    add_phi(im, PHI_ADDRESS, f, dcm_find(f, r, DCM_TAG(0x0008, 0x0081)));
    add_phi(im, PHI_ADDRESS, f, dcm_find(f, r, DCM_TAG(0x0008, 0x0080))); /* institution */
    add_phi(im, PHI_PHONE, f, dcm_find(f, r, DCM_TAG(0x0010, 0x2154)));
    add_phi(im, PHI_DATE, f, dcm_find(f, r, DCM_TAG(0x0008, 0x0020)));
    im->pixel = dcm_find(f, r, TAG_PIXEL);
    im->has_pixels = im->pixel != NULL;
    if (dcm_frame_geo(f, im, 0, &im->geo, e))
        return -1;
    if (!im->has_pixels)
        return 0;
    if (im->rows < 1 || im->rows > 65535 || im->cols < 1 || im->cols > 65535)
        return err_set(e, FV_EFORMAT, "image of %d x %d pixels (Rows x Columns) is not valid",
                       im->rows, im->cols);
    if (im->frames < 1 || im->frames > 1000000)
        return err_set(e, FV_EFORMAT, "NumberOfFrames = %d is not valid", im->frames);
    if (im->bits_alloc != 8 && im->bits_alloc != 16 && im->bits_alloc != 32)
        return err_set(e, FV_EUNSUPPORTED, "BitsAllocated = %d (only 8, 16 and 32 are images)",
                       im->bits_alloc);
    if (im->bits_stored < 1 || im->bits_stored > im->bits_alloc)
        return err_set(e, FV_EFORMAT, "BitsStored = %d with BitsAllocated = %d", im->bits_stored,
                       im->bits_alloc);
    if (im->pixel_rep != 0 && im->pixel_rep != 1)
        return err_set(e, FV_EFORMAT, "PixelRepresentation = %d", im->pixel_rep);
    return 0;
}

/* ---------------------------------------------------------------- pixels */

size_t pix_size(PixType t)
{
    return t == PIX_U8 || t == PIX_I8 ? 1 : t == PIX_U16 || t == PIX_I16 ? 2 : 4;
}

double pix_get(PixType t, const void *p, size_t i)
{
    switch (t) {
    case PIX_U8: return ((const uint8_t *)p)[i];
    case PIX_I8: return ((const int8_t *)p)[i];
    case PIX_U16: return ((const uint16_t *)p)[i];
    case PIX_I16: return ((const int16_t *)p)[i];
    case PIX_U32: return ((const uint32_t *)p)[i];
    default: return ((const int32_t *)p)[i];
    }
}

static PixType out_type(const DcmImage *im)
{
    int s = im->pixel_rep == 1;
    return im->bits_alloc == 8 ? (s ? PIX_I8 : PIX_U8)
           : im->bits_alloc == 16 ? (s ? PIX_I16 : PIX_U16)
                                  : (s ? PIX_I32 : PIX_U32);
}

/* Sign-extends v from `bits` bits. */
static inline int64_t sext(int64_t v, int bits)
{
    int64_t m = (int64_t)1 << (bits - 1);
    v &= ((int64_t)1 << bits) - 1;
    return (v ^ m) - m;
}

/* Stores decoded integer i as the output type (signed data sign-extended
 * from BitsStored). */
static inline void put(void *out, PixType t, size_t i, int64_t v, int bits_stored, int sign)
{
    if (sign && bits_stored < 64)
        v = sext(v, bits_stored);
    switch (t) {
    case PIX_U8: ((uint8_t *)out)[i] = (uint8_t)v; break;
    case PIX_I8: ((int8_t *)out)[i] = (int8_t)v; break;
    case PIX_U16: ((uint16_t *)out)[i] = (uint16_t)v; break;
    case PIX_I16: ((int16_t *)out)[i] = (int16_t)v; break;
    case PIX_U32: ((uint32_t *)out)[i] = (uint32_t)v; break;
    default: ((int32_t *)out)[i] = (int32_t)v; break;
    }
}

static int decode_native(const DcmFile *f, const DcmImage *im, int k, void *out, FvErr *e)
{
    const DcmElem *px = im->pixel;
    size_t bpp = (size_t)im->bits_alloc / 8;
    size_t npix = (size_t)im->rows * (size_t)im->cols;
    size_t fbytes = npix * bpp;
    if (px->len == LEN_UNDEFINED)
        return err_set(e, FV_EFORMAT, "encapsulated pixel data in an uncompressed transfer syntax");
    if ((size_t)px->len / fbytes < (size_t)im->frames)
        return err_set(e, FV_EFORMAT,
                       "pixel data holds %u bytes, %d frame(s) of %d x %d x %d bits need %zu: "
                       "truncated",
                       px->len, im->frames, im->rows, im->cols, im->bits_alloc,
                       fbytes * (size_t)im->frames);
    const unsigned char *src = f->buf + px->off + fbytes * (size_t)k;
    PixType t = out_type(im);
    int sign = im->pixel_rep == 1 && im->bits_stored < im->bits_alloc;
    /* Big-endian OB data of 8-bit pixels is not swapped; OW is, per word. */
    int big = px->big;
    if (!sign && !big) {
        memcpy(out, src, fbytes);
        return 0;
    }
    for (size_t i = 0; i < npix; i++) {
        int64_t v;
        if (bpp == 1)
            v = big && !strcmp(px->vr, "OW") ? src[i ^ 1] : src[i];
        else if (bpp == 2)
            v = rd_u16(src + 2 * i, big);
        else
            v = rd_u32(src + 4 * i, big);
        put(out, t, i, v, im->bits_stored, im->pixel_rep == 1);
    }
    return 0;
}

/* The bytes of frame k of encapsulated data: a pointer into the file when
 * it is one fragment, else a malloc'd concatenation (*owned). */
static int frame_bytes(const DcmFile *f, const DcmImage *im, int k, const unsigned char **p,
                       size_t *n, unsigned char **owned, FvErr *e)
{
    const DcmElem *px = im->pixel;
    *owned = NULL;
    if (px->len != LEN_UNDEFINED || px->nfrag < 1)
        return err_set(e, FV_EFORMAT, "compressed transfer syntax without encapsulated pixel data");
    int nfr = px->nfrag - 1; /* the first item is the offset table */
    const DcmFrag *fr = f->fr + px->frag + 1;
    const DcmFrag *bot = f->fr + px->frag;
    int lo, hi; /* fragments [lo, hi) */
    if (nfr < 1)
        return err_set(e, FV_EFORMAT, "encapsulated pixel data has no fragments");
    if (im->frames == 1) {
        lo = 0;
        hi = nfr;
    } else if (nfr == im->frames) {
        lo = k;
        hi = k + 1;
    } else if (bot->len >= 4 * (size_t)im->frames) {
        /* Offsets are from the first fragment's item tag. */
        uint32_t want = rd_u32(f->buf + bot->off + 4 * (size_t)k, 0);
        uint32_t stop = k + 1 < im->frames ? rd_u32(f->buf + bot->off + 4 * (size_t)(k + 1), 0)
                                           : UINT32_MAX;
        size_t at = 0;
        lo = hi = -1;
        for (int i = 0; i < nfr; i++) {
            if (at == want && lo < 0)
                lo = i;
            if (lo >= 0 && at >= stop) {
                hi = i;
                break;
            }
            at += 8 + fr[i].len;
        }
        if (lo >= 0 && hi < 0)
            hi = nfr;
        if (lo < 0 || hi <= lo)
            return err_set(e, FV_EFORMAT, "offset table does not locate frame %d", k);
    } else {
        return err_set(e, FV_EFORMAT,
                       "%d fragments for %d frames and no offset table: cannot tell frames apart",
                       nfr, im->frames);
    }
    if (hi - lo == 1) {
        *p = f->buf + fr[lo].off;
        *n = fr[lo].len;
        return 0;
    }
    size_t total = 0;
    for (int i = lo; i < hi; i++)
        total += fr[i].len;
    unsigned char *b = malloc(total ? total : 1);
    if (!b)
        return err_set(e, FV_ENOMEM, "pixel data: out of memory");
    size_t at = 0;
    for (int i = lo; i < hi; i++) {
        memcpy(b + at, f->buf + fr[i].off, fr[i].len);
        at += fr[i].len;
    }
    *owned = b;
    *p = b;
    *n = total;
    return 0;
}

/* RLE Lossless (PS3.5 annex G): a 64-byte header of segment offsets, one
 * PackBits segment per byte plane, most significant plane first. */
static int decode_rle(const DcmImage *im, const unsigned char *p, size_t n, void *out, FvErr *e)
{
    if (n < 64)
        return err_set(e, FV_EFORMAT, "RLE frame of %zu bytes has no header", n);
    uint32_t nseg = rd_u32(p, 0);
    int bpp = im->bits_alloc / 8;
    if (nseg != (uint32_t)(bpp * im->samples) || nseg > 15)
        return err_set(e, FV_EFORMAT, "RLE frame has %u segments, %d expected", nseg,
                       bpp * im->samples);
    if (im->samples != 1)
        return err_set(e, FV_EUNSUPPORTED, "RLE with %d samples per pixel", im->samples);
    size_t npix = (size_t)im->rows * (size_t)im->cols;
    unsigned char *planes = malloc(npix * (size_t)bpp);
    if (!planes)
        return err_set(e, FV_ENOMEM, "RLE: out of memory");
    for (uint32_t s = 0; s < nseg; s++) {
        uint32_t start = rd_u32(p + 4 + 4 * s, 0);
        uint32_t stop = s + 1 < nseg ? rd_u32(p + 8 + 4 * s, 0) : (uint32_t)(n > UINT32_MAX ? UINT32_MAX : n);
        if (start < 64 || start > stop || stop > n) {
            free(planes);
            return err_set(e, FV_EFORMAT, "RLE segment %u has offsets %u..%u outside %zu bytes", s,
                           start, stop, n);
        }
        unsigned char *dst = planes + npix * s;
        size_t o = 0, i = start;
        while (i < stop && o < npix) {
            int8_t c = (int8_t)p[i++];
            if (c >= 0) {
                size_t cnt = (size_t)c + 1;
                if (cnt > stop - i)
                    cnt = stop - i;
                if (cnt > npix - o)
                    cnt = npix - o;
                memcpy(dst + o, p + i, cnt);
                o += cnt;
                i += (size_t)c + 1;
            } else if (c != -128) {
                size_t cnt = (size_t)(1 - c);
                if (i >= stop)
                    break;
                if (cnt > npix - o)
                    cnt = npix - o;
                memset(dst + o, p[i++], cnt);
                o += cnt;
            }
        }
        if (o < npix) {
            free(planes);
            return err_set(e, FV_EFORMAT, "RLE segment %u decodes to %zu of %zu bytes", s, o,
                           npix);
        }
    }
    PixType t = out_type(im);
    for (size_t i = 0; i < npix; i++) {
        int64_t v = 0;
        for (int b = 0; b < bpp; b++)
            v = v << 8 | planes[npix * (size_t)b + i];
        put(out, t, i, v, im->bits_stored, im->pixel_rep == 1);
    }
    free(planes);
    return 0;
}

/* --- JPEG 2000 through libopenjp2, reading from memory. */

typedef struct MemStream {
    const unsigned char *p;
    size_t n, pos;
} MemStream;

static OPJ_SIZE_T ms_read(void *buf, OPJ_SIZE_T nb, void *user)
{
    MemStream *m = user;
    if (m->pos >= m->n)
        return (OPJ_SIZE_T)-1;
    size_t k = m->n - m->pos < nb ? m->n - m->pos : nb;
    memcpy(buf, m->p + m->pos, k);
    m->pos += k;
    return k;
}

static OPJ_OFF_T ms_skip(OPJ_OFF_T nb, void *user)
{
    MemStream *m = user;
    if (nb < 0) {
        if ((size_t)-nb > m->pos)
            nb = -(OPJ_OFF_T)m->pos;
    } else if ((size_t)nb > m->n - m->pos) {
        nb = (OPJ_OFF_T)(m->n - m->pos);
    }
    m->pos = (size_t)((OPJ_OFF_T)m->pos + nb);
    return nb;
}

static OPJ_BOOL ms_seek(OPJ_OFF_T nb, void *user)
{
    MemStream *m = user;
    if (nb < 0 || (size_t)nb > m->n)
        return OPJ_FALSE;
    m->pos = (size_t)nb;
    return OPJ_TRUE;
}

static void opj_err_cb(const char *msg, void *user)
{
    char *dst = user;
    if (!dst[0]) {
        snprintf(dst, 160, "%s", msg);
        size_t l = strlen(dst);
        while (l && (dst[l - 1] == '\n' || dst[l - 1] == ' '))
            dst[--l] = '\0';
    }
}

static void opj_quiet_cb(const char *msg, void *user)
{
    (void)msg;
    (void)user;
}

static int decode_j2k(const DcmImage *im, const unsigned char *p, size_t n, void *out, FvErr *e)
{
    int jp2 = n >= 12 && memcmp(p + 4, "jP  ", 4) == 0;
    MemStream ms = {p, n, 0};
    char msg[160] = "";
    opj_stream_t *s = opj_stream_create(1 << 16, OPJ_TRUE);
    opj_codec_t *codec = opj_create_decompress(jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K);
    opj_image_t *img = NULL;
    int rc = -1;
    if (!s || !codec) {
        err_set(e, FV_ENOMEM, "JPEG 2000: cannot create a decoder");
        goto done;
    }
    opj_stream_set_read_function(s, ms_read);
    opj_stream_set_skip_function(s, ms_skip);
    opj_stream_set_seek_function(s, ms_seek);
    opj_stream_set_user_data(s, &ms, NULL);
    opj_stream_set_user_data_length(s, n);
    opj_set_error_handler(codec, opj_err_cb, msg);
    opj_set_warning_handler(codec, opj_quiet_cb, NULL);
    opj_set_info_handler(codec, opj_quiet_cb, NULL);
    opj_dparameters_t prm;
    opj_set_default_decoder_parameters(&prm);
    if (!opj_setup_decoder(codec, &prm) || !opj_read_header(s, codec, &img)) {
        err_set(e, FV_EFORMAT, "JPEG 2000 frame cannot be decoded: %s",
                msg[0] ? msg : "corrupt codestream");
        goto done;
    }
    /* The codestream's size is checked against the header's before decoding:
     * a few bytes can declare a 60000 x 60000 image, and openjpeg allocates
     * and clears it all (found by tests/fuzz as a 10 s timeout). */
    if (img->numcomps < 1 || img->comps[0].w != (OPJ_UINT32)im->cols ||
        img->comps[0].h != (OPJ_UINT32)im->rows || img->x1 - img->x0 != (OPJ_UINT32)im->cols ||
        img->y1 - img->y0 != (OPJ_UINT32)im->rows) {
        err_set(e, FV_EFORMAT, "JPEG 2000 frame is %ux%u with %u components, header says %dx%d",
                img->numcomps ? img->comps[0].w : 0, img->numcomps ? img->comps[0].h : 0,
                img->numcomps, im->cols, im->rows);
        goto done;
    }
    if (!opj_decode(codec, s, img) || !opj_end_decompress(codec, s)) {
        err_set(e, FV_EFORMAT, "JPEG 2000 frame cannot be decoded: %s",
                msg[0] ? msg : "corrupt codestream");
        goto done;
    }
    if (img->numcomps < 1 || img->comps[0].w != (OPJ_UINT32)im->cols ||
        img->comps[0].h != (OPJ_UINT32)im->rows || !img->comps[0].data) {
        err_set(e, FV_EFORMAT, "JPEG 2000 frame is %ux%u with %u components, header says %dx%d",
                img->numcomps ? img->comps[0].w : 0, img->numcomps ? img->comps[0].h : 0,
                img->numcomps, im->cols, im->rows);
        goto done;
    }
    if (img->numcomps != 1 || im->samples != 1) {
        err_set(e, FV_EUNSUPPORTED, "JPEG 2000 with %u components is not a grayscale image",
                img->numcomps);
        goto done;
    }
    {
        PixType t = out_type(im);
        size_t npix = (size_t)im->rows * (size_t)im->cols;
        const OPJ_INT32 *d = img->comps[0].data;
        /* The codestream's own signedness can disagree with
         * PixelRepresentation; the DICOM attribute wins, as in pydicom. */
        int sign = im->pixel_rep == 1 && !img->comps[0].sgnd;
        int bits = sign ? (int)img->comps[0].prec : 64;
        if (bits < 1 || bits > 32)
            bits = im->bits_stored;
        for (size_t i = 0; i < npix; i++) {
            int64_t v = d[i];
            if (sign)
                v = sext(v, bits);
            put(out, t, i, v, 64, 0);
        }
    }
    rc = 0;
done:
    if (img)
        opj_image_destroy(img);
    if (codec)
        opj_destroy_codec(codec);
    if (s)
        opj_stream_destroy(s);
    return rc;
}

static int decode_jls(const DcmImage *im, const unsigned char *p, size_t n, void *out, FvErr *e)
{
    /* A JPEG-LS frame ends with the EOI marker (FF D9), then at most the
     * fragment's padding. CharLS 2.4 spends about 14 s of CPU on a 64 x 64
     * frame cut short (found by fuzz_dicom_jpegls), so a stream without its
     * end is refused before decoding. */
    size_t end = n;
    while (end > 0 && n - end < 8 && p[end - 1] == 0)
        end--;
    if (end < 4 || p[end - 2] != 0xFF || p[end - 1] != 0xD9)
        return err_set(e, FV_EFORMAT,
                       "JPEG-LS frame of %zu bytes does not end with an end-of-image marker: "
                       "truncated", n);
    charls_jpegls_decoder *d = charls_jpegls_decoder_create();
    if (!d)
        return err_set(e, FV_ENOMEM, "JPEG-LS: cannot create a decoder");
    charls_frame_info fi;
    size_t need = 0;
    unsigned char *buf = NULL;
    int rc = -1;
    charls_jpegls_errc ec = charls_jpegls_decoder_set_source_buffer(d, p, n);
    if (!ec)
        ec = charls_jpegls_decoder_read_header(d);
    if (!ec)
        ec = charls_jpegls_decoder_get_frame_info(d, &fi);
    if (ec) {
        err_set(e, FV_EFORMAT, "JPEG-LS frame cannot be decoded: %s",
                charls_get_error_message(ec));
        goto done;
    }
    if (fi.width != (uint32_t)im->cols || fi.height != (uint32_t)im->rows ||
        fi.component_count != 1 || fi.bits_per_sample < 2 || fi.bits_per_sample > 16) {
        err_set(e, FV_EFORMAT, "JPEG-LS frame is %ux%u, %d components of %d bits; header says %dx%d",
                fi.width, fi.height, fi.component_count, fi.bits_per_sample, im->cols, im->rows);
        goto done;
    }
    ec = charls_jpegls_decoder_get_destination_size(d, 0, &need);
    size_t npix = (size_t)im->rows * (size_t)im->cols;
    size_t bps = fi.bits_per_sample > 8 ? 2 : 1;
    if (ec || need != npix * bps) {
        err_set(e, FV_EFORMAT, "JPEG-LS frame needs %zu bytes, %zu expected", need, npix * bps);
        goto done;
    }
    buf = malloc(need);
    if (!buf) {
        err_set(e, FV_ENOMEM, "JPEG-LS: out of memory");
        goto done;
    }
    ec = charls_jpegls_decoder_decode_to_buffer(d, buf, need, 0);
    if (ec) {
        err_set(e, FV_EFORMAT, "JPEG-LS frame cannot be decoded: %s",
                charls_get_error_message(ec));
        goto done;
    }
    {
        PixType t = out_type(im);
        int bits = im->bits_stored < fi.bits_per_sample ? fi.bits_per_sample : im->bits_stored;
        for (size_t i = 0; i < npix; i++) {
            int64_t v = bps == 2 ? ((const uint16_t *)(const void *)buf)[i] : buf[i];
            put(out, t, i, v, bits, im->pixel_rep == 1);
        }
    }
    rc = 0;
done:
    free(buf);
    charls_jpegls_decoder_destroy(d);
    return rc;
}

const char *dcm_ts_name(const char *uid)
{
    static const struct {
        const char *uid, *name;
    } ts[] = {
        {"1.2.840.10008.1.2", "implicit VR little endian"},
        {"1.2.840.10008.1.2.1", "explicit VR little endian"},
        {"1.2.840.10008.1.2.1.99", "deflated explicit VR little endian"},
        {"1.2.840.10008.1.2.2", "explicit VR big endian"},
        {"1.2.840.10008.1.2.4.50", "JPEG baseline"},
        {"1.2.840.10008.1.2.4.51", "JPEG extended"},
        {"1.2.840.10008.1.2.4.57", "JPEG lossless"},
        {"1.2.840.10008.1.2.4.70", "JPEG lossless SV1"},
        {"1.2.840.10008.1.2.4.80", "JPEG-LS lossless"},
        {"1.2.840.10008.1.2.4.81", "JPEG-LS near-lossless"},
        {"1.2.840.10008.1.2.4.90", "JPEG 2000 lossless"},
        {"1.2.840.10008.1.2.4.91", "JPEG 2000"},
        {"1.2.840.10008.1.2.4.100", "MPEG2"},
        {"1.2.840.10008.1.2.4.201", "HTJ2K lossless"},
        {"1.2.840.10008.1.2.4.202", "HTJ2K lossless RPCL"},
        {"1.2.840.10008.1.2.4.203", "HTJ2K"},
        {"1.2.840.10008.1.2.5", "RLE lossless"},
    };
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        if (!strcmp(ts[i].uid, uid))
            return ts[i].name;
    return NULL;
}

int dcm_decode_frame(const DcmFile *f, const DcmImage *im, int k, void *out, PixType *type,
                     FvErr *e)
{
    if (!im->has_pixels)
        return err_set(e, FV_EFORMAT, "no pixel data");
    if (k < 0 || k >= im->frames)
        return err_set(e, FV_EINTERNAL, "frame %d of %d", k, im->frames);
    if (im->samples != 1)
        return err_set(e, FV_EUNSUPPORTED,
                       "%d samples per pixel (%s): not a grayscale CT image", im->samples,
                       im->photometric);
    *type = out_type(im);
    const char *ts = f->ts;
    int native = !ts[0] || !strcmp(ts, "1.2.840.10008.1.2") || !strcmp(ts, "1.2.840.10008.1.2.1") ||
                 !strcmp(ts, "1.2.840.10008.1.2.2") || !strcmp(ts, "1.2.840.10008.1.2.1.99");
    if (native)
        return decode_native(f, im, k, out, e);
    int rle = !strcmp(ts, "1.2.840.10008.1.2.5");
    int j2k = !strcmp(ts, "1.2.840.10008.1.2.4.90") || !strcmp(ts, "1.2.840.10008.1.2.4.91") ||
              !strncmp(ts, "1.2.840.10008.1.2.4.20", 22);
    int jls = !strcmp(ts, "1.2.840.10008.1.2.4.80") || !strcmp(ts, "1.2.840.10008.1.2.4.81");
    if (!rle && !j2k && !jls) {
        const char *name = dcm_ts_name(ts);
        return err_set(e, FV_EUNSUPPORTED, "unsupported transfer syntax %s%s%s%s", ts,
                       name ? " (" : "", name ? name : "", name ? ")" : "");
    }
    const unsigned char *p = NULL;
    size_t n = 0;
    unsigned char *owned;
    if (frame_bytes(f, im, k, &p, &n, &owned, e))
        return -1;
    int rc = rle ? decode_rle(im, p, n, out, e)
             : j2k ? decode_j2k(im, p, n, out, e)
                   : decode_jls(im, p, n, out, e);
    free(owned);
    return rc;
}

/* ------------------------------------------------------ structured reports */

static int sr_walk(const DcmFile *f, int first, Buf *b, int depth)
{
    if (depth > DCM_MAX_DEPTH)
        return 0;
    const DcmElem *seq = dcm_find(f, first, DCM_TAG(0x0040, 0xA730));
    int n = dcm_item_count(f, seq);
    for (int k = 0; k < n; k++) {
        int it = dcm_item(f, seq, k);
        if (it < 0)
            continue;
        char type[20], meaning[128] = "";
        dcm_str(f, dcm_find(f, it, DCM_TAG(0x0040, 0xA040)), type, sizeof type);
        const DcmElem *cn = dcm_find(f, it, DCM_TAG(0x0040, 0xA043));
        int cni = dcm_item(f, cn, 0);
        if (cni >= 0)
            dcm_str(f, dcm_find(f, cni, DCM_TAG(0x0008, 0x0104)), meaning, sizeof meaning);
        if (!strcmp(type, "TEXT")) {
            const DcmElem *tv = dcm_find(f, it, DCM_TAG(0x0040, 0xA160));
            if (tv && tv->len && tv->len != LEN_UNDEFINED) {
                if (meaning[0])
                    buf_printf(b, "%s: ", meaning);
                const unsigned char *s = f->buf + tv->off;
                size_t len = tv->len;
                while (len && (s[len - 1] == ' ' || s[len - 1] == '\0'))
                    len--;
                buf_append(b, s, len);
                buf_putc(b, '\n');
            }
        }
        sr_walk(f, it, b, depth + 1);
    }
    return 0;
}

int dcm_sr_text(const DcmFile *f, char **text, size_t *len, FvErr *e)
{
    Buf b = {0};
    sr_walk(f, f->root, &b, 0);
    if (b.failed) {
        buf_free(&b);
        return err_set(e, FV_ENOMEM, "structured report: out of memory");
    }
    *len = b.len;
    *text = b.len ? buf_steal(&b) : NULL;
    buf_free(&b);
    return 0;
}
