/* The training loop behind `frugal train`, `frugal eval` and `frugal demo`: data splits, model
 * building, evaluation, the epoch/batch loop and resumable checkpoints (include/frugal/train.h).
 *
 * Checkpoint metadata (all strings, next to what fg_graph_save writes: format, graph,
 * optim.kind, optim.steps):
 *   kind            "checkpoint" or "weights"
 *   model, data     zoo model name, data set name
 *   input, classes  "CxHxW", class count;  batch: the batch size trained with
 *   train.*         checkpoints only: seed, optimizer hyper-parameters, epoch, step, n_train,
 *                   rng and epoch_rng (4 u64 as hex each), the running sums of the epoch
 *                   (loss_sum as a C99 hex float so it round-trips exactly), and the per-epoch
 *                   history ("loss,train_acc,test_acc,seconds;..." in hex floats). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frugal/train.h"

/* ---------------------------------------------------------------- data */

typedef struct data_norm {
    const char *name;
    float mean, std;
    const char *prefixes[3]; /* file prefixes tried in order */
} data_norm;

/* Pixel statistics of the full training sets (values in [0, 1]). */
static const data_norm known_data[] = {
    {"mnist", 0.1307f, 0.3081f, {"mnist", NULL, NULL}},
    {"fashion", 0.2860f, 0.3530f, {"fashion", "fashion-mnist", NULL}},
};

static const data_norm *find_data(const char *name) {
    for (size_t i = 0; i < sizeof known_data / sizeof known_data[0]; i++)
        if (strcmp(known_data[i].name, name) == 0) return &known_data[i];
    return NULL;
}

fg_status fg_data_norm(const char *name, float *mean, float *std) {
    const data_norm *d = name ? find_data(name) : NULL;
    if (!d) return fg_fail(FG_ERR_INVALID, "unknown data set '%s' (known: mnist, fashion)", name ? name : "(null)");
    *mean = d->mean;
    *std = d->std;
    return FG_OK;
}

static int idx_pair_exists(const char *dir, const char *prefix) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte", dir, prefix);
    if (access(p, R_OK) != 0) return 0;
    snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte", dir, prefix);
    return access(p, R_OK) == 0;
}

/* A view of rows [begin, begin + n) of d sharing its storage. */
static fg_dataset dataset_rows(const fg_dataset *d, int64_t begin, int64_t n) {
    fg_dataset v = *d;
    size_t img = (size_t)(d->c * d->h * d->w);
    v.n = n;
    v.images = d->images + (size_t)begin * img;
    v.labels = d->labels + begin;
    return v;
}

fg_status fg_data_split_load(const char *name, const char *dir, fg_data_split *out) {
    memset(out, 0, sizeof *out);
    const data_norm *dn = name ? find_data(name) : NULL;
    if (!dn) return fg_fail(FG_ERR_INVALID, "unknown data set '%s' (known: mnist, fashion)", name ? name : "(null)");
    char dbuf[4096];
    if (!dir) dir = fg_data_dir(dbuf, sizeof dbuf);
    for (int k = 0; k < 3 && dn->prefixes[k]; k++) {
        char ptr[64], pte[64];
        snprintf(ptr, sizeof ptr, "%s-train", dn->prefixes[k]);
        snprintf(pte, sizeof pte, "%s-test", dn->prefixes[k]);
        if (idx_pair_exists(dir, ptr) && idx_pair_exists(dir, pte)) {
            FG_TRY(fg_dataset_load_idx(dir, ptr, dn->mean, dn->std, &out->owned_[0]));
            out->n_owned_ = 1;
            fg_status s = fg_dataset_load_idx(dir, pte, dn->mean, dn->std, &out->owned_[1]);
            if (s != FG_OK) {
                fg_data_split_free(out);
                return s;
            }
            out->n_owned_ = 2;
            out->train = out->owned_[0];
            out->test = out->owned_[1];
            snprintf(out->source, sizeof out->source, "%.300s/%.60s-* (%lld images) and %.60s-* (%lld images)", dir, ptr,
                     (long long)out->train.n, pte, (long long)out->test.n);
            return FG_OK;
        }
        if (idx_pair_exists(dir, dn->prefixes[k])) {
            FG_TRY(fg_dataset_load_idx(dir, dn->prefixes[k], dn->mean, dn->std, &out->owned_[0]));
            out->n_owned_ = 1;
            const fg_dataset *all = &out->owned_[0];
            if (all->n <= FG_DATA_HOLDOUT) {
                int64_t n = all->n;
                fg_data_split_free(out);
                return fg_fail(FG_ERR_FORMAT, "data set %s/%s-*: %lld images, need more than %d to hold out a test set",
                               dir, dn->prefixes[k], (long long)n, FG_DATA_HOLDOUT);
            }
            out->train = dataset_rows(all, 0, all->n - FG_DATA_HOLDOUT);
            out->test = dataset_rows(all, all->n - FG_DATA_HOLDOUT, FG_DATA_HOLDOUT);
            snprintf(out->source, sizeof out->source,
                     "%.300s/%.60s-* (%lld images: first %lld for training, last %d held out for testing)", dir,
                     dn->prefixes[k], (long long)all->n, (long long)out->train.n, FG_DATA_HOLDOUT);
            return FG_OK;
        }
    }
    return fg_fail(FG_ERR_IO,
                   "data set '%s' not found: no %s/%s-train-images-idx3-ubyte or %s/%s-images-idx3-ubyte; "
                   "run scripts/fetch-data.sh (or set FRUGAL_DATA to the directory that holds it)",
                   name, dir, dn->prefixes[0], dir, dn->prefixes[0]);
}

void fg_data_split_free(fg_data_split *s) {
    for (int i = 0; i < s->n_owned_; i++) fg_dataset_free(&s->owned_[i]);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------- models and evaluation */

fg_status fg_train_build_model(fg_graph **out, fg_model_io *io, const char *model, const fg_model_cfg *mc,
                               int train, fg_pool *pool, const fg_mem_policy *policy) {
    *out = NULL;
    fg_mem_policy pol;
    if (policy) pol = *policy;
    else FG_TRY(fg_policy_network_wide(&pol));
    fg_graph *g = NULL;
    fg_status s = fg_graph_create(&g, model);
    if (s == FG_OK) s = fg_zoo_build(g, model, mc, io);
    for (int i = 0; s == FG_OK && mc->force_conv_algo && i < fg_graph_n_nodes(g); i++)
        if (fg_graph_node(g, i)->op == FG_OP_CONV2D) s = fg_graph_set_algo(g, i, mc->conv_algo);
    if (s != FG_OK) {
        /* fg_graph_build was not reached: the policy is still ours to destroy */
        if (pol.destroy) pol.destroy(pol.self);
        fg_graph_free(g);
        return s;
    }
    fg_graph_mark_output(g, io->logits);
    s = fg_graph_build(g, train ? io->loss : FG_NONE, pool, &pol);
    if (s != FG_OK) {
        fg_graph_free(g);
        return s;
    }
    *out = g;
    return FG_OK;
}

static int64_t argmax_row(const float *row, int64_t k) {
    int64_t best = 0;
    for (int64_t j = 1; j < k; j++)
        if (row[j] > row[best]) best = j;
    return best;
}

/* Number of rows among the first `rows` whose argmax equals the label (NaN logits never match). */
static int64_t count_correct(const float *logits, const int32_t *labels, int64_t rows, int64_t k) {
    int64_t c = 0;
    for (int64_t i = 0; i < rows; i++) {
        const float *r = logits + i * k;
        int64_t a = argmax_row(r, k);
        if (a == labels[i] && !isnan(r[a])) c++;
    }
    return c;
}

/* Labels must index the logits: cross-entropy reads logits[label]. */
static fg_status check_labels(const fg_dataset *d, int64_t classes, const char *what) {
    for (int64_t i = 0; i < d->n; i++)
        if (d->labels[i] < 0 || d->labels[i] >= classes)
            return fg_fail(FG_ERR_FORMAT, "%s: label %d of image %lld is outside [0, %lld)", what, (int)d->labels[i],
                           (long long)i, (long long)classes);
    return FG_OK;
}

fg_status fg_eval_accuracy(fg_graph *g, const fg_model_io *io, const fg_dataset *d, double *acc) {
    *acc = 0.0;
    const fg_tinfo *xi = fg_graph_tinfo(g, io->input);
    const fg_tinfo *li = fg_graph_tinfo(g, io->logits);
    int64_t B = xi->t.shape[0];
    int64_t K = li->t.shape[1];
    size_t img = (size_t)(d->c * d->h * d->w);
    if ((int64_t)img * B != fg_tensor_numel(&xi->t))
        return fg_fail(FG_ERR_SHAPE, "evaluate: data images are %lldx%lldx%lld, the model '%s' takes %lld values per image",
                       (long long)d->c, (long long)d->h, (long long)d->w, fg_graph_name(g),
                       (long long)(fg_tensor_numel(&xi->t) / B));
    if (d->n <= 0) return fg_fail(FG_ERR_INVALID, "evaluate: empty data set");
    FG_TRY(check_labels(d, K, "evaluate"));
    float *x = malloc(img * (size_t)B * sizeof(float));
    int32_t *y = malloc((size_t)B * sizeof(int32_t));
    float *logits = malloc((size_t)(B * K) * sizeof(float));
    fg_status s = (x && y && logits) ? FG_OK : fg_fail(FG_ERR_OOM, "evaluate: out of host memory");
    int64_t correct = 0;
    const int was_training = fg_graph_training(g);
    fg_graph_set_training(g, 0);
    for (int64_t start = 0; s == FG_OK && start < d->n; start += B) {
        int64_t rows = d->n - start < B ? d->n - start : B;
        for (int64_t i = 0; i < B; i++) {
            /* padded rows repeat the first rows of the set; they are not counted */
            int64_t src = i < rows ? start + i : (i - rows) % d->n;
            memcpy(x + (size_t)i * img, d->images + (size_t)src * img, img * sizeof(float));
            y[i] = d->labels[src];
        }
        s = fg_graph_set_input(g, io->input, x, img * (size_t)B * sizeof(float));
        if (s == FG_OK && io->labels != FG_NONE) s = fg_graph_set_input(g, io->labels, y, (size_t)B * sizeof(int32_t));
        if (s == FG_OK) s = fg_graph_forward(g);
        if (s == FG_OK) s = fg_graph_read(g, io->logits, logits, (size_t)(B * K) * sizeof(float));
        if (s == FG_OK) correct += count_correct(logits, y, rows, K);
    }
    free(x);
    free(y);
    free(logits);
    fg_graph_set_training(g, was_training);
    if (s == FG_OK) *acc = (double)correct / (double)d->n;
    return s;
}

/* ---------------------------------------------------------------- metadata helpers */

typedef struct meta_list {
    int n;
    char keys[64][48];
    char *vals[64];
} meta_list;

static fg_status meta_add(meta_list *m, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static fg_status meta_add(meta_list *m, const char *key, const char *fmt, ...) {
    FG_ASSERT(m->n < 64 && strlen(key) < sizeof m->keys[0]);
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *v = malloc((size_t)len + 1);
    if (!v) return fg_fail(FG_ERR_OOM, "checkpoint metadata: out of host memory");
    va_start(ap, fmt);
    vsnprintf(v, (size_t)len + 1, fmt, ap);
    va_end(ap);
    snprintf(m->keys[m->n], sizeof m->keys[0], "%s", key);
    m->vals[m->n++] = v;
    return FG_OK;
}

static void meta_clear(meta_list *m) {
    for (int i = 0; i < m->n; i++) free(m->vals[i]);
    m->n = 0;
}

static fg_status meta_save(fg_graph *g, const fg_optim *o, const char *path, const meta_list *m) {
    const char *keys[64], *vals[64];
    for (int i = 0; i < m->n; i++) {
        keys[i] = m->keys[i];
        vals[i] = m->vals[i];
    }
    return fg_graph_save(g, o, path, m->n, keys, vals);
}

/* Doubles are written as C99 hex floats ("%a") so they round-trip exactly; decimal is accepted. */
static fg_status meta_f32(const fg_st_file *f, const char *key, float *out) {
    double d;
    FG_TRY(fg_st_meta_f64(f, key, &d));
    *out = (float)d;
    return FG_OK;
}

static fg_status meta_rng(const fg_st_file *f, const char *path, const char *key, fg_rng *out) {
    const char *v;
    FG_TRY(fg_st_meta_str(f, key, &v));
    const char *p = v;
    for (int i = 0; i < 4; i++) {
        char *end;
        errno = 0;
        out->s[i] = strtoull(p, &end, 16);
        if (errno || end == p || (i < 3 && *end != ',') || (i == 3 && *end))
            return fg_fail(FG_ERR_FORMAT, "%s: metadata '%s' is '%.80s', expected 4 comma-separated hex u64", path, key, v);
        p = end + 1;
    }
    if (!(out->s[0] | out->s[1] | out->s[2] | out->s[3]))
        return fg_fail(FG_ERR_FORMAT, "%s: metadata '%s' is an all-zero rng state", path, key);
    return FG_OK;
}

static fg_status parse_shape(const char *path, const char *v, fg_model_cfg *mc) {
    long long c, h, w;
    char extra;
    if (sscanf(v, "%lldx%lldx%lld%c", &c, &h, &w, &extra) != 3 || c <= 0 || h <= 0 || w <= 0 || c > 65536 ||
        h > 65536 || w > 65536)
        return fg_fail(FG_ERR_FORMAT, "%s: metadata 'input' is '%s', expected CxHxW", path, v);
    mc->channels = c;
    mc->height = h;
    mc->width = w;
    return FG_OK;
}

static fg_status read_info(const fg_st_file *f, const char *path, fg_ckpt_info *out) {
    memset(out, 0, sizeof *out);
    const char *v;
    FG_TRY(fg_st_meta_str(f, "kind", &v));
    if (strcmp(v, "checkpoint") == 0) out->is_checkpoint = 1;
    else if (strcmp(v, "weights") != 0)
        return fg_fail(FG_ERR_FORMAT, "%s: metadata 'kind' is '%s', expected checkpoint or weights", path, v);
    FG_TRY(fg_st_meta_str(f, "model", &v));
    if (strlen(v) >= sizeof out->model) return fg_fail(FG_ERR_FORMAT, "%s: model name too long", path);
    snprintf(out->model, sizeof out->model, "%s", v);
    v = fg_st_meta(f, "data");
    snprintf(out->data, sizeof out->data, "%s", v ? v : "");
    FG_TRY(fg_st_meta_str(f, "input", &v));
    FG_TRY(parse_shape(path, v, &out->mc));
    FG_TRY(fg_st_meta_i64(f, "classes", 1, 1 << 24, &out->mc.classes));
    FG_TRY(fg_st_meta_i64(f, "batch", 1, 1 << 24, &out->mc.batch));
    out->mc.dropout = -1.0f;
    if (!out->is_checkpoint) return FG_OK;

    FG_TRY(fg_st_meta_str(f, "optim.kind", &v));
    if (fg_optim_kind_parse(v, &out->optim.kind) != FG_OK)
        return fg_fail(FG_ERR_FORMAT, "%s: metadata optim.kind = '%.64s': %s", path, v, fg_last_error());
    out->optim = fg_optim_defaults(out->optim.kind, 1e-3f);
    int64_t eis = 0, ep = 0;
    FG_TRY(meta_f32(f, "train.lr", &out->optim.lr));
    FG_TRY(meta_f32(f, "train.momentum", &out->optim.momentum));
    FG_TRY(meta_f32(f, "train.weight_decay", &out->optim.weight_decay));
    FG_TRY(meta_f32(f, "train.beta1", &out->optim.beta1));
    FG_TRY(meta_f32(f, "train.beta2", &out->optim.beta2));
    FG_TRY(meta_f32(f, "train.eps", &out->optim.eps));
    FG_TRY(meta_f32(f, "train.alpha", &out->optim.alpha));
    FG_TRY(meta_f32(f, "train.lr_decay", &out->lr_decay));
    FG_TRY(fg_st_meta_i64(f, "train.eps_inside_sqrt", 0, 1, &eis));
    out->optim.eps_inside_sqrt = (int)eis;
    FG_TRY(fg_st_meta_u64(f, "train.seed", &out->seed));
    FG_TRY(fg_st_meta_i64(f, "train.epoch", 0, 1 << 30, &ep));
    out->epoch = (int)ep;
    FG_TRY(fg_st_meta_i64(f, "train.step", 0, INT64_MAX, &out->step));
    return FG_OK;
}

fg_status fg_ckpt_read_info(const char *path, fg_ckpt_info *out) {
    memset(out, 0, sizeof *out);
    fg_st_file *f = NULL;
    FG_TRY(fg_st_load_header(path, &f));
    fg_status s = read_info(f, path, out);
    fg_st_free(f);
    return s;
}

/* ---------------------------------------------------------------- the trainer */

struct fg_trainer {
    char model[FG_NAME_MAX];
    char data[FG_NAME_MAX];
    char *ckpt_path;
    fg_train_cfg cfg;
    fg_model_cfg mc;
    const fg_dataset *train, *test;
    fg_graph *g;
    fg_model_io io;
    fg_optim *opt;

    fg_rng rng;       /* data order and dropout seeds; the state now */
    fg_rng epoch_rng; /* its state at the start of the current epoch (the order is derived from it) */
    int epoch;        /* epochs completed */
    int64_t step;     /* batches completed in the current epoch */
    int64_t n_batches;
    int order_epoch;  /* epoch for which order[] is valid, -1 = none */
    double loss_sum;  /* sum of batch losses in this epoch */
    int64_t correct, seen;
    double epoch_seconds; /* time spent in the current epoch by this process */
    int interrupted;

    int64_t *order;
    float *xbuf;
    int32_t *ybuf;
    float *logits;
    fg_epoch_result *hist;
    int n_hist, cap_hist;
};

fg_train_cfg fg_train_defaults(void) {
    fg_train_cfg c;
    memset(&c, 0, sizeof c);
    c.epochs = 10;
    c.batch = 64;
    c.optim = fg_optim_defaults(FG_OPTIM_ADAM, 1e-3f);
    c.lr_decay = 1.0f;
    c.seed = 1;
    return c;
}

/* The weight-init stream and the training stream are separate so that changing how many numbers
 * one of them uses never shifts the other. */
static void seed_streams(uint64_t seed, fg_rng *init, fg_rng *train) {
    fg_rng_seed(init, seed);
    fg_rng_seed(train, seed ^ 0x5DEECE66DA3B9F21ull);
}

fg_status fg_trainer_create(fg_trainer **out, const char *model, const fg_model_cfg *mc, const fg_train_cfg *cfg,
                            const fg_dataset *train, const fg_dataset *test, fg_pool *pool,
                            const fg_mem_policy *policy) {
    *out = NULL;
    if (!model || !cfg || !train || !pool) return fg_fail(FG_ERR_INVALID, "trainer: model, cfg, train and pool are required");
    if (cfg->epochs < 0) return fg_fail(FG_ERR_INVALID, "trainer: epochs is %d, expected >= 0", cfg->epochs);
    if (cfg->batch <= 0) return fg_fail(FG_ERR_INVALID, "trainer: batch is %lld, expected > 0", (long long)cfg->batch);
    if (!(cfg->lr_decay >= 0.0f && cfg->lr_decay <= 1.0f))
        return fg_fail(FG_ERR_INVALID, "trainer: lr_decay is %g, expected in [0, 1] (0 or 1 = constant)",
                       (double)cfg->lr_decay);
    if (cfg->checkpoint_every < 0)
        return fg_fail(FG_ERR_INVALID, "trainer: checkpoint_every is %lld, expected >= 0", (long long)cfg->checkpoint_every);
    if (train->n < cfg->batch)
        return fg_fail(FG_ERR_INVALID, "trainer: the training set has %lld images, fewer than one batch of %lld",
                       (long long)train->n, (long long)cfg->batch);
    if (test && (test->c != train->c || test->h != train->h || test->w != train->w))
        return fg_fail(FG_ERR_SHAPE, "trainer: test images are %lldx%lldx%lld, training images %lldx%lldx%lld",
                       (long long)test->c, (long long)test->h, (long long)test->w, (long long)train->c,
                       (long long)train->h, (long long)train->w);
    if (strlen(model) >= FG_NAME_MAX) return fg_fail(FG_ERR_INVALID, "trainer: model name too long");
    fg_trainer *t = calloc(1, sizeof *t);
    if (!t) return fg_fail(FG_ERR_OOM, "trainer: out of host memory");
    snprintf(t->model, sizeof t->model, "%s", model);
    snprintf(t->data, sizeof t->data, "%s", cfg->data_name ? cfg->data_name : "");
    t->cfg = *cfg;
    t->cfg.data_name = NULL;
    t->cfg.checkpoint_path = NULL;
    t->train = train;
    t->test = test;
    t->order_epoch = -1;
    if (mc) {
        t->mc = *mc;
    } else {
        t->mc.channels = train->c;
        t->mc.height = train->h;
        t->mc.width = train->w;
        t->mc.classes = train->n_classes;
        t->mc.dropout = -1.0f;
    }
    t->mc.batch = cfg->batch;
    fg_status s = FG_OK;
    if (t->mc.channels != train->c || t->mc.height != train->h || t->mc.width != train->w)
        s = fg_fail(FG_ERR_SHAPE, "trainer: model input %lldx%lldx%lld, data images %lldx%lldx%lld",
                    (long long)t->mc.channels, (long long)t->mc.height, (long long)t->mc.width, (long long)train->c,
                    (long long)train->h, (long long)train->w);
    if (s == FG_OK) s = check_labels(train, t->mc.classes, "training set");
    if (s == FG_OK && test) s = check_labels(test, t->mc.classes, "test set");
    if (s == FG_OK && cfg->checkpoint_path) {
        t->ckpt_path = strdup(cfg->checkpoint_path);
        if (!t->ckpt_path) s = fg_fail(FG_ERR_OOM, "trainer: out of host memory");
    }
    if (s == FG_OK) s = fg_train_build_model(&t->g, &t->io, model, &t->mc, 1, pool, policy);
    if (s == FG_OK) s = fg_optim_create(&t->opt, t->g, &cfg->optim);
    if (s == FG_OK) {
        size_t img = (size_t)(train->c * train->h * train->w);
        size_t B = (size_t)cfg->batch;
        t->order = malloc((size_t)train->n * sizeof(int64_t));
        t->xbuf = malloc(img * B * sizeof(float));
        t->ybuf = malloc(B * sizeof(int32_t));
        t->logits = malloc(B * (size_t)t->mc.classes * sizeof(float));
        if (!t->order || !t->xbuf || !t->ybuf || !t->logits) s = fg_fail(FG_ERR_OOM, "trainer: out of host memory");
    }
    if (s != FG_OK) {
        fg_trainer_free(t);
        return s;
    }
    fg_rng init;
    seed_streams(cfg->seed, &init, &t->rng);
    t->epoch_rng = t->rng;
    fg_graph_init_params(t->g, &init);
    fg_graph_zero_grad(t->g);
    t->n_batches = train->n / cfg->batch;
    *out = t;
    return FG_OK;
}

void fg_trainer_free(fg_trainer *t) {
    if (!t) return;
    fg_optim_free(t->opt);
    fg_graph_free(t->g);
    free(t->ckpt_path);
    free(t->order);
    free(t->xbuf);
    free(t->ybuf);
    free(t->logits);
    free(t->hist);
    free(t);
}

fg_graph *fg_trainer_graph(fg_trainer *t) { return t->g; }
const fg_model_io *fg_trainer_io(const fg_trainer *t) { return &t->io; }
int fg_trainer_epochs_done(const fg_trainer *t) { return t->n_hist; }
const fg_epoch_result *fg_trainer_history(const fg_trainer *t) { return t->hist; }
int fg_trainer_interrupted(const fg_trainer *t) { return t->interrupted; }

fg_status fg_trainer_test_accuracy(fg_trainer *t, double *acc) {
    *acc = -1.0;
    if (!t->test || t->test->n == 0) return FG_OK;
    return fg_eval_accuracy(t->g, &t->io, t->test, acc);
}

static fg_status hist_push(fg_trainer *t, const fg_epoch_result *r) {
    if (t->n_hist == t->cap_hist) {
        int cap = t->cap_hist ? 2 * t->cap_hist : 16;
        fg_epoch_result *h = realloc(t->hist, (size_t)cap * sizeof *h);
        if (!h) return fg_fail(FG_ERR_OOM, "trainer: out of host memory");
        t->hist = h;
        t->cap_hist = cap;
    }
    t->hist[t->n_hist++] = *r;
    return FG_OK;
}

/* The order of the current epoch: a shuffle of the identity driven by a copy of epoch_rng;
 * returns the rng state after the shuffle. */
static fg_rng make_order(fg_trainer *t) {
    fg_rng r = t->epoch_rng;
    for (int64_t i = 0; i < t->train->n; i++) t->order[i] = i;
    fg_rng_shuffle(&r, t->order, (size_t)t->train->n);
    t->order_epoch = t->epoch;
    return r;
}

/* ---------------------------------------------------------------- checkpoints */

static fg_status model_meta(fg_trainer *t, meta_list *m, const char *kind) {
    FG_TRY(meta_add(m, "kind", "%s", kind));
    FG_TRY(meta_add(m, "model", "%s", t->model));
    FG_TRY(meta_add(m, "data", "%s", t->data));
    FG_TRY(meta_add(m, "input", "%lldx%lldx%lld", (long long)t->mc.channels, (long long)t->mc.height,
                    (long long)t->mc.width));
    FG_TRY(meta_add(m, "classes", "%lld", (long long)t->mc.classes));
    FG_TRY(meta_add(m, "batch", "%lld", (long long)t->mc.batch));
    return FG_OK;
}

static fg_status add_rng(meta_list *m, const char *key, const fg_rng *r) {
    return meta_add(m, key, "%016" PRIx64 ",%016" PRIx64 ",%016" PRIx64 ",%016" PRIx64, r->s[0], r->s[1], r->s[2],
                    r->s[3]);
}

/* train.history: per epoch loss, train_acc, test_acc, seconds (fg_st_meta_table_text) */
static fg_status history_str(const fg_trainer *t, char **out) {
    double *x = malloc((size_t)(t->n_hist > 0 ? t->n_hist : 1) * 4 * sizeof(double));
    if (!x) return fg_fail(FG_ERR_OOM, "checkpoint metadata: out of host memory");
    for (int i = 0; i < t->n_hist; i++) {
        const fg_epoch_result *r = &t->hist[i];
        x[4 * i] = r->loss, x[4 * i + 1] = r->train_acc, x[4 * i + 2] = r->test_acc, x[4 * i + 3] = r->seconds;
    }
    fg_status s = fg_st_meta_table_text(x, t->n_hist, 4, out);
    free(x);
    return s;
}

static fg_status checkpoint_meta(fg_trainer *t, meta_list *m) {
    const fg_optim_cfg *o = &t->cfg.optim;
    FG_TRY(model_meta(t, m, "checkpoint"));
    FG_TRY(meta_add(m, "train.seed", "%" PRIu64, t->cfg.seed));
    FG_TRY(meta_add(m, "train.lr", "%.9g", (double)o->lr));
    FG_TRY(meta_add(m, "train.lr_decay", "%.9g", (double)t->cfg.lr_decay));
    FG_TRY(meta_add(m, "train.momentum", "%.9g", (double)o->momentum));
    FG_TRY(meta_add(m, "train.weight_decay", "%.9g", (double)o->weight_decay));
    FG_TRY(meta_add(m, "train.beta1", "%.9g", (double)o->beta1));
    FG_TRY(meta_add(m, "train.beta2", "%.9g", (double)o->beta2));
    FG_TRY(meta_add(m, "train.eps", "%.9g", (double)o->eps));
    FG_TRY(meta_add(m, "train.alpha", "%.9g", (double)o->alpha));
    FG_TRY(meta_add(m, "train.eps_inside_sqrt", "%d", o->eps_inside_sqrt ? 1 : 0));
    FG_TRY(meta_add(m, "train.epoch", "%d", t->epoch));
    FG_TRY(meta_add(m, "train.step", "%lld", (long long)t->step));
    FG_TRY(meta_add(m, "train.n_train", "%lld", (long long)t->train->n));
    /* At a step-0 boundary the epoch has not begun: the state to resume from is the one before
     * the shuffle, which run() keeps in rng until it starts the epoch. */
    FG_TRY(add_rng(m, "train.rng", &t->rng));
    FG_TRY(add_rng(m, "train.epoch_rng", &t->epoch_rng));
    FG_TRY(meta_add(m, "train.loss_sum", "%a", t->loss_sum));
    FG_TRY(meta_add(m, "train.correct", "%lld", (long long)t->correct));
    FG_TRY(meta_add(m, "train.seen", "%lld", (long long)t->seen));
    FG_TRY(meta_add(m, "train.epoch_seconds", "%a", t->epoch_seconds));
    char *h = NULL;
    FG_TRY(history_str(t, &h));
    fg_status s = meta_add(m, "train.history", "%s", h);
    free(h);
    return s;
}

fg_status fg_trainer_save_checkpoint(fg_trainer *t, const char *path) {
    meta_list m;
    m.n = 0;
    fg_status s = checkpoint_meta(t, &m);
    if (s == FG_OK) s = meta_save(t->g, t->opt, path, &m);
    meta_clear(&m);
    if (s == FG_OK) fg_log(FG_LOG_DEBUG, "checkpoint %s: epoch %d, step %lld", path, t->epoch, (long long)t->step);
    return s;
}

fg_status fg_trainer_save_weights(fg_trainer *t, const char *path) {
    meta_list m;
    m.n = 0;
    fg_status s = model_meta(t, &m, "weights");
    if (s == FG_OK) s = meta_save(t->g, NULL, path, &m);
    meta_clear(&m);
    return s;
}

static fg_status parse_history(fg_trainer *t, const fg_st_file *f) {
    double *x;
    int64_t n;
    FG_TRY(fg_st_meta_table(f, "train.history", 4, INT32_MAX, &x, &n));
    t->n_hist = 0;
    fg_status s = FG_OK;
    for (int64_t i = 0; i < n && s == FG_OK; i++) {
        fg_epoch_result r = {t->n_hist, x[4 * i], x[4 * i + 1], x[4 * i + 2], x[4 * i + 3]};
        s = hist_push(t, &r);
    }
    free(x);
    return s;
}

static fg_status resume_from(fg_trainer *t, const fg_st_file *f, const char *path) {
    fg_ckpt_info info;
    FG_TRY(read_info(f, path, &info));
    if (!info.is_checkpoint)
        return fg_fail(FG_ERR_INVALID, "%s holds weights only, not a training checkpoint (use --load to start from weights)",
                       path);
    if (strcmp(info.model, t->model) != 0)
        return fg_fail(FG_ERR_INVALID, "%s is a checkpoint of model '%s', the run trains '%s'", path, info.model, t->model);
    if (info.mc.channels != t->mc.channels || info.mc.height != t->mc.height || info.mc.width != t->mc.width ||
        info.mc.classes != t->mc.classes)
        return fg_fail(FG_ERR_INVALID, "%s: input %lldx%lldx%lld with %lld classes, the run has %lldx%lldx%lld with %lld",
                       path, (long long)info.mc.channels, (long long)info.mc.height, (long long)info.mc.width,
                       (long long)info.mc.classes, (long long)t->mc.channels, (long long)t->mc.height,
                       (long long)t->mc.width, (long long)t->mc.classes);
    if (info.mc.batch != t->mc.batch)
        return fg_fail(FG_ERR_INVALID, "%s was trained with batch %lld, the run uses %lld", path,
                       (long long)info.mc.batch, (long long)t->mc.batch);
    if (info.seed != t->cfg.seed)
        return fg_fail(FG_ERR_INVALID, "%s was trained with seed %" PRIu64 ", the run uses %" PRIu64, path, info.seed,
                       t->cfg.seed);
    if (info.data[0] && t->data[0] && strcmp(info.data, t->data) != 0)
        return fg_fail(FG_ERR_INVALID, "%s was trained on '%s', the run uses '%s'", path, info.data, t->data);
    int64_t n_train, correct, seen;
    FG_TRY(fg_st_meta_i64(f, "train.n_train", 1, INT64_MAX, &n_train));
    if (n_train != t->train->n)
        return fg_fail(FG_ERR_INVALID, "%s was trained on %lld images, the run has %lld", path, (long long)n_train,
                       (long long)t->train->n);
    if (info.step >= t->n_batches)
        return fg_fail(FG_ERR_FORMAT, "%s: step %lld is past the %lld batches of an epoch", path, (long long)info.step,
                       (long long)t->n_batches);
    if (info.optim.kind != t->cfg.optim.kind)
        return fg_fail(FG_ERR_INVALID, "%s holds %s optimizer state, the run uses %s", path,
                       fg_optim_kind_name(info.optim.kind), fg_optim_kind_name(t->cfg.optim.kind));
    fg_rng rng, erng;
    double loss_sum, esec;
    FG_TRY(meta_rng(f, path, "train.rng", &rng));
    FG_TRY(meta_rng(f, path, "train.epoch_rng", &erng));
    FG_TRY(fg_st_meta_f64(f, "train.loss_sum", &loss_sum));
    FG_TRY(fg_st_meta_f64(f, "train.epoch_seconds", &esec));
    FG_TRY(fg_st_meta_i64(f, "train.correct", 0, INT64_MAX, &correct));
    FG_TRY(fg_st_meta_i64(f, "train.seen", 0, INT64_MAX, &seen));
    if (correct > seen || seen != info.step * t->mc.batch)
        return fg_fail(FG_ERR_FORMAT, "%s: inconsistent running counts (correct %lld, seen %lld, step %lld)", path,
                       (long long)correct, (long long)seen, (long long)info.step);
    FG_TRY(parse_history(t, f));
    if (t->n_hist != info.epoch)
        return fg_fail(FG_ERR_FORMAT, "%s: history has %d epochs, the checkpoint says %d were done", path, t->n_hist,
                       info.epoch);
    /* weights, batch-norm state and optimizer moments (shapes checked by name) */
    FG_TRY(fg_graph_load(t->g, t->opt, path));
    t->rng = rng;
    t->epoch_rng = erng;
    t->epoch = info.epoch;
    t->step = info.step;
    t->loss_sum = loss_sum;
    t->correct = correct;
    t->seen = seen;
    t->epoch_seconds = esec;
    t->order_epoch = -1;
    if (t->step > 0) (void)make_order(t);
    fg_graph_zero_grad(t->g);
    return FG_OK;
}

fg_status fg_trainer_resume(fg_trainer *t, const char *path) {
    fg_st_file *f = NULL;
    FG_TRY(fg_st_load(path, &f));
    fg_status s = resume_from(t, f, path);
    fg_st_free(f);
    if (s == FG_OK)
        fg_log(FG_LOG_INFO, "resumed from %s: %d epochs done, step %lld of epoch %d", path, t->epoch,
               (long long)t->step, t->epoch + 1);
    return s;
}

/* ---------------------------------------------------------------- the loop */

static fg_status run_batch(fg_trainer *t) {
    const fg_dataset *d = t->train;
    size_t img = (size_t)(d->c * d->h * d->w);
    int64_t B = t->cfg.batch, K = t->mc.classes;
    const int64_t *idx = t->order + t->step * B;
    for (int64_t i = 0; i < B; i++) {
        memcpy(t->xbuf + (size_t)i * img, d->images + (size_t)idx[i] * img, img * sizeof(float));
        t->ybuf[i] = d->labels[idx[i]];
    }
    fg_graph *g = t->g;
    FG_TRY(fg_graph_set_input(g, t->io.input, t->xbuf, img * (size_t)B * sizeof(float)));
    FG_TRY(fg_graph_set_input(g, t->io.labels, t->ybuf, (size_t)B * sizeof(int32_t)));
    fg_graph_set_training(g, 1);
    fg_graph_set_seed(g, fg_rng_u64(&t->rng));
    FG_TRY(fg_graph_forward(g));
    float loss = fg_graph_loss(g);
    if (!isfinite(loss)) {
        /* a NaN or an infinity in the data is not a divergence: say which example holds it */
        for (int64_t i = 0; i < B; i++)
            for (size_t j = 0; j < img; j++)
                if (!isfinite(t->xbuf[(size_t)i * img + j]))
                    return fg_fail(FG_ERR_INVALID, "training data: example %lld of the training set holds a non-finite "
                                   "value (%g at element %zu): the loss is %g at epoch %d, batch %lld",
                                   (long long)idx[i], (double)t->xbuf[(size_t)i * img + j], j, (double)loss,
                                   t->epoch + 1, (long long)t->step + 1);
        return fg_fail(FG_ERR_INVALID, "training diverged: loss is %g at epoch %d, batch %lld (lower the learning rate)",
                       (double)loss, t->epoch + 1, (long long)t->step + 1);
    }
    FG_TRY(fg_graph_read(g, t->io.logits, t->logits, (size_t)(B * K) * sizeof(float)));
    t->correct += count_correct(t->logits, t->ybuf, B, K);
    t->seen += B;
    t->loss_sum += (double)loss;
    FG_TRY(fg_graph_backward(g));
    FG_TRY(fg_optim_step(t->opt));
    fg_graph_zero_grad(g);
    t->step++;
    return FG_OK;
}

static fg_status interrupt(fg_trainer *t) {
    t->interrupted = 1;
    if (t->ckpt_path) {
        if (fg_trainer_save_checkpoint(t, t->ckpt_path) != FG_OK) /* never FG_TRAIN_INTERRUPTED's code */
            return fg_fail(FG_ERR_IO, "interrupted at epoch %d, batch %lld, and the checkpoint could not be written: "
                           "%s", t->epoch + 1, (long long)t->step, fg_last_error());
        return fg_fail(FG_TRAIN_INTERRUPTED, "interrupted at epoch %d, batch %lld; checkpoint written to %s", t->epoch + 1,
                       (long long)t->step, t->ckpt_path);
    }
    return fg_fail(FG_TRAIN_INTERRUPTED, "interrupted at epoch %d, batch %lld (no checkpoint path set)", t->epoch + 1,
                   (long long)t->step);
}

static int stop_requested(const fg_trainer *t) { return t->cfg.stop && *t->cfg.stop; }

/* The learning rate of the current epoch: lr * lr_decay^epoch, a function of the epoch alone so
 * that a resumed run uses the same rates. graph.h has no setter for the rate, so this writes the
 * optimizer's own cfg (a non-const object behind the const accessor). */
static void apply_lr(fg_trainer *t) {
    double d = t->cfg.lr_decay;
    float lr = t->cfg.optim.lr;
    if (d > 0.0 && d < 1.0) lr = (float)((double)lr * pow(d, (double)t->epoch));
    fg_optim_set_lr(t->opt, lr);
}

fg_status fg_trainer_run(fg_trainer *t) {
    t->interrupted = 0;
    while (t->epoch < t->cfg.epochs) {
        if (t->step == 0) {
            if (stop_requested(t)) return interrupt(t);
            /* begin the epoch: remember the state the order comes from */
            t->epoch_rng = t->rng;
            t->rng = make_order(t);
            t->loss_sum = 0.0;
            t->correct = t->seen = 0;
            t->epoch_seconds = 0.0;
        } else if (t->order_epoch != t->epoch) {
            (void)make_order(t);
        }
        apply_lr(t);
        double t0 = fg_time_now();
        while (t->step < t->n_batches) {
            if (t->step > 0 && stop_requested(t)) {
                t->epoch_seconds += fg_time_now() - t0;
                return interrupt(t);
            }
            FG_TRY(run_batch(t));
            if (t->cfg.on_batch) {
                fg_train_progress p = {t->epoch, t->cfg.epochs, t->step, t->n_batches, t->loss_sum / (double)t->step,
                                       (double)t->correct / (double)t->seen};
                t->cfg.on_batch(&p, t->cfg.user);
            }
            if (t->ckpt_path && t->cfg.checkpoint_every > 0 && t->step % t->cfg.checkpoint_every == 0 &&
                t->step < t->n_batches) {
                double now = fg_time_now();
                t->epoch_seconds += now - t0;
                t0 = now;
                FG_TRY(fg_trainer_save_checkpoint(t, t->ckpt_path));
            }
        }
        fg_epoch_result r;
        r.epoch = t->epoch;
        r.loss = t->loss_sum / (double)t->n_batches;
        r.train_acc = (double)t->correct / (double)t->seen;
        FG_TRY(fg_trainer_test_accuracy(t, &r.test_acc));
        r.seconds = t->epoch_seconds + (fg_time_now() - t0);
        FG_TRY(hist_push(t, &r));
        t->epoch++;
        t->step = 0;
        t->loss_sum = 0.0;
        t->correct = t->seen = 0;
        t->epoch_seconds = 0.0;
        /* at a step-0 boundary epoch_rng must equal rng: a resume begins the next epoch from it */
        t->epoch_rng = t->rng;
        if (t->ckpt_path) FG_TRY(fg_trainer_save_checkpoint(t, t->ckpt_path));
        if (t->cfg.on_epoch) t->cfg.on_epoch(&r, t->cfg.user);
    }
    return FG_OK;
}
