/* Tests for conv2d (src/ops/conv2d.c), every algorithm (implicit, gemm, dnnl):
 *  - forward and backward against the naive twins over shapes with stride 1/2, padding 0/1/2,
 *    dilation 2, groups 2, depthwise (with and without a channel multiplier), 1x1, non-square
 *    inputs and kernels, N = 2, with and without bias; guard values after every output;
 *  - backward semantics: dinp written (prefilled garbage is overwritten), dweight and dbias
 *    accumulated (two calls on prefilled buffers give prefill + 2 * grad), NULL gradients allowed
 *    in every combination;
 *  - finite-difference gradient checks of loss = sum(out * r) for input, weight and bias, on the
 *    naive twin and on every fast algorithm;
 *  - workspace: implicit needs 0, gemm needs exactly the column buffer; gemm and dnnl run in a
 *    malloc of exactly workspace_bytes (so ASan catches overruns) and refuse one byte less;
 *  - PyTorch references from tests/fixtures/conv.bin (gen_conv.py) for all three algorithms;
 *  - fg_conv2d_check errors, output sizes, flops; the dnnl primitive cache past its capacity, under
 *    a changed thread count, and raced by two threads. */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "testutil.h"


static char *desc_str(char *buf, size_t cap, const fg_conv2d_desc *d, int has_bias) {
    snprintf(buf, cap, "in %lldx%lldx%lldx%lld oc %lld k %lldx%lld s %lldx%lld p %lldx%lld d %lldx%lld g %lld%s",
             (long long)d->n, (long long)d->c, (long long)d->h, (long long)d->w, (long long)d->oc, (long long)d->kh,
             (long long)d->kw, (long long)d->stride_h, (long long)d->stride_w, (long long)d->pad_h,
             (long long)d->pad_w, (long long)d->dil_h, (long long)d->dil_w, (long long)d->groups,
             has_bias ? " bias" : "");
    return buf;
}

static size_t in_numel(const fg_conv2d_desc *d) { return (size_t)(d->n * d->c * d->h * d->w); }
static size_t w_numel(const fg_conv2d_desc *d) { return (size_t)(d->oc * (d->c / d->groups) * d->kh * d->kw); }
static size_t out_numel(const fg_conv2d_desc *d) {
    return (size_t)(d->n * d->oc * fg_conv2d_out_h(d) * fg_conv2d_out_w(d));
}

/* Tolerances: |err| <= 1e-5 * sqrt(fan) + 1e-4 * |ref|, fan = terms summed per value, inputs ~U(-1,1). */
#define RTOL 1e-4f
typedef struct shape {
    fg_conv2d_desc d;
    int has_bias;
} shape;

/* n c h w  oc kh kw  sh sw ph pw dh dw g */
static const shape SHAPES[] = {
    {{2, 3, 7, 9, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1}, 1},       /* 3x3 pad 1, non-square */
    {{2, 4, 9, 9, 6, 3, 3, 2, 2, 0, 0, 1, 1, 1}, 0},       /* stride 2, pad 0, no bias */
    {{1, 4, 8, 8, 4, 3, 3, 1, 1, 2, 2, 2, 2, 1}, 1},       /* dilation 2, pad 2 */
    {{2, 4, 6, 7, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2}, 1},       /* groups 2 */
    {{2, 6, 9, 8, 6, 3, 3, 2, 2, 1, 1, 1, 1, 6}, 1},       /* depthwise stride 2 */
    {{2, 3, 5, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 3}, 0},       /* depthwise multiplier 2 */
    {{2, 8, 5, 7, 5, 1, 1, 1, 1, 0, 0, 1, 1, 1}, 1},       /* 1x1 */
    {{2, 8, 6, 5, 4, 1, 1, 2, 2, 0, 0, 1, 1, 1}, 0},       /* 1x1 stride 2 */
    {{1, 3, 23, 21, 4, 11, 11, 4, 4, 2, 2, 1, 1, 1}, 1},   /* 11x11 stride 4 */
    {{2, 3, 8, 11, 4, 2, 3, 2, 1, 1, 0, 1, 2, 1}, 1},      /* rectangular, mixed */
    {{1, 17, 9, 70, 19, 3, 3, 1, 1, 1, 1, 1, 1, 1}, 1},    /* OW > one implicit tile, odd channels */
    {{2, 16, 6, 6, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1}, 1},     /* blocked-friendly widths */
    {{1, 32, 6, 5, 32, 3, 3, 1, 1, 1, 1, 1, 1, 32}, 0},    /* depthwise, blocked-friendly */
    {{1, 2, 5, 5, 3, 5, 5, 1, 1, 0, 0, 1, 1, 1}, 1},       /* kernel = input: 1x1 output */
    {{2, 4, 7, 7, 4, 3, 3, 3, 2, 1, 2, 2, 1, 2}, 1},       /* stride 3x2, pad 1x2, dil 2x1, groups 2 */
    {{1, 3, 12, 40, 5, 7, 7, 1, 1, 3, 3, 1, 1, 1}, 1},     /* 7x7 stride 1: several 3-tap chunks */
    {{1, 4, 9, 37, 12, 5, 5, 2, 2, 2, 2, 1, 1, 1}, 0},     /* 5x5 stride 2: phase buffers, 8 + 4 channels */
    {{1, 2, 3, 2300, 3, 1, 3, 1, 1, 0, 0, 1, 1100, 1}, 1}, /* huge dilation: generic forward, dweight */
    {{1, 2, 3, 2100, 2, 1, 3, 1, 1, 0, 1, 1, 1, 1}, 0},    /* rows wider than the fast buffers */
    {{2, 5, 4, 3, 7, 3, 2, 1, 1, 2, 1, 1, 1, 1}, 1},       /* padding larger than half the kernel */
    {{2, 3, 20, 18, 2, 1, 1, 1, 1, 0, 0, 1, 1, 1}, 1},     /* pointwise with few channels */
    {{1, 2, 9, 9, 2, 3, 3, 1, 1, 4, 4, 1, 1, 1}, 1},       /* padding > dil*(K-1): negative bwd-data pad */
    {{1, 2, 3, 40, 3, 1, 33, 1, 1, 0, 1, 1, 1, 1}, 1},     /* kernel wider than the fast paths take */
    {{1, 2, 3, 80, 3, 1, 40, 1, 2, 0, 0, 1, 1, 1}, 1},     /* the same, strided: the generic strided sum */
    {{2, 6, 10, 13, 4, 3, 3, 2, 3, 1, 1, 2, 3, 2}, 1},     /* stride 2x3 with dilation 2x3, groups */
};
#define NSHAPES (sizeof SHAPES / sizeof SHAPES[0])

/* Runs forward with a workspace of exactly workspace_bytes. */
static fg_status run_forward(float *out, const float *x, const float *w, const float *b, const fg_conv2d_desc *d,
                             fg_conv_algo algo) {
    size_t wsb = fg_conv2d_workspace_bytes(d, algo);
    void *ws = wsb ? malloc(wsb) : NULL;
    FG_ASSERT(!wsb || ws);
    fg_status s = fg_conv2d_forward(out, x, w, b, d, algo, ws, wsb);
    free(ws);
    return s;
}

static fg_status run_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                              const fg_conv2d_desc *d, fg_conv_algo algo) {
    size_t wsb = fg_conv2d_workspace_bytes(d, algo);
    void *ws = wsb ? malloc(wsb) : NULL;
    FG_ASSERT(!wsb || ws);
    fg_status s = fg_conv2d_backward(dx, dw, db, dy, x, w, d, algo, ws, wsb);
    free(ws);
    return s;
}

/* ---------------------------------------------------------------- against the naive twin */

static void test_against_naive(fg_conv_algo algo, const shape *sh, fg_rng *rng) {
    const fg_conv2d_desc *d = &sh->d;
    char ds[200], what[300];
    desc_str(ds, sizeof ds, d, sh->has_bias);
    const size_t ni = in_numel(d), nw = w_numel(d), no = out_numel(d), nb = (size_t)d->oc;
    const int64_t Cg = d->c / d->groups, OCg = d->oc / d->groups;
    const double fan_fwd = (double)(Cg * d->kh * d->kw);
    const double fan_dx = (double)(OCg * d->kh * d->kw);
    const double fan_dw = (double)(d->n * fg_conv2d_out_h(d) * fg_conv2d_out_w(d));

    float *x = fg_alloc_guarded(ni), *w = fg_alloc_guarded(nw), *b = fg_alloc_guarded(nb), *dy = fg_alloc_guarded(no);
    fg_fill_uniform(x, ni, -1, 1, rng);
    fg_fill_uniform(w, nw, -1, 1, rng);
    fg_fill_uniform(b, nb, -1, 1, rng);
    fg_fill_uniform(dy, no, -1, 1, rng);
    const float *bias = sh->has_bias ? b : NULL;

    /* forward */
    float *y = fg_alloc_guarded(no), *y_ref = fg_alloc_guarded(no);
    fg_conv2d_forward_naive(y_ref, x, w, bias, d);
    CHECK_OK(run_forward(y, x, w, bias, d, algo));
    snprintf(what, sizeof what, "%s forward [%s]", fg_conv_algo_name(algo), ds);
    fg_check_close(what, y, y_ref, no, RTOL, fg_atol_for(fan_fwd));
    fg_check_guard(what, y, no);

    /* backward reference (dweight, dbias from zero) */
    float *dx_ref = fg_alloc_guarded(ni), *dw_ref = fg_alloc_guarded(nw), *db_ref = fg_alloc_guarded(nb);
    memset(dw_ref, 0, nw * sizeof(float));
    memset(db_ref, 0, nb * sizeof(float));
    fg_conv2d_backward_naive(dx_ref, dw_ref, db_ref, dy, x, w, d);

    /* all three grads; dweight/dbias prefilled, backward called twice: prefill + 2 * grad */
    float *dx = fg_alloc_guarded(ni), *dw = fg_alloc_guarded(nw), *db = fg_alloc_guarded(nb);
    float *pw = fg_alloc_guarded(nw), *pb = fg_alloc_guarded(nb), *want_w = fg_alloc_guarded(nw), *want_b = fg_alloc_guarded(nb);
    fg_fill_uniform(pw, nw, -1, 1, rng);
    fg_fill_uniform(pb, nb, -1, 1, rng);
    for (size_t i = 0; i < ni; i++) dx[i] = 777.0f; /* must be overwritten, not added to */
    memcpy(dw, pw, nw * sizeof(float));
    memcpy(db, pb, nb * sizeof(float));
    CHECK_OK(run_backward(dx, dw, db, dy, x, w, d, algo));
    snprintf(what, sizeof what, "%s backward dinp [%s]", fg_conv_algo_name(algo), ds);
    fg_check_close(what, dx, dx_ref, ni, RTOL, fg_atol_for(fan_dx));
    fg_check_guard(what, dx, ni);
    for (size_t i = 0; i < nw; i++) want_w[i] = pw[i] + dw_ref[i];
    for (size_t i = 0; i < nb; i++) want_b[i] = pb[i] + db_ref[i];
    snprintf(what, sizeof what, "%s backward dweight += (1 call) [%s]", fg_conv_algo_name(algo), ds);
    fg_check_close(what, dw, want_w, nw, RTOL, fg_atol_for(fan_dw));
    fg_check_guard(what, dw, nw);
    snprintf(what, sizeof what, "%s backward dbias += (1 call) [%s]", fg_conv_algo_name(algo), ds);
    fg_check_close(what, db, want_b, nb, RTOL, fg_atol_for(fan_dw));
    fg_check_guard(what, db, nb);

    CHECK_OK(run_backward(dx, dw, db, dy, x, w, d, algo));
    snprintf(what, sizeof what, "%s backward dinp (2nd call, still written) [%s]", fg_conv_algo_name(algo), ds);
    fg_check_close(what, dx, dx_ref, ni, RTOL, fg_atol_for(fan_dx));
    for (size_t i = 0; i < nw; i++) want_w[i] = pw[i] + 2.0f * dw_ref[i];
    for (size_t i = 0; i < nb; i++) want_b[i] = pb[i] + 2.0f * db_ref[i];
    snprintf(what, sizeof what, "%s backward dweight += (2 calls) [%s]", fg_conv_algo_name(algo), ds);
    fg_check_close(what, dw, want_w, nw, RTOL, 2 * fg_atol_for(fan_dw));
    snprintf(what, sizeof what, "%s backward dbias += (2 calls) [%s]", fg_conv_algo_name(algo), ds);
    fg_check_close(what, db, want_b, nb, RTOL, 2 * fg_atol_for(fan_dw));

    /* NULL gradients: every non-empty subset of (dinp, dweight, dbias) */
    for (int mask = 1; mask < 8; mask++) {
        int want_dx = mask & 1, want_dw = mask & 2, want_db = mask & 4;
        for (size_t i = 0; i < ni; i++) dx[i] = -5.0f;
        memset(dw, 0, nw * sizeof(float));
        memset(db, 0, nb * sizeof(float));
        CHECK_OK(run_backward(want_dx ? dx : NULL, want_dw ? dw : NULL, want_db ? db : NULL, dy, x, w, d, algo));
        snprintf(what, sizeof what, "%s backward mask %d dinp [%s]", fg_conv_algo_name(algo), mask, ds);
        if (want_dx) {
            fg_check_close(what, dx, dx_ref, ni, RTOL, fg_atol_for(fan_dx));
        } else {
            int untouched = 1;
            for (size_t i = 0; i < ni; i++) untouched &= dx[i] == -5.0f;
            CHECK(untouched);
        }
        snprintf(what, sizeof what, "%s backward mask %d dweight [%s]", fg_conv_algo_name(algo), mask, ds);
        if (want_dw) fg_check_close(what, dw, dw_ref, nw, RTOL, fg_atol_for(fan_dw));
        snprintf(what, sizeof what, "%s backward mask %d dbias [%s]", fg_conv_algo_name(algo), mask, ds);
        if (want_db) fg_check_close(what, db, db_ref, nb, RTOL, fg_atol_for(fan_dw));
        fg_check_guard(what, dx, ni);
        fg_check_guard(what, dw, nw);
        fg_check_guard(what, db, nb);
    }

    free(x), free(w), free(b), free(dy), free(y), free(y_ref), free(dx_ref), free(dw_ref), free(db_ref);
    free(dx), free(dw), free(db), free(pw), free(pb), free(want_w), free(want_b);
}

/* ---------------------------------------------------------------- finite differences */

typedef struct gc_ctx {
    const fg_conv2d_desc *d;
    int algo; /* -1: naive twin */
    float *x, *w, *b, *r, *y;
} gc_ctx;

/* loss = sum(out * r), accumulated in double */
static double gc_loss(void *user) {
    gc_ctx *c = user;
    if (c->algo < 0)
        fg_conv2d_forward_naive(c->y, c->x, c->w, c->b, c->d);
    else
        CHECK_OK(run_forward(c->y, c->x, c->w, c->b, c->d, (fg_conv_algo)c->algo));
    double s = 0;
    for (size_t i = 0; i < out_numel(c->d); i++) s += (double)c->y[i] * c->r[i];
    return s;
}

static void test_gradcheck(int algo, const shape *sh, fg_rng *rng) {
    const fg_conv2d_desc *d = &sh->d;
    char ds[200], what[300];
    desc_str(ds, sizeof ds, d, 1);
    const char *an = algo < 0 ? "naive" : fg_conv_algo_name((fg_conv_algo)algo);
    const size_t ni = in_numel(d), nw = w_numel(d), no = out_numel(d), nb = (size_t)d->oc;
    gc_ctx c = {d, algo, malloc(ni * 4), malloc(nw * 4), malloc(nb * 4), malloc(no * 4), malloc(no * 4)};
    fg_fill_uniform(c.x, ni, -1, 1, rng);
    fg_fill_uniform(c.w, nw, -1, 1, rng);
    fg_fill_uniform(c.b, nb, -1, 1, rng);
    fg_fill_uniform(c.r, no, -1, 1, rng);
    float *gx = malloc(ni * 4), *gw = calloc(nw, 4), *gb = calloc(nb, 4);
    if (algo < 0)
        fg_conv2d_backward_naive(gx, gw, gb, c.r, c.x, c.w, d);
    else
        CHECK_OK(run_backward(gx, gw, gb, c.r, c.x, c.w, d, (fg_conv_algo)algo));
    /* the loss is linear in each coordinate, so a large step is exact up to float rounding */
    snprintf(what, sizeof what, "%s gradcheck inp [%s]", an, ds);
    fg_check_grad(what, c.x, gx, ni, gc_loss, &c, 16, 0.05f, 2e-3f, 2e-3f, rng);
    snprintf(what, sizeof what, "%s gradcheck weight [%s]", an, ds);
    fg_check_grad(what, c.w, gw, nw, gc_loss, &c, 16, 0.05f, 2e-3f, 2e-3f, rng);
    snprintf(what, sizeof what, "%s gradcheck bias [%s]", an, ds);
    fg_check_grad(what, c.b, gb, nb, gc_loss, &c, 16, 0.05f, 2e-3f, 2e-3f, rng);
    free(c.x), free(c.w), free(c.b), free(c.r), free(c.y), free(gx), free(gw), free(gb);
}

/* ---------------------------------------------------------------- workspace */

static void test_workspace(void) {
    for (size_t s = 0; s < NSHAPES; s++) {
        const fg_conv2d_desc *d = &SHAPES[s].d;
        char ds[200];
        desc_str(ds, sizeof ds, d, 0);
        if (fg_conv2d_workspace_bytes(d, FG_CONV_IMPLICIT) != 0) {
            fprintf(stderr, "  implicit workspace %zu != 0 [%s]\n", fg_conv2d_workspace_bytes(d, FG_CONV_IMPLICIT), ds);
            fg_test_failures++;
        }
        int trivial = d->kh == 1 && d->kw == 1 && d->stride_h == 1 && d->stride_w == 1 && d->pad_h == 0 &&
                      d->pad_w == 0;
        size_t col = trivial ? 0
                             : (size_t)(d->c / d->groups * d->kh * d->kw * fg_conv2d_out_h(d) * fg_conv2d_out_w(d)) *
                                   sizeof(float);
        if (fg_conv2d_workspace_bytes(d, FG_CONV_GEMM) != col) {
            fprintf(stderr, "  gemm workspace %zu, expected the column buffer %zu [%s]\n",
                    fg_conv2d_workspace_bytes(d, FG_CONV_GEMM), col, ds);
            fg_test_failures++;
        }
        /* the same query twice gives the same answer (the dnnl cache is keyed consistently) */
        CHECK(fg_conv2d_workspace_bytes(d, FG_CONV_DNNL) == fg_conv2d_workspace_bytes(d, FG_CONV_DNNL));
        /* one byte short is refused, before anything is written */
        for (int a = FG_CONV_GEMM; a <= FG_CONV_DNNL; a++) {
            size_t wsb = fg_conv2d_workspace_bytes(d, (fg_conv_algo)a);
            if (wsb == 0) continue;
            float *x = calloc(in_numel(d), 4), *w = calloc(w_numel(d), 4), *y = calloc(out_numel(d), 4);
            void *ws = malloc(wsb);
            CHECK_STATUS(fg_conv2d_forward(y, x, w, NULL, d, (fg_conv_algo)a, ws, wsb - 1), FG_ERR_INVALID);
            CHECK(strstr(fg_last_error(), "workspace") != NULL);
            CHECK_STATUS(fg_conv2d_backward(x, w, NULL, y, x, w, d, (fg_conv_algo)a, ws, wsb - 1), FG_ERR_INVALID);
            CHECK_STATUS(fg_conv2d_forward(y, x, w, NULL, d, (fg_conv_algo)a, NULL, wsb), FG_ERR_INVALID);
            free(x), free(w), free(y), free(ws);
        }
    }
    /* nothing is written past workspace_bytes (oneDNN's code is not instrumented by ASan, so
     * sentinel bytes after the workspace check it) */
    fg_rng rng;
    fg_rng_seed(&rng, 7);
    for (size_t s = 0; s < NSHAPES; s++) {
        const fg_conv2d_desc *d = &SHAPES[s].d;
        for (int a = FG_CONV_GEMM; a <= FG_CONV_DNNL; a++) {
            size_t wsb = fg_conv2d_workspace_bytes(d, (fg_conv_algo)a);
            unsigned char *ws = malloc(wsb + 256);
            memset(ws, 0xA5, wsb + 256);
            float *x = malloc(in_numel(d) * 4), *w = malloc(w_numel(d) * 4), *b = malloc((size_t)d->oc * 4);
            float *y = malloc(out_numel(d) * 4), *gx = malloc(in_numel(d) * 4), *gw = calloc(w_numel(d), 4);
            float *gb = calloc((size_t)d->oc, 4);
            fg_fill_uniform(x, in_numel(d), -1, 1, &rng);
            fg_fill_uniform(w, w_numel(d), -1, 1, &rng);
            fg_fill_uniform(b, (size_t)d->oc, -1, 1, &rng);
            CHECK_OK(fg_conv2d_forward(y, x, w, b, d, (fg_conv_algo)a, wsb ? ws : NULL, wsb));
            CHECK_OK(fg_conv2d_backward(gx, gw, gb, y, x, w, d, (fg_conv_algo)a, wsb ? ws : NULL, wsb));
            for (size_t i = wsb; i < wsb + 256; i++)
                if (ws[i] != 0xA5) {
                    char ds[200];
                    fprintf(stderr, "  %s wrote past its workspace of %zu bytes at byte %zu [%s]\n",
                            fg_conv_algo_name((fg_conv_algo)a), wsb, i, desc_str(ds, sizeof ds, d, 1));
                    fg_test_failures++;
                    break;
                }
            free(ws), free(x), free(w), free(b), free(y), free(gx), free(gw), free(gb);
        }
    }
    /* dnnl on a layer where oneDNN picks blocked layouts needs reorder buffers: workspace > 0 */
    fg_conv2d_desc big = {2, 64, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1};
    size_t wsb = fg_conv2d_workspace_bytes(&big, FG_CONV_DNNL);
    CHECK(wsb >= 2 * 64 * 14 * 14 * sizeof(float));
    printf("  dnnl workspace for 2x64x14x14, 64 3x3: %zu bytes; gemm %zu bytes\n", wsb,
           fg_conv2d_workspace_bytes(&big, FG_CONV_GEMM));
}

/* ---------------------------------------------------------------- PyTorch fixtures */

static void test_fixtures(void) {
    fg_fixture *f = fg_fixture_open("conv.bin");
    int ncase = 0;
    for (int i = 0;; i++) {
        char name[64];
        snprintf(name, sizeof name, "conv%d.params", i);
        if (!fg_fixture_has(f, name)) break;
        ncase++;
        const float *p = fg_fixture_get(f, name, 15);
        fg_conv2d_desc d = {(int64_t)p[0], (int64_t)p[1], (int64_t)p[2],  (int64_t)p[3],  (int64_t)p[4],
                            (int64_t)p[5], (int64_t)p[6], (int64_t)p[7],  (int64_t)p[8],  (int64_t)p[9],
                            (int64_t)p[10], (int64_t)p[11], (int64_t)p[12], (int64_t)p[13]};
        int has_bias = p[14] != 0;
        CHECK_OK(fg_conv2d_check(&d));
        const size_t ni = in_numel(&d), nw = w_numel(&d), no = out_numel(&d), nb = (size_t)d.oc;
#define FX(var, key, n)                                                                                            \
    snprintf(name, sizeof name, "conv%d." key, i);                                                                 \
    const float *var = fg_fixture_get(f, name, n)
        FX(x, "x", ni);
        FX(w, "w", nw);
        FX(b, "b", nb);
        FX(out, "out", no);
        FX(dout, "dout", no);
        FX(dx, "dx", ni);
        FX(dw, "dw", nw);
        FX(db, "db", nb);
#undef FX
        /* references are float64; inputs ~N(0,1) and weights scaled by 1/sqrt(fan_in), so outputs
         * and dinp are O(1) and dweight O(sqrt(N*OH*OW)): rtol 1e-4, atol 1e-5 * sqrt(terms summed) */
        const int64_t OCg = d.oc / d.groups;
        const float at_out = 1e-5f, at_dx = (float)(1e-5 * sqrt((double)(OCg * d.kh * d.kw)));
        const float at_dw = (float)(1e-5 * sqrt((double)(d.n * fg_conv2d_out_h(&d) * fg_conv2d_out_w(&d))));
        char ds[200], what[300];
        desc_str(ds, sizeof ds, &d, has_bias);
        float *y = fg_alloc_guarded(no), *gx = fg_alloc_guarded(ni), *gw = fg_alloc_guarded(nw), *gb = fg_alloc_guarded(nb);
        for (int a = -1; a < FG_CONV_ALGO_COUNT; a++) {
            const char *an = a < 0 ? "naive" : fg_conv_algo_name((fg_conv_algo)a);
            memset(gw, 0, nw * 4);
            memset(gb, 0, nb * 4);
            if (a < 0) {
                fg_conv2d_forward_naive(y, x, w, has_bias ? b : NULL, &d);
                fg_conv2d_backward_naive(gx, gw, gb, dout, x, w, &d);
            } else {
                CHECK_OK(run_forward(y, x, w, has_bias ? b : NULL, &d, (fg_conv_algo)a));
                CHECK_OK(run_backward(gx, gw, gb, dout, x, w, &d, (fg_conv_algo)a));
            }
            snprintf(what, sizeof what, "fixture conv%d %s out [%s]", i, an, ds);
            fg_check_close(what, y, out, no, RTOL, at_out);
            snprintf(what, sizeof what, "fixture conv%d %s dinp [%s]", i, an, ds);
            fg_check_close(what, gx, dx, ni, RTOL, at_dx);
            snprintf(what, sizeof what, "fixture conv%d %s dweight [%s]", i, an, ds);
            fg_check_close(what, gw, dw, nw, RTOL, at_dw);
            snprintf(what, sizeof what, "fixture conv%d %s dbias [%s]", i, an, ds);
            if (has_bias) fg_check_close(what, gb, db, nb, RTOL, at_dw);
            fg_check_guard(what, y, no);
            fg_check_guard(what, gx, ni);
            fg_check_guard(what, gw, nw);
            fg_check_guard(what, gb, nb);
        }
        free(y), free(gx), free(gw), free(gb);
    }
    CHECK(ncase >= 10);
    fg_fixture_close(f);
}

/* ---------------------------------------------------------------- checks, sizes, flops */

static void test_check(void) {
    fg_conv2d_desc ok = {2, 6, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1, 1, 2};
    CHECK_OK(fg_conv2d_check(&ok));
    CHECK(fg_conv2d_out_h(&ok) == 8 && fg_conv2d_out_w(&ok) == 8);
    CHECK(fabs(fg_conv2d_flops(&ok) - 2.0 * 2 * 4 * 8 * 8 * 3 * 3 * 3) < 1e-6);

    fg_conv2d_desc bad = ok;
    bad.groups = 4; /* C = 6 not divisible by 4 */
    CHECK_STATUS(fg_conv2d_check(&bad), FG_ERR_SHAPE);
    CHECK(strstr(fg_last_error(), "C=6") && strstr(fg_last_error(), "groups=4"));
    if (!strstr(fg_last_error(), "C=6")) fprintf(stderr, "  message: %s\n", fg_last_error());
    bad = ok;
    bad.oc = 5; /* OC not divisible by 2 */
    CHECK_STATUS(fg_conv2d_check(&bad), FG_ERR_SHAPE);
    CHECK(strstr(fg_last_error(), "OC=5") && strstr(fg_last_error(), "groups=2"));
    bad = ok;
    bad.kh = bad.kw = 11; /* 11 > 8 + 2 */
    CHECK_STATUS(fg_conv2d_check(&bad), FG_ERR_SHAPE);
    CHECK(strstr(fg_last_error(), "kernel 11x11") && strstr(fg_last_error(), "padded input 10x10"));
    if (!strstr(fg_last_error(), "padded input")) fprintf(stderr, "  message: %s\n", fg_last_error());
    bad = ok;
    bad.dil_h = 5; /* dilated extent 11 > 10 */
    CHECK_STATUS(fg_conv2d_check(&bad), FG_ERR_SHAPE);
    CHECK(strstr(fg_last_error(), "dilated extent 11x3") != NULL);
    bad = ok;
    bad.stride_w = 0;
    CHECK_STATUS(fg_conv2d_check(&bad), FG_ERR_SHAPE);
    bad = ok;
    bad.pad_h = -1;
    CHECK_STATUS(fg_conv2d_check(&bad), FG_ERR_SHAPE);
    bad = ok;
    bad.n = 0;
    CHECK_STATUS(fg_conv2d_check(&bad), FG_ERR_SHAPE);
    CHECK_STATUS(fg_conv2d_check(NULL), FG_ERR_INVALID);
    /* forward and backward refuse a bad descriptor before touching memory */
    bad = ok;
    bad.groups = 4;
    float dummy[4] = {0};
    for (int a = 0; a < FG_CONV_ALGO_COUNT; a++) {
        CHECK_STATUS(fg_conv2d_forward(dummy, dummy, dummy, NULL, &bad, (fg_conv_algo)a, NULL, 0), FG_ERR_SHAPE);
        CHECK_STATUS(fg_conv2d_backward(dummy, dummy, NULL, dummy, dummy, dummy, &bad, (fg_conv_algo)a, NULL, 0),
                     FG_ERR_SHAPE);
    }
    CHECK(fg_conv2d_workspace_bytes(&bad, FG_CONV_GEMM) == 0);
    CHECK_STATUS(fg_conv2d_forward(dummy, dummy, dummy, NULL, &ok, FG_CONV_ALGO_COUNT, NULL, 0), FG_ERR_INVALID);

    /* output sizes follow PyTorch's floor rule */
    fg_conv2d_desc a = {1, 3, 227, 227, 96, 11, 11, 4, 4, 0, 0, 1, 1, 1};
    CHECK(fg_conv2d_out_h(&a) == 55 && fg_conv2d_out_w(&a) == 55);
    fg_conv2d_desc r = {1, 1, 10, 9, 1, 3, 2, 2, 3, 1, 0, 2, 3, 1};
    /* H: (10 + 2 - 2*2 - 1)/2 + 1 = 4; W: (9 - 3*1 - 1)/3 + 1 = 2 */
    CHECK(fg_conv2d_out_h(&r) == 4 && fg_conv2d_out_w(&r) == 2);

    CHECK(strcmp(fg_conv_algo_name(FG_CONV_IMPLICIT), "implicit") == 0);
    CHECK(strcmp(fg_conv_algo_name(FG_CONV_GEMM), "gemm") == 0);
    CHECK(strcmp(fg_conv_algo_name(FG_CONV_DNNL), "dnnl") == 0);
}

/* ---------------------------------------------------------------- dnnl cache */

/* More distinct shapes than the cache holds (64), then the first again; and a thread-count change
 * (a new cache key, possibly another workspace size). */
static void test_dnnl_cache(fg_rng *rng) {
    float x[2 * 3 * 12 * 12], w[4 * 3 * 3 * 3], y[2 * 4 * 12 * 12], y_ref[2 * 4 * 12 * 12];
    fg_fill_uniform(x, sizeof x / 4, -1, 1, rng);
    fg_fill_uniform(w, sizeof w / 4, -1, 1, rng);
    for (int rep = 0; rep < 2; rep++)
        for (int k = 0; k < 70; k++) {
            int hh = 3 + k % 10, ww = 3 + k / 10; /* 70 distinct (h, w) pairs */
            fg_conv2d_desc d = {2, 3, hh, ww, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1};
            if (rep == 1 && k % 7 != 0) continue;
            fg_conv2d_forward_naive(y_ref, x, w, NULL, &d);
            CHECK_OK(run_forward(y, x, w, NULL, &d, FG_CONV_DNNL));
            char what[64];
            snprintf(what, sizeof what, "dnnl cache shape %d pass %d", k, rep);
            fg_check_close(what, y, y_ref, out_numel(&d), RTOL, fg_atol_for(27));
        }
    int t0 = fg_threads_get();
    fg_threads_set(1);
    fg_conv2d_desc d = {2, 3, 12, 12, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1};
    fg_conv2d_forward_naive(y_ref, x, w, NULL, &d);
    CHECK_OK(run_forward(y, x, w, NULL, &d, FG_CONV_DNNL));
    fg_check_close("dnnl forward with 1 thread", y, y_ref, out_numel(&d), RTOL, fg_atol_for(27));
    fg_threads_set(t0);
    CHECK_OK(run_forward(y, x, w, NULL, &d, FG_CONV_DNNL));
    fg_check_close("dnnl forward with the thread count restored", y, y_ref, out_numel(&d), RTOL, fg_atol_for(27));
}

/* Two threads use the dnnl path at once, on a shape neither has seen, so they race to create the
 * same cache entry and its primitives. */
typedef struct race_arg {
    const fg_conv2d_desc *d;
    const float *x, *w, *b, *dy;
    float *y, *dx, *dw;
    fg_status st;
    char msg[256]; /* the worker's error message (messages are per thread) */
} race_arg;

static void *race_worker(void *p) {
    race_arg *a = p;
    a->st = FG_OK;
    for (int it = 0; it < 5 && a->st == FG_OK; it++) {
        a->st = run_forward(a->y, a->x, a->w, a->b, a->d, FG_CONV_DNNL);
        memset(a->dw, 0, w_numel(a->d) * 4);
        if (a->st == FG_OK) a->st = run_backward(a->dx, a->dw, NULL, a->dy, a->x, a->w, a->d, FG_CONV_DNNL);
    }
    snprintf(a->msg, sizeof a->msg, "%s", fg_last_error());
    return NULL;
}

static void test_dnnl_threads(fg_rng *rng) {
    const fg_conv2d_desc d = {2, 16, 11, 13, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1};
    const size_t ni = in_numel(&d), nw = w_numel(&d), no = out_numel(&d);
    float *x = malloc(ni * 4), *w = malloc(nw * 4), *b = malloc(16 * 4), *dy = malloc(no * 4);
    float *y_ref = malloc(no * 4), *dx_ref = malloc(ni * 4), *dw_ref = calloc(nw, 4);
    fg_fill_uniform(x, ni, -1, 1, rng);
    fg_fill_uniform(w, nw, -1, 1, rng);
    fg_fill_uniform(b, 16, -1, 1, rng);
    fg_fill_uniform(dy, no, -1, 1, rng);
    fg_conv2d_forward_naive(y_ref, x, w, b, &d);
    fg_conv2d_backward_naive(dx_ref, dw_ref, NULL, dy, x, w, &d);
    race_arg a[2];
    pthread_t th[2];
    for (int t = 0; t < 2; t++) {
        a[t] = (race_arg){&d, x, w, b, dy, malloc(no * 4), malloc(ni * 4), malloc(nw * 4), FG_OK, ""};
        FG_ASSERT(pthread_create(&th[t], NULL, race_worker, &a[t]) == 0);
    }
    for (int t = 0; t < 2; t++) {
        pthread_join(th[t], NULL);
        CHECK(a[t].st == FG_OK);
        if (a[t].st != FG_OK) fprintf(stderr, "  dnnl thread %d: %s\n", t, a[t].msg);
        fg_check_close("dnnl concurrent forward", a[t].y, y_ref, no, RTOL, fg_atol_for(144));
        fg_check_close("dnnl concurrent dinp", a[t].dx, dx_ref, ni, RTOL, fg_atol_for(144));
        fg_check_close("dnnl concurrent dweight", a[t].dw, dw_ref, nw, RTOL, fg_atol_for(2 * 11 * 13));
        free(a[t].y), free(a[t].dx), free(a[t].dw);
    }
    free(x), free(w), free(b), free(dy), free(y_ref), free(dx_ref), free(dw_ref);
}

/* ---------------------------------------------------------------- both ISA paths of IMPLICIT */

/* Bits of a and b differ at how many of n floats; the worst absolute difference into *worst. */
static size_t count_diff_bits(const float *a, const float *b, size_t n, double *worst) {
    size_t k = 0;
    *worst = 0.0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) {
            k++;
            double e = fabs((double)a[i] - (double)b[i]);
            if (e > *worst) *worst = e;
        }
    return k;
}

/* The AVX-512 and AVX2 builds of the direct kernels (src/ops/conv2d_direct.c) on every shape:
 * each is held to the naive twin by test_against_naive (the AVX2 one here, under
 * fg_cpu_isa_set_max); here, where both run on this machine, they are compared with each other.
 * Both do the same fused multiply-adds in the same order in their tiled kernels, so forward and
 * backward weights agree bit for bit; backward data with stride > 1 uses a dedicated AVX-512
 * kernel against the generic loops on AVX2 (another summation order), so it is only held to the
 * naive twin. */
static void test_isa_paths(fg_rng *rng) {
    CHECK_OK(fg_cpu_isa_set_max(FG_ISA_AVX2));
    CHECK(fg_cpu_isa_active() == FG_ISA_AVX2);
    for (size_t s = 0; s < NSHAPES; s++) test_against_naive(FG_CONV_IMPLICIT, &SHAPES[s], rng);
    CHECK_OK(fg_cpu_isa_set_max(FG_ISA_AVX512));
    CHECK(fg_cpu_isa_active() == fg_cpu_isa_detected());
    CHECK(fg_cpu_isa_set_max((fg_cpu_isa)FG_ISA_COUNT) == FG_ERR_INVALID);
    if (fg_cpu_isa_detected() != FG_ISA_AVX512) {
        printf("  test_isa_paths: this CPU has no AVX-512: only the AVX2 path ran\n");
        return;
    }
    size_t fwd_diff = 0, dw_diff = 0, dx_diff = 0, dx_strided_diff = 0;
    double fwd_worst = 0, dw_worst = 0, dx_worst = 0, w;
    for (size_t si = 0; si < NSHAPES; si++) {
        const fg_conv2d_desc *d = &SHAPES[si].d;
        const size_t ni = in_numel(d), nw = w_numel(d), no = out_numel(d);
        float *x = malloc(ni * sizeof(float)), *wt = malloc(nw * sizeof(float)), *dy = malloc(no * sizeof(float));
        float *b = malloc((size_t)d->oc * sizeof(float));
        float *y[2], *dx[2], *dw[2];
        fg_fill_uniform(x, ni, -1, 1, rng);
        fg_fill_uniform(wt, nw, -1, 1, rng);
        fg_fill_uniform(dy, no, -1, 1, rng);
        fg_fill_uniform(b, (size_t)d->oc, -1, 1, rng);
        for (int p = 0; p < 2; p++) {
            CHECK_OK(fg_cpu_isa_set_max(p == 0 ? FG_ISA_AVX512 : FG_ISA_AVX2));
            y[p] = malloc(no * sizeof(float));
            dx[p] = malloc(ni * sizeof(float));
            dw[p] = calloc(nw, sizeof(float));
            CHECK_OK(fg_conv2d_forward(y[p], x, wt, SHAPES[si].has_bias ? b : NULL, d, FG_CONV_IMPLICIT, NULL, 0));
            CHECK_OK(fg_conv2d_backward(dx[p], dw[p], NULL, dy, x, wt, d, FG_CONV_IMPLICIT, NULL, 0));
        }
        fwd_diff += count_diff_bits(y[0], y[1], no, &w);
        if (w > fwd_worst) fwd_worst = w;
        dw_diff += count_diff_bits(dw[0], dw[1], nw, &w);
        if (w > dw_worst) dw_worst = w;
        size_t k = count_diff_bits(dx[0], dx[1], ni, &w);
        if (d->stride_h == 1 && d->stride_w == 1) dx_diff += k; else dx_strided_diff += k;
        if (w > dx_worst) dx_worst = w;
        for (int p = 0; p < 2; p++) free(y[p]), free(dx[p]), free(dw[p]);
        free(x), free(wt), free(dy), free(b);
    }
    CHECK_OK(fg_cpu_isa_set_max(FG_ISA_AVX512));
    if (fwd_diff || dw_diff || dx_diff)
        fprintf(stderr, "  AVX-512 and AVX2 builds differ: forward %zu values (worst %.3g), dweight %zu (worst %.3g), "
                "stride-1 dinp %zu\n", fwd_diff, fwd_worst, dw_diff, dw_worst, dx_diff);
#if defined(__OPTIMIZE__)
    /* The AVX2 build fuses a*b + c by contraction, which GCC does only when optimizing: in an -O0
     * (Debug, sanitizer) build the paths round differently and are only held to the naive twin. */
    CHECK(fwd_diff == 0 && dw_diff == 0 && dx_diff == 0);
#endif
    printf("  test_isa_paths: AVX-512 vs AVX2 build: forward %zu, dweight %zu, dinp stride 1 %zu, dinp strided %zu "
           "values differ (worst %.3g, %.3g, %.3g)\n", fwd_diff, dw_diff, dx_diff, dx_strided_diff, fwd_worst,
           dw_worst, dx_worst);
}

/* Two geometries a review found wrong, now tested on every algorithm against the naive twin:
 *  - a tap whose every output position lies in the left padding (pad >= kernel, dilated): im2col
 *    wrote zeros past its row into the next row, another thread's (wrong outputs from 3 threads);
 *  - an input column no output reads (the output size's floor) holding NaN: the direct kernel's
 *    backward-weights multiplied it by the zero dout of the lanes past the row (NaN dweight). */
static void test_review_geometries(void) {
    const int saved = fg_threads_get();
    fg_conv2d_desc pad = {1, 4, 4096, 1, 2, 1, 3, 1, 1, 0, 2, 1, 2, 1};
    CHECK_OK(fg_conv2d_check(&pad));
    const int64_t OH = fg_conv2d_out_h(&pad), OW = fg_conv2d_out_w(&pad);
    const size_t ni = (size_t)(4 * 4096), nw = 2 * 4 * 3, no = (size_t)(2 * OH * OW);
    float *x = malloc(ni * sizeof(float)), w[24], *y = malloc(no * sizeof(float)), *yr = malloc(no * sizeof(float));
    for (size_t i = 0; i < ni; i++) x[i] = 1.0f + (float)(i % 7);
    for (size_t i = 0; i < nw; i++) w[i] = 1.0f;
    fg_conv2d_forward_naive(yr, x, w, NULL, &pad);
    char what[128];
    for (int nt = 1; nt <= 4; nt++) {
        fg_threads_set(nt);
        for (int a = 0; a < FG_CONV_ALGO_COUNT; a++) {
            const size_t wsb = fg_conv2d_workspace_bytes(&pad, (fg_conv_algo)a);
            void *ws = wsb ? malloc(wsb) : NULL;
            for (int rep = 0; rep < 5; rep++) {
                CHECK_OK(fg_conv2d_forward(y, x, w, NULL, &pad, (fg_conv_algo)a, ws, wsb));
                snprintf(what, sizeof what, "conv %s, pad 2 >= dilated 1x3 taps, %d threads, call %d",
                         fg_conv_algo_name((fg_conv_algo)a), nt, rep);
                fg_check_close(what, y, yr, no, 1e-5f, 1e-5f);
            }
            free(ws);
        }
    }
    fg_threads_set(saved);
    free(x), free(y), free(yr);

    fg_conv2d_desc fl = {1, 1, 1, 5, 1, 1, 2, 1, 2, 0, 0, 1, 1, 1}; /* OW 2: column 4 feeds no output */
    CHECK_OK(fg_conv2d_check(&fl));
    float xf[5] = {1, 2, 3, 4, NAN}, wf[2] = {0.5f, 0.25f}, dy[2] = {1, 1}, yf[2], dxr[5], dwr[2] = {0, 0};
    fg_conv2d_backward_naive(dxr, dwr, NULL, dy, xf, wf, &fl);
    CHECK(dwr[0] == 4.0f && dwr[1] == 6.0f); /* as PyTorch: the unread NaN changes nothing */
    for (int a = 0; a < FG_CONV_ALGO_COUNT; a++) {
        const size_t wsb = fg_conv2d_workspace_bytes(&fl, (fg_conv_algo)a);
        void *ws = wsb ? malloc(wsb) : NULL;
        float dx[5], dw[2] = {0, 0};
        CHECK_OK(fg_conv2d_forward(yf, xf, wf, NULL, &fl, (fg_conv_algo)a, ws, wsb));
        CHECK_OK(fg_conv2d_backward(dx, dw, NULL, dy, xf, wf, &fl, (fg_conv_algo)a, ws, wsb));
        snprintf(what, sizeof what, "conv %s dweight, a NaN in a column no output reads",
                 fg_conv_algo_name((fg_conv_algo)a));
        fg_check_close(what, dw, dwr, 2, 1e-6f, 1e-6f);
        free(ws);
    }
}

int main(void) {
    fg_rng rng;
    fg_rng_seed(&rng, 42);
    test_check();
    for (int a = 0; a < FG_CONV_ALGO_COUNT; a++)
        for (size_t s = 0; s < NSHAPES; s++) test_against_naive((fg_conv_algo)a, &SHAPES[s], &rng);
    test_isa_paths(&rng);
    test_review_geometries();
    /* gradient checks: naive twin and every fast algorithm, on a few varied shapes */
    const size_t gc_shapes[] = {0, 2, 3, 4, 9, 14, 15, 16, 21, 23};
    for (size_t i = 0; i < sizeof gc_shapes / sizeof gc_shapes[0]; i++)
        for (int a = -1; a < FG_CONV_ALGO_COUNT; a++) test_gradcheck(a, &SHAPES[gc_shapes[i]], &rng);
    test_workspace();
    test_fixtures();
    test_dnnl_cache(&rng);
    test_dnnl_threads(&rng);
    return fg_test_finish("test_ops_conv");
}
