/* Tests for the transformer ops: layer norm (src/ops/layernorm.c) and scaled dot-product attention
 * with its token-keeping forward (src/ops/attention.c):
 *  - layer norm against the naive twin on several shapes (C = 1, C not a multiple of 16, the
 *    parallel row and column-block paths), with and without weight/bias; mean and rstd; dinp written
 *    over garbage, dweight/dbias accumulated on prefilled buffers (one and two calls), NULL
 *    gradients in every combination; guard values after every output; 1 and 2 threads give the
 *    same bits;
 *  - attention against the naive twin: causal on/off, Tq != Tk both ways, T not a multiple of 16,
 *    D = 1, B*H = 1 (threaded sgemm path) and many items (parallel-over-items path); probs exactly
 *    0 where masked and rows summing to 1; backward with every NULL combination, with the full and
 *    a one-slot workspace, errors for a missing or short workspace;
 *  - the forward's vectorised exp over scores from -95 to 0 against the double-precision twin;
 *  - central finite differences of loss = sum(out * r) for layer norm (inp, weight, bias) and
 *    attention (q, k, v), causal on and off;
 *  - the token-major (B, T, H, D) kernels (forward with all heads and a prefix kept, backward, ToMe's
 *    proportional attention) against the head-major ones on the same tensors permuted;
 *  - token keeping against the naive twin run on k, v gathered in the test (unsorted and repeated
 *    indices, n_keep = 1, n_keep = Tk in order equals the plain forward); bad n_keep, indices and
 *    workspaces are rejected;
 *  - PyTorch references from tests/fixtures/attn.bin (gen_attn.py): F.layer_norm and hand-written
 *    softmax(q k^T * scale (+ causal mask)) v with autograd gradients, and attention over gathered
 *    tokens;
 *  - shape checks and FLOP counts. */
#include <math.h>
#include <string.h>

#include "testutil.h"

#define RTOL 1e-4f
/* Fixture tensors are float32 roundings of float64 references. */
#define FX_RTOL 1e-4f
#define FX_ATOL 1e-5f

/* ---------------------------------------------------------------- layer norm against the naive twin */

typedef struct ln_shape {
    int64_t rows, C;
} ln_shape;

static const ln_shape LN_SHAPES[] = {
    {7, 10}, {1, 1}, {5, 1}, {64, 33}, {300, 768}, /* rows * C large: parallel rows, 12+ column blocks */
    {3, 1000}, /* column blocks capped, last one partial */
    {0, 8},    /* no rows: nothing written, gradients unchanged */
};

static const char *const AFFINE_NAME[4] = {"", " weight", " bias", " weight and bias"};

/* affine: 0 none, 1 weight only, 2 bias only, 3 both (each has its own loop in the forward) */
static void test_layernorm_vs_naive(const ln_shape *sh, int affine, fg_rng *rng) {
    const int64_t rows = sh->rows, C = sh->C;
    const size_t n = (size_t)(rows * C), nc = (size_t)C, nr = (size_t)rows;
    const float eps = 1e-5f;
    char what[200];
#define LNWHAT(s) (snprintf(what, sizeof what, "layernorm %s [rows %lld C %lld%s]", s, (long long)rows, \
                            (long long)C, AFFINE_NAME[affine]), what)
    float *x = fg_alloc_guarded(n), *w = fg_alloc_guarded(nc), *b = fg_alloc_guarded(nc), *dy = fg_alloc_guarded(n);
    fg_fill_uniform(x, n, -2, 2, rng);
    for (int64_t r = 0; r < rows; r++) /* a row far from 0: the variance must not cancel */
        if (r % 3 == 1)
            for (int64_t c = 0; c < C; c++) x[r * C + c] += 50.0f;
    fg_fill_uniform(w, nc, 0.5f, 1.5f, rng);
    fg_fill_uniform(b, nc, -1, 1, rng);
    fg_fill_uniform(dy, n, -1, 1, rng);
    const float *wp = affine & 1 ? w : NULL, *bp = affine & 2 ? b : NULL;

    float *y = fg_alloc_guarded(n), *y_ref = fg_alloc_guarded(n);
    float *mu = fg_alloc_guarded(nr), *rs = fg_alloc_guarded(nr), *mu_ref = fg_alloc_guarded(nr), *rs_ref = fg_alloc_guarded(nr);
    fg_fill_const(y, n, 777.0f);
    fg_layernorm_forward_naive(y_ref, mu_ref, rs_ref, x, wp, bp, rows, C, eps);
    fg_layernorm_forward(y, mu, rs, x, wp, bp, rows, C, eps);
    fg_check_close(LNWHAT("forward out"), y, y_ref, n, RTOL, 2e-5f);
    fg_check_guard(what, y, n);
    fg_check_close(LNWHAT("forward mean"), mu, mu_ref, nr, 1e-5f, 1e-6f);
    fg_check_guard(what, mu, nr);
    fg_check_close(LNWHAT("forward rstd"), rs, rs_ref, nr, 1e-4f, 1e-6f);
    fg_check_guard(what, rs, nr);
    /* the naive twin itself, on the last row computed here: normalised values have mean 0, var 1 */
    if (rows > 0 && C > 1 && !affine) {
        double s = 0, s2 = 0;
        for (int64_t c = 0; c < C; c++) s += y_ref[(rows - 1) * C + c], s2 += (double)y_ref[(rows - 1) * C + c] * y_ref[(rows - 1) * C + c];
        CHECK(fabs(s / (double)C) < 1e-5);
        CHECK(fabs(s2 / (double)C - 1.0) < 1e-3);
    }
    /* mean and rstd may be NULL */
    fg_layernorm_forward(y, NULL, NULL, x, wp, bp, rows, C, eps);
    fg_check_close(LNWHAT("forward out (no mean, rstd)"), y, y_ref, n, RTOL, 2e-5f);

    /* backward from the fast forward's statistics */
    float *dx_ref = fg_alloc_guarded(n), *dw_ref = fg_alloc_guarded(nc), *db_ref = fg_alloc_guarded(nc);
    fg_fill_const(dw_ref, nc, 0.0f);
    fg_fill_const(db_ref, nc, 0.0f);
    fg_layernorm_backward_naive(dx_ref, dw_ref, db_ref, dy, x, wp, mu, rs, rows, C);
    float *dx = fg_alloc_guarded(n), *dw = fg_alloc_guarded(nc), *db = fg_alloc_guarded(nc);
    float *pw = fg_alloc_guarded(nc), *pb = fg_alloc_guarded(nc), *want_w = fg_alloc_guarded(nc), *want_b = fg_alloc_guarded(nc);
    fg_fill_uniform(pw, nc, -1, 1, rng);
    fg_fill_uniform(pb, nc, -1, 1, rng);
    fg_fill_const(dx, n, 777.0f);
    memcpy(dw, pw, nc * sizeof(float));
    memcpy(db, pb, nc * sizeof(float));
    /* dinp is a difference of O(1) terms scaled by rstd: tolerance relative to rstd */
    float rs_max = 1.0f;
    for (size_t r = 0; r < nr; r++) rs_max = rs[r] > rs_max ? rs[r] : rs_max;
    const float dx_atol = 1e-5f * rs_max;
    for (int call = 1; call <= 2; call++) {
        fg_layernorm_backward(dx, dw, db, dy, x, wp, mu, rs, rows, C);
        for (size_t i = 0; i < nc; i++) want_w[i] = pw[i] + (float)call * dw_ref[i];
        for (size_t i = 0; i < nc; i++) want_b[i] = pb[i] + (float)call * db_ref[i];
        fg_check_close(LNWHAT(call == 1 ? "backward dinp" : "backward dinp (2nd call)"), dx, dx_ref, n, RTOL, dx_atol);
        fg_check_guard(what, dx, n);
        fg_check_close(LNWHAT(call == 1 ? "backward dweight += (1 call)" : "backward dweight += (2 calls)"), dw,
                       want_w, nc, RTOL, (float)call * fg_atol_for((double)rows));
        fg_check_guard(what, dw, nc);
        fg_check_close(LNWHAT(call == 1 ? "backward dbias += (1 call)" : "backward dbias += (2 calls)"), db, want_b,
                       nc, RTOL, (float)call * fg_atol_for((double)rows));
        fg_check_guard(what, db, nc);
    }
    for (int mask = 0; mask < 8; mask++) {
        const int want_dx = mask & 1, want_dw = mask & 2, want_db = mask & 4;
        fg_fill_const(dx, n, -5.0f);
        fg_fill_const(dw, nc, 0.0f);
        fg_fill_const(db, nc, 0.0f);
        fg_layernorm_backward(want_dx ? dx : NULL, want_dw ? dw : NULL, want_db ? db : NULL, dy, x, wp, mu, rs, rows, C);
        snprintf(what, sizeof what, "layernorm backward mask %d [rows %lld C %lld]", mask, (long long)rows, (long long)C);
        if (want_dx) fg_check_close(what, dx, dx_ref, n, RTOL, dx_atol);
        else CHECK(fg_all_equal_to(dx, n, -5.0f));
        if (want_dw) fg_check_close(what, dw, dw_ref, nc, RTOL, fg_atol_for((double)rows));
        else CHECK(fg_all_equal_to(dw, nc, 0.0f));
        if (want_db) fg_check_close(what, db, db_ref, nc, RTOL, fg_atol_for((double)rows));
        else CHECK(fg_all_equal_to(db, nc, 0.0f));
    }

    /* 1 and 2 threads: the same bits (rows split, columns split, per-element order unchanged) */
    float *y1 = fg_alloc_guarded(n), *dx1 = fg_alloc_guarded(n), *dw1 = fg_alloc_guarded(nc), *db1 = fg_alloc_guarded(nc);
    fg_fill_const(dw, nc, 0.0f), fg_fill_const(db, nc, 0.0f), fg_fill_const(dw1, nc, 0.0f), fg_fill_const(db1, nc, 0.0f);
    fg_layernorm_forward(y, NULL, NULL, x, wp, bp, rows, C, eps);
    fg_layernorm_backward(dx, dw, db, dy, x, wp, mu, rs, rows, C);
    fg_threads_set(1);
    fg_layernorm_forward(y1, NULL, NULL, x, wp, bp, rows, C, eps);
    fg_layernorm_backward(dx1, dw1, db1, dy, x, wp, mu, rs, rows, C);
    fg_threads_set(2);
    fg_check_equal(LNWHAT("forward 1 vs 2 threads"), y1, y, n);
    fg_check_equal(LNWHAT("backward dinp 1 vs 2 threads"), dx1, dx, n);
    fg_check_equal(LNWHAT("backward dweight 1 vs 2 threads"), dw1, dw, nc);
    fg_check_equal(LNWHAT("backward dbias 1 vs 2 threads"), db1, db, nc);
#undef LNWHAT
    free(x), free(w), free(b), free(dy), free(y), free(y_ref), free(mu), free(rs), free(mu_ref), free(rs_ref);
    free(dx_ref), free(dw_ref), free(db_ref), free(dx), free(dw), free(db), free(pw), free(pb), free(want_w);
    free(want_b), free(y1), free(dx1), free(dw1), free(db1);
}

/* ---------------------------------------------------------------- attention against the naive twin */

typedef struct att_shape {
    int64_t B, H, Tq, Tk, D;
} att_shape;

static const att_shape ATT_SHAPES[] = {
    {2, 3, 5, 5, 4},    {1, 1, 17, 17, 1}, /* D = 1, B*H = 1 */
    {1, 1, 150, 150, 64},                  /* one large item: threaded sgemm, softmax rows split */
    {3, 4, 37, 37, 16},                    /* many items: parallel over (b, h) */
    {2, 2, 33, 7, 8},                      /* Tq > Tk (causal rows past Tk keep every key) */
    {1, 3, 5, 40, 8},                      /* Tk > Tq (SegFormer's reduced keys are the other way) */
    {1, 2, 197, 197, 64},                  /* ViT-B/16 sequence */
    {3, 1, 1, 1, 3},                       /* one token */
};

static void test_attention_vs_naive(const att_shape *sh, int causal, fg_rng *rng) {
    const int64_t B = sh->B, H = sh->H, Tq = sh->Tq, Tk = sh->Tk, D = sh->D;
    const size_t nq = (size_t)(B * H * Tq * D), nk = (size_t)(B * H * Tk * D), np = (size_t)(B * H * Tq * Tk);
    const float scale = 1.0f / sqrtf((float)D);
    char what[200];
#define AWHAT(s) (snprintf(what, sizeof what, "attention %s [B %lld H %lld Tq %lld Tk %lld D %lld%s]", s, \
                           (long long)B, (long long)H, (long long)Tq, (long long)Tk, (long long)D,        \
                           causal ? " causal" : ""), what)
    float *q = fg_alloc_guarded(nq), *k = fg_alloc_guarded(nk), *v = fg_alloc_guarded(nk), *dy = fg_alloc_guarded(nq);
    fg_fill_uniform(q, nq, -2, 2, rng);
    fg_fill_uniform(k, nk, -2, 2, rng);
    fg_fill_uniform(v, nk, -1, 1, rng);
    fg_fill_uniform(dy, nq, -1, 1, rng);

    float *y = fg_alloc_guarded(nq), *y_ref = fg_alloc_guarded(nq), *p = fg_alloc_guarded(np), *p_ref = fg_alloc_guarded(np);
    fg_fill_const(y, nq, 777.0f);
    fg_fill_const(p, np, 777.0f);
    fg_attention_forward_naive(y_ref, p_ref, q, k, v, B, H, Tq, Tk, D, scale, causal);
    CHECK_OK(fg_attention_forward(y, p, q, k, v, B, H, Tq, Tk, D, scale, causal));
    fg_check_close(AWHAT("forward probs"), p, p_ref, np, RTOL, 1e-6f);
    fg_check_guard(what, p, np);
    fg_check_close(AWHAT("forward out"), y, y_ref, nq, RTOL, fg_atol_for((double)Tk));
    fg_check_guard(what, y, nq);
    /* masked probs are exactly 0, every row sums to 1 */
    int64_t bad_mask = 0, bad_sum = 0;
    for (int64_t r = 0; r < B * H * Tq; r++) {
        const int64_t i = r % Tq;
        double s = 0;
        for (int64_t j = 0; j < Tk; j++) {
            s += p[r * Tk + j];
            if (causal && j > i && p[r * Tk + j] != 0.0f) bad_mask++;
        }
        if (fabs(s - 1.0) > 1e-5) bad_sum++;
    }
    if (bad_mask || bad_sum)
        fprintf(stderr, "  %s: %lld masked probs not 0, %lld rows not summing to 1\n", AWHAT("probs"),
                (long long)bad_mask, (long long)bad_sum);
    CHECK(bad_mask == 0 && bad_sum == 0);
    /* the naive twin itself: out[0, 0, 0, :] from probs, and probs[0, 0, 0, 0] from the scores */
    {
        double e[1] = {0};
        for (int64_t j = 0; j < Tk; j++) e[0] += (double)p_ref[j] * v[j * D];
        CHECK(fabs(y_ref[0] - e[0]) <= 1e-5);
        double mx = -INFINITY, sum = 0, s0 = 0;
        const int64_t n0 = causal ? 1 : Tk;
        for (int64_t j = 0; j < n0; j++) {
            double sc = scale * fg_dot_d(q, k + j * D, (size_t)D);
            if (j == 0) s0 = sc;
            mx = sc > mx ? sc : mx;
        }
        for (int64_t j = 0; j < n0; j++) sum += exp(scale * fg_dot_d(q, k + j * D, (size_t)D) - mx);
        CHECK(fabs(p_ref[0] - exp(s0 - mx) / sum) <= 1e-6);
    }

    /* backward: naive from its own probs, fast from the fast probs */
    float *dq_ref = fg_alloc_guarded(nq), *dk_ref = fg_alloc_guarded(nk), *dv_ref = fg_alloc_guarded(nk);
    fg_attention_backward_naive(dq_ref, dk_ref, dv_ref, dy, q, k, v, p_ref, B, H, Tq, Tk, D, scale);
    float *dq = fg_alloc_guarded(nq), *dk = fg_alloc_guarded(nk), *dv = fg_alloc_guarded(nk);
    const size_t ws_bytes = fg_attention_workspace_bytes(B, H, Tq, Tk, D);
    const size_t slot = (size_t)(Tq * Tk) * sizeof(float);
    CHECK(ws_bytes >= slot && ws_bytes % slot == 0 && ws_bytes <= (size_t)(B * H) * slot);
    float *ws = malloc(ws_bytes);
    const float tq_atol = fg_atol_for((double)(Tk + D)), tk_atol = fg_atol_for((double)(Tq + D));
    for (int one_slot = 0; one_slot <= 1; one_slot++) {
        for (int mask = 0; mask < 8; mask++) {
            const int want_dq = mask & 1, want_dk = mask & 2, want_dv = mask & 4;
            fg_fill_const(dq, nq, 777.0f), fg_fill_const(dk, nk, 777.0f), fg_fill_const(dv, nk, 777.0f);
            CHECK_OK(fg_attention_backward(want_dq ? dq : NULL, want_dk ? dk : NULL, want_dv ? dv : NULL, dy, q, k, v,
                                           p, B, H, Tq, Tk, D, scale, ws, one_slot ? slot : ws_bytes));
            snprintf(what, sizeof what, "attention backward mask %d%s [B %lld H %lld Tq %lld Tk %lld D %lld%s]", mask,
                     one_slot ? " one-slot ws" : "", (long long)B, (long long)H, (long long)Tq, (long long)Tk,
                     (long long)D, causal ? " causal" : "");
            if (want_dq) fg_check_close(what, dq, dq_ref, nq, RTOL, tq_atol);
            else CHECK(fg_all_equal_to(dq, nq, 777.0f));
            if (want_dk) fg_check_close(what, dk, dk_ref, nk, RTOL, tk_atol);
            else CHECK(fg_all_equal_to(dk, nk, 777.0f));
            if (want_dv) fg_check_close(what, dv, dv_ref, nk, RTOL, tk_atol);
            else CHECK(fg_all_equal_to(dv, nk, 777.0f));
            fg_check_guard(what, dq, nq);
            fg_check_guard(what, dk, nk);
            fg_check_guard(what, dv, nk);
        }
    }
    /* dv alone needs no workspace; dq or dk without enough of it is refused */
    CHECK_OK(fg_attention_backward(NULL, NULL, dv, dy, q, k, v, p, B, H, Tq, Tk, D, scale, NULL, 0));
    fg_check_close(AWHAT("backward dv without workspace"), dv, dv_ref, nk, RTOL, tk_atol);
    CHECK_STATUS(fg_attention_backward(dq, NULL, NULL, dy, q, k, v, p, B, H, Tq, Tk, D, scale, NULL, 0), FG_ERR_INVALID);
    CHECK_STATUS(fg_attention_backward(NULL, dk, NULL, dy, q, k, v, p, B, H, Tq, Tk, D, scale, ws, slot - 1),
                 FG_ERR_INVALID);

    /* 1 thread against 2 (different sgemm paths, so close rather than equal) */
    float *y1 = fg_alloc_guarded(nq), *p1 = fg_alloc_guarded(np);
    fg_threads_set(1);
    CHECK_OK(fg_attention_forward(y1, p1, q, k, v, B, H, Tq, Tk, D, scale, causal));
    CHECK_OK(fg_attention_backward(dq, dk, dv, dy, q, k, v, p1, B, H, Tq, Tk, D, scale, ws,
                                   fg_attention_workspace_bytes(B, H, Tq, Tk, D)));
    fg_threads_set(2);
    fg_check_close(AWHAT("forward out, 1 thread"), y1, y_ref, nq, RTOL, fg_atol_for((double)Tk));
    fg_check_close(AWHAT("forward probs, 1 thread"), p1, p_ref, np, RTOL, 1e-6f);
    fg_check_close(AWHAT("backward dq, 1 thread"), dq, dq_ref, nq, RTOL, tq_atol);
    fg_check_close(AWHAT("backward dk, 1 thread"), dk, dk_ref, nk, RTOL, tk_atol);
    fg_check_close(AWHAT("backward dv, 1 thread"), dv, dv_ref, nk, RTOL, tk_atol);
#undef AWHAT
    free(q), free(k), free(v), free(dy), free(y), free(y_ref), free(p), free(p_ref), free(dq_ref), free(dk_ref);
    free(dv_ref), free(dq), free(dk), free(dv), free(ws), free(y1), free(p1);
}

/* The forward's softmax uses its own vectorised exp: hold it to the double-precision naive twin
 * over scores from -95 to 0 below the row maximum (one query, D = 1, so score j = k[j]). Relative
 * error only: an exp off by a constant factor would cancel in the normalisation, so the row also
 * checks that the ratio of neighbouring probs is e^(difference of scores). */
static void test_softmax_exp_accuracy(fg_rng *rng) {
    enum { Tk = 4001 };
    static float k[Tk], v[Tk], p[Tk], p_ref[Tk];
    float q[1] = {1.0f}, y[1], y_ref[1];
    for (int j = 0; j < Tk; j++) k[j] = -95.0f * (float)j / (Tk - 1) + 0.01f * (fg_rng_uniform(rng) - 0.5f);
    k[0] = 0.0f;
    fg_fill_uniform(v, Tk, -1, 1, rng);
    CHECK_OK(fg_attention_forward(y, p, q, k, v, 1, 1, 1, Tk, 1, 1.0f, 0));
    fg_attention_forward_naive(y_ref, p_ref, q, k, v, 1, 1, 1, Tk, 1, 1.0f, 0);
    /* entries below e^-87 are flushed to 0: at most 1e-37 off */
    fg_check_close("softmax exp over scores in [-95, 0]", p, p_ref, Tk, 5e-6f, 1e-37f);
    fg_check_close("softmax exp over scores in [-95, 0]: out", y, y_ref, 1, 1e-5f, 1e-7f);
    int bad = 0;
    for (int j = 1; j < Tk && !bad; j++) {
        if (k[j] < -86.0f) break;
        const double want = exp((double)k[j] - (double)k[j - 1]), got = (double)p[j] / p[j - 1];
        if (fabs(got - want) > 2e-6 * want) {
            fprintf(stderr, "  softmax exp: p[%d] / p[%d] = %.9g, want e^(%g) = %.9g\n", j, j - 1, got,
                    (double)k[j] - k[j - 1], want);
            bad = 1;
        }
    }
    CHECK(!bad);
}

/* ---------------------------------------------------------------- finite differences */

typedef struct gctx {
    int op; /* 0 layer norm, 1 attention */
    float *x[3];
    float *out, *aux;
    size_t nout;
    const float *r;
    int64_t d[5]; /* layer norm: rows C; attention: B H Tq Tk D */
    int flag;     /* layer norm: affine; attention: causal */
} gctx;

static double gloss(void *user) {
    gctx *c = user;
    if (c->op == 0)
        fg_layernorm_forward(c->out, NULL, NULL, c->x[0], c->flag ? c->x[1] : NULL, c->flag ? c->x[2] : NULL, c->d[0],
                             c->d[1], 1e-5f);
    else
        CHECK_OK(fg_attention_forward(c->out, c->aux, c->x[0], c->x[1], c->x[2], c->d[0], c->d[1], c->d[2], c->d[3],
                                      c->d[4], 1.0f / sqrtf((float)c->d[4]), c->flag));
    return fg_dot_d(c->out, c->r, c->nout);
}

static void gcheck(const char *what, gctx *c, float **g, const size_t *n, fg_rng *rng) {
    char w[160];
    for (int j = 0; j < 3; j++) {
        if (!g[j]) continue;
        snprintf(w, sizeof w, "%s: d/d input %d", what, j);
        fg_check_grad(w, c->x[j], g[j], n[j], gloss, c, 64, 1e-2f, 1e-2f, 1e-3f, rng);
    }
}

static void test_gradcheck_layernorm(fg_rng *rng) {
    enum { rows = 3, C = 6, n = rows * C };
    for (int affine = 0; affine <= 1; affine++) {
        float x[n], w[C], b[C], out[n], r[n], dx[n], dw[C], db[C], mu[rows], rs[rows];
        fg_fill_uniform(x, n, -2, 2, rng);
        fg_fill_uniform(w, C, 0.5f, 1.5f, rng);
        fg_fill_uniform(b, C, -1, 1, rng);
        fg_fill_uniform(r, n, -1, 1, rng);
        fg_layernorm_forward(out, mu, rs, x, affine ? w : NULL, affine ? b : NULL, rows, C, 1e-5f);
        memset(dw, 0, sizeof dw);
        memset(db, 0, sizeof db);
        fg_layernorm_backward(dx, affine ? dw : NULL, affine ? db : NULL, r, x, affine ? w : NULL, mu, rs, rows, C);
        gctx c = {.op = 0, .x = {x, w, b}, .out = out, .nout = n, .r = r, .d = {rows, C}, .flag = affine};
        float *g[3] = {dx, affine ? dw : NULL, affine ? db : NULL};
        size_t ns[3] = {n, C, C};
        gcheck(affine ? "gradcheck layernorm (affine)" : "gradcheck layernorm", &c, g, ns, rng);
    }
}

static void test_gradcheck_attention(fg_rng *rng) {
    enum { B = 1, H = 2, Tq = 3, Tk = 4, D = 3, nq = B * H * Tq * D, nk = B * H * Tk * D, np = B * H * Tq * Tk };
    for (int causal = 0; causal <= 1; causal++) {
        float q[nq], k[nk], v[nk], out[nq], p[np], r[nq], dq[nq], dk[nk], dv[nk];
        fg_fill_uniform(q, nq, -1, 1, rng);
        fg_fill_uniform(k, nk, -1, 1, rng);
        fg_fill_uniform(v, nk, -1, 1, rng);
        fg_fill_uniform(r, nq, -1, 1, rng);
        const float scale = 1.0f / sqrtf((float)D);
        float ws[Tq * Tk * 2];
        CHECK(fg_attention_workspace_bytes(B, H, Tq, Tk, D) <= sizeof ws);
        CHECK_OK(fg_attention_forward(out, p, q, k, v, B, H, Tq, Tk, D, scale, causal));
        CHECK_OK(fg_attention_backward(dq, dk, dv, r, q, k, v, p, B, H, Tq, Tk, D, scale, ws, sizeof ws));
        gctx c = {.op = 1, .x = {q, k, v}, .out = out, .aux = p, .nout = nq, .r = r, .d = {B, H, Tq, Tk, D}, .flag = causal};
        float *g[3] = {dq, dk, dv};
        size_t ns[3] = {nq, nk, nk};
        gcheck(causal ? "gradcheck attention (causal)" : "gradcheck attention", &c, g, ns, rng);
        /* causal: key Tk-1 is seen by no query (Tq < Tk), so its gradients are exactly 0 */
        if (causal)
            for (int h = 0; h < H; h++)
                for (int d = 0; d < D; d++) CHECK(dk[(h * Tk + Tk - 1) * D + d] == 0.0f && dv[(h * Tk + Tk - 1) * D + d] == 0.0f);
    }
}

/* ---------------------------------------------------------------- token keeping */

/* k (B, H, Tk, D) gathered along Tk at keep -> (B, H, n_keep, D) */
static void gather(float *dst, const float *src, const int32_t *keep, int64_t n_keep, int64_t BH, int64_t Tk, int64_t D) {
    for (int64_t it = 0; it < BH; it++)
        for (int64_t j = 0; j < n_keep; j++)
            memcpy(dst + (it * n_keep + j) * D, src + (it * Tk + keep[j]) * D, (size_t)D * sizeof(float));
}

static void test_keep_case(int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t D, const int32_t *keep,
                           int64_t n_keep, fg_rng *rng) {
    const int64_t BH = B * H;
    const size_t nq = (size_t)(BH * Tq * D), nk = (size_t)(BH * Tk * D), ng = (size_t)(BH * n_keep * D),
                 np = (size_t)(BH * Tq * n_keep);
    const float scale = 1.0f / sqrtf((float)D);
    char what[200];
    snprintf(what, sizeof what, "attention keep [B %lld H %lld Tq %lld Tk %lld D %lld n_keep %lld]", (long long)B,
             (long long)H, (long long)Tq, (long long)Tk, (long long)D, (long long)n_keep);
    float *q = fg_alloc_guarded(nq), *k = fg_alloc_guarded(nk), *v = fg_alloc_guarded(nk);
    float *kg = fg_alloc_guarded(ng), *vg = fg_alloc_guarded(ng);
    float *y = fg_alloc_guarded(nq), *p = fg_alloc_guarded(np), *y_ref = fg_alloc_guarded(nq), *p_ref = fg_alloc_guarded(np);
    fg_fill_uniform(q, nq, -2, 2, rng);
    fg_fill_uniform(k, nk, -2, 2, rng);
    fg_fill_uniform(v, nk, -1, 1, rng);
    gather(kg, k, keep, n_keep, BH, Tk, D);
    gather(vg, v, keep, n_keep, BH, Tk, D);
    fg_attention_forward_naive(y_ref, p_ref, q, kg, vg, B, H, Tq, n_keep, D, scale, 0);
    const size_t ws_bytes = fg_attention_keep_workspace_bytes(B, H, Tq, n_keep, D);
    const size_t slot = 2 * (size_t)(n_keep * D) * sizeof(float);
    CHECK(ws_bytes >= slot && ws_bytes % slot == 0);
    float *ws = malloc(ws_bytes);
    for (int one_slot = 0; one_slot <= 1; one_slot++) {
        fg_fill_const(y, nq, 777.0f);
        fg_fill_const(p, np, 777.0f);
        CHECK_OK(fg_attention_forward_keep(y, p, q, k, v, keep, n_keep, B, H, Tq, Tk, D, scale, ws,
                                           one_slot ? slot : ws_bytes));
        fg_check_close(what, y, y_ref, nq, RTOL, fg_atol_for((double)n_keep));
        fg_check_guard(what, y, nq);
        fg_check_close(what, p, p_ref, np, RTOL, 1e-6f);
        fg_check_guard(what, p, np);
    }
    CHECK_STATUS(fg_attention_forward_keep(y, p, q, k, v, keep, n_keep, B, H, Tq, Tk, D, scale, ws, slot - 1),
                 FG_ERR_INVALID);
    CHECK_STATUS(fg_attention_forward_keep(y, p, q, k, v, keep, n_keep, B, H, Tq, Tk, D, scale, NULL, 0),
                 FG_ERR_INVALID);
    free(q), free(k), free(v), free(kg), free(vg), free(y), free(p), free(y_ref), free(p_ref), free(ws);
}

static void test_keep(fg_rng *rng) {
    const int32_t k1[] = {0, 2, 3, 7};
    test_keep_case(2, 3, 9, 9, 8, k1, 4, rng);
    const int32_t k2[] = {11, 1, 6, 5, 0, 6}; /* unsorted, 6 repeated */
    test_keep_case(1, 2, 13, 12, 5, k2, 6, rng);
    const int32_t k3[] = {4};
    test_keep_case(1, 1, 17, 17, 1, k3, 1, rng);
    /* ViT-sized: keep every other token of 197, many items in parallel */
    int32_t k4[99];
    for (int j = 0; j < 99; j++) k4[j] = 2 * j;
    test_keep_case(2, 3, 197, 197, 64, k4, 99, rng);

    /* every token in order: the same as the plain forward */
    enum { B = 2, H = 2, T = 21, D = 8, nq = B * H * T * D, np = B * H * T * T };
    static float q[nq], k[nq], v[nq], y[nq], p[np], y2[nq], p2[np];
    int32_t all[T];
    for (int j = 0; j < T; j++) all[j] = j;
    fg_fill_uniform(q, nq, -2, 2, rng);
    fg_fill_uniform(k, nq, -2, 2, rng);
    fg_fill_uniform(v, nq, -1, 1, rng);
    const float scale = 0.3f;
    float *ws = malloc(fg_attention_keep_workspace_bytes(B, H, T, T, D));
    CHECK_OK(fg_attention_forward(y, p, q, k, v, B, H, T, T, D, scale, 0));
    CHECK_OK(fg_attention_forward_keep(y2, p2, q, k, v, all, T, B, H, T, T, D, scale, ws,
                                       fg_attention_keep_workspace_bytes(B, H, T, T, D)));
    fg_check_close("attention keep all tokens = plain forward (out)", y2, y, nq, 1e-6f, 1e-7f);
    fg_check_close("attention keep all tokens = plain forward (probs)", p2, p, np, 1e-6f, 1e-8f);

    /* bad sizes and indices */
    const size_t wsb = fg_attention_keep_workspace_bytes(B, H, T, T, D);
    int32_t bad[3] = {0, T, 1};
    CHECK_STATUS(fg_attention_forward_keep(y2, p2, q, k, v, all, 0, B, H, T, T, D, scale, ws, wsb), FG_ERR_SHAPE);
    CHECK_STATUS(fg_attention_forward_keep(y2, p2, q, k, v, all, T + 1, B, H, T, T, D, scale, ws, wsb), FG_ERR_SHAPE);
    CHECK_STATUS(fg_attention_forward_keep(y2, p2, q, k, v, bad, 3, B, H, T, T, D, scale, ws, wsb), FG_ERR_INVALID);
    bad[1] = -1;
    CHECK_STATUS(fg_attention_forward_keep(y2, p2, q, k, v, bad, 3, B, H, T, T, D, scale, ws, wsb), FG_ERR_INVALID);
    CHECK_STATUS(fg_attention_forward_keep(y2, p2, q, k, v, all, T, B, H, T, T, 0, scale, ws, wsb), FG_ERR_SHAPE);
    CHECK(fg_attention_keep_workspace_bytes(B, H, T, 0, D) == 0);
    free(ws);
}

/* ---------------------------------------------------------------- token-major layout */

/* (B, T, H, D) <-> (B, H, T, D) */
static void to_heads(float *dst, const float *src, int64_t B, int64_t H, int64_t T, int64_t D) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < H; h++)
                memcpy(dst + ((b * H + h) * T + t) * D, src + ((b * T + t) * H + h) * D, (size_t)D * sizeof(float));
}
static void to_tokens(float *dst, const float *src, int64_t B, int64_t H, int64_t T, int64_t D) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < H; h++)
                memcpy(dst + ((b * T + t) * H + h) * D, src + ((b * H + h) * T + t) * D, (size_t)D * sizeof(float));
}

/* The _tokens kernels on (B, T, H, D) against the head-major kernels on the same tensors permuted:
 * forward (all heads and the first `keep`: the others' columns exactly 0, their probs untouched),
 * backward (all gradients, and dv alone), and ToMe's proportional attention in both layouts. */
static void test_tokens_case(const att_shape *sh, int causal, fg_rng *rng) {
    const int64_t B = sh->B, H = sh->H, Tq = sh->Tq, Tk = sh->Tk, D = sh->D;
    const size_t nq = (size_t)(B * H * Tq * D), nk = (size_t)(B * H * Tk * D), np = (size_t)(B * H * Tq * Tk);
    const float scale = 1.0f / sqrtf((float)D);
    char what[200];
#define TWHAT(s) (snprintf(what, sizeof what, "attention tokens %s [B %lld H %lld Tq %lld Tk %lld D %lld%s]", s, \
                           (long long)B, (long long)H, (long long)Tq, (long long)Tk, (long long)D,               \
                           causal ? " causal" : ""), what)
    float *q = fg_alloc_guarded(nq), *k = fg_alloc_guarded(nk), *v = fg_alloc_guarded(nk), *dy = fg_alloc_guarded(nq);
    float *qh = fg_alloc_guarded(nq), *kh = fg_alloc_guarded(nk), *vh = fg_alloc_guarded(nk), *dyh = fg_alloc_guarded(nq);
    fg_fill_uniform(q, nq, -2, 2, rng);
    fg_fill_uniform(k, nk, -2, 2, rng);
    fg_fill_uniform(v, nk, -1, 1, rng);
    fg_fill_uniform(dy, nq, -1, 1, rng);
    to_heads(qh, q, B, H, Tq, D), to_heads(kh, k, B, H, Tk, D), to_heads(vh, v, B, H, Tk, D);
    to_heads(dyh, dy, B, H, Tq, D);
    float *yh = fg_alloc_guarded(nq), *ph = fg_alloc_guarded(np), *want = fg_alloc_guarded(nq);
    CHECK_OK(fg_attention_forward(yh, ph, qh, kh, vh, B, H, Tq, Tk, D, scale, causal));
    to_tokens(want, yh, B, H, Tq, D);
    float *y = fg_alloc_guarded(nq), *p = fg_alloc_guarded(np);
    fg_fill_const(y, nq, 777.0f), fg_fill_const(p, np, 777.0f);
    CHECK_OK(fg_attention_forward_tokens(y, p, q, k, v, B, H, H, Tq, Tk, D, scale, causal));
    fg_check_close(TWHAT("forward out"), y, want, nq, 1e-6f, 1e-7f);
    fg_check_close(TWHAT("forward probs"), p, ph, np, 1e-6f, 1e-8f);
    fg_check_guard(what, y, nq);
    fg_check_guard(what, p, np);
    if (H > 1) { /* the first keep heads: their columns and probs as before, the others' 0 / untouched */
        const int64_t keep = H / 2;
        fg_fill_const(y, nq, 777.0f), fg_fill_const(p, np, 777.0f);
        CHECK_OK(fg_attention_forward_tokens(y, p, q, k, v, B, H, keep, Tq, Tk, D, scale, causal));
        int64_t bad = 0;
        for (int64_t r = 0; r < B * Tq; r++)
            for (int64_t c = 0; c < H * D; c++) {
                const float got = y[r * H * D + c], exp_ = want[r * H * D + c];
                bad += c < keep * D ? fabsf(got - exp_) > 1e-6f * (1.0f + fabsf(exp_)) : got != 0.0f;
            }
        for (int64_t it = 0; it < B * H; it++)
            for (int64_t e = 0; e < Tq * Tk; e++)
                bad += it % H < keep ? fabsf(p[it * Tq * Tk + e] - ph[it * Tq * Tk + e]) > 1e-6f
                                     : p[it * Tq * Tk + e] != 777.0f;
        if (bad) fprintf(stderr, "  %s: %lld entries wrong\n", TWHAT("heads kept"), (long long)bad);
        CHECK(bad == 0);
        CHECK_STATUS(fg_attention_forward_tokens(y, p, q, k, v, B, H, 0, Tq, Tk, D, scale, causal), FG_ERR_SHAPE);
        CHECK_STATUS(fg_attention_forward_tokens(y, p, q, k, v, B, H, H + 1, Tq, Tk, D, scale, causal), FG_ERR_SHAPE);
    }
    /* backward */
    float *dqh = fg_alloc_guarded(nq), *dkh = fg_alloc_guarded(nk), *dvh = fg_alloc_guarded(nk);
    float *dq = fg_alloc_guarded(nq), *dk = fg_alloc_guarded(nk), *dv = fg_alloc_guarded(nk), *w = fg_alloc_guarded(nk);
    const size_t ws_bytes = fg_attention_workspace_bytes(B, H, Tq, Tk, D);
    float *ws = malloc(ws_bytes);
    CHECK_OK(fg_attention_backward(dqh, dkh, dvh, dyh, qh, kh, vh, ph, B, H, Tq, Tk, D, scale, ws, ws_bytes));
    fg_fill_const(dq, nq, 777.0f), fg_fill_const(dk, nk, 777.0f), fg_fill_const(dv, nk, 777.0f);
    CHECK_OK(fg_attention_backward_tokens(dq, dk, dv, dy, q, k, v, ph, B, H, Tq, Tk, D, scale, ws, ws_bytes));
    to_tokens(want, dqh, B, H, Tq, D);
    fg_check_close(TWHAT("backward dq"), dq, want, nq, 1e-6f, 1e-7f);
    to_tokens(w, dkh, B, H, Tk, D);
    fg_check_close(TWHAT("backward dk"), dk, w, nk, 1e-6f, 1e-7f);
    to_tokens(w, dvh, B, H, Tk, D);
    fg_check_close(TWHAT("backward dv"), dv, w, nk, 1e-6f, 1e-7f);
    fg_check_guard(what, dq, nq), fg_check_guard(what, dk, nk), fg_check_guard(what, dv, nk);
    fg_fill_const(dv, nk, 777.0f);
    CHECK_OK(fg_attention_backward_tokens(NULL, NULL, dv, dy, q, k, v, ph, B, H, Tq, Tk, D, scale, NULL, 0));
    fg_check_close(TWHAT("backward dv alone"), dv, w, nk, 1e-6f, 1e-7f);
    CHECK_STATUS(fg_attention_backward_tokens(dq, NULL, NULL, dy, q, k, v, ph, B, H, Tq, Tk, D, scale, NULL, 0),
                 FG_ERR_INVALID);
    /* ToMe's proportional attention (self-attention, no mask): both layouts, all heads and half */
    if (Tq == Tk && !causal) {
        float *size = fg_alloc_guarded((size_t)(B * Tq));
        fg_fill_uniform(size, (size_t)(B * Tq), 1, 4, rng);
        const size_t tws = fg_tome_attention_workspace_bytes(B, H, Tq);
        float *tw = malloc(tws);
        for (int64_t keep = H; keep >= 1; keep = keep > 1 ? keep / 2 : 0) {
            CHECK_OK(fg_tome_attention_forward(yh, qh, kh, vh, size, B, H, keep, Tq, D, scale, tw, tws));
            to_tokens(want, yh, B, H, Tq, D);
            fg_fill_const(y, nq, 777.0f);
            CHECK_OK(fg_tome_attention_forward_tokens(y, q, k, v, size, B, H, keep, Tq, D, scale, tw, tws));
            fg_check_close(TWHAT("tome forward"), y, want, nq, 1e-6f, 1e-7f);
            fg_check_guard(what, y, nq);
        }
        free(size), free(tw);
    }
#undef TWHAT
    free(q), free(k), free(v), free(dy), free(qh), free(kh), free(vh), free(dyh), free(yh), free(ph), free(want);
    free(y), free(p), free(dqh), free(dkh), free(dvh), free(dq), free(dk), free(dv), free(w), free(ws);
}

/* ---------------------------------------------------------------- PyTorch fixtures */

static const float *fx(fg_fixture *f, const char *prefix, const char *name, size_t numel) {
    char key[96];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    return fg_fixture_get(f, key, numel);
}

static int fx_next(fg_fixture *f, const char *prefix, int i, char *p, size_t np) {
    char key[96];
    snprintf(p, np, "%s%d.", prefix, i);
    snprintf(key, sizeof key, "%sparams", p);
    return fg_fixture_has(f, key);
}

static void test_fixtures_layernorm(fg_fixture *f) {
    char p[32], what[96];
    int i = 0;
    for (; fx_next(f, "ln", i, p, sizeof p); i++) {
        const float *pr = fx(f, p, "params", 4);
        const int64_t rows = (int64_t)pr[0], C = (int64_t)pr[1];
        const int affine = pr[2] != 0;
        const float eps = pr[3];
        const size_t n = (size_t)(rows * C), nc = (size_t)C, nr = (size_t)rows;
        const float *x = fx(f, p, "x", n), *w = affine ? fx(f, p, "w", nc) : NULL, *b = affine ? fx(f, p, "b", nc) : NULL;
        const float *dout = fx(f, p, "dout", n);
        float *y = fg_alloc_guarded(n), *mu = fg_alloc_guarded(nr), *rs = fg_alloc_guarded(nr);
        float *dx = fg_alloc_guarded(n), *dw = fg_alloc_guarded(nc), *db = fg_alloc_guarded(nc);
        for (int naive = 0; naive <= 1; naive++) {
            const char *tag = naive ? " (naive)" : "";
            if (naive) fg_layernorm_forward_naive(y, mu, rs, x, w, b, rows, C, eps);
            else fg_layernorm_forward(y, mu, rs, x, w, b, rows, C, eps);
            snprintf(what, sizeof what, "torch layer_norm %d out%s", i, tag);
            fg_check_close(what, y, fx(f, p, "out", n), n, FX_RTOL, FX_ATOL);
            snprintf(what, sizeof what, "torch layer_norm %d mean%s", i, tag);
            fg_check_close(what, mu, fx(f, p, "mean", nr), nr, FX_RTOL, FX_ATOL);
            snprintf(what, sizeof what, "torch layer_norm %d rstd%s", i, tag);
            fg_check_close(what, rs, fx(f, p, "rstd", nr), nr, FX_RTOL, FX_ATOL);
            fg_fill_const(dw, nc, 0.0f);
            fg_fill_const(db, nc, 0.0f);
            if (naive) fg_layernorm_backward_naive(dx, dw, db, dout, x, w, mu, rs, rows, C);
            else fg_layernorm_backward(dx, dw, db, dout, x, w, mu, rs, rows, C);
            /* dinp scales with rstd (C = 1: 1/sqrt(eps)), so its tolerance does too */
            float rs_max = 1.0f;
            for (size_t r = 0; r < nr; r++) rs_max = rs[r] > rs_max ? rs[r] : rs_max;
            snprintf(what, sizeof what, "torch layer_norm %d dx%s", i, tag);
            fg_check_close(what, dx, fx(f, p, "dx", n), n, FX_RTOL, FX_ATOL * rs_max);
            if (affine) {
                snprintf(what, sizeof what, "torch layer_norm %d dweight%s", i, tag);
                fg_check_close(what, dw, fx(f, p, "dw", nc), nc, FX_RTOL, FX_ATOL);
                snprintf(what, sizeof what, "torch layer_norm %d dbias%s", i, tag);
                fg_check_close(what, db, fx(f, p, "db", nc), nc, FX_RTOL, FX_ATOL);
            }
        }
        free(y), free(mu), free(rs), free(dx), free(dw), free(db);
    }
    CHECK(i == 4); /* the generator writes four layer norm cases */
}

static void test_fixtures_attention(fg_fixture *f) {
    char p[32], what[128];
    int i = 0, causal_seen = 0;
    for (; fx_next(f, "att", i, p, sizeof p); i++) {
        const float *pr = fx(f, p, "params", 7);
        const int64_t B = (int64_t)pr[0], H = (int64_t)pr[1], Tq = (int64_t)pr[2], Tk = (int64_t)pr[3], D = (int64_t)pr[4];
        const int causal = pr[5] != 0;
        const float scale = pr[6];
        causal_seen |= 1 << causal;
        const size_t nq = (size_t)(B * H * Tq * D), nk = (size_t)(B * H * Tk * D), np = (size_t)(B * H * Tq * Tk);
        const float *q = fx(f, p, "q", nq), *k = fx(f, p, "k", nk), *v = fx(f, p, "v", nk), *dout = fx(f, p, "dout", nq);
        float *y = fg_alloc_guarded(nq), *pb = fg_alloc_guarded(np);
        float *dq = fg_alloc_guarded(nq), *dk = fg_alloc_guarded(nk), *dv = fg_alloc_guarded(nk);
        const size_t wsb = fg_attention_workspace_bytes(B, H, Tq, Tk, D);
        void *ws = malloc(wsb);
        for (int naive = 0; naive <= 1; naive++) {
            const char *tag = naive ? " (naive)" : "";
            if (naive) fg_attention_forward_naive(y, pb, q, k, v, B, H, Tq, Tk, D, scale, causal);
            else CHECK_OK(fg_attention_forward(y, pb, q, k, v, B, H, Tq, Tk, D, scale, causal));
            snprintf(what, sizeof what, "torch attention %d [causal %d] out%s", i, causal, tag);
            fg_check_close(what, y, fx(f, p, "out", nq), nq, FX_RTOL, FX_ATOL);
            fg_check_guard(what, y, nq);
            snprintf(what, sizeof what, "torch attention %d [causal %d] probs%s", i, causal, tag);
            fg_check_close(what, pb, fx(f, p, "probs", np), np, FX_RTOL, FX_ATOL);
            if (naive) fg_attention_backward_naive(dq, dk, dv, dout, q, k, v, pb, B, H, Tq, Tk, D, scale);
            else CHECK_OK(fg_attention_backward(dq, dk, dv, dout, q, k, v, pb, B, H, Tq, Tk, D, scale, ws, wsb));
            snprintf(what, sizeof what, "torch attention %d [causal %d] dq%s", i, causal, tag);
            fg_check_close(what, dq, fx(f, p, "dq", nq), nq, FX_RTOL, FX_ATOL);
            snprintf(what, sizeof what, "torch attention %d [causal %d] dk%s", i, causal, tag);
            fg_check_close(what, dk, fx(f, p, "dk", nk), nk, FX_RTOL, FX_ATOL);
            snprintf(what, sizeof what, "torch attention %d [causal %d] dv%s", i, causal, tag);
            fg_check_close(what, dv, fx(f, p, "dv", nk), nk, FX_RTOL, FX_ATOL);
        }
        free(y), free(pb), free(dq), free(dk), free(dv), free(ws);
    }
    CHECK(i == 6);
    CHECK(causal_seen == 3);

    for (i = 0; fx_next(f, "keep", i, p, sizeof p); i++) {
        const float *pr = fx(f, p, "params", 7);
        const int64_t B = (int64_t)pr[0], H = (int64_t)pr[1], Tq = (int64_t)pr[2], Tk = (int64_t)pr[3], D = (int64_t)pr[4];
        const int64_t n_keep = (int64_t)pr[5];
        const float scale = pr[6];
        const size_t nq = (size_t)(B * H * Tq * D), nk = (size_t)(B * H * Tk * D), np = (size_t)(B * H * Tq * n_keep);
        const float *kf = fx(f, p, "keep", (size_t)n_keep);
        int32_t *keep = malloc((size_t)n_keep * sizeof(int32_t));
        for (int64_t j = 0; j < n_keep; j++) keep[j] = (int32_t)kf[j];
        float *y = fg_alloc_guarded(nq), *pb = fg_alloc_guarded(np);
        const size_t wsb = fg_attention_keep_workspace_bytes(B, H, Tq, n_keep, D);
        void *ws = malloc(wsb);
        CHECK_OK(fg_attention_forward_keep(y, pb, fx(f, p, "q", nq), fx(f, p, "k", nk), fx(f, p, "v", nk), keep, n_keep,
                                           B, H, Tq, Tk, D, scale, ws, wsb));
        snprintf(what, sizeof what, "torch attention over kept tokens %d out", i);
        fg_check_close(what, y, fx(f, p, "out", nq), nq, FX_RTOL, FX_ATOL);
        fg_check_guard(what, y, nq);
        snprintf(what, sizeof what, "torch attention over kept tokens %d probs", i);
        fg_check_close(what, pb, fx(f, p, "probs", np), np, FX_RTOL, FX_ATOL);
        fg_check_guard(what, pb, np);
        free(keep), free(y), free(pb), free(ws);
    }
    CHECK(i == 2);
}

/* ---------------------------------------------------------------- shapes, FLOPs */

static void test_shape_errors(void) {
    float x[4] = {0};
    CHECK_OK(fg_attention_check(0, 3, 1, 1, 1));
    CHECK_STATUS(fg_attention_check(-1, 1, 1, 1, 1), FG_ERR_SHAPE);
    CHECK_STATUS(fg_attention_check(1, -1, 1, 1, 1), FG_ERR_SHAPE);
    CHECK_STATUS(fg_attention_check(1, 1, 0, 1, 1), FG_ERR_SHAPE);
    CHECK_STATUS(fg_attention_check(1, 1, 1, 0, 1), FG_ERR_SHAPE);
    CHECK_STATUS(fg_attention_check(1, 1, 1, 1, 0), FG_ERR_SHAPE);
    CHECK_STATUS(fg_attention_forward(x, x, x, x, x, 1, 1, 1, 1, 0, 1.0f, 0), FG_ERR_SHAPE);
    CHECK_STATUS(fg_attention_forward(x, x, x, x, x, 1, 1, 1, -2, 1, 1.0f, 1), FG_ERR_SHAPE);
    CHECK_STATUS(fg_attention_backward(x, x, x, x, x, x, x, x, 1, 1, 0, 1, 1, 1.0f, x, sizeof x), FG_ERR_SHAPE);
    /* an empty batch does nothing and needs nothing */
    fg_fill_const(x, 4, 3.0f);
    CHECK_OK(fg_attention_forward(x, x, x, x, x, 0, 4, 2, 2, 2, 1.0f, 0));
    CHECK_OK(fg_attention_backward(x, x, x, x, x, x, x, x, 2, 0, 2, 2, 2, 1.0f, NULL, 0));
    CHECK(fg_all_equal_to(x, 4, 3.0f));
    CHECK(fg_attention_workspace_bytes(1, 1, 0, 3, 3) == 0);
    CHECK(fg_attention_workspace_bytes(0, 1, 3, 3, 3) == 0);
    CHECK(fg_attention_workspace_bytes(1, 1, 5, 7, 3) == 5 * 7 * sizeof(float));
    CHECK(fg_attention_flops(2, 3, 5, 7, 11) == 4.0 * 2 * 3 * 5 * 7 * 11);
}

int main(void) {
    fg_rng rng;
    fg_rng_seed(&rng, 20240613);
    fg_threads_set(2);

    for (size_t i = 0; i < sizeof LN_SHAPES / sizeof LN_SHAPES[0]; i++)
        for (int affine = 0; affine <= 3; affine++) test_layernorm_vs_naive(&LN_SHAPES[i], affine, &rng);
    for (size_t i = 0; i < sizeof ATT_SHAPES / sizeof ATT_SHAPES[0]; i++)
        for (int causal = 0; causal <= 1; causal++) test_attention_vs_naive(&ATT_SHAPES[i], causal, &rng);
    test_softmax_exp_accuracy(&rng);
    test_gradcheck_layernorm(&rng);
    test_gradcheck_attention(&rng);
    test_keep(&rng);
    for (size_t i = 0; i < sizeof ATT_SHAPES / sizeof ATT_SHAPES[0]; i++)
        for (int causal = 0; causal <= 1; causal++) test_tokens_case(&ATT_SHAPES[i], causal, &rng);
    test_shape_errors();

    fg_fixture *f = fg_fixture_open("attn.bin");
    test_fixtures_layernorm(f);
    test_fixtures_attention(f);
    fg_fixture_close(f);
    return fg_test_finish("test_ops_attn");
}
