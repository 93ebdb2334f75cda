/* fvlm stats: a corpus summarised. */
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "json.h"
#include "summary.h"

static const char *help =
    "usage: fvlm stats [--db FILE] [--json]\n\n"
    "Summarises a corpus: studies by split and dataset and how many have a volume,\n"
    "a mask and a report; volume grids (min/median/max), spacings, source orientations\n"
    "and dtypes, HU range; masks (resampled); reports by language, encoding and format\n"
    "with de-identification placeholders; members by kind and status; the last ingest\n"
    "runs; the most frequent errors; tensor shards on disk.\n\n"
    "options:\n"
    "  --db FILE          corpus database (default corpus.db)\n"
    "  --json             the summary as one JSON object\n"
    "  --help             this help\n";

static void print_obj(const JsonValue *o, const char *indent)
{
    for (size_t i = 0; i < o->len; i++) {
        const JsonValue *v = &o->items[i];
        const char *k = o->keys[i];
        if (v->type == JSON_OBJ) {
            printf("%s%s:", indent, k);
            if (v->len == 0) {
                printf(" -\n");
                continue;
            }
            int flat = 1;
            for (size_t j = 0; j < v->len; j++)
                flat &= v->items[j].type == JSON_NUM;
            if (flat) {
                for (size_t j = 0; j < v->len; j++)
                    if (v->items[j].is_int)
                        printf("%s %s %lld", j ? "," : "", v->keys[j],
                               (long long)v->items[j].i);
                    else
                        printf("%s %s %g", j ? "," : "", v->keys[j], v->items[j].num);
                printf("\n");
            } else {
                printf("\n");
                char deeper[32];
                snprintf(deeper, sizeof deeper, "%s  ", indent);
                print_obj(v, deeper);
            }
        } else if (v->type == JSON_ARR) {
            printf("%s%s:", indent, k);
            for (size_t j = 0; j < v->len; j++) {
                const JsonValue *x = &v->items[j];
                if (x->type == JSON_NUM && x->is_int)
                    printf(" %lld", (long long)x->i);
                else if (x->type == JSON_NUM)
                    printf(" %g", x->num);
                else if (x->type == JSON_OBJ)
                    printf("\n%s  run %lld %s %s errors %lld", indent,
                           (long long)json_get_int(x, "id", 0), json_get_str(x, "status", "?"),
                           json_get_str(x, "started_at", "?"),
                           (long long)json_get_int(x, "errors", 0));
            }
            printf("\n");
        } else if (v->type == JSON_NUM && v->is_int) {
            printf("%s%s: %lld\n", indent, k, (long long)v->i);
        } else if (v->type == JSON_NUM) {
            printf("%s%s: %g\n", indent, k, v->num);
        } else if (v->type == JSON_STR) {
            printf("%s%s: %s\n", indent, k, v->str);
        }
    }
}

int cmd_stats(int argc, char **argv)
{
    CliCommon cc;
    int code;
    cli_common_init(&cc);
    if (cli_common_only(&cc, argc, argv, CLI_WANT_DB | CLI_WANT_JSON, "stats", help, &code))
        return code;
    if (optind < argc)
        return cli_usage("stats", "unexpected argument '%s'", argv[optind]);
    FvErr e = {0};
    Db *db;
    if (db_open(&db, cc.db, DB_READONLY | DB_MUST_EXIST, &e))
        return cli_fail(&e);
    Buf out = {0};
    int rc = corpus_summary(db, &out, &e);
    db_close(&db);
    if (rc) {
        buf_free(&out);
        return cli_fail(&e);
    }
    if (cc.json)
        return cli_write(&out);
    JsonValue *v;
    rc = json_parse(out.data, out.len, &v, &e);
    buf_free(&out);
    if (rc)
        return cli_fail(&e);
    printf("corpus %s\n", cc.db);
    print_obj(v, "  ");
    json_free(&v);
    return EXIT_OK;
}
