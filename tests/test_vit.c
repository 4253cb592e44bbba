/* Tests of the DeiT-style ViT classifier (src/vit/vit.c):
 *  - the parameter count of the built graph equals the architecture's formula, for the presets and
 *    with a conv stem; the HF ViTForImageClassification names and shapes are there;
 *  - training one step works: on a small ViT (28x28x1, patch 7, 16 patches + class token) every
 *    parameter gradient is finite and non-zero somewhere, sampled gradients of every kind of
 *    parameter (class token, position embedding, patch projection, q/k/v, MLP, layer norms, head;
 *    the stem's conv) match central finite differences, and Adam steps on one repeated batch lower
 *    the loss, with and without the conv stem;
 *  - numerics: the graph's names and shapes are the PyTorch reference's state_dict list
 *    (tests/fixtures/gen_vit.py, vit_names_*.txt), and after loading that reference's weights by name
 *    from safetensors the logits match within 1e-4 relative, without and with the conv stem, and so
 *    do the loss and every parameter gradient (PyTorch autograd);
 *  - inference graphs fuse the MLP's GELU into its linear (same FLOPs), training graphs do not; a
 *    loss over a fused node and narrowing it are refused;
 *  - configuration and builder errors. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "frugal/vit.h"
#include "testutil.h"

typedef struct net {
    fg_graph *g;
    fg_pool *pool;
    fg_vit_io io;
} net;

static void net_build(net *n, const fg_vit_cfg *c, int64_t batch, int64_t ch, int64_t hw, int with_loss) {
    CHECK_OK(fg_pool_create(&n->pool, 0));
    CHECK_OK(fg_graph_create(&n->g, "vit"));
    CHECK_OK(fg_vit_build(n->g, c, batch, ch, hw, hw, with_loss, &n->io));
    if (fg_graph_status(n->g) != FG_OK) {
        fprintf(stderr, "  build error: %s\n", fg_last_error());
        exit(1);
    }
    fg_mem_policy p;
    CHECK_OK(fg_policy_free_when_dead(&p));
    CHECK_OK(fg_graph_build(n->g, with_loss ? n->io.loss : FG_NONE, n->pool, &p));
}

static void net_free(net *n) {
    fg_graph_free(n->g);
    fg_pool_destroy(n->pool);
}

/* The architecture's parameter count (no stem). */
static int64_t formula(const fg_vit_cfg *c, int64_t ch, int64_t hw) {
    const int64_t D = c->dim, M = c->mlp_dim, P = c->patch, N = (hw / P) * (hw / P);
    const int64_t per_layer = 4 * D + 4 * (D * D + D) + D * M + M + M * D + D;
    return D * ch * P * P + D + D + (N + 1) * D + c->depth * per_layer + 2 * D + D * c->num_classes + c->num_classes;
}

static void test_counts(void) {
    static const struct { const char *preset; int64_t ch, hw, classes; } P[] = {
        {"vit-tiny-28", 1, 28, 10}, {"deit-tiny", 3, 224, 1000}, {"deit-small", 3, 224, 1000}};
    for (size_t i = 0; i < sizeof P / sizeof P[0]; i++) {
        fg_vit_cfg c;
        CHECK_OK(fg_vit_config(P[i].preset, P[i].classes, &c));
        net n;
        net_build(&n, &c, 1, P[i].ch, P[i].hw, 0);
        fg_graph_info info;
        fg_graph_get_info(n.g, &info);
        const int64_t want = formula(&c, P[i].ch, P[i].hw);
        if (info.n_params != want) {
            fprintf(stderr, "  %s: %lld parameters, the formula gives %lld\n", P[i].preset, (long long)info.n_params,
                    (long long)want);
            fg_test_failures++;
        }
        printf("  %s (%lldx%lldx%lld, %lld classes): %lld parameters, %.3f GFLOP\n", P[i].preset, (long long)P[i].ch,
               (long long)P[i].hw, (long long)P[i].hw, (long long)P[i].classes, (long long)info.n_params,
               info.flops_fwd * 1e-9);
        net_free(&n);
    }
    /* DeiT-tiny at 224 with 1000 classes is 5,717,416 parameters (the published 5.7 M) */
    fg_vit_cfg c;
    CHECK_OK(fg_vit_config("deit-tiny", 1000, &c));
    CHECK(formula(&c, 3, 224) == 5717416);
    /* HF names and shapes */
    net n;
    CHECK_OK(fg_vit_config("vit-tiny-28", 10, &c));
    net_build(&n, &c, 2, 1, 28, 0);
    static const struct { const char *name; int ndim; int64_t shape[4]; } N[] = {
        {"vit.embeddings.cls_token", 3, {1, 1, 64}},
        {"vit.embeddings.position_embeddings", 3, {1, 17, 64}},
        {"vit.embeddings.patch_embeddings.projection.weight", 4, {64, 1, 7, 7}},
        {"vit.encoder.layer.3.attention.attention.query.weight", 2, {64, 64}},
        {"vit.encoder.layer.0.attention.output.dense.bias", 1, {64}},
        {"vit.encoder.layer.2.intermediate.dense.weight", 2, {128, 64}},
        {"vit.encoder.layer.1.output.dense.weight", 2, {64, 128}},
        {"vit.encoder.layer.1.layernorm_after.weight", 1, {64}},
        {"vit.layernorm.bias", 1, {64}},
        {"classifier.weight", 2, {10, 64}},
    };
    for (size_t i = 0; i < sizeof N / sizeof N[0]; i++) {
        fg_id id = fg_graph_find(n.g, N[i].name);
        int ok = id != FG_NONE && fg_graph_tinfo(n.g, id)->kind == FG_T_PARAM;
        for (int k = 0; ok && k < N[i].ndim; k++) ok = fg_graph_tinfo(n.g, id)->t.shape[k] == N[i].shape[k];
        if (!ok) {
            fprintf(stderr, "  parameter '%s' missing or of another shape\n", N[i].name);
            fg_test_failures++;
        }
    }
    CHECK(fg_tensor_numel(&fg_graph_tinfo(n.g, n.io.logits)->t) == 20 && n.io.tokens == 17);
    net_free(&n);
}

static double loss_of(void *u) {
    net *n = u;
    CHECK_OK(fg_graph_forward(n->g));
    return fg_graph_loss(n->g);
}

static void test_train_step(int stem) {
    fg_vit_cfg c;
    CHECK_OK(fg_vit_config("vit-tiny-28", 10, &c));
    c.dim = 16, c.heads = 2, c.mlp_dim = 32, c.depth = 2, c.conv_stem = stem;
    if (stem) c.patch = 4; /* a stem of 2 stride-2 layers, then 1x1 patches: 49 tokens + the class token */
    c.ln_eps = 1e-6f; /* finite differences in float: keep rstd bounded */
    net n;
    const int64_t B = 8;
    net_build(&n, &c, B, 1, 28, 1);
    fg_rng r;
    fg_rng_seed(&r, 123 + (uint64_t)stem);
    fg_graph_init_params(n.g, &r);
    float *x = malloc((size_t)(B * 28 * 28) * sizeof(float));
    int32_t lab[8];
    fg_fill_uniform(x, (size_t)(B * 28 * 28), 0, 1, &r);
    for (int i = 0; i < B; i++) lab[i] = i % 10;
    CHECK_OK(fg_graph_set_input(n.g, n.io.input, x, (size_t)(B * 28 * 28) * sizeof(float)));
    CHECK_OK(fg_graph_set_input(n.g, n.io.labels, lab, sizeof lab));
    fg_graph_set_training(n.g, 1);
    fg_graph_zero_grad(n.g);
    CHECK_OK(fg_graph_forward(n.g));
    CHECK_OK(fg_graph_backward(n.g));
    const float l0 = fg_graph_loss(n.g);
    /* every gradient finite, and not all zero */
    for (int i = 0; i < fg_graph_n_params(n.g); i++) {
        fg_id p = fg_graph_param(n.g, i);
        const fg_tensor *gt = fg_graph_tensor(n.g, fg_graph_tinfo(n.g, p)->grad);
        const float *gd = gt->data;
        size_t bad = 0, nz = 0, ne = (size_t)fg_tensor_numel(gt);
        for (size_t j = 0; j < ne; j++) bad += !isfinite(gd[j]), nz += gd[j] != 0.0f;
        if (bad || !nz) {
            fprintf(stderr, "  stem %d: gradient of '%s': %zu not finite, %zu non-zero of %zu\n", stem,
                    fg_graph_tinfo(n.g, p)->t.name, bad, nz, ne);
            fg_test_failures++;
        }
    }
    static const char *const probe[] = {"vit.embeddings.cls_token", "vit.embeddings.position_embeddings",
                                        "vit.embeddings.patch_embeddings.projection.weight",
                                        "vit.encoder.layer.0.attention.attention.query.weight",
                                        "vit.encoder.layer.1.attention.attention.key.bias",
                                        "vit.encoder.layer.0.attention.attention.value.weight",
                                        "vit.encoder.layer.1.intermediate.dense.weight", "vit.encoder.layer.0.output.dense.bias",
                                        "vit.encoder.layer.1.layernorm_before.weight", "vit.layernorm.bias", "classifier.weight",
                                        "vit.embeddings.stem.0.conv.weight", "vit.embeddings.stem.1.batch_norm.weight"};
    fg_rng pick;
    fg_rng_seed(&pick, 5);
    for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++) {
        fg_id id = fg_graph_find(n.g, probe[i]);
        if (id == FG_NONE) {
            CHECK(!stem && strstr(probe[i], "stem")); /* the stem's only with a stem */
            continue;
        }
        fg_tensor *t = fg_graph_tensor(n.g, id);
        const size_t numel = (size_t)fg_tensor_numel(t);
        float *grad = malloc(numel * sizeof(float));
        memcpy(grad, fg_graph_tensor(n.g, fg_graph_tinfo(n.g, id)->grad)->data, numel * sizeof(float));
        char what[128];
        snprintf(what, sizeof what, "vit (stem %d) d loss / d %s", stem, probe[i]);
        /* eps 5e-4: at 2e-3 the stem's ReLUs (after batch norm on 8 x 196 positions) bend the
         * difference quotient of its first conv by ~10% (seen: -0.0293 against -0.0270); the float
         * loss's rounding (~2.4e-7 / 1e-3) stays below the 3e-4 floor of the tolerance */
        fg_check_grad(what, t->data, grad, numel, loss_of, &n, 8, 5e-4f, 3e-2f, 3e-4f, &pick);
        free(grad);
    }
    fg_optim *o;
    const fg_optim_cfg oc = fg_optim_defaults(FG_OPTIM_ADAM, 3e-3f);
    CHECK_OK(fg_optim_create(&o, n.g, &oc));
    float last = l0;
    for (int s = 0; s < 15; s++) {
        fg_graph_zero_grad(n.g);
        CHECK_OK(fg_graph_forward(n.g));
        CHECK_OK(fg_graph_backward(n.g));
        last = fg_graph_loss(n.g);
        CHECK_OK(fg_optim_step(o));
    }
    printf("  vit (stem %d): loss %.4f -> %.4f after 15 Adam steps on one batch\n", stem, l0, last);
    if (!(isfinite(last) && last < 0.8f * l0)) {
        fprintf(stderr, "  vit (stem %d): loss %.4f -> %.4f, expected a drop of at least 20%%\n", stem, l0, last);
        fg_test_failures++;
    }
    fg_optim_free(o);
    free(x);
    net_free(&n);
}

/* Numerics against the PyTorch reference (tests/fixtures/gen_vit.py): the graph's parameter and
 * state names and shapes are the reference's state_dict list; a safetensors file written from that
 * list (the formula's weights) loads by name and the logits match within 1e-4 relative (eval mode). */
static void test_reference(fg_fixture *fx, const char *cs, const char *dir) {
    char key[64], file[64], path[600];
    snprintf(key, sizeof key, "%s.cfg", cs);
    const float *cf = fg_fixture_get(fx, key, 10);
    const int64_t B = (int64_t)cf[0], C = (int64_t)cf[1], S = (int64_t)cf[2], K = (int64_t)cf[8];
    fg_vit_cfg c;
    CHECK_OK(fg_vit_config("vit-tiny-28", K, &c));
    c.patch = (int64_t)cf[3], c.dim = (int64_t)cf[4], c.depth = (int64_t)cf[5], c.heads = (int64_t)cf[6];
    c.mlp_dim = (int64_t)cf[7], c.conv_stem = (int)cf[9];
    net n;
    net_build(&n, &c, B, C, S, 0);
    fg_graph_set_training(n.g, 0);
    snprintf(file, sizeof file, "vit_names_%s.txt", cs);
    size_t ne = 0;
    fg_test_entry *e = fg_test_read_entries(file, &ne);
    if ((size_t)(fg_graph_n_params(n.g) + fg_graph_n_states(n.g)) != ne) {
        fprintf(stderr, "  vit %s: %d parameters + %d states, the reference's state_dict %zu float tensors\n", cs,
                fg_graph_n_params(n.g), fg_graph_n_states(n.g), ne);
        fg_test_failures++;
    }
    for (size_t i = 0; i < ne; i++) {
        size_t numel = 1;
        for (int k = 0; k < e[i].ndim; k++) numel *= (size_t)e[i].shape[k];
        e[i].data = malloc(numel * sizeof(float));
        fg_test_formula_weights(e[i].data, e[i].name, e[i].ndim, e[i].shape);
    }
    snprintf(path, sizeof path, "%s/vit_%s.safetensors", dir, cs);
    fg_test_write_entries(path, e, ne, c.conv_stem ? "vit.embeddings.stem.0.batch_norm.num_batches_tracked" : NULL);
    CHECK_OK(fg_vit_weights_load(n.g, path));
    unlink(path);
    snprintf(key, sizeof key, "%s.x", cs);
    const size_t nx = (size_t)(B * C * S * S), nl = (size_t)(B * K);
    CHECK_OK(fg_graph_set_input(n.g, n.io.input, fg_fixture_get(fx, key, nx), nx * sizeof(float)));
    CHECK_OK(fg_graph_forward(n.g));
    float *y = malloc(nl * sizeof(float));
    CHECK_OK(fg_graph_read(n.g, n.io.logits, y, nl * sizeof(float)));
    snprintf(key, sizeof key, "%s.logits", cs);
    const float *want = fg_fixture_get(fx, key, nl);
    float amax = 0;
    for (size_t i = 0; i < nl; i++) amax = fmaxf(amax, fabsf(want[i]));
    char what[96];
    snprintf(what, sizeof what, "vit (%s) logits vs PyTorch reference", cs);
    if (fg_check_close(what, y, want, nl, 1e-4f, 1e-4f * amax)) {
        double worst = 0;
        for (size_t i = 0; i < nl; i++) worst = fmax(worst, fabs((double)y[i] - want[i]) / amax);
        printf("  vit (%s): logits (%lld, %lld) match the reference, max |diff| / max |logit| = %.2e\n", cs, (long long)B,
               (long long)K, worst);
    }
    for (size_t i = 0; i < ne; i++) free(e[i].data);
    free(e), free(y);
    net_free(&n);
    /* gradients: the same weights in a graph with the loss, in training mode (the stem's batch norm
     * on batch statistics, as the reference), labels arange(B) % classes */
    net t;
    net_build(&t, &c, B, C, S, 1);
    for (int i = 0; i < fg_graph_n_params(t.g) + fg_graph_n_states(t.g); i++) {
        const int np = fg_graph_n_params(t.g);
        fg_tensor *tt = fg_graph_tensor(t.g, i < np ? fg_graph_param(t.g, i) : fg_graph_state(t.g, i - np));
        fg_test_formula_weights(tt->data, tt->name, tt->ndim, tt->shape);
    }
    int32_t lab[16];
    for (int64_t i = 0; i < B; i++) lab[i] = (int32_t)(i % K);
    snprintf(key, sizeof key, "%s.x", cs);
    CHECK_OK(fg_graph_set_input(t.g, t.io.input, fg_fixture_get(fx, key, nx), nx * sizeof(float)));
    CHECK_OK(fg_graph_set_input(t.g, t.io.labels, lab, (size_t)B * sizeof(int32_t)));
    fg_graph_set_training(t.g, 1);
    fg_graph_zero_grad(t.g);
    CHECK_OK(fg_graph_forward(t.g));
    CHECK_OK(fg_graph_backward(t.g));
    snprintf(key, sizeof key, "%s.loss", cs);
    const float loss = fg_graph_loss(t.g);
    snprintf(what, sizeof what, "vit (%s) loss vs PyTorch", cs);
    fg_check_close(what, &loss, fg_fixture_get(fx, key, 1), 1, 1e-5f, 0);
    double worst = 0;
    for (int i = 0; i < fg_graph_n_params(t.g); i++) {
        fg_id id = fg_graph_param(t.g, i);
        const fg_tensor *pt = fg_graph_tensor(t.g, id);
        char gk[FG_NAME_MAX + 24];
        snprintf(gk, sizeof gk, "%s.grad:%s", cs, pt->name);
        const size_t numel = (size_t)fg_tensor_numel(pt);
        const float *ref = fg_fixture_get(fx, gk, numel), *got = fg_graph_tensor(t.g, fg_graph_tinfo(t.g, id)->grad)->data;
        float gmax = 0;
        for (size_t j = 0; j < numel; j++) gmax = fmaxf(gmax, fabsf(ref[j]));
        fg_check_close(gk, got, ref, numel, 1e-4f, 1e-4f * gmax + 1e-7f);
        if (gmax > 1e-6f)
            for (size_t j = 0; j < numel; j++) worst = fmax(worst, fabs((double)got[j] - ref[j]) / gmax);
    }
    printf("  vit (%s): loss and %d parameter gradients match PyTorch autograd, max |diff| / max |grad| %.2e\n", cs,
           fg_graph_n_params(t.g), worst);
    if (c.conv_stem) {
        /* a backward after an eval forward through batch norm is refused, naming the node */
        fg_graph_set_training(t.g, 0);
        CHECK_OK(fg_graph_forward(t.g));
        CHECK_STATUS(fg_graph_backward(t.g), FG_ERR_UNSUPPORTED);
        CHECK(strstr(fg_last_error(), "batchnorm 'vit.embeddings.stem.1.batch_norm'") != NULL);
    }
    net_free(&t);
}

static void test_errors(void) {
    fg_vit_cfg c;
    CHECK_STATUS(fg_vit_config("vit-huge", 10, &c), FG_ERR_INVALID);
    CHECK(strstr(fg_last_error(), "deit-tiny") != NULL);
    CHECK_OK(fg_vit_config("vit-tiny-28", 10, &c));
    fg_graph *g;
    CHECK_OK(fg_graph_create(&g, "bad"));
    fg_vit_io io;
    CHECK_STATUS(fg_vit_build(g, &c, 1, 1, 30, 30, 0, &io), FG_ERR_SHAPE); /* 30 is not a multiple of 7 */
    c.heads = 3;
    CHECK_STATUS(fg_vit_build(g, &c, 1, 1, 28, 28, 0, &io), FG_ERR_INVALID);
    c.heads = 4, c.conv_stem = 1; /* patch 7 is odd */
    CHECK_STATUS(fg_vit_build(g, &c, 1, 1, 28, 28, 0, &io), FG_ERR_INVALID);
    fg_graph_free(g);
}

/* The MLP's GELU is fused into its first linear in inference graphs only (fg_nn_linear_gelu; the
 * reference test above checks those logits against PyTorch), training graphs keep the two nodes;
 * a loss over a fused node and narrowing one are refused, naming the node. */
static void test_fused_gelu(void) {
    fg_vit_cfg c;
    CHECK_OK(fg_vit_config("vit-tiny-28", 10, &c));
    net inf, tr;
    net_build(&inf, &c, 2, 1, 28, 0);
    net_build(&tr, &c, 2, 1, 28, 1);
    CHECK(fg_graph_find_node(inf.g, "vit.encoder.layer.0.intermediate:gelu") < 0);
    CHECK(fg_graph_find_node(tr.g, "vit.encoder.layer.0.intermediate:gelu") >= 0);
    const int fc1 = fg_graph_find_node(inf.g, "vit.encoder.layer.0.intermediate.dense");
    CHECK(fc1 >= 0 && fg_graph_node(inf.g, fc1)->op == FG_OP_LINEAR);
    /* the same FLOPs either way (the fused node counts GELU's), the loss aside */
    const int xent = fg_graph_find_node(tr.g, "loss");
    CHECK(xent >= 0);
    const double f_tr = fg_graph_active_flops(tr.g) - fg_graph_node(tr.g, xent)->flops;
    CHECK(fabs(fg_graph_active_flops(inf.g) - f_tr) <= 1e-9 * f_tr);
    CHECK_STATUS(fg_graph_set_linear_narrow(inf.g, fc1, 0, 8), FG_ERR_UNSUPPORTED);
    CHECK(strstr(fg_last_error(), "intermediate.dense") != NULL);
    net_free(&inf);
    net_free(&tr);

    fg_graph *g;
    fg_pool *pool;
    CHECK_OK(fg_pool_create(&pool, 0));
    CHECK_OK(fg_graph_create(&g, "fused"));
    const int64_t xs[2] = {3, 4}, n = 3;
    fg_id y = fg_layer_linear_gelu(g, "fc", fg_nn_input(g, "x", FG_F32, 2, xs), 5, 1);
    fg_id loss = fg_nn_xent(g, "loss", y, fg_nn_input(g, "labels", FG_I32, 1, &n));
    CHECK_OK(fg_graph_status(g));
    fg_mem_policy p;
    CHECK_OK(fg_policy_free_when_dead(&p));
    CHECK_STATUS(fg_graph_build(g, loss, pool, &p), FG_ERR_UNSUPPORTED);
    CHECK(strstr(fg_last_error(), "'fc'") != NULL);
    fg_graph_free(g);
    fg_pool_destroy(pool);
}

/* Mutation-review additions: the DeiT presets field by field (vit.h), and the conv stem's widths:
 * layer j of k has dim / 2^(k - 1 - j) channels, at least 8 (dim 16, 3 layers: 8, 8, 16). */
static void test_presets_and_stem(void) {
    static const struct { const char *preset; int64_t patch, dim, depth, heads, mlp; } P[] = {
        {"vit-tiny-28", 7, 64, 4, 4, 128}, {"vit-tiny-28-p4", 4, 64, 4, 4, 128},
        {"deit-tiny", 16, 192, 12, 3, 768}, {"deit-small", 16, 384, 12, 6, 1536}};
    for (size_t i = 0; i < sizeof P / sizeof P[0]; i++) {
        fg_vit_cfg c;
        memset(&c, 0xff, sizeof c);
        CHECK_OK(fg_vit_config(P[i].preset, 7, &c));
        const int ok = c.patch == P[i].patch && c.dim == P[i].dim && c.depth == P[i].depth && c.heads == P[i].heads &&
                       c.mlp_dim == P[i].mlp && c.num_classes == 7 && c.conv_stem == 0 && c.ln_eps == 1e-12f &&
                       c.init_std == 0.02f;
        if (!ok)
            fprintf(stderr, "  preset %s: patch %lld dim %lld depth %lld heads %lld mlp %lld classes %lld stem %d\n",
                    P[i].preset, (long long)c.patch, (long long)c.dim, (long long)c.depth, (long long)c.heads,
                    (long long)c.mlp_dim, (long long)c.num_classes, c.conv_stem);
        CHECK(ok);
        for (int b = 0; b < FG_VIT_MAX_BLOCKS; b++) CHECK(c.tome_r[b] == 0);
    }
    fg_vit_cfg c;
    CHECK_STATUS(fg_vit_config("deit-tiny", 0, &c), FG_ERR_INVALID);
    CHECK_OK(fg_vit_config("DeiT-Small", 3, &c)); /* case-insensitive */
    CHECK(c.dim == 384);

    CHECK_OK(fg_vit_config("vit-tiny-28", 10, &c));
    c.dim = 16, c.heads = 2, c.mlp_dim = 16, c.depth = 1, c.patch = 8, c.conv_stem = 3;
    fg_graph *g = NULL;
    CHECK_OK(fg_graph_create(&g, "stem"));
    fg_vit_io io;
    CHECK_OK(fg_vit_build(g, &c, 1, 3, 16, 16, 0, &io));
    static const struct { const char *name; int64_t shape[4]; } W[] = {
        {"vit.embeddings.stem.0.conv.weight", {8, 3, 3, 3}},
        {"vit.embeddings.stem.1.conv.weight", {8, 8, 3, 3}},
        {"vit.embeddings.stem.2.conv.weight", {16, 8, 3, 3}},
        {"vit.embeddings.patch_embeddings.projection.weight", {16, 16, 1, 1}},
    };
    for (size_t i = 0; i < sizeof W / sizeof W[0]; i++) {
        const fg_id id = fg_graph_find(g, W[i].name);
        int ok = id != FG_NONE && fg_graph_tinfo(g, id)->t.ndim == 4;
        for (int k = 0; ok && k < 4; k++) ok = fg_graph_tinfo(g, id)->t.shape[k] == W[i].shape[k];
        if (!ok) {
            fprintf(stderr, "  stem: '%s' missing or not (%lld, %lld, %lld, %lld)\n", W[i].name, (long long)W[i].shape[0],
                    (long long)W[i].shape[1], (long long)W[i].shape[2], (long long)W[i].shape[3]);
            fg_test_failures++;
        }
    }
    fg_graph_free(g);
}

int main(void) {
    fg_threads_set(2);
    char dir[] = "/tmp/fg_test_vit_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    fg_fixture *fx = fg_fixture_open("vit.bin");
    test_reference(fx, "plain", dir);
    test_reference(fx, "stem", dir);
    fg_fixture_close(fx);
    rmdir(dir);
    test_counts();
    test_presets_and_stem();
    test_errors();
    test_fused_gelu();
    test_train_step(0);
    test_train_step(2);
    /* a stem of 2 layers needs a patch divisible by 4: patch 4 on 28x28 (49 patches) */
    {
        fg_vit_cfg c;
        CHECK_OK(fg_vit_config("vit-tiny-28", 10, &c));
        c.patch = 4, c.conv_stem = 2;
        net n;
        net_build(&n, &c, 1, 1, 28, 0);
        CHECK(n.io.tokens == 50);
        CHECK(fg_graph_find(n.g, "vit.embeddings.stem.1.conv.weight") != FG_NONE);
        net_free(&n);
    }
    return fg_test_finish("test_vit");
}
