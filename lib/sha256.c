/* nettle first: its headers #define sha256_init (and update, digest) to the
 * nettle_ names; undefining them here lets this file define the project's
 * functions of the same names and call nettle's by their real names. */
#include <nettle/hmac.h>
#include <nettle/sha2.h>

#undef sha256_init
#undef sha256_update
#undef sha256_digest

#include "sha256.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

_Static_assert(sizeof(struct sha256_ctx) <= sizeof(((Sha256 *)0)->ctx.bytes),
               "Sha256 has no room for nettle's sha256_ctx");
_Static_assert(_Alignof(struct sha256_ctx) <= _Alignof(uint64_t),
               "nettle's sha256_ctx needs more alignment than Sha256 gives");

static struct sha256_ctx *ctx(Sha256 *c) { return (struct sha256_ctx *)(void *)c->ctx.bytes; }

void sha256_init(Sha256 *c) { nettle_sha256_init(ctx(c)); }

void sha256_update(Sha256 *c, const void *data, size_t n)
{
    nettle_sha256_update(ctx(c), n, data);
}

void sha256_final(Sha256 *c, unsigned char out[32])
{
    /* nettle's digest also resets the context for the next message. */
    nettle_sha256_digest(ctx(c), SHA256_DIGEST_SIZE, out);
}

void sha256_to_hex(const unsigned char digest[32], char hex[65])
{
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = d[digest[i] >> 4];
        hex[2 * i + 1] = d[digest[i] & 15];
    }
    hex[64] = '\0';
}

void sha256_hex(const void *data, size_t n, char hex[65])
{
    Sha256 c;
    unsigned char dg[32];
    sha256_init(&c);
    sha256_update(&c, data, n);
    sha256_final(&c, dg);
    sha256_to_hex(dg, hex);
}

int sha256_file(const char *path, char hex[65], FvErr *e)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set(e, FV_EIO, "%s: %s", path, strerror(errno));
    Sha256 c;
    sha256_init(&c);
    unsigned char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        sha256_update(&c, buf, got);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return err_set(e, FV_EIO, "%s: read error", path);
    unsigned char d[32];
    sha256_final(&c, d);
    sha256_to_hex(d, hex);
    return 0;
}

void hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
                 unsigned char out[32])
{
    struct hmac_sha256_ctx h;
    hmac_sha256_set_key(&h, klen, key);
    hmac_sha256_update(&h, mlen, msg);
    hmac_sha256_digest(&h, SHA256_DIGEST_SIZE, out);
}
