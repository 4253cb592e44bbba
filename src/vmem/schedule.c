/* The schedule of a layer-wise vmem policy: from one action per saved storage root (keep,
 * offload, recompute) and the graph's liveness, the per-step action lists the hooks execute and
 * the sequence of device allocations they issue (which the pool replay checks against the budget).
 *
 * A root is allocated before its first use and released after its last use on the 2N timeline.
 *  - offload: issued after its producer (the copy overlaps the next layer, vDNN's second stream),
 *    waited for at the boundary after its last forward use, or after the next node when that comes
 *    first, then the device copy is released. A root that would be off the device for no step at
 *    all (read again by the very next backward step) is kept instead. Prefetch groups: the slots
 *    first read by the same backward step, in backward order j1 > j2 > ...; the group of j1 is
 *    issued when backward starts, the group of j(k) before j(k-1) runs, never further ahead (vDNN
 *    never prefetches past the next offloading layer); each is waited for before the node reading it.
 *  - recompute: released after its last forward use; before its first backward read it is
 *    allocated again and its producer's forward reruns (fg_graph_recompute). That rerun reads the
 *    producer's inputs, so their first backward read moves to that step (a kept input lives longer,
 *    an offloaded one is prefetched earlier, a recomputed one is recomputed first: roots are
 *    processed from the last producer back, and recomputes of one step run in producer order).
 * Persistent tensors (inputs, params, state, param grads, outputs) never move, unless the policy
 * offloads weights (cfg.offload_weights): then params, their grads and the inputs live at their
 * host homes and get a device copy for each interval of steps that uses them (build_homes). */
#include <stdlib.h>
#include <string.h>

#include "vmem/vmem_impl.h"

int fg_vmem_bwd_runs(const fg_graph *g, int i) { return fg_graph_tinfo(g, fg_graph_node(g, i)->out)->grad != FG_NONE; }

/* A root the policy allocates and releases on the timeline (homed roots have their own intervals). */
int fg_vmem_is_planned(const fg_graph *g, fg_id i) {
    const fg_tinfo *t = fg_graph_tinfo(g, i);
    return t->alias_of == i && t->first_use >= 0 && !fg_graph_storage_home(g, i);
}

size_t fg_vmem_ws_need(const fg_vmem *v, int node, fg_pass pass) {
    if (pass == FG_BACKWARD && !fg_vmem_bwd_runs(v->g, node)) return 0;
    return fg_graph_node(v->g, node)->ws_bytes[pass];
}

static fg_id root_of(const fg_graph *g, fg_id id) { return fg_graph_tinfo(g, id)->alias_of; }
static int bstep(const fg_vmem *v, int node) { return 2 * v->N - 1 - node; }

void fg_vmem_rinfo_compute(fg_vmem *v) {
    const fg_graph *g = v->g;
    for (int r = 0; r < v->nt; r++) v->ri[r] = (fg_vmem_rinfo){-1, -1, 0};
    for (int i = 0; i < v->N; i++) {
        const fg_ninfo *n = fg_graph_node(g, i);
        for (int k = 0; k < n->n_in; k++) v->ri[root_of(g, n->in[k])].fl = i;
        v->ri[root_of(g, n->out)].fl = i;
        for (int a = 0; a < n->n_aux; a++) v->ri[root_of(g, n->aux[a])].fl = i;
    }
    for (int i = v->N - 1; i >= 0; i--) {
        if (!fg_vmem_bwd_runs(g, i)) continue;
        const fg_ninfo *n = fg_graph_node(g, i);
        for (int s = 0; s < n->n_save; s++) {
            fg_id r = root_of(g, n->save[s]);
            if (!fg_vmem_is_planned(g, r)) continue;
            if (v->ri[r].bf < 0) v->ri[r].bf = bstep(v, i);
            if (n->op == FG_OP_CONV2D && s == 0) v->ri[r].conv_in = 1;
        }
    }
}

/* An activation or aux output a forward node wrote: the only tensors that can move. */
static int movable(const fg_graph *g, fg_id r) {
    const fg_tinfo *t = fg_graph_tinfo(g, r);
    return fg_vmem_is_planned(g, r) && (t->kind == FG_T_ACT || t->kind == FG_T_AUX) && t->producer >= 0;
}

void fg_vmem_kind_actions(const fg_vmem *v, fg_vmem_kind kind, unsigned char *act) {
    for (fg_id r = 0; r < v->nt; r++) {
        int off = movable(v->g, r) && v->ri[r].bf >= 0 &&
                  (kind == FG_VMEM_ALL || (kind == FG_VMEM_CONV && v->ri[r].conv_in));
        act[r] = off ? FG_VMEM_OFFLOAD : FG_VMEM_KEEP;
    }
}

/* ---------------------------------------------------------------- action lists */

typedef fg_vmem_use pair;

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
static fg_status sched_build(fg_vmem_sched *s, const pairs *v, int steps) {
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

void fg_vmem_schedule_free(fg_vmem_schedule *sc) {
    for (int k = 0; k < S_COUNT; k++) {
        free(sc->s[k].start);
        free(sc->s[k].ids);
    }
    free(sc->slots);
    free(sc->slot_of);
    free(sc->eff);
    free(sc->bf);
    free(sc->lu);
    free(sc->split);
    free(sc->homes);
    memset(sc, 0, sizeof *sc);
}

/* Backward order of first need; ties by tensor id (deterministic). */
static int cmp_slot_bf(const void *a, const void *b) {
    const fg_vmem_slot *x = a, *y = b;
    if (x->bf != y->bf) return x->bf < y->bf ? -1 : 1;
    return x->root < y->root ? -1 : (x->root > y->root);
}

/* Effective actions and the first backward read / last use they imply (recompute reads). */
static void resolve_actions(const fg_vmem *v, const unsigned char *act, fg_vmem_schedule *sc) {
    const fg_graph *g = v->g;
    for (fg_id r = 0; r < v->nt; r++) {
        sc->eff[r] = movable(g, r) ? act[r] : FG_VMEM_KEEP;
        sc->bf[r] = v->ri[r].bf;
        sc->lu[r] = fg_graph_tinfo(g, r)->last_use;
    }
    for (int p = v->N - 1; p >= 0; p--) {
        const fg_ninfo *n = fg_graph_node(g, p);
        fg_id r = n->out;
        if (root_of(g, r) != r || sc->eff[r] != FG_VMEM_RECOMPUTE) continue;
        int b = sc->bf[r];
        if (b < 0 || b <= v->ri[r].fl + 1 || !fg_graph_node_recomputable(g, p)) {
            sc->eff[r] = FG_VMEM_KEEP;
            continue;
        }
        for (int k = 0; k < n->n_in; k++) {
            fg_id x = root_of(g, n->in[k]);
            if (!fg_vmem_is_planned(g, x)) continue;
            if (sc->bf[x] < 0 || b < sc->bf[x]) sc->bf[x] = b;
            if (b > sc->lu[x]) sc->lu[x] = b;
        }
    }
    /* an AUX root or one written by a node that is not its producer's output cannot be recomputed */
    for (fg_id r = 0; r < v->nt; r++)
        if (sc->eff[r] == FG_VMEM_RECOMPUTE && fg_graph_node(g, fg_graph_tinfo(g, r)->producer)->out != r)
            sc->eff[r] = FG_VMEM_KEEP;
}

/* dst holds FG_NAME_MAX bytes; a plain copy (the searches build schedules thousands of times) */
static void copy_name(char *dst, const char *src) {
    size_t n = strnlen(src, FG_NAME_MAX - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
}

static int cmp_pair(const void *a, const void *b) {
    const pair *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->step < y->step ? -1 : (x->step > y->step);
}

static fg_status add_home_use(const fg_graph *g, pairs *u, fg_id id, int step) {
    if (id == FG_NONE || !fg_graph_storage_home(g, root_of(g, id))) return FG_OK;
    return pairs_add(u, step, root_of(g, id));
}

/* The uses of homed roots that no action changes: forward reads its inputs, backward what it
 * saves (which lists the params) and the gradients it writes (which include the param grads).
 * Sorted once here; the searches build thousands of schedules. */
fg_status fg_vmem_home_uses_compute(fg_vmem *v) {
    const fg_graph *g = v->g;
    pairs u = {NULL, 0, 0};
    fg_status st = FG_OK;
    for (int i = 0; i < v->N && st == FG_OK; i++) {
        const fg_ninfo *n = fg_graph_node(g, i);
        for (int k = 0; k < n->n_in && st == FG_OK; k++) st = add_home_use(g, &u, n->in[k], i);
        if (!v->has_backward || !fg_vmem_bwd_runs(g, i)) continue;
        int b = bstep(v, i);
        for (int k = 0; k < n->n_save && st == FG_OK; k++) st = add_home_use(g, &u, n->save[k], b);
        for (int k = 0; k < n->n_in && st == FG_OK; k++) st = add_home_use(g, &u, fg_graph_tinfo(g, n->in[k])->grad, b);
    }
    if (st != FG_OK) {
        free(u.p);
        return st;
    }
    if (u.n) qsort(u.p, (size_t)u.n, sizeof *u.p, cmp_pair);
    free(v->home_uses);
    v->home_uses = u.p;
    v->n_home_uses = u.n;
    return FG_OK;
}

/* Weight offload: every step that uses a homed root (the static uses above, plus a recompute's
 * reads of its producer's inputs at the recompute's step), grouped per root into intervals of
 * uses at most one step apart, and their action lists. A gradient's first interval may start
 * from zeros (zero_fill): the trainer zeroes gradients before each iteration, and the hooks check
 * that its home really holds zeros before filling with a memset. */
static fg_status build_homes(const fg_vmem *v, fg_vmem_schedule *sc, pairs *pv) {
    const fg_graph *g = v->g;
    int N = v->N, last = v->has_backward ? v->steps : N;
    pairs rc = {NULL, 0, 0};
    fg_status st = FG_OK;
    for (fg_id r = 0; r < v->nt && st == FG_OK; r++) {
        if (sc->eff[r] != FG_VMEM_RECOMPUTE) continue;
        const fg_ninfo *n = fg_graph_node(g, fg_graph_tinfo(g, r)->producer);
        for (int k = 0; k < n->n_in && st == FG_OK; k++) st = add_home_use(g, &rc, n->in[k], sc->bf[r]);
    }
    /* the static uses, with the recompute reads merged in when there are any */
    const pair *u = v->home_uses;
    int nu = v->n_home_uses;
    pair *merged = NULL;
    if (st == FG_OK && rc.n) {
        qsort(rc.p, (size_t)rc.n, sizeof *rc.p, cmp_pair);
        merged = malloc(sizeof *merged * (size_t)(nu + rc.n));
        if (!merged) st = fg_fail(FG_ERR_OOM, "vmem plan: out of host memory");
        for (int i = 0, j = 0, o = 0; st == FG_OK && o < nu + rc.n; o++)
            merged[o] = (j >= rc.n || (i < nu && cmp_pair(&u[i], &rc.p[j]) <= 0)) ? u[i++] : rc.p[j++];
        u = merged;
        nu += rc.n;
    }
    free(rc.p);
    if (st == FG_OK && nu) {
        sc->homes = calloc((size_t)nu, sizeof *sc->homes);
        if (!sc->homes) st = fg_fail(FG_ERR_OOM, "vmem plan: out of host memory");
    }
    for (int k = 0; k < nu && st == FG_OK;) {
        int j = k;
        while (j + 1 < nu && u[j + 1].id == u[k].id && u[j + 1].step <= u[j].step + 2) j++;
        const fg_tinfo *t = fg_graph_tinfo(g, u[k].id);
        fg_vmem_home *h = &sc->homes[sc->n_homes];
        h->root = u[k].id;
        h->name = t->t.name;
        h->bytes = t->bytes;
        h->a = u[k].step;
        h->b = u[j].step;
        /* one step ahead within the pass, so the copy overlaps the previous node */
        h->fill = (h->a == 0 || h->a == N) ? h->a : h->a - 1;
        h->writeback = t->kind == FG_T_PGRAD;
        h->done = h->writeback && h->b + 1 < last ? h->b + 1 : h->b;
        h->zero_fill = h->writeback && (k == 0 || u[k - 1].id != u[k].id);
        sc->home_bytes += h->bytes * (size_t)(!h->zero_fill + h->writeback);
        sc->n_home_copies += !h->zero_fill + h->writeback;
        sc->n_zero_fills += h->zero_fill;
        st = pairs_add(&pv[S_HOME_FILL], h->fill, sc->n_homes);
        if (st == FG_OK) st = pairs_add(&pv[S_HOME_WAIT], h->a, sc->n_homes);
        if (st == FG_OK) st = pairs_add(&pv[S_HOME_OUT], h->b, sc->n_homes);
        if (st == FG_OK && h->writeback) st = pairs_add(&pv[S_HOME_DONE], h->done, sc->n_homes);
        sc->n_homes++;
        k = j + 1;
    }
    free(merged);
    return st;
}

fg_status fg_vmem_schedule_build(const fg_vmem *v, const unsigned char *act, fg_vmem_schedule *sc) {
    const fg_graph *g = v->g;
    int N = v->N, nt = v->nt;
    memset(sc, 0, sizeof *sc);
    sc->slots = calloc((size_t)nt + 1, sizeof *sc->slots);
    sc->slot_of = malloc(sizeof(int) * (size_t)nt);
    sc->eff = malloc((size_t)nt + 1);
    sc->bf = malloc(sizeof(int) * (size_t)nt);
    sc->lu = malloc(sizeof(int) * (size_t)nt);
    sc->split = calloc((size_t)N + 1, 1);
    unsigned char *mid = calloc((size_t)nt + 1, 1); /* per root: 1 released at mid, 2 allocated at mid */
    if (!sc->slots || !sc->slot_of || !sc->eff || !sc->bf || !sc->lu || !sc->split || !mid) {
        free(mid);
        fg_vmem_schedule_free(sc);
        return fg_fail(FG_ERR_OOM, "vmem plan: out of host memory");
    }
    resolve_actions(v, act, sc);
    for (fg_id r = 0; r < nt; r++) sc->slot_of[r] = -1;
    for (fg_id r = 0; r < nt; r++) {
        if (sc->eff[r] != FG_VMEM_OFFLOAD) continue;
        const fg_tinfo *t = fg_graph_tinfo(g, r);
        int w = v->ri[r].fl > t->producer + 1 ? v->ri[r].fl : t->producer + 1; /* offload wait step */
        if (w > N - 1 || sc->bf[r] <= w + 1) {
            sc->eff[r] = FG_VMEM_KEEP;
            continue;
        }
        fg_vmem_slot *sl = &sc->slots[sc->n_slots++];
        sl->root = r;
        sl->bytes = t->bytes;
        sl->producer = t->producer;
        sl->off_wait = w;
        sl->bf = sc->bf[r];
        sl->fd = -1;
        copy_name(sl->name, t->t.name);
        sc->offload_bytes += t->bytes;
    }
    /* host tier preference: the tensors backward needs first get the host arena */
    qsort(sc->slots, (size_t)sc->n_slots, sizeof *sc->slots, cmp_slot_bf);
    for (int k = 0; k < sc->n_slots; k++) sc->slot_of[sc->slots[k].root] = k;
    for (fg_id id = 0; id < nt; id++) sc->slot_of[id] = sc->slot_of[root_of(g, id)];

    /* split conv backwards: where the input's last use is the conv's backward, it is released
     * between the weight half and the data half, before the input's gradient is allocated */
    for (int i = 0; i < N; i++) {
        const fg_ninfo *n = fg_graph_node(g, i);
        if (n->op != FG_OP_CONV2D || !fg_vmem_bwd_runs(g, i)) continue;
        fg_id x = root_of(g, n->in[0]), gx = fg_graph_tinfo(g, n->in[0])->grad;
        int b = bstep(v, i);
        if (gx == FG_NONE || !fg_vmem_is_planned(g, x) || sc->lu[x] != b) continue;
        gx = root_of(g, gx);
        if (gx == x || gx == root_of(g, fg_graph_tinfo(g, n->out)->grad)) continue;
        sc->split[i] = 1;
        mid[x] = 1;
        if (fg_vmem_is_planned(g, gx) && fg_graph_tinfo(g, gx)->first_use == b && sc->lu[gx] > b) mid[gx] = 2;
    }
    pairs pv[S_COUNT];
    memset(pv, 0, sizeof pv);
    fg_status st = FG_OK;
    for (fg_id r = 0; r < nt && st == FG_OK; r++) {
        if (!fg_vmem_is_planned(g, r)) continue;
        st = pairs_add(&pv[mid[r] == 2 ? S_MID_ALLOC : S_ALLOC], fg_graph_tinfo(g, r)->first_use, r);
        if (st == FG_OK) st = pairs_add(&pv[mid[r] == 1 ? S_MID_RELEASE : S_RELEASE], sc->lu[r], r);
    }
    free(mid);
    /* recomputes in producer order (a recomputed input is rebuilt before its consumer) */
    for (int p = 0; p < N && st == FG_OK; p++) {
        fg_id r = fg_graph_node(g, p)->out;
        if (sc->eff[r] != FG_VMEM_RECOMPUTE) continue;
        sc->n_recompute++;
        sc->recompute_bytes += fg_graph_tinfo(g, r)->bytes;
        st = pairs_add(&pv[S_DROP], v->ri[r].fl, r);
        if (st == FG_OK) st = pairs_add(&pv[S_RECOMP], sc->bf[r], r);
    }
    /* prefetch groups: group k is issued at the step of group k-1, the first at backward's start */
    int cur_bf = -1, prev_bf = -1;
    for (int k = 0; k < sc->n_slots && st == FG_OK; k++) {
        fg_vmem_slot *sl = &sc->slots[k];
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
    if (st == FG_OK) st = build_homes(v, sc, pv);
    for (int k = 0; k < S_COUNT && st == FG_OK; k++) st = sched_build(&sc->s[k], &pv[k], v->steps);
    for (int k = 0; k < S_COUNT; k++) free(pv[k].p);
    if (st != FG_OK) fg_vmem_schedule_free(sc);
    return st;
}

/* ---------------------------------------------------------------- device allocations */

static fg_status memops_add(fg_vmem_memops *m, int alloc, int id, size_t bytes, int step) {
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

fg_status fg_vmem_memops_build(const fg_vmem *v, const fg_vmem_schedule *sc, int network_wide, size_t shared_ws,
                               fg_vmem_memops *m) {
    const fg_graph *g = v->g;
    int nt = v->nt;
    m->n = 0;
    if (network_wide) {
        for (fg_id r = 0; r < nt; r++)
            if (fg_vmem_is_planned(g, r)) FG_TRY(memops_add(m, 1, r, fg_graph_tinfo(g, r)->bytes, 0));
        return memops_add(m, 1, nt, shared_ws, 0);
    }
    int last = v->has_backward ? v->steps : v->N;
    for (int s = 0; s < last; s++) {
        int node = s < v->N ? s : 2 * v->N - 1 - s;
        fg_pass pass = s < v->N ? FG_FORWARD : FG_BACKWARD;
        FG_SCHED_FOR(sc->s[S_ALLOC], s, k) {
            fg_id r = sc->s[S_ALLOC].ids[k];
            FG_TRY(memops_add(m, 1, r, fg_graph_tinfo(g, r)->bytes, s));
        }
        FG_SCHED_FOR(sc->s[S_PF_ISSUE], s, k) {
            const fg_vmem_slot *sl = &sc->slots[sc->s[S_PF_ISSUE].ids[k]];
            FG_TRY(memops_add(m, 1, sl->root, sl->bytes, s));
        }
        FG_SCHED_FOR(sc->s[S_HOME_FILL], s, k) {
            const fg_vmem_home *h = &sc->homes[sc->s[S_HOME_FILL].ids[k]];
            FG_TRY(memops_add(m, 1, h->root, h->bytes, s));
        }
        FG_SCHED_FOR(sc->s[S_RECOMP], s, k) {
            fg_id r = sc->s[S_RECOMP].ids[k];
            size_t ws = fg_vmem_ws_need(v, fg_graph_tinfo(g, r)->producer, FG_FORWARD);
            FG_TRY(memops_add(m, 1, r, fg_graph_tinfo(g, r)->bytes, s));
            FG_TRY(memops_add(m, 1, nt, ws, s));
            FG_TRY(memops_add(m, 0, nt, ws, s));
        }
        size_t ws = fg_vmem_ws_need(v, node, pass);
        FG_TRY(memops_add(m, 1, nt, ws, s));
        FG_SCHED_FOR(sc->s[S_MID_RELEASE], s, k) {
            fg_id r = sc->s[S_MID_RELEASE].ids[k];
            FG_TRY(memops_add(m, 0, r, fg_graph_tinfo(g, r)->bytes, s));
        }
        FG_SCHED_FOR(sc->s[S_MID_ALLOC], s, k) {
            fg_id r = sc->s[S_MID_ALLOC].ids[k];
            FG_TRY(memops_add(m, 1, r, fg_graph_tinfo(g, r)->bytes, s));
        }
        FG_TRY(memops_add(m, 0, nt, ws, s));
        FG_SCHED_FOR(sc->s[S_RELEASE], s, k) {
            fg_id r = sc->s[S_RELEASE].ids[k];
            FG_TRY(memops_add(m, 0, r, fg_graph_tinfo(g, r)->bytes, s));
        }
        FG_SCHED_FOR(sc->s[S_OFF_WAIT], s, k) {
            const fg_vmem_slot *sl = &sc->slots[sc->s[S_OFF_WAIT].ids[k]];
            FG_TRY(memops_add(m, 0, sl->root, sl->bytes, s));
        }
        FG_SCHED_FOR(sc->s[S_DROP], s, k) {
            fg_id r = sc->s[S_DROP].ids[k];
            FG_TRY(memops_add(m, 0, r, fg_graph_tinfo(g, r)->bytes, s));
        }
        FG_SCHED_FOR(sc->s[S_HOME_OUT], s, k) {
            const fg_vmem_home *h = &sc->homes[sc->s[S_HOME_OUT].ids[k]];
            if (!h->writeback) FG_TRY(memops_add(m, 0, h->root, h->bytes, s));
        }
        FG_SCHED_FOR(sc->s[S_HOME_DONE], s, k) {
            const fg_vmem_home *h = &sc->homes[sc->s[S_HOME_DONE].ids[k]];
            FG_TRY(memops_add(m, 0, h->root, h->bytes, s));
        }
    }
    return FG_OK;
}
