/* automaton: one Aho-Corasick automaton over bytes for every lexicon term.
 *
 * All terms (anatomy words, finding words, trigger phrases) go into one
 * automaton built once per process, so scanning a report touches each byte
 * once: matching time is linear in the text (plus the number of hits).
 * Transitions are a dense table over byte classes (only the bytes that occur
 * in some term get a class of their own), so a step is one table load. */
#ifndef FVLM_PARSE_AUTOMATON_H
#define FVLM_PARSE_AUTOMATON_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct Automaton Automaton;

/* One raw hit: pattern `pat` occupies [start, start + len of pat). */
typedef struct AcHit {
    uint32_t start;
    int32_t pat;
} AcHit;

/* Builds the automaton for pats[0..npat) (lens[i] bytes each, none empty;
 * duplicates are an error the caller avoids). */
int ac_build(Automaton **out, const char *const *pats, const uint32_t *lens, int npat, FvErr *e);
void ac_free(Automaton **a);

/* Appends every occurrence of every pattern in text[0..n) to *hits (growing
 * it; *cap is its allocated count). Returns 0, or -1 when memory runs out. */
int ac_scan(const Automaton *a, const char *text, size_t n, AcHit **hits, size_t *nhits,
            size_t *cap, FvErr *e);

/* States and byte classes (for the benchmark's report). */
void ac_stats(const Automaton *a, int *nstates, int *nclasses);

#endif
