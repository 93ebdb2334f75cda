/* sha256: SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), from nettle.
 *
 * Content hashes make re-runs skip work already done; HMAC keys the study and
 * patient pseudonyms of de-identification. Streaming: init, update any
 * number of times, final. The arithmetic is nettle's (Debian nettle-dev,
 * which picks the CPU's SHA instructions at run time); this module keeps
 * the project's names, the hex helpers and the file hash, so callers do not
 * include nettle (whose macros rename sha256_init and friends). */
#ifndef FVLM_SHA256_H
#define FVLM_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Room for nettle's struct sha256_ctx (112 bytes in nettle 3.x; sha256.c
 * checks the size at compile time). No heap memory: a Sha256 on the stack
 * needs no release, whatever path leaves the function. */
typedef struct Sha256 {
    union {
        unsigned char bytes[192];
        uint64_t align;
    } ctx;
} Sha256;

void sha256_init(Sha256 *c);
void sha256_update(Sha256 *c, const void *data, size_t n);
/* Writes the digest; c may be given to sha256_init again. */
void sha256_final(Sha256 *c, unsigned char out[32]);

/* One-shot helpers; hex is 64 lowercase characters plus NUL. */
void sha256_hex(const void *data, size_t n, char hex[65]);
void sha256_to_hex(const unsigned char digest[32], char hex[65]);
/* The hash of a whole file, read in 64 KiB pieces (a model checkpoint). */
int sha256_file(const char *path, char hex[65], FvErr *e);
void hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
                 unsigned char out[32]);

#endif
