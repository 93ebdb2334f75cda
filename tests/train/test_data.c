/* The train stage's data: corpus loading (with bad studies recorded and
 * skipped), crop margins, rendering, flips, the whole-inside-crop rule and
 * batch assembly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data.h"
#include "db.h"
#include "fixture.h"
#include "fvlm_config.h"
#include "ontology.h"
#include "run.h"
#include "task_labels.h"
#include "test.h"
#include "testdb.h"

static char g_db[256];
static Ontology *g_onto;

static DataCfg tiny_data(void)
{
    return (DataCfg){.in_z = 16, .in_y = 32, .in_x = 32, .pz = 4, .py = 8, .px = 8, .n_win = 1,
                     .hu_lo = {-1150}, .hu_hi = {350}, .margin_mm = {15, 20, 20}, .flip_p = 0.2,
                     .aug_scale = 0.1, .aug_shift = 0.05, .coverage = 1, .text_max_len = 32};
}

static int model_anat(const TrainSet *c, const char *id)
{
    for (int m = 0; m < c->n_anat; m++)
        if (strcmp(g_onto->anat[c->anat_onto[m]].id, id) == 0)
            return m;
    return -1;
}

static void test_trainset_load_skips_and_records_bad_studies(void)
{
    FvErr e = {0};
    Db *db;
    CHECK_OK(db_open(&db, g_db, DB_MUST_EXIST, &e), &e);
    Run run;
    CHECK_OK(run_begin(&run, db, "train", 0, NULL, NULL, 1, &e), &e);
    TrainSet c;
    CHECK_OK(trainset_load(&c, db, g_onto, LOSS_FINE_FN, 1, NULL, 0, -1, &run, &e), &e);
    CHECK_EQ_INT(c.n_st, 20);
    CHECK_EQ_INT(c.n_skipped, 2);
    CHECK_EQ_INT(c.n_sm, 20 * 5);
    int64_t nerr = 0;
    int found;
    CHECK_OK(db_query_int(db, &e, &nerr, &found, "SELECT count(*) FROM errors WHERE run_id = ?",
                          "i", run.id), &e);
    CHECK_EQ_INT(nerr, 2);
    CHECK_OK(db_query_int(db, &e, &nerr, &found,
                          "SELECT count(*) FROM errors WHERE member = 'study 1020' AND reason "
                          "LIKE '%tensor ct is (20, 40, 40), the database says (24, 40, 40)%'", ""),
             &e);
    CHECK(nerr == 1, "the wrong-shape tensor is not reported with both shapes");
    CHECK_OK(db_query_int(db, &e, &nerr, &found,
                          "SELECT count(*) FROM errors WHERE member = 'study 1021' AND reason "
                          "LIKE '%_union region%outside the grid%'", ""), &e);
    CHECK(nerr == 1, "the region off the grid is not reported");
    /* fine modes: anatomies that are never abnormal carry no loss term */
    CHECK_EQ_INT(c.n_anat, 3);
    CHECK(model_anat(&c, "lung") >= 0 && model_anat(&c, "heart") >= 0 &&
              model_anat(&c, "aorta") >= 0, "lung, heart and aorta are not the model's anatomies");
    CHECK(model_anat(&c, "trachea") < 0, "trachea (never abnormal) is a model anatomy");
    /* samples are ordered by study, then ontology order */
    for (int i = 1; i < c.n_sm; i++)
        CHECK(c.sm[i].study >= c.sm[i - 1].study, "samples out of study order at %d", i);
    /* disease sets parsed into bits */
    int with_dis = 0;
    for (int i = 0; i < c.n_sm; i++)
        for (int w = 0; w < c.dis_words; w++)
            with_dis += c.sm[i].abnormal && c.dis[(size_t)i * c.dis_words + w] != 0;
    CHECK(with_dis > 0, "no abnormal sample has a disease set");
    trainset_free(&c);
    /* global mode: every anatomy with a whole sample, abnormal or not */
    CHECK_OK(trainset_load(&c, db, g_onto, LOSS_GLOBAL, 1, NULL, 0, -1, NULL, &e), &e);
    CHECK_EQ_INT(c.n_anat, 5);
    int reports = 0;
    for (int i = 0; i < c.n_st; i++)
        reports += c.st[i].report >= 0;
    CHECK_EQ_INT(reports, 20);
    trainset_free(&c);
    run_finish(&run, "ok", NULL, &e);
    db_close(&db);
}

static void test_crop_margins_are_millimetres_scaled_to_the_spacing(void)
{
    TrainStudy s = {.sz = 3.0, .sy = 1.5, .sx = 2.0, .box = {10, 20, 5, 30, 7, 9}};
    DataCfg d = tiny_data();
    Crop c;
    data_crop(&s, &d, NULL, 0, &c);
    CHECK_NEAR(c.box[0], 10 - 5.0, 1e-12);       /* 15 mm at 3 mm: 5 slices */
    CHECK_NEAR(c.box[1], 20 + 5.0, 1e-12);
    CHECK_NEAR(c.box[2], 5 - 20.0 / 1.5, 1e-12); /* 20 mm at 1.5 mm */
    CHECK_NEAR(c.box[5], 9 + 10.0, 1e-12);       /* 20 mm at 2 mm */
    CHECK(!c.flip[0] && !c.flip[1] && !c.flip[2], "no flips without augmentation");
    /* augmentation keeps the crop near the plain one and consumes a fixed
     * number of draws */
    Rng r1, r2;
    rng_seed(&r1, 5, 1);
    rng_seed(&r2, 5, 1);
    data_crop(&s, &d, &r1, 1, &c);
    for (int k = 0; k < 9; k++)
        rng_uniform(&r2);
    CHECK(r1.s[0] == r2.s[0] && r1.s[3] == r2.s[3], "augmentation draws a varying count");
    double ext = c.box[1] - c.box[0];
    CHECK(ext >= 20 * 0.9 - 1e-9 && ext <= 20 * 1.1 + 1e-9, "z extent %g outside 20 +- 10 %%", ext);
}

static void test_render_windows_hu_and_flips_image_and_tokens_together(void)
{
    FvErr e = {0};
    Db *db;
    CHECK_OK(db_open(&db, g_db, DB_MUST_EXIST, &e), &e);
    TrainSet c;
    CHECK_OK(trainset_load(&c, db, g_onto, LOSS_FINE, 1, NULL, 0, -1, NULL, &e), &e);
    DataCfg d = tiny_data();
    int Z = 16, Y = 32, X = 32, T = 64, A = c.n_anat;
    float *a = malloc(sizeof(float) * Z * Y * X), *b = malloc(sizeof(float) * Z * Y * X);
    float *ta = malloc(sizeof(float) * A * T), *tb = malloc(sizeof(float) * A * T);
    uint8_t ia[8], ib[8];
    Crop crop;
    data_crop(&c.st[0], &d, NULL, 0, &crop);
    data_render(&c, 0, &d, &crop, a, ta, ia);
    double lo = 1, hi = 0;
    for (int i = 0; i < Z * Y * X; i++) {
        lo = a[i] < lo ? a[i] : lo;
        hi = a[i] > hi ? a[i] : hi;
    }
    CHECK(lo >= 0.0 && hi <= 1.0, "image outside [0, 1]: %g .. %g", lo, hi);
    CHECK(lo < 0.1 && hi > 0.7, "window not used: %g .. %g", lo, hi);
    /* the crop with its margin reaches past the volume: air there */
    CHECK_NEAR(a[0], (-1024.0 + 1150.0) / 1500.0, 0.02);
    int lung = model_anat(&c, "lung"), heart = model_anat(&c, "heart");
    int nl = 0, nh = 0, full = 0, part = 0;
    for (int t = 0; t < T; t++) {
        nl += ta[lung * T + t] > -INFINITY;
        nh += ta[heart * T + t] > -INFINITY;
        CHECK(ta[lung * T + t] <= 0.0f, "a log share above 0: %g", ta[lung * T + t]);
        full += ta[lung * T + t] >= logf(0.5f);
        part += ta[lung * T + t] < 0.0f && ta[lung * T + t] > -INFINITY;
    }
    CHECK(nl > 8 && nl < T, "lung holds %d of %d tokens", nl, T);
    CHECK(nh > 0 && nh < nl, "heart holds %d tokens, lung %d", nh, nl);
    CHECK(full > 0 && part > full, "lung tokens: %d at least half lung, %d in part", full, part);
    /* the binary mask (fVLM's) marks the same tokens, with bias 0 */
    DataCfg bin = d;
    bin.coverage = 0;
    data_render(&c, 0, &bin, &crop, b, tb, ib);
    int same = 1;
    for (int q = 0; q < A * T; q++)
        same &= (ta[q] > -INFINITY) == (tb[q] > -INFINITY) && (tb[q] == 0.0f || tb[q] == -INFINITY);
    CHECK(same, "the binary mask differs from the coverage's support");
    CHECK(ia[lung] && ia[heart], "whole anatomies are not inside the plain crop");
    /* flip x: the image and the token mask mirror together */
    Crop f = crop;
    f.flip[2] = 1;
    data_render(&c, 0, &d, &f, b, tb, ib);
    double worst = 0;
    for (int z = 0; z < Z; z++)
        for (int y = 0; y < Y; y++)
            for (int x = 0; x < X; x++) {
                double dlt = fabs(a[(z * Y + y) * X + x] - b[(z * Y + y) * X + (X - 1 - x)]);
                worst = dlt > worst ? dlt : worst;
            }
    CHECK(worst < 1e-6, "flipped image differs from the mirror by %g", worst);
    int bad = 0;
    for (int m = 0; m < A; m++)
        for (int t = 0; t < T; t++) {
            int tx = t % 4, rest = t - tx;
            bad += ta[m * T + t] != tb[m * T + rest + (3 - tx)];
        }
    CHECK_EQ_INT(bad, 0);
    /* a crop that cuts the lung leaves it out, the heart stays */
    Crop cut = crop;
    int li = (int)(&c.boxes[(size_t)0 * A * 6 + lung * 6] - c.boxes);
    cut.box[4] = c.boxes[li + 4] + 3; /* x0 past the lung's left edge */
    data_render(&c, 0, &d, &cut, b, tb, ib);
    CHECK(!ib[lung], "a lung cut by the crop counts as whole");
    CHECK(ib[heart], "the heart inside the crop is not whole");
    free(a); free(b); free(ta); free(tb);
    trainset_free(&c);
    db_close(&db);
}

static void test_batches_group_rows_by_anatomy_with_an_abnormal_each(void)
{
    FvErr e = {0};
    Db *db;
    CHECK_OK(db_open(&db, g_db, DB_MUST_EXIST, &e), &e);
    TrainSet c;
    CHECK_OK(trainset_load(&c, db, g_onto, LOSS_FINE_FN_DISEASE, 1, NULL, 0, -1, NULL, &e), &e);
    Tokenizer t;
    const char **texts;
    int nt;
    CHECK(trainset_train_texts(&c, &texts, &nt) == 0, "out of memory");
    TokConfig tc = {512, 2, 4};
    CHECK_OK(tok_build(&t, texts, nt, &tc, &e), &e);
    free(texts);
    CHECK_OK(trainset_tokenize(&c, &t, 32, &e), &e);
    NetCfg nc = {.loss = LOSS_FINE_FN_DISEASE, .in_c = 1, .in_z = 16, .in_y = 32, .in_x = 32, .pz = 4,
                 .py = 8, .px = 8, .width = 8, .depth = 1, .heads = 1, .mlp = 8, .keep = {1},
                 .n_keep = 1, .pool_heads = 1, .embed = 8, .t_width = 8, .t_depth = 1,
                 .t_heads = 1, .t_mlp = 8, .t_max_len = 32, .vocab = t.n, .n_anat = c.n_anat,
                 .temp_init = 0.07f};
    BatchBuf bb;
    CHECK_OK(batch_alloc(&bb, &c, &nc, 12, &e), &e);
    int idx[12];
    for (int i = 0; i < 12; i++)
        idx[i] = i;
    DataCfg d = tiny_data();
    Rng r;
    rng_seed(&r, 3, 1);
    batch_build(&bb, &c, &d, idx, 12, 1, &r);
    const NetBatch *b = &bb.nb;
    CHECK(b->ng >= 1, "no group in a batch of 12 studies");
    for (int i = 1; i < b->nr; i++)
        CHECK(b->rb[i] >= b->rb[i - 1], "rows out of study order");
    for (int g = 0; g < b->ng; g++) {
        int n = b->goff[g + 1] - b->goff[g], abn = 0, an = b->ra[b->grow[b->goff[g]]];
        for (int i = b->goff[g]; i < b->goff[g + 1]; i++) {
            abn += b->rabn[b->grow[i]];
            CHECK(b->ra[b->grow[i]] == an, "group %d mixes anatomies", g);
        }
        CHECK(n >= 2 && abn >= 1, "group %d: %d rows, %d abnormal", g, n, abn);
    }
    /* identical texts share one encoding */
    int shared = 0;
    for (int i = 0; i < b->nr; i++)
        for (int j = i + 1; j < b->nr; j++)
            if (b->ra[i] == b->ra[j] && !b->rabn[i] && !b->rabn[j])
                shared += b->rtext[i] == b->rtext[j];
    CHECK(shared > 0, "normal rows of one anatomy do not share their template text");
    CHECK(b->nt < b->nr, "texts are not deduplicated (%d texts, %d rows)", b->nt, b->nr);
    for (int s = 0; s < b->nt; s++)
        CHECK(b->tids[b->toff[s]] == TOK_CLS && b->tids[b->toff[s + 1] - 1] == TOK_SEP,
              "text %d is not [CLS] ... [SEP]", s);
    NetCap cap = trainset_capacity(&c, 12);
    CHECK(b->toff[b->nt] <= cap.text_tokens, "batch tokens above the capacity bound");
    batch_free(&bb);
    tok_free(&t);
    trainset_free(&c);
    db_close(&db);
}

/* The supervised baseline's labels: a parsed report makes every task
 * negative unless a label row says otherwise; uncertain and unparsed are
 * left out (-1); an audit value counts; a batch row carries only its own
 * anatomy's tasks, and an anatomy with a single row forms a group. */
static void test_supervised_labels_and_groups_of_one(void)
{
    FvErr e = {0};
    Db *db;
    CHECK_OK(db_open(&db, g_db, DB_MUST_EXIST, &e), &e);
    TrainSet c;
    CHECK_OK(trainset_load(&c, db, g_onto, LOSS_SUPERVISED, 1, NULL, 0, -1, NULL, &e), &e);
    if (c.n_st < 2) {
        CHECK(0, "fixture has %d studies", c.n_st);
        trainset_free(&c);
        db_close(&db);
        return;
    }
    int64_t a = c.st[0].id, b = c.st[1].id;
    int nod = onto_finding(g_onto, "lung_nodule"), emp = onto_finding(g_onto, "emphysema");
    int car = onto_finding(g_onto, "cardiomegaly");
    char sql[512];
    /* study a: its report parsed (one sentence); nodule uncertain, emphysema
     * positive by audit; study b: no parsed report, a stray parsed label */
    snprintf(sql, sizeof sql,
             "INSERT INTO sentences (report_id, study_id, idx, section, start, end, text, norm) "
             "SELECT id, study_id, 999, 'findings', 0, 1, 'x', 'x' FROM reports "
             "WHERE study_id = %lld LIMIT 1", (long long)a);
    CHECK_OK(db_exec(db, sql, &e), &e);
    snprintf(sql, sizeof sql,
             "INSERT OR REPLACE INTO labels (study_id, task, value, source) VALUES "
             "(%lld, 'lung_nodule', -1, 'parsed'), (%lld, 'emphysema', 1, 'audit'), "
             "(%lld, 'cardiomegaly', 1, 'parsed')",
             (long long)a, (long long)a, (long long)b);
    CHECK_OK(db_exec(db, sql, &e), &e);
    CHECK_OK(task_labels_load(&c, db, &e), &e);
    CHECK(c.n_tasks == g_onto->n_find, "%d tasks, findings.tsv has %d", c.n_tasks,
          g_onto->n_find);
    const int8_t *la = c.task_label, *lb = c.task_label + (size_t)c.n_tasks;
    CHECK(la[nod] == -1, "an uncertain label is not left out: %d", la[nod]);
    CHECK(la[emp] == 1, "an audited positive reads %d", la[emp]);
    CHECK(la[car] == 0, "an unmentioned task of a parsed report is not negative: %d", la[car]);
    CHECK(lb[car] == 1, "a label row of a study without sentences reads %d", lb[car]);
    CHECK(lb[emp] == -1, "a study without a parsed report gets a label: %d", lb[emp]);
    /* rows: only their anatomy's tasks */
    int lung = -1;
    for (int m = 0; m < c.n_anat; m++)
        if (!strcmp(g_onto->anat[c.anat_onto[m]].id, "lung"))
            lung = m;
    int s0 = -1;
    for (int j = c.st[0].s0; j < c.st[0].s0 + c.st[0].ns; j++)
        if (c.sm[j].anat == lung)
            s0 = j;
    if (lung >= 0 && s0 >= 0) {
        int8_t y[512];
        int ra = lung, cs = s0;
        task_labels_rows(&c, &ra, &cs, 1, y);
        CHECK(y[emp] == 1 && y[nod] == -1, "the lung row misses its labels");
        CHECK(y[car] == -1, "the lung row carries the heart's task");
    }
    /* one study alone: each anatomy with a row is a group of one */
    int rb[64], rra[64], rcs[64], an[64], ab[64], goff[66], grow[64], ng = 0, nc = 0;
    for (int j = c.st[0].s0; j < c.st[0].s0 + c.st[0].ns && nc < 64; j++)
        if (c.sm[j].anat >= 0) {
            rb[nc] = 0;
            rra[nc] = c.sm[j].anat;
            rcs[nc] = j;
            nc++;
        }
    int nr = batch_groups(&c, rb, rra, rcs, nc, an, ab, goff, grow, &ng);
    CHECK(nc > 0 && nr == nc && ng == nc, "supervised: %d candidates, %d rows in %d groups", nc,
          nr, ng);
    db_exec(db, "DELETE FROM sentences WHERE idx = 999", &e);
    trainset_free(&c);
    db_close(&db);
}

static void test_signature_changes_with_the_training_data(void)
{
    FvErr e = {0};
    Db *db;
    CHECK_OK(db_open(&db, g_db, 0, &e), &e);
    TrainSet c;
    char h1[65], h2[65], h3[65];
    CHECK_OK(trainset_load(&c, db, g_onto, LOSS_FINE, 1, NULL, 0, -1, NULL, &e), &e);
    trainset_signature(&c, h1);
    trainset_free(&c);
    CHECK_OK(trainset_load(&c, db, g_onto, LOSS_FINE, 1, NULL, 0, -1, NULL, &e), &e);
    trainset_signature(&c, h2);
    trainset_free(&c);
    CHECK_STR(h1, h2);
    CHECK_OK(db_run(db, &e, "UPDATE samples SET text = text || ' ' WHERE study_id = 1003 AND "
                    "anatomy = 'lung'", ""), &e);
    CHECK_OK(trainset_load(&c, db, g_onto, LOSS_FINE, 1, NULL, 0, -1, NULL, &e), &e);
    trainset_signature(&c, h3);
    trainset_free(&c);
    CHECK(strcmp(h1, h3) != 0, "a changed text leaves the signature unchanged");
    db_close(&db);
}

static void test_one_study_loads_for_inference_and_a_missing_one_is_an_error(void)
{
    FvErr e = {0};
    Db *db;
    CHECK_OK(db_open(&db, g_db, DB_MUST_EXIST, &e), &e);
    char *ids[] = {"lung", "heart"};
    TrainSet c;
    CHECK_OK(trainset_load(&c, db, g_onto, LOSS_FINE, 1, ids, 2, 1005, NULL, &e), &e);
    CHECK_EQ_INT(c.n_st, 1);
    CHECK_EQ_INT(c.n_anat, 2);
    CHECK(c.boxes[0] >= 0 && c.boxes[6] >= 0, "regions of the study not loaded");
    trainset_free(&c);
    CHECK(trainset_load(&c, db, g_onto, LOSS_FINE, 1, ids, 2, 1020, NULL, &e) == -1 &&
              strstr(e.msg, "study 1020"), "a broken study loads for inference: %s", e.msg);
    CHECK(trainset_load(&c, db, g_onto, LOSS_FINE, 1, ids, 2, 99, NULL, &e) == -1 &&
              e.code == FV_ENOTFOUND, "a missing study is not 'not found': %s", e.msg);
    db_close(&db);
}

static void test_an_anatomy_without_a_mask_takes_its_region_of_anatomies(void)
{
    FvErr e = {0};
    Db *db;
    CHECK_OK(db_open(&db, g_db, DB_MUST_EXIST, &e), &e);
    /* mediastinum: region_of heart, aorta, esophagus, trachea (anatomy.tsv) */
    char *ids[] = {"heart", "aorta", "esophagus", "trachea", "mediastinum"};
    TrainSet c;
    CHECK_OK(trainset_load(&c, db, g_onto, LOSS_FINE, 1, ids, 5, 1004, NULL, &e), &e);
    DataCfg d = tiny_data();
    d.coverage = 0;
    float img[16 * 32 * 32], tb[5 * 64];
    uint8_t in[5];
    Crop crop;
    data_crop(&c.st[0], &d, NULL, 0, &crop);
    data_render(&c, 0, &d, &crop, img, tb, in);
    int med = -1, bad = 0, n = 0;
    for (int m = 0; m < c.n_anat; m++)
        if (strcmp(g_onto->anat[c.anat_onto[m]].id, "mediastinum") == 0)
            med = m;
    CHECK(med >= 0, "mediastinum is not a model anatomy");
    for (int t = 0; t < 64 && med >= 0; t++) {
        int any = 0;
        for (int m = 0; m < c.n_anat; m++)
            any |= m != med && tb[m * 64 + t] > -INFINITY;
        bad += any != (tb[med * 64 + t] > -INFINITY);
        n += any;
    }
    CHECK(n > 0 && bad == 0, "mediastinum tokens differ from the union of its parts in %d of 64 "
          "(the parts hold %d)", bad, n);
    trainset_free(&c);
    db_close(&db);
}

/* Several HU windows: one channel each, every channel the same HU mapped through its own window. */
static void test_render_makes_one_channel_per_hu_window(void)
{
    FvErr e = {0};
    Db *db;
    CHECK_OK(db_open(&db, g_db, DB_MUST_EXIST, &e), &e);
    TrainSet c;
    CHECK_OK(trainset_load(&c, db, g_onto, LOSS_FINE, 1, NULL, 0, -1, NULL, &e), &e);
    DataCfg one = tiny_data(), two = tiny_data();
    two.n_win = 2;
    two.hu_lo[1] = -150;
    two.hu_hi[1] = 250;
    enum { V = 16 * 32 * 32 };
    int A = c.n_anat;
    float *a = malloc(sizeof(float) * V), *b = malloc(sizeof(float) * 2 * V);
    float *ta = malloc(sizeof(float) * A * 64), *tb = malloc(sizeof(float) * A * 64);
    uint8_t ia[8], ib[8];
    Crop crop;
    data_crop(&c.st[0], &one, NULL, 0, &crop);
    data_render(&c, 0, &one, &crop, a, ta, ia);
    data_render(&c, 0, &two, &crop, b, tb, ib);
    double worst0 = 0, worst1 = 0;
    int soft = 0;
    for (int i = 0; i < V; i++) {
        double d0 = fabs(a[i] - b[i]);
        worst0 = d0 > worst0 ? d0 : worst0;
        if (a[i] <= 0.0f || a[i] >= 1.0f)
            continue;
        double hu = -1150.0 + 1500.0 * a[i], u = (hu + 150.0) / 400.0;
        u = u < 0 ? 0 : u > 1 ? 1 : u;
        double d1 = fabs(u - b[V + i]);
        worst1 = d1 > worst1 ? d1 : worst1;
        soft += b[V + i] > 0.0f && b[V + i] < 1.0f;
    }
    CHECK(worst0 < 1e-6, "channel 0 differs from the one-window image by %g", worst0);
    CHECK(worst1 < 1e-4, "channel 1 differs from its window of the same HU by %g", worst1);
    CHECK(soft > 100, "only %d voxels inside the soft-tissue window", soft);
    CHECK(!memcmp(ta, tb, sizeof(float) * A * 64), "the token mask depends on the windows");
    free(a); free(b); free(ta); free(tb);
    trainset_free(&c);
    db_close(&db);
}

/* data.whole = crop (fVLM's rule): a sample whose anatomy touches the scan's border may train
 * (the crop check decides); data.whole = scan keeps align's `whole` flag. */
static void test_crop_rule_lets_anatomies_cut_by_the_scan_border_train(void)
{
    FvErr e = {0};
    Db *db;
    CHECK_OK(db_open(&db, g_db, 0, &e), &e);
    /* the lung of one training study touches the scan's border */
    CHECK_OK(db_run(db, &e, "UPDATE samples SET whole = 0 WHERE study_id = 1003 AND anatomy = "
                    "'lung'", ""), &e);
    TrainSet c;
    CHECK_OK(trainset_load(&c, db, g_onto, LOSS_FINE, 1, NULL, 0, -1, NULL, &e), &e);
    int scan_cut = 0, scan_anat = c.n_anat;
    for (int i = 0; i < c.n_sm; i++)
        scan_cut += !c.sm[i].whole;
    trainset_free(&c);
    CHECK_OK(trainset_load(&c, db, g_onto, LOSS_FINE, 0, NULL, 0, -1, NULL, &e), &e);
    int crop_cut = 0;
    for (int i = 0; i < c.n_sm; i++)
        crop_cut += !c.sm[i].whole;
    CHECK(scan_cut > 0, "the scan rule lets every sample train");
    CHECK_EQ_INT(crop_cut, 0);
    CHECK(c.n_anat >= scan_anat, "the crop rule has %d model anatomies, the scan rule %d",
          c.n_anat, scan_anat);
    trainset_free(&c);
    CHECK_OK(db_run(db, &e, "UPDATE samples SET whole = 1 WHERE study_id = 1003 AND anatomy = "
                    "'lung'", ""), &e);
    db_close(&db);
}

/* The density summary on a hand-made study: a 2 x 4 x 4 anatomy, half at
 * 50 HU and half at 200 HU, in air; identity sampling (crop = grid). */
static void test_density_summary_counts_hu_bins_and_volume(void)
{
    enum { NZ = 4, NY = 8, NX = 8 };
    static int16_t ct[NZ * NY * NX];
    static uint8_t mask[NZ * NY * NX];
    for (int i = 0; i < NZ * NY * NX; i++)
        ct[i] = -1024;
    for (int z = 1; z < 3; z++)
        for (int y = 2; y < 6; y++)
            for (int x = 2; x < 6; x++) {
                int i = (z * NY + y) * NX + x;
                mask[i] = 1;
                ct[i] = x < 4 ? 50 : 200;
            }
    /* model anatomy 0 is label 1; anatomy 1 is label 2, absent */
    static int lab_off[257], lab_anat[2] = {0, 1};
    for (int id = 0; id <= 256; id++)
        lab_off[id] = id <= 1 ? 0 : id == 2 ? 1 : 2;
    TrainStudy st = {.nz = NZ, .ny = NY, .nx = NX, .sz = 2.0, .sy = 1.0, .sx = 1.0, .ct = ct,
                     .mask = mask};
    /* region boxes: anatomy 0's is one voxel wider than the mask in y and x
     * and spans z; anatomy 1 has none */
    static int boxes[12] = {0, NZ, 1, 7, 1, 7, -1, -1, -1, -1, -1, -1};
    TrainSet c = {.st = &st, .n_st = 1, .n_anat = 2, .lab_off = lab_off, .lab_anat = lab_anat,
                .boxes = boxes};
    DataCfg d = tiny_data();
    d.in_z = NZ;
    d.in_y = NY;
    d.in_x = NX;
    Crop crop = {.box = {0, NZ, 0, NY, 0, NX}};
    float h[3 * NET_HIST_DIM], flipped[3 * NET_HIST_DIM];
    data_hist(&c, 0, &d, &crop, h);
    /* 50 HU lies in bin 15 (45..60), 200 HU in bin 20 (200..400), air in bin 0 */
    for (int b = 0; b < NET_HIST_BINS; b++)
        CHECK_NEAR(h[b], b == 15 || b == 20 ? sqrt(NET_HIST_BINS * 0.5) : 0.0, 1e-5);
    double ml = 32 * 2.0 * 1e-3; /* 32 voxels of 2 mm^3 */
    CHECK_NEAR(h[NET_HIST_BINS], log10(1.0 + ml), 1e-6);
    /* surroundings: 4 x 6 x 6 - 32 = 112 voxels of the box, all air */
    const float *sur = h + NET_HIST_HALF;
    for (int b = 0; b < NET_HIST_BINS; b++)
        CHECK_NEAR(sur[b], b == 0 ? sqrt(NET_HIST_BINS) : 0.0, 1e-5);
    CHECK_NEAR(sur[NET_HIST_BINS], log10(1.0 + 112 * 2.0 * 1e-3), 1e-6);
    for (int k = 0; k < NET_HIST_DIM; k++)
        CHECK_NEAR(h[NET_HIST_DIM + k], 0.0, 0.0); /* absent anatomy: zeros */
    const float *w = h + 2 * NET_HIST_DIM; /* the whole crop: 224 of 256 voxels are air */
    CHECK_NEAR(w[0], sqrt(NET_HIST_BINS * 224.0 / 256.0), 1e-5);
    CHECK_NEAR(w[15], sqrt(NET_HIST_BINS * 16.0 / 256.0), 1e-5);
    CHECK_NEAR(w[NET_HIST_BINS], log10(1.0 + ml), 1e-6); /* the body: voxels above -500 HU */
    for (int k = NET_HIST_HALF; k < NET_HIST_DIM; k++)
        CHECK_NEAR(w[k], 0.0, 0.0); /* the whole crop has no surroundings */
    /* a flip moves voxels, not the summary */
    crop.flip[2] = 1;
    data_hist(&c, 0, &d, &crop, flipped);
    CHECK(memcmp(h, flipped, sizeof h) == 0, "a flip changes the density summary");
    /* a crop twice as wide samples every other voxel of twice the size */
    Crop wide = {.box = {0, NZ, 0, NY, -NX / 2.0, NX * 1.5}};
    data_hist(&c, 0, &d, &wide, h);
    CHECK_NEAR(h[NET_HIST_BINS], log10(1.0 + 16 * 4.0 * 1e-3), 1e-6);
}

int main(void)
{
    snprintf(g_db, sizeof g_db, "/tmp/fvlm-test-data-%d.db", (int)getpid());
    FvErr e = {0};
    FixtureOpts o = {.n_studies = 20, .seed = 11, .p_abnormal = 0.5, .chinese = 1, .bad_studies = 1};
    if (fixture_corpus(g_db, &o, &e) || onto_load(&g_onto, &e)) {
        fprintf(stderr, "fixture: %s\n", e.msg);
        return 1;
    }
    RUN(test_trainset_load_skips_and_records_bad_studies);
    RUN(test_crop_margins_are_millimetres_scaled_to_the_spacing);
    RUN(test_render_windows_hu_and_flips_image_and_tokens_together);
    RUN(test_batches_group_rows_by_anatomy_with_an_abnormal_each);
    RUN(test_signature_changes_with_the_training_data);
    RUN(test_one_study_loads_for_inference_and_a_missing_one_is_an_error);
    RUN(test_an_anatomy_without_a_mask_takes_its_region_of_anatomies);
    RUN(test_render_makes_one_channel_per_hu_window);
    RUN(test_crop_rule_lets_anatomies_cut_by_the_scan_border_train);
    RUN(test_density_summary_counts_hu_bins_and_volume);
    RUN(test_supervised_labels_and_groups_of_one);
    onto_free(&g_onto);
    test_remove_db(g_db);
    return test_finish();
}
