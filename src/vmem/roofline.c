/* A roofline model of a GPU and its host link, for `frugal vmem simulate`: the seconds each step
 * of a network would take on a Titan X, V100, A100 or H100, so that vmem's schedules (none, all,
 * conv, dyn, plan) can be replayed on a GPU's compute/transfer ratio by fg_vmem_predict instead of
 * this machine's CPU.
 *
 * The model, every assumption stated (docs/VMEM.md, "Simulating a GPU", repeats them):
 *  - A step (one node's forward or backward) is one kernel (a conv's backward is two, data and
 *    weight gradients, but they are counted as one step) whose time is
 *        max(flops / (peak fp32 FLOP/s * efficiency), bytes / (peak bandwidth * 0.8)) + 5 us,
 *    i.e. it is either compute-bound or memory-bound, never both, and pays one fixed launch
 *    overhead (FG_ROOFLINE_LAUNCH_SECONDS, a kernel launch plus the framework's per-layer work).
 *  - Compute: fp32 on the CUDA cores, no tensor cores (vDNN-era training was fp32; an A100 or
 *    H100 training in TF32/BF16 would compute 8-15x faster, which makes offload harder to hide:
 *    this model is the friendly case for them). efficiency (0.7) is the fraction of peak that
 *    cuDNN convolutions and cuBLAS GEMMs reach on large layers; it applies to every op, but the
 *    other ops are memory-bound under it anyway.
 *  - Memory: every byte an op reads or writes crosses device memory once (no cache reuse between
 *    ops, no fusion), at 80% of the peak bandwidth (FG_ROOFLINE_MEM_EFFICIENCY).
 *    Forward reads the inputs (activations and parameters) and writes the output and the AUX
 *    outputs (softmax probabilities, batch-norm statistics, dropout masks). Backward reads what the
 *    op saved for backward and the gradient of its output, and writes the gradient of every input
 *    that has one (parameter gradients included, counted once although they accumulate).
 *  - FLOPs: forward as the graph counts them (fg_ninfo.flops, the whole batch). Backward of conv,
 *    linear and matmul: one forward's worth per input that gets a gradient (conv: data gradient
 *    and weight gradient = 2x forward; the first conv, whose input needs no gradient, 1x). Every
 *    other op: 1x forward (elementwise, pooling, LRN, softmax, batch norm are memory-bound here).
 *    A backward step that computes no gradient does not run: 0 seconds.
 *  - Conv algorithms: the step time is that of the performance-optimal algorithm. A conv whose
 *    algorithm dyn or plan changed is scaled by fg_vmem_algo_cost (search.c) in fg_vmem_predict
 *    (memory-optimal 1.4x), ratios measured on this machine's CPU, not on a GPU.
 *  - The link: one copy engine per direction at the achieved (not theoretical) PCIe bandwidth,
 *    with a fixed latency per copy; copies do not slow compute (compute_share 0).
 * The GPU figures are the vendors' datasheet peaks (fp32 non-tensor, memory bandwidth), with the
 * base clock for the Titan X (6.1 TFLOPS; 6.6 at the boost clock); memory sizes in GiB. */
#include <stdio.h>
#include <string.h>

#include "frugal/vmem.h"

/* Fraction of peak fp32 that cuDNN convs and cuBLAS sgemm reach on the large layers of these
 * networks (a round figure: 60-80% is typical of the time's published measurements). */
#define CONV_EFFICIENCY 0.7
#define GIB (1024.0 * 1024.0 * 1024.0)

static const fg_gpu_model gpus[] = {
    /* 3072 CUDA cores x 2 FLOP x 1.0 GHz base (6.6 at the 1.075 GHz boost): the paper's GPU */
    {"titanx", 6.1, 336.5, 12.0 * GIB, CONV_EFFICIENCY, "Maxwell GTX Titan X (the vDNN paper's GPU), 12 GiB GDDR5"},
    {"v100", 15.7, 900.0, 16.0 * GIB, CONV_EFFICIENCY, "Tesla V100 SXM2, 16 GiB HBM2 (the 32 GiB part also exists)"},
    /* fp32 on CUDA cores; TF32 tensor cores (156 TFLOPS) not assumed */
    {"a100", 19.5, 1555.0, 40.0 * GIB, CONV_EFFICIENCY, "A100 SXM4, 40 GiB HBM2, fp32 without TF32 tensor cores"},
    {"h100", 67.0, 3350.0, 80.0 * GIB, CONV_EFFICIENCY, "H100 SXM5, 80 GiB HBM3, fp32 without tensor cores"},
    {NULL, 0, 0, 0, 0, NULL},
};

static const fg_gpu_link links[] = {
    /* 15.75 GB/s theoretical for x16; vDNN measured ~12.8 GB/s with pinned memory */
    {"pcie3", 12.0, 10.0, "PCIe 3.0 x16: 15.75 GB/s theoretical, 12 GB/s achieved, 10 us per copy"},
    {"pcie4", 25.0, 10.0, "PCIe 4.0 x16: 31.5 GB/s theoretical, 25 GB/s achieved, 10 us per copy"},
    {"pcie5", 50.0, 10.0, "PCIe 5.0 x16: 63 GB/s theoretical, 50 GB/s achieved, 10 us per copy"},
    {NULL, 0, 0, NULL},
};

const fg_gpu_model *fg_gpu_models(void) { return gpus; }
const fg_gpu_link *fg_gpu_links(void) { return links; }

fg_status fg_gpu_model_parse(const char *name, fg_gpu_model *out) {
    for (const fg_gpu_model *g = gpus; g->name; g++)
        if (name && strcmp(name, g->name) == 0) {
            *out = *g;
            return FG_OK;
        }
    return fg_fail(FG_ERR_INVALID, "unknown GPU '%s' (expected titanx, v100, a100 or h100)", name ? name : "(null)");
}

fg_status fg_gpu_link_parse(const char *name, fg_gpu_link *out) {
    for (const fg_gpu_link *l = links; l->name; l++)
        if (name && strcmp(name, l->name) == 0) {
            *out = *l;
            return FG_OK;
        }
    return fg_fail(FG_ERR_INVALID, "unknown link '%s' (expected pcie3, pcie4 or pcie5)", name ? name : "(null)");
}

fg_vmem_link_model fg_gpu_link_model(const fg_gpu_link *l) {
    fg_vmem_link_model m = {l->gbps, l->latency_us, 0.0};
    return m;
}

static double tbytes(const fg_graph *g, fg_id id) { return id == FG_NONE ? 0.0 : (double)fg_graph_tinfo(g, id)->bytes; }
static int has_grad(const fg_graph *g, fg_id id) { return id != FG_NONE && fg_graph_tinfo(g, id)->grad != FG_NONE; }

static int is_gemm(fg_op op) { return op == FG_OP_CONV2D || op == FG_OP_LINEAR || op == FG_OP_MATMUL; }

static fg_status check_gpu(const fg_gpu_model *gpu) {
    if (!(gpu->fp32_tflops > 0) || !(gpu->mem_gbps > 0) || !(gpu->efficiency > 0) || gpu->efficiency > 1)
        return fg_fail(FG_ERR_INVALID,
                       "roofline: GPU '%s' needs fp32_tflops > 0 (%g), mem_gbps > 0 (%g) and 0 < efficiency <= 1 (%g)",
                       gpu->name ? gpu->name : "?", gpu->fp32_tflops, gpu->mem_gbps, gpu->efficiency);
    return FG_OK;
}

/* Liveness is computed at build: before it every tensor's first use is -1 (after it, every
 * output that is not persistent, such as a marked output or the loss, has one). */
static int graph_built(const fg_graph *g) {
    for (int i = 0; i < fg_graph_n_nodes(g); i++)
        if (fg_graph_tinfo(g, fg_graph_node(g, i)->out)->first_use >= 0) return 1;
    return 0;
}

static void step_cost(const fg_graph *g, const fg_gpu_model *gpu, int node, fg_pass pass, fg_roofline_cost *c) {
    const fg_ninfo *n = fg_graph_node(g, node);
    memset(c, 0, sizeof *c);
    if (pass == FG_FORWARD) {
        c->flops = n->flops;
        for (int k = 0; k < n->n_in; k++) c->bytes += tbytes(g, n->in[k]);
        c->bytes += tbytes(g, n->out);
        for (int k = 0; k < n->n_aux; k++) c->bytes += tbytes(g, n->aux[k]);
    } else {
        if (!has_grad(g, n->out)) return; /* the executor skips it */
        int n_grads = 0;
        for (int k = 0; k < n->n_in; k++)
            if (has_grad(g, n->in[k])) {
                n_grads++;
                c->bytes += tbytes(g, fg_graph_tinfo(g, n->in[k])->grad);
            }
        for (int k = 0; k < n->n_save; k++) c->bytes += tbytes(g, n->save[k]);
        c->bytes += tbytes(g, fg_graph_tinfo(g, n->out)->grad);
        if (is_gemm(n->op)) {
            /* one GEMM per input gradient (a bias gradient is a reduction, counted as none) */
            int gemms = 0;
            for (int k = 0; k < n->n_in && k < 2; k++) gemms += has_grad(g, n->in[k]);
            c->flops = n->flops * gemms;
        } else {
            c->flops = n_grads ? n->flops : 0;
        }
    }
    c->compute_seconds = c->flops / (gpu->fp32_tflops * 1e12 * gpu->efficiency);
    c->memory_seconds = c->bytes / (gpu->mem_gbps * 1e9 * FG_ROOFLINE_MEM_EFFICIENCY);
    c->compute_bound = c->compute_seconds >= c->memory_seconds;
    c->seconds = (c->compute_bound ? c->compute_seconds : c->memory_seconds) + FG_ROOFLINE_LAUNCH_SECONDS;
}

fg_status fg_vmem_roofline_cost(const fg_graph *g, const fg_gpu_model *gpu, int node, fg_pass pass,
                                fg_roofline_cost *out) {
    memset(out, 0, sizeof *out);
    FG_TRY(check_gpu(gpu));
    if (!graph_built(g))
        return fg_fail(FG_ERR_INVALID, "roofline: graph '%s' is not built (build it first: saved lists and gradients "
                                       "are known then)", fg_graph_name(g));
    if (node < 0 || node >= fg_graph_n_nodes(g) || (pass != FG_FORWARD && pass != FG_BACKWARD))
        return fg_fail(FG_ERR_INVALID, "roofline: node %d (of %d) or pass %d out of range", node, fg_graph_n_nodes(g),
                       (int)pass);
    step_cost(g, gpu, node, pass, out);
    return FG_OK;
}

fg_status fg_vmem_roofline_steps(const fg_graph *g, const fg_gpu_model *gpu, double *step_seconds) {
    FG_TRY(check_gpu(gpu));
    if (!graph_built(g))
        return fg_fail(FG_ERR_INVALID, "roofline: graph '%s' is not built (build it first: saved lists and gradients "
                                       "are known then)", fg_graph_name(g));
    int N = fg_graph_n_nodes(g);
    for (int i = 0; i < N; i++) {
        fg_roofline_cost c;
        step_cost(g, gpu, i, FG_FORWARD, &c);
        step_seconds[i] = c.seconds;
        step_cost(g, gpu, i, FG_BACKWARD, &c);
        step_seconds[2 * N - 1 - i] = c.seconds;
    }
    return FG_OK;
}
