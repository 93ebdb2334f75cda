/* oracle: how much of an anatomy a synthetic change alters on the model's
 * input grid, for calibrating the benchmark.
 *
 * The trainer (train/data.c) crops the CT to the union box of the labelled
 * anatomies plus a margin, samples it trilinearly at the centres of a
 * Z x Y x X grid (the small preset: 32 x 64 x 64, about 12 x 6 x 6 mm on a
 * chest-abdomen scan) and maps the HU window to [0, 1]. The oracle does the
 * same on the clean synthetic scene (before image noise) twice, without and
 * with one task's change, and counts the grid points whose windowed value
 * moved by at least ORACLE_MIN_HU. That count over the anatomy's own grid
 * points is the oracle's score: 0 for a study without the finding, and 0
 * too for one whose change falls between the samples or within the noise.
 * A task whose oracle AUC is low is one no model can learn at that input,
 * whatever its loss. */
#ifndef FVLM_SYNTH_ORACLE_H
#define FVLM_SYNTH_ORACLE_H

#include <stdint.h>

#include "error.h"
#include "ontology.h"
#include "phantom.h"
#include "rng.h"

/* A grid point changed by less than this (HU, after the window) is not
 * seen: about twice the image noise of one input point (the phantom's 10-24
 * HU sd per voxel, averaged by the trilinear sample to ~0.55 of it). */
#define ORACLE_MIN_HU 20.0

enum { ORACLE_MAX_N = 512 };

typedef struct OracleGrid {
    int n[3];                   /* grid points along scene axes x, y, z */
    int i0[3][ORACLE_MAX_N];    /* lower scene neighbour of each point, -1 outside */
    float w1[3][ORACLE_MAX_N];  /* weight of the upper neighbour */
    int nn[3][ORACLE_MAX_N];    /* nearest scene voxel (labels), -1 outside */
    double hu_lo, hu_hi;        /* window, HU */
} OracleGrid;

/* The grid of scene s (scene_stats current) for an input of in_zyx voxels
 * (each 1..ORACLE_MAX_N), a crop margin of margin_zyx mm around the box of
 * all labelled voxels, and the HU window [hu_lo, hu_hi]. Returns -1 when the
 * scene has no labelled voxel. */
int oracle_grid_init(OracleGrid *g, const Scene *s, const int in_zyx[3],
                     const double margin_zyx[3], double hu_lo, double hu_hi);
/* Grid points whose windowed value differs by >= ORACLE_MIN_HU between
 * before and after (two HU volumes of s's shape). */
int64_t oracle_changed(const OracleGrid *g, const Scene *s, const int16_t *before,
                       const int16_t *after);
/* Grid points whose nearest voxel's label l has want[l] set. */
int64_t oracle_points(const OracleGrid *g, const Scene *s, const unsigned char want[256]);

/* changed / (grid points of anatomy a: its own TotalSegmentator ids, or
 * those of its region_of anatomies); 1 when the anatomy has no point. */
double oracle_share(const OracleGrid *g, const Scene *s, const Ontology *o, int a,
                    int64_t changed);

/* Shape changes (made on the Body before rendering: a larger heart, an
 * aneurysm): the Body before and after each task that made one, kept while
 * the tasks are drawn and measured once the grid is known. */
enum { ORACLE_MAX_SHAPED = 24 };
typedef struct OracleShapes {
    int n, task[ORACLE_MAX_SHAPED];
    Body *before[ORACLE_MAX_SHAPED], *after[ORACLE_MAX_SHAPED];
} OracleShapes;

/* Keeps copies of the two bodies of task; -1 (e) when full or out of memory. */
int oracle_shapes_keep(OracleShapes *os, int task, const Body *before, const Body *after,
                       FvErr *e);
/* For each kept task, renders before and after into scratch scenes shaped
 * like `like`, with the same texture stream tex (copied, so only the shape
 * differs), and adds the grid points that moved to changed[task]. -1 (e)
 * when a scene cannot be allocated. */
int oracle_shapes_measure(const OracleShapes *os, const OracleGrid *g, const Scene *like,
                          const Rng *tex, int64_t *changed, FvErr *e);
void oracle_shapes_free(OracleShapes *os);

#endif
