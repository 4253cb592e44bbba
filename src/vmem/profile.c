/* plan's conv-algorithm profile: the forward and backward time of every conv layer under every
 * algorithm, measured once at plan time, as cuDNN's Find (cudnnFindConvolution*Algorithm) does.
 *
 * plan knows each step's time under the algorithms it was measured with (the oracle's, or its own
 * first iteration) and must predict steps whose algorithm it changes. A fixed ratio per algorithm
 * is wrong per layer (bench/conv_algos: GEMM is 0.7x oneDNN's time on a 1x1 conv and 1.25x on a
 * 3x3 one; implicit's backward 1.1x to 3x), so each layer is timed under each algorithm at a small
 * batch (PROFILE_BATCH images) and the step's measured time is scaled by the ratio of the two.
 *
 * The scratch tensors of the profile live in host memory, not in the device pool: like cuDNN's
 * Find, the profile is a one-off before training, and at PROFILE_BATCH images its buffers are a
 * small fraction of the layer's (VGG-16's largest: 26 MB). */
#include <stdlib.h>
#include <string.h>

#include "vmem/vmem_impl.h"

#define PROFILE_BATCH 2
#define PROFILE_REPS 2

static float *filled(size_t n, fg_rng *r) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    if (p)
        for (size_t i = 0; i < n; i++) p[i] = fg_rng_uniform(r) - 0.5f;
    return p;
}

/* Fastest of PROFILE_REPS runs after one warm-up, per pass. */
static fg_status time_algo(const fg_conv2d_desc *d, fg_conv_algo a, float *x, float *w, float *b, float *y, float *dy,
                           float *dx, float *dw, float *db, void *ws, size_t ws_bytes, double sec[FG_PASS_COUNT]) {
    sec[FG_FORWARD] = sec[FG_BACKWARD] = 1e30;
    for (int rep = 0; rep <= PROFILE_REPS; rep++) {
        double t0 = fg_time_now();
        FG_TRY(fg_conv2d_forward(y, x, w, b, d, a, ws, ws_bytes));
        double t1 = fg_time_now();
        FG_TRY(fg_conv2d_backward(dx, dw, db, dy, x, w, d, a, ws, ws_bytes));
        double t2 = fg_time_now();
        if (rep == 0) continue;
        if (t1 - t0 < sec[FG_FORWARD]) sec[FG_FORWARD] = t1 - t0;
        if (t2 - t1 < sec[FG_BACKWARD]) sec[FG_BACKWARD] = t2 - t1;
    }
    return FG_OK;
}

static fg_status profile_node(const fg_vmem *v, int node, fg_rng *r, double *out) {
    fg_conv2d_desc d;
    FG_TRY(fg_graph_conv_desc(v->g, node, &d));
    if (d.n > PROFILE_BATCH) d.n = PROFILE_BATCH;
    size_t nx = (size_t)(d.n * d.c * d.h * d.w), nw = (size_t)(d.oc * (d.c / d.groups) * d.kh * d.kw);
    size_t ny = (size_t)(d.n * d.oc * fg_conv2d_out_h(&d) * fg_conv2d_out_w(&d)), ws_bytes = 0;
    for (int a = 0; a < FG_CONV_ALGO_COUNT; a++) {
        size_t b = fg_conv2d_workspace_bytes(&d, (fg_conv_algo)a);
        if (b > ws_bytes) ws_bytes = b;
    }
    float *x = filled(nx, r), *w = filled(nw, r), *b = filled((size_t)d.oc, r), *dy = filled(ny, r);
    float *y = malloc(sizeof(float) * ny), *dx = malloc(sizeof(float) * nx);
    float *dw = calloc(nw, sizeof(float)), *db = calloc((size_t)d.oc, sizeof(float));
    void *ws = ws_bytes ? aligned_alloc(FG_POOL_ALIGN, (ws_bytes + FG_POOL_ALIGN - 1) / FG_POOL_ALIGN * FG_POOL_ALIGN)
                        : NULL;
    fg_status s = FG_OK;
    if (!x || !w || !b || !dy || !y || !dx || !dw || !db || (ws_bytes && !ws))
        s = fg_fail(FG_ERR_OOM, "vmem plan: out of host memory profiling the conv algorithms of '%s'",
                    fg_graph_node(v->g, node)->name);
    for (int a = 0; a < FG_CONV_ALGO_COUNT && s == FG_OK; a++)
        s = time_algo(&d, (fg_conv_algo)a, x, w, b, y, dy, dx, dw, db, ws, ws_bytes, &out[a * FG_PASS_COUNT]);
    free(x);
    free(w);
    free(b);
    free(dy);
    free(y);
    free(dx);
    free(dw);
    free(db);
    free(ws);
    return s;
}

fg_status fg_vmem_profile_convs(fg_vmem *v) {
    if (v->algo_sec) return FG_OK;
    size_t per = (size_t)FG_CONV_ALGO_COUNT * FG_PASS_COUNT;
    double *sec = calloc((size_t)v->N * per + 1, sizeof *sec);
    if (!sec) return fg_fail(FG_ERR_OOM, "vmem plan: out of host memory");
    fg_rng r;
    fg_rng_seed(&r, 1);
    for (int i = 0; i < v->N; i++)
        if (fg_graph_node(v->g, i)->op == FG_OP_CONV2D) {
            fg_status s = profile_node(v, i, &r, &sec[(size_t)i * per]);
            if (s != FG_OK) {
                free(sec);
                return s;
            }
        }
    v->algo_sec = sec;
    return FG_OK;
}

double fg_vmem_algo_ratio(const fg_vmem *v, int node, fg_pass pass, fg_conv_algo a, fg_conv_algo ref) {
    if (a == ref) return 1.0;
    size_t base = (size_t)node * FG_CONV_ALGO_COUNT * FG_PASS_COUNT;
    if (v->algo_full) { /* both timed at the full batch in a real iteration: the truth */
        const double *f = &v->algo_full[base];
        if (f[a * FG_PASS_COUNT + pass] > 0 && f[ref * FG_PASS_COUNT + pass] > 0)
            return f[a * FG_PASS_COUNT + pass] / f[ref * FG_PASS_COUNT + pass];
    }
    if (!v->algo_sec) return fg_vmem_algo_cost(a) / fg_vmem_algo_cost(ref);
    const double *s = &v->algo_sec[base];
    return s[a * FG_PASS_COUNT + pass] / s[ref * FG_PASS_COUNT + pass];
}

/* 1 when some conv runs an algorithm other than its reference one that has not been timed at
 * the full batch yet. */
int fg_vmem_algos_unchecked(const fg_vmem *v) {
    for (int i = 0; i < v->N; i++) {
        const fg_ninfo *n = fg_graph_node(v->g, i);
        if (n->op != FG_OP_CONV2D || n->algo == v->ref_algo[i]) continue;
        if (!v->algo_full || !(v->algo_full[((size_t)i * FG_CONV_ALGO_COUNT + n->algo) * FG_PASS_COUNT] > 0)) return 1;
    }
    return 0;
}

fg_status fg_vmem_algos_record(fg_vmem *v, const double *measured) {
    size_t per = (size_t)FG_CONV_ALGO_COUNT * FG_PASS_COUNT;
    if (!v->algo_full) v->algo_full = calloc((size_t)v->N * per + 1, sizeof *v->algo_full);
    if (!v->algo_full) return fg_fail(FG_ERR_OOM, "vmem plan: out of host memory");
    for (int i = 0; i < v->N; i++) {
        const fg_ninfo *n = fg_graph_node(v->g, i);
        if (n->op != FG_OP_CONV2D || n->algo == v->ref_algo[i]) continue;
        for (int p = 0; p < FG_PASS_COUNT; p++) {
            int s = p == FG_FORWARD ? i : 2 * v->N - 1 - i;
            v->algo_full[(size_t)i * per + (size_t)n->algo * FG_PASS_COUNT + (size_t)p] = measured[s];
            v->algo_full[(size_t)i * per + (size_t)v->ref_algo[i] * FG_PASS_COUNT + (size_t)p] = v->step_seconds[s];
        }
    }
    return FG_OK;
}
