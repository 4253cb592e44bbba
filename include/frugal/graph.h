/* frugal graph: build a network once for a batch shape, run forward and backward through
 * memory-policy hooks, optimizers, checkpoints.
 *
 * Building is ggml-like: every fg_nn_* call returns a tensor handle (fg_id). Errors are sticky:
 * the first shape error is kept (fg_graph_status / fg_graph_error name the op and both shapes)
 * and later calls return FG_NONE, so a model can be written without checking each line.
 *
 * Timeline: with N nodes, forward of node i is step i and backward of node i is step 2N-1-i.
 * Liveness (first and last step at which every tensor's storage is used) is computed by
 * fg_graph_build. The executor never allocates on its own: at every node boundary it calls the
 * memory policy's before/after hooks (docs/ARCHITECTURE.md, "Graph"), which allocate, release, offload, prefetch.
 *
 * Gradients: parameter gradients accumulate (+=) until fg_graph_zero_grad; activation
 * gradients are written by the first consumer processed in backward and accumulated by the
 * executor for the others (through backward workspace), so ops only ever write input grads. A
 * parameter fed as data to an op that writes that input's gradient (a position embedding added
 * to activations, a learned query) gets it the same way, through scratch added by the executor. */
#ifndef FRUGAL_GRAPH_H
#define FRUGAL_GRAPH_H

#include <stdio.h>

#include "frugal/core.h"
#include "frugal/ops.h"
#include "frugal/pool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t fg_id;
#define FG_NONE ((fg_id)-1)

typedef struct fg_graph fg_graph;

typedef enum fg_op {
    FG_OP_CONV2D, FG_OP_LINEAR, FG_OP_MATMUL, FG_OP_RELU, FG_OP_GELU, FG_OP_TANH, FG_OP_SIGMOID,
    FG_OP_SOFTMAX, FG_OP_XENT, FG_OP_DROPOUT, FG_OP_ADD, FG_OP_CONCAT, FG_OP_MAXPOOL,
    FG_OP_AVGPOOL, FG_OP_GAP, FG_OP_LRN, FG_OP_BATCHNORM, FG_OP_LSTM, FG_OP_LAYERNORM, FG_OP_ATTENTION,
    FG_OP_EMBEDDING, FG_OP_RESIZE, FG_OP_PERMUTE, FG_OP_REPEAT, FG_OP_SLICE,
    FG_OP_TOME, FG_OP_TOME_ATTENTION, /* token merging (include/frugal/ops_tome.h), forward only */
    FG_OP_COUNT
} fg_op;
const char *fg_op_name(fg_op op);

typedef enum fg_tkind {
    FG_T_INPUT,  /* fed by the caller each step (images, labels); persistent on device */
    FG_T_PARAM,  /* trainable weight; persistent on device */
    FG_T_STATE,  /* non-trainable persistent state (batch-norm running stats) */
    FG_T_ACT,    /* an op's output */
    FG_T_AUX,    /* an op's extra output kept for backward (softmax probs, bn mean/invstd, layer norm
                    mean/rstd, attention probs, the LSTM's gates and cells) */
    FG_T_GRAD,   /* gradient of an ACT */
    FG_T_PGRAD,  /* gradient of a PARAM; persistent */
    FG_TKIND_COUNT
} fg_tkind;

typedef enum fg_pass { FG_FORWARD, FG_BACKWARD, FG_PASS_COUNT } fg_pass;

typedef enum fg_init {
    FG_INIT_ZEROS, FG_INIT_ONES,
    FG_INIT_KAIMING_UNIFORM, /* PyTorch's default for conv/linear weights: U(-1/sqrt(fan_in), +) */
    FG_INIT_FANIN_UNIFORM,   /* PyTorch's default for biases: U(-1/sqrt(fan_in), +), fan_in = arg */
    FG_INIT_NORMAL,          /* N(0, arg^2) */
    FG_INIT_COUNT
} fg_init;

/* ---------------------------------------------------------------- building */

fg_status fg_graph_create(fg_graph **out, const char *name);
void fg_graph_free(fg_graph *g);
const char *fg_graph_name(const fg_graph *g);
/* First builder error (sticky), and its message. */
fg_status fg_graph_status(const fg_graph *g);
const char *fg_graph_error(const fg_graph *g);

fg_id fg_nn_input(fg_graph *g, const char *name, fg_dtype dtype, int ndim, const int64_t *shape);
/* init_arg: fan_in for FG_INIT_FANIN_UNIFORM, std for FG_INIT_NORMAL, unused otherwise. */
fg_id fg_nn_param(fg_graph *g, const char *name, int ndim, const int64_t *shape, fg_init init, float init_arg);

typedef struct fg_conv_opts { int64_t stride, pad, dilation, groups; } fg_conv_opts;
/* x (N,C,H,W), w (OC, C/groups, K, K), b (OC) or FG_NONE */
fg_id fg_nn_conv2d(fg_graph *g, const char *name, fg_id x, fg_id w, fg_id b, fg_conv_opts o);
/* x (B, IC) (or any rank, flattened to (prod of leading dims, IC)), w (OC, IC), b (OC) or FG_NONE */
fg_id fg_nn_linear(fg_graph *g, const char *name, fg_id x, fg_id w, fg_id b);
/* The same followed by GELU (exact erf form) in one pass, for inference graphs: equal to fg_nn_gelu
 * of fg_nn_linear within float rounding (src/ops/linear_dnnl.c), one node. fg_graph_build with a
 * loss refuses it (FG_ERR_UNSUPPORTED: no backward), and it cannot be narrowed. */
fg_id fg_nn_linear_gelu(fg_graph *g, const char *name, fg_id x, fg_id w, fg_id b);
/* fg_nn_linear whose forward runs oneDNN's matmul primitive with the bias in its epilogue (no
 * separate pass over the output; primitives cached per shape, so for graphs whose shapes are
 * fixed); backward and narrowing as fg_nn_linear's. Results equal fg_nn_linear's within float
 * rounding (another kernel's summation order). */
fg_id fg_nn_linear_dnnl(fg_graph *g, const char *name, fg_id x, fg_id w, fg_id b);
fg_id fg_nn_matmul(fg_graph *g, const char *name, fg_id a, fg_id b, int trans_a, int trans_b);
fg_id fg_nn_relu(fg_graph *g, const char *name, fg_id x);
fg_id fg_nn_gelu(fg_graph *g, const char *name, fg_id x);
fg_id fg_nn_tanh(fg_graph *g, const char *name, fg_id x);
fg_id fg_nn_sigmoid(fg_graph *g, const char *name, fg_id x);
fg_id fg_nn_softmax(fg_graph *g, const char *name, fg_id x);
/* logits (B, C), labels (B) int32 input -> scalar mean loss */
fg_id fg_nn_xent(fg_graph *g, const char *name, fg_id logits, fg_id labels);
fg_id fg_nn_dropout(fg_graph *g, const char *name, fg_id x, float p);
fg_id fg_nn_add(fg_graph *g, const char *name, fg_id a, fg_id b);
fg_id fg_nn_concat(fg_graph *g, const char *name, const fg_id *xs, int k, int axis);
/* A view with another shape (no copy, no node): same number of elements. */
fg_id fg_nn_reshape(fg_graph *g, const char *name, fg_id x, int ndim, const int64_t *shape);
/* (N, ...) -> (N, prod ...) */
fg_id fg_nn_flatten(fg_graph *g, const char *name, fg_id x);
typedef struct fg_pool_opts { int64_t kernel, stride, pad; int ceil_mode; int count_include_pad; } fg_pool_opts;
fg_id fg_nn_maxpool2d(fg_graph *g, const char *name, fg_id x, fg_pool_opts o);
fg_id fg_nn_avgpool2d(fg_graph *g, const char *name, fg_id x, fg_pool_opts o);
fg_id fg_nn_global_avgpool(fg_graph *g, const char *name, fg_id x); /* (N,C,H,W) -> (N,C) */
fg_id fg_nn_lrn(fg_graph *g, const char *name, fg_id x, int64_t size, float alpha, float beta, float k);
/* Creates its own gamma/beta params and running-stat state named "<name>.weight" etc. */
fg_id fg_nn_batchnorm(fg_graph *g, const char *name, fg_id x, float momentum, float eps);
/* Layer norm over the last dim C of x (any rank, rows = the leading dims flattened), as
 * torch.nn.LayerNorm(C, eps): creates params "<name>.weight" (ones) and "<name>.bias" (zeros), C
 * each (a name is required). AUX outputs "<name>.mean" and "<name>.rstd" (rows); backward reads x,
 * weight, mean and rstd. eps >= 0. */
fg_id fg_nn_layernorm(fg_graph *g, const char *name, fg_id x, float eps);
/* Scaled dot-product attention, heads already split: q (B,H,Tq,D), k and v (B,H,Tk,D) -> out
 * (B,H,Tq,D) = softmax(scale * q k^T) v; scale <= 0 means 1/sqrt(D); causal masks key j > query i.
 * AUX output "<name>.probs" (B,H,Tq,Tk); backward reads q, k, v and probs and takes a workspace
 * (fg_attention_workspace_bytes, sized with the thread count at build). No parameters. */
fg_id fg_nn_attention(fg_graph *g, const char *name, fg_id q, fg_id k, fg_id v, float scale, int causal);
/* The same on token-major q (B,Tq,C), k and v (B,Tk,C), C = heads * D, as linear projections make
 * them: out (B,Tq,C) equals splitting the heads (reshape to (B,T,heads,D), permute to
 * (B,heads,T,D)), fg_nn_attention and merging them back, without the copies (the kernel reads and
 * writes each head's columns in place). Same AUX probs (B,heads,Tq,Tk), workspace and heads kept
 * (fg_graph_set_attention_heads: the other heads' columns of out are zeros). */
fg_id fg_nn_attention_tokens(fg_graph *g, const char *name, fg_id q, fg_id k, fg_id v, int64_t heads, float scale,
                             int causal);
/* One LSTM layer (torch.nn.LSTM, num_layers 1, time-major): x (T,B,I) -> y (T,B,hidden), h0 = c0 =
 * 0; y[T-1] is the last hidden state (hT, cT are not outputs). Creates params named as
 * torch.nn.LSTM's state_dict so safetensors checkpoints line up: "<name>.weight_ih_l0" (4H,I),
 * "<name>.weight_hh_l0" (4H,H) and, when bias, "<name>.bias_ih_l0", "<name>.bias_hh_l0" (4H), all
 * U(-1/sqrt(H), 1/sqrt(H)) as PyTorch (a name is required). AUX output "<name>.saved" (the
 * kernel's gates and cells, fg_lstm_saved_bytes); backward reads x, the weights, y and saved;
 * both passes take fg_lstm_workspace_bytes of workspace. */
fg_id fg_nn_lstm(fg_graph *g, const char *name, fg_id x, int64_t hidden, int bias);
/* The same from an initial state: h0 and c0, each FG_NONE (zeros) or an f32 input (B, hidden) the
 * caller sets before forward (truncated BPTT: the previous chunk's final state). The op gives
 * them no gradient; backward reads them. */
fg_id fg_nn_lstm_state(fg_graph *g, const char *name, fg_id x, int64_t hidden, int bias, fg_id h0, fg_id c0);
/* After a forward: the final state hT and cT (B, H) of LSTM node `node` copied out (either may
 * be NULL). FG_ERR_INVALID for another node, before any forward, or when the output or `saved`
 * is not in memory (under a vmem policy with a disk tier they may be in a spill file: the LM's
 * truncated BPTT, which reads them after every chunk, then fails; keep them on the host). */
fg_status fg_graph_lstm_final_state(fg_graph *g, int node, float *hT, float *cT);
/* Embedding lookup (torch.nn.Embedding(num_embeddings, dim)): ids, an FG_I32 tensor of any shape
 * with at most FG_MAX_DIMS-1 dims (an input), -> output shape(ids) + (dim), F32. Creates param
 * "<name>.weight" (num_embeddings, dim) initialized N(0, 1) as torch (a name is required). Forward
 * fails with FG_ERR_INVALID, naming the node, the position and the id, when an id is outside
 * [0, num_embeddings). Backward accumulates into the weight's gradient; the ids get none. Saves
 * the ids only; no workspace; cheap to recompute. */
fg_id fg_nn_embedding(fg_graph *g, const char *name, fg_id ids, int64_t num_embeddings, int64_t dim);
/* Bilinear resize, F.interpolate(x, size=(oh, ow), mode='bilinear', align_corners=False): x
 * (N,C,H,W) f32 -> (N,C,oh,ow). No parameters; backward saves nothing. */
fg_id fg_nn_resize_bilinear(fg_graph *g, const char *name, fg_id x, int64_t oh, int64_t ow);
/* Axis permutation, x.permute(perm).contiguous(): x f32 of rank ndim (x's rank) -> a new
 * contiguous tensor of shape (shape[perm[0]], ...). A copy (a node), unlike fg_nn_reshape's view.
 * Image -> tokens: reshape (B,C,H,W) to (B,C,H*W), then perm {0,2,1}; splitting heads: reshape
 * (B,T,C) to (B,T,heads,D), then perm {0,2,1,3}. No parameters; backward saves nothing. */
fg_id fg_nn_permute(fg_graph *g, const char *name, fg_id x, const int *perm);
/* x (a, ...) f32 tiled n >= 1 times along axis 0 -> (n * a, ...), as torch's x.repeat(n, 1, ...):
 * a (1, T, C) parameter broadcast over a batch of n (a ViT's class token, position embedding); its
 * gradient is the sum of the n copies'. No parameters; backward saves nothing. */
fg_id fg_nn_repeat(fg_graph *g, const char *name, fg_id x, int64_t n);
/* x f32 narrowed along `axis` to [start, start + len), as torch's x.narrow(axis, start, len)
 * (contiguous copy): taking a ViT's class token x[:, 0] is axis 1, start 0, len 1. Backward writes
 * zeros outside the slice. No parameters; saves nothing. */
fg_id fg_nn_slice(fg_graph *g, const char *name, fg_id x, int axis, int64_t start, int64_t len);
/* ToMe token merging (Bolya et al., ICLR 2023; kernels and the matching rule in
 * include/frugal/ops_tome.h), forward only: x (B,T,E) -> (B,T-r,E), r tokens merged per item by
 * bipartite soft matching on keys (B,T,C) (the block's key projection, `heads` heads side by
 * side), token 0 (the class token) never merged, merged tokens averaged weighted by their sizes.
 * size: the tokens' sizes (B,T) f32, the size output of an earlier fg_nn_tome, or FG_NONE (all
 * ones). *size_out gets this node's AUX output "<name>.size" (B,T-r): the merged sizes. The
 * match lives in the node's workspace. fg_graph_build with a loss refuses a graph that holds one
 * (FG_ERR_UNSUPPORTED: inference-time knob). */
fg_id fg_nn_tome(fg_graph *g, const char *name, fg_id x, fg_id keys, fg_id size, int64_t heads, int64_t r,
                 fg_id *size_out);
/* ToMe's proportional attention, forward only: q, k, v (B,H,T,D), size (B,T) -> (B,H,T,D) =
 * softmax(scale * q k^T + log size[key]) v; scale <= 0 means 1/sqrt(D). Heads kept
 * (fg_graph_set_attention_heads) apply as to fg_nn_attention. Takes a workspace. */
fg_id fg_nn_tome_attention(fg_graph *g, const char *name, fg_id q, fg_id k, fg_id v, fg_id size, float scale);
/* The same on token-major q, k, v (B,T,C), C = heads * D, out (B,T,C) (as fg_nn_attention_tokens). */
fg_id fg_nn_tome_attention_tokens(fg_graph *g, const char *name, fg_id q, fg_id k, fg_id v, fg_id size,
                                  int64_t heads, float scale);

/* Layers: create the parameters ("<name>.weight", "<name>.bias") with PyTorch's default
 * initialization and apply the op. */
fg_id fg_layer_conv2d(fg_graph *g, const char *name, fg_id x, int64_t out_channels, int64_t kernel,
                      int64_t stride, int64_t pad, int bias);
fg_id fg_layer_linear(fg_graph *g, const char *name, fg_id x, int64_t out_features, int bias);
/* fg_layer_linear's parameters (same names and initialization) with fg_nn_linear_gelu. */
fg_id fg_layer_linear_gelu(fg_graph *g, const char *name, fg_id x, int64_t out_features, int bias);
/* fg_layer_linear's parameters with fg_nn_linear_dnnl. */
fg_id fg_layer_linear_dnnl(fg_graph *g, const char *name, fg_id x, int64_t out_features, int bias);

/* ---------------------------------------------------------------- introspection */

typedef struct fg_tinfo {
    fg_tkind kind;
    fg_tensor t;          /* shape, dtype, name; t.data / t.residence are live state */
    size_t bytes;         /* storage bytes */
    fg_id alias_of;       /* storage root (itself when not a view) */
    fg_id grad;           /* gradient tensor of this ACT/INPUT/PARAM, FG_NONE if none */
    fg_id grad_of;        /* for GRAD/PGRAD: the tensor it is the gradient of */
    int producer;         /* node that writes it (forward for ACT/AUX; backward for GRAD), -1 */
    int first_use, last_use; /* steps on the 2N timeline; -1 for persistent tensors */
    int requires_grad;
} fg_tinfo;

#define FG_NODE_MAX_IN 16
#define FG_NODE_MAX_AUX 2
#define FG_NODE_MAX_SAVE 8

typedef struct fg_ninfo {
    fg_op op;
    char name[FG_NAME_MAX];
    int n_in;
    fg_id in[FG_NODE_MAX_IN];
    fg_id out;
    int n_aux;
    fg_id aux[FG_NODE_MAX_AUX];
    int n_save;                 /* what backward reads besides grad(out) */
    fg_id save[FG_NODE_MAX_SAVE];
    fg_conv_algo algo;          /* conv only */
    size_t ws_bytes[FG_PASS_COUNT]; /* workspace for the current algo, per pass (backward includes
                                       scratch for gradient accumulation) */
    double flops;               /* forward FLOPs of the whole batch */
} fg_ninfo;

int fg_graph_n_nodes(const fg_graph *g);
int fg_graph_n_tensors(const fg_graph *g);
const fg_ninfo *fg_graph_node(const fg_graph *g, int i);
const fg_tinfo *fg_graph_tinfo(const fg_graph *g, fg_id id);
/* The live view (data, residence) of a tensor; policies update data/residence through it. */
fg_tensor *fg_graph_tensor(fg_graph *g, fg_id id);
fg_id fg_graph_find(const fg_graph *g, const char *name); /* FG_NONE if absent */
int fg_graph_n_params(const fg_graph *g);
fg_id fg_graph_param(const fg_graph *g, int i);
int fg_graph_n_states(const fg_graph *g);
fg_id fg_graph_state(const fg_graph *g, int i);
/* Splits (on = 1) a conv node's backward into its weight half (dW, db from the input and the
 * output gradient) and its data half (dX from the output gradient and the weights), with the
 * policy's mid hook between: a policy can release the input before allocating the input's
 * gradient, so the two 3-map halves never hold three maps at once. Same numbers either way. */
fg_status fg_graph_set_split_backward(fg_graph *g, int node, int on);
/* Set a conv node's algorithm (before or after build; recomputes its workspace). */
fg_status fg_graph_set_algo(fg_graph *g, int node, fg_conv_algo algo);
/* A conv node's descriptor (shapes, stride, padding, groups at the built batch size). */
fg_status fg_graph_conv_desc(const fg_graph *g, int node, fg_conv2d_desc *out);
/* Sparsity of an LSTM node's backward (fg_lstm_backward_sparse: its variant, drop, block, tau).
 * FG_ERR_INVALID naming the node when it is not an LSTM node, or sp fails fg_lstm_sparsity_check
 * for the node's sizes. Before fg_graph_build: sets it and sizes the node's backward workspace
 * (ws_bytes[FG_BACKWARD]) for the largest need of any variant with this block
 * (fg_lstm_sparse_workspace_bytes_max), whatever is given now, so that the rest can change later.
 * After build the variant, the drop and tau may change (a trainer switches between sparse and
 * dense iterations, the paper's mixed schedule), the block may not;
 * another block, or a first sparsity on a node built without one, is FG_ERR_INVALID (the
 * workspace is planned at build). A sparsity that zeroes nothing (drop 0 for step, structured and
 * meprop; tau 0 for threshold) runs the dense backward: the same bits as a node never given a
 * sparsity. */
fg_status fg_graph_set_lstm_sparsity(fg_graph *g, int node, const fg_lstm_sparsity *sp);
/* The stats of the LSTM node's last backward (out->keep is NULL); a node without a sparsity
 * reports its dense backward (one block, none dropped). FG_ERR_INVALID when the node is not an
 * LSTM node or its backward has not run yet. */
fg_status fg_graph_lstm_sparse_stats(const fg_graph *g, int node, fg_lstm_sparse_stats *out);
/* Prints every tensor with kind, bytes, first and last use, and every node with its saves. */
void fg_graph_print_liveness(const fg_graph *g, FILE *f);

/* ---------------------------------------------------------------- skipping work at run time
 *
 * Dynamic inference without retraining (issue 14): a built graph runs with parts of it switched
 * off, set between forward calls, no rebuild. A bypassed node's forward does not run its op: its
 * output is a copy of one of its inputs (FG_BYPASS_INPUT: a residual add whose branch is skipped
 * gives its residual input, so the block's output is its input; a depthwise conv passes its input
 * through) or zeros (FG_BYPASS_ZERO: a decoder stage contributing nothing to a concatenation).
 * Then every node whose output nothing live reads any more (the skipped branch, the stage's
 * projection) is dead and does not run either: liveness is recomputed from the graph's outputs
 * at each change. The memory policy's hooks still see every node, so memory behaves as planned.
 * Backward with any bypass set is refused (FG_ERR_UNSUPPORTED): this is for inference. */
typedef enum fg_bypass {
    FG_BYPASS_OFF,   /* run the op (the default) */
    FG_BYPASS_INPUT, /* output = a copy of input `input` (same shape and dtype) */
    FG_BYPASS_ZERO,  /* output = zeros */
    FG_BYPASS_AVGPOOL, /* a conv node with as many output channels as input channels, no padding,
                        no dilation, groups 1: output = average pooling of its input over the
                        conv's window and stride (SegFormer's spatial-reduction conv replaced) */
    FG_BYPASS_COUNT
} fg_bypass;
/* Sets node's bypass (input is used by FG_BYPASS_INPUT only) and recomputes which nodes run.
 * FG_ERR_INVALID for a bad node, mode or input index, FG_ERR_SHAPE when that input's shape or
 * dtype is not the output's. */
fg_status fg_graph_set_bypass(fg_graph *g, int node, fg_bypass mode, int input);
/* An attention node computes its first `keep` heads only (1 <= keep <= H; H = all, the default):
 * the output of heads keep..H-1 is zeros, so the output projection sees only the kept heads (as
 * pruning the other heads; the q, k, v projections still compute all heads). Counts as a bypass
 * (backward refused) unless keep = H. FG_ERR_INVALID for another node or keep out of range. */
fg_status fg_graph_set_attention_heads(fg_graph *g, int node, int64_t keep);
/* An attention node's (either op, either layout) heads and channels per head; FG_ERR_INVALID for
 * another node. */
fg_status fg_graph_attention_heads(const fg_graph *g, int node, int64_t *heads, int64_t *head_dim);
/* Narrowed work (dynamic ViT's heads kept and dropped decoder stages, so that FLOPs and time
 * fall with them). A linear node computes only its first `out` output features (the rest of each
 * output row is not written: only readers that ignore them may follow, e.g. attention with the
 * same heads kept) and reads only its first `in` input features (the rest are taken as zeros);
 * 0 means all. Counts as a bypass (backward refused) unless both are 0 or the full sizes.
 * FG_ERR_INVALID for another node or a count out of range. */
fg_status fg_graph_set_linear_narrow(fg_graph *g, int node, int64_t in, int64_t out);
/* A 1x1 conv (stride 1, no padding, no dilation, groups 1) whose input channels are `blocks`
 * equal blocks multiplies only the blocks whose bit is set in keep_mask (the others are taken as
 * zeros: a concatenation with zeroed parts). keep_mask with every block set is the plain conv.
 * FG_ERR_INVALID for another node, blocks not dividing the channels or outside 1..32. */
fg_status fg_graph_set_conv_narrow(fg_graph *g, int node, int blocks, uint32_t keep_mask);
/* Turns every bypass (and head limit) off: every node runs again (the plain forward, bit for bit). */
void fg_graph_clear_bypass(fg_graph *g);
/* Whether node's forward runs its op under the current bypasses (0 for bypassed and dead nodes). */
int fg_graph_node_runs_op(const fg_graph *g, int node);
/* Forward executions of node's op since build (bypass copies and dead nodes not counted). */
uint64_t fg_graph_node_runs(const fg_graph *g, int node);
/* Forward FLOPs (whole batch) of the nodes that run under the current bypasses (a head-limited
 * attention node counts keep / H of its FLOPs, a pooled conv its pooling's additions). */
double fg_graph_active_flops(const fg_graph *g);
/* The index of the node named `name`, or -1. */
int fg_graph_find_node(const fg_graph *g, const char *name);

/* ---------------------------------------------------------------- memory policies */

typedef struct fg_mem_policy {
    const char *name;
    /* once after build: sees nodes, sizes, liveness, saved lists */
    fg_status (*plan)(void *self, fg_graph *g, fg_pool *pool);
    fg_status (*before)(void *self, fg_graph *g, int node, fg_pass pass);
    fg_status (*after)(void *self, fg_graph *g, int node, fg_pass pass);
    /* backward of a conv node split by fg_graph_set_split_backward, between its weight half and
     * its data half: the node's input (in[0]) is not read after it, grad(in[0]) is not written
     * before it. May be NULL. */
    fg_status (*mid)(void *self, fg_graph *g, int node);
    /* end of an iteration (after backward, or after forward when there is no backward) */
    fg_status (*end)(void *self, fg_graph *g);
    void (*destroy)(void *self);
    void *self;
    /* 1: parameters, their gradients and the inputs are not allocated in the pool at build; each
     * lives in host memory (its "home", where fg_graph_set_input, fg_graph_init_params, the
     * optimizer and the weight files read and write it between iterations), and the policy makes a
     * device copy resident for the steps that use it (fg_graph_storage_alloc, then a copy from the
     * home; a gradient is copied back before its device copy is released, which points it at its
     * home again). Weight offload, beyond vDNN (which keeps weights on the device). */
    int home_host;
} fg_mem_policy;

/* Baseline: every tensor allocated network-wide for the whole iteration, one shared workspace
 * sized to the largest node (as frameworks of vDNN's time did). */
fg_status fg_policy_network_wide(fg_mem_policy *out);
/* Allocate at first use, release after last use (the storage-level lower bound without offload). */
fg_status fg_policy_free_when_dead(fg_mem_policy *out);

/* Policies call these to move storage in and out of the device pool. They work on the storage
 * root of `id` and update every alias's view. */
fg_status fg_graph_storage_alloc(fg_graph *g, fg_id id);
/* The same at a given pool offset (fg_pool_alloc_at; SIZE_MAX = best-fit): for policies that
 * lay out the iteration's allocations ahead of time. */
fg_status fg_graph_storage_alloc_at(fg_graph *g, fg_id id, size_t offset);
void fg_graph_storage_release(fg_graph *g, fg_id id);
/* The device pointer of id's storage root (NULL when not on the device). */
void *fg_graph_storage_device_ptr(const fg_graph *g, fg_id id);
/* The host home of id's storage root (NULL unless the policy has home_host and the root is a
 * parameter, a parameter gradient or an input). */
void *fg_graph_storage_home(const fg_graph *g, fg_id id);
/* Whether id's home holds zeros: set when fg_graph_zero_grad cleared it there, cleared by
 * fg_graph_storage_home_written (a policy copying a gradient home says so before the copy). A
 * policy can then start the device copy of a gradient with a memset instead of a copy. */
int fg_graph_storage_home_zero(const fg_graph *g, fg_id id);
void fg_graph_storage_home_written(fg_graph *g, fg_id id);
/* Points every view of id's storage root at `data` with residence `res`, without touching the
 * pool: offload policies use it to say "these bytes now live in the host tier at data" after
 * releasing the device copy (res = FG_RES_HOST or FG_RES_DISK, data may be NULL for disk). */
void fg_graph_storage_mark(fg_graph *g, fg_id id, fg_residence res, void *data);
/* Workspace for the node being run (the executor reads it): policies set it in before(). */
void fg_graph_set_workspace(fg_graph *g, void *ws, size_t bytes);
/* 1 when node i's forward can be run again during backward to rebuild its output (activation
 * checkpointing): the rerun writes only the output (ReLU's mask and max pool's argmax are left as
 * the first forward wrote them), and the op has no other AUX output and no side effect (batch
 * norm in training updates its running statistics, so it cannot). */
int fg_graph_node_recomputable(const fg_graph *g, int i);
/* Runs node i's forward op again, from a policy's before() hook during backward, into its output's
 * current storage with the workspace last set by fg_graph_set_workspace (the node's forward
 * workspace, ws_bytes[FG_FORWARD]). Same inputs and algorithm give the same bytes as the first
 * forward (dropout masks are regenerated from the iteration's seed). The inputs and the output
 * must be resident. The seconds spent are added to fg_graph_recompute_time. */
fg_status fg_graph_recompute(fg_graph *g, int i);
double fg_graph_recompute_time(const fg_graph *g);
fg_pool *fg_graph_pool(fg_graph *g);

/* ---------------------------------------------------------------- build and run */

/* Marks a tensor (e.g. the logits) as an output: it is allocated for the whole run, like inputs,
 * so the caller can read it after forward or backward with any policy. The loss is always an
 * output. Call before fg_graph_build. */
void fg_graph_mark_output(fg_graph *g, fg_id id);
/* Freezes the graph: computes requires_grad, gradient tensors, saved lists, liveness and
 * workspace; allocates persistent tensors (inputs, params, state, param grads) in `pool`;
 * calls policy->plan. loss = FG_NONE builds for inference only; a loss that depends on no
 * parameter is FG_ERR_INVALID. The graph takes ownership of the policy, also when build fails
 * (destroy is called by fg_graph_free), except when the graph is already built, an earlier
 * build of it failed, or the policy (its self) is already built into another live graph
 * (FG_ERR_INVALID: nothing changes hands; one policy per graph). A graph is built once: after
 * a failed build it keeps the error (fg_graph_status / fg_graph_error), forward and backward
 * refuse with it, and trying again takes a new graph. */
fg_status fg_graph_build(fg_graph *g, fg_id loss, fg_pool *pool, const fg_mem_policy *policy);
/* Initializes every param with its declared init from the rng, and state (running mean 0, var 1).
 * Call after a successful fg_graph_build, on a graph that owns its weights (aborts otherwise). */
void fg_graph_init_params(fg_graph *g, fg_rng *rng);
/* Copies host data into an input tensor (bytes must match). */
fg_status fg_graph_set_input(fg_graph *g, fg_id id, const void *data, size_t bytes);
void fg_graph_set_training(fg_graph *g, int training);
int fg_graph_training(const fg_graph *g); /* the flag fg_graph_set_training set */
/* Seed for this iteration's dropout masks (a node's mask uses a hash of seed and node index). */
void fg_graph_set_seed(fg_graph *g, uint64_t seed);
/* A graph reading another's weights (fg_graph_share_weights) refuses a training-mode forward when
 * it has batch-norm nodes (it would write the owner's statistics): FG_ERR_INVALID. */
fg_status fg_graph_forward(fg_graph *g);
/* Backward of the last forward: FG_ERR_INVALID when no forward finished since the last backward
 * (none ran, it failed, or a backward already used it); FG_ERR_UNSUPPORTED while a part is
 * skipped or narrowed, when the last forward ran with one (its saved activations are that
 * forward's, even once the knobs are cleared), and for batch norm after an eval-mode forward. */
fg_status fg_graph_backward(fg_graph *g);
void fg_graph_zero_grad(fg_graph *g);
/* As torch.nn.utils.clip_grad_norm_(params, max_norm): the L2 norm of all parameter gradients
 * together (summed in double), and when it exceeds max_norm every gradient is scaled by
 * max_norm / (norm + 1e-6). Returns the norm before clipping. Gradients that are not resident
 * (no data: on disk, or released by the policy) are left out of both. A norm that is not finite
 * is returned and nothing is scaled (the caller decides whether to skip the step). */
double fg_graph_clip_grad_norm(fg_graph *g, double max_norm);
/* The loss value after forward (the scalar loss tensor). */
float fg_graph_loss(const fg_graph *g);
/* Copies a tensor out to host memory (e.g. logits after forward); FG_ERR_INVALID if its storage
 * is not resident. */
fg_status fg_graph_read(fg_graph *g, fg_id id, void *dst, size_t bytes);

/* Seconds spent in node i's op for the pass (excluding the policy's hooks), summed since the
 * last fg_graph_reset_times: the measured layer times of the benchmarks and of vmem's planner. */
double fg_graph_node_time(const fg_graph *g, int node, fg_pass pass);
void fg_graph_reset_times(fg_graph *g); /* also resets fg_graph_recompute_time */

/* Totals for `frugal model info` and for vmem's budgets. */
typedef struct fg_graph_info {
    int64_t n_params;
    double flops_fwd;       /* whole batch */
    size_t weight_bytes;    /* params + state */
    size_t grad_bytes;      /* param grads */
    size_t act_bytes;       /* every ACT/AUX storage (network-wide allocation of activations) */
    size_t saved_bytes;     /* storage saved for backward (read by some backward node) */
    size_t act_grad_bytes;  /* every GRAD storage */
    size_t peak_ws_bytes;   /* largest workspace of any node in either pass */
    size_t input_bytes;
} fg_graph_info;
void fg_graph_get_info(const fg_graph *g, fg_graph_info *out);

/* ---------------------------------------------------------------- shared weights
 *
 * One model, several threads (GA3C: predictor threads run forward on batches of states while a
 * trainer thread updates the weights). Each thread builds its own graph (own activations, batch
 * size, pool and policy) with the same parameter and state names and shapes, for inference
 * (loss FG_NONE), and points it at the owner's weights. A sharing graph's forward holds the
 * owner's weights lock for reading, so it always sees one whole version of the weights; every
 * update of the owner's weights (fg_optim_step, fg_graph_load, fg_graph_init_params, batch norm's
 * running statistics in a training forward) holds it for writing. Free sharing graphs before the
 * owner. */

/* g reads owner's params and state from now on (g's own copies are released). FG_ERR_SHAPE naming
 * the tensor when a name is missing in owner or the shapes differ; FG_ERR_INVALID when g was built
 * with a loss, either graph is unbuilt, or either already shares (one owner, no chains);
 * FG_ERR_UNSUPPORTED when either graph's policy keeps weights in host memory (weight offload). */
fg_status fg_graph_share_weights(fg_graph *g, fg_graph *owner);
/* Writes of the weights so far (the owner's count); for a sharing graph, the owner's count its
 * last forward ran with (how stale its policy was, in GA3C's terms). */
uint64_t fg_graph_weights_version(const fg_graph *g);

/* ---------------------------------------------------------------- optimizers */

typedef enum fg_optim_kind { FG_OPTIM_SGD, FG_OPTIM_ADAM, FG_OPTIM_ADAMW, FG_OPTIM_RMSPROP, FG_OPTIM_KIND_COUNT } fg_optim_kind;
typedef struct fg_optim_cfg {
    fg_optim_kind kind;
    float lr;
    float momentum;      /* SGD (PyTorch semantics, dampening 0) */
    float weight_decay;  /* SGD/Adam/RMSProp: L2 added to the gradient; AdamW: decoupled */
    float beta1, beta2;  /* Adam/AdamW */
    float eps;           /* Adam/AdamW/RMSProp */
    float alpha;         /* RMSProp decay of the squared-gradient average */
    int eps_inside_sqrt; /* RMSProp: GA3C/TensorFlow form lr*g/sqrt(v+eps) instead of lr*g/(sqrt(v)+eps) */
} fg_optim_cfg;
fg_optim_cfg fg_optim_defaults(fg_optim_kind kind, float lr);
const char *fg_optim_kind_name(fg_optim_kind k);
fg_status fg_optim_kind_parse(const char *s, fg_optim_kind *out);

typedef struct fg_optim fg_optim;
/* State buffers are allocated in host memory, one per param per moment, zeroed. */
fg_status fg_optim_create(fg_optim **out, fg_graph *g, const fg_optim_cfg *cfg);
void fg_optim_free(fg_optim *o);
fg_status fg_optim_step(fg_optim *o);
/* Optimizer state for checkpoints: n buffers, each named "<param>.<moment>". */
int fg_optim_n_state(const fg_optim *o);
float *fg_optim_state(fg_optim *o, int i, const char **name, int64_t *numel);
int64_t fg_optim_steps(const fg_optim *o);
const fg_optim_cfg *fg_optim_get_cfg(const fg_optim *o);
/* Changes the learning rate (schedules); takes effect at the next step. */
void fg_optim_set_lr(fg_optim *o, float lr);
void fg_optim_set_steps(fg_optim *o, int64_t steps);

/* ---------------------------------------------------------------- checkpoints (safetensors) */

/* Writes params and state (and optimizer state when o != NULL) with metadata (model name,
 * format version, and the extra key/value pairs, n_meta of them). Atomic. Holds the read side of
 * the weights' lock (the owner's, for a sharing graph) until the file is written, so a save from
 * another thread while the optimizer steps writes one whole version (the step waits meanwhile). */
fg_status fg_graph_save(fg_graph *g, const fg_optim *o, const char *path, int n_meta,
                        const char *const *meta_keys, const char *const *meta_values);
/* Loads params and state by name, shapes checked (and optimizer state when o != NULL). Save and
 * load need a built graph (FG_ERR_INVALID otherwise). */
fg_status fg_graph_load(fg_graph *g, fg_optim *o, const char *path);

#ifdef __cplusplus
}
#endif
#endif
