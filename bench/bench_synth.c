/* bench_synth: speed of `fvlm synth` (small studies) in MB written per
 * second, printed beside two floors measured in the same run on the same
 * bytes:
 *   - write: the same number of bytes written with plain fwrite to the same
 *     folder (the disk / page cache limit);
 *   - gzip: the compression synth cannot avoid: every stream it gzipped (the
 *     raw NIfTI volumes, also those inside archives, and the tar archives)
 *     and every zip member, inflated back and compressed again with
 *     libdeflate at synth's level; zlib at level 6 (what gzip(1) would do)
 *     on the same streams is the peer.
 * Times are CPU seconds of this process (the machine is shared), wall
 * seconds in brackets.
 * One thread unless told otherwise.
 *
 * usage: bench_synth [STUDIES] [DIR] [THREADS]   (defaults: 30, /tmp/fvlm-bench-synth, 1) */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <ftw.h>
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>

#include "buf.h"
#include "fsutil.h"
#include "log.h"
#include "sha256.h"
#include "synth.h"

/* synth's gzip level (synth/synth.c GZ_LEVEL) */
enum { LEVEL = 2 };

typedef struct Streams {
    Buf *raw;   /* uncompressed payloads synth compressed */
    int n, cap;
    size_t raw_bytes, written;
} Streams;

static void add_stream(Streams *s, const void *p, size_t n)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->raw = realloc(s->raw, sizeof(Buf) * (size_t)s->cap);
    }
    Buf *b = &s->raw[s->n++];
    memset(b, 0, sizeof *b);
    buf_append(b, p, n);
    s->raw_bytes += n;
}

static int gunzip(const void *in, size_t n, Buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return -1;
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)n;
    int rc;
    do {
        buf_reserve(out, 1 << 20);
        z.next_out = (unsigned char *)out->data + out->len;
        z.avail_out = (uInt)(out->cap - out->len - 1);
        rc = inflate(&z, Z_NO_FLUSH);
        out->len = (size_t)((char *)z.next_out - out->data);
    } while (rc == Z_OK);
    inflateEnd(&z);
    return rc == Z_STREAM_END ? 0 : -1;
}

static Streams *g_streams;

/* Adds the raw bytes of every member of an archive, and the raw volume of
 * every .nii.gz member (synth compressed those too), each distinct one once:
 * synth encodes the all-zero volume of absent classes once per archive. */
static void add_members(const void *data, size_t n, int zip)
{
    char (*seen)[65] = NULL;
    int nseen = 0;
    struct archive *a = archive_read_new();
    if (zip)
        archive_read_support_format_zip(a);
    else
        archive_read_support_format_tar(a);
    if (archive_read_open_memory(a, data, n) == ARCHIVE_OK) {
        struct archive_entry *en;
        while (archive_read_next_header(a, &en) == ARCHIVE_OK) {
            Buf m = {0};
            char chunk[65536];
            la_ssize_t got;
            while ((got = archive_read_data(a, chunk, sizeof chunk)) > 0)
                buf_append(&m, chunk, (size_t)got);
            const char *name = archive_entry_pathname(en);
            size_t nl = strlen(name);
            if (nl > 7 && !strcmp(name + nl - 7, ".nii.gz")) {
                Buf raw = {0};
                char h[65];
                sha256_hex(m.data, m.len, h);
                int dup = 0;
                for (int i = 0; i < nseen && !dup; i++)
                    dup = !strcmp(seen[i], h);
                if (!dup && gunzip(m.data, m.len, &raw) == 0) {
                    add_stream(g_streams, raw.data, raw.len);
                    seen = realloc(seen, sizeof *seen * (size_t)(nseen + 1));
                    memcpy(seen[nseen++], h, 65);
                }
                buf_free(&raw);
            }
            if (zip && m.len)
                add_stream(g_streams, m.data, m.len);
            buf_free(&m);
        }
    }
    archive_read_free(a);
    free(seen);
}

static int collect(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (flag != FTW_F)
        return 0;
    char *data;
    size_t n;
    FvErr e = {0};
    if (fs_read_file(path, (size_t)1 << 31, &data, &n, &e))
        return 0;
    g_streams->written += n;
    size_t pl = strlen(path);
    if (pl > 3 && !strcmp(path + pl - 3, ".gz")) {
        Buf raw = {0};
        if (gunzip(data, n, &raw) == 0) {
            add_stream(g_streams, raw.data, raw.len);
            if (pl > 7 && !strcmp(path + pl - 7, ".tar.gz"))
                add_members(raw.data, raw.len, 0);
        }
        buf_free(&raw);
    } else if (pl > 4 && !strcmp(path + pl - 4, ".zip"))
        add_members(data, n, 1);
    free(data);
    return 0;
}

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int rm_entry(const char *p, const struct stat *sb, int f, struct FTW *w)
{
    (void)sb;
    (void)f;
    (void)w;
    return remove(p);
}

int main(int argc, char **argv)
{
    int studies = argc > 1 ? atoi(argv[1]) : 30;
    const char *dir = argc > 2 ? argv[2] : "/tmp/fvlm-bench-synth";
    int threads = argc > 3 ? atoi(argv[3]) : 1;
    if (studies < 1 || threads < 1) {
        fprintf(stderr, "usage: bench_synth [STUDIES] [DIR] [THREADS]\n");
        return 2;
    }
    log_set_level(LOG_ERROR);
    char out[4096];
    snprintf(out, sizeof out, "%s/corpus", dir);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    SynthOptions o;
    synth_options_default(&o);
    o.out = out;
    o.studies = studies;
    o.seed = 1;
    o.size = SYNTH_SMALL;
    o.threads = threads;
    SynthStats st;
    FvErr e = {0};
    double c0 = cpu_seconds();
    if (synth_run(&o, &st, &e)) {
        fprintf(stderr, "synth: %s\n", e.msg);
        return 1;
    }
    double cpu_synth = cpu_seconds() - c0;
    double mb = st.bytes / 1e6;
    printf("synth (small, %d studies, %d thread%s): %.1f MB in %.2f CPU s (%.2f s wall) = "
           "%.1f MB/s per core, %.2f studies/s per core\n", studies, threads,
           threads > 1 ? "s" : "", mb, cpu_synth, st.seconds, mb / cpu_synth, studies / cpu_synth);

    /* floor 1: the same bytes through fwrite */
    char path[4200];
    snprintf(path, sizeof path, "%s/fwrite.bin", dir);
    char *block = calloc(1, 1 << 20);
    for (int i = 0; i < (1 << 20); i++)
        block[i] = (char)(i * 2654435761u >> 24);
    double t0 = cpu_seconds(), w0 = now_seconds();
    FILE *f = fopen(path, "wb");
    int64_t left = st.bytes;
    while (f && left > 0) {
        size_t n = left > (1 << 20) ? (1 << 20) : (size_t)left;
        fwrite(block, 1, n, f);
        left -= (int64_t)n;
    }
    if (f)
        fclose(f);
    double t_write = cpu_seconds() - t0, w_write = now_seconds() - w0;
    remove(path);
    free(block);

    /* floor 2: the compression synth had to do, on the same payloads */
    Streams s;
    memset(&s, 0, sizeof s);
    g_streams = &s;
    nftw(out, collect, 16, FTW_PHYS);
    struct libdeflate_compressor *c = libdeflate_alloc_compressor(LEVEL);
    size_t comp = 0;
    t0 = cpu_seconds();
    w0 = now_seconds();
    for (int i = 0; i < s.n; i++) {
        size_t bound = libdeflate_gzip_compress_bound(c, s.raw[i].len);
        char *o2 = malloc(bound);
        comp += libdeflate_gzip_compress(c, s.raw[i].data, s.raw[i].len, o2, bound);
        free(o2);
    }
    double t_defl = cpu_seconds() - t0, w_defl = now_seconds() - w0;
    libdeflate_free_compressor(c);
    size_t zcomp = 0;
    t0 = cpu_seconds();
    for (int i = 0; i < s.n; i++) {
        uLongf bound = compressBound((uLong)s.raw[i].len);
        unsigned char *o2 = malloc(bound);
        compress2(o2, &bound, (const unsigned char *)s.raw[i].data, (uLong)s.raw[i].len, 6);
        zcomp += bound;
        free(o2);
    }
    double t_zlib = cpu_seconds() - t0;
    for (int i = 0; i < s.n; i++)
        buf_free(&s.raw[i]);
    free(s.raw);
    double floor_s = t_defl + t_write;
    printf("floor write:   %.1f MB with fwrite in %.3f CPU s (%.3f s wall) = %.0f MB/s\n", mb, t_write,
           w_write, mb / t_write);
    printf("floor gzip:    %.1f MB of raw streams -> %.1f MB with libdeflate level %d in %.2f CPU s "
           "(%.2f s wall) = %.1f MB/s written\n", s.raw_bytes / 1e6, comp / 1e6, LEVEL, t_defl, w_defl,
           comp / 1e6 / t_defl);
    printf("peer zlib -6:  same streams -> %.1f MB in %.2f CPU s = %.1f MB/s written\n", zcomp / 1e6,
           t_zlib, zcomp / 1e6 / t_zlib);
    printf("ratios: synth takes %.2fx the CPU of the gzip+write floor (%.0f%% of it is making the "
           "studies: phantom, lesions, reports, encoders); zlib -6 alone would take %.2fx synth\n",
           threads == 1 ? cpu_synth / floor_s : st.seconds / (w_defl + w_write),
           100 * (1 - floor_s / cpu_synth), t_zlib / cpu_synth);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
