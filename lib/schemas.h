/* schemas: the data files of schemas/, compiled into the binary.
 *
 * schema_load("anatomy.tsv", ...) returns the embedded copy, or the file of
 * that name in the folder named by $FVLM_SCHEMAS when it is set (for people
 * editing lexicons without rebuilding). */
#ifndef FVLM_SCHEMAS_H
#define FVLM_SCHEMAS_H

#include <stddef.h>

#include "error.h"

typedef struct EmbeddedFile {
    const char *name;
    const char *data;
    size_t size;
} EmbeddedFile;

extern const EmbeddedFile embedded_files[];

/* *text is a malloc'd NUL-terminated copy (caller frees). */
int schema_load(const char *name, char **text, size_t *len, FvErr *e);

#endif
