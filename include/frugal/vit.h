/* frugal vit: vision transformers for dynamic inference (issue 14; Sreedhar et al., arXiv
 * 2212.02687), the fourth system. Built on the graph (include/frugal/graph.h) only.
 *
 * What exists (docs/DYNAMIC_VIT.md): SegFormer (Xie et al., NeurIPS 2021: the MiT encoder and the
 * all-MLP decoder) with the exact MiT-B0, B1 and B2 configurations and parameters named exactly
 * as Hugging Face transformers' SegformerForSemanticSegmentation state_dict, so an HF safetensors
 * checkpoint loads by name; a DeiT-style ViT classifier (HF ViT names, optional conv stem); the
 * weight loader that checks such a file tensor by tensor; the "digit scenes" segmentation data; the
 * skip knobs (branches, depthwise convs, whole blocks, heads kept, the sr conv as pooling, decoder
 * stages, the q, k, v and fuse-conv narrowing that goes with heads kept and dropped stages)
 * applied by the executor; ToMe token merging (fg_vit_cfg.tome_r, forward only); the Pareto front
 * of a profile table and the governor's pick. Profile tables read back from JSON and the run-time
 * governor that corrects its latencies as it runs (`frugal vit run`). */
#ifndef FRUGAL_VIT_H
#define FRUGAL_VIT_H

#include "frugal/graph.h"
#include "frugal/io.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- SegFormer */

#define FG_SEGFORMER_STAGES 4

typedef enum fg_segformer_variant {
    FG_SEGFORMER_B0, /* hidden 32, 64, 160, 256; depths 2, 2, 2, 2; decoder 256 */
    FG_SEGFORMER_B1, /* hidden 64, 128, 320, 512; depths 2, 2, 2, 2; decoder 256 */
    FG_SEGFORMER_B2, /* hidden 64, 128, 320, 512; depths 3, 4, 6, 3; decoder 768 */
    FG_SEGFORMER_VARIANT_COUNT
} fg_segformer_variant;

/* The architecture (HF's SegformerConfig fields that shape the network). */
typedef struct fg_segformer_cfg {
    int64_t num_channels;                    /* input channels (3) */
    int64_t hidden[FG_SEGFORMER_STAGES];     /* hidden_sizes */
    int64_t depths[FG_SEGFORMER_STAGES];     /* blocks per stage */
    int64_t heads[FG_SEGFORMER_STAGES];      /* num_attention_heads: 1, 2, 5, 8 */
    int64_t sr[FG_SEGFORMER_STAGES];         /* sr_ratios: 8, 4, 2, 1 */
    int64_t patch[FG_SEGFORMER_STAGES];      /* patch_sizes: 7, 3, 3, 3 (padding patch / 2) */
    int64_t stride[FG_SEGFORMER_STAGES];     /* strides: 4, 2, 2, 2 */
    int64_t mlp_ratio;                       /* 4 in every stage */
    int64_t decoder_hidden;                  /* decoder_hidden_size */
    int64_t num_labels;
    float ln_eps;                            /* every layer norm: 1e-5 (torch's default, as HF) */
    float bn_eps, bn_momentum;               /* decode_head.batch_norm: 1e-5, 0.1 */
    float classifier_dropout;                /* classifier_dropout_prob: 0.1 */
} fg_segformer_cfg;

/* The exact configuration of a variant with num_labels classes. FG_ERR_INVALID for an unknown
 * variant or num_labels < 1. */
fg_status fg_segformer_config(fg_segformer_variant v, int64_t num_labels, fg_segformer_cfg *out);
/* "b0", "b1", "b2" (also "mit-b0" ..., case-insensitive). FG_ERR_INVALID naming the known ones. */
fg_status fg_segformer_variant_parse(const char *name, fg_segformer_variant *out);
const char *fg_segformer_variant_name(fg_segformer_variant v);

/* What the builder made. */
typedef struct fg_segformer_io {
    fg_id input;   /* "pixel_values" (batch, num_channels, height, width) f32 */
    fg_id logits;  /* (batch, num_labels, h0, w0): stage 0's resolution, about height/4 x width/4,
                      as HF's logits (no upsampling to the input size) */
    fg_id labels;  /* with_loss: "labels" (batch * h0 * w0) i32, row-major (b, y, x); else FG_NONE */
    fg_id loss;    /* with_loss: mean per-pixel cross-entropy over the logits; else FG_NONE */
    fg_id stage[FG_SEGFORMER_STAGES]; /* the encoder's outputs after each stage's layer norm, as
                      tokens (batch, h_i * w_i, hidden[i]): HF's hidden_states flattened */
    int64_t h[FG_SEGFORMER_STAGES], w[FG_SEGFORMER_STAGES]; /* each stage's spatial size */
} fg_segformer_io;

/* Builds SegformerForSemanticSegmentation into the empty graph g for inputs (batch, channels,
 * height, width), with the parameter (and batch-norm state) names of HF's state_dict, e.g.
 * "segformer.encoder.patch_embeddings.0.proj.weight", "segformer.encoder.block.0.0.attention.self.
 * query.weight", "...attention.self.sr.weight", "...mlp.dwconv.dwconv.weight",
 * "decode_head.linear_fuse.weight", "decode_head.batch_norm.running_mean". with_loss adds the
 * labels input and the per-pixel cross-entropy (training at the logits' resolution). The logits
 * are marked as an output. Errors: FG_ERR_INVALID for a bad configuration; the graph's first
 * shape error (e.g. an input too small for a stage's spatial reduction) otherwise, prefixed with
 * "segformer". Build the graph with fg_graph_build afterwards (loss = io->loss or FG_NONE). */
fg_status fg_segformer_build(fg_graph *g, const fg_segformer_cfg *cfg, int64_t batch, int64_t height, int64_t width,
                             int with_loss, fg_segformer_io *io);

/* ---------------------------------------------------------------- ViT (DeiT-style) classifier */

/* Blocks a skip configuration (and a ToMe schedule) can name. */
#define FG_VIT_MAX_BLOCKS 64

/* A plain vision transformer (Dosovitskiy et al., ICLR 2021; DeiT, Touvron et al., ICML 2021, without
 * the distillation token): patch embedding (conv, kernel = stride = patch), a class token, a learned
 * position embedding, `depth` pre-norm blocks x += attn(ln(x)); x += mlp(ln(x)) (GELU), a final layer
 * norm and a linear head on the class token. Optionally a convolutional stem before the patch
 * embedding (Xiao et al., NeurIPS 2021): conv_stem layers of 3x3 stride-2 conv + batch norm + ReLU,
 * each halving the resolution, so the patch embedding's kernel is patch >> conv_stem. */
typedef struct fg_vit_cfg {
    int64_t patch;       /* patch size in input pixels; the input's height and width must be multiples */
    int64_t dim;         /* hidden size */
    int64_t depth;       /* blocks */
    int64_t heads;       /* dim must be a multiple */
    int64_t mlp_dim;     /* intermediate size */
    int64_t num_classes;
    int conv_stem;       /* 0: none; k: k stride-2 conv layers (patch must be a multiple of 2^k) */
    float ln_eps;        /* every layer norm: 1e-12, HF's ViTConfig default */
    float init_std;      /* class token and position embedding N(0, std^2): 0.02 */
    /* ToMe token merging (Bolya et al., ICLR 2023; without retraining, forward only): tome_r[i]
     * tokens merged in block i between its attention and its MLP (0: none), by bipartite soft
     * matching on the block's keys, the class token never merged; the blocks after a merge use
     * proportional attention (log of the token sizes added to the logits). Token counts are
     * shapes, so a graph is built for one schedule (the weights are the same: no parameters are
     * added); a graph with a merge cannot be built with a loss (FG_ERR_UNSUPPORTED). */
    uint8_t tome_r[FG_VIT_MAX_BLOCKS];
} fg_vit_cfg;

/* Presets: "vit-tiny-28" (patch 7, dim 64, depth 4, heads 4, mlp 128: 16 tokens of a 28x28 image,
 * for Fashion-MNIST), "vit-tiny-28-p4" (the same on patch 4: 49 tokens, more for ToMe to merge), "deit-tiny" (patch 16, 192, 12, 3, 768), "deit-small" (16, 384, 12, 6, 1536).
 * FG_ERR_INVALID naming the known ones. */
fg_status fg_vit_config(const char *preset, int64_t num_classes, fg_vit_cfg *out);

typedef struct fg_vit_io {
    fg_id input;   /* "pixel_values" (batch, channels, height, width) f32 */
    fg_id logits;  /* (batch, num_classes) */
    fg_id labels;  /* with_loss: "labels" (batch) i32; else FG_NONE */
    fg_id loss;    /* with_loss: mean cross-entropy; else FG_NONE */
    int64_t tokens; /* patches + 1 (the class token) */
} fg_vit_io;

/* Builds the classifier into the empty graph g with Hugging Face's ViTForImageClassification names:
 * "vit.embeddings.cls_token" (1, 1, dim), "vit.embeddings.position_embeddings" (1, tokens, dim),
 * "vit.embeddings.patch_embeddings.projection.weight", "vit.encoder.layer.<i>.layernorm_before.weight",
 * "...attention.attention.query.weight", "...attention.output.dense.weight", "...layernorm_after.*",
 * "...intermediate.dense.*", "...output.dense.*", "vit.layernorm.*", "classifier.*"; the stem (not in
 * HF's ViT) is "vit.embeddings.stem.<k>.conv.weight" and "...stem.<k>.batch_norm.*". The logits are
 * marked as an output. FG_ERR_INVALID for a bad configuration, FG_ERR_SHAPE when the input is not a
 * multiple of the patch, else the graph's first error prefixed with "vit". */
fg_status fg_vit_build(fg_graph *g, const fg_vit_cfg *cfg, int64_t batch, int64_t channels, int64_t height,
                       int64_t width, int with_loss, fg_vit_io *io);

/* ---------------------------------------------------------------- digit scenes (segmentation data) */

/* "Digit scenes" (issue 14): square canvases with several MNIST or Fashion-MNIST items pasted at
 * random positions, every pixel labelled with the class of the item it shows or background.
 * Deterministic from the seed. Items are drawn from a range of source images only, so train, val
 * and test scenes made from disjoint ranges (or from the test file) never share a source image. */
typedef struct fg_scenes_cfg {
    int64_t n;         /* scenes to make */
    int64_t size;      /* canvas height = width, >= the source images' (64 or more) */
    int items_min, items_max; /* items per scene, drawn uniformly in [min, max] */
    uint8_t threshold; /* a source pixel above it is the item's (labelled), else transparent */
    uint64_t seed;
    /* Augmentation, off at 0 (the scenes are then the same bytes as without these fields): each item
     * is scaled by a factor drawn uniformly in [1 - scale_jitter, 1 + scale_jitter] (0 <= jitter < 1)
     * and rotated by an angle drawn uniformly in [-rotate_deg, rotate_deg] degrees (0..180) about its
     * centre, resampled bilinearly; the item's pixels are then those whose resampled intensity
     * exceeds the threshold, and the transformed item must still fit in the canvas. */
    float scale_jitter, rotate_deg;
} fg_scenes_cfg;

typedef struct fg_scenes {
    int64_t n, size;
    int32_t n_classes;  /* source classes + 1: label 0 is background, source class c is c + 1 */
    float *images;      /* (n, 1, size, size) in [0, 1], owned */
    int32_t *labels;    /* (n, size, size), owned */
} fg_scenes;

/* Makes cfg->n scenes from source images [first, first + count) of `images` (an IDX u8 (N, h, w)
 * array) with `labels` (IDX u8 (N)) in [0, n_classes). Each item is pasted at a uniform position
 * that keeps it inside the canvas; later items cover earlier ones where their pixels exceed the
 * threshold (the canvas takes the item's intensity and label there). FG_ERR_INVALID for a bad range,
 * configuration or label; FG_ERR_SHAPE for mismatched arrays or a canvas smaller than an item (at
 * the largest scale and any angle, when augmenting). */
fg_status fg_vit_scenes_make(const fg_idx *images, const fg_idx *labels, int32_t n_classes, int64_t first, int64_t count,
                             const fg_scenes_cfg *cfg, fg_scenes *out);
void fg_vit_scenes_free(fg_scenes *s);
/* The labels at 1 / factor resolution (SegFormer's logits are at 1/4): out (n, size / factor,
 * size / factor) takes the label at the centre pixel (factor * y + factor / 2, factor * x + factor / 2)
 * of each cell. FG_ERR_INVALID unless factor >= 1 divides size. */
fg_status fg_vit_scenes_labels_at(const fg_scenes *s, int64_t factor, int32_t *out);

/* ---------------------------------------------------------------- skip knobs (dynamic inference) */

/* Which parts of a built ViT or SegFormer graph the executor skips (arXiv 2212.02687, "dynamic
 * inference without retraining"), set between forward calls, no rebuild: applied as bypasses of
 * the graph's nodes (fg_graph_set_bypass), so skipped work does not run. A zeroed struct (with
 * .tome the graph's own ToMe schedule, fg_vit_skip_tome_of, on a graph built with one) is every
 * part on (the plain forward, bit for bit). Blocks are numbered in execution order: the
 * ViT's layer i is block i; SegFormer's block j of stage s is sum(depths[0..s)) + j. */
typedef struct fg_vit_skip {
    uint8_t attn[FG_VIT_MAX_BLOCKS];   /* 1: block's attention branch skipped: x + attn(ln(x)) is x */
    uint8_t mlp[FG_VIT_MAX_BLOCKS];    /* 1: block's MLP / Mix-FFN branch skipped (both: the whole block) */
    uint8_t dwconv[FG_VIT_MAX_BLOCKS]; /* SegFormer, 1: Mix-FFN's depthwise 3x3 conv passes its input through */
    uint8_t heads[FG_VIT_MAX_BLOCKS];  /* attention heads kept, a prefix (0 = all): the others' output is
                                          zeros before the output projection (q, k, v compute the kept heads'
                                          columns only: src/graph/narrow.c) */
    uint8_t sr_pool[FG_VIT_MAX_BLOCKS]; /* SegFormer, 1: the spatial-reduction conv (sr > 1) replaced by
                                          average pooling over the same window (its layer norm kept) */
    uint8_t decoder[FG_SEGFORMER_STAGES]; /* SegFormer, 1: decoder stage i dropped: its projection
                                         contributes zeros to the fuse conv's concatenation */
    uint8_t tome[FG_VIT_MAX_BLOCKS];   /* ViT: tokens merged by ToMe in block b (fg_vit_cfg.tome_r). Token
                                          counts are shapes: fg_vit_skip_apply checks that the graph was
                                          built with this schedule (fg_vit_skip_tome_of) and fails otherwise */
} fg_vit_skip;

/* Blocks of a graph built by fg_vit_build or fg_segformer_build (found by their node names), and
 * whether it is a SegFormer. FG_ERR_INVALID when g holds neither. */
fg_status fg_vit_skip_blocks(const fg_graph *g, int64_t *n_blocks, int *is_segformer);
/* Applies k to g (replacing the previous configuration). FG_ERR_INVALID when k sets a block
 * beyond the graph's, dwconv / sr_pool / decoder knobs on a ViT, sr_pool on a block without
 * spatial reduction, or more heads than the block has. */
fg_status fg_vit_skip_apply(fg_graph *g, const fg_vit_skip *k);
/* The ToMe schedule a graph was built with (tome[b] = tokens merged in block b, 0 beyond the
 * graph's blocks): what fg_vit_skip.tome must equal for fg_vit_skip_apply on it. */
fg_status fg_vit_skip_tome_of(const fg_graph *g, uint8_t tome[FG_VIT_MAX_BLOCKS]);
/* Forward FLOPs (whole batch) of g under k: applies k, reads fg_graph_active_flops, and leaves k
 * applied. */
fg_status fg_vit_skip_flops(fg_graph *g, const fg_vit_skip *k, double *flops);

/* ---------------------------------------------------------------- profile table and governor */

/* One measured configuration: its knobs, its forward FLOPs per item, its measured latency per
 * item (seconds, on the machine it was profiled on) and its metric on validation data (accuracy
 * or mIoU: larger is better). */
typedef struct fg_vit_profile_entry {
    fg_vit_skip skip;
    double flops, seconds, metric;
} fg_vit_profile_entry;

typedef enum fg_vit_cost { FG_VIT_COST_FLOPS, FG_VIT_COST_SECONDS, FG_VIT_COST_COUNT } fg_vit_cost;

/* Marks on_front[i] = 1 when no other entry is at most as costly (cost) and at least as good
 * (metric) with one of the two strictly better: the Pareto front. Of entries equal in both, only
 * the first is marked. Returns its size. */
size_t fg_vit_pareto(const fg_vit_profile_entry *t, size_t n, fg_vit_cost cost, uint8_t *on_front);
/* The governor: the most accurate entry whose cost fits the budget (ties: the cheaper, then the
 * first; an entry of NaN cost never fits). FG_ERR_INVALID naming the cheapest entry's cost when
 * none fits, the table is empty or the budget is NaN. cost < FG_VIT_COST_COUNT (asserted). */
fg_status fg_vit_governor_pick(const fg_vit_profile_entry *t, size_t n, fg_vit_cost cost, double budget,
                               size_t *pick);

/* ---------------------------------------------------------------- profile tables read back; the run-time governor */

/* The text form of a skip configuration, as `frugal vit profile` writes it in its JSON: knobs
 * separated by commas, "attn<b>", "mlp<b>", "dwconv<b>", "srpool<b>", "heads<b>=<k>" (k >= 1 heads
 * kept), "tome<b>=<r>" (r >= 1 token pairs merged), "decoder<s>", or "all-on" for none.
 * fg_vit_skip_parse is strict: FG_ERR_FORMAT naming the offending knob for an unknown name, a block
 * >= FG_VIT_MAX_BLOCKS, a decoder stage >= 4, heads or tome out of 1..255, a knob given twice,
 * empty items or trailing text. */
fg_status fg_vit_skip_parse(const char *text, fg_vit_skip *out);
/* Writes k's text form into buf (always NUL-terminated when cap > 0) and returns the length it
 * needs, as snprintf does. */
size_t fg_vit_skip_format(const fg_vit_skip *k, char *buf, size_t cap);

/* A profile written by `frugal vit profile --json`, read back. */
typedef struct fg_vit_table {
    char model[FG_NAME_MAX], data[FG_NAME_MAX], metric[FG_NAME_MAX]; /* e.g. "vit-tiny-28", "fashion", "accuracy" */
    fg_vit_profile_entry *all;   /* "configurations": every measured one, in file order */
    size_t n_all;
    uint8_t *all_pareto;         /* their "pareto" flags (0 when absent) */
    fg_vit_profile_entry *front; /* "pareto": the front over FLOPs, in file order (falling FLOPs); taken
                                  * as given, so a hand-curated subset runs as written (fg_vit_pareto
                                  * recomputes a front from `all` when the file's is not wanted) */
    size_t n_front;
} fg_vit_table;

/* Parses a profile JSON text (what names it in messages). The root must be an object with strings
 * "model", "data", "metric" and arrays "configurations" and "pareto" (at least one entry each) of
 * objects with "skip" (the text form above), "flops" and "seconds" (finite, >= 0: per item) and
 * "metric" (finite); other fields are ignored, so later writers may add some. Anything else is
 * FG_ERR_FORMAT naming `what` and the field, e.g. "t.json: pareto[3].seconds: expected a finite
 * number >= 0, got a string"; FG_ERR_OOM when memory runs out. On failure *out is empty. */
fg_status fg_vit_table_parse(const void *text, size_t len, const char *what, fg_vit_table *out);
/* Reads and parses a file (FG_ERR_IO naming it when it cannot be read). */
fg_status fg_vit_table_load(const char *path, fg_vit_table *out);
void fg_vit_table_free(fg_vit_table *t);

/* The governor at run time, for budgets in seconds per inference. It starts from a table's
 * latencies (entry seconds, e.g. measured at batch 1 on this machine) and corrects them from the
 * times it is told after each inference, because latency drifts with other load on the cores:
 *
 *   predicted_i = seconds_i * c_i * drift
 *
 * Each measurement t of entry i gives the ratio r = t / predicted_i, clipped to [1/clip, clip] so
 * that one preempted frame cannot throw the estimates. The drift, shared by every entry, moves by
 * r^drift_weight, so entries not run lately follow the load too; entry i's own correction c_i
 * moves by entry_weight of what the drift leaves (in log space: exponentially weighted). The
 * corrections of the entries measured so far are kept at geometric mean 1 (their common part is
 * moved into the drift), so an entry run alone teaches the drift, not itself. The pick is the
 * most accurate entry (ties: the cheaper) with predicted_i * margin <= budget. The margin is a
 * stochastic controller of the deadline-miss rate itself: after a frame that missed its budget it
 * grows by exp(margin_step * (1 - q)), after a hit it shrinks by exp(-margin_step * q), q =
 * miss_target / 2, so that in equilibrium a fraction q of the frames miss (half the allowance:
 * headroom for the controller's own lag). Frames whose budget is below every prediction (nothing
 * could fit) leave it alone, and so do misses whose delay beyond their prediction alone exceeds the
 * budget (a preempted frame, which no choice would have saved). It starts at margin_init and never
 * goes below margin_min. */
typedef struct fg_vit_governor_cfg {
    double miss_target;   /* deadline misses allowed, as a fraction (0.01: meet 99 %) */
    double drift_weight;  /* weight of one measurement in the shared drift (0.1) */
    double entry_weight;  /* weight of one measurement in its entry's correction (0.03) */
    double clip;          /* measured / predicted ratios are clipped to [1/clip, clip] (2) */
    double margin_init;   /* starting margin (1.1) */
    double margin_min;    /* lowest margin (1.0) */
    double margin_step;   /* log-space step of the margin's controller (0.1) */
} fg_vit_governor_cfg;

typedef struct fg_vit_governor fg_vit_governor;

fg_vit_governor_cfg fg_vit_governor_defaults(void);
/* Copies the table (n entries with seconds > 0 and finite metrics). FG_ERR_INVALID naming the
 * entry or the setting that is out of range. */
fg_status fg_vit_governor_create(const fg_vit_profile_entry *t, size_t n, const fg_vit_governor_cfg *cfg,
                                 fg_vit_governor **out);
void fg_vit_governor_free(fg_vit_governor *g);
/* The entry to run for a budget (seconds). *fits = 0 when no entry's prediction with the margin
 * fits: then the entry with the smallest prediction. O(n) at worst, no allocation. */
size_t fg_vit_governor_choose(const fg_vit_governor *g, double budget, int *fits);
/* After running entry i: its measured seconds (and the frame's budget, counted for the hit rate).
 * FG_ERR_INVALID for an entry out of range, a time that is not finite and > 0, or a NaN budget. */
fg_status fg_vit_governor_observe(fg_vit_governor *g, size_t i, double seconds, double budget);
/* predicted_i (seconds, without the margin); i < the table's size (asserted). */
double fg_vit_governor_predict(const fg_vit_governor *g, size_t i);

typedef struct fg_vit_governor_stats {
    double drift, margin;  /* the current shared drift and margin */
    int64_t observed;      /* measurements told */
    int64_t missed;        /* of which longer than their budget */
} fg_vit_governor_stats;
void fg_vit_governor_get_stats(const fg_vit_governor *g, fg_vit_governor_stats *st);

/* ---------------------------------------------------------------- weights by name */

/* Loads every parameter and state tensor of the built graph g from a safetensors file by name
 * (Hugging Face checkpoints: state_dict names, F32). The file is checked against the graph first,
 * and nothing is written unless it fits: a tensor the graph needs but the file lacks, a tensor of
 * another dtype or shape, and a tensor in the file that the graph has no use for are FG_ERR_FORMAT
 * naming the file and the tensor (with both shapes when they differ). The one exception: entries
 * ending in ".num_batches_tracked" (PyTorch's batch-norm step counter, I64, unused in eval and by
 * momentum-based training) are accepted and ignored. FG_ERR_INVALID when g is not built yet. */
fg_status fg_vit_weights_load(fg_graph *g, const char *path);
/* Writes the graph's parameters and states under their names (HF's for SegFormer), atomically. */
fg_status fg_vit_weights_save(fg_graph *g, const char *path);

#ifdef __cplusplus
}
#endif
#endif
