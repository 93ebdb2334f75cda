#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fsutil.h"
#include "json.h"

void config_init(Config *c) { memset(c, 0, sizeof *c); }

void config_free(Config *c)
{
    for (int i = 0; i < c->n; i++) {
        free(c->items[i].key);
        free(c->items[i].value);
        free(c->items[i].origin);
    }
    free(c->items);
    memset(c, 0, sizeof *c);
}

static ConfigItem *find(const Config *c, const char *key)
{
    for (int i = c->n - 1; i >= 0; i--)
        if (strcmp(c->items[i].key, key) == 0)
            return &c->items[i];
    return NULL;
}

int config_set(Config *c, const char *key, const char *value, FvErr *e)
{
    return config_set_at(c, key, value, NULL, e);
}

int config_set_at(Config *c, const char *key, const char *value, const char *origin, FvErr *e)
{
    char *o = NULL;
    if (origin && !(o = strdup(origin)))
        return err_set(e, FV_ENOMEM, "config: out of memory");
    ConfigItem *it = find(c, key);
    if (it) {
        char *v = strdup(value);
        if (!v) {
            free(o);
            return err_set(e, FV_ENOMEM, "config: out of memory");
        }
        free(it->value);
        it->value = v;
        free(it->origin);
        it->origin = o;
        return 0;
    }
    if (arr_reserve(&c->items, &c->cap, c->n, sizeof *c->items, 16)) {
        free(o);
        return err_set(e, FV_ENOMEM, "config: out of memory");
    }
    ConfigItem *n = &c->items[c->n];
    n->key = strdup(key);
    n->value = strdup(value);
    n->used = 0;
    n->origin = o;
    if (!n->key || !n->value) {
        free(n->key);
        free(n->value);
        free(o);
        return err_set(e, FV_ENOMEM, "config: out of memory");
    }
    c->n++;
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        *--end = '\0';
    return s;
}

int config_parse(Config *c, const char *text, const char *name, FvErr *e)
{
    char section[128] = "";
    const char *p = text;
    int lineno = 0;
    while (*p) {
        lineno++;
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char line[4096];
        if (len >= sizeof line)
            return err_set(e, FV_EUSAGE, "%s:%d: line longer than %zu bytes", name, lineno,
                           sizeof line - 1);
        memcpy(line, p, len);
        line[len] = '\0';
        p = nl ? nl + 1 : p + len;
        /* A '#' starts a comment unless it is inside the value's text: values
         * here never need '#', so cut at the first one. */
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = trim(line);
        if (!*s)
            continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close || close[1] != '\0')
                return err_set(e, FV_EUSAGE, "%s:%d: bad section header", name, lineno);
            *close = '\0';
            snprintf(section, sizeof section, "%s", trim(s + 1));
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq)
            return err_set(e, FV_EUSAGE, "%s:%d: expected 'key = value'", name, lineno);
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        if (!*key)
            return err_set(e, FV_EUSAGE, "%s:%d: empty key", name, lineno);
        char full[300], at[300];
        snprintf(full, sizeof full, "%s%s%s", section, *section ? "." : "", key);
        snprintf(at, sizeof at, "%s:%d", name, lineno);
        if (config_set_at(c, full, value, at, e))
            return -1;
    }
    return 0;
}

int config_load(Config *c, const char *path, FvErr *e)
{
    char *text;
    size_t len;
    if (fs_read_file(path, 1 << 20, &text, &len, e))
        return err_prefix(e, "config");
    int rc = config_parse(c, text, path, e);
    free(text);
    return rc;
}

const char *config_str(Config *c, const char *key, const char *def)
{
    ConfigItem *it = find(c, key);
    if (!it)
        return def;
    it->used = 1;
    if (strncmp(it->value, "env:", 4) == 0) {
        const char *v = getenv(it->value + 4);
        return v ? v : def;
    }
    return it->value;
}

int config_int(Config *c, const char *key, int64_t def, int64_t *out, FvErr *e)
{
    const char *v = config_str(c, key, NULL);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *trim(end))
        return err_set(e, FV_EUSAGE, "config %s = '%s': not an integer", key, v);
    *out = x;
    return 0;
}

int config_double(Config *c, const char *key, double def, double *out, FvErr *e)
{
    const char *v = config_str(c, key, NULL);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    double x = strtod(v, &end);
    if (end == v || *trim(end) || !isfinite(x))
        return err_set(e, FV_EUSAGE, "config %s = '%s': not a number", key, v);
    *out = x;
    return 0;
}

int config_doubles(Config *c, const char *key, const double *def, int n, double *out, FvErr *e)
{
    const char *v = config_str(c, key, NULL);
    if (!v) {
        memcpy(out, def, (size_t)n * sizeof *out);
        return 0;
    }
    const char *p = v;
    for (int i = 0; i < n; i++) {
        char *end;
        out[i] = strtod(p, &end);
        if (end == p || !isfinite(out[i]))
            return err_set(e, FV_EUSAGE, "config %s = '%s': expected %d numbers", key, v, n);
        p = end;
        while (*p == ' ' || *p == '\t')
            p++;
        if (i + 1 < n) {
            if (*p != ',')
                return err_set(e, FV_EUSAGE, "config %s = '%s': expected %d numbers", key, v, n);
            p++;
        }
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p)
        return err_set(e, FV_EUSAGE, "config %s = '%s': expected %d numbers", key, v, n);
    return 0;
}

void config_to_json(const Config *c, Buf *b)
{
    JsonW w;
    jw_init(&w, b, 0);
    jw_obj(&w);
    for (int i = 0; i < c->n; i++) {
        jw_key(&w, c->items[i].key);
        jw_str(&w, c->items[i].value);
    }
    jw_obj_end(&w);
}

void config_unused(const Config *c, const char *section_prefix, Buf *b)
{
    size_t k = section_prefix ? strlen(section_prefix) : 0;
    for (int i = 0; i < c->n; i++) {
        if (c->items[i].used || (k && strncmp(c->items[i].key, section_prefix, k) != 0))
            continue;
        if (b->len)
            buf_puts(b, ", ");
        buf_puts(b, c->items[i].key);
    }
}

/* ---------------------------------------------------------------------------
 * The known settings: every stage's sections and keys, in one table, so that
 * one config file serves a whole pipeline and a typo is an error everywhere.
 * A stage that reads a new key adds it here (and to the README's table).
 * ------------------------------------------------------------------------ */

typedef struct KnownSection {
    const char *name;         /* "" for top-level keys */
    const char *stage;        /* who reads it, for the message */
    const char *const *keys;  /* NULL-terminated */
} KnownSection;

static const char *const top_keys[] = {"seed", NULL};
static const char *const deid_keys[] = {"key", NULL};
static const char *const ingest_keys[] = {"spacing", "hu_clip", "max_voxels", "max_report_bytes",
                                          "split", "split_fractions", NULL};
static const char *const align_keys[] = {"status_rule", "crop_margin_mm", "samples",
                                         "text_methods", NULL};
static const char *const model_keys[] = {
    "input", "patch", "width", "depth", "heads", "mlp", "keep", "pool_heads", "pool_mask",
    "embed", "text_width", "text_depth", "text_heads", "text_mlp", "text_max_len", "text_pool",
    "anat_hist", "temperature", NULL};
static const char *const tokenizer_keys[] = {"vocab_size", "min_word_count", "max_piece_len",
                                             NULL};
static const char *const data_keys[] = {"hu_window", "margin_mm", "whole", NULL};
static const char *const aug_keys[] = {"flip_p", "scale", "shift", NULL};
static const char *const train_keys[] = {
    "loss", "batch", "epochs", "steps", "lr", "lr_min", "warmup_steps", "weight_decay", "beta1",
    "beta2", "eps", "clip", "seed", "threads", "val_fraction", "save_every", "log_every",
    "loaders", "prefetch", NULL};
static const char *const eval_keys[] = {"model", "labels", "out", "split", "style", "bootstrap",
                                        NULL};
static const char *const probe_keys[] = {"c", "train_split", NULL};

static const KnownSection known[] = {
    {"", "eval, probe (bootstrap seed)", top_keys},
    {"deid", "ingest, eval --labels, key, show/export --accession", deid_keys},
    {"ingest", "ingest, inspect", ingest_keys},
    {"align", "align", align_keys},
    {"model", "train", model_keys},
    {"tokenizer", "train", tokenizer_keys},
    {"data", "train", data_keys},
    {"aug", "train", aug_keys},
    {"train", "train", train_keys},
    {"eval", "eval, probe", eval_keys},
    {"probe", "probe", probe_keys},
};
enum { NKNOWN = sizeof known / sizeof known[0] };

/* The section of key, and the key within it ("seed" -> "", "seed"). */
static const KnownSection *section_of(const char *key, const char **rest)
{
    const char *dot = strchr(key, '.');
    size_t n = dot ? (size_t)(dot - key) : 0;
    *rest = dot ? dot + 1 : key;
    for (int i = 0; i < NKNOWN; i++)
        if (strlen(known[i].name) == n && strncmp(known[i].name, key, n) == 0)
            return &known[i];
    return NULL;
}

static int in_list(const char *const *keys, const char *k)
{
    for (; *keys; keys++)
        if (strcmp(*keys, k) == 0)
            return 1;
    return 0;
}

int config_known(const char *key)
{
    const char *k;
    const KnownSection *s = section_of(key, &k);
    return s && in_list(s->keys, k);
}

int config_check(const Config *c, FvErr *e)
{
    for (int i = 0; i < c->n; i++) {
        const ConfigItem *it = &c->items[i];
        const char *k;
        const KnownSection *s = section_of(it->key, &k);
        if (s && in_list(s->keys, k))
            continue;
        char where[320];
        snprintf(where, sizeof where, "%s", it->origin ? it->origin : "config");
        Buf list = {0};
        if (!s) {
            for (int j = 0; j < NKNOWN; j++)
                if (known[j].name[0])
                    buf_printf(&list, "%s%s", list.len ? ", " : "", known[j].name);
            const char *dot = strchr(it->key, '.');
            err_set(e, FV_EUSAGE, "%s: unknown section [%.*s] (key %s); known sections: %s",
                    where, dot ? (int)(dot - it->key) : 0, it->key, it->key,
                    list.data ? list.data : "");
        } else {
            for (const char *const *p = s->keys; *p; p++)
                buf_printf(&list, "%s%s", list.len ? ", " : "", *p);
            if (s->name[0])
                err_set(e, FV_EUSAGE, "%s: unknown key '%s' in [%s] (read by %s); its keys: %s",
                        where, k, s->name, s->stage, list.data ? list.data : "");
            else
                err_set(e, FV_EUSAGE,
                        "%s: unknown top-level key '%s' (outside any section); top-level keys: "
                        "%s",
                        where, k, list.data ? list.data : "");
        }
        buf_free(&list);
        return -1;
    }
    return 0;
}
