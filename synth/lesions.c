#include "lesions.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "schemas.h"
#include "tsv.h"

/* ------------------------------------------------------------------------ */
/* The table                                                                  */
/* ------------------------------------------------------------------------ */

static const char *const fx_names[FX_COUNT] = {
    "sphere", "blob", "patches", "mosaic", "lobar", "band", "streak", "layer", "shell",
    "ascites", "airways", "nodes", "device", "collapse", "osteophyte", "callus", "outpouch",
    "scale", "organ_hu", "lobulate", "wall", "tube_local", "duct", "pelvis",
};

const char *effect_name(EffectKind k) { return k < FX_COUNT ? fx_names[k] : "?"; }

/* The targets each effect understands. */
static int target_ok(EffectKind k, const char *t)
{
    static const char *const organs[] = {"lung", "heart", "liver", "gallbladder", "spleen",
                                         "pancreas", "kidney", "adrenal", "thyroid", "trachea",
                                         "bladder", "vertebra", "stomach", "small_bowel", NULL};
    static const char *const devices[] = {"pacemaker", "port", "sternotomy", "stent", "clips",
                                          "chest_tube", NULL};
    const char *const *list = organs;
    switch (k) {
    case FX_SPHERE: case FX_BLOB: case FX_SCALE: break;
    case FX_PATCHES: case FX_MOSAIC: case FX_LOBAR: case FX_BAND: case FX_LAYER:
    case FX_AIRWAYS:
        return strcmp(t, "lung") == 0;
    case FX_STREAK:
        return !strcmp(t, "lung") || !strcmp(t, "coronary") || !strcmp(t, "aorta_wall");
    case FX_SHELL: return strcmp(t, "heart") == 0;
    case FX_ASCITES: return strcmp(t, "peritoneum") == 0;
    case FX_NODES: return strcmp(t, "mediastinum") == 0;
    case FX_DEVICE: list = devices; break;
    case FX_COLLAPSE: case FX_OSTEOPHYTE: return strcmp(t, "vertebra") == 0;
    case FX_CALLUS: return strcmp(t, "rib") == 0;
    case FX_OUTPOUCH: return strcmp(t, "colon") == 0;
    case FX_ORGAN_HU: return !strcmp(t, "liver") || !strcmp(t, "pancreas");
    case FX_LOBULATE: return strcmp(t, "liver") == 0;
    case FX_WALL:
        return !strcmp(t, "gallbladder") || !strcmp(t, "bladder") || !strcmp(t, "stomach");
    case FX_TUBE_LOCAL:
        return !strcmp(t, "aorta") || !strcmp(t, "esophagus") || !strcmp(t, "trachea") ||
               !strcmp(t, "colon");
    case FX_DUCT: return strcmp(t, "pancreas") == 0;
    case FX_PELVIS: return strcmp(t, "kidney") == 0;
    default: return 0;
    }
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], t) == 0)
            return 1;
    return 0;
}

static int parse_num(const char *s, size_t n, double *out)
{
    char buf[32];
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    *out = strtod(buf, &end);
    return *end || !isfinite(*out) ? -1 : 0;
}

/* "lo..hi", "v" or "-". */
static int parse_range(const char *s, Range *r)
{
    memset(r, 0, sizeof *r);
    if (strcmp(s, "-") == 0)
        return 0;
    const char *dots = strstr(s, "..");
    if (dots) {
        if (parse_num(s, (size_t)(dots - s), &r->lo) || parse_num(dots + 2, strlen(dots + 2), &r->hi))
            return -1;
    } else {
        if (parse_num(s, strlen(s), &r->lo))
            return -1;
        r->hi = r->lo;
    }
    if (!(r->lo <= r->hi) || fabs(r->lo) > 1e6 || fabs(r->hi) > 1e6)
        return -1;
    r->set = 1;
    return 0;
}

int lesion_table_parse(LesionTable **out, const Ontology *o, const char *text, size_t len,
                       const char *name, FvErr *e)
{
    *out = NULL;
    LesionTable *t = calloc(1, sizeof *t);
    if (!t)
        return err_set(e, FV_ENOMEM, "%s: out of memory", name);
    TsvReader r;
    if (tsv_open(&r, text, len, name, e)) {
        free(t);
        return -1;
    }
    static const char *const cols[] = {"task", "effect", "target", "alt", "size_mm", "hu_plain",
                                       "hu_enh", "count", "param", "place", "label", NULL};
    int ci[11];
    if (tsv_cols(&r, cols, ci, e))
        goto fail;
    int got, cap = 0;
    while ((got = tsv_next(&r, e)) == 1) {
        char **f = r.fields;
        if (arr_reserve(&t->row, &cap, t->n, sizeof *t->row, 64)) {
            err_set(e, FV_ENOMEM, "%s: out of memory", name);
            goto fail;
        }
        LesionSpec *s = &t->row[t->n];
        memset(s, 0, sizeof *s);
        s->line = r.line;
        if ((s->finding = onto_finding(o, f[ci[0]])) < 0) {
            err_set(e, FV_EFORMAT, "%s:%d: unknown task '%s'", name, r.line, f[ci[0]]);
            goto fail;
        }
        s->effect = FX_COUNT;
        for (int k = 0; k < FX_COUNT; k++)
            if (strcmp(fx_names[k], f[ci[1]]) == 0)
                s->effect = (EffectKind)k;
        if (s->effect == FX_COUNT) {
            err_set(e, FV_EFORMAT, "%s:%d: unknown effect '%s'", name, r.line, f[ci[1]]);
            goto fail;
        }
        if (strlen(f[ci[2]]) >= sizeof s->target || !target_ok(s->effect, f[ci[2]])) {
            err_set(e, FV_EFORMAT, "%s:%d: effect '%s' has no target '%s'", name, r.line,
                    f[ci[1]], f[ci[2]]);
            goto fail;
        }
        snprintf(s->target, sizeof s->target, "%s", f[ci[2]]);
        char *end;
        long alt = strtol(f[ci[3]], &end, 10);
        if (*end || end == f[ci[3]] || alt < 0 || alt > 9) {
            err_set(e, FV_EFORMAT, "%s:%d: alt '%s' is not 0-9", name, r.line, f[ci[3]]);
            goto fail;
        }
        s->alt = (int)alt;
        Range *rg[5] = {&s->size, &s->hu_plain, &s->hu_enh, &s->count, &s->param};
        for (int k = 0; k < 5; k++)
            if (parse_range(f[ci[4 + k]], rg[k])) {
                err_set(e, FV_EFORMAT, "%s:%d: column %s: '%s' is not a number or a range lo..hi",
                        name, r.line, cols[4 + k], f[ci[4 + k]]);
                goto fail;
            }
        if ((s->hu_plain.set && (s->hu_plain.lo < -1024 || s->hu_plain.hi > 3071)) ||
            (s->hu_enh.set && (s->hu_enh.lo < -1024 || s->hu_enh.hi > 3071)) ||
            (s->size.set && (s->size.lo <= 0 || s->size.hi > 200)) ||
            (s->count.set && (s->count.lo < 1 || s->count.hi > 16))) {
            err_set(e, FV_EFORMAT, "%s:%d: a value is out of range (HU -1024..3071, size 0..200 "
                    "mm, count 1..16)", name, r.line);
            goto fail;
        }
        snprintf(s->place, sizeof s->place, "%s", f[ci[9]]);
        const char *lb = f[ci[10]];
        s->label = !strcmp(lb, "keep") ? LB_KEEP : !strcmp(lb, "organ") ? LB_ORGAN
                 : !strcmp(lb, "clear") ? LB_CLEAR : !strcmp(lb, "cyst") ? LB_CYST : -1;
        if ((int)s->label < 0) {
            err_set(e, FV_EFORMAT, "%s:%d: label '%s' is not keep, organ, clear or cyst", name,
                    r.line, lb);
            goto fail;
        }
        t->n++;
    }
    if (got < 0)
        goto fail;
    for (int k = 0; k < o->n_find; k++) {
        int has = 0;
        for (int i = 0; i < t->n; i++)
            has |= t->row[i].finding == k;
        if (!has) {
            err_set(e, FV_EFORMAT, "%s: task '%s' of findings.tsv has no row", name, o->find[k].id);
            goto fail;
        }
    }
    tsv_close(&r);
    *out = t;
    return 0;
fail:
    tsv_close(&r);
    free(t->row);
    free(t);
    return -1;
}

int lesion_table_load(LesionTable **out, const Ontology *o, FvErr *e)
{
    char *text;
    size_t len;
    if (schema_load("synth_lesions.tsv", &text, &len, e))
        return -1;
    int rc = lesion_table_parse(out, o, text, len, "synth_lesions.tsv", e);
    free(text);
    return rc;
}

void lesion_table_free(LesionTable **t)
{
    if (!*t)
        return;
    free((*t)->row);
    free(*t);
    *t = NULL;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                    */
/* ------------------------------------------------------------------------ */

static double draw(Rng *r, const Range *g) { return g->lo + (g->hi - g->lo) * rng_uniform(r); }

static int draw_int(Rng *r, const Range *g)
{
    if (!g->set)
        return 1;
    int lo = (int)lrint(g->lo), hi = (int)lrint(g->hi);
    return lo + (int)rng_below(r, (uint64_t)(hi - lo + 1));
}

static const int LUNG_R[3] = {TS_LUNG_RU, TS_LUNG_RM, TS_LUNG_RL};
static const int LUNG_L[2] = {TS_LUNG_UL, TS_LUNG_LL};
static const int T_VERT[12] = {32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43};

/* Labels of a target; side 0 right, 1 left, -1 both. */
static int target_labels(const char *t, int side, int *out)
{
    int n = 0;
    if (!strcmp(t, "lung")) {
        if (side != 1)
            for (int i = 0; i < 3; i++)
                out[n++] = LUNG_R[i];
        if (side != 0)
            for (int i = 0; i < 2; i++)
                out[n++] = LUNG_L[i];
    } else if (!strcmp(t, "heart") || !strcmp(t, "coronary"))
        out[n++] = TS_HEART;
    else if (!strcmp(t, "liver"))
        out[n++] = TS_LIVER;
    else if (!strcmp(t, "gallbladder"))
        out[n++] = TS_GALLBLADDER;
    else if (!strcmp(t, "spleen"))
        out[n++] = TS_SPLEEN;
    else if (!strcmp(t, "pancreas"))
        out[n++] = TS_PANCREAS;
    else if (!strcmp(t, "kidney")) {
        if (side != 1)
            out[n++] = TS_KIDNEY_R;
        if (side != 0)
            out[n++] = TS_KIDNEY_L;
    } else if (!strcmp(t, "adrenal")) {
        if (side != 1)
            out[n++] = TS_ADRENAL_R;
        if (side != 0)
            out[n++] = TS_ADRENAL_L;
    } else if (!strcmp(t, "thyroid"))
        out[n++] = TS_THYROID;
    else if (!strcmp(t, "trachea"))
        out[n++] = TS_TRACHEA;
    else if (!strcmp(t, "bladder"))
        out[n++] = TS_BLADDER;
    else if (!strcmp(t, "colon"))
        out[n++] = TS_COLON;
    else if (!strcmp(t, "aorta") || !strcmp(t, "aorta_wall"))
        out[n++] = TS_AORTA;
    else if (!strcmp(t, "stomach"))
        out[n++] = TS_STOMACH;
    else if (!strcmp(t, "small_bowel"))
        out[n++] = TS_SMALL_BOWEL;
    else if (!strcmp(t, "esophagus"))
        out[n++] = TS_ESOPHAGUS;
    else if (!strcmp(t, "vertebra"))
        for (int i = 0; i < 12; i++)
            out[n++] = T_VERT[i];
    else if (!strcmp(t, "rib"))
        for (int i = 0; i < 24; i++)
            out[n++] = TS_RIB_L1 + i;
    return n;
}

static int has_label(const int *l, int n, int v)
{
    for (int i = 0; i < n; i++)
        if (l[i] == v)
            return 1;
    return 0;
}

static int64_t labels_count(const Scene *s, const int *l, int n)
{
    int64_t c = 0;
    for (int i = 0; i < n; i++)
        c += s->count[l[i]];
    return c;
}

/* Does body structure `ts` overlap the scan by enough to carry a change? */
static int in_scan(const LesionSet *ls, const Body *b, int ts, double need)
{
    double z0, z1;
    if (!body_label_zrange(b, ts, &z0, &z1))
        return 0;
    double lo = fmax(z0, ls->zlo), hi = fmin(z1, ls->zhi);
    return hi - lo >= fmin(need, 0.5 * (z1 - z0));
}

static Lesion *add_lesion(LesionSet *ls, int finding, const double c[3], double size, double hu)
{
    if (ls->nles >= LS_MAX_LES)
        return NULL;
    Lesion *l = &ls->les[ls->nles++];
    memset(l, 0, sizeof *l);
    l->finding = finding;
    memcpy(l->c, c, sizeof l->c);
    l->size = size;
    l->hu = hu;
    l->side = c[0] >= 0 ? 'R' : 'L';
    return l;
}

static int label_at(const Scene *s, const double p[3])
{
    int i = (int)lrint((p[0] - s->org[0]) / s->sp[0]), j = (int)lrint((p[1] - s->org[1]) / s->sp[1]),
        k = (int)lrint((p[2] - s->org[2]) / s->sp[2]);
    if (i < 0 || j < 0 || k < 0 || i >= s->nx || j >= s->ny || k >= s->nz)
        return -1;
    return s->lab[scene_idx(s, i, j, k)];
}

static int tissue_at(const Scene *s, const double p[3])
{
    int i = (int)lrint((p[0] - s->org[0]) / s->sp[0]), j = (int)lrint((p[1] - s->org[1]) / s->sp[1]),
        k = (int)lrint((p[2] - s->org[2]) / s->sp[2]);
    if (i < 0 || j < 0 || k < 0 || i >= s->nx || j >= s->ny || k >= s->nz)
        return -1;
    return s->tis[scene_idx(s, i, j, k)];
}

/* A random point in the target's voxels whose surroundings at `margin` mm
 * (along the six axis directions) are the target too, so a sphere of that
 * radius stays inside, honouring a placement hint. */
static int pick_point(const Scene *s, const int *labs, int nl, double margin, const char *place,
                      Rng *r, double out[3])
{
    int lo[3] = {1 << 30, 1 << 30, 1 << 30}, hi[3] = {-1, -1, -1};
    for (int i = 0; i < nl; i++) {
        if (!s->count[labs[i]])
            continue;
        for (int a = 0; a < 3; a++) {
            if (s->lo[labs[i]][a] < lo[a])
                lo[a] = s->lo[labs[i]][a];
            if (s->hi[labs[i]][a] > hi[a])
                hi[a] = s->hi[labs[i]][a];
        }
    }
    if (hi[0] < 0)
        return 0;
    int surface = strstr(place, "surface") != NULL, upper = !strncmp(place, "upper", 5),
        lower = !strcmp(place, "lower"), dep = !strcmp(place, "dependent"),
        central = !strcmp(place, "central");
    double zmid = s->org[2] + s->sp[2] * 0.5 * (lo[2] + hi[2]);
    double zspan = s->sp[2] * (hi[2] - lo[2]);
    double cen[3];
    for (int a = 0; a < 3; a++)
        cen[a] = s->org[a] + s->sp[a] * 0.5 * (lo[a] + hi[a]);
    double m_in = surface ? margin * 0.35 : margin;
    int want = (dep || central) ? 16 : 1, found = 0;
    double best = 1e30;
    for (int tries = 0; tries < 3000 && found < want; tries++) {
        double p[3];
        for (int a = 0; a < 3; a++)
            p[a] = s->org[a] + s->sp[a] * (lo[a] + (double)rng_below(r, (uint64_t)(hi[a] - lo[a] + 1)));
        int l = label_at(s, p);
        if (!has_label(labs, nl, l))
            continue;
        if (upper && p[2] < zmid + 0.05 * zspan)
            continue;
        if (lower && p[2] > zmid - 0.05 * zspan)
            continue;
        int ok = 1, outside = 0;
        for (int a = 0; a < 3 && ok; a++)
            for (int sg = -1; sg <= 1 && ok; sg += 2) {
                double q[3] = {p[0], p[1], p[2]};
                q[a] += sg * m_in;
                if (!has_label(labs, nl, label_at(s, q)))
                    ok = 0;
                if (surface) {
                    q[a] = p[a] + sg * margin * 1.3;
                    int lq = label_at(s, q);
                    if (lq < 0)
                        ok = 0; /* the lesion would leave the volume */
                    else if (!has_label(labs, nl, lq))
                        outside = 1;
                }
            }
        if (!ok || (surface && !outside))
            continue;
        double score = 0;
        if (dep)
            score = p[1];
        else if (central)
            score = (p[0] - cen[0]) * (p[0] - cen[0]) + (p[1] - cen[1]) * (p[1] - cen[1]) +
                    (p[2] - cen[2]) * (p[2] - cen[2]);
        if (score < best) {
            best = score;
            memcpy(out, p, sizeof(double) * 3);
        }
        found++;
    }
    return found > 0;
}

static double base_hu(const LesionSet *ls, int tissue) { return ls->tt->hu[ls->enhanced][tissue]; }

static const TisMask SOFTISH = TM(T_FAT) | TM(T_FAT_SUB) | TM(T_MUSCLE) | TM(T_LUNG) |
                               TM(T_LESION) | TM(T_DISC);

/* ------------------------------------------------------------------------ */
/* Shape changes (before rendering)                                          */
/* ------------------------------------------------------------------------ */

static void ellip_center(const Ellip *e, double c[3]) { memcpy(c, e->c, sizeof(double) * 3); }

static void tube_mid(const Tube *t, double c[3])
{
    tube_point_at(t, tube_length(t) / 2, c, NULL);
}

/* An arc position on tube t whose point lies in the scan (with `half` mm to
 * spare in z when possible), drawn at random; hint "hiatus" takes the point
 * nearest the diaphragm, "stenosis" a point above the thoracic inlet. */
static int tube_pick(const LesionSet *ls, const Body *b, const Tube *t, double half,
                     const char *hint, Rng *r, double *at)
{
    double len = tube_length(t), cand[256];
    int n = 0;
    double best = 1e30, best_at = -1;
    for (double a = half * 0.5; a <= len - half * 0.5 && n < 256; a += 4) {
        double p[3];
        tube_point_at(t, a, p, NULL);
        if (p[2] < ls->zlo + fmin(half, 25) || p[2] > ls->zhi - fmin(half, 25))
            continue;
        if (!strcmp(hint, "hiatus")) {
            double d = fabs(p[2] - (body_diaphragm_z(b, p[0], p[1]) + 18 * b->sz));
            if (d < best) {
                best = d;
                best_at = a;
            }
            continue;
        }
        if (!strcmp(hint, "stenosis") && p[2] < 160 * b->sz)
            continue;
        cand[n++] = a;
    }
    if (!strcmp(hint, "hiatus")) {
        if (best_at < 0 || best > 30)
            return 0;
        *at = best_at;
        return 1;
    }
    if (!n)
        return 0;
    *at = cand[rng_below(r, (uint64_t)n)];
    return 1;
}

static const char *aorta_site(const Body *b, const double p[3], double at)
{
    double len = tube_length(&b->aorta), asc = 0, seg = 0;
    for (int s = 0; s + 1 < b->aorta.n; s++) {
        double d[3] = {b->aorta.p[s + 1][0] - b->aorta.p[s][0], b->aorta.p[s + 1][1] - b->aorta.p[s][1],
                       b->aorta.p[s + 1][2] - b->aorta.p[s][2]};
        seg += sqrt(v3_dot(d, d));
        if (s == 2)
            asc = seg; /* the first three segments rise to the arch */
    }
    (void)len;
    if (at < asc)
        return "ascending";
    if (p[2] > 140 * b->sz)
        return "arch";
    return p[2] > body_diaphragm_z(b, p[0], p[1]) ? "descending" : "abdominal";
}

static int pre_effect(LesionSet *ls, const LesionSpec *sp, PendingFx *fx, Body *b, Rng *r)
{
    const char *t = sp->target;
    int f = sp->finding;
    double c[3] = {0, 0, 0};
    switch (sp->effect) {
    case FX_SCALE: {
        double k = fx->param;
        Lesion *l;
        if (!strcmp(t, "heart")) {
            if (!in_scan(ls, b, TS_HEART, 40))
                return 0;
            ellip_scale(&b->heart, k, k, 1 + (k - 1) * 0.6);
            ellip_center(&b->heart, c);
            l = add_lesion(ls, f, c, 2 * b->heart.ax[0], base_hu(ls, T_MYOCARDIUM));
        } else if (!strcmp(t, "liver")) {
            if (!in_scan(ls, b, TS_LIVER, 50))
                return 0;
            for (int i = 0; i < 2; i++) {
                double kk = k < 1 && i == 1 ? fmin(1, k + 0.15) : k;
                double old = b->liver[i].ax[2];
                ellip_scale(&b->liver[i], kk, kk, kk);
                /* the dome stays under the diaphragm: grow (or shrink) downward */
                b->liver[i].c[2] -= (b->liver[i].ax[2] - old) * 0.8;
            }
            ellip_center(&b->liver[0], c);
            l = add_lesion(ls, f, c, 2 * b->liver[0].ax[2], base_hu(ls, T_LIVER));
        } else if (!strcmp(t, "gallbladder")) {
            if (!in_scan(ls, b, TS_GALLBLADDER, 30))
                return 0;
            ellip_scale(&b->gb, k, k, k);
            ellip_center(&b->gb, c);
            l = add_lesion(ls, f, c, 2 * b->gb.ax[0], base_hu(ls, T_BILE));
        } else if (!strcmp(t, "spleen")) {
            if (!in_scan(ls, b, TS_SPLEEN, 40))
                return 0;
            ellip_scale(&b->spleen, k, k, k);
            ellip_center(&b->spleen, c);
            l = add_lesion(ls, f, c, 2 * b->spleen.ax[0], base_hu(ls, T_SPLEEN));
        } else if (!strcmp(t, "pancreas")) {
            if (!in_scan(ls, b, TS_PANCREAS, 30))
                return 0;
            for (int i = 0; i < b->pancreas.n; i++)
                b->pancreas.r[i] *= k;
            tube_mid(&b->pancreas, c);
            l = add_lesion(ls, f, c, 2 * b->pancreas.r[0], base_hu(ls, T_PANCREAS));
        } else if (!strcmp(t, "kidney")) {
            int side = (int)rng_below(r, 2);
            if (!in_scan(ls, b, side == 0 ? TS_KIDNEY_R : TS_KIDNEY_L, 50))
                side = 1 - side;
            if (!in_scan(ls, b, side == 0 ? TS_KIDNEY_R : TS_KIDNEY_L, 50))
                return 0;
            ellip_scale(&b->kidney[side], k, k, k);
            ellip_scale(&b->ksinus[side], k, k, k);
            ellip_center(&b->kidney[side], c);
            l = add_lesion(ls, f, c, 2 * b->kidney[side].ax[0], base_hu(ls, T_KIDNEY_CORTEX));
            if (l)
                l->ts = side == 0 ? TS_KIDNEY_R : TS_KIDNEY_L;
        } else if (!strcmp(t, "adrenal")) {
            if (!in_scan(ls, b, TS_ADRENAL_R, 20) && !in_scan(ls, b, TS_ADRENAL_L, 20))
                return 0;
            for (int s = 0; s < 2; s++)
                for (int a = 0; a < 2; a++)
                    ellip_scale(&b->adrenal[s][a], 1 + (k - 1) * 0.2, 1 + (k - 1) * 0.35, k);
            ellip_center(&b->adrenal[0][0], c);
            l = add_lesion(ls, f, c, 2 * b->adrenal[0][0].ax[2], base_hu(ls, T_ADRENAL));
            if (l)
                l->side = 'B';
        } else if (!strcmp(t, "stomach")) {
            if (!in_scan(ls, b, TS_STOMACH, 50))
                return 0;
            for (int i = 0; i < b->stomach.n; i++) {
                b->stomach.r[i] *= k;
                b->stomach.lumen[i] = b->stomach.r[i] - 3;
            }
            b->stomach_level = 0.75;
            b->stomach_food = 0;
            tube_mid(&b->stomach, c);
            l = add_lesion(ls, f, c, 2 * b->stomach.r[1], base_hu(ls, T_BOWEL_FLUID));
        } else if (!strcmp(t, "small_bowel")) {
            if (!in_scan(ls, b, TS_SMALL_BOWEL, 60))
                return 0;
            for (int n = 0; n < BODY_NSB; n++)
                for (int i = 0; i < b->sbowel[n].n; i++) {
                    b->sbowel[n].r[i] *= k;
                    b->sbowel[n].lumen[i] = b->sbowel[n].r[i] - 2;
                }
            tube_mid(&b->sbowel[0], c);
            l = add_lesion(ls, f, c, 2 * b->sbowel[0].r[0], base_hu(ls, T_BOWEL_FLUID));
        } else
            return 0;
        return l != NULL;
    }
    case FX_LOBULATE:
        if (!in_scan(ls, b, TS_LIVER, 50))
            return 0;
        b->liver_lobulation = fx->param;
        return 1;
    case FX_WALL: {
        double w = fx->size, k = sp->param.set ? fx->param : 1;
        Lesion *l = NULL;
        if (!strcmp(t, "gallbladder")) {
            if (!in_scan(ls, b, TS_GALLBLADDER, 30))
                return 0;
            ellip_scale(&b->gb, k, k, k);
            b->gb_wall = w;
            l = add_lesion(ls, f, b->gb.c, w, base_hu(ls, T_BOWEL_WALL));
        } else if (!strcmp(t, "bladder")) {
            if (!in_scan(ls, b, TS_BLADDER, 30))
                return 0;
            ellip_scale(&b->bladder, k, k, k);
            b->bladder_wall = w;
            l = add_lesion(ls, f, b->bladder.c, w, base_hu(ls, T_BOWEL_WALL));
        } else if (!strcmp(t, "stomach")) {
            if (!in_scan(ls, b, TS_STOMACH, 40))
                return 0;
            for (int i = 0; i < b->stomach.n; i++) {
                b->stomach.r[i] *= k;
                b->stomach.lumen[i] = fmax(0, b->stomach.r[i] - w);
            }
            tube_mid(&b->stomach, c);
            l = add_lesion(ls, f, c, w, base_hu(ls, T_BOWEL_WALL));
        }
        return l != NULL;
    }
    case FX_TUBE_LOCAL: {
        Tube *tb = !strcmp(t, "aorta") ? &b->aorta : !strcmp(t, "esophagus") ? &b->esophagus
                 : !strcmp(t, "trachea") ? &b->trachea : &b->colon;
        double half = fx->param / 2, at;
        if (!tube_pick(ls, b, tb, half, sp->place, r, &at))
            return 0;
        double p[3];
        int seg;
        tube_point_at(tb, at, p, &seg);
        double r0 = tb->r[seg], size = 0, hu = 0;
        const char *site = "";
        if (!strcmp(sp->place, "aneurysm")) {
            site = aorta_site(b, p, at);
            tube_local(tb, at, half, fx->size / 2, fx->size / 2 - 2);
            size = fx->size;
            hu = base_hu(ls, T_ARTERY);
        } else if (!strcmp(sp->place, "hiatus")) {
            tube_local(tb, at, half, fx->size / 2, fx->size / 2 - 3);
            size = fx->size;
            hu = base_hu(ls, T_GAS);
        } else if (!strcmp(sp->place, "wall")) {
            if (tb == &b->colon) {
                tube_local(tb, at, half, r0 * 1.1, fmax(0, r0 * 1.1 - fx->size));
                size = fx->size;
            } else {
                tube_local(tb, at, half, fx->size / 2, 1.5);
                size = fx->size / 2 - 1.5;
            }
            hu = base_hu(ls, tb == &b->colon ? T_BOWEL_WALL : T_ESOPHAGUS);
            site = p[2] > 160 * b->sz ? "upper" : p[2] > 60 * b->sz ? "middle" : "lower";
        } else if (!strcmp(sp->place, "lumen")) {
            tube_local(tb, at, half, fx->size / 2, fx->size / 2 - 2.5);
            size = fx->size;
            hu = base_hu(ls, T_GAS);
        } else if (!strcmp(sp->place, "stenosis")) {
            double keep = rng_range(r, 0.3, 0.45);
            tube_local(tb, at, half, r0 + 1.5, tb->lumen[seg] * keep);
            size = 2 * tb->lumen[seg] * keep;
            hu = base_hu(ls, T_AIRWAY_WALL);
        } else
            return 0;
        Lesion *l = add_lesion(ls, f, p, size, hu);
        if (!l)
            return 0;
        l->size2 = 2 * fx->param;
        snprintf(l->site, sizeof l->site, "%s", site);
        return 1;
    }
    case FX_DUCT:
        if (!in_scan(ls, b, TS_PANCREAS, 30))
            return 0;
        b->pancreas_duct = fx->size / 2;
        for (int i = 0; i < b->pancreas.n; i++)
            b->pancreas.r[i] = fmax(b->pancreas.r[i] * 1.1, b->pancreas_duct + 4);
        tube_mid(&b->pancreas, c);
        return add_lesion(ls, f, c, fx->size, base_hu(ls, T_BOWEL_FLUID)) != NULL;
    case FX_PELVIS: {
        int side = (int)rng_below(r, 2);
        if (!in_scan(ls, b, side == 0 ? TS_KIDNEY_R : TS_KIDNEY_L, 50))
            side = 1 - side;
        if (!in_scan(ls, b, side == 0 ? TS_KIDNEY_R : TS_KIDNEY_L, 50))
            return 0;
        b->kidney_pelvis[side] = fx->size / 2;
        ellip_scale(&b->kidney[side], fx->param, fx->param, fx->param);
        Lesion *l = add_lesion(ls, f, b->ksinus[side].c, fx->size, base_hu(ls, T_URINE));
        if (l)
            l->ts = side == 0 ? TS_KIDNEY_R : TS_KIDNEY_L;
        return l != NULL;
    }
    case FX_COLLAPSE: {
        int cand[12], n = 0;
        for (int i = 4; i <= 12; i++) {
            const Vertebra *v = &b->vert[i];
            if (v->z - v->h > ls->zlo && v->z + v->h < ls->zhi && v->collapse >= 1)
                cand[n++] = i;
        }
        if (!n)
            return 0;
        Vertebra *v = &b->vert[cand[rng_below(r, (uint64_t)n)]];
        v->collapse = fx->param;
        v->hu_add = fx->hu;
        double vc[3] = {0, v->y, v->z};
        Lesion *l = add_lesion(ls, f, vc, v->h * (1 - fx->param), base_hu(ls, T_BONE_MARROW) + fx->hu);
        if (!l)
            return 0;
        l->ts = v->ts_id;
        l->side = 0;
        snprintf(l->site, sizeof l->site, "%s", v->name);
        return 1;
    }
    case FX_SPHERE:
        if (!strcmp(t, "thyroid")) {
            /* a nodule enlarges its lobe (goitre) so that it fits */
            if (!in_scan(ls, b, TS_THYROID, 25))
                return 0;
            int lobe = (int)rng_below(r, 2);
            Ellip *e = &b->thyroid[lobe];
            for (int a = 0; a < 3; a++)
                e->ax[a] = fmax(e->ax[a], fx->size / 2 + 3);
            fx->aux = lobe;
        }
        return 1;
    default:
        return 1; /* painted later */
    }
}

/* Coarse feasibility of a device kind in this scan. */
static int device_fits(const LesionSet *ls, const Body *b, const char *kind)
{
    double z0, z1;
    if (!strcmp(kind, "pacemaker") || !strcmp(kind, "port"))
        return ls->zhi > 200 * b->sz && in_scan(ls, b, TS_HEART, 30);
    if (!strcmp(kind, "sternotomy"))
        return body_label_zrange(b, TS_STERNUM, &z0, &z1) && fmin(z1, ls->zhi) - fmax(z0, ls->zlo) > 80;
    if (!strcmp(kind, "stent"))
        return in_scan(ls, b, TS_AORTA, 100);
    if (!strcmp(kind, "clips"))
        return in_scan(ls, b, TS_GALLBLADDER, 40) && in_scan(ls, b, TS_LIVER, 60);
    if (!strcmp(kind, "chest_tube"))
        return ls->zlo < 40 * b->sz && ls->zhi > 160 * b->sz;
    return 0;
}

/* Is the target's region in the scan at all (painted effects are placed in
 * the voxels later; this only avoids planning the impossible)? */
static int post_fits(const LesionSet *ls, const LesionSpec *sp, const Body *b)
{
    const char *t = sp->target;
    if (sp->effect == FX_DEVICE)
        return device_fits(ls, b, t);
    if (!strcmp(t, "mediastinum") || !strcmp(t, "coronary"))
        return in_scan(ls, b, TS_HEART, 40) || in_scan(ls, b, TS_TRACHEA, 40);
    if (!strcmp(t, "peritoneum"))
        return in_scan(ls, b, TS_LIVER, 60);
    if (!strcmp(t, "aorta_wall"))
        return in_scan(ls, b, TS_AORTA, 60);
    int labs[32], n = target_labels(t, -1, labs);
    for (int i = 0; i < n; i++)
        if (in_scan(ls, b, labs[i], 25))
            return 1;
    return 0;
}

/* Painted on the rendered scene (else a shape change made before rendering). */
static int is_post(EffectKind k)
{
    switch (k) {
    case FX_SCALE: case FX_LOBULATE: case FX_WALL: case FX_TUBE_LOCAL: case FX_DUCT:
    case FX_PELVIS: case FX_COLLAPSE:
        return 0;
    default:
        return 1;
    }
}

void lesions_init(LesionSet *ls, const LesionTable *t, const Ontology *o, const TissueTable *tt,
                  int enhanced, double zlo, double zhi)
{
    memset(ls, 0, sizeof *ls);
    ls->table = t;
    ls->onto = o;
    ls->tt = tt;
    ls->enhanced = enhanced ? 1 : 0;
    ls->zlo = zlo;
    ls->zhi = zhi;
    memset(ls->status, -1, sizeof ls->status);
}

int lesions_add(LesionSet *ls, int finding, Body *b, Rng *r)
{
    const LesionTable *t = ls->table;
    if (finding < 0 || finding >= 256)
        return 0;
    /* choose one row per alt group among those that fit this scan */
    int chosen[64], nch = 0;
    for (int g = 0; g <= 9; g++) {
        int rows[16], n = 0;
        for (int i = 0; i < t->n && n < 16; i++)
            if (t->row[i].finding == finding && t->row[i].alt == g &&
                (g == 0 || post_fits(ls, &t->row[i], b)))
                rows[n++] = i;
        if (!n)
            continue;
        if (g == 0)
            for (int i = 0; i < n && nch < 64; i++)
                chosen[nch++] = rows[i];
        else if (nch < 64)
            chosen[nch++] = rows[rng_below(r, (uint64_t)n)];
    }
    if (!nch)
        return 0;
    for (int i = 0; i < nch; i++) {
        const LesionSpec *sp = &t->row[chosen[i]];
        if (is_post(sp->effect) && !post_fits(ls, sp, b))
            return 0;
    }
    if (ls->nfx + nch > LS_MAX_FX)
        return 0;
    int start_fx = ls->nfx, start_les = ls->nles;
    for (int i = 0; i < nch; i++) {
        const LesionSpec *sp = &t->row[chosen[i]];
        PendingFx *fx = &ls->fx[ls->nfx++];
        memset(fx, 0, sizeof *fx);
        fx->spec = sp;
        fx->size = sp->size.set ? draw(r, &sp->size) : 0;
        const Range *hr = ls->enhanced ? &sp->hu_enh : &sp->hu_plain;
        fx->hu = hr->set ? draw(r, hr) : 0;
        fx->param = sp->param.set ? draw(r, &sp->param) : 0;
        fx->count = draw_int(r, &sp->count);
        if (!pre_effect(ls, sp, fx, b, r)) {
            /* nothing shape-changing has happened for the rows before this
             * one except harmless scale factors; forget the task */
            ls->nfx = start_fx;
            ls->nles = start_les;
            return 0;
        }
    }
    /* a shape change is in the image already (the organ is in the scan); a
     * task made only of painted changes is shown once one of them is placed */
    int shaped = 0;
    for (int i = start_fx; i < ls->nfx; i++)
        shaped |= !is_post(ls->fx[i].spec->effect);
    ls->status[finding] = (signed char)shaped;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Painted changes                                                            */
/* ------------------------------------------------------------------------ */

static int fx_order(EffectKind k)
{
    switch (k) {
    case FX_ORGAN_HU: return 0;
    case FX_LAYER: return 1;
    case FX_SHELL: return 2;
    case FX_ASCITES: return 3;
    case FX_LOBAR: case FX_BAND: case FX_PATCHES: case FX_MOSAIC: return 4;
    case FX_AIRWAYS: case FX_STREAK: return 5;
    case FX_DEVICE: return 7;
    default: return 6;
    }
}

static HuPaint hp_make(double hu, const int *labs, int nl, TisMask over, int new_label)
{
    HuPaint hp;
    memset(&hp, 0, sizeof hp);
    hp.hu = hu;
    hp.labels = labs;
    hp.nlab = nl;
    hp.over = over;
    hp.new_label = new_label;
    return hp;
}

static void rand_dir(Rng *r, double d[3])
{
    d[0] = rng_normal(r);
    d[1] = rng_normal(r);
    d[2] = rng_normal(r);
    v3_norm(d);
}

/* Spheres and blobs in an organ. */
static int fx_sphere(LesionSet *ls, const PendingFx *fx, const Body *b, Scene *s, Rng *r)
{
    const LesionSpec *sp = fx->spec;
    int side = -1;
    if (!strcmp(sp->target, "kidney") || !strcmp(sp->target, "adrenal"))
        side = (int)rng_below(r, 2);
    int labs[32], nl = target_labels(sp->target, side, labs);
    if (side >= 0 && labels_count(s, labs, nl) < 50) {
        side = 1 - side;
        nl = target_labels(sp->target, side, labs);
    }
    int placed = 0;
    for (int n = 0; n < fx->count; n++) {
        double d = fx->size * rng_range(r, 0.85, 1.15);
        if (n == 0)
            d = fx->size;
        double rad = d / 2, c[3];
        int ok;
        if (!strcmp(sp->target, "thyroid")) {
            const Ellip *lobe = &b->thyroid[fx->aux];
            memcpy(c, lobe->c, sizeof c);
            c[2] += rng_range(r, -0.3, 0.3) * lobe->ax[2];
            ok = label_at(s, c) == TS_THYROID && c[2] - rad > s->org[2] &&
                 c[2] + rad < s->org[2] + (s->nz - 1) * s->sp[2];
        } else if (!strcmp(sp->target, "vertebra")) {
            ok = pick_point(s, labs, nl, fmin(rad * 0.6, 6), "any", r, c) &&
                 tissue_at(s, c) == T_BONE_MARROW;
            for (int tries = 0; !ok && tries < 20; tries++)
                ok = pick_point(s, labs, nl, fmin(rad * 0.6, 6), "any", r, c) &&
                     tissue_at(s, c) == T_BONE_MARROW;
        } else {
            int surface = strstr(sp->place, "surface") != NULL;
            double margin = sp->label == LB_KEEP || surface ? rad * 0.7 : rad * 0.2;
            if (!strcmp(sp->target, "trachea"))
                margin = fmin(margin, 3);
            if (!strcmp(sp->target, "adrenal"))
                margin = 1;
            ok = pick_point(s, labs, nl, margin, sp->place, r, c);
            if (!ok && margin > 4)
                ok = pick_point(s, labs, nl, margin * 0.5, sp->place, r, c);
        }
        if (!ok)
            continue;
        int site_label = label_at(s, c);
        HuPaint hp;
        if (sp->label == LB_KEEP)
            hp = hp_make(fx->hu, labs, nl, TM_ALL, -1);
        else if (sp->label == LB_CYST) {
            int cyst = site_label == TS_KIDNEY_L ? TS_KIDNEY_CYST_L : TS_KIDNEY_CYST_R;
            hp = hp_make(fx->hu, NULL, 0, SOFTISH | TM(T_KIDNEY_CORTEX) | TM(T_KIDNEY_MEDULLA) |
                                              TM(T_KIDNEY_SINUS), cyst);
        } else {
            int org = site_label > 0 ? site_label : labs[0];
            hp = hp_make(fx->hu, NULL, 0, SOFTISH | TM(T_PANCREAS) | TM(T_ADRENAL) |
                                              TM(T_THYROID) | TM(T_LIVER), org);
            if (sp->label == LB_CLEAR)
                hp.new_label = 0;
        }
        if (!strcmp(sp->target, "trachea"))
            hp.keep_tissue = 1;
        int64_t nv;
        if (sp->effect == FX_BLOB) {
            Ellip e;
            ellip_aligned(&e, c[0], c[1], c[2], rad, rad * rng_range(r, 0.75, 1), rad * rng_range(r, 0.8, 1.1));
            nv = paint_hu_ellip(s, &e, &hp);
            for (int k = 0; k < 2; k++) {
                double dd[3];
                rand_dir(r, dd);
                Ellip sat;
                ellip_aligned(&sat, c[0] + dd[0] * rad * 0.55, c[1] + dd[1] * rad * 0.55,
                              c[2] + dd[2] * rad * 0.55, rad * 0.6, rad * 0.6, rad * 0.6);
                nv += paint_hu_ellip(s, &sat, &hp);
            }
        } else {
            Ellip e;
            ellip_aligned(&e, c[0], c[1], c[2], rad, rad, rad);
            nv = paint_hu_ellip(s, &e, &hp);
        }
        if (nv <= 0)
            continue;
        Lesion *l = add_lesion(ls, sp->finding, c, d, fx->hu);
        if (!l)
            break;
        l->size2 = d * rng_range(r, 0.65, 0.95);
        l->ts = site_label;
        placed++;
    }
    return placed;
}

static int fx_patches(LesionSet *ls, const PendingFx *fx, Scene *s, Rng *r)
{
    const LesionSpec *sp = fx->spec;
    int labs[8], nl = target_labels("lung", -1, labs), placed = 0;
    const char *place = sp->place;
    for (int n = 0; n < fx->count; n++) {
        double c[3], rad = fx->size / 2 * rng_range(r, 0.75, 1.1);
        if (!pick_point(s, labs, nl, rad * 0.4, place, r, c))
            continue;
        double hu = fx->hu;
        if (sp->effect == FX_MOSAIC) {
            const Range *hr = ls->enhanced ? &sp->hu_enh : &sp->hu_plain;
            hu = (n % 2 ? hr->hi : hr->lo) + rng_range(r, -15, 15);
        }
        int lobe = label_at(s, c);
        int one[1] = {lobe};
        HuPaint hp = hp_make(hu, sp->effect == FX_LOBAR ? one : labs, sp->effect == FX_LOBAR ? 1 : nl,
                             TM(T_LUNG) | TM(T_LESION), -1);
        hp.keep_tissue = sp->effect == FX_PATCHES || sp->effect == FX_MOSAIC;
        if (fx->param > 0 && sp->effect == FX_PATCHES) {
            hp.amp = fx->param;
            hp.period = 13;
        }
        double d[3];
        rand_dir(r, d);
        double up[3] = {0, 0, 1};
        Ellip e;
        ellip_axis(&e, c, d, up, rad, rad * rng_range(r, 0.6, 0.9), rad * rng_range(r, 0.6, 0.9));
        int64_t nv = paint_hu_ellip(s, &e, &hp);
        if (sp->effect == FX_LOBAR && nv > 0) {
            /* air bronchograms: gas-filled airways inside the consolidation */
            for (int k = 0; k < 2; k++) {
                Tube tb = {0};
                double dd[3];
                rand_dir(r, dd);
                tube_add(&tb, c[0] - dd[0] * rad * 0.7, c[1] - dd[1] * rad * 0.7, c[2] - dd[2] * rad * 0.7, 2.2, 0);
                tube_add(&tb, c[0] + dd[0] * rad * 0.7, c[1] + dd[1] * rad * 0.7, c[2] + dd[2] * rad * 0.7, 1.6, 0);
                HuPaint air = hp_make(-900, one, 1, TM(T_LESION), -1);
                air.keep_tissue = 1;
                paint_hu_tube(s, &tb, &air);
            }
        }
        if (nv <= 0)
            continue;
        Lesion *l = add_lesion(ls, sp->finding, c, 2 * rad, hu);
        if (!l)
            break;
        l->size2 = 2 * rad * 0.75;
        l->ts = lobe;
        placed++;
    }
    return placed;
}

static int fx_band(LesionSet *ls, const PendingFx *fx, Scene *s, Rng *r)
{
    const LesionSpec *sp = fx->spec;
    int lower[2] = {TS_LUNG_LL, TS_LUNG_RL}, all[8], nl = target_labels("lung", -1, all), placed = 0;
    for (int n = 0; n < fx->count; n++) {
        double c[3];
        if (!pick_point(s, lower, 2, fx->size / 2, "dependent", r, c))
            continue;
        double len = fx->param, Y[3] = {0, 1, 0};
        double dir[3] = {rng_range(r, 0.6, 1), 0, rng_range(r, -0.5, 0.5)};
        Ellip e;
        ellip_axis(&e, c, dir, Y, len / 2, fx->size / 2, len / 4);
        HuPaint hp = hp_make(fx->hu, all, nl, TM(T_LUNG) | TM(T_LESION), -1);
        if (paint_hu_ellip(s, &e, &hp) <= 0)
            continue;
        Lesion *l = add_lesion(ls, sp->finding, c, fx->size, fx->hu);
        if (!l)
            break;
        l->size2 = len;
        l->ts = label_at(s, c);
        placed++;
    }
    return placed;
}

static void hilum(const Body *b, int right, double h[3])
{
    h[0] = (right ? 46 : -46) * b->sx;
    h[1] = -10 * b->sy;
    h[2] = 108 * b->sz;
}

static int fx_streak(LesionSet *ls, const PendingFx *fx, const Body *b, Scene *s, Rng *r)
{
    const LesionSpec *sp = fx->spec;
    int placed = 0;
    for (int n = 0; n < fx->count; n++) {
        double len = fx->param * rng_range(r, 0.85, 1.15), rad = fx->size / 2, p0[3], p1[3], c[3];
        int labs[8], nl;
        HuPaint hp;
        if (!strcmp(sp->target, "lung")) {
            nl = target_labels("lung", -1, labs);
            if (!pick_point(s, labs, nl, 6, sp->place, r, c))
                continue;
            double h[3], d[3];
            hilum(b, c[0] > 0, h);
            for (int i = 0; i < 3; i++)
                d[i] = c[i] - h[i] + rng_normal(r) * 20;
            v3_norm(d);
            for (int i = 0; i < 3; i++) {
                p0[i] = c[i] - d[i] * len / 2;
                p1[i] = c[i] + d[i] * len / 2;
            }
            hp = hp_make(fx->hu, labs, nl, TM(T_LUNG) | TM(T_LESION), -1);
        } else if (!strcmp(sp->target, "coronary")) {
            if (s->count[TS_HEART] < 100)
                return placed;
            const Ellip *h = &b->heart;
            double d[3] = {rng_range(r, -0.9, 0.5), rng_range(r, 0.2, 1), rng_range(r, -0.2, 0.7)};
            v3_norm(d);
            ellip_surface(h, d, p0);
            double tng[3], rd[3], cr[3];
            rand_dir(r, rd);
            cr[0] = d[1] * rd[2] - d[2] * rd[1];
            cr[1] = d[2] * rd[0] - d[0] * rd[2];
            cr[2] = d[0] * rd[1] - d[1] * rd[0];
            memcpy(tng, cr, sizeof tng);
            v3_norm(tng);
            double q[3] = {p0[0] + tng[0] * len - h->c[0], p0[1] + tng[1] * len - h->c[1],
                           p0[2] + tng[2] * len - h->c[2]};
            ellip_surface(h, q, p1);
            for (int i = 0; i < 3; i++) {
                /* just under the epicardial surface */
                p0[i] -= d[i] * 2;
                p1[i] -= d[i] * 2;
                c[i] = 0.5 * (p0[i] + p1[i]);
            }
            static const int hl[2] = {TS_HEART, 0};
            hp = hp_make(fx->hu, hl, 2, TM(T_MYOCARDIUM) | TM(T_FAT) | TM(T_VEIN) | TM(T_LESION),
                         TS_HEART);
        } else {
            /* a plaque on the aortic wall */
            double at;
            const Tube *ao = &b->aorta;
            if (!tube_pick(ls, b, ao, 10, "any", r, &at))
                return placed;
            int seg;
            tube_point_at(ao, at, c, &seg);
            double ax[3] = {ao->p[seg + 1][0] - ao->p[seg][0], ao->p[seg + 1][1] - ao->p[seg][1],
                            ao->p[seg + 1][2] - ao->p[seg][2]};
            v3_norm(ax);
            double rd[3], perp[3];
            rand_dir(r, rd);
            perp[0] = ax[1] * rd[2] - ax[2] * rd[1];
            perp[1] = ax[2] * rd[0] - ax[0] * rd[2];
            perp[2] = ax[0] * rd[1] - ax[1] * rd[0];
            v3_norm(perp);
            double rl = ao->r[seg] - 1.5;
            for (int i = 0; i < 3; i++) {
                c[i] += perp[i] * rl;
                p0[i] = c[i] - ax[i] * len / 2;
                p1[i] = c[i] + ax[i] * len / 2;
            }
            static const int al[2] = {TS_AORTA, 0};
            hp = hp_make(fx->hu, al, 2, TM(T_VESSEL_WALL) | TM(T_ARTERY) | TM(T_FAT) | TM(T_LESION),
                         TS_AORTA);
        }
        Tube tb = {0};
        tube_add(&tb, p0[0], p0[1], p0[2], rad, 0);
        tube_add(&tb, p1[0], p1[1], p1[2], rad, 0);
        if (paint_hu_tube(s, &tb, &hp) <= 0)
            continue;
        Lesion *l = add_lesion(ls, sp->finding, c, len, fx->hu);
        if (!l)
            break;
        l->size2 = fx->size;
        l->ts = label_at(s, c);
        placed++;
    }
    return placed;
}

/* One line of voxels of a pleural layer, along x (axis 0, at y = fixed) or
 * y (axis 1, at x = fixed) in slice k: from the end that step points away
 * from (+1: index 0, -1: the last), the first voxel of labs, then nt voxels
 * inward from it that still have one of labs become lesion at hu. Their
 * positions (RAS mm) are added to sum and counted in *nv. */
static void layer_line(Scene *s, const int *labs, int nl, int axis, int fixed, int k, int step,
                       int nt, double hu, double sum[3], int64_t *nv)
{
    int n = axis == 0 ? s->nx : s->ny, first = -1;
    for (int t = step > 0 ? 0 : n - 1; t >= 0 && t < n; t += step)
        if (has_label(labs, nl, s->lab[axis == 0 ? scene_idx(s, t, fixed, k)
                                                 : scene_idx(s, fixed, t, k)])) {
            first = t;
            break;
        }
    if (first < 0)
        return;
    for (int d = 0; d < nt; d++) {
        int t = first + step * d;
        if (t < 0 || t >= n)
            break;
        int i = axis == 0 ? t : fixed, j = axis == 0 ? fixed : t;
        size_t x = scene_idx(s, i, j, k);
        if (!has_label(labs, nl, s->lab[x]))
            continue;
        s->hu[x] = (int16_t)lrint(hu);
        s->tis[x] = T_LESION;
        s->lab[x] = 0;
        double p[3];
        scene_pos(s, i, j, k, p);
        for (int a = 0; a < 3; a++)
            sum[a] += p[a];
        (*nv)++;
    }
}

/* Pleural fluid (dependent), pneumothorax (anterior) or pleural thickening
 * (lateral): a layer of the lung next to the chest wall, scanned column by
 * column from the outside in. */
static int fx_layer(LesionSet *ls, const PendingFx *fx, Scene *s, Rng *r)
{
    const LesionSpec *sp = fx->spec;
    int sides[2], ns = 0;
    int first = (int)rng_below(r, 2);
    sides[ns++] = first;
    if (fx->count >= 2)
        sides[ns++] = 1 - first;
    int dep = !strcmp(sp->place, "dependent"), ant = !strcmp(sp->place, "anterior");
    int placed = 0;
    for (int si = 0; si < ns; si++) {
        int labs[3], nl = target_labels("lung", sides[si], labs);
        int64_t cnt = labels_count(s, labs, nl);
        if (cnt < 200)
            continue;
        int klo = 1 << 30, khi = -1;
        for (int i = 0; i < nl; i++)
            if (s->count[labs[i]]) {
                if (s->lo[labs[i]][2] < klo) klo = s->lo[labs[i]][2];
                if (s->hi[labs[i]][2] > khi) khi = s->hi[labs[i]][2];
            }
        double t_mm = fx->size * rng_range(r, 0.85, 1.15), h_mm = fx->param;
        int hk = (int)(h_mm / s->sp[2]) + 1;
        int k0, k1;
        if (dep) {
            k0 = klo;
            k1 = klo + hk;
        } else if (ant) {
            k1 = khi;
            k0 = khi - hk;
        } else {
            int mid = klo + (int)rng_below(r, (uint64_t)(khi - klo + 1));
            k0 = mid - hk / 2;
            k1 = mid + hk / 2;
        }
        if (k0 < 0)
            k0 = 0;
        if (k1 > s->nz - 1)
            k1 = s->nz - 1;
        double sum[3] = {0, 0, 0};
        int64_t nv = 0;
        for (int k = k0; k <= k1; k++) {
            /* thickest at the base (effusion), at the apex (pneumothorax) */
            double f = dep ? 1 - (double)(k - k0) / (k1 - k0 + 1) : ant ? 0.35 + 0.65 * (k - k0) / (double)(k1 - k0 + 1) : 1;
            double t = t_mm * (dep ? sqrt(f) : f);
            if (dep || ant) {
                int nt = (int)(t / s->sp[1] + 0.5);
                for (int i = 0; i < s->nx; i++)
                    layer_line(s, labs, nl, 1, i, k, dep ? 1 : -1, nt, fx->hu, sum, &nv);
            } else {
                /* lateral: from the side of the chest inward, posterior half */
                int nt = (int)(t / s->sp[0] + 0.5);
                for (int j = 0; j < s->ny; j++) {
                    double y = s->org[1] + j * s->sp[1];
                    if (y > 30)
                        continue;
                    layer_line(s, labs, nl, 0, j, k, sides[si] == 0 ? -1 : 1, nt, fx->hu, sum, &nv);
                }
            }
        }
        if (nv < 8)
            continue;
        double c[3] = {sum[0] / nv, sum[1] / nv, sum[2] / nv};
        Lesion *l = add_lesion(ls, sp->finding, c, t_mm, fx->hu);
        if (!l)
            break;
        l->size2 = h_mm;
        l->side = sides[si] == 0 ? 'R' : 'L';
        placed++;
    }
    if (placed == 2) {
        ls->les[ls->nles - 1].side = 'B';
        ls->les[ls->nles - 2].side = 'B';
    }
    return placed;
}

static int fx_shell(LesionSet *ls, const PendingFx *fx, const Body *b, Scene *s)
{
    if (s->count[TS_HEART] < 100)
        return 0;
    Ellip e = b->heart;
    for (int i = 0; i < 3; i++)
        e.ax[i] += fx->size;
    static const int labs[6] = {0, TS_LUNG_UL, TS_LUNG_LL, TS_LUNG_RU, TS_LUNG_RM, TS_LUNG_RL};
    HuPaint hp = hp_make(fx->hu, labs, 6, TM(T_FAT) | TM(T_LUNG), 0);
    if (paint_hu_ellip(s, &e, &hp) < 20)
        return 0;
    Lesion *l = add_lesion(ls, fx->spec->finding, b->heart.c, fx->size, fx->hu);
    if (l)
        l->side = 0;
    return l != NULL;
}

static int fx_ascites(LesionSet *ls, const PendingFx *fx, const Body *b, Scene *s)
{
    static const int zero[1] = {0};
    HuPaint hp = hp_make(fx->hu, zero, 1, TM(T_FAT), 0);
    int64_t nv = 0;
    for (int i = 0; i < 2; i++) {
        Ellip e = b->liver[i];
        for (int a = 0; a < 3; a++)
            e.ax[a] += fx->size;
        nv += paint_hu_ellip(s, &e, &hp);
    }
    Ellip sp = b->spleen;
    for (int a = 0; a < 3; a++)
        sp.ax[a] += fx->size * 0.7;
    nv += paint_hu_ellip(s, &sp, &hp);
    /* between the bowel loops and down into the pelvis */
    double lo[3] = {-110 * b->sx, -40 * b->sy, -340 * b->sz}, hi[3] = {110 * b->sx, 90 * b->sy, -110 * b->sz};
    int i0[3], i1[3];
    if (scene_box(s, lo, hi, i0, i1))
        for (int k = i0[2]; k <= i1[2]; k++)
            for (int j = i0[1]; j <= i1[1]; j++)
                for (int i = i0[0]; i <= i1[0]; i++) {
                    size_t x = scene_idx(s, i, j, k);
                    if (s->tis[x] != T_FAT || s->lab[x] != 0)
                        continue;
                    double p[3];
                    scene_pos(s, i, j, k, p);
                    double v = sin(p[0] * 0.07 + 0.4) * sin(p[1] * 0.09 + 1.1) * sin(p[2] * 0.05 + 2.3);
                    if (v > -0.15) {
                        s->hu[x] = (int16_t)lrint(fx->hu);
                        s->tis[x] = T_LESION;
                        nv++;
                    }
                }
    if (nv < 50)
        return 0;
    double c[3] = {b->liver[0].c[0] + b->liver[0].ax[0] * 0.8, b->liver[0].c[1],
                   b->liver[0].c[2] - b->liver[0].ax[2] * 0.5};
    Lesion *l = add_lesion(ls, fx->spec->finding, c, fx->size, fx->hu);
    if (l)
        l->side = 0;
    return l != NULL;
}

static int fx_airways(LesionSet *ls, const PendingFx *fx, const Body *b, Scene *s, Rng *r)
{
    const LesionSpec *sp = fx->spec;
    int labs[8], nl = target_labels("lung", -1, labs), placed = 0;
    int lower[2] = {TS_LUNG_LL, TS_LUNG_RL};
    int central = !strcmp(sp->place, "central");
    for (int n = 0; n < fx->count; n++) {
        double tgt[3];
        int ok = central ? pick_point(s, labs, nl, 10, "any", r, tgt)
                         : pick_point(s, lower, 2, 10, "any", r, tgt);
        if (!ok)
            continue;
        double h[3], a[3], len;
        hilum(b, tgt[0] > 0, h);
        double d[3] = {tgt[0] - h[0], tgt[1] - h[1], tgt[2] - h[2]};
        len = sqrt(v3_dot(d, d));
        if (len < 30)
            continue;
        double f0 = central ? 0.2 : 0.35;
        for (int i = 0; i < 3; i++)
            a[i] = h[i] + f0 * d[i];
        double ro = fx->size / 2 * rng_range(r, 0.85, 1.1), rl = fmin(fx->param, ro - 2);
        Tube tb = {0};
        tube_add(&tb, a[0], a[1], a[2], ro, rl);
        tube_add(&tb, tgt[0], tgt[1], tgt[2], ro * (central ? 0.8 : 0.9), rl * 0.9);
        HuPaint wall = hp_make(fx->hu, labs, nl, TM(T_LUNG) | TM(T_LESION), -1);
        int64_t nv = paint_hu_tube(s, &tb, &wall);
        Tube lumen = tb;
        for (int i = 0; i < lumen.n; i++)
            lumen.r[i] = lumen.lumen[i];
        HuPaint air = hp_make(-1000, labs, nl, TM(T_LESION) | TM(T_LUNG), -1);
        air.keep_tissue = 1;
        paint_hu_tube(s, &lumen, &air);
        if (nv <= 0)
            continue;
        double c[3];
        for (int i = 0; i < 3; i++)
            c[i] = 0.5 * (a[i] + tgt[i]);
        Lesion *l = add_lesion(ls, sp->finding, c, 2 * ro, fx->hu);
        if (!l)
            break;
        l->size2 = 2 * rl;
        l->ts = label_at(s, tgt);
        placed++;
    }
    return placed;
}

static int fx_nodes(LesionSet *ls, const PendingFx *fx, const Body *b, Scene *s, Rng *r)
{
    static const struct { const char *name; double x, y, z; } st[] = {
        {"right_paratracheal", 16, 8, 190}, {"left_paratracheal", -18, 5, 195},
        {"aortopulmonary", -22, 8, 140},     {"subcarinal", 0, -30, 118},
        {"right_hilar", 42, -8, 100},        {"left_hilar", -45, -12, 105},
        {"prevascular", 2, 45, 150},         {"paraesophageal", -14, -42, 70},
    };
    enum { NST = sizeof st / sizeof st[0] };
    int order[NST];
    for (int i = 0; i < NST; i++)
        order[i] = i;
    rng_shuffle_int(r, order, NST);
    static const int labs[6] = {0, TS_LUNG_UL, TS_LUNG_LL, TS_LUNG_RU, TS_LUNG_RM, TS_LUNG_RL};
    int placed = 0;
    for (int n = 0; n < NST && placed < fx->count; n++) {
        const double d = fx->size * rng_range(r, 0.85, 1.15);
        double c[3] = {st[order[n]].x * b->sx, st[order[n]].y * b->sy, st[order[n]].z * b->sz};
        for (int i = 0; i < 3; i++)
            c[i] += rng_normal(r) * 3;
        if (c[2] - d < ls->zlo + 5 || c[2] + d > ls->zhi - 5)
            continue;
        Ellip e;
        ellip_aligned(&e, c[0], c[1], c[2], d / 2, d / 2 * 1.1, d / 2 * 1.35);
        HuPaint hp = hp_make(fx->hu, labs, 6, TM(T_FAT) | TM(T_LUNG) | TM(T_LESION), 0);
        if (paint_hu_ellip(s, &e, &hp) < 3)
            continue;
        Lesion *l = add_lesion(ls, fx->spec->finding, c, d, fx->hu);
        if (!l)
            break;
        l->size2 = d * 1.35;
        snprintf(l->site, sizeof l->site, "%s", st[order[n]].name);
        placed++;
    }
    return placed;
}

static int fx_device(LesionSet *ls, const PendingFx *fx, const Body *b, Scene *s, Rng *r)
{
    const char *kind = fx->spec->target;
    HuPaint metal = hp_make(fx->hu, NULL, 0, TM_ALL & ~TM(T_AIR), -1);
    metal.keep_tissue = 1;
    double c[3] = {0, 0, 0}, size = 0;
    int64_t nv = 0;
    double cy, a, ba, bp;
    if (!strcmp(kind, "pacemaker") || !strcmp(kind, "port")) {
        int pm = kind[1] == 'a';
        double z = (pm ? 185 : 195) * b->sz;
        body_outline(b, z, &cy, &a, &ba, &bp);
        double sg = pm ? -1 : 1;
        c[0] = sg * 0.42 * a;
        c[1] = cy + ba * 0.94 - 5;
        c[2] = z;
        Ellip box;
        ellip_aligned(&box, c[0], c[1], c[2], pm ? 24 : 13, pm ? 5 : 6, pm ? 20 : 13);
        nv += paint_hu_ellip(s, &box, &metal);
        Tube lead = {0};
        tube_add(&lead, c[0], c[1], c[2], 1.8, 0);
        tube_add(&lead, sg * 40 * b->sx, c[1] - 25, 240 * b->sz, 1.8, 0);
        const Tube *svc = &b->svc;
        tube_add(&lead, svc->p[0][0], svc->p[0][1], svc->p[0][2], 1.8, 0);
        tube_add(&lead, svc->p[svc->n - 1][0], svc->p[svc->n - 1][1], svc->p[svc->n - 1][2], 1.8, 0);
        if (pm) {
            const Ellip *h = &b->heart;
            tube_add(&lead, h->c[0] + h->rot[0][0] * h->ax[0] * 0.55,
                     h->c[1] + h->rot[1][0] * h->ax[0] * 0.55,
                     h->c[2] + h->rot[2][0] * h->ax[0] * 0.55, 1.8, 0);
        }
        HuPaint wire = metal;
        wire.hu = pm ? 2600 : 450;
        nv += paint_hu_tube(s, &lead, &wire);
        size = pm ? 48 : 26;
    } else if (!strcmp(kind, "sternotomy")) {
        const Ellip *st = &b->sternum[1];
        for (double z = st->c[2] + st->ax[2] * 0.8; z > st->c[2] - st->ax[2] * 0.8; z -= 22) {
            Tube ring = {0};
            for (int q = 0; q <= 8; q++) {
                double ang = 2 * M_PI * q / 8;
                tube_add(&ring, st->c[0] + (st->ax[0] + 4) * cos(ang), st->c[1] + (st->ax[1] + 3) * sin(ang), z, 1.3, 0);
            }
            nv += paint_hu_tube(s, &ring, &metal);
        }
        memcpy(c, st->c, sizeof c);
        size = 2 * st->ax[2];
    } else if (!strcmp(kind, "stent")) {
        double at;
        const Tube *ao = &b->aorta;
        if (!tube_pick(ls, b, ao, 40, "any", r, &at))
            return 0;
        double len = rng_range(r, 60, 100);
        Tube seg = {0};
        for (double x = at - len / 2; x <= at + len / 2; x += 8) {
            double p[3];
            int sg;
            tube_point_at(ao, x, p, &sg);
            tube_add(&seg, p[0], p[1], p[2], ao->lumen[sg], 0);
        }
        static const int al[1] = {TS_AORTA};
        HuPaint shell = hp_make(fx->hu, al, 1, TM(T_ARTERY) | TM(T_VESSEL_WALL), -1);
        shell.keep_tissue = 1;
        nv += paint_hu_tube(s, &seg, &shell);
        Tube in = seg;
        for (int i = 0; i < in.n; i++)
            in.r[i] = fmax(1, in.r[i] - 2.5);
        HuPaint blood = hp_make(base_hu(ls, T_ARTERY), al, 1, TM(T_ARTERY), -1);
        blood.keep_tissue = 1;
        paint_hu_tube(s, &in, &blood);
        tube_point_at(ao, at, c, NULL);
        size = len;
    } else if (!strcmp(kind, "clips")) {
        c[0] = b->gb.c[0];
        c[1] = b->gb.c[1];
        c[2] = b->gb.c[2] + 20;
        int n = 3 + (int)rng_below(r, 4);
        for (int i = 0; i < n; i++) {
            Ellip e;
            ellip_aligned(&e, c[0] + rng_normal(r) * 7, c[1] + rng_normal(r) * 7, c[2] + rng_normal(r) * 7, 2.5, 2.5, 4);
            nv += paint_hu_ellip(s, &e, &metal);
        }
        size = 20;
    } else if (!strcmp(kind, "chest_tube")) {
        int right = rng_bernoulli(r, 0.5);
        double sg = right ? 1 : -1, ca, cba, cbp;
        body_cavity(b, 50 * b->sz, &cy, &ca, &cba, &cbp);
        body_outline(b, 50 * b->sz, &cy, &a, &ba, &bp);
        Tube tb = {0};
        tube_add(&tb, sg * (a - 2), cy, 40 * b->sz, 5, 3.5);
        tube_add(&tb, sg * (ca - 12), cy - cbp * 0.5, 60 * b->sz, 5, 3.5);
        tube_add(&tb, sg * ca * 0.6, cy - cbp * 0.8, 150 * b->sz, 5, 3.5);
        nv += paint_hu_tube(s, &tb, &metal);
        Tube lumen = tb;
        for (int i = 0; i < lumen.n; i++)
            lumen.r[i] = lumen.lumen[i];
        HuPaint air = metal;
        air.hu = -900;
        paint_hu_tube(s, &lumen, &air);
        memcpy(c, tb.p[1], sizeof c);
        size = 10;
    }
    if (nv <= 0)
        return 0;
    Lesion *l = add_lesion(ls, fx->spec->finding, c, size, fx->hu);
    if (!l)
        return 0;
    snprintf(l->site, sizeof l->site, "%s", kind);
    return 1;
}

static int fx_osteophyte(LesionSet *ls, const PendingFx *fx, const Body *b, Scene *s, Rng *r)
{
    int cand[12], n = 0, placed = 0;
    for (int i = 3; i <= 12; i++)
        if (b->vert[i].z - b->vert[i].h > ls->zlo && b->vert[i].z + b->vert[i].h < ls->zhi)
            cand[n++] = i;
    if (!n)
        return 0;
    for (int q = 0; q < fx->count; q++) {
        const Vertebra *v = &b->vert[cand[rng_below(r, (uint64_t)n)]];
        double sg = rng_bernoulli(r, 0.5) ? 1 : -1, up = rng_bernoulli(r, 0.5) ? 1 : -1;
        double d = fx->size * rng_range(r, 0.85, 1.1);
        double c[3] = {sg * v->rx * 0.75, v->y + v->ry * 0.45, v->z + up * v->h / 2};
        Ellip e;
        ellip_aligned(&e, c[0], c[1], c[2], d / 2, d / 2, d / 2 * 0.8);
        static const int labs[7] = {0, TS_LUNG_UL, TS_LUNG_LL, TS_LUNG_RU, TS_LUNG_RM, TS_LUNG_RL, 0};
        int ll[7];
        memcpy(ll, labs, sizeof ll);
        ll[6] = v->ts_id;
        HuPaint hp = hp_make(fx->hu, ll, 7, SOFTISH | TM(T_BONE_CORTEX) | TM(T_BONE_MARROW), v->ts_id);
        if (paint_hu_ellip(s, &e, &hp) <= 0)
            continue;
        Lesion *l = add_lesion(ls, fx->spec->finding, c, d, fx->hu);
        if (!l)
            break;
        l->ts = v->ts_id;
        snprintf(l->site, sizeof l->site, "%s", v->name);
        placed++;
    }
    return placed;
}

static int fx_callus(LesionSet *ls, const PendingFx *fx, const Body *b, Scene *s, Rng *r)
{
    int placed = 0;
    for (int q = 0; q < fx->count; q++) {
        for (int tries = 0; tries < 30; tries++) {
            const Rib *rb = &b->rib[rng_below(r, 24)];
            int v = rb->bone.n / 3 + (int)rng_below(r, (uint64_t)(rb->bone.n / 3 + 1));
            if (v >= rb->bone.n)
                continue;
            const double *p = rb->bone.p[v];
            double d = fx->size * rng_range(r, 0.85, 1.1);
            if (p[2] - d < ls->zlo || p[2] + d > ls->zhi)
                continue;
            if (label_at(s, p) != rb->ts_id)
                continue;
            Ellip e;
            ellip_aligned(&e, p[0], p[1], p[2], d / 2, d / 2, d / 2);
            int ll[7] = {0, TS_LUNG_UL, TS_LUNG_LL, TS_LUNG_RU, TS_LUNG_RM, TS_LUNG_RL, rb->ts_id};
            HuPaint hp = hp_make(fx->hu, ll, 7, SOFTISH | TM(T_RIB), rb->ts_id);
            if (paint_hu_ellip(s, &e, &hp) <= 0)
                continue;
            Lesion *l = add_lesion(ls, fx->spec->finding, p, d, fx->hu);
            if (!l)
                return placed;
            l->ts = rb->ts_id;
            placed++;
            break;
        }
    }
    return placed;
}

static int fx_outpouch(LesionSet *ls, const PendingFx *fx, const Body *b, Scene *s, Rng *r)
{
    const Tube *co = &b->colon;
    double len = tube_length(co), start = len * 0.55;
    int placed = 0;
    for (int q = 0; q < fx->count; q++) {
        for (int tries = 0; tries < 20; tries++) {
            double at = rng_range(r, start, len), p[3];
            int sg;
            tube_point_at(co, at, p, &sg);
            double d = fx->size * rng_range(r, 0.85, 1.1), rd[3];
            rand_dir(r, rd);
            double c[3];
            for (int i = 0; i < 3; i++)
                c[i] = p[i] + rd[i] * (co->r[sg] + d * 0.15);
            if (c[2] - d < ls->zlo || c[2] + d > ls->zhi)
                continue;
            Ellip e;
            ellip_aligned(&e, c[0], c[1], c[2], d / 2, d / 2, d / 2);
            static const int ll[2] = {0, TS_COLON};
            HuPaint hp = hp_make(fx->hu, ll, 2, TM(T_FAT) | TM(T_BOWEL_WALL) | TM(T_LESION), TS_COLON);
            if (paint_hu_ellip(s, &e, &hp) <= 2)
                continue;
            Lesion *l = add_lesion(ls, fx->spec->finding, c, d, fx->hu);
            if (!l)
                return placed;
            l->ts = TS_COLON;
            placed++;
            break;
        }
    }
    return placed;
}

static int fx_organ_hu(LesionSet *ls, const PendingFx *fx, Scene *s)
{
    int lab = !strcmp(fx->spec->target, "liver") ? TS_LIVER : TS_PANCREAS;
    int tis = lab == TS_LIVER ? T_LIVER : T_PANCREAS;
    if (s->count[lab] < 50)
        return 0;
    double delta = fx->hu - base_hu(ls, tis);
    size_t n = (size_t)s->nx * s->ny * s->nz;
    double sum[3] = {0, 0, 0};
    int64_t nv = 0;
    for (size_t x = 0; x < n; x++)
        if (s->lab[x] == lab && s->tis[x] == tis) {
            s->hu[x] = (int16_t)lrint(fmax(-1024, fmin(3071, s->hu[x] + delta)));
            nv++;
        }
    for (int a = 0; a < 3; a++)
        sum[a] = s->org[a] + s->sp[a] * 0.5 * (s->lo[lab][a] + s->hi[lab][a]);
    Lesion *l = add_lesion(ls, fx->spec->finding, sum, s->sp[2] * (s->hi[lab][2] - s->lo[lab][2] + 1),
                           fx->hu);
    if (l)
        l->side = 0;
    return nv > 0 && l;
}

void lesions_paint(LesionSet *ls, const Body *b, Scene *s, Rng *r)
{
    scene_stats(s);
    int order[LS_MAX_FX];
    for (int i = 0; i < ls->nfx; i++)
        order[i] = i;
    /* stable sort by paint order, so fluid layers come before nodules */
    for (int i = 1; i < ls->nfx; i++)
        for (int j = i; j > 0 && fx_order(ls->fx[order[j]].spec->effect) <
                                     fx_order(ls->fx[order[j - 1]].spec->effect); j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (int oi = 0; oi < ls->nfx; oi++) {
        PendingFx *fx = &ls->fx[order[oi]];
        const LesionSpec *sp = fx->spec;
        int f = sp->finding, got = -1;
        size_t nvox = (size_t)s->nx * s->ny * s->nz;
        if (ls->og && ls->snap)
            memcpy(ls->snap, s->hu, nvox * sizeof *s->hu);
        switch (sp->effect) {
        case FX_SPHERE: case FX_BLOB: got = fx_sphere(ls, fx, b, s, r); break;
        case FX_PATCHES: case FX_MOSAIC: case FX_LOBAR: got = fx_patches(ls, fx, s, r); break;
        case FX_BAND: got = fx_band(ls, fx, s, r); break;
        case FX_STREAK: got = fx_streak(ls, fx, b, s, r); break;
        case FX_LAYER: got = fx_layer(ls, fx, s, r); break;
        case FX_SHELL: got = fx_shell(ls, fx, b, s); break;
        case FX_ASCITES: got = fx_ascites(ls, fx, b, s); break;
        case FX_AIRWAYS: got = fx_airways(ls, fx, b, s, r); break;
        case FX_NODES: got = fx_nodes(ls, fx, b, s, r); break;
        case FX_DEVICE: got = fx_device(ls, fx, b, s, r); break;
        case FX_OSTEOPHYTE: got = fx_osteophyte(ls, fx, b, s, r); break;
        case FX_CALLUS: got = fx_callus(ls, fx, b, s, r); break;
        case FX_OUTPOUCH: got = fx_outpouch(ls, fx, b, s, r); break;
        case FX_ORGAN_HU: got = fx_organ_hu(ls, fx, s); break;
        default: break; /* shape changes were made before rendering */
        }
        if (got > 0)
            ls->status[f] = 1;
        if (got > 0 && ls->og && ls->snap)
            ls->changed[f] += oracle_changed(ls->og, s, ls->snap, s->hu);
    }
    scene_stats(s);
}

int lesions_shown(const LesionSet *ls, int finding)
{
    return finding >= 0 && finding < 256 && ls->status[finding] == 1;
}
