/* Graph tests of the sequence ops (LSTM, layer norm, attention) as nodes of a graph: every parameter
 * gradient of small graphs against central finite differences of the graph's loss (the op's data
 * inputs are made parameters so their gradients, which the kernels WRITE, are checked entry by
 * entry; attention in both layouts, fg_nn_attention and fg_nn_attention_tokens; other graphs feed the op from a projection, or feed one tensor to several inputs, so the
 * executor's written and accumulated activation gradients are exercised too); the node's forward
 * against a direct call of the kernel, bit for bit; builder shape errors naming the op; a
 * safetensors round trip of the LSTM's parameters under torch.nn.LSTM's names; and the same
 * losses and gradients, bit for bit, under vmem's offload-everything policy and the network-wide
 * baseline. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "frugal/io.h"
#include "frugal/vmem.h"
#include "testutil.h"

enum { OP_LSTM, OP_LN, OP_ATTN, OP_ATTN_TOK }; /* OP_ATTN_TOK: fg_nn_attention_tokens */

/* How a test graph is built. */
typedef struct spec {
    int op;
    int direct;  /* the op's data inputs are parameters (their gradients checked directly) */
    int shared;  /* LN: a residual add reads the op's input too; attention: q = k = v */
    int causal;  /* attention */
    int bias;    /* LSTM */
    int vmem;    /* 0: free-when-dead; 1: vmem policy `all`; 2: network-wide (one shared workspace) */
    int mark;    /* mark the op's inputs, output and AUX outputs as outputs (readable after forward) */
    uint64_t seed;
} spec;

typedef struct net {
    spec sp;
    fg_graph *g;
    fg_pool *pool;
    fg_id loss;
    int node;           /* the op's node */
    fg_id op_in[3];     /* the op's data inputs (q, k, v for attention) */
    int n_op_in;
    fg_vmem *vm;        /* the vmem state when sp.vmem */
} net;

/* Sizes. LSTM: x (T, B, I) -> hidden H -> C classes per (t, b). */
#define LT 4
#define LB 3
#define LI 5
#define LH 6
#define NCLS 4
/* layer norm: x (2, 3, LC) */
#define LC 7
/* attention: q (AB, AH, ATQ, AD), k, v (AB, AH, ATK, AD) */
#define AB 2
#define AH 2
#define ATQ 5
#define ATK 4
#define AD 3

static fg_id input_or_param(fg_graph *g, int direct, const char *name, int ndim, const int64_t *shape) {
    if (direct) return fg_nn_param(g, name, ndim, shape, FG_INIT_NORMAL, 1.0f);
    return fg_nn_input(g, name, FG_F32, ndim, shape);
}

/* Builds the graph of sp, initializes parameters (seeded) and sets the inputs. */
static void build(net *n, const spec *sp) {
    memset(n, 0, sizeof *n);
    n->sp = *sp;
    CHECK_OK(fg_pool_create(&n->pool, 0));
    CHECK_OK(fg_graph_create(&n->g, "seq"));
    fg_graph *g = n->g;
    fg_id y = FG_NONE, labels = FG_NONE, logits = FG_NONE;
    int64_t n_labels = 0;
    if (sp->op == OP_LSTM) {
        int64_t xs[3] = {LT, LB, LI};
        fg_id x = input_or_param(g, sp->direct, "x", 3, xs);
        fg_id h = sp->direct ? x : fg_layer_linear(g, "proj", x, LI, 1);
        y = fg_nn_lstm(g, "lstm", h, LH, sp->bias);
        n->op_in[0] = h;
        n->n_op_in = 1;
        int64_t rs[2] = {LT * LB, LH};
        logits = fg_layer_linear(g, "fc", fg_nn_reshape(g, "rows", y, 2, rs), NCLS, 1);
        n_labels = LT * LB;
    } else if (sp->op == OP_LN) {
        int64_t xs[3] = {2, 3, LC};
        fg_id x = input_or_param(g, sp->direct, "x", 3, xs);
        fg_id h = sp->direct ? x : fg_layer_linear(g, "proj", x, LC, 1);
        y = fg_nn_layernorm(g, "ln", h, 1e-5f);
        n->op_in[0] = h;
        n->n_op_in = 1;
        /* the residual add writes grad(h) first in backward: layer norm's must be accumulated */
        fg_id z = sp->shared ? fg_nn_add(g, "res", y, h) : y;
        fg_id o = fg_layer_linear(g, "fc", z, NCLS, 1);
        int64_t rs[2] = {6, NCLS};
        logits = fg_nn_reshape(g, "rows", o, 2, rs);
        n_labels = 6;
    } else {
        /* head-major (B, H, T, D), or token-major (B, T, H * D) */
        const int tok = sp->op == OP_ATTN_TOK, nd = tok ? 3 : 4;
        const int64_t tk = sp->shared ? ATQ : ATK, feat = tok ? AH * AD : AD;
        const int64_t qs4[4] = {AB, AH, ATQ, AD}, ks4[4] = {AB, AH, tk, AD}, qs3[3] = {AB, ATQ, feat},
                      ks3[3] = {AB, tk, feat};
        const int64_t *qs = tok ? qs3 : qs4, *ks = tok ? ks3 : ks4;
        fg_id q, k, v;
        if (sp->shared) {
            fg_id x = input_or_param(g, sp->direct, "x", nd, qs);
            q = k = v = sp->direct ? x : fg_layer_linear(g, "proj", x, feat, 1);
        } else {
            q = input_or_param(g, sp->direct, "q", nd, qs);
            k = input_or_param(g, sp->direct, "k", nd, ks);
            v = input_or_param(g, sp->direct, "v", nd, ks);
            if (!sp->direct) {
                q = fg_layer_linear(g, "pq", q, feat, 1);
                k = fg_layer_linear(g, "pk", k, feat, 1);
                v = fg_layer_linear(g, "pv", v, feat, 1);
            }
        }
        y = tok ? fg_nn_attention_tokens(g, "attn", q, k, v, AH, 0.0f, sp->causal)
                : fg_nn_attention(g, "attn", q, k, v, 0.0f, sp->causal);
        n->op_in[0] = q;
        n->op_in[1] = k;
        n->op_in[2] = v;
        n->n_op_in = 3;
        logits = fg_layer_linear(g, "fc", fg_nn_flatten(g, "flat", y), NCLS, 1);
        n_labels = AB;
    }
    labels = fg_nn_input(g, "labels", FG_I32, 1, &n_labels);
    n->loss = fg_nn_xent(g, "loss", logits, labels);
    CHECK_OK(fg_graph_status(g));
    if (fg_graph_status(g) != FG_OK) {
        fprintf(stderr, "  build error: %s\n", fg_graph_error(g));
        exit(1);
    }
    n->node = fg_graph_tinfo(g, y)->producer;
    if (sp->mark) {
        const fg_ninfo *ni = fg_graph_node(g, n->node);
        for (int i = 0; i < n->n_op_in; i++) fg_graph_mark_output(g, n->op_in[i]);
        fg_graph_mark_output(g, ni->out);
        for (int a = 0; a < ni->n_aux; a++) fg_graph_mark_output(g, ni->aux[a]);
    }
    fg_mem_policy p;
    if (sp->vmem == 2) {
        CHECK_OK(fg_policy_network_wide(&p));
    } else if (sp->vmem == 1) {
        fg_vmem_config vc = fg_vmem_config_defaults(FG_VMEM_ALL);
        CHECK_OK(fg_vmem_policy_create(&p, &vc));
        n->vm = fg_vmem_of(&p);
    } else {
        CHECK_OK(fg_policy_free_when_dead(&p));
    }
    CHECK_OK(fg_graph_build(g, n->loss, n->pool, &p));
    fg_rng r;
    fg_rng_seed(&r, sp->seed);
    fg_graph_init_params(g, &r);
    if (sp->op == OP_LN) { /* away from ones and zeros, so that weight and bias are told apart */
        fg_fill_uniform(fg_graph_tensor(g, fg_graph_find(g, "ln.weight"))->data, LC, 0.5f, 1.5f, &r);
        fg_fill_uniform(fg_graph_tensor(g, fg_graph_find(g, "ln.bias"))->data, LC, -0.5f, 0.5f, &r);
    }
    for (int i = 0; i < fg_graph_n_tensors(g); i++) {
        const fg_tinfo *ti = fg_graph_tinfo(g, i);
        if (ti->kind != FG_T_INPUT || ti->alias_of != i) continue;
        size_t numel = (size_t)fg_tensor_numel(&ti->t);
        if (ti->t.dtype == FG_I32) {
            int32_t *lab = malloc(numel * sizeof *lab);
            for (size_t j = 0; j < numel; j++) lab[j] = (int32_t)fg_rng_below(&r, NCLS);
            CHECK_OK(fg_graph_set_input(g, i, lab, numel * sizeof *lab));
            free(lab);
        } else {
            float *d = malloc(numel * sizeof *d);
            fg_fill_uniform(d, numel, -1, 1, &r);
            CHECK_OK(fg_graph_set_input(g, i, d, numel * sizeof *d));
            free(d);
        }
    }
    fg_graph_set_seed(g, 3);
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

static const char *op_label(const spec *sp) {
    static const char *names[] = {"lstm", "layernorm", "attention", "attention (token-major)"};
    return names[sp->op];
}

static float *param_grad(fg_graph *g, fg_id p) { return fg_graph_tensor(g, fg_graph_tinfo(g, p)->grad)->data; }

/* (a) every coordinate of every parameter's gradient against central differences of the loss. */
static void check_gradients(const spec *sp) {
    net n;
    build(&n, sp);
    fg_graph_zero_grad(n.g);
    CHECK_OK(fg_graph_forward(n.g));
    CHECK_OK(fg_graph_backward(n.g));
    float l0 = fg_graph_loss(n.g);
    if (!(isfinite(l0) && l0 > 0)) {
        fprintf(stderr, "  %s: loss %g is not a positive number\n", op_label(sp), l0);
        fg_test_failures++;
    }
    fg_rng r;
    fg_rng_seed(&r, 1);
    int before = fg_test_failures;
    for (int i = 0; i < fg_graph_n_params(n.g); i++) {
        fg_id p = fg_graph_param(n.g, i);
        fg_tensor *t = fg_graph_tensor(n.g, p);
        size_t numel = (size_t)fg_tensor_numel(t);
        float *grad = malloc(numel * sizeof(float));
        memcpy(grad, param_grad(n.g, p), numel * sizeof(float));
        char what[160];
        snprintf(what, sizeof what, "%s (direct %d, shared %d, causal %d, bias %d) d loss / d %s", op_label(sp), sp->direct,
                 sp->shared, sp->causal, sp->bias, t->name);
        /* all coordinates; eps 1e-2 in f32 keeps central differences within ~1e-4 for these smooth ops */
        fg_check_grad(what, t->data, grad, numel, loss_of, &n, numel, 1e-2f, 2e-2f, 2e-4f, &r);
        free(grad);
    }
    printf("  gradients %-9s direct %d shared %d causal %d bias %d: %s (%d params)\n", op_label(sp), sp->direct, sp->shared,
           sp->causal, sp->bias, fg_test_failures == before ? "ok" : "FAILED", fg_graph_n_params(n.g));
    free_net(&n);
}

static float *tdata(fg_graph *g, fg_id id) { return fg_graph_tensor(g, id)->data; }
static size_t tnumel(fg_graph *g, fg_id id) { return (size_t)fg_tensor_numel(fg_graph_tensor(g, id)); }

/* (b) the node's output (and AUX outputs) equal a direct call of the kernel, bit for bit. */
static void check_forward_exact(const spec *sp) {
    net n;
    build(&n, sp);
    CHECK_OK(fg_graph_forward(n.g));
    fg_graph *g = n.g;
    const fg_ninfo *ni = fg_graph_node(g, n.node);
    size_t ny = tnumel(g, ni->out);
    float *y = malloc(ny * sizeof(float)), *a0 = NULL, *a1 = NULL;
    char what[96];
    if (sp->op == OP_LSTM) {
        fg_lstm_desc d = {LT, LB, LI, LH};
        size_t wsb = fg_lstm_workspace_bytes(&d);
        void *ws = malloc(wsb);
        a0 = malloc(fg_lstm_saved_bytes(&d));
        CHECK(tnumel(g, ni->aux[0]) * sizeof(float) == fg_lstm_saved_bytes(&d));
        CHECK_OK(fg_lstm_forward(y, NULL, NULL, a0, tdata(g, ni->in[0]), NULL, NULL, tdata(g, ni->in[1]), tdata(g, ni->in[2]),
                                 sp->bias ? tdata(g, ni->in[3]) : NULL, sp->bias ? tdata(g, ni->in[4]) : NULL, &d, ws, wsb));
        free(ws);
        snprintf(what, sizeof what, "lstm (bias %d) saved vs fg_lstm_forward", sp->bias);
        fg_check_equal(what, tdata(g, ni->aux[0]), a0, fg_lstm_saved_bytes(&d) / sizeof(float));
    } else if (sp->op == OP_LN) {
        size_t rows = ny / LC;
        a0 = malloc(rows * sizeof(float));
        a1 = malloc(rows * sizeof(float));
        fg_layernorm_forward(y, a0, a1, tdata(g, ni->in[0]), tdata(g, ni->in[1]), tdata(g, ni->in[2]), (int64_t)rows, LC, 1e-5f);
        fg_check_equal("layernorm mean vs fg_layernorm_forward", tdata(g, ni->aux[0]), a0, rows);
        fg_check_equal("layernorm rstd vs fg_layernorm_forward", tdata(g, ni->aux[1]), a1, rows);
    } else {
        int64_t tk = sp->shared ? ATQ : ATK;
        size_t np = (size_t)(AB * AH * ATQ * tk);
        a0 = malloc(np * sizeof(float));
        if (sp->op == OP_ATTN_TOK)
            CHECK_OK(fg_attention_forward_tokens(y, a0, tdata(g, ni->in[0]), tdata(g, ni->in[1]), tdata(g, ni->in[2]), AB,
                                                 AH, AH, ATQ, tk, AD, 1.0f / sqrtf((float)AD), sp->causal));
        else
            CHECK_OK(fg_attention_forward(y, a0, tdata(g, ni->in[0]), tdata(g, ni->in[1]), tdata(g, ni->in[2]), AB, AH,
                                          ATQ, tk, AD, 1.0f / sqrtf((float)AD), sp->causal));
        snprintf(what, sizeof what, "attention (causal %d) probs vs fg_attention_forward", sp->causal);
        fg_check_equal(what, tdata(g, ni->aux[0]), a0, np);
    }
    snprintf(what, sizeof what, "%s (direct %d, causal %d, bias %d) output vs the kernel", op_label(sp), sp->direct,
             sp->causal, sp->bias);
    fg_check_equal(what, tdata(g, ni->out), y, ny);
    free(y);
    free(a0);
    free(a1);
    free_net(&n);
}

/* (c) builder errors: sticky, FG_ERR_SHAPE / FG_ERR_INVALID, the message names the op, the node
 * and the shapes. */
typedef enum { E_ATTN_RANK, E_ATTN_D, E_ATTN_TK, E_ATTN_B, E_LSTM_RANK, E_LSTM_H0, E_LSTM_HNEG, E_LSTM_NONAME,
               E_LN_DTYPE, E_LN_EPS, E_LN_NONAME, E_COUNT } err_case;

static void check_one_error(err_case c) {
    fg_graph *g;
    CHECK_OK(fg_graph_create(&g, "bad"));
    int64_t q4[4] = {2, 2, 5, 3}, q3[3] = {2, 5, 3}, kd[4] = {2, 2, 4, 2}, k4[4] = {2, 2, 4, 3}, v3[4] = {2, 2, 3, 3},
            kb[4] = {3, 2, 4, 3}, x3[3] = {4, 3, 5}, x2[2] = {12, 5};
    fg_id r = FG_NONE;
    fg_status want = FG_ERR_SHAPE;
    const char *need[3] = {NULL, NULL, NULL};
    switch (c) {
    case E_ATTN_RANK:
        r = fg_nn_attention(g, "att1", fg_nn_input(g, "q", FG_F32, 3, q3), fg_nn_input(g, "k", FG_F32, 4, k4),
                            fg_nn_input(g, "v", FG_F32, 4, k4), 0, 0);
        need[0] = "attention 'att1'", need[1] = "[2, 5, 3]", need[2] = "4-D";
        break;
    case E_ATTN_D:
        r = fg_nn_attention(g, "att2", fg_nn_input(g, "q", FG_F32, 4, q4), fg_nn_input(g, "k", FG_F32, 4, kd),
                            fg_nn_input(g, "v", FG_F32, 4, kd), 0, 0);
        need[0] = "attention 'att2'", need[1] = "[2, 2, 4, 2]", need[2] = "[2, 2, 5, 3]";
        break;
    case E_ATTN_TK:
        r = fg_nn_attention(g, "att3", fg_nn_input(g, "q", FG_F32, 4, q4), fg_nn_input(g, "k", FG_F32, 4, k4),
                            fg_nn_input(g, "v", FG_F32, 4, v3), 0, 1);
        need[0] = "attention 'att3'", need[1] = "[2, 2, 3, 3]", need[2] = "[2, 2, 4, 3]";
        break;
    case E_ATTN_B:
        r = fg_nn_attention(g, "att4", fg_nn_input(g, "q", FG_F32, 4, q4), fg_nn_input(g, "k", FG_F32, 4, kb),
                            fg_nn_input(g, "v", FG_F32, 4, kb), 0, 0);
        need[0] = "attention 'att4'", need[1] = "[3, 2, 4, 3]", need[2] = "[2, 2, 5, 3]";
        break;
    case E_LSTM_RANK:
        r = fg_nn_lstm(g, "rnn", fg_nn_input(g, "x", FG_F32, 2, x2), 6, 1);
        need[0] = "lstm 'rnn'", need[1] = "[12, 5]", need[2] = "(T,B,I)";
        break;
    case E_LSTM_H0:
        r = fg_nn_lstm(g, "rnn", fg_nn_input(g, "x", FG_F32, 3, x3), 0, 1);
        need[0] = "lstm 'rnn'", need[1] = "hidden = 0", need[2] = "[4, 3, 5]";
        break;
    case E_LSTM_HNEG:
        r = fg_nn_lstm(g, "rnn", fg_nn_input(g, "x", FG_F32, 3, x3), -2, 0);
        need[0] = "lstm 'rnn'", need[1] = "hidden = -2";
        break;
    case E_LSTM_NONAME:
        r = fg_nn_lstm(g, NULL, fg_nn_input(g, "x", FG_F32, 3, x3), 6, 1);
        want = FG_ERR_INVALID;
        need[0] = "lstm", need[1] = "name";
        break;
    case E_LN_DTYPE:
        r = fg_nn_layernorm(g, "norm", fg_nn_input(g, "x", FG_I32, 2, x2), 1e-5f);
        need[0] = "layernorm 'norm'", need[1] = "[12, 5]", need[2] = "f32";
        break;
    case E_LN_EPS:
        r = fg_nn_layernorm(g, "norm", fg_nn_input(g, "x", FG_F32, 2, x2), -1.0f);
        want = FG_ERR_INVALID;
        need[0] = "layernorm 'norm'", need[1] = "eps";
        break;
    case E_LN_NONAME:
        r = fg_nn_layernorm(g, "", fg_nn_input(g, "x", FG_F32, 2, x2), 1e-5f);
        want = FG_ERR_INVALID;
        need[0] = "layernorm", need[1] = "name";
        break;
    default: break;
    }
    const char *e = fg_graph_error(g);
    int ok = r == FG_NONE && fg_graph_status(g) == want;
    for (int k = 0; k < 3; k++)
        if (need[k] && !strstr(e, need[k])) ok = 0;
    /* sticky: a later valid call fails and keeps the first message */
    int64_t one = 4;
    fg_id later = fg_nn_relu(g, "later", fg_nn_input(g, "ok", FG_F32, 1, &one));
    if (later != FG_NONE || (need[0] && !strstr(fg_graph_error(g), need[0]))) ok = 0;
    if (!ok) {
        fprintf(stderr, "  error case %d: returned %d, status %s (want %s), message \"%s\", expected it to contain \"%s\" \"%s\" \"%s\"\n",
                (int)c, (int)r, fg_status_name(fg_graph_status(g)), fg_status_name(want), e, need[0] ? need[0] : "",
                need[1] ? need[1] : "", need[2] ? need[2] : "");
        fg_test_failures++;
    }
    fg_graph_free(g);
}

static void test_shape_errors(void) {
    int before = fg_test_failures;
    for (int c = 0; c < E_COUNT; c++) check_one_error((err_case)c);
    printf("  builder errors (%d cases): %s\n", (int)E_COUNT, fg_test_failures == before ? "ok" : "FAILED");
}

/* The LSTM's parameters: torch.nn.LSTM's names and shapes, PyTorch's initialization bound. */
static void test_lstm_params(void) {
    spec sp = {OP_LSTM, 1, 0, 0, 1, 0, 0, 5};
    net n;
    build(&n, &sp);
    static const char *names[4] = {"lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0", "lstm.bias_hh_l0"};
    const int64_t rows[4] = {4 * LH, 4 * LH, 4 * LH, 4 * LH}, cols[4] = {LI, LH, 0, 0};
    const float bound = 1.0f / sqrtf((float)LH);
    for (int k = 0; k < 4; k++) {
        fg_id p = fg_graph_find(n.g, names[k]);
        if (p == FG_NONE) {
            fprintf(stderr, "  lstm params: '%s' not found\n", names[k]);
            fg_test_failures++;
            continue;
        }
        const fg_tensor *t = fg_graph_tensor(n.g, p);
        int shape_ok = t->ndim == (cols[k] ? 2 : 1) && t->shape[0] == rows[k] && (!cols[k] || t->shape[1] == cols[k]);
        if (!shape_ok || fg_graph_tinfo(n.g, p)->kind != FG_T_PARAM) {
            fprintf(stderr, "  lstm params: '%s' has the wrong shape or kind\n", names[k]);
            fg_test_failures++;
        }
        float mx = 0;
        const float *d = t->data;
        for (int64_t j = 0; j < fg_tensor_numel(t); j++) mx = fmaxf(mx, fabsf(d[j]));
        if (!(mx <= bound && mx > 0.5f * bound)) {
            fprintf(stderr, "  lstm params: '%s' max |w| = %g, expected in (%g, %g]\n", names[k], mx, 0.5f * bound, bound);
            fg_test_failures++;
        }
    }
    /* no bias: two parameters only */
    net nb;
    spec sb = sp;
    sb.bias = 0;
    build(&nb, &sb);
    CHECK(fg_graph_find(nb.g, "lstm.bias_ih_l0") == FG_NONE && fg_graph_find(nb.g, "lstm.weight_hh_l0") != FG_NONE);
    CHECK(fg_graph_node(nb.g, nb.node)->n_in == 3);
    CHECK(fg_graph_node(n.g, n.node)->n_save == 5 && fg_graph_node(n.g, n.node)->n_aux == 1);
    CHECK(!fg_graph_node_recomputable(n.g, n.node));
    free_net(&nb);
    free_net(&n);
}

/* (d) save the LSTM graph's params as safetensors; the file holds torch.nn.LSTM's names; a graph
 * initialized from another seed loads them back bit for bit and gives the same loss. */
static void test_checkpoint(void) {
    int before = fg_test_failures;
    spec sp = {OP_LSTM, 0, 0, 0, 1, 0, 0, 21};
    net a, b;
    build(&a, &sp);
    sp.seed = 22;
    build(&b, &sp);
    char path[256];
    snprintf(path, sizeof path, "/tmp/fg_test_graph_seq_%ld.safetensors", (long)getpid());
    CHECK_OK(fg_graph_save(a.g, NULL, path, 0, NULL, NULL));
    fg_st_file *f = NULL;
    CHECK_OK(fg_st_load(path, &f));
    if (f) {
        static const char *names[4] = {"lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0", "lstm.bias_hh_l0"};
        const int64_t d0[4] = {4 * LH, 4 * LH, 4 * LH, 4 * LH}, d1[4] = {LI, LH, -1, -1};
        for (int k = 0; k < 4; k++) {
            const fg_st_entry *e = fg_st_find(f, names[k]);
            if (!e || e->dtype != FG_ST_F32 || e->shape[0] != d0[k] || (d1[k] > 0 ? e->ndim != 2 || e->shape[1] != d1[k] : e->ndim != 1)) {
                fprintf(stderr, "  checkpoint: '%s' %s\n", names[k], e ? "has the wrong dtype or shape" : "is missing");
                fg_test_failures++;
            }
        }
        fg_st_free(f);
    }
    CHECK_OK(fg_graph_load(b.g, NULL, path));
    unlink(path);
    for (int i = 0; i < fg_graph_n_params(a.g); i++) {
        fg_id pa = fg_graph_param(a.g, i), pb = fg_graph_find(b.g, fg_graph_tensor(a.g, pa)->name);
        CHECK(pb != FG_NONE);
        if (pb != FG_NONE) fg_check_equal(fg_graph_tensor(a.g, pa)->name, tdata(b.g, pb), tdata(a.g, pa), tnumel(a.g, pa));
    }
    /* the same data in both (inputs came from each graph's own seed) */
    for (int i = 0; i < fg_graph_n_tensors(a.g); i++) {
        const fg_tinfo *ti = fg_graph_tinfo(a.g, i);
        if (ti->kind == FG_T_INPUT && ti->alias_of == i)
            CHECK_OK(fg_graph_set_input(b.g, fg_graph_find(b.g, ti->t.name), ti->t.data, ti->bytes));
    }
    CHECK_OK(fg_graph_forward(a.g));
    CHECK_OK(fg_graph_forward(b.g));
    float la = fg_graph_loss(a.g), lb = fg_graph_loss(b.g);
    fg_check_equal("loss after load", &lb, &la, 1);
    printf("  lstm checkpoint round trip: %s\n", fg_test_failures == before ? "ok" : "FAILED");
    free_net(&a);
    free_net(&b);
}

/* (e) vmem `all` (every saved tensor offloaded to the host tier and prefetched back) and the
 * network-wide baseline (one shared workspace, larger than the op's) give the losses and parameter
 * gradients of free-when-dead bit for bit, over two iterations with an SGD step between. */
static void check_vmem_identical(const spec *sp_in) {
    static const char *pname[3] = {"free-when-dead", "vmem all", "network-wide"};
    int before = fg_test_failures;
    spec sp = *sp_in;
    net nets[3];
    fg_optim *opt[3];
    fg_optim_cfg oc = fg_optim_defaults(FG_OPTIM_SGD, 0.1f);
    for (int k = 0; k < 3; k++) {
        sp.vmem = k;
        build(&nets[k], &sp);
        CHECK_OK(fg_optim_create(&opt[k], nets[k].g, &oc));
    }
    net *a = &nets[0], *b = &nets[1];
    for (int it = 0; it < 2; it++) {
        for (int k = 0; k < 3; k++) {
            fg_graph_zero_grad(nets[k].g);
            CHECK_OK(fg_graph_forward(nets[k].g));
            CHECK_OK(fg_graph_backward(nets[k].g));
        }
        char what[192];
        for (int k = 1; k < 3; k++) {
            fg_graph *gk = nets[k].g;
            float la = fg_graph_loss(a->g), lk = fg_graph_loss(gk);
            snprintf(what, sizeof what, "%s %s vs free-when-dead, iteration %d: loss", op_label(&sp), pname[k], it);
            fg_check_equal(what, &lk, &la, 1);
            for (int i = 0; i < fg_graph_n_params(a->g); i++) {
                fg_id pa = fg_graph_param(a->g, i), pk = fg_graph_param(gk, i);
                snprintf(what, sizeof what, "%s %s vs free-when-dead, iteration %d: grad of %s", op_label(&sp), pname[k],
                         it, fg_graph_tensor(a->g, pa)->name);
                fg_check_equal(what, param_grad(gk, pk), param_grad(a->g, pa), tnumel(a->g, pa));
            }
        }
        for (int k = 0; k < 3; k++) CHECK_OK(fg_optim_step(opt[k]));
    }
    /* the policy did move the op's saved tensors: its AUX output and its data inputs */
    const fg_ninfo *ni = fg_graph_node(b->g, b->node);
    fg_vmem_stats st;
    fg_vmem_get_stats(b->vm, &st);
    int moved = st.link.bytes_offloaded > 0 && st.link.bytes_prefetched > 0 && fg_vmem_is_offloaded(b->vm, ni->aux[0]);
    for (int k = 0; k < b->n_op_in; k++) {
        const fg_tinfo *ti = fg_graph_tinfo(b->g, b->op_in[k]);
        if (ti->kind == FG_T_ACT && !fg_vmem_is_offloaded(b->vm, ti->alias_of)) moved = 0;
    }
    if (!moved) {
        fprintf(stderr, "  %s under vmem all: %llu bytes offloaded, %llu prefetched, %d tensors; the op's AUX or inputs were not offloaded\n",
                op_label(&sp), (unsigned long long)st.link.bytes_offloaded, (unsigned long long)st.link.bytes_prefetched,
                st.n_offload_tensors);
        fg_test_failures++;
    }
    for (int k = 0; k < 3; k++) {
        fg_optim_free(opt[k]);
        free_net(&nets[k]);
    }
    printf("  vmem all = network-wide = free-when-dead, %-9s (shared %d, causal %d): %s\n", op_label(&sp), sp.shared,
           sp.causal, fg_test_failures == before ? "ok" : "FAILED");
}

int main(void) {
    fg_threads_set(2);
    /* (a) gradients: op inputs as parameters (full check of the written input gradients), and fed
     * from projections / shared between consumers (activation gradients written and accumulated) */
    const spec grads[] = {
        {OP_LSTM, 1, 0, 0, 1, 0, 0, 7}, {OP_LSTM, 1, 0, 0, 0, 0, 0, 8}, {OP_LSTM, 0, 0, 0, 1, 0, 0, 9},
        {OP_LN, 1, 0, 0, 0, 0, 0, 10},  {OP_LN, 0, 0, 0, 0, 0, 0, 11},  {OP_LN, 0, 1, 0, 0, 0, 0, 12},
        {OP_ATTN, 1, 0, 0, 0, 0, 0, 13}, {OP_ATTN, 1, 0, 1, 0, 0, 0, 14}, {OP_ATTN, 0, 0, 1, 0, 0, 0, 15},
        {OP_ATTN, 0, 1, 1, 0, 0, 0, 16}, {OP_ATTN, 1, 1, 0, 0, 0, 0, 17},
        {OP_ATTN_TOK, 1, 0, 0, 0, 0, 0, 18}, {OP_ATTN_TOK, 1, 0, 1, 0, 0, 0, 19}, {OP_ATTN_TOK, 0, 0, 1, 0, 0, 0, 20},
        {OP_ATTN_TOK, 0, 1, 0, 0, 0, 0, 21},
    };
    for (size_t i = 0; i < sizeof grads / sizeof *grads; i++) check_gradients(&grads[i]);
    /* (b) forward bit for bit against the kernels */
    const spec fwd[] = {
        {OP_LSTM, 1, 0, 0, 1, 0, 1, 30}, {OP_LSTM, 0, 0, 0, 0, 0, 1, 31}, {OP_LN, 0, 1, 0, 0, 0, 1, 32},
        {OP_ATTN, 0, 0, 0, 0, 0, 1, 33}, {OP_ATTN, 0, 0, 1, 0, 0, 1, 34}, {OP_ATTN, 1, 1, 1, 0, 0, 1, 35},
        {OP_ATTN_TOK, 0, 0, 0, 0, 0, 1, 36}, {OP_ATTN_TOK, 1, 0, 1, 0, 0, 1, 37},
    };
    int before = fg_test_failures;
    for (size_t i = 0; i < sizeof fwd / sizeof *fwd; i++) check_forward_exact(&fwd[i]);
    printf("  forward = kernel, bit for bit (%zu graphs): %s\n", sizeof fwd / sizeof *fwd, fg_test_failures == before ? "ok" : "FAILED");
    /* (c) */
    test_shape_errors();
    test_lstm_params();
    /* (d) */
    test_checkpoint();
    /* (e) */
    const spec vm[] = {{OP_LSTM, 0, 0, 0, 1, 0, 0, 40}, {OP_LN, 0, 1, 0, 0, 0, 0, 41}, {OP_ATTN, 0, 0, 1, 0, 0, 0, 42},
                       {OP_ATTN, 0, 1, 0, 0, 0, 0, 43}, {OP_ATTN_TOK, 0, 0, 1, 0, 0, 0, 44}};
    for (size_t i = 0; i < sizeof vm / sizeof *vm; i++) check_vmem_identical(&vm[i]);
    return fg_test_finish("test_graph_seq");
}
