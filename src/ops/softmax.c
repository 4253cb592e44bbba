/* Row-wise softmax and the fused softmax + cross-entropy loss of classifiers.
 *
 * softmax: out[r, :] = exp(inp[r, :] - max_r) / sum(exp(inp[r, :] - max_r)), rows (rows, cols).
 *   Subtracting the row maximum keeps exp from overflowing; the result is the same.
 *   backward (saves out): dinp[r, :] = out[r, :] * (dout[r, :] - sum_j dout[r, j] * out[r, j]), written.
 * xent (torch.nn.functional.cross_entropy with integer labels, reduction 'mean'):
 *   loss = (1 / B) * sum_b (logsumexp(logits[b, :]) - logits[b, labels[b]]), with
 *   logsumexp = max + log(sum exp(x - max)), so a confident wrong prediction gives a large finite
 *   loss instead of log(0); probs (B, C) = softmax(logits) are written and saved for backward.
 *   backward (saves probs, labels): dlogits = dloss * (probs - onehot(labels)) / B, written.
 * Rows are independent: OpenMP splits them when there is enough work. The loss is summed in
 * double (row losses in parallel, combined by an OpenMP reduction). */
#include <math.h>

#include "frugal/ops.h"

/* Elements below which the row loop stays on the calling thread. */
#define PAR_MIN 16384

/* Writes e[j] = exp(x[j] - max x) for one row of n >= 1 floats; returns max x, stores the sum of e. */
static float row_exp(float *e, const float *x, int64_t n, float *sum_out) {
    float mx = x[0];
    for (int64_t j = 1; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < n; j++) {
        e[j] = expf(x[j] - mx);
        sum += e[j];
    }
    *sum_out = sum;
    return mx;
}

void fg_softmax_forward(float *out, const float *inp, int64_t rows, int64_t cols) {
    if (cols <= 0) return;
#pragma omp parallel for schedule(static) if (rows > 1 && rows * cols > PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        float *o = out + r * cols;
        float sum;
        row_exp(o, inp + r * cols, cols, &sum);
        const float inv = 1.0f / sum;
#pragma omp simd
        for (int64_t j = 0; j < cols; j++) o[j] *= inv;
    }
}

void fg_softmax_backward(float *dinp, const float *dout, const float *out, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static) if (rows > 1 && rows * cols > PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *g = dout + r * cols, *y = out + r * cols;
        float *d = dinp + r * cols;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int64_t j = 0; j < cols; j++) dot += g[j] * y[j];
#pragma omp simd
        for (int64_t j = 0; j < cols; j++) d[j] = y[j] * (g[j] - dot);
    }
}

fg_status fg_xent_forward(float *loss, float *probs, const float *logits, const int32_t *labels, int64_t B,
                          int64_t C) {
    if (B <= 0 || C <= 0)
        return fg_fail(FG_ERR_SHAPE, "cross-entropy: logits (%lld, %lld), expected at least one row and one class",
                       (long long)B, (long long)C);
    for (int64_t b = 0; b < B; b++)
        if (labels[b] < 0 || labels[b] >= C)
            return fg_fail(FG_ERR_INVALID, "cross-entropy: row %lld has label %d, expected 0 <= label < %lld (classes)",
                           (long long)b, (int)labels[b], (long long)C);
    double total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total) if (B > 1 && B * C > PAR_MIN)
    for (int64_t b = 0; b < B; b++) {
        const float *x = logits + b * C;
        float *p = probs + b * C;
        float sum;
        const float mx = row_exp(p, x, C, &sum);
        const float inv = 1.0f / sum;
#pragma omp simd
        for (int64_t j = 0; j < C; j++) p[j] *= inv;
        /* -log softmax(x)[label] = logsumexp(x) - x[label] */
        total += ((double)mx - (double)x[labels[b]]) + log((double)sum); /* large logits: the difference first */
    }
    *loss = (float)(total / (double)B);
    return FG_OK;
}

void fg_xent_backward(float *dlogits, float dloss, const float *probs, const int32_t *labels, int64_t B, int64_t C) {
    const float scale = dloss / (float)B;
#pragma omp parallel for schedule(static) if (B > 1 && B * C > PAR_MIN)
    for (int64_t b = 0; b < B; b++) {
        const float *p = probs + b * C;
        float *d = dlogits + b * C;
#pragma omp simd
        for (int64_t j = 0; j < C; j++) d[j] = scale * p[j];
        FG_ASSERT_MSG(labels[b] >= 0 && labels[b] < C, "xent backward: label out of range (forward rejects it)");
        d[labels[b]] -= scale;
    }
}
