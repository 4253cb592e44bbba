/* conv2d: 2-D convolution with stride, zero padding, dilation and groups (depthwise included),
 * exactly as torch.nn.functional.conv2d and its autograd, in three algorithms that vDNN's dynamic
 * policy chooses between layer by layer (after cuDNN's IMPLICIT_GEMM / GEMM / fastest):
 *
 *  - FG_CONV_IMPLICIT: direct loops (src/ops/conv2d_direct.c, built for AVX2 and for AVX-512 and
 *    chosen at run time by fg_cpu_isa_active()), no caller workspace (at most 8 KiB of stack
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

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include "frugal/ops.h"
#include "conv2d_impl.h"
#include "dnnl_impl.h"

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
        if (lo > OW) lo = OW; /* every position of this tap in the left padding (pad >= kernel) */
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

/* The engine and the per-thread streams: src/ops/dnnl_rt.c. Every use below follows a successful
 * fg_dnnl_engine in dn_acquire, so this one does not fail. */
static dnnl_engine_t dn_eng(void) {
    dnnl_status_t st;
    return fg_dnnl_engine(&st);
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
            st = dnnl_reorder_primitive_desc_create(&a->rpd, &a->prim, dn_eng(), &a->user, dn_eng(), attr);
        else
            st = dnnl_reorder_primitive_desc_create(&a->rpd, &a->user, dn_eng(), &a->prim, dn_eng(), attr);
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
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&e->fwd.pd, &cf, attr, dn_eng(), NULL);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&e->bwd_data.pd, &cbd, attr, dn_eng(), e->fwd.pd);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&e->bwd_w.pd, &cbw, attr, dn_eng(), e->fwd.pd);
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
    dnnl_status_t init_st;
    if (!fg_dnnl_engine(&init_st)) return dn_fail(init_st, "engine creation", d);
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
    dnnl_status_t st = dnnl_memory_create(out, md, dn_eng(), ptr);
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
    dnnl_stream_t stream = fg_dnnl_thread_stream(&st);
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
        stream = fg_dnnl_thread_stream(&st);
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
        if (fg_cpu_isa_active() == FG_ISA_AVX512)
            fg_conv2d_implicit_forward_avx512(out, inp, weight, bias, d);
        else
            fg_conv2d_implicit_forward_base(out, inp, weight, bias, d);
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
        if (fg_cpu_isa_active() == FG_ISA_AVX512) {
            if (dinp) fg_conv2d_implicit_backward_data_avx512(dinp, dout, weight, d);
            if (dweight) fg_conv2d_implicit_backward_weights_avx512(dweight, dout, inp, d);
        } else {
            if (dinp) fg_conv2d_implicit_backward_data_base(dinp, dout, weight, d);
            if (dweight) fg_conv2d_implicit_backward_weights_base(dweight, dout, inp, d);
        }
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
