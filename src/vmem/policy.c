/* vmem's memory policies on the graph's hooks (fg_mem_policy): vDNN's none, all and conv.
 *
 * none: network-wide allocation (every activation and gradient for the whole iteration, one
 * shared workspace sized to the largest node), the paper's baseline.
 *
 * all / conv: layer-wise allocation (a storage root is allocated before its first use and
 * released after its last use on the 2N-step timeline, a node's workspace only while it runs)
 * plus offload and prefetch of what backward reads:
 *  - candidates: for conv, the input feature map (in[0]) of every conv node whose backward runs;
 *    for all, every non-persistent tensor any running backward node saves (activations and AUX
 *    outputs). Work is on storage roots, so a reshape and its source are one tensor, and a
 *    tensor saved by several nodes (GoogLeNet's branches) is offloaded once;
 *  - offload: issued in after(producer) (the copy overlaps the next layer's compute, vDNN's second
 *    stream); waited for at the boundary after its last forward use, or after the next node when
 *    that comes first (vDNN synchronizes at layer boundaries), then the device copy is released
 *    and the root marked FG_RES_HOST / FG_RES_DISK. A tensor that would be off the device for no
 *    step at all (needed again by the very next backward step) is not offloaded;
 *  - prefetch: the nodes whose backward first reads an offloaded root, in backward order
 *    j1 > j2 > ...; the group of j1 is issued when backward starts, the group of j(k) in
 *    before(j(k-1)), i.e. while the previous offloading layer computes, never further ahead
 *    (vDNN never prefetches past the next conv layer); each is waited for in before() of the node
 *    that reads it; it is released after its last use like any other tensor.
 * The whole schedule is computed in plan() as per-step action lists, so plan can replay it on
 * byte counts and find the smallest device budget the policy needs before the first iteration.
 * Persistent tensors (inputs, params, state, param grads, outputs, the loss) stay on the device. */
#include <stdlib.h>
#include <string.h>

#include "vmem/vmem_impl.h"

static const char *kind_names[FG_VMEM_KIND_COUNT] = {"none", "all", "conv", "dyn"};

const char *fg_vmem_kind_name(fg_vmem_kind k) { return (k >= 0 && k < FG_VMEM_KIND_COUNT) ? kind_names[k] : "?"; }

fg_status fg_vmem_kind_parse(const char *s, fg_vmem_kind *out) {
    for (int k = 0; k < FG_VMEM_KIND_COUNT; k++)
        if (s && strcmp(s, kind_names[k]) == 0) {
            *out = (fg_vmem_kind)k;
            return FG_OK;
        }
    return fg_fail(FG_ERR_INVALID, "unknown vmem policy '%s' (expected none, all, conv or dyn)", s ? s : "(null)");
}

fg_vmem_config fg_vmem_config_defaults(fg_vmem_kind kind) {
    fg_vmem_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.link.threads_out = 1;
    c.link.threads_in = 1;
    c.trace = FG_VMEM_TRACE_OFF;
    return c;
}

/* ---------------------------------------------------------------- per-step action lists */

/* CSR: ids of step s are ids[start[s] .. start[s+1]). */
typedef struct sched {
    int *start;
    int *ids;
} sched;

typedef struct pair {
    int step, id;
} pair;

typedef struct pairs {
    pair *p;
    int n, cap;
} pairs;

static fg_status pairs_add(pairs *v, int step, int id) {
    if (v->n == v->cap) {
        int nc = v->cap ? 2 * v->cap : 64;
        pair *np = realloc(v->p, (size_t)nc * sizeof *np);
        if (!np) return fg_fail(FG_ERR_OOM, "vmem plan: out of host memory");
        v->p = np;
        v->cap = nc;
    }
    v->p[v->n++] = (pair){step, id};
    return FG_OK;
}

/* Stable: ids of one step keep the order they were added in. */
static fg_status sched_build(sched *s, const pairs *v, int steps) {
    s->start = calloc((size_t)steps + 1, sizeof(int));
    s->ids = malloc(sizeof(int) * (size_t)(v->n ? v->n : 1));
    int *fill = calloc((size_t)steps + 1, sizeof(int));
    if (!s->start || !s->ids || !fill) {
        free(fill);
        return fg_fail(FG_ERR_OOM, "vmem plan: out of host memory");
    }
    for (int i = 0; i < v->n; i++) {
        FG_ASSERT(v->p[i].step >= 0 && v->p[i].step < steps);
        s->start[v->p[i].step + 1]++;
    }
    for (int k = 0; k < steps; k++) s->start[k + 1] += s->start[k];
    for (int i = 0; i < v->n; i++) s->ids[s->start[v->p[i].step] + fill[v->p[i].step]++] = v->p[i].id;
    free(fill);
    return FG_OK;
}

static void sched_free(sched *s) {
    free(s->start);
    free(s->ids);
    s->start = NULL;
    s->ids = NULL;
}

#define SCHED_FOR(sc, s, k) for (int k = (sc).start[s]; k < (sc).start[(s) + 1]; k++)

/* ---------------------------------------------------------------- state */

enum {
    S_ALLOC,        /* before: roots whose first use is this step */
    S_PF_ISSUE,     /* before: slots whose prefetch is issued (allocates the device copy) */
    S_PF_WAIT,      /* before: slots this node reads, wait for their prefetch */
    S_RELEASE,      /* after: roots whose last use is this step */
    S_OFF_WAIT,     /* after: slots whose offload is waited for, then released and marked */
    S_OFF_ISSUE,    /* after: slots whose offload is issued (the producer just wrote them) */
    S_COUNT
};

struct fg_vmem {
    fg_vmem_config cfg;
    fg_graph *g;
    fg_pool *pool;
    int N, steps, has_backward;
    sched s[S_COUNT];
    fg_vmem_slot *slots;
    int n_slots;
    int *slot_of;                /* per tensor id: slot index of its root, -1 */
    fg_vmem_event **off_ev, **pf_ev; /* per slot, in flight */
    fg_vmem_tiers tiers;
    fg_vmem_link *link;
    fg_vmem_trace trace;
    void *ws;                    /* workspace of the running node (layer-wise policies) */
    void *shared_ws;             /* none: one workspace for every node */
    size_t shared_ws_bytes;
    size_t min_bytes, peak_bytes, persistent_bytes, offload_bytes;
    int64_t iterations;
    int forward_done;            /* the current iteration's forward completed */
    /* context for the pool observer (executor thread only) */
    int cur_node;
    fg_pass cur_pass;
    fg_id cur_tensor;
};

static int bwd_runs(const fg_graph *g, int i) { return fg_graph_tinfo(g, fg_graph_node(g, i)->out)->grad != FG_NONE; }
static int step_of(const fg_vmem *v, int node, fg_pass pass) { return pass == FG_FORWARD ? node : 2 * v->N - 1 - node; }
static fg_id root_of(const fg_graph *g, fg_id id) { return fg_graph_tinfo(g, id)->alias_of; }
/* A storage root this policy allocates and releases (not persistent, used by some step). */
static int is_planned(const fg_graph *g, fg_id i) {
    const fg_tinfo *t = fg_graph_tinfo(g, i);
    return t->alias_of == i && t->first_use >= 0;
}
static size_t ws_need(const fg_vmem *v, int node, fg_pass pass) {
    if (pass == FG_BACKWARD && !bwd_runs(v->g, node)) return 0;
    return fg_graph_node(v->g, node)->ws_bytes[pass];
}

static size_t pool_in_use(fg_vmem *v) { return fg_pool_get_stats(v->pool).in_use; }

/* The pool observer cannot tell an allocation from a release, so the policy says which by
 * setting cur_tensor just before calling the pool: a tensor id (or FG_NONE for a workspace) for
 * allocations, FREE_MARK for releases. Only the executor thread allocates. */
#define FREE_MARK (FG_NONE - 1)

static void on_pool(void *user, double t, size_t in_use) {
    fg_vmem *v = user;
    (void)t;
    int is_free = v->cur_tensor == FREE_MARK;
    fg_vmem_trace_add(&v->trace, fg_time_now(), in_use, is_free ? FG_VMEM_EV_FREE : FG_VMEM_EV_ALLOC, v->cur_node,
                      v->cur_pass, v->cur_tensor < 0 ? FG_NONE : v->cur_tensor);
}

static void on_link(void *user, fg_vmem_dir dir, size_t bytes, int64_t tag, fg_status status) {
    fg_vmem *v = user;
    (void)bytes;
    (void)status;
    fg_vmem_ev_kind k = (dir == FG_VMEM_D2H || dir == FG_VMEM_D2DISK) ? FG_VMEM_EV_OFFLOAD_DONE : FG_VMEM_EV_PREFETCH_DONE;
    fg_vmem_trace_add(&v->trace, fg_time_now(), pool_in_use(v), k, -1, FG_FORWARD, v->slots[tag].root);
}

static void trace_here(fg_vmem *v, fg_vmem_ev_kind k, int node, fg_pass pass, fg_id t) {
    if (v->cfg.trace == FG_VMEM_TRACE_OFF) return;
    fg_vmem_trace_add(&v->trace, fg_time_now(), pool_in_use(v), k, node, pass, t);
}

static fg_status alloc_root(fg_vmem *v, fg_id r) {
    v->cur_tensor = r;
    fg_status s = fg_graph_storage_alloc(v->g, r);
    v->cur_tensor = FG_NONE;
    return s;
}

static void release_root(fg_vmem *v, fg_id r) {
    v->cur_tensor = FREE_MARK;
    fg_graph_storage_release(v->g, r);
    v->cur_tensor = FG_NONE;
}

static void free_ws(fg_vmem *v, void **p) {
    if (!*p) return;
    v->cur_tensor = FREE_MARK;
    fg_pool_free(v->pool, *p);
    v->cur_tensor = FG_NONE;
    *p = NULL;
}

static fg_status alloc_ws(fg_vmem *v, size_t bytes, const char *what, void **p) {
    v->cur_tensor = FG_NONE;
    return fg_pool_alloc(v->pool, bytes, what, p);
}

/* ---------------------------------------------------------------- plan */

static fg_status budget_error(fg_vmem *v, size_t capacity, size_t peak_ws, int peak_step) {
    char a[32], b[32], c[32], d[32], e[32];
    int node = peak_step < v->N ? peak_step : 2 * v->N - 1 - peak_step;
    return fg_fail(FG_ERR_OOM,
                   "vmem policy '%s': a device budget of %s (%zu bytes) is too small for '%s'; the smallest budget "
                   "that would work is %s (%zu bytes): %s persistent (inputs, params, grads, outputs) + a peak "
                   "working set of %s at %s of node '%s' + %s lost to the pool's fragmentation",
                   fg_vmem_kind_name(v->cfg.kind), fg_bytes_str(a, sizeof a, (double)capacity), capacity,
                   fg_graph_name(v->g), fg_bytes_str(b, sizeof b, (double)v->min_bytes), v->min_bytes,
                   fg_bytes_str(c, sizeof c, (double)v->persistent_bytes), fg_bytes_str(d, sizeof d, (double)peak_ws),
                   peak_step < v->N ? "forward" : "backward", fg_graph_node(v->g, node)->name,
                   fg_bytes_str(e, sizeof e, (double)(v->min_bytes - v->peak_bytes)));
}

/* The device allocations and releases of one iteration, in exactly the order the hooks issue
 * them (before: first uses, prefetches, workspace; after: workspace, last uses, finished
 * offloads). Workspace has id nt. */
typedef struct memops {
    fg_vmem_memop *op;
    size_t n, cap;
} memops;

static fg_status memops_add(memops *m, int alloc, int id, size_t bytes, int step) {
    if (m->n == m->cap) {
        size_t nc = m->cap ? 2 * m->cap : 256;
        fg_vmem_memop *np = realloc(m->op, nc * sizeof *np);
        if (!np) return fg_fail(FG_ERR_OOM, "vmem plan: out of host memory");
        m->op = np;
        m->cap = nc;
    }
    m->op[m->n++] = (fg_vmem_memop){alloc, id, bytes, step};
    return FG_OK;
}

static fg_status build_memops(fg_vmem *v, memops *m) {
    const fg_graph *g = v->g;
    int nt = fg_graph_n_tensors(g);
    if (v->cfg.kind == FG_VMEM_NONE) {
        for (fg_id r = 0; r < nt; r++)
            if (is_planned(g, r)) FG_TRY(memops_add(m, 1, r, fg_graph_tinfo(g, r)->bytes, 0));
        return memops_add(m, 1, nt, v->shared_ws_bytes, 0);
    }
    int last = v->has_backward ? v->steps : v->N;
    for (int s = 0; s < last; s++) {
        int node = s < v->N ? s : 2 * v->N - 1 - s;
        fg_pass pass = s < v->N ? FG_FORWARD : FG_BACKWARD;
        SCHED_FOR(v->s[S_ALLOC], s, k) {
            fg_id r = v->s[S_ALLOC].ids[k];
            FG_TRY(memops_add(m, 1, r, fg_graph_tinfo(g, r)->bytes, s));
        }
        SCHED_FOR(v->s[S_PF_ISSUE], s, k) {
            const fg_vmem_slot *sl = &v->slots[v->s[S_PF_ISSUE].ids[k]];
            FG_TRY(memops_add(m, 1, sl->root, sl->bytes, s));
        }
        size_t ws = ws_need(v, node, pass);
        FG_TRY(memops_add(m, 1, nt, ws, s));
        FG_TRY(memops_add(m, 0, nt, ws, s));
        SCHED_FOR(v->s[S_RELEASE], s, k) {
            fg_id r = v->s[S_RELEASE].ids[k];
            FG_TRY(memops_add(m, 0, r, fg_graph_tinfo(g, r)->bytes, s));
        }
        SCHED_FOR(v->s[S_OFF_WAIT], s, k) {
            const fg_vmem_slot *sl = &v->slots[v->s[S_OFF_WAIT].ids[k]];
            FG_TRY(memops_add(m, 0, sl->root, sl->bytes, s));
        }
    }
    return FG_OK;
}

/* Backward order of first need; ties by tensor id (deterministic). */
static int cmp_slot_bf(const void *a, const void *b) {
    const fg_vmem_slot *x = a, *y = b;
    if (x->bf != y->bf) return x->bf < y->bf ? -1 : 1;
    return x->root < y->root ? -1 : (x->root > y->root);
}

typedef struct root_info {
    int fl;   /* last forward step using it, -1 */
    int bf;   /* first backward step reading it as saved, -1 */
    int cand; /* chosen for offload by the policy kind */
} root_info;

static fg_status plan_layerwise(fg_vmem *v, root_info *ri) {
    fg_graph *g = v->g;
    int N = v->N, nt = fg_graph_n_tensors(g);
    /* candidates and their forward/backward uses */
    for (int i = 0; i < N; i++) {
        const fg_ninfo *n = fg_graph_node(g, i);
        for (int k = 0; k < n->n_in; k++) ri[root_of(g, n->in[k])].fl = i;
        ri[root_of(g, n->out)].fl = i;
        for (int a = 0; a < n->n_aux; a++) ri[root_of(g, n->aux[a])].fl = i;
    }
    for (int i = N - 1; i >= 0; i--) {
        if (!bwd_runs(g, i)) continue;
        const fg_ninfo *n = fg_graph_node(g, i);
        for (int s = 0; s < n->n_save; s++) {
            fg_id r = root_of(g, n->save[s]);
            if (!is_planned(g, r)) continue;
            if (ri[r].bf < 0) ri[r].bf = step_of(v, i, FG_BACKWARD);
            int want = v->cfg.kind == FG_VMEM_ALL || (v->cfg.kind == FG_VMEM_CONV && n->op == FG_OP_CONV2D && s == 0);
            if (want) ri[r].cand = 1;
        }
    }
    /* slots: candidates that would be off the device for at least one step */
    v->slots = calloc((size_t)nt + 1, sizeof *v->slots);
    v->slot_of = malloc(sizeof(int) * (size_t)nt);
    if (!v->slots || !v->slot_of) return fg_fail(FG_ERR_OOM, "vmem plan: out of host memory");
    for (fg_id r = 0; r < nt; r++) v->slot_of[r] = -1;
    for (fg_id r = 0; r < nt; r++) {
        const fg_tinfo *t = fg_graph_tinfo(g, r);
        if (!ri[r].cand || (t->kind != FG_T_ACT && t->kind != FG_T_AUX) || t->producer < 0) continue;
        int w = ri[r].fl > t->producer + 1 ? ri[r].fl : t->producer + 1; /* offload wait step */
        if (w > N - 1 || ri[r].bf <= w + 1) continue;
        fg_vmem_slot *sl = &v->slots[v->n_slots++];
        sl->root = r;
        sl->bytes = t->bytes;
        sl->producer = t->producer;
        sl->off_wait = w;
        sl->bf = ri[r].bf;
        snprintf(sl->name, sizeof sl->name, "%s", t->t.name);
        v->offload_bytes += t->bytes;
    }
    /* host tier preference: the tensors backward needs first get the host arena */
    qsort(v->slots, (size_t)v->n_slots, sizeof *v->slots, cmp_slot_bf);
    for (int k = 0; k < v->n_slots; k++) v->slot_of[v->slots[k].root] = k;
    for (fg_id id = 0; id < nt; id++) v->slot_of[id] = v->slot_of[root_of(g, id)];

    pairs pv[S_COUNT];
    memset(pv, 0, sizeof pv);
    fg_status st = FG_OK;
    for (fg_id r = 0; r < nt && st == FG_OK; r++) {
        if (!is_planned(g, r)) continue;
        const fg_tinfo *t = fg_graph_tinfo(g, r);
        st = pairs_add(&pv[S_ALLOC], t->first_use, r);
        if (st == FG_OK) st = pairs_add(&pv[S_RELEASE], t->last_use, r);
    }
    /* prefetch groups: the slots read first by the same backward step, in backward order (slots
     * are sorted by bf); group k is issued at the step of group k-1, the first at backward's start */
    int cur_bf = -1, prev_bf = -1;
    for (int k = 0; k < v->n_slots && st == FG_OK; k++) {
        fg_vmem_slot *sl = &v->slots[k];
        if (sl->bf != cur_bf) {
            prev_bf = cur_bf;
            cur_bf = sl->bf;
        }
        int issue = prev_bf < 0 ? N : prev_bf;
        st = pairs_add(&pv[S_OFF_ISSUE], sl->producer, k);
        if (st == FG_OK) st = pairs_add(&pv[S_OFF_WAIT], sl->off_wait, k);
        if (st == FG_OK) st = pairs_add(&pv[S_PF_ISSUE], issue, k);
        if (st == FG_OK) st = pairs_add(&pv[S_PF_WAIT], sl->bf, k);
    }
    for (int k = 0; k < S_COUNT && st == FG_OK; k++) st = sched_build(&v->s[k], &pv[k], v->steps);
    for (int k = 0; k < S_COUNT; k++) free(pv[k].p);
    return st;
}

static fg_status vm_plan(void *self, fg_graph *g, fg_pool *pool) {
    fg_vmem *v = self;
    v->g = g;
    v->pool = pool;
    v->N = fg_graph_n_nodes(g);
    v->steps = 2 * v->N;
    for (int i = 0; i < v->N; i++) v->has_backward |= bwd_runs(g, i);
    int nt = fg_graph_n_tensors(g);
    fg_pool_stats ps = fg_pool_get_stats(pool);
    v->persistent_bytes = ps.in_use;

    if (v->cfg.kind == FG_VMEM_NONE) {
        for (int i = 0; i < v->N; i++)
            for (int p = 0; p < FG_PASS_COUNT; p++)
                if (ws_need(v, i, (fg_pass)p) > v->shared_ws_bytes) v->shared_ws_bytes = ws_need(v, i, (fg_pass)p);
    } else {
        root_info *ri = malloc(sizeof *ri * (size_t)nt);
        if (!ri) return fg_fail(FG_ERR_OOM, "vmem plan: out of host memory");
        for (int r = 0; r < nt; r++) ri[r] = (root_info){-1, -1, 0};
        fg_status s = plan_layerwise(v, ri);
        free(ri);
        FG_TRY(s);
    }
    /* the budget: replay the iteration's allocations on a model of the pool */
    memops m = {NULL, 0, 0};
    fg_status s = build_memops(v, &m);
    if (s != FG_OK) {
        free(m.op);
        return s;
    }
    fg_vmem_replay_out r;
    fg_vmem_replay(m.op, m.n, nt + 1, v->persistent_bytes, (size_t)1 << 50, &r);
    v->peak_bytes = r.peak;
    int peak_step = m.n ? m.op[r.peak_op].step : 0;
    v->min_bytes = fg_vmem_replay_min_capacity(m.op, m.n, nt + 1, v->persistent_bytes);
    int fits = !ps.capacity || fg_vmem_replay(m.op, m.n, nt + 1, v->persistent_bytes, ps.capacity, &r);
    free(m.op);
    if (!fits) return budget_error(v, ps.capacity, v->peak_bytes - v->persistent_bytes, peak_step);

    v->off_ev = calloc((size_t)v->n_slots + 1, sizeof *v->off_ev);
    v->pf_ev = calloc((size_t)v->n_slots + 1, sizeof *v->pf_ev);
    if (!v->off_ev || !v->pf_ev) return fg_fail(FG_ERR_OOM, "vmem plan: out of host memory");
    if (v->n_slots) {
        FG_TRY(fg_vmem_tiers_place(&v->tiers, v->slots, v->n_slots, v->cfg.host_capacity));
        FG_TRY(fg_vmem_link_create(&v->link, &v->cfg.link));
        if (v->cfg.trace != FG_VMEM_TRACE_OFF) fg_vmem_link_set_observer(v->link, on_link, v);
    }
    v->cur_tensor = FG_NONE;
    v->cur_node = -1;
    if (v->cfg.trace != FG_VMEM_TRACE_OFF) fg_pool_set_observer(pool, on_pool, v);
    if (v->cfg.kind == FG_VMEM_NONE) {
        for (fg_id t = 0; t < nt; t++)
            if (is_planned(g, t)) FG_TRY(alloc_root(v, t));
        FG_TRY(alloc_ws(v, v->shared_ws_bytes, "shared workspace", &v->shared_ws));
    }
    return FG_OK;
}

/* ---------------------------------------------------------------- hooks */

/* Start of an iteration: whatever a failed or forward-only iteration left behind is dropped
 * (in-flight copies finished, device copies released, host/disk copies invalidated). */
static void iteration_reset(fg_vmem *v) {
    for (int k = 0; k < v->n_slots; k++) {
        if (v->off_ev[k]) {
            (void)fg_vmem_event_wait(v->link, v->off_ev[k]);
            v->off_ev[k] = NULL;
        }
        if (v->pf_ev[k]) {
            (void)fg_vmem_event_wait(v->link, v->pf_ev[k]);
            v->pf_ev[k] = NULL;
        }
        v->slots[k].valid = 0;
        fg_id r = v->slots[k].root;
        if (!fg_graph_storage_device_ptr(v->g, r)) fg_graph_storage_mark(v->g, r, FG_RES_NONE, NULL);
    }
    free_ws(v, &v->ws);
    int nt = fg_graph_n_tensors(v->g);
    for (fg_id r = 0; r < nt; r++)
        if (is_planned(v->g, r)) release_root(v, r);
    fg_clear_error();
    v->forward_done = 0;
}

static fg_status prefetch_issue(fg_vmem *v, int k) {
    fg_vmem_slot *sl = &v->slots[k];
    if (!sl->valid)
        return fg_fail(FG_ERR_IO,
                       "vmem: '%s' cannot be read back: its offload to the %s tier did not complete in this "
                       "iteration's forward (run forward again)",
                       sl->name, sl->on_disk ? "disk" : "host");
    FG_TRY(alloc_root(v, sl->root));
    void *dev = fg_graph_storage_device_ptr(v->g, sl->root);
    trace_here(v, FG_VMEM_EV_PREFETCH_ISSUE, v->cur_node, FG_BACKWARD, sl->root);
    if (sl->on_disk)
        return fg_vmem_link_submit(v->link, FG_VMEM_DISK2D, dev, NULL, sl->bytes, sl->fd, 0, sl->path, sl->name, k,
                                   &v->pf_ev[k]);
    return fg_vmem_link_submit(v->link, FG_VMEM_H2D, dev, v->tiers.host + sl->host_off, sl->bytes, -1, 0, NULL, sl->name,
                               k, &v->pf_ev[k]);
}

static fg_status offload_issue(fg_vmem *v, int k) {
    fg_vmem_slot *sl = &v->slots[k];
    void *dev = fg_graph_storage_device_ptr(v->g, sl->root);
    FG_ASSERT_MSG(dev, "vmem: offloading a tensor that is not on the device");
    sl->valid = 0;
    trace_here(v, FG_VMEM_EV_OFFLOAD_ISSUE, v->cur_node, FG_FORWARD, sl->root);
    if (sl->on_disk)
        return fg_vmem_link_submit(v->link, FG_VMEM_D2DISK, NULL, dev, sl->bytes, sl->fd, 0, sl->path, sl->name, k,
                                   &v->off_ev[k]);
    return fg_vmem_link_submit(v->link, FG_VMEM_D2H, v->tiers.host + sl->host_off, dev, sl->bytes, -1, 0, NULL, sl->name,
                               k, &v->off_ev[k]);
}

/* vDNN's layer-boundary synchronization: the copy is done, the device copy goes. A failed copy
 * leaves the slot invalid (never read back) and fails the iteration. */
static fg_status offload_finish(fg_vmem *v, int k) {
    fg_vmem_slot *sl = &v->slots[k];
    fg_status s = fg_vmem_event_wait(v->link, v->off_ev[k]);
    v->off_ev[k] = NULL;
    release_root(v, sl->root);
    if (s != FG_OK) return s;
    sl->valid = 1;
    fg_graph_storage_mark(v->g, sl->root, sl->on_disk ? FG_RES_DISK : FG_RES_HOST,
                          sl->on_disk ? NULL : v->tiers.host + sl->host_off);
    return FG_OK;
}

static fg_status vm_before(void *self, fg_graph *g, int node, fg_pass pass) {
    fg_vmem *v = self;
    if (node == 0 && pass == FG_FORWARD) {
        if (v->cfg.trace == FG_VMEM_TRACE_LAST) fg_vmem_trace_restart(&v->trace);
        if (v->cfg.kind != FG_VMEM_NONE) iteration_reset(v);
        v->forward_done = 0;
    }
    v->cur_node = node;
    v->cur_pass = pass;
    trace_here(v, FG_VMEM_EV_BEGIN, node, pass, FG_NONE);
    if (pass == FG_BACKWARD && node == v->N - 1 && !v->forward_done)
        return fg_fail(FG_ERR_INVALID, "vmem: backward of '%s' without a completed forward", fg_graph_name(g));
    if (v->cfg.kind == FG_VMEM_NONE) {
        size_t need = ws_need(v, node, pass);
        if (need > v->shared_ws_bytes) { /* an algorithm changed after plan */
            free_ws(v, &v->shared_ws);
            v->shared_ws_bytes = 0;
            FG_TRY(alloc_ws(v, need, "shared workspace", &v->shared_ws));
            v->shared_ws_bytes = need;
        }
        fg_graph_set_workspace(g, v->shared_ws, v->shared_ws_bytes);
        return FG_OK;
    }
    int s = step_of(v, node, pass);
    SCHED_FOR(v->s[S_ALLOC], s, k) FG_TRY(alloc_root(v, v->s[S_ALLOC].ids[k]));
    SCHED_FOR(v->s[S_PF_ISSUE], s, k) FG_TRY(prefetch_issue(v, v->s[S_PF_ISSUE].ids[k]));
    SCHED_FOR(v->s[S_PF_WAIT], s, k) {
        int j = v->s[S_PF_WAIT].ids[k];
        FG_ASSERT_MSG(v->pf_ev[j], "vmem: waiting for a prefetch that was never issued");
        fg_status st = fg_vmem_event_wait(v->link, v->pf_ev[j]);
        v->pf_ev[j] = NULL;
        if (st != FG_OK) return st;
    }
    size_t ws = ws_need(v, node, pass);
    char what[FG_NAME_MAX + 16];
    snprintf(what, sizeof what, "workspace of %s", fg_graph_node(g, node)->name);
    FG_TRY(alloc_ws(v, ws, what, &v->ws));
    fg_graph_set_workspace(g, v->ws, ws);
    return FG_OK;
}

static fg_status vm_after(void *self, fg_graph *g, int node, fg_pass pass) {
    fg_vmem *v = self;
    (void)g;
    if (v->cfg.kind != FG_VMEM_NONE) {
        int s = step_of(v, node, pass);
        free_ws(v, &v->ws);
        SCHED_FOR(v->s[S_RELEASE], s, k) release_root(v, v->s[S_RELEASE].ids[k]);
        SCHED_FOR(v->s[S_OFF_WAIT], s, k) FG_TRY(offload_finish(v, v->s[S_OFF_WAIT].ids[k]));
        SCHED_FOR(v->s[S_OFF_ISSUE], s, k) FG_TRY(offload_issue(v, v->s[S_OFF_ISSUE].ids[k]));
    }
    if (pass == FG_FORWARD && node == v->N - 1) v->forward_done = 1;
    trace_here(v, FG_VMEM_EV_END, node, pass, FG_NONE);
    return FG_OK;
}

static fg_status vm_end(void *self, fg_graph *g) {
    fg_vmem *v = self;
    (void)g;
    for (int k = 0; k < v->n_slots; k++)
        FG_ASSERT_MSG(!v->off_ev[k] && !v->pf_ev[k], "vmem: a copy is still in flight at the end of an iteration");
    if (v->has_backward) v->iterations++;
    v->forward_done = 0;
    v->cur_node = -1;
    return FG_OK;
}

static void vm_destroy(void *self) {
    fg_vmem *v = self;
    if (v->link) {
        for (int k = 0; k < v->n_slots; k++) {
            if (v->off_ev && v->off_ev[k]) (void)fg_vmem_event_wait(v->link, v->off_ev[k]);
            if (v->pf_ev && v->pf_ev[k]) (void)fg_vmem_event_wait(v->link, v->pf_ev[k]);
        }
        fg_vmem_link_destroy(v->link);
    }
    if (v->pool) {
        fg_pool_set_observer(v->pool, NULL, NULL);
        if (v->ws) fg_pool_free(v->pool, v->ws);
        if (v->shared_ws) fg_pool_free(v->pool, v->shared_ws);
    }
    fg_vmem_tiers_free(&v->tiers, v->slots, v->n_slots);
    for (int k = 0; k < S_COUNT; k++) sched_free(&v->s[k]);
    free(v->slots);
    free(v->slot_of);
    free(v->off_ev);
    free(v->pf_ev);
    free(v->tiers.spill_dir);
    fg_vmem_trace_destroy(&v->trace);
    free(v);
}

fg_status fg_vmem_policy_create(fg_mem_policy *out, const fg_vmem_config *cfg) {
    memset(out, 0, sizeof *out);
    if (cfg->kind < 0 || cfg->kind >= FG_VMEM_KIND_COUNT)
        return fg_fail(FG_ERR_INVALID, "vmem: policy kind %d out of range", (int)cfg->kind);
    if (cfg->kind == FG_VMEM_DYN)
        return fg_fail(FG_ERR_UNSUPPORTED, "vmem: policy 'dyn' is not implemented yet (use none, all or conv)");
    if (cfg->link.gbps < 0 || cfg->link.latency_us < 0)
        return fg_fail(FG_ERR_INVALID, "vmem: link bandwidth %g GB/s and latency %g us must be >= 0", cfg->link.gbps,
                       cfg->link.latency_us);
    if (cfg->trace < 0 || cfg->trace >= FG_VMEM_TRACE_MODE_COUNT)
        return fg_fail(FG_ERR_INVALID, "vmem: trace mode %d out of range", (int)cfg->trace);
    fg_vmem *v = calloc(1, sizeof *v);
    if (!v) return fg_fail(FG_ERR_OOM, "vmem: out of host memory");
    v->cfg = *cfg;
    fg_vmem_trace_init(&v->trace, cfg->trace, cfg->trace_max);
    if (cfg->spill_dir) {
        v->tiers.spill_dir = strdup(cfg->spill_dir);
        if (!v->tiers.spill_dir) {
            vm_destroy(v);
            return fg_fail(FG_ERR_OOM, "vmem: out of host memory");
        }
    }
    v->cfg.spill_dir = v->tiers.spill_dir;
    v->cur_tensor = FG_NONE;
    v->cur_node = -1;
    out->name = fg_vmem_kind_name(cfg->kind);
    out->plan = vm_plan;
    out->before = vm_before;
    out->after = vm_after;
    out->end = vm_end;
    out->destroy = vm_destroy;
    out->self = v;
    return FG_OK;
}

fg_vmem *fg_vmem_of(const fg_mem_policy *p) { return (p && p->destroy == vm_destroy) ? p->self : NULL; }

/* ---------------------------------------------------------------- stats and trace */

void fg_vmem_get_stats(fg_vmem *v, fg_vmem_stats *out) {
    memset(out, 0, sizeof *out);
    if (v->link) out->link = fg_vmem_link_get_stats(v->link);
    out->min_device_bytes = v->min_bytes;
    out->peak_device_bytes = v->peak_bytes;
    out->persistent_bytes = v->persistent_bytes;
    out->host_tier_bytes = v->tiers.host_bytes;
    out->disk_tier_bytes = v->tiers.disk_bytes;
    out->offload_bytes_per_iter = v->offload_bytes;
    out->n_offload_tensors = v->n_slots;
    out->n_disk_tensors = v->tiers.n_disk;
    out->iterations = v->iterations;
}

void fg_vmem_reset_stats(fg_vmem *v) {
    if (v->link) fg_vmem_link_reset_stats(v->link);
    v->iterations = 0;
}

int fg_vmem_is_offloaded(const fg_vmem *v, fg_id id) {
    if (!v->slot_of || !v->g || id < 0 || id >= fg_graph_n_tensors(v->g)) return 0;
    return v->slot_of[id] >= 0;
}

size_t fg_vmem_trace_get(fg_vmem *v, fg_vmem_trace_event *dst, size_t cap) { return fg_vmem_trace_copy(&v->trace, dst, cap); }
size_t fg_vmem_trace_count(fg_vmem *v) { return fg_vmem_trace_size(&v->trace); }

fg_status fg_vmem_trace_write_csv(fg_vmem *v, const fg_graph *g, const char *path) {
    return fg_vmem_trace_write_file(&v->trace, g, path);
}
