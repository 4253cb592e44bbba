/* Axis permutation of a contiguous tensor (torch's x.permute(perm).contiguous()): the layout
 * changes a vision transformer needs between its token form and its image form, and for splitting
 * attention heads:
 *   image -> tokens  (B, C, H*W) -> (B, H*W, C)        perm {0, 2, 1}   (x.flatten(2).transpose(1, 2))
 *   tokens -> image  (B, H*W, C) -> (B, C, H*W)        perm {0, 2, 1}, then a reshape view to (B, C, H, W)
 *   split heads      (B, T, heads, D) -> (B, heads, T, D)   perm {0, 2, 1, 3}, and back.
 *
 * Shapes: inp (shape[0], ..., shape[ndim-1]), contiguous; out (shape[perm[0]], ..., shape[perm[ndim-1]]),
 * contiguous: out[j_0, ..., j_{n-1}] = inp[i] with i[perm[k]] = j_k. 1 <= ndim <= FG_MAX_DIMS.
 * Backward: dinp = dout permuted by the inverse permutation, WRITTEN. No parameters, saves nothing.
 *
 * Fast kernel: adjacent axes that stay adjacent and in order are merged first (so (B, T, h, D) ->
 * (B, h, T, D) is a batch of (T, h) transposes of D-float rows), then: when the last axis stays
 * last, rows of that length are copied with memcpy; otherwise the last two output axes are walked
 * in 32 x 32 tiles so both reads and writes stay in cache. OpenMP-parallel over the outer output
 * positions; a pure copy, so every thread count gives the same bits. The naive twin computes every
 * element's source index by division. */
#include <string.h>

#include "frugal/ops.h"

#define PAR_MIN 16384
#define TILE 32

fg_status fg_permute_check(int ndim, const int64_t *shape, const int *perm) {
    if (ndim < 1 || ndim > FG_MAX_DIMS)
        return fg_fail(FG_ERR_SHAPE, "permute: %d dims, expected 1..%d", ndim, FG_MAX_DIMS);
    int seen[FG_MAX_DIMS] = {0};
    for (int k = 0; k < ndim; k++) {
        if (shape[k] < 0) return fg_fail(FG_ERR_SHAPE, "permute: dim %d is %lld, expected >= 0", k, (long long)shape[k]);
        if (perm[k] < 0 || perm[k] >= ndim || seen[perm[k]]++)
            return fg_fail(FG_ERR_INVALID, "permute: perm[%d] = %d is not a permutation of 0..%d", k, perm[k], ndim - 1);
    }
    return FG_OK;
}

/* Merges runs of input axes that appear consecutively and in order in perm: the same copy with
 * fewer, longer axes. Writes the merged input shape and permutation; returns their rank. */
static int merge_axes(int ndim, const int64_t *shape, const int *perm, int64_t *mshape, int *mperm) {
    /* groups in output order: group g covers input axes perm[start_g] .. perm[start_g] + len - 1 */
    int gstart[FG_MAX_DIMS], glen[FG_MAX_DIMS], ng = 0;
    for (int k = 0; k < ndim; k++) {
        if (ng > 0 && perm[k] == perm[k - 1] + 1) glen[ng - 1]++;
        else gstart[ng] = perm[k], glen[ng] = 1, ng++;
    }
    /* rank of each group by its first input axis = its position in the merged input */
    for (int gi = 0; gi < ng; gi++) {
        int rank = 0;
        for (int gj = 0; gj < ng; gj++) rank += gstart[gj] < gstart[gi];
        mperm[gi] = rank;
        int64_t sz = 1;
        for (int a = 0; a < glen[gi]; a++) sz *= shape[gstart[gi] + a];
        mshape[rank] = sz;
    }
    return ng;
}

void fg_permute_forward(float *out, const float *inp, int ndim, const int64_t *shape, const int *perm) {
    FG_ASSERT(fg_permute_check(ndim, shape, perm) == FG_OK);
    int64_t s[FG_MAX_DIMS];
    int p[FG_MAX_DIMS];
    const int n = merge_axes(ndim, shape, perm, s, p);
    int64_t total = 1;
    for (int k = 0; k < n; k++) total *= s[k];
    if (total == 0) return;
    if (n == 1) {
        memcpy(out, inp, (size_t)total * sizeof(float));
        return;
    }
    /* input strides of the merged axes; output shape */
    int64_t istr[FG_MAX_DIMS], oshape[FG_MAX_DIMS], ostr_in[FG_MAX_DIMS];
    istr[n - 1] = 1;
    for (int k = n - 2; k >= 0; k--) istr[k] = istr[k + 1] * s[k + 1];
    for (int k = 0; k < n; k++) oshape[k] = s[p[k]], ostr_in[k] = istr[p[k]];
    if (p[n - 1] == n - 1) {
        /* the last axis stays last (splitting heads): rows of oshape[n-1] floats, one memcpy each */
        const int64_t row = oshape[n - 1], rows = total / row;
#pragma omp parallel for schedule(static) if (rows > 1 && total > PAR_MIN)
        for (int64_t r = 0; r < rows; r++) {
            int64_t rem = r, src = 0;
            for (int k = n - 2; k >= 0; k--) {
                src += (rem % oshape[k]) * ostr_in[k];
                rem /= oshape[k];
            }
            memcpy(out + r * row, inp + src, (size_t)row * sizeof(float));
        }
        return;
    }
    /* tiles over the last two output axes a (rows) and b (columns) */
    const int64_t A = oshape[n - 2], Bn = oshape[n - 1], sa = ostr_in[n - 2], sb = ostr_in[n - 1];
    const int64_t outer = total / (A * Bn);
    const int64_t ta = (A + TILE - 1) / TILE, tb = (Bn + TILE - 1) / TILE;
#pragma omp parallel for collapse(2) schedule(static) if (total > PAR_MIN)
    for (int64_t o = 0; o < outer; o++)
        for (int64_t t = 0; t < ta * tb; t++) {
            int64_t rem = o, base = 0;
            for (int k = n - 3; k >= 0; k--) {
                base += (rem % oshape[k]) * ostr_in[k];
                rem /= oshape[k];
            }
            const int64_t a0 = (t / tb) * TILE, b0 = (t % tb) * TILE;
            const int64_t a1 = a0 + TILE < A ? a0 + TILE : A, b1 = b0 + TILE < Bn ? b0 + TILE : Bn;
            float *dst = out + o * A * Bn;
            for (int64_t a = a0; a < a1; a++)
                for (int64_t b = b0; b < b1; b++) dst[a * Bn + b] = inp[base + a * sa + b * sb];
        }
}

void fg_permute_backward(float *dinp, const float *dout, int ndim, const int64_t *shape, const int *perm) {
    if (!dinp) return;
    int64_t oshape[FG_MAX_DIMS];
    int inv[FG_MAX_DIMS];
    for (int k = 0; k < ndim; k++) oshape[k] = shape[perm[k]], inv[perm[k]] = k;
    fg_permute_forward(dinp, dout, ndim, oshape, inv);
}

void fg_permute_forward_naive(float *out, const float *inp, int ndim, const int64_t *shape, const int *perm) {
    int64_t total = 1, istr[FG_MAX_DIMS];
    for (int k = 0; k < ndim; k++) total *= shape[k];
    istr[ndim - 1] = 1;
    for (int k = ndim - 2; k >= 0; k--) istr[k] = istr[k + 1] * shape[k + 1];
    for (int64_t j = 0; j < total; j++) {
        int64_t rem = j, src = 0;
        for (int k = ndim - 1; k >= 0; k--) {
            const int64_t ext = shape[perm[k]];
            src += (rem % ext) * istr[perm[k]];
            rem /= ext;
        }
        out[j] = inp[src];
    }
}
