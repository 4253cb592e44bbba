/* Micro-benchmark of the pooling, LRN and batch-norm kernels on the layer shapes of AlexNet and
 * GoogLeNet at 224x224: forward and backward time of the fast kernels, the naive twin's forward
 * time where one exists, and the bytes moved per second (input + output of the pass).
 * Usage: pool_norm [--batch N] [--threads T] [--iters I] [--no-naive]
 * Times are the median of I runs after one warm-up run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/frugal.h"

typedef enum { K_MAX, K_AVG, K_LRN, K_BN } kind;

typedef struct layer {
    const char *net, *name;
    kind k;
    int64_t c, h, w;
    int64_t kernel, stride, pad;
    int ceil_mode;
} layer;

static const layer LAYERS[] = {
    {"alexnet", "lrn1", K_LRN, 96, 55, 55, 5, 0, 0, 0},
    {"alexnet", "pool1 3x3/2", K_MAX, 96, 55, 55, 3, 2, 0, 0},
    {"alexnet", "lrn2", K_LRN, 256, 27, 27, 5, 0, 0, 0},
    {"alexnet", "pool2 3x3/2", K_MAX, 256, 27, 27, 3, 2, 0, 0},
    {"alexnet", "pool5 3x3/2", K_MAX, 256, 13, 13, 3, 2, 0, 0},
    {"googlenet", "pool1 3x3/2 ceil", K_MAX, 64, 112, 112, 3, 2, 0, 1},
    {"googlenet", "bn conv1", K_BN, 64, 112, 112, 0, 0, 0, 0},
    {"googlenet", "lrn2", K_LRN, 192, 56, 56, 5, 0, 0, 0},
    {"googlenet", "pool2 3x3/2 ceil", K_MAX, 192, 56, 56, 3, 2, 0, 1},
    {"googlenet", "3a pool 3x3/1 p1", K_MAX, 192, 28, 28, 3, 1, 1, 0},
    {"googlenet", "avgpool 7x7", K_AVG, 1024, 7, 7, 7, 1, 0, 0},
};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return t[n / 2];
}

int main(int argc, char **argv) {
    int64_t batch = 32;
    int threads = 0, iters = 5, naive = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-naive")) naive = 0;
        else {
            fprintf(stderr, "usage: %s [--batch N] [--threads T] [--iters I] [--no-naive]\n", argv[0]);
            return 2;
        }
    }
    if (iters < 1 || iters > 100 || batch < 1) {
        fprintf(stderr, "pool_norm: --iters must be 1..100 and --batch >= 1\n");
        return 2;
    }
    fg_threads_set(threads);
    printf("# pool_norm --batch %lld --threads %d --iters %d%s\n", (long long)batch, fg_threads_get(), iters,
           naive ? "" : " --no-naive");
    printf("%-10s %-18s %-20s %10s %10s %10s %9s %9s\n", "net", "layer", "input", "fwd ms", "bwd ms", "naive ms",
           "fwd GB/s", "bwd GB/s");
    fg_rng rng;
    fg_rng_seed(&rng, 1);
    for (size_t li = 0; li < sizeof LAYERS / sizeof LAYERS[0]; li++) {
        const layer *L = &LAYERS[li];
        fg_pooling_desc pd = {batch, L->c, L->h, L->w, L->kernel, L->kernel, L->stride, L->stride,
                              L->pad, L->pad, L->ceil_mode, 1};
        fg_lrn_desc ld = {batch, L->c, L->h, L->w, L->kernel, 1e-4f, 0.75f, 2.0f};
        size_t ni = (size_t)(batch * L->c * L->h * L->w), no = ni;
        if (L->k == K_MAX || L->k == K_AVG) {
            if (fg_pooling_check(&pd) != FG_OK) {
                fprintf(stderr, "pool_norm: %s: %s\n", L->name, fg_last_error());
                return 1;
            }
            no = (size_t)(batch * L->c * fg_pooling_out_h(&pd) * fg_pooling_out_w(&pd));
        }
        float *x = malloc(ni * sizeof(float)), *y = malloc(no * sizeof(float));
        float *dy = malloc(no * sizeof(float)), *dx = malloc(ni * sizeof(float));
        float *par = malloc((size_t)L->c * 8 * sizeof(float));
        if (!x || !y || !dy || !dx || !par) {
            fprintf(stderr, "pool_norm: out of memory for %s\n", L->name);
            return 1;
        }
        for (size_t i = 0; i < ni; i++) x[i] = fg_rng_normal(&rng);
        for (size_t i = 0; i < no; i++) dy[i] = fg_rng_normal(&rng);
        for (int64_t i = 0; i < L->c * 8; i++) par[i] = 1.0f;
        float *gamma = par, *beta = par + L->c, *rm = par + 2 * L->c, *rv = par + 3 * L->c;
        float *mean = par + 4 * L->c, *invstd = par + 5 * L->c, *dg = par + 6 * L->c, *db = par + 7 * L->c;
        double tf[100], tb[100], tn[100];
        double naive_ms = -1;
        for (int it = -1; it < iters; it++) {
            double t0 = fg_time_now();
            switch (L->k) {
            case K_MAX: fg_maxpool2d_forward(y, x, &pd); break;
            case K_AVG: fg_avgpool2d_forward(y, x, &pd); break;
            case K_LRN: fg_lrn_forward(y, x, &ld); break;
            case K_BN:
                fg_batchnorm_forward_train(y, mean, invstd, rm, rv, x, gamma, beta, batch, L->c, L->h * L->w, 0.1f,
                                           1e-5f);
                break;
            }
            double t1 = fg_time_now();
            switch (L->k) {
            case K_MAX: fg_maxpool2d_backward(dx, dy, x, &pd); break;
            case K_AVG: fg_avgpool2d_backward(dx, dy, &pd); break;
            case K_LRN: fg_lrn_backward(dx, dy, x, y, &ld); break;
            case K_BN: fg_batchnorm_backward(dx, dg, db, dy, x, mean, invstd, gamma, batch, L->c, L->h * L->w); break;
            }
            double t2 = fg_time_now();
            if (it >= 0) {
                tf[it] = t1 - t0;
                tb[it] = t2 - t1;
            }
        }
        if (naive && L->k != K_BN) {
            int n_naive = iters < 3 ? iters : 3;
            for (int it = 0; it < n_naive; it++) {
                double t0 = fg_time_now();
                if (L->k == K_MAX) fg_maxpool2d_forward_naive(y, x, &pd);
                else if (L->k == K_AVG) fg_avgpool2d_forward_naive(y, x, &pd);
                else fg_lrn_forward_naive(y, x, &ld);
                tn[it] = fg_time_now() - t0;
            }
            naive_ms = 1e3 * median(tn, n_naive);
        }
        double f = median(tf, iters), b = median(tb, iters);
        char shape[64], nbuf[16];
        int64_t dims[4] = {batch, L->c, L->h, L->w};
        fg_shape_str(shape, sizeof shape, 4, dims);
        if (naive_ms >= 0) snprintf(nbuf, sizeof nbuf, "%.2f", naive_ms);
        else snprintf(nbuf, sizeof nbuf, "-");
        /* forward reads x, writes y; backward reads dy (and x or y when saved), writes dx */
        double fbytes = 4.0 * (double)(ni + no);
        double bbytes = 4.0 * (double)(ni + no + (L->k == K_AVG ? 0 : ni) + (L->k == K_LRN ? no : 0));
        printf("%-10s %-18s %-20s %10.2f %10.2f %10s %9.1f %9.1f\n", L->net, L->name, shape, 1e3 * f, 1e3 * b,
               nbuf, fbytes / f / 1e9, bbytes / b / 1e9);
        free(x);
        free(y);
        free(dy);
        free(dx);
        free(par);
    }
    return 0;
}
