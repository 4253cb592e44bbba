/* Elementwise and shape ops: inverted dropout, addition (residual connections), the executor's
 * gradient accumulation, and concatenation along one axis.
 *
 * dropout: element i is dropped when fg_hash_uniform(seed, i) < p; kept elements are scaled by
 *   1 / (1 - p) so the expected output equals the input (torch.nn.functional.dropout in training).
 *   The mask is a pure function of (seed, i), so backward regenerates it instead of saving n bytes,
 *   and any thread may compute any element. p == 0 copies; p >= 1 drops everything (zeros).
 *   backward: dinp = dout * mask / (1 - p), written.
 * add: out = a + b; its backward is a copy of dout into each input gradient (done by the caller).
 * accumulate: y += x.
 * concat: viewing the inputs as (outer, chunk[i]) and the output as (outer, sum chunk), each output
 *   row is the inputs' rows one after another; backward splits dout the same way (dins written,
 *   a NULL entry skipped).
 * Loops go parallel (OpenMP) only past PAR_MIN elements (dropout, which hashes every index) or
 * FG_PAR_MIN_STREAM (the copies and adds: par_impl.h). */
#include <string.h>

#include "frugal/ops.h"
#include "par_impl.h"

#define PAR_MIN 16384

void fg_dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t seed) {
    if (p <= 0.0f) {
        if (out != inp) memmove(out, inp, n * sizeof(float));
        return;
    }
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = fg_hash_uniform(seed, i) < p ? 0.0f : inp[i] * scale;
}

void fg_dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t seed) {
    fg_dropout_forward(dinp, dout, n, p, seed); /* the same mask and scale: d(x * m * s)/dx = m * s */
}

void fg_add_forward(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > FG_PAR_MIN_STREAM)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void fg_accumulate(float *y, const float *x, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > FG_PAR_MIN_STREAM)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

static int64_t concat_total(const int64_t *chunk, int k) {
    int64_t total = 0;
    for (int i = 0; i < k; i++) total += chunk[i];
    return total;
}

/* Parallel over the outer rows when the whole move is large; each row is k memcpy's. */
void fg_concat_forward(float *out, const float *const *ins, const int64_t *chunk, int k, int64_t outer) {
    const int64_t total = concat_total(chunk, k);
#pragma omp parallel for schedule(static) if (outer > 1 && outer * total > FG_PAR_MIN_STREAM)
    for (int64_t o = 0; o < outer; o++) {
        float *dst = out + o * total;
        for (int i = 0; i < k; i++) {
            if (chunk[i] > 0) memcpy(dst, ins[i] + o * chunk[i], (size_t)chunk[i] * sizeof(float));
            dst += chunk[i];
        }
    }
}

void fg_concat_backward(float *const *dins, const float *dout, const int64_t *chunk, int k, int64_t outer) {
    const int64_t total = concat_total(chunk, k);
#pragma omp parallel for schedule(static) if (outer > 1 && outer * total > FG_PAR_MIN_STREAM)
    for (int64_t o = 0; o < outer; o++) {
        const float *src = dout + o * total;
        for (int i = 0; i < k; i++) {
            if (dins[i] && chunk[i] > 0) memcpy(dins[i] + o * chunk[i], src, (size_t)chunk[i] * sizeof(float));
            src += chunk[i];
        }
    }
}

/* Bias gradients (linear, LSTM): blocks of columns in parallel, rows streamed contiguously within each. */
void fg_colsum_accumulate(float *dst_a, float *dst_b, const float *src, int64_t rows, int64_t cols) {
    if (!dst_a && !dst_b) return;
    const int64_t blk = 256, nblk = (cols + blk - 1) / blk;
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
    for (int64_t ob = 0; ob < nblk; ob++) {
        const int64_t o0 = ob * blk, o1 = o0 + blk < cols ? o0 + blk : cols;
        float acc[256];
        for (int64_t o = o0; o < o1; o++) acc[o - o0] = 0.0f;
        for (int64_t r = 0; r < rows; r++) {
            const float *row = src + r * cols;
#pragma omp simd
            for (int64_t o = o0; o < o1; o++) acc[o - o0] += row[o];
        }
        for (int64_t o = o0; o < o1; o++) {
            if (dst_a) dst_a[o] += acc[o - o0];
            if (dst_b) dst_b[o] += acc[o - o0];
        }
    }
}
