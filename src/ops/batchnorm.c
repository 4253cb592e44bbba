/* Batch normalisation over (N, HW) per channel, as torch.nn.functional.batch_norm / nn.BatchNorm2d
 * (BatchNorm1d on (N, C) is the case HW = 1).
 *
 * Shapes: inp, out, dout, dinp (N, C, HW); gamma, beta, running_mean, running_var, mean, invstd (C).
 * Every kernel is OpenMP-parallel over channels; a channel's N planes are visited in order and its
 * sums are kept in double (M = N*HW reaches 10^6 for early conv layers).
 *
 * Training: mean and biased variance of the batch; writes mean and invstd = 1/sqrt(var + eps)
 * (saved for backward); out = inp * a + b with a = gamma*invstd, b = beta - mean*a (PyTorch's CPU
 * form). Running stats (either may be NULL: track_running_stats=False) move with momentum m:
 *   running_mean = (1-m)*running_mean + m*mean,  running_var = (1-m)*running_var + m*var*M/(M-1).
 * With M = 1 the unbiased variance is undefined (PyTorch refuses to train then); we use the biased
 * one (0) rather than divide by zero.
 *
 * Backward, with xhat = (inp - mean)*invstd, sums over the channel's M values:
 *   dbeta += sum dout,  dgamma += sum dout*xhat,
 *   dinp = gamma*invstd * (dout - sum(dout)/M - xhat * sum(dout*xhat)/M)   (written). */
#include <math.h>

#include "frugal/ops.h"

void fg_batchnorm_forward_train(float *out, float *mean, float *invstd, float *running_mean,
                                float *running_var, const float *inp, const float *gamma,
                                const float *beta, int64_t N, int64_t C, int64_t HW, float momentum,
                                float eps) {
    const int64_t M = N * HW;
    FG_ASSERT(M > 0);
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; c++) {
        double sum = 0.0;
        for (int64_t n = 0; n < N; n++) {
            const float *x = inp + (n * C + c) * HW;
#pragma omp simd reduction(+ : sum)
            for (int64_t i = 0; i < HW; i++) sum += x[i];
        }
        const double mu = sum / (double)M;
        /* second pass around the mean: no cancellation when |mean| >> std */
        double sq = 0.0;
        for (int64_t n = 0; n < N; n++) {
            const float *x = inp + (n * C + c) * HW;
#pragma omp simd reduction(+ : sq)
            for (int64_t i = 0; i < HW; i++) {
                double t = (double)x[i] - mu;
                sq += t * t;
            }
        }
        const double var = sq / (double)M;
        const float istd = (float)(1.0 / sqrt(var + (double)eps));
        if (mean) mean[c] = (float)mu;
        if (invstd) invstd[c] = istd;
        if (running_mean) running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * (float)mu;
        if (running_var) {
            double unbiased = M > 1 ? sq / (double)(M - 1) : var;
            running_var[c] = (1.0f - momentum) * running_var[c] + momentum * (float)unbiased;
        }
        const float a = gamma[c] * istd, b = beta[c] - (float)mu * a;
        for (int64_t n = 0; n < N; n++) {
            const float *x = inp + (n * C + c) * HW;
            float *y = out + (n * C + c) * HW;
#pragma omp simd
            for (int64_t i = 0; i < HW; i++) y[i] = x[i] * a + b;
        }
    }
}

void fg_batchnorm_forward_eval(float *out, const float *inp, const float *gamma, const float *beta,
                               const float *running_mean, const float *running_var, int64_t N,
                               int64_t C, int64_t HW, float eps) {
    const int64_t planes = N * C;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        const int64_t c = p % C;
        const float istd = (float)(1.0 / sqrt((double)running_var[c] + (double)eps));
        const float a = gamma[c] * istd, b = beta[c] - running_mean[c] * a;
        const float *x = inp + p * HW;
        float *y = out + p * HW;
#pragma omp simd
        for (int64_t i = 0; i < HW; i++) y[i] = x[i] * a + b;
    }
}

void fg_batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                           const float *inp, const float *mean, const float *invstd,
                           const float *gamma, int64_t N, int64_t C, int64_t HW) {
    const int64_t M = N * HW;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; c++) {
        const float mu = mean[c], istd = invstd[c];
        double sdy = 0.0, sdyx = 0.0; /* sum dout, sum dout*(x - mean) */
        for (int64_t n = 0; n < N; n++) {
            const float *x = inp + (n * C + c) * HW, *g = dout + (n * C + c) * HW;
#pragma omp simd reduction(+ : sdy, sdyx)
            for (int64_t i = 0; i < HW; i++) {
                sdy += g[i];
                sdyx += (double)g[i] * ((double)x[i] - mu);
            }
        }
        const double sdyxhat = sdyx * istd; /* sum dout*xhat */
        if (dbeta) dbeta[c] += (float)sdy;
        if (dgamma) dgamma[c] += (float)sdyxhat;
        if (!dinp) continue;
        /* dinp = k*dout - k*mean(dout) - k*xhat*mean(dout*xhat), k = gamma*invstd, as one FMA form:
         * dinp = k*dout + q*(x - mean) + r */
        const float kk = gamma[c] * istd;
        const float r = (float)(-(double)kk * sdy / (double)M);
        const float q = (float)(-(double)kk * sdyxhat / (double)M * istd);
        for (int64_t n = 0; n < N; n++) {
            const float *x = inp + (n * C + c) * HW, *g = dout + (n * C + c) * HW;
            float *dx = dinp + (n * C + c) * HW;
#pragma omp simd
            for (int64_t i = 0; i < HW; i++) dx[i] = kk * g[i] + q * (x[i] - mu) + r;
        }
    }
}
