/* bench/lstm_sparse: forward and backward time of one fused LSTM layer (src/ops/lstm.c) at
 * PTB-like sizes, dense and with the sparsified backwards of fg_lstm_backward_sparse at several
 * drop fractions: "step" (structured, kept blocks chosen per step: only the recurrent GEMM
 * shrinks), "structured" (one kept set per call: every backward GEMM shrinks) and "meprop"
 * (unified top-k of the gate columns per step), against PyTorch 1.13's nn.LSTM measured in the
 * same run (bench/peer_lstm.py, with OPENBLAS_CORETYPE=COOPERLAKE and the same thread count).
 * Times are medians over --iters runs after --warmup. Prints a markdown table and the command.
 *
 *   build/bench/lstm_sparse [--threads 2] [--iters 5] [--warmup 2] [--block 16] [--no-peer] [T:B:H[:I] ...]
 * default: 35:32:650 35:64:650 35:32:1500 35:64:1500 (I = H when left out); drops 0.5, 0.8, 0.9 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/frugal.h"

/* configuration 0 is the dense backward, then every variant at every drop */
#define N_DROPS 10
static const float DROPS[N_DROPS] = {0.0f, 0.5f, 0.5f, 0.5f, 0.8f, 0.8f, 0.8f, 0.9f, 0.9f, 0.9f};
static const fg_lstm_bwd VARS[N_DROPS] = {FG_LSTM_BWD_DENSE,      FG_LSTM_BWD_STEP,       FG_LSTM_BWD_STRUCTURED,
                                          FG_LSTM_BWD_MEPROP,     FG_LSTM_BWD_STEP,       FG_LSTM_BWD_STRUCTURED,
                                          FG_LSTM_BWD_MEPROP,     FG_LSTM_BWD_STEP,       FG_LSTM_BWD_STRUCTURED,
                                          FG_LSTM_BWD_MEPROP};

typedef struct result {
    fg_lstm_desc d;
    double fwd_ms, bwd_ms[N_DROPS], bwd_flops[N_DROPS], kept[N_DROPS];
    double peer_fwd_ms, peer_bwd_ms;
    int peer_ok;
} result;

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static float *rand_buf(size_t n, float lo, float hi, fg_rng *rng) {
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * fg_rng_uniform(rng);
    return p;
}

static int run_ours(result *r, int iters, int warmup, int64_t block) {
    const fg_lstm_desc *d = &r->d;
    const int64_t T = d->T, B = d->B, I = d->I, H = d->H;
    const size_t nx = (size_t)(T * B * I), nbh = (size_t)(B * H), ny = (size_t)(T * B * H);
    const size_t nwi = (size_t)(4 * H * I), nwh = (size_t)(4 * H * H);
    fg_rng rng;
    fg_rng_seed(&rng, 1);
    const float k = 1.0f / sqrtf((float)H);
    float *x = rand_buf(nx, -1, 1, &rng), *h0 = rand_buf(nbh, -1, 1, &rng), *c0 = rand_buf(nbh, -1, 1, &rng);
    float *w_ih = rand_buf(nwi, -k, k, &rng), *w_hh = rand_buf(nwh, -k, k, &rng);
    float *b_ih = rand_buf((size_t)(4 * H), -k, k, &rng), *b_hh = rand_buf((size_t)(4 * H), -k, k, &rng);
    float *dy = rand_buf(ny, -1, 1, &rng);
    float *y = malloc(ny * sizeof(float)), *saved = malloc(fg_lstm_saved_bytes(d));
    float *dx = malloc(nx * sizeof(float)), *dh0 = malloc(nbh * sizeof(float)), *dc0 = malloc(nbh * sizeof(float));
    float *dw_ih = calloc(nwi, sizeof(float)), *dw_hh = calloc(nwh, sizeof(float));
    float *db_ih = calloc((size_t)(4 * H), sizeof(float)), *db_hh = calloc((size_t)(4 * H), sizeof(float));
    size_t ws_bytes = fg_lstm_workspace_bytes(d);
    for (int i = 0; i < N_DROPS; i++) {
        const fg_lstm_sparsity sp = {.drop = DROPS[i], .block = block, .variant = VARS[i]};
        const size_t w = fg_lstm_sparse_workspace_bytes(d, &sp);
        if (w == 0) {
            fprintf(stderr, "lstm_sparse: %s\n", fg_last_error());
            return 0;
        }
        if (w > ws_bytes) ws_bytes = w;
    }
    void *ws = malloc(ws_bytes);
    double *t = malloc((size_t)iters * sizeof(double));
    for (int it = 0; it < warmup + iters; it++) {
        double t0 = fg_time_now();
        if (fg_lstm_forward(y, NULL, NULL, saved, x, h0, c0, w_ih, w_hh, b_ih, b_hh, d, ws, ws_bytes) != FG_OK) {
            fprintf(stderr, "lstm_sparse: %s\n", fg_last_error());
            return 0;
        }
        if (it >= warmup) t[it - warmup] = fg_time_now() - t0;
    }
    r->fwd_ms = median(t, iters) * 1e3;
    /* Round robin: every iteration runs each configuration once, so that the load of a shared
     * machine drifting during the run hits every configuration alike. */
    double *tb = malloc((size_t)(iters * N_DROPS) * sizeof(double));
    fg_lstm_sparse_stats st[N_DROPS];
    memset(st, 0, sizeof st);
    for (int it = 0; it < warmup + iters; it++)
        for (int i = 0; i < N_DROPS; i++) {
            const fg_lstm_sparsity sp = {.drop = DROPS[i], .block = block, .variant = VARS[i]};
            double t0 = fg_time_now();
            fg_status s = i == 0 ? fg_lstm_backward(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dy, NULL, NULL, x, h0, c0,
                                                    w_ih, w_hh, y, saved, d, ws, ws_bytes)
                                 : fg_lstm_backward_sparse(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dy, NULL, NULL, x,
                                                           h0, c0, w_ih, w_hh, y, saved, d, ws, ws_bytes, &sp, &st[i]);
            if (s != FG_OK) {
                fprintf(stderr, "lstm_sparse: %s\n", fg_last_error());
                return 0;
            }
            if (it >= warmup) tb[i * iters + it - warmup] = fg_time_now() - t0;
        }
    { /* the dense backward's GEMM FLOPs: the dense variant through the sparse entry fills the stats */
        const fg_lstm_sparsity sp = {.drop = 0.0f, .block = block, .variant = FG_LSTM_BWD_DENSE};
        fg_lstm_backward_sparse(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dy, NULL, NULL, x, h0, c0, w_ih, w_hh, y,
                                saved, d, ws, ws_bytes, &sp, &st[0]);
    }
    for (int i = 0; i < N_DROPS; i++) {
        r->bwd_ms[i] = median(tb + i * iters, iters) * 1e3;
        r->bwd_flops[i] = st[i].gemm_flops;
        r->kept[i] = (double)st[i].kept_cols / (double)(T * 4 * H);
    }
    free(tb);
    free(x), free(h0), free(c0), free(w_ih), free(w_hh), free(b_ih), free(b_hh), free(dy), free(y), free(saved);
    free(dx), free(dh0), free(dc0), free(dw_ih), free(dw_hh), free(db_ih), free(db_hh), free(ws), free(t);
    return 1;
}

static void run_peer(result *r, int iters, int warmup, int threads) {
    const char *src = getenv("FRUGAL_SOURCE_DIR");
    if (src && strchr(src, '\'')) return; /* the path goes into the shell command between single quotes */
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "OPENBLAS_CORETYPE=COOPERLAKE OMP_NUM_THREADS=%d /usr/bin/python3 '%s/bench/peer_lstm.py' --T %lld --B %lld "
             "--I %lld --H %lld --iters %d --warmup %d --threads %d",
             threads, src ? src : ".", (long long)r->d.T, (long long)r->d.B, (long long)r->d.I, (long long)r->d.H,
             iters, warmup, threads);
    FILE *p = popen(cmd, "r");
    if (!p) return;
    char line[512];
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "peer fwd_ms=%lf bwd_ms=%lf", &r->peer_fwd_ms, &r->peer_bwd_ms) == 2) r->peer_ok = 1;
    pclose(p);
}

int main(int argc, char **argv) {
    int threads = 2, iters = 5, warmup = 2, peer = 1;
    int64_t block = 16;
    result res[16];
    int nr = 0;
    memset(res, 0, sizeof res);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--block") && i + 1 < argc) block = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--no-peer")) peer = 0;
        else if (argv[i][0] != '-' && nr < 16) {
            long long T = 0, B = 0, H = 0, I = 0;
            int n = sscanf(argv[i], "%lld:%lld:%lld:%lld", &T, &B, &H, &I);
            if (n < 3) {
                fprintf(stderr, "lstm_sparse: expected T:B:H[:I], got %s\n", argv[i]);
                return 2;
            }
            res[nr++].d = (fg_lstm_desc){T, B, n == 4 ? I : H, H};
        } else {
            fprintf(stderr, "usage: %s [--threads N] [--iters N] [--warmup N] [--block N] [--no-peer] [T:B:H[:I] ...]\n",
                    argv[0]);
            return 2;
        }
    }
    if (iters < 1) iters = 1;
    if (nr == 0) {
        const int64_t def[4][3] = {{35, 32, 650}, {35, 64, 650}, {35, 32, 1500}, {35, 64, 1500}};
        for (nr = 0; nr < 4; nr++) res[nr].d = (fg_lstm_desc){def[nr][0], def[nr][1], def[nr][2], def[nr][2]};
    }
    fg_threads_set(threads);
    for (int i = 0; i < nr; i++) {
        const fg_lstm_desc *d = &res[i].d;
        if (fg_lstm_check(d) != FG_OK) {
            fprintf(stderr, "lstm_sparse: %s\n", fg_last_error());
            return 2;
        }
        fprintf(stderr, "lstm_sparse: T %lld B %lld I %lld H %lld: frugal...\n", (long long)d->T, (long long)d->B,
                (long long)d->I, (long long)d->H);
        if (!run_ours(&res[i], iters, warmup, block)) return 1;
        if (peer) {
            fprintf(stderr, "lstm_sparse: PyTorch...\n");
            run_peer(&res[i], iters, warmup, threads);
        }
    }
    printf("\ncommand:");
    for (int i = 0; i < argc; i++) printf(" %s", argv[i]);
    printf("\nthreads %d, median of %d timed iterations after %d warm-up; block %lld units; backward = all gradients "
           "(x, h0, c0, weights, biases) from dy; GFLOP/s = GEMM FLOPs issued (forward + backward) / (forward + "
           "backward time)\n\n",
           threads, iters, warmup, (long long)block);
    printf("| T | B | I | H | backward | kept gate columns | ms forward | ms backward | backward speedup vs dense | "
           "backward GFLOP issued | ms total | GFLOP/s |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < nr; i++) {
        const result *r = &res[i];
        const double ff = fg_lstm_flops(&r->d);
        for (int k = 0; k < N_DROPS; k++) {
            char name[48];
            if (k == 0) snprintf(name, sizeof name, "frugal dense");
            else snprintf(name, sizeof name, "frugal %s drop %.1f", fg_lstm_bwd_name(VARS[k]), (double)DROPS[k]);
            const double tot = r->fwd_ms + r->bwd_ms[k];
            printf("| %lld | %lld | %lld | %lld | %s | %.0f %% | %.2f | %.2f | %.2fx | %.3f | %.2f | %.1f |\n",
                   (long long)r->d.T, (long long)r->d.B, (long long)r->d.I, (long long)r->d.H, name, r->kept[k] * 100,
                   r->fwd_ms, r->bwd_ms[k], r->bwd_ms[0] / r->bwd_ms[k], r->bwd_flops[k] * 1e-9, tot,
                   (ff + r->bwd_flops[k]) / (tot * 1e6));
        }
        if (r->peer_ok) {
            const double tot = r->peer_fwd_ms + r->peer_bwd_ms;
            printf("| %lld | %lld | %lld | %lld | PyTorch 1.13 nn.LSTM (dense) | 100 %% | %.2f | %.2f | %.2fx | %.3f | "
                   "%.2f | %.1f |\n",
                   (long long)r->d.T, (long long)r->d.B, (long long)r->d.I, (long long)r->d.H, r->peer_fwd_ms,
                   r->peer_bwd_ms, r->bwd_ms[0] / r->peer_bwd_ms, r->bwd_flops[0] * 1e-9, tot,
                   (ff + r->bwd_flops[0]) / (tot * 1e6));
        } else {
            printf("| %lld | %lld | %lld | %lld | PyTorch 1.13 nn.LSTM | (peer not run%s) | - | - | - | - | - | - |\n",
                   (long long)r->d.T, (long long)r->d.B, (long long)r->d.I, (long long)r->d.H,
                   peer ? ": torch missing or failed" : ", --no-peer");
        }
    }
    printf("\nspeedup of the PyTorch row: frugal dense backward time / PyTorch backward time; its GFLOP/s counts the "
           "dense GEMM FLOPs\n");
    return 0;
}
