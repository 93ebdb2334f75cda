/* Unit tests of the ingest modules on inputs built in memory: gzip, NIfTI,
 * DICOM (explicit/implicit/big endian, sequences, RLE, truncation), series
 * stacking, de-identification, report encodings, CSV, CT-RATE names,
 * masks, path classification, unit grouping and the orphan sweep. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "corpus.h"
#include "ctrate.h"
#include "db.h"
#include "deid.h"
#include "dicom.h"
#include "fsutil.h"
#include "fvlm_config.h"
#include "gz.h"
#include "mask.h"
#include "names.h"
#include "nifti.h"
#include "phi.h"
#include "report_text.h"
#include "run.h"
#include "series.h"
#include "sha256.h"
#include "test.h"
#include "testdb.h"
#include "walk.h"

/* ------------------------------------------------------------------ gzip */

static size_t gzip_bytes(const void *in, size_t n, unsigned char *out, size_t cap)
{
    z_stream s;
    memset(&s, 0, sizeof s);
    deflateInit2(&s, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    s.next_in = (unsigned char *)in;
    s.avail_in = (uInt)n;
    s.next_out = out;
    s.avail_out = (uInt)cap;
    deflate(&s, Z_FINISH);
    size_t k = cap - s.avail_out;
    deflateEnd(&s);
    return k;
}

static void test_gzip_inflates_and_names_truncation_and_limits(void)
{
    unsigned char raw[5000], gz[6000];
    for (int i = 0; i < 5000; i++)
        raw[i] = (unsigned char)(i * 7 % 251);
    size_t n = gzip_bytes(raw, sizeof raw, gz, sizeof gz);
    FvErr e = {0};
    unsigned char *out;
    size_t len;
    CHECK_OK(gz_inflate(gz, n, 5000, 6000, &out, &len, &e), &e);
    CHECK(len == 5000 && memcmp(out, raw, 5000) == 0, "inflated %zu bytes differ", len);
    free(out);
    CHECK(gz_inflate(gz, n / 2, 5000, 6000, &out, &len, &e) == -1 && strstr(e.msg, "truncated"),
          "half a stream: '%s'", e.msg);
    CHECK(gz_inflate(gz, n, 0, 1000, &out, &len, &e) == -1 && e.code == FV_ELIMIT,
          "5000 bytes under a 1000-byte limit: '%s'", e.msg);
    /* A trailer that lies about the size is corruption, found by zlib's
     * length check; it never decides the allocation beyond the limit. */
    unsigned char liar[6000];
    memcpy(liar, gz, n);
    liar[n - 1] = 0x7F;
    CHECK(gz_inflate(liar, n, 0, 100000, &out, &len, &e) == -1 && e.code == FV_EFORMAT,
          "lying trailer accepted: '%s'", e.msg);
    unsigned char bad[6000];
    memcpy(bad, gz, n);
    for (size_t i = 20; i < 60; i++)
        bad[i] ^= 0xA5;
    CHECK(gz_inflate(bad, n, 5000, 6000, &out, &len, &e) == -1 && e.code == FV_EFORMAT,
          "corrupt stream accepted: '%s'", e.msg);
    /* A header that needs more than deflate's 1032:1 can hold from n bytes
     * (a huge vox_offset) is refused before any allocation of that size. */
    out = NULL;
    CHECK(gz_inflate(gz, n, (size_t)6 << 30, (size_t)8 << 30, &out, &len, &e) == -1 &&
              e.code == FV_EFORMAT && strstr(e.msg, "cannot hold") && out == NULL,
          "6 GiB expected from %zu bytes: '%s'", n, e.msg);
}

/* ----------------------------------------------------------------- NIfTI */

static void put16(unsigned char *p, int v, int big)
{
    if (big) {
        p[0] = (unsigned char)(v >> 8);
        p[1] = (unsigned char)v;
    } else {
        p[0] = (unsigned char)v;
        p[1] = (unsigned char)(v >> 8);
    }
}

static void put32(unsigned char *p, uint32_t v, int big)
{
    for (int i = 0; i < 4; i++)
        p[big ? 3 - i : i] = (unsigned char)(v >> (8 * i));
}

static void putf(unsigned char *p, float f, int big)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    put32(p, u, big);
}

/* A NIfTI-1 single file of int16 data 0, 1, 2, ... */
static size_t make_nifti(unsigned char *b, int big, int nx, int ny, int nz, int dtype, int bitpix,
                         int qform, int sform)
{
    memset(b, 0, 352);
    put32(b, 348, big);
    put16(b + 40, 3, big);
    put16(b + 42, nx, big);
    put16(b + 44, ny, big);
    put16(b + 46, nz, big);
    put16(b + 48, 1, big);
    put16(b + 70, dtype, big);
    put16(b + 72, bitpix, big);
    putf(b + 76, 1, big);
    putf(b + 80, 2, big);
    putf(b + 84, 3, big);
    putf(b + 88, 4, big);
    putf(b + 108, 352, big);
    put16(b + 252, qform, big);
    put16(b + 254, sform, big);
    /* qform: 180 degrees about z (b, c, d) = (0, 0, 1), offset (10, 20, 30) */
    putf(b + 264, 1, big);
    putf(b + 268, 10, big);
    putf(b + 272, 20, big);
    putf(b + 276, 30, big);
    /* sform: diag(2, 3, 4), offset (-1, -2, -3) */
    putf(b + 280, 2, big);
    putf(b + 292, -1, big);
    putf(b + 300, 3, big);
    putf(b + 308, -2, big);
    putf(b + 320, 4, big);
    putf(b + 324, -3, big);
    memcpy(b + 344, "n+1", 4);
    /* Data 0, 1, 2, ... (as much as fits the 4 KiB test buffers: absurd
     * dims get a header only). */
    size_t n = 352;
    for (long i = 0; i < (long)nx * ny * nz && n + 2 <= 4096; i++, n += 2)
        put16(b + n, (int)i, big);
    return n;
}

static void test_nifti_reads_both_byte_orders_and_all_three_affines(void)
{
    static unsigned char b[4096];
    FvErr e = {0};
    for (int big = 0; big < 2; big++) {
        size_t n = make_nifti(b, big, 4, 3, 2, 4, 16, 1, 1);
        NiftiHeader h;
        Vol v;
        CHECK_OK(nifti_load(b, n, NULL, 0, 0, 1000, &h, &v, NULL, NULL, &e), &e);
        CHECK(h.big == big, "byte order %d detected as %d", big, h.big);
        CHECK(v.nx == 4 && v.ny == 3 && v.nz == 2 && v.type == VOL_I16, "dims/type");
        CHECK_NEAR(vol_get(&v, 3, 2, 1), 23, 0);
        CHECK_STR(h.affine_from, "sform");
        CHECK_NEAR(v.affine[0][0], 2, 1e-9);
        CHECK_NEAR(v.affine[2][3], -3, 1e-9);
        vol_free(&v);
    }
    size_t n = make_nifti(b, 0, 4, 3, 2, 4, 16, 1, 0);
    NiftiHeader h;
    CHECK_OK(nifti_header_parse(b, n, &h, &e), &e);
    CHECK_STR(h.affine_from, "qform");
    /* quaternion (0,0,1): diag(-1,-1,1) times pixdim (2, 3, 4) */
    CHECK_NEAR(h.affine[0][0], -2, 1e-6);
    CHECK_NEAR(h.affine[1][1], -3, 1e-6);
    CHECK_NEAR(h.affine[2][2], 4, 1e-6);
    CHECK_NEAR(h.affine[1][3], 20, 1e-6);
    n = make_nifti(b, 0, 4, 3, 2, 4, 16, 0, 0);
    CHECK_OK(nifti_header_parse(b, n, &h, &e), &e);
    /* nibabel's base affine: x flipped, centred. */
    CHECK_STR(h.affine_from, "pixdim");
    CHECK_NEAR(h.affine[0][0], -2, 1e-9);
    CHECK_NEAR(h.affine[0][3], 3, 1e-9); /* (4-1)/2 * 2 */
    CHECK_NEAR(h.affine[2][3], -2, 1e-9); /* -(2-1)/2 * 4 */
}

static void test_nifti_refuses_bad_headers_with_the_reason(void)
{
    static unsigned char b[4096];
    FvErr e = {0};
    NiftiHeader h;
    Vol v;
    size_t n = make_nifti(b, 0, 4, 3, 2, 4, 16, 1, 1);
    put16(b + 44, -3, 0);
    (void)n;
    CHECK(nifti_header_parse(b, n, &h, &e) == -1 && strstr(e.msg, "dim[2] = -3"),
          "negative dim: '%s'", e.msg);
    n = make_nifti(b, 0, 4, 3, 2, 999, 16, 1, 1);
    CHECK(nifti_header_parse(b, n, &h, &e) == -1 && strstr(e.msg, "unknown datatype 999"),
          "datatype: '%s'", e.msg);
    n = make_nifti(b, 0, 4, 3, 2, 128, 24, 1, 1);
    CHECK(nifti_header_parse(b, n, &h, &e) == -1 && e.code == FV_EUNSUPPORTED,
          "rgb accepted: '%s'", e.msg);
    n = make_nifti(b, 0, 30000, 30000, 30000, 4, 16, 1, 1);
    CHECK(nifti_load(b, 400, NULL, 0, 0, 1000000, &h, &v, NULL, NULL, &e) == -1 &&
              e.code == FV_ELIMIT && strstr(e.msg, "ingest.max_voxels"),
          "absurd dims: '%s'", e.msg);
    n = make_nifti(b, 0, 4, 3, 2, 4, 16, 1, 1);
    putf(b + 108, 100000, 0);
    CHECK(nifti_load(b, n, NULL, 0, 0, 1000, &h, &v, NULL, NULL, &e) == -1 &&
              strstr(e.msg, "past the end"),
          "vox_offset past the end: '%s'", e.msg);
    n = make_nifti(b, 0, 4, 3, 2, 4, 16, 1, 1);
    CHECK(nifti_load(b, n - 10, NULL, 0, 0, 1000, &h, &v, NULL, NULL, &e) == -1,
          "short data accepted");
    CHECK(nifti_header_parse(b, 200, &h, &e) == -1, "200-byte header accepted");
    put32(b, 1234, 0);
    CHECK(nifti_header_parse(b, n, &h, &e) == -1 && strstr(e.msg, "sizeof_hdr"),
          "bad sizeof_hdr: '%s'", e.msg);
}

static void test_nifti_scaling_picks_an_exact_type(void)
{
    static unsigned char b[4096];
    FvErr e = {0};
    NiftiHeader h;
    Vol v;
    size_t n = make_nifti(b, 0, 4, 3, 2, 4, 16, 1, 1);
    putf(b + 112, 1, 0);
    putf(b + 116, -1024, 0);
    CHECK_OK(nifti_load(b, n, NULL, 0, 0, 1000, &h, &v, NULL, NULL, &e), &e);
    CHECK(v.type == VOL_I16, "integer scaling kept int16");
    CHECK_NEAR(vol_get(&v, 1, 0, 0), -1023, 0);
    vol_free(&v);
    putf(b + 112, 0.5f, 0);
    CHECK_OK(nifti_load(b, n, NULL, 0, 0, 1000, &h, &v, NULL, NULL, &e), &e);
    CHECK(v.type == VOL_F32, "fractional scaling became float");
    CHECK_NEAR(vol_get(&v, 3, 0, 0), -1022.5, 1e-4);
    vol_free(&v);
    /* As a mask: 23 fits uint8; -1022.5 does not. */
    CHECK(nifti_load(b, n, NULL, 0, 1, 1000, &h, &v, NULL, NULL, &e) == -1 &&
              strstr(e.msg, "labels must be integers"),
          "fractional mask accepted: '%s'", e.msg);
}

static void test_nifti_label_table_is_read_from_the_extension(void)
{
    static unsigned char b[8192];
    make_nifti(b, 0, 2, 2, 1, 2, 8, 1, 1);
    const char *xml = "<CaretExtension><LabelTable>\n"
                      "<Label Key=\"1\" Red=\"1\"><![CDATA[liver]]></Label>\n"
                      "<Label Key='2'>heart</Label>\n</LabelTable></CaretExtension>";
    size_t xl = strlen(xml), esize = (xl + 8 + 15) / 16 * 16;
    static unsigned char f[8192];
    memcpy(f, b, 348);
    f[348] = 1;
    put32(f + 352, (uint32_t)esize, 0);
    put32(f + 356, 0, 0);
    memset(f + 360, 0, esize - 8);
    memcpy(f + 360, xml, xl);
    size_t off = 352 + esize;
    putf(f + 108, (float)off, 0);
    memset(f + off, 1, 4);
    FvErr e = {0};
    NiftiHeader h;
    Vol v;
    unsigned char *hb;
    size_t hl;
    CHECK_OK(nifti_load(f, off + 4, NULL, 0, 1, 1000, &h, &v, &hb, &hl, &e), &e);
    CHECK_EQ_INT(h.n_ext, 1);
    NiftiLabel *labels;
    int nl = nifti_label_table(&h, hb, hl, &labels, &e);
    CHECK_EQ_INT(nl, 2);
    if (nl == 2) {
        CHECK(labels[0].key == 1 && !strcmp(labels[0].name, "liver"), "label 1 = %s",
              labels[0].name);
        CHECK(labels[1].key == 2 && !strcmp(labels[1].name, "heart"), "label 2 = %s",
              labels[1].name);
    }
    TsClasses ts;
    CHECK_OK(ts_classes_load(&ts, &e), &e);
    Buf notes = {0};
    CHECK_OK(mask_remap(&v, labels, nl, &ts, &notes, &e), &e);
    CHECK_NEAR(vol_get(&v, 0, 0, 0), 5, 0); /* liver is TotalSegmentator id 5 */
    CHECK_EQ_INT(ts_class_id(&ts, "heart.nii.gz"), 51);
    CHECK_EQ_INT(ts_class_id(&ts, "no_such_class"), -1);
    free(labels);
    free(hb);
    buf_free(&notes);
    vol_free(&v);
}

/* ----------------------------------------------------------------- DICOM */

typedef struct DW {
    unsigned char b[1 << 16];
    size_t n;
    int big, implicit;
} DW;

static void dw_tag(DW *w, int g, int el)
{
    put16(w->b + w->n, g, w->big);
    put16(w->b + w->n + 2, el, w->big);
    w->n += 4;
}

static void dw_elem(DW *w, int g, int el, const char *vr, const void *val, size_t len)
{
    dw_tag(w, g, el);
    if (w->implicit) {
        put32(w->b + w->n, (uint32_t)len, w->big);
        w->n += 4;
    } else {
        memcpy(w->b + w->n, vr, 2);
        int lng = !strcmp(vr, "OB") || !strcmp(vr, "OW") || !strcmp(vr, "SQ") ||
                  !strcmp(vr, "UN") || !strcmp(vr, "UT");
        if (lng) {
            w->b[w->n + 2] = w->b[w->n + 3] = 0;
            put32(w->b + w->n + 4, (uint32_t)len, w->big);
            w->n += 8;
        } else {
            put16(w->b + w->n + 2, (int)len, w->big);
            w->n += 4;
        }
    }
    if (val && len != 0xFFFFFFFFu) {
        memcpy(w->b + w->n, val, len);
        w->n += len;
    }
}

static void dw_str(DW *w, int g, int el, const char *vr, const char *s)
{
    char tmp[256];
    size_t l = strlen(s);
    memcpy(tmp, s, l);
    if (l % 2)
        tmp[l++] = ' ';
    dw_elem(w, g, el, vr, tmp, l);
}

static void dw_us(DW *w, int g, int el, int v)
{
    unsigned char x[2];
    put16(x, v, w->big);
    dw_elem(w, g, el, "US", x, 2);
}

/* A 4x3 CT slice, signed 16-bit, stored 12 bits, with an undefined-length
 * sequence before the pixels. */
static size_t make_dicom_with(DW *w, int big, int implicit, double z, int bits_stored,
                              const int16_t *px, const char *slope, const char *inter,
                              const char *thickness)
{
    memset(w, 0, sizeof *w);
    w->big = big;
    w->implicit = implicit;
    dw_str(w, 0x0008, 0x0060, "CS", "CT");
    dw_str(w, 0x0010, 0x0010, "PN", "DOE^JANE");
    if (thickness)
        dw_str(w, 0x0018, 0x0050, "DS", thickness);
    dw_str(w, 0x0020, 0x000D, "UI", "1.2.3.4");
    dw_str(w, 0x0020, 0x000E, "UI", "1.2.3.4.5");
    char ipp[64];
    snprintf(ipp, sizeof ipp, "-10\\-20\\%g", z);
    dw_str(w, 0x0020, 0x0032, "DS", ipp);
    dw_str(w, 0x0020, 0x0037, "DS", "1\\0\\0\\0\\1\\0");
    /* (0008,1140) SQ, undefined length, one item of undefined length */
    dw_elem(w, 0x0008, 0x1140, "SQ", NULL, 0xFFFFFFFFu);
    dw_tag(w, 0xFFFE, 0xE000);
    put32(w->b + w->n, 0xFFFFFFFFu, big);
    w->n += 4;
    dw_str(w, 0x0008, 0x1150, "UI", "1.2.840.10008.5.1.4.1.1.2");
    dw_tag(w, 0xFFFE, 0xE00D);
    put32(w->b + w->n, 0, big);
    w->n += 4;
    dw_tag(w, 0xFFFE, 0xE0DD);
    put32(w->b + w->n, 0, big);
    w->n += 4;
    dw_us(w, 0x0028, 0x0002, 1);
    dw_us(w, 0x0028, 0x0010, 3);
    dw_us(w, 0x0028, 0x0011, 4);
    dw_str(w, 0x0028, 0x0030, "DS", "0.5\\0.25");
    dw_us(w, 0x0028, 0x0100, 16);
    dw_us(w, 0x0028, 0x0101, bits_stored);
    dw_us(w, 0x0028, 0x0103, 1);
    dw_str(w, 0x0028, 0x1052, "DS", inter);
    dw_str(w, 0x0028, 0x1053, "DS", slope);
    unsigned char pix[24];
    for (int i = 0; i < 12; i++)
        put16(pix + 2 * i, (uint16_t)px[i], big);
    dw_elem(w, 0x7FE0, 0x0010, "OW", pix, 24);
    return w->n;
}

static size_t make_dicom(DW *w, int big, int implicit, double z, int bits_stored,
                         const int16_t *px)
{
    return make_dicom_with(w, big, implicit, z, bits_stored, px, "1", "-1024", NULL);
}

static void test_dicom_reads_explicit_implicit_and_big_endian_raw_datasets(void)
{
    int16_t px[12] = {0, 1, 2, 3, 100, 200, 300, 400, 2047, -2048, -1, 5};
    static DW w;
    for (int mode = 0; mode < 3; mode++) {
        int big = mode == 2, impl = mode == 1;
        size_t n = make_dicom(&w, big, impl, 7.5, 16, px);
        FvErr e = {0};
        DcmFile f;
        DcmImage im;
        CHECK(dcm_sniff(w.b, n), "mode %d not sniffed as DICOM", mode);
        CHECK_OK(dcm_parse(&f, w.b, n, 1 << 20, &e), &e);
        if (!e.code)
            CHECK_OK(dcm_image_info(&f, &im, &e), &e);
        if (e.code) {
            dcm_free(&f);
            continue;
        }
        CHECK(im.rows == 3 && im.cols == 4, "mode %d: %d x %d", mode, im.rows, im.cols);
        CHECK(!strcmp(im.modality, "CT") && !strcmp(im.study_uid, "1.2.3.4"), "mode %d uids",
              mode);
        CHECK_NEAR(im.geo.ipp[2], 7.5, 1e-9);
        CHECK_NEAR(im.geo.spacing[1], 0.25, 1e-9);
        CHECK_NEAR(im.geo.inter, -1024, 1e-9);
        CHECK(im.nphi >= 1 && !strcmp(im.phi[0].value, "DOE^JANE"), "patient name collected");
        int16_t out[12];
        PixType t;
        CHECK_OK(dcm_decode_frame(&f, &im, 0, out, &t, &e), &e);
        CHECK(t == PIX_I16 && memcmp(out, px, sizeof px) == 0, "mode %d: pixels differ", mode);
        dcm_free(&f);
    }
}

static void test_dicom_sign_extends_stored_bits_and_names_truncation(void)
{
    int16_t px[12] = {0x0FFF, 0x0800, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    static DW w;
    size_t n = make_dicom(&w, 0, 0, 0, 12, px);
    FvErr e = {0};
    DcmFile f;
    DcmImage im;
    CHECK_OK(dcm_parse(&f, w.b, n, 1 << 20, &e), &e);
    CHECK_OK(dcm_image_info(&f, &im, &e), &e);
    int16_t out[12];
    PixType t;
    CHECK_OK(dcm_decode_frame(&f, &im, 0, out, &t, &e), &e);
    CHECK(out[0] == -1 && out[1] == -2048, "12-bit values %d %d not sign-extended", out[0],
          out[1]);
    dcm_free(&f);
    CHECK(dcm_parse(&f, w.b, n - 7, 1 << 20, &e) == -1 && strstr(e.msg, "truncated") &&
              strstr(e.msg, "7FE0,0010"),
          "truncated pixel data: '%s'", e.msg);
    dcm_free(&f);
    /* A dataset cut inside the undefined-length sequence. */
    CHECK(dcm_parse(&f, w.b, 150, 1 << 20, &e) == -1, "cut inside a sequence accepted");
    dcm_free(&f);
}

static void test_dicom_rle_frame_decodes_byte_planes(void)
{
    /* 2 x 2 pixels, 16-bit: values 0x0102, 0x0304, 0xFFFF (-1), 0x0000. */
    unsigned char frame[64 + 32];
    memset(frame, 0, sizeof frame);
    put32(frame, 2, 0);
    put32(frame + 4, 64, 0);
    put32(frame + 8, 64 + 6, 0);
    /* MSB plane: literal run of 4 bytes: 01 03 FF 00 -> header 3 */
    unsigned char msb[] = {3, 0x01, 0x03, 0xFF, 0x00, 0x80};
    /* LSB plane: 02 04 then repeat FF once... use literal 2 + repeat: */
    unsigned char lsb[] = {1, 0x02, 0x04, 0xFF, 0xFF, 0x00, 0x00};
    memcpy(frame + 64, msb, sizeof msb);
    memcpy(frame + 70, lsb, sizeof lsb);
    /* lsb as literal(2: 02 04), then literal(1: FF)?  0xFF as a count byte
     * means "repeat next byte 2 times": FF FF -> FF FF; then 00 00 -> one
     * literal byte 00. Expected LSB plane: 02 04 FF FF -> pixels 3 and 4
     * get LSBs FF and FF; pixel 4's MSB is 00 -> 0x00FF. */
    static DW w;
    memset(&w, 0, sizeof w);
    dw_str(&w, 0x0002, 0x0010, "UI", "1.2.840.10008.1.2.5");
    size_t meta_end = w.n;
    (void)meta_end;
    dw_str(&w, 0x0008, 0x0060, "CS", "CT");
    dw_us(&w, 0x0028, 0x0002, 1);
    dw_us(&w, 0x0028, 0x0010, 2);
    dw_us(&w, 0x0028, 0x0011, 2);
    dw_us(&w, 0x0028, 0x0100, 16);
    dw_us(&w, 0x0028, 0x0101, 16);
    dw_us(&w, 0x0028, 0x0103, 1);
    dw_elem(&w, 0x7FE0, 0x0010, "OB", NULL, 0xFFFFFFFFu);
    dw_tag(&w, 0xFFFE, 0xE000);
    put32(w.b + w.n, 0, 0);
    w.n += 4;
    dw_tag(&w, 0xFFFE, 0xE000);
    put32(w.b + w.n, 64 + 14, 0);
    w.n += 4;
    memcpy(w.b + w.n, frame, 64 + 14);
    w.n += 64 + 14;
    dw_tag(&w, 0xFFFE, 0xE0DD);
    put32(w.b + w.n, 0, 0);
    w.n += 4;
    FvErr e = {0};
    DcmFile f;
    DcmImage im;
    CHECK_OK(dcm_parse(&f, w.b, w.n, 1 << 20, &e), &e);
    CHECK(!strcmp(f.ts, "1.2.840.10008.1.2.5"), "transfer syntax '%s'", f.ts);
    CHECK_OK(dcm_image_info(&f, &im, &e), &e);
    int16_t out[4];
    PixType t;
    CHECK_OK(dcm_decode_frame(&f, &im, 0, out, &t, &e), &e);
    CHECK(out[0] == 0x0102 && out[1] == 0x0304 && out[2] == -1 && out[3] == 0x00FF,
          "RLE pixels %04x %04x %04x %04x", (uint16_t)out[0], (uint16_t)out[1],
          (uint16_t)out[2], (uint16_t)out[3]);
    dcm_free(&f);
}

/* ---------------------------------------------------------------- series */

static Slice make_slice(double z, int instance, int16_t base, int rows, int cols, int scout)
{
    Slice s;
    memset(&s, 0, sizeof s);
    snprintf(s.study_uid, sizeof s.study_uid, "1");
    snprintf(s.series_uid, sizeof s.series_uid, "2");
    snprintf(s.modality, sizeof s.modality, "CT");
    s.instance = instance;
    s.rows = rows;
    s.cols = cols;
    s.type = PIX_I16;
    s.pix = calloc((size_t)(rows * cols), 2);
    for (int i = 0; i < rows * cols; i++)
        ((int16_t *)s.pix)[i] = (int16_t)(base + i);
    s.geo.has_ipp = s.geo.has_iop = s.geo.has_spacing = 1;
    s.geo.ipp[2] = z;
    double axial[6] = {1, 0, 0, 0, 1, 0}, cor[6] = {1, 0, 0, 0, 0, -1};
    memcpy(s.geo.iop, scout ? cor : axial, sizeof axial);
    s.geo.spacing[0] = s.geo.spacing[1] = 0.5;
    s.geo.slope = 1;
    s.localizer = scout;
    s.sha[0] = (unsigned char)instance;
    return s;
}

static void test_series_sorts_shuffled_slices_drops_scouts_and_duplicates_fills_gaps(void)
{
    /* z = 0, 2, 4, (6 missing), 8 in shuffled order, a duplicate of z=4, a
     * scout. */
    Slice s[7] = {make_slice(8, 5, 400, 2, 3, 0), make_slice(0, 1, 0, 2, 3, 0),
                  make_slice(4, 3, 200, 2, 3, 0), make_slice(2, 2, 100, 2, 3, 0),
                  make_slice(4, 9, 200, 2, 3, 0), make_slice(20, 0, 9, 2, 3, 1),
                  make_slice(10, 6, 500, 2, 3, 0)};
    Slice *p[7];
    for (int i = 0; i < 7; i++)
        p[i] = &s[i];
    int st[7];
    SeriesOut so;
    Buf notes = {0};
    FvErr e = {0};
    CHECK_OK(series_assemble(p, 7, 1000, &so, st, &notes, &e), &e);
    CHECK_EQ_INT(so.vol.nz, 6);
    CHECK_NEAR(so.step, 2, 1e-9);
    CHECK_EQ_INT(so.n_used, 5);
    CHECK(st[5] == SLICE_SCOUT && st[4] == SLICE_DUPLICATE, "statuses %d %d", st[5], st[4]);
    CHECK_NEAR(vol_get(&so.vol, 0, 0, 0), 0, 0);
    CHECK_NEAR(vol_get(&so.vol, 0, 0, 2), 200, 0);
    CHECK_NEAR(vol_get(&so.vol, 0, 0, 3), 300, 0); /* the gap: between 200 and 400 */
    CHECK_NEAR(vol_get(&so.vol, 1, 0, 4), 401, 0);
    CHECK(strstr(notes.data, "scout") && strstr(notes.data, "duplicate") &&
              strstr(notes.data, "gap"),
          "notes say what was done: '%s'", notes.data);
    /* LPS -> RAS: x column negated, z along +z. */
    CHECK_NEAR(so.vol.affine[0][0], -0.5, 1e-12);
    CHECK_NEAR(so.vol.affine[2][2], 2, 1e-12);
    vol_free(&so.vol);
    buf_free(&notes);
    /* An odd-sized slice makes the series inconsistent. */
    Slice odd = make_slice(12, 7, 0, 3, 3, 0);
    Slice *q[3] = {&s[1], &s[3], &odd};
    CHECK(series_assemble(q, 3, 1000, &so, st, &notes, &e) == -1 &&
              strstr(e.msg, "inconsistent series"),
          "odd size accepted: '%s'", e.msg);
    buf_free(&notes);
    /* More than a quarter missing is refused. */
    Slice far = make_slice(40, 8, 0, 2, 3, 0);
    Slice *r[3] = {&s[1], &s[3], &far};
    CHECK(series_assemble(r, 3, 1000, &so, st, &notes, &e) == -1 && strstr(e.msg, "gaps"),
          "huge gap accepted: '%s'", e.msg);
    buf_free(&notes);
    /* The voxel limit holds before allocating. */
    CHECK(series_assemble(p, 7, 10, &so, st, &notes, &e) == -1 && e.code == FV_ELIMIT,
          "over the voxel limit: '%s'", e.msg);
    buf_free(&notes);
    for (int i = 0; i < 7; i++)
        slice_free(&s[i]);
    slice_free(&odd);
    slice_free(&far);
}

/* ------------------------------------------------------------------- PHI */

static void test_phi_replaces_names_ids_dates_phones_and_keeps_measurements(void)
{
    Phi *p;
    FvErr e = {0};
    CHECK_OK(phi_new(&p, &e), &e);
    if (!p)
        return;
    const char *en = "Patient Name: Jane Q. Roe\nMRN: 7712345\nDOB: 12/31/1950\n"
                     "Tel: (555) 123-4567\nAddress: 1 Main St, Springfield\n\n"
                     "Findings: A 12 mm nodule in segment 7, stable since 2019-05-02. "
                     "Volume 1234567 mm3. T12 compression. Dr. Roe reviewed.\n";
    PhiValue known[1] = {{PHI_NAME, "ROE^JANE"}};
    Buf out = {0};
    int counts[PHI_NKINDS] = {0};
    CHECK_OK(phi_scrub(p, en, strlen(en), known, 1, &out, counts, &e), &e);
    const char *t = out.data ? out.data : "";
    CHECK(!strstr(t, "Roe") && !strstr(t, "7712345") && !strstr(t, "1950") &&
              !strstr(t, "123-4567") && !strstr(t, "Main St") && !strstr(t, "2019-05-02"),
          "PHI left in: %s", t);
    CHECK(strstr(t, "12 mm nodule in segment 7") && strstr(t, "1234567 mm3") &&
              strstr(t, "T12 compression"),
          "clinical text damaged: %s", t);
    CHECK(counts[PHI_NAME] >= 2 && counts[PHI_ID] >= 1 && counts[PHI_DATE] >= 2 &&
              counts[PHI_PHONE] >= 1 && counts[PHI_ADDRESS] >= 1,
          "counts name %d id %d date %d phone %d address %d", counts[PHI_NAME], counts[PHI_ID],
          counts[PHI_DATE], counts[PHI_PHONE], counts[PHI_ADDRESS]);
    buf_free(&out);
    const char *zh = "姓名：李四 性别：男 年龄：56岁\n住院号：A2023001234\n检查时间：2023年5月6日\n"
                     "联系电话：13912345678\n检查所见：右肺上叶见直径约8mm结节，CT值约35HU。";
    memset(counts, 0, sizeof counts);
    CHECK_OK(phi_scrub(p, zh, strlen(zh), NULL, 0, &out, counts, &e), &e);
    t = out.data ? out.data : "";
    CHECK(!strstr(t, "李四") && !strstr(t, "A2023001234") && !strstr(t, "2023年") &&
              !strstr(t, "13912345678"),
          "Chinese PHI left in: %s", t);
    CHECK(strstr(t, "性别：男") && strstr(t, "直径约8mm结节") && strstr(t, "35HU"),
          "Chinese clinical text damaged: %s", t);
    buf_free(&out);
    phi_free(&p);
}

/* --------------------------------------------------------------- reports */

static void test_report_encodings_are_detected_and_unknown_ones_refused(void)
{
    FvErr e = {0};
    Buf b = {0};
    const char *enc;
    CHECK_OK(report_decode((const unsigned char *)"Findings: ok\r\n", 14, 100, &b, &enc, &e), &e);
    CHECK_STR(enc, "utf-8");
    CHECK_STR(b.data, "Findings: ok");
    buf_free(&b);
    const unsigned char bom[] = {0xEF, 0xBB, 0xBF, 'h', 'i'};
    CHECK_OK(report_decode(bom, 5, 100, &b, &enc, &e), &e);
    CHECK(!strcmp(enc, "utf-8-bom") && !strcmp(b.data, "hi"), "bom: %s '%s'", enc, b.data);
    buf_free(&b);
    /* "肝脏正常" in GB18030 */
    const unsigned char gb[] = {0xb8, 0xce, 0xd4, 0xe0, 0xd5, 0xfd, 0xb3, 0xa3};
    CHECK_OK(report_decode(gb, sizeof gb, 100, &b, &enc, &e), &e);
    CHECK(!strcmp(enc, "gb18030") && !strcmp(b.data, "肝脏正常"), "gb18030: %s '%s'", enc,
          b.data);
    CHECK_STR(report_language(b.data, b.len), "zh");
    buf_free(&b);
    const unsigned char u16[] = {0xFF, 0xFE, 'o', 0, 'k', 0};
    CHECK_OK(report_decode(u16, sizeof u16, 100, &b, &enc, &e), &e);
    CHECK(!strcmp(enc, "utf-16le") && !strcmp(b.data, "ok"), "utf-16: %s '%s'", enc, b.data);
    buf_free(&b);
    const char *latin = "Befund: L\xe4sion im Segment, gr\xf6\xdf"
                        "ter Durchmesser 12 mm, unauff\xe4llig.";
    CHECK(report_decode((const unsigned char *)latin, strlen(latin), 1000, &b, &enc, &e) == -1 &&
              strstr(e.msg, "unknown encoding"),
          "Latin-1 accepted: '%s'", e.msg);
    buf_free(&b);
    CHECK(report_decode((const unsigned char *)"abc", 3, 2, &b, &enc, &e) == -1 &&
              e.code == FV_ELIMIT,
          "over max_report_bytes accepted");
    buf_free(&b);
    report_compose_ctrate("Lungs clear. ", "Not given.", &b);
    CHECK_STR(b.data, "Findings: Lungs clear.\n\nImpression: ");
    buf_free(&b);
}

static void test_ctrate_names_give_study_patient_and_split(void)
{
    char st[96], pt[96], sp[8];
    int recon;
    CHECK(ctrate_parse_name("x/valid/valid_3/valid_3_a/valid_3_a_2.nii.gz", st, pt, sp, &recon),
          "volume name not parsed");
    CHECK(!strcmp(st, "valid_3_a") && !strcmp(pt, "valid_3") && !strcmp(sp, "valid") &&
              recon == 2,
          "%s %s %s %d", st, pt, sp, recon);
    CHECK(ctrate_parse_name("masks/train_12_b_1_seg.nii.gz", st, pt, sp, &recon) &&
              !strcmp(st, "train_12_b"),
          "mask name: %s", st);
    CHECK(!ctrate_parse_name("study1/ct.nii.gz", st, pt, sp, &recon), "plain name matched");
    CHECK(!ctrate_parse_name("train_x_a_1.nii.gz", st, pt, sp, &recon), "bad patient matched");
    CtrateMetaTable t = {0};
    int bad;
    FvErr e = {0};
    const char *csv = "VolumeName,XYSpacing,ZSpacing,RescaleIntercept,RescaleSlope,"
                      "ImagePositionPatient,ImageOrientationPatient\n"
                      "train_1_a_1.nii.gz,\"[0.5, 0.75]\",2,-1024,1,\"[-100, -50, 10]\","
                      "\"['1', '0', '0', '0', '1', '0']\"\n,,,,,,\n";
    CHECK_OK(ctrate_meta_load(&t, csv, strlen(csv), &bad, &e), &e);
    CHECK_EQ_INT(bad, 1);
    const CtrateMeta *m = ctrate_meta_find(&t, "train/x/train_1_a_1.nii.gz");
    CHECK(m && m->has_iop && m->has_ipp && m->inter == -1024, "metadata row not found");
    double a[4][4];
    if (m && ctrate_meta_affine(m, a, &e) == 0) {
        CHECK_NEAR(a[0][0], -0.5, 1e-12); /* XYSpacing is "[x, y]"; LPS -> RAS */
        CHECK_NEAR(a[1][1], -0.75, 1e-12);
        CHECK_NEAR(a[2][2], 2, 1e-12);
        CHECK_NEAR(a[0][3], 100, 1e-12);
    }
    ctrate_meta_free(&t);
}

/* ------------------------------------------------------------ names, walk */

static void test_paths_are_classified_by_name(void)
{
    CHECK(name_kind("a/b/IM0001.DCM") == NK_DICOM, "dcm");
    CHECK(name_kind("x/ct.nii.gz") == NK_NIFTI, "nii.gz");
    CHECK(name_kind("x/ct.hdr") == NK_HDR && name_kind("x/ct.img.gz") == NK_IMG, "pair");
    CHECK(name_kind("ctrate/metadata.csv") == NK_TABLE_META, "metadata");
    CHECK(name_kind("ctrate/train_reports.csv") == NK_TABLE_REPORTS, "reports table");
    CHECK(name_kind("s/README.txt") == NK_IGNORE && name_kind("s/report.txt") == NK_TXT, "txt");
    CHECK(name_kind("h/study.tar.zst") == NK_ARCHIVE, "archive");
    CHECK(name_is_mask_path("study/seg.nii.gz") && name_is_mask_path("s/seg/liver.nii.gz") &&
              name_is_mask_path("ctrate/masks/train_1_a_1.nii.gz") &&
              name_is_mask_path("case7_seg.nii.gz") && !name_is_mask_path("study/ct.nii.gz"),
          "mask paths");
    CHECK(name_is_generic_dir("dicom") && name_is_generic_dir("SE0003") &&
              name_is_generic_dir("series_2") && !name_is_generic_dir("series_inconsistent") &&
              !name_is_generic_dir("study1"),
          "generic folders");
    char stem[64];
    walk_archive_stem("/x/h/train/patient 7.tar.gz", stem, sizeof stem);
    CHECK_STR(stem, "patient 7");
}

static void write_file(const char *path, const char *text)
{
    FvErr e = {0};
    char dir[512];
    fs_dirname(path, dir, sizeof dir);
    fs_mkdir_p(dir, &e);
    fs_write_atomic(path, text, strlen(text), &e);
}

static void test_walk_groups_loose_files_into_study_units_in_phases(void)
{
    char root[] = "/tmp/fvlm-walk-XXXXXX";
    if (!mkdtemp(root)) {
        CHECK(0, "mkdtemp: %s", strerror(errno));
        return;
    }
    char p[600];
    const char *files[] = {"s1/dicom/a.dcm", "s1/dicom/b.dcm", "s1/report.txt", "s1/seg.nii.gz",
                           "s2/ct.nii.gz", "masks/train_1_a_1.nii.gz", "metadata.csv",
                           "reports.csv", "z.tar.gz"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", root, files[i]);
        write_file(p, "x");
    }
    UnitList l;
    FvErr e = {0};
    char *in[1] = {root};
    CHECK_OK(walk_inputs(in, 1, NULL, &l, &e), &e);
    /* metadata, reports (phase 0); s1, s2, z.tar.gz (phase 1); masks (2) */
    CHECK_EQ_INT(l.n, 6);
    if (l.n == 6) {
        CHECK(strstr(l.u[0].path, "metadata.csv") && strstr(l.u[1].path, "reports.csv"),
              "tables first: %s, %s", l.u[0].path, l.u[1].path);
        int s1 = -1;
        for (int i = 0; i < l.n; i++)
            if (!strcmp(l.u[i].name, "s1"))
                s1 = i;
        CHECK(s1 >= 0 && l.u[s1].nfiles == 4 && strstr(l.u[s1].files[0], "dicom/") &&
                  strstr(l.u[s1].files[3], "report.txt"),
              "s1 unit: DICOM first, report last");
        CHECK(l.u[5].phase == 2 && l.u[5].nfiles == 1, "mask-only unit last (phase %d)",
              l.u[5].phase);
    }
    walk_free(&l);
    CHECK(test_sh("rm -rf '%s'", root) == 0, "cleanup");
}

static void test_sweep_removes_temporary_and_unreferenced_shards_only(void)
{
    char root[] = "/tmp/fvlm-sweep-XXXXXX";
    if (!mkdtemp(root)) {
        CHECK(0, "mkdtemp: %s", strerror(errno));
        return;
    }
    char dbp[600];
    snprintf(dbp, sizeof dbp, "%s/c.db", root);
    Db *db;
    FvErr e = {0};
    CHECK_OK(db_open(&db, dbp, 0, &e), &e);
    if (!db)
        return;
    Run run;
    char *argv[1] = {"test"};
    CHECK_OK(run_begin(&run, db, "ingest", 1, argv, NULL, -1, &e), &e);
    Corpus c;
    CHECK_OK(corpus_open(&c, db, &run, &e), &e);
    Vol v;
    CHECK_OK(vol_alloc(&v, VOL_I16, 3, 2, 2, 100, &e), &e);
    char keep[64], orphan[64];
    CHECK_OK(corpus_write_shard(&c, "ct", &v, keep, &e), &e);
    ((int16_t *)v.data)[0] = 7;
    CHECK_OK(corpus_write_shard(&c, "ct", &v, orphan, &e), &e);
    CHECK(strcmp(keep, orphan) != 0, "different content, same name");
    char again[64];
    CHECK_OK(corpus_write_shard(&c, "ct", &v, again, &e), &e);
    CHECK_STR(again, orphan);
    db_run(db, &e, "INSERT INTO studies (study_key, split) VALUES ('k', 'train')", NULL);
    db_run(db, &e,
           "INSERT INTO volumes (study_id, sha256, source, src_dims, src_spacing, src_affine, "
           "src_orient, src_dtype, nz, ny, nx, sz, sy, sx, affine, shard, tensor) VALUES "
           "(1, 's', 's', '[]', '[]', '[]', 'RAS', 'int16', 2, 2, 3, 1, 1, 1, '[]', ?, 'ct')",
           "s", keep);
    char tmp[4300], other[4300];
    snprintf(tmp, sizeof tmp, "%s/%s.tmp.999999", c.tensor_dir, keep);
    snprintf(other, sizeof other, "%s/notes.txt", c.tensor_dir);
    write_file(tmp, "half");
    write_file(other, "not ours");
    int nt, no;
    CHECK_OK(corpus_sweep(&c, &nt, &no, &e), &e);
    CHECK(nt == 1 && no == 1, "swept %d temporary, %d orphans", nt, no);
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", c.tensor_dir, keep);
    CHECK(fs_exists(path), "referenced shard removed");
    snprintf(path, sizeof path, "%s/%s", c.tensor_dir, orphan);
    CHECK(!fs_exists(path), "orphan kept");
    CHECK(fs_exists(other) && !fs_exists(tmp), "foreign file removed or temp kept");
    vol_free(&v);
    db_close(&db);
    CHECK(test_sh("rm -rf '%s'", root) == 0, "cleanup");
}

/* ------------------------------------------------------------ path de-id */

static void test_deid_path_hashes_every_name_that_is_not_generic(void)
{
    const char *key = "test-key-0123456";
    char out[512], h[65];
    FvErr e = {0};
    /* an accession-named archive: keyed hash + extension */
    CHECK_OK(deid_path_to(key, "/data/CT20231118002.tar.gz", out, sizeof out, &e), &e);
    unsigned char mac[32];
    hmac_sha256(key, strlen(key), "path:CT20231118002", 18, mac);
    sha256_to_hex(mac, h);
    char want[128];
    snprintf(want, sizeof want, "/data/%.12s.tar.gz", h);
    CHECK_STR(out, want);
    /* archive:member with generic folder and numbered file names kept */
    CHECK_OK(deid_path_to(key, "Zhang_San_0042.zip:dicom/IM0001.dcm", out, sizeof out, &e), &e);
    CHECK(strlen(out) == 12 + strlen(".zip:dicom/IM0001.dcm") &&
              !strcmp(out + 12, ".zip:dicom/IM0001.dcm") && !strstr(out, "Zhang"),
          "member path de-identified as %s", out);
    const char *generic[] = {"seg", "masks", "report.txt", "train", "valid", "test", "ct.nii.gz",
                             "IM0001.dcm", "0001", "slice_12", "row 4", "line 12",
                             "metadata.csv", "totalseg", "labels"};
    for (size_t i = 0; i < sizeof generic / sizeof generic[0]; i++)
        CHECK(deid_component_is_generic(generic[i], strlen(generic[i])),
              "'%s' is not taken as generic", generic[i]);
    const char *named[] = {"CT20231118002", "Zhang_San_0042", "IM20231118", "1.2.840.113619.2",
                           "Li Si", "张三", "ACC20210304"};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        CHECK(!deid_component_is_generic(named[i], strlen(named[i])),
              "'%s' is taken as generic", named[i]);
    /* fvlm's own annotation is kept; the folder before it is not */
    CHECK_OK(deid_path_to(key, "Wang_Wu:dicom/ (series 3, 120 images)", out, sizeof out, &e), &e);
    CHECK(!strcmp(out + 12, ":dicom/ (series 3, 120 images)") && !strstr(out, "Wang"),
          "annotation: %s", out);
    /* the same name under another key is another hash; no key: "_" */
    char other[512];
    CHECK_OK(deid_path_to("another-key-999", "Zhang_San_0042.zip", other, sizeof other, &e), &e);
    CHECK_OK(deid_path_to(key, "Zhang_San_0042.zip", out, sizeof out, &e), &e);
    CHECK(strcmp(out, other) != 0, "the hash does not depend on the key");
    CHECK_OK(deid_path_to(NULL, "/x/Zhang_San_0042.zip:dicom/IM1.dcm", out, sizeof out, &e), &e);
    CHECK_STR(out, "/_/_.zip:dicom/IM1.dcm");
    /* fails closed: a name too long to de-identify, or one that does not
     * fit the caller's buffer, is an error, never a cut or raw name */
    char *longname = malloc(DEID_PATH_MAX + 10);
    memset(longname, 'a', DEID_PATH_MAX + 9);
    longname[DEID_PATH_MAX + 9] = '\0';
    Buf b = {0};
    CHECK(deid_path(key, longname, &b, &e) == -1 && b.len == 0, "an over-long name was accepted");
    err_clear(&e);
    CHECK(deid_path_to(key, "CT20231118002.tar.gz", out, 10, &e) == -1,
          "a name that does not fit was cut");
    err_clear(&e);
    buf_free(&b);
    free(longname);
    /* free text: path-like words only */
    Buf t = {0};
    CHECK_OK(deid_text_paths(key, "cannot open '/data/CT20231118002.zip': bad magic", &t, &e), &e);
    CHECK(!strstr(t.data, "CT2023") && strstr(t.data, "cannot open '/data/") &&
              strstr(t.data, ".zip': bad magic"),
          "text: %s", t.data);
    buf_free(&t);
}

static void test_mask_content_verdict_tells_labels_from_hu(void)
{
    FvErr e = {0};
    Vol v;
    double w;
    CHECK_OK(vol_alloc(&v, VOL_I16, 4, 1, 1, 100, &e), &e);
    int16_t *d = v.data;
    d[0] = 0, d[1] = 5, d[2] = 10, d[3] = 51; /* label ids */
    CHECK_EQ_INT(mask_content_verdict(&v, &w), 1);
    d[0] = -1024; /* air: HU */
    CHECK_EQ_INT(mask_content_verdict(&v, &w), 0);
    CHECK(w == -1024, "the deciding value is %g, expected -1024", w);
    d[0] = 0, d[3] = 300; /* above 255: not a label */
    CHECK_EQ_INT(mask_content_verdict(&v, &w), 0);
    d[0] = d[1] = d[2] = d[3] = 0; /* blank: the name decides */
    CHECK_EQ_INT(mask_content_verdict(&v, &w), -1);
    d[1] = 7;
    CHECK_OK(mask_to_labels(&v, &e), &e);
    CHECK(v.type == VOL_U8 && ((uint8_t *)v.data)[1] == 7, "not converted to uint8 labels");
    vol_free(&v);
    CHECK_OK(vol_alloc(&v, VOL_F32, 2, 1, 1, 100, &e), &e);
    float *f = v.data;
    f[0] = 1, f[1] = 2.5f; /* a fraction: not labels */
    CHECK_EQ_INT(mask_content_verdict(&v, &w), 0);
    CHECK(mask_to_labels(&v, &e) == -1 && v.type == VOL_F32, "a fraction became a label");
    vol_free(&v);
}

/* Numeric DICOM attributes are strict: a whole finite decimal number in
 * range, one value where one is expected; the error names the attribute
 * and the value. */
static void test_dicom_numbers_are_strict_and_errors_name_the_tag(void)
{
    int16_t px[12] = {0};
    static DW w;
    struct {
        const char *slope, *inter, *thick, *want; /* want NULL: accepted */
    } cases[] = {
        {"1", "-1024", "1.25", NULL},
        {" 2.5E0 ", "+1e2", "0", NULL},
        {"na", "-1024", NULL, "RescaleSlope (0028,1053) = 'na': not a decimal number"},
        {"0\\0\\0", "-1024", NULL, "RescaleSlope (0028,1053) = '0\\0\\0': 3 value(s) where 1"},
        {"0", "-1024", NULL, "RescaleSlope (0028,1053) = 0"},
        {"1", "1e308", NULL, "RescaleIntercept (0028,1052) = 1e+308 is outside"},
        {"1", "inf", NULL, "RescaleIntercept (0028,1052) = 'inf': not a decimal number"},
        {"1", "-1024", "1.2.840.10008", "SliceThickness (0018,0050) = '1.2.840.10008': not a"},
        {"1", "0x10", NULL, "RescaleIntercept (0028,1052) = '0x10'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = make_dicom_with(&w, 0, 0, 1, 16, px, cases[i].slope, cases[i].inter,
                                   cases[i].thick);
        FvErr e = {0};
        DcmFile f;
        DcmImage im;
        CHECK_OK(dcm_parse(&f, w.b, n, 1 << 20, &e), &e);
        int rc = dcm_image_info(&f, &im, &e);
        if (!cases[i].want)
            CHECK(rc == 0, "case %zu refused: %s", i, e.msg);
        else
            CHECK(rc == -1 && strstr(e.msg, cases[i].want), "case %zu: '%s', expected '%s'", i,
                  rc ? e.msg : "(accepted)", cases[i].want);
        dcm_free(&f);
    }
    /* NumberOfFrames that is not one whole number is refused, never one frame */
    {
        static DW w2;
        FvErr e2 = {0};
        DcmFile f2;
        DcmImage im2;
        memset(&w2, 0, sizeof w2);
        dw_str(&w2, 0x0008, 0x0060, "CS", "CT");
        dw_str(&w2, 0x0020, 0x000D, "UI", "1.2.3.4");
        dw_us(&w2, 0x0028, 0x0002, 1);
        dw_str(&w2, 0x0028, 0x0008, "IS", "3x");
        dw_us(&w2, 0x0028, 0x0010, 3);
        dw_us(&w2, 0x0028, 0x0011, 4);
        dw_us(&w2, 0x0028, 0x0100, 16);
        CHECK_OK(dcm_parse(&f2, w2.b, w2.n, 1 << 20, &e2), &e2);
        CHECK(dcm_image_info(&f2, &im2, &e2) == -1 && strstr(e2.msg, "NumberOfFrames"),
              "NumberOfFrames '3x' accepted: '%s'", e2.msg);
        dcm_free(&f2);
    }
    /* the accepted values are read as written */
    size_t n = make_dicom_with(&w, 0, 0, 1, 16, px, " 2.5E0 ", "+1e2", "0");
    FvErr e = {0};
    DcmFile f;
    DcmImage im;
    CHECK_OK(dcm_parse(&f, w.b, n, 1 << 20, &e), &e);
    CHECK_OK(dcm_image_info(&f, &im, &e), &e);
    CHECK_NEAR(im.geo.slope, 2.5, 0);
    CHECK_NEAR(im.geo.inter, 100, 0);
    dcm_free(&f);
}

/* A NIfTI scaling that overflows float32 is an error naming it; invalid
 * sform/qform codes are read as 0, as nibabel does. */
static void test_nifti_overflowing_scaling_is_refused_and_bad_codes_read_as_zero(void)
{
    static unsigned char b[4096];
    FvErr e = {0};
    NiftiHeader h;
    Vol v;
    size_t n = make_nifti(b, 0, 4, 3, 2, 4, 16, 1, 1);
    putf(b + 112, 1e38f, 0);
    putf(b + 116, 0, 0);
    CHECK(nifti_load(b, n, NULL, 0, 0, 1000, &h, &v, NULL, NULL, &e) == -1 &&
              strstr(e.msg, "scl_slope = 1e+38") && strstr(e.msg, "beyond float32"),
          "scl_slope 1e38: '%s'", e.code ? e.msg : "(accepted)");
    err_clear(&e);
    /* sform_code 7 (invalid): ignored, the qform is used */
    n = make_nifti(b, 0, 4, 3, 2, 4, 16, 1, 7);
    CHECK_OK(nifti_load(b, n, NULL, 0, 0, 1000, &h, &v, NULL, NULL, &e), &e);
    CHECK(h.sform_code == 0 && !strcmp(h.affine_from, "qform") && strstr(h.code_note, "0..4"),
          "sform_code 7 read as %d (affine from %s)", h.sform_code, h.affine_from);
    vol_free(&v);
    /* both invalid: pixdim */
    n = make_nifti(b, 0, 4, 3, 2, 4, 16, -3, 99);
    CHECK_OK(nifti_load(b, n, NULL, 0, 0, 1000, &h, &v, NULL, NULL, &e), &e);
    CHECK(h.qform_code == 0 && h.sform_code == 0 && !strcmp(h.affine_from, "pixdim"),
          "codes -3/99 read as %d/%d", h.qform_code, h.sform_code);
    vol_free(&v);
}

/* One decision for ingest and inspect: a series of scouts only. */
static void test_series_of_scouts_only_is_one_decision(void)
{
    Slice a = make_slice(0, 1, 0, 2, 2, 1), b = make_slice(5, 2, 0, 2, 2, 1),
          c = make_slice(10, 3, 0, 2, 2, 0), d = make_slice(15, 4, 0, 2, 2, 0);
    const char *why;
    Slice *two_loc[2] = {&a, &b};
    CHECK(series_is_scout(two_loc, 2, &why) == 1 && strstr(why, "LOCALIZER"),
          "two LOCALIZER slices are not scouts");
    Slice *mixed[3] = {&a, &c, &d};
    CHECK(series_is_scout(mixed, 3, &why) == 0, "a CT series with one scout is called scouts");
    /* an AP and a lateral image, not marked: no two share an orientation */
    c.geo.iop[4] = 0, c.geo.iop[5] = 1; /* coronal-like */
    d.geo.iop[0] = 0, d.geo.iop[1] = 1; /* sagittal-like */
    d.geo.iop[3] = 0, d.geo.iop[4] = 0, d.geo.iop[5] = 1;
    Slice *ortho[2] = {&c, &d};
    CHECK(series_is_scout(ortho, 2, &why) == 1 && strstr(why, "orientation"),
          "two orthogonal single images are not scouts");
    slice_free(&a);
    slice_free(&b);
    slice_free(&c);
    slice_free(&d);
}

int main(void)
{
    RUN(test_gzip_inflates_and_names_truncation_and_limits);
    RUN(test_nifti_reads_both_byte_orders_and_all_three_affines);
    RUN(test_nifti_refuses_bad_headers_with_the_reason);
    RUN(test_nifti_scaling_picks_an_exact_type);
    RUN(test_nifti_label_table_is_read_from_the_extension);
    RUN(test_dicom_reads_explicit_implicit_and_big_endian_raw_datasets);
    RUN(test_dicom_sign_extends_stored_bits_and_names_truncation);
    RUN(test_dicom_rle_frame_decodes_byte_planes);
    RUN(test_series_sorts_shuffled_slices_drops_scouts_and_duplicates_fills_gaps);
    RUN(test_phi_replaces_names_ids_dates_phones_and_keeps_measurements);
    RUN(test_report_encodings_are_detected_and_unknown_ones_refused);
    RUN(test_ctrate_names_give_study_patient_and_split);
    RUN(test_paths_are_classified_by_name);
    RUN(test_walk_groups_loose_files_into_study_units_in_phases);
    RUN(test_sweep_removes_temporary_and_unreferenced_shards_only);
    RUN(test_deid_path_hashes_every_name_that_is_not_generic);
    RUN(test_mask_content_verdict_tells_labels_from_hu);
    RUN(test_series_of_scouts_only_is_one_decision);
    RUN(test_dicom_numbers_are_strict_and_errors_name_the_tag);
    RUN(test_nifti_overflowing_scaling_is_refused_and_bad_codes_read_as_zero);
    return test_finish();
}
