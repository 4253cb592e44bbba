/* `frugal vmem report`: the vDNN comparison on one model. For each policy (none, all, conv, dyn,
 * plan) it builds the model in a fresh pool of --device-mem bytes, runs N training iterations
 * (forward, backward, SGD step) on one random batch and reports the iterations after the first,
 * averaged: peak and time-weighted average device bytes (the pool's stats over them),
 * bytes offloaded and prefetched, seconds per iteration, the overhead against the oracle (`none`
 * in an unlimited pool) and the seconds spent waiting on the link. A policy that does not fit
 * the budget is a row saying so with the smallest budget it needs (from vmem's plan).
 *
 * plan decides from the oracle's measured layer times (the oracle runs first). When the batch is
 * too large for the oracle to run on this machine (VGG-16 at batch 256 needs more than its RAM),
 * --oracle-batch runs the oracle at another batch and overheads compare seconds per image. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "plot.h"

typedef struct report_args {
    const char *model, *input, *json, *policies, *spill_dir, *oracle_batch, *plot, *conv_algo;
    int64_t batch;
    size_t device_mem, host_mem;
    int iters, threads, verbose, offload_weights;
    double lr, link_gbps, link_latency_us;
    const double *step_seconds; /* the oracle's, for plan */
} report_args;

/* One row of the report. Sizes are bytes; times seconds. */
typedef struct report_row {
    fg_vmem_kind kind;
    int fits;                 /* 0: the budget is too small (min_device_bytes says what is needed) */
    size_t peak_device;       /* measured pool peak of the timed iteration */
    double avg_device;        /* time-weighted average bytes in use over the timed iteration */
    size_t predicted_peak;    /* vmem plan's prediction of the peak */
    size_t min_device;        /* the smallest pool capacity the policy runs in */
    uint64_t offloaded, prefetched;
    double iter_seconds, stall_seconds, overhead;
    float loss;               /* of the timed iteration (the same under every policy) */
    float first_loss;         /* of the first iteration */
    int64_t batch;
    int n_algo_changed, n_recompute;
    size_t host_tier, disk_tier;  /* bytes placed in the host arena and in spill files */
    size_t persistent;            /* inputs, params, their gradients, outputs: on the device always
                                     (without --offload-weights) */
    size_t weight_bytes;          /* --offload-weights: copied between host homes and the device */
    int n_disk;
    int replans;                  /* plan: searches again after measuring (its own times, conv algorithms) */
    double *secs;             /* 2N step seconds of the timed iteration (the oracle's feed plan) */
    char decision[256];
    fg_vmem_trace_event *ev;  /* --plot: the trace of the last iteration */
    size_t n_ev;
} report_row;

static fg_status make_policy(const report_args *a, fg_vmem_kind kind, int dry_run, fg_mem_policy *pol, fg_vmem **vm) {
    fg_vmem_config vc = fg_vmem_config_defaults(kind);
    vc.dry_run = dry_run;
    if (a) {
        vc.trace = a->plot ? FG_VMEM_TRACE_LAST : FG_VMEM_TRACE_OFF;
        vc.spill_dir = a->spill_dir;
        vc.host_capacity = a->host_mem;
        vc.link.gbps = a->link_gbps;
        vc.link.latency_us = a->link_latency_us;
        vc.step_seconds = kind == FG_VMEM_PLAN ? a->step_seconds : NULL;
        vc.model.compute_share = -1;
        vc.offload_weights = a->offload_weights && kind != FG_VMEM_NONE; /* none is the baseline */
    }
    FG_TRY(fg_vmem_policy_create(pol, &vc));
    *vm = fg_vmem_of(pol);
    return FG_OK;
}

/* The smallest budget of `kind` (vmem's plan in an unlimited pool). */
static fg_status min_budget(const char *model, const fg_model_cfg *mc, fg_vmem_kind kind, size_t *out) {
    fg_pool *pool = NULL;
    fg_graph *g = NULL;
    fg_model_io io;
    fg_mem_policy pol;
    fg_vmem *vm = NULL;
    *out = 0;
    FG_TRY(fg_pool_create(&pool, 0));
    fg_status s = make_policy(NULL, kind, 1, &pol, &vm);
    if (s == FG_OK) s = fg_train_build_model(&g, &io, model, mc, 1, pool, &pol);
    if (s == FG_OK) {
        fg_vmem_stats st;
        fg_vmem_get_stats(vm, &st);
        *out = st.min_device_bytes;
    }
    fg_graph_free(g);
    fg_pool_destroy(pool);
    return s;
}

/* Runs `iters` iterations of `kind` in a pool of `capacity` bytes (0 = unlimited) and fills the
 * measured fields of *r. Returns FG_ERR_OOM (message from plan) when the budget is too small. */
static fg_status run_policy(const report_args *a, const fg_model_cfg *mc, fg_vmem_kind kind, size_t capacity,
                            int iters, report_row *r) {
    fg_pool *pool = NULL;
    fg_graph *g = NULL;
    fg_optim *opt = NULL;
    fg_model_io io;
    fg_mem_policy pol;
    fg_vmem *vm = NULL;
    memset(r, 0, sizeof *r);
    r->kind = kind;
    size_t img = (size_t)(mc->channels * mc->height * mc->width);
    size_t nx = img * (size_t)mc->batch;
    float *x = malloc(nx * sizeof(float));
    int32_t *y = malloc((size_t)mc->batch * sizeof(int32_t));
    fg_status s = (x && y) ? FG_OK : fg_fail(FG_ERR_OOM, "vmem report: out of host memory");
    /* the same random batch and weights under every policy (fixed seeds): the losses agree */
    fg_rng rng;
    fg_rng_seed(&rng, 42);
    for (size_t i = 0; s == FG_OK && i < nx; i++) x[i] = fg_rng_normal(&rng);
    for (int64_t i = 0; s == FG_OK && i < mc->batch; i++) y[i] = (int32_t)fg_rng_below(&rng, (uint64_t)mc->classes);
    if (s == FG_OK) s = fg_pool_create(&pool, capacity);
    if (s == FG_OK) s = make_policy(a, kind, 0, &pol, &vm);
    if (s == FG_OK) s = fg_train_build_model(&g, &io, a->model, mc, 1, pool, &pol);
    if (s == FG_OK) {
        fg_vmem_stats st;
        fg_vmem_get_stats(vm, &st);
        r->predicted_peak = st.peak_device_bytes;
        r->min_device = st.min_device_bytes;
        r->fits = 1;
        r->batch = mc->batch;
        fg_rng wr;
        fg_rng_seed(&wr, 7);
        fg_graph_init_params(g, &wr);
        fg_optim_cfg oc = fg_optim_defaults(FG_OPTIM_SGD, (float)a->lr);
        oc.momentum = 0.9f;
        s = fg_optim_create(&opt, g, &oc);
        r->secs = calloc((size_t)(2 * fg_graph_n_nodes(g)), sizeof(double));
        if (s == FG_OK && !r->secs) s = fg_fail(FG_ERR_OOM, "vmem report: out of host memory");
    }
    /* the timed window: every iteration after the first (plan's first may be its profiling one,
     * and the first of any run fills caches), averaged; a single iteration is timed alone. When
     * plan re-plans at the end of an iteration, the next one runs the new schedule cold (a new
     * host arena, other conv primitives): the window restarts after it, keeping at least the last
     * iteration */
    int first_timed = iters > 1 ? 1 : 0, n_timed = iters - first_timed, replans_seen = 0;
    double t_window = 0;
    for (int it = 0; s == FG_OK && it < iters; it++) {
        int last = it == iters - 1;
        s = fg_graph_set_input(g, io.input, x, nx * sizeof(float));
        if (s == FG_OK) s = fg_graph_set_input(g, io.labels, y, (size_t)mc->batch * sizeof(int32_t));
        if (s != FG_OK) break;
        fg_graph_set_training(g, 1);
        fg_graph_set_seed(g, 1); /* the same dropout masks every iteration: the loss tracks the weights alone */
        double t0 = fg_time_now();
        if (it == first_timed) {
            fg_pool_reset_stats(pool);
            fg_vmem_reset_stats(vm);
            fg_graph_reset_times(g);
            t0 = t_window = fg_time_now();
        }
        s = fg_graph_forward(g);
        if (s == FG_OK) s = fg_graph_backward(g);
        if (s == FG_OK) s = fg_optim_step(opt);
        if (s == FG_OK && it == 0) r->first_loss = fg_graph_loss(g);
        if (s == FG_OK && vm) {
            fg_vmem_stats rs;
            fg_vmem_get_stats(vm, &rs);
            if (rs.replans > replans_seen && it + 1 >= first_timed && !last) {
                replans_seen = rs.replans;
                first_timed = it + 2 < iters ? it + 2 : iters - 1;
                n_timed = iters - first_timed;
                fg_log(FG_LOG_INFO, "%s re-planned after iteration %d: timing from iteration %d", fg_vmem_kind_name(kind),
                       it + 1, first_timed + 1);
            }
        }
        if (s == FG_OK && iters > 2)
            fg_log(FG_LOG_INFO, "%s: iteration %d/%d: loss %.6f, %.2f s", fg_vmem_kind_name(kind), it + 1, iters,
                   (double)fg_graph_loss(g), fg_time_now() - t0);
        if (s == FG_OK && last) {
            int N = fg_graph_n_nodes(g);
            for (int i = 0; i < N; i++) {
                r->secs[i] = fg_graph_node_time(g, i, FG_FORWARD) / n_timed;
                r->secs[2 * N - 1 - i] = fg_graph_node_time(g, i, FG_BACKWARD) / n_timed;
            }
            r->iter_seconds = (fg_time_now() - t_window) / n_timed;
            fg_pool_stats ps = fg_pool_get_stats(pool);
            r->peak_device = ps.peak;
            r->avg_device = ps.avg_in_use;
            fg_vmem_stats st;
            fg_vmem_get_stats(vm, &st);
            r->offloaded = st.link.bytes_offloaded / (uint64_t)n_timed;
            r->prefetched = st.link.bytes_prefetched / (uint64_t)n_timed;
            r->stall_seconds = st.link.stall_seconds / n_timed;
            r->loss = fg_graph_loss(g);
            if (a->plot) { /* the last iteration's trace (TRACE_LAST restarts at each forward) */
                size_t n = fg_vmem_trace_count(vm);
                r->ev = malloc((n + 1) * sizeof *r->ev);
                if (!r->ev) s = fg_fail(FG_ERR_OOM, "vmem report: out of host memory for the trace");
                else r->n_ev = fg_vmem_trace_get(vm, r->ev, n);
            }
            r->n_algo_changed = st.n_algo_changed;
            r->n_recompute = st.n_recompute_tensors;
            r->host_tier = st.host_tier_bytes;
            r->persistent = st.persistent_bytes;
            r->weight_bytes = st.weight_bytes_per_iter;
            r->disk_tier = st.disk_tier_bytes;
            r->n_disk = st.n_disk_tensors;
            r->replans = st.replans;
            snprintf(r->decision, sizeof r->decision, "%s", st.decision);
        }
        if (s == FG_OK) fg_graph_zero_grad(g);
    }
    fg_optim_free(opt);
    fg_graph_free(g);
    fg_pool_destroy(pool);
    free(x);
    free(y);
    return s;
}

static int write_report_json(const report_args *a, const fg_model_cfg *mc, const report_row *rows, int n,
                             const report_row *oracle) {
    cli_json j;
    fg_status s = cli_json_open(&j, a->json);
    if (s != FG_OK) return cli_fail("--json", s);
    cli_json_obj_begin(&j, NULL);
    cli_json_str(&j, "model", a->model);
    cli_json_int(&j, "batch", (long long)mc->batch);
    cli_json_int(&j, "height", (long long)mc->height);
    cli_json_int(&j, "width", (long long)mc->width);
    cli_json_int(&j, "device_mem", (long long)a->device_mem);
    cli_json_int(&j, "iters", a->iters);
    cli_json_int(&j, "threads", fg_threads_get());
    cli_json_num(&j, "oracle_iter_seconds", oracle->iter_seconds);
    cli_json_int(&j, "oracle_batch", (long long)oracle->batch);
    cli_json_arr_begin(&j, "policies");
    for (int i = 0; i < n; i++) {
        const report_row *r = &rows[i];
        double nan = NAN;
        cli_json_obj_begin(&j, NULL);
        cli_json_str(&j, "policy", fg_vmem_kind_name(r->kind));
        cli_json_str(&j, "decision", r->fits ? r->decision : "");
        cli_json_int(&j, "fits", r->fits);
        cli_json_int(&j, "min_device_bytes", (long long)r->min_device);
        cli_json_num(&j, "peak_device_bytes", r->fits ? (double)r->peak_device : nan);
        cli_json_num(&j, "predicted_peak_device_bytes", r->fits ? (double)r->predicted_peak : nan);
        cli_json_num(&j, "avg_device_bytes", r->fits ? r->avg_device : nan);
        cli_json_num(&j, "bytes_offloaded", r->fits ? (double)r->offloaded : nan);
        cli_json_num(&j, "bytes_prefetched", r->fits ? (double)r->prefetched : nan);
        cli_json_num(&j, "iter_seconds", r->fits ? r->iter_seconds : nan);
        cli_json_num(&j, "overhead_vs_oracle", r->fits ? r->overhead : nan);
        cli_json_num(&j, "stall_seconds", r->fits ? r->stall_seconds : nan);
        cli_json_num(&j, "persistent_bytes", r->fits ? (double)r->persistent : nan);
        cli_json_num(&j, "weight_bytes_copied", r->fits ? (double)r->weight_bytes : nan);
        cli_json_num(&j, "host_tier_bytes", r->fits ? (double)r->host_tier : nan);
        cli_json_num(&j, "disk_tier_bytes", r->fits ? (double)r->disk_tier : nan);
        cli_json_num(&j, "loss", r->fits ? (double)r->loss : nan);
        cli_json_obj_end(&j);
    }
    cli_json_arr_end(&j);
    cli_json_obj_end(&j);
    s = cli_json_close(&j);
    if (s != FG_OK) return cli_fail("--json", s);
    return CLI_EXIT_OK;
}

/* The largest batch whose network-wide allocation (none) fits `capacity` (plan only, no run). */
static fg_status largest_none_batch(const char *model, const fg_model_cfg *mc, size_t capacity, int64_t *out) {
    int64_t lo = 0, hi = mc->batch;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        fg_model_cfg m = *mc;
        m.batch = mid;
        size_t need;
        FG_TRY(min_budget(model, &m, FG_VMEM_NONE, &need));
        if (need <= capacity) lo = mid;
        else hi = mid - 1;
    }
    *out = lo;
    return FG_OK;
}

static int parse_policies(const cli_cmd *cmd, const char *list, fg_vmem_kind *kinds, int *n) {
    *n = 0;
    if (!list) {
        for (int k = 0; k < FG_VMEM_KIND_COUNT; k++) kinds[(*n)++] = (fg_vmem_kind)k;
        return CLI_EXIT_OK;
    }
    char buf[128];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        fg_vmem_kind k;
        if (fg_vmem_kind_parse(tok, &k) != FG_OK || *n >= FG_VMEM_KIND_COUNT)
            return cli_usage_error(cmd, "--policies: expected a comma-separated list of none, all, conv, dyn, plan; "
                                   "got '%s'", list);
        for (int i = 0; i < *n; i++)
            if (kinds[i] == k) return cli_usage_error(cmd, "--policies: %s given twice in '%s'", tok, list);
        kinds[(*n)++] = k;
    }
    return CLI_EXIT_OK;
}

static void free_rows(report_row *rows, int n, report_row *oracle) {
    for (int i = 0; i < n; i++) {
        free(rows[i].secs);
        free(rows[i].ev);
    }
    free(oracle->secs);
    free(oracle->ev);
}

static int vmem_report(int argc, char **argv) {
    report_args a;
    memset(&a, 0, sizeof a);
    a.iters = 2;
    a.lr = 1e-3;
    cli_opt opts[] = {
        {"model", CLI_STR, &a.model, "NAME", "zoo model (frugal model list); required", 0},
        {"batch", CLI_I64, &a.batch, "B", "batch size; required", 0},
        {"input", CLI_STR, &a.input, "HxW", "input image size (default: the model's, e.g. 224x224 for alexnet)", 0},
        {"device-mem", CLI_SIZE, &a.device_mem, "SIZE", "device pool capacity for every policy, e.g. 2G (default unlimited)", 0},
        {"policies", CLI_STR, &a.policies, "LIST", "comma-separated subset of none,all,conv,dyn,plan (default all five)", 0},
        {"iters", CLI_INT, &a.iters, "N", "training iterations per policy on one repeated batch; all but the first are timed (default 2)", 0},
        {"lr", CLI_FLOAT, &a.lr, "LR", "SGD learning rate, momentum 0.9 (default 0.001)", 0},
        {"oracle-batch", CLI_STR, &a.oracle_batch, "B|fit",
         "run the oracle at batch B (or the largest batch none fits in --device-mem) and compare per image", 0},
        {"spill-dir", CLI_STR, &a.spill_dir, "DIR", "disk tier: offloaded tensors past --host-mem go to files in DIR", 0},
        {"conv-algo", CLI_STR, &a.conv_algo, "ALGO",
         "start every conv on implicit (memory-optimal, vDNN's (m)), gemm or dnnl (default; vDNN's (p))", 0},
        {"host-mem", CLI_SIZE, &a.host_mem, "SIZE", "host tier capacity (default unlimited)", 0},
        {"offload-weights", CLI_FLAG, &a.offload_weights, NULL,
         "every policy but none keeps params, their gradients and the inputs in host memory between uses", 0},
        {"link-gbps", CLI_FLOAT, &a.link_gbps, "GB/s",
         "pace the link to this bandwidth, 0.001 to 1e6 (default 0 = unpaced memcpy)", 0},
        {"link-latency-us", CLI_FLOAT, &a.link_latency_us, "US",
         "per-copy latency of the paced link, 0 to 1e6 (default 0)", 0},
        {"json", CLI_STR, &a.json, "FILE", "write one record per policy as JSON", 0},
        {"plot", CLI_STR, &a.plot, "FILE.png", "device memory over the last iteration, one line per policy (gnuplot)", 0},
        {"threads", CLI_INT, &a.threads, "T", "threads (default 0 = all cores)", 0},
        {"verbose", CLI_FLAG, &a.verbose, NULL, "debug messages", 0},
        {NULL, CLI_FLAG, NULL, NULL, NULL, 0},
    };
    cli_cmd cmd = {"vmem report", "frugal vmem report --model NAME --batch B [options]",
                   "Trains N iterations (forward, backward, SGD) on one random batch under each vmem policy\n"
                   "(none, all, conv, dyn, plan) and prints, averaged over all iterations but the first: peak and\n"
                   "time-weighted average device bytes, bytes offloaded and prefetched, seconds, overhead against the oracle\n"
                   "(none in an unlimited pool) and seconds stalled on the link. A policy that does not fit\n"
                   "--device-mem is reported with the smallest budget it needs. plan decides from the oracle's\n"
                   "measured layer times.",
                   opts, 0, 0, NULL};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc != CLI_CONTINUE) return rc;
    cli_log_init(a.verbose);
    fg_model_cfg mc;
    rc = cli_zoo_model_cfg(&cmd, a.model, cli_find(opts, "batch")->set, a.batch, a.input, &mc);
    if (rc != CLI_CONTINUE) return rc;
    if (a.iters <= 0) return cli_usage_error(&cmd, "--iters must be > 0, got %d", a.iters);
    if (a.threads < 0) return cli_usage_error(&cmd, "--threads must be >= 0 (0 = all cores), got %d", a.threads);
    /* a paced link slower than 1 MB/s, or a second per copy, turns the report into a run of days
     * (1e-300 GB/s never finished) */
    if (!(a.link_gbps == 0 || (a.link_gbps >= 1e-3 && a.link_gbps <= 1e6)))
        return cli_usage_error(&cmd, "--link-gbps %g: expected 0 (unpaced) or 0.001 to 1e6 GB/s", a.link_gbps);
    if (!(a.link_latency_us >= 0 && a.link_latency_us <= 1e6))
        return cli_usage_error(&cmd, "--link-latency-us %g: expected 0 to 1e6 microseconds per copy",
                               a.link_latency_us);
    if (!(a.lr > 0)) return cli_usage_error(&cmd, "--lr must be > 0, got %g", a.lr);
    if (a.conv_algo) {
        mc.force_conv_algo = 0;
        for (int k = 0; k < FG_CONV_ALGO_COUNT; k++)
            if (strcmp(a.conv_algo, fg_conv_algo_name((fg_conv_algo)k)) == 0) {
                mc.force_conv_algo = 1;
                mc.conv_algo = (fg_conv_algo)k;
            }
        if (!mc.force_conv_algo)
            return cli_usage_error(&cmd, "--conv-algo: expected implicit, gemm or dnnl, got '%s'", a.conv_algo);
    }
    fg_vmem_kind kinds[FG_VMEM_KIND_COUNT];
    int nk;
    rc = parse_policies(&cmd, a.policies, kinds, &nk);
    if (rc != CLI_EXIT_OK) return rc;
    if (a.plot) { /* before minutes of training, not after */
        int prc = cli_plot_option_check(&cmd, a.plot);
        if (prc != CLI_CONTINUE) return prc;
    }
    rc = CLI_EXIT_OK;
    fg_model_cfg omc = mc; /* the oracle's */
    if (a.oracle_batch) {
        long long ob;
        char extra;
        if (strcmp(a.oracle_batch, "fit") == 0) {
            if (!a.device_mem) return cli_usage_error(&cmd, "--oracle-batch fit needs --device-mem");
            fg_status s = largest_none_batch(a.model, &mc, a.device_mem, &omc.batch);
            if (s != FG_OK) return cli_fail("--oracle-batch fit", s);
            if (omc.batch <= 0) return cli_usage_error(&cmd, "--oracle-batch fit: not even batch 1 fits in --device-mem without offload");
        } else if (sscanf(a.oracle_batch, "%lld%c", &ob, &extra) == 1 && ob > 0) {
            omc.batch = ob;
        } else {
            return cli_usage_error(&cmd, "--oracle-batch: expected a batch size or 'fit', got '%s'", a.oracle_batch);
        }
    }
    { /* the oracle allocates network-wide in an unlimited pool: refuse what this machine cannot hold
       * rather than be killed by the kernel minutes later */
        size_t need = 0;
        fg_status s = min_budget(a.model, &omc, FG_VMEM_NONE, &need);
        if (s != FG_OK) return cli_fail("oracle plan", s);
        char what[96];
        snprintf(what, sizeof what, "the oracle (none in an unlimited pool at batch %lld)", (long long)omc.batch);
        rc = cli_ram_check(&cmd, what, (double)need,
                           "pass --oracle-batch fit (with --device-mem) or a smaller --oracle-batch");
        if (rc != CLI_CONTINUE) return rc;
        rc = CLI_EXIT_OK;
    }
    int separate_oracle = a.device_mem || omc.batch != mc.batch;
    fg_threads_set(a.threads);

    /* the command line, so a pasted table says how it was made */
    printf("frugal vmem report");
    for (int i = 0; i < argc; i++) printf(" %s", argv[i]);
    printf("\n");
    char dm[32];
    fg_bytes_str(dm, sizeof dm, (double)a.device_mem);
    printf("model %s, batch %lld, input %lldx%lldx%lld, %d iterations (all but the first timed, averaged), %d threads, device %s, link %s\n",
           a.model, (long long)mc.batch, (long long)mc.channels, (long long)mc.height, (long long)mc.width, a.iters,
           fg_threads_get(), a.device_mem ? dm : "unlimited", a.link_gbps > 0 ? "paced" : "unpaced");
    if (a.link_gbps > 0) printf("link paced to %.2f GB/s, %.1f us per copy\n", a.link_gbps, a.link_latency_us);
    if (omc.batch != mc.batch)
        printf("oracle at batch %lld%s; overheads compare seconds per image\n", (long long)omc.batch,
               a.oracle_batch && strcmp(a.oracle_batch, "fit") == 0 ? " (the largest none fits in the budget)" : "");
    printf("\n");
    fflush(stdout);

    report_row rows[FG_VMEM_KIND_COUNT], oracle;
    memset(rows, 0, sizeof rows);
    memset(&oracle, 0, sizeof oracle);
    fg_status s;
    /* warm-up, not reported: one iteration in an unlimited pool, so the first measured run does
     * not pay for starting the thread pool and filling oneDNN's primitive cache */
    s = run_policy(&a, &omc, FG_VMEM_NONE, 0, 1, &oracle);
    free(oracle.secs);
    free(oracle.ev);
    if (s != FG_OK) return cli_fail("warm-up (none, unlimited pool)", s);
    memset(&oracle, 0, sizeof oracle);
    /* the oracle: none with an unlimited pool */
    s = run_policy(&a, &omc, FG_VMEM_NONE, 0, a.iters, &oracle);
    if (s != FG_OK) {
        rc = cli_fail("oracle (none, unlimited pool)", s);
        free_rows(rows, 0, &oracle);
        return rc;
    }
    /* plan decides on the oracle's layer times when they are for this batch (else it measures) */
    a.step_seconds = omc.batch == mc.batch ? oracle.secs : NULL;
    for (int i = 0; i < nk; i++) {
        if (!separate_oracle && kinds[i] == FG_VMEM_NONE) {
            rows[i] = oracle;
            rows[i].secs = NULL;
            oracle.ev = NULL; /* the row owns the trace now */
            continue;
        }
        s = run_policy(&a, &mc, kinds[i], a.device_mem, a.iters, &rows[i]);
        if (s == FG_ERR_OOM && a.device_mem && !rows[i].fits) {
            /* plan refused the budget: report the smallest one instead of aborting */
            fg_log(FG_LOG_DEBUG, "%s: %s", fg_vmem_kind_name(kinds[i]), fg_last_error());
            s = min_budget(a.model, &mc, kinds[i], &rows[i].min_device);
            if (s == FG_OK) continue;
        }
        if (s != FG_OK) {
            rc = cli_fail(fg_vmem_kind_name(kinds[i]), s);
            free_rows(rows, nk, &oracle);
            return rc;
        }
    }
    double oracle_per_image = oracle.iter_seconds / (double)omc.batch;
    for (int i = 0; i < nk; i++)
        if (rows[i].fits)
            rows[i].overhead = oracle_per_image > 0 ? rows[i].iter_seconds / (double)mc.batch / oracle_per_image - 1.0 : 0.0;

    printf("%-6s %11s %11s %8s %8s %11s %11s %11s %9s %9s %9s\n", "policy", "peak dev", "avg dev", "avg/none", "act/none",
           "min budget", "offloaded", "prefetched", "iter s", "overhead", "stall s");
    double none_avg = 0, none_p = 0;
    for (int i = 0; i < nk; i++)
        if (kinds[i] == FG_VMEM_NONE && rows[i].fits) {
            none_avg = rows[i].avg_device;
            none_p = (double)rows[i].persistent;
        }
    if (none_avg <= 0 && omc.batch == mc.batch) {
        none_avg = oracle.avg_device;
        none_p = (double)oracle.persistent;
    }
    for (int i = 0; i < nk; i++) {
        const report_row *r = &rows[i];
        char pk[32], av[32], mn[32], of[32], pf[32], rel[16];
        fg_bytes_str(mn, sizeof mn, (double)r->min_device);
        if (!r->fits) {
            printf("%-6s does not fit in %s: needs at least %s (%zu bytes)\n", fg_vmem_kind_name(kinds[i]), dm, mn,
                   r->min_device);
            continue;
        }
        fg_bytes_str(pk, sizeof pk, (double)r->peak_device);
        fg_bytes_str(av, sizeof av, r->avg_device);
        fg_bytes_str(of, sizeof of, (double)r->offloaded);
        fg_bytes_str(pf, sizeof pf, (double)r->prefetched);
        char act[16];
        double p = (double)r->persistent;
        if (none_avg > 0) snprintf(rel, sizeof rel, "%+.1f%%", 100.0 * (r->avg_device / none_avg - 1.0));
        else snprintf(rel, sizeof rel, "-");
        /* none's persistent bytes in the denominator: with --offload-weights a row's own are only
         * the outputs, and its weight copies count as working set */
        if (none_avg > none_p) snprintf(act, sizeof act, "%+.1f%%", 100.0 * ((r->avg_device - p) / (none_avg - none_p) - 1.0));
        else snprintf(act, sizeof act, "-");
        printf("%-6s %11s %11s %8s %8s %11s %11s %11s %9.4f %+8.1f%% %9.4f\n", fg_vmem_kind_name(kinds[i]), pk, av, rel, act,
               mn, of, pf, r->iter_seconds, 100.0 * r->overhead, r->stall_seconds);
    }
    if (none_p > 0) {
        char pb[32];
        printf("act/none: the average without the persistent bytes (none's: %s: inputs, parameters, their gradients, "
               "outputs)\n",
               fg_bytes_str(pb, sizeof pb, none_p));
    }
    for (int i = 0; i < nk; i++)
        if (rows[i].fits && rows[i].weight_bytes) {
            char wb[32], pb[32];
            printf("%s: weights offloaded: %s per iteration copied between their host homes and the device; %s "
                   "persistent\n",
                   fg_vmem_kind_name(kinds[i]), fg_bytes_str(wb, sizeof wb, (double)rows[i].weight_bytes),
                   fg_bytes_str(pb, sizeof pb, (double)rows[i].persistent));
        }
    printf("\noracle: none in an unlimited pool at batch %lld, %.4f s per iteration (%.2f ms per image)\n",
           (long long)omc.batch, oracle.iter_seconds, 1e3 * oracle_per_image);
    for (int i = 0; i < nk; i++)
        if (rows[i].fits && (kinds[i] == FG_VMEM_DYN || kinds[i] == FG_VMEM_PLAN))
            printf("%s chose: %s%s\n", fg_vmem_kind_name(kinds[i]), rows[i].decision,
                   rows[i].replans ? " (after re-planning from a measured iteration)" : "");
    for (int i = 0; i < nk; i++)
        if (rows[i].fits && rows[i].disk_tier) {
            char h[32], d[32];
            printf("%s: host tier %s, disk tier %s (%d tensors in spill files)\n", fg_vmem_kind_name(kinds[i]),
                   fg_bytes_str(h, sizeof h, (double)rows[i].host_tier), fg_bytes_str(d, sizeof d, (double)rows[i].disk_tier),
                   rows[i].n_disk);
        }
    if (a.iters > 1)
        for (int i = 0; i < nk; i++)
            if (rows[i].fits)
                printf("%s: loss %.6f at iteration 1, %.6f at iteration %d (one repeated batch)\n",
                       fg_vmem_kind_name(kinds[i]), (double)rows[i].first_loss, (double)rows[i].loss, a.iters);
    /* offload, prefetch and recompute move or rebuild bytes: with the same algorithms the losses
     * agree bit for bit; where dyn/plan changed algorithms, within 1e-5 relative */
    if (omc.batch == mc.batch)
        for (int i = 0; i < nk; i++) {
            if (!rows[i].fits) continue;
            double d = fabs((double)rows[i].loss - (double)oracle.loss);
            int bad = rows[i].n_algo_changed ? d > 1e-5 * fabs((double)oracle.loss) : d != 0;
            if (bad)
                printf("warning: the loss under %s (%.9g) differs from the oracle's (%.9g)\n", fg_vmem_kind_name(kinds[i]),
                       (double)rows[i].loss, (double)oracle.loss);
        }
    if (a.json) rc = write_report_json(&a, &mc, rows, nk, &oracle);
    if (a.plot) {
        const char *labels[FG_VMEM_KIND_COUNT];
        const fg_vmem_trace_event *evs[FG_VMEM_KIND_COUNT];
        size_t nev[FG_VMEM_KIND_COUNT];
        int ns = 0;
        for (int i = 0; i < nk; i++) {
            size_t first, n = rows[i].fits ? cli_plot_iteration(rows[i].ev, rows[i].n_ev, &first) : 0;
            if (!n) continue;
            labels[ns] = fg_vmem_kind_name(kinds[i]);
            evs[ns] = rows[i].ev + first;
            nev[ns++] = n;
        }
        char title[256], why[256];
        snprintf(title, sizeof title, "%s, batch %lld, device %s: device memory over one iteration", a.model,
                 (long long)mc.batch, a.device_mem ? dm : "unlimited");
        if (ns && cli_plot_memory(a.plot, title, ns, labels, evs, nev, why, sizeof why)) {
            printf("memory plot: %s (one line per policy that fits)\n", a.plot);
        } else {
            fprintf(stderr, "frugal: --plot: %s\n", ns ? why : "no policy fits the budget: nothing to plot");
            if (rc == CLI_EXIT_OK) rc = CLI_EXIT_FAIL;
        }
    }
    free_rows(rows, nk, &oracle);
    return rc;
}

int cmd_vmem(int argc, char **argv) {
    const char *usage = "usage: frugal vmem report|simulate --model NAME --batch B [options]   (frugal vmem report --help)\n";
    if (argc < 1) {
        fputs(usage, stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
        fputs(usage, stdout);
        printf("  report    train a few iterations under each vmem policy and compare memory and time\n");
        printf("  simulate  predict each policy's memory and time on a roofline GPU and PCIe link\n");
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[0], "report") == 0) return vmem_report(argc - 1, argv + 1);
    if (strcmp(argv[0], "simulate") == 0) return cmd_vmem_simulate(argc - 1, argv + 1);
    fprintf(stderr, "frugal: vmem: unknown subcommand '%s'\n%s", argv[0], usage);
    return CLI_EXIT_USAGE;
}
