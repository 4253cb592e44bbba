/* `frugal vmem simulate`: what vmem's policies would do on a GPU instead of this CPU. For each
 * policy (none, all, conv, dyn, plan) the model is planned as a dry run (schedule, smallest budget,
 * no allocation of activations, no tiers, no link) in a pool of the GPU's memory, with the step
 * times of a roofline model of that GPU (src/vmem/roofline.c) and a PCIe link; fg_vmem_predict
 * then replays the schedule on compute + link and gives the iteration's time, the time compute
 * waits on the link, and the peak and time-weighted average device bytes. The oracle is `none` in
 * an unlimited pool: the sum of the step times. These are predictions to put beside the vDNN
 * paper's figures (Rhu et al., MICRO 2016); nothing runs, so VGG-16 at batch 256 takes seconds.
 *
 * The dry runs reserve the persistent tensors (parameters, their gradients, the input) in the pool
 * without touching their pages (fg_pool_alloc_zeroed): a simulation takes milliseconds and a few
 * MB of RAM. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct sim_row {
    fg_vmem_kind kind;
    int fits;              /* plans within the budget */
    size_t min_device;     /* the smallest budget the policy plans in */
    size_t persistent;     /* inputs, params, grads, outputs: on the device under every policy */
    fg_vmem_prediction p;  /* valid when fits (the none row: also when it does not, see none_unlimited) */
    int n_offload, n_recompute, n_algo_changed;
    char decision[256];
} sim_row;

typedef struct sim_ctx {
    const char *model;
    fg_model_cfg mc;
    fg_gpu_model gpu;
    fg_gpu_link link;
    fg_vmem_link_model lm;
    const double *steps; /* 2N roofline seconds, NULL while planning the oracle */
    int offload_weights; /* --offload-weights: every policy but none */
} sim_ctx;

/* Plans `kind` as a dry run in a pool of `capacity` bytes (0 = unlimited). On success fills *r
 * (fits = 1) and, when steps_out is given, the roofline step seconds of the built graph (a
 * malloc'ed array of 2N). FG_ERR_OOM when the budget is too small (r->fits stays 0). */
static fg_status plan_one(const sim_ctx *c, fg_vmem_kind kind, size_t capacity, sim_row *r, double **steps_out) {
    fg_pool *pool = NULL;
    fg_graph *g = NULL;
    fg_model_io io;
    fg_mem_policy pol;
    memset(r, 0, sizeof *r);
    r->kind = kind;
    fg_vmem_config vc = fg_vmem_config_defaults(kind);
    vc.dry_run = 1;
    vc.step_seconds = c->steps;
    vc.model = c->lm;
    vc.link.gbps = c->lm.gbps;
    vc.link.latency_us = c->lm.latency_us;
    vc.offload_weights = c->offload_weights && kind != FG_VMEM_NONE;
    FG_TRY(fg_pool_create(&pool, capacity));
    fg_status s = fg_vmem_policy_create(&pol, &vc);
    fg_vmem *vm = s == FG_OK ? fg_vmem_of(&pol) : NULL;
    if (s == FG_OK) s = fg_train_build_model(&g, &io, c->model, &c->mc, 1, pool, &pol);
    double *steps = NULL;
    if (s == FG_OK && steps_out) {
        steps = malloc(sizeof(double) * (size_t)(2 * fg_graph_n_nodes(g)));
        s = steps ? fg_vmem_roofline_steps(g, &c->gpu, steps) : fg_fail(FG_ERR_OOM, "vmem simulate: out of host memory");
    }
    const double *secs = steps ? steps : c->steps;
    if (s == FG_OK) s = fg_vmem_predict(vm, secs, &c->lm, &r->p);
    if (s == FG_OK) {
        fg_vmem_stats st;
        fg_vmem_get_stats(vm, &st);
        r->fits = 1;
        r->min_device = st.min_device_bytes;
        r->persistent = st.persistent_bytes;
        r->n_offload = st.n_offload_tensors;
        r->n_recompute = st.n_recompute_tensors;
        r->n_algo_changed = st.n_algo_changed;
        snprintf(r->decision, sizeof r->decision, "%s", st.decision);
    }
    fg_graph_free(g);
    fg_pool_destroy(pool);
    if (s == FG_OK && steps_out) *steps_out = steps;
    else free(steps);
    return s;
}

static int write_sim_json(const char *path, const sim_ctx *c, int argc, char **argv, size_t capacity,
                          const sim_row *rows, int n, const sim_row *oracle, int none_fits) {
    cli_json j;
    fg_status s = cli_json_open(&j, path);
    if (s != FG_OK) return cli_fail("--json", s);
    char cmdline[2048];
    size_t o = (size_t)snprintf(cmdline, sizeof cmdline, "frugal vmem simulate");
    for (int i = 0; i < argc && o < sizeof cmdline; i++) o += (size_t)snprintf(cmdline + o, sizeof cmdline - o, " %s", argv[i]);
    cli_json_obj_begin(&j, NULL);
    cli_json_str(&j, "command", cmdline);
    cli_json_str(&j, "model", c->model);
    cli_json_int(&j, "batch", (long long)c->mc.batch);
    cli_json_int(&j, "height", (long long)c->mc.height);
    cli_json_int(&j, "width", (long long)c->mc.width);
    cli_json_obj_begin(&j, "gpu");
    cli_json_str(&j, "name", c->gpu.name);
    cli_json_num(&j, "fp32_tflops", c->gpu.fp32_tflops);
    cli_json_num(&j, "mem_gbps", c->gpu.mem_gbps);
    cli_json_int(&j, "mem_bytes", (long long)c->gpu.mem_bytes);
    cli_json_num(&j, "efficiency", c->gpu.efficiency);
    cli_json_num(&j, "mem_efficiency", FG_ROOFLINE_MEM_EFFICIENCY);
    cli_json_num(&j, "launch_seconds", FG_ROOFLINE_LAUNCH_SECONDS);
    cli_json_obj_end(&j);
    cli_json_obj_begin(&j, "link");
    cli_json_str(&j, "name", c->link.name);
    cli_json_num(&j, "gbps", c->link.gbps);
    cli_json_num(&j, "latency_us", c->link.latency_us);
    cli_json_obj_end(&j);
    cli_json_int(&j, "device_bytes", (long long)capacity);
    cli_json_num(&j, "oracle_iter_seconds", oracle->p.iter_seconds);
    cli_json_int(&j, "none_min_device_bytes", (long long)oracle->min_device);
    cli_json_int(&j, "none_fits", none_fits);
    cli_json_arr_begin(&j, "policies");
    for (int i = 0; i < n; i++) {
        const sim_row *r = &rows[i];
        double nan = NAN;
        /* the none row's prediction, with or without budget */
        double avg_none = rows[0].p.avg_device_bytes, act_none = avg_none - (double)rows[0].persistent;
        cli_json_obj_begin(&j, NULL);
        cli_json_str(&j, "policy", fg_vmem_kind_name(r->kind));
        cli_json_int(&j, "fits", r->fits);
        cli_json_int(&j, "min_device_bytes", (long long)r->min_device);
        cli_json_num(&j, "peak_device_bytes", r->fits ? (double)r->p.peak_device_bytes : nan);
        cli_json_num(&j, "avg_device_bytes", r->fits ? r->p.avg_device_bytes : nan);
        cli_json_num(&j, "avg_vs_none", r->fits && avg_none > 0 ? r->p.avg_device_bytes / avg_none - 1.0 : nan);
        cli_json_num(&j, "persistent_bytes", r->fits ? (double)r->persistent : nan);
        cli_json_num(&j, "avg_act_vs_none", r->fits && act_none > 0
                                                ? (r->p.avg_device_bytes - (double)r->persistent) / act_none - 1.0
                                                : nan);
        cli_json_num(&j, "iter_seconds", r->fits ? r->p.iter_seconds : nan);
        cli_json_num(&j, "overhead_vs_oracle",
                     r->fits && oracle->p.iter_seconds > 0 ? r->p.iter_seconds / oracle->p.iter_seconds - 1.0 : nan);
        cli_json_num(&j, "stall_seconds", r->fits ? r->p.stall_seconds : nan);
        cli_json_num(&j, "recompute_seconds", r->fits ? r->p.recompute_seconds : nan);
        cli_json_num(&j, "offload_bytes", r->fits ? r->p.offload_bytes : nan);
        cli_json_num(&j, "prefetch_bytes", r->fits ? r->p.prefetch_bytes : nan);
        cli_json_str(&j, "decision", r->fits ? r->decision : "");
        cli_json_obj_end(&j);
    }
    cli_json_arr_end(&j);
    cli_json_obj_end(&j);
    s = cli_json_close(&j);
    if (s != FG_OK) return cli_fail("--json", s);
    return CLI_EXIT_OK;
}

/* --steps FILE: the roofline of every step, to see what is compute- and what memory-bound. */
static int write_steps_csv(const char *path, const sim_ctx *c) {
    fg_pool *pool = NULL;
    fg_graph *g = NULL;
    fg_model_io io;
    fg_mem_policy pol;
    fg_vmem_config vc = fg_vmem_config_defaults(FG_VMEM_NONE);
    vc.dry_run = 1;
    fg_status s = fg_pool_create(&pool, 0);
    if (s == FG_OK) s = fg_vmem_policy_create(&pol, &vc);
    if (s == FG_OK) s = fg_train_build_model(&g, &io, c->model, &c->mc, 1, pool, &pol);
    cli_text_file t = {NULL, "", NULL};
    if (s == FG_OK) s = cli_text_open(&t, path);
    FILE *f = t.f;
    if (f) {
        fprintf(f, "step,node,name,op,pass,flops,bytes,compute_seconds,memory_seconds,seconds,bound\n");
        int N = fg_graph_n_nodes(g);
        for (int st = 0; st < 2 * N && s == FG_OK; st++) {
            int node = st < N ? st : 2 * N - 1 - st;
            fg_pass pass = st < N ? FG_FORWARD : FG_BACKWARD;
            fg_roofline_cost rc;
            s = fg_vmem_roofline_cost(g, &c->gpu, node, pass, &rc);
            const fg_ninfo *n = fg_graph_node(g, node);
            if (s == FG_OK)
                fprintf(f, "%d,%d,%s,%s,%s,%.6g,%.6g,%.6g,%.6g,%.6g,%s\n", st, node, n->name, fg_op_name(n->op),
                        pass == FG_FORWARD ? "forward" : "backward", rc.flops, rc.bytes, rc.compute_seconds,
                        rc.memory_seconds, rc.seconds, rc.seconds == 0 ? "none" : rc.compute_bound ? "compute" : "memory");
        }
        fg_status sc = cli_text_close(&t, s == FG_OK);
        if (s == FG_OK) s = sc;
    }
    fg_graph_free(g);
    fg_pool_destroy(pool);
    return s == FG_OK ? CLI_EXIT_OK : cli_fail("--steps", s);
}

int cmd_vmem_simulate(int argc, char **argv) {
    const char *model = NULL, *input = NULL, *gpu_name = "titanx", *link_name = "pcie3", *json = NULL, *steps_csv = NULL;
    int64_t batch = 0;
    size_t device_mem = 0;
    int verbose = 0, offload_weights = 0;
    cli_opt opts[] = {
        {"model", CLI_STR, &model, "NAME", "zoo model (frugal model list); required", 0},
        {"batch", CLI_I64, &batch, "B", "batch size; required", 0},
        {"input", CLI_STR, &input, "HxW", "input image size (default: the model's, e.g. 224x224 for vgg16)", 0},
        {"gpu", CLI_STR, &gpu_name, "GPU", "titanx (default; the vDNN paper's Maxwell GTX Titan X), v100, a100 or h100", 0},
        {"link", CLI_STR, &link_name, "LINK", "host link: pcie3 (default, 12 GB/s), pcie4 (25 GB/s) or pcie5 (50 GB/s)", 0},
        {"device-mem", CLI_SIZE, &device_mem, "SIZE", "device budget (default: the GPU's memory, e.g. 12G for titanx)", 0},
        {"json", CLI_STR, &json, "FILE", "write one record per policy as JSON", 0},
        {"steps", CLI_STR, &steps_csv, "FILE", "write the roofline of every step (flops, bytes, seconds, bound) as CSV", 0},
        {"offload-weights", CLI_FLAG, &offload_weights, NULL,
         "every policy but none keeps params, their gradients and the inputs in host memory between uses", 0},
        {"verbose", CLI_FLAG, &verbose, NULL, "debug messages", 0},
        {NULL, CLI_FLAG, NULL, NULL, NULL, 0},
    };
    cli_cmd cmd = {"vmem simulate", "frugal vmem simulate --model NAME --batch B [options]",
                   "Plans each vmem policy (none, all, conv, dyn, plan) for a GPU without running it: step times\n"
                   "come from a roofline model of the GPU (peak fp32 FLOP/s and memory bandwidth with fixed\n"
                   "efficiencies and a launch overhead), copies from a PCIe link model, and the budget is the GPU's\n"
                   "memory. Prints, per policy, whether it fits (else the smallest budget it needs), the predicted\n"
                   "peak and time-weighted average device memory, iteration time, overhead against the oracle\n"
                   "(none in an unlimited pool), seconds stalled on the link and bytes offloaded.",
                   opts, 0, 0, NULL};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc != CLI_CONTINUE) return rc;
    cli_log_init(verbose);
    sim_ctx c;
    memset(&c, 0, sizeof c);
    c.model = model;
    c.offload_weights = offload_weights;
    rc = cli_zoo_model_cfg(&cmd, model, cli_find(opts, "batch")->set, batch, input, &c.mc);
    if (rc != CLI_CONTINUE) return rc;
    rc = CLI_EXIT_OK;
    if (fg_gpu_model_parse(gpu_name, &c.gpu) != FG_OK) return cli_usage_error(&cmd, "--gpu: %s", fg_last_error());
    if (fg_gpu_link_parse(link_name, &c.link) != FG_OK) return cli_usage_error(&cmd, "--link: %s", fg_last_error());
    c.lm = fg_gpu_link_model(&c.link);
    size_t capacity = cli_find(opts, "device-mem")->set ? device_mem : (size_t)c.gpu.mem_bytes;

    printf("frugal vmem simulate");
    for (int i = 0; i < argc; i++) printf(" %s", argv[i]);
    printf("\n");
    char cap_s[32];
    fg_bytes_str(cap_s, sizeof cap_s, (double)capacity);
    printf("model %s, batch %lld, input %lldx%lldx%lld; device budget %s\n", model, (long long)c.mc.batch,
           (long long)c.mc.channels, (long long)c.mc.height, (long long)c.mc.width, cap_s);
    printf("GPU %s: %s; %.1f TFLOPS fp32 x %.2f (conv/GEMM), %.0f GB/s x %.2f, %.0f us per kernel\n", c.gpu.name,
           c.gpu.description, c.gpu.fp32_tflops, c.gpu.efficiency, c.gpu.mem_gbps, FG_ROOFLINE_MEM_EFFICIENCY,
           FG_ROOFLINE_LAUNCH_SECONDS * 1e6);
    printf("link %s: %s; one copy engine per direction, copies do not slow compute\n", c.link.name, c.link.description);
    printf("model: step = max(FLOPs / compute, bytes / bandwidth) + launch; backward conv/linear = 2x forward FLOPs\n"
           "(data + weight gradients), other ops 1x; every tensor an op touches crosses device memory once\n"
           "(docs/VMEM.md, \"Simulating a GPU\"). Predictions, not measurements.\n\n");
    fflush(stdout);

    if (steps_csv) {
        rc = write_steps_csv(steps_csv, &c);
        if (rc != CLI_EXIT_OK) return rc;
    }

    /* the oracle: none in an unlimited pool; its graph also gives the roofline step times */
    sim_row oracle;
    double *steps = NULL;
    fg_status s = plan_one(&c, FG_VMEM_NONE, 0, &oracle, &steps);
    if (s != FG_OK) return cli_fail("oracle (none, unlimited pool)", s);
    c.steps = steps;

    static const fg_vmem_kind kinds[] = {FG_VMEM_NONE, FG_VMEM_ALL, FG_VMEM_CONV, FG_VMEM_DYN, FG_VMEM_PLAN};
    enum { N_KINDS = 5 };
    sim_row rows[N_KINDS];
    for (int i = 0; i < N_KINDS; i++) {
        s = plan_one(&c, kinds[i], capacity, &rows[i], NULL);
        if (s == FG_ERR_OOM) {
            /* plan (or build, for the persistent tensors) refused the budget: the smallest one
             * comes from planning in an unlimited pool, as `vmem report` does */
            fg_log(FG_LOG_DEBUG, "%s: %s", fg_vmem_kind_name(kinds[i]), fg_last_error());
            sim_row un;
            s = plan_one(&c, kinds[i], 0, &un, NULL);
            if (s != FG_OK) {
                free(steps);
                return cli_fail(fg_vmem_kind_name(kinds[i]), s);
            }
            rows[i].min_device = un.min_device;
            if (kinds[i] == FG_VMEM_NONE) { /* the baseline for "avg vs none" */
                rows[i].p = un.p;
                rows[i].persistent = un.persistent;
            }
            continue;
        }
        if (s != FG_OK) {
            free(steps);
            return cli_fail(fg_vmem_kind_name(kinds[i]), s);
        }
    }
    free(steps);
    c.steps = NULL;

    char b1[32], b2[32], b3[32], b4[32];
    int none_fits = rows[0].fits;
    fg_bytes_str(b1, sizeof b1, (double)oracle.min_device);
    printf("memory needed by the network-wide baseline (none): %s (%zu bytes)%s\n", b1, oracle.min_device,
           none_fits ? "" : "; it does not fit the budget");
    printf("oracle (none in an unlimited pool, the sum of the step times): %.3f ms per iteration\n\n",
           oracle.p.iter_seconds * 1e3);
    printf("%-6s %-22s %11s %11s %9s %9s %11s %9s %9s %9s %11s  %s\n", "policy", "fits", "peak", "avg", "avg/none",
           "act/none", "iter ms", "overhead", "stall ms", "recomp ms", "offloaded", "decision");
    double avg_none = rows[0].p.avg_device_bytes, act_none = avg_none - (double)rows[0].persistent;
    for (int i = 0; i < N_KINDS; i++) {
        const sim_row *r = &rows[i];
        char fits[64];
        if (r->fits) snprintf(fits, sizeof fits, "yes (min %s)", fg_bytes_str(b1, sizeof b1, (double)r->min_device));
        else snprintf(fits, sizeof fits, "no: needs %s", fg_bytes_str(b1, sizeof b1, (double)r->min_device));
        if (!r->fits && r->kind != FG_VMEM_NONE) {
            printf("%-6s %-22s %11s %11s %9s %9s %11s %9s %9s %9s %11s\n", fg_vmem_kind_name(r->kind), fits, "-", "-", "-",
                   "-", "-", "-", "-", "-", "-");
            continue;
        }
        /* none outside its budget: its memory as planned in an unlimited pool, marked with '*' */
        const char *mark = r->fits ? "" : "*";
        char pk[48], av[48];
        snprintf(pk, sizeof pk, "%s%s", fg_bytes_str(b2, sizeof b2, (double)r->p.peak_device_bytes), mark);
        snprintf(av, sizeof av, "%s%s", fg_bytes_str(b3, sizeof b3, r->p.avg_device_bytes), mark);
        char red[32] = "-", act[32] = "-";
        if (r->kind != FG_VMEM_NONE && avg_none > 0)
            snprintf(red, sizeof red, "%+.1f%%", 100.0 * (r->p.avg_device_bytes / avg_none - 1.0));
        if (r->kind != FG_VMEM_NONE && act_none > 0)
            snprintf(act, sizeof act, "%+.1f%%",
                     100.0 * ((r->p.avg_device_bytes - (double)r->persistent) / act_none - 1.0));
        if (!r->fits) {
            printf("%-6s %-22s %11s %11s %9s %9s %11s %9s %9s %9s %11s\n", fg_vmem_kind_name(r->kind), fits, pk, av, red,
                   act, "-", "-", "-", "-", "-");
            continue;
        }
        double ovh = oracle.p.iter_seconds > 0 ? r->p.iter_seconds / oracle.p.iter_seconds - 1.0 : 0.0;
        printf("%-6s %-22s %11s %11s %9s %9s %11.3f %+8.1f%% %9.3f %9.3f %11s  %s\n", fg_vmem_kind_name(r->kind), fits,
               pk, av, red, act, r->p.iter_seconds * 1e3, 100.0 * ovh, r->p.stall_seconds * 1e3, r->p.recompute_seconds * 1e3,
               fg_bytes_str(b4, sizeof b4, r->p.offload_bytes),
               (r->kind == FG_VMEM_DYN || r->kind == FG_VMEM_PLAN) ? r->decision : "");
    }
    char pe[32];
    printf("act/none: the average without the persistent bytes (%s: inputs, parameters, their gradients, outputs)\n",
           fg_bytes_str(pe, sizeof pe, (double)rows[0].persistent));
    if (!none_fits)
        printf("* none does not fit: its peak and average are those of the baseline planned without a budget, the\n"
               "  reference for avg/none\n");
    if (json) {
        rc = write_sim_json(json, &c, argc, argv, capacity, rows, N_KINDS, &oracle, none_fits);
        if (rc != CLI_EXIT_OK) return rc;
    }
    return CLI_EXIT_OK;
}
