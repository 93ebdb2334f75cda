/* fvlm demo: one command from nothing to results.
 *
 * Synthesizes a corpus (train and test studies, Chinese and English reports),
 * then runs ingest, parse, align and train as child processes of this same
 * binary (each stage is then exactly what a user would run, with its own run
 * record and progress), and evaluates in-process so the results can be put
 * side by side, beside the benchmark's calibration (eval/calib.h: an oracle
 * at the model's input grid, a trivial mean-HU-and-volume baseline).
 * --ablation also trains the global, fine and fine-fn losses and the
 * supervised baseline, and fits a linear probe: the paper's comparison on
 * data anyone can regenerate.
 *
 * The de-identification key: the demo's data are synthetic (their "patients"
 * are invented), so when neither FVLM_DEID_KEY nor --set deid.key is given the
 * demo derives a key from its seed and writes it into DIR/demo.ini, where every
 * stage reads it. Real corpora must bring their own key; no other command has
 * a default. */
#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "calib.h"
#include "cli.h"
#include "commands.h"
#include "config.h"
#include "db.h"
#include "eval_report.h"
#include "fsutil.h"
#include "job.h"
#include "log.h"
#include "schemas.h"
#include "sha256.h"

extern char **environ;

static const char *help =
    "usage: fvlm demo [--out DIR] [--studies N] [--seed S] [--ablation [--sweep]] [--threads T]\n"
    "                 [--epochs N] [--force] [--quiet]\n\n"
    "Runs the whole pipeline on a synthetic corpus, from nothing to an AUC table:\n"
    "  1. fvlm synth   N phantom CT studies with masks and bilingual reports (hospital\n"
    "                  layout: DICOM series, NIfTI masks, report.txt), a quarter held out\n"
    "                  for test, ground truth in DIR/synth/truth\n"
    "  2. fvlm ingest  into DIR/corpus.db (+ DIR/corpus.db.tensors/)\n"
    "  3. fvlm parse   sentences, findings with polarity, labels\n"
    "  4. fvlm align   sentence-anatomy links, anatomy status, regions, samples\n"
    "  5. fvlm train   the small preset with the default loss (fine-fn-disease)\n"
    "  6. fvlm eval    zero-shot AUC per task on the test split against the truth file\n"
    "and prints the AUC table beside the benchmark's calibration (per task the AUC of an\n"
    "oracle that knows where the synthetic change is, at the model's input grid, and of\n"
    "a trivial baseline on each anatomy's mean HU and volume) and the path of the HTML\n"
    "report. With --ablation it also trains the global (CLIP), fine and fine-fn losses\n"
    "and the supervised baseline (--loss supervised), fits the linear probe on the\n"
    "default model's features, and prints all of them in one table, with each one's\n"
    "mean over the tasks the oracle sees.\n\n"
    "Running it again reuses what DIR holds: the synthetic corpus, the idempotent\n"
    "ingest/parse/align and every model already trained (--force starts afresh).\n"
    "Same options, same numbers.\n\n"
    "options:\n"
    "  --out DIR        working folder (default demo-out)\n"
    "  --studies N      synthetic studies (default 600)\n"
    "  --seed S         seed of every stage (default 1)\n"
    "  --ablation       also train global, fine, fine-fn and supervised, fit the probe\n"
    "  --sweep          train every mode at the preset's learning rate x 0.5, 1 and 2 and\n"
    "                   evaluate the one with the lowest final validation loss (3x the\n"
    "                   training time; the same care for our method and the baselines)\n"
    "  --threads T      threads for synth and OpenBLAS (default 2)\n"
    "  --epochs N       training epochs (default: the small preset's)\n"
    "  --force          delete DIR's previous demo first\n"
    "  --quiet          errors only on stderr\n"
    "  --help           this help\n\n"
    "De-identification key: FVLM_DEID_KEY, else one derived from the seed and written\n"
    "to DIR/demo.ini (the data are synthetic; bring your own key for real data).\n";

typedef struct Demo {
    char dir[1024];
    char db[1100], synth[1100], ini[1100], truth[1200];
    long long studies, seed, threads, epochs;
    int ablation, sweep, quiet;
} Demo;

/* The key for synthetic data when the user gave none (see the top comment). */
static void demo_key(const Demo *d, char *out, size_t n)
{
    snprintf(out, n, "fvlm-demo-synthetic-seed-%lld", d->seed);
}

/* Runs `fvlm <args...>` as a child of this binary and waits. */
static int run_stage(const Demo *d, const char *title, char **args)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        log_error("demo: cannot find this program (/proc/self/exe): %s", strerror(errno));
        return -1;
    }
    self[n] = '\0';
    char *argv[64];
    int argc = 0;
    argv[argc++] = self;
    for (int i = 0; args[i] && argc < 62; i++)
        argv[argc++] = args[i];
    if (d->quiet)
        argv[argc++] = "--quiet";
    argv[argc] = NULL;
    if (!d->quiet) {
        fprintf(stderr, "\n== %s\n$ fvlm", title);
        for (int i = 1; i < argc; i++)
            fprintf(stderr, " %s", argv[i]);
        fprintf(stderr, "\n");
    }
    double t0 = now_seconds();
    pid_t pid;
    int rc = posix_spawn(&pid, self, NULL, NULL, argv, environ);
    if (rc != 0) {
        log_error("demo: cannot start fvlm %s: %s", args[0], strerror(rc));
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            log_error("demo: waiting for fvlm %s: %s", args[0], strerror(errno));
            return -1;
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        log_error("demo: fvlm %s failed (%s %d); the stages before it are kept in %s", args[0],
                  WIFEXITED(status) ? "exit status" : "signal",
                  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), d->dir);
        return -1;
    }
    if (!d->quiet)
        fprintf(stderr, "== %s: done in %.1f s\n", title, now_seconds() - t0);
    return 0;
}

/* DIR/demo.ini: the settings every stage of the demo reads. */
static int write_ini(const Demo *d, FvErr *e)
{
    char key[96];
    if (getenv("FVLM_DEID_KEY"))
        snprintf(key, sizeof key, "env:FVLM_DEID_KEY");
    else
        demo_key(d, key, sizeof key);
    Buf b = {0};
    buf_printf(&b,
               "# Written by fvlm demo: the settings every stage of the demo reads.\n"
               "[deid]\n"
               "key = %s\n\n"
               "[ingest]\n"
               "spacing = 3, 3, 5        # mm; the synthetic CTs are ~3 mm in-plane, 4-5 mm slices\n"
               "split = path             # hospital/train and hospital/test decide the split\n",
               key);
    if (b.failed) {
        buf_free(&b);
        return err_set(e, FV_ENOMEM, "demo: out of memory");
    }
    int rc = fs_write_atomic(d->ini, b.data, b.len, e);
    buf_free(&b);
    return rc;
}

/* The default first; the ablation adds the CLIP baseline, the two smaller
 * steps of fVLM's loss and the supervised baseline (the paper's rows). */
static const char *const loss_modes[] = {"fine-fn-disease", "global", "fine", "fine-fn",
                                         "supervised"};
enum { N_LOSS_MODES = sizeof loss_modes / sizeof loss_modes[0] };

/* --sweep: each mode trains at the small preset's train.lr times these, and
 * the model with the lowest final validation loss is the one evaluated
 * (chosen on the training split's hold-out, never on the test split). */
static const double sweep_factor[] = {1.0, 0.5, 2.0};
enum { N_SWEEP = sizeof sweep_factor / sizeof sweep_factor[0] };

static void model_path(const Demo *d, const char *loss, double factor, char *out, size_t n)
{
    if (factor == 1.0)
        snprintf(out, n, "%s/model-%s.safetensors", d->dir, loss);
    else
        snprintf(out, n, "%s/model-%s-lr%gx.safetensors", d->dir, loss, factor);
}

/* The small preset's learning rate (the sweep's centre). */
static int preset_lr(double *lr, FvErr *e)
{
    char *text = NULL;
    size_t len;
    Config c;
    config_init(&c);
    int rc = schema_load("preset_small.ini", &text, &len, e) ||
             config_parse(&c, text, "preset_small.ini", e) ||
             config_double(&c, "train.lr", 0, lr, e);
    free(text);
    config_free(&c);
    return rc ? -1 : 0;
}

static int train_mode(const Demo *d, const char *loss, double factor, double base_lr)
{
    char model[1200], seed[32], threads[32], epochs[64], lr[64];
    model_path(d, loss, factor, model, sizeof model);
    if (fs_exists(model)) {
        if (!d->quiet)
            fprintf(stderr, "\n== train (%s): reusing %s\n", loss, model);
        return 0;
    }
    snprintf(seed, sizeof seed, "%lld", d->seed);
    snprintf(threads, sizeof threads, "%lld", d->threads);
    char *args[32] = {"train", "--db", (char *)d->db, "--preset", "small", "--loss",
                      (char *)loss, "--seed", seed, "--threads", threads, "--out", model};
    int k = 13;
    if (d->epochs > 0) {
        snprintf(epochs, sizeof epochs, "%lld", d->epochs);
        args[k++] = "--epochs";
        args[k++] = epochs;
    }
    if (factor != 1.0) {
        snprintf(lr, sizeof lr, "train.lr=%.9g", base_lr * factor);
        args[k++] = "--set";
        args[k++] = lr;
    }
    args[k] = NULL;
    char title[96];
    snprintf(title, sizeof title, "train (%s%s%s)", loss, factor != 1.0 ? ", " : "",
             factor != 1.0 ? lr : "");
    return run_stage(d, title, args);
}

/* The last validation loss of the run that wrote the model file (found by
 * its sha256 in `models`); NaN when none is recorded. */
static int final_val_loss(Db *db, const char *model, double *out, FvErr *e)
{
    char hex[65];
    sqlite3_stmt *st;
    *out = NAN;
    if (sha256_file(model, hex, e) ||
        db_prepare(db, &st, "SELECT m.value FROM metrics m JOIN models o ON o.run_id = m.run_id "
                            "WHERE o.sha256 = ? AND m.name = 'val_loss' "
                            "ORDER BY o.id DESC, m.step DESC LIMIT 1", e))
        return -1;
    int got = db_bindf(db, st, e, "s", hex) ? -1 : db_step(db, st, e);
    if (got == 1)
        *out = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return got < 0 ? -1 : 0;
}

static int evaluate(const Demo *d, Db *db, const char *loss, const char *model, int probe,
                    EvalResults *res, char *html, size_t nhtml, FvErr *e)
{
    char out[1200];
    snprintf(out, sizeof out, "%s/eval-%s%s", d->dir, loss, probe ? "-probe" : "");
    const char *key = getenv("FVLM_DEID_KEY");
    char keybuf[96];
    if (!key) {
        demo_key(d, keybuf, sizeof keybuf);
        key = keybuf;
    }
    char *argv[] = {"demo", probe ? "probe" : "eval", (char *)model};
    EvalJob job = {0};
    job.model_path = model;
    job.out_dir = out;
    job.probe = probe;
    eval_options_default(&job.opt);
    job.opt.split = "test";
    job.opt.labels_path = d->truth;
    job.opt.deid_key = key;
    job.opt.seed = (uint64_t)d->seed;
    job.argc = 3;
    job.argv = argv;
    if (!d->quiet)
        fprintf(stderr, "\n== %s (%s) on the test split\n", probe ? "probe" : "eval", loss);
    return eval_job_run(db, &job, res, html, nhtml, e);
}

/* The AUC table of the default model beside the benchmark's calibration
 * (calib.h): the oracle's AUC at the model's input grid and the trivial
 * baseline's (mean HU and volume), with a task the oracle cannot see
 * marked `unseen` and one the trivial baseline solves marked `trivial`. */
static void print_table(const EvalResults *res, const Calib *cal, const Ontology *o)
{
    printf("\nZero-shot AUC per task (test split, %lld studies; truth file labels):\n\n",
           (long long)res->n_split);
    printf("%-34s %-18s %5s %5s  %-21s %6s %7s\n", "task", "anatomy", "pos", "neg",
           "AUC [95% CI]", "oracle", "trivial");
    int unseen = 0, trivial = 0;
    for (int i = 0; i < res->n_tasks; i++) {
        const TaskResult *t = &res->tasks[i];
        if (t->m.n_pos == 0 || t->m.n_neg == 0 || t->note[0])
            continue;
        int k = onto_finding(o, t->task);
        double orc = k >= 0 ? cal->oracle[k] : NAN, tri = k >= 0 ? cal->trivial[k] : NAN;
        int un = k >= 0 && !calib_seen(cal, k), tr = tri >= CALIB_TRIVIAL;
        unseen += un;
        trivial += tr;
        printf("%-34s %-18s %5d %5d  %.3f [%.3f, %.3f] %6.3f %7.3f%s%s\n", t->task, t->anatomy,
               t->m.n_pos, t->m.n_neg, t->m.auc, t->m.auc_lo, t->m.auc_hi, orc, tri,
               un ? "  unseen" : "", tr ? "  trivial" : "");
    }
    printf("\nmean AUC over %d tasks: %.3f [%.3f, %.3f]", res->macro_all.n_scored,
           res->macro_all.auc, res->macro_all.lo, res->macro_all.hi);
    if (res->macro_ctrate18.n_scored)
        printf("   CT-RATE labels (%d): %.3f [%.3f, %.3f]", res->macro_ctrate18.n_scored,
               res->macro_ctrate18.auc, res->macro_ctrate18.lo, res->macro_ctrate18.hi);
    printf("\n");
    int n_seen;
    double seen = calib_mean_seen(cal, res, o, &n_seen);
    if (cal->has_oracle)
        printf("over the %d tasks the oracle sees at the model's input: %.3f (%d unseen: oracle "
               "AUC < %.2f)\n", n_seen, seen, unseen, CALIB_SEEN);
    else
        printf("(no truth/oracle.csv in this corpus: re-run with --force for the oracle column)\n");
    printf("%d tasks marked trivial: mean HU and volume alone give AUC >= %.2f\n", trivial,
           CALIB_TRIVIAL);
}

/* Each method's mean over the tasks the oracle sees, and the references. */
static void print_seen(const EvalResults *const *sets, const char *const *labels, int n,
                       const Calib *cal, const Ontology *o)
{
    printf("\nMean AUC over the tasks the oracle sees (the calibrated comparison):\n\n");
    printf("%-22s %6s %5s\n", "method", "AUC", "tasks");
    for (int i = 0; i < n; i++) {
        int ns;
        double m = calib_mean_seen(cal, sets[i], o, &ns);
        printf("%-22s %6.3f %5d\n", labels[i], m, ns);
    }
    double sum[2] = {0, 0};
    int cnt[2] = {0, 0};
    for (int i = 0; i < sets[0]->n_tasks; i++) {
        const TaskResult *t = &sets[0]->tasks[i];
        int k = onto_finding(o, t->task);
        if (k < 0 || isnan(t->m.auc) || !calib_seen(cal, k))
            continue;
        const double v[2] = {cal->trivial[k], cal->oracle[k]};
        for (int j = 0; j < 2; j++)
            if (!isnan(v[j])) {
                sum[j] += v[j];
                cnt[j]++;
            }
    }
    printf("%-22s %6.3f %5d\n", "trivial (HU, volume)", cnt[0] ? sum[0] / cnt[0] : NAN, cnt[0]);
    if (cal->has_oracle)
        printf("%-22s %6.3f %5d\n", "oracle", cnt[1] ? sum[1] / cnt[1] : NAN, cnt[1]);
}

int cmd_demo(int argc, char **argv)
{
    enum { OPT_OUT = OPT_FIRST_PRIVATE, OPT_STUDIES, OPT_ABLATION, OPT_THREADS, OPT_EPOCHS,
           OPT_FORCE, OPT_SWEEP };
    static const struct option opts[] = {
        {"out", required_argument, 0, OPT_OUT},
        {"studies", required_argument, 0, OPT_STUDIES},
        {"seed", required_argument, 0, OPT_SEED},
        {"ablation", no_argument, 0, OPT_ABLATION},
        {"sweep", no_argument, 0, OPT_SWEEP},
        {"threads", required_argument, 0, OPT_THREADS},
        {"epochs", required_argument, 0, OPT_EPOCHS},
        {"force", no_argument, 0, OPT_FORCE},
        {"quiet", no_argument, 0, OPT_QUIET},
        {"help", no_argument, 0, OPT_HELP},
        {0, 0, 0, 0},
    };
    Demo d = {0};
    const char *dir = "demo-out";
    d.studies = 600;
    d.seed = 1;
    d.threads = 2;
    CliCommon cc;
    cli_common_init(&cc);
    int force = 0, opt, code;
    while ((opt = cli_next_opt(&cc, argc, argv, opts, "demo", help, &code)) != CLI_DONE) {
        switch (opt) {
        case OPT_OUT: dir = optarg; break;
        case OPT_STUDIES:
            if (cli_parse_i64(optarg, 8, 100000, &d.studies))
                return cli_usage("demo", "--studies must be an integer from 8 to 100000");
            break;
        case OPT_SEED:
            if (cli_parse_i64(optarg, 0, 1LL << 62, &d.seed))
                return cli_usage("demo", "--seed must be a non-negative integer");
            break;
        case OPT_THREADS:
            if (cli_parse_i64(optarg, 1, 256, &d.threads))
                return cli_usage("demo", "--threads must be an integer from 1 to 256");
            break;
        case OPT_EPOCHS:
            if (cli_parse_i64(optarg, 1, 100000, &d.epochs))
                return cli_usage("demo", "--epochs must be a positive integer");
            break;
        case OPT_ABLATION: d.ablation = 1; break;
        case OPT_SWEEP: d.sweep = 1; break;
        case OPT_FORCE: force = 1; break;
        default: return code; /* CLI_EXIT */
        }
    }
    d.quiet = cc.quiet;
    if (optind < argc)
        return cli_usage("demo", "unexpected argument '%s'", argv[optind]);

    FvErr e = {0};
    snprintf(d.dir, sizeof d.dir, "%s", dir);
    snprintf(d.db, sizeof d.db, "%s/corpus.db", d.dir);
    snprintf(d.synth, sizeof d.synth, "%s/synth", d.dir);
    snprintf(d.ini, sizeof d.ini, "%s/demo.ini", d.dir);
    snprintf(d.truth, sizeof d.truth, "%s/truth/labels.csv", d.synth);
    if (force && fs_exists(d.dir)) {
        /* Only what a demo writes: a stray --out must not wipe a user's folder. */
        char marker[1200];
        snprintf(marker, sizeof marker, "%s/demo.ini", d.dir);
        if (!fs_exists(marker))
            return cli_usage("demo", "--force: %s exists and is not a demo folder (no demo.ini)",
                             d.dir);
        char *rm[] = {"rm", "-rf", d.dir, NULL};
        pid_t pid;
        int status;
        if (posix_spawnp(&pid, "rm", NULL, NULL, rm, environ) != 0 ||
            waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
            log_error("demo: cannot remove %s", d.dir);
            return EXIT_FAIL;
        }
    }
    if (fs_mkdir_p(d.dir, &e) || write_ini(&d, &e))
        return cli_fail(&e);

    double t0 = now_seconds();
    char studies[32], seed[32], threads[32];
    snprintf(studies, sizeof studies, "%lld", d.studies);
    snprintf(seed, sizeof seed, "%lld", d.seed);
    snprintf(threads, sizeof threads, "%lld", d.threads);
    if (fs_exists(d.truth)) {
        if (!d.quiet)
            fprintf(stderr, "== synth: reusing the corpus in %s\n", d.synth);
    } else {
        char *a[] = {"synth", "--out", d.synth, "--studies", studies, "--seed", seed, "--layout",
                     "hospital", "--lang", "mix", "--size", "small", "--test-fraction", "0.25",
                     "--min-prevalence", "0.15", "--threads", threads, "--force", NULL};
        if (run_stage(&d, "synth", a))
            return EXIT_FAIL;
    }
    char hospital[1200];
    snprintf(hospital, sizeof hospital, "%s/hospital", d.synth);
    char *ingest[] = {"ingest", "--db", d.db, "--config", d.ini, hospital, NULL};
    char *parse[] = {"parse", "--db", d.db, NULL};
    char *align[] = {"align", "--db", d.db, NULL};
    if (run_stage(&d, "ingest", ingest) || run_stage(&d, "parse", parse) ||
        run_stage(&d, "align", align))
        return EXIT_FAIL;
    int nmodes = d.ablation ? N_LOSS_MODES : 1, nlr = d.sweep ? N_SWEEP : 1;
    double base_lr = 0;
    if (d.sweep && preset_lr(&base_lr, &e))
        return cli_fail(&e);
    for (int i = 0; i < nmodes; i++)
        for (int f = 0; f < nlr; f++)
            if (train_mode(&d, loss_modes[i], sweep_factor[f], base_lr))
                return EXIT_FAIL;

    Db *db;
    if (db_open(&db, d.db, DB_MUST_EXIST, &e))
        return cli_fail(&e);
    /* each mode's model: the preset's, or the sweep's lowest validation loss */
    char chosen[N_LOSS_MODES][1200];
    double chosen_factor[N_LOSS_MODES];
    for (int i = 0; i < nmodes; i++) {
        double best = INFINITY;
        chosen_factor[i] = 1.0;
        model_path(&d, loss_modes[i], 1.0, chosen[i], sizeof chosen[i]);
        for (int f = 0; f < nlr && d.sweep; f++) {
            char m[1200];
            double v;
            model_path(&d, loss_modes[i], sweep_factor[f], m, sizeof m);
            if (final_val_loss(db, m, &v, &e)) {
                db_close(&db);
                return cli_fail(&e);
            }
            if (!d.quiet)
                fprintf(stderr, "== sweep (%s): lr x %g: final validation loss %.4f\n",
                        loss_modes[i], sweep_factor[f], v);
            if (v < best) {
                best = v;
                chosen_factor[i] = sweep_factor[f];
                snprintf(chosen[i], sizeof chosen[i], "%s", m);
            }
        }
    }
    EvalResults res[N_LOSS_MODES + 1];
    memset(res, 0, sizeof res);
    const EvalResults *sets[N_LOSS_MODES + 1];
    const char *labels[N_LOSS_MODES + 1];
    char html[1200] = "", first_html[1200] = "";
    int nres = 0, rc = EXIT_OK;
    for (int i = 0; i < nmodes; i++) {
        if (evaluate(&d, db, loss_modes[i], chosen[i], 0, &res[nres], html, sizeof html, &e)) {
            rc = cli_fail(&e);
            goto out;
        }
        if (i == 0)
            snprintf(first_html, sizeof first_html, "%s", html);
        sets[nres] = &res[nres];
        labels[nres] = loss_modes[i];
        nres++;
    }
    if (d.ablation) {
        if (evaluate(&d, db, loss_modes[0], chosen[0], 1, &res[nres], html, sizeof html, &e)) {
            rc = cli_fail(&e);
            goto out;
        }
        sets[nres] = &res[nres];
        labels[nres] = "probe (linear, frozen)";
        nres++;
    }
    /* the benchmark's calibration on the same split and truth */
    Ontology *onto = NULL;
    Calib cal;
    memset(&cal, 0, sizeof cal);
    char oracle[1200], keybuf[96];
    snprintf(oracle, sizeof oracle, "%s/truth/oracle.csv", d.synth);
    EvalOptions copt;
    eval_options_default(&copt);
    copt.split = "test";
    copt.labels_path = d.truth;
    copt.deid_key = getenv("FVLM_DEID_KEY");
    if (!copt.deid_key) {
        demo_key(&d, keybuf, sizeof keybuf);
        copt.deid_key = keybuf;
    }
    copt.seed = (uint64_t)d.seed;
    if (!d.quiet)
        fprintf(stderr, "\n== calibration: oracle and trivial baseline on the test split\n");
    if (onto_load(&onto, &e) ||
        calib_compute(&cal, db, onto, &copt, fs_exists(oracle) ? oracle : NULL, &e)) {
        rc = cli_fail(&e);
        onto_free(&onto);
        goto out;
    }
    print_table(&res[0], &cal, onto);
    if (d.ablation) {
        Buf b = {0};
        eval_report_comparison(&b, sets, labels, nres);
        printf("\nThe paper's comparison on this corpus (mean AUC on the test split):\n\n%s",
               b.data ? b.data : "");
        buf_free(&b);
        print_seen(sets, labels, nres, &cal, onto);
        if (d.sweep) {
            printf("\nlearning rate of each (the small preset's %g times):", base_lr);
            for (int i = 0; i < nmodes; i++)
                printf(" %s x%g%s", loss_modes[i], chosen_factor[i], i + 1 < nmodes ? "," : "\n");
        }
    }
    calib_free(&cal);
    onto_free(&onto);
    printf("\nHTML report: %s\n", first_html);
    if (d.ablation)
        printf("(the report of the last evaluation lists all of them: %s)\n", html);
    printf("demo finished in %.0f s; corpus in %s\n", now_seconds() - t0, d.db);
    for (int i = 0; i < nres && rc == EXIT_OK; i++)
        if (eval_results_check(&res[i], &e))
            rc = cli_fail(&e);
out:
    for (int i = 0; i < nres; i++)
        eval_results_free(&res[i]);
    db_close(&db);
    return rc;
}
