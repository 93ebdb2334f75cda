/* fvlm synth: write a synthetic corpus (phantom CTs, TotalSegmentator-style
 * masks, Chinese and English reports, ground truth) in hospital and CT-RATE
 * layouts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "commands.h"
#include "json.h"
#include "oracle.h"
#include "synth.h"

static const char *help =
    "usage: fvlm synth --out DIR --studies N --seed S [--layout hospital|ctrate|both]\n"
    "                  [--lang zh|en|mix] [--size tiny|small] [--test-fraction F]\n"
    "                  [--min-prevalence P] [--oracle-input Z,Y,X] [--threads T] [--force]\n"
    "                  [--json]\n\n"
    "Writes N synthetic CT studies under DIR, as hospitals and public datasets export them:\n"
    "  hospital/<train|test>/<accession>.tar.gz|.zip  a DICOM series (dicom/IM0001.dcm ...),\n"
    "      the TotalSegmentator mask (seg.nii.gz, or seg/<class>.nii.gz) and report.txt\n"
    "      (UTF-8, UTF-8 with BOM or GB18030; fake personal data in headers and report)\n"
    "  ctrate/<train|valid>/... .nii.gz, ctrate/masks/..., reports.csv, labels.csv, metadata.csv\n"
    "  truth/labels.csv     study_id + one 0/1 column per task of findings.tsv (disease in the image)\n"
    "  truth/studies.jsonl  per study: ids, split, language, path, labels_image, labels_reported,\n"
    "      anatomy_status, covered and whole anatomies, lesions (centre in RAS mm, size, HU),\n"
    "      geometry as written\n"
    "  truth/oracle.csv     study_id + per task the share of its anatomy's points on the model's\n"
    "      input grid (crop + resample as fvlm train) that the change moves by >= 20 HU: the\n"
    "      score of an oracle that knows where to look (0 when absent or too small to see)\n"
    "Each study is a phantom patient (lungs with five lobes, heart, aorta, airway, abdominal\n"
    "organs, spine, ribs ...) with diseases drawn from the prevalences of findings.tsv, each\n"
    "a visible change in its anatomy, and a report that describes them. The same options give\n"
    "byte-identical files whatever the thread count.\n\n"
    "options:\n"
    "  --out DIR            output folder (new or empty; --force replaces a corpus there)\n"
    "  --studies N          number of studies (default 8)\n"
    "  --seed S             random seed (default 0)\n"
    "  --layout L           hospital, ctrate or both (default both)\n"
    "  --lang L             report language of hospital studies: zh, en or mix (default mix;\n"
    "                       CT-RATE reports are English)\n"
    "  --size S             tiny (48 x 40 x 24 voxels, for tests) or small (~2.5-3.5 mm\n"
    "                       in-plane, 110-140 pixels, 4-5 mm slices; default)\n"
    "  --test-fraction F    fraction of patients in the test split (default 0.2)\n"
    "  --min-prevalence P   raise every task's prevalence to at least P (default 0)\n"
    "  --noise-rate R       fraction of present findings the report misses or hedges (0.03)\n"
    "  --oracle-input Z,Y,X the model input oracle.csv is measured at (default 32,64,64,\n"
    "                       the small preset's)\n"
    "  --threads T          studies generated in parallel (default 1)\n"
    "  --force              remove hospital/, ctrate/ and truth/ from DIR first\n"
    "  --json               print the summary as JSON on stdout\n"
    "  --quiet, --verbose   less or more on stderr\n"
    "  --help               this help\n";

enum {
    OPT_OUT = OPT_FIRST_PRIVATE, OPT_STUDIES, OPT_LAYOUT, OPT_LANG, OPT_SIZE, OPT_TESTFRAC,
    OPT_MINPREV, OPT_THREADS, OPT_FORCE, OPT_NOISE,
    OPT_ORACLE
};

static int parse_frac(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= 0 && v <= 1))
        return -1;
    *out = v;
    return 0;
}

int cmd_synth(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, OPT_OUT},
        {"studies", required_argument, 0, OPT_STUDIES},
        {"seed", required_argument, 0, OPT_SEED},
        {"layout", required_argument, 0, OPT_LAYOUT},
        {"lang", required_argument, 0, OPT_LANG},
        {"size", required_argument, 0, OPT_SIZE},
        {"test-fraction", required_argument, 0, OPT_TESTFRAC},
        {"min-prevalence", required_argument, 0, OPT_MINPREV},
        {"noise-rate", required_argument, 0, OPT_NOISE},
        {"oracle-input", required_argument, 0, OPT_ORACLE},
        {"threads", required_argument, 0, OPT_THREADS},
        {"force", no_argument, 0, OPT_FORCE},
        {"json", no_argument, 0, OPT_JSON},
        {"quiet", no_argument, 0, OPT_QUIET},
        {"verbose", no_argument, 0, OPT_VERBOSE},
        {"help", no_argument, 0, OPT_HELP},
        {0, 0, 0, 0},
    };
    SynthOptions o;
    synth_options_default(&o);
    CliCommon cc;
    cli_common_init(&cc);
    int opt, code;
    long long v;
    while ((opt = cli_next_opt(&cc, argc, argv, opts, "synth", help, &code)) != CLI_DONE) {
        switch (opt) {
        case OPT_OUT: o.out = optarg; break;
        case OPT_STUDIES:
            if (cli_parse_i64(optarg, 1, 10000000, &v))
                return cli_usage("synth", "--studies expects 1..10000000, got '%s'", optarg);
            o.studies = v;
            break;
        case OPT_SEED:
            if (cli_parse_i64(optarg, 0, 0x7FFFFFFFFFFFFFFFll, &v))
                return cli_usage("synth", "--seed expects a non-negative integer, got '%s'", optarg);
            o.seed = (uint64_t)v;
            break;
        case OPT_LAYOUT:
            if (!strcmp(optarg, "hospital"))
                o.layout = SYNTH_HOSPITAL;
            else if (!strcmp(optarg, "ctrate"))
                o.layout = SYNTH_CTRATE;
            else if (!strcmp(optarg, "both"))
                o.layout = SYNTH_BOTH;
            else
                return cli_usage("synth", "--layout expects hospital, ctrate or both, got '%s'", optarg);
            break;
        case OPT_LANG:
            if (!strcmp(optarg, "zh"))
                o.lang = SYNTH_LANG_ZH;
            else if (!strcmp(optarg, "en"))
                o.lang = SYNTH_LANG_EN;
            else if (!strcmp(optarg, "mix"))
                o.lang = SYNTH_LANG_MIX;
            else
                return cli_usage("synth", "--lang expects zh, en or mix, got '%s'", optarg);
            break;
        case OPT_SIZE:
            if (!strcmp(optarg, "tiny"))
                o.size = SYNTH_TINY;
            else if (!strcmp(optarg, "small"))
                o.size = SYNTH_SMALL;
            else if (!strcmp(optarg, "full"))
                o.size = SYNTH_FULL; /* realistic 0.6-0.9 mm grids; large and slow, not advertised */
            else
                return cli_usage("synth", "--size expects tiny or small, got '%s'", optarg);
            break;
        case OPT_TESTFRAC:
            if (parse_frac(optarg, &o.test_fraction))
                return cli_usage("synth", "--test-fraction expects a number in [0, 1], got '%s'", optarg);
            break;
        case OPT_MINPREV:
            if (parse_frac(optarg, &o.min_prevalence))
                return cli_usage("synth", "--min-prevalence expects a number in [0, 1], got '%s'", optarg);
            break;
        case OPT_NOISE:
            if (parse_frac(optarg, &o.noise_rate) || o.noise_rate > 0.5)
                return cli_usage("synth", "--noise-rate expects a number in [0, 0.5], got '%s'", optarg);
            break;
        case OPT_ORACLE: {
            int zyx[3], used = 0;
            if (sscanf(optarg, "%d,%d,%d%n", &zyx[0], &zyx[1], &zyx[2], &used) != 3 ||
                optarg[used] || zyx[0] < 1 || zyx[1] < 1 || zyx[2] < 1 ||
                zyx[0] > ORACLE_MAX_N || zyx[1] > ORACLE_MAX_N || zyx[2] > ORACLE_MAX_N)
                return cli_usage("synth", "--oracle-input expects Z,Y,X voxels, each 1..%d, got '%s'",
                                 ORACLE_MAX_N, optarg);
            memcpy(o.oracle_input, zyx, sizeof zyx);
            break;
        }
        case OPT_THREADS:
            if (cli_parse_i64(optarg, 1, 64, &v))
                return cli_usage("synth", "--threads expects 1..64, got '%s'", optarg);
            o.threads = (int)v;
            break;
        case OPT_FORCE: o.force = 1; break;
        default: return code; /* CLI_EXIT */
        }
    }
    if (optind < argc)
        return cli_usage("synth", "unexpected argument '%s'", argv[optind]);
    if (!o.out)
        return cli_usage("synth", "--out DIR is required");
    FvErr e = {0};
    SynthStats st;
    if (synth_run(&o, &st, &e))
        return cli_fail(&e);
    double mb = st.bytes / 1e6, rate = st.seconds > 0 ? mb / st.seconds : 0;
    if (cc.json) {
        Buf b = {0};
        JsonW w;
        jw_init(&w, &b, 0);
        jw_obj(&w);
        jw_key(&w, "out"); jw_str(&w, o.out);
        jw_key(&w, "studies"); jw_int(&w, st.studies);
        jw_key(&w, "hospital"); jw_int(&w, st.hospital);
        jw_key(&w, "ctrate"); jw_int(&w, st.ctrate);
        jw_key(&w, "test"); jw_int(&w, st.test);
        jw_key(&w, "files"); jw_int(&w, st.files);
        jw_key(&w, "bytes"); jw_int(&w, st.bytes);
        jw_key(&w, "lesions"); jw_int(&w, st.lesions);
        jw_key(&w, "findings_present"); jw_int(&w, st.findings_present);
        jw_key(&w, "findings_reported"); jw_int(&w, st.findings_reported);
        jw_key(&w, "seconds"); jw_num(&w, st.seconds);
        jw_key(&w, "mb_per_s"); jw_num(&w, rate);
        jw_obj_end(&w);
        buf_putc(&b, '\n');
        return cli_write(&b);
    }
    printf("synth: %lld studies (%lld hospital, %lld CT-RATE; %lld test), %lld lesions, "
           "%lld files, %.1f MB in %.2f s (%.1f MB/s) -> %s\n",
           (long long)st.studies, (long long)st.hospital, (long long)st.ctrate,
           (long long)st.test, (long long)st.lesions, (long long)st.files, mb, st.seconds, rate,
           o.out);
    return EXIT_OK;
}
