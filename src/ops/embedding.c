/* Embedding lookup, as torch.nn.Embedding / torch.nn.functional.embedding: the input layer of
 * word-level language models (the LSTM system's model), mapping token ids to rows of a table.
 *
 * Shapes: ids (n) int32 (every dimension of the caller's ids tensor flattened), w and dw (V, E),
 * y and dy (n, E).
 *   forward:  y[i, :] = w[ids[i], :]                     ids checked against [0, V) first
 *   backward: dw[ids[i], :] += dy[i, :] for i = 0 .. n-1 accumulated; ids get no gradient
 * Backward reads ids and dy only (the table's values do not enter its gradient).
 *
 * Threads: forward copies rows in parallel (independent). Backward scatters rows into dw, where a
 * repeated id makes two rows of dy land on one row of dw; threads therefore split the E columns,
 * not the ids: each thread owns a slab of columns of every row of dw and adds dy's rows into it in
 * the order of i. Every element of dw sees the same additions in the same order whatever the
 * thread count, so the result is bit-identical for 1, 2 or any number of threads and equal to the
 * naive twin; no atomics, no scratch. The slabs are whole 64-byte lines so threads never write
 * the same cache line. */
#include "frugal/ops.h"

/* Elements (n * E) below which the loops stay on the calling thread: a row copy or add is a few
 * nanoseconds per cache line, so waking threads pays only past a few tens of thousands. */
#define PAR_MIN 32768
/* Floats per cache line: the granularity of the backward's column slabs. */
#define LINE_FLOATS 16

static fg_status check_sizes(const char *what, int64_t n, int64_t V, int64_t E) {
    if (n < 0 || V < 1 || E < 1)
        return fg_fail(FG_ERR_SHAPE,
                       "%s: n = %lld, V = %lld, E = %lld, expected n >= 0 and V, E >= 1 (ids, rows of the table, "
                       "embedding size)", what, (long long)n, (long long)V, (long long)E);
    return FG_OK;
}

/* FG_ERR_INVALID for the first id outside [0, V), naming its position. */
static fg_status check_ids(const char *what, const int32_t *ids, int64_t n, int64_t V) {
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || (int64_t)ids[i] >= V)
            return fg_fail(FG_ERR_INVALID,
                           "%s: id %d at position %lld is outside [0, %lld) (V = %lld rows in the table)", what,
                           (int)ids[i], (long long)i, (long long)V, (long long)V);
    return FG_OK;
}

fg_status fg_embedding_forward(float *y, const int32_t *ids, const float *w, int64_t n, int64_t V, int64_t E) {
    FG_TRY(check_sizes("embedding forward", n, V, E));
    if (n == 0) return FG_OK;
    FG_ASSERT(y && ids && w);
    /* validate every id before copying any row: one serial pass over n ints, and the error names
     * the first bad position whatever the thread count */
    FG_TRY(check_ids("embedding forward", ids, n, V));
#pragma omp parallel for schedule(static) if (n > 1 && n * E > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float *src = w + (int64_t)ids[i] * E;
        float *dst = y + i * E;
#pragma omp simd
        for (int64_t c = 0; c < E; c++) dst[c] = src[c];
    }
    return FG_OK;
}

void fg_embedding_backward(float *dw, const float *dy, const int32_t *ids, int64_t n, int64_t V, int64_t E) {
    FG_ASSERT(n >= 0 && V >= 1 && E >= 1);
    if (!dw || n == 0) return;
    FG_ASSERT(dy && ids);
    /* one slab of columns per thread, rounded up to whole cache lines */
    const int64_t nt = n * E > PAR_MIN ? fg_threads_get() : 1;
    int64_t width = (E + nt - 1) / nt;
    width = (width + LINE_FLOATS - 1) / LINE_FLOATS * LINE_FLOATS;
    const int64_t nslab = (E + width - 1) / width;
#pragma omp parallel for schedule(static) if (nslab > 1)
    for (int64_t s = 0; s < nslab; s++) {
        const int64_t c0 = s * width, c1 = c0 + width < E ? c0 + width : E;
        for (int64_t i = 0; i < n; i++) {
            const int32_t id = ids[i];
            FG_ASSERT_MSG(id >= 0 && (int64_t)id < V, "embedding backward: id out of range (forward checks the ids)");
            float *dst = dw + (int64_t)id * E;
            const float *src = dy + i * E;
#pragma omp simd
            for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
        }
    }
}

fg_status fg_embedding_forward_naive(float *y, const int32_t *ids, const float *w, int64_t n, int64_t V, int64_t E) {
    FG_TRY(check_sizes("embedding forward (naive)", n, V, E));
    FG_TRY(check_ids("embedding forward (naive)", ids, n, V));
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < E; c++) y[i * E + c] = w[(int64_t)ids[i] * E + c];
    return FG_OK;
}

void fg_embedding_backward_naive(float *dw, const float *dy, const int32_t *ids, int64_t n, int64_t V, int64_t E) {
    FG_ASSERT(n >= 0 && V >= 1 && E >= 1);
    for (int64_t i = 0; i < n; i++) {
        FG_ASSERT(ids[i] >= 0 && (int64_t)ids[i] < V);
        for (int64_t c = 0; c < E; c++) dw[(int64_t)ids[i] * E + c] += dy[i * E + c];
    }
}
