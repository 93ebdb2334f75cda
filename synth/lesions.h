/* lesions: what each diagnosis task does to the phantom.
 *
 * schemas/synth_lesions.tsv says, per task, which effects it has (a sphere
 * in the organ, an organ scale factor, a fluid layer, ...) with their size,
 * HU and count ranges; this module draws the numbers and applies them. Shape
 * changes (a larger heart, a dilated aortic segment) are made on the Body
 * before rendering (lesions_add); painted changes (nodules, effusions,
 * calcifications) are made on the rendered Scene (lesions_paint), where they
 * can be placed inside the organ's actual voxels. Every placed change is kept
 * as a Lesion for the truth file and the report. A task whose change cannot
 * be placed in this scan (its organ is cut away, no room) is not present. */
#ifndef FVLM_SYNTH_LESIONS_H
#define FVLM_SYNTH_LESIONS_H

#include "error.h"
#include "ontology.h"
#include "oracle.h"
#include "phantom.h"
#include "rng.h"

typedef enum {
    FX_SPHERE, FX_BLOB, FX_PATCHES, FX_MOSAIC, FX_LOBAR, FX_BAND, FX_STREAK, FX_LAYER, FX_SHELL,
    FX_ASCITES, FX_AIRWAYS, FX_NODES, FX_DEVICE, FX_COLLAPSE, FX_OSTEOPHYTE, FX_CALLUS,
    FX_OUTPOUCH, FX_SCALE, FX_ORGAN_HU, FX_LOBULATE, FX_WALL, FX_TUBE_LOCAL, FX_DUCT, FX_PELVIS,
    FX_COUNT
} EffectKind;

typedef enum { LB_KEEP, LB_ORGAN, LB_CLEAR, LB_CYST } LabelOp;

typedef struct Range {
    double lo, hi;
    int set;
} Range;

typedef struct LesionSpec {
    int finding;            /* index into the ontology's findings */
    EffectKind effect;
    char target[24];
    int alt;                /* 0: always; > 0: one row of the group is drawn */
    Range size, hu_plain, hu_enh, count, param;
    char place[24];
    LabelOp label;
    int line;               /* in the data file, for messages */
} LesionSpec;

typedef struct LesionTable {
    LesionSpec *row;
    int n;
} LesionTable;

/* Loads and checks schemas/synth_lesions.tsv: known task, effect, target and
 * label operation; ranges that parse; every task of the ontology covered. */
int lesion_table_load(LesionTable **out, const Ontology *o, FvErr *e);
int lesion_table_parse(LesionTable **out, const Ontology *o, const char *text, size_t len,
                       const char *name, FvErr *e);
void lesion_table_free(LesionTable **t);
const char *effect_name(EffectKind k);

/* One placed change, in body millimetres. */
typedef struct Lesion {
    int finding;
    double c[3];            /* centre, body mm */
    double size, size2;     /* mm: diameter (or thickness, or organ extent); size2 a second
                               dimension for measurements, 0 when none */
    double hu;
    int ts;                 /* TotalSegmentator id at the site (lobe, kidney, vertebra, rib) */
    char side;              /* 'R', 'L', 'B' (both) or 0 */
    char site[24];          /* segment, station or device kind; "" when none */
} Lesion;

enum { LS_MAX_FX = 160, LS_MAX_LES = 256 };

typedef struct PendingFx {
    const LesionSpec *spec;
    double size, hu, param;
    int count, aux;
} PendingFx;

typedef struct LesionSet {
    const LesionTable *table;
    const Ontology *onto;
    const TissueTable *tt;
    int enhanced;
    double zlo, zhi;        /* scan extent, body mm */
    PendingFx fx[LS_MAX_FX];
    int nfx;
    Lesion les[LS_MAX_LES];
    int nles;
    signed char status[256];/* per finding: -1 not drawn, 0 could not be shown, 1 shown */
    /* the benchmark's oracle (oracle.h), when og is set: lesions_paint
     * copies the HU into snap (the scene's size) before each painted change
     * and adds the input-grid points it moved to changed[finding] */
    const OracleGrid *og;
    int16_t *snap;
    int64_t changed[256];
} LesionSet;

void lesions_init(LesionSet *ls, const LesionTable *t, const Ontology *o, const TissueTable *tt,
                  int enhanced, double zlo, double zhi);
/* Draws and applies the shape changes of a task; its painted changes wait for
 * lesions_paint. Returns 1 when planned, 0 when the task cannot be shown in
 * this scan (nothing was changed). */
int lesions_add(LesionSet *ls, int finding, Body *b, Rng *r);
/* Paints the pending changes (after phantom_render, before phantom_noise)
 * and settles every drawn task's status. */
void lesions_paint(LesionSet *ls, const Body *b, Scene *s, Rng *r);
/* 1 when the task's change is in the image. */
int lesions_shown(const LesionSet *ls, int finding);

#endif
