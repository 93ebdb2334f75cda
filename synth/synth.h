/* synth: the synthetic corpus generator behind `fvlm synth`.
 *
 * Writes N studies under out/ in hospital and/or CT-RATE layouts, plus the
 * ground truth in out/truth/ (never inside the archives):
 *   hospital/<split>/<name>.tar.gz|.zip   dicom/IM0001.dcm ..., seg.nii.gz or
 *                                          seg/<class>.nii.gz, report.txt
 *   ctrate/{train,valid}/<split>_<pid>/<split>_<pid>_<scan>/<...>_1.nii.gz,
 *   ctrate/masks/<same tree>, ctrate/reports.csv, labels.csv, metadata.csv
 *   truth/labels.csv, truth/studies.jsonl, truth/oracle.csv (oracle.h: per study and
 *   task, the share of the anatomy's model-input grid points the change moves)
 *
 * Determinism: the same options give byte-identical files. Study i draws
 * from RNG stream i of the seed (its patient's body from a stream of its
 * own), so studies do not depend on each other, on the thread count or on
 * the clock; the split, patient and layout plan comes from one plan stream
 * walked in study order, so a run of N studies is a prefix of a run of M > N.
 *
 * CT-RATE blank-header volumes: no orientation, pixdim 1, scl_slope 0, and
 * the voxels are stored as HU + 1024 in DICOM order (i along the row
 * direction = patient left, j along the column direction = posterior, k
 * from the most inferior slice upward); metadata.csv (XYSpacing, ZSpacing,
 * ImagePositionPatient of voxel (0, 0, 0) in LPS mm, ImageOrientationPatient,
 * RescaleSlope 1, RescaleIntercept -1024) rebuilds them. metadata.csv
 * describes every volume that way, blank or not. */
#ifndef FVLM_SYNTH_SYNTH_H
#define FVLM_SYNTH_SYNTH_H

#include <stdint.h>

#include "error.h"

enum { SYNTH_HOSPITAL = 1, SYNTH_CTRATE = 2, SYNTH_BOTH = 3 };
enum { SYNTH_LANG_ZH = 0, SYNTH_LANG_EN = 1, SYNTH_LANG_MIX = 2 };
enum { SYNTH_TINY = 0, SYNTH_SMALL = 1, SYNTH_FULL = 2 };

typedef struct SynthOptions {
    const char *out;
    int64_t studies;
    uint64_t seed;
    int layout;             /* SYNTH_HOSPITAL, SYNTH_CTRATE, SYNTH_BOTH */
    int lang;               /* SYNTH_LANG_* (CT-RATE reports are always English) */
    int size;               /* SYNTH_TINY, SYNTH_SMALL, SYNTH_FULL */
    double test_fraction;   /* fraction of patients in the test split */
    double min_prevalence;  /* every task's prevalence raised to at least this */
    double noise_rate;      /* fraction of present findings missed or hedged (0.03) */
    int oracle_input[3];    /* z, y, x: the model input the truth's oracle.csv is measured at
                             * (oracle.h; default the small preset's 32, 64, 64) */
    int threads;            /* >= 1 */
    int force;              /* replace an existing corpus in out/ */
} SynthOptions;

typedef struct SynthStats {
    int64_t studies, hospital, ctrate, test;
    int64_t files, bytes;   /* written */
    int64_t lesions, findings_present, findings_reported;
    double seconds;
} SynthStats;

void synth_options_default(SynthOptions *o);
int synth_run(const SynthOptions *o, SynthStats *st, FvErr *e);

#endif
