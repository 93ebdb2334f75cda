/* phantom: a synthetic patient and its CT, rendered on a scan grid.
 *
 * A Body is the anatomy of one patient in body millimetres (shapes.h: RAS,
 * origin on the midline at the right diaphragm dome): the outline, lungs with
 * five lobes, mediastinum, heart, great vessels, airway, abdominal organs,
 * spine, ribs and the other bones, every structure that has a TotalSegmentator
 * id labelled with it. body_init draws it from a patient's random stream;
 * disease effects (lesions.h) then change shapes in place before rendering.
 *
 * A Scene is the rendered grid: voxel (i, j, k) has its centre at
 * org + (i, j, k) * sp in body millimetres, i toward the patient's right, j
 * anterior, k superior; arrays are x fastest (index (k * ny + j) * nx + i).
 * It holds the label map (TotalSegmentator ids, 0 background), the tissue of
 * every voxel and the CT in HU. */
#ifndef FVLM_SYNTH_PHANTOM_H
#define FVLM_SYNTH_PHANTOM_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "rng.h"
#include "shapes.h"

/* Keep in the order of the rows the renderer looks up (names in phantom.c). */
typedef enum {
    T_AIR, T_LUNG, T_FAT, T_FAT_SUB, T_MUSCLE, T_SKIN, T_ARTERY, T_VEIN, T_MYOCARDIUM,
    T_VESSEL_WALL, T_LIVER, T_SPLEEN, T_KIDNEY_CORTEX, T_KIDNEY_MEDULLA, T_KIDNEY_SINUS,
    T_PANCREAS, T_ADRENAL, T_THYROID, T_ESOPHAGUS, T_BOWEL_WALL, T_BOWEL_FLUID, T_GAS, T_STOOL,
    T_BILE, T_URINE, T_BONE_CORTEX, T_BONE_MARROW, T_RIB, T_CARTILAGE, T_DISC, T_CORD, T_CSF,
    T_TABLE_SKIN, T_TABLE_CORE, T_BREAST, T_AIRWAY_WALL, T_FOOD,
    T_LESION, /* painted by a disease effect; its HU is set directly */
    T_COUNT
} Tissue;

typedef uint64_t TisMask;
#define TM(t) ((TisMask)1 << (t))
#define TM_ALL (~(TisMask)0)

typedef struct TissueTable {
    double hu[2][T_COUNT]; /* [enhanced][tissue] */
    double sd[T_COUNT];
} TissueTable;

/* From schemas/synth_tissues.tsv; every tissue must have a row. */
int tissue_table_load(TissueTable *t, FvErr *e);
const char *tissue_name(int t);

/* TotalSegmentator ids used by the phantom. */
enum {
    TS_SPLEEN = 1, TS_KIDNEY_R = 2, TS_KIDNEY_L = 3, TS_GALLBLADDER = 4, TS_LIVER = 5,
    TS_STOMACH = 6, TS_PANCREAS = 7, TS_ADRENAL_R = 8, TS_ADRENAL_L = 9, TS_LUNG_UL = 10,
    TS_LUNG_LL = 11, TS_LUNG_RU = 12, TS_LUNG_RM = 13, TS_LUNG_RL = 14, TS_ESOPHAGUS = 15,
    TS_TRACHEA = 16, TS_THYROID = 17, TS_SMALL_BOWEL = 18, TS_DUODENUM = 19, TS_COLON = 20,
    TS_BLADDER = 21, TS_KIDNEY_CYST_L = 23, TS_KIDNEY_CYST_R = 24, TS_SACRUM = 25, TS_S1 = 26,
    TS_L5 = 27, TS_T12 = 32, TS_T1 = 43, TS_C7 = 44, TS_HEART = 51, TS_AORTA = 52,
    TS_PULM_VEIN = 53, TS_LAA = 61, TS_SVC = 62, TS_IVC = 63, TS_PORTAL = 64, TS_ILIAC_A_L = 65,
    TS_ILIAC_A_R = 66, TS_ILIAC_V_L = 67, TS_ILIAC_V_R = 68, TS_SCAPULA_L = 71,
    TS_SCAPULA_R = 72, TS_CLAVICLE_L = 73, TS_CLAVICLE_R = 74, TS_FEMUR_L = 75, TS_FEMUR_R = 76,
    TS_HIP_L = 77, TS_HIP_R = 78, TS_CORD = 79, TS_AUTOCH_L = 86, TS_AUTOCH_R = 87,
    TS_PSOAS_L = 88, TS_PSOAS_R = 89, TS_RIB_L1 = 92, TS_RIB_R1 = 104, TS_STERNUM = 116,
    TS_COSTAL_CART = 117, TS_NUM = 118
};

enum { BODY_NVERT = 19, BODY_NLV = 48, BODY_NSB = 6 };

typedef struct Vertebra {
    int ts_id;
    char name[4];           /* "T8", "L1", "C7" */
    double z, y;            /* body centre, mm */
    double h, rx, ry;       /* body height and radii, mm */
    double collapse;        /* 1: intact; < 1: anterior height fraction after a compression fracture */
    double hu_add;          /* added to its bone, HU */
} Vertebra;

typedef struct Rib {
    int ts_id;
    Tube bone, cart;        /* cart.n == 0: no costal cartilage */
} Rib;

typedef struct Body {
    int female, age;
    double sx, sy, sz;      /* patient scale factors (width, depth, height) */
    double fat_sub;         /* subcutaneous fat, mm */
    double dome_r, dome_l;  /* diaphragm dome heights, mm */
    double fiss_z0, fiss_slope, fiss_h; /* lung fissures (unscaled mm) */
    /* organs */
    Ellip heart, laa, thyroid[3], liver[2], gb, spleen, kidney[2], ksinus[2], adrenal[2][2],
        bladder, ilium[2], acetab[2], femur[2], sacrum, s1, scap[2], sternum[3], breast[2];
    double heart_chamber;   /* chambers: q below this inside the heart (fraction of radius^2) */
    double gb_wall, bladder_wall; /* mm */
    Tube aorta, iliac_a[2], iliac_v[2], svc, ivc, pa[3], pvein[2], portal[2], trachea,
        bronchus[2], esophagus, stomach, duodenum, pancreas, colon, sbowel[BODY_NSB], psoas[2],
        autoch[2], cord, clav[2];
    Vertebra vert[BODY_NVERT];
    int nvert;
    Rib rib[24];
    Tube lv[BODY_NLV];      /* lung vessels */
    int nlv;
    double stomach_level;   /* fraction of the stomach filled with fluid (rest gas) */
    int stomach_food;
    double colon_gas;       /* fraction of the colon holding gas */
    double liver_lobulation;/* mm of surface nodularity (cirrhosis), 0 normally */
    double lob_phase[6];
    double pancreas_duct;   /* mm radius of a dilated duct, 0 normally */
    double kidney_pelvis[2];/* mm radius of a dilated renal pelvis (hydronephrosis), 0 normally */
} Body;

/* Draws a patient from its own random stream (the same patient gives the same
 * body in every scan). */
void body_init(Body *b, Rng *r);
/* Per-scan changes: breathing (dome height), stomach and bladder filling, gas. */
void body_vary_scan(Body *b, Rng *r);
/* z range (body mm) that a TotalSegmentator id occupies; 0 when the body has
 * no such structure. */
int body_label_zrange(const Body *b, int ts_id, double *z0, double *z1);
/* Body outline at height z: skin half-width and half-depths. */
void body_outline(const Body *b, double z, double *cy, double *a, double *ba, double *bp);
/* The trunk's cavity (inside ribs or abdominal wall) at height z: centre y,
 * half-width and anterior/posterior half-depths, mm. */
void body_cavity(const Body *b, double z, double *cy, double *ca, double *cba, double *cbp);
/* The lung lobe (TS id) at p if p lies in the thoracic cavity's lung space,
 * else 0 (no mediastinum, heart or vessels considered). */
int body_lung_at(const Body *b, const double p[3]);
/* Height of the diaphragm surface below (x, y). */
double body_diaphragm_z(const Body *b, double x, double y);

typedef struct Scene {
    int nx, ny, nz;
    double org[3], sp[3];   /* body mm of voxel (0,0,0); spacing mm */
    uint8_t *lab, *tis;
    int16_t *hu;
    int enhanced;
    const TissueTable *tt;
    /* filled by scene_stats */
    int64_t count[256];
    int lo[256][3], hi[256][3]; /* voxel bounding box per label (inclusive) */
} Scene;

int scene_alloc(Scene *s, int nx, int ny, int nz, const double org[3], const double sp[3],
                FvErr *e);
void scene_free(Scene *s);
static inline size_t scene_idx(const Scene *s, int i, int j, int k)
{
    return ((size_t)k * (size_t)s->ny + (size_t)j) * (size_t)s->nx + (size_t)i;
}
static inline void scene_pos(const Scene *s, int i, int j, int k, double p[3])
{
    p[0] = s->org[0] + i * s->sp[0];
    p[1] = s->org[1] + j * s->sp[1];
    p[2] = s->org[2] + k * s->sp[2];
}
/* Voxel index ranges [i0, i1] covering a body-mm box, clipped to the grid;
 * returns 0 when the box misses the grid. */
int scene_box(const Scene *s, const double lo[3], const double hi[3], int i0[3], int i1[3]);

/* Renders labels and tissues, then HU (tissue values, texture, lung
 * gradient and vessels). r drives the texture only. */
void phantom_render(const Body *b, Scene *s, Rng *r);
/* Gaussian image noise of sd HU, then clipping to [-1024, 3071]. */
void phantom_noise(Scene *s, double sd, Rng *r);
/* Label counts and bounding boxes. */
void scene_stats(Scene *s);

/* Painting, used by the renderer and by disease effects. A label of -1
 * keeps the label; `over` lists the tissues that may be overwritten. */
void paint_ellip(Scene *s, const Ellip *e, int label, int tissue, TisMask over);
void paint_tube(Scene *s, const Tube *t, int label, int wall, int lumen, TisMask over);
/* HU blending with partial-volume edges: inside the shape the voxel's HU
 * moves to `hu` (or by `hu` when add is set); only voxels whose label is in
 * labels[0..nlab) (nlab 0: any) and whose tissue is in `over` change. Voxels
 * more than half inside get tissue T_LESION unless keep_tissue, and label
 * new_label unless it is -1. Returns the number of voxels changed. */
typedef struct HuPaint {
    double hu;
    double amp, period;     /* optional reticular pattern: hu + amp * pattern (period mm) */
    int add, keep_tissue, new_label;
    const int *labels;
    int nlab;
    TisMask over;
} HuPaint;
int64_t paint_hu_ellip(Scene *s, const Ellip *e, const HuPaint *hp);
int64_t paint_hu_tube(Scene *s, const Tube *t, const HuPaint *hp);

#endif
