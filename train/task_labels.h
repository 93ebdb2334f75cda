/* task_labels: the labels the supervised baseline trains on
 * (loss_supervised.h), per study and task of findings.tsv.
 *
 * From the `labels` table: an annotator's value (source 'audit') wins over
 * the parsed one; a study whose report was parsed and that has no row, or a
 * NULL value, for a task is negative (its report does not mention it, as
 * eval's silver truth reads it); uncertain (-1) is left out, and so is
 * every task of a study without a parsed report. 'gold' rows (imported
 * ground truth) are not read: the baseline learns from what the reports
 * say, as fVLM does. */
#ifndef FVLM_TRAIN_TASK_LABELS_H
#define FVLM_TRAIN_TASK_LABELS_H

#include <stdint.h>

#include "data.h"
#include "db.h"
#include "error.h"

/* Fills c->task_label (n_st, onto n_find) and c->n_tasks. */
int task_labels_load(TrainSet *c, Db *db, FvErr *e);
/* Row labels of a batch (nr rows: anatomy ra, candidate sample cand_s)
 * into out (nr, n_tasks): the study's label for the tasks of the row's
 * anatomy, -1 for every other task. */
void task_labels_rows(const TrainSet *c, const int *ra, const int *cand_s, int nr, int8_t *out);

#endif
