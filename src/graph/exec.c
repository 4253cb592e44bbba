/* The executor: walks forward then backward, calling the memory policy at every node boundary,
 * and the glue from graph nodes to the kernels of src/ops/. The executor never allocates: the
 * policy makes a node's tensors resident and gives it a workspace. Input gradients that another
 * consumer already wrote (and parameters fed as data to an op that writes that gradient, e.g. a
 * position embedding added to activations) are computed into scratch at the end of the
 * workspace and added. */
#include <math.h>
#include <string.h>

#include "frugal/ops_tome.h"
#include "graph/graph_impl.h"

static float *F(fg_graph *g, fg_id id) { return id == FG_NONE ? NULL : (float *)g->t[id].info.t.data; }

static uint64_t node_seed(const fg_graph *g, int i) {
    uint64_t x = (g->seed + 1) * 0x9E3779B97F4A7C15ull;
    return x ^ ((uint64_t)(i + 1) * 0xD1B54A32D192ED03ull);
}

/* ToMe's map in the node's workspace, rounded up to 64 bytes so the scratch after it is aligned. */
static size_t tome_map_bytes(const fg_node *n) {
    return ((size_t)(n->p.tome.B * n->p.tome.T) * sizeof(int32_t) + 63) & ~(size_t)63;
}

size_t fg_exec_op_ws(const fg_graph *g, const fg_node *n, fg_pass pass) {
    switch (n->info.op) {
    case FG_OP_CONV2D: return fg_conv2d_workspace_bytes(&n->p.conv, n->info.algo);
    case FG_OP_LSTM: {
        const size_t dense = fg_lstm_workspace_bytes(&n->p.lstm); /* forward takes it too (ops.h) */
        if (pass != FG_BACKWARD || n->sparsity.block == 0) return dense;
        /* With a sparsity, sized for the largest need of any variant at any drop with this block:
         * the variant, drop and tau may change after build, the workspace may not. */
        const size_t sparse = fg_lstm_sparse_workspace_bytes_max(&n->p.lstm, n->sparsity.block);
        return sparse > dense ? sparse : dense;
    }
    case FG_OP_ATTENTION: {
        if (pass != FG_BACKWARD) return 0;
        /* the scratch serves dq and dk only: none when neither q nor k wants a gradient */
        if (g->t[n->info.in[0]].info.grad == FG_NONE && g->t[n->info.in[1]].info.grad == FG_NONE) return 0;
        return fg_attention_workspace_bytes(n->p.attn.B, n->p.attn.H, n->p.attn.Tq, n->p.attn.Tk, n->p.attn.D);
    }
    case FG_OP_TOME: /* the map (B, T) i32, then the match's scratch */
        if (pass != FG_FORWARD) return 0;
        return tome_map_bytes(n) + fg_tome_match_workspace_bytes(n->p.tome.B, n->p.tome.T, n->p.tome.C, n->p.tome.H);
    case FG_OP_TOME_ATTENTION:
        return pass == FG_FORWARD ? fg_tome_attention_workspace_bytes(n->p.attn.B, n->p.attn.H, n->p.attn.Tq) : 0;
    default: return 0;
    }
}

void fg_graph_set_training(fg_graph *g, int training) { g->training = training; }

int fg_graph_training(const fg_graph *g) { return g->training; }
void fg_graph_set_seed(fg_graph *g, uint64_t seed) { g->seed = seed; }

fg_status fg_graph_set_input(fg_graph *g, fg_id id, const void *data, size_t bytes) {
    if (id < 0 || id >= g->nt) return fg_fail(FG_ERR_INVALID, "set_input: invalid tensor handle %d", (int)id);
    fg_tslot *s = &g->t[id];
    if (s->info.kind != FG_T_INPUT) return fg_fail(FG_ERR_INVALID, "set_input: '%s' is not an input", s->info.t.name);
    if (bytes != s->info.bytes)
        return fg_fail(FG_ERR_SHAPE, "set_input: '%s' holds %zu bytes, got %zu", s->info.t.name, s->info.bytes, bytes);
    if (!s->info.t.data) return fg_fail(FG_ERR_INVALID, "set_input: graph '%s' is not built", g->name);
    memcpy(s->info.t.data, data, bytes);
    return FG_OK;
}

fg_status fg_graph_read(fg_graph *g, fg_id id, void *dst, size_t bytes) {
    if (id < 0 || id >= g->nt) return fg_fail(FG_ERR_INVALID, "read: invalid tensor handle %d", (int)id);
    fg_tslot *s = &g->t[id];
    if (bytes != s->info.bytes)
        return fg_fail(FG_ERR_SHAPE, "read: '%s' holds %zu bytes, asked for %zu", s->info.t.name, s->info.bytes, bytes);
    /* on the device, or at its host home / in the host tier between uses */
    if ((s->info.t.residence != FG_RES_DEVICE && s->info.t.residence != FG_RES_HOST) || !s->info.t.data)
        return fg_fail(FG_ERR_INVALID, "read: '%s' is not resident (mark it with fg_graph_mark_output before build)",
                       s->info.t.name);
    memcpy(dst, s->info.t.data, bytes);
    return FG_OK;
}

float fg_graph_loss(const fg_graph *g) {
    if (g->loss == FG_NONE || !g->t[g->loss].info.t.data) return 0.0f;
    return *(const float *)g->t[g->loss].info.t.data;
}

void fg_graph_zero_grad(fg_graph *g) {
    for (int i = 0; i < g->np; i++) {
        fg_id gid = g->t[g->params[i]].info.grad;
        if (gid == FG_NONE || !g->t[gid].info.t.data) continue;
        memset(g->t[gid].info.t.data, 0, g->t[gid].info.bytes);
        /* a gradient at its host home (weight offload, between iterations): the policy may start
         * its device copy with a memset */
        fg_tslot *r = &g->t[g->t[gid].info.alias_of];
        if (r->home && g->t[gid].info.t.data == r->home && r->info.bytes == g->t[gid].info.bytes) r->home_zero = 1;
    }
}

/* As torch.nn.utils.clip_grad_norm_, over the gradients the caller can see between iterations:
 * on the device, or at their host home / in the host tier under an offloading policy. */
double fg_graph_clip_grad_norm(fg_graph *g, double max_norm) {
    double ss = 0.0;
    for (int i = 0; i < g->np; i++) {
        fg_id gid = g->t[g->params[i]].info.grad;
        if (gid == FG_NONE) continue;
        const fg_tensor *t = &g->t[gid].info.t;
        if (!t->data || (t->residence != FG_RES_DEVICE && t->residence != FG_RES_HOST)) continue;
        const float *d = t->data;
        const size_t n = (size_t)fg_tensor_numel(t);
        for (size_t j = 0; j < n; j++) ss += (double)d[j] * (double)d[j];
    }
    const double norm = sqrt(ss);
    if (!(isfinite(norm) && norm > max_norm)) return norm;
    const double coef = max_norm / (norm + 1e-6);
    for (int i = 0; i < g->np; i++) {
        fg_id gid = g->t[g->params[i]].info.grad;
        if (gid == FG_NONE) continue;
        const fg_tensor *t = &g->t[gid].info.t;
        if (!t->data || (t->residence != FG_RES_DEVICE && t->residence != FG_RES_HOST)) continue;
        float *d = t->data;
        const size_t n = (size_t)fg_tensor_numel(t);
        /* a home holding zeros still does after scaling: home_zero stays as it is */
        for (size_t j = 0; j < n; j++) d[j] = (float)((double)d[j] * coef);
    }
    return norm;
}

/* An LSTM node's initial state input k (h0_in or c0_in), NULL for zeros. */
static const float *lstm_state(fg_graph *g, const fg_node *n, int k) {
    return k >= 0 ? (const float *)g->t[n->info.in[k]].info.t.data : NULL;
}

fg_status fg_graph_lstm_final_state(fg_graph *g, int node, float *hT, float *cT) {
    if (node < 0 || node >= g->nn || g->nodes[node].info.op != FG_OP_LSTM)
        return fg_fail(FG_ERR_INVALID, "lstm_final_state: node %d of graph '%s' is not an lstm node", node, g->name);
    const fg_node *n = &g->nodes[node];
    if (!g->forwards)
        return fg_fail(FG_ERR_INVALID, "lstm_final_state: lstm '%s': no forward has run yet", n->info.name);
    const fg_lstm_desc *d = &n->p.lstm;
    size_t bh = (size_t)(d->B * d->H), last = (size_t)(d->T - 1) * bh;
    const fg_tensor *y = &g->t[n->info.out].info.t, *sv = &g->t[n->info.aux[0]].info.t;
    if (!y->data || !sv->data || y->residence == FG_RES_DISK || sv->residence == FG_RES_DISK)
        return fg_fail(FG_ERR_INVALID, "lstm_final_state: lstm '%s': its output or saved state is not in memory (read "
                       "it after forward, under a policy that keeps them)", n->info.name);
    if (hT) memcpy(hT, (const float *)y->data + last, bh * sizeof(float));
    /* saved = gates (T, B, 4H), then cells c_1 .. c_T (T, B, H) */
    if (cT) memcpy(cT, (const float *)sv->data + 4 * (size_t)d->T * bh + last, bh * sizeof(float));
    return FG_OK;
}

/* A kernel's failure, prefixed with the node's op and name. */
static fg_status node_fail(fg_status s, const fg_ninfo *ni) {
    return fg_fail(s, "%s '%s': %s", fg_op_name(ni->op), ni->name, fg_last_error()); /* fg_fail formats aside */
}

static void check_resident(fg_graph *g, int i, fg_id id, const char *role) {
    if (id == FG_NONE) return;
    const fg_tensor *t = &g->t[id].info.t;
    if (t->residence != FG_RES_DEVICE || !t->data) {
        char msg[256];
        snprintf(msg, sizeof msg, "node %d '%s': %s tensor '%s' is not resident on the device (policy bug)", i,
                 g->nodes[i].info.name, role, t->name);
        fg_assert_fail("resident", __FILE__, __LINE__, msg);
    }
}

static const uint8_t *U8(fg_graph *g, fg_id id) { return id == FG_NONE ? NULL : (const uint8_t *)g->t[id].info.t.data; }

/* recompute: rebuild the output only (a ReLU's mask and a max pool's argmax, which only backward
 * reads, stay where the first forward put them). The mask and argmax are written only when
 * backward runs. */
static fg_status run_forward(fg_graph *g, int i, int recompute) {
    fg_node *n = &g->nodes[i];
    const fg_ninfo *ni = &n->info;
    for (int k = 0; k < ni->n_in; k++) check_resident(g, i, ni->in[k], "input");
    check_resident(g, i, ni->out, "output");
    const int aux_out = !recompute && n->bwd_active;
    if (!recompute)
        for (int a = 0; a < ni->n_aux; a++) check_resident(g, i, ni->aux[a], "aux");
    float *y = F(g, ni->out);
    const float *x = F(g, ni->in[0]);
    switch (ni->op) {
    case FG_OP_CONV2D:
        return fg_conv2d_forward(y, x, F(g, ni->in[1]), n->has_bias ? F(g, ni->in[2]) : NULL, &n->p.conv, ni->algo, g->ws,
                                 g->ws_bytes);
    case FG_OP_LINEAR:
        if (n->p.lin.dnnl)
            return fg_linear_dnnl_forward(y, x, F(g, ni->in[1]), n->has_bias ? F(g, ni->in[2]) : NULL, n->p.lin.B,
                                          n->p.lin.IC, n->p.lin.OC, n->p.lin.gelu);
        return fg_linear_forward(y, x, F(g, ni->in[1]), n->has_bias ? F(g, ni->in[2]) : NULL, n->p.lin.B, n->p.lin.IC,
                                 n->p.lin.OC);
    case FG_OP_MATMUL:
        return fg_matmul_forward(y, x, F(g, ni->in[1]), n->p.mm.batch, n->p.mm.M, n->p.mm.K, n->p.mm.N, n->p.mm.ta, n->p.mm.tb);
    case FG_OP_RELU:
        if (ni->n_aux && aux_out) fg_relu_forward_mask(y, (uint8_t *)g->t[ni->aux[0]].info.t.data, x, n->p.n);
        else fg_relu_forward(y, x, n->p.n);
        return FG_OK;
    case FG_OP_GELU: fg_gelu_forward(y, x, n->p.n); return FG_OK;
    case FG_OP_TANH: fg_tanh_forward(y, x, n->p.n); return FG_OK;
    case FG_OP_SIGMOID: fg_sigmoid_forward(y, x, n->p.n); return FG_OK;
    case FG_OP_SOFTMAX: fg_softmax_forward(y, x, n->p.sm.rows, n->p.sm.cols); return FG_OK;
    case FG_OP_XENT: {
        fg_status s = fg_xent_forward(y, F(g, ni->aux[0]), x, (const int32_t *)g->t[ni->in[1]].info.t.data, n->p.sm.rows,
                                      n->p.sm.cols);
        if (s != FG_OK) return node_fail(s, ni);
        return FG_OK;
    }
    case FG_OP_DROPOUT:
        if (g->training && n->p.drop.p > 0.0f) fg_dropout_forward(y, x, n->p.n, n->p.drop.p, node_seed(g, i));
        else memcpy(y, x, n->p.n * sizeof(float));
        return FG_OK;
    case FG_OP_ADD: fg_add_forward(y, x, F(g, ni->in[1]), n->p.n); return FG_OK;
    case FG_OP_CONCAT: {
        const float *ins[FG_NODE_MAX_IN];
        for (int k = 0; k < ni->n_in; k++) ins[k] = F(g, ni->in[k]);
        fg_concat_forward(y, ins, n->p.cat.chunk, ni->n_in, n->p.cat.outer);
        return FG_OK;
    }
    case FG_OP_MAXPOOL:
        fg_maxpool2d_forward(y, x, &n->p.pool);
        if (ni->n_aux && aux_out) fg_maxpool2d_argmax((uint8_t *)g->t[ni->aux[0]].info.t.data, x, &n->p.pool);
        return FG_OK;
    case FG_OP_AVGPOOL: fg_avgpool2d_forward(y, x, &n->p.pool); return FG_OK;
    case FG_OP_GAP: fg_global_avgpool_forward(y, x, n->p.gap.N, n->p.gap.C, n->p.gap.HW); return FG_OK;
    case FG_OP_LRN: fg_lrn_forward(y, x, &n->p.lrn); return FG_OK;
    case FG_OP_BATCHNORM:
        if (g->training)
            fg_batchnorm_forward_train(y, F(g, ni->aux[0]), F(g, ni->aux[1]), F(g, n->p.bn.running_mean),
                                       F(g, n->p.bn.running_var), x, F(g, ni->in[1]), F(g, ni->in[2]), n->p.bn.N, n->p.bn.C,
                                       n->p.bn.HW, n->p.bn.momentum, n->p.bn.eps);
        else
            fg_batchnorm_forward_eval(y, x, F(g, ni->in[1]), F(g, ni->in[2]), F(g, n->p.bn.running_mean),
                                      F(g, n->p.bn.running_var), n->p.bn.N, n->p.bn.C, n->p.bn.HW, n->p.bn.eps);
        return FG_OK;
    case FG_OP_LAYERNORM:
        fg_layernorm_forward(y, F(g, ni->aux[0]), F(g, ni->aux[1]), x, F(g, ni->in[1]), F(g, ni->in[2]), n->p.ln.rows,
                             n->p.ln.C, n->p.ln.eps);
        return FG_OK;
    case FG_OP_ATTENTION: {
        const int64_t B = n->p.attn.B, H = n->p.attn.H, Tq = n->p.attn.Tq, Tk = n->p.attn.Tk, D = n->p.attn.D;
        if (n->p.attn.tokens) { /* heads kept: the first keep heads run, the others' columns are zeros */
            fg_status s = fg_attention_forward_tokens(y, F(g, ni->aux[0]), x, F(g, ni->in[1]), F(g, ni->in[2]), B, H,
                                                      n->keep_heads ? n->keep_heads : H, Tq, Tk, D, n->p.attn.scale,
                                                      n->p.attn.causal);
            return s != FG_OK ? node_fail(s, ni) : FG_OK;
        }
        if (n->keep_heads == 0) {
            fg_status s = fg_attention_forward(y, F(g, ni->aux[0]), x, F(g, ni->in[1]), F(g, ni->in[2]), B, H, Tq, Tk,
                                               D, n->p.attn.scale, n->p.attn.causal);
            if (s != FG_OK) return node_fail(s, ni);
            return FG_OK;
        }
        /* heads kept (fg_graph_set_attention_heads): per batch item the first keep of the H heads,
         * contiguous in (B, H, T, D); the others' output is zeros (their probs are not written) */
        const int64_t keep = n->keep_heads;
        const size_t qs = (size_t)(Tq * D), ks = (size_t)(Tk * D), ps = (size_t)(Tq * Tk);
        for (int64_t b = 0; b < B; b++) {
            const size_t bh = (size_t)(b * H);
            fg_status s = fg_attention_forward(y + bh * qs, F(g, ni->aux[0]) + bh * ps, x + bh * qs,
                                               F(g, ni->in[1]) + bh * ks, F(g, ni->in[2]) + bh * ks, 1, keep, Tq, Tk, D,
                                               n->p.attn.scale, n->p.attn.causal);
            if (s != FG_OK) return node_fail(s, ni);
            memset(y + (bh + (size_t)keep) * qs, 0, (size_t)(H - keep) * qs * sizeof(float));
        }
        return FG_OK;
    }
    case FG_OP_LSTM: {
        /* h0, c0: the node's state inputs or zeros; hT and cT not wanted (y[T-1] is hT, cT the last
         * cell in `saved`: fg_graph_lstm_final_state); `saved` is always written: the kernel builds
         * the gates in it */
        fg_status s = fg_lstm_forward(y, NULL, NULL, F(g, ni->aux[0]), x, lstm_state(g, n, n->h0_in),
                                      lstm_state(g, n, n->c0_in), F(g, ni->in[1]), F(g, ni->in[2]),
                                      n->has_bias ? F(g, ni->in[3]) : NULL, n->has_bias ? F(g, ni->in[4]) : NULL,
                                      &n->p.lstm, g->ws, g->ws_bytes);
        if (s != FG_OK) return node_fail(s, ni);
        return FG_OK;
    }
    case FG_OP_EMBEDDING: {
        fg_status s = fg_embedding_forward(y, (const int32_t *)g->t[ni->in[0]].info.t.data, F(g, ni->in[1]), n->p.emb.n,
                                           n->p.emb.V, n->p.emb.E);
        if (s != FG_OK) return node_fail(s, ni); /* a token id outside the table */
        return FG_OK;
    }
    case FG_OP_RESIZE: fg_resize_bilinear_forward(y, x, &n->p.rs); return FG_OK;
    case FG_OP_PERMUTE: fg_permute_forward(y, x, n->p.perm.ndim, n->p.perm.shape, n->p.perm.perm); return FG_OK;
    case FG_OP_REPEAT: fg_repeat_forward(y, x, n->p.rep.m, n->p.rep.n); return FG_OK;
    case FG_OP_SLICE:
        fg_slice_forward(y, x, n->p.sl.outer, n->p.sl.dim, n->p.sl.inner, n->p.sl.start, n->p.sl.len);
        return FG_OK;
    case FG_OP_TOME: {
        const int64_t B = n->p.tome.B, Tn = n->p.tome.T;
        FG_ASSERT_MSG(g->ws && g->ws_bytes >= fg_exec_op_ws(g, n, FG_FORWARD), "tome: workspace too small (policy bug)");
        int32_t *map = g->ws;
        fg_tome_match(map, F(g, ni->in[1]), B, Tn, n->p.tome.C, n->p.tome.H, n->p.tome.r,
                      (unsigned char *)g->ws + tome_map_bytes(n));
        fg_tome_merge(y, F(g, ni->aux[0]), x, ni->n_in > 2 ? F(g, ni->in[2]) : NULL, map, B, Tn, n->p.tome.E,
                      n->p.tome.r);
        return FG_OK;
    }
    case FG_OP_TOME_ATTENTION: {
        fg_status s = (n->p.attn.tokens ? fg_tome_attention_forward_tokens : fg_tome_attention_forward)(
            y, x, F(g, ni->in[1]), F(g, ni->in[2]), F(g, ni->in[3]), n->p.attn.B, n->p.attn.H,
            n->keep_heads ? n->keep_heads : n->p.attn.H, n->p.attn.Tq, n->p.attn.D, n->p.attn.scale, g->ws, g->ws_bytes);
        if (s != FG_OK) return node_fail(s, ni);
        return FG_OK;
    }
    default: return fg_fail(FG_ERR_UNSUPPORTED, "forward of op %s is not implemented", fg_op_name(ni->op));
    }
}

/* Where the op writes grad(in[k]): the gradient itself, or scratch to be added afterwards. */
typedef struct dgrad {
    float *dst[FG_NODE_MAX_IN];
    float *real[FG_NODE_MAX_IN];
    size_t n[FG_NODE_MAX_IN];
} dgrad;

/* Points d at where the op writes grad(in[k]) for k in [k0, k1): the gradient itself, a
 * parameter gradient (accumulated by the op), or scratch taken from *scratch onwards. */
static void dgrad_prepare(fg_graph *g, int i, dgrad *d, int k0, int k1, unsigned char **scratch) {
    const fg_ninfo *ni = &g->nodes[i].info;
    for (int k = k0; k < k1; k++) {
        fg_id x = ni->in[k];
        fg_id gx = g->t[x].info.grad;
        if (gx == FG_NONE) continue;
        if (g->t[g->t[x].info.alias_of].info.kind == FG_T_PARAM && !g->nodes[i].accum[k]) {
            check_resident(g, i, gx, "parameter gradient");
            d->dst[k] = F(g, gx); /* accumulated inside the op */
            continue;
        }
        /* a parameter fed as data to an op that writes its gradient (accum set at build) goes
         * through scratch below, like an activation whose gradient another consumer wrote */
        if (ni->op == FG_OP_XENT && k == 1) continue;
        check_resident(g, i, gx, "input gradient");
        d->real[k] = F(g, gx);
        d->n[k] = (size_t)fg_tensor_numel(&g->t[x].info.t);
        if (g->nodes[i].accum[k]) {
            FG_ASSERT_MSG(g->ws && (size_t)(*scratch - (unsigned char *)g->ws) + d->n[k] * 4 <= g->ws_bytes,
                          "backward workspace too small for gradient accumulation");
            d->dst[k] = (float *)*scratch;
            *scratch += (d->n[k] * 4 + 63) / 64 * 64;
        } else {
            d->dst[k] = d->real[k];
        }
    }
}

/* A conv backward split in two (fg_graph_set_split_backward): the weight half (dW, db: reads
 * the input and dy) first, then the policy's mid hook, which may release the input and must make
 * grad(input) resident, then the data half (dX: reads dy and the weights). Each half computes
 * exactly what the whole backward would, so the split changes no bit. */
static fg_status conv_backward_split(fg_graph *g, int i, dgrad *d, unsigned char **scratch, const float *dy) {
    fg_node *n = &g->nodes[i];
    const fg_ninfo *ni = &n->info;
    const float *w = F(g, ni->in[1]);
    size_t algo_ws = n->op_ws[FG_BACKWARD];
    if (d->dst[1] || (n->has_bias && d->dst[2]))
        FG_TRY(fg_conv2d_backward(NULL, d->dst[1], n->has_bias ? d->dst[2] : NULL, dy, F(g, ni->in[0]), w, &n->p.conv,
                                  ni->algo, g->ws, algo_ws));
    fg_mem_policy *p = &g->policy;
    if (p->mid) FG_TRY(p->mid(p->self, g, i));
    dgrad_prepare(g, i, d, 0, 1, scratch); /* the input only: the weight half prepared the rest */
    if (!d->dst[0]) return FG_OK;
    return fg_conv2d_backward(d->dst[0], NULL, NULL, dy, NULL, w, &n->p.conv, ni->algo, g->ws, algo_ws);
}

static fg_status run_backward(fg_graph *g, int i) {
    fg_node *n = &g->nodes[i];
    const fg_ninfo *ni = &n->info;
    if (!n->bwd_active) return FG_OK;
    const int split = ni->op == FG_OP_CONV2D && n->split_bwd;
    for (int s = 0; s < ni->n_save; s++) check_resident(g, i, ni->save[s], "saved");
    check_resident(g, i, g->t[ni->out].info.grad, "output gradient");
    size_t algo_ws = n->op_ws[FG_BACKWARD];
    unsigned char *scratch = (unsigned char *)g->ws + algo_ws;
    dgrad d;
    memset(&d, 0, sizeof d);
    dgrad_prepare(g, i, &d, split ? 1 : 0, ni->n_in, &scratch);
    const float *dy = F(g, g->t[ni->out].info.grad);
    const float *x = F(g, ni->in[0]);
    const float *y = F(g, ni->out);
    fg_status st = FG_OK;
    switch (ni->op) {
    case FG_OP_CONV2D:
        if (split) st = conv_backward_split(g, i, &d, &scratch, dy);
        else
            st = fg_conv2d_backward(d.dst[0], d.dst[1], n->has_bias ? d.dst[2] : NULL, dy, x, F(g, ni->in[1]), &n->p.conv,
                                    ni->algo, g->ws, algo_ws);
        break;
    case FG_OP_LINEAR:
        st = fg_linear_backward(d.dst[0], d.dst[1], n->has_bias ? d.dst[2] : NULL, dy, x, F(g, ni->in[1]), n->p.lin.B,
                                n->p.lin.IC, n->p.lin.OC);
        break;
    case FG_OP_MATMUL:
        st = fg_matmul_backward(d.dst[0], d.dst[1], dy, x, F(g, ni->in[1]), n->p.mm.batch, n->p.mm.M, n->p.mm.K, n->p.mm.N,
                                n->p.mm.ta, n->p.mm.tb);
        break;
    case FG_OP_RELU:
        if (!d.dst[0]) break;
        if (ni->n_aux) fg_relu_backward_mask(d.dst[0], dy, U8(g, ni->aux[0]), n->p.n);
        else fg_relu_backward(d.dst[0], dy, y, n->p.n);
        break;
    case FG_OP_GELU: if (d.dst[0]) fg_gelu_backward(d.dst[0], dy, x, n->p.n); break;
    case FG_OP_TANH: if (d.dst[0]) fg_tanh_backward(d.dst[0], dy, y, n->p.n); break;
    case FG_OP_SIGMOID: if (d.dst[0]) fg_sigmoid_backward(d.dst[0], dy, y, n->p.n); break;
    case FG_OP_SOFTMAX: if (d.dst[0]) fg_softmax_backward(d.dst[0], dy, y, n->p.sm.rows, n->p.sm.cols); break;
    case FG_OP_XENT:
        if (d.dst[0])
            fg_xent_backward(d.dst[0], dy[0], F(g, ni->aux[0]), (const int32_t *)g->t[ni->in[1]].info.t.data, n->p.sm.rows,
                             n->p.sm.cols);
        break;
    case FG_OP_DROPOUT:
        if (d.dst[0]) {
            if (g->training && n->p.drop.p > 0.0f) fg_dropout_backward(d.dst[0], dy, n->p.n, n->p.drop.p, node_seed(g, i));
            else if (d.dst[0] != dy) memcpy(d.dst[0], dy, n->p.n * sizeof(float)); /* in place: nothing to do */
        }
        break;
    case FG_OP_ADD:
        for (int k = 0; k < 2; k++)
            if (d.dst[k]) memcpy(d.dst[k], dy, n->p.n * sizeof(float));
        break;
    case FG_OP_CONCAT: fg_concat_backward(d.dst, dy, n->p.cat.chunk, ni->n_in, n->p.cat.outer); break;
    case FG_OP_MAXPOOL:
        if (!d.dst[0]) break;
        if (ni->n_aux) fg_maxpool2d_backward_argmax(d.dst[0], dy, U8(g, ni->aux[0]), &n->p.pool);
        else fg_maxpool2d_backward(d.dst[0], dy, x, &n->p.pool);
        break;
    case FG_OP_AVGPOOL: if (d.dst[0]) fg_avgpool2d_backward(d.dst[0], dy, &n->p.pool); break;
    case FG_OP_GAP: if (d.dst[0]) fg_global_avgpool_backward(d.dst[0], dy, n->p.gap.N, n->p.gap.C, n->p.gap.HW); break;
    case FG_OP_LRN: if (d.dst[0]) fg_lrn_backward(d.dst[0], dy, x, y, &n->p.lrn); break;
    case FG_OP_BATCHNORM:
        /* an eval forward normalizes with the running statistics and leaves mean/invstd unwritten:
         * the batch-statistics backward would read garbage (found by test_vit's frozen-stem case) */
        if (!g->fwd_training) {
            st = fg_fail(FG_ERR_UNSUPPORTED, "batchnorm '%s': backward after an eval-mode forward (running statistics) "
                         "is not implemented; run the forward with fg_graph_set_training(g, 1)", ni->name);
            break;
        }
        fg_batchnorm_backward(d.dst[0], d.dst[1], d.dst[2], dy, x, F(g, ni->aux[0]), F(g, ni->aux[1]), F(g, ni->in[1]),
                              n->p.bn.N, n->p.bn.C, n->p.bn.HW);
        break;
    case FG_OP_LAYERNORM:
        fg_layernorm_backward(d.dst[0], d.dst[1], d.dst[2], dy, x, F(g, ni->in[1]), F(g, ni->aux[0]), F(g, ni->aux[1]),
                              n->p.ln.rows, n->p.ln.C);
        break;
    case FG_OP_ATTENTION:
        /* the op's own scratch only: accumulation scratch follows it in the workspace */
        st = (n->p.attn.tokens ? fg_attention_backward_tokens : fg_attention_backward)(
            d.dst[0], d.dst[1], d.dst[2], dy, x, F(g, ni->in[1]), F(g, ni->in[2]), F(g, ni->aux[0]), n->p.attn.B,
            n->p.attn.H, n->p.attn.Tq, n->p.attn.Tk, n->p.attn.D, n->p.attn.scale, algo_ws ? g->ws : NULL, algo_ws);
        if (st != FG_OK) st = node_fail(st, ni);
        break;
    case FG_OP_LSTM: {
        /* The node's structured sparsity (fg_graph_set_lstm_sparsity), or none: one block of H
         * units can never be dropped, so the kernel runs the dense backward's code (drop 0 does
         * too), bit for bit fg_lstm_backward's; either way the stats are kept for the caller. */
        const fg_lstm_sparsity sp = n->sparsity.block ? n->sparsity : (fg_lstm_sparsity){.drop = 0.0f, .block = n->p.lstm.H};
        fg_lstm_sparse_stats stats;
        memset(&stats, 0, sizeof stats);
        st = fg_lstm_backward_sparse(d.dst[0], NULL, NULL, d.dst[1], d.dst[2], n->has_bias ? d.dst[3] : NULL,
                                     n->has_bias ? d.dst[4] : NULL, dy, NULL, NULL, x, lstm_state(g, n, n->h0_in),
                                     lstm_state(g, n, n->c0_in), F(g, ni->in[1]),
                                     F(g, ni->in[2]), y, F(g, ni->aux[0]), &n->p.lstm, g->ws, algo_ws, &sp, &stats);
        if (st != FG_OK) {
            st = node_fail(st, ni);
            break;
        }
        n->sparse_stats = stats;
        n->has_stats = 1;
        break;
    }
    case FG_OP_EMBEDDING:
        /* the ids were checked by this iteration's forward */
        fg_embedding_backward(d.dst[1], dy, (const int32_t *)g->t[ni->in[0]].info.t.data, n->p.emb.n, n->p.emb.V,
                              n->p.emb.E);
        break;
    case FG_OP_RESIZE: fg_resize_bilinear_backward(d.dst[0], dy, &n->p.rs); break;
    case FG_OP_PERMUTE: fg_permute_backward(d.dst[0], dy, n->p.perm.ndim, n->p.perm.shape, n->p.perm.perm); break;
    case FG_OP_REPEAT: fg_repeat_backward(d.dst[0], dy, n->p.rep.m, n->p.rep.n); break;
    case FG_OP_SLICE:
        fg_slice_backward(d.dst[0], dy, n->p.sl.outer, n->p.sl.dim, n->p.sl.inner, n->p.sl.start, n->p.sl.len);
        break;
    default: return fg_fail(FG_ERR_UNSUPPORTED, "backward of op %s is not implemented", fg_op_name(ni->op));
    }
    if (st != FG_OK) return st;
    for (int k = 0; k < ni->n_in; k++)
        if (d.real[k] && d.dst[k] != d.real[k]) fg_accumulate(d.real[k], d.dst[k], d.n[k]);
    return FG_OK;
}

fg_status fg_exec_node(fg_graph *g, int i, fg_pass pass) {
    return pass == FG_FORWARD ? run_forward(g, i, 0) : run_backward(g, i);
}

int fg_graph_node_recomputable(const fg_graph *g, int i) {
    FG_ASSERT(i >= 0 && i < g->nn);
    const fg_ninfo *ni = &g->nodes[i].info;
    /* a ReLU's mask and a max pool's argmax are not rewritten by a rerun (run_forward) */
    int aux_ok = ni->n_aux == 0 || ni->op == FG_OP_RELU || ni->op == FG_OP_MAXPOOL;
    /* layer norm (mean, rstd), attention (probs) and the LSTM (gates, cells) write AUX outputs; an
     * embedding writes only its output (a gather from the ids and the table): cheap to rerun */
    int writes_aux = ni->op == FG_OP_LAYERNORM || ni->op == FG_OP_ATTENTION || ni->op == FG_OP_LSTM || ni->op == FG_OP_TOME;
    return aux_ok && !writes_aux && ni->op != FG_OP_BATCHNORM && ni->op != FG_OP_XENT;
}

/* "not built", with the reason when a build failed (the graph keeps its error). */
static fg_status not_built(const fg_graph *g, const char *what) {
    if (g->status != FG_OK)
        return fg_fail(FG_ERR_INVALID, "%s: graph '%s' is not built: %s", what, g->name, g->error);
    return fg_fail(FG_ERR_INVALID, "%s: graph '%s' is not built", what, g->name);
}

fg_status fg_graph_recompute(fg_graph *g, int i) {
    if (!g->built) return not_built(g, "recompute");
    if (i < 0 || i >= g->nn) return fg_fail(FG_ERR_INVALID, "recompute: node %d out of range", i);
    if (!fg_graph_node_recomputable(g, i))
        return fg_fail(FG_ERR_UNSUPPORTED, "recompute: node '%s' (%s) writes aux outputs or state and cannot be rerun",
                       g->nodes[i].info.name, fg_op_name(g->nodes[i].info.op));
    double t0 = fg_time_now();
    fg_status s = run_forward(g, i, 1);
    g->recompute_seconds += fg_time_now() - t0;
    return s;
}

double fg_graph_recompute_time(const fg_graph *g) { return g->recompute_seconds; }

static fg_status step(fg_graph *g, int i, fg_pass pass) {
    fg_mem_policy *p = &g->policy;
    g->ws = NULL;
    g->ws_bytes = 0;
    if (p->before) FG_TRY(p->before(p->self, g, i, pass));
    /* batch norm in training writes its running statistics: state that sharing graphs read */
    int writes_state = pass == FG_FORWARD && g->training && g->nodes[i].info.op == FG_OP_BATCHNORM;
    if (writes_state) fg_weights_write_begin(g);
    double t0 = fg_time_now();
    fg_status s = pass == FG_FORWARD ? fg_bypass_forward(g, i) : fg_exec_node(g, i, pass);
    g->nodes[i].seconds[pass] += fg_time_now() - t0;
    if (writes_state) fg_weights_write_end(g);
    if (s != FG_OK) return s;
    if (p->after) FG_TRY(p->after(p->self, g, i, pass));
    return FG_OK;
}

static fg_status forward_steps(fg_graph *g) {
    g->fwd_skipped = g->n_bypass > 0;
    g->fwd_training = g->training;
    g->fwd_done = 0;
    for (int i = 0; i < g->nn; i++) FG_TRY(step(g, i, FG_FORWARD));
    if (g->loss == FG_NONE && g->policy.end) FG_TRY(g->policy.end(g->policy.self, g));
    g->fwd_done = 1;
    g->forwards++;
    return FG_OK;
}

fg_status fg_graph_forward(fg_graph *g) {
    if (!g->built) return not_built(g, "forward");
    if (!g->owner) return forward_steps(g);
    if (g->training && g->owner_bn)
        return fg_fail(FG_ERR_INVALID, "forward: graph '%s' reads the weights of '%s' and has %d batch-norm nodes: a "
                       "training-mode forward would write '%s''s running statistics while only reading them; run it "
                       "with fg_graph_set_training(g, 0) (the owner trains them)",
                       g->name, g->owner->name, g->owner_bn, g->owner->name);
    /* reading another graph's weights: one whole version of them for the whole forward */
    int rc = pthread_rwlock_rdlock(&g->owner->wlock);
    FG_ASSERT_MSG(rc == 0, "weights lock: rdlock failed");
    g->seen_version = (uint64_t)atomic_load(&g->owner->wversion);
    fg_status s = forward_steps(g);
    pthread_rwlock_unlock(&g->owner->wlock);
    return s;
}

fg_status fg_graph_backward(fg_graph *g) {
    if (!g->built) return not_built(g, "backward");
    if (g->loss == FG_NONE) return fg_fail(FG_ERR_INVALID, "backward: graph '%s' was built without a loss", g->name);
    if (g->n_bypass > 0)
        return fg_fail(FG_ERR_UNSUPPORTED, "backward: graph '%s' has %d bypassed nodes (skipping is for inference; "
                       "fg_graph_clear_bypass first)", g->name, g->n_bypass);
    if (g->fwd_skipped)
        return fg_fail(FG_ERR_UNSUPPORTED, "backward: graph '%s''s last forward ran with parts skipped or narrowed, "
                       "and its saved activations are that forward's: run the forward again with every part on",
                       g->name);
    if (!g->fwd_done)
        return fg_fail(FG_ERR_INVALID, "backward: graph '%s' has no finished forward to differentiate (none ran, the "
                       "last one failed, or a backward already used it): run fg_graph_forward first", g->name);
    g->fwd_done = 0; /* its saved activations are consumed (a policy frees them as the backward goes) */
    fg_id lg = g->t[g->t[g->loss].info.alias_of].info.grad;
    FG_ASSERT(lg != FG_NONE && g->t[lg].info.t.data);
    *(float *)g->t[lg].info.t.data = 1.0f;
    for (int i = g->nn - 1; i >= 0; i--) FG_TRY(step(g, i, FG_BACKWARD));
    if (g->policy.end) FG_TRY(g->policy.end(g->policy.self, g));
    return FG_OK;
}

double fg_graph_node_time(const fg_graph *g, int node, fg_pass pass) {
    FG_ASSERT(node >= 0 && node < g->nn);
    return g->nodes[node].seconds[pass];
}

void fg_graph_reset_times(fg_graph *g) {
    for (int i = 0; i < g->nn; i++) g->nodes[i].seconds[0] = g->nodes[i].seconds[1] = 0;
    g->recompute_seconds = 0;
}
