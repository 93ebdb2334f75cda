/* Config files (`--config`, the presets, a checkpoint's fvlm.config): the
 * INI reader, then every key read as a string, an integer, a double and a
 * list, and the JSON recorded in the run. */
#include "fuzz.h"

#include "buf.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    Config c;
    config_init(&c);
    FvErr e = {0};
    if (config_parse(&c, text, "fuzz.ini", &e) == 0) {
        for (int i = 0; i < c.n; i++) {
            const char *k = c.items[i].key;
            int64_t iv;
            double dv, dl[4], def[4] = {0};
            FvErr ie = {0};
            config_str(&c, k, "");
            config_int(&c, k, 0, &iv, &ie);
            config_double(&c, k, 0, &dv, &ie);
            config_doubles(&c, k, def, 4, dl, &ie);
        }
        Buf b = {0};
        config_to_json(&c, &b);
        config_unused(&c, "train.", &b);
        buf_free(&b);
    }
    config_free(&c);
    free(text);
    return 0;
}
