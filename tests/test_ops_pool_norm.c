/* Tests for pooling, LRN and batch norm (src/ops/pooling.c, lrn.c, batchnorm.c):
 *  - fast forward kernels against their naive twins over many random shapes (odd sizes, stride
 *    != kernel, padding, ceil_mode, count_include_pad), with guard values after every output;
 *  - pooling backward against a test-local reference over the same shapes;
 *  - finite-difference gradient checks of every backward;
 *  - PyTorch references from tests/fixtures/pool_norm.bin (gen_pool_norm.py): outputs, input
 *    gradients, batch-norm parameter gradients, running stats, eval mode;
 *  - fg_pooling_check's errors and the output-size rule. */
#include <math.h>
#include <string.h>

#include "testutil.h"


static float *dup(const float *x, size_t n) {
    float *p = malloc(n * sizeof(float) + 1);
    FG_ASSERT(p);
    memcpy(p, x, n * sizeof(float));
    return p;
}

static char *desc_str(char *buf, size_t cap, const fg_pooling_desc *d) {
    snprintf(buf, cap, "in %lldx%lldx%lldx%lld k %lldx%lld s %lldx%lld p %lldx%lld ceil %d cip %d", (long long)d->n,
             (long long)d->c, (long long)d->h, (long long)d->w, (long long)d->kh, (long long)d->kw,
             (long long)d->stride_h, (long long)d->stride_w, (long long)d->pad_h, (long long)d->pad_w, d->ceil_mode,
             d->count_include_pad);
    return buf;
}

static size_t pool_in_numel(const fg_pooling_desc *d) { return (size_t)(d->n * d->c * d->h * d->w); }
static size_t pool_out_numel(const fg_pooling_desc *d) {
    return (size_t)(d->n * d->c * fg_pooling_out_h(d) * fg_pooling_out_w(d));
}

/* ---------------------------------------------------------------- test-local backward references */

/* Max pool backward as PyTorch's CPU kernel: argmax = first maximum in row-major window order
 * over the clipped window (a NaN wins), dout added there. */
static void ref_maxpool_backward(float *dinp, const float *dout, const float *inp, const fg_pooling_desc *d) {
    int64_t OH = fg_pooling_out_h(d), OW = fg_pooling_out_w(d);
    memset(dinp, 0, pool_in_numel(d) * sizeof(float));
    for (int64_t p = 0; p < d->n * d->c; p++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t bi = -1;
                float m = -INFINITY;
                for (int64_t ih = oh * d->stride_h - d->pad_h; ih < oh * d->stride_h - d->pad_h + d->kh; ih++)
                    for (int64_t iw = ow * d->stride_w - d->pad_w; iw < ow * d->stride_w - d->pad_w + d->kw; iw++) {
                        if (ih < 0 || iw < 0 || ih >= d->h || iw >= d->w) continue;
                        float v = inp[p * d->h * d->w + ih * d->w + iw];
                        if (bi < 0) bi = ih * d->w + iw;
                        if (v > m || isnan(v)) {
                            m = v;
                            bi = ih * d->w + iw;
                        }
                    }
                FG_ASSERT(bi >= 0);
                dinp[p * d->h * d->w + bi] += dout[(p * OH + oh) * OW + ow];
            }
}

static void ref_avgpool_backward(float *dinp, const float *dout, const fg_pooling_desc *d) {
    int64_t OH = fg_pooling_out_h(d), OW = fg_pooling_out_w(d);
    memset(dinp, 0, pool_in_numel(d) * sizeof(float));
    for (int64_t p = 0; p < d->n * d->c; p++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t valid = 0, padded = 0;
                for (int64_t i = 0; i < d->kh; i++)
                    for (int64_t j = 0; j < d->kw; j++) {
                        int64_t ih = oh * d->stride_h - d->pad_h + i, iw = ow * d->stride_w - d->pad_w + j;
                        if (ih < d->h + d->pad_h && iw < d->w + d->pad_w) padded++;
                        if (ih >= 0 && iw >= 0 && ih < d->h && iw < d->w) valid++;
                    }
                int64_t div = d->count_include_pad ? padded : valid;
                for (int64_t i = 0; i < d->kh; i++)
                    for (int64_t j = 0; j < d->kw; j++) {
                        int64_t ih = oh * d->stride_h - d->pad_h + i, iw = ow * d->stride_w - d->pad_w + j;
                        if (ih >= 0 && iw >= 0 && ih < d->h && iw < d->w)
                            dinp[p * d->h * d->w + ih * d->w + iw] += dout[(p * OH + oh) * OW + ow] / (float)div;
                    }
            }
}

/* ---------------------------------------------------------------- fast vs naive, pooling */

/* Input values for pool_compare. */
typedef enum { IN_NORMAL, IN_TIES, IN_NEG_INF, IN_NAN, IN_MODE_COUNT } in_mode;

static float draw(in_mode mode, fg_rng *rng) {
    switch (mode) {
    case IN_TIES: return (float)fg_rng_below(rng, 3); /* windows hold equal maxima */
    case IN_NEG_INF: /* whole windows of -inf: max is -inf, gradient goes to the first element */
        return fg_rng_uniform(rng) < 0.8f ? -INFINITY : (float)fg_rng_below(rng, 3);
    case IN_NAN: return fg_rng_uniform(rng) < 0.05f ? NAN : fg_rng_normal(rng);
    default: return fg_rng_normal(rng);
    }
}

/* Runs every pooling kernel on one valid descriptor and compares with the naive twins and the
 * backward references. */
static void pool_compare(const fg_pooling_desc *d, in_mode mode, fg_rng *rng) {
    char ds[160];
    desc_str(ds, sizeof ds, d);
    size_t ni = pool_in_numel(d), no = pool_out_numel(d);
    float *x = malloc(ni * sizeof(float)), *g = malloc(no * sizeof(float));
    float *o1 = fg_alloc_guarded(no), *o2 = fg_alloc_guarded(no), *d1 = fg_alloc_guarded(ni), *d2 = malloc(ni * sizeof(float));
    for (size_t i = 0; i < ni; i++) x[i] = draw(mode, rng);
    fg_fill_uniform(g, no, -1, 1, rng);
    char what[256];
    int before = fg_test_failures;

    fg_maxpool2d_forward(o1, x, d);
    fg_maxpool2d_forward_naive(o2, x, d);
    snprintf(what, sizeof what, "maxpool fwd fast vs naive (%s)", ds);
    fg_check_equal(what, o1, o2, no);
    fg_check_guard(what, o1, no);
    fg_check_guard(what, o2, no);

    for (size_t i = 0; i < ni; i++) d1[i] = NAN; /* backward must write every element */
    fg_maxpool2d_backward(d1, g, x, d);
    ref_maxpool_backward(d2, g, x, d);
    snprintf(what, sizeof what, "maxpool bwd vs reference (%s)", ds);
    fg_check_close(what, d1, d2, ni, 1e-6f, 1e-6f);
    fg_check_guard(what, d1, ni);

    /* the stored argmax (what the graph saves instead of the input): the same gradient, bit for bit */
    if (fg_maxpool2d_argmax_ok(d)) {
        uint8_t *arg = malloc(no + 1);
        memset(arg, 0xEE, no + 1);
        fg_maxpool2d_argmax(arg, x, d);
        CHECK(arg[no] == 0xEE); /* nothing written past the end */
        int bad = 0;
        for (size_t i = 0; i < no && !bad; i++) bad = arg[i] >= d->kh * d->kw;
        CHECK(!bad);
        for (size_t i = 0; i < ni; i++) d2[i] = NAN;
        fg_maxpool2d_backward_argmax(d2, g, arg, d);
        snprintf(what, sizeof what, "maxpool bwd from argmax vs from input (%s)", ds);
        fg_check_equal(what, d2, d1, ni);
        free(arg);
    }

    /* average pooling sees finite inputs (infinities and NaN carry no information there) */
    for (size_t i = 0; i < ni; i++)
        if (!isfinite(x[i])) x[i] = fg_rng_normal(rng);
    fg_avgpool2d_forward(o1, x, d);
    fg_avgpool2d_forward_naive(o2, x, d);
    snprintf(what, sizeof what, "avgpool fwd fast vs naive (%s)", ds);
    fg_check_close(what, o1, o2, no, 1e-5f, 1e-6f);
    fg_check_guard(what, o1, no);
    fg_check_guard(what, o2, no);

    for (size_t i = 0; i < ni; i++) d1[i] = NAN;
    fg_avgpool2d_backward(d1, g, d);
    ref_avgpool_backward(d2, g, d);
    snprintf(what, sizeof what, "avgpool bwd vs reference (%s)", ds);
    fg_check_close(what, d1, d2, ni, 1e-5f, 1e-6f);
    fg_check_guard(what, d1, ni);

    if (fg_test_failures != before) fprintf(stderr, "  (failing case: %s, input mode %d)\n", ds, (int)mode);
    free(x);
    free(g);
    free(o1);
    free(o2);
    free(d1);
    free(d2);
}

static void test_pool_sweep(void) {
    fg_rng rng;
    fg_rng_seed(&rng, 7);
    int valid = 0, rejected = 0;
    for (int t = 0; t < 1500; t++) {
        fg_pooling_desc d = {0};
        d.n = 1 + (int64_t)fg_rng_below(&rng, 2);
        d.c = 1 + (int64_t)fg_rng_below(&rng, 3);
        d.h = 1 + (int64_t)fg_rng_below(&rng, 13);
        d.w = 1 + (int64_t)fg_rng_below(&rng, 13);
        d.kh = 1 + (int64_t)fg_rng_below(&rng, 5);
        d.kw = 1 + (int64_t)fg_rng_below(&rng, 5);
        d.stride_h = 1 + (int64_t)fg_rng_below(&rng, 4);
        d.stride_w = 1 + (int64_t)fg_rng_below(&rng, 4);
        d.pad_h = (int64_t)fg_rng_below(&rng, (uint64_t)(d.kh / 2 + 1));
        d.pad_w = (int64_t)fg_rng_below(&rng, (uint64_t)(d.kw / 2 + 1));
        d.ceil_mode = (int)fg_rng_below(&rng, 2);
        d.count_include_pad = (int)fg_rng_below(&rng, 2);
        if (fg_pooling_check(&d) != FG_OK) {
            rejected++;
            continue;
        }
        valid++;
        pool_compare(&d, (in_mode)fg_rng_below(&rng, IN_MODE_COUNT), &rng);
    }
    /* the sweep must really exercise both outcomes */
    CHECK(valid > 800);
    CHECK(rejected > 50);

    /* rows wider than the kernels' stack buffer take the direct path */
    fg_pooling_desc wide = {1, 2, 4, 5000, 3, 3, 2, 2, 1, 1, 1, 1};
    CHECK_OK(fg_pooling_check(&wide));
    pool_compare(&wide, IN_NAN, &rng);
    /* padded row 2047 + 2 + 2 > 2048 floats: direct; 2044 + 2 + 2 = 2048: rows */
    fg_pooling_desc wide2 = {1, 1, 3, 2047, 2, 5, 1, 3, 0, 2, 1, 0};
    CHECK_OK(fg_pooling_check(&wide2));
    pool_compare(&wide2, IN_TIES, &rng);
    fg_pooling_desc wide3 = {1, 1, 3, 2044, 2, 5, 1, 1, 0, 2, 0, 1};
    CHECK_OK(fg_pooling_check(&wide3));
    pool_compare(&wide3, IN_NEG_INF, &rng);
}

/* Max pool lets NaN through (PyTorch: `val > maxval || isnan(val)`), and routes the gradient of a
 * window containing a NaN to the NaN. */
static void test_maxpool_nan(void) {
    fg_pooling_desc d = {1, 1, 4, 4, 2, 2, 2, 2, 0, 0, 0, 1};
    float x[16] = {1, 2, 3, 4, 5, NAN, 7, 8, 9, 10, 11, 12, 13, 14, -INFINITY, -INFINITY};
    float out[4], out2[4], g[4] = {1, 1, 1, 1}, dx[16];
    fg_maxpool2d_forward(out, x, &d);
    fg_maxpool2d_forward_naive(out2, x, &d);
    CHECK(isnan(out[0]));
    CHECK(out[1] == 8.0f && out[2] == 14.0f && out[3] == 12.0f);
    CHECK(isnan(out2[0]) && out2[1] == 8.0f && out2[2] == 14.0f && out2[3] == 12.0f);
    fg_maxpool2d_backward(dx, g, x, &d);
    CHECK(dx[5] == 1.0f && dx[0] == 0.0f && dx[1] == 0.0f && dx[4] == 0.0f);
    uint8_t arg[4];
    fg_maxpool2d_argmax(arg, x, &d); /* window offsets: NaN at (1,1), 8 at (1,1), 14 at (1,1), 12 at (0,1) */
    CHECK(arg[0] == 3 && arg[1] == 3 && arg[2] == 3 && arg[3] == 1);
    /* all -inf window: the gradient goes to its first element */
    float y[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY}, o1, dy[4];
    fg_pooling_desc d1 = {1, 1, 2, 2, 2, 2, 2, 2, 0, 0, 0, 1};
    fg_maxpool2d_forward(&o1, y, &d1);
    CHECK(o1 == -INFINITY);
    float one = 1.0f;
    fg_maxpool2d_backward(dy, &one, y, &d1);
    CHECK(dy[0] == 1.0f && dy[1] == 0.0f && dy[2] == 0.0f && dy[3] == 0.0f);
}

/* ---------------------------------------------------------------- fg_pooling_check */

static void test_pooling_check(void) {
    const fg_pooling_desc ok = {2, 3, 14, 14, 3, 3, 2, 2, 1, 1, 1, 1};
    CHECK_OK(fg_pooling_check(&ok));
    struct {
        const char *why;
        fg_pooling_desc d;
    } bad[] = {
        {"N = 0", {0, 3, 8, 8, 2, 2, 2, 2, 0, 0, 0, 1}},
        {"C < 0", {1, -1, 8, 8, 2, 2, 2, 2, 0, 0, 0, 1}},
        {"H = 0", {1, 3, 0, 8, 2, 2, 2, 2, 0, 0, 0, 1}},
        {"W = 0", {1, 3, 8, 0, 2, 2, 2, 2, 0, 0, 0, 1}},
        {"kh = 0", {1, 3, 8, 8, 0, 2, 2, 2, 0, 0, 0, 1}},
        {"kw < 0", {1, 3, 8, 8, 2, -2, 2, 2, 0, 0, 0, 1}},
        {"stride_h = 0", {1, 3, 8, 8, 2, 2, 0, 2, 0, 0, 0, 1}},
        {"stride_w < 0", {1, 3, 8, 8, 2, 2, 2, -1, 0, 0, 0, 1}},
        {"pad < 0", {1, 3, 8, 8, 2, 2, 2, 2, -1, 0, 0, 1}},
        {"pad_h > kh/2", {1, 3, 8, 8, 3, 3, 1, 1, 2, 1, 0, 1}},
        {"pad_w > kw/2", {1, 3, 8, 8, 2, 2, 1, 1, 1, 2, 0, 1}},
        {"pad 1 with kernel 1", {1, 3, 8, 8, 1, 1, 1, 1, 1, 0, 0, 1}},
        {"kernel > padded input (h)", {1, 3, 2, 8, 3, 3, 1, 1, 0, 0, 0, 1}},
        {"kernel > padded input (w)", {1, 3, 8, 2, 3, 7, 1, 1, 0, 2, 0, 1}},
        {"kernel > padded input, ceil_mode", {1, 3, 2, 2, 3, 3, 2, 2, 0, 0, 1, 1}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fg_clear_error();
        fg_status s = fg_pooling_check(&bad[i].d);
        if (s != FG_ERR_SHAPE) {
            fprintf(stderr, "  fg_pooling_check(%s) returned %s, expected %s\n", bad[i].why, fg_status_name(s),
                    fg_status_name(FG_ERR_SHAPE));
            fg_test_failures++;
        } else if (strstr(fg_last_error(), "pooling") == NULL) {
            fprintf(stderr, "  fg_pooling_check(%s): message '%s' does not name the op\n", bad[i].why,
                    fg_last_error());
            fg_test_failures++;
        }
    }
    CHECK_STATUS(fg_pooling_check(NULL), FG_ERR_INVALID);

    /* output sizes, as torch computes them */
    struct {
        int64_t in, k, s, p;
        int ceil;
        int64_t want;
    } sz[] = {
        {14, 3, 2, 0, 0, 6}, {14, 3, 2, 0, 1, 7}, {112, 3, 2, 0, 1, 56}, {56, 3, 2, 0, 1, 28},
        {55, 3, 2, 0, 0, 27}, {5, 2, 2, 1, 1, 3},  /* window starting in the right padding dropped */
        {5, 2, 2, 1, 0, 3},  {10, 3, 3, 0, 1, 4}, {7, 3, 1, 1, 0, 7}, {14, 5, 3, 0, 0, 4},
        {1, 1, 1, 0, 1, 1},  {6, 4, 3, 2, 1, 3},
    };
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
        fg_pooling_desc d = {1, 1, sz[i].in, 3, sz[i].k, 1, sz[i].s, 1, sz[i].p, 0, sz[i].ceil, 1};
        int64_t got = fg_pooling_out_h(&d);
        if (got != sz[i].want) {
            fprintf(stderr, "  pooling out size: in %lld k %lld s %lld p %lld ceil %d: got %lld want %lld\n",
                    (long long)sz[i].in, (long long)sz[i].k, (long long)sz[i].s, (long long)sz[i].p, sz[i].ceil,
                    (long long)got, (long long)sz[i].want);
            fg_test_failures++;
        }
    }
}

/* ---------------------------------------------------------------- LRN fast vs naive */

static void test_lrn_sweep(void) {
    fg_rng rng;
    fg_rng_seed(&rng, 11);
    const float betas[] = {0.75f, 0.5f, 1.0f, 0.6f};
    for (int t = 0; t < 200; t++) {
        fg_lrn_desc d;
        d.n = 1 + (int64_t)fg_rng_below(&rng, 2);
        d.c = 1 + (int64_t)fg_rng_below(&rng, 9);
        d.h = 1 + (int64_t)fg_rng_below(&rng, 7);
        d.w = 1 + (int64_t)fg_rng_below(&rng, 40); /* HW up to 280: chunks of 512 and remainders */
        if (t == 0) d.w = 700;                     /* more than one chunk per plane */
        d.size = 1 + (int64_t)fg_rng_below(&rng, 7);
        d.alpha = 0.01f + 2.0f * fg_rng_uniform(&rng);
        d.beta = betas[fg_rng_below(&rng, 4)];
        d.k = 0.5f + 2.0f * fg_rng_uniform(&rng);
        size_t n = (size_t)(d.n * d.c * d.h * d.w);
        float *x = malloc(n * sizeof(float)), *o1 = fg_alloc_guarded(n), *o2 = fg_alloc_guarded(n);
        for (size_t i = 0; i < n; i++) x[i] = 2.0f * fg_rng_normal(&rng);
        fg_lrn_forward(o1, x, &d);
        fg_lrn_forward_naive(o2, x, &d);
        char what[200];
        snprintf(what, sizeof what, "lrn fwd fast vs naive (N %lld C %lld HW %lldx%lld size %lld beta %g)",
                 (long long)d.n, (long long)d.c, (long long)d.h, (long long)d.w, (long long)d.size, d.beta);
        fg_check_close(what, o1, o2, n, 1e-5f, 1e-6f);
        fg_check_guard(what, o1, n);
        free(x);
        free(o1);
        free(o2);
    }
}

/* ---------------------------------------------------------------- finite differences */

typedef enum { FD_MAX, FD_AVG, FD_GAP, FD_LRN, FD_BN } fd_op;

typedef struct fd_ctx {
    fd_op op;
    const fg_pooling_desc *pd;
    const fg_lrn_desc *ld;
    int64_t N, C, HW;
    float *x, *gamma, *beta, *out;
    const float *g; /* upstream gradient: loss = sum(out * g) */
    size_t nout;
} fd_ctx;

static double fd_loss(void *user) {
    fd_ctx *c = user;
    switch (c->op) {
    case FD_MAX: fg_maxpool2d_forward(c->out, c->x, c->pd); break;
    case FD_AVG: fg_avgpool2d_forward(c->out, c->x, c->pd); break;
    case FD_GAP: fg_global_avgpool_forward(c->out, c->x, c->N, c->C, c->HW); break;
    case FD_LRN: fg_lrn_forward(c->out, c->x, c->ld); break;
    case FD_BN: {
        float mean[64], invstd[64];
        FG_ASSERT(c->C <= 64);
        fg_batchnorm_forward_train(c->out, mean, invstd, NULL, NULL, c->x, c->gamma, c->beta, c->N, c->C, c->HW,
                                   0.1f, 1e-5f);
        break;
    }
    }
    double s = 0;
    for (size_t i = 0; i < c->nout; i++) s += (double)c->out[i] * c->g[i];
    return s;
}

static void test_pool_gradcheck(void) {
    fg_rng rng;
    fg_rng_seed(&rng, 21);
    const fg_pooling_desc descs[] = {
        {2, 2, 7, 7, 3, 3, 2, 2, 1, 1, 1, 1}, /* overlapping windows, pad, ceil */
        {1, 2, 6, 9, 2, 3, 1, 2, 1, 1, 0, 0},
        {1, 3, 8, 8, 2, 2, 2, 2, 0, 0, 0, 1},
        {1, 2, 7, 8, 3, 3, 2, 2, 1, 1, 1, 0}, /* avg, exclude pad, ceil overhang */
    };
    for (size_t k = 0; k < sizeof descs / sizeof descs[0]; k++) {
        const fg_pooling_desc *d = &descs[k];
        CHECK_OK(fg_pooling_check(d));
        size_t ni = pool_in_numel(d), no = pool_out_numel(d);
        float *x = malloc(ni * sizeof(float)), *out = malloc(no * sizeof(float)), *g = malloc(no * sizeof(float));
        float *dx = malloc(ni * sizeof(float));
        /* distinct values 0.02 apart: no ties, and a step of 1e-3 never changes an argmax */
        int64_t *perm = malloc(ni * sizeof(int64_t));
        for (size_t i = 0; i < ni; i++) perm[i] = (int64_t)i;
        fg_rng_shuffle(&rng, perm, ni);
        for (size_t i = 0; i < ni; i++) x[i] = 0.02f * (float)perm[i] - 0.01f * (float)ni;
        fg_fill_uniform(g, no, -1, 1, &rng);
        fd_ctx c = {.op = FD_MAX, .pd = d, .x = x, .out = out, .g = g, .nout = no};
        char ds[160], what[200];
        desc_str(ds, sizeof ds, d);
        fg_maxpool2d_backward(dx, g, x, d);
        snprintf(what, sizeof what, "maxpool grad (%s)", ds);
        fg_check_grad(what, x, dx, ni, fd_loss, &c, ni, 1e-3f, 1e-2f, 1e-3f, &rng);
        c.op = FD_AVG;
        fg_fill_uniform(x, ni, -1, 1, &rng);
        fg_avgpool2d_backward(dx, g, d);
        snprintf(what, sizeof what, "avgpool grad (%s)", ds);
        fg_check_grad(what, x, dx, ni, fd_loss, &c, ni, 1e-2f, 1e-2f, 1e-3f, &rng);
        free(x);
        free(out);
        free(g);
        free(dx);
        free(perm);
    }

    /* global average pooling */
    int64_t N = 2, C = 3, HW = 10;
    size_t ni = (size_t)(N * C * HW), no = (size_t)(N * C);
    float *x = malloc(ni * sizeof(float)), *dx = fg_alloc_guarded(ni), out[6], g[6];
    fg_fill_uniform(x, ni, -1, 1, &rng);
    fg_fill_uniform(g, no, -1, 1, &rng);
    fd_ctx c = {.op = FD_GAP, .N = N, .C = C, .HW = HW, .x = x, .out = out, .g = g, .nout = no};
    fg_global_avgpool_backward(dx, g, N, C, HW);
    fg_check_guard("global avgpool bwd", dx, ni);
    fg_check_grad("global avgpool grad", x, dx, ni, fd_loss, &c, ni, 1e-2f, 1e-2f, 1e-3f, &rng);
    free(x);
    free(dx);
}

static void test_lrn_gradcheck(void) {
    fg_rng rng;
    fg_rng_seed(&rng, 31);
    const fg_lrn_desc descs[] = {
        {2, 6, 3, 3, 3, 1.0f, 0.75f, 1.0f},
        {1, 7, 2, 3, 4, 2.0f, 0.6f, 1.5f}, /* even size, general beta */
        {1, 5, 2, 2, 5, 1.5f, 1.0f, 0.5f},
        {1, 3, 3, 2, 7, 0.8f, 0.5f, 1.0f}, /* window wider than C */
        {1, 8, 2, 2, 5, 1e-4f * 100, 0.75f, 2.0f},
    };
    for (size_t k = 0; k < sizeof descs / sizeof descs[0]; k++) {
        const fg_lrn_desc *d = &descs[k];
        size_t n = (size_t)(d->n * d->c * d->h * d->w);
        float *x = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
        float *dx = fg_alloc_guarded(n);
        for (size_t i = 0; i < n; i++) x[i] = fg_rng_normal(&rng);
        x[0] = 0.0f; /* the first term must not divide by inp */
        fg_fill_uniform(g, n, -1, 1, &rng);
        fg_lrn_forward(out, x, d);
        fg_lrn_backward(dx, g, x, out, d);
        fg_check_guard("lrn bwd", dx, n);
        fd_ctx c = {.op = FD_LRN, .ld = d, .x = x, .out = out, .g = g, .nout = n};
        char what[160];
        snprintf(what, sizeof what, "lrn grad (C %lld size %lld alpha %g beta %g k %g)", (long long)d->c,
                 (long long)d->size, d->alpha, d->beta, d->k);
        fg_check_grad(what, x, dx, n, fd_loss, &c, n, 1e-2f, 1e-2f, 1e-3f, &rng);
        free(x);
        free(out);
        free(g);
        free(dx);
    }
}

static void test_bn_gradcheck(void) {
    fg_rng rng;
    fg_rng_seed(&rng, 41);
    const int64_t shapes[][3] = {{3, 4, 5}, {6, 3, 1}, {2, 2, 9}};
    for (size_t k = 0; k < 3; k++) {
        int64_t N = shapes[k][0], C = shapes[k][1], HW = shapes[k][2];
        size_t n = (size_t)(N * C * HW);
        float *x = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
        float *dx = fg_alloc_guarded(n), gamma[4], beta[4], dgamma[4], dbeta[4], mean[4], invstd[4];
        for (size_t i = 0; i < n; i++) x[i] = 1.5f * fg_rng_normal(&rng) + 0.5f;
        fg_fill_uniform(g, n, -1, 1, &rng);
        fg_fill_uniform(gamma, (size_t)C, 0.5f, 1.5f, &rng);
        fg_fill_uniform(beta, (size_t)C, -1, 1, &rng);
        fg_batchnorm_forward_train(out, mean, invstd, NULL, NULL, x, gamma, beta, N, C, HW, 0.1f, 1e-5f);
        memset(dgamma, 0, sizeof dgamma);
        memset(dbeta, 0, sizeof dbeta);
        fg_batchnorm_backward(dx, dgamma, dbeta, g, x, mean, invstd, gamma, N, C, HW);
        fg_check_guard("batchnorm bwd", dx, n);
        fd_ctx c = {.op = FD_BN, .N = N, .C = C, .HW = HW, .x = x, .gamma = gamma, .beta = beta, .out = out,
                    .g = g, .nout = n};
        char what[160];
        snprintf(what, sizeof what, "batchnorm dinp (N %lld C %lld HW %lld)", (long long)N, (long long)C,
                 (long long)HW);
        fg_check_grad(what, x, dx, n, fd_loss, &c, n, 1e-2f, 1e-2f, 2e-3f, &rng);
        snprintf(what, sizeof what, "batchnorm dgamma (N %lld C %lld HW %lld)", (long long)N, (long long)C,
                 (long long)HW);
        fg_check_grad(what, gamma, dgamma, (size_t)C, fd_loss, &c, (size_t)C, 1e-2f, 1e-2f, 1e-3f, &rng);
        snprintf(what, sizeof what, "batchnorm dbeta (N %lld C %lld HW %lld)", (long long)N, (long long)C,
                 (long long)HW);
        fg_check_grad(what, beta, dbeta, (size_t)C, fd_loss, &c, (size_t)C, 1e-2f, 1e-2f, 1e-3f, &rng);

        /* parameter gradients accumulate, dinp is written, NULL gradients are skipped */
        float dgamma2[4], dbeta2[4];
        memcpy(dgamma2, dgamma, sizeof dgamma);
        memcpy(dbeta2, dbeta, sizeof dbeta);
        float *dx2 = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) dx2[i] = NAN;
        fg_batchnorm_backward(dx2, dgamma2, dbeta2, g, x, mean, invstd, gamma, N, C, HW);
        for (int64_t i = 0; i < C; i++) {
            dgamma[i] *= 2;
            dbeta[i] *= 2;
        }
        fg_check_close("batchnorm dgamma accumulates", dgamma2, dgamma, (size_t)C, 1e-6f, 1e-6f);
        fg_check_close("batchnorm dbeta accumulates", dbeta2, dbeta, (size_t)C, 1e-6f, 1e-6f);
        fg_check_close("batchnorm dinp written", dx2, dx, n, 0, 0);
        fg_batchnorm_backward(dx2, NULL, NULL, g, x, mean, invstd, gamma, N, C, HW);
        fg_check_close("batchnorm dinp without param grads", dx2, dx, n, 0, 0);
        memcpy(dgamma2, dgamma, sizeof dgamma);
        fg_batchnorm_backward(NULL, dgamma2, NULL, g, x, mean, invstd, gamma, N, C, HW);
        for (int64_t i = 0; i < C; i++) dgamma[i] *= 1.5f; /* 2x + 1x = 3x of the single sum */
        fg_check_close("batchnorm dgamma without dinp", dgamma2, dgamma, (size_t)C, 1e-6f, 1e-6f);
        free(dx2);
        free(x);
        free(out);
        free(g);
        free(dx);
    }
}

/* ---------------------------------------------------------------- PyTorch fixtures */

#define RTOL 1e-4f
#define ATOL 1e-5f

static void test_pool_fixtures(fg_fixture *fx) {
    int cases = 0;
    for (int i = 0;; i++) {
        char name[64], what[256], ds[160];
        snprintf(name, sizeof name, "pool%d.params", i);
        if (!fg_fixture_has(fx, name)) break;
        const float *pp = fg_fixture_get(fx, name, 13);
        fg_pooling_desc d = {(int64_t)pp[1], (int64_t)pp[2], (int64_t)pp[3], (int64_t)pp[4], (int64_t)pp[5],
                             (int64_t)pp[6], (int64_t)pp[7], (int64_t)pp[8], (int64_t)pp[9], (int64_t)pp[10],
                             (int)pp[11], (int)pp[12]};
        int is_max = pp[0] != 0;
        desc_str(ds, sizeof ds, &d);
        CHECK_OK(fg_pooling_check(&d));
        size_t ni = pool_in_numel(&d), no = pool_out_numel(&d);
#define GET(field, n) (snprintf(name, sizeof name, "pool%d." field, i), fg_fixture_get(fx, name, (n)))
        const float *x = GET("x", ni), *out = GET("out", no), *g = GET("dout", no), *dx = GET("dx", ni);
#undef GET
        float *o = fg_alloc_guarded(no), *di = fg_alloc_guarded(ni);
        for (size_t k = 0; k < ni; k++) di[k] = NAN;
        const char *op = is_max ? "maxpool" : "avgpool";
        if (is_max) {
            fg_maxpool2d_forward(o, x, &d);
            snprintf(what, sizeof what, "pool%d %s fwd vs torch (%s)", i, op, ds);
            fg_check_close(what, o, out, no, RTOL, ATOL);
            fg_maxpool2d_forward_naive(o, x, &d);
            snprintf(what, sizeof what, "pool%d %s naive fwd vs torch (%s)", i, op, ds);
            fg_check_close(what, o, out, no, RTOL, ATOL);
            fg_maxpool2d_backward(di, g, x, &d);
        } else {
            fg_avgpool2d_forward(o, x, &d);
            snprintf(what, sizeof what, "pool%d %s fwd vs torch (%s)", i, op, ds);
            fg_check_close(what, o, out, no, RTOL, ATOL);
            fg_avgpool2d_forward_naive(o, x, &d);
            snprintf(what, sizeof what, "pool%d %s naive fwd vs torch (%s)", i, op, ds);
            fg_check_close(what, o, out, no, RTOL, ATOL);
            fg_avgpool2d_backward(di, g, &d);
        }
        snprintf(what, sizeof what, "pool%d %s dinp vs torch (%s)", i, op, ds);
        fg_check_close(what, di, dx, ni, RTOL, ATOL);
        fg_check_guard(what, o, no);
        fg_check_guard(what, di, ni);
        free(o);
        free(di);
        cases++;
    }
    CHECK(cases >= 20);

    const float *gp = fg_fixture_get(fx, "gap.params", 3);
    int64_t N = (int64_t)gp[0], C = (int64_t)gp[1], HW = (int64_t)gp[2];
    size_t ni = (size_t)(N * C * HW), no = (size_t)(N * C);
    float *o = fg_alloc_guarded(no), *di = fg_alloc_guarded(ni);
    fg_global_avgpool_forward(o, fg_fixture_get(fx, "gap.x", ni), N, C, HW);
    fg_check_close("global avgpool fwd vs torch", o, fg_fixture_get(fx, "gap.out", no), no, RTOL, ATOL);
    fg_global_avgpool_backward(di, fg_fixture_get(fx, "gap.dout", no), N, C, HW);
    fg_check_close("global avgpool dinp vs torch", di, fg_fixture_get(fx, "gap.dx", ni), ni, RTOL, ATOL);
    fg_check_guard("global avgpool fwd", o, no);
    fg_check_guard("global avgpool bwd", di, ni);
    free(o);
    free(di);
}

static void test_lrn_fixtures(fg_fixture *fx) {
    int cases = 0;
    for (int i = 0;; i++) {
        char name[64], what[200];
        snprintf(name, sizeof name, "lrn%d.params", i);
        if (!fg_fixture_has(fx, name)) break;
        const float *pp = fg_fixture_get(fx, name, 8);
        fg_lrn_desc d = {(int64_t)pp[0], (int64_t)pp[1], (int64_t)pp[2], (int64_t)pp[3], (int64_t)pp[4],
                         pp[5], pp[6], pp[7]};
        size_t n = (size_t)(d.n * d.c * d.h * d.w);
#define GET(field) (snprintf(name, sizeof name, "lrn%d." field, i), fg_fixture_get(fx, name, n))
        const float *x = GET("x"), *out = GET("out"), *g = GET("dout"), *dx = GET("dx");
#undef GET
        float *o = fg_alloc_guarded(n), *di = fg_alloc_guarded(n);
        for (size_t k = 0; k < n; k++) di[k] = NAN;
        fg_lrn_forward(o, x, &d);
        snprintf(what, sizeof what, "lrn%d fwd vs torch (size %lld alpha %g beta %g k %g)", i, (long long)d.size,
                 d.alpha, d.beta, d.k);
        fg_check_close(what, o, out, n, RTOL, ATOL);
        fg_check_guard(what, o, n);
        fg_lrn_forward_naive(o, x, &d);
        snprintf(what, sizeof what, "lrn%d naive fwd vs torch", i);
        fg_check_close(what, o, out, n, RTOL, ATOL);
        fg_lrn_backward(di, g, x, out, &d);
        snprintf(what, sizeof what, "lrn%d dinp vs torch (size %lld alpha %g beta %g k %g)", i, (long long)d.size,
                 d.alpha, d.beta, d.k);
        fg_check_close(what, di, dx, n, RTOL, ATOL);
        fg_check_guard(what, di, n);
        free(o);
        free(di);
        cases++;
    }
    CHECK(cases >= 6);
}

static void test_bn_fixtures(fg_fixture *fx) {
    int cases = 0;
    for (int i = 0;; i++) {
        char name[64], what[200];
        snprintf(name, sizeof name, "bn%d.params", i);
        if (!fg_fixture_has(fx, name)) break;
        const float *pp = fg_fixture_get(fx, name, 5);
        int64_t N = (int64_t)pp[0], C = (int64_t)pp[1], HW = (int64_t)pp[2];
        float momentum = pp[3], eps = pp[4];
        size_t n = (size_t)(N * C * HW), c = (size_t)C;
#define GET(field, k) (snprintf(name, sizeof name, "bn%d." field, i), fg_fixture_get(fx, name, (k)))
        const float *x = GET("x", n), *gamma = GET("gamma", c), *beta = GET("beta", c);
        float *rm = dup(GET("rm0", c), c), *rv = dup(GET("rv0", c), c);
        float *o = fg_alloc_guarded(n), *di = fg_alloc_guarded(n), *mean = fg_alloc_guarded(c), *invstd = fg_alloc_guarded(c);
        float *dgamma = calloc(c, sizeof(float)), *dbeta = calloc(c, sizeof(float));
        fg_batchnorm_forward_train(o, mean, invstd, rm, rv, x, gamma, beta, N, C, HW, momentum, eps);
        snprintf(what, sizeof what, "bn%d train fwd vs torch (N %lld C %lld HW %lld)", i, (long long)N,
                 (long long)C, (long long)HW);
        fg_check_close(what, o, GET("out", n), n, RTOL, ATOL);
        fg_check_guard(what, o, n);
        snprintf(what, sizeof what, "bn%d batch mean", i);
        fg_check_close(what, mean, GET("mean", c), c, RTOL, ATOL);
        fg_check_guard(what, mean, c);
        snprintf(what, sizeof what, "bn%d batch invstd", i);
        fg_check_close(what, invstd, GET("invstd", c), c, RTOL, ATOL);
        fg_check_guard(what, invstd, c);
        snprintf(what, sizeof what, "bn%d running_mean after one step vs torch", i);
        fg_check_close(what, rm, GET("rm1", c), c, RTOL, ATOL);
        snprintf(what, sizeof what, "bn%d running_var after one step vs torch", i);
        fg_check_close(what, rv, GET("rv1", c), c, RTOL, ATOL);

        for (size_t k = 0; k < n; k++) di[k] = NAN;
        fg_batchnorm_backward(di, dgamma, dbeta, GET("dout", n), x, mean, invstd, gamma, N, C, HW);
        snprintf(what, sizeof what, "bn%d dinp vs torch", i);
        fg_check_close(what, di, GET("dx", n), n, RTOL, ATOL);
        fg_check_guard(what, di, n);
        snprintf(what, sizeof what, "bn%d dgamma vs torch", i);
        fg_check_close(what, dgamma, GET("dgamma", c), c, RTOL, ATOL);
        snprintf(what, sizeof what, "bn%d dbeta vs torch", i);
        fg_check_close(what, dbeta, GET("dbeta", c), c, RTOL, ATOL);

        fg_batchnorm_forward_eval(o, x, gamma, beta, GET("rm0", c), GET("rv0", c), N, C, HW, eps);
        snprintf(what, sizeof what, "bn%d eval fwd vs torch", i);
        fg_check_close(what, o, GET("out_eval", n), n, RTOL, ATOL);
        fg_check_guard(what, o, n);
#undef GET
        free(rm);
        free(rv);
        free(o);
        free(di);
        free(mean);
        free(invstd);
        free(dgamma);
        free(dbeta);
        cases++;
    }
    CHECK(cases >= 3);

    /* running stats are optional (track_running_stats=False) */
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8], mean[2], invstd[2], gamma[2] = {1, 1}, beta[2] = {0, 0};
    fg_batchnorm_forward_train(out, mean, invstd, NULL, NULL, x, gamma, beta, 2, 2, 2, 0.1f, 1e-5f);
    /* channel 0 holds {1, 2, 5, 6}: mean 3.5, biased variance 4.25 */
    CHECK(fabsf(mean[0] - 3.5f) < 1e-6f && fabsf(mean[1] - 5.5f) < 1e-6f);
    CHECK(fabsf(invstd[0] - 1.0f / sqrtf(4.25f + 1e-5f)) < 1e-6f);
}

int main(void) {
    test_pooling_check();
    test_pool_sweep();
    test_maxpool_nan();
    test_lrn_sweep();
    test_pool_gradcheck();
    test_lrn_gradcheck();
    test_bn_gradcheck();
    fg_fixture *fx = fg_fixture_open("pool_norm.bin");
    test_pool_fixtures(fx);
    test_lrn_fixtures(fx);
    test_bn_fixtures(fx);
    fg_fixture_close(fx);
    return fg_test_finish("test_ops_pool_norm");
}
