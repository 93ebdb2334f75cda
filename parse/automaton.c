#include "automaton.h"

#include <stdlib.h>
#include <string.h>

struct Automaton {
    uint8_t cls[256];   /* byte -> class; 0 = a byte no term contains */
    int nclass;
    int nstates;
    int32_t *next;      /* (nstates, nclass): complete transition table */
    /* The same table for scanning, half the size when the states fit in 15
     * bits (the table is megabytes: its cache misses are the scan's cost):
     * entry = target state | AC_OUT when a pattern ends at the target. */
    uint16_t *next16;   /* (nstates, nclass), or NULL: next32 is used */
    uint32_t *next32;   /* (nstates, nclass) with bit 31 as the output mark, or NULL */
    int32_t *own;       /* per state: the pattern that ends here, or -1 */
    int32_t *dict;      /* per state: nearest proper suffix state that ends a pattern, or 0 */
    int32_t *out;       /* per state: itself when it ends a pattern, else dict: the first output */
    uint32_t *plen;     /* per pattern: length in bytes */
};

void ac_free(Automaton **pa)
{
    Automaton *a = *pa;
    if (!a)
        return;
    free(a->next);
    free(a->next16);
    free(a->next32);
    free(a->own);
    free(a->dict);
    free(a->out);
    free(a->plen);
    free(a);
    *pa = NULL;
}

void ac_stats(const Automaton *a, int *nstates, int *nclasses)
{
    *nstates = a->nstates;
    *nclasses = a->nclass;
}

/* Table size limit: 2^28 entries (1 GiB) would mean a lexicon gone wrong. */
#define AC_MAX_ENTRIES ((size_t)1 << 28)

int ac_build(Automaton **out, const char *const *pats, const uint32_t *lens, int npat, FvErr *e)
{
    *out = NULL;
    Automaton *a = calloc(1, sizeof *a);
    if (!a)
        return err_set(e, FV_ENOMEM, "lexicon automaton: out of memory");
    int32_t *fail = NULL, *queue = NULL;
    size_t total = 1;
    int used[256] = {0};
    for (int i = 0; i < npat; i++) {
        if (lens[i] == 0) {
            err_set(e, FV_EINTERNAL, "lexicon automaton: pattern %d is empty", i);
            goto fail;
        }
        total += lens[i];
        for (uint32_t k = 0; k < lens[i]; k++)
            used[(unsigned char)pats[i][k]] = 1;
    }
    a->nclass = 1;
    for (int b = 0; b < 256; b++)
        a->cls[b] = used[b] ? (uint8_t)a->nclass++ : 0;
    if (total > INT32_MAX || total * (size_t)a->nclass > AC_MAX_ENTRIES) {
        err_set(e, FV_ELIMIT, "lexicon automaton: %zu states x %d classes is too large", total,
                a->nclass);
        goto fail;
    }
    size_t nc = (size_t)a->nclass;
    a->next = malloc(total * nc * sizeof *a->next);
    a->own = malloc(total * sizeof *a->own);
    a->dict = calloc(total, sizeof *a->dict);
    a->plen = malloc((size_t)(npat > 0 ? npat : 1) * sizeof *a->plen);
    fail = calloc(total, sizeof *fail);
    queue = malloc(total * sizeof *queue);
    if (!a->next || !a->own || !a->dict || !a->plen || !fail || !queue) {
        err_set(e, FV_ENOMEM, "lexicon automaton: out of memory (%zu states)", total);
        goto fail;
    }
    memset(a->next, 0xff, total * nc * sizeof *a->next);
    a->own[0] = -1;
    a->nstates = 1;
    /* The trie. */
    for (int i = 0; i < npat; i++) {
        int32_t s = 0;
        a->plen[i] = lens[i];
        for (uint32_t k = 0; k < lens[i]; k++) {
            size_t c = a->cls[(unsigned char)pats[i][k]];
            int32_t t = a->next[(size_t)s * nc + c];
            if (t < 0) {
                t = a->nstates++;
                a->own[t] = -1;
                a->next[(size_t)s * nc + c] = t;
            }
            s = t;
        }
        if (a->own[s] >= 0) {
            err_set(e, FV_EINTERNAL, "lexicon automaton: patterns %d and %d are the same",
                    a->own[s], i);
            goto fail;
        }
        a->own[s] = i;
    }
    /* Failure links breadth first; missing transitions are filled with the
     * failure state's, which makes the table a complete DFA. */
    int qh = 0, qt = 0;
    for (size_t c = 0; c < nc; c++) {
        int32_t t = a->next[c];
        if (t < 0) {
            a->next[c] = 0;
        } else {
            fail[t] = 0;
            a->dict[t] = 0;
            queue[qt++] = t;
        }
    }
    while (qh < qt) {
        int32_t s = queue[qh++];
        for (size_t c = 0; c < nc; c++) {
            int32_t t = a->next[(size_t)s * nc + c];
            int32_t f = a->next[(size_t)fail[s] * nc + c];
            if (t < 0) {
                a->next[(size_t)s * nc + c] = f;
            } else {
                fail[t] = f;
                a->dict[t] = a->own[f] >= 0 ? f : a->dict[f];
                queue[qt++] = t;
            }
        }
    }
    free(fail);
    free(queue);
    a->out = malloc((size_t)a->nstates * sizeof *a->out);
    if (!a->out) {
        err_set(e, FV_ENOMEM, "lexicon automaton: out of memory");
        ac_free(&a);
        return -1;
    }
    for (int32_t st = 0; st < a->nstates; st++)
        a->out[st] = a->own[st] >= 0 ? st : a->dict[st];
    /* the scanning table, with the output mark in each entry */
    size_t nent = (size_t)a->nstates * nc;
    if (a->nstates <= 0x7fff)
        a->next16 = malloc(nent * sizeof *a->next16);
    else
        a->next32 = malloc(nent * sizeof *a->next32);
    if (!a->next16 && !a->next32) {
        err_set(e, FV_ENOMEM, "lexicon automaton: out of memory");
        ac_free(&a);
        return -1;
    }
    for (size_t k = 0; k < nent; k++) {
        int32_t t = a->next[k];
        if (a->next16)
            a->next16[k] = (uint16_t)((uint32_t)t | (a->out[t] ? 0x8000u : 0));
        else
            a->next32[k] = (uint32_t)t | (a->out[t] ? 0x80000000u : 0);
    }
    /* the building table is no longer needed */
    free(a->next);
    a->next = NULL;
    *out = a;
    return 0;
fail:
    free(fail);
    free(queue);
    ac_free(&a);
    return -1;
}

/* Appends the patterns that end at byte i in state s (out[s] != 0). */
static int emit(const Automaton *a, int32_t s, size_t i, AcHit **hits, size_t *nhits, size_t *cap,
                FvErr *e)
{
    for (int32_t t = a->out[s]; t; t = a->dict[t]) {
        if (*nhits == *cap) {
            size_t nc2 = *cap ? *cap * 2 : 256;
            AcHit *h = realloc(*hits, nc2 * sizeof *h);
            if (!h)
                return err_set(e, FV_ENOMEM, "scanning report: out of memory (%zu hits)", nc2);
            *hits = h;
            *cap = nc2;
        }
        int32_t pat = a->own[t];
        (*hits)[(*nhits)++] = (AcHit){(uint32_t)(i + 1 - a->plen[pat]), pat};
    }
    return 0;
}

int ac_scan(const Automaton *a, const char *text, size_t n, AcHit **hits, size_t *nhits,
            size_t *cap, FvErr *e)
{
    const unsigned char *p = (const unsigned char *)text;
    const size_t nc = (size_t)a->nclass;
    const uint8_t *cls = a->cls;
    if (a->next16) {
        const uint16_t *next = a->next16;
        uint32_t s = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t v = next[s * nc + cls[p[i]]];
            s = v & 0x7fffu;
            if ((v & 0x8000u) && emit(a, (int32_t)s, i, hits, nhits, cap, e))
                return -1;
        }
    } else {
        const uint32_t *next = a->next32;
        size_t s = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t v = next[s * nc + cls[p[i]]];
            s = v & 0x7fffffffu;
            if ((v & 0x80000000u) && emit(a, (int32_t)s, i, hits, nhits, cap, e))
                return -1;
        }
    }
    return 0;
}
