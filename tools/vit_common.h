/* Shared by `frugal vit` (tools/cmd_vit.c), `frugal vit run` (tools/cmd_vit_run.c) and the demo's
 * vit part (tools/demo_vit.c): data splits, models by name, the metric, the weights' metadata. */
#ifndef FRUGAL_VIT_COMMON_H
#define FRUGAL_VIT_COMMON_H

#include "cli.h"

/* Digit scenes: canvases of VIT_SCENE_SIZE pixels with 2..4 MNIST digits (the data);
 * train, validation and test come from disjoint ranges of the source images. */
#define VIT_SCENE_SIZE 64
#define VIT_SCENE_FACTOR 4 /* SegFormer's logits are at 1/4 resolution */

/* One split as the loop sees it: images (n, c, h, w) f32 and either one label per image
 * (classification) or (n, lh, lw) labels per pixel at the logits' resolution. */
typedef struct vit_split {
    int64_t n, c, h, w;
    int64_t lh, lw;    /* per-pixel label grid; 0 for classification */
    int32_t n_classes;
    float *images;     /* not owned for classification (views into the data split) */
    int32_t *labels;
    int owned;
} vit_split;

typedef struct vit_data {
    vit_split train, val, test;
    fg_data_split cls; /* classification storage */
    int have_cls;
    int seg;           /* 1: scenes (segmentation) */
    /* scenes: the MNIST source and how the training scenes were made, for vit_data_refresh */
    fg_idx src_img, src_lab;
    int64_t src_count;
    struct vit_scene_opts {
        float scale_jitter, rotate_deg; /* the training scenes' augmentation (fg_scenes_cfg), 0 = none */
        int items;                      /* items per scene in every split: 0 = 2 to 4, else exactly this */
    } scene;
    uint64_t seed;
} vit_data;
typedef struct vit_scene_opts vit_scene_opts;

typedef struct vit_model {
    char name[FG_NAME_MAX];
    int seg;
    fg_graph *g;
    fg_id input, logits, labels, loss;
    int64_t batch;
} vit_model;

/* Accumulates one batch's predictions: correct counts (classification) or, per class, the
 * intersection and union counts of mIoU. logits (B, K) or (B, K, lh, lw); only `rows` count. */
typedef struct vit_score {
    int64_t correct, total;
    int64_t inter[64], uni[64];
    int64_t fg_inter, fg_uni; /* segmentation: any item (label > 0) against background, class aside */
    int32_t k;
} vit_score;

#define META_MODEL "frugal.vit.model"
#define META_DATA "frugal.vit.data"
#define META_INPUT "frugal.vit.input"
#define META_CLASSES "frugal.vit.classes"
#define META_SEED "frugal.vit.seed" /* the scenes' seed: eval regenerates the same test scenes */

typedef struct vit_meta {
    char model[FG_NAME_MAX], data[FG_NAME_MAX];
    int64_t c, h, w, classes;
    uint64_t seed; /* 1 when not recorded */
} vit_meta;

size_t vit_split_labels_per_item(const vit_split *s); /* 1, or lh * lw for segmentation */
size_t vit_split_image_values(const vit_split *s);    /* c * h * w */
/* Loads --data: "fashion" / "mnist" (the validation split is the last n_val training images,
 * default 5000) or "scenes" (made from MNIST digits: train from the first 80 %, validation the
 * next 10 %, test the last 10 % of the source images). Limits of 0 keep everything (scenes: 4000,
 * 500, 500). scene (NULL for the defaults) shapes the scenes; the other data sets ignore it. */
fg_status vit_data_load(const char *name, const char *dir, int64_t n_train, int64_t n_val, int64_t n_test,
                        uint64_t seed, const vit_scene_opts *scene, vit_data *d);
void vit_data_free(vit_data *d);
/* Scenes only: replaces the training scenes with as many new ones (the same source digits, new
 * placements and augmentation draws) for epoch `epoch` >= 1, from the seed seed + 1000003 * epoch
 * (epoch 0's are vit_data_load's, seed itself; validation and test use seed + 1 and + 2). */
fg_status vit_data_refresh(vit_data *d, int epoch);
/* Builds --model ("vit-tiny-28", "deit-tiny", "deit-small", "segformer-b0|b1|b2") for inputs
 * (batch, c, h, w) and `classes` labels, with the loss (and gradients when train). */
fg_status vit_model_build(const char *name, int64_t batch, int64_t c, int64_t h, int64_t w, int64_t classes,
                          int train, fg_pool *pool, vit_model *m);
/* The same with a ToMe schedule (tome[b] tokens merged in block b; NULL: none): ViTs only, not
 * for training (the merge is forward only). */
fg_status vit_model_build_tome(const char *name, int64_t batch, int64_t c, int64_t h, int64_t w, int64_t classes,
                               int train, const uint8_t *tome, fg_pool *pool, vit_model *m);
/* 1 when the model's kind fits the data's: a classifier on fashion/mnist, a SegFormer on scenes. */
int vit_model_fits_data(const char *model, const char *data);
/* Copies items idx[0..rows) of s into the batch buffers, padding up to the batch with item idx[0]. */
void vit_gather(const vit_split *s, const int64_t *idx, int64_t rows, int64_t batch, float *x, int32_t *y);
void vit_score_batch(vit_score *sc, const vit_split *s, const float *logits, const int32_t *y, int64_t rows);
/* Accuracy, or for segmentation the mean over classes present (union > 0) of the IoU. */
double vit_score_value(const vit_score *sc, int seg);
/* Segmentation: class j's IoU, or -1 where the class occurs in neither truth nor prediction; and
 * the IoU of "some item" against background (where the model finds items, whatever their class). */
double vit_score_class_iou(const vit_score *sc, int32_t j);
double vit_score_item_iou(const vit_score *sc);
/* The metric of the model on split s in eval mode: accuracy or mIoU. */
fg_status vit_evaluate(vit_model *m, const vit_split *s, double *out);
/* The same, the whole score (per-class counts) into *sc (complete only when it returns FG_OK). */
fg_status vit_evaluate_score(vit_model *m, const vit_split *s, vit_score *sc);
/* Saves the weights with the metadata vit_read_meta reads back. */
fg_status vit_save_weights(vit_model *m, const char *path, const char *data, const vit_split *s, uint64_t seed);
fg_status vit_read_meta(const char *path, vit_meta *out);

/* ---------------------------------------------------------------- training (vit train, the demo) */

/* One epoch of training as vit_train_loop reports it. */
typedef struct vit_epoch {
    double loss, train_metric, val_metric, seconds;
} vit_epoch;

/* The settings of `frugal vit train` (those the loop reads: epochs, batch, lr, weight_decay,
 * warmup in epochs, seed, quiet). */
typedef struct vit_train_args {
    const char *model, *data, *data_dir, *json, *plot, *save;
    const char *init; /* start from these weights (vit train --save of the same model), not from the seed */
    int epochs, threads, quiet;
    int64_t batch, n_train, n_val, n_test;
    double lr, weight_decay, warmup;
    double scene_scale, scene_rotate; /* training scenes' augmentation (fg_scenes_cfg), 0 = none */
    int scene_refresh;                /* new training scenes every epoch (vit_data_refresh) */
    uint64_t seed;
} vit_train_args;

/* Initializes m's weights from a->seed (or loads a->init) and trains it on d->train with AdamW (linear warm-up, then
 * cosine decay to 0), printing one line per epoch with the validation metric (a progress line
 * unless a->quiet); hist[0..epochs) and *n_hist get the epochs, *test_metric the metric on d->test.
 * m must be built for training at batch a->batch. */
fg_status vit_train_loop(const vit_train_args *a, vit_model *m, vit_data *d, vit_epoch *hist, int *n_hist,
                         double *test_metric);

/* ---------------------------------------------------------------- running under a budget (tools/cmd_vit_run.c) */

/* `frugal vit run` (dispatched by cmd_vit). */
int cmd_vit_run(int argc, char **argv);

/* Measures every entry's latency at batch 1 on this machine now: `frames` inferences each, round
 * robin over the entries as vit_run_stream runs them (each right after a switch), on the first
 * items of s after one discarded round, the median into t[i].seconds (wall time, or
 * the thread's CPU time when cpu_clock). *apply_s is the
 * mean time of one fg_vit_skip_apply (switching configurations). m must be built for batch 1. */
fg_status vit_run_calibrate(vit_model *m, const vit_split *s, fg_vit_profile_entry *t, size_t n, int frames,
                            int cpu_clock, double *apply_s);

/* The entry with no knob off (the full model), else the one with the most FLOPs. */
size_t vit_run_full_entry(const fg_vit_profile_entry *t, size_t n);

/* A built-in budget trace: every `seg` frames the budget jumps to lo + (hi - lo) * frac(k * 0.618...)
 * times full_s (k the segment: golden-ratio steps cover [lo, hi] evenly, deterministically). */
void vit_run_swing(double lo, double hi, double full_s, int64_t seg, int64_t frames, double *out);

/* One way of running the stream: the governor, or a static configuration. */
typedef struct vit_run_stats {
    int64_t hits;        /* frames within their budget */
    int64_t preempted;   /* frames over 5x their budget: on a shared machine, descheduled (no
                            configuration would have met them) */
    double metric;       /* accuracy or mIoU over the frames */
    double mean_s, p99_s; /* latency per frame */
} vit_run_stats;

typedef struct vit_run_result {
    int64_t frames;
    size_t n;              /* table entries (static configurations) */
    vit_run_stats gov;
    vit_run_stats *stat;   /* [n] */
    double *budget;        /* [frames] seconds */
    double *gov_s;         /* [frames] the governor's latency per frame (pick + switch + inference) */
    double *full_s;        /* [frames] the full model's latency per frame */
    size_t *pick;          /* [frames] the governor's entry per frame */
    int64_t no_fit;        /* frames where no entry's prediction fitted (the cheapest ran) */
    double pick_s, apply_s, observe_s, infer_s; /* the governor's mean cost per frame of each part */
    fg_vit_governor_stats gs;
} vit_run_result;

/* Runs frames 0..frames-1 (frame f is item f mod s->n of s, batch 1) under budget[f] seconds:
 * per frame the governor (pick, switch, inference, observe) and then every static entry, so
 * that all see the same load at the same time; latencies include copying the input in and the
 * logits out, on the wall clock or (cpu_clock, one thread) the thread's CPU time. t holds the
 * calibrated latencies; miss_target is the governor's. A progress line unless quiet. */
fg_status vit_run_stream(vit_model *m, const vit_split *s, const fg_vit_profile_entry *t, size_t n,
                         const double *budget, int64_t frames, double miss_target, int cpu_clock, int quiet,
                         vit_run_result *r);
void vit_run_result_free(vit_run_result *r);
/* The exit code of a failed vit_train_loop or vit_run_stream: CLI_EXIT_INTERRUPTED after its
 * "interrupted" message when SIGINT or SIGTERM stopped it (130 as train, lm and rl exit), else
 * cli_fail(what, s). */
int vit_loop_fail(const char *what, fg_status s);
/* Budget and the governor's latency per frame (ms, left axis), the full model's latency, and the
 * chosen entry's profiled metric (right axis). 1, or 0 with the reason in why. */
int vit_run_plot(const char *png, const char *title, const char *metric, const fg_vit_profile_entry *t,
                 const vit_run_result *r, char *why, size_t why_len);

#endif
