/* dcm_fuzz.h: the DICOM side of the harnesses: reading a whole file the
 * way ingest does (fuzz_dicom and the codec harnesses), and wrapping a
 * codec's bytes in a minimal file, so a codec harness mutates the
 * compressed frame itself rather than the DICOM around it. */
#ifndef FVLM_TESTS_DCM_FUZZ_H
#define FVLM_TESTS_DCM_FUZZ_H

#include "fuzz.h"

#include "dicom.h"
#include "report_text.h"

enum {
    DCM_FUZZ_MAX_FRAMES = 4,               /* frames decoded per input */
    DCM_FUZZ_MAX_FRAME = 8 << 20,          /* bytes of one decoded frame */
};

/* Parses, reads the image attributes and every frame's geometry, decodes
 * the first frames, and reads a structured report's text in its charset. */
static inline void dcm_fuzz_read(const uint8_t *data, size_t size)
{
    DcmFile f;
    FvErr e = {0};
    if (dcm_parse(&f, data, size, 64u << 20, &e)) {
        dcm_free(&f);
        return;
    }
    for (int i = f.root; i >= 0; i = f.el[i].next) {
        char s[256];
        double d[8];
        dcm_str(&f, &f.el[i], s, sizeof s);
        dcm_nums(&f, &f.el[i], d, 8);
        if (f.el[i].item >= 0)
            for (int k = 0, n = dcm_item_count(&f, &f.el[i]); k < n && k < 64; k++)
                dcm_item(&f, &f.el[i], k);
    }
    DcmImage im;
    if (dcm_image_info(&f, &im, &e) == 0) {
        for (int k = 0; k < im.frames && k < 1024; k++) {
            DcmFrameGeo g;
            FvErr ge = {0};
            dcm_frame_geo(&f, &im, k, &g, &ge);
        }
        size_t frame = (size_t)im.rows * (size_t)im.cols * (size_t)(im.bits_alloc > 0 ? im.bits_alloc : 8) / 8;
        if (im.has_pixels && frame > 0 && frame <= DCM_FUZZ_MAX_FRAME) {
            void *out = malloc(frame + 8);
            for (int k = 0; out && k < im.frames && k < DCM_FUZZ_MAX_FRAMES; k++) {
                PixType t;
                FvErr de = {0};
                if (dcm_decode_frame(&f, &im, k, out, &t, &de) == 0)
                    fuzz_touch(out, (size_t)im.rows * (size_t)im.cols * pix_size(t));
            }
            free(out);
        }
        char *text = NULL;
        size_t len = 0;
        if (dcm_sr_text(&f, &text, &len, &e) == 0 && text) {
            Buf b = {0};
            const char *enc;
            FvErr re = {0};
            report_decode_dicom((const unsigned char *)text, len, im.charset, &b, &enc, &re);
            buf_free(&b);
        }
        free(text);
    }
    dcm_free(&f);
}

/* ------------------------------------------------------------- wrapping */

typedef struct DcmW {
    unsigned char *p;
    size_t n, cap;
} DcmW;

static inline void dw_put(DcmW *w, const void *s, size_t n)
{
    if (!n)
        return;
    if (w->n + n > w->cap) {
        size_t nc = (w->n + n) * 2 + 256;
        unsigned char *q = realloc(w->p, nc);
        if (!q)
            abort();
        w->p = q;
        w->cap = nc;
    }
    memcpy(w->p + w->n, s, n);
    w->n += n;
}

static inline void dw_u16(DcmW *w, unsigned v)
{
    unsigned char b[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    dw_put(w, b, 2);
}

static inline void dw_u32(DcmW *w, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    dw_put(w, b, 4);
}

/* An explicit VR little endian element with a short length. */
static inline void dw_elem(DcmW *w, unsigned g, unsigned el, const char *vr, const void *v,
                           size_t n)
{
    dw_u16(w, g);
    dw_u16(w, el);
    dw_put(w, vr, 2);
    dw_u16(w, (unsigned)n);
    dw_put(w, v, n);
}

static inline void dw_str(DcmW *w, unsigned g, unsigned el, const char *vr, const char *s)
{
    size_t n = strlen(s);
    char b[80];
    memcpy(b, s, n);
    if (n % 2)
        b[n++] = vr[0] == 'U' && vr[1] == 'I' ? '\0' : ' ';
    dw_elem(w, g, el, vr, b, n);
}

static inline void dw_us(DcmW *w, unsigned g, unsigned el, unsigned v)
{
    unsigned char b[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    dw_elem(w, g, el, "US", b, 2);
}

/* Preamble, "DICM" and a meta group naming the transfer syntax. */
static inline void dw_meta(DcmW *w, const char *ts)
{
    unsigned char pre[128] = {0};
    dw_put(w, pre, sizeof pre);
    dw_put(w, "DICM", 4);
    DcmW m = {0};
    dw_str(&m, 0x0002, 0x0002, "UI", "1.2.840.10008.5.1.4.1.1.2");
    dw_str(&m, 0x0002, 0x0010, "UI", ts);
    dw_u16(w, 0x0002);
    dw_u16(w, 0x0000);
    dw_put(w, "UL", 2);
    dw_u16(w, 4);
    dw_u32(w, (uint32_t)m.n);
    dw_put(w, m.p, m.n);
    free(m.p);
}

/* The image attributes of a CT slice; rows, columns, bits from the codec
 * harness's 8-byte prefix. */
static inline void dw_image(DcmW *w, unsigned rows, unsigned cols, unsigned bits_alloc,
                            unsigned bits_stored, unsigned pixrep, unsigned frames)
{
    dw_str(w, 0x0008, 0x0060, "CS", "CT");
    dw_us(w, 0x0028, 0x0002, 1);
    dw_str(w, 0x0028, 0x0004, "CS", "MONOCHROME2");
    char fr[16];
    snprintf(fr, sizeof fr, "%u", frames);
    dw_str(w, 0x0028, 0x0008, "IS", fr);
    dw_us(w, 0x0028, 0x0010, rows);
    dw_us(w, 0x0028, 0x0011, cols);
    dw_us(w, 0x0028, 0x0100, bits_alloc);
    dw_us(w, 0x0028, 0x0101, bits_stored);
    dw_us(w, 0x0028, 0x0102, bits_stored ? bits_stored - 1 : 0);
    dw_us(w, 0x0028, 0x0103, pixrep);
}

/* A codec harness's input: an 8-byte prefix (rows u16, cols u16, bits
 * allocated 8/16/32 chosen by byte 4, bits stored, pixel representation,
 * frames) and the compressed frame(s), as one encapsulated fragment per
 * frame split evenly. Returns the file (caller frees) and its size. */
static inline unsigned char *dcm_fuzz_wrap(const char *ts, const uint8_t *data, size_t size,
                                           size_t *out_n)
{
    if (size < 8)
        return NULL;
    unsigned rows = (data[0] | data[1] << 8) % 1025, cols = (data[2] | data[3] << 8) % 1025;
    static const unsigned bits[4] = {8, 16, 16, 32};
    unsigned ba = bits[data[4] & 3];
    unsigned bs = data[5] % (ba + 1);
    unsigned pixrep = data[6] & 1;
    unsigned frames = 1 + data[7] % 3;
    const uint8_t *payload = data + 8;
    size_t plen = size - 8;
    DcmW w = {0};
    dw_meta(&w, ts);
    dw_image(&w, rows, cols, ba, bs, pixrep, frames);
    /* Pixel Data, OB, undefined length: an empty offset table, the fragments, the delimiter. */
    dw_u16(&w, 0x7FE0);
    dw_u16(&w, 0x0010);
    dw_put(&w, "OB\0\0", 4);
    dw_u32(&w, 0xFFFFFFFFu);
    dw_u16(&w, 0xFFFE);
    dw_u16(&w, 0xE000);
    dw_u32(&w, 0);
    size_t at = 0;
    for (unsigned k = 0; k < frames; k++) {
        size_t len = k + 1 < frames ? plen / frames : plen - at;
        len &= ~(size_t)(k + 1 < frames); /* even lengths except the last */
        dw_u16(&w, 0xFFFE);
        dw_u16(&w, 0xE000);
        dw_u32(&w, (uint32_t)(len + (len & 1)));
        dw_put(&w, payload + at, len);
        if (len & 1)
            dw_put(&w, "\0", 1);
        at += len;
    }
    dw_u16(&w, 0xFFFE);
    dw_u16(&w, 0xE0DD);
    dw_u32(&w, 0);
    *out_n = w.n;
    return w.p;
}

static inline int dcm_fuzz_codec(const char *ts, const uint8_t *data, size_t size)
{
    size_t n;
    unsigned char *file = dcm_fuzz_wrap(ts, data, size, &n);
    if (file)
        dcm_fuzz_read(file, n);
    free(file);
    return 0;
}

#endif
