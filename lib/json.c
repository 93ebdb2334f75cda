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

typedef struct Parser {
    const char *s;
    size_t n, pos;
    FvErr *e;
} Parser;

enum { JSON_MAX_DEPTH = 64 };

static int perr(Parser *p, const char *why)
{
    return err_set(p->e, FV_EFORMAT, "JSON at byte %zu: %s", p->pos, why);
}

static void skip_ws(Parser *p)
{
    while (p->pos < p->n) {
        char c = p->s[p->pos];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
            p->pos++;
        else
            break;
    }
}

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

static int hex4(Parser *p, uint32_t *out)
{
    if (p->n - p->pos < 4)
        return perr(p, "short \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return perr(p, "bad hex digit in \\u escape");
    }
    *out = v;
    return 0;
}

static int parse_string(Parser *p, char **out, size_t *out_len)
{
    p->pos++; /* opening quote */
    Buf b = {0};
    while (1) {
        if (p->pos >= p->n) {
            buf_free(&b);
            return perr(p, "unterminated string");
        }
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20) {
            buf_free(&b);
            return perr(p, "control character in string");
        }
        if (c != '\\') {
            /* Copy a run of plain bytes at once. */
            size_t start = p->pos;
            while (p->pos < p->n && p->s[p->pos] != '"' && p->s[p->pos] != '\\' &&
                   (unsigned char)p->s[p->pos] >= 0x20)
                p->pos++;
            buf_append(&b, p->s + start, p->pos - start);
            continue;
        }
        p->pos++;
        if (p->pos >= p->n) {
            buf_free(&b);
            return perr(p, "unterminated escape");
        }
        char esc = p->s[p->pos++];
        switch (esc) {
        case '"': buf_putc(&b, '"'); break;
        case '\\': buf_putc(&b, '\\'); break;
        case '/': buf_putc(&b, '/'); break;
        case 'b': buf_putc(&b, '\b'); break;
        case 'f': buf_putc(&b, '\f'); break;
        case 'n': buf_putc(&b, '\n'); break;
        case 'r': buf_putc(&b, '\r'); break;
        case 't': buf_putc(&b, '\t'); break;
        case 'u': {
            uint32_t cp;
            if (hex4(p, &cp)) {
                buf_free(&b);
                return -1;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (p->n - p->pos >= 6 && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u') {
                    p->pos += 2;
                    if (hex4(p, &lo)) {
                        buf_free(&b);
                        return -1;
                    }
                    if (lo >= 0xDC00 && lo <= 0xDFFF)
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    else
                        cp = 0xFFFD;
                } else {
                    cp = 0xFFFD;
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD;
            }
            unsigned char u[4];
            size_t k = utf8_encode((int32_t)cp, u);
            buf_append(&b, u, k);
            break;
        }
        default:
            buf_free(&b);
            return perr(p, "unknown escape");
        }
    }
    if (b.failed) {
        buf_free(&b);
        return err_set(p->e, FV_ENOMEM, "JSON: out of memory");
    }
    *out_len = b.len;
    *out = buf_steal(&b);
    return 0;
}

static int parse_value(Parser *p, JsonValue *v, int depth);

static int push_item(Parser *p, JsonValue *v, size_t *cap, char *key)
{
    if (v->len == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        JsonValue *items = realloc(v->items, nc * sizeof *items);
        if (!items)
            return err_set(p->e, FV_ENOMEM, "JSON: out of memory");
        v->items = items;
        if (v->type == JSON_OBJ) {
            char **keys = realloc(v->keys, nc * sizeof *keys);
            if (!keys)
                return err_set(p->e, FV_ENOMEM, "JSON: out of memory");
            v->keys = keys;
        }
        *cap = nc;
    }
    memset(&v->items[v->len], 0, sizeof v->items[0]);
    if (v->type == JSON_OBJ)
        v->keys[v->len] = key;
    v->len++;
    return 0;
}

static int parse_container(Parser *p, JsonValue *v, int depth, char close)
{
    size_t cap = 0;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->n && p->s[p->pos] == close) {
        p->pos++;
        return 0;
    }
    while (1) {
        char *key = NULL;
        if (v->type == JSON_OBJ) {
            skip_ws(p);
            if (p->pos >= p->n || p->s[p->pos] != '"')
                return perr(p, "expected a string key");
            size_t klen;
            if (parse_string(p, &key, &klen))
                return -1;
            skip_ws(p);
            if (p->pos >= p->n || p->s[p->pos] != ':') {
                free(key);
                return perr(p, "expected ':'");
            }
            p->pos++;
        }
        if (push_item(p, v, &cap, key)) {
            free(key);
            return -1;
        }
        if (parse_value(p, &v->items[v->len - 1], depth + 1))
            return -1;
        skip_ws(p);
        if (p->pos >= p->n)
            return perr(p, "unexpected end");
        char c = p->s[p->pos++];
        if (c == close)
            return 0;
        if (c != ',')
            return perr(p, "expected ',' or a closing bracket");
    }
}

static int parse_number(Parser *p, JsonValue *v)
{
    size_t start = p->pos;
    int is_int = 1;
    if (p->s[p->pos] == '-')
        p->pos++;
    size_t digits = 0;
    while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
        p->pos++, digits++;
    if (!digits)
        return perr(p, "bad number");
    if (p->pos < p->n && p->s[p->pos] == '.') {
        is_int = 0;
        p->pos++;
        while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
    }
    if (p->pos < p->n && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        is_int = 0;
        p->pos++;
        if (p->pos < p->n && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
    }
    char tmp[64];
    size_t len = p->pos - start;
    if (len >= sizeof tmp)
        return perr(p, "number too long");
    memcpy(tmp, p->s + start, len);
    tmp[len] = '\0';
    v->type = JSON_NUM;
    v->num = strtod(tmp, NULL);
    if (is_int && len <= 18) {
        v->is_int = 1;
        v->i = strtoll(tmp, NULL, 10);
    }
    return 0;
}

static int parse_literal(Parser *p, const char *lit)
{
    size_t k = strlen(lit);
    if (p->n - p->pos < k || memcmp(p->s + p->pos, lit, k) != 0)
        return perr(p, "unexpected token");
    p->pos += k;
    return 0;
}

static int parse_value(Parser *p, JsonValue *v, int depth)
{
    if (depth > JSON_MAX_DEPTH)
        return perr(p, "nesting deeper than 64");
    skip_ws(p);
    if (p->pos >= p->n)
        return perr(p, "unexpected end");
    char c = p->s[p->pos];
    switch (c) {
    case '{': v->type = JSON_OBJ; return parse_container(p, v, depth, '}');
    case '[': v->type = JSON_ARR; return parse_container(p, v, depth, ']');
    case '"': v->type = JSON_STR; return parse_string(p, &v->str, &v->len);
    case 't': v->type = JSON_BOOL; v->boolean = 1; return parse_literal(p, "true");
    case 'f': v->type = JSON_BOOL; return parse_literal(p, "false");
    case 'n': v->type = JSON_NULL; return parse_literal(p, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return parse_number(p, v);
        return perr(p, "unexpected character");
    }
}

int json_parse(const char *text, size_t n, JsonValue **out, FvErr *e)
{
    *out = NULL;
    JsonValue *v = calloc(1, sizeof *v);
    if (!v)
        return err_set(e, FV_ENOMEM, "JSON: out of memory");
    Parser p = {text, n, 0, e};
    if (parse_value(&p, v, 0) == 0) {
        skip_ws(&p);
        if (p.pos == p.n) {
            *out = v;
            return 0;
        }
        perr(&p, "trailing characters");
    }
    value_free(v);
    free(v);
    return -1;
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
