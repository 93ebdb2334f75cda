/* bench_align: how fast `fvlm align` is, beside what it cannot beat.
 *
 * Builds a synthetic corpus in a temporary folder (default 500 studies:
 * parsed English reports of 14 sentences with mentions and findings, and
 * phantom TotalSegmentator masks of 96 x 192 x 192 voxels, 16 distinct ones
 * shared round-robin so the shard stays small while every study's mask is
 * scanned), then measures in one run:
 *   - reading the masks alone: open the shard (mmap) and touch every byte
 *     (a 64-bit sum): the memory-bandwidth limit of any region extraction;
 *   - region extraction (regions_scan + regions_merge) over the same masks,
 *     in MB/s of mask data and as a ratio to the read-alone figure;
 *   - the plain voxel-by-voxel reference loop, for the speed-up of the
 *     run-length scan;
 *   - the whole stage (align_run: text, regions, database writes in one
 *     transaction per study), in studies/s.
 * Run it with nice on a shared machine:  nice build/bench/bench_align
 * Options: --studies N, --dims Z,Y,X, --distinct K, --keep (leave the corpus).
 * With --db CORPUS.db it measures the same over an existing corpus instead
 * (one made by fvlm synth, ingest and parse, say), re-aligning it. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "align.h"
#include "anatomy_meta.h"
#include "config.h"
#include "db.h"
#include "fsutil.h"
#include "log.h"
#include "ontology.h"
#include "regions.h"
#include "rng.h"
#include "run.h"
#include "safetensors.h"

static int die(const FvErr *e)
{
    fprintf(stderr, "bench_align: %s\n", e->msg);
    return 1;
}

/* Fills an axis-aligned ellipsoid (centre and radii in voxels, (z, y, x))
 * with label v, leaving other labels in place (organs do not overlap). */
static void ellipsoid(uint8_t *m, const int64_t d[3], int v, double cz, double cy, double cx,
                      double rz, double ry, double rx)
{
    int64_t z0 = (int64_t)(cz - rz), z1 = (int64_t)(cz + rz) + 1;
    int64_t y0 = (int64_t)(cy - ry), y1 = (int64_t)(cy + ry) + 1;
    int64_t x0 = (int64_t)(cx - rx), x1 = (int64_t)(cx + rx) + 1;
    for (int64_t z = z0 < 0 ? 0 : z0; z < z1 && z < d[0]; z++)
        for (int64_t y = y0 < 0 ? 0 : y0; y < y1 && y < d[1]; y++)
            for (int64_t x = x0 < 0 ? 0 : x0; x < x1 && x < d[2]; x++) {
                double a = (z - cz) / rz, b = (y - cy) / ry, c = (x - cx) / rx;
                uint8_t *p = &m[(z * d[1] + y) * d[2] + x];
                if (a * a + b * b + c * c <= 1.0 && *p == 0)
                    *p = (uint8_t)v;
            }
}

/* A chest-and-upper-abdomen phantom: z = 0 is inferior (RAS), y = 0
 * posterior, x = 0 the patient's left... the layout only needs to be
 * plausible, not anatomical. */
static void phantom(uint8_t *m, const int64_t d[3], Rng *r)
{
    memset(m, 0, (size_t)(d[0] * d[1] * d[2]));
    double Z = (double)d[0], Y = (double)d[1], X = (double)d[2];
    double j = 0.04;
#define J(v) ((v) * (1.0 + rng_range(r, -j, j)))
    ellipsoid(m, d, 16, J(0.85 * Z), J(0.55 * Y), J(0.50 * X), 0.12 * Z, 0.04 * Y, 0.04 * X);
    ellipsoid(m, d, 51, J(0.50 * Z), J(0.60 * Y), J(0.55 * X), 0.14 * Z, 0.16 * Y, 0.15 * X);
    ellipsoid(m, d, 52, J(0.55 * Z), J(0.45 * Y), J(0.45 * X), 0.35 * Z, 0.03 * Y, 0.03 * X);
    ellipsoid(m, d, 15, J(0.55 * Z), J(0.40 * Y), J(0.52 * X), 0.35 * Z, 0.02 * Y, 0.02 * X);
    ellipsoid(m, d, 12, J(0.75 * Z), J(0.50 * Y), J(0.28 * X), 0.15 * Z, 0.20 * Y, 0.16 * X);
    ellipsoid(m, d, 13, J(0.55 * Z), J(0.55 * Y), J(0.28 * X), 0.10 * Z, 0.20 * Y, 0.16 * X);
    ellipsoid(m, d, 14, J(0.45 * Z), J(0.45 * Y), J(0.28 * X), 0.15 * Z, 0.22 * Y, 0.17 * X);
    ellipsoid(m, d, 10, J(0.75 * Z), J(0.50 * Y), J(0.72 * X), 0.15 * Z, 0.20 * Y, 0.16 * X);
    ellipsoid(m, d, 11, J(0.48 * Z), J(0.45 * Y), J(0.72 * X), 0.18 * Z, 0.22 * Y, 0.17 * X);
    ellipsoid(m, d, 5, J(0.15 * Z), J(0.50 * Y), J(0.32 * X), 0.15 * Z, 0.25 * Y, 0.22 * X);
    ellipsoid(m, d, 1, J(0.15 * Z), J(0.35 * Y), J(0.75 * X), 0.08 * Z, 0.10 * Y, 0.07 * X);
    ellipsoid(m, d, 6, J(0.18 * Z), J(0.60 * Y), J(0.65 * X), 0.08 * Z, 0.10 * Y, 0.10 * X);
    ellipsoid(m, d, 2, J(0.06 * Z), J(0.25 * Y), J(0.35 * X), 0.06 * Z, 0.06 * Y, 0.05 * X);
    ellipsoid(m, d, 3, J(0.06 * Z), J(0.25 * Y), J(0.65 * X), 0.06 * Z, 0.06 * Y, 0.05 * X);
    for (int k = 0; k < 12; k++) /* thoracic vertebrae T12..T1 stacked upward */
        ellipsoid(m, d, 32 + k, (k + 0.5) * Z / 12, 0.20 * Y, 0.50 * X, 0.4 * Z / 12, 0.05 * Y,
                  0.05 * X);
#undef J
}

/* Sentences of a synthetic report: text, section, mention ('' none), finding
 * task ('' none) and its polarity. */
typedef struct SynthSentence {
    const char *text, *section, *mention, *task;
    int polarity;
} SynthSentence;

static const SynthSentence sentences[] = {
    {"Trachea and both main bronchi are open.", "findings", "trachea", "", 0},
    {"Heart contour and size are normal.", "findings", "heart", "", 0},
    {"No pericardial effusion.", "findings", "", "pericardial_effusion", 0},
    {"Thoracic aorta diameter is normal.", "findings", "aorta", "", 0},
    {"Calcific atheroma plaques in the aortic wall.", "findings", "aorta", "arterial_wall_calcification", 1},
    {"Esophageal calibre is normal.", "findings", "esophagus", "", 0},
    {"A 5 mm nodule in the right lower lobe.", "findings", "lung", "lung_nodule", 1},
    {"It is stable.", "findings", "", "", 0},
    {"No pleural effusion.", "findings", "", "pleural_effusion", 0},
    {"Upper abdominal organs included in the sections are normal.", "findings", "group:upper_abdomen", "", 0},
    {"Bone structures are natural.", "findings", "group:bones", "", 0},
    {"Right lower lobe nodule.", "impression", "lung", "lung_nodule", 1},
    {"Aortic atherosclerosis.", "impression", "aorta", "arterial_wall_calcification", 1},
    {"Clinical correlation is recommended.", "impression", "", "", 0},
};
enum { NSENT = sizeof sentences / sizeof sentences[0] };

static int build_corpus(const Ontology *o, const char *dbpath, const char *shard_path,
                        int n_studies, int distinct, const int64_t d[3], FvErr *e)
{
    size_t nvox = (size_t)(d[0] * d[1] * d[2]);
    uint8_t *masks = malloc(nvox * (size_t)distinct);
    if (!masks)
        return err_set(e, FV_ENOMEM, "bench: out of memory for %d masks", distinct);
    Rng r;
    rng_seed(&r, 2025, 0);
    StWriter w;
    st_writer_init(&w);
    int rc = 0;
    for (int k = 0; k < distinct && rc == 0; k++) {
        char name[32];
        snprintf(name, sizeof name, "mask%d", k);
        phantom(masks + nvox * (size_t)k, d, &r);
        rc = st_writer_add(&w, name, ST_U8, 3, d, masks + nvox * (size_t)k, e);
    }
    if (rc == 0)
        rc = st_write(&w, shard_path, e);
    st_writer_free(&w);
    free(masks);
    if (rc)
        return -1;

    Db *db;
    if (db_open(&db, dbpath, 0, e))
        return -1;
    const char *shard = strrchr(shard_path, '/') + 1;
    rc = db_begin(db, e);
    for (int s = 1; s <= n_studies && rc == 0; s++) {
        char key[32], mask[32];
        snprintf(key, sizeof key, "study%06d", s);
        snprintf(mask, sizeof mask, "mask%d", (s - 1) % distinct);
        rc = db_run(db, e, "INSERT INTO studies (id, study_key, split) VALUES (?, ?, ?)", "iss",
                    (int64_t)s, key, s % 10 == 0 ? "valid" : "train");
        if (rc == 0)
            rc = db_run(db, e, "INSERT INTO reports (id, study_id, sha256, source, format, language,"
                               " encoding, text) VALUES (?, ?, ?, 'bench', 'txt', 'en', 'utf-8', '')",
                        "iis", (int64_t)s, (int64_t)s, key);
        if (rc == 0)
            rc = db_run(db, e, "INSERT INTO volumes (id, study_id, sha256, source, src_dims,"
                               " src_spacing, src_affine, src_orient, src_dtype, nz, ny, nx, sz, sy,"
                               " sx, affine, shard, tensor) VALUES (?, ?, ?, 'bench', '[]', '[]', '[]',"
                               " 'RAS', 'int16', ?, ?, ?, 3, 1.5, 1.5, '[]', 'none', 'none')",
                        "iisiii", (int64_t)s, (int64_t)s, key, d[0], d[1], d[2]);
        if (rc == 0)
            rc = db_run(db, e, "INSERT INTO masks (study_id, volume_id, sha256, source, shard, tensor)"
                               " VALUES (?, ?, ?, 'bench', ?, ?)",
                        "iisss", (int64_t)s, (int64_t)s, key, shard, mask);
        for (int i = 0; i < NSENT && rc == 0; i++) {
            const SynthSentence *t = &sentences[i];
            int64_t sid = (int64_t)s * 100 + i;
            rc = db_run(db, e, "INSERT INTO sentences (id, report_id, study_id, idx, section, start,"
                               " end, text, norm) VALUES (?, ?, ?, ?, ?, 0, 0, ?, '')",
                        "iiiiss", sid, (int64_t)s, (int64_t)s, (int64_t)i, t->section, t->text);
            if (rc == 0 && t->mention[0])
                rc = db_run(db, e, "INSERT INTO mentions (sentence_id, anatomy, start, end, term, rule)"
                                   " VALUES (?, ?, 0, 0, '', 'bench')", "is", sid, t->mention);
            if (rc == 0 && t->task[0])
                rc = db_run(db, e, "INSERT INTO findings (sentence_id, study_id, task, anatomy,"
                                   " polarity, start, end, term, rule) VALUES (?, ?, ?, ?, ?, 0, 0,"
                                   " '', 'bench')", "iissi", sid, (int64_t)s, t->task,
                            o->anat[o->find[onto_finding(o, t->task)].anatomy].id,
                            (int64_t)t->polarity);
        }
    }
    if (rc == 0)
        rc = db_commit(db, e);
    else
        db_rollback(db);
    db_close(&db);
    return rc;
}

/* A study's mask as the corpus records it. */
typedef struct MaskRef {
    char shard[1100];
    char tensor[128];
    int64_t d[3];      /* nz, ny, nx */
    double sp[3];      /* mm, (z, y, x) */
} MaskRef;

static int mask_list(const char *dbpath, MaskRef **out, int *n, FvErr *e)
{
    Db *db;
    if (db_open(&db, dbpath, DB_READONLY | DB_MUST_EXIST, e))
        return -1;
    char tdir[1024];
    db_tensor_dir(db, tdir, sizeof tdir);
    sqlite3_stmt *st;
    int rc = db_prepare(db, &st, "SELECT m.shard, m.tensor, v.nz, v.ny, v.nx, v.sz, v.sy, v.sx"
                                 " FROM masks m JOIN volumes v ON v.id = m.volume_id ORDER BY m.study_id", e);
    int cap = 0, r = 0;
    *out = NULL;
    *n = 0;
    while (rc == 0 && (r = db_step(db, st, e)) == 1) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 256;
            MaskRef *p = realloc(*out, (size_t)cap * sizeof *p);
            if (!p) {
                rc = err_set(e, FV_ENOMEM, "bench: out of memory");
                break;
            }
            *out = p;
        }
        MaskRef *m = &(*out)[(*n)++];
        snprintf(m->shard, sizeof m->shard, "%s/%s", tdir, (const char *)sqlite3_column_text(st, 0));
        snprintf(m->tensor, sizeof m->tensor, "%s", (const char *)sqlite3_column_text(st, 1));
        for (int i = 0; i < 3; i++) {
            m->d[i] = sqlite3_column_int64(st, 2 + i);
            m->sp[i] = sqlite3_column_double(st, 5 + i);
        }
    }
    if (r < 0)
        rc = -1;
    if (rc == 0)
        sqlite3_finalize(st);
    db_close(&db);
    return rc;
}

/* Opens m's shard unless it is the one open, and finds its tensor. */
static int mask_get(StFile **f, char *open_path, const MaskRef *m, const StTensor **t, FvErr *e)
{
    if (!*f || strcmp(open_path, m->shard)) {
        st_close(f);
        if (st_open(f, m->shard, e))
            return -1;
        snprintf(open_path, 1100, "%s", m->shard);
    }
    return st_get_checked(*f, m->tensor, ST_U8, 3, t, e);
}

static int time_align(const char *dbpath, const Ontology *o, const AnatomyMetaTable *meta,
                      AlignCounts *c, double *seconds, FvErr *e)
{
    Db *db;
    if (db_open(&db, dbpath, DB_MUST_EXIST, e))
        return -1;
    Config cfg;
    config_init(&cfg);
    AlignOptions opt;
    Run run;
    char *rargv[] = {"bench_align"};
    memset(c, 0, sizeof *c);
    int rc = align_options_from_config(o, &cfg, &opt, e);
    if (rc == 0)
        rc = run_begin(&run, db, "align", 1, rargv, NULL, -1, e);
    double t0 = now_seconds();
    if (rc == 0)
        rc = align_run(db, &run, o, meta, &opt, c, e);
    *seconds = now_seconds() - t0;
    if (rc == 0)
        rc = run_finish(&run, "ok", NULL, e);
    if (rc == 0)
        align_options_free(&opt);
    config_free(&cfg);
    db_close(&db);
    return rc;
}

int main(int argc, char **argv)
{
    int n_studies = 500, distinct = 16, keep = 0;
    int64_t d[3] = {96, 192, 192};
    const char *existing = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--studies") && i + 1 < argc)
            n_studies = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--distinct") && i + 1 < argc)
            distinct = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dims") && i + 1 < argc) {
            long long z, y, x;
            if (sscanf(argv[++i], "%lld,%lld,%lld", &z, &y, &x) != 3)
                return fprintf(stderr, "bench_align: --dims Z,Y,X\n"), 2;
            d[0] = z, d[1] = y, d[2] = x;
        } else if (!strcmp(argv[i], "--db") && i + 1 < argc)
            existing = argv[++i];
        else if (!strcmp(argv[i], "--keep"))
            keep = 1;
        else {
            fprintf(stderr, "usage: bench_align [--studies N] [--dims Z,Y,X] [--distinct K] [--keep]\n"
                            "       bench_align --db CORPUS.db   (an aligned or parsed corpus: re-aligns it)\n");
            return 2;
        }
    }
    if (n_studies < 1 || distinct < 1 || d[0] < 1 || d[1] < 1 || d[2] < 1 ||
        d[0] * d[1] * d[2] > (int64_t)1 << 30)
        return fprintf(stderr, "bench_align: bad sizes\n"), 2;
    log_set_level(LOG_WARN);
    FvErr e = {0};
    Ontology *o;
    AnatomyMetaTable meta;
    if (onto_load(&o, &e) || anatomy_meta_load(o, &meta, &e))
        return die(&e);
    char dir[256] = "", dbpath[1024];
    if (existing) {
        snprintf(dbpath, sizeof dbpath, "%s", existing);
    } else {
        char tdir[1100], shard[1200];
        snprintf(dir, sizeof dir, "/tmp/fvlm-bench-align.%ld", (long)getpid());
        snprintf(dbpath, sizeof dbpath, "%s/corpus.db", dir);
        snprintf(tdir, sizeof tdir, "%s.tensors", dbpath);
        snprintf(shard, sizeof shard, "%s/masks.safetensors", tdir);
        if (fs_mkdir_p(tdir, &e))
            return die(&e);
        double t0 = now_seconds();
        if (build_corpus(o, dbpath, shard, n_studies, distinct, d, &e))
            return die(&e);
        printf("bench_align: built %d studies, %d sentences each, masks %lldx%lldx%lld uint8 "
               "(%d distinct, shared round-robin) in %.1f s\n",
               n_studies, (int)NSENT, (long long)d[0], (long long)d[1], (long long)d[2], distinct,
               now_seconds() - t0);
    }
    MaskRef *masks;
    int n_masks;
    if (mask_list(dbpath, &masks, &n_masks, &e))
        return die(&e);
    int64_t n_studies_db;
    {
        Db *db;
        int found;
        if (db_open(&db, dbpath, DB_READONLY | DB_MUST_EXIST, &e) ||
            db_query_int(db, &e, &n_studies_db, &found, "SELECT count(*) FROM studies", ""))
            return die(&e);
        db_close(&db);
    }
    double bytes = 0;
    for (int i = 0; i < n_masks; i++)
        bytes += (double)(masks[i].d[0] * masks[i].d[1] * masks[i].d[2]);
    double mb = bytes / 1e6;
    printf("corpus %s: %lld studies, %d masks, %.0f MB of mask data (%.2f MB per mask)\n", dbpath,
           (long long)n_studies_db, n_masks, mb, n_masks ? mb / n_masks : 0.0);

    /* 1. The masks alone: open each shard (mmap), touch every byte. */
    StFile *f = NULL;
    char open_path[1100] = "";
    uint64_t sum = 0;
    double t0 = now_seconds();
    for (int s = 0; s < n_masks; s++) {
        const StTensor *t;
        if (mask_get(&f, open_path, &masks[s], &t, &e))
            return die(&e);
        const uint8_t *p = t->data;
        size_t n8 = t->nbytes / 8;
        for (size_t i = 0; i < n8; i++) {
            uint64_t w;
            memcpy(&w, p + 8 * i, 8);
            sum += w;
        }
        for (size_t i = n8 * 8; i < t->nbytes; i++)
            sum += p[i];
    }
    double t_read = now_seconds() - t0;
    st_close(&f);
    open_path[0] = '\0';

    /* 2. Region extraction over the same masks, and 3. its voxel loop reference. */
    static LabelStats st;
    Region *reg = calloc((size_t)o->n_anat, sizeof *reg), uni;
    double margin[3] = {15, 20, 20};
    int64_t check = 0;
    t0 = now_seconds();
    for (int s = 0; s < n_masks; s++) {
        const StTensor *t;
        if (mask_get(&f, open_path, &masks[s], &t, &e))
            return die(&e);
        regions_scan(t->data, masks[s].d[0], masks[s].d[1], masks[s].d[2], &st);
        regions_merge(o, &st, masks[s].d, masks[s].sp, margin, reg, &uni);
        check += uni.voxels;
    }
    double t_regions = now_seconds() - t0;
    st_close(&f);
    open_path[0] = '\0';
    int n_ref = n_masks < 50 ? n_masks : 50;
    double ref_bytes = 0;
    t0 = now_seconds();
    for (int s = 0; s < n_ref; s++) {
        const StTensor *t;
        if (mask_get(&f, open_path, &masks[s], &t, &e))
            return die(&e);
        regions_scan_ref(t->data, masks[s].d[0], masks[s].d[1], masks[s].d[2], &st);
        ref_bytes += (double)t->nbytes;
        check += st.count[0];
    }
    double t_ref = now_seconds() - t0;
    st_close(&f);

    /* 4. The whole stage, then a re-run (it replaces every row: the steady state). */
    AlignCounts c, c2;
    double t_align, t_realign;
    if (time_align(dbpath, o, &meta, &c, &t_align, &e) || time_align(dbpath, o, &meta, &c2, &t_realign, &e))
        return die(&e);

    double read_mbs = mb / t_read, reg_mbs = mb / t_regions, ref_mbs = ref_bytes / 1e6 / t_ref;
    printf("\n%-56s %10s %8s\n", "", "MB/s", "ratio");
    printf("%-56s %10.0f %8s\n", "read masks alone (mmap, touch every byte)", read_mbs, "1.00");
    printf("%-56s %10.0f %8.2f\n", "region extraction (run-length scan + merge)", reg_mbs,
           reg_mbs / read_mbs);
    printf("%-56s %10.0f %8.2f\n", "region extraction, voxel-by-voxel reference loop", ref_mbs,
           ref_mbs / read_mbs);
    printf("\n%-56s %10s %8s\n", "", "studies/s", "s");
    printf("%-56s %10.0f %8.2f\n", "fvlm align, first run (text + regions + db writes)",
           c.studies / t_align, t_align);
    printf("%-56s %10.0f %8.2f\n", "fvlm align, re-run (replaces every row)", c2.studies / t_realign,
           t_realign);
    printf("%-56s %10.0f %8.2f\n", "  of which region extraction inside align",
           c.t_regions > 0 ? c.studies / c.t_regions : 0.0, c.t_regions);
    printf("\ncounts: %lld studies, %lld links, %lld samples, %lld regions, %lld flags (checksum %llu/%lld)\n",
           (long long)c.studies, (long long)c.links, (long long)c.samples, (long long)c.regions,
           (long long)c.flags, (unsigned long long)(sum & 0xffff), (long long)(check & 0xffff));
    free(masks);
    free(reg);
    anatomy_meta_free(&meta);
    onto_free(&o);
    if (dir[0] && !keep) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_align: could not remove %s\n", dir);
    } else if (dir[0]) {
        printf("corpus kept in %s\n", dir);
    }
    return 0;
}
