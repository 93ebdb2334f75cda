/* viewer_fixture: the slice endpoint of test_viewer.py, without a corpus or
 * a server: renders a slice of a fixed phantom with audit/render.c.
 *
 *   viewer_fixture PLANE I WC WW OVERLAY [ANATOMY]
 * writes the PNG to stdout (exit 0), or one line of error (exit 1, 2 for
 * a bad request, 3 for an unknown anatomy: the test server answers 500, 400,
 * 404 as audit/server.c does).
 *
 * The phantom: 20 x 48 x 64 voxels (z, y, x) of 3 x 1 x 1 mm; HU = 100 x /
 * 63 + 40 y / 47 - 1000 + 50 z (every axis visible in the grey); the anatomy
 * "lung" is label 10 on the block z 5..14, y 10..29, x 8..27 (patient's right
 * half: the image's left), its region box that block. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render.h"

enum { NZ = 20, NY = 48, NX = 64 };

int main(int argc, char **argv)
{
    if (argc < 6 || argc > 7) {
        fprintf(stderr, "usage: viewer_fixture PLANE I WC WW OVERLAY [ANATOMY]\n");
        return 2;
    }
    static int16_t hu[NZ * NY * NX];
    static uint8_t mask[NZ * NY * NX];
    for (int z = 0; z < NZ; z++)
        for (int y = 0; y < NY; y++)
            for (int x = 0; x < NX; x++) {
                int i = (z * NY + y) * NX + x;
                hu[i] = (int16_t)(100 * x / 63 + 40 * y / 47 - 1000 + 50 * z);
                mask[i] = z >= 5 && z <= 14 && y >= 10 && y <= 29 && x >= 8 && x <= 27 ? 10 : 0;
            }
    RenderReq r;
    render_req_init(&r);
    r.hu = hu;
    r.mask = mask;
    r.dims[0] = NZ; r.dims[1] = NY; r.dims[2] = NX;
    r.spacing[0] = 3; r.spacing[1] = 1; r.spacing[2] = 1;
    FvErr e = {0};
    char *end;
    r.index = strtoll(argv[2], &end, 10);
    if (*end || !argv[2][0]) {
        printf("parameter i: expected a whole slice index\n");
        return 2;
    }
    r.wc = strtod(argv[3], NULL);
    r.ww = strtod(argv[4], NULL);
    if (argc == 7 && argv[6][0]) {
        if (strcmp(argv[6], "lung")) {
            printf("unknown anatomy '%.60s'\n", argv[6]);
            return 3;
        }
        r.labels[10] = 1;
        r.has_box = 1;
        r.box = (RenderBox){.z0 = 5, .z1 = 15, .y0 = 10, .y1 = 30, .x0 = 8, .x1 = 28};
    }
    Buf png = {0};
    if (render_plane_parse(argv[1], &r.plane, &e) || render_overlay_parse(argv[5], &r.overlay, &e) ||
        render_slice_png(&r, &png, &e)) {
        printf("%s\n", e.msg);
        buf_free(&png);
        return e.code == FV_EUSAGE ? 2 : 1;
    }
    int ok = fwrite(png.data, 1, png.len, stdout) == png.len && fflush(stdout) == 0;
    buf_free(&png);
    return ok ? 0 : 1;
}
