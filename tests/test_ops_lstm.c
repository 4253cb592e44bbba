/* Tests for the fused LSTM layer (src/ops/lstm.c):
 *  - fg_lstm_check rejects non-positive T, B, I, H (and a NULL descriptor) with a message naming
 *    the field; the size functions return 0 for a bad descriptor and the documented sizes
 *    otherwise; forward and backward refuse a workspace that is too small;
 *  - the fast kernels against the naive twins on several shapes (T = 1, B = 1, H not a multiple
 *    of 16, with and without h0/c0, each bias alone, both, none, one large enough to run the gate
 *    kernels in parallel): y, hT, cT, the saved buffer, and every gradient; input gradients
 *    written over garbage, parameter gradients accumulated on prefilled buffers (one and two
 *    calls); dy, dhT, dcT NULL; every gradient output NULL except one; guard values after every
 *    output buffer;
 *  - central finite differences of loss = sum(y*r) + sum(hT*r2) + sum(cT*r3) on tiny cases, for
 *    x, h0, c0, w_ih, w_hh, b_ih, b_hh;
 *  - PyTorch references from tests/fixtures/lstm.bin (gen_lstm.py, torch.nn.LSTM in float64):
 *    forward outputs and all gradients, for the fast kernels and the naive twins;
 *  - the structurally sparse backward (arXiv 1806.00512): bad drop / block rejected with a message
 *    naming the field; drop = 0 (or too few blocks to drop one) bit-identical to fg_lstm_backward;
 *    for drop 0.25, 0.5, 0.9 and block 1, 4, H on four shapes (T = 1, H = 33 with a short last
 *    block, one parallel): every gradient against the naive twin, exactly the expected number of
 *    blocks dropped at every step, the fast kernel's kept set equal to the naive's at every step
 *    and, at the last step (whose dG equals the dense one bit for bit), equal to the test's own
 *    selection with the kept columns untouched and the dropped ones zero; dropped columns zero in
 *    the masked dG of every step; kept units and GEMM FLOPs adding up, also with gradients left out;
 *  - the sparsity on a graph's LSTM node (fg_graph_set_lstm_sparsity): drop 0 gives every gradient
 *    bit-identical to a node without a sparsity (with the larger backward workspace planned); drop
 *    0.5, block 4 gives the gradients of fg_lstm_backward_sparse called on the graph's own tensors,
 *    bit for bit, and its stats (blocks dropped); the drop switched after build (dense, sparse,
 *    dense again) under exact-size workspaces; another block after build, a sparsity on a node built
 *    without one, a node that is not an LSTM, bad drop / block and stats before any backward all
 *    refused with a message naming what is wrong;
 *  - the other backward variants (dense, threshold, structured with one kept set per call,
 *    meprop): with nothing dropped bit-identical to fg_lstm_backward; dropping, every gradient and
 *    the stats against the variant's naive twin, structured's kept set equal to the test's own
 *    selection on the last step's dense dG at every step and its FLOPs the dense ones times the
 *    kept fraction, meprop's kept column count, threshold's reported sparsity; bad variant and
 *    tau refused naming the field; the edges of the rules: tied blocks drop the lower index first,
 *    a |dG| of exactly tau survives the threshold. */
#include <math.h>
#include <string.h>

#include "testutil.h"

#define RTOL 1e-4f
/* fixtures hold float64 references rounded to float32: tolerances are float rounding */
#define FX_RTOL 1e-4f
#define FX_ATOL 1e-5f

/* ---------------------------------------------------------------- descriptor checks */

static void expect_shape_error(int64_t T, int64_t B, int64_t I, int64_t H, const char *field) {
    fg_lstm_desc d = {T, B, I, H};
    fg_clear_error();
    fg_status s = fg_lstm_check(&d);
    if (s != FG_ERR_SHAPE) {
        fprintf(stderr, "  fg_lstm_check(T %lld B %lld I %lld H %lld) returned %s, expected %s\n", (long long)T,
                (long long)B, (long long)I, (long long)H, fg_status_name(s), fg_status_name(FG_ERR_SHAPE));
        fg_test_failures++;
        return;
    }
    char want[32];
    snprintf(want, sizeof want, "%s (", field);
    if (!strstr(fg_last_error(), want)) {
        fprintf(stderr, "  fg_lstm_check message does not name '%s': \"%s\"\n", field, fg_last_error());
        fg_test_failures++;
    }
    CHECK(fg_lstm_saved_bytes(&d) == 0);
    CHECK(fg_lstm_workspace_bytes(&d) == 0);
}

static void test_check(void) {
    expect_shape_error(0, 2, 3, 4, "T");
    expect_shape_error(-1, 2, 3, 4, "T");
    expect_shape_error(1, 0, 3, 4, "B");
    expect_shape_error(1, 2, -3, 4, "I");
    expect_shape_error(1, 2, 3, 0, "H");
    CHECK_STATUS(fg_lstm_check(NULL), FG_ERR_INVALID);
    {
        fg_lstm_desc huge = {INT64_MAX / 2, 1 << 20, 4, 1 << 20};
        CHECK_STATUS(fg_lstm_check(&huge), FG_ERR_SHAPE);
    }
    fg_lstm_desc d = {3, 2, 5, 7};
    CHECK_OK(fg_lstm_check(&d));
    CHECK(fg_lstm_saved_bytes(&d) == 5 * 3 * 2 * 7 * sizeof(float));
    CHECK(fg_lstm_workspace_bytes(&d) == (4 * 3 * 2 * 7 + 2 * 2 * 7) * sizeof(float));
    CHECK(fg_lstm_flops(&d) == 2.0 * 3 * 2 * 28 * (5 + 7));

    /* too small a workspace, and a NULL one */
    const size_t ws_bytes = fg_lstm_workspace_bytes(&d);
    float *buf = calloc(4096, sizeof(float));
    void *ws = malloc(ws_bytes);
    CHECK_STATUS(fg_lstm_forward(buf, NULL, NULL, buf + 1024, buf + 2048, NULL, NULL, buf + 2048, buf + 2048, NULL,
                                 NULL, &d, ws, ws_bytes - 1),
                 FG_ERR_INVALID);
    CHECK(strstr(fg_last_error(), "workspace") != NULL);
    CHECK_STATUS(fg_lstm_backward(buf, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, buf + 2048, NULL, NULL,
                                  buf + 2048, buf + 2048, buf, buf + 1024, &d, NULL, ws_bytes),
                 FG_ERR_INVALID);
    fg_lstm_desc bad = {3, 0, 5, 7};
    CHECK_STATUS(fg_lstm_forward(buf, NULL, NULL, buf + 1024, buf + 2048, NULL, NULL, buf + 2048, buf + 2048, NULL,
                                 NULL, &bad, ws, ws_bytes),
                 FG_ERR_SHAPE);
    free(buf);
    free(ws);
}

/* ---------------------------------------------------------------- fast against naive */

typedef struct lstm_shape {
    int64_t T, B, I, H;
    int has_h0, has_bih, has_bhh;
} lstm_shape;

static const lstm_shape SHAPES[] = {
    {1, 1, 1, 1, 0, 0, 0},   {1, 1, 3, 5, 1, 1, 1},    {1, 3, 5, 7, 0, 1, 1},  {5, 1, 4, 17, 0, 0, 0},
    {4, 3, 6, 16, 1, 1, 0},  {6, 4, 10, 33, 1, 0, 1},  {3, 2, 1, 2, 1, 1, 1},  {9, 5, 12, 40, 0, 1, 1},
    {12, 32, 48, 150, 1, 1, 1}, /* B*H = 4800: gate kernels run in parallel, and the time loops in one
                                   parallel region (src/ops/lstm.c, fused_threads: 2 threads of 80
                                   and 70 units) */
    {5, 8, 24, 600, 0, 1, 0},   /* the same with 304 and 296 units a thread, the first in two
                                   gate-kernel chunks; no h0: step 0 has no recurrent product */
};

typedef struct lstm_bufs {
    float *x, *h0, *c0, *w_ih, *w_hh, *b_ih, *b_hh;          /* inputs */
    float *y, *hT, *cT, *saved;                             /* forward outputs */
    float *dy, *dhT, *dcT;                                  /* upstream gradients */
    float *dx, *dh0, *dc0, *dw_ih, *dw_hh, *db_ih, *db_hh;  /* gradients */
} lstm_bufs;

typedef struct lstm_sizes {
    size_t x, bh, wih, whh, b4, y, saved;
} lstm_sizes;

static lstm_sizes sizes_of(const fg_lstm_desc *d) {
    lstm_sizes s;
    s.x = (size_t)(d->T * d->B * d->I);
    s.bh = (size_t)(d->B * d->H);
    s.wih = (size_t)(4 * d->H * d->I);
    s.whh = (size_t)(4 * d->H * d->H);
    s.b4 = (size_t)(4 * d->H);
    s.y = (size_t)(d->T * d->B * d->H);
    s.saved = fg_lstm_saved_bytes(d) / sizeof(float);
    return s;
}

static void bufs_alloc(lstm_bufs *b, const lstm_sizes *s) {
    b->x = fg_alloc_guarded(s->x), b->h0 = fg_alloc_guarded(s->bh), b->c0 = fg_alloc_guarded(s->bh);
    b->w_ih = fg_alloc_guarded(s->wih), b->w_hh = fg_alloc_guarded(s->whh);
    b->b_ih = fg_alloc_guarded(s->b4), b->b_hh = fg_alloc_guarded(s->b4);
    b->y = fg_alloc_guarded(s->y), b->hT = fg_alloc_guarded(s->bh), b->cT = fg_alloc_guarded(s->bh);
    b->saved = fg_alloc_guarded(s->saved);
    b->dy = fg_alloc_guarded(s->y), b->dhT = fg_alloc_guarded(s->bh), b->dcT = fg_alloc_guarded(s->bh);
    b->dx = fg_alloc_guarded(s->x), b->dh0 = fg_alloc_guarded(s->bh), b->dc0 = fg_alloc_guarded(s->bh);
    b->dw_ih = fg_alloc_guarded(s->wih), b->dw_hh = fg_alloc_guarded(s->whh);
    b->db_ih = fg_alloc_guarded(s->b4), b->db_hh = fg_alloc_guarded(s->b4);
}

static void bufs_free(lstm_bufs *b) {
    free(b->x), free(b->h0), free(b->c0), free(b->w_ih), free(b->w_hh), free(b->b_ih), free(b->b_hh);
    free(b->y), free(b->hT), free(b->cT), free(b->saved), free(b->dy), free(b->dhT), free(b->dcT);
    free(b->dx), free(b->dh0), free(b->dc0), free(b->dw_ih), free(b->dw_hh), free(b->db_ih), free(b->db_hh);
}

static void bufs_check_guards(const char *what, const lstm_bufs *b, const lstm_sizes *s) {
    fg_check_guard(what, b->y, s->y), fg_check_guard(what, b->hT, s->bh), fg_check_guard(what, b->cT, s->bh);
    fg_check_guard(what, b->saved, s->saved);
    fg_check_guard(what, b->dx, s->x), fg_check_guard(what, b->dh0, s->bh), fg_check_guard(what, b->dc0, s->bh);
    fg_check_guard(what, b->dw_ih, s->wih), fg_check_guard(what, b->dw_hh, s->whh);
    fg_check_guard(what, b->db_ih, s->b4), fg_check_guard(what, b->db_hh, s->b4);
}

typedef fg_status (*lstm_fwd_fn)(float *, float *, float *, float *, const float *, const float *, const float *,
                                 const float *, const float *, const float *, const float *, const fg_lstm_desc *,
                                 void *, size_t);
typedef fg_status (*lstm_bwd_fn)(float *, float *, float *, float *, float *, float *, float *, const float *,
                                 const float *, const float *, const float *, const float *, const float *,
                                 const float *, const float *, const float *, const float *, const fg_lstm_desc *,
                                 void *, size_t);

/* Runs forward, then backward into zeroed parameter gradients, with the optional inputs and
 * upstream gradients per the flags. */
static void run_pair(lstm_fwd_fn fwd, lstm_bwd_fn bwd, lstm_bufs *b, const lstm_sizes *s, const lstm_shape *sh,
                     const fg_lstm_desc *d, void *ws, size_t ws_bytes, int up_mask) {
    const float *h0 = sh->has_h0 ? b->h0 : NULL, *c0 = sh->has_h0 ? b->c0 : NULL;
    CHECK_OK(fwd(b->y, b->hT, b->cT, b->saved, b->x, h0, c0, b->w_ih, b->w_hh, sh->has_bih ? b->b_ih : NULL,
                 sh->has_bhh ? b->b_hh : NULL, d, ws, ws_bytes));
    fg_fill_const(b->dx, s->x, 777.0f), fg_fill_const(b->dh0, s->bh, 777.0f), fg_fill_const(b->dc0, s->bh, 777.0f);
    memset(b->dw_ih, 0, s->wih * sizeof(float)), memset(b->dw_hh, 0, s->whh * sizeof(float));
    memset(b->db_ih, 0, s->b4 * sizeof(float)), memset(b->db_hh, 0, s->b4 * sizeof(float));
    CHECK_OK(bwd(b->dx, b->dh0, b->dc0, b->dw_ih, b->dw_hh, b->db_ih, b->db_hh, up_mask & 1 ? b->dy : NULL,
                 up_mask & 2 ? b->dhT : NULL, up_mask & 4 ? b->dcT : NULL, b->x, h0, c0, b->w_ih, b->w_hh, b->y,
                 b->saved, d, ws, ws_bytes));
}

static void test_vs_naive(const lstm_shape *sh, fg_rng *rng) {
    const fg_lstm_desc d = {sh->T, sh->B, sh->I, sh->H};
    const lstm_sizes s = sizes_of(&d);
    const size_t ws_bytes = fg_lstm_workspace_bytes(&d);
    void *ws = malloc(ws_bytes);
    char what[200];
#define WHAT(str) (snprintf(what, sizeof what, "lstm %s [T %lld B %lld I %lld H %lld%s%s%s]", str, (long long)d.T, \
                            (long long)d.B, (long long)d.I, (long long)d.H, sh->has_h0 ? " h0c0" : "",           \
                            sh->has_bih ? " b_ih" : "", sh->has_bhh ? " b_hh" : ""), what)
    lstm_bufs f, n;
    bufs_alloc(&f, &s);
    bufs_alloc(&n, &s);
    const float k = 1.0f / sqrtf((float)d.H); /* torch's init range */
    fg_fill_uniform(f.x, s.x, -1, 1, rng);
    fg_fill_uniform(f.h0, s.bh, -1, 1, rng);
    fg_fill_uniform(f.c0, s.bh, -2, 2, rng);
    fg_fill_uniform(f.w_ih, s.wih, -k, k, rng);
    fg_fill_uniform(f.w_hh, s.whh, -k, k, rng);
    fg_fill_uniform(f.b_ih, s.b4, -k, k, rng);
    fg_fill_uniform(f.b_hh, s.b4, -k, k, rng);
    fg_fill_uniform(f.dy, s.y, -1, 1, rng);
    fg_fill_uniform(f.dhT, s.bh, -1, 1, rng);
    fg_fill_uniform(f.dcT, s.bh, -1, 1, rng);
    memcpy(n.x, f.x, s.x * sizeof(float)), memcpy(n.h0, f.h0, s.bh * sizeof(float));
    memcpy(n.c0, f.c0, s.bh * sizeof(float)), memcpy(n.w_ih, f.w_ih, s.wih * sizeof(float));
    memcpy(n.w_hh, f.w_hh, s.whh * sizeof(float)), memcpy(n.b_ih, f.b_ih, s.b4 * sizeof(float));
    memcpy(n.b_hh, f.b_hh, s.b4 * sizeof(float)), memcpy(n.dy, f.dy, s.y * sizeof(float));
    memcpy(n.dhT, f.dhT, s.bh * sizeof(float)), memcpy(n.dcT, f.dcT, s.bh * sizeof(float));
    fg_fill_const(f.y, s.y, 777.0f), fg_fill_const(f.saved, s.saved, 777.0f);

    const double TB = (double)(d.T * d.B), fan_y = (double)(d.I + d.H) * 2;
    /* every upstream combination: all present (7), only dy (1), only dhT, dcT (6), none (0) */
    const int up_masks[] = {7, 1, 6, 0};
    for (size_t um = 0; um < sizeof up_masks / sizeof up_masks[0]; um++) {
        const int up = up_masks[um];
        run_pair(fg_lstm_forward, fg_lstm_backward, &f, &s, sh, &d, ws, ws_bytes, up);
        run_pair(fg_lstm_forward_naive, fg_lstm_backward_naive, &n, &s, sh, &d, ws, ws_bytes, up);
        char tag[64];
        if (um == 0) {
            fg_check_close(WHAT("forward y"), f.y, n.y, s.y, RTOL, fg_atol_for(fan_y));
            fg_check_close(WHAT("forward hT"), f.hT, n.hT, s.bh, RTOL, fg_atol_for(fan_y));
            fg_check_close(WHAT("forward cT"), f.cT, n.cT, s.bh, RTOL, fg_atol_for(fan_y * (double)d.T));
            fg_check_close(WHAT("forward saved (gates, cells)"), f.saved, n.saved, s.saved, RTOL,
                           fg_atol_for(fan_y * (double)d.T));
            /* hT and cT are the last step of y and of the saved cells */
            fg_check_equal(WHAT("hT == y[T-1]"), f.hT, f.y + (d.T - 1) * d.B * d.H, s.bh);
            fg_check_equal(WHAT("cT == cells[T-1]"), f.cT, f.saved + s.saved - s.bh, s.bh);
        }
        const float ag = fg_atol_for(4.0 * (double)(d.H + d.I) * (double)d.T);
        snprintf(tag, sizeof tag, "backward (upstream mask %d) dx", up);
        fg_check_close(WHAT(tag), f.dx, n.dx, s.x, RTOL, ag);
        snprintf(tag, sizeof tag, "backward (upstream mask %d) dh0", up);
        fg_check_close(WHAT(tag), f.dh0, n.dh0, s.bh, RTOL, ag);
        snprintf(tag, sizeof tag, "backward (upstream mask %d) dc0", up);
        fg_check_close(WHAT(tag), f.dc0, n.dc0, s.bh, RTOL, ag);
        snprintf(tag, sizeof tag, "backward (upstream mask %d) dw_ih", up);
        fg_check_close(WHAT(tag), f.dw_ih, n.dw_ih, s.wih, RTOL, fg_atol_for(TB) * 4);
        snprintf(tag, sizeof tag, "backward (upstream mask %d) dw_hh", up);
        fg_check_close(WHAT(tag), f.dw_hh, n.dw_hh, s.whh, RTOL, fg_atol_for(TB) * 4);
        snprintf(tag, sizeof tag, "backward (upstream mask %d) db_ih", up);
        fg_check_close(WHAT(tag), f.db_ih, n.db_ih, s.b4, RTOL, fg_atol_for(TB) * 4);
        snprintf(tag, sizeof tag, "backward (upstream mask %d) db_hh", up);
        fg_check_close(WHAT(tag), f.db_hh, n.db_hh, s.b4, RTOL, fg_atol_for(TB) * 4);
        if (up == 0) { /* no upstream gradient at all: every gradient is zero */
            CHECK(fg_all_equal_to(f.dx, s.x, 0.0f) && fg_all_equal_to(f.dw_hh, s.whh, 0.0f));
        }
        bufs_check_guards(WHAT("guards"), &f, &s);
        bufs_check_guards(WHAT("guards (naive)"), &n, &s);
    }

    /* forward with hT, cT NULL gives the same y */
    {
        float *y2 = fg_alloc_guarded(s.y), *saved2 = fg_alloc_guarded(s.saved);
        CHECK_OK(fg_lstm_forward(y2, NULL, NULL, saved2, f.x, sh->has_h0 ? f.h0 : NULL, sh->has_h0 ? f.c0 : NULL,
                                 f.w_ih, f.w_hh, sh->has_bih ? f.b_ih : NULL, sh->has_bhh ? f.b_hh : NULL, &d, ws,
                                 ws_bytes));
        run_pair(fg_lstm_forward, fg_lstm_backward, &f, &s, sh, &d, ws, ws_bytes, 7);
        fg_check_equal(WHAT("forward y (hT, cT NULL)"), y2, f.y, s.y);
        fg_check_equal(WHAT("forward saved (hT, cT NULL)"), saved2, f.saved, s.saved);
        fg_check_guard(what, y2, s.y), fg_check_guard(what, saved2, s.saved);
        free(y2), free(saved2);
    }

    /* state: f holds the full backward (upstream 7) of the fast kernels as the reference */
    const float *h0 = sh->has_h0 ? f.h0 : NULL, *c0 = sh->has_h0 ? f.c0 : NULL;
    const size_t gsz[7] = {s.x, s.bh, s.bh, s.wih, s.whh, s.b4, s.b4};
    float *ref[7] = {f.dx, f.dh0, f.dc0, f.dw_ih, f.dw_hh, f.db_ih, f.db_hh};
    static const char *gname[7] = {"dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh"};
    float *out[7], *pre[7];
    for (int j = 0; j < 7; j++) out[j] = fg_alloc_guarded(gsz[j]), pre[j] = fg_alloc_guarded(gsz[j]);

    /* accumulation: parameter gradients prefilled, two calls add twice; input gradients written */
    for (int j = 0; j < 7; j++) {
        fg_fill_uniform(pre[j], gsz[j], -1, 1, rng);
        memcpy(out[j], pre[j], gsz[j] * sizeof(float));
    }
    for (int call = 1; call <= 2; call++) {
        CHECK_OK(fg_lstm_backward(out[0], out[1], out[2], out[3], out[4], out[5], out[6], f.dy, f.dhT, f.dcT, f.x,
                                  h0, c0, f.w_ih, f.w_hh, f.y, f.saved, &d, ws, ws_bytes));
        for (int j = 0; j < 7; j++) {
            float *want = malloc(gsz[j] * sizeof(float));
            for (size_t i = 0; i < gsz[j]; i++) want[i] = j < 3 ? ref[j][i] : pre[j][i] + (float)call * ref[j][i];
            char tag[64];
            snprintf(tag, sizeof tag, "%s %s (call %d)", gname[j], j < 3 ? "written" : "accumulated", call);
            fg_check_close(WHAT(tag), out[j], want, gsz[j], RTOL, j < 3 ? 1e-6f : 1e-5f * (float)call);
            fg_check_guard(what, out[j], gsz[j]);
            free(want);
        }
    }
    /* the naive backward accumulates too */
    for (int j = 3; j < 7; j++) memcpy(out[j], pre[j], gsz[j] * sizeof(float));
    CHECK_OK(fg_lstm_backward_naive(NULL, NULL, NULL, out[3], out[4], out[5], out[6], f.dy, f.dhT, f.dcT, f.x, h0,
                                    c0, f.w_ih, f.w_hh, f.y, f.saved, &d, ws, ws_bytes));
    for (int j = 3; j < 7; j++) {
        float *want = malloc(gsz[j] * sizeof(float));
        for (size_t i = 0; i < gsz[j]; i++) want[i] = pre[j][i] + ref[j][i];
        char tag[64];
        snprintf(tag, sizeof tag, "naive %s accumulated", gname[j]);
        fg_check_close(WHAT(tag), out[j], want, gsz[j], RTOL, fg_atol_for(TB) * 4);
        free(want);
    }

    /* every gradient output NULL but one: that one matches, the rest is not touched */
    for (int only = 0; only < 7; only++) {
        float *p[7] = {NULL};
        for (int j = 0; j < 7; j++) fg_fill_const(out[j], gsz[j], only == j && j < 3 ? 777.0f : 0.0f);
        p[only] = out[only];
        CHECK_OK(fg_lstm_backward(p[0], p[1], p[2], p[3], p[4], p[5], p[6], f.dy, f.dhT, f.dcT, f.x, h0, c0, f.w_ih,
                                  f.w_hh, f.y, f.saved, &d, ws, ws_bytes));
        char tag[64];
        snprintf(tag, sizeof tag, "only %s wanted", gname[only]);
        fg_check_close(WHAT(tag), out[only], ref[only], gsz[only], RTOL, 1e-6f);
        for (int j = 0; j < 7; j++)
            if (j != only && !fg_all_equal_to(out[j], gsz[j], 0.0f)) {
                fprintf(stderr, "  %s: %s written although NULL was passed for it\n", WHAT(tag), gname[j]);
                fg_test_failures++;
            }
        fg_check_guard(what, out[only], gsz[only]);
    }
#undef WHAT
    for (int j = 0; j < 7; j++) free(out[j]), free(pre[j]);
    bufs_free(&f);
    bufs_free(&n);
    free(ws);
}

/* ---------------------------------------------------------------- finite differences */

typedef struct gctx {
    fg_lstm_desc d;
    float *x, *h0, *c0, *w_ih, *w_hh, *b_ih, *b_hh; /* h0/c0/b_* NULL when not used */
    float *y, *hT, *cT, *saved;
    const float *r, *r2, *r3; /* NULL = that term is not in the loss */
    void *ws;
    size_t ws_bytes;
} gctx;

static double gloss(void *user) {
    gctx *c = user;
    CHECK_OK(fg_lstm_forward(c->y, c->hT, c->cT, c->saved, c->x, c->h0, c->c0, c->w_ih, c->w_hh, c->b_ih, c->b_hh,
                             &c->d, c->ws, c->ws_bytes));
    const size_t ny = (size_t)(c->d.T * c->d.B * c->d.H), nbh = (size_t)(c->d.B * c->d.H);
    double l = 0;
    if (c->r)
        for (size_t i = 0; i < ny; i++) l += (double)c->y[i] * c->r[i];
    if (c->r2)
        for (size_t i = 0; i < nbh; i++) l += (double)c->hT[i] * c->r2[i];
    if (c->r3)
        for (size_t i = 0; i < nbh; i++) l += (double)c->cT[i] * c->r3[i];
    return l;
}

static void gradcheck_case(const char *name, int has_h0, int has_bih, int has_bhh, int up_mask, fg_rng *rng) {
    enum { T = 3, B = 2, I = 3, H = 4 };
    float x[T * B * I], h0[B * H], c0[B * H], w_ih[4 * H * I], w_hh[4 * H * H], b_ih[4 * H], b_hh[4 * H];
    float y[T * B * H], hT[B * H], cT[B * H], r[T * B * H], r2[B * H], r3[B * H];
    float dx[T * B * I], dh0[B * H], dc0[B * H], dw_ih[4 * H * I], dw_hh[4 * H * H], db_ih[4 * H], db_hh[4 * H];
    gctx c = {.d = {T, B, I, H}};
    float saved[5 * T * B * H];
    c.ws_bytes = fg_lstm_workspace_bytes(&c.d);
    c.ws = malloc(c.ws_bytes);
    fg_fill_uniform(x, T * B * I, -1, 1, rng);
    fg_fill_uniform(h0, B * H, -1, 1, rng);
    fg_fill_uniform(c0, B * H, -1, 1, rng);
    fg_fill_uniform(w_ih, 4 * H * I, -0.8f, 0.8f, rng);
    fg_fill_uniform(w_hh, 4 * H * H, -0.8f, 0.8f, rng);
    fg_fill_uniform(b_ih, 4 * H, -0.5f, 0.5f, rng);
    fg_fill_uniform(b_hh, 4 * H, -0.5f, 0.5f, rng);
    fg_fill_uniform(r, T * B * H, -1, 1, rng);
    fg_fill_uniform(r2, B * H, -1, 1, rng);
    fg_fill_uniform(r3, B * H, -1, 1, rng);
    c.x = x, c.w_ih = w_ih, c.w_hh = w_hh;
    c.h0 = has_h0 ? h0 : NULL, c.c0 = has_h0 ? c0 : NULL;
    c.b_ih = has_bih ? b_ih : NULL, c.b_hh = has_bhh ? b_hh : NULL;
    c.y = y, c.hT = hT, c.cT = cT, c.saved = saved;
    c.r = up_mask & 1 ? r : NULL, c.r2 = up_mask & 2 ? r2 : NULL, c.r3 = up_mask & 4 ? r3 : NULL;

    gloss(&c);
    memset(dw_ih, 0, sizeof dw_ih), memset(dw_hh, 0, sizeof dw_hh);
    memset(db_ih, 0, sizeof db_ih), memset(db_hh, 0, sizeof db_hh);
    CHECK_OK(fg_lstm_backward(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, c.r, c.r2, c.r3, x, c.h0, c.c0, w_ih, w_hh, y,
                              saved, &c.d, c.ws, c.ws_bytes));
    float *xs[7] = {x, h0, c0, w_ih, w_hh, b_ih, b_hh};
    float *gs[7] = {dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh};
    const size_t ns[7] = {T * B * I, B * H, B * H, 4 * H * I, 4 * H * H, 4 * H, 4 * H};
    static const char *names[7] = {"x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"};
    const int used[7] = {1, has_h0, has_h0, 1, 1, has_bih, has_bhh};
    char what[128];
    for (int j = 0; j < 7; j++) {
        if (!used[j]) continue;
        snprintf(what, sizeof what, "gradcheck lstm %s: d loss / d %s", name, names[j]);
        fg_check_grad(what, xs[j], gs[j], ns[j], gloss, &c, ns[j], 1e-2f, 1e-2f, 1e-3f, rng);
    }
    free(c.ws);
}

static void test_gradcheck(fg_rng *rng) {
    gradcheck_case("(h0 c0, both biases, y hT cT in the loss)", 1, 1, 1, 7, rng);
    gradcheck_case("(zero state, b_ih only, y in the loss)", 0, 1, 0, 1, rng);
    gradcheck_case("(h0 c0, b_hh only, hT cT in the loss)", 1, 0, 1, 6, rng);
}

/* ---------------------------------------------------------------- PyTorch fixtures */

static const float *fx(fg_fixture *f, const char *prefix, const char *name, size_t numel) {
    char key[96];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    return fg_fixture_get(f, key, numel);
}

static void test_fixtures(fg_fixture *f) {
    char p[32], key[64], what[160];
    int ncases = 0;
    for (int c = 0;; c++) {
        snprintf(p, sizeof p, "lstm%d.", c);
        snprintf(key, sizeof key, "%sparams", p);
        if (!fg_fixture_has(f, key)) break;
        ncases++;
        const float *pr = fg_fixture_get(f, key, 6);
        const fg_lstm_desc d = {(int64_t)pr[0], (int64_t)pr[1], (int64_t)pr[2], (int64_t)pr[3]};
        const int has_h0 = pr[4] != 0, has_bias = pr[5] != 0;
        const lstm_sizes s = sizes_of(&d);
        const float *x = fx(f, p, "x", s.x), *w_ih = fx(f, p, "w_ih", s.wih), *w_hh = fx(f, p, "w_hh", s.whh);
        const float *h0 = has_h0 ? fx(f, p, "h0", s.bh) : NULL, *c0 = has_h0 ? fx(f, p, "c0", s.bh) : NULL;
        const float *b_ih = has_bias ? fx(f, p, "b_ih", s.b4) : NULL, *b_hh = has_bias ? fx(f, p, "b_hh", s.b4) : NULL;
        const float *dy = fx(f, p, "dy", s.y), *dhT = fx(f, p, "dhT", s.bh), *dcT = fx(f, p, "dcT", s.bh);
        const size_t ws_bytes = fg_lstm_workspace_bytes(&d);
        void *ws = malloc(ws_bytes);
        float *y = fg_alloc_guarded(s.y), *hT = fg_alloc_guarded(s.bh), *cT = fg_alloc_guarded(s.bh);
        float *saved = fg_alloc_guarded(s.saved);
        float *g[7];
        const size_t gsz[7] = {s.x, s.bh, s.bh, s.wih, s.whh, s.b4, s.b4};
        static const char *gname[7] = {"dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh"};
        for (int j = 0; j < 7; j++) g[j] = fg_alloc_guarded(gsz[j]);
        for (int naive = 0; naive <= 1; naive++) {
            const char *kind = naive ? "naive" : "fast";
#define FWHAT(n) (snprintf(what, sizeof what, "torch lstm%d (%s) %s [T %lld B %lld I %lld H %lld%s%s]", c, kind, n, \
                           (long long)d.T, (long long)d.B, (long long)d.I, (long long)d.H, has_h0 ? " h0c0" : "",     \
                           has_bias ? " bias" : ""), what)
            lstm_fwd_fn fwd = naive ? fg_lstm_forward_naive : fg_lstm_forward;
            lstm_bwd_fn bwd = naive ? fg_lstm_backward_naive : fg_lstm_backward;
            CHECK_OK(fwd(y, hT, cT, saved, x, h0, c0, w_ih, w_hh, b_ih, b_hh, &d, ws, ws_bytes));
            fg_check_close(FWHAT("y"), y, fx(f, p, "y", s.y), s.y, FX_RTOL, FX_ATOL);
            fg_check_close(FWHAT("hT"), hT, fx(f, p, "hT", s.bh), s.bh, FX_RTOL, FX_ATOL);
            fg_check_close(FWHAT("cT"), cT, fx(f, p, "cT", s.bh), s.bh, FX_RTOL, FX_ATOL);
            for (int j = 0; j < 7; j++) fg_fill_const(g[j], gsz[j], j < 3 ? 777.0f : 0.0f);
            /* h0 = NULL (zero state) still yields the gradient with respect to it */
            CHECK_OK(bwd(g[0], g[1], g[2], g[3], g[4], has_bias ? g[5] : NULL, has_bias ? g[6] : NULL, dy, dhT, dcT,
                         x, h0, c0, w_ih, w_hh, y, saved, &d, ws, ws_bytes));
            for (int j = 0; j < 7; j++) {
                fg_check_close(FWHAT(gname[j]), g[j], fx(f, p, gname[j], gsz[j]), gsz[j], FX_RTOL, FX_ATOL);
                fg_check_guard(what, g[j], gsz[j]);
            }
            fg_check_guard(what, y, s.y), fg_check_guard(what, hT, s.bh), fg_check_guard(what, cT, s.bh);
            fg_check_guard(what, saved, s.saved);
#undef FWHAT
        }
        for (int j = 0; j < 7; j++) free(g[j]);
        free(y), free(hT), free(cT), free(saved), free(ws);
    }
    if (ncases < 3) {
        fprintf(stderr, "  lstm.bin holds %d cases, expected 3\n", ncases);
        fg_test_failures++;
    }
}

/* ---------------------------------------------------------------- structured sparse backward */

/* One problem with random inputs and a forward already run; gradients go to g[7] (all wanted). */
typedef struct sp_case {
    fg_lstm_desc d;
    lstm_sizes s;
    lstm_bufs b;
    float *g[7]; /* dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh */
    size_t gsz[7];
} sp_case;

static const char *const SP_GNAME[7] = {"dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh"};

static void sp_case_init(sp_case *c, int64_t T, int64_t B, int64_t I, int64_t H, fg_rng *rng) {
    c->d = (fg_lstm_desc){T, B, I, H};
    c->s = sizes_of(&c->d);
    bufs_alloc(&c->b, &c->s);
    const lstm_sizes *s = &c->s;
    const float k = 1.0f / sqrtf((float)H);
    fg_fill_uniform(c->b.x, s->x, -1, 1, rng), fg_fill_uniform(c->b.h0, s->bh, -1, 1, rng);
    fg_fill_uniform(c->b.c0, s->bh, -2, 2, rng), fg_fill_uniform(c->b.w_ih, s->wih, -k, k, rng);
    fg_fill_uniform(c->b.w_hh, s->whh, -k, k, rng), fg_fill_uniform(c->b.b_ih, s->b4, -k, k, rng);
    fg_fill_uniform(c->b.b_hh, s->b4, -k, k, rng), fg_fill_uniform(c->b.dy, s->y, -1, 1, rng);
    fg_fill_uniform(c->b.dhT, s->bh, -1, 1, rng), fg_fill_uniform(c->b.dcT, s->bh, -1, 1, rng);
    const size_t gsz[7] = {s->x, s->bh, s->bh, s->wih, s->whh, s->b4, s->b4};
    for (int j = 0; j < 7; j++) c->gsz[j] = gsz[j], c->g[j] = fg_alloc_guarded(gsz[j]);
    void *ws = malloc(fg_lstm_workspace_bytes(&c->d));
    CHECK_OK(fg_lstm_forward(c->b.y, c->b.hT, c->b.cT, c->b.saved, c->b.x, c->b.h0, c->b.c0, c->b.w_ih, c->b.w_hh,
                             c->b.b_ih, c->b.b_hh, &c->d, ws, fg_lstm_workspace_bytes(&c->d)));
    free(ws);
}

static void sp_case_free(sp_case *c) {
    bufs_free(&c->b);
    for (int j = 0; j < 7; j++) free(c->g[j]);
}

/* Input gradients over garbage, parameter gradients prefilled with `pre` (NULL = zeros). */
static void sp_reset(sp_case *c, float *const *pre) {
    for (int j = 0; j < 7; j++) {
        if (j < 3) fg_fill_const(c->g[j], c->gsz[j], 777.0f);
        else if (pre) memcpy(c->g[j], pre[j], c->gsz[j] * sizeof(float));
        else memset(c->g[j], 0, c->gsz[j] * sizeof(float));
    }
}

typedef fg_status (*lstm_sbwd_fn)(float *, float *, float *, float *, float *, float *, float *, const float *,
                                  const float *, const float *, const float *, const float *, const float *,
                                  const float *, const float *, const float *, const float *, const fg_lstm_desc *,
                                  void *, size_t, const fg_lstm_sparsity *, fg_lstm_sparse_stats *);

static fg_status sp_run(lstm_sbwd_fn fn, sp_case *c, const fg_lstm_sparsity *sp, fg_lstm_sparse_stats *st, void *ws,
                        size_t ws_bytes) {
    return fn(c->g[0], c->g[1], c->g[2], c->g[3], c->g[4], c->g[5], c->g[6], c->b.dy, c->b.dhT, c->b.dcT, c->b.x,
              c->b.h0, c->b.c0, c->b.w_ih, c->b.w_hh, c->b.y, c->b.saved, &c->d, ws, ws_bytes, sp, st);
}

/* Bad sparsity arguments are rejected with a message naming the field; sizes are 0 for them. */
static void test_sparse_args(void) {
    const fg_lstm_desc d = {3, 2, 5, 8};
    const struct {
        float drop;
        int64_t block;
        const char *field;
    } bad[] = {{-0.1f, 4, "drop"}, {1.0f, 4, "drop"}, {1.5f, 4, "drop"}, {NAN, 4, "drop"},
               {0.5f, 0, "block"}, {0.5f, -3, "block"}, {0.5f, 9, "block"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const fg_lstm_sparsity sp = {.drop = bad[i].drop, .block = bad[i].block};
        fg_clear_error();
        fg_status st = fg_lstm_sparsity_check(&d, &sp);
        char want[32];
        snprintf(want, sizeof want, "%s = ", bad[i].field);
        if (st != FG_ERR_INVALID || !strstr(fg_last_error(), want)) {
            fprintf(stderr, "  sparsity drop %g block %lld: status %s, message \"%s\"; expected %s naming '%s'\n",
                    (double)bad[i].drop, (long long)bad[i].block, fg_status_name(st), fg_last_error(),
                    fg_status_name(FG_ERR_INVALID), bad[i].field);
            fg_test_failures++;
        }
        CHECK(fg_lstm_sparse_workspace_bytes(&d, &sp) == 0);
        /* the kernels refuse it before touching anything */
        float buf[8] = {0};
        CHECK_STATUS(fg_lstm_backward_sparse(buf, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, buf, NULL,
                                             NULL, buf, buf, buf, buf, &d, buf, 1 << 30, &sp, NULL),
                     FG_ERR_INVALID);
        CHECK_STATUS(fg_lstm_backward_sparse_naive(buf, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, buf, NULL,
                                                   NULL, buf, buf, buf, buf, &d, buf, 1 << 30, &sp, NULL),
                     FG_ERR_INVALID);
    }
    CHECK_STATUS(fg_lstm_sparsity_check(&d, NULL), FG_ERR_INVALID);
    const fg_lstm_desc badd = {3, 2, 0, 8};
    const fg_lstm_sparsity ok = {.drop = 0.5f, .block = 2};
    CHECK_STATUS(fg_lstm_sparsity_check(&badd, &ok), FG_ERR_SHAPE);
    CHECK_OK(fg_lstm_sparsity_check(&d, &ok));
    /* no block dropped: the dense workspace; else more */
    const fg_lstm_sparsity none = {.drop = 0.0f, .block = 2}, one_block = {.drop = 0.9f, .block = 8};
    CHECK(fg_lstm_sparse_workspace_bytes(&d, &none) == fg_lstm_workspace_bytes(&d));
    CHECK(fg_lstm_sparse_workspace_bytes(&d, &one_block) == fg_lstm_workspace_bytes(&d));
    CHECK(fg_lstm_sparse_workspace_bytes(&d, &ok) > fg_lstm_workspace_bytes(&d));
    /* too small a workspace */
    const size_t need = fg_lstm_sparse_workspace_bytes(&d, &ok);
    void *ws = malloc(need);
    float *buf = calloc(4096, sizeof(float));
    CHECK_STATUS(fg_lstm_backward_sparse(buf, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, buf + 2048, NULL,
                                         NULL, buf + 2048, buf + 2048, buf, buf + 1024, &d, ws, need - 1, &ok, NULL),
                 FG_ERR_INVALID);
    CHECK(strstr(fg_last_error(), "fg_lstm_sparse_workspace_bytes") != NULL);
    free(ws), free(buf);
}

/* drop = 0 (and a drop too small to remove one block) runs the dense code: bit-identical to
 * fg_lstm_backward, parameter gradients accumulated on prefilled buffers. */
static void test_sparse_dense_identical(fg_rng *rng) {
    static const int64_t shapes[][4] = {{5, 3, 6, 16}, {6, 4, 10, 33}, {12, 32, 48, 150}, {4, 8, 16, 600}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        sp_case c;
        sp_case_init(&c, shapes[si][0], shapes[si][1], shapes[si][2], shapes[si][3], rng);
        const int64_t H = c.d.H;
        float *pre[7] = {NULL}, *ref[7];
        for (int j = 0; j < 7; j++) {
            pre[j] = malloc(c.gsz[j] * sizeof(float)), ref[j] = malloc(c.gsz[j] * sizeof(float));
            fg_fill_uniform(pre[j], c.gsz[j], -1, 1, rng);
        }
        const size_t dws = fg_lstm_workspace_bytes(&c.d);
        void *ws = malloc(dws);
        sp_reset(&c, pre);
        CHECK_OK(fg_lstm_backward(c.g[0], c.g[1], c.g[2], c.g[3], c.g[4], c.g[5], c.g[6], c.b.dy, c.b.dhT, c.b.dcT,
                                  c.b.x, c.b.h0, c.b.c0, c.b.w_ih, c.b.w_hh, c.b.y, c.b.saved, &c.d, ws, dws));
        for (int j = 0; j < 7; j++) memcpy(ref[j], c.g[j], c.gsz[j] * sizeof(float));
        /* the last two drop nothing: one block; two blocks and round(0.2 * 2) = 0 */
        const fg_lstm_sparsity sps[] = {{.drop = 0.0f, .block = 1}, {.drop = 0.0f, .block = 4}, {.drop = 0.0f, .block = H}, {.drop = 0.9f, .block = H}, {.drop = 0.2f, .block = (H + 1) / 2}};
        for (size_t k = 0; k < sizeof sps / sizeof sps[0]; k++) {
            const size_t need = fg_lstm_sparse_workspace_bytes(&c.d, &sps[k]);
            CHECK(need == dws);
            sp_reset(&c, pre);
            uint8_t *keep = malloc((size_t)(c.d.T * H));
            fg_lstm_sparse_stats st = {.keep = keep};
            CHECK_OK(sp_run(fg_lstm_backward_sparse, &c, &sps[k], &st, ws, dws));
            char what[160];
            for (int j = 0; j < 7; j++) {
                snprintf(what, sizeof what, "sparse drop %g block %lld == dense [T %lld B %lld I %lld H %lld] %s",
                         (double)sps[k].drop, (long long)sps[k].block, (long long)c.d.T, (long long)c.d.B,
                         (long long)c.d.I, (long long)H, SP_GNAME[j]);
                fg_check_equal(what, c.g[j], ref[j], c.gsz[j]);
                fg_check_guard(what, c.g[j], c.gsz[j]);
            }
            CHECK(st.dropped == 0 && st.kept_units == c.d.T * H && st.kept_blocks == c.d.T * st.blocks);
            CHECK(st.gemm_flops == st.gemm_flops_dense && st.gemm_flops > 0);
            for (int64_t i = 0; i < c.d.T * st.blocks; i++) CHECK(keep[i] == 1);
            free(keep);
        }
        for (int j = 0; j < 7; j++) free(pre[j]), free(ref[j]);
        free(ws);
        sp_case_free(&c);
    }
}

/* The test's own selection on one step's gate gradients dg (B, 4H): scores in double in the
 * documented order, block q dropped when fewer than ndrop blocks rank below it. */
static void ref_select(uint8_t *keep, const float *dg, int64_t B, int64_t H, int64_t block, int64_t nb, int64_t ndrop) {
    double *sc = malloc((size_t)nb * sizeof(double));
    for (int64_t q = 0; q < nb; q++) {
        double a = 0.0;
        const int64_t j1 = (q + 1) * block < H ? (q + 1) * block : H;
        for (int64_t b = 0; b < B; b++)
            for (int64_t g = 0; g < 4; g++)
                for (int64_t j = q * block; j < j1; j++) a += fabs((double)dg[b * 4 * H + g * H + j]);
        sc[q] = a;
    }
    for (int64_t q = 0; q < nb; q++) {
        int64_t below = 0;
        for (int64_t r = 0; r < nb; r++) below += sc[r] < sc[q] || (sc[r] == sc[q] && r < q);
        keep[q] = below >= ndrop;
    }
    free(sc);
}

static void test_sparse_vs_naive(fg_rng *rng) {
    static const int64_t shapes[][4] = {{1, 3, 5, 7}, {5, 3, 6, 16}, {6, 4, 10, 33}, {12, 32, 48, 150}};
    static const float drops[] = {0.25f, 0.5f, 0.9f};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        sp_case f, n;
        fg_rng r2 = *rng;
        sp_case_init(&f, shapes[si][0], shapes[si][1], shapes[si][2], shapes[si][3], rng);
        sp_case_init(&n, shapes[si][0], shapes[si][1], shapes[si][2], shapes[si][3], &r2); /* same inputs */
        const fg_lstm_desc d = f.d;
        const int64_t T = d.T, B = d.B, H = d.H, G4 = 4 * H;
        /* the dense backward's dG of the last step: the sparse one must keep exactly its top blocks */
        const size_t dws = fg_lstm_workspace_bytes(&d);
        float *dense_ws = malloc(dws);
        sp_reset(&f, NULL);
        CHECK_OK(fg_lstm_backward(f.g[0], f.g[1], f.g[2], f.g[3], f.g[4], f.g[5], f.g[6], f.b.dy, f.b.dhT, f.b.dcT,
                                  f.b.x, f.b.h0, f.b.c0, f.b.w_ih, f.b.w_hh, f.b.y, f.b.saved, &d, dense_ws, dws));
        const float *dg_last = dense_ws + (T - 1) * B * G4;
        const int64_t blocks[] = {1, 4, H};
        for (size_t bi = 0; bi < 3; bi++)
            for (size_t di = 0; di < 3; di++) {
                const fg_lstm_sparsity sp = {.drop = drops[di], .block = blocks[bi]};
                const int64_t nb = (H + sp.block - 1) / sp.block;
                int64_t ndrop = (int64_t)floor((double)sp.drop * (double)nb + 0.5);
                if (ndrop > nb - 1) ndrop = nb - 1;
                const size_t need = fg_lstm_sparse_workspace_bytes(&d, &sp);
                float *ws = malloc(need), *wsn = malloc(need);
                uint8_t *kf = malloc((size_t)(T * nb)), *kn = malloc((size_t)(T * nb)), *kr = malloc((size_t)nb);
                fg_lstm_sparse_stats sf = {.keep = kf}, sn = {.keep = kn};
                sp_reset(&f, NULL), sp_reset(&n, NULL);
                CHECK_OK(sp_run(fg_lstm_backward_sparse, &f, &sp, &sf, ws, need));
                CHECK_OK(sp_run(fg_lstm_backward_sparse_naive, &n, &sp, &sn, wsn, need));
                char what[200];
#define SWHAT(str) (snprintf(what, sizeof what, "sparse drop %g block %lld [T %lld B %lld I %lld H %lld] %s", \
                             (double)sp.drop, (long long)sp.block, (long long)T, (long long)B, (long long)d.I,      \
                             (long long)H, str), what)
                /* every gradient against the naive twin */
                const double TB = (double)(T * B);
                for (int j = 0; j < 7; j++) {
                    const float atol = j < 3 ? fg_atol_for(4.0 * (double)(H + d.I) * (double)T) : fg_atol_for(TB) * 4;
                    fg_check_close(SWHAT(SP_GNAME[j]), f.g[j], n.g[j], f.gsz[j], RTOL, atol);
                    fg_check_guard(what, f.g[j], f.gsz[j]);
                }
                /* the counts */
                if (sf.blocks != nb || sf.dropped != ndrop || sf.kept_blocks != T * (nb - ndrop) || sn.blocks != nb ||
                    sn.dropped != ndrop || sn.kept_blocks != sf.kept_blocks) {
                    fprintf(stderr, "  %s: stats blocks %lld/%lld dropped %lld/%lld kept_blocks %lld/%lld (fast/naive), "
                            "expected %lld, %lld, %lld\n", SWHAT("stats"), (long long)sf.blocks, (long long)sn.blocks,
                            (long long)sf.dropped, (long long)sn.dropped, (long long)sf.kept_blocks,
                            (long long)sn.kept_blocks, (long long)nb, (long long)ndrop, (long long)(T * (nb - ndrop)));
                    fg_test_failures++;
                }
                /* per step: exactly ndrop zeros in keep; the same set as the naive's; the kept units and
                 * the recurrent FLOPs add up; dropped gate columns are zero in the masked dG */
                int64_t units = 0;
                double rec_saved = 0.0;
                int bad_step = 0;
                for (int64_t t = 0; t < T && !bad_step; t++) {
                    int64_t zeros = 0, kunits = 0;
                    for (int64_t q = 0; q < nb; q++) {
                        const int64_t j1 = (q + 1) * sp.block < H ? (q + 1) * sp.block : H;
                        zeros += kf[t * nb + q] == 0;
                        if (kf[t * nb + q]) kunits += j1 - q * sp.block;
                        if (kf[t * nb + q] != kn[t * nb + q]) {
                            fprintf(stderr, "  %s: step %lld block %lld kept by %s only\n", SWHAT("mask"), (long long)t,
                                    (long long)q, kf[t * nb + q] ? "the fast kernel" : "the naive twin");
                            fg_test_failures++, bad_step = 1;
                            break;
                        }
                        for (int64_t b = 0; b < B && !kf[t * nb + q]; b++)
                            for (int64_t g = 0; g < 4; g++)
                                for (int64_t j = q * sp.block; j < j1; j++)
                                    if (ws[(t * B + b) * G4 + g * H + j] != 0.0f && !bad_step) {
                                        fprintf(stderr, "  %s: dG[t %lld, b %lld, col %lld] = %g in dropped block %lld\n",
                                                SWHAT("masked dG"), (long long)t, (long long)b, (long long)(g * H + j),
                                                (double)ws[(t * B + b) * G4 + g * H + j], (long long)q);
                                        fg_test_failures++, bad_step = 1;
                                    }
                    }
                    if (zeros != ndrop) {
                        fprintf(stderr, "  %s: step %lld dropped %lld blocks, expected %lld\n", SWHAT("mask"),
                                (long long)t, (long long)zeros, (long long)ndrop);
                        fg_test_failures++, bad_step = 1;
                    }
                    units += kunits;
                    rec_saved += 2.0 * (double)B * 4.0 * (double)(H - kunits) * (double)H; /* dh0 is wanted */
                }
                if (sf.kept_units != units || sn.kept_units != units) {
                    fprintf(stderr, "  %s: kept_units %lld (fast) %lld (naive), the mask says %lld\n", SWHAT("stats"),
                            (long long)sf.kept_units, (long long)sn.kept_units, (long long)units);
                    fg_test_failures++;
                }
                if (fabs(sf.gemm_flops - (sf.gemm_flops_dense - rec_saved)) > 1e-9 * sf.gemm_flops_dense ||
                    sf.gemm_flops != sn.gemm_flops || sf.gemm_flops_dense != sn.gemm_flops_dense ||
                    (ndrop > 0 && !(sf.gemm_flops < sf.gemm_flops_dense))) {
                    fprintf(stderr, "  %s: gemm_flops %.0f of dense %.0f (fast), %.0f of %.0f (naive), expected %.0f\n",
                            SWHAT("stats"), sf.gemm_flops, sf.gemm_flops_dense, sn.gemm_flops, sn.gemm_flops_dense,
                            sf.gemm_flops_dense - rec_saved);
                    fg_test_failures++;
                }
                /* last step: its dG is computed before any mask acts, so equals the dense one bit for bit;
                 * the kept set must be the test's own selection on it, kept columns untouched */
                ref_select(kr, dg_last, B, H, sp.block, nb, ndrop);
                for (int64_t q = 0; q < nb; q++)
                    if (kr[q] != kf[(T - 1) * nb + q]) {
                        fprintf(stderr, "  %s: last step, block %lld kept %d, the reference selection says %d\n",
                                SWHAT("mask"), (long long)q, kf[(T - 1) * nb + q], kr[q]);
                        fg_test_failures++;
                        break;
                    }
                for (int64_t b = 0; b < B; b++)
                    for (int64_t k = 0; k < G4; k++) {
                        const size_t i = (size_t)((T - 1) * B * G4 + b * G4 + k);
                        const float want = kr[(k % H) / sp.block] ? dense_ws[i] : 0.0f;
                        if (ws[i] != want) {
                            fprintf(stderr, "  %s: last step dG[b %lld, col %lld] = %.9g, expected %.9g\n",
                                    SWHAT("masked dG"), (long long)b, (long long)k, (double)ws[i], (double)want);
                            fg_test_failures++;
                            b = B, k = G4;
                        }
                    }
                /* with something dropped, the gradients differ from the dense ones */
                if (ndrop > 0 && fg_test_failures == 0) {
                    float maxd = 0.0f;
                    for (size_t i = 0; i < f.gsz[4]; i++) maxd = fmaxf(maxd, fabsf(f.g[4][i]));
                    CHECK(maxd > 0.0f);
                }
#undef SWHAT
                free(ws), free(wsn), free(kf), free(kn), free(kr);
            }
        free(dense_ws);
        sp_case_free(&f), sp_case_free(&n);
    }
}

/* ---------------------------------------------------------------- the other variants */

/* Mean |dG| of a dense backward's gate gradients (T*B, 4H): a threshold that zeroes a good part. */
static float mean_abs(const float *dg, size_t n) {
    double a = 0.0;
    for (size_t i = 0; i < n; i++) a += fabs((double)dg[i]);
    return (float)(a / (double)n);
}

/* dense, threshold (tau 0), structured and meprop (drop 0): bit-identical to fg_lstm_backward on
 * prefilled parameter gradients, with the dense workspace; then, with something dropped, every
 * gradient against the naive twin of the same variant, the stats equal to the twin's, and the
 * structural promises: structured keeps one set of blocks at every step (the test's own selection
 * on the dense dG of the last step) and issues the dense GEMM FLOPs times kept/all; meprop keeps
 * exactly 4H - round(drop * 4H) columns per step; threshold reports the fraction it zeroed. */
static void test_variants(fg_rng *rng) {
    static const int64_t shapes[][4] = {{1, 3, 5, 7}, {5, 3, 6, 16}, {6, 4, 10, 33}, {12, 32, 48, 150}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        sp_case f, n;
        fg_rng r2 = *rng;
        sp_case_init(&f, shapes[si][0], shapes[si][1], shapes[si][2], shapes[si][3], rng);
        sp_case_init(&n, shapes[si][0], shapes[si][1], shapes[si][2], shapes[si][3], &r2);
        const fg_lstm_desc d = f.d;
        const int64_t T = d.T, B = d.B, H = d.H, G4 = 4 * H;
        float *pre[7], *ref[7];
        for (int j = 0; j < 7; j++) {
            pre[j] = malloc(f.gsz[j] * sizeof(float)), ref[j] = malloc(f.gsz[j] * sizeof(float));
            fg_fill_uniform(pre[j], f.gsz[j], -1, 1, rng);
        }
        const size_t dws = fg_lstm_workspace_bytes(&d);
        float *dense_ws = malloc(dws);
        sp_reset(&f, NULL);
        CHECK_OK(fg_lstm_backward(f.g[0], f.g[1], f.g[2], f.g[3], f.g[4], f.g[5], f.g[6], f.b.dy, f.b.dhT, f.b.dcT,
                                  f.b.x, f.b.h0, f.b.c0, f.b.w_ih, f.b.w_hh, f.b.y, f.b.saved, &d, dense_ws, dws));
        const float tau = mean_abs(dense_ws, (size_t)(T * B * G4));
        sp_reset(&f, pre);
        float *ws0 = malloc(dws);
        CHECK_OK(fg_lstm_backward(f.g[0], f.g[1], f.g[2], f.g[3], f.g[4], f.g[5], f.g[6], f.b.dy, f.b.dhT, f.b.dcT,
                                  f.b.x, f.b.h0, f.b.c0, f.b.w_ih, f.b.w_hh, f.b.y, f.b.saved, &d, ws0, dws));
        for (int j = 0; j < 7; j++) memcpy(ref[j], f.g[j], f.gsz[j] * sizeof(float));
        char what[200];
        const fg_lstm_bwd vs[] = {FG_LSTM_BWD_DENSE, FG_LSTM_BWD_THRESHOLD, FG_LSTM_BWD_STRUCTURED, FG_LSTM_BWD_MEPROP};
        /* nothing dropped: the dense bits */
        for (size_t vi = 0; vi < 4; vi++) {
            const fg_lstm_sparsity sp = {.drop = vs[vi] == FG_LSTM_BWD_DENSE ? 0.9f : 0.0f, .block = 4 < H ? 4 : H,
                                         .variant = vs[vi], .tau = 0.0f};
            CHECK(fg_lstm_sparse_workspace_bytes(&d, &sp) == dws);
            sp_reset(&f, pre);
            fg_lstm_sparse_stats st = {0};
            CHECK_OK(sp_run(fg_lstm_backward_sparse, &f, &sp, &st, ws0, dws));
            for (int j = 0; j < 7; j++) {
                snprintf(what, sizeof what, "%s with nothing dropped == dense [T %lld B %lld I %lld H %lld] %s",
                         fg_lstm_bwd_name(vs[vi]), (long long)T, (long long)B, (long long)d.I, (long long)H,
                         SP_GNAME[j]);
                fg_check_equal(what, f.g[j], ref[j], f.gsz[j]);
            }
            CHECK(st.gemm_flops == st.gemm_flops_dense && st.kept_cols == T * G4 && st.sparsity == 0.0);
        }
        /* something dropped: against the naive twin */
        const float drops[] = {0.5f, 0.8f};
        for (size_t vi = 1; vi < 4; vi++)
            for (size_t di = 0; di < 2; di++) {
                if (vs[vi] == FG_LSTM_BWD_THRESHOLD && di > 0) continue;
                const int64_t block = H >= 8 ? 4 : 1, nb = (H + block - 1) / block;
                const fg_lstm_sparsity sp = {.drop = drops[di], .block = block, .variant = vs[vi], .tau = tau};
                const size_t need = fg_lstm_sparse_workspace_bytes(&d, &sp);
                float *ws = malloc(need), *wsn = malloc(need);
                uint8_t *kf = malloc((size_t)(T * nb)), *kn = malloc((size_t)(T * nb));
                fg_lstm_sparse_stats sf = {.keep = kf}, sn = {.keep = kn};
                sp_reset(&f, NULL), sp_reset(&n, NULL);
                CHECK_OK(sp_run(fg_lstm_backward_sparse, &f, &sp, &sf, ws, need));
                CHECK_OK(sp_run(fg_lstm_backward_sparse_naive, &n, &sp, &sn, wsn, need));
#define VWHAT(str) (snprintf(what, sizeof what, "%s drop %g tau %g [T %lld B %lld I %lld H %lld] %s",             \
                             fg_lstm_bwd_name(sp.variant), (double)sp.drop, (double)sp.tau, (long long)T,             \
                             (long long)B, (long long)d.I, (long long)H, str), what)
                for (int j = 0; j < 7; j++) {
                    const float atol = j < 3 ? fg_atol_for(4.0 * (double)(H + d.I) * (double)T)
                                             : fg_atol_for((double)(T * B)) * 4;
                    fg_check_close(VWHAT(SP_GNAME[j]), f.g[j], n.g[j], f.gsz[j], RTOL, atol);
                    fg_check_guard(what, f.g[j], f.gsz[j]);
                }
                if (sf.kept_cols != sn.kept_cols || sf.kept_units != sn.kept_units || sf.gemm_flops != sn.gemm_flops ||
                    sf.gemm_flops_dense != sn.gemm_flops_dense || sf.sparsity != sn.sparsity ||
                    sf.dropped != sn.dropped || sf.blocks != sn.blocks || memcmp(kf, kn, (size_t)(T * nb)) != 0) {
                    fprintf(stderr, "  %s: fast/naive kept_cols %lld/%lld kept_units %lld/%lld flops %.0f/%.0f "
                            "(dense %.0f/%.0f) sparsity %.6f/%.6f dropped %lld/%lld keep %s\n", VWHAT("stats"),
                            (long long)sf.kept_cols, (long long)sn.kept_cols, (long long)sf.kept_units,
                            (long long)sn.kept_units, sf.gemm_flops, sn.gemm_flops, sf.gemm_flops_dense,
                            sn.gemm_flops_dense, sf.sparsity, sn.sparsity, (long long)sf.dropped,
                            (long long)sn.dropped, memcmp(kf, kn, (size_t)(T * nb)) ? "differ" : "equal");
                    fg_test_failures++;
                }
                if (sp.variant == FG_LSTM_BWD_STRUCTURED) {
                    uint8_t *kr = malloc((size_t)nb);
                    int64_t ndrop = (int64_t)floor((double)sp.drop * (double)nb + 0.5), kunits = 0;
                    if (ndrop > nb - 1) ndrop = nb - 1;
                    ref_select(kr, dense_ws + (T - 1) * B * G4, B, H, block, nb, ndrop);
                    for (int64_t q = 0; q < nb; q++)
                        if (kr[q]) kunits += ((q + 1) * block < H ? (q + 1) * block : H) - q * block;
                    for (int64_t t = 0; t < T; t++)
                        if (memcmp(kf + t * nb, kr, (size_t)nb) != 0) {
                            fprintf(stderr, "  %s: step %lld keeps other blocks than the selection on the last "
                                    "step's dense dG\n", VWHAT("mask"), (long long)t);
                            fg_test_failures++;
                            break;
                        }
                    /* every GEMM shrinks: FLOPs = dense * kept / all */
                    const double want = sf.gemm_flops_dense * (double)kunits / (double)H;
                    if (sf.kept_units != T * kunits || fabs(sf.gemm_flops - want) > 1e-9 * want) {
                        fprintf(stderr, "  %s: kept_units %lld, expected %lld; gemm_flops %.0f, expected %.0f\n",
                                VWHAT("stats"), (long long)sf.kept_units, (long long)(T * kunits), sf.gemm_flops,
                                want);
                        fg_test_failures++;
                    }
                    free(kr);
                }
                if (sp.variant == FG_LSTM_BWD_MEPROP || sp.variant == FG_LSTM_BWD_THRESHOLD) {
                    /* no block is dropped by these (ops.h): dropped 0, every block kept */
                    int64_t kept = 0;
                    for (int64_t i = 0; i < T * nb; i++) kept += kf[i];
                    if (sf.dropped != 0 || sf.kept_blocks != T * nb || kept != T * nb) {
                        fprintf(stderr, "  %s: dropped %lld, kept_blocks %lld, keep flags %lld; expected 0, %lld, %lld\n",
                                VWHAT("blocks"), (long long)sf.dropped, (long long)sf.kept_blocks, (long long)kept,
                                (long long)(T * nb), (long long)(T * nb));
                        fg_test_failures++;
                    }
                }
                if (sp.variant == FG_LSTM_BWD_MEPROP) {
                    int64_t nd = (int64_t)floor((double)sp.drop * (double)G4 + 0.5);
                    if (nd > G4 - 1) nd = G4 - 1;
                    if (sf.kept_cols != T * (G4 - nd) || !(sf.gemm_flops < sf.gemm_flops_dense)) {
                        fprintf(stderr, "  %s: kept_cols %lld, expected %lld; flops %.0f of dense %.0f\n",
                                VWHAT("stats"), (long long)sf.kept_cols, (long long)(T * (G4 - nd)), sf.gemm_flops,
                                sf.gemm_flops_dense);
                        fg_test_failures++;
                    }
                    /* dropped columns are zero in the masked dG */
                    for (int64_t r = 0; r < T * B; r++) {
                        int64_t nz = 0;
                        for (int64_t c = 0; c < G4; c++) nz += ws[r * G4 + c] != 0.0f;
                        if (nz > G4 - nd) {
                            fprintf(stderr, "  %s: dG row %lld has %lld non-zeros, at most %lld kept\n",
                                    VWHAT("masked dG"), (long long)r, (long long)nz, (long long)(G4 - nd));
                            fg_test_failures++;
                            break;
                        }
                    }
                }
                if (sp.variant == FG_LSTM_BWD_THRESHOLD) {
                    int64_t z = 0, small = 0;
                    for (int64_t i = 0; i < T * B * G4; i++) z += ws[i] == 0.0f, small += ws[i] != 0.0f && fabsf(ws[i]) < tau;
                    const double frac = (double)z / (double)(T * B * G4);
                    if (small != 0 || fabs(frac - sf.sparsity) > 1e-12 || !(sf.sparsity > 0.1) ||
                        sf.gemm_flops != sf.gemm_flops_dense) {
                        fprintf(stderr, "  %s: %lld entries below tau survive; sparsity %.4f reported, %.4f in dG; "
                                "flops %.0f of %.0f\n", VWHAT("mask"), (long long)small, sf.sparsity, frac,
                                sf.gemm_flops, sf.gemm_flops_dense);
                        fg_test_failures++;
                    }
                }
#undef VWHAT
                free(ws), free(wsn), free(kf), free(kn);
            }
        for (int j = 0; j < 7; j++) free(pre[j]), free(ref[j]);
        free(dense_ws), free(ws0);
        sp_case_free(&f), sp_case_free(&n);
    }
    /* names round-trip; bad variant and tau refused naming the field */
    for (int v = 0; v < FG_LSTM_BWD_COUNT; v++) CHECK((int)fg_lstm_bwd_parse(fg_lstm_bwd_name((fg_lstm_bwd)v)) == v);
    CHECK(fg_lstm_bwd_parse("sorted") == FG_LSTM_BWD_COUNT);
    const fg_lstm_desc d = {3, 2, 5, 8};
    const fg_lstm_sparsity badv = {.drop = 0.5f, .block = 2, .variant = FG_LSTM_BWD_COUNT};
    CHECK_STATUS(fg_lstm_sparsity_check(&d, &badv), FG_ERR_INVALID);
    CHECK(strstr(fg_last_error(), "variant = ") != NULL);
    const fg_lstm_sparsity badt = {.drop = 0.5f, .block = 2, .variant = FG_LSTM_BWD_THRESHOLD, .tau = -1.0f};
    CHECK_STATUS(fg_lstm_sparsity_check(&d, &badt), FG_ERR_INVALID);
    CHECK(strstr(fg_last_error(), "tau = ") != NULL);
}

/* The documented edges of two selections:
 *  - structured: blocks of equal score are ranked by index, the lower dropped first. With no
 *    gradient reaching the last step (dy[T-1], dhT, dcT zero) every block scores 0, so the kept
 *    set, shared by all steps, is the blocks from ndrop on;
 *  - threshold zeroes |dG| < tau: an entry at exactly tau survives (the last step's dG is the
 *    dense one, nothing after it having been zeroed). */
static void test_sparse_edges(fg_rng *rng) {
    sp_case c;
    sp_case_init(&c, 4, 3, 5, 24, rng);
    const int64_t T = c.d.T, B = c.d.B, H = c.d.H, G4 = 4 * H, block = 4, nb = H / block;
    memset(c.b.dy + (T - 1) * B * H, 0, (size_t)(B * H) * sizeof(float));
    memset(c.b.dhT, 0, (size_t)(B * H) * sizeof(float));
    memset(c.b.dcT, 0, (size_t)(B * H) * sizeof(float));
    const fg_lstm_sparsity st = {.drop = 0.5f, .block = block, .variant = FG_LSTM_BWD_STRUCTURED};
    const size_t need = fg_lstm_sparse_workspace_bytes(&c.d, &st);
    void *ws = malloc(need);
    uint8_t *keep = malloc((size_t)(T * nb));
    fg_lstm_sparse_stats stats = {.keep = keep};
    sp_reset(&c, NULL);
    CHECK_OK(sp_run(fg_lstm_backward_sparse, &c, &st, &stats, ws, need));
    const int64_t ndrop = nb / 2;
    int64_t wrong = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t q = 0; q < nb; q++) wrong += keep[t * nb + q] != (q >= ndrop);
    if (wrong) {
        fprintf(stderr, "  structured, all blocks tied at 0: %lld of %lld keep flags are not 'index >= %lld'\n",
                (long long)wrong, (long long)(T * nb), (long long)ndrop);
        fg_test_failures++;
    }
    free(ws);
    /* threshold at exactly one entry's |dG| (fresh gradients reaching the last step) */
    sp_case_free(&c);
    sp_case_init(&c, 4, 3, 5, 24, rng);
    const size_t dws = fg_lstm_workspace_bytes(&c.d);
    float *dense = malloc(dws);
    sp_reset(&c, NULL);
    CHECK_OK(fg_lstm_backward(c.g[0], c.g[1], c.g[2], c.g[3], c.g[4], c.g[5], c.g[6], c.b.dy, c.b.dhT, c.b.dcT,
                              c.b.x, c.b.h0, c.b.c0, c.b.w_ih, c.b.w_hh, c.b.y, c.b.saved, &c.d, dense, dws));
    const float *last = dense + (T - 1) * B * G4;
    int64_t at = 0;
    for (int64_t i = 0; i < B * G4; i++)
        if (fabsf(last[i]) > fabsf(last[at])) at = i; /* the largest: some entries fall below it */
    const fg_lstm_sparsity th = {.drop = 0.0f, .block = block, .variant = FG_LSTM_BWD_THRESHOLD, .tau = fabsf(last[at])};
    const size_t need_th = fg_lstm_sparse_workspace_bytes(&c.d, &th);
    float *wt = malloc(need_th);
    fg_lstm_sparse_stats sth = {0};
    sp_reset(&c, NULL);
    CHECK_OK(sp_run(fg_lstm_backward_sparse, &c, &th, &sth, wt, need_th));
    CHECK(last[at] != 0.0f && wt[(T - 1) * B * G4 + at] == last[at]);
    CHECK(sth.sparsity > 0.5); /* and the entries below it were zeroed */
    free(wt), free(dense), free(keep);
    sp_case_free(&c);
}

/* Stats with gradients left out: the FLOPs count only what is issued, dense and sparse alike. */
static void test_sparse_stats_partial(fg_rng *rng) {
    sp_case c;
    sp_case_init(&c, 4, 3, 5, 12, rng);
    const fg_lstm_sparsity sp = {.drop = 0.5f, .block = 3};
    const size_t need = fg_lstm_sparse_workspace_bytes(&c.d, &sp);
    void *ws = malloc(need);
    fg_lstm_sparse_stats st = {0};
    /* only dw_hh wanted: the recurrent GEMM runs for t = T-1 .. 1 (dh0 not wanted), dW_hh over T-1
     * steps plus the h0 term */
    CHECK_OK(fg_lstm_backward_sparse(NULL, NULL, NULL, NULL, c.g[4], NULL, NULL, c.b.dy, NULL, NULL, c.b.x, c.b.h0,
                                     c.b.c0, c.b.w_ih, c.b.w_hh, c.b.y, c.b.saved, &c.d, ws, need, &sp, &st));
    const double T = 4, B = 3, H = 12;
    const double dense = 2 * B * 4 * H * H * (T - 1) + 2 * 4 * H * H * T * B;
    CHECK(st.gemm_flops_dense == dense);
    CHECK(st.blocks == 4 && st.dropped == 2 && st.kept_blocks == 8 && st.kept_units == 4 * 6);
    /* T-1 recurrent GEMMs over half the columns */
    CHECK(st.gemm_flops == dense - (T - 1) * 2 * B * 4 * 6 * H);
    free(ws);
    sp_case_free(&c);
}

/* ---------------------------------------------------------------- sparsity on a graph node */

/* x (GT, GB, GI) -> lstm GH -> rows (GT*GB, GH) -> linear GC -> cross-entropy. x is a parameter so
 * that dx is computed and added through the executor's scratch, which sits in the workspace after
 * the LSTM's own (the sparse one when a sparsity is set). */
#define GT 5
#define GB 3
#define GI 4
#define GH 12
#define GC 3

typedef struct lnet {
    fg_graph *g;
    fg_pool *pool;
    fg_id x, y;
    int node, fc_node;
} lnet;

/* sp (NULL = none) is set before build; network_wide: every tensor stays allocated after backward
 * (the output's gradient can be read), else free-when-dead (exact-size workspaces). */
static void lnet_build(lnet *n, const fg_lstm_sparsity *sp, int network_wide) {
    memset(n, 0, sizeof *n);
    CHECK_OK(fg_pool_create(&n->pool, 0));
    CHECK_OK(fg_graph_create(&n->g, "lstm_sparse"));
    fg_graph *g = n->g;
    int64_t xs[3] = {GT, GB, GI}, rs[2] = {GT * GB, GH}, nl = GT * GB;
    n->x = fg_nn_param(g, "x", 3, xs, FG_INIT_NORMAL, 1.0f);
    n->y = fg_nn_lstm(g, "rnn", n->x, GH, 1);
    fg_id logits = fg_layer_linear(g, "fc", fg_nn_reshape(g, "rows", n->y, 2, rs), GC, 1);
    fg_id labels = fg_nn_input(g, "labels", FG_I32, 1, &nl);
    fg_id loss = fg_nn_xent(g, "loss", logits, labels);
    CHECK_OK(fg_graph_status(g));
    if (fg_graph_status(g) != FG_OK) {
        fprintf(stderr, "  build error: %s\n", fg_graph_error(g));
        exit(1);
    }
    n->node = fg_graph_tinfo(g, n->y)->producer;
    n->fc_node = fg_graph_tinfo(g, logits)->producer;
    if (sp) CHECK_OK(fg_graph_set_lstm_sparsity(g, n->node, sp));
    fg_mem_policy p;
    if (network_wide) CHECK_OK(fg_policy_network_wide(&p));
    else CHECK_OK(fg_policy_free_when_dead(&p));
    CHECK_OK(fg_graph_build(g, loss, n->pool, &p));
    fg_rng r;
    fg_rng_seed(&r, 21);
    fg_graph_init_params(g, &r);
    int32_t lab[GT * GB];
    for (int i = 0; i < GT * GB; i++) lab[i] = (int32_t)fg_rng_below(&r, GC);
    CHECK_OK(fg_graph_set_input(g, labels, lab, sizeof lab));
}

static void lnet_free(lnet *n) {
    fg_graph_free(n->g);
    fg_pool_destroy(n->pool);
}

static void lnet_step(lnet *n) {
    fg_graph_zero_grad(n->g);
    CHECK_OK(fg_graph_forward(n->g));
    CHECK_OK(fg_graph_backward(n->g));
}

static float *tdata(fg_graph *g, fg_id id) { return fg_graph_tensor(g, id)->data; }
static float *lgrad(fg_graph *g, fg_id id) { return tdata(g, fg_graph_tinfo(g, id)->grad); }
static size_t tnumel(fg_graph *g, fg_id id) { return (size_t)fg_tensor_numel(fg_graph_tensor(g, id)); }

/* Every parameter gradient (x, the LSTM's four, fc's two) of b equals a's, bit for bit. */
static void lnet_same_grads(const char *what, lnet *a, lnet *b) {
    for (int i = 0; i < fg_graph_n_params(a->g); i++) {
        fg_id p = fg_graph_param(a->g, i);
        char w[160];
        snprintf(w, sizeof w, "%s: grad of %s", what, fg_graph_tensor(a->g, p)->name);
        fg_check_equal(w, lgrad(b->g, fg_graph_param(b->g, i)), lgrad(a->g, p), tnumel(a->g, p));
    }
}

static void expect_error(const char *what, fg_status got, const char *const *need, int k) {
    if (got != FG_ERR_INVALID) {
        fprintf(stderr, "  %s: returned %s, expected %s\n", what, fg_status_name(got), fg_status_name(FG_ERR_INVALID));
        fg_test_failures++;
    }
    for (int j = 0; j < k; j++)
        if (!strstr(fg_last_error(), need[j])) {
            fprintf(stderr, "  %s: message '%s' lacks '%s'\n", what, fg_last_error(), need[j]);
            fg_test_failures++;
        }
}

static void check_stats(const char *what, const fg_lstm_sparse_stats *st, int64_t blocks, int64_t dropped,
                        int64_t kept_units) {
    if (st->blocks != blocks || st->dropped != dropped || st->kept_blocks != GT * (blocks - dropped) ||
        st->kept_units != kept_units || st->keep != NULL) {
        fprintf(stderr, "  %s: stats blocks %lld dropped %lld kept_blocks %lld kept_units %lld keep %p, expected %lld, "
                "%lld, %lld, %lld, NULL\n", what, (long long)st->blocks, (long long)st->dropped,
                (long long)st->kept_blocks, (long long)st->kept_units, (void *)st->keep, (long long)blocks,
                (long long)dropped, (long long)(GT * (blocks - dropped)), (long long)kept_units);
        fg_test_failures++;
    }
}

/* The graph's sparse backward equals fg_lstm_backward_sparse on the graph's own tensors. */
static void check_vs_kernel(lnet *c, const fg_lstm_sparsity *sp) {
    fg_graph *g = c->g;
    const fg_ninfo *ni = fg_graph_node(g, c->node);
    const fg_lstm_desc d = {GT, GB, GI, GH};
    const size_t nx = (size_t)(GT * GB * GI), nwih = (size_t)(4 * GH * GI), nwhh = (size_t)(4 * GH * GH), nb = 4 * GH;
    float *dx = malloc(nx * sizeof(float)), *dx_acc = calloc(nx, sizeof(float));
    float *dwih = calloc(nwih, sizeof(float)), *dwhh = calloc(nwhh, sizeof(float));
    float *dbih = calloc(nb, sizeof(float)), *dbhh = calloc(nb, sizeof(float));
    const size_t wsb = fg_lstm_sparse_workspace_bytes(&d, sp);
    void *ws = malloc(wsb);
    fg_lstm_sparse_stats ks;
    memset(&ks, 0, sizeof ks);
    CHECK_OK(fg_lstm_backward_sparse(dx, NULL, NULL, dwih, dwhh, dbih, dbhh, lgrad(g, c->y), NULL, NULL, tdata(g, c->x),
                                     NULL, NULL, tdata(g, ni->in[1]), tdata(g, ni->in[2]), tdata(g, c->y),
                                     tdata(g, ni->aux[0]), &d, ws, wsb, sp, &ks));
    /* the executor adds dx from scratch into the zeroed gradient: the same addition here */
    fg_accumulate(dx_acc, dx, nx);
    fg_check_equal("graph sparse backward vs kernel: dx", lgrad(g, c->x), dx_acc, nx);
    fg_check_equal("graph sparse backward vs kernel: dw_ih", lgrad(g, ni->in[1]), dwih, nwih);
    fg_check_equal("graph sparse backward vs kernel: dw_hh", lgrad(g, ni->in[2]), dwhh, nwhh);
    fg_check_equal("graph sparse backward vs kernel: db_ih", lgrad(g, ni->in[3]), dbih, nb);
    fg_check_equal("graph sparse backward vs kernel: db_hh", lgrad(g, ni->in[4]), dbhh, nb);
    fg_lstm_sparse_stats gs;
    CHECK_OK(fg_graph_lstm_sparse_stats(g, c->node, &gs));
    CHECK(gs.blocks == ks.blocks && gs.dropped == ks.dropped && gs.kept_blocks == ks.kept_blocks &&
          gs.kept_units == ks.kept_units && gs.gemm_flops == ks.gemm_flops &&
          gs.gemm_flops_dense == ks.gemm_flops_dense);
    CHECK(gs.gemm_flops < gs.gemm_flops_dense);
    free(dx);
    free(dx_acc);
    free(dwih);
    free(dwhh);
    free(dbih);
    free(dbhh);
    free(ws);
}

static void test_graph_sparsity(void) {
    const fg_lstm_desc d = {GT, GB, GI, GH};
    const fg_lstm_sparsity dense0 = {.drop = 0.0f, .block = 4}, half = {.drop = 0.5f, .block = 4};
    fg_lstm_sparse_stats st;
    lnet a, b, c;

    /* no sparsity: the dense backward, reported as one block with nothing dropped */
    lnet_build(&a, NULL, 0);
    CHECK_STATUS(fg_graph_lstm_sparse_stats(a.g, a.node, &st), FG_ERR_INVALID); /* no backward yet */
    CHECK(strstr(fg_last_error(), "rnn") && strstr(fg_last_error(), "has not run"));
    lnet_step(&a);
    CHECK_OK(fg_graph_lstm_sparse_stats(a.g, a.node, &st));
    check_stats("no sparsity", &st, 1, 0, GT * GH);

    /* drop 0, block 4 before build: the workspace is planned for dropping blocks (so the drop can
     * change later), and the gradients are the dense ones, bit for bit */
    lnet_build(&b, &dense0, 0);
    const fg_ninfo *na = fg_graph_node(a.g, a.node), *nb = fg_graph_node(b.g, b.node);
    const size_t dense_ws = fg_lstm_workspace_bytes(&d), sparse_ws = fg_lstm_sparse_workspace_bytes_max(&d, 4);
    CHECK(sparse_ws >= fg_lstm_sparse_workspace_bytes(&d, &half));
    CHECK(sparse_ws > dense_ws);
    CHECK(na->ws_bytes[FG_BACKWARD] > dense_ws); /* plus the scratch for dx */
    CHECK(nb->ws_bytes[FG_BACKWARD] - sparse_ws == na->ws_bytes[FG_BACKWARD] - dense_ws);
    CHECK(nb->ws_bytes[FG_FORWARD] == na->ws_bytes[FG_FORWARD]);
    lnet_step(&b);
    lnet_same_grads("drop 0 vs no sparsity", &a, &b);
    CHECK_OK(fg_graph_lstm_sparse_stats(b.g, b.node, &st));
    check_stats("drop 0 block 4", &st, 3, 0, GT * GH);

    /* drop 0.5, block 4: 2 of 3 blocks dropped per step; the kernel's gradients and stats */
    lnet_build(&c, &half, 1);
    lnet_step(&c);
    CHECK_OK(fg_graph_lstm_sparse_stats(c.g, c.node, &st));
    check_stats("drop 0.5 block 4", &st, 3, 2, GT * 4);
    check_vs_kernel(&c, &half);
    /* the mask is not ignored: the recurrent weight's gradient differs from the dense one */
    const fg_id whh_a = fg_graph_node(a.g, a.node)->in[2], whh_c = fg_graph_node(c.g, c.node)->in[2];
    CHECK(memcmp(lgrad(a.g, whh_a), lgrad(c.g, whh_c), tnumel(a.g, whh_a) * sizeof(float)) != 0);

    /* the drop switched after build on one graph (free-when-dead: exact-size workspaces):
     * dense, sparse (= the graph built sparse), dense again */
    CHECK_OK(fg_graph_set_lstm_sparsity(b.g, b.node, &half));
    lnet_step(&b);
    lnet_same_grads("drop 0.5 set after build vs built with it", &c, &b);
    CHECK_OK(fg_graph_lstm_sparse_stats(b.g, b.node, &st));
    check_stats("drop 0.5 set after build", &st, 3, 2, GT * 4);
    CHECK_OK(fg_graph_set_lstm_sparsity(b.g, b.node, &dense0));
    lnet_step(&b);
    lnet_same_grads("drop 0 again after build vs no sparsity", &a, &b);

    /* refused: another block after build, a first sparsity after build, not an LSTM, bad values */
    const fg_lstm_sparsity block3 = {.drop = 0.5f, .block = 3}, drop1 = {.drop = 1.0f, .block = 4}, block13 = {.drop = 0.5f, .block = GH + 1};
    const char *n1[] = {"rnn", "block 3", "block 4", "before fg_graph_build"};
    expect_error("another block after build", fg_graph_set_lstm_sparsity(b.g, b.node, &block3), n1, 4);
    const char *n2[] = {"rnn", "no sparsity", "before fg_graph_build"};
    expect_error("a first sparsity after build", fg_graph_set_lstm_sparsity(a.g, a.node, &half), n2, 3);
    const char *n3[] = {"'fc'", "linear", "not an lstm"};
    expect_error("set on a linear node", fg_graph_set_lstm_sparsity(b.g, b.fc_node, &half), n3, 3);
    expect_error("stats of a linear node", fg_graph_lstm_sparse_stats(b.g, b.fc_node, &st), n3, 3);
    const char *n4[] = {"node -1", "not an lstm"};
    expect_error("node -1", fg_graph_set_lstm_sparsity(b.g, -1, &half), n4, 2);
    const char *n5[] = {"node 99", "not an lstm"};
    expect_error("node 99", fg_graph_set_lstm_sparsity(b.g, 99, &half), n5, 2);
    const char *n6[] = {"rnn", "drop = 1"};
    expect_error("drop 1", fg_graph_set_lstm_sparsity(b.g, b.node, &drop1), n6, 2);
    const char *n7[] = {"rnn", "block = 13", "H = 12"};
    expect_error("block H + 1", fg_graph_set_lstm_sparsity(b.g, b.node, &block13), n7, 3);
    const char *n8[] = {"rnn", "NULL"};
    expect_error("NULL sparsity", fg_graph_set_lstm_sparsity(b.g, b.node, NULL), n8, 2);
    /* before build: refused values leave the node without a sparsity; a good one sizes the
     * backward workspace at once (no accumulation scratch yet: the graph is not built) */
    fg_graph *pg;
    CHECK_OK(fg_graph_create(&pg, "prebuild"));
    int64_t xs[3] = {GT, GB, GI};
    fg_id py = fg_nn_lstm(pg, "rnn", fg_nn_input(pg, "x", FG_F32, 3, xs), GH, 0);
    const int pnode = py == FG_NONE ? 0 : fg_graph_tinfo(pg, py)->producer;
    expect_error("block H + 1 before build", fg_graph_set_lstm_sparsity(pg, pnode, &block13), n7, 3);
    CHECK(fg_graph_node(pg, pnode)->ws_bytes[FG_BACKWARD] == 0);
    CHECK_OK(fg_graph_set_lstm_sparsity(pg, pnode, &dense0));
    CHECK(fg_graph_node(pg, pnode)->ws_bytes[FG_BACKWARD] == sparse_ws);
    /* a block that can never be dropped (one block of H): still meprop's extras (it drops gate
     * columns, not blocks), planned since the variant may change after build */
    const fg_lstm_sparsity whole = {.drop = 0.5f, .block = GH};
    CHECK_OK(fg_graph_set_lstm_sparsity(pg, pnode, &whole));
    const fg_lstm_sparsity whole_meprop = {.drop = 0.5f, .block = GH, .variant = FG_LSTM_BWD_MEPROP};
    CHECK(fg_graph_node(pg, pnode)->ws_bytes[FG_BACKWARD] == fg_lstm_sparse_workspace_bytes(&d, &whole_meprop));
    CHECK(fg_lstm_sparse_workspace_bytes(&d, &whole) == dense_ws);
    fg_graph_free(pg);
    /* the refused calls changed nothing: still drop 0, block 4 */
    lnet_step(&b);
    lnet_same_grads("after refused calls", &a, &b);
    CHECK_OK(fg_graph_lstm_sparse_stats(b.g, b.node, &st));
    check_stats("after refused calls", &st, 3, 0, GT * GH);

    lnet_free(&a);
    lnet_free(&b);
    lnet_free(&c);
}

/* ---------------------------------------------------------------- an initial state on the graph */

typedef struct snet {
    fg_graph *g;
    fg_pool *pool;
    fg_id x, h0, c0, y, labels, loss;
    int node;
} snet;

/* x (T, 2, 3) -> LSTM(4) from h0, c0 -> (T*2, 4) -> linear 5 -> xent */
static void snet_build(snet *s, int64_t T) {
    memset(s, 0, sizeof *s);
    CHECK_OK(fg_pool_create(&s->pool, 0));
    CHECK_OK(fg_graph_create(&s->g, "state"));
    int64_t xs[3] = {T, 2, 3}, hs[2] = {2, 4}, ls[1] = {T * 2}, fs[2] = {T * 2, 4};
    s->x = fg_nn_input(s->g, "x", FG_F32, 3, xs);
    s->h0 = fg_nn_input(s->g, "h0", FG_F32, 2, hs);
    s->c0 = fg_nn_input(s->g, "c0", FG_F32, 2, hs);
    s->labels = fg_nn_input(s->g, "labels", FG_I32, 1, ls);
    s->y = fg_nn_lstm_state(s->g, "rnn", s->x, 4, 1, s->h0, s->c0);
    s->node = fg_graph_tinfo(s->g, s->y)->producer;
    fg_id f = fg_nn_reshape(s->g, "flat", s->y, 2, fs);
    s->loss = fg_nn_xent(s->g, "loss", fg_layer_linear(s->g, "fc", f, 5, 1), s->labels);
    CHECK_OK(fg_graph_status(s->g));
    fg_mem_policy pol;
    CHECK_OK(fg_policy_network_wide(&pol));
    CHECK_OK(fg_graph_build(s->g, s->loss, s->pool, &pol));
    fg_rng r;
    fg_rng_seed(&r, 77);
    fg_graph_init_params(s->g, &r);
}

static void snet_free(snet *s) {
    fg_graph_free(s->g);
    fg_pool_destroy(s->pool);
}

static const float *pdata(fg_graph *g, fg_id id) { return fg_graph_tensor(g, id)->data; }

/* fg_nn_lstm_state: forward equals the kernel from the same state (bit for bit) and the final state
 * it reports is the kernel's hT and cT; the weight gradients match central differences with h0, c0
 * non-zero (dW_hh's first step reads h0); a sequence run as two chunks, the second from the first's
 * final state, gives the outputs of one run over both; bad state inputs are refused. */
static void test_graph_state(fg_rng *rng) {
    const int64_t T = 3;
    snet s;
    snet_build(&s, T);
    float x[3 * 2 * 3], h0[8], c0[8];
    fg_fill_uniform(x, 18, -1, 1, rng);
    fg_fill_uniform(h0, 8, -1, 1, rng);
    fg_fill_uniform(c0, 8, -1, 1, rng);
    int32_t lab[6] = {0, 1, 2, 3, 4, 0};
    CHECK_OK(fg_graph_set_input(s.g, s.x, x, sizeof x));
    CHECK_OK(fg_graph_set_input(s.g, s.h0, h0, sizeof h0));
    CHECK_OK(fg_graph_set_input(s.g, s.c0, c0, sizeof c0));
    CHECK_OK(fg_graph_set_input(s.g, s.labels, lab, sizeof lab));
    fg_graph_set_training(s.g, 1);
    fg_graph_zero_grad(s.g);
    float none[8];
    CHECK_STATUS(fg_graph_lstm_final_state(s.g, s.node, none, none), FG_ERR_INVALID); /* no forward yet */
    CHECK_OK(fg_graph_forward(s.g));
    CHECK_OK(fg_graph_backward(s.g));
    const fg_ninfo *ni = fg_graph_node(s.g, s.node);
    const fg_lstm_desc d = {T, 2, 3, 4};
    float y[24], hT[8], cT[8], ghT[8], gcT[8];
    float *saved = malloc(fg_lstm_saved_bytes(&d));
    size_t wsb = fg_lstm_workspace_bytes(&d);
    void *ws = malloc(wsb);
    CHECK_OK(fg_lstm_forward(y, hT, cT, saved, x, h0, c0, pdata(s.g, ni->in[1]), pdata(s.g, ni->in[2]),
                             pdata(s.g, ni->in[3]), pdata(s.g, ni->in[4]), &d, ws, wsb));
    fg_check_equal("state: y vs the kernel", pdata(s.g, s.y), y, 24);
    CHECK_OK(fg_graph_lstm_final_state(s.g, s.node, ghT, gcT));
    fg_check_equal("state: hT", ghT, hT, 8);
    fg_check_equal("state: cT", gcT, cT, 8);
    free(saved);
    free(ws);

    /* gradients of W_hh and W_ih against central differences of the loss (float: eps 1e-2) */
    for (int w = 1; w <= 2; w++) {
        fg_id wid = ni->in[w];
        float *wd = fg_graph_tensor(s.g, wid)->data;
        const float *gd = fg_graph_tensor(s.g, fg_graph_tinfo(s.g, wid)->grad)->data;
        for (int k = 0; k < 16; k += 5) {
            float keep = wd[k];
            wd[k] = keep + 1e-2f;
            CHECK_OK(fg_graph_forward(s.g));
            double lp = fg_graph_loss(s.g);
            wd[k] = keep - 1e-2f;
            CHECK_OK(fg_graph_forward(s.g));
            double lm = fg_graph_loss(s.g);
            wd[k] = keep;
            double fd = (lp - lm) / 2e-2;
            if (fabs(fd - gd[k]) > 2e-3 + 2e-2 * fabs(fd))
                fprintf(stderr, "  state: d loss / d %s[%d] = %g, finite differences %g\n",
                        fg_graph_tinfo(s.g, wid)->t.name, k, (double)gd[k], fd), fg_test_failures++;
        }
    }

    /* two chunks of T carrying the state = one run of 2T (the same weights) */
    snet l;
    snet_build(&l, 2 * T);
    float x2[6 * 2 * 3], z[8] = {0}, y2[48], ya[24], yb[24], st_h[8], st_c[8];
    fg_fill_uniform(x2, 36, -1, 1, rng);
    int32_t lab2[12] = {0};
    CHECK_OK(fg_graph_set_input(l.g, l.x, x2, sizeof x2));
    CHECK_OK(fg_graph_set_input(l.g, l.h0, z, sizeof z));
    CHECK_OK(fg_graph_set_input(l.g, l.c0, z, sizeof z));
    CHECK_OK(fg_graph_set_input(l.g, l.labels, lab2, sizeof lab2));
    CHECK_OK(fg_graph_forward(l.g));
    memcpy(y2, pdata(l.g, l.y), sizeof y2);
    CHECK_OK(fg_graph_set_input(s.g, s.x, x2, sizeof x));
    CHECK_OK(fg_graph_set_input(s.g, s.h0, z, sizeof z));
    CHECK_OK(fg_graph_set_input(s.g, s.c0, z, sizeof z));
    CHECK_OK(fg_graph_forward(s.g));
    memcpy(ya, pdata(s.g, s.y), sizeof ya);
    CHECK_OK(fg_graph_lstm_final_state(s.g, s.node, st_h, st_c));
    CHECK_OK(fg_graph_set_input(s.g, s.x, x2 + 18, sizeof x));
    CHECK_OK(fg_graph_set_input(s.g, s.h0, st_h, sizeof st_h));
    CHECK_OK(fg_graph_set_input(s.g, s.c0, st_c, sizeof st_c));
    CHECK_OK(fg_graph_forward(s.g));
    memcpy(yb, pdata(s.g, s.y), sizeof yb);
    fg_check_close("state: first chunk vs one run", ya, y2, 24, 1e-5f, 1e-6f);
    fg_check_close("state: second chunk from the first's state vs one run", yb, y2 + 24, 24, 1e-5f, 1e-6f);
    snet_free(&l);

    /* refused: a state that is not an input of (B, hidden), another node's final state */
    fg_graph *bg;
    CHECK_OK(fg_graph_create(&bg, "bad"));
    int64_t xs[3] = {T, 2, 3}, wrong[2] = {2, 5};
    fg_id bx = fg_nn_input(bg, "x", FG_F32, 3, xs);
    fg_id bh = fg_nn_input(bg, "h0", FG_F32, 2, wrong);
    CHECK(fg_nn_lstm_state(bg, "rnn", bx, 4, 1, bh, FG_NONE) == FG_NONE);
    CHECK(fg_graph_status(bg) == FG_ERR_SHAPE && strstr(fg_graph_error(bg), "h0") && strstr(fg_graph_error(bg), "(2, 4)"));
    fg_graph_free(bg);
    CHECK_STATUS(fg_graph_lstm_final_state(s.g, s.node + 1, st_h, st_c), FG_ERR_INVALID);
    snet_free(&s);
}

int main(void) {
    fg_rng rng;
    fg_rng_seed(&rng, 20240613);
    fg_threads_set(2);

    test_check();
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) test_vs_naive(&SHAPES[i], &rng);
    test_gradcheck(&rng);
    test_sparse_args();
    test_sparse_dense_identical(&rng);
    test_sparse_vs_naive(&rng);
    test_sparse_stats_partial(&rng);
    test_variants(&rng);
    test_graph_sparsity();
    test_graph_state(&rng);
    test_sparse_edges(&rng);

    fg_fixture *f = fg_fixture_open("lstm.bin");
    test_fixtures(f);
    fg_fixture_close(f);
    return fg_test_finish("test_ops_lstm");
}
