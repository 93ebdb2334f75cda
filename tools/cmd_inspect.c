/* fvlm inspect: what ingest would read from a file, folder or archive member. */
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "commands.h"
#include "inspect.h"

static const char *help =
    "usage: fvlm inspect [options] PATH\n\n"
    "Prints, as JSON, what ingest would read from PATH: a file, a folder, an archive,\n"
    "or `archive.tar.gz:member` (a trailing '/' selects every member under that folder\n"
    "of the archive). NIfTI: header fields, extensions, label table; DICOM: one file's\n"
    "attributes, or the series stacked as ingest stacks it (with its notes on scouts,\n"
    "gaps, duplicates); every volume: geometry in the source orientation (shape x y z,\n"
    "spacing, affine to RAS+ mm, orientation code, obliquity), dtype and value\n"
    "statistics (HU for CT); masks: voxels per label; reports: encoding, language and\n"
    "the de-identified text. No identifying DICOM attribute is printed.\n\n"
    "options:\n"
    "  --tensor FILE      also write the first volume as float32 (z, y, x) safetensors\n"
    "                     (tensor \"volume\", metadata \"affine\"), in source orientation\n"
    "  --mask             read NIfTI files as label masks (uint8)\n"
    "  --set KEY=VALUE    ingest.max_voxels bounds what is read\n"
    "  --help             this help\n";

int cmd_inspect(int argc, char **argv)
{
    enum { OPT_TENSOR = OPT_FIRST_PRIVATE, OPT_MASK };
    static const struct option opts[] = {
        {"tensor", required_argument, 0, OPT_TENSOR},
        {"mask", no_argument, 0, OPT_MASK},
        {"set", required_argument, 0, OPT_SET},
        {"json", no_argument, 0, OPT_JSON},
        {"help", no_argument, 0, OPT_HELP},
        {0, 0, 0, 0},
    };
    InspectOpts o = {(int64_t)512 * 512 * 2000, NULL, 0};
    Config cfg;
    config_init(&cfg);
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        FvErr e = {0};
        switch (opt) {
        case OPT_TENSOR: o.tensor_out = optarg; break;
        case OPT_MASK: o.as_mask = 1; break;
        case OPT_JSON: break; /* the output is JSON anyway */
        case OPT_SET: {
            const char *eq = strchr(optarg, '=');
            char key[128];
            if (!eq || (size_t)(eq - optarg) >= sizeof key) {
                config_free(&cfg);
                return cli_usage("inspect", "--set expects KEY=VALUE");
            }
            snprintf(key, sizeof key, "%.*s", (int)(eq - optarg), optarg);
            if (config_set(&cfg, key, eq + 1, &e)) {
                config_free(&cfg);
                return cli_fail(&e);
            }
            break;
        }
        case OPT_HELP:
            fputs(help, stdout);
            config_free(&cfg);
            return EXIT_OK;
        default:
            config_free(&cfg);
            return cli_usage("inspect", "unknown option");
        }
    }
    if (optind + 1 != argc) {
        config_free(&cfg);
        return cli_usage("inspect", optind >= argc ? "no PATH given" : "one PATH at a time");
    }
    FvErr e = {0};
    if (config_int(&cfg, "ingest.max_voxels", o.max_voxels, &o.max_voxels, &e) ||
        o.max_voxels < 1) {
        config_free(&cfg);
        if (!e.msg[0])
            err_set(&e, FV_EUSAGE, "ingest.max_voxels must be positive");
        return cli_usage("inspect", "%s", e.msg);
    }
    config_free(&cfg);
    Buf out = {0};
    int rc = inspect_path(argv[optind], &o, &out, &e);
    if (out.len)
        fwrite(out.data, 1, out.len, stdout);
    buf_free(&out);
    return rc ? cli_fail(&e) : EXIT_OK;
}
