/* The device pool (docs/ARCHITECTURE.md, "The device").
 *
 * One virtual range is reserved up front (the capacity, or a large range with MAP_NORESERVE when
 * unlimited), so pointers are stable and fragmentation is real, as on a GPU. Blocks are kept in
 * an array sorted by offset; allocation is best-fit over free blocks, a free merges with free
 * neighbours. All sizes are rounded up to FG_POOL_ALIGN. A mutex makes it safe to call from the
 * link's copy threads. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "frugal/pool.h"

typedef struct block {
    size_t off, size;
    int free;
} block;

struct fg_pool {
    pthread_mutex_t mu;
    unsigned char *base;
    size_t reserved;  /* bytes of the virtual range */
    size_t capacity;  /* 0 = unlimited */
    block *blocks;
    size_t n, cap;
    size_t in_use, peak;
    size_t hwm;       /* end of the highest block ever handed out: above it the range is untouched
                         fresh mmap memory, which reads as zero */
    size_t n_live;
    uint64_t n_allocs;
    double t_reset, t_last, integral;
    fg_pool_observer obs;
    void *obs_user;
};

static size_t round_up(size_t x) { return (x + FG_POOL_ALIGN - 1) / FG_POOL_ALIGN * FG_POOL_ALIGN; }

fg_status fg_pool_create(fg_pool **out, size_t capacity) {
    fg_pool *p = calloc(1, sizeof *p);
    if (!p) return fg_fail(FG_ERR_OOM, "pool: cannot allocate the pool descriptor");
    size_t want = capacity ? round_up(capacity) : ((size_t)1 << 40);
    void *base = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    while (base == MAP_FAILED && !capacity && want > ((size_t)1 << 30)) {
        want /= 2; /* unlimited: take the largest range the kernel grants */
        base = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    }
    if (base == MAP_FAILED) {
        free(p);
        return fg_fail(FG_ERR_OOM, "pool: cannot reserve %zu bytes of address space for the device pool", want);
    }
    p->base = base;
    p->reserved = want;
    p->capacity = capacity;
    p->cap = 64;
    p->blocks = malloc(p->cap * sizeof *p->blocks);
    if (!p->blocks) {
        munmap(base, want);
        free(p);
        return fg_fail(FG_ERR_OOM, "pool: cannot allocate block table");
    }
    p->n = 1;
    p->blocks[0] = (block){0, want, 1};
    pthread_mutex_init(&p->mu, NULL);
    p->t_reset = p->t_last = fg_time_now();
    *out = p;
    return FG_OK;
}

void fg_pool_destroy(fg_pool *p) {
    if (!p) return;
    munmap(p->base, p->reserved);
    free(p->blocks);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* integrate in_use over time up to now; caller holds the lock */
static void tick(fg_pool *p) {
    double now = fg_time_now();
    p->integral += (double)p->in_use * (now - p->t_last);
    p->t_last = now;
}

static void notify(fg_pool *p) {
    if (p->obs) p->obs(p->obs_user, p->t_last, p->in_use);
}

static size_t largest_free_locked(const fg_pool *p) {
    size_t best = 0;
    for (size_t i = 0; i < p->n; i++)
        if (p->blocks[i].free && p->blocks[i].size > best) best = p->blocks[i].size;
    return best;
}

static fg_status grow_table(fg_pool *p) {
    if (p->n + 2 <= p->cap) return FG_OK;
    block *nb = realloc(p->blocks, 2 * p->cap * sizeof *nb);
    if (!nb) return fg_fail(FG_ERR_OOM, "device pool: cannot grow block table");
    p->blocks = nb;
    p->cap *= 2;
    return FG_OK;
}

/* Marks [off, off + need) of free block i used, splitting off the free parts on either side;
 * updates the statistics and returns the pointer; with zero, the block reads as zeros (only the
 * part below the high-water mark is written: pages never handed out are still mmap's zeros and
 * are not touched). Caller holds the lock and has checked the fit and grown the table. */
static void *take(fg_pool *p, size_t i, size_t off, size_t need, int zero) {
    if (zero && off < p->hwm) memset(p->base + off, 0, (off + need < p->hwm ? off + need : p->hwm) - off);
    if (off + need > p->hwm) p->hwm = off + need;
    block b = p->blocks[i];
    if (off > b.off) { /* free part on the left stays at i */
        memmove(&p->blocks[i + 1], &p->blocks[i], (p->n - i) * sizeof(block));
        p->blocks[i].size = off - b.off;
        p->n++;
        i++;
    }
    if (b.off + b.size > off + need) {
        memmove(&p->blocks[i + 1], &p->blocks[i], (p->n - i) * sizeof(block));
        p->blocks[i + 1] = (block){off + need, b.off + b.size - off - need, 1};
        p->n++;
    }
    p->blocks[i] = (block){off, need, 0};
    tick(p);
    p->in_use += need;
    if (p->in_use > p->peak) p->peak = p->in_use;
    p->n_live++;
    p->n_allocs++;
    notify(p);
    return p->base + off;
}

static fg_status over_capacity(fg_pool *p, size_t need, const char *what) {
    size_t avail = p->capacity - p->in_use;
    pthread_mutex_unlock(&p->mu);
    return fg_fail(FG_ERR_OOM, "device pool: cannot allocate %zu bytes for %s: %zu of %zu bytes available", need,
                   what ? what : "a tensor", avail, p->capacity);
}

/* A request whose aligned size does not fit in size_t (round_up would wrap to a small number). */
static fg_status too_large(size_t bytes, const char *what) {
    return fg_fail(FG_ERR_OOM, "device pool: cannot allocate %zu bytes for %s: more than any pool can hold", bytes,
                   what ? what : "a tensor");
}

static fg_status alloc_best_fit(fg_pool *p, size_t bytes, const char *what, void **out, int zero) {
    *out = NULL;
    if (bytes == 0) return FG_OK;
    if (bytes > SIZE_MAX - FG_POOL_ALIGN) return too_large(bytes, what);
    size_t need = round_up(bytes);
    pthread_mutex_lock(&p->mu);
    if (p->capacity && need > p->capacity - p->in_use) return over_capacity(p, need, what);
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < p->n; i++)
        if (p->blocks[i].free && p->blocks[i].size >= need &&
            (best == SIZE_MAX || p->blocks[i].size < p->blocks[best].size))
            best = i;
    if (best == SIZE_MAX) {
        size_t lf = largest_free_locked(p);
        size_t avail = p->capacity ? p->capacity - p->in_use : p->reserved - p->in_use;
        const size_t reserved = p->reserved;
        pthread_mutex_unlock(&p->mu);
        if (avail < need) /* not fragmentation: the request is larger than all that is free */
            return fg_fail(FG_ERR_OOM, "device pool: cannot allocate %zu bytes for %s: %zu bytes free of the %zu "
                           "the pool holds", need, what ? what : "a tensor", avail, reserved);
        return fg_fail(FG_ERR_OOM,
                       "device pool: cannot allocate %zu bytes for %s: %zu bytes free but fragmented "
                       "(largest free block %zu bytes)",
                       need, what ? what : "a tensor", avail, lf);
    }
    fg_status s = grow_table(p);
    if (s == FG_OK) *out = take(p, best, p->blocks[best].off, need, zero);
    pthread_mutex_unlock(&p->mu);
    return s;
}

fg_status fg_pool_alloc(fg_pool *p, size_t bytes, const char *what, void **out) {
    return alloc_best_fit(p, bytes, what, out, 0);
}

fg_status fg_pool_alloc_zeroed(fg_pool *p, size_t bytes, const char *what, void **out) {
    return alloc_best_fit(p, bytes, what, out, 1);
}

fg_status fg_pool_alloc_at(fg_pool *p, size_t offset, size_t bytes, const char *what, void **out) {
    *out = NULL;
    if (bytes == 0) return FG_OK;
    FG_ASSERT_MSG(offset % FG_POOL_ALIGN == 0, "pool: alloc_at offset not aligned");
    if (bytes > SIZE_MAX - FG_POOL_ALIGN) return too_large(bytes, what);
    size_t need = round_up(bytes);
    pthread_mutex_lock(&p->mu);
    if (p->capacity && need > p->capacity - p->in_use) return over_capacity(p, need, what);
    size_t limit = p->capacity ? p->capacity : p->reserved;
    if (offset > limit || need > limit - offset) {
        pthread_mutex_unlock(&p->mu);
        return fg_fail(FG_ERR_OOM, "device pool: cannot place %zu bytes for %s at offset %zu: the pool ends at %zu",
                       need, what ? what : "a tensor", offset, limit);
    }
    size_t lo = 0, hi = p->n; /* the block containing offset: last with off <= offset */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (p->blocks[mid].off <= offset) lo = mid + 1;
        else hi = mid;
    }
    const block *b = &p->blocks[lo - 1];
    if (!b->free || b->off + b->size < offset + need) {
        pthread_mutex_unlock(&p->mu);
        return fg_fail(FG_ERR_OOM, "device pool: cannot place %zu bytes for %s at offset %zu: the range is in use",
                       need, what ? what : "a tensor", offset);
    }
    fg_status s = grow_table(p);
    if (s == FG_OK) *out = take(p, lo - 1, offset, need, 0);
    pthread_mutex_unlock(&p->mu);
    return s;
}

void fg_pool_free(fg_pool *p, void *ptr) {
    if (!ptr) return;
    pthread_mutex_lock(&p->mu);
    FG_ASSERT_MSG((unsigned char *)ptr >= p->base && (unsigned char *)ptr < p->base + p->reserved,
                  "pointer not from this pool");
    size_t off = (size_t)((unsigned char *)ptr - p->base);
    size_t lo = 0, hi = p->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (p->blocks[mid].off < off) lo = mid + 1;
        else hi = mid;
    }
    FG_ASSERT_MSG(lo < p->n && p->blocks[lo].off == off && !p->blocks[lo].free, "double free or bad pointer");
    tick(p);
    p->in_use -= p->blocks[lo].size;
    p->n_live--;
    p->blocks[lo].free = 1;
    /* merge with the right neighbour, then the left */
    if (lo + 1 < p->n && p->blocks[lo + 1].free) {
        p->blocks[lo].size += p->blocks[lo + 1].size;
        memmove(&p->blocks[lo + 1], &p->blocks[lo + 2], (p->n - lo - 2) * sizeof(block));
        p->n--;
    }
    if (lo > 0 && p->blocks[lo - 1].free) {
        p->blocks[lo - 1].size += p->blocks[lo].size;
        memmove(&p->blocks[lo], &p->blocks[lo + 1], (p->n - lo - 1) * sizeof(block));
        p->n--;
    }
    notify(p);
    pthread_mutex_unlock(&p->mu);
}

fg_pool_stats fg_pool_get_stats(fg_pool *p) {
    fg_pool_stats s;
    pthread_mutex_lock(&p->mu);
    tick(p);
    s.capacity = p->capacity;
    s.in_use = p->in_use;
    s.peak = p->peak;
    double span = p->t_last - p->t_reset;
    s.avg_in_use = span > 0 ? p->integral / span : (double)p->in_use;
    s.largest_free = largest_free_locked(p);
    s.top = 0;
    for (size_t i = p->n; i-- > 0;)
        if (!p->blocks[i].free) {
            s.top = p->blocks[i].off + p->blocks[i].size;
            break;
        }
    s.n_blocks = p->n_live;
    s.n_allocs = p->n_allocs;
    pthread_mutex_unlock(&p->mu);
    return s;
}

void fg_pool_reset_stats(fg_pool *p) {
    pthread_mutex_lock(&p->mu);
    p->peak = p->in_use;
    p->integral = 0;
    p->t_reset = p->t_last = fg_time_now();
    pthread_mutex_unlock(&p->mu);
}

void fg_pool_set_observer(fg_pool *p, fg_pool_observer fn, void *user) {
    pthread_mutex_lock(&p->mu);
    p->obs = fn;
    p->obs_user = user;
    pthread_mutex_unlock(&p->mu);
}
