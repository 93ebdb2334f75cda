/* fvlm train: the fine-grained contrastive trainer (train/trainer.h). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ckpt.h"
#include "cli.h"
#include "commands.h"
#include "json.h"
#include "dist.h"
#include "log.h"
#include "loss.h"
#include "safetensors.h"
#include "schemas.h"
#include "trainer.h"

static const char *help =
    "usage: fvlm train [--db FILE] [--preset tiny|small|base] [--loss MODE] --out FILE\n"
    "                  [--resume] [--deterministic] [--seed N] [--threads N]\n"
    "                  [--epochs N] [--steps N] [--config FILE] [--set KEY=VALUE]...\n\n"
    "Trains the fine-grained vision-language model on the anatomy-level samples of\n"
    "the corpus (table samples, with the CT volumes, masks and regions of ingest and\n"
    "align) and writes a safetensors checkpoint: weights, AdamW moments, RNG state,\n"
    "and the config, vocabulary, anatomies and step in its metadata. Training uses\n"
    "the `train` split; validation loss (per epoch) the `valid` split, or a seeded\n"
    "hold-out of train (train.val_fraction). The run, per-step metrics (loss, lr,\n"
    "grad_norm, samples_per_s), val_loss and a `models` row go to the database.\n\n"
    "options:\n"
    "  --out FILE         checkpoint to write (also written during training, atomically)\n"
    "  --preset NAME      tiny (tests, seconds), small (demo, minutes; default), base\n"
    "                     (real corpora); a preset sets every size and rate\n"
    "  --loss MODE        global (CLIP, whole CT vs report), fine (per anatomy),\n"
    "                     fine-fn (+ normal and identical-text positives), or\n"
    "                     fine-fn-disease (+ abnormal pairs weighted by disease\n"
    "                     agreement; default), or supervised (the baseline: the same\n"
    "                     encoder and pooling, one logit per task on each anatomy's\n"
    "                     feature, cross-entropy on the parsed or audited labels)\n"
    "  --resume           continue the run saved in --out from its step, with its\n"
    "                     settings (--set may still change e.g. train.epochs)\n"
    "  --deterministic    explicit thread count required and recorded; a resume that\n"
    "                     changes thread count or corpus is refused, so a run killed\n"
    "                     and resumed ends bit-identical to one never stopped\n"
    "  --seed N           train.seed      --threads N   train.threads (0 = all cores)\n"
    "  --epochs N         train.epochs    --steps N     train.steps (overrides epochs)\n"
    CLI_COMMON_HELP
    "\nSIGINT or SIGTERM: the current step finishes, a checkpoint is written, the run\n"
    "is recorded as interrupted (resume it with --resume).\n"
    "\nData parallel (a build with MPI): mpirun -np N fvlm train ... trains on N\n"
    "processes, each preparing its share of every batch of train.batch studies; the\n"
    "loss sees the whole batch, as one process would. Rank 0 writes the checkpoint and\n"
    "the run; --out must be on a file system every rank reads; resume with the same N.\n";

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

enum { OPT_OUT = OPT_FIRST_PRIVATE, OPT_PRESET, OPT_LOSS, OPT_RESUME, OPT_DETERMINISTIC,
       OPT_THREADS, OPT_EPOCHS, OPT_STEPS };

int cmd_train(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"out", required_argument, 0, OPT_OUT},
        {"preset", required_argument, 0, OPT_PRESET},
        {"loss", required_argument, 0, OPT_LOSS},
        {"resume", no_argument, 0, OPT_RESUME},
        {"deterministic", no_argument, 0, OPT_DETERMINISTIC},
        {"seed", required_argument, 0, OPT_SEED},
        {"threads", required_argument, 0, OPT_THREADS},
        {"epochs", required_argument, 0, OPT_EPOCHS},
        {"steps", required_argument, 0, OPT_STEPS},
        {0, 0, 0, 0},
    };
    CliCommon cc;
    cli_common_init(&cc);
    const char *out = NULL, *preset = NULL, *loss = NULL;
    const char *seed = NULL, *threads = NULL, *epochs = NULL, *steps = NULL;
    int resume = 0, deterministic = 0, opt, exit_now, rc = EXIT_FAIL;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int h = cli_common_opt(&cc, opt, optarg, help, &exit_now);
        if (h < 0 || (h == 1 && exit_now >= 0)) {
            cli_common_free(&cc);
            return h < 0 ? EXIT_USAGE : exit_now;
        }
        if (h == 1)
            continue;
        switch (opt) {
        case OPT_OUT: out = optarg; break;
        case OPT_PRESET: preset = optarg; break;
        case OPT_LOSS: loss = optarg; break;
        case OPT_RESUME: resume = 1; break;
        case OPT_DETERMINISTIC: deterministic = 1; break;
        case OPT_SEED: seed = optarg; break;
        case OPT_THREADS: threads = optarg; break;
        case OPT_EPOCHS: epochs = optarg; break;
        case OPT_STEPS: steps = optarg; break;
        default:
            cli_common_free(&cc);
            return cli_usage("train", "unknown option");
        }
    }
    if (optind < argc) {
        cli_common_free(&cc);
        return cli_usage("train", "unexpected argument '%s'", argv[optind]);
    }
    if (!out) {
        cli_common_free(&cc);
        return cli_usage("train", "--out FILE is required");
    }
    LossMode lm;
    if (loss && loss_mode_parse(loss, &lm)) {
        cli_common_free(&cc);
        return cli_usage("train", "--loss '%s': expected global, fine, fine-fn, fine-fn-disease or "
                         "supervised",
                         loss);
    }
    long long v;
    if ((seed && cli_parse_i64(seed, 0, INT64_MAX, &v)) ||
        (threads && cli_parse_i64(threads, 0, 1024, &v)) ||
        (epochs && cli_parse_i64(epochs, 1, 1000000, &v)) ||
        (steps && cli_parse_i64(steps, 0, 1ll << 40, &v))) {
        cli_common_free(&cc);
        return cli_usage("train", "--seed, --threads, --epochs and --steps take counts");
    }
    FvErr e = {0};
    char *base = NULL, *preset_owned = NULL;
    size_t len;
    StFile *ck = NULL;
    /* The first layer of settings: the checkpoint's own when resuming, else
     * the preset; then --config, then --set and the options above. */
    if (resume) {
        if (st_open(&ck, out, &e)) {
            err_prefix(&e, "--resume");
            goto fail;
        }
        const char *ini = st_meta(ck, "fvlm.config");
        const char *p = st_meta(ck, "fvlm.preset");
        if (!ini || !*ini) {
            err_set(&e, FV_EFORMAT, "%s: no fvlm.config in its metadata: not a training checkpoint",
                    out);
            goto fail;
        }
        if (preset && p && strcmp(preset, p) != 0) {
            err_set(&e, FV_EUSAGE, "--preset %s, but %s was trained with preset %s", preset, out,
                    p);
            goto fail;
        }
        if (!(base = strdup(ini)) || (p && !(preset_owned = strdup(p)))) {
            err_set(&e, FV_ENOMEM, "out of memory");
            goto fail;
        }
        preset = preset_owned;
        st_close(&ck);
    } else {
        if (!preset)
            preset = "small";
        char name[64];
        snprintf(name, sizeof name, "preset_%s.ini", preset);
        if (strchr(preset, '/') || schema_load(name, &base, &len, &e)) {
            cli_common_free(&cc);
            return cli_usage("train", "--preset '%s': expected tiny, small or base", preset);
        }
    }
    if (config_parse(&cc.config, base, resume ? out : "preset", &e))
        goto fail;
    if (cli_common_finish(&cc, &e)) {
        rc = cli_finish_fail(&e);
        goto done;
    }
    if ((loss && config_set(&cc.config, "train.loss", loss, &e)) ||
        (seed && config_set(&cc.config, "train.seed", seed, &e)) ||
        (threads && config_set(&cc.config, "train.threads", threads, &e)) ||
        (epochs && config_set(&cc.config, "train.epochs", epochs, &e)) ||
        (steps && config_set(&cc.config, "train.steps", steps, &e)))
        goto fail;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* under mpirun: join the other ranks (a build without MPI refuses) */
    Dist dist;
    if (dist_init(&dist, &argc, &argv, &e))
        goto fail;
    if (dist.rank > 0 && !cc.quiet)
        log_set_level(LOG_WARN); /* rank 0 tells the progress for all */
    TrainArgs a = {cc.db, out, preset, resume, deterministic, argc, argv, &g_stop, &dist};
    TrainResult r;
    if (train_run(&a, &cc.config, &r, &e)) {
        if (dist.size > 1) {
            /* the other ranks would wait for this one in a collective */
            fprintf(stderr, "fvlm train: rank %d of %d: %s; ending every rank\n", dist.rank,
                    dist.size, e.msg);
            dist_abort(&dist, EXIT_FAIL);
        }
        dist_finish(&dist);
        goto fail;
    }
    dist_finish(&dist);
    if (dist.rank > 0) {
        rc = r.stopped ? EXIT_FAIL : EXIT_OK;
        goto done;
    }
    if (cc.json) {
        Buf b = {0};
        JsonW w;
        jw_init(&w, &b, 0);
        jw_obj(&w);
        jw_key(&w, "model"); jw_str(&w, out);
        jw_key(&w, "run_id"); jw_int(&w, r.run_id);
        jw_key(&w, "model_id"); jw_int(&w, r.model_id);
        jw_key(&w, "step"); jw_int(&w, r.step);
        jw_key(&w, "steps"); jw_int(&w, r.steps);
        jw_key(&w, "loss"); jw_num(&w, r.loss);
        jw_key(&w, "val_loss"); jw_num(&w, r.val_loss);
        jw_key(&w, "seconds"); jw_num(&w, r.seconds);
        jw_key(&w, "data_wait_s"); jw_num(&w, r.wait_s);
        jw_key(&w, "stopped"); jw_bool(&w, r.stopped);
        jw_key(&w, "train_studies"); jw_int(&w, r.n_train);
        jw_key(&w, "valid_studies"); jw_int(&w, r.n_valid);
        jw_key(&w, "anatomies"); jw_int(&w, r.n_anat);
        jw_key(&w, "vocab"); jw_int(&w, r.vocab);
        jw_key(&w, "params"); jw_int(&w, (int64_t)r.params);
        jw_obj_end(&w);
        printf("%s\n", b.data);
        buf_free(&b);
    } else {
        printf("%s: step %lld of %lld%s, loss %.4f, validation loss %.4f, %.1f s (run %lld)\n",
               out, (long long)r.step, (long long)r.steps, r.stopped ? " (stopped)" : "", r.loss,
               r.val_loss, r.seconds, (long long)r.run_id);
    }
    rc = r.stopped ? EXIT_FAIL : EXIT_OK;
    goto done;
fail:
    rc = cli_fail(&e);
done:
    st_close(&ck);
    free(base);
    free(preset_owned);
    cli_common_free(&cc);
    return rc;
}
