#include "oracle.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int oracle_grid_init(OracleGrid *g, const Scene *s, const int in_zyx[3],
                     const double margin_zyx[3], double hu_lo, double hu_hi)
{
    memset(g, 0, sizeof *g);
    int lo[3] = {s->nx, s->ny, s->nz}, hi[3] = {-1, -1, -1};
    for (int id = 1; id < 256; id++) {
        if (!s->count[id])
            continue;
        for (int a = 0; a < 3; a++) {
            if (s->lo[id][a] < lo[a])
                lo[a] = s->lo[id][a];
            if (s->hi[id][a] > hi[a])
                hi[a] = s->hi[id][a];
        }
    }
    if (hi[0] < 0)
        return -1;
    const int dims[3] = {s->nx, s->ny, s->nz};
    g->hu_lo = hu_lo;
    g->hu_hi = hu_hi;
    for (int a = 0; a < 3; a++) {
        int n = in_zyx[2 - a];
        g->n[a] = n < 1 ? 1 : n > ORACLE_MAX_N ? ORACLE_MAX_N : n;
        /* the crop box (half-open, voxel units) and the sample positions as
         * train/data.c's data_crop and src_coord place them */
        double m = margin_zyx[2 - a] / s->sp[a];
        double blo = lo[a] - m, bhi = hi[a] + 1 + m;
        for (int i = 0; i < g->n[a]; i++) {
            double p = blo + (i + 0.5) * (bhi - blo) / g->n[a] - 0.5;
            double f = floor(p);
            g->i0[a][i] = f < -1 || f >= dims[a] ? -2 : (int)f;
            g->w1[a][i] = (float)(p - f);
            double r = floor(p + 0.5);
            g->nn[a][i] = r < 0 || r >= dims[a] ? -1 : (int)r;
        }
    }
    return 0;
}

/* HU of voxel (i, j, k), air outside the grid (as the trainer pads). */
static double hu_at(const Scene *s, const int16_t *v, int i, int j, int k)
{
    if (i < 0 || j < 0 || k < 0 || i >= s->nx || j >= s->ny || k >= s->nz)
        return -1024.0;
    return v[scene_idx(s, i, j, k)];
}

static double sample(const OracleGrid *g, const Scene *s, const int16_t *v, int x, int y, int z)
{
    int i = g->i0[0][x], j = g->i0[1][y], k = g->i0[2][z];
    if (i == -2 || j == -2 || k == -2)
        return -1024.0;
    double wx = g->w1[0][x], wy = g->w1[1][y], wz = g->w1[2][z], acc = 0.0;
    for (int c = 0; c < 8; c++) {
        int dx = c & 1, dy = (c >> 1) & 1, dz = c >> 2;
        double w = (dx ? wx : 1 - wx) * (dy ? wy : 1 - wy) * (dz ? wz : 1 - wz);
        if (w > 0)
            acc += w * hu_at(s, v, i + dx, j + dy, k + dz);
    }
    return acc;
}

static double window(const OracleGrid *g, double hu)
{
    return hu < g->hu_lo ? g->hu_lo : hu > g->hu_hi ? g->hu_hi : hu;
}

int64_t oracle_changed(const OracleGrid *g, const Scene *s, const int16_t *before,
                       const int16_t *after)
{
    /* only points next to a voxel that differs can change: the box of those
     * voxels bounds the loop (a nodule is a few voxels of a million) */
    int lo[3] = {s->nx, s->ny, s->nz}, hi[3] = {-1, -1, -1};
    for (int k = 0; k < s->nz; k++)
        for (int j = 0; j < s->ny; j++) {
            size_t row = scene_idx(s, 0, j, k);
            if (!memcmp(before + row, after + row, (size_t)s->nx * sizeof *before))
                continue;
            for (int i = 0; i < s->nx; i++)
                if (before[row + (size_t)i] != after[row + (size_t)i]) {
                    const int p[3] = {i, j, k};
                    for (int a = 0; a < 3; a++) {
                        lo[a] = p[a] < lo[a] ? p[a] : lo[a];
                        hi[a] = p[a] > hi[a] ? p[a] : hi[a];
                    }
                }
        }
    if (hi[0] < 0)
        return 0;
    int from[3], to[3];
    for (int a = 0; a < 3; a++) {
        from[a] = g->n[a];
        to[a] = -1;
        for (int q = 0; q < g->n[a]; q++) {
            int c = g->i0[a][q];
            if (c != -2 && c + 1 >= lo[a] && c <= hi[a]) {
                from[a] = q < from[a] ? q : from[a];
                to[a] = q;
            }
        }
    }
    int64_t n = 0;
    for (int z = from[2]; z <= to[2]; z++)
        for (int y = from[1]; y <= to[1]; y++)
            for (int x = from[0]; x <= to[0]; x++) {
                double b = window(g, sample(g, s, before, x, y, z));
                double a = window(g, sample(g, s, after, x, y, z));
                n += fabs(a - b) >= ORACLE_MIN_HU;
            }
    return n;
}

int64_t oracle_points(const OracleGrid *g, const Scene *s, const unsigned char want[256])
{
    int64_t n = 0;
    for (int z = 0; z < g->n[2]; z++) {
        int k = g->nn[2][z];
        if (k < 0)
            continue;
        for (int y = 0; y < g->n[1]; y++) {
            int j = g->nn[1][y];
            if (j < 0)
                continue;
            for (int x = 0; x < g->n[0]; x++) {
                int i = g->nn[0][x];
                if (i >= 0)
                    n += want[s->lab[scene_idx(s, i, j, k)]] != 0;
            }
        }
    }
    return n;
}

double oracle_share(const OracleGrid *g, const Scene *s, const Ontology *o, int a,
                    int64_t changed)
{
    const Anatomy *an = &o->anat[a];
    unsigned char want[256] = {0};
    for (int k = 0; k < an->n_ts; k++)
        if (an->ts_ids[k] > 0 && an->ts_ids[k] < 256)
            want[an->ts_ids[k]] = 1;
    for (int r = 0; r < an->n_region_of; r++) {
        const Anatomy *ra = &o->anat[an->region_of[r]];
        for (int k = 0; k < ra->n_ts; k++)
            if (ra->ts_ids[k] > 0 && ra->ts_ids[k] < 256)
                want[ra->ts_ids[k]] = 1;
    }
    int64_t pts = oracle_points(g, s, want);
    return pts > 0 ? (double)changed / (double)pts : 1.0;
}

int oracle_shapes_keep(OracleShapes *os, int task, const Body *before, const Body *after,
                       FvErr *e)
{
    if (os->n == ORACLE_MAX_SHAPED)
        return err_set(e, FV_ELIMIT, "synth: more than %d shape-changing tasks in one study",
                       ORACLE_MAX_SHAPED);
    Body *b = malloc(sizeof *b), *a = malloc(sizeof *a);
    if (!b || !a) {
        free(b);
        free(a);
        return err_set(e, FV_ENOMEM, "synth: out of memory");
    }
    *b = *before;
    *a = *after;
    os->task[os->n] = task;
    os->before[os->n] = b;
    os->after[os->n] = a;
    os->n++;
    return 0;
}

void oracle_shapes_free(OracleShapes *os)
{
    for (int k = 0; k < os->n; k++) {
        free(os->before[k]);
        free(os->after[k]);
    }
    os->n = 0;
}

int oracle_shapes_measure(const OracleShapes *os, const OracleGrid *g, const Scene *like,
                          const Rng *tex, int64_t *changed, FvErr *e)
{
    if (!os->n)
        return 0;
    Scene sb, sa;
    if (scene_alloc(&sb, like->nx, like->ny, like->nz, like->org, like->sp, e))
        return -1;
    if (scene_alloc(&sa, like->nx, like->ny, like->nz, like->org, like->sp, e)) {
        scene_free(&sb);
        return -1;
    }
    sb.tt = sa.tt = like->tt;
    sb.enhanced = sa.enhanced = like->enhanced;
    for (int k = 0; k < os->n; k++) {
        Rng r1 = *tex, r2 = *tex;
        phantom_render(os->before[k], &sb, &r1);
        phantom_render(os->after[k], &sa, &r2);
        changed[os->task[k]] += oracle_changed(g, &sa, sb.hu, sa.hu);
    }
    scene_free(&sb);
    scene_free(&sa);
    return 0;
}
