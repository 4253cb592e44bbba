/* frugal ops: kernels over plain pointers, one source file per op family (src/ops/<family>.c).
 *
 * Conventions for every kernel here:
 *  - images are NCHW, contiguous, f32; shapes are given in the comment beside each function;
 *  - backward WRITES input gradients (dinp = ..., never +=) and ACCUMULATES parameter gradients
 *    (dweight += ..., dbias += ...); parameter gradients and the input gradients of multi-input
 *    ops may be NULL when not wanted (each function says); single-input backwards (activations,
 *    softmax, cross-entropy, dropout) require their dinp;
 *  - the GEMM-based and vectorised kernels have a `_naive` twin: obvious loops, single thread,
 *    used by tests (simple pointwise and copy kernels are their own reference);
 *  - functions that can fail on user input return fg_status; pure loops return void;
 *  - indices that can grow are int64_t/size_t.
 * What each op saves for backward is documented beside its backward function; the graph layer
 * (src/graph/) turns that into the node's saved-tensor list. */
#ifndef FRUGAL_OPS_H
#define FRUGAL_OPS_H

#include "frugal/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- GEMM (src/ops/gemm.c)
 * Row-major C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C, op = transpose when 'T'.
 * Goes to oneDNN's dnnl_sgemm. */
fg_status fg_sgemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                   int64_t ldc);
void fg_sgemm_naive(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha,
                    const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                    int64_t ldc);

/* ---------------------------------------------------------------- conv2d (src/ops/conv2d.c) */

typedef struct fg_conv2d_desc {
    int64_t n, c, h, w;          /* input (N, C, H, W) */
    int64_t oc, kh, kw;          /* weight (OC, C/groups, KH, KW); bias (OC) */
    int64_t stride_h, stride_w;
    int64_t pad_h, pad_w;        /* symmetric zero padding */
    int64_t dil_h, dil_w;        /* 1 = no dilation */
    int64_t groups;              /* 1 = dense; C = OC = groups for depthwise */
} fg_conv2d_desc;

/* Algorithms, after cuDNN's: vDNN's dyn policy chooses between them layer by layer. */
typedef enum fg_conv_algo {
    FG_CONV_IMPLICIT, /* memory-optimal: direct loops, NO workspace (cuDNN IMPLICIT_GEMM) */
    FG_CONV_GEMM,     /* im2col + sgemm, workspace = the column buffer (cuDNN GEMM) */
    FG_CONV_DNNL,     /* performance-optimal: oneDNN blocked-layout primitive, workspace =
                         scratchpad + reorder buffers for src/weights/dst in blocked layout */
    FG_CONV_ALGO_COUNT
} fg_conv_algo;

const char *fg_conv_algo_name(fg_conv_algo a);
/* Checks the descriptor (positive sizes, C and OC divisible by groups, output >= 1);
 * FG_ERR_SHAPE with a message otherwise. */
fg_status fg_conv2d_check(const fg_conv2d_desc *d);
int64_t fg_conv2d_out_h(const fg_conv2d_desc *d);
int64_t fg_conv2d_out_w(const fg_conv2d_desc *d);
/* Workspace bytes the algorithm needs: the max over forward and backward. 0 for IMPLICIT. */
size_t fg_conv2d_workspace_bytes(const fg_conv2d_desc *d, fg_conv_algo algo);
/* Forward FLOPs for the whole batch (2 * multiply-adds, bias excluded). */
double fg_conv2d_flops(const fg_conv2d_desc *d);

/* out (N, OC, OH, OW) = conv(inp (N, C, H, W), weight) + bias; bias may be NULL.
 * ws must hold fg_conv2d_workspace_bytes(d, algo) bytes (NULL when that is 0). */
fg_status fg_conv2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                            const fg_conv2d_desc *d, fg_conv_algo algo, void *ws, size_t ws_bytes);
/* Saves: inp, weight. dinp written; dweight, dbias accumulated. */
fg_status fg_conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, const fg_conv2d_desc *d,
                             fg_conv_algo algo, void *ws, size_t ws_bytes);
void fg_conv2d_forward_naive(float *out, const float *inp, const float *weight, const float *bias,
                             const fg_conv2d_desc *d);
void fg_conv2d_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, const fg_conv2d_desc *d);

/* ---------------------------------------------------------------- linear, matmul (src/ops/linear.c) */

/* out (B, OC) = inp (B, IC) @ weight (OC, IC)^T + bias (OC); bias may be NULL. */
fg_status fg_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                            int64_t B, int64_t IC, int64_t OC);
/* Saves: inp, weight. dinp written; dweight, dbias accumulated. */
fg_status fg_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, int64_t B, int64_t IC, int64_t OC);
void fg_linear_forward_naive(float *out, const float *inp, const float *weight, const float *bias,
                             int64_t B, int64_t IC, int64_t OC);
void fg_linear_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, int64_t B, int64_t IC, int64_t OC);
double fg_linear_flops(int64_t B, int64_t IC, int64_t OC);
/* fg_linear_forward through oneDNN's matmul primitive, the bias (and with gelu != 0, GELU) applied
 * in its epilogue (src/ops/linear_dnnl.c; primitives cached per shape, for graphs of fixed shapes).
 * fg_linear_gelu_forward is it with gelu = 1: out = gelu(inp @ weight^T + bias). Forward only. */
fg_status fg_linear_dnnl_forward(float *out, const float *inp, const float *weight, const float *bias, int64_t B,
                                 int64_t IC, int64_t OC, int gelu);
fg_status fg_linear_gelu_forward(float *out, const float *inp, const float *weight, const float *bias,
                                 int64_t B, int64_t IC, int64_t OC);
void fg_linear_gelu_forward_naive(float *out, const float *inp, const float *weight, const float *bias,
                                  int64_t B, int64_t IC, int64_t OC);

/* c (batch, M, N) = op(a) @ op(b), a (batch, M, K) or (batch, K, M) when trans_a,
 * b (batch, K, N) or (batch, N, K) when trans_b. */
fg_status fg_matmul_forward(float *c, const float *a, const float *b, int64_t batch, int64_t M,
                            int64_t K, int64_t N, int trans_a, int trans_b);
/* Saves: a, b. da and db written (both are inputs, not parameters). */
fg_status fg_matmul_backward(float *da, float *db, const float *dc, const float *a, const float *b,
                             int64_t batch, int64_t M, int64_t K, int64_t N, int trans_a, int trans_b);
void fg_matmul_forward_naive(float *c, const float *a, const float *b, int64_t batch, int64_t M,
                             int64_t K, int64_t N, int trans_a, int trans_b);
double fg_matmul_flops(int64_t batch, int64_t M, int64_t K, int64_t N);

/* ---------------------------------------------------------------- activations (src/ops/activation.c)
 * n = number of elements. */
void fg_relu_forward(float *out, const float *inp, size_t n);
void fg_relu_backward(float *dinp, const float *dout, const float *out, size_t n); /* saves out */
/* ReLU saving one bit per element instead of its output: mask bit i (byte i / 8, bit i % 8) is
 * !(out[i] <= 0) (a NaN output passes its gradient); mask holds fg_relu_mask_bytes(n) bytes. Backward from the mask writes the same
 * gradient as fg_relu_backward, bit for bit. */
size_t fg_relu_mask_bytes(size_t n);
void fg_relu_forward_mask(float *out, uint8_t *mask, const float *inp, size_t n);
void fg_relu_backward_mask(float *dinp, const float *dout, const uint8_t *mask, size_t n);
void fg_gelu_forward(float *out, const float *inp, size_t n);                      /* exact (erf) */
void fg_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n); /* saves inp */
/* the libm (erff, expf) twins of the two above, the reference for tests */
void fg_gelu_forward_naive(float *out, const float *inp, size_t n);
void fg_gelu_backward_naive(float *dinp, const float *dout, const float *inp, size_t n);
void fg_tanh_forward(float *out, const float *inp, size_t n);
void fg_tanh_backward(float *dinp, const float *dout, const float *out, size_t n); /* saves out */
void fg_sigmoid_forward(float *out, const float *inp, size_t n);
void fg_sigmoid_backward(float *dinp, const float *dout, const float *out, size_t n); /* saves out */

/* ---------------------------------------------------------------- softmax, loss (src/ops/softmax.c) */

/* Row-wise softmax over the last dimension: inp, out (rows, cols). */
void fg_softmax_forward(float *out, const float *inp, int64_t rows, int64_t cols);
void fg_softmax_backward(float *dinp, const float *dout, const float *out, int64_t rows, int64_t cols); /* saves out */
/* Fused softmax + cross-entropy with integer labels, mean over the batch:
 * logits (B, C), labels (B) in [0, C); writes *loss and probs (B, C) (saved for backward).
 * FG_ERR_INVALID when a label is out of range. */
fg_status fg_xent_forward(float *loss, float *probs, const float *logits, const int32_t *labels,
                          int64_t B, int64_t C);
/* dlogits (B, C) = dloss * (probs - onehot(labels)) / B. Saves: probs, labels. */
void fg_xent_backward(float *dlogits, float dloss, const float *probs, const int32_t *labels,
                      int64_t B, int64_t C);

/* ---------------------------------------------------------------- elementwise, shape (src/ops/elementwise.c) */

/* Inverted dropout: element i is dropped when fg_hash_uniform(seed, i) < p, kept ones scaled by
 * 1/(1-p). The mask is regenerated from the seed in backward: nothing saved but the seed. */
void fg_dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t seed);
void fg_dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t seed);
/* out = a + b (n elements). Backward is a copy of dout to each input. */
void fg_add_forward(float *out, const float *a, const float *b, size_t n);
/* y += x (n elements): the executor's gradient accumulation. */
void fg_accumulate(float *y, const float *x, size_t n);
/* dst_a += colsum(src) and dst_b += colsum(src) (either may be NULL): src (rows, cols), the bias
 * gradients of linear and the LSTM. */
void fg_colsum_accumulate(float *dst_a, float *dst_b, const float *src, int64_t rows, int64_t cols);
/* Concatenation along one axis. With `outer` = product of dims before the axis and
 * chunk[i] = (input i's size along the axis) * (product of dims after it):
 * out is (outer, sum chunk[i]); input i is (outer, chunk[i]). */
void fg_concat_forward(float *out, const float *const *ins, const int64_t *chunk, int k, int64_t outer);
/* Splits dout back into dins[i] (written; a NULL entry is skipped). */
void fg_concat_backward(float *const *dins, const float *dout, const int64_t *chunk, int k, int64_t outer);

/* ---------------------------------------------------------------- pooling (src/ops/pooling.c) */

typedef struct fg_pooling_desc {
    int64_t n, c, h, w;       /* input (N, C, H, W) */
    int64_t kh, kw, stride_h, stride_w, pad_h, pad_w;
    int ceil_mode;            /* as PyTorch: output size rounds up (windows start inside input+left pad) */
    int count_include_pad;    /* avg pool: divide by the full window (1) or by the valid part (0) */
} fg_pooling_desc;

fg_status fg_pooling_check(const fg_pooling_desc *d);
int64_t fg_pooling_out_h(const fg_pooling_desc *d);
int64_t fg_pooling_out_w(const fg_pooling_desc *d);
/* out (N, C, OH, OW). Max pooling pads with -inf. */
void fg_maxpool2d_forward(float *out, const float *inp, const fg_pooling_desc *d);
/* Saves: inp only; the argmax (first maximum in window order, as PyTorch) is recomputed. */
void fg_maxpool2d_backward(float *dinp, const float *dout, const float *inp, const fg_pooling_desc *d);
/* The argmax stored instead: arg (N, C, OH, OW) bytes, each the offset kh_i * kw + kw_i of the
 * maximum in its (unclipped) window, the element fg_maxpool2d_backward would pick. Only for
 * windows of at most 256 elements (fg_maxpool2d_argmax_ok). Backward from it writes the same
 * gradient, bit for bit. */
int fg_maxpool2d_argmax_ok(const fg_pooling_desc *d);
void fg_maxpool2d_argmax(uint8_t *arg, const float *inp, const fg_pooling_desc *d);
void fg_maxpool2d_backward_argmax(float *dinp, const float *dout, const uint8_t *arg, const fg_pooling_desc *d);
void fg_avgpool2d_forward(float *out, const float *inp, const fg_pooling_desc *d);
void fg_avgpool2d_backward(float *dinp, const float *dout, const fg_pooling_desc *d); /* saves nothing */
void fg_maxpool2d_forward_naive(float *out, const float *inp, const fg_pooling_desc *d);
void fg_avgpool2d_forward_naive(float *out, const float *inp, const fg_pooling_desc *d);
/* out (N, C) = mean over H*W of inp (N, C, H, W). Backward saves nothing. */
void fg_global_avgpool_forward(float *out, const float *inp, int64_t N, int64_t C, int64_t HW);
void fg_global_avgpool_backward(float *dinp, const float *dout, int64_t N, int64_t C, int64_t HW);

/* ---------------------------------------------------------------- LRN (src/ops/lrn.c)
 * Across channels, as torch.nn.LocalResponseNorm(size, alpha, beta, k):
 * out[c] = inp[c] / (k + alpha/size * sum_{c' in [c - size/2, c + (size-1)/2]} inp[c']^2)^beta */
typedef struct fg_lrn_desc {
    int64_t n, c, h, w;
    int64_t size;
    float alpha, beta, k;
} fg_lrn_desc;
void fg_lrn_forward(float *out, const float *inp, const fg_lrn_desc *d);
/* Saves: inp, out (the scale is recomputed). */
void fg_lrn_backward(float *dinp, const float *dout, const float *inp, const float *out, const fg_lrn_desc *d);
void fg_lrn_forward_naive(float *out, const float *inp, const fg_lrn_desc *d);

/* ---------------------------------------------------------------- batch norm (src/ops/batchnorm.c)
 * inp, out (N, C, HW); gamma, beta, running_mean, running_var, mean, invstd (C). */
/* Training: batch statistics; writes mean and invstd = 1/sqrt(var_biased + eps) (saved for
 * backward) and updates running stats with momentum as PyTorch (running_var uses the unbiased
 * variance). */
void fg_batchnorm_forward_train(float *out, float *mean, float *invstd, float *running_mean,
                                float *running_var, const float *inp, const float *gamma,
                                const float *beta, int64_t N, int64_t C, int64_t HW, float momentum,
                                float eps);
void fg_batchnorm_forward_eval(float *out, const float *inp, const float *gamma, const float *beta,
                               const float *running_mean, const float *running_var, int64_t N,
                               int64_t C, int64_t HW, float eps);
/* Saves: inp, mean, invstd, gamma. dinp written; dgamma, dbeta accumulated. */
void fg_batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                           const float *inp, const float *mean, const float *invstd,
                           const float *gamma, int64_t N, int64_t C, int64_t HW);

/* ---------------------------------------------------------------- LSTM (src/ops/lstm.c)
 * One fused layer, unidirectional, time-major, torch.nn.LSTM semantics and gate order i, f, g, o:
 * x (T, B, I), w_ih (4H, I), w_hh (4H, H), b_ih, b_hh (4H) (each may be NULL), h0, c0 (B, H)
 * (NULL = zeros), y (T, B, H), hT, cT (B, H) (NULL = not wanted). The op runs its own time loop:
 * one GEMM for X W_ih^T over all steps, then one (B, H) x (H, 4H) GEMM and a fused gate kernel per
 * step. */
typedef struct fg_lstm_desc {
    int64_t T, B, I, H; /* time steps, batch, input size, hidden size */
} fg_lstm_desc;

/* FG_ERR_SHAPE with a message naming the field when a size is not positive (or the buffers would
 * be too large to address); FG_ERR_INVALID for a NULL descriptor. */
fg_status fg_lstm_check(const fg_lstm_desc *d);
/* Bytes of the buffer forward fills and backward reads: 5*T*B*H floats, laid out as the activated
 * gates (T, B, 4H) followed by the cell states c_1..c_T (T, B, H). 0 for a bad descriptor. */
size_t fg_lstm_saved_bytes(const fg_lstm_desc *d);
/* Scratch bytes for forward and backward (the max of both): backward's gate gradients dG
 * (T*B, 4H) plus dh and dc (B, H); forward's W_hh^T (H, 4H). 0 for a bad descriptor. */
size_t fg_lstm_workspace_bytes(const fg_lstm_desc *d);
/* Forward FLOPs of the GEMMs: 2 * T * B * 4H * (I + H). */
double fg_lstm_flops(const fg_lstm_desc *d);

/* Fills y, hT, cT and `saved` (fg_lstm_saved_bytes). ws holds ws_bytes >= fg_lstm_workspace_bytes
 * (FG_ERR_INVALID otherwise). */
fg_status fg_lstm_forward(float *y, float *hT, float *cT, float *saved, const float *x, const float *h0,
                          const float *c0, const float *w_ih, const float *w_hh, const float *b_ih,
                          const float *b_hh, const fg_lstm_desc *d, void *ws, size_t ws_bytes);
/* BPTT. Saves (reads): x, h0, c0, w_ih, w_hh, the output y and `saved` from the forward.
 * dy (T, B, H), dhT, dcT (B, H) may be NULL (= zeros). dx (T, B, I), dh0, dc0 (B, H) written;
 * dw_ih (4H, I), dw_hh (4H, H), db_ih, db_hh (4H) accumulated; every gradient may be NULL. */
fg_status fg_lstm_backward(float *dx, float *dh0, float *dc0, float *dw_ih, float *dw_hh, float *db_ih,
                           float *db_hh, const float *dy, const float *dhT, const float *dcT,
                           const float *x, const float *h0, const float *c0, const float *w_ih,
                           const float *w_hh, const float *y, const float *saved,
                           const fg_lstm_desc *d, void *ws, size_t ws_bytes);
/* Naive twins (plain loops, double accumulation, no GEMM): same arguments, same saved layout. */
fg_status fg_lstm_forward_naive(float *y, float *hT, float *cT, float *saved, const float *x,
                                const float *h0, const float *c0, const float *w_ih, const float *w_hh,
                                const float *b_ih, const float *b_hh, const fg_lstm_desc *d, void *ws,
                                size_t ws_bytes);
fg_status fg_lstm_backward_naive(float *dx, float *dh0, float *dc0, float *dw_ih, float *dw_hh,
                                 float *db_ih, float *db_hh, const float *dy, const float *dhT,
                                 const float *dcT, const float *x, const float *h0, const float *c0,
                                 const float *w_ih, const float *w_hh, const float *y,
                                 const float *saved, const fg_lstm_desc *d, void *ws, size_t ws_bytes);

/* Sparsified backwards of the LSTM, on one kernel (fg_lstm_backward_sparse) and one graph node
 * (fg_graph_set_lstm_sparsity). After the gate gradients dG_t (B, 4H) of a step are computed, a
 * mask zeroes some of them before they feed the recurrent GEMM and the parameter gradients:
 *   STEP        structured, Zhu et al. (arXiv 1806.00512), one kept set PER STEP: the hidden units
 *               are cut into blocks of `block` consecutive units (the last may be shorter); a
 *               block's score is the sum over the batch and its 4*block gate columns (j, H+j, 2H+j,
 *               3H+j) of |dG_t|; the round(drop * blocks) lowest-scoring blocks (at most blocks - 1,
 *               ties to the lower index) are zeroed. Only the recurrent GEMM shrinks.
 *   STRUCTURED  structured, one kept set PER CALL, shared by all T steps: the blocks are scored as
 *               above on the first backward step (t = T-1) only; the same blocks are zeroed at every
 *               step, so the recurrent GEMM, dW_ih, dW_hh and dx are all compact GEMMs over the 4K
 *               kept gate columns. The workspace's dG then holds the COMPACT gradients (see
 *               fg_lstm_sparse_workspace_bytes).
 *   DENSE       nothing zeroed: fg_lstm_backward.
 *   THRESHOLD   Zhu et al. 2016: every |dG_t| < tau zeroed elementwise; the GEMMs stay dense (no
 *               speed claim); stats->sparsity reports the fraction zeroed.
 *   MEPROP      Sun et al. (ICML 2017), "unified" meProp: per step, the top k of the 4H gate columns
 *               of dG_t (the output gradient of the LSTM's one linear map [x, h] -> G) by their
 *               |.| summed over the minibatch, the same k columns for every sample; k = 4H -
 *               round(drop * 4H) (at least 1), selected by quickselect; ties by column index as
 *               above. The recurrent GEMM is compact over the k columns (W_hh's rows gathered per
 *               step); the after-loop GEMMs run over the zeroed dG.
 * drop is the dropped fraction for STEP, STRUCTURED and MEPROP; tau the threshold of THRESHOLD;
 * block is checked for every variant but used by STEP and STRUCTURED only. A zero-initialised
 * variant is STEP (the first implementation), so {drop, block} initialisers keep their meaning. */
typedef enum fg_lstm_bwd {
    FG_LSTM_BWD_STEP = 0,
    FG_LSTM_BWD_STRUCTURED,
    FG_LSTM_BWD_DENSE,
    FG_LSTM_BWD_THRESHOLD,
    FG_LSTM_BWD_MEPROP,
    FG_LSTM_BWD_COUNT
} fg_lstm_bwd;

/* "step", "structured", "dense", "threshold", "meprop"; "?" out of range. */
const char *fg_lstm_bwd_name(fg_lstm_bwd v);
/* The variant named `name` (as fg_lstm_bwd_name), or FG_LSTM_BWD_COUNT when none is. */
fg_lstm_bwd fg_lstm_bwd_parse(const char *name);

typedef struct fg_lstm_sparsity {
    float drop;    /* fraction of blocks (columns for meprop) zeroed, in [0, 1); 0 = dense for step,
                      structured and meprop (threshold zeroes by tau instead) */
    int64_t block; /* hidden units per structural block, in [1, H] */
    fg_lstm_bwd variant;
    float tau;     /* THRESHOLD: |dG| < tau is zeroed, tau >= 0 (0 = dense); ignored otherwise */
} fg_lstm_sparsity;

/* What a sparse backward did. */
typedef struct fg_lstm_sparse_stats {
    int64_t blocks;        /* blocks per step: ceil(H / block) */
    int64_t dropped;       /* blocks dropped per step: min(round(drop * blocks), blocks - 1); 0 for
                              dense, threshold and meprop */
    int64_t kept_blocks;   /* kept blocks summed over the T steps: T * (blocks - dropped) */
    int64_t kept_units;    /* kept hidden units summed over the T steps (<= T * H); meprop: kept
                              gate columns / 4, rounded down */
    int64_t kept_cols;     /* kept gate columns summed over the T steps (<= T * 4H) */
    double sparsity;       /* fraction of the T*B*4H gate gradients the mask zeroed (threshold:
                              counted; the others: from the kept columns) */
    double gemm_flops;     /* GEMM FLOPs this backward issued */
    double gemm_flops_dense; /* GEMM FLOPs fg_lstm_backward issues for the same call */
    /* In: NULL, or a caller-owned (T, blocks) byte buffer; out: keep[t * blocks + q] = 1 when
     * block q was kept at step t, 0 when dropped (all 1 for dense, threshold and meprop). */
    uint8_t *keep;
} fg_lstm_sparse_stats;

/* FG_ERR_INVALID with a message naming the field when sp is NULL, drop is not in [0, 1), block
 * is not in [1, H], the variant is out of range or tau is negative or not finite; the descriptor
 * is checked first (fg_lstm_check). */
fg_status fg_lstm_sparsity_check(const fg_lstm_desc *d, const fg_lstm_sparsity *sp);
/* Workspace bytes of fg_lstm_backward_sparse: fg_lstm_workspace_bytes(d) plus, when something is
 * dropped, the variant's extras (step: W_hh in block-major row order (4H, H), a compact (B, 4H)
 * buffer, per-step scores; structured: the kept rows of W_hh and W_ih, a (B, 4H) step buffer, a
 * (4H, max(I, H)) weight-gradient buffer, scores; meprop: gathered W_hh rows, a compact (B, 4H)
 * buffer, column scores). After the call, dG (T*B, 4H) at the start of the workspace holds the
 * MASKED gate gradients, except for structured, where it holds the compact (T*B, 4K) kept
 * columns. Threshold and dense need the dense workspace. 0 for a bad descriptor or sparsity. */
size_t fg_lstm_sparse_workspace_bytes(const fg_lstm_desc *d, const fg_lstm_sparsity *sp);
/* The most fg_lstm_sparse_workspace_bytes asks for with this block over every variant and every
 * drop and tau: what a graph node plans at build so that they may change afterwards. 0 for a bad
 * descriptor or block. */
size_t fg_lstm_sparse_workspace_bytes_max(const fg_lstm_desc *d, int64_t block);
/* fg_lstm_backward's arguments, then the sparsity and the stats; the structured gate-gradient
 * mask above; same saves, same gradient conventions. Gradients are those of the masked backward (dc is not masked: the cell path
 * c_{t-1} <- c_t is elementwise and flows as in the dense backward). When the sparsity zeroes
 * nothing (step/structured: round(drop * blocks) = 0; meprop: round(drop * 4H) = 0; threshold:
 * tau = 0; dense) it runs the dense backward's code: results are bit-identical to
 * fg_lstm_backward. stats may be NULL. */
fg_status fg_lstm_backward_sparse(float *dx, float *dh0, float *dc0, float *dw_ih, float *dw_hh, float *db_ih,
                                  float *db_hh, const float *dy, const float *dhT, const float *dcT,
                                  const float *x, const float *h0, const float *c0, const float *w_ih,
                                  const float *w_hh, const float *y, const float *saved, const fg_lstm_desc *d,
                                  void *ws, size_t ws_bytes, const fg_lstm_sparsity *sp,
                                  fg_lstm_sparse_stats *stats);
/* Naive twin: plain loops, double accumulation, the mask chosen by ranking every block against
 * every other. Same workspace size as the fast one; fills the same stats (gemm_flops counts the
 * multiply-adds the fast kernel would issue). */
fg_status fg_lstm_backward_sparse_naive(float *dx, float *dh0, float *dc0, float *dw_ih, float *dw_hh,
                                        float *db_ih, float *db_hh, const float *dy, const float *dhT,
                                        const float *dcT, const float *x, const float *h0, const float *c0,
                                        const float *w_ih, const float *w_hh, const float *y,
                                        const float *saved, const fg_lstm_desc *d, void *ws, size_t ws_bytes,
                                        const fg_lstm_sparsity *sp, fg_lstm_sparse_stats *stats);

/* ---------------------------------------------------------------- layer norm (src/ops/layernorm.c)
 * Over the last dimension, as torch.nn.functional.layer_norm: inp, out (rows, C); weight, bias (C),
 * either may be NULL (1 and 0); mean, rstd (rows) = mean and 1/sqrt(biased var + eps) of each row,
 * written for backward (either may be NULL when no backward follows). */
void fg_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                          const float *bias, int64_t rows, int64_t C, float eps);
/* Saves: inp, weight, mean, rstd. dinp written; dweight, dbias accumulated. */
void fg_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                           const float *weight, const float *mean, const float *rstd, int64_t rows, int64_t C);
void fg_layernorm_forward_naive(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                                const float *bias, int64_t rows, int64_t C, float eps);
void fg_layernorm_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                                 const float *weight, const float *mean, const float *rstd, int64_t rows,
                                 int64_t C);

/* ---------------------------------------------------------------- attention (src/ops/attention.c)
 * Scaled dot-product multi-head attention per (batch, head), heads already split by the caller:
 *   probs = softmax(scale * q @ k^T),  out = probs @ v,  scale usually 1/sqrt(D).
 * q, out (B, H, Tq, D); k, v (B, H, Tk, D); probs (B, H, Tq, Tk); all contiguous. causal masks key j
 * for query i when j > i (torch's tril(ones(Tq, Tk))); masked probs are exactly 0. */
/* FG_ERR_SHAPE unless B, H >= 0 and Tq, Tk, D >= 1. */
fg_status fg_attention_check(int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t D);
/* Forward FLOPs (the two products; softmax excluded). */
double fg_attention_flops(int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t D);
/* Backward scratch: one (Tq, Tk) float matrix per (b, h) item in flight, as many items as the
 * current thread count allows (fg_threads_get). A smaller ws (>= one matrix) only runs fewer items
 * at once. 0 when a size is < 1. */
size_t fg_attention_workspace_bytes(int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t D);
/* Writes out and probs (saved for backward). No workspace. */
fg_status fg_attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                               int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t D, float scale, int causal);
/* Saves: q, k, v, probs (the mask is in probs). dq, dk, dv written; any may be NULL. ws of ws_bytes
 * (see fg_attention_workspace_bytes) is needed when dq or dk is wanted: FG_ERR_INVALID when it is
 * smaller than one (Tq, Tk) matrix. */
fg_status fg_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                                const float *v, const float *probs, int64_t B, int64_t H, int64_t Tq, int64_t Tk,
                                int64_t D, float scale, void *ws, size_t ws_bytes);
/* The same in the token-major layout: q, k, v as the linear projections make them, (B, T, H * D)
 * with the heads not split, so no permute copies them. q, out, dq, dout (B, Tq, H, D); k, v, dk, dv
 * (B, Tk, H, D): row t of head h of batch item b at ((b * T + t) * H + h) * D; probs still
 * (B, H, Tq, Tk). Same workspace as fg_attention_backward. The forward runs the first `keep` heads
 * (1 <= keep <= H; H for all, FG_ERR_SHAPE otherwise) and writes zeros in the other heads' columns
 * of out (their probs are not written). Results equal the head-major kernels' on permuted tensors
 * (the same products over strided rows). */
fg_status fg_attention_forward_tokens(float *out, float *probs, const float *q, const float *k, const float *v,
                                      int64_t B, int64_t H, int64_t keep, int64_t Tq, int64_t Tk, int64_t D,
                                      float scale, int causal);
fg_status fg_attention_backward_tokens(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                       const float *k, const float *v, const float *probs, int64_t B, int64_t H,
                                       int64_t Tq, int64_t Tk, int64_t D, float scale, void *ws, size_t ws_bytes);
/* Token keeping for run-time skipping (dynamic ViT), forward only, no causal mask: attends to the
 * key/value tokens keep[0..n_keep) (indices into Tk, the same list for every batch item and head;
 * a repeated index counts twice), exactly as fg_attention_forward on k, v gathered along Tk.
 * All Tq queries are computed: out (B, H, Tq, D), probs (B, H, Tq, n_keep). FG_ERR_SHAPE unless
 * 1 <= n_keep <= Tk; FG_ERR_INVALID for an index outside [0, Tk) or a workspace smaller than one
 * slot (the gathered k and v of one item, 2 * n_keep * D floats). */
size_t fg_attention_keep_workspace_bytes(int64_t B, int64_t H, int64_t Tq, int64_t n_keep, int64_t D);
fg_status fg_attention_forward_keep(float *out, float *probs, const float *q, const float *k, const float *v,
                                    const int32_t *keep, int64_t n_keep, int64_t B, int64_t H, int64_t Tq,
                                    int64_t Tk, int64_t D, float scale, void *ws, size_t ws_bytes);
/* Plain loops in double, single thread. */
void fg_attention_forward_naive(float *out, float *probs, const float *q, const float *k, const float *v,
                                int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t D, float scale, int causal);
void fg_attention_backward_naive(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                                 const float *v, const float *probs, int64_t B, int64_t H, int64_t Tq, int64_t Tk,
                                 int64_t D, float scale);

/* ---------------------------------------------------------------- embedding (src/ops/embedding.c)
 * A lookup table, as torch.nn.functional.embedding: ids (n) int32, w (V, E), y (n, E) with
 * y[i] = w[ids[i]]. n is the number of ids (every dimension of the ids tensor flattened). */
/* FG_ERR_INVALID naming the position, the id and V when an id is outside [0, V) (what y holds
 * then is not promised); FG_ERR_SHAPE when n < 0 or V, E < 1. */
fg_status fg_embedding_forward(float *y, const int32_t *ids, const float *w, int64_t n, int64_t V, int64_t E);
/* dw (V, E) row ids[i] += dy (n, E) row i, for i in order; dw accumulated (the table is a
 * parameter), ids get no gradient. Saves: ids only. The ids must be in range (forward checked
 * them). Deterministic: the same bits for any thread count (threads split the E columns, each
 * column summed in the order of i). */
void fg_embedding_backward(float *dw, const float *dy, const int32_t *ids, int64_t n, int64_t V, int64_t E);
/* Naive twins: plain loops, single thread; same adds in the same order, so the fast kernels equal
 * them bit for bit. The forward twin checks ids as the fast one does. */
fg_status fg_embedding_forward_naive(float *y, const int32_t *ids, const float *w, int64_t n, int64_t V, int64_t E);
void fg_embedding_backward_naive(float *dw, const float *dy, const int32_t *ids, int64_t n, int64_t V, int64_t E);

/* ---------------------------------------------------------------- bilinear resize (src/ops/resize.c)
 * torch.nn.functional.interpolate(inp, size=(oh, ow), mode='bilinear', align_corners=False) on
 * NCHW: inp (n, c, h, w) -> out (n, c, oh, ow), up or down. Equal sizes are the identity. */
typedef struct fg_resize_desc {
    int64_t n, c, h, w; /* input (N, C, H, W) */
    int64_t oh, ow;     /* output height and width */
} fg_resize_desc;
/* FG_ERR_SHAPE unless N, C >= 0 and H, W, OH, OW >= 1; FG_ERR_INVALID for NULL. */
fg_status fg_resize_check(const fg_resize_desc *d);
/* Forward FLOPs: 9 per output element (two-tap interpolation along each axis). */
double fg_resize_flops(const fg_resize_desc *d);
void fg_resize_bilinear_forward(float *out, const float *inp, const fg_resize_desc *d);
/* The transpose of the forward map. Saves nothing. dinp written (NULL: nothing done). */
void fg_resize_bilinear_backward(float *dinp, const float *dout, const fg_resize_desc *d);
/* Plain loops in double, single thread. */
void fg_resize_bilinear_forward_naive(float *out, const float *inp, const fg_resize_desc *d);
void fg_resize_bilinear_backward_naive(float *dinp, const float *dout, const fg_resize_desc *d);

/* ---------------------------------------------------------------- permute (src/ops/permute.c)
 * out = inp.permute(perm).contiguous(): inp (shape[0..ndim)) contiguous, out (shape[perm[0]], ...,
 * shape[perm[ndim-1]]) contiguous, 1 <= ndim <= FG_MAX_DIMS. Tokens <-> image is perm {0, 2, 1}
 * on (B, C, H*W) / (B, H*W, C); splitting attention heads is {0, 2, 1, 3} on (B, T, heads, D). */
/* FG_ERR_SHAPE for a bad rank or a negative size, FG_ERR_INVALID when perm is not a permutation. */
fg_status fg_permute_check(int ndim, const int64_t *shape, const int *perm);
void fg_permute_forward(float *out, const float *inp, int ndim, const int64_t *shape, const int *perm);
/* dinp (shape) = dout (permuted shape) permuted back. Saves nothing. dinp written (NULL: nothing). */
void fg_permute_backward(float *dinp, const float *dout, int ndim, const int64_t *shape, const int *perm);
/* Every element's source index by division; single thread. */
void fg_permute_forward_naive(float *out, const float *inp, int ndim, const int64_t *shape, const int *perm);

/* ---------------------------------------------------------------- repeat, slice (src/ops/tokens.c)
 * repeat: inp (m floats) tiled n times into out (n * m): a (1, ...) tensor broadcast over the batch
 * (a ViT's class token and position embedding). Backward sums the n copies, dinp (m) written.
 * slice: inp (outer, dim, inner) -> out (outer, len, inner) = inp[:, start:start+len, :]; backward
 * writes dinp (zeros outside the slice). Neither saves anything; NULL dinp: nothing done. */
void fg_repeat_forward(float *out, const float *inp, size_t m, int64_t n);
void fg_repeat_backward(float *dinp, const float *dout, size_t m, int64_t n);
void fg_repeat_backward_naive(float *dinp, const float *dout, size_t m, int64_t n); /* sums in double */
void fg_slice_forward(float *out, const float *inp, int64_t outer, int64_t dim, int64_t inner, int64_t start,
                      int64_t len);
void fg_slice_backward(float *dinp, const float *dout, int64_t outer, int64_t dim, int64_t inner, int64_t start,
                       int64_t len);
void fg_slice_forward_naive(float *out, const float *inp, int64_t outer, int64_t dim, int64_t inner, int64_t start,
                            int64_t len);

#ifdef __cplusplus
}
#endif
#endif
