/* frugal ops: kernels over plain pointers, one source file per op family (src/ops/<family>.c).
 *
 * Conventions for every kernel here:
 *  - images are NCHW, contiguous, f32; shapes are given in the comment beside each function;
 *  - backward WRITES input gradients (dinp = ..., never +=) and ACCUMULATES parameter gradients
 *    (dweight += ..., dbias += ...); any gradient pointer may be NULL when it is not wanted;
 *  - every optimized kernel has a `_naive` twin: obvious loops, single thread, used by tests;
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
void fg_gelu_forward(float *out, const float *inp, size_t n);                      /* exact (erf) */
void fg_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n); /* saves inp */
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

#ifdef __cplusplus
}
#endif
#endif
