/* Tests of the skip knobs (src/vit/skip.c over the executor's bypasses, src/graph/bypass.c), on
 * a small ViT (vit-tiny-28: 4 blocks, 1x28x28, batch 2) and a SegFormer-B0 (8 blocks, 1x64x64,
 * 5 labels), random weights, eval mode:
 *  - the all-on configuration (a zeroed fg_vit_skip, also after other configurations) gives the
 *    plain forward's logits bit for bit;
 *  - skipping equals a reference computed by hand on a second graph with the same weights: a
 *    skipped attention or MLP branch equals that branch's last linear zeroed (the branch then adds
 *    exactly 0), a skipped depthwise conv equals its kernel set to the identity (centre 1, bias 0),
 *    a dropped decoder stage equals its projection zeroed;
 *  - skipped nodes do not run: every node's execution counter grows by one per forward exactly
 *    when fg_graph_node_runs_op says it runs, and the skipped branches' nodes (query, attention,
 *    the MLP's linears, a dropped last decoder stage's encoder stage) are among those that do not;
 *  - FLOPs fall strictly as knobs turn off, and all-on FLOPs are the graph's;
 *  - heads kept equal the other heads' columns of the output projection zeroed; the sr conv as
 *    pooling equals the conv with averaging weights (1/k^2 on the channel diagonal);
 *  - the Pareto front and the governor's pick on a hand-made table (FLOPs and seconds budgets);
 *  - configurations switch between forward calls without a rebuild (the same configuration gives
 *    the same bits again);
 *  - narrowed nodes: heads kept narrow the q, k, v projections and the output projection (FLOPs
 *    fall by exactly the dropped heads' share), a dropped decoder stage narrows the fuse conv;
 *    a narrowed linear or fuse conv equals its skipped weight columns zeroed;
 *  - errors: backward with a bypass set, knobs the model does not have, a block out of range, a
 *    pass-through of another shape, a bad input index. */
#include <math.h>
#include <string.h>

#include "frugal/vit.h"
#include "testutil.h"

typedef struct net {
    fg_graph *g;
    fg_pool *pool;
    fg_id input, logits, labels, loss;
    size_t n_in, n_out;
} net;

static void net_vit(net *n, int with_loss) {
    fg_vit_cfg c;
    fg_vit_io io;
    CHECK_OK(fg_vit_config("vit-tiny-28", 10, &c));
    CHECK_OK(fg_pool_create(&n->pool, 0));
    CHECK_OK(fg_graph_create(&n->g, "vit"));
    CHECK_OK(fg_vit_build(n->g, &c, 2, 1, 28, 28, with_loss, &io));
    n->input = io.input;
    n->logits = io.logits;
    n->labels = io.labels;
    n->loss = io.loss;
    n->n_in = 2 * 28 * 28;
    n->n_out = 2 * 10;
    fg_mem_policy p;
    CHECK_OK(fg_policy_free_when_dead(&p));
    CHECK_OK(fg_graph_build(n->g, with_loss ? io.loss : FG_NONE, n->pool, &p));
}

static void net_segformer(net *n) {
    fg_segformer_cfg c;
    fg_segformer_io io;
    CHECK_OK(fg_segformer_config(FG_SEGFORMER_B0, 5, &c));
    c.num_channels = 1;
    CHECK_OK(fg_pool_create(&n->pool, 0));
    CHECK_OK(fg_graph_create(&n->g, "segformer"));
    CHECK_OK(fg_segformer_build(n->g, &c, 1, 64, 64, 0, &io));
    n->input = io.input;
    n->logits = io.logits;
    n->labels = n->loss = FG_NONE;
    n->n_in = 64 * 64;
    n->n_out = (size_t)(5 * io.h[0] * io.w[0]);
    fg_mem_policy p;
    CHECK_OK(fg_policy_network_wide(&p));
    CHECK_OK(fg_graph_build(n->g, FG_NONE, n->pool, &p));
}

static void net_init(net *n, uint64_t seed) {
    fg_rng r;
    fg_rng_seed(&r, seed);
    fg_graph_init_params(n->g, &r);
    fg_graph_set_training(n->g, 0);
}

static void net_free(net *n) {
    fg_graph_free(n->g);
    fg_pool_destroy(n->pool);
}

static void forward(net *n, const float *x, float *logits) {
    CHECK_OK(fg_graph_set_input(n->g, n->input, x, n->n_in * sizeof(float)));
    if (n->labels != FG_NONE) {
        int32_t y[2] = {3, 7};
        CHECK_OK(fg_graph_set_input(n->g, n->labels, y, sizeof y));
    }
    CHECK_OK(fg_graph_forward(n->g));
    CHECK_OK(fg_graph_read(n->g, n->logits, logits, n->n_out * sizeof(float)));
}

/* Sets the parameter `name` of the reference graph to zeros, or (identity) to a depthwise
 * identity kernel (M, 1, 3, 3) with 1 at the centre. */
static void set_param(net *n, const char *name, int identity) {
    fg_id id = fg_graph_find(n->g, name);
    if (id == FG_NONE) {
        fprintf(stderr, "  reference: no parameter '%s'\n", name);
        fg_test_failures++;
        return;
    }
    fg_tensor *t = fg_graph_tensor(n->g, id);
    const size_t numel = (size_t)fg_tensor_numel(t);
    float *d = t->data;
    memset(d, 0, numel * sizeof(float));
    if (identity)
        for (size_t i = 4; i < numel; i += 9) d[i] = 1.0f;
}

static void zero_linear(net *n, const char *layer) {
    char w[128], b[128];
    snprintf(w, sizeof w, "%s.weight", layer);
    snprintf(b, sizeof b, "%s.bias", layer);
    set_param(n, w, 0);
    set_param(n, b, 0);
}

/* Every node's counter grew by exactly one when it runs under the current bypasses, else by
 * zero; returns how many did not run. */
static int check_runs(const net *n, const uint64_t *before, const char *what) {
    int skipped = 0;
    for (int i = 0; i < fg_graph_n_nodes(n->g); i++) {
        const uint64_t want = before[i] + (uint64_t)fg_graph_node_runs_op(n->g, i);
        if (fg_graph_node_runs(n->g, i) != want) {
            fprintf(stderr, "  %s: node '%s' ran %llu times, expected %llu\n", what, fg_graph_node(n->g, i)->name,
                    (unsigned long long)fg_graph_node_runs(n->g, i), (unsigned long long)want);
            fg_test_failures++;
        }
        skipped += !fg_graph_node_runs_op(n->g, i);
    }
    return skipped;
}

static void snapshot(const net *n, uint64_t *runs) {
    for (int i = 0; i < fg_graph_n_nodes(n->g); i++) runs[i] = fg_graph_node_runs(n->g, i);
}

static int node_runs_op(const net *n, const char *name) {
    const int i = fg_graph_find_node(n->g, name);
    if (i < 0) {
        fprintf(stderr, "  no node '%s'\n", name);
        fg_test_failures++;
        return -1;
    }
    return fg_graph_node_runs_op(n->g, i);
}

static void test_vit(void) {
    net a, r;
    net_vit(&a, 1);
    net_vit(&r, 1);
    net_init(&a, 5);
    net_init(&r, 5);
    float x[2 * 28 * 28], plain[20], got[20], want[20], again[20];
    fg_rng rng;
    fg_rng_seed(&rng, 9);
    fg_fill_uniform(x, sizeof x / sizeof x[0], -1.f, 1.f, &rng);
    forward(&a, x, plain);

    fg_vit_skip k;
    memset(&k, 0, sizeof k);
    double f_all = 0, f1 = 0, f2 = 0, f3 = 0;
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f_all));
    fg_graph_info gi;
    fg_graph_get_info(a.g, &gi);
    CHECK(f_all == gi.flops_fwd);

    /* attention of block 1, MLP of block 2, all of block 3 */
    k.attn[1] = 1;
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f1));
    k.mlp[2] = 1;
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f2));
    k.attn[3] = k.mlp[3] = 1;
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f3));
    if (!(f_all > f1 && f1 > f2 && f2 > f3 && f3 > 0)) {
        fprintf(stderr, "  vit FLOPs do not fall: %.0f %.0f %.0f %.0f\n", f_all, f1, f2, f3);
        fg_test_failures++;
    }
    uint64_t before[1024];
    CHECK(fg_graph_n_nodes(a.g) <= 1024);
    snapshot(&a, before);
    forward(&a, x, got);
    const int skipped = check_runs(&a, before, "vit skip");
    CHECK(node_runs_op(&a, "vit.encoder.layer.1.attention.attention.query") == 0);
    CHECK(node_runs_op(&a, "vit.encoder.layer.0.attention.attention.query") == 1);
    CHECK(node_runs_op(&a, "vit.encoder.layer.1.intermediate.dense") == 1);
    CHECK(node_runs_op(&a, "vit.encoder.layer.2.intermediate.dense") == 0);
    CHECK(node_runs_op(&a, "vit.encoder.layer.3.layernorm_before") == 0);
    CHECK(skipped >= 20);

    zero_linear(&r, "vit.encoder.layer.1.attention.output.dense");
    zero_linear(&r, "vit.encoder.layer.2.output.dense");
    zero_linear(&r, "vit.encoder.layer.3.attention.output.dense");
    zero_linear(&r, "vit.encoder.layer.3.output.dense");
    forward(&r, x, want);
    fg_check_equal("vit: skipped branches vs their last linear zeroed", got, want, 20);
    CHECK(memcmp(got, plain, sizeof got) != 0);

    /* backward is refused while a bypass is set, works again after clearing and a new forward;
     * clearing alone does not make the skipped forward's saved activations whole */
    CHECK_STATUS(fg_graph_backward(a.g), FG_ERR_UNSUPPORTED);
    fg_graph_clear_bypass(a.g);
    CHECK_STATUS(fg_graph_backward(a.g), FG_ERR_UNSUPPORTED);
    CHECK(strstr(fg_last_error(), "last forward") != NULL);

    /* back to all on, with no rebuild: the plain forward's bits; the same configuration again */
    memset(&k, 0, sizeof k);
    CHECK_OK(fg_vit_skip_apply(a.g, &k));
    snapshot(&a, before);
    forward(&a, x, again);
    fg_check_equal("vit: all on after skipping vs the plain forward", again, plain, 20);
    CHECK(check_runs(&a, before, "vit all on") == 0);
    CHECK_OK(fg_graph_backward(a.g));
    k.attn[1] = k.mlp[2] = k.attn[3] = k.mlp[3] = 1;
    CHECK_OK(fg_vit_skip_apply(a.g, &k));
    forward(&a, x, again);
    fg_check_equal("vit: the same configuration again", again, got, 20);

    /* errors */
    fg_vit_skip bad;
    memset(&bad, 0, sizeof bad);
    bad.dwconv[0] = 1;
    CHECK_STATUS(fg_vit_skip_apply(a.g, &bad), FG_ERR_INVALID);
    memset(&bad, 0, sizeof bad);
    bad.decoder[1] = 1;
    CHECK_STATUS(fg_vit_skip_apply(a.g, &bad), FG_ERR_INVALID);
    memset(&bad, 0, sizeof bad);
    bad.attn[4] = 1;
    CHECK_STATUS(fg_vit_skip_apply(a.g, &bad), FG_ERR_INVALID);
    const int q = fg_graph_find_node(a.g, "vit.encoder.layer.0.attention.attention.query");
    CHECK_STATUS(fg_graph_set_bypass(a.g, q, FG_BYPASS_INPUT, 1), FG_ERR_SHAPE); /* the weight */
    CHECK_STATUS(fg_graph_set_bypass(a.g, q, FG_BYPASS_INPUT, 7), FG_ERR_INVALID);
    CHECK_STATUS(fg_graph_set_bypass(a.g, fg_graph_n_nodes(a.g), FG_BYPASS_ZERO, 0), FG_ERR_INVALID);
    net_free(&a);
    net_free(&r);
}

static void test_segformer(void) {
    net a, r;
    net_segformer(&a);
    net_segformer(&r);
    net_init(&a, 11);
    net_init(&r, 11);
    static float x[64 * 64];
    const size_t no = a.n_out;
    float *plain = malloc(no * sizeof(float)), *got = malloc(no * sizeof(float)), *want = malloc(no * sizeof(float));
    fg_rng rng;
    fg_rng_seed(&rng, 13);
    fg_fill_uniform(x, 64 * 64, -1.f, 1.f, &rng);
    forward(&a, x, plain);
    int64_t nb = 0;
    int seg = 0;
    CHECK_OK(fg_vit_skip_blocks(a.g, &nb, &seg));
    CHECK(nb == 8 && seg == 1);

    fg_vit_skip k;
    memset(&k, 0, sizeof k);
    double f[6];
    int nf = 0;
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f[nf++]));
    k.dwconv[0] = 1; /* stage 0 block 0 */
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f[nf++]));
    k.mlp[2] = 1; /* stage 1 block 0 */
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f[nf++]));
    k.attn[5] = 1; /* stage 2 block 1 */
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f[nf++]));
    k.decoder[1] = 1;
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f[nf++]));
    k.decoder[3] = 1;
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f[nf++]));
    for (int i = 1; i < nf; i++)
        if (!(f[i] < f[i - 1] && f[i] > 0)) {
            fprintf(stderr, "  segformer FLOPs do not fall at knob %d: %.0f then %.0f\n", i, f[i - 1], f[i]);
            fg_test_failures++;
        }
    uint64_t before[2048];
    CHECK(fg_graph_n_nodes(a.g) <= 2048);
    snapshot(&a, before);
    forward(&a, x, got);
    check_runs(&a, before, "segformer skip");
    CHECK(node_runs_op(&a, "segformer.encoder.block.0.0.mlp.dwconv.dwconv") == 0);
    CHECK(node_runs_op(&a, "segformer.encoder.block.0.0.mlp.dense1") == 1);
    CHECK(node_runs_op(&a, "segformer.encoder.block.1.0.mlp.dense1") == 0);
    CHECK(node_runs_op(&a, "segformer.encoder.block.2.1.attention.self.query") == 0);
    CHECK(node_runs_op(&a, "decode_head.linear_c.1.proj") == 0);
    CHECK(node_runs_op(&a, "decode_head.linear_c.2.proj") == 1);
    /* the last stage feeds only its decoder projection: dropping that leaves the stage unrun */
    CHECK(node_runs_op(&a, "segformer.encoder.block.3.0.attention.self.query") == 0);
    CHECK(node_runs_op(&a, "segformer.encoder.block.2.0.attention.self.query") == 1);

    set_param(&r, "segformer.encoder.block.0.0.mlp.dwconv.dwconv.weight", 1);
    set_param(&r, "segformer.encoder.block.0.0.mlp.dwconv.dwconv.bias", 0);
    zero_linear(&r, "segformer.encoder.block.1.0.mlp.dense2");
    zero_linear(&r, "segformer.encoder.block.2.1.attention.output.dense");
    zero_linear(&r, "decode_head.linear_c.1.proj");
    zero_linear(&r, "decode_head.linear_c.3.proj");
    forward(&r, x, want);
    /* the identity kernel's products with 0 and the bias 0 are exact: equal within rounding of
     * the conv's summation order at most */
    fg_check_close("segformer: skips vs the hand-made reference", got, want, no, 1e-6f, 1e-6f);
    CHECK(memcmp(got, plain, no * sizeof(float)) != 0);

    memset(&k, 0, sizeof k);
    CHECK_OK(fg_vit_skip_apply(a.g, &k));
    forward(&a, x, got);
    fg_check_equal("segformer: all on after skipping vs the plain forward", got, plain, no);
    free(plain);
    free(got);
    free(want);
    net_free(&a);
    net_free(&r);
}

/* Zeros columns [from, IC) of a linear weight (OC, IC): the reference of heads kept. */
static void zero_columns(net *n, const char *name, int64_t from) {
    fg_id id = fg_graph_find(n->g, name);
    CHECK(id != FG_NONE);
    if (id == FG_NONE) return;
    fg_tensor *t = fg_graph_tensor(n->g, id);
    float *w = t->data;
    for (int64_t o = 0; o < t->shape[0]; o++)
        for (int64_t i = from; i < t->shape[1]; i++) w[o * t->shape[1] + i] = 0.0f;
}

/* An sr conv weight (C, C, k, k) made an average pooling: 1/k^2 on the diagonal, bias 0. */
static void averaging_conv(net *n, const char *prefix) {
    char w[160], b[160];
    snprintf(w, sizeof w, "%s.weight", prefix);
    snprintf(b, sizeof b, "%s.bias", prefix);
    set_param(n, b, 0);
    fg_id id = fg_graph_find(n->g, w);
    CHECK(id != FG_NONE);
    if (id == FG_NONE) return;
    fg_tensor *t = fg_graph_tensor(n->g, id);
    const int64_t C = t->shape[0], k = t->shape[2];
    float *d = t->data;
    memset(d, 0, (size_t)fg_tensor_numel(t) * sizeof(float));
    for (int64_t c = 0; c < C; c++)
        for (int64_t j = 0; j < k * k; j++) d[(c * C + c) * k * k + j] = 1.0f / (float)(k * k);
}

/* Heads kept and the sr conv as pooling, against weights that do the same. */
static void test_heads_pool(void) {
    net a, r;
    net_vit(&a, 0);
    net_vit(&r, 0);
    net_init(&a, 21);
    net_init(&r, 21);
    float x[2 * 28 * 28], plain[20], got[20], want[20];
    fg_rng rng;
    fg_rng_seed(&rng, 23);
    fg_fill_uniform(x, sizeof x / sizeof x[0], -1.f, 1.f, &rng);
    forward(&a, x, plain);
    fg_vit_skip k;
    memset(&k, 0, sizeof k);
    double f0 = 0, f1 = 0, f2 = 0;
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f0));
    k.heads[0] = 2; /* of 4 heads of 16 */
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f1));
    k.heads[2] = 1;
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f2));
    CHECK(f0 > f1 && f1 > f2);
    forward(&a, x, got);
    zero_columns(&r, "vit.encoder.layer.0.attention.output.dense.weight", 2 * 16);
    zero_columns(&r, "vit.encoder.layer.2.attention.output.dense.weight", 1 * 16);
    forward(&r, x, want);
    fg_check_close("vit: heads kept vs the other heads' output columns zeroed", got, want, 20, 1e-6f, 1e-7f);
    CHECK(memcmp(got, plain, sizeof got) != 0);
    fg_vit_skip bad;
    memset(&bad, 0, sizeof bad);
    bad.heads[1] = 5;
    CHECK_STATUS(fg_vit_skip_apply(a.g, &bad), FG_ERR_INVALID);
    memset(&bad, 0, sizeof bad);
    bad.sr_pool[1] = 1;
    CHECK_STATUS(fg_vit_skip_apply(a.g, &bad), FG_ERR_INVALID);
    memset(&k, 0, sizeof k);
    CHECK_OK(fg_vit_skip_apply(a.g, &k));
    forward(&a, x, got);
    fg_check_equal("vit: all on after heads kept", got, plain, 20);
    net_free(&a);
    net_free(&r);

    net_segformer(&a);
    net_segformer(&r);
    net_init(&a, 31);
    net_init(&r, 31);
    static float xs[64 * 64];
    const size_t no = a.n_out;
    float *sg = malloc(no * sizeof(float)), *sw = malloc(no * sizeof(float));
    fg_rng_seed(&rng, 37);
    fg_fill_uniform(xs, 64 * 64, -1.f, 1.f, &rng);
    memset(&k, 0, sizeof k);
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f0));
    k.sr_pool[0] = 1; /* stage 0, sr 8 */
    k.sr_pool[2] = 1; /* stage 1, sr 4 */
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f1));
    k.heads[4] = 3; /* stage 2: 5 heads of 32 */
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f2));
    CHECK(f0 > f1 && f1 > f2);
    uint64_t before[2048];
    snapshot(&a, before);
    forward(&a, xs, sg);
    check_runs(&a, before, "segformer pool");
    CHECK(node_runs_op(&a, "segformer.encoder.block.0.0.attention.self.sr") == 0);
    CHECK(node_runs_op(&a, "segformer.encoder.block.0.0.attention.self.layer_norm") == 1);
    averaging_conv(&r, "segformer.encoder.block.0.0.attention.self.sr");
    averaging_conv(&r, "segformer.encoder.block.1.0.attention.self.sr");
    zero_columns(&r, "segformer.encoder.block.2.0.attention.output.dense.weight", 3 * 32);
    forward(&r, xs, sw);
    fg_check_close("segformer: sr pooled and heads kept vs averaging sr weights and zeroed columns", sg, sw, no, 1e-5f,
                   1e-6f);
    memset(&bad, 0, sizeof bad);
    bad.sr_pool[6] = 1; /* stage 3: sr 1, no reduction conv */
    CHECK_STATUS(fg_vit_skip_apply(a.g, &bad), FG_ERR_INVALID);
    const int q = fg_graph_find_node(a.g, "segformer.encoder.block.0.0.attention.self.query");
    CHECK_STATUS(fg_graph_set_bypass(a.g, q, FG_BYPASS_AVGPOOL, 0), FG_ERR_INVALID);
    CHECK_STATUS(fg_graph_set_attention_heads(a.g, q, 1), FG_ERR_INVALID);
    free(sg);
    free(sw);
    net_free(&a);
    net_free(&r);
}

/* Columns [c0, c1) of a (OC, IC) or (OC, IC, 1, 1) weight set to zero. */
static void zero_range(net *n, const char *name, int64_t c0, int64_t c1) {
    fg_id id = fg_graph_find(n->g, name);
    CHECK(id != FG_NONE);
    if (id == FG_NONE) return;
    fg_tensor *t = fg_graph_tensor(n->g, id);
    for (int64_t o = 0; o < t->shape[0]; o++)
        for (int64_t i = c0; i < c1; i++) ((float *)t->data)[o * t->shape[1] + i] = 0.0f;
}

static double node_flops_of(const net *n, const char *name) {
    const int i = fg_graph_find_node(n->g, name);
    CHECK(i >= 0);
    return i >= 0 ? fg_graph_node(n->g, i)->flops : 0.0;
}

/* Narrowed nodes: heads kept narrow q, k, v and the output projection (FLOPs fall by exactly the
 * dropped heads' share of those four linears and the attention op); a narrowed linear reading a
 * prefix of its inputs and a 1x1 conv multiplying some channel blocks equal their weights' other
 * columns zeroed (the skipped inputs are not zeros here, so they must really be left out); a
 * dropped decoder stage narrows the fuse conv by a quarter; errors; backward refused. */
static void test_narrow(void) {
    net a, r;
    net_vit(&a, 1);
    net_vit(&r, 1);
    net_init(&a, 41);
    net_init(&r, 41);
    float x[2 * 28 * 28], got[20], want[20];
    fg_rng rng;
    fg_rng_seed(&rng, 43);
    fg_fill_uniform(x, sizeof x / sizeof x[0], -1.f, 1.f, &rng);
    fg_vit_skip k;
    memset(&k, 0, sizeof k);
    double f0 = 0, f1 = 0;
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f0));
    k.heads[1] = 1; /* of 4: three quarters of the five nodes' work gone */
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f1));
    static const char *const five[5] = {"attention.query", "attention.key", "attention.value", "output.dense",
                                        "attention"};
    double share = 0.0;
    for (int j = 0; j < 5; j++) {
        char nm[96];
        snprintf(nm, sizeof nm, "vit.encoder.layer.1.attention.%s", five[j]);
        share += node_flops_of(&a, nm);
    }
    if (fabs((f0 - f1) - 0.75 * share) > 1e-9 * f0) {
        fprintf(stderr, "  heads kept 1 of 4: FLOPs fell by %.0f, expected %.0f\n", f0 - f1, 0.75 * share);
        fg_test_failures++;
    }
    /* backward is refused while a projection is narrowed */
    int32_t y[2] = {1, 2};
    CHECK_OK(fg_graph_set_input(a.g, a.labels, y, sizeof y));
    CHECK_OK(fg_graph_set_input(a.g, a.input, x, sizeof x));
    CHECK_OK(fg_graph_forward(a.g));
    CHECK_STATUS(fg_graph_backward(a.g), FG_ERR_UNSUPPORTED);
    memset(&k, 0, sizeof k);
    CHECK_OK(fg_vit_skip_apply(a.g, &k));
    /* a linear reading 40 of its 128 inputs = its columns 40.. zeroed; alone it refuses backward */
    const int dense = fg_graph_find_node(a.g, "vit.encoder.layer.2.output.dense"); /* 128 -> 64 */
    const int q = fg_graph_find_node(a.g, "vit.encoder.layer.0.attention.attention.query");
    CHECK_OK(fg_graph_set_linear_narrow(a.g, dense, 40, 0));
    forward(&a, x, got);
    CHECK_STATUS(fg_graph_backward(a.g), FG_ERR_UNSUPPORTED);
    zero_range(&r, "vit.encoder.layer.2.output.dense.weight", 40, 128);
    forward(&r, x, want);
    fg_check_close("linear reading 40 of 128 inputs vs columns zeroed", got, want, 20, 1e-5f, 1e-6f);
    CHECK_OK(fg_graph_set_linear_narrow(a.g, dense, 128, 64)); /* full sizes: no narrowing, no bypass */
    CHECK_STATUS(fg_graph_set_linear_narrow(a.g, dense, 129, 0), FG_ERR_INVALID);
    CHECK_STATUS(fg_graph_set_linear_narrow(a.g, dense, 0, 65), FG_ERR_INVALID);
    CHECK_STATUS(fg_graph_set_linear_narrow(a.g, fg_graph_find_node(a.g, "vit.encoder.layer.0.attention.attention"), 1, 1),
                 FG_ERR_INVALID);
    CHECK_STATUS(fg_graph_set_conv_narrow(a.g, q, 2, 1), FG_ERR_INVALID); /* not a conv */
    CHECK_STATUS(fg_graph_set_conv_narrow(a.g, fg_graph_find_node(a.g, "vit.embeddings.patch_embeddings.projection"), 1, 0),
                 FG_ERR_INVALID); /* 7x7 */
    CHECK_OK(fg_graph_forward(a.g));
    CHECK_OK(fg_graph_backward(a.g)); /* nothing narrowed any more */
    net_free(&a);
    net_free(&r);

    net_segformer(&a);
    net_segformer(&r);
    net_init(&a, 47);
    net_init(&r, 47);
    static float xs[64 * 64];
    const size_t no = a.n_out;
    float *sg = malloc(no * sizeof(float)), *sw = malloc(no * sizeof(float));
    fg_rng_seed(&rng, 53);
    fg_fill_uniform(xs, 64 * 64, -1.f, 1.f, &rng);
    /* the fuse conv multiplying blocks 0, 1 and 3 of 4 = its block-2 columns zeroed (block 2 is
     * stage 1's projection, live and non-zero) */
    const int fuse = fg_graph_find_node(a.g, "decode_head.linear_fuse");
    memset(&k, 0, sizeof k);
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f0));
    CHECK_OK(fg_graph_set_conv_narrow(a.g, fuse, 4, 0xbu));
    f1 = fg_graph_active_flops(a.g);
    const double fuse_flops = fg_graph_node(a.g, fuse)->flops;
    if (fabs((f0 - f1) - 0.25 * fuse_flops) > 1e-9 * f0) {
        fprintf(stderr, "  fuse conv 3 of 4 blocks: FLOPs fell by %.0f, expected %.0f\n", f0 - f1, 0.25 * fuse_flops);
        fg_test_failures++;
    }
    forward(&a, xs, sg);
    const int64_t E = fg_graph_tinfo(a.g, fg_graph_node(a.g, fuse)->in[0])->t.shape[1] / 4;
    zero_range(&r, "decode_head.linear_fuse.weight", 2 * E, 3 * E);
    forward(&r, xs, sw);
    fg_check_close("fuse conv over 3 of 4 channel blocks vs that block's columns zeroed", sg, sw, no, 1e-5f, 1e-6f);
    /* no block at all: the bias alone, whatever the output buffer held from the forward above */
    CHECK_OK(fg_graph_set_conv_narrow(a.g, fuse, 4, 0));
    forward(&a, xs, sg);
    zero_range(&r, "decode_head.linear_fuse.weight", 0, 4 * E);
    forward(&r, xs, sw);
    fg_check_close("fuse conv over no channel block vs all its columns zeroed", sg, sw, no, 1e-5f, 1e-6f);
    CHECK_STATUS(fg_graph_set_conv_narrow(a.g, fuse, 3, 1), FG_ERR_INVALID);    /* 3 does not divide 4E */
    CHECK_STATUS(fg_graph_set_conv_narrow(a.g, fuse, 4, 0x10u), FG_ERR_INVALID); /* block 4 of 4 */
    /* a dropped decoder stage narrows the fuse conv by its quarter, beyond its projection's work */
    memset(&k, 0, sizeof k);
    k.decoder[1] = 1;
    CHECK_OK(fg_vit_skip_apply(a.g, &k));
    const double f_drop = fg_graph_active_flops(a.g);
    CHECK_OK(fg_graph_set_conv_narrow(a.g, fuse, 4, 0xfu)); /* the same, fuse conv whole again */
    const double f_wide = fg_graph_active_flops(a.g);
    if (fabs((f_wide - f_drop) - 0.25 * fuse_flops) > 1e-9 * f0) {
        fprintf(stderr, "  decoder stage 1 dropped: the fuse conv saves %.0f, expected %.0f\n", f_wide - f_drop,
                0.25 * fuse_flops);
        fg_test_failures++;
    }
    free(sg);
    free(sw);
    net_free(&a);
    net_free(&r);
}

/* The Pareto front and the governor on a hand-made table. */
static void test_governor(void) {
    fg_vit_profile_entry t[5];
    memset(t, 0, sizeof t);
    /* flops, seconds, metric: 1 dominates 3 (cheaper and better); 4 ties 2's cost, is worse */
    const double v[5][3] = {{100, 1.0, 0.90}, {60, 0.5, 0.85}, {40, 0.6, 0.70}, {70, 0.7, 0.80}, {40, 0.3, 0.60}};
    for (int i = 0; i < 5; i++) {
        t[i].flops = v[i][0];
        t[i].seconds = v[i][1];
        t[i].metric = v[i][2];
        t[i].skip.attn[0] = (uint8_t)i;
    }
    uint8_t front[5];
    CHECK(fg_vit_pareto(t, 5, FG_VIT_COST_FLOPS, front) == 3);
    CHECK(front[0] && front[1] && front[2] && !front[3] && !front[4]);
    CHECK(fg_vit_pareto(t, 5, FG_VIT_COST_SECONDS, front) == 3);
    CHECK(front[0] && front[1] && !front[2] && !front[3] && front[4]);
    size_t pick = 99;
    CHECK_OK(fg_vit_governor_pick(t, 5, FG_VIT_COST_FLOPS, 1000, &pick));
    CHECK(pick == 0);
    CHECK_OK(fg_vit_governor_pick(t, 5, FG_VIT_COST_FLOPS, 99.9, &pick));
    CHECK(pick == 1);
    CHECK_OK(fg_vit_governor_pick(t, 5, FG_VIT_COST_FLOPS, 59, &pick));
    CHECK(pick == 2);
    CHECK_OK(fg_vit_governor_pick(t, 5, FG_VIT_COST_SECONDS, 0.45, &pick));
    CHECK(pick == 4);
    CHECK_STATUS(fg_vit_governor_pick(t, 5, FG_VIT_COST_FLOPS, 39, &pick), FG_ERR_INVALID);
    CHECK_STATUS(fg_vit_governor_pick(t, 0, FG_VIT_COST_FLOPS, 39, &pick), FG_ERR_INVALID);
    /* a NaN budget fits nothing (it fitted the most accurate entry), a NaN cost never fits */
    CHECK_STATUS(fg_vit_governor_pick(t, 5, FG_VIT_COST_FLOPS, NAN, &pick), FG_ERR_INVALID);
    const double f0 = t[0].flops;
    t[0].flops = NAN;
    CHECK_OK(fg_vit_governor_pick(t, 5, FG_VIT_COST_FLOPS, 1000, &pick));
    CHECK(pick == 1);
    t[0].flops = f0;
    /* an exact tie: only the first of the two is on the front */
    fg_vit_profile_entry two[2];
    memcpy(&two[0], &t[1], sizeof two[0]);
    memcpy(&two[1], &t[1], sizeof two[1]);
    CHECK(fg_vit_pareto(two, 2, FG_VIT_COST_FLOPS, front) == 1);
    CHECK(front[0] == 1 && front[1] == 0);
}

/* fg_graph_active_flops node by node: a node that does not run (dead, or bypassed by a copy or
 * zeros) costs nothing, the sr conv as pooling costs kh * kw per output element, every other node
 * its forward FLOPs; pool_node < 0: none pooled. Summed in node order, as the graph does. */
static double expected_flops(const net *n, int pool_node, double kk) {
    double f = 0.0;
    for (int i = 0; i < fg_graph_n_nodes(n->g); i++) {
        const fg_ninfo *ni = fg_graph_node(n->g, i);
        if (i == pool_node) f += (double)fg_tensor_numel(&fg_graph_tinfo(n->g, ni->out)->t) * kk;
        else if (fg_graph_node_runs_op(n->g, i)) f += ni->flops;
    }
    return f;
}

/* Skipping block 1's attention lowers the active FLOPs by exactly its nodes' FLOPs (the branch's
 * dead nodes, query to the output projection, count nothing); SegFormer's stage-0 sr conv as
 * 8x8 average pooling costs numel(out) * 64. */
static void test_active_flops(void) {
    net a;
    net_vit(&a, 0);
    net_init(&a, 41);
    fg_vit_skip k;
    memset(&k, 0, sizeof k);
    double f_all = 0, f_skip = 0;
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f_all));
    CHECK(f_all == expected_flops(&a, -1, 0));
    k.attn[1] = 1;
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f_skip));
    double dropped = 0.0;
    for (int i = 0; i < fg_graph_n_nodes(a.g); i++)
        if (!fg_graph_node_runs_op(a.g, i)) {
            const char *nm = fg_graph_node(a.g, i)->name;
            CHECK(strstr(nm, "vit.encoder.layer.1.") == nm); /* only block 1's nodes stop */
            dropped += fg_graph_node(a.g, i)->flops;
        }
    const int q = fg_graph_find_node(a.g, "vit.encoder.layer.1.attention.attention.query");
    CHECK(q >= 0 && fg_graph_node(a.g, q)->flops > 0 && !fg_graph_node_runs_op(a.g, q));
    CHECK(dropped > 0);
    if (f_skip != expected_flops(&a, -1, 0) || fabs((f_all - f_skip) - dropped) > 1e-9 * f_all) {
        fprintf(stderr, "  active FLOPs: %.0f all on, %.0f with block 1's attention skipped, its nodes' %.0f\n", f_all,
                f_skip, dropped);
        fg_test_failures++;
    }
    net_free(&a);

    net_segformer(&a);
    net_init(&a, 43);
    const char *sr = "segformer.encoder.block.0.0.attention.self.sr";
    const int si = fg_graph_find_node(a.g, sr);
    const fg_id w = fg_graph_find(a.g, "segformer.encoder.block.0.0.attention.self.sr.weight");
    CHECK(si >= 0 && w != FG_NONE);
    if (si >= 0 && w != FG_NONE) {
        const fg_tensor *wt = fg_graph_tensor(a.g, w);
        const double kk = (double)(wt->shape[2] * wt->shape[3]);
        CHECK(kk == 64.0);
        memset(&k, 0, sizeof k);
        double f0 = 0, f1 = 0;
        CHECK_OK(fg_vit_skip_flops(a.g, &k, &f0));
        k.sr_pool[0] = 1;
        CHECK_OK(fg_vit_skip_flops(a.g, &k, &f1));
        const double want = expected_flops(&a, si, kk);
        if (f1 != want || !(f1 < f0)) {
            fprintf(stderr, "  segformer sr pooled: active FLOPs %.0f, expected %.0f (all on %.0f)\n", f1, want, f0);
            fg_test_failures++;
        }
    }
    net_free(&a);
}

/* Mutation-review additions. Validation happens before anything is applied: a knob the model does
 * not have (sr pooling on a stage-3 SegFormer block, sr 1; a depthwise conv on a ViT) is refused
 * and leaves the previous configuration (its active FLOPs) in place; a knob on a block beyond the
 * model's depth is refused, not ignored; keeping all H heads is accepted and costs the all-on
 * FLOPs; a graph of more than FG_VIT_MAX_BLOCKS blocks is refused. */
static void test_validation(void) {
    net a;
    net_segformer(&a);
    net_init(&a, 51);
    fg_vit_skip k;
    memset(&k, 0, sizeof k);
    k.attn[0] = 1;
    double f0 = 0, f1 = 0;
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f0));
    CHECK(f0 > 0 && fg_graph_active_flops(a.g) == f0);
    k.sr_pool[6] = 1; /* block 6 = stage 3 block 0: sr 1, no spatial-reduction conv */
    CHECK(fg_graph_find_node(a.g, "segformer.encoder.block.3.0.attention.self.sr") < 0);
    CHECK_STATUS(fg_vit_skip_apply(a.g, &k), FG_ERR_INVALID);
    CHECK(fg_graph_active_flops(a.g) == f0);
    /* with knobs of earlier blocks that differ from the applied configuration: none is applied */
    k.mlp[0] = k.mlp[1] = 1;
    CHECK_STATUS(fg_vit_skip_apply(a.g, &k), FG_ERR_INVALID);
    CHECK(fg_graph_active_flops(a.g) == f0);
    /* a block beyond the SegFormer's 8 */
    memset(&k, 0, sizeof k);
    k.attn[0] = 1;
    k.mlp[8] = 1;
    CHECK_STATUS(fg_vit_skip_apply(a.g, &k), FG_ERR_INVALID);
    CHECK(fg_graph_active_flops(a.g) == f0);
    net_free(&a);

    net_vit(&a, 0);
    net_init(&a, 53);
    memset(&k, 0, sizeof k);
    double fall = 0;
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &fall));
    /* all 4 heads of vit-tiny-28 kept: allowed, the all-on cost */
    k.heads[0] = 4;
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f1));
    CHECK(f1 == fall);
    k.heads[0] = 5;
    CHECK_STATUS(fg_vit_skip_apply(a.g, &k), FG_ERR_INVALID);
    memset(&k, 0, sizeof k);
    k.attn[0] = 1;
    CHECK_OK(fg_vit_skip_flops(a.g, &k, &f0));
    CHECK(f0 < fall);
    k.dwconv[0] = 1; /* a ViT has no depthwise conv */
    CHECK_STATUS(fg_vit_skip_apply(a.g, &k), FG_ERR_INVALID);
    CHECK(fg_graph_active_flops(a.g) == f0);
    k.dwconv[0] = 0;
    k.mlp[0] = k.mlp[1] = 1;
    k.dwconv[2] = 1;
    CHECK_STATUS(fg_vit_skip_apply(a.g, &k), FG_ERR_INVALID);
    CHECK(fg_graph_active_flops(a.g) == f0);
    /* heads kept on block 7 of a 4-block model: refused, not ignored */
    memset(&k, 0, sizeof k);
    k.attn[0] = 1;
    k.heads[7] = 2;
    CHECK_STATUS(fg_vit_skip_apply(a.g, &k), FG_ERR_INVALID);
    CHECK(fg_graph_active_flops(a.g) == f0);
    net_free(&a);

    /* 65 blocks: more than a skip configuration can name */
    fg_vit_cfg c;
    CHECK_OK(fg_vit_config("vit-tiny-28", 2, &c));
    c.dim = 8, c.heads = 1, c.mlp_dim = 8, c.depth = FG_VIT_MAX_BLOCKS + 1;
    fg_graph *g = NULL;
    CHECK_OK(fg_graph_create(&g, "deep"));
    fg_vit_io io;
    CHECK_OK(fg_vit_build(g, &c, 1, 1, 28, 28, 0, &io));
    int64_t nb = -1;
    int seg = -1;
    CHECK_STATUS(fg_vit_skip_blocks(g, &nb, &seg), FG_ERR_INVALID);
    memset(&k, 0, sizeof k);
    CHECK_STATUS(fg_vit_skip_apply(g, &k), FG_ERR_INVALID);
    fg_graph_free(g);
    /* 64 blocks: accepted */
    c.depth = FG_VIT_MAX_BLOCKS;
    CHECK_OK(fg_graph_create(&g, "deep64"));
    CHECK_OK(fg_vit_build(g, &c, 1, 1, 28, 28, 0, &io));
    CHECK_OK(fg_vit_skip_blocks(g, &nb, &seg));
    CHECK(nb == FG_VIT_MAX_BLOCKS && seg == 0);
    fg_graph_free(g);
}

int main(void) {
    fg_threads_set(2);
    test_vit();
    test_segformer();
    test_heads_pool();
    test_narrow();
    test_governor();
    test_active_flops();
    test_validation();
    return fg_test_finish("test_vit_skip");
}
