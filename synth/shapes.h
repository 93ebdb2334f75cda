/* shapes: the geometric primitives the phantom is built from.
 *
 * All coordinates are body millimetres: +x toward the patient's right, +y
 * anterior, +z superior (RAS), origin on the midline at the level of the
 * right diaphragm dome. An Ellip is a rotated ellipsoid; a Tube is a
 * polyline with a radius and a lumen radius at every vertex (linearly
 * interpolated along each segment), which models vessels, airways, bowel and
 * ribs alike. */
#ifndef FVLM_SYNTH_SHAPES_H
#define FVLM_SYNTH_SHAPES_H

enum { TUBE_MAX = 72 };

typedef struct Ellip {
    double c[3];        /* centre, mm */
    double ax[3];       /* semi-axes along the local axes, mm */
    double rot[3][3];   /* columns: the local axes as unit vectors in body coordinates */
} Ellip;

typedef struct Tube {
    int n;                  /* vertices */
    double p[TUBE_MAX][3];  /* mm */
    double r[TUBE_MAX];     /* outer radius, mm */
    double lumen[TUBE_MAX]; /* lumen radius, mm (0: solid) */
} Tube;

/* An ellipsoid whose first local axis points along dir (need not be unit);
 * the second axis is the component of `up` orthogonal to it. */
void ellip_axis(Ellip *e, const double c[3], const double dir[3], const double up[3],
                double a0, double a1, double a2);
/* Axis-aligned ellipsoid. */
void ellip_aligned(Ellip *e, double cx, double cy, double cz, double ax, double ay, double az);
/* Normalised squared radius: < 1 inside, 1 on the surface. */
double ellip_q(const Ellip *e, const double p[3]);
/* Axis-aligned bounding box. */
void ellip_bbox(const Ellip *e, double lo[3], double hi[3]);
/* The surface point in direction d (body coordinates) from the centre. */
void ellip_surface(const Ellip *e, const double d[3], double out[3]);
/* Scales the semi-axes about the centre. */
void ellip_scale(Ellip *e, double f0, double f1, double f2);

void tube_add(Tube *t, double x, double y, double z, double r, double lumen);
/* Distance from p to segment s (0 <= s < n-1); *t_out is the position along
 * it in [0, 1]. */
double tube_seg_dist(const Tube *t, int s, const double p[3], double *t_out);
/* Bounding box of segment s including its radius. */
void tube_seg_bbox(const Tube *t, int s, double lo[3], double hi[3]);
/* Bounding box of the whole tube. */
void tube_bbox(const Tube *t, double lo[3], double hi[3]);
/* Length in mm, and the point and vertex interval at arc length `at`. */
double tube_length(const Tube *t);
void tube_point_at(const Tube *t, double at, double out[3], int *seg);
/* A local change of calibre: within `half` mm (arc length) of arc position
 * `at`, radius and lumen blend toward r_new and lumen_new (mm; negative keeps
 * the old value) with a cosine weight that is 1 at the centre, so an
 * aneurysm or a stenosis has a smooth profile. Long segments are split first
 * so the profile has vertices to follow. */
void tube_local(Tube *t, double at, double half, double r_new, double lumen_new);

static inline double v3_dot(const double a[3], const double b[3])
{
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}
void v3_norm(double v[3]);

#endif
