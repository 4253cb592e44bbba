/* Tests for the embedding lookup (src/ops/embedding.c), its graph node (fg_nn_embedding) and
 * gradient clipping (fg_graph_clip_grad_norm):
 *  - the fast kernels against the naive twins, bit for bit, on shapes from one id to threaded
 *    sizes with E not a multiple of the column slab, every shape with repeated ids; the weight
 *    gradient accumulated onto a prefilled buffer; guard values after every output;
 *  - the backward bit-identical for 1, 2 and 3 threads on many repeats of few ids, with dy spread
 *    over many magnitudes so that any change of summation order shows;
 *  - bad ids (negative, = V) rejected with a message naming the position, the id and V; bad sizes;
 *  - the graph node: output shape, the parameter's name, shape and N(0, 1) initialization, the
 *    saves list (the ids only), no workspace, recomputation giving the same bits, the weight's
 *    gradient through a linear layer and cross-entropy against central finite differences, no
 *    gradient for the ids, builder errors (sticky, naming the node), a bad id in a graph forward
 *    (the status and a message naming the node), and the same gradients bit for bit under the
 *    network-wide baseline, free-when-dead and vmem with weights offloaded;
 *  - PyTorch references from tests/fixtures/embed.bin (gen_embed.py, torch.nn.Embedding): output
 *    and weight gradient within 1e-6;
 *  - clipping: the returned norm is the L2 norm of all parameter gradients together; above the
 *    maximum every gradient is scaled by max / (norm + 1e-6) and the norm becomes the maximum
 *    (1e-6 relative); at or below it nothing changes, bit for bit; a gradient without data is
 *    left out; the same norm under vmem with weights offloaded (gradients at their host home). */
#include <math.h>
#include <string.h>

#include "frugal/vmem.h"
#include "testutil.h"

/* ---------------------------------------------------------------- kernels */

/* Ids in [0, V) with repeats wherever n > 1: position 1 repeats position 0, and the last one too. */
static void fill_ids(int32_t *ids, int64_t n, int64_t V, fg_rng *rng) {
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)fg_rng_below(rng, (uint64_t)V);
    if (n > 1) ids[1] = ids[0];
    if (n > 2) ids[n - 1] = ids[0];
}

static void test_vs_naive(int64_t n, int64_t V, int64_t E, fg_rng *rng) {
    const size_t ny = (size_t)(n * E), nw = (size_t)(V * E);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    float *w = malloc(nw * sizeof(float)), *dy = malloc(ny * sizeof(float));
    float *y = fg_alloc_guarded(ny), *y_ref = malloc(ny * sizeof(float));
    float *dw = fg_alloc_guarded(nw), *dw_ref = malloc(nw * sizeof(float));
    fill_ids(ids, n, V, rng);
    fg_fill_uniform(w, nw, -1, 1, rng);
    fg_fill_uniform(dy, ny, -1, 1, rng);
    fg_fill_const(y, ny, NAN); /* every element must be written */
    char what[128];
    snprintf(what, sizeof what, "embedding n %lld V %lld E %lld", (long long)n, (long long)V, (long long)E);

    CHECK_OK(fg_embedding_forward(y, ids, w, n, V, E));
    CHECK_OK(fg_embedding_forward_naive(y_ref, ids, w, n, V, E));
    char w2[192];
    snprintf(w2, sizeof w2, "%s forward vs naive", what);
    fg_check_equal(w2, y, y_ref, ny);
    /* and against the table itself, for the last id */
    snprintf(w2, sizeof w2, "%s forward, last row vs the table", what);
    fg_check_equal(w2, y + (n - 1) * E, w + (int64_t)ids[n - 1] * E, (size_t)E);
    fg_check_guard(w2, y, ny);

    /* accumulated: both start from the same non-zero values */
    fg_fill_uniform(dw, nw, -1, 1, rng);
    memcpy(dw_ref, dw, nw * sizeof(float));
    fg_embedding_backward(dw, dy, ids, n, V, E);
    fg_embedding_backward_naive(dw_ref, dy, ids, n, V, E);
    snprintf(w2, sizeof w2, "%s backward vs naive", what);
    fg_check_equal(w2, dw, dw_ref, nw);
    fg_check_guard(w2, dw, nw);
    /* a second call accumulates again */
    fg_embedding_backward(dw, dy, ids, n, V, E);
    fg_embedding_backward_naive(dw_ref, dy, ids, n, V, E);
    snprintf(w2, sizeof w2, "%s backward twice vs naive", what);
    fg_check_equal(w2, dw, dw_ref, nw);
    free(ids);
    free(w);
    free(dy);
    free(y);
    free(y_ref);
    free(dw);
    free(dw_ref);
}

/* A repeated id's gradient row is the sum of its dy rows on top of what dw held. */
static void test_repeat_sum(void) {
    const int32_t ids[4] = {2, 0, 2, 2};
    float dy[4 * 3], dw[3 * 3], want[3 * 3];
    for (int i = 0; i < 12; i++) dy[i] = (float)(i + 1);
    fg_fill_const(dw, 9, 0.5f);
    fg_embedding_backward(dw, dy, ids, 4, 3, 3);
    /* row 0 = 0.5 + dy row 1; row 1 untouched; row 2 = 0.5 + dy rows 0, 2, 3 */
    const float expect[9] = {4.5f, 5.5f, 6.5f, 0.5f, 0.5f, 0.5f, 0.5f + 1 + 7 + 10, 0.5f + 2 + 8 + 11,
                             0.5f + 3 + 9 + 12};
    memcpy(want, expect, sizeof want);
    fg_check_equal("embedding backward, repeated id", dw, want, 9);
}

/* The same bits for any thread count: many repeats of few ids, dy over magnitudes 2^-12 .. 2^12. */
static void test_threads(fg_rng *rng) {
    const int64_t n = 3000, V = 16, E = 300;
    const size_t ny = (size_t)(n * E), nw = (size_t)(V * E);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    float *dy = malloc(ny * sizeof(float)), *pre = malloc(nw * sizeof(float));
    float *dw[3];
    fill_ids(ids, n, V, rng);
    for (size_t i = 0; i < ny; i++)
        dy[i] = (2.0f * fg_rng_uniform(rng) - 1.0f) * ldexpf(1.0f, (int)fg_rng_below(rng, 25) - 12);
    fg_fill_uniform(pre, nw, -1, 1, rng);
    for (int t = 0; t < 3; t++) {
        fg_threads_set(t + 1);
        dw[t] = malloc(nw * sizeof(float));
        memcpy(dw[t], pre, nw * sizeof(float));
        fg_embedding_backward(dw[t], dy, ids, n, V, E);
    }
    fg_threads_set(2);
    fg_check_equal("embedding backward, 2 threads vs 1", dw[1], dw[0], nw);
    fg_check_equal("embedding backward, 3 threads vs 1", dw[2], dw[0], nw);
    /* forward too (no reduction, but the threaded path is a different loop) */
    float *w = malloc(nw * sizeof(float)), *y1 = malloc(ny * sizeof(float)), *y2 = malloc(ny * sizeof(float));
    fg_fill_uniform(w, nw, -1, 1, rng);
    fg_threads_set(1);
    CHECK_OK(fg_embedding_forward(y1, ids, w, n, V, E));
    fg_threads_set(2);
    CHECK_OK(fg_embedding_forward(y2, ids, w, n, V, E));
    fg_check_equal("embedding forward, 2 threads vs 1", y2, y1, ny);
    for (int t = 0; t < 3; t++) free(dw[t]);
    free(ids);
    free(dy);
    free(pre);
    free(w);
    free(y1);
    free(y2);
}

static void expect_msg(const char *what, const char *const *need, int k) {
    for (int j = 0; j < k; j++)
        if (!strstr(fg_last_error(), need[j])) {
            fprintf(stderr, "  %s: message '%s' lacks '%s'\n", what, fg_last_error(), need[j]);
            fg_test_failures++;
        }
}

static void test_bad_ids(void) {
    float w[5 * 2] = {0}, y[4 * 2];
    const int32_t neg[4] = {0, 3, -1, 2}, big[4] = {0, 4, 1, 5};
    CHECK_STATUS(fg_embedding_forward(y, neg, w, 4, 5, 2), FG_ERR_INVALID);
    const char *n1[] = {"id -1", "position 2", "[0, 5)", "V = 5"};
    expect_msg("negative id", n1, 4);
    CHECK_STATUS(fg_embedding_forward(y, big, w, 4, 5, 2), FG_ERR_INVALID);
    const char *n2[] = {"id 5", "position 3", "V = 5"};
    expect_msg("id = V", n2, 3);
    CHECK_STATUS(fg_embedding_forward_naive(y, big, w, 4, 5, 2), FG_ERR_INVALID);
    expect_msg("id = V (naive)", n2, 3);
    /* sizes */
    CHECK_STATUS(fg_embedding_forward(y, neg, w, 4, 5, 0), FG_ERR_SHAPE);
    const char *n3[] = {"E = 0"};
    expect_msg("E = 0", n3, 1);
    CHECK_STATUS(fg_embedding_forward(y, neg, w, -1, 5, 2), FG_ERR_SHAPE);
    const char *n4[] = {"n = -1"};
    expect_msg("n = -1", n4, 1);
    CHECK_OK(fg_embedding_forward(NULL, NULL, NULL, 0, 5, 2)); /* nothing to look up */
}

/* ---------------------------------------------------------------- PyTorch fixture */

static void test_fixture(void) {
    fg_fixture *f = fg_fixture_open("embed.bin");
    int cases = 0;
    for (int c = 0;; c++) {
        char nm[64];
        snprintf(nm, sizeof nm, "embed%d.params", c);
        if (!fg_fixture_has(f, nm)) break;
        const float *pr = fg_fixture_get(f, nm, 3);
        const int64_t V = (int64_t)pr[0], E = (int64_t)pr[1], n = (int64_t)pr[2];
        const size_t ny = (size_t)(n * E), nw = (size_t)(V * E);
#define FX(name, numel) (snprintf(nm, sizeof nm, "embed%d." name, c), fg_fixture_get(f, nm, (numel)))
        const float *idf = FX("ids", (size_t)n), *w = FX("weight", nw), *dy = FX("dy", ny), *y_ref = FX("y", ny);
        const float *dw_ref = FX("dweight", nw);
#undef FX
        int32_t *ids = malloc((size_t)n * sizeof *ids);
        for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)idf[i];
        float *y = malloc(ny * sizeof(float)), *dw = calloc(nw, sizeof(float));
        char what[96];
        CHECK_OK(fg_embedding_forward(y, ids, w, n, V, E));
        snprintf(what, sizeof what, "fixture embed%d (V %lld, E %lld, n %lld) y vs torch", c, (long long)V,
                 (long long)E, (long long)n);
        fg_check_close(what, y, y_ref, ny, 1e-6f, 1e-6f);
        fg_embedding_backward(dw, dy, ids, n, V, E);
        snprintf(what, sizeof what, "fixture embed%d dweight vs torch", c);
        fg_check_close(what, dw, dw_ref, nw, 1e-6f, 1e-6f);
        free(ids);
        free(y);
        free(dw);
        cases++;
    }
    CHECK(cases == 3);
    fg_fixture_close(f);
}

/* ---------------------------------------------------------------- graph node */

/* ids (GT, GB) -> embedding (GV, GE) -> rows (GT*GB, GE) -> linear GC -> cross-entropy */
#define GT 3
#define GB 2
#define GV 7
#define GE 5
#define GC 4

enum { POL_FREE, POL_NETWORK, POL_VMEM };

typedef struct enet {
    fg_graph *g;
    fg_pool *pool;
    fg_id ids, y, w, loss;
    int node;
} enet;

/* Row 6 is never looked up (its gradient must stay 0); 3 appears three times. */
static const int32_t IDS[GT * GB] = {3, 0, 3, 5, 1, 3};
static const int32_t LABELS[GT * GB] = {1, 0, 3, 2, 2, 1};

static void enet_build(enet *n, int policy) {
    memset(n, 0, sizeof *n);
    CHECK_OK(fg_pool_create(&n->pool, 0));
    CHECK_OK(fg_graph_create(&n->g, "embed"));
    fg_graph *g = n->g;
    int64_t is[2] = {GT, GB}, rs[2] = {GT * GB, GE}, nl = GT * GB;
    n->ids = fg_nn_input(g, "ids", FG_I32, 2, is);
    n->y = fg_nn_embedding(g, "emb", n->ids, GV, GE);
    fg_id logits = fg_layer_linear(g, "fc", fg_nn_reshape(g, "rows", n->y, 2, rs), GC, 1);
    fg_id labels = fg_nn_input(g, "labels", FG_I32, 1, &nl);
    n->loss = fg_nn_xent(g, "loss", logits, labels);
    CHECK_OK(fg_graph_status(g));
    if (fg_graph_status(g) != FG_OK) {
        fprintf(stderr, "  build error: %s\n", fg_graph_error(g));
        exit(1);
    }
    n->w = fg_graph_find(g, "emb.weight");
    n->node = fg_graph_tinfo(g, n->y)->producer;
    fg_graph_mark_output(g, n->y);
    fg_mem_policy p;
    if (policy == POL_VMEM) {
        fg_vmem_config vc = fg_vmem_config_defaults(FG_VMEM_ALL);
        vc.offload_weights = 1;
        CHECK_OK(fg_vmem_policy_create(&p, &vc));
    } else if (policy == POL_NETWORK) {
        CHECK_OK(fg_policy_network_wide(&p));
    } else {
        CHECK_OK(fg_policy_free_when_dead(&p));
    }
    CHECK_OK(fg_graph_build(g, n->loss, n->pool, &p));
    fg_rng r;
    fg_rng_seed(&r, 11);
    fg_graph_init_params(g, &r);
    CHECK_OK(fg_graph_set_input(g, n->ids, IDS, sizeof IDS));
    CHECK_OK(fg_graph_set_input(g, labels, LABELS, sizeof LABELS));
}

static void enet_free(enet *n) {
    fg_graph_free(n->g);
    fg_pool_destroy(n->pool);
}

static void enet_step(enet *n) {
    fg_graph_zero_grad(n->g);
    CHECK_OK(fg_graph_forward(n->g));
    CHECK_OK(fg_graph_backward(n->g));
}

static float *pgrad(fg_graph *g, fg_id p) { return fg_graph_tensor(g, fg_graph_tinfo(g, p)->grad)->data; }
static size_t numel_of(fg_graph *g, fg_id id) { return (size_t)fg_tensor_numel(fg_graph_tensor(g, id)); }

static double loss_of(void *user) {
    enet *n = user;
    CHECK_OK(fg_graph_forward(n->g));
    return fg_graph_loss(n->g);
}

/* Shape, parameter, saves, workspace, FLOPs, recomputation. */
static void test_node(void) {
    enet n;
    enet_build(&n, POL_NETWORK);
    fg_graph *g = n.g;
    const fg_tensor *ty = fg_graph_tensor(g, n.y);
    CHECK(ty->ndim == 3 && ty->shape[0] == GT && ty->shape[1] == GB && ty->shape[2] == GE && ty->dtype == FG_F32);
    CHECK(n.w != FG_NONE);
    if (n.w != FG_NONE) {
        const fg_tinfo *tw = fg_graph_tinfo(g, n.w);
        CHECK(tw->kind == FG_T_PARAM && tw->t.ndim == 2 && tw->t.shape[0] == GV && tw->t.shape[1] == GE);
    }
    const fg_ninfo *ni = fg_graph_node(g, n.node);
    CHECK(ni->op == FG_OP_EMBEDDING && strcmp(fg_op_name(ni->op), "embedding") == 0);
    CHECK(ni->n_in == 2 && ni->in[0] == n.ids && ni->in[1] == n.w && ni->n_aux == 0);
    CHECK(ni->n_save == 1 && ni->save[0] == n.ids);
    CHECK(ni->ws_bytes[FG_FORWARD] == 0 && ni->ws_bytes[FG_BACKWARD] == 0);
    CHECK(ni->flops == 0.0);
    CHECK(fg_graph_node_recomputable(g, n.node));
    CHECK(fg_graph_tinfo(g, n.ids)->grad == FG_NONE); /* ids get no gradient */

    CHECK_OK(fg_graph_forward(g));
    /* the output holds the table's rows */
    const float *w = fg_graph_tensor(g, n.w)->data, *y = ty->data;
    for (int i = 0; i < GT * GB; i++) {
        char what[64];
        snprintf(what, sizeof what, "graph embedding row %d (id %d)", i, IDS[i]);
        fg_check_equal(what, y + i * GE, w + IDS[i] * GE, GE);
    }
    /* a rerun into a cleared output gives the same bits */
    float copy[GT * GB * GE];
    memcpy(copy, y, sizeof copy);
    fg_fill_const(fg_graph_tensor(g, n.y)->data, GT * GB * GE, 0.0f);
    CHECK_OK(fg_graph_recompute(g, n.node));
    fg_check_equal("graph embedding recompute", fg_graph_tensor(g, n.y)->data, copy, GT * GB * GE);
    enet_free(&n);
}

/* The table is N(0, 1) as torch.nn.Embedding: FG_INIT_NORMAL with std 1, the first numbers the rng gives. */
static void test_init(void) {
    fg_graph *g;
    fg_pool *pool;
    CHECK_OK(fg_pool_create(&pool, 0));
    CHECK_OK(fg_graph_create(&g, "init"));
    const int64_t V = 2000, E = 8, is = 4;
    fg_id ids = fg_nn_input(g, "ids", FG_I32, 1, &is);
    fg_nn_embedding(g, "tok", ids, V, E);
    fg_mem_policy p;
    CHECK_OK(fg_policy_free_when_dead(&p));
    CHECK_OK(fg_graph_build(g, FG_NONE, pool, &p));
    fg_rng r, r2;
    fg_rng_seed(&r, 5);
    fg_graph_init_params(g, &r);
    fg_id w = fg_graph_find(g, "tok.weight");
    CHECK(w != FG_NONE);
    if (w != FG_NONE) {
        const float *d = fg_graph_tensor(g, w)->data;
        const size_t n = (size_t)(V * E);
        double s = 0, s2 = 0;
        for (size_t j = 0; j < n; j++) s += d[j], s2 += (double)d[j] * d[j];
        const double mean = s / (double)n, sd = sqrt(s2 / (double)n - mean * mean);
        if (!(fabs(mean) < 0.04 && fabs(sd - 1.0) < 0.04)) {
            fprintf(stderr, "  embedding init: mean %g std %g over %zu values, expected N(0, 1)\n", mean, sd, n);
            fg_test_failures++;
        }
        float *want = malloc(n * sizeof(float));
        fg_rng_seed(&r2, 5);
        for (size_t j = 0; j < n; j++) want[j] = fg_rng_normal(&r2) * 1.0f;
        fg_check_equal("embedding init vs fg_rng_normal", d, want, n);
        free(want);
    }
    fg_graph_free(g);
    fg_pool_destroy(pool);
}

/* d loss / d table against central differences, every coordinate (row 6 is never looked up). */
static void test_gradcheck(void) {
    enet n;
    enet_build(&n, POL_FREE);
    enet_step(&n);
    float grad[GV * GE];
    memcpy(grad, pgrad(n.g, n.w), sizeof grad);
    CHECK(fg_all_equal_to(grad + 6 * GE, GE, 0.0f));
    CHECK(!fg_all_equal_to(grad + 3 * GE, GE, 0.0f));
    fg_rng r;
    fg_rng_seed(&r, 2);
    fg_check_grad("graph d loss / d emb.weight", fg_graph_tensor(n.g, n.w)->data, grad, GV * GE, loss_of, &n, GV * GE,
                  1e-2f, 2e-2f, 2e-4f, &r);
    enet_free(&n);
}

/* The same loss and gradients, bit for bit, under every policy (the ids saved for backward). */
static void test_policies(void) {
    enet a, b;
    enet_build(&a, POL_NETWORK);
    enet_step(&a);
    static const int others[2] = {POL_FREE, POL_VMEM};
    for (int k = 0; k < 2; k++) {
        const int pol = others[k];
        enet_build(&b, pol);
        enet_step(&b);
        CHECK(fg_graph_loss(b.g) == fg_graph_loss(a.g));
        for (int i = 0; i < fg_graph_n_params(a.g); i++) {
            fg_id p = fg_graph_param(a.g, i);
            char what[128];
            snprintf(what, sizeof what, "policy %s: grad of %s vs network-wide", pol == POL_VMEM ? "vmem" : "free",
                     fg_graph_tensor(a.g, p)->name);
            fg_check_equal(what, pgrad(b.g, fg_graph_param(b.g, i)), pgrad(a.g, p), numel_of(a.g, p));
        }
        enet_free(&b);
    }
    enet_free(&a);
}

/* A bad id in a graph forward: the status, and a message naming the node, the id and its position. */
static void test_graph_bad_id(void) {
    enet n;
    enet_build(&n, POL_FREE);
    int32_t bad[GT * GB];
    memcpy(bad, IDS, sizeof bad);
    bad[4] = GV + 2;
    CHECK_OK(fg_graph_set_input(n.g, n.ids, bad, sizeof bad));
    CHECK_STATUS(fg_graph_forward(n.g), FG_ERR_INVALID);
    const char *need[] = {"embedding 'emb'", "id 9", "position 4", "V = 7"};
    expect_msg("graph forward with a bad id", need, 4);
    /* good ids again: the graph runs */
    CHECK_OK(fg_graph_set_input(n.g, n.ids, IDS, sizeof IDS));
    enet_step(&n);
    enet_free(&n);
}

typedef enum { E_DTYPE, E_RANK, E_V0, E_DIM, E_NONAME, E_STICKY, E_COUNT } emb_err;

static void test_builder_errors(void) {
    for (int c = 0; c < E_COUNT; c++) {
        fg_graph *g;
        CHECK_OK(fg_graph_create(&g, "bad"));
        int64_t s2[2] = {2, 3}, s6[6] = {1, 2, 1, 2, 1, 2};
        fg_id r = FG_NONE;
        fg_status want = FG_ERR_SHAPE;
        const char *need[3] = {NULL, NULL, NULL};
        switch (c) {
        case E_DTYPE:
            r = fg_nn_embedding(g, "e1", fg_nn_input(g, "x", FG_F32, 2, s2), 10, 4);
            need[0] = "embedding 'e1'", need[1] = "[2, 3]", need[2] = "i32";
            break;
        case E_RANK:
            r = fg_nn_embedding(g, "e2", fg_nn_input(g, "x", FG_I32, 6, s6), 10, 4);
            need[0] = "embedding 'e2'", need[1] = "6 dims", need[2] = "at most 5";
            break;
        case E_V0:
            r = fg_nn_embedding(g, "e3", fg_nn_input(g, "x", FG_I32, 2, s2), 0, 4);
            need[0] = "embedding 'e3'", need[1] = "num_embeddings = 0";
            break;
        case E_DIM:
            r = fg_nn_embedding(g, "e4", fg_nn_input(g, "x", FG_I32, 2, s2), 10, -1);
            need[0] = "embedding 'e4'", need[1] = "dim = -1";
            break;
        case E_NONAME:
            r = fg_nn_embedding(g, NULL, fg_nn_input(g, "x", FG_I32, 2, s2), 10, 4);
            want = FG_ERR_INVALID;
            need[0] = "embedding", need[1] = "name";
            break;
        case E_STICKY: {
            /* the first error stays; a valid call after it returns FG_NONE */
            fg_id x = fg_nn_input(g, "x", FG_I32, 2, s2);
            fg_nn_embedding(g, "first", x, 0, 4);
            r = fg_nn_embedding(g, "second", x, 10, 4);
            need[0] = "embedding 'first'";
            break;
        }
        }
        CHECK(r == FG_NONE);
        CHECK(fg_graph_status(g) == want);
        for (int j = 0; j < 3; j++)
            if (need[j] && !strstr(fg_graph_error(g), need[j])) {
                fprintf(stderr, "  builder error case %d: '%s' lacks '%s'\n", c, fg_graph_error(g), need[j]);
                fg_test_failures++;
            }
        fg_graph_free(g);
    }
}

/* ---------------------------------------------------------------- gradient clipping */

static double grads_norm(fg_graph *g) {
    double ss = 0;
    for (int i = 0; i < fg_graph_n_params(g); i++) {
        fg_id p = fg_graph_param(g, i);
        const float *d = pgrad(g, p);
        for (size_t j = 0; j < numel_of(g, p); j++) ss += (double)d[j] * d[j];
    }
    return sqrt(ss);
}

static void test_clip(void) {
    enet n;
    enet_build(&n, POL_NETWORK);
    enet_step(&n);
    fg_graph *g = n.g;
    const int np = fg_graph_n_params(g);
    CHECK(np == 3); /* the table, fc.weight, fc.bias: the norm must cover all three together */
    /* gradients of norm ~10 (a power of two keeps them exact), so that the 1e-6 in the divisor is
     * below the 1e-6 relative tolerance */
    for (int i = 0; i < np; i++) {
        float *d = pgrad(g, fg_graph_param(g, i));
        for (size_t j = 0; j < numel_of(g, fg_graph_param(g, i)); j++) d[j] *= 64.0f;
    }
    const double want = grads_norm(g);
    if (!(want > 2.0)) {
        fprintf(stderr, "  clip: gradient norm %g too small for the test\n", want);
        fg_test_failures++;
    }
    float *before[8];
    for (int i = 0; i < np; i++) {
        fg_id p = fg_graph_param(g, i);
        before[i] = malloc(numel_of(g, p) * sizeof(float));
        memcpy(before[i], pgrad(g, p), numel_of(g, p) * sizeof(float));
    }

    /* above the norm, and exactly at it: nothing changes */
    const double maxes[2] = {want * 2.0, want};
    for (int m = 0; m < 2; m++) {
        double got = fg_graph_clip_grad_norm(g, maxes[m]);
        if (!(fabs(got - want) <= 1e-12 * want)) {
            fprintf(stderr, "  clip (max %g): returned norm %.17g, expected %.17g\n", maxes[m], got, want);
            fg_test_failures++;
        }
        for (int i = 0; i < np; i++) {
            fg_id p = fg_graph_param(g, i);
            char what[160];
            snprintf(what, sizeof what, "clip below the max (%d): %s unchanged", m, fg_graph_tensor(g, p)->name);
            fg_check_equal(what, pgrad(g, p), before[i], numel_of(g, p));
        }
    }

    /* a gradient without data is left out of the norm (and not scaled) */
    fg_tensor *tb = fg_graph_tensor(g, fg_graph_tinfo(g, fg_graph_param(g, 2))->grad);
    void *keep_data = tb->data;
    fg_residence keep_res = tb->residence;
    double ss = 0;
    for (int i = 0; i < 2; i++) {
        fg_id p = fg_graph_param(g, i);
        for (size_t j = 0; j < numel_of(g, p); j++) ss += (double)before[i][j] * before[i][j];
    }
    tb->data = NULL;
    tb->residence = FG_RES_NONE;
    double got = fg_graph_clip_grad_norm(g, want * 2.0);
    tb->data = keep_data;
    tb->residence = keep_res;
    if (!(fabs(got - sqrt(ss)) <= 1e-12 * sqrt(ss))) {
        fprintf(stderr, "  clip with %s not resident: norm %.17g, expected %.17g (without it)\n", tb->name, got,
                sqrt(ss));
        fg_test_failures++;
    }

    /* above the max: every gradient scaled by max / (norm + 1e-6), the norm becomes max */
    const double mx = want / 3.0;
    got = fg_graph_clip_grad_norm(g, mx);
    if (!(fabs(got - want) <= 1e-12 * want)) {
        fprintf(stderr, "  clip (max %g): returned norm %.17g, expected the norm before clipping %.17g\n", mx, got,
                want);
        fg_test_failures++;
    }
    const double after = grads_norm(g);
    if (!(fabs(after - mx) <= 1e-6 * mx)) {
        fprintf(stderr, "  clip: norm after clipping %.17g, expected max_norm %.17g within 1e-6\n", after, mx);
        fg_test_failures++;
    }
    const float coef = (float)(mx / (want + 1e-6));
    for (int i = 0; i < np; i++) {
        fg_id p = fg_graph_param(g, i);
        const size_t k = numel_of(g, p);
        float *scaled = malloc(k * sizeof(float));
        for (size_t j = 0; j < k; j++) scaled[j] = before[i][j] * coef;
        char what[160];
        snprintf(what, sizeof what, "clip: %s scaled by max / (norm + 1e-6)", fg_graph_tensor(g, p)->name);
        fg_check_close(what, pgrad(g, p), scaled, k, 1e-6f, 1e-7f);
        free(scaled);
        free(before[i]);
    }
    enet_free(&n);

    /* weights offloaded: gradients live at their host home between iterations and are clipped there */
    enet a, b;
    enet_build(&a, POL_NETWORK);
    enet_build(&b, POL_VMEM);
    enet_step(&a);
    enet_step(&b);
    const double na = fg_graph_clip_grad_norm(a.g, 0.01), nb = fg_graph_clip_grad_norm(b.g, 0.01);
    if (!(na == nb && na > 0.01)) {
        fprintf(stderr, "  clip under vmem with weights offloaded: norm %.17g, network-wide %.17g\n", nb, na);
        fg_test_failures++;
    }
    for (int i = 0; i < fg_graph_n_params(a.g); i++) {
        fg_id p = fg_graph_param(a.g, i);
        fg_check_equal("clip under vmem vs network-wide", pgrad(b.g, fg_graph_param(b.g, i)), pgrad(a.g, p),
                       numel_of(a.g, p));
    }
    enet_free(&a);
    enet_free(&b);
}

int main(void) {
    fg_rng rng;
    fg_rng_seed(&rng, 20240614);
    fg_threads_set(2);

    /* n, V, E: one id; more ids than rows; E not a multiple of the 16-float slab; threaded sizes */
    test_vs_naive(1, 1, 1, &rng);
    test_vs_naive(7, 5, 3, &rng);
    test_vs_naive(13, 4, 17, &rng);
    test_vs_naive(700, 50, 200, &rng);
    test_vs_naive(64, 1000, 650, &rng);
    test_repeat_sum();
    test_threads(&rng);
    test_bad_ids();
    test_fixture();

    test_node();
    test_init();
    test_gradcheck();
    test_policies();
    test_graph_bad_id();
    test_builder_errors();
    test_clip();
    return fg_test_finish("test_ops_embed");
}
