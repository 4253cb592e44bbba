/* Private layout of fg_graph, shared by the builder (graph.c), the executor (exec.c), the
 * built-in memory policies (policy.c) and checkpoints (checkpoint.c). */
#ifndef FG_GRAPH_IMPL_H
#define FG_GRAPH_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "frugal/graph.h"

/* Typed per-op parameters (no untyped byte arrays). Only the member of the node's op is used. */
typedef struct fg_node_params {
    fg_conv2d_desc conv;
    fg_pooling_desc pool;
    fg_lrn_desc lrn;
    struct { int64_t B, IC, OC; int gelu, dnnl; } lin; /* forward by oneDNN matmul (dnnl), GELU fused (gelu, implies dnnl) */
    struct { int64_t batch, M, K, N; int ta, tb; } mm;
    struct { float p; } drop;
    struct { int axis; int64_t outer; int64_t chunk[FG_NODE_MAX_IN]; } cat;
    struct { float momentum, eps; int64_t N, C, HW; fg_id running_mean, running_var; } bn;
    struct { int64_t rows, cols; } sm;
    struct { int64_t N, C, HW; } gap;
    fg_lstm_desc lstm;
    struct { int64_t rows, C; float eps; } ln;
    struct { int64_t B, H, Tq, Tk, D; float scale; int causal, tokens; } attn; /* tokens: (B, T, H * D) */
    struct { int64_t n, V, E; } emb; /* ids, rows of the table, embedding size */
    fg_resize_desc rs;
    struct { int64_t n; size_t m; } rep;                            /* copies, floats per copy */
    struct { int64_t outer, dim, inner, start, len; } sl;
    struct { int64_t B, T, C, H, E, r; } tome; /* tokens T -> T - r; keys (B,T,C), H heads; x (B,T,E) */
    struct { int ndim; int64_t shape[FG_MAX_DIMS]; int perm[FG_MAX_DIMS]; } perm; /* input shape */
    size_t n;   /* element count for elementwise ops */
} fg_node_params;

typedef struct fg_node {
    fg_ninfo info;
    fg_node_params p;
    int has_bias;
    int h0_in, c0_in; /* LSTM: index in info.in of the initial state h0 / c0, -1 = zeros */
    /* backward: whether grad(in[k]) must be accumulated (another consumer wrote it first) */
    int accum[FG_NODE_MAX_IN];
    int bwd_active; /* backward runs (its output's gradient is written by someone) */
    int split_bwd;  /* conv: backward in two halves with the policy's mid hook between */
    double seconds[FG_PASS_COUNT]; /* time in the op, summed since fg_graph_reset_times */
    size_t op_ws[FG_PASS_COUNT];   /* the op's own workspace; info.ws_bytes adds accumulation scratch */
    /* LSTM: structured sparsity of the backward (fg_graph_set_lstm_sparsity; block 0 = none set,
     * the dense backward) and the stats of the last backward (keep NULL; valid when has_stats) */
    fg_lstm_sparsity sparsity;
    fg_lstm_sparse_stats sparse_stats;
    int has_stats;
    /* run-time skipping (bypass.c): the bypass set on this node, and whether the forward runs its
     * op at all (dead: nothing live reads its output under the current bypasses); runs counts the
     * forward executions of the op itself (bypass copies and dead nodes do not count) */
    fg_bypass bypass;
    int bypass_in;
    int64_t keep_heads; /* attention: heads computed (0 = all) */
    int64_t narrow_in, narrow_out; /* linear: input features read, output features written (0 = all) */
    int narrow_blocks;             /* 1x1 conv: input channel blocks (0 = not narrowed) */
    uint32_t narrow_mask;          /* 1x1 conv: the blocks multiplied */
    int dead;
    uint64_t runs;
} fg_node;

typedef struct fg_tslot {
    fg_tinfo info;
    fg_init init;
    float init_arg;
    int persistent;   /* allocated at build for the whole lifetime */
    int is_output;
    fg_id next_alias; /* linked list of views sharing this root's storage, FG_NONE ends */
    void *storage;    /* pool pointer of a root (NULL when not allocated) */
    int borrowed;     /* storage is another graph's weights (fg_graph_share_weights): never freed here */
    void *home;       /* a root kept in host memory between its uses (fg_mem_policy.home_host):
                         params, their grads and inputs; the device copy is the policy's */
    int home_zero;    /* the home holds zeros (fg_graph_zero_grad), until a policy writes it */
} fg_tslot;

struct fg_graph {
    char name[FG_NAME_MAX];
    fg_status status;
    char error[512];

    fg_tslot *t;
    int nt, cap_t;
    fg_node *nodes;
    int nn, cap_n;
    fg_id *params;
    int np, cap_p;
    fg_id *states;
    int ns, cap_s;

    int built;
    fg_id loss;
    fg_pool *pool;
    fg_mem_policy policy;
    int has_policy;
    int training;
    int n_bypass;     /* nodes with a bypass set (fg_graph_set_bypass); 0 = every node runs */
    /* what the last forward ran with, which is what its saved activations are: backward refuses a
     * forward that skipped or narrowed anything (even when the knobs were cleared since), and batch
     * norm's backward one in eval mode (even when the flag was set since) */
    int fwd_skipped, fwd_training;
    int fwd_done; /* a forward finished since the last backward began (what a backward reads) */
    int64_t forwards; /* forwards finished, ever */
    uint64_t seed;

    double recompute_seconds; /* fg_graph_recompute's time since fg_graph_reset_times */
    void *ws;         /* workspace of the node being run (set by the policy) */
    size_t ws_bytes;
    /* weights shared with other graphs (share.c): readers are forwards of the graphs that read
     * these weights, the writer any update of them (optimizer step, load, batch-norm statistics) */
    pthread_rwlock_t wlock;
    atomic_uint_fast64_t wversion; /* completed writes */
    atomic_int n_sharers;          /* graphs reading these weights */
    fg_graph *owner;               /* the graph whose weights this one reads, NULL */
    int owner_bn;                  /* a sharer's batch-norm nodes: their training forward would
                                      write the owner's statistics under a read lock */
    uint64_t seen_version;         /* a sharer: the owner's version its last forward ran with */
};

fg_tslot *fg_graph_slot(fg_graph *g, fg_id id);
/* share.c: the write side around an update of g's own weights or state (no-ops' cost when no
 * graph shares them: an uncontended lock). */
void fg_weights_write_begin(fg_graph *g);
void fg_weights_write_end(fg_graph *g);
fg_node *fg_graph_nodep(fg_graph *g, int i);
/* Steps of the 2N timeline. */
static inline int fg_step_of(const fg_graph *g, int node, fg_pass pass) {
    return pass == FG_FORWARD ? node : 2 * g->nn - 1 - node;
}
/* Runs node i's op for the pass (exec.c). */
fg_status fg_exec_node(fg_graph *g, int i, fg_pass pass);
/* Node i's forward under the bypasses (bypass.c): the op, a copy of the bypass input, zeros, or
 * nothing for a dead node. */
fg_status fg_bypass_forward(fg_graph *g, int i);
/* narrow.c: whether node n is narrowed, its forward so, and the fraction of its FLOPs it costs. */
int fg_narrow_is_set(const fg_node *n);
fg_status fg_narrow_forward(fg_graph *g, int i);
double fg_narrow_fraction(const fg_node *n);
/* Workspace bytes a node's op needs for the pass (excluding accumulation scratch); computed at
 * build and on fg_graph_set_algo, kept in fg_node.op_ws. */
size_t fg_exec_op_ws(const fg_graph *g, const fg_node *n, fg_pass pass);

#endif
