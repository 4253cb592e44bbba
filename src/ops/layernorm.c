/* Layer normalisation over the last dimension, as torch.nn.functional.layer_norm(inp, (C,), weight,
 * bias, eps): the normalisation of every transformer block (ViT, SegFormer) and of the LSTM variants.
 *
 * Shapes: inp, out, dout, dinp (rows, C), rows = every leading dimension flattened (B*T for tokens);
 * weight, bias, dweight, dbias (C); mean, rstd (rows).
 * Forward: mean_r = sum_c x / C, var_r = sum_c (x - mean_r)^2 / C (biased, as torch),
 *   rstd_r = 1 / sqrt(var_r + eps), out = (x - mean_r) * rstd_r * weight + bias.
 *   weight NULL means 1, bias NULL means 0 (elementwise_affine = False). mean and rstd are written
 *   for backward; either may be NULL when no backward follows.
 * Backward (saves inp, weight, mean, rstd), with xhat = (x - mean_r) * rstd_r and g = dout * weight:
 *   dinp = rstd_r * (g - mean_c(g) - xhat * mean_c(g * xhat))   written
 *   dweight += sum_r dout * xhat,  dbias += sum_r dout           accumulated
 * The row mean is summed in double, the variance around it in float.
 * Threads: forward and dinp are OpenMP-parallel over rows (each row's loops vectorise). dweight and
 * dbias are a second, column-parallel pass (blocks of columns, rows streamed in order, sums in
 * double) that recomputes xhat from mean/rstd: race-free, needs no scratch memory, and gives the
 * same bits for any thread count. */
#include <math.h>

#include "frugal/ops.h"
#include "par_impl.h"

/* Loops go parallel past FG_PAR_MIN_ROWS elements (par_impl.h). */
/* Column block of the dweight/dbias pass: the double accumulators live on the stack. */
#define COL_BLOCK_MAX 256

void fg_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                          const float *bias, int64_t rows, int64_t C, float eps) {
    FG_ASSERT(rows >= 0 && C >= 1);
#pragma omp parallel for schedule(static) if (rows > 1 && rows * C > FG_PAR_MIN_ROWS)
    for (int64_t r = 0; r < rows; r++) {
        const float *x = inp + r * C;
        float *y = out + r * C;
        /* the mean in double: a float sum of C values far from 0 would be off by ~sqrt(C) ulps of it */
        double sum = 0.0;
#pragma omp simd reduction(+ : sum)
        for (int64_t c = 0; c < C; c++) sum += x[c];
        const float mu = (float)(sum / (double)C);
        /* second pass around the mean: no cancellation when |mean| >> std */
        float sq = 0.0f;
#pragma omp simd reduction(+ : sq)
        for (int64_t c = 0; c < C; c++) {
            const float t = x[c] - mu;
            sq += t * t;
        }
        const float rs = 1.0f / sqrtf(sq / (float)C + eps);
        if (mean) mean[r] = mu;
        if (rstd) rstd[r] = rs;
        if (weight && bias) {
#pragma omp simd
            for (int64_t c = 0; c < C; c++) y[c] = (x[c] - mu) * rs * weight[c] + bias[c];
        } else if (weight) {
#pragma omp simd
            for (int64_t c = 0; c < C; c++) y[c] = (x[c] - mu) * rs * weight[c];
        } else if (bias) {
#pragma omp simd
            for (int64_t c = 0; c < C; c++) y[c] = (x[c] - mu) * rs + bias[c];
        } else {
#pragma omp simd
            for (int64_t c = 0; c < C; c++) y[c] = (x[c] - mu) * rs;
        }
    }
}

void fg_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                           const float *weight, const float *mean, const float *rstd, int64_t rows, int64_t C) {
    FG_ASSERT(rows >= 0 && C >= 1);
    if (dinp) {
        const float invC = 1.0f / (float)C;
#pragma omp parallel for schedule(static) if (rows > 1 && rows * C > FG_PAR_MIN_ROWS)
        for (int64_t r = 0; r < rows; r++) {
            const float *x = inp + r * C, *dy = dout + r * C;
            float *dx = dinp + r * C;
            const float mu = mean[r], rs = rstd[r];
            float sg = 0.0f, sgx = 0.0f; /* sum g, sum g * xhat */
            if (weight) {
#pragma omp simd reduction(+ : sg, sgx)
                for (int64_t c = 0; c < C; c++) {
                    const float g = dy[c] * weight[c];
                    sg += g;
                    sgx += g * (x[c] - mu) * rs;
                }
                const float a = sg * invC, b = sgx * invC;
#pragma omp simd
                for (int64_t c = 0; c < C; c++) dx[c] = rs * (dy[c] * weight[c] - a - (x[c] - mu) * rs * b);
            } else {
#pragma omp simd reduction(+ : sg, sgx)
                for (int64_t c = 0; c < C; c++) {
                    sg += dy[c];
                    sgx += dy[c] * (x[c] - mu) * rs;
                }
                const float a = sg * invC, b = sgx * invC;
#pragma omp simd
                for (int64_t c = 0; c < C; c++) dx[c] = rs * (dy[c] - a - (x[c] - mu) * rs * b);
            }
        }
    }
    if ((dweight || dbias) && rows > 0) {
        /* Enough blocks that two threads (or more) share the columns evenly, 16-float aligned. */
        const int nt = fg_threads_get();
        int64_t blk = (C + 4 * (int64_t)nt - 1) / (4 * (int64_t)nt);
        blk = (blk + 15) / 16 * 16;
        if (blk > COL_BLOCK_MAX) blk = COL_BLOCK_MAX;
        const int64_t nblk = (C + blk - 1) / blk;
#pragma omp parallel for schedule(static) if (nblk > 1 && rows * C > FG_PAR_MIN_ROWS)
        for (int64_t cb = 0; cb < nblk; cb++) {
            const int64_t c0 = cb * blk, n = c0 + blk < C ? blk : C - c0;
            double accw[COL_BLOCK_MAX], accb[COL_BLOCK_MAX];
            for (int64_t c = 0; c < n; c++) accw[c] = accb[c] = 0.0;
            for (int64_t r = 0; r < rows; r++) {
                const float *x = inp + r * C + c0, *dy = dout + r * C + c0;
                const float mu = mean[r], rs = rstd[r];
#pragma omp simd
                for (int64_t c = 0; c < n; c++) {
                    accw[c] += (double)(dy[c] * ((x[c] - mu) * rs));
                    accb[c] += (double)dy[c];
                }
            }
            if (dweight)
                for (int64_t c = 0; c < n; c++) dweight[c0 + c] += (float)accw[c];
            if (dbias)
                for (int64_t c = 0; c < n; c++) dbias[c0 + c] += (float)accb[c];
        }
    }
}

void fg_layernorm_forward_naive(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                                const float *bias, int64_t rows, int64_t C, float eps) {
    for (int64_t r = 0; r < rows; r++) {
        const float *x = inp + r * C;
        double mu = 0.0, var = 0.0;
        for (int64_t c = 0; c < C; c++) mu += x[c];
        mu /= (double)C;
        for (int64_t c = 0; c < C; c++) var += ((double)x[c] - mu) * ((double)x[c] - mu);
        var /= (double)C;
        const double rs = 1.0 / sqrt(var + (double)eps);
        if (mean) mean[r] = (float)mu;
        if (rstd) rstd[r] = (float)rs;
        for (int64_t c = 0; c < C; c++) {
            double y = ((double)x[c] - mu) * rs;
            if (weight) y *= weight[c];
            if (bias) y += bias[c];
            out[r * C + c] = (float)y;
        }
    }
}

void fg_layernorm_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                                 const float *weight, const float *mean, const float *rstd, int64_t rows,
                                 int64_t C) {
    for (int64_t r = 0; r < rows; r++) {
        const float *x = inp + r * C, *dy = dout + r * C;
        const double mu = mean[r], rs = rstd[r];
        double sg = 0.0, sgx = 0.0;
        for (int64_t c = 0; c < C; c++) {
            const double g = (double)dy[c] * (weight ? weight[c] : 1.0f), xh = ((double)x[c] - mu) * rs;
            sg += g;
            sgx += g * xh;
        }
        for (int64_t c = 0; c < C; c++) {
            const double g = (double)dy[c] * (weight ? weight[c] : 1.0f), xh = ((double)x[c] - mu) * rs;
            if (dinp) dinp[r * C + c] = (float)(rs * (g - sg / (double)C - xh * sgx / (double)C));
        }
    }
    for (int64_t c = 0; c < C; c++) {
        double sw = 0.0, sb = 0.0;
        for (int64_t r = 0; r < rows; r++) {
            const double dy = dout[r * C + c];
            sw += dy * (((double)inp[r * C + c] - mean[r]) * rstd[r]);
            sb += dy;
        }
        if (dweight) dweight[c] += (float)sw;
        if (dbias) dbias[c] += (float)sb;
    }
}
