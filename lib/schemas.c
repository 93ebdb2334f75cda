#include "schemas.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"

int schema_load(const char *name, char **text, size_t *len, FvErr *e)
{
    const char *dir = getenv("FVLM_SCHEMAS");
    if (dir && *dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        return fs_read_file(path, (size_t)64 << 20, text, len, e);
    }
    for (const EmbeddedFile *f = embedded_files; f->name; f++) {
        if (strcmp(f->name, name) == 0) {
            char *p = malloc(f->size + 1);
            if (!p)
                return err_set(e, FV_ENOMEM, "schema %s: out of memory", name);
            memcpy(p, f->data, f->size);
            p[f->size] = '\0';
            *text = p;
            *len = f->size;
            return 0;
        }
    }
    return err_set(e, FV_ENOTFOUND, "schema file %s is not built into this binary", name);
}
