/* Local response normalisation across channels (AlexNet, GoogLeNet v1), exactly as
 * torch.nn.LocalResponseNorm(size, alpha, beta, k):
 *
 *   s[c]   = k + alpha/size * sum_{c' in W(c)} inp[c']^2,   W(c) = [c - size/2, c + (size-1)/2]
 *   out[c] = inp[c] / s[c]^beta
 *
 * Channels outside [0, C) count as zeros but the divisor stays `size` (PyTorch zero-pads and
 * averages with avg_pool3d). inp, out, dout, dinp are (N, C, H, W); the kernels run over (n, c)
 * planes in parallel and over each plane in chunks of LRN_CHUNK positions, so the per-chunk sums
 * stay in a small stack buffer and every inner loop is a contiguous, branch-free vector loop.
 *
 * Backward (saves inp and out; s is recomputed from inp):
 *   dinp[j] = dout[j] * s[j]^-beta
 *           - 2*alpha*beta/size * inp[j] * sum_{c : j in W(c)} dout[c] * out[c] / s[c]
 * and j in W(c) exactly when c is in [j - (size-1)/2, j + size/2]. */
#include <math.h>

#include "frugal/ops.h"

/* Spatial positions handled per chunk (two stack rows of this many floats). */
#define LRN_CHUNK 512

/* How s^-beta is computed: exact special cases for the betas networks use keep the inner loop
 * vectorisable (sqrt is correctly rounded); any other beta calls powf. */
typedef enum lrn_pow { LRN_POW_075, LRN_POW_05, LRN_POW_1, LRN_POW_ANY } lrn_pow;

static lrn_pow lrn_pow_kind(float beta) {
    if (beta == 0.75f) return LRN_POW_075;
    if (beta == 0.5f) return LRN_POW_05;
    if (beta == 1.0f) return LRN_POW_1;
    return LRN_POW_ANY;
}

/* First and one-past-last channel of the window that feeds s[c], clipped to [0, C). */
static inline void lrn_window(int64_t c, int64_t size, int64_t C, int64_t *lo, int64_t *hi) {
    int64_t a = c - size / 2, b = c + (size - 1) / 2 + 1;
    *lo = a < 0 ? 0 : a;
    *hi = b > C ? C : b;
}

/* acc[0..len) = k + alpha/size * sum of squares of channels [lo, hi) at positions base..base+len
 * of image `img` (C planes of HW). */
static void lrn_scale_chunk(float *acc, const float *img, int64_t lo, int64_t hi, int64_t HW, int64_t base,
                            int64_t len, float k, float a_over_n) {
#pragma omp simd
    for (int64_t i = 0; i < len; i++) acc[i] = 0.0f;
    for (int64_t cc = lo; cc < hi; cc++) {
        const float *x = img + cc * HW + base;
#pragma omp simd
        for (int64_t i = 0; i < len; i++) acc[i] += x[i] * x[i];
    }
#pragma omp simd
    for (int64_t i = 0; i < len; i++) acc[i] = k + a_over_n * acc[i];
}

/* sqrtf may set errno (never here: s >= k > 0), and that possibility alone stops the sqrt loops
 * below from vectorising unless the build passes -fno-math-errno (3x faster on AlexNet's LRN when
 * it does). GCC then needs the simd request to vectorise at -O2; clang vectorises on its own and
 * would warn that a simd request failed when the flag is absent, so it gets none. */
#if defined(__GNUC__) && !defined(__clang__)
#define LRN_SQRT_SIMD _Pragma("omp simd")
#else
#define LRN_SQRT_SIMD
#endif

/* out[i] = x[i] / s[i]^beta */
static void lrn_divide(float *out, const float *x, const float *s, int64_t len, float beta, lrn_pow kind) {
    switch (kind) {
    case LRN_POW_075:
        LRN_SQRT_SIMD
        for (int64_t i = 0; i < len; i++) {
            float r = sqrtf(s[i]);
            out[i] = x[i] / (r * sqrtf(r));
        }
        break;
    case LRN_POW_05:
        LRN_SQRT_SIMD
        for (int64_t i = 0; i < len; i++) out[i] = x[i] / sqrtf(s[i]);
        break;
    case LRN_POW_1:
#pragma omp simd
        for (int64_t i = 0; i < len; i++) out[i] = x[i] / s[i];
        break;
    default:
        for (int64_t i = 0; i < len; i++) out[i] = x[i] / powf(s[i], beta);
        break;
    }
}

void fg_lrn_forward(float *out, const float *inp, const fg_lrn_desc *d) {
    FG_ASSERT(d->size >= 1);
    const int64_t C = d->c, HW = d->h * d->w, planes = d->n * C;
    const float a_over_n = d->alpha / (float)d->size;
    const lrn_pow kind = lrn_pow_kind(d->beta);
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        const int64_t n = p / C, c = p % C;
        const float *img = inp + n * C * HW;
        int64_t lo, hi;
        lrn_window(c, d->size, C, &lo, &hi);
        float s[LRN_CHUNK];
        for (int64_t base = 0; base < HW; base += LRN_CHUNK) {
            int64_t len = HW - base < LRN_CHUNK ? HW - base : LRN_CHUNK;
            lrn_scale_chunk(s, img, lo, hi, HW, base, len, d->k, a_over_n);
            lrn_divide(out + p * HW + base, inp + p * HW + base, s, len, d->beta, kind);
        }
    }
}

void fg_lrn_forward_naive(float *out, const float *inp, const fg_lrn_desc *d) {
    FG_ASSERT(d->size >= 1);
    const int64_t C = d->c, HW = d->h * d->w;
    for (int64_t n = 0; n < d->n; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < HW; i++) {
                float sum = 0.0f;
                for (int64_t cc = c - d->size / 2; cc <= c + (d->size - 1) / 2; cc++) {
                    if (cc < 0 || cc >= C) continue; /* zero padding */
                    float v = inp[(n * C + cc) * HW + i];
                    sum += v * v;
                }
                float s = d->k + d->alpha / (float)d->size * sum;
                out[(n * C + c) * HW + i] = inp[(n * C + c) * HW + i] / powf(s, d->beta);
            }
}

void fg_lrn_backward(float *dinp, const float *dout, const float *inp, const float *out, const fg_lrn_desc *d) {
    if (!dinp) return;
    FG_ASSERT(d->size >= 1);
    const int64_t C = d->c, HW = d->h * d->w, planes = d->n * C;
    const float a_over_n = d->alpha / (float)d->size;
    const float coef = 2.0f * d->alpha * d->beta / (float)d->size;
    const lrn_pow kind = lrn_pow_kind(d->beta);
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        const int64_t n = p / C, j = p % C;
        const float *img = inp + n * C * HW;
        /* channels c whose window W(c) contains j */
        int64_t c0 = j - (d->size - 1) / 2, c1 = j + d->size / 2 + 1;
        if (c0 < 0) c0 = 0;
        if (c1 > C) c1 = C;
        float s[LRN_CHUNK], t[LRN_CHUNK];
        for (int64_t base = 0; base < HW; base += LRN_CHUNK) {
            int64_t len = HW - base < LRN_CHUNK ? HW - base : LRN_CHUNK;
            /* t = sum_c dout[c] * out[c] / s[c] */
#pragma omp simd
            for (int64_t i = 0; i < len; i++) t[i] = 0.0f;
            for (int64_t c = c0; c < c1; c++) {
                int64_t lo, hi;
                lrn_window(c, d->size, C, &lo, &hi);
                lrn_scale_chunk(s, img, lo, hi, HW, base, len, d->k, a_over_n);
                const float *g = dout + (n * C + c) * HW + base, *o = out + (n * C + c) * HW + base;
#pragma omp simd
                for (int64_t i = 0; i < len; i++) t[i] += g[i] * o[i] / s[i];
            }
            /* first term dout[j] / s[j]^beta (s[j] recomputed: out/inp fails where inp == 0) */
            int64_t lo, hi;
            lrn_window(j, d->size, C, &lo, &hi);
            lrn_scale_chunk(s, img, lo, hi, HW, base, len, d->k, a_over_n);
            float *di = dinp + p * HW + base;
            const float *x = inp + p * HW + base;
            lrn_divide(di, dout + p * HW + base, s, len, d->beta, kind);
#pragma omp simd
            for (int64_t i = 0; i < len; i++) di[i] -= coef * x[i] * t[i];
        }
    }
}
