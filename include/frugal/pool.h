/* The device pool: the stand-in for GPU memory (docs/ARCHITECTURE.md, "The device").
 *
 * A fixed capacity (0 = unlimited) carved from one reserved virtual range; best-fit allocation
 * with coalescing of neighbouring free blocks; every block aligned to 64 bytes. Statistics give
 * bytes in use, the peak, the time-weighted average since the last reset and the largest free
 * block. A request past capacity returns FG_ERR_OOM with requested and available bytes in the
 * message. vDNN's cudaMalloc/cnmem maps onto fg_pool_alloc. Thread-safe (one mutex). */
#ifndef FRUGAL_POOL_H
#define FRUGAL_POOL_H

#include "frugal/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FG_POOL_ALIGN 64

typedef struct fg_pool fg_pool;

typedef struct fg_pool_stats {
    size_t capacity;        /* 0 = unlimited */
    size_t in_use;          /* bytes in live blocks (rounded to alignment) */
    size_t peak;            /* max in_use since create or fg_pool_reset_stats */
    double avg_in_use;      /* time-weighted average of in_use since the last reset */
    size_t largest_free;    /* largest free block inside the reserved range (capacity pools) */
    size_t top;             /* end offset of the highest live block (0 when empty) */
    size_t n_blocks;        /* live blocks */
    uint64_t n_allocs;      /* allocations since create */
} fg_pool_stats;

/* capacity 0 = unlimited. */
fg_status fg_pool_create(fg_pool **out, size_t capacity);
void fg_pool_destroy(fg_pool *p);
/* bytes == 0 returns a valid unique pointer-free result: *out = NULL, FG_OK. `what` names the
 * request in the OOM message (a tensor name). */
fg_status fg_pool_alloc(fg_pool *p, size_t bytes, const char *what, void **out);
/* The same, and the block reads as zeros. Pages of the pool never handed out before are not
 * written (they are mmap's zeros), so a large zeroed allocation in a fresh pool costs no page
 * faults until it is used (a dry run that plans a model never touches its weights). */
fg_status fg_pool_alloc_zeroed(fg_pool *p, size_t bytes, const char *what, void **out);
/* Allocates exactly [offset, offset + bytes) of the pool (offset from the pool's base, a multiple
 * of FG_POOL_ALIGN): for planners that lay out a known sequence of allocations ahead of time (an
 * offset-planned arena, as TFLite's and XLA's buffer assignment) instead of asking best-fit.
 * FG_ERR_OOM when the range passes the capacity or any byte of it is in use. */
fg_status fg_pool_alloc_at(fg_pool *p, size_t offset, size_t bytes, const char *what, void **out);
void fg_pool_free(fg_pool *p, void *ptr);
fg_pool_stats fg_pool_get_stats(fg_pool *p);
void fg_pool_reset_stats(fg_pool *p);
/* Called with (time, in_use) after every alloc/free; used by the memory-over-time trace. */
typedef void (*fg_pool_observer)(void *user, double t, size_t in_use);
void fg_pool_set_observer(fg_pool *p, fg_pool_observer fn, void *user);

#ifdef __cplusplus
}
#endif
#endif
