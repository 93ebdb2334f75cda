/* test_render: audit/render.c on small synthetic volumes whose every voxel
 * value is known, so each pixel of a slice is checked exactly: the window
 * mapping, the radiological flips of each plane, the resampling to square
 * pixels, the outline and fill of the mask, the region box, the PNG decoded
 * back with libspng, the shard files and their cache, the corpus rows, the
 * anatomy centre, and hostile requests. */
#include <pthread.h>
#include <spng.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fvlm_config.h"
#include "db.h"
#include "ontology.h"
#include "render.h"
#include "safetensors.h"
#include "test.h"
#include "testdb.h"

/* The test volume: nz = 4, ny = 5, nx = 6 voxels of 1 mm, HU = 60 z + 10 y + x
 * (all distinct, 0..225), so with the window 127.5/255 a pixel's grey is the
 * value of the voxel it shows. */
enum { NZ = 4, NY = 5, NX = 6 };
static int16_t g_hu[NZ * NY * NX];
static uint8_t g_mask[NZ * NY * NX];

static int hu_at(int z, int y, int x) { return 60 * z + 10 * y + x; }

static void volume_fill(void)
{
    for (int z = 0; z < NZ; z++)
        for (int y = 0; y < NY; y++)
            for (int x = 0; x < NX; x++)
                g_hu[(z * NY + y) * NX + x] = (int16_t)hu_at(z, y, x);
    /* label 7: the block z 1..2, y 1..3, x 2..4 (3 x 3 x 3 voxels);
     * label 9: voxel (2, 0, 0), another anatomy's */
    memset(g_mask, 0, sizeof g_mask);
    for (int z = 1; z <= 2; z++)
        for (int y = 1; y <= 3; y++)
            for (int x = 2; x <= 4; x++)
                g_mask[(z * NY + y) * NX + x] = 7;
    g_mask[(2 * NY + 0) * NX + 0] = 9;
}

static void req_base(RenderReq *r)
{
    render_req_init(r);
    r->hu = g_hu;
    r->dims[0] = NZ; r->dims[1] = NY; r->dims[2] = NX;
    r->spacing[0] = r->spacing[1] = r->spacing[2] = 1.0;
    r->wc = 127.5;
    r->ww = 255;
}

static const uint8_t *px(const uint8_t *rgb, int w, int r, int c) { return rgb + ((size_t)r * w + c) * 3; }

static int is_grey(const uint8_t *p, int g) { return p[0] == g && p[1] == g && p[2] == g; }
static int is_rgb(const uint8_t *p, const uint8_t c[3]) { return p[0] == c[0] && p[1] == c[1] && p[2] == c[2]; }

static uint8_t *render(const RenderReq *r, int *w, int *h)
{
    uint8_t *rgb = NULL;
    FvErr e = {0};
    if (render_slice_rgb(r, &rgb, w, h, NULL, &e)) {
        CHECK(0, "render_slice_rgb failed: %s", e.msg);
        return NULL;
    }
    return rgb;
}

/* ------------------------------------------------------------------ window */

static void test_window_maps_hu_to_grey_by_the_documented_formula(void)
{
    /* one row of HU values, mediastinum window 40/400: lo = -160 */
    static const int16_t hu[8] = {-1000, -160, -159, 0, 40, 239, 240, 3000};
    /* floor((hu + 160) * 255 / 400 + 0.5), clamped */
    static const int want[8] = {0, 0, 1, 102, 128, 254, 255, 255};
    RenderReq r;
    render_req_init(&r);
    r.hu = hu;
    r.dims[0] = 1; r.dims[1] = 1; r.dims[2] = 8;
    r.spacing[0] = r.spacing[1] = r.spacing[2] = 1;
    FvErr e = {0};
    CHECK_OK(render_window_preset("mediastinum", &r.wc, &r.ww, &e), &e);
    int w, h;
    uint8_t *rgb = render(&r, &w, &h);
    if (!rgb)
        return;
    CHECK(w == 8 && h == 1, "image is %d x %d, expected 8 x 1", w, h);
    for (int x = 0; x < 8; x++) {
        /* column c shows x = 7 - c (patient's right on the image's left) */
        const uint8_t *p = px(rgb, w, 0, 7 - x);
        CHECK(is_grey(p, want[x]), "HU %d gives (%d, %d, %d), expected grey %d", hu[x], p[0], p[1],
              p[2], want[x]);
    }
    free(rgb);
    double wc, ww;
    CHECK_OK(render_window_preset("lung", &wc, &ww, &e), &e);
    CHECK(wc == -600 && ww == 1500, "lung preset is %g/%g, expected -600/1500", wc, ww);
    CHECK_OK(render_window_preset("bone", &wc, &ww, &e), &e);
    CHECK(wc == 500 && ww == 2000, "bone preset is %g/%g, expected 500/2000", wc, ww);
    CHECK(render_window_preset("brain", &wc, &ww, &e) == -1 && e.code == FV_EUSAGE,
          "an unknown preset is refused (got code %d)", e.code);
}

/* ------------------------------------------------------------------ orientation */

static void test_axial_puts_patient_right_on_the_left_and_anterior_up(void)
{
    RenderReq r;
    req_base(&r);
    r.plane = RENDER_AXIAL;
    r.index = 2;
    int w, h;
    uint8_t *rgb = render(&r, &w, &h);
    if (!rgb)
        return;
    CHECK(w == NX && h == NY, "axial image is %d x %d, expected %d x %d", w, h, NX, NY);
    int bad = 0;
    for (int row = 0; row < h; row++)
        for (int c = 0; c < w; c++)
            if (!is_grey(px(rgb, w, row, c), hu_at(2, NY - 1 - row, NX - 1 - c)))
                bad++;
    CHECK(bad == 0, "%d axial pixels differ from voxel (2, %d - row, %d - col)", bad, NY - 1, NX - 1);
    CHECK(is_grey(px(rgb, w, 0, 0), hu_at(2, NY - 1, NX - 1)),
          "top-left pixel is not the most anterior, rightmost voxel");
    free(rgb);
}

static void test_coronal_puts_superior_up_and_patient_right_on_the_left(void)
{
    RenderReq r;
    req_base(&r);
    r.plane = RENDER_CORONAL;
    r.index = 1;
    int w, h;
    uint8_t *rgb = render(&r, &w, &h);
    if (!rgb)
        return;
    CHECK(w == NX && h == NZ, "coronal image is %d x %d, expected %d x %d", w, h, NX, NZ);
    int bad = 0;
    for (int row = 0; row < h; row++)
        for (int c = 0; c < w; c++)
            if (!is_grey(px(rgb, w, row, c), hu_at(NZ - 1 - row, 1, NX - 1 - c)))
                bad++;
    CHECK(bad == 0, "%d coronal pixels differ from voxel (%d - row, 1, %d - col)", bad, NZ - 1, NX - 1);
    free(rgb);
}

static void test_sagittal_puts_superior_up_and_anterior_on_the_left(void)
{
    RenderReq r;
    req_base(&r);
    r.plane = RENDER_SAGITTAL;
    r.index = 3;
    int w, h;
    uint8_t *rgb = render(&r, &w, &h);
    if (!rgb)
        return;
    CHECK(w == NY && h == NZ, "sagittal image is %d x %d, expected %d x %d", w, h, NY, NZ);
    int bad = 0;
    for (int row = 0; row < h; row++)
        for (int c = 0; c < w; c++)
            if (!is_grey(px(rgb, w, row, c), hu_at(NZ - 1 - row, NY - 1 - c, 3)))
                bad++;
    CHECK(bad == 0, "%d sagittal pixels differ from voxel (%d - row, %d - col, 3)", bad, NZ - 1, NY - 1);
    free(rgb);
}

static void test_coronal_of_3mm_slices_is_resampled_to_square_pixels(void)
{
    RenderReq r;
    req_base(&r);
    r.spacing[0] = 3.0; /* z: 3 mm, in-plane 1 mm, as the corpus grid */
    r.plane = RENDER_CORONAL;
    r.index = 0;
    int w, h;
    uint8_t *rgb = render(&r, &w, &h);
    if (!rgb)
        return;
    CHECK(w == NX && h == 3 * NZ, "coronal image is %d x %d, expected %d x %d", w, h, NX, 3 * NZ);
    int sw, sh;
    FvErr e = {0};
    CHECK_OK(render_slice_size(&r, &sw, &sh, &e), &e);
    CHECK(sw == w && sh == h, "render_slice_size says %d x %d, the image is %d x %d", sw, sh, w, h);
    /* Sample k (from the inferior edge) sits at z = (k + 0.5) / 3 - 0.5 voxels:
     * k = 0 clamps to z = 0, k = 1 is z = 0, k = 2 is z = 1/3 (HU 20 above
     * z = 0's), k = 4 is z = 1, k = 11 clamps to z = 3. Row = 11 - k. */
    static const struct { int k; double z; } s[] = {{0, 0}, {1, 0}, {2, 1.0 / 3}, {3, 2.0 / 3},
                                                    {4, 1}, {10, 3}, {11, 3}};
    for (size_t i = 0; i < sizeof s / sizeof s[0] && h == 12; i++) {
        int want = (int)(60 * s[i].z + 10 * 0 + 5 + 0.5); /* column 0 shows x = 5 */
        const uint8_t *p = px(rgb, w, 11 - s[i].k, 0);
        CHECK(is_grey(p, want), "sample %d (z = %.3f) is grey %d, expected %d", s[i].k, s[i].z,
              p[0], want);
    }
    free(rgb);
    /* Sagittal: rows z as well, columns y */
    r.plane = RENDER_SAGITTAL;
    CHECK_OK(render_slice_size(&r, &sw, &sh, &e), &e);
    CHECK(sw == NY && sh == 3 * NZ, "sagittal image is %d x %d, expected %d x %d", sw, sh, NY,
          3 * NZ);
    /* Axial stays at its own grid */
    r.plane = RENDER_AXIAL;
    CHECK_OK(render_slice_size(&r, &sw, &sh, &e), &e);
    CHECK(sw == NX && sh == NY, "axial image is %d x %d, expected %d x %d", sw, sh, NX, NY);
}

static void test_a_very_long_axis_is_capped_at_the_maximum_side(void)
{
    RenderReq r;
    render_req_init(&r);
    r.dims[0] = 300; r.dims[1] = 1; r.dims[2] = 10000;
    r.spacing[0] = 5; r.spacing[1] = 1; r.spacing[2] = 1;
    int w, h;
    FvErr e = {0};
    r.plane = RENDER_CORONAL;
    CHECK_OK(render_slice_size(&r, &w, &h, &e), &e);
    /* 10000 mm wide at 2048 pixels: 4.8828 mm pixels, 1500 mm tall: 307 rows */
    CHECK(w == RENDER_MAX_SIDE && h == 307, "coronal image is %d x %d, expected %d x 307", w, h,
          RENDER_MAX_SIDE);
}

/* ------------------------------------------------------------------ overlay */

static void test_outline_marks_the_mask_boundary_and_leaves_its_inside_grey(void)
{
    RenderReq r;
    req_base(&r);
    r.mask = g_mask;
    r.labels[7] = 1;
    r.overlay = RENDER_OVERLAY_OUTLINE;
    r.plane = RENDER_AXIAL;
    r.index = 2;
    int w, h;
    uint8_t *rgb = render(&r, &w, &h);
    if (!rgb)
        return;
    /* The block: y 1..3 -> rows 1..3, x 2..4 -> columns 1..3. Its border is
     * outlined, its centre (row 2, col 2) stays grey, everything else too,
     * including label 9 at (y 0, x 0) -> (row 4, col 5), not selected. */
    for (int row = 0; row < h; row++)
        for (int c = 0; c < w; c++) {
            const uint8_t *p = px(rgb, w, row, c);
            int inside = row >= 1 && row <= 3 && c >= 1 && c <= 3;
            int border = inside && (row == 1 || row == 3 || c == 1 || c == 3);
            if (border)
                CHECK(is_rgb(p, RENDER_MASK_RGB), "outline pixel (%d, %d) is (%d, %d, %d)", row, c,
                      p[0], p[1], p[2]);
            else
                CHECK(is_grey(p, hu_at(2, NY - 1 - row, NX - 1 - c)),
                      "pixel (%d, %d) is (%d, %d, %d), expected its grey %d", row, c, p[0], p[1],
                      p[2], hu_at(2, NY - 1 - row, NX - 1 - c));
        }
    free(rgb);
    /* The same mask with no overlay draws nothing */
    r.overlay = RENDER_OVERLAY_NONE;
    rgb = render(&r, &w, &h);
    if (rgb) {
        CHECK(is_grey(px(rgb, w, 1, 1), hu_at(2, 3, 4)), "overlay none still paints the outline");
        free(rgb);
    }
}

static void test_fill_blends_the_mask_colour_inside_only(void)
{
    RenderReq r;
    req_base(&r);
    r.mask = g_mask;
    r.labels[7] = 1;
    r.labels[9] = 1; /* the anatomy is both ids */
    r.overlay = RENDER_OVERLAY_FILL;
    r.plane = RENDER_AXIAL;
    r.index = 2;
    int w, h;
    uint8_t *rgb = render(&r, &w, &h);
    if (!rgb)
        return;
    const unsigned A = RENDER_FILL_ALPHA;
    int bad = 0;
    for (int row = 0; row < h; row++)
        for (int c = 0; c < w; c++) {
            int y = NY - 1 - row, x = NX - 1 - c;
            int g = hu_at(2, y, x);
            int in = (y >= 1 && y <= 3 && x >= 2 && x <= 4) || (y == 0 && x == 0);
            const uint8_t *p = px(rgb, w, row, c);
            for (int k = 0; k < 3; k++) {
                int want = in ? (int)((g * (256 - A) + RENDER_MASK_RGB[k] * A + 128) >> 8) : g;
                if (p[k] != want) {
                    if (bad++ < 5)
                        fprintf(stderr, "fill pixel (%d, %d) channel %d is %d, expected %d\n", row,
                                c, k, p[k], want);
                }
            }
        }
    CHECK(bad == 0, "%d fill channels differ", bad);
    free(rgb);
}

static void test_region_box_is_drawn_only_on_slices_it_crosses(void)
{
    RenderReq r;
    req_base(&r);
    r.mask = g_mask;
    r.overlay = RENDER_OVERLAY_OUTLINE; /* no label selected: only the box shows */
    r.has_box = 1;
    r.box = (RenderBox){.z0 = 1, .z1 = 3, .y0 = 1, .y1 = 4, .x0 = 2, .x1 = 5};
    r.plane = RENDER_AXIAL;
    r.index = 2;
    int w, h;
    uint8_t *rgb = render(&r, &w, &h);
    if (!rgb)
        return;
    int bad = 0;
    for (int row = 0; row < h; row++)
        for (int c = 0; c < w; c++) {
            int in = row >= 1 && row <= 3 && c >= 1 && c <= 3;
            int edge = in && (row == 1 || row == 3 || c == 1 || c == 3);
            const uint8_t *p = px(rgb, w, row, c);
            if (edge ? !is_rgb(p, RENDER_BOX_RGB) : !is_grey(p, hu_at(2, NY - 1 - row, NX - 1 - c)))
                bad++;
        }
    CHECK(bad == 0, "%d pixels differ from the box [1,3)x[1,4)x[2,5) on axial slice 2", bad);
    free(rgb);
    /* z = 0 and z = 3 are outside [1, 3): no box */
    for (int z = 0; z < NZ; z += 3) {
        r.index = z;
        rgb = render(&r, &w, &h);
        if (!rgb)
            return;
        int painted = 0;
        for (int i = 0; i < w * h; i++)
            painted += is_rgb(rgb + 3 * i, RENDER_BOX_RGB);
        CHECK(painted == 0, "axial slice %d, outside the box, has %d box pixels", z, painted);
        free(rgb);
    }
    /* Sagittal x = 3 crosses it: columns y 1..3 -> 3..1, rows z 1..2 -> 2..1 */
    r.plane = RENDER_SAGITTAL;
    r.index = 3;
    rgb = render(&r, &w, &h);
    if (!rgb)
        return;
    CHECK(is_rgb(px(rgb, w, 1, 1), RENDER_BOX_RGB) && is_rgb(px(rgb, w, 2, 3), RENDER_BOX_RGB),
          "sagittal box corners (1, 1) and (2, 3) are not painted");
    CHECK(is_grey(px(rgb, w, 0, 1), hu_at(3, 3, 3)) && is_grey(px(rgb, w, 1, 4), hu_at(2, 0, 3)),
          "sagittal pixels outside the box are painted");
    free(rgb);
}

/* ------------------------------------------------------------------ PNG */

static uint8_t *png_decode(const Buf *png, int *w, int *h, int *colour_type, int *depth)
{
    spng_ctx *ctx = spng_ctx_new(0);
    struct spng_ihdr ih;
    size_t n;
    uint8_t *out = NULL;
    if (ctx && !spng_set_png_buffer(ctx, png->data, png->len) && !spng_get_ihdr(ctx, &ih) &&
        !spng_decoded_image_size(ctx, SPNG_FMT_RGB8, &n) && (out = malloc(n)) &&
        !spng_decode_image(ctx, out, n, SPNG_FMT_RGB8, 0)) {
        *w = (int)ih.width;
        *h = (int)ih.height;
        *colour_type = ih.color_type;
        *depth = ih.bit_depth;
    } else {
        free(out);
        out = NULL;
    }
    spng_ctx_free(ctx);
    return out;
}

/* Renders r, encodes it, decodes it with libspng and checks the PNG's form
 * and that its pixels are the render's. */
static void png_roundtrip(const RenderReq *r, int want_type, const char *what)
{
    int w = 0, h = 0;
    uint8_t *rgb = render(r, &w, &h);
    Buf png = {0};
    FvErr e = {0};
    CHECK_OK(render_slice_png(r, &png, &e), &e);
    CHECK(png.len > 8 && !memcmp(png.data, "\x89PNG\r\n\x1a\n", 8), "%s: no PNG signature", what);
    int dw = 0, dh = 0, ct = -1, bd = -1;
    uint8_t *dec = png_decode(&png, &dw, &dh, &ct, &bd);
    CHECK(dec != NULL, "%s: libspng cannot decode the PNG", what);
    if (dec && rgb) {
        CHECK(ct == want_type && bd == 8, "%s: PNG is colour type %d depth %d, expected type %d "
              "depth 8", what, ct, bd, want_type);
        CHECK(dw == w && dh == h, "%s: PNG is %d x %d, the render %d x %d", what, dw, dh, w, h);
        CHECK(dw == w && dh == h && !memcmp(dec, rgb, (size_t)w * h * 3),
              "%s: decoded pixels differ from the rendered ones", what);
    }
    free(dec);
    free(rgb);
    buf_free(&png);
}

static void test_png_decodes_back_to_the_rendered_rgb_in_its_smallest_form(void)
{
    RenderReq r;
    req_base(&r);
    r.spacing[0] = 3;
    r.mask = g_mask;
    r.labels[7] = 1;
    r.overlay = RENDER_OVERLAY_FILL;
    r.has_box = 1;
    r.box = (RenderBox){.z0 = 0, .z1 = 4, .y0 = 0, .y1 = 5, .x0 = 1, .x1 = 5};
    /* A few colours: indexed, in every plane */
    static const char *const names[] = {"axial fill", "coronal fill", "sagittal fill"};
    for (int p = 0; p < 3; p++) {
        r.plane = (RenderPlane)p;
        r.index = 1;
        png_roundtrip(&r, SPNG_COLOR_TYPE_INDEXED, names[p]);
    }
    /* Nothing painted: greyscale */
    r.overlay = RENDER_OVERLAY_NONE;
    r.plane = RENDER_CORONAL;
    int w, h, coloured = -1;
    uint8_t *rgb = NULL;
    FvErr e = {0};
    CHECK_OK(render_slice_rgb(&r, &rgb, &w, &h, &coloured, &e), &e);
    CHECK(coloured == 0, "a slice without overlay says it is coloured (%d)", coloured);
    free(rgb);
    png_roundtrip(&r, SPNG_COLOR_TYPE_GRAYSCALE, "coronal, no overlay");

    /* All 256 greys and an outline: 257 colours, RGB. HU -100..499 over a
     * 20 x 30 slice, window 127.5/255: every grey from 0 to 255 appears. */
    enum { SY = 20, SX = 30 };
    static int16_t hu[SY * SX];
    static uint8_t m[SY * SX];
    for (int i = 0; i < SY * SX; i++) {
        hu[i] = (int16_t)(i - 100);
        /* the mask in rows 13..18 (HU >= 290: all grey 255), so its outline
         * hides none of the other greys */
        m[i] = (i / SX >= 13 && i / SX < 19 && i % SX >= 5 && i % SX < 25) ? 7 : 0;
    }
    RenderReq big;
    render_req_init(&big);
    big.hu = hu;
    big.mask = m;
    big.labels[7] = 1;
    big.dims[0] = 1; big.dims[1] = SY; big.dims[2] = SX;
    big.spacing[0] = big.spacing[1] = big.spacing[2] = 1;
    big.wc = 127.5;
    big.ww = 255;
    big.overlay = RENDER_OVERLAY_OUTLINE;
    png_roundtrip(&big, SPNG_COLOR_TYPE_TRUECOLOR, "257 colours");
    big.overlay = RENDER_OVERLAY_NONE;
    png_roundtrip(&big, SPNG_COLOR_TYPE_GRAYSCALE, "256 greys");
}

/* ------------------------------------------------------------------ hostile */

static void expect_error(RenderReq *r, int code, const char *what)
{
    Buf png = {0};
    FvErr e = {0};
    int rc = render_slice_png(r, &png, &e);
    CHECK(rc == -1 && e.code == code && e.msg[0], "%s: rc %d code %s (%s), expected code %s", what,
          rc, err_code_name(e.code), e.msg, err_code_name(code));
    CHECK(png.len == 0, "%s: %zu bytes of PNG left after an error", what, png.len);
    buf_free(&png);
}

static void test_hostile_requests_are_errors_not_images(void)
{
    RenderReq r;
    req_base(&r);
    r.index = -1;
    expect_error(&r, FV_EUSAGE, "axial slice -1");
    r.index = NZ;
    expect_error(&r, FV_EUSAGE, "axial slice nz");
    r.plane = RENDER_SAGITTAL;
    r.index = NX;
    expect_error(&r, FV_EUSAGE, "sagittal slice nx");
    req_base(&r);
    r.plane = (RenderPlane)7;
    expect_error(&r, FV_EUSAGE, "plane 7");
    req_base(&r);
    r.overlay = (RenderOverlay)9;
    expect_error(&r, FV_EUSAGE, "overlay 9");
    req_base(&r);
    r.ww = 1e12;
    expect_error(&r, FV_EUSAGE, "window width 1e12");
    r.ww = 0;
    expect_error(&r, FV_EUSAGE, "window width 0");
    r.ww = -400;
    expect_error(&r, FV_EUSAGE, "window width -400");
    r.ww = 400;
    r.wc = NAN;
    expect_error(&r, FV_EUSAGE, "window centre NaN");
    r.wc = -1e9;
    expect_error(&r, FV_EUSAGE, "window centre -1e9");
    req_base(&r);
    r.hu = NULL;
    expect_error(&r, FV_EUSAGE, "no volume");
    req_base(&r);
    r.dims[1] = 0;
    expect_error(&r, FV_EFORMAT, "dimension 0");
    req_base(&r);
    r.dims[2] = (int64_t)1 << 40;
    expect_error(&r, FV_EFORMAT, "dimension 2^40");
    req_base(&r);
    r.spacing[0] = 0;
    expect_error(&r, FV_EFORMAT, "spacing 0");

    RenderPlane p;
    RenderOverlay o;
    FvErr e = {0};
    CHECK(render_plane_parse("oblique", &p, &e) == -1 && e.code == FV_EUSAGE,
          "plane 'oblique' is not refused");
    CHECK(render_plane_parse(NULL, &p, &e) == -1, "a missing plane is not refused");
    CHECK(render_plane_parse("coronal", &p, &e) == 0 && p == RENDER_CORONAL, "coronal is not parsed");
    CHECK(render_overlay_parse("<script>", &o, &e) == -1 && e.code == FV_EUSAGE,
          "overlay '<script>' is not refused");
    CHECK(render_overlay_parse("fill", &o, &e) == 0 && o == RENDER_OVERLAY_FILL, "fill is not parsed");
}

/* Random requests on random small volumes (odd spacings, boxes partly or
 * wholly outside, any window, indices around the edges): each either
 * renders an image of render_slice_size's size that decodes back, or fails
 * with FV_EUSAGE; the centre is a voxel of the volume or FV_ENOTFOUND.
 * ASan runs of the unit suite check the memory side. */
static void test_random_requests_render_or_fail_cleanly(void)
{
    static int16_t hu[9 * 9 * 9];
    static uint8_t m[9 * 9 * 9];
    uint64_t x = 0x9E3779B97F4A7C15ull;
#define NEXT() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, x)
    int bad = 0, rendered = 0;
    for (int trial = 0; trial < 1500; trial++) {
        RenderReq r;
        render_req_init(&r);
        for (int k = 0; k < 3; k++) {
            r.dims[k] = 1 + (int64_t)(NEXT() % 9);
            static const double sp[] = {0.3, 0.7, 1, 1.5, 3, 5, 12.5};
            r.spacing[k] = sp[NEXT() % 7];
        }
        for (int i = 0; i < 9 * 9 * 9; i++) {
            hu[i] = (int16_t)(NEXT() % 4000) - 2000;
            m[i] = (uint8_t)(NEXT() % 4);
        }
        r.hu = hu;
        r.mask = NEXT() % 4 ? m : NULL;
        r.labels[NEXT() % 4] = 1;
        r.plane = (RenderPlane)(NEXT() % 4);      /* 3: invalid */
        r.overlay = (RenderOverlay)(NEXT() % 4);  /* 3: invalid */
        r.index = (int64_t)(NEXT() % 13) - 2;
        static const double wcs[] = {-600, 40, 500, 0, -1e6, 99999.5};
        static const double wws[] = {1500, 400, 2000, 1, 0.5, 2e5};
        r.wc = wcs[NEXT() % 6];
        r.ww = wws[NEXT() % 6];
        r.has_box = (int)(NEXT() % 2);
        int64_t *f[6] = {&r.box.z0, &r.box.z1, &r.box.y0, &r.box.y1, &r.box.x0, &r.box.x1};
        for (int k = 0; k < 6; k++)
            *f[k] = (int64_t)(NEXT() % 15) - 3;
        uint8_t *rgb = NULL;
        int w = 0, h = 0;
        FvErr e = {0};
        if (render_slice_rgb(&r, &rgb, &w, &h, NULL, &e)) {
            if (e.code != FV_EUSAGE || rgb) {
                if (bad++ < 3)
                    fprintf(stderr, "trial %d: error %s: %s\n", trial, err_code_name(e.code), e.msg);
            }
        } else {
            rendered++;
            int sw = 0, sh = 0;
            Buf png = {0};
            int dw = 0, dh = 0, ct, bd;
            uint8_t *dec = NULL;
            if (render_slice_size(&r, &sw, &sh, &e) || sw != w || sh != h ||
                render_png_encode(rgb, w, h, &png, &e) ||
                !(dec = png_decode(&png, &dw, &dh, &ct, &bd)) || dw != w || dh != h ||
                memcmp(dec, rgb, (size_t)w * h * 3)) {
                if (bad++ < 3)
                    fprintf(stderr, "trial %d: %d x %d image does not round-trip (%s)\n", trial,
                            w, h, e.msg);
            }
            free(dec);
            buf_free(&png);
            free(rgb);
        }
        int64_t c[3] = {-1, -1, -1};
        if (render_anatomy_centre(&r, c, &e) == 0) {
            if (c[0] < 0 || c[0] >= r.dims[0] || c[1] < 0 || c[1] >= r.dims[1] || c[2] < 0 ||
                c[2] >= r.dims[2])
                bad++;
        } else if (e.code != FV_ENOTFOUND) {
            bad++;
        }
    }
#undef NEXT
    CHECK(bad == 0, "%d of 1500 random requests misbehaved", bad);
    CHECK(rendered > 120, "only %d of 1500 random requests rendered: the test lost its reach",
          rendered);
}

/* ------------------------------------------------------------------ files */

static char g_dir[256];

static int write_tensor(const char *name, const char *tensor, StDType dt, const int64_t shape[3],
                        const void *data)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    StWriter w;
    st_writer_init(&w);
    FvErr e = {0};
    int rc = st_writer_add(&w, tensor, dt, 3, shape, data, &e) || st_write(&w, path, &e);
    st_writer_free(&w);
    CHECK(rc == 0, "writing %s: %s", path, e.msg);
    return rc;
}

static void test_shard_files_render_like_memory_and_the_cache_reuses_them(void)
{
    const int64_t shape[3] = {NZ, NY, NX};
    char vp[512], mp[512];
    snprintf(vp, sizeof vp, "%s/vol.safetensors", g_dir);
    snprintf(mp, sizeof mp, "%s/mask.safetensors", g_dir);
    if (write_tensor("vol.safetensors", "ct", ST_I16, shape, g_hu) ||
        write_tensor("mask.safetensors", "labels", ST_U8, shape, g_mask))
        return;
    RenderReq mem, file;
    req_base(&mem);
    mem.mask = g_mask;
    mem.labels[7] = 1;
    mem.overlay = RENDER_OVERLAY_OUTLINE;
    mem.plane = RENDER_CORONAL;
    mem.index = 2;
    file = mem;
    file.hu = NULL;
    file.mask = NULL;
    file.vol_path = vp;
    file.vol_tensor = "ct";
    file.mask_path = mp;
    file.mask_tensor = "labels";
    FvErr e = {0};
    CHECK_OK(render_cache_new(&file.cache, 2, &e), &e);
    if (!file.cache)
        return;
    Buf a = {0}, b = {0};
    CHECK_OK(render_slice_png(&mem, &a, &e), &e);
    for (int i = 0; i < 3; i++) {
        CHECK_OK(render_slice_png(&file, &b, &e), &e);
        CHECK(a.len == b.len && !memcmp(a.data, b.data, a.len),
              "render %d from files differs from the one from memory", i);
    }
    CHECK(render_cache_opens(file.cache) == 2, "3 renders opened %lld files, expected 2 (cached)",
          (long long)render_cache_opens(file.cache));

    /* A file replaced on disk is reopened, not served from the stale map. */
    int16_t hu2[NZ * NY * NX];
    for (int i = 0; i < NZ * NY * NX; i++)
        hu2[i] = (int16_t)(g_hu[i] + 1);
    usleep(20000); /* a new mtime even on coarse clocks; the inode differs anyway */
    if (write_tensor("vol.safetensors", "ct", ST_I16, shape, hu2) == 0) {
        int w, h;
        file.overlay = RENDER_OVERLAY_NONE;
        uint8_t *rgb = render(&file, &w, &h);
        if (rgb) {
            CHECK(is_grey(px(rgb, w, 0, 0), hu_at(3, 2, 5) + 1),
                  "a replaced file still renders its old values (grey %d)", px(rgb, w, 0, 0)[0]);
            free(rgb);
        }
        file.overlay = RENDER_OVERLAY_OUTLINE;
    }

    /* Wrong shape, wrong dtype, wrong name, missing file: errors naming the file */
    RenderReq bad = file;
    bad.dims[0] = NZ + 1;
    expect_error(&bad, FV_EFORMAT, "tensor shape differs from the row");
    bad = file;
    bad.vol_path = mp;
    bad.vol_tensor = "labels";
    expect_error(&bad, FV_EFORMAT, "uint8 tensor read as the CT");
    bad = file;
    bad.vol_tensor = "nope";
    Buf png = {0};
    CHECK(render_slice_png(&bad, &png, &e) == -1 && strstr(e.msg, "vol.safetensors"),
          "an unknown tensor name is not an error naming the file: %s", e.msg);
    bad = file;
    char missing[600];
    snprintf(missing, sizeof missing, "%s/gone.safetensors", g_dir);
    bad.vol_path = missing;
    expect_error(&bad, FV_EIO, "missing shard file");
    buf_free(&png);
    buf_free(&a);
    buf_free(&b);
    render_cache_free(&file.cache);
    CHECK(file.cache == NULL, "render_cache_free leaves the pointer set");
}

/* Many threads through one cache of one slot, two files in turn: every
 * image is the same as the single-threaded one (ASan checks the mappings
 * outlive their users). */
typedef struct ThreadArg {
    RenderReq req[2];
    Buf want[2];
    int bad;
} ThreadArg;

static void *thread_main(void *p)
{
    ThreadArg *t = p;
    Buf b = {0};
    FvErr e = {0};
    for (int i = 0; i < 40; i++) {
        const int k = i & 1;
        if (render_slice_png(&t->req[k], &b, &e) || b.len != t->want[k].len ||
            memcmp(b.data, t->want[k].data, b.len))
            __atomic_add_fetch(&t->bad, 1, __ATOMIC_RELAXED);
    }
    buf_free(&b);
    return NULL;
}

static void test_threads_share_one_cache_safely(void)
{
    char vp[512], mp[512];
    snprintf(vp, sizeof vp, "%s/vol.safetensors", g_dir);
    snprintf(mp, sizeof mp, "%s/mask.safetensors", g_dir);
    const int64_t shape[3] = {NZ, NY, NX};
    if (write_tensor("vol.safetensors", "ct", ST_I16, shape, g_hu))
        return;
    ThreadArg t;
    memset(&t, 0, sizeof t);
    FvErr e = {0};
    RenderCache *cache;
    CHECK_OK(render_cache_new(&cache, 1, &e), &e);
    if (!cache)
        return;
    for (int k = 0; k < 2; k++) {
        req_base(&t.req[k]);
        t.req[k].hu = NULL;
        t.req[k].vol_path = vp;
        t.req[k].vol_tensor = "ct";
        t.req[k].plane = k ? RENDER_SAGITTAL : RENDER_AXIAL;
        t.req[k].index = 1;
        t.req[k].mask_path = mp;
        t.req[k].mask_tensor = "labels";
        t.req[k].labels[7] = 1;
        t.req[k].overlay = RENDER_OVERLAY_OUTLINE;
    }
    /* Request 1 reads the CT from vol.safetensors too, but through a second
     * path spelling, so the one-slot cache alternates between two entries. */
    static char vp2[600];
    snprintf(vp2, sizeof vp2, "%s/./vol.safetensors", g_dir);
    t.req[1].vol_path = vp2;
    for (int k = 0; k < 2; k++)
        CHECK_OK(render_slice_png(&t.req[k], &t.want[k], &e), &e);
    for (int k = 0; k < 2; k++)
        t.req[k].cache = cache;
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, thread_main, &t);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    CHECK(t.bad == 0, "%d of 160 threaded renders failed or differed", t.bad);
    CHECK(render_cache_opens(cache) >= 2, "the one-slot cache opened %lld files, expected >= 2",
          (long long)render_cache_opens(cache));
    render_cache_free(&cache);
    buf_free(&t.want[0]);
    buf_free(&t.want[1]);
}

/* ------------------------------------------------------------------ centre */

static void test_centre_is_an_anatomy_voxel_nearest_its_centroid(void)
{
    /* Two blobs like the lungs (label 10 at x 0..1 and x 8..9 of a 10-wide
     * volume): the centroid (x = 4.5) lies between them, outside both; the
     * centre is the blob voxel nearest to it. */
    enum { Z = 3, Y = 3, X = 10 };
    static uint8_t m[Z * Y * X];
    memset(m, 0, sizeof m);
    for (int z = 0; z < Z; z++)
        for (int y = 0; y < Y; y++) {
            m[(z * Y + y) * X + 0] = m[(z * Y + y) * X + 1] = 10;
            m[(z * Y + y) * X + 8] = m[(z * Y + y) * X + 9] = 10;
        }
    RenderReq r;
    render_req_init(&r);
    r.mask = m;
    r.dims[0] = Z; r.dims[1] = Y; r.dims[2] = X;
    r.spacing[0] = r.spacing[1] = r.spacing[2] = 1;
    r.labels[10] = 1;
    int64_t c[3] = {-1, -1, -1};
    FvErr e = {0};
    CHECK_OK(render_anatomy_centre(&r, c, &e), &e);
    CHECK(c[0] == 1 && c[1] == 1 && (c[2] == 1 || c[2] == 8), "centre is (%lld, %lld, %lld), "
          "expected (1, 1, 1) or (1, 1, 8)", (long long)c[0], (long long)c[1], (long long)c[2]);
    CHECK(m[(c[0] * Y + c[1]) * X + c[2]] == 10, "the centre is not inside the anatomy");

    /* The block of label 7 in the test volume: its centre voxel */
    req_base(&r);
    r.mask = g_mask;
    r.labels[7] = 1;
    CHECK_OK(render_anatomy_centre(&r, c, &e), &e);
    CHECK(c[1] == 2 && c[2] == 3 && (c[0] == 1 || c[0] == 2), "block centre is (%lld, %lld, %lld),"
          " expected (1 or 2, 2, 3)", (long long)c[0], (long long)c[1], (long long)c[2]);

    /* No voxels but a box: the box's centre. Neither: not found. */
    memset(r.labels, 0, sizeof r.labels);
    r.labels[200] = 1;
    r.has_box = 1;
    r.box = (RenderBox){.z0 = 0, .z1 = 4, .y0 = 1, .y1 = 4, .x0 = 2, .x1 = 3};
    CHECK_OK(render_anatomy_centre(&r, c, &e), &e);
    CHECK(c[0] == 1 && c[1] == 2 && c[2] == 2, "box centre is (%lld, %lld, %lld), expected (1, 2, 2)",
          (long long)c[0], (long long)c[1], (long long)c[2]);
    r.has_box = 0;
    CHECK(render_anatomy_centre(&r, c, &e) == -1 && e.code == FV_ENOTFOUND,
          "an anatomy with no voxels and no box is not FV_ENOTFOUND (code %d)", e.code);
}

/* The pruned search finds a voxel as near the centroid as the nearest one
 * of a brute-force search, on random sparse masks with 3 mm and 0.7 mm
 * slices. */
static void test_centre_matches_a_brute_force_search(void)
{
    enum { Z = 12, Y = 10, X = 9 };
    static uint8_t m[Z * Y * X];
    uint64_t seed = 88172645463325252ull;
    int bad = 0;
    for (int trial = 0; trial < 50; trial++) {
        int n = 0;
        for (int i = 0; i < Z * Y * X; i++) {
            seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
            m[i] = (seed % 1000) < (uint64_t)(3 + trial % 20) ? 5 : 0;
            n += m[i] == 5;
        }
        if (!n)
            continue;
        RenderReq r;
        render_req_init(&r);
        r.mask = m;
        r.dims[0] = Z; r.dims[1] = Y; r.dims[2] = X;
        const double sz = trial & 1 ? 3 : 0.7;
        r.spacing[0] = sz; r.spacing[1] = 1; r.spacing[2] = 1;
        r.labels[5] = 1;
        double c[3] = {0, 0, 0};
        for (int z = 0; z < Z; z++)
            for (int y = 0; y < Y; y++)
                for (int x = 0; x < X; x++)
                    if (m[(z * Y + y) * X + x] == 5) {
                        c[0] += z; c[1] += y; c[2] += x;
                    }
        for (int k = 0; k < 3; k++)
            c[k] /= n;
        double best = INFINITY;
        for (int z = 0; z < Z; z++)
            for (int y = 0; y < Y; y++)
                for (int x = 0; x < X; x++)
                    if (m[(z * Y + y) * X + x] == 5) {
                        double dz = (z - c[0]) * sz, dy = y - c[1], dx = x - c[2];
                        if (dz * dz + dy * dy + dx * dx < best)
                            best = dz * dz + dy * dy + dx * dx;
                    }
        int64_t got[3] = {-1, -1, -1};
        FvErr e = {0};
        if (render_anatomy_centre(&r, got, &e) || got[0] < 0 || got[0] >= Z || got[1] < 0 ||
            got[1] >= Y || got[2] < 0 || got[2] >= X) {
            bad++;
            continue;
        }
        double dz = (got[0] - c[0]) * sz, dy = got[1] - c[1], dx = got[2] - c[2];
        if (m[(got[0] * Y + got[1]) * X + got[2]] != 5 || dz * dz + dy * dy + dx * dx > best + 1e-9)
            bad++;
    }
    CHECK(bad == 0, "%d of 50 random masks: the centre is not a nearest anatomy voxel", bad);
}

/* ------------------------------------------------------------------ corpus */

static void test_study_rows_give_the_request_and_bad_rows_are_refused(void)
{
    char dbp[512];
    snprintf(dbp, sizeof dbp, "%s/corpus.db", g_dir);
    Db *db = NULL;
    FvErr e = {0};
    Ontology *o = NULL;
    CHECK_OK(onto_load(&o, &e), &e);
    CHECK_OK(db_open(&db, dbp, 0, &e), &e);
    if (!db || !o) {
        db_close(&db);
        onto_free(&o);
        return;
    }
    char tdir[600];
    db_tensor_dir(db, tdir, sizeof tdir);
    test_sh("mkdir -p '%s' && cp '%s/vol.safetensors' '%s/mask.safetensors' '%s/'", tdir, g_dir,
            g_dir, tdir);
    const char *rows =
        "INSERT INTO studies (id, study_key) VALUES (1, 'k1'), (2, 'k2'), (3, 'k3'), (4, 'k4');"
        "INSERT INTO volumes (id, study_id, sha256, source, src_dims, src_spacing, src_affine,"
        " src_orient, src_dtype, nz, ny, nx, sz, sy, sx, affine, shard, tensor) VALUES"
        " (1, 1, 'h', 's', '[]', '[]', '[]', 'RAS', 'i16', 4, 5, 6, 1, 1, 1, '[]', 'vol.safetensors', 'ct'),"
        " (2, 2, 'h', 's', '[]', '[]', '[]', 'RAS', 'i16', 4, 5, 6, 1, 1, 1, '[]', '../../etc/passwd', 'ct'),"
        " (3, 3, 'h', 's', '[]', '[]', '[]', 'RAS', 'i16', 4, -5, 6, 1, 1, 1, '[]', 'vol.safetensors', 'ct');"
        "INSERT INTO masks (study_id, volume_id, sha256, source, shard, tensor) VALUES"
        " (1, 1, 'h', 's', 'mask.safetensors', 'labels');"
        "INSERT INTO regions (study_id, anatomy, voxels, volume_ml, z0, z1, y0, y1, x0, x1, whole)"
        " VALUES (1, 'lung', 18, 0.018, 1, 3, 1, 4, 2, 5, 1),"
        "        (1, 'heart', 0, 0, 0, 0, 0, 0, 0, 0, 0),"
        "        (1, 'aorta', 5, 0.005, 0, 9, 0, 5, 0, 6, 0);";
    CHECK_OK(db_exec(db, rows, &e), &e);
    /* the test mask holds ids 7 and 9, none of the lung's: only its box shows */
    RenderStudy s;
    CHECK_OK(render_study_load(db, o, 1, "lung", &s, &e), &e);
    CHECK(s.dims[0] == 4 && s.dims[1] == 5 && s.dims[2] == 6, "dims are (%lld, %lld, %lld)",
          (long long)s.dims[0], (long long)s.dims[1], (long long)s.dims[2]);
    CHECK(s.has_mask && strstr(s.mask_path, ".tensors/mask.safetensors"), "mask path is '%s'",
          s.mask_path);
    CHECK(s.has_box && s.box.z0 == 1 && s.box.z1 == 3 && s.box.x0 == 2 && s.box.x1 == 5,
          "lung box is not the regions row");
    CHECK(s.labels[10] && s.labels[14] && !s.labels[7] && !s.labels[15],
          "lung labels are not TotalSegmentator 10-14");
    RenderReq r;
    render_req_init(&r);
    render_req_from_study(&r, &s);
    r.wc = 127.5;
    r.ww = 255;
    r.index = 2;
    r.overlay = RENDER_OVERLAY_OUTLINE;
    int w, h;
    uint8_t *rgb = render(&r, &w, &h);
    if (rgb) {
        CHECK(is_rgb(px(rgb, w, 1, 1), RENDER_BOX_RGB), "the lung's box is not drawn from the rows");
        free(rgb);
    }

    /* An anatomy with no mask of its own takes its parts' ids */
    CHECK_OK(render_study_load(db, o, 1, "mediastinum", &s, &e), &e);
    CHECK(s.labels[51] && s.labels[52] && s.labels[15] && s.labels[16] && !s.labels[10],
          "mediastinum labels are not those of heart, aorta, esophagus and trachea");
    /* A region of 0 voxels has no box */
    CHECK_OK(render_study_load(db, o, 1, "heart", &s, &e), &e);
    CHECK(!s.has_box, "a region of 0 voxels gives a box");
    /* No anatomy: no labels, no box */
    CHECK_OK(render_study_load(db, o, 1, NULL, &s, &e), &e);
    CHECK(!s.has_box && !s.labels[10], "no anatomy still gives labels or a box");

    CHECK(render_study_load(db, o, 1, "aorta", &s, &e) == -1 && e.code == FV_EFORMAT,
          "a box past the volume is not refused (code %d)", e.code);
    CHECK(render_study_load(db, o, 1, "<script>", &s, &e) == -1 && e.code == FV_ENOTFOUND,
          "an unknown anatomy is not FV_ENOTFOUND (code %d)", e.code);
    CHECK(render_study_load(db, o, 2, NULL, &s, &e) == -1 && e.code == FV_EFORMAT &&
              strstr(e.msg, "not a file under"),
          "a shard name climbing out of the tensor folder is not refused: %s", e.msg);
    CHECK(render_study_load(db, o, 3, NULL, &s, &e) == -1 && e.code == FV_EFORMAT,
          "a negative dimension is not refused (code %d)", e.code);
    CHECK(render_study_load(db, o, 4, NULL, &s, &e) == -1 && e.code == FV_ENOTFOUND,
          "a study without a volume is not FV_ENOTFOUND (code %d)", e.code);
    CHECK(render_study_load(db, o, 99, NULL, &s, &e) == -1 && e.code == FV_ENOTFOUND,
          "an unknown study is not FV_ENOTFOUND (code %d)", e.code);
    db_close(&db);
    onto_free(&o);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/test_render.XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    volume_fill();
    RUN(test_window_maps_hu_to_grey_by_the_documented_formula);
    RUN(test_axial_puts_patient_right_on_the_left_and_anterior_up);
    RUN(test_coronal_puts_superior_up_and_patient_right_on_the_left);
    RUN(test_sagittal_puts_superior_up_and_anterior_on_the_left);
    RUN(test_coronal_of_3mm_slices_is_resampled_to_square_pixels);
    RUN(test_a_very_long_axis_is_capped_at_the_maximum_side);
    RUN(test_outline_marks_the_mask_boundary_and_leaves_its_inside_grey);
    RUN(test_fill_blends_the_mask_colour_inside_only);
    RUN(test_region_box_is_drawn_only_on_slices_it_crosses);
    RUN(test_png_decodes_back_to_the_rendered_rgb_in_its_smallest_form);
    RUN(test_hostile_requests_are_errors_not_images);
    RUN(test_random_requests_render_or_fail_cleanly);
    RUN(test_shard_files_render_like_memory_and_the_cache_reuses_them);
    RUN(test_threads_share_one_cache_safely);
    RUN(test_centre_is_an_anatomy_voxel_nearest_its_centroid);
    RUN(test_centre_matches_a_brute_force_search);
    RUN(test_study_rows_give_the_request_and_bad_rows_are_refused);
    test_remove(g_dir);
    return test_finish();
}
