/* make_corpus DB N SEED [--bad] [--chinese]: writes a synthetic fixture corpus
 * (tests/train/fixture.h) for the shell tests and the bench. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: make_corpus DB N SEED [--bad] [--chinese] [--all-train]\n");
        return 2;
    }
    FixtureOpts o = {.n_studies = atoi(argv[2]), .seed = strtoull(argv[3], NULL, 10),
                     .p_abnormal = 0.4};
    for (int i = 4; i < argc; i++) {
        if (strcmp(argv[i], "--bad") == 0)
            o.bad_studies = 1;
        else if (strcmp(argv[i], "--chinese") == 0)
            o.chinese = 1;
        else if (strcmp(argv[i], "--all-train") == 0)
            o.all_train = 1;
        else {
            fprintf(stderr, "make_corpus: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (o.n_studies < 1) {
        fprintf(stderr, "make_corpus: N must be >= 1\n");
        return 2;
    }
    FvErr e = {0};
    if (fixture_corpus(argv[1], &o, &e)) {
        fprintf(stderr, "make_corpus: %s\n", e.msg);
        return 1;
    }
    return 0;
}
