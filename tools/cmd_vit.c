/* `frugal vit`: the vision transformers of issue 14 (include/frugal/vit.h) from the command line.
 * `vit train` trains the ViT classifier on Fashion-MNIST / MNIST or a SegFormer on digit scenes
 * with the graph's executor and optimizers (AdamW, a short linear warm-up then cosine decay),
 * reports per-epoch loss and the validation metric (accuracy, or mIoU for scenes), the final test
 * metric, and saves the weights as safetensors under Hugging Face's names (they load back through
 * fg_vit_weights_load); the model, data set and input shape go into the file's metadata so that
 * `vit eval` can rebuild the network from the file alone.
 *
 * Why not fg_trainer: the trainer builds zoo models only (src/graph cannot depend on src/vit),
 * and segmentation needs per-pixel labels and mIoU. The loop here is the plain one (shuffle,
 * forward, backward, optimizer step); evaluation (vit_evaluate) scores classes and masks alike. The data,
 * models, metric and metadata shared with `vit run` and the demo are in tools/vit_common.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "plot.h"
#include "vit_common.h"

/* ---------------------------------------------------------------- plot */

static int plot_curve(const char *png, const char *model, const char *data, const char *metric, const vit_epoch *h,
                      int n, char *why, size_t why_len) {
    cli_gnuplot gp;
    if (!cli_gnuplot_open(&gp, png, 900, 540, why, why_len)) return 0;
    FILE *f = gp.f;
    char title[256];
    snprintf(title, sizeof title, "%s on %s: training loss and validation %s", model, data, metric);
    fprintf(f, "set title ");
    cli_gnuplot_str(f, title);
    fprintf(f, "\nset xlabel 'epoch'\nset ylabel 'training loss'\nset y2label ");
    cli_gnuplot_str(f, metric);
    fprintf(f, "\nset ytics nomirror\nset y2tics\nset grid\nset key center right\n");
    fprintf(f, "set xrange [0.5:%d.5]\nset xtics 1\n", n);
    fprintf(f, "plot '-' using 1:2 with linespoints title 'loss' axes x1y1, "
               "'-' using 1:2 with linespoints title 'validation' axes x1y2\n");
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < n; i++) fprintf(f, "%d %.6f\n", i + 1, k == 0 ? h[i].loss : h[i].val_metric);
        fprintf(f, "e\n");
    }
    return cli_gnuplot_close(&gp, why, why_len);
}

/* ---------------------------------------------------------------- train */

static int vit_train(int argc, char **argv) {
    vit_train_args a = {0};
    a.epochs = 8;
    a.batch = 128;
    a.lr = 1e-3;
    a.weight_decay = 0.05;
    a.warmup = 0.25;
    a.seed = 1;
    cli_opt opts[] = {
        {"model", CLI_STR, &a.model, "NAME", "vit-tiny-28, vit-tiny-28-p4 (fashion, mnist), segformer-b0|b1|b2 (scenes) (required)", 0},
        {"data", CLI_STR, &a.data, "NAME", "fashion or mnist (classifiers), scenes (SegFormer; digit scenes) (required)",
         0},
        {"data-dir", CLI_STR, &a.data_dir, "DIR", "data directory (default $FRUGAL_DATA or ~/.cache/frugal)", 0},
        {"epochs", CLI_INT, &a.epochs, "N", "epochs (default 8)", 0},
        {"batch", CLI_I64, &a.batch, "B", "batch size (default 128)", 0},
        {"lr", CLI_FLOAT, &a.lr, "X", "AdamW peak learning rate (default 1e-3; warm-up then cosine decay)", 0},
        {"weight-decay", CLI_FLOAT, &a.weight_decay, "X", "AdamW decoupled weight decay (default 0.05)", 0},
        {"warmup", CLI_FLOAT, &a.warmup, "EPOCHS", "linear warm-up length in epochs (default 0.25)", 0},
        {"seed", CLI_U64, &a.seed, "S", "seed of the weights, the order, dropout and the scenes (default 1)", 0},
        {"scene-scale", CLI_FLOAT, &a.scene_scale, "J",
         "scenes: scale each training digit by a factor drawn in [1-J, 1+J] (default 0, none)", 0},
        {"scene-rotate", CLI_FLOAT, &a.scene_rotate, "DEG",
         "scenes: rotate each training digit by an angle drawn in [-DEG, DEG] degrees (default 0)", 0},
        {"scene-refresh", CLI_FLAG, &a.scene_refresh, NULL,
         "scenes: new training scenes every epoch (same digits, new placements and draws)", 0},
        {"train-images", CLI_I64, &a.n_train, "N", "use only the first N training items (default all; scenes 4000)", 0},
        {"val-images", CLI_I64, &a.n_val, "N", "validation items (default 5000 held out of train; scenes 500)", 0},
        {"test-images", CLI_I64, &a.n_test, "N", "score only the first N test items (default all; scenes 500)", 0},
        {"threads", CLI_INT, &a.threads, "T", "threads (default 0 = all cores)", 0},
        {"json", CLI_STR, &a.json, "FILE", "write the run (per-epoch loss and metrics, test metric) as JSON", 0},
        {"plot", CLI_STR, &a.plot, "FILE.png", "plot loss and the validation metric per epoch (gnuplot)", 0},
        {"save", CLI_STR, &a.save, "FILE", "write the weights as safetensors under HF's names (required)", 0},
        {"init", CLI_STR, &a.init, "FILE", "start from these weights (vit train --save of the same model and data) "
                                          "with a fresh optimizer and schedule: fine-tuning, a longer run", 0},
        {"quiet", CLI_FLAG, &a.quiet, NULL, "no progress line", 0},
        {NULL, CLI_FLAG, NULL, NULL, NULL, 0},
    };
    cli_cmd cmd = {"vit train", "frugal vit train --model NAME --data NAME --save FILE [options]",
                   "Trains a ViT classifier (fashion, mnist) or a SegFormer (scenes: 64x64 canvases of 2-4 MNIST\n"
                   "digits, 11 classes with background) with AdamW, prints per-epoch loss and the validation\n"
                   "accuracy (mIoU for scenes: the mean over classes of IoU), the test metric, and saves the\n"
                   "weights (they load by name through fg_vit_weights_load).",
                   opts, 0, 0, NULL};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc != CLI_CONTINUE) return rc;
    if (!a.model) return cli_usage_error(&cmd, "vit train: --model NAME is required");
    if (!a.data) return cli_usage_error(&cmd, "vit train: --data NAME is required (fashion, mnist or scenes)");
    if (!a.save) return cli_usage_error(&cmd, "vit train: --save FILE is required");
    if (strcmp(a.data, "fashion") && strcmp(a.data, "mnist") && strcmp(a.data, "scenes"))
        return cli_usage_error(&cmd, "vit train: unknown --data '%s' (fashion, mnist or scenes)", a.data);
    if (strncmp(a.model, "deit-", 5) == 0)
        return cli_usage_error(&cmd, "vit train: --model %s is a 224x224 DeiT preset (patch 16), which no data set "
                               "here fits (fashion and mnist are 28x28): train vit-tiny-28 or vit-tiny-28-p4 (the DeiT "
                               "presets serve fg_vit_build and bench/vit_latency)", a.model);
    if (!vit_model_fits_data(a.model, a.data))
        return cli_usage_error(&cmd, "vit train: --model %s does not fit --data %s (segformer-* trains on scenes, "
                                     "the ViT classifiers on fashion or mnist)", a.model, a.data);
    if (a.epochs < 1) return cli_usage_error(&cmd, "vit train: --epochs must be >= 1");
    if (a.batch < 1) return cli_usage_error(&cmd, "vit train: --batch must be > 0");
    if (!(a.lr > 0) || !isfinite(a.lr)) return cli_usage_error(&cmd, "vit train: --lr must be > 0");
    if (!(a.weight_decay >= 0)) return cli_usage_error(&cmd, "vit train: --weight-decay must be >= 0");
    if (!(a.warmup >= 0)) return cli_usage_error(&cmd, "vit train: --warmup must be >= 0");
    if (a.warmup > a.epochs)
        return cli_usage_error(&cmd, "vit train: --warmup %g is longer than the run (--epochs %d): the rate would "
                               "never reach --lr", a.warmup, a.epochs);
    if (a.threads < 0) return cli_usage_error(&cmd, "vit train: --threads must be >= 0");
    if (a.n_train < 0 || a.n_val < 0 || a.n_test < 0)
        return cli_usage_error(&cmd, "vit train: --train-images, --val-images and --test-images must be >= 0");
    if (!(a.scene_scale >= 0 && a.scene_scale < 1))
        return cli_usage_error(&cmd, "vit train: --scene-scale must be in [0, 1) (got %g)", a.scene_scale);
    if (!(a.scene_rotate >= 0 && a.scene_rotate <= 180))
        return cli_usage_error(&cmd, "vit train: --scene-rotate must be in [0, 180] degrees (got %g)", a.scene_rotate);
    if ((a.scene_scale > 0 || a.scene_rotate > 0 || a.scene_refresh) && strcmp(a.data, "scenes") != 0)
        return cli_usage_error(&cmd, "vit train: --scene-scale, --scene-rotate and --scene-refresh apply to --data "
                                     "scenes only");
    if (a.plot) {
        int prc = cli_plot_option_check(&cmd, a.plot);
        if (prc != CLI_CONTINUE) return prc;
    }
    if (a.init) {
        vit_meta im;
        fg_status ms = vit_read_meta(a.init, &im);
        if (ms != FG_OK) return cli_fail("--init", ms);
        if (strcmp(im.model, a.model) || strcmp(im.data, a.data))
            return cli_usage_error(&cmd, "vit train: --init %s holds %s trained on %s, expected --model %s on --data %s",
                                   a.init, im.model, im.data, a.model, a.data);
    }
    fg_threads_set(a.threads);

    vit_data d;
    const vit_scene_opts scene = {(float)a.scene_scale, (float)a.scene_rotate, 0};
    fg_status s = vit_data_load(a.data, a.data_dir, a.n_train, a.n_val, a.n_test, a.seed, &scene, &d);
    if (s != FG_OK) return cli_fail("loading data", s);
    fg_pool *pool = NULL;
    vit_model m = {0};
    rc = CLI_EXIT_OK;
    s = fg_pool_create(&pool, 0);
    if (s != FG_OK) rc = cli_fail("device pool", s);
    if (rc == CLI_EXIT_OK && d.train.n_classes > 64) /* vit_score's per-class counts */
        rc = cli_fail("loading data", fg_fail(FG_ERR_UNSUPPORTED, "%s has %d classes, at most 64 are scored", a.data,
                                              (int)d.train.n_classes));
    if (rc == CLI_EXIT_OK) {
        s = vit_model_build(a.model, a.batch, d.train.c, d.train.h, d.train.w, d.train.n_classes, 1, pool, &m);
        if (s != FG_OK) rc = cli_fail("building the model", s);
    }
    vit_epoch *hist = calloc((size_t)a.epochs, sizeof *hist);
    int n_hist = 0;
    double test_metric = 0.0, t0 = fg_time_now();
    const char *metric = d.seg ? "mIoU" : "accuracy";
    if (rc == CLI_EXIT_OK && !hist) rc = cli_fail("train", fg_fail(FG_ERR_OOM, "out of host memory"));
    if (rc == CLI_EXIT_OK) {
        fg_graph_info gi;
        fg_graph_get_info(m.g, &gi);
        fg_log(FG_LOG_INFO, "%s: %lld parameters, %.3f GFLOP forward per image; %lld train, %lld val, %lld test items",
               a.model, (long long)gi.n_params, gi.flops_fwd / (double)a.batch / 1e9, (long long)d.train.n,
               (long long)d.val.n, (long long)d.test.n);
        cli_sigint_install();
        s = vit_train_loop(&a, &m, &d, hist, &n_hist, &test_metric);
        cli_sigint_restore();
        if (s != FG_OK) rc = vit_loop_fail("training", s);
    }
    const double seconds = fg_time_now() - t0;
    if (rc == CLI_EXIT_OK) {
        s = vit_save_weights(&m, a.save, a.data, &d.train, a.seed);
        if (s != FG_OK) rc = cli_fail("--save", s);
    }
    if (rc == CLI_EXIT_OK && a.json) {
        cli_json j;
        s = cli_json_open(&j, a.json);
        if (s == FG_OK) {
            fg_graph_info gi;
            fg_graph_get_info(m.g, &gi);
            cli_json_obj_begin(&j, NULL);
            cli_json_str(&j, "model", a.model);
            cli_json_str(&j, "data", a.data);
            cli_json_str(&j, "metric", metric);
            cli_json_int(&j, "parameters", (long long)gi.n_params);
            cli_json_num(&j, "flops_per_image", gi.flops_fwd / (double)a.batch);
            cli_json_int(&j, "epochs", a.epochs);
            cli_json_int(&j, "batch", (long long)a.batch);
            cli_json_num(&j, "lr", a.lr);
            cli_json_num(&j, "weight_decay", a.weight_decay);
            cli_json_int(&j, "seed", (long long)a.seed);
            if (d.seg) {
                cli_json_num(&j, "scene_scale", a.scene_scale);
                cli_json_num(&j, "scene_rotate", a.scene_rotate);
                cli_json_int(&j, "scene_refresh", a.scene_refresh);
            }
            cli_json_int(&j, "train_items", (long long)d.train.n);
            cli_json_int(&j, "val_items", (long long)d.val.n);
            cli_json_int(&j, "test_items", (long long)d.test.n);
            cli_json_arr_begin(&j, "history");
            for (int i = 0; i < n_hist; i++) {
                cli_json_obj_begin(&j, NULL);
                cli_json_int(&j, "epoch", i + 1);
                cli_json_num(&j, "loss", hist[i].loss);
                cli_json_num(&j, "train_metric", hist[i].train_metric);
                cli_json_num(&j, "val_metric", hist[i].val_metric);
                cli_json_num(&j, "seconds", hist[i].seconds);
                cli_json_obj_end(&j);
            }
            cli_json_arr_end(&j);
            cli_json_num(&j, "test_metric", test_metric);
            cli_json_num(&j, "seconds", seconds);
            cli_json_obj_end(&j);
            s = cli_json_close(&j);
        }
        if (s != FG_OK) rc = cli_fail("--json", s);
    }
    if (rc == CLI_EXIT_OK && a.plot) {
        char why[512];
        if (!plot_curve(a.plot, a.model, a.data, metric, hist, n_hist, why, sizeof why)) {
            fprintf(stderr, "frugal: --plot: %s\n", why);
            rc = CLI_EXIT_FAIL;
        }
    }
    if (rc == CLI_EXIT_OK) printf("test %s: %.4f\n", metric, test_metric);
    free(hist);
    fg_graph_free(m.g);
    fg_pool_destroy(pool);
    vit_data_free(&d);
    return rc;
}

/* ---------------------------------------------------------------- eval */

static int vit_eval(int argc, char **argv) {
    const char *file = NULL, *data = NULL, *data_dir = NULL, *json = NULL;
    int64_t batch = 64, n_test = 0;
    int threads = 0, scene_items = 0;
    uint64_t seed = 1;
    cli_opt opts[] = {
        {"model", CLI_STR, &file, "FILE", "weights written by frugal vit train --save (required)", 0},
        {"data", CLI_STR, &data, "NAME", "fashion, mnist or scenes (default: the one recorded in FILE)", 0},
        {"data-dir", CLI_STR, &data_dir, "DIR", "data directory (default $FRUGAL_DATA or ~/.cache/frugal)", 0},
        {"batch", CLI_I64, &batch, "B", "evaluation batch size (default 64)", 0},
        {"test-images", CLI_I64, &n_test, "N", "score only the first N test items (default all; scenes 500)", 0},
        {"seed", CLI_U64, &seed, "S", "seed of the scenes (default: the one recorded in FILE, as vit train made them)", 0},
        {"scene-items", CLI_INT, &scene_items, "N",
         "scenes: exactly N digits on every test scene (default 2 to 4, as vit train made them)", 0},
        {"threads", CLI_INT, &threads, "T", "threads (default 0 = all cores)", 0},
        {"json", CLI_STR, &json, "FILE",
         "write {model, data, metric, test_metric, test_items} as JSON (scenes: class_iou, item_iou too)", 0},
        {NULL, CLI_FLAG, NULL, NULL, NULL, 0},
    };
    cli_cmd cmd = {"vit eval", "frugal vit eval --model FILE [--data NAME] [options]",
                   "Rebuilds the network recorded in FILE's metadata, loads its weights by name\n"
                   "(fg_vit_weights_load) and prints 'test accuracy: 0.xxxx' (or 'test mIoU: ...' for scenes, then\n"
                   "every class's IoU and the item IoU: any digit against background, class aside).",
                   opts, 0, 0, NULL};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc != CLI_CONTINUE) return rc;
    if (!file) return cli_usage_error(&cmd, "vit eval: --model FILE is required");
    if (batch < 1) return cli_usage_error(&cmd, "vit eval: --batch must be > 0");
    if (n_test < 0) return cli_usage_error(&cmd, "vit eval: --test-images must be >= 0");
    if (threads < 0) return cli_usage_error(&cmd, "vit eval: --threads must be >= 0");
    if (cli_find(opts, "scene-items")->set && (scene_items < 1 || scene_items > 8))
        return cli_usage_error(&cmd, "vit eval: --scene-items must be 1 to 8 (got %d)", scene_items);
    vit_meta meta;
    fg_status s = vit_read_meta(file, &meta);
    if (s != FG_OK) return cli_fail("--model", s);
    if (!data) data = meta.data;
    if (!cli_find(opts, "seed")->set) seed = meta.seed;
    if (strcmp(data, "fashion") && strcmp(data, "mnist") && strcmp(data, "scenes"))
        return cli_usage_error(&cmd, "vit eval: unknown --data '%s' (fashion, mnist or scenes)", data);
    if (!vit_model_fits_data(meta.model, data))
        return cli_usage_error(&cmd, "vit eval: %s holds %s, which does not fit --data %s", file, meta.model, data);
    if (scene_items && strcmp(data, "scenes") != 0)
        return cli_usage_error(&cmd, "vit eval: --scene-items applies to --data scenes only");
    fg_threads_set(threads);
    vit_data d;
    const vit_scene_opts scene = {0, 0, scene_items};
    s = vit_data_load(data, data_dir, 1, 1, n_test, seed, &scene, &d);
    if (s != FG_OK) return cli_fail("loading data", s);
    batch = cli_eval_batch("vit eval", batch, d.test.n, "items");
    fg_pool *pool = NULL;
    vit_model m = {0};
    double metric = 0.0;
    vit_score score;
    memset(&score, 0, sizeof score);
    rc = CLI_EXIT_OK;
    s = fg_pool_create(&pool, 0);
    if (s != FG_OK) rc = cli_fail("device pool", s);
    if (rc == CLI_EXIT_OK) {
        s = vit_model_build(meta.model, batch, meta.c, meta.h, meta.w, meta.classes, 0, pool, &m);
        if (s != FG_OK) rc = cli_fail("building the model", s);
    }
    if (rc == CLI_EXIT_OK) {
        s = fg_vit_weights_load(m.g, file);
        if (s != FG_OK) rc = cli_fail("--model", s);
    }
    if (rc == CLI_EXIT_OK) {
        s = vit_evaluate_score(&m, &d.test, &score);
        if (s != FG_OK) rc = cli_fail("evaluating", s);
        metric = vit_score_value(&score, d.seg);
    }
    const char *mname = d.seg ? "mIoU" : "accuracy";
    if (rc == CLI_EXIT_OK && json) {
        cli_json j;
        s = cli_json_open(&j, json);
        if (s == FG_OK) {
            cli_json_obj_begin(&j, NULL);
            cli_json_str(&j, "model", meta.model);
            cli_json_str(&j, "data", data);
            cli_json_str(&j, "metric", mname);
            cli_json_num(&j, "test_metric", metric);
            cli_json_int(&j, "test_items", (long long)d.test.n);
            if (d.seg) {
                cli_json_arr_begin(&j, "class_iou"); /* per label (0 background), null where absent */
                for (int32_t c = 0; c < score.k; c++) {
                    const double v = vit_score_class_iou(&score, c);
                    cli_json_num(&j, NULL, v >= 0 ? v : NAN);
                }
                cli_json_arr_end(&j);
                cli_json_num(&j, "item_iou", vit_score_item_iou(&score));
            }
            cli_json_obj_end(&j);
            s = cli_json_close(&j);
        }
        if (s != FG_OK) rc = cli_fail("--json", s);
    }
    if (rc == CLI_EXIT_OK) printf("test %s: %.4f\n", mname, metric);
    if (rc == CLI_EXIT_OK && d.seg) {
        printf("per class IoU (background, then digits 0-9):");
        for (int32_t c = 0; c < score.k; c++) {
            const double v = vit_score_class_iou(&score, c);
            if (v >= 0) printf(" %.3f", v);
            else printf(" -");
        }
        printf("\nitem IoU (any digit against background, class aside): %.4f\n", vit_score_item_iou(&score));
    }
    fg_graph_free(m.g);
    fg_pool_destroy(pool);
    vit_data_free(&d);
    return rc;
}

/* ---------------------------------------------------------------- profile */

/* Metric against MFLOP per item: every measured configuration as a point, the Pareto front
 * (order[0..nf), by falling FLOPs) as a line. 1 on success, else 0 with the reason in why. */
static int plot_profile(const char *png, const char *model, const char *data, const char *metric,
                        const fg_vit_profile_entry *t, size_t n, const size_t *order, size_t nf, char *why,
                        size_t why_len) {
    cli_gnuplot gp;
    if (!cli_gnuplot_open(&gp, png, 900, 540, why, why_len)) return 0;
    FILE *f = gp.f;
    char title[256];
    snprintf(title, sizeof title, "%s on %s: validation %s against compute (skip configurations)", model, data, metric);
    fprintf(f, "set title ");
    cli_gnuplot_str(f, title);
    fprintf(f, "\nset xlabel 'MFLOP per item'\nset ylabel ");
    cli_gnuplot_str(f, metric);
    fprintf(f, "\nset grid\nset key bottom right\n");
    fprintf(f, "plot '-' using 1:2 with points pt 7 ps 0.6 title 'measured', "
               "'-' using 1:2 with linespoints lw 2 title 'Pareto front'\n");
    for (size_t i = 0; i < n; i++) fprintf(f, "%.6f %.6f\n", t[i].flops / 1e6, t[i].metric);
    fprintf(f, "e\n");
    for (size_t k = 0; k < nf; k++) fprintf(f, "%.6f %.6f\n", t[order[k]].flops / 1e6, t[order[k]].metric);
    fprintf(f, "e\n");
    return cli_gnuplot_close(&gp, why, why_len);
}

/* One knob of the greedy search: kind and block (or decoder stage). */
typedef enum knob_kind {
    KNOB_ATTN, KNOB_MLP, KNOB_DWCONV, KNOB_SRPOOL, KNOB_HEADS, KNOB_DECODER, KNOB_TOME, KNOB_KIND_COUNT
} knob_kind;
typedef struct knob {
    knob_kind kind;
    int index;
    int64_t heads; /* KNOB_HEADS: heads kept (half of the block's, rounded up); KNOB_TOME: tokens merged */
} knob;

static void knob_set(fg_vit_skip *k, const knob *kn) {
    switch (kn->kind) {
    case KNOB_ATTN: k->attn[kn->index] = 1; break;
    case KNOB_MLP: k->mlp[kn->index] = 1; break;
    case KNOB_DWCONV: k->dwconv[kn->index] = 1; break;
    case KNOB_SRPOOL: k->sr_pool[kn->index] = 1; break;
    case KNOB_HEADS: k->heads[kn->index] = (uint8_t)kn->heads; break;
    case KNOB_DECODER: k->decoder[kn->index] = 1; break;
    case KNOB_TOME:
        if (kn->heads > k->tome[kn->index]) k->tome[kn->index] = (uint8_t)kn->heads;
        break;
    case KNOB_KIND_COUNT: FG_ASSERT(0);
    }
}

/* "attn1,mlp2,heads0=2,decoder3,tome0=4" ("all-on" for none) */
static void skip_text(const fg_vit_skip *k, char *buf, size_t cap) { fg_vit_skip_format(k, buf, cap); }

/* The knobs the model has: per block attention, MLP and heads halved (when > 1 head); for
 * SegFormer also the depthwise conv, the sr conv (when the block has one) and decoder stages; for
 * a ViT with `tome` also ToMe in every block at four levels of r (a quarter, half, three quarters
 * and all of the most a block can merge, (tokens - 1) / 2 of the input's tokens; a level a block
 * cannot reach after earlier merges fails to build and is dropped by the search). */
static size_t knobs_list(vit_model *m, int tome, knob *out, size_t cap) {
    int64_t nb = 0;
    int seg = 0;
    fg_status s = fg_vit_skip_blocks(m->g, &nb, &seg);
    FG_ASSERT(s == FG_OK);
    size_t n = 0;
    for (int64_t b = 0; b < nb; b++) {
        fg_vit_skip probe;
        memset(&probe, 0, sizeof probe);
        out[n++] = (knob){KNOB_ATTN, (int)b, 0};
        out[n++] = (knob){KNOB_MLP, (int)b, 0};
        if (seg) out[n++] = (knob){KNOB_DWCONV, (int)b, 0};
        probe.sr_pool[b] = 1;
        if (seg && fg_vit_skip_apply(m->g, &probe) == FG_OK) out[n++] = (knob){KNOB_SRPOOL, (int)b, 0};
        /* the most heads a block can keep: probe downwards from the largest count */
        int64_t H = 0;
        for (int64_t h = 64; h >= 1 && H == 0; h--) {
            memset(&probe, 0, sizeof probe);
            probe.heads[b] = (uint8_t)h;
            if (fg_vit_skip_apply(m->g, &probe) == FG_OK) H = h;
        }
        if (H > 1) out[n++] = (knob){KNOB_HEADS, (int)b, (H + 1) / 2};
        FG_ASSERT(n + 8 <= cap);
    }
    for (int64_t b = 0; tome && !seg && b < nb; b++) {
        const int64_t T = fg_graph_tinfo(m->g, fg_graph_find(m->g, "vit.embeddings"))->t.shape[1], most = (T - 1) / 2;
        for (int64_t l = 1; l <= 4 && most >= 1; l++) {
            const int64_t r = (most * l + 3) / 4;
            if (r > 255 || (l > 1 && r == (most * (l - 1) + 3) / 4)) continue;
            out[n++] = (knob){KNOB_TOME, (int)b, r};
        }
        FG_ASSERT(n + 8 <= cap);
    }
    fg_clear_error();
    for (int st = 0; seg && st < FG_SEGFORMER_STAGES; st++) out[n++] = (knob){KNOB_DECODER, st, 0};
    fg_vit_skip none;
    memset(&none, 0, sizeof none);
    s = fg_vit_skip_apply(m->g, &none);
    FG_ASSERT(s == FG_OK);
    return n;
}

/* What the profiler needs to rebuild the model for another ToMe schedule (token counts are shapes:
 * a graph per schedule, the same weights loaded by name). */
typedef struct prof_ctx {
    vit_model *m;
    const vit_meta *meta;
    const char *file;
    fg_pool *pool;
    int64_t batch, tokens; /* tokens entering block 0 (class token included) */
    uint8_t built[FG_VIT_MAX_BLOCKS]; /* the schedule m's graph has */
    int have;                         /* m holds a graph */
    size_t rebuilds;
} prof_ctx;

/* Whether every block can merge what the schedule asks after the earlier merges. */
static int tome_valid(const prof_ctx *c, const uint8_t *tome) {
    int64_t T = c->tokens;
    for (int b = 0; b < FG_VIT_MAX_BLOCKS; b++) {
        if (tome[b] > (T - 1) / 2) return 0;
        T -= tome[b];
    }
    return 1;
}

static fg_status ensure_tome(prof_ctx *c, const uint8_t *tome) {
    if (c->have && memcmp(c->built, tome, FG_VIT_MAX_BLOCKS) == 0) return FG_OK;
    fg_graph_free(c->m->g);
    c->m->g = NULL;
    c->have = 0;
    FG_TRY(vit_model_build_tome(c->meta->model, c->batch, c->meta->c, c->meta->h, c->meta->w, c->meta->classes, 0, tome,
                            c->pool, c->m));
    FG_TRY(fg_vit_weights_load(c->m->g, c->file));
    memcpy(c->built, tome, FG_VIT_MAX_BLOCKS);
    c->have = 1;
    c->rebuilds++;
    return FG_OK;
}

/* FLOPs per item of k (the graph rebuilt for its ToMe schedule when needed). */
static fg_status config_flops(prof_ctx *c, const fg_vit_skip *k, double *flops) {
    FG_TRY(ensure_tome(c, k->tome));
    FG_TRY(fg_vit_skip_flops(c->m->g, k, flops));
    *flops /= (double)c->batch;
    return FG_OK;
}

/* Applies k, measures the metric on `val` with the wall time per item, and FLOPs per item. */
static fg_status measure(prof_ctx *c, const vit_split *val, const fg_vit_skip *k, fg_vit_profile_entry *e) {
    memset(e, 0, sizeof *e);
    e->skip = *k;
    double flops = 0.0;
    FG_TRY(config_flops(c, k, &flops));
    vit_model *m = c->m;
    e->flops = flops;
    const double t0 = fg_time_now();
    FG_TRY(vit_evaluate(m, val, &e->metric));
    /* padded rows of the last batch run too: per item of the batches actually run */
    const int64_t items = (val->n + m->batch - 1) / m->batch * m->batch;
    e->seconds = (fg_time_now() - t0) / (double)items;
    return FG_OK;
}

static int vit_profile(int argc, char **argv) {
    const char *file = NULL, *data = NULL, *data_dir = NULL, *json = NULL, *plot = NULL;
    int64_t batch = 50, n_val = 0, n_test = 0;
    int threads = 0, max_steps = 0, tome = 0, test = 0;
    cli_opt opts[] = {
        {"model", CLI_STR, &file, "FILE", "weights written by frugal vit train --save (required)", 0},
        {"data", CLI_STR, &data, "NAME", "fashion, mnist or scenes (default: the one recorded in FILE)", 0},
        {"data-dir", CLI_STR, &data_dir, "DIR", "data directory (default $FRUGAL_DATA or ~/.cache/frugal)", 0},
        {"val-images", CLI_I64, &n_val, "N",
         "validation items: the last N of the training split (default 1000, inside vit train's default\n"
         "held-out 5000; scenes: 100 validation scenes)", 0},
        {"batch", CLI_I64, &batch, "B", "batch size of the measurements (default 50)", 0},
        {"max-steps", CLI_INT, &max_steps, "N", "greedy steps (default 0 = until every knob is off)", 0},
        {"tome", CLI_FLAG, &tome, NULL,
         "ViT: add ToMe token merging knobs (per block, r at 1/4, 1/2, 3/4 and all of the most it can\n"
         "merge; the graph is rebuilt for each schedule, the weights reloaded)", 0},
        {"test", CLI_FLAG, &test, NULL,
         "after the search, measure the all-on configuration and every Pareto entry on the test split\n"
         "(\"test_metric\" in --json, a column in the table)", 0},
        {"test-images", CLI_I64, &n_test, "N", "with --test: the first N test items (default all; scenes 500)", 0},
        {"threads", CLI_INT, &threads, "T", "threads (default 0 = all cores)", 0},
        {"json", CLI_STR, &json, "FILE", "write every measured configuration and the Pareto front (required)", 0},
        {"plot", CLI_STR, &plot, "FILE.png", "plot the metric against MFLOP per item, the front as a line (gnuplot)", 0},
        {NULL, CLI_FLAG, NULL, NULL, NULL, 0},
    };
    cli_cmd cmd = {"vit profile", "frugal vit profile --model FILE --json FILE [options]",
                   "Explores skip configurations of the trained model by greedy search: from every part on,\n"
                   "each step tries every knob not yet turned off (a block's attention or MLP branch, its heads\n"
                   "halved; SegFormer: its depthwise conv, its sr conv as pooling, a decoder stage), measures the\n"
                   "validation metric, and keeps the knob that loses least (ties: the cheaper). Every measured\n"
                   "configuration (metric, FLOPs and wall-clock latency per item) and the Pareto front over FLOPs\n"
                   "go to --json; the front is printed. --tome adds ToMe token merging to a ViT's knobs; --test\n"
                   "scores the front on the test split after the search (the search itself sees validation only).",
                   opts, 0, 0, NULL};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc != CLI_CONTINUE) return rc;
    if (!file) return cli_usage_error(&cmd, "vit profile: --model FILE is required");
    if (!json) return cli_usage_error(&cmd, "vit profile: --json FILE is required");
    if (batch < 1) return cli_usage_error(&cmd, "vit profile: --batch must be > 0");
    if (n_test < 0) return cli_usage_error(&cmd, "vit profile: --test-images must be >= 0");
    if (cli_find(opts, "test-images")->set && !test)
        return cli_usage_error(&cmd, "vit profile: --test-images applies with --test (the front scored on the test "
                               "split)");
    if (n_val < 0 || max_steps < 0) return cli_usage_error(&cmd, "vit profile: --val-images and --max-steps must be >= 0");
    if (threads < 0) return cli_usage_error(&cmd, "vit profile: --threads must be >= 0");
    if (plot) {
        int prc = cli_plot_option_check(&cmd, plot);
        if (prc != CLI_CONTINUE) return prc;
    }
    vit_meta meta;
    fg_status s = vit_read_meta(file, &meta);
    if (s != FG_OK) return cli_fail("--model", s);
    if (!data) data = meta.data;
    if (strcmp(data, "fashion") && strcmp(data, "mnist") && strcmp(data, "scenes"))
        return cli_usage_error(&cmd, "vit profile: unknown --data '%s' (fashion, mnist or scenes)", data);
    if (!vit_model_fits_data(meta.model, data))
        return cli_usage_error(&cmd, "vit profile: %s holds %s, which does not fit --data %s", file, meta.model, data);
    fg_threads_set(threads);
    const int seg = strcmp(data, "scenes") == 0;
    vit_data d;
    if (tome && seg) return cli_usage_error(&cmd, "vit profile: --tome: token merging is built for the ViT, not SegFormer");
    s = vit_data_load(data, data_dir, 1, n_val > 0 ? n_val : seg ? 100 : 1000, test ? n_test : 1, meta.seed, NULL, &d);
    if (s != FG_OK) return cli_fail("loading data", s);
    fg_pool *pool = NULL;
    vit_model m = {0};
    rc = CLI_EXIT_OK;
    s = fg_pool_create(&pool, 0);
    if (s != FG_OK) rc = cli_fail("device pool", s);
    prof_ctx ctx = {.m = &m, .meta = &meta, .file = file, .pool = pool, .batch = batch};
    if (rc == CLI_EXIT_OK) {
        s = vit_model_build(meta.model, batch, meta.c, meta.h, meta.w, meta.classes, 0, pool, &m);
        if (s != FG_OK) rc = cli_fail("building the model", s);
    }
    if (rc == CLI_EXIT_OK) {
        s = fg_vit_weights_load(m.g, file);
        if (s != FG_OK) rc = cli_fail("--model", s);
        ctx.have = s == FG_OK;
    }
    if (rc == CLI_EXIT_OK && !seg) ctx.tokens = fg_graph_tinfo(m.g, fg_graph_find(m.g, "vit.embeddings"))->t.shape[1];
    knob knobs[8 * FG_VIT_MAX_BLOCKS + 16];
    size_t nk = rc == CLI_EXIT_OK ? knobs_list(&m, tome, knobs, sizeof knobs / sizeof knobs[0]) : 0;
    /* every measurement: 1 + nk + (nk - 1) + ... at most, and ToMe's uniform schedules */
    const size_t cap = 1 + nk * (nk + 1) / 2 + (tome ? 256 : 0);
    fg_vit_profile_entry *t = calloc(cap, sizeof *t);
    uint8_t *path = calloc(cap, 1), *used = calloc(nk + 1, 1), *front = calloc(cap, 1);
    size_t *knob_of = calloc(cap, sizeof(size_t)); /* the knob each measured configuration added */
    size_t *order = calloc(cap, sizeof(size_t));   /* the Pareto front by falling FLOPs */
    size_t n = 0;
    if (rc == CLI_EXIT_OK && !(t && path && used && front && knob_of && order)) rc = cli_fail("profile", fg_fail(FG_ERR_OOM, "out of memory"));
    fg_vit_skip cur;
    memset(&cur, 0, sizeof cur);
    if (rc == CLI_EXIT_OK) {
        /* a discarded first pass: oneDNN's first calls create their primitives, which would be
         * charged to the all-on configuration's latency */
        s = measure(&ctx, &d.val, &cur, &t[n]);
        if (s == FG_OK) s = measure(&ctx, &d.val, &cur, &t[n]);
        if (s != FG_OK) rc = cli_fail("measuring", s);
        else path[n++] = 1;
    }
    double cur_flops = n ? t[0].flops : 0.0;
    cli_progress prog;
    cli_progress_init(&prog);
    const size_t steps = max_steps > 0 && (size_t)max_steps < nk ? (size_t)max_steps : nk;
    for (size_t step = 0; rc == CLI_EXIT_OK && step < steps; step++) {
        size_t best = SIZE_MAX;
        for (size_t j = 0; rc == CLI_EXIT_OK && j < nk; j++) {
            if (used[j]) continue;
            fg_vit_skip k = cur;
            knob_set(&k, &knobs[j]);
            /* a knob that saves nothing any more (the heads of a skipped attention branch, a ToMe
             * level at or below the block's current one) or cannot be built (a ToMe level more
             * than the block's tokens allow after earlier merges) is dropped */
            double fk = 0.0;
            if (!tome_valid(&ctx, k.tome)) {
                used[j] = 1;
                continue;
            }
            s = config_flops(&ctx, &k, &fk);
            if (s == FG_OK && fk >= cur_flops) {
                used[j] = 1;
                continue;
            }
            if (s == FG_OK) s = measure(&ctx, &d.val, &k, &t[n]);
            if (s != FG_OK) {
                rc = cli_fail("measuring", s);
                break;
            }
            if (best == SIZE_MAX || t[n].metric > t[best].metric ||
                (t[n].metric == t[best].metric && t[n].flops < t[best].flops))
                best = n;
            knob_of[n] = j;
            n++;
            char line[160];
            snprintf(line, sizeof line, "profile: step %zu/%zu, %zu configurations measured", step + 1, steps, n);
            cli_progress_show(&prog, line, 0);
        }
        if (rc != CLI_EXIT_OK || best == SIZE_MAX) break;
        cur = t[best].skip;
        cur_flops = t[best].flops;
        path[best] = 1;
        used[knob_of[best]] = 1;
    }
    /* ToMe's own schedules: the same r in every block (the paper's constant-r setting), r = 1, 2, ...
     * while every block can merge that many; measured besides the greedy path, on the front if they
     * earn it */
    size_t n_uniform = 0;
    for (int r = 1; rc == CLI_EXIT_OK && tome && r <= 255; r++) {
        int64_t nb = 0;
        int sg = 0;
        fg_vit_skip k;
        memset(&k, 0, sizeof k);
        if (!m.g || fg_vit_skip_blocks(m.g, &nb, &sg) != FG_OK) break;
        for (int64_t b = 0; b < nb; b++) k.tome[b] = (uint8_t)r;
        if (!tome_valid(&ctx, k.tome)) break;
        s = measure(&ctx, &d.val, &k, &t[n]);
        if (s != FG_OK) {
            rc = cli_fail("measuring", s);
            break;
        }
        n++;
        n_uniform++;
        char line[160];
        snprintf(line, sizeof line, "profile: ToMe with r = %d in every block", r);
        cli_progress_show(&prog, line, 0);
    }
    cli_progress_clear(&prog);
    const char *mname = seg ? "mIoU" : "accuracy";
    size_t nf = 0;
    double *test_metric = calloc(cap, sizeof(double)); /* NAN: not measured on the test split */
    if (rc == CLI_EXIT_OK && !test_metric) rc = cli_fail("profile", fg_fail(FG_ERR_OOM, "out of memory"));
    for (size_t i = 0; test_metric && i < cap; i++) test_metric[i] = NAN;
    if (rc == CLI_EXIT_OK) nf = fg_vit_pareto(t, n, FG_VIT_COST_FLOPS, front);
    /* the test split: the all-on configuration and the front, after the search (which saw validation only) */
    for (size_t i = 0; rc == CLI_EXIT_OK && test && i < n; i++) {
        if (i != 0 && !front[i]) continue;
        fg_vit_profile_entry e;
        s = measure(&ctx, &d.test, &t[i].skip, &e);
        if (s != FG_OK) rc = cli_fail("measuring on the test split", s);
        else test_metric[i] = e.metric;
        char line[160];
        snprintf(line, sizeof line, "profile: test split, configuration %zu of %zu", i + 1, n);
        cli_progress_show(&prog, line, 0);
    }
    cli_progress_clear(&prog);
    fg_vit_skip none;
    memset(&none, 0, sizeof none);
    if (rc == CLI_EXIT_OK && ensure_tome(&ctx, none.tome) == FG_OK) (void)fg_vit_skip_apply(m.g, &none);
    if (rc == CLI_EXIT_OK) {
        /* the front in order of falling FLOPs (insertion sort of its indices) */
        size_t nfo = 0;
        for (size_t i = 0; i < n; i++) {
            if (!front[i]) continue;
            size_t at = nfo++;
            while (at > 0 && t[order[at - 1]].flops < t[i].flops) {
                order[at] = order[at - 1];
                at--;
            }
            order[at] = i;
        }
        cli_json j;
        s = cli_json_open(&j, json);
        if (s == FG_OK) {
            cli_json_obj_begin(&j, NULL);
            cli_json_str(&j, "model", meta.model);
            cli_json_str(&j, "data", data);
            cli_json_str(&j, "metric", mname);
            cli_json_str(&j, "search", "greedy: one knob per step, the one losing least validation metric");
            cli_json_int(&j, "val_items", (long long)d.val.n);
            cli_json_int(&j, "batch", (long long)batch);
            cli_json_int(&j, "knobs", (long long)nk);
            cli_json_int(&j, "tome", tome);
            if (tome) cli_json_int(&j, "tome_uniform", (long long)n_uniform);
            if (test) cli_json_int(&j, "test_items", (long long)d.test.n);
            cli_json_arr_begin(&j, "configurations");
            for (size_t i = 0; i < n; i++) {
                char kt[1024];
                skip_text(&t[i].skip, kt, sizeof kt);
                cli_json_obj_begin(&j, NULL);
                cli_json_str(&j, "skip", kt);
                cli_json_num(&j, "flops", t[i].flops);
                cli_json_num(&j, "seconds", t[i].seconds);
                cli_json_num(&j, "metric", t[i].metric);
                if (!isnan(test_metric[i])) cli_json_num(&j, "test_metric", test_metric[i]);
                cli_json_int(&j, "greedy_path", path[i]);
                cli_json_int(&j, "pareto", front[i]);
                cli_json_obj_end(&j);
            }
            cli_json_arr_end(&j);
            cli_json_arr_begin(&j, "pareto");
            for (size_t f = 0; f < nf; f++) {
                const size_t i = order[f];
                char kt[1024];
                skip_text(&t[i].skip, kt, sizeof kt);
                cli_json_obj_begin(&j, NULL);
                cli_json_str(&j, "skip", kt);
                cli_json_num(&j, "flops", t[i].flops);
                cli_json_num(&j, "seconds", t[i].seconds);
                cli_json_num(&j, "metric", t[i].metric);
                if (!isnan(test_metric[i])) cli_json_num(&j, "test_metric", test_metric[i]);
                cli_json_obj_end(&j);
            }
            cli_json_arr_end(&j);
            cli_json_obj_end(&j);
            s = cli_json_close(&j);
        }
        if (s != FG_OK) rc = cli_fail("--json", s);
    }
    if (rc == CLI_EXIT_OK && plot) {
        char why[512];
        if (!plot_profile(plot, meta.model, data, mname, t, n, order, nf, why, sizeof why)) {
            fprintf(stderr, "frugal: --plot: %s\n", why);
            rc = CLI_EXIT_FAIL;
        }
    }
    if (rc == CLI_EXIT_OK) {
        printf("%s on %s: %zu configurations measured (%zu knobs, greedy%s), %zu on the Pareto front (FLOPs)\n",
               meta.model, data, n, nk, tome ? ", with ToMe" : "", nf);
        if (tome) printf("ToMe: %zu uniform schedules (the same r in every block) measured besides the search\n", n_uniform);
        if (test)
            printf("validation: %lld items; test: %lld items; test metric of all-on %.4f\n", (long long)d.val.n,
                   (long long)d.test.n, test_metric[0]);
        printf("%12s %9s %10s %9s%s  %s\n", "MFLOP/item", "saved", "ms/item", mname, test ? "  test    lost" : "",
               "skipped");
        for (size_t f = 0; f < nf; f++) {
            const size_t i = order[f];
            char kt[1024];
            skip_text(&t[i].skip, kt, sizeof kt);
            printf("%12.3f %8.1f%% %10.3f %9.4f", t[i].flops / 1e6, 100.0 * (1.0 - t[i].flops / t[0].flops),
                   t[i].seconds * 1e3, t[i].metric);
            if (test) printf("  %.4f %+6.2f", test_metric[i], 100.0 * (test_metric[0] - test_metric[i]));
            printf("  %s\n", kt);
        }
    }
    free(t);
    free(path);
    free(used);
    free(front);
    free(knob_of);
    free(order);
    free(test_metric);
    fg_graph_free(m.g);
    fg_pool_destroy(pool);
    vit_data_free(&d);
    return rc;
}

/* ---------------------------------------------------------------- dispatch */

int cmd_vit(int argc, char **argv) {
    const char *sub = argc > 0 ? argv[0] : NULL;
    if (sub && strcmp(sub, "train") == 0) return vit_train(argc - 1, argv + 1);
    if (sub && strcmp(sub, "eval") == 0) return vit_eval(argc - 1, argv + 1);
    if (sub && strcmp(sub, "profile") == 0) return vit_profile(argc - 1, argv + 1);
    if (sub && strcmp(sub, "run") == 0) return cmd_vit_run(argc - 1, argv + 1);
    FILE *f = sub && (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) ? stdout : stderr;
    fprintf(f, "usage: frugal vit train|eval|profile|run [options]   (frugal vit SUBCOMMAND --help)\n"
               "  train  train a ViT on fashion/mnist or a SegFormer on digit scenes, save HF-named weights\n"
               "  eval   test accuracy (or mIoU) of saved weights\n"
               "  profile  skip configurations by greedy search: metric, FLOPs, latency, the Pareto front\n"
               "  run    a stream of inputs under a per-frame latency budget, the governor picking from a profile\n");
    if (f == stdout) return CLI_EXIT_OK;
    if (sub) fprintf(stderr, "frugal: vit: unknown subcommand '%s'\n", sub);
    return CLI_EXIT_USAGE;
}
