/* jansson's type enum has a JSON_NULL, as json.h's has: jansson's is
 * renamed while its header is read (this file names it JANSSON_NULL_TYPE;
 * json_is_null, which would expand to ours, is not used here). */
#define JSON_NULL JANSSON_NULL_TYPE
#include <jansson.h>
#undef JSON_NULL

#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* ---------------------------------------------------------------- writer */

void jw_init(JsonW *w, Buf *b, int pretty)
{
    memset(w, 0, sizeof *w);
    w->b = b;
    w->pretty = pretty;
}

static void jw_indent(JsonW *w)
{
    if (!w->pretty)
        return;
    buf_putc(w->b, '\n');
    for (int i = 0; i < w->depth; i++)
        buf_puts(w->b, "  ");
}

/* Called before every value or key: writes the comma and indentation. */
static void jw_before(JsonW *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (w->depth > 0) {
        if (w->has_item[w->depth])
            buf_putc(w->b, ',');
        w->has_item[w->depth] = 1;
        jw_indent(w);
    }
}

static void jw_open(JsonW *w, char c)
{
    jw_before(w);
    buf_putc(w->b, c);
    if (w->depth < 63)
        w->depth++;
    w->has_item[w->depth] = 0;
}

static void jw_close(JsonW *w, char c)
{
    int had = w->has_item[w->depth];
    if (w->depth > 0)
        w->depth--;
    if (had)
        jw_indent(w);
    buf_putc(w->b, c);
}

void jw_obj(JsonW *w) { jw_open(w, '{'); }
void jw_obj_end(JsonW *w) { jw_close(w, '}'); }
void jw_arr(JsonW *w) { jw_open(w, '['); }
void jw_arr_end(JsonW *w) { jw_close(w, ']'); }

void jw_key(JsonW *w, const char *key)
{
    jw_before(w);
    json_quote(w->b, key, strlen(key));
    buf_puts(w->b, w->pretty ? ": " : ":");
    w->after_key = 1;
}

void json_quote(Buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    buf_putc(b, '"');
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            switch (c) {
            case '"': buf_puts(b, "\\\""); break;
            case '\\': buf_puts(b, "\\\\"); break;
            case '\n': buf_puts(b, "\\n"); break;
            case '\r': buf_puts(b, "\\r"); break;
            case '\t': buf_puts(b, "\\t"); break;
            default:
                if (c < 0x20) {
                    char u[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
                    buf_puts(b, u);
                } else {
                    buf_putc(b, (char)c);
                }
            }
            i++;
            continue;
        }
        int32_t cp;
        size_t k = utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (cp < 0) {
            buf_puts(b, "\xEF\xBF\xBD"); /* U+FFFD for an invalid byte */
            i += 1;
        } else {
            buf_append(b, s + i, k);
            i += k;
        }
    }
    buf_putc(b, '"');
}

void jw_str(JsonW *w, const char *s)
{
    jw_before(w);
    if (s)
        json_quote(w->b, s, strlen(s));
    else
        buf_puts(w->b, "null");
}

void jw_strn(JsonW *w, const char *s, size_t n)
{
    jw_before(w);
    json_quote(w->b, s, n);
}

void jw_int(JsonW *w, int64_t v)
{
    jw_before(w);
    buf_printf(w->b, "%lld", (long long)v);
}

void jw_num(JsonW *w, double v)
{
    jw_before(w);
    if (!isfinite(v)) {
        buf_puts(w->b, "null");
        return;
    }
    /* Shortest form that reads back to the same double. */
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    buf_puts(w->b, tmp);
}

void jw_bool(JsonW *w, int v)
{
    jw_before(w);
    buf_puts(w->b, v ? "true" : "false");
}

void jw_null(JsonW *w)
{
    jw_before(w);
    buf_puts(w->b, "null");
}

void jw_raw(JsonW *w, const char *json)
{
    jw_before(w);
    buf_puts(w->b, json);
}

/* ---------------------------------------------------------------- parser */

/* Parsing is jansson's (Debian libjansson-dev: fuzzed in OSS-Fuzz, strict
 * RFC 8259 with UTF-8 validation); its tree is then copied into JsonValue,
 * the plain arrays every caller walks, and released. The copy costs one
 * more allocation per value; the callers parse headers, config records and
 * report lines, never bulk data. */

enum { JSON_MAX_DEPTH = 64 };

static void value_free(JsonValue *v)
{
    if (v->type == JSON_STR) {
        free(v->str);
    } else if (v->type == JSON_ARR || v->type == JSON_OBJ) {
        for (size_t i = 0; i < v->len; i++) {
            value_free(&v->items[i]);
            if (v->keys)
                free(v->keys[i]);
        }
        free(v->items);
        free(v->keys);
    }
    memset(v, 0, sizeof *v);
}

static char *dup_bytes(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* Copies j into the zeroed v; on failure v holds what was copied so far
 * (value_free releases it). */
static int convert(const json_t *j, JsonValue *v, int depth, FvErr *e)
{
    if (depth > JSON_MAX_DEPTH)
        return err_set(e, FV_EFORMAT, "JSON: nesting deeper than %d", JSON_MAX_DEPTH);
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        v->type = JSON_OBJ;
        size_t n = json_object_size(j);
        if (!n)
            return 0;
        v->items = calloc(n, sizeof *v->items);
        v->keys = calloc(n, sizeof *v->keys);
        if (!v->items || !v->keys)
            return err_set(e, FV_ENOMEM, "JSON: out of memory");
        const char *key;
        json_t *x;
        /* jansson keeps insertion order (since 2.8), so keys come in the
         * order of the text, as the callers that list members expect. */
        json_object_foreach((json_t *)j, key, x) {
            if (v->len == n)
                break;
            size_t i = v->len++;
            if (!(v->keys[i] = strdup(key)))
                return err_set(e, FV_ENOMEM, "JSON: out of memory");
            if (convert(x, &v->items[i], depth + 1, e))
                return -1;
        }
        return 0;
    }
    case JSON_ARRAY: {
        v->type = JSON_ARR;
        size_t n = json_array_size(j);
        if (!n)
            return 0;
        v->items = calloc(n, sizeof *v->items);
        if (!v->items)
            return err_set(e, FV_ENOMEM, "JSON: out of memory");
        for (size_t i = 0; i < n; i++) {
            v->len = i + 1;
            if (convert(json_array_get(j, i), &v->items[i], depth + 1, e))
                return -1;
        }
        return 0;
    }
    case JSON_STRING:
        v->type = JSON_STR;
        v->len = json_string_length(j);
        if (!(v->str = dup_bytes(json_string_value(j), v->len)))
            return err_set(e, FV_ENOMEM, "JSON: out of memory");
        return 0;
    case JSON_INTEGER:
        v->type = JSON_NUM;
        v->is_int = 1;
        v->i = (int64_t)json_integer_value(j);
        v->num = (double)v->i;
        return 0;
    case JSON_REAL:
        v->type = JSON_NUM;
        v->num = json_real_value(j);
        return 0;
    case JSON_TRUE:
    case JSON_FALSE:
        v->type = JSON_BOOL;
        v->boolean = json_is_true(j);
        return 0;
    case JANSSON_NULL_TYPE:
        v->type = JSON_NULL;
        return 0;
    }
    return err_set(e, FV_EFORMAT, "JSON: unknown value type");
}

int json_parse(const char *text, size_t n, JsonValue **out, FvErr *e)
{
    *out = NULL;
    /* Any value at the top (not only objects and arrays), \u0000 inside
     * strings (JsonValue keeps a length), and nothing after the value. An
     * object that names a key twice is refused: readers disagree on which
     * value wins, and one that sizes arrays for the first would misread. */
    size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES;
    json_error_t je;
    json_t *j = json_loadb(text ? text : "", n, flags, &je);
    if (!j && json_error_code(&je) == json_error_numeric_overflow) {
        /* An integer beyond int64 is read as a double, as JSON allows; the
         * whole text then has no exact integers (is_int is 0 throughout). */
        j = json_loadb(text, n, flags | JSON_DECODE_INT_AS_REAL, &je);
    }
    if (!j) {
        if (json_error_code(&je) == json_error_out_of_memory)
            return err_set(e, FV_ENOMEM, "JSON: out of memory");
        return err_set(e, FV_EFORMAT, "JSON at byte %d: %s", je.position, je.text);
    }
    JsonValue *v = calloc(1, sizeof *v);
    if (!v) {
        json_decref(j);
        return err_set(e, FV_ENOMEM, "JSON: out of memory");
    }
    int rc = convert(j, v, 0, e);
    json_decref(j);
    if (rc) {
        value_free(v);
        free(v);
        return -1;
    }
    *out = v;
    return 0;
}

void json_free(JsonValue **v)
{
    if (v && *v) {
        value_free(*v);
        free(*v);
        *v = NULL;
    }
}

const JsonValue *json_get(const JsonValue *obj, const char *key)
{
    if (!obj || obj->type != JSON_OBJ)
        return NULL;
    for (size_t i = 0; i < obj->len; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return &obj->items[i];
    return NULL;
}

const char *json_get_str(const JsonValue *obj, const char *key, const char *def)
{
    const JsonValue *v = json_get(obj, key);
    return v && v->type == JSON_STR ? v->str : def;
}

double json_get_num(const JsonValue *obj, const char *key, double def)
{
    const JsonValue *v = json_get(obj, key);
    return v && v->type == JSON_NUM ? v->num : def;
}

int64_t json_get_int(const JsonValue *obj, const char *key, int64_t def)
{
    const JsonValue *v = json_get(obj, key);
    if (!v || v->type != JSON_NUM)
        return def;
    if (v->is_int)
        return v->i;
    /* A number outside int64's range (5e36) has no integer value: converting
     * it would be undefined behaviour (found by fuzz_json). */
    if (!(v->num > -9223372036854775808.0 && v->num < 9223372036854775808.0))
        return def;
    return (int64_t)v->num;
}
