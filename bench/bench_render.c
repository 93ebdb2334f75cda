/* bench_render: how long the audit viewer's slice PNG takes (the goal: a
 * 512 x 512 slice in at most 20 ms at p95), beside its floor, the PNG
 * encoding alone of the same RGB image.
 *
 * Builds a phantom CT of 512 x 512 x N voxels (default N = 128 slices of
 * 3 mm, 1 mm in-plane, as the corpus grid): air, a body ellipse of soft
 * tissue, two lungs, a spine and ribs-like ring, all with Gaussian noise of
 * 12 HU (noise is what makes CT slices hard to compress), and its
 * TotalSegmentator-style mask; writes both as safetensors files in a
 * temporary folder and renders through the files and a RenderCache, as the
 * server does. For each plane (axial, coronal, sagittal) and overlay (none,
 * outline, fill of the lungs with their box) it renders --slices random
 * slices and prints p50 and p95 of:
 *   total    render_slice_png (map, resample, window, overlay, encode)
 *   pixels   render_slice_rgb alone
 *   encode   render_png_encode of the same image alone (the floor)
 * and the PNG size. A second table compares zlib levels and PNG filters on
 * one axial slice (why render.c uses level 1 and the Up filter).
 * Run it with nice on a shared machine:  nice build/bench/bench_render
 * Options: --slices K (default 100), --nz N (default 128), --window lung |
 * mediastinum | bone (default lung), --cpu (CPU time instead of wall
 * clock), --db CORPUS.db --study ID [--anatomy A] to measure a study of a
 * real corpus instead. */
#include <math.h>
#include <spng.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "fsutil.h"
#include "ontology.h"
#include "render.h"
#include "rng.h"
#include "safetensors.h"

/* Time in ms: wall clock by default; with --cpu the thread's CPU time, so a
 * busy shared machine (other processes taking the cores) does not count. */
static clockid_t g_clock = CLOCK_MONOTONIC;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(g_clock, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* The slowest case's p95 (the figure the goal is about) and its name. */
static double g_worst;
static char g_worst_case[96];

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* p-th percentile (0..100) of n values, nearest rank; sorts v. */
static double pct(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    int k = (int)ceil(p / 100.0 * n) - 1;
    return v[k < 0 ? 0 : k >= n ? n - 1 : k];
}

static int die(const char *what, const FvErr *e)
{
    fprintf(stderr, "bench_render: %s: %s\n", what, e->msg);
    return 1;
}

/* ------------------------------------------------------------------ phantom */

static double gauss(Rng *r)
{
    double u = rng_uniform(r), v = rng_uniform(r);
    return sqrt(-2.0 * log(u + 1e-300)) * cos(2 * M_PI * v);
}

/* HU and labels of a chest-like phantom (z, y, x), voxels 1 x 1 mm in-plane. */
static void phantom(int16_t *hu, uint8_t *m, int64_t nz, int64_t ny, int64_t nx)
{
    Rng r;
    rng_seed(&r, 12, 0);
    for (int64_t z = 0; z < nz; z++)
        for (int64_t y = 0; y < ny; y++)
            for (int64_t x = 0; x < nx; x++) {
                double fy = (y - ny * 0.5) / (ny * 0.36), fx = (x - nx * 0.5) / (nx * 0.44);
                double body = fy * fy + fx * fx;
                double h = -1000;
                int lab = 0;
                if (body <= 1) {
                    h = 40;
                    double ly = (y - ny * 0.52) / (ny * 0.22), lz = (z - nz * 0.55) / (nz * 0.42);
                    double lr = (x - nx * 0.32) / (nx * 0.12), ll = (x - nx * 0.68) / (nx * 0.12);
                    if (ly * ly + lr * lr + lz * lz <= 1) {
                        h = -850;
                        lab = 10;
                    } else if (ly * ly + ll * ll + lz * lz <= 1) {
                        h = -850;
                        lab = 11;
                    } else if (body > 0.86) {
                        h = 650;  /* the ring of ribs */
                        lab = 92;
                    }
                    double sy = (y - ny * 0.22) / (ny * 0.05), sx = (x - nx * 0.5) / (nx * 0.05);
                    if (sy * sy + sx * sx <= 1) {
                        h = 700;
                        lab = 32;
                    }
                }
                h += 12 * gauss(&r);
                hu[(z * ny + y) * nx + x] = (int16_t)lrint(h);
                m[(z * ny + y) * nx + x] = (uint8_t)lab;
            }
}

/* ------------------------------------------------------------------ runs */

static int run_case(RenderReq *req, int slices, Rng *rng, FvErr *e)
{
    int n = req->plane == RENDER_AXIAL ? 0 : req->plane == RENDER_CORONAL ? 1 : 2;
    double *tt = malloc(sizeof(double) * (size_t)slices * 3);
    if (!tt)
        return err_set(e, FV_ENOMEM, "out of memory");
    double *tp = tt + slices, *te = tt + 2 * slices;
    Buf png = {0}, png2 = {0};
    size_t bytes = 0;
    int w = 0, h = 0;
    for (int i = 0; i < slices; i++) {
        /* Slices in the middle 80%: the ends of a volume are mostly air. */
        int64_t len = req->dims[n];
        req->index = len / 10 + (int64_t)rng_below(rng, (uint64_t)(len - len / 5 > 0 ? len - len / 5 : 1));
        double t0 = now_ms();
        if (render_slice_png(req, &png, e))
            goto fail;
        double t1 = now_ms();
        uint8_t *rgb;
        if (render_slice_rgb(req, &rgb, &w, &h, NULL, e))
            goto fail;
        double t2 = now_ms();
        int rc = render_png_encode(rgb, w, h, &png2, e);
        double t3 = now_ms();
        free(rgb);
        if (rc)
            goto fail;
        tt[i] = t1 - t0;
        tp[i] = t2 - t1;
        te[i] = t3 - t2;
        bytes += png.len;
    }
    static const char *ov[] = {"none", "outline", "fill"};
    double p95 = pct(tt, slices, 95);
    printf("%-9s %-8s %4d x %-4d %7.2f %7.2f   %7.2f %7.2f   %7.2f %7.2f   %6.0f\n",
           render_plane_name(req->plane), ov[req->overlay], w, h, pct(tt, slices, 50), p95,
           pct(tp, slices, 50), pct(tp, slices, 95), pct(te, slices, 50), pct(te, slices, 95),
           bytes / 1024.0 / slices);
    if (p95 > g_worst) {
        g_worst = p95;
        snprintf(g_worst_case, sizeof g_worst_case, "%s %s, %d x %d", render_plane_name(req->plane),
                 ov[req->overlay], w, h);
    }
    free(tt);
    buf_free(&png);
    buf_free(&png2);
    return 0;
fail:
    free(tt);
    buf_free(&png);
    buf_free(&png2);
    return -1;
}

static int write_cb(spng_ctx *ctx, void *user, void *data, size_t len)
{
    (void)ctx;
    return buf_append(user, data, len) ? SPNG_IO_ERROR : 0;
}

/* One encoder setting on one image: p50 ms over reps, PNG bytes. */
static void encoder_row(const uint8_t *rgb, int w, int h, int level, int filter, const char *fname,
                        int strategy, int grey, int reps)
{
    double *t = malloc(sizeof(double) * (size_t)reps);
    uint8_t *img = malloc((size_t)w * h * 3);
    Buf b = {0};
    if (!t || !img) {
        free(t);
        free(img);
        return;
    }
    /* grey: the red channel alone (the grey image without its overlay) */
    for (size_t i = 0; i < (size_t)w * h * 3; i++)
        img[i] = grey ? rgb[3 * (i % ((size_t)w * h))] : rgb[i];
    for (int i = 0; i < reps; i++) {
        buf_reset(&b);
        double t0 = now_ms();
        spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
        struct spng_ihdr ih = {.width = (uint32_t)w, .height = (uint32_t)h, .bit_depth = 8,
                               .color_type = grey ? SPNG_COLOR_TYPE_GRAYSCALE
                                                  : SPNG_COLOR_TYPE_TRUECOLOR};
        spng_set_png_stream(ctx, write_cb, &b);
        spng_set_ihdr(ctx, &ih);
        spng_set_option(ctx, SPNG_IMG_COMPRESSION_LEVEL, level);
        spng_set_option(ctx, SPNG_FILTER_CHOICE, filter);
        spng_set_option(ctx, SPNG_IMG_COMPRESSION_STRATEGY, strategy);
        int rc = spng_encode_image(ctx, img, (size_t)w * h * (grey ? 1 : 3), SPNG_FMT_PNG,
                                   SPNG_ENCODE_FINALIZE);
        spng_ctx_free(ctx);
        t[i] = rc ? NAN : now_ms() - t0;
    }
    static const char *strat[] = {"default", "filtered", "huffman", "rle", "fixed"};
    printf("  %-5s zlib level %d, %-8s strategy, filter %-8s %7.2f ms  %6.0f KB\n",
           grey ? "grey" : "RGB", level, strat[strategy], fname, pct(t, reps, 50), b.len / 1024.0);
    free(t);
    free(img);
    buf_free(&b);
}

int main(int argc, char **argv)
{
    int slices = 100;
    int64_t nz = 128;
    const char *dbpath = NULL, *anatomy = "lung", *window = "lung";
    int64_t study = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--slices") && i + 1 < argc)
            slices = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--nz") && i + 1 < argc)
            nz = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--window") && i + 1 < argc)
            window = argv[++i];
        else if (!strcmp(argv[i], "--cpu"))
            g_clock = CLOCK_THREAD_CPUTIME_ID;
        else if (!strcmp(argv[i], "--db") && i + 1 < argc)
            dbpath = argv[++i];
        else if (!strcmp(argv[i], "--study") && i + 1 < argc)
            study = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--anatomy") && i + 1 < argc)
            anatomy = argv[++i];
        else {
            fprintf(stderr, "usage: bench_render [--slices K] [--nz N] [--cpu] [--window W] [--db CORPUS.db --study ID "
                            "[--anatomy A]]\n");
            return 2;
        }
    }
    if (slices < 1 || nz < 1 || nz > 2000 || (dbpath && study < 0)) {
        fprintf(stderr, "bench_render: --slices >= 1, --nz in [1, 2000], --db needs --study\n");
        return 2;
    }
    FvErr e = {0};
    Ontology *o = NULL;
    if (onto_load(&o, &e))
        return die("ontology", &e);
    RenderReq req;
    render_req_init(&req);
    RenderStudy rs;
    char dir[] = "/tmp/bench_render.XXXXXX";
    int made_dir = 0;
    int16_t *hu = NULL;
    uint8_t *mask = NULL;
    int a = onto_anatomy(o, anatomy);
    if (a < 0) {
        fprintf(stderr, "bench_render: unknown anatomy '%s'\n", anatomy);
        return 2;
    }
    if (dbpath) {
        Db *db;
        if (db_open(&db, dbpath, DB_READONLY | DB_MUST_EXIST, &e) ||
            render_study_load(db, o, study, anatomy, &rs, &e))
            return die(dbpath, &e);
        db_close(&db);
        render_req_from_study(&req, &rs);
        printf("corpus %s, study %lld: %lld x %lld x %lld voxels of %.2f x %.2f x %.2f mm (z, y, x)\n",
               dbpath, (long long)study, (long long)rs.dims[0], (long long)rs.dims[1],
               (long long)rs.dims[2], rs.spacing[0], rs.spacing[1], rs.spacing[2]);
    } else {
        const int64_t ny = 512, nx = 512, n = nz * ny * nx;
        hu = malloc((size_t)n * sizeof *hu);
        mask = malloc((size_t)n);
        if (!hu || !mask || !mkdtemp(dir)) {
            fprintf(stderr, "bench_render: out of memory or no temporary folder\n");
            return 1;
        }
        made_dir = 1;
        phantom(hu, mask, nz, ny, nx);
        const int64_t shape[3] = {nz, ny, nx};
        snprintf(rs.vol_path, sizeof rs.vol_path, "%s/ct.safetensors", dir);
        snprintf(rs.mask_path, sizeof rs.mask_path, "%s/mask.safetensors", dir);
        StWriter w;
        st_writer_init(&w);
        int rc = st_writer_add(&w, "ct", ST_I16, 3, shape, hu, &e) || st_write(&w, rs.vol_path, &e);
        st_writer_free(&w);
        st_writer_init(&w);
        rc = rc || st_writer_add(&w, "mask", ST_U8, 3, shape, mask, &e) ||
             st_write(&w, rs.mask_path, &e);
        st_writer_free(&w);
        if (rc)
            return die("writing the phantom", &e);
        snprintf(rs.vol_tensor, sizeof rs.vol_tensor, "ct");
        snprintf(rs.mask_tensor, sizeof rs.mask_tensor, "mask");
        rs.has_mask = 1;
        rs.dims[0] = nz; rs.dims[1] = ny; rs.dims[2] = nx;
        rs.spacing[0] = 3; rs.spacing[1] = 1; rs.spacing[2] = 1;
        render_anatomy_labels(o, a, rs.labels);
        /* the lungs' box, as align would store it */
        rs.has_box = 1;
        rs.box = (RenderBox){.z0 = 0, .z1 = nz, .y0 = 0, .y1 = ny, .x0 = 0, .x1 = nx};
        int64_t lo[3] = {nz, ny, nx}, hi[3] = {0, 0, 0};
        for (int64_t z = 0; z < nz; z++)
            for (int64_t y = 0; y < ny; y++)
                for (int64_t x = 0; x < nx; x++)
                    if (rs.labels[mask[(z * ny + y) * nx + x]]) {
                        const int64_t v[3] = {z, y, x};
                        for (int k = 0; k < 3; k++) {
                            if (v[k] < lo[k]) lo[k] = v[k];
                            if (v[k] + 1 > hi[k]) hi[k] = v[k] + 1;
                        }
                    }
        rs.box = (RenderBox){lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]};
        free(hu);
        free(mask);
        hu = NULL;
        mask = NULL;
        render_req_from_study(&req, &rs);
        printf("phantom CT 512 x 512 x %lld voxels (x, y, z) of 1 x 1 x 3 mm, noise 12 HU, "
               "overlay: %s\n", (long long)nz, anatomy);
    }
    if (render_cache_new(&req.cache, 4, &e))
        return die("cache", &e);
    if (render_window_preset(window, &req.wc, &req.ww, &e))
        return die("--window", &e);
    printf("%d random slices per row, %s window, through the shard files and a cache; ms\n", slices,
           window);
    printf("%-9s %-8s %11s %15s   %15s   %15s   %6s\n", "plane", "overlay", "image", "total p50 p95",
           "pixels p50 p95", "encode p50 p95", "KB");
    Rng rng;
    rng_seed(&rng, 7, 0);
    int status = 0;
    /* a first render maps the files; its cost is the page cache's, not ours */
    Buf warm = {0};
    for (int p = 0; p < 3 && !status; p++) {
        req.plane = (RenderPlane)p;
        req.index = 0;
        req.overlay = RENDER_OVERLAY_FILL;
        if (render_slice_png(&req, &warm, &e))
            status = die("warm-up", &e);
    }
    buf_free(&warm);
    for (int p = 0; p < 3 && !status; p++)
        for (int ov = 0; ov < 3 && !status; ov++) {
            req.plane = (RenderPlane)p;
            req.overlay = (RenderOverlay)ov;
            if (run_case(&req, slices, &rng, &e))
                status = die("render", &e);
        }
    if (!status) {
        /* jump-to: the anatomy's centre (a mask scan inside its box) */
        double tc[5];
        int64_t c[3] = {0, 0, 0};
        for (int i = 0; i < 5 && !status; i++) {
            double t0 = now_ms();
            if (render_anatomy_centre(&req, c, &e))
                status = die("centre", &e);
            tc[i] = now_ms() - t0;
        }
        if (!status)
            printf("anatomy centre (%s): voxel (%lld, %lld, %lld) in %.2f ms (p50 of 5)\n", anatomy,
                   (long long)c[0], (long long)c[1], (long long)c[2], pct(tc, 5, 50));
    }
    if (!status)
        printf("slowest p95: %.2f ms (%s); the goal is 20 ms for a 512 x 512 slice (%s)\n", g_worst,
               g_worst_case, g_clock == CLOCK_MONOTONIC ? "wall clock" : "CPU time");
    if (!status) {
        /* the encoder settings on the middle axial slice */
        uint8_t *rgb;
        int w, h;
        req.plane = RENDER_AXIAL;
        req.overlay = RENDER_OVERLAY_OUTLINE;
        req.index = req.dims[0] / 2;
        if (render_slice_rgb(&req, &rgb, &w, &h, NULL, &e))
            status = die("render", &e);
        else {
            printf("PNG encoder settings on axial slice %lld (%d x %d), p50 of 20:\n",
                   (long long)req.index, w, h);
            static const struct { int f; const char *name; } filt[] = {
                {SPNG_FILTER_CHOICE_NONE, "none"}, {SPNG_FILTER_CHOICE_SUB, "sub"},
                {SPNG_FILTER_CHOICE_UP, "up"}, {SPNG_FILTER_CHOICE_PAETH, "paeth"},
                {SPNG_FILTER_CHOICE_ALL, "adaptive"}};
            for (size_t i = 0; i < sizeof filt / sizeof filt[0]; i++)
                for (int st = 0; st < 4; st++)
                    encoder_row(rgb, w, h, 1, filt[i].f, filt[i].name, st, 0, 20);
            for (int st = 0; st < 4; st++)
                encoder_row(rgb, w, h, 1, SPNG_FILTER_CHOICE_SUB, "sub", st, 1, 20);
            encoder_row(rgb, w, h, 6, SPNG_FILTER_CHOICE_ALL, "adaptive", 0, 0, 20);
            free(rgb);
        }
    }
    render_cache_free(&req.cache);
    if (made_dir) {
        unlink(rs.vol_path);
        unlink(rs.mask_path);
        rmdir(dir);
    }
    onto_free(&o);
    return status;
}
