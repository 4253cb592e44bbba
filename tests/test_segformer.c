/* Tests of SegFormer (src/vit/segformer.c) and the weight loader (src/vit/weights.c):
 *  - parameter counts from the built graphs: B0, B1, B2 with 150 labels against the PyTorch
 *    reference's count (tests/fixtures/gen_segformer.py), and B0 against 3,752,694 (issue 14);
 *  - the graph's parameter and state names and shapes are exactly the B0 state_dict entries the
 *    reference lists (tests/fixtures/segformer_b0_names.txt), nothing missing, nothing extra;
 *  - numerics: a safetensors file is written from that list (the reference's names, not the
 *    builder's) with the weights of the shared formula (checked against values the reference
 *    stored) plus the I64 num_batches_tracked an HF checkpoint carries; the graph loads it by name
 *    and its logits (1, 5, 16, 16) from a 1x3x64x64 input, and every stage's output, match the
 *    reference within 1e-4 relative (eval mode: batch norm on running statistics, no dropout);
 *    saving and reloading through fg_vit_weights_save gives the same logits bit for bit;
 *  - a file with a missing, an extra, a mis-shaped and a mis-typed tensor each fails with
 *    FG_ERR_FORMAT naming that tensor, and leaves the graph's weights untouched;
 *  - training numerics: a tiny SegFormer (same builder, small widths; batch norm on batch statistics)
 *    gives PyTorch autograd's loss and every parameter gradient within 1e-4 relative;
 *  - a tiny SegFormer (same builder, small widths) trains: gradients of parameters in every kind of
 *    layer against central finite differences, and the loss falls under Adam on one batch;
 *  - configurations, variant names and builder errors (an input too small for the encoder). */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "frugal/io.h"
#include "frugal/vit.h"
#include "testutil.h"

/* ---------------------------------------------------------------- helpers */

typedef struct model {
    fg_graph *g;
    fg_pool *pool;
    fg_segformer_io io;
} model;

static void model_build(model *m, fg_segformer_variant v, int64_t labels, int64_t hw) {
    fg_segformer_cfg cfg;
    CHECK_OK(fg_segformer_config(v, labels, &cfg));
    CHECK_OK(fg_pool_create(&m->pool, 0));
    CHECK_OK(fg_graph_create(&m->g, "segformer"));
    CHECK_OK(fg_segformer_build(m->g, &cfg, 1, hw, hw, 0, &m->io));
    for (int i = 0; i < FG_SEGFORMER_STAGES; i++) fg_graph_mark_output(m->g, m->io.stage[i]);
    fg_mem_policy p;
    CHECK_OK(fg_policy_free_when_dead(&p));
    CHECK_OK(fg_graph_build(m->g, FG_NONE, m->pool, &p));
    fg_graph_set_training(m->g, 0);
}

static void model_free(model *m) {
    fg_graph_free(m->g);
    fg_pool_destroy(m->pool);
}

typedef fg_test_entry entry;

/* Writes `ents` (with data) to path, the HF step counter added when with_counter. */
static void write_file(const char *path, entry *ents, size_t n, int with_counter) {
    fg_test_write_entries(path, ents, n, with_counter ? "decode_head.batch_norm.num_batches_tracked" : NULL);
}

static void read_logits(model *m, float *dst, size_t n) { CHECK_OK(fg_graph_read(m->g, m->io.logits, dst, n * sizeof(float))); }

/* ---------------------------------------------------------------- tests */

static void test_param_counts(fg_fixture *fx) {
    const float *want = fg_fixture_get(fx, "n_params_150", 3);
    for (int v = 0; v < FG_SEGFORMER_VARIANT_COUNT; v++) {
        model m;
        model_build(&m, (fg_segformer_variant)v, 150, 64);
        fg_graph_info info;
        fg_graph_get_info(m.g, &info);
        if (info.n_params != (int64_t)want[v]) {
            fprintf(stderr, "  segformer-%s with 150 labels: %lld parameters, the PyTorch reference has %lld\n",
                    fg_segformer_variant_name((fg_segformer_variant)v), (long long)info.n_params, (long long)want[v]);
            fg_test_failures++;
        }
        if (v == FG_SEGFORMER_B0 && info.n_params != 3752694) {
            fprintf(stderr, "  segformer-b0 with 150 labels: %lld parameters, expected 3,752,694\n", (long long)info.n_params);
            fg_test_failures++;
        }
        printf("  segformer-%s, 150 labels: %lld parameters, %.3f GFLOP at 64x64\n",
               fg_segformer_variant_name((fg_segformer_variant)v), (long long)info.n_params, info.flops_fwd * 1e-9);
        model_free(&m);
    }
}

static void test_names(model *m, const entry *ents, size_t n) {
    const int np = fg_graph_n_params(m->g), ns = fg_graph_n_states(m->g);
    if ((size_t)(np + ns) != n) {
        fprintf(stderr, "  graph has %d parameters + %d states, the reference's state_dict %zu float tensors\n", np, ns, n);
        fg_test_failures++;
    }
    for (size_t i = 0; i < n; i++) {
        fg_id id = fg_graph_find(m->g, ents[i].name);
        if (id == FG_NONE) {
            fprintf(stderr, "  reference tensor '%s' has no tensor of that name in the graph\n", ents[i].name);
            fg_test_failures++;
            continue;
        }
        const fg_tinfo *ti = fg_graph_tinfo(m->g, id);
        int same = ti->t.ndim == ents[i].ndim && (ti->kind == FG_T_PARAM || ti->kind == FG_T_STATE);
        for (int k = 0; same && k < ti->t.ndim; k++) same = ti->t.shape[k] == ents[i].shape[k];
        if (!same) {
            char s1[96], s2[96];
            fprintf(stderr, "  '%s': graph %s (kind %d), reference %s\n", ents[i].name,
                    fg_shape_str(s1, sizeof s1, ti->t.ndim, ti->t.shape), (int)ti->kind,
                    fg_shape_str(s2, sizeof s2, ents[i].ndim, ents[i].shape));
            fg_test_failures++;
        }
    }
}

/* The loader's errors: each bad file fails naming the tensor, and the weights stay as they were. */
static void expect_load_error(model *m, const char *path, const char *what, const char *needle) {
    const fg_id probe = fg_graph_find(m->g, "decode_head.classifier.bias");
    float before[5], after[5];
    memcpy(before, fg_graph_tensor(m->g, probe)->data, sizeof before);
    fg_status s = fg_vit_weights_load(m->g, path);
    if (s != FG_ERR_FORMAT || !strstr(fg_last_error(), needle)) {
        fprintf(stderr, "  %s: load returned %s '%s', expected FORMAT naming '%s'\n", what, fg_status_name(s),
                fg_last_error(), needle);
        fg_test_failures++;
    } else {
        printf("  %s: %s\n", what, fg_last_error());
    }
    memcpy(after, fg_graph_tensor(m->g, probe)->data, sizeof after);
    fg_check_equal("weights untouched by a failed load", after, before, 5);
}

static void test_numerics(fg_fixture *fx, entry *ents, size_t n, const char *dir) {
    const float *cfg = fg_fixture_get(fx, "cfg", 3);
    const int64_t labels = (int64_t)cfg[0], hw = (int64_t)cfg[1];
    model m;
    model_build(&m, FG_SEGFORMER_B0, labels, hw);
    test_names(&m, ents, n);
    for (size_t i = 0; i < n; i++) {
        size_t numel = 1;
        for (int k = 0; k < ents[i].ndim; k++) numel *= (size_t)ents[i].shape[k];
        ents[i].data = malloc(numel * sizeof(float));
        fg_test_formula_weights(ents[i].data, ents[i].name, ents[i].ndim, ents[i].shape);
        /* the formula against the values the reference stored for two tensors */
        char key[FG_NAME_MAX + 8];
        snprintf(key, sizeof key, "w:%s", ents[i].name);
        if (fg_fixture_has(fx, key))
            fg_check_close(key, ents[i].data, fg_fixture_get(fx, key, 8), 8, 0, 1e-7f);
    }
    char path[600], bad[600];
    snprintf(path, sizeof path, "%s/b0.safetensors", dir);
    write_file(path, ents, n, 1);
    {
        /* a graph built with the builder but not with fg_graph_build has no storage to load into */
        fg_graph *ug;
        fg_segformer_cfg uc;
        fg_segformer_io uio;
        CHECK_OK(fg_segformer_config(FG_SEGFORMER_B0, labels, &uc));
        CHECK_OK(fg_graph_create(&ug, "unbuilt"));
        CHECK_OK(fg_segformer_build(ug, &uc, 1, hw, hw, 0, &uio));
        CHECK_STATUS(fg_vit_weights_load(ug, path), FG_ERR_INVALID);
        CHECK(strstr(fg_last_error(), "not built") != NULL);
        fg_graph_free(ug);
    }
    CHECK_OK(fg_vit_weights_load(m.g, path));
    const int64_t hs = (hw - 1) / 4 + 1;
    const size_t nl = (size_t)(labels * hs * hs);
    float *x = malloc((size_t)(3 * hw * hw) * sizeof(float));
    memcpy(x, fg_fixture_get(fx, "x", (size_t)(3 * hw * hw)), (size_t)(3 * hw * hw) * sizeof(float));
    CHECK_OK(fg_graph_set_input(m.g, m.io.input, x, (size_t)(3 * hw * hw) * sizeof(float)));
    CHECK_OK(fg_graph_forward(m.g));
    float *logits = malloc(nl * sizeof(float));
    read_logits(&m, logits, nl);
    const float *want = fg_fixture_get(fx, "logits", nl);
    float amax = 0;
    for (size_t i = 0; i < nl; i++) amax = fmaxf(amax, fabsf(want[i]));
    /* 1e-4 relative, with an absolute floor of 1e-4 of the largest logit for values near zero */
    fg_check_close("segformer-b0 logits vs PyTorch reference", logits, want, nl, 1e-4f, 1e-4f * amax);
    double worst = 0;
    for (size_t i = 0; i < nl; i++) worst = fmax(worst, fabs((double)logits[i] - want[i]) / amax);
    printf("  logits (1, %lld, %lld, %lld): max |diff| / max |logit| = %.2e (max |logit| %.4g)\n", (long long)labels,
           (long long)hs, (long long)hs, worst, amax);
    /* every stage, to say where a mismatch starts: reference image form (1, C, h, w), ours tokens */
    for (int i = 0; i < FG_SEGFORMER_STAGES; i++) {
        const fg_tensor *t = fg_graph_tensor(m.g, m.io.stage[i]);
        const int64_t N = t->shape[1], C = t->shape[2];
        char nm[32], what[96];
        snprintf(nm, sizeof nm, "stage%d", i);
        const float *ref = fg_fixture_get(fx, nm, (size_t)(N * C));
        float *img = malloc((size_t)(N * C) * sizeof(float));
        const float *tok = t->data;
        for (int64_t p = 0; p < N; p++)
            for (int64_t c = 0; c < C; c++) img[c * N + p] = tok[p * C + c];
        float smax = 0;
        for (int64_t k = 0; k < N * C; k++) smax = fmaxf(smax, fabsf(ref[k]));
        snprintf(what, sizeof what, "segformer-b0 stage %d output vs PyTorch reference", i);
        fg_check_close(what, img, ref, (size_t)(N * C), 1e-4f, 1e-4f * smax);
        free(img);
    }

    /* save and reload: the same logits, bit for bit */
    snprintf(bad, sizeof bad, "%s/saved.safetensors", dir);
    CHECK_OK(fg_vit_weights_save(m.g, bad));
    model m2;
    model_build(&m2, FG_SEGFORMER_B0, labels, hw);
    CHECK_OK(fg_vit_weights_load(m2.g, bad));
    CHECK_OK(fg_graph_set_input(m2.g, m2.io.input, x, (size_t)(3 * hw * hw) * sizeof(float)));
    CHECK_OK(fg_graph_forward(m2.g));
    float *l2 = malloc(nl * sizeof(float));
    read_logits(&m2, l2, nl);
    fg_check_equal("logits after save and reload", l2, logits, nl);
    model_free(&m2);
    unlink(bad);

    /* the files below carry the formula's values: mark the graph's classifier bias so that a load
     * that wrote anything before failing would show */
    fg_fill_const(fg_graph_tensor(m.g, fg_graph_find(m.g, "decode_head.classifier.bias"))->data, (size_t)labels, 42.0f);
    /* missing: drop the sr conv of block 0.1 */
    size_t drop = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(ents[i].name, "segformer.encoder.block.0.1.attention.self.sr.weight") == 0) drop = i;
    entry keep = ents[drop];
    ents[drop] = ents[n - 1];
    snprintf(bad, sizeof bad, "%s/missing.safetensors", dir);
    write_file(bad, ents, n - 1, 1);
    expect_load_error(&m, bad, "missing tensor", "missing tensor 'segformer.encoder.block.0.1.attention.self.sr.weight'");
    ents[n - 1] = ents[drop];
    ents[drop] = keep;
    unlink(bad);
    /* extra: an auxiliary head the graph does not have */
    {
        entry *more = calloc(n + 1, sizeof *more);
        memcpy(more, ents, n * sizeof *more);
        snprintf(more[n].name, sizeof more[n].name, "auxiliary_head.classifier.weight");
        more[n].ndim = 1;
        more[n].shape[0] = 5;
        more[n].data = ents[0].data;
        snprintf(bad, sizeof bad, "%s/extra.safetensors", dir);
        write_file(bad, more, n + 1, 1);
        expect_load_error(&m, bad, "extra tensor", "extra tensor 'auxiliary_head.classifier.weight'");
        free(more);
        unlink(bad);
    }
    /* mis-shaped: a classifier for 4 labels instead of 5 */
    for (size_t i = 0; i < n; i++)
        if (strcmp(ents[i].name, "decode_head.classifier.weight") == 0) {
            ents[i].shape[0]--;
            snprintf(bad, sizeof bad, "%s/shape.safetensors", dir);
            write_file(bad, ents, n, 1);
            expect_load_error(&m, bad, "mis-shaped tensor", "tensor 'decode_head.classifier.weight' is F32 [4, 256, 1, 1]");
            ents[i].shape[0]++;
            unlink(bad);
        }
    /* mis-typed: the running mean stored as I32 */
    {
        fg_st_writer *w;
        CHECK_OK(fg_st_writer_create(&w));
        for (size_t i = 0; i < n; i++)
            CHECK_OK(fg_st_writer_add(w, ents[i].name, strcmp(ents[i].name, "decode_head.batch_norm.running_mean") ? FG_ST_F32 : FG_ST_I32,
                                      ents[i].ndim, ents[i].shape, ents[i].data));
        snprintf(bad, sizeof bad, "%s/dtype.safetensors", dir);
        CHECK_OK(fg_st_writer_save(w, bad));
        fg_st_writer_free(w);
        expect_load_error(&m, bad, "mis-typed tensor", "tensor 'decode_head.batch_norm.running_mean' is I32 [256]");
        unlink(bad);
    }
    /* the good file still loads after the failures, and a file that is not there is an I/O error */
    CHECK_OK(fg_vit_weights_load(m.g, path));
    snprintf(bad, sizeof bad, "%s/absent.safetensors", dir);
    CHECK_STATUS(fg_vit_weights_load(m.g, bad), FG_ERR_IO);
    unlink(path);
    for (size_t i = 0; i < n; i++) free(ents[i].data);
    free(x), free(logits), free(l2);
    model_free(&m);
}

static void test_config_and_errors(void) {
    fg_segformer_variant v;
    CHECK_OK(fg_segformer_variant_parse("B2", &v));
    CHECK(v == FG_SEGFORMER_B2);
    CHECK_OK(fg_segformer_variant_parse("mit-b1", &v));
    CHECK(v == FG_SEGFORMER_B1);
    CHECK_STATUS(fg_segformer_variant_parse("b5", &v), FG_ERR_INVALID);
    CHECK(strstr(fg_last_error(), "b0, b1, b2") != NULL);
    fg_segformer_cfg c;
    CHECK_STATUS(fg_segformer_config(FG_SEGFORMER_B0, 0, &c), FG_ERR_INVALID);
    CHECK_OK(fg_segformer_config(FG_SEGFORMER_B2, 19, &c));
    CHECK(c.decoder_hidden == 768 && c.depths[2] == 6 && c.hidden[3] == 512 && c.sr[0] == 8 && c.heads[2] == 5);
    CHECK_OK(fg_segformer_config(FG_SEGFORMER_B1, 19, &c));
    CHECK(c.decoder_hidden == 256 && c.depths[2] == 2 && c.hidden[0] == 64);
    /* 16x16: stage 0 is 4x4, smaller than the 8x8 spatial-reduction conv */
    CHECK_OK(fg_segformer_config(FG_SEGFORMER_B0, 3, &c));
    fg_graph *g;
    CHECK_OK(fg_graph_create(&g, "small"));
    fg_segformer_io io;
    CHECK_STATUS(fg_segformer_build(g, &c, 1, 16, 16, 0, &io), FG_ERR_SHAPE);
    CHECK(strstr(fg_last_error(), "segformer") && strstr(fg_last_error(), "attention.self.sr"));
    printf("  too small: %s\n", fg_last_error());
    fg_graph_free(g);
    /* with a loss: labels at the logits' resolution */
    CHECK_OK(fg_graph_create(&g, "loss"));
    CHECK_OK(fg_segformer_build(g, &c, 2, 64, 64, 1, &io));
    CHECK(io.loss != FG_NONE && fg_tensor_numel(&fg_graph_tinfo(g, io.labels)->t) == 2 * 16 * 16);
    fg_graph_free(g);
}

/* A tiny SegFormer trains: every gradient of a sample of parameters (including ones in each kind
 * of layer) against central finite differences of the per-pixel loss, batch norm on batch
 * statistics, no dropout; then a few SGD steps on one batch lower the loss. */
typedef struct tiny {
    model m;
} tiny;

static double tiny_loss(void *u) {
    tiny *t = u;
    CHECK_OK(fg_graph_forward(t->m.g));
    return fg_graph_loss(t->m.g);
}

/* The tiny configuration (gen_segformer.py's TINY): 3 labels, no dropout. */
static void tiny_cfg(fg_segformer_cfg *c) {
    CHECK_OK(fg_segformer_config(FG_SEGFORMER_B0, 3, c));
    const int64_t hid[4] = {4, 8, 8, 8}, heads[4] = {1, 2, 2, 2}, sr[4] = {2, 2, 1, 1}, dep[4] = {1, 1, 1, 1};
    memcpy(c->hidden, hid, sizeof hid), memcpy(c->heads, heads, sizeof heads), memcpy(c->sr, sr, sizeof sr);
    memcpy(c->depths, dep, sizeof dep);
    c->decoder_hidden = 6;
    c->mlp_ratio = 2;
    c->classifier_dropout = 0.0f;
}

/* Training numerics against PyTorch: the tiny SegFormer with the formula's weights, batch norm on
 * batch statistics, per-pixel cross-entropy: the loss and every parameter's gradient against
 * autograd's (segformer.bin, tiny.*). */
static void test_tiny_reference(fg_fixture *fx) {
    fg_segformer_cfg c;
    tiny_cfg(&c);
    model m;
    CHECK_OK(fg_pool_create(&m.pool, 0));
    CHECK_OK(fg_graph_create(&m.g, "tiny_ref"));
    const int64_t B = 2, HW = 32;
    CHECK_OK(fg_segformer_build(m.g, &c, B, HW, HW, 1, &m.io));
    fg_mem_policy p;
    CHECK_OK(fg_policy_free_when_dead(&p));
    CHECK_OK(fg_graph_build(m.g, m.io.loss, m.pool, &p));
    for (int i = 0; i < fg_graph_n_params(m.g) + fg_graph_n_states(m.g); i++) {
        const int np = fg_graph_n_params(m.g);
        fg_tensor *t = fg_graph_tensor(m.g, i < np ? fg_graph_param(m.g, i) : fg_graph_state(m.g, i - np));
        fg_test_formula_weights(t->data, t->name, t->ndim, t->shape);
    }
    const size_t nx = (size_t)(B * 3 * HW * HW), nl = (size_t)(B * 8 * 8);
    const float *lf = fg_fixture_get(fx, "tiny.labels", nl);
    int32_t *lab = malloc(nl * sizeof(int32_t));
    for (size_t i = 0; i < nl; i++) lab[i] = (int32_t)lf[i];
    CHECK_OK(fg_graph_set_input(m.g, m.io.input, fg_fixture_get(fx, "tiny.x", nx), nx * sizeof(float)));
    CHECK_OK(fg_graph_set_input(m.g, m.io.labels, lab, nl * sizeof(int32_t)));
    fg_graph_set_training(m.g, 1);
    fg_graph_zero_grad(m.g);
    CHECK_OK(fg_graph_forward(m.g));
    CHECK_OK(fg_graph_backward(m.g));
    const float loss = fg_graph_loss(m.g), want = fg_fixture_get(fx, "tiny.loss", 1)[0];
    fg_check_close("tiny segformer loss vs PyTorch", &loss, &want, 1, 1e-5f, 0);
    int checked = 0;
    double worst = 0;
    for (int i = 0; i < fg_graph_n_params(m.g); i++) {
        fg_id id = fg_graph_param(m.g, i);
        const fg_tensor *t = fg_graph_tensor(m.g, id);
        char key[FG_NAME_MAX + 16];
        snprintf(key, sizeof key, "tiny.grad:%s", t->name);
        const size_t numel = (size_t)fg_tensor_numel(t);
        const float *ref = fg_fixture_get(fx, key, numel), *got = fg_graph_tensor(m.g, fg_graph_tinfo(m.g, id)->grad)->data;
        float gmax = 0;
        for (size_t j = 0; j < numel; j++) gmax = fmaxf(gmax, fabsf(ref[j]));
        /* 1e-4 relative, with a floor of 1e-4 of the tensor's largest gradient for values near 0, and
         * an absolute 1e-7: the decoder's linear_c biases feed a batch norm, which removes any
         * per-channel constant, so their exact gradient is 0 (PyTorch's ~1e-17, ours ~5e-9) */
        fg_check_close(key, got, ref, numel, 1e-4f, 1e-4f * gmax + 1e-7f);
        if (gmax > 1e-6f)
            for (size_t j = 0; j < numel; j++) worst = fmax(worst, fabs((double)got[j] - ref[j]) / gmax);
        checked++;
    }
    printf("  tiny segformer training: loss %.6f (PyTorch %.6f), %d parameter gradients, max |diff| / max |grad| %.2e "
           "(tensors with gradients above 1e-6)\n",
           loss, want, checked, worst);
    free(lab);
    model_free(&m);
}

static void test_tiny_training(void) {
    fg_segformer_cfg c;
    tiny_cfg(&c);
    tiny t;
    model *m = &t.m;
    CHECK_OK(fg_pool_create(&m->pool, 0));
    CHECK_OK(fg_graph_create(&m->g, "tiny"));
    const int64_t B = 2, HW = 32;
    CHECK_OK(fg_segformer_build(m->g, &c, B, HW, HW, 1, &m->io));
    fg_mem_policy p;
    CHECK_OK(fg_policy_free_when_dead(&p));
    CHECK_OK(fg_graph_build(m->g, m->io.loss, m->pool, &p));
    fg_rng r;
    fg_rng_seed(&r, 77);
    fg_graph_init_params(m->g, &r);
    const size_t nx = (size_t)(B * 3 * HW * HW), nl = (size_t)(B * 8 * 8);
    float *x = malloc(nx * sizeof(float));
    int32_t *lab = malloc(nl * sizeof(int32_t));
    fg_fill_uniform(x, nx, -1, 1, &r);
    for (size_t i = 0; i < nl; i++) lab[i] = (int32_t)fg_rng_below(&r, 3);
    CHECK_OK(fg_graph_set_input(m->g, m->io.input, x, nx * sizeof(float)));
    CHECK_OK(fg_graph_set_input(m->g, m->io.labels, lab, nl * sizeof(int32_t)));
    fg_graph_set_training(m->g, 1);
    fg_graph_zero_grad(m->g);
    CHECK_OK(fg_graph_forward(m->g));
    CHECK_OK(fg_graph_backward(m->g));
    const float l0 = fg_graph_loss(m->g);
    static const char *const probe[] = {
        "segformer.encoder.patch_embeddings.0.proj.weight", "segformer.encoder.patch_embeddings.1.layer_norm.weight",
        "segformer.encoder.block.0.0.attention.self.query.weight", "segformer.encoder.block.0.0.attention.self.key.bias",
        "segformer.encoder.block.0.0.attention.self.sr.weight", "segformer.encoder.block.1.0.attention.self.layer_norm.bias",
        "segformer.encoder.block.2.0.attention.output.dense.weight", "segformer.encoder.block.3.0.mlp.dwconv.dwconv.weight",
        "segformer.encoder.block.1.0.mlp.dense1.bias", "segformer.encoder.block.0.0.mlp.dense2.weight",
        "segformer.encoder.layer_norm.3.weight", "decode_head.linear_c.3.proj.weight", "decode_head.linear_c.0.proj.bias",
        "decode_head.linear_fuse.weight", "decode_head.batch_norm.weight", "decode_head.classifier.bias"};
    fg_rng pick;
    fg_rng_seed(&pick, 3);
    for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++) {
        fg_id id = fg_graph_find(m->g, probe[i]);
        CHECK(id != FG_NONE);
        if (id == FG_NONE) continue;
        fg_tensor *tt = fg_graph_tensor(m->g, id);
        const size_t numel = (size_t)fg_tensor_numel(tt);
        float *grad = malloc(numel * sizeof(float));
        memcpy(grad, fg_graph_tensor(m->g, fg_graph_tinfo(m->g, id)->grad)->data, numel * sizeof(float));
        /* eps 2e-3: at 1e-2 a first-layer step moves enough pre-ReLU values of the decoder across 0
         * to bend the difference quotient (seen: 0.0111 against 0.0128); the float loss's rounding
         * (~1e-7 / 4e-3) stays far below the tolerance */
        fg_check_grad(probe[i], tt->data, grad, numel, tiny_loss, &t, 6, 2e-3f, 3e-2f, 3e-4f, &pick);
        free(grad);
    }
    /* SGD on the same batch lowers the loss */
    fg_optim *o;
    const fg_optim_cfg oc = fg_optim_defaults(FG_OPTIM_ADAM, 1e-2f);
    CHECK_OK(fg_optim_create(&o, m->g, &oc));
    float last = l0;
    for (int step = 0; step < 10; step++) {
        fg_graph_zero_grad(m->g);
        CHECK_OK(fg_graph_forward(m->g));
        CHECK_OK(fg_graph_backward(m->g));
        last = fg_graph_loss(m->g);
        CHECK_OK(fg_optim_step(o));
    }
    printf("  tiny segformer: loss %.4f -> %.4f after 10 Adam steps on one batch\n", l0, last);
    if (!(isfinite(last) && last < 0.9f * l0)) {
        fprintf(stderr, "  tiny segformer: loss %.4f -> %.4f, expected a drop of at least 10%%\n", l0, last);
        fg_test_failures++;
    }
    fg_optim_free(o);
    free(x), free(lab);
    model_free(m);
}

/* Mutation-review addition: the patch embeddings pad patch / 2 (vit.h), which an even patch tells
 * apart from (patch - 1) / 2: patch 4, stride 4 on 32x32 pads 2 -> (32 + 4 - 4) / 4 + 1 = 9; then
 * the default 3x3 stride-2 pad-1 stages: 5, 3, 2. */
static void test_even_patch(void) {
    fg_segformer_cfg c;
    CHECK_OK(fg_segformer_config(FG_SEGFORMER_B0, 3, &c));
    c.patch[0] = 4;
    c.stride[0] = 4;
    fg_graph *g = NULL;
    CHECK_OK(fg_graph_create(&g, "even"));
    fg_segformer_io io;
    CHECK_OK(fg_segformer_build(g, &c, 1, 32, 32, 0, &io));
    static const int64_t want[4] = {9, 5, 3, 2};
    for (int i = 0; i < FG_SEGFORMER_STAGES; i++) {
        if (io.h[i] != want[i] || io.w[i] != want[i])
            fprintf(stderr, "  even patch: stage %d is %lldx%lld, expected %lldx%lld\n", i, (long long)io.h[i],
                    (long long)io.w[i], (long long)want[i], (long long)want[i]);
        CHECK(io.h[i] == want[i] && io.w[i] == want[i]);
    }
    const fg_id w = fg_graph_find(g, "segformer.encoder.patch_embeddings.0.proj.weight");
    CHECK(w != FG_NONE && fg_graph_tinfo(g, w)->t.shape[2] == 4 && fg_graph_tinfo(g, w)->t.shape[3] == 4);
    fg_graph_free(g);
}

int main(void) {
    fg_threads_set(2);
    char dir[] = "/tmp/fg_test_segformer_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    fg_fixture *fx = fg_fixture_open("segformer.bin");
    size_t n = 0;
    entry *ents = fg_test_read_entries("segformer_b0_names.txt", &n);
    CHECK(n == 207);
    test_config_and_errors();
    test_even_patch();
    test_tiny_training();
    test_param_counts(fx);
    test_numerics(fx, ents, n, dir);
    test_tiny_reference(fx);
    free(ents);
    fg_fixture_close(fx);
    rmdir(dir);
    return fg_test_finish("test_segformer");
}
