/* Tests of the GPU simulation behind `frugal vmem simulate` (src/vmem/roofline.c with vmem's
 * dry-run plans and fg_vmem_predict).
 *  - The roofline: a conv with 64 channels is compute-bound and takes exactly
 *    flops / (peak * efficiency) + launch; a ReLU is memory-bound and takes exactly
 *    (input + output bytes) / (bandwidth * 0.8) + launch; a conv's backward counts one forward's
 *    FLOPs per input that gets a gradient (2x for a hidden conv, 1x for the first one); doubling
 *    the TFLOPS halves a compute-bound step (launch excluded) and leaves a memory-bound one alone;
 *    fg_vmem_roofline_steps puts each node's costs on the 2N timeline; an unbuilt graph and a GPU
 *    without FLOPs are refused.
 *  - The tables and their parsers: unknown names fail naming every valid value.
 *  - The simulation on a small VGG-16 (32x32, batch 4): at a budget below none's smallest one,
 *    none does not fit (FG_ERR_OOM naming the budget) while all, dyn and plan fit; their predicted
 *    peaks are within the budget; the oracle is the sum of the step seconds; dyn's and plan's
 *    predicted iterations are no faster than the oracle's and plan's no slower than dyn's; all's
 *    average device memory is below none's; with the same schedule a slower link never predicts
 *    less stall (and a 100x slower one predicts strictly more).
 *  - The replay of the pool (src/vmem/replay.c, reached through src/vmem/vmem_impl.h): on a
 *    sequence where best-fit and first-fit place an allocation differently, the replay agrees with
 *    the real fg_pool on success, peak and highest address, unlimited and at a capacity only
 *    best-fit runs in; on a sequence whose smallest capacity lies between the in-use peak and the
 *    unlimited run's highest address, the smallest capacity it reports runs (in the replay and in
 *    a real pool) and one 64-byte block less does not.
 *  - The schedule of a dry-run all with weight offload on the small VGG-16: prefetch group k is
 *    issued at the step of group k-1 (the first when backward starts), strictly before the step
 *    that waits for it; a parameter gradient's copy home is waited for one step after its last
 *    use (so it overlaps that step), at its last use only at the end of the iteration. Every slot
 *    leaves a step between its offload wait and its first backward read: a root saved by the last
 *    node and read by it in forward stays on the device.
 *  - The roofline's backward: a ReLU's bytes are exactly its input's gradient + what it saved + its
 *    output's gradient; a node whose output gets no gradient costs 0 s backward.
 *  - The replay: a release merges with its right free neighbour (as the real pool does); the arena
 *    takes an exact-fit gap (top = in-use peak).
 *  - The policies on LeNet and the small VGG-16: conv offloads strictly fewer tensors than all, each
 *    a conv's input; dyn at conv's smallest budget (when keeping everything does not fit) chooses
 *    conv's offload; between dyn's floor and all's smallest budget its greedy moves some conv off
 *    the implicit algorithm; at its floor the predicted compute is the steps with each switched conv
 *    scaled by its algorithm's relative cost (implicit > 1).
 *  - The time model's closed forms (all on the small VGG-16): 0 s steps, no latency, no interference:
 *    iteration = (offload + prefetch bytes) / bandwidth; compute_share 0.5: interference = 0.5 x the
 *    copies' latency + bytes / bandwidth and the iteration = compute + stall + recompute +
 *    interference; compute_share < 0: 1 / threads; recompute only: iteration = steps + reruns; weight
 *    offload: weight bytes = the schedule's home bytes; none: peak = plan's (shared workspace
 *    included), average = peak.
 *  - The budget error one block below the smallest budget names the node of the peak step (forward
 *    or backward) and the bytes lost to fragmentation (smallest budget - peak). */
#include <math.h>
#include <string.h>

#include "frugal/train.h"
#include "frugal/vmem.h"
#include "testutil.h"
#include "../src/vmem/vmem_impl.h"

static int close_rel(const char *what, double got, double want, double rtol) {
    double d = fabs(got - want), tol = rtol * fabs(want);
    if (d <= tol) return 1;
    fprintf(stderr, "%s: got %.12g, want %.12g (difference %.3g, tolerance %.3g)\n", what, got, want, d, tol);
    fg_test_failures++;
    return 0;
}

/* ---------------------------------------------------------------- the roofline */

/* input (8,64,32,32) -> conv1 64 3x3 -> relu -> conv2 64 3x3 -> gap -> fc 10 -> xent */
static fg_graph *small_convnet(fg_pool *pool, int *conv1, int *relu, int *conv2) {
    fg_graph *g;
    CHECK_OK(fg_graph_create(&g, "roof"));
    int64_t xs[4] = {8, 64, 32, 32}, ls[1] = {8};
    fg_id x = fg_nn_input(g, "x", FG_F32, 4, xs);
    fg_id y = fg_nn_input(g, "y", FG_I32, 1, ls);
    fg_id h = fg_layer_conv2d(g, "conv1", x, 64, 3, 1, 1, 1);
    h = fg_nn_relu(g, "relu1", h);
    h = fg_layer_conv2d(g, "conv2", h, 64, 3, 1, 1, 1);
    h = fg_nn_global_avgpool(g, "gap", h);
    h = fg_layer_linear(g, "fc", h, 10, 1);
    fg_id loss = fg_nn_xent(g, "loss", h, y);
    CHECK_OK(fg_graph_status(g));
    *conv1 = *relu = *conv2 = -1;
    for (int i = 0; i < fg_graph_n_nodes(g); i++) {
        const char *n = fg_graph_node(g, i)->name;
        if (strcmp(n, "conv1") == 0) *conv1 = i;
        if (strcmp(n, "relu1") == 0) *relu = i;
        if (strcmp(n, "conv2") == 0) *conv2 = i;
    }
    CHECK(*conv1 >= 0 && *relu >= 0 && *conv2 >= 0);
    double dummy;
    fg_gpu_model gpu;
    CHECK_OK(fg_gpu_model_parse("titanx", &gpu));
    CHECK_STATUS(fg_vmem_roofline_steps(g, &gpu, &dummy), FG_ERR_INVALID); /* not built yet */
    fg_mem_policy pol;
    CHECK_OK(fg_policy_network_wide(&pol));
    CHECK_OK(fg_graph_build(g, loss, pool, &pol));
    return g;
}

static void test_roofline(void) {
    fg_pool *pool;
    CHECK_OK(fg_pool_create(&pool, 0));
    int c1, r1, c2;
    fg_graph *g = small_convnet(pool, &c1, &r1, &c2);
    fg_gpu_model gpu;
    CHECK_OK(fg_gpu_model_parse("titanx", &gpu));
    const double L = FG_ROOFLINE_LAUNCH_SECONDS;
    double flops_s = gpu.fp32_tflops * 1e12 * gpu.efficiency;
    double bytes_s = gpu.mem_gbps * 1e9 * FG_ROOFLINE_MEM_EFFICIENCY;

    /* conv2 forward: 2 * 8 * 64 * 64 * 9 * 32 * 32 = 604 MFLOP, ~4 MB: compute-bound */
    fg_roofline_cost c;
    const fg_ninfo *n2 = fg_graph_node(g, c2);
    CHECK_OK(fg_vmem_roofline_cost(g, &gpu, c2, FG_FORWARD, &c));
    CHECK(c.compute_bound);
    close_rel("conv2 forward flops", c.flops, 2.0 * 8 * 64 * 64 * 9 * 32 * 32, 1e-12);
    close_rel("conv2 forward seconds", c.seconds, n2->flops / flops_s + L, 1e-12);
    /* backward of a hidden conv: data + weight gradients */
    CHECK_OK(fg_vmem_roofline_cost(g, &gpu, c2, FG_BACKWARD, &c));
    CHECK(c.compute_bound);
    close_rel("conv2 backward flops", c.flops, 2.0 * n2->flops, 1e-12);
    close_rel("conv2 backward seconds", c.seconds, 2.0 * n2->flops / flops_s + L, 1e-12);
    /* the first conv's input is an INPUT: only the weight gradient */
    CHECK_OK(fg_vmem_roofline_cost(g, &gpu, c1, FG_BACKWARD, &c));
    close_rel("conv1 backward flops", c.flops, fg_graph_node(g, c1)->flops, 1e-12);

    /* relu forward: reads its input, writes its output and its 1-bit mask: memory-bound */
    const fg_ninfo *nr = fg_graph_node(g, r1);
    CHECK(nr->n_aux == 1);
    double rbytes = (double)fg_graph_tinfo(g, nr->in[0])->bytes + (double)fg_graph_tinfo(g, nr->out)->bytes +
                    (double)fg_graph_tinfo(g, nr->out)->bytes / 32;
    CHECK_OK(fg_vmem_roofline_cost(g, &gpu, r1, FG_FORWARD, &c));
    CHECK(!c.compute_bound);
    close_rel("relu forward bytes", c.bytes, rbytes, 1e-12);
    close_rel("relu forward seconds", c.seconds, rbytes / bytes_s + L, 1e-12);
    double relu_s = c.seconds;

    /* relu backward: reads what it saved and the gradient of its output, writes its input's gradient */
    CHECK(nr->n_save > 0);
    CHECK(fg_graph_tinfo(g, nr->out)->grad != FG_NONE && fg_graph_tinfo(g, nr->in[0])->grad != FG_NONE);
    double rb = (double)fg_graph_tinfo(g, fg_graph_tinfo(g, nr->in[0])->grad)->bytes +
                (double)fg_graph_tinfo(g, fg_graph_tinfo(g, nr->out)->grad)->bytes;
    for (int k = 0; k < nr->n_save; k++) rb += (double)fg_graph_tinfo(g, nr->save[k])->bytes;
    CHECK_OK(fg_vmem_roofline_cost(g, &gpu, r1, FG_BACKWARD, &c));
    close_rel("relu backward bytes (dx + saved + dy)", c.bytes, rb, 1e-12);
    close_rel("relu backward seconds", c.seconds, (c.compute_bound ? c.compute_seconds : rb / bytes_s) + L, 1e-12);

    /* twice the FLOPS: a compute-bound step's compute halves, a memory-bound one is unchanged */
    CHECK_OK(fg_vmem_roofline_cost(g, &gpu, c2, FG_FORWARD, &c));
    double conv_s = c.seconds;
    fg_gpu_model fast = gpu;
    fast.fp32_tflops *= 2;
    CHECK_OK(fg_vmem_roofline_cost(g, &fast, c2, FG_FORWARD, &c));
    close_rel("conv2 forward, 2x TFLOPS", c.seconds - L, (conv_s - L) / 2, 1e-12);
    CHECK_OK(fg_vmem_roofline_cost(g, &fast, r1, FG_FORWARD, &c));
    close_rel("relu forward, 2x TFLOPS", c.seconds, relu_s, 1e-12);

    /* the 2N timeline */
    int N = fg_graph_n_nodes(g);
    double *steps = calloc((size_t)(2 * N), sizeof(double));
    CHECK_OK(fg_vmem_roofline_steps(g, &gpu, steps));
    for (int i = 0; i < N; i++) {
        fg_roofline_cost f, b;
        CHECK_OK(fg_vmem_roofline_cost(g, &gpu, i, FG_FORWARD, &f));
        CHECK_OK(fg_vmem_roofline_cost(g, &gpu, i, FG_BACKWARD, &b));
        if (steps[i] != f.seconds || steps[2 * N - 1 - i] != b.seconds) {
            fprintf(stderr, "roofline steps: node %d: forward %g vs %g, backward %g vs %g\n", i, steps[i], f.seconds,
                    steps[2 * N - 1 - i], b.seconds);
            fg_test_failures++;
        }
        CHECK(f.seconds >= L); /* every forward runs and pays a launch */
    }
    free(steps);

    /* refusals */
    fg_gpu_model bad = gpu;
    bad.fp32_tflops = 0;
    CHECK_STATUS(fg_vmem_roofline_cost(g, &bad, c2, FG_FORWARD, &c), FG_ERR_INVALID);
    CHECK(strstr(fg_last_error(), "fp32_tflops") != NULL);
    CHECK_STATUS(fg_vmem_roofline_cost(g, &gpu, N, FG_FORWARD, &c), FG_ERR_INVALID);
    fg_graph_free(g);
    fg_pool_destroy(pool);
}

/* A node whose output gets no gradient (a ReLU of the input, before the first conv): its backward
 * does not run and costs nothing, while its forward does. */
static void test_roofline_no_grad(void) {
    fg_pool *pool;
    CHECK_OK(fg_pool_create(&pool, 0));
    fg_graph *g;
    CHECK_OK(fg_graph_create(&g, "nograd"));
    int64_t xs[4] = {4, 8, 16, 16}, ls[1] = {4};
    fg_id x = fg_nn_input(g, "x", FG_F32, 4, xs);
    fg_id y = fg_nn_input(g, "y", FG_I32, 1, ls);
    fg_id h0 = fg_nn_relu(g, "relu0", x);
    fg_id h = fg_layer_conv2d(g, "conv1", h0, 8, 3, 1, 1, 1);
    h = fg_nn_relu(g, "relu1", h);
    h = fg_nn_global_avgpool(g, "gap", h);
    h = fg_layer_linear(g, "fc", h, 10, 1);
    fg_id loss = fg_nn_xent(g, "loss", h, y);
    CHECK_OK(fg_graph_status(g));
    fg_mem_policy pol;
    CHECK_OK(fg_policy_network_wide(&pol));
    CHECK_OK(fg_graph_build(g, loss, pool, &pol));
    int r0 = -1, r1 = -1, N = fg_graph_n_nodes(g);
    for (int i = 0; i < N; i++) {
        if (strcmp(fg_graph_node(g, i)->name, "relu0") == 0) r0 = i;
        if (strcmp(fg_graph_node(g, i)->name, "relu1") == 0) r1 = i;
    }
    CHECK(r0 >= 0 && r1 >= 0);
    if (r0 < 0 || r1 < 0) goto done;
    CHECK(fg_graph_tinfo(g, fg_graph_node(g, r0)->out)->grad == FG_NONE);
    CHECK(fg_graph_tinfo(g, fg_graph_node(g, r1)->out)->grad != FG_NONE);
    fg_gpu_model gpu;
    CHECK_OK(fg_gpu_model_parse("v100", &gpu));
    fg_roofline_cost c;
    CHECK_OK(fg_vmem_roofline_cost(g, &gpu, r0, FG_BACKWARD, &c));
    if (c.seconds != 0 || c.flops != 0 || c.bytes != 0) {
        fprintf(stderr, "roofline: relu0 (no gradient) backward costs %g s, %g flops, %g bytes; expected 0\n", c.seconds,
                c.flops, c.bytes);
        fg_test_failures++;
    }
    CHECK_OK(fg_vmem_roofline_cost(g, &gpu, r0, FG_FORWARD, &c));
    CHECK(c.seconds >= FG_ROOFLINE_LAUNCH_SECONDS);
    CHECK_OK(fg_vmem_roofline_cost(g, &gpu, r1, FG_BACKWARD, &c));
    CHECK(c.seconds >= FG_ROOFLINE_LAUNCH_SECONDS && c.bytes > 0);
    double *steps = calloc((size_t)(2 * N), sizeof(double));
    CHECK_OK(fg_vmem_roofline_steps(g, &gpu, steps));
    CHECK(steps[2 * N - 1 - r0] == 0 && steps[r0] > 0);
    free(steps);
done:
    fg_graph_free(g);
    fg_pool_destroy(pool);
}

/* ---------------------------------------------------------------- the tables */

static void test_parse(void) {
    fg_gpu_model gpu;
    fg_gpu_link link;
    CHECK_OK(fg_gpu_model_parse("titanx", &gpu));
    CHECK(gpu.fp32_tflops == 6.1 && gpu.mem_gbps > 300 && gpu.mem_bytes == 12.0 * 1024 * 1024 * 1024);
    int n = 0;
    for (const fg_gpu_model *m = fg_gpu_models(); m->name; m++, n++) {
        CHECK(m->fp32_tflops > 0 && m->mem_gbps > 0 && m->mem_bytes > 0 && m->efficiency > 0 && m->efficiency <= 1);
        CHECK_OK(fg_gpu_model_parse(m->name, &gpu));
        CHECK(gpu.fp32_tflops == m->fp32_tflops);
    }
    CHECK(n == 4);
    CHECK_STATUS(fg_gpu_model_parse("k80", &gpu), FG_ERR_INVALID);
    const char *want_gpus[] = {"'k80'", "titanx", "v100", "a100", "h100"};
    for (int i = 0; i < 5; i++)
        if (!strstr(fg_last_error(), want_gpus[i])) {
            fprintf(stderr, "gpu parse error '%s' does not name %s\n", fg_last_error(), want_gpus[i]);
            fg_test_failures++;
        }
    CHECK_STATUS(fg_gpu_model_parse(NULL, &gpu), FG_ERR_INVALID);

    CHECK_OK(fg_gpu_link_parse("pcie3", &link));
    CHECK(link.gbps == 12.0 && link.latency_us > 0);
    fg_vmem_link_model lm = fg_gpu_link_model(&link);
    CHECK(lm.gbps == 12.0 && lm.latency_us == link.latency_us && lm.compute_share == 0.0);
    double prev = 0;
    for (const fg_gpu_link *l = fg_gpu_links(); l->name; l++) {
        CHECK(l->gbps > prev); /* pcie3 < pcie4 < pcie5 */
        prev = l->gbps;
    }
    CHECK_STATUS(fg_gpu_link_parse("nvlink", &link), FG_ERR_INVALID);
    const char *want_links[] = {"'nvlink'", "pcie3", "pcie4", "pcie5"};
    for (int i = 0; i < 4; i++)
        if (!strstr(fg_last_error(), want_links[i])) {
            fprintf(stderr, "link parse error '%s' does not name %s\n", fg_last_error(), want_links[i]);
            fg_test_failures++;
        }
}

/* ---------------------------------------------------------------- the simulation */

typedef struct planned {
    fg_pool *pool;
    fg_graph *g;
    fg_vmem *vm;
    fg_vmem_stats st;
} planned;

/* Plans `kind` as a dry run in a pool of `capacity` (0 = unlimited) with the given step seconds
 * (may be NULL) and link. Returns the status of the build; on success p holds the graph. */
static fg_status plan_ex(const char *model, const fg_model_cfg *mc, fg_vmem_kind kind, size_t capacity,
                         const double *steps, const fg_vmem_link_model *lm, int offload_weights, planned *p) {
    memset(p, 0, sizeof *p);
    fg_model_io io;
    fg_mem_policy pol;
    fg_vmem_config vc = fg_vmem_config_defaults(kind);
    vc.dry_run = 1;
    vc.step_seconds = steps;
    vc.model = *lm;
    vc.link.gbps = lm->gbps;
    vc.link.latency_us = lm->latency_us;
    vc.offload_weights = offload_weights;
    CHECK_OK(fg_pool_create(&p->pool, capacity));
    CHECK_OK(fg_vmem_policy_create(&pol, &vc));
    p->vm = fg_vmem_of(&pol);
    fg_status s = fg_train_build_model(&p->g, &io, model, mc, 1, p->pool, &pol);
    if (s == FG_OK) fg_vmem_get_stats(p->vm, &p->st);
    return s;
}

static fg_status plan(const fg_model_cfg *mc, fg_vmem_kind kind, size_t capacity, const double *steps,
                      const fg_vmem_link_model *lm, planned *p) {
    return plan_ex("vgg16", mc, kind, capacity, steps, lm, 0, p);
}

static void unplan(planned *p) {
    fg_graph_free(p->g);
    fg_pool_destroy(p->pool);
    memset(p, 0, sizeof *p);
}

static void test_simulate(void) {
    fg_model_cfg mc = {.batch = 4, .channels = 3, .height = 32, .width = 32, .classes = 10, .dropout = -1};
    fg_gpu_model gpu;
    fg_gpu_link l3, l5;
    CHECK_OK(fg_gpu_model_parse("titanx", &gpu));
    CHECK_OK(fg_gpu_link_parse("pcie3", &l3));
    CHECK_OK(fg_gpu_link_parse("pcie5", &l5));
    fg_vmem_link_model m3 = fg_gpu_link_model(&l3), m5 = fg_gpu_link_model(&l5);

    /* the oracle: none in an unlimited pool, and the roofline steps of its graph */
    planned o;
    CHECK_OK(plan(&mc, FG_VMEM_NONE, 0, NULL, &m3, &o));
    if (!o.g) return;
    int N = fg_graph_n_nodes(o.g);
    double *steps = calloc((size_t)(2 * N), sizeof(double));
    CHECK_OK(fg_vmem_roofline_steps(o.g, &gpu, steps));
    double sum = 0;
    for (int s = 0; s < 2 * N; s++) sum += steps[s];
    fg_vmem_prediction po;
    CHECK_OK(fg_vmem_predict(o.vm, steps, &m3, &po));
    close_rel("oracle iteration = sum of the steps", po.iter_seconds, sum, 1e-12);
    CHECK(po.stall_seconds == 0 && po.offload_bytes == 0);
    size_t none_min = o.st.min_device_bytes;
    unplan(&o);

    /* the budget: all's smallest, which must be below none's */
    planned a;
    CHECK_OK(plan(&mc, FG_VMEM_ALL, 0, steps, &m3, &a));
    size_t budget = a.st.min_device_bytes;
    unplan(&a);
    if (!(budget < none_min)) {
        fprintf(stderr, "simulate: all's smallest budget %zu is not below none's %zu\n", budget, none_min);
        fg_test_failures++;
        free(steps);
        return;
    }

    planned p;
    fg_status s = plan(&mc, FG_VMEM_NONE, budget, steps, &m3, &p);
    CHECK(s == FG_ERR_OOM);
    if (s == FG_ERR_OOM) CHECK(strstr(fg_last_error(), "smallest budget") != NULL);
    unplan(&p);

    fg_vmem_prediction pr[FG_VMEM_KIND_COUNT];
    memset(pr, 0, sizeof pr);
    const fg_vmem_kind fit[] = {FG_VMEM_ALL, FG_VMEM_DYN, FG_VMEM_PLAN};
    for (int i = 0; i < 3; i++) {
        fg_vmem_kind k = fit[i];
        s = plan(&mc, k, budget, steps, &m3, &p);
        if (s != FG_OK) {
            fprintf(stderr, "simulate: %s does not fit %zu bytes: %s\n", fg_vmem_kind_name(k), budget, fg_last_error());
            fg_test_failures++;
            unplan(&p);
            continue;
        }
        CHECK_OK(fg_vmem_predict(p.vm, steps, &m3, &pr[k]));
        if (pr[k].peak_device_bytes > budget || pr[k].iter_seconds < sum * (1 - 1e-12)) {
            fprintf(stderr, "simulate: %s predicts peak %zu (budget %zu), %.9g s (oracle %.9g s)\n", fg_vmem_kind_name(k),
                    pr[k].peak_device_bytes, budget, pr[k].iter_seconds, sum);
            fg_test_failures++;
        }
        /* the same schedule over a slower link: never less stall; 100x slower: strictly more */
        fg_vmem_prediction p5, pslow;
        fg_vmem_link_model slow = m3;
        slow.gbps = m3.gbps / 100;
        CHECK_OK(fg_vmem_predict(p.vm, steps, &m5, &p5));
        CHECK_OK(fg_vmem_predict(p.vm, steps, &slow, &pslow));
        if (p5.stall_seconds > pr[k].stall_seconds || pr[k].stall_seconds > pslow.stall_seconds ||
            p5.iter_seconds > pr[k].iter_seconds) {
            fprintf(stderr, "simulate: %s stall pcie5 %.9g s, pcie3 %.9g s, 0.12 GB/s %.9g s (must not decrease)\n",
                    fg_vmem_kind_name(k), p5.stall_seconds, pr[k].stall_seconds, pslow.stall_seconds);
            fg_test_failures++;
        }
        if (p.st.n_offload_tensors > 0 && !(pslow.stall_seconds > pr[k].stall_seconds)) {
            fprintf(stderr, "simulate: %s offloads %d tensors but a 100x slower link adds no stall (%.9g vs %.9g s)\n",
                    fg_vmem_kind_name(k), p.st.n_offload_tensors, pslow.stall_seconds, pr[k].stall_seconds);
            fg_test_failures++;
        }
        unplan(&p);
    }
    CHECK(pr[FG_VMEM_ALL].offload_bytes > 0);
    CHECK(pr[FG_VMEM_ALL].avg_device_bytes < po.avg_device_bytes);
    if (pr[FG_VMEM_PLAN].iter_seconds > pr[FG_VMEM_DYN].iter_seconds * (1 + 1e-12)) {
        fprintf(stderr, "simulate: plan predicts %.9g s, slower than dyn's %.9g s\n", pr[FG_VMEM_PLAN].iter_seconds,
                pr[FG_VMEM_DYN].iter_seconds);
        fg_test_failures++;
    }
    free(steps);
}



/* An offload needs a step between the wait for it and its first backward read: the input of the
 * last node (a linear used as the loss), read by it in forward (step N-1) and saved for its
 * backward (step N), stays on the device under all. */
static void test_schedule_gap(void) {
    fg_pool *pool;
    CHECK_OK(fg_pool_create(&pool, 0));
    fg_graph *g;
    CHECK_OK(fg_graph_create(&g, "gap"));
    int64_t xs[4] = {1, 4, 8, 8};
    fg_id x = fg_nn_input(g, "x", FG_F32, 4, xs);
    fg_id h = fg_layer_conv2d(g, "conv1", x, 4, 3, 1, 1, 1);
    h = fg_nn_relu(g, "relu1", h);
    h = fg_nn_flatten(g, "flat", h);
    fg_id loss = fg_layer_linear(g, "head", h, 1, 1);
    CHECK_OK(fg_graph_status(g));
    fg_mem_policy pol;
    fg_vmem_config vc = fg_vmem_config_defaults(FG_VMEM_ALL);
    vc.dry_run = 1;
    CHECK_OK(fg_vmem_policy_create(&pol, &vc));
    fg_vmem *v = fg_vmem_of(&pol);
    fg_status s = fg_graph_build(g, loss, pool, &pol);
    CHECK_OK(s);
    if (s == FG_OK) {
        int N = v->N, head = N - 1;
        const fg_ninfo *n = fg_graph_node(g, head);
        CHECK(n->n_save > 0);
        fg_id r = fg_graph_tinfo(g, n->save[0])->alias_of;
        CHECK(v->ri[r].bf == N && v->ri[r].fl == N - 1);
        CHECK(!fg_vmem_is_offloaded(v, r));
        CHECK(v->sc.n_slots > 0);
        for (int k = 0; k < v->sc.n_slots; k++)
            if (!(v->sc.slots[k].bf > v->sc.slots[k].off_wait + 1)) {
                fprintf(stderr, "schedule: slot %s waited for at %d, first read at %d\n", v->sc.slots[k].name,
                        v->sc.slots[k].off_wait, v->sc.slots[k].bf);
                fg_test_failures++;
            }
    }
    fg_graph_free(g);
    fg_pool_destroy(pool);
}

/* ---------------------------------------------------------------- the policies' choices */

static int n_convs_not(const fg_graph *g, fg_conv_algo a) {
    int n = 0;
    for (int i = 0; i < fg_graph_n_nodes(g); i++)
        if (fg_graph_node(g, i)->op == FG_OP_CONV2D && fg_graph_node(g, i)->algo != a) n++;
    return n;
}

/* The smallest budget of keeping everything with layer-wise allocation (dyn's first try). */
static size_t keep_min_bytes(fg_vmem *v) {
    unsigned char *act = malloc((size_t)v->nt + 1);
    fg_vmem_schedule sc;
    memset(&sc, 0, sizeof sc);
    fg_vmem_kind_actions(v, FG_VMEM_NONE, act);
    CHECK_OK(fg_vmem_schedule_build(v, act, &sc));
    fg_vmem_memops m = {NULL, 0, 0};
    CHECK_OK(fg_vmem_memops_build(v, &sc, 0, 0, &m));
    size_t r = fg_vmem_min_capacity(m.op, m.n, v->nt + 1, v->persistent_bytes);
    free(m.op);
    free(act);
    fg_vmem_schedule_free(&sc);
    return r;
}

static int dyn_conv_checked;

/* conv offloads only conv inputs and fewer tensors than all; dyn at conv's smallest budget
 * chooses conv's offload; dyn between its floor and all's smallest budget upgrades some conv from
 * the memory-optimal algorithm; at its floor the predicted compute is the steps with every conv
 * step scaled by its algorithm's relative cost (implicit is slower than the reference). */
static void test_policies(const char *model, int64_t hw, int64_t ch) {
    fg_model_cfg mc = {.batch = 4, .channels = ch, .height = hw, .width = hw, .classes = 10, .dropout = -1};
    fg_gpu_model gpu;
    fg_gpu_link l3;
    CHECK_OK(fg_gpu_model_parse("titanx", &gpu));
    CHECK_OK(fg_gpu_link_parse("pcie3", &l3));
    fg_vmem_link_model m3 = fg_gpu_link_model(&l3);
    planned none, all, conv, p;
    CHECK_OK(plan_ex(model, &mc, FG_VMEM_NONE, 0, NULL, &m3, 0, &none));
    if (!none.g) return;
    int N = fg_graph_n_nodes(none.g);
    double *steps = calloc((size_t)(2 * N), sizeof(double));
    CHECK_OK(fg_vmem_roofline_steps(none.g, &gpu, steps));
    CHECK_OK(plan_ex(model, &mc, FG_VMEM_ALL, 0, steps, &m3, 0, &all));
    CHECK_OK(plan_ex(model, &mc, FG_VMEM_CONV, 0, steps, &m3, 0, &conv));
    if (!all.g || !conv.g) goto out;

    /* V1: conv offloads strictly fewer, and only the input feature maps of convs */
    printf("%-8s offloaded tensors: conv %d, all %d; smallest budgets none %zu, conv %zu, all %zu\n", model,
           conv.st.n_offload_tensors, all.st.n_offload_tensors, none.st.min_device_bytes, conv.st.min_device_bytes,
           all.st.min_device_bytes);
    CHECK(conv.st.n_offload_tensors > 0);
    CHECK(conv.st.n_offload_tensors < all.st.n_offload_tensors);
    int n_off = 0;
    for (fg_id r = 0; r < fg_graph_n_tensors(conv.g); r++) {
        if (!fg_vmem_is_offloaded(conv.vm, r)) continue;
        n_off++;
        int is_in = 0;
        for (int i = 0; i < N && !is_in; i++) {
            const fg_ninfo *n = fg_graph_node(conv.g, i);
            is_in = n->op == FG_OP_CONV2D && n->n_save > 0 && fg_graph_tinfo(conv.g, n->save[0])->alias_of == r;
        }
        if (!is_in) {
            fprintf(stderr, "%s conv: offloads '%s', not the input of a conv\n", model, fg_graph_tinfo(conv.g, r)->t.name);
            fg_test_failures++;
        }
    }
    CHECK(n_off == conv.st.n_offload_tensors);

    /* S1: dyn at conv's smallest budget, when keeping everything does not fit it, offloads what
     * conv offloads */
    size_t keep = keep_min_bytes(conv.vm);
    fg_status s = FG_OK;
    if (conv.st.min_device_bytes < keep) {
        dyn_conv_checked++;
        s = plan_ex(model, &mc, FG_VMEM_DYN, conv.st.min_device_bytes, steps, &m3, 0, &p);
        CHECK_OK(s);
    } else {
        s = FG_ERR_INVALID;
        memset(&p, 0, sizeof p);
    }
    if (s == FG_OK && (p.st.n_offload_tensors != conv.st.n_offload_tensors || !strstr(p.st.decision, "offload conv inputs"))) {
        fprintf(stderr, "%s dyn at conv's smallest budget %zu: '%s', %d tensors offloaded (conv: %d)\n", model,
                conv.st.min_device_bytes, p.st.decision, p.st.n_offload_tensors, conv.st.n_offload_tensors);
        fg_test_failures++;
    }
    unplan(&p);

    /* the floor: dyn's smallest budget (all offloaded, memory-optimal algorithms) */
    CHECK_OK(plan_ex(model, &mc, FG_VMEM_DYN, 0, steps, &m3, 0, &p));
    size_t floor = p.st.min_device_bytes, need = all.st.min_device_bytes;
    unplan(&p);
    CHECK(floor < need);
    if (!(floor < need)) goto out;
    s = plan_ex(model, &mc, FG_VMEM_DYN, floor, steps, &m3, 0, &p);
    CHECK_OK(s);
    if (s == FG_OK) {
        /* S5: the predicted compute is the steps scaled per conv by fg_vmem_algo_ratio */
        fg_vmem *v = p.vm;
        CHECK(v->algo_sec == NULL && v->algo_full == NULL);
        double want = 0, sum = 0;
        int changed = 0;
        for (int st = 0; st < 2 * N; st++) {
            int node = st < N ? st : 2 * N - 1 - st;
            const fg_ninfo *n = fg_graph_node(p.g, node);
            double f = 1;
            if (n->op == FG_OP_CONV2D && n->algo != v->ref_algo[node]) {
                f = fg_vmem_algo_cost(n->algo) / fg_vmem_algo_cost(v->ref_algo[node]);
                changed++;
                if (n->algo == FG_CONV_IMPLICIT && !(f > 1)) {
                    fprintf(stderr, "%s: implicit conv %s costs %g x its reference\n", model, n->name, f);
                    fg_test_failures++;
                }
            }
            want += steps[st] * f;
            sum += steps[st];
        }
        CHECK(changed > 0);
        CHECK(n_convs_not(p.g, FG_CONV_IMPLICIT) < n_convs_not(conv.g, FG_CONV_IMPLICIT));
        fg_vmem_prediction pr;
        CHECK_OK(fg_vmem_predict(v, steps, &m3, &pr));
        close_rel("dyn at its floor: predicted compute", pr.compute_seconds, want, 1e-9);
        CHECK(pr.compute_seconds > sum * (1 + 1e-9));
    }
    unplan(&p);
    /* S6: between the floor and all's smallest budget the greedy upgrades some conv */
    int upgraded = 0;
    for (int k = 1; k <= 6 && !upgraded; k++) {
        size_t b = floor + (need - floor) * (size_t)k / 7 / FG_POOL_ALIGN * FG_POOL_ALIGN;
        s = plan_ex(model, &mc, FG_VMEM_DYN, b, steps, &m3, 0, &p);
        CHECK_OK(s);
        if (s == FG_OK) {
            int up = n_convs_not(p.g, FG_CONV_IMPLICIT);
            if (up) printf("%-8s dyn at %zu bytes (floor %zu, all %zu): '%s'\n", model, b, floor, need, p.st.decision);
            upgraded += up > 0;
        }
        unplan(&p);
    }
    if (!upgraded) fprintf(stderr, "%s dyn: no conv upgraded from implicit below all's budget\n", model), fg_test_failures++;
out:
    unplan(&none);
    unplan(&all);
    unplan(&conv);
    free(steps);
}


/* ---------------------------------------------------------------- the time model's closed forms */

static void test_predict_forms(void) {
    fg_model_cfg mc = {.batch = 4, .channels = 3, .height = 32, .width = 32, .classes = 10, .dropout = -1};
    fg_gpu_model gpu;
    fg_gpu_link l3;
    CHECK_OK(fg_gpu_model_parse("titanx", &gpu));
    CHECK_OK(fg_gpu_link_parse("pcie3", &l3));
    fg_vmem_link_model m3 = fg_gpu_link_model(&l3);
    planned a;
    CHECK_OK(plan(&mc, FG_VMEM_ALL, 0, NULL, &m3, &a));
    if (!a.g) return;
    fg_vmem *v = a.vm;
    int N = fg_graph_n_nodes(a.g);
    double *steps = calloc((size_t)(2 * N), sizeof(double)), *zero = calloc((size_t)(2 * N), sizeof(double));
    CHECK_OK(fg_vmem_roofline_steps(a.g, &gpu, steps));
    double sum = 0;
    for (int st = 0; st < 2 * N; st++) sum += steps[st];
    const double bw = m3.gbps * 1e9;

    /* steps of 0 s, no latency, no interference: the iteration is the link moving every byte out,
     * then every byte back */
    fg_vmem_link_model m0 = {m3.gbps, 0, 0};
    fg_vmem_prediction pr;
    CHECK_OK(fg_vmem_predict(v, zero, &m0, &pr));
    CHECK(pr.offload_bytes > 0 && pr.prefetch_bytes == pr.offload_bytes);
    CHECK(pr.offload_bytes == (double)v->sc.offload_bytes);
    close_rel("all, 0 s steps: iteration = bytes / bandwidth", pr.iter_seconds, (pr.offload_bytes + pr.prefetch_bytes) / bw,
              1e-9);
    close_rel("all, 0 s steps: stall = iteration", pr.stall_seconds, pr.iter_seconds, 1e-9);

    /* half of every copy's seconds slows compute */
    fg_vmem_link_model mh = {m3.gbps, m3.latency_us, 0.5};
    CHECK_OK(fg_vmem_predict(v, steps, &mh, &pr));
    double copies = 2.0 * v->sc.n_slots * m3.latency_us * 1e-6 + (pr.offload_bytes + pr.prefetch_bytes) / bw;
    close_rel("all, share 0.5: interference", pr.interference_seconds, 0.5 * copies, 1e-9);
    close_rel("all, share 0.5: compute", pr.compute_seconds, sum, 1e-12);
    close_rel("all, share 0.5: iteration", pr.iter_seconds,
              pr.compute_seconds + pr.stall_seconds + pr.recompute_seconds + pr.interference_seconds, 1e-9);
    CHECK(pr.recompute_seconds == 0);
    /* a negative share: 1 / threads */
    fg_vmem_link_model mt = {m3.gbps, m3.latency_us, -1};
    CHECK_OK(fg_vmem_predict(v, steps, &mt, &pr));
    int th = fg_threads_get() > 0 ? fg_threads_get() : 1;
    close_rel("all, share -1: interference", pr.interference_seconds, copies / th, 1e-9);

    /* recompute only: the iteration is the steps plus the producers' reruns */
    unsigned char *act = malloc((size_t)v->nt + 1);
    fg_vmem_kind_actions(v, FG_VMEM_ALL, act);
    for (fg_id r = 0; r < v->nt; r++)
        if (act[r] == FG_VMEM_OFFLOAD) act[r] = FG_VMEM_RECOMPUTE;
    fg_vmem_schedule sc;
    memset(&sc, 0, sizeof sc);
    CHECK_OK(fg_vmem_schedule_build(v, act, &sc));
    CHECK(sc.n_recompute > 0 && sc.n_slots == 0);
    double rs = 0;
    for (int st = 0; st < 2 * N; st++)
        FG_SCHED_FOR(sc.s[S_RECOMP], st, k) rs += steps[fg_graph_tinfo(a.g, sc.s[S_RECOMP].ids[k])->producer];
    CHECK_OK(fg_vmem_predict_schedule(v, &sc, steps, &mh, &pr));
    CHECK(rs > 0);
    close_rel("recompute only: recompute seconds", pr.recompute_seconds, rs, 1e-12);
    close_rel("recompute only: iteration", pr.iter_seconds, sum + rs, 1e-9);
    CHECK(pr.stall_seconds == 0 && pr.interference_seconds == 0);
    fg_vmem_schedule_free(&sc);
    free(act);
    unplan(&a);

    /* weight offload: the bytes copied are the schedule's home bytes */
    CHECK_OK(plan_ex("vgg16", &mc, FG_VMEM_ALL, 0, NULL, &m3, 1, &a));
    if (a.g) {
        CHECK_OK(fg_vmem_predict(a.vm, steps, &m3, &pr));
        CHECK(a.vm->sc.home_bytes > 0);
        close_rel("all+weights: weight bytes", pr.weight_bytes, (double)a.vm->sc.home_bytes, 1e-12);
        close_rel("all+weights: weight bytes (stats)", pr.weight_bytes, (double)a.st.weight_bytes_per_iter, 1e-12);
        unplan(&a);
    }

    /* none with im2col convs: a constant footprint, the shared workspace included */
    fg_model_cfg mg = mc;
    mg.force_conv_algo = 1;
    mg.conv_algo = FG_CONV_GEMM;
    CHECK_OK(plan_ex("vgg16", &mg, FG_VMEM_NONE, 0, NULL, &m3, 0, &a));
    if (a.g) {
        CHECK_OK(fg_vmem_predict(a.vm, steps, &m3, &pr));
        CHECK(a.vm->shared_ws_bytes > 0);
        if (pr.peak_device_bytes != a.st.peak_device_bytes)
            fprintf(stderr, "none: predicted peak %zu, plan's %zu (shared workspace %zu)\n", pr.peak_device_bytes,
                    a.st.peak_device_bytes, a.vm->shared_ws_bytes),
                fg_test_failures++;
        close_rel("none: average = peak", pr.avg_device_bytes, (double)pr.peak_device_bytes, 1e-12);
        unplan(&a);
    }
    free(steps);
    free(zero);
}

/* ---------------------------------------------------------------- the budget error */

static int be_backward, be_frag;

/* A budget one block below the smallest: the error names the node of the peak step and what the
 * fragmentation costs. */
static void test_budget_error(const char *model, int64_t hw, int64_t ch, fg_vmem_kind kind) {
    fg_model_cfg mc = {.batch = 4, .channels = ch, .height = hw, .width = hw, .classes = 10, .dropout = -1};
    fg_vmem_link_model m = {10, 0, 0};
    planned a;
    CHECK_OK(plan_ex(model, &mc, kind, 0, NULL, &m, 0, &a));
    if (!a.g) return;
    fg_vmem *v = a.vm;
    fg_vmem_memops mo = {NULL, 0, 0};
    CHECK_OK(fg_vmem_memops_build(v, &v->sc, 0, 0, &mo));
    fg_vmem_replay_out r;
    fg_vmem_replay(mo.op, mo.n, v->nt + 1, v->persistent_bytes, (size_t)1 << 50, &r);
    int step = mo.op[r.peak_op].step, N = v->N;
    free(mo.op);
    char want[512], fr[32];
    snprintf(want, sizeof want, "at %s of node '%s'", step < N ? "forward" : "backward",
             fg_graph_node(a.g, step < N ? step : 2 * N - 1 - step)->name);
    size_t min = a.st.min_device_bytes, peak = a.st.peak_device_bytes;
    CHECK(r.peak == peak && min >= peak);
    fg_bytes_str(fr, sizeof fr, (double)(min - peak));
    char lost[64];
    snprintf(lost, sizeof lost, "+ %s lost", fr);
    be_backward += step >= N;
    be_frag += min > peak;
    unplan(&a);
    fg_status s = plan_ex(model, &mc, kind, min - FG_POOL_ALIGN, NULL, &m, 0, &a);
    CHECK(s == FG_ERR_OOM);
    if (s == FG_ERR_OOM && (!strstr(fg_last_error(), want) || !strstr(fg_last_error(), lost))) {
        fprintf(stderr, "%s %s: budget error '%s' does not say '%s' and '%s'\n", model, fg_vmem_kind_name(kind),
                fg_last_error(), want, lost);
        fg_test_failures++;
    }
    printf("%-8s %s budget error: peak at step %d of %d, %zu bytes lost to fragmentation\n", model,
           fg_vmem_kind_name(kind), step, 2 * N, min - peak);
    unplan(&a);
}

/* ---------------------------------------------------------------- the replay of the pool */

/* Runs ops on a real fg_pool of `capacity` (0 = unlimited); 1 when every allocation succeeds.
 * *peak: the pool's peak; *hwm: the highest end of a block it handed out (offsets from the first
 * block of the empty pool, its base). */
static int pool_run(const fg_vmem_memop *ops, size_t n, int n_ids, size_t capacity, size_t *peak, size_t *hwm) {
    fg_pool *pool;
    CHECK_OK(fg_pool_create(&pool, capacity));
    void *ptr[16] = {0};
    FG_ASSERT(n_ids <= 16);
    int ok = 1;
    *hwm = 0;
    for (size_t i = 0; i < n && ok; i++) {
        if (ops[i].alloc) {
            ok = fg_pool_alloc(pool, ops[i].bytes, "replay test", &ptr[ops[i].id]) == FG_OK;
            size_t top = fg_pool_get_stats(pool).top;
            if (ok && top > *hwm) *hwm = top;
        } else {
            fg_pool_free(pool, ptr[ops[i].id]);
            ptr[ops[i].id] = NULL;
        }
    }
    *peak = fg_pool_get_stats(pool).peak;
    fg_pool_destroy(pool);
    return ok;
}

static void test_replay(void) {
    /* A 256, B 64, C 128, D 64 back to back, A and C released: holes of 256 (offset 0) and 128
     * (offset 320). E (100, rounded to 128): best-fit takes the 128 hole, first-fit the 256 one;
     * then F (256) fits the 256 hole under best-fit only, first-fit puts it above D. */
    const fg_vmem_memop bf[] = {
        {1, 0, 256, 0}, {1, 1, 64, 0}, {1, 2, 128, 0}, {1, 3, 64, 0}, {0, 0, 256, 0},
        {0, 2, 128, 0}, {1, 4, 100, 0}, {1, 5, 256, 0},
    };
    const size_t nbf = sizeof bf / sizeof bf[0];
    fg_vmem_replay_out r;
    size_t peak, hwm;
    CHECK(pool_run(bf, nbf, 6, 0, &peak, &hwm));
    CHECK(fg_vmem_replay(bf, nbf, 6, 0, (size_t)1 << 50, &r));
    if (r.peak != peak || r.hwm != hwm || r.fail_op != nbf) {
        fprintf(stderr, "replay, unlimited: peak %zu, highest address %zu, failed op %zu; the pool: %zu, %zu\n", r.peak,
                r.hwm, r.fail_op, peak, hwm);
        fg_test_failures++;
    }
    CHECK(hwm == 512); /* best-fit fills both holes: nothing above D */
    /* at the capacity the pool runs in (only best-fit does), the replay runs too */
    int pok = pool_run(bf, nbf, 6, hwm, &peak, &hwm), rok = fg_vmem_replay(bf, nbf, 6, 0, 512, &r);
    if (!pok || !rok || r.peak != peak) {
        fprintf(stderr, "replay at 512 bytes: %s (peak %zu), the pool: %s (peak %zu)\n", rok ? "runs" : "fails", r.peak,
                pok ? "runs" : "fails", peak);
        fg_test_failures++;
    }
    CHECK(fg_vmem_replay_min_capacity(bf, nbf, 6, 0) == 512);

    /* The smallest capacity above the peak and below the unlimited run's highest address:
     * 0 128, 1 384, 2 320 back to back, 1 released (a hole of 384 at 128), 3 (448) goes on top.
     * Unlimited, 4 (128) takes the hole (smaller than the rest of the pool), leaving 256, too
     * small for 5 (320): on top again (highest address 1600). With a capacity that leaves exactly
     * 128 above 3, best-fit puts 4 there and 5 into the hole: 1408 bytes, 64 more than the peak
     * (1344, where 4 must take the hole and 5 finds no block). */
    const fg_vmem_memop mc[] = {
        {1, 0, 128, 0}, {1, 1, 384, 0}, {1, 2, 320, 0}, {0, 1, 384, 0},
        {1, 3, 448, 0}, {1, 4, 128, 0}, {1, 5, 320, 0},
    };
    const size_t nmc = sizeof mc / sizeof mc[0];
    CHECK(fg_vmem_replay(mc, nmc, 6, 0, (size_t)1 << 50, &r));
    CHECK(r.peak == 1344 && r.hwm == 1600);
    size_t m = fg_vmem_replay_min_capacity(mc, nmc, 6, 0);
    if (m != 1408) fprintf(stderr, "replay: smallest capacity %zu, expected 1408\n", m), fg_test_failures++;
    CHECK(fg_vmem_replay(mc, nmc, 6, 0, m, &r));
    CHECK(!fg_vmem_replay(mc, nmc, 6, 0, m - FG_POOL_ALIGN, &r));
    CHECK(pool_run(mc, nmc, 6, m, &peak, &hwm));
    CHECK(!pool_run(mc, nmc, 6, m - FG_POOL_ALIGN, &peak, &hwm));
    /* with persistent bytes below: the same layout shifted up */
    size_t mp = fg_vmem_replay_min_capacity(mc, nmc, 6, 1000);
    if (mp != 1408 + 1024)
        fprintf(stderr, "replay: smallest capacity %zu above a prefix of 1000 B, expected %d\n", mp, 1408 + 1024),
            fg_test_failures++;
    CHECK(fg_vmem_replay(mc, nmc, 6, 1000, mp, &r) && !fg_vmem_replay(mc, nmc, 6, 1000, mp - FG_POOL_ALIGN, &r));

    /* A release merges with its right free neighbour: 0, 1, 2 (128 each), 1 released (no free
     * neighbour), then 0 (its right neighbour 1 is free: one 256 hole at 0), 3 (256) takes it. */
    const fg_vmem_memop rm[] = {
        {1, 0, 128, 0}, {1, 1, 128, 0}, {1, 2, 128, 0}, {0, 1, 128, 0}, {0, 0, 128, 0}, {1, 3, 256, 0},
    };
    const size_t nrm = sizeof rm / sizeof rm[0];
    CHECK(pool_run(rm, nrm, 4, 0, &peak, &hwm));
    CHECK(fg_vmem_replay(rm, nrm, 4, 0, (size_t)1 << 50, &r));
    if (r.hwm != 384 || hwm != 384 || r.peak != peak) {
        fprintf(stderr, "replay, right merge: highest address %zu (pool %zu, expected 384), peak %zu (pool %zu)\n",
                r.hwm, hwm, r.peak, peak);
        fg_test_failures++;
    }
    CHECK(fg_vmem_replay(rm, nrm, 4, 0, 384, &r));

    /* The arena takes an exact-fit gap: A, B, C (256 each); A [0,2) at 0, B (overlaps A) at 256,
     * C (overlaps B only) into the 256 gap below B: top 512, the in-use peak. */
    const fg_vmem_memop pk[] = {{1, 0, 256, 0}, {1, 1, 256, 0}, {0, 0, 256, 0}, {1, 2, 256, 0}};
    size_t off[4];
    size_t top = fg_vmem_pack(pk, 4, 3, 0, off);
    if (top != 512 || off[0] != 0 || off[1] != 256 || off[3] != 0) {
        fprintf(stderr, "pack, exact-fit gap: top %zu (expected 512), offsets %zu %zu %zu (expected 0 256 0)\n", top,
                off[0], off[1], off[3]);
        fg_test_failures++;
    }
    CHECK(fg_vmem_min_capacity(pk, 4, 3, 0) == 512);
    CHECK(fg_vmem_pack(pk, 4, 3, 1000, NULL) == 512 + 1024);
}

/* ---------------------------------------------------------------- the schedule */

static void test_schedule(void) {
    fg_model_cfg mc = {.batch = 4, .channels = 3, .height = 32, .width = 32, .classes = 10, .dropout = -1};
    fg_pool *pool;
    fg_graph *g = NULL;
    fg_model_io io;
    fg_mem_policy pol;
    fg_vmem_config vc = fg_vmem_config_defaults(FG_VMEM_ALL);
    vc.dry_run = 1;
    vc.offload_weights = 1;
    CHECK_OK(fg_pool_create(&pool, 0));
    CHECK_OK(fg_vmem_policy_create(&pol, &vc));
    fg_vmem *v = fg_vmem_of(&pol);
    fg_status s = fg_train_build_model(&g, &io, "vgg16", &mc, 1, pool, &pol);
    CHECK_OK(s);
    if (s != FG_OK) {
        fg_graph_free(g);
        fg_pool_destroy(pool);
        return;
    }
    const fg_vmem_schedule *sc = &v->sc;
    const int N = v->N, last = v->has_backward ? v->steps : N;
    CHECK(v->has_backward);
    int *issue = malloc(sizeof(int) * (size_t)(sc->n_slots + 1));
    int *wait = malloc(sizeof(int) * (size_t)(sc->n_slots + 1));
    for (int k = 0; k < sc->n_slots; k++) issue[k] = wait[k] = -1;
    for (int st = 0; st < v->steps; st++) {
        FG_SCHED_FOR(sc->s[S_PF_ISSUE], st, k) issue[sc->s[S_PF_ISSUE].ids[k]] = st;
        FG_SCHED_FOR(sc->s[S_PF_WAIT], st, k) wait[sc->s[S_PF_WAIT].ids[k]] = st;
    }
    /* slots come in backward order of first need; a group is the slots first read at one step */
    int groups = 0, prev_bf = -1, cur_bf = -1;
    for (int k = 0; k < sc->n_slots; k++) {
        const fg_vmem_slot *sl = &sc->slots[k];
        if (sl->bf != cur_bf) {
            groups++;
            prev_bf = cur_bf;
            cur_bf = sl->bf;
        }
        /* an offload needs a step between its wait and the first backward read */
        if (!(sl->bf > sl->off_wait + 1)) {
            fprintf(stderr, "schedule: slot %d (%s): offload waited for at %d, first read at %d (no gap)\n", k,
                    sl->name, sl->off_wait, sl->bf);
            fg_test_failures++;
        }
        int want = prev_bf < 0 ? N : prev_bf;
        if (wait[k] != sl->bf || issue[k] != want || !(issue[k] < wait[k])) {
            fprintf(stderr, "schedule: slot %d (%s): prefetch issued at step %d, waited for at %d (first read at %d); "
                    "expected issued at %d, strictly before\n", k, sl->name, issue[k], wait[k], sl->bf, want);
            fg_test_failures++;
        }
    }
    if (groups < 3) fprintf(stderr, "schedule: %d prefetch groups, expected several\n", groups), fg_test_failures++;
    free(issue);
    free(wait);

    /* the copy home of a parameter gradient: waited for after the step following its last use */
    int *done = malloc(sizeof(int) * (size_t)(sc->n_homes + 1));
    for (int h = 0; h < sc->n_homes; h++) done[h] = -1;
    for (int st = 0; st < v->steps; st++) FG_SCHED_FOR(sc->s[S_HOME_DONE], st, k) done[sc->s[S_HOME_DONE].ids[k]] = st;
    int n_wb = 0, n_overlap = 0;
    for (int h = 0; h < sc->n_homes; h++) {
        const fg_vmem_home *hm = &sc->homes[h];
        if (!hm->writeback) {
            CHECK(done[h] == -1);
            continue;
        }
        n_wb++;
        int want = hm->b + 1 < last ? hm->b + 1 : hm->b;
        n_overlap += hm->b + 1 < last;
        if (hm->done != want || done[h] != want) {
            fprintf(stderr, "schedule: gradient %s (steps %d..%d): copy home waited for at step %d (listed at %d), "
                    "expected %d\n", hm->name, hm->a, hm->b, hm->done, done[h], want);
            fg_test_failures++;
        }
    }
    if (n_overlap < 2)
        fprintf(stderr, "schedule: %d gradient copy-backs (%d overlapping a step)\n", n_wb, n_overlap),
            fg_test_failures++;
    free(done);
    fg_graph_free(g);
    fg_pool_destroy(pool);
}

int main(void) {
    test_parse();
    test_roofline();
    test_simulate();
    test_replay();
    test_schedule();
    test_roofline_no_grad();
    test_schedule_gap();
    test_policies("lenet", 28, 1);
    test_policies("vgg16", 32, 3);
    test_predict_forms();
    test_budget_error("lenet", 28, 1, FG_VMEM_ALL);
    test_budget_error("lenet", 28, 1, FG_VMEM_CONV);
    test_budget_error("vgg16", 32, 3, FG_VMEM_ALL);
    test_budget_error("vgg16", 32, 3, FG_VMEM_CONV);
    test_budget_error("googlenet", 64, 3, FG_VMEM_ALL);
    test_budget_error("googlenet", 64, 3, FG_VMEM_CONV);
    if (!be_frag) printf("note: no budget error with bytes lost to fragmentation on this CPU\n");
    if (be_backward < 1) fprintf(stderr, "no budget error with its peak in backward\n"), fg_test_failures++;
    if (dyn_conv_checked < 1) fprintf(stderr, "dyn's conv choice checked on no network\n"), fg_test_failures++;
    return fg_test_finish("test_vmem_sim");
}
