/* Linear (fully connected) layers and batched matrix products: the dense layers of MLPs, LSTMs
 * and transformers. Every product goes to fg_sgemm (oneDNN's sgemm); the `_naive` twins are plain
 * loops accumulating in double, the reference for tests.
 *
 * linear:  out (B, OC) = inp (B, IC) @ weight (OC, IC)^T + bias (OC)      (torch.nn.functional.linear)
 *   backward: dinp (B, IC)     = dout (B, OC) @ weight (OC, IC)            written
 *             dweight (OC, IC) += dout^T (OC, B) @ inp (B, IC)             accumulated (sgemm beta = 1)
 *             dbias (OC)       += sum over B of dout                       accumulated
 * matmul:  c (batch, M, N) = op(a) @ op(b) per batch item, op = transpose when the flag is set;
 *   a is stored (M, K), or (K, M) when trans_a; b is stored (K, N), or (N, K) when trans_b.
 *   backward: with dA = dc @ op(b)^T (M, K) and dB = op(a)^T @ dc (K, N), da and db are written in
 *   the storage layout of a and b (dA^T when trans_a, dB^T when trans_b). Both are inputs, so both
 *   are written, never accumulated.
 * Any gradient pointer may be NULL. Sizes may be 0: a product over an empty K yields zeros (or
 * leaves an accumulated gradient unchanged), which oneDNN would reject for its leading dimensions. */
#include <string.h>

#include "frugal/ops.h"

/* Below this many multiply-adds per matrix a batched matmul parallelises over the batch (one
 * single-threaded sgemm per item, oneDNN runs sequentially inside a parallel region); above it each
 * item's sgemm is threaded by oneDNN itself. */
#define MATMUL_SMALL_MACS (64.0 * 64.0 * 64.0)

/* C (M, N) = op(A) @ op(B) + beta * C through fg_sgemm, with K == 0 handled here: the product is
 * empty, so C becomes beta * C (zeros when beta is 0). */
static fg_status gemm(char ta, char tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                      const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M == 0 || N == 0) return FG_OK;
    if (K == 0) {
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return FG_OK;
    }
    return fg_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

static fg_status check_linear(const char *what, int64_t B, int64_t IC, int64_t OC) {
    if (B < 0 || IC < 0 || OC < 0)
        return fg_fail(FG_ERR_SHAPE, "%s: B = %lld, IC = %lld, OC = %lld, expected all >= 0", what, (long long)B,
                       (long long)IC, (long long)OC);
    return FG_OK;
}

/* ---------------------------------------------------------------- linear */

fg_status fg_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int64_t B,
                            int64_t IC, int64_t OC) {
    fg_status s = check_linear("linear forward", B, IC, OC);
    if (s != FG_OK) return s;
    if (B == 0 || OC == 0) return FG_OK;
    FG_ASSERT(out && (IC == 0 || (inp && weight)));
    /* Start each output row from the bias and let sgemm add the product (beta = 1). */
    float beta = 0.0f;
    if (bias) {
        for (int64_t b = 0; b < B; b++) memcpy(out + b * OC, bias, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    s = gemm('N', 'T', B, OC, IC, inp, IC, weight, IC, beta, out, OC);
    if (s != FG_OK) return fg_fail(s, "linear forward (B %lld, IC %lld, OC %lld): %s", (long long)B, (long long)IC,
                                   (long long)OC, fg_last_error());
    return FG_OK;
}

fg_status fg_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                             const float *weight, int64_t B, int64_t IC, int64_t OC) {
    fg_status s = check_linear("linear backward", B, IC, OC);
    if (s != FG_OK) return s;
    if (dinp) s = gemm('N', 'N', B, IC, OC, dout, OC, weight, IC, 0.0f, dinp, IC);
    if (s == FG_OK && dweight) s = gemm('T', 'N', OC, IC, B, dout, OC, inp, IC, 1.0f, dweight, IC);
    if (s != FG_OK) return fg_fail(s, "linear backward (B %lld, IC %lld, OC %lld): %s", (long long)B, (long long)IC,
                                   (long long)OC, fg_last_error());
    if (dbias && B > 0 && OC > 0) fg_colsum_accumulate(dbias, NULL, dout, B, OC);
    return FG_OK;
}

void fg_linear_forward_naive(float *out, const float *inp, const float *weight, const float *bias, int64_t B,
                             int64_t IC, int64_t OC) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t o = 0; o < OC; o++) {
            double acc = bias ? bias[o] : 0.0;
            for (int64_t i = 0; i < IC; i++) acc += (double)inp[b * IC + i] * weight[o * IC + i];
            out[b * OC + o] = (float)acc;
        }
}

void fg_linear_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                              const float *weight, int64_t B, int64_t IC, int64_t OC) {
    if (dinp)
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < IC; i++) {
                double acc = 0.0;
                for (int64_t o = 0; o < OC; o++) acc += (double)dout[b * OC + o] * weight[o * IC + i];
                dinp[b * IC + i] = (float)acc;
            }
    if (dweight)
        for (int64_t o = 0; o < OC; o++)
            for (int64_t i = 0; i < IC; i++) {
                double acc = 0.0;
                for (int64_t b = 0; b < B; b++) acc += (double)dout[b * OC + o] * inp[b * IC + i];
                dweight[o * IC + i] += (float)acc;
            }
    if (dbias)
        for (int64_t o = 0; o < OC; o++) {
            double acc = 0.0;
            for (int64_t b = 0; b < B; b++) acc += dout[b * OC + o];
            dbias[o] += (float)acc;
        }
}

double fg_linear_flops(int64_t B, int64_t IC, int64_t OC) { return 2.0 * (double)B * (double)IC * (double)OC; }

/* ---------------------------------------------------------------- matmul */

/* One product per batch item: C_i (M, N) = op(A_i) @ op(B_i), item strides sa, sb, sc in floats.
 * Small items run in parallel over the batch; large ones one after another, each threaded. */
static fg_status batched_gemm(const char *what, int64_t batch, char ta, char tb, int64_t M, int64_t N, int64_t K,
                              const float *A, int64_t lda, int64_t sa, const float *B, int64_t ldb, int64_t sb,
                              float *C, int64_t ldc, int64_t sc) {
    if (batch > 1 && (double)M * (double)N * (double)K < MATMUL_SMALL_MACS) {
        int64_t failed = -1;
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t i = 0; i < batch; i++) {
            if (gemm(ta, tb, M, N, K, A + i * sa, lda, B + i * sb, ldb, 0.0f, C + i * sc, ldc) != FG_OK) {
#pragma omp critical(fg_matmul_failed)
                failed = i;
            }
        }
        /* the worker's message stayed on its own thread: name the failure again here */
        if (failed >= 0)
            return fg_fail(FG_ERR_BACKEND, "%s: sgemm (%c%c, M %lld, N %lld, K %lld) failed for batch item %lld", what,
                           ta, tb, (long long)M, (long long)N, (long long)K, (long long)failed);
        return FG_OK;
    }
    for (int64_t i = 0; i < batch; i++) {
        fg_status s = gemm(ta, tb, M, N, K, A + i * sa, lda, B + i * sb, ldb, 0.0f, C + i * sc, ldc);
        if (s != FG_OK) return fg_fail(s, "%s, batch item %lld: %s", what, (long long)i, fg_last_error());
    }
    return FG_OK;
}

static fg_status check_matmul(const char *what, int64_t batch, int64_t M, int64_t K, int64_t N) {
    if (batch < 0 || M < 0 || K < 0 || N < 0)
        return fg_fail(FG_ERR_SHAPE, "%s: batch = %lld, M = %lld, K = %lld, N = %lld, expected all >= 0", what,
                       (long long)batch, (long long)M, (long long)K, (long long)N);
    return FG_OK;
}

fg_status fg_matmul_forward(float *c, const float *a, const float *b, int64_t batch, int64_t M, int64_t K, int64_t N,
                            int trans_a, int trans_b) {
    fg_status s = check_matmul("matmul forward", batch, M, K, N);
    if (s != FG_OK) return s;
    const int64_t lda = trans_a ? M : K, ldb = trans_b ? K : N;
    return batched_gemm("matmul forward", batch, trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, a, lda, M * K, b,
                        ldb, K * N, c, N, M * N);
}

fg_status fg_matmul_backward(float *da, float *db, const float *dc, const float *a, const float *b, int64_t batch,
                             int64_t M, int64_t K, int64_t N, int trans_a, int trans_b) {
    fg_status s = check_matmul("matmul backward", batch, M, K, N);
    if (s != FG_OK) return s;
    const int64_t lda = trans_a ? M : K, ldb = trans_b ? K : N;
    if (da) {
        if (!trans_a) /* da (M, K) = dc (M, N) @ op(b)^T; op(b)^T is stored b read with the flag flipped */
            s = batched_gemm("matmul backward da", batch, 'N', trans_b ? 'N' : 'T', M, K, N, dc, N, M * N, b, ldb,
                             K * N, da, K, M * K);
        else /* da (K, M) = (dc @ op(b)^T)^T = op(b) (K, N) @ dc^T (N, M) */
            s = batched_gemm("matmul backward da", batch, trans_b ? 'T' : 'N', 'T', K, M, N, b, ldb, K * N, dc, N,
                             M * N, da, M, M * K);
        if (s != FG_OK) return s;
    }
    if (db) {
        if (!trans_b) /* db (K, N) = op(a)^T (K, M) @ dc (M, N) */
            s = batched_gemm("matmul backward db", batch, trans_a ? 'N' : 'T', 'N', K, N, M, a, lda, M * K, dc, N,
                             M * N, db, N, K * N);
        else /* db (N, K) = (op(a)^T @ dc)^T = dc^T (N, M) @ op(a) (M, K) */
            s = batched_gemm("matmul backward db", batch, 'T', trans_a ? 'T' : 'N', N, K, M, dc, N, M * N, a, lda,
                             M * K, db, K, K * N);
    }
    return s;
}

void fg_matmul_forward_naive(float *c, const float *a, const float *b, int64_t batch, int64_t M, int64_t K, int64_t N,
                             int trans_a, int trans_b) {
    for (int64_t i = 0; i < batch; i++) {
        const float *ai = a + i * M * K, *bi = b + i * K * N;
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double acc = 0.0;
                for (int64_t k = 0; k < K; k++) {
                    float x = trans_a ? ai[k * M + m] : ai[m * K + k];
                    float y = trans_b ? bi[n * K + k] : bi[k * N + n];
                    acc += (double)x * y;
                }
                c[i * M * N + m * N + n] = (float)acc;
            }
    }
}

double fg_matmul_flops(int64_t batch, int64_t M, int64_t K, int64_t N) {
    return 2.0 * (double)batch * (double)M * (double)K * (double)N;
}
