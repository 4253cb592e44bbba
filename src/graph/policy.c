/* The two built-in memory policies (docs/ARCHITECTURE.md, "Graph"):
 *  - network-wide: every activation, gradient and one shared workspace (sized to the largest
 *    node, as darknet and the frameworks of vDNN's time do) allocated once for the whole run;
 *  - free-when-dead: a tensor's storage is allocated before its first use and released after
 *    its last use on the 2N-step timeline; each node's workspace only while it runs.
 * vmem's policies (offload, prefetch, recompute) implement the same hooks. */
#include <stdlib.h>
#include <string.h>

#include "graph/graph_impl.h"

static int is_planned(const fg_graph *g, fg_id i) {
    const fg_tslot *s = &g->t[i];
    return s->info.alias_of == i && !s->persistent && s->info.first_use >= 0;
}

/* ---------------------------------------------------------------- network-wide */

typedef struct nw_state {
    void *ws;
    size_t ws_bytes;
    fg_pool *pool;
} nw_state;

static fg_status nw_plan(void *self, fg_graph *g, fg_pool *pool) {
    nw_state *st = self;
    st->pool = pool;
    for (fg_id i = 0; i < g->nt; i++)
        if (is_planned(g, i)) FG_TRY(fg_graph_storage_alloc(g, i));
    size_t ws = 0;
    for (int i = 0; i < g->nn; i++)
        for (int p = 0; p < FG_PASS_COUNT; p++)
            if (g->nodes[i].info.ws_bytes[p] > ws) ws = g->nodes[i].info.ws_bytes[p];
    st->ws_bytes = ws;
    return fg_pool_alloc(pool, ws, "shared workspace", &st->ws);
}

static fg_status nw_before(void *self, fg_graph *g, int node, fg_pass pass) {
    nw_state *st = self;
    size_t need = g->nodes[node].info.ws_bytes[pass];
    if (need > st->ws_bytes) {
        /* an algorithm changed after plan: grow the shared workspace */
        fg_pool_free(st->pool, st->ws);
        st->ws = NULL;
        st->ws_bytes = 0;
        FG_TRY(fg_pool_alloc(st->pool, need, "shared workspace", &st->ws));
        st->ws_bytes = need;
    }
    fg_graph_set_workspace(g, st->ws, st->ws_bytes);
    return FG_OK;
}

static void nw_destroy(void *self) {
    nw_state *st = self;
    if (st->pool && st->ws) fg_pool_free(st->pool, st->ws);
    free(st);
}

fg_status fg_policy_network_wide(fg_mem_policy *out) {
    nw_state *st = calloc(1, sizeof *st);
    if (!st) return fg_fail(FG_ERR_OOM, "policy: out of host memory");
    memset(out, 0, sizeof *out);
    out->name = "none";
    out->plan = nw_plan;
    out->before = nw_before;
    out->destroy = nw_destroy;
    out->self = st;
    return FG_OK;
}

/* ---------------------------------------------------------------- free-when-dead */

typedef struct fwd_state {
    fg_pool *pool;
    int steps;
    int *alloc_start, *free_start; /* CSR over steps */
    fg_id *alloc_ids, *free_ids;
    void *ws;
} fwd_state;

static fg_status csr(const fg_graph *g, int steps, int use_first, int **start, fg_id **ids) {
    *start = calloc((size_t)steps + 1, sizeof(int));
    int count = 0;
    for (fg_id i = 0; i < g->nt; i++)
        if (is_planned(g, i)) count++;
    *ids = malloc(sizeof(fg_id) * (size_t)(count ? count : 1));
    if (!*start || !*ids) return fg_fail(FG_ERR_OOM, "policy: out of host memory");
    for (fg_id i = 0; i < g->nt; i++)
        if (is_planned(g, i)) {
            int s = use_first ? g->t[i].info.first_use : g->t[i].info.last_use;
            (*start)[s + 1]++;
        }
    for (int s = 0; s < steps; s++) (*start)[s + 1] += (*start)[s];
    int *fill = calloc((size_t)steps, sizeof(int));
    if (!fill) return fg_fail(FG_ERR_OOM, "policy: out of host memory");
    for (fg_id i = 0; i < g->nt; i++)
        if (is_planned(g, i)) {
            int s = use_first ? g->t[i].info.first_use : g->t[i].info.last_use;
            (*ids)[(*start)[s] + fill[s]++] = i;
        }
    free(fill);
    return FG_OK;
}

static fg_status fwd_plan(void *self, fg_graph *g, fg_pool *pool) {
    fwd_state *st = self;
    st->pool = pool;
    st->steps = 2 * g->nn;
    FG_TRY(csr(g, st->steps, 1, &st->alloc_start, &st->alloc_ids));
    FG_TRY(csr(g, st->steps, 0, &st->free_start, &st->free_ids));
    return FG_OK;
}

static fg_status fwd_before(void *self, fg_graph *g, int node, fg_pass pass) {
    fwd_state *st = self;
    int s = fg_step_of(g, node, pass);
    for (int k = st->alloc_start[s]; k < st->alloc_start[s + 1]; k++) FG_TRY(fg_graph_storage_alloc(g, st->alloc_ids[k]));
    size_t ws = g->nodes[node].info.ws_bytes[pass];
    char what[FG_NAME_MAX + 16];
    snprintf(what, sizeof what, "workspace of %s", g->nodes[node].info.name);
    FG_TRY(fg_pool_alloc(st->pool, ws, what, &st->ws));
    fg_graph_set_workspace(g, st->ws, ws);
    return FG_OK;
}

static fg_status fwd_after(void *self, fg_graph *g, int node, fg_pass pass) {
    fwd_state *st = self;
    fg_pool_free(st->pool, st->ws);
    st->ws = NULL;
    int s = fg_step_of(g, node, pass);
    /* a forward-only run (evaluation) of a training graph keeps what backward would read */
    for (int k = st->free_start[s]; k < st->free_start[s + 1]; k++) fg_graph_storage_release(g, st->free_ids[k]);
    return FG_OK;
}

static void fwd_destroy(void *self) {
    fwd_state *st = self;
    free(st->alloc_start);
    free(st->free_start);
    free(st->alloc_ids);
    free(st->free_ids);
    free(st);
}

fg_status fg_policy_free_when_dead(fg_mem_policy *out) {
    fwd_state *st = calloc(1, sizeof *st);
    if (!st) return fg_fail(FG_ERR_OOM, "policy: out of host memory");
    memset(out, 0, sizeof *out);
    out->name = "free-when-dead";
    out->plan = fwd_plan;
    out->before = fwd_before;
    out->after = fwd_after;
    out->destroy = fwd_destroy;
    out->self = st;
    return FG_OK;
}
