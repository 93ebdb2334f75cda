/* The trainer end to end on a small synthetic corpus (tests/train/fixture.h):
 * the loss falls; a fine-fn model tells normal from abnormal anatomies on
 * studies it never saw (through the public model API that fvlm eval uses);
 * the run, metrics and model rows are written; a checkpoint loads; a run
 * stopped and resumed ends with the same bytes as one never stopped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "fixture.h"
#include "fsutil.h"
#include "log.h"
#include "fvlm_config.h"
#include "model.h"
#include "ontology.h"
#include "safetensors.h"
#include "schemas.h"
#include "test.h"
#include "testdb.h"
#include "trainer.h"

static char g_db[300], g_dir[256];

/* Under AddressSanitizer (-O0, about 10x slower) the suite checks memory
 * safety on the same code paths with a short run; the learning itself is
 * checked by the optimised build. */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

/* tiny preset plus overrides "k=v" */
static int run_train(const char *out, int resume, volatile sig_atomic_t *stop, TrainResult *r,
                     FvErr *e, const char *const *sets, int nsets)
{
    Config c;
    config_init(&c);
    char *text;
    size_t len;
    int rc = -1;
    if (resume) {
        StFile *f;
        if (st_open(&f, out, e))
            goto out;
        rc = config_parse(&c, st_meta(f, "fvlm.config"), out, e);
        st_close(&f);
        if (rc)
            goto out;
    } else {
        if (schema_load("preset_tiny.ini", &text, &len, e))
            goto out;
        rc = config_parse(&c, text, "preset", e);
        free(text);
        if (rc)
            goto out;
    }
    for (int i = 0; i < nsets; i++) {
        char key[128];
        const char *eq = strchr(sets[i], '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - sets[i]), sets[i]);
        if (config_set(&c, key, eq + 1, e))
            goto out;
    }
    char *argv[] = {"train", NULL};
    TrainArgs a = {g_db, out, "tiny", resume, 1, 1, argv, stop};
    rc = train_run(&a, &c, r, e);
out:
    config_free(&c);
    return rc;
}

static double mean_metric(Db *db, int64_t run, const char *name, int first, int n)
{
    sqlite3_stmt *st;
    FvErr e = {0};
    double s = 0;
    int k = 0;
    if (db_prepare(db, &st,
                   "SELECT value FROM metrics WHERE run_id = ? AND name = ? ORDER BY step"
                   " LIMIT ? OFFSET ?", &e) ||
        db_bindf(db, st, &e, "isii", run, name, (int64_t)n, (int64_t)first))
        return NAN;
    while (db_step(db, st, &e) == 1) {
        s += sqlite3_column_double(st, 0);
        k++;
    }
    sqlite3_finalize(st);
    return k ? s / k : NAN;
}

/* Area under the ROC curve of scores against labels (ties count half). */
static double auc(const double *score, const int *label, int n)
{
    double num = 0;
    long np = 0, nn = 0;
    for (int i = 0; i < n; i++) {
        np += label[i];
        nn += !label[i];
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (label[i] && !label[j])
                num += score[i] > score[j] ? 1.0 : score[i] == score[j] ? 0.5 : 0.0;
    return np && nn ? num / ((double)np * nn) : NAN;
}

static void test_fine_fn_training_lowers_the_loss_and_tells_abnormal_from_normal(void)
{
    char out[300];
    snprintf(out, sizeof out, "%s/fine-fn.safetensors", g_dir);
    FvErr e = {0};
    TrainResult r;
    const char *sets[] = {"train.loss=fine-fn", SANITIZED ? "train.epochs=2" : "train.epochs=12",
                          "train.threads=1"};
    CHECK_OK(run_train(out, 0, NULL, &r, &e, sets, 3), &e);
    Db *db;
    CHECK_OK(db_open(&db, g_db, DB_MUST_EXIST, &e), &e);
    double first = mean_metric(db, r.run_id, "loss", 0, 10);
    double last = mean_metric(db, r.run_id, "loss", (int)r.steps - 10, 10);
    printf("fine-fn: mean loss of the first 10 steps %.4f, of the last 10 %.4f\n", first, last);
    CHECK(SANITIZED || last < first - 0.3, "the loss did not fall: %.4f -> %.4f", first, last);
    /* the run's records */
    int64_t v;
    int found;
    CHECK_OK(db_query_int(db, &e, &v, &found, "SELECT count(*) FROM runs WHERE id = ? AND stage"
                          " = 'train' AND status = 'ok'", "i", r.run_id), &e);
    CHECK_EQ_INT(v, 1);
    CHECK_OK(db_query_int(db, &e, &v, &found, "SELECT count(*) FROM metrics WHERE run_id = ? AND "
                          "name = 'val_loss'", "i", r.run_id), &e);
    CHECK_EQ_INT(v, SANITIZED ? 2 : 12);
    CHECK_OK(db_query_int(db, &e, &v, &found, "SELECT count(*) FROM metrics WHERE run_id = ? AND "
                          "name = 'samples_per_s'", "i", r.run_id), &e);
    CHECK_EQ_INT(v, r.steps);
    CHECK_OK(db_query_int(db, &e, &v, &found, "SELECT step FROM models WHERE run_id = ? AND loss"
                          " = 'fine-fn' AND preset = 'tiny' AND length(sha256) = 64", "i",
                          r.run_id), &e);
    CHECK(found && v == r.steps, "no models row for the checkpoint");

    /* zero-shot on studies outside train: the distance to the normal
     * template ranks abnormal anatomies first */
    FvlmModel *m;
    CHECK_OK(model_load(&m, out, &e), &e);
    if (!m) {
        db_close(&db);
        return;
    }
    CHECK_STR(model_loss_mode(m), "fine-fn");
    int D = model_embed_dim(m), NA = model_n_anat(m);
    CHECK_EQ_INT(D, 32);
    float t = model_temperature(m);
    CHECK(t >= 0.001f && t <= 0.5f, "temperature %g outside its clamp", t);
    Ontology *onto;
    CHECK_OK(onto_load(&onto, &e), &e);
    static const char *anat[] = {"lung", "heart", "aorta"};
    float *img = malloc(sizeof(float) * NA * D), txt[3][64];
    unsigned char *valid = malloc((size_t)NA);
    for (int k = 0; k < 3; k++) {
        char s[128];
        snprintf(s, sizeof s, "%s shows no significant abnormalities.", anat[k]);
        CHECK_OK(model_encode_text(m, s, txt[k], &e), &e);
        double n2 = 0;
        for (int d = 0; d < D; d++)
            n2 += (double)txt[k][d] * txt[k][d];
        CHECK_NEAR(n2, 1.0, 1e-4);
    }
    double score[3][400];
    int label[3][400], n[3] = {0, 0, 0};
    sqlite3_stmt *st;
    CHECK_OK(db_prepare(db, &st, "SELECT s.study_id, s.anatomy, s.status FROM samples s JOIN "
                        "studies t ON t.id = s.study_id WHERE t.split != 'train' AND s.whole = 1",
                        &e), &e);
    int64_t cur = -1;
    while (db_step(db, st, &e) == 1) {
        int64_t sid = sqlite3_column_int64(st, 0);
        const char *an = (const char *)sqlite3_column_text(st, 1);
        int k = -1;
        for (int q = 0; q < 3; q++)
            if (strcmp(an, anat[q]) == 0)
                k = q;
        if (k < 0)
            continue;
        if (sid != cur) {
            CHECK_OK(model_encode_study(m, db, sid, img, valid, &e), &e);
            cur = sid;
        }
        int a = onto_anatomy(onto, an);
        CHECK(valid[a], "study %lld: %s has no feature", (long long)sid, an);
        if (!valid[a] || n[k] >= 400)
            continue;
        double dot = 0;
        for (int d = 0; d < D; d++)
            dot += (double)img[(size_t)a * D + d] * txt[k][d];
        score[k][n[k]] = -dot;
        label[k][n[k]] = strcmp((const char *)sqlite3_column_text(st, 2), "abnormal") == 0;
        n[k]++;
    }
    sqlite3_finalize(st);
    CHECK(!valid[onto_anatomy(onto, "trachea")], "trachea (never trained) has a feature");
    for (int k = 0; k < 3; k++) {
        double a = auc(score[k], label[k], n[k]);
        printf("fine-fn zero-shot normal vs abnormal, %s: AUC %.3f over %d held-out samples\n",
               anat[k], a, n[k]);
        CHECK(SANITIZED || a > 0.8, "%s: AUC %.3f, expected > 0.8", anat[k], a);
    }
    free(img);
    free(valid);
    onto_free(&onto);
    model_free(&m);
    db_close(&db);
}

static void test_every_loss_mode_trains_and_the_global_model_encodes_studies(void)
{
    static const char *modes[] = {"global", "fine", "fine-fn-disease"};
    for (int i = 0; i < 3; i++) {
        char out[300], set[64];
        snprintf(out, sizeof out, "%s/%s.safetensors", g_dir, modes[i]);
        snprintf(set, sizeof set, "train.loss=%s", modes[i]);
        const char *sets[] = {set, "train.steps=3"};
        FvErr e = {0};
        TrainResult r;
        CHECK_OK(run_train(out, 0, NULL, &r, &e, sets, 2), &e);
        CHECK(r.step == r.steps && r.steps > 0 && isfinite(r.loss), "%s: %lld of %lld steps, "
              "loss %g", modes[i], (long long)r.step, (long long)r.steps, r.loss);
        FvlmModel *m;
        CHECK_OK(model_load(&m, out, &e), &e);
        if (!m)
            continue;
        CHECK_STR(model_loss_mode(m), modes[i]);
        if (i == 0) {
            /* global: the same whole-CT feature in every valid row */
            Db *db;
            CHECK_OK(db_open(&db, g_db, DB_MUST_EXIST, &e), &e);
            int D = model_embed_dim(m), NA = model_n_anat(m);
            float *f = malloc(sizeof(float) * NA * D);
            unsigned char *valid = malloc((size_t)NA);
            CHECK_OK(model_encode_study(m, db, 1001, f, valid, &e), &e);
            int first = -1, nv = 0;
            for (int a = 0; a < NA; a++) {
                if (!valid[a])
                    continue;
                nv++;
                if (first < 0)
                    first = a;
                else
                    CHECK(memcmp(f + (size_t)a * D, f + (size_t)first * D, sizeof(float) * D) == 0,
                          "global rows differ");
            }
            CHECK_EQ_INT(nv, 5);
            free(f);
            free(valid);
            db_close(&db);
        }
        model_free(&m);
    }
}

static int read_file(const char *path, unsigned char **data, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    struct stat s;
    if (fstat(fileno(f), &s) != 0) {
        fclose(f);
        return -1;
    }
    *n = (size_t)s.st_size;
    *data = malloc(*n ? *n : 1);
    int rc = *data && fread(*data, 1, *n, f) == *n ? 0 : -1;
    fclose(f);
    return rc;
}

static void test_a_stopped_and_resumed_run_ends_with_the_same_bytes(void)
{
    char a[300], b[300];
    snprintf(a, sizeof a, "%s/straight.safetensors", g_dir);
    snprintf(b, sizeof b, "%s/resumed.safetensors", g_dir);
    const char *sets[] = {"train.steps=6", "train.save_every=2"};
    FvErr e = {0};
    TrainResult r;
    CHECK_OK(run_train(a, 0, NULL, &r, &e, sets, 2), &e);
    /* stop after the first step (as SIGINT would), then resume to the end */
    volatile sig_atomic_t stop = 1;
    TrainResult r1, r2;
    CHECK_OK(run_train(b, 0, &stop, &r1, &e, sets, 2), &e);
    CHECK(r1.stopped && r1.step == 1, "the stop flag did not stop after one step");
    CHECK_OK(run_train(b, 1, NULL, &r2, &e, NULL, 0), &e);
    CHECK_EQ_INT(r2.step, r.step);
    unsigned char *da = NULL, *db = NULL;
    size_t na = 0, nb = 0;
    CHECK(read_file(a, &da, &na) == 0 && read_file(b, &db, &nb) == 0, "checkpoints unreadable");
    CHECK(na == nb && da && db && memcmp(da, db, na) == 0,
          "the resumed run's checkpoint differs from the uninterrupted one (%zu vs %zu bytes)",
          na, nb);
    free(da);
    free(db);
    /* a resume that changes the model is refused */
    const char *bad[] = {"model.width=48"};
    CHECK(run_train(b, 1, NULL, &r2, &e, bad, 1) == -1 && strstr(e.msg, "differs"),
          "a changed model resumes: %s", e.msg);
}

/* Rewrites src to dst with one metadata value replaced (or every tensor
 * but `drop`). */
static int rewrite(const char *src, const char *dst, const char *key, const char *value,
                   const char *drop, FvErr *e)
{
    StFile *f;
    if (st_open(&f, src, e))
        return -1;
    StWriter w;
    st_writer_init(&w);
    int rc = 0;
    for (int i = 0; i < f->n && !rc; i++)
        if (!drop || strcmp(f->t[i].name, drop) != 0)
            rc = st_writer_add(&w, f->t[i].name, f->t[i].dtype, f->t[i].ndim, f->t[i].shape,
                               f->t[i].data, e);
    for (int i = 0; i < f->nmeta && !rc; i++)
        if (strcmp(f->meta_keys[i], ST_META_SHA256) != 0) /* st_write records the new one */
            rc = st_writer_meta(&w, f->meta_keys[i],
                                key && strcmp(f->meta_keys[i], key) == 0 ? value : f->meta_vals[i],
                                e);
    rc = rc || st_write(&w, dst, e);
    st_writer_free(&w);
    st_close(&f);
    return rc ? -1 : 0;
}

static void test_a_damaged_checkpoint_is_a_clear_error(void)
{
    char good[300], bad[300];
    snprintf(good, sizeof good, "%s/fine.safetensors", g_dir);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", g_dir);
    FvErr e = {0};
    FvlmModel *m = NULL;
    CHECK_OK(rewrite(good, bad, "fvlm.format", "something-else/9", NULL, &e), &e);
    CHECK(model_load(&m, bad, &e) == -1 && strstr(e.msg, "not an fvlm model"),
          "a foreign format loads: %s", e.msg);
    CHECK_OK(rewrite(good, bad, NULL, NULL, "vis.pos", &e), &e);
    CHECK(model_load(&m, bad, &e) == -1 && strstr(e.msg, "vis.pos"),
          "a missing tensor is not named: %s", e.msg);
    /* the config says width 48, the tensors are 32 wide */
    StFile *f;
    CHECK_OK(st_open(&f, good, &e), &e);
    char net[2048];
    snprintf(net, sizeof net, "%s", f ? st_meta(f, "fvlm.net") : "");
    st_close(&f);
    char *w = strstr(net, "\"width\":32");
    CHECK(w != NULL, "no width in fvlm.net");
    if (w) {
        memcpy(w, "\"width\":48", 10);
        CHECK_OK(rewrite(good, bad, "fvlm.net", net, NULL, &e), &e);
        CHECK(model_load(&m, bad, &e) == -1 && strstr(e.msg, "dimension"),
              "a shape mismatch loads: %s", e.msg);
    }
    CHECK_OK(rewrite(good, bad, "fvlm.vocab", "[\"[PAD]\"]", NULL, &e), &e);
    CHECK(model_load(&m, bad, &e) == -1 && strstr(e.msg, "vocabulary"),
          "a broken vocabulary loads: %s", e.msg);
    FILE *o = fopen(bad, "wb");
    if (o) {
        fputs("not a model", o);
        fclose(o);
    }
    CHECK(model_load(&m, bad, &e) == -1 && strstr(e.msg, bad), "junk loads: %s", e.msg);
    CHECK(m == NULL, "a failed load left a model");
}

/* One flipped bit anywhere in the tensor bytes: the load fails naming the
 * file (the recorded hash), it does not score with a changed weight. */
static void test_a_flipped_bit_in_a_checkpoint_is_found_by_its_hash(void)
{
    char good[300], bad[300];
    snprintf(good, sizeof good, "%s/fine.safetensors", g_dir);
    snprintf(bad, sizeof bad, "%s/flipped.safetensors", g_dir);
    char *data = NULL;
    size_t len = 0;
    FvErr e = {0};
    CHECK_OK(fs_read_file(good, (size_t)1 << 30, &data, &len, &e), &e);
    if (!data)
        return;
    data[len - len / 3] ^= 0x10; /* in the data section: the header is a few KiB at the front */
    FILE *o = fopen(bad, "wb");
    CHECK(o && fwrite(data, 1, len, o) == len && fclose(o) == 0, "cannot write %s", bad);
    free(data);
    FvlmModel *m = NULL;
    CHECK(model_load(&m, bad, &e) == -1 && strstr(e.msg, bad) && strstr(e.msg, "damaged"),
          "a checkpoint with a flipped bit loads: %s", e.msg);
    CHECK(m == NULL, "a failed load left a model");
    CHECK_OK(model_load(&m, good, &e), &e);
    model_free(&m);
}

/* model.anat_hist: on in the presets, off when absent (fVLM's network),
 * anything else a named error; the settings' INI (stored in runs) keeps it. */
static void test_density_summary_setting_is_checked_and_recorded(void)
{
    FvErr e = {0};
    char *text;
    size_t len;
    CHECK_OK(schema_load("preset_small.ini", &text, &len, &e), &e);
    if (!text)
        return;
    const char *values[] = {"on", "off", "maybe"};
    for (int k = 0; k < 3; k++) {
        Config c;
        config_init(&c);
        CHECK_OK(config_parse(&c, text, "preset_small.ini", &e), &e);
        TrainSettings st;
        if (k == 0) {
            CHECK_OK(train_settings(&c, &st, &e), &e);
            CHECK_EQ_INT(st.net.hist, 1);
        }
        CHECK_OK(config_set(&c, "model.anat_hist", values[k], &e), &e);
        int rc = train_settings(&c, &st, &e);
        if (k < 2) {
            CHECK(rc == 0 && st.net.hist == (k == 0), "anat_hist = %s: rc %d hist %d", values[k],
                  rc, st.net.hist);
            Buf b = {0};
            CHECK(train_settings_ini(&st, &b) == 0 && strstr(b.data, k ? "anat_hist = off" :
                                                                         "anat_hist = on"),
                  "the settings' INI lacks anat_hist = %s", values[k]);
            buf_free(&b);
        } else {
            CHECK(rc == -1 && strstr(e.msg, "model.anat_hist = 'maybe'"), "bad value: %s", e.msg);
        }
        config_free(&c);
    }
    free(text);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/fvlm-test-train-%d", (int)getpid());
    snprintf(g_db, sizeof g_db, "%s/corpus.db", g_dir);
    FvErr e = {0};
    if (mkdir(g_dir, 0755) != 0) {
        perror(g_dir);
        return 1;
    }
    FixtureOpts o = {.n_studies = SANITIZED ? 60 : 160, .seed = 5, .p_abnormal = 0.4, .chinese = 1};
    if (fixture_corpus(g_db, &o, &e)) {
        fprintf(stderr, "fixture: %s\n", e.msg);
        return 1;
    }
    log_set_level(LOG_WARN);
    RUN(test_fine_fn_training_lowers_the_loss_and_tells_abnormal_from_normal);
    RUN(test_every_loss_mode_trains_and_the_global_model_encodes_studies);
    RUN(test_a_damaged_checkpoint_is_a_clear_error);
    RUN(test_a_flipped_bit_in_a_checkpoint_is_found_by_its_hash);
    RUN(test_density_summary_setting_is_checked_and_recorded);
    RUN(test_a_stopped_and_resumed_run_ends_with_the_same_bytes);
    test_remove(g_dir);
    return test_finish();
}
