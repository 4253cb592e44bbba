/* The parts of `frugal vit` that its subcommands share (tools/vit_common.h): the data sets as
 * the ViT and SegFormer loops see them (Fashion-MNIST / MNIST splits, digit scenes), building a
 * model by name, the metric (accuracy or mIoU) and the weights' metadata. Used by tools/cmd_vit.c
 * (train, eval, profile), tools/cmd_vit_run.c (run) and tools/demo_vit.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vit_common.h"

/* ---------------------------------------------------------------- data */

size_t vit_split_labels_per_item(const vit_split *s) { return s->lh > 0 ? (size_t)(s->lh * s->lw) : 1; }
size_t vit_split_image_values(const vit_split *s) { return (size_t)(s->c * s->h * s->w); }

static void split_free(vit_split *s) {
    if (s->owned) {
        free(s->images);
        free(s->labels);
    }
    memset(s, 0, sizeof *s);
}

void vit_data_free(vit_data *d) {
    split_free(&d->train);
    split_free(&d->val);
    split_free(&d->test);
    if (d->have_cls) fg_data_split_free(&d->cls);
    d->have_cls = 0;
    fg_idx_free(&d->src_img);
    fg_idx_free(&d->src_lab);
}

static vit_split view_of(const fg_dataset *ds, int64_t first, int64_t n) {
    vit_split s = {0};
    s.n = n;
    s.c = ds->c;
    s.h = ds->h;
    s.w = ds->w;
    s.n_classes = ds->n_classes;
    s.images = ds->images + (size_t)first * (size_t)(ds->c * ds->h * ds->w);
    s.labels = ds->labels + first;
    return s;
}

static int64_t cap_count(int64_t have, int64_t limit) { return limit > 0 && limit < have ? limit : have; }

/* Scenes from MNIST source images [first, first + count): images normalized as MNIST, labels at
 * the logits' resolution. */
static fg_status make_scenes(const fg_idx *img, const fg_idx *lab, int64_t first, int64_t count, int64_t n,
                             uint64_t seed, int items, float scale_jitter, float rotate_deg, vit_split *out) {
    fg_scenes_cfg sc = {n, VIT_SCENE_SIZE, items > 0 ? items : 2, items > 0 ? items : 4, 64, seed, scale_jitter,
                        rotate_deg};
    fg_scenes s;
    FG_TRY(fg_vit_scenes_make(img, lab, 10, first, count, &sc, &s));
    float mean = 0.f, std = 1.f;
    fg_status st = fg_data_norm("mnist", &mean, &std);
    const int64_t g = VIT_SCENE_SIZE / VIT_SCENE_FACTOR;
    int32_t *labels = st == FG_OK ? malloc((size_t)(n * g * g) * sizeof(int32_t)) : NULL;
    if (st == FG_OK && !labels) st = fg_fail(FG_ERR_OOM, "scenes: out of host memory");
    if (st == FG_OK) st = fg_vit_scenes_labels_at(&s, VIT_SCENE_FACTOR, labels);
    if (st != FG_OK) {
        free(labels);
        fg_vit_scenes_free(&s);
        return st;
    }
    const size_t numel = (size_t)(n * VIT_SCENE_SIZE * VIT_SCENE_SIZE);
    for (size_t i = 0; i < numel; i++) s.images[i] = (s.images[i] - mean) / std;
    memset(out, 0, sizeof *out);
    out->n = n;
    out->c = 1;
    out->h = out->w = VIT_SCENE_SIZE;
    out->lh = out->lw = g;
    out->n_classes = s.n_classes;
    out->images = s.images; /* ownership moves to the split */
    out->labels = labels;
    out->owned = 1;
    free(s.labels);
    return FG_OK;
}

fg_status vit_data_refresh(vit_data *d, int epoch) {
    if (!d->seg || !d->src_img.data)
        return fg_fail(FG_ERR_INVALID, "scenes: only scenes made by vit_data_load can be refreshed");
    vit_split fresh;
    FG_TRY(make_scenes(&d->src_img, &d->src_lab, 0, d->src_count, d->train.n, d->seed + 1000003ull * (uint64_t)epoch,
                       d->scene.items, d->scene.scale_jitter, d->scene.rotate_deg, &fresh));
    split_free(&d->train);
    d->train = fresh;
    return FG_OK;
}

/* Loads --data: "fashion" / "mnist" (the validation split is the last n_val training images) or
 * "scenes" (MNIST digits 0..7999 of the 10,000 for train, the next 1,000 for validation, the last
 * 1,000 for test). Limits of 0 keep everything. */
fg_status vit_data_load(const char *name, const char *dir, int64_t n_train, int64_t n_val, int64_t n_test,
                        uint64_t seed, const vit_scene_opts *scene, vit_data *d) {
    memset(d, 0, sizeof *d);
    if (scene) d->scene = *scene;
    const vit_scene_opts o = d->scene;
    if (strcmp(name, "scenes") == 0) {
        char buf[512], path[600];
        const char *root = dir ? dir : fg_data_dir(buf, sizeof buf);
        fg_idx img = {0}, lab = {0};
        snprintf(path, sizeof path, "%s/mnist-images-idx3-ubyte", root);
        FG_TRY(fg_idx_load(path, &img));
        snprintf(path, sizeof path, "%s/mnist-labels-idx1-ubyte", root);
        fg_status s = fg_idx_load(path, &lab);
        const int64_t total = img.ndim == 3 ? img.dims[0] : 0;
        if (s == FG_OK && total < 1000)
            s = fg_fail(FG_ERR_FORMAT, "scenes: %s holds %lld images, need at least 1000", path, (long long)total);
        d->seg = 1;
        const int64_t a = total * 8 / 10, b = total * 9 / 10;
        if (s == FG_OK) s = make_scenes(&img, &lab, 0, a, n_train > 0 ? n_train : 4000, seed, o.items,
                                          o.scale_jitter, o.rotate_deg, &d->train);
        d->src_count = a, d->seed = seed;
        if (s == FG_OK) s = make_scenes(&img, &lab, a, b - a, n_val > 0 ? n_val : 500, seed + 1, o.items, 0, 0, &d->val);
        if (s == FG_OK) s = make_scenes(&img, &lab, b, total - b, n_test > 0 ? n_test : 500, seed + 2, o.items, 0, 0,
                                        &d->test);
        d->src_img = img, d->src_lab = lab; /* kept for vit_data_refresh; vit_data_free frees them */
        if (s != FG_OK) vit_data_free(d);
        return s;
    }
    FG_TRY(fg_data_split_load(name, dir, &d->cls));
    d->have_cls = 1;
    const fg_dataset *tr = &d->cls.train;
    int64_t nv = n_val > 0 ? n_val : 5000;
    if (nv >= tr->n) nv = tr->n / 10;
    const int64_t nt = cap_count(tr->n - nv, n_train);
    d->train = view_of(tr, 0, nt);
    d->val = view_of(tr, tr->n - nv, nv);
    d->test = view_of(&d->cls.test, 0, cap_count(d->cls.test.n, n_test));
    return FG_OK;
}

/* ---------------------------------------------------------------- models */

/* Builds --model ("vit-tiny-28", "deit-tiny", "deit-small", "segformer-b0|b1|b2") for inputs
 * (batch, c, h, w) and `classes` labels, and builds the graph (with the loss and gradients when
 * train). */
fg_status vit_model_build(const char *name, int64_t batch, int64_t c, int64_t h, int64_t w, int64_t classes,
                          int train, fg_pool *pool, vit_model *m) {
    return vit_model_build_tome(name, batch, c, h, w, classes, train, NULL, pool, m);
}

fg_status vit_model_build_tome(const char *name, int64_t batch, int64_t c, int64_t h, int64_t w, int64_t classes,
                               int train, const uint8_t *tome, fg_pool *pool, vit_model *m) {
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    m->batch = batch;
    FG_TRY(fg_graph_create(&m->g, name));
    fg_status s;
    if (strncmp(name, "segformer-", 10) == 0) {
        fg_segformer_variant v;
        fg_segformer_cfg cfg;
        fg_segformer_io io;
        m->seg = 1;
        s = fg_segformer_variant_parse(name + 10, &v);
        if (s == FG_OK) s = fg_segformer_config(v, classes, &cfg);
        if (s == FG_OK) {
            cfg.num_channels = c;
            s = fg_segformer_build(m->g, &cfg, batch, h, w, 1, &io);
        }
        if (s == FG_OK) {
            m->input = io.input;
            m->logits = io.logits;
            m->labels = io.labels;
            m->loss = io.loss;
        }
    } else {
        fg_vit_cfg cfg;
        fg_vit_io io;
        s = fg_vit_config(name, classes, &cfg);
        if (s == FG_OK && tome) memcpy(cfg.tome_r, tome, sizeof cfg.tome_r);
        if (s == FG_OK) s = fg_vit_build(m->g, &cfg, batch, c, h, w, 1, &io);
        if (s == FG_OK) {
            m->input = io.input;
            m->logits = io.logits;
            m->labels = io.labels;
            m->loss = io.loss;
        }
    }
    fg_mem_policy pol;
    if (s == FG_OK) s = fg_policy_network_wide(&pol);
    if (s == FG_OK) {
        /* the loss is an output anyway; the logits are read after every batch for the metric */
        fg_graph_mark_output(m->g, m->logits);
        s = fg_graph_build(m->g, train ? m->loss : FG_NONE, pool, &pol);
    }
    if (s != FG_OK) {
        fg_graph_free(m->g);
        m->g = NULL;
    }
    return s;
}

/* The model's kind must fit the data's: a classifier on fashion/mnist, a SegFormer on scenes. */
int vit_model_fits_data(const char *model, const char *data) {
    const int seg_model = strncmp(model, "segformer-", 10) == 0;
    return seg_model == (strcmp(data, "scenes") == 0);
}

/* ---------------------------------------------------------------- metrics */

static int64_t argmax_strided(const float *x, int64_t k, size_t stride) {
    int64_t best = 0;
    for (int64_t j = 1; j < k; j++)
        if (x[(size_t)j * stride] > x[(size_t)best * stride]) best = j;
    return best;
}

/* Copies items idx[0..rows) of s into the batch buffers, padding up to the batch with item idx[0]. */
void vit_gather(const vit_split *s, const int64_t *idx, int64_t rows, int64_t batch, float *x, int32_t *y) {
    const size_t iv = vit_split_image_values(s), lv = vit_split_labels_per_item(s);
    for (int64_t i = 0; i < batch; i++) {
        const int64_t src = idx[i < rows ? i : 0];
        memcpy(x + (size_t)i * iv, s->images + (size_t)src * iv, iv * sizeof(float));
        memcpy(y + (size_t)i * lv, s->labels + (size_t)src * lv, lv * sizeof(int32_t));
    }
}

void vit_score_batch(vit_score *sc, const vit_split *s, const float *logits, const int32_t *y, int64_t rows) {
    const int64_t k = sc->k;
    if (s->lh == 0) {
        for (int64_t i = 0; i < rows; i++) sc->correct += argmax_strided(logits + (size_t)(i * k), k, 1) == y[i];
        sc->total += rows;
        return;
    }
    const size_t px = (size_t)(s->lh * s->lw);
    for (int64_t i = 0; i < rows; i++)
        for (size_t p = 0; p < px; p++) {
            /* logits (B, K, lh, lw): class j of pixel p of item i is at (i*K + j)*px + p */
            const int64_t pred = argmax_strided(logits + (size_t)(i * k) * px + p, k, px);
            const int32_t truth = y[(size_t)i * px + p];
            sc->correct += pred == truth;
            sc->fg_inter += pred > 0 && truth > 0;
            sc->fg_uni += pred > 0 || truth > 0;
            if (pred == truth) {
                sc->inter[truth]++;
                sc->uni[truth]++;
            } else {
                sc->uni[truth]++;
                sc->uni[pred]++;
            }
        }
    sc->total += rows * (int64_t)px;
}

/* Accuracy, or for segmentation the mean over classes present (union > 0) of the IoU. */
double vit_score_value(const vit_score *sc, int seg) {
    if (!seg) return sc->total ? (double)sc->correct / (double)sc->total : 0.0;
    double sum = 0.0;
    int n = 0;
    for (int32_t j = 0; j < sc->k; j++)
        if (sc->uni[j] > 0) {
            sum += (double)sc->inter[j] / (double)sc->uni[j];
            n++;
        }
    return n ? sum / n : 0.0;
}

double vit_score_class_iou(const vit_score *sc, int32_t j) {
    return j >= 0 && j < sc->k && sc->uni[j] > 0 ? (double)sc->inter[j] / (double)sc->uni[j] : -1.0;
}

double vit_score_item_iou(const vit_score *sc) { return sc->fg_uni ? (double)sc->fg_inter / (double)sc->fg_uni : 0.0; }

/* The metric of the model on split s in eval mode: accuracy or mIoU. */
fg_status vit_evaluate(vit_model *m, const vit_split *s, double *out) {
    *out = 0.0;
    vit_score sc;
    FG_TRY(vit_evaluate_score(m, s, &sc));
    *out = vit_score_value(&sc, s->lh > 0);
    return FG_OK;
}

fg_status vit_evaluate_score(vit_model *m, const vit_split *s, vit_score *out) {
    memset(out, 0, sizeof *out);
    if (s->n <= 0) return fg_fail(FG_ERR_INVALID, "evaluate: empty split");
    const int64_t B = m->batch;
    const fg_tinfo *li = fg_graph_tinfo(m->g, m->logits);
    const size_t nlog = (size_t)fg_tensor_numel(&li->t);
    out->k = (int32_t)li->t.shape[1];
    FG_ASSERT(out->k <= 64);
    const size_t iv = vit_split_image_values(s), lv = vit_split_labels_per_item(s);
    float *x = malloc(iv * (size_t)B * sizeof(float));
    int32_t *y = malloc(lv * (size_t)B * sizeof(int32_t));
    float *logits = malloc(nlog * sizeof(float));
    int64_t *idx = malloc((size_t)B * sizeof(int64_t));
    fg_status st = (x && y && logits && idx) ? FG_OK : fg_fail(FG_ERR_OOM, "evaluate: out of host memory");
    fg_graph_set_training(m->g, 0);
    for (int64_t start = 0; st == FG_OK && start < s->n; start += B) {
        const int64_t rows = s->n - start < B ? s->n - start : B;
        for (int64_t i = 0; i < rows; i++) idx[i] = start + i;
        vit_gather(s, idx, rows, B, x, y);
        st = fg_graph_set_input(m->g, m->input, x, iv * (size_t)B * sizeof(float));
        if (st == FG_OK) st = fg_graph_set_input(m->g, m->labels, y, lv * (size_t)B * sizeof(int32_t));
        if (st == FG_OK) st = fg_graph_forward(m->g);
        if (st == FG_OK) st = fg_graph_read(m->g, m->logits, logits, nlog * sizeof(float));
        if (st == FG_OK) vit_score_batch(out, s, logits, y, rows);
    }
    free(x);
    free(y);
    free(logits);
    free(idx);
    return st;
}

/* ---------------------------------------------------------------- metadata */

fg_status vit_save_weights(vit_model *m, const char *path, const char *data, const vit_split *s, uint64_t seed) {
    char input[64], classes[32], sd[32];
    snprintf(sd, sizeof sd, "%llu", (unsigned long long)seed);
    snprintf(input, sizeof input, "%lldx%lldx%lld", (long long)s->c, (long long)s->h, (long long)s->w);
    snprintf(classes, sizeof classes, "%d", (int)s->n_classes);
    const char *const keys[] = {META_MODEL, META_DATA, META_INPUT, META_CLASSES, META_SEED};
    const char *const vals[] = {m->name, data, input, classes, sd};
    return fg_graph_save(m->g, NULL, path, 5, keys, vals);
}

fg_status vit_read_meta(const char *path, vit_meta *out) {
    fg_st_file *f = NULL;
    FG_TRY(fg_st_load_header(path, &f));
    const char *model = fg_st_meta(f, META_MODEL), *data = fg_st_meta(f, META_DATA);
    const char *input = fg_st_meta(f, META_INPUT), *classes = fg_st_meta(f, META_CLASSES);
    fg_status s = FG_OK;
    long long c = 0, h = 0, w = 0, k = 0;
    if (!model || !data || !input || !classes)
        s = fg_fail(FG_ERR_FORMAT, "%s: no '%s' metadata (not written by frugal vit train)", path,
                    !model ? META_MODEL : !data ? META_DATA : !input ? META_INPUT : META_CLASSES);
    else if (sscanf(input, "%lldx%lldx%lld", &c, &h, &w) != 3 || c < 1 || h < 1 || w < 1 ||
             sscanf(classes, "%lld", &k) != 1 || k < 1 || k > 64)
        s = fg_fail(FG_ERR_FORMAT, "%s: bad metadata %s='%s' %s='%s'", path, META_INPUT, input, META_CLASSES, classes);
    if (s == FG_OK) {
        snprintf(out->model, sizeof out->model, "%s", model);
        snprintf(out->data, sizeof out->data, "%s", data);
        out->c = c;
        out->h = h;
        out->w = w;
        out->classes = k;
        const char *sd = fg_st_meta(f, META_SEED);
        unsigned long long v = 1;
        out->seed = sd && sscanf(sd, "%llu", &v) == 1 ? (uint64_t)v : 1;
    }
    fg_st_free(f);
    return s;
}

/* ---------------------------------------------------------------- training */

/* The learning rate of step t of T: linear warm-up over the first w steps, then cosine to 0. */
static double schedule(double lr, int64_t t, int64_t T, int64_t w) {
    if (t < w) return lr * (double)(t + 1) / (double)w;
    const double p = T > w ? (double)(t - w) / (double)(T - w) : 1.0;
    return lr * 0.5 * (1.0 + cos(3.14159265358979323846 * p));
}

fg_status vit_train_loop(const vit_train_args *a, vit_model *m, vit_data *d, vit_epoch *hist, int *n_hist,
                         double *test_metric) {
    const vit_split *tr = &d->train;
    const int64_t B = a->batch, nb = tr->n / B;
    if (nb < 1)
        return fg_fail(FG_ERR_INVALID, "train: %lld training items, fewer than one batch of %lld", (long long)tr->n,
                       (long long)B);
    fg_rng init, order;
    fg_rng_seed(&init, a->seed);
    fg_rng_seed(&order, a->seed ^ 0x9e3779b97f4a7c15ull);
    fg_graph_init_params(m->g, &init);
    if (a->init) FG_TRY(fg_vit_weights_load(m->g, a->init)); /* fine-tuning: a fresh optimizer on saved weights */
    fg_optim_cfg oc = fg_optim_defaults(FG_OPTIM_ADAMW, (float)a->lr);
    oc.weight_decay = (float)a->weight_decay;
    fg_optim *opt = NULL;
    FG_TRY(fg_optim_create(&opt, m->g, &oc));
    const size_t iv = vit_split_image_values(tr), lv = vit_split_labels_per_item(tr);
    const fg_tinfo *li = fg_graph_tinfo(m->g, m->logits);
    const size_t nlog = (size_t)fg_tensor_numel(&li->t);
    float *x = malloc(iv * (size_t)B * sizeof(float));
    int32_t *y = malloc(lv * (size_t)B * sizeof(int32_t));
    float *logits = malloc(nlog * sizeof(float));
    int64_t *perm = malloc((size_t)tr->n * sizeof(int64_t));
    fg_status s = (x && y && logits && perm) ? FG_OK : fg_fail(FG_ERR_OOM, "train: out of host memory");
    const int64_t total = nb * a->epochs, warm = (int64_t)(a->warmup * (double)nb);
    cli_progress prog;
    cli_progress_init(&prog);
    const char *metric = d->seg ? "mIoU" : "accuracy";
    int64_t step = 0;
    for (int e = 0; s == FG_OK && e < a->epochs; e++) {
        const double t0 = fg_time_now();
        if (e > 0 && a->scene_refresh && (s = vit_data_refresh(d, e)) != FG_OK) break;
        for (int64_t i = 0; i < tr->n; i++) perm[i] = i;
        fg_rng_shuffle(&order, perm, (size_t)tr->n);
        double loss_sum = 0.0;
        vit_score sc;
        memset(&sc, 0, sizeof sc);
        sc.k = (int32_t)li->t.shape[1];
        for (int64_t b = 0; s == FG_OK && b < nb; b++, step++) {
            if (cli_stop_flag) {
                s = fg_fail(FG_ERR_INVALID, "interrupted in epoch %d: nothing saved or written", e + 1);
                break;
            }
            vit_gather(tr, perm + b * B, B, B, x, y);
            fg_graph_set_training(m->g, 1);
            fg_graph_set_seed(m->g, fg_rng_u64(&order));
            fg_optim_set_lr(opt, (float)schedule(a->lr, step, total, warm));
            s = fg_graph_set_input(m->g, m->input, x, iv * (size_t)B * sizeof(float));
            if (s == FG_OK) s = fg_graph_set_input(m->g, m->labels, y, lv * (size_t)B * sizeof(int32_t));
            if (s == FG_OK) {
                fg_graph_zero_grad(m->g);
                s = fg_graph_forward(m->g);
            }
            if (s == FG_OK) s = fg_graph_backward(m->g);
            if (s == FG_OK) s = fg_optim_step(opt);
            if (s == FG_OK) s = fg_graph_read(m->g, m->logits, logits, nlog * sizeof(float));
            if (s != FG_OK) break;
            const float l = fg_graph_loss(m->g);
            if (!isfinite(l)) {
                s = fg_fail(FG_ERR_INVALID, "train: the loss is %g at epoch %d batch %lld (try a smaller --lr)", (double)l,
                            e + 1, (long long)(b + 1));
                break;
            }
            loss_sum += l;
            vit_score_batch(&sc, tr, logits, y, B);
            if (!a->quiet) {
                char bar[40], line[256];
                cli_bar(bar, sizeof bar, (double)(b + 1) / (double)nb, 24);
                const double el = fg_time_now() - t0;
                snprintf(line, sizeof line, "epoch %d/%d %s %3.0f%%  loss %.4f  %.0f img/s", e + 1, a->epochs, bar,
                         100.0 * (double)(b + 1) / (double)nb, loss_sum / (double)(b + 1),
                         el > 0 ? (double)((b + 1) * B) / el : 0.0);
                cli_progress_show(&prog, line, b == 0 && prog.tty);
            }
        }
        if (s != FG_OK) break;
        vit_epoch *h = &hist[e];
        h->loss = loss_sum / (double)nb;
        h->train_metric = vit_score_value(&sc, d->seg);
        s = vit_evaluate(m, &d->val, &h->val_metric);
        if (s != FG_OK) break;
        h->seconds = fg_time_now() - t0;
        *n_hist = e + 1;
        cli_progress_clear(&prog);
        printf("epoch %d/%d  loss %.4f  train %s %.4f  val %s %.4f  (%.1f s)\n", e + 1, a->epochs, h->loss, metric,
               h->train_metric, metric, h->val_metric, h->seconds);
        fflush(stdout);
    }
    cli_progress_clear(&prog);
    if (s == FG_OK) s = vit_evaluate(m, &d->test, test_metric);
    free(x);
    free(y);
    free(logits);
    free(perm);
    fg_optim_free(opt);
    return s;
}

int vit_loop_fail(const char *what, fg_status s) {
    if (!cli_stop_flag) return cli_fail(what, s);
    fprintf(stderr, "frugal: %s: %s\n", what, fg_last_error());
    return CLI_EXIT_INTERRUPTED;
}
