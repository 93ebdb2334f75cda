/* fvlm eval: zero-shot AUC per diagnosis task of a trained model; and, with
 * cmd_probe.c, the supervised linear probe (the same command line plus the
 * probe's options). The work is eval_job_run (eval/job.h); this file parses
 * options and prints the table. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "commands.h"
#include "deid.h"
#include "eval.h"
#include "job.h"
#include "json.h"

#include "cmd_eval.h"

static const char *help_eval =
    "usage: fvlm eval --model FILE --out DIR [--split test] [--labels FILE] [--style S]\n"
    "                 [--bootstrap N] [--seed N] [common options]\n\n"
    "Zero-shot evaluation of a trained model (CT-CLIP's protocol, as fVLM reports it). For each\n"
    "diagnosis task of schemas/findings.tsv with labels in the split, each study's score is the\n"
    "softmax over the task's prompt pair (schemas/prompts.tsv, in the report's language) of\n"
    "(anatomy feature . prompt feature) / temperature; the positive prompt's probability.\n"
    "A supervised model (fvlm train --loss supervised) is scored with its own heads instead:\n"
    "sigmoid of the task's logit on its anatomy's feature (method 'supervised', DIR/supervised.*).\n"
    "Per task: exact AUROC with a 95% bootstrap interval, the threshold of the 100-value grid\n"
    "closest to (0, 1) and accuracy, weighted F1, precision, sensitivity and specificity at it;\n"
    "macro averages over all tasks, CT-RATE's 18 labels and fVLM's 16. Tasks with one class are\n"
    "listed, not averaged; uncertain labels are left out and counted.\n\n"
    "Ground truth: --labels FILE, either fvlm synth's truth file (DIR/truth/labels.csv) or a\n"
    "CT-RATE labels CSV, joined to the corpus by the de-identification key (FVLM_DEID_KEY or\n"
    "deid.key, the one ingest used); without it, the labels parsed from the reports (silver).\n\n"
    "Writes DIR/zero-shot.csv, .md, -roc.svg and .html (open the HTML), one eval_results row per\n"
    "task tied to the run and the model, and prints the table.\n\n"
    "options:\n"
    "  --model FILE       model checkpoint written by fvlm train (config eval.model)\n"
    "  --out DIR          folder for the report files (config eval.out)\n"
    "  --split NAME       split to evaluate: train, valid or test (default test; eval.split)\n"
    "  --labels FILE      truth file or CT-RATE labels CSV (config eval.labels)\n"
    "  --style NAME       prompt style: normal (the anatomy's normal sentence, \"Liver shows no\n"
    "                     significant abnormalities.\" / \"X.\"), fvlm (\"Not X.\" / \"X.\") or ctclip\n"
    "                     (\"X is not present.\" / \"X is present.\") (default normal: a text tower\n"
    "                     trained from scratch has never read \"Not X.\"; eval.style)\n"
    "  --bootstrap N      bootstrap resamples for the AUROC interval (default 1000; eval.bootstrap)\n"
    "  --seed N           bootstrap seed (default 0; config seed)\n" CLI_COMMON_HELP;

static const char *help_probe =
    "usage: fvlm probe --model FILE --out DIR [--train-split train] [--split test] [--labels FILE]\n"
    "                  [--C VALUE] [--bootstrap N] [--seed N] [common options]\n\n"
    "The supervised baseline: per diagnosis task, an L2-regularised logistic regression (Newton's\n"
    "method, deterministic) on the model's frozen anatomy feature, trained on the training split\n"
    "and evaluated on the evaluated split exactly as fvlm eval evaluates (method 'probe' in\n"
    "eval_results). Features are standardised with the training split's mean and deviation.\n"
    "Ground truth as for fvlm eval (--labels FILE, else the parsed labels, silver).\n\n"
    "Writes DIR/probe.csv, .md, -roc.svg and .html and prints the table.\n\n"
    "options:\n"
    "  --model FILE       model checkpoint written by fvlm train (config eval.model)\n"
    "  --out DIR          folder for the report files (config eval.out)\n"
    "  --train-split NAME split to train on (default train; probe.train_split)\n"
    "  --split NAME       split to evaluate (default test; eval.split)\n"
    "  --labels FILE      truth file or CT-RATE labels CSV (config eval.labels)\n"
    "  --C VALUE          inverse regularisation strength, > 0 (default 1; probe.c)\n"
    "  --bootstrap N      bootstrap resamples for the AUROC interval (default 1000; eval.bootstrap)\n"
    "  --seed N           bootstrap seed (default 0; config seed)\n" CLI_COMMON_HELP;

enum {
    OPT_MODEL = OPT_FIRST_PRIVATE, OPT_OUT, OPT_SPLIT, OPT_LABELS, OPT_STYLE, OPT_BOOT,
    OPT_SEED_EVAL, OPT_TRAIN_SPLIT, OPT_C
};

static int valid_split(const char *s)
{
    return !strcmp(s, "train") || !strcmp(s, "valid") || !strcmp(s, "test");
}

static void print_text(const EvalResults *r, const char *html)
{
    printf("%s AUC, split %s", strcmp(r->method, "probe") ? "zero-shot" : "probe", r->split);
    if (strcmp(r->method, "probe"))
        printf(", %s prompts", r->style);
    printf(", labels %s%s (run %lld)\n\n", r->label_source, r->silver ? " [silver]" : "",
           (long long)r->run_id);
    printf("%-36s %-12s %7s  %-15s %5s %5s %5s\n", "task", "anatomy", "AUC", "95% CI", "pos",
           "neg", "unc");
    for (int i = 0; i < r->n_tasks; i++) {
        const TaskResult *t = &r->tasks[i];
        printf("%-36s %-12s ", t->task, t->anatomy);
        if (isfinite(t->m.auc))
            printf("%7.4f  ", t->m.auc);
        else
            printf("%7s  ", "-");
        if (isfinite(t->m.auc_lo))
            printf("%.4f-%.4f ", t->m.auc_lo, t->m.auc_hi);
        else
            printf("%-15s ", "-");
        printf("%5d %5d %5d%s%s\n", t->m.n_pos, t->m.n_neg, t->n_uncertain, t->note[0] ? "  " : "",
               t->note);
    }
    const MacroAvg *m[3] = {&r->macro_all, &r->macro_ctrate18, &r->macro_fvlm16};
    const char *names[3] = {"all tasks", "CT-RATE 18", "fVLM 16"};
    printf("\n");
    for (int k = 0; k < 3; k++) {
        printf("mean AUC, %-11s ", names[k]);
        if (isfinite(m[k]->auc))
            printf("%.4f", m[k]->auc);
        else
            printf("-");
        if (isfinite(m[k]->lo) && isfinite(m[k]->hi))
            printf(" (95%% CI %.4f-%.4f)", m[k]->lo, m[k]->hi);
        printf("  (%d of %d tasks scored)\n", m[k]->n_scored, m[k]->n_set);
    }
    if (html && *html)
        printf("\nreport: %s\n", html);
}

static int print_json(const EvalResults *r, const char *html)
{
    Buf b = {0};
    JsonW w;
    jw_init(&w, &b, 1);
    jw_obj(&w);
    jw_key(&w, "run_id"); jw_int(&w, r->run_id);
    jw_key(&w, "method"); jw_str(&w, r->method);
    jw_key(&w, "style"); jw_str(&w, r->style);
    jw_key(&w, "split"); jw_str(&w, r->split);
    jw_key(&w, "label_source"); jw_str(&w, r->label_source);
    jw_key(&w, "silver"); jw_bool(&w, r->silver);
    jw_key(&w, "model"); jw_str(&w, r->model_path);
    jw_key(&w, "model_sha256"); jw_str(&w, r->model_sha256);
    jw_key(&w, "model_id");
    if (r->model_id > 0)
        jw_int(&w, r->model_id);
    else
        jw_null(&w);
    jw_key(&w, "loss_mode"); jw_str(&w, r->loss_mode);
    jw_key(&w, "html");
    if (html && *html)
        jw_str(&w, html);
    else
        jw_null(&w);
    char *counts = eval_counts_json(r);
    jw_key(&w, "counts");
    if (counts)
        jw_raw(&w, counts);
    else
        jw_null(&w);
    free(counts);
    jw_key(&w, "tasks");
    jw_arr(&w);
    for (int i = 0; i < r->n_tasks; i++) {
        const TaskResult *t = &r->tasks[i];
        jw_obj(&w);
        jw_key(&w, "task"); jw_str(&w, t->task);
        jw_key(&w, "anatomy"); jw_str(&w, t->anatomy);
        jw_key(&w, "n_pos"); jw_int(&w, t->m.n_pos);
        jw_key(&w, "n_neg"); jw_int(&w, t->m.n_neg);
        jw_key(&w, "n_uncertain"); jw_int(&w, t->n_uncertain);
        jw_key(&w, "n_no_feature"); jw_int(&w, t->n_no_feature);
        jw_key(&w, "auc"); jw_num(&w, t->m.auc);
        jw_key(&w, "auc_lo"); jw_num(&w, t->m.auc_lo);
        jw_key(&w, "auc_hi"); jw_num(&w, t->m.auc_hi);
        jw_key(&w, "threshold"); jw_num(&w, t->m.threshold);
        jw_key(&w, "accuracy"); jw_num(&w, t->m.accuracy);
        jw_key(&w, "f1_weighted"); jw_num(&w, t->m.f1_weighted);
        jw_key(&w, "precision"); jw_num(&w, t->m.precision);
        jw_key(&w, "sensitivity"); jw_num(&w, t->m.sensitivity);
        jw_key(&w, "specificity"); jw_num(&w, t->m.specificity);
        jw_key(&w, "note"); jw_str(&w, t->note);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_obj_end(&w);
    buf_putc(&b, '\n');
    return cli_write(&b);
}

int eval_command_main(int argc, char **argv, int probe)
{
    const char *name = probe ? "probe" : "eval";
    const char *help = probe ? help_probe : help_eval;
    static const struct option eval_opts[] = {
        CLI_COMMON_OPTIONS,
        {"model", required_argument, 0, OPT_MODEL},
        {"out", required_argument, 0, OPT_OUT},
        {"split", required_argument, 0, OPT_SPLIT},
        {"labels", required_argument, 0, OPT_LABELS},
        {"style", required_argument, 0, OPT_STYLE},
        {"bootstrap", required_argument, 0, OPT_BOOT},
        {"seed", required_argument, 0, OPT_SEED_EVAL},
        {0, 0, 0, 0},
    };
    static const struct option probe_opts[] = {
        CLI_COMMON_OPTIONS,
        {"model", required_argument, 0, OPT_MODEL},
        {"out", required_argument, 0, OPT_OUT},
        {"split", required_argument, 0, OPT_SPLIT},
        {"labels", required_argument, 0, OPT_LABELS},
        {"train-split", required_argument, 0, OPT_TRAIN_SPLIT},
        {"C", required_argument, 0, OPT_C},
        {"bootstrap", required_argument, 0, OPT_BOOT},
        {"seed", required_argument, 0, OPT_SEED_EVAL},
        {0, 0, 0, 0},
    };
    CliCommon cc;
    cli_common_init(&cc);
    const char *model = NULL, *out = NULL, *split = NULL, *labels = NULL, *style = NULL,
               *boot = NULL, *seed = NULL, *train_split = NULL, *cval = NULL;
    int opt, rc = EXIT_USAGE;
    while ((opt = cli_next_opt(&cc, argc, argv, probe ? probe_opts : eval_opts, name, help, &rc)) !=
           CLI_DONE) {
        switch (opt) {
        case OPT_MODEL: model = optarg; break;
        case OPT_OUT: out = optarg; break;
        case OPT_SPLIT: split = optarg; break;
        case OPT_LABELS: labels = optarg; break;
        case OPT_STYLE: style = optarg; break;
        case OPT_BOOT: boot = optarg; break;
        case OPT_SEED_EVAL: seed = optarg; break;
        case OPT_TRAIN_SPLIT: train_split = optarg; break;
        case OPT_C: cval = optarg; break;
        default: goto done; /* CLI_EXIT: rc holds the exit code */
        }
    }
    if (optind < argc) {
        rc = cli_usage(name, "unexpected argument '%s'", argv[optind]);
        goto done;
    }
    FvErr e = {0};
    if (cli_common_finish(&cc, &e)) {
        rc = cli_finish_fail(&e);
        goto done;
    }
    /* Command line first, then the config file, then the defaults. */
    Config *cfg = &cc.config;
    EvalJob job;
    memset(&job, 0, sizeof job);
    eval_options_default(&job.opt);
    job.probe = probe;
    job.model_path = model ? model : config_str(cfg, "eval.model", NULL);
    job.out_dir = out ? out : config_str(cfg, "eval.out", NULL);
    job.opt.split = split ? split : config_str(cfg, "eval.split", "test");
    job.opt.labels_path = labels ? labels : config_str(cfg, "eval.labels", NULL);
    job.opt.train_split = train_split ? train_split : config_str(cfg, "probe.train_split", "train");
    if (!job.model_path) {
        rc = cli_usage(name, "--model FILE is required");
        goto done;
    }
    if (!job.out_dir) {
        rc = cli_usage(name, "--out DIR is required");
        goto done;
    }
    if (!valid_split(job.opt.split) || !valid_split(job.opt.train_split)) {
        rc = cli_usage(name, "a split is train, valid or test (got '%s')",
                       valid_split(job.opt.split) ? job.opt.train_split : job.opt.split);
        goto done;
    }
    const char *st = style ? style : config_str(cfg, "eval.style", "normal");
    int s = prompt_style_parse(st);
    if (s < 0) {
        rc = cli_usage(name, "--style is normal, fvlm or ctclip, not '%s'", st);
        goto done;
    }
    job.opt.style = (PromptStyle)s;
    long long v;
    if (boot) {
        if (cli_parse_i64(boot, 0, 1000000, &v)) {
            rc = cli_usage(name, "--bootstrap expects 0 to 1000000, got '%s'", boot);
            goto done;
        }
        job.opt.n_boot = (int)v;
    } else {
        int64_t b;
        if (config_int(cfg, "eval.bootstrap", METRICS_BOOT_DEFAULT, &b, &e) || b < 0 ||
            b > 1000000) {
            rc = cli_usage(name, "eval.bootstrap: %s", e.msg[0] ? e.msg : "out of range");
            goto done;
        }
        job.opt.n_boot = (int)b;
    }
    if (seed) {
        if (cli_parse_i64(seed, 0, INT64_MAX, &v)) {
            rc = cli_usage(name, "--seed expects a non-negative integer, got '%s'", seed);
            goto done;
        }
        job.opt.seed = (uint64_t)v;
    } else {
        int64_t sd;
        if (config_int(cfg, "seed", 0, &sd, &e) || sd < 0) {
            rc = cli_usage(name, "seed: %s", e.msg[0] ? e.msg : "must be >= 0");
            goto done;
        }
        job.opt.seed = (uint64_t)sd;
    }
    if (cval) {
        char *end;
        job.opt.probe_c = strtod(cval, &end);
        if (*end || !(job.opt.probe_c > 0) || !isfinite(job.opt.probe_c)) {
            rc = cli_usage(name, "--C expects a number > 0, got '%s'", cval);
            goto done;
        }
    } else if (config_double(cfg, "probe.c", 1.0, &job.opt.probe_c, &e) ||
               !(job.opt.probe_c > 0)) {
        rc = cli_usage(name, "probe.c: %s", e.msg[0] ? e.msg : "must be > 0");
        goto done;
    }
    if (job.opt.labels_path && deid_key(cfg, &job.opt.deid_key, &e)) {
        rc = cli_usage(name, "--labels: %s", e.msg);
        goto done;
    }
    Buf cfgjson = {0};
    config_to_json(cfg, &cfgjson);
    job.config_json = cfgjson.failed ? NULL : cfgjson.data;
    job.argc = argc;
    job.argv = argv;

    Db *db = NULL;
    if (db_open(&db, cc.db, DB_MUST_EXIST, &e)) {
        buf_free(&cfgjson);
        rc = cli_fail(&e);
        goto done;
    }
    EvalResults res;
    char html[4096];
    if (eval_job_run(db, &job, &res, html, sizeof html, &e)) {
        rc = cli_fail(&e);
    } else {
        if (cc.json) {
            rc = print_json(&res, html);
        } else {
            print_text(&res, html);
            rc = EXIT_OK;
        }
        /* The table is printed either way; exit 0 needs a scored task. */
        if (rc == EXIT_OK && eval_results_check(&res, &e))
            rc = cli_fail(&e);
        eval_results_free(&res);
    }
    db_close(&db);
    buf_free(&cfgjson);
done:
    cli_common_free(&cc);
    return rc;
}

int cmd_eval(int argc, char **argv) { return eval_command_main(argc, argv, 0); }
