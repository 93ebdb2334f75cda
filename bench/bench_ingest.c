/* bench_ingest: ingest throughput beside its floor and beside nibabel.
 *
 * usage: bench_ingest DIR [--size-mb N] [--fvlm PATH] [--python PATH]
 *
 * When DIR does not exist, writes a synthetic corpus of at least N MB of
 * archives there (default 1024): studies alternate between a DICOM series
 * in a .tar.gz (explicit VR LE, 512 x 512 slices at 0.7 mm, 1.25 mm apart,
 * a scout, a TotalSegmentator-style seg.nii.gz and a GB18030/UTF-8 report
 * with PHI header lines) and a NIfTI study in a .tar (ct.nii.gz int16,
 * seg.nii.gz, report.txt); the CT NIfTI files are also written loose under
 * DIR/nibabel/ for the nibabel timing. Phantoms have CT-like noise (about
 * 15 HU), so compression ratios are those of real CT. Then, in one run:
 *   floor:   libarchive reading every archive and discarding the bytes
 *            (and inflating the .gz members, which ingest must also do);
 *   ingest:  `fvlm ingest` of DIR/archives into a fresh database;
 *   nibabel: nib.load + np.asanyarray(dataobj) of the same NIfTI volumes.
 * and prints studies/s and MB/s (of archive bytes) side by side, with the
 * ratio to the floor. Run it with nice on a shared machine. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <libdeflate.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "rng.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_ingest: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* ----------------------------------------------------------- the phantom */

enum { NX = 512, NY = 512 };

/* HU of voxel (x, y) of slice z: air, body ellipse, lungs, spine, a liver
 * below the lungs, plus noise. */
static void phantom_slice(int z, int nz, Rng *r, int16_t *out, uint8_t *seg)
{
    double fz = (double)z / nz;
    for (int y = 0; y < NY; y++)
        for (int x = 0; x < NX; x++) {
            double dx = (x - 256.0) / 200.0, dy = (y - 260.0) / 150.0;
            double hu = -1000;
            uint8_t lab = 0;
            if (dx * dx + dy * dy < 1) {
                hu = 40;
                double lx = (fabs(x - 256.0) - 90) / 60.0, ly = (y - 230.0) / 90.0;
                if (fz > 0.45 && lx * lx + ly * ly < 1) {
                    hu = -850;
                    lab = x < 256 ? 14 : 11; /* lower lobes */
                }
                if (fz <= 0.45 && fz > 0.15 && (x - 200.0) * (x - 200.0) / 8000 +
                                                       (y - 250.0) * (y - 250.0) / 5000 < 1) {
                    hu = 60;
                    lab = 5; /* liver */
                }
                double sx = (x - 256.0) / 22, sy = (y - 360.0) / 22;
                if (sx * sx + sy * sy < 1) {
                    hu = 700;
                    lab = 32; /* a vertebra */
                }
            }
            /* noise: sum of four uniforms, sd about 15 HU */
            uint64_t u = rng_u64(r);
            double n = ((double)(u & 0xFFFF) + (double)(u >> 16 & 0xFFFF) +
                        (double)(u >> 32 & 0xFFFF) + (double)(u >> 48)) / 65536.0 - 2.0;
            out[y * NX + x] = (int16_t)lrint(hu + n * 26);
            if (seg)
                seg[y * NX + x] = lab;
        }
}

/* ----------------------------------------------------------- file writers */

typedef struct Mem {
    unsigned char *p;
    size_t n, cap;
} Mem;

static void mem_put(Mem *m, const void *d, size_t n)
{
    if (m->n + n > m->cap) {
        m->cap = (m->n + n) * 2;
        m->p = realloc(m->p, m->cap);
        if (!m->p)
            die("realloc");
    }
    memcpy(m->p + m->n, d, n);
    m->n += n;
}

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* A NIfTI-1 header (RAS: x flipped from the DICOM column order is not
 * needed; the volume is simply stored RAS with sform). */
static void nifti_header(unsigned char h[352], int nx, int ny, int nz, int dtype, int bitpix,
                         double sx, double sy, double sz)
{
    memset(h, 0, 352);
    put_le(h, 348, 4);
    int16_t dims[8] = {3, (int16_t)nx, (int16_t)ny, (int16_t)nz, 1, 1, 1, 1};
    for (int i = 0; i < 8; i++)
        put_le(h + 40 + 2 * i, (uint16_t)dims[i], 2);
    put_le(h + 70, (uint64_t)dtype, 2);
    put_le(h + 72, (uint64_t)bitpix, 2);
    float pix[8] = {1, (float)sx, (float)sy, (float)sz, 1, 1, 1, 1};
    memcpy(h + 76, pix, 32);
    float off = 352;
    memcpy(h + 108, &off, 4);
    h[123] = 2; /* mm */
    put_le(h + 254, 1, 2);
    /* The DICOM series' grid: its first voxel is LPS (-180, -180, -300), the
     * last column and row RAS (180 - 511 * 0.7, ...). */
    float ox = (float)(180 - (nx - 1) * sx), oy = (float)(180 - (ny - 1) * sy);
    float srow[12] = {(float)sx, 0, 0, ox, 0, (float)sy, 0, oy, 0, 0, (float)sz, -300};
    memcpy(h + 280, srow, 48);
    memcpy(h + 344, "n+1", 4);
}

static void gzip_mem(const Mem *in, Mem *out)
{
    struct libdeflate_compressor *c = libdeflate_alloc_compressor(6);
    size_t bound = libdeflate_gzip_compress_bound(c, in->n);
    out->p = malloc(bound);
    if (!out->p)
        die("malloc");
    out->n = libdeflate_gzip_compress(c, in->p, in->n, out->p, bound);
    out->cap = bound;
    libdeflate_free_compressor(c);
}

/* DICOM explicit VR little endian elements. */
static void de(Mem *m, int g, int e, const char *vr, const void *v, size_t n)
{
    unsigned char h[12];
    put_le(h, (uint64_t)g, 2);
    put_le(h + 2, (uint64_t)e, 2);
    memcpy(h + 4, vr, 2);
    int lng = !strcmp(vr, "OB") || !strcmp(vr, "OW") || !strcmp(vr, "UN") || !strcmp(vr, "SQ");
    if (lng) {
        h[6] = h[7] = 0;
        put_le(h + 8, n, 4);
        mem_put(m, h, 12);
    } else {
        put_le(h + 6, n, 2);
        mem_put(m, h, 8);
    }
    mem_put(m, v, n);
}

static void ds(Mem *m, int g, int e, const char *vr, const char *s)
{
    char b[256];
    size_t n = strlen(s);
    memcpy(b, s, n);
    if (n % 2)
        b[n++] = vr[0] == 'U' && vr[1] == 'I' ? '\0' : ' ';
    de(m, g, e, vr, b, n);
}

static void dus(Mem *m, int g, int e, int v)
{
    unsigned char b[2];
    put_le(b, (uint64_t)v, 2);
    de(m, g, e, "US", b, 2);
}

static void dicom_slice(Mem *m, int study, int k, int nz, const int16_t *px, int rows, int cols,
                        int scout)
{
    m->n = 0;
    unsigned char pre[132] = {0};
    memcpy(pre + 128, "DICM", 4);
    mem_put(m, pre, 132);
    char uid[96], ts[] = "1.2.840.10008.1.2.1";
    Mem meta = {0};
    snprintf(uid, sizeof uid, "1.2.826.0.1.3680043.8.498.9.%d.%d", study, k + 1);
    ds(&meta, 0x0002, 0x0002, "UI", "1.2.840.10008.5.1.4.1.1.2");
    ds(&meta, 0x0002, 0x0003, "UI", uid);
    ds(&meta, 0x0002, 0x0010, "UI", ts);
    unsigned char gl[4];
    put_le(gl, meta.n, 4);
    de(m, 0x0002, 0x0000, "UL", gl, 4);
    mem_put(m, meta.p, meta.n);
    free(meta.p);
    char b[128];
    ds(m, 0x0008, 0x0008, "CS", scout ? "ORIGINAL\\PRIMARY\\LOCALIZER" : "ORIGINAL\\PRIMARY\\AXIAL");
    ds(m, 0x0008, 0x0016, "UI", "1.2.840.10008.5.1.4.1.1.2");
    ds(m, 0x0008, 0x0018, "UI", uid);
    ds(m, 0x0008, 0x0060, "CS", "CT");
    snprintf(b, sizeof b, "PATIENT%03d^BENCH", study);
    ds(m, 0x0010, 0x0010, "PN", b);
    snprintf(b, sizeof b, "PID%06d", study);
    ds(m, 0x0010, 0x0020, "LO", b);
    ds(m, 0x0010, 0x0030, "DA", "19600101");
    snprintf(b, sizeof b, "1.2.826.0.1.3680043.8.498.9.%d", study);
    ds(m, 0x0020, 0x000D, "UI", b);
    snprintf(b, sizeof b, "1.2.826.0.1.3680043.8.498.9.%d.%d", study, scout ? 1 : 2);
    ds(m, 0x0020, 0x000E, "UI", b);
    ds(m, 0x0020, 0x0011, "IS", scout ? "1" : "2");
    snprintf(b, sizeof b, "%d", k + 1);
    ds(m, 0x0020, 0x0013, "IS", b);
    if (scout) {
        ds(m, 0x0020, 0x0032, "DS", "-180\\0\\-300");
        ds(m, 0x0020, 0x0037, "DS", "1\\0\\0\\0\\0\\-1");
    } else {
        snprintf(b, sizeof b, "-180\\-180\\%.2f", -300 + 1.25 * k);
        ds(m, 0x0020, 0x0032, "DS", b);
        ds(m, 0x0020, 0x0037, "DS", "1\\0\\0\\0\\1\\0");
    }
    dus(m, 0x0028, 0x0002, 1);
    ds(m, 0x0028, 0x0004, "CS", "MONOCHROME2");
    dus(m, 0x0028, 0x0010, rows);
    dus(m, 0x0028, 0x0011, cols);
    ds(m, 0x0028, 0x0030, "DS", "0.7\\0.7");
    dus(m, 0x0028, 0x0100, 16);
    dus(m, 0x0028, 0x0101, 16);
    dus(m, 0x0028, 0x0102, 15);
    dus(m, 0x0028, 0x0103, 1);
    ds(m, 0x0028, 0x1052, "DS", "-1024");
    ds(m, 0x0028, 0x1053, "DS", "1");
    /* stored = HU + 1024 */
    int16_t *st = malloc((size_t)rows * cols * 2);
    for (int i = 0; i < rows * cols; i++)
        st[i] = (int16_t)(px[i] + 1024);
    de(m, 0x7FE0, 0x0010, "OW", st, (size_t)rows * cols * 2);
    free(st);
    (void)nz;
}

#define REPORT_EN                                                                          \
    "Patient: Bench Patient %d\nMRN: 88%06d\nDate: 2021-%02d-%02d\n\n"                        \
    "Findings: The lungs are clear. No pleural effusion. The liver is normal in size. "      \
    "A 4 mm nodule in the right lower lobe.\n\nImpression: Small pulmonary nodule.\n"

static void add_entry(struct archive *a, const char *name, const void *d, size_t n)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)n);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    if (archive_write_header(a, e) != ARCHIVE_OK || archive_write_data(a, d, n) != (la_ssize_t)n) {
        fprintf(stderr, "archive: %s\n", archive_error_string(a));
        exit(1);
    }
    archive_entry_free(e);
}

static int64_t file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (int64_t)st.st_size : 0;
}

static void make_corpus(const char *dir, int64_t target_mb)
{
    char p[4096];
    snprintf(p, sizeof p, "mkdir -p '%s/archives/hospital/train' '%s/archives/nifti/train' '%s/nibabel'", dir, dir, dir);
    if (system(p) != 0)
        die("mkdir");
    int64_t total = 0;
    for (int s = 0; total < target_mb << 20; s++) {
        Rng r;
        rng_seed(&r, 42, (uint64_t)s);
        int nz = 140 + (int)rng_below(&r, 60);
        int16_t *vol = malloc((size_t)NX * NY * nz * 2);
        uint8_t *seg = malloc((size_t)NX * NY * nz);
        if (!vol || !seg)
            die("malloc");
        for (int z = 0; z < nz; z++)
            phantom_slice(z, nz, &r, vol + (size_t)z * NX * NY, seg + (size_t)z * NX * NY);
        char report[1024];
        snprintf(report, sizeof report, REPORT_EN, s, s, 1 + s % 12, 1 + s % 28);
        /* seg: 0.7 x 0.7 x 1.25 RAS */
        Mem raw = {0}, gz = {0};
        unsigned char h[352];
        nifti_header(h, NX, NY, nz, 2, 8, 0.7, 0.7, 1.25);
        mem_put(&raw, h, 352);
        mem_put(&raw, seg, (size_t)NX * NY * nz);
        gzip_mem(&raw, &gz);
        struct archive *a = archive_write_new();
        archive_write_set_format_pax_restricted(a);
        int dicom = s % 2 == 0;
        if (dicom) {
            archive_write_add_filter_gzip(a);
            snprintf(p, sizeof p, "%s/archives/hospital/train/h%04d.tar.gz", dir, s);
        } else {
            snprintf(p, sizeof p, "%s/archives/nifti/train/n%04d.tar", dir, s);
        }
        if (archive_write_open_filename(a, p) != ARCHIVE_OK)
            die(p);
        if (dicom) {
            /* The DICOM array is (row = y, column = x) in LPS: the RAS
             * phantom's x and y are flipped; ingest flips them back. */
            Mem m = {0};
            int16_t *sl = malloc((size_t)NX * NY * 2);
            for (int k = 0; k < nz; k++) {
                const int16_t *src = vol + (size_t)k * NX * NY;
                for (int y = 0; y < NY; y++)
                    for (int x = 0; x < NX; x++)
                        sl[y * NX + x] = src[(NY - 1 - y) * NX + (NX - 1 - x)];
                dicom_slice(&m, s, k, nz, sl, NY, NX, 0);
                char name[64];
                snprintf(name, sizeof name, "dicom/IM%05d.dcm", (k * 7919) % nz);
                add_entry(a, name, m.p, m.n);
            }
            int16_t scout[128 * 512];
            for (int i = 0; i < 128 * 512; i++)
                scout[i] = (int16_t)(i % 512);
            dicom_slice(&m, s, 0, nz, scout, 128, 512, 1);
            add_entry(a, "dicom/SCOUT.dcm", m.p, m.n);
            free(sl);
            free(m.p);
        } else {
            Mem craw = {0}, cgz = {0};
            nifti_header(h, NX, NY, nz, 4, 16, 0.7, 0.7, 1.25);
            mem_put(&craw, h, 352);
            mem_put(&craw, vol, (size_t)NX * NY * nz * 2);
            gzip_mem(&craw, &cgz);
            add_entry(a, "ct.nii.gz", cgz.p, cgz.n);
            char lp[4200];
            snprintf(lp, sizeof lp, "%s/nibabel/n%04d.nii.gz", dir, s);
            FILE *f = fopen(lp, "wb");
            if (!f || fwrite(cgz.p, 1, cgz.n, f) != cgz.n || fclose(f) != 0)
                die(lp);
            free(craw.p);
            free(cgz.p);
        }
        add_entry(a, "seg.nii.gz", gz.p, gz.n);
        add_entry(a, "report.txt", report, strlen(report));
        if (archive_write_close(a) != ARCHIVE_OK)
            die("archive close");
        archive_write_free(a);
        total += file_size(p);
        fprintf(stderr, "\rbench_ingest: corpus %lld MB of %lld", (long long)(total >> 20),
                (long long)target_mb);
        free(raw.p);
        free(gz.p);
        free(vol);
        free(seg);
    }
    fprintf(stderr, "\n");
}

/* ------------------------------------------------------------ measurements */

typedef struct Files {
    char **p;
    int n;
} Files;

/* libarchive reading every member and discarding it; .gz members are
 * inflated too (libdeflate), since ingest must decompress them. */
static double floor_run(const Files *arch, int inflate_members, int64_t *bytes)
{
    double t0 = now();
    *bytes = 0;
    size_t cap = 64u << 20;
    unsigned char *buf = malloc(cap), *out = NULL;
    size_t outcap = 0;
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    for (int i = 0; i < arch->n; i++) {
        struct archive *a = archive_read_new();
        archive_read_support_filter_all(a);
        archive_read_support_format_all(a);
        if (archive_read_open_filename(a, arch->p[i], 1 << 20) != ARCHIVE_OK)
            die(arch->p[i]);
        struct archive_entry *e;
        while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
            size_t n = 0;
            la_ssize_t k;
            while ((k = archive_read_data(a, buf + n, cap - n)) > 0) {
                n += (size_t)k;
                if (n == cap) {
                    cap *= 2;
                    buf = realloc(buf, cap);
                }
            }
            const char *name = archive_entry_pathname(e);
            size_t nl = strlen(name);
            if (inflate_members && nl > 3 && !strcmp(name + nl - 3, ".gz") && n > 18) {
                size_t isz = (size_t)buf[n - 4] | (size_t)buf[n - 3] << 8 |
                             (size_t)buf[n - 2] << 16 | (size_t)buf[n - 1] << 24;
                if (isz > outcap) {
                    outcap = isz;
                    out = realloc(out, outcap);
                }
                size_t got;
                libdeflate_gzip_decompress(d, buf, n, out, isz, &got);
            }
        }
        *bytes += archive_filter_bytes(a, -1);
        archive_read_free(a);
    }
    libdeflate_free_decompressor(d);
    free(buf);
    free(out);
    return now() - t0;
}

static double timed_system(const char *cmd)
{
    double t0 = now();
    int rc = system(cmd);
    double t = now() - t0;
    if (rc != 0) {
        fprintf(stderr, "bench_ingest: '%s' failed (%d)\n", cmd, rc);
        return -1;
    }
    return t;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_ingest DIR [--size-mb N] [--fvlm PATH] [--python PATH]\n");
        return 2;
    }
    const char *dir = argv[1], *fvlm = getenv("FVLM_BIN"), *py = "/usr/bin/python3";
    int64_t size_mb = 1024;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--size-mb"))
            size_mb = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--fvlm"))
            fvlm = argv[i + 1];
        else if (!strcmp(argv[i], "--python"))
            py = argv[i + 1];
    }
    if (!fvlm)
        fvlm = "build/tools/fvlm";
    struct stat st;
    if (stat(dir, &st) != 0)
        make_corpus(dir, size_mb);
    char p[4200];
    snprintf(p, sizeof p, "%s/archives", dir);
    Files arch = {0}, nibf = {0};
    FvErr e = {0};
    if (fs_list_files(p, &arch.p, &arch.n, &e)) {
        fprintf(stderr, "bench_ingest: %s\n", e.msg);
        return 1;
    }
    int nstudies = arch.n;
    if (!nstudies) {
        fprintf(stderr, "bench_ingest: no archives under %s\n", p);
        return 1;
    }
    /* Warm the page cache once so every contender reads from memory. */
    int64_t bytes;
    floor_run(&arch, 0, &bytes);
    double t_read = floor_run(&arch, 0, &bytes);
    double t_floor = floor_run(&arch, 1, &bytes);
    double mb = (double)bytes / 1e6;
    char cmd[9000];
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s/bench.db' '%s/bench.db-wal' '%s/bench.db-shm' '%s/bench.db.tensors' && "
             "FVLM_DEID_KEY=bench-key-123456 '%s' ingest --quiet --db '%s/bench.db' '%s/archives'",
             dir, dir, dir, dir, fvlm, dir, dir);
    double t_ingest = timed_system(cmd);
    snprintf(cmd, sizeof cmd,
             "FVLM_DEID_KEY=bench-key-123456 '%s' ingest --quiet --db '%s/bench.db' '%s/archives'",
             fvlm, dir, dir);
    double t_rerun = timed_system(cmd);
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s/nifti.db' '%s/nifti.db-wal' '%s/nifti.db-shm' '%s/nifti.db.tensors' && "
             "FVLM_DEID_KEY=bench-key-123456 '%s' ingest --quiet --db '%s/nifti.db' "
             "'%s/archives/nifti'",
             dir, dir, dir, dir, fvlm, dir, dir);
    double t_nifti = timed_system(cmd);
    snprintf(p, sizeof p, "%s/nibabel", dir);
    if (fs_list_files(p, &nibf.p, &nibf.n, &e))
        fprintf(stderr, "bench_ingest: %s\n", e.msg);
    double t_nib = -1;
    int64_t nib_bytes = 0;
    for (int i = 0; i < nibf.n; i++)
        nib_bytes += file_size(nibf.p[i]);
    snprintf(cmd, sizeof cmd,
             "'%s' -c 'import sys,glob,time,numpy as np,nibabel as nib\n"
             "fs=sorted(glob.glob(sys.argv[1]+\"/*.nii.gz\"))\n"
             "t=time.perf_counter()\n"
             "for f in fs: np.asanyarray(nib.load(f).dataobj)\n"
             "print(time.perf_counter()-t)' '%s/nibabel' > '%s/nib.time' 2>/dev/null",
             py, dir, dir);
    if (system(cmd) == 0) {
        snprintf(p, sizeof p, "%s/nib.time", dir);
        FILE *f = fopen(p, "r");
        if (f && fscanf(f, "%lf", &t_nib) != 1)
            t_nib = -1;
        if (f)
            fclose(f);
    }
    printf("ingest benchmark: %d studies, %.0f MB of archives (%s)\n", nstudies, mb, dir);
    printf("%-44s %9s %10s %9s %9s\n", "", "seconds", "studies/s", "MB/s", "x floor");
    printf("%-44s %9.2f %10.2f %9.1f %9.2f\n", "libarchive read, bytes discarded", t_read,
           nstudies / t_read, mb / t_read, t_read / t_floor);
    printf("%-44s %9.2f %10.2f %9.1f %9.2f\n", "floor: read + inflate .gz members", t_floor,
           nstudies / t_floor, mb / t_floor, 1.0);
    if (t_ingest > 0)
        printf("%-44s %9.2f %10.2f %9.1f %9.2f\n", "fvlm ingest (new corpus)", t_ingest,
               nstudies / t_ingest, mb / t_ingest, t_ingest / t_floor);
    if (t_rerun > 0)
        printf("%-44s %9.2f %10.2f %9.1f %9.2f\n", "fvlm ingest again (all members known)",
               t_rerun, nstudies / t_rerun, mb / t_rerun, t_rerun / t_floor);
    if (t_nifti > 0)
        printf("%-44s %9.2f %10.2f %9.1f %9s\n", "fvlm ingest of the NIfTI studies only",
               t_nifti, nibf.n / t_nifti, (double)nib_bytes / 1e6 / t_nifti, "-");
    if (t_nib > 0)
        printf("%-44s %9.2f %10.2f %9.1f %9s\n", "nibabel load of the same NIfTI volumes", t_nib,
               nibf.n / t_nib, (double)nib_bytes / 1e6 / t_nib, "-");
    else
        printf("nibabel: not measured (no %s with nibabel)\n", py);
    return 0;
}
