/* Unit tests of the synth stage: the DICOM, NIfTI, gzip and archive writers,
 * the phrase templates and their vocabulary check, the lesion table, the
 * phantom, the visibility of every task's change, the reports, and a whole
 * tiny corpus (deterministic, independent of the thread count). */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "archw.h"
#include "dicomw.h"
#include "fsutil.h"
#include "fvlm_config.h"
#include "lesions.h"
#include "log.h"
#include "niftiw.h"
#include "oracle.h"
#include "ontology.h"
#include "phantom.h"
#include "phrases.h"
#include "report.h"
#include "sha256.h"
#include "synth.h"
#include "test.h"

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static float rdf(const unsigned char *p)
{
    uint32_t u = rd32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---------------------------------------------------------------- DICOM */

static void test_dicom_explicit_vr_uses_short_and_long_length_forms(void)
{
    DcmData d;
    dcmw_init(&d, 1);
    dcmw_str(&d, 0x0008, 0x0060, "CS", "CT");
    dcmw_str(&d, 0x0010, 0x0010, "PN", "Doe^Jo");      /* odd? no: 6 bytes */
    dcmw_str(&d, 0x0020, 0x000D, "UI", "1.2.3");        /* odd: NUL padded */
    uint16_t px[2] = {0x1234, 0xFFFF};
    dcmw_pixels(&d, px, 2);
    const unsigned char *b = (const unsigned char *)d.b.data;
    CHECK_EQ_INT(rd16(b), 0x0008);
    CHECK_EQ_INT(rd16(b + 2), 0x0060);
    CHECK(!memcmp(b + 4, "CS", 2), "VR of (0008,0060) is %.2s, expected CS", b + 4);
    CHECK_EQ_INT(rd16(b + 6), 2);
    const unsigned char *ui = b + 8 + 2 + 8 + 6;
    CHECK(!memcmp(ui + 4, "UI", 2), "third element VR %.2s, expected UI", ui + 4);
    CHECK_EQ_INT(rd16(ui + 6), 6);
    CHECK(ui[8 + 5] == 0, "UID padding byte is %d, expected NUL", ui[13]);
    const unsigned char *ow = ui + 8 + 6;
    CHECK(!memcmp(ow + 4, "OW", 2) && rd16(ow + 6) == 0, "OW has reserved bytes after its VR");
    CHECK_EQ_INT(rd32(ow + 8), 4);
    CHECK_EQ_INT(rd16(ow + 12), 0x1234);
    CHECK_EQ_INT(rd16(ow + 14), 0xFFFF);
    CHECK_EQ_INT(d.b.len, (size_t)(8 + 2) + (8 + 6) + (8 + 6) + (12 + 4));
    dcmw_free(&d);
}

static void test_dicom_implicit_vr_has_32_bit_lengths_and_space_padding(void)
{
    DcmData d;
    dcmw_init(&d, 0);
    dcmw_str(&d, 0x0008, 0x0060, "CS", "CTX"); /* odd length: space padded */
    dcmw_us(&d, 0x0028, 0x0010, 512);
    const unsigned char *b = (const unsigned char *)d.b.data;
    CHECK_EQ_INT(rd32(b + 4), 4);
    CHECK(b[8 + 3] == ' ', "padding byte %d, expected a space", b[11]);
    CHECK_EQ_INT(rd32(b + 12 + 4), 2);
    CHECK_EQ_INT(rd16(b + 12 + 8), 512);
    dcmw_free(&d);
}

static void test_dicom_file_meta_group_length_and_transfer_syntax(void)
{
    DcmData d;
    dcmw_init(&d, 1);
    dcmw_str(&d, 0x0008, 0x0060, "CS", "CT");
    Buf f = {0};
    FvErr e = {0};
    CHECK_OK(dcmw_file(&d, DCM_CT_STORAGE, "1.2.3.4", 1, &f, &e), &e);
    const unsigned char *p = (const unsigned char *)f.data;
    CHECK(f.len > 132 && !memcmp(p + 128, "DICM", 4), "no DICM after the preamble");
    CHECK(!memcmp(p + 132 + 4, "UL", 2), "group length is not UL");
    uint32_t glen = rd32(p + 132 + 8);
    /* the dataset follows the meta group immediately */
    const unsigned char *ds = p + 132 + 12 + glen;
    CHECK_EQ_INT(rd16(ds), 0x0008);
    CHECK_EQ_INT(rd16(ds + 2), 0x0060);
    CHECK(memmem(p, f.len, DCM_TS_EXPLICIT, strlen(DCM_TS_EXPLICIT)) != NULL,
          "explicit transfer syntax UID missing from the meta group");
    Buf bare = {0};
    CHECK_OK(dcmw_file(&d, DCM_CT_STORAGE, "1.2.3.4", 0, &bare, &e), &e);
    CHECK(bare.len == d.b.len && !memcmp(bare.data, d.b.data, d.b.len),
          "a file without meta is the bare dataset");
    buf_free(&f);
    buf_free(&bare);
    dcmw_free(&d);
}

static void test_dicom_elements_out_of_order_are_refused(void)
{
    DcmData d;
    dcmw_init(&d, 1);
    dcmw_str(&d, 0x0010, 0x0010, "PN", "A");
    dcmw_str(&d, 0x0008, 0x0060, "CS", "CT");
    Buf f = {0};
    FvErr e = {0};
    CHECK(dcmw_file(&d, DCM_CT_STORAGE, "1.2", 1, &f, &e) != 0, "out-of-order tags were written");
    CHECK(strstr(e.msg, "order") != NULL, "message '%s' does not say why", e.msg);
    buf_free(&f);
    dcmw_free(&d);
}

static void test_dicom_uid_is_a_deterministic_2_25_uid(void)
{
    char a[64], b[64], c[64];
    dcmw_uid("seed 3 study 0", a);
    dcmw_uid("seed 3 study 0", b);
    dcmw_uid("seed 3 study 1", c);
    CHECK_STR(a, b);
    CHECK(strcmp(a, c) != 0, "different texts gave the same UID %s", a);
    CHECK(!strncmp(a, "2.25.", 5) && a[5] != '0', "UID %s is not 2.25.<integer>", a);
    CHECK(strlen(a) <= 64 && strspn(a + 5, "0123456789") == strlen(a + 5), "UID %s malformed", a);
}

/* ---------------------------------------------------------------- NIfTI */

/* The affine a reader builds from the quaternion (NIfTI-1, method 2). */
static void quatern_affine(double b, double c, double d, double qfac, const double pix[3],
                           const double off[3], double A[4][4])
{
    double a = 1 - (b * b + c * c + d * d);
    a = a > 0 ? sqrt(a) : 0;
    double R[3][3] = {{a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)},
                      {2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)},
                      {2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b}};
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++)
            A[i][j] = R[i][j] * pix[j] * (j == 2 ? qfac : 1);
        A[i][3] = off[i];
    }
    A[3][0] = A[3][1] = A[3][2] = 0;
    A[3][3] = 1;
}

static void test_nifti_quaternion_reproduces_every_flipped_affine(void)
{
    for (int fl = 0; fl < 8; fl++) {
        double A[4][4] = {{0}};
        double sp[3] = {0.7, 0.8, 2.5};
        for (int a = 0; a < 3; a++) {
            A[a][a] = (fl >> a & 1) ? -sp[a] : sp[a];
            A[a][3] = 10.5 * (a + 1);
        }
        A[3][3] = 1;
        double q[3], qfac, pix[3], B[4][4];
        niftiw_quatern(A, q, &qfac, pix);
        double off[3] = {A[0][3], A[1][3], A[2][3]};
        quatern_affine(q[0], q[1], q[2], qfac, pix, off, B);
        double worst = 0;
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                worst = fmax(worst, fabs(A[i][j] - B[i][j]));
        CHECK(worst < 1e-9, "flips %d: quaternion affine differs by %g", fl, worst);
    }
}

static void test_nifti_header_fields_extension_and_voxels(void)
{
    int16_t vox[2 * 3 * 4];
    for (int i = 0; i < 24; i++)
        vox[i] = (int16_t)(i * 100 - 1000);
    NiftiSpec s;
    memset(&s, 0, sizeof s);
    s.dim[0] = 2;
    s.dim[1] = 3;
    s.dim[2] = 4;
    s.datatype = NIFTI_INT16;
    double A[4][4] = {{-0.75, 0, 0, 100}, {0, 0.75, 0, -50}, {0, 0, 3, 20}, {0, 0, 0, 1}};
    memcpy(s.affine, A, sizeof A);
    s.header = NIFTI_HDR_SFORM;
    s.scl_slope = 1;
    s.scl_inter = -1024;
    s.data = vox;
    s.ext = "<xml/>";
    s.ext_len = 6;
    Buf b = {0};
    FvErr e = {0};
    CHECK_OK(niftiw_encode(&s, &b, &e), &e);
    const unsigned char *p = (const unsigned char *)b.data;
    CHECK_EQ_INT(rd32(p), 348);
    CHECK_EQ_INT(rd16(p + 40), 3);
    CHECK_EQ_INT(rd16(p + 42), 2);
    CHECK_EQ_INT(rd16(p + 44), 3);
    CHECK_EQ_INT(rd16(p + 46), 4);
    CHECK_EQ_INT(rd16(p + 70), 4);
    CHECK_EQ_INT(rd16(p + 72), 16);
    CHECK_NEAR(rdf(p + 80), 0.75, 1e-6);
    CHECK_NEAR(rdf(p + 88), 3, 1e-6);
    CHECK_NEAR(rdf(p + 112), 1, 0);
    CHECK_NEAR(rdf(p + 116), -1024, 0);
    CHECK_EQ_INT(p[123], 10);
    CHECK_EQ_INT(rd16(p + 252), 0);
    CHECK_EQ_INT(rd16(p + 254), 2);
    CHECK_NEAR(rdf(p + 280), -0.75, 1e-6);
    CHECK_NEAR(rdf(p + 280 + 12), 100, 1e-6);
    CHECK_NEAR(rdf(p + 312 + 8), 3, 1e-6);
    CHECK(!memcmp(p + 344, "n+1", 4), "magic is not n+1");
    CHECK_EQ_INT(p[348], 1);
    uint32_t esize = rd32(p + 352);
    CHECK(esize % 16 == 0 && esize >= 14, "extension size %u is not a multiple of 16", esize);
    CHECK_EQ_INT(rd32(p + 356), 0);
    float vo = rdf(p + 108);
    CHECK_NEAR(vo, 352 + esize, 0);
    CHECK_EQ_INT(b.len, (size_t)vo + sizeof vox);
    CHECK_EQ_INT((int16_t)rd16(p + (size_t)vo + 2 * 23), 1300);
    buf_free(&b);

    s.header = NIFTI_HDR_BLANK;
    s.ext = NULL;
    CHECK_OK(niftiw_encode(&s, &b, &e), &e);
    p = (const unsigned char *)b.data;
    CHECK(rd16(p + 252) == 0 && rd16(p + 254) == 0, "blank header has orientation codes");
    CHECK_NEAR(rdf(p + 80), 1, 0);
    CHECK_NEAR(rdf(p + 108), 352, 0);
    buf_free(&b);
}

static void test_nifti_label_table_lists_every_named_id(void)
{
    const char *names[4] = {NULL, "spleen", NULL, "kidney_left"};
    Buf x = {0};
    niftiw_label_xml(names, 4, &x);
    CHECK(strstr(x.data, "Key=\"1\"") && strstr(x.data, "CDATA[spleen]"), "spleen missing");
    CHECK(strstr(x.data, "Key=\"3\"") && !strstr(x.data, "Key=\"2\""), "ids without names listed");
    CHECK(strstr(x.data, "<CaretExtension>") && strstr(x.data, "</CaretExtension>"), "not a Caret label table");
    buf_free(&x);
}

/* ---------------------------------------------------------------- gzip and archives */

static void test_gzip_has_no_timestamp_and_inflates_to_the_input(void)
{
    char in[5000];
    for (int i = 0; i < 5000; i++)
        in[i] = (char)(i * 7 % 13);
    Buf gz = {0};
    FvErr e = {0};
    CHECK_OK(archw_gzip(in, sizeof in, 2, &gz, &e), &e);
    const unsigned char *p = (const unsigned char *)gz.data;
    CHECK(p[0] == 0x1f && p[1] == 0x8b, "not a gzip stream");
    CHECK(rd32(p + 4) == 0, "gzip header carries an mtime (%u)", rd32(p + 4));
    char out[6000];
    z_stream z;
    memset(&z, 0, sizeof z);
    inflateInit2(&z, 16 + MAX_WBITS);
    z.next_in = (unsigned char *)gz.data;
    z.avail_in = (uInt)gz.len;
    z.next_out = (unsigned char *)out;
    z.avail_out = sizeof out;
    int rc = inflate(&z, Z_FINISH);
    CHECK(rc == Z_STREAM_END && z.total_out == sizeof in && !memcmp(in, out, sizeof in),
          "zlib inflate gave rc %d, %lu bytes", rc, (unsigned long)z.total_out);
    inflateEnd(&z);
    buf_free(&gz);
}

static void check_archive(int kind)
{
    const char *a = "first member", *b = "second, longer member \xE4\xB8\xAD";
    ArchMember m[3];
    memset(m, 0, sizeof m);
    snprintf(m[0].name, sizeof m[0].name, "dicom/");
    snprintf(m[1].name, sizeof m[1].name, "dicom/IM0001.dcm");
    m[1].data = a;
    m[1].len = strlen(a);
    snprintf(m[2].name, sizeof m[2].name, "report.txt");
    m[2].data = b;
    m[2].len = strlen(b);
    Buf x = {0}, y = {0};
    FvErr e = {0};
    CHECK_OK(archw_write(kind, m, 3, 1700000000, 2, &x, &e), &e);
    CHECK_OK(archw_write(kind, m, 3, 1700000000, 2, &y, &e), &e);
    CHECK(x.len == y.len && !memcmp(x.data, y.data, x.len), "kind %d: two writes differ", kind);
    struct archive *ar = archive_read_new();
    archive_read_support_filter_all(ar);
    archive_read_support_format_all(ar);
    CHECK(archive_read_open_memory(ar, x.data, x.len) == ARCHIVE_OK, "libarchive cannot open it");
    struct archive_entry *en;
    int n = 0;
    while (archive_read_next_header(ar, &en) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(en);
        CHECK_EQ_INT(archive_entry_mtime(en), 1700000000);
        if (n == 0)
            CHECK(archive_entry_filetype(en) == AE_IFDIR, "first member %s is not a folder", name);
        if (n > 0) {
            char buf[128] = {0};
            la_ssize_t got = archive_read_data(ar, buf, sizeof buf - 1);
            CHECK_STR(name, m[n].name);
            CHECK(got == (la_ssize_t)m[n].len && !memcmp(buf, m[n].data, m[n].len),
                  "member %s content differs", name);
        }
        n++;
    }
    CHECK_EQ_INT(n, 3);
    archive_read_free(ar);
    buf_free(&x);
    buf_free(&y);
}

static void test_tar_gz_members_read_back_in_order_with_fixed_mtime(void) { check_archive(ARCH_TAR_GZ); }
static void test_zip_members_read_back_in_order_with_fixed_mtime(void) { check_archive(ARCH_ZIP); }

/* ---------------------------------------------------------------- phrases */

static Ontology *onto(void)
{
    static Ontology *o;
    FvErr e = {0};
    if (!o && onto_load(&o, &e))
        fprintf(stderr, "ontology: %s\n", e.msg);
    return o;
}

static void test_phrase_templates_pick_alternatives_and_substitute_variables(void)
{
    const char *text = "key\tlang\ttext\n"
                       "s\ten\t{a|b} $F{ x| y}\n"
                       "t:one,two\tzh\t甲|乙\n";
    Phrases *p;
    FvErr e = {0};
    CHECK_OK(phrases_parse(&p, onto(), text, strlen(text), "t.tsv", &e), &e);
    if (!p)
        return;
    Rng r;
    rng_seed(&r, 1, 0);
    int seen[4] = {0};
    for (int i = 0; i < 200; i++) {
        Buf b = {0};
        PhraseVar v[] = {{"F", "nodule"}};
        phrase_expand(&b, phrase_pick(p, "s", NULL, LANG_EN, 0, &r), v, 1, &r);
        int k = (b.data[0] == 'b') * 2 + (strstr(b.data, " y") != NULL);
        seen[k]++;
        CHECK(strstr(b.data, "nodule") != NULL, "variable not substituted in '%s'", b.data);
        buf_free(&b);
    }
    CHECK(seen[0] && seen[1] && seen[2] && seen[3], "not every alternative was drawn");
    CHECK(phrase_count(p, "t", "two", LANG_ZH) == 1 && phrase_count(p, "t", "three", LANG_ZH) == 0,
          "comma-listed keys do not match their items only");
    Buf t = {0};
    phrase_term(&t, "nodule/nodules", 1, &r);
    CHECK_STR(t.data, "nodules");
    buf_free(&t);
    phrases_free(&p);
}

static void test_phrase_terms_outside_the_vocabulary_are_rejected(void)
{
    const char *text = "key\tlang\ttext\nterm:lung_nodule\ten\tnodule/nodules|blob/blobs\n";
    Phrases *p = NULL;
    FvErr e = {0};
    CHECK(phrases_parse(&p, onto(), text, strlen(text), "t.tsv", &e) != 0, "an unknown term passed");
    CHECK(strstr(e.msg, "'blob'") && strstr(e.msg, "t.tsv:2"), "message '%s' lacks term and line", e.msg);
    Phrases *real = NULL;
    CHECK_OK(phrases_load(&real, onto(), &e), &e);
    /* every task has English and Chinese terms, finding and impression wording */
    for (int t = 0; real && t < onto()->n_find; t++) {
        const char *id = onto()->find[t].id;
        char key[96];
        snprintf(key, sizeof key, "%s", id);
        if (!strcmp(id, "medical_material"))
            snprintf(key, sizeof key, "medical_material:pacemaker");
        for (int lang = 0; lang < 2; lang++) {
            CHECK(phrase_count(real, "term", key, lang) > 0, "task %s has no %s terms", id, lang ? "en" : "zh");
            CHECK(phrase_count(real, "find", id, lang) >= 2, "task %s has < 2 %s finding wordings", id,
                  lang ? "en" : "zh");
        }
    }
    phrases_free(&real);
}

/* ---------------------------------------------------------------- lesion table */

static void test_lesion_table_loads_and_rejects_bad_rows(void)
{
    LesionTable *t = NULL;
    FvErr e = {0};
    CHECK_OK(lesion_table_load(&t, onto(), &e), &e);
    lesion_table_free(&t);
    const char *hdr = "task\teffect\ttarget\talt\tsize_mm\thu_plain\thu_enh\tcount\tparam\tplace\tlabel\n";
    char text[512];
    snprintf(text, sizeof text, "%slung_nodule\tsphere\tlung\t0\t12..x\t1\t1\t1\t-\tany\tkeep\n", hdr);
    CHECK(lesion_table_parse(&t, onto(), text, strlen(text), "l.tsv", &e) != 0, "bad range passed");
    CHECK(strstr(e.msg, "l.tsv:2") && strstr(e.msg, "size_mm"), "message '%s'", e.msg);
    snprintf(text, sizeof text, "%sno_task\tsphere\tlung\t0\t12\t1\t1\t1\t-\tany\tkeep\n", hdr);
    CHECK(lesion_table_parse(&t, onto(), text, strlen(text), "l.tsv", &e) != 0, "unknown task passed");
    snprintf(text, sizeof text, "%slung_nodule\tsphere\tlung\t0\t12..20\t1\t1\t1\t-\tany\tkeep\n", hdr);
    CHECK(lesion_table_parse(&t, onto(), text, strlen(text), "l.tsv", &e) != 0,
          "a table missing tasks passed");
    CHECK(strstr(e.msg, "has no row") != NULL, "message '%s'", e.msg);
}

/* ---------------------------------------------------------------- phantom and lesions */

static TissueTable g_tt;

static void scene_for(Scene *s, const Body *b, double sp_xy, double sp_z, int enhanced)
{
    (void)b;
    int nx = (int)(400 / sp_xy), ny = (int)(330 / sp_xy), nz = (int)(760 / sp_z);
    double org[3] = {-(nx - 1) * sp_xy / 2, -205, -400};
    double sp[3] = {sp_xy, sp_xy, sp_z};
    FvErr e = {0};
    CHECK_OK(scene_alloc(s, nx, ny, nz, org, sp, &e), &e);
    s->tt = &g_tt;
    s->enhanced = enhanced;
}

static void test_phantom_labels_lobes_and_hu_are_plausible(void)
{
    FvErr e = {0};
    CHECK_OK(tissue_table_load(&g_tt, &e), &e);
    Rng r;
    rng_seed(&r, 7, 0);
    Body b;
    body_init(&b, &r);
    Scene s;
    scene_for(&s, &b, 6, 8, 1);
    Rng tex;
    rng_seed(&tex, 7, 1);
    phantom_render(&b, &s, &tex);
    scene_stats(&s);
    for (int l = 1; l < 256; l++)
        if (s.count[l])
            CHECK(l <= 117 && l != 22, "label %d outside the phantom's TotalSegmentator ids", l);
    for (int l = TS_LUNG_UL; l <= TS_LUNG_RL; l++)
        CHECK(s.count[l] > 50, "lobe %d has %lld voxels", l, (long long)s.count[l]);
    int must[] = {TS_HEART, TS_AORTA, TS_LIVER, TS_SPLEEN, TS_KIDNEY_L, TS_KIDNEY_R, TS_STOMACH,
                  TS_PANCREAS, TS_GALLBLADDER, TS_ESOPHAGUS, TS_TRACHEA, TS_BLADDER, TS_COLON,
                  TS_SMALL_BOWEL, TS_ADRENAL_L, TS_ADRENAL_R, TS_LAA, TS_T1, TS_L5, TS_RIB_L1 + 6,
                  TS_RIB_R1 + 6, TS_THYROID};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
        CHECK(s.count[must[i]] > 0, "structure %d missing", must[i]);
    /* the heart lies left (x < 0) and anterior to the spine; the liver right */
    double hx = s.org[0] + s.sp[0] * 0.5 * (s.lo[TS_HEART][0] + s.hi[TS_HEART][0]);
    double lx = s.org[0] + s.sp[0] * 0.5 * (s.lo[TS_LIVER][0] + s.hi[TS_LIVER][0]);
    CHECK(hx < 0 && lx > 0, "heart centre x %.0f, liver %.0f (RAS: right is +x)", hx, lx);
    CHECK(s.lo[TS_LUNG_RL][2] < s.lo[TS_LUNG_RU][2], "lower lobe is not below the upper lobe");
    double sum_lung = 0, sum_liver = 0, air = 0;
    int64_t nl = 0, nv = 0, na = 0;
    size_t n = (size_t)s.nx * s.ny * s.nz;
    for (size_t i = 0; i < n; i++) {
        if (s.lab[i] >= 10 && s.lab[i] <= 14) {
            sum_lung += s.hu[i];
            nl++;
        } else if (s.lab[i] == TS_LIVER) {
            sum_liver += s.hu[i];
            nv++;
        }
        if (s.tis[i] == T_AIR) {
            air += s.hu[i];
            na++;
        }
    }
    CHECK(sum_lung / nl < -700, "mean lung HU %.0f", sum_lung / nl);
    CHECK(fabs(sum_liver / nv - 108) < 25, "mean enhanced liver HU %.0f", sum_liver / nv);
    CHECK(air / na < -990, "air HU %.0f", air / na);
    scene_free(&s);
}

/* Every task changes the image: voxels whose HU moves by >= ORACLE_MIN_HU
 * compared with the same patient without it. Sizes span what CT shows (a
 * 4 mm nodule, a 2 mm calcification), so whether the model's input sees a
 * change is the oracle's question (truth/oracle.csv), not this test's. */
static void test_every_task_changes_the_image(void)
{
    FvErr e = {0};
    LesionTable *lt = NULL;
    CHECK_OK(lesion_table_load(&lt, onto(), &e), &e);
    if (!lt)
        return;
    const Ontology *o = onto();
    Rng pr;
    rng_seed(&pr, 21, 0);
    Body base;
    body_init(&base, &pr);
    Scene s0;
    scene_for(&s0, &base, 5, 5, 1);
    Rng tex;
    rng_seed(&tex, 21, 99);
    phantom_render(&base, &s0, &tex);
    size_t n = (size_t)s0.nx * s0.ny * s0.nz;
    double vox = s0.sp[0] * s0.sp[1] * s0.sp[2];
    int weak = 0;
    for (int t = 0; t < o->n_find; t++) {
        Body b = base;
        Scene s;
        scene_for(&s, &b, 5, 5, 1);
        LesionSet *ls = calloc(1, sizeof *ls);
        lesions_init(ls, lt, o, &g_tt, 1, s.org[2], s.org[2] + (s.nz - 1) * s.sp[2]);
        Rng r;
        rng_seed(&r, 5, (uint64_t)t);
        int planned = lesions_add(ls, t, &b, &r);
        rng_seed(&tex, 21, 99);
        phantom_render(&b, &s, &tex);
        lesions_paint(ls, &b, &s, &r);
        int64_t changed = 0;
        for (size_t i = 0; i < n; i++)
            changed += abs(s.hu[i] - s0.hu[i]) >= ORACLE_MIN_HU;
        CHECK(planned && lesions_shown(ls, t), "task %s was not placed", o->find[t].id);
        CHECK(changed > 0, "task %s changes no voxel by >= %g HU", o->find[t].id, ORACLE_MIN_HU);
        if (changed * vox < 3000)
            weak++;
        if (log_get_level() >= LOG_DEBUG)
            fprintf(stderr, "  %-36s %8.0f mm^3 changed\n", o->find[t].id, changed * vox);
        free(ls);
        scene_free(&s);
    }
    printf("every task changes the image; %d tasks change < 3 cm^3\n", weak);
    scene_free(&s0);
    lesion_table_free(&lt);
}

/* ----------------------------------------------------------------- oracle */

/* A 64^3 scene of 1 mm voxels, label 1 and 0 HU everywhere (soft tissue),
 * sampled by an 8^3 input with no margin: sample q of an axis sits at voxel
 * 8 q + 3.5, between voxels 8 q + 3 and 8 q + 4. */
static void oracle_scene(Scene *s, int16_t **before)
{
    FvErr e = {0};
    const double org[3] = {0, 0, 0}, sp[3] = {1, 1, 1};
    CHECK_OK(scene_alloc(s, 64, 64, 64, org, sp, &e), &e);
    memset(s->lab, 1, 64 * 64 * 64);
    scene_stats(s);
    *before = calloc(64 * 64 * 64, sizeof **before);
}

static void test_oracle_counts_the_input_points_a_change_moves(void)
{
    Scene s;
    int16_t *b;
    oracle_scene(&s, &b);
    if (!s.hu || !b)
        return;
    OracleGrid g;
    const int in[3] = {8, 8, 8};
    const double margin[3] = {0, 0, 0};
    CHECK(oracle_grid_init(&g, &s, in, margin, -1150, 350) == 0, "grid of a labelled scene");
    CHECK(g.n[0] == 8 && g.i0[0][0] == 3 && fabs(g.w1[0][0] - 0.5) < 1e-6,
          "sample 0 at voxel 3.5: i0 %d w1 %g", g.i0[0][0], g.w1[0][0]);
    /* one voxel between the samples' neighbours: nothing on the input */
    s.hu[scene_idx(&s, 0, 0, 0)] = 1000;
    CHECK(oracle_changed(&g, &s, b, s.hu) == 0, "a voxel between samples moves no sample");
    s.hu[scene_idx(&s, 0, 0, 0)] = 0;
    /* a neighbour of sample (0, 0, 0) (weight 1/8) by 300 HU: 37.5 HU there */
    s.hu[scene_idx(&s, 3, 3, 3)] = 300;
    CHECK(oracle_changed(&g, &s, b, s.hu) == 1, "a 300 HU voxel next to a sample moves it");
    /* by 100 HU: 12.5 HU, under ORACLE_MIN_HU */
    s.hu[scene_idx(&s, 3, 3, 3)] = 100;
    CHECK(oracle_changed(&g, &s, b, s.hu) == 0, "a change under %g HU at the sample is not seen",
          ORACLE_MIN_HU);
    /* above the window both before and after: clipped to the same value */
    for (size_t i = 0; i < (size_t)64 * 64 * 64; i++)
        b[i] = 500;
    for (size_t i = 0; i < (size_t)64 * 64 * 64; i++)
        s.hu[i] = 2000;
    CHECK(oracle_changed(&g, &s, b, s.hu) == 0, "changes above the HU window are not seen");
    unsigned char want[256] = {0};
    want[1] = 1;
    CHECK(oracle_points(&g, &s, want) == 512, "all 512 points are label 1");
    want[1] = 0;
    CHECK(oracle_points(&g, &s, want) == 0, "no point is another label");
    free(b);
    scene_free(&s);
}

/* ---------------------------------------------------------------- reports */

static int contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *h = hay; *h; h++)
        if (!strncasecmp(h, needle, n))
            return 1;
    return 0;
}

static int mentions_task(const char *text, const Finding *f)
{
    if (contains_ci(text, f->en) || strstr(text, f->zh))
        return 1;
    for (int i = 0; i < f->en_syn.n; i++)
        if (contains_ci(text, f->en_syn.s[i]))
            return 1;
    for (int i = 0; i < f->zh_syn.n; i++)
        if (strstr(text, f->zh_syn.s[i]))
            return 1;
    return 0;
}

static void test_reports_name_every_reported_finding_in_the_vocabulary(void)
{
    FvErr e = {0};
    const Ontology *o = onto();
    LesionTable *lt = NULL;
    Phrases *ph = NULL;
    CHECK_OK(lesion_table_load(&lt, o, &e), &e);
    CHECK_OK(phrases_load(&ph, o, &e), &e);
    if (!lt || !ph)
        return;
    double cover[256];
    for (int a = 0; a < 256; a++)
        cover[a] = 1;
    int checked = 0, with_imp = 0;
    for (int k = 0; k < 400; k++) {
        LesionSet *ls = calloc(1, sizeof *ls);
        lesions_init(ls, lt, o, &g_tt, 1, -400, 300);
        Rng r;
        rng_seed(&r, 77, (uint64_t)k);
        /* a few shown tasks (status set directly: the text is under test here) */
        for (int j = 0; j < 4; j++)
            ls->status[rng_below(&r, (uint64_t)o->n_find)] = 1;
        ReportInput in;
        memset(&in, 0, sizeof in);
        in.o = o;
        in.ph = ph;
        in.lang = k % 2 ? LANG_EN : LANG_ZH;
        in.style = k % 3 == 0 ? REPORT_CTRATE : REPORT_HOSPITAL;
        in.ls = ls;
        in.cover = cover;
        in.scan_type = "chest_abdomen";
        in.enhanced = 1;
        in.thickness_mm = 5;
        in.noise_rate = 0.03;
        in.name = "N";
        in.pid = in.date = in.dob = in.phone = in.sex = in.age = in.inst = in.doc = in.doc2 = "x";
        Report rep;
        CHECK_OK(report_write(&in, &r, &rep, &e), &e);
        for (int t = 0; t < o->n_find; t++) {
            if (rep.reported[t] != 1 && rep.reported[t] != -1)
                continue;
            checked++;
            CHECK(mentions_task(rep.findings.data, &o->find[t]),
                  "report %d: findings state %s but name none of its terms:\n%s", k, o->find[t].id,
                  rep.findings.data);
            if (mentions_task(rep.impression.data, &o->find[t]))
                with_imp++;
            CHECK(rep.status[o->find[t].anatomy] == 1, "report %d: %s reported but %s not abnormal",
                  k, o->find[t].id, o->anat[o->find[t].anatomy].id);
        }
        CHECK(rep.impression.len > 0 && rep.findings.len > 0, "report %d has an empty section", k);
        if (in.style == REPORT_HOSPITAL)
            CHECK(strstr(rep.text.data, rep.impression.data) != NULL, "impression not in the text");
        report_free(&rep);
        free(ls);
    }
    CHECK(checked > 300, "only %d reported findings checked", checked);
    CHECK(with_imp > checked * 8 / 10, "only %d of %d impression items name their finding's term",
          with_imp, checked);
    phrases_free(&ph);
    lesion_table_free(&lt);
}

/* ---------------------------------------------------------------- a whole corpus */

static int rm_cb(const char *p, const struct stat *sb, int f, struct FTW *w)
{
    (void)sb;
    (void)f;
    (void)w;
    return remove(p);
}

static void tree_hash(const char *root, const char *rel, Sha256 *h)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    struct dirent **list;
    int n = scandir(path, &list, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        const char *nm = list[i]->d_name;
        if (nm[0] != '.') {
            char sub[4096];
            snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", nm);
            char full[8192];
            snprintf(full, sizeof full, "%s/%s", root, sub);
            sha256_update(h, sub, strlen(sub));
            if (fs_is_dir(full))
                tree_hash(root, sub, h);
            else {
                char *data;
                size_t len;
                FvErr e = {0};
                if (fs_read_file(full, (size_t)1 << 30, &data, &len, &e) == 0) {
                    sha256_update(h, data, len);
                    free(data);
                }
            }
        }
        free(list[i]);
    }
    free(list);
}

static void test_tiny_corpus_is_identical_for_one_and_two_threads(void)
{
    char d1[] = "/tmp/fvlm-synth-test-XXXXXX", d2[] = "/tmp/fvlm-synth-test-XXXXXX";
    CHECK(mkdtemp(d1) && mkdtemp(d2), "cannot make temp folders");
    log_set_level(LOG_ERROR);
    SynthOptions o;
    synth_options_default(&o);
    o.studies = 8;
    o.seed = 3;
    o.size = SYNTH_TINY;
    o.out = d1;
    SynthStats st;
    FvErr e = {0};
    double t0 = now_seconds();
    CHECK_OK(synth_run(&o, &st, &e), &e);
    double dt = now_seconds() - t0;
    o.out = d2;
    o.threads = 2;
    CHECK_OK(synth_run(&o, &st, &e), &e);
    Sha256 h1, h2;
    sha256_init(&h1);
    sha256_init(&h2);
    tree_hash(d1, "", &h1);
    tree_hash(d2, "", &h2);
    unsigned char a[32], b[32];
    sha256_final(&h1, a);
    sha256_final(&h2, b);
    CHECK(!memcmp(a, b, 32), "threads 1 and 2 wrote different corpora");
    CHECK_EQ_INT(st.studies, 8);
    CHECK(st.lesions > 8, "only %lld lesions in 8 studies", (long long)st.lesions);
    printf("8 tiny studies in %.3f s\n", dt);
    /* a second run into the same folder needs --force */
    o.threads = 1;
    CHECK(synth_run(&o, &st, &e) != 0 && strstr(e.msg, "--force"), "overwrote without --force");
    o.force = 1;
    CHECK_OK(synth_run(&o, &st, &e), &e);
    nftw(d1, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    nftw(d2, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    if (getenv("FVLM_TEST_VERBOSE"))
        log_set_level(LOG_DEBUG);
    RUN(test_dicom_explicit_vr_uses_short_and_long_length_forms);
    RUN(test_dicom_implicit_vr_has_32_bit_lengths_and_space_padding);
    RUN(test_dicom_file_meta_group_length_and_transfer_syntax);
    RUN(test_dicom_elements_out_of_order_are_refused);
    RUN(test_dicom_uid_is_a_deterministic_2_25_uid);
    RUN(test_nifti_quaternion_reproduces_every_flipped_affine);
    RUN(test_nifti_header_fields_extension_and_voxels);
    RUN(test_nifti_label_table_lists_every_named_id);
    RUN(test_gzip_has_no_timestamp_and_inflates_to_the_input);
    RUN(test_tar_gz_members_read_back_in_order_with_fixed_mtime);
    RUN(test_zip_members_read_back_in_order_with_fixed_mtime);
    RUN(test_phrase_templates_pick_alternatives_and_substitute_variables);
    RUN(test_phrase_terms_outside_the_vocabulary_are_rejected);
    RUN(test_lesion_table_loads_and_rejects_bad_rows);
    RUN(test_phantom_labels_lobes_and_hu_are_plausible);
    RUN(test_every_task_changes_the_image);
    RUN(test_oracle_counts_the_input_points_a_change_moves);
    RUN(test_reports_name_every_reported_finding_in_the_vocabulary);
    RUN(test_tiny_corpus_is_identical_for_one_and_two_threads);
    Ontology *o = onto();
    onto_free(&o);
    return test_finish();
}
