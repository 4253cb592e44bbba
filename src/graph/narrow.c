/* Narrowed nodes (fg_graph_set_linear_narrow, fg_graph_set_conv_narrow, graph.h): the work that
 * dynamic ViT's knobs make useless is not done, instead of being done on zeros.
 *
 * - Heads kept (a prefix of H heads): the q, k, v projections' outputs are (rows, H * hd) with
 *   head h in columns [h * hd, (h + 1) * hd), so only the first keep * hd output features are
 *   computed (y[:, :o] = x W[:o, :]^T + b[:o], the GEMM's ldc the full width); the attention
 *   output is zeros beyond the kept heads, so the output projection reads only its first
 *   keep * hd input features (y = x[:, :i] W[:, :i]^T + b, lda and ldb the full width).
 * - Dropped decoder stages: SegFormer's fuse conv is a 1x1 conv over the concatenation of the
 *   stages' (B, E, h, w) images; a dropped stage's block of input channels is zeros, so per
 *   batch item y (OC, HW) is the sum over the kept blocks only of W[:, block] x[block, :]
 *   (one GEMM each, lda the full channel count), plus the bias.
 * Every GEMM is fg_sgemm (oneDNN). Backward is refused while any is set (they count as bypasses). */
#include <string.h>

#include "frugal/ops.h"
#include "graph/graph_impl.h"

int fg_narrow_is_set(const fg_node *n) { return n->narrow_in || n->narrow_out || n->narrow_blocks; }

double fg_narrow_fraction(const fg_node *n) {
    if (n->info.op == FG_OP_LINEAR) {
        const double fi = n->narrow_in ? (double)n->narrow_in / (double)n->p.lin.IC : 1.0;
        const double fo = n->narrow_out ? (double)n->narrow_out / (double)n->p.lin.OC : 1.0;
        return fi * fo;
    }
    if (n->narrow_blocks) return (double)__builtin_popcount(n->narrow_mask) / (double)n->narrow_blocks;
    return 1.0;
}

/* Whether a node's narrowing is set after the change, for the bypass count. */
static void recount(fg_graph *g, fg_node *n, int was) { g->n_bypass += fg_narrow_is_set(n) - was; }

fg_status fg_graph_set_linear_narrow(fg_graph *g, int node, int64_t in, int64_t out) {
    if (node < 0 || node >= g->nn) return fg_fail(FG_ERR_INVALID, "narrow: node %d out of range [0, %d)", node, g->nn);
    fg_node *n = &g->nodes[node];
    if (n->info.op != FG_OP_LINEAR)
        return fg_fail(FG_ERR_INVALID, "narrow: node '%s' is %s, not linear", n->info.name, fg_op_name(n->info.op));
    if (n->p.lin.gelu)
        return fg_fail(FG_ERR_UNSUPPORTED, "narrow: node '%s' has GELU fused (fg_nn_linear_gelu): not narrowed",
                       n->info.name);
    const int64_t IC = n->p.lin.IC, OC = n->p.lin.OC;
    if (in < 0 || in > IC || out < 0 || out > OC)
        return fg_fail(FG_ERR_INVALID, "narrow: linear '%s' (%lld -> %lld features): cannot read %lld and write %lld",
                       n->info.name, (long long)IC, (long long)OC, (long long)in, (long long)out);
    const int was = fg_narrow_is_set(n);
    n->narrow_in = in == IC ? 0 : in;
    n->narrow_out = out == OC ? 0 : out;
    recount(g, n, was);
    return FG_OK;
}

fg_status fg_graph_set_conv_narrow(fg_graph *g, int node, int blocks, uint32_t keep_mask) {
    if (node < 0 || node >= g->nn) return fg_fail(FG_ERR_INVALID, "narrow: node %d out of range [0, %d)", node, g->nn);
    fg_node *n = &g->nodes[node];
    const fg_conv2d_desc *c = &n->p.conv;
    if (n->info.op != FG_OP_CONV2D || c->kh != 1 || c->kw != 1 || c->stride_h != 1 || c->stride_w != 1 || c->pad_h ||
        c->pad_w || c->groups != 1)
        return fg_fail(FG_ERR_INVALID, "narrow: node '%s' (%s) is not a 1x1 conv with stride 1, no padding, groups 1",
                       n->info.name, fg_op_name(n->info.op));
    if (blocks < 1 || blocks > 32 || c->c % blocks)
        return fg_fail(FG_ERR_INVALID, "narrow: conv '%s': %d blocks of its %lld input channels (1..32 dividing them)",
                       n->info.name, blocks, (long long)c->c);
    const uint32_t all = blocks == 32 ? 0xffffffffu : (1u << blocks) - 1u;
    if (keep_mask & ~all)
        return fg_fail(FG_ERR_INVALID, "narrow: conv '%s': keep mask 0x%x names blocks beyond %d", n->info.name,
                       (unsigned)keep_mask, blocks);
    const int was = fg_narrow_is_set(n);
    n->narrow_blocks = keep_mask == all ? 0 : blocks;
    n->narrow_mask = keep_mask == all ? 0 : keep_mask;
    recount(g, n, was);
    return FG_OK;
}

static float *F(fg_graph *g, fg_id id) { return (float *)g->t[id].info.t.data; }

fg_status fg_narrow_forward(fg_graph *g, int i) {
    fg_node *n = &g->nodes[i];
    const fg_ninfo *ni = &n->info;
    float *y = F(g, ni->out);
    const float *x = F(g, ni->in[0]), *w = F(g, ni->in[1]), *b = n->has_bias ? F(g, ni->in[2]) : NULL;
    fg_status s = FG_OK;
    if (ni->op == FG_OP_LINEAR) {
        /* x (rows, IC), W (OC, IC), y (rows, OC) */
        const int64_t rows = n->p.lin.B, IC = n->p.lin.IC, OC = n->p.lin.OC;
        const int64_t k = n->narrow_in ? n->narrow_in : IC, o = n->narrow_out ? n->narrow_out : OC;
        s = fg_sgemm('N', 'T', rows, o, k, 1.0f, x, IC, w, IC, 0.0f, y, OC);
        if (s == FG_OK && b)
            for (int64_t r = 0; r < rows; r++) {
                float *yr = y + (size_t)(r * OC);
                for (int64_t j = 0; j < o; j++) yr[j] += b[j];
            }
    } else {
        /* x (N, C, HW), W (OC, C), y (N, OC, HW) */
        const fg_conv2d_desc *c = &n->p.conv;
        const int64_t HW = c->h * c->w, C = c->c, OC = c->oc, cb = C / n->narrow_blocks;
        for (int64_t bi = 0; s == FG_OK && bi < c->n; bi++) {
            float *yb = y + (size_t)(bi * OC * HW);
            const float *xb = x + (size_t)(bi * C * HW);
            float beta = 0.0f;
            for (int blk = 0; s == FG_OK && blk < n->narrow_blocks; blk++) {
                if (!(n->narrow_mask >> blk & 1u)) continue;
                s = fg_sgemm('N', 'N', OC, HW, cb, 1.0f, w + blk * cb, C, xb + (size_t)(blk * cb * HW), HW, beta, yb, HW);
                beta = 1.0f;
            }
            if (beta == 0.0f) memset(yb, 0, (size_t)(OC * HW) * sizeof(float));
            for (int64_t o = 0; b && o < OC; o++)
                for (int64_t p = 0; p < HW; p++) yb[o * HW + p] += b[o];
        }
    }
    if (s != FG_OK) return fg_fail(s, "node '%s' (%s, narrowed): %s", ni->name, fg_op_name(ni->op), fg_last_error());
    return FG_OK;
}
