/* anatomy_meta: what align knows about each anatomy beyond the ontology
 * (schemas/align_anatomy.tsv): the name fVLM's code uses for it in exported
 * text files, and the plausible volume range of the whole organ (ml) that
 * flags segmentation failures. */
#ifndef FVLM_ALIGN_ANATOMY_META_H
#define FVLM_ALIGN_ANATOMY_META_H

#include <stddef.h>

#include "error.h"
#include "ontology.h"

typedef struct AnatomyMeta {
    const char *fvlm_name;  /* owned by the table; the anatomy id when not listed */
    double min_ml, max_ml;  /* < 0 when there is no bound */
} AnatomyMeta;

typedef struct AnatomyMetaTable {
    AnatomyMeta *m;         /* one per anatomy of the ontology, same index */
    int n;
    char **names;           /* owned copies of fvlm_name values */
} AnatomyMetaTable;

/* From the embedded align_anatomy.tsv (or $FVLM_SCHEMAS). */
int anatomy_meta_load(const Ontology *o, AnatomyMetaTable *t, FvErr *e);
/* From a text (tests). name is used in messages. */
int anatomy_meta_parse(const Ontology *o, const char *text, size_t len, const char *name,
                       AnatomyMetaTable *t, FvErr *e);
void anatomy_meta_free(AnatomyMetaTable *t);

/* Anatomy index whose fvlm_name (or id) is name; -1 when none. */
int anatomy_meta_find(const Ontology *o, const AnatomyMetaTable *t, const char *name);

#endif
