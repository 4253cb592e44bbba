/* conv2d_impl.h: what conv2d.c and conv2d_direct.c share. conv2d_direct.c is compiled twice
 * (the baseline ISA and AVX-512); each build's functions carry its suffix, chosen by
 * FG_CONV2D_DIRECT_AVX512, and conv2d.c calls one build or the other (fg_cpu_isa_active). */
#ifndef FG_CONV2D_IMPL_H
#define FG_CONV2D_IMPL_H

#include <stdint.h>

#include "frugal/ops.h"

#if defined(FG_CONV2D_DIRECT_AVX512)
#define FG_CONV2D_DIRECT(name) name##_avx512
#else
#define FG_CONV2D_DIRECT(name) name##_base
#endif

/* Output positions o in [0, count) whose input index o*s + base lies in [0, in) form the range
 * [*lo, *hi) (empty when *lo >= *hi). base = k*dil - pad for kernel tap k. */
static inline void tap_range(int64_t base, int64_t s, int64_t in, int64_t count, int64_t *lo, int64_t *hi) {
    int64_t a = base >= 0 ? 0 : (-base + s - 1) / s;
    int64_t b = in - 1 - base < 0 ? 0 : (in - 1 - base) / s + 1;
    *lo = a;
    *hi = b < count ? b : count;
}

/* 1x1, stride 1, no padding: each output plane is a channel mix of the input planes (dilation
 * is irrelevant), so a plane can be treated as one long row, or as a GEMM operand as it is. */
static inline int is_pointwise(const fg_conv2d_desc *d) {
    return d->kh == 1 && d->kw == 1 && d->stride_h == 1 && d->stride_w == 1 && d->pad_h == 0 && d->pad_w == 0;
}

/* The IMPLICIT algorithm, per build. out (N, OC, OH, OW) is written; dinp (N, C, H, W) is written;
 * dweight (OC, C/G, KH, KW) is accumulated (+=). */
void fg_conv2d_implicit_forward_base(float *out, const float *inp, const float *weight, const float *bias,
                                     const fg_conv2d_desc *d);
void fg_conv2d_implicit_backward_data_base(float *dinp, const float *dout, const float *weight,
                                           const fg_conv2d_desc *d);
void fg_conv2d_implicit_backward_weights_base(float *dweight, const float *dout, const float *inp,
                                              const fg_conv2d_desc *d);
void fg_conv2d_implicit_forward_avx512(float *out, const float *inp, const float *weight, const float *bias,
                                       const fg_conv2d_desc *d);
void fg_conv2d_implicit_backward_data_avx512(float *dinp, const float *dout, const float *weight,
                                             const fg_conv2d_desc *d);
void fg_conv2d_implicit_backward_weights_avx512(float *dweight, const float *dout, const float *inp,
                                                const fg_conv2d_desc *d);

#endif
