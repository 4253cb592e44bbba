/* Token merging (ToMe: Bolya, Fu, Dai, Zhang, Feichtenhofer, Hoffman, "Token Merging: Your ViT But
 * Faster", ICLR 2023), the training-free knob of dynamic ViT (issue 14): kernels over plain
 * pointers (src/ops/tome.c). Forward only: the knobs are inference-time, and the graph refuses a
 * backward through them.
 *
 * Shapes (contiguous, row-major):
 *   keys   (B, T, C)   the block's key projection, heads side by side: head h is columns
 *                      [h * C / H, (h + 1) * C / H) (the layout before the head split)
 *   x      (B, T, E)   the tokens to merge (the block's residual stream after attention)
 *   size   (B, T)      tokens' sizes (how many input patches each stands for); NULL = all ones
 *                      for fg_tome_merge; the proportional attention requires it
 *   map    (B, T) i32  where each token goes: an index in [0, T - r)
 *   out    (B, T - r, E), out_size (B, T - r)
 *
 * Matching (bipartite soft matching, per batch item): metric = the keys averaged over heads
 * (B, T, C / H), each row divided by its L2 norm; set A is the tokens at even positions, set B
 * at odd positions; every A token's most similar B token (cosine; the first on ties) is its
 * edge; the r A tokens with the most similar edges are merged into their B token, except token 0
 * (the class token), which is never merged. The output order is ToMe's: the unmerged A tokens
 * in their original order (so the class token stays first), then every B token in order.
 * Merging is the size-weighted average: out = sum(size * x) / sum(size) over the tokens mapped
 * to a slot, out_size = sum(size).
 *
 * Proportional attention (ToMe's, for the blocks after a merge): per (b, h)
 *   out = softmax(scale * q k^T + log(size)[key]) v,  q, k, v, out (B, H, T, D), size (B, T),
 * so a token that stands for s patches weighs as s copies of itself. keep (1..H) computes heads
 * 0..keep-1 and writes zeros for the others (the heads-kept knob). */
#ifndef FRUGAL_OPS_TOME_H
#define FRUGAL_OPS_TOME_H

#include "frugal/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* FG_ERR_SHAPE unless B >= 1, T >= 3, C >= 1, H >= 1 divides C and 1 <= r <= (T - 1) / 2 (the
 * class token protected, at most half of the others merged: ToMe's limit). */
fg_status fg_tome_check(int64_t B, int64_t T, int64_t C, int64_t H, int64_t r);
/* Scratch of fg_tome_match for all B items (metric rows, edges, order). */
size_t fg_tome_match_workspace_bytes(int64_t B, int64_t T, int64_t C, int64_t H);
/* map (B, T) from keys (B, T, C) with H heads, r tokens merged per item. ws: see above. Items in
 * parallel (OpenMP). */
void fg_tome_match(int32_t *map, const float *keys, int64_t B, int64_t T, int64_t C, int64_t H, int64_t r, void *ws);
/* The obvious version: the same map (test twin). */
void fg_tome_match_naive(int32_t *map, const float *keys, int64_t B, int64_t T, int64_t C, int64_t H, int64_t r);
/* Size-weighted average of the tokens mapped to each slot; out_size may be NULL. */
void fg_tome_merge(float *out, float *out_size, const float *x, const float *size, const int32_t *map, int64_t B,
                   int64_t T, int64_t E, int64_t r);
/* FLOPs of match + merge: the head mean, the norms, the (T/2)^2 similarities, the weighted sums. */
double fg_tome_flops(int64_t B, int64_t T, int64_t C, int64_t H, int64_t E, int64_t r);

/* Proportional attention. ws holds, per item in flight, the (T, T) logits and T log-sizes
 * (T * T + T floats): fg_tome_attention_workspace_bytes (sized for the current thread count);
 * FG_ERR_INVALID when it is smaller than one item's. */
size_t fg_tome_attention_workspace_bytes(int64_t B, int64_t H, int64_t T);
fg_status fg_tome_attention_forward(float *out, const float *q, const float *k, const float *v, const float *size,
                                    int64_t B, int64_t H, int64_t keep, int64_t T, int64_t D, float scale, void *ws,
                                    size_t ws_bytes);
/* The same in the token-major layout (q, k, v, out (B, T, H, D), as fg_attention_forward_tokens). */
fg_status fg_tome_attention_forward_tokens(float *out, const float *q, const float *k, const float *v,
                                           const float *size, int64_t B, int64_t H, int64_t keep, int64_t T,
                                           int64_t D, float scale, void *ws, size_t ws_bytes);
void fg_tome_attention_forward_naive(float *out, const float *q, const float *k, const float *v, const float *size,
                                     int64_t B, int64_t H, int64_t keep, int64_t T, int64_t D, float scale);
/* 4 B keep T^2 D (as fg_attention_flops) plus the T^2 bias additions per head. */
double fg_tome_attention_flops(int64_t B, int64_t keep, int64_t T, int64_t D);

#ifdef __cplusplus
}
#endif
#endif
