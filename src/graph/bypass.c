/* Run-time skipping of graph nodes (fg_graph_set_bypass, graph.h): the executor's side of the
 * dynamic-inference knobs of issue 14. A bypass replaces a node's op by a copy of one input or by
 * zeros; liveness then walks the nodes backwards from the graph's outputs, so that a node runs
 * only when a running node (or an output) reads its output: the branch of a bypassed residual add
 * is never computed, instead of being computed and thrown away. Liveness works on storage roots
 * (a reshape view reads its root's bytes). Without any bypass every node runs, as before. */
#include <stdlib.h>
#include <string.h>

#include "graph/graph_impl.h"

static fg_id root_of(const fg_graph *g, fg_id id) { return g->t[id].info.alias_of; }

/* Recomputes fg_node.dead: needed[root] marks storage a running node or an output reads. */
static fg_status liveness(fg_graph *g) {
    if (g->n_bypass == 0) {
        for (int i = 0; i < g->nn; i++) g->nodes[i].dead = 0;
        return FG_OK;
    }
    uint8_t *needed = calloc((size_t)g->nt, 1);
    if (!needed) return fg_fail(FG_ERR_OOM, "bypass: out of host memory for %d tensors", g->nt);
    for (fg_id t = 0; t < g->nt; t++)
        if (g->t[t].is_output || t == g->loss) needed[root_of(g, t)] = 1;
    for (int i = g->nn - 1; i >= 0; i--) {
        fg_node *n = &g->nodes[i];
        n->dead = !needed[root_of(g, n->info.out)];
        if (n->dead || n->bypass == FG_BYPASS_ZERO) continue;
        if (n->bypass == FG_BYPASS_INPUT) {
            needed[root_of(g, n->info.in[n->bypass_in])] = 1;
            continue;
        }
        for (int k = 0; k < n->info.n_in; k++) needed[root_of(g, n->info.in[k])] = 1;
    }
    free(needed);
    return FG_OK;
}

fg_status fg_graph_set_bypass(fg_graph *g, int node, fg_bypass mode, int input) {
    if (node < 0 || node >= g->nn) return fg_fail(FG_ERR_INVALID, "bypass: node %d out of range [0, %d)", node, g->nn);
    fg_node *n = &g->nodes[node];
    if ((int)mode < 0 || mode >= FG_BYPASS_COUNT)
        return fg_fail(FG_ERR_INVALID, "bypass: node '%s': bad mode %d", n->info.name, (int)mode);
    if (mode == FG_BYPASS_INPUT) {
        if (input < 0 || input >= n->info.n_in)
            return fg_fail(FG_ERR_INVALID, "bypass: node '%s' (%s) has %d inputs, not input %d", n->info.name,
                           fg_op_name(n->info.op), n->info.n_in, input);
        const fg_tensor *x = &g->t[n->info.in[input]].info.t, *y = &g->t[n->info.out].info.t;
        int same = x->ndim == y->ndim && x->dtype == y->dtype;
        for (int k = 0; same && k < x->ndim; k++) same = x->shape[k] == y->shape[k];
        if (!same) {
            char a[96], b[96];
            return fg_fail(FG_ERR_SHAPE, "bypass: node '%s': input %d '%s' is %s, the output %s (a pass-through needs "
                           "the same shape and dtype)", n->info.name, input, x->name,
                           fg_shape_str(a, sizeof a, x->ndim, x->shape), fg_shape_str(b, sizeof b, y->ndim, y->shape));
        }
    }
    g->n_bypass += (mode != FG_BYPASS_OFF) - (n->bypass != FG_BYPASS_OFF);
    n->bypass = mode;
    n->bypass_in = mode == FG_BYPASS_INPUT ? input : 0;
    return liveness(g);
}

void fg_graph_clear_bypass(fg_graph *g) {
    for (int i = 0; i < g->nn; i++) g->nodes[i].bypass = FG_BYPASS_OFF;
    g->n_bypass = 0;
    fg_status s = liveness(g); /* with no bypass: no allocation, cannot fail */
    FG_ASSERT(s == FG_OK);
}

int fg_graph_node_runs_op(const fg_graph *g, int node) {
    FG_ASSERT(node >= 0 && node < g->nn);
    return !g->nodes[node].dead && g->nodes[node].bypass == FG_BYPASS_OFF;
}

uint64_t fg_graph_node_runs(const fg_graph *g, int node) {
    FG_ASSERT(node >= 0 && node < g->nn);
    return g->nodes[node].runs;
}

double fg_graph_active_flops(const fg_graph *g) {
    double f = 0.0;
    for (int i = 0; i < g->nn; i++)
        if (fg_graph_node_runs_op(g, i)) f += g->nodes[i].info.flops;
    return f;
}

int fg_graph_find_node(const fg_graph *g, const char *name) {
    for (int i = 0; i < g->nn; i++)
        if (strcmp(g->nodes[i].info.name, name) == 0) return i;
    return -1;
}

fg_status fg_bypass_forward(fg_graph *g, int i) {
    fg_node *n = &g->nodes[i];
    if (n->dead) return FG_OK;
    if (n->bypass == FG_BYPASS_OFF) {
        n->runs++;
        return fg_exec_node(g, i, FG_FORWARD);
    }
    fg_tensor *y = &g->t[n->info.out].info.t;
    FG_ASSERT_MSG(y->data, "bypass: the node's output is not resident");
    const size_t bytes = g->t[n->info.out].info.bytes;
    if (n->bypass == FG_BYPASS_ZERO) {
        memset(y->data, 0, bytes);
        return FG_OK;
    }
    const fg_tensor *x = &g->t[n->info.in[n->bypass_in]].info.t;
    FG_ASSERT_MSG(x->data, "bypass: the pass-through input is not resident");
    memmove(y->data, x->data, bytes);
    return FG_OK;
}
