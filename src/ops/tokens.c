/* Token-level copies of a vision transformer's embedding and head: repeating a tensor along the
 * batch axis (the class token (1, 1, C) and the position embedding (1, N + 1, C), broadcast to every
 * image of the batch) and slicing along one axis (the class token taken out of (B, N + 1, C)).
 *
 * repeat: inp (a, rest...) -> out (n * a, rest...), out = inp tiled n times along axis 0 (torch's
 *   inp.repeat(n, 1, ...)); with m = numel(inp): out[r * m + i] = inp[i]. Backward: dinp[i] =
 *   sum_r dout[r * m + i], WRITTEN (summed in order r = 0..n-1, so every thread count gives the
 *   same bits). FLOPs 0 forward (a copy).
 * slice: inp viewed as (outer, dim, inner) -> out (outer, len, inner) = inp[:, start:start+len, :]
 *   (torch's narrow). Backward: dinp is zero outside the slice and dout inside it, WRITTEN.
 * Neither has parameters or saves anything. OpenMP-parallel past FG_PAR_MIN_STREAM elements
 * (par_impl.h). */
#include <string.h>

#include "frugal/ops.h"
#include "par_impl.h"

void fg_repeat_forward(float *out, const float *inp, size_t m, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 1 && (size_t)n * m > FG_PAR_MIN_STREAM)
    for (int64_t r = 0; r < n; r++) memcpy(out + (size_t)r * m, inp, m * sizeof(float));
}

void fg_repeat_backward(float *dinp, const float *dout, size_t m, int64_t n) {
    if (!dinp) return;
#pragma omp parallel for schedule(static) if ((size_t)n * m > FG_PAR_MIN_STREAM)
    for (size_t i = 0; i < m; i++) {
        float s = 0.0f;
        for (int64_t r = 0; r < n; r++) s += dout[(size_t)r * m + i];
        dinp[i] = s;
    }
}

void fg_repeat_backward_naive(float *dinp, const float *dout, size_t m, int64_t n) {
    for (size_t i = 0; i < m; i++) {
        double s = 0.0;
        for (int64_t r = 0; r < n; r++) s += dout[(size_t)r * m + i];
        dinp[i] = (float)s;
    }
}

void fg_slice_forward(float *out, const float *inp, int64_t outer, int64_t dim, int64_t inner, int64_t start,
                      int64_t len) {
    FG_ASSERT(start >= 0 && len >= 0 && start + len <= dim);
    const size_t row = (size_t)(len * inner);
#pragma omp parallel for schedule(static) if (outer > 1 && (size_t)outer * row > FG_PAR_MIN_STREAM)
    for (int64_t o = 0; o < outer; o++)
        memcpy(out + (size_t)o * row, inp + (size_t)(o * dim + start) * (size_t)inner, row * sizeof(float));
}

void fg_slice_backward(float *dinp, const float *dout, int64_t outer, int64_t dim, int64_t inner, int64_t start,
                       int64_t len) {
    if (!dinp) return;
    FG_ASSERT(start >= 0 && len >= 0 && start + len <= dim);
    const size_t row = (size_t)(len * inner), full = (size_t)(dim * inner);
#pragma omp parallel for schedule(static) if (outer > 1 && (size_t)outer * full > FG_PAR_MIN_STREAM)
    for (int64_t o = 0; o < outer; o++) {
        float *d = dinp + (size_t)o * full;
        memset(d, 0, full * sizeof(float));
        memcpy(d + (size_t)(start * inner), dout + (size_t)o * row, row * sizeof(float));
    }
}

void fg_slice_forward_naive(float *out, const float *inp, int64_t outer, int64_t dim, int64_t inner, int64_t start,
                            int64_t len) {
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < len; j++)
            for (int64_t i = 0; i < inner; i++) out[(o * len + j) * inner + i] = inp[(o * dim + start + j) * inner + i];
}
