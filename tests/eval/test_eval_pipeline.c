/* The eval pipeline on a small corpus built here: prompts, labels files
 * (fvlm synth's truth file, a CT-RATE labels CSV, the labels table), the
 * zero-shot and probe evaluations fed by an encoder whose features are known,
 * the eval_results rows and the errors recorded for bad input. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "deid.h"
#include "eval.h"
#include "fsutil.h"
#include "fvlm_config.h"
#include "prompts.h"
#include "eval_report.h"
#include "rng.h"
#include "run.h"
#include "test.h"
#include "testdb.h"
#include "truth.h"

static const char *KEY = "test-deid-key-0123";
static char g_dir[256];

/* ---- a corpus: 40 train and 30 test studies, reports in en and zh ---- */

enum { N_TRAIN = 40, N_TEST = 30, N_STUDIES = N_TRAIN + N_TEST };

/* The tasks the truth file labels; each gets two feature axes (present,
 * absent) in the test encoder. */
static const char *TASKS[] = {"emphysema", "lung_nodule", "cardiomegaly", "hiatal_hernia"};
enum { NT = 4, DIM = 2 * NT };

static int truth_label(int study, int k)
{
    if (k == 3)
        return 0;                       /* hiatal hernia: no positive in the corpus */
    if (k == 1 && study % 10 == 4)
        return -1;                      /* some nodules are uncertain */
    return (study * (k + 3)) % 7 < 2 + k % 2;
}

static void source_id(int study, char *out, size_t n) { snprintf(out, n, "S%03d", study); }

static Db *make_corpus(const char *name, int64_t *parse_run)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    Db *db = NULL;
    FvErr e = {0};
    CHECK_OK(db_open(&db, path, 0, &e), &e);
    if (!db)
        return NULL;
    Run run;
    char *argv[] = {"fvlm", "parse"};
    CHECK_OK(run_begin(&run, db, "parse", 2, argv, NULL, -1, &e), &e);
    *parse_run = run.id;
    for (int s = 0; s < N_STUDIES; s++) {
        char sid[16], key[65];
        source_id(s, sid, sizeof sid);
        deid_pseudonym(KEY, "study", sid, key, &e);
        CHECK_OK(db_run(db, &e, "INSERT INTO studies (id, study_key, split) VALUES (?, ?, ?)",
                        "iss", (int64_t)(s + 1), key, s < N_TRAIN ? "train" : "test"), &e);
        CHECK_OK(db_run(db, &e,
                        "INSERT INTO reports (study_id, sha256, source, format, language, encoding,"
                        " text, parsed_run) VALUES (?, 'x', 'r.txt', 'txt', ?, 'utf-8', 'text', ?)",
                        "isi", (int64_t)(s + 1), s % 3 == 0 ? "zh" : "en", run.id), &e);
    }
    CHECK_OK(run_finish(&run, "ok", NULL, &e), &e);
    return db;
}

static char *write_truth_file(void)
{
    Buf b = {0};
    buf_puts(&b, "study_id");
    for (int k = 0; k < NT; k++)
        buf_printf(&b, ",%s", TASKS[k]);
    buf_puts(&b, "\r\n");
    for (int s = 0; s < N_STUDIES; s++) {
        char sid[16];
        source_id(s, sid, sizeof sid);
        buf_puts(&b, sid);
        for (int k = 0; k < NT; k++)
            buf_printf(&b, ",%d", truth_label(s, k));
        buf_puts(&b, "\r\n");
    }
    buf_puts(&b, "S999,1,0,0,0\r\n");     /* not in the corpus */
    buf_puts(&b, "S001,1,0\r\n");         /* wrong number of fields */
    static char path[512];
    snprintf(path, sizeof path, "%s/labels.csv", g_dir);
    FvErr e = {0};
    CHECK_OK(fs_write_atomic(path, b.data, b.len, &e), &e);
    buf_free(&b);
    return path;
}

/* ---- an encoder whose features carry the truth plus noise ---- */

typedef struct TestEnc {
    const Ontology *o;
    const Prompts *p;
    int fail_study;          /* encode_study fails for this id */
    double noise;
} TestEnc;

static int task_index(const Ontology *o, int f)
{
    for (int k = 0; k < NT; k++)
        if (onto_finding(o, TASKS[k]) == f)
            return k;
    return -1;
}

static void normalise(float *v, int d)
{
    double s = 0;
    for (int i = 0; i < d; i++)
        s += (double)v[i] * v[i];
    s = sqrt(s);
    for (int i = 0; i < d; i++)
        v[i] = (float)(v[i] / s);
}

static int enc_text(void *ctx, const char *text, float *out, FvErr *e)
{
    TestEnc *t = ctx;
    memset(out, 0, DIM * sizeof *out);
    for (int f = 0; f < t->o->n_find; f++) {
        int k = task_index(t->o, f);
        for (int l = 0; l < PROMPT_LANG_N; l++)
            for (int s = 0; s < PROMPT_NSTYLES; s++) {
                const PromptPair *pp = prompts_get(t->p, f, (PromptLang)l, (PromptStyle)s);
                if (!strcmp(text, pp->pos) || !strcmp(text, pp->neg)) {
                    /* Prompts of other tasks point elsewhere, equally. */
                    if (k < 0) {
                        for (int i = 0; i < DIM; i++)
                            out[i] = 1;
                    } else
                        out[2 * k + (strcmp(text, pp->pos) ? 1 : 0)] = 1;
                    normalise(out, DIM);
                    return 0;
                }
            }
    }
    return err_set(e, FV_EUSAGE, "test encoder: unknown text '%s'", text);
}

static int enc_study(void *ctx, Db *db, int64_t study_id, float *out, unsigned char *valid,
                     FvErr *e)
{
    TestEnc *t = ctx;
    if (study_id == t->fail_study)
        return err_set(e, FV_EIO, "tensor shard missing");
    int s = (int)study_id - 1;
    Rng r;
    rng_seed(&r, 99, (uint64_t)s);
    for (int a = 0; a < t->o->n_anat; a++) {
        float *v = out + (size_t)a * DIM;
        int any = 0;
        for (int i = 0; i < DIM; i++)
            v[i] = (float)(t->noise * rng_normal(&r));
        for (int k = 0; k < NT; k++) {
            if (t->o->find[onto_finding(t->o, TASKS[k])].anatomy != a)
                continue;
            int y = truth_label(s, k);
            v[2 * k + (y == 1 ? 0 : 1)] += 1.0f;
            any = 1;
        }
        valid[a] = (unsigned char)any;
        if (any)
            normalise(v, DIM);
    }
    return 0;
}

static EvalEncoder test_encoder(TestEnc *t)
{
    EvalEncoder enc = {t, DIM, 0.07, "fine", enc_study, enc_text};
    return enc;
}

static const TaskResult *result_of(const EvalResults *r, const char *task)
{
    for (int i = 0; i < r->n_tasks; i++)
        if (!strcmp(r->tasks[i].task, task))
            return &r->tasks[i];
    return NULL;
}

/* ---- tests ---- */

static void test_prompts_cover_every_task_in_both_styles_and_languages(void)
{
    Ontology *o;
    Prompts *p;
    FvErr e = {0};
    CHECK_OK(onto_load(&o, &e), &e);
    CHECK_OK(prompts_load(&p, o, &e), &e);
    if (!o || !p)
        return;
    int k = onto_finding(o, "emphysema");
    const PromptPair *pp = prompts_get(p, k, PROMPT_LANG_EN, PROMPT_FVLM);
    CHECK_STR(pp->neg, "Not Emphysema.");
    CHECK_STR(pp->pos, "Emphysema.");
    pp = prompts_get(p, k, PROMPT_LANG_EN, PROMPT_CTCLIP);
    CHECK_STR(pp->neg, "Emphysema is not present.");
    CHECK_STR(pp->pos, "Emphysema is present.");
    pp = prompts_get(p, k, PROMPT_LANG_ZH, PROMPT_FVLM);
    CHECK_STR(pp->neg, "无肺气肿。");
    CHECK_STR(pp->pos, "肺气肿。");
    pp = prompts_get(p, k, PROMPT_LANG_ZH, PROMPT_CTCLIP);
    CHECK_STR(pp->neg, "未见肺气肿。");
    CHECK_STR(pp->pos, "可见肺气肿。");
    /* CT-RATE's labels use fVLM's own prompt pairs. */
    pp = prompts_get(p, onto_finding(o, "atelectasis"), PROMPT_LANG_EN, PROMPT_FVLM);
    CHECK_STR(pp->pos, "Atelectatic.");
    pp = prompts_get(p, onto_finding(o, "pulmonary_fibrotic_sequela"), PROMPT_LANG_EN, PROMPT_FVLM);
    CHECK_STR(pp->neg, "Not Pulmonary fibrotic.");
    /* normal: the anatomy's normal sentence (the text train learns normals
     * with) against fVLM's positive, in each language */
    pp = prompts_get(p, k, PROMPT_LANG_EN, PROMPT_NORMAL);
    CHECK_STR(pp->neg, "Lung shows no significant abnormalities.");
    CHECK_STR(pp->pos, "Emphysema.");
    pp = prompts_get(p, k, PROMPT_LANG_ZH, PROMPT_NORMAL);
    CHECK_STR(pp->neg, "肺未见明显异常。");
    CHECK_STR(pp->pos, "肺气肿。");
    pp = prompts_get(p, onto_finding(o, "fatty_liver"), PROMPT_LANG_EN, PROMPT_NORMAL);
    CHECK_STR(pp->neg, "Liver shows no significant abnormalities.");
    CHECK_EQ_INT(prompt_style_parse("normal"), PROMPT_NORMAL);
    prompts_free(&p);
    onto_free(&o);
}

static void test_prompts_reject_unknown_tasks_and_gaps(void)
{
    Ontology *o;
    Prompts *p = NULL;
    FvErr e = {0};
    CHECK_OK(onto_load(&o, &e), &e);
    if (!o)
        return;
    CHECK(prompts_parse(&p, o, "task\tlang\tstyle\tnegative\tpositive\nno_such\ten\tfvlm\ta\tb\n",
                        "p.tsv", &e) == -1 && strstr(e.msg, "p.tsv:2: task 'no_such'"),
          "unknown task: %s", e.msg);
    CHECK(prompts_parse(&p, o, "task\tlang\tstyle\tnegative\tpositive\nemphysema\tfr\tfvlm\ta\tb\n",
                        "p.tsv", &e) == -1 && strstr(e.msg, "language 'fr'"),
          "unknown language: %s", e.msg);
    CHECK(prompts_parse(&p, o, "task\tlang\tstyle\tnegative\tpositive\nemphysema\ten\tfvlm\ta\ta\n",
                        "p.tsv", &e) == -1 && strstr(e.msg, "differ"),
          "equal prompts: %s", e.msg);
    CHECK(prompts_parse(&p, o, "task\tlang\tstyle\tnegative\tpositive\nemphysema\ten\tfvlm\ta\tb\n",
                        "p.tsv", &e) == -1 && strstr(e.msg, "has no"),
          "missing rows: %s", e.msg);
    CHECK(prompts_parse(&p, o, "task\tlang\tstyle\tnegative\tpositive\nemphysema\ten\tnormal\ta\tb\n",
                        "p.tsv", &e) == -1 && strstr(e.msg, "made from the ontology"),
          "a normal row in the file: %s", e.msg);
    CHECK(p == NULL, "a failed parse returned prompts");
    onto_free(&o);
}

static void test_ctrate_volume_names_map_to_studies(void)
{
    char out[64];
    CHECK(truth_ctrate_study("valid_3_a_1.nii.gz", out, sizeof out) == 0, "valid_3_a_1");
    CHECK_STR(out, "valid_3_a");
    CHECK(truth_ctrate_study("train_12_b_2", out, sizeof out) == 0, "no extension");
    CHECK_STR(out, "train_12_b");
    CHECK(truth_ctrate_study("valid_3_a.nii.gz", out, sizeof out) == -1, "three parts accepted");
    CHECK(truth_ctrate_study("valid__a_1.nii.gz", out, sizeof out) == -1, "empty part accepted");
}

static void test_truth_file_joins_by_pseudonym_and_records_bad_rows(void)
{
    int64_t prun;
    Db *db = make_corpus("truth.db", &prun);
    Ontology *o;
    FvErr e = {0};
    CHECK_OK(onto_load(&o, &e), &e);
    if (!db || !o)
        return;
    char *path = write_truth_file();
    Run run;
    char *argv[] = {"fvlm", "eval"};
    CHECK_OK(run_begin(&run, db, "eval", 2, argv, NULL, -1, &e), &e);
    Truth t;
    CHECK_OK(truth_from_file(&t, db, o, path, KEY, &run, &e), &e);
    CHECK(t.kind == TRUTH_FILE, "kind %d", t.kind);
    CHECK_EQ_INT(t.n_studies, N_STUDIES);
    CHECK_EQ_INT(t.rows_not_in_corpus, 1);
    CHECK_EQ_INT(t.rows_bad, 1);
    CHECK_EQ_INT(truth_get(&t, 5, onto_finding(o, "lung_nodule")), -1);
    CHECK_EQ_INT(truth_get(&t, 1, onto_finding(o, "emphysema")), truth_label(0, 0));
    CHECK_EQ_INT(truth_get(&t, 1, onto_finding(o, "pneumothorax")), TRUTH_NONE);
    CHECK(t.has_task[onto_finding(o, "cardiomegaly")] && !t.has_task[onto_finding(o, "ascites")],
          "has_task does not follow the header");
    int64_t nerr;
    CHECK_OK(db_query_int(db, &e, &nerr, NULL,
                          "SELECT count(*) FROM errors WHERE run_id = ? AND reason LIKE '%fields%'",
                          "i", run.id), &e);
    CHECK_EQ_INT(nerr, 1);
    truth_free(&t);
    /* Without the key there is no join. */
    CHECK(truth_from_file(&t, db, o, path, NULL, &run, &e) == -1 && strstr(e.msg, "key"),
          "no key: %s", e.msg);
    /* The corpus took KEY's fingerprint at the first join: another key is
     * refused (it used to find no study, scoring nothing, silently). */
    err_clear(&e);
    CHECK(truth_from_file(&t, db, o, path, "another-key-456", &run, &e) == -1 &&
              strstr(e.msg, "another de-identification key"),
          "another key was not refused: %s", e.msg);
    onto_free(&o);
    db_close(&db);
}

static void test_ctrate_csv_merges_reconstructions_and_flags_conflicts(void)
{
    int64_t prun;
    Db *db = make_corpus("ctrate.db", &prun);
    Ontology *o;
    FvErr e = {0};
    CHECK_OK(onto_load(&o, &e), &e);
    if (!db || !o)
        return;
    /* Give study 1 the CT-RATE id valid_1_a. */
    char key[65];
    deid_pseudonym(KEY, "study", "valid_1_a", key, &e);
    CHECK_OK(db_run(db, &e, "UPDATE studies SET study_key = ? WHERE id = 1", "s", key), &e);
    const char *csv = "VolumeName,Emphysema,Cardiomegaly,Not a label\n"
                      "valid_1_a_1.nii.gz,1,0,1\n"
                      "valid_1_a_2.nii.gz,1,1,1\n"
                      "valid_2_a_1.nii.gz,0,0,0\n"
                      "badname.nii.gz,1,1,1\n";
    char path[512];
    snprintf(path, sizeof path, "%s/ctrate_labels.csv", g_dir);
    CHECK_OK(fs_write_atomic(path, csv, strlen(csv), &e), &e);
    Run run;
    memset(&run, 0, sizeof run);   /* errors logged, not stored */
    Truth t;
    CHECK_OK(truth_from_file(&t, db, o, path, KEY, &run, &e), &e);
    CHECK(t.kind == TRUTH_CTRATE, "kind %d", t.kind);
    CHECK_EQ_INT(t.n_studies, 1);
    CHECK_EQ_INT(t.rows_not_in_corpus, 1);
    CHECK_EQ_INT(t.conflicts, 1);
    CHECK_EQ_INT(truth_get(&t, 1, onto_finding(o, "emphysema")), 1);
    CHECK_EQ_INT(truth_get(&t, 1, onto_finding(o, "cardiomegaly")), TRUTH_UNCERTAIN);
    CHECK(run.n_errors == 3, "%lld errors (unknown column, bad name, conflict)",
          (long long)run.n_errors);
    CHECK(strncmp(t.source, "ctrate:", 7) == 0, "source %s", t.source);
    truth_free(&t);
    onto_free(&o);
    db_close(&db);
}

static void test_labels_table_is_silver_and_unmentioned_is_negative(void)
{
    int64_t prun;
    Db *db = make_corpus("silver.db", &prun);
    Ontology *o;
    FvErr e = {0};
    CHECK_OK(onto_load(&o, &e), &e);
    if (!db || !o)
        return;
    CHECK_OK(db_run(db, &e, "INSERT INTO labels (study_id, task, value, source) VALUES "
                            "(1, 'emphysema', 1, 'parsed'), (2, 'emphysema', -1, 'parsed'),"
                            " (3, 'emphysema', NULL, 'parsed'), (4, 'emphysema', 0, 'audit')",
                    ""), &e);
    Truth t;
    CHECK_OK(truth_from_labels(&t, db, o, &e), &e);
    int k = onto_finding(o, "emphysema");
    CHECK_EQ_INT(truth_get(&t, 1, k), 1);
    CHECK_EQ_INT(truth_get(&t, 2, k), TRUTH_UNCERTAIN);
    CHECK_EQ_INT(truth_get(&t, 3, k), 0);
    CHECK_EQ_INT(truth_get(&t, 9, k), 0);
    CHECK_EQ_INT(truth_get(&t, 9, onto_finding(o, "ascites")), 0);
    CHECK(strstr(t.source, "silver") && strstr(t.source, "1 audited"), "source: %s", t.source);
    truth_free(&t);
    onto_free(&o);
    db_close(&db);
}

static void test_zero_shot_scores_tasks_counts_and_stores_rows(void)
{
    int64_t prun;
    Db *db = make_corpus("zs.db", &prun);
    Ontology *o;
    Prompts *p;
    FvErr e = {0};
    CHECK_OK(onto_load(&o, &e), &e);
    CHECK_OK(prompts_load(&p, o, &e), &e);
    if (!db || !o || !p)
        return;
    char *path = write_truth_file();
    TestEnc te = {o, p, N_TRAIN + 3, 0.45};
    EvalEncoder enc = test_encoder(&te);
    EvalOptions opt;
    eval_options_default(&opt);
    opt.labels_path = path;
    opt.deid_key = KEY;
    opt.n_boot = 200;
    opt.seed = 3;
    Run run;
    char *argv[] = {"fvlm", "eval"};
    CHECK_OK(run_begin(&run, db, "eval", 2, argv, NULL, 3, &e), &e);
    EvalResults r;
    CHECK_OK(eval_zero_shot(db, o, &enc, &opt, &run, &r, &e), &e);
    CHECK_EQ_INT(r.n_tasks, 4);
    CHECK_EQ_INT(r.n_split, N_TEST);
    CHECK_EQ_INT(r.n_labelled, N_TEST);
    CHECK_EQ_INT(r.n_failed, 1);
    const TaskResult *em = result_of(&r, "emphysema"), *nod = result_of(&r, "lung_nodule"),
                     *hh = result_of(&r, "hiatal_hernia");
    CHECK(em && nod && hh, "a task is missing");
    if (!em || !nod || !hh)
        return;
    CHECK(em->m.auc > 0.8 && em->m.auc <= 1.0, "emphysema AUC %g", em->m.auc);
    CHECK(em->m.auc_lo <= em->m.auc && em->m.auc <= em->m.auc_hi, "AUC %g outside [%g, %g]",
          em->m.auc, em->m.auc_lo, em->m.auc_hi);
    CHECK_EQ_INT(em->m.n_pos + em->m.n_neg, N_TEST - 1);
    CHECK_EQ_INT(nod->n_uncertain, 3);
    CHECK(isnan(hh->m.auc) && strstr(hh->note, "one class"), "degenerate task: auc %g note %s",
          hh->m.auc, hh->note);
    CHECK_EQ_INT(r.macro_all.n_scored, 3);
    CHECK_EQ_INT(r.macro_ctrate18.n_scored, 3);
    CHECK(em->n_roc >= 2 && hh->n_roc == 0, "ROC points: %d, %d", em->n_roc, hh->n_roc);
    int64_t n, nnull;
    CHECK_OK(db_query_int(db, &e, &n, NULL, "SELECT count(*) FROM errors WHERE run_id = ? AND "
                                            "source = 'studies' AND member = 'id 43'",
                          "i", run.id), &e);
    CHECK_EQ_INT(n, 1);
    /* Bit-identical on a second run. */
    EvalResults r2;
    CHECK_OK(eval_zero_shot(db, o, &enc, &opt, &run, &r2, &e), &e);
    CHECK(memcmp(&result_of(&r2, "emphysema")->m, &em->m, sizeof em->m) == 0,
          "a second run differs");
    eval_results_free(&r2);

    CHECK_OK(eval_store(db, &r, &e), &e);
    CHECK_OK(db_query_int(db, &e, &n, NULL, "SELECT count(*) FROM eval_results WHERE run_id = ? "
                                            "AND method = 'zero-shot' AND style = 'normal'",
                          "i", run.id), &e);
    CHECK_EQ_INT(n, 4);
    CHECK_OK(db_query_int(db, &e, &nnull, NULL, "SELECT count(*) FROM eval_results WHERE "
                                                "run_id = ? AND auc IS NULL AND task = "
                                                "'hiatal_hernia'", "i", run.id), &e);
    CHECK_EQ_INT(nnull, 1);
    char *counts = eval_counts_json(&r);
    CHECK(counts && strstr(counts, "\"tasks_scored\":3"), "counts: %s", counts ? counts : "");
    CHECK_OK(run_finish(&run, "ok", counts, &e), &e);
    free(counts);
    /* The finished run is history for the next report of this split. */
    EvalHistory h;
    CHECK_OK(eval_history_load(db, "test", 0, &h, &e), &e);
    CHECK_EQ_INT(h.n, 1);
    if (h.n == 1) {
        CHECK_EQ_INT(h.rows[0].run_id, run.id);
        CHECK_STR(h.rows[0].loss_mode, "fine");
        CHECK_NEAR(h.rows[0].auc[0], r.macro_all.auc, 1e-12);
        CHECK_EQ_INT(h.rows[0].n_scored[1], 3);
    }
    eval_history_free(&h);
    CHECK_OK(eval_history_load(db, "test", run.id, &h, &e), &e);
    CHECK_EQ_INT(h.n, 0);
    eval_history_free(&h);
    CHECK_OK(eval_history_load(db, "train", 0, &h, &e), &e);
    CHECK_EQ_INT(h.n, 0);
    eval_history_free(&h);

    /* The CT-CLIP prompt style gives the same ranking with this encoder. */
    opt.style = PROMPT_CTCLIP;
    EvalResults rc;
    CHECK_OK(eval_zero_shot(db, o, &enc, &opt, &run, &rc, &e), &e);
    CHECK_STR(rc.style, "ctclip");
    CHECK_NEAR(result_of(&rc, "emphysema")->m.auc, em->m.auc, 1e-12);
    char html[1024], dir[512];
    snprintf(dir, sizeof dir, "%s/out", g_dir);
    CHECK_OK(eval_report_write_dir(&rc, NULL, dir, html, sizeof html, &e), &e);
    CHECK(fs_exists(html), "no HTML report at %s", html);
    eval_results_free(&rc);
    eval_results_free(&r);
    prompts_free(&p);
    onto_free(&o);
    db_close(&db);
}

static void test_probe_trains_on_train_split_and_scores_test(void)
{
    int64_t prun;
    Db *db = make_corpus("probe.db", &prun);
    Ontology *o;
    Prompts *p;
    FvErr e = {0};
    CHECK_OK(onto_load(&o, &e), &e);
    CHECK_OK(prompts_load(&p, o, &e), &e);
    if (!db || !o || !p)
        return;
    char *path = write_truth_file();
    TestEnc te = {o, p, -1, 0.45};
    EvalEncoder enc = test_encoder(&te);
    EvalOptions opt;
    eval_options_default(&opt);
    opt.labels_path = path;
    opt.deid_key = KEY;
    opt.n_boot = 100;
    Run run;
    memset(&run, 0, sizeof run);
    EvalResults r;
    CHECK_OK(eval_probe(db, o, &enc, &opt, &run, &r, &e), &e);
    CHECK_STR(r.method, "probe");
    CHECK_EQ_INT(r.n_train, N_TRAIN);
    const TaskResult *em = result_of(&r, "emphysema"), *hh = result_of(&r, "hiatal_hernia");
    CHECK(em && em->m.auc > 0.8, "probe emphysema AUC %g", em ? em->m.auc : -1);
    CHECK(hh && isnan(hh->m.auc) && strstr(hh->note, "not trained"), "untrainable task: %s",
          hh ? hh->note : "");
    eval_results_free(&r);
    opt.train_split = "test";
    CHECK(eval_probe(db, o, &enc, &opt, &run, &r, &e) == -1 && strstr(e.msg, "both"),
          "same split for training and testing: %s", e.msg);
    prompts_free(&p);
    onto_free(&o);
    db_close(&db);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/fvlm-eval-test-%d", (int)getpid());
    FvErr e = {0};
    fs_mkdir_p(g_dir, &e);
    RUN(test_prompts_cover_every_task_in_both_styles_and_languages);
    RUN(test_prompts_reject_unknown_tasks_and_gaps);
    RUN(test_ctrate_volume_names_map_to_studies);
    RUN(test_truth_file_joins_by_pseudonym_and_records_bad_rows);
    RUN(test_ctrate_csv_merges_reconstructions_and_flags_conflicts);
    RUN(test_labels_table_is_silver_and_unmentioned_is_negative);
    RUN(test_zero_shot_scores_tasks_counts_and_stores_rows);
    RUN(test_probe_trains_on_train_split_and_scores_test);
    test_remove(g_dir);
    return test_finish();
}
