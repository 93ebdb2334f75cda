#include "loss.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "ops.h"
#include "vmath.h"

static const char *const names[] = {"global", "fine", "fine-fn", "fine-fn-disease", "supervised"};

const char *loss_mode_name(LossMode m) { return (unsigned)m < 5 ? names[m] : "?"; }

int loss_mode_parse(const char *s, LossMode *m)
{
    for (int i = 0; i < 5; i++)
        if (s && strcmp(s, names[i]) == 0) {
            *m = (LossMode)i;
            return 0;
        }
    return -1;
}

static float jaccard(const uint64_t *a, const uint64_t *b, int words)
{
    int both = 0, either = 0;
    for (int w = 0; w < words; w++) {
        both += __builtin_popcountll(a[w] & b[w]);
        either += __builtin_popcountll(a[w] | b[w]);
    }
    return either ? (float)both / (float)either : 0.0f;
}

void loss_targets(float *t, LossMode mode, int n, const uint8_t *abnormal, const int *text,
                  const uint64_t *dis, int words)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            float v = i == j ? 1.0f : 0.0f;
            if (i != j && mode >= LOSS_FINE_FN) {
                if ((!abnormal[i] && !abnormal[j]) || text[i] == text[j])
                    v = 1.0f;
                else if (mode == LOSS_FINE_FN_DISEASE && abnormal[i] && abnormal[j])
                    v = jaccard(dis + (size_t)i * words, dis + (size_t)j * words, words);
            }
            t[(size_t)i * n + j] = v;
        }
}

size_t contrast_scratch_size(int n) { return 2 * (size_t)n * (size_t)n + 2 * (size_t)n; }

float contrast_loss(float *dimg, float *dtxt, float *dtau, const float *img, const float *txt,
                    const float *t, int n, int d, float tau, float *scratch)
{
    float *s = scratch;                         /* (n, n) logits */
    float *g = s + (size_t)n * n;               /* (n, n) d loss / d logits */
    float *rsum = g + (size_t)n * n, *csum = rsum + n; /* target row and column sums */
    gemm(0, 1, n, n, d, 1.0f / tau, img, d, txt, d, 0.0f, s, n);
    for (int i = 0; i < n; i++) {
        rsum[i] = 0.0f;
        csum[i] = 0.0f;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            rsum[i] += t[(size_t)i * n + j];
            csum[j] += t[(size_t)i * n + j];
        }
    /* Each direction contributes (p - target) / (2 n) to d loss / d s; the
     * loss is accumulated in double so a large batch does not lose digits. */
    double loss = 0.0;
    float inv2n = 1.0f / (2.0f * (float)n);
    for (int i = 0; i < n; i++) {
        const float *si = s + (size_t)i * n;
        float mx = -FLT_MAX;
        for (int j = 0; j < n; j++)
            mx = si[j] > mx ? si[j] : mx;
        float z = 0.0f;
        for (int j = 0; j < n; j++)
            z += vexpf(si[j] - mx);
        float lz = logf(z) + mx, invz = 1.0f / z;
        for (int j = 0; j < n; j++) {
            float tij = t[(size_t)i * n + j] / rsum[i];
            loss -= (double)tij * (double)(si[j] - lz);
            g[(size_t)i * n + j] = (vexpf(si[j] - mx) * invz - tij) * inv2n;
        }
    }
    for (int j = 0; j < n; j++) {
        float mx = -FLT_MAX;
        for (int i = 0; i < n; i++)
            mx = s[(size_t)i * n + j] > mx ? s[(size_t)i * n + j] : mx;
        float z = 0.0f;
        for (int i = 0; i < n; i++)
            z += vexpf(s[(size_t)i * n + j] - mx);
        float lz = logf(z) + mx, invz = 1.0f / z;
        for (int i = 0; i < n; i++) {
            float sij = s[(size_t)i * n + j];
            float tij = t[(size_t)i * n + j] / csum[j];
            loss -= (double)tij * (double)(sij - lz);
            g[(size_t)i * n + j] += (vexpf(sij - mx) * invz - tij) * inv2n;
        }
    }
    loss /= 2.0 * n;
    /* s = img txt^T / tau: dimg = g txt / tau, dtxt = g^T img / tau,
     * dtau = -sum g s / tau. */
    gemm(0, 0, n, d, n, 1.0f / tau, g, n, txt, d, 0.0f, dimg, d);
    gemm(1, 0, n, d, n, 1.0f / tau, g, n, img, d, 0.0f, dtxt, d);
    double dt = 0.0;
    for (size_t i = 0; i < (size_t)n * n; i++)
        dt -= (double)g[i] * (double)s[i];
    *dtau = (float)(dt / tau);
    return (float)loss;
}
