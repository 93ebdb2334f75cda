/* vmath: exp and erf in plain arithmetic, so loops over them vectorise.
 *
 * libm's expf and erff are calls the compiler cannot vectorise (they may set
 * errno); softmax and GELU spend most of their time in them. These use only
 * +, *, comparisons and integer bit moves:
 *   vexpf: 2^n e^r with n = round(x / ln 2), |r| <= ln 2 / 2, a degree-6
 *          polynomial; relative error below 2e-7; x is clamped to [-87, 88].
 *   verff: Abramowitz and Stegun 7.1.26 (five-term rational in
 *          t = 1 / (1 + p |x|), times e^-x^2); absolute error below 2e-7.
 * The tests compare the ops that use them with double-precision references. */
#ifndef FVLM_VMATH_H
#define FVLM_VMATH_H

#include <stdint.h>
#include <string.h>

static inline float vexpf(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* round to nearest without a libm call: adding 1.5 * 2^23 pushes the
     * fraction out of the mantissa */
    float t = x * 1.44269504088896341f;
    float n = (t + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693145752f;       /* ln 2, high part */
    r = r - n * 1.42860677e-6f;           /* ln 2, low part */
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float verff(float x)
{
    float ax = x < 0.0f ? -x : x;
    float t = 1.0f / (1.0f + 0.3275911f * ax);
    float y = 1.061405429f;
    y = y * t - 1.453152027f;
    y = y * t + 1.421413741f;
    y = y * t - 0.284496736f;
    y = y * t + 0.254829592f;
    y = 1.0f - y * t * vexpf(-ax * ax);
    return x < 0.0f ? -y : y;
}

#endif
