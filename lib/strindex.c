#include "strindex.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a, 64 bits */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

int stridx_find(const StrIndex *x, const char *s, StrKey key, const void *ctx)
{
    if (!x->nslot)
        return -1;
    uint64_t mask = (uint64_t)(x->nslot - 1), h = hash_str(s) & mask;
    while (x->slot[h] >= 0) {
        if (strcmp(key(ctx, x->slot[h]), s) == 0)
            return x->slot[h];
        h = (h + 1) & mask;
    }
    return -1;
}

void stridx_put(StrIndex *x, int i, const char *s)
{
    uint64_t mask = (uint64_t)(x->nslot - 1), h = hash_str(s) & mask;
    while (x->slot[h] >= 0)
        h = (h + 1) & mask;
    x->slot[h] = i;
}

int stridx_reserve(StrIndex *x, int used, int want, StrKey key, const void *ctx)
{
    if ((int64_t)2 * want <= x->nslot)
        return 0;
    int64_t ns = x->nslot ? x->nslot : 64;
    while (ns < (int64_t)2 * want)
        ns *= 2;
    if (ns > (int64_t)1 << 30)
        return -1;
    int *slot = malloc((size_t)ns * sizeof *slot);
    if (!slot)
        return -1;
    for (int64_t i = 0; i < ns; i++)
        slot[i] = -1;
    free(x->slot);
    x->slot = slot;
    x->nslot = (int)ns;
    for (int i = 0; i < used; i++)
        stridx_put(x, i, key(ctx, i));
    return 0;
}

void stridx_free(StrIndex *x)
{
    free(x->slot);
    x->slot = NULL;
    x->nslot = 0;
}
