/* Private pieces of vmem shared by its files: the tiers (tier.c), the replay of the pool
 * (replay.c), the trace (trace.c), the schedule (schedule.c), the searches of dyn and plan
 * (search.c), the time model (predict.c) and the policy state and hooks (policy.c). The link
 * (link.c) is used only through include/frugal/vmem.h. */
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
/* The offset-planned arena (replay.c): lays out the allocations of ops above `prefix` and returns
 * the top (the smallest capacity the layout runs in); off[i] (may be NULL) gets the offset of
 * allocation i (SIZE_MAX for releases and empty allocations). */
size_t fg_vmem_pack(const fg_vmem_memop *ops, size_t n, int n_ids, size_t prefix, size_t *off);
/* Whether a pool of `capacity` (0 = unlimited) runs ops: with the arena's layout, or else best-fit. */
int fg_vmem_fits(const fg_vmem_memop *ops, size_t n, int n_ids, size_t prefix, size_t capacity);
/* The smallest such capacity: the lower of the arena's top and best-fit's smallest capacity. */
size_t fg_vmem_min_capacity(const fg_vmem_memop *ops, size_t n, int n_ids, size_t prefix);

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

/* ---------------------------------------------------------------- schedule (schedule.c) */

/* What happens to a saved storage root between its last forward use and its first backward read. */
enum { FG_VMEM_KEEP, FG_VMEM_OFFLOAD, FG_VMEM_RECOMPUTE };

/* Per-step action lists, CSR: ids of step s are ids[start[s] .. start[s+1]). */
typedef struct fg_vmem_sched {
    int *start;
    int *ids;
} fg_vmem_sched;
#define FG_SCHED_FOR(sc, s, k) for (int k = (sc).start[s]; k < (sc).start[(s) + 1]; k++)

enum {
    S_ALLOC,     /* before: roots whose first use is this step */
    S_PF_ISSUE,  /* before: slots whose prefetch is issued (allocates the device copy) */
    S_PF_WAIT,   /* before: slots this node reads, wait for their prefetch */
    S_RECOMP,    /* before: roots recomputed (allocated, producer's forward rerun), producer order */
    S_RELEASE,   /* after: roots whose last use is this step */
    S_OFF_WAIT,  /* after: slots whose offload is waited for, then released and marked */
    S_DROP,      /* after: recomputed roots released after their last forward use */
    S_OFF_ISSUE, /* after: slots whose offload is issued (the producer just wrote them) */
    S_MID_RELEASE, /* mid (split conv backward): the input, read by the weight half only */
    S_MID_ALLOC,   /* mid: the input's gradient, written by the data half */
    S_HOME_FILL,   /* before: homes whose device copy is allocated and filled (copy issued) */
    S_HOME_WAIT,   /* before: homes this node reads, wait for their fill */
    S_HOME_OUT,    /* after: homes past their last use: released, or (gradients) copy-back issued */
    S_HOME_DONE,   /* after: copy-backs waited for, device copies released */
    S_COUNT
};

/* One interval of use of a root that lives at its host home (weight offload, cfg.offload_weights):
 * uses of the root at most one step apart share an interval; before it the device copy is
 * allocated and filled from the home (issued one step ahead within the pass), after it the copy
 * is released, a parameter gradient after being copied back. */
/* A step that uses a root (weight offload's intervals are built from these). */
typedef struct fg_vmem_use {
    int step, id;
} fg_vmem_use;

typedef struct fg_vmem_home {
    fg_id root;
    const char *name; /* the root tensor's name (the graph's, stable while it lives) */
    size_t bytes;
    int a, b;        /* first and last step using it */
    int fill;        /* step whose before() allocates the device copy and issues the fill */
    int writeback;   /* 1: written in the interval (a parameter gradient): copied home after b */
    int done;        /* step whose after() waits for the copy-back and releases */
    int zero_fill;   /* a gradient's first interval of the iteration: when its home holds zeros
                        (fg_graph_zero_grad), the device copy starts as a memset, not a copy */
} fg_vmem_home;

/* Static facts about each storage root, computed once at plan. */
typedef struct fg_vmem_rinfo {
    int fl;      /* last forward step using it, -1 */
    int bf;      /* first backward step reading it as saved, -1 */
    int conv_in; /* it is the input feature map of a conv whose backward runs (vDNN_conv's choice) */
} fg_vmem_rinfo;

/* One schedule: where each root lives and the per-step actions of the hooks. */
typedef struct fg_vmem_schedule {
    fg_vmem_sched s[S_COUNT];
    fg_vmem_slot *slots; /* offloaded roots, in backward order of first need */
    int n_slots;
    int *slot_of;        /* per tensor id: slot of its root, -1 */
    unsigned char *eff;  /* per tensor id (roots): the action in effect (an asked-for action that
                            cannot apply, e.g. an offload with no gap, becomes KEEP) */
    int *bf, *lu;        /* per root: first backward read and last use including recompute reads */
    unsigned char *split; /* per node: its conv backward runs in two halves (S_MID_* at its step) */
    fg_vmem_home *homes;  /* weight offload: the use intervals of homed roots (S_HOME_* ids) */
    int n_homes;
    size_t home_bytes;    /* bytes copied between homes and the device per iteration (gradients
                             zeroed before it: their first fill is a memset) */
    int n_home_copies, n_zero_fills;
    int n_recompute;
    size_t offload_bytes, recompute_bytes;
} fg_vmem_schedule;

struct fg_vmem {
    fg_vmem_config cfg;
    fg_graph *g;
    fg_pool *pool;
    int N, steps, has_backward, nt;
    fg_vmem_rinfo *ri;
    fg_vmem_schedule sc;
    fg_conv_algo *ref_algo;      /* per node: the algorithms step_seconds were measured with */
    fg_conv_algo *build_algo;    /* per node: the graph's own at build, what n_algo_changed and the
                                    decision count changes from (ref_algo is dyn's after plan's first
                                    measured iteration) */
    double *step_seconds;        /* 2N, NULL until known (plan) */
    double *algo_sec;            /* plan: per node x algorithm x pass, seconds at the profile batch
                                    (profile.c); NULL = the static ratios of fg_vmem_algo_cost */
    int need_profile;            /* plan: re-plan after the first measured iteration */
    int check_algos;             /* plan: time this iteration's switched conv algorithms, re-plan */
    int algo_checks;
    double *algo_full;           /* plan: per node x algorithm x pass, seconds measured at the full
                                    batch (0 = not measured); overrides the profile's ratio */
    double *t_start;             /* 2N: node times at the start of the profiled iteration */
    int replans, n_algo_changed;
    char decision[256];
    double memcpy_gbps;          /* measured once when the model needs it */
    fg_vmem_event **off_ev, **pf_ev; /* per slot, in flight */
    fg_vmem_event **home_ev;         /* per home interval: its fill or copy-back, in flight */
    uint8_t *home_ready;             /* per home interval of an input or weight (never a gradient's):
                                        its device copy holds what the home held (filled and waited),
                                        so writes through it are the newest */
    fg_vmem_use *home_uses;          /* weight offload: every use of a homed root that no action
                                        changes (forward inputs, backward saves and gradient
                                        writes), sorted by (root, step), computed once at plan;
                                        each schedule merges its recompute reads in */
    int n_home_uses;
    int64_t fill_fallbacks;          /* zero_fill intervals copied: the home was not zero */
    fg_vmem_tiers tiers;
    fg_vmem_link *link;
    fg_vmem_trace trace;
    void *ws;                    /* workspace of the running node (layer-wise policies) */
    /* the offset-planned arena (layer-wise policies, when its layout fits the budget): the pool
     * offset of every allocation of the iteration in hook order (SIZE_MAX: best-fit), the next one */
    size_t *layout_off;
    int *layout_id;
    size_t layout_n, layout_next;
    void *shared_ws;             /* none: one workspace for every node */
    size_t shared_ws_bytes;
    size_t min_bytes, peak_bytes, persistent_bytes;
    double recompute_seconds;
    int64_t iterations;
    int forward_done;            /* the current iteration's forward completed */
    /* context for the pool observer (executor thread only) */
    int cur_node;
    fg_pass cur_pass;
    fg_id cur_tensor;
};

int fg_vmem_bwd_runs(const fg_graph *g, int i);
int fg_vmem_is_planned(const fg_graph *g, fg_id i);
size_t fg_vmem_ws_need(const fg_vmem *v, int node, fg_pass pass);
/* Fills v->ri (allocated by the caller, v->nt entries). */
void fg_vmem_rinfo_compute(fg_vmem *v);
/* v->home_uses (weight offload; none without homes). */
fg_status fg_vmem_home_uses_compute(fg_vmem *v);
/* The action each root gets under a built-in kind (none/all/conv; KEEP everywhere for none). */
void fg_vmem_kind_actions(const fg_vmem *v, fg_vmem_kind kind, unsigned char *act);
/* Builds the schedule of `act` (per tensor id) with the graph's current conv algorithms. */
fg_status fg_vmem_schedule_build(const fg_vmem *v, const unsigned char *act, fg_vmem_schedule *out);
void fg_vmem_schedule_free(fg_vmem_schedule *sc);

typedef struct fg_vmem_memops {
    fg_vmem_memop *op;
    size_t n, cap;
} fg_vmem_memops;
/* The device allocations and releases of one iteration in the order the hooks issue them
 * (workspace has id nt). network_wide: the none policy's (everything at step 0). */
fg_status fg_vmem_memops_build(const fg_vmem *v, const fg_vmem_schedule *sc, int network_wide, size_t shared_ws,
                               fg_vmem_memops *m);

/* ---------------------------------------------------------------- search (search.c) */

/* Chooses actions and conv algorithms for dyn or plan, leaves the algorithms set on the graph and
 * the schedule in v->sc; fills v->decision. capacity 0 = unlimited. On a budget too small for
 * every choice: FG_ERR_OOM with v->min_bytes set to the smallest that works (the caller words it). */
fg_status fg_vmem_search(fg_vmem *v, size_t capacity);
/* Relative cost of a conv algorithm against the graph's default (performance-optimal) one, used
 * to estimate a step's time under an algorithm it was not measured with. */
double fg_vmem_algo_cost(fg_conv_algo a);

/* ---------------------------------------------------------------- conv profile (profile.c) */

/* Times every conv node under every algorithm (forward, backward) at a small batch: v->algo_sec. */
fg_status fg_vmem_profile_convs(fg_vmem *v);
/* Time of node's pass under algorithm a relative to ref: measured when profiled, else static. */
double fg_vmem_algo_ratio(const fg_vmem *v, int node, fg_pass pass, fg_conv_algo a, fg_conv_algo ref);
/* plan's check of its algorithm choices: whether a switched conv algorithm has not been timed at
 * the full batch, and recording the timings of an iteration (measured: 2N step seconds) for every
 * switched conv, beside the reference algorithm's step_seconds. */
int fg_vmem_algos_unchecked(const fg_vmem *v);
fg_status fg_vmem_algos_record(fg_vmem *v, const double *measured);

/* ---------------------------------------------------------------- prediction (predict.c) */

/* Copy threads per direction a link may start. */
#define FG_VMEM_MAX_COPY_THREADS 64
/* A link's or a link model's figures: finite and >= 0, else FG_ERR_INVALID naming `what`. */
fg_status fg_vmem_check_rate(const char *what, double gbps, double latency_us);
/* 2N step seconds, each finite and >= 0, else FG_ERR_INVALID naming `what` and the step. */
fg_status fg_vmem_check_steps(const char *what, const double *step_seconds, int steps);
fg_status fg_vmem_predict_schedule(const fg_vmem *v, const fg_vmem_schedule *sc, const double *step_seconds,
                                   const fg_vmem_link_model *m, fg_vmem_prediction *out);
/* in (2N step seconds measured with v->ref_algo) scaled to the conv algorithms `algo` (per node;
 * NULL = the graph's current ones) by fg_vmem_algo_ratio. */
void fg_vmem_scale_steps(const fg_vmem *v, const fg_conv_algo *algo, const double *in, double *out);
/* memcpy bandwidth of this machine in GB/s (measured once, ~50 ms). */
double fg_vmem_memcpy_gbps(void);

#endif
