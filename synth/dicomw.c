#include "dicomw.h"

#include <stdio.h>
#include <string.h>

#include "sha256.h"

void dcmw_init(DcmData *d, int explicit_vr)
{
    memset(d, 0, sizeof *d);
    d->explicit_vr = explicit_vr;
}

void dcmw_free(DcmData *d) { buf_free(&d->b); }

static void le16(Buf *b, uint16_t v)
{
    unsigned char p[2] = {(unsigned char)(v & 0xFF), (unsigned char)(v >> 8)};
    buf_append(b, p, 2);
}

static void le32(Buf *b, uint32_t v)
{
    unsigned char p[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    buf_append(b, p, 4);
}

/* VRs whose explicit form has two reserved bytes and a 32-bit length. */
static int long_vr(const char *vr)
{
    static const char *const l[] = {"OB", "OW", "OF", "SQ", "UT", "UN", "UC", "UR", "OD", "OL"};
    for (size_t i = 0; i < sizeof l / sizeof l[0]; i++)
        if (!strcmp(vr, l[i]))
            return 1;
    return 0;
}

static void header(DcmData *d, Buf *b, int explicit_vr, uint16_t g, uint16_t el, const char *vr,
                   uint32_t len)
{
    uint32_t tag = ((uint32_t)g << 16) | el;
    if (d) {
        if (d->b.len && tag <= d->last_tag)
            d->bad_order = 1;
        d->last_tag = tag;
    }
    le16(b, g);
    le16(b, el);
    if (!explicit_vr) {
        le32(b, len);
        return;
    }
    buf_append(b, vr, 2);
    if (long_vr(vr)) {
        le16(b, 0);
        le32(b, len);
    } else
        le16(b, (uint16_t)len);
}

static void put_str(DcmData *d, Buf *b, int explicit_vr, uint16_t g, uint16_t el, const char *vr,
                    const char *v)
{
    size_t n = strlen(v), padded = n + (n & 1);
    header(d, b, explicit_vr, g, el, vr, (uint32_t)padded);
    buf_append(b, v, n);
    if (n & 1)
        buf_putc(b, strcmp(vr, "UI") == 0 ? '\0' : ' ');
}

void dcmw_str(DcmData *d, uint16_t g, uint16_t el, const char *vr, const char *v)
{
    put_str(d, &d->b, d->explicit_vr, g, el, vr, v);
}

void dcmw_us(DcmData *d, uint16_t g, uint16_t el, uint16_t v)
{
    header(d, &d->b, d->explicit_vr, g, el, "US", 2);
    le16(&d->b, v);
}

void dcmw_ul(DcmData *d, uint16_t g, uint16_t el, uint32_t v)
{
    header(d, &d->b, d->explicit_vr, g, el, "UL", 4);
    le32(&d->b, v);
}

void dcmw_bytes(DcmData *d, uint16_t g, uint16_t el, const char *vr, const void *p, size_t n)
{
    size_t padded = n + (n & 1);
    header(d, &d->b, d->explicit_vr, g, el, vr, (uint32_t)padded);
    buf_append(&d->b, p, n);
    if (n & 1)
        buf_putc(&d->b, '\0');
}

void dcmw_pixels(DcmData *d, const uint16_t *px, size_t n)
{
    header(d, &d->b, d->explicit_vr, 0x7FE0, 0x0010, "OW", (uint32_t)(n * 2));
    if (buf_reserve(&d->b, n * 2))
        return;
    unsigned char *o = (unsigned char *)d->b.data + d->b.len;
    for (size_t i = 0; i < n; i++) {
        o[2 * i] = (unsigned char)(px[i] & 0xFF);
        o[2 * i + 1] = (unsigned char)(px[i] >> 8);
    }
    d->b.len += n * 2;
    d->b.data[d->b.len] = 0;
}

int dcmw_file(const DcmData *d, const char *sop_class, const char *sop_instance, int with_meta,
              Buf *out, FvErr *e)
{
    if (d->bad_order)
        return err_set(e, FV_EINTERNAL, "dicom writer: data elements out of tag order");
    if (d->b.failed)
        return err_set(e, FV_ENOMEM, "dicom writer: out of memory");
    if (with_meta) {
        static const unsigned char pre[128];
        buf_append(out, pre, sizeof pre);
        buf_append(out, "DICM", 4);
        Buf m = {0};
        static const unsigned char ver[2] = {0, 1};
        header(NULL, &m, 1, 0x0002, 0x0001, "OB", 2);
        buf_append(&m, ver, 2);
        put_str(NULL, &m, 1, 0x0002, 0x0002, "UI", sop_class);
        put_str(NULL, &m, 1, 0x0002, 0x0003, "UI", sop_instance);
        put_str(NULL, &m, 1, 0x0002, 0x0010, "UI",
                d->explicit_vr ? DCM_TS_EXPLICIT : DCM_TS_IMPLICIT);
        char impl[64];
        dcmw_uid("fvlm synth implementation", impl);
        put_str(NULL, &m, 1, 0x0002, 0x0012, "UI", impl);
        put_str(NULL, &m, 1, 0x0002, 0x0013, "SH", "FVLM_SYNTH_1");
        header(NULL, out, 1, 0x0002, 0x0000, "UL", 4);
        le32(out, (uint32_t)m.len);
        buf_append(out, m.data, m.len);
        int failed = m.failed;
        buf_free(&m);
        if (failed)
            return err_set(e, FV_ENOMEM, "dicom writer: out of memory");
    }
    buf_append(out, d->b.data, d->b.len);
    if (out->failed)
        return err_set(e, FV_ENOMEM, "dicom writer: out of memory");
    return 0;
}

void dcmw_uid(const char *text, char out[64])
{
    unsigned char dig[32];
    Sha256 c;
    sha256_init(&c);
    sha256_update(&c, text, strlen(text));
    sha256_final(&c, dig);
    /* 128 bits as four 32-bit limbs, most significant first; repeated
     * division by 10 gives the decimal digits */
    uint32_t limb[4];
    for (int i = 0; i < 4; i++)
        limb[i] = (uint32_t)dig[4 * i] << 24 | (uint32_t)dig[4 * i + 1] << 16 |
                  (uint32_t)dig[4 * i + 2] << 8 | dig[4 * i + 3];
    limb[0] &= 0x7FFFFFFF; /* keep it well under 2^128 and never 0-led */
    limb[0] |= 0x00100000;
    char digits[48];
    int n = 0;
    for (;;) {
        int zero = 1;
        uint64_t rem = 0;
        for (int i = 0; i < 4; i++) {
            uint64_t cur = (rem << 32) | limb[i];
            limb[i] = (uint32_t)(cur / 10);
            rem = cur % 10;
            if (limb[i])
                zero = 0;
        }
        digits[n++] = (char)('0' + rem);
        if (zero)
            break;
    }
    int o = snprintf(out, 64, "2.25.");
    for (int i = n - 1; i >= 0 && o < 63; i--)
        out[o++] = digits[i];
    out[o] = 0;
}
