/* What oneDNN's sgemm (fg_sgemm) reaches on this machine: a large square product, then every GEMM
 * of one forward+backward of a stacked LSTM as src/ops/lstm.c issues it (same shapes, same
 * transposes, h0 given as PyTorch's peer gives it), and their sum over the whole step: the time
 * the step's GEMMs alone take at the speed each reaches here, i.e. the floor under any LSTM built on
 * these products, ours or PyTorch's (which issues the same ones through its BLAS).
 * Usage: sgemm_peak [--threads N] [--hidden H] [--batch B] [--steps T] [--layers L]
 *        (defaults 2 threads, H 650, B 64, T 35, 2 layers; the first layer's input size is H)
 * Each shape: the best of 5 rounds of enough repetitions for ~20 GFLOP, after one warm-up call.
 * First, the machine's own ceiling: one thread's FMA throughput on registers alone (12 independent
 * chains of fused multiply-adds, the widest vectors the CPU has: AVX-512 or AVX2), times the
 * threads, is what no product can beat. */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/frugal.h"

/* 12 chains of n fused multiply-adds each on 16-float (AVX-512) or 8-float (AVX2) registers;
 * returns GFLOP/s of one thread. The chains' sum is returned through *sink so nothing is elided. */
__attribute__((target("avx512f"))) static double fma_peak_avx512(long n, float *sink) {
    __m512 a[12];
    const __m512 b = _mm512_set1_ps(1.0000001f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps((float)i);
    const double t0 = fg_time_now();
    for (long k = 0; k < n; k++) {
#pragma GCC unroll 12 /* the 12 chains stay in registers */
        for (int i = 0; i < 12; i++) a[i] = _mm512_fmadd_ps(a[i], b, c);
    }
    const double t = fg_time_now() - t0;
    float s = 0.0f;
    for (int i = 0; i < 12; i++) s += _mm512_reduce_add_ps(a[i]);
    *sink = s;
    return (double)n * 12.0 * 16.0 * 2.0 / t * 1e-9;
}

__attribute__((target("avx2,fma"))) static double fma_peak_avx2(long n, float *sink) {
    __m256 a[12];
    const __m256 b = _mm256_set1_ps(1.0000001f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
    const double t0 = fg_time_now();
    for (long k = 0; k < n; k++) {
#pragma GCC unroll 12 /* the 12 chains stay in registers */
        for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], b, c);
    }
    const double t = fg_time_now() - t0;
    float lane[8], s = 0.0f;
    for (int i = 0; i < 12; i++) {
        _mm256_storeu_ps(lane, a[i]);
        for (int j = 0; j < 8; j++) s += lane[j];
    }
    *sink = s;
    return (double)n * 12.0 * 8.0 * 2.0 / t * 1e-9;
}

typedef struct shape {
    const char *what;
    char ta, tb;
    int64_t m, n, k, calls; /* calls per layer and step */
    float beta;
} shape;

/* Best time of one call, in seconds; < 0 on failure. */
static double time_gemm(const shape *s) {
    const int64_t M = s->m, N = s->n, K = s->k;
    const int64_t lda = s->ta == 'N' ? K : M, ldb = s->tb == 'N' ? N : K;
    float *a = malloc((size_t)(M * K) * sizeof(float)), *b = malloc((size_t)(K * N) * sizeof(float));
    float *c = calloc((size_t)(M * N), sizeof(float));
    double best = -1.0;
    if (a && b && c) {
        for (int64_t i = 0; i < M * K; i++) a[i] = 0.001f * (float)(i % 7);
        for (int64_t i = 0; i < K * N; i++) b[i] = 0.001f * (float)(i % 5);
        const double flop = 2.0 * (double)M * (double)N * (double)K;
        const int reps = (int)(2e10 / flop) + 1;
        if (fg_sgemm(s->ta, s->tb, M, N, K, 1.0f, a, lda, b, ldb, s->beta, c, N) == FG_OK) {
            best = 1e30;
            for (int r = 0; r < 5; r++) {
                const double t0 = fg_time_now();
                for (int i = 0; i < reps; i++) fg_sgemm(s->ta, s->tb, M, N, K, 1.0f, a, lda, b, ldb, s->beta, c, N);
                const double t = (fg_time_now() - t0) / reps;
                if (t < best) best = t;
            }
        }
    }
    free(a);
    free(b);
    free(c);
    return best;
}

int main(int argc, char **argv) {
    int threads = 2, layers = 2;
    int64_t H = 650, B = 64, T = 35;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--hidden") == 0 && i + 1 < argc) H = atoll(argv[++i]);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) B = atoll(argv[++i]);
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) T = atoll(argv[++i]);
        else if (strcmp(argv[i], "--layers") == 0 && i + 1 < argc) layers = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: sgemm_peak [--threads N] [--hidden H] [--batch B] [--steps T] [--layers L]\n");
            return 2;
        }
    }
    if (threads < 1 || H < 1 || B < 1 || T < 2 || layers < 1) {
        fprintf(stderr, "sgemm_peak: --threads, --hidden, --batch, --layers must be >= 1, --steps >= 2\n");
        return 2;
    }
    fg_threads_set(threads);
    const int64_t G = 4 * H, TB = T * B;
    const shape square = {"square", 'N', 'N', 2048, 2048, 2048, 0, 1.0f};
    const shape step[] = {
        {"forward: input GEMM X W_ih^T", 'N', 'T', TB, G, H, 1, 0.0f},
        {"forward: recurrent h W_hh^T (W_hh^T made once)", 'N', 'N', B, G, H, T, 1.0f},
        {"backward: recurrent dG_t W_hh", 'N', 'N', B, H, G, T, 0.0f},
        {"backward: dW_ih += dG^T X", 'T', 'N', G, H, TB, 1, 1.0f},
        {"backward: dW_hh += dG[1:]^T h[:-1]", 'T', 'N', G, H, TB - B, 1, 1.0f},
        {"backward: dW_hh += dG[0]^T h0", 'T', 'N', G, H, B, 1, 1.0f},
        {"backward: dx = dG W_ih", 'N', 'N', TB, H, G, 1, 0.0f},
    };
    printf("command: sgemm_peak --threads %d --hidden %lld --batch %lld --steps %lld --layers %d\n"
           "(fg_sgemm = oneDNN dnnl_sgemm; an LSTM of %d layers, input %lld, hidden %lld, T %lld, B %lld)\n\n",
           threads, (long long)H, (long long)B, (long long)T, layers, layers, (long long)H, (long long)H,
           (long long)T, (long long)B);
    float sink = 0.0f;
    const int wide = __builtin_cpu_supports("avx512f");
    double fma = 0.0;
    for (int r = 0; r < 3; r++) { /* best of 3 rounds of ~0.5 s */
        const double g = wide ? fma_peak_avx512(100000000L, &sink) : fma_peak_avx2(100000000L, &sink);
        if (g > fma) fma = g;
    }
    printf("FMA throughput on registers, one thread (%s): %.1f GFLOP/s; x %d threads = %.1f GFLOP/s, the ceiling "
           "(checksum %g)\n\n", wide ? "AVX-512" : "AVX2", fma, threads, fma * threads, (double)sink);
    printf("| product | op | M | N | K | calls per step | ms per call | GFLOP/s |\n|---|---|---|---|---|---|---|---|\n");
    const double tsq = time_gemm(&square);
    if (tsq < 0) {
        fprintf(stderr, "sgemm_peak: %s\n", fg_last_error());
        return 1;
    }
    printf("| %s | NN | 2048 | 2048 | 2048 | - | %.3f | %.1f |\n", square.what, tsq * 1e3, 2.0 * 2048 * 2048 * 2048 / tsq * 1e-9);
    double fwd = 0.0, bwd = 0.0, flop = 0.0;
    for (size_t s = 0; s < sizeof step / sizeof step[0]; s++) {
        const shape *p = &step[s];
        const double t = time_gemm(p);
        if (t < 0) {
            fprintf(stderr, "sgemm_peak: %s: %s\n", p->what, fg_last_error());
            return 1;
        }
        const double f = 2.0 * (double)p->m * (double)p->n * (double)p->k;
        printf("| %s | %c%c | %lld | %lld | %lld | %lld x %d | %.3f | %.1f |\n", p->what, p->ta, p->tb, (long long)p->m,
               (long long)p->n, (long long)p->k, (long long)p->calls, layers, t * 1e3, f / t * 1e-9);
        *(s < 2 ? &fwd : &bwd) += t * (double)p->calls * layers;
        flop += f * (double)p->calls * layers;
    }
    printf("\nthe step's GEMMs alone: forward %.1f ms + backward %.1f ms = %.1f ms (%.1f GFLOP at %.1f GFLOP/s)\n",
           fwd * 1e3, bwd * 1e3, (fwd + bwd) * 1e3, flop * 1e-9, flop / (fwd + bwd) * 1e-9);
    printf("an LSTM built on these products is 2x a peer only if the peer's forward+backward takes >= %.1f ms\n",
           2.0 * (fwd + bwd) * 1e3);
    printf("at the FMA ceiling (every product at %.0f GFLOP/s) the step's GEMMs would take %.1f ms: 2x a peer of >= %.1f "
           "ms\n", fma * threads, flop / (fma * threads * 1e9) * 1e3, 2.0 * flop / (fma * threads * 1e9) * 1e3);
    return 0;
}
