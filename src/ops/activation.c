/* Pointwise activations and their gradients, as PyTorch defines them:
 *   relu     out = max(x, 0) (NaN propagates)     dinp = out <= 0 ? 0 : dout   saves out, or a
 *            1-bit mask of !(out <= 0) (fg_relu_forward_mask: 1/32 of out's bytes, the graph's
 *            choice); a NaN output passes its gradient, as PyTorch's threshold_backward does
 *   gelu     out = x * Phi(x), exact erf form      dinp = dout * (Phi(x) + x * phi(x))   saves inp
 *            (Phi the standard normal CDF 0.5 * (1 + erf(x / sqrt 2)), phi its density;
 *             torch.nn.functional.gelu's default approximate='none')
 *   tanh     out = tanh(x)                         dinp = dout * (1 - out^2)    saves out
 *   sigmoid  out = 1 / (1 + exp(-x))               dinp = dout * out * (1 - out) saves out
 * GELU's fast kernels compute Phi with fg_vm_normal_cdf (src/ops/vmath_impl.h: polynomials that
 * vectorise, relative error ~2e-7, and no cancellation for negative x, where 1 + erff(x / sqrt 2)
 * loses digits); fg_gelu_forward_naive / fg_gelu_backward_naive are the erff/expf twins.
 * Each works on n contiguous floats; dinp is written. Loops are OpenMP-parallel and vectorised,
 * but only past PAR_MIN elements (FG_PAR_MIN_STREAM for ReLU, which only moves data: par_impl.h)
 * so that small tensors do not pay for waking threads. Elements are
 * independent (no reductions), so the thread count does not change results. */
#include <math.h>

#include "frugal/ops.h"
#include "par_impl.h"
#include "vmath_impl.h"

/* Elements below which a transcendental loop runs on the calling thread (waking the other thread
 * costs ~15-20 us, about what 16K of these elements take). */
#define PAR_MIN 16384

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

void fg_relu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > FG_PAR_MIN_STREAM)
    for (size_t i = 0; i < n; i++) out[i] = inp[i] < 0.0f ? 0.0f : inp[i];
}

void fg_relu_backward(float *dinp, const float *dout, const float *out, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > FG_PAR_MIN_STREAM)
    for (size_t i = 0; i < n; i++) dinp[i] = out[i] <= 0.0f ? 0.0f : dout[i];
}

size_t fg_relu_mask_bytes(size_t n) { return (n + 7) / 8; }

/* One mask byte per 8 elements, so threads never share a byte. */
void fg_relu_forward_mask(float *out, uint8_t *mask, const float *inp, size_t n) {
    const size_t nb = n / 8;
#pragma omp parallel for schedule(static) if (n > FG_PAR_MIN_STREAM)
    for (size_t b = 0; b < nb; b++) {
        unsigned bits = 0;
        for (unsigned j = 0; j < 8; j++) {
            float v = inp[8 * b + j];
            float o = v < 0.0f ? 0.0f : v;
            out[8 * b + j] = o;
            bits |= (unsigned)!(o <= 0.0f) << j;
        }
        mask[b] = (uint8_t)bits;
    }
    if (n % 8) {
        unsigned bits = 0;
        for (size_t i = 8 * nb; i < n; i++) {
            float o = inp[i] < 0.0f ? 0.0f : inp[i];
            out[i] = o;
            bits |= (unsigned)!(o <= 0.0f) << (i - 8 * nb);
        }
        mask[nb] = (uint8_t)bits;
    }
}

void fg_relu_backward_mask(float *dinp, const float *dout, const uint8_t *mask, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) dinp[i] = (mask[i >> 3] >> (i & 7)) & 1u ? dout[i] : 0.0f;
}

/* GELU forward with 512-bit vectors, called when fg_cpu_isa_active() allows AVX-512 (the name
 * carries _avx512 for scripts/check-isa.sh). Each element goes through the same IEEE operations as
 * in the AVX2 loop below (this file is built with -ffp-contract=fast, and both x86-64-v3 and v4
 * have FMA: the polynomials' a * b + c become the same fused operations in both loops), so both
 * give the same bits (tests/test_ops_vit.c checks). The contraction took GELU's forward from 0.59
 * to 0.49 ms on 1.2 M elements, 2 threads (AMD EPYC, AVX-512). */
__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,prefer-vector-width=512"))) static void
gelu_forward_avx512(float *out, const float *inp, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = inp[i] * fg_vm_normal_cdf(inp[i]);
}

void fg_gelu_forward(float *out, const float *inp, size_t n) {
    if (fg_cpu_isa_active() == FG_ISA_AVX512) {
        gelu_forward_avx512(out, inp, n);
        return;
    }
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = inp[i] * fg_vm_normal_cdf(inp[i]);
}

void fg_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const float x = inp[i];
        const float pdf = INV_SQRT_2PI * fg_vm_exp_nonpos(-0.5f * x * x);
        dinp[i] = dout[i] * (fg_vm_normal_cdf(x) + x * pdf);
    }
}

void fg_gelu_forward_naive(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + erff(x * INV_SQRT2));
    }
}

void fg_gelu_backward_naive(float *dinp, const float *dout, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float cdf = 0.5f * (1.0f + erff(x * INV_SQRT2));
        float pdf = INV_SQRT_2PI * expf(-0.5f * x * x);
        dinp[i] = dout[i] * (cdf + x * pdf);
    }
}

void fg_tanh_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = tanhf(inp[i]);
}

void fg_tanh_backward(float *dinp, const float *dout, const float *out, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) dinp[i] = dout[i] * (1.0f - out[i] * out[i]);
}

void fg_sigmoid_forward(float *out, const float *inp, size_t n) {
    /* exp(-x) overflows to +inf for x < -88 and the quotient is then exactly 0, which is right */
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = 1.0f / (1.0f + expf(-inp[i]));
}

void fg_sigmoid_backward(float *dinp, const float *dout, const float *out, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) dinp[i] = dout[i] * out[i] * (1.0f - out[i]);
}
