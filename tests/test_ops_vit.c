/* Tests for the vision-transformer layout ops: bilinear resize (src/ops/resize.c), axis
 * permutation (src/ops/permute.c), repeat and slice (src/ops/tokens.c), as kernels and as graph
 * nodes:
 *  - resize against the naive twin: up (x2, x4, x8 as SegFormer's decoder), down, odd ratios, the
 *    identity, 1x1 sources and targets, many planes (parallel path); backward written over garbage;
 *    guard values after every output; 1 and 2 threads give the same bits; the identity is exact;
 *  - permute against the naive twin for every permutation of ranks 1..4 on odd sizes, the tiled and
 *    the row-copy paths, rank 6, and backward = forward of the inverse (exact: a copy);
 *  - PyTorch references from tests/fixtures/vit_ops.bin (gen_vit_ops.py): F.interpolate(bilinear,
 *    align_corners=False) and x.permute(...).contiguous(), forward and autograd input gradients;
 *  - as graph nodes: every gradient of a small graph (param -> resize -> permute -> linear -> xent)
 *    against central finite differences of the loss, with the permute's input also read by a
 *    second consumer (gradient accumulation); builder errors name the op and the shapes;
 *  - repeat (a class token or position embedding broadcast over the batch) and slice (the class
 *    token taken out) against their twins, and as graph nodes with parameters whose gradients the
 *    repeat writes, against finite differences;
 *  - GELU (exact, erf form; SegFormer's Mix-FFN and the ViT's MLP): the vectorised kernels against
 *    a double-precision reference (libm's erfc) and against their erff/expf twins, forward and
 *    backward, on a dense sweep of [-12, 12], random values and the special values (signed zeros,
 *    subnormals, infinities, NaN), 1 and 2 threads bit for bit, the AVX2 and AVX-512 forwards bit
 *    for bit, guard values. */
#include <math.h>
#include <string.h>

#include "testutil.h"

#define FX_RTOL 1e-5f
#define FX_ATOL 1e-5f

/* ---------------------------------------------------------------- resize against the naive twin */

static void test_resize_vs_naive(const fg_resize_desc *d, fg_rng *rng) {
    const size_t ni = (size_t)(d->n * d->c * d->h * d->w), no = (size_t)(d->n * d->c * d->oh * d->ow);
    char what[160];
#define RWHAT(s) (snprintf(what, sizeof what, "resize %s [%lld %lld %lld %lld -> %lld x %lld]", s, (long long)d->n, \
                           (long long)d->c, (long long)d->h, (long long)d->w, (long long)d->oh, (long long)d->ow), what)
    float *x = fg_alloc_guarded(ni), *dy = fg_alloc_guarded(no);
    fg_fill_uniform(x, ni, -2, 2, rng);
    fg_fill_uniform(dy, no, -1, 1, rng);
    float *y = fg_alloc_guarded(no), *y_ref = fg_alloc_guarded(no), *dx = fg_alloc_guarded(ni), *dx_ref = fg_alloc_guarded(ni);
    fg_fill_const(y, no, 777.0f);
    fg_fill_const(dx, ni, 777.0f);
    fg_resize_bilinear_forward_naive(y_ref, x, d);
    fg_resize_bilinear_forward(y, x, d);
    fg_check_close(RWHAT("forward"), y, y_ref, no, 1e-5f, 1e-6f);
    fg_check_guard(what, y, no);
    fg_resize_bilinear_backward_naive(dx_ref, dy, d);
    fg_resize_bilinear_backward(dx, dy, d);
    /* a source pixel gathers up to (2 * OH / H + 2) * (2 * OW / W + 2) shares */
    const double fan = (2.0 * (double)d->oh / (double)d->h + 2) * (2.0 * (double)d->ow / (double)d->w + 2);
    fg_check_close(RWHAT("backward"), dx, dx_ref, ni, 1e-5f, fg_atol_for(fan));
    fg_check_guard(what, dx, ni);
    if (d->h == d->oh && d->w == d->ow) {
        fg_check_equal(RWHAT("identity forward"), y, x, ni);
        fg_check_equal(RWHAT("identity backward"), dx, dy, ni);
    }
    /* 1 and 2 threads: the same bits */
    float *y1 = fg_alloc_guarded(no), *dx1 = fg_alloc_guarded(ni);
    fg_threads_set(1);
    fg_resize_bilinear_forward(y1, x, d);
    fg_resize_bilinear_backward(dx1, dy, d);
    fg_threads_set(2);
    fg_check_equal(RWHAT("forward 1 vs 2 threads"), y1, y, no);
    fg_check_equal(RWHAT("backward 1 vs 2 threads"), dx1, dx, ni);
    /* the naive twin itself: sum(dx) = sum over outputs of dy times the sum of its four weights (1) */
    double sdx = 0, sdy = 0;
    for (size_t i = 0; i < ni; i++) sdx += dx_ref[i];
    for (size_t i = 0; i < no; i++) sdy += dy[i];
    if (fabs(sdx - sdy) > 1e-3 * (1 + fabs(sdy))) {
        fprintf(stderr, "  %s: sum(dinp) %.9g != sum(dout) %.9g\n", RWHAT("naive backward mass"), sdx, sdy);
        fg_test_failures++;
    }
#undef RWHAT
    free(x), free(dy), free(y), free(y_ref), free(dx), free(dx_ref), free(y1), free(dx1);
}

static void test_resize_errors(void) {
    fg_resize_desc bad = {1, 1, 0, 4, 8, 8};
    CHECK_STATUS(fg_resize_check(&bad), FG_ERR_SHAPE);
    CHECK(strstr(fg_last_error(), "resize") != NULL);
    bad = (fg_resize_desc){1, 1, 4, 4, 8, 0};
    CHECK_STATUS(fg_resize_check(&bad), FG_ERR_SHAPE);
    CHECK_STATUS(fg_resize_check(NULL), FG_ERR_INVALID);
    fg_resize_desc d = {2, 3, 8, 8, 32, 16};
    CHECK(fg_resize_flops(&d) == 9.0 * 2 * 3 * 32 * 16);
}

/* ---------------------------------------------------------------- permute against the naive twin */

/* Calls fn on every permutation of 0..n-1 (Heap's algorithm, iterative). */
static void each_perm(int n, void (*fn)(int n, const int *perm, void *u), void *u) {
    int a[FG_MAX_DIMS], c[FG_MAX_DIMS] = {0};
    for (int i = 0; i < n; i++) a[i] = i;
    fn(n, a, u);
    for (int i = 1; i < n;) {
        if (c[i] < i) {
            int j = i % 2 ? c[i] : 0, t = a[j];
            a[j] = a[i], a[i] = t;
            fn(n, a, u);
            c[i]++, i = 1;
        } else {
            c[i++] = 0;
        }
    }
}

typedef struct perm_case {
    const int64_t *shape;
    fg_rng *rng;
    int count;
} perm_case;

static void check_perm(int n, const int *perm, void *u) {
    perm_case *pc = u;
    pc->count++;
    size_t total = 1;
    for (int k = 0; k < n; k++) total *= (size_t)pc->shape[k];
    float *x = fg_alloc_guarded(total), *y = fg_alloc_guarded(total), *y_ref = fg_alloc_guarded(total);
    float *dx = fg_alloc_guarded(total);
    fg_fill_uniform(x, total, -1, 1, pc->rng);
    fg_fill_const(y, total, 777.0f);
    fg_permute_forward_naive(y_ref, x, n, pc->shape, perm);
    fg_permute_forward(y, x, n, pc->shape, perm);
    char what[160], sh[96];
    int len = snprintf(what, sizeof what, "permute %s perm", fg_shape_str(sh, sizeof sh, n, pc->shape));
    for (int k = 0; k < n && len > 0 && (size_t)len < sizeof what; k++)
        len += snprintf(what + len, sizeof what - (size_t)len, " %d", perm[k]);
    fg_check_equal(what, y, y_ref, total);
    fg_check_guard(what, y, total);
    fg_permute_backward(dx, y, n, pc->shape, perm); /* the inverse brings x back exactly */
    fg_check_equal(what, dx, x, total);
    fg_check_guard(what, dx, total);
    free(x), free(y), free(y_ref), free(dx);
}

static void test_permute_vs_naive(fg_rng *rng) {
    static const int64_t shapes[][FG_MAX_DIMS] = {{7}, {5, 3}, {3, 4, 5}, {2, 3, 5, 7}, {1, 37, 70}, {2, 65, 33}};
    static const int ranks[] = {1, 2, 3, 4, 3, 3};
    for (size_t s = 0; s < sizeof ranks / sizeof ranks[0]; s++) {
        perm_case pc = {shapes[s], rng, 0};
        each_perm(ranks[s], check_perm, &pc);
    }
    /* rank 6, two permutations; a big heads split (parallel row-copy path) and a big transpose (tiles) */
    const int64_t s6[6] = {2, 1, 3, 2, 4, 3}, heads[4] = {2, 256, 5, 32}, img[3] = {2, 160, 256};
    const int p6a[6] = {5, 4, 3, 2, 1, 0}, p6b[6] = {0, 2, 1, 4, 3, 5}, ph[4] = {0, 2, 1, 3}, pt[3] = {0, 2, 1};
    perm_case pc6 = {s6, rng, 0}, pch = {heads, rng, 0}, pci = {img, rng, 0};
    check_perm(6, p6a, &pc6);
    check_perm(6, p6b, &pc6);
    check_perm(4, ph, &pch);
    check_perm(3, pt, &pci);
    const int64_t s2[2] = {3, 4};
    const int bad[2] = {0, 0}, bad2[2] = {0, 2};
    CHECK_STATUS(fg_permute_check(2, s2, bad), FG_ERR_INVALID);
    CHECK_STATUS(fg_permute_check(2, s2, bad2), FG_ERR_INVALID);
    CHECK_STATUS(fg_permute_check(0, s2, bad), FG_ERR_SHAPE);
}

/* ---------------------------------------------------------------- PyTorch fixtures */

static void test_fixtures(void) {
    fg_fixture *f = fg_fixture_open("vit_ops.bin");
    char nm[64];
    int cases = 0;
    for (int i = 0;; i++) {
        snprintf(nm, sizeof nm, "rs%d.params", i);
        if (!fg_fixture_has(f, nm)) break;
        const float *pr = fg_fixture_get(f, nm, 6);
        const fg_resize_desc d = {(int64_t)pr[0], (int64_t)pr[1], (int64_t)pr[2], (int64_t)pr[3], (int64_t)pr[4], (int64_t)pr[5]};
        const size_t ni = (size_t)(d.n * d.c * d.h * d.w), no = (size_t)(d.n * d.c * d.oh * d.ow);
#define G(s, n) (snprintf(nm, sizeof nm, "rs%d." s, i), fg_fixture_get(f, nm, n))
        const float *x = G("x", ni), *out = G("out", no), *dout = G("dout", no), *dx_ref = G("dx", ni);
#undef G
        float *y = fg_alloc_guarded(no), *dx = fg_alloc_guarded(ni);
        fg_resize_bilinear_forward(y, x, &d);
        fg_resize_bilinear_backward(dx, dout, &d);
        char what[96];
        snprintf(what, sizeof what, "fixture rs%d forward (torch F.interpolate bilinear)", i);
        fg_check_close(what, y, out, no, FX_RTOL, FX_ATOL);
        snprintf(what, sizeof what, "fixture rs%d backward dx (torch autograd)", i);
        fg_check_close(what, dx, dx_ref, ni, FX_RTOL, FX_ATOL);
        free(y), free(dx);
        cases++;
    }
    for (int i = 0;; i++) {
        snprintf(nm, sizeof nm, "pm%d.ndim", i);
        if (!fg_fixture_has(f, nm)) break;
        const int nd = (int)fg_fixture_get(f, nm, 1)[0];
        snprintf(nm, sizeof nm, "pm%d.params", i);
        const float *pr = fg_fixture_get(f, nm, (size_t)(2 * nd)); /* shape, then perm */
        int64_t shape[FG_MAX_DIMS];
        int perm[FG_MAX_DIMS];
        size_t total = 1;
        for (int k = 0; k < nd; k++) shape[k] = (int64_t)pr[k], perm[k] = (int)pr[nd + k], total *= (size_t)shape[k];
#define G(s) (snprintf(nm, sizeof nm, "pm%d." s, i), fg_fixture_get(f, nm, total))
        const float *x = G("x"), *out = G("out"), *dout = G("dout"), *dx_ref = G("dx");
#undef G
        float *y = fg_alloc_guarded(total), *dx = fg_alloc_guarded(total);
        fg_permute_forward(y, x, nd, shape, perm);
        fg_permute_backward(dx, dout, nd, shape, perm);
        char what[96];
        snprintf(what, sizeof what, "fixture pm%d forward (torch permute)", i);
        fg_check_equal(what, y, out, total);
        snprintf(what, sizeof what, "fixture pm%d backward dx (torch autograd)", i);
        fg_check_equal(what, dx, dx_ref, total);
        free(y), free(dx);
        cases++;
    }
    if (cases != 14) {
        fprintf(stderr, "  fixture vit_ops.bin: %d cases, expected 14\n", cases);
        fg_test_failures++;
    }
    fg_fixture_close(f);
}

/* ---------------------------------------------------------------- as graph nodes */

typedef struct gnet {
    fg_graph *g;
    fg_pool *pool;
} gnet;

/* x (param, 2,3,3,4) -> resize 5x6 -> reshape (2,3,30) -> permute (2,30,3) -> linear 4 -> (60, 4)
 * logits; with `shared`, the resize output is also added to a resized copy of itself through a
 * second permute path, so grad(resize out) is accumulated from two consumers. */
static void gbuild(gnet *n, int shared) {
    CHECK_OK(fg_pool_create(&n->pool, 0));
    CHECK_OK(fg_graph_create(&n->g, "vitops"));
    fg_graph *g = n->g;
    const int64_t xs[4] = {2, 3, 3, 4}, rs[3] = {2, 3, 30}, ls[2] = {60, 4}, nl = 60;
    const int pt[3] = {0, 2, 1};
    fg_id x = fg_nn_param(g, "x", 4, xs, FG_INIT_NORMAL, 1.0f);
    fg_id r = fg_nn_resize_bilinear(g, "up", x, 5, 6);
    fg_id t = fg_nn_permute(g, "tok", fg_nn_reshape(g, "flat", r, 3, rs), pt);
    if (shared) {
        const int p4[4] = {0, 1, 3, 2};
        fg_id r2 = fg_nn_permute(g, "swap", fg_nn_permute(g, "swap0", r, p4), p4); /* back to (2,3,5,6) */
        fg_id t2 = fg_nn_permute(g, "tok2", fg_nn_reshape(g, "flat2", r2, 3, rs), pt);
        t = fg_nn_add(g, "sum", t, t2);
    }
    fg_id logits = fg_nn_reshape(g, "rows", fg_layer_linear(g, "fc", t, 4, 1), 2, ls);
    fg_id labels = fg_nn_input(g, "labels", FG_I32, 1, &nl);
    fg_id loss = fg_nn_xent(g, "loss", logits, labels);
    CHECK_OK(fg_graph_status(g));
    if (fg_graph_status(g) != FG_OK) {
        fprintf(stderr, "  build error: %s\n", fg_graph_error(g));
        exit(1);
    }
    fg_mem_policy p;
    CHECK_OK(fg_policy_free_when_dead(&p));
    CHECK_OK(fg_graph_build(g, loss, n->pool, &p));
    fg_rng r0;
    fg_rng_seed(&r0, 5);
    fg_graph_init_params(g, &r0);
    int32_t lab[60];
    for (int i = 0; i < 60; i++) lab[i] = (int32_t)fg_rng_below(&r0, 4);
    CHECK_OK(fg_graph_set_input(g, labels, lab, sizeof lab));
}

static double gloss(void *u) {
    gnet *n = u;
    CHECK_OK(fg_graph_forward(n->g));
    return fg_graph_loss(n->g);
}

static void test_graph_gradients(int shared) {
    gnet n;
    gbuild(&n, shared);
    fg_graph_zero_grad(n.g);
    CHECK_OK(fg_graph_forward(n.g));
    CHECK_OK(fg_graph_backward(n.g));
    fg_rng r;
    fg_rng_seed(&r, 9);
    for (int i = 0; i < fg_graph_n_params(n.g); i++) {
        fg_id p = fg_graph_param(n.g, i);
        fg_tensor *t = fg_graph_tensor(n.g, p);
        const size_t numel = (size_t)fg_tensor_numel(t);
        float *grad = malloc(numel * sizeof(float));
        memcpy(grad, fg_graph_tensor(n.g, fg_graph_tinfo(n.g, p)->grad)->data, numel * sizeof(float));
        char what[96];
        snprintf(what, sizeof what, "graph (shared %d) d loss / d %s", shared, t->name);
        fg_check_grad(what, t->data, grad, numel, gloss, &n, numel, 1e-2f, 2e-2f, 2e-4f, &r);
        free(grad);
    }
    fg_graph_free(n.g);
    fg_pool_destroy(n.pool);
}

static void test_graph_errors(void) {
    fg_graph *g;
    CHECK_OK(fg_graph_create(&g, "bad"));
    const int64_t s3[3] = {2, 3, 4};
    fg_id x = fg_nn_input(g, "x", FG_F32, 3, s3);
    CHECK(fg_nn_resize_bilinear(g, "up", x, 8, 8) == FG_NONE);
    CHECK(strstr(fg_graph_error(g), "resize_bilinear 'up'") && strstr(fg_graph_error(g), "[2, 3, 4]"));
    fg_graph_free(g);
    CHECK_OK(fg_graph_create(&g, "bad2"));
    x = fg_nn_input(g, "x", FG_F32, 3, s3);
    const int bad[3] = {0, 1, 1};
    CHECK(fg_nn_permute(g, "tok", x, bad) == FG_NONE);
    CHECK(strstr(fg_graph_error(g), "permute 'tok'") && strstr(fg_graph_error(g), "perm[2]"));
    fg_graph_free(g);
    CHECK(strcmp(fg_op_name(FG_OP_RESIZE), "resize_bilinear") == 0 && strcmp(fg_op_name(FG_OP_PERMUTE), "permute") == 0);
}

/* ---------------------------------------------------------------- repeat and slice */

static void test_repeat_slice(fg_rng *rng) {
    static const struct { size_t m; int64_t n; } R[] = {{1, 1}, {7, 3}, {16 * 17, 8}, {20000, 3}};
    for (size_t c = 0; c < sizeof R / sizeof R[0]; c++) {
        const size_t m = R[c].m, tot = m * (size_t)R[c].n;
        float *x = fg_alloc_guarded(m), *y = fg_alloc_guarded(tot), *dy = fg_alloc_guarded(tot);
        float *dx = fg_alloc_guarded(m), *dx_ref = fg_alloc_guarded(m);
        fg_fill_uniform(x, m, -1, 1, rng);
        fg_fill_uniform(dy, tot, -1, 1, rng);
        fg_repeat_forward(y, x, m, R[c].n);
        char what[96];
        snprintf(what, sizeof what, "repeat forward [m %zu n %lld] copy %lld", m, (long long)R[c].n, (long long)R[c].n - 1);
        fg_check_equal(what, y + (size_t)(R[c].n - 1) * m, x, m);
        fg_check_guard(what, y, tot);
        fg_repeat_backward_naive(dx_ref, dy, m, R[c].n);
        fg_fill_const(dx, m, 777.0f);
        fg_repeat_backward(dx, dy, m, R[c].n);
        snprintf(what, sizeof what, "repeat backward [m %zu n %lld]", m, (long long)R[c].n);
        fg_check_close(what, dx, dx_ref, m, 1e-6f, fg_atol_for((double)R[c].n));
        fg_check_guard(what, dx, m);
        free(x), free(y), free(dy), free(dx), free(dx_ref);
    }
    static const int64_t S[][5] = {{2, 5, 3, 0, 1}, {2, 5, 3, 4, 1}, {3, 17, 16, 2, 9}, {1, 4, 1, 0, 4}, {64, 197, 64, 0, 1}};
    for (size_t c = 0; c < sizeof S / sizeof S[0]; c++) {
        const int64_t outer = S[c][0], dim = S[c][1], inner = S[c][2], start = S[c][3], len = S[c][4];
        const size_t ni = (size_t)(outer * dim * inner), no = (size_t)(outer * len * inner);
        float *x = fg_alloc_guarded(ni), *y = fg_alloc_guarded(no), *y_ref = fg_alloc_guarded(no), *dx = fg_alloc_guarded(ni);
        fg_fill_uniform(x, ni, -1, 1, rng);
        fg_slice_forward_naive(y_ref, x, outer, dim, inner, start, len);
        fg_slice_forward(y, x, outer, dim, inner, start, len);
        char what[96];
        snprintf(what, sizeof what, "slice [%lld %lld %lld] [%lld, +%lld)", (long long)outer, (long long)dim, (long long)inner,
                 (long long)start, (long long)len);
        fg_check_equal(what, y, y_ref, no);
        fg_check_guard(what, y, no);
        /* backward of the slice, sliced again, is dout; outside it is zero */
        fg_fill_const(dx, ni, 777.0f);
        fg_slice_backward(dx, y, outer, dim, inner, start, len);
        fg_check_guard(what, dx, ni);
        float *back = fg_alloc_guarded(no);
        fg_slice_forward(back, dx, outer, dim, inner, start, len);
        fg_check_equal(what, back, y, no);
        double outside = 0;
        for (size_t i = 0; i < ni; i++) outside += fabs(dx[i]);
        for (size_t i = 0; i < no; i++) outside -= fabs(y[i]);
        if (fabs(outside) > 1e-3) {
            fprintf(stderr, "  %s backward: %g of mass outside the slice\n", what, outside);
            fg_test_failures++;
        }
        free(x), free(y), free(y_ref), free(dx), free(back);
    }
}

/* A class token and a position embedding as a ViT uses them: tok (param 1,1,C) repeated over B,
 * concatenated before x (param B,N,C), plus pos (param 1,N+1,C) repeated; the class token sliced
 * out -> linear -> xent. Every parameter's gradient against finite differences (the repeat nodes
 * write a parameter's gradient: the executor's scratch path). */
static void test_token_graph(void) {
    gnet n;
    CHECK_OK(fg_pool_create(&n.pool, 0));
    CHECK_OK(fg_graph_create(&n.g, "tokens"));
    fg_graph *g = n.g;
    const int64_t B = 3, N = 4, C = 5, ts[3] = {1, 1, C}, xs[3] = {B, N, C}, ps[3] = {1, N + 1, C}, nl = B;
    fg_id tok = fg_nn_param(g, "cls_token", 3, ts, FG_INIT_NORMAL, 1.0f);
    fg_id x = fg_nn_param(g, "x", 3, xs, FG_INIT_NORMAL, 1.0f);
    fg_id pos = fg_nn_param(g, "pos", 3, ps, FG_INIT_NORMAL, 1.0f);
    fg_id parts[2] = {fg_nn_repeat(g, "cls:rep", tok, B), x};
    fg_id h = fg_nn_add(g, "embed", fg_nn_concat(g, "cat", parts, 2, 1), fg_nn_repeat(g, "pos:rep", pos, B));
    const int64_t s2[2] = {B, C};
    fg_id cls = fg_nn_reshape(g, "cls2d", fg_nn_slice(g, "cls", fg_nn_gelu(g, "act", h), 1, 0, 1), 2, s2);
    fg_id labels = fg_nn_input(g, "labels", FG_I32, 1, &nl);
    fg_id loss = fg_nn_xent(g, "loss", fg_layer_linear(g, "fc", cls, 3, 1), labels);
    CHECK_OK(fg_graph_status(g));
    if (fg_graph_status(g) != FG_OK) {
        fprintf(stderr, "  build error: %s\n", fg_graph_error(g));
        exit(1);
    }
    fg_mem_policy p;
    CHECK_OK(fg_policy_free_when_dead(&p));
    CHECK_OK(fg_graph_build(g, loss, n.pool, &p));
    fg_rng r;
    fg_rng_seed(&r, 11);
    fg_graph_init_params(g, &r);
    const int32_t lab[3] = {0, 2, 1};
    CHECK_OK(fg_graph_set_input(g, labels, lab, sizeof lab));
    fg_graph_zero_grad(g);
    CHECK_OK(fg_graph_forward(g));
    CHECK_OK(fg_graph_backward(g));
    for (int i = 0; i < fg_graph_n_params(g); i++) {
        fg_id pid = fg_graph_param(g, i);
        fg_tensor *t = fg_graph_tensor(g, pid);
        const size_t numel = (size_t)fg_tensor_numel(t);
        float *grad = malloc(numel * sizeof(float));
        memcpy(grad, fg_graph_tensor(g, fg_graph_tinfo(g, pid)->grad)->data, numel * sizeof(float));
        char what[96];
        snprintf(what, sizeof what, "token graph d loss / d %s", t->name);
        fg_check_grad(what, t->data, grad, numel, gloss, &n, numel, 1e-2f, 2e-2f, 2e-4f, &r);
        free(grad);
    }
    fg_graph_free(n.g);
    fg_pool_destroy(n.pool);
    CHECK_OK(fg_graph_create(&g, "bad3"));
    fg_id y = fg_nn_input(g, "y", FG_F32, 3, xs);
    CHECK(fg_nn_slice(g, "s", y, 1, 3, 2) == FG_NONE && strstr(fg_graph_error(g), "slice 's'"));
    fg_graph_free(g);
}

/* ---------------------------------------------------------------- GELU against double and the twins */

static double gelu_d(double x) { return 0.5 * x * erfc(-x / sqrt(2.0)); }
static double gelu_grad_d(double x) { return 0.5 * erfc(-x / sqrt(2.0)) + x * exp(-0.5 * x * x) / sqrt(2.0 * M_PI); }

static void test_gelu(fg_rng *rng) {
    const size_t nsweep = 24001, nrand = 4096, nspec = 10, n = nsweep + nrand + nspec;
    float *x = fg_alloc_guarded(n), *dy = fg_alloc_guarded(n);
    for (size_t i = 0; i < nsweep; i++) x[i] = -12.0f + 24.0f * (float)i / (float)(nsweep - 1);
    fg_fill_uniform(x + nsweep, nrand, -6.0f, 6.0f, rng);
    const float spec[10] = {0.0f, -0.0f, 1e-40f, -1e-40f, 1e-20f, -1e-20f, INFINITY, -INFINITY, NAN, -NAN};
    memcpy(x + nsweep + nrand, spec, sizeof spec);
    fg_fill_uniform(dy, n, -1.0f, 1.0f, rng);
    float *y = fg_alloc_guarded(n), *y1 = fg_alloc_guarded(n), *yn = fg_alloc_guarded(n);
    float *dx = fg_alloc_guarded(n), *dx1 = fg_alloc_guarded(n), *dxn = fg_alloc_guarded(n);
    fg_gelu_forward(y, x, n);
    fg_gelu_backward(dx, dy, x, n);
    fg_gelu_forward_naive(yn, x, n);
    fg_gelu_backward_naive(dxn, dy, x, n);
    fg_threads_set(1);
    fg_gelu_forward(y1, x, n);
    fg_gelu_backward(dx1, dy, x, n);
    fg_threads_set(2);
    fg_check_equal("gelu forward, 1 vs 2 threads", y1, y, n);
    /* the AVX2 loop against the AVX-512 one (run when this CPU has AVX-512): the same bits */
    const fg_cpu_isa isa = fg_cpu_isa_active();
    CHECK_OK(fg_cpu_isa_set_max(FG_ISA_AVX2));
    fg_gelu_forward(y1, x, n);
    CHECK_OK(fg_cpu_isa_set_max(isa));
    fg_check_equal("gelu forward, AVX2 vs the active ISA", y1, y, n);
    fg_check_equal("gelu backward, 1 vs 2 threads", dx1, dx, n);
    double worst_f = 0, worst_b = 0, worst_fn = 0;
    size_t bad = 0;
    for (size_t i = 0; i < n - nspec; i++) {
        const double xd = x[i], rf = gelu_d(xd), rb = dy[i] * gelu_grad_d(xd);
        /* forward: relative 5e-6 of the value (the fast CDF has no cancellation for x < 0), down
         * to x = -5 sqrt 2 = -7.07, below which the fast kernel gives -0 (|GELU| < 6e-12) */
        const double ef = fabs(y[i] - rf), tf = 5e-6 * fabs(rf) + 6e-12;
        const double eb = fabs(dx[i] - rb), tb = 1e-6 * fabs(dy[i]) * (1.0 + fabs(xd) * 0.4);
        /* the twin's 1 + erff(x / sqrt 2) loses up to an ulp of 1 times |x| / 2 */
        const double en = fabs((double)y[i] - (double)yn[i]), tn = 1.2e-7 * (fabs(xd) > 1.0 ? fabs(xd) : 1.0);
        if (xd > -7.0 && fabs(rf) > 1e-30 && ef / fabs(rf) > worst_f) worst_f = ef / fabs(rf);
        if (eb > worst_b) worst_b = eb;
        if (en > worst_fn) worst_fn = en;
        if (ef > tf || eb > tb || en > tn) {
            if (bad++ < 5)
                fprintf(stderr, "gelu at x = %.9g: forward %.9g (double %.9g, twin %.9g), backward %.9g (double %.9g)\n",
                        xd, y[i], rf, yn[i], dx[i], rb);
        }
    }
    CHECK(bad == 0);
    /* special values: zeros keep their sign, tiny x give x / 2, +inf stays, -inf and NaN give NaN as
     * x * Phi(x) and the twin do (-inf * 0) */
    const float *ys = y + nsweep + nrand;
    CHECK(ys[0] == 0.0f && !signbit(ys[0]) && ys[1] == 0.0f && signbit(ys[1]));
    CHECK(ys[2] == 0.5f * 1e-40f && ys[3] == -0.5f * 1e-40f && ys[4] == 0.5f * 1e-20f && ys[5] == -0.5f * 1e-20f);
    CHECK(isinf(ys[6]) && ys[6] > 0 && isnan(ys[7]) && isnan(ys[8]) && isnan(ys[9]));
    for (int k = 0; k < 10; k++) {
        const float *yk = yn + nsweep + nrand + k;
        CHECK((isnan(ys[k]) && isnan(*yk)) || ys[k] == *yk);
    }
    fprintf(stderr, "gelu: largest relative error of the forward %.2e (x > -7), absolute of the backward %.2e (against double); "
            "largest difference to the erff twin %.2e\n", worst_f, worst_b, worst_fn);
    fg_check_guard("gelu forward", y, n);
    fg_check_guard("gelu backward", dx, n);
    float *ps[] = {x, dy, y, y1, yn, dx, dx1, dxn};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) free(ps[i]);
}

int main(void) {
    fg_threads_set(2);
    fg_rng rng;
    fg_rng_seed(&rng, 20261204);
    static const fg_resize_desc RS[] = {
        {1, 2, 4, 4, 16, 16}, {2, 3, 8, 8, 16, 16}, {1, 1, 2, 2, 16, 16}, {1, 2, 7, 5, 3, 11}, {1, 1, 13, 9, 4, 4},
        {2, 2, 6, 6, 6, 6},   {1, 1, 1, 1, 3, 5},   {1, 2, 5, 3, 1, 1},   {4, 64, 16, 16, 64, 64}, /* parallel */
        {1, 1, 300, 2, 7, 600}, /* tables past the stack size */
    };
    for (size_t i = 0; i < sizeof RS / sizeof RS[0]; i++) test_resize_vs_naive(&RS[i], &rng);
    test_resize_errors();
    test_permute_vs_naive(&rng);
    test_fixtures();
    test_graph_gradients(0);
    test_graph_gradients(1);
    test_graph_errors();
    test_repeat_slice(&rng);
    test_token_graph();
    test_gelu(&rng);
    return fg_test_finish("test_ops_vit");
}
