/* The skip knobs of issue 14 over a built ViT or SegFormer graph: each knob is a bypass of one
 * node, found by the name the builder gave it, and the executor's liveness (src/graph/bypass.c)
 * then leaves out everything only that node needed. A skipped attention or MLP branch is its
 * residual add passing input 0 (the block's input x; input 1 is the branch), so the branch's
 * layer norm, linears, attention and activation never run; a skipped depthwise conv passes its
 * (B, 4C, h, w) input through (same shape: 3x3, stride 1, padding 1); a dropped decoder stage
 * makes its (B, E, h0, w0) image zeros (stage 0's token -> image permute, the other stages'
 * resize), so its projection (and, for the last stage, the last encoder stage) does not run. Heads
 * kept limit the block's attention op; the sr conv (C -> C, kernel = stride = sr) becomes an
 * average pooling of the same window, which the following layer norm then normalizes. ToMe
 * merges (fg_vit_skip.tome) are not bypasses: they change token counts, i.e. shapes, so the graph
 * is built for them (fg_vit_cfg.tome_r) and apply only checks that the configuration's match. */
#include <stdio.h>
#include <string.h>

#include "frugal/vit.h"

/* A node of a block by name; -1 when absent. which: 0 attention residual, 1 MLP residual, 2
 * depthwise conv, 3 the attention op, 4 the spatial-reduction conv, 5..7 the query, key and
 * value projections, 8 the attention's output projection, 9 ToMe's merge. */
static int block_node(const fg_graph *g, int seg, int64_t block, int which) {
    char name[128]; /* longer than FG_NAME_MAX: a name that long is simply not found */
    if (!seg) {
        static const char *const what[10] = {"attention:residual", "output:residual", NULL, "attention.attention", NULL,
                                             "attention.attention.query", "attention.attention.key",
                                             "attention.attention.value", "attention.output.dense", "tome"};
        if (!what[which]) return -1;
        snprintf(name, sizeof name, "vit.encoder.layer.%lld.%s", (long long)block, what[which]);
        return fg_graph_find_node(g, name);
    }
    static const char *const what[10] = {"attention:residual", "mlp:residual", "mlp.dwconv.dwconv", "attention.self",
                                         "attention.self.sr", "attention.self.query", "attention.self.key",
                                         "attention.self.value", "attention.output.dense", NULL};
    if (!what[which]) return -1;
    /* the flat block index -> (stage, block in stage), by probing the names stage after stage */
    int64_t b = block;
    for (int s = 0; s < FG_SEGFORMER_STAGES; s++) {
        int64_t depth = 0;
        for (;; depth++) {
            snprintf(name, sizeof name, "segformer.encoder.block.%d.%lld.attention:residual", s, (long long)depth);
            if (fg_graph_find_node(g, name) < 0) break;
        }
        if (b < depth) {
            snprintf(name, sizeof name, "segformer.encoder.block.%d.%lld.%s", s, (long long)b, what[which]);
            return fg_graph_find_node(g, name);
        }
        b -= depth;
    }
    return -1;
}

static int decoder_node(const fg_graph *g, int stage) {
    char name[128]; /* longer than FG_NAME_MAX: a name that long is simply not found */
    snprintf(name, sizeof name, stage == 0 ? "decode_head.linear_c.%d.proj:image" : "decode_head.linear_c.%d.proj:resize",
             stage);
    return fg_graph_find_node(g, name);
}

fg_status fg_vit_skip_blocks(const fg_graph *g, int64_t *n_blocks, int *is_segformer) {
    FG_ASSERT(g && n_blocks && is_segformer);
    const int seg = fg_graph_find_node(g, "decode_head.linear_fuse") >= 0;
    int64_t n = 0;
    while (n < FG_VIT_MAX_BLOCKS + 1 && block_node(g, seg, n, 0) >= 0) n++;
    if (n == 0)
        return fg_fail(FG_ERR_INVALID, "vit skip: graph '%s' has no ViT or SegFormer blocks", fg_graph_name(g));
    if (n > FG_VIT_MAX_BLOCKS)
        return fg_fail(FG_ERR_INVALID, "vit skip: graph '%s' has more than %d blocks", fg_graph_name(g),
                       FG_VIT_MAX_BLOCKS);
    *n_blocks = n;
    *is_segformer = seg;
    return FG_OK;
}

fg_status fg_vit_skip_tome_of(const fg_graph *g, uint8_t tome[FG_VIT_MAX_BLOCKS]) {
    int64_t n = 0;
    int seg = 0;
    FG_TRY(fg_vit_skip_blocks(g, &n, &seg));
    memset(tome, 0, FG_VIT_MAX_BLOCKS);
    for (int64_t b = 0; !seg && b < n; b++) {
        char name[128];
        snprintf(name, sizeof name, "vit.encoder.layer.%lld.tome", (long long)b);
        const int i = fg_graph_find_node(g, name);
        if (i < 0) continue;
        const fg_ninfo *ni = fg_graph_node(g, i);
        tome[b] = (uint8_t)(fg_graph_tinfo(g, ni->in[0])->t.shape[1] - fg_graph_tinfo(g, ni->out)->t.shape[1]);
    }
    return FG_OK;
}

fg_status fg_vit_skip_apply(fg_graph *g, const fg_vit_skip *k) {
    FG_ASSERT(g && k);
    int64_t n = 0;
    int seg = 0;
    FG_TRY(fg_vit_skip_blocks(g, &n, &seg));
    uint8_t built[FG_VIT_MAX_BLOCKS];
    FG_TRY(fg_vit_skip_tome_of(g, built));
    for (int64_t b = 0; b < FG_VIT_MAX_BLOCKS; b++)
        if (k->tome[b] != built[b])
            return fg_fail(FG_ERR_INVALID, "vit skip: block %lld merges %d tokens (ToMe), graph '%s' was built to merge "
                           "%d there: token counts are shapes, build the graph with fg_vit_cfg.tome_r set to the "
                           "configuration's", (long long)b, (int)k->tome[b], fg_graph_name(g), (int)built[b]);
    for (int64_t b = n; b < FG_VIT_MAX_BLOCKS; b++)
        if (k->attn[b] || k->mlp[b] || k->dwconv[b] || k->heads[b] || k->sr_pool[b])
            return fg_fail(FG_ERR_INVALID, "vit skip: block %lld is skipped, graph '%s' has %lld blocks", (long long)b,
                           fg_graph_name(g), (long long)n);
    for (int64_t b = 0; !seg && b < n; b++)
        if (k->dwconv[b])
            return fg_fail(FG_ERR_INVALID, "vit skip: block %lld: graph '%s' is a ViT, it has no depthwise conv",
                           (long long)b, fg_graph_name(g));
    for (int s = 0; !seg && s < FG_SEGFORMER_STAGES; s++)
        if (k->decoder[s])
            return fg_fail(FG_ERR_INVALID, "vit skip: decoder stage %d: graph '%s' is a ViT, it has no decoder", s,
                           fg_graph_name(g));
    for (int64_t b = 0; b < n; b++) {
        if (k->sr_pool[b] && (!seg || block_node(g, seg, b, 4) < 0))
            return fg_fail(FG_ERR_INVALID, "vit skip: block %lld of graph '%s' has no spatial-reduction conv to pool",
                           (long long)b, fg_graph_name(g));
        if (k->heads[b]) {
            int64_t H, hd;
            FG_TRY(fg_graph_attention_heads(g, block_node(g, seg, b, 3), &H, &hd));
            if (k->heads[b] > H)
                return fg_fail(FG_ERR_INVALID, "vit skip: block %lld of graph '%s' has %lld heads, cannot keep %d",
                               (long long)b, fg_graph_name(g), (long long)H, (int)k->heads[b]);
        }
    }
    fg_graph_clear_bypass(g);
    for (int64_t b = 0; b < n; b++) {
        /* input 0 of a residual add is the block's input, input 1 the branch (the builders' order) */
        if (k->attn[b]) FG_TRY(fg_graph_set_bypass(g, block_node(g, seg, b, 0), FG_BYPASS_INPUT, 0));
        if (k->mlp[b]) FG_TRY(fg_graph_set_bypass(g, block_node(g, seg, b, 1), FG_BYPASS_INPUT, 0));
        if (k->dwconv[b]) FG_TRY(fg_graph_set_bypass(g, block_node(g, seg, b, 2), FG_BYPASS_INPUT, 0));
        if (k->heads[b]) {
            /* heads kept also narrow the projections: q, k, v compute the kept heads' columns only,
             * the output projection reads only those (ToMe's merge reads all the keys: its block
             * keeps the key projection whole) */
            const int att = block_node(g, seg, b, 3);
            FG_TRY(fg_graph_set_attention_heads(g, att, k->heads[b]));
            int64_t H, hd;
            FG_TRY(fg_graph_attention_heads(g, att, &H, &hd));
            const int64_t cols = (int64_t)k->heads[b] * hd;
            for (int w = 5; w <= 7; w++)
                if (!(w == 6 && block_node(g, seg, b, 9) >= 0))
                    FG_TRY(fg_graph_set_linear_narrow(g, block_node(g, seg, b, w), 0, cols));
            FG_TRY(fg_graph_set_linear_narrow(g, block_node(g, seg, b, 8), cols, 0));
        }
        if (k->sr_pool[b]) FG_TRY(fg_graph_set_bypass(g, block_node(g, seg, b, 4), FG_BYPASS_AVGPOOL, 0));
    }
    uint32_t kept = 0; /* the fuse conv's input blocks still fed: stage s is block 3 - s (reverse order, as HF) */
    for (int s = 0; seg && s < FG_SEGFORMER_STAGES; s++) {
        if (k->decoder[s]) {
            const int node = decoder_node(g, s);
            FG_ASSERT(node >= 0);
            FG_TRY(fg_graph_set_bypass(g, node, FG_BYPASS_ZERO, 0));
        } else kept |= 1u << (FG_SEGFORMER_STAGES - 1 - s);
    }
    if (seg && kept != (1u << FG_SEGFORMER_STAGES) - 1u) {
        /* the fuse conv multiplies the kept stages' channels only */
        const int fuse = fg_graph_find_node(g, "decode_head.linear_fuse");
        FG_ASSERT(fuse >= 0);
        FG_TRY(fg_graph_set_conv_narrow(g, fuse, FG_SEGFORMER_STAGES, kept));
    }
    return FG_OK;
}

fg_status fg_vit_skip_flops(fg_graph *g, const fg_vit_skip *k, double *flops) {
    FG_ASSERT(flops);
    *flops = 0.0;
    FG_TRY(fg_vit_skip_apply(g, k));
    *flops = fg_graph_active_flops(g);
    return FG_OK;
}
