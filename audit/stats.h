/* stats: what the annotators did and what it says about the automatic
 * pipeline.
 *
 *   per annotator and day: decisions made (undo rows not counted);
 *   agreement: Cohen's kappa per decision kind over items (study, kind, key)
 *     that two annotators decided (each one's newest decision not taken back;
 *     with more than two, the first two by name);
 *   precision: of align's links per anatomy and per rule (the rule column,
 *     else the method) and of parsed labels per task, over the studies of
 *     the random-order queues that an annotator marked done (a link or
 *     label left alone in a reviewed study counts as correct), with 95%
 *     Wilson score intervals. Only the random sample estimates it without
 *     bias; the other orders pick the doubtful studies on purpose;
 *   remaining: per annotator, queued studies not yet done; studies never
 *     audited. */
#ifndef FVLM_AUDIT_STATS_H
#define FVLM_AUDIT_STATS_H

#include "buf.h"
#include "db.h"
#include "error.h"

/* Cohen's kappa of n paired categorical ratings (strings); NaN when
 * undefined (n = 0, or chance agreement 1). */
double stats_kappa(const char *const *a, const char *const *b, int n);
/* 95% Wilson score interval of k successes in n trials. */
void stats_wilson(int64_t k, int64_t n, double *lo, double *hi);

/* The statistics as a JSON object, or as text for people. */
int stats_write(Db *db, int json, Buf *out, FvErr *e);

/* Every audits row (with the study key and whether it is current) as JSON
 * lines or CSV with a header. */
int stats_export(Db *db, int csv, Buf *out, FvErr *e);

#endif
