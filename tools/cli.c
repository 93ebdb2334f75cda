#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deid.h"
#include "log.h"

void cli_common_init(CliCommon *c)
{
    memset(c, 0, sizeof *c);
    c->db = "corpus.db";
    config_init(&c->config);
}

void cli_common_free(CliCommon *c) { config_free(&c->config); }

/* --set values are kept until finish so the file (loaded later) never
 * overrides the command line. */
static char *g_sets[64];
static int g_nsets;

int cli_common_opt(CliCommon *c, int opt, const char *arg, const char *help, int *exit_now)
{
    *exit_now = -1;
    switch (opt) {
    case OPT_DB: c->db = arg; return 1;
    case OPT_CONFIG: c->config_path = arg; return 1;
    case OPT_SET:
        if (!strchr(arg, '=') || strchr(arg, '=') - arg >= 256 || g_nsets >= 64) {
            fprintf(stderr, "fvlm: --set expects KEY=VALUE, got '%s'\n", arg);
            *exit_now = EXIT_USAGE;
            return -1;
        }
        g_sets[g_nsets++] = (char *)arg;
        return 1;
    case OPT_QUIET:
        c->quiet = 1;
        log_set_level(LOG_ERROR);
        return 1;
    case OPT_VERBOSE: log_set_level(LOG_DEBUG); return 1;
    case OPT_JSON: c->json = 1; return 1;
    case OPT_HELP:
        fputs(help, stdout);
        *exit_now = EXIT_OK;
        return 1;
    default: return 0;
    }
}

int cli_common_finish(CliCommon *c, FvErr *e)
{
    if (c->config_path && config_load(&c->config, c->config_path, e))
        return -1;
    for (int i = 0; i < g_nsets; i++) {
        char key[256];
        const char *eq = strchr(g_sets[i], '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - g_sets[i]), g_sets[i]);
        if (config_set_at(&c->config, key, eq + 1, "--set", e))
            return -1;
    }
    g_nsets = 0;
    /* One rule for every command: any stage's section may be there, an
     * unknown section or key is an error. */
    return config_check(&c->config, e);
}

int cli_finish_fail(const FvErr *e)
{
    cli_fail(e);
    return e->code == FV_EUSAGE ? EXIT_USAGE : EXIT_FAIL;
}

int cli_next_opt(CliCommon *c, int argc, char **argv, const struct option *opts, const char *cmd,
                 const char *help, int *code)
{
    if (!c->started) {
        /* glibc starts afresh at optind 0 (argv[0] is the subcommand); our
         * messages replace getopt's, and the leading ':' tells a missing
         * value from an unknown option. */
        optind = 0;
        opterr = 0;
        c->started = 1;
    }
    for (;;) {
        int opt = getopt_long(argc, argv, ":", opts, NULL);
        if (opt == -1)
            return CLI_DONE;
        if (opt == '?' || opt == ':') {
            char name[64];
            if (optopt > 0 && optopt < 256)
                snprintf(name, sizeof name, "-%c", optopt);
            else
                snprintf(name, sizeof name, "%s", argv[optind - 1]);
            for (const struct option *o = opts; opt == ':' && o->name; o++)
                if (o->val == optopt)
                    snprintf(name, sizeof name, "--%s", o->name);
            *code = opt == ':' ? cli_usage(cmd, "option '%s' needs a value", name)
                               : cli_usage(cmd, "unknown option '%s'", name);
            return CLI_EXIT;
        }
        int exit_now;
        int h = cli_common_opt(c, opt, optarg, help, &exit_now);
        if (h < 0 || (h == 1 && exit_now >= 0)) {
            *code = h < 0 ? EXIT_USAGE : exit_now;
            return CLI_EXIT;
        }
        if (h == 0)
            return opt;
    }
}

int cli_common_only(CliCommon *c, int argc, char **argv, int want, const char *cmd,
                    const char *help, int *code)
{
    static const struct option common[] = {CLI_COMMON_OPTIONS};
    static const int bit[] = {CLI_WANT_DB, CLI_WANT_CONFIG, CLI_WANT_SET, CLI_WANT_QUIET,
                              CLI_WANT_VERBOSE, CLI_WANT_JSON, 0};
    enum { NCOMMON = sizeof common / sizeof common[0] };
    _Static_assert(sizeof bit / sizeof bit[0] == NCOMMON, "a CLI_WANT_ bit per common option");
    struct option opts[NCOMMON + 1];
    int n = 0;
    for (int i = 0; i < NCOMMON; i++)
        if (!bit[i] || (want & bit[i]))
            opts[n++] = common[i];
    opts[n] = (struct option){0, 0, 0, 0};
    int opt;
    while ((opt = cli_next_opt(c, argc, argv, opts, cmd, help, code)) != CLI_DONE)
        if (opt == CLI_EXIT)
            return -1;
    return 0;
}

int cli_write(Buf *b)
{
    int rc = EXIT_OK;
    if (b->failed) {
        log_error("stdout: out of memory");
        rc = EXIT_FAIL;
    } else if (b->len) {
        fwrite(b->data, 1, b->len, stdout);
    }
    buf_free(b);
    return rc;
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
    fprintf(stderr, "fvlm %s: ", cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'fvlm %s --help'.\n", cmd);
    return EXIT_USAGE;
}

int cli_fail(const FvErr *e)
{
    log_error("%s", e->msg[0] ? e->msg : "unknown error");
    return EXIT_FAIL;
}

int cli_parse_i64(const char *s, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int cli_study_by_accession(CliCommon *c, Db *db, const char *accession, int64_t *id, FvErr *e)
{
    const char *key;
    DeidMatch *m = NULL;
    int n = 0;
    *id = 0;
    if (deid_key(&c->config, &key, e) || deid_study_find(db, key, accession, &m, &n, e))
        return -1;
    if (n == 0)
        return err_set(e, FV_ENOTFOUND,
                       "%s has no study with this accession: check it (the DICOM "
                       "AccessionNumber, the archive or study-folder name, the "
                       "StudyInstanceUID or a CT-RATE volume name)",
                       db->path);
    if (n > 1) {
        Buf ids = {0};
        for (int i = 0; i < n && i < 20; i++)
            buf_printf(&ids, "%s%lld", i ? ", " : "", (long long)m[i].study_id);
        err_set(e, FV_EUSAGE,
                "this accession names %d studies of %s (ids %s%s): `fvlm key` lists them; "
                "choose one by its id",
                n, db->path, ids.data ? ids.data : "", n > 20 ? ", ..." : "");
        buf_free(&ids);
        free(m);
        return -1;
    }
    *id = m[0].study_id;
    free(m);
    return 0;
}
