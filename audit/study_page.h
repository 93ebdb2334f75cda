/* study_page: one study as the workbench shows it, as JSON.
 *
 * {study{id, study_key, dataset, split, language, n_phi}, volume{nz, ny, nx,
 *  sz, sy, sx, mask} or null, status_rule, sentences[{id, idx, section, start,
 *  end, text}], links[{sentence_id, anatomy, method, confidence, source,
 *  accepted, term, start, end, rule, continues}], findings[{sentence_id, task,
 *  anatomy, polarity, term, rule}], statuses[{anatomy, status, source}],
 *  regions[{anatomy, voxels, volume_ml, z0, z1, y0, y1, x0, x1, whole}],
 *  samples[{anatomy, status, text, diseases}], labels[{task, value, source,
 *  rule}], flags[{anatomy, kind, detail}], decisions[] (the current ones,
 *  everyone's: id, kind, key, new, who, role, comment, at, old), mine[] (the
 *  user's own rows on this study, newest first), conflicts[{kind, key, votes,
 *  settled}] (items annotators disagree on; settled: a lead decided),
 *  stale[{id, key, new, who}] (current link decisions whose sentence a
 *  re-parse changed: not applied; to be decided again)}
 * The link explanation columns (term, offsets, rule, continues) are null
 * when align did not fill them; the page then shows method and confidence.
 * `sample.text` is samples.text: exactly what `fvlm train` reads. */
#ifndef FVLM_AUDIT_STUDY_PAGE_H
#define FVLM_AUDIT_STUDY_PAGE_H

#include <stdint.h>

#include "buf.h"
#include "db.h"
#include "error.h"
#include "ontology.h"

/* FV_ENOTFOUND when the study does not exist. */
int study_page_json(Db *db, const Ontology *o, int64_t study_id, const char *who, Buf *out,
                    FvErr *e);

/* The ontology for the page: {anatomies[{id, en, zh, main, tasks[]}],
 * tasks[{id, anatomy, en, zh}], flags[]}. */
void ontology_json(const Ontology *o, Buf *out);

#endif
