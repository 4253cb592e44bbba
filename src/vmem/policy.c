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
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vmem/vmem_impl.h"

static const char *kind_names[FG_VMEM_KIND_COUNT] = {"none", "all", "conv", "dyn", "plan"};

const char *fg_vmem_kind_name(fg_vmem_kind k) { return (k >= 0 && k < FG_VMEM_KIND_COUNT) ? kind_names[k] : "?"; }

fg_status fg_vmem_kind_parse(const char *s, fg_vmem_kind *out) {
    for (int k = 0; k < FG_VMEM_KIND_COUNT; k++)
        if (s && strcmp(s, kind_names[k]) == 0) {
            *out = (fg_vmem_kind)k;
            return FG_OK;
        }
    return fg_fail(FG_ERR_INVALID, "unknown vmem policy '%s' (expected none, all, conv, dyn or plan)", s ? s : "(null)");
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

static int step_of(const fg_vmem *v, int node, fg_pass pass) { return pass == FG_FORWARD ? node : 2 * v->N - 1 - node; }
#define is_planned fg_vmem_is_planned
#define ws_need fg_vmem_ws_need

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
    /* tags: slot k is k, home interval k is n_slots + k */
    fg_id root = tag < v->sc.n_slots ? v->sc.slots[tag].root : v->sc.homes[tag - v->sc.n_slots].root;
    fg_vmem_trace_add(&v->trace, fg_time_now(), pool_in_use(v), k, -1, FG_FORWARD, root);
}

static void trace_here(fg_vmem *v, fg_vmem_ev_kind k, int node, fg_pass pass, fg_id t) {
    if (v->cfg.trace == FG_VMEM_TRACE_OFF) return;
    fg_vmem_trace_add(&v->trace, fg_time_now(), pool_in_use(v), k, node, pass, t);
}

/* The pool offset of the next allocation of the iteration (SIZE_MAX = best-fit): with the
 * offset-planned arena, the allocations come in exactly the order of the layout's memops. */
static size_t layout_next(fg_vmem *v, int id) {
    if (!v->layout_n) return SIZE_MAX;
    FG_ASSERT_MSG(v->layout_next < v->layout_n && v->layout_id[v->layout_next] == id,
                  "vmem: allocation out of the planned order (schedule and memops disagree)");
    return v->layout_off[v->layout_next++];
}

static fg_status alloc_root(fg_vmem *v, fg_id r) {
    size_t off = layout_next(v, r);
    v->cur_tensor = r;
    fg_status s = fg_graph_storage_alloc_at(v->g, r, off);
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
    if (v->cfg.kind == FG_VMEM_NONE) return fg_pool_alloc(v->pool, bytes, what, p);
    size_t off = layout_next(v, v->nt);
    if (off == SIZE_MAX) return fg_pool_alloc(v->pool, bytes, what, p);
    return fg_pool_alloc_at(v->pool, off, bytes, what, p);
}

/* ---------------------------------------------------------------- plan */

static const char *persistent_what(const fg_vmem *v) {
    return v->cfg.offload_weights ? "outputs and state; the weights and inputs are offloaded"
                                  : "inputs, params, grads, outputs";
}

static fg_status budget_error(fg_vmem *v, size_t capacity, size_t peak_ws, int peak_step) {
    char a[32], b[32], c[32], d[32], e[32];
    if (peak_step < 0) /* dyn / plan: no configuration fits */
        return fg_fail(FG_ERR_OOM,
                       "vmem policy '%s': a device budget of %s (%zu bytes) is too small for '%s' under any choice; "
                       "the smallest budget that would work is %s (%zu bytes: offload everything backward reads, "
                       "%s; %s of it persistent: %s)",
                       fg_vmem_kind_name(v->cfg.kind), fg_bytes_str(a, sizeof a, (double)capacity), capacity,
                       fg_graph_name(v->g), fg_bytes_str(b, sizeof b, (double)v->min_bytes), v->min_bytes,
                       v->cfg.fixed_algos ? "the graph's own conv algorithms (fixed_algos)" : "memory-optimal conv algorithms",
                       fg_bytes_str(c, sizeof c, (double)v->persistent_bytes), persistent_what(v));
    int node = peak_step < v->N ? peak_step : 2 * v->N - 1 - peak_step;
    return fg_fail(FG_ERR_OOM,
                   "vmem policy '%s': a device budget of %s (%zu bytes) is too small for '%s'; the smallest budget "
                   "that would work is %s (%zu bytes): %s persistent (%s) + a peak "
                   "working set of %s at %s of node '%s' + %s lost to the pool's fragmentation",
                   fg_vmem_kind_name(v->cfg.kind), fg_bytes_str(a, sizeof a, (double)capacity), capacity,
                   fg_graph_name(v->g), fg_bytes_str(b, sizeof b, (double)v->min_bytes), v->min_bytes,
                   fg_bytes_str(c, sizeof c, (double)v->persistent_bytes), persistent_what(v),
                   fg_bytes_str(d, sizeof d, (double)peak_ws),
                   peak_step < v->N ? "forward" : "backward", fg_graph_node(v->g, node)->name,
                   fg_bytes_str(e, sizeof e, (double)(v->min_bytes - v->peak_bytes)));
}

/* The offset-planned arena for memops m when its layout fits the capacity (else the hooks ask the
 * pool best-fit, which the caller found fits). The layout sits above the pool's highest live
 * block at plan time (the persistent tensors). */
static fg_status make_layout(fg_vmem *v, const fg_vmem_memops *m, size_t capacity) {
    free(v->layout_off);
    free(v->layout_id);
    v->layout_off = NULL;
    v->layout_id = NULL;
    v->layout_n = v->layout_next = 0;
    if (v->cfg.kind == FG_VMEM_NONE || !m->n) return FG_OK;
    size_t *off = malloc(sizeof *off * m->n);
    if (!off) return fg_fail(FG_ERR_OOM, "vmem plan: out of host memory");
    size_t prefix = (v->persistent_bytes + FG_POOL_ALIGN - 1) / FG_POOL_ALIGN * FG_POOL_ALIGN;
    size_t base = fg_pool_get_stats(v->pool).top;
    if (base < prefix) base = prefix;
    size_t top = fg_vmem_pack(m->op, m->n, v->nt + 1, prefix, off) - prefix + base;
    if (capacity && top > capacity) {
        free(off);
        return FG_OK;
    }
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++) n += m->op[i].alloc;
    v->layout_off = malloc(sizeof *v->layout_off * (n + 1));
    v->layout_id = malloc(sizeof *v->layout_id * (n + 1));
    if (!v->layout_off || !v->layout_id) {
        free(off);
        return fg_fail(FG_ERR_OOM, "vmem plan: out of host memory");
    }
    for (size_t i = 0; i < m->n; i++)
        if (m->op[i].alloc) {
            v->layout_off[v->layout_n] = off[i] == SIZE_MAX ? SIZE_MAX : off[i] - prefix + base;
            v->layout_id[v->layout_n++] = m->op[i].id;
        }
    free(off);
    return FG_OK;
}

/* The schedule's device peak, the smallest budget it runs in (dyn/plan: set by the search to
 * their floor), and the check against the pool's capacity. */
static fg_status check_budget(fg_vmem *v, size_t capacity) {
    for (int i = 0; i < v->N; i++)
        if (fg_graph_node(v->g, i)->op == FG_OP_CONV2D)
            FG_TRY(fg_graph_set_split_backward(v->g, i, v->sc.split && v->sc.split[i]));
    fg_vmem_memops m = {NULL, 0, 0};
    fg_status s = fg_vmem_memops_build(v, &v->sc, v->cfg.kind == FG_VMEM_NONE, v->shared_ws_bytes, &m);
    if (s != FG_OK) {
        free(m.op);
        return s;
    }
    fg_vmem_replay_out r;
    fg_vmem_replay(m.op, m.n, v->nt + 1, v->persistent_bytes, (size_t)1 << 50, &r);
    v->peak_bytes = r.peak;
    int peak_step = m.n ? m.op[r.peak_op].step : 0;
    if (v->cfg.kind != FG_VMEM_DYN && v->cfg.kind != FG_VMEM_PLAN)
        v->min_bytes = fg_vmem_min_capacity(m.op, m.n, v->nt + 1, v->persistent_bytes);
    int fits = fg_vmem_fits(m.op, m.n, v->nt + 1, v->persistent_bytes, capacity);
    if (fits) s = make_layout(v, &m, capacity);
    free(m.op);
    if (!fits) return budget_error(v, capacity, v->peak_bytes - v->persistent_bytes, peak_step);
    return s;
}

/* Tiers, events and the link for the current schedule (plan time, and after a re-plan). */
static fg_status setup_slots(fg_vmem *v) {
    v->off_ev = calloc((size_t)v->sc.n_slots + 1, sizeof *v->off_ev);
    v->pf_ev = calloc((size_t)v->sc.n_slots + 1, sizeof *v->pf_ev);
    v->home_ev = calloc((size_t)v->sc.n_homes + 1, sizeof *v->home_ev);
    v->home_ready = calloc((size_t)v->sc.n_homes + 1, 1);
    if (!v->off_ev || !v->pf_ev || !v->home_ev || !v->home_ready)
        return fg_fail(FG_ERR_OOM, "vmem plan: out of host memory");
    if (v->sc.n_slots) FG_TRY(fg_vmem_tiers_place(&v->tiers, v->sc.slots, v->sc.n_slots, v->cfg.host_capacity));
    if (v->sc.n_slots || v->sc.n_homes) {
        if (!v->link) {
            FG_TRY(fg_vmem_link_create(&v->link, &v->cfg.link));
            if (v->cfg.trace != FG_VMEM_TRACE_OFF) fg_vmem_link_set_observer(v->link, on_link, v);
        }
    }
    return FG_OK;
}

static void teardown_slots(fg_vmem *v) {
    fg_vmem_tiers_free(&v->tiers, v->sc.slots, v->sc.n_slots);
    v->tiers.host = NULL;
    v->tiers.host_bytes = v->tiers.disk_bytes = 0;
    v->tiers.n_disk = 0;
    free(v->off_ev);
    free(v->pf_ev);
    free(v->home_ev);
    free(v->home_ready);
    v->off_ev = v->pf_ev = NULL;
    v->home_ev = NULL;
    v->home_ready = NULL;
}

static fg_status vm_plan(void *self, fg_graph *g, fg_pool *pool) {
    fg_vmem *v = self;
    v->g = g;
    v->pool = pool;
    v->N = fg_graph_n_nodes(g);
    v->steps = 2 * v->N;
    v->nt = fg_graph_n_tensors(g);
    for (int i = 0; i < v->N; i++) v->has_backward |= fg_vmem_bwd_runs(g, i);
    fg_pool_stats ps = fg_pool_get_stats(pool);
    v->persistent_bytes = ps.in_use;
    v->ri = malloc(sizeof *v->ri * (size_t)(v->nt + 1));
    v->ref_algo = malloc(sizeof *v->ref_algo * (size_t)(v->N + 1));
    v->build_algo = malloc(sizeof *v->build_algo * (size_t)(v->N + 1));
    if (!v->ri || !v->ref_algo || !v->build_algo) return fg_fail(FG_ERR_OOM, "vmem plan: out of host memory");
    fg_vmem_rinfo_compute(v);
    FG_TRY(fg_vmem_home_uses_compute(v));
    for (int i = 0; i < v->N; i++) v->ref_algo[i] = v->build_algo[i] = fg_graph_node(g, i)->algo;
    if (v->cfg.step_seconds) {
        FG_TRY(fg_vmem_check_steps("vmem plan", v->cfg.step_seconds, v->steps));
        v->step_seconds = malloc(sizeof(double) * (size_t)v->steps);
        if (!v->step_seconds) return fg_fail(FG_ERR_OOM, "vmem plan: out of host memory");
        memcpy(v->step_seconds, v->cfg.step_seconds, sizeof(double) * (size_t)v->steps);
    }

    if (v->cfg.kind == FG_VMEM_NONE) {
        for (int i = 0; i < v->N; i++)
            for (int p = 0; p < FG_PASS_COUNT; p++)
                if (ws_need(v, i, (fg_pass)p) > v->shared_ws_bytes) v->shared_ws_bytes = ws_need(v, i, (fg_pass)p);
    } else if (v->cfg.kind == FG_VMEM_ALL || v->cfg.kind == FG_VMEM_CONV) {
        unsigned char *act = malloc((size_t)v->nt + 1);
        if (!act) return fg_fail(FG_ERR_OOM, "vmem plan: out of host memory");
        fg_vmem_kind_actions(v, v->cfg.kind, act);
        fg_status s = fg_vmem_schedule_build(v, act, &v->sc);
        free(act);
        FG_TRY(s);
    } else {
        if (v->cfg.kind == FG_VMEM_PLAN && !v->cfg.dry_run) FG_TRY(fg_vmem_profile_convs(v));
        fg_status s = fg_vmem_search(v, ps.capacity);
        if (s == FG_ERR_OOM && v->min_bytes) {
            v->peak_bytes = v->min_bytes;
            return budget_error(v, ps.capacity, 0, -1);
        }
        FG_TRY(s);
        v->need_profile = v->cfg.kind == FG_VMEM_PLAN && !v->step_seconds;
        v->check_algos = v->cfg.kind == FG_VMEM_PLAN && v->step_seconds && fg_vmem_algos_unchecked(v);
    }
    FG_TRY(check_budget(v, ps.capacity));
    if (v->cfg.dry_run) return FG_OK;
    FG_TRY(setup_slots(v));
    v->cur_tensor = FG_NONE;
    v->cur_node = -1;
    if (v->cfg.trace != FG_VMEM_TRACE_OFF) fg_pool_set_observer(pool, on_pool, v);
    if (v->cfg.kind == FG_VMEM_NONE) {
        for (fg_id t = 0; t < v->nt; t++)
            if (is_planned(g, t)) FG_TRY(alloc_root(v, t));
        FG_TRY(alloc_ws(v, v->shared_ws_bytes, "shared workspace", &v->shared_ws));
    }
    return FG_OK;
}

/* The step seconds of the iteration that just ended (the node times since t_start). */
static double *measured_steps(fg_vmem *v) {
    double *m = malloc(sizeof(double) * (size_t)v->steps);
    if (!m) return NULL;
    for (int i = 0; i < v->N; i++)
        for (int p = 0; p < FG_PASS_COUNT; p++)
            m[step_of(v, i, (fg_pass)p)] = fg_graph_node_time(v->g, i, (fg_pass)p) - v->t_start[step_of(v, i, (fg_pass)p)];
    return m;
}

/* plan, after a measured iteration: without step times yet (need_profile), the iteration's become
 * them; after switching conv algorithms (check_algos), the iteration timed them at the full batch,
 * which overrides the 2-image profile. Then the search again; a new unchecked switch is checked
 * at the next iteration. */
static fg_status replan(fg_vmem *v) {
    double *m = measured_steps(v);
    if (!m) return fg_fail(FG_ERR_OOM, "vmem plan: out of host memory");
    if (v->need_profile) {
        v->step_seconds = m;
        for (int i = 0; i < v->N; i++) v->ref_algo[i] = fg_graph_node(v->g, i)->algo;
    } else {
        fg_status s = fg_vmem_algos_record(v, m);
        free(m);
        FG_TRY(s);
        v->algo_checks++;
    }
    v->need_profile = 0;
    teardown_slots(v);
    fg_status s = fg_vmem_search(v, fg_pool_get_stats(v->pool).capacity);
    if (s == FG_OK) s = check_budget(v, fg_pool_get_stats(v->pool).capacity);
    if (s == FG_OK) s = setup_slots(v);
    v->replans++;
    v->check_algos = s == FG_OK && fg_vmem_algos_unchecked(v);
    return s;
}

/* ---------------------------------------------------------------- hooks */

/* Start of an iteration: whatever a failed or forward-only iteration left behind is dropped
 * (in-flight copies finished, device copies released, host/disk copies invalidated). */
static void iteration_reset(fg_vmem *v) {
    for (int k = 0; k < v->sc.n_slots; k++) {
        if (v->off_ev[k]) {
            (void)fg_vmem_event_wait(v->link, v->off_ev[k]);
            v->off_ev[k] = NULL;
        }
        if (v->pf_ev[k]) {
            (void)fg_vmem_event_wait(v->link, v->pf_ev[k]);
            v->pf_ev[k] = NULL;
        }
        v->sc.slots[k].valid = 0;
    }
    for (int k = 0; k < v->sc.n_homes; k++) {
        if (v->home_ev[k]) {
            (void)fg_vmem_event_wait(v->link, v->home_ev[k]);
            v->home_ev[k] = NULL;
        }
        /* An input's or weight's device copy left by a forward-only pass is where everything
         * written between iterations went (fg_graph_set_input, fg_graph_load and the others write
         * through the tensor's pointer, which still named the copy): the home takes it back before
         * the copy goes, or the next fill would bring back the old contents (the last eval batch's
         * labels trained the next step). */
        const fg_vmem_home *h = &v->sc.homes[k];
        void *home = fg_graph_storage_home(v->g, h->root);
        const fg_tinfo *ti = fg_graph_tinfo(v->g, h->root);
        if (v->home_ready[k] && home && ti->t.residence == FG_RES_DEVICE && ti->t.data && ti->t.data != home)
            memcpy(home, ti->t.data, h->bytes);
        v->home_ready[k] = 0;
        release_root(v, h->root); /* back at its home */
    }
    v->layout_next = 0;
    free_ws(v, &v->ws);
    for (fg_id r = 0; r < v->nt; r++)
        if (is_planned(v->g, r)) {
            release_root(v, r);
            fg_graph_storage_mark(v->g, r, FG_RES_NONE, NULL);
        }
    fg_clear_error();
    v->forward_done = 0;
}

static fg_status prefetch_issue(fg_vmem *v, int k) {
    fg_vmem_slot *sl = &v->sc.slots[k];
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
    fg_vmem_slot *sl = &v->sc.slots[k];
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
    fg_vmem_slot *sl = &v->sc.slots[k];
    fg_status s = fg_vmem_event_wait(v->link, v->off_ev[k]);
    v->off_ev[k] = NULL;
    release_root(v, sl->root);
    if (s != FG_OK) return s;
    sl->valid = 1;
    fg_graph_storage_mark(v->g, sl->root, sl->on_disk ? FG_RES_DISK : FG_RES_HOST,
                          sl->on_disk ? NULL : v->tiers.host + sl->host_off);
    return FG_OK;
}

/* A dropped root comes back: allocated, then its producer's forward reruns on resident inputs. */
static fg_status recompute(fg_vmem *v, fg_id r) {
    int p = fg_graph_tinfo(v->g, r)->producer;
    FG_TRY(alloc_root(v, r));
    char what[FG_NAME_MAX + 32];
    snprintf(what, sizeof what, "recompute workspace of %s", fg_graph_node(v->g, p)->name);
    size_t ws = ws_need(v, p, FG_FORWARD);
    FG_TRY(alloc_ws(v, ws, what, &v->ws));
    fg_graph_set_workspace(v->g, v->ws, ws);
    double t0 = fg_time_now();
    fg_status s = fg_graph_recompute(v->g, p);
    v->recompute_seconds += fg_time_now() - t0;
    free_ws(v, &v->ws);
    fg_graph_set_workspace(v->g, NULL, 0);
    if (s != FG_OK) return s;
    trace_here(v, FG_VMEM_EV_RECOMPUTE, v->cur_node, FG_BACKWARD, r);
    return FG_OK;
}

/* Weight offload: the device copy of a homed root is allocated and filled from its home, or, a
 * gradient whose home holds zeros, cleared on the device (no copy: the link has nothing to do). */
static fg_status home_fill(fg_vmem *v, int k) {
    const fg_vmem_home *h = &v->sc.homes[k];
    v->home_ready[k] = 0;
    FG_TRY(alloc_root(v, h->root));
    if (h->zero_fill) {
        if (fg_graph_storage_home_zero(v->g, h->root)) {
            memset(fg_graph_storage_device_ptr(v->g, h->root), 0, h->bytes);
            return FG_OK;
        }
        v->fill_fallbacks++;
    }
    trace_here(v, FG_VMEM_EV_PREFETCH_ISSUE, v->cur_node, v->cur_pass, h->root);
    return fg_vmem_link_submit(v->link, FG_VMEM_H2D, fg_graph_storage_device_ptr(v->g, h->root),
                               fg_graph_storage_home(v->g, h->root), h->bytes, -1, 0, NULL, h->name, v->sc.n_slots + k,
                               &v->home_ev[k]);
}

static fg_status home_wait(fg_vmem *v, int k) {
    if (!v->home_ev[k] && v->sc.homes[k].zero_fill) return FG_OK; /* cleared on the device */
    FG_ASSERT_MSG(v->home_ev[k], "vmem: waiting for a weight copy that was never issued");
    fg_status s = fg_vmem_event_wait(v->link, v->home_ev[k]);
    v->home_ev[k] = NULL;
    v->home_ready[k] = s == FG_OK && !v->sc.homes[k].writeback;
    return s;
}

/* After the interval's last use: released (its home is current), or a gradient copied home first. */
static fg_status home_out(fg_vmem *v, int k) {
    const fg_vmem_home *h = &v->sc.homes[k];
    if (!h->writeback) {
        v->home_ready[k] = 0;
        release_root(v, h->root);
        return FG_OK;
    }
    trace_here(v, FG_VMEM_EV_OFFLOAD_ISSUE, v->cur_node, v->cur_pass, h->root);
    fg_graph_storage_home_written(v->g, h->root);
    return fg_vmem_link_submit(v->link, FG_VMEM_D2H, fg_graph_storage_home(v->g, h->root),
                               fg_graph_storage_device_ptr(v->g, h->root), h->bytes, -1, 0, NULL, h->name,
                               v->sc.n_slots + k, &v->home_ev[k]);
}

static fg_status home_done(fg_vmem *v, int k) {
    fg_status s = home_wait(v, k);
    release_root(v, v->sc.homes[k].root);
    return s;
}

static fg_status vm_before(void *self, fg_graph *g, int node, fg_pass pass) {
    fg_vmem *v = self;
    if (v->cfg.dry_run)
        return fg_fail(FG_ERR_INVALID, "vmem: policy '%s' was planned as a dry run (simulation only) and cannot run",
                       fg_vmem_kind_name(v->cfg.kind));
    if (node == 0 && pass == FG_FORWARD) {
        if (v->cfg.trace == FG_VMEM_TRACE_LAST) fg_vmem_trace_restart(&v->trace);
        if (v->cfg.kind != FG_VMEM_NONE) iteration_reset(v);
        v->forward_done = 0;
        if (v->need_profile || v->check_algos) {
            if (!v->t_start) v->t_start = malloc(sizeof(double) * (size_t)v->steps);
            if (!v->t_start) return fg_fail(FG_ERR_OOM, "vmem: out of host memory");
            for (int i = 0; i < v->N; i++)
                for (int p = 0; p < FG_PASS_COUNT; p++)
                    v->t_start[step_of(v, i, (fg_pass)p)] = fg_graph_node_time(g, i, (fg_pass)p);
        }
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
    const fg_vmem_schedule *sc = &v->sc;
    int s = step_of(v, node, pass);
    FG_SCHED_FOR(sc->s[S_ALLOC], s, k) FG_TRY(alloc_root(v, sc->s[S_ALLOC].ids[k]));
    FG_SCHED_FOR(sc->s[S_PF_ISSUE], s, k) FG_TRY(prefetch_issue(v, sc->s[S_PF_ISSUE].ids[k]));
    FG_SCHED_FOR(sc->s[S_HOME_FILL], s, k) FG_TRY(home_fill(v, sc->s[S_HOME_FILL].ids[k]));
    FG_SCHED_FOR(sc->s[S_PF_WAIT], s, k) {
        int j = sc->s[S_PF_WAIT].ids[k];
        FG_ASSERT_MSG(v->pf_ev[j], "vmem: waiting for a prefetch that was never issued");
        fg_status st = fg_vmem_event_wait(v->link, v->pf_ev[j]);
        v->pf_ev[j] = NULL;
        if (st != FG_OK) return st;
    }
    FG_SCHED_FOR(sc->s[S_HOME_WAIT], s, k) FG_TRY(home_wait(v, sc->s[S_HOME_WAIT].ids[k]));
    FG_SCHED_FOR(sc->s[S_RECOMP], s, k) FG_TRY(recompute(v, sc->s[S_RECOMP].ids[k]));
    size_t ws = ws_need(v, node, pass);
    char what[FG_NAME_MAX + 16];
    snprintf(what, sizeof what, "workspace of %s", fg_graph_node(g, node)->name);
    FG_TRY(alloc_ws(v, ws, what, &v->ws));
    fg_graph_set_workspace(g, v->ws, ws);
    return FG_OK;
}

/* Between the halves of a split conv backward: the input goes, its gradient comes. */
static fg_status vm_mid(void *self, fg_graph *g, int node) {
    fg_vmem *v = self;
    (void)g;
    const fg_vmem_schedule *sc = &v->sc;
    int s = step_of(v, node, FG_BACKWARD);
    FG_SCHED_FOR(sc->s[S_MID_RELEASE], s, k) release_root(v, sc->s[S_MID_RELEASE].ids[k]);
    FG_SCHED_FOR(sc->s[S_MID_ALLOC], s, k) FG_TRY(alloc_root(v, sc->s[S_MID_ALLOC].ids[k]));
    return FG_OK;
}

static fg_status vm_after(void *self, fg_graph *g, int node, fg_pass pass) {
    fg_vmem *v = self;
    (void)g;
    if (v->cfg.kind != FG_VMEM_NONE) {
        const fg_vmem_schedule *sc = &v->sc;
        int s = step_of(v, node, pass);
        free_ws(v, &v->ws);
        FG_SCHED_FOR(sc->s[S_RELEASE], s, k) release_root(v, sc->s[S_RELEASE].ids[k]);
        FG_SCHED_FOR(sc->s[S_OFF_WAIT], s, k) FG_TRY(offload_finish(v, sc->s[S_OFF_WAIT].ids[k]));
        FG_SCHED_FOR(sc->s[S_DROP], s, k) {
            fg_id r = sc->s[S_DROP].ids[k];
            release_root(v, r);
            fg_graph_storage_mark(v->g, r, FG_RES_NONE, NULL);
        }
        FG_SCHED_FOR(sc->s[S_OFF_ISSUE], s, k) FG_TRY(offload_issue(v, sc->s[S_OFF_ISSUE].ids[k]));
        FG_SCHED_FOR(sc->s[S_HOME_OUT], s, k) FG_TRY(home_out(v, sc->s[S_HOME_OUT].ids[k]));
        FG_SCHED_FOR(sc->s[S_HOME_DONE], s, k) FG_TRY(home_done(v, sc->s[S_HOME_DONE].ids[k]));
    }
    if (pass == FG_FORWARD && node == v->N - 1) v->forward_done = 1;
    trace_here(v, FG_VMEM_EV_END, node, pass, FG_NONE);
    return FG_OK;
}

static fg_status vm_end(void *self, fg_graph *g) {
    fg_vmem *v = self;
    (void)g;
    for (int k = 0; k < v->sc.n_slots; k++)
        FG_ASSERT_MSG(!v->off_ev[k] && !v->pf_ev[k], "vmem: a copy is still in flight at the end of an iteration");
    for (int k = 0; v->has_backward && k < v->sc.n_homes; k++)
        FG_ASSERT_MSG(!v->home_ev[k], "vmem: a weight copy is still in flight at the end of an iteration");
    if (v->has_backward) v->iterations++;
    v->forward_done = 0;
    v->cur_node = -1;
    if ((v->need_profile || v->check_algos) && v->has_backward) FG_TRY(replan(v));
    return FG_OK;
}

static void vm_destroy(void *self) {
    fg_vmem *v = self;
    if (v->link) {
        for (int k = 0; k < v->sc.n_slots; k++) {
            if (v->off_ev && v->off_ev[k]) (void)fg_vmem_event_wait(v->link, v->off_ev[k]);
            if (v->pf_ev && v->pf_ev[k]) (void)fg_vmem_event_wait(v->link, v->pf_ev[k]);
        }
        for (int k = 0; v->home_ev && k < v->sc.n_homes; k++)
            if (v->home_ev[k]) (void)fg_vmem_event_wait(v->link, v->home_ev[k]);
        fg_vmem_link_destroy(v->link);
    }
    if (v->pool) {
        fg_pool_set_observer(v->pool, NULL, NULL);
        if (v->ws) fg_pool_free(v->pool, v->ws);
        if (v->shared_ws) fg_pool_free(v->pool, v->shared_ws);
    }
    fg_vmem_tiers_free(&v->tiers, v->sc.slots, v->sc.n_slots);
    fg_vmem_schedule_free(&v->sc);
    free(v->off_ev);
    free(v->pf_ev);
    free(v->home_ev);
    free(v->home_ready);
    free(v->layout_off);
    free(v->layout_id);
    free(v->ri);
    free(v->home_uses);
    free(v->ref_algo);
    free(v->build_algo);
    free(v->step_seconds);
    free(v->algo_sec);
    free(v->algo_full);
    free(v->t_start);
    free(v->tiers.spill_dir);
    fg_vmem_trace_destroy(&v->trace);
    free(v);
}

fg_status fg_vmem_policy_create(fg_mem_policy *out, const fg_vmem_config *cfg) {
    memset(out, 0, sizeof *out);
    if (cfg->kind < 0 || cfg->kind >= FG_VMEM_KIND_COUNT)
        return fg_fail(FG_ERR_INVALID, "vmem: policy kind %d out of range", (int)cfg->kind);
    FG_TRY(fg_vmem_check_rate("vmem: link", cfg->link.gbps, cfg->link.latency_us));
    FG_TRY(fg_vmem_check_rate("vmem: link model", cfg->model.gbps, cfg->model.latency_us));
    if (isnan(cfg->model.compute_share) || cfg->model.compute_share > 1)
        return fg_fail(FG_ERR_INVALID, "vmem: model.compute_share %g, expected <= 1 (negative: 1 / threads)",
                       cfg->model.compute_share);
    if (cfg->link.threads_out > FG_VMEM_MAX_COPY_THREADS || cfg->link.threads_in > FG_VMEM_MAX_COPY_THREADS)
        return fg_fail(FG_ERR_INVALID, "vmem: %d offload and %d prefetch copy threads, expected at most %d each",
                       cfg->link.threads_out, cfg->link.threads_in, FG_VMEM_MAX_COPY_THREADS);
    if (cfg->trace < 0 || cfg->trace >= FG_VMEM_TRACE_MODE_COUNT)
        return fg_fail(FG_ERR_INVALID, "vmem: trace mode %d out of range", (int)cfg->trace);
    if (cfg->offload_weights && cfg->kind == FG_VMEM_NONE)
        return fg_fail(FG_ERR_INVALID,
                       "vmem: policy 'none' is the network-wide baseline and keeps the weights on the device; weight "
                       "offload needs a layer-wise policy (all, conv, dyn or plan)");
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
    out->mid = vm_mid;
    out->end = vm_end;
    out->destroy = vm_destroy;
    out->self = v;
    out->home_host = cfg->offload_weights != 0;
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
    out->offload_bytes_per_iter = v->sc.offload_bytes;
    out->n_offload_tensors = v->sc.n_slots;
    out->n_recompute_tensors = v->sc.n_recompute;
    out->recompute_bytes_per_iter = v->sc.recompute_bytes;
    out->n_algo_changed = v->n_algo_changed;
    for (int i = 0; v->sc.split && i < v->N; i++) out->n_split_convs += v->sc.split[i];
    out->replans = v->replans;
    out->algo_checks = v->algo_checks;
    out->recompute_seconds = v->recompute_seconds;
    snprintf(out->decision, sizeof out->decision, "%s", v->decision[0] ? v->decision : fg_vmem_kind_name(v->cfg.kind));
    out->n_disk_tensors = v->tiers.n_disk;
    out->weight_bytes_per_iter = v->sc.home_bytes;
    out->n_weight_copies = v->sc.n_home_copies;
    out->n_weight_zero_fills = v->sc.n_zero_fills;
    out->weight_fill_fallbacks = v->fill_fallbacks;
    out->iterations = v->iterations;
}

void fg_vmem_reset_stats(fg_vmem *v) {
    if (v->link) fg_vmem_link_reset_stats(v->link);
    v->iterations = 0;
    v->recompute_seconds = 0;
    v->fill_fallbacks = 0;
}

int fg_vmem_is_offloaded(const fg_vmem *v, fg_id id) {
    if (!v->sc.slot_of || !v->g || id < 0 || id >= v->nt) return 0;
    return v->sc.slot_of[id] >= 0;
}

int fg_vmem_is_recomputed(const fg_vmem *v, fg_id id) {
    if (!v->sc.eff || !v->g || id < 0 || id >= v->nt) return 0;
    return v->sc.eff[fg_graph_tinfo(v->g, id)->alias_of] == FG_VMEM_RECOMPUTE;
}

size_t fg_vmem_trace_get(fg_vmem *v, fg_vmem_trace_event *dst, size_t cap) { return fg_vmem_trace_copy(&v->trace, dst, cap); }
size_t fg_vmem_trace_count(fg_vmem *v) { return fg_vmem_trace_size(&v->trace); }

fg_status fg_vmem_trace_write_csv(fg_vmem *v, const fg_graph *g, const char *path) {
    return fg_vmem_trace_write_file(&v->trace, g, path);
}
