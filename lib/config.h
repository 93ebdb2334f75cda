/* config: run configuration as `section.key = value` pairs.
 *
 * File format (INI-like, UTF-8):
 *     # comment
 *     [ingest]
 *     spacing = 1.5, 1.5, 3.0     # mm, x y z
 *     [deid]
 *     key = env:FVLM_DEID_KEY
 * A key outside any section is top-level ("seed"). Later settings override
 * earlier ones; command-line options are applied with config_set after the
 * file. The effective config is recorded as JSON in the run. A value of the
 * form env:NAME reads the environment variable NAME when queried.
 *
 * One rule for every command: a file may hold every stage's sections (one
 * config for a whole pipeline); config_check refuses a section or key that
 * no stage knows (a typo would otherwise be a silent default). The known
 * sections and keys are one table, in config.c. */
#ifndef FVLM_CONFIG_H
#define FVLM_CONFIG_H

#include <stdint.h>

#include "buf.h"
#include "error.h"

typedef struct ConfigItem {
    char *key;   /* "section.key" */
    char *value;
    int used;    /* read by some stage */
    char *origin; /* where it was set: "FILE:LINE", "--set", or NULL (by the program) */
} ConfigItem;

typedef struct Config {
    ConfigItem *items;
    int n, cap;
} Config;

void config_init(Config *c);
void config_free(Config *c);
/* Parses a file into c (adding to what is there). Errors name file and line. */
int config_load(Config *c, const char *path, FvErr *e);
int config_parse(Config *c, const char *text, const char *name, FvErr *e);
int config_set(Config *c, const char *key, const char *value, FvErr *e);
/* config_set that remembers where the setting came from (for messages):
 * "FILE:LINE" or "--set"; NULL is the program itself. */
int config_set_at(Config *c, const char *key, const char *value, const char *origin, FvErr *e);

/* Every key of c against the table of known settings. Fails (FV_EUSAGE) at
 * the first key in an unknown section, or unknown in its section, naming
 * where it was set, the key, and the known sections or the section's known
 * keys. */
int config_check(const Config *c, FvErr *e);
/* Whether key ("section.key" or a top-level "key") is a known setting. */
int config_known(const char *key);

/* Getters return def when the key is absent. A present value that does not
 * parse is an error (FV_EUSAGE naming the key). */
const char *config_str(Config *c, const char *key, const char *def);
int config_int(Config *c, const char *key, int64_t def, int64_t *out, FvErr *e);
int config_double(Config *c, const char *key, double def, double *out, FvErr *e);
/* A comma-separated list of exactly n numbers. */
int config_doubles(Config *c, const char *key, const double *def, int n, double *out, FvErr *e);

/* Writes the effective config as a JSON object (env: values are not expanded,
 * so secrets never reach the database). */
void config_to_json(const Config *c, Buf *b);
/* Keys set but never read, comma-separated into b (empty when none). */
void config_unused(const Config *c, const char *section_prefix, Buf *b);

#endif
