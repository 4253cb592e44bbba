/* One model's weights read by several graphs at once (GA3C: predictor threads run forward on
 * batches of states while a trainer thread updates the weights).
 *
 * Every thread has its own graph (its own activations, batch size, pool and memory policy) built
 * for inference with the same parameter names and shapes as the owner's; fg_graph_share_weights
 * points its parameters and state at the owner's storage. The owner's rwlock keeps a forward from
 * seeing half an update: a sharing graph's forward holds the read side for the whole forward, and
 * every write of the owner's weights or state (fg_optim_step, fg_graph_load, fg_graph_init_params,
 * the running statistics batch norm updates in a training forward) holds the write side. Forwards
 * run concurrently with each other and with the owner's own forward and backward (which read the
 * weights and write only activations and gradients); they wait only while an update is written,
 * which for SGD or Adam is a pass over the weights (milliseconds). wversion counts the writes, so
 * a caller can tell which version of the weights a forward used (GA3C's policy lag). */
#include <stdlib.h>
#include <string.h>

#include "graph/graph_impl.h"

void fg_weights_write_begin(fg_graph *g) {
    int rc = pthread_rwlock_wrlock(&g->wlock);
    FG_ASSERT_MSG(rc == 0, "weights lock: wrlock failed");
}

void fg_weights_write_end(fg_graph *g) {
    atomic_fetch_add(&g->wversion, 1);
    pthread_rwlock_unlock(&g->wlock);
}

static int same_shape(const fg_tensor *a, const fg_tensor *b) {
    if (a->ndim != b->ndim || a->dtype != b->dtype) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

static void shape_str(const fg_tensor *t, char *buf, size_t cap) {
    size_t o = (size_t)snprintf(buf, cap, "(");
    for (int d = 0; d < t->ndim && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (o < cap) snprintf(buf + o, cap - o, ")");
}

/* The owner's tensor that g's param or state slot `id` reads, after checking name, kind and shape. */
static fg_status match(const fg_graph *g, const fg_graph *owner, fg_id id, fg_id *out) {
    const fg_tslot *s = &g->t[id];
    fg_id o = fg_graph_find(owner, s->info.t.name);
    if (o == FG_NONE || owner->t[o].info.kind != s->info.kind)
        return fg_fail(FG_ERR_SHAPE, "share weights: graph '%s' has %s '%s', graph '%s' has no %s of that name", g->name,
                       s->info.kind == FG_T_PARAM ? "parameter" : "state", s->info.t.name, owner->name,
                       s->info.kind == FG_T_PARAM ? "parameter" : "state");
    if (!same_shape(&s->info.t, &owner->t[o].info.t)) {
        char a[96], b[96];
        shape_str(&s->info.t, a, sizeof a);
        shape_str(&owner->t[o].info.t, b, sizeof b);
        return fg_fail(FG_ERR_SHAPE, "share weights: '%s' is %s in graph '%s' but %s in graph '%s'", s->info.t.name, a,
                       g->name, b, owner->name);
    }
    *out = o;
    return FG_OK;
}

fg_status fg_graph_share_weights(fg_graph *g, fg_graph *owner) {
    if (!g->built || !owner->built)
        return fg_fail(FG_ERR_INVALID, "share weights: graphs '%s' and '%s' must both be built", g->name, owner->name);
    if (g == owner || g->owner || owner->owner || atomic_load(&g->n_sharers) > 0)
        return fg_fail(FG_ERR_INVALID,
                       "share weights: graph '%s' cannot read the weights of '%s' (one owner, no chains: neither may "
                       "already share)",
                       g->name, owner->name);
    if (g->loss != FG_NONE)
        return fg_fail(FG_ERR_INVALID,
                       "share weights: graph '%s' was built with a loss; only an inference graph (built with loss "
                       "FG_NONE) reads another graph's weights, the owner trains them",
                       g->name);
    if (g->policy.home_host)
        return fg_fail(FG_ERR_UNSUPPORTED,
                       "share weights: graph '%s' has a memory policy that keeps weights in host memory between uses "
                       "(a vmem policy with weight offload); it would move '%s''s weights: build it with another policy",
                       g->name, owner->name);
    for (int i = 0; i < owner->np; i++)
        if (owner->t[owner->t[owner->params[i]].info.alias_of].home)
            return fg_fail(FG_ERR_UNSUPPORTED,
                           "share weights: graph '%s' keeps its weights in host memory between uses (a vmem policy "
                           "with weight offload); other graphs can only read weights that stay on the device",
                           owner->name);
    int n = g->np + g->ns;
    fg_id *src = malloc(sizeof *src * (size_t)(n + 1));
    if (!src) return fg_fail(FG_ERR_OOM, "share weights: out of host memory");
    for (int i = 0; i < n; i++) {
        fg_status s = match(g, owner, i < g->np ? g->params[i] : g->states[i - g->np], &src[i]);
        if (s != FG_OK) {
            free(src);
            return s;
        }
    }
    for (int i = 0; i < n; i++) {
        fg_id id = i < g->np ? g->params[i] : g->states[i - g->np];
        fg_id root = g->t[id].info.alias_of;
        fg_tslot *r = &g->t[root];
        const fg_tslot *o = &owner->t[owner->t[src[i]].info.alias_of];
        if (r->storage && !r->borrowed) fg_pool_free(g->pool, r->storage);
        r->storage = o->storage;
        r->borrowed = 1;
        for (fg_id a = root; a != FG_NONE; a = g->t[a].next_alias) {
            g->t[a].info.t.data = o->storage;
            g->t[a].info.t.residence = FG_RES_DEVICE;
        }
    }
    free(src);
    g->owner = owner;
    g->owner_bn = 0;
    for (int i = 0; i < g->nn; i++) g->owner_bn += g->nodes[i].info.op == FG_OP_BATCHNORM;
    atomic_fetch_add(&owner->n_sharers, 1);
    return FG_OK;
}

uint64_t fg_graph_weights_version(const fg_graph *g) {
    if (g->owner) return g->seen_version;
    return (uint64_t)atomic_load(&((fg_graph *)g)->wversion);
}
