/* Benchmark of the run-time governor's own cost (issue 14: "it picks the most accurate table entry
 * that fits, in well under 1% of an inference") and of switching the executor's skip
 * configuration, against the inference they steer, measured in the same run: a batch-1 forward
 * of vit-tiny-28 (random weights; the latency does not depend on them) with every part on.
 *
 * Tables of n synthetic entries (cost and metric both rising, the governor's worst case is a
 * budget that only the cheapest fits: it walks every entry) are timed for fg_vit_governor_choose
 * (a budget the median entry fits, and one only the cheapest fits) and fg_vit_governor_observe;
 * fg_vit_skip_apply alternates between two configurations of the built graph (all-on and the
 * last block skipped). Each figure is the median over --reps repetitions of a timed loop.
 * Usage: vit_governor [--threads T] [--reps R] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/frugal.h"

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define CHECK_ST(x)                                                                                \
    do {                                                                                           \
        fg_status s_ = (x);                                                                        \
        if (s_ != FG_OK) {                                                                         \
            fprintf(stderr, "vit_governor: %s: %s\n", #x, fg_last_error());                        \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv) {
    int threads = 1, reps = 15;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: vit_governor [--threads T] [--reps R]\n");
            return 2;
        }
    }
    if (reps < 1 || threads < 0) {
        fprintf(stderr, "vit_governor: --reps must be >= 1 and --threads >= 0\n");
        return 2;
    }
    fg_threads_set(threads);
    double *v = malloc((size_t)reps * sizeof *v);
    if (!v) return 1;

    /* the inference: vit-tiny-28, batch 1, every part on */
    fg_graph *g = NULL;
    fg_pool *pool = NULL;
    fg_vit_cfg cfg;
    fg_vit_io io;
    fg_mem_policy pol;
    CHECK_ST(fg_pool_create(&pool, 0));
    CHECK_ST(fg_graph_create(&g, "vit"));
    CHECK_ST(fg_vit_config("vit-tiny-28", 10, &cfg));
    CHECK_ST(fg_vit_build(g, &cfg, 1, 1, 28, 28, 0, &io));
    CHECK_ST(fg_policy_network_wide(&pol));
    CHECK_ST(fg_graph_build(g, FG_NONE, pool, &pol));
    fg_rng rng;
    fg_rng_seed(&rng, 1);
    fg_graph_init_params(g, &rng);
    fg_graph_set_training(g, 0);
    float x[28 * 28];
    for (int i = 0; i < 28 * 28; i++) x[i] = fg_rng_uniform(&rng);
    CHECK_ST(fg_graph_set_input(g, io.input, x, sizeof x));
    CHECK_ST(fg_graph_forward(g));
    const int fw_iters = 200;
    for (int r = 0; r < reps; r++) {
        const double t0 = fg_time_now();
        for (int k = 0; k < fw_iters; k++) CHECK_ST(fg_graph_forward(g));
        v[r] = (fg_time_now() - t0) / fw_iters;
    }
    const double infer = median(v, reps);

    /* switching: all-on <-> the last block skipped */
    fg_vit_skip on, off;
    memset(&on, 0, sizeof on);
    memset(&off, 0, sizeof off);
    off.attn[3] = off.mlp[3] = 1;
    const int sw_iters = 2000;
    for (int r = 0; r < reps; r++) {
        const double t0 = fg_time_now();
        for (int k = 0; k < sw_iters; k++) CHECK_ST(fg_vit_skip_apply(g, k % 2 ? &off : &on));
        v[r] = (fg_time_now() - t0) / sw_iters;
    }
    const double apply = median(v, reps);

    printf("bench/vit_governor: the governor's pick and observe and a skip switch against a batch-1 "
           "inference of vit-tiny-28, %d thread(s), medians of %d repetitions\n", fg_threads_get(), reps);
    printf("command: vit_governor --threads %d --reps %d\n", threads, reps);
    printf("%-44s %12s %12s\n", "what", "us", "% of inference");
    printf("%-44s %12.3f %12s\n", "inference (vit-tiny-28, batch 1, all on)", infer * 1e6, "100");
    printf("%-44s %12.3f %12.4f\n", "fg_vit_skip_apply (switch a configuration)", apply * 1e6, 100.0 * apply / infer);
    const size_t sizes[] = {8, 20, 100, 1000};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const size_t n = sizes[si];
        fg_vit_profile_entry *t = calloc(n, sizeof *t);
        if (!t) return 1;
        for (size_t i = 0; i < n; i++) {
            t[i].seconds = 1e-4 * (double)(i + 1);
            t[i].metric = 0.1 + 0.8 * (double)i / (double)n;
            t[i].flops = 1e6 * (double)(i + 1);
        }
        fg_vit_governor *gov = NULL;
        CHECK_ST(fg_vit_governor_create(t, n, NULL, &gov));
        const int it = 100000;
        const double budgets[2] = {1e-4 * (double)(n / 2 + 1) * 1.2, 1e-4 * 1.15}; /* median fits; cheapest only */
        const char *what[2] = {"median entry fits", "only the cheapest fits"};
        volatile size_t sink = 0;
        for (int b = 0; b < 2; b++) {
            for (int r = 0; r < reps; r++) {
                const double t0 = fg_time_now();
                for (int k = 0; k < it; k++) {
                    int fits;
                    sink += fg_vit_governor_choose(gov, budgets[b], &fits);
                }
                v[r] = (fg_time_now() - t0) / it;
            }
            const double pick = median(v, reps);
            char label[96];
            snprintf(label, sizeof label, "pick, %zu entries, %s", n, what[b]);
            printf("%-44s %12.4f %12.4f\n", label, pick * 1e6, 100.0 * pick / infer);
        }
        for (int r = 0; r < reps; r++) {
            const double t0 = fg_time_now();
            for (int k = 0; k < it / 10; k++) CHECK_ST(fg_vit_governor_observe(gov, (size_t)k % n, 1e-4, 1.0));
            v[r] = (fg_time_now() - t0) / (it / 10);
        }
        const double obs = median(v, reps);
        char label[96];
        snprintf(label, sizeof label, "observe, %zu entries", n);
        printf("%-44s %12.4f %12.4f\n", label, obs * 1e6, 100.0 * obs / infer);
        (void)sink;
        fg_vit_governor_free(gov);
        free(t);
    }
    free(v);
    fg_graph_free(g);
    fg_pool_destroy(pool);
    return 0;
}
