/* Pooling: 2-D max and average pooling with kernel, stride, padding, ceil_mode and
 * count_include_pad exactly as PyTorch's max_pool2d / avg_pool2d, and global average pooling.
 *
 * Shapes: inp (N, C, H, W), out (N, C, OH, OW), NCHW contiguous f32. Every kernel works plane by
 * plane (one (n, c) pair at a time), OpenMP-parallel over the N*C planes, so planes never share
 * memory and backward needs no atomics.
 *
 * Window geometry (PyTorch's): output row oh covers input rows [oh*stride - pad, oh*stride - pad + k)
 * clipped to the input. With ceil_mode the output size rounds up, but a last window that would start
 * at or beyond the input plus left padding is dropped.
 *
 * The fast forward kernels run in two passes per output row: a vertical pass reduces the window's
 * input rows into one padded row buffer (contiguous, vectorised, no bounds tests), then a horizontal
 * pass reduces k consecutive buffer entries per output. Padding positions of the buffer hold the
 * pad value (-inf for max, 0 for avg), so no per-element branch is needed. Rows too wide for the
 * stack buffer fall back to direct loops over the clipped window.
 *
 * Backward: avgpool writes dinp (zeroed, then each output's gradient / divisor added to its window);
 * maxpool finds each window's argmax as PyTorch's CPU kernel does (the first maximum in row-major
 * scan of the clipped window; a NaN wins, the last NaN if several; a window of -inf picks its first
 * element) and adds dout there, so overlapping windows accumulate. Either backward recomputes the
 * argmax from the saved input, or forward stores it (fg_maxpool2d_argmax: one byte per output, the
 * offset in the window, for windows of at most 256 elements) and backward reads it: the graph
 * saves that byte instead of the input (a quarter of the output's bytes against four times them for
 * a 2x2 window), with the same gradient bit for bit. The argmax scan is vectorised over the outputs
 * of a row the same way as the forward passes.
 *
 * fg_pooling_check is a little stricter than PyTorch: it rejects a kernel larger than the padded
 * input even where ceil_mode would still give PyTorch a 1-wide output. */
#include <math.h>
#include <string.h>

#include "frugal/ops.h"

/* Widest padded row (in floats) the row-wise kernels keep on the stack (max pool backward keeps
 * three such arrays: 32 KiB). */
#define POOL_ROW_MAX 2048

/* floor(a / b) for b > 0, also for negative a (PyTorch's div_rtn). */
static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && (a < 0)) q--;
    return q;
}

static int64_t pool_out_size(int64_t in, int64_t k, int64_t s, int64_t p, int ceil_mode) {
    if (s <= 0) return 0;
    int64_t o = floor_div(in + 2 * p - k + (ceil_mode ? s - 1 : 0), s) + 1;
    /* ceil_mode: the last window must start inside the input or its left padding */
    if (ceil_mode && o > 0 && (o - 1) * s >= in + p) o--;
    return o;
}

int64_t fg_pooling_out_h(const fg_pooling_desc *d) {
    return pool_out_size(d->h, d->kh, d->stride_h, d->pad_h, d->ceil_mode);
}

int64_t fg_pooling_out_w(const fg_pooling_desc *d) {
    return pool_out_size(d->w, d->kw, d->stride_w, d->pad_w, d->ceil_mode);
}

fg_status fg_pooling_check(const fg_pooling_desc *d) {
    if (!d) return fg_fail(FG_ERR_INVALID, "pooling: descriptor is NULL");
    if (d->n <= 0 || d->c <= 0 || d->h <= 0 || d->w <= 0)
        return fg_fail(FG_ERR_SHAPE, "pooling: input (N, C, H, W) = (%lld, %lld, %lld, %lld), expected all > 0",
                       (long long)d->n, (long long)d->c, (long long)d->h, (long long)d->w);
    if (d->kh <= 0 || d->kw <= 0)
        return fg_fail(FG_ERR_SHAPE, "pooling: kernel %lldx%lld, expected both > 0", (long long)d->kh,
                       (long long)d->kw);
    if (d->stride_h <= 0 || d->stride_w <= 0)
        return fg_fail(FG_ERR_SHAPE, "pooling: stride %lldx%lld, expected both > 0", (long long)d->stride_h,
                       (long long)d->stride_w);
    if (d->pad_h < 0 || d->pad_w < 0)
        return fg_fail(FG_ERR_SHAPE, "pooling: padding %lldx%lld, expected both >= 0", (long long)d->pad_h,
                       (long long)d->pad_w);
    if (d->pad_h > d->kh / 2 || d->pad_w > d->kw / 2)
        return fg_fail(FG_ERR_SHAPE,
                       "pooling: padding %lldx%lld with kernel %lldx%lld, expected padding at most half the "
                       "kernel (%lldx%lld)",
                       (long long)d->pad_h, (long long)d->pad_w, (long long)d->kh, (long long)d->kw,
                       (long long)(d->kh / 2), (long long)(d->kw / 2));
    if (d->kh > d->h + 2 * d->pad_h || d->kw > d->w + 2 * d->pad_w)
        return fg_fail(FG_ERR_SHAPE,
                       "pooling: kernel %lldx%lld is larger than the padded input %lldx%lld (input %lldx%lld, "
                       "padding %lldx%lld)",
                       (long long)d->kh, (long long)d->kw, (long long)(d->h + 2 * d->pad_h),
                       (long long)(d->w + 2 * d->pad_w), (long long)d->h, (long long)d->w, (long long)d->pad_h,
                       (long long)d->pad_w);
    int64_t oh = fg_pooling_out_h(d), ow = fg_pooling_out_w(d);
    if (oh < 1 || ow < 1)
        return fg_fail(FG_ERR_SHAPE, "pooling: output size %lldx%lld for input %lldx%lld, expected at least 1x1",
                       (long long)oh, (long long)ow, (long long)d->h, (long long)d->w);
    return FG_OK;
}

/* Max that lets a NaN through, as PyTorch's `val > maxval || isnan(val)`. */
static inline float max_nan(float m, float v) { return (v > m || v != v) ? v : m; }

/* Clipped window [*lo, *hi) of output index o along one axis of length `in`. */
static inline void window(int64_t o, int64_t k, int64_t s, int64_t p, int64_t in, int64_t *lo, int64_t *hi) {
    int64_t a = o * s - p, b = a + k;
    *lo = a < 0 ? 0 : a;
    *hi = b > in ? in : b;
}

/* Avg-pool divisor of output (oh, ow): the window clipped to the padded input when
 * count_include_pad, else the part inside the input (PyTorch's rule). */
static inline int64_t avg_divisor(const fg_pooling_desc *d, int64_t oh, int64_t ow) {
    int64_t h0 = oh * d->stride_h - d->pad_h, w0 = ow * d->stride_w - d->pad_w;
    int64_t h1 = h0 + d->kh, w1 = w0 + d->kw;
    if (d->count_include_pad) {
        if (h1 > d->h + d->pad_h) h1 = d->h + d->pad_h;
        if (w1 > d->w + d->pad_w) w1 = d->w + d->pad_w;
    } else {
        if (h0 < 0) h0 = 0;
        if (w0 < 0) w0 = 0;
        if (h1 > d->h) h1 = d->h;
        if (w1 > d->w) w1 = d->w;
    }
    return (h1 - h0) * (w1 - w0);
}

/* Length of the padded row buffer: padded column j = iw + pad_w; the last window ends at
 * (OW-1)*stride + kw, which with ceil_mode may overhang the right padding. */
static int64_t row_len(const fg_pooling_desc *d, int64_t OW) {
    int64_t a = (OW - 1) * d->stride_w + d->kw, b = d->w + 2 * d->pad_w;
    return a > b ? a : b;
}

/* ---------------------------------------------------------------- max pool forward */

/* One plane, direct loops over the clipped window: used when a row does not fit the buffer. */
static void maxpool_plane_direct(float *out, const float *in, const fg_pooling_desc *d, int64_t OH, int64_t OW) {
    for (int64_t oh = 0; oh < OH; oh++) {
        int64_t h0, h1;
        window(oh, d->kh, d->stride_h, d->pad_h, d->h, &h0, &h1);
        for (int64_t ow = 0; ow < OW; ow++) {
            int64_t w0, w1;
            window(ow, d->kw, d->stride_w, d->pad_w, d->w, &w0, &w1);
            float m = -INFINITY;
            for (int64_t ih = h0; ih < h1; ih++)
                for (int64_t iw = w0; iw < w1; iw++) m = max_nan(m, in[ih * d->w + iw]);
            out[oh * OW + ow] = m;
        }
    }
}

/* One plane, two passes through the padded row buffer `row` (row_len floats). */
static void maxpool_plane_rows(float *out, const float *in, const fg_pooling_desc *d, int64_t OH, int64_t OW,
                               float *row) {
    const int64_t W = d->w, L = row_len(d, OW), sw = d->stride_w, kw = d->kw;
    for (int64_t j = 0; j < d->pad_w; j++) row[j] = -INFINITY;
    for (int64_t j = d->pad_w + W; j < L; j++) row[j] = -INFINITY;
    float *r = row + d->pad_w;
    for (int64_t oh = 0; oh < OH; oh++) {
        int64_t h0, h1;
        window(oh, d->kh, d->stride_h, d->pad_h, d->h, &h0, &h1);
        /* windows are never empty after fg_pooling_check, so row h0 exists */
        memcpy(r, in + h0 * W, (size_t)W * sizeof(float));
        for (int64_t ih = h0 + 1; ih < h1; ih++) {
            const float *src = in + ih * W;
#pragma omp simd
            for (int64_t iw = 0; iw < W; iw++) r[iw] = max_nan(r[iw], src[iw]);
        }
        /* horizontal pass, one kernel column at a time so the loop over ow vectorises */
        float *o = out + oh * OW;
#pragma omp simd
        for (int64_t ow = 0; ow < OW; ow++) o[ow] = row[ow * sw];
        for (int64_t j = 1; j < kw; j++) {
#pragma omp simd
            for (int64_t ow = 0; ow < OW; ow++) o[ow] = max_nan(o[ow], row[ow * sw + j]);
        }
    }
}

/* A forward over every (n, c) plane, in parallel: by padded rows in a stack buffer when a row
 * fits in it, else directly. */
typedef void (*plane_rows_fn)(float *out, const float *in, const fg_pooling_desc *d, int64_t OH, int64_t OW,
                              float *row);
typedef void (*plane_direct_fn)(float *out, const float *in, const fg_pooling_desc *d, int64_t OH, int64_t OW);
static void pool_forward(float *out, const float *inp, const fg_pooling_desc *d, plane_rows_fn rows,
                         plane_direct_fn direct) {
    FG_ASSERT_MSG(fg_pooling_check(d) == FG_OK, "pooling descriptor not validated by fg_pooling_check");
    const int64_t OH = fg_pooling_out_h(d), OW = fg_pooling_out_w(d), planes = d->n * d->c;
    const int64_t HW = d->h * d->w, OHW = OH * OW;
    const int use_rows = row_len(d, OW) <= POOL_ROW_MAX;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        float row[POOL_ROW_MAX];
        if (use_rows)
            rows(out + p * OHW, inp + p * HW, d, OH, OW, row);
        else
            direct(out + p * OHW, inp + p * HW, d, OH, OW);
    }
}

void fg_maxpool2d_forward(float *out, const float *inp, const fg_pooling_desc *d) {
    pool_forward(out, inp, d, maxpool_plane_rows, maxpool_plane_direct);
}

void fg_maxpool2d_forward_naive(float *out, const float *inp, const fg_pooling_desc *d) {
    FG_ASSERT_MSG(fg_pooling_check(d) == FG_OK, "pooling descriptor not validated by fg_pooling_check");
    const int64_t OH = fg_pooling_out_h(d), OW = fg_pooling_out_w(d);
    for (int64_t n = 0; n < d->n; n++)
        for (int64_t c = 0; c < d->c; c++) {
            const float *in = inp + (n * d->c + c) * d->h * d->w;
            float *o = out + (n * d->c + c) * OH * OW;
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    float m = -INFINITY; /* the padding value */
                    for (int64_t i = 0; i < d->kh; i++)
                        for (int64_t j = 0; j < d->kw; j++) {
                            int64_t ih = oh * d->stride_h - d->pad_h + i, iw = ow * d->stride_w - d->pad_w + j;
                            if (ih < 0 || ih >= d->h || iw < 0 || iw >= d->w) continue;
                            float v = in[ih * d->w + iw];
                            if (v > m || isnan(v)) m = v;
                        }
                    o[oh * OW + ow] = m;
                }
        }
}

/* ---------------------------------------------------------------- max pool argmax and backward */

/* Argmax of output (oh, ow) as a plane index, direct loops: PyTorch's scan starts at the clipped
 * window's first element and replaces on a strictly greater value or a NaN, so an all -inf
 * window routes to its first element. */
static int64_t argmax_one(const float *in, const fg_pooling_desc *d, int64_t oh, int64_t ow) {
    const int64_t W = d->w;
    int64_t h0, h1, w0, w1;
    window(oh, d->kh, d->stride_h, d->pad_h, d->h, &h0, &h1);
    window(ow, d->kw, d->stride_w, d->pad_w, W, &w0, &w1);
    int64_t best = h0 * W + w0;
    float m = -INFINITY;
    for (int64_t ih = h0; ih < h1; ih++)
        for (int64_t iw = w0; iw < w1; iw++) {
            float v = in[ih * W + iw];
            int take = (v > m) | (v != v);
            m = take ? v : m;
            best = take ? ih * W + iw : best;
        }
    return best;
}

/* The same scan vectorised over the outputs of row oh (argmax into arg[0..OW)): every output ow visits its window in the
 * same (ih, then column) order, one padded input row at a time; `m` (OW entries) holds the running
 * maximum. `row` (row_len entries) must hold -inf in its padding columns. Padding never replaces,
 * so the result equals the direct scan's. */
static void argmax_row_vec(int64_t *arg, const float *in, const fg_pooling_desc *d, int64_t oh, int64_t OW, float *row,
                           float *m) {
    const int64_t W = d->w, sw = d->stride_w, kw = d->kw, pw = d->pad_w;
    int64_t h0, h1;
    window(oh, d->kh, d->stride_h, d->pad_h, d->h, &h0, &h1);
#pragma omp simd
    for (int64_t ow = 0; ow < OW; ow++) {
        int64_t a = ow * sw - pw;
        m[ow] = -INFINITY;
        arg[ow] = h0 * W + (a < 0 ? 0 : a);
    }
    for (int64_t ih = h0; ih < h1; ih++) {
        memcpy(row + pw, in + ih * W, (size_t)W * sizeof(float));
        const int64_t base = ih * W - pw; /* plane index of padded column 0 of this row */
        for (int64_t j = 0; j < kw; j++) {
#pragma omp simd
            for (int64_t ow = 0; ow < OW; ow++) {
                float v = row[ow * sw + j];
                int take = (v > m[ow]) | (v != v);
                m[ow] = take ? v : m[ow];
                arg[ow] = take ? base + ow * sw + j : arg[ow];
            }
        }
    }
}

/* Per-plane scratch of the argmax scans (on the stack: three POOL_ROW_MAX arrays, 32 KiB). */
typedef struct argmax_scratch {
    float row[POOL_ROW_MAX], m[POOL_ROW_MAX];
    int64_t arg[POOL_ROW_MAX];
} argmax_scratch;

/* Argmax of output (oh, ow) after argmax_row_vec filled s->arg for row oh (use_rows), else direct. */
static inline int64_t argmax_at(const argmax_scratch *s, int use_rows, const float *in, const fg_pooling_desc *d,
                                int64_t oh, int64_t ow) {
    return use_rows ? s->arg[ow] : argmax_one(in, d, oh, ow);
}

static void argmax_scratch_init(argmax_scratch *s, const fg_pooling_desc *d, int64_t OW, int use_rows) {
    if (!use_rows) return;
    const int64_t L = row_len(d, OW), pw = d->pad_w;
    for (int64_t j = 0; j < pw; j++) s->row[j] = -INFINITY;
    for (int64_t j = pw + d->w; j < L; j++) s->row[j] = -INFINITY;
}

void fg_maxpool2d_backward(float *dinp, const float *dout, const float *inp, const fg_pooling_desc *d) {
    if (!dinp) return;
    FG_ASSERT_MSG(fg_pooling_check(d) == FG_OK, "pooling descriptor not validated by fg_pooling_check");
    const int64_t OH = fg_pooling_out_h(d), OW = fg_pooling_out_w(d), planes = d->n * d->c;
    const int64_t HW = d->h * d->w, OHW = OH * OW;
    const int use_rows = row_len(d, OW) <= POOL_ROW_MAX; /* OW <= row_len, so m and arg fit too */
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        float *di = dinp + p * HW;
        const float *in = inp + p * HW, *g = dout + p * OHW;
        memset(di, 0, (size_t)HW * sizeof(float));
        argmax_scratch s;
        argmax_scratch_init(&s, d, OW, use_rows);
        for (int64_t oh = 0; oh < OH; oh++) {
            if (use_rows) argmax_row_vec(s.arg, in, d, oh, OW, s.row, s.m);
            /* same accumulation order as PyTorch: outputs in row-major order */
            for (int64_t ow = 0; ow < OW; ow++) di[argmax_at(&s, use_rows, in, d, oh, ow)] += g[oh * OW + ow];
        }
    }
}

int fg_maxpool2d_argmax_ok(const fg_pooling_desc *d) { return d->kh * d->kw <= 256; }

void fg_maxpool2d_argmax(uint8_t *arg, const float *inp, const fg_pooling_desc *d) {
    FG_ASSERT_MSG(fg_pooling_check(d) == FG_OK, "pooling descriptor not validated by fg_pooling_check");
    FG_ASSERT_MSG(fg_maxpool2d_argmax_ok(d), "max pool argmax: window larger than 256 elements");
    const int64_t OH = fg_pooling_out_h(d), OW = fg_pooling_out_w(d), planes = d->n * d->c;
    const int64_t W = d->w, HW = d->h * W, OHW = OH * OW;
    const int use_rows = row_len(d, OW) <= POOL_ROW_MAX;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        argmax_scratch s;
        argmax_scratch_init(&s, d, OW, use_rows);
        uint8_t *a = arg + p * OHW;
        const float *in = inp + p * HW;
        for (int64_t oh = 0; oh < OH; oh++) {
            if (use_rows) argmax_row_vec(s.arg, in, d, oh, OW, s.row, s.m);
            const int64_t hs = oh * d->stride_h - d->pad_h; /* the unclipped window's first row */
            for (int64_t ow = 0; ow < OW; ow++) {
                const int64_t ws = ow * d->stride_w - d->pad_w, at = argmax_at(&s, use_rows, in, d, oh, ow);
                const int64_t ih = at / W, iw = at % W;
                a[oh * OW + ow] = (uint8_t)((ih - hs) * d->kw + (iw - ws));
            }
        }
    }
}

void fg_maxpool2d_backward_argmax(float *dinp, const float *dout, const uint8_t *arg, const fg_pooling_desc *d) {
    if (!dinp) return;
    FG_ASSERT_MSG(fg_pooling_check(d) == FG_OK, "pooling descriptor not validated by fg_pooling_check");
    const int64_t OH = fg_pooling_out_h(d), OW = fg_pooling_out_w(d), planes = d->n * d->c;
    const int64_t W = d->w, HW = d->h * W, OHW = OH * OW, kw = d->kw;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        float *di = dinp + p * HW;
        const float *g = dout + p * OHW;
        const uint8_t *a = arg + p * OHW;
        memset(di, 0, (size_t)HW * sizeof(float));
        for (int64_t oh = 0; oh < OH; oh++) {
            const int64_t hs = oh * d->stride_h - d->pad_h;
            for (int64_t ow = 0; ow < OW; ow++) {
                const int64_t k = a[oh * OW + ow], ws = ow * d->stride_w - d->pad_w;
                di[(hs + k / kw) * W + ws + k % kw] += g[oh * OW + ow];
            }
        }
    }
}

/* ---------------------------------------------------------------- avg pool forward */

static void avgpool_plane_direct(float *out, const float *in, const fg_pooling_desc *d, int64_t OH, int64_t OW) {
    for (int64_t oh = 0; oh < OH; oh++) {
        int64_t h0, h1;
        window(oh, d->kh, d->stride_h, d->pad_h, d->h, &h0, &h1);
        for (int64_t ow = 0; ow < OW; ow++) {
            int64_t w0, w1;
            window(ow, d->kw, d->stride_w, d->pad_w, d->w, &w0, &w1);
            float s = 0.0f;
            for (int64_t ih = h0; ih < h1; ih++)
                for (int64_t iw = w0; iw < w1; iw++) s += in[ih * d->w + iw];
            int64_t div = avg_divisor(d, oh, ow);
            out[oh * OW + ow] = div > 0 ? s / (float)div : 0.0f;
        }
    }
}

static void avgpool_plane_rows(float *out, const float *in, const fg_pooling_desc *d, int64_t OH, int64_t OW,
                               float *row) {
    const int64_t W = d->w, L = row_len(d, OW), sw = d->stride_w, kw = d->kw;
    for (int64_t j = 0; j < d->pad_w; j++) row[j] = 0.0f;
    for (int64_t j = d->pad_w + W; j < L; j++) row[j] = 0.0f;
    float *r = row + d->pad_w;
    for (int64_t oh = 0; oh < OH; oh++) {
        int64_t h0, h1;
        window(oh, d->kh, d->stride_h, d->pad_h, d->h, &h0, &h1);
        memcpy(r, in + h0 * W, (size_t)W * sizeof(float));
        for (int64_t ih = h0 + 1; ih < h1; ih++) {
            const float *src = in + ih * W;
#pragma omp simd
            for (int64_t iw = 0; iw < W; iw++) r[iw] += src[iw];
        }
        float *o = out + oh * OW;
#pragma omp simd
        for (int64_t ow = 0; ow < OW; ow++) o[ow] = row[ow * sw];
        for (int64_t j = 1; j < kw; j++) {
#pragma omp simd
            for (int64_t ow = 0; ow < OW; ow++) o[ow] += row[ow * sw + j];
        }
        for (int64_t ow = 0; ow < OW; ow++) {
            int64_t div = avg_divisor(d, oh, ow);
            o[ow] = div > 0 ? o[ow] / (float)div : 0.0f;
        }
    }
}

void fg_avgpool2d_forward(float *out, const float *inp, const fg_pooling_desc *d) {
    pool_forward(out, inp, d, avgpool_plane_rows, avgpool_plane_direct);
}

void fg_avgpool2d_forward_naive(float *out, const float *inp, const fg_pooling_desc *d) {
    FG_ASSERT_MSG(fg_pooling_check(d) == FG_OK, "pooling descriptor not validated by fg_pooling_check");
    const int64_t OH = fg_pooling_out_h(d), OW = fg_pooling_out_w(d);
    for (int64_t n = 0; n < d->n; n++)
        for (int64_t c = 0; c < d->c; c++) {
            const float *in = inp + (n * d->c + c) * d->h * d->w;
            float *o = out + (n * d->c + c) * OH * OW;
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    double s = 0.0;
                    int64_t valid = 0, in_padded = 0;
                    for (int64_t i = 0; i < d->kh; i++)
                        for (int64_t j = 0; j < d->kw; j++) {
                            int64_t ih = oh * d->stride_h - d->pad_h + i, iw = ow * d->stride_w - d->pad_w + j;
                            /* positions inside the padded input count when count_include_pad */
                            if (ih < d->h + d->pad_h && iw < d->w + d->pad_w) in_padded++;
                            if (ih < 0 || ih >= d->h || iw < 0 || iw >= d->w) continue;
                            s += in[ih * d->w + iw];
                            valid++;
                        }
                    int64_t div = d->count_include_pad ? in_padded : valid;
                    o[oh * OW + ow] = valid > 0 ? (float)(s / (double)div) : 0.0f;
                }
        }
}

/* ---------------------------------------------------------------- avg pool backward */

void fg_avgpool2d_backward(float *dinp, const float *dout, const fg_pooling_desc *d) {
    if (!dinp) return;
    FG_ASSERT_MSG(fg_pooling_check(d) == FG_OK, "pooling descriptor not validated by fg_pooling_check");
    const int64_t OH = fg_pooling_out_h(d), OW = fg_pooling_out_w(d), planes = d->n * d->c;
    const int64_t W = d->w, HW = d->h * d->w, OHW = OH * OW;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        const float *g = dout + p * OHW;
        float *di = dinp + p * HW;
        memset(di, 0, (size_t)HW * sizeof(float));
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0, h1;
            window(oh, d->kh, d->stride_h, d->pad_h, d->h, &h0, &h1);
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t w0, w1;
                window(ow, d->kw, d->stride_w, d->pad_w, W, &w0, &w1);
                int64_t div = avg_divisor(d, oh, ow);
                if (div <= 0) continue;
                float v = g[oh * OW + ow] / (float)div;
                for (int64_t ih = h0; ih < h1; ih++) {
                    float *dr = di + ih * W;
                    for (int64_t iw = w0; iw < w1; iw++) dr[iw] += v;
                }
            }
        }
    }
}

/* ---------------------------------------------------------------- global average pooling */

void fg_global_avgpool_forward(float *out, const float *inp, int64_t N, int64_t C, int64_t HW) {
    const int64_t planes = N * C;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        const float *in = inp + p * HW;
        double s = 0.0; /* double: HW can reach 10^5 */
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < HW; i++) s += in[i];
        out[p] = HW > 0 ? (float)(s / (double)HW) : 0.0f;
    }
}

void fg_global_avgpool_backward(float *dinp, const float *dout, int64_t N, int64_t C, int64_t HW) {
    if (!dinp) return;
    const int64_t planes = N * C;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        float v = dout[p] / (float)HW;
        float *di = dinp + p * HW;
#pragma omp simd
        for (int64_t i = 0; i < HW; i++) di[i] = v;
    }
}
