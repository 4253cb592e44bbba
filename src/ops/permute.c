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
 * in 32 x 32 tiles so both reads and writes stay in cache; when those two axes are the input's last
 * two, swapped (a batch of matrix transposes: tokens <-> image, (B, C, N) <-> (B, N, C)), the full
 * 8 x 8 blocks of a tile are transposed in AVX registers (8 row loads, unpack / shuffle / lane
 * permute, 8 row stores) instead of element by element. OpenMP-parallel over the outer output
 * positions and tiles; a pure copy, so every thread count gives the same bits. The naive twin
 * computes every element's source index by division. */
#include <immintrin.h>
#include <string.h>

#include "frugal/ops.h"
#include "par_impl.h"

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

/* dst[i][j] = src[j][i] for an 8 x 8 block: src rows are ls floats apart, dst rows ld. */
static inline void transpose8x8(float *dst, int64_t ld, const float *src, int64_t ls) {
    const __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ls), r2 = _mm256_loadu_ps(src + 2 * ls),
                 r3 = _mm256_loadu_ps(src + 3 * ls), r4 = _mm256_loadu_ps(src + 4 * ls),
                 r5 = _mm256_loadu_ps(src + 5 * ls), r6 = _mm256_loadu_ps(src + 6 * ls),
                 r7 = _mm256_loadu_ps(src + 7 * ls);
    /* pairs of rows interleaved: t0 = (x00 x10 x01 x11 | x04 x14 x05 x15), ... */
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
                 t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
                 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    /* columns c and c + 4 of four rows: u0 = (x00 x10 x20 x30 | x04 x14 x24 x34), ... */
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
                 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
                 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
                 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + ld, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ld, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ld, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ld, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ld, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ld, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ld, _mm256_permute2f128_ps(u3, u7, 0x31));
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
#pragma omp parallel for schedule(static) if (rows > 1 && total > FG_PAR_MIN_STREAM)
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
#pragma omp parallel for collapse(2) schedule(static) if (total > FG_PAR_MIN_STREAM)
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
            if (sa == 1 && sb == A) {
                /* a transpose: dst (A, Bn) from src (Bn, A); 8 x 8 register blocks, then the edges */
                const float *src = inp + base;
                const int64_t a8 = a0 + (a1 - a0) / 8 * 8, b8 = b0 + (b1 - b0) / 8 * 8;
                for (int64_t a = a0; a < a8; a += 8)
                    for (int64_t b = b0; b < b8; b += 8) transpose8x8(dst + a * Bn + b, Bn, src + b * A + a, A);
                for (int64_t a = a0; a < a1; a++)
                    for (int64_t b = a < a8 ? b8 : b0; b < b1; b++) dst[a * Bn + b] = src[b * A + a];
                continue;
            }
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
