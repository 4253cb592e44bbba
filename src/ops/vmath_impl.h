/* Vectorisable float math shared by the op files (internal): e^x for x <= 0 and the standard
 * normal CDF. libm's expf and erff are scalar calls that keep GCC from vectorising a loop (they
 * were most of softmax's time at ViT sizes, and all of GELU's); these are straight-line code
 * (polynomials, selects, one division) that `omp simd` loops vectorise. */
#ifndef FG_OPS_VMATH_IMPL_H
#define FG_OPS_VMATH_IMPL_H

#include <stdint.h>

/* e^x for x <= 0 (softmax's x - max): x = n ln2 + r with |r| <= ln2/2, e^r by the degree-6
 * polynomial of Cephes' expf (error ~1 ulp), 2^n put in the exponent bits. Below -87 (e^x <
 * 1.7e-38, nothing next to the row maximum's 1) it returns 0; NaN gives NaN. */
__attribute__((always_inline)) static inline float fg_vm_exp_nonpos(float x) {
    /* NaN and x < -87 compute with -87 (and x > 88 with 88), so that n stays a small integer:
     * converting NaN or a huge float to int is undefined; the result is selected below */
    const float xc = !(x >= -87.0f) ? -87.0f : x > 88.0f ? 88.0f : x;
    /* n = round(x / ln2) by the 1.5 * 2^23 trick (floorf would keep GCC from vectorising) */
    const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f; /* ln2 in two parts: n * ln2_hi is exact */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    /* n in [-126, 127]: 2^n is a normal float, its exponent field n + 127 */
    const union { uint32_t i; float f; } two_n = {.i = (uint32_t)((int32_t)n + 127) << 23};
    return x < -87.0f ? 0.0f : x == x ? p * two_n.f : x; /* NaN stays NaN */
}

/* Phi(x) = 0.5 * (1 + erf(x / sqrt 2)), the standard normal CDF, computed without the cancellation
 * of 1 + erf for negative x. With a = |x| / sqrt 2:
 *   a < 1:      erf(a) = a * P(a^2), P of degree 5; Phi = 0.5 + 0.5 * sign(x) * erf(a)
 *   1 <= a <= 5: erfc(a) = e^(-a^2) * Q(t), t = 1 / (1 + a), Q of degree 7;
 *               Phi = 0.5 * erfc(a) for x < 0, 1 - 0.5 * erfc(a) for x > 0
 *   a > 5:      Phi = 0 or 1 (erfc(5) / 2 = 7.7e-13)
 * P and Q are our own least-squares fits (numpy, in double, on Chebyshev nodes; erf and erfc
 * exp(a^2) from mpmath), rounded to float: measured over 20,001 points each, the largest relative
 * error of erf(a) is 1.6e-7 for a < 1 and of erfc(a) e^(a^2) 2.0e-7 on [1, 5]. e^(-a^2) keeps the
 * rounding error of a^2 (fma) to first order. With e^x's own error, GELU = x Phi(x) is within
 * 3.2e-6 relative of a double reference for every x > -7 (tests/test_ops_vit.c; the erff form
 * loses all digits there). NaN gives NaN. */
__attribute__((always_inline)) static inline float fg_vm_normal_cdf(float x) {
    const float a = (x < 0.0f ? -x : x) * 0.70710678118654752440f;
    /* small |x| */
    const float u = a * a;
    float p = -5.654111737385392e-04f;
    p = p * u + 4.923284053802490e-03f;
    p = p * u + -2.671639621257782e-02f;
    p = p * u + 1.128036528825760e-01f;
    p = p * u + -3.761234879493713e-01f;
    p = p * u + 1.128379106521606e+00f;
    const float small = 0.5f + 0.5f * (x * 0.70710678118654752440f) * p;
    /* large |x| */
    const float ac = a > 5.0f ? 5.0f : a < 1.0f ? 1.0f : a;
    const float t = 1.0f / (1.0f + ac);
    float q = -7.607255578041077e-01f;
    q = q * t + 1.688402295112610e+00f;
    q = q * t + -1.015284657478333e+00f;
    q = q * t + -4.062306880950928e-01f;
    q = q * t + 3.529400825500488e-01f;
    q = q * t + 5.495103597640991e-01f;
    q = q * t + 5.656511783599854e-01f;
    q = q * t + -5.817370038130321e-05f;
    const float a2 = ac * ac, a2_err = __builtin_fmaf(ac, ac, -a2); /* ac^2 = a2 + a2_err exactly */
    const float half_erfc = 0.5f * fg_vm_exp_nonpos(-a2) * (1.0f - a2_err) * q;
    const float large = a > 5.0f ? (x > 0.0f ? 1.0f : 0.0f) : x > 0.0f ? 1.0f - half_erfc : half_erfc;
    return a < 1.0f ? small : large;
}

#endif
