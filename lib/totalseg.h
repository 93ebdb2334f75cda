/* totalseg: the class table of TotalSegmentator's `total` task
 * (schemas/totalseg_classes.tsv: id, name), the label ids of the masks that
 * ingest reads and synth writes. */
#ifndef FVLM_TOTALSEG_H
#define FVLM_TOTALSEG_H

#include "error.h"

enum { TS_MAX_ID = 255 };

typedef struct TsClasses {
    char name[TS_MAX_ID + 1][64]; /* "" when the id is unused */
    int max_id;
} TsClasses;

/* Loads the table built into fvlm (or $FVLM_SCHEMAS); an id outside
 * 1..TS_MAX_ID or given twice is an error naming the line. */
int ts_classes_load(TsClasses *t, FvErr *e);
/* Id of a class name (case-insensitive; ".nii.gz" etc. stripped), or -1. */
int ts_class_id(const TsClasses *t, const char *name);

#endif
