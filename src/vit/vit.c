/* A DeiT-style vision transformer classifier on the graph (Dosovitskiy et al., ICLR 2021; Touvron
 * et al., ICML 2021, without distillation), with Hugging Face's ViTForImageClassification parameter
 * names, and an optional convolutional stem (Xiao et al., "Early Convolutions Help Transformers See
 * Better", NeurIPS 2021).
 *
 * Shapes, for input (B, C, H, W), patch P, stem k (0: none), s = P >> k, N = (H / P) * (W / P):
 *   stem (k layers)     conv 3x3 stride 2 pad 1 (no bias) -> batch norm -> ReLU; layer j = 0..k-1 has
 *                       dim / 2^(k-1-j) channels (at least 8), so the last one has dim
 *   patch embedding     conv kernel = stride = s -> (B, dim, H/P, W/P) -> tokens (B, N, dim)
 *   class token         (1, 1, dim) repeated over the batch, concatenated first -> (B, N + 1, dim)
 *   position embedding  (1, N + 1, dim) repeated over the batch, added
 *   block (depth)       x += dense(attn(q, k, v of ln_before(x)));  x += out(gelu(inter(ln_after(x))))
 *   head                layernorm -> x[:, 0] (B, dim) -> classifier (B, classes)
 * With a ToMe schedule (cfg->tome_r), block i merges tome_r[i] tokens after its attention residual
 * (fg_nn_tome on the key projection's output), so its MLP and the later blocks see fewer tokens,
 * and every block after the first merge attends proportionally (fg_nn_tome_attention_tokens).
 * Tokens <-> image is a permute node around a reshape view, as in segformer.c; the attention takes
 * q, k, v as the projections make them, (B, T, heads * hd), and reads each head in place. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "frugal/vit.h"

/* A block's linear (with bias): in inference graphs a oneDNN matmul with the bias in its epilogue
 * (fg_layer_linear_dnnl; the MLP's first one also takes GELU, fg_layer_linear_gelu), in training
 * graphs sgemm's (fg_layer_linear). */
static fg_id lin(fg_graph *g, const char *name, fg_id x, int64_t out, int with_loss) {
    return with_loss ? fg_layer_linear(g, name, x, out, 1) : fg_layer_linear_dnnl(g, name, x, out, 1);
}

typedef struct vit_preset {
    const char *name;
    fg_vit_cfg cfg;
} vit_preset;

static const vit_preset presets[] = {
    {"vit-tiny-28", {.patch = 7, .dim = 64, .depth = 4, .heads = 4, .mlp_dim = 128,
                     .ln_eps = 1e-12f, .init_std = 0.02f}},
    /* the same network on 4x4 patches: 49 tokens + the class token, more for ToMe to merge */
    {"vit-tiny-28-p4", {.patch = 4, .dim = 64, .depth = 4, .heads = 4, .mlp_dim = 128,
                     .ln_eps = 1e-12f, .init_std = 0.02f}},
    {"deit-tiny", {.patch = 16, .dim = 192, .depth = 12, .heads = 3, .mlp_dim = 768,
                     .ln_eps = 1e-12f, .init_std = 0.02f}},
    {"deit-small", {.patch = 16, .dim = 384, .depth = 12, .heads = 6, .mlp_dim = 1536,
                     .ln_eps = 1e-12f, .init_std = 0.02f}},
};

fg_status fg_vit_config(const char *preset, int64_t num_classes, fg_vit_cfg *out) {
    if (num_classes < 1) return fg_fail(FG_ERR_INVALID, "vit: num_classes = %lld, expected >= 1", (long long)num_classes);
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (preset && strcasecmp(preset, presets[i].name) == 0) {
            *out = presets[i].cfg;
            out->num_classes = num_classes;
            return FG_OK;
        }
    return fg_fail(FG_ERR_INVALID, "vit: unknown preset '%s'; known: vit-tiny-28, vit-tiny-28-p4, deit-tiny, deit-small",
                   preset ? preset : "(null)");
}

static fg_status cfg_check(const fg_vit_cfg *c) {
    if (c->patch < 1 || c->dim < 1 || c->depth < 0 || c->heads < 1 || c->mlp_dim < 1 || c->num_classes < 1)
        return fg_fail(FG_ERR_INVALID, "vit: patch, dim, heads, mlp_dim, num_classes must be >= 1 and depth >= 0");
    if (c->dim % c->heads)
        return fg_fail(FG_ERR_INVALID, "vit: dim %lld is not a multiple of %lld heads", (long long)c->dim, (long long)c->heads);
    if (c->conv_stem < 0 || c->conv_stem > 8 || c->patch % ((int64_t)1 << c->conv_stem))
        return fg_fail(FG_ERR_INVALID, "vit: conv_stem = %d: expected 0..8 with patch %lld a multiple of 2^conv_stem",
                       c->conv_stem, (long long)c->patch);
    if (!(c->ln_eps >= 0.0f) || !(c->init_std >= 0.0f)) return fg_fail(FG_ERR_INVALID, "vit: ln_eps and init_std must be >= 0");
    for (int64_t i = c->depth; i < FG_VIT_MAX_BLOCKS; i++)
        if (c->tome_r[i])
            return fg_fail(FG_ERR_INVALID, "vit: ToMe merges %d tokens in block %lld, the model has %lld blocks",
                           (int)c->tome_r[i], (long long)i, (long long)c->depth);
    return FG_OK;
}

/* Stem layer j of k widens to dim / 2^(k - 1 - j), at least 8 channels: the last layer has dim. */
static int64_t stem_width(const fg_vit_cfg *c, int j) {
    int64_t w = c->dim >> (c->conv_stem - 1 - j);
    return w < 8 ? 8 : w;
}

/* "<a><b>" into buf (FG_NAME_MAX). Our names are at most ~60 characters for any depth below 10^6. */
static const char *name2(char *buf, const char *a, const char *b) {
    const int n = snprintf(buf, FG_NAME_MAX, "%s%s", a, b);
    FG_ASSERT_MSG(n >= 0 && n < FG_NAME_MAX, "vit: a layer name does not fit FG_NAME_MAX");
    return buf;
}

fg_status fg_vit_build(fg_graph *g, const fg_vit_cfg *cfg, int64_t batch, int64_t channels, int64_t height,
                       int64_t width, int with_loss, fg_vit_io *io) {
    FG_ASSERT(g && cfg && io);
    memset(io, 0, sizeof *io);
    io->input = io->logits = io->labels = io->loss = FG_NONE;
    FG_TRY(cfg_check(cfg));
    if (batch < 1 || channels < 1 || height < 1 || width < 1 || height % cfg->patch || width % cfg->patch)
        return fg_fail(FG_ERR_SHAPE, "vit: input (%lld, %lld, %lld, %lld): expected positive sizes, height and width "
                       "multiples of the patch %lld", (long long)batch, (long long)channels, (long long)height,
                       (long long)width, (long long)cfg->patch);
    if (fg_graph_n_nodes(g) != 0 || fg_graph_n_tensors(g) != 0)
        return fg_fail(FG_ERR_INVALID, "vit: graph '%s' is not empty", fg_graph_name(g));
    const int64_t D = cfg->dim, hp = height / cfg->patch, wp = width / cfg->patch, N = hp * wp, T = N + 1;
    char n1[FG_NAME_MAX], n2[FG_NAME_MAX], p[FG_NAME_MAX];
    const int64_t in_shape[4] = {batch, channels, height, width};
    io->input = fg_nn_input(g, "pixel_values", FG_F32, 4, in_shape);
    io->tokens = T;
    fg_id x = io->input;
    for (int j = 0; j < cfg->conv_stem; j++) {
        snprintf(p, sizeof p, "vit.embeddings.stem.%d.", j);
        x = fg_layer_conv2d(g, name2(n1, p, "conv"), x, stem_width(cfg, j), 3, 2, 1, 0);
        x = fg_nn_batchnorm(g, name2(n1, p, "batch_norm"), x, 0.1f, 1e-5f);
        x = fg_nn_relu(g, name2(n1, p, "relu"), x);
    }
    const int64_t k = cfg->patch >> cfg->conv_stem;
    fg_id e = fg_layer_conv2d(g, "vit.embeddings.patch_embeddings.projection", x, D, k, k, 0, 1);
    const int64_t s3[3] = {batch, D, N};
    const int tperm[3] = {0, 2, 1};
    fg_id patches = fg_nn_permute(g, "vit.embeddings.patch_embeddings:tok",
                                  fg_nn_reshape(g, "vit.embeddings.patch_embeddings:flat", e, 3, s3), tperm);
    const int64_t cs[3] = {1, 1, D}, ps[3] = {1, T, D};
    fg_id cls = fg_nn_param(g, "vit.embeddings.cls_token", 3, cs, FG_INIT_NORMAL, cfg->init_std);
    fg_id pos = fg_nn_param(g, "vit.embeddings.position_embeddings", 3, ps, FG_INIT_NORMAL, cfg->init_std);
    fg_id parts[2] = {fg_nn_repeat(g, "vit.embeddings.cls_token:batch", cls, batch), patches};
    fg_id h = fg_nn_add(g, "vit.embeddings", fg_nn_concat(g, "vit.embeddings:cat", parts, 2, 1),
                        fg_nn_repeat(g, "vit.embeddings.position_embeddings:batch", pos, batch));
    int64_t Tb = T;        /* tokens in the current block: T until a ToMe merge */
    fg_id size = FG_NONE;  /* ToMe's token sizes (B, Tb) after the first merge */
    for (int64_t i = 0; i < cfg->depth && fg_graph_status(g) == FG_OK; i++) {
        snprintf(p, sizeof p, "vit.encoder.layer.%lld.", (long long)i);
        fg_id a = fg_nn_layernorm(g, name2(n1, p, "layernorm_before"), h, cfg->ln_eps);
        /* q, k, v stay (B, Tb, D) = (B, Tb, heads, hd): the attention reads each head's columns in
         * place (fg_nn_attention_tokens), so no permute splits or merges the heads */
        fg_id qkv[3];
        static const char *const which[3] = {"attention.attention.query", "attention.attention.key",
                                             "attention.attention.value"};
        for (int j = 0; j < 3; j++) qkv[j] = lin(g, name2(n1, p, which[j]), a, D, with_loss);
        const fg_id keys = qkv[1]; /* ToMe's metric: these keys averaged over heads */
        /* after a merge, ToMe's proportional attention: softmax(q k^T / sqrt(d) + log size) v */
        fg_id att = size == FG_NONE ? fg_nn_attention_tokens(g, name2(n1, p, "attention.attention"), qkv[0], qkv[1],
                                                             qkv[2], cfg->heads, 0.0f, 0)
                                    : fg_nn_tome_attention_tokens(g, name2(n1, p, "attention.attention"), qkv[0],
                                                                  qkv[1], qkv[2], size, cfg->heads, 0.0f);
        h = fg_nn_add(g, name2(n1, p, "attention:residual"), h,
                      lin(g, name2(n2, p, "attention.output.dense"), att, D, with_loss));
        if (cfg->tome_r[i]) { /* ToMe between attention and MLP; the class token (row 0) stays first */
            h = fg_nn_tome(g, name2(n1, p, "tome"), h, keys, size, cfg->heads, cfg->tome_r[i], &size);
            Tb -= cfg->tome_r[i];
        }
        fg_id m = fg_nn_layernorm(g, name2(n1, p, "layernorm_after"), h, cfg->ln_eps);
        /* inference: the MLP's GELU fused into its first linear (one pass over the hidden
         * activations); training keeps the two nodes, whose backward needs the pre-activation */
        m = with_loss ? fg_nn_gelu(g, name2(n1, p, "intermediate:gelu"),
                                   fg_layer_linear(g, name2(n2, p, "intermediate.dense"), m, cfg->mlp_dim, 1))
                      : fg_layer_linear_gelu(g, name2(n2, p, "intermediate.dense"), m, cfg->mlp_dim, 1);
        h = fg_nn_add(g, name2(n1, p, "output:residual"), h,
                      lin(g, name2(n2, p, "output.dense"), m, D, with_loss));
    }
    h = fg_nn_layernorm(g, "vit.layernorm", h, cfg->ln_eps);
    const int64_t bd[2] = {batch, D};
    fg_id c0 = fg_nn_reshape(g, "vit.pooler:cls2d", fg_nn_slice(g, "vit.pooler:cls", h, 1, 0, 1), 2, bd);
    io->logits = fg_layer_linear(g, "classifier", c0, cfg->num_classes, 1);
    if (with_loss) {
        io->labels = fg_nn_input(g, "labels", FG_I32, 1, &batch);
        io->loss = fg_nn_xent(g, "loss", io->logits, io->labels);
    }
    if (fg_graph_status(g) != FG_OK)
        return fg_fail(fg_graph_status(g), "vit (input %lld x %lld x %lld x %lld): %s", (long long)batch,
                       (long long)channels, (long long)height, (long long)width, fg_graph_error(g));
    fg_graph_mark_output(g, io->logits);
    return FG_OK;
}
