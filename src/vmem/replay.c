/* Replays a policy's sequence of device allocations and releases on a model of the device
 * pool's allocator, to find before the first iteration the smallest pool capacity the policy
 * runs in. The in-use peak alone is not enough: the pool (src/core/pool.c) is best-fit over an
 * address-ordered block list with coalescing, so it fragments like a GPU allocator, and a pool
 * whose capacity equals the peak bytes in use can still fail for want of a contiguous block.
 *
 * The model mirrors pool.c exactly: sizes rounded to FG_POOL_ALIGN; the chosen block is the
 * smallest free block that fits, the lowest address among equals; the allocation takes the
 * front of the block; a release merges with its right, then its left free neighbour. The pool
 * is assumed to hold one used prefix (the persistent tensors the graph allocated at build,
 * with no release in between) and to be free above it. */
#include <stdlib.h>
#include <string.h>

#include "vmem/vmem_impl.h"

typedef struct rblock {
    size_t off, size;
    int free;
} rblock;

static size_t round_pool(size_t x) { return (x + FG_POOL_ALIGN - 1) / FG_POOL_ALIGN * FG_POOL_ALIGN; }

int fg_vmem_replay(const fg_vmem_memop *ops, size_t n, int n_ids, size_t prefix, size_t capacity, fg_vmem_replay_out *out) {
    memset(out, 0, sizeof *out);
    out->fail_op = n;
    prefix = round_pool(prefix);
    if (capacity < prefix) return 0;
    size_t cap = 16 + 2 * n;
    rblock *b = malloc(cap * sizeof *b);
    size_t *where = malloc(sizeof(size_t) * (size_t)(n_ids > 0 ? n_ids : 1));
    FG_ASSERT_MSG(b && where, "vmem replay: out of host memory");
    size_t nb = 0;
    if (prefix) b[nb++] = (rblock){0, prefix, 0};
    if (capacity > prefix) b[nb++] = (rblock){prefix, capacity - prefix, 1};
    size_t in_use = prefix;
    out->peak = prefix;
    out->hwm = prefix;
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        const fg_vmem_memop *op = &ops[i];
        FG_ASSERT(op->id >= 0 && op->id < n_ids);
        if (op->alloc) {
            size_t need = round_pool(op->bytes);
            if (!need) continue;
            size_t best = SIZE_MAX;
            for (size_t k = 0; k < nb; k++)
                if (b[k].free && b[k].size >= need && (best == SIZE_MAX || b[k].size < b[best].size)) best = k;
            if (best == SIZE_MAX) {
                ok = 0;
                out->fail_op = i;
                break;
            }
            if (b[best].size > need) {
                FG_ASSERT(nb < cap);
                memmove(&b[best + 2], &b[best + 1], (nb - best - 1) * sizeof *b);
                b[best + 1] = (rblock){b[best].off + need, b[best].size - need, 1};
                b[best].size = need;
                nb++;
            }
            b[best].free = 0;
            where[op->id] = b[best].off;
            in_use += need;
            if (in_use > out->peak) {
                out->peak = in_use;
                out->peak_op = i;
            }
            if (b[best].off + need > out->hwm) out->hwm = b[best].off + need;
        } else {
            if (!round_pool(op->bytes)) continue;
            size_t off = where[op->id], k = 0;
            while (k < nb && b[k].off != off) k++;
            FG_ASSERT_MSG(k < nb && !b[k].free, "vmem replay: release of a block that is not allocated");
            in_use -= b[k].size;
            b[k].free = 1;
            if (k + 1 < nb && b[k + 1].free) {
                b[k].size += b[k + 1].size;
                memmove(&b[k + 1], &b[k + 2], (nb - k - 2) * sizeof *b);
                nb--;
            }
            if (k > 0 && b[k - 1].free) {
                b[k - 1].size += b[k].size;
                memmove(&b[k], &b[k + 1], (nb - k - 1) * sizeof *b);
                nb--;
            }
        }
    }
    free(b);
    free(where);
    return ok;
}

size_t fg_vmem_replay_min_capacity(const fg_vmem_memop *ops, size_t n, int n_ids, size_t prefix) {
    fg_vmem_replay_out r;
    /* unlimited: the in-use peak is a lower bound, the highest address used a first candidate */
    fg_vmem_replay(ops, n, n_ids, prefix, (size_t)1 << 50, &r);
    size_t lo = r.peak, hi = r.hwm;
    while (!fg_vmem_replay(ops, n, n_ids, prefix, hi, &r)) hi += hi - lo + FG_POOL_ALIGN;
    if (fg_vmem_replay(ops, n, n_ids, prefix, lo, &r)) return lo;
    /* invariant: lo fails, hi succeeds (taken as monotone in between) */
    while (hi - lo > FG_POOL_ALIGN) {
        size_t mid = lo + (hi - lo) / 2 / FG_POOL_ALIGN * FG_POOL_ALIGN;
        if (fg_vmem_replay(ops, n, n_ids, prefix, mid, &r)) hi = mid;
        else lo = mid;
    }
    return hi;
}

/* ---------------------------------------------------------------- the offset-planned arena
 *
 * The allocations of one iteration are known before it runs, so instead of asking the best-fit
 * pool at run time (which fragments: VGG-16 at batch 256 loses a 3 GiB block to it) the policy
 * can lay them out once, as TFLite's and XLA's buffer assignment do: each allocation is an
 * interval [its index, the index of its release) in the sequence; intervals are placed largest
 * first (earlier first among equals), each into the smallest gap, between the intervals already
 * placed that overlap it in time, that holds it, else on top of them. The layout does not depend
 * on the capacity, so "fits" is monotone in it and the smallest budget is simply the top. */

typedef struct pitem {
    size_t start, end, size, off;
    size_t op; /* index of the allocation in ops */
} pitem;

static int by_size_desc(const void *a, const void *b) {
    const pitem *x = a, *y = b;
    if (x->size != y->size) return x->size > y->size ? -1 : 1;
    return x->start < y->start ? -1 : x->start > y->start;
}

size_t fg_vmem_pack(const fg_vmem_memop *ops, size_t n, int n_ids, size_t prefix, size_t *off) {
    prefix = round_pool(prefix);
    pitem *it = malloc(sizeof *it * (n + 1));
    pitem **placed = malloc(sizeof *placed * (n + 1)); /* the items placed so far, by offset */
    size_t *open = malloc(sizeof(size_t) * (size_t)(n_ids > 0 ? n_ids : 1));
    FG_ASSERT_MSG(it && placed && open, "vmem pack: out of host memory");
    for (int i = 0; i < n_ids; i++) open[i] = SIZE_MAX;
    size_t ni = 0;
    for (size_t i = 0; i < n; i++) {
        const fg_vmem_memop *op = &ops[i];
        FG_ASSERT(op->id >= 0 && op->id < n_ids);
        if (off) off[i] = SIZE_MAX;
        size_t need = round_pool(op->bytes);
        if (!need) continue;
        if (op->alloc) {
            FG_ASSERT_MSG(open[op->id] == SIZE_MAX, "vmem pack: allocation of a block that is allocated");
            open[op->id] = ni;
            it[ni++] = (pitem){i, n, need, 0, i};
        } else {
            FG_ASSERT_MSG(open[op->id] != SIZE_MAX, "vmem pack: release of a block that is not allocated");
            it[open[op->id]].end = i;
            open[op->id] = SIZE_MAX;
        }
    }
    qsort(it, ni, sizeof *it, by_size_desc);
    size_t top = prefix;
    /* the placed items are kept sorted by offset, so the ones overlapping item k in time come in
     * offset order without sorting them (O(n^2) in all: VGG-416's ~5000 allocations pack in
     * milliseconds, and dyn's and plan's searches pack thousands of times) */
    for (size_t k = 0; k < ni; k++) {
        size_t cand = prefix, best = SIZE_MAX, best_gap = SIZE_MAX;
        for (size_t c = 0; c < k; c++) {
            const pitem *q = placed[c];
            if (!(q->start < it[k].end && it[k].start < q->end)) continue;
            if (q->off > cand) {
                size_t gap = q->off - cand;
                if (gap >= it[k].size && gap < best_gap) {
                    best = cand;
                    best_gap = gap;
                }
            }
            if (q->off + q->size > cand) cand = q->off + q->size;
        }
        it[k].off = best != SIZE_MAX ? best : cand;
        if (it[k].off + it[k].size > top) top = it[k].off + it[k].size;
        if (off) off[it[k].op] = it[k].off;
        size_t lo = 0, hi = k; /* insert after every placed item at an offset <= it[k].off */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (placed[mid]->off <= it[k].off) lo = mid + 1;
            else hi = mid;
        }
        memmove(&placed[lo + 1], &placed[lo], (k - lo) * sizeof *placed);
        placed[lo] = &it[k];
    }
    free(it);
    free(placed);
    free(open);
    return top;
}

/* The highest bytes in use (pool-rounded, prefix included): no allocator fits below it. */
static size_t in_use_peak(const fg_vmem_memop *ops, size_t n, size_t prefix) {
    size_t cur = round_pool(prefix), peak = cur;
    for (size_t i = 0; i < n; i++) {
        if (ops[i].alloc) cur += round_pool(ops[i].bytes);
        else cur -= round_pool(ops[i].bytes);
        if (cur > peak) peak = cur;
    }
    return peak;
}

int fg_vmem_fits(const fg_vmem_memop *ops, size_t n, int n_ids, size_t prefix, size_t capacity) {
    if (!capacity) return 1;
    if (in_use_peak(ops, n, prefix) > capacity) return 0; /* cheap: most of a search's trials end here */
    if (fg_vmem_pack(ops, n, n_ids, prefix, NULL) <= capacity) return 1;
    fg_vmem_replay_out r;
    return fg_vmem_replay(ops, n, n_ids, prefix, capacity, &r);
}

size_t fg_vmem_min_capacity(const fg_vmem_memop *ops, size_t n, int n_ids, size_t prefix) {
    size_t packed = fg_vmem_pack(ops, n, n_ids, prefix, NULL);
    size_t best_fit = fg_vmem_replay_min_capacity(ops, n, n_ids, prefix);
    return packed < best_fit ? packed : best_fit;
}
