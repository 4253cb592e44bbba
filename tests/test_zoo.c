/* The model zoo (src/graph/zoo.c): for every model, at its default input with 1000 (or 10)
 * classes, the parameter count, the number of parameter tensors, a signature of every
 * parameter's name and shape in creation order, the number of weighted layers (conv + linear)
 * and the logits shape, all against the same architectures built in PyTorch
 * (tests/fixtures/gen_zoo.py prints the reference numbers hard-coded below); VGG-16 also
 * against the published 138,357,544. Then every model (but the three deepest VGGs, which are
 * only counted: their weights alone are 1.4-2.3 GB) is built at a small input with batch 2 and
 * run forward and backward under the network-wide policy: the loss must be finite and near
 * log(classes) at initialization and the gradients finite. The smallest accepted input of each
 * model is exact: it builds at min x min and fails with FG_ERR_SHAPE (and a message naming the
 * model) one pixel below, in either dimension. Unknown names, bad configurations and a graph that
 * is not empty are refused with FG_ERR_INVALID. */
#include <math.h>
#include <string.h>

#include "testutil.h"

typedef struct ref {
    const char *model;
    int64_t c, hw, classes;
    int64_t params;
    int tensors, weighted;
    uint64_t signature;
    const char *first, *last;
} ref;

/* From tests/fixtures/gen_zoo.py (PyTorch 1.13). */
static const ref refs[] = {
    {"mlp", 1, 28, 10, 235146, 6, 3, 0xd510a486c7d28591ull, "fc1.weight", "fc3.bias"},
    {"lenet", 1, 28, 10, 61706, 10, 5, 0x6f7af544bb2c09aaull, "conv1.weight", "fc3.bias"},
    {"lenet", 1, 32, 10, 82826, 10, 5, 0x1b39ceb10047438cull, "conv1.weight", "fc3.bias"},
    {"alexnet", 3, 224, 1000, 62378344, 16, 8, 0x81606eac31e5db06ull, "features.0.weight", "classifier.6.bias"},
    {"overfeat", 3, 231, 1000, 145920872, 16, 8, 0x6396605884e62dabull, "features.0.weight", "classifier.6.bias"},
    {"vgg16", 3, 224, 1000, 138357544, 32, 16, 0xb2815010c322b6d4ull, "features.0.weight", "classifier.6.bias"},
    {"vgg116", 3, 224, 1000, 248241704, 232, 116, 0x33effdbdd8d37cb2ull, "features.0.weight", "classifier.6.bias"},
    {"vgg216", 3, 224, 1000, 358125864, 432, 216, 0x1db6e0294f4d218eull, "features.0.weight", "classifier.6.bias"},
    {"vgg316", 3, 224, 1000, 468010024, 632, 316, 0x86a2758c19cc9c3eull, "features.0.weight", "classifier.6.bias"},
    {"vgg416", 3, 224, 1000, 577894184, 832, 416, 0xf9717a6c466c5966ull, "features.0.weight", "classifier.6.bias"},
    {"googlenet", 3, 224, 1000, 6998552, 116, 58, 0x4bf81f093f42fe82ull, "conv1.weight", "fc.bias"},
};
#define N_REFS ((int)(sizeof refs / sizeof refs[0]))

/* FNV-1a 64 over "name:d0xd1x...;" per parameter, as gen_zoo.py's signature(). */
static uint64_t fnv(uint64_t h, const char *s) {
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

static uint64_t param_signature(const fg_graph *g) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < fg_graph_n_params(g); i++) {
        const fg_tensor *t = &fg_graph_tinfo(g, fg_graph_param(g, i))->t;
        char buf[FG_NAME_MAX + 128];
        int len = snprintf(buf, sizeof buf, "%s:", t->name);
        for (int d = 0; d < t->ndim; d++)
            len += snprintf(buf + len, sizeof buf - (size_t)len, "%s%lld", d ? "x" : "", (long long)t->shape[d]);
        snprintf(buf + len, sizeof buf - (size_t)len, ";");
        h = fnv(h, buf);
    }
    return h;
}

static int64_t param_count(const fg_graph *g) {
    int64_t n = 0;
    for (int i = 0; i < fg_graph_n_params(g); i++) n += fg_tensor_numel(&fg_graph_tinfo(g, fg_graph_param(g, i))->t);
    return n;
}

static int count_ops(const fg_graph *g, fg_op a, fg_op b) {
    int n = 0;
    for (int i = 0; i < fg_graph_n_nodes(g); i++) {
        fg_op op = fg_graph_node(g, i)->op;
        if (op == a || op == b) n++;
    }
    return n;
}

static fg_model_cfg cfg_of(int64_t batch, int64_t c, int64_t h, int64_t w, int64_t classes, float dropout) {
    fg_model_cfg cfg = {.batch = batch, .channels = c, .height = h, .width = w, .classes = classes, .dropout = dropout};
    return cfg;
}

/* Builds the graph only (no allocation) and returns the builder's status; *out keeps the graph. */
static fg_status build_graph(fg_graph **out, const char *model, const fg_model_cfg *cfg, fg_model_io *io) {
    CHECK_OK(fg_graph_create(out, model));
    return fg_zoo_build(*out, model, cfg, io);
}

static void test_table(void) {
    static const char *names[] = {"mlp",    "lenet",  "alexnet", "overfeat", "vgg16",    "vgg116",
                                  "vgg216", "vgg316", "vgg416",  "googlenet"};
    const fg_model_def *d = fg_zoo_models();
    int n = 0;
    while (d[n].name) n++;
    CHECK(n == 10);
    for (int i = 0; i < 10 && i < n; i++) {
        if (strcmp(d[i].name, names[i]) != 0) fprintf(stderr, "table[%d] is '%s', expected '%s'\n", i, d[i].name, names[i]);
        CHECK(strcmp(d[i].name, names[i]) == 0);
        CHECK(d[i].description && strlen(d[i].description) > 10);
        CHECK(fg_zoo_find(names[i]) == &d[i]);
    }
    CHECK(fg_zoo_find("vgg17") == NULL);
    CHECK(fg_zoo_find("") == NULL);
    CHECK(fg_zoo_find(NULL) == NULL);
    const fg_model_def *v = fg_zoo_find("vgg16");
    CHECK(v && v->default_channels == 3 && v->default_height == 224 && v->default_width == 224 &&
          v->default_classes == 1000);
    const fg_model_def *o = fg_zoo_find("overfeat");
    CHECK(o && o->default_height == 231 && o->default_width == 231);
    const fg_model_def *l = fg_zoo_find("lenet");
    CHECK(l && l->default_channels == 1 && l->default_height == 28 && l->default_classes == 10);
}

/* Counts and names against PyTorch at the default input (graphs are built, not allocated). */
static void test_counts(void) {
    for (int r = 0; r < N_REFS; r++) {
        const ref *rf = &refs[r];
        fg_graph *g;
        fg_model_io io;
        fg_model_cfg cfg = cfg_of(1, rf->c, rf->hw, rf->hw, rf->classes, -1.0f);
        fg_status s = build_graph(&g, rf->model, &cfg, &io);
        CHECK_OK(s);
        if (s == FG_OK) {
            int64_t np = param_count(g);
            int nt = fg_graph_n_params(g);
            int nw = count_ops(g, FG_OP_CONV2D, FG_OP_LINEAR);
            uint64_t sig = param_signature(g);
            const char *first = nt ? fg_graph_tinfo(g, fg_graph_param(g, 0))->t.name : "";
            const char *last = nt ? fg_graph_tinfo(g, fg_graph_param(g, nt - 1))->t.name : "";
            const fg_tensor *lg = &fg_graph_tinfo(g, io.logits)->t;
            const fg_tensor *ls = &fg_graph_tinfo(g, io.loss)->t;
            const fg_tensor *in = &fg_graph_tinfo(g, io.input)->t;
            const fg_tensor *lb = &fg_graph_tinfo(g, io.labels)->t;
            int ok = np == rf->params && nt == rf->tensors && nw == rf->weighted && sig == rf->signature &&
                     strcmp(first, rf->first) == 0 && strcmp(last, rf->last) == 0;
            if (!ok)
                fprintf(stderr,
                        "%s at %lld: params %lld (torch %lld), tensors %d (%d), weighted layers %d (%d), signature "
                        "%016llx (%016llx), first %s (%s), last %s (%s)\n",
                        rf->model, (long long)rf->hw, (long long)np, (long long)rf->params, nt, rf->tensors, nw,
                        rf->weighted, (unsigned long long)sig, (unsigned long long)rf->signature, first, rf->first,
                        last, rf->last);
            CHECK(ok);
            CHECK(lg->ndim == 2 && lg->shape[0] == 1 && lg->shape[1] == rf->classes);
            CHECK(ls->ndim == 1 && ls->shape[0] == 1);
            CHECK(in->ndim == 4 && in->dtype == FG_F32 && in->shape[1] == rf->c && in->shape[2] == rf->hw &&
                  strcmp(in->name, "input") == 0);
            CHECK(lb->ndim == 1 && lb->dtype == FG_I32 && lb->shape[0] == 1 && strcmp(lb->name, "labels") == 0);
            CHECK(fg_graph_find(g, "input") == io.input && fg_graph_find(g, "labels") == io.labels);
        }
        fg_graph_free(g);
    }
    /* the published VGG-16 count (Simonyan & Zisserman; torchvision) */
    fg_graph *g;
    fg_model_io io;
    fg_model_cfg cfg = cfg_of(1, 3, 224, 224, 1000, -1.0f);
    CHECK_OK(build_graph(&g, "vgg16", &cfg, &io));
    CHECK(param_count(g) == 138357544);
    fg_graph_free(g);
}

/* Dropout nodes: model default, an explicit rate, 0 = none (parameter names unchanged). */
static void test_dropout(void) {
    static const struct {
        const char *model;
        int64_t c, hw;
        float p;
        int want;
    } cases[] = {
        {"alexnet", 3, 224, -1.0f, 2}, {"alexnet", 3, 224, 0.0f, 0}, {"alexnet", 3, 224, 0.3f, 2},
        {"overfeat", 3, 231, -1.0f, 2}, {"vgg16", 3, 32, -1.0f, 2},  {"vgg16", 3, 32, 0.0f, 0},
        {"googlenet", 3, 224, -1.0f, 1}, {"googlenet", 3, 224, 0.0f, 0}, {"lenet", 1, 28, -1.0f, 0},
        {"mlp", 1, 28, 0.5f, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fg_graph *g;
        fg_model_io io;
        fg_model_cfg cfg = cfg_of(2, cases[i].c, cases[i].hw, cases[i].hw, 10, cases[i].p);
        CHECK_OK(build_graph(&g, cases[i].model, &cfg, &io));
        int n = count_ops(g, FG_OP_DROPOUT, FG_OP_DROPOUT);
        if (n != cases[i].want)
            fprintf(stderr, "%s dropout %g: %d dropout nodes, expected %d\n", cases[i].model, (double)cases[i].p, n,
                    cases[i].want);
        CHECK(n == cases[i].want);
        fg_graph_free(g);
    }
    /* the same parameter names with and without dropout */
    fg_graph *g1, *g2;
    fg_model_io io;
    fg_model_cfg c1 = cfg_of(2, 3, 63, 63, 10, -1.0f), c2 = cfg_of(2, 3, 63, 63, 10, 0.0f);
    CHECK_OK(build_graph(&g1, "alexnet", &c1, &io));
    CHECK_OK(build_graph(&g2, "alexnet", &c2, &io));
    CHECK(param_signature(g1) == param_signature(g2));
    CHECK(fg_graph_find(g1, "classifier.2") != FG_NONE && fg_graph_find(g2, "classifier.2") == FG_NONE);
    fg_graph_free(g1);
    fg_graph_free(g2);
}

static int finite_all(const float *x, size_t n, size_t *bad) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            *bad = i;
            return 0;
        }
    return 1;
}

/* Build at a small input, batch 2, run forward + backward, check the loss and gradients. */
static void run_model(const char *model, int64_t c, int64_t hw, int64_t classes, int check_first_grad) {
    fg_pool *pool;
    fg_graph *g;
    fg_model_io io;
    CHECK_OK(fg_pool_create(&pool, 0));
    fg_model_cfg cfg = cfg_of(2, c, hw, hw, classes, -1.0f);
    fg_status s = build_graph(&g, model, &cfg, &io);
    CHECK_OK(s);
    fg_mem_policy pol;
    CHECK_OK(fg_policy_network_wide(&pol));
    if (s == FG_OK) s = fg_graph_build(g, io.loss, pool, &pol);
    CHECK_OK(s);
    if (s != FG_OK) {
        fg_graph_free(g);
        fg_pool_destroy(pool);
        return;
    }
    fg_rng rng;
    fg_rng_seed(&rng, 7);
    fg_graph_init_params(g, &rng);
    size_t nx = (size_t)(2 * c * hw * hw);
    float *x = malloc(nx * sizeof *x);
    FG_ASSERT(x);
    fg_fill_uniform(x, nx, -1.0f, 1.0f, &rng);
    int32_t y[2] = {0, (int32_t)(classes - 1)};
    CHECK_OK(fg_graph_set_input(g, io.input, x, nx * sizeof *x));
    CHECK_OK(fg_graph_set_input(g, io.labels, y, sizeof y));
    fg_graph_set_training(g, 1);
    fg_graph_set_seed(g, 11);
    fg_graph_zero_grad(g);
    CHECK_OK(fg_graph_forward(g));
    CHECK_OK(fg_graph_backward(g));
    float loss = fg_graph_loss(g);
    double want = log((double)classes);
    /* PyTorch's default init gives small logits: the loss starts near log(classes) */
    if (!(isfinite(loss) && fabs(loss - want) < 0.25 * want))
        fprintf(stderr, "%s at %lldx%lld: loss %g, expected near log(%lld) = %g\n", model, (long long)hw,
                (long long)hw, (double)loss, (long long)classes, want);
    CHECK(isfinite(loss) && fabs(loss - want) < 0.25 * want);
    for (int i = 0; i < fg_graph_n_params(g); i++) {
        const fg_tinfo *ti = fg_graph_tinfo(g, fg_graph_param(g, i));
        const fg_tensor *gt = fg_graph_tensor(g, ti->grad);
        size_t n = (size_t)fg_tensor_numel(gt), bad = 0;
        if (!finite_all(gt->data, n, &bad)) {
            fprintf(stderr, "%s: gradient of %s is %g at %zu\n", model, ti->t.name, (double)((float *)gt->data)[bad], bad);
            CHECK(0);
            break;
        }
    }
    if (check_first_grad) {
        /* backward reached the first layer */
        const fg_tinfo *ti = fg_graph_tinfo(g, fg_graph_param(g, 0));
        const float *gd = fg_graph_tensor(g, ti->grad)->data;
        double sum = 0;
        for (int64_t i = 0; i < fg_tensor_numel(&ti->t); i++) sum += fabs(gd[i]);
        if (!(sum > 0)) fprintf(stderr, "%s: gradient of %s is all zero\n", model, ti->t.name);
        CHECK(sum > 0);
    }
    printf("  %-9s %3lldx%-3lld %4lld classes: loss %.4f (log %.4f)\n", model, (long long)hw, (long long)hw,
           (long long)classes, (double)loss, want);
    free(x);
    fg_graph_free(g);
    fg_pool_destroy(pool);
}

static void test_run(void) {
    run_model("mlp", 1, 28, 10, 1);
    run_model("lenet", 1, 28, 10, 1);
    run_model("lenet", 1, 32, 10, 1);
    run_model("alexnet", 3, 63, 100, 1);
    run_model("overfeat", 3, 71, 100, 1);
    run_model("vgg16", 3, 32, 100, 1);
    /* 116 layers: the first layer's gradient may underflow at init; checked for finiteness only */
    run_model("vgg116", 3, 32, 10, 0);
    run_model("googlenet", 3, 64, 100, 1);
}

/* The smallest input is exact: min x min builds; one less in height or width fails with
 * FG_ERR_SHAPE and a message that names the model and the minimum. */
static void test_min_input(void) {
    static const struct {
        const char *model;
        int64_t c, min;
    } mins[] = {
        {"lenet", 1, 12}, {"alexnet", 3, 63}, {"overfeat", 3, 71}, {"vgg16", 3, 32},
        {"vgg416", 3, 32}, {"googlenet", 3, 47},
    };
    for (size_t i = 0; i < sizeof mins / sizeof mins[0]; i++) {
        const char *m = mins[i].model;
        int64_t k = mins[i].min;
        fg_graph *g;
        fg_model_io io;
        fg_model_cfg ok = cfg_of(2, mins[i].c, k, k, 10, -1.0f);
        CHECK_OK(build_graph(&g, m, &ok, &io));
        fg_graph_free(g);
        for (int dim = 0; dim < 2; dim++) {
            fg_model_cfg small = cfg_of(2, mins[i].c, dim ? k : k - 1, dim ? k - 1 : k, 10, -1.0f);
            CHECK_STATUS(build_graph(&g, m, &small, &io), FG_ERR_SHAPE);
            char want[64];
            snprintf(want, sizeof want, "needs height and width >= %lld", (long long)k);
            const char *msg = fg_last_error();
            if (!strstr(msg, m) || !strstr(msg, want)) fprintf(stderr, "%s: message '%s'\n", m, msg);
            CHECK(strstr(msg, m) != NULL && strstr(msg, want) != NULL);
            CHECK(io.loss == FG_NONE && io.logits == FG_NONE);
            fg_graph_free(g);
        }
    }
    /* the MLP takes any image size */
    fg_graph *g;
    fg_model_io io;
    fg_model_cfg one = cfg_of(1, 1, 1, 1, 2, -1.0f);
    CHECK_OK(build_graph(&g, "mlp", &one, &io));
    fg_graph_free(g);
}

static void test_errors(void) {
    fg_graph *g;
    fg_model_io io;
    fg_model_cfg cfg = cfg_of(2, 1, 28, 28, 10, -1.0f);
    CHECK_STATUS(build_graph(&g, "resnet50", &cfg, &io), FG_ERR_INVALID);
    const char *msg = fg_last_error();
    if (!strstr(msg, "resnet50") || !strstr(msg, "lenet") || !strstr(msg, "googlenet") || !strstr(msg, "vgg416"))
        fprintf(stderr, "unknown model message: '%s'\n", msg);
    CHECK(strstr(msg, "resnet50") && strstr(msg, "lenet") && strstr(msg, "googlenet") && strstr(msg, "vgg416"));
    CHECK(fg_graph_n_tensors(g) == 0);
    fg_graph_free(g);

    fg_model_cfg bad[] = {cfg_of(0, 1, 28, 28, 10, -1.0f), cfg_of(2, 0, 28, 28, 10, -1.0f),
                          cfg_of(2, 1, 28, -3, 10, -1.0f), cfg_of(2, 1, 28, 28, 0, -1.0f),
                          cfg_of(2, 1, 28, 28, 10, 1.0f), cfg_of(2, 1, 28, 28, 10, NAN)};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_STATUS(build_graph(&g, "lenet", &bad[i], &io), FG_ERR_INVALID);
        CHECK(strstr(fg_last_error(), "lenet") != NULL);
        fg_graph_free(g);
    }

    /* the graph must be empty */
    CHECK_OK(build_graph(&g, "mlp", &cfg, &io));
    CHECK_STATUS(fg_zoo_build(g, "mlp", &cfg, &io), FG_ERR_INVALID);
    CHECK(strstr(fg_last_error(), "empty") != NULL);
    fg_graph_free(g);

    /* a model whose channels do not match its first layer is still built (conv1 adapts) */
    fg_model_cfg rgb = cfg_of(2, 3, 28, 28, 10, -1.0f);
    CHECK_OK(build_graph(&g, "lenet", &rgb, &io));
    CHECK(fg_graph_tinfo(g, fg_graph_find(g, "conv1.weight"))->t.shape[1] == 3);
    fg_graph_free(g);
}

int main(void) {
    fg_threads_set(2);
    test_table();
    test_counts();
    test_dropout();
    test_min_input();
    test_errors();
    test_run();
    return fg_test_finish("test_zoo");
}
