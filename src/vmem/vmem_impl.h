/* Private pieces of vmem shared by its files: the tiers (tier.c), the trace (trace.c) and the
 * policy state (policy.c). The link (link.c) is used only through include/frugal/vmem.h. */
#ifndef FG_VMEM_IMPL_H
#define FG_VMEM_IMPL_H

#include <pthread.h>

#include "frugal/vmem.h"

/* ---------------------------------------------------------------- tiers (tier.c) */

/* Where one offloaded storage root lives between its offload and its prefetch. Placement is
 * decided once at plan time and is the same every iteration. */
typedef struct fg_vmem_slot {
    fg_id root;
    char name[FG_NAME_MAX];
    size_t bytes;
    int on_disk;        /* 0: host arena at host_off; 1: its own spill file */
    size_t host_off;
    int fd;             /* spill file, -1 when on the host tier */
    char *path;         /* spill file path (malloc'd), NULL when on the host tier */
    int valid;          /* 1 once this iteration's offload copy completed without error */
    /* schedule (steps of the 2N timeline) */
    int producer;       /* forward node that writes it: the offload is issued after it */
    int off_wait;       /* the offload is waited for (and the device copy released) after this */
    int bf;             /* first backward step that reads it: its prefetch is waited for before */
} fg_vmem_slot;

typedef struct fg_vmem_tiers {
    unsigned char *host;   /* the one host arena (64-byte aligned) */
    size_t host_bytes;
    char *spill_dir;       /* NULL = no disk tier */
    size_t disk_bytes;
    int n_disk;
} fg_vmem_tiers;

/* Places slots[0..n) (in the order given: earlier = preferred for the host tier) into the host
 * arena up to host_capacity (0 = unlimited) and spill files beyond; allocates the arena once and
 * creates the spill files. FG_ERR_OOM when the host tier is too small and there is no spill
 * directory; FG_ERR_IO naming the file when a spill file cannot be created. */
fg_status fg_vmem_tiers_place(fg_vmem_tiers *t, fg_vmem_slot *slots, int n, size_t host_capacity);
/* Frees the arena, closes and removes the spill files. */
void fg_vmem_tiers_free(fg_vmem_tiers *t, fg_vmem_slot *slots, int n);

/* ---------------------------------------------------------------- replay (replay.c) */

/* One device allocation (alloc = 1) or release of `id` (a storage root, or another id for a
 * workspace) at a step of the 2N timeline, in the order the policy's hooks will issue them. */
typedef struct fg_vmem_memop {
    int alloc;
    int id;
    size_t bytes;
    int step;
} fg_vmem_memop;

typedef struct fg_vmem_replay_out {
    size_t peak;    /* highest bytes in use (pool-rounded, prefix included) */
    size_t peak_op; /* index of the allocation that reached it */
    size_t hwm;     /* highest address used + 1 */
    size_t fail_op; /* first allocation that found no block (n when none failed) */
} fg_vmem_replay_out;

/* Replays ops on a model of the pool's allocator with `capacity` bytes, of which the first
 * `prefix` are in use. Returns 1 when every allocation finds a block. */
int fg_vmem_replay(const fg_vmem_memop *ops, size_t n, int n_ids, size_t prefix, size_t capacity, fg_vmem_replay_out *out);
/* The smallest capacity at which the replay succeeds (binary search between the in-use peak and
 * the highest address used with unlimited capacity, assuming success is monotone in between). */
size_t fg_vmem_replay_min_capacity(const fg_vmem_memop *ops, size_t n, int n_ids, size_t prefix);

/* ---------------------------------------------------------------- trace (trace.c) */

typedef struct fg_vmem_trace {
    pthread_mutex_t mu;
    fg_vmem_trace_mode mode;
    fg_vmem_trace_event *ev;
    size_t n, cap, max;
    double t0;
    int truncated;
} fg_vmem_trace;

void fg_vmem_trace_init(fg_vmem_trace *tr, fg_vmem_trace_mode mode, size_t max);
void fg_vmem_trace_destroy(fg_vmem_trace *tr);
/* Drops the events and restarts the clock. */
void fg_vmem_trace_restart(fg_vmem_trace *tr);
/* Thread-safe (called by the executor, the pool observer and copy threads). */
void fg_vmem_trace_add(fg_vmem_trace *tr, double t, size_t device_bytes, fg_vmem_ev_kind kind, int node, fg_pass pass,
                       fg_id tensor);
size_t fg_vmem_trace_copy(fg_vmem_trace *tr, fg_vmem_trace_event *dst, size_t cap);
size_t fg_vmem_trace_size(fg_vmem_trace *tr);
/* CSV, atomic (node and tensor names from g). */
fg_status fg_vmem_trace_write_file(fg_vmem_trace *tr, const fg_graph *g, const char *path);

#endif
