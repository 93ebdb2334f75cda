/* fixture: small synthetic corpus databases for the train stage's tests.
 *
 * Written directly as ingest and align would leave them (schemas/corpus.sql):
 * studies, volumes and masks (one safetensors shard per study under
 * <db>.tensors/), reports, regions (with `_union`) and samples. Each study
 * is a phantom chest: body, two lungs (TotalSegmentator ids 10 and 12),
 * heart (51), aorta (52), esophagus (15) and trachea (16). Lung, heart and
 * aorta are abnormal at random, with a disease each draws (lung opacity,
 * emphysema, pleural effusion; cardiomegaly, pericardial effusion; aortic
 * wall calcification) drawn into the image and written into the anatomy's
 * text (English, some Chinese) and disease set; normal anatomies get fVLM's
 * template "<anatomy> shows no significant abnormalities.". Esophagus and
 * trachea are always normal. */
#ifndef FVLM_TEST_FIXTURE_H
#define FVLM_TEST_FIXTURE_H

#include <stdint.h>

#include "error.h"

typedef struct FixtureOpts {
    int n_studies;
    uint64_t seed;
    double p_abnormal;   /* per anatomy that can be abnormal */
    int chinese;         /* every third study's texts in Chinese */
    int bad_studies;     /* add 2 broken studies: a tensor of the wrong shape, a region off the grid */
    int all_train;       /* every study in the train split (else 80 % train, 10 % valid, 10 % test) */
} FixtureOpts;

int fixture_corpus(const char *db_path, const FixtureOpts *o, FvErr *e);

#endif
