/* bench/train_step: images per second of one training step (forward, backward, SGD with
 * momentum) for zoo models, against PyTorch measured in the same run (bench/peer_train_step.py,
 * with OPENBLAS_CORETYPE=COOPERLAKE unless the caller set it, and the same thread count; both see
 * ONEDNN_MAX_CPU_ISA, so `ONEDNN_MAX_CPU_ISA=AVX2 FRUGAL_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell`
 * holds both to AVX2). Prints a table, the command that
 * produced it, and a per-op-family time breakdown of ours.
 *
 *   build/bench/train_step [--threads 2] [--iters 5] [--warmup 2] [--no-peer] [MODEL:BATCH[:SIZE] ...]
 * default: alexnet:32 vgg16:16 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/frugal.h"

/* per op family: forward and backward seconds per iteration */
typedef struct breakdown {
    double fwd[FG_OP_COUNT], bwd[FG_OP_COUNT];
} breakdown;

typedef struct result {
    char model[32];
    int64_t batch, size;
    double ours_ips, peer_ips, ours_ms, peer_ms;
    float ours_loss, peer_loss;
    int ok;
    breakdown bd;
    double optim_ms;
} result;

static int run_ours(result *r, int iters, int warmup) {
    const fg_model_def *def = fg_zoo_find(r->model);
    if (!def) {
        fprintf(stderr, "train_step: unknown model %s\n", r->model);
        return 0;
    }
    int64_t size = r->size ? r->size : def->default_height;
    r->size = size;
    fg_pool *pool;
    fg_graph *g;
    fg_model_io io;
    fg_model_cfg cfg = {.batch = r->batch, .channels = def->default_channels, .height = size, .width = size, .classes = 1000,
                        .dropout = -1};
    if (fg_pool_create(&pool, 0) || fg_graph_create(&g, r->model) || fg_zoo_build(g, r->model, &cfg, &io)) {
        fprintf(stderr, "train_step: %s\n", fg_last_error());
        return 0;
    }
    fg_mem_policy pol;
    fg_policy_network_wide(&pol);
    if (fg_graph_build(g, io.loss, pool, &pol) != FG_OK) {
        fprintf(stderr, "train_step: %s\n", fg_last_error());
        return 0;
    }
    fg_rng rng;
    fg_rng_seed(&rng, 0);
    fg_graph_init_params(g, &rng);
    size_t nx = (size_t)(r->batch * def->default_channels * size * size);
    float *x = malloc(nx * sizeof(float));
    int32_t *y = malloc((size_t)r->batch * sizeof(int32_t));
    for (size_t i = 0; i < nx; i++) x[i] = fg_rng_normal(&rng);
    for (int64_t i = 0; i < r->batch; i++) y[i] = (int32_t)fg_rng_below(&rng, 1000);
    fg_graph_set_input(g, io.input, x, nx * sizeof(float));
    fg_graph_set_input(g, io.labels, y, (size_t)r->batch * sizeof(int32_t));
    fg_optim_cfg oc = fg_optim_defaults(FG_OPTIM_SGD, 0.01f);
    oc.momentum = 0.9f;
    fg_optim *opt;
    fg_optim_create(&opt, g, &oc);
    double t0 = 0, topt = 0;
    for (int it = 0; it < warmup + iters; it++) {
        if (it == warmup) {
            t0 = fg_time_now();
            fg_graph_reset_times(g);
        }
        fg_graph_zero_grad(g);
        if (fg_graph_forward(g) || fg_graph_backward(g)) {
            fprintf(stderr, "train_step: %s\n", fg_last_error());
            return 0;
        }
        double to = fg_time_now();
        if (fg_optim_step(opt) != FG_OK) {
            fprintf(stderr, "train_step: %s\n", fg_last_error());
            return 0;
        }
        if (it >= warmup) topt += fg_time_now() - to;
    }
    double dt = (fg_time_now() - t0) / iters;
    r->optim_ms = topt / iters * 1e3;
    for (int i = 0; i < fg_graph_n_nodes(g); i++) {
        fg_op op = fg_graph_node(g, i)->op;
        r->bd.fwd[op] += fg_graph_node_time(g, i, FG_FORWARD) / iters;
        r->bd.bwd[op] += fg_graph_node_time(g, i, FG_BACKWARD) / iters;
    }
    r->ours_ms = dt * 1e3;
    r->ours_ips = (double)r->batch / dt;
    r->ours_loss = fg_graph_loss(g);
    fg_optim_free(opt);
    fg_graph_free(g);
    fg_pool_destroy(pool);
    free(x);
    free(y);
    return 1;
}

static void run_peer(result *r, int iters, int warmup, int threads) {
    const char *src = getenv("FRUGAL_SOURCE_DIR");
    if (src && strchr(src, '\'')) return; /* the path goes into the shell command between single quotes */
    char cmd[8192];
    int len = snprintf(cmd, sizeof cmd,
                       "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-COOPERLAKE} OMP_NUM_THREADS=%d /usr/bin/python3 '%s/bench/peer_train_step.py' --model %s "
                       "--batch %lld --size %lld --iters %d --warmup %d --threads %d",
                       threads, src ? src : ".", r->model, (long long)r->batch, (long long)r->size, iters, warmup, threads);
    if (len < 0 || (size_t)len >= sizeof cmd) return; /* a source path too long for the command: no peer */
    FILE *p = popen(cmd, "r");
    if (!p) return;
    char line[512];
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "peer images_per_s=%lf ms_per_iter=%lf loss=%f", &r->peer_ips, &r->peer_ms, &r->peer_loss) == 3)
            r->ok = 1;
    pclose(p);
}

int main(int argc, char **argv) {
    int threads = 2, iters = 5, warmup = 2, peer = 1;
    result res[16];
    int nr = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-peer")) peer = 0;
        else if (argv[i][0] != '-' && nr < 16) {
            memset(&res[nr], 0, sizeof res[nr]);
            long long b = 0, s = 0;
            char m[32];
            int k = sscanf(argv[i], "%31[^:]:%lld:%lld", m, &b, &s);
            if (k < 2) {
                fprintf(stderr, "train_step: expected MODEL:BATCH[:SIZE], got %s\n", argv[i]);
                return 2;
            }
            snprintf(res[nr].model, sizeof res[nr].model, "%s", m);
            res[nr].batch = b;
            res[nr].size = s;
            nr++;
        } else {
            fprintf(stderr, "usage: %s [--threads N] [--iters N] [--warmup N] [--no-peer] [MODEL:BATCH[:SIZE] ...]\n", argv[0]);
            return 2;
        }
    }
    if (nr == 0) {
        memset(res, 0, sizeof res);
        snprintf(res[0].model, sizeof res[0].model, "alexnet");
        res[0].batch = 32;
        snprintf(res[1].model, sizeof res[1].model, "vgg16");
        res[1].batch = 16;
        nr = 2;
    }
    fg_threads_set(threads);
    for (int i = 0; i < nr; i++) {
        fprintf(stderr, "train_step: %s batch %lld: frugal...\n", res[i].model, (long long)res[i].batch);
        if (!run_ours(&res[i], iters, warmup)) return 1;
        if (peer) {
            fprintf(stderr, "train_step: %s batch %lld: PyTorch...\n", res[i].model, (long long)res[i].batch);
            run_peer(&res[i], iters, warmup, threads);
        }
    }
    printf("\ncommand:");
    static const char *const envs[] = {"ONEDNN_MAX_CPU_ISA", "FRUGAL_MAX_CPU_ISA", "OPENBLAS_CORETYPE", "OMP_WAIT_POLICY"};
    for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++)
        if (getenv(envs[i])) printf(" %s=%s", envs[i], getenv(envs[i]));
    for (int i = 0; i < argc; i++) printf(" %s", argv[i]);
    char model[64];
    printf("\nCPU %s (%s); frugal's kernels %s, OpenMP wait policy %s; PyTorch's OpenBLAS core type %s\n",
           fg_cpu_model(model, sizeof model), fg_cpu_isa_name(fg_cpu_isa_detected()), fg_cpu_isa_name(fg_cpu_isa_active()),
           fg_threads_wait_policy(), getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "COOPERLAKE");
    printf("\nthreads %d, %d timed iterations after %d warm-up; one step = forward + backward + SGD(momentum)\n\n", threads,
           iters, warmup);
    printf("| model | batch | input | frugal img/s | PyTorch 1.13 img/s | frugal / PyTorch | frugal ms/iter | PyTorch ms/iter |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < nr; i++) {
        if (res[i].ok)
            printf("| %s | %lld | %lldx%lld | %.2f | %.2f | %.2fx | %.1f | %.1f |\n", res[i].model, (long long)res[i].batch,
                   (long long)res[i].size, (long long)res[i].size, res[i].ours_ips, res[i].peer_ips,
                   res[i].ours_ips / res[i].peer_ips, res[i].ours_ms, res[i].peer_ms);
        else
            printf("| %s | %lld | %lldx%lld | %.2f | (peer not run) | - | %.1f | - |\n", res[i].model,
                   (long long)res[i].batch, (long long)res[i].size, (long long)res[i].size, res[i].ours_ips,
                   res[i].ours_ms);
    }
    printf("\nwhere frugal's time goes (ms per iteration):\n\n| model | op | forward | backward |\n|---|---|---|---|\n");
    for (int i = 0; i < nr; i++) {
        for (int op = 0; op < FG_OP_COUNT; op++)
            if (res[i].bd.fwd[op] + res[i].bd.bwd[op] > 1e-4)
                printf("| %s | %s | %.1f | %.1f |\n", res[i].model, fg_op_name((fg_op)op), res[i].bd.fwd[op] * 1e3,
                       res[i].bd.bwd[op] * 1e3);
        printf("| %s | optimizer step | %.1f | |\n", res[i].model, res[i].optim_ms);
    }
    return 0;
}
