/* json: a small JSON writer and a DOM parser.
 *
 * The writer appends to a Buf and tracks commas itself:
 *     jw_obj(&w); jw_key(&w, "n"); jw_int(&w, 3); jw_obj_end(&w);
 * Strings are escaped; bytes that are not valid UTF-8 become U+FFFD, so the
 * output is always valid JSON.
 *
 * The parser is jansson's (strict RFC 8259: invalid UTF-8 and lone
 * surrogate escapes are errors); its result is copied into a JsonValue tree
 * owned by the returned root (json_free releases all of it). Depth is
 * limited to 64 and the input must be one complete JSON value; errors name
 * the byte offset. Integers that fit int64 are kept exactly; a text with a
 * larger one is read with every number as a double. Object members keep
 * the order of the text; an object that repeats a key is an error (readers
 * disagree on which value wins: a safetensors header could mean two things). */
#ifndef FVLM_JSON_H
#define FVLM_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"

typedef struct JsonW {
    Buf *b;
    int depth;
    int pretty;
    unsigned char has_item[64]; /* per depth: an item was written, a comma is due */
    int after_key;
} JsonW;

void jw_init(JsonW *w, Buf *b, int pretty);
void jw_obj(JsonW *w);
void jw_obj_end(JsonW *w);
void jw_arr(JsonW *w);
void jw_arr_end(JsonW *w);
void jw_key(JsonW *w, const char *key);
void jw_str(JsonW *w, const char *s);
void jw_strn(JsonW *w, const char *s, size_t n);
void jw_int(JsonW *w, int64_t v);
void jw_num(JsonW *w, double v);     /* NaN and infinities become null */
void jw_bool(JsonW *w, int v);
void jw_null(JsonW *w);
void jw_raw(JsonW *w, const char *json); /* an already valid JSON value */

/* Appends s as a quoted JSON string. */
void json_quote(Buf *b, const char *s, size_t n);

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUM, JSON_STR, JSON_ARR, JSON_OBJ } JsonType;

typedef struct JsonValue {
    JsonType type;
    int boolean;
    int is_int;            /* number written without fraction/exponent and fits int64 */
    int64_t i;
    double num;
    char *str;             /* JSON_STR: NUL-terminated UTF-8 (may hold \0 escapes: use len) */
    size_t len;            /* JSON_STR: bytes; JSON_ARR/OBJ: count */
    struct JsonValue *items; /* JSON_ARR/OBJ: len values */
    char **keys;           /* JSON_OBJ: len keys */
} JsonValue;

int json_parse(const char *text, size_t n, JsonValue **out, FvErr *e);
void json_free(JsonValue **v);

/* Object member by key, or NULL. */
const JsonValue *json_get(const JsonValue *obj, const char *key);
/* Typed getters: return def when missing or of another type (json_get_int:
 * also for a number outside int64's range; a fraction is truncated). */
const char *json_get_str(const JsonValue *obj, const char *key, const char *def);
double json_get_num(const JsonValue *obj, const char *key, double def);
int64_t json_get_int(const JsonValue *obj, const char *key, int64_t def);

#endif
