/* Graph tests: gradients of a whole DAG (branches, concat, a tensor read by three consumers,
 * views) against finite differences; the two built-in memory policies give bit-identical losses
 * and gradients and free-when-dead uses less memory; liveness of a chain; shape errors name the
 * op and both shapes; the device pool's best fit, coalescing, zeroing and OOM message; misuse of
 * the API (wrong dtypes, sizes that overflow, calls out of order, a failed build) refused with an
 * error; free-when-dead's peak equals the one its liveness gives; each optimizer's update against
 * PyTorch's rule; backward after a bypass is turned off; a conv's algorithm changed after build
 * under the network-wide policy; batch norm's running statistics through a checkpoint. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

typedef struct net {
    fg_graph *g;
    fg_pool *pool;
    fg_id x, y, loss;
} net;

/* x (2,3,8,8) -> conv3x3 -> bn -> relu = a; a feeds three consumers:
 *   b1 = conv1x1(a) (2 ch); b2 = conv1x1(maxpool3s1p1(a)) (3 ch); b3 = conv1x1(a) (5 ch)
 * c = concat(b1, b2) + b3 -> lrn -> tanh -> avgpool 2 -> flatten (view) -> linear 16 -> gelu
 * -> dropout 0.25 -> linear 4 -> sigmoid -> linear 5 -> xent */
static void build_net(net *n, int policy_kind, uint64_t seed) {
    CHECK_OK(fg_pool_create(&n->pool, 0));
    CHECK_OK(fg_graph_create(&n->g, "dag"));
    fg_graph *g = n->g;
    int64_t xs[4] = {2, 3, 8, 8}, ys[1] = {2};
    n->x = fg_nn_input(g, "x", FG_F32, 4, xs);
    n->y = fg_nn_input(g, "y", FG_I32, 1, ys);
    fg_id a = fg_layer_conv2d(g, "c0", n->x, 4, 3, 1, 1, 1);
    a = fg_nn_batchnorm(g, "bn0", a, 0.1f, 1e-5f);
    a = fg_nn_relu(g, "r0", a);
    fg_id b1 = fg_layer_conv2d(g, "b1", a, 2, 1, 1, 0, 1);
    fg_pool_opts po = {3, 1, 1, 0, 1};
    fg_id b2 = fg_layer_conv2d(g, "b2", fg_nn_maxpool2d(g, "mp", a, po), 3, 1, 1, 0, 0);
    fg_id b3 = fg_layer_conv2d(g, "b3", a, 5, 1, 1, 0, 1);
    fg_id cat[2] = {b1, b2};
    fg_id c = fg_nn_add(g, "sum", fg_nn_concat(g, "cat", cat, 2, 1), b3);
    c = fg_nn_lrn(g, "lrn", c, 3, 0.1f, 0.75f, 2.0f);
    c = fg_nn_tanh(g, "th", c);
    fg_pool_opts ap = {2, 2, 0, 0, 1};
    c = fg_nn_avgpool2d(g, "ap", c, ap);
    c = fg_nn_flatten(g, "flat", c);
    c = fg_nn_gelu(g, "ge", fg_layer_linear(g, "fc1", c, 16, 1));
    c = fg_nn_dropout(g, "drop", c, 0.25f);
    c = fg_nn_sigmoid(g, "sg", fg_layer_linear(g, "fc2", c, 4, 1));
    c = fg_layer_linear(g, "fc3", c, 5, 1);
    n->loss = fg_nn_xent(g, "loss", c, n->y);
    CHECK_OK(fg_graph_status(g));
    fg_mem_policy p;
    if (policy_kind == 0) CHECK_OK(fg_policy_network_wide(&p));
    else CHECK_OK(fg_policy_free_when_dead(&p));
    CHECK_OK(fg_graph_build(g, n->loss, n->pool, &p));
    fg_rng r;
    fg_rng_seed(&r, seed);
    fg_graph_init_params(g, &r);
    float xd[2 * 3 * 8 * 8];
    fg_fill_uniform(xd, sizeof xd / sizeof *xd, -1, 1, &r);
    int32_t yd[2] = {1, 3};
    CHECK_OK(fg_graph_set_input(g, n->x, xd, sizeof xd));
    CHECK_OK(fg_graph_set_input(g, n->y, yd, sizeof yd));
    fg_graph_set_seed(g, 42);
}

static void free_net(net *n) {
    fg_graph_free(n->g);
    fg_pool_destroy(n->pool);
}

static double loss_of(void *user) {
    net *n = user;
    CHECK_OK(fg_graph_forward(n->g));
    return fg_graph_loss(n->g);
}

static void test_dag_gradients(void) {
    net n;
    build_net(&n, 0, 7);
    fg_graph_zero_grad(n.g);
    CHECK_OK(fg_graph_forward(n.g));
    CHECK_OK(fg_graph_backward(n.g));
    float l0 = fg_graph_loss(n.g);
    CHECK(isfinite(l0) && l0 > 0);
    fg_rng r;
    fg_rng_seed(&r, 1);
    for (int i = 0; i < fg_graph_n_params(n.g); i++) {
        fg_id p = fg_graph_param(n.g, i);
        const fg_tinfo *ti = fg_graph_tinfo(n.g, p);
        fg_tensor *t = fg_graph_tensor(n.g, p);
        size_t numel = (size_t)fg_tensor_numel(t);
        float *grad = malloc(numel * sizeof(float));
        memcpy(grad, fg_graph_tensor(n.g, ti->grad)->data, numel * sizeof(float));
        /* eps 1e-2 in f32: central differences stay accurate to ~1e-4 for these smooth ops
         * (relu/maxpool kinks are unlikely at random points) */
        fg_check_grad(t->name, t->data, grad, numel, loss_of, &n, 12, 1e-2f, 5e-2f, 2e-4f, &r);
        free(grad);
    }
    free_net(&n);
}

/* A parameter fed as data to ops that write their input gradients (a position embedding added
 * twice, then multiplied): its gradient is the sum over its uses, against finite differences. */
typedef struct pe_net {
    fg_graph *g;
    fg_pool *pool;
} pe_net;

static double pe_loss(void *user) {
    pe_net *n = user;
    CHECK_OK(fg_graph_forward(n->g));
    return fg_graph_loss(n->g);
}

static void test_param_as_data(void) {
    pe_net n;
    CHECK_OK(fg_pool_create(&n.pool, 0));
    CHECK_OK(fg_graph_create(&n.g, "posemb"));
    fg_graph *g = n.g;
    int64_t xs[2] = {3, 4}, ws[2] = {4, 4}, ls[2] = {4, 4}, ys[1] = {4};
    fg_id x = fg_nn_input(g, "x", FG_F32, 2, xs), y = fg_nn_input(g, "y", FG_I32, 1, ys);
    fg_id pe = fg_nn_param(g, "pos", 2, xs, FG_INIT_NORMAL, 0.5f);
    fg_id w = fg_nn_param(g, "w", 2, ws, FG_INIT_NORMAL, 0.5f);
    fg_id h = fg_nn_add(g, "add1", x, pe);
    h = fg_nn_add(g, "add2", fg_nn_tanh(g, "t", h), pe);
    h = fg_nn_matmul(g, "mm", h, w, 0, 1);
    h = fg_nn_matmul(g, "mm2", pe, h, 1, 0); /* pe as the first operand: (4,3)x(3,4) */
    fg_id l = fg_nn_xent(g, "loss", fg_nn_reshape(g, "r", h, 2, ls), y);
    CHECK_OK(fg_graph_status(g));
    fg_mem_policy p;
    CHECK_OK(fg_policy_free_when_dead(&p));
    CHECK_OK(fg_graph_build(g, l, n.pool, &p));
    fg_rng r;
    fg_rng_seed(&r, 5);
    fg_graph_init_params(g, &r);
    float xd[12];
    fg_fill_uniform(xd, 12, -1, 1, &r);
    int32_t yd[4] = {3, 0, 2, 1};
    CHECK_OK(fg_graph_set_input(g, x, xd, sizeof xd));
    CHECK_OK(fg_graph_set_input(g, y, yd, sizeof yd));
    fg_graph_zero_grad(g);
    CHECK_OK(fg_graph_forward(g));
    CHECK_OK(fg_graph_backward(g));
    const fg_id ps[2] = {pe, w};
    for (int i = 0; i < 2; i++) {
        fg_tensor *t = fg_graph_tensor(g, ps[i]);
        float grad[16];
        memcpy(grad, fg_graph_tensor(g, fg_graph_tinfo(g, ps[i])->grad)->data, (size_t)fg_tensor_numel(t) * sizeof(float));
        fg_check_grad(t->name, t->data, grad, (size_t)fg_tensor_numel(t), pe_loss, &n, 16, 1e-2f, 2e-2f, 2e-4f, &r);
    }
    fg_graph_free(g);
    fg_pool_destroy(n.pool);
}

static void test_policies_identical(void) {
    net a, b;
    build_net(&a, 0, 11);
    build_net(&b, 1, 11);
    for (int it = 0; it < 2; it++) {
        fg_graph_zero_grad(a.g);
        fg_graph_zero_grad(b.g);
        CHECK_OK(fg_graph_forward(a.g));
        CHECK_OK(fg_graph_backward(a.g));
        CHECK_OK(fg_graph_forward(b.g));
        CHECK_OK(fg_graph_backward(b.g));
        float la = fg_graph_loss(a.g), lb = fg_graph_loss(b.g);
        fg_check_equal("loss", &lb, &la, 1);
        for (int i = 0; i < fg_graph_n_params(a.g); i++) {
            fg_id pa = fg_graph_param(a.g, i), pb = fg_graph_param(b.g, i);
            const fg_tensor *ga = fg_graph_tensor(a.g, fg_graph_tinfo(a.g, pa)->grad);
            const fg_tensor *gb = fg_graph_tensor(b.g, fg_graph_tinfo(b.g, pb)->grad);
            fg_check_equal(ga->name, gb->data, ga->data, (size_t)fg_tensor_numel(ga));
        }
    }
    fg_pool_stats sa = fg_pool_get_stats(a.pool), sb = fg_pool_get_stats(b.pool);
    if (!(sb.peak < sa.peak)) {
        fprintf(stderr, "  free-when-dead peak %zu not below network-wide peak %zu\n", sb.peak, sa.peak);
        fg_test_failures++;
    }
    free_net(&a);
    free_net(&b);
}

static void test_liveness_chain(void) {
    fg_graph *g;
    fg_pool *pool;
    CHECK_OK(fg_pool_create(&pool, 0));
    CHECK_OK(fg_graph_create(&g, "chain"));
    int64_t xs[2] = {4, 6}, ys[1] = {4};
    fg_id x = fg_nn_input(g, "x", FG_F32, 2, xs), y = fg_nn_input(g, "y", FG_I32, 1, ys);
    fg_id h = fg_layer_linear(g, "fc1", x, 8, 1); /* node 0 */
    fg_id r = fg_nn_relu(g, "relu", h);           /* node 1 */
    fg_id o = fg_layer_linear(g, "fc2", r, 3, 1); /* node 2 */
    fg_id l = fg_nn_xent(g, "loss", o, y);        /* node 3 */
    fg_mem_policy p;
    CHECK_OK(fg_policy_free_when_dead(&p));
    CHECK_OK(fg_graph_build(g, l, pool, &p));
    /* 4 nodes: forward steps 0..3, backward of node i at 7-i */
    const fg_tinfo *th = fg_graph_tinfo(g, h), *tr = fg_graph_tinfo(g, r), *to = fg_graph_tinfo(g, o);
    CHECK(th->first_use == 0 && th->last_use == 1); /* relu saves neither its input nor its output */
    CHECK(tr->first_use == 1 && tr->last_use == 5); /* saved by fc2 (backward step 5) */
    const fg_ninfo *rn = fg_graph_node(g, 1);        /* relu's backward reads its 1-bit mask (step 6) */
    CHECK(rn->n_aux == 1 && rn->n_save == 1 && rn->save[0] == rn->aux[0]);
    const fg_tinfo *tm = fg_graph_tinfo(g, rn->aux[0]);
    CHECK(tm->t.dtype == FG_U8 && tm->bytes == 4 && tm->first_use == 1 && tm->last_use == 6);
    CHECK(to->first_use == 2 && to->last_use == 3);
    /* relu's backward writes grad(h) in place over grad(r): one storage, live from fc2's backward
     * (step 5, writes grad(r)) to fc1's (step 7, reads grad(h)) */
    const fg_tinfo *gr = fg_graph_tinfo(g, tr->grad), *gh = fg_graph_tinfo(g, th->grad);
    CHECK(gh->alias_of == tr->grad && gr->alias_of == tr->grad);
    CHECK(gr->first_use == 5 && gr->last_use == 7);
    FILE *devnull = fopen("/dev/null", "w");
    fg_graph_print_liveness(g, devnull);
    fclose(devnull);
    fg_graph_free(g);
    fg_pool_destroy(pool);
}

static void test_shape_errors(void) {
    fg_graph *g;
    CHECK_OK(fg_graph_create(&g, "bad"));
    int64_t xs[4] = {2, 3, 8, 8}, ws[4] = {4, 5, 3, 3};
    fg_id x = fg_nn_input(g, "x", FG_F32, 4, xs);
    fg_id w = fg_nn_param(g, "w", 4, ws, FG_INIT_ZEROS, 0);
    fg_conv_opts o = {1, 1, 1, 1};
    fg_id y = fg_nn_conv2d(g, "convX", x, w, FG_NONE, o);
    CHECK(y == FG_NONE);
    CHECK(fg_graph_status(g) == FG_ERR_SHAPE);
    const char *e = fg_graph_error(g);
    CHECK(strstr(e, "conv2d") && strstr(e, "convX") && strstr(e, "[2, 3, 8, 8]") && strstr(e, "[4, 5, 3, 3]"));
    /* later calls keep the first error */
    CHECK(fg_nn_relu(g, "r", y) == FG_NONE);
    CHECK(strstr(fg_graph_error(g), "convX") != NULL);
    fg_graph_free(g);
}

static void test_pool(void) {
    fg_pool *p;
    CHECK_OK(fg_pool_create(&p, 1000));
    void *a, *b, *c, *d;
    CHECK_OK(fg_pool_alloc(p, 100, "a", &a)); /* 128 */
    CHECK_OK(fg_pool_alloc(p, 200, "b", &b)); /* 256 */
    CHECK_OK(fg_pool_alloc(p, 100, "c", &c)); /* 128 */
    CHECK(((uintptr_t)a % 64) == 0 && ((uintptr_t)b % 64) == 0);
    fg_pool_stats s = fg_pool_get_stats(p);
    CHECK(s.in_use == 512 && s.peak == 512);
    fg_pool_free(p, b);
    /* best fit: 100 bytes go into the 256 hole, not the tail */
    CHECK_OK(fg_pool_alloc(p, 100, "d", &d));
    CHECK(d == b);
    fg_pool_free(p, d);
    fg_pool_free(p, a);
    /* coalescing: a(128) + hole(256) merge into one 384 block at a */
    void *e;
    CHECK_OK(fg_pool_alloc(p, 384, "e", &e));
    CHECK(e == a);
    /* capacity: 1000 - 512 in use */
    void *f;
    CHECK_STATUS(fg_pool_alloc(p, 600, "big_tensor", &f), FG_ERR_OOM);
    CHECK(strstr(fg_last_error(), "big_tensor") && strstr(fg_last_error(), "640") && strstr(fg_last_error(), "488"));
    fg_pool_free(p, e);
    fg_pool_free(p, c);
    s = fg_pool_get_stats(p);
    CHECK(s.in_use == 0 && s.n_blocks == 0 && s.largest_free >= 1000 && s.top == 0);
    fg_pool_destroy(p);
}

/* fg_pool_alloc_at: exact placement in the middle of a free block, refusals, and coalescing of
 * the pieces it split off. */
static void test_pool_alloc_at(void) {
    fg_pool *p;
    CHECK_OK(fg_pool_create(&p, 1024));
    void *a, *b, *c, *x;
    CHECK_OK(fg_pool_alloc_at(p, 256, 100, "a", &a)); /* [256, 384) */
    fg_pool_stats s = fg_pool_get_stats(p);
    CHECK(s.in_use == 128 && s.top == 384 && s.largest_free == 1024 - 384);
    CHECK_OK(fg_pool_alloc_at(p, 0, 256, "b", &b)); /* exactly the hole on the left */
    CHECK((unsigned char *)a - (unsigned char *)b == 256);
    /* overlapping a live block, and past the capacity */
    CHECK_STATUS(fg_pool_alloc_at(p, 320, 64, "overlap", &x), FG_ERR_OOM);
    CHECK(strstr(fg_last_error(), "overlap") && strstr(fg_last_error(), "in use"));
    CHECK_STATUS(fg_pool_alloc_at(p, 960, 128, "tail", &x), FG_ERR_OOM);
    CHECK(strstr(fg_last_error(), "tail") && strstr(fg_last_error(), "1024"));
    /* best-fit still works around placed blocks: 640 bytes only fit at 384 */
    CHECK_OK(fg_pool_alloc(p, 640, "c", &c));
    CHECK((unsigned char *)c - (unsigned char *)b == 384);
    fg_pool_free(p, a);
    fg_pool_free(p, b);
    s = fg_pool_get_stats(p);
    CHECK(s.largest_free == 384 && s.top == 1024); /* a's block merged with b's */
    fg_pool_free(p, c);
    s = fg_pool_get_stats(p);
    CHECK(s.in_use == 0 && s.n_blocks == 0 && s.largest_free == 1024);
    fg_pool_destroy(p);
}

/* x (4, 6) -> linear 3 -> xent on labels y; built with free-when-dead (policy 1) or network-wide. */
static fg_status small_net(net *n, int policy_kind, size_t pool_bytes) {
    CHECK_OK(fg_pool_create(&n->pool, pool_bytes));
    CHECK_OK(fg_graph_create(&n->g, "small"));
    int64_t xs[2] = {4, 6}, ys[1] = {4};
    n->x = fg_nn_input(n->g, "x", FG_F32, 2, xs);
    n->y = fg_nn_input(n->g, "y", FG_I32, 1, ys);
    n->loss = fg_nn_xent(n->g, "loss", fg_layer_linear(n->g, "fc", n->x, 3, 1), n->y);
    fg_mem_policy p;
    if (policy_kind == 0) CHECK_OK(fg_policy_network_wide(&p));
    else CHECK_OK(fg_policy_free_when_dead(&p));
    return fg_graph_build(n->g, n->loss, n->pool, &p);
}

/* Each builder given the wrong dtype, a size that overflows, a missing name, or a built graph:
 * a sticky error that names the op, never a node that reads past its input. */
static void test_builder_misuse(void) {
    struct {
        const char *what, *want;
        int kind;
    } cases[] = {
        {"linear on u8", "expected f32", 0},     {"add of i32", "expected f32", 1},
        {"conv2d on i32", "expected f32", 2},    {"input 2^32 x 2^32 x 4", "too large", 3},
        {"slice start INT64_MAX", "out of range", 4}, {"repeat 2^62", "too large", 5},
        {"reshape to negative dims", "each >= 1", 6}, {"param without a name", "name is required", 7},
        {"input after build", "already built", 8}, {"batchnorm eps 0", "eps", 9},
        {"concat of (2,3,4,4) and (2,3,5,4) on axis 1", "does not match", 10},
        {"reshape of 12 elements to 10", "cannot view", 11},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fg_graph *g;
        CHECK_OK(fg_graph_create(&g, "misuse"));
        int64_t s2[2] = {2, 4}, s4[4] = {1, 2, 4, 4}, w2[2] = {3, 4};
        switch (cases[c].kind) {
        case 0: fg_nn_linear(g, "fc", fg_nn_input(g, "x", FG_U8, 2, s2), fg_nn_param(g, "w", 2, w2, FG_INIT_ONES, 0), FG_NONE); break;
        case 1: fg_nn_add(g, "sum", fg_nn_input(g, "a", FG_I32, 2, s2), fg_nn_input(g, "b", FG_I32, 2, s2)); break;
        case 2: fg_layer_conv2d(g, "conv", fg_nn_input(g, "x", FG_I32, 4, s4), 2, 3, 1, 1, 0); break;
        case 3: {
            int64_t big[3] = {(int64_t)1 << 32, (int64_t)1 << 32, 4};
            fg_nn_input(g, "x", FG_F32, 3, big);
            break;
        }
        case 4: fg_nn_slice(g, "sl", fg_nn_input(g, "x", FG_F32, 2, s2), 1, INT64_MAX, 2); break;
        case 5: fg_nn_repeat(g, "rep", fg_nn_input(g, "x", FG_F32, 2, s2), (int64_t)1 << 62); break;
        case 6: {
            int64_t neg[2] = {-2, -4};
            fg_nn_reshape(g, "r", fg_nn_input(g, "x", FG_F32, 2, s2), 2, neg);
            break;
        }
        case 7: fg_nn_param(g, NULL, 2, w2, FG_INIT_ONES, 0); break;
        case 8: {
            fg_pool *pool;
            CHECK_OK(fg_pool_create(&pool, 0));
            fg_id x = fg_nn_input(g, "x", FG_F32, 2, s2);
            fg_graph_mark_output(g, fg_nn_relu(g, "r", x));
            fg_mem_policy p;
            CHECK_OK(fg_policy_network_wide(&p));
            CHECK_OK(fg_graph_build(g, FG_NONE, pool, &p));
            CHECK(fg_nn_input(g, "late", FG_F32, 2, s2) == FG_NONE);
            CHECK(fg_nn_param(g, "late_p", 2, w2, FG_INIT_ONES, 0) == FG_NONE);
            fg_graph_free(g);
            g = NULL;
            fg_pool_destroy(pool);
            break;
        }
        case 9: fg_nn_batchnorm(g, "bn", fg_nn_input(g, "x", FG_F32, 4, s4), 0.1f, 0.0f); break;
        case 10: {
            int64_t sa[4] = {2, 3, 4, 4}, sb[4] = {2, 3, 5, 4};
            fg_id xs[2] = {fg_nn_input(g, "a", FG_F32, 4, sa), fg_nn_input(g, "b", FG_F32, 4, sb)};
            fg_nn_concat(g, "cat", xs, 2, 1);
            break;
        }
        case 11: {
            int64_t s12[2] = {2, 6}, s10[2] = {2, 5};
            fg_nn_reshape(g, "r", fg_nn_input(g, "x", FG_F32, 2, s12), 2, s10);
            break;
        }
        }
        if (!g) continue; /* case 8 checked its own */
        if (fg_graph_status(g) == FG_OK || !strstr(fg_graph_error(g), cases[c].want)) {
            fprintf(stderr, "builder misuse '%s': status %s, error '%s' (expected one with '%s')\n", cases[c].what,
                    fg_status_name(fg_graph_status(g)), fg_graph_error(g), cases[c].want);
            fg_test_failures++;
        }
        CHECK(fg_graph_find(g, NULL) == FG_NONE);
        fg_graph_free(g);
    }
}

/* Sum of squares of every parameter gradient; *n the gradients summed, *last the last one's sum. */
static double grad_sumsq(fg_graph *g, int *n, double *last) {
    double ss = 0.0;
    *n = 0;
    for (int i = 0; i < fg_graph_n_params(g); i++) {
        const fg_tinfo *ti = fg_graph_tinfo(g, fg_graph_param(g, i));
        if (ti->grad == FG_NONE) continue;
        const fg_tensor *t = fg_graph_tensor(g, ti->grad);
        const float *d = t->data;
        double s1 = 0.0;
        for (int64_t j = 0; j < fg_tensor_numel(t); j++) s1 += (double)d[j] * d[j];
        ss += s1;
        *last = s1;
        (*n)++;
    }
    return ss;
}

/* Evaluation mode and gradient clipping on the DAG net (dropout 0.25 before its last linears):
 *  - with training off, dropout passes its input through: two forwards under different dropout
 *    seeds give the same loss bit for bit (with training on they differ), and training is on
 *    again when set so;
 *  - fg_graph_clip_grad_norm returns the norm of all parameter gradients and scales every one of
 *    them, the last included, to max_norm. */
static void test_eval_and_clip(void) {
    net n;
    build_net(&n, 0, 23);
    fg_graph *g = n.g;
    float loss[4];
    for (int k = 0; k < 4; k++) {
        fg_graph_set_training(g, k >= 2);
        fg_graph_set_seed(g, 100 + (uint64_t)(k % 2));
        CHECK_OK(fg_graph_forward(g));
        loss[k] = fg_graph_loss(g);
    }
    CHECK(loss[0] == loss[1]);        /* eval: no dropout, whatever the seed */
    CHECK(loss[2] != loss[3]);        /* training: the seed draws another mask */
    CHECK(fg_graph_training(g) == 1);
    /* clipping: the norm by hand, before and after */
    fg_graph_zero_grad(g);
    CHECK_OK(fg_graph_forward(g));
    CHECK_OK(fg_graph_backward(g));
    int with_grad = 0;
    double last = 0.0;
    const double norm = sqrt(grad_sumsq(g, &with_grad, &last));
    CHECK(with_grad > 2 && norm > 0);
    const double got = fg_graph_clip_grad_norm(g, 0.5 * norm);
    const double after = grad_sumsq(g, &with_grad, &last);
    if (fabs(got - norm) > 1e-6 * norm || fabs(sqrt(after) - 0.5 * norm) > 1e-5 * norm || !(last > 0)) {
        fprintf(stderr, "  clip_grad_norm to half of %.9g: returned %.9g, norm after %.9g\n", norm, got, sqrt(after));
        fg_test_failures++;
    }
    free_net(&n);
}

/* The run's order: backward needs a finished forward it has not used yet; a loss with no
 * parameter behind it is refused at build; a failed build sticks; save and load need a build. */
static void test_call_order(void) {
    for (int pk = 0; pk < 2; pk++) {
        net n;
        CHECK_OK(small_net(&n, pk, 0));
        fg_rng r;
        fg_rng_seed(&r, 5);
        fg_graph_init_params(n.g, &r);
        float x[24];
        fg_fill_uniform(x, 24, -1, 1, &r);
        int32_t y[4] = {0, 1, 2, 1}, bad[4] = {0, 1, 7, 1};
        CHECK_OK(fg_graph_set_input(n.g, n.x, x, sizeof x));
        CHECK_OK(fg_graph_set_input(n.g, n.y, y, sizeof y));
        CHECK_STATUS(fg_graph_backward(n.g), FG_ERR_INVALID); /* no forward yet */
        CHECK(strstr(fg_last_error(), "no finished forward") != NULL);
        CHECK_OK(fg_graph_forward(n.g));
        CHECK_OK(fg_graph_backward(n.g));
        CHECK_STATUS(fg_graph_backward(n.g), FG_ERR_INVALID); /* that forward is used */
        CHECK_OK(fg_graph_set_input(n.g, n.y, bad, sizeof bad));
        CHECK(fg_graph_forward(n.g) != FG_OK); /* a label out of range */
        CHECK_STATUS(fg_graph_backward(n.g), FG_ERR_INVALID);
        CHECK_OK(fg_graph_set_input(n.g, n.y, y, sizeof y));
        CHECK_OK(fg_graph_forward(n.g));
        CHECK_OK(fg_graph_backward(n.g));
        /* an optimizer's settings are checked */
        fg_optim *o = NULL;
        fg_optim_cfg oc = fg_optim_defaults(FG_OPTIM_ADAM, 1e-3f);
        oc.beta1 = 1.0f;
        CHECK_STATUS(fg_optim_create(&o, n.g, &oc), FG_ERR_INVALID);
        oc = fg_optim_defaults(FG_OPTIM_RMSPROP, 1e-3f);
        oc.alpha = 2.0f;
        CHECK_STATUS(fg_optim_create(&o, n.g, &oc), FG_ERR_INVALID);
        oc = fg_optim_defaults(FG_OPTIM_SGD, NAN);
        CHECK_STATUS(fg_optim_create(&o, n.g, &oc), FG_ERR_INVALID);
        free_net(&n);
    }

    /* a loss that depends on no parameter */
    fg_graph *g;
    fg_pool *pool;
    CHECK_OK(fg_pool_create(&pool, 0));
    CHECK_OK(fg_graph_create(&g, "noparam"));
    int64_t ls[2] = {4, 3}, ys[1] = {4};
    fg_id loss = fg_nn_xent(g, "loss", fg_nn_input(g, "logits", FG_F32, 2, ls), fg_nn_input(g, "y", FG_I32, 1, ys));
    fg_mem_policy p;
    CHECK_OK(fg_policy_free_when_dead(&p));
    CHECK_STATUS(fg_graph_build(g, loss, pool, &p), FG_ERR_INVALID);
    CHECK(strstr(fg_last_error(), "depends on no parameter") != NULL);
    fg_graph_free(g);
    /* an optimizer for an inference graph */
    CHECK_OK(fg_graph_create(&g, "infer"));
    int64_t xs[2] = {4, 6};
    fg_id out = fg_layer_linear(g, "fc", fg_nn_input(g, "x", FG_F32, 2, xs), 3, 1);
    fg_graph_mark_output(g, out);
    CHECK_OK(fg_policy_network_wide(&p));
    CHECK_STATUS(fg_graph_build(g, FG_NONE, NULL, &p), FG_ERR_INVALID); /* no pool */
    CHECK(strstr(fg_last_error(), "pool") != NULL);
    fg_graph_free(g);
    CHECK_OK(fg_graph_create(&g, "infer"));
    out = fg_layer_linear(g, "fc", fg_nn_input(g, "x", FG_F32, 2, xs), 3, 1);
    fg_graph_mark_output(g, out);
    char path[64];
    snprintf(path, sizeof path, "/tmp/fg_test_graph_%d.safetensors", (int)getpid());
    CHECK_STATUS(fg_graph_save(g, NULL, path, 0, NULL, NULL), FG_ERR_INVALID); /* not built */
    CHECK(access(path, F_OK) != 0);
    CHECK_OK(fg_policy_network_wide(&p));
    CHECK_OK(fg_graph_build(g, FG_NONE, pool, &p));
    fg_optim *o = NULL;
    fg_optim_cfg oc = fg_optim_defaults(FG_OPTIM_SGD, 0.1f);
    CHECK_STATUS(fg_optim_create(&o, g, &oc), FG_ERR_INVALID);
    const char *mk[1] = {"format"}, *mv[1] = {"mine"};
    CHECK_STATUS(fg_graph_save(g, NULL, path, 1, mk, mv), FG_ERR_INVALID); /* the library's own key */
    CHECK(strstr(fg_last_error(), "reserved") && access(path, F_OK) != 0);
    CHECK_OK(fg_graph_save(g, NULL, path, 0, NULL, NULL));
    fg_graph *u;
    CHECK_OK(fg_graph_create(&u, "unbuilt"));
    fg_layer_linear(u, "fc", fg_nn_input(u, "x", FG_F32, 2, xs), 3, 1);
    CHECK_STATUS(fg_graph_load(u, NULL, path), FG_ERR_INVALID);
    CHECK(strstr(fg_last_error(), "not built") != NULL);
    fg_graph_free(u);
    unlink(path);
    fg_graph_free(g);
    fg_pool_destroy(pool);

    /* one policy value given to two graphs: the second build is refused naming the first, which
     * keeps it (planned for both and destroyed twice before) */
    for (int pk = 0; pk < 2; pk++) {
        fg_graph *g1, *g2;
        fg_pool *p1;
        CHECK_OK(fg_pool_create(&p1, 0));
        fg_mem_policy shared;
        if (pk == 0) CHECK_OK(fg_policy_free_when_dead(&shared));
        else {
            fg_vmem_config vc = fg_vmem_config_defaults(FG_VMEM_ALL);
            CHECK_OK(fg_vmem_policy_create(&shared, &vc));
        }
        for (int k = 0; k < 2; k++) {
            fg_graph **gk = k ? &g2 : &g1;
            CHECK_OK(fg_graph_create(gk, k ? "second" : "first"));
            fg_id y = fg_layer_linear(*gk, "fc", fg_nn_input(*gk, "x", FG_F32, 2, xs), 3, 1);
            fg_graph_mark_output(*gk, y);
        }
        CHECK_OK(fg_graph_build(g1, FG_NONE, p1, &shared));
        CHECK_STATUS(fg_graph_build(g2, FG_NONE, p1, &shared), FG_ERR_INVALID);
        CHECK(strstr(fg_last_error(), "already built into graph 'first'") != NULL);
        fg_graph_free(g2); /* owns nothing */
        float xin[24] = {0};
        CHECK_OK(fg_graph_set_input(g1, fg_graph_find(g1, "x"), xin, sizeof xin));
        CHECK_OK(fg_graph_forward(g1));
        fg_graph_free(g1);
        fg_pool_destroy(p1);
    }

    /* a build that fails (a pool too small for the parameters' gradients): the graph keeps the
     * error; forward says why it is not built; a second build is refused and its policy stays
     * the caller's */
    net n;
    CHECK(small_net(&n, 1, 256) == FG_ERR_OOM);
    CHECK(fg_graph_status(n.g) == FG_ERR_OOM && strstr(fg_graph_error(n.g), "build failed"));
    CHECK_STATUS(fg_graph_forward(n.g), FG_ERR_INVALID);
    CHECK(strstr(fg_last_error(), "not built") && strstr(fg_last_error(), "device pool"));
    CHECK_STATUS(fg_graph_backward(n.g), FG_ERR_INVALID);
    CHECK_OK(fg_policy_network_wide(&p));
    CHECK_STATUS(fg_graph_build(n.g, n.loss, n.pool, &p), FG_ERR_INVALID);
    CHECK(strstr(fg_last_error(), "earlier build failed") != NULL);
    if (p.destroy) p.destroy(p.self);
    free_net(&n);
}

/* Requests whose aligned size wraps around size_t are refused, not granted as 0 bytes. */
static void test_pool_huge(void) {
    fg_pool *p;
    CHECK_OK(fg_pool_create(&p, 1 << 20));
    void *a = (void *)1;
    CHECK_STATUS(fg_pool_alloc(p, SIZE_MAX, "huge", &a), FG_ERR_OOM);
    CHECK(a == NULL && strstr(fg_last_error(), "huge"));
    CHECK_STATUS(fg_pool_alloc(p, SIZE_MAX - 10, "huge", &a), FG_ERR_OOM);
    CHECK_STATUS(fg_pool_alloc_at(p, 0, SIZE_MAX - 10, "huge", &a), FG_ERR_OOM);
    CHECK(fg_pool_get_stats(p).in_use == 0);
    fg_pool_destroy(p);
    CHECK_OK(fg_pool_create(&p, 0)); /* unbounded */
    CHECK_STATUS(fg_pool_alloc(p, SIZE_MAX, "huge", &a), FG_ERR_OOM);
    CHECK(fg_pool_get_stats(p).in_use == 0);
    fg_pool_destroy(p);
}

/* Best fit among holes: a 256 hole before a 128 hole, live blocks between and after them; 100
 * bytes go into the 128 hole (the smallest that fits), not the first that fits. A zeroed request
 * on memory a freed block had written reads as zeros. */
static void test_pool_best_fit_holes(void) {
    fg_pool *p;
    CHECK_OK(fg_pool_create(&p, 4096));
    void *h1, *l1, *h2, *l2, *x, *z;
    CHECK_OK(fg_pool_alloc(p, 256, "h1", &h1)); /* [0, 256) */
    CHECK_OK(fg_pool_alloc(p, 64, "l1", &l1));  /* [256, 320) */
    CHECK_OK(fg_pool_alloc(p, 128, "h2", &h2)); /* [320, 448) */
    CHECK_OK(fg_pool_alloc(p, 64, "l2", &l2));  /* [448, 512) */
    memset(h1, 0xFF, 256);
    memset(h2, 0xFF, 128);
    fg_pool_free(p, h1);
    fg_pool_free(p, h2);
    CHECK_OK(fg_pool_alloc(p, 100, "x", &x));
    if (x != h2) {
        fprintf(stderr, "  best fit: 100 bytes at offset %td, expected the 128 hole at %td (not the 256 hole at %td)\n",
                (unsigned char *)x - (unsigned char *)h1, (unsigned char *)h2 - (unsigned char *)h1, (ptrdiff_t)0);
        fg_test_failures++;
    }
    fg_pool_free(p, x);
    /* both holes were written (0xFF) and freed: zeroed requests there read as zeros */
    CHECK_OK(fg_pool_alloc_zeroed(p, 128, "z128", &z));
    CHECK(z == h2);
    if (z) CHECK(memcmp(z, (unsigned char[128]){0}, 128) == 0);
    fg_pool_free(p, z);
    CHECK_OK(fg_pool_alloc_zeroed(p, 256, "z256", &z));
    CHECK(z == h1);
    if (z) CHECK(memcmp(z, (unsigned char[256]){0}, 256) == 0);
    fg_pool_free(p, z);
    fg_pool_free(p, l1);
    fg_pool_free(p, l2);
    CHECK(fg_pool_get_stats(p).in_use == 0);
    fg_pool_destroy(p);
}

/* PyTorch's update rule of one step, in double precision: w after the step, from the weight and
 * gradient before it; m and v are the element's moments (updated), t the step count from 1. */
static double optim_ref(const fg_optim_cfg *c, int64_t t, double w, double g, double *m, double *v) {
    switch (c->kind) {
    case FG_OPTIM_ADAM:
    case FG_OPTIM_ADAMW: {
        double d = g;
        if (c->kind == FG_OPTIM_ADAMW) w *= 1.0 - (double)c->lr * c->weight_decay; /* decoupled */
        else d += (double)c->weight_decay * w;                                     /* L2 */
        *m = c->beta1 * *m + (1.0 - c->beta1) * d;
        *v = c->beta2 * *v + (1.0 - c->beta2) * d * d;
        double mh = *m / (1.0 - pow(c->beta1, (double)t)), vh = *v / (1.0 - pow(c->beta2, (double)t));
        return w - c->lr * mh / (sqrt(vh) + c->eps);
    }
    case FG_OPTIM_RMSPROP: {
        double d = g + (double)c->weight_decay * w;
        *v = c->alpha * *v + (1.0 - c->alpha) * d * d;
        return w - c->lr * d / (c->eps_inside_sqrt ? sqrt(*v + c->eps) : sqrt(*v) + c->eps);
    }
    default: {
        double d = g + (double)c->weight_decay * w;
        if (c->momentum > 0) {
            *m = t == 1 ? d : c->momentum * *m + d;
            d = *m;
        }
        return w - c->lr * d;
    }
    }
}

/* Each optimizer for three steps of small_net against optim_ref, every weight, each step from the
 * weights and gradients the graph held before it: AdamW's decay decoupled from the moments,
 * Adam's and RMSProp's L2 decay inside them, RMSProp's eps outside and inside the square root
 * (eps and decays large enough that each term moves the weights far past the tolerance). */
static void test_optim_rules(void) {
    fg_optim_cfg cfgs[5];
    const char *what[5] = {"adamw wd 0.1", "adam wd 0.5 eps 1e-2", "rmsprop eps 0.1", "rmsprop eps 0.1 inside sqrt",
                           "sgd momentum 0.9 wd 0.1"};
    cfgs[0] = fg_optim_defaults(FG_OPTIM_ADAMW, 0.01f);
    cfgs[0].weight_decay = 0.1f;
    cfgs[1] = fg_optim_defaults(FG_OPTIM_ADAM, 0.01f);
    cfgs[1].weight_decay = 0.5f;
    cfgs[1].eps = 1e-2f;
    cfgs[2] = fg_optim_defaults(FG_OPTIM_RMSPROP, 0.01f);
    cfgs[2].eps = 0.1f;
    cfgs[2].alpha = 0.9f;
    cfgs[2].weight_decay = 0.05f;
    cfgs[3] = cfgs[2];
    cfgs[3].eps_inside_sqrt = 1;
    cfgs[4] = fg_optim_defaults(FG_OPTIM_SGD, 0.05f);
    cfgs[4].momentum = 0.9f;
    cfgs[4].weight_decay = 0.1f;
    for (int c = 0; c < 5; c++) {
        net n;
        CHECK_OK(small_net(&n, 1, 0));
        fg_rng r;
        fg_rng_seed(&r, 21);
        fg_graph_init_params(n.g, &r);
        float x[24];
        fg_fill_uniform(x, 24, -1, 1, &r);
        int32_t y[4] = {2, 0, 1, 2};
        CHECK_OK(fg_graph_set_input(n.g, n.x, x, sizeof x));
        CHECK_OK(fg_graph_set_input(n.g, n.y, y, sizeof y));
        fg_optim *o = NULL;
        CHECK_OK(fg_optim_create(&o, n.g, &cfgs[c]));
        if (!o) {
            free_net(&n);
            continue;
        }
        double m[32] = {0}, v[32] = {0};
        for (int64_t t = 1; t <= 3; t++) {
            fg_graph_zero_grad(n.g);
            CHECK_OK(fg_graph_forward(n.g));
            CHECK_OK(fg_graph_backward(n.g));
            float want[32], got[32];
            size_t k = 0;
            for (int i = 0; i < fg_graph_n_params(n.g); i++) {
                fg_id p = fg_graph_param(n.g, i);
                const float *w = fg_graph_tensor(n.g, p)->data;
                const float *gr = fg_graph_tensor(n.g, fg_graph_tinfo(n.g, p)->grad)->data;
                for (int64_t e = 0; e < fg_tensor_numel(fg_graph_tensor(n.g, p)); e++, k++) {
                    FG_ASSERT(k < 32);
                    want[k] = (float)optim_ref(&cfgs[c], t, w[e], gr[e], &m[k], &v[k]);
                }
            }
            CHECK(k == 21); /* fc.weight (3, 6) and fc.bias (3) */
            CHECK_OK(fg_optim_step(o));
            k = 0;
            for (int i = 0; i < fg_graph_n_params(n.g); i++) {
                fg_id p = fg_graph_param(n.g, i);
                const float *w = fg_graph_tensor(n.g, p)->data;
                for (int64_t e = 0; e < fg_tensor_numel(fg_graph_tensor(n.g, p)); e++) got[k++] = w[e];
            }
            char label[96];
            snprintf(label, sizeof label, "%s, step %lld", what[c], (long long)t);
            fg_check_close(label, got, want, k, 1e-5f, 1e-6f);
        }
        fg_optim_free(o);
        free_net(&n);
    }
}

/* A bypass set and then set off again: backward is refused while it is on, and runs (with the
 * plain forward's loss) once it is off. */
static void test_bypass_off_trains(void) {
    net n;
    CHECK_OK(small_net(&n, 1, 0));
    fg_rng r;
    fg_rng_seed(&r, 9);
    fg_graph_init_params(n.g, &r);
    float x[24];
    fg_fill_uniform(x, 24, -1, 1, &r);
    int32_t y[4] = {0, 1, 2, 1};
    CHECK_OK(fg_graph_set_input(n.g, n.x, x, sizeof x));
    CHECK_OK(fg_graph_set_input(n.g, n.y, y, sizeof y));
    CHECK_OK(fg_graph_forward(n.g));
    float l0 = fg_graph_loss(n.g);
    int fc = fg_graph_find_node(n.g, "fc");
    CHECK(fc >= 0);
    CHECK_OK(fg_graph_set_bypass(n.g, fc, FG_BYPASS_ZERO, 0));
    CHECK_OK(fg_graph_forward(n.g));
    CHECK(fabsf(fg_graph_loss(n.g) - logf(3.0f)) < 1e-5f); /* zero logits */
    CHECK_STATUS(fg_graph_backward(n.g), FG_ERR_UNSUPPORTED);
    CHECK_OK(fg_graph_set_bypass(n.g, fc, FG_BYPASS_OFF, 0));
    CHECK(fg_graph_node_runs_op(n.g, fc));
    fg_graph_zero_grad(n.g);
    CHECK_OK(fg_graph_forward(n.g));
    float l1 = fg_graph_loss(n.g);
    fg_check_equal("loss with the bypass off again", &l1, &l0, 1);
    CHECK_OK(fg_graph_backward(n.g));
    free_net(&n);
}

/* A conv built with the implicit algorithm (no workspace) under the network-wide policy, switched
 * to im2col (a column buffer) after build: the shared workspace grows and the output stays. */
static void test_algo_after_build(void) {
    fg_pool *pool;
    fg_graph *g;
    CHECK_OK(fg_pool_create(&pool, 0));
    CHECK_OK(fg_graph_create(&g, "algo"));
    int64_t xs[4] = {2, 3, 8, 8};
    fg_id x = fg_nn_input(g, "x", FG_F32, 4, xs);
    fg_id out = fg_layer_conv2d(g, "conv", x, 4, 3, 1, 1, 1);
    fg_graph_mark_output(g, out);
    int conv = fg_graph_find_node(g, "conv");
    CHECK(conv >= 0);
    CHECK_OK(fg_graph_set_algo(g, conv, FG_CONV_IMPLICIT));
    fg_mem_policy p;
    CHECK_OK(fg_policy_network_wide(&p));
    CHECK_OK(fg_graph_build(g, FG_NONE, pool, &p));
    CHECK(fg_graph_node(g, conv)->ws_bytes[FG_FORWARD] == 0);
    fg_rng r;
    fg_rng_seed(&r, 13);
    fg_graph_init_params(g, &r);
    float xd[2 * 3 * 8 * 8], y0[2 * 4 * 8 * 8], y1[2 * 4 * 8 * 8];
    fg_fill_uniform(xd, sizeof xd / sizeof *xd, -1, 1, &r);
    CHECK_OK(fg_graph_set_input(g, x, xd, sizeof xd));
    CHECK_OK(fg_graph_forward(g));
    CHECK_OK(fg_graph_read(g, out, y0, sizeof y0));
    CHECK_OK(fg_graph_set_algo(g, conv, FG_CONV_GEMM));
    CHECK(fg_graph_node(g, conv)->ws_bytes[FG_FORWARD] > 0);
    memset(y1, 0, sizeof y1);
    CHECK_OK(fg_graph_forward(g));
    CHECK_OK(fg_graph_read(g, out, y1, sizeof y1));
    fg_check_close("conv output after switching to im2col", y1, y0, sizeof y0 / sizeof *y0, 1e-5f, 1e-5f);
    fg_graph_free(g);
    fg_pool_destroy(pool);
}

/* Free-when-dead's peak over a forward and backward, against the bound its liveness gives: at
 * step s the tensors with first_use <= s <= last_use (each rounded to the pool's alignment) plus
 * the node's workspace, over what stays allocated (parameters, gradients, inputs). A tensor
 * released a step late raises the peak. */
static size_t align_up(size_t b) { return (b + FG_POOL_ALIGN - 1) / FG_POOL_ALIGN * FG_POOL_ALIGN; }

static size_t liveness_peak(const fg_graph *g, size_t base) {
    const int N = fg_graph_n_nodes(g);
    size_t live = 0, peak = base;
    for (int s = 0; s < 2 * N; s++) {
        const int node = s < N ? s : 2 * N - 1 - s;
        const fg_pass pass = s < N ? FG_FORWARD : FG_BACKWARD;
        for (fg_id t = 0; t < fg_graph_n_tensors(g); t++) {
            const fg_tinfo *ti = fg_graph_tinfo(g, t);
            if (ti->alias_of == t && ti->first_use == s) live += align_up(ti->bytes);
        }
        size_t ws = align_up(fg_graph_node(g, node)->ws_bytes[pass]);
        if (base + live + ws > peak) peak = base + live + ws;
        for (fg_id t = 0; t < fg_graph_n_tensors(g); t++) {
            const fg_tinfo *ti = fg_graph_tinfo(g, t);
            if (ti->alias_of == t && ti->first_use >= 0 && ti->last_use == s) live -= align_up(ti->bytes);
        }
    }
    return peak;
}

static void check_peak(const char *what, fg_graph *g, fg_pool *pool) {
    fg_graph_zero_grad(g);
    CHECK_OK(fg_graph_forward(g));
    CHECK_OK(fg_graph_backward(g));
    fg_pool_reset_stats(pool);
    const size_t base = fg_pool_get_stats(pool).in_use;
    fg_graph_zero_grad(g);
    CHECK_OK(fg_graph_forward(g));
    CHECK_OK(fg_graph_backward(g));
    fg_pool_stats s = fg_pool_get_stats(pool);
    const size_t want = liveness_peak(g, base);
    if (s.peak != want || s.in_use != base) {
        fprintf(stderr, "  %s: free-when-dead peak %zu bytes (in use after %zu), liveness gives %zu (in use %zu)\n",
                what, s.peak, s.in_use, want, base);
        fg_test_failures++;
    }
}

static void test_free_when_dead_peak(void) {
    fg_graph *g;
    fg_pool *pool;
    CHECK_OK(fg_pool_create(&pool, 0));
    CHECK_OK(fg_graph_create(&g, "chain"));
    int64_t xs[2] = {16, 64}, ys[1] = {16};
    fg_id x = fg_nn_input(g, "x", FG_F32, 2, xs), y = fg_nn_input(g, "y", FG_I32, 1, ys);
    fg_id h = fg_nn_relu(g, "relu1", fg_layer_linear(g, "fc1", x, 128, 1));
    h = fg_nn_tanh(g, "tanh", fg_layer_linear(g, "fc2", h, 96, 1));
    fg_id l = fg_nn_xent(g, "loss", fg_layer_linear(g, "fc3", h, 10, 1), y);
    fg_mem_policy p;
    CHECK_OK(fg_policy_free_when_dead(&p));
    CHECK_OK(fg_graph_build(g, l, pool, &p));
    fg_rng r;
    fg_rng_seed(&r, 17);
    fg_graph_init_params(g, &r);
    float xd[16 * 64];
    fg_fill_uniform(xd, 16 * 64, -1, 1, &r);
    int32_t yd[16];
    for (int i = 0; i < 16; i++) yd[i] = (int32_t)fg_rng_below(&r, 10);
    CHECK_OK(fg_graph_set_input(g, x, xd, sizeof xd));
    CHECK_OK(fg_graph_set_input(g, y, yd, sizeof yd));
    check_peak("chain", g, pool);
    fg_graph_free(g);
    fg_pool_destroy(pool);

    net n;
    build_net(&n, 1, 3);
    check_peak("dag", n.g, n.pool);
    free_net(&n);
}

/* conv -> batch norm -> global average pool -> linear -> xent, the logits an output too. */
typedef struct bn_net {
    fg_graph *g;
    fg_pool *pool;
    fg_id x, y, logits, loss;
} bn_net;

static void build_bn_net(bn_net *n, const char *name) {
    CHECK_OK(fg_pool_create(&n->pool, 0));
    CHECK_OK(fg_graph_create(&n->g, name));
    int64_t xs[4] = {4, 3, 5, 5}, ys[1] = {4};
    n->x = fg_nn_input(n->g, "x", FG_F32, 4, xs);
    n->y = fg_nn_input(n->g, "y", FG_I32, 1, ys);
    fg_id h = fg_nn_batchnorm(n->g, "bn", fg_layer_conv2d(n->g, "conv", n->x, 6, 3, 1, 1, 1), 0.3f, 1e-5f);
    n->logits = fg_layer_linear(n->g, "fc", fg_nn_global_avgpool(n->g, "gap", fg_nn_relu(n->g, "r", h)), 3, 1);
    n->loss = fg_nn_xent(n->g, "loss", n->logits, n->y);
    fg_graph_mark_output(n->g, n->logits);
    fg_mem_policy p;
    CHECK_OK(fg_policy_free_when_dead(&p));
    CHECK_OK(fg_graph_build(n->g, n->loss, n->pool, &p));
}

/* A checkpoint holds batch norm's running statistics: trained ones (moved by training forwards)
 * saved and loaded into a fresh graph come back bit for bit, and so do its eval-mode outputs. */
static void test_checkpoint_state(void) {
    bn_net a, b;
    build_bn_net(&a, "bnsave");
    build_bn_net(&b, "bnload");
    fg_rng r;
    fg_rng_seed(&r, 23);
    fg_graph_init_params(a.g, &r);
    fg_graph_init_params(b.g, &r); /* other weights, default statistics */
    float x[4 * 3 * 5 * 5];
    fg_fill_uniform(x, sizeof x / sizeof *x, -1, 3, &r); /* mean far from 0 */
    int32_t y[4] = {0, 2, 1, 2};
    CHECK_OK(fg_graph_set_input(a.g, a.x, x, sizeof x));
    CHECK_OK(fg_graph_set_input(a.g, a.y, y, sizeof y));
    CHECK_OK(fg_graph_set_input(b.g, b.x, x, sizeof x));
    CHECK_OK(fg_graph_set_input(b.g, b.y, y, sizeof y));
    fg_optim *o = NULL;
    fg_optim_cfg oc = fg_optim_defaults(FG_OPTIM_SGD, 0.1f);
    CHECK_OK(fg_optim_create(&o, a.g, &oc));
    fg_graph_set_training(a.g, 1);
    for (int it = 0; it < 3; it++) {
        fg_graph_zero_grad(a.g);
        CHECK_OK(fg_graph_forward(a.g));
        CHECK_OK(fg_graph_backward(a.g));
        if (o) CHECK_OK(fg_optim_step(o));
    }
    CHECK(fg_graph_n_states(a.g) >= 2 && fg_graph_n_states(a.g) == fg_graph_n_states(b.g));
    const fg_id rm = fg_graph_find(a.g, "bn.running_mean"), rv = fg_graph_find(a.g, "bn.running_var");
    CHECK(rm != FG_NONE && rv != FG_NONE);
    if (rm != FG_NONE && rv != FG_NONE) { /* the statistics moved off their defaults (0 and 1) */
        CHECK(!fg_all_equal_to(fg_graph_tensor(a.g, rm)->data, 6, 0.0f));
        CHECK(!fg_all_equal_to(fg_graph_tensor(a.g, rv)->data, 6, 1.0f));
    }
    char path[64];
    snprintf(path, sizeof path, "/tmp/fg_test_graph_bn_%d.safetensors", (int)getpid());
    CHECK_OK(fg_graph_save(a.g, NULL, path, 0, NULL, NULL));
    CHECK_OK(fg_graph_load(b.g, NULL, path));
    unlink(path);
    for (int k = 0; k < fg_graph_n_params(a.g) + fg_graph_n_states(a.g); k++) {
        int pk = k < fg_graph_n_params(a.g);
        fg_id ia = pk ? fg_graph_param(a.g, k) : fg_graph_state(a.g, k - fg_graph_n_params(a.g));
        const fg_tensor *ta = fg_graph_tensor(a.g, ia);
        fg_id ib = fg_graph_find(b.g, ta->name);
        CHECK(ib != FG_NONE);
        if (ib == FG_NONE) continue;
        const fg_tensor *tb = fg_graph_tensor(b.g, ib);
        CHECK(fg_tensor_numel(ta) == fg_tensor_numel(tb));
        fg_check_equal(ta->name, tb->data, ta->data, (size_t)fg_tensor_numel(ta));
    }
    float la[12], lb[12];
    fg_graph_set_training(a.g, 0);
    fg_graph_set_training(b.g, 0);
    CHECK_OK(fg_graph_forward(a.g));
    CHECK_OK(fg_graph_read(a.g, a.logits, la, sizeof la));
    CHECK_OK(fg_graph_forward(b.g));
    CHECK_OK(fg_graph_read(b.g, b.logits, lb, sizeof lb));
    fg_check_equal("eval logits after load", lb, la, 12);
    fg_optim_free(o);
    fg_graph_free(a.g);
    fg_pool_destroy(a.pool);
    fg_graph_free(b.g);
    fg_pool_destroy(b.pool);
}

/* Optimizer state in checkpoints: SGD without momentum keeps none (no buffers, no optim.*
 * tensors in the file), Adam two per parameter; a checkpoint of one optimizer kind is refused by
 * a run of another even where the tensor names agree (Adam's into AdamW); the optimizer's
 * metadata keys are the library's own. */
static void test_optim_checkpoint(void) {
    bn_net a;
    build_bn_net(&a, "optck");
    fg_rng r;
    fg_rng_seed(&r, 29);
    fg_graph_init_params(a.g, &r);
    const int np = fg_graph_n_params(a.g);
    char path[64];
    snprintf(path, sizeof path, "/tmp/fg_test_graph_opt_%d.safetensors", (int)getpid());
    const fg_optim_kind kinds[2] = {FG_OPTIM_SGD, FG_OPTIM_ADAM};
    for (int k = 0; k < 2; k++) {
        fg_optim *o = NULL;
        fg_optim_cfg oc = fg_optim_defaults(kinds[k], 0.01f); /* SGD: momentum 0 */
        CHECK_OK(fg_optim_create(&o, a.g, &oc));
        const int want = k == 0 ? 0 : 2 * np;
        CHECK(fg_optim_n_state(o) == want);
        CHECK_OK(fg_graph_save(a.g, o, path, 0, NULL, NULL));
        fg_st_file *f = NULL;
        CHECK_OK(fg_st_load(path, &f));
        int n_opt = 0;
        for (size_t i = 0; i < fg_st_count(f); i++) n_opt += strncmp(fg_st_at(f, i)->name, "optim.", 6) == 0;
        fg_st_free(f);
        if (n_opt != want) {
            fprintf(stderr, "  %s checkpoint: %d optim.* tensors, expected %d\n", fg_optim_kind_name(kinds[k]), n_opt,
                    want);
            fg_test_failures++;
        }
        CHECK_OK(fg_graph_load(a.g, o, path)); /* its own kind loads */
        fg_optim_free(o);
    }
    /* the file now holds Adam's state: AdamW's buffers have the same names, the kind differs */
    fg_optim *aw = NULL;
    fg_optim_cfg oc = fg_optim_defaults(FG_OPTIM_ADAMW, 0.01f);
    CHECK_OK(fg_optim_create(&aw, a.g, &oc));
    CHECK_STATUS(fg_graph_load(a.g, aw, path), FG_ERR_FORMAT);
    CHECK(strstr(fg_last_error(), "holds adam") && strstr(fg_last_error(), "adamw"));
    CHECK(fg_optim_steps(aw) == 0);
    fg_optim_free(aw);
    unlink(path);
    /* optim.kind and optim.steps are reserved even without an optimizer */
    const char *keys[2] = {"optim.kind", "optim.steps"};
    for (int k = 0; k < 2; k++) {
        const char *mk[1] = {keys[k]}, *mv[1] = {"adam"};
        CHECK_STATUS(fg_graph_save(a.g, NULL, path, 1, mk, mv), FG_ERR_INVALID);
        CHECK(strstr(fg_last_error(), "reserved") && strstr(fg_last_error(), keys[k]) && access(path, F_OK) != 0);
    }
    fg_graph_free(a.g);
    fg_pool_destroy(a.pool);
}

/* Node times add up over forwards (the benchmarks and vmem's planner read sums): the forward
 * total grows with every forward, and fg_graph_reset_times sets every node's time to 0. */
static void test_node_times(void) {
    bn_net a;
    build_bn_net(&a, "times");
    fg_rng r;
    fg_rng_seed(&r, 31);
    fg_graph_init_params(a.g, &r);
    float x[4 * 3 * 5 * 5];
    fg_fill_uniform(x, sizeof x / sizeof *x, -1, 1, &r);
    int32_t y[4] = {0, 1, 2, 0};
    CHECK_OK(fg_graph_set_input(a.g, a.x, x, sizeof x));
    CHECK_OK(fg_graph_set_input(a.g, a.y, y, sizeof y));
    const int nn = fg_graph_n_nodes(a.g);
    fg_graph_reset_times(a.g);
    double prev = 0.0;
    int grows = 1;
    for (int it = 0; it < 8; it++) {
        CHECK_OK(fg_graph_forward(a.g));
        double tot = 0.0;
        for (int i = 0; i < nn; i++) tot += fg_graph_node_time(a.g, i, FG_FORWARD);
        if (!(tot > prev)) {
            fprintf(stderr, "  node times: forward total %.9f s after forward %d, %.9f s before\n", tot, it + 1, prev);
            grows = 0;
        }
        prev = tot;
    }
    CHECK(grows);
    CHECK_OK(fg_graph_backward(a.g));
    fg_graph_reset_times(a.g);
    int zero = 1;
    for (int i = 0; i < nn; i++)
        zero &= fg_graph_node_time(a.g, i, FG_FORWARD) == 0.0 && fg_graph_node_time(a.g, i, FG_BACKWARD) == 0.0;
    CHECK(zero && fg_graph_recompute_time(a.g) == 0.0);
    fg_graph_free(a.g);
    fg_pool_destroy(a.pool);
}

int main(void) {
    fg_threads_set(2);
    test_pool();
    test_pool_alloc_at();
    test_pool_huge();
    test_pool_best_fit_holes();
    test_shape_errors();
    test_builder_misuse();
    test_call_order();
    test_liveness_chain();
    test_dag_gradients();
    test_param_as_data();
    test_policies_identical();
    test_free_when_dead_peak();
    test_optim_rules();
    test_bypass_off_trains();
    test_algo_after_build();
    test_checkpoint_state();
    test_optim_checkpoint();
    test_node_times();
    test_eval_and_clip();
    return fg_test_finish("test_graph");
}
