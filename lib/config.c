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
    ConfigItem *it = find(c, key);
    if (it) {
        char *v = strdup(value);
        if (!v)
            return err_set(e, FV_ENOMEM, "config: out of memory");
        free(it->value);
        it->value = v;
        return 0;
    }
    if (arr_reserve(&c->items, &c->cap, c->n, sizeof *c->items, 16))
        return err_set(e, FV_ENOMEM, "config: out of memory");
    ConfigItem *n = &c->items[c->n];
    n->key = strdup(key);
    n->value = strdup(value);
    n->used = 0;
    if (!n->key || !n->value) {
        free(n->key);
        free(n->value);
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
        char full[300];
        snprintf(full, sizeof full, "%s%s%s", section, *section ? "." : "", key);
        if (config_set(c, full, value, e))
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
