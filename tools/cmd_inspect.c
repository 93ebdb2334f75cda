/* fvlm inspect: what ingest would read from a file, folder or archive member. */
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "commands.h"
#include "inspect.h"
#include "json.h"
#include "log.h"

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

/* Prints each item's "error" of the inspect JSON in out as one line on
 * stderr; returns how many (1 when out is not the JSON expected or lists
 * no item: an empty folder is not a successful inspection). */
static int count_item_errors(const char *path, const Buf *out)
{
    JsonValue *root = NULL;
    FvErr e = {0};
    if (!out->data || json_parse(out->data, out->len, &root, &e)) {
        log_error("%s: inspect wrote unreadable JSON: %s", path, e.msg);
        return 1;
    }
    int n = 0;
    const JsonValue *items = json_get(root, "items");
    for (size_t i = 0; items && items->type == JSON_ARR && i < items->len; i++) {
        const char *why = json_get_str(&items->items[i], "error", NULL);
        if (!why)
            continue;
        const char *member = json_get_str(&items->items[i], "member", "");
        if (*member && strcmp(member, path))
            log_error("%s: %s: %s", path, member, why);
        else
            log_error("%s: %s", path, why);
        n++;
    }
    if (!items || items->type != JSON_ARR || items->len == 0) {
        log_error("%s: nothing that ingest reads (no NIfTI, DICOM, mask or report)", path);
        n++;
    }
    json_free(&root);
    return n;
}

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
    CliCommon cc;
    cli_common_init(&cc);
    int opt, code;
    while ((opt = cli_next_opt(&cc, argc, argv, opts, "inspect", help, &code)) != CLI_DONE) {
        switch (opt) {
        case OPT_TENSOR: o.tensor_out = optarg; break;
        case OPT_MASK: o.as_mask = 1; break;
        default: return code; /* CLI_EXIT */
        }
    }
    if (optind + 1 != argc)
        return cli_usage("inspect", optind >= argc ? "no PATH given" : "one PATH at a time");
    FvErr e = {0};
    if (cli_common_finish(&cc, &e)) {
        cli_common_free(&cc);
        return cli_finish_fail(&e);
    }
    if (config_int(&cc.config, "ingest.max_voxels", o.max_voxels, &o.max_voxels, &e) ||
        o.max_voxels < 1) {
        cli_common_free(&cc);
        if (!e.msg[0])
            err_set(&e, FV_EUSAGE, "ingest.max_voxels must be positive");
        return cli_usage("inspect", "%s", e.msg);
    }
    cli_common_free(&cc);
    Buf out = {0};
    int rc = inspect_path(argv[optind], &o, &out, &e);
    int bad = rc ? 0 : count_item_errors(argv[optind], &out);
    int wrc = cli_write(&out);
    if (rc)
        return cli_fail(&e);
    /* The JSON is printed either way; an item that could not be read is a
     * failure, said on stderr (scripts check the exit status, not JSON). */
    return bad ? EXIT_FAIL : wrc;
}
