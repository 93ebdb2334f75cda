/* bytes: reading little- and big-endian numbers from unaligned bytes.
 *
 * Readers of file formats (NIfTI, DICOM) call these with a byte order flag
 * instead of swapping structs in place; the caller has checked that the
 * bytes are inside the buffer. */
#ifndef FVLM_INGEST_BYTES_H
#define FVLM_INGEST_BYTES_H

#include <stdint.h>
#include <string.h>

static inline uint16_t rd_u16(const unsigned char *p, int big)
{
    return big ? (uint16_t)(p[0] << 8 | p[1]) : (uint16_t)(p[1] << 8 | p[0]);
}

static inline uint32_t rd_u32(const unsigned char *p, int big)
{
    return big ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
               : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static inline uint64_t rd_u64(const unsigned char *p, int big)
{
    uint64_t a = rd_u32(p, big), b = rd_u32(p + 4, big);
    return big ? a << 32 | b : b << 32 | a;
}

static inline int16_t rd_i16(const unsigned char *p, int big) { return (int16_t)rd_u16(p, big); }
static inline int32_t rd_i32(const unsigned char *p, int big) { return (int32_t)rd_u32(p, big); }
static inline int64_t rd_i64(const unsigned char *p, int big) { return (int64_t)rd_u64(p, big); }

static inline float rd_f32(const unsigned char *p, int big)
{
    uint32_t u = rd_u32(p, big);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline double rd_f64(const unsigned char *p, int big)
{
    uint64_t u = rd_u64(p, big);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

#endif
