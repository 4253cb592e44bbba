/* `frugal vmem report`: the vDNN comparison on one model. For each policy (none, all, conv) it
 * builds the model in a fresh pool of --device-mem bytes, runs N training iterations
 * (forward, backward, SGD step) on random inputs and reports the last iteration: peak and
 * time-weighted average device bytes (the pool's stats, reset at the start of that iteration),
 * bytes offloaded and prefetched, seconds per iteration, the overhead against the oracle (`none`
 * in an unlimited pool) and the seconds spent waiting on the link. A policy that does not fit
 * the budget is a row saying so with the smallest budget it needs (from vmem's plan). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct report_args {
    const char *model, *input, *json;
    int64_t batch;
    size_t device_mem;
    int iters, threads, verbose;
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
} report_row;

static fg_status make_policy(fg_vmem_kind kind, fg_mem_policy *pol, fg_vmem **vm) {
    fg_vmem_config vc = fg_vmem_config_defaults(kind);
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
    fg_status s = make_policy(kind, &pol, &vm);
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
    if (s == FG_OK) s = make_policy(kind, &pol, &vm);
    if (s == FG_OK) s = fg_train_build_model(&g, &io, a->model, mc, 1, pool, &pol);
    if (s == FG_OK) {
        fg_vmem_stats st;
        fg_vmem_get_stats(vm, &st);
        r->predicted_peak = st.peak_device_bytes;
        r->min_device = st.min_device_bytes;
        r->fits = 1;
        fg_rng wr;
        fg_rng_seed(&wr, 7);
        fg_graph_init_params(g, &wr);
        fg_optim_cfg oc = fg_optim_defaults(FG_OPTIM_SGD, 1e-3f);
        s = fg_optim_create(&opt, g, &oc);
    }
    for (int it = 0; s == FG_OK && it < iters; it++) {
        int last = it == iters - 1;
        s = fg_graph_set_input(g, io.input, x, nx * sizeof(float));
        if (s == FG_OK) s = fg_graph_set_input(g, io.labels, y, (size_t)mc->batch * sizeof(int32_t));
        if (s != FG_OK) break;
        fg_graph_set_training(g, 1);
        fg_graph_set_seed(g, (uint64_t)it + 1);
        double t0 = 0;
        if (last) {
            fg_pool_reset_stats(pool);
            fg_vmem_reset_stats(vm);
            t0 = fg_time_now();
        }
        s = fg_graph_forward(g);
        if (s == FG_OK) s = fg_graph_backward(g);
        if (s == FG_OK) s = fg_optim_step(opt);
        if (s == FG_OK && last) {
            r->iter_seconds = fg_time_now() - t0;
            fg_pool_stats ps = fg_pool_get_stats(pool);
            r->peak_device = ps.peak;
            r->avg_device = ps.avg_in_use;
            fg_vmem_stats st;
            fg_vmem_get_stats(vm, &st);
            r->offloaded = st.link.bytes_offloaded;
            r->prefetched = st.link.bytes_prefetched;
            r->stall_seconds = st.link.stall_seconds;
            r->loss = fg_graph_loss(g);
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
    cli_json_arr_begin(&j, "policies");
    for (int i = 0; i < n; i++) {
        const report_row *r = &rows[i];
        double nan = NAN;
        cli_json_obj_begin(&j, NULL);
        cli_json_str(&j, "policy", fg_vmem_kind_name(r->kind));
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
        cli_json_num(&j, "loss", r->fits ? (double)r->loss : nan);
        cli_json_obj_end(&j);
    }
    cli_json_arr_end(&j);
    cli_json_obj_end(&j);
    s = cli_json_close(&j);
    if (s != FG_OK) return cli_fail("--json", s);
    return CLI_EXIT_OK;
}

static int vmem_report(int argc, char **argv) {
    report_args a;
    memset(&a, 0, sizeof a);
    a.iters = 2;
    cli_opt opts[] = {
        {"model", CLI_STR, &a.model, "NAME", "zoo model (frugal model list); required", 0},
        {"batch", CLI_I64, &a.batch, "B", "batch size; required", 0},
        {"input", CLI_STR, &a.input, "HxW", "input image size (default: the model's, e.g. 224x224 for alexnet)", 0},
        {"device-mem", CLI_SIZE, &a.device_mem, "SIZE", "device pool capacity for every policy, e.g. 2G (default unlimited)", 0},
        {"iters", CLI_INT, &a.iters, "N", "training iterations per policy; the last one is measured (default 2)", 0},
        {"json", CLI_STR, &a.json, "FILE", "write one record per policy as JSON", 0},
        {"threads", CLI_INT, &a.threads, "T", "threads (default 0 = all cores)", 0},
        {"verbose", CLI_FLAG, &a.verbose, NULL, "debug messages", 0},
        {NULL, CLI_FLAG, NULL, NULL, NULL, 0},
    };
    cli_cmd cmd = {"vmem report", "frugal vmem report --model NAME --batch B [options]",
                   "Trains N iterations (forward, backward, SGD) on random inputs under each vmem policy (none,\n"
                   "all, conv) and prints, for the last iteration: peak and time-weighted average device bytes,\n"
                   "bytes offloaded and prefetched, seconds, overhead against the oracle (none in an unlimited\n"
                   "pool) and seconds stalled on the link. A policy that does not fit --device-mem is reported\n"
                   "with the smallest budget it needs.",
                   opts, 0, 0, NULL};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc != CLI_CONTINUE) return rc;
    cli_log_init(a.verbose);
    if (!a.model) return cli_usage_error(&cmd, "--model NAME is required");
    if (!cli_find(opts, "batch")->set) return cli_usage_error(&cmd, "--batch B is required");
    if (a.batch <= 0) return cli_usage_error(&cmd, "--batch must be > 0, got %lld", (long long)a.batch);
    if (a.iters <= 0) return cli_usage_error(&cmd, "--iters must be > 0, got %d", a.iters);
    if (a.threads < 0) return cli_usage_error(&cmd, "--threads must be >= 0 (0 = all cores), got %d", a.threads);
    const fg_model_def *def = fg_zoo_find(a.model);
    if (!def) return cli_usage_error(&cmd, "unknown model '%s' (frugal model list)", a.model);
    fg_model_cfg mc = {a.batch, def->default_channels, def->default_height, def->default_width, def->default_classes, -1};
    if (a.input) {
        long long h, w;
        char extra;
        if (sscanf(a.input, "%lldx%lld%c", &h, &w, &extra) != 2 || h <= 0 || w <= 0)
            return cli_usage_error(&cmd, "--input: expected HxW such as 64x64, got '%s'", a.input);
        mc.height = h;
        mc.width = w;
    }
    fg_threads_set(a.threads);

    /* the command line, so a pasted table says how it was made */
    printf("frugal vmem report");
    for (int i = 0; i < argc; i++) printf(" %s", argv[i]);
    printf("\n");
    char dm[32];
    fg_bytes_str(dm, sizeof dm, (double)a.device_mem);
    printf("model %s, batch %lld, input %lldx%lldx%lld, %d iterations (the last measured), %d threads, device %s\n\n",
           a.model, (long long)mc.batch, (long long)mc.channels, (long long)mc.height, (long long)mc.width, a.iters,
           fg_threads_get(), a.device_mem ? dm : "unlimited");
    fflush(stdout);

    static const fg_vmem_kind kinds[] = {FG_VMEM_NONE, FG_VMEM_ALL, FG_VMEM_CONV};
    enum { N_KINDS = 3 };
    report_row rows[N_KINDS], oracle;
    memset(&oracle, 0, sizeof oracle);
    fg_status s;
    /* warm-up, not reported: one iteration in an unlimited pool, so the first measured run does
     * not pay for starting the thread pool and filling oneDNN's primitive cache */
    s = run_policy(&a, &mc, FG_VMEM_NONE, 0, 1, &oracle);
    if (s != FG_OK) return cli_fail("warm-up (none, unlimited pool)", s);
    memset(&oracle, 0, sizeof oracle);
    /* the oracle: none with an unlimited pool (the none row itself when there is no budget) */
    if (a.device_mem) {
        s = run_policy(&a, &mc, FG_VMEM_NONE, 0, a.iters, &oracle);
        if (s != FG_OK) return cli_fail("oracle (none, unlimited pool)", s);
    }
    for (int i = 0; i < N_KINDS; i++) {
        s = run_policy(&a, &mc, kinds[i], a.device_mem, a.iters, &rows[i]);
        if (s == FG_ERR_OOM && a.device_mem && !rows[i].fits) {
            /* plan refused the budget: report the smallest one instead of aborting */
            fg_log(FG_LOG_DEBUG, "%s: %s", fg_vmem_kind_name(kinds[i]), fg_last_error());
            s = min_budget(a.model, &mc, kinds[i], &rows[i].min_device);
            if (s != FG_OK) return cli_fail(fg_vmem_kind_name(kinds[i]), s);
            continue;
        }
        if (s != FG_OK) return cli_fail(fg_vmem_kind_name(kinds[i]), s);
        if (!a.device_mem && kinds[i] == FG_VMEM_NONE) oracle = rows[i];
    }
    for (int i = 0; i < N_KINDS; i++)
        if (rows[i].fits) rows[i].overhead = oracle.iter_seconds > 0 ? rows[i].iter_seconds / oracle.iter_seconds - 1.0 : 0.0;

    printf("%-6s %12s %12s %12s %12s %12s %9s %9s %9s\n", "policy", "peak dev", "avg dev", "min budget", "offloaded",
           "prefetched", "iter s", "overhead", "stall s");
    for (int i = 0; i < N_KINDS; i++) {
        const report_row *r = &rows[i];
        char pk[32], av[32], mn[32], of[32], pf[32];
        fg_bytes_str(mn, sizeof mn, (double)r->min_device);
        if (!r->fits) {
            printf("%-6s does not fit in %s: needs at least %s (%zu bytes)\n", fg_vmem_kind_name(r->kind), dm, mn,
                   r->min_device);
            continue;
        }
        fg_bytes_str(pk, sizeof pk, (double)r->peak_device);
        fg_bytes_str(av, sizeof av, r->avg_device);
        fg_bytes_str(of, sizeof of, (double)r->offloaded);
        fg_bytes_str(pf, sizeof pf, (double)r->prefetched);
        printf("%-6s %12s %12s %12s %12s %12s %9.4f %+8.1f%% %9.4f\n", fg_vmem_kind_name(r->kind), pk, av, mn, of, pf,
               r->iter_seconds, 100.0 * r->overhead, r->stall_seconds);
    }
    printf("\noracle: none in an unlimited pool, %.4f s per iteration%s\n", oracle.iter_seconds,
           a.device_mem ? "" : " (the none row)");
    /* offload and prefetch move bytes, never compute on them: the losses must agree bit for bit */
    for (int i = 0; i < N_KINDS; i++)
        if (rows[i].fits && (a.device_mem ? oracle.loss : rows[0].loss) != rows[i].loss)
            printf("warning: the loss under %s (%.9g) differs from the oracle's (%.9g)\n", fg_vmem_kind_name(rows[i].kind),
                   (double)rows[i].loss, (double)(a.device_mem ? oracle.loss : rows[0].loss));
    if (a.json) {
        rc = write_report_json(&a, &mc, rows, N_KINDS, &oracle);
        if (rc != CLI_EXIT_OK) return rc;
    }
    return CLI_EXIT_OK;
}

int cmd_vmem(int argc, char **argv) {
    const char *usage = "usage: frugal vmem report --model NAME --batch B [options]   (frugal vmem report --help)\n";
    if (argc < 1) {
        fputs(usage, stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
        fputs(usage, stdout);
        printf("  report    compare the vmem policies none, all and conv on one model\n");
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[0], "report") == 0) return vmem_report(argc - 1, argv + 1);
    if (strcmp(argv[0], "simulate") == 0 || strcmp(argv[0], "plan") == 0) {
        fprintf(stderr, "frugal: vmem %s: not implemented yet (issue 3)\n", argv[0]);
        return CLI_EXIT_FAIL;
    }
    fprintf(stderr, "frugal: vmem: unknown subcommand '%s'\n%s", argv[0], usage);
    return CLI_EXIT_USAGE;
}
