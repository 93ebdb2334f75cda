/* export: the anatomy-level texts for Python users.
 *
 * Format fvlm writes the two files fVLM's released code reads:
 *   desc_info.json  {study: {fvlm anatomy name: findings text}}
 *   conc_info.json  {study: {fvlm anatomy name: impression text}}
 * with every aligned study present (an empty object when nothing about it
 * was said: fVLM then uses its normal template for every anatomy), and an
 * anatomy listed only when its text is not empty. Studies are keyed by their
 * pseudonymous study_key: the corpus never stores source ids.
 *
 * Format jsonl writes anatomies.jsonl: one JSON object per (study, anatomy)
 * that the corpus says anything about (status, texts, diseases, labels of its
 * tasks, region, linked sentences with method and confidence, flags, and the
 * study's tensors and crop box), so the original code or any other can be
 * trained on this corpus.
 *
 * Files are written to "<name>.tmp.<pid>" and renamed when complete. */
#ifndef FVLM_ALIGN_EXPORT_H
#define FVLM_ALIGN_EXPORT_H

#include <stdint.h>

#include "anatomy_meta.h"
#include "db.h"
#include "error.h"
#include "ontology.h"

typedef enum { EXPORT_FVLM = 0, EXPORT_JSONL = 1 } ExportFormat;

typedef struct ExportCounts {
    int64_t studies;     /* studies written */
    int64_t entries;     /* anatomy texts (fvlm) or lines (jsonl) */
    int64_t bytes;       /* bytes written */
} ExportCounts;

/* split: "train", "valid" or "test" to export one split; NULL for all.
 * study: one study's id (studies.id) to export only it; 0 for all. */
int export_write(Db *db, const Ontology *o, const AnatomyMetaTable *meta, ExportFormat format,
                 const char *dir, const char *split, int64_t study, ExportCounts *c, FvErr *e);

#endif
