/* strindex: a hash index from strings to positions of an array the caller
 * owns (corpus texts, shard paths, vocabulary entries); the strings stay
 * where they are.
 *
 * key(ctx, i) returns the string of the caller's entry i. To add an entry:
 * stridx_find says it is absent, stridx_reserve makes room for one more,
 * the caller stores it at position n, stridx_put indexes it. Open
 * addressing with linear probing over FNV-1a hashes; the table stays at most
 * half full. */
#ifndef FVLM_STRINDEX_H
#define FVLM_STRINDEX_H

typedef const char *(*StrKey)(const void *ctx, int i);

typedef struct StrIndex {
    int *slot;   /* nslot entries: a position of the caller's array, or -1 */
    int nslot;   /* 0, or a power of two at least twice the entries */
} StrIndex;

/* The position of s, or -1 when absent. */
int stridx_find(const StrIndex *x, const char *s, StrKey key, const void *ctx);
/* Room for want entries; the used entries 0..used-1 are indexed again when
 * the table grows. -1 when out of memory (the index is unchanged). */
int stridx_reserve(StrIndex *x, int used, int want, StrKey key, const void *ctx);
/* Indexes position i under s (absent, with room reserved). */
void stridx_put(StrIndex *x, int i, const char *s);
void stridx_free(StrIndex *x);

#endif
