/* Fused LSTM layer (one layer, unidirectional, time-major) that runs its own time loop: the
 * recurrent core of frugal's LSTM system and the base on which the sparse backward of Zhu et al.
 * (arXiv 1806.00512) is built. Semantics are torch.nn.LSTM's (num_layers 1, batch_first False),
 * gates stacked in the order i, f, g, o along the 4H axis of the weights:
 *
 *   G_t   = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh           (B, 4H) pre-activations
 *   i = sigmoid(G_t[:, 0:H])   f = sigmoid(G_t[:, H:2H])   g = tanh(G_t[:, 2H:3H])   o = sigmoid(G_t[:, 3H:4H])
 *   c_t = f * c_{t-1} + i * g          h_t = o * tanh(c_t)         y_t = h_t
 *
 * Shapes: x (T, B, I), w_ih (4H, I), w_hh (4H, H), b_ih and b_hh (4H), h0, c0, hT, cT (B, H),
 * y (T, B, H). Everything is contiguous f32, row-major.
 *
 * Forward: X W_ih^T for all T steps is ONE (T*B, I) x (I, 4H) GEMM, written straight into the
 * saved gate buffer; then per step one (B, H) x (H, 4H) GEMM adds h_{t-1} W_hh^T and a fused
 * elementwise kernel adds b_ih + b_hh, applies the activations, updates the cell and writes h_t.
 *
 * Backward (BPTT) walks t = T-1 .. 0 with one fused elementwise kernel per step, writing the gate
 * gradients dG_t (gradients of the pre-activations) into one (T*B, 4H) workspace buffer, and one
 * (B, 4H) x (4H, H) GEMM per step for the recurrent gradient dh_{t-1} = dG_t W_hh. After the loop
 * every parameter gradient and dx are big GEMMs over all steps at once:
 *   dW_ih += dG^T X                 (4H, T*B) x (T*B, I)
 *   dW_hh += dG[1:]^T h[:-1]        (4H, (T-1)*B) x ((T-1)*B, H), plus dG[0]^T h0 when h0 is given
 *   db_ih += colsum(dG), db_hh += colsum(dG)
 *   dx     = dG W_ih                (T*B, 4H) x (4H, I)
 * This split (a thin recurrent loop, then large GEMMs) is what makes gate-gradient sparsity pay
 * off: once dG is sparsified per step, both the recurrent GEMM and the final ones shrink.
 *
 * What forward saves for backward (the `saved` buffer, fg_lstm_saved_bytes = 5*T*B*H floats):
 *   gates (T, B, 4H)  the activated gates i, f, g, o of every step (post-sigmoid / tanh)
 *   cells (T, B, H)   the cell states c_1 .. c_T
 * Backward further reads x, h0, c0, w_ih, w_hh and the output y (h_1 .. h_T: h_{t-1} for dW_hh).
 * tanh(c_t) is recomputed in backward rather than saved.
 *
 * Workspace (fg_lstm_workspace_bytes = max(4*T*B*H + 2*B*H, 4*H*H) floats): backward's dG
 * (T*B, 4H), the running dh and dc (B, H) each; forward's W_hh^T (H, 4H), transposed once per
 * call so that the recurrent GEMMs read it untransposed.
 *
 * Gradient conventions (include/frugal/ops.h): dx, dh0, dc0 are WRITTEN; dw_ih, dw_hh, db_ih,
 * db_hh are ACCUMULATED; any of them may be NULL. dy, dhT, dcT may be NULL (= zeros).
 * The `_naive` twins are plain loops with double accumulation and no GEMM calls, for tests.
 *
 * Structurally sparsified backward (fg_lstm_backward_sparse), after Zhu et al., "Structurally
 * Sparsified Backward Propagation for Faster Long Short-Term Memory Training" (arXiv 1806.00512).
 * What is implemented: per step t, once dG_t (B, 4H) is computed, the hidden units are cut into
 * blocks of `block` consecutive units; a block's score is the sum over the batch and over its 4
 * gate columns (j, H+j, 2H+j, 3H+j) of |dG_t|, summed in double in a fixed order; the
 * round(drop * blocks) lowest-scoring blocks (at most blocks - 1, ties to the lower index) are
 * zeroed in dG_t. The zeroing is structural across the minibatch and the four gates, so the
 * recurrent GEMM dh_{t-1} = dG_t W_hh shrinks to (B, K) x (K, H) over the K = 4 * kept units:
 * the kept columns of dG_t are gathered into a compact buffer and W_hh is copied ONCE per call
 * into block-major row order (block, gate, unit), so that a run of consecutive kept blocks is one
 * contiguous slab of rows and needs one GEMM without any per-step copy of W_hh (4H*H floats of
 * extra workspace). The dropped gradient flows neither back in time through h nor into the
 * parameter gradients; the cell path dc_{t-1} = dc_t * f is elementwise and left dense.
 * In this per-step variant (FG_LSTM_BWD_STEP) the after-loop GEMMs (dW_ih, dW_hh, db, dx) stay
 * DENSE over the zeroed dG: skipping dropped rows would need one GEMM per step (the kept set
 * changes per step). Measured at T = 35, B = 32, 2 threads, 50 % / 20 % kept, as one compact GEMM
 * per step (an optimistic bound: no runs, no scatter): the dW updates become T rank-B updates that
 * stream dW from memory, 5x slower than the one dense GEMM at H = 650 and 1500; the dx products
 * pay at H = I = 650 (23 / 11 ms against 31 ms) but lose at H = I = 1500 (280 ms against 144 ms:
 * W_ih no longer stays in cache). So only the recurrent GEMM is sparse there.
 *
 * The per-call variant (FG_LSTM_BWD_STRUCTURED, lstm_backward_call) removes that limit: ONE kept
 * set of blocks for all T steps, chosen on the block scores of dG_{T-1} (the first step backward
 * computes; nothing of an earlier call is kept, the kernel stays stateless). The kept gate rows
 * (4K of 4H) of W_hh and W_ih are gathered once per call, every step's kept dG columns go into a
 * compact (T*B, 4K) buffer, and the recurrent GEMM, dW_ih, dW_hh and dx are all compact GEMMs:
 * every backward GEMM's FLOPs are the dense ones times K/H (docs/BENCHMARKS.md has the times).
 * meProp (FG_LSTM_BWD_MEPROP, Sun et al. 2017, the unified variant) keeps, per step, the top k of
 * the 4H gate columns (the output gradient of the LSTM's one linear map) summed over the batch,
 * found by quickselect; its recurrent GEMM is compact over W_hh rows gathered per step and, like
 * the per-step structured variant and for the reason above, the after-loop GEMMs run over the
 * zeroed dG. Threshold (FG_LSTM_BWD_THRESHOLD) zeroes |dG| < tau and keeps every GEMM dense.
 * How this differs from the paper, as far as we can tell: the paper sparsifies gate gradients on
 * GPUs with cuBLAS, and reports the speedup for the whole backward pass; we choose the dropped
 * fraction directly (a fixed drop per step, top-k by the block L1 norm) rather than through a
 * threshold, the block size is ours, and the mixed sparse/dense schedule that the paper uses to
 * recover accuracy is left to the caller (call fg_lstm_backward or drop = 0 for the dense
 * iterations). No accuracy experiment is reproduced here. */
#include <math.h>
#include <omp.h>
#include <stdatomic.h>
#include <string.h>

#include "frugal/ops.h"

/* Elements (B*H) per step below which the elementwise gate kernels run on the calling thread:
 * each element costs a few transcendental functions, so a fork/join pays off earlier than for
 * the plain activations (PAR_MIN in activation.c). */
#define LSTM_PAR_MIN 4096
/* Hidden units per parallel chunk: rows of a small batch still split across threads. */
#define LSTM_CHUNK 256

/* exp(x) for the gate kernels, written so that `omp simd` vectorises it (glibc's expf and tanhf
 * are scalar calls without -ffast-math, and were most of the gate kernels' time: a 19x faster gate
 * kernel at H 650 in a micro-benchmark). x is clamped to [-87, 88] (sigmoid and tanh saturate long
 * before), split as n ln2 + r with |r| <= ln2 / 2 (n rounded to nearest by the 1.5 * 2^23 trick,
 * ln2 in two parts), exp(r) by its degree-6 Taylor polynomial (relative error < 2e-7) and 2^n put
 * into the exponent bits (n + 127 in [1, 254]: always a normal float). sigmoid and tanh built on
 * it are within 2e-7 of the exact values (absolute). */
static inline float lstm_expf(float x0) {
    /* NaN computes with -87 too (converting NaN to int is undefined) and is returned as it came */
    const float x = !(x0 >= -87.0f) ? -87.0f : x0 > 88.0f ? 88.0f : x0;
    const float n = (x * 1.44269504f + 12582912.0f) - 12582912.0f;
    const float r = (x - n * 0.693145752f) - n * 1.42860677e-6f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const union {
        uint32_t i;
        float f;
    } u = {(uint32_t)((int32_t)n + 127) << 23};
    return x0 == x0 ? p * u.f : x0;
}
static inline float sigmoidf(float x) { return 1.0f / (1.0f + lstm_expf(-x)); }
static inline float lstm_tanhf(float x) { return 1.0f - 2.0f / (lstm_expf(2.0f * x) + 1.0f); }

/* ---------------------------------------------------------------- sizes */

fg_status fg_lstm_check(const fg_lstm_desc *d) {
    if (!d) return fg_fail(FG_ERR_INVALID, "lstm: descriptor is NULL");
    const struct {
        const char *name, *what;
        int64_t v;
    } f[4] = {{"T", "time steps", d->T}, {"B", "batch size", d->B}, {"I", "input size", d->I}, {"H", "hidden size", d->H}};
    for (int k = 0; k < 4; k++)
        if (f[k].v <= 0)
            return fg_fail(FG_ERR_SHAPE, "lstm: %s (%s) = %lld, expected > 0 (desc T %lld, B %lld, I %lld, H %lld)",
                           f[k].name, f[k].what, (long long)f[k].v, (long long)d->T, (long long)d->B,
                           (long long)d->I, (long long)d->H);
    /* The largest buffers are 5*T*B*H floats (saved), T*B*max(I, 4H) (x, dG) and 4H*max(I, H)
     * (weights); each must be addressable in bytes. */
    const double lim = (double)INT64_MAX / 64.0;
    double tbh = (double)d->T * (double)d->B * (double)d->H, tbi = (double)d->T * (double)d->B * (double)d->I;
    double w = 4.0 * (double)d->H * (double)(d->I > d->H ? d->I : d->H);
    if (5.0 * tbh > lim || tbi > lim || w > lim)
        return fg_fail(FG_ERR_SHAPE, "lstm: T %lld, B %lld, I %lld, H %lld make buffers too large to address",
                       (long long)d->T, (long long)d->B, (long long)d->I, (long long)d->H);
    return FG_OK;
}

size_t fg_lstm_saved_bytes(const fg_lstm_desc *d) {
    if (!d || fg_lstm_check(d) != FG_OK) return 0;
    return (size_t)(5 * d->T * d->B * d->H) * sizeof(float);
}

size_t fg_lstm_workspace_bytes(const fg_lstm_desc *d) {
    if (!d || fg_lstm_check(d) != FG_OK) return 0;
    /* backward: dG, dh, dc; forward: W_hh^T (H, 4H) */
    const int64_t bwd = 4 * d->T * d->B * d->H + 2 * d->B * d->H, fwd = 4 * d->H * d->H;
    return (size_t)(bwd > fwd ? bwd : fwd) * sizeof(float);
}

double fg_lstm_flops(const fg_lstm_desc *d) {
    if (!d || fg_lstm_check(d) != FG_OK) return 0.0;
    return 2.0 * (double)d->T * (double)d->B * 4.0 * (double)d->H * (double)(d->I + d->H);
}

static fg_status check_ws(const char *what, const fg_lstm_desc *d, const void *ws, size_t ws_bytes) {
    size_t need = fg_lstm_workspace_bytes(d);
    if (ws_bytes < need || (need > 0 && !ws))
        return fg_fail(FG_ERR_INVALID, "%s: workspace of %zu bytes%s, needs %zu (fg_lstm_workspace_bytes)", what,
                       ws_bytes, ws ? "" : " (NULL)", need);
    return FG_OK;
}

/* ---------------------------------------------------------------- fused gate kernels */

/* What a NULL row (the previous cell at t = 0, no dy) reads as in the gate loops, a chunk at a
 * time: the loops take every row through a pointer, so they hold no condition (GCC makes a
 * `p ? p[j] : 0` inside a masked load, and with dy NULL that made the backward step several
 * times slower on this CPU). */
static const float lstm_zeros[LSTM_CHUNK];

/* g[j] += b1[j] + b2[j] (either NULL = zeros), the sum first; the branches outside the loops so
 * that each loop vectorises. */
static inline void add_bias(float *restrict g, const float *restrict b1, const float *restrict b2, int64_t n) {
    if (b1 && b2) {
#pragma omp simd
        for (int64_t j = 0; j < n; j++) g[j] += b1[j] + b2[j];
    } else if (b1 || b2) {
        const float *b = b1 ? b1 : b2;
#pragma omp simd
        for (int64_t j = 0; j < n; j++) g[j] += b[j];
    }
}

/* One forward step after the GEMMs, for row b and hidden units [j0, j0 + n): g (B, 4H) holds the
 * GEMMs' sum on entry, to which the biases are added here ((b_ih + b_hh) first, either NULL =
 * zeros: no pass over all T steps' gates to broadcast them before the input GEMM), and the
 * activated gates on exit; c (B, H) = f * cprev + i * g (cprev NULL = zeros); h (B, H) = o * tanh(c). */
static inline void gates_forward_chunk(float *restrict g, float *restrict c, float *restrict h,
                                       const float *restrict cprev, const float *restrict b_ih,
                                       const float *restrict b_hh, int64_t H, int64_t b, int64_t j0, int64_t n) {
    float *gi = g + b * 4 * H + j0, *gf = gi + H, *gg = gi + 2 * H, *go = gi + 3 * H;
    float *cb = c + b * H + j0, *hb = h + b * H + j0;
    const float *cp = cprev ? cprev + b * H + j0 : lstm_zeros;
    for (int64_t q = 0; q < 4; q++)
        add_bias(gi + q * H, b_ih ? b_ih + q * H + j0 : NULL, b_hh ? b_hh + q * H + j0 : NULL, n);
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
        float i_ = sigmoidf(gi[j]), f_ = sigmoidf(gf[j]), g_ = lstm_tanhf(gg[j]), o_ = sigmoidf(go[j]);
        float cv = i_ * g_ + f_ * cp[j];
        gi[j] = i_, gf[j] = f_, gg[j] = g_, go[j] = o_;
        cb[j] = cv;
        hb[j] = o_ * lstm_tanhf(cv);
    }
}

/* The step for every row, in chunks of LSTM_CHUNK units spread over the threads. */
static void gates_forward(float *restrict g, float *restrict c, float *restrict h, const float *restrict cprev,
                          const float *restrict b_ih, const float *restrict b_hh, int64_t B, int64_t H) {
    const int64_t nch = (H + LSTM_CHUNK - 1) / LSTM_CHUNK;
#pragma omp parallel for schedule(static) if (B * H >= LSTM_PAR_MIN)
    for (int64_t bc = 0; bc < B * nch; bc++) {
        const int64_t b = bc / nch, j0 = (bc % nch) * LSTM_CHUNK, j1 = j0 + LSTM_CHUNK < H ? j0 + LSTM_CHUNK : H;
        gates_forward_chunk(g, c, h, cprev, b_ih, b_hh, H, b, j0, j1 - j0);
    }
}

/* One backward step for row b and hidden units [j0, j0 + n): from the activated gates a (B, 4H),
 * the cell c (B, H), the previous cell cprev (NULL = zeros), dh = dy_t (NULL = zeros) + dhr (the
 * recurrent part, B, H) and the running dc (B, H, the gradient reaching c_t from step t+1), writes
 * the pre-activation gradients dg (B, 4H) and replaces dc by the gradient reaching c_{t-1}. */
static inline void gates_backward_chunk(float *restrict dg, float *restrict dc, const float *restrict a,
                                        const float *restrict c, const float *restrict cprev,
                                        const float *restrict dy, const float *restrict dhr, int64_t H, int64_t b,
                                        int64_t j0, int64_t n) {
    const float *ai = a + b * 4 * H + j0, *af = ai + H, *ag = ai + 2 * H, *ao = ai + 3 * H;
    float *di = dg + b * 4 * H + j0, *df = di + H, *dgg = di + 2 * H, *dout = di + 3 * H;
    const float *cb = c + b * H + j0, *cp = cprev ? cprev + b * H + j0 : lstm_zeros;
    const float *dyb = dy ? dy + b * H + j0 : lstm_zeros, *dhb = dhr + b * H + j0;
    float *dcb = dc + b * H + j0;
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
        const float i_ = ai[j], f_ = af[j], g_ = ag[j], o_ = ao[j];
        const float tc = lstm_tanhf(cb[j]);
        const float dh = dhb[j] + dyb[j];
        const float dcv = dcb[j] + dh * o_ * (1.0f - tc * tc);
        const float cpv = cp[j];
        di[j] = dcv * g_ * i_ * (1.0f - i_);
        df[j] = dcv * cpv * f_ * (1.0f - f_);
        dgg[j] = dcv * i_ * (1.0f - g_ * g_);
        dout[j] = dh * tc * o_ * (1.0f - o_);
        dcb[j] = dcv * f_;
    }
}

/* The step for every row, in chunks of LSTM_CHUNK units spread over the threads. */
static void gates_backward(float *restrict dg, float *restrict dc, const float *restrict a, const float *restrict c,
                           const float *restrict cprev, const float *restrict dy, const float *restrict dhr,
                           int64_t B, int64_t H) {
    const int64_t nch = (H + LSTM_CHUNK - 1) / LSTM_CHUNK;
#pragma omp parallel for schedule(static) if (B * H >= LSTM_PAR_MIN)
    for (int64_t bc = 0; bc < B * nch; bc++) {
        const int64_t b = bc / nch, j0 = (bc % nch) * LSTM_CHUNK, j1 = j0 + LSTM_CHUNK < H ? j0 + LSTM_CHUNK : H;
        gates_backward_chunk(dg, dc, a, c, cprev, dy, dhr, H, b, j0, j1 - j0);
    }
}

/* ---------------------------------------------------------------- one parallel region per call */

/* The time loops can run in one parallel region per call instead of two per step (the recurrent
 * GEMM's and the gate kernel's): each thread owns a range of hidden units, computes its columns of
 * the step's recurrent product with oneDNN's sgemm (sequential inside a parallel region) and the
 * gate kernel for its units, and the threads meet at one barrier per step. Under the passive wait
 * policy each fork/join wakes sleeping threads. Measured (`frugal lstm bench --variants dense`, 2
 * layers, H 650, T 35, 2 threads, AMD EPYC Zen 4-class, quiet, alternating with the per-step build,
 * forward + backward ms): B 20 184.6 / 180.0 -> 166.6 / 170.7, B 64 506 / 494 / 479 -> 469 / 467 /
 * 477 (docs/BENCHMARKS.md, "The LSTM time loops in one parallel region"). Used with at least two
 * threads outside any parallel region and at least FUSED_MIN_UNITS units per thread. */
#define FUSED_MIN_UNITS 64

/* Threads for the fused loops, 0 = the per-step path. */
static int fused_threads(int64_t B, int64_t H) {
    if (omp_in_parallel() || B * H < LSTM_PAR_MIN) return 0;
    int nt = omp_get_max_threads();
    if (nt > H / FUSED_MIN_UNITS) nt = (int)(H / FUSED_MIN_UNITS);
    return nt >= 2 ? nt : 0;
}

/* Thread i's units [*j0, *j1) of H split nt ways, boundaries on multiples of 16 (whole vectors). */
static void unit_range(int i, int nt, int64_t H, int64_t *j0, int64_t *j1) {
    const int64_t per = ((H + nt - 1) / nt + 15) / 16 * 16;
    *j0 = (int64_t)i * per < H ? (int64_t)i * per : H;
    *j1 = (int64_t)(i + 1) * per < H ? (int64_t)(i + 1) * per : H;
}

/* The fused loops' GEMM failures: a worker whose sgemm fails records its step (the first to fail
 * wins; the others skip their GEMMs from then on), and the loop's status names it. */
static void note_failed_step(atomic_llong *failed, int64_t t) {
    long long none = -1;
    atomic_compare_exchange_strong(failed, &none, (long long)t);
}

static fg_status fused_status(long long failed, const char *pass, int64_t B, int64_t H) {
    if (failed < 0) return FG_OK;
    return fg_fail(FG_ERR_BACKEND, "lstm %s, recurrent GEMM (B %lld, H %lld) at step %lld failed on a worker thread "
                   "(dnnl_sgemm)", pass, (long long)B, (long long)H, failed);
}

/* The forward's T steps in one region of nt threads: gates (T, B, 4H) hold X W_ih^T on entry; wt is
 * W_hh^T (H, 4H). Thread i adds h_{t-1} W_hh^T to its units' four gate column blocks (four sgemm
 * calls, so that the gates keep their (i, f, g, o) layout), runs the gate kernel on them, and
 * waits for the others before step t+1 reads all of h_t. */
static fg_status forward_steps_fused(int nt, float *y, float *gates, float *cells, const float *h0, const float *c0,
                                     const float *wt, const float *b_ih, const float *b_hh, int64_t T, int64_t B,
                                     int64_t H) {
    const int64_t G4 = 4 * H;
    atomic_llong failed = -1; /* the first step whose GEMM failed */
#pragma omp parallel num_threads(nt)
    {
        int64_t j0, j1;
        unit_range(omp_get_thread_num(), omp_get_num_threads(), H, &j0, &j1);
        for (int64_t t = 0; t < T; t++) {
            float *gt = gates + t * B * G4;
            const float *hprev = t > 0 ? y + (t - 1) * B * H : h0;
            const float *cprev = t > 0 ? cells + (t - 1) * B * H : c0;
            for (int64_t q = 0; hprev && j1 > j0 && q < 4 && atomic_load(&failed) < 0; q++)
                if (fg_sgemm('N', 'N', B, j1 - j0, H, 1.0f, hprev, H, wt + q * H + j0, G4, 1.0f, gt + q * H + j0, G4) !=
                    FG_OK)
                    note_failed_step(&failed, t);
            for (int64_t b = 0; b < B; b++)
                for (int64_t jc = j0; jc < j1; jc += LSTM_CHUNK)
                    gates_forward_chunk(gt, cells + t * B * H, y + t * B * H, cprev, b_ih, b_hh, H, b, jc,
                                        jc + LSTM_CHUNK < j1 ? LSTM_CHUNK : j1 - jc);
#pragma omp barrier
        }
    }
    return fused_status(atomic_load(&failed), "forward", B, H);
}

/* The dense backward's T steps in one region of nt threads: thread i runs the gate kernel on its
 * units (dG_t's columns of them, and dc), all wait until dG_t is whole, then thread i computes its
 * units' columns of dh_{t-1} = dG_t W_hh (dh0 at t = 0, skipped when NULL), which only its own gate
 * kernel reads at step t-1: one barrier per step. */
static fg_status backward_steps_fused(int nt, float *dG, float *dhr, float *dc, float *dh0, const float *gates,
                                      const float *cells, const float *c0, const float *dy, const float *w_hh,
                                      int64_t T, int64_t B, int64_t H) {
    const int64_t G4 = 4 * H, BH = B * H;
    atomic_llong failed = -1; /* the first step whose GEMM failed */
#pragma omp parallel num_threads(nt)
    {
        int64_t j0, j1;
        unit_range(omp_get_thread_num(), omp_get_num_threads(), H, &j0, &j1);
        for (int64_t t = T - 1; t >= 0; t--) {
            float *dgt = dG + t * B * G4;
            const float *cprev = t > 0 ? cells + (t - 1) * BH : c0;
            for (int64_t b = 0; b < B; b++)
                for (int64_t jc = j0; jc < j1; jc += LSTM_CHUNK)
                    gates_backward_chunk(dgt, dc, gates + t * B * G4, cells + t * BH, cprev, dy ? dy + t * BH : NULL,
                                         dhr, H, b, jc, jc + LSTM_CHUNK < j1 ? LSTM_CHUNK : j1 - jc);
#pragma omp barrier
            float *dst = t > 0 ? dhr : dh0;
            if (dst && j1 > j0 && atomic_load(&failed) < 0 &&
                fg_sgemm('N', 'N', B, j1 - j0, G4, 1.0f, dgt, G4, w_hh + j0, H, 0.0f, dst + j0, H) != FG_OK)
                note_failed_step(&failed, t);
        }
    }
    return fused_status(atomic_load(&failed), "backward", B, H);
}

/* ---------------------------------------------------------------- forward */

/* dst (cols, rows) = src (rows, cols)^T, in 32 x 32 tiles so both sides stay in cache. */
static void transpose(float *restrict dst, const float *restrict src, int64_t rows, int64_t cols) {
    const int64_t TL = 32, nr = (rows + TL - 1) / TL;
#pragma omp parallel for schedule(static) if (rows * cols >= 65536)
    for (int64_t rb = 0; rb < nr; rb++) {
        const int64_t r0 = rb * TL, r1 = r0 + TL < rows ? r0 + TL : rows;
        for (int64_t c0 = 0; c0 < cols; c0 += TL) {
            const int64_t c1 = c0 + TL < cols ? c0 + TL : cols;
            for (int64_t r = r0; r < r1; r++)
                for (int64_t c = c0; c < c1; c++) dst[c * rows + r] = src[r * cols + c];
        }
    }
}

fg_status fg_lstm_forward(float *y, float *hT, float *cT, float *saved, const float *x, const float *h0,
                          const float *c0, const float *w_ih, const float *w_hh, const float *b_ih,
                          const float *b_hh, const fg_lstm_desc *d, void *ws, size_t ws_bytes) {
    fg_status s = fg_lstm_check(d);
    if (s != FG_OK) return s;
    if ((s = check_ws("lstm forward", d, ws, ws_bytes)) != FG_OK) return s;
    FG_ASSERT(y && saved && x && w_ih && w_hh);
    const int64_t T = d->T, B = d->B, I = d->I, H = d->H, G4 = 4 * H, TB = T * B;
    float *gates = saved, *cells = saved + TB * G4;

    /* gates (T*B, 4H) = X (T*B, I) W_ih^T (I, 4H) in one GEMM (the biases join in gates_forward) */
    s = fg_sgemm('N', 'T', TB, G4, I, 1.0f, x, I, w_ih, I, 0.0f, gates, G4);
    if (s != FG_OK) return fg_fail(s, "lstm forward, input GEMM (T*B %lld, I %lld, 4H %lld): %s", (long long)TB,
                                   (long long)I, (long long)G4, fg_last_error());

    /* W_hh^T (H, 4H) once per call, so that the T recurrent GEMMs read B untransposed ('N', 'N'):
     * oneDNN's sgemm runs the thin (B, H) x (H, 4H) product 1.3x (H 650) to 1.8x (H 1500) faster
     * that way than with 'N', 'T' at B = 20 on this CPU (a transpose costs one pass over W_hh). */
    float *wt = ws;
    transpose(wt, w_hh, G4, H);

    const int nt = fused_threads(B, H);
    if (nt && (s = forward_steps_fused(nt, y, gates, cells, h0, c0, wt, b_ih, b_hh, T, B, H)) != FG_OK) return s;
    for (int64_t t = 0; !nt && t < T; t++) {
        float *gt = gates + t * B * G4;
        const float *hprev = t > 0 ? y + (t - 1) * B * H : h0;
        const float *cprev = t > 0 ? cells + (t - 1) * B * H : c0;
        /* gates_t (B, 4H) += h_{t-1} (B, H) W_hh^T (H, 4H); h_{-1} = h0, skipped when zero */
        if (hprev) {
            s = fg_sgemm('N', 'N', B, G4, H, 1.0f, hprev, H, wt, G4, 1.0f, gt, G4);
            if (s != FG_OK) return fg_fail(s, "lstm forward, recurrent GEMM at step %lld: %s", (long long)t,
                                           fg_last_error());
        }
        gates_forward(gt, cells + t * B * H, y + t * B * H, cprev, b_ih, b_hh, B, H);
    }
    if (hT) memcpy(hT, y + (T - 1) * B * H, (size_t)(B * H) * sizeof(float));
    if (cT) memcpy(cT, cells + (T - 1) * B * H, (size_t)(B * H) * sizeof(float));
    return FG_OK;
}

/* ---------------------------------------------------------------- backward */

/* ---------------------------------------------------------------- structured sparsity */

/* One block's score and index, sorted together so that the order is total: (score, index). */
typedef struct block_score {
    double score;
    int64_t q;
} block_score;

/* The sparse backward's plan and scratch, carved from the workspace after the dense part. */
typedef struct sparse_plan {
    fg_lstm_bwd variant;
    int64_t block, nb, ndrop; /* units per block, blocks per step, blocks dropped (step, structured);
                                 meprop: ndrop gate columns of the 4H dropped per step */
    float tau;                /* threshold */
    float *wblk;              /* step: (4H, H) W_hh rows in block-major order (see sparse_pack_w);
                                 structured, meprop: the kept rows of W_hh, (K, H) */
    float *dgc;               /* step, meprop: (B, <= 4H) the kept gate columns of one step;
                                 structured: (B, 4H) one step's full dG before the gather */
    block_score *sc;          /* (nb) block scores; meprop: (4H) column scores */
    uint8_t *keep;            /* (nb) 1 = kept; meprop (4H) */
    int64_t *map;             /* structured, meprop: (<= 4H) original gate row of each kept column */
    float *wic;               /* structured: (4K, I) the kept rows of W_ih */
    float *tmp;               /* structured: (4K, max(I, H)) compact weight gradients before the scatter */
} sparse_plan;

static int64_t n_blocks(int64_t H, int64_t block) { return (H + block - 1) / block; }

/* Blocks dropped per step: round(drop * nb), at most nb - 1 (something always flows back). */
static int64_t n_dropped(float drop, int64_t nb) {
    int64_t k = (int64_t)floor((double)drop * (double)nb + 0.5);
    return k < 0 ? 0 : k > nb - 1 ? nb - 1 : k;
}

/* Units of block q: [q*block, j1). */
static int64_t block_end(int64_t q, int64_t block, int64_t H) { return (q + 1) * block < H ? (q + 1) * block : H; }

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

fg_status fg_lstm_sparsity_check(const fg_lstm_desc *d, const fg_lstm_sparsity *sp) {
    fg_status s = fg_lstm_check(d);
    if (s != FG_OK) return s;
    if (!sp) return fg_fail(FG_ERR_INVALID, "lstm sparse backward: sparsity is NULL");
    if (!(sp->drop >= 0.0f && sp->drop < 1.0f))
        return fg_fail(FG_ERR_INVALID, "lstm sparse backward: drop = %g, expected 0 <= drop < 1 (the fraction of "
                       "hidden-unit blocks whose gate gradients are zeroed per step)", (double)sp->drop);
    if (sp->block < 1 || sp->block > d->H)
        return fg_fail(FG_ERR_INVALID, "lstm sparse backward: block = %lld, expected 1 <= block <= H = %lld (hidden "
                       "units per structural block)", (long long)sp->block, (long long)d->H);
    if ((int)sp->variant < 0 || sp->variant >= FG_LSTM_BWD_COUNT)
        return fg_fail(FG_ERR_INVALID, "lstm sparse backward: variant = %d, expected 0..%d (step, structured, dense, "
                       "threshold, meprop)", (int)sp->variant, FG_LSTM_BWD_COUNT - 1);
    if (!(sp->tau >= 0.0f && isfinite(sp->tau)))
        return fg_fail(FG_ERR_INVALID, "lstm sparse backward: tau = %g, expected a finite tau >= 0 (threshold: gate "
                       "gradients with |dG| < tau are zeroed)", (double)sp->tau);
    return FG_OK;
}

/* Byte offsets of the sparse extras after the dense workspace; total in *end. Buffers a variant
 * does not use have size 0. */
typedef struct sparse_layout {
    size_t wblk, dgc, sc, keep, map, wic, tmp, end;
} sparse_layout;

static sparse_layout sparse_layout_of(const fg_lstm_desc *d, fg_lstm_bwd v, int64_t nb) {
    sparse_layout l;
    const size_t H = (size_t)d->H, B = (size_t)d->B, I = (size_t)d->I, IH = I > H ? I : H;
    const size_t nsc = v == FG_LSTM_BWD_MEPROP ? 4 * H : (size_t)nb;
    l.wblk = align64(fg_lstm_workspace_bytes(d));
    l.dgc = l.wblk + align64(4 * H * H * sizeof(float));
    l.sc = l.dgc + align64(B * 4 * H * sizeof(float));
    l.keep = l.sc + align64(nsc * sizeof(block_score));
    l.map = l.keep + align64(nsc);
    l.wic = l.map + (v == FG_LSTM_BWD_STEP ? 0 : align64(4 * H * sizeof(int64_t)));
    l.tmp = l.wic + (v == FG_LSTM_BWD_STRUCTURED ? align64(4 * H * I * sizeof(float)) : 0);
    l.end = l.tmp + (v == FG_LSTM_BWD_STRUCTURED ? align64(4 * H * IH * sizeof(float)) : 0);
    return l;
}

/* Gate columns (of 4H) meprop drops per step: round(drop * 4H), at most 4H - 1. */
static int64_t n_dropped_cols(float drop, int64_t H) { return n_dropped(drop, 4 * H); }

/* 1 when this sparsity zeroes anything, i.e. the kernel leaves the dense code. */
static int sparsity_drops(const fg_lstm_desc *d, const fg_lstm_sparsity *sp) {
    switch (sp->variant) {
    case FG_LSTM_BWD_STEP:
    case FG_LSTM_BWD_STRUCTURED: return n_dropped(sp->drop, n_blocks(d->H, sp->block)) > 0;
    case FG_LSTM_BWD_MEPROP: return n_dropped_cols(sp->drop, d->H) > 0;
    case FG_LSTM_BWD_THRESHOLD: return sp->tau > 0.0f;
    default: return 0;
    }
}

size_t fg_lstm_sparse_workspace_bytes(const fg_lstm_desc *d, const fg_lstm_sparsity *sp) {
    fg_status s = fg_lstm_sparsity_check(d, sp);
    if (s != FG_OK) {
        fg_clear_error();
        return 0;
    }
    /* threshold masks dG in place and keeps the dense GEMMs: no extras */
    if (!sparsity_drops(d, sp) || sp->variant == FG_LSTM_BWD_THRESHOLD) return fg_lstm_workspace_bytes(d);
    return sparse_layout_of(d, sp->variant, n_blocks(d->H, sp->block)).end;
}

size_t fg_lstm_sparse_workspace_bytes_max(const fg_lstm_desc *d, int64_t block) {
    size_t m = 0;
    for (int v = 0; v < FG_LSTM_BWD_COUNT; v++) {
        /* drop 0.5 drops something whenever anything can be dropped; the size does not depend on
         * how much */
        const fg_lstm_sparsity sp = {0.5f, block, (fg_lstm_bwd)v, 1.0f};
        const size_t n = fg_lstm_sparse_workspace_bytes(d, &sp);
        if (n > m) m = n;
    }
    return m;
}

static const char *const BWD_NAMES[FG_LSTM_BWD_COUNT] = {"step", "structured", "dense", "threshold", "meprop"};

const char *fg_lstm_bwd_name(fg_lstm_bwd v) { return v >= 0 && v < FG_LSTM_BWD_COUNT ? BWD_NAMES[v] : "?"; }

fg_lstm_bwd fg_lstm_bwd_parse(const char *name) {
    for (int v = 0; v < FG_LSTM_BWD_COUNT; v++)
        if (name && strcmp(name, BWD_NAMES[v]) == 0) return (fg_lstm_bwd)v;
    return FG_LSTM_BWD_COUNT;
}

static int bs_less(block_score x, block_score y) { return x.score < y.score || (x.score == y.score && x.q < y.q); }

/* Max-heap sift-down of a[root] within a[0..n). */
static void sift_down(block_score *a, int64_t root, int64_t n) {
    for (;;) {
        int64_t c = 2 * root + 1;
        if (c >= n) return;
        if (c + 1 < n && bs_less(a[c], a[c + 1])) c++;
        if (!bs_less(a[root], a[c])) return;
        block_score t = a[root];
        a[root] = a[c], a[c] = t;
        root = c;
    }
}

/* Scores of every block of dg (B, 4H): sum over b, then gate g, then unit j of |dg|, in double and
 * in that order (the naive twin sums in the same order, so equal dG gives equal masks). Then
 * orders the blocks by (score, index) and sets keep[] (0 for the ndrop first). */
static void sparse_select(sparse_plan *p, const float *dg, int64_t B, int64_t H) {
    const int64_t G4 = 4 * H, block = p->block, nb = p->nb;
#pragma omp parallel for schedule(static) if (B * G4 >= 65536)
    for (int64_t q = 0; q < nb; q++) {
        const int64_t j0 = q * block, j1 = block_end(q, block, H);
        double acc = 0.0;
        for (int64_t b = 0; b < B; b++)
            for (int64_t g = 0; g < 4; g++) {
                const float *row = dg + b * G4 + g * H;
                for (int64_t j = j0; j < j1; j++) acc += fabs((double)row[j]);
            }
        p->sc[q].score = acc, p->sc[q].q = q;
    }
    /* heap sort, in place (no malloc; quadratic sorts would hurt at block = 1, H = 1500) */
    for (int64_t i = nb / 2 - 1; i >= 0; i--) sift_down(p->sc, i, nb);
    for (int64_t n = nb - 1; n > 0; n--) {
        block_score t = p->sc[0];
        p->sc[0] = p->sc[n], p->sc[n] = t;
        sift_down(p->sc, 0, n);
    }
    memset(p->keep, 1, (size_t)nb);
    for (int64_t k = 0; k < p->ndrop; k++) p->keep[p->sc[k].q] = 0;
}

/* Zeroes the dropped blocks' gate columns of dg (B, 4H) and gathers the kept ones into dgc
 * (B, K) in block-major order (block, gate, unit), the order of wblk's rows; returns K. */
static int64_t sparse_apply(const sparse_plan *p, float *dg, int64_t B, int64_t H) {
    const int64_t G4 = 4 * H, block = p->block, nb = p->nb;
    int64_t K = 0;
    for (int64_t q = 0; q < nb; q++)
        if (p->keep[q]) K += 4 * (block_end(q, block, H) - q * block);
#pragma omp parallel for schedule(static) if (B * G4 >= 65536)
    for (int64_t b = 0; b < B; b++) {
        float *row = dg + b * G4, *out = p->dgc + b * K;
        for (int64_t q = 0; q < nb; q++) {
            const int64_t j0 = q * block, len = block_end(q, block, H) - j0;
            for (int64_t g = 0; g < 4; g++) {
                float *src = row + g * H + j0;
                if (p->keep[q]) {
                    memcpy(out, src, (size_t)len * sizeof(float));
                    out += len;
                } else {
                    memset(src, 0, (size_t)len * sizeof(float));
                }
            }
        }
    }
    return K;
}

/* wblk (4H, H): block q's rows start at row 4*q*block and hold W_hh rows g*H + j for g = 0..3,
 * j = q*block .. block_end - 1 (gate-major within the block), so that a run of consecutive kept
 * blocks is one contiguous slab of rows. Done once per call, amortized over the T steps. */
static void sparse_pack_w(const sparse_plan *p, const float *w_hh, int64_t H) {
    const int64_t block = p->block, nb = p->nb;
#pragma omp parallel for schedule(static) if (H * H >= 65536)
    for (int64_t q = 0; q < nb; q++) {
        const int64_t j0 = q * block, len = block_end(q, block, H) - j0;
        float *dst = p->wblk + 4 * j0 * H;
        for (int64_t g = 0; g < 4; g++)
            memcpy(dst + g * len * H, w_hh + (g * H + j0) * H, (size_t)(len * H) * sizeof(float));
    }
}

/* dst (B, H) = dgc (B, K) wblk[kept rows] (K, H): one GEMM per run of consecutive kept blocks
 * (their rows are contiguous in wblk), the first writing, the others adding. */
static fg_status sparse_recurrent_gemm(const sparse_plan *p, float *dst, int64_t B, int64_t H, int64_t K,
                                       double *flops) {
    const int64_t block = p->block, nb = p->nb;
    int64_t col = 0;
    float beta = 0.0f;
    for (int64_t q = 0; q < nb;) {
        if (!p->keep[q]) {
            q++;
            continue;
        }
        int64_t q1 = q;
        while (q1 < nb && p->keep[q1]) q1++;
        const int64_t rows = 4 * (block_end(q1 - 1, block, H) - q * block);
        fg_status s = fg_sgemm('N', 'N', B, H, rows, 1.0f, p->dgc + col, K, p->wblk + 4 * q * block * H, H, beta,
                               dst, H);
        if (s != FG_OK) return s;
        *flops += 2.0 * (double)B * (double)rows * (double)H;
        col += rows, beta = 1.0f, q = q1;
    }
    FG_ASSERT(col == K);
    return FG_OK;
}

/* GEMM FLOPs of the dense backward for this call (what the stats compare against). */
static double dense_bwd_flops(const fg_lstm_desc *d, int has_dh0, int has_dx, int has_dwih, int has_dwhh,
                              int has_h0) {
    const double T = (double)d->T, B = (double)d->B, I = (double)d->I, H = (double)d->H;
    double f = 2.0 * B * 4.0 * H * H * (T - 1 + (has_dh0 ? 1 : 0));
    if (has_dwih) f += 2.0 * 4.0 * H * I * T * B;
    if (has_dwhh) f += 2.0 * 4.0 * H * H * ((T - 1) * B + (has_h0 ? B : 0));
    if (has_dx) f += 2.0 * T * B * 4.0 * H * I;
    return f;
}

/* ---------------------------------------------------------------- meprop and threshold */

/* Partial selection (quickselect, Hoare partition around a median of three): afterwards a[0..k)
 * hold the k smallest by (score, index) and a[k..n) the rest, in no particular order; O(n) on
 * average. The order is total, so the selected set does not depend on the algorithm. */
static void select_smallest(block_score *a, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1;
    while (hi > lo) {
        const int64_t mid = lo + (hi - lo) / 2;
        /* median of three into a[mid] */
        if (bs_less(a[mid], a[lo])) { block_score t = a[mid]; a[mid] = a[lo], a[lo] = t; }
        if (bs_less(a[hi], a[mid])) {
            block_score t = a[mid];
            a[mid] = a[hi], a[hi] = t;
            if (bs_less(a[mid], a[lo])) { t = a[mid]; a[mid] = a[lo], a[lo] = t; }
        }
        const block_score piv = a[mid];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (bs_less(a[i], piv)) i++;
            while (bs_less(piv, a[j])) j--;
            if (i <= j) {
                block_score t = a[i];
                a[i] = a[j], a[j] = t;
                i++, j--;
            }
        }
        /* a[lo..j] <= piv <= a[i..hi], and a[j+1..i-1] == piv (one element at most: the order is total) */
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return;
    }
}

/* meprop, one step: column scores of dg (B, 4H), sum over b in order of |dg| in double; the
 * p->ndrop lowest by (score, column) dropped: zeroed in dg; the kept ones gathered into dgc
 * (B, k) in column order, their indices into p->map. Returns k. */
static int64_t meprop_select_apply(sparse_plan *p, float *dg, int64_t B, int64_t H) {
    const int64_t G4 = 4 * H;
    /* sc[].score accumulates row by row, so the inner loop runs along a row */
    for (int64_t c = 0; c < G4; c++) p->sc[c].score = 0.0, p->sc[c].q = c;
    for (int64_t b = 0; b < B; b++) {
        const float *row = dg + b * G4;
        for (int64_t c = 0; c < G4; c++) p->sc[c].score += fabs((double)row[c]);
    }
    select_smallest(p->sc, G4, p->ndrop);
    memset(p->keep, 1, (size_t)G4);
    for (int64_t i = 0; i < p->ndrop; i++) p->keep[p->sc[i].q] = 0;
    int64_t k = 0;
    for (int64_t c = 0; c < G4; c++)
        if (p->keep[c]) p->map[k++] = c;
#pragma omp parallel for schedule(static) if (B * G4 >= 65536)
    for (int64_t b = 0; b < B; b++) {
        float *row = dg + b * G4, *out = p->dgc + b * k;
        for (int64_t i = 0; i < k; i++) out[i] = row[p->map[i]];
        for (int64_t c = 0; c < G4; c++)
            if (!p->keep[c]) row[c] = 0.0f;
    }
    return k;
}

/* dst (B, H) = dgc (B, k) W_hh[map] (k, H): the kept rows gathered into wblk first (meProp's
 * compacted product; the rows change every step). */
static fg_status meprop_recurrent_gemm(const sparse_plan *p, float *dst, const float *w_hh, int64_t B, int64_t H,
                                       int64_t k, double *flops) {
#pragma omp parallel for schedule(static) if (k * H >= 65536)
    for (int64_t i = 0; i < k; i++) memcpy(p->wblk + i * H, w_hh + p->map[i] * H, (size_t)H * sizeof(float));
    *flops += 2.0 * (double)B * (double)k * (double)H;
    return fg_sgemm('N', 'N', B, H, k, 1.0f, p->dgc, k, p->wblk, H, 0.0f, dst, H);
}

/* threshold: zeroes every |dg| < tau of dg (n); returns how many are zero afterwards. */
static int64_t threshold_apply(float *dg, int64_t n, float tau) {
    int64_t z = 0;
#pragma omp parallel for schedule(static) reduction(+ : z) if (n >= 65536)
    for (int64_t i = 0; i < n; i++)
        if (fabsf(dg[i]) < tau) dg[i] = 0.0f, z++;
    return z;
}

/* Fills stats (may be NULL) from per-call counts. */
static void fill_stats(fg_lstm_sparse_stats *stats, const fg_lstm_desc *d, const sparse_plan *p, int64_t kept_units,
                       int64_t kept_cols, int64_t zeros, double flops, double dense_flops) {
    if (!stats) return;
    const double all = (double)d->T * (double)d->B * 4.0 * (double)d->H;
    stats->blocks = p ? p->nb : 1;
    stats->dropped = p && (p->variant == FG_LSTM_BWD_STEP || p->variant == FG_LSTM_BWD_STRUCTURED) ? p->ndrop : 0;
    stats->kept_blocks = d->T * (stats->blocks - stats->dropped);
    stats->kept_units = kept_units;
    stats->kept_cols = kept_cols;
    stats->sparsity = p && p->variant == FG_LSTM_BWD_THRESHOLD
                          ? (double)zeros / all
                          : 1.0 - (double)kept_cols / ((double)d->T * 4.0 * (double)d->H);
    stats->gemm_flops = flops;
    stats->gemm_flops_dense = dense_flops;
}

/* ---------------------------------------------------------------- structured, one kept set per call */

/* From the block mask p->keep: p->map[c] = the gate row (g*H + j) of compact column c, gate-major
 * (all kept units of gate i, then f, g, o) so that each gate's kept units are in increasing
 * order; gathers the kept rows of W_hh into wblk (K4, H) and, when wanted, of W_ih into wic
 * (K4, I). Returns K4 = 4 * kept units. */
static int64_t call_plan(sparse_plan *p, const float *w_hh, const float *w_ih, int64_t H, int64_t I) {
    int64_t K4 = 0;
    for (int64_t g = 0; g < 4; g++)
        for (int64_t q = 0; q < p->nb; q++)
            if (p->keep[q])
                for (int64_t j = q * p->block; j < block_end(q, p->block, H); j++) p->map[K4++] = g * H + j;
#pragma omp parallel for schedule(static) if (K4 * H >= 65536)
    for (int64_t c = 0; c < K4; c++) {
        memcpy(p->wblk + c * H, w_hh + p->map[c] * H, (size_t)H * sizeof(float));
        if (w_ih) memcpy(p->wic + c * I, w_ih + p->map[c] * I, (size_t)I * sizeof(float));
    }
    return K4;
}

/* dst[map[c], :] += src[c, :] for c < K4: src (K4, n), dst (4H, n). */
static void scatter_add_rows(float *dst, const float *src, const int64_t *map, int64_t K4, int64_t n) {
#pragma omp parallel for schedule(static) if (K4 * n >= 65536)
    for (int64_t c = 0; c < K4; c++) {
        float *o = dst + map[c] * n;
        const float *r = src + c * n;
#pragma omp simd
        for (int64_t i = 0; i < n; i++) o[i] += r[i];
    }
}

/* The structured backward with one kept set of blocks for the whole call (p->variant ==
 * FG_LSTM_BWD_STRUCTURED, p->ndrop > 0). The set is chosen on dG_{T-1}, the first step backward
 * computes, by the same scores as the per-step variant; every step's dG_t (B, 4H) is computed
 * into p->dgc, and its K4 kept columns gathered into the compact dGc (T*B, K4) at the start of the
 * workspace. Then every GEMM is compact:
 *   dh_{t-1} = dGc_t (B, K4) W_hh[map] (K4, H)                        per step
 *   dW_ih[map] += dGc^T (K4, T*B) X (T*B, I)                          into tmp, then scattered
 *   dW_hh[map] += dGc[1:]^T h[:-1] + dGc[0]^T h0   (K4, H)            into tmp, then scattered
 *   db[map] += colsum(dGc);  dx = dGc (T*B, K4) W_ih[map] (K4, I)
 * so the backward's GEMM FLOPs are the dense ones times K4 / 4H. */
static fg_status lstm_backward_call(float *dx, float *dh0, float *dc0, float *dw_ih, float *dw_hh, float *db_ih,
                                    float *db_hh, const float *dy, const float *dhT, const float *dcT, const float *x,
                                    const float *h0, const float *c0, const float *w_ih, const float *w_hh,
                                    const float *y, const float *saved, const fg_lstm_desc *d, void *ws,
                                    sparse_plan *p, fg_lstm_sparse_stats *stats) {
    fg_status s;
    const int64_t T = d->T, B = d->B, I = d->I, H = d->H, G4 = 4 * H, TB = T * B, BH = B * H;
    const float *gates = saved, *cells = saved + TB * G4;
    float *dGc = ws, *dhr = (float *)ws + TB * G4, *dc = dhr + BH, *dgs = p->dgc;
    double flops = 0.0;
    int64_t K4 = 0;

    if (dhT) memcpy(dhr, dhT, (size_t)BH * sizeof(float));
    else memset(dhr, 0, (size_t)BH * sizeof(float));
    if (dcT) memcpy(dc, dcT, (size_t)BH * sizeof(float));
    else memset(dc, 0, (size_t)BH * sizeof(float));

    for (int64_t t = T - 1; t >= 0; t--) {
        const float *cprev = t > 0 ? cells + (t - 1) * B * H : c0;
        gates_backward(dgs, dc, gates + t * B * G4, cells + t * BH, cprev, dy ? dy + t * BH : NULL, dhr, B, H);
        if (t == T - 1) {
            sparse_select(p, dgs, B, H);
            K4 = call_plan(p, w_hh, dx ? w_ih : NULL, H, I);
        }
        float *ct = dGc + t * B * K4;
#pragma omp parallel for schedule(static) if (B * K4 >= 65536)
        for (int64_t b = 0; b < B; b++)
            for (int64_t c = 0; c < K4; c++) ct[b * K4 + c] = dgs[b * G4 + p->map[c]];
        float *dst = t > 0 ? dhr : dh0;
        if (dst) {
            s = fg_sgemm('N', 'N', B, H, K4, 1.0f, ct, K4, p->wblk, H, 0.0f, dst, H);
            if (s != FG_OK) return fg_fail(s, "lstm structured backward, recurrent GEMM at step %lld: %s",
                                           (long long)t, fg_last_error());
            flops += 2.0 * (double)B * (double)K4 * (double)H;
        }
    }
    if (dc0) memcpy(dc0, dc, (size_t)BH * sizeof(float));
    if (stats && stats->keep)
        for (int64_t t = 0; t < T; t++) memcpy(stats->keep + t * p->nb, p->keep, (size_t)p->nb);

    if (dw_ih) { /* tmp (K4, I) = dGc^T X */
        s = fg_sgemm('T', 'N', K4, I, TB, 1.0f, dGc, K4, x, I, 0.0f, p->tmp, I);
        if (s != FG_OK) return fg_fail(s, "lstm structured backward, dW_ih GEMM: %s", fg_last_error());
        flops += 2.0 * (double)K4 * (double)I * (double)TB;
        scatter_add_rows(dw_ih, p->tmp, p->map, K4, I);
    }
    if (dw_hh && (T > 1 || h0)) { /* tmp (K4, H) = dGc[1:]^T h[0:T-1] + dGc[0]^T h0 */
        float beta = 0.0f;
        if (T > 1) {
            s = fg_sgemm('T', 'N', K4, H, (T - 1) * B, 1.0f, dGc + B * K4, K4, y, H, 0.0f, p->tmp, H);
            if (s != FG_OK) return fg_fail(s, "lstm structured backward, dW_hh GEMM: %s", fg_last_error());
            flops += 2.0 * (double)K4 * (double)H * (double)((T - 1) * B);
            beta = 1.0f;
        }
        if (h0) {
            s = fg_sgemm('T', 'N', K4, H, B, 1.0f, dGc, K4, h0, H, beta, p->tmp, H);
            if (s != FG_OK) return fg_fail(s, "lstm structured backward, dW_hh (h0 term) GEMM: %s", fg_last_error());
            flops += 2.0 * (double)K4 * (double)H * (double)B;
        }
        scatter_add_rows(dw_hh, p->tmp, p->map, K4, H);
    }
    if (db_ih || db_hh) {
        memset(p->tmp, 0, (size_t)K4 * sizeof(float));
        fg_colsum_accumulate(p->tmp, NULL, dGc, TB, K4);
        for (int64_t c = 0; c < K4; c++) {
            if (db_ih) db_ih[p->map[c]] += p->tmp[c];
            if (db_hh) db_hh[p->map[c]] += p->tmp[c];
        }
    }
    if (dx) { /* dx (T*B, I) = dGc (T*B, K4) W_ih[map] (K4, I) */
        s = fg_sgemm('N', 'N', TB, I, K4, 1.0f, dGc, K4, p->wic, I, 0.0f, dx, I);
        if (s != FG_OK) return fg_fail(s, "lstm structured backward, dx GEMM: %s", fg_last_error());
        flops += 2.0 * (double)TB * (double)K4 * (double)I;
    }
    fill_stats(stats, d, p, T * (K4 / 4), T * K4, 0, flops,
               dense_bwd_flops(d, dh0 != NULL, dx != NULL, dw_ih != NULL, dw_hh != NULL, h0 != NULL));
    return FG_OK;
}

/* ---------------------------------------------------------------- backward */

/* The backward of both fg_lstm_backward (p = NULL) and fg_lstm_backward_sparse. With p = NULL the
 * code and its GEMM calls are exactly the dense ones. stats (may be NULL) is filled for the steps. */
static fg_status lstm_backward(float *dx, float *dh0, float *dc0, float *dw_ih, float *dw_hh, float *db_ih,
                               float *db_hh, const float *dy, const float *dhT, const float *dcT, const float *x,
                               const float *h0, const float *c0, const float *w_ih, const float *w_hh,
                               const float *y, const float *saved, const fg_lstm_desc *d, void *ws,
                               sparse_plan *p, fg_lstm_sparse_stats *stats) {
    fg_status s;
    const int64_t T = d->T, B = d->B, I = d->I, H = d->H, G4 = 4 * H, TB = T * B, BH = B * H;
    const float *gates = saved, *cells = saved + TB * G4;
    float *dG = ws, *dhr = dG + TB * G4, *dc = dhr + BH;
    double flops = 0.0;
    int64_t kept_units = 0, kept_cols = 0, zeros = 0;

    /* dh and dc entering step T-1 from after the sequence */
    if (dhT) memcpy(dhr, dhT, (size_t)BH * sizeof(float));
    else memset(dhr, 0, (size_t)BH * sizeof(float));
    if (dcT) memcpy(dc, dcT, (size_t)BH * sizeof(float));
    else memset(dc, 0, (size_t)BH * sizeof(float));
    if (p && p->variant == FG_LSTM_BWD_STEP) sparse_pack_w(p, w_hh, H);

    /* dense (also a sparse call that drops nothing): the steps in one parallel region when it pays */
    const int nt = !p || p->variant == FG_LSTM_BWD_DENSE ? fused_threads(B, H) : 0;
    if (nt) {
        if ((s = backward_steps_fused(nt, dG, dhr, dc, dh0, gates, cells, c0, dy, w_hh, T, B, H)) != FG_OK) return s;
        kept_units = T * H, kept_cols = T * G4;
        flops += 2.0 * (double)B * (double)G4 * (double)H * (double)(T - 1 + (dh0 != NULL));
    }
    for (int64_t t = T - 1; !nt && t >= 0; t--) {
        float *dgt = dG + t * B * G4;
        const float *cprev = t > 0 ? cells + (t - 1) * B * H : c0;
        gates_backward(dgt, dc, gates + t * B * G4, cells + t * BH, cprev, dy ? dy + t * BH : NULL, dhr, B, H);
        /* dh_{t-1} (B, H) = dG_t (B, 4H) W_hh (4H, H); at t = 0 that is dh0 (skipped when unwanted) */
        float *dst = t > 0 ? dhr : dh0;
        if (p && p->variant == FG_LSTM_BWD_MEPROP) {
            /* meProp: the top k of the 4H gate columns, the rest zeroed; compact recurrent GEMM */
            const int64_t k = meprop_select_apply(p, dgt, B, H);
            kept_cols += k;
            if (dst) {
                s = meprop_recurrent_gemm(p, dst, w_hh, B, H, k, &flops);
                if (s != FG_OK) return fg_fail(s, "lstm meprop backward, recurrent GEMM at step %lld: %s",
                                               (long long)t, fg_last_error());
            }
            continue;
        }
        if (p && p->variant == FG_LSTM_BWD_THRESHOLD) zeros += threshold_apply(dgt, B * G4, p->tau);
        if (p && p->variant == FG_LSTM_BWD_STEP) {
            /* Structured sparsity (arXiv 1806.00512): zero the lowest-scoring blocks of dG_t, so
             * the dropped gradient flows neither back in time nor into the parameter gradients,
             * and run the recurrent GEMM over the kept columns only: (B, K) x (K, H). */
            sparse_select(p, dgt, B, H);
            const int64_t K = sparse_apply(p, dgt, B, H);
            kept_units += K / 4;
            kept_cols += K;
            if (stats && stats->keep) memcpy(stats->keep + t * p->nb, p->keep, (size_t)p->nb);
            if (dst) {
                s = sparse_recurrent_gemm(p, dst, B, H, K, &flops);
                if (s != FG_OK) return fg_fail(s, "lstm sparse backward, recurrent GEMM at step %lld: %s",
                                               (long long)t, fg_last_error());
            }
            continue;
        }
        kept_units += H;
        kept_cols += G4;
        if (dst) {
            s = fg_sgemm('N', 'N', B, H, G4, 1.0f, dgt, G4, w_hh, H, 0.0f, dst, H);
            if (s != FG_OK) return fg_fail(s, "lstm backward, recurrent GEMM at step %lld: %s", (long long)t,
                                           fg_last_error());
            flops += 2.0 * (double)B * (double)G4 * (double)H;
        }
    }
    if (dc0) memcpy(dc0, dc, (size_t)BH * sizeof(float));

    /* Everything below is big GEMMs over all steps. With the sparse mask they stay dense over the
     * zeroed dG: skipping the dropped rows would need one GEMM per step (the kept set changes
     * from step to step), i.e. T rank-B updates of dW_ih / dW_hh and T (B, K) x (K, I) products
     * for dx, each streaming its weight slab from memory; on this CPU those run slower than the
     * one dense GEMM they replace at PTB sizes (see the opening comment). */
    if (dw_ih) { /* dW_ih (4H, I) += dG^T (4H, T*B) X (T*B, I) */
        s = fg_sgemm('T', 'N', G4, I, TB, 1.0f, dG, G4, x, I, 1.0f, dw_ih, I);
        if (s != FG_OK) return fg_fail(s, "lstm backward, dW_ih GEMM: %s", fg_last_error());
        flops += 2.0 * (double)G4 * (double)I * (double)TB;
    }
    if (dw_hh) { /* dW_hh (4H, H) += dG[1:]^T h[0:T-1] + dG[0]^T h0 */
        if (T > 1) {
            s = fg_sgemm('T', 'N', G4, H, (T - 1) * B, 1.0f, dG + B * G4, G4, y, H, 1.0f, dw_hh, H);
            if (s != FG_OK) return fg_fail(s, "lstm backward, dW_hh GEMM: %s", fg_last_error());
            flops += 2.0 * (double)G4 * (double)H * (double)((T - 1) * B);
        }
        if (h0) {
            s = fg_sgemm('T', 'N', G4, H, B, 1.0f, dG, G4, h0, H, 1.0f, dw_hh, H);
            if (s != FG_OK) return fg_fail(s, "lstm backward, dW_hh (h0 term) GEMM: %s", fg_last_error());
            flops += 2.0 * (double)G4 * (double)H * (double)B;
        }
    }
    fg_colsum_accumulate(db_ih, db_hh, dG, TB, G4);
    if (dx) { /* dx (T*B, I) = dG (T*B, 4H) W_ih (4H, I) */
        s = fg_sgemm('N', 'N', TB, I, G4, 1.0f, dG, G4, w_ih, I, 0.0f, dx, I);
        if (s != FG_OK) return fg_fail(s, "lstm backward, dx GEMM: %s", fg_last_error());
        flops += 2.0 * (double)TB * (double)G4 * (double)I;
    }
    if (p && p->variant == FG_LSTM_BWD_MEPROP) kept_units = kept_cols / 4;
    if (stats && stats->keep && !(p && p->variant == FG_LSTM_BWD_STEP))
        memset(stats->keep, 1, (size_t)(T * (p ? p->nb : 1)));
    fill_stats(stats, d, p, kept_units, kept_cols, zeros, flops,
               dense_bwd_flops(d, dh0 != NULL, dx != NULL, dw_ih != NULL, dw_hh != NULL, h0 != NULL));
    return FG_OK;
}

fg_status fg_lstm_backward(float *dx, float *dh0, float *dc0, float *dw_ih, float *dw_hh, float *db_ih, float *db_hh,
                           const float *dy, const float *dhT, const float *dcT, const float *x, const float *h0,
                           const float *c0, const float *w_ih, const float *w_hh, const float *y,
                           const float *saved, const fg_lstm_desc *d, void *ws, size_t ws_bytes) {
    fg_status s = fg_lstm_check(d);
    if (s != FG_OK) return s;
    if ((s = check_ws("lstm backward", d, ws, ws_bytes)) != FG_OK) return s;
    FG_ASSERT(saved && x && w_ih && w_hh && y);
    return lstm_backward(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dy, dhT, dcT, x, h0, c0, w_ih, w_hh, y, saved, d,
                         ws, NULL, NULL);
}

/* Checks the sparsity and the workspace, fills the counting part of stats and, when blocks are
 * dropped, the plan carved from ws (*use = 1). */
static fg_status sparse_setup(const char *what, const fg_lstm_desc *d, const fg_lstm_sparsity *sp, void *ws,
                              size_t ws_bytes, sparse_plan *p, int *use) {
    fg_status s = fg_lstm_sparsity_check(d, sp);
    if (s != FG_OK) return s;
    const size_t need = fg_lstm_sparse_workspace_bytes(d, sp);
    if (ws_bytes < need || !ws)
        return fg_fail(FG_ERR_INVALID, "%s: workspace of %zu bytes%s, needs %zu (fg_lstm_sparse_workspace_bytes)",
                       what, ws_bytes, ws ? "" : " (NULL)", need);
    memset(p, 0, sizeof *p);
    p->block = sp->block;
    p->nb = n_blocks(d->H, sp->block);
    p->tau = sp->tau;
    *use = sparsity_drops(d, sp);
    /* nothing dropped: the dense backward's code, bit for bit */
    p->variant = *use ? sp->variant : FG_LSTM_BWD_DENSE;
    if (p->variant == FG_LSTM_BWD_STEP || p->variant == FG_LSTM_BWD_STRUCTURED) p->ndrop = n_dropped(sp->drop, p->nb);
    if (p->variant == FG_LSTM_BWD_MEPROP) p->ndrop = n_dropped_cols(sp->drop, d->H);
    if (*use && p->variant != FG_LSTM_BWD_THRESHOLD) {
        const sparse_layout l = sparse_layout_of(d, p->variant, p->nb);
        char *base = ws;
        p->wblk = (float *)(base + l.wblk), p->dgc = (float *)(base + l.dgc);
        p->sc = (block_score *)(base + l.sc), p->keep = (uint8_t *)(base + l.keep);
        p->map = (int64_t *)(base + l.map), p->wic = (float *)(base + l.wic), p->tmp = (float *)(base + l.tmp);
    }
    return FG_OK;
}

fg_status fg_lstm_backward_sparse(float *dx, float *dh0, float *dc0, float *dw_ih, float *dw_hh, float *db_ih,
                                  float *db_hh, const float *dy, const float *dhT, const float *dcT, const float *x,
                                  const float *h0, const float *c0, const float *w_ih, const float *w_hh,
                                  const float *y, const float *saved, const fg_lstm_desc *d, void *ws,
                                  size_t ws_bytes, const fg_lstm_sparsity *sp, fg_lstm_sparse_stats *stats) {
    sparse_plan plan;
    int use = 0;
    fg_status s = sparse_setup("lstm sparse backward", d, sp, ws, ws_bytes, &plan, &use);
    if (s != FG_OK) return s;
    FG_ASSERT(saved && x && w_ih && w_hh && y);
    if (plan.variant == FG_LSTM_BWD_STRUCTURED)
        return lstm_backward_call(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dy, dhT, dcT, x, h0, c0, w_ih, w_hh, y,
                                  saved, d, ws, &plan, stats);
    return lstm_backward(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dy, dhT, dcT, x, h0, c0, w_ih, w_hh, y, saved, d,
                         ws, &plan, stats);
}

/* ---------------------------------------------------------------- naive twins */

static double sigmoid_d(double v) { return 1.0 / (1.0 + exp(-v)); }

fg_status fg_lstm_forward_naive(float *y, float *hT, float *cT, float *saved, const float *x, const float *h0,
                                const float *c0, const float *w_ih, const float *w_hh, const float *b_ih,
                                const float *b_hh, const fg_lstm_desc *d, void *ws, size_t ws_bytes) {
    fg_status s = fg_lstm_check(d);
    if (s != FG_OK) return s;
    if ((s = check_ws("lstm forward (naive)", d, ws, ws_bytes)) != FG_OK) return s;
    const int64_t T = d->T, B = d->B, I = d->I, H = d->H;
    float *gates = saved, *cells = saved + T * B * 4 * H;
    for (int64_t t = 0; t < T; t++)
        for (int64_t b = 0; b < B; b++) {
            const float *xt = x + (t * B + b) * I;
            const float *hp = t > 0 ? y + ((t - 1) * B + b) * H : (h0 ? h0 + b * H : NULL);
            const float *cp = t > 0 ? cells + ((t - 1) * B + b) * H : (c0 ? c0 + b * H : NULL);
            float *a = gates + (t * B + b) * 4 * H;
            for (int64_t k = 0; k < 4 * H; k++) {
                double acc = (b_ih ? b_ih[k] : 0.0) + (b_hh ? b_hh[k] : 0.0);
                for (int64_t i = 0; i < I; i++) acc += (double)xt[i] * w_ih[k * I + i];
                if (hp)
                    for (int64_t j = 0; j < H; j++) acc += (double)hp[j] * w_hh[k * H + j];
                a[k] = (float)(k / H == 2 ? tanh(acc) : sigmoid_d(acc));
            }
            for (int64_t j = 0; j < H; j++) {
                double c = (double)a[j] * a[2 * H + j] + (cp ? (double)a[H + j] * cp[j] : 0.0);
                cells[(t * B + b) * H + j] = (float)c;
                y[(t * B + b) * H + j] = (float)(a[3 * H + j] * tanh((double)(float)c));
            }
        }
    if (hT) memcpy(hT, y + (T - 1) * B * H, (size_t)(B * H) * sizeof(float));
    if (cT) memcpy(cT, cells + (T - 1) * B * H, (size_t)(B * H) * sizeof(float));
    return FG_OK;
}

/* Naive structured mask on dg (B, 4H): the same scores in the same order as sparse_select; block
 * q is dropped when fewer than ndrop blocks rank below it by (score, index). Zeroes the dropped
 * columns, writes keep (nb) and returns the kept units. */
static int64_t naive_mask(float *dg, double *score, uint8_t *keep, int64_t B, int64_t H, int64_t block, int64_t nb,
                          int64_t ndrop) {
    int64_t kept = 0;
    for (int64_t q = 0; q < nb; q++) {
        double acc = 0.0;
        for (int64_t b = 0; b < B; b++)
            for (int64_t g = 0; g < 4; g++)
                for (int64_t j = q * block; j < block_end(q, block, H); j++) acc += fabs((double)dg[b * 4 * H + g * H + j]);
        score[q] = acc;
    }
    for (int64_t q = 0; q < nb; q++) {
        int64_t below = 0;
        for (int64_t r = 0; r < nb; r++)
            if (score[r] < score[q] || (score[r] == score[q] && r < q)) below++;
        keep[q] = below >= ndrop;
        if (keep[q]) kept += block_end(q, block, H) - q * block;
        else
            for (int64_t b = 0; b < B; b++)
                for (int64_t g = 0; g < 4; g++)
                    for (int64_t j = q * block; j < block_end(q, block, H); j++) dg[b * 4 * H + g * H + j] = 0.0f;
    }
    return kept;
}

/* Naive: zeroes the blocks keep[] drops in dg (B, 4H); returns the kept units. */
static int64_t naive_zero_blocks(float *dg, const uint8_t *keep, int64_t B, int64_t H, int64_t block, int64_t nb) {
    int64_t kept = 0;
    for (int64_t q = 0; q < nb; q++) {
        if (keep[q]) {
            kept += block_end(q, block, H) - q * block;
            continue;
        }
        for (int64_t b = 0; b < B; b++)
            for (int64_t g = 0; g < 4; g++)
                for (int64_t j = q * block; j < block_end(q, block, H); j++) dg[b * 4 * H + g * H + j] = 0.0f;
    }
    return kept;
}

/* Naive meprop mask on dg (B, 4H): column scores summed over b in order, column c dropped when
 * fewer than ndrop columns rank below it by (score, index). Returns the kept columns. */
static int64_t naive_mask_cols(float *dg, double *score, uint8_t *keep, int64_t B, int64_t H, int64_t ndrop) {
    const int64_t G4 = 4 * H;
    int64_t kept = 0;
    for (int64_t c = 0; c < G4; c++) {
        double acc = 0.0;
        for (int64_t b = 0; b < B; b++) acc += fabs((double)dg[b * G4 + c]);
        score[c] = acc;
    }
    for (int64_t c = 0; c < G4; c++) {
        int64_t below = 0;
        for (int64_t r = 0; r < G4; r++)
            if (score[r] < score[c] || (score[r] == score[c] && r < c)) below++;
        keep[c] = below >= ndrop;
        kept += keep[c];
    }
    for (int64_t b = 0; b < B; b++)
        for (int64_t c = 0; c < G4; c++)
            if (!keep[c]) dg[b * G4 + c] = 0.0f;
    return kept;
}

/* Naive backward; with sp = NULL the dense one. ws has fg_lstm_workspace_bytes(d) (dense) or
 * fg_lstm_sparse_workspace_bytes(d, sp); the masked variant keeps its scores after the dense part,
 * its per-step keep flags in stats->keep or after the scores. */
static void backward_naive(float *dx, float *dh0, float *dc0, float *dw_ih, float *dw_hh, float *db_ih, float *db_hh,
                           const float *dy, const float *dhT, const float *dcT, const float *x, const float *h0,
                           const float *c0, const float *w_ih, const float *w_hh, const float *y, const float *saved,
                           const fg_lstm_desc *d, void *ws, const fg_lstm_sparsity *sp, fg_lstm_sparse_stats *stats) {
    const int64_t T = d->T, B = d->B, I = d->I, H = d->H, G4 = 4 * H;
    const float *gates = saved, *cells = saved + T * B * G4;
    /* same workspace layout as the fast kernel: dG (T*B, 4H), dh (B, H), dc (B, H) */
    float *dG = ws, *dh = dG + T * B * G4, *dc = dh + B * H;
    /* nothing dropped (or sp NULL): dense, as the fast kernel */
    const fg_lstm_bwd v = sp && sparsity_drops(d, sp) ? sp->variant : FG_LSTM_BWD_DENSE;
    const int64_t nb = sp ? n_blocks(H, sp->block) : 1;
    const int64_t ndrop = v == FG_LSTM_BWD_MEPROP                                   ? n_dropped_cols(sp->drop, H)
                          : v == FG_LSTM_BWD_STEP || v == FG_LSTM_BWD_STRUCTURED ? n_dropped(sp->drop, nb)
                                                                                   : 0;
    double *score = NULL;
    uint8_t *keep = NULL;
    if (v == FG_LSTM_BWD_STEP || v == FG_LSTM_BWD_STRUCTURED) {
        /* the fast kernel's W_hh copy is not needed: scores and flags go there */
        const sparse_layout l = sparse_layout_of(d, v, nb);
        score = (double *)((char *)ws + l.wblk);
        keep = (uint8_t *)(score + nb);
    } else if (v == FG_LSTM_BWD_MEPROP) { /* 4H scores and flags: the fast kernel's own places */
        const sparse_layout l = sparse_layout_of(d, v, nb);
        score = (double *)((char *)ws + l.sc);
        keep = (uint8_t *)ws + l.keep;
    }
    double flops = 0.0;
    int64_t kept_units = 0, kept_cols = 0, zeros = 0;
    for (int64_t i = 0; i < B * H; i++) {
        dh[i] = dhT ? dhT[i] : 0.0f;
        dc[i] = dcT ? dcT[i] : 0.0f;
    }
    for (int64_t t = T - 1; t >= 0; t--) {
        for (int64_t b = 0; b < B; b++) {
            const float *a = gates + (t * B + b) * G4;
            float *g = dG + (t * B + b) * G4;
            for (int64_t j = 0; j < H; j++) {
                double i_ = a[j], f_ = a[H + j], g_ = a[2 * H + j], o_ = a[3 * H + j];
                double tc = tanh((double)cells[(t * B + b) * H + j]);
                double cp = t > 0 ? cells[((t - 1) * B + b) * H + j] : (c0 ? c0[b * H + j] : 0.0);
                double dhv = dh[b * H + j] + (dy ? dy[(t * B + b) * H + j] : 0.0);
                double dcv = dc[b * H + j] + dhv * o_ * (1.0 - tc * tc);
                g[j] = (float)(dcv * g_ * i_ * (1.0 - i_));
                g[H + j] = (float)(dcv * cp * f_ * (1.0 - f_));
                g[2 * H + j] = (float)(dcv * i_ * (1.0 - g_ * g_));
                g[3 * H + j] = (float)(dhv * tc * o_ * (1.0 - o_));
                dc[b * H + j] = (float)(dcv * f_);
            }
        }
        float *dgt = dG + t * B * G4;
        int64_t kept = H, kc = G4;
        switch (v) {
        case FG_LSTM_BWD_STEP:
            kept = naive_mask(dgt, score, keep, B, H, sp->block, nb, ndrop);
            if (stats && stats->keep) memcpy(stats->keep + t * nb, keep, (size_t)nb);
            kc = 4 * kept;
            break;
        case FG_LSTM_BWD_STRUCTURED: /* chosen on the first step backward, kept for the others */
            kept = t == T - 1 ? naive_mask(dgt, score, keep, B, H, sp->block, nb, ndrop)
                              : naive_zero_blocks(dgt, keep, B, H, sp->block, nb);
            kc = 4 * kept;
            break;
        case FG_LSTM_BWD_MEPROP:
            kc = naive_mask_cols(dgt, score, keep, B, H, ndrop);
            break;
        case FG_LSTM_BWD_THRESHOLD:
            for (int64_t i = 0; i < B * G4; i++)
                if (fabs((double)dgt[i]) < (double)sp->tau) dgt[i] = 0.0f, zeros++;
            break;
        default: break;
        }
        kept_units += kept, kept_cols += kc;
        if (t > 0 || dh0) flops += 2.0 * (double)B * (double)kc * (double)H;
        for (int64_t b = 0; b < B; b++) /* dh_{t-1} = dG_t W_hh (dropped columns are zero) */
            for (int64_t j = 0; j < H; j++) {
                double acc = 0.0;
                for (int64_t k = 0; k < G4; k++) acc += (double)dG[(t * B + b) * G4 + k] * w_hh[k * H + j];
                dh[b * H + j] = (float)acc;
            }
    }
    if (v == FG_LSTM_BWD_MEPROP) kept_units = kept_cols / 4;
    if (stats && stats->keep) {
        if (v == FG_LSTM_BWD_STRUCTURED)
            for (int64_t t = 0; t < T; t++) memcpy(stats->keep + t * nb, keep, (size_t)nb);
        else if (v != FG_LSTM_BWD_STEP) memset(stats->keep, 1, (size_t)(T * nb));
    }
    if (dh0) memcpy(dh0, dh, (size_t)(B * H) * sizeof(float));
    if (dc0) memcpy(dc0, dc, (size_t)(B * H) * sizeof(float));
    for (int64_t k = 0; k < G4; k++) {
        if (dw_ih)
            for (int64_t i = 0; i < I; i++) {
                double acc = 0.0;
                for (int64_t r = 0; r < T * B; r++) acc += (double)dG[r * G4 + k] * x[r * I + i];
                dw_ih[k * I + i] += (float)acc;
            }
        if (dw_hh)
            for (int64_t j = 0; j < H; j++) {
                double acc = 0.0;
                for (int64_t t = 0; t < T; t++)
                    for (int64_t b = 0; b < B; b++) {
                        const float *hp = t > 0 ? y + ((t - 1) * B + b) * H : (h0 ? h0 + b * H : NULL);
                        if (hp) acc += (double)dG[(t * B + b) * G4 + k] * hp[j];
                    }
                dw_hh[k * H + j] += (float)acc;
            }
        if (db_ih || db_hh) {
            double acc = 0.0;
            for (int64_t r = 0; r < T * B; r++) acc += dG[r * G4 + k];
            if (db_ih) db_ih[k] += (float)acc;
            if (db_hh) db_hh[k] += (float)acc;
        }
    }
    if (dx)
        for (int64_t r = 0; r < T * B; r++)
            for (int64_t i = 0; i < I; i++) {
                double acc = 0.0;
                for (int64_t k = 0; k < G4; k++) acc += (double)dG[r * G4 + k] * w_ih[k * I + i];
                dx[r * I + i] = (float)acc;
            }
    if (stats) {
        /* the fast kernel's GEMMs: the after-loop ones are dense over the masked dG except for
         * structured, whose compact GEMMs run over K4 = 4 * kept units of the 4H columns */
        const double dense = dense_bwd_flops(d, dh0 != NULL, dx != NULL, dw_ih != NULL, dw_hh != NULL, h0 != NULL);
        const double rec_dense = 2.0 * (double)B * 4.0 * (double)H * (double)H * (double)(T - 1 + (dh0 ? 1 : 0));
        double f = dense - rec_dense + flops;
        if (v == FG_LSTM_BWD_STRUCTURED) {
            const double K4 = (double)(kept_cols / T), TBd = (double)(T * B);
            f = flops;
            if (dw_ih) f += 2.0 * K4 * (double)I * TBd;
            if (dw_hh && T > 1) f += 2.0 * K4 * (double)H * (double)((T - 1) * B);
            if (dw_hh && h0) f += 2.0 * K4 * (double)H * (double)B;
            if (dx) f += 2.0 * TBd * K4 * (double)I;
        }
        sparse_plan p = {.variant = v, .nb = nb, .ndrop = ndrop};
        fill_stats(stats, d, sp ? &p : NULL, kept_units, kept_cols, zeros, f, dense);
    }
}

fg_status fg_lstm_backward_naive(float *dx, float *dh0, float *dc0, float *dw_ih, float *dw_hh, float *db_ih,
                                 float *db_hh, const float *dy, const float *dhT, const float *dcT, const float *x,
                                 const float *h0, const float *c0, const float *w_ih, const float *w_hh,
                                 const float *y, const float *saved, const fg_lstm_desc *d, void *ws,
                                 size_t ws_bytes) {
    fg_status s = fg_lstm_check(d);
    if (s != FG_OK) return s;
    if ((s = check_ws("lstm backward (naive)", d, ws, ws_bytes)) != FG_OK) return s;
    backward_naive(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dy, dhT, dcT, x, h0, c0, w_ih, w_hh, y, saved, d, ws,
                   NULL, NULL);
    return FG_OK;
}

fg_status fg_lstm_backward_sparse_naive(float *dx, float *dh0, float *dc0, float *dw_ih, float *dw_hh, float *db_ih,
                                        float *db_hh, const float *dy, const float *dhT, const float *dcT,
                                        const float *x, const float *h0, const float *c0, const float *w_ih,
                                        const float *w_hh, const float *y, const float *saved,
                                        const fg_lstm_desc *d, void *ws, size_t ws_bytes,
                                        const fg_lstm_sparsity *sp, fg_lstm_sparse_stats *stats) {
    sparse_plan plan;
    int use = 0;
    fg_status s = sparse_setup("lstm sparse backward (naive)", d, sp, ws, ws_bytes, &plan, &use);
    if (s != FG_OK) return s;
    backward_naive(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dy, dhT, dcT, x, h0, c0, w_ih, w_hh, y, saved, d, ws,
                   sp, stats);
    return FG_OK;
}
