/* The graph builder and build step: tensors and nodes are appended in topological order by the
 * fg_nn_* calls (each returns a handle; the first shape error is sticky); fg_graph_build then
 * derives requires_grad, gradient tensors, what each op saves for backward, which gradients must
 * be accumulated, liveness on the 2N-step timeline and workspace sizes, allocates the persistent
 * tensors and hands the graph to the memory policy. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "frugal/ops_tome.h"
#include "graph/graph_impl.h"

static const char *op_names[FG_OP_COUNT] = {"conv2d", "linear",  "matmul",  "relu",      "gelu",
                                            "tanh",   "sigmoid", "softmax", "xent",      "dropout",
                                            "add",    "concat",  "maxpool", "avgpool",   "global_avgpool",
                                            "lrn",    "batchnorm", "lstm",    "layernorm", "attention",
                                            "embedding", "resize_bilinear", "permute", "repeat", "slice",
                                            "tome", "tome_attention"};

const char *fg_op_name(fg_op op) { return (op >= 0 && op < FG_OP_COUNT) ? op_names[op] : "?"; }

/* The policies (their `self`) that live graphs own: one fg_mem_policy value given to two graphs
 * would be planned for both and destroyed twice, so the second build is refused. A short list
 * under a lock; builds and frees are rare. */
static pthread_mutex_t owned_mu = PTHREAD_MUTEX_INITIALIZER;
static struct owned_policy {
    const void *self;
    const fg_graph *g;
} *owned;
static size_t n_owned, cap_owned;

/* The graph that owns self, or NULL; with add, records g as its owner (FG_ERR_OOM if it cannot). */
static const fg_graph *owned_find_or_add(const void *self, const fg_graph *g, int add, fg_status *st) {
    *st = FG_OK;
    pthread_mutex_lock(&owned_mu);
    const fg_graph *owner = NULL;
    for (size_t i = 0; i < n_owned && !owner; i++)
        if (owned[i].self == self) owner = owned[i].g;
    if (!owner && add) {
        if (n_owned == cap_owned) {
            size_t cap = cap_owned ? 2 * cap_owned : 16;
            struct owned_policy *o = realloc(owned, cap * sizeof *o);
            if (o) owned = o, cap_owned = cap;
        }
        if (n_owned < cap_owned) owned[n_owned++] = (struct owned_policy){self, g};
        else *st = FG_ERR_OOM;
    }
    pthread_mutex_unlock(&owned_mu);
    return owner;
}

static void owned_remove(const void *self) {
    pthread_mutex_lock(&owned_mu);
    for (size_t i = 0; i < n_owned; i++)
        if (owned[i].self == self) {
            owned[i] = owned[--n_owned];
            break;
        }
    pthread_mutex_unlock(&owned_mu);
}

fg_status fg_graph_create(fg_graph **out, const char *name) {
    fg_graph *g = calloc(1, sizeof *g);
    if (!g) return fg_fail(FG_ERR_OOM, "graph: out of host memory");
    snprintf(g->name, sizeof g->name, "%s", name ? name : "graph");
    g->loss = FG_NONE;
    g->training = 1;
    g->fwd_training = 1;
    if (pthread_rwlock_init(&g->wlock, NULL) != 0) {
        free(g);
        return fg_fail(FG_ERR_OOM, "graph: cannot create the weights lock");
    }
    *out = g;
    return FG_OK;
}

void fg_graph_free(fg_graph *g) {
    if (!g) return;
    FG_ASSERT_MSG(atomic_load(&g->n_sharers) == 0, "graph freed while other graphs read its weights");
    if (g->owner) atomic_fetch_sub(&g->owner->n_sharers, 1);
    if (g->has_policy && g->policy.self) owned_remove(g->policy.self);
    if (g->has_policy && g->policy.destroy) g->policy.destroy(g->policy.self);
    if (g->pool)
        for (int i = 0; i < g->nt; i++)
            if (g->t[i].storage && !g->t[i].borrowed) fg_pool_free(g->pool, g->t[i].storage);
    for (int i = 0; i < g->nt; i++)
        if (g->t[i].home) munmap(g->t[i].home, g->t[i].info.bytes ? g->t[i].info.bytes : 1);
    pthread_rwlock_destroy(&g->wlock);
    free(g->t);
    free(g->nodes);
    free(g->params);
    free(g->states);
    free(g);
}

const char *fg_graph_name(const fg_graph *g) { return g->name; }
fg_status fg_graph_status(const fg_graph *g) { return g->status; }
const char *fg_graph_error(const fg_graph *g) { return g->error; }

/* Records the first error; later ones are ignored (their cause is usually the first). */
static fg_id gfail(fg_graph *g, fg_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static fg_id gfail(fg_graph *g, fg_status s, const char *fmt, ...) {
    if (g->status == FG_OK) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->error, sizeof g->error, fmt, ap);
        va_end(ap);
        g->status = s;
    }
    return FG_NONE;
}

fg_tslot *fg_graph_slot(fg_graph *g, fg_id id) {
    FG_ASSERT(id >= 0 && id < g->nt);
    return &g->t[id];
}
fg_node *fg_graph_nodep(fg_graph *g, int i) {
    FG_ASSERT(i >= 0 && i < g->nn);
    return &g->nodes[i];
}

static void *grow(void *p, int *cap, int need, size_t elem) {
    if (need <= *cap) return p;
    int nc = *cap ? *cap * 2 : 64;
    while (nc < need) nc *= 2;
    void *q = realloc(p, (size_t)nc * elem);
    FG_ASSERT_MSG(q, "out of host memory growing the graph");
    *cap = nc;
    return q;
}

static fg_id new_tensor(fg_graph *g, fg_tkind kind, const char *name, fg_dtype dtype, int ndim, const int64_t *shape_in) {
    /* shape_in and name may point into g->t (another tensor's view), which grow() may move */
    int64_t shape[FG_MAX_DIMS];
    char nm[FG_NAME_MAX];
    FG_ASSERT(ndim >= 0 && ndim <= FG_MAX_DIMS);
    memcpy(shape, shape_in, sizeof(int64_t) * (size_t)ndim);
    snprintf(nm, sizeof nm, "%s", name ? name : "");
    name = nm;
    /* a shape whose bytes (channel-padded to 16 for a blocked layout) would not fit in 2^62 is
     * refused here, where every tensor is made, and kept as all ones so that nothing after the
     * (sticky) failure overflows computing with it */
    int64_t elems = 16 * (int64_t)sizeof(float), big = 0;
    for (int k = 0; k < ndim; k++)
        if (shape[k] < 0 || __builtin_mul_overflow(elems, shape[k], &elems) || elems > ((int64_t)1 << 62)) big = 1;
    if (big) {
        char sh[96];
        gfail(g, FG_ERR_SHAPE, "tensor '%s': shape %s is too large (more than 2^62 bytes, or a negative dim)", name,
              fg_shape_str(sh, sizeof sh, ndim, shape));
        for (int k = 0; k < ndim; k++) shape[k] = 1;
    }
    g->t = grow(g->t, &g->cap_t, g->nt + 1, sizeof *g->t);
    fg_id id = g->nt++;
    fg_tslot *s = &g->t[id];
    memset(s, 0, sizeof *s);
    s->info.kind = kind;
    s->info.t = fg_tensor_make(name, dtype, ndim, shape, NULL);
    s->info.bytes = fg_tensor_bytes(&s->info.t);
    s->info.alias_of = id;
    s->info.grad = FG_NONE;
    s->info.grad_of = FG_NONE;
    s->info.producer = -1;
    s->info.first_use = s->info.last_use = -1;
    s->next_alias = FG_NONE;
    return id;
}

/* Validates that id is a live handle; a FG_NONE from an earlier failed call propagates silently. */
static int ok_id(fg_graph *g, fg_id id, const char *op, const char *name) {
    if (g->status != FG_OK) return 0;
    if (g->built) {
        gfail(g, FG_ERR_INVALID, "%s '%s': graph '%s' is already built", op, name, g->name);
        return 0;
    }
    if (id < 0 || id >= g->nt) {
        gfail(g, FG_ERR_INVALID, "%s '%s': invalid tensor handle %d", op, name, (int)id);
        return 0;
    }
    return 1;
}

static const fg_tensor *T(fg_graph *g, fg_id id) { return &g->t[id].info.t; }

/* ok_id, and the tensor holds f32 (what every arithmetic op reads; an integer or byte tensor
 * there would be read as floats, past its end for u8). */
static int ok_f32(fg_graph *g, fg_id id, const char *op, const char *name) {
    if (!ok_id(g, id, op, name)) return 0;
    if (T(g, id)->dtype == FG_F32) return 1;
    gfail(g, FG_ERR_SHAPE, "%s '%s': input '%s' is %s, expected f32", op, name, T(g, id)->name,
          fg_dtype_name(T(g, id)->dtype));
    return 0;
}

static char *shp(char *buf, size_t cap, fg_graph *g, fg_id id) {
    return fg_shape_str(buf, cap, T(g, id)->ndim, T(g, id)->shape);
}

static const char *autoname(fg_graph *g, const char *name, fg_op op, char *buf, size_t cap) {
    if (name && *name) return name;
    snprintf(buf, cap, "%s_%d", fg_op_name(op), g->nn);
    return buf;
}

/* Appends a node with one output of the given shape; returns the node index or -1. */
static int new_node(fg_graph *g, fg_op op, const char *name, const fg_id *in, int n_in, int ndim, const int64_t *shape,
                    fg_dtype dtype) {
    g->nodes = grow(g->nodes, &g->cap_n, g->nn + 1, sizeof *g->nodes);
    int i = g->nn++;
    fg_node *n = &g->nodes[i];
    memset(n, 0, sizeof *n);
    n->info.op = op;
    snprintf(n->info.name, sizeof n->info.name, "%s", name);
    FG_ASSERT(n_in <= FG_NODE_MAX_IN);
    n->info.n_in = n_in;
    for (int k = 0; k < n_in; k++) n->info.in[k] = in[k];
    n->info.algo = FG_CONV_DNNL;
    n->info.out = new_tensor(g, FG_T_ACT, name, dtype, ndim, shape);
    g->t[n->info.out].info.producer = i;
    return i;
}

static fg_id add_aux_typed(fg_graph *g, int node, const char *suffix, fg_dtype dtype, int ndim, const int64_t *shape) {
    fg_node *n = &g->nodes[node];
    char nm[FG_NAME_MAX];
    snprintf(nm, sizeof nm, "%.40s.%s", n->info.name, suffix);
    fg_id id = new_tensor(g, FG_T_AUX, nm, dtype, ndim, shape);
    g->t[id].info.producer = node;
    n = &g->nodes[node];
    FG_ASSERT(n->info.n_aux < FG_NODE_MAX_AUX);
    n->info.aux[n->info.n_aux++] = id;
    return id;
}

static fg_id add_aux(fg_graph *g, int node, const char *suffix, int ndim, const int64_t *shape) {
    return add_aux_typed(g, node, suffix, FG_F32, ndim, shape);
}

/* The checks every leaf (input, parameter) passes: the graph not built, a name. */
static int ok_leaf(fg_graph *g, const char *what, const char *name) {
    if (g->status != FG_OK) return 0;
    if (g->built) {
        gfail(g, FG_ERR_INVALID, "%s '%s': graph '%s' is already built (add every tensor before fg_graph_build)", what,
              name ? name : "", g->name);
        return 0;
    }
    if (!name || !*name) {
        gfail(g, FG_ERR_INVALID, "%s: a name is required (it is how the tensor is found, fed and saved)", what);
        return 0;
    }
    return 1;
}

fg_id fg_nn_input(fg_graph *g, const char *name, fg_dtype dtype, int ndim, const int64_t *shape) {
    if (!ok_leaf(g, "input", name)) return FG_NONE;
    if (dtype != FG_F32 && dtype != FG_I32 && dtype != FG_U8)
        return gfail(g, FG_ERR_INVALID, "input '%s': dtype %d, expected FG_F32, FG_I32 or FG_U8", name, (int)dtype);
    if (!shape) return gfail(g, FG_ERR_SHAPE, "input '%s': no shape", name);
    if (ndim < 1 || ndim > FG_MAX_DIMS) return gfail(g, FG_ERR_SHAPE, "input '%s': %d dims, expected 1..%d", name, ndim, FG_MAX_DIMS);
    for (int i = 0; i < ndim; i++)
        if (shape[i] <= 0) return gfail(g, FG_ERR_SHAPE, "input '%s': dim %d is %lld, expected > 0", name, i, (long long)shape[i]);
    return new_tensor(g, FG_T_INPUT, name, dtype, ndim, shape);
}

fg_id fg_nn_param(fg_graph *g, const char *name, int ndim, const int64_t *shape, fg_init init, float init_arg) {
    if (!ok_leaf(g, "param", name)) return FG_NONE;
    if (!shape) return gfail(g, FG_ERR_SHAPE, "param '%s': no shape", name);
    if (ndim < 1 || ndim > FG_MAX_DIMS) return gfail(g, FG_ERR_SHAPE, "param '%s': %d dims, expected 1..%d", name, ndim, FG_MAX_DIMS);
    for (int i = 0; i < ndim; i++)
        if (shape[i] <= 0) return gfail(g, FG_ERR_SHAPE, "param '%s': dim %d is %lld, expected > 0", name, i, (long long)shape[i]);
    if (fg_graph_find(g, name) != FG_NONE) return gfail(g, FG_ERR_INVALID, "param '%s': name already used", name);
    fg_id id = new_tensor(g, FG_T_PARAM, name, FG_F32, ndim, shape);
    g->t[id].init = init;
    g->t[id].init_arg = init_arg;
    g->t[id].info.requires_grad = 1;
    g->params = grow(g->params, &g->cap_p, g->np + 1, sizeof *g->params);
    g->params[g->np++] = id;
    return id;
}

static fg_id new_state(fg_graph *g, const char *name, int64_t c, fg_init init) {
    fg_id id = new_tensor(g, FG_T_STATE, name, FG_F32, 1, &c);
    g->t[id].init = init;
    g->states = grow(g->states, &g->cap_s, g->ns + 1, sizeof *g->states);
    g->states[g->ns++] = id;
    return id;
}

fg_id fg_nn_conv2d(fg_graph *g, const char *name, fg_id x, fg_id w, fg_id b, fg_conv_opts o) {
    char nb[FG_NAME_MAX], s1[96], s2[96];
    name = autoname(g, name, FG_OP_CONV2D, nb, sizeof nb);
    if (!ok_f32(g, x, "conv2d", name) || !ok_f32(g, w, "conv2d", name)) return FG_NONE;
    if (b != FG_NONE && !ok_f32(g, b, "conv2d", name)) return FG_NONE;
    const fg_tensor *tx = T(g, x), *tw = T(g, w);
    if (tx->ndim != 4 || tw->ndim != 4)
        return gfail(g, FG_ERR_SHAPE, "conv2d '%s': input %s and weight %s must both be 4-D (N,C,H,W) and (OC,C/groups,KH,KW)",
                     name, shp(s1, sizeof s1, g, x), shp(s2, sizeof s2, g, w));
    fg_conv2d_desc d = {tx->shape[0], tx->shape[1], tx->shape[2], tx->shape[3], tw->shape[0], tw->shape[2], tw->shape[3],
                        o.stride ? o.stride : 1, o.stride ? o.stride : 1, o.pad, o.pad, o.dilation ? o.dilation : 1,
                        o.dilation ? o.dilation : 1, o.groups ? o.groups : 1};
    if (d.groups <= 0 || d.c % d.groups || tw->shape[1] * d.groups != d.c)
        return gfail(g, FG_ERR_SHAPE, "conv2d '%s': input %s has %lld channels but weight %s with groups=%lld expects %lld",
                     name, shp(s1, sizeof s1, g, x), (long long)d.c, shp(s2, sizeof s2, g, w), (long long)d.groups,
                     (long long)(tw->shape[1] * d.groups));
    if (fg_conv2d_check(&d) != FG_OK)
        return gfail(g, FG_ERR_SHAPE, "conv2d '%s': input %s, weight %s: %s", name, shp(s1, sizeof s1, g, x),
                     shp(s2, sizeof s2, g, w), fg_last_error());
    if (b != FG_NONE && (T(g, b)->ndim != 1 || T(g, b)->shape[0] != d.oc))
        return gfail(g, FG_ERR_SHAPE, "conv2d '%s': bias %s, expected [%lld]", name, shp(s1, sizeof s1, g, b), (long long)d.oc);
    int64_t shape[4] = {d.n, d.oc, fg_conv2d_out_h(&d), fg_conv2d_out_w(&d)};
    fg_id in[3] = {x, w, b};
    int i = new_node(g, FG_OP_CONV2D, name, in, b != FG_NONE ? 3 : 2, 4, shape, FG_F32);
    g->nodes[i].p.conv = d;
    g->nodes[i].has_bias = b != FG_NONE;
    g->nodes[i].info.flops = fg_conv2d_flops(&d);
    return g->nodes[i].info.out;
}

static fg_id linear_node(fg_graph *g, const char *name, fg_id x, fg_id w, fg_id b, int gelu, int dnnl) {
    char nb[FG_NAME_MAX], s1[96], s2[96];
    name = autoname(g, name, FG_OP_LINEAR, nb, sizeof nb);
    if (!ok_f32(g, x, "linear", name) || !ok_f32(g, w, "linear", name)) return FG_NONE;
    if (b != FG_NONE && !ok_f32(g, b, "linear", name)) return FG_NONE;
    const fg_tensor *tx = T(g, x), *tw = T(g, w);
    int64_t ic = tx->shape[tx->ndim - 1];
    if (tw->ndim != 2 || tw->shape[1] != ic)
        return gfail(g, FG_ERR_SHAPE, "linear '%s': input %s has %lld features but weight %s expects (OC, %lld)", name,
                     shp(s1, sizeof s1, g, x), (long long)ic, shp(s2, sizeof s2, g, w),
                     (long long)(tw->ndim == 2 ? tw->shape[1] : -1));
    int64_t oc = tw->shape[0];
    if (b != FG_NONE && (T(g, b)->ndim != 1 || T(g, b)->shape[0] != oc))
        return gfail(g, FG_ERR_SHAPE, "linear '%s': bias %s, expected [%lld]", name, shp(s1, sizeof s1, g, b), (long long)oc);
    int64_t shape[FG_MAX_DIMS];
    for (int k = 0; k < tx->ndim; k++) shape[k] = tx->shape[k];
    shape[tx->ndim - 1] = oc;
    int64_t B = fg_tensor_numel(tx) / ic;
    fg_id in[3] = {x, w, b};
    int i = new_node(g, FG_OP_LINEAR, name, in, b != FG_NONE ? 3 : 2, tx->ndim, shape, FG_F32);
    g->nodes[i].p.lin.B = B;
    g->nodes[i].p.lin.IC = ic;
    g->nodes[i].p.lin.OC = oc;
    g->nodes[i].p.lin.gelu = gelu;
    g->nodes[i].p.lin.dnnl = dnnl || gelu;
    g->nodes[i].has_bias = b != FG_NONE;
    /* with GELU: the linear's FLOPs plus GELU's one per element, as the two nodes would count */
    g->nodes[i].info.flops = fg_linear_flops(B, ic, oc) + (gelu ? (double)(B * oc) : 0.0);
    return g->nodes[i].info.out;
}

fg_id fg_nn_linear(fg_graph *g, const char *name, fg_id x, fg_id w, fg_id b) {
    return linear_node(g, name, x, w, b, 0, 0);
}
fg_id fg_nn_linear_dnnl(fg_graph *g, const char *name, fg_id x, fg_id w, fg_id b) {
    return linear_node(g, name, x, w, b, 0, 1);
}
fg_id fg_nn_linear_gelu(fg_graph *g, const char *name, fg_id x, fg_id w, fg_id b) {
    return linear_node(g, name, x, w, b, 1, 1);
}

fg_id fg_nn_matmul(fg_graph *g, const char *name, fg_id a, fg_id b, int trans_a, int trans_b) {
    char nb[FG_NAME_MAX], s1[96], s2[96];
    name = autoname(g, name, FG_OP_MATMUL, nb, sizeof nb);
    if (!ok_f32(g, a, "matmul", name) || !ok_f32(g, b, "matmul", name)) return FG_NONE;
    const fg_tensor *ta = T(g, a), *tb = T(g, b);
    if (ta->ndim < 2 || ta->ndim != tb->ndim)
        return gfail(g, FG_ERR_SHAPE, "matmul '%s': a %s and b %s must have the same rank >= 2", name,
                     shp(s1, sizeof s1, g, a), shp(s2, sizeof s2, g, b));
    int nd = ta->ndim;
    int64_t batch = 1;
    for (int k = 0; k < nd - 2; k++) {
        if (ta->shape[k] != tb->shape[k])
            return gfail(g, FG_ERR_SHAPE, "matmul '%s': batch dims of a %s and b %s differ", name,
                         shp(s1, sizeof s1, g, a), shp(s2, sizeof s2, g, b));
        batch *= ta->shape[k];
    }
    int64_t M = trans_a ? ta->shape[nd - 1] : ta->shape[nd - 2], K = trans_a ? ta->shape[nd - 2] : ta->shape[nd - 1];
    int64_t K2 = trans_b ? tb->shape[nd - 1] : tb->shape[nd - 2], N = trans_b ? tb->shape[nd - 2] : tb->shape[nd - 1];
    if (K != K2)
        return gfail(g, FG_ERR_SHAPE, "matmul '%s': inner dims differ: a %s%s and b %s%s", name, shp(s1, sizeof s1, g, a),
                     trans_a ? "^T" : "", shp(s2, sizeof s2, g, b), trans_b ? "^T" : "");
    int64_t shape[FG_MAX_DIMS];
    for (int k = 0; k < nd - 2; k++) shape[k] = ta->shape[k];
    shape[nd - 2] = M;
    shape[nd - 1] = N;
    fg_id in[2] = {a, b};
    int i = new_node(g, FG_OP_MATMUL, name, in, 2, nd, shape, FG_F32);
    fg_node *n = &g->nodes[i];
    n->p.mm.batch = batch;
    n->p.mm.M = M;
    n->p.mm.K = K;
    n->p.mm.N = N;
    n->p.mm.ta = trans_a;
    n->p.mm.tb = trans_b;
    n->info.flops = fg_matmul_flops(batch, M, K, N);
    return n->info.out;
}

static fg_id unary(fg_graph *g, fg_op op, const char *name, fg_id x) {
    char nb[FG_NAME_MAX];
    name = autoname(g, name, op, nb, sizeof nb);
    if (!ok_id(g, x, fg_op_name(op), name)) return FG_NONE;
    const fg_tensor *tx = T(g, x);
    if (tx->dtype != FG_F32) return gfail(g, FG_ERR_SHAPE, "%s '%s': input must be f32", fg_op_name(op), name);
    int i = new_node(g, op, name, &x, 1, tx->ndim, tx->shape, FG_F32);
    g->nodes[i].p.n = (size_t)fg_tensor_numel(T(g, x));
    g->nodes[i].info.flops = (double)g->nodes[i].p.n;
    return g->nodes[i].info.out;
}

/* ReLU's backward reads a 1-bit mask of !(out <= 0) (an AUX output, 1/32 of out's bytes; a NaN
 * output passes its gradient) instead of out, so a ReLU output that only a max pool (or nothing)
 * reads afterwards dies in forward. */
fg_id fg_nn_relu(fg_graph *g, const char *name, fg_id x) {
    fg_id y = unary(g, FG_OP_RELU, name, x);
    if (y == FG_NONE) return FG_NONE;
    int i = g->t[y].info.producer;
    int64_t nb = (int64_t)fg_relu_mask_bytes(g->nodes[i].p.n);
    add_aux_typed(g, i, "mask", FG_U8, 1, &nb);
    return y;
}
fg_id fg_nn_gelu(fg_graph *g, const char *name, fg_id x) { return unary(g, FG_OP_GELU, name, x); }
fg_id fg_nn_tanh(fg_graph *g, const char *name, fg_id x) { return unary(g, FG_OP_TANH, name, x); }
fg_id fg_nn_sigmoid(fg_graph *g, const char *name, fg_id x) { return unary(g, FG_OP_SIGMOID, name, x); }

fg_id fg_nn_softmax(fg_graph *g, const char *name, fg_id x) {
    fg_id y = unary(g, FG_OP_SOFTMAX, name, x);
    if (y == FG_NONE) return y;
    fg_node *n = &g->nodes[g->nn - 1];
    const fg_tensor *tx = T(g, x);
    n->p.sm.cols = tx->shape[tx->ndim - 1];
    n->p.sm.rows = fg_tensor_numel(tx) / n->p.sm.cols;
    return y;
}

fg_id fg_nn_dropout(fg_graph *g, const char *name, fg_id x, float p) {
    if (!(p >= 0.0f && p < 1.0f)) return gfail(g, FG_ERR_INVALID, "dropout '%s': p = %g, expected 0 <= p < 1", name ? name : "", p);
    fg_id y = unary(g, FG_OP_DROPOUT, name, x);
    if (y != FG_NONE) g->nodes[g->nn - 1].p.drop.p = p;
    return y;
}

fg_id fg_nn_xent(fg_graph *g, const char *name, fg_id logits, fg_id labels) {
    char nb[FG_NAME_MAX], s1[96], s2[96];
    name = autoname(g, name, FG_OP_XENT, nb, sizeof nb);
    if (!ok_f32(g, logits, "xent", name) || !ok_id(g, labels, "xent", name)) return FG_NONE;
    const fg_tensor *tl = T(g, logits), *ty = T(g, labels);
    if (tl->ndim != 2 || ty->ndim != 1 || ty->shape[0] != tl->shape[0] || ty->dtype != FG_I32)
        return gfail(g, FG_ERR_SHAPE, "xent '%s': logits %s must be (B, C) and labels %s an i32 (B)", name,
                     shp(s1, sizeof s1, g, logits), shp(s2, sizeof s2, g, labels));
    int64_t one = 1, ls[2] = {tl->shape[0], tl->shape[1]}; /* tl moves when new_node grows g->t */
    fg_id in[2] = {logits, labels};
    int i = new_node(g, FG_OP_XENT, name, in, 2, 1, &one, FG_F32);
    g->nodes[i].p.sm.rows = ls[0];
    g->nodes[i].p.sm.cols = ls[1];
    add_aux(g, i, "probs", 2, ls);
    g->nodes[i].info.flops = 4.0 * (double)(ls[0] * ls[1]);
    return g->nodes[i].info.out;
}

fg_id fg_nn_add(fg_graph *g, const char *name, fg_id a, fg_id b) {
    char nb[FG_NAME_MAX], s1[96], s2[96];
    name = autoname(g, name, FG_OP_ADD, nb, sizeof nb);
    if (!ok_f32(g, a, "add", name) || !ok_f32(g, b, "add", name)) return FG_NONE;
    if (!fg_tensor_same_shape(T(g, a), T(g, b)))
        return gfail(g, FG_ERR_SHAPE, "add '%s': shapes %s and %s differ", name, shp(s1, sizeof s1, g, a), shp(s2, sizeof s2, g, b));
    fg_id in[2] = {a, b};
    int i = new_node(g, FG_OP_ADD, name, in, 2, T(g, a)->ndim, T(g, a)->shape, FG_F32);
    g->nodes[i].p.n = (size_t)fg_tensor_numel(T(g, a));
    g->nodes[i].info.flops = (double)g->nodes[i].p.n;
    return g->nodes[i].info.out;
}

fg_id fg_nn_concat(fg_graph *g, const char *name, const fg_id *xs, int k, int axis) {
    char nb[FG_NAME_MAX], s1[96], s2[96];
    name = autoname(g, name, FG_OP_CONCAT, nb, sizeof nb);
    if (g->status != FG_OK) return FG_NONE;
    if (k < 1 || k > FG_NODE_MAX_IN) return gfail(g, FG_ERR_INVALID, "concat '%s': %d inputs, expected 1..%d", name, k, FG_NODE_MAX_IN);
    for (int j = 0; j < k; j++)
        if (!ok_f32(g, xs[j], "concat", name)) return FG_NONE;
    const fg_tensor *t0 = T(g, xs[0]);
    if (axis < 0 || axis >= t0->ndim) return gfail(g, FG_ERR_SHAPE, "concat '%s': axis %d out of range for %d dims", name, axis, t0->ndim);
    int64_t shape[FG_MAX_DIMS];
    memcpy(shape, t0->shape, sizeof shape);
    shape[axis] = 0;
    int64_t inner = 1, outer = 1;
    for (int d = axis + 1; d < t0->ndim; d++) inner *= t0->shape[d];
    for (int d = 0; d < axis; d++) outer *= t0->shape[d];
    int64_t chunk[FG_NODE_MAX_IN];
    for (int j = 0; j < k; j++) {
        const fg_tensor *tj = T(g, xs[j]);
        int same = tj->ndim == t0->ndim;
        for (int d = 0; same && d < t0->ndim; d++)
            if (d != axis && tj->shape[d] != t0->shape[d]) same = 0;
        if (!same)
            return gfail(g, FG_ERR_SHAPE, "concat '%s': input %d %s does not match input 0 %s outside axis %d", name, j,
                         shp(s1, sizeof s1, g, xs[j]), shp(s2, sizeof s2, g, xs[0]), axis);
        shape[axis] += tj->shape[axis];
        chunk[j] = tj->shape[axis] * inner;
    }
    int i = new_node(g, FG_OP_CONCAT, name, xs, k, t0->ndim, shape, FG_F32);
    g->nodes[i].p.cat.axis = axis;
    g->nodes[i].p.cat.outer = outer;
    memcpy(g->nodes[i].p.cat.chunk, chunk, sizeof(int64_t) * (size_t)k);
    return g->nodes[i].info.out;
}

fg_id fg_nn_reshape(fg_graph *g, const char *name, fg_id x, int ndim, const int64_t *shape) {
    char s1[96], s2[96];
    if (!ok_id(g, x, "reshape", name ? name : "")) return FG_NONE;
    int64_t n = 1;
    int bad = !shape || ndim < 1 || ndim > FG_MAX_DIMS;
    for (int d = 0; !bad && d < ndim; d++) bad = shape[d] < 1 || __builtin_mul_overflow(n, shape[d], &n);
    if (bad) return gfail(g, FG_ERR_SHAPE, "reshape '%s': a shape of 1..%d dims, each >= 1, expected", name ? name : "",
                          FG_MAX_DIMS);
    if (n != fg_tensor_numel(T(g, x)))
        return gfail(g, FG_ERR_SHAPE, "reshape '%s': cannot view %s as %s", name ? name : "", shp(s1, sizeof s1, g, x),
                     fg_shape_str(s2, sizeof s2, ndim, shape));
    fg_id root = g->t[x].info.alias_of;
    char nm[FG_NAME_MAX];
    snprintf(nm, sizeof nm, "%s", name && *name ? name : "view");
    fg_id y = new_tensor(g, g->t[root].info.kind, nm, T(g, x)->dtype, ndim, shape);
    g->t[y].info.alias_of = root;
    g->t[y].info.producer = g->t[root].info.producer;
    g->t[y].next_alias = g->t[root].next_alias;
    g->t[root].next_alias = y;
    return y;
}

fg_id fg_nn_flatten(fg_graph *g, const char *name, fg_id x) {
    if (!ok_id(g, x, "flatten", name ? name : "")) return FG_NONE;
    const fg_tensor *tx = T(g, x);
    int64_t shape[2] = {tx->shape[0], fg_tensor_numel(tx) / tx->shape[0]};
    return fg_nn_reshape(g, name, x, 2, shape);
}

static fg_id pool_op(fg_graph *g, fg_op op, const char *name, fg_id x, fg_pool_opts o) {
    char nb[FG_NAME_MAX], s1[96];
    name = autoname(g, name, op, nb, sizeof nb);
    if (!ok_f32(g, x, fg_op_name(op), name)) return FG_NONE;
    const fg_tensor *tx = T(g, x);
    if (tx->ndim != 4) return gfail(g, FG_ERR_SHAPE, "%s '%s': input %s must be 4-D", fg_op_name(op), name, shp(s1, sizeof s1, g, x));
    fg_pooling_desc d = {tx->shape[0], tx->shape[1], tx->shape[2], tx->shape[3], o.kernel, o.kernel,
                         o.stride ? o.stride : o.kernel, o.stride ? o.stride : o.kernel, o.pad, o.pad, o.ceil_mode,
                         o.count_include_pad};
    if (fg_pooling_check(&d) != FG_OK)
        return gfail(g, FG_ERR_SHAPE, "%s '%s': input %s: %s", fg_op_name(op), name, shp(s1, sizeof s1, g, x), fg_last_error());
    int64_t shape[4] = {d.n, d.c, fg_pooling_out_h(&d), fg_pooling_out_w(&d)};
    int i = new_node(g, op, name, &x, 1, 4, shape, FG_F32);
    g->nodes[i].p.pool = d;
    g->nodes[i].info.flops = (double)(shape[0] * shape[1] * shape[2] * shape[3] * d.kh * d.kw);
    /* max pool's backward reads the argmax bytes forward stores, not the input */
    if (op == FG_OP_MAXPOOL && fg_maxpool2d_argmax_ok(&d)) add_aux_typed(g, i, "argmax", FG_U8, 4, shape);
    return g->nodes[i].info.out;
}

fg_id fg_nn_maxpool2d(fg_graph *g, const char *name, fg_id x, fg_pool_opts o) { return pool_op(g, FG_OP_MAXPOOL, name, x, o); }
fg_id fg_nn_avgpool2d(fg_graph *g, const char *name, fg_id x, fg_pool_opts o) { return pool_op(g, FG_OP_AVGPOOL, name, x, o); }

fg_id fg_nn_global_avgpool(fg_graph *g, const char *name, fg_id x) {
    char nb[FG_NAME_MAX], s1[96];
    name = autoname(g, name, FG_OP_GAP, nb, sizeof nb);
    if (!ok_f32(g, x, "global_avgpool", name)) return FG_NONE;
    const fg_tensor *tx = T(g, x);
    if (tx->ndim != 4) return gfail(g, FG_ERR_SHAPE, "global_avgpool '%s': input %s must be 4-D", name, shp(s1, sizeof s1, g, x));
    int64_t shape[2] = {tx->shape[0], tx->shape[1]}, hw = tx->shape[2] * tx->shape[3];
    int i = new_node(g, FG_OP_GAP, name, &x, 1, 2, shape, FG_F32); /* tx is stale after this */
    g->nodes[i].p.gap.N = shape[0];
    g->nodes[i].p.gap.C = shape[1];
    g->nodes[i].p.gap.HW = hw;
    g->nodes[i].info.flops = (double)fg_tensor_numel(T(g, x));
    return g->nodes[i].info.out;
}

fg_id fg_nn_lrn(fg_graph *g, const char *name, fg_id x, int64_t size, float alpha, float beta, float k) {
    char nb[FG_NAME_MAX], s1[96];
    name = autoname(g, name, FG_OP_LRN, nb, sizeof nb);
    if (!ok_f32(g, x, "lrn", name)) return FG_NONE;
    const fg_tensor *tx = T(g, x);
    if (tx->ndim != 4 || size < 1) return gfail(g, FG_ERR_SHAPE, "lrn '%s': input %s must be 4-D and size >= 1", name, shp(s1, sizeof s1, g, x));
    if (!(k > 0.0f && k < INFINITY) || !isfinite(alpha) || !isfinite(beta))
        return gfail(g, FG_ERR_INVALID, "lrn '%s': k = %g, alpha = %g, beta = %g: expected k > 0 and all finite", name,
                     (double)k, (double)alpha, (double)beta);
    fg_lrn_desc d = {tx->shape[0], tx->shape[1], tx->shape[2], tx->shape[3], size, alpha, beta, k};
    int i = new_node(g, FG_OP_LRN, name, &x, 1, 4, tx->shape, FG_F32);
    g->nodes[i].p.lrn = d;
    g->nodes[i].info.flops = (double)fg_tensor_numel(T(g, x)) * (double)(size + 4);
    return g->nodes[i].info.out;
}

fg_id fg_nn_batchnorm(fg_graph *g, const char *name, fg_id x, float momentum, float eps) {
    char s1[96], nm[FG_NAME_MAX + 16];
    if (!ok_f32(g, x, "batchnorm", name ? name : "")) return FG_NONE;
    if (!name || !*name) return gfail(g, FG_ERR_INVALID, "batchnorm: a name is required (it names the parameters)");
    if (!(eps > 0.0f && eps < INFINITY) || !(momentum >= 0.0f && momentum <= 1.0f))
        return gfail(g, FG_ERR_INVALID, "batchnorm '%s': eps = %g, momentum = %g: expected a finite eps > 0 and momentum "
                     "in [0, 1]", name, (double)eps, (double)momentum);
    const fg_tensor *tx = T(g, x);
    if (tx->ndim != 4 && tx->ndim != 2)
        return gfail(g, FG_ERR_SHAPE, "batchnorm '%s': input %s must be (N,C,H,W) or (N,C)", name, shp(s1, sizeof s1, g, x));
    int64_t N = tx->shape[0], C = tx->shape[1], HW = tx->ndim == 4 ? tx->shape[2] * tx->shape[3] : 1;
    int xnd = tx->ndim;
    int64_t xshape[FG_MAX_DIMS];
    memcpy(xshape, tx->shape, sizeof xshape); /* tx is stale once params are added */
    snprintf(nm, sizeof nm, "%s.weight", name);
    fg_id gamma = fg_nn_param(g, nm, 1, &C, FG_INIT_ONES, 0);
    snprintf(nm, sizeof nm, "%s.bias", name);
    fg_id beta = fg_nn_param(g, nm, 1, &C, FG_INIT_ZEROS, 0);
    snprintf(nm, sizeof nm, "%s.running_mean", name);
    fg_id rm = new_state(g, nm, C, FG_INIT_ZEROS);
    snprintf(nm, sizeof nm, "%s.running_var", name);
    fg_id rv = new_state(g, nm, C, FG_INIT_ONES);
    if (g->status != FG_OK) return FG_NONE;
    fg_id in[3] = {x, gamma, beta};
    int i = new_node(g, FG_OP_BATCHNORM, name, in, 3, xnd, xshape, FG_F32);
    fg_node *n = &g->nodes[i];
    n->p.bn.momentum = momentum;
    n->p.bn.eps = eps;
    n->p.bn.N = N;
    n->p.bn.C = C;
    n->p.bn.HW = HW;
    n->p.bn.running_mean = rm;
    n->p.bn.running_var = rv;
    add_aux(g, i, "mean", 1, &C);
    add_aux(g, i, "invstd", 1, &C);
    g->nodes[i].info.flops = 8.0 * (double)fg_tensor_numel(T(g, x));
    return g->nodes[i].info.out;
}

/* Layer norm over the last dim, with torch.nn.LayerNorm's parameter names and initial values. */
fg_id fg_nn_layernorm(fg_graph *g, const char *name, fg_id x, float eps) {
    char s1[96], nm[FG_NAME_MAX + 16];
    if (!ok_id(g, x, "layernorm", name ? name : "")) return FG_NONE;
    if (!name || !*name) return gfail(g, FG_ERR_INVALID, "layernorm: a name is required (it names the parameters)");
    const fg_tensor *tx = T(g, x);
    if (tx->dtype != FG_F32) return gfail(g, FG_ERR_SHAPE, "layernorm '%s': input %s must be f32", name, shp(s1, sizeof s1, g, x));
    if (!(eps >= 0.0f && eps < INFINITY))
        return gfail(g, FG_ERR_INVALID, "layernorm '%s': eps = %g, expected a finite value >= 0", name, (double)eps);
    int xnd = tx->ndim;
    int64_t xshape[FG_MAX_DIMS];
    memcpy(xshape, tx->shape, sizeof xshape); /* tx is stale once params are added */
    int64_t C = xshape[xnd - 1], rows = fg_tensor_numel(tx) / C;
    snprintf(nm, sizeof nm, "%s.weight", name);
    fg_id w = fg_nn_param(g, nm, 1, &C, FG_INIT_ONES, 0);
    snprintf(nm, sizeof nm, "%s.bias", name);
    fg_id b = fg_nn_param(g, nm, 1, &C, FG_INIT_ZEROS, 0);
    if (g->status != FG_OK) return FG_NONE;
    fg_id in[3] = {x, w, b};
    int i = new_node(g, FG_OP_LAYERNORM, name, in, 3, xnd, xshape, FG_F32);
    fg_node *n = &g->nodes[i];
    n->p.ln.rows = rows;
    n->p.ln.C = C;
    n->p.ln.eps = eps;
    n->has_bias = 1;
    n->info.flops = 8.0 * (double)(rows * C);
    add_aux(g, i, "mean", 1, &rows);
    add_aux(g, i, "rstd", 1, &rows);
    return g->nodes[i].info.out;
}

/* The attention node over checked q, k, v: out oshape, probs (B, H, Tq, Tk). */
static fg_id attention_node(fg_graph *g, const char *name, const fg_id in[3], int64_t B, int64_t H, int64_t Tq,
                            int64_t Tk, int64_t D, float scale, int causal, int tokens, int ondim,
                            const int64_t *oshape) {
    char s1[96], s2[96];
    if (fg_attention_check(B, H, Tq, Tk, D) != FG_OK)
        return gfail(g, FG_ERR_SHAPE, "attention '%s': q %s, k %s: %s", name, shp(s1, sizeof s1, g, in[0]),
                     shp(s2, sizeof s2, g, in[1]), fg_last_error());
    const int64_t pshape[4] = {B, H, Tq, Tk};
    int i = new_node(g, FG_OP_ATTENTION, name, in, 3, ondim, oshape, FG_F32);
    fg_node *n = &g->nodes[i];
    n->p.attn.B = B;
    n->p.attn.H = H;
    n->p.attn.Tq = Tq;
    n->p.attn.Tk = Tk;
    n->p.attn.D = D;
    n->p.attn.scale = scale > 0.0f ? scale : 1.0f / sqrtf((float)D);
    n->p.attn.causal = causal != 0;
    n->p.attn.tokens = tokens;
    n->info.flops = fg_attention_flops(B, H, Tq, Tk, D);
    add_aux(g, i, "probs", 4, pshape);
    return g->nodes[i].info.out;
}

fg_id fg_nn_attention(fg_graph *g, const char *name, fg_id q, fg_id k, fg_id v, float scale, int causal) {
    char nb[FG_NAME_MAX], s1[96], s2[96], s3[96];
    name = autoname(g, name, FG_OP_ATTENTION, nb, sizeof nb);
    if (!ok_id(g, q, "attention", name) || !ok_id(g, k, "attention", name) || !ok_id(g, v, "attention", name))
        return FG_NONE;
    const fg_tensor *tq = T(g, q), *tk = T(g, k), *tv = T(g, v);
    if (tq->ndim != 4 || tk->ndim != 4 || tv->ndim != 4 || tq->dtype != FG_F32 || tk->dtype != FG_F32 || tv->dtype != FG_F32)
        return gfail(g, FG_ERR_SHAPE, "attention '%s': q %s, k %s and v %s must be f32 4-D (B,H,T,D)", name,
                     shp(s1, sizeof s1, g, q), shp(s2, sizeof s2, g, k), shp(s3, sizeof s3, g, v));
    if (tk->shape[0] != tq->shape[0] || tk->shape[1] != tq->shape[1] || tk->shape[3] != tq->shape[3])
        return gfail(g, FG_ERR_SHAPE, "attention '%s': k %s does not fit q %s: expected (B,H,Tk,D) with q's B, H and D",
                     name, shp(s1, sizeof s1, g, k), shp(s2, sizeof s2, g, q));
    if (!fg_tensor_same_shape(tv, tk))
        return gfail(g, FG_ERR_SHAPE, "attention '%s': v %s must have k's shape %s (B,H,Tk,D)", name,
                     shp(s1, sizeof s1, g, v), shp(s2, sizeof s2, g, k));
    const int64_t B = tq->shape[0], H = tq->shape[1], Tq = tq->shape[2], Tk = tk->shape[2], D = tq->shape[3];
    const int64_t oshape[4] = {B, H, Tq, D};
    const fg_id in[3] = {q, k, v};
    return attention_node(g, name, in, B, H, Tq, Tk, D, scale, causal, 0, 4, oshape);
}

/* Whether token-major q (B,Tq,C), k and v (B,Tk,C) fit, with C = heads * D; 0 after a graph failure. */
static int tokens_ok(fg_graph *g, const char *op, const char *name, fg_id q, fg_id k, fg_id v, int64_t heads) {
    char s1[96], s2[96], s3[96];
    const fg_tensor *tq = T(g, q), *tk = T(g, k), *tv = T(g, v);
    if (tq->ndim != 3 || tk->ndim != 3 || tv->ndim != 3 || tq->dtype != FG_F32 || tk->dtype != FG_F32 ||
        tv->dtype != FG_F32 || tk->shape[0] != tq->shape[0] || tk->shape[2] != tq->shape[2] ||
        !fg_tensor_same_shape(tv, tk)) {
        gfail(g, FG_ERR_SHAPE, "%s '%s': q %s, k %s and v %s must be f32 (B,Tq,C), (B,Tk,C), (B,Tk,C)", op, name,
              shp(s1, sizeof s1, g, q), shp(s2, sizeof s2, g, k), shp(s3, sizeof s3, g, v));
        return 0;
    }
    if (heads < 1 || tq->shape[2] % heads != 0) {
        gfail(g, FG_ERR_SHAPE, "%s '%s': %lld heads do not divide the %lld channels of q %s", op, name,
              (long long)heads, (long long)tq->shape[2], shp(s1, sizeof s1, g, q));
        return 0;
    }
    return 1;
}

fg_id fg_nn_attention_tokens(fg_graph *g, const char *name, fg_id q, fg_id k, fg_id v, int64_t heads, float scale,
                             int causal) {
    char nb[FG_NAME_MAX];
    name = autoname(g, name, FG_OP_ATTENTION, nb, sizeof nb);
    if (!ok_id(g, q, "attention", name) || !ok_id(g, k, "attention", name) || !ok_id(g, v, "attention", name) ||
        !tokens_ok(g, "attention", name, q, k, v, heads))
        return FG_NONE;
    const fg_tensor *tq = T(g, q), *tk = T(g, k);
    const int64_t B = tq->shape[0], Tq = tq->shape[1], Tk = tk->shape[1], D = tq->shape[2] / heads;
    const fg_id in[3] = {q, k, v};
    return attention_node(g, name, in, B, heads, Tq, Tk, D, scale, causal, 1, 3, tq->shape);
}

fg_id fg_nn_lstm(fg_graph *g, const char *name, fg_id x, int64_t hidden, int bias) {
    return fg_nn_lstm_state(g, name, x, hidden, bias, FG_NONE, FG_NONE);
}

/* An initial state must be an input of shape (B, hidden): the caller feeds it (the last state of
 * the previous chunk in truncated BPTT), and no gradient flows into it. */
static int lstm_state_ok(fg_graph *g, const char *name, const char *what, fg_id s, int64_t B, int64_t H) {
    char s1[96];
    if (s == FG_NONE) return 1;
    if (!ok_id(g, s, "lstm", name)) return 0;
    const fg_tensor *t = T(g, s);
    if (g->t[s].info.kind != FG_T_INPUT || t->dtype != FG_F32 || t->ndim != 2 || t->shape[0] != B || t->shape[1] != H) {
        gfail(g, FG_ERR_SHAPE, "lstm '%s': %s %s must be an f32 input of shape (%lld, %lld) (B, hidden)", name, what,
              shp(s1, sizeof s1, g, s), (long long)B, (long long)H);
        return 0;
    }
    return 1;
}

/* One LSTM layer with torch.nn.LSTM's parameter names ("weight_ih_l0" ...) and initialization
 * U(-1/sqrt(H), 1/sqrt(H)) for every weight and bias (FG_INIT_FANIN_UNIFORM with fan_in = H). */
fg_id fg_nn_lstm_state(fg_graph *g, const char *name, fg_id x, int64_t hidden, int bias, fg_id h0, fg_id c0) {
    char s1[96], nm[FG_NAME_MAX + 16];
    if (!ok_id(g, x, "lstm", name ? name : "")) return FG_NONE;
    if (!name || !*name) return gfail(g, FG_ERR_INVALID, "lstm: a name is required (it names the parameters)");
    const fg_tensor *tx = T(g, x);
    if (tx->ndim != 3 || tx->dtype != FG_F32)
        return gfail(g, FG_ERR_SHAPE, "lstm '%s': input %s must be an f32 (T,B,I) tensor (time-major)", name,
                     shp(s1, sizeof s1, g, x));
    if (hidden <= 0)
        return gfail(g, FG_ERR_SHAPE, "lstm '%s': hidden = %lld, expected > 0 (input %s)", name, (long long)hidden,
                     shp(s1, sizeof s1, g, x));
    fg_lstm_desc d = {tx->shape[0], tx->shape[1], tx->shape[2], hidden};
    if (fg_lstm_check(&d) != FG_OK)
        return gfail(g, FG_ERR_SHAPE, "lstm '%s': input %s, hidden %lld: %s", name, shp(s1, sizeof s1, g, x),
                     (long long)hidden, fg_last_error());
    if (!lstm_state_ok(g, name, "h0", h0, d.B, hidden) || !lstm_state_ok(g, name, "c0", c0, d.B, hidden)) return FG_NONE;
    int64_t wih[2] = {4 * hidden, d.I}, whh[2] = {4 * hidden, hidden}, b4 = 4 * hidden;
    fg_id in[7] = {x, FG_NONE, FG_NONE, FG_NONE, FG_NONE, FG_NONE, FG_NONE};
    snprintf(nm, sizeof nm, "%s.weight_ih_l0", name);
    in[1] = fg_nn_param(g, nm, 2, wih, FG_INIT_FANIN_UNIFORM, (float)hidden);
    snprintf(nm, sizeof nm, "%s.weight_hh_l0", name);
    in[2] = fg_nn_param(g, nm, 2, whh, FG_INIT_FANIN_UNIFORM, (float)hidden);
    if (bias) {
        snprintf(nm, sizeof nm, "%s.bias_ih_l0", name);
        in[3] = fg_nn_param(g, nm, 1, &b4, FG_INIT_FANIN_UNIFORM, (float)hidden);
        snprintf(nm, sizeof nm, "%s.bias_hh_l0", name);
        in[4] = fg_nn_param(g, nm, 1, &b4, FG_INIT_FANIN_UNIFORM, (float)hidden);
    }
    if (g->status != FG_OK) return FG_NONE;
    int64_t yshape[3] = {d.T, d.B, hidden}, saved = (int64_t)(fg_lstm_saved_bytes(&d) / sizeof(float));
    int n_in = bias ? 5 : 3, h0_in = -1, c0_in = -1;
    if (h0 != FG_NONE) in[h0_in = n_in++] = h0;
    if (c0 != FG_NONE) in[c0_in = n_in++] = c0;
    int i = new_node(g, FG_OP_LSTM, name, in, n_in, 3, yshape, FG_F32);
    fg_node *n = &g->nodes[i];
    n->p.lstm = d;
    n->has_bias = bias != 0;
    n->h0_in = h0_in;
    n->c0_in = c0_in;
    n->info.flops = fg_lstm_flops(&d);
    add_aux(g, i, "saved", 1, &saved);
    return g->nodes[i].info.out;
}

/* An embedding table with torch.nn.Embedding's parameter name ("<name>.weight") and initialization
 * N(0, 1). The ids stay int32 as fed; the output appends the embedding dimension to their shape. */
fg_id fg_nn_embedding(fg_graph *g, const char *name, fg_id ids, int64_t num_embeddings, int64_t dim) {
    char s1[96], nm[FG_NAME_MAX + 16];
    if (!ok_id(g, ids, "embedding", name ? name : "")) return FG_NONE;
    if (!name || !*name) return gfail(g, FG_ERR_INVALID, "embedding: a name is required (it names the parameter)");
    const fg_tensor *ti = T(g, ids);
    if (ti->dtype != FG_I32)
        return gfail(g, FG_ERR_SHAPE, "embedding '%s': ids %s are %s, expected an i32 tensor of token ids", name,
                     shp(s1, sizeof s1, g, ids), fg_dtype_name(ti->dtype));
    if (ti->ndim > FG_MAX_DIMS - 1)
        return gfail(g, FG_ERR_SHAPE, "embedding '%s': ids %s have %d dims, expected at most %d (the output adds one)",
                     name, shp(s1, sizeof s1, g, ids), ti->ndim, FG_MAX_DIMS - 1);
    /* ids are int32: rows past INT32_MAX could never be looked up */
    if (num_embeddings < 1 || num_embeddings > INT32_MAX || dim < 1)
        return gfail(g, FG_ERR_SHAPE, "embedding '%s': num_embeddings = %lld and dim = %lld, expected 1 <= "
                     "num_embeddings <= %d and dim >= 1 (ids %s)", name, (long long)num_embeddings, (long long)dim,
                     INT32_MAX, shp(s1, sizeof s1, g, ids));
    const int ynd = ti->ndim + 1;
    int64_t yshape[FG_MAX_DIMS];
    memcpy(yshape, ti->shape, sizeof(int64_t) * (size_t)ti->ndim); /* ti is stale once the param is added */
    yshape[ynd - 1] = dim;
    const int64_t n = fg_tensor_numel(ti), wshape[2] = {num_embeddings, dim};
    snprintf(nm, sizeof nm, "%s.weight", name);
    fg_id w = fg_nn_param(g, nm, 2, wshape, FG_INIT_NORMAL, 1.0f);
    if (g->status != FG_OK) return FG_NONE;
    fg_id in[2] = {ids, w};
    int i = new_node(g, FG_OP_EMBEDDING, name, in, 2, ynd, yshape, FG_F32);
    fg_node *nd = &g->nodes[i];
    nd->p.emb.n = n;
    nd->p.emb.V = num_embeddings;
    nd->p.emb.E = dim;
    nd->info.flops = 0.0; /* a gather: it moves n * dim floats and computes nothing */
    return nd->info.out;
}

fg_id fg_nn_resize_bilinear(fg_graph *g, const char *name, fg_id x, int64_t oh, int64_t ow) {
    char nb[FG_NAME_MAX], s1[96];
    name = autoname(g, name, FG_OP_RESIZE, nb, sizeof nb);
    if (!ok_id(g, x, "resize_bilinear", name)) return FG_NONE;
    const fg_tensor *tx = T(g, x);
    if (tx->ndim != 4 || tx->dtype != FG_F32)
        return gfail(g, FG_ERR_SHAPE, "resize_bilinear '%s': input %s must be f32 4-D (N,C,H,W)", name,
                     shp(s1, sizeof s1, g, x));
    const fg_resize_desc d = {tx->shape[0], tx->shape[1], tx->shape[2], tx->shape[3], oh, ow};
    if (fg_resize_check(&d) != FG_OK)
        return gfail(g, FG_ERR_SHAPE, "resize_bilinear '%s': input %s to %lld x %lld: %s", name, shp(s1, sizeof s1, g, x),
                     (long long)oh, (long long)ow, fg_last_error());
    const int64_t shape[4] = {d.n, d.c, oh, ow};
    int i = new_node(g, FG_OP_RESIZE, name, &x, 1, 4, shape, FG_F32);
    g->nodes[i].p.rs = d;
    g->nodes[i].info.flops = fg_resize_flops(&d);
    return g->nodes[i].info.out;
}

fg_id fg_nn_permute(fg_graph *g, const char *name, fg_id x, const int *perm) {
    char nb[FG_NAME_MAX], s1[96];
    name = autoname(g, name, FG_OP_PERMUTE, nb, sizeof nb);
    if (!ok_id(g, x, "permute", name)) return FG_NONE;
    const fg_tensor *tx = T(g, x);
    if (tx->dtype != FG_F32 || !perm)
        return gfail(g, FG_ERR_SHAPE, "permute '%s': input %s must be f32 and perm given", name, shp(s1, sizeof s1, g, x));
    const int nd = tx->ndim;
    int64_t xshape[FG_MAX_DIMS], yshape[FG_MAX_DIMS];
    memcpy(xshape, tx->shape, sizeof xshape); /* tx is stale once the node is added */
    if (fg_permute_check(nd, xshape, perm) != FG_OK)
        return gfail(g, FG_ERR_INVALID, "permute '%s': input %s: %s", name, shp(s1, sizeof s1, g, x), fg_last_error());
    for (int k = 0; k < nd; k++) yshape[k] = xshape[perm[k]];
    int i = new_node(g, FG_OP_PERMUTE, name, &x, 1, nd, yshape, FG_F32);
    fg_node *n = &g->nodes[i];
    n->p.perm.ndim = nd;
    memcpy(n->p.perm.shape, xshape, sizeof xshape);
    for (int k = 0; k < nd; k++) n->p.perm.perm[k] = perm[k];
    n->info.flops = 0.0; /* a copy: it moves every element and computes nothing */
    return n->info.out;
}

fg_id fg_nn_repeat(fg_graph *g, const char *name, fg_id x, int64_t n) {
    char nb[FG_NAME_MAX], s1[96];
    name = autoname(g, name, FG_OP_REPEAT, nb, sizeof nb);
    if (!ok_id(g, x, "repeat", name)) return FG_NONE;
    const fg_tensor *tx = T(g, x);
    if (tx->dtype != FG_F32 || n < 1)
        return gfail(g, FG_ERR_SHAPE, "repeat '%s': input %s must be f32 and n = %lld >= 1", name, shp(s1, sizeof s1, g, x),
                     (long long)n);
    if (n > INT64_MAX / tx->shape[0])
        return gfail(g, FG_ERR_SHAPE, "repeat '%s': %s repeated %lld times is too large", name, shp(s1, sizeof s1, g, x),
                     (long long)n);
    int64_t shape[FG_MAX_DIMS];
    memcpy(shape, tx->shape, sizeof shape);
    const int nd = tx->ndim;
    const size_t m = (size_t)fg_tensor_numel(tx);
    shape[0] *= n;
    int i = new_node(g, FG_OP_REPEAT, name, &x, 1, nd, shape, FG_F32);
    g->nodes[i].p.rep.n = n;
    g->nodes[i].p.rep.m = m;
    g->nodes[i].info.flops = 0.0; /* a copy */
    return g->nodes[i].info.out;
}

fg_id fg_nn_slice(fg_graph *g, const char *name, fg_id x, int axis, int64_t start, int64_t len) {
    char nb[FG_NAME_MAX], s1[96];
    name = autoname(g, name, FG_OP_SLICE, nb, sizeof nb);
    if (!ok_id(g, x, "slice", name)) return FG_NONE;
    const fg_tensor *tx = T(g, x);
    if (tx->dtype != FG_F32 || axis < 0 || axis >= tx->ndim)
        return gfail(g, FG_ERR_SHAPE, "slice '%s': input %s must be f32 and axis %d in [0, %d)", name,
                     shp(s1, sizeof s1, g, x), axis, tx->ndim);
    if (start < 0 || len < 1 || start >= tx->shape[axis] || len > tx->shape[axis] - start)
        return gfail(g, FG_ERR_SHAPE, "slice '%s': start %lld, length %lld of axis %d of %s is out of range", name,
                     (long long)start, (long long)len, axis, shp(s1, sizeof s1, g, x));
    int64_t shape[FG_MAX_DIMS], outer = 1, inner = 1;
    memcpy(shape, tx->shape, sizeof shape);
    const int nd = tx->ndim;
    for (int k = 0; k < axis; k++) outer *= shape[k];
    for (int k = axis + 1; k < nd; k++) inner *= shape[k];
    const int64_t dim = shape[axis];
    shape[axis] = len;
    int i = new_node(g, FG_OP_SLICE, name, &x, 1, nd, shape, FG_F32);
    fg_node *n = &g->nodes[i];
    n->p.sl.outer = outer;
    n->p.sl.dim = dim;
    n->p.sl.inner = inner;
    n->p.sl.start = start;
    n->p.sl.len = len;
    n->info.flops = 0.0; /* a copy */
    return n->info.out;
}

fg_id fg_nn_tome(fg_graph *g, const char *name, fg_id x, fg_id keys, fg_id size, int64_t heads, int64_t r,
                 fg_id *size_out) {
    char nb[FG_NAME_MAX], s1[96], s2[96], s3[96];
    if (size_out) *size_out = FG_NONE;
    name = autoname(g, name, FG_OP_TOME, nb, sizeof nb);
    if (!ok_id(g, x, "tome", name) || !ok_id(g, keys, "tome", name)) return FG_NONE;
    if (size != FG_NONE && !ok_id(g, size, "tome", name)) return FG_NONE;
    const fg_tensor *tx = T(g, x), *tk = T(g, keys);
    if (tx->ndim != 3 || tk->ndim != 3 || tx->dtype != FG_F32 || tk->dtype != FG_F32 || tk->shape[0] != tx->shape[0] ||
        tk->shape[1] != tx->shape[1])
        return gfail(g, FG_ERR_SHAPE, "tome '%s': x %s and keys %s must be f32 (B,T,E) and (B,T,C) with the same B, T",
                     name, shp(s1, sizeof s1, g, x), shp(s2, sizeof s2, g, keys));
    const int64_t B = tx->shape[0], Tn = tx->shape[1], E = tx->shape[2], C = tk->shape[2];
    if (size != FG_NONE) {
        const fg_tensor *ts = T(g, size);
        if (ts->ndim != 2 || ts->dtype != FG_F32 || ts->shape[0] != B || ts->shape[1] != Tn)
            return gfail(g, FG_ERR_SHAPE, "tome '%s': size %s must be f32 (B,T) = (%lld, %lld) as x %s", name,
                         shp(s1, sizeof s1, g, size), (long long)B, (long long)Tn, shp(s3, sizeof s3, g, x));
    }
    if (fg_tome_check(B, Tn, C, heads, r) != FG_OK)
        return gfail(g, FG_ERR_SHAPE, "tome '%s' (x %s): %s", name, shp(s1, sizeof s1, g, x), fg_last_error());
    fg_id in[3] = {x, keys, size};
    const int64_t oshape[3] = {B, Tn - r, E}, sshape[2] = {B, Tn - r};
    int i = new_node(g, FG_OP_TOME, name, in, size != FG_NONE ? 3 : 2, 3, oshape, FG_F32);
    fg_node *n = &g->nodes[i];
    n->p.tome.B = B;
    n->p.tome.T = Tn;
    n->p.tome.C = C;
    n->p.tome.H = heads;
    n->p.tome.E = E;
    n->p.tome.r = r;
    n->info.flops = fg_tome_flops(B, Tn, C, heads, E, r);
    fg_id s = add_aux(g, i, "size", 2, sshape);
    if (size_out) *size_out = s;
    return g->nodes[i].info.out;
}

/* The ToMe attention node over checked q, k, v (shape oshape, ondim) and a size to check. */
static fg_id tome_attention_node(fg_graph *g, const char *name, const fg_id in[4], int64_t B, int64_t H, int64_t Tn,
                                 int64_t D, float scale, int tokens, int ondim, const int64_t *oshape) {
    char s1[96];
    const fg_tensor *ts = T(g, in[3]);
    if (ts->ndim != 2 || ts->dtype != FG_F32 || ts->shape[0] != B || ts->shape[1] != Tn)
        return gfail(g, FG_ERR_SHAPE, "tome_attention '%s': size %s must be f32 (B,T) = (%lld, %lld)", name,
                     shp(s1, sizeof s1, g, in[3]), (long long)B, (long long)Tn);
    int i = new_node(g, FG_OP_TOME_ATTENTION, name, in, 4, ondim, oshape, FG_F32);
    fg_node *n = &g->nodes[i];
    n->p.attn.B = B;
    n->p.attn.H = H;
    n->p.attn.Tq = n->p.attn.Tk = Tn;
    n->p.attn.D = D;
    n->p.attn.scale = scale > 0.0f ? scale : 1.0f / sqrtf((float)D);
    n->p.attn.tokens = tokens;
    n->info.flops = fg_tome_attention_flops(B, H, Tn, D);
    return n->info.out;
}

fg_id fg_nn_tome_attention(fg_graph *g, const char *name, fg_id q, fg_id k, fg_id v, fg_id size, float scale) {
    char nb[FG_NAME_MAX], s1[96], s2[96], s3[96];
    name = autoname(g, name, FG_OP_TOME_ATTENTION, nb, sizeof nb);
    if (!ok_id(g, q, "tome_attention", name) || !ok_id(g, k, "tome_attention", name) ||
        !ok_id(g, v, "tome_attention", name) || !ok_id(g, size, "tome_attention", name))
        return FG_NONE;
    const fg_tensor *tq = T(g, q);
    if (tq->ndim != 4 || tq->dtype != FG_F32 || !fg_tensor_same_shape(T(g, k), tq) || !fg_tensor_same_shape(T(g, v), tq))
        return gfail(g, FG_ERR_SHAPE, "tome_attention '%s': q %s, k %s, v %s must be f32 (B,H,T,D), all the same", name,
                     shp(s1, sizeof s1, g, q), shp(s2, sizeof s2, g, k), shp(s3, sizeof s3, g, v));
    const fg_id in[4] = {q, k, v, size};
    return tome_attention_node(g, name, in, tq->shape[0], tq->shape[1], tq->shape[2], tq->shape[3], scale, 0, 4,
                               tq->shape);
}

fg_id fg_nn_tome_attention_tokens(fg_graph *g, const char *name, fg_id q, fg_id k, fg_id v, fg_id size,
                                  int64_t heads, float scale) {
    char nb[FG_NAME_MAX], s1[96], s2[96];
    name = autoname(g, name, FG_OP_TOME_ATTENTION, nb, sizeof nb);
    if (!ok_id(g, q, "tome_attention", name) || !ok_id(g, k, "tome_attention", name) ||
        !ok_id(g, v, "tome_attention", name) || !ok_id(g, size, "tome_attention", name) ||
        !tokens_ok(g, "tome_attention", name, q, k, v, heads))
        return FG_NONE;
    const fg_tensor *tq = T(g, q);
    if (T(g, k)->shape[1] != tq->shape[1])
        return gfail(g, FG_ERR_SHAPE, "tome_attention '%s': k %s must have q's tokens %s (self-attention)", name,
                     shp(s1, sizeof s1, g, k), shp(s2, sizeof s2, g, q));
    const fg_id in[4] = {q, k, v, size};
    return tome_attention_node(g, name, in, tq->shape[0], heads, tq->shape[1], tq->shape[2] / heads, scale, 1, 3,
                               tq->shape);
}

fg_id fg_layer_conv2d(fg_graph *g, const char *name, fg_id x, int64_t out_channels, int64_t kernel, int64_t stride,
                      int64_t pad, int bias) {
    if (!ok_id(g, x, "conv2d", name ? name : "")) return FG_NONE;
    if (!name || !*name) return gfail(g, FG_ERR_INVALID, "conv2d layer: a name is required (it names the parameters)");
    char nm[FG_NAME_MAX + 16];
    int64_t c = T(g, x)->ndim == 4 ? T(g, x)->shape[1] : 0;
    int64_t ws[4] = {out_channels, c, kernel, kernel};
    snprintf(nm, sizeof nm, "%s.weight", name);
    fg_id w = fg_nn_param(g, nm, 4, ws, FG_INIT_KAIMING_UNIFORM, 0);
    fg_id b = FG_NONE;
    if (bias) {
        snprintf(nm, sizeof nm, "%s.bias", name);
        b = fg_nn_param(g, nm, 1, &out_channels, FG_INIT_FANIN_UNIFORM, (float)(c * kernel * kernel));
    }
    fg_conv_opts o = {stride, pad, 1, 1};
    return fg_nn_conv2d(g, name, x, w, b, o);
}

static fg_id layer_linear(fg_graph *g, const char *name, fg_id x, int64_t out_features, int bias, int gelu,
                          int dnnl) {
    if (!ok_id(g, x, "linear", name ? name : "")) return FG_NONE;
    if (!name || !*name) return gfail(g, FG_ERR_INVALID, "linear layer: a name is required (it names the parameters)");
    char nm[FG_NAME_MAX + 16];
    int64_t ic = T(g, x)->shape[T(g, x)->ndim - 1];
    int64_t ws[2] = {out_features, ic};
    snprintf(nm, sizeof nm, "%s.weight", name);
    fg_id w = fg_nn_param(g, nm, 2, ws, FG_INIT_KAIMING_UNIFORM, 0);
    fg_id b = FG_NONE;
    if (bias) {
        snprintf(nm, sizeof nm, "%s.bias", name);
        b = fg_nn_param(g, nm, 1, &out_features, FG_INIT_FANIN_UNIFORM, (float)ic);
    }
    return linear_node(g, name, x, w, b, gelu, dnnl);
}

fg_id fg_layer_linear(fg_graph *g, const char *name, fg_id x, int64_t out_features, int bias) {
    return layer_linear(g, name, x, out_features, bias, 0, 0);
}
fg_id fg_layer_linear_dnnl(fg_graph *g, const char *name, fg_id x, int64_t out_features, int bias) {
    return layer_linear(g, name, x, out_features, bias, 0, 1);
}
fg_id fg_layer_linear_gelu(fg_graph *g, const char *name, fg_id x, int64_t out_features, int bias) {
    return layer_linear(g, name, x, out_features, bias, 1, 1);
}

/* ---------------------------------------------------------------- introspection */

int fg_graph_n_nodes(const fg_graph *g) { return g->nn; }
int fg_graph_n_tensors(const fg_graph *g) { return g->nt; }
const fg_ninfo *fg_graph_node(const fg_graph *g, int i) {
    FG_ASSERT(i >= 0 && i < g->nn);
    return &g->nodes[i].info;
}
const fg_tinfo *fg_graph_tinfo(const fg_graph *g, fg_id id) {
    FG_ASSERT(id >= 0 && id < g->nt);
    return &g->t[id].info;
}
fg_tensor *fg_graph_tensor(fg_graph *g, fg_id id) {
    FG_ASSERT(id >= 0 && id < g->nt);
    return &g->t[id].info.t;
}
fg_id fg_graph_find(const fg_graph *g, const char *name) {
    if (!name) return FG_NONE;
    for (int i = 0; i < g->nt; i++)
        if (strcmp(g->t[i].info.t.name, name) == 0) return i;
    return FG_NONE;
}
int fg_graph_n_params(const fg_graph *g) { return g->np; }
fg_id fg_graph_param(const fg_graph *g, int i) {
    FG_ASSERT(i >= 0 && i < g->np);
    return g->params[i];
}
int fg_graph_n_states(const fg_graph *g) { return g->ns; }
fg_id fg_graph_state(const fg_graph *g, int i) {
    FG_ASSERT(i >= 0 && i < g->ns);
    return g->states[i];
}
fg_pool *fg_graph_pool(fg_graph *g) { return g->pool; }

void fg_graph_mark_output(fg_graph *g, fg_id id) {
    FG_ASSERT(!g->built);
    if (id < 0 || id >= g->nt) return;
    g->t[g->t[id].info.alias_of].is_output = 1;
}

static void compute_ws(fg_graph *g, fg_node *n) {
    for (int pass = 0; pass < FG_PASS_COUNT; pass++) {
        size_t ws = n->op_ws[pass] = fg_exec_op_ws(g, n, (fg_pass)pass);
        if (pass == FG_BACKWARD)
            for (int k = 0; k < n->info.n_in; k++)
                if (n->accum[k]) ws += (g->t[n->info.in[k]].info.bytes + 63) / 64 * 64;
        n->info.ws_bytes[pass] = ws;
    }
}

fg_status fg_graph_set_algo(fg_graph *g, int node, fg_conv_algo algo) {
    if (node < 0 || node >= g->nn || g->nodes[node].info.op != FG_OP_CONV2D)
        return fg_fail(FG_ERR_INVALID, "set_algo: node %d is not a conv2d", node);
    if (algo < 0 || algo >= FG_CONV_ALGO_COUNT) return fg_fail(FG_ERR_INVALID, "set_algo: bad algorithm %d", (int)algo);
    g->nodes[node].info.algo = algo;
    compute_ws(g, &g->nodes[node]);
    return FG_OK;
}

fg_status fg_graph_set_split_backward(fg_graph *g, int node, int on) {
    if (node < 0 || node >= g->nn || g->nodes[node].info.op != FG_OP_CONV2D)
        return fg_fail(FG_ERR_INVALID, "set_split_backward: node %d is not a conv2d", node);
    g->nodes[node].split_bwd = on != 0;
    return FG_OK;
}

fg_status fg_graph_conv_desc(const fg_graph *g, int node, fg_conv2d_desc *out) {
    if (node < 0 || node >= g->nn || g->nodes[node].info.op != FG_OP_CONV2D)
        return fg_fail(FG_ERR_INVALID, "conv_desc: node %d is not a conv2d", node);
    *out = g->nodes[node].p.conv;
    return FG_OK;
}

/* The node's name for messages, or its index when out of range. */
static const char *node_label(const fg_graph *g, int node, char *buf, size_t cap) {
    if (node >= 0 && node < g->nn) snprintf(buf, cap, "node %d '%s' (%s)", node, g->nodes[node].info.name,
                                            fg_op_name(g->nodes[node].info.op));
    else snprintf(buf, cap, "node %d (the graph has %d nodes)", node, g->nn);
    return buf;
}

fg_status fg_graph_set_lstm_sparsity(fg_graph *g, int node, const fg_lstm_sparsity *sp) {
    char nl[FG_NAME_MAX + 64];
    if (node < 0 || node >= g->nn || g->nodes[node].info.op != FG_OP_LSTM)
        return fg_fail(FG_ERR_INVALID, "set_lstm_sparsity: %s is not an lstm node", node_label(g, node, nl, sizeof nl));
    fg_node *n = &g->nodes[node];
    if (fg_lstm_sparsity_check(&n->p.lstm, sp) != FG_OK) {
        char why[512]; /* fg_fail overwrites the message it would read */
        snprintf(why, sizeof why, "%s", fg_last_error());
        return fg_fail(FG_ERR_INVALID, "set_lstm_sparsity: lstm '%s': %s", n->info.name, why);
    }
    if (g->built) {
        /* the backward workspace was planned at build for this block (or for none) */
        if (sp->block != n->sparsity.block) {
            char was[64];
            if (n->sparsity.block) snprintf(was, sizeof was, "block %lld", (long long)n->sparsity.block);
            else snprintf(was, sizeof was, "no sparsity");
            return fg_fail(FG_ERR_INVALID,
                           "set_lstm_sparsity: lstm '%s': block %lld, but graph '%s' was built with %s; set the block "
                           "before fg_graph_build (it sizes the backward workspace), only drop may change after",
                           n->info.name, (long long)sp->block, g->name, was);
        }
        n->sparsity.drop = sp->drop;
        n->sparsity.variant = sp->variant;
        n->sparsity.tau = sp->tau;
        return FG_OK;
    }
    n->sparsity = *sp;
    compute_ws(g, n);
    return FG_OK;
}

fg_status fg_graph_lstm_sparse_stats(const fg_graph *g, int node, fg_lstm_sparse_stats *out) {
    char nl[FG_NAME_MAX + 64];
    if (node < 0 || node >= g->nn || g->nodes[node].info.op != FG_OP_LSTM)
        return fg_fail(FG_ERR_INVALID, "lstm_sparse_stats: %s is not an lstm node", node_label(g, node, nl, sizeof nl));
    const fg_node *n = &g->nodes[node];
    if (!n->has_stats)
        return fg_fail(FG_ERR_INVALID, "lstm_sparse_stats: lstm '%s' of graph '%s' has not run a backward yet",
                       n->info.name, g->name);
    *out = n->sparse_stats;
    out->keep = NULL;
    return FG_OK;
}

/* ---------------------------------------------------------------- build */

/* What backward of each op reads besides grad(out); params are persistent and listed too. */
static void set_saves(fg_node *n) {
    fg_ninfo *in = &n->info;
    in->n_save = 0;
#define SAVE(id) (in->save[in->n_save++] = (id))
    switch (in->op) {
    case FG_OP_CONV2D:
    case FG_OP_LINEAR:
    case FG_OP_MATMUL: SAVE(in->in[0]); SAVE(in->in[1]); break;
    case FG_OP_RELU: SAVE(in->n_aux ? in->aux[0] : in->out); break;
    case FG_OP_MAXPOOL: SAVE(in->n_aux ? in->aux[0] : in->in[0]); break;
    case FG_OP_TANH:
    case FG_OP_SIGMOID:
    case FG_OP_SOFTMAX: SAVE(in->out); break;
    case FG_OP_GELU: SAVE(in->in[0]); break;
    case FG_OP_XENT: SAVE(in->aux[0]); SAVE(in->in[1]); break;
    case FG_OP_LRN: SAVE(in->in[0]); SAVE(in->out); break;
    case FG_OP_BATCHNORM: SAVE(in->in[0]); SAVE(in->aux[0]); SAVE(in->aux[1]); SAVE(in->in[1]); break;
    case FG_OP_LAYERNORM: SAVE(in->in[0]); SAVE(in->in[1]); SAVE(in->aux[0]); SAVE(in->aux[1]); break;
    case FG_OP_LSTM:
        SAVE(in->in[0]); SAVE(in->in[1]); SAVE(in->in[2]); SAVE(in->out); SAVE(in->aux[0]);
        /* an initial state: dW_hh's first step reads h0, the first cell gradient c0 */
        if (n->h0_in >= 0) SAVE(in->in[n->h0_in]);
        if (n->c0_in >= 0) SAVE(in->in[n->c0_in]);
        break;
    case FG_OP_EMBEDDING: SAVE(in->in[0]); break; /* the ids: the table's values do not enter its gradient */
    case FG_OP_ATTENTION:
        /* q, k, v may be one tensor (self-attention without projections): list it once */
        for (int k = 0; k < 3; k++) {
            int dup = 0;
            for (int j = 0; j < k; j++) dup |= in->in[j] == in->in[k];
            if (!dup) SAVE(in->in[k]);
        }
        SAVE(in->aux[0]);
        break;
    case FG_OP_DROPOUT:
    case FG_OP_ADD:
    case FG_OP_CONCAT:
    case FG_OP_AVGPOOL:
    case FG_OP_GAP:
    case FG_OP_RESIZE:  /* a fixed linear map of the sizes */
    case FG_OP_PERMUTE:
    case FG_OP_REPEAT:
    case FG_OP_SLICE:
    case FG_OP_TOME:           /* forward only: a graph with a loss is refused */
    case FG_OP_TOME_ATTENTION: break;
    default: FG_ASSERT_MSG(0, "unknown op in set_saves");
    }
#undef SAVE
}

static void use(fg_graph *g, fg_id id, int step) {
    if (id == FG_NONE) return;
    fg_tslot *r = &g->t[g->t[id].info.alias_of];
    if (r->persistent) return;
    if (r->info.first_use < 0 || step < r->info.first_use) r->info.first_use = step;
    if (step > r->info.last_use) r->info.last_use = step;
}

/* Copies the root's liveness and storage state to its views. */
static void sync_aliases(fg_graph *g) {
    for (int i = 0; i < g->nt; i++) {
        fg_tslot *s = &g->t[i];
        if (s->info.alias_of != i) {
            fg_tslot *r = &g->t[s->info.alias_of];
            s->info.first_use = r->info.first_use;
            s->info.last_use = r->info.last_use;
            s->persistent = r->persistent;
        }
    }
}

fg_status fg_graph_storage_alloc(fg_graph *g, fg_id id) { return fg_graph_storage_alloc_at(g, id, SIZE_MAX); }

/* offset SIZE_MAX: best-fit; ZEROED: best-fit, and the storage reads as zeros */
#define ZEROED (SIZE_MAX - 1)

fg_status fg_graph_storage_alloc_at(fg_graph *g, fg_id id, size_t offset) {
    fg_id root = g->t[id].info.alias_of;
    fg_tslot *r = &g->t[root];
    if (r->storage) return FG_OK;
    void *p = NULL;
    if (offset == SIZE_MAX) FG_TRY(fg_pool_alloc(g->pool, r->info.bytes, r->info.t.name, &p));
    else if (offset == ZEROED) FG_TRY(fg_pool_alloc_zeroed(g->pool, r->info.bytes, r->info.t.name, &p));
    else FG_TRY(fg_pool_alloc_at(g->pool, offset, r->info.bytes, r->info.t.name, &p));
    r->storage = p;
    for (fg_id a = root; a != FG_NONE; a = g->t[a].next_alias) {
        g->t[a].info.t.data = p;
        g->t[a].info.t.residence = FG_RES_DEVICE;
    }
    return FG_OK;
}

void fg_graph_storage_release(fg_graph *g, fg_id id) {
    fg_id root = g->t[id].info.alias_of;
    fg_tslot *r = &g->t[root];
    if (!r->storage) return;
    fg_pool_free(g->pool, r->storage);
    r->storage = NULL;
    for (fg_id a = root; a != FG_NONE; a = g->t[a].next_alias) {
        g->t[a].info.t.data = r->home;
        g->t[a].info.t.residence = r->home ? FG_RES_HOST : FG_RES_NONE;
    }
}

void *fg_graph_storage_home(const fg_graph *g, fg_id id) {
    FG_ASSERT(id >= 0 && id < g->nt);
    return g->t[g->t[id].info.alias_of].home;
}

/* Kinds that live in host memory between uses under a home_host policy. */
static int homed_kind(fg_tkind k) { return k == FG_T_PARAM || k == FG_T_PGRAD || k == FG_T_INPUT; }

int fg_graph_storage_home_zero(const fg_graph *g, fg_id id) {
    FG_ASSERT(id >= 0 && id < g->nt);
    const fg_tslot *r = &g->t[g->t[id].info.alias_of];
    return r->home && r->home_zero;
}

void fg_graph_storage_home_written(fg_graph *g, fg_id id) {
    FG_ASSERT(id >= 0 && id < g->nt);
    g->t[g->t[id].info.alias_of].home_zero = 0;
}

void *fg_graph_storage_device_ptr(const fg_graph *g, fg_id id) {
    FG_ASSERT(id >= 0 && id < g->nt);
    return g->t[g->t[id].info.alias_of].storage;
}

void fg_graph_storage_mark(fg_graph *g, fg_id id, fg_residence res, void *data) {
    fg_id root = g->t[id].info.alias_of;
    FG_ASSERT_MSG(!g->t[root].storage, "storage_mark: release the device copy first");
    for (fg_id a = root; a != FG_NONE; a = g->t[a].next_alias) {
        g->t[a].info.t.data = data;
        g->t[a].info.t.residence = res;
    }
}

void fg_graph_set_workspace(fg_graph *g, void *ws, size_t bytes) {
    g->ws = ws;
    g->ws_bytes = bytes;
}

static fg_id make_grad(fg_graph *g, fg_id id) {
    fg_tslot *s = &g->t[id];
    if (s->info.grad != FG_NONE) return s->info.grad;
    char nm[FG_NAME_MAX];
    snprintf(nm, sizeof nm, "%.56s.grad", s->info.t.name);
    fg_tkind kind = s->info.kind == FG_T_PARAM ? FG_T_PGRAD : FG_T_GRAD;
    fg_id gid = new_tensor(g, kind, nm, FG_F32, s->info.t.ndim, s->info.t.shape);
    g->t[gid].info.grad_of = id;
    g->t[id].info.grad = gid;
    return gid;
}

/* In-place gradients of elementwise ops (Caffe's in-place ReLU, for the backward pass): when node
 * i maps x to y element by element and x (an activation, not a view) is read by no other node,
 * grad(x) is a view of grad(y): the backward kernel reads dy[k] and writes dx[k] at the same
 * index, and dy is dead after it. One tensor fewer is live at every such step (VGG-16's working
 * set at conv1_2/relu1_2 backward drops from four to three 3 GiB feature maps at batch 256). */
static void inplace_grad(fg_graph *g, int i, const int *consumers) {
    fg_node *n = &g->nodes[i];
    fg_op op = n->info.op;
    if (op != FG_OP_RELU && op != FG_OP_TANH && op != FG_OP_SIGMOID && op != FG_OP_GELU && op != FG_OP_DROPOUT) return;
    fg_id x = n->info.in[0], y = n->info.out;
    fg_tslot *xs = &g->t[x];
    if (xs->info.alias_of != x || xs->next_alias != FG_NONE || xs->info.kind != FG_T_ACT || !xs->info.requires_grad || xs->persistent ||
        xs->info.grad != FG_NONE || consumers[x] != 1 || g->t[y].info.alias_of != y || xs->info.bytes != g->t[y].info.bytes)
        return;
    fg_id rg = g->t[g->t[y].info.grad].info.alias_of;
    if (g->t[rg].persistent) return;
    char nm[FG_NAME_MAX];
    snprintf(nm, sizeof nm, "%.56s.grad", xs->info.t.name);
    int64_t shape[FG_MAX_DIMS]; /* new_tensor may move g->t */
    int ndim = xs->info.t.ndim;
    memcpy(shape, xs->info.t.shape, sizeof(int64_t) * (size_t)ndim);
    fg_id gv = new_tensor(g, FG_T_GRAD, nm, FG_F32, ndim, shape);
    g->t[gv].info.alias_of = rg;
    g->t[gv].info.grad_of = x;
    g->t[gv].next_alias = g->t[rg].next_alias;
    g->t[rg].next_alias = gv;
    g->t[x].info.grad = gv;
}

/* 1 when node n's backward writes (=) the gradient of input k: every input of most ops, the data
 * input of the ops with weights. A parameter fed there (a learned query, a ViT's position
 * embedding added to the patches) must get its gradient through scratch, added by the executor. */
static int writes_data_grad(const fg_node *n, int k) {
    switch (n->info.op) {
    case FG_OP_CONV2D:
    case FG_OP_LINEAR:
    case FG_OP_BATCHNORM:
    case FG_OP_LSTM:
    case FG_OP_LAYERNORM: return k == 0; /* the rest are the op's weights, accumulated inside */
    case FG_OP_EMBEDDING: return 0;      /* the table accumulates inside; the ids get no gradient */
    default: return 1;                   /* matmul, add, concat, attention, ...: every input written */
    }
}

static fg_status build(fg_graph *g, fg_id loss, fg_pool *pool, const fg_mem_policy *policy);

/* A graph is built once: a failed build (out of memory, a policy that cannot plan it) leaves its
 * error in the graph, so that a later build, forward or backward refuses with it instead of
 * running on half-made storage; free the graph and make a new one to try again. */
fg_status fg_graph_build(fg_graph *g, fg_id loss, fg_pool *pool, const fg_mem_policy *policy) {
    if (g->built) return fg_fail(FG_ERR_INVALID, "graph '%s' is already built", g->name);
    if (g->has_policy) /* an earlier build took a policy and failed */
        return fg_fail(FG_ERR_INVALID, "graph '%s': an earlier build failed (%s); a graph is built once: free it and "
                       "make a new one", g->name, g->status != FG_OK ? g->error : "?");
    if (!policy) return fg_fail(FG_ERR_INVALID, "graph '%s': a memory policy is required", g->name);
    if (policy->self) {
        fg_status st;
        const fg_graph *other = owned_find_or_add(policy->self, g, 1, &st);
        if (other)
            return fg_fail(FG_ERR_INVALID, "graph '%s': this memory policy is already built into graph '%s' (a policy "
                           "belongs to one graph: create one per graph; this one stays '%s''s)", g->name, other->name,
                           other->name);
        if (st != FG_OK) return fg_fail(st, "graph '%s': out of host memory", g->name);
    }
    /* take ownership first, so every failure below frees the policy with the graph */
    g->policy = *policy;
    g->has_policy = 1;
    if (g->status != FG_OK) return fg_fail(g->status, "%s", g->error);
    fg_status s = pool ? build(g, loss, pool, policy)
                       : fg_fail(FG_ERR_INVALID, "graph '%s': a device pool is required", g->name);
    if (s != FG_OK) {
        g->built = 0;
        gfail(g, s, "build failed: %s", fg_last_error()); /* fg_last_error keeps the failure's own message */
    }
    return s;
}

static fg_status build(fg_graph *g, fg_id loss, fg_pool *pool, const fg_mem_policy *policy) {
    if (loss != FG_NONE && (loss < 0 || loss >= g->nt || fg_tensor_numel(&g->t[loss].info.t) != 1))
        return fg_fail(FG_ERR_INVALID, "graph '%s': the loss must be a scalar tensor of the graph", g->name);
    for (int i = 0; loss != FG_NONE && i < g->nn; i++) {
        if (g->nodes[i].info.op == FG_OP_TOME || g->nodes[i].info.op == FG_OP_TOME_ATTENTION)
            return fg_fail(FG_ERR_UNSUPPORTED, "graph '%s': node '%s' (%s) is forward only (token merging is an "
                           "inference-time knob): build without a loss", g->name, g->nodes[i].info.name,
                           fg_op_name(g->nodes[i].info.op));
        if (g->nodes[i].info.op == FG_OP_LINEAR && g->nodes[i].p.lin.gelu)
            return fg_fail(FG_ERR_UNSUPPORTED, "graph '%s': node '%s' (linear with GELU fused) is forward only: build "
                           "without a loss, or use fg_nn_linear and fg_nn_gelu for training", g->name,
                           g->nodes[i].info.name);
    }
    g->pool = pool;
    g->loss = loss;
    int N = g->nn;

    /* requires_grad flows forward; views take their root's */
    for (int i = 0; i < N; i++) {
        fg_node *n = &g->nodes[i];
        int rg = 0;
        for (int k = 0; k < n->info.n_in; k++) rg |= g->t[g->t[n->info.in[k]].info.alias_of].info.requires_grad;
        if (n->info.op == FG_OP_XENT) rg = g->t[g->t[n->info.in[0]].info.alias_of].info.requires_grad;
        g->t[n->info.out].info.requires_grad = rg;
        for (fg_id a = g->t[n->info.out].next_alias; a != FG_NONE; a = g->t[a].next_alias) g->t[a].info.requires_grad = rg;
    }
    for (int i = 0; i < g->nt; i++) {
        fg_tslot *s = &g->t[i];
        if (s->info.alias_of != i) s->info.requires_grad = g->t[s->info.alias_of].info.requires_grad;
    }
    if (loss != FG_NONE && !g->t[g->t[loss].info.alias_of].info.requires_grad)
        return fg_fail(FG_ERR_INVALID, "graph '%s': the loss '%s' depends on no parameter, so there is nothing to "
                       "train: build with FG_NONE as the loss for inference", g->name, g->t[loss].info.t.name);
    for (int i = 0; i < N; i++) set_saves(&g->nodes[i]);

    /* persistent tensors */
    for (int i = 0; i < g->nt; i++) {
        fg_tkind k = g->t[i].info.kind;
        if (g->t[i].info.alias_of == i && (k == FG_T_INPUT || k == FG_T_PARAM || k == FG_T_STATE || g->t[i].is_output))
            g->t[i].persistent = !(policy->home_host && homed_kind(k) && !g->t[i].is_output);
    }
    if (loss != FG_NONE) g->t[g->t[loss].info.alias_of].persistent = 1;

    /* gradients: which backward nodes run, in backward order, and which input grads accumulate */
    if (loss != FG_NONE) {
        int nt0 = g->nt;
        int *written = calloc((size_t)(unsigned)nt0 + 1, sizeof(int)); /* per storage root: grad written yet */
        int *consumers = calloc((size_t)(unsigned)nt0 + 1, sizeof(int)); /* per storage root: forward reads */
        if (!written || !consumers) {
            free(written);
            free(consumers);
            return fg_fail(FG_ERR_OOM, "graph build: out of host memory");
        }
        for (int i = 0; i < N; i++)
            for (int k = 0; k < g->nodes[i].info.n_in; k++) consumers[g->t[g->nodes[i].info.in[k]].info.alias_of]++;
        fg_id lroot = g->t[loss].info.alias_of;
        for (int i = N - 1; i >= 0; i--) {
            fg_node *n = &g->nodes[i];
            fg_id out = n->info.out;
            n->bwd_active = g->t[out].info.requires_grad && (out == lroot || written[out]);
            if (!n->bwd_active) continue;
            make_grad(g, out);
            inplace_grad(g, i, consumers);
            for (int k = 0; k < n->info.n_in; k++) {
                fg_id x = n->info.in[k];
                fg_id root = g->t[x].info.alias_of;
                if (!g->t[root].info.requires_grad) continue;
                if (n->info.op == FG_OP_XENT && k == 1) continue;      /* labels */
                if (n->info.op == FG_OP_EMBEDDING && k == 0) continue; /* token ids */
                if (g->t[root].info.kind == FG_T_PARAM) {
                    make_grad(g, root);
                    /* a parameter fed as data to an op that WRITES that input's gradient gets it
                     * through scratch, which the executor adds */
                    if (writes_data_grad(n, k)) n->accum[k] = 1;
                    continue; /* param grads always accumulate (+=) inside the op */
                }
                n->accum[k] = written[root];
                written[root] = 1;
            }
        }
        free(written);
        free(consumers);
        /* grads of views are views of the root's grad */
        for (int i = 0; i < nt0; i++) {
            fg_tslot *s = &g->t[i];
            fg_id root = s->info.alias_of;
            if (root != i && g->t[root].info.grad != FG_NONE && s->info.grad == FG_NONE) {
                fg_id rg = g->t[root].info.grad;
                char nm[FG_NAME_MAX];
                snprintf(nm, sizeof nm, "%.56s.grad", s->info.t.name);
                fg_id gv = new_tensor(g, FG_T_GRAD, nm, FG_F32, s->info.t.ndim, s->info.t.shape);
                g->t[gv].info.alias_of = rg;
                g->t[gv].info.grad_of = i;
                g->t[gv].next_alias = g->t[rg].next_alias;
                g->t[rg].next_alias = gv;
                g->t[i].info.grad = gv;
            }
        }
        for (int i = 0; i < g->nt; i++)
            if (g->t[i].info.kind == FG_T_PGRAD) g->t[i].persistent = !policy->home_host;
        g->t[g->t[lroot].info.grad].persistent = 1; /* d loss / d loss = 1, set by the executor */
    }

    /* liveness */
    for (int i = 0; i < N; i++) {
        fg_node *n = &g->nodes[i];
        int sf = fg_step_of(g, i, FG_FORWARD);
        for (int k = 0; k < n->info.n_in; k++) use(g, n->info.in[k], sf);
        use(g, n->info.out, sf);
        for (int a = 0; a < n->info.n_aux; a++) use(g, n->info.aux[a], sf);
        if (loss != FG_NONE && n->bwd_active) {
            int sb = fg_step_of(g, i, FG_BACKWARD);
            for (int s = 0; s < n->info.n_save; s++) use(g, n->info.save[s], sb);
            use(g, g->t[n->info.out].info.grad, sb);
            for (int k = 0; k < n->info.n_in; k++) {
                fg_id x = n->info.in[k];
                use(g, g->t[x].info.grad, sb); /* a param grad: only when it is not persistent */
            }
        }
    }
    sync_aliases(g);
    for (int i = 0; i < N; i++) compute_ws(g, &g->nodes[i]);

    /* persistent storage, and the homes of a home_host policy */
    for (int i = 0; i < g->nt; i++)
        if (g->t[i].persistent && g->t[i].info.alias_of == i) {
            FG_TRY(fg_graph_storage_alloc_at(g, i, ZEROED));
        } else if (policy->home_host && g->t[i].info.alias_of == i && homed_kind(g->t[i].info.kind) &&
                   !g->t[i].is_output) {
            /* mmap: page-aligned zeros, not touched until written */
            size_t b = g->t[i].info.bytes ? g->t[i].info.bytes : 1;
            void *h = mmap(NULL, b, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (h == MAP_FAILED)
                return fg_fail(FG_ERR_OOM, "graph build: out of host memory for the home of '%s' (%zu bytes)",
                               g->t[i].info.t.name, b);
            g->t[i].home = h;
            g->t[i].home_zero = g->t[i].info.kind == FG_T_PGRAD;
            for (fg_id a = i; a != FG_NONE; a = g->t[a].next_alias) {
                g->t[a].info.t.data = g->t[i].home;
                g->t[a].info.t.residence = FG_RES_HOST;
            }
        }
    g->built = 1;
    if (g->policy.plan) FG_TRY(g->policy.plan(g->policy.self, g, pool));
    return FG_OK;
}

void fg_graph_init_params(fg_graph *g, fg_rng *rng) {
    FG_ASSERT_MSG(!g->owner, "init_params: this graph reads another graph's weights; initialize the owner");
    fg_weights_write_begin(g);
    for (int i = 0; i < g->np; i++) {
        fg_tslot *s = &g->t[g->params[i]];
        float *d = s->info.t.data;
        FG_ASSERT_MSG(d, "init_params: graph not built");
        size_t n = (size_t)fg_tensor_numel(&s->info.t);
        float bound;
        switch (s->init) {
        case FG_INIT_ZEROS: memset(d, 0, n * sizeof(float)); break;
        case FG_INIT_ONES:
            for (size_t j = 0; j < n; j++) d[j] = 1.0f;
            break;
        case FG_INIT_KAIMING_UNIFORM: {
            int64_t fan_in = 1;
            for (int k = 1; k < s->info.t.ndim; k++) fan_in *= s->info.t.shape[k];
            bound = 1.0f / sqrtf((float)fan_in);
            for (size_t j = 0; j < n; j++) d[j] = (2.0f * fg_rng_uniform(rng) - 1.0f) * bound;
            break;
        }
        case FG_INIT_FANIN_UNIFORM:
            bound = s->init_arg > 0 ? 1.0f / sqrtf(s->init_arg) : 0.0f;
            for (size_t j = 0; j < n; j++) d[j] = (2.0f * fg_rng_uniform(rng) - 1.0f) * bound;
            break;
        case FG_INIT_NORMAL:
            for (size_t j = 0; j < n; j++) d[j] = fg_rng_normal(rng) * s->init_arg;
            break;
        default: FG_ASSERT_MSG(0, "bad init");
        }
    }
    for (int i = 0; i < g->ns; i++) {
        fg_tslot *s = &g->t[g->states[i]];
        float *d = s->info.t.data;
        size_t n = (size_t)fg_tensor_numel(&s->info.t);
        for (size_t j = 0; j < n; j++) d[j] = s->init == FG_INIT_ONES ? 1.0f : 0.0f;
    }
    fg_weights_write_end(g);
}

void fg_graph_get_info(const fg_graph *g, fg_graph_info *out) {
    memset(out, 0, sizeof *out);
    char *saved = calloc((size_t)g->nt, 1);
    FG_ASSERT(saved);
    for (int i = 0; i < g->nn; i++) {
        const fg_node *n = &g->nodes[i];
        out->flops_fwd += n->info.flops;
        for (int p = 0; p < FG_PASS_COUNT; p++)
            if (n->info.ws_bytes[p] > out->peak_ws_bytes) out->peak_ws_bytes = n->info.ws_bytes[p];
        if (g->loss != FG_NONE && n->bwd_active)
            for (int s = 0; s < n->info.n_save; s++) saved[g->t[n->info.save[s]].info.alias_of] = 1;
    }
    for (int i = 0; i < g->nt; i++) {
        const fg_tslot *s = &g->t[i];
        if (s->info.alias_of != i) continue;
        size_t b = s->info.bytes;
        switch (s->info.kind) {
        case FG_T_PARAM: out->n_params += fg_tensor_numel(&s->info.t); out->weight_bytes += b; break;
        case FG_T_STATE: out->weight_bytes += b; break;
        case FG_T_PGRAD: out->grad_bytes += b; break;
        case FG_T_INPUT: out->input_bytes += b; break;
        case FG_T_ACT:
        case FG_T_AUX:
            out->act_bytes += b;
            if (saved[i]) out->saved_bytes += b;
            break;
        case FG_T_GRAD: out->act_grad_bytes += b; break;
        default: break;
        }
    }
    free(saved);
}

void fg_graph_print_liveness(const fg_graph *g, FILE *f) {
    static const char *kinds[FG_TKIND_COUNT] = {"input", "param", "state", "act", "aux", "grad", "pgrad"};
    int N = g->nn;
    fprintf(f, "graph %s: %d nodes, %d tensors; steps 0..%d forward, %d..%d backward\n", g->name, N, g->nt, N - 1, N,
            2 * N - 1);
    fprintf(f, "%-5s %-40s %-6s %-22s %12s %6s %6s %s\n", "id", "tensor", "kind", "shape", "bytes", "first", "last", "storage");
    for (int i = 0; i < g->nt; i++) {
        const fg_tslot *s = &g->t[i];
        char sh[96];
        fg_shape_str(sh, sizeof sh, s->info.t.ndim, s->info.t.shape);
        if (s->persistent)
            fprintf(f, "%-5d %-40s %-6s %-22s %12zu %6s %6s %s\n", i, s->info.t.name, kinds[s->info.kind], sh,
                    s->info.bytes, "-", "-", s->info.alias_of == i ? "persistent" : "view");
        else
            fprintf(f, "%-5d %-40s %-6s %-22s %12zu %6d %6d %s\n", i, s->info.t.name, kinds[s->info.kind], sh,
                    s->info.bytes, s->info.first_use, s->info.last_use, s->info.alias_of == i ? "own" : "view");
    }
    fprintf(f, "%-5s %-24s %-14s %-12s %s\n", "node", "name", "op", "workspace", "saves for backward");
    for (int i = 0; i < N; i++) {
        const fg_node *n = &g->nodes[i];
        fprintf(f, "%-5d %-24s %-14s %-12zu", i, n->info.name, fg_op_name(n->info.op),
                n->info.ws_bytes[0] > n->info.ws_bytes[1] ? n->info.ws_bytes[0] : n->info.ws_bytes[1]);
        for (int s = 0; s < n->info.n_save; s++) fprintf(f, " %s", g->t[n->info.save[s]].info.t.name);
        fprintf(f, "\n");
    }
}
