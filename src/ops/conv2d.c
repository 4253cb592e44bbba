/* conv2d: 2-D convolution with stride, zero padding, dilation and groups (depthwise included),
 * exactly as torch.nn.functional.conv2d and its autograd, in three algorithms that vDNN's dynamic
 * policy chooses between layer by layer (after cuDNN's IMPLICIT_GEMM / GEMM / fastest):
 *
 *  - FG_CONV_IMPLICIT: direct loops written here, no caller workspace (at most 8 KiB of stack
 *    per thread). Register-tiled vector kernels (tiles of output channels x output columns for
 *    forward and stride-1 backward-data; of output channels x kernel taps for backward-weights,
 *    where each thread owns its filter slices so no reduction buffer is needed), with generic
 *    loops for the geometries the tiles do not cover (strided backward-data, very wide rows,
 *    huge dilations). OpenMP-parallel. Slower than oneDNN; the price of using no memory.
 *  - FG_CONV_GEMM: im2col of one image (one group) into the workspace, then fg_sgemm (oneDNN).
 *    Workspace = the column buffer, (C/groups * KH * KW) x (OH * OW) floats; 0 for a 1x1,
 *    stride-1, unpadded convolution, whose input already is its column matrix.
 *  - FG_CONV_DNNL: oneDNN convolution primitives with format_tag_any, so oneDNN picks its blocked
 *    layouts (nChw16c, OIhw16i16o, ...); user tensors stay plain (nchw, oihw/goihw) and are
 *    reordered to and from the blocked layouts inside the call, through buffers carved from the
 *    caller's workspace. oneDNN's scratchpad also comes from the workspace (scratchpad_mode_user),
 *    so oneDNN allocates nothing per call that the budget does not see.
 *
 * Shapes (NCHW, contiguous f32): inp (N, C, H, W), weight (OC, C/G, KH, KW), bias (OC),
 * out (N, OC, OH, OW), OH = (H + 2*pad_h - dil_h*(KH-1) - 1) / stride_h + 1 (floor), same for OW.
 * Output channel oc belongs to group g = oc / (OC/G) and sees input channels
 * [g*C/G, (g+1)*C/G).
 *
 * Backward WRITES dinp and ACCUMULATES dweight += and dbias +=; any of the three may be NULL.
 *
 * The oneDNN path keeps a process-wide cache of primitive descriptors and primitives keyed by the
 * descriptor and the OpenMP thread count (creating them costs milliseconds, and oneDNN sizes its
 * scratchpad for the thread count at creation). The cache, the engine and the stream are the one
 * piece of shared mutable state in this file: a mutex guards the table, a per-entry reference
 * count keeps an entry alive while a call uses it, and a per-entry mutex guards the lazy creation
 * of its primitives. DNNL workspace_bytes therefore depends on fg_threads_get(): query it with the
 * thread count you will run with. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include "frugal/ops.h"

/* ================================================================ shapes */

static const char *const ALGO_NAMES[FG_CONV_ALGO_COUNT] = {"implicit", "gemm", "dnnl"};

const char *fg_conv_algo_name(fg_conv_algo a) {
    if ((int)a < 0 || a >= FG_CONV_ALGO_COUNT) return "unknown";
    return ALGO_NAMES[a];
}

/* floor((in + 2p - dil*(k-1) - 1) / s) + 1, or 0 when the dilated kernel does not fit. */
static int64_t conv_out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t dil) {
    int64_t span = in + 2 * p - dil * (k - 1) - 1;
    if (s <= 0 || span < 0) return 0;
    return span / s + 1;
}

int64_t fg_conv2d_out_h(const fg_conv2d_desc *d) {
    return conv_out_size(d->h, d->kh, d->stride_h, d->pad_h, d->dil_h);
}

int64_t fg_conv2d_out_w(const fg_conv2d_desc *d) {
    return conv_out_size(d->w, d->kw, d->stride_w, d->pad_w, d->dil_w);
}

fg_status fg_conv2d_check(const fg_conv2d_desc *d) {
    if (!d) return fg_fail(FG_ERR_INVALID, "conv2d: descriptor is NULL");
    if (d->n <= 0 || d->c <= 0 || d->h <= 0 || d->w <= 0)
        return fg_fail(FG_ERR_SHAPE, "conv2d: input (N, C, H, W) = (%lld, %lld, %lld, %lld), expected all > 0",
                       (long long)d->n, (long long)d->c, (long long)d->h, (long long)d->w);
    if (d->oc <= 0 || d->kh <= 0 || d->kw <= 0)
        return fg_fail(FG_ERR_SHAPE, "conv2d: output channels %lld, kernel %lldx%lld, expected all > 0",
                       (long long)d->oc, (long long)d->kh, (long long)d->kw);
    if (d->stride_h <= 0 || d->stride_w <= 0)
        return fg_fail(FG_ERR_SHAPE, "conv2d: stride %lldx%lld, expected both > 0", (long long)d->stride_h,
                       (long long)d->stride_w);
    if (d->dil_h <= 0 || d->dil_w <= 0)
        return fg_fail(FG_ERR_SHAPE, "conv2d: dilation %lldx%lld, expected both >= 1 (1 = none)",
                       (long long)d->dil_h, (long long)d->dil_w);
    if (d->pad_h < 0 || d->pad_w < 0)
        return fg_fail(FG_ERR_SHAPE, "conv2d: padding %lldx%lld, expected both >= 0", (long long)d->pad_h,
                       (long long)d->pad_w);
    if (d->groups <= 0)
        return fg_fail(FG_ERR_SHAPE, "conv2d: groups %lld, expected >= 1", (long long)d->groups);
    if (d->c % d->groups != 0)
        return fg_fail(FG_ERR_SHAPE, "conv2d: input channels C=%lld are not divisible by groups=%lld",
                       (long long)d->c, (long long)d->groups);
    if (d->oc % d->groups != 0)
        return fg_fail(FG_ERR_SHAPE, "conv2d: output channels OC=%lld are not divisible by groups=%lld",
                       (long long)d->oc, (long long)d->groups);
    int64_t eh = d->dil_h * (d->kh - 1) + 1, ew = d->dil_w * (d->kw - 1) + 1;
    if (eh > d->h + 2 * d->pad_h || ew > d->w + 2 * d->pad_w)
        return fg_fail(FG_ERR_SHAPE,
                       "conv2d: kernel %lldx%lld (dilated extent %lldx%lld) is larger than the padded input "
                       "%lldx%lld (input %lldx%lld, padding %lldx%lld)",
                       (long long)d->kh, (long long)d->kw, (long long)eh, (long long)ew,
                       (long long)(d->h + 2 * d->pad_h), (long long)(d->w + 2 * d->pad_w), (long long)d->h,
                       (long long)d->w, (long long)d->pad_h, (long long)d->pad_w);
    return FG_OK;
}

double fg_conv2d_flops(const fg_conv2d_desc *d) {
    return 2.0 * (double)d->n * (double)d->oc * (double)fg_conv2d_out_h(d) * (double)fg_conv2d_out_w(d) *
           (double)(d->c / d->groups) * (double)d->kh * (double)d->kw;
}

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
static int is_pointwise(const fg_conv2d_desc *d) {
    return d->kh == 1 && d->kw == 1 && d->stride_h == 1 && d->stride_w == 1 && d->pad_h == 0 && d->pad_w == 0;
}

/* ================================================================ naive twins */

void fg_conv2d_forward_naive(float *out, const float *inp, const float *weight, const float *bias,
                             const fg_conv2d_desc *d) {
    int64_t OH = fg_conv2d_out_h(d), OW = fg_conv2d_out_w(d);
    int64_t Cg = d->c / d->groups, OCg = d->oc / d->groups;
    for (int64_t n = 0; n < d->n; n++)
        for (int64_t oc = 0; oc < d->oc; oc++) {
            int64_t g = oc / OCg;
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    double acc = bias ? bias[oc] : 0.0;
                    for (int64_t c = 0; c < Cg; c++)
                        for (int64_t kh = 0; kh < d->kh; kh++)
                            for (int64_t kw = 0; kw < d->kw; kw++) {
                                int64_t ih = oh * d->stride_h - d->pad_h + kh * d->dil_h;
                                int64_t iw = ow * d->stride_w - d->pad_w + kw * d->dil_w;
                                if (ih < 0 || ih >= d->h || iw < 0 || iw >= d->w) continue;
                                acc += (double)inp[((n * d->c + g * Cg + c) * d->h + ih) * d->w + iw] *
                                       weight[((oc * Cg + c) * d->kh + kh) * d->kw + kw];
                            }
                    out[((n * d->oc + oc) * OH + oh) * OW + ow] = (float)acc;
                }
        }
}

void fg_conv2d_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, const fg_conv2d_desc *d) {
    int64_t OH = fg_conv2d_out_h(d), OW = fg_conv2d_out_w(d);
    int64_t Cg = d->c / d->groups, OCg = d->oc / d->groups;
    if (dinp) memset(dinp, 0, (size_t)(d->n * d->c * d->h * d->w) * sizeof(float));
    for (int64_t n = 0; n < d->n; n++)
        for (int64_t oc = 0; oc < d->oc; oc++) {
            int64_t g = oc / OCg;
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    float go = dout[((n * d->oc + oc) * OH + oh) * OW + ow];
                    if (dbias) dbias[oc] += go;
                    for (int64_t c = 0; c < Cg; c++)
                        for (int64_t kh = 0; kh < d->kh; kh++)
                            for (int64_t kw = 0; kw < d->kw; kw++) {
                                int64_t ih = oh * d->stride_h - d->pad_h + kh * d->dil_h;
                                int64_t iw = ow * d->stride_w - d->pad_w + kw * d->dil_w;
                                if (ih < 0 || ih >= d->h || iw < 0 || iw >= d->w) continue;
                                size_t ii = (size_t)(((n * d->c + g * Cg + c) * d->h + ih) * d->w + iw);
                                size_t wi = (size_t)(((oc * Cg + c) * d->kh + kh) * d->kw + kw);
                                if (dinp) dinp[ii] += go * weight[wi];
                                if (dweight) dweight[wi] += go * inp[ii];
                            }
                }
        }
}

/* ================================================================ IMPLICIT, generic loops
 * Plain loops for any geometry; the register-tiled kernels below fall back to these when a row
 * does not fit their stack buffer (very wide rows or huge dilations). */

/* Forward work unit: IMP_OCB output channels x one output row x IMP_OWT output columns, kept in a
 * stack tile (8 x 64 floats = 2 KiB per thread). */
#define IMP_OCB 8
#define IMP_OWT 64
/* Backward-data work unit: IMP_CB input channels x one input row. */
#define IMP_CB 4

static void implicit_forward_generic(float *out, const float *inp, const float *weight, const float *bias,
                                     const fg_conv2d_desc *d) {
    const int64_t H = d->h, W = d->w, C = d->c, OC = d->oc, KH = d->kh, KW = d->kw;
    const int64_t sh = d->stride_h, sw = d->stride_w, ph = d->pad_h, pw = d->pad_w, dh = d->dil_h, dw = d->dil_w;
    const int64_t G = d->groups, Cg = C / G, OCg = OC / G;
    const int64_t OH = fg_conv2d_out_h(d), OW = fg_conv2d_out_w(d);
    const int64_t nob = (OCg + IMP_OCB - 1) / IMP_OCB, nwt = (OW + IMP_OWT - 1) / IMP_OWT;
    const int64_t units = d->n * G * nob * OH * nwt;
    const int64_t wstride = Cg * KH * KW; /* floats between consecutive output channels' filters */

#pragma omp parallel for schedule(static)
    for (int64_t u = 0; u < units; u++) {
        int64_t r = u;
        const int64_t t = r % nwt;
        r /= nwt;
        const int64_t oh = r % OH;
        r /= OH;
        const int64_t ob = r % nob;
        r /= nob;
        const int64_t g = r % G;
        const int64_t n = r / G;
        const int64_t oc0 = g * OCg + ob * IMP_OCB;
        const int64_t nb = OCg - ob * IMP_OCB < IMP_OCB ? OCg - ob * IMP_OCB : IMP_OCB;
        const int64_t ow0 = t * IMP_OWT;
        const int64_t nw = OW - ow0 < IMP_OWT ? OW - ow0 : IMP_OWT;

        float acc[IMP_OCB][IMP_OWT];
        for (int64_t o = 0; o < nb; o++) {
            float b0 = bias ? bias[oc0 + o] : 0.0f;
            for (int64_t j = 0; j < nw; j++) acc[o][j] = b0;
        }
        for (int64_t c = 0; c < Cg; c++) {
            const float *plane = inp + ((size_t)(n * C + g * Cg + c)) * (size_t)(H * W);
            for (int64_t kh = 0; kh < KH; kh++) {
                int64_t ih = oh * sh - ph + kh * dh;
                if (ih < 0 || ih >= H) continue;
                const float *row = plane + ih * W;
                for (int64_t kw = 0; kw < KW; kw++) {
                    int64_t base = kw * dw - pw, lo, hi;
                    tap_range(base, sw, W, OW, &lo, &hi);
                    if (lo < ow0) lo = ow0;
                    if (hi > ow0 + nw) hi = ow0 + nw;
                    if (lo >= hi) continue;
                    const float *wp = weight + (size_t)oc0 * (size_t)wstride + (size_t)((c * KH + kh) * KW + kw);
                    if (sw == 1) {
                        /* contiguous: a[j] += w * x[j] over the valid columns, vectorised */
                        const float *x = row + (lo + base);
                        const int64_t len = hi - lo;
                        for (int64_t o = 0; o < nb; o++) {
                            const float wv = wp[o * wstride];
                            float *a = acc[o] + (lo - ow0);
                            for (int64_t j = 0; j < len; j++) a[j] += wv * x[j];
                        }
                    } else {
                        for (int64_t o = 0; o < nb; o++) {
                            const float wv = wp[o * wstride];
                            float *a = acc[o];
                            for (int64_t ow = lo; ow < hi; ow++) a[ow - ow0] += wv * row[ow * sw + base];
                        }
                    }
                }
            }
        }
        for (int64_t o = 0; o < nb; o++) {
            float *y = out + ((size_t)(n * OC + oc0 + o) * (size_t)OH + (size_t)oh) * (size_t)OW + (size_t)ow0;
            memcpy(y, acc[o], (size_t)nw * sizeof(float));
        }
    }
}

/* dinp: each work unit owns IMP_CB input rows (n, c..c+IMP_CB, ih), zeroes them, then scatters
 * into them every (oc, kh, kw) tap whose output row oh maps onto ih. */
static void implicit_backward_data_generic(float *dinp, const float *dout, const float *weight,
                                           const fg_conv2d_desc *d) {
    const int64_t H = d->h, W = d->w, C = d->c, OC = d->oc, KH = d->kh, KW = d->kw;
    const int64_t sh = d->stride_h, sw = d->stride_w, ph = d->pad_h, pw = d->pad_w, dh = d->dil_h, dw = d->dil_w;
    const int64_t G = d->groups, Cg = C / G, OCg = OC / G;
    const int64_t OH = fg_conv2d_out_h(d), OW = fg_conv2d_out_w(d);
    const int64_t ncb = (Cg + IMP_CB - 1) / IMP_CB;
    const int64_t units = d->n * G * ncb * H;

#pragma omp parallel for schedule(static)
    for (int64_t u = 0; u < units; u++) {
        int64_t r = u;
        const int64_t ih = r % H;
        r /= H;
        const int64_t cb = r % ncb;
        r /= ncb;
        const int64_t g = r % G;
        const int64_t n = r / G;
        const int64_t c0 = cb * IMP_CB; /* within the group */
        const int64_t nb = Cg - c0 < IMP_CB ? Cg - c0 : IMP_CB;

        float *rows[IMP_CB];
        for (int64_t k = 0; k < nb; k++) {
            rows[k] = dinp + ((size_t)(n * C + g * Cg + c0 + k) * (size_t)H + (size_t)ih) * (size_t)W;
            memset(rows[k], 0, (size_t)W * sizeof(float));
        }
        for (int64_t kh = 0; kh < KH; kh++) {
            int64_t tt = ih + ph - kh * dh; /* = oh * sh */
            if (tt < 0 || tt % sh != 0) continue;
            int64_t oh = tt / sh;
            if (oh >= OH) continue;
            for (int64_t oc = g * OCg; oc < (g + 1) * OCg; oc++) {
                const float *drow = dout + ((size_t)(n * OC + oc) * (size_t)OH + (size_t)oh) * (size_t)OW;
                const float *wp = weight + ((size_t)(oc * Cg + c0) * (size_t)KH + (size_t)kh) * (size_t)KW;
                for (int64_t kw = 0; kw < KW; kw++) {
                    int64_t base = kw * dw - pw, lo, hi;
                    tap_range(base, sw, W, OW, &lo, &hi);
                    if (lo >= hi) continue;
                    for (int64_t k = 0; k < nb; k++) {
                        const float wv = wp[k * KH * KW + kw];
                        float *x = rows[k];
                        if (sw == 1) {
                            float *xb = x + (lo + base);
                            const float *db = drow + lo;
                            const int64_t len = hi - lo;
                            for (int64_t j = 0; j < len; j++) xb[j] += wv * db[j];
                        } else {
                            for (int64_t ow = lo; ow < hi; ow++) x[ow * sw + base] += wv * drow[ow];
                        }
                    }
                }
            }
        }
    }
}

/* dweight += : each work unit owns one (oc, c) filter slice (KH*KW values) and reduces over the
 * batch and the output plane, one row dot product at a time (float within a row, double across
 * rows). */
static void implicit_backward_weights_generic(float *dweight, const float *dout, const float *inp,
                                              const fg_conv2d_desc *d) {
    const int64_t H = d->h, W = d->w, C = d->c, OC = d->oc, KH = d->kh, KW = d->kw;
    const int64_t sh = d->stride_h, sw = d->stride_w, ph = d->pad_h, pw = d->pad_w, dh = d->dil_h, dw = d->dil_w;
    const int64_t G = d->groups, Cg = C / G, OCg = OC / G;
    const int64_t OH = fg_conv2d_out_h(d), OW = fg_conv2d_out_w(d);
    const int64_t units = OC * Cg;

#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t u = 0; u < units; u++) {
        const int64_t oc = u / Cg, c = u % Cg, g = oc / OCg;
        float *dw_slice = dweight + (size_t)u * (size_t)(KH * KW);
        for (int64_t kh = 0; kh < KH; kh++) {
            int64_t blo, bhi; /* output rows whose input row oh*sh - ph + kh*dh is inside */
            tap_range(kh * dh - ph, sh, H, OH, &blo, &bhi);
            for (int64_t kw = 0; kw < KW; kw++) {
                int64_t base = kw * dw - pw, lo, hi;
                tap_range(base, sw, W, OW, &lo, &hi);
                double sum = 0.0;
                if (lo < hi)
                    for (int64_t n = 0; n < d->n; n++) {
                        const float *dplane = dout + (size_t)(n * OC + oc) * (size_t)(OH * OW);
                        const float *iplane = inp + (size_t)(n * C + g * Cg + c) * (size_t)(H * W);
                        for (int64_t oh = blo; oh < bhi; oh++) {
                            const float *drow = dplane + oh * OW;
                            const float *irow = iplane + (oh * sh - ph + kh * dh) * W;
                            float s = 0.0f;
                            if (sw == 1) {
                                const float *xb = irow + (lo + base), *db = drow + lo;
                                const int64_t len = hi - lo;
#pragma omp simd reduction(+ : s)
                                for (int64_t j = 0; j < len; j++) s += db[j] * xb[j];
                            } else {
#pragma omp simd reduction(+ : s)
                                for (int64_t ow = lo; ow < hi; ow++) s += drow[ow] * irow[ow * sw + base];
                            }
                            sum += s;
                        }
                    }
                dw_slice[kh * KW + kw] += (float)sum;
            }
        }
    }
}

/* ================================================================ IMPLICIT, register-tiled
 * The fast kernels keep a tile of accumulators in vector registers (GCC/Clang vector extension;
 * 16 floats = one AVX-512 register, narrower ISAs split it):
 *  - forward: up to 8 output channels x 32 (or 16) output columns of one output row; per kernel
 *    tap, 2 loads of input columns, 8 weight broadcasts and 16 FMAs, with no bounds tests. With
 *    stride 1 on AVX-512 the loads read the input row directly, lanes outside it masked to zero;
 *    otherwise, for each input channel and kernel row, the needed columns are first copied into a
 *    zero-padded stack buffer split into `stride_w` phases, so every tap reads contiguous floats.
 *    A 1x1, stride-1, unpadded convolution treats each plane as one long row.
 *  - backward data with stride 1 is the same kernel run on dout with the transposed, flipped
 *    filter (a correlation with padding dil*(K-1) - pad); other strides use the generic scatter.
 *  - backward weights: up to 4 output channels x 3 taps of one (input channel, kernel row),
 *    reduced over output rows in vector lanes and summed across lanes once per image; images
 *    are processed one after another so each image's planes stay in cache.
 * Stack per thread: the phase buffer (DC_BUF floats, 8 KiB) plus, for backward weights, the
 * spilled accumulators of up to 8 tap chunks (6 KiB). Geometries that do not fit use the
 * generic loops above. */

typedef float v16 __attribute__((vector_size(64)));
/* The same vector for unaligned loads through any float pointer. */
typedef float v16u __attribute__((vector_size(64), aligned(4), may_alias));
#define DC_VW 16
#define DC_BUF 2048
/* Forward: kernel widths up to this use the fast path (tap offsets are precomputed on the stack). */
#define DC_MAX_KW 32
/* Backward weights: at most this many 3-tap chunks per kernel row (KW <= 24) on the fast path. */
#define WT_MAX_CHUNKS 8
/* Backward weights: output rows up to WT_MAX_VEC vectors (2048 columns) on the fast path. */
#define WT_MAX_VEC 128
#define DC_ALWAYS_INLINE static inline __attribute__((always_inline))

/* Vector helpers are macros, not functions: without AVX-512 a function taking or returning a v16
 * by value draws ABI notes from the compiler, though none would cross a unit boundary. */
#define V16_LOAD(p) ((v16)(*(const v16u *)(p)))
#define V16_SPLAT(x) ((v16){(x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x)})
/* a*b + c, fused with AVX-512 (ISO C mode does not contract a*b + c on its own). */
#if defined(__AVX512F__)
#define V16_FMA(a, b, c) ((v16)_mm512_fmadd_ps((__m512)(a), (__m512)(b), (__m512)(c)))
#else
#define V16_FMA(a, b, c) ((a) * (b) + (c))
#endif

#if defined(__AVX512F__)
#define DC_MASKED 1
/* Lanes i of a 16-float load at column s whose column s + i lies in [0, n). */
static inline __mmask16 dc_cols_mask(int64_t s, int64_t n) {
    int64_t lo = s < 0 ? -s : 0, hi = n - s;
    if (hi > DC_VW) hi = DC_VW;
    if (lo >= hi) return 0;
    return (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
}
#else
#define DC_MASKED 0
#endif

/* Sum of the 16 lanes of *v. */
static inline float v16_sum(const v16 *v) {
#if defined(__AVX512F__)
    return _mm512_reduce_add_ps((__m512)*v);
#else
    float s = 0.0f;
    for (int i = 0; i < DC_VW; i++) s += (*v)[i];
    return s;
#endif
}

/* buf[p*L + m] = row[col0 + p + m*sw] for phases p in [0, sw) and m in [0, L), 0 outside [0, IW).
 * Tap offset `off` (= kw*dil) for output column j of the tile then reads buf[(off % sw)*L + off/sw + j]. */
static inline void dc_fill(float *buf, const float *row, int64_t IW, int64_t col0, int64_t sw, int64_t L) {
    if (sw == 1) {
        int64_t lo = col0 < 0 ? -col0 : 0, hi = IW - col0;
        if (lo > L) lo = L;
        if (hi > L) hi = L;
        if (hi < lo) hi = lo;
        for (int64_t m = 0; m < lo; m++) buf[m] = 0.0f;
        if (hi > lo) memcpy(buf + lo, row + col0 + lo, (size_t)(hi - lo) * sizeof(float));
        for (int64_t m = hi; m < L; m++) buf[m] = 0.0f;
        return;
    }
    for (int64_t p = 0; p < sw; p++) {
        float *b = buf + p * L;
        const int64_t c0 = col0 + p; /* column of b[0]; b[m] is column c0 + m*sw */
        int64_t lo = c0 >= 0 ? 0 : (-c0 + sw - 1) / sw, hi = IW - 1 - c0 < 0 ? 0 : (IW - 1 - c0) / sw + 1;
        if (lo > L) lo = L;
        if (hi > L) hi = L;
        if (hi < lo) hi = lo;
        for (int64_t m = 0; m < lo; m++) b[m] = 0.0f;
        const float *src = row + c0;
        for (int64_t m = lo; m < hi; m++) b[m] = src[m * sw];
        for (int64_t m = hi; m < L; m++) b[m] = 0.0f;
    }
}

/* A direct convolution of one (image, group) pair, in the form both forward and stride-1
 * backward-data take:
 *   out(o, oh, ow) = bias(o) + sum_{c, kh, kw} w(o, c, kh, kw) * in(c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw)
 * with in() = 0 outside [0, IH) x [0, IW) (pads may be negative: cropping). Pair ig = n*G + g
 * starts at in + ig*in_igs and out + ig*out_igs; its filter at wt + g*w_gs, its bias at
 * bias + g*cout. */
typedef struct dconv {
    const float *in;
    int64_t cin, IH, IW, in_igs; /* input channel c of a pair at + c*IH*IW */
    float *out;
    int64_t cout, OH, OW, out_igs; /* output channel o of a pair at + o*OH*OW */
    int64_t KH, KW, sh, sw, ph, pw, dh, dw;
    const float *wt; /* w(o, c, kh, kw) = wt[o*w_os + c*w_cs + kh*w_khs + kw*w_kws]; strides may be < 0 */
    int64_t w_os, w_cs, w_khs, w_kws, w_gs;
    const float *bias; /* NULL: start from 0 */
    int64_t npairs, G;
} dconv;

static int64_t dc_phase_len(const dconv *k, int64_t cols) { return cols + ((k->KW - 1) * k->dw) / k->sw + 1; }

static int dc_fits(const dconv *k) { return k->KW <= DC_MAX_KW && k->sw * dc_phase_len(k, 2 * DC_VW) <= DC_BUF; }

/* One tile: output channels [o0, o0+OCB) x output row oh x columns [ow0, ow0 + NV*16). */
DC_ALWAYS_INLINE void dc_tile(const dconv *k, const float *in, float *out, const float *wt, const float *bias,
                              int64_t o0, const int OCB, const int NV, int64_t oh, int64_t ow0, float *buf) {
    v16 acc[8][2];
#pragma GCC unroll 8
    for (int o = 0; o < OCB; o++) {
        v16 b = V16_SPLAT(bias ? bias[o0 + o] : 0.0f);
        acc[o][0] = b;
        acc[o][1] = b;
    }
    const int64_t col0 = ow0 * k->sw - k->pw, plane = k->IH * k->IW;
#if DC_MASKED
    if (k->sw == 1) {
        /* stride 1: tap kw reads the input row at columns col0 + kw*dw + [0, 32) directly, lanes
         * outside the row masked to zero (masked-off lanes are never accessed) */
        int64_t xs[DC_MAX_KW];
        __mmask16 m0[DC_MAX_KW], m1[DC_MAX_KW];
        for (int64_t kw = 0; kw < k->KW; kw++) {
            xs[kw] = col0 + kw * k->dw;
            m0[kw] = dc_cols_mask(xs[kw], k->IW);
            m1[kw] = dc_cols_mask(xs[kw] + DC_VW, k->IW);
        }
        for (int64_t c = 0; c < k->cin; c++) {
            for (int64_t kh = 0; kh < k->KH; kh++) {
                const int64_t ih = oh * k->sh - k->ph + kh * k->dh;
                if (ih < 0 || ih >= k->IH) continue;
                const float *row = in + c * plane + ih * k->IW;
                const float *wrow = wt + o0 * k->w_os + c * k->w_cs + kh * k->w_khs;
                for (int64_t kw = 0; kw < k->KW; kw++) {
                    const v16 x0 = (v16)_mm512_maskz_loadu_ps(m0[kw], row + xs[kw]);
                    const v16 x1 = NV > 1 ? (v16)_mm512_maskz_loadu_ps(m1[kw], row + xs[kw] + DC_VW) : x0;
                    const float *wp = wrow + kw * k->w_kws;
#pragma GCC unroll 8
                    for (int o = 0; o < OCB; o++) {
                        const v16 wv = V16_SPLAT(wp[o * k->w_os]);
                        acc[o][0] = V16_FMA(wv, x0, acc[o][0]);
                        if (NV > 1) acc[o][1] = V16_FMA(wv, x1, acc[o][1]);
                    }
                }
            }
        }
    } else
#endif
    {
        const int64_t L = dc_phase_len(k, DC_VW * NV);
        int64_t xo[DC_MAX_KW]; /* tap kw reads buf + xo[kw] */
        for (int64_t kw = 0; kw < k->KW; kw++) xo[kw] = (kw * k->dw % k->sw) * L + kw * k->dw / k->sw;
        for (int64_t c = 0; c < k->cin; c++) {
            for (int64_t kh = 0; kh < k->KH; kh++) {
                const int64_t ih = oh * k->sh - k->ph + kh * k->dh;
                if (ih < 0 || ih >= k->IH) continue;
                dc_fill(buf, in + c * plane + ih * k->IW, k->IW, col0, k->sw, L);
                const float *wrow = wt + o0 * k->w_os + c * k->w_cs + kh * k->w_khs;
                for (int64_t kw = 0; kw < k->KW; kw++) {
                    const float *xp = buf + xo[kw];
                    const v16 x0 = V16_LOAD(xp);
                    const v16 x1 = NV > 1 ? V16_LOAD(xp + DC_VW) : x0;
                    const float *wp = wrow + kw * k->w_kws;
#pragma GCC unroll 8
                    for (int o = 0; o < OCB; o++) {
                        const v16 wv = V16_SPLAT(wp[o * k->w_os]);
                        acc[o][0] = V16_FMA(wv, x0, acc[o][0]);
                        if (NV > 1) acc[o][1] = V16_FMA(wv, x1, acc[o][1]);
                    }
                }
            }
        }
    }
    const int64_t ncols = k->OW - ow0 < DC_VW * NV ? k->OW - ow0 : DC_VW * NV;
#pragma GCC unroll 8
    for (int o = 0; o < OCB; o++) {
        float *dst = out + (o0 + o) * k->OH * k->OW + oh * k->OW + ow0;
#if DC_MASKED
        _mm512_mask_storeu_ps(dst, dc_cols_mask(0, ncols), (__m512)acc[o][0]);
        if (NV > 1) _mm512_mask_storeu_ps(dst + DC_VW, dc_cols_mask(DC_VW, ncols), (__m512)acc[o][1]);
#else
        float tmp[2 * DC_VW];
        memcpy(tmp, &acc[o][0], sizeof(v16));
        if (NV > 1) memcpy(tmp + DC_VW, &acc[o][1], sizeof(v16));
        memcpy(dst, tmp, (size_t)ncols * sizeof(float));
#endif
    }
}

/* Output channels [o0, o0 + nb) of one tile, in sub-blocks of 8, 4 and 1. */
DC_ALWAYS_INLINE void dc_block(const dconv *k, const float *in, float *out, const float *wt, const float *bias,
                               int64_t o0, int64_t nb, const int NV, int64_t oh, int64_t ow0, float *buf) {
    int64_t o = o0;
    for (; o + 8 <= o0 + nb; o += 8) dc_tile(k, in, out, wt, bias, o, 8, NV, oh, ow0, buf);
    for (; o + 4 <= o0 + nb; o += 4) dc_tile(k, in, out, wt, bias, o, 4, NV, oh, ow0, buf);
    for (; o < o0 + nb; o++) dc_tile(k, in, out, wt, bias, o, 1, NV, oh, ow0, buf);
}

static void dc_run(const dconv *k) {
    const int NV2 = k->OW > DC_VW; /* 32-column tiles unless the row is at most 16 wide */
    const int64_t tw = NV2 ? 2 * DC_VW : DC_VW;
    const int64_t ntile = (k->OW + tw - 1) / tw, nob = (k->cout + 7) / 8;
    const int64_t units = k->npairs * nob * k->OH * ntile;
#pragma omp parallel for schedule(static)
    for (int64_t u = 0; u < units; u++) {
        float buf[DC_BUF];
        int64_t r = u;
        const int64_t t = r % ntile;
        r /= ntile;
        const int64_t oh = r % k->OH;
        r /= k->OH;
        const int64_t ob = r % nob;
        const int64_t ig = r / nob, g = ig % k->G;
        const float *in = k->in + ig * k->in_igs;
        float *out = k->out + ig * k->out_igs;
        const float *wt = k->wt + g * k->w_gs;
        const float *bias = k->bias ? k->bias + g * k->cout : NULL;
        const int64_t o0 = ob * 8, nb = k->cout - o0 < 8 ? k->cout - o0 : 8;
        if (NV2)
            dc_block(k, in, out, wt, bias, o0, nb, 2, oh, t * tw, buf);
        else
            dc_block(k, in, out, wt, bias, o0, nb, 1, oh, t * tw, buf);
    }
}

static void implicit_forward(float *out, const float *inp, const float *weight, const float *bias,
                             const fg_conv2d_desc *d) {
    const int64_t G = d->groups, Cg = d->c / G, OCg = d->oc / G, OH = fg_conv2d_out_h(d), OW = fg_conv2d_out_w(d);
    const dconv k = {.in = inp, .cin = Cg, .IH = d->h, .IW = d->w, .in_igs = Cg * d->h * d->w,
                     .out = out, .cout = OCg, .OH = OH, .OW = OW, .out_igs = OCg * OH * OW,
                     .KH = d->kh, .KW = d->kw, .sh = d->stride_h, .sw = d->stride_w, .ph = d->pad_h, .pw = d->pad_w,
                     .dh = d->dil_h, .dw = d->dil_w,
                     .wt = weight, .w_os = Cg * d->kh * d->kw, .w_cs = d->kh * d->kw, .w_khs = d->kw, .w_kws = 1,
                     .w_gs = OCg * Cg * d->kh * d->kw, .bias = bias, .npairs = d->n * G, .G = G};
    dconv kf = k;
    if (is_pointwise(d)) { /* 1x1, stride 1, no padding: the plane is one long row */
        kf.IH = kf.OH = 1;
        kf.IW = kf.OW = d->h * d->w;
    }
    if (dc_fits(&kf))
        dc_run(&kf);
    else
        implicit_forward_generic(out, inp, weight, bias, d);
}

#if DC_MASKED
/* Strided backward data (AVX-512). With iw = rw + sw*m (rw = iw mod sw), the taps reaching iw are
 * the kw with (rw + pw - kw*dw) divisible by sw, each reading dout column m + e(kw),
 * e(kw) = (rw + pw - kw*dw) / sw: a stride-1 correlation over contiguous dout columns per
 * residue rw. Likewise input row ih is reached by the kh with (ih + ph - kh*dh) divisible by sh,
 * from dout row (ih + ph - kh*dh) / sh. One tile: input channels [c0, c0+CB) of input row ih,
 * residue rw, m in [m0, m0 + 32); stored with stride sw. */
DC_ALWAYS_INLINE void tr_tile(float *dinp, const float *dout, const float *wt, const fg_conv2d_desc *d, int64_t c0,
                              const int CB, int64_t ih, int64_t rw, int64_t m0, int64_t M, const int64_t *khs,
                              const int64_t *ohs, int nkh, const int64_t *kws, const int64_t *cols,
                              const __mmask16 *mk0, const __mmask16 *mk1, int nkw) {
    /* dinp: channel 0 of this (image, group); dout: channel 0 of this (image, group); wt: filter of
     * the group's first output channel */
    const int64_t Cg = d->c / d->groups, OCg = d->oc / d->groups, OH = fg_conv2d_out_h(d), OW = fg_conv2d_out_w(d);
    const int64_t KK = d->kh * d->kw;
    v16 acc[8][2];
#pragma GCC unroll 8
    for (int o = 0; o < CB; o++) acc[o][0] = acc[o][1] = V16_SPLAT(0.0f);
    for (int64_t oc = 0; oc < OCg; oc++) {
        const float *dplane = dout + oc * OH * OW;
        const float *wo = wt + (oc * Cg + c0) * KK;
        for (int a = 0; a < nkh; a++) {
            const float *drow = dplane + ohs[a] * OW;
            const float *wk = wo + khs[a] * d->kw;
            for (int b = 0; b < nkw; b++) {
                const v16 x0 = (v16)_mm512_maskz_loadu_ps(mk0[b], drow + cols[b]);
                const v16 x1 = (v16)_mm512_maskz_loadu_ps(mk1[b], drow + cols[b] + DC_VW);
                const float *wp = wk + kws[b];
#pragma GCC unroll 8
                for (int o = 0; o < CB; o++) {
                    const v16 wv = V16_SPLAT(wp[o * KK]);
                    acc[o][0] = V16_FMA(wv, x0, acc[o][0]);
                    acc[o][1] = V16_FMA(wv, x1, acc[o][1]);
                }
            }
        }
    }
    const int64_t n = M - m0 < 2 * DC_VW ? M - m0 : 2 * DC_VW, sw = d->stride_w;
#pragma GCC unroll 8
    for (int o = 0; o < CB; o++) {
        float tmp[2 * DC_VW];
        memcpy(tmp, &acc[o][0], sizeof(v16));
        memcpy(tmp + DC_VW, &acc[o][1], sizeof(v16));
        float *dst = dinp + ((c0 + o) * d->h + ih) * d->w + rw;
        for (int64_t j = 0; j < n; j++) dst[(m0 + j) * sw] = tmp[j];
    }
}

static void implicit_backward_data_strided(float *dinp, const float *dout, const float *weight,
                                           const fg_conv2d_desc *d) {
    const int64_t G = d->groups, Cg = d->c / G, OCg = d->oc / G, OH = fg_conv2d_out_h(d), OW = fg_conv2d_out_w(d);
    const int64_t sh = d->stride_h, sw = d->stride_w, H = d->h, W = d->w;
    const int64_t mmax = (W + sw - 1) / sw, ntile = (mmax + 2 * DC_VW - 1) / (2 * DC_VW), ncb = (Cg + 7) / 8;
    const int64_t units = d->n * G * ncb * H * sw * ntile;
#pragma omp parallel for schedule(static)
    for (int64_t u = 0; u < units; u++) {
        int64_t r = u;
        const int64_t t = r % ntile;
        r /= ntile;
        const int64_t rw = r % sw;
        r /= sw;
        const int64_t ih = r % H;
        r /= H;
        const int64_t cb = r % ncb;
        const int64_t ig = r / ncb, g = ig % G;
        const int64_t M = (W - rw + sw - 1) / sw, m0 = t * 2 * DC_VW; /* columns rw, rw + sw, ... */
        if (m0 >= M) continue;
        int64_t khs[DC_MAX_KW], ohs[DC_MAX_KW], kws[DC_MAX_KW], cols[DC_MAX_KW];
        __mmask16 mk0[DC_MAX_KW], mk1[DC_MAX_KW];
        int nkh = 0, nkw = 0;
        for (int64_t kh = 0; kh < d->kh; kh++) {
            const int64_t tt = ih + d->pad_h - kh * d->dil_h;
            if (tt < 0 || tt % sh != 0 || tt / sh >= OH) continue;
            khs[nkh] = kh;
            ohs[nkh++] = tt / sh;
        }
        for (int64_t kw = 0; kw < d->kw; kw++) {
            const int64_t tt = rw + d->pad_w - kw * d->dil_w; /* = sw * e(kw), e may be < 0 */
            if (((tt % sw) + sw) % sw != 0) continue;
            const int64_t col = m0 + tt / sw; /* dout column of lane 0 (tt is a multiple of sw) */
            kws[nkw] = kw;
            cols[nkw] = col;
            mk0[nkw] = dc_cols_mask(col, OW);
            mk1[nkw++] = dc_cols_mask(col + DC_VW, OW);
        }
        float *di = dinp + ig * Cg * H * W;
        const float *dy = dout + ig * OCg * OH * OW, *wt = weight + g * OCg * Cg * d->kh * d->kw;
        const int64_t c0 = cb * 8, nb = Cg - c0 < 8 ? Cg - c0 : 8;
        int64_t c = c0;
        for (; c + 8 <= c0 + nb; c += 8)
            tr_tile(di, dy, wt, d, c, 8, ih, rw, m0, M, khs, ohs, nkh, kws, cols, mk0, mk1, nkw);
        for (; c + 4 <= c0 + nb; c += 4)
            tr_tile(di, dy, wt, d, c, 4, ih, rw, m0, M, khs, ohs, nkh, kws, cols, mk0, mk1, nkw);
        for (; c < c0 + nb; c++)
            tr_tile(di, dy, wt, d, c, 1, ih, rw, m0, M, khs, ohs, nkh, kws, cols, mk0, mk1, nkw);
    }
}
#endif

/* Stride 1: dinp(c, ih, iw) = sum_{oc, kh, kw} w(oc, c, kh, kw) * dout(oc, ih + ph - kh*dh, iw + pw - kw*dw),
 * i.e. the forward form over dout with kernel index kh' = KH-1-kh and padding dh*(KH-1) - ph. */
static void implicit_backward_data(float *dinp, const float *dout, const float *weight, const fg_conv2d_desc *d) {
    const int64_t G = d->groups, Cg = d->c / G, OCg = d->oc / G, OH = fg_conv2d_out_h(d), OW = fg_conv2d_out_w(d);
    const int64_t KK = d->kh * d->kw;
    const dconv k = {.in = dout, .cin = OCg, .IH = OH, .IW = OW, .in_igs = OCg * OH * OW,
                     .out = dinp, .cout = Cg, .OH = d->h, .OW = d->w, .out_igs = Cg * d->h * d->w,
                     .KH = d->kh, .KW = d->kw, .sh = 1, .sw = 1,
                     .ph = d->dil_h * (d->kh - 1) - d->pad_h, .pw = d->dil_w * (d->kw - 1) - d->pad_w,
                     .dh = d->dil_h, .dw = d->dil_w,
                     .wt = weight + KK - 1, .w_os = KK, .w_cs = Cg * KK, .w_khs = -d->kw, .w_kws = -1,
                     .w_gs = OCg * Cg * KK, .bias = NULL, .npairs = d->n * G, .G = G};
    dconv kf = k;
    if (is_pointwise(d)) { /* the plane is one long row, as in forward */
        kf.IH = kf.OH = 1;
        kf.IW = kf.OW = d->h * d->w;
    }
    if (d->stride_h == 1 && d->stride_w == 1 && dc_fits(&kf))
        dc_run(&kf);
#if DC_MASKED
    else if (d->kh <= DC_MAX_KW && d->kw <= DC_MAX_KW)
        implicit_backward_data_strided(dinp, dout, weight, d);
#endif
    else
        implicit_backward_data_generic(dinp, dout, weight, d);
}

/* Context of the backward-weights kernels for one image n and one (oc block, c, kh) unit. */
typedef struct wtctx {
    const float *iplane; /* input channel c of image n, (H, W) */
    const float *dplane; /* dout channel oc0 of image n, (OH, OW); channel oc0+o at + o*OH*OW */
    const float *dend;   /* one past dout's last float: full-vector loads must stay below it */
    float *buf;          /* phase buffer of the current input row */
    int64_t L, OH, OW, nvec, tail;
    int64_t xoff[3];     /* per tap of the current chunk: offset of column 0 in buf (or in the row) */
#if DC_MASKED
    __mmask16 xm[3][WT_MAX_VEC]; /* direct mode: lanes of vector j of tap t inside the input row */
#endif
} wtctx;

/* acc[o][t] (held in memory between calls, OB x KB x 16 floats) += over output rows [r0, r1)
 * dout(oc0+o, oh, :) * x(ih(oh), : * sw + tap t). DIRECT (stride 1, AVX-512): x is read from the
 * input row with masked loads. Otherwise from the phase buffer, built here per row with fill,
 * or by the caller (a one-row call) without. */
DC_ALWAYS_INLINE void wt_rows(const wtctx *k, const fg_conv2d_desc *d, int64_t kh, const int OB, const int KB,
                              const int DIRECT, float *accm, int64_t r0, int64_t r1, int fill) {
    v16 acc[4][3];
#if !DC_MASKED
    typedef int32_t v16i __attribute__((vector_size(64)));
    v16i tmask;
    for (int i = 0; i < DC_VW; i++) tmask[i] = i < k->tail ? -1 : 0;
#endif
#pragma GCC unroll 4
    for (int o = 0; o < OB; o++)
#pragma GCC unroll 3
        for (int t = 0; t < KB; t++) acc[o][t] = V16_LOAD(accm + (o * KB + t) * DC_VW);
    const int64_t plane = k->OH * k->OW;
    for (int64_t oh = r0; oh < r1; oh++) {
        const int64_t ih = oh * d->stride_h - d->pad_h + kh * d->dil_h;
        const float *row = k->iplane + ih * d->w;
        if (!DIRECT && fill) dc_fill(k->buf, row, d->w, -d->pad_w, d->stride_w, k->L);
        for (int64_t j = 0; j < k->nvec; j++) {
            v16 dv[4];
#pragma GCC unroll 4
            for (int o = 0; o < OB; o++) {
                const float *dp = k->dplane + o * plane + oh * k->OW + j * DC_VW;
                if (j < k->nvec - 1) {
                    dv[o] = V16_LOAD(dp);
                } else {
#if DC_MASKED
                    dv[o] = (v16)_mm512_maskz_loadu_ps(dc_cols_mask(0, k->tail), dp);
#else
                    if (dp + DC_VW <= k->dend) { /* last vector of the row: lanes past its end masked */
                        dv[o] = (v16)((v16i)V16_LOAD(dp) & tmask);
                    } else { /* the very end of dout: copy what exists */
                        float tmp[DC_VW] = {0};
                        for (int64_t i = 0; i < k->tail; i++) tmp[i] = dp[i];
                        dv[o] = V16_LOAD(tmp);
                    }
#endif
                }
            }
#pragma GCC unroll 3
            for (int t = 0; t < KB; t++) {
                v16 x;
#if DC_MASKED
                if (DIRECT)
                    x = (v16)_mm512_maskz_loadu_ps(k->xm[t][j], row + k->xoff[t] + j * DC_VW);
                else
#endif
                    x = V16_LOAD(k->buf + k->xoff[t] + j * DC_VW);
#pragma GCC unroll 4
                for (int o = 0; o < OB; o++) acc[o][t] = V16_FMA(dv[o], x, acc[o][t]);
            }
        }
    }
#pragma GCC unroll 4
    for (int o = 0; o < OB; o++)
#pragma GCC unroll 3
        for (int t = 0; t < KB; t++) memcpy(accm + (o * KB + t) * DC_VW, &acc[o][t], sizeof(v16));
}

/* Sets the tap offsets (and direct-mode masks) of chunk [kw0, kw0 + kb). */
static void wt_chunk_setup(wtctx *k, const fg_conv2d_desc *d, int64_t kw0, int64_t kb, int direct) {
    const int64_t sw = d->stride_w;
    for (int64_t t = 0; t < kb; t++) {
        const int64_t off = (kw0 + t) * d->dil_w;
        if (direct) {
            k->xoff[t] = off - d->pad_w; /* column of lane 0 of vector 0 */
#if DC_MASKED
            for (int64_t j = 0; j < k->nvec; j++) k->xm[t][j] = dc_cols_mask(k->xoff[t] + j * DC_VW, d->w);
#endif
        } else {
            k->xoff[t] = (off % sw) * k->L + off / sw;
        }
    }
}

#define WT_ROWS(KB_, DIRECT_, accm_, r0_, r1_, fill_)                                                        \
    wt_rows(k, d, kh, OB, (KB_), (DIRECT_), (accm_), (r0_), (r1_), (fill_))

/* One unit over images [n0, n1): output channels [oc0, oc0+OB) (absolute, group g) x input
 * channel c (within the group) x kernel row kh, all taps. Taps go in chunks of 3 (the register
 * tile); the accumulators of every chunk live in `accm` between images, so the lanes are summed
 * into dweight once per image group. Direct mode and single-chunk kernels keep the accumulators
 * in registers over all rows of an image; with the phase buffer and several chunks, each row's
 * buffer is built once and every chunk passes over it. */
DC_ALWAYS_INLINE void wt_unit(float *dweight, wtctx *k, const fg_conv2d_desc *d, const float *dout, const float *inp,
                              int64_t n0, int64_t n1, int64_t g, int64_t oc0, const int OB, int64_t c, int64_t kh,
                              int64_t blo, int64_t bhi) {
    const int64_t Cg = d->c / d->groups, KW = d->kw, sw = d->stride_w;
    const int64_t nchunk = (KW + 2) / 3;
    const int direct = DC_MASKED && sw == 1;
    float accm[WT_MAX_CHUNKS][4 * 3 * DC_VW];
    memset(accm, 0, (size_t)nchunk * sizeof accm[0]);
    if (nchunk == 1) wt_chunk_setup(k, d, 0, KW, direct);
    for (int64_t n = n0; n < n1; n++) {
        k->iplane = inp + (n * d->c + g * Cg + c) * d->h * d->w;
        k->dplane = dout + (n * d->oc + oc0) * k->OH * k->OW;
        if (direct || nchunk == 1) {
            for (int64_t ch = 0; ch < nchunk; ch++) {
                const int64_t kw0 = ch * 3, kb = KW - kw0 < 3 ? KW - kw0 : 3;
                if (nchunk > 1) wt_chunk_setup(k, d, kw0, kb, direct);
                if (direct) {
                    if (kb == 3) WT_ROWS(3, 1, accm[ch], blo, bhi, 0);
                    if (kb == 2) WT_ROWS(2, 1, accm[ch], blo, bhi, 0);
                    if (kb == 1) WT_ROWS(1, 1, accm[ch], blo, bhi, 0);
                } else {
                    if (kb == 3) WT_ROWS(3, 0, accm[ch], blo, bhi, 1);
                    if (kb == 2) WT_ROWS(2, 0, accm[ch], blo, bhi, 1);
                    if (kb == 1) WT_ROWS(1, 0, accm[ch], blo, bhi, 1);
                }
            }
        } else {
            for (int64_t oh = blo; oh < bhi; oh++) {
                const int64_t ih = oh * d->stride_h - d->pad_h + kh * d->dil_h;
                dc_fill(k->buf, k->iplane + ih * d->w, d->w, -d->pad_w, sw, k->L);
                for (int64_t ch = 0; ch < nchunk; ch++) {
                    const int64_t kw0 = ch * 3, kb = KW - kw0 < 3 ? KW - kw0 : 3;
                    wt_chunk_setup(k, d, kw0, kb, 0);
                    if (kb == 3) WT_ROWS(3, 0, accm[ch], oh, oh + 1, 0);
                    if (kb == 2) WT_ROWS(2, 0, accm[ch], oh, oh + 1, 0);
                    if (kb == 1) WT_ROWS(1, 0, accm[ch], oh, oh + 1, 0);
                }
            }
        }
    }
    for (int64_t ch = 0; ch < nchunk; ch++) {
        const int64_t kw0 = ch * 3, kb = KW - kw0 < 3 ? KW - kw0 : 3;
        for (int o = 0; o < OB; o++)
            for (int64_t t = 0; t < kb; t++) {
                v16 a;
                memcpy(&a, accm[ch] + (o * kb + t) * DC_VW, sizeof a);
                dweight[(((oc0 + o) * Cg + c) * d->kh + kh) * KW + kw0 + t] += v16_sum(&a);
            }
    }
}
#undef WT_ROWS

static void implicit_backward_weights(float *dweight, const float *dout, const float *inp, const fg_conv2d_desc *d) {
    const int64_t G = d->groups, Cg = d->c / G, OCg = d->oc / G, OH = fg_conv2d_out_h(d), OW = fg_conv2d_out_w(d);
    const int64_t sw = d->stride_w;
    const int64_t L = (OW + DC_VW - 1) / DC_VW * DC_VW + ((d->kw - 1) * d->dil_w) / sw + 1;
    if (sw * L > DC_BUF || (d->kw + 2) / 3 > WT_MAX_CHUNKS || (OW + DC_VW - 1) / DC_VW > WT_MAX_VEC) {
        implicit_backward_weights_generic(dweight, dout, inp, d);
        return;
    }
    const int64_t nob = (OCg + 3) / 4, units = G * nob * Cg * d->kh;
    /* Images in groups whose planes a unit touches (4 dout planes, 1 input plane per image) fit
     * in about 256 KiB, so they stay in cache while every unit passes over them; the barrier
     * between groups keeps the += of one unit on one thread at a time. */
    const int64_t per_img = (4 * OH * OW + d->h * d->w) * (int64_t)sizeof(float);
    int64_t ng = (256 * 1024) / per_img;
    if (ng < 1) ng = 1;
    if (ng > d->n) ng = d->n;
    const float *dend = dout + d->n * d->oc * OH * OW;
#pragma omp parallel
    for (int64_t n0 = 0; n0 < d->n; n0 += ng) {
        const int64_t n1 = n0 + ng < d->n ? n0 + ng : d->n;
#pragma omp for schedule(static)
        for (int64_t u = 0; u < units; u++) {
            float buf[DC_BUF];
            int64_t r = u;
            const int64_t kh = r % d->kh;
            r /= d->kh;
            const int64_t c = r % Cg;
            r /= Cg;
            const int64_t ob = r % nob, g = r / nob;
            int64_t blo, bhi;
            tap_range(kh * d->dil_h - d->pad_h, d->stride_h, d->h, OH, &blo, &bhi);
            if (blo >= bhi) continue;
            const int64_t oc0 = g * OCg + ob * 4, nb = OCg - ob * 4 < 4 ? OCg - ob * 4 : 4;
            wtctx k = {.dend = dend, .buf = buf, .L = L, .OH = OH, .OW = OW, .nvec = (OW + DC_VW - 1) / DC_VW,
                       .tail = OW - (OW - 1) / DC_VW * DC_VW};
            if (nb == 4)
                wt_unit(dweight, &k, d, dout, inp, n0, n1, g, oc0, 4, c, kh, blo, bhi);
            else
                for (int64_t o = 0; o < nb; o++) wt_unit(dweight, &k, d, dout, inp, n0, n1, g, oc0 + o, 1, c, kh, blo, bhi);
        }
    }
}

/* dbias (OC) += sum over n, oh, ow of dout (N, OC, P). */
static void bias_backward(float *dbias, const float *dout, int64_t N, int64_t OC, int64_t P) {
#pragma omp parallel for schedule(static)
    for (int64_t oc = 0; oc < OC; oc++) {
        double sum = 0.0;
        for (int64_t n = 0; n < N; n++) {
            const float *p = dout + (size_t)(n * OC + oc) * (size_t)P;
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int64_t i = 0; i < P; i++) s += p[i];
            sum += s;
        }
        dbias[oc] += (float)sum;
    }
}

/* ================================================================ GEMM: im2col + sgemm */

static size_t gemm_ws_bytes(const fg_conv2d_desc *d) {
    if (is_pointwise(d)) return 0;
    return (size_t)(d->c / d->groups) * (size_t)(d->kh * d->kw) * (size_t)fg_conv2d_out_h(d) *
           (size_t)fg_conv2d_out_w(d) * sizeof(float);
}

/* col (Cg*KH*KW, OH*OW): row r = (c, kh, kw) holds img[c][oh*sh - ph + kh*dh][ow*sw - pw + kw*dw]
 * (0 outside). img is the group's Cg channels of one image, (Cg, H, W). */
static void im2col(float *col, const float *img, const fg_conv2d_desc *d, int64_t Cg, int64_t OH, int64_t OW) {
    const int64_t H = d->h, W = d->w, KH = d->kh, KW = d->kw, R = Cg * KH * KW;
    /* small images (depthwise groups) are not worth a fork/join */
#pragma omp parallel for schedule(static) if (R * OH * OW >= 32768)
    for (int64_t r = 0; r < R; r++) {
        const int64_t kw = r % KW, kh = (r / KW) % KH, c = r / (KH * KW);
        const float *plane = img + (size_t)c * (size_t)(H * W);
        float *dst = col + (size_t)r * (size_t)(OH * OW);
        int64_t base = kw * d->dil_w - d->pad_w, lo, hi;
        tap_range(base, d->stride_w, W, OW, &lo, &hi);
        if (hi < lo) hi = lo;
        for (int64_t oh = 0; oh < OH; oh++) {
            float *o = dst + oh * OW;
            int64_t ih = oh * d->stride_h - d->pad_h + kh * d->dil_h;
            if (ih < 0 || ih >= H) {
                memset(o, 0, (size_t)OW * sizeof(float));
                continue;
            }
            const float *row = plane + ih * W;
            for (int64_t ow = 0; ow < lo; ow++) o[ow] = 0.0f;
            for (int64_t ow = lo; ow < hi; ow++) o[ow] = row[ow * d->stride_w + base];
            for (int64_t ow = hi; ow < OW; ow++) o[ow] = 0.0f;
        }
    }
}

/* img (Cg, H, W) += col2im(col); parallel over channels, whose rows map only into their own plane. */
static void col2im_add(float *img, const float *col, const fg_conv2d_desc *d, int64_t Cg, int64_t OH, int64_t OW) {
    const int64_t H = d->h, W = d->w, KH = d->kh, KW = d->kw;
#pragma omp parallel for schedule(static) if (Cg * KH * KW * OH * OW >= 32768)
    for (int64_t c = 0; c < Cg; c++) {
        float *plane = img + (size_t)c * (size_t)(H * W);
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++) {
                const float *src = col + (size_t)((c * KH + kh) * KW + kw) * (size_t)(OH * OW);
                int64_t base = kw * d->dil_w - d->pad_w, lo, hi;
                tap_range(base, d->stride_w, W, OW, &lo, &hi);
                for (int64_t oh = 0; oh < OH; oh++) {
                    int64_t ih = oh * d->stride_h - d->pad_h + kh * d->dil_h;
                    if (ih < 0 || ih >= H) continue;
                    float *row = plane + ih * W;
                    const float *s = src + oh * OW;
                    for (int64_t ow = lo; ow < hi; ow++) row[ow * d->stride_w + base] += s[ow];
                }
            }
    }
}

static fg_status gemm_forward(float *out, const float *inp, const float *weight, const float *bias,
                              const fg_conv2d_desc *d, float *col) {
    const int64_t G = d->groups, Cg = d->c / G, OCg = d->oc / G;
    const int64_t OH = fg_conv2d_out_h(d), OW = fg_conv2d_out_w(d), P = OH * OW, K = Cg * d->kh * d->kw;
    const int trivial = is_pointwise(d);
    for (int64_t n = 0; n < d->n; n++)
        for (int64_t g = 0; g < G; g++) {
            const float *img = inp + (size_t)(n * d->c + g * Cg) * (size_t)(d->h * d->w);
            const float *B = img;
            if (!trivial) {
                im2col(col, img, d, Cg, OH, OW);
                B = col;
            }
            float *y = out + (size_t)(n * d->oc + g * OCg) * (size_t)P;
            /* y (OCg, P) = W_g (OCg, K) @ col (K, P) */
            FG_TRY(fg_sgemm('N', 'N', OCg, P, K, 1.0f, weight + (size_t)(g * OCg) * (size_t)K, K, B, P, 0.0f, y, P));
        }
    if (bias) {
        const int64_t NOC = d->n * d->oc;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < NOC; i++) {
            float b = bias[i % d->oc], *y = out + (size_t)i * (size_t)P;
            for (int64_t p = 0; p < P; p++) y[p] += b;
        }
    }
    return FG_OK;
}

static fg_status gemm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                               const float *weight, const fg_conv2d_desc *d, float *col) {
    const int64_t G = d->groups, Cg = d->c / G, OCg = d->oc / G;
    const int64_t OH = fg_conv2d_out_h(d), OW = fg_conv2d_out_w(d), P = OH * OW, K = Cg * d->kh * d->kw;
    const int trivial = is_pointwise(d);
    for (int64_t n = 0; n < d->n; n++)
        for (int64_t g = 0; g < G; g++) {
            const size_t img_off = (size_t)(n * d->c + g * Cg) * (size_t)(d->h * d->w);
            const float *dy = dout + (size_t)(n * d->oc + g * OCg) * (size_t)P;
            const float *Wg = weight + (size_t)(g * OCg) * (size_t)K;
            if (dweight) {
                const float *B = inp + img_off;
                if (!trivial) {
                    im2col(col, inp + img_off, d, Cg, OH, OW);
                    B = col;
                }
                /* dW_g (OCg, K) += dy (OCg, P) @ col^T (P, K) */
                float *dWg = dweight + (size_t)(g * OCg) * (size_t)K;
                FG_TRY(fg_sgemm('N', 'T', OCg, K, P, 1.0f, dy, P, B, P, 1.0f, dWg, K));
            }
            if (dinp) {
                /* dcol (K, P) = W_g^T (K, OCg) @ dy (OCg, P), then scattered back into the image */
                if (trivial) {
                    FG_TRY(fg_sgemm('T', 'N', K, P, OCg, 1.0f, Wg, K, dy, P, 0.0f, dinp + img_off, P));
                } else {
                    FG_TRY(fg_sgemm('T', 'N', K, P, OCg, 1.0f, Wg, K, dy, P, 0.0f, col, P));
                    memset(dinp + img_off, 0, (size_t)(Cg * d->h * d->w) * sizeof(float));
                    col2im_add(dinp + img_off, col, d, Cg, OH, OW);
                }
            }
        }
    if (dbias) bias_backward(dbias, dout, d->n, d->oc, P);
    return FG_OK;
}

/* ================================================================ DNNL: oneDNN primitives */

/* Workspace pieces start at multiples of 64 bytes from the workspace base (cache lines; the
 * base itself is the caller's). */
static size_t ws_align(size_t b) { return (b + 63) & ~(size_t)63; }

static pthread_once_t dn_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t dn_engine;
static pthread_key_t dn_stream_key;
static dnnl_status_t dn_init_status = dnnl_success;

static void dn_stream_free(void *s) { dnnl_stream_destroy(s); }

static void dn_init(void) {
    dn_init_status = dnnl_engine_create(&dn_engine, dnnl_cpu, 0);
    if (dn_init_status == dnnl_success && pthread_key_create(&dn_stream_key, dn_stream_free) != 0)
        dn_init_status = dnnl_out_of_memory;
}

/* The calling thread's stream. Several threads may run convolutions at once (forwards of one
 * model on predictor threads while a trainer runs its own): oneDNN primitives with a user-managed
 * scratchpad may execute concurrently, a stream is one thread's execution context, so every
 * thread gets its own, created on first use and destroyed when the thread exits. */
static dnnl_stream_t dn_thread_stream(dnnl_status_t *st) {
    dnnl_stream_t s = pthread_getspecific(dn_stream_key);
    if (s) return s;
    *st = dnnl_stream_create(&s, dn_engine, dnnl_stream_default_flags);
    if (*st != dnnl_success) return NULL;
    if (pthread_setspecific(dn_stream_key, s) != 0) {
        dnnl_stream_destroy(s);
        *st = dnnl_out_of_memory;
        return NULL;
    }
    return s;
}

static fg_status dn_fail(dnnl_status_t st, const char *what, const fg_conv2d_desc *d) {
    return fg_fail(FG_ERR_BACKEND,
                   "conv2d (dnnl): %s failed with status %d (%s) for input (%lld, %lld, %lld, %lld), OC %lld, "
                   "kernel %lldx%lld, stride %lldx%lld, pad %lldx%lld, dilation %lldx%lld, groups %lld",
                   what, (int)st, dnnl_status2str(st), (long long)d->n, (long long)d->c, (long long)d->h,
                   (long long)d->w, (long long)d->oc, (long long)d->kh, (long long)d->kw, (long long)d->stride_h,
                   (long long)d->stride_w, (long long)d->pad_h, (long long)d->pad_w, (long long)d->dil_h,
                   (long long)d->dil_w, (long long)d->groups);
}

#define DN_TRY(call, what)                                                                                     \
    do {                                                                                                       \
        dnnl_status_t dn_st_ = (call);                                                                         \
        if (dn_st_ != dnnl_success) return dn_fail(dn_st_, (what), d);                                       \
    } while (0)

/* One tensor argument of a convolution primitive: the plain layout the caller passes (`user`),
 * the layout the primitive chose (`prim`) and, when they differ (or when the result must be
 * added into the caller's tensor), a workspace buffer in `prim` layout plus a reorder. */
typedef struct dn_arg {
    int arg;                 /* DNNL_ARG_SRC, DNNL_ARG_DIFF_WEIGHTS, ... */
    int out;                 /* 1: the primitive writes it (reorder prim -> user after the run) */
    int sum;                 /* 1: the reorder adds into the user's tensor (dweight +=) */
    int buffered;            /* 1: the primitive reads/writes a workspace buffer */
    dnnl_memory_desc_t user; /* caller's layout */
    dnnl_memory_desc_t prim; /* primitive's layout */
    size_t off;              /* buffer offset in the workspace, bytes */
    dnnl_primitive_desc_t rpd; /* reorder user -> prim (in) or prim -> user (out), when buffered */
    dnnl_primitive_t rp;       /* created lazily */
    dnnl_memory_desc_t rscratch; /* the reorder's scratchpad (usually empty) */
    size_t rscratch_bytes;
} dn_arg;

#define DN_MAX_ARGS 4

/* One pass (forward, backward data or backward weights). Workspace layout of the pass:
 * [buffers of args in order][extra: bias/diff_bias floats][scratchpad shared by the primitive and
 * its reorders]. */
typedef struct dn_pass {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim; /* created lazily */
    dn_arg a[DN_MAX_ARGS];
    int na;
    size_t extra_off;      /* OC floats: zero bias (forward) or diff_bias (backward weights) */
    dnnl_memory_desc_t scratch;
    size_t scratch_off, scratch_bytes;
    size_t total; /* workspace bytes this pass needs */
} dn_pass;

typedef struct dn_entry {
    fg_conv2d_desc d;
    int nthr;
    int refs;          /* calls using the entry now; guarded by the cache mutex */
    uint64_t last_use; /* LRU clock; guarded by the cache mutex */
    pthread_mutex_t mu; /* guards lazy primitive creation */
    dn_pass fwd, bwd_data, bwd_w;
    size_t ws; /* max over the three passes */
} dn_entry;

#define DN_CACHE_CAP 64

static struct {
    pthread_mutex_t mu;
    dn_entry **e;
    int n, cap;
    uint64_t clock;
} dn_cache = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, 0};

static void dn_pass_destroy(dn_pass *p) {
    for (int i = 0; i < p->na; i++) {
        if (p->a[i].rp) dnnl_primitive_destroy(p->a[i].rp);
        if (p->a[i].rpd) dnnl_primitive_desc_destroy(p->a[i].rpd);
    }
    if (p->prim) dnnl_primitive_destroy(p->prim);
    if (p->pd) dnnl_primitive_desc_destroy(p->pd);
    memset(p, 0, sizeof *p);
}

static void dn_entry_destroy(dn_entry *e) {
    if (!e) return;
    dn_pass_destroy(&e->fwd);
    dn_pass_destroy(&e->bwd_data);
    dn_pass_destroy(&e->bwd_w);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

/* Plain memory descriptors of the caller's tensors. */
static dnnl_status_t dn_plain_md(dnnl_memory_desc_t *md, int ndims, const int64_t *dims, dnnl_format_tag_t tag) {
    dnnl_dims_t dd;
    for (int i = 0; i < ndims; i++) dd[i] = dims[i];
    return dnnl_memory_desc_init_by_tag(md, ndims, dd, dnnl_f32, tag);
}

/* Adds argument `arg` to the pass: queries the primitive's layout, decides whether a buffer is
 * needed, creates the reorder's descriptor, and reserves the buffer at *off. */
static fg_status dn_pass_add_arg(dn_pass *p, int arg, dnnl_query_t q, const dnnl_memory_desc_t *user, int out, int sum,
                                 size_t *off, const fg_conv2d_desc *d) {
    FG_ASSERT(p->na < DN_MAX_ARGS);
    dn_arg *a = &p->a[p->na++];
    a->arg = arg;
    a->out = out;
    a->sum = sum;
    a->user = *user;
    const dnnl_memory_desc_t *pm = dnnl_primitive_desc_query_md(p->pd, q, 0);
    if (!pm) return fg_fail(FG_ERR_BACKEND, "conv2d (dnnl): primitive descriptor has no memory for argument %d", arg);
    a->prim = *pm;
    a->buffered = sum || !dnnl_memory_desc_equal(&a->prim, &a->user);
    if (!a->buffered) return FG_OK;
    a->off = *off;
    *off += ws_align(dnnl_memory_desc_get_size(&a->prim));

    dnnl_primitive_attr_t attr;
    DN_TRY(dnnl_primitive_attr_create(&attr), "attr create");
    dnnl_status_t st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success && sum) {
        dnnl_post_ops_t po;
        st = dnnl_post_ops_create(&po);
        if (st == dnnl_success) {
            st = dnnl_post_ops_append_sum(po, 1.0f);
            if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(attr, po);
            dnnl_post_ops_destroy(po);
        }
    }
    if (st == dnnl_success) {
        if (out)
            st = dnnl_reorder_primitive_desc_create(&a->rpd, &a->prim, dn_engine, &a->user, dn_engine, attr);
        else
            st = dnnl_reorder_primitive_desc_create(&a->rpd, &a->user, dn_engine, &a->prim, dn_engine, attr);
    }
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) return dn_fail(st, "reorder descriptor", d);
    const dnnl_memory_desc_t *sm = dnnl_primitive_desc_query_md(a->rpd, dnnl_query_scratchpad_md, 0);
    a->rscratch_bytes = sm ? dnnl_memory_desc_get_size(sm) : 0;
    if (sm) a->rscratch = *sm;
    return FG_OK;
}

/* Lays out the extra floats and the scratchpad after the argument buffers that end at `off`. */
static void dn_pass_finish(dn_pass *p, size_t off, size_t extra_bytes) {
    p->extra_off = off;
    off += ws_align(extra_bytes);
    const dnnl_memory_desc_t *sm = dnnl_primitive_desc_query_md(p->pd, dnnl_query_scratchpad_md, 0);
    p->scratch_bytes = sm ? dnnl_memory_desc_get_size(sm) : 0;
    if (sm) p->scratch = *sm;
    size_t s = p->scratch_bytes;
    for (int i = 0; i < p->na; i++)
        if (p->a[i].buffered && p->a[i].rscratch_bytes > s) s = p->a[i].rscratch_bytes;
    p->scratch_off = off;
    p->total = off + s;
}

/* Creates the three primitive descriptors of descriptor d and sizes their workspaces (no
 * primitives yet: those are created on first use of each pass). */
static fg_status dn_entry_create(dn_entry **out, const fg_conv2d_desc *d, int nthr) {
    *out = NULL;
    dn_entry *e = calloc(1, sizeof *e);
    if (!e) return fg_fail(FG_ERR_OOM, "conv2d (dnnl): out of host memory for a primitive cache entry");
    e->d = *d;
    e->nthr = nthr;
    pthread_mutex_init(&e->mu, NULL);

    const int64_t G = d->groups, Cg = d->c / G, OCg = d->oc / G;
    const int64_t OH = fg_conv2d_out_h(d), OW = fg_conv2d_out_w(d);
    const int64_t src_dims[4] = {d->n, d->c, d->h, d->w}, dst_dims[4] = {d->n, d->oc, OH, OW};
    const int64_t w4[4] = {d->oc, Cg, d->kh, d->kw}, w5[5] = {G, OCg, Cg, d->kh, d->kw}, b_dims[1] = {d->oc};
    dnnl_memory_desc_t src_u, dst_u, wei_u, bias_u, src_any, dst_any, wei_any;
    dnnl_status_t st = dn_plain_md(&src_u, 4, src_dims, dnnl_nchw);
    if (st == dnnl_success) st = dn_plain_md(&dst_u, 4, dst_dims, dnnl_nchw);
    if (st == dnnl_success) st = G > 1 ? dn_plain_md(&wei_u, 5, w5, dnnl_goihw) : dn_plain_md(&wei_u, 4, w4, dnnl_oihw);
    if (st == dnnl_success) st = dn_plain_md(&bias_u, 1, b_dims, dnnl_a);
    if (st == dnnl_success) st = dn_plain_md(&src_any, 4, src_dims, dnnl_format_tag_any);
    if (st == dnnl_success) st = dn_plain_md(&dst_any, 4, dst_dims, dnnl_format_tag_any);
    if (st == dnnl_success)
        st = G > 1 ? dn_plain_md(&wei_any, 5, w5, dnnl_format_tag_any)
                   : dn_plain_md(&wei_any, 4, w4, dnnl_format_tag_any);
    fg_status fs = FG_OK;
    if (st != dnnl_success) {
        fs = dn_fail(st, "memory descriptor", d);
        goto fail;
    }

    /* oneDNN dilation counts the skipped positions (0 = dense); right padding equal to the left
     * makes oneDNN's floor((H + 2p - extent) / s) + 1 agree with PyTorch's output size. */
    dnnl_dims_t strides = {d->stride_h, d->stride_w}, dil = {d->dil_h - 1, d->dil_w - 1};
    dnnl_dims_t pad = {d->pad_h, d->pad_w};
    dnnl_convolution_desc_t cf, cbd, cbw;
    dnnl_primitive_attr_t attr = NULL;
    st = dnnl_dilated_convolution_forward_desc_init(&cf, dnnl_forward_training, dnnl_convolution_direct, &src_any,
                                                    &wei_any, &bias_u, &dst_any, strides, dil, pad, pad);
    if (st == dnnl_success)
        st = dnnl_dilated_convolution_backward_data_desc_init(&cbd, dnnl_convolution_direct, &src_any, &wei_any,
                                                              &dst_any, strides, dil, pad, pad);
    if (st == dnnl_success)
        st = dnnl_dilated_convolution_backward_weights_desc_init(&cbw, dnnl_convolution_direct, &src_any, &wei_any,
                                                                 &bias_u, &dst_any, strides, dil, pad, pad);
    if (st != dnnl_success) {
        fs = dn_fail(st, "convolution descriptor", d);
        goto fail;
    }
    st = dnnl_primitive_attr_create(&attr);
    if (st == dnnl_success) st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&e->fwd.pd, &cf, attr, dn_engine, NULL);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&e->bwd_data.pd, &cbd, attr, dn_engine, e->fwd.pd);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&e->bwd_w.pd, &cbw, attr, dn_engine, e->fwd.pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) {
        fs = dn_fail(st, "convolution primitive descriptor", d);
        goto fail;
    }

    const size_t bias_bytes = (size_t)d->oc * sizeof(float);
    size_t off = 0;
    /* forward: src, weights in; dst out; extra = a zero bias for calls without one */
    dn_pass *p = &e->fwd;
    if ((fs = dn_pass_add_arg(p, DNNL_ARG_SRC, dnnl_query_src_md, &src_u, 0, 0, &off, d)) != FG_OK) goto fail;
    if ((fs = dn_pass_add_arg(p, DNNL_ARG_WEIGHTS, dnnl_query_weights_md, &wei_u, 0, 0, &off, d)) != FG_OK) goto fail;
    if ((fs = dn_pass_add_arg(p, DNNL_ARG_DST, dnnl_query_dst_md, &dst_u, 1, 0, &off, d)) != FG_OK) goto fail;
    dn_pass_finish(p, off, bias_bytes);
    /* backward data: diff_dst first (so its buffer sits at offset 0 in both backward passes and a
     * reorder can be shared), weights in; diff_src out */
    p = &e->bwd_data;
    off = 0;
    if ((fs = dn_pass_add_arg(p, DNNL_ARG_DIFF_DST, dnnl_query_diff_dst_md, &dst_u, 0, 0, &off, d)) != FG_OK) goto fail;
    if ((fs = dn_pass_add_arg(p, DNNL_ARG_WEIGHTS, dnnl_query_weights_md, &wei_u, 0, 0, &off, d)) != FG_OK) goto fail;
    if ((fs = dn_pass_add_arg(p, DNNL_ARG_DIFF_SRC, dnnl_query_diff_src_md, &src_u, 1, 0, &off, d)) != FG_OK) goto fail;
    dn_pass_finish(p, off, 0);
    /* backward weights: diff_dst, src in; diff_weights always through a buffer, added into the
     * caller's dweight by a reorder with a sum post-op; extra = diff_bias, added by a loop */
    p = &e->bwd_w;
    off = 0;
    if ((fs = dn_pass_add_arg(p, DNNL_ARG_DIFF_DST, dnnl_query_diff_dst_md, &dst_u, 0, 0, &off, d)) != FG_OK) goto fail;
    if ((fs = dn_pass_add_arg(p, DNNL_ARG_SRC, dnnl_query_src_md, &src_u, 0, 0, &off, d)) != FG_OK) goto fail;
    if ((fs = dn_pass_add_arg(p, DNNL_ARG_DIFF_WEIGHTS, dnnl_query_diff_weights_md, &wei_u, 1, 1, &off, d)) != FG_OK)
        goto fail;
    dn_pass_finish(p, off, bias_bytes);

    e->ws = e->fwd.total;
    if (e->bwd_data.total > e->ws) e->ws = e->bwd_data.total;
    if (e->bwd_w.total > e->ws) e->ws = e->bwd_w.total;
    *out = e;
    return FG_OK;
fail:
    dn_entry_destroy(e);
    return fs;
}

static int dn_key_eq(const dn_entry *e, const fg_conv2d_desc *d, int nthr) {
    return e->nthr == nthr && memcmp(&e->d, d, sizeof *d) == 0;
}

/* Finds or creates the entry of (d, current thread count) and takes a reference on it. */
static fg_status dn_acquire(dn_entry **out, const fg_conv2d_desc *d) {
    *out = NULL;
    pthread_once(&dn_once, dn_init);
    if (dn_init_status != dnnl_success) return dn_fail(dn_init_status, "engine/stream creation", d);
    /* normalise the key: the descriptor is all int64, no padding, so memcmp is exact */
    fg_conv2d_desc key = *d;
    const int nthr = fg_threads_get();

    pthread_mutex_lock(&dn_cache.mu);
    for (int i = 0; i < dn_cache.n; i++)
        if (dn_key_eq(dn_cache.e[i], &key, nthr)) {
            dn_entry *e = dn_cache.e[i];
            e->refs++;
            e->last_use = ++dn_cache.clock;
            pthread_mutex_unlock(&dn_cache.mu);
            *out = e;
            return FG_OK;
        }
    pthread_mutex_unlock(&dn_cache.mu);

    /* create outside the lock (milliseconds), then insert unless another thread won the race */
    dn_entry *fresh;
    FG_TRY(dn_entry_create(&fresh, &key, nthr));
    pthread_mutex_lock(&dn_cache.mu);
    for (int i = 0; i < dn_cache.n; i++)
        if (dn_key_eq(dn_cache.e[i], &key, nthr)) {
            dn_entry *e = dn_cache.e[i];
            e->refs++;
            e->last_use = ++dn_cache.clock;
            pthread_mutex_unlock(&dn_cache.mu);
            dn_entry_destroy(fresh);
            *out = e;
            return FG_OK;
        }
    int slot = -1;
    if (dn_cache.n >= DN_CACHE_CAP) { /* evict the least recently used entry nobody is using */
        uint64_t best = UINT64_MAX;
        for (int i = 0; i < dn_cache.n; i++)
            if (dn_cache.e[i]->refs == 0 && dn_cache.e[i]->last_use < best) {
                best = dn_cache.e[i]->last_use;
                slot = i;
            }
        if (slot >= 0) {
            dn_entry_destroy(dn_cache.e[slot]);
            dn_cache.e[slot] = NULL;
        }
    }
    if (slot < 0) { /* room left, or every entry in use: grow */
        if (dn_cache.n == dn_cache.cap) {
            int cap = dn_cache.cap ? 2 * dn_cache.cap : DN_CACHE_CAP;
            dn_entry **ne = realloc(dn_cache.e, (size_t)cap * sizeof *ne);
            if (!ne) {
                pthread_mutex_unlock(&dn_cache.mu);
                dn_entry_destroy(fresh);
                return fg_fail(FG_ERR_OOM, "conv2d (dnnl): out of host memory growing the primitive cache");
            }
            dn_cache.e = ne;
            dn_cache.cap = cap;
        }
        slot = dn_cache.n++;
    }
    fresh->refs = 1;
    fresh->last_use = ++dn_cache.clock;
    dn_cache.e[slot] = fresh;
    pthread_mutex_unlock(&dn_cache.mu);
    *out = fresh;
    return FG_OK;
}

static void dn_release(dn_entry *e) {
    pthread_mutex_lock(&dn_cache.mu);
    FG_ASSERT(e->refs > 0);
    e->refs--;
    pthread_mutex_unlock(&dn_cache.mu);
}

/* Creates the pass's primitive and reorders on first use. */
static fg_status dn_pass_ready(dn_entry *e, dn_pass *p) {
    const fg_conv2d_desc *d = &e->d;
    pthread_mutex_lock(&e->mu);
    dnnl_status_t st = dnnl_success;
    if (!p->prim) st = dnnl_primitive_create(&p->prim, p->pd);
    for (int i = 0; i < p->na && st == dnnl_success; i++)
        if (p->a[i].buffered && !p->a[i].rp) st = dnnl_primitive_create(&p->a[i].rp, p->a[i].rpd);
    pthread_mutex_unlock(&e->mu);
    if (st != dnnl_success) return dn_fail(st, "primitive creation", d);
    return FG_OK;
}

/* Memory objects of one call, destroyed together. */
typedef struct dn_mems {
    dnnl_memory_t m[16];
    int n;
} dn_mems;

static dnnl_status_t dn_mem(dn_mems *ms, dnnl_memory_t *out, const dnnl_memory_desc_t *md, void *ptr) {
    FG_ASSERT(ms->n < 16);
    dnnl_status_t st = dnnl_memory_create(out, md, dn_engine, ptr);
    if (st == dnnl_success) ms->m[ms->n++] = *out;
    return st;
}

static void dn_mems_free(dn_mems *ms) {
    for (int i = 0; i < ms->n; i++) dnnl_memory_destroy(ms->m[i]);
    ms->n = 0;
}

static dnnl_status_t dn_reorder(const dn_pass *p, const dn_arg *a, dn_mems *ms, dnnl_memory_t from, dnnl_memory_t to,
                                char *ws) {
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}, {DNNL_ARG_SCRATCHPAD, NULL}};
    int na = 2;
    dnnl_status_t st = dnnl_success;
    dnnl_stream_t stream = dn_thread_stream(&st);
    if (!stream) return st;
    if (a->rscratch_bytes > 0) {
        st = dn_mem(ms, &args[2].memory, &a->rscratch, ws + p->scratch_off);
        if (st != dnnl_success) return st;
        na = 3;
    }
    return dnnl_primitive_execute(a->rp, stream, na, args);
}

/* Runs one pass: reorders inputs into their buffers, runs the primitive, reorders outputs back.
 * user[i] is the caller's pointer for argument i (NULL: skip an output); `extra` names the extra
 * floats' argument (DNNL_ARG_BIAS or DNNL_ARG_DIFF_BIAS, 0 for none) and extra_ptr overrides
 * them with a caller pointer (forward bias). skip_in_reorder[i] says argument i's buffer already
 * holds the data (shared diff_dst). */
static fg_status dn_run(dn_entry *e, dn_pass *p, void *const *user, const int *skip_in_reorder, int extra,
                        const float *extra_ptr, char *ws) {
    const fg_conv2d_desc *d = &e->d;
    FG_TRY(dn_pass_ready(e, p));
    dn_mems ms = {{0}, 0};
    dnnl_exec_arg_t args[DN_MAX_ARGS + 2];
    int na = 0;
    dnnl_status_t st = dnnl_success;
    const char *what = "memory creation";
    for (int i = 0; i < p->na && st == dnnl_success; i++) {
        const dn_arg *a = &p->a[i];
        dnnl_memory_t um = NULL, pm = NULL;
        if (!a->buffered) {
            st = dn_mem(&ms, &pm, &a->user, user[i]);
        } else {
            st = dn_mem(&ms, &pm, &a->prim, ws + a->off);
            if (st == dnnl_success && !a->out && !skip_in_reorder[i]) {
                what = "input reorder";
                st = dn_mem(&ms, &um, &a->user, user[i]);
                if (st == dnnl_success) st = dn_reorder(p, a, &ms, um, pm, ws);
            }
        }
        args[na].arg = a->arg;
        args[na].memory = pm;
        na++;
    }
    if (st == dnnl_success && extra) {
        what = "bias memory creation";
        const dnnl_memory_desc_t *bm = dnnl_primitive_desc_query_md(p->pd, dnnl_query_exec_arg_md, extra);
        float *eb = (float *)(ws + p->extra_off);
        if (extra == DNNL_ARG_BIAS && !extra_ptr) memset(eb, 0, (size_t)d->oc * sizeof(float));
        args[na].arg = extra;
        st = bm ? dn_mem(&ms, &args[na].memory, bm, extra_ptr ? (void *)extra_ptr : eb) : dnnl_invalid_arguments;
        na++;
    }
    if (st == dnnl_success && p->scratch_bytes > 0) {
        what = "scratchpad memory creation";
        args[na].arg = DNNL_ARG_SCRATCHPAD;
        st = dn_mem(&ms, &args[na].memory, &p->scratch, ws + p->scratch_off);
        na++;
    }
    dnnl_stream_t stream = NULL;
    if (st == dnnl_success) {
        what = "stream creation";
        stream = dn_thread_stream(&st);
    }
    if (st == dnnl_success) {
        what = "convolution execution";
        st = dnnl_primitive_execute(p->prim, stream, na, args);
    }
    for (int i = 0; i < p->na && st == dnnl_success; i++) {
        const dn_arg *a = &p->a[i];
        if (!a->out || !a->buffered || !user[i]) continue;
        what = "output reorder";
        /* args[i] is argument i's primitive-layout memory (arguments were added in order) */
        dnnl_memory_t um;
        st = dn_mem(&ms, &um, &a->user, user[i]);
        if (st == dnnl_success) st = dn_reorder(p, a, &ms, args[i].memory, um, ws);
    }
    if (st == dnnl_success) st = dnnl_stream_wait(stream);
    dn_mems_free(&ms);
    if (st != dnnl_success) return dn_fail(st, what, d);
    return FG_OK;
}

static fg_status dn_forward(float *out, const float *inp, const float *weight, const float *bias, dn_entry *e,
                              char *ws) {
    void *user[3] = {(void *)inp, (void *)weight, out};
    const int skip[3] = {0, 0, 0};
    return dn_run(e, &e->fwd, user, skip, DNNL_ARG_BIAS, bias, ws);
}

static fg_status dn_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                               const float *weight, dn_entry *e, char *ws) {
    int ddst_ready = 0;
    if (dinp) {
        void *user[3] = {(void *)dout, (void *)weight, dinp};
        const int skip[3] = {0, 0, 0};
        FG_TRY(dn_run(e, &e->bwd_data, user, skip, 0, NULL, ws));
        ddst_ready = e->bwd_data.a[0].buffered;
    }
    if (dweight || dbias) {
        /* the diff_dst buffer is at offset 0 in both passes; reuse it when the layouts agree */
        dn_pass *p = &e->bwd_w;
        int share = ddst_ready && p->a[0].buffered && dnnl_memory_desc_equal(&p->a[0].prim, &e->bwd_data.a[0].prim);
        const int skip[3] = {share, 0, 0};
        /* without a dweight, the primitive's diff_weights stays in the buffer (no user tensor) */
        void *user[3] = {(void *)dout, (void *)inp, dweight};
        FG_TRY(dn_run(e, p, user, skip, DNNL_ARG_DIFF_BIAS, NULL, ws));
        if (dbias) {
            const float *db = (const float *)(ws + p->extra_off);
            for (int64_t i = 0; i < e->d.oc; i++) dbias[i] += db[i];
        }
    }
    return FG_OK;
}

/* ================================================================ dispatch */

size_t fg_conv2d_workspace_bytes(const fg_conv2d_desc *d, fg_conv_algo algo) {
    if (!d || fg_conv2d_check(d) != FG_OK) return 0;
    switch (algo) {
    case FG_CONV_IMPLICIT: return 0;
    case FG_CONV_GEMM: return gemm_ws_bytes(d);
    case FG_CONV_DNNL: {
        dn_entry *e;
        if (dn_acquire(&e, d) != FG_OK) return 0;
        size_t b = e->ws;
        dn_release(e);
        return b;
    }
    default: return 0;
    }
}

/* Shared argument checks of forward and backward. */
static fg_status conv_check_call(const char *pass, fg_conv_algo algo, const void *ws, size_t ws_bytes,
                                 size_t need) {
    if ((int)algo < 0 || algo >= FG_CONV_ALGO_COUNT)
        return fg_fail(FG_ERR_INVALID, "conv2d %s: unknown algorithm %d", pass, (int)algo);
    if (ws_bytes < need || (need > 0 && !ws))
        return fg_fail(FG_ERR_INVALID, "conv2d %s (%s): workspace %s of %zu bytes, needs %zu", pass,
                       fg_conv_algo_name(algo), ws ? "is" : "is NULL instead", ws_bytes, need);
    return FG_OK;
}

fg_status fg_conv2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                            const fg_conv2d_desc *d, fg_conv_algo algo, void *ws, size_t ws_bytes) {
    FG_TRY(fg_conv2d_check(d));
    if (!out || !inp || !weight)
        return fg_fail(FG_ERR_INVALID, "conv2d forward: out, inp and weight must not be NULL");
    switch (algo) {
    case FG_CONV_IMPLICIT:
        FG_TRY(conv_check_call("forward", algo, ws, ws_bytes, 0));
        implicit_forward(out, inp, weight, bias, d);
        return FG_OK;
    case FG_CONV_GEMM:
        FG_TRY(conv_check_call("forward", algo, ws, ws_bytes, gemm_ws_bytes(d)));
        return gemm_forward(out, inp, weight, bias, d, (float *)ws);
    case FG_CONV_DNNL: {
        dn_entry *e;
        FG_TRY(dn_acquire(&e, d));
        fg_status s = conv_check_call("forward", algo, ws, ws_bytes, e->ws);
        if (s == FG_OK) s = dn_forward(out, inp, weight, bias, e, (char *)ws);
        dn_release(e);
        return s;
    }
    default: return conv_check_call("forward", algo, ws, ws_bytes, 0);
    }
}

fg_status fg_conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, const fg_conv2d_desc *d,
                             fg_conv_algo algo, void *ws, size_t ws_bytes) {
    FG_TRY(fg_conv2d_check(d));
    if (!dout) return fg_fail(FG_ERR_INVALID, "conv2d backward: dout must not be NULL");
    if (dinp && !weight) return fg_fail(FG_ERR_INVALID, "conv2d backward: dinp requested but weight is NULL");
    if ((dweight || dbias) && !inp) return fg_fail(FG_ERR_INVALID, "conv2d backward: dweight or dbias requested but inp is NULL");
    if (!dinp && !dweight && !dbias) return FG_OK;
    switch (algo) {
    case FG_CONV_IMPLICIT:
        FG_TRY(conv_check_call("backward", algo, ws, ws_bytes, 0));
        if (dinp) implicit_backward_data(dinp, dout, weight, d);
        if (dweight) implicit_backward_weights(dweight, dout, inp, d);
        if (dbias) bias_backward(dbias, dout, d->n, d->oc, fg_conv2d_out_h(d) * fg_conv2d_out_w(d));
        return FG_OK;
    case FG_CONV_GEMM:
        FG_TRY(conv_check_call("backward", algo, ws, ws_bytes, gemm_ws_bytes(d)));
        return gemm_backward(dinp, dweight, dbias, dout, inp, weight, d, (float *)ws);
    case FG_CONV_DNNL: {

        dn_entry *e;
        FG_TRY(dn_acquire(&e, d));
        fg_status s = conv_check_call("backward", algo, ws, ws_bytes, e->ws);
        if (s == FG_OK) s = dn_backward(dinp, dweight, dbias, dout, inp, weight, e, (char *)ws);
        dn_release(e);
        return s;
    }
    default: return conv_check_call("backward", algo, ws, ws_bytes, 0);
    }
}
