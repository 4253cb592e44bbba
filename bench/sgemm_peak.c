/* What oneDNN's sgemm (fg_sgemm) reaches on this machine, on a large square product and on the
 * shapes of an LSTM's forward (the input GEMM over all steps, the per-step recurrent GEMM at batch
 * 64 and 20): the ceiling any dense LSTM, ours or PyTorch's, works under.
 * Usage: sgemm_peak [--threads T] [--hidden H]   (defaults 2 threads, H 650, T 35)
 * Each shape: the best of 5 rounds of enough repetitions for ~40 GFLOP, after one warm-up call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/frugal.h"

int main(int argc, char **argv) {
    int threads = 2;
    int64_t H = 650, T = 35;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--hidden") == 0 && i + 1 < argc) H = atoll(argv[++i]);
        else {
            fprintf(stderr, "usage: sgemm_peak [--threads T] [--hidden H]\n");
            return 2;
        }
    }
    if (threads < 1 || H < 1) {
        fprintf(stderr, "sgemm_peak: --threads and --hidden must be >= 1\n");
        return 2;
    }
    fg_threads_set(threads);
    const struct {
        const char *what;
        int64_t m, n, k;
    } shapes[] = {
        {"square", 2048, 2048, 2048},
        {"LSTM input GEMM (T*64, H) x (H, 4H)", T * 64, 4 * H, H},
        {"LSTM recurrent GEMM (64, H) x (H, 4H)", 64, 4 * H, H},
        {"LSTM recurrent GEMM (20, H) x (H, 4H)", 20, 4 * H, H},
    };
    printf("command: sgemm_peak --threads %d --hidden %lld   (fg_sgemm = oneDNN dnnl_sgemm, 'N','N', beta 1)\n\n",
           threads, (long long)H);
    printf("| shape | M | N | K | GFLOP/s |\n|---|---|---|---|---|\n");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t M = shapes[s].m, N = shapes[s].n, K = shapes[s].k;
        float *a = malloc((size_t)(M * K) * sizeof(float)), *b = malloc((size_t)(K * N) * sizeof(float));
        float *c = calloc((size_t)(M * N), sizeof(float));
        if (!a || !b || !c) {
            fprintf(stderr, "sgemm_peak: out of memory\n");
            return 1;
        }
        for (int64_t i = 0; i < M * K; i++) a[i] = 0.001f * (float)(i % 7);
        for (int64_t i = 0; i < K * N; i++) b[i] = 0.001f * (float)(i % 5);
        const double flop = 2.0 * (double)M * (double)N * (double)K;
        const int reps = (int)(4e10 / flop) + 1;
        if (fg_sgemm('N', 'N', M, N, K, 1.0f, a, K, b, N, 0.0f, c, N) != FG_OK) {
            fprintf(stderr, "sgemm_peak: %s\n", fg_last_error());
            return 1;
        }
        double best = 1e30;
        for (int r = 0; r < 5; r++) {
            const double t0 = fg_time_now();
            for (int i = 0; i < reps; i++) fg_sgemm('N', 'N', M, N, K, 1.0f, a, K, b, N, 1.0f, c, N);
            const double t = (fg_time_now() - t0) / reps;
            if (t < best) best = t;
        }
        printf("| %s | %lld | %lld | %lld | %.1f |\n", shapes[s].what, (long long)M, (long long)N, (long long)K,
               flop / best * 1e-9);
        free(a);
        free(b);
        free(c);
    }
    return 0;
}
