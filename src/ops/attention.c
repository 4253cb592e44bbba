/* Scaled dot-product multi-head attention, the mixing step of every transformer block (ViT, and
 * SegFormer's efficient self-attention whose keys/values are a spatially reduced sequence, hence
 * Tq != Tk). The caller makes q, k, v with the linear op and splits the heads; this file does
 *   probs = softmax(scale * q @ k^T (+ causal mask)),  out = probs @ v      per (batch, head).
 *
 * Shapes (contiguous): q, out, dq (B, H, Tq, D); k, v, dk, dv (B, H, Tk, D); probs (B, H, Tq, Tk).
 * The _tokens entry points take the token-major layout instead, (B, T, H, D) = the projections'
 * (B, T, H * D) with the heads not split: each (b, h) item is then a D-wide column block of rows
 * H * D apart, which every sgemm below reads and writes in place through its leading dimension
 * (attn_lay), so the head split and merge permutes (two full copies of q, k, v and out) are gone.
 * scale is usually 1/sqrt(D). causal masks key j for query i when j > i (top-left aligned, as
 * torch's tril(ones(Tq, Tk))): every query keeps key 0, so no row is empty.
 * Forward writes probs: they are what backward needs (saved: q, k, v, probs). Masked entries of
 * probs are exactly 0, so backward needs no mask flag. For one (b, h), with dP = dout @ v^T:
 *   dv = probs^T @ dout,  dS = probs * (dP - rowsum(dP * probs)),
 *   dq = scale * dS @ k,  dk = scale * dS^T @ q                              all written.
 * Backward needs a scratch (Tq, Tk) matrix for dP/dS per (b, h) in flight: the caller passes ws of
 * fg_attention_workspace_bytes(); the kernel runs as many (b, h) items at once as ws has slots.
 *
 * Token keeping (dynamic ViT's run-time skipping, forward only): fg_attention_forward_keep attends
 * to the kept key/value tokens keep[0..n_keep) only, as if k and v had been gathered along Tk; all
 * Tq queries are still computed. It gathers each (b, h)'s kept rows into workspace and runs the same
 * kernel, so the skipped tokens cost neither QK^T nor PV work.
 *
 * Threads: the products go to fg_sgemm (oneDNN, threaded by itself outside a parallel region and
 * sequential inside one). The forward runs blocks of query rows of every (b, h) in parallel, each
 * block's two products and softmax on one thread (fg_attention_forward). Backward and the
 * token-keeping forward: when there are at least as many (b, h) items as threads, or the items are
 * small, items run in parallel (one single-threaded sgemm each, softmax rows in the same thread);
 * otherwise items run one after another, each sgemm threaded by oneDNN and softmax rows split by
 * OpenMP. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/ops.h"
#include "vmath_impl.h"

/* Multiply-adds per item below which items always run in parallel (as linear.c's matmul). */
#define ITEM_SMALL_MACS (64.0 * 64.0 * 64.0)
/* Elements below which a single item's softmax rows stay on one thread. */
#define PAR_MIN 16384

fg_status fg_attention_check(int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t D) {
    if (B < 0 || H < 0 || Tq < 1 || Tk < 1 || D < 1)
        return fg_fail(FG_ERR_SHAPE,
                       "attention: B = %lld, H = %lld, Tq = %lld, Tk = %lld, D = %lld; expected B, H >= 0 and "
                       "Tq, Tk, D >= 1",
                       (long long)B, (long long)H, (long long)Tq, (long long)Tk, (long long)D);
    return FG_OK;
}

double fg_attention_flops(int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t D) {
    return 4.0 * (double)B * (double)H * (double)Tq * (double)Tk * (double)D;
}

/* Items run at once: all of them when parallel over items, else 1. */
static int64_t items_in_flight(int64_t BH, int64_t Tq, int64_t Tk, int64_t D) {
    const int64_t nt = fg_threads_get();
    if (BH <= 1 || nt <= 1) return 1;
    const double macs = (double)Tq * (double)Tk * (double)D;
    if (BH >= nt || macs < ITEM_SMALL_MACS) return BH < nt ? BH : nt;
    return 1;
}

size_t fg_attention_workspace_bytes(int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t D) {
    if (B < 1 || H < 1 || Tq < 1 || Tk < 1 || D < 1) return 0;
    return (size_t)items_in_flight(B * H, Tq, Tk, D) * (size_t)Tq * (size_t)Tk * sizeof(float);
}

size_t fg_attention_keep_workspace_bytes(int64_t B, int64_t H, int64_t Tq, int64_t n_keep, int64_t D) {
    if (B < 1 || H < 1 || Tq < 1 || n_keep < 1 || D < 1) return 0;
    return (size_t)items_in_flight(B * H, Tq, n_keep, D) * 2 * (size_t)n_keep * (size_t)D * sizeof(float);
}

/* Softmax in place over row[0, n) (the scores a query keeps), zeros in row[n, Tk). */
__attribute__((always_inline)) static inline void softmax_row(float *row, int64_t n, int64_t Tk) {
    float mx = row[0];
#pragma omp simd reduction(max : mx)
    for (int64_t j = 1; j < n; j++) mx = row[j] > mx ? row[j] : mx;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < n; j++) {
        row[j] = fg_vm_exp_nonpos(row[j] - mx);
        sum += row[j];
    }
    const float inv = 1.0f / sum;
#pragma omp simd
    for (int64_t j = 0; j < n; j++) row[j] *= inv;
    for (int64_t j = n; j < Tk; j++) row[j] = 0.0f;
}

/* Row-wise softmax in place over p (rows, Tk), whose row i is query row0 + i; with causal, query r
 * keeps columns 0..r and the rest become 0. par: split rows over threads. */
static void softmax_rows(float *p, int64_t rows, int64_t Tk, int causal, int64_t row0, int par) {
#pragma omp parallel for schedule(static) if (par && rows > 1 && rows * Tk > PAR_MIN)
    for (int64_t i = 0; i < rows; i++) {
        const int64_t r = row0 + i;
        softmax_row(p + i * Tk, causal && r + 1 < Tk ? r + 1 : Tk, Tk);
    }
}

/* The same on the calling thread with 512-bit vectors, called when fg_cpu_isa_active() allows
 * AVX-512 (the name carries _avx512 for scripts/check-isa.sh): twice the lanes for the exp, which
 * is most of the forward's time outside the products (a third of it at ViT sizes, measured with
 * perf). The sums run in a different order than with 256-bit vectors, so the last bit of a
 * probability may differ between the two ISAs (never between thread counts). */
__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,prefer-vector-width=512"))) static void
softmax_rows_seq_avx512(float *p, int64_t rows, int64_t Tk, int causal, int64_t row0) {
    for (int64_t i = 0; i < rows; i++) {
        const int64_t r = row0 + i;
        softmax_row(p + i * Tk, causal && r + 1 < Tk ? r + 1 : Tk, Tk);
    }
}

/* On the calling thread, with the widest vectors the CPU allows. */
static void softmax_rows_seq(float *p, int64_t rows, int64_t Tk, int causal, int64_t row0) {
    if (fg_cpu_isa_active() == FG_ISA_AVX512) softmax_rows_seq_avx512(p, rows, Tk, causal, row0);
    else softmax_rows(p, rows, Tk, causal, row0, 0);
}

/* One (b, h): p (Tq, Tk) = softmax(scale * q k^T), o (Tq, D) = p v. */
static fg_status item_forward(float *o, float *p, const float *q, const float *k, const float *v, int64_t Tq,
                              int64_t Tk, int64_t D, float scale, int causal, int par) {
    fg_status s = fg_sgemm('N', 'T', Tq, Tk, D, scale, q, D, k, D, 0.0f, p, Tk);
    if (s != FG_OK) return s;
    softmax_rows(p, Tq, Tk, causal, 0, par);
    return fg_sgemm('N', 'N', Tq, D, Tk, 1.0f, p, Tk, v, D, 0.0f, o, D);
}

/* One (b, h) backward; ds is scratch (Tq, Tk). Rows of q, dq, dout are ldq apart, of k, v, dk, dv
 * ldk apart (D for the head-major layout, H * D for the token-major one). */
static fg_status item_backward(float *dq, float *dk, float *dv, float *ds, const float *dout, const float *q,
                               const float *k, const float *v, const float *p, int64_t Tq, int64_t Tk, int64_t D,
                               int64_t ldq, int64_t ldk, float scale, int par) {
    fg_status s = FG_OK;
    if (dv) s = fg_sgemm('T', 'N', Tk, D, Tq, 1.0f, p, Tk, dout, ldq, 0.0f, dv, ldk);
    if (s != FG_OK || (!dq && !dk)) return s;
    s = fg_sgemm('N', 'T', Tq, Tk, D, 1.0f, dout, ldq, v, ldk, 0.0f, ds, Tk); /* dP */
    if (s != FG_OK) return s;
#pragma omp parallel for schedule(static) if (par && Tq > 1 && Tq * Tk > PAR_MIN)
    for (int64_t i = 0; i < Tq; i++) {
        float *d = ds + i * Tk;
        const float *pr = p + i * Tk;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int64_t j = 0; j < Tk; j++) dot += d[j] * pr[j];
#pragma omp simd
        for (int64_t j = 0; j < Tk; j++) d[j] = pr[j] * (d[j] - dot);
    }
    if (dq) s = fg_sgemm('N', 'N', Tq, D, Tk, scale, ds, Tk, k, ldk, 0.0f, dq, ldq);
    if (s == FG_OK && dk) s = fg_sgemm('T', 'N', Tk, D, Tq, scale, ds, Tk, q, ldq, 0.0f, dk, ldk);
    return s;
}

/* Where the rows of (b, h) item `it` start, for a tensor of T rows per item: head-major (B, H, T, D)
 * puts the item's T x D block at (b * H + h) * T * D; token-major (B, T, H, D) puts its row t at
 * (b * T + t) * H * D + h * D, so the block starts at b * T * H * D + h * D, rows H * D apart. Items
 * count run heads per batch item (hr <= H: the first hr heads, fg_attention_forward_tokens). */
typedef struct attn_lay {
    int64_t H, hr; /* heads stored, heads run */
    int tokens;    /* token-major */
} attn_lay;

static int64_t item_off(attn_lay l, int64_t it, int64_t T, int64_t D) {
    const int64_t b = it / l.hr, h = it % l.hr;
    return l.tokens ? b * T * l.H * D + h * D : (b * l.H + h) * T * D;
}
static int64_t item_ld(attn_lay l, int64_t D) { return l.tokens ? l.H * D : D; }
/* probs (B, H, Tq, Tk) in either layout */
static int64_t probs_off(attn_lay l, int64_t it, int64_t Tq, int64_t Tk) {
    return ((it / l.hr) * l.H + it % l.hr) * Tq * Tk;
}

/* One call's worth of work, split into B*H independent (b, h) items. */
typedef enum item_kind { ITEM_BACKWARD, ITEM_KEEP } item_kind;

typedef struct attn_job {
    item_kind kind;
    const char *what;
    float *out, *probs, *dq, *dk, *dv; /* outputs, any gradient may be NULL */
    const float *q, *k, *v, *dout, *saved_probs;
    const int32_t *keep;
    float *ws;         /* slots of slot_floats each, or NULL */
    int64_t slot_floats;
    int64_t Tq, Tk, D, n_keep;
    attn_lay lay;
    float scale;
    int causal;
} attn_job;

/* One (b, h) of the token-keeping forward: gather kept k, v rows into kg, vg (n_keep, D), then the
 * plain item forward over them. */
static fg_status item_forward_keep(float *o, float *p, const float *q, const float *k, const float *v,
                                   const int32_t *keep, int64_t n_keep, float *kg, float *vg, int64_t Tq, int64_t D,
                                   float scale, int par) {
    for (int64_t j = 0; j < n_keep; j++) {
        const float *ks = k + (int64_t)keep[j] * D, *vs = v + (int64_t)keep[j] * D;
        float *kd = kg + j * D, *vd = vg + j * D;
        for (int64_t d = 0; d < D; d++) kd[d] = ks[d], vd[d] = vs[d];
    }
    return item_forward(o, p, q, kg, vg, Tq, n_keep, D, scale, 0, par);
}

static fg_status run_item(const attn_job *j, int64_t it, int64_t slot, int par) {
    const int64_t Tq = j->Tq, Tk = j->Tk, D = j->D;
    const int64_t oq = item_off(j->lay, it, Tq, D), ok = item_off(j->lay, it, Tk, D);
    const float *q = j->q + oq, *k = j->k + ok, *v = j->v + ok;
    float *ws = j->ws ? j->ws + slot * j->slot_floats : NULL;
    switch (j->kind) {
    case ITEM_BACKWARD:
        return item_backward(j->dq ? j->dq + oq : NULL, j->dk ? j->dk + ok : NULL, j->dv ? j->dv + ok : NULL, ws,
                             j->dout + oq, q, k, v, j->saved_probs + probs_off(j->lay, it, Tq, Tk), Tq, Tk, D,
                             item_ld(j->lay, D), item_ld(j->lay, D), j->scale, par);
    case ITEM_KEEP: /* head-major only */
        return item_forward_keep(j->out + oq, j->probs + it * Tq * j->n_keep, q, k, v, j->keep, j->n_keep, ws,
                                 ws + j->n_keep * D, Tq, D, j->scale, par);
    }
    return FG_ERR_INVALID;
}

/* Runs items [0, BH) with `slots` of them in flight: in parallel over items (one thread per slot,
 * each item's loops single-threaded) when slots > 1, else one after another with threaded loops. */
static fg_status run_items(const attn_job *j, int64_t BH, int64_t slots) {
    if (slots > 1) {
        int64_t failed = -1;
#pragma omp parallel for schedule(dynamic, 1) num_threads((int)slots)
        for (int64_t it = 0; it < BH; it++) {
            if (run_item(j, it, omp_get_thread_num(), 0) != FG_OK) {
#pragma omp critical(fg_attention_failed)
                failed = it;
            }
        }
        /* the worker's message stayed on its own thread: name the failure again here */
        if (failed >= 0)
            return fg_fail(FG_ERR_BACKEND, "%s: sgemm failed for (b, h) item %lld", j->what, (long long)failed);
        return FG_OK;
    }
    for (int64_t it = 0; it < BH; it++) {
        fg_status s = run_item(j, it, 0, 1);
        if (s != FG_OK) return fg_fail(s, "%s, (b, h) item %lld: %s", j->what, (long long)it, fg_last_error());
    }
    return FG_OK;
}

/* Query rows per block of the forward: about QB_UNITS blocks over all (b, h) items, between QB_MIN
 * and QB_MAX rows (a QB_MAX x Tk block of scores stays in L2 for Tk up to a few thousand). It
 * depends on the shapes only, not on the thread count, so every thread count computes the same
 * products in the same order (the same bits). */
#define QB_UNITS 16
#define QB_MIN 32
#define QB_MAX 128

static int64_t query_block(int64_t BH, int64_t Tq) {
    int64_t qb = (BH * Tq + QB_UNITS - 1) / QB_UNITS;
    if (qb < QB_MIN) qb = QB_MIN;
    if (qb > QB_MAX) qb = QB_MAX;
    return qb < Tq ? qb : Tq;
}

/* The forward runs in units of (item, block of qn query rows): scores for the block (qn, Tk) =
 * scale * q_blk k^T, softmax of its rows, out_blk (qn, D) = p_blk v, one single-threaded sgemm each
 * inside the parallel loop. The block's scores are softmaxed and multiplied while still in cache
 * (per item, a whole (Tq, Tk) matrix went to memory and back twice: SegFormer-B0's first stage has
 * Tq = 16384 queries against Tk = 256 keys, 16 MiB of scores per head at 512x512), and the units
 * keep both threads busy whatever B * H is (an item at a time left one thread idle in softmax's
 * short rows and in oneDNN's small products; three heads on two threads left one idle a third of
 * the time). */
static fg_status forward_core(float *out, float *probs, const float *q, const float *k, const float *v, int64_t B,
                              attn_lay l, int64_t Tq, int64_t Tk, int64_t D, float scale, int causal) {
    const int64_t BH = B * l.hr;
    if (BH == 0) return FG_OK;
    FG_ASSERT(out && probs && q && k && v);
    const int64_t ld = item_ld(l, D);
    const int64_t qb = query_block(BH, Tq), nqb = (Tq + qb - 1) / qb, units = BH * nqb;
    int64_t failed = -1;
#pragma omp parallel for schedule(dynamic, 1) if (units > 1 && fg_threads_get() > 1)
    for (int64_t u = 0; u < units; u++) {
        const int64_t it = u / nqb, q0 = (u % nqb) * qb, qn = q0 + qb <= Tq ? qb : Tq - q0;
        const int64_t oq = item_off(l, it, Tq, D) + q0 * ld, ok = item_off(l, it, Tk, D);
        float *p = probs + probs_off(l, it, Tq, Tk) + q0 * Tk, *o = out + oq;
        fg_status us = fg_sgemm('N', 'T', qn, Tk, D, scale, q + oq, ld, k + ok, ld, 0.0f, p, Tk);
        if (us == FG_OK) {
            softmax_rows_seq(p, qn, Tk, causal, q0);
            us = fg_sgemm('N', 'N', qn, D, Tk, 1.0f, p, Tk, v + ok, ld, 0.0f, o, ld);
        }
        if (us != FG_OK) {
#pragma omp critical(fg_attention_failed)
            failed = u;
        }
    }
    /* a worker's message stayed on its own thread: name the failure again here */
    if (failed >= 0)
        return fg_fail(FG_ERR_BACKEND, "attention forward: sgemm failed for (b, h) item %lld, query rows from %lld",
                       (long long)(failed / nqb), (long long)(failed % nqb * qb));
    return FG_OK;
}

fg_status fg_attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                               int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t D, float scale, int causal) {
    fg_status s = fg_attention_check(B, H, Tq, Tk, D);
    if (s != FG_OK) return s;
    return forward_core(out, probs, q, k, v, B, (attn_lay){H, H, 0}, Tq, Tk, D, scale, causal);
}

fg_status fg_attention_forward_tokens(float *out, float *probs, const float *q, const float *k, const float *v,
                                      int64_t B, int64_t H, int64_t keep, int64_t Tq, int64_t Tk, int64_t D,
                                      float scale, int causal) {
    fg_status s = fg_attention_check(B, H, Tq, Tk, D);
    if (s != FG_OK) return s;
    if (keep < 1 || keep > H)
        return fg_fail(FG_ERR_SHAPE, "attention (token-major): heads run = %lld, expected 1 <= heads run <= H = %lld",
                       (long long)keep, (long long)H);
    s = forward_core(out, probs, q, k, v, B, (attn_lay){H, keep, 1}, Tq, Tk, D, scale, causal);
    if (s != FG_OK || keep == H) return s;
    /* the heads not run: zeros in their columns of every row */
    for (int64_t r = 0; r < B * Tq; r++)
        memset(out + r * H * D + keep * D, 0, (size_t)((H - keep) * D) * sizeof(float));
    return FG_OK;
}

static fg_status backward_core(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                               const float *v, const float *probs, int64_t B, attn_lay l, int64_t Tq, int64_t Tk,
                               int64_t D, float scale, void *ws, size_t ws_bytes) {
    const int64_t BH = B * l.hr;
    if (BH == 0 || (!dq && !dk && !dv)) return FG_OK;
    FG_ASSERT(dout && q && k && v && probs);
    const size_t slot_bytes = (size_t)Tq * (size_t)Tk * sizeof(float);
    const int needs_ws = dq || dk; /* dv alone needs no scratch */
    int64_t slots = items_in_flight(BH, Tq, Tk, D);
    if (needs_ws) {
        if (!ws || ws_bytes < slot_bytes)
            return fg_fail(FG_ERR_INVALID,
                           "attention backward: workspace of %zu bytes, need at least %zu (one Tq x Tk = %lld x %lld "
                           "scratch); see fg_attention_workspace_bytes",
                           ws ? ws_bytes : (size_t)0, slot_bytes, (long long)Tq, (long long)Tk);
        if ((size_t)slots > ws_bytes / slot_bytes) slots = (int64_t)(ws_bytes / slot_bytes);
    }
    const attn_job j = {.kind = ITEM_BACKWARD, .what = "attention backward", .dq = dq, .dk = dk, .dv = dv,
                        .q = q, .k = k, .v = v, .dout = dout, .saved_probs = probs, .ws = needs_ws ? ws : NULL,
                        .slot_floats = Tq * Tk, .Tq = Tq, .Tk = Tk, .D = D, .lay = l, .scale = scale};
    return run_items(&j, BH, slots);
}

fg_status fg_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                                const float *v, const float *probs, int64_t B, int64_t H, int64_t Tq, int64_t Tk,
                                int64_t D, float scale, void *ws, size_t ws_bytes) {
    fg_status s = fg_attention_check(B, H, Tq, Tk, D);
    if (s != FG_OK) return s;
    return backward_core(dq, dk, dv, dout, q, k, v, probs, B, (attn_lay){H, H, 0}, Tq, Tk, D, scale, ws, ws_bytes);
}

fg_status fg_attention_backward_tokens(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                       const float *k, const float *v, const float *probs, int64_t B, int64_t H,
                                       int64_t Tq, int64_t Tk, int64_t D, float scale, void *ws, size_t ws_bytes) {
    fg_status s = fg_attention_check(B, H, Tq, Tk, D);
    if (s != FG_OK) return s;
    return backward_core(dq, dk, dv, dout, q, k, v, probs, B, (attn_lay){H, H, 1}, Tq, Tk, D, scale, ws, ws_bytes);
}

fg_status fg_attention_forward_keep(float *out, float *probs, const float *q, const float *k, const float *v,
                                    const int32_t *keep, int64_t n_keep, int64_t B, int64_t H, int64_t Tq,
                                    int64_t Tk, int64_t D, float scale, void *ws, size_t ws_bytes) {
    fg_status s = fg_attention_check(B, H, Tq, Tk, D);
    if (s != FG_OK) return s;
    if (n_keep < 1 || n_keep > Tk)
        return fg_fail(FG_ERR_SHAPE, "attention keep: n_keep = %lld, expected 1 <= n_keep <= Tk = %lld",
                       (long long)n_keep, (long long)Tk);
    FG_ASSERT(keep);
    for (int64_t i = 0; i < n_keep; i++)
        if (keep[i] < 0 || keep[i] >= Tk)
            return fg_fail(FG_ERR_INVALID, "attention keep: keep[%lld] = %d, expected 0 <= index < Tk = %lld",
                           (long long)i, (int)keep[i], (long long)Tk);
    const int64_t BH = B * H;
    if (BH == 0) return FG_OK;
    FG_ASSERT(out && probs && q && k && v);
    const size_t slot_bytes = 2 * (size_t)n_keep * (size_t)D * sizeof(float);
    if (!ws || ws_bytes < slot_bytes)
        return fg_fail(FG_ERR_INVALID,
                       "attention keep: workspace of %zu bytes, need at least %zu (kept k and v, 2 x %lld x %lld); "
                       "see fg_attention_keep_workspace_bytes",
                       ws ? ws_bytes : (size_t)0, slot_bytes, (long long)n_keep, (long long)D);
    int64_t slots = items_in_flight(BH, Tq, n_keep, D);
    if ((size_t)slots > ws_bytes / slot_bytes) slots = (int64_t)(ws_bytes / slot_bytes);
    const attn_job j = {.kind = ITEM_KEEP, .what = "attention keep forward", .out = out, .probs = probs, .q = q,
                        .k = k, .v = v, .keep = keep, .ws = ws, .slot_floats = 2 * n_keep * D, .Tq = Tq, .Tk = Tk,
                        .D = D, .n_keep = n_keep, .lay = {H, H, 0}, .scale = scale};
    return run_items(&j, BH, slots);
}

/* ---------------------------------------------------------------- naive twins */

void fg_attention_forward_naive(float *out, float *probs, const float *q, const float *k, const float *v,
                                int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t D, float scale, int causal) {
    double *row = malloc((size_t)Tk * sizeof(double));
    FG_ASSERT(row);
    for (int64_t it = 0; it < B * H; it++) {
        const float *qi = q + it * Tq * D, *ki = k + it * Tk * D, *vi = v + it * Tk * D;
        for (int64_t i = 0; i < Tq; i++) {
            double mx = -INFINITY, sum = 0.0;
            for (int64_t j = 0; j < Tk; j++) {
                double acc = 0.0;
                for (int64_t d = 0; d < D; d++) acc += (double)qi[i * D + d] * ki[j * D + d];
                row[j] = causal && j > i ? -INFINITY : acc * scale;
                if (row[j] > mx) mx = row[j];
            }
            for (int64_t j = 0; j < Tk; j++) {
                row[j] = row[j] == -INFINITY ? 0.0 : exp(row[j] - mx);
                sum += row[j];
            }
            for (int64_t j = 0; j < Tk; j++) {
                row[j] /= sum;
                probs[(it * Tq + i) * Tk + j] = (float)row[j];
            }
            for (int64_t d = 0; d < D; d++) {
                double acc = 0.0;
                for (int64_t j = 0; j < Tk; j++) acc += row[j] * vi[j * D + d];
                out[(it * Tq + i) * D + d] = (float)acc;
            }
        }
    }
    free(row);
}

void fg_attention_backward_naive(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                                 const float *v, const float *probs, int64_t B, int64_t H, int64_t Tq, int64_t Tk,
                                 int64_t D, float scale) {
    double *ds = malloc((size_t)(Tq * Tk) * sizeof(double));
    FG_ASSERT(ds);
    for (int64_t it = 0; it < B * H; it++) {
        const float *qi = q + it * Tq * D, *ki = k + it * Tk * D, *vi = v + it * Tk * D;
        const float *go = dout + it * Tq * D, *p = probs + it * Tq * Tk;
        for (int64_t i = 0; i < Tq; i++) {
            double dot = 0.0;
            for (int64_t j = 0; j < Tk; j++) {
                double dp = 0.0;
                for (int64_t d = 0; d < D; d++) dp += (double)go[i * D + d] * vi[j * D + d];
                ds[i * Tk + j] = dp;
                dot += dp * p[i * Tk + j];
            }
            for (int64_t j = 0; j < Tk; j++) ds[i * Tk + j] = p[i * Tk + j] * (ds[i * Tk + j] - dot);
        }
        for (int64_t d = 0; d < D; d++) {
            if (dq)
                for (int64_t i = 0; i < Tq; i++) {
                    double acc = 0.0;
                    for (int64_t j = 0; j < Tk; j++) acc += ds[i * Tk + j] * ki[j * D + d];
                    dq[(it * Tq + i) * D + d] = (float)(scale * acc);
                }
            for (int64_t j = 0; j < Tk; j++) {
                double ak = 0.0, av = 0.0;
                for (int64_t i = 0; i < Tq; i++) {
                    ak += ds[i * Tk + j] * qi[i * D + d];
                    av += (double)p[i * Tk + j] * go[i * D + d];
                }
                if (dk) dk[(it * Tk + j) * D + d] = (float)(scale * ak);
                if (dv) dv[(it * Tk + j) * D + d] = (float)av;
            }
        }
    }
    free(ds);
}
