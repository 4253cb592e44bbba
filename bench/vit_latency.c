/* bench/vit_latency: dense inference latency (eval mode, no skips) of SegFormer and the DeiT-style
 * ViT against PyTorch 1.13 eager measured in the same run (bench/peer_vit.py), issue 14's last
 * acceptance line. Per model the random weights (PyTorch's default initialization, seed 1) are
 * written once to a safetensors file under Hugging Face's names; per cell (model, batch) a random
 * input is run, frugal's logits are written with it to a second file, and the peer loads the same
 * weights, checks that its logits match frugal's within 1e-4 relative (largest difference over the
 * largest |logit|) and only then times its own forward. Both sides: warm-up, then the median of
 * `--reps` timed forwards; the peer gets the same thread count and OPENBLAS_CORETYPE=COOPERLAKE
 * unless the caller set it. Prints a table, the command, and where frugal's time goes (per op
 * family, and the slowest nodes with --nodes N). Without torch (or with --no-peer) the peer
 * columns say so.
 *
 *   build/bench/vit_latency [--threads 2] [--reps 5] [--warmup 1] [--no-peer] [--nodes N]
 *                           [--json FILE] [--keep DIR] [MODEL:BATCH[:SIZE] ...]
 * MODEL: segformer-b0|b1|b2 (150 labels, default 512x512) or deit-tiny|deit-small|vit-tiny-28
 * (default 224x224x3, 1000 classes; vit-tiny-28 1x28x28, 10 classes).
 * default: segformer-b0:1 segformer-b0:8 deit-tiny:1 deit-tiny:8 deit-small:1 deit-small:8 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "frugal/frugal.h"

#define MAX_CELLS 16
#define MAX_NODES 64

typedef struct node_time {
    char name[FG_NAME_MAX];
    fg_op op;
    double ms;
} node_time;

typedef struct cell {
    char model[32];
    int64_t batch, size, channels, labels;
    double flops;                   /* one forward, whole batch */
    double ours_ms, ours_min_ms;    /* median and minimum of the timed forwards */
    double ours_cpu_ms, peer_cpu_ms;  /* median process CPU time per forward, all threads */
    double peer_ms, peer_min_ms, peer_rel;
    int peer_state;                 /* 0 not run, 1 timed, -1 failed or mismatched */
    char peer_note[160];
    double op_ms[FG_OP_COUNT];      /* frugal's per-op-family time per forward */
    node_time top[MAX_NODES];
    int ntop;
} cell;

static int is_segformer(const char *m) { return strncmp(m, "segformer-", 10) == 0; }

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Builds the cell's model for its batch; io ids in *in, *out. */
static fg_status build(cell *c, fg_graph **gout, fg_pool **pool, fg_id *in, fg_id *out) {
    fg_graph *g;
    FG_TRY(fg_graph_create(&g, c->model));
    *gout = g;
    fg_status s;
    if (is_segformer(c->model)) {
        fg_segformer_variant v;
        fg_segformer_cfg cfg;
        fg_segformer_io io;
        s = fg_segformer_variant_parse(c->model, &v);
        if (s == FG_OK) s = fg_segformer_config(v, c->labels, &cfg);
        if (s == FG_OK) s = fg_segformer_build(g, &cfg, c->batch, c->size, c->size, 0, &io);
        *in = io.input, *out = io.logits;
    } else {
        fg_vit_cfg cfg;
        fg_vit_io io;
        s = fg_vit_config(c->model, c->labels, &cfg);
        if (s == FG_OK) s = fg_vit_build(g, &cfg, c->batch, c->channels, c->size, c->size, 0, &io);
        *in = io.input, *out = io.logits;
    }
    if (s != FG_OK) return s;
    FG_TRY(fg_pool_create(pool, 0));
    /* inference: every activation released after its last use (as an eval loop would run) */
    fg_mem_policy pol;
    FG_TRY(fg_policy_free_when_dead(&pol));
    FG_TRY(fg_graph_build(g, FG_NONE, *pool, &pol));
    fg_graph_set_training(g, 0);
    return FG_OK;
}

static int cmp_node(const void *a, const void *b) {
    double x = ((const node_time *)a)->ms, y = ((const node_time *)b)->ms;
    return (x < y) - (x > y);
}

/* Runs frugal's side of a cell; writes the weights file (first cell of a model) or loads it, and
 * the io file for the peer. */
static fg_status run_ours(cell *c, const char *wpath, const char *iopath, int reps, int warmup, int ntop) {
    fg_graph *g = NULL;
    fg_pool *pool = NULL;
    fg_id in, out;
    fg_status s = build(c, &g, &pool, &in, &out);
    if (s == FG_OK) {
        if (access(wpath, R_OK) == 0) {
            s = fg_vit_weights_load(g, wpath);
        } else {
            fg_rng rng;
            fg_rng_seed(&rng, 1);
            fg_graph_init_params(g, &rng);
            s = fg_vit_weights_save(g, wpath);
        }
    }
    const fg_tensor *ti = s == FG_OK ? fg_graph_tensor(g, in) : NULL, *to = s == FG_OK ? fg_graph_tensor(g, out) : NULL;
    const size_t nx = ti ? (size_t)fg_tensor_numel(ti) : 0, ny = to ? (size_t)fg_tensor_numel(to) : 0;
    float *x = malloc(nx * sizeof(float) + 1), *y = malloc(ny * sizeof(float) + 1);
    double *t = malloc((size_t)(reps > 0 ? reps : 1) * sizeof(double));
    double *tc = malloc((size_t)(reps > 0 ? reps : 1) * sizeof(double));
    if (s == FG_OK && (!x || !y || !t || !tc)) s = fg_fail(FG_ERR_OOM, "vit_latency: out of host memory");
    if (s == FG_OK) {
        fg_rng rng;
        fg_rng_seed(&rng, 2);
        for (size_t i = 0; i < nx; i++) x[i] = fg_rng_normal(&rng);
        s = fg_graph_set_input(g, in, x, nx * sizeof(float));
    }
    c->flops = s == FG_OK ? fg_graph_active_flops(g) : 0.0;
    for (int it = 0; it < warmup + reps && s == FG_OK; it++) {
        if (it == warmup) fg_graph_reset_times(g);
        const double c0 = fg_time_cpu(), t0 = fg_time_now();
        s = fg_graph_forward(g);
        if (it >= warmup) t[it - warmup] = fg_time_now() - t0, tc[it - warmup] = fg_time_cpu() - c0;
        if (s == FG_OK && it == 0) s = fg_graph_read(g, out, y, ny * sizeof(float));
    }
    if (s == FG_OK && reps > 0) {
        c->ours_ms = median(t, reps) * 1e3;
        c->ours_min_ms = t[0] * 1e3;
        c->ours_cpu_ms = median(tc, reps) * 1e3;
        node_time *all = calloc((size_t)fg_graph_n_nodes(g), sizeof *all);
        const int nn = fg_graph_n_nodes(g);
        for (int i = 0; i < nn && all; i++) {
            const fg_ninfo *ni = fg_graph_node(g, i);
            const double ms = fg_graph_node_time(g, i, FG_FORWARD) / reps * 1e3;
            c->op_ms[ni->op] += ms;
            snprintf(all[i].name, sizeof all[i].name, "%s", ni->name);
            all[i].op = ni->op;
            all[i].ms = ms;
        }
        if (all) {
            qsort(all, (size_t)nn, sizeof *all, cmp_node);
            c->ntop = ntop < nn ? ntop : nn;
            if (c->ntop > MAX_NODES) c->ntop = MAX_NODES;
            memcpy(c->top, all, (size_t)c->ntop * sizeof *all);
            free(all);
        }
    }
    if (s == FG_OK) {
        fg_st_writer *w;
        s = fg_st_writer_create(&w);
        if (s == FG_OK) {
            s = fg_st_writer_add(w, "pixel_values", FG_ST_F32, ti->ndim, ti->shape, x);
            if (s == FG_OK) s = fg_st_writer_add(w, "logits", FG_ST_F32, to->ndim, to->shape, y);
            if (s == FG_OK) s = fg_st_writer_save(w, iopath);
            fg_st_writer_free(w);
        }
    }
    free(x);
    free(y);
    free(t);
    free(tc);
    fg_graph_free(g);
    if (pool) fg_pool_destroy(pool);
    return s;
}

/* The peer waits as frugal does: frugal's default is passive (src/core/omp_preinit.c, which
 * removes the variable again so children see the caller's environment), and PyTorch's libgomp and
 * OpenMP OpenBLAS spin by default, which on shared cores made the same PyTorch forward 16x slower
 * (deit-tiny batch 1, load average 12: 1857 ms spinning, 114 ms passive). A caller's
 * OMP_WAIT_POLICY or GOMP_SPINCOUNT reaches both sides unchanged: on a dedicated machine a short
 * spin (GOMP_SPINCOUNT=10000) is the latency setting, since passive waiting puts a wake-up of
 * 15-45 us on every parallel region, and a forward of DeiT-tiny at batch 1 has hundreds of them
 * (docs/BENCHMARKS.md, "DeiT-tiny and the wait policy"). */
static const char *peer_wait_env(void) {
    return getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT") ? "" : "OMP_WAIT_POLICY=PASSIVE ";
}

static void run_peer(cell *c, const char *wpath, const char *iopath, int reps, int warmup, int threads) {
    const char *src = getenv("FRUGAL_SOURCE_DIR");
    char script[4096];
    snprintf(script, sizeof script, "%s/bench/peer_vit.py", src ? src : ".");
    if (access(script, R_OK) != 0) {
        snprintf(c->peer_note, sizeof c->peer_note, "%.80s not found: set FRUGAL_SOURCE_DIR to the source tree", script);
        c->peer_state = -1;
        return;
    }
    if (access("/usr/bin/python3", X_OK) != 0) {
        snprintf(c->peer_note, sizeof c->peer_note, "no /usr/bin/python3: peer skipped");
        c->peer_state = -1;
        return;
    }
    if (strchr(script, '\'') || strchr(wpath, '\'') || strchr(iopath, '\'')) {
        snprintf(c->peer_note, sizeof c->peer_note, "a path holds a single quote: peer skipped");
        c->peer_state = -1;
        return;
    }
    char cmd[8192];
    int len = snprintf(cmd, sizeof cmd,
                       "%sOPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-COOPERLAKE} OMP_NUM_THREADS=%d /usr/bin/python3 "
                       "'%s' --model %s --weights '%s' --io '%s' --reps %d --warmup %d --threads %d 2>&1",
                       peer_wait_env(), threads, script, c->model, wpath, iopath, reps, warmup, threads);
    if (len < 0 || (size_t)len >= sizeof cmd) {
        snprintf(c->peer_note, sizeof c->peer_note, "command too long");
        c->peer_state = -1;
        return;
    }
    FILE *p = popen(cmd, "r");
    if (!p) {
        snprintf(c->peer_note, sizeof c->peer_note, "could not start python3");
        c->peer_state = -1;
        return;
    }
    char line[1024];
    c->peer_state = -1;
    snprintf(c->peer_note, sizeof c->peer_note, "peer printed no result");
    while (fgets(line, sizeof line, p)) {
        char m[64];
        long long b;
        int nrep;
        if (sscanf(line, "peer model=%63s batch=%lld rel_err=%lf ms_median=%lf ms_min=%lf reps=%d cpu_ms_median=%lf", m,
                   &b, &c->peer_rel, &c->peer_ms, &c->peer_min_ms, &nrep, &c->peer_cpu_ms) == 7) {
            c->peer_state = 1;
        } else if (strstr(line, "MISMATCH")) {
            line[strcspn(line, "\n")] = 0;
            snprintf(c->peer_note, sizeof c->peer_note, "%.150s", line);
        } else if (strstr(line, "ModuleNotFoundError") || strstr(line, "No module named")) {
            snprintf(c->peer_note, sizeof c->peer_note, "torch not installed: peer skipped");
        }
        fputs(line, stderr); /* the peer's own messages, if any */
    }
    int rc = pclose(p);
    if (rc != 0 && c->peer_state == 1) c->peer_state = -1;
}

static int parse_cell(const char *arg, cell *c) {
    memset(c, 0, sizeof *c);
    long long b = 0, s = 0;
    if (sscanf(arg, "%31[^:]:%lld:%lld", c->model, &b, &s) < 2 || b < 1) return 0;
    c->batch = b;
    if (is_segformer(c->model)) {
        c->channels = 3, c->labels = 150, c->size = s ? s : 512;
    } else if (!strcmp(c->model, "vit-tiny-28")) {
        c->channels = 1, c->labels = 10, c->size = s ? s : 28;
    } else if (!strcmp(c->model, "deit-tiny") || !strcmp(c->model, "deit-small")) {
        c->channels = 3, c->labels = 1000, c->size = s ? s : 224;
    } else {
        return 0;
    }
    return c->size > 0;
}

int main(int argc, char **argv) {
    int threads = 2, reps = 5, warmup = 1, peer = 1, ntop = 0;
    const char *json = NULL, *keep = NULL;
    cell *cells = calloc(MAX_CELLS, sizeof *cells);
    int nc = 0;
    if (!cells) return 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--nodes") && i + 1 < argc) ntop = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else if (!strcmp(argv[i], "--keep") && i + 1 < argc) keep = argv[++i];
        else if (!strcmp(argv[i], "--no-peer")) peer = 0;
        else if (argv[i][0] != '-' && nc < MAX_CELLS) {
            if (!parse_cell(argv[i], &cells[nc])) {
                fprintf(stderr, "vit_latency: expected MODEL:BATCH[:SIZE] with MODEL segformer-b0|b1|b2, deit-tiny, "
                        "deit-small or vit-tiny-28 and BATCH >= 1, got '%s'\n", argv[i]);
                return 2;
            }
            nc++;
        } else {
            fprintf(stderr, "usage: %s [--threads N] [--reps N] [--warmup N] [--no-peer] [--nodes N] [--json FILE] "
                    "[--keep DIR] [MODEL:BATCH[:SIZE] ...]\n", argv[0]);
            return 2;
        }
    }
    if (threads < 1 || reps < 1 || warmup < 0 || ntop < 0) {
        fprintf(stderr, "vit_latency: --threads and --reps must be >= 1, --warmup and --nodes >= 0\n");
        return 2;
    }
    if (nc == 0) {
        static const char *const def[] = {"segformer-b0:1", "segformer-b0:8", "deit-tiny:1",
                                          "deit-tiny:8",    "deit-small:1",   "deit-small:8"};
        for (; nc < 6; nc++) parse_cell(def[nc], &cells[nc]);
    }
    /* the files the peer reads: a kept directory, or a temporary one removed at the end */
    char dir[512];
    if (keep) {
        snprintf(dir, sizeof dir, "%s", keep);
        mkdir(dir, 0755);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/vit_latency.XXXXXX", tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
            fprintf(stderr, "vit_latency: cannot create a temporary directory under %s\n", tmp ? tmp : "/tmp");
            return 1;
        }
    }
    fg_threads_set(threads);
    char wpath[8][600], iopath[MAX_CELLS][600];
    char wmodel[8][32];
    int nw = 0;
    for (int i = 0; i < nc; i++) {
        cell *c = &cells[i];
        int wi = 0;
        while (wi < nw && strcmp(wmodel[wi], c->model)) wi++;
        if (wi == nw) {
            if (nw == 8) {
                fprintf(stderr, "vit_latency: at most 8 models per run\n");
                return 2;
            }
            snprintf(wmodel[nw], sizeof wmodel[nw], "%s", c->model);
            snprintf(wpath[nw], sizeof wpath[nw], "%s/%s_%lld.safetensors", dir, c->model, (long long)c->size);
            unlink(wpath[nw]);
            nw++;
        }
        snprintf(iopath[i], sizeof iopath[i], "%s/%s_%lld_b%lld_io.safetensors", dir, c->model, (long long)c->size,
                 (long long)c->batch);
        fprintf(stderr, "vit_latency: %s batch %lld %lldx%lld: frugal (%d warm-up, %d timed)...\n", c->model,
                (long long)c->batch, (long long)c->size, (long long)c->size, warmup, reps);
        if (run_ours(c, wpath[wi], iopath[i], reps, warmup, ntop) != FG_OK) {
            fprintf(stderr, "vit_latency: %s batch %lld: %s\n", c->model, (long long)c->batch, fg_last_error());
            return 1;
        }
        fprintf(stderr, "vit_latency:   frugal %.1f ms per forward (median)\n", c->ours_ms);
        if (peer) {
            fprintf(stderr, "vit_latency: %s batch %lld: PyTorch...\n", c->model, (long long)c->batch);
            run_peer(c, wpath[wi], iopath[i], reps, warmup, threads);
            if (c->peer_state == 1) fprintf(stderr, "vit_latency:   PyTorch %.1f ms (logits rel. diff %.2e)\n", c->peer_ms, c->peer_rel);
            else fprintf(stderr, "vit_latency:   PyTorch: %s\n", c->peer_note);
        } else {
            snprintf(c->peer_note, sizeof c->peer_note, "--no-peer");
        }
        if (!keep) unlink(iopath[i]);
    }
    if (!keep) {
        for (int i = 0; i < nw; i++) unlink(wpath[i]);
        rmdir(dir);
    }

    printf("\ncommand:");
    static const char *const envs[] = {"ONEDNN_MAX_CPU_ISA", "FRUGAL_MAX_CPU_ISA", "OPENBLAS_CORETYPE", "OMP_WAIT_POLICY",
                                       "GOMP_SPINCOUNT"};
    for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++)
        if (getenv(envs[i])) printf(" %s=%s", envs[i], getenv(envs[i]));
    for (int i = 0; i < argc; i++) printf(" %s", argv[i]);
    char model[64];
    double la[3] = {0, 0, 0};
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (fscanf(lf, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3) la[0] = la[1] = la[2] = -1;
        fclose(lf);
    }
    printf("\nCPU %s (%s); frugal's kernels %s; threads %d; OpenMP wait policy %s, the peer's %s; load average at "
           "the end %.2f %.2f %.2f\n",
           fg_cpu_model(model, sizeof model), fg_cpu_isa_name(fg_cpu_isa_detected()), fg_cpu_isa_name(fg_cpu_isa_active()),
           threads, fg_threads_wait_policy(), *peer_wait_env() ? "passive (OMP_WAIT_POLICY=PASSIVE)" : "the caller's",
           la[0], la[1], la[2]);
    printf("dense inference (eval, no skips), %d warm-up + median of %d timed forwards each side (wall clock; also the "
           "minimum, and the median process CPU time of all threads, which other load disturbs less); PyTorch 1.13 "
           "eager, torch.inference_mode, same weights (logits checked within 1e-4 relative before timing); speed-up = "
           "PyTorch ms / frugal ms\n\n", warmup, reps);
    printf("| model | batch | input | GFLOP | frugal ms | PyTorch ms | speed-up | frugal GFLOP/s | PyTorch GFLOP/s | "
           "min ms frugal / PyTorch | CPU ms frugal / PyTorch (ratio) | logits rel. diff |\n");
    printf("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < nc; i++) {
        const cell *c = &cells[i];
        printf("| %s | %lld | %lldx%lldx%lld | %.2f | %.1f |", c->model, (long long)c->batch, (long long)c->channels,
               (long long)c->size, (long long)c->size, c->flops * 1e-9, c->ours_ms);
        if (c->peer_state == 1)
            printf(" %.1f | %.2fx | %.1f | %.1f | %.1f / %.1f | %.1f / %.1f (%.2fx) | %.1e |\n", c->peer_ms,
                   c->peer_ms / c->ours_ms, c->flops * 1e-6 / c->ours_ms, c->flops * 1e-6 / c->peer_ms, c->ours_min_ms,
                   c->peer_min_ms, c->ours_cpu_ms, c->peer_cpu_ms, c->peer_cpu_ms / c->ours_cpu_ms, c->peer_rel);
        else
            printf(" (%s) | - | %.1f | - | %.1f / - | %.1f / - | - |\n", c->peer_note, c->flops * 1e-6 / c->ours_ms,
                   c->ours_min_ms, c->ours_cpu_ms);
    }
    printf("\nwhere frugal's time goes (ms per forward, by op family; node timers):\n\n| model | batch |");
    int used[FG_OP_COUNT] = {0};
    for (int i = 0; i < nc; i++)
        for (int op = 0; op < FG_OP_COUNT; op++)
            if (cells[i].op_ms[op] > 0.05) used[op] = 1;
    int ncol = 0;
    for (int op = 0; op < FG_OP_COUNT; op++)
        if (used[op]) printf(" %s |", fg_op_name((fg_op)op)), ncol++;
    printf("\n|---|---:|");
    for (int k = 0; k < ncol; k++) printf("---:|");
    printf("\n");
    for (int i = 0; i < nc; i++) {
        printf("| %s | %lld |", cells[i].model, (long long)cells[i].batch);
        for (int op = 0; op < FG_OP_COUNT; op++)
            if (used[op]) printf(" %.1f |", cells[i].op_ms[op]);
        printf("\n");
    }
    for (int i = 0; i < nc && ntop > 0; i++) {
        printf("\nslowest nodes of %s batch %lld (ms per forward):\n\n| node | op | ms |\n|---|---|---:|\n", cells[i].model,
               (long long)cells[i].batch);
        for (int k = 0; k < cells[i].ntop; k++)
            printf("| %s | %s | %.2f |\n", cells[i].top[k].name, fg_op_name(cells[i].top[k].op), cells[i].top[k].ms);
    }
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) {
            fprintf(stderr, "vit_latency: cannot write --json %s\n", json);
            return 1;
        }
        fprintf(f, "{\"threads\": %d, \"reps\": %d, \"warmup\": %d, \"cpu\": \"%s\", \"loadavg\": [%.2f, %.2f, %.2f], "
                "\"cells\": [", threads, reps, warmup, model, la[0], la[1], la[2]);
        for (int i = 0; i < nc; i++) {
            const cell *c = &cells[i];
            fprintf(f, "%s\n  {\"model\": \"%s\", \"batch\": %lld, \"size\": %lld, \"gflop\": %.4f, \"frugal_ms\": %.3f, "
                    "\"frugal_min_ms\": %.3f, \"frugal_cpu_ms\": %.3f", i ? "," : "", c->model, (long long)c->batch,
                    (long long)c->size, c->flops * 1e-9, c->ours_ms, c->ours_min_ms, c->ours_cpu_ms);
            if (c->peer_state == 1)
                fprintf(f, ", \"pytorch_ms\": %.3f, \"pytorch_min_ms\": %.3f, \"pytorch_cpu_ms\": %.3f, \"speedup\": %.4f, "
                        "\"logits_rel_diff\": %.3e", c->peer_ms, c->peer_min_ms, c->peer_cpu_ms, c->peer_ms / c->ours_ms,
                        c->peer_rel);
            else
                fprintf(f, ", \"pytorch_ms\": null, \"peer_note\": \"%s\"", c->peer_note);
            fprintf(f, ", \"frugal_ms_by_op\": {");
            int first = 1;
            for (int op = 0; op < FG_OP_COUNT; op++)
                if (c->op_ms[op] > 0) {
                    fprintf(f, "%s\"%s\": %.3f", first ? "" : ", ", fg_op_name((fg_op)op), c->op_ms[op]);
                    first = 0;
                }
            fprintf(f, "}}");
        }
        fprintf(f, "\n]}\n");
        fclose(f);
    }
    int bad = 0;
    for (int i = 0; i < nc; i++) bad |= peer && cells[i].peer_state == -1 && strstr(cells[i].peer_note, "MISMATCH");
    free(cells);
    return bad ? 1 : 0;
}
