/* cli: what every subcommand shares: common options, usage errors, exit codes.
 *
 * Exit codes: 0 ok, 1 failure, 2 usage. Only tools/ prints to stdout and
 * exits; library code returns FvErr values that cli_fail() prints. */
#ifndef FVLM_CLI_H
#define FVLM_CLI_H

#include <getopt.h>

#include "buf.h"
#include "config.h"
#include "db.h"
#include "error.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* Long-option ids shared by subcommands (values above any short option). */
enum {
    OPT_DB = 1000, OPT_CONFIG, OPT_QUIET, OPT_VERBOSE, OPT_JSON, OPT_HELP, OPT_SEED,
    OPT_SET, OPT_FIRST_PRIVATE = 1100
};

typedef struct CliCommon {
    const char *db;          /* --db, default corpus.db */
    const char *config_path; /* --config */
    int json;                /* --json */
    int quiet;               /* --quiet (the log level is set too) */
    int started;             /* cli_next_opt has begun reading argv */
    Config config;           /* file, then --set key=value overrides */
} CliCommon;

/* The common options as getopt_long entries; a subcommand appends its own. */
#define CLI_COMMON_OPTIONS                                  \
    {"db", required_argument, 0, OPT_DB},                   \
    {"config", required_argument, 0, OPT_CONFIG},           \
    {"set", required_argument, 0, OPT_SET},                 \
    {"quiet", no_argument, 0, OPT_QUIET},                   \
    {"verbose", no_argument, 0, OPT_VERBOSE},               \
    {"json", no_argument, 0, OPT_JSON},                     \
    {"help", no_argument, 0, OPT_HELP}

#define CLI_COMMON_HELP                                                                 \
    "  --db FILE          corpus database (default corpus.db)\n"                        \
    "  --config FILE      configuration file (section.key = value, see README)\n"       \
    "  --set KEY=VALUE    override one configuration value (repeatable)\n"              \
    "  --quiet            errors only on stderr; no progress\n"                          \
    "  --verbose          debug messages on stderr\n"                                    \
    "  --json             machine-readable output on stdout\n"                           \
    "  --help             this help\n"

/* A CliCommon holds no memory until cli_common_finish: a command may return
 * from its option loop without cli_common_free. */
void cli_common_init(CliCommon *c);
void cli_common_free(CliCommon *c);
/* Handles one common option. Returns 1 when handled, 0 when opt is not a
 * common option, -1 on a usage error (message printed). For OPT_HELP it
 * prints `help` and returns 2 via *exit_now. */
int cli_common_opt(CliCommon *c, int opt, const char *arg, const char *help, int *exit_now);
/* Loads --config then applies --set overrides (call after option parsing),
 * then checks every setting against the known sections and keys
 * (config_check): a typo is an error (FV_EUSAGE), in a file or in --set. */
int cli_common_finish(CliCommon *c, FvErr *e);
/* Prints a cli_common_finish error; returns EXIT_USAGE for a bad setting
 * (FV_EUSAGE), EXIT_FAIL otherwise (an unreadable file). */
int cli_finish_fail(const FvErr *e);

enum { CLI_DONE = -1, CLI_EXIT = -2 };

/* The option loop of a subcommand: getopt_long over opts (argv[0] is the
 * subcommand), with the common options that opts lists (all or some of
 * CLI_COMMON_OPTIONS) handled here into c. Returns the id of the next
 * option that is the subcommand's own (its value in optarg); CLI_DONE after
 * the last option (optind is then at the first operand); or CLI_EXIT when
 * the command must end now with the exit code in *code: EXIT_OK after --help
 * (the help printed), EXIT_USAGE after an unknown option, an option without
 * its value or a bad --set (the message printed, naming cmd). */
int cli_next_opt(CliCommon *c, int argc, char **argv, const struct option *opts, const char *cmd,
                 const char *help, int *code);

/* The option loop of a subcommand whose options are all common ones: want
 * says which (bits CLI_WANT_*; --help is always there). Returns 0 with
 * optind at the first operand, or -1 when the command must end now with the
 * exit code in *code (as cli_next_opt's CLI_EXIT). */
enum {
    CLI_WANT_DB = 1, CLI_WANT_CONFIG = 2, CLI_WANT_SET = 4, CLI_WANT_QUIET = 8,
    CLI_WANT_VERBOSE = 16, CLI_WANT_JSON = 32
};
int cli_common_only(CliCommon *c, int argc, char **argv, int want, const char *cmd,
                    const char *help, int *code);

/* Writes b to stdout and frees it. Returns EXIT_OK, or EXIT_FAIL (message
 * printed) when b ran out of memory while it was filled. */
int cli_write(Buf *b);

/* Prints "fvlm CMD: message" and the hint to run --help; returns EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the error as one line; returns EXIT_FAIL. */
int cli_fail(const FvErr *e);

/* The studies.id of an accession (--accession on show and export): any
 * identifier of the study a user holds (the DICOM AccessionNumber, the
 * archive or study-folder name, the StudyInstanceUID, a CT-RATE volume
 * name), found by its keyed hash (deid_study_find) under the key from the
 * config (deid.key) or FVLM_DEID_KEY, checked against the corpus's
 * fingerprint. FV_ENOTFOUND when no study has it; FV_EUSAGE naming the
 * study ids when several do. */
int cli_study_by_accession(CliCommon *c, Db *db, const char *accession, int64_t *id, FvErr *e);

/* Parses a non-negative integer option value; returns -1 on a bad value. */
int cli_parse_i64(const char *s, long long min, long long max, long long *out);

#endif
