#include "shapes.h"

#include <math.h>
#include <string.h>

void v3_norm(double v[3])
{
    double n = sqrt(v3_dot(v, v));
    if (n > 0) {
        v[0] /= n;
        v[1] /= n;
        v[2] /= n;
    }
}

static void v3_cross(const double a[3], const double b[3], double out[3])
{
    out[0] = a[1] * b[2] - a[2] * b[1];
    out[1] = a[2] * b[0] - a[0] * b[2];
    out[2] = a[0] * b[1] - a[1] * b[0];
}

void ellip_axis(Ellip *e, const double c[3], const double dir[3], const double up[3],
                double a0, double a1, double a2)
{
    double u[3] = {dir[0], dir[1], dir[2]}, v[3] = {up[0], up[1], up[2]}, w[3];
    v3_norm(u);
    double d = v3_dot(u, v);
    for (int i = 0; i < 3; i++)
        v[i] -= d * u[i];
    if (v3_dot(v, v) < 1e-12) {
        /* up parallel to dir: any perpendicular will do */
        double alt[3] = {fabs(u[0]) < 0.9 ? 1 : 0, fabs(u[0]) < 0.9 ? 0 : 1, 0};
        d = v3_dot(u, alt);
        for (int i = 0; i < 3; i++)
            v[i] = alt[i] - d * u[i];
    }
    v3_norm(v);
    v3_cross(u, v, w);
    for (int i = 0; i < 3; i++) {
        e->c[i] = c[i];
        e->rot[i][0] = u[i];
        e->rot[i][1] = v[i];
        e->rot[i][2] = w[i];
    }
    e->ax[0] = a0;
    e->ax[1] = a1;
    e->ax[2] = a2;
}

void ellip_aligned(Ellip *e, double cx, double cy, double cz, double ax, double ay, double az)
{
    memset(e, 0, sizeof *e);
    e->c[0] = cx;
    e->c[1] = cy;
    e->c[2] = cz;
    e->ax[0] = ax;
    e->ax[1] = ay;
    e->ax[2] = az;
    for (int i = 0; i < 3; i++)
        e->rot[i][i] = 1;
}

double ellip_q(const Ellip *e, const double p[3])
{
    double d[3] = {p[0] - e->c[0], p[1] - e->c[1], p[2] - e->c[2]}, q = 0;
    for (int k = 0; k < 3; k++) {
        double l = (d[0] * e->rot[0][k] + d[1] * e->rot[1][k] + d[2] * e->rot[2][k]) / e->ax[k];
        q += l * l;
    }
    return q;
}

void ellip_bbox(const Ellip *e, double lo[3], double hi[3])
{
    for (int i = 0; i < 3; i++) {
        double h = 0;
        for (int k = 0; k < 3; k++)
            h += (e->rot[i][k] * e->ax[k]) * (e->rot[i][k] * e->ax[k]);
        h = sqrt(h);
        lo[i] = e->c[i] - h;
        hi[i] = e->c[i] + h;
    }
}

void ellip_surface(const Ellip *e, const double d[3], double out[3])
{
    double u[3] = {d[0], d[1], d[2]};
    v3_norm(u);
    double unit[3] = {e->c[0] + u[0], e->c[1] + u[1], e->c[2] + u[2]};
    double q = ellip_q(e, unit); /* q at distance 1 along u; q scales with t^2 */
    double t = q > 0 ? 1.0 / sqrt(q) : 0;
    for (int i = 0; i < 3; i++)
        out[i] = e->c[i] + t * u[i];
}

void ellip_scale(Ellip *e, double f0, double f1, double f2)
{
    e->ax[0] *= f0;
    e->ax[1] *= f1;
    e->ax[2] *= f2;
}

void tube_add(Tube *t, double x, double y, double z, double r, double lumen)
{
    if (t->n >= TUBE_MAX)
        return;
    t->p[t->n][0] = x;
    t->p[t->n][1] = y;
    t->p[t->n][2] = z;
    t->r[t->n] = r;
    t->lumen[t->n] = lumen;
    t->n++;
}

double tube_seg_dist(const Tube *t, int s, const double p[3], double *t_out)
{
    const double *a = t->p[s], *b = t->p[s + 1];
    double ab[3] = {b[0] - a[0], b[1] - a[1], b[2] - a[2]};
    double ap[3] = {p[0] - a[0], p[1] - a[1], p[2] - a[2]};
    double l2 = v3_dot(ab, ab), u = l2 > 0 ? v3_dot(ap, ab) / l2 : 0;
    if (u < 0)
        u = 0;
    if (u > 1)
        u = 1;
    double d[3] = {ap[0] - u * ab[0], ap[1] - u * ab[1], ap[2] - u * ab[2]};
    *t_out = u;
    return sqrt(v3_dot(d, d));
}

void tube_seg_bbox(const Tube *t, int s, double lo[3], double hi[3])
{
    double r = t->r[s] > t->r[s + 1] ? t->r[s] : t->r[s + 1];
    for (int i = 0; i < 3; i++) {
        double a = t->p[s][i], b = t->p[s + 1][i];
        lo[i] = (a < b ? a : b) - r;
        hi[i] = (a > b ? a : b) + r;
    }
}

void tube_bbox(const Tube *t, double lo[3], double hi[3])
{
    for (int i = 0; i < 3; i++) {
        lo[i] = 1e30;
        hi[i] = -1e30;
    }
    for (int s = 0; s + 1 < t->n; s++) {
        double l[3], h[3];
        tube_seg_bbox(t, s, l, h);
        for (int i = 0; i < 3; i++) {
            if (l[i] < lo[i])
                lo[i] = l[i];
            if (h[i] > hi[i])
                hi[i] = h[i];
        }
    }
}

static double seg_len(const Tube *t, int s)
{
    double d[3] = {t->p[s + 1][0] - t->p[s][0], t->p[s + 1][1] - t->p[s][1],
                   t->p[s + 1][2] - t->p[s][2]};
    return sqrt(v3_dot(d, d));
}

double tube_length(const Tube *t)
{
    double l = 0;
    for (int s = 0; s + 1 < t->n; s++)
        l += seg_len(t, s);
    return l;
}

void tube_point_at(const Tube *t, double at, double out[3], int *seg)
{
    for (int s = 0; s + 1 < t->n; s++) {
        double l = seg_len(t, s);
        if (at <= l || s + 2 == t->n) {
            double u = l > 0 ? at / l : 0;
            if (u < 0)
                u = 0;
            if (u > 1)
                u = 1;
            for (int i = 0; i < 3; i++)
                out[i] = t->p[s][i] + u * (t->p[s + 1][i] - t->p[s][i]);
            if (seg)
                *seg = s;
            return;
        }
        at -= l;
    }
    memcpy(out, t->p[0], sizeof(double) * 3);
    if (seg)
        *seg = 0;
}

/* Splits segments longer than step (while room is left) so a local change
 * can be shaped vertex by vertex. */
static void tube_refine(Tube *t, double step)
{
    for (int s = 0; s + 1 < t->n && t->n < TUBE_MAX;) {
        if (seg_len(t, s) <= step) {
            s++;
            continue;
        }
        memmove(t->p[s + 2], t->p[s + 1], sizeof(t->p[0]) * (size_t)(t->n - s - 1));
        memmove(&t->r[s + 2], &t->r[s + 1], sizeof(double) * (size_t)(t->n - s - 1));
        memmove(&t->lumen[s + 2], &t->lumen[s + 1], sizeof(double) * (size_t)(t->n - s - 1));
        for (int i = 0; i < 3; i++)
            t->p[s + 1][i] = 0.5 * (t->p[s][i] + t->p[s + 2][i]);
        t->r[s + 1] = 0.5 * (t->r[s] + t->r[s + 2]);
        t->lumen[s + 1] = 0.5 * (t->lumen[s] + t->lumen[s + 2]);
        t->n++;
    }
}

void tube_local(Tube *t, double at, double half, double r_new, double lumen_new)
{
    tube_refine(t, half / 3 > 4 ? half / 3 : 4);
    double pos = 0;
    for (int v = 0; v < t->n; v++) {
        if (v > 0)
            pos += seg_len(t, v - 1);
        double d = fabs(pos - at);
        if (d >= half)
            continue;
        double w = 0.5 * (1 + cos(M_PI * d / half));
        if (r_new >= 0)
            t->r[v] += (r_new - t->r[v]) * w;
        if (lumen_new >= 0)
            t->lumen[v] += (lumen_new - t->lumen[v]) * w;
        if (t->lumen[v] > t->r[v] - 1.5)
            t->lumen[v] = t->r[v] - 1.5 > 0 ? t->r[v] - 1.5 : 0;
    }
}
