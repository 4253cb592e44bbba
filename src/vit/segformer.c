/* SegFormer (Xie et al., "SegFormer: Simple and Efficient Design for Semantic Segmentation with
 * Transformers", NeurIPS 2021) on the graph: the Mix Transformer (MiT) encoder and the all-MLP
 * decoder, with Hugging Face's SegformerForSemanticSegmentation parameter names so that an HF
 * checkpoint loads by name (fg_vit_weights_load). The architecture facts follow the paper and the
 * public transformers implementation; tests/fixtures/gen_segformer.py is an independent PyTorch
 * reference the test holds this builder to.
 *
 * Shapes, for input (B, 3, H, W), stage i = 0..3 with hidden size C_i, spatial size h_i x w_i
 * (h_0 = floor((H - 1) / 4) + 1 from the 7x7 stride-4 pad-3 embedding, then halving, rounded up),
 * N_i = h_i * w_i tokens:
 *   patch embedding   image (B, C_{i-1}, h_{i-1}, w_{i-1}) -conv k, stride, pad k/2-> (B, C_i, h_i, w_i)
 *                     -> tokens (B, N_i, C_i) -> layer norm                 "...patch_embeddings.i.*"
 *   block (depths[i]) x += attn(ln1(x)); x += mixffn(ln2(x))                "...block.i.j.*"
 *     attn            q = query(x) (B, N, C), heads of D = C / heads channels each;
 *                     sr > 1: kv = layer_norm(tokens(conv_sr(image(x)))), conv kernel = stride = sr,
 *                     (B, N / sr^2, C) (Tk != Tq); else kv = x; k = key(kv), v = value(kv);
 *                     per head softmax(q k^T / sqrt(D)) v -> (B, N, C) -> output.dense (the heads
 *                     read and written in place: fg_nn_attention_tokens)
 *     mixffn          dense1 (C -> 4C) -> image (B, 4C, h, w) -> depthwise 3x3 pad 1 (groups 4C, bias)
 *                     -> tokens -> GELU (erf) -> dense2 (4C -> C)
 *   stage norm        layer norm "segformer.encoder.layer_norm.i"; image form feeds stage i + 1
 *   decoder           per stage: linear_c.i.proj (C_i -> E) on the tokens -> image (B, E, h_i, w_i)
 *                     -> bilinear resize to (h_0, w_0) (stage 0 skips it: the identity); concat in
 *                     REVERSE stage order (3, 2, 1, 0) -> (B, 4E, h_0, w_0) -> linear_fuse 1x1 (no
 *                     bias) -> batch norm -> ReLU -> dropout -> classifier 1x1 -> (B, labels, h_0, w_0)
 * "image" and "tokens" are permute nodes (perm {0, 2, 1} over (B, C, N) / (B, N, C)) around reshape
 * views. The decoder reads each stage's normalized tokens directly: HF's image -> flatten ->
 * transpose round trip gives the same numbers. Dropout (attention, hidden, drop path) is not built:
 * HF's defaults are 0 for all but the classifier's, and in eval all are the identity. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "frugal/vit.h"

static const char *const variant_names[FG_SEGFORMER_VARIANT_COUNT] = {"b0", "b1", "b2"};

const char *fg_segformer_variant_name(fg_segformer_variant v) {
    return v >= 0 && v < FG_SEGFORMER_VARIANT_COUNT ? variant_names[v] : "?";
}

fg_status fg_segformer_variant_parse(const char *name, fg_segformer_variant *out) {
    const char *s = name ? name : "";
    if (strncasecmp(s, "mit-", 4) == 0) s += 4;
    else if (strncasecmp(s, "segformer-", 10) == 0) s += 10;
    for (int v = 0; v < FG_SEGFORMER_VARIANT_COUNT; v++)
        if (strcasecmp(s, variant_names[v]) == 0) {
            *out = (fg_segformer_variant)v;
            return FG_OK;
        }
    return fg_fail(FG_ERR_INVALID, "segformer: unknown variant '%s'; known: b0, b1, b2", name ? name : "(null)");
}

fg_status fg_segformer_config(fg_segformer_variant v, int64_t num_labels, fg_segformer_cfg *out) {
    if (v < 0 || v >= FG_SEGFORMER_VARIANT_COUNT) return fg_fail(FG_ERR_INVALID, "segformer: unknown variant %d", (int)v);
    if (num_labels < 1) return fg_fail(FG_ERR_INVALID, "segformer: num_labels = %lld, expected >= 1", (long long)num_labels);
    memset(out, 0, sizeof *out);
    static const int64_t heads[4] = {1, 2, 5, 8}, sr[4] = {8, 4, 2, 1}, patch[4] = {7, 3, 3, 3}, stride[4] = {4, 2, 2, 2};
    static const int64_t hid_b0[4] = {32, 64, 160, 256}, hid_b12[4] = {64, 128, 320, 512};
    static const int64_t dep_b01[4] = {2, 2, 2, 2}, dep_b2[4] = {3, 4, 6, 3};
    out->num_channels = 3;
    memcpy(out->hidden, v == FG_SEGFORMER_B0 ? hid_b0 : hid_b12, sizeof out->hidden);
    memcpy(out->depths, v == FG_SEGFORMER_B2 ? dep_b2 : dep_b01, sizeof out->depths);
    memcpy(out->heads, heads, sizeof heads);
    memcpy(out->sr, sr, sizeof sr);
    memcpy(out->patch, patch, sizeof patch);
    memcpy(out->stride, stride, sizeof stride);
    out->mlp_ratio = 4;
    out->decoder_hidden = v == FG_SEGFORMER_B2 ? 768 : 256;
    out->num_labels = num_labels;
    out->ln_eps = 1e-5f;
    out->bn_eps = 1e-5f;
    out->bn_momentum = 0.1f;
    out->classifier_dropout = 0.1f;
    return FG_OK;
}

static fg_status cfg_check(const fg_segformer_cfg *c) {
    if (c->num_channels < 1 || c->mlp_ratio < 1 || c->decoder_hidden < 1 || c->num_labels < 1)
        return fg_fail(FG_ERR_INVALID, "segformer: num_channels, mlp_ratio, decoder_hidden and num_labels must be >= 1");
    for (int i = 0; i < FG_SEGFORMER_STAGES; i++) {
        if (c->hidden[i] < 1 || c->depths[i] < 0 || c->heads[i] < 1 || c->sr[i] < 1 || c->patch[i] < 1 || c->stride[i] < 1)
            return fg_fail(FG_ERR_INVALID, "segformer: stage %d: hidden, heads, sr, patch and stride must be >= 1, depth >= 0", i);
        if (c->hidden[i] % c->heads[i])
            return fg_fail(FG_ERR_INVALID, "segformer: stage %d: hidden size %lld is not a multiple of %lld heads", i,
                           (long long)c->hidden[i], (long long)c->heads[i]);
    }
    if (!(c->ln_eps >= 0.0f) || !(c->bn_eps >= 0.0f) || !(c->classifier_dropout >= 0.0f && c->classifier_dropout < 1.0f))
        return fg_fail(FG_ERR_INVALID, "segformer: eps must be >= 0 and classifier dropout in [0, 1)");
    return FG_OK;
}

/* A builder in progress: the graph, the configuration, and a name that did not fit. */
typedef struct sb {
    fg_graph *g;
    const fg_segformer_cfg *c;
    int too_long;
    char long_name[128];
} sb;

/* "<prefix><suffix>" into buf (FG_NAME_MAX); remembers the first name that would be truncated
 * (a truncated parameter name would not match the checkpoint). */
static const char *nm(sb *b, char *buf, const char *prefix, const char *suffix) {
    int n = snprintf(buf, FG_NAME_MAX, "%s%s", prefix, suffix);
    /* ".weight" is appended to layer names by the graph's layer builders */
    if (n < 0 || n + 8 > FG_NAME_MAX) {
        if (!b->too_long) snprintf(b->long_name, sizeof b->long_name, "%s%s", prefix, suffix);
        b->too_long = 1;
    }
    return buf;
}

/* (B, C, h, w) image -> (B, h*w, C) tokens */
static fg_id to_tokens(sb *b, const char *name, fg_id x) {
    if (fg_graph_status(b->g) != FG_OK || x == FG_NONE) return FG_NONE;
    const fg_tensor *t = fg_graph_tensor(b->g, x);
    FG_ASSERT(t->ndim == 4);
    const int64_t s3[3] = {t->shape[0], t->shape[1], t->shape[2] * t->shape[3]};
    const int perm[3] = {0, 2, 1};
    char vb[FG_NAME_MAX];
    snprintf(vb, sizeof vb, "%.50s:flat", name);
    return fg_nn_permute(b->g, name, fg_nn_reshape(b->g, vb, x, 3, s3), perm);
}

/* (B, h*w, C) tokens -> (B, C, h, w) image */
static fg_id to_image(sb *b, const char *name, fg_id x, int64_t h, int64_t w) {
    const int perm[3] = {0, 2, 1};
    fg_id t = fg_nn_permute(b->g, name, x, perm);
    if (t == FG_NONE) return FG_NONE;
    const fg_tensor *tt = fg_graph_tensor(b->g, t);
    const int64_t s4[4] = {tt->shape[0], tt->shape[1], h, w};
    char vb[FG_NAME_MAX];
    snprintf(vb, sizeof vb, "%.50s:hw", name);
    return fg_nn_reshape(b->g, vb, t, 4, s4);
}

/* (B, N, C) -> (B, heads, N, C / heads) */
/* Efficient self-attention of block prefix p ("segformer.encoder.block.i.j."), x (B, N, C). */
static fg_id attention(sb *b, const char *p, fg_id x, int stage, int64_t h, int64_t w) {
    fg_graph *g = b->g;
    const int64_t C = b->c->hidden[stage], heads = b->c->heads[stage], sr = b->c->sr[stage];
    char n1[FG_NAME_MAX], n2[FG_NAME_MAX];
    fg_id q = fg_layer_linear(g, nm(b, n1, p, "attention.self.query"), x, C, 1);
    fg_id kv = x;
    if (sr > 1) {
        fg_id img = to_image(b, nm(b, n1, p, "attention.self:image"), x, h, w);
        fg_id r = fg_layer_conv2d(g, nm(b, n1, p, "attention.self.sr"), img, C, sr, sr, 0, 1);
        kv = fg_nn_layernorm(g, nm(b, n2, p, "attention.self.layer_norm"), to_tokens(b, nm(b, n1, p, "attention.self.sr:tok"), r),
                             b->c->ln_eps);
    }
    fg_id k = fg_layer_linear(g, nm(b, n1, p, "attention.self.key"), kv, C, 1);
    fg_id v = fg_layer_linear(g, nm(b, n1, p, "attention.self.value"), kv, C, 1);
    /* q, k, v as the projections make them, (B, N, heads * d): the attention reads each head's
     * columns in place, no permute splits or merges them */
    fg_id a = fg_nn_attention_tokens(g, nm(b, n1, p, "attention.self"), q, k, v, heads, 0.0f, 0);
    return fg_layer_linear(g, nm(b, n1, p, "attention.output.dense"), a, C, 1);
}

/* Mix-FFN of block prefix p, x (B, N, C). */
static fg_id mixffn(sb *b, const char *p, fg_id x, int stage, int64_t h, int64_t w) {
    fg_graph *g = b->g;
    const int64_t C = b->c->hidden[stage], M = C * b->c->mlp_ratio;
    char n1[FG_NAME_MAX], n2[FG_NAME_MAX];
    fg_id d1 = fg_layer_linear(g, nm(b, n1, p, "mlp.dense1"), x, M, 1);
    fg_id img = to_image(b, nm(b, n1, p, "mlp.dwconv:image"), d1, h, w);
    /* depthwise: weight (M, 1, 3, 3), groups M; torch's default init, fan_in = 9 */
    const int64_t ws[4] = {M, 1, 3, 3};
    fg_id wt = fg_nn_param(g, nm(b, n1, p, "mlp.dwconv.dwconv.weight"), 4, ws, FG_INIT_KAIMING_UNIFORM, 0);
    fg_id bs = fg_nn_param(g, nm(b, n1, p, "mlp.dwconv.dwconv.bias"), 1, &M, FG_INIT_FANIN_UNIFORM, 9.0f);
    const fg_conv_opts o = {1, 1, 1, M};
    fg_id dw = fg_nn_conv2d(g, nm(b, n2, p, "mlp.dwconv.dwconv"), img, wt, bs, o);
    fg_id act = fg_nn_gelu(g, nm(b, n1, p, "mlp.act"), to_tokens(b, nm(b, n2, p, "mlp.dwconv:tok"), dw));
    return fg_layer_linear(g, nm(b, n1, p, "mlp.dense2"), act, C, 1);
}

fg_status fg_segformer_build(fg_graph *g, const fg_segformer_cfg *cfg, int64_t batch, int64_t height, int64_t width,
                             int with_loss, fg_segformer_io *io) {
    FG_ASSERT(g && cfg && io);
    memset(io, 0, sizeof *io);
    io->input = io->logits = io->labels = io->loss = FG_NONE;
    for (int i = 0; i < FG_SEGFORMER_STAGES; i++) io->stage[i] = FG_NONE;
    FG_TRY(cfg_check(cfg));
    if (batch < 1 || height < 1 || width < 1)
        return fg_fail(FG_ERR_SHAPE, "segformer: input (%lld, %lld, %lld, %lld), expected positive sizes", (long long)batch,
                       (long long)cfg->num_channels, (long long)height, (long long)width);
    if (fg_graph_n_nodes(g) != 0 || fg_graph_n_tensors(g) != 0)
        return fg_fail(FG_ERR_INVALID, "segformer: graph '%s' is not empty", fg_graph_name(g));
    sb b = {g, cfg, 0, {0}};
    char n1[FG_NAME_MAX], n2[FG_NAME_MAX], p[FG_NAME_MAX];
    const int64_t in_shape[4] = {batch, cfg->num_channels, height, width};
    io->input = fg_nn_input(g, "pixel_values", FG_F32, 4, in_shape);
    fg_id img = io->input;
    for (int i = 0; i < FG_SEGFORMER_STAGES; i++) {
        /* overlapping patch embedding */
        snprintf(p, sizeof p, "segformer.encoder.patch_embeddings.%d.", i);
        fg_id e = fg_layer_conv2d(g, nm(&b, n1, p, "proj"), img, cfg->hidden[i], cfg->patch[i], cfg->stride[i],
                                  cfg->patch[i] / 2, 1);
        if (fg_graph_status(g) != FG_OK) break;
        const fg_tensor *te = fg_graph_tensor(g, e);
        const int64_t h = te->shape[2], w = te->shape[3];
        io->h[i] = h;
        io->w[i] = w;
        fg_id x = fg_nn_layernorm(g, nm(&b, n2, p, "layer_norm"), to_tokens(&b, nm(&b, n1, p, "proj:tok"), e), cfg->ln_eps);
        for (int64_t j = 0; j < cfg->depths[i]; j++) {
            snprintf(p, sizeof p, "segformer.encoder.block.%d.%lld.", i, (long long)j);
            fg_id a = attention(&b, p, fg_nn_layernorm(g, nm(&b, n1, p, "layer_norm_1"), x, cfg->ln_eps), i, h, w);
            x = fg_nn_add(g, nm(&b, n1, p, "attention:residual"), x, a);
            fg_id m = mixffn(&b, p, fg_nn_layernorm(g, nm(&b, n1, p, "layer_norm_2"), x, cfg->ln_eps), i, h, w);
            x = fg_nn_add(g, nm(&b, n1, p, "mlp:residual"), x, m);
        }
        snprintf(p, sizeof p, "segformer.encoder.layer_norm.%d", i);
        x = fg_nn_layernorm(g, p, x, cfg->ln_eps);
        io->stage[i] = x;
        if (i + 1 < FG_SEGFORMER_STAGES) {
            snprintf(p, sizeof p, "segformer.encoder.stage%d:image", i);
            img = to_image(&b, p, x, h, w);
        }
    }
    /* the all-MLP decoder */
    fg_id ups[FG_SEGFORMER_STAGES];
    for (int i = 0; i < FG_SEGFORMER_STAGES && fg_graph_status(g) == FG_OK; i++) {
        snprintf(p, sizeof p, "decode_head.linear_c.%d.", i);
        fg_id d = fg_layer_linear(g, nm(&b, n1, p, "proj"), io->stage[i], cfg->decoder_hidden, 1);
        fg_id di = to_image(&b, nm(&b, n1, p, "proj:image"), d, io->h[i], io->w[i]);
        ups[FG_SEGFORMER_STAGES - 1 - i] = /* concatenated in reverse stage order, as HF */
            i == 0 ? di : fg_nn_resize_bilinear(g, nm(&b, n2, p, "proj:resize"), di, io->h[0], io->w[0]);
    }
    if (fg_graph_status(g) == FG_OK) {
        fg_id cat = fg_nn_concat(g, "decode_head:concat", ups, FG_SEGFORMER_STAGES, 1);
        fg_id fuse = fg_layer_conv2d(g, "decode_head.linear_fuse", cat, cfg->decoder_hidden, 1, 1, 0, 0);
        fg_id bn = fg_nn_batchnorm(g, "decode_head.batch_norm", fuse, cfg->bn_momentum, cfg->bn_eps);
        fg_id act = fg_nn_relu(g, "decode_head.activation", bn);
        if (cfg->classifier_dropout > 0.0f) act = fg_nn_dropout(g, "decode_head.dropout", act, cfg->classifier_dropout);
        io->logits = fg_layer_conv2d(g, "decode_head.classifier", act, cfg->num_labels, 1, 1, 0, 1);
        /* The two 1x1 convs are plain GEMMs over NCHW images: the GEMM algorithm runs them without
         * the blocked-layout reorders of oneDNN's convolution and without workspace (SegFormer-B0
         * at 512x512, batch 1, process CPU time: fuse 55 ms against 66, classifier 8.4 against
         * 12.8; docs/BENCHMARKS.md). A memory policy may still choose another. */
        static const char *const pointwise[2] = {"decode_head.linear_fuse", "decode_head.classifier"};
        for (int k = 0; k < 2 && fg_graph_status(g) == FG_OK; k++) {
            const int node = fg_graph_find_node(g, pointwise[k]);
            if (node >= 0) FG_TRY(fg_graph_set_algo(g, node, FG_CONV_GEMM));
        }
    }
    if (with_loss && fg_graph_status(g) == FG_OK) {
        /* (B, L, h, w) -> (B, h*w, L) -> (B*h*w, L) rows for the cross-entropy */
        fg_id t = to_tokens(&b, "decode_head.logits:tok", io->logits);
        const int64_t rows = batch * io->h[0] * io->w[0], s2[2] = {rows, cfg->num_labels};
        fg_id r = fg_nn_reshape(g, "decode_head.logits:rows", t, 2, s2);
        io->labels = fg_nn_input(g, "labels", FG_I32, 1, &rows);
        io->loss = fg_nn_xent(g, "loss", r, io->labels);
    }
    if (b.too_long)
        return fg_fail(FG_ERR_INVALID, "segformer: the name '%s' is longer than %d characters (with '.weight')",
                       b.long_name, FG_NAME_MAX - 1);
    if (fg_graph_status(g) != FG_OK)
        return fg_fail(fg_graph_status(g), "segformer (input %lld x %lld x %lld x %lld): %s", (long long)batch,
                       (long long)cfg->num_channels, (long long)height, (long long)width, fg_graph_error(g));
    fg_graph_mark_output(g, io->logits);
    return FG_OK;
}
