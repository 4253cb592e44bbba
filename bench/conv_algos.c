/* Benchmark of the three conv2d algorithms (implicit, gemm, dnnl) on a few layer shapes: forward
 * and backward (data + weights + bias) time, GFLOP/s and the workspace each needs, so the
 * memory/speed trade vDNN's dyn policy makes can be read off one table.
 * Usage: conv_algos [--batch N] [--threads T] [--iters I] [--algo implicit|gemm|dnnl] [--shape NAME]
 * Times are the median of I runs after one warm-up run. Backward GFLOP/s counts 2x the forward
 * FLOPs (data gradient + weight gradient). --batch overrides every shape's default batch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/frugal.h"

typedef struct layer {
    const char *name;
    int64_t n, c, h, w, oc, k, stride, pad, groups;
} layer;

static const layer LAYERS[] = {
    {"resnet conv2 64->64 56x56 3x3", 16, 64, 56, 56, 64, 3, 1, 1, 1},
    {"vgg conv3 256->256 56x56 3x3", 4, 256, 56, 56, 256, 3, 1, 1, 1},
    {"alexnet conv1 3->96 227 11x11/4", 16, 3, 227, 227, 96, 11, 4, 0, 1},
    {"1x1 256->64 56x56", 16, 256, 56, 56, 64, 1, 1, 0, 1},
    {"depthwise 128 56x56 3x3", 16, 128, 56, 56, 128, 3, 1, 1, 128},
};
#define NLAYERS (sizeof LAYERS / sizeof LAYERS[0])

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void fill(float *x, size_t n, fg_rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = fg_rng_uniform(r) * 2.0f - 1.0f;
}

int main(int argc, char **argv) {
    int64_t batch = 0;
    int threads = 0, iters = 3, only_algo = -1;
    const char *only_shape = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc) only_shape = argv[++i];
        else if (!strcmp(argv[i], "--algo") && i + 1 < argc) {
            const char *a = argv[++i];
            for (int k = 0; k < FG_CONV_ALGO_COUNT; k++)
                if (!strcmp(a, fg_conv_algo_name((fg_conv_algo)k))) only_algo = k;
            if (only_algo < 0) {
                fprintf(stderr, "unknown algorithm '%s' (implicit, gemm, dnnl)\n", a);
                return 2;
            }
        } else {
            fprintf(stderr,
                    "usage: %s [--batch N] [--threads T] [--iters I] [--algo implicit|gemm|dnnl] [--shape SUBSTRING]\n",
                    argv[0]);
            return 2;
        }
    }
    if (iters < 1) iters = 1;
    fg_threads_set(threads);
    printf("command:");
    for (int i = 0; i < argc; i++) printf(" %s", argv[i]);
    printf("\nthreads: %d, iterations: %d (median after one warm-up)\n\n", fg_threads_get(), iters);
    printf("%-34s %-9s %10s %9s %10s %9s %12s\n", "layer (batch)", "algo", "fwd ms", "GFLOP/s", "bwd ms", "GFLOP/s",
           "workspace");

    fg_rng rng;
    fg_rng_seed(&rng, 1);
    double *t = malloc((size_t)iters * sizeof(double));
    for (size_t li = 0; li < NLAYERS; li++) {
        const layer *L = &LAYERS[li];
        if (only_shape && !strstr(L->name, only_shape)) continue;
        fg_conv2d_desc d = {batch > 0 ? batch : L->n, L->c, L->h, L->w, L->oc, L->k, L->k, L->stride, L->stride,
                            L->pad, L->pad, 1, 1, L->groups};
        if (fg_conv2d_check(&d) != FG_OK) {
            fprintf(stderr, "%s: %s\n", L->name, fg_last_error());
            return 1;
        }
        size_t ni = (size_t)(d.n * d.c * d.h * d.w), nw = (size_t)(d.oc * (d.c / d.groups) * d.kh * d.kw);
        size_t no = (size_t)(d.n * d.oc * fg_conv2d_out_h(&d) * fg_conv2d_out_w(&d));
        float *x = malloc(ni * 4), *w = malloc(nw * 4), *b = malloc((size_t)d.oc * 4), *y = malloc(no * 4);
        float *dy = malloc(no * 4), *dx = malloc(ni * 4), *dw = calloc(nw, 4), *db = calloc((size_t)d.oc, 4);
        if (!x || !w || !b || !y || !dy || !dx || !dw || !db) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        fill(x, ni, &rng);
        fill(w, nw, &rng);
        fill(b, (size_t)d.oc, &rng);
        fill(dy, no, &rng);
        double flops = fg_conv2d_flops(&d);
        char label[64];
        snprintf(label, sizeof label, "%s (%lld)", L->name, (long long)d.n);
        for (int a = 0; a < FG_CONV_ALGO_COUNT; a++) {
            if (only_algo >= 0 && a != only_algo) continue;
            size_t wsb = fg_conv2d_workspace_bytes(&d, (fg_conv_algo)a);
            void *ws = wsb ? malloc(wsb) : NULL;
            double med[2];
            for (int pass = 0; pass < 2; pass++) {
                for (int it = -1; it < iters; it++) {
                    double t0 = fg_time_now();
                    fg_status s = pass == 0 ? fg_conv2d_forward(y, x, w, b, &d, (fg_conv_algo)a, ws, wsb)
                                            : fg_conv2d_backward(dx, dw, db, dy, x, w, &d, (fg_conv_algo)a, ws, wsb);
                    double dt = fg_time_now() - t0;
                    if (s != FG_OK) {
                        fprintf(stderr, "%s %s: %s\n", L->name, fg_conv_algo_name((fg_conv_algo)a), fg_last_error());
                        return 1;
                    }
                    if (it >= 0) t[it] = dt;
                }
                qsort(t, (size_t)iters, sizeof *t, cmp_double);
                med[pass] = t[iters / 2];
            }
            char wss[32];
            fg_bytes_str(wss, sizeof wss, (double)wsb);
            printf("%-34s %-9s %10.2f %9.1f %10.2f %9.1f %12s\n", label, fg_conv_algo_name((fg_conv_algo)a),
                   1e3 * med[0], flops / med[0] * 1e-9, 1e3 * med[1], 2 * flops / med[1] * 1e-9, wss);
            fflush(stdout);
            free(ws);
        }
        free(x), free(w), free(b), free(y), free(dy), free(dx), free(dw), free(db);
    }
    free(t);
    return 0;
}
