/* GEMM: every matrix product in frugal goes through here, to oneDNN's dnnl_sgemm (row-major),
 * measured at ~300 GFLOP/s on 2 cores. The naive twin is the reference for tests.
 *
 * Small products with few rows, our threading: outside a parallel region with more than one
 * thread, a product with at most SPLIT_MAX_M rows of C, at least SPLIT_MIN_N columns and fewer than
 * SPLIT_MACS multiply-adds is split by columns of C into one block per thread, every block at
 * least SPLIT_ALIGN columns wide and starting on a multiple of it, and every thread runs oneDNN's
 * sgemm on its block (oneDNN runs sequentially inside a parallel region). That is a vision
 * transformer's projections at batch 1, (197, 192) x (192, 576) and the like, where oneDNN's own
 * threading spends more time packing and synchronizing than multiplying. Measured (AMD EPYC, 2
 * cores, quiet, 2026-12-06, median of 300, us, oneDNN's 2 threads against the split): (197, 576,
 * 192) 152 -> 129, (197, 192, 192) 63 -> 55, (197, 768, 192) 179 -> 163, (197, 192, 768)
 * 208 -> 196, (64, 1024, 256) 148 -> 119, (64, 600, 600) 199 -> 154; no better at (20, 2600, 650)
 * (an LSTM's recurrent product: 590 -> 602, so it stays out by SPLIT_MACS) and much worse for
 * tall, narrow products such as SegFormer's (16384, 128, 32) (412 -> 797; out by SPLIT_MAX_M).
 * A block is never one column wide (oneDNN would take its matrix-vector kernel). The bits can
 * change with the thread count, as they could with oneDNN's own threading: oneDNN picks kernels
 * and K blocking by the product's shape, and a block is narrower than the whole (measured on 300
 * random products below the split: 4 differ from one thread's with AVX-512, 10 with AVX2; oneDNN's
 * own 2 threads: 6 and 0). tests/test_ops_dense.c compares both thread counts with the naive twin. */
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include "core/threads_impl.h"
#include "frugal/ops.h"

#define SPLIT_MACS (32.0 * 1000 * 1000)
#define SPLIT_MAX_M 512
#define SPLIT_MIN_N 64
#define SPLIT_ALIGN 16

static fg_status sgemm_call(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                            int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    dnnl_status_t st = dnnl_sgemm(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (st != dnnl_success)
        return fg_fail(FG_ERR_BACKEND, "dnnl_sgemm(%c%c, M=%lld N=%lld K=%lld) failed with status %d", transa,
                       transb, (long long)M, (long long)N, (long long)K, (int)st);
    return FG_OK;
}

/* Threads for a small product split by columns, or 0: let oneDNN thread it. At most one block per
 * SPLIT_ALIGN columns, so every block is at least that wide (block_start). */
static int split_threads(int64_t M, int64_t N, int64_t K) {
    const int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nt < 2 || M > SPLIT_MAX_M || N < SPLIT_MIN_N || (double)M * (double)N * (double)K >= SPLIT_MACS) return 0;
    return N / SPLIT_ALIGN < nt ? (int)(N / SPLIT_ALIGN) : nt;
}

/* First column of block i of nt: i * N / nt rounded down to SPLIT_ALIGN (N for i = nt). Blocks are
 * at least SPLIT_ALIGN wide when N / nt >= SPLIT_ALIGN. */
static int64_t block_start(int i, int nt, int64_t N) {
    return i == nt ? N : (int64_t)i * N / nt / SPLIT_ALIGN * SPLIT_ALIGN;
}

fg_status fg_sgemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                   int64_t ldc) {
    if (M == 0 || N == 0) return FG_OK;
    if (K == 0) { /* an empty sum: C = beta C (oneDNN 2.6 left C as it was in three of the four
                     transposes); beta 0 writes zeros, as BLAS does, whatever C held */
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return FG_OK;
    }
    fg_threads_ensure();
    const int nt = split_threads(M, N, K);
    if (!nt) return sgemm_call(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    const int tb = transb == 'T' || transb == 't';
    int failed = 0;
#pragma omp parallel num_threads(nt) reduction(| : failed)
    {
        /* the team the runtime gave (OMP_DYNAMIC, OMP_THREAD_LIMIT: it may be fewer than nt), so
         * that every column is some thread's */
        const int i = omp_get_thread_num(), got = omp_get_num_threads();
        const int64_t n0 = block_start(i, got, N), n = block_start(i + 1, got, N) - n0;
        failed |= sgemm_call(transa, transb, M, n, K, alpha, A, lda, tb ? B + n0 * ldb : B + n0, ldb, beta, C + n0,
                             ldc) != FG_OK;
    }
    /* a worker's message stayed on its own thread: say it again here */
    if (failed)
        return fg_fail(FG_ERR_BACKEND, "dnnl_sgemm(%c%c, M=%lld N=%lld K=%lld) failed in a column block", transa,
                       transb, (long long)M, (long long)N, (long long)K);
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
