#include "fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "db.h"
#include "fsutil.h"
#include "rng.h"
#include "safetensors.h"

enum { NZ = 24, NY = 40, NX = 40 };
static const double SZ = 3.0, SY = 1.5, SX = 1.5; /* mm */

enum { A_LUNG, A_HEART, A_AORTA, A_ESO, A_TRACHEA, N_ANAT };
static const char *anat_id[N_ANAT] = {"lung", "heart", "aorta", "esophagus", "trachea"};
static const char *anat_zh[N_ANAT] = {"双肺", "心脏", "主动脉", "食管", "气管"};

typedef struct Phantom {
    int16_t ct[NZ * NY * NX];
    uint8_t mask[NZ * NY * NX];
} Phantom;

static double sq(double x) { return x * x; }

/* Inside an ellipsoid centred at (cz, cy, cx) with radii (rz, ry, rx), voxels. */
static int in_ell(int z, int y, int x, double cz, double cy, double cx, double rz, double ry,
                  double rx)
{
    return sq((z - cz) / rz) + sq((y - cy) / ry) + sq((x - cx) / rx) <= 1.0;
}

typedef struct Findings {
    int abn[N_ANAT];
    int dis[N_ANAT][3]; /* disease codes, -1 none */
} Findings;

/* disease codes per anatomy, with their task ids */
static const char *task_id[3][3] = {
    {"lung_opacity", "emphysema", "pleural_effusion"},
    {"cardiomegaly", "pericardial_effusion", NULL},
    {"arterial_wall_calcification", NULL, NULL},
};

static void draw(Phantom *p, const Findings *f, Rng *r, int side)
{
    double heart_r = f->dis[A_HEART][0] == 0 ? 8.0 : 5.8;
    int emph = f->dis[A_LUNG][0] == 1 || f->dis[A_LUNG][1] == 1;
    int opac = f->dis[A_LUNG][0] == 0;
    int effu = f->dis[A_LUNG][0] == 2 || f->dis[A_LUNG][1] == 2;
    int peri = f->dis[A_HEART][0] == 1 || f->dis[A_HEART][1] == 1;
    int calc = f->abn[A_AORTA];
    double ox = side ? 29.0 : 11.0; /* the opacity's lung */
    for (int z = 0; z < NZ; z++)
        for (int y = 0; y < NY; y++)
            for (int x = 0; x < NX; x++) {
                size_t i = ((size_t)z * NY + y) * NX + x;
                double hu = -1000.0;
                int lab = 0;
                if (sq((y - 20.0) / 17.0) + sq((x - 20.0) / 19.0) <= 1.0)
                    hu = 30.0;
                for (int s = 0; s < 2; s++)
                    if (in_ell(z, y, x, 12, 19, s ? 29 : 11, 9.5, 11, 7.5)) {
                        hu = emph ? -990.0 : -840.0;
                        lab = s ? 12 : 10;
                        if (opac && in_ell(z, y, x, 10, 21, ox, 6, 7, 5))
                            hu = 20.0;
                        if (effu && y > 22 && z < 14)
                            hu = 15.0;
                    }
                if (in_ell(z, y, x, 9, 26, 20, heart_r * 0.6, heart_r, heart_r)) {
                    hu = 45.0;
                    lab = 51;
                } else if (peri && in_ell(z, y, x, 9, 26, 20, heart_r * 0.6 + 1.2, heart_r + 2,
                                          heart_r + 2)) {
                    hu = 5.0;
                    lab = 51;
                }
                double da = sqrt(sq(y - 14.0) + sq(x - 23.0));
                if (z >= 3 && z < 21 && da <= 3.0) {
                    hu = calc && da > 1.8 ? 900.0 : 45.0;
                    lab = 52;
                }
                if (z >= 2 && z < 20 && sqrt(sq(y - 13.0) + sq(x - 17.0)) <= 1.6) {
                    hu = 20.0;
                    lab = 15;
                }
                if (z >= 14 && z < 23 && sqrt(sq(y - 20.0) + sq(x - 20.0)) <= 2.0) {
                    hu = -990.0;
                    lab = 16;
                }
                hu += 12.0 * rng_normal(r);
                p->ct[i] = (int16_t)lrint(hu < -1024 ? -1024 : hu);
                p->mask[i] = (uint8_t)lab;
            }
}

static const char *side_en(int side) { return side ? "left" : "right"; }

/* The anatomy's text and disease JSON. */
static void describe(int a, const Findings *f, int zh, int side, Rng *r, char *text, size_t n,
                     char *dis, size_t nd)
{
    snprintf(dis, nd, "[]");
    if (!f->abn[a]) {
        if (zh)
            snprintf(text, n, "%s未见明显异常。", anat_zh[a]);
        else
            snprintf(text, n, "%s shows no significant abnormalities.", anat_id[a]);
        return;
    }
    size_t len = 0, dl = 1;
    text[0] = '\0';
    dis[0] = '[';
    dis[1] = '\0';
    int variant = (int)rng_below(r, 2);
    for (int k = 0; k < 3 && f->dis[a][k] >= 0; k++) {
        int d = f->dis[a][k];
        const char *s = "";
        char buf[200];
        if (a == A_LUNG && d == 0)
            snprintf(buf, sizeof buf, zh ? "%s肺下叶见磨玻璃影。"
                                         : variant ? "patchy ground-glass opacity in the %s lower lobe."
                                                   : "an opacity is seen in the %s lung.",
                     zh ? (side ? "左" : "右") : side_en(side));
        else {
            static const char *en[3][3][2] = {
                {{"", ""}, {"centrilobular emphysema in both lungs.", "emphysematous changes are present."},
                 {"bilateral pleural effusion.", "pleural effusion is seen at the bases."}},
                {{"the heart is enlarged.", "cardiomegaly is noted."},
                 {"small pericardial effusion.", "pericardial fluid is present."}, {"", ""}},
                {{"atherosclerotic calcification of the aortic wall.",
                  "calcified plaques in the aorta."}, {"", ""}, {"", ""}},
            };
            static const char *cn[3][3] = {
                {"", "双肺肺气肿。", "双侧胸腔积液。"},
                {"心脏增大。", "心包少量积液。", ""},
                {"主动脉壁钙化。", "", ""},
            };
            s = zh ? cn[a][d] : en[a][d][variant];
            snprintf(buf, sizeof buf, "%s", s);
        }
        len += (size_t)snprintf(text + len, len < n ? n - len : 0, "%s%s", len ? " " : "", buf);
        dl += (size_t)snprintf(dis + dl, dl < nd ? nd - dl : 0, "%s\"%s\"", k ? "," : "",
                               task_id[a][d]);
    }
    snprintf(dis + dl, dl < nd ? nd - dl : 0, "]");
}

static int write_shard(const char *dir, int64_t id, const Phantom *p, int bad_shape, FvErr *e)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/s%lld.safetensors", dir, (long long)id);
    StWriter w;
    st_writer_init(&w);
    int64_t shape[3] = {bad_shape ? NZ - 4 : NZ, NY, NX};
    int rc = st_writer_add(&w, "ct", ST_I16, 3, shape, p->ct, e) ||
             st_writer_add(&w, "mask", ST_U8, 3, shape, p->mask, e) || st_write(&w, path, e);
    st_writer_free(&w);
    return rc ? -1 : 0;
}

int fixture_corpus(const char *db_path, const FixtureOpts *o, FvErr *e)
{
    unlink(db_path);
    Db *db;
    if (db_open(&db, db_path, 0, e))
        return -1;
    char dir[4200];
    db_tensor_dir(db, dir, sizeof dir);
    if (fs_mkdir_p(dir, e)) {
        db_close(&db);
        return -1;
    }
    Phantom *p = malloc(sizeof *p);
    if (!p) {
        db_close(&db);
        return err_set(e, FV_ENOMEM, "fixture: out of memory");
    }
    int rc = db_begin(db, e);
    Rng r;
    int total = o->n_studies + (o->bad_studies ? 2 : 0);
    for (int i = 0; i < total && !rc; i++) {
        rng_seed(&r, o->seed, (uint64_t)i);
        int64_t id = 1000 + i;
        int bad = i >= o->n_studies ? 1 + (i - o->n_studies) : 0;
        const char *split = o->all_train || i % 10 < 8 ? "train" : i % 10 == 8 ? "valid" : "test";
        Findings f;
        memset(&f, 0, sizeof f);
        for (int a = 0; a < N_ANAT; a++)
            f.dis[a][0] = f.dis[a][1] = f.dis[a][2] = -1;
        static const int nd[3] = {3, 2, 1};
        for (int a = 0; a < 3; a++)
            if (rng_uniform(&r) < o->p_abnormal) {
                f.abn[a] = 1;
                f.dis[a][0] = (int)rng_below(&r, (uint64_t)nd[a]);
                if (nd[a] > 1 && rng_uniform(&r) < 0.25) {
                    int d2 = (int)rng_below(&r, (uint64_t)nd[a]);
                    if (d2 != f.dis[a][0] && !(a == A_LUNG && d2 == 0))
                        f.dis[a][1] = d2;
                }
            }
        int side = (int)rng_below(&r, 2);
        int zh = o->chinese && i % 3 == 2;
        draw(p, &f, &r, side);
        char key[32], vsrc[64];
        snprintf(key, sizeof key, "fixture-%lld", (long long)id);
        snprintf(vsrc, sizeof vsrc, "fixture:s%lld.nii", (long long)id);
        char shard[64];
        snprintf(shard, sizeof shard, "s%lld.safetensors", (long long)id);
        rc = write_shard(dir, id, p, bad == 1, e) ||
             db_run(db, e, "INSERT INTO studies (id, study_key, split, dataset) VALUES (?, ?, ?, 'fixture')",
                    "iss", id, key, split) ||
             db_run(db, e,
                    "INSERT INTO volumes (study_id, sha256, source, src_dims, src_spacing, src_affine,"
                    " src_orient, src_dtype, nz, ny, nx, sz, sy, sx, affine, shard, tensor)"
                    " VALUES (?, ?, ?, '[40,40,24]', '[1.5,1.5,3]', '[]', 'RAS', 'int16', ?, ?, ?,"
                    " ?, ?, ?, '[]', ?, 'ct')",
                    "issiiiddds", id, key, vsrc, (int64_t)NZ, (int64_t)NY, (int64_t)NX, SZ, SY, SX,
                    shard) ||
             db_run(db, e,
                    "INSERT INTO masks (study_id, volume_id, sha256, source, shard, tensor)"
                    " VALUES (?, (SELECT id FROM volumes WHERE study_id = ?), ?, ?, ?, 'mask')",
                    "iisss", id, id, key, vsrc, shard);
        /* regions from the mask */
        int ubox[6] = {NZ, 0, NY, 0, NX, 0};
        Buf report = {0};
        for (int a = 0; a < N_ANAT && !rc; a++) {
            int box[6] = {NZ, 0, NY, 0, NX, 0};
            int64_t vox = 0;
            for (int z = 0; z < NZ; z++)
                for (int y = 0; y < NY; y++)
                    for (int x = 0; x < NX; x++) {
                        int lab = p->mask[((size_t)z * NY + y) * NX + x];
                        int hit = a == A_LUNG ? lab == 10 || lab == 12
                                  : a == A_HEART ? lab == 51
                                  : a == A_AORTA ? lab == 52
                                  : a == A_ESO   ? lab == 15
                                                 : lab == 16;
                        if (!hit)
                            continue;
                        vox++;
                        int c[3] = {z, y, x};
                        for (int k = 0; k < 3; k++) {
                            if (c[k] < box[2 * k])
                                box[2 * k] = c[k];
                            if (c[k] + 1 > box[2 * k + 1])
                                box[2 * k + 1] = c[k] + 1;
                        }
                    }
            if (!vox)
                continue;
            for (int k = 0; k < 3; k++) {
                ubox[2 * k] = box[2 * k] < ubox[2 * k] ? box[2 * k] : ubox[2 * k];
                ubox[2 * k + 1] = box[2 * k + 1] > ubox[2 * k + 1] ? box[2 * k + 1] : ubox[2 * k + 1];
            }
            int whole = box[0] > 0 && box[1] < NZ && box[2] > 0 && box[3] < NY && box[4] > 0 &&
                        box[5] < NX;
            char text[600], dis[200];
            describe(a, &f, zh, side, &r, text, sizeof text, dis, sizeof dis);
            buf_printf(&report, "%s%s", report.len ? (zh ? "" : " ") : "", text);
            rc = db_run(db, e,
                        "INSERT INTO regions (study_id, anatomy, voxels, volume_ml, z0, z1, y0, y1,"
                        " x0, x1, whole) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        "isidiiiiiii", id, anat_id[a], vox, vox * SZ * SY * SX / 1000.0,
                        (int64_t)box[0], (int64_t)box[1], (int64_t)box[2], (int64_t)box[3],
                        (int64_t)box[4], (int64_t)box[5], (int64_t)whole) ||
                 db_run(db, e,
                        "INSERT INTO samples (study_id, anatomy, split, status, text, diseases, whole)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        "isssssi", id, anat_id[a], split, f.abn[a] ? "abnormal" : "normal", text,
                        dis, (int64_t)whole);
        }
        if (bad == 2)
            ubox[1] = NZ + 5; /* a _union box past the grid */
        rc = rc ||
             db_run(db, e,
                    "INSERT INTO regions (study_id, anatomy, voxels, volume_ml, z0, z1, y0, y1, x0,"
                    " x1, whole) VALUES (?, '_union', 0, 0, ?, ?, ?, ?, ?, ?, 1)",
                    "iiiiiii", id, (int64_t)ubox[0], (int64_t)ubox[1], (int64_t)ubox[2],
                    (int64_t)ubox[3], (int64_t)ubox[4], (int64_t)ubox[5]) ||
             db_run(db, e,
                    "INSERT INTO reports (study_id, sha256, source, format, language, encoding, text)"
                    " VALUES (?, ?, ?, 'txt', ?, 'utf-8', ?)",
                    "issss", id, key, vsrc, zh ? "zh" : "en", report.data ? report.data : "");
        buf_free(&report);
    }
    if (rc)
        db_rollback(db);
    else
        rc = db_commit(db, e);
    free(p);
    db_close(&db);
    return rc ? -1 : 0;
}
