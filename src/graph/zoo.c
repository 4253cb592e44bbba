/* The model zoo: builders for the networks of the vDNN paper (AlexNet, OverFeat, VGG-16 and the
 * deep VGG-116..416, GoogLeNet) and the small ones the tests and the CLI train (MLP, LeNet-5),
 * written only with the graph builder (fg_nn_*, fg_layer_*).
 *
 * Every model takes input (batch, channels, height, width) f32 "input" and labels (batch) i32
 * "labels", produces logits (batch, classes) and the mean cross-entropy "loss". Errors are the
 * builder's sticky ones; fg_zoo_build wraps the first with the model name and, for an input that
 * is too small, the smallest height/width the model accepts.
 *
 * Naming (docs/MODELS.md): where PyTorch has the network as nn.Sequential blocks (torchvision's
 * VGG; AlexNet and OverFeat written the same way) parameters are "features.<i>.weight" and
 * "classifier.<i>.weight", with <i> the module index inside the Sequential, counting the
 * parameter-free modules (ReLU, LRN, pooling, dropout) too. Dropout keeps its index when it is
 * disabled, so weights load whatever the dropout setting. Otherwise names are readable module
 * names ("conv1.weight", "inception3a.branch2.1.bias", "fc.weight"). Parameters are created in
 * the order of the equivalent torch module's state_dict (tests/fixtures/gen_zoo.py). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "frugal/zoo.h"

/* ---------------------------------------------------------------- building helpers */

/* A builder in progress: the graph, the resolved dropout, and the running module index of the
 * Sequential being written ("features" or "classifier"). */
typedef struct zb {
    fg_graph *g;
    float dropout;
    const char *seq;
    int idx;
} zb;

/* Name of the next module of the current Sequential ("features.7"); advances the index. */
static const char *seq_name(zb *b, char *buf, size_t cap) {
    snprintf(buf, cap, "%s.%d", b->seq, b->idx++);
    return buf;
}

static void seq_begin(zb *b, const char *seq) {
    b->seq = seq;
    b->idx = 0;
}

static fg_id seq_conv(zb *b, fg_id x, int64_t oc, int64_t k, int64_t stride, int64_t pad) {
    char nm[FG_NAME_MAX + 16];
    return fg_layer_conv2d(b->g, seq_name(b, nm, sizeof nm), x, oc, k, stride, pad, 1);
}

static fg_id seq_linear(zb *b, fg_id x, int64_t out) {
    char nm[FG_NAME_MAX + 16];
    return fg_layer_linear(b->g, seq_name(b, nm, sizeof nm), x, out, 1);
}

static fg_id seq_relu(zb *b, fg_id x) {
    char nm[FG_NAME_MAX + 16];
    return fg_nn_relu(b->g, seq_name(b, nm, sizeof nm), x);
}

static fg_id seq_maxpool(zb *b, fg_id x, int64_t k, int64_t stride) {
    char nm[FG_NAME_MAX + 16];
    fg_pool_opts o = {k, stride, 0, 0, 0};
    return fg_nn_maxpool2d(b->g, seq_name(b, nm, sizeof nm), x, o);
}

static fg_id seq_lrn(zb *b, fg_id x, float k) {
    char nm[FG_NAME_MAX + 16];
    /* size 5, alpha 1e-4, beta 0.75 as in the Caffe reference models; alpha is divided by the
     * size (PyTorch/Caffe convention, ops.h) */
    return fg_nn_lrn(b->g, seq_name(b, nm, sizeof nm), x, 5, 1e-4f, 0.75f, k);
}

/* Dropout with the model's rate; with rate 0 no node is made but the index is still used. */
static fg_id seq_dropout(zb *b, fg_id x) {
    char nm[FG_NAME_MAX + 16];
    seq_name(b, nm, sizeof nm);
    return b->dropout > 0.0f ? fg_nn_dropout(b->g, nm, x, b->dropout) : x;
}

/* Non-Sequential helpers: a conv or linear layer named `name` followed by "<name>.relu". */
static fg_id conv_relu(zb *b, const char *name, fg_id x, int64_t oc, int64_t k, int64_t stride, int64_t pad) {
    char nm[FG_NAME_MAX + 16];
    fg_id y = fg_layer_conv2d(b->g, name, x, oc, k, stride, pad, 1);
    snprintf(nm, sizeof nm, "%.*s.relu", FG_NAME_MAX, name);
    return fg_nn_relu(b->g, nm, y);
}

static fg_id linear_relu(zb *b, const char *name, fg_id x, int64_t out) {
    char nm[FG_NAME_MAX + 16];
    fg_id y = fg_layer_linear(b->g, name, x, out, 1);
    snprintf(nm, sizeof nm, "%.*s.relu", FG_NAME_MAX, name);
    return fg_nn_relu(b->g, nm, y);
}

static fg_id maxpool(zb *b, const char *name, fg_id x, int64_t k, int64_t stride, int64_t pad, int ceil_mode) {
    fg_pool_opts o = {k, stride, pad, ceil_mode, 0};
    return fg_nn_maxpool2d(b->g, name, x, o);
}

/* The classifier shared by AlexNet, OverFeat and VGG: fc h1 -> ReLU -> dropout -> fc h2 -> ReLU
 * -> dropout -> fc classes, as "classifier.0" .. "classifier.6" (torchvision's VGG layout). */
static fg_id classifier(zb *b, fg_id x, int64_t h1, int64_t h2, int64_t classes) {
    x = fg_nn_flatten(b->g, "flatten", x);
    seq_begin(b, "classifier");
    x = seq_dropout(b, seq_relu(b, seq_linear(b, x, h1)));
    x = seq_dropout(b, seq_relu(b, seq_linear(b, x, h2)));
    return seq_linear(b, x, classes);
}

/* ---------------------------------------------------------------- the models */

/* MLP for MNIST: flatten -> fc1 256 -> ReLU -> fc2 128 -> ReLU -> fc3 classes. */
static fg_id build_mlp(zb *b, fg_id x, int64_t classes, int arg) {
    (void)arg;
    x = fg_nn_flatten(b->g, "flatten", x);
    x = linear_relu(b, "fc1", x, 256);
    x = linear_relu(b, "fc2", x, 128);
    return fg_layer_linear(b->g, "fc3", x, classes, 1);
}

/* LeNet-5 with ReLU and max pooling: 28x28 -> conv1 (6, 5x5, pad 2) 28 -> pool 14 -> conv2 (16,
 * 5x5) 10 -> pool 5 -> fc1 120 (from 16*5*5; 16*6*6 at 32x32) -> fc2 84 -> fc3 classes. */
static fg_id build_lenet(zb *b, fg_id x, int64_t classes, int arg) {
    (void)arg;
    x = maxpool(b, "pool1", conv_relu(b, "conv1", x, 6, 5, 1, 2), 2, 2, 0, 0);
    x = maxpool(b, "pool2", conv_relu(b, "conv2", x, 16, 5, 1, 0), 2, 2, 0, 0);
    x = fg_nn_flatten(b->g, "flatten", x);
    x = linear_relu(b, "fc1", x, 120);
    x = linear_relu(b, "fc2", x, 84);
    return fg_layer_linear(b->g, "fc3", x, classes, 1);
}

/* AlexNet (Krizhevsky et al. 2012) in one tower, as vDNN ran it. At 224x224 (conv1 pad 2, as
 * torchvision, so 224 works instead of the paper's 227): conv1 96 11x11/4 -> 55 -> LRN -> pool
 * 3/2 27 -> conv2 256 5x5 p2 -> LRN -> pool 13 -> conv3 384, conv4 384, conv5 256 (3x3 p1) ->
 * pool 6 -> fc 4096 (from 256*6*6) -> fc 4096 -> fc classes. LRN k = 2 as in the paper. */
static fg_id build_alexnet(zb *b, fg_id x, int64_t classes, int arg) {
    (void)arg;
    seq_begin(b, "features");
    x = seq_conv(b, x, 96, 11, 4, 2);                                 /* features.0 */
    x = seq_maxpool(b, seq_lrn(b, seq_relu(b, x), 2.0f), 3, 2);        /* .1 relu .2 lrn .3 pool */
    x = seq_conv(b, x, 256, 5, 1, 2);                                 /* features.4 */
    x = seq_maxpool(b, seq_lrn(b, seq_relu(b, x), 2.0f), 3, 2);        /* .5 .6 .7 */
    x = seq_relu(b, seq_conv(b, x, 384, 3, 1, 1));                    /* .8 .9 */
    x = seq_relu(b, seq_conv(b, x, 384, 3, 1, 1));                    /* .10 .11 */
    x = seq_maxpool(b, seq_relu(b, seq_conv(b, x, 256, 3, 1, 1)), 3, 2); /* .12 .13 .14 */
    return classifier(b, x, 4096, 4096, classes);
}

/* OverFeat "fast" model (Sermanet et al. 2014, table 1). At 231x231: conv1 96 11x11/4 -> 56 ->
 * pool 2/2 28 -> conv2 256 5x5 -> 24 -> pool 12 -> conv3 512, conv4 1024, conv5 1024 (3x3 p1) ->
 * pool 6 -> fc 3072 (from 1024*6*6) -> fc 4096 -> fc classes. */
static fg_id build_overfeat(zb *b, fg_id x, int64_t classes, int arg) {
    (void)arg;
    seq_begin(b, "features");
    x = seq_maxpool(b, seq_relu(b, seq_conv(b, x, 96, 11, 4, 0)), 2, 2);  /* features.0 .1 .2 */
    x = seq_maxpool(b, seq_relu(b, seq_conv(b, x, 256, 5, 1, 0)), 2, 2);  /* .3 .4 .5 */
    x = seq_relu(b, seq_conv(b, x, 512, 3, 1, 1));                       /* .6 .7 */
    x = seq_relu(b, seq_conv(b, x, 1024, 3, 1, 1));                      /* .8 .9 */
    x = seq_maxpool(b, seq_relu(b, seq_conv(b, x, 1024, 3, 1, 1)), 2, 2); /* .10 .11 .12 */
    return classifier(b, x, 3072, 4096, classes);
}

/* VGG-16 (configuration D) and vDNN's deeper VGGs: five groups of 3x3 p1 convs (64, 64 | 128,
 * 128 | 256 x3 | 512 x3 | 512 x3), each group closed by max pool 2/2, then fc 4096 -> 4096 ->
 * classes. `extra` more convs of the group's width are appended to each group, so VGG-N has
 * 16 + 5*extra weighted layers (extra = 20, 40, 60, 80 for VGG-116 .. VGG-416). There is no
 * adaptive average pool (torchvision's resizes to 7x7): the first fc takes 512*(H/32)*(W/32)
 * features, which at 224x224 is torchvision's 512*7*7. */
static fg_id build_vgg(zb *b, fg_id x, int64_t classes, int extra) {
    static const int64_t width[5] = {64, 128, 256, 512, 512};
    static const int convs[5] = {2, 2, 3, 3, 3};
    seq_begin(b, "features");
    for (int grp = 0; grp < 5; grp++) {
        for (int i = 0; i < convs[grp] + extra; i++) x = seq_relu(b, seq_conv(b, x, width[grp], 3, 1, 1));
        x = seq_maxpool(b, x, 2, 2);
    }
    return classifier(b, x, 4096, 4096, classes);
}

/* One Inception module (Szegedy et al. 2015, figure 2b): 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 |
 * maxpool 3/1 p1 -> 1x1, each conv followed by ReLU, concatenated on channels. c holds the
 * paper's table columns: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj. */
static fg_id inception(zb *b, const char *name, fg_id x, const int64_t c[6]) {
    char nm[FG_NAME_MAX + 16];
    fg_id br[4];
    snprintf(nm, sizeof nm, "%s.branch1", name);
    br[0] = conv_relu(b, nm, x, c[0], 1, 1, 0);
    snprintf(nm, sizeof nm, "%s.branch2.0", name);
    br[1] = conv_relu(b, nm, x, c[1], 1, 1, 0);
    snprintf(nm, sizeof nm, "%s.branch2.1", name);
    br[1] = conv_relu(b, nm, br[1], c[2], 3, 1, 1);
    snprintf(nm, sizeof nm, "%s.branch3.0", name);
    br[2] = conv_relu(b, nm, x, c[3], 1, 1, 0);
    snprintf(nm, sizeof nm, "%s.branch3.1", name);
    br[2] = conv_relu(b, nm, br[2], c[4], 5, 1, 2);
    snprintf(nm, sizeof nm, "%s.branch4.0", name);
    br[3] = maxpool(b, nm, x, 3, 1, 1, 1);
    snprintf(nm, sizeof nm, "%s.branch4.1", name);
    br[3] = conv_relu(b, nm, br[3], c[5], 1, 1, 0);
    return fg_nn_concat(b->g, name, br, 4, 1);
}

/* GoogLeNet (Inception v1) without the auxiliary classifiers. At 224x224: conv1 64 7x7/2 p3 112
 * -> pool 3/2 (ceil) 56 -> LRN -> conv2 64 1x1 -> conv3 192 3x3 p1 -> LRN -> pool 28 -> 3a 3b ->
 * pool 14 -> 4a..4e -> pool 7 -> 5a 5b -> global average pool (1024) -> dropout -> fc classes.
 * Pools are 3/2 with ceil mode (Caffe's rounding); LRN k = 1 (Caffe's default). */
static fg_id build_googlenet(zb *b, fg_id x, int64_t classes, int arg) {
    (void)arg;
    static const struct {
        const char *name;
        int64_t c[6];
        int pool_after;
    } mods[9] = {
        {"inception3a", {64, 96, 128, 16, 32, 32}, 0},      {"inception3b", {128, 128, 192, 32, 96, 64}, 1},
        {"inception4a", {192, 96, 208, 16, 48, 64}, 0},     {"inception4b", {160, 112, 224, 24, 64, 64}, 0},
        {"inception4c", {128, 128, 256, 24, 64, 64}, 0},    {"inception4d", {112, 144, 288, 32, 64, 64}, 0},
        {"inception4e", {256, 160, 320, 32, 128, 128}, 1},  {"inception5a", {256, 160, 320, 32, 128, 128}, 0},
        {"inception5b", {384, 192, 384, 48, 128, 128}, 0},
    };
    x = conv_relu(b, "conv1", x, 64, 7, 2, 3);
    x = maxpool(b, "maxpool1", x, 3, 2, 0, 1);
    x = fg_nn_lrn(b->g, "lrn1", x, 5, 1e-4f, 0.75f, 1.0f);
    x = conv_relu(b, "conv2", x, 64, 1, 1, 0);
    x = conv_relu(b, "conv3", x, 192, 3, 1, 1);
    x = fg_nn_lrn(b->g, "lrn2", x, 5, 1e-4f, 0.75f, 1.0f);
    x = maxpool(b, "maxpool2", x, 3, 2, 0, 1);
    int pool_no = 3;
    for (int i = 0; i < 9; i++) {
        x = inception(b, mods[i].name, x, mods[i].c);
        if (mods[i].pool_after) {
            char nm[FG_NAME_MAX + 16];
            snprintf(nm, sizeof nm, "maxpool%d", pool_no++);
            x = maxpool(b, nm, x, 3, 2, 0, 1);
        }
    }
    x = fg_nn_global_avgpool(b->g, "avgpool", x);
    if (b->dropout > 0.0f) x = fg_nn_dropout(b->g, "dropout", x, b->dropout);
    return fg_layer_linear(b->g, "fc", x, classes, 1);
}

/* ---------------------------------------------------------------- the table */

typedef fg_id (*zoo_build_fn)(zb *b, fg_id x, int64_t classes, int arg);

/* Parallel to zoo_defs: how to build each model, its default dropout and the smallest height
 * and width at which every spatial size stays >= 1 (worked out by hand from the geometry in the
 * comments above, and held to by tests/test_zoo.c: it builds at min and fails at min - 1). */
typedef struct zoo_impl {
    zoo_build_fn build;
    int arg;
    float dropout;
    int64_t min_hw;
} zoo_impl;

static const fg_model_def zoo_defs[] = {
    {"mlp", "multilayer perceptron 256-128 with ReLU (MNIST)", 1, 28, 28, 10},
    {"lenet", "LeNet-5 with ReLU and max pooling (MNIST; 28x28 or 32x32)", 1, 28, 28, 10},
    {"alexnet", "AlexNet, one tower, with LRN (Krizhevsky 2012; vDNN)", 3, 224, 224, 1000},
    {"overfeat", "OverFeat fast model (Sermanet 2014; vDNN)", 3, 231, 231, 1000},
    {"vgg16", "VGG-16, configuration D (Simonyan 2015; vDNN)", 3, 224, 224, 1000},
    {"vgg116", "VGG-16 with 20 extra 3x3 convs per group: 116 weighted layers (vDNN)", 3, 224, 224, 1000},
    {"vgg216", "VGG-16 with 40 extra 3x3 convs per group: 216 weighted layers (vDNN)", 3, 224, 224, 1000},
    {"vgg316", "VGG-16 with 60 extra 3x3 convs per group: 316 weighted layers (vDNN)", 3, 224, 224, 1000},
    {"vgg416", "VGG-16 with 80 extra 3x3 convs per group: 416 weighted layers (vDNN)", 3, 224, 224, 1000},
    {"googlenet", "GoogLeNet / Inception v1 without auxiliary classifiers (Szegedy 2015; vDNN)", 3, 224, 224, 1000},
    {NULL, NULL, 0, 0, 0, 0},
};

static const zoo_impl zoo_impls[] = {
    {build_mlp, 0, 0.0f, 1},        {build_lenet, 0, 0.0f, 12},     {build_alexnet, 0, 0.5f, 63},
    {build_overfeat, 0, 0.5f, 71},  {build_vgg, 0, 0.5f, 32},       {build_vgg, 20, 0.5f, 32},
    {build_vgg, 40, 0.5f, 32},      {build_vgg, 60, 0.5f, 32},      {build_vgg, 80, 0.5f, 32},
    {build_googlenet, 0, 0.4f, 47},
};

#define ZOO_N ((int)(sizeof zoo_impls / sizeof zoo_impls[0]))
_Static_assert(sizeof zoo_defs / sizeof zoo_defs[0] == sizeof zoo_impls / sizeof zoo_impls[0] + 1,
               "zoo_defs and zoo_impls must list the same models");

const fg_model_def *fg_zoo_models(void) { return zoo_defs; }

const fg_model_def *fg_zoo_find(const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < ZOO_N; i++)
        if (strcmp(zoo_defs[i].name, name) == 0) return &zoo_defs[i];
    return NULL;
}

fg_status fg_zoo_build(fg_graph *g, const char *name, const fg_model_cfg *cfg, fg_model_io *io) {
    FG_ASSERT(g && cfg && io);
    io->input = io->labels = io->logits = io->loss = FG_NONE;
    const fg_model_def *def = fg_zoo_find(name);
    if (!def) {
        char known[512];
        size_t len = 0;
        known[0] = '\0';
        for (int i = 0; i < ZOO_N && len < sizeof known; i++) {
            int w = snprintf(known + len, sizeof known - len, "%s%s", i ? ", " : "", zoo_defs[i].name);
            if (w < 0) break;
            len += (size_t)w;
        }
        return fg_fail(FG_ERR_INVALID, "unknown model '%s'; known models: %s", name ? name : "(null)", known);
    }
    const zoo_impl *im = &zoo_impls[def - zoo_defs];
    if (cfg->batch <= 0 || cfg->channels <= 0 || cfg->height <= 0 || cfg->width <= 0 || cfg->classes <= 0)
        return fg_fail(FG_ERR_INVALID,
                       "model '%s': batch %lld, input %lldx%lldx%lld, %lld classes; expected all > 0", name,
                       (long long)cfg->batch, (long long)cfg->channels, (long long)cfg->height, (long long)cfg->width,
                       (long long)cfg->classes);
    if (!(cfg->dropout < 1.0f))
        return fg_fail(FG_ERR_INVALID, "model '%s': dropout %g, expected < 1 (< 0 for the model's default %g)", name,
                       (double)cfg->dropout, (double)im->dropout);
    if (fg_graph_status(g) != FG_OK)
        return fg_fail(fg_graph_status(g), "model '%s': the graph already has an error: %s", name, fg_graph_error(g));
    if (fg_graph_n_tensors(g) != 0 || fg_graph_n_nodes(g) != 0)
        return fg_fail(FG_ERR_INVALID, "model '%s': the graph '%s' must be empty (it has %d tensors)", name,
                       fg_graph_name(g), fg_graph_n_tensors(g));

    zb b = {g, cfg->dropout < 0.0f ? im->dropout : cfg->dropout, "features", 0};
    int64_t xs[4] = {cfg->batch, cfg->channels, cfg->height, cfg->width};
    fg_id input = fg_nn_input(g, "input", FG_F32, 4, xs);
    fg_id labels = fg_nn_input(g, "labels", FG_I32, 1, &cfg->batch);
    fg_id logits = im->build(&b, input, cfg->classes, im->arg);
    fg_id loss = fg_nn_xent(g, "loss", logits, labels);

    fg_status s = fg_graph_status(g);
    if (s != FG_OK) {
        char hint[128] = "";
        if (s == FG_ERR_SHAPE && (cfg->height < im->min_hw || cfg->width < im->min_hw))
            snprintf(hint, sizeof hint, " (%s needs height and width >= %lld)", name, (long long)im->min_hw);
        return fg_fail(s, "model '%s' at input %lldx%lldx%lld: %s%s", name, (long long)cfg->channels,
                       (long long)cfg->height, (long long)cfg->width, fg_graph_error(g), hint);
    }
    io->input = input;
    io->labels = labels;
    io->logits = logits;
    io->loss = loss;
    return FG_OK;
}
