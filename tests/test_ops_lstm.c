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
 *    forward outputs and all gradients, for the fast kernels and the naive twins. */
#include <math.h>
#include <string.h>

#include "testutil.h"

#define RTOL 1e-4f
/* fixtures hold float64 references rounded to float32: tolerances are float rounding */
#define FX_RTOL 1e-4f
#define FX_ATOL 1e-5f

/* Tolerance of a float32 sum of `fan` O(1) products against a double reference. */
static float atol_for(double fan) { return (float)(2e-5 * sqrt(fan > 1 ? fan : 1)); }

static void fill_const(float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++) x[i] = v;
}

static int all_equal_to(const float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++)
        if (x[i] != v) return 0;
    return 1;
}

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
    {12, 32, 48, 150, 1, 1, 1}, /* B*H = 4800: gate kernels run in parallel */
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
    fill_const(b->dx, s->x, 777.0f), fill_const(b->dh0, s->bh, 777.0f), fill_const(b->dc0, s->bh, 777.0f);
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
    fill_const(f.y, s.y, 777.0f), fill_const(f.saved, s.saved, 777.0f);

    const double TB = (double)(d.T * d.B), fan_y = (double)(d.I + d.H) * 2;
    /* every upstream combination: all present (7), only dy (1), only dhT, dcT (6), none (0) */
    const int up_masks[] = {7, 1, 6, 0};
    for (size_t um = 0; um < sizeof up_masks / sizeof up_masks[0]; um++) {
        const int up = up_masks[um];
        run_pair(fg_lstm_forward, fg_lstm_backward, &f, &s, sh, &d, ws, ws_bytes, up);
        run_pair(fg_lstm_forward_naive, fg_lstm_backward_naive, &n, &s, sh, &d, ws, ws_bytes, up);
        char tag[64];
        if (um == 0) {
            fg_check_close(WHAT("forward y"), f.y, n.y, s.y, RTOL, atol_for(fan_y));
            fg_check_close(WHAT("forward hT"), f.hT, n.hT, s.bh, RTOL, atol_for(fan_y));
            fg_check_close(WHAT("forward cT"), f.cT, n.cT, s.bh, RTOL, atol_for(fan_y * (double)d.T));
            fg_check_close(WHAT("forward saved (gates, cells)"), f.saved, n.saved, s.saved, RTOL,
                           atol_for(fan_y * (double)d.T));
            /* hT and cT are the last step of y and of the saved cells */
            fg_check_equal(WHAT("hT == y[T-1]"), f.hT, f.y + (d.T - 1) * d.B * d.H, s.bh);
            fg_check_equal(WHAT("cT == cells[T-1]"), f.cT, f.saved + s.saved - s.bh, s.bh);
        }
        const float ag = atol_for(4.0 * (double)(d.H + d.I) * (double)d.T);
        snprintf(tag, sizeof tag, "backward (upstream mask %d) dx", up);
        fg_check_close(WHAT(tag), f.dx, n.dx, s.x, RTOL, ag);
        snprintf(tag, sizeof tag, "backward (upstream mask %d) dh0", up);
        fg_check_close(WHAT(tag), f.dh0, n.dh0, s.bh, RTOL, ag);
        snprintf(tag, sizeof tag, "backward (upstream mask %d) dc0", up);
        fg_check_close(WHAT(tag), f.dc0, n.dc0, s.bh, RTOL, ag);
        snprintf(tag, sizeof tag, "backward (upstream mask %d) dw_ih", up);
        fg_check_close(WHAT(tag), f.dw_ih, n.dw_ih, s.wih, RTOL, atol_for(TB) * 4);
        snprintf(tag, sizeof tag, "backward (upstream mask %d) dw_hh", up);
        fg_check_close(WHAT(tag), f.dw_hh, n.dw_hh, s.whh, RTOL, atol_for(TB) * 4);
        snprintf(tag, sizeof tag, "backward (upstream mask %d) db_ih", up);
        fg_check_close(WHAT(tag), f.db_ih, n.db_ih, s.b4, RTOL, atol_for(TB) * 4);
        snprintf(tag, sizeof tag, "backward (upstream mask %d) db_hh", up);
        fg_check_close(WHAT(tag), f.db_hh, n.db_hh, s.b4, RTOL, atol_for(TB) * 4);
        if (up == 0) { /* no upstream gradient at all: every gradient is zero */
            CHECK(all_equal_to(f.dx, s.x, 0.0f) && all_equal_to(f.dw_hh, s.whh, 0.0f));
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
        fg_check_close(WHAT(tag), out[j], want, gsz[j], RTOL, atol_for(TB) * 4);
        free(want);
    }

    /* every gradient output NULL but one: that one matches, the rest is not touched */
    for (int only = 0; only < 7; only++) {
        float *p[7] = {NULL};
        for (int j = 0; j < 7; j++) fill_const(out[j], gsz[j], only == j && j < 3 ? 777.0f : 0.0f);
        p[only] = out[only];
        CHECK_OK(fg_lstm_backward(p[0], p[1], p[2], p[3], p[4], p[5], p[6], f.dy, f.dhT, f.dcT, f.x, h0, c0, f.w_ih,
                                  f.w_hh, f.y, f.saved, &d, ws, ws_bytes));
        char tag[64];
        snprintf(tag, sizeof tag, "only %s wanted", gname[only]);
        fg_check_close(WHAT(tag), out[only], ref[only], gsz[only], RTOL, 1e-6f);
        for (int j = 0; j < 7; j++)
            if (j != only && !all_equal_to(out[j], gsz[j], 0.0f)) {
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
            for (int j = 0; j < 7; j++) fill_const(g[j], gsz[j], j < 3 ? 777.0f : 0.0f);
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

int main(void) {
    fg_rng rng;
    fg_rng_seed(&rng, 20240613);
    fg_threads_set(2);

    test_check();
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) test_vs_naive(&SHAPES[i], &rng);
    test_gradcheck(&rng);

    fg_fixture *f = fg_fixture_open("lstm.bin");
    test_fixtures(f);
    fg_fixture_close(f);
    return fg_test_finish("test_ops_lstm");
}
