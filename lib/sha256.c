#include "sha256.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void compress(uint32_t h[8], const unsigned char *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = hh + S1 + ch + K[i] + w[i];
        uint32_t S0 = ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22);
        uint32_t mj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = S0 + mj;
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d;
    h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

/* ---- x86 SHA extensions: the same compression function in hardware,
 * about eight times the portable code's speed. Chosen at run time (CPUID
 * leaf 7, EBX bit 29), so one binary runs everywhere; sha256_blocks_ref
 * stays the reference the tests compare it with. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>

__attribute__((target("sha,sse4.1"))) static void blocks_shani(uint32_t h[8],
                                                               const unsigned char *p,
                                                               size_t nblocks)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    /* The instructions keep the state as (A, B, E, F) and (C, D, G, H). */
    __m128i t = _mm_loadu_si128((const __m128i *)(const void *)&h[0]);
    __m128i s1 = _mm_loadu_si128((const __m128i *)(const void *)&h[4]);
    t = _mm_shuffle_epi32(t, 0xB1);
    s1 = _mm_shuffle_epi32(s1, 0x1B);
    __m128i s0 = _mm_alignr_epi8(t, s1, 8);
    s1 = _mm_blend_epi16(s1, t, 0xF0);
    for (size_t b = 0; b < nblocks; b++, p += 64) {
        __m128i save0 = s0, save1 = s1, m[4];
        for (int i = 0; i < 16; i++) {
            if (i < 4) {
                m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 16 * i)),
                                        bswap);
            } else {
                /* W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16], four at a time. */
                __m128i x = _mm_sha256msg1_epu32(m[i % 4], m[(i + 1) % 4]);
                x = _mm_add_epi32(x, _mm_alignr_epi8(m[(i + 3) % 4], m[(i + 2) % 4], 4));
                m[i % 4] = _mm_sha256msg2_epu32(x, m[(i + 3) % 4]);
            }
            __m128i w = _mm_add_epi32(m[i % 4],
                                      _mm_loadu_si128((const __m128i *)(const void *)&K[4 * i]));
            s1 = _mm_sha256rnds2_epu32(s1, s0, w);
            w = _mm_shuffle_epi32(w, 0x0E);
            s0 = _mm_sha256rnds2_epu32(s0, s1, w);
        }
        s0 = _mm_add_epi32(s0, save0);
        s1 = _mm_add_epi32(s1, save1);
    }
    t = _mm_shuffle_epi32(s0, 0x1B);
    s1 = _mm_shuffle_epi32(s1, 0xB1);
    s0 = _mm_blend_epi16(t, s1, 0xF0);
    s1 = _mm_alignr_epi8(s1, t, 8);
    _mm_storeu_si128((__m128i *)(void *)&h[0], s0);
    _mm_storeu_si128((__m128i *)(void *)&h[4], s1);
}

static int have_shani(void)
{
    static int known = -1;
    if (known < 0) {
        unsigned a, b, c, d;
        known = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b >> 29 & 1) &&
                !getenv("FVLM_SHA256_PORTABLE");
        if (known) {
            unsigned a1, b1, c1, d1;
            known = __get_cpuid(1, &a1, &b1, &c1, &d1) && (c1 >> 19 & 1); /* SSE4.1 */
        }
    }
    return known;
}
#endif

void sha256_blocks_ref(uint32_t h[8], const unsigned char *p, size_t nblocks)
{
    for (size_t b = 0; b < nblocks; b++)
        compress(h, p + 64 * b);
}

static void blocks(uint32_t h[8], const unsigned char *p, size_t nblocks)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (have_shani()) {
        blocks_shani(h, p, nblocks);
        return;
    }
#endif
    sha256_blocks_ref(h, p, nblocks);
}

void sha256_init(Sha256 *c)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof iv);
    c->nbytes = 0;
    c->fill = 0;
}

void sha256_update(Sha256 *c, const void *data, size_t n)
{
    const unsigned char *p = data;
    c->nbytes += n;
    if (c->fill) {
        size_t k = 64 - c->fill < n ? 64 - c->fill : n;
        memcpy(c->block + c->fill, p, k);
        c->fill += k;
        p += k;
        n -= k;
        if (c->fill < 64)
            return;
        blocks(c->h, c->block, 1);
        c->fill = 0;
    }
    if (n >= 64) {
        blocks(c->h, p, n / 64);
        p += n / 64 * 64;
        n %= 64;
    }
    memcpy(c->block, p, n);
    c->fill = n;
}

void sha256_final(Sha256 *c, unsigned char out[32])
{
    uint64_t bits = c->nbytes * 8;
    unsigned char pad = 0x80;
    sha256_update(c, &pad, 1);
    unsigned char zero = 0;
    while (c->fill != 56)
        sha256_update(c, &zero, 1);
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_update(c, len, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(c->h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(c->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(c->h[i] >> 8);
        out[4 * i + 3] = (unsigned char)c->h[i];
    }
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
    unsigned char k[64] = {0};
    if (klen > 64) {
        Sha256 c;
        sha256_init(&c);
        sha256_update(&c, key, klen);
        sha256_final(&c, k);
    } else {
        memcpy(k, key, klen);
    }
    unsigned char ipad[64], opad[64];
    for (int i = 0; i < 64; i++) {
        ipad[i] = k[i] ^ 0x36;
        opad[i] = k[i] ^ 0x5c;
    }
    Sha256 c;
    unsigned char inner[32];
    sha256_init(&c);
    sha256_update(&c, ipad, 64);
    sha256_update(&c, msg, mlen);
    sha256_final(&c, inner);
    sha256_init(&c);
    sha256_update(&c, opad, 64);
    sha256_update(&c, inner, 32);
    sha256_final(&c, out);
}
