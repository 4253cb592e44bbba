/* The time model of a schedule: an event replay of one iteration on two resources, the compute
 * stream (the steps in order, each taking its step seconds, plus the forwards a step reruns) and
 * the link (one FIFO queue per direction; a copy starts when it is issued and its queue is free and
 * takes latency + bytes / bandwidth). Compute waits exactly where the hooks wait: for a prefetch
 * before the step that reads it, for an offload at the boundary where its device copy is released.
 * On a CPU the copies share the cores and the memory bandwidth with the ops, so each copy also
 * slows compute by compute_share of its seconds (0 for a GPU's copy engines).
 *
 * Device memory follows the schedule's allocations over that predicted time: allocations happen at
 * a step's start, releases at its end, so the time-weighted average is comparable to the one the
 * trace measures. plan (search.c) ranks its choices with this model; `frugal vmem simulate` feeds
 * it a roofline GPU's step times and a PCIe link. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vmem/vmem_impl.h"

static size_t round_pool(size_t x) { return (x + FG_POOL_ALIGN - 1) / FG_POOL_ALIGN * FG_POOL_ALIGN; }

double fg_vmem_memcpy_gbps(void) {
    static double cached;
    if (cached > 0) return cached;
    size_t n = (size_t)64 << 20;
    unsigned char *a = malloc(n), *b = malloc(n);
    if (!a || !b) {
        free(a);
        free(b);
        return 10.0; /* a typical DDR memcpy figure; only a planning estimate */
    }
    memset(a, 1, n);
    memset(b, 2, n);
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = fg_time_now();
        memcpy(b, a, n);
        double dt = fg_time_now() - t0;
        if (dt < best) best = dt;
    }
    volatile unsigned char sink = b[n / 2];
    (void)sink;
    free(a);
    free(b);
    cached = best > 0 ? (double)n / best / 1e9 : 10.0;
    return cached;
}

typedef struct memtrack {
    size_t cur, peak;
    double area, last_t;
} memtrack;

static void mem_at(memtrack *m, double t, long long delta) {
    m->area += (double)m->cur * (t - m->last_t);
    m->last_t = t;
    m->cur = (size_t)((long long)m->cur + delta);
    if (m->cur > m->peak) m->peak = m->cur;
}

static double copy_seconds(const fg_vmem_link_model *m, size_t bytes) {
    double gbps = m->gbps > 0 ? m->gbps : fg_vmem_memcpy_gbps();
    return m->latency_us * 1e-6 + (double)bytes / (gbps * 1e9);
}

/* A copy of `bytes` issued at t on a FIFO queue free from *queue_free: when it is done. The copy
 * also slows compute by `share` of its seconds. */
static double issue_copy(const fg_vmem_link_model *m, size_t bytes, double t, double *queue_free, double share,
                         fg_vmem_prediction *out) {
    double c = copy_seconds(m, bytes);
    double start = t > *queue_free ? t : *queue_free;
    *queue_free = start + c;
    out->interference_seconds += c * share;
    return *queue_free;
}

/* Compute at t waits for a copy done at `done`: the new time. */
static double wait_copy(double t, double done, fg_vmem_prediction *out) {
    if (done <= t) return t;
    out->stall_seconds += done - t;
    return done;
}

fg_status fg_vmem_predict_schedule(const fg_vmem *v, const fg_vmem_schedule *sc, const double *step_seconds,
                                   const fg_vmem_link_model *m, fg_vmem_prediction *out) {
    memset(out, 0, sizeof *out);
    const fg_graph *g = v->g;
    double share = m->compute_share >= 0 ? m->compute_share : 1.0 / (fg_threads_get() > 0 ? fg_threads_get() : 1);
    int last = v->has_backward ? v->steps : v->N;
    for (int s = 0; s < last; s++) out->compute_seconds += step_seconds[s];
    memtrack mt = {round_pool(v->persistent_bytes), round_pool(v->persistent_bytes), 0, 0};
    if (v->cfg.kind == FG_VMEM_NONE) {
        long long all = 0;
        for (fg_id r = 0; r < v->nt; r++)
            if (fg_vmem_is_planned(g, r)) all += (long long)round_pool(fg_graph_tinfo(g, r)->bytes);
        mem_at(&mt, 0, all + (long long)round_pool(v->shared_ws_bytes));
        out->iter_seconds = out->compute_seconds;
        mem_at(&mt, out->iter_seconds, 0);
        out->peak_device_bytes = mt.peak;
        out->avg_device_bytes = out->iter_seconds > 0 ? mt.area / out->iter_seconds : (double)mt.peak;
        return FG_OK;
    }
    double *off_done = calloc((size_t)sc->n_slots + 1, sizeof(double));
    double *pf_done = calloc((size_t)sc->n_slots + 1, sizeof(double));
    double *home_done = calloc((size_t)sc->n_homes + 1, sizeof(double));
    if (!off_done || !pf_done || !home_done) {
        free(off_done);
        free(pf_done);
        free(home_done);
        return fg_fail(FG_ERR_OOM, "vmem predict: out of host memory");
    }
    double t = 0, out_free = 0, in_free = 0;
    for (int s = 0; s < last; s++) {
        int node = s < v->N ? s : 2 * v->N - 1 - s;
        fg_pass pass = s < v->N ? FG_FORWARD : FG_BACKWARD;
        FG_SCHED_FOR(sc->s[S_ALLOC], s, k)
            mem_at(&mt, t, (long long)round_pool(fg_graph_tinfo(g, sc->s[S_ALLOC].ids[k])->bytes));
        FG_SCHED_FOR(sc->s[S_PF_ISSUE], s, k) {
            int j = sc->s[S_PF_ISSUE].ids[k];
            const fg_vmem_slot *sl = &sc->slots[j];
            mem_at(&mt, t, (long long)round_pool(sl->bytes));
            pf_done[j] = issue_copy(m, sl->bytes, t, &in_free, share, out);
            out->prefetch_bytes += (double)sl->bytes;
        }
        FG_SCHED_FOR(sc->s[S_HOME_FILL], s, k) {
            const fg_vmem_home *h = &sc->homes[sc->s[S_HOME_FILL].ids[k]];
            mem_at(&mt, t, (long long)round_pool(h->bytes));
            if (h->zero_fill) { /* a memset on the device: not modelled (well under 1 % of a step) */
                home_done[sc->s[S_HOME_FILL].ids[k]] = t;
                continue;
            }
            home_done[sc->s[S_HOME_FILL].ids[k]] = issue_copy(m, h->bytes, t, &in_free, share, out);
            out->weight_bytes += (double)h->bytes;
        }
        FG_SCHED_FOR(sc->s[S_PF_WAIT], s, k) t = wait_copy(t, pf_done[sc->s[S_PF_WAIT].ids[k]], out);
        FG_SCHED_FOR(sc->s[S_HOME_WAIT], s, k) t = wait_copy(t, home_done[sc->s[S_HOME_WAIT].ids[k]], out);
        FG_SCHED_FOR(sc->s[S_RECOMP], s, k) {
            fg_id r = sc->s[S_RECOMP].ids[k];
            mem_at(&mt, t, (long long)round_pool(fg_graph_tinfo(g, r)->bytes));
            double rs = step_seconds[fg_graph_tinfo(g, r)->producer];
            out->recompute_seconds += rs;
            t += rs;
        }
        size_t ws = round_pool(fg_vmem_ws_need(v, node, pass));
        mem_at(&mt, t, (long long)ws);
        t += step_seconds[s] / 2; /* a split conv backward: the weight half, then the data half */
        FG_SCHED_FOR(sc->s[S_MID_RELEASE], s, k)
            mem_at(&mt, t, -(long long)round_pool(fg_graph_tinfo(g, sc->s[S_MID_RELEASE].ids[k])->bytes));
        FG_SCHED_FOR(sc->s[S_MID_ALLOC], s, k)
            mem_at(&mt, t, (long long)round_pool(fg_graph_tinfo(g, sc->s[S_MID_ALLOC].ids[k])->bytes));
        t += step_seconds[s] / 2;
        mem_at(&mt, t, -(long long)ws);
        FG_SCHED_FOR(sc->s[S_RELEASE], s, k)
            mem_at(&mt, t, -(long long)round_pool(fg_graph_tinfo(g, sc->s[S_RELEASE].ids[k])->bytes));
        FG_SCHED_FOR(sc->s[S_OFF_WAIT], s, k) {
            int j = sc->s[S_OFF_WAIT].ids[k];
            t = wait_copy(t, off_done[j], out);
            mem_at(&mt, t, -(long long)round_pool(sc->slots[j].bytes));
        }
        FG_SCHED_FOR(sc->s[S_DROP], s, k)
            mem_at(&mt, t, -(long long)round_pool(fg_graph_tinfo(g, sc->s[S_DROP].ids[k])->bytes));
        FG_SCHED_FOR(sc->s[S_OFF_ISSUE], s, k) {
            int j = sc->s[S_OFF_ISSUE].ids[k];
            off_done[j] = issue_copy(m, sc->slots[j].bytes, t, &out_free, share, out);
            out->offload_bytes += (double)sc->slots[j].bytes;
        }
        FG_SCHED_FOR(sc->s[S_HOME_OUT], s, k) {
            int j = sc->s[S_HOME_OUT].ids[k];
            const fg_vmem_home *h = &sc->homes[j];
            if (!h->writeback) {
                mem_at(&mt, t, -(long long)round_pool(h->bytes));
                continue;
            }
            home_done[j] = issue_copy(m, h->bytes, t, &out_free, share, out);
            out->weight_bytes += (double)h->bytes;
        }
        FG_SCHED_FOR(sc->s[S_HOME_DONE], s, k) {
            int j = sc->s[S_HOME_DONE].ids[k];
            t = wait_copy(t, home_done[j], out);
            mem_at(&mt, t, -(long long)round_pool(sc->homes[j].bytes));
        }
    }
    free(off_done);
    free(pf_done);
    free(home_done);
    out->iter_seconds = t + out->interference_seconds;
    mem_at(&mt, out->iter_seconds, 0);
    out->peak_device_bytes = mt.peak;
    out->avg_device_bytes = out->iter_seconds > 0 ? mt.area / out->iter_seconds : (double)mt.peak;
    return FG_OK;
}

void fg_vmem_scale_steps(const fg_vmem *v, const fg_conv_algo *algo, const double *in, double *out) {
    for (int s = 0; s < v->steps; s++) {
        int node = s < v->N ? s : 2 * v->N - 1 - s;
        const fg_ninfo *n = fg_graph_node(v->g, node);
        fg_conv_algo a = algo ? algo[node] : n->algo;
        out[s] = in[s];
        if (n->op == FG_OP_CONV2D && a != v->ref_algo[node])
            out[s] *= fg_vmem_algo_ratio(v, node, s < v->N ? FG_FORWARD : FG_BACKWARD, a, v->ref_algo[node]);
    }
}

fg_status fg_vmem_check_steps(const char *what, const double *step_seconds, int steps) {
    for (int i = 0; i < steps; i++)
        if (!(step_seconds[i] >= 0 && step_seconds[i] < INFINITY))
            return fg_fail(FG_ERR_INVALID, "%s: step_seconds[%d] is %g, expected a finite time >= 0", what, i,
                           step_seconds[i]);
    return FG_OK;
}

fg_status fg_vmem_predict(fg_vmem *v, const double *step_seconds, const fg_vmem_link_model *m, fg_vmem_prediction *out) {
    if (!v->g) return fg_fail(FG_ERR_INVALID, "vmem predict: the policy has not been planned (build the graph first)");
    if (!step_seconds) return fg_fail(FG_ERR_INVALID, "vmem predict: step_seconds is NULL (2N seconds expected)");
    FG_TRY(fg_vmem_check_rate("vmem predict: link model", m->gbps, m->latency_us));
    if (isnan(m->compute_share) || m->compute_share > 1)
        return fg_fail(FG_ERR_INVALID, "vmem predict: compute_share %g, expected <= 1 (negative: 1 / threads)",
                       m->compute_share);
    FG_TRY(fg_vmem_check_steps("vmem predict", step_seconds, v->steps));
    double *secs = malloc(sizeof(double) * (size_t)(v->steps + 1));
    if (!secs) return fg_fail(FG_ERR_OOM, "vmem predict: out of host memory");
    fg_vmem_scale_steps(v, NULL, step_seconds, secs);
    fg_status st = fg_vmem_predict_schedule(v, &v->sc, secs, m, out);
    free(secs);
    return st;
}
