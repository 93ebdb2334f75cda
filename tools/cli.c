#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        if (!strchr(arg, '=') || g_nsets >= 64) {
            fprintf(stderr, "fvlm: --set expects KEY=VALUE, got '%s'\n", arg);
            *exit_now = EXIT_USAGE;
            return -1;
        }
        g_sets[g_nsets++] = (char *)arg;
        return 1;
    case OPT_QUIET: log_set_level(LOG_ERROR); return 1;
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
        if (config_set(&c->config, key, eq + 1, e))
            return -1;
    }
    g_nsets = 0;
    return 0;
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
