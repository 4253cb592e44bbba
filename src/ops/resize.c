/* Bilinear resize of NCHW images, exactly torch.nn.functional.interpolate(x, size=(OH, OW),
 * mode='bilinear', align_corners=False): SegFormer's all-MLP decoder brings every stage's features
 * to 1/4 of the input resolution with it.
 *
 * Shapes: inp, dinp (N, C, H, W); out, dout (N, C, OH, OW); any H, W, OH, OW >= 1 (up or down).
 * Source coordinate of output row oy (the same for columns), as PyTorch computes it in float:
 *   scale = H / OH,  sy = max(0, scale * (oy + 0.5) - 0.5),  y0 = floor(sy),  y1 = min(y0 + 1, H - 1),
 *   wy1 = sy - y0,  wy0 = 1 - wy1;
 *   out = wy0 * (wx0 * x[y0, x0] + wx1 * x[y0, x1]) + wy1 * (wx0 * x[y1, x0] + wx1 * x[y1, x1]).
 * Equal sizes give the identity (sy = oy exactly).
 * Backward: dinp is the transpose of that linear map (every dout element adds its four weighted
 * shares into dinp), WRITTEN (zeroed first). No parameters; saves nothing (only the sizes).
 * Forward when upsampling (H <= OH): each source row is interpolated along x once into a per-thread
 * scratch, then output rows are combined from two of those rows (bit-identical to the direct
 * formula, which shrinking keeps).
 * Threads: both passes are OpenMP-parallel over the N*C planes, which are independent, so the
 * backward's scatter is race-free and every thread count gives the same bits. The per-row and
 * per-column coordinates are computed once per call into small tables (stack for up to
 * TAB_MAX entries, heap beyond). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/ops.h"

#define PAR_MIN 16384
#define TAB_MAX 256

/* One axis: for each output index, the two source indices and their weights. */
typedef struct axis_tab {
    int64_t *i0, *i1;
    float *w0, *w1;
} axis_tab;

static void axis_fill(axis_tab *t, int64_t in, int64_t out) {
    const float scale = (float)in / (float)out;
    for (int64_t o = 0; o < out; o++) {
        float s = scale * ((float)o + 0.5f) - 0.5f;
        if (s < 0.0f) s = 0.0f;
        int64_t i0 = (int64_t)s;
        if (i0 > in - 1) i0 = in - 1;
        const int64_t i1 = i0 < in - 1 ? i0 + 1 : i0;
        const float l1 = s - (float)i0;
        t->i0[o] = i0;
        t->i1[o] = i1;
        t->w0[o] = 1.0f - l1;
        t->w1[o] = l1;
    }
}

/* Tables for both axes in one block: stack when small, else heap (FG_ASSERT on exhaustion: the
 * sizes are a few KB for any image). */
typedef struct tabs {
    axis_tab y, x;
    void *heap;
    unsigned char stack[2 * TAB_MAX * (2 * sizeof(int64_t) + 2 * sizeof(float))];
} tabs;

static void tabs_make(tabs *t, const fg_resize_desc *d) {
    const size_t n = (size_t)(d->oh + d->ow);
    const size_t bytes = n * (2 * sizeof(int64_t) + 2 * sizeof(float));
    unsigned char *p = t->stack;
    t->heap = NULL;
    if (bytes > sizeof t->stack) {
        t->heap = malloc(bytes);
        FG_ASSERT_MSG(t->heap, "resize: out of host memory for the coordinate tables");
        p = t->heap;
    }
    int64_t *ip = (int64_t *)(void *)p;
    float *fp = (float *)(void *)(ip + 2 * n);
    t->y = (axis_tab){ip, ip + d->oh, fp, fp + d->oh};
    t->x = (axis_tab){ip + 2 * d->oh, ip + 2 * d->oh + d->ow, fp + 2 * d->oh, fp + 2 * d->oh + d->ow};
    axis_fill(&t->y, d->h, d->oh);
    axis_fill(&t->x, d->w, d->ow);
}

fg_status fg_resize_check(const fg_resize_desc *d) {
    if (!d) return fg_fail(FG_ERR_INVALID, "resize: NULL descriptor");
    if (d->n < 0 || d->c < 0 || d->h < 1 || d->w < 1 || d->oh < 1 || d->ow < 1)
        return fg_fail(FG_ERR_SHAPE,
                       "resize: input (%lld, %lld, %lld, %lld) to %lld x %lld; expected N, C >= 0 and H, W, OH, OW >= 1",
                       (long long)d->n, (long long)d->c, (long long)d->h, (long long)d->w, (long long)d->oh,
                       (long long)d->ow);
    return FG_OK;
}

double fg_resize_flops(const fg_resize_desc *d) {
    /* 6 multiplies and 3 adds per output element */
    return 9.0 * (double)d->n * (double)d->c * (double)d->oh * (double)d->ow;
}

/* One plane by rows: out row oy = a0 * h[y0] + a1 * h[y1], where h[y] is source row y interpolated
 * along x (b0 * x[y][c0] + b1 * x[y][c1]): the same two products and sums per element as the direct
 * formula, in the same order (the same bits), but each source row is interpolated along x once
 * (the gathers) instead of once per output row that reads it, and the row combination is a
 * contiguous loop that vectorises. h holds H rows of OW floats. */
static void plane_rows(float *y, const float *x, const tabs *t, int64_t H, int64_t W, int64_t OH, int64_t OW,
                       float *h) {
    (void)W;
    for (int64_t r = 0; r < H; r++) {
        const float *row = x + r * W;
        float *hr = h + r * OW;
        for (int64_t ox = 0; ox < OW; ox++) hr[ox] = t->x.w0[ox] * row[t->x.i0[ox]] + t->x.w1[ox] * row[t->x.i1[ox]];
    }
    for (int64_t oy = 0; oy < OH; oy++) {
        const float *h0 = h + t->y.i0[oy] * OW, *h1 = h + t->y.i1[oy] * OW;
        const float a0 = t->y.w0[oy], a1 = t->y.w1[oy];
        float *yr = y + oy * OW;
#pragma omp simd
        for (int64_t ox = 0; ox < OW; ox++) yr[ox] = a0 * h0[ox] + a1 * h1[ox];
    }
}

/* One plane, the direct formula (for shrinking, where most source rows are not read). */
static void plane_direct(float *y, const float *x, const tabs *t, int64_t W, int64_t OH, int64_t OW) {
    for (int64_t oy = 0; oy < OH; oy++) {
        const float *r0 = x + t->y.i0[oy] * W, *r1 = x + t->y.i1[oy] * W;
        const float a0 = t->y.w0[oy], a1 = t->y.w1[oy];
        float *yr = y + oy * OW;
        for (int64_t ox = 0; ox < OW; ox++) {
            const int64_t c0 = t->x.i0[ox], c1 = t->x.i1[ox];
            const float b0 = t->x.w0[ox], b1 = t->x.w1[ox];
            yr[ox] = a0 * (b0 * r0[c0] + b1 * r0[c1]) + a1 * (b0 * r1[c0] + b1 * r1[c1]);
        }
    }
}

void fg_resize_bilinear_forward(float *out, const float *inp, const fg_resize_desc *d) {
    FG_ASSERT(fg_resize_check(d) == FG_OK);
    const int64_t planes = d->n * d->c, H = d->h, W = d->w, OH = d->oh, OW = d->ow;
    tabs t;
    tabs_make(&t, d);
    /* by rows when every source row is read about once or more (SegFormer's decoder upsamples x2 to
     * x8); one scratch of H x OW floats per thread */
    const int by_rows = H <= OH;
#pragma omp parallel if (planes > 1 && planes * OH * OW > PAR_MIN)
    {
        float *h = by_rows ? malloc((size_t)(H * OW) * sizeof(float)) : NULL;
        FG_ASSERT_MSG(!by_rows || h, "resize: out of host memory for the row scratch");
#pragma omp for schedule(static)
        for (int64_t p = 0; p < planes; p++) {
            if (by_rows) plane_rows(out + p * OH * OW, inp + p * H * W, &t, H, W, OH, OW, h);
            else plane_direct(out + p * OH * OW, inp + p * H * W, &t, W, OH, OW);
        }
        free(h);
    }
    free(t.heap);
}

void fg_resize_bilinear_backward(float *dinp, const float *dout, const fg_resize_desc *d) {
    FG_ASSERT(fg_resize_check(d) == FG_OK);
    if (!dinp) return;
    const int64_t planes = d->n * d->c, H = d->h, W = d->w, OH = d->oh, OW = d->ow;
    tabs t;
    tabs_make(&t, d);
#pragma omp parallel for schedule(static) if (planes > 1 && planes * OH * OW > PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        float *dx = dinp + p * H * W;
        const float *dy = dout + p * OH * OW;
        memset(dx, 0, (size_t)(H * W) * sizeof(float));
        for (int64_t oy = 0; oy < OH; oy++) {
            float *r0 = dx + t.y.i0[oy] * W, *r1 = dx + t.y.i1[oy] * W;
            const float a0 = t.y.w0[oy], a1 = t.y.w1[oy];
            const float *g = dy + oy * OW;
            for (int64_t ox = 0; ox < OW; ox++) {
                const int64_t c0 = t.x.i0[ox], c1 = t.x.i1[ox];
                const float b0 = t.x.w0[ox], b1 = t.x.w1[ox];
                const float g0 = a0 * g[ox], g1 = a1 * g[ox];
                r0[c0] += b0 * g0;
                r0[c1] += b1 * g0;
                r1[c0] += b0 * g1;
                r1[c1] += b1 * g1;
            }
        }
    }
    free(t.heap);
}

/* ---------------------------------------------------------------- naive twins
 * Every output element recomputes its own source coordinate from PyTorch's formula, in float as
 * PyTorch does (in double, a 300 -> 7 reduction lands up to 3e-5 of a pixel elsewhere), and
 * interpolates in double; backward scatters in double into a double buffer. */

static void src_coord(int64_t o, int64_t in, int64_t out, int64_t *i0, int64_t *i1, double *w1) {
    float sf = (float)in / (float)out * ((float)o + 0.5f) - 0.5f;
    if (sf < 0.0f) sf = 0.0f;
    const double s = sf;
    *i0 = (int64_t)floor(s);
    if (*i0 > in - 1) *i0 = in - 1;
    *i1 = *i0 + 1 < in ? *i0 + 1 : in - 1;
    *w1 = s - (double)*i0;
}

void fg_resize_bilinear_forward_naive(float *out, const float *inp, const fg_resize_desc *d) {
    for (int64_t p = 0; p < d->n * d->c; p++)
        for (int64_t oy = 0; oy < d->oh; oy++)
            for (int64_t ox = 0; ox < d->ow; ox++) {
                int64_t y0, y1, x0, x1;
                double wy, wx;
                src_coord(oy, d->h, d->oh, &y0, &y1, &wy);
                src_coord(ox, d->w, d->ow, &x0, &x1, &wx);
                const float *x = inp + p * d->h * d->w;
                const double v = (1 - wy) * ((1 - wx) * x[y0 * d->w + x0] + wx * x[y0 * d->w + x1]) +
                                 wy * ((1 - wx) * x[y1 * d->w + x0] + wx * x[y1 * d->w + x1]);
                out[(p * d->oh + oy) * d->ow + ox] = (float)v;
            }
}

void fg_resize_bilinear_backward_naive(float *dinp, const float *dout, const fg_resize_desc *d) {
    const size_t n = (size_t)(d->n * d->c * d->h * d->w);
    double *acc = calloc(n ? n : 1, sizeof(double));
    FG_ASSERT(acc);
    for (int64_t p = 0; p < d->n * d->c; p++)
        for (int64_t oy = 0; oy < d->oh; oy++)
            for (int64_t ox = 0; ox < d->ow; ox++) {
                int64_t y0, y1, x0, x1;
                double wy, wx;
                src_coord(oy, d->h, d->oh, &y0, &y1, &wy);
                src_coord(ox, d->w, d->ow, &x0, &x1, &wx);
                const double g = dout[(p * d->oh + oy) * d->ow + ox];
                double *a = acc + p * d->h * d->w;
                a[y0 * d->w + x0] += (1 - wy) * (1 - wx) * g;
                a[y0 * d->w + x1] += (1 - wy) * wx * g;
                a[y1 * d->w + x0] += wy * (1 - wx) * g;
                a[y1 * d->w + x1] += wy * wx * g;
            }
    for (size_t i = 0; i < n; i++) dinp[i] = (float)acc[i];
    free(acc);
}
