/* fvlm: one binary, git-style subcommands.
 *
 * The table comes from commands.def. The dispatcher owns process-level
 * concerns: --version, --help, and checking that everything written to stdout
 * really reached it (a full disk or a closed pipe is a failure, exit 1). */
#include <archive.h>
#include <cblas.h>
#include <charls/charls.h>
#include <libdeflate.h>
#include <openjpeg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include <zlib.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "cli.h"
#include "fvlm_config.h"

#include "commands.h"

typedef struct Command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} Command;

static const Command commands[] = {
#define CMD(name, summary) {#name, cmd_##name, summary},
#include "commands.def"
#undef CMD
};
enum { NCOMMANDS = sizeof commands / sizeof commands[0] };

/* Subcommand names are C identifiers in commands.def; users type '-' where
 * the table has '_' (parse_text is `fvlm parse-text`). */
static int name_is(const char *table, const char *typed)
{
    for (; *table && *typed; table++, typed++)
        if (*table != *typed && !(*table == '_' && *typed == '-'))
            return 0;
    return *table == *typed;
}

static void print_name(FILE *f, const char *name)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", name);
    for (char *c = buf; *c; c++)
        if (*c == '_')
            *c = '-';
    fprintf(f, "  %-12s", buf);
}

static void print_help(FILE *f)
{
    fprintf(f,
            "usage: fvlm <command> [options]\n"
            "       fvlm <command> --help\n"
            "       fvlm --version\n\n"
            "fvlm builds fine-grained CT vision-language corpora and models: CT exports and\n"
            "radiology reports in; anatomy-level image/text pairs, disease labels, a trained\n"
            "contrastive model and zero-shot AUC per diagnosis task out.\n\n"
            "commands:\n");
    for (int i = 0; i < NCOMMANDS; i++) {
        print_name(f, commands[i].name);
        fprintf(f, " %s\n", commands[i].summary);
    }
    fprintf(f, "\nExit status: 0 ok, 1 failure, 2 usage error.\n");
}

static void print_version(void)
{
    char pcre[64] = "?";
    pcre2_config(PCRE2_CONFIG_VERSION, pcre);
    printf("fvlm %s\n", FVLM_VERSION);
    printf("  sqlite %s\n", sqlite3_libversion());
    printf("  %s\n", archive_version_details());
    printf("  pcre2 %s\n", pcre);
    printf("  utf8proc %s\n", utf8proc_version());
    printf("  openblas %s\n", openblas_get_config());
    printf("  zlib %s\n", zlibVersion());
    printf("  libdeflate %s\n", LIBDEFLATE_VERSION_STRING);
    printf("  openjpeg %s\n", opj_version());
    printf("  charls %s\n", charls_get_version_string());
}

/* A write error on stdout must not pass silently: `fvlm export > full-disk`
 * has to fail. */
static int close_stdout(int rc)
{
    if (fflush(stdout) != 0 || ferror(stdout) || fclose(stdout) != 0) {
        fprintf(stderr, "fvlm: error writing to stdout\n");
        return rc == EXIT_OK ? EXIT_FAIL : rc;
    }
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_help(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        print_help(stdout);
        return close_stdout(EXIT_OK);
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        print_version();
        return close_stdout(EXIT_OK);
    }
    for (int i = 0; i < NCOMMANDS; i++) {
        if (name_is(commands[i].name, cmd)) {
            int rc = commands[i].fn(argc - 1, argv + 1);
            return close_stdout(rc);
        }
    }
    fprintf(stderr, "fvlm: '%s' is not a command. See 'fvlm --help'.\n", cmd);
    return EXIT_USAGE;
}
