#include "synth.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <iconv.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archw.h"
#include "buf.h"
#include "csv.h"
#include "dicomw.h"
#include "fsutil.h"
#include "json.h"
#include "lesions.h"
#include "log.h"
#include "niftiw.h"
#include "ontology.h"
#include "phantom.h"
#include "phrases.h"
#include "report.h"
#include "rng.h"
#include "schemas.h"
#include "totalseg.h"
#include "vol.h"

/* CT-RATE's labels.csv columns, in its order (reference/ctrate_labels.tsv). */
static const char *const CTRATE_LABELS[18] = {
    "Medical material", "Arterial wall calcification", "Cardiomegaly", "Pericardial effusion",
    "Coronary artery wall calcification", "Hiatal hernia", "Lymphadenopathy", "Emphysema",
    "Atelectasis", "Lung nodule", "Lung opacity", "Pulmonary fibrotic sequela", "Pleural effusion",
    "Mosaic attenuation pattern", "Peribronchial thickening", "Consolidation", "Bronchiectasis",
    "Interlobular septal thickening",
};

/* gzip level of every stream synth writes: libdeflate's level 2 compresses
 * these volumes as well as level 6 (ratio 1.99 vs 2.01 on a DICOM series)
 * at three times the speed (bench/bench_synth measures the rest). */
#define GZ_LEVEL 2

/* Streams of the seed besides study i's stream i. */
#define PLAN_STREAM 0x504C414E00000000ull
#define PATIENT_STREAM 0x5041544900000000ull
#define ORACLE_STREAM 0x4f52434c00000000ull /* texture of the oracle's scratch renders */

void synth_options_default(SynthOptions *o)
{
    memset(o, 0, sizeof *o);
    o->studies = 8;
    o->layout = SYNTH_BOTH;
    o->lang = SYNTH_LANG_MIX;
    o->size = SYNTH_SMALL;
    o->test_fraction = 0.2;
    o->noise_rate = 0.03;
    o->oracle_input[0] = 32;
    o->oracle_input[1] = 64;
    o->oracle_input[2] = 64;
    o->threads = 1;
}

/* ------------------------------------------------------------------------ */
/* Plan: patients, splits, layouts, languages                                 */
/* ------------------------------------------------------------------------ */

typedef struct Plan {
    int64_t patient;        /* global patient number */
    int scan;               /* 0 for the patient's first scan, 1 for 'b', ... */
    int test;
    int ctrate;             /* layout of this study */
    int lang;               /* LANG_ZH or LANG_EN */
    int64_t split_pid;      /* CT-RATE patient number within its split (1-based) */
} Plan;

static int plan_make(const SynthOptions *o, Plan **out, FvErr *e)
{
    Plan *p = calloc((size_t)o->studies, sizeof *p);
    if (!p)
        return err_set(e, FV_ENOMEM, "synth: cannot plan %lld studies", (long long)o->studies);
    Rng r;
    rng_seed(&r, o->seed, PLAN_STREAM);
    /* exact test fraction spread evenly over patients, with a random phase */
    double phase = rng_uniform(&r);
    int64_t patients = 0, pid_train = 0, pid_test = 0;
    int cur_test = 0, cur_ct = 0, cur_lang = 0, cur_scans = 0;
    int64_t cur_pid = 0;
    for (int64_t i = 0; i < o->studies; i++) {
        int again = i > 0 && cur_scans < 3 && rng_bernoulli(&r, 0.15);
        int ct = o->layout == SYNTH_CTRATE ? 1 : o->layout == SYNTH_HOSPITAL ? 0 : rng_bernoulli(&r, 0.5);
        int lang = o->lang == SYNTH_LANG_ZH ? LANG_ZH : o->lang == SYNTH_LANG_EN ? LANG_EN
                   : rng_bernoulli(&r, 0.5) ? LANG_ZH : LANG_EN;
        if (!again) {
            int64_t k = patients++;
            cur_test = floor((double)(k + 1) * o->test_fraction + phase) >
                       floor((double)k * o->test_fraction + phase);
            cur_ct = ct;
            cur_lang = cur_ct ? LANG_EN : lang;
            cur_scans = 0;
            cur_pid = cur_test ? ++pid_test : ++pid_train;
        }
        p[i].patient = patients - 1;
        p[i].scan = cur_scans++;
        p[i].test = cur_test;
        p[i].ctrate = cur_ct;
        p[i].lang = cur_lang;
        p[i].split_pid = cur_pid;
    }
    *out = p;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Small helpers                                                              */
/* ------------------------------------------------------------------------ */

/* Days since 1970-01-01 to a civil date (proleptic Gregorian). */
static void civil(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static double round_to(double v, double q) { return floor(v / q + 0.5) * q; }

typedef struct Ctx Ctx;

typedef struct StudyOut {
    char *truth, *labels, *oracle, *rep_row, *lab_row, *meta_row;
    int64_t files, bytes, lesions, present, reported;
    int ctrate, test;
} StudyOut;

struct Ctx {
    const SynthOptions *opt;
    Ontology *o;
    LesionTable *lt;
    Phrases *ph;
    TissueTable tt;
    char *ts_names[TS_NUM];
    Plan *plan;
    StudyOut *res;
    atomic_llong next;
    atomic_llong done;
    atomic_int failed;
    pthread_mutex_t lock;
    FvErr err;
};

static int write_file(Ctx *c, StudyOut *so, const char *rel, const void *data, size_t len,
                      FvErr *e)
{
    char path[4096], dir[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", c->opt->out, rel);
    fs_dirname(path, dir, sizeof dir);
    if (fs_mkdir_p(dir, e))
        return -1;
    /* a temporary name then rename: an interrupted run never leaves half a file under the final name */
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return err_set(e, FV_EIO, "%s: %s", tmp, strerror(errno));
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, (const char *)data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int er = errno;
            close(fd);
            unlink(tmp);
            return err_set(e, FV_EIO, "%s: write failed: %s", path, strerror(er));
        }
        off += (size_t)w;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        int er = errno;
        unlink(tmp);
        return err_set(e, FV_EIO, "%s: %s", path, strerror(er));
    }
    so->files++;
    so->bytes += (int64_t)len;
    return 0;
}

static int to_gb18030(const char *in, size_t n, Buf *out, FvErr *e)
{
    iconv_t cd = iconv_open("GB18030", "UTF-8");
    if (cd == (iconv_t)-1)
        return err_set(e, FV_EUNSUPPORTED, "synth: iconv has no GB18030 converter: %s", strerror(errno));
    if (buf_reserve(out, n * 2 + 16)) {
        iconv_close(cd);
        return err_set(e, FV_ENOMEM, "synth: out of memory");
    }
    char *src = (char *)in, *dst = out->data + out->len;
    size_t sl = n, dl = out->cap - out->len - 1;
    size_t rc = iconv(cd, &src, &sl, &dst, &dl);
    iconv_close(cd);
    if (rc == (size_t)-1)
        return err_set(e, FV_EINTERNAL, "synth: report text does not convert to GB18030: %s",
                       strerror(errno));
    out->len = (size_t)(dst - out->data);
    out->data[out->len] = 0;
    return 0;
}

/* An axis-aligned grid: internal voxel (i, j, k) at world RAS org + (i, j, k) * sp. */
typedef struct Grid {
    int n[3];
    double sp[3];
    double org[3];
} Grid;

/* The affine of the array that flips the grid's axes where flip[a] is set. */
static void grid_affine(const Grid *g, const int flip[3], double A[4][4])
{
    memset(A, 0, sizeof(double) * 16);
    for (int a = 0; a < 3; a++) {
        A[a][a] = flip[a] ? -g->sp[a] : g->sp[a];
        A[a][3] = g->org[a] + (flip[a] ? (g->n[a] - 1) * g->sp[a] : 0);
    }
    A[3][3] = 1;
}

static void *flip_copy(const void *src, size_t esz, const int n[3], const int flip[3])
{
    size_t total = (size_t)n[0] * n[1] * n[2], row = (size_t)n[0];
    unsigned char *dst = malloc(total * esz);
    if (!dst)
        return NULL;
    for (int k = 0; k < n[2]; k++) {
        int ks = flip[2] ? n[2] - 1 - k : k;
        for (int j = 0; j < n[1]; j++) {
            int js = flip[1] ? n[1] - 1 - j : j;
            size_t so = ((size_t)ks * n[1] + js) * row, d = ((size_t)k * n[1] + j) * row;
            if (!flip[0])
                memcpy(dst + d * esz, (const unsigned char *)src + so * esz, row * esz);
            else if (esz == 1) {
                const uint8_t *s = (const uint8_t *)src + so;
                uint8_t *o = dst + d;
                for (size_t i = 0; i < row; i++)
                    o[i] = s[row - 1 - i];
            } else {
                const int16_t *s = (const int16_t *)src + so;
                int16_t *o = (int16_t *)dst + d;
                for (size_t i = 0; i < row; i++)
                    o[i] = s[row - 1 - i];
            }
        }
    }
    return dst;
}

static void json_affine(JsonW *w, double A[4][4])
{
    jw_arr(w);
    for (int r = 0; r < 4; r++) {
        jw_arr(w);
        for (int c = 0; c < 4; c++)
            jw_num(w, round_to(A[r][c], 1e-6));
        jw_arr_end(w);
    }
    jw_arr_end(w);
}

static void json_geometry(JsonW *w, const int dims[3], double A[4][4], const char *header)
{
    jw_obj(w);
    jw_key(w, "dims");
    jw_arr(w);
    for (int a = 0; a < 3; a++)
        jw_int(w, dims[a]);
    jw_arr_end(w);
    jw_key(w, "affine");
    json_affine(w, A);
    char code[4];
    vol_orient_code(A, code);
    jw_key(w, "orientation");
    jw_str(w, code);
    jw_key(w, "header");
    jw_str(w, header);
}

static void ds(char *out, size_t n, double v)
{
    snprintf(out, n, "%.10g", fabs(v) < 5e-7 ? 0.0 : v);
}

/* ------------------------------------------------------------------------ */
/* One study                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct SynthStudy {
    int64_t index;
    const Plan *plan;
    Body body;
    Scene scene;
    Grid grid;              /* world geometry of the scene */
    double off[3];          /* world = body + off */
    const char *scan_type;
    int enhanced;
    double thickness;
    LesionSet *ls;
    Report rep;
    double cover[256];
    /* identifiers and fake personal data */
    char study_id[80], patient_id[48], name_local[64], name_dicom[96], mrn[16], accession[24];
    char date[32], date_dicom[32], time_dicom[32], dob[32], dob_dicom[32], phone[32], age[16];
    char prior[32], inst[128], doc[64], doc2[64];
    int64_t epoch_day;
    char study_uid[64], series_uid[64], frame_uid[64];
    char rel_path[512];
} SynthStudy;

/* Personal data of a patient (its own stream: the same in every scan). */
static void patient_identity(Ctx *c, SynthStudy *s, Rng *pr, int lang)
{
    const char *nm = phrase_pick(c->ph, "name", NULL, lang, 0, pr);
    const char *bar = nm ? strchr(nm, '|') : NULL;
    if (bar) {
        snprintf(s->name_local, sizeof s->name_local, "%.*s", (int)(bar - nm), nm);
        snprintf(s->name_dicom, sizeof s->name_dicom, "%s", bar + 1);
    } else {
        snprintf(s->name_local, sizeof s->name_local, "Anonymous");
        snprintf(s->name_dicom, sizeof s->name_dicom, "ANONYMOUS");
    }
    if (lang == LANG_ZH && bar && rng_bernoulli(pr, 0.5)) {
        /* alphabetic=ideographic person name, as Chinese PACS write it */
        size_t fl = 3; /* one CJK family-name character in UTF-8 */
        char ideo[64];
        snprintf(ideo, sizeof ideo, "%.*s^%s", (int)fl, s->name_local, s->name_local + fl);
        size_t l = strlen(s->name_dicom);
        snprintf(s->name_dicom + l, sizeof s->name_dicom - l, "=%s", ideo);
    }
    snprintf(s->mrn, sizeof s->mrn, "%08llu", (unsigned long long)(rng_u64(pr) % 90000000ull + 10000000ull));
    if (lang == LANG_ZH)
        snprintf(s->phone, sizeof s->phone, "1%d%09llu", 3 + (int)rng_below(pr, 6),
                 (unsigned long long)(rng_u64(pr) % 1000000000ull));
    else
        snprintf(s->phone, sizeof s->phone, "(%03d) 555-%04d", 200 + (int)rng_below(pr, 700),
                 (int)rng_below(pr, 10000));
    const char *in = phrase_pick(c->ph, "institution", NULL, lang, 0, pr);
    snprintf(s->inst, sizeof s->inst, "%s", in ? in : "Radiology");
}

static void fmt_date(int64_t day, char *iso, size_t ni, char *dcm, size_t nd)
{
    int y, m, d;
    civil(day, &y, &m, &d);
    snprintf(iso, ni, "%04d-%02d-%02d", y, m, d);
    snprintf(dcm, nd, "%04d%02d%02d", y, m, d);
}

/* Coverage as the mask shows it (what align's regions see): an anatomy is
 * covered when its label map holds any voxel of it, whole when none of them
 * lies on the volume's border; an anatomy without a mask of its own by its
 * region_of anatomies. */
static void compute_covered(const Ontology *o, const Scene *sc, unsigned char *covered,
                            unsigned char *whole)
{
    for (int a = 0; a < o->n_anat; a++) {
        const Anatomy *an = &o->anat[a];
        int cov = 0, touch = 0;
        for (int k = 0; k < an->n_ts; k++) {
            int id = an->ts_ids[k];
            if (id <= 0 || id > 255 || !sc->count[id])
                continue;
            cov = 1;
            if (sc->lo[id][0] == 0 || sc->lo[id][1] == 0 || sc->lo[id][2] == 0 ||
                sc->hi[id][0] == sc->nx - 1 || sc->hi[id][1] == sc->ny - 1 || sc->hi[id][2] == sc->nz - 1)
                touch = 1;
        }
        covered[a] = (unsigned char)cov;
        whole[a] = (unsigned char)(cov && !touch);
    }
    for (int a = 0; a < o->n_anat; a++) {
        const Anatomy *an = &o->anat[a];
        if (an->n_ts || !an->n_region_of)
            continue;
        int cov = 0, wh = 1;
        for (int k = 0; k < an->n_region_of; k++) {
            cov |= covered[an->region_of[k]];
            wh &= whole[an->region_of[k]] || !covered[an->region_of[k]];
        }
        covered[a] = (unsigned char)cov;
        whole[a] = (unsigned char)(cov && wh);
    }
}

/* Fraction of each anatomy's height inside the scan (by the body model). */
static void compute_cover(const Ontology *o, const Body *b, double zlo, double zhi, double *cover)
{
    for (int a = 0; a < o->n_anat; a++) {
        const Anatomy *an = &o->anat[a];
        double z0 = 1e9, z1 = -1e9;
        for (int i = 0; i < an->n_ts; i++) {
            double l, h;
            if (body_label_zrange(b, an->ts_ids[i], &l, &h)) {
                if (l < z0)
                    z0 = l;
                if (h > z1)
                    z1 = h;
            }
        }
        cover[a] = z1 > z0 ? fmax(0, fmin(z1, zhi) - fmax(z0, zlo)) / (z1 - z0) : 0;
    }
    for (int a = 0; a < o->n_anat; a++) {
        const Anatomy *an = &o->anat[a];
        if (an->n_ts || !an->n_region_of)
            continue;
        double best = 0;
        for (int k = 0; k < an->n_region_of; k++)
            best = fmax(best, cover[an->region_of[k]]);
        cover[a] = best;
    }
}

/* Scan range, phase and grid for the study's layout and size. */
static void choose_scan(Ctx *c, SynthStudy *s, Rng *r)
{
    const SynthOptions *opt = c->opt;
    const Body *b = &s->body;
    double u = rng_uniform(r);
    s->scan_type = s->plan->ctrate || u < 0.55 ? "chest" : u < 0.85 ? "chest_abdomen" : "abdomen";
    double top, bottom;
    if (!strcmp(s->scan_type, "chest")) {
        top = rng_range(r, 235, 285);
        bottom = rng_range(r, -110, -40);
        s->enhanced = rng_bernoulli(r, s->plan->ctrate ? 0.2 : 0.4);
    } else if (!strcmp(s->scan_type, "chest_abdomen")) {
        top = rng_range(r, 230, 275);
        bottom = rng_range(r, -250, -200);
        s->enhanced = rng_bernoulli(r, 0.9);
    } else {
        top = rng_range(r, 30, 80);
        bottom = rng_range(r, -380, -330);
        s->enhanced = rng_bernoulli(r, 0.9);
    }
    top *= b->sz;
    bottom *= b->sz;
    /* the widest cross-section decides the field of view */
    double amax = 0, cy0 = 0, bamax = 0, bpmax = 0;
    for (double z = bottom; z <= top; z += 10) {
        double cy, a, ba, bp;
        body_outline(b, z, &cy, &a, &ba, &bp);
        if (a > amax)
            amax = a;
        if (ba > bamax)
            bamax = ba;
        if (bp > bpmax)
            bpmax = bp;
        cy0 = cy;
    }
    (void)cy0;
    int nx, ny, nz;
    double spx, spz;
    double fov = 2 * amax * rng_range(r, 1.06, 1.22) + 20;
    if (opt->size == SYNTH_TINY) {
        nx = 48;
        ny = 40;
        nz = 24;
        spx = round_to(fov / nx, 0.001);
        spz = round_to((top - bottom) / (nz - 1), 0.001);
    } else if (opt->size == SYNTH_SMALL) {
        nx = ny = 110 + (int)rng_below(r, 31);
        spx = round_to(fmin(3.5, fmax(2.5, fov / nx)), 0.001);
        static const double zs[3] = {4.0, 4.5, 5.0};
        spz = zs[rng_below(r, 3)];
        nz = (int)((top - bottom) / spz) + 1;
        if (nz > 100) {
            spz = 5.0;
            nz = (int)((top - bottom) / spz) + 1;
            if (nz > 100)
                nz = 100;
        }
        if (nz < 50) {
            spz = 4.0;
            nz = (int)((top - bottom) / spz) + 1;
            if (nz < 50)
                nz = 50;
        }
    } else {
        nx = ny = 512;
        spx = round_to(fmin(0.95, fmax(0.6, fov / nx)), 0.0001);
        static const double zs[5] = {1.0, 1.25, 2.0, 3.0, 5.0};
        spz = zs[rng_below(r, 5)];
        nz = (int)((top - bottom) / spz) + 1;
        while (nz > 400) {
            spz *= 2;
            nz = (int)((top - bottom) / spz) + 1;
        }
    }
    s->thickness = spz;
    double spy = spx;
    /* the field of view is centred near the body, the table below it */
    double cx = rng_range(r, -8, 8), cyb = -10 * b->sy + rng_range(r, -10, 10) - 15;
    double org[3] = {cx - (nx - 1) * spx / 2, cyb - (ny - 1) * spy / 2, top - (nz - 1) * spz};
    /* tiny grids are coarse and rectangular: keep the whole outline inside */
    if (opt->size == SYNTH_TINY) {
        spy = round_to(fmax(spx, (bamax + bpmax + 40) / ny), 0.001);
        org[1] = cyb - (ny - 1) * spy / 2;
    }
    double sp[3] = {spx, spy, spz};
    /* scanner coordinates: the body sits somewhere on the table; keep the
     * world origin of voxel 0 on a 0.01 mm lattice so DICOM decimal strings
     * and the truth agree exactly */
    s->off[0] = round_to(rng_range(r, -20, 20), 0.01);
    s->off[1] = round_to(rng_range(r, -40, 40), 0.01);
    s->off[2] = round_to(rng_range(r, -600, 100), 0.01);
    for (int a = 0; a < 3; a++) {
        org[a] = round_to(org[a], 0.01);
        s->grid.org[a] = round_to(org[a] + s->off[a], 0.01);
        s->grid.sp[a] = sp[a];
    }
    s->grid.n[0] = nx;
    s->grid.n[1] = ny;
    s->grid.n[2] = nz;
    FvErr e2 = {0};
    if (scene_alloc(&s->scene, nx, ny, nz, org, sp, &e2))
        s->scene.lab = NULL;
}

/* ------------------------------------------------------------------------ */
/* Hospital layout                                                            */
/* ------------------------------------------------------------------------ */

static void dicom_common(const SynthStudy *s, DcmData *d, const char *image_type,
                         const char *sop_uid, const char *series_uid, int series_no, int instance,
                         const char *series_desc)
{
    dcmw_str(d, 0x0008, 0x0005, "CS", "ISO_IR 192");
    dcmw_str(d, 0x0008, 0x0008, "CS", image_type);
    dcmw_str(d, 0x0008, 0x0016, "UI", DCM_CT_STORAGE);
    dcmw_str(d, 0x0008, 0x0018, "UI", sop_uid);
    dcmw_str(d, 0x0008, 0x0020, "DA", s->date_dicom);
    dcmw_str(d, 0x0008, 0x0021, "DA", s->date_dicom);
    dcmw_str(d, 0x0008, 0x0030, "TM", s->time_dicom);
    dcmw_str(d, 0x0008, 0x0050, "SH", s->accession);
    dcmw_str(d, 0x0008, 0x0060, "CS", "CT");
    dcmw_str(d, 0x0008, 0x0070, "LO", "FVLM Phantom Systems");
    dcmw_str(d, 0x0008, 0x0080, "LO", s->inst);
    dcmw_str(d, 0x0008, 0x0081, "ST", s->plan->lang == LANG_ZH ? "中山路1号" : "1 Hospital Road");
    dcmw_str(d, 0x0008, 0x0090, "PN", s->doc);
    dcmw_str(d, 0x0008, 0x1030, "LO", !strcmp(s->scan_type, "abdomen") ? "CT ABDOMEN" : "CT CHEST");
    dcmw_str(d, 0x0008, 0x103E, "LO", series_desc);
    dcmw_str(d, 0x0010, 0x0010, "PN", s->name_dicom);
    dcmw_str(d, 0x0010, 0x0020, "LO", s->mrn);
    dcmw_str(d, 0x0010, 0x0030, "DA", s->dob_dicom);
    dcmw_str(d, 0x0010, 0x0040, "CS", s->body.female ? "F" : "M");
    dcmw_str(d, 0x0010, 0x1010, "AS", s->age);
    dcmw_str(d, 0x0018, 0x0015, "CS", !strcmp(s->scan_type, "abdomen") ? "ABDOMEN" : "CHEST");
    (void)series_no;
    (void)instance;
}

/* The DICOM series (and maybe a scout) as archive members. */
static int hospital_dicom(Ctx *c, SynthStudy *s, Rng *r, Buf *files, ArchMember *m, int *nm,
                          int maxm, JsonW *w, FvErr *e)
{
    const Grid *g = &s->grid;
    double u = rng_uniform(r);
    int explicit_vr = u < 0.7, with_meta = u < 0.9;
    int headfirst = rng_bernoulli(r, 0.7); /* instance 1 at the top */
    int unsigned_px = rng_bernoulli(r, 0.5);
    int scout = rng_bernoulli(r, 0.3), scout_same_series = rng_bernoulli(r, 0.5);
    int flip[3] = {1, 1, headfirst};
    double A[4][4];
    grid_affine(g, flip, A);
    int nx = g->n[0], ny = g->n[1], nz = g->n[2];
    int16_t *arr = flip_copy(s->scene.hu, 2, g->n, flip);
    uint16_t *px = malloc(sizeof(uint16_t) * (size_t)nx * ny);
    if (!arr || !px) {
        free(arr);
        free(px);
        return err_set(e, FV_ENOMEM, "synth: out of memory for a DICOM series");
    }
    char sl_thick[24], psp[64], iop[64], ipp[96], sloc[24], num[16];
    ds(sl_thick, sizeof sl_thick, s->thickness);
    char a1[24], a2[24];
    ds(a1, sizeof a1, g->sp[1]);
    ds(a2, sizeof a2, g->sp[0]);
    snprintf(psp, sizeof psp, "%s\\%s", a1, a2);
    snprintf(iop, sizeof iop, "1\\0\\0\\0\\1\\0");
    int rc = 0;
    for (int n = 0; n < nz && rc == 0; n++) {
        /* pixel values as stored: HU, or HU + 1024 for unsigned pixels */
        const int16_t *sl = arr + (size_t)n * nx * ny;
        for (size_t q = 0; q < (size_t)nx * ny; q++) {
            int v = sl[q];
            if (unsigned_px) {
                v += 1024;
                v = v < 0 ? 0 : v > 4095 ? 4095 : v;
            }
            px[q] = (uint16_t)v;
        }
        double X = A[0][2] * n + A[0][3], Y = A[1][2] * n + A[1][3], Z = A[2][2] * n + A[2][3];
        char x1[24], y1[24], z1[24];
        ds(x1, sizeof x1, -X);
        ds(y1, sizeof y1, -Y);
        ds(z1, sizeof z1, Z);
        snprintf(ipp, sizeof ipp, "%s\\%s\\%s", x1, y1, z1);
        snprintf(sloc, sizeof sloc, "%s", z1);
        char key[160], sop[64];
        snprintf(key, sizeof key, "fvlm-synth/%llu/%lld/sop/%d", (unsigned long long)c->opt->seed,
                 (long long)s->index, n + 1);
        dcmw_uid(key, sop);
        DcmData d;
        dcmw_init(&d, explicit_vr);
        dicom_common(s, &d, "ORIGINAL\\PRIMARY\\AXIAL", sop, s->series_uid, 2, n + 1,
                     s->enhanced ? "Body 5.0 CE" : "Body 5.0");
        dcmw_str(&d, 0x0018, 0x0050, "DS", sl_thick);
        dcmw_str(&d, 0x0018, 0x0060, "DS", "120");
        dcmw_str(&d, 0x0018, 0x5100, "CS", "HFS");
        dcmw_str(&d, 0x0020, 0x000D, "UI", s->study_uid);
        dcmw_str(&d, 0x0020, 0x000E, "UI", s->series_uid);
        dcmw_str(&d, 0x0020, 0x0010, "SH", "1");
        dcmw_str(&d, 0x0020, 0x0011, "IS", "2");
        snprintf(num, sizeof num, "%d", n + 1);
        dcmw_str(&d, 0x0020, 0x0013, "IS", num);
        dcmw_str(&d, 0x0020, 0x0032, "DS", ipp);
        dcmw_str(&d, 0x0020, 0x0037, "DS", iop);
        dcmw_str(&d, 0x0020, 0x0052, "UI", s->frame_uid);
        dcmw_str(&d, 0x0020, 0x1041, "DS", sloc);
        dcmw_us(&d, 0x0028, 0x0002, 1);
        dcmw_str(&d, 0x0028, 0x0004, "CS", "MONOCHROME2");
        dcmw_us(&d, 0x0028, 0x0010, (uint16_t)ny);
        dcmw_us(&d, 0x0028, 0x0011, (uint16_t)nx);
        dcmw_str(&d, 0x0028, 0x0030, "DS", psp);
        dcmw_us(&d, 0x0028, 0x0100, 16);
        dcmw_us(&d, 0x0028, 0x0101, unsigned_px ? 12 : 16);
        dcmw_us(&d, 0x0028, 0x0102, unsigned_px ? 11 : 15);
        dcmw_us(&d, 0x0028, 0x0103, unsigned_px ? 0 : 1);
        dcmw_str(&d, 0x0028, 0x1050, "DS", "40");
        dcmw_str(&d, 0x0028, 0x1051, "DS", "400");
        dcmw_str(&d, 0x0028, 0x1052, "DS", unsigned_px ? "-1024" : "0");
        dcmw_str(&d, 0x0028, 0x1053, "DS", "1");
        dcmw_str(&d, 0x0028, 0x1054, "LO", "HU");
        dcmw_pixels(&d, px, (size_t)nx * ny);
        Buf *fb = &files[*nm];
        memset(fb, 0, sizeof *fb);
        rc = dcmw_file(&d, DCM_CT_STORAGE, sop, with_meta, fb, e);
        dcmw_free(&d);
        if (rc == 0 && *nm < maxm) {
            snprintf(m[*nm].name, sizeof m[*nm].name, "dicom/IM%04d.dcm", n + 1);
            m[*nm].data = fb->data;
            m[*nm].len = fb->len;
            (*nm)++;
        }
    }
    if (rc == 0 && scout && *nm < maxm) {
        /* a coronal localizer: attenuation summed front to back */
        int rows = nz, cols = nx;
        uint16_t *sp = malloc(sizeof(uint16_t) * (size_t)rows * cols);
        if (!sp)
            rc = err_set(e, FV_ENOMEM, "synth: out of memory");
        else {
            for (int rr = 0; rr < rows; rr++)
                for (int cc = 0; cc < cols; cc++) {
                    int k = nz - 1 - rr, i = nx - 1 - cc;
                    double acc = 0;
                    for (int j = 0; j < ny; j++)
                        acc += (s->scene.hu[scene_idx(&s->scene, i, j, k)] + 1000) / 1000.0;
                    double v = acc * g->sp[1] * 6;
                    sp[(size_t)rr * cols + cc] = (uint16_t)(v > 4095 ? 4095 : v);
                }
            char key[160], sop[64], sser[64], sipp[96], spsp[64];
            snprintf(key, sizeof key, "fvlm-synth/%llu/%lld/scout", (unsigned long long)c->opt->seed,
                     (long long)s->index);
            dcmw_uid(key, sop);
            snprintf(key, sizeof key, "fvlm-synth/%llu/%lld/scout-series",
                     (unsigned long long)c->opt->seed, (long long)s->index);
            dcmw_uid(key, sser);
            double cyw = g->org[1] + (ny - 1) * g->sp[1] / 2;
            char x1[24], y1[24], z1[24];
            ds(x1, sizeof x1, -(g->org[0] + (nx - 1) * g->sp[0]));
            ds(y1, sizeof y1, -cyw);
            ds(z1, sizeof z1, g->org[2] + (nz - 1) * g->sp[2]);
            snprintf(sipp, sizeof sipp, "%s\\%s\\%s", x1, y1, z1);
            ds(a1, sizeof a1, g->sp[2]);
            ds(a2, sizeof a2, g->sp[0]);
            snprintf(spsp, sizeof spsp, "%s\\%s", a1, a2);
            DcmData d;
            dcmw_init(&d, explicit_vr);
            dicom_common(s, &d, "ORIGINAL\\PRIMARY\\LOCALIZER", sop,
                         scout_same_series ? s->series_uid : sser, 1, 1, "Topogram");
            dcmw_str(&d, 0x0018, 0x0050, "DS", "1");
            dcmw_str(&d, 0x0018, 0x0060, "DS", "120");
            dcmw_str(&d, 0x0018, 0x5100, "CS", "HFS");
            dcmw_str(&d, 0x0020, 0x000D, "UI", s->study_uid);
            dcmw_str(&d, 0x0020, 0x000E, "UI", scout_same_series ? s->series_uid : sser);
            dcmw_str(&d, 0x0020, 0x0010, "SH", "1");
            dcmw_str(&d, 0x0020, 0x0011, "IS", scout_same_series ? "2" : "1");
            snprintf(num, sizeof num, "%d", scout_same_series ? nz + 1 : 1);
            dcmw_str(&d, 0x0020, 0x0013, "IS", num);
            dcmw_str(&d, 0x0020, 0x0032, "DS", sipp);
            dcmw_str(&d, 0x0020, 0x0037, "DS", "1\\0\\0\\0\\0\\-1");
            dcmw_str(&d, 0x0020, 0x0052, "UI", s->frame_uid);
            dcmw_us(&d, 0x0028, 0x0002, 1);
            dcmw_str(&d, 0x0028, 0x0004, "CS", "MONOCHROME2");
            dcmw_us(&d, 0x0028, 0x0010, (uint16_t)rows);
            dcmw_us(&d, 0x0028, 0x0011, (uint16_t)cols);
            dcmw_str(&d, 0x0028, 0x0030, "DS", spsp);
            dcmw_us(&d, 0x0028, 0x0100, 16);
            dcmw_us(&d, 0x0028, 0x0101, 12);
            dcmw_us(&d, 0x0028, 0x0102, 11);
            dcmw_us(&d, 0x0028, 0x0103, 0);
            dcmw_str(&d, 0x0028, 0x1050, "DS", "1000");
            dcmw_str(&d, 0x0028, 0x1051, "DS", "2000");
            dcmw_str(&d, 0x0028, 0x1052, "DS", "0");
            dcmw_str(&d, 0x0028, 0x1053, "DS", "1");
            dcmw_str(&d, 0x0028, 0x1054, "LO", "US");
            dcmw_pixels(&d, sp, (size_t)rows * cols);
            Buf *fb = &files[*nm];
            memset(fb, 0, sizeof *fb);
            rc = dcmw_file(&d, DCM_CT_STORAGE, sop, with_meta, fb, e);
            dcmw_free(&d);
            free(sp);
            if (rc == 0) {
                snprintf(m[*nm].name, sizeof m[*nm].name, "dicom/IM%04d.dcm", nz + 1);
                m[*nm].data = fb->data;
                m[*nm].len = fb->len;
                (*nm)++;
            }
        }
    }
    free(arr);
    free(px);
    if (rc)
        return rc;
    int dims[3] = {nx, ny, nz};
    jw_key(w, "geometry");
    json_geometry(w, dims, A, "dicom");
    jw_key(w, "transfer_syntax");
    jw_str(w, !with_meta ? "implicit (no preamble, no meta)" : explicit_vr ? DCM_TS_EXPLICIT : DCM_TS_IMPLICIT);
    jw_key(w, "pixel_representation");
    jw_int(w, unsigned_px ? 0 : 1);
    jw_key(w, "rescale_intercept");
    jw_int(w, unsigned_px ? -1024 : 0);
    jw_key(w, "instance_order");
    jw_str(w, headfirst ? "superior_to_inferior" : "inferior_to_superior");
    jw_key(w, "scout");
    jw_str(w, !scout ? "none" : scout_same_series ? "same_series" : "own_series");
    jw_obj_end(w);
    return 0;
}

/* One NIfTI volume with axis flips (applied here unless `flipped` says the
 * data are already in the written order) and a header kind. */
static int nifti_volume(const SynthStudy *s, const void *data, int flipped, int datatype,
                        int flip[3], int header, double slope, double inter, const char *ext,
                        size_t ext_len, int level, Buf *gz, double A[4][4], FvErr *e)
{
    const Grid *g = &s->grid;
    size_t esz = datatype == NIFTI_UINT8 ? 1 : 2;
    void *arr = flipped ? NULL : flip_copy(data, esz, g->n, flip);
    if (!flipped && !arr)
        return err_set(e, FV_ENOMEM, "synth: out of memory");
    grid_affine(g, flip, A);
    NiftiSpec ns;
    memset(&ns, 0, sizeof ns);
    for (int a = 0; a < 3; a++)
        ns.dim[a] = g->n[a];
    ns.datatype = datatype;
    memcpy(ns.affine, A, sizeof ns.affine);
    ns.header = header;
    ns.scl_slope = slope;
    ns.scl_inter = inter;
    ns.data = flipped ? data : arr;
    ns.ext = ext;
    ns.ext_len = ext_len;
    ns.descrip = datatype == NIFTI_UINT8 ? "TotalSegmentator total" : "fvlm synth CT";
    Buf raw = {0};
    int rc = niftiw_encode(&ns, &raw, e);
    free(arr);
    if (rc == 0)
        rc = archw_gzip(raw.data, raw.len, level, gz, e);
    buf_free(&raw);
    return rc;
}

static void random_flips(Rng *r, int flip[3])
{
    static const int codes[6][3] = {{0, 0, 0}, {1, 0, 0}, {1, 1, 0}, {1, 1, 1}, {0, 1, 0}, {0, 0, 1}};
    const int *c = codes[rng_below(r, 6)];
    flip[0] = c[0];
    flip[1] = c[1];
    flip[2] = c[2];
}

static int header_kind(Rng *r, double blank)
{
    double u = rng_uniform(r);
    if (u < blank)
        return NIFTI_HDR_BLANK;
    u = (u - blank) / (1 - blank);
    return u < 0.5 ? NIFTI_HDR_SFORM : u < 0.75 ? NIFTI_HDR_QFORM : NIFTI_HDR_BOTH;
}

static const char *header_name(int h)
{
    return h == NIFTI_HDR_SFORM ? "sform" : h == NIFTI_HDR_QFORM ? "qform" : h == NIFTI_HDR_BOTH ? "both" : "blank";
}

static int label_xml(Ctx *c, Buf *x)
{
    niftiw_label_xml((const char *const *)c->ts_names, TS_NUM, x);
    return x->failed ? -1 : 0;
}

static int hospital_study(Ctx *c, SynthStudy *s, Rng *r, StudyOut *so, JsonW *w, FvErr *e)
{
    const Grid *g = &s->grid;
    enum { MAXM = 1024 };
    Buf *files = calloc(MAXM, sizeof(Buf));
    ArchMember *m = calloc(MAXM, sizeof(ArchMember));
    int nm = 0, rc = -1;
    Buf xml = {0}, arch = {0}, rep = {0};
    if (!files || !m) {
        err_set(e, FV_ENOMEM, "synth: out of memory");
        goto out;
    }
    int zip = rng_bernoulli(r, 0.2);
    snprintf(s->rel_path, sizeof s->rel_path, "hospital/%s/%s.%s", s->plan->test ? "test" : "train",
             s->accession, zip ? "zip" : "tar.gz");
    jw_key(w, "path");
    jw_str(w, s->rel_path);
    if (hospital_dicom(c, s, r, files, m, &nm, MAXM - 130, w, e))
        goto out;
    /* the mask: one multi-label file with the label table, or one file per class */
    int multi = rng_bernoulli(r, 0.6), flip[3];
    random_flips(r, flip);
    int hdr = header_kind(r, 0);
    double A[4][4];
    if (multi) {
        if (label_xml(c, &xml)) {
            err_set(e, FV_ENOMEM, "synth: out of memory");
            goto out;
        }
        if (nifti_volume(s, s->scene.lab, 0, NIFTI_UINT8, flip, hdr, 0, 0, xml.data, xml.len,
                         GZ_LEVEL, &files[nm], A, e))
            goto out;
        snprintf(m[nm].name, sizeof m[nm].name, "seg.nii.gz");
        m[nm].data = files[nm].data;
        m[nm].len = files[nm].len;
        nm++;
    } else {
        size_t n = (size_t)g->n[0] * g->n[1] * g->n[2];
        uint8_t *bin = malloc(n), *lab = flip_copy(s->scene.lab, 1, g->n, flip);
        if (!bin || !lab) {
            free(bin);
            free(lab);
            err_set(e, FV_ENOMEM, "synth: out of memory");
            goto out;
        }
        /* voxel indices grouped by label (a counting sort), so each class's
         * binary volume costs a memset and its own voxels */
        uint32_t *order_idx = malloc(n * sizeof(uint32_t)), start[TS_NUM + 1] = {0};
        if (!order_idx) {
            free(bin);
            free(lab);
            err_set(e, FV_ENOMEM, "synth: out of memory");
            goto out;
        }
        for (size_t q = 0; q < n; q++)
            if (lab[q] < TS_NUM)
                start[lab[q] + 1]++;
        for (int id = 0; id < TS_NUM; id++)
            start[id + 1] += start[id];
        uint32_t fill[TS_NUM];
        memcpy(fill, start, sizeof fill);
        for (size_t q = 0; q < n; q++)
            if (lab[q] < TS_NUM)
                order_idx[fill[lab[q]]++] = (uint32_t)q;
        /* classes absent from the scan are all-zero volumes: encode that once */
        int empty = -1;
        for (int id = 1; id < TS_NUM; id++) {
            Buf *fb = &files[nm];
            if (!s->scene.count[id] && empty >= 0) {
                if (buf_append(fb, files[empty].data, files[empty].len)) {
                    free(bin);
                    free(lab);
                    free(order_idx);
                    err_set(e, FV_ENOMEM, "synth: out of memory");
                    goto out;
                }
            } else {
                /* the class's voxels from the counting sort below */
                memset(bin, 0, n);
                for (uint32_t q = start[id]; q < start[id + 1]; q++)
                    bin[order_idx[q]] = 1;
                if (nifti_volume(s, bin, 1, NIFTI_UINT8, flip, hdr, 0, 0, NULL, 0, GZ_LEVEL, fb, A,
                                 e)) {
                    free(bin);
                    free(lab);
                    free(order_idx);
                    goto out;
                }
                if (!s->scene.count[id])
                    empty = nm;
            }
            snprintf(m[nm].name, sizeof m[nm].name, "seg/%s.nii.gz", c->ts_names[id]);
            m[nm].data = fb->data;
            m[nm].len = fb->len;
            nm++;
        }
        free(lab);
        free(order_idx);
        free(bin);
    }
    jw_key(w, "mask");
    jw_obj(w);
    jw_key(w, "format");
    jw_str(w, multi ? "multilabel" : "per_class");
    jw_key(w, "geometry");
    json_geometry(w, g->n, A, header_name(hdr));
    jw_obj_end(w);
    jw_obj_end(w);
    /* the report: UTF-8, UTF-8 with BOM, or GB18030 for Chinese */
    const Buf *t = &s->rep.text;
    Buf crlf = {0};
    int use_crlf = rng_bernoulli(r, 0.4);
    for (size_t q = 0; q < t->len; q++) {
        if (use_crlf && t->data[q] == '\n')
            buf_putc(&crlf, '\r');
        buf_putc(&crlf, t->data[q]);
    }
    double u = rng_uniform(r);
    const char *enc;
    if (s->plan->lang == LANG_ZH && u < 0.3) {
        enc = "gb18030";
        if (to_gb18030(crlf.data ? crlf.data : "", crlf.len, &rep, e)) {
            buf_free(&crlf);
            goto out;
        }
    } else if (u < 0.45) {
        enc = "utf-8-bom";
        buf_append(&rep, "\xEF\xBB\xBF", 3);
        buf_append(&rep, crlf.data, crlf.len);
    } else {
        enc = "utf-8";
        buf_append(&rep, crlf.data, crlf.len);
    }
    buf_free(&crlf);
    jw_key(w, "report_encoding");
    jw_str(w, enc);
    jw_key(w, "report_line_endings");
    jw_str(w, use_crlf ? "crlf" : "lf");
    snprintf(m[nm].name, sizeof m[nm].name, "report.txt");
    m[nm].data = rep.data;
    m[nm].len = rep.len;
    nm++;
    /* member order: usual, or shuffled; folders listed first in some exports */
    int order[MAXM];
    for (int i = 0; i < nm; i++)
        order[i] = i;
    int shuffled = rng_bernoulli(r, 0.3);
    if (shuffled)
        rng_shuffle_int(r, order, (size_t)nm);
    ArchMember *om = calloc(MAXM + 2, sizeof(ArchMember));
    if (!om) {
        err_set(e, FV_ENOMEM, "synth: out of memory");
        goto out;
    }
    int no = 0;
    if (rng_bernoulli(r, 0.5)) {
        snprintf(om[no++].name, sizeof om[0].name, "dicom/");
        if (!multi)
            snprintf(om[no++].name, sizeof om[0].name, "seg/");
    }
    for (int i = 0; i < nm; i++)
        om[no++] = m[order[i]];
    int64_t mtime = s->epoch_day * 86400 + 9 * 3600 + (int64_t)rng_below(r, 8 * 3600);
    rc = archw_write(zip ? ARCH_ZIP : ARCH_TAR_GZ, om, no, mtime, GZ_LEVEL, &arch, e);
    free(om);
    if (rc)
        goto out;
    jw_key(w, "archive_members_shuffled");
    jw_bool(w, shuffled);
    rc = write_file(c, so, s->rel_path, arch.data, arch.len, e);
out:
    if (files)
        for (int i = 0; i < MAXM; i++)
            buf_free(&files[i]);
    free(files);
    free(m);
    buf_free(&xml);
    buf_free(&arch);
    buf_free(&rep);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* CT-RATE layout                                                             */
/* ------------------------------------------------------------------------ */

static int ctrate_study(Ctx *c, SynthStudy *s, Rng *r, StudyOut *so, JsonW *w, FvErr *e)
{
    const Grid *g = &s->grid;
    const char *split = s->plan->test ? "valid" : "train";
    char base[96], dir[256], vol[512], mask[512];
    snprintf(base, sizeof base, "%s_%lld_%c", split, (long long)s->plan->split_pid, 'a' + s->plan->scan);
    snprintf(dir, sizeof dir, "%s/%s_%lld/%s", split, split, (long long)s->plan->split_pid, base);
    snprintf(vol, sizeof vol, "ctrate/%s/%s_1.nii.gz", dir, base);
    snprintf(mask, sizeof mask, "ctrate/masks/%s/%s_1.nii.gz", dir, base);
    snprintf(s->rel_path, sizeof s->rel_path, "%s", vol);
    jw_key(w, "path");
    jw_str(w, vol);
    jw_key(w, "mask_path");
    jw_str(w, mask);
    int hdr = header_kind(r, 0.2), flip[3];
    double slope = 1, inter = 0;
    int raw = hdr == NIFTI_HDR_BLANK || rng_bernoulli(r, 0.5);
    if (hdr == NIFTI_HDR_BLANK) {
        /* DICOM order, voxel values as stored by the scanner */
        flip[0] = 1;
        flip[1] = 1;
        flip[2] = 0;
        slope = 0;
    } else {
        random_flips(r, flip);
        if (raw)
            inter = -1024;
    }
    size_t n = (size_t)g->n[0] * g->n[1] * g->n[2];
    int16_t *stored = malloc(n * sizeof(int16_t));
    Buf gz = {0}, mz = {0}, xml = {0};
    int rc = -1;
    if (!stored) {
        err_set(e, FV_ENOMEM, "synth: out of memory");
        goto out;
    }
    for (size_t q = 0; q < n; q++)
        stored[q] = (int16_t)(s->scene.hu[q] + (raw ? 1024 : 0));
    double A[4][4], Am[4][4];
    if (nifti_volume(s, stored, 0, NIFTI_INT16, flip, hdr, slope, inter, NULL, 0, GZ_LEVEL, &gz, A,
                     e))
        goto out;
    if (label_xml(c, &xml)) {
        err_set(e, FV_ENOMEM, "synth: out of memory");
        goto out;
    }
    if (nifti_volume(s, s->scene.lab, 0, NIFTI_UINT8, flip, hdr, 0, 0, xml.data, xml.len, GZ_LEVEL, &mz,
                     Am, e))
        goto out;
    if (write_file(c, so, vol, gz.data, gz.len, e) || write_file(c, so, mask, mz.data, mz.len, e))
        goto out;
    double I[4][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
    jw_key(w, "geometry");
    json_geometry(w, g->n, hdr == NIFTI_HDR_BLANK ? I : A, header_name(hdr));
    jw_key(w, "affine_true");
    json_affine(w, A);
    jw_key(w, "scl_slope");
    jw_num(w, slope);
    jw_key(w, "scl_inter");
    jw_num(w, inter);
    jw_key(w, "stored_offset");
    jw_int(w, raw ? 1024 : 0);
    jw_obj_end(w);
    /* CSV rows */
    Buf *rr = &(Buf){0};
    char vname[128];
    snprintf(vname, sizeof vname, "%s_1.nii.gz", base);
    csv_put_field(rr, vname);
    buf_putc(rr, ',');
    csv_put_field(rr, rng_bernoulli(r, 0.4) ? "Not given." : s->rep.history.data);
    buf_putc(rr, ',');
    csv_put_field(rr, rng_bernoulli(r, 0.1) || !s->rep.technique.len ? "Not given." : s->rep.technique.data);
    buf_putc(rr, ',');
    csv_put_field(rr, s->rep.findings.len ? s->rep.findings.data : "Not given.");
    buf_putc(rr, ',');
    csv_put_field(rr, s->rep.impression.len ? s->rep.impression.data : "Not given.");
    buf_puts(rr, "\n");
    so->rep_row = buf_steal(rr);
    Buf *lr = &(Buf){0};
    csv_put_field(lr, vname);
    for (int k = 0; k < 18; k++) {
        int v = 0;
        for (int t = 0; t < c->o->n_find; t++)
            if (c->o->find[t].ctrate_label && !strcmp(c->o->find[t].ctrate_label, CTRATE_LABELS[k]))
                v = s->rep.reported[t] == 1;
        buf_printf(lr, ",%d", v);
    }
    buf_puts(lr, "\n");
    so->lab_row = buf_steal(lr);
    /* metadata: the DICOM-order geometry (see synth.h) */
    int dflip[3] = {1, 1, 0};
    double D[4][4];
    grid_affine(g, dflip, D);
    char x1[24], y1[24], z1[24], sx[24], sy[24], sz[24];
    ds(x1, sizeof x1, -D[0][3]);
    ds(y1, sizeof y1, -D[1][3]);
    ds(z1, sizeof z1, D[2][3]);
    ds(sx, sizeof sx, g->sp[0]);
    ds(sy, sizeof sy, g->sp[1]);
    ds(sz, sizeof sz, g->sp[2]);
    Buf *mr = &(Buf){0};
    char f1[96], f2[96];
    csv_put_field(mr, vname);
    buf_printf(mr, ",FVLM Phantom Systems,%s,%s,", s->body.female ? "F" : "M", s->age);
    snprintf(f1, sizeof f1, "[%s, %s]", sx, sy);
    csv_put_field(mr, f1);
    buf_printf(mr, ",%s,1,-1024,", sz);
    snprintf(f2, sizeof f2, "[%s, %s, %s]", x1, y1, z1);
    csv_put_field(mr, f2);
    buf_putc(mr, ',');
    csv_put_field(mr, "[1, 0, 0, 0, 1, 0]");
    buf_printf(mr, ",%d,%d,%d\n", g->n[1], g->n[0], g->n[2]);
    so->meta_row = buf_steal(mr);
    rc = so->rep_row && so->lab_row && so->meta_row ? 0 : err_set(e, FV_ENOMEM, "synth: out of memory");
out:
    free(stored);
    buf_free(&gz);
    buf_free(&mz);
    buf_free(&xml);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The study pipeline                                                         */
/* ------------------------------------------------------------------------ */

/* truth/oracle.csv's row: per task, the share of its anatomy's input-grid
 * points that the task's changes moved (0 when the task is not shown). */
static void oracle_row(const Ctx *c, const SynthStudy *s, const LesionSet *ls, Buf *row)
{
    const Ontology *o = c->o;
    buf_puts(row, s->study_id);
    for (int t = 0; t < o->n_find; t++) {
        double share = 0;
        if (ls->og && lesions_shown(ls, t) && ls->changed[t] > 0)
            share = oracle_share(ls->og, &s->scene, o, o->find[t].anatomy, ls->changed[t]);
        buf_printf(row, ",%.4g", share);
    }
    buf_putc(row, '\n');
}

static int study_make(Ctx *c, int64_t i, StudyOut *so, FvErr *e)
{
    const SynthOptions *opt = c->opt;
    const Ontology *o = c->o;
    SynthStudy *s = calloc(1, sizeof *s);
    LesionSet *ls = calloc(1, sizeof *ls);
    Buf truth = {0}, lab = {0}, orow = {0};
    OracleShapes osh = {0};
    OracleGrid *og = NULL;
    Body *pre = NULL;
    int rc = -1;
    if (!s || !ls) {
        free(s);
        free(ls);
        return err_set(e, FV_ENOMEM, "synth: out of memory");
    }
    s->index = i;
    s->plan = &c->plan[i];
    s->ls = ls;
    Rng pr, r;
    rng_seed(&pr, opt->seed, PATIENT_STREAM + (uint64_t)s->plan->patient);
    rng_seed(&r, opt->seed, (uint64_t)i);
    body_init(&s->body, &pr);
    patient_identity(c, s, &pr, s->plan->lang);
    /* dates: the patient's scans months apart, from the patient's stream */
    int64_t day = 18628 + (int64_t)rng_below(&pr, 3 * 365), prev_day = -1;
    for (int k = 0; k < s->plan->scan; k++) {
        prev_day = day;
        day += 60 + (int64_t)rng_below(&pr, 400);
    }
    int64_t birth = day - (int64_t)s->body.age * 365 - (int64_t)rng_below(&pr, 365);
    s->epoch_day = day;
    fmt_date(day, s->date, sizeof s->date, s->date_dicom, sizeof s->date_dicom);
    fmt_date(birth, s->dob, sizeof s->dob, s->dob_dicom, sizeof s->dob_dicom);
    if (prev_day >= 0) {
        char tmp[32];
        fmt_date(prev_day, s->prior, sizeof s->prior, tmp, sizeof tmp);
    }
    snprintf(s->age, sizeof s->age, "%03dY", s->body.age);
    body_vary_scan(&s->body, &r);
    snprintf(s->time_dicom, sizeof s->time_dicom, "%02d%02d%02d", 8 + (int)rng_below(&r, 10),
             (int)rng_below(&r, 60), (int)rng_below(&r, 60));
    const char *d1 = phrase_pick(c->ph, "name", NULL, s->plan->lang, 0, &r);
    const char *d2 = phrase_pick(c->ph, "name", NULL, s->plan->lang, 0, &r);
    for (int k = 0; k < 4 && d2 == d1; k++)
        d2 = phrase_pick(c->ph, "name", NULL, s->plan->lang, 0, &r);
    snprintf(s->doc, sizeof s->doc, "%.*s", d1 ? (int)strcspn(d1, "|") : 0, d1 ? d1 : "");
    snprintf(s->doc2, sizeof s->doc2, "%.*s", d2 ? (int)strcspn(d2, "|") : 0, d2 ? d2 : "");
    snprintf(s->accession, sizeof s->accession, "A%.6s%06lld", s->date_dicom + 2, (long long)i);
    char key[160];
    snprintf(key, sizeof key, "fvlm-synth/%llu/%lld/study", (unsigned long long)opt->seed, (long long)i);
    dcmw_uid(key, s->study_uid);
    snprintf(key, sizeof key, "fvlm-synth/%llu/%lld/series", (unsigned long long)opt->seed, (long long)i);
    dcmw_uid(key, s->series_uid);
    snprintf(key, sizeof key, "fvlm-synth/%llu/%lld/frame", (unsigned long long)opt->seed, (long long)i);
    dcmw_uid(key, s->frame_uid);

    choose_scan(c, s, &r);
    if (!s->scene.lab) {
        err_set(e, FV_ENOMEM, "synth: study %lld: cannot allocate its volume", (long long)i);
        goto out;
    }
    s->scene.tt = &c->tt;
    s->scene.enhanced = s->enhanced;
    double zlo = s->scene.org[2], zhi = s->scene.org[2] + (s->grid.n[2] - 1) * s->grid.sp[2];
    compute_cover(o, &s->body, zlo, zhi, s->cover);
    s->cover[onto_anatomy(o, "body")] = 1;
    /* mediastinal nodes sit at heart and airway levels, not along the whole aorta */
    int ln = onto_anatomy(o, "lymph_node"), ht = onto_anatomy(o, "heart"), tr = onto_anatomy(o, "trachea");
    if (ln >= 0 && ht >= 0 && tr >= 0)
        s->cover[ln] = fmax(s->cover[ht], s->cover[tr]);
    /* diseases, in task order, each with the task's prevalence */
    lesions_init(ls, c->lt, o, &c->tt, s->enhanced, zlo, zhi);
    pre = malloc(sizeof *pre);
    og = malloc(sizeof *og);
    ls->snap = malloc((size_t)s->scene.nx * s->scene.ny * s->scene.nz * sizeof *ls->snap);
    if (!pre || !og || !ls->snap) {
        err_set(e, FV_ENOMEM, "synth: out of memory");
        goto out;
    }
    for (int t = 0; t < o->n_find; t++) {
        double p = fmax(o->find[t].prevalence, opt->min_prevalence);
        int draw = rng_bernoulli(&r, p);
        if (draw && s->cover[o->find[t].anatomy] >= 0.4) {
            *pre = s->body;
            if (lesions_add(ls, t, &s->body, &r) && ls->status[t] == 1 &&
                oracle_shapes_keep(&osh, t, pre, &s->body, e))
                goto out;
        }
    }
    phantom_render(&s->body, &s->scene, &r);
    /* the model-input grid of the oracle, from the labels as rendered: the
     * small preset's crop margin (15, 20, 20 mm) and HU window */
    static const double margin[3] = {15, 20, 20};
    scene_stats(&s->scene);
    if (!oracle_grid_init(og, &s->scene, opt->oracle_input, margin, -1150, 350))
        ls->og = og;
    lesions_paint(ls, &s->body, &s->scene, &r);
    if (ls->og) {
        Rng tex;
        rng_seed(&tex, opt->seed, ORACLE_STREAM + (uint64_t)i);
        if (oracle_shapes_measure(&osh, og, &s->scene, &tex, ls->changed, e))
            goto out;
    }
    double sd = (opt->size == SYNTH_FULL ? 18 : 10) + 14 * (s->body.sx - 0.86) + rng_range(&r, 0, 6);
    phantom_noise(&s->scene, sd, &r); /* labels are final: lesions_paint left the stats current */

    /* the label map is final: what the mask covers decides normal statuses */
    unsigned char covered[256] = {0}, whole[256] = {0};
    compute_covered(o, &s->scene, covered, whole);

    ReportInput in;
    memset(&in, 0, sizeof in);
    in.o = o;
    in.ph = c->ph;
    in.lang = s->plan->lang;
    in.style = s->plan->ctrate ? REPORT_CTRATE : REPORT_HOSPITAL;
    in.ls = ls;
    in.cover = s->cover;
    in.covered = covered;
    in.scan_type = s->scan_type;
    in.enhanced = s->enhanced;
    in.thickness_mm = s->thickness;
    in.prior_date = s->prior[0] ? s->prior : NULL;
    in.noise_rate = opt->noise_rate;
    in.name = s->name_local;
    in.pid = s->mrn;
    in.date = s->date;
    in.dob = s->dob;
    in.phone = s->phone;
    in.sex = s->plan->lang == LANG_ZH ? (s->body.female ? "女" : "男") : (s->body.female ? "F" : "M");
    char agebuf[8];
    snprintf(agebuf, sizeof agebuf, "%d", s->body.age);
    in.age = agebuf;
    in.inst = s->inst;
    in.doc = s->doc;
    in.doc2 = s->doc2;
    if (report_write(&in, &r, &s->rep, e))
        goto out;

    /* identifiers as ingest derives them */
    if (s->plan->ctrate)
        snprintf(s->study_id, sizeof s->study_id, "%s_%lld_%c", s->plan->test ? "valid" : "train",
                 (long long)s->plan->split_pid, 'a' + s->plan->scan);
    else
        snprintf(s->study_id, sizeof s->study_id, "%s", s->study_uid);
    if (s->plan->ctrate)
        snprintf(s->patient_id, sizeof s->patient_id, "%s_%lld", s->plan->test ? "valid" : "train",
                 (long long)s->plan->split_pid);
    else
        snprintf(s->patient_id, sizeof s->patient_id, "%s", s->mrn);

    JsonW w;
    jw_init(&w, &truth, 0);
    jw_obj(&w);
    jw_key(&w, "study_id");
    jw_str(&w, s->study_id);
    jw_key(&w, "patient_id");
    jw_str(&w, s->patient_id);
    jw_key(&w, "index");
    jw_int(&w, i);
    jw_key(&w, "layout");
    jw_str(&w, s->plan->ctrate ? "ctrate" : "hospital");
    jw_key(&w, "split");
    jw_str(&w, s->plan->test ? "test" : "train");
    jw_key(&w, "language");
    jw_str(&w, s->plan->lang == LANG_ZH ? "zh" : "en");
    jw_key(&w, "scan");
    jw_obj(&w);
    jw_key(&w, "type");
    jw_str(&w, s->scan_type);
    jw_key(&w, "contrast");
    jw_bool(&w, s->enhanced);
    jw_key(&w, "spacing_mm");
    jw_arr(&w);
    for (int a = 0; a < 3; a++)
        jw_num(&w, s->grid.sp[a]);
    jw_arr_end(&w);
    jw_key(&w, "scan_of_patient");
    jw_int(&w, s->plan->scan);
    if (!s->plan->ctrate) {
        jw_key(&w, "phi");
        jw_obj(&w);
        jw_key(&w, "name");
        jw_str(&w, s->name_local);
        jw_key(&w, "dicom_name");
        jw_str(&w, s->name_dicom);
        jw_key(&w, "patient_id");
        jw_str(&w, s->mrn);
        jw_key(&w, "birth_date");
        jw_str(&w, s->dob_dicom);
        jw_key(&w, "study_date");
        jw_str(&w, s->date);
        jw_key(&w, "accession");
        jw_str(&w, s->accession);
        jw_key(&w, "phone");
        jw_str(&w, s->phone);
        jw_key(&w, "institution");
        jw_str(&w, s->inst);
        jw_obj_end(&w);
    }
    jw_obj_end(&w);
    if (s->plan->ctrate)
        rc = ctrate_study(c, s, &r, so, &w, e);
    else
        rc = hospital_study(c, s, &r, so, &w, e);
    if (rc)
        goto out;
    rc = -1;
    jw_key(&w, "labels_image");
    jw_obj(&w);
    for (int t = 0; t < o->n_find; t++) {
        jw_key(&w, o->find[t].id);
        jw_int(&w, lesions_shown(ls, t));
    }
    jw_obj_end(&w);
    jw_key(&w, "labels_reported");
    jw_obj(&w);
    for (int t = 0; t < o->n_find; t++)
        if (s->rep.reported[t] != REPORT_UNMENTIONED) {
            jw_key(&w, o->find[t].id);
            jw_int(&w, s->rep.reported[t]);
        }
    jw_obj_end(&w);
    jw_key(&w, "anatomy_status");
    jw_obj(&w);
    for (int a = 0; a < o->n_anat; a++)
        if (s->rep.status[a] >= 0) {
            jw_key(&w, o->anat[a].id);
            jw_str(&w, s->rep.status[a] ? "abnormal" : "normal");
        }
    jw_obj_end(&w);
    jw_key(&w, "covered");
    jw_arr(&w);
    for (int a = 0; a < o->n_anat; a++)
        if (covered[a])
            jw_str(&w, o->anat[a].id);
    jw_arr_end(&w);
    jw_key(&w, "whole");
    jw_arr(&w);
    for (int a = 0; a < o->n_anat; a++)
        if (whole[a])
            jw_str(&w, o->anat[a].id);
    jw_arr_end(&w);
    jw_key(&w, "lesions");
    jw_arr(&w);
    for (int k = 0; k < ls->nles; k++) {
        const Lesion *l = &ls->les[k];
        int f = l->finding;
        jw_obj(&w);
        jw_key(&w, "task");
        jw_str(&w, o->find[f].id);
        jw_key(&w, "anatomy");
        jw_str(&w, o->anat[o->find[f].anatomy].id);
        jw_key(&w, "center_mm");
        jw_arr(&w);
        for (int a = 0; a < 3; a++)
            jw_num(&w, round_to(l->c[a] + s->off[a], 0.01));
        jw_arr_end(&w);
        jw_key(&w, "size_mm");
        jw_num(&w, round_to(l->size, 0.01));
        jw_key(&w, "hu");
        jw_num(&w, round_to(l->hu, 0.1));
        if (l->site[0]) {
            jw_key(&w, "site");
            jw_str(&w, l->site);
        }
        if (l->ts > 0) {
            jw_key(&w, "ts_id");
            jw_int(&w, l->ts);
        }
        jw_key(&w, "reported");
        jw_bool(&w, s->rep.reported[f] == 1 || s->rep.reported[f] == -1);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_key(&w, "noise");
    jw_obj(&w);
    jw_key(&w, "missed");
    jw_int(&w, s->rep.n_missed);
    jw_key(&w, "hedged");
    jw_int(&w, s->rep.n_hedged);
    jw_key(&w, "hedged_absent");
    jw_int(&w, s->rep.n_false_hedge);
    jw_obj_end(&w);
    jw_obj_end(&w);
    buf_putc(&truth, '\n');

    buf_puts(&lab, s->study_id);
    for (int t = 0; t < o->n_find; t++) {
        buf_printf(&lab, ",%d", lesions_shown(ls, t));
        so->present += lesions_shown(ls, t);
        so->reported += s->rep.reported[t] == 1;
    }
    buf_putc(&lab, '\n');
    oracle_row(c, s, ls, &orow);
    if (truth.failed || lab.failed || orow.failed) {
        err_set(e, FV_ENOMEM, "synth: out of memory");
        goto out;
    }
    so->truth = buf_steal(&truth);
    so->labels = buf_steal(&lab);
    so->oracle = buf_steal(&orow);
    so->lesions = ls->nles;
    so->ctrate = s->plan->ctrate;
    so->test = s->plan->test;
    rc = 0;
out:
    if (rc)
        err_prefix(e, "study %lld", (long long)i);
    buf_free(&truth);
    buf_free(&lab);
    buf_free(&orow);
    oracle_shapes_free(&osh);
    free(pre);
    free(og);
    if (ls)
        free(ls->snap);
    report_free(&s->rep);
    scene_free(&s->scene);
    free(s);
    free(ls);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Workers and the run                                                        */
/* ------------------------------------------------------------------------ */

static void *worker(void *arg)
{
    Ctx *c = arg;
    for (;;) {
        if (atomic_load(&c->failed))
            break;
        long long i = atomic_fetch_add(&c->next, 1);
        if (i >= c->opt->studies)
            break;
        FvErr e = {0};
        if (study_make(c, i, &c->res[i], &e)) {
            pthread_mutex_lock(&c->lock);
            if (!atomic_load(&c->failed)) {
                c->err = e;
                atomic_store(&c->failed, 1);
            }
            pthread_mutex_unlock(&c->lock);
            break;
        }
        atomic_fetch_add(&c->done, 1);
    }
    return NULL;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* The output folder must be new or empty, unless --force replaces a corpus. */
static int prepare_out(const SynthOptions *o, FvErr *e)
{
    if (!fs_exists(o->out))
        return fs_mkdir_p(o->out, e);
    if (!fs_is_dir(o->out))
        return err_set(e, FV_EUSAGE, "%s exists and is not a folder", o->out);
    static const char *const sub[] = {"hospital", "ctrate", "truth"};
    int has = 0;
    for (int i = 0; i < 3; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", o->out, sub[i]);
        if (fs_exists(p)) {
            has = 1;
            if (o->force && nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
                return err_set(e, FV_EIO, "%s: cannot remove: %s", p, strerror(errno));
        }
    }
    if (has && !o->force)
        return err_set(e, FV_EUSAGE, "%s already holds a corpus (hospital/, ctrate/ or truth/); "
                       "use --force to replace it", o->out);
    return 0;
}

/* The class names of the masks written (every id of the phantom's labels
 * must have one). */
static int load_ts_names(Ctx *c, FvErr *e)
{
    TsClasses *t = malloc(sizeof *t);
    if (!t)
        return err_set(e, FV_ENOMEM, "totalseg_classes.tsv: out of memory");
    int rc = ts_classes_load(t, e);
    if (rc == 0 && t->max_id >= TS_NUM)
        rc = err_set(e, FV_EFORMAT, "totalseg_classes.tsv: id %d out of range 1-%d", t->max_id,
                     TS_NUM - 1);
    for (int id = 1; rc == 0 && id < TS_NUM; id++) {
        free(c->ts_names[id]);
        c->ts_names[id] = NULL;
        if (!t->name[id][0])
            rc = err_set(e, FV_EFORMAT, "totalseg_classes.tsv: no name for id %d", id);
        else if (!(c->ts_names[id] = strdup(t->name[id])))
            rc = err_set(e, FV_ENOMEM, "totalseg_classes.tsv: out of memory");
    }
    free(t);
    return rc;
}

int synth_run(const SynthOptions *opt, SynthStats *st, FvErr *e)
{
    memset(st, 0, sizeof *st);
    double t0 = now_seconds();
    if (opt->studies < 1 || opt->studies > 10000000)
        return err_set(e, FV_EUSAGE, "--studies must be in 1..10000000");
    if (opt->test_fraction < 0 || opt->test_fraction > 1 || opt->min_prevalence < 0 ||
        opt->min_prevalence > 1 || opt->noise_rate < 0 || opt->noise_rate > 0.5)
        return err_set(e, FV_EUSAGE, "fractions out of range");
    Ctx *c = calloc(1, sizeof *c);
    if (!c)
        return err_set(e, FV_ENOMEM, "synth: out of memory");
    c->opt = opt;
    pthread_mutex_init(&c->lock, NULL);
    int rc = -1;
    if (onto_load(&c->o, e) || tissue_table_load(&c->tt, e) || lesion_table_load(&c->lt, c->o, e) ||
        phrases_load(&c->ph, c->o, e) || load_ts_names(c, e))
        goto out;
    for (int k = 0; k < 18; k++) {
        int found = 0;
        for (int t = 0; t < c->o->n_find; t++)
            found |= c->o->find[t].ctrate_label && !strcmp(c->o->find[t].ctrate_label, CTRATE_LABELS[k]);
        if (!found) {
            err_set(e, FV_EFORMAT, "findings.tsv: no task carries CT-RATE label '%s'", CTRATE_LABELS[k]);
            goto out;
        }
    }
    if (prepare_out(opt, e) || plan_make(opt, &c->plan, e))
        goto out;
    c->res = calloc((size_t)opt->studies, sizeof *c->res);
    if (!c->res) {
        err_set(e, FV_ENOMEM, "synth: out of memory");
        goto out;
    }
    int nt = opt->threads < 1 ? 1 : opt->threads > 64 ? 64 : opt->threads;
    pthread_t th[64];
    int started = 0;
    for (int k = 1; k < nt; k++)
        if (pthread_create(&th[started], NULL, worker, c) == 0)
            started++;
    Progress pg;
    progress_start(&pg, "synth", opt->studies, "studies");
    /* the calling thread works too, and reports progress between studies */
    for (;;) {
        if (atomic_load(&c->failed))
            break;
        long long i = atomic_fetch_add(&c->next, 1);
        if (i >= opt->studies)
            break;
        FvErr e2 = {0};
        if (study_make(c, i, &c->res[i], &e2)) {
            pthread_mutex_lock(&c->lock);
            if (!atomic_load(&c->failed)) {
                c->err = e2;
                atomic_store(&c->failed, 1);
            }
            pthread_mutex_unlock(&c->lock);
            break;
        }
        atomic_fetch_add(&c->done, 1);
        progress_set(&pg, atomic_load(&c->done));
    }
    for (int k = 0; k < started; k++)
        pthread_join(th[k], NULL);
    progress_set(&pg, atomic_load(&c->done));
    progress_end(&pg);
    if (atomic_load(&c->failed)) {
        *e = c->err;
        goto out;
    }
    /* truth and CT-RATE tables, in study order */
    {
        Buf tl = {0}, tj = {0}, to = {0}, cr = {0}, cl = {0}, cm = {0};
        StudyOut tot = {0};
        buf_puts(&tl, "study_id");
        for (int t = 0; t < c->o->n_find; t++)
            buf_printf(&tl, ",%s", c->o->find[t].id);
        buf_putc(&tl, '\n');
        buf_puts(&to, tl.data ? tl.data : "");
        buf_puts(&cr, "VolumeName,ClinicalInformation_EN,Technique_EN,Findings_EN,Impressions_EN\n");
        buf_puts(&cl, "VolumeName");
        for (int k = 0; k < 18; k++) {
            buf_putc(&cl, ',');
            csv_put_field(&cl, CTRATE_LABELS[k]);
        }
        buf_putc(&cl, '\n');
        buf_puts(&cm, "VolumeName,Manufacturer,PatientSex,PatientAge,XYSpacing,ZSpacing,"
                      "RescaleSlope,RescaleIntercept,ImagePositionPatient,ImageOrientationPatient,"
                      "Rows,Columns,NumberofSlices\n");
        for (int64_t i = 0; i < opt->studies; i++) {
            StudyOut *so = &c->res[i];
            buf_puts(&tl, so->labels);
            buf_puts(&tj, so->truth);
            buf_puts(&to, so->oracle);
            if (so->ctrate) {
                buf_puts(&cr, so->rep_row);
                buf_puts(&cl, so->lab_row);
                buf_puts(&cm, so->meta_row);
                st->ctrate++;
            } else
                st->hospital++;
            st->test += so->test;
            st->lesions += so->lesions;
            st->findings_present += so->present;
            st->findings_reported += so->reported;
            tot.files += so->files;
            tot.bytes += so->bytes;
        }
        int bad = tl.failed || tj.failed || to.failed || cr.failed || cl.failed || cm.failed;
        if (bad)
            err_set(e, FV_ENOMEM, "synth: out of memory");
        else if (write_file(c, &tot, "truth/labels.csv", tl.data, tl.len, e) ||
                 write_file(c, &tot, "truth/studies.jsonl", tj.data, tj.len, e) ||
                 write_file(c, &tot, "truth/oracle.csv", to.data, to.len, e) ||
                 (st->ctrate && (write_file(c, &tot, "ctrate/reports.csv", cr.data, cr.len, e) ||
                                 write_file(c, &tot, "ctrate/labels.csv", cl.data, cl.len, e) ||
                                 write_file(c, &tot, "ctrate/metadata.csv", cm.data, cm.len, e))))
            bad = 1;
        buf_free(&tl);
        buf_free(&tj);
        buf_free(&to);
        buf_free(&cr);
        buf_free(&cl);
        buf_free(&cm);
        if (bad)
            goto out;
        st->files = tot.files;
        st->bytes = tot.bytes;
    }
    st->studies = opt->studies;
    rc = 0;
out:
    if (c->res)
        for (int64_t i = 0; i < opt->studies; i++) {
            free(c->res[i].truth);
            free(c->res[i].labels);
            free(c->res[i].oracle);
            free(c->res[i].rep_row);
            free(c->res[i].lab_row);
            free(c->res[i].meta_row);
        }
    free(c->res);
    free(c->plan);
    for (int id = 0; id < TS_NUM; id++)
        free(c->ts_names[id]);
    phrases_free(&c->ph);
    lesion_table_free(&c->lt);
    onto_free(&c->o);
    pthread_mutex_destroy(&c->lock);
    free(c);
    st->seconds = now_seconds() - t0;
    return rc;
}
