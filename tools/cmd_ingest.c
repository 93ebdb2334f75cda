/* fvlm ingest: CT exports (archives, folders, files) into the corpus. */
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "deid.h"
#include "ingest.h"
#include "json.h"
#include "log.h"
#include "merge.h"
#include "phi.h"
#include "run.h"
#include "vol.h"

static const char *help =
    "usage: fvlm ingest [options] INPUT...\n\n"
    "Reads CT exports into the corpus database: archives (tar, tar.gz/tgz, tar.bz2,\n"
    "tar.xz, tar.zst, zip, 7z: read through libarchive, never extracted), folders\n"
    "(walked recursively, archives inside included) and single files. NIfTI-1/2\n"
    "(.nii, .nii.gz, .hdr/.img), DICOM series (uncompressed, deflated, RLE, JPEG 2000,\n"
    "JPEG-LS), TotalSegmentator masks (multi-label with a label table, or seg/<class>\n"
    "files), reports (.txt in UTF-8, UTF-8 with BOM or GB18030; JSON lines; CT-RATE\n"
    "reports.csv; DICOM structured reports) and CT-RATE metadata.csv.\n\n"
    "Volumes are reoriented to RAS, resampled to the corpus spacing (trilinear for CT,\n"
    "nearest for masks), clipped and stored as int16 HU / uint8 label shards under\n"
    "<db>.tensors/. Study and patient ids are stored only as keyed pseudonyms; report\n"
    "text is de-identified ([NAME], [ID], [DATE], [PHONE], [ADDRESS]); names of archives\n"
    "and folders are stored as keyed hashes (the terminal shows them as given). A member\n"
    "recorded before at the same place with the same sha256 is skipped, so running the\n"
    "same command again (after an interruption, even kill -9) finishes the work without\n"
    "duplicates. Every bad item is one error line and one row in `errors`, every ignored\n"
    "member one info line with the reason; the run goes on.\n\n"
    "options:\n" CLI_COMMON_HELP
    "  --strict           exit 1 when any item failed\n"
    "  --jobs N           threads that resample each volume (default: the cores); the\n"
    "                     database and tensor files are the same for any N\n"
    "  --shard K/N        only the studies of shard K of N (0 <= K < N; by a keyed hash of\n"
    "                     the study id, so a study's files stay together): one corpus per\n"
    "                     shard, marked as such; fvlm merge joins them, then parse and\n"
    "                     align run on the merged corpus (they refuse a shard)\n\n"
    "configuration (--config FILE or --set KEY=VALUE):\n"
    "  deid.key = SECRET          de-identification key (or env FVLM_DEID_KEY); required\n"
    "  ingest.spacing = 1, 1, 3   corpus grid spacing x, y, z in mm\n"
    "  ingest.hu_clip = -1024, 3071   HU range stored\n"
    "  ingest.max_voxels = 524288000  largest volume accepted (checked before allocating)\n"
    "  ingest.max_report_bytes = 1048576  largest report file accepted\n"
    "  ingest.split = path        path: a folder named train, valid/val/validation or test\n"
    "                             decides; else (and with `hash`) a keyed hash of the patient\n"
    "  ingest.split_fractions = 0.8, 0.1, 0.1   train, valid, test for hashed splits\n\n"
    "Exit status: 0 when the run completed (see the error count), 1 on failure (or any\n"
    "failed item with --strict), 2 usage error.\n";

static void on_signal(int sig)
{
    (void)sig;
    ingest_request_stop();
}

/* The effective config for the run record, without the secret. */
static void config_json_safe(const Config *c, Buf *b)
{
    JsonW w;
    jw_init(&w, b, 0);
    jw_obj(&w);
    for (int i = 0; i < c->n; i++) {
        jw_key(&w, c->items[i].key);
        if (!strcmp(c->items[i].key, "deid.key") && strncmp(c->items[i].value, "env:", 4))
            jw_str(&w, "[secret]");
        else
            jw_str(&w, c->items[i].value);
    }
    jw_obj_end(&w);
}

int cmd_ingest(int argc, char **argv)
{
    enum { OPT_STRICT = OPT_FIRST_PRIVATE, OPT_SHARD, OPT_JOBS };
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"strict", no_argument, 0, OPT_STRICT},
        {"shard", required_argument, 0, OPT_SHARD},
        {"jobs", required_argument, 0, OPT_JOBS},
        {0, 0, 0, 0},
    };
    CliCommon cc;
    cli_common_init(&cc);
    int opt, strict = 0, code, shard_k = 0, shard_n = 0;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long long jobs = cores > 0 ? cores : 1;
    while ((opt = cli_next_opt(&cc, argc, argv, opts, "ingest", help, &code)) != CLI_DONE) {
        if (opt == CLI_EXIT)
            return code;
        if (opt == OPT_STRICT) {
            strict = 1;
            continue;
        }
        if (opt == OPT_JOBS) {
            if (cli_parse_i64(optarg, 1, VOL_MAX_THREADS, &jobs)) {
                cli_common_free(&cc);
                return cli_usage("ingest", "--jobs '%s': expected 1..%d", optarg,
                                 VOL_MAX_THREADS);
            }
            continue;
        }
        char end;
        if (sscanf(optarg, "%d/%d%c", &shard_k, &shard_n, &end) != 2 || shard_n < 1 ||
            shard_n > 1 << 20 || shard_k < 0 || shard_k >= shard_n) {
            cli_common_free(&cc);
            return cli_usage("ingest", "--shard '%s': expected K/N with 0 <= K < N", optarg);
        }
    }
    if (optind >= argc) {
        cli_common_free(&cc);
        return cli_usage("ingest", "no INPUT given");
    }
    FvErr e = {0};
    IngestOpts o;
    if (cli_common_finish(&cc, &e) || ingest_opts_load(&o, &cc.config, &e)) {
        cli_common_free(&cc);
        return e.code == FV_EUSAGE ? (log_error("%s", e.msg), EXIT_USAGE) : cli_fail(&e);
    }
    o.shard_k = shard_k;
    o.shard_n = shard_n;
    vol_set_threads((int)jobs);
    Db *db;
    if (db_open(&db, cc.db, 0, &e)) {
        cli_common_free(&cc);
        return cli_fail(&e);
    }
    /* Another key than the corpus's would make new study keys for known
     * studies; a shard's corpus says so (meta shard = K/N): merge and parse
     * check it. */
    if (deid_check_corpus(db, o.key, &e) || ingest_mark_shard(db, shard_k, shard_n, &e)) {
        db_close(&db);
        cli_common_free(&cc);
        return cli_fail(&e);
    }
    Buf cfg = {0};
    config_json_safe(&cc.config, &cfg);
    /* The command line is recorded too: without a key given with --set,
     * and with the names of files de-identified (run_begin_deid). */
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (!args) {
        buf_free(&cfg);
        db_close(&db);
        cli_common_free(&cc);
        err_set(&e, FV_ENOMEM, "out of memory");
        return cli_fail(&e);
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        args[i] = argv[i];
        if (!strncmp(a, "--set=", 6))
            a += 6;
        if (!strncmp(a, "deid.key=", 9) && strncmp(a + 9, "env:", 4))
            args[i] = a == argv[i] ? "deid.key=[secret]" : "--set=deid.key=[secret]";
    }
    Run run;
    int begun = run_begin_deid(&run, db, "ingest", argc, args, cfg.data, -1, o.key, &e);
    free(args);
    if (begun) {
        buf_free(&cfg);
        db_close(&db);
        cli_common_free(&cc);
        return cli_fail(&e);
    }
    buf_free(&cfg);
    /* Volumes of one study are allocated and freed over and over: keep
     * them in the heap instead of mapping fresh zeroed pages from the kernel
     * each time (page faults were a third of the run time). Memory stays at
     * the largest study's high-water mark (plus the reader's read-ahead). */
    mallopt(M_MMAP_MAX, 0); /* glibc caps M_MMAP_THRESHOLD at 32 MiB: no mmap at all */
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_ARENA_MAX, 1); /* the reader thread's buffers too (few, large) */
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    IngestCounts counts;
    int rc = ingest_run(db, &run, &o, argv + optind, argc - optind,
                        isatty(STDERR_FILENO) && log_get_level() >= LOG_INFO, &counts, &e);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    Buf cj = {0};
    ingest_counts_json(&counts, &cj);
    const char *status = rc < 0 ? "failed" : rc > 0 ? "interrupted" : "ok";
    FvErr e2 = {0};
    if (run_finish(&run, status, cj.data, &e2)) {
        if (rc < 0) {
            /* fails for the reason about to be printed (a full disk): one line says it */
            log_debug("recording the failed run: %s", e2.msg);
        } else {
            /* the work is stored but the run is not: not a success */
            e = e2;
            rc = -1;
        }
    }
    int exit_code = EXIT_OK;
    if (rc < 0) {
        exit_code = cli_fail(&e);
    } else {
        if (cc.json) {
            fputs(cj.data, stdout);
            fputc('\n', stdout);
        }
        log_info("ingest %s: %lld units, %lld members (%lld already known), %lld new studies, "
                 "%lld volumes, %lld masks, %lld reports, %lld ignored, %lld failed, "
                 "%lld errors, %.1f s",
                 status, (long long)counts.units, (long long)counts.members,
                 (long long)counts.known, (long long)counts.studies_new,
                 (long long)counts.volumes, (long long)counts.masks, (long long)counts.reports,
                 (long long)counts.ignored, (long long)counts.failed, (long long)counts.errors,
                 counts.seconds);
        if (rc > 0 || (strict && counts.errors > 0))
            exit_code = EXIT_FAIL;
        if (rc == 0 && counts.members == 0 && counts.errors == 0) {
            /* Nothing found is not a corpus built: a wrong folder, say. */
            log_error("no file found in the input: nothing was ingested");
            exit_code = EXIT_FAIL;
        }
    }
    buf_free(&cj);
    db_close(&db);
    cli_common_free(&cc);
    return exit_code;
}
