/* frugal vmem: train beyond the device-memory budget (vDNN, Rhu et al., MICRO 2016).
 *
 * Three pieces, each mapping one-to-one onto what vDNN does with CUDA (docs/VMEM.md):
 *  - tiers: the host tier is ONE arena allocated at plan time and reused every iteration
 *    (vDNN's cudaMallocHost'd pinned buffer); the disk tier is one spill file per tensor under a
 *    spill directory, written with pwrite and read back with pread;
 *  - the link: copy threads with request queues (vDNN's second CUDA stream and cudaMemcpyAsync);
 *    every request returns an event to wait on (cudaStreamSynchronize); an optional model paces
 *    each copy to latency + bytes / bandwidth so GPU-like compute/transfer ratios can be replayed;
 *  - policies on the graph's memory hooks (fg_mem_policy): none (network-wide baseline), all and
 *    conv (offload what backward reads, prefetch it back one offloading layer ahead), dyn (vDNN's
 *    search over those and the conv algorithms for the first that fits the budget) and plan (ours:
 *    per saved tensor keep, offload or recompute, chosen on a model of the iteration's time), with
 *    a memory-over-time trace and the smallest device budget the policy needs, checked at plan.
 *
 * Offload, prefetch and recompute change no number: they move bytes or rerun the same op on the
 * same bytes. Only a change of conv algorithm (dyn, plan) changes rounding. */
#ifndef FRUGAL_VMEM_H
#define FRUGAL_VMEM_H

#include "frugal/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- the link */

typedef struct fg_vmem_link_cfg {
    int threads_out;   /* copy threads for offloads (device -> host/disk); <= 0 means 1 */
    int threads_in;    /* copy threads for prefetches (host/disk -> device); <= 0 means 1 */
    double gbps;       /* modelled bandwidth in GB/s (1e9 bytes/s); 0 = unpaced (memcpy speed) */
    double latency_us; /* modelled per-copy latency in microseconds (used only when paced) */
} fg_vmem_link_cfg;

typedef enum fg_vmem_dir {
    FG_VMEM_D2H,    /* device -> host tier (offload), memcpy */
    FG_VMEM_H2D,    /* host tier -> device (prefetch), memcpy */
    FG_VMEM_D2DISK, /* device -> spill file (offload), pwrite */
    FG_VMEM_DISK2D, /* spill file -> device (prefetch), pread */
    FG_VMEM_DIR_COUNT
} fg_vmem_dir;

typedef struct fg_vmem_link fg_vmem_link;
typedef struct fg_vmem_event fg_vmem_event;

typedef struct fg_vmem_link_stats {
    uint64_t bytes_offloaded;  /* completed D2H + D2DISK bytes */
    uint64_t bytes_prefetched; /* completed H2D + DISK2D bytes */
    uint64_t bytes_to_disk, bytes_from_disk;
    uint64_t n_copies;         /* completed requests (failed ones included) */
    double model_seconds;      /* sum over paced copies of latency + bytes / bandwidth */
    double busy_seconds;       /* measured seconds copy threads spent on requests (incl. pacing) */
    double stall_seconds;      /* seconds callers of fg_vmem_event_wait blocked */
} fg_vmem_link_stats;

fg_status fg_vmem_link_create(fg_vmem_link **out, const fg_vmem_link_cfg *cfg);
/* Finishes queued requests, stops and joins the copy threads, frees events never waited on. */
void fg_vmem_link_destroy(fg_vmem_link *l);
/* Queues a copy. For D2H/H2D, dst/src are memory and fd/off unused; for D2DISK src is memory
 * and (fd, off) the destination; for DISK2D dst is memory and (fd, off) the source. `path`
 * names the file in error messages, `what` the tensor (both may be NULL); `tag` is passed to
 * the observer. *ev receives the event; it must be waited on exactly once. */
fg_status fg_vmem_link_submit(fg_vmem_link *l, fg_vmem_dir dir, void *dst, const void *src, size_t bytes, int fd,
                              int64_t off, const char *path, const char *what, int64_t tag, fg_vmem_event **ev);
/* Called by a copy thread when a request's copy has finished (before its event completes);
 * must be thread-safe. Set it before the first submit. */
typedef void (*fg_vmem_link_observer)(void *user, fg_vmem_dir dir, size_t bytes, int64_t tag, fg_status status);
void fg_vmem_link_set_observer(fg_vmem_link *l, fg_vmem_link_observer fn, void *user);
/* Blocks until the request is done and frees the event. Returns the request's status (FG_ERR_IO
 * with the file, bytes and reason when a pwrite/pread failed or was short). */
fg_status fg_vmem_event_wait(fg_vmem_link *l, fg_vmem_event *ev);
/* Non-blocking: 1 when the request has completed. */
int fg_vmem_event_done(fg_vmem_link *l, const fg_vmem_event *ev);
/* The modelled seconds of this (completed or not) request: latency + bytes / bandwidth, 0 when
 * unpaced. */
double fg_vmem_event_model_seconds(const fg_vmem_event *ev);
fg_vmem_link_stats fg_vmem_link_get_stats(fg_vmem_link *l);
void fg_vmem_link_reset_stats(fg_vmem_link *l);

/* ---------------------------------------------------------------- policies */

typedef enum fg_vmem_kind {
    FG_VMEM_NONE, /* network-wide allocation, no offload: the paper's baseline */
    FG_VMEM_ALL,  /* offload every tensor a backward node reads (vDNN_all) */
    FG_VMEM_CONV, /* offload the input feature maps of conv layers only (vDNN_conv) */
    FG_VMEM_DYN,  /* vDNN_dyn: the first of (no offload, conv, all) with the fastest conv algorithms
                     that fits the budget; else all with, per conv layer in order, the fastest
                     algorithm whose workspace still fits; memory-optimal algorithms last */
    FG_VMEM_PLAN, /* ours: keep / offload / recompute per saved tensor and conv algorithms, chosen
                     greedily on a model of the iteration (measured layer times, link bandwidth)
                     to fit the budget at the least predicted time; never predicted slower than
                     dyn's choice (docs/VMEM.md) */
    FG_VMEM_KIND_COUNT
} fg_vmem_kind;
const char *fg_vmem_kind_name(fg_vmem_kind k);
fg_status fg_vmem_kind_parse(const char *s, fg_vmem_kind *out);

typedef enum fg_vmem_trace_mode {
    FG_VMEM_TRACE_OFF,
    FG_VMEM_TRACE_LAST, /* keep the events of the most recent iteration (reset at each forward) */
    FG_VMEM_TRACE_ALL,  /* keep every iteration's events, up to trace_max */
    FG_VMEM_TRACE_MODE_COUNT
} fg_vmem_trace_mode;

/* How the planner (plan) and fg_vmem_predict model the link. */
typedef struct fg_vmem_link_model {
    double gbps;          /* bandwidth per direction, GB/s (1e9 bytes/s); 0 = measure memcpy at plan */
    double latency_us;    /* per copy */
    double compute_share; /* fraction of each copy's seconds that slows compute too: copies on the
                             CPU share its cores and memory bandwidth with the ops (0 for a GPU's
                             copy engines); < 0 = 1 / (number of threads), what `frugal vmem`
                             uses on the CPU; fg_vmem_config_defaults leaves it 0 */
} fg_vmem_link_model;

typedef struct fg_vmem_config {
    fg_vmem_kind kind;
    fg_vmem_link_cfg link;
    const char *spill_dir;     /* disk tier directory (copied at create); NULL = no disk tier */
    size_t host_capacity;      /* host-tier bytes; 0 = unlimited; past it tensors spill to disk */
    fg_vmem_trace_mode trace;
    size_t trace_max;          /* events kept at most (0 = 1,000,000) */
    /* dyn / plan */
    const double *step_seconds; /* 2N seconds on the 2N timeline (forward of node i at i, backward at
                                   2N-1-i) that plan decides on (copied at plan); NULL = plan
                                   runs its first iteration as dyn, measures it and re-plans */
    fg_vmem_link_model model;   /* the link as plan sees it (gbps 0: link.gbps when paced, else
                                   memcpy measured at plan) */
    int fixed_algos;            /* dyn / plan never change a conv algorithm (bit-identical results
                                   to the baseline; the smallest budget may be larger) */
    int dry_run;                /* plan only (schedule, budget, predictions): no tiers, no link, no
                                   allocation; forward fails. For `frugal vmem simulate`. */
    int offload_weights;        /* layer-wise kinds: parameters, their gradients and the inputs live
                                   in host memory and are on the device only around the steps that
                                   use them (fg_mem_policy.home_host; beyond vDNN, which keeps the
                                   weights on the device). Same numbers bit for bit. */
} fg_vmem_config;

fg_vmem_config fg_vmem_config_defaults(fg_vmem_kind kind);

typedef struct fg_vmem fg_vmem;

/* A policy for fg_graph_build. The graph owns it afterwards (fg_graph_free destroys it). */
fg_status fg_vmem_policy_create(fg_mem_policy *out, const fg_vmem_config *cfg);
/* The vmem state behind a policy made by fg_vmem_policy_create (NULL for other policies); valid
 * until the graph that owns the policy is freed. */
fg_vmem *fg_vmem_of(const fg_mem_policy *p);

typedef struct fg_vmem_stats {
    fg_vmem_link_stats link;
    size_t peak_device_bytes;     /* predicted pool peak (bytes in use) of one iteration, from plan */
    size_t min_device_bytes;      /* smallest pool capacity this policy runs in: the peak plus what
                                     the pool's fragmentation costs (plan replays the allocations);
                                     for dyn and plan the floor of their search (all offloaded,
                                     memory-optimal convolutions), which can lie below the peak of
                                     the schedule chosen for a larger budget */
    size_t persistent_bytes;      /* pool bytes in use at plan (pool-rounded): inputs, params, state,
                                     param grads, outputs; with offload_weights only outputs and
                                     state (the others live in host homes) */
    size_t host_tier_bytes;       /* the host arena (allocated once) */
    size_t disk_tier_bytes;       /* bytes of spill files per iteration */
    size_t offload_bytes_per_iter;
    int n_offload_tensors;        /* storage roots offloaded per iteration */
    int n_disk_tensors;           /* of which spilled to disk */
    int n_recompute_tensors;      /* storage roots dropped after forward and recomputed in backward */
    size_t recompute_bytes_per_iter;
    int n_algo_changed;           /* conv nodes whose algorithm dyn/plan changed from the graph's */
    int n_split_convs;            /* conv backwards split in two: input released before its gradient
                                     is allocated (fg_graph_set_split_backward) */
    int replans;                  /* plan: times the schedule was re-derived from measured times */
    int algo_checks;              /* plan: of those, re-plans after timing the conv algorithms it
                                     switched to at the full batch (its profile runs 2 images) */
    double recompute_seconds;     /* measured, since the last reset */
    size_t weight_bytes_per_iter; /* offload_weights: bytes copied between the host homes of params,
                                     their grads and inputs and the device per iteration, when the
                                     gradients are zeroed before it (fg_graph_zero_grad) */
    int n_weight_copies;          /* of which copies per iteration (fills + gradient copy-backs) */
    int n_weight_zero_fills;      /* gradients whose device copy starts as a memset, not a copy */
    int64_t weight_fill_fallbacks; /* of those, fills that copied after all since the last reset:
                                     the gradient's home was not zero (accumulating over iterations) */
    int64_t iterations;           /* completed (forward + backward) */
    char decision[256];           /* what dyn/plan chose, e.g. "offload all, 3 of 13 convs implicit" */
} fg_vmem_stats;
void fg_vmem_get_stats(fg_vmem *v, fg_vmem_stats *out);
void fg_vmem_reset_stats(fg_vmem *v);
/* 1 when storage root `id` is offloaded by this policy (after plan). */
int fg_vmem_is_offloaded(const fg_vmem *v, fg_id id);
/* 1 when storage root `id` is dropped after forward and recomputed in backward. */
int fg_vmem_is_recomputed(const fg_vmem *v, fg_id id);

/* ---------------------------------------------------------------- prediction */

/* What the schedule chosen at plan would cost on a machine whose steps take step_seconds (2N, as
 * fg_vmem_config.step_seconds, measured with the policy's reference conv algorithms: the graph's at
 * build, or, for plan without step_seconds, those of its measured first iteration;
 * a conv step whose algorithm dyn/plan changed is scaled by the algorithms' relative cost) and
 * whose link is `m`: a replay of the iteration on two resources,
 * compute (steps in order, plus recomputed forwards) and the link (one FIFO queue per direction,
 * copies start when issued and the queue is free, each latency + bytes / bandwidth); compute waits
 * where the hooks wait (prefetch before the reading step, offload at its release step). Device
 * memory follows the schedule's allocations over that predicted time. */
typedef struct fg_vmem_prediction {
    double iter_seconds;
    double compute_seconds;    /* sum of step_seconds */
    double recompute_seconds;
    double stall_seconds;      /* compute waiting on the link */
    double interference_seconds; /* compute slowed by copies (compute_share) */
    double offload_bytes, prefetch_bytes;
    double weight_bytes;       /* copied between the homes and the device (offload_weights) */
    size_t peak_device_bytes;
    double avg_device_bytes;   /* time-weighted over the predicted iteration */
} fg_vmem_prediction;
fg_status fg_vmem_predict(fg_vmem *v, const double *step_seconds, const fg_vmem_link_model *m, fg_vmem_prediction *out);

/* ---------------------------------------------------------------- the trace */

typedef enum fg_vmem_ev_kind {
    FG_VMEM_EV_BEGIN,          /* a node's before hook starts */
    FG_VMEM_EV_END,            /* a node's after hook ends */
    FG_VMEM_EV_ALLOC,          /* pool allocation (tensor or workspace) */
    FG_VMEM_EV_FREE,           /* pool release */
    FG_VMEM_EV_OFFLOAD_ISSUE,
    FG_VMEM_EV_OFFLOAD_DONE,   /* copy finished (recorded by the copy thread) */
    FG_VMEM_EV_PREFETCH_ISSUE,
    FG_VMEM_EV_PREFETCH_DONE,
    FG_VMEM_EV_RECOMPUTE,      /* a dropped tensor recomputed (after its producer's forward reran) */
    FG_VMEM_EV_KIND_COUNT
} fg_vmem_ev_kind;
const char *fg_vmem_ev_kind_name(fg_vmem_ev_kind k);

typedef struct fg_vmem_trace_event {
    double t;            /* seconds since the trace was (re)started */
    size_t device_bytes; /* pool bytes in use at that moment */
    fg_vmem_ev_kind kind;
    int node;            /* -1 when not tied to a node */
    fg_pass pass;
    fg_id tensor;        /* FG_NONE when not tied to a tensor */
} fg_vmem_trace_event;

/* Events recorded so far (copied out under the trace's lock); returns the count written. */
size_t fg_vmem_trace_get(fg_vmem *v, fg_vmem_trace_event *dst, size_t cap);
size_t fg_vmem_trace_count(fg_vmem *v);
/* CSV with header "t_seconds,device_bytes,event,node,pass,tensor". Atomic. */
fg_status fg_vmem_trace_write_csv(fg_vmem *v, const fg_graph *g, const char *path);

/* ---------------------------------------------------------------- simulating a GPU (roofline.c) */

/* A GPU for `frugal vmem simulate`: the step times of a network come from a roofline model of it
 * (fg_vmem_roofline_steps), the link from fg_gpu_link. Assumptions: docs/VMEM.md, "Simulating a GPU". */
typedef struct fg_gpu_model {
    const char *name;        /* "titanx", "v100", "a100", "h100" */
    double fp32_tflops;      /* peak fp32 (non-tensor-core) TFLOPS, 1e12 FLOP/s */
    double mem_gbps;         /* peak device-memory bandwidth, GB/s (1e9 bytes/s) */
    double mem_bytes;        /* device memory, bytes (the default budget) */
    double efficiency;       /* fraction of fp32_tflops that conv / linear / matmul kernels reach */
    const char *description; /* "Maxwell GTX Titan X, 12 GiB GDDR5" */
} fg_gpu_model;

/* The host <-> device link of a GPU: achieved (not theoretical) bandwidth per direction. */
typedef struct fg_gpu_link {
    const char *name;        /* "pcie3", "pcie4", "pcie5" */
    double gbps;             /* achieved GB/s per direction (pinned host memory) */
    double latency_us;       /* per copy */
    const char *description;
} fg_gpu_link;

/* Fraction of the memory bandwidth every kernel reaches, and the fixed cost of every kernel launch
 * (one per node and pass). */
#define FG_ROOFLINE_MEM_EFFICIENCY 0.8
#define FG_ROOFLINE_LAUNCH_SECONDS 5e-6

/* Tables terminated by a NULL name. */
const fg_gpu_model *fg_gpu_models(void);
const fg_gpu_link *fg_gpu_links(void);
/* FG_ERR_INVALID naming the valid values for an unknown name. */
fg_status fg_gpu_model_parse(const char *name, fg_gpu_model *out);
fg_status fg_gpu_link_parse(const char *name, fg_gpu_link *out);
/* The link as fg_vmem_config.model / fg_vmem_predict see it: compute_share 0 (copy engines). */
fg_vmem_link_model fg_gpu_link_model(const fg_gpu_link *l);

/* The roofline cost of one step (node, pass) of a built graph on `gpu`. */
typedef struct fg_roofline_cost {
    double flops;           /* FLOPs of the step (backward: data + weight gradients) */
    double bytes;           /* device bytes read and written */
    double compute_seconds; /* flops / (fp32_tflops * 1e12 * efficiency) */
    double memory_seconds;  /* bytes / (mem_gbps * 1e9 * FG_ROOFLINE_MEM_EFFICIENCY) */
    double seconds;         /* max(compute, memory) + FG_ROOFLINE_LAUNCH_SECONDS; 0 when the step
                               does not run (a backward with no gradient to compute) */
    int compute_bound;      /* compute_seconds >= memory_seconds */
} fg_roofline_cost;
fg_status fg_vmem_roofline_cost(const fg_graph *g, const fg_gpu_model *gpu, int node, fg_pass pass,
                                fg_roofline_cost *out);
/* step_seconds[2N] on the 2N timeline (forward of node i at i, backward at 2N-1-i), for
 * fg_vmem_config.step_seconds and fg_vmem_predict. The graph must be built (saved lists and
 * gradients are known then); the conv algorithms are taken as the performance-optimal ones. */
fg_status fg_vmem_roofline_steps(const fg_graph *g, const fg_gpu_model *gpu, double *step_seconds);

#ifdef __cplusplus
}
#endif
#endif
