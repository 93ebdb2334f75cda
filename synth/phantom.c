#include "phantom.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "schemas.h"
#include "tsv.h"

/* ------------------------------------------------------------------------ */
/* Tissues                                                                    */
/* ------------------------------------------------------------------------ */

static const char *const tissue_names[T_COUNT] = {
    "air", "lung", "fat", "fat_sub", "muscle", "skin", "artery", "vein", "myocardium",
    "vessel_wall", "liver", "spleen", "kidney_cortex", "kidney_medulla", "kidney_sinus",
    "pancreas", "adrenal", "thyroid", "esophagus", "bowel_wall", "bowel_fluid", "gas", "stool",
    "bile", "urine", "bone_cortex", "bone_marrow", "rib", "cartilage", "disc", "cord", "csf",
    "table_skin", "table_core", "breast", "airway_wall", "food", "lesion",
};

const char *tissue_name(int t) { return t >= 0 && t < T_COUNT ? tissue_names[t] : "?"; }

int tissue_table_load(TissueTable *t, FvErr *e)
{
    static const char *file = "synth_tissues.tsv";
    char *text = NULL;
    size_t len = 0;
    if (schema_load(file, &text, &len, e))
        return -1;
    memset(t, 0, sizeof *t);
    int seen[T_COUNT] = {0};
    TsvReader r;
    int rc = -1;
    if (tsv_open(&r, text, len, file, e))
        goto out;
    static const char *const cols[] = {"name", "hu_plain", "hu_enh", "texture_sd", NULL};
    int c[4] = {0};
    if (tsv_cols(&r, cols, c, e))
        goto close;
    int cn = c[0], cp = c[1], ce = c[2], cs = c[3];
    int got;
    while ((got = tsv_next(&r, e)) == 1) {
        int id = -1;
        for (int k = 0; k < T_COUNT; k++)
            if (strcmp(tissue_names[k], r.fields[cn]) == 0)
                id = k;
        if (id < 0) {
            err_set(e, FV_EFORMAT, "%s:%d: unknown tissue '%s'", file, r.line, r.fields[cn]);
            goto close;
        }
        char *end1, *end2, *end3;
        double hp = strtod(r.fields[cp], &end1), he = strtod(r.fields[ce], &end2),
               sd = strtod(r.fields[cs], &end3);
        if (*end1 || *end2 || *end3 || hp < -1024 || hp > 3071 || he < -1024 || he > 3071 ||
            sd < 0 || sd > 500) {
            err_set(e, FV_EFORMAT, "%s:%d: tissue '%s': HU values must be numbers in "
                    "[-1024, 3071] and texture_sd in [0, 500]", file, r.line, r.fields[cn]);
            goto close;
        }
        t->hu[0][id] = hp;
        t->hu[1][id] = he;
        t->sd[id] = sd;
        seen[id] = 1;
    }
    if (got < 0)
        goto close;
    for (int k = 0; k < T_COUNT; k++)
        if (!seen[k] && k != T_LESION) {
            err_set(e, FV_EFORMAT, "%s: no row for tissue '%s'", file, tissue_names[k]);
            goto close;
        }
    rc = 0;
close:
    tsv_close(&r);
out:
    free(text);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The body: a template adult scaled and jittered per patient                 */
/* ------------------------------------------------------------------------ */

static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Template coordinates (unscaled mm) to this patient's body mm. */
static void tadd(const Body *b, Tube *t, double x, double y, double z, double r, double lumen)
{
    double rs = 0.5 * (b->sx + b->sy);
    tube_add(t, x * b->sx, y * b->sy, z * b->sz, r * rs, lumen * rs);
}

static void eset(const Body *b, Ellip *e, double x, double y, double z, const double dir[3],
                 const double up[3], double a0, double a1, double a2)
{
    double c[3] = {x * b->sx, y * b->sy, z * b->sz};
    double rs = 0.5 * (b->sx + b->sy);
    ellip_axis(e, c, dir, up, a0 * rs, a1 * rs, a2 * b->sz);
}

static void jitter_ellip(Ellip *e, Rng *r, double pos_sd, double size_sd)
{
    for (int i = 0; i < 3; i++) {
        e->c[i] += rng_normal(r) * pos_sd;
        e->ax[i] *= 1 + clampd(rng_normal(r) * size_sd, -2.5 * size_sd, 2.5 * size_sd);
    }
}

static void jitter_tube(Tube *t, Rng *r, double pos_sd)
{
    double d[3];
    for (int i = 0; i < 3; i++)
        d[i] = rng_normal(r) * pos_sd;
    for (int v = 0; v < t->n; v++)
        for (int i = 0; i < 3; i++)
            t->p[v][i] += d[i] + rng_normal(r) * pos_sd * 0.3;
}

/* Cross-section of the trunk at body height z: the skin outline and the
 * cavity (inside the ribs or the abdominal wall muscles). */
typedef struct Xsec {
    double cy;            /* centre, mm */
    double a, ba, bp;     /* skin: half-width, anterior and posterior half-depth */
    double ca, cba, cbp;  /* cavity */
    double fat;           /* subcutaneous fat, mm */
} Xsec;

static void xsec(const Body *b, double z, Xsec *o)
{
    double zu = z / b->sz, ca, cba, cbp;
    if (zu >= 150) {
        double t = (zu - 150) / 100;
        if (t > 1.4)
            t = 1.4;
        ca = 125 - 30 * t * t;
        cba = 95 - 22 * t;
        cbp = 85;
    } else if (zu >= -50) {
        ca = 125 + 5 * (150 - zu) / 200;
        cba = 95;
        cbp = 85;
    } else {
        double t = (-50 - zu) / 250;
        if (t > 1.3)
            t = 1.3;
        ca = 130 - 10 * t;
        cba = 95;
        cbp = 85 - 12 * t;
    }
    double cy = -10, fat = b->fat_sub;
    double a = ca + 20 + fat, ba = cba + 20 + fat * (zu < -40 ? 1.4 : 1.0), bp = cbp + 45 + 0.6 * fat;
    if (zu > 180)
        a += 22 * clampd((zu - 180) / 60, 0, 1); /* shoulder girdle */
    if (zu > 285) {                                  /* the neck */
        double t = clampd((zu - 285) / 35, 0, 1);
        a += (62 + 0.3 * fat - a) * t;
        ba += (52 - ba) * t;
        bp += (68 - bp) * t;
        cy += (-28 - cy) * t;
        ca *= 1 - t;
        cba *= 1 - t;
        cbp *= 1 - t;
        fat *= 1 - 0.7 * t;
    }
    o->cy = cy * b->sy;
    o->a = a * b->sx;
    o->ba = ba * b->sy;
    o->bp = bp * b->sy;
    o->ca = ca * b->sx;
    o->cba = cba * b->sy;
    o->cbp = cbp * b->sy;
    o->fat = fat;
}

void body_outline(const Body *b, double z, double *cy, double *a, double *ba, double *bp)
{
    Xsec x;
    xsec(b, z, &x);
    *cy = x.cy;
    *a = x.a;
    *ba = x.ba;
    *bp = x.bp;
}

void body_cavity(const Body *b, double z, double *cy, double *ca, double *cba, double *cbp)
{
    Xsec x;
    xsec(b, z, &x);
    *cy = x.cy;
    *ca = x.ca;
    *cba = x.cba;
    *cbp = x.cbp;
}

double body_diaphragm_z(const Body *b, double x, double y)
{
    double xu = x / b->sx, yu = y / b->sy;
    double dome = xu >= 0 ? b->dome_r : b->dome_l;
    double dx = (fabs(xu) - 62) / 80, z = dome - 38 * dx * dx;
    if (yu < -15) {
        double dy = (yu + 15) / 70;
        z -= 70 * dy * dy;
    } else {
        double dy = (yu + 15) / 100;
        z -= 25 * dy * dy;
    }
    if (z < -95)
        z = -95;
    return z * b->sz;
}

/* Half-width of the mediastinal band that separates the lungs. */
static double mediastinum_halfwidth(double yu, double zu)
{
    if (yu > 35)
        return 7;          /* anterior junction behind the sternum */
    if (yu > -40)
        return zu > 95 ? 24 : 12;
    return 26;             /* the spine and the paravertebral tissue */
}

static int lung_lobe(const Body *b, double xu, double yu, double zu)
{
    double zf = b->fiss_z0 - b->fiss_slope * (yu + 80);
    if (xu >= 0) {
        if (zu < zf)
            return TS_LUNG_RL;
        return zu < b->fiss_h ? TS_LUNG_RM : TS_LUNG_RU;
    }
    return zu < zf ? TS_LUNG_LL : TS_LUNG_UL;
}

static int lung_at(const Body *b, const Xsec *xs, const double p[3])
{
    double xu = p[0] / b->sx, yu = p[1] / b->sy, zu = p[2] / b->sz;
    if (zu > 245 || p[2] <= body_diaphragm_z(b, p[0], p[1]))
        return 0;
    double cb = p[1] > xs->cy ? xs->cba : xs->cbp;
    if (xs->ca <= 0 || cb <= 0)
        return 0;
    double qx = p[0] / xs->ca, qy = (p[1] - xs->cy) / cb;
    if (qx * qx + qy * qy >= 1)
        return 0;
    if (zu > 150) {
        double f2 = 1 - ((zu - 150) / 95) * ((zu - 150) / 95);
        if (f2 <= 0)
            return 0;
        double f = sqrt(f2), dx = (fabs(xu) - 48) / (85 * f), dy = (yu + 10) / (95 * f);
        if (dx * dx + dy * dy >= 1)
            return 0;
    }
    if (fabs(xu + 4) < mediastinum_halfwidth(yu, zu))
        return 0;
    return lung_lobe(b, xu, yu, zu);
}

int body_lung_at(const Body *b, const double p[3])
{
    Xsec xs;
    xsec(b, p[2], &xs);
    return lung_at(b, &xs, p);
}

/* Vertebral body centre depth along the spine's curve (unscaled mm). */
static double spine_y(double zu)
{
    static const double zz[] = {330, 300, 200, 100, 0, -100, -180, -245, -330};
    static const double yy[] = {-40, -45, -58, -66, -62, -50, -44, -60, -90};
    for (int i = 0; i + 1 < 9; i++)
        if (zu <= zz[i] && zu >= zz[i + 1]) {
            double t = (zu - zz[i]) / (zz[i + 1] - zz[i]);
            return yy[i] + t * (yy[i + 1] - yy[i]);
        }
    return zu > 330 ? -40 : -90;
}

static void build_spine(Body *b)
{
    int n = 0;
    /* C7 */
    Vertebra *v = &b->vert[n++];
    v->ts_id = TS_C7;
    strcpy(v->name, "C7");
    v->z = 282;
    v->h = 14;
    v->rx = 13;
    for (int k = 1; k <= 12; k++) {
        v = &b->vert[n++];
        v->ts_id = TS_T1 - (k - 1);
        v->name[0] = 'T';
        v->name[1] = (char)(k < 10 ? '0' + k : '1');
        v->name[2] = (char)(k < 10 ? 0 : '0' + k - 10);
        v->name[3] = 0;
        v->z = 255 - (k - 1) * 27;
        v->h = 19 + 4.0 * (k - 1) / 11;
        v->rx = 14 + 6.0 * (k - 1) / 11;
    }
    for (int k = 1; k <= 5; k++) {
        v = &b->vert[n++];
        v->ts_id = TS_T12 - k;
        v->name[0] = 'L';
        v->name[1] = (char)('0' + k);
        v->name[2] = 0;
        v->z = -75 - (k - 1) * 34;
        v->h = 26 + 0.5 * k;
        v->rx = 22 + k;
    }
    v = &b->vert[n++];
    v->ts_id = TS_S1;
    strcpy(v->name, "S1");
    v->z = -247;
    v->h = 26;
    v->rx = 25;
    b->nvert = n;
    for (int i = 0; i < n; i++) {
        v = &b->vert[i];
        v->y = spine_y(v->z) * b->sy;
        v->z *= b->sz;
        v->h *= b->sz;
        v->rx *= 0.5 * (b->sx + b->sy);
        v->ry = v->rx * (v->name[0] == 'L' || v->name[0] == 'S' ? 0.74 : 0.82);
        v->collapse = 1;
        v->hu_add = 0;
    }
}

static void build_ribs(Body *b)
{
    for (int side = 0; side < 2; side++) {
        double sg = side == 0 ? 1 : -1; /* 0: right (+x) */
        for (int k = 1; k <= 12; k++) {
            Rib *rb = &b->rib[side * 12 + k - 1];
            memset(rb, 0, sizeof *rb);
            rb->ts_id = (side == 0 ? TS_RIB_R1 : TS_RIB_L1) + k - 1;
            const Vertebra *v = &b->vert[k]; /* T_k */
            double zk = v->z / b->sz;
            double drop = 30 + 4.5 * k;
            double pb = k <= 7 ? 0.78 : k <= 10 ? 0.72 : k == 11 ? 0.55 : 0.42;
            double pc = k <= 7 ? 0.93 : k <= 10 ? 0.84 : 0;
            double rr = k == 1 ? 4.5 : 4.8;
            rb->bone.n = 0;
            tube_add(&rb->bone, sg * (v->rx + 6), v->y - 8, v->z + 4, rr, 0);
            int steps = 10;
            for (int s = 0; s <= steps; s++) {
                double phi = M_PI * (0.2 + (pb - 0.2) * s / steps);
                double zu = zk + 6 - drop * pow(phi / M_PI, 1.4);
                Xsec xs;
                xsec(b, zu * b->sz, &xs);
                double x = sg * (xs.ca + 6 * b->sx) * sin(phi);
                double y = xs.cy - (cos(phi) > 0 ? xs.cbp + 6 * b->sy : xs.cba + 6 * b->sy) * cos(phi);
                tube_add(&rb->bone, x, y, zu * b->sz, rr, 0);
            }
            if (pc > 0) {
                for (int s = 0; s <= 5; s++) {
                    double phi = M_PI * (pb + (pc - pb) * s / 5);
                    double zu = zk + 6 - drop * pow(phi / M_PI, 1.4) + (k > 7 ? 12.0 * s / 5 : 0);
                    Xsec xs;
                    xsec(b, zu * b->sz, &xs);
                    double x = sg * (xs.ca + 6 * b->sx) * sin(phi);
                    double y = xs.cy - (xs.cba + 6 * b->sy) * cos(phi);
                    tube_add(&rb->cart, x, y, zu * b->sz, 4.5, 0);
                }
            }
        }
    }
}

/* Lung vessels: branches from each hilum toward random points of the lung. */
static void build_lung_vessels(Body *b, Rng *r)
{
    b->nlv = 0;
    for (int side = 0; side < 2; side++) {
        double sg = side == 0 ? 1 : -1;
        double h[3] = {sg * 46 * b->sx, -10 * b->sy, 108 * b->sz};
        for (int n = 0; n < BODY_NLV / 2; n++) {
            double t[3] = {0, 0, 0};
            int found = 0;
            for (int tries = 0; tries < 60 && !found; tries++) {
                t[0] = sg * rng_range(r, 15, 135) * b->sx;
                t[1] = rng_range(r, -95, 85) * b->sy;
                t[2] = rng_range(r, -70, 235) * b->sz;
                found = body_lung_at(b, t) != 0;
            }
            if (!found)
                continue;
            Tube *tb = &b->lv[b->nlv++];
            tb->n = 0;
            tube_add(tb, h[0], h[1], h[2], 4.2, 0);
            double m[3];
            for (int i = 0; i < 3; i++)
                m[i] = h[i] + 0.45 * (t[i] - h[i]) + rng_normal(r) * 8;
            tube_add(tb, m[0], m[1], m[2], 2.6, 0);
            tube_add(tb, t[0], t[1], t[2], 1.0, 0);
        }
    }
}

static void build_small_bowel(Body *b, Rng *r)
{
    for (int n = 0; n < BODY_NSB; n++) {
        Tube *t = &b->sbowel[n];
        t->n = 0;
        double p[3] = {rng_range(r, -70, 70), rng_range(r, -5, 65), rng_range(r, -270, -140)};
        double d[3] = {rng_normal(r), rng_normal(r), rng_normal(r)};
        v3_norm(d);
        for (int s = 0; s < 22; s++) {
            tadd(b, t, p[0], p[1], p[2], 12.5, 10);
            for (int i = 0; i < 3; i++)
                d[i] += rng_normal(r) * 0.8;
            /* stay in the lower abdomen: steer back toward the box */
            static const double lo[3] = {-90, -20, -285}, hi[3] = {90, 75, -125};
            for (int i = 0; i < 3; i++) {
                if (p[i] < lo[i])
                    d[i] += 1.0;
                if (p[i] > hi[i])
                    d[i] -= 1.0;
            }
            v3_norm(d);
            for (int i = 0; i < 3; i++)
                p[i] += 24 * d[i];
        }
    }
}

void body_init(Body *b, Rng *r)
{
    memset(b, 0, sizeof *b);
    b->female = rng_bernoulli(r, 0.45);
    b->age = 25 + (int)rng_below(r, 61);
    b->sx = rng_range(r, 0.86, 1.14) * (b->female ? 0.96 : 1.0);
    b->sy = b->sx * rng_range(r, 0.9, 1.1);
    b->sz = rng_range(r, 0.92, 1.08) * (b->female ? 0.96 : 1.0);
    b->fat_sub = rng_range(r, 6, 36) + (b->female ? 5 : 0);
    b->dome_r = rng_range(r, -10, 10);
    b->dome_l = b->dome_r - rng_range(r, 8, 24);
    b->fiss_z0 = 150 + rng_normal(r) * 8;
    b->fiss_slope = 1.07 + rng_normal(r) * 0.08;
    b->fiss_h = 85 + rng_normal(r) * 8;

    static const double X[3] = {1, 0, 0}, Y[3] = {0, 1, 0}, Z[3] = {0, 0, 1};
    double hf = rng_range(r, 0.92, 1.08);
    {
        double dir[3] = {-0.62, 0.5, -0.6};
        eset(b, &b->heart, -28, 26, 40, dir, Z, 68 * hf, 50 * hf, 46 * hf / b->sz);
        jitter_ellip(&b->heart, r, 4, 0.04);
        b->heart_chamber = 0.5;
    }
    eset(b, &b->thyroid[0], 20, 22, 285, X, Y, 9, 11, 23);
    eset(b, &b->thyroid[1], -20, 22, 285, X, Y, 9, 11, 23);
    eset(b, &b->thyroid[2], 0, 30, 272, X, Y, 12, 4, 6);
    for (int i = 0; i < 3; i++)
        jitter_ellip(&b->thyroid[i], r, 2, 0.08);
    {
        double d1[3] = {1, 0.1, 0.15};
        eset(b, &b->liver[0], 62, 8, -72, d1, Y, 92, 82, 78);
        eset(b, &b->liver[1], -15, 45, -48, X, Y, 58, 34, 36);
        jitter_ellip(&b->liver[0], r, 5, 0.06);
        jitter_ellip(&b->liver[1], r, 5, 0.08);
    }
    {
        double d[3] = {0.15, 0.55, -0.82};
        eset(b, &b->gb, 48, 45, -105, d, X, 36, 15, 14);
        jitter_ellip(&b->gb, r, 4, 0.1);
        b->gb_wall = 2.5;
    }
    {
        double d[3] = {0.25, 0.75, -0.6}, lat[3] = {-1, 0, 0};
        eset(b, &b->spleen, -98, -42, -48, d, lat, 55, 20, 36);
        jitter_ellip(&b->spleen, r, 5, 0.08);
    }
    for (int s = 0; s < 2; s++) {
        double sg = s == 0 ? 1 : -1;
        double d[3] = {-0.15 * sg, -0.15, 1}, hil[3] = {-sg * 0.7, 0.7, 0};
        eset(b, &b->kidney[s], 68 * sg, s == 0 ? -52 : -50, s == 0 ? -128 : -110, d, hil, 52, 26,
             22);
        jitter_ellip(&b->kidney[s], r, 4, 0.06);
        b->ksinus[s] = b->kidney[s];
        for (int i = 0; i < 3; i++)
            b->ksinus[s].c[i] += 9 * (i == 0 ? -sg * 0.7 : i == 1 ? 0.7 : 0);
        ellip_scale(&b->ksinus[s], 0.5, 0.38, 0.45);
        double da[3] = {0.1 * sg, 0.5, 1}, db[3] = {0.5 * sg, -0.2, 1};
        eset(b, &b->adrenal[s][0], 34 * sg, -31, -60, da, Y, 17, 9, 3.2);
        eset(b, &b->adrenal[s][1], 41 * sg, -39, -65, db, Y, 15, 8, 3.2);
        double dp[3] = {sg * 0.85, 0.5, 0.15};
        eset(b, &b->ilium[s], 88 * sg, -38, -275, dp, Z, 9, 62, 55);
        eset(b, &b->acetab[s], 88 * sg, 12, -355, X, Y, 26, 26, 26);
        eset(b, &b->femur[s], 92 * sg, 12, -374, X, Y, 22, 22, 22);
        double ds[3] = {sg * 0.35, -0.94, 0};
        eset(b, &b->scap[s], 95 * sg, -112, 175, ds, Z, 6, 70, 45);
        if (b->female) {
            double cy, a, ba, bp;
            body_outline(b, 75 * b->sz, &cy, &a, &ba, &bp);
            double c[3] = {72 * sg * b->sx, cy + ba - 8, 75 * b->sz};
            double bs = rng_range(r, 0.7, 1.2);
            ellip_axis(&b->breast[s], c, X, Y, 55 * bs, 35 * bs, 50 * bs);
        }
    }
    {
        double d[3] = {0, -0.45, -1};
        eset(b, &b->sacrum, 0, -95, -292, d, X, 48, 42, 14);
    }
    eset(b, &b->sternum[0], 0, 95, 218, X, Y, 24, 7, 20);
    eset(b, &b->sternum[1], 0, 97, 145, X, Y, 14, 7, 62);
    eset(b, &b->sternum[2], 0, 96, 75, X, Y, 8, 4, 10);
    eset(b, &b->bladder, 0, 32, -345, X, Y, 44, 34, 36);
    b->bladder_wall = 3;

    /* tubes (template mm, radius, lumen) */
    Tube *t = &b->aorta;
    static const double ao[][4] = {
        {8, 30, 52, 14}, {18, 22, 95, 15}, {14, 12, 140, 14.5}, {2, 2, 165, 14},
        {-16, -18, 165, 13}, {-24, -38, 145, 12.5}, {-24, -45, 100, 12}, {-20, -48, 40, 12},
        {-12, -46, -20, 11.5}, {-6, -42, -80, 11}, {-4, -38, -140, 10.5}, {-3, -34, -185, 10},
    };
    for (size_t i = 0; i < sizeof ao / sizeof ao[0]; i++)
        tadd(b, t, ao[i][0], ao[i][1], ao[i][2], ao[i][3], ao[i][3] - 2);
    jitter_tube(t, r, 3);
    for (int s = 0; s < 2; s++) {
        double sg = s == 0 ? -1 : 1; /* [0] left, [1] right (TS ids 65/67 left, 66/68 right) */
        t = &b->iliac_a[s];
        tadd(b, t, -3, -34, -185, 7, 5);
        tadd(b, t, sg * 35, -30, -230, 6.5, 4.5);
        tadd(b, t, sg * 55, -15, -280, 6, 4);
        tadd(b, t, sg * 70, 0, -330, 5.5, 3.8);
        tadd(b, t, sg * 75, 15, -375, 5, 3.5);
        t = &b->iliac_v[s];
        tadd(b, t, 18, -38, -205, 8, 6.5);
        tadd(b, t, sg * 40, -36, -240, 7.5, 6);
        tadd(b, t, sg * 60, -22, -290, 7, 5.5);
        tadd(b, t, sg * 72, -6, -340, 7, 5.5);
        t = &b->psoas[s];
        tadd(b, t, sg * 22, -52, -45, 7, 0);
        tadd(b, t, sg * 32, -48, -120, 15, 0);
        tadd(b, t, sg * 46, -38, -200, 21, 0);
        tadd(b, t, sg * 62, -18, -280, 20, 0);
        tadd(b, t, sg * 74, 8, -350, 16, 0);
        t = &b->autoch[s];
        tadd(b, t, sg * 32, -110, 300, 12, 0);
        tadd(b, t, sg * 34, -116, 180, 18, 0);
        tadd(b, t, sg * 36, -114, 60, 19, 0);
        tadd(b, t, sg * 38, -108, -60, 21, 0);
        tadd(b, t, sg * 40, -104, -170, 22, 0);
        tadd(b, t, sg * 40, -100, -250, 18, 0);
        t = &b->clav[s];
        tadd(b, t, sg * 15, 92, 250, 7, 0);
        tadd(b, t, sg * 60, 88, 262, 7, 0);
        tadd(b, t, sg * 110, 70, 270, 7, 0);
        tadd(b, t, sg * 140, 45, 272, 7, 0);
        t = &b->pvein[s];
        tadd(b, t, s == 0 ? -26 : 8, -8, 63, 6, 4.5);
        tadd(b, t, s == 0 ? -48 : 40, -14, 71, 5, 3.5);
    }
    t = &b->svc;
    tadd(b, t, 26, 15, 235, 10, 8);
    tadd(b, t, 28, 15, 150, 10, 8);
    tadd(b, t, 28, 18, 85, 10, 8);
    t = &b->ivc;
    tadd(b, t, 20, -34, -200, 11, 9);
    tadd(b, t, 24, -30, -120, 11, 9);
    tadd(b, t, 26, -20, -50, 12, 10);
    tadd(b, t, 22, -2, -8, 12, 10);
    tadd(b, t, 24, 10, 18, 12, 10);
    t = &b->pa[0];
    tadd(b, t, -12, 46, 62, 13, 11);
    tadd(b, t, -18, 35, 100, 13, 11);
    t = &b->pa[1];
    tadd(b, t, -18, 35, 100, 11, 9);
    tadd(b, t, 10, 15, 108, 10, 8);
    tadd(b, t, 42, -2, 112, 8, 6.5);
    t = &b->pa[2];
    tadd(b, t, -18, 35, 100, 10, 8);
    tadd(b, t, -38, 10, 115, 9, 7.5);
    tadd(b, t, -48, -10, 115, 7, 5.5);
    t = &b->portal[0];
    tadd(b, t, 10, 20, -110, 7, 6);
    tadd(b, t, 35, 15, -90, 7, 6);
    tadd(b, t, 55, 10, -70, 6, 5);
    t = &b->portal[1];
    tadd(b, t, 10, 20, -110, 5, 4);
    tadd(b, t, -40, 0, -95, 4.5, 3.5);
    tadd(b, t, -75, -25, -70, 4.5, 3.5);
    t = &b->trachea;
    tadd(b, t, 0, 28, 340, 10, 8);
    tadd(b, t, 0, 18, 270, 10, 8);
    tadd(b, t, 1, 2, 195, 10, 8);
    tadd(b, t, 0, -12, 142, 10, 8);
    t = &b->bronchus[0];
    tadd(b, t, 0, -12, 142, 7.5, 5.5);
    tadd(b, t, 25, -16, 128, 6.5, 4.8);
    tadd(b, t, 45, -16, 115, 6, 4.2);
    t = &b->bronchus[1];
    tadd(b, t, 0, -12, 142, 7.2, 5.2);
    tadd(b, t, -28, -18, 126, 6.2, 4.5);
    tadd(b, t, -50, -20, 112, 5.5, 4);
    {
        double lumen = rng_bernoulli(r, 0.3) ? 2.5 : 0;
        t = &b->esophagus;
        static const double es[][3] = {
            {-2, 8, 340}, {-4, -10, 260}, {-6, -26, 165}, {-9, -30, 90},
            {-14, -24, 25}, {-26, -8, -22}, {-40, 6, -42},
        };
        for (size_t i = 0; i < sizeof es / sizeof es[0]; i++)
            tadd(b, t, es[i][0], es[i][1], es[i][2], 8.5, lumen);
    }
    t = &b->stomach;
    tadd(b, t, -45, -8, -22, 34, 30);
    tadd(b, t, -62, 18, -52, 34, 30);
    tadd(b, t, -48, 48, -85, 28, 24);
    tadd(b, t, -14, 62, -102, 19, 15);
    tadd(b, t, 18, 48, -102, 11, 7);
    t = &b->duodenum;
    tadd(b, t, 18, 48, -102, 11, 8.5);
    tadd(b, t, 44, 26, -112, 12, 9.5);
    tadd(b, t, 50, 6, -140, 12, 9.5);
    tadd(b, t, 28, 0, -168, 12, 9.5);
    tadd(b, t, -8, 4, -164, 11, 8.5);
    tadd(b, t, -24, 10, -144, 10, 7.5);
    t = &b->pancreas;
    tadd(b, t, 30, 14, -132, 16, 0);
    tadd(b, t, 4, 24, -112, 12, 0);
    tadd(b, t, -34, 12, -96, 11.5, 0);
    tadd(b, t, -74, -14, -76, 10, 0);
    jitter_tube(&b->pancreas, r, 3);
    t = &b->colon;
    static const double co[][4] = {
        {82, 10, -235, 27}, {92, 2, -190, 25}, {92, 0, -140, 23}, {80, 22, -112, 22},
        {40, 70, -122, 21}, {-10, 74, -118, 21}, {-55, 62, -100, 21}, {-88, 20, -80, 20},
        {-98, -8, -120, 19}, {-98, -5, -180, 18}, {-88, 5, -240, 18}, {-60, 30, -280, 17},
        {-20, 25, -300, 17}, {0, -20, -310, 18}, {0, -58, -335, 21}, {0, -60, -380, 18},
    };
    for (size_t i = 0; i < sizeof co / sizeof co[0]; i++)
        tadd(b, t, co[i][0], co[i][1], co[i][2], co[i][3] * 1.15, co[i][3] * 1.15 - 3);
    jitter_tube(t, r, 4);

    build_spine(b);
    t = &b->cord;
    for (int i = 0; i < b->nvert && b->vert[i].name[0] != 'L'; i++)
        tube_add(t, 0, b->vert[i].y - b->vert[i].ry - 8, b->vert[i].z, 5, 0);
    tube_add(t, 0, b->vert[13].y - b->vert[13].ry - 8, b->vert[13].z, 4, 0);
    build_ribs(b);
    build_small_bowel(b, r);
    build_lung_vessels(b, r);
    b->stomach_level = rng_range(r, 0.3, 0.8);
    b->stomach_food = rng_bernoulli(r, 0.3);
    b->colon_gas = rng_range(r, 0.3, 0.8);
    for (int i = 0; i < 6; i++)
        b->lob_phase[i] = rng_range(r, 0, 2 * M_PI);
}

void body_vary_scan(Body *b, Rng *r)
{
    /* breathing: the domes move together */
    double br = rng_normal(r) * 6;
    b->dome_r += br;
    b->dome_l += br;
    b->stomach_level = clampd(b->stomach_level + rng_normal(r) * 0.15, 0.15, 0.9);
    b->colon_gas = clampd(b->colon_gas + rng_normal(r) * 0.15, 0.1, 0.9);
    double fill = rng_range(r, 0.6, 1.2);
    ellip_scale(&b->bladder, fill, fill, fill);
}

static void zr_ellip(const Ellip *e, double *z0, double *z1)
{
    double lo[3], hi[3];
    ellip_bbox(e, lo, hi);
    *z0 = lo[2];
    *z1 = hi[2];
}

static void zr_tube(const Tube *t, double *z0, double *z1)
{
    double lo[3], hi[3];
    tube_bbox(t, lo, hi);
    *z0 = lo[2];
    *z1 = hi[2];
}

int body_label_zrange(const Body *b, int id, double *z0, double *z1)
{
    double a0 = 0, a1 = 0;
    switch (id) {
    case TS_SPLEEN: zr_ellip(&b->spleen, z0, z1); return 1;
    case TS_KIDNEY_R: case TS_KIDNEY_CYST_R: zr_ellip(&b->kidney[0], z0, z1); return 1;
    case TS_KIDNEY_L: case TS_KIDNEY_CYST_L: zr_ellip(&b->kidney[1], z0, z1); return 1;
    case TS_GALLBLADDER: zr_ellip(&b->gb, z0, z1); return 1;
    case TS_LIVER:
        zr_ellip(&b->liver[0], z0, z1);
        zr_ellip(&b->liver[1], &a0, &a1);
        if (a1 > *z1)
            *z1 = a1;
        if (*z1 > b->dome_r * b->sz)
            *z1 = b->dome_r * b->sz;
        return 1;
    case TS_STOMACH: zr_tube(&b->stomach, z0, z1); return 1;
    case TS_PANCREAS: zr_tube(&b->pancreas, z0, z1); return 1;
    case TS_ADRENAL_R: zr_ellip(&b->adrenal[0][0], z0, z1); return 1;
    case TS_ADRENAL_L: zr_ellip(&b->adrenal[1][0], z0, z1); return 1;
    case TS_LUNG_UL: case TS_LUNG_LL: case TS_LUNG_RU: case TS_LUNG_RM: case TS_LUNG_RL:
        *z0 = -95 * b->sz;
        *z1 = 245 * b->sz;
        return 1;
    case TS_ESOPHAGUS: zr_tube(&b->esophagus, z0, z1); return 1;
    case TS_TRACHEA: zr_tube(&b->trachea, z0, z1); return 1;
    case TS_THYROID: zr_ellip(&b->thyroid[0], z0, z1); return 1;
    case TS_SMALL_BOWEL:
        zr_tube(&b->sbowel[0], z0, z1);
        for (int i = 1; i < BODY_NSB; i++) {
            zr_tube(&b->sbowel[i], &a0, &a1);
            if (a0 < *z0)
                *z0 = a0;
            if (a1 > *z1)
                *z1 = a1;
        }
        return 1;
    case TS_DUODENUM: zr_tube(&b->duodenum, z0, z1); return 1;
    case TS_COLON: zr_tube(&b->colon, z0, z1); return 1;
    case TS_BLADDER: zr_ellip(&b->bladder, z0, z1); return 1;
    case TS_HEART: zr_ellip(&b->heart, z0, z1); return 1;
    case TS_AORTA: zr_tube(&b->aorta, z0, z1); return 1;
    case TS_SVC: zr_tube(&b->svc, z0, z1); return 1;
    case TS_IVC: zr_tube(&b->ivc, z0, z1); return 1;
    case TS_STERNUM:
        *z0 = b->sternum[2].c[2] - b->sternum[2].ax[2];
        *z1 = b->sternum[0].c[2] + b->sternum[0].ax[2];
        return 1;
    default: break;
    }
    for (int i = 0; i < b->nvert; i++)
        if (b->vert[i].ts_id == id) {
            *z0 = b->vert[i].z - b->vert[i].h / 2;
            *z1 = b->vert[i].z + b->vert[i].h / 2;
            return 1;
        }
    for (int i = 0; i < 24; i++)
        if (b->rib[i].ts_id == id) {
            zr_tube(&b->rib[i].bone, z0, z1);
            return 1;
        }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Scene and painting                                                         */
/* ------------------------------------------------------------------------ */

int scene_alloc(Scene *s, int nx, int ny, int nz, const double org[3], const double sp[3],
                FvErr *e)
{
    memset(s, 0, sizeof *s);
    if (nx < 1 || ny < 1 || nz < 1 || (int64_t)nx * ny * nz > ((int64_t)1 << 31))
        return err_set(e, FV_ELIMIT, "synth: grid %d x %d x %d is out of range", nx, ny, nz);
    size_t n = (size_t)nx * (size_t)ny * (size_t)nz;
    s->lab = calloc(n, 1);
    s->tis = calloc(n, 1);
    s->hu = calloc(n, sizeof(int16_t));
    if (!s->lab || !s->tis || !s->hu) {
        scene_free(s);
        return err_set(e, FV_ENOMEM, "synth: cannot allocate a %d x %d x %d scene", nx, ny, nz);
    }
    s->nx = nx;
    s->ny = ny;
    s->nz = nz;
    memcpy(s->org, org, sizeof s->org);
    memcpy(s->sp, sp, sizeof s->sp);
    return 0;
}

void scene_free(Scene *s)
{
    free(s->lab);
    free(s->tis);
    free(s->hu);
    s->lab = s->tis = NULL;
    s->hu = NULL;
}

int scene_box(const Scene *s, const double lo[3], const double hi[3], int i0[3], int i1[3])
{
    const int n[3] = {s->nx, s->ny, s->nz};
    for (int a = 0; a < 3; a++) {
        double f0 = ceil((lo[a] - s->org[a]) / s->sp[a]), f1 = floor((hi[a] - s->org[a]) / s->sp[a]);
        if (f0 < 0)
            f0 = 0;
        if (f1 > n[a] - 1)
            f1 = n[a] - 1;
        if (f0 > f1)
            return 0;
        i0[a] = (int)f0;
        i1[a] = (int)f1;
    }
    return 1;
}

void paint_ellip(Scene *s, const Ellip *e, int label, int tissue, TisMask over)
{
    double lo[3], hi[3];
    int i0[3], i1[3];
    ellip_bbox(e, lo, hi);
    if (!scene_box(s, lo, hi, i0, i1))
        return;
    for (int k = i0[2]; k <= i1[2]; k++)
        for (int j = i0[1]; j <= i1[1]; j++)
            for (int i = i0[0]; i <= i1[0]; i++) {
                size_t x = scene_idx(s, i, j, k);
                if (!(over & TM(s->tis[x])))
                    continue;
                double p[3];
                scene_pos(s, i, j, k, p);
                if (ellip_q(e, p) < 1) {
                    s->tis[x] = (uint8_t)tissue;
                    if (label >= 0)
                        s->lab[x] = (uint8_t)label;
                }
            }
}

/* Lumen content by position: a gas-fluid level (gas anterior, as in a supine
 * patient) or mottled stool and gas. */
typedef struct Fill {
    int mode;          /* 0 solid, 1 level, 2 mottled */
    int tissue, alt;   /* lumen tissue, and gas (level) or stool (mottled) */
    double level_y;    /* level: gas where y > level_y */
    double frac;       /* mottled: fraction of gas */
} Fill;

static int fill_tissue(const Fill *f, const double p[3])
{
    if (f->mode == 1)
        return p[1] > f->level_y ? f->alt : f->tissue;
    if (f->mode == 2) {
        double v = sin(p[0] * 0.11 + 1.3) * sin(p[1] * 0.13 + 0.7) * sin(p[2] * 0.09 + 2.1);
        return v * 0.5 + 0.5 < f->frac ? f->tissue : f->alt;
    }
    return f->tissue;
}

static void paint_tube_fill(Scene *s, const Tube *t, int label, int wall, const Fill *fill,
                            TisMask over)
{
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && !fill)
            break;
        for (int sg = 0; sg + 1 < t->n; sg++) {
            double lo[3], hi[3];
            int i0[3], i1[3];
            tube_seg_bbox(t, sg, lo, hi);
            if (!scene_box(s, lo, hi, i0, i1))
                continue;
            for (int k = i0[2]; k <= i1[2]; k++)
                for (int j = i0[1]; j <= i1[1]; j++)
                    for (int i = i0[0]; i <= i1[0]; i++) {
                        size_t x = scene_idx(s, i, j, k);
                        int tis = s->tis[x];
                        if (pass == 0 ? !(over & TM(tis))
                                      : !(over & TM(tis)) && tis != wall)
                            continue;
                        double p[3], u;
                        scene_pos(s, i, j, k, p);
                        double d = tube_seg_dist(t, sg, p, &u);
                        double r = t->r[sg] + u * (t->r[sg + 1] - t->r[sg]);
                        double l = t->lumen[sg] + u * (t->lumen[sg + 1] - t->lumen[sg]);
                        if (pass == 0 ? d < r : d < l) {
                            s->tis[x] = (uint8_t)(pass == 0 ? wall : fill_tissue(fill, p));
                            if (label >= 0)
                                s->lab[x] = (uint8_t)label;
                        }
                    }
        }
    }
}

void paint_tube(Scene *s, const Tube *t, int label, int wall, int lumen, TisMask over)
{
    Fill f = {0, lumen, lumen, 0, 0};
    paint_tube_fill(s, t, label, wall, lumen >= 0 ? &f : NULL, over);
}

static void hu_apply(Scene *s, size_t x, double cov, const HuPaint *hp, const double p[3],
                     int64_t *n)
{
    if (cov <= 0)
        return;
    int l = s->lab[x];
    if (hp->nlab) {
        int ok = 0;
        for (int k = 0; k < hp->nlab; k++)
            ok |= hp->labels[k] == l;
        if (!ok)
            return;
    }
    if (!(hp->over & TM(s->tis[x])))
        return;
    double h = s->hu[x], target = hp->hu;
    if (hp->amp != 0 && hp->period > 0) {
        double w = 2 * M_PI / hp->period;
        /* septal lines: bright near the planes of a cubic lattice */
        double m = fmax(fabs(cos(p[0] * w)), fmax(fabs(cos(p[1] * w)), fabs(cos(p[2] * w))));
        target += hp->amp * (pow(m, 6) - 0.5);
    }
    double v = hp->add ? h + cov * target : h + cov * (target - h);
    if (v < -1024)
        v = -1024;
    if (v > 3071)
        v = 3071;
    s->hu[x] = (int16_t)lrint(v);
    if (cov >= 0.5) {
        if (!hp->keep_tissue)
            s->tis[x] = T_LESION;
        if (hp->new_label >= 0)
            s->lab[x] = (uint8_t)hp->new_label;
    }
    (*n)++;
}

/* Partial-volume coverage of a voxel whose centre lies `sd` mm outside a
 * surface (negative inside), for voxels of size h mm. */
static double coverage(double sd, double h)
{
    double c = 0.5 - sd / h;
    return c < 0 ? 0 : c > 1 ? 1 : c;
}

int64_t paint_hu_ellip(Scene *s, const Ellip *e, const HuPaint *hp)
{
    double lo[3], hi[3];
    int i0[3], i1[3];
    double h = (s->sp[0] + s->sp[1] + s->sp[2]) / 3;
    ellip_bbox(e, lo, hi);
    for (int a = 0; a < 3; a++) {
        lo[a] -= h;
        hi[a] += h;
    }
    int64_t n = 0;
    if (!scene_box(s, lo, hi, i0, i1))
        return 0;
    for (int k = i0[2]; k <= i1[2]; k++)
        for (int j = i0[1]; j <= i1[1]; j++)
            for (int i = i0[0]; i <= i1[0]; i++) {
                double p[3];
                scene_pos(s, i, j, k, p);
                double q = ellip_q(e, p);
                double dist = sqrt((p[0] - e->c[0]) * (p[0] - e->c[0]) +
                                   (p[1] - e->c[1]) * (p[1] - e->c[1]) +
                                   (p[2] - e->c[2]) * (p[2] - e->c[2]));
                double rq = sqrt(q);
                double sd = rq > 1e-9 ? dist * (1 - 1 / rq) : -1e9;
                hu_apply(s, scene_idx(s, i, j, k), coverage(sd, h), hp, p, &n);
            }
    return n;
}

int64_t paint_hu_tube(Scene *s, const Tube *t, const HuPaint *hp)
{
    double h = (s->sp[0] + s->sp[1] + s->sp[2]) / 3;
    int64_t n = 0;
    for (int sg = 0; sg + 1 < t->n; sg++) {
        double lo[3], hi[3];
        int i0[3], i1[3];
        tube_seg_bbox(t, sg, lo, hi);
        for (int a = 0; a < 3; a++) {
            lo[a] -= h;
            hi[a] += h;
        }
        if (!scene_box(s, lo, hi, i0, i1))
            continue;
        for (int k = i0[2]; k <= i1[2]; k++)
            for (int j = i0[1]; j <= i1[1]; j++)
                for (int i = i0[0]; i <= i1[0]; i++) {
                    double p[3], u;
                    scene_pos(s, i, j, k, p);
                    double d = tube_seg_dist(t, sg, p, &u);
                    double r = t->r[sg] + u * (t->r[sg + 1] - t->r[sg]);
                    size_t x = scene_idx(s, i, j, k);
                    /* a voxel near a joint is seen by two segments: keep the
                     * larger coverage by painting only when this one is inside
                     * more than the previous value would give */
                    double cov = coverage(d - r, h);
                    if (sg > 0) {
                        double u2, d2 = tube_seg_dist(t, sg - 1, p, &u2);
                        double r2 = t->r[sg - 1] + u2 * (t->r[sg] - t->r[sg - 1]);
                        double c2 = coverage(d2 - r2, h);
                        if (c2 > 0 && c2 >= cov)
                            continue;
                    }
                    hu_apply(s, x, cov, hp, p, &n);
                }
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* Rendering                                                                  */
/* ------------------------------------------------------------------------ */

static Ellip inflate(const Ellip *e, double mm)
{
    Ellip o = *e;
    for (int i = 0; i < 3; i++)
        o.ax[i] += mm;
    return o;
}

static Tube tinflate(const Tube *t, double mm)
{
    Tube o = *t;
    for (int i = 0; i < o.n; i++)
        o.r[i] += mm;
    return o;
}

/* The base pass: air, skin, fat, wall muscle, lungs with lobes, mediastinal
 * and visceral fat, diaphragm. */
static void render_trunk(const Body *b, Scene *s)
{
    for (int k = 0; k < s->nz; k++) {
        double z = s->org[2] + k * s->sp[2];
        Xsec xs;
        xsec(b, z, &xs);
        double zu = z / b->sz;
        for (int j = 0; j < s->ny; j++) {
            double y = s->org[1] + j * s->sp[1];
            double dy = y - xs.cy;
            double bo = dy > 0 ? xs.ba : xs.bp, bc = dy > 0 ? xs.cba : xs.cbp;
            double fat = xs.fat * (dy > 0 ? 1.0 : 0.6);
            for (int i = 0; i < s->nx; i++) {
                double x = s->org[0] + i * s->sp[0];
                size_t idx = scene_idx(s, i, j, k);
                double qx = x / xs.a, qy = dy / bo, r2 = qx * qx + qy * qy;
                if (r2 >= 1) {
                    s->tis[idx] = T_AIR;
                    continue;
                }
                double d = sqrt(x * x + dy * dy), r = sqrt(r2);
                double depth = r > 1e-9 ? d * (1 / r - 1) : 1e9;
                int tis;
                if (depth < 2.5)
                    tis = T_SKIN;
                else if (depth < 2.5 + fat)
                    tis = T_FAT_SUB;
                else {
                    double cx = xs.ca > 0 ? x / xs.ca : 2, cyq = bc > 0 ? dy / bc : 2;
                    if (cx * cx + cyq * cyq >= 1 || zu > 300)
                        tis = T_MUSCLE;
                    else {
                        double zd = body_diaphragm_z(b, x, y);
                        if (z > zd) {
                            double p[3] = {x, y, z};
                            int lobe = lung_at(b, &xs, p);
                            if (lobe) {
                                tis = T_LUNG;
                                s->lab[idx] = (uint8_t)lobe;
                            } else
                                tis = T_FAT;
                        } else if (z > zd - 5 * b->sz)
                            tis = T_MUSCLE;
                        else
                            tis = T_FAT;
                    }
                }
                s->tis[idx] = (uint8_t)tis;
            }
        }
    }
}

static void render_vertebra(const Body *b, Scene *s, const Vertebra *v)
{
    double canal_y = v->y - v->ry - 8, rc = v->name[0] == 'L' ? 9 : 8;
    double h2 = v->h / 2;
    double lo[3] = {-(v->rx + 30), canal_y - 45, v->z - h2 - 6};
    double hi[3] = {v->rx + 30, v->y + v->ry + 2, v->z + h2 + 6};
    int i0[3], i1[3];
    if (!scene_box(s, lo, hi, i0, i1))
        return;
    TisMask over = TM(T_FAT) | TM(T_MUSCLE) | TM(T_LUNG) | TM(T_FAT_SUB);
    double front = v->y + v->ry;
    /* spinous process (down and back) and the two transverse processes */
    Tube proc[3];
    memset(proc, 0, sizeof proc);
    tube_add(&proc[0], 0, canal_y - rc - 3, v->z, 4.5, 0);
    tube_add(&proc[0], 0, canal_y - rc - 33, v->z - 12, 4, 0);
    for (int sgn = 0; sgn < 2; sgn++) {
        double sgx = sgn ? 1 : -1;
        tube_add(&proc[1 + sgn], sgx * 8, canal_y + 2, v->z, 4.5, 0);
        tube_add(&proc[1 + sgn], sgx * (v->rx + 20), canal_y - 6, v->z, 4, 0);
    }
    for (int k = i0[2]; k <= i1[2]; k++)
        for (int j = i0[1]; j <= i1[1]; j++)
            for (int i = i0[0]; i <= i1[0]; i++) {
                size_t x = scene_idx(s, i, j, k);
                if (!(over & TM(s->tis[x])))
                    continue;
                double p[3];
                scene_pos(s, i, j, k, p);
                double dz = p[2] - v->z, bx = p[0] / v->rx, by = (p[1] - v->y) / v->ry;
                double q = bx * bx + by * by;
                /* top endplate: lowered anteriorly after a compression fracture */
                double top = h2;
                if (v->collapse < 1) {
                    double post = clampd((front - p[1]) / (2 * v->ry), 0, 1);
                    double f = v->collapse + (fmin(1, v->collapse + 0.3) - v->collapse) * post;
                    top = -h2 + v->h * f;
                }
                int tis = -1;
                if (q < 1 && dz > -h2 && dz < top) {
                    tis = (q > 0.72 || dz < -h2 + 1.6 || dz > top - 1.6) ? T_BONE_CORTEX
                                                                        : T_BONE_MARROW;
                } else if (fabs(dz) < h2 * 0.8) {
                    double cx = p[0], cyy = p[1] - canal_y, dc = sqrt(cx * cx + cyy * cyy);
                    if (dc >= rc && dc < rc + 5.5 && p[1] < v->y - v->ry + 3)
                        tis = T_BONE_CORTEX; /* pedicles and laminae */
                    double u;
                    for (int q3 = 0; q3 < 3; q3++)
                        if (tube_seg_dist(&proc[q3], 0, p, &u) < 4.5)
                            tis = T_BONE_CORTEX;
                }
                if (tis >= 0) {
                    s->tis[x] = (uint8_t)tis;
                    s->lab[x] = (uint8_t)v->ts_id;
                } else if (q < 1 && dz >= top && dz < h2 + 6 && v->name[0] != 'C') {
                    s->tis[x] = T_DISC; /* disc above (and the space left by a collapse) */
                    s->lab[x] = 0;
                } else if (fabs(dz) <= h2 + 6) {
                    double cx = p[0], cyy = p[1] - canal_y;
                    if (cx * cx + cyy * cyy < rc * rc) {
                        s->tis[x] = T_CSF;
                        s->lab[x] = 0;
                    }
                }
            }
}

/* Value noise: a coarse lattice of normal deviates, trilinearly interpolated
 * (about 20 mm correlation), so organs get a smooth texture. */
typedef struct Lattice {
    int n[3];
    double step;
    float *v;
} Lattice;

static int lattice_make(Lattice *l, const Scene *s, double step, Rng *r)
{
    l->step = step;
    for (int a = 0; a < 3; a++) {
        int nn[3] = {s->nx, s->ny, s->nz};
        l->n[a] = (int)(nn[a] * s->sp[a] / step) + 3;
    }
    size_t n = (size_t)l->n[0] * l->n[1] * l->n[2];
    l->v = malloc(n * sizeof(float));
    if (!l->v)
        return -1;
    for (size_t i = 0; i < n; i++)
        l->v[i] = (float)rng_normal(r);
    return 0;
}

/* Fills each axis's lattice cell index and weight for the scene's voxels. */
static void lattice_axis(const Lattice *l, const Scene *s, int a, int *cell, float *w)
{
    int nn[3] = {s->nx, s->ny, s->nz};
    for (int i = 0; i < nn[a]; i++) {
        double f = i * s->sp[a] / l->step;
        int c = (int)f;
        if (c > l->n[a] - 2)
            c = l->n[a] - 2;
        cell[i] = c;
        w[i] = (float)(f - c);
    }
}

static void render_hu(const Body *b, Scene *s, Rng *r)
{
    const TissueTable *tt = s->tt;
    const double *base = tt->hu[s->enhanced ? 1 : 0];
    Lattice lat = {{0, 0, 0}, 20, NULL};
    int *cx = NULL, *cy = NULL, *cz = NULL;
    float *wx = NULL, *wy = NULL, *wz = NULL;
    int ok = lattice_make(&lat, s, 20, r) == 0;
    cx = malloc(sizeof(int) * (size_t)s->nx);
    cy = malloc(sizeof(int) * (size_t)s->ny);
    cz = malloc(sizeof(int) * (size_t)s->nz);
    wx = malloc(sizeof(float) * (size_t)s->nx);
    wy = malloc(sizeof(float) * (size_t)s->ny);
    wz = malloc(sizeof(float) * (size_t)s->nz);
    ok = ok && cx && cy && cz && wx && wy && wz;
    if (ok) {
        lattice_axis(&lat, s, 0, cx, wx);
        lattice_axis(&lat, s, 1, cy, wy);
        lattice_axis(&lat, s, 2, cz, wz);
    }
    int n0 = lat.n[0], n01 = lat.n[0] * lat.n[1];
    double cyb = -10 * b->sy;
    double bone_add[256] = {0};
    for (int i = 0; i < b->nvert; i++)
        bone_add[b->vert[i].ts_id] = b->vert[i].hu_add;
    for (int k = 0; k < s->nz; k++)
        for (int j = 0; j < s->ny; j++) {
            double y = s->org[1] + j * s->sp[1];
            double grav = clampd(-(y - cyb) / 90.0, -1, 1) * 45; /* dependent lung is denser */
            for (int i = 0; i < s->nx; i++) {
                size_t x = scene_idx(s, i, j, k);
                int t = s->tis[x];
                double v = base[t];
                if (ok && tt->sd[t] > 0) {
                    const float *c = lat.v + (size_t)cz[k] * n01 + (size_t)cy[j] * n0 + cx[i];
                    float fx = wx[i], fy = wy[j], fz = wz[k];
                    float a00 = c[0] + fx * (c[1] - c[0]);
                    float a01 = c[n0] + fx * (c[n0 + 1] - c[n0]);
                    float a10 = c[n01] + fx * (c[n01 + 1] - c[n01]);
                    float a11 = c[n01 + n0] + fx * (c[n01 + n0 + 1] - c[n01 + n0]);
                    float b0 = a00 + fy * (a01 - a00), b1 = a10 + fy * (a11 - a10);
                    v += tt->sd[t] * (b0 + fz * (b1 - b0));
                }
                if (t == T_LUNG)
                    v += grav;
                else if (t == T_BONE_CORTEX || t == T_BONE_MARROW)
                    v += bone_add[s->lab[x]];
                s->hu[x] = (int16_t)lrint(clampd(v, -1024, 3071));
            }
        }
    free(lat.v);
    free(cx);
    free(cy);
    free(cz);
    free(wx);
    free(wy);
    free(wz);
}

void phantom_render(const Body *b, Scene *s, Rng *r)
{
    size_t n = (size_t)s->nx * s->ny * s->nz;
    memset(s->lab, 0, n);
    render_trunk(b, s);

    const TisMask LUNG = TM(T_LUNG), VFAT = TM(T_FAT), MUS = TM(T_MUSCLE);
    const TisMask SOFT = VFAT | MUS | TM(T_FAT_SUB);

    /* mediastinal fat around everything that borders the lungs */
    {
        Ellip e = inflate(&b->heart, 5);
        paint_ellip(s, &e, 0, T_FAT, LUNG);
        const Tube *med[] = {&b->aorta, &b->trachea, &b->esophagus, &b->svc, &b->pa[0],
                             &b->pa[1], &b->pa[2]};
        for (size_t i = 0; i < sizeof med / sizeof med[0]; i++) {
            Tube t = tinflate(med[i], 5);
            paint_tube(s, &t, 0, T_FAT, -1, LUNG);
        }
        for (int i = 0; i < b->nvert; i++) {
            const Vertebra *v = &b->vert[i];
            Ellip ev;
            ellip_aligned(&ev, 0, v->y, v->z, v->rx + 6, v->ry + 6, v->h);
            paint_ellip(s, &ev, 0, T_FAT, LUNG);
        }
    }
    /* neck and mediastinum */
    for (int i = 0; i < 3; i++)
        paint_ellip(s, &b->thyroid[i], TS_THYROID, T_THYROID, SOFT);
    {
        Fill gas = {0, T_GAS, T_GAS, 0, 0};
        paint_tube_fill(s, &b->trachea, TS_TRACHEA, T_AIRWAY_WALL, &gas, SOFT | LUNG);
        for (int i = 0; i < 2; i++)
            paint_tube_fill(s, &b->bronchus[i], 0, T_AIRWAY_WALL, &gas, SOFT | LUNG);
        Fill eg = {0, T_GAS, T_GAS, 0, 0};
        paint_tube_fill(s, &b->esophagus, TS_ESOPHAGUS, T_ESOPHAGUS, &eg, SOFT | LUNG);
    }
    for (int i = 0; i < 3; i++)
        paint_tube(s, &b->pa[i], 0, T_VEIN, T_VEIN, SOFT | LUNG);
    for (int i = 0; i < 2; i++)
        paint_tube(s, &b->pvein[i], TS_PULM_VEIN, T_VEIN, T_VEIN, SOFT | LUNG);
    paint_tube(s, &b->svc, TS_SVC, T_VEIN, T_VEIN, SOFT | LUNG);
    paint_tube(s, &b->aorta, TS_AORTA, T_VESSEL_WALL, T_ARTERY, SOFT | LUNG);
    {
        /* heart: myocardium around contrast-filled chambers */
        const Ellip *h = &b->heart;
        double lo[3], hi[3];
        int i0[3], i1[3];
        ellip_bbox(h, lo, hi);
        if (scene_box(s, lo, hi, i0, i1))
            for (int k = i0[2]; k <= i1[2]; k++)
                for (int j = i0[1]; j <= i1[1]; j++)
                    for (int i = i0[0]; i <= i1[0]; i++) {
                        size_t x = scene_idx(s, i, j, k);
                        if (!((SOFT | LUNG | TM(T_VEIN) | TM(T_ARTERY) | TM(T_VESSEL_WALL)) &
                              TM(s->tis[x])))
                            continue;
                        double p[3];
                        scene_pos(s, i, j, k, p);
                        double q = ellip_q(h, p);
                        if (q < 1) {
                            s->tis[x] = q < b->heart_chamber ? T_VEIN : T_MYOCARDIUM;
                            s->lab[x] = TS_HEART;
                        }
                    }
        double d[3] = {-0.75, -0.15, 0.65}, c[3];
        ellip_surface(h, d, c);
        Ellip laa;
        double X[3] = {1, 0, 0}, Y[3] = {0, 1, 0};
        ellip_axis(&laa, c, X, Y, 13 * b->sx, 9 * b->sy, 8 * b->sz);
        paint_ellip(s, &laa, TS_LAA, T_VEIN, SOFT | LUNG);
    }
    /* abdomen: organs are painted over visceral fat only, so they stay inside
     * the cavity and below the diaphragm; order decides who wins overlaps */
    {
        Fill st = {1, b->stomach_food ? T_FOOD : T_BOWEL_FLUID, T_GAS, 0, 0};
        double lo[3], hi[3];
        tube_bbox(&b->stomach, lo, hi);
        st.level_y = lo[1] + (hi[1] - lo[1]) * b->stomach_level;
        paint_tube_fill(s, &b->stomach, TS_STOMACH, T_BOWEL_WALL, &st, VFAT);
        Fill du = {0, T_BOWEL_FLUID, T_BOWEL_FLUID, 0, 0};
        paint_tube_fill(s, &b->duodenum, TS_DUODENUM, T_BOWEL_WALL, &du, VFAT);
    }
    paint_tube(s, &b->pancreas, TS_PANCREAS, T_PANCREAS, -1, VFAT);
    if (b->pancreas_duct > 0) {
        Tube duct = b->pancreas;
        for (int i = 0; i < duct.n; i++)
            duct.r[i] = b->pancreas_duct;
        paint_tube(s, &duct, TS_PANCREAS, T_BOWEL_FLUID, -1, TM(T_PANCREAS));
    }
    for (int k = 0; k < 2; k++) {
        int lab = k == 0 ? TS_KIDNEY_R : TS_KIDNEY_L;
        const Ellip *ke = &b->kidney[k];
        double lo[3], hi[3];
        int i0[3], i1[3];
        ellip_bbox(ke, lo, hi);
        if (scene_box(s, lo, hi, i0, i1))
            for (int kk = i0[2]; kk <= i1[2]; kk++)
                for (int j = i0[1]; j <= i1[1]; j++)
                    for (int i = i0[0]; i <= i1[0]; i++) {
                        size_t x = scene_idx(s, i, j, kk);
                        if (!(VFAT & TM(s->tis[x])))
                            continue;
                        double p[3];
                        scene_pos(s, i, j, kk, p);
                        double q = ellip_q(ke, p);
                        if (q >= 1)
                            continue;
                        int t = q > 0.5 ? T_KIDNEY_CORTEX : T_KIDNEY_MEDULLA;
                        if (ellip_q(&b->ksinus[k], p) < 1)
                            t = T_KIDNEY_SINUS;
                        s->tis[x] = (uint8_t)t;
                        s->lab[x] = (uint8_t)lab;
                    }
        if (b->kidney_pelvis[k] > 0) {
            Ellip pel = b->ksinus[k];
            double f = b->kidney_pelvis[k] / pel.ax[1];
            ellip_scale(&pel, f * 0.8, f, f * 0.9);
            paint_ellip(s, &pel, lab, T_URINE, TM(T_KIDNEY_SINUS) | TM(T_KIDNEY_MEDULLA) |
                                                 TM(T_KIDNEY_CORTEX) | VFAT);
        }
        for (int a = 0; a < 2; a++)
            paint_ellip(s, &b->adrenal[k][a], k == 0 ? TS_ADRENAL_R : TS_ADRENAL_L, T_ADRENAL,
                        VFAT);
    }
    paint_ellip(s, &b->spleen, TS_SPLEEN, T_SPLEEN, VFAT);
    {
        /* liver, with a nodular contour when cirrhotic */
        double amp = b->liver_lobulation;
        for (int part = 0; part < 2; part++) {
            Ellip le = inflate(&b->liver[part], amp);
            double lo[3], hi[3];
            int i0[3], i1[3];
            ellip_bbox(&le, lo, hi);
            if (!scene_box(s, lo, hi, i0, i1))
                continue;
            for (int k = i0[2]; k <= i1[2]; k++)
                for (int j = i0[1]; j <= i1[1]; j++)
                    for (int i = i0[0]; i <= i1[0]; i++) {
                        size_t x = scene_idx(s, i, j, k);
                        if (!(VFAT & TM(s->tis[x])))
                            continue;
                        double p[3];
                        scene_pos(s, i, j, k, p);
                        double q = ellip_q(&b->liver[part], p);
                        if (amp > 0) {
                            const double *ph = b->lob_phase;
                            double w = sin(p[0] * 0.21 + ph[0]) * sin(p[1] * 0.19 + ph[1]) *
                                       sin(p[2] * 0.23 + ph[2]);
                            /* surface offset in mm turned into a q offset */
                            q -= 2 * amp * w / b->liver[part].ax[0];
                        }
                        if (q < 1) {
                            s->tis[x] = T_LIVER;
                            s->lab[x] = TS_LIVER;
                        }
                    }
        }
    }
    paint_tube(s, &b->ivc, TS_IVC, T_VEIN, T_VEIN, VFAT | TM(T_LIVER) | MUS);
    for (int i = 0; i < 2; i++)
        paint_tube(s, &b->portal[i], TS_PORTAL, T_VEIN, T_VEIN,
                   VFAT | TM(T_LIVER) | TM(T_PANCREAS));
    {
        Ellip out = b->gb, in = b->gb;
        for (int i = 0; i < 3; i++)
            in.ax[i] = fmax(1, in.ax[i] - b->gb_wall);
        paint_ellip(s, &out, TS_GALLBLADDER, T_BOWEL_WALL, VFAT | TM(T_LIVER));
        paint_ellip(s, &in, TS_GALLBLADDER, T_BILE, TM(T_BOWEL_WALL));
    }
    {
        Fill cf = {2, T_GAS, T_STOOL, 0, b->colon_gas};
        paint_tube_fill(s, &b->colon, TS_COLON, T_BOWEL_WALL, &cf, VFAT);
        Fill sb = {0, T_BOWEL_FLUID, T_GAS, 0, 0};
        for (int i = 0; i < BODY_NSB; i++)
            paint_tube_fill(s, &b->sbowel[i], TS_SMALL_BOWEL, T_BOWEL_WALL, &sb, VFAT);
        Ellip out = b->bladder, in = b->bladder;
        for (int i = 0; i < 3; i++)
            in.ax[i] = fmax(1, in.ax[i] - b->bladder_wall);
        paint_ellip(s, &out, TS_BLADDER, T_BOWEL_WALL, VFAT);
        paint_ellip(s, &in, TS_BLADDER, T_URINE, TM(T_BOWEL_WALL));
    }
    for (int i = 0; i < 2; i++) {
        paint_tube(s, &b->iliac_a[i], i == 0 ? TS_ILIAC_A_L : TS_ILIAC_A_R, T_VESSEL_WALL,
                   T_ARTERY, VFAT | MUS);
        paint_tube(s, &b->iliac_v[i], i == 0 ? TS_ILIAC_V_L : TS_ILIAC_V_R, T_VEIN, T_VEIN,
                   VFAT | MUS);
        paint_tube(s, &b->psoas[i], i == 0 ? TS_PSOAS_L : TS_PSOAS_R, T_MUSCLE, -1, VFAT | MUS);
        paint_tube(s, &b->autoch[i], i == 0 ? TS_AUTOCH_L : TS_AUTOCH_R, T_MUSCLE, -1, MUS);
    }
    /* bones */
    for (int i = 0; i < b->nvert; i++)
        render_vertebra(b, s, &b->vert[i]);
    paint_tube(s, &b->cord, TS_CORD, T_CORD, -1, TM(T_CSF));
    {
        TisMask bo = SOFT | LUNG;
        for (int i = 0; i < 24; i++) {
            paint_tube(s, &b->rib[i].bone, b->rib[i].ts_id, T_RIB, -1, bo);
            if (b->rib[i].cart.n)
                paint_tube(s, &b->rib[i].cart, TS_COSTAL_CART, T_CARTILAGE, -1, bo);
        }
        for (int i = 0; i < 3; i++)
            paint_ellip(s, &b->sternum[i], TS_STERNUM, T_RIB, bo);
        for (int i = 0; i < 2; i++) {
            paint_tube(s, &b->clav[i], i == 0 ? TS_CLAVICLE_L : TS_CLAVICLE_R, T_RIB, -1, bo);
            paint_ellip(s, &b->scap[i], i == 0 ? TS_SCAPULA_R : TS_SCAPULA_L, T_RIB, bo);
            paint_ellip(s, &b->ilium[i], i == 0 ? TS_HIP_R : TS_HIP_L, T_RIB, bo);
            paint_ellip(s, &b->acetab[i], i == 0 ? TS_HIP_R : TS_HIP_L, T_RIB, bo);
            paint_ellip(s, &b->femur[i], i == 0 ? TS_FEMUR_R : TS_FEMUR_L, T_BONE_MARROW,
                        bo | TM(T_RIB));
        }
        paint_ellip(s, &b->sacrum, TS_SACRUM, T_BONE_MARROW, bo);
    }
    /* breasts extend the outline forward */
    if (b->female)
        for (int i = 0; i < 2; i++)
            paint_ellip(s, &b->breast[i], 0, T_BREAST, TM(T_AIR) | TM(T_SKIN) | TM(T_FAT_SUB));
    /* the table under the patient: two carbon skins around a foam core */
    {
        double cy, a, ba, bp, ymin = 1e9;
        for (int k = 0; k < s->nz; k += 4) {
            body_outline(b, s->org[2] + k * s->sp[2], &cy, &a, &ba, &bp);
            if (cy - bp < ymin)
                ymin = cy - bp;
        }
        double top = ymin - 3;
        for (int k = 0; k < s->nz; k++)
            for (int j = 0; j < s->ny; j++)
                for (int i = 0; i < s->nx; i++) {
                    double x = s->org[0] + i * s->sp[0], y = s->org[1] + j * s->sp[1];
                    if (fabs(x) > 230)
                        continue;
                    double ty = top + 0.0012 * x * x;
                    double d = ty - y; /* depth below the table's top surface */
                    size_t idx = scene_idx(s, i, j, k);
                    if (d < 0 || d > 16 || s->tis[idx] != T_AIR)
                        continue;
                    s->tis[idx] = d < 2.5 || d > 13.5 ? T_TABLE_SKIN : T_TABLE_CORE;
                }
    }
    render_hu(b, s, r);
    /* lung vessels, with partial volume: blood HU over lung only */
    {
        const int lobes[5] = {TS_LUNG_UL, TS_LUNG_LL, TS_LUNG_RU, TS_LUNG_RM, TS_LUNG_RL};
        HuPaint hp = {s->tt->hu[s->enhanced ? 1 : 0][T_VEIN], 0, 0, 0, 1, -1, lobes, 5, LUNG};
        for (int i = 0; i < b->nlv; i++)
            paint_hu_tube(s, &b->lv[i], &hp);
    }
}

void phantom_noise(Scene *s, double sd, Rng *r)
{
    size_t n = (size_t)s->nx * s->ny * s->nz;
    /* Irwin-Hall: four 16-bit uniforms from one draw, summed: mean 2, sd
     * sqrt(4/12); close enough to Gaussian for CT noise and much cheaper. */
    const double scale = sd / sqrt(4.0 / 12.0) / 65536.0;
    for (size_t i = 0; i < n; i++) {
        uint64_t u = rng_u64(r);
        double g = (double)(u & 0xFFFF) + (double)((u >> 16) & 0xFFFF) +
                   (double)((u >> 32) & 0xFFFF) + (double)(u >> 48) - 2 * 65535.0;
        double v = s->hu[i] + (s->tis[i] == T_AIR ? 0.25 : 1.0) * g * scale;
        s->hu[i] = (int16_t)lrint(clampd(v, -1024, 3071));
    }
}

void scene_stats(Scene *s)
{
    memset(s->count, 0, sizeof s->count);
    int lox[256], hix[256];
    for (int l = 0; l < 256; l++) {
        lox[l] = 1 << 30;
        hix[l] = -1;
        for (int a = 0; a < 3; a++) {
            s->lo[l][a] = 1 << 30;
            s->hi[l][a] = -1;
        }
    }
    /* x extents per voxel; y and z once per row for the labels the row holds */
    for (int k = 0; k < s->nz; k++)
        for (int j = 0; j < s->ny; j++) {
            const uint8_t *row = s->lab + scene_idx(s, 0, j, k);
            int64_t before[256];
            memcpy(before, s->count, sizeof before);
            for (int i = 0; i < s->nx; i++) {
                int l = row[i];
                s->count[l]++;
                if (i < lox[l])
                    lox[l] = i;
                if (i > hix[l])
                    hix[l] = i;
            }
            for (int l = 0; l < 256; l++)
                if (s->count[l] != before[l]) {
                    if (j < s->lo[l][1]) s->lo[l][1] = j;
                    if (j > s->hi[l][1]) s->hi[l][1] = j;
                    if (k < s->lo[l][2]) s->lo[l][2] = k;
                    if (k > s->hi[l][2]) s->hi[l][2] = k;
                }
        }
    for (int l = 0; l < 256; l++) {
        s->lo[l][0] = lox[l];
        s->hi[l][0] = hix[l];
    }
}
