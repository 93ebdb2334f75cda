/* JSON (safetensors headers, JSON-lines reports, checkpoints' metadata):
 * the parser, then a walk over every value and the typed getters. */
#include "fuzz.h"

#include "json.h"

static void walk(const JsonValue *v, int depth)
{
    if (depth > 200)
        return;
    switch (v->type) {
    case JSON_STR:
        fuzz_touch(v->str, v->len + 1);
        break;
    case JSON_OBJ:
        for (size_t i = 0; i < v->len; i++) {
            fuzz_touch(v->keys[i], strlen(v->keys[i]));
            json_get_num(v, v->keys[i], 0);
            json_get_int(v, v->keys[i], 0);
        }
        /* fall through */
    case JSON_ARR:
        for (size_t i = 0; i < v->len; i++)
            walk(&v->items[i], depth + 1);
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    JsonValue *v = NULL;
    FvErr e = {0};
    if (json_parse((const char *)data, size, &v, &e) == 0) {
        walk(v, 0);
        json_free(&v);
    }
    return 0;
}
