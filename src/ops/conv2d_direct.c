/* conv2d_direct: the IMPLICIT algorithm of conv2d (src/ops/conv2d.c), direct loops that need no
 * workspace, built twice: once for the baseline ISA (x86-64-v3: AVX2 + FMA) and once for AVX-512
 * (x86-64-v4), from this one source. conv2d.c picks the AVX-512 build at run time when the CPU
 * has it and fg_cpu_isa_active() allows it (FRUGAL_MAX_CPU_ISA=AVX2 or fg_cpu_isa_set_max hold
 * it to AVX2), so a library built on one machine runs, with the same meaning, on any x86-64-v3
 * machine. The AVX-512 build uses masked loads and stores (no phase buffer for stride 1, a
 * dedicated strided backward-data kernel); the AVX2 build handles row edges through the zeroed
 * phase buffer and falls back to the generic loops for strided backward data.
 *
 * Every function name here carries the build's suffix (_base or _avx512, see conv2d_impl.h), so
 * the disassembly check (scripts/check-isa.sh) can tell the dispatched AVX-512 code from the
 * rest: no function outside *_avx512 may hold an AVX-512 instruction.
 *
 * Both builds contract a*b + c into FMAs (-ffp-contract=fast, set by CMakeLists.txt for this
 * file), so the tiled kernels do the same fused operations in the same order on both paths. */
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "frugal/ops.h"

/* Every function of this file, its build's suffix appended (the helpers from conv2d_impl.h too). */
#define dot_lanes FG_CONV2D_DIRECT(dot_lanes)
#define implicit_forward_generic FG_CONV2D_DIRECT(implicit_forward_generic)
#define implicit_backward_data_generic FG_CONV2D_DIRECT(implicit_backward_data_generic)
#define implicit_backward_weights_generic FG_CONV2D_DIRECT(implicit_backward_weights_generic)
#define dc_cols_mask FG_CONV2D_DIRECT(dc_cols_mask)
#define v16_sum FG_CONV2D_DIRECT(v16_sum)
#define dc_fill FG_CONV2D_DIRECT(dc_fill)
#define dc_phase_len FG_CONV2D_DIRECT(dc_phase_len)
#define dc_fits FG_CONV2D_DIRECT(dc_fits)
#define dc_run FG_CONV2D_DIRECT(dc_run)
#define implicit_backward_data_strided FG_CONV2D_DIRECT(implicit_backward_data_strided)
#define wt_chunk_setup FG_CONV2D_DIRECT(wt_chunk_setup)
#define tap_range FG_CONV2D_DIRECT(tap_range)
#define is_pointwise FG_CONV2D_DIRECT(is_pointwise)
#define implicit_forward FG_CONV2D_DIRECT(fg_conv2d_implicit_forward)
#define implicit_backward_data FG_CONV2D_DIRECT(fg_conv2d_implicit_backward_data)
#define implicit_backward_weights FG_CONV2D_DIRECT(fg_conv2d_implicit_backward_weights)
#include "conv2d_impl.h"

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
/* sum_j a[j] * b[j*sb], j in [0, n), in 16 lane sums (a[j] into lane j mod 16) added up as a fixed
 * tree: the same order on the AVX2 and the AVX-512 build (an omp simd reduction's order would
 * follow the vector width). */
static float dot_lanes(const float *a, const float *b, int64_t n, int64_t sb) {
    float p[16] = {0};
    int64_t j = 0;
    for (; j + 16 <= n; j += 16)
        for (int l = 0; l < 16; l++) p[l] += a[j + l] * b[(j + l) * sb];
    for (int l = 0; j + l < n; l++) p[l] += a[j + l] * b[(j + l) * sb];
    for (int l = 0; l < 8; l++) p[l] += p[l + 8];
    for (int l = 0; l < 4; l++) p[l] += p[l + 4];
    for (int l = 0; l < 2; l++) p[l] += p[l + 2];
    return p[0] + p[1];
}

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
                            sum += dot_lanes(drow + lo, irow + lo * sw + base, hi - lo, sw);
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
/* a*b + c, fused: explicitly with AVX-512; on the AVX2 path by the compiler, which this file is
 * built to contract (-ffp-contract=fast; ISO C mode would not), so that both paths round alike. */
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

/* Sum of the 16 lanes of *v, as a fixed tree (lane i + lane i+8, then +4, +2, +1) on every build,
 * so both ISA paths round alike. */
static inline float v16_sum(const v16 *v) {
    float t[8];
    for (int i = 0; i < 8; i++) t[i] = (*v)[i] + (*v)[i + 8];
    for (int i = 0; i < 4; i++) t[i] += t[i + 4];
    for (int i = 0; i < 2; i++) t[i] += t[i + 2];
    return t[0] + t[1];
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

void implicit_forward(float *out, const float *inp, const float *weight, const float *bias,
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
void implicit_backward_data(float *dinp, const float *dout, const float *weight, const fg_conv2d_desc *d) {
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
                /* lanes past the output row: dout is 0 there, but 0 * an inf or NaN input column
                 * (one no output reads) would be NaN in the sum */
                if (j == k->nvec - 1) {
#if DC_MASKED
                    x = (v16)_mm512_maskz_mov_ps(dc_cols_mask(0, k->tail), (__m512)x);
#else
                    x = (v16)((v16i)x & tmask);
#endif
                }
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

void implicit_backward_weights(float *dweight, const float *dout, const float *inp, const fg_conv2d_desc *d) {
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
