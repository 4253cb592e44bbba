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
        int live = needed[root_of(g, n->info.out)];
        for (int a = 0; a < n->info.n_aux; a++) live |= needed[root_of(g, n->info.aux[a])]; /* ToMe's sizes */
        n->dead = !live;
        if (n->dead || n->bypass == FG_BYPASS_ZERO) continue;
        if (n->bypass == FG_BYPASS_INPUT || n->bypass == FG_BYPASS_AVGPOOL) {
            /* bypass_in is 0 for pooling: the conv's data input, not its weight or bias */
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
    if (mode == FG_BYPASS_AVGPOOL) {
        const fg_conv2d_desc *c = &n->p.conv;
        if (n->info.op != FG_OP_CONV2D || c->oc != c->c || c->groups != 1 || c->pad_h || c->pad_w || c->dil_h != 1 ||
            c->dil_w != 1)
            return fg_fail(FG_ERR_INVALID, "bypass: node '%s' (%s) is not a conv with as many output as input channels "
                           "and no padding, dilation or groups: it cannot become an average pooling", n->info.name,
                           fg_op_name(n->info.op));
    }
    g->n_bypass += (mode != FG_BYPASS_OFF) - (n->bypass != FG_BYPASS_OFF);
    n->bypass = mode;
    n->bypass_in = mode == FG_BYPASS_INPUT ? input : 0;
    return liveness(g);
}

/* Node `node` when it is an attention node (either op), else NULL with the error set. */
static fg_node *attention_at(const fg_graph *g, int node) {
    if (node < 0 || node >= g->nn) {
        fg_fail(FG_ERR_INVALID, "heads: node %d out of range [0, %d)", node, g->nn);
        return NULL;
    }
    fg_node *n = &g->nodes[node];
    if (n->info.op != FG_OP_ATTENTION && n->info.op != FG_OP_TOME_ATTENTION) {
        fg_fail(FG_ERR_INVALID, "heads: node '%s' is %s, not attention", n->info.name, fg_op_name(n->info.op));
        return NULL;
    }
    return n;
}

fg_status fg_graph_set_attention_heads(fg_graph *g, int node, int64_t keep) {
    fg_node *n = attention_at(g, node);
    if (!n) return FG_ERR_INVALID;
    const int64_t H = n->p.attn.H;
    if (keep < 1 || keep > H)
        return fg_fail(FG_ERR_INVALID, "heads: node '%s' has %lld heads, cannot keep %lld", n->info.name, (long long)H,
                       (long long)keep);
    const int64_t k = keep == H ? 0 : keep;
    g->n_bypass += (k != 0) - (n->keep_heads != 0);
    n->keep_heads = k;
    return FG_OK; /* every input is still read: liveness does not change */
}

fg_status fg_graph_attention_heads(const fg_graph *g, int node, int64_t *heads, int64_t *head_dim) {
    FG_ASSERT(heads && head_dim);
    const fg_node *n = attention_at(g, node);
    if (!n) return FG_ERR_INVALID;
    *heads = n->p.attn.H;
    *head_dim = n->p.attn.D;
    return FG_OK;
}

/* The FLOPs node i costs under its bypass (0 when it does not run). */
static double node_flops(const fg_graph *g, int i) {
    const fg_node *n = &g->nodes[i];
    if (n->dead) return 0.0;
    if (n->bypass == FG_BYPASS_AVGPOOL) {
        /* kh * kw additions (the last one a scaling) per output element */
        return (double)fg_tensor_numel(&g->t[n->info.out].info.t) * (double)(n->p.conv.kh * n->p.conv.kw);
    }
    if (n->bypass != FG_BYPASS_OFF) return 0.0;
    if (n->keep_heads) return n->info.flops * (double)n->keep_heads / (double)n->p.attn.H;
    if (fg_narrow_is_set(n)) return n->info.flops * fg_narrow_fraction(n);
    return n->info.flops;
}

void fg_graph_clear_bypass(fg_graph *g) {
    for (int i = 0; i < g->nn; i++) {
        g->nodes[i].bypass = FG_BYPASS_OFF;
        g->nodes[i].keep_heads = 0;
        g->nodes[i].narrow_in = g->nodes[i].narrow_out = 0;
        g->nodes[i].narrow_blocks = 0;
        g->nodes[i].narrow_mask = 0;
    }
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
    for (int i = 0; i < g->nn; i++) f += node_flops(g, i);
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
        return fg_narrow_is_set(n) ? fg_narrow_forward(g, i) : fg_exec_node(g, i, FG_FORWARD);
    }
    fg_tensor *y = &g->t[n->info.out].info.t;
    FG_ASSERT_MSG(y->data, "bypass: the node's output is not resident");
    const size_t bytes = g->t[n->info.out].info.bytes;
    if (n->bypass == FG_BYPASS_ZERO) {
        memset(y->data, 0, bytes);
        return FG_OK;
    }
    if (n->bypass == FG_BYPASS_AVGPOOL) {
        /* x (N, C, H, W) -> (N, C, OH, OW) over the conv's window and stride, no padding */
        const fg_conv2d_desc *c = &n->p.conv;
        const fg_pooling_desc pd = {c->n, c->c, c->h, c->w, c->kh, c->kw, c->stride_h, c->stride_w, 0, 0, 0, 1};
        const float *xp = g->t[n->info.in[0]].info.t.data;
        FG_ASSERT_MSG(xp, "bypass: the pooled input is not resident");
        fg_avgpool2d_forward(y->data, xp, &pd);
        return FG_OK;
    }
    const fg_tensor *x = &g->t[n->info.in[n->bypass_in]].info.t;
    FG_ASSERT_MSG(x->data, "bypass: the pass-through input is not resident");
    memmove(y->data, x->data, bytes);
    return FG_OK;
}
