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
 * saved gate buffer (which starts as b_ih + b_hh); then per step one (B, H) x (H, 4H) GEMM adds
 * h_{t-1} W_hh^T and a fused elementwise kernel applies the activations, updates the cell and
 * writes h_t.
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
 * Workspace (fg_lstm_workspace_bytes = (4*T*B*H + 2*B*H) floats): backward's dG (T*B, 4H), the
 * running dh and dc (B, H) each. Forward needs none today; it takes the same workspace so that
 * algorithms needing one (a packed W_hh, say) can come without an API change.
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
 * The after-loop GEMMs (dW_ih, dW_hh, db, dx) stay DENSE over the zeroed dG: skipping dropped rows
 * would need one GEMM per step (the kept set changes per step). Measured at T = 35, B = 32, 2
 * threads, 50 % / 20 % kept, as one compact GEMM per step (an optimistic bound: no runs, no
 * scatter): the dW updates become T rank-B updates that stream dW from memory, 5x slower than the
 * one dense GEMM at H = 650 and 1500; the dx products pay at H = I = 650 (23 / 11 ms against
 * 31 ms) but lose at H = I = 1500 (280 ms against 144 ms: W_ih no longer stays in cache). So only
 * the recurrent GEMM is sparse; the backward gains at most what that GEMM costs (~1/4 of the
 * backward FLOPs, more of its time since M = B is small).
 * How this differs from the paper, as far as we can tell: the paper sparsifies gate gradients on
 * GPUs with cuBLAS, and reports the speedup for the whole backward pass; we choose the dropped
 * fraction directly (a fixed drop per step, top-k by the block L1 norm) rather than through a
 * threshold, the block size is ours, and the mixed sparse/dense schedule that the paper uses to
 * recover accuracy is left to the caller (call fg_lstm_backward or drop = 0 for the dense
 * iterations). No accuracy experiment is reproduced here. */
#include <math.h>
#include <string.h>

#include "frugal/ops.h"

/* Elements (B*H) per step below which the elementwise gate kernels run on the calling thread:
 * each element costs a few transcendental functions, so a fork/join pays off earlier than for
 * the plain activations (PAR_MIN in activation.c). */
#define LSTM_PAR_MIN 4096
/* Hidden units per parallel chunk: rows of a small batch still split across threads. */
#define LSTM_CHUNK 256

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

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
    return (size_t)(4 * d->T * d->B * d->H + 2 * d->B * d->H) * sizeof(float);
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

/* One forward step after the GEMMs: g (B, 4H) holds pre-activations on entry and the activated
 * gates on exit; c (B, H) = f * cprev + i * g (cprev NULL = zeros); h (B, H) = o * tanh(c). */
static void gates_forward(float *restrict g, float *restrict c, float *restrict h, const float *restrict cprev,
                          int64_t B, int64_t H) {
    const int64_t nch = (H + LSTM_CHUNK - 1) / LSTM_CHUNK;
#pragma omp parallel for schedule(static) if (B * H >= LSTM_PAR_MIN)
    for (int64_t bc = 0; bc < B * nch; bc++) {
        const int64_t b = bc / nch, j0 = (bc % nch) * LSTM_CHUNK, j1 = j0 + LSTM_CHUNK < H ? j0 + LSTM_CHUNK : H;
        float *gi = g + b * 4 * H, *gf = gi + H, *gg = gi + 2 * H, *go = gi + 3 * H;
        float *cb = c + b * H, *hb = h + b * H;
        const float *cp = cprev ? cprev + b * H : NULL;
#pragma omp simd
        for (int64_t j = j0; j < j1; j++) {
            float i_ = sigmoidf(gi[j]), f_ = sigmoidf(gf[j]), g_ = tanhf(gg[j]), o_ = sigmoidf(go[j]);
            float cv = i_ * g_ + (cp ? f_ * cp[j] : 0.0f);
            gi[j] = i_, gf[j] = f_, gg[j] = g_, go[j] = o_;
            cb[j] = cv;
            hb[j] = o_ * tanhf(cv);
        }
    }
}

/* One backward step: from the activated gates a (B, 4H), the cell c (B, H), the previous cell
 * cprev (NULL = zeros), dh = dy_t (NULL = zeros) + dhr (the recurrent part, B, H) and the running
 * dc (B, H, the gradient reaching c_t from step t+1), writes the pre-activation gradients
 * dg (B, 4H) and replaces dc by the gradient reaching c_{t-1}. */
static void gates_backward(float *restrict dg, float *restrict dc, const float *restrict a, const float *restrict c,
                           const float *restrict cprev, const float *restrict dy, const float *restrict dhr,
                           int64_t B, int64_t H) {
    const int64_t nch = (H + LSTM_CHUNK - 1) / LSTM_CHUNK;
#pragma omp parallel for schedule(static) if (B * H >= LSTM_PAR_MIN)
    for (int64_t bc = 0; bc < B * nch; bc++) {
        const int64_t b = bc / nch, j0 = (bc % nch) * LSTM_CHUNK, j1 = j0 + LSTM_CHUNK < H ? j0 + LSTM_CHUNK : H;
        const float *ai = a + b * 4 * H, *af = ai + H, *ag = ai + 2 * H, *ao = ai + 3 * H;
        float *di = dg + b * 4 * H, *df = di + H, *dgg = di + 2 * H, *dout = di + 3 * H;
        const float *cb = c + b * H, *cp = cprev ? cprev + b * H : NULL, *dyb = dy ? dy + b * H : NULL;
        const float *dhb = dhr + b * H;
        float *dcb = dc + b * H;
#pragma omp simd
        for (int64_t j = j0; j < j1; j++) {
            const float i_ = ai[j], f_ = af[j], g_ = ag[j], o_ = ao[j];
            const float tc = tanhf(cb[j]);
            const float dh = dhb[j] + (dyb ? dyb[j] : 0.0f);
            const float dcv = dcb[j] + dh * o_ * (1.0f - tc * tc);
            const float cpv = cp ? cp[j] : 0.0f;
            di[j] = dcv * g_ * i_ * (1.0f - i_);
            df[j] = dcv * cpv * f_ * (1.0f - f_);
            dgg[j] = dcv * i_ * (1.0f - g_ * g_);
            dout[j] = dh * tc * o_ * (1.0f - o_);
            dcb[j] = dcv * f_;
        }
    }
}

/* ---------------------------------------------------------------- forward */

fg_status fg_lstm_forward(float *y, float *hT, float *cT, float *saved, const float *x, const float *h0,
                          const float *c0, const float *w_ih, const float *w_hh, const float *b_ih,
                          const float *b_hh, const fg_lstm_desc *d, void *ws, size_t ws_bytes) {
    fg_status s = fg_lstm_check(d);
    if (s != FG_OK) return s;
    if ((s = check_ws("lstm forward", d, ws, ws_bytes)) != FG_OK) return s;
    FG_ASSERT(y && saved && x && w_ih && w_hh);
    const int64_t T = d->T, B = d->B, I = d->I, H = d->H, G4 = 4 * H, TB = T * B;
    float *gates = saved, *cells = saved + TB * G4;

    /* gates (T*B, 4H) = b_ih + b_hh, then += X (T*B, I) W_ih^T (I, 4H) in one GEMM */
    float beta = 0.0f;
    if (b_ih || b_hh) {
        for (int64_t k = 0; k < G4; k++) gates[k] = (b_ih ? b_ih[k] : 0.0f) + (b_hh ? b_hh[k] : 0.0f);
        for (int64_t r = 1; r < TB; r++) memcpy(gates + r * G4, gates, (size_t)G4 * sizeof(float));
        beta = 1.0f;
    }
    s = fg_sgemm('N', 'T', TB, G4, I, 1.0f, x, I, w_ih, I, beta, gates, G4);
    if (s != FG_OK) return fg_fail(s, "lstm forward, input GEMM (T*B %lld, I %lld, 4H %lld): %s", (long long)TB,
                                   (long long)I, (long long)G4, fg_last_error());

    for (int64_t t = 0; t < T; t++) {
        float *gt = gates + t * B * G4;
        const float *hprev = t > 0 ? y + (t - 1) * B * H : h0;
        const float *cprev = t > 0 ? cells + (t - 1) * B * H : c0;
        /* gates_t (B, 4H) += h_{t-1} (B, H) W_hh^T (H, 4H); h_{-1} = h0, skipped when zero */
        if (hprev) {
            s = fg_sgemm('N', 'T', B, G4, H, 1.0f, hprev, H, w_hh, H, 1.0f, gt, G4);
            if (s != FG_OK) return fg_fail(s, "lstm forward, recurrent GEMM at step %lld: %s", (long long)t,
                                           fg_last_error());
        }
        gates_forward(gt, cells + t * B * H, y + t * B * H, cprev, B, H);
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
    int64_t block, nb, ndrop; /* units per block, blocks per step, blocks dropped per step (>= 1) */
    float *wblk;              /* (4H, H) W_hh rows in block-major order (see block_rows) */
    float *dgc;               /* (B, <= 4H) the kept gate columns of one step, in the same order */
    block_score *sc;          /* (nb) */
    uint8_t *keep;            /* (nb) 1 = kept, for the current step */
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
    return FG_OK;
}

/* Byte offsets of the sparse extras after the dense workspace; total in *end. */
typedef struct sparse_layout {
    size_t wblk, dgc, sc, keep, end;
} sparse_layout;

static sparse_layout sparse_layout_of(const fg_lstm_desc *d, int64_t nb) {
    sparse_layout l;
    const size_t H = (size_t)d->H, B = (size_t)d->B;
    l.wblk = align64(fg_lstm_workspace_bytes(d));
    l.dgc = l.wblk + align64(4 * H * H * sizeof(float));
    l.sc = l.dgc + align64(B * 4 * H * sizeof(float));
    l.keep = l.sc + align64((size_t)nb * sizeof(block_score));
    l.end = l.keep + align64((size_t)nb);
    return l;
}

size_t fg_lstm_sparse_workspace_bytes(const fg_lstm_desc *d, const fg_lstm_sparsity *sp) {
    fg_status s = fg_lstm_sparsity_check(d, sp);
    if (s != FG_OK) {
        fg_clear_error();
        return 0;
    }
    const int64_t nb = n_blocks(d->H, sp->block);
    if (n_dropped(sp->drop, nb) == 0) return fg_lstm_workspace_bytes(d);
    return sparse_layout_of(d, nb).end;
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
    int64_t kept_units = 0;

    /* dh and dc entering step T-1 from after the sequence */
    if (dhT) memcpy(dhr, dhT, (size_t)BH * sizeof(float));
    else memset(dhr, 0, (size_t)BH * sizeof(float));
    if (dcT) memcpy(dc, dcT, (size_t)BH * sizeof(float));
    else memset(dc, 0, (size_t)BH * sizeof(float));
    if (p) sparse_pack_w(p, w_hh, H);

    for (int64_t t = T - 1; t >= 0; t--) {
        float *dgt = dG + t * B * G4;
        const float *cprev = t > 0 ? cells + (t - 1) * B * H : c0;
        gates_backward(dgt, dc, gates + t * B * G4, cells + t * BH, cprev, dy ? dy + t * BH : NULL, dhr, B, H);
        /* dh_{t-1} (B, H) = dG_t (B, 4H) W_hh (4H, H); at t = 0 that is dh0 (skipped when unwanted) */
        float *dst = t > 0 ? dhr : dh0;
        if (p) {
            /* Structured sparsity (arXiv 1806.00512): zero the lowest-scoring blocks of dG_t, so
             * the dropped gradient flows neither back in time nor into the parameter gradients,
             * and run the recurrent GEMM over the kept columns only: (B, K) x (K, H). */
            sparse_select(p, dgt, B, H);
            const int64_t K = sparse_apply(p, dgt, B, H);
            kept_units += K / 4;
            if (stats && stats->keep) memcpy(stats->keep + t * p->nb, p->keep, (size_t)p->nb);
            if (dst) {
                s = sparse_recurrent_gemm(p, dst, B, H, K, &flops);
                if (s != FG_OK) return fg_fail(s, "lstm sparse backward, recurrent GEMM at step %lld: %s",
                                               (long long)t, fg_last_error());
            }
            continue;
        }
        kept_units += H;
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
    if (stats) {
        stats->kept_units = kept_units;
        stats->gemm_flops = flops;
        stats->gemm_flops_dense = dense_bwd_flops(d, dh0 != NULL, dx != NULL, dw_ih != NULL, dw_hh != NULL, h0 != NULL);
    }
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
                              size_t ws_bytes, sparse_plan *p, int *use, fg_lstm_sparse_stats *stats) {
    fg_status s = fg_lstm_sparsity_check(d, sp);
    if (s != FG_OK) return s;
    const size_t need = fg_lstm_sparse_workspace_bytes(d, sp);
    if (ws_bytes < need || !ws)
        return fg_fail(FG_ERR_INVALID, "%s: workspace of %zu bytes%s, needs %zu (fg_lstm_sparse_workspace_bytes)",
                       what, ws_bytes, ws ? "" : " (NULL)", need);
    memset(p, 0, sizeof *p);
    p->block = sp->block;
    p->nb = n_blocks(d->H, sp->block);
    p->ndrop = n_dropped(sp->drop, p->nb);
    *use = p->ndrop > 0;
    if (*use) {
        const sparse_layout l = sparse_layout_of(d, p->nb);
        char *base = ws;
        p->wblk = (float *)(base + l.wblk), p->dgc = (float *)(base + l.dgc);
        p->sc = (block_score *)(base + l.sc), p->keep = (uint8_t *)(base + l.keep);
    }
    if (stats) {
        stats->blocks = p->nb;
        stats->dropped = p->ndrop;
        stats->kept_blocks = d->T * (p->nb - p->ndrop);
        if (stats->keep && !*use) memset(stats->keep, 1, (size_t)(d->T * p->nb));
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
    fg_status s = sparse_setup("lstm sparse backward", d, sp, ws, ws_bytes, &plan, &use, stats);
    if (s != FG_OK) return s;
    FG_ASSERT(saved && x && w_ih && w_hh && y);
    return lstm_backward(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dy, dhT, dcT, x, h0, c0, w_ih, w_hh, y, saved, d,
                         ws, use ? &plan : NULL, stats);
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
    const int64_t nb = sp ? n_blocks(H, sp->block) : 1, ndrop = sp ? n_dropped(sp->drop, nb) : 0;
    double *score = NULL;
    uint8_t *keep = NULL;
    if (ndrop > 0) { /* the fast kernel's W_hh copy is not needed: scores and flags go there */
        const sparse_layout l = sparse_layout_of(d, nb);
        score = (double *)((char *)ws + l.wblk);
        keep = (uint8_t *)(score + nb);
    }
    double flops = 0.0;
    int64_t kept_units = 0;
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
        int64_t kept = H;
        if (ndrop > 0) {
            kept = naive_mask(dG + t * B * G4, score, keep, B, H, sp->block, nb, ndrop);
            if (stats && stats->keep) memcpy(stats->keep + t * nb, keep, (size_t)nb);
        }
        kept_units += kept;
        if (t > 0 || dh0) flops += 2.0 * (double)B * 4.0 * (double)kept * (double)H;
        for (int64_t b = 0; b < B; b++) /* dh_{t-1} = dG_t W_hh (dropped columns are zero) */
            for (int64_t j = 0; j < H; j++) {
                double acc = 0.0;
                for (int64_t k = 0; k < G4; k++) acc += (double)dG[(t * B + b) * G4 + k] * w_hh[k * H + j];
                dh[b * H + j] = (float)acc;
            }
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
    if (stats) { /* the after-loop GEMMs stay dense in the fast kernel: count them as such */
        const double dense = dense_bwd_flops(d, dh0 != NULL, dx != NULL, dw_ih != NULL, dw_hh != NULL, h0 != NULL);
        const double rec_dense = 2.0 * (double)B * 4.0 * (double)H * (double)H * (double)(T - 1 + (dh0 ? 1 : 0));
        stats->kept_units = kept_units;
        stats->gemm_flops = dense - rec_dense + flops;
        stats->gemm_flops_dense = dense;
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
    fg_status s = sparse_setup("lstm sparse backward (naive)", d, sp, ws, ws_bytes, &plan, &use, stats);
    if (s != FG_OK) return s;
    backward_naive(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dy, dhT, dcT, x, h0, c0, w_ih, w_hh, y, saved, d, ws,
                   sp, stats);
    return FG_OK;
}
