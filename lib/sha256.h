/* sha256: SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104).
 *
 * Content hashes make re-runs skip work already done; HMAC keys the study and
 * patient pseudonyms of de-identification. Streaming: init, update any
 * number of times, final. */
#ifndef FVLM_SHA256_H
#define FVLM_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct Sha256 {
    uint32_t h[8];
    uint64_t nbytes;
    unsigned char block[64];
    size_t fill;
} Sha256;

void sha256_init(Sha256 *c);
void sha256_update(Sha256 *c, const void *data, size_t n);
void sha256_final(Sha256 *c, unsigned char out[32]);

/* The portable compression of nblocks 64-byte blocks (the reference that
 * the hardware path, used when the CPU has SHA extensions, is tested
 * against; FVLM_SHA256_PORTABLE=1 forces it). */
void sha256_blocks_ref(uint32_t h[8], const unsigned char *p, size_t nblocks);

/* One-shot helpers; hex is 64 lowercase characters plus NUL. */
void sha256_hex(const void *data, size_t n, char hex[65]);
void sha256_to_hex(const unsigned char digest[32], char hex[65]);
/* The hash of a whole file, read in 64 KiB pieces (a model checkpoint). */
int sha256_file(const char *path, char hex[65], FvErr *e);
void hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
                 unsigned char out[32]);

#endif
