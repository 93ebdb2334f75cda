/* align: the align stage over a corpus database.
 *
 * For every study (or the ones asked for): reads its parsed report
 * (sentences, mentions, findings, labels) and its mask, and writes, in one
 * transaction per study, its links, anatomy statuses and texts, regions,
 * flags and training samples. A re-run replaces align's own rows and keeps
 * what annotators set: their decisions in `audits` are laid on each study
 * first (audit_apply.h), then links with source 'audit' or an `accepted` verdict,
 * anatomy_status rows with source 'audit' (their status, texts and diseases
 * are what the samples then use). A study whose input is broken (a mask
 * that does not match its volume, a shard that cannot be read) is recorded
 * with run_error and a flag, and the run goes on.
 *
 * Flags (kind: detail):
 *   no_report                  the study has no report
 *   unparsed                   its report has no sentences (run fvlm parse)
 *   no_mask                    the study has no mask: no regions, no samples
 *   mask_error                 its mask could not be used (the reason)
 *   abnormal_without_mask      an abnormal anatomy absent from the mask
 *   implausible_volume         a region outside the plausible volume range
 *   impression_without_finding an impression sentence names the anatomy but
 *                              states no finding of it (a disease the task
 *                              list lacks, or a wrong link)
 *   unknown_id                 parse used an anatomy, group or task id the
 *                              ontology does not have (the row is skipped) */
#ifndef FVLM_ALIGN_ALIGN_H
#define FVLM_ALIGN_ALIGN_H

#include <stdint.h>

#include "anatomy_meta.h"
#include "config.h"
#include "db.h"
#include "error.h"
#include "ontology.h"
#include "run.h"
#include "status.h"

typedef struct AlignOptions {
    StatusRule rule;
    unsigned text_methods;        /* link methods whose sentences feed texts (1u << LinkMethod) */
    double margin_mm[3];          /* crop margin of the union box, (z, y, x) */
    unsigned char *sample_set;    /* n_anat flags: anatomies that get samples (owned) */
    const int64_t *studies;       /* study ids to align; NULL: all */
    int n_studies;
} AlignOptions;

/* Reads align.status_rule (impression|findings, default impression),
 * align.crop_margin_mm (z, y, x; default 15, 20, 20) and align.samples
 * ("main": the anatomies that carry tasks, "all", or a comma-separated list
 * of anatomy ids) and align.text_methods (the link methods whose sentences
 * feed the texts; default mention, finding, continuation, audit). Every key is written back into cfg with its effective
 * value, so the run's recorded config shows the defaults too. */
int align_options_from_config(const Ontology *o, Config *cfg, AlignOptions *opt, FvErr *e);
void align_options_free(AlignOptions *opt);

typedef struct AlignCounts {
    int64_t studies, aligned;
    int64_t failed;               /* studies with an input error (recorded, flagged, aligned anyway) */
    int64_t sentences, unlinked, links;
    int64_t normal, abnormal, unmentioned;
    int64_t regions, samples, flags;
    int64_t no_report, unparsed, no_mask;
    int64_t mask_bytes;           /* mask voxels scanned */
    double t_regions;             /* seconds in regions_scan (mask pages already mapped) */
    /* Annotators' decisions laid on the studies (audit_apply.h). */
    int64_t audited;              /* studies with decisions */
    int64_t audit_links, audit_statuses, audit_labels;
    int64_t audit_stale;          /* link decisions whose sentence changed: not applied */
    int64_t audit_excluded;       /* studies a flag keeps out of the samples */
} AlignCounts;

/* Aligns the studies of opt (all when opt->studies is NULL). Returns -1 only
 * when the database itself fails; a study's bad input is recorded with
 * run_error and counted in c->failed. */
int align_run(Db *db, Run *run, const Ontology *o, const AnatomyMetaTable *meta,
              const AlignOptions *opt, AlignCounts *c, FvErr *e);

/* The counts as a JSON object (for run_finish and --json). */
void align_counts_json(const AlignCounts *c, Buf *b);

#endif
