/* The searches of the dyn and plan policies. Both choose, for a device budget, one action per saved
 * storage root (keep, offload, recompute) and one algorithm per conv layer, and check every
 * candidate exactly: build its schedule, replay its allocations on the pool model (replay.c).
 *
 * dyn (vDNN_dyn, Rhu et al. section III-C): try, in order, no offload, conv and all, each with the
 * performance-optimal conv algorithms (the graph's defaults); the first that fits wins. Else
 * all-offload with the memory-optimal algorithm (implicit, no workspace) everywhere must fit (if
 * not, nothing does and the smallest budget is that configuration's), and then, conv layer by conv
 * layer in forward order, the fastest algorithm whose workspace still fits is taken (greedy).
 *
 * plan (ours, in the spirit of Capuchin and Checkmate): start from "keep everything, fastest
 * algorithms" and, while the budget is exceeded, apply the move with the most bytes of excess
 * removed per second of predicted time added, where
 *  - excess = sum over steps of (the step's highest bytes in use - the budget), positive parts,
 *  - moves = for a root resident at the worst step: keep -> offload, keep -> recompute,
 *    offload -> recompute; for the conv running at the worst step: an algorithm with less workspace,
 *  - time = the predicted iteration (predict.c) from measured step times and the link model.
 * Recompute is cheap where the producer is (pooling, concat, ReLU, LRN, dropout) and saves the
 * copy entirely; offload is free while the link keeps up with compute. Fragmentation is handled by
 * lowering the target when the excess is gone but the replay still fails. Finally plan predicts
 * dyn's choice on the same model and keeps whichever is faster, so it is never predicted slower. */
#include <stdlib.h>
#include <string.h>

#include "vmem/vmem_impl.h"

/* The predicted gain below which plan keeps dyn's choice: the time model's error on this machine
 * (predicted against measured iteration times in `vmem report`: within 1-4 %). */
#define PLAN_MIN_GAIN 0.03

double fg_vmem_algo_cost(fg_conv_algo a) {
    /* forward + backward time relative to oneDNN's, from bench/conv_algos (docs/BENCHMARKS.md):
     * implicit 1.3-1.4x, im2col GEMM 1.1-1.3x on the 3x3 layers that dominate */
    switch (a) {
    case FG_CONV_IMPLICIT: return 1.4;
    case FG_CONV_GEMM: return 1.25;
    default: return 1.0;
    }
}

typedef struct config {
    unsigned char *act; /* per tensor id */
    fg_conv_algo *algo; /* per node (conv nodes only meaningful) */
} config;

static void config_free(config *c) {
    free(c->act);
    free(c->algo);
    c->act = NULL;
    c->algo = NULL;
}

/* Both arrays, or neither (on failure nothing is left to free). */
static fg_status config_alloc(const fg_vmem *v, config *c) {
    c->act = calloc((size_t)v->nt + 1, 1);
    c->algo = calloc((size_t)v->N + 1, sizeof *c->algo);
    if (!c->act || !c->algo) {
        config_free(c);
        return fg_fail(FG_ERR_OOM, "vmem plan: out of host memory");
    }
    return FG_OK;
}

static void config_copy(const fg_vmem *v, config *dst, const config *src) {
    memcpy(dst->act, src->act, (size_t)v->nt);
    memcpy(dst->algo, src->algo, sizeof *dst->algo * (size_t)v->N);
}

static int is_conv(const fg_vmem *v, int i) { return fg_graph_node(v->g, i)->op == FG_OP_CONV2D; }

static fg_status set_algos(fg_vmem *v, const fg_conv_algo *algo) {
    for (int i = 0; i < v->N; i++)
        if (is_conv(v, i) && fg_graph_node(v->g, i)->algo != algo[i]) FG_TRY(fg_graph_set_algo(v->g, i, algo[i]));
    return FG_OK;
}

/* One evaluated candidate: its schedule (owned), allocations and verdict. */
typedef struct evald {
    fg_vmem_schedule sc;
    fg_vmem_memops m;
    int fits;
} evald;

static void evald_free(evald *e) {
    fg_vmem_schedule_free(&e->sc);
    free(e->m.op);
    memset(e, 0, sizeof *e);
}

static int replay_fits(const fg_vmem *v, const fg_vmem_memops *m, size_t capacity) {
    return fg_vmem_fits(m->op, m->n, v->nt + 1, v->persistent_bytes, capacity);
}

/* Sets c's algorithms on the graph and builds and checks its schedule. */
static fg_status evaluate(fg_vmem *v, const config *c, size_t capacity, evald *e) {
    evald_free(e);
    FG_TRY(set_algos(v, c->algo));
    FG_TRY(fg_vmem_schedule_build(v, c->act, &e->sc));
    FG_TRY(fg_vmem_memops_build(v, &e->sc, 0, 0, &e->m));
    e->fits = replay_fits(v, &e->m, capacity);
    return FG_OK;
}

static size_t min_capacity(const fg_vmem *v, const evald *e) {
    return fg_vmem_min_capacity(e->m.op, e->m.n, v->nt + 1, v->persistent_bytes);
}

/* Makes c the policy's schedule (e was evaluated from c, its schedule moves into v). Algorithm
 * changes count from the graph's own at build: after plan's first measured iteration the search's
 * reference (`fast`) is the algorithms dyn ran it with. */
static void adopt(fg_vmem *v, evald *e, const config *c) {
    fg_vmem_schedule_free(&v->sc);
    v->sc = e->sc;
    memset(&e->sc, 0, sizeof e->sc);
    v->n_algo_changed = 0;
    for (int i = 0; i < v->N; i++) v->n_algo_changed += is_conv(v, i) && c->algo[i] != v->build_algo[i];
}

static void describe_algos(const fg_vmem *v, const config *c, char *buf, size_t cap) {
    int n[FG_CONV_ALGO_COUNT] = {0}, convs = 0;
    for (int i = 0; i < v->N; i++)
        if (is_conv(v, i)) {
            convs++;
            if (c->algo[i] != v->build_algo[i]) n[c->algo[i]]++;
        }
    size_t o = 0;
    int any = 0;
    for (int a = 0; a < FG_CONV_ALGO_COUNT; a++)
        if (n[a] && o < cap) {
            o += (size_t)snprintf(buf + o, cap - o, "%s%d of %d convs %s", any ? ", " : "", n[a], convs,
                                  fg_conv_algo_name((fg_conv_algo)a));
            any = 1;
        }
    if (!any) snprintf(buf, cap, "performance-optimal algorithms");
}

/* ---------------------------------------------------------------- dyn */

/* dyn's choice into `out` (and e, evaluated); FG_ERR_OOM when nothing fits (the caller has put
 * the floor's smallest budget in v->min_bytes). */
static fg_status dyn_choose(fg_vmem *v, size_t capacity, const config *fast, config *out, evald *e, const char **what) {
    static const struct { fg_vmem_kind kind; const char *name; } tries[] = {
        {FG_VMEM_NONE, "no offload"}, {FG_VMEM_CONV, "offload conv inputs"}, {FG_VMEM_ALL, "offload all"}};
    for (size_t t = 0; t < sizeof tries / sizeof tries[0]; t++) {
        config_copy(v, out, fast);
        fg_vmem_kind_actions(v, tries[t].kind, out->act);
        FG_TRY(evaluate(v, out, capacity, e));
        if (e->fits) {
            *what = tries[t].name;
            return FG_OK;
        }
    }
    /* the floor (its smallest budget is already in v->min_bytes): with fixed algorithms it is
     * all-offload just tried; else all-offload with memory-optimal algorithms */
    if (v->cfg.fixed_algos) return fg_fail(FG_ERR_OOM, "no configuration fits");
    for (int i = 0; i < v->N; i++)
        if (is_conv(v, i)) out->algo[i] = FG_CONV_IMPLICIT;
    FG_TRY(evaluate(v, out, capacity, e));
    if (!e->fits) return fg_fail(FG_ERR_OOM, "no configuration fits");
    /* greedy, layer by layer: the fastest algorithm whose workspace still fits */
    for (int i = 0; i < v->N; i++) {
        if (!is_conv(v, i)) continue;
        fg_conv_algo order[FG_CONV_ALGO_COUNT];
        int n = 0;
        order[n++] = fast->algo[i];
        for (int a = 0; a < FG_CONV_ALGO_COUNT; a++)
            if ((fg_conv_algo)a != fast->algo[i] && (fg_conv_algo)a != FG_CONV_IMPLICIT) order[n++] = (fg_conv_algo)a;
        for (int k = 0; k < n; k++) {
            if (order[k] == FG_CONV_IMPLICIT) break;
            out->algo[i] = order[k];
            FG_TRY(evaluate(v, out, capacity, e));
            if (e->fits) break;
            out->algo[i] = FG_CONV_IMPLICIT;
        }
    }
    FG_TRY(evaluate(v, out, capacity, e));
    FG_ASSERT(e->fits);
    *what = "offload all";
    return FG_OK;
}

/* ---------------------------------------------------------------- plan */

static fg_vmem_link_model plan_model(const fg_vmem *v) {
    fg_vmem_link_model m = v->cfg.model;
    if (m.gbps <= 0) m.gbps = v->cfg.link.gbps > 0 ? v->cfg.link.gbps : fg_vmem_memcpy_gbps();
    if (m.latency_us <= 0 && v->cfg.link.gbps > 0) m.latency_us = v->cfg.link.latency_us;
    return m;
}

static fg_status predict_time(const fg_vmem *v, const config *c, const evald *e, double *secs, double *t) {
    fg_vmem_scale_steps(v, c->algo, v->step_seconds, secs);
    fg_vmem_link_model m = plan_model(v);
    fg_vmem_prediction p;
    FG_TRY(fg_vmem_predict_schedule(v, &e->sc, secs, &m, &p));
    *t = p.iter_seconds;
    return FG_OK;
}

/* Sum over steps of the positive part of (highest in-use bytes in the step - target), and the worst step. */
static double excess(const fg_vmem *v, const fg_vmem_memops *m, size_t target, int *worst) {
    size_t align = FG_POOL_ALIGN;
    size_t cur = (v->persistent_bytes + align - 1) / align * align, step_max = cur;
    double sum = 0, worst_x = 0;
    int step = m->n ? m->op[0].step : 0;
    *worst = -1;
    for (size_t i = 0; i <= m->n; i++) {
        if (i == m->n || m->op[i].step != step) {
            if (step_max > target) {
                double x = (double)(step_max - target);
                sum += x;
                if (x > worst_x) {
                    worst_x = x;
                    *worst = step;
                }
            }
            if (i == m->n) break;
            step = m->op[i].step;
            step_max = cur;
        }
        size_t b = (m->op[i].bytes + align - 1) / align * align;
        if (m->op[i].alloc) {
            cur += b;
            if (cur > step_max) step_max = cur;
        } else {
            cur -= b;
        }
    }
    return sum;
}

typedef struct plan_ctx {
    fg_vmem *v;
    size_t capacity, target;
    double *secs;
    evald e;
    double ex, time;
} plan_ctx;

/* Tries c: 1 and (gain, dt) when it removes excess. */
static fg_status try_move(plan_ctx *p, const config *c, double *gain, double *dt) {
    int w;
    FG_TRY(evaluate(p->v, c, p->capacity, &p->e));
    *gain = p->ex - excess(p->v, &p->e.m, p->target, &w);
    double t;
    FG_TRY(predict_time(p->v, c, &p->e, p->secs, &t));
    *dt = t - p->time;
    return FG_OK;
}

static int better(double gain, double dt, double best_gain, double best_dt, double eps) {
    if (gain <= 0) return 0;
    if (best_gain <= 0) return 1;
    double s = gain / (dt > eps ? dt : eps), bs = best_gain / (best_dt > eps ? best_dt : eps);
    if (s != bs) return s > bs;
    return gain > best_gain;
}

static fg_status plan_greedy(fg_vmem *v, size_t capacity, const config *fast, config *cur, int *ok) {
    plan_ctx p;
    memset(&p, 0, sizeof p);
    p.v = v;
    p.capacity = capacity;
    p.target = capacity;
    config trial = {0}, best = {0};
    fg_status st = FG_OK;
    *ok = 0;
    p.secs = malloc(sizeof(double) * (size_t)v->steps);
    if (!p.secs) return fg_fail(FG_ERR_OOM, "vmem plan: out of host memory");
    if ((st = config_alloc(v, &trial)) != FG_OK || (st = config_alloc(v, &best)) != FG_OK) goto done;
    config_copy(v, cur, fast);
    fg_vmem_kind_actions(v, FG_VMEM_NONE, cur->act);
    for (int iter = 0; iter < 4 * (v->nt + v->N) + 16; iter++) {
        if ((st = evaluate(v, cur, capacity, &p.e)) != FG_OK) goto done;
        if (p.e.fits) {
            *ok = 1;
            goto done;
        }
        int worst;
        p.ex = excess(v, &p.e.m, p.target, &worst);
        if (p.ex <= 0) { /* the pool's fragmentation: aim lower */
            size_t need = min_capacity(v, &p.e), gap = need > capacity ? need - capacity : 0;
            size_t lower = gap + 64 * FG_POOL_ALIGN;
            if (p.target <= v->persistent_bytes + lower) goto done;
            p.target -= lower;
            continue;
        }
        if ((st = predict_time(v, cur, &p.e, p.secs, &p.time)) != FG_OK) goto done;
        fg_vmem_schedule cur_sc = p.e.sc; /* read below while p.e is reused for trials */
        memset(&p.e.sc, 0, sizeof p.e.sc);
        double best_gain = 0, best_dt = 0, eps = 1e-9 + 1e-6 * p.time;
        for (fg_id r = 0; r < v->nt && st == FG_OK; r++) {
            const fg_tinfo *t = fg_graph_tinfo(v->g, r);
            if (!fg_vmem_is_planned(v->g, r) || t->producer < 0 || v->ri[r].bf < 0) continue;
            if (t->first_use > worst || cur_sc.lu[r] < worst) continue;
            for (int a = cur->act[r] + 1; a <= FG_VMEM_RECOMPUTE && st == FG_OK; a++) {
                config_copy(v, &trial, cur);
                trial.act[r] = (unsigned char)a;
                double gain, dt;
                st = try_move(&p, &trial, &gain, &dt);
                if (st == FG_OK && better(gain, dt, best_gain, best_dt, eps)) {
                    best_gain = gain;
                    best_dt = dt;
                    config_copy(v, &best, &trial);
                }
            }
        }
        int node = worst < v->N ? worst : 2 * v->N - 1 - worst;
        fg_pass pass = worst < v->N ? FG_FORWARD : FG_BACKWARD;
        if (st == FG_OK && is_conv(v, node) && !v->cfg.fixed_algos) {
            size_t ws_now = fg_vmem_ws_need(v, node, pass);
            for (int a = 0; a < FG_CONV_ALGO_COUNT && st == FG_OK; a++) {
                if ((fg_conv_algo)a == cur->algo[node]) continue;
                config_copy(v, &trial, cur);
                trial.algo[node] = (fg_conv_algo)a;
                double gain, dt;
                st = try_move(&p, &trial, &gain, &dt);
                if (st == FG_OK && fg_vmem_ws_need(v, node, pass) < ws_now && better(gain, dt, best_gain, best_dt, eps)) {
                    best_gain = gain;
                    best_dt = dt;
                    config_copy(v, &best, &trial);
                }
            }
        }
        fg_vmem_schedule_free(&cur_sc);
        if (st != FG_OK || best_gain <= 0) goto done;
        config_copy(v, cur, &best);
    }
done:
    evald_free(&p.e);
    config_free(&trial);
    config_free(&best);
    free(p.secs);
    return st;
}

/* Local search from a configuration that fits: any single change of one root's action or one
 * conv's algorithm that still fits and is predicted faster is kept, until a pass changes nothing
 * (at most 3 passes). Removes what a greedy step made unnecessary and improves dyn's choice. */
static fg_status refine(fg_vmem *v, size_t capacity, config *c, double *secs, double *t) {
    config trial = {0};
    evald e;
    memset(&e, 0, sizeof e);
    fg_status st = config_alloc(v, &trial);
    for (int pass = 0; pass < 3 && st == FG_OK; pass++) {
        int improved = 0;
        for (fg_id r = 0; r < v->nt && st == FG_OK; r++) {
            const fg_tinfo *ti = fg_graph_tinfo(v->g, r);
            if (!fg_vmem_is_planned(v->g, r) || ti->producer < 0 || v->ri[r].bf < 0) continue;
            for (int a = FG_VMEM_KEEP; a <= FG_VMEM_RECOMPUTE && st == FG_OK; a++) {
                if (a == c->act[r]) continue;
                config_copy(v, &trial, c);
                trial.act[r] = (unsigned char)a;
                st = evaluate(v, &trial, capacity, &e);
                if (st != FG_OK || !e.fits) continue;
                double tt;
                st = predict_time(v, &trial, &e, secs, &tt);
                if (st == FG_OK && tt < *t * (1 - 1e-9)) {
                    config_copy(v, c, &trial);
                    *t = tt;
                    improved = 1;
                }
            }
        }
        for (int i = 0; i < v->N && st == FG_OK && !v->cfg.fixed_algos; i++) {
            if (!is_conv(v, i)) continue;
            for (int a = 0; a < FG_CONV_ALGO_COUNT && st == FG_OK; a++) {
                if ((fg_conv_algo)a == c->algo[i]) continue;
                config_copy(v, &trial, c);
                trial.algo[i] = (fg_conv_algo)a;
                st = evaluate(v, &trial, capacity, &e);
                if (st != FG_OK || !e.fits) continue;
                double tt;
                st = predict_time(v, &trial, &e, secs, &tt);
                if (st == FG_OK && tt < *t * (1 - 1e-9)) {
                    config_copy(v, c, &trial);
                    *t = tt;
                    improved = 1;
                }
            }
        }
        if (!improved) break;
    }
    evald_free(&e);
    config_free(&trial);
    return st;
}

/* ---------------------------------------------------------------- entry */

fg_status fg_vmem_search(fg_vmem *v, size_t capacity) {
    config fast = {0}, dyn = {0}, pl = {0};
    evald e;
    memset(&e, 0, sizeof e);
    double *secs = NULL;
    fg_status st = config_alloc(v, &fast);
    if (st == FG_OK) st = config_alloc(v, &dyn);
    if (st == FG_OK) st = config_alloc(v, &pl);
    if (st != FG_OK) goto done;
    for (int i = 0; i < v->N; i++) fast.algo[i] = is_conv(v, i) ? fg_graph_node(v->g, i)->algo : FG_CONV_DNNL;
    if (v->ref_algo && v->step_seconds) /* performance-optimal = what the graph was measured with */
        for (int i = 0; i < v->N; i++) fast.algo[i] = v->ref_algo[i];

    /* the floor (all-offload, memory-optimal algorithms) names the smallest budget */
    config_copy(v, &dyn, &fast);
    fg_vmem_kind_actions(v, FG_VMEM_ALL, dyn.act);
    for (int i = 0; i < v->N; i++)
        if (is_conv(v, i) && !v->cfg.fixed_algos) dyn.algo[i] = FG_CONV_IMPLICIT;
    if ((st = evaluate(v, &dyn, 0, &e)) != FG_OK) goto done;
    v->min_bytes = min_capacity(v, &e);

    const char *what = NULL;
    st = dyn_choose(v, capacity, &fast, &dyn, &e, &what);
    if (st != FG_OK) goto done;
    char algos[96];
    describe_algos(v, &dyn, algos, sizeof algos);
    if (v->cfg.kind == FG_VMEM_DYN || !v->step_seconds) {
        adopt(v, &e, &dyn);
        snprintf(v->decision, sizeof v->decision, "%s, %s%s", what, algos,
                 v->cfg.kind == FG_VMEM_PLAN ? " (dyn's choice until measured)" : "");
        goto done;
    }
    /* plan: the greedy search, then the faster of it and dyn on the model */
    secs = malloc(sizeof(double) * (size_t)v->steps);
    if (!secs) {
        st = fg_fail(FG_ERR_OOM, "vmem plan: out of host memory");
        goto done;
    }
    double t_dyn;
    if ((st = predict_time(v, &dyn, &e, secs, &t_dyn)) != FG_OK) goto done;
    int ok;
    if ((st = plan_greedy(v, capacity, &fast, &pl, &ok)) != FG_OK) goto done;
    double t_pl = 0;
    if (ok) {
        if ((st = evaluate(v, &pl, capacity, &e)) != FG_OK) goto done;
        if ((st = predict_time(v, &pl, &e, secs, &t_pl)) != FG_OK) goto done;
        if ((st = refine(v, capacity, &pl, secs, &t_pl)) != FG_OK) goto done;
    }
    /* dyn's choice improved locally is a candidate too */
    config from_dyn = {0};
    if ((st = config_alloc(v, &from_dyn)) != FG_OK) goto done;
    config_copy(v, &from_dyn, &dyn);
    double t_fd = t_dyn;
    st = refine(v, capacity, &from_dyn, secs, &t_fd);
    if (st == FG_OK && (!ok || t_fd < t_pl)) {
        config_copy(v, &pl, &from_dyn);
        t_pl = t_fd;
        ok = 1;
    }
    config_free(&from_dyn);
    if (st != FG_OK) goto done;
    /* plan's own choice only when predicted clearly faster: the model errs by a few percent
     * (docs/VMEM.md), so a smaller predicted gain is as likely a loss */
    if (ok && t_pl < t_dyn * (1.0 - PLAN_MIN_GAIN)) {
        if ((st = evaluate(v, &pl, capacity, &e)) != FG_OK) goto done;
        int n_off = 0, n_rc = 0;
        adopt(v, &e, &pl);
        n_off = v->sc.n_slots;
        n_rc = v->sc.n_recompute;
        describe_algos(v, &pl, algos, sizeof algos);
        snprintf(v->decision, sizeof v->decision, "offload %d, recompute %d, %s; predicted %.3f s vs dyn's %.3f s", n_off,
                 n_rc, algos, t_pl, t_dyn);
    } else {
        if ((st = evaluate(v, &dyn, capacity, &e)) != FG_OK) goto done;
        adopt(v, &e, &dyn);
        if (ok && t_pl < t_dyn)
            snprintf(v->decision, sizeof v->decision,
                     "dyn's choice (%s, %s): predicted %.3f s; plan's own (%.3f s) is not %.0f %% faster", what, algos,
                     t_dyn, t_pl, 100 * PLAN_MIN_GAIN);
        else
            snprintf(v->decision, sizeof v->decision, "dyn's choice (%s, %s): predicted %.3f s, nothing faster found",
                     what, algos, t_dyn);
    }
done:
    evald_free(&e);
    config_free(&fast);
    config_free(&dyn);
    config_free(&pl);
    free(secs);
    return st;
}
