/* Token merging (ToMe, Bolya et al., ICLR 2023) for dynamic ViT inference: bipartite soft
 * matching on the keys, the size-weighted merge, and proportional attention. Shapes, the
 * matching rule and the output order are in include/frugal/ops_tome.h. Forward only (the knobs
 * are inference-time). Written from the paper and the facts of the public reference (order of
 * the outputs, the class token protected, the head mean of the keys as the metric), not copied.
 *
 * fg_tome_match runs batch items in parallel, one item per thread, with per-item scratch in ws;
 * its twin fg_tome_match_naive recomputes everything per pair and picks the r edges by repeated
 * selection, so the two share no code. fg_tome_attention_forward uses oneDNN's sgemm per
 * (b, h) as attention.c does; its twin is three plain loops. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/ops.h"
#include "frugal/ops_tome.h"

fg_status fg_tome_check(int64_t B, int64_t T, int64_t C, int64_t H, int64_t r) {
    if (B < 1 || T < 3 || C < 1 || H < 1 || C % H)
        return fg_fail(FG_ERR_SHAPE, "tome: B = %lld, T = %lld, C = %lld, H = %lld: expected B >= 1, T >= 3 and H "
                       "dividing C", (long long)B, (long long)T, (long long)C, (long long)H);
    if (r < 1 || r > (T - 1) / 2)
        return fg_fail(FG_ERR_SHAPE, "tome: r = %lld tokens merged of %lld: expected 1 <= r <= %lld (the class token is "
                       "kept, at most half of the others merge)", (long long)r, (long long)T, (long long)((T - 1) / 2));
    return FG_OK;
}

/* Per item: metric (T, hd), node_max (nA), node_idx (nA) as i32, order (nA) as i32. */
static size_t item_ws_floats(int64_t T, int64_t C, int64_t H) {
    const int64_t nA = (T + 1) / 2;
    return (size_t)(T * (C / H) + 4 * nA); /* edges: 2 floats each */
}

size_t fg_tome_match_workspace_bytes(int64_t B, int64_t T, int64_t C, int64_t H) {
    if (B < 1 || T < 1 || H < 1 || C < H) return 0;
    return (size_t)B * item_ws_floats(T, C, H) * sizeof(float);
}

typedef struct edge { float v; int32_t i; } edge;

/* Descending by similarity, then ascending by A index: deterministic order for equal scores. */
static int edge_cmp(const void *pa, const void *pb) {
    const edge *a = pa, *b = pb;
    if (a->v > b->v) return -1;
    if (a->v < b->v) return 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* The map of one item, given node_max / node_idx of A tokens 1 .. nA-1. The class token (A token 0)
 * is not a candidate at all: a -inf score would not keep it out, since a token whose similarities
 * are all NaN (a zero key) scores -inf too and the tie goes by index. */
static void item_map(int32_t *map, int64_t T, int64_t r, const float *node_max, const int32_t *node_idx, edge *e) {
    const int64_t nA = (T + 1) / 2;
    for (int64_t i = 1; i < nA; i++) e[i - 1] = (edge){node_max[i], (int32_t)i};
    qsort(e, (size_t)(nA - 1), sizeof *e, edge_cmp);
    /* e[0..r) merge; mark them by setting their map to the B slot, then number the rest in order */
    const int32_t base = (int32_t)(nA - r);
    for (int64_t k = 0; k < T; k++) map[k] = -1;
    for (int64_t k = 0; k < r; k++) map[2 * e[k].i] = base + node_idx[e[k].i];
    int32_t next = 0;
    for (int64_t i = 0; i < nA; i++)
        if (map[2 * i] < 0) map[2 * i] = next++;
    for (int64_t j = 0; 2 * j + 1 < T; j++) map[2 * j + 1] = base + (int32_t)j;
}

void fg_tome_match(int32_t *map, const float *keys, int64_t B, int64_t T, int64_t C, int64_t H, int64_t r, void *ws) {
    const int64_t hd = C / H, nA = (T + 1) / 2, nB = T / 2;
    const size_t per = item_ws_floats(T, C, H);
#pragma omp parallel for schedule(static) if (B > 1)
    for (int64_t b = 0; b < B; b++) {
        float *m = (float *)ws + (size_t)b * per;
        float *node_max = m + T * hd;
        int32_t *node_idx = (int32_t *)(node_max + nA);
        edge *e = (edge *)(node_idx + nA); /* 2 floats per A token: fits in the last 2 * nA */
        const float *kb = keys + (size_t)(b * T * C);
        for (int64_t t = 0; t < T; t++) {
            float *row = m + t * hd;
            const float *kt = kb + t * C;
            for (int64_t d = 0; d < hd; d++) row[d] = 0.0f;
            for (int64_t h = 0; h < H; h++) {
#pragma omp simd
                for (int64_t d = 0; d < hd; d++) row[d] += kt[h * hd + d];
            }
            float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
            for (int64_t d = 0; d < hd; d++) {
                row[d] *= 1.0f / (float)H;
                ss += row[d] * row[d];
            }
            const float inv = 1.0f / sqrtf(ss);
#pragma omp simd
            for (int64_t d = 0; d < hd; d++) row[d] *= inv;
        }
        for (int64_t i = 1; i < nA; i++) { /* A token 0, the class token, never merges: item_map skips it */
            const float *a = m + 2 * i * hd;
            float best = -INFINITY;
            int32_t arg = 0;
            for (int64_t j = 0; j < nB; j++) {
                const float *bb = m + (2 * j + 1) * hd;
                float s = 0.0f;
#pragma omp simd reduction(+ : s)
                for (int64_t d = 0; d < hd; d++) s += a[d] * bb[d];
                if (s > best) {
                    best = s;
                    arg = (int32_t)j;
                }
            }
            node_max[i] = best;
            node_idx[i] = arg;
        }
        item_map(map + (size_t)(b * T), T, r, node_max, node_idx, e);
    }
}

/* Cosine similarity of tokens s and t of one item: head means and norms recomputed each time. */
static double naive_cos(const float *kb, int64_t C, int64_t H, int64_t s, int64_t t) {
    const int64_t hd = C / H;
    double dot = 0.0, ns = 0.0, nt = 0.0;
    for (int64_t d = 0; d < hd; d++) {
        double ms = 0.0, mt = 0.0;
        for (int64_t h = 0; h < H; h++) {
            ms += kb[s * C + h * hd + d];
            mt += kb[t * C + h * hd + d];
        }
        ms /= (double)H;
        mt /= (double)H;
        dot += ms * mt;
        ns += ms * ms;
        nt += mt * mt;
    }
    return dot / (sqrt(ns) * sqrt(nt));
}

void fg_tome_match_naive(int32_t *map, const float *keys, int64_t B, int64_t T, int64_t C, int64_t H, int64_t r) {
    const int64_t nA = (T + 1) / 2;
    double *best = malloc((size_t)nA * sizeof *best);
    int64_t *dst = malloc((size_t)nA * sizeof *dst);
    uint8_t *merged = malloc((size_t)nA);
    FG_ASSERT(best && dst && merged);
    for (int64_t b = 0; b < B; b++) {
        const float *kb = keys + (size_t)(b * T * C);
        int32_t *mp = map + (size_t)(b * T);
        for (int64_t i = 0; i < nA; i++) {
            best[i] = -INFINITY;
            dst[i] = 0;
            merged[i] = 0;
            for (int64_t j = 0; 2 * j + 1 < T; j++) {
                const double c = naive_cos(kb, C, H, 2 * i, 2 * j + 1);
                if (c > best[i]) {
                    best[i] = c;
                    dst[i] = j;
                }
            }
        }
        for (int64_t k = 0; k < r; k++) { /* the most similar unmerged A token (not the class token) */
            int64_t pick = -1;
            for (int64_t i = 1; i < nA; i++)
                if (!merged[i] && (pick < 0 || best[i] > best[pick])) pick = i;
            merged[pick] = 1;
        }
        int32_t next = 0;
        for (int64_t i = 0; i < nA; i++) mp[2 * i] = merged[i] ? (int32_t)(nA - r + dst[i]) : next++;
        for (int64_t j = 0; 2 * j + 1 < T; j++) mp[2 * j + 1] = (int32_t)(nA - r + j);
    }
    free(best);
    free(dst);
    free(merged);
}

void fg_tome_merge(float *out, float *out_size, const float *x, const float *size, const int32_t *map, int64_t B,
                   int64_t T, int64_t E, int64_t r) {
    const int64_t To = T - r;
#pragma omp parallel for schedule(static) if (B > 1)
    for (int64_t b = 0; b < B; b++) {
        float *ob = out + (size_t)(b * To * E);
        const float *xb = x + (size_t)(b * T * E);
        const int32_t *mb = map + (size_t)(b * T);
        float tot[4096], *w = To <= 4096 ? tot : malloc((size_t)To * sizeof(float));
        FG_ASSERT(w);
        memset(ob, 0, (size_t)(To * E) * sizeof(float));
        for (int64_t o = 0; o < To; o++) w[o] = 0.0f;
        for (int64_t t = 0; t < T; t++) {
            const float s = size ? size[b * T + t] : 1.0f;
            float *dst = ob + mb[t] * E;
            const float *src = xb + t * E;
            w[mb[t]] += s;
#pragma omp simd
            for (int64_t c = 0; c < E; c++) dst[c] += s * src[c];
        }
        for (int64_t o = 0; o < To; o++) {
            const float inv = 1.0f / w[o];
            float *dst = ob + o * E;
#pragma omp simd
            for (int64_t c = 0; c < E; c++) dst[c] *= inv;
            if (out_size) out_size[b * To + o] = w[o];
        }
        if (w != tot) free(w);
    }
}

double fg_tome_flops(int64_t B, int64_t T, int64_t C, int64_t H, int64_t E, int64_t r) {
    const double hd = (double)(C / H), nA = (double)((T + 1) / 2), nB = (double)(T / 2);
    /* head mean (C adds per token), norm (3 hd), similarities (2 hd per pair), merge (2 E per
     * token in, E per token out) */
    return (double)B * ((double)T * ((double)C + 3.0 * hd + 2.0 * (double)E) + 2.0 * hd * nA * nB +
                        (double)(T - r) * (double)E);
}

/* ---------------------------------------------------------------- proportional attention */

static int64_t attn_slots(int64_t items) {
    const int64_t nt = fg_threads_get();
    return items < nt ? items : nt;
}

size_t fg_tome_attention_workspace_bytes(int64_t B, int64_t H, int64_t T) {
    if (B < 1 || H < 1 || T < 1) return 0;
    return (size_t)attn_slots(B * H) * (size_t)(T * T + T) * sizeof(float);
}

double fg_tome_attention_flops(int64_t B, int64_t keep, int64_t T, int64_t D) {
    return 4.0 * (double)B * (double)keep * (double)T * (double)T * (double)D + (double)(B * keep) * (double)(T * T);
}

/* One (b, h): p = scale q k^T + logs (per key), softmax rows, o = p v; rows of q, k, v, o ld apart. */
static fg_status prop_item(float *o, float *p, const float *q, const float *k, const float *v, const float *logs,
                           int64_t T, int64_t D, int64_t ld, float scale) {
    fg_status s = fg_sgemm('N', 'T', T, T, D, scale, q, ld, k, ld, 0.0f, p, T);
    if (s != FG_OK) return s;
    for (int64_t i = 0; i < T; i++) {
        float *row = p + i * T;
        float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
        for (int64_t j = 0; j < T; j++) {
            row[j] += logs[j];
            mx = row[j] > mx ? row[j] : mx;
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < T; j++) {
            row[j] = expf(row[j] - mx);
            sum += row[j];
        }
        const float inv = 1.0f / sum;
#pragma omp simd
        for (int64_t j = 0; j < T; j++) row[j] *= inv;
    }
    return fg_sgemm('N', 'N', T, D, T, 1.0f, p, T, v, ld, 0.0f, o, ld);
}

/* Both layouts: head-major (B, H, T, D), or token-major (B, T, H, D) when tokens (item (b, h) is then
 * the D columns from h * D of batch item b's rows, H * D apart). */
static fg_status tome_attention(float *out, const float *q, const float *k, const float *v, const float *size,
                                int64_t B, int64_t H, int64_t keep, int64_t T, int64_t D, float scale, void *ws,
                                size_t ws_bytes, int tokens) {
    if (B < 1 || H < 1 || keep < 1 || keep > H || T < 1 || D < 1)
        return fg_fail(FG_ERR_SHAPE, "tome attention: B %lld, H %lld, keep %lld, T %lld, D %lld", (long long)B,
                       (long long)H, (long long)keep, (long long)T, (long long)D);
    const size_t per = (size_t)(T * T + T);
    const int64_t slots = (int64_t)(ws_bytes / (per * sizeof(float)));
    if (!ws || slots < 1)
        return fg_fail(FG_ERR_INVALID, "tome attention: workspace of %zu bytes, need at least %zu", ws_bytes,
                       per * sizeof(float));
    const int64_t items = B * keep, nth = slots < items ? slots : items;
    const size_t hs = (size_t)(T * D);
    const int64_t ld = tokens ? H * D : D;
    int failed = 0;
#pragma omp parallel for schedule(static) num_threads(nth) if (nth > 1) reduction(| : failed)
    for (int64_t it = 0; it < items; it++) {
        const int64_t b = it / keep, h = it % keep;
        float *p = (float *)ws + (size_t)omp_get_thread_num() * per, *logs = p + T * T;
        for (int64_t j = 0; j < T; j++) logs[j] = logf(size[b * T + j]);
        const size_t off = tokens ? (size_t)(b * T * H + h) * (size_t)D : (size_t)(b * H + h) * hs;
        failed |= prop_item(out + off, p, q + off, k + off, v + off, logs, T, D, ld, scale) != FG_OK;
    }
    for (int64_t b = 0; b < B && keep < H; b++) {
        if (!tokens) {
            memset(out + (size_t)(b * H + keep) * hs, 0, (size_t)(H - keep) * hs * sizeof(float));
            continue;
        }
        for (int64_t t = 0; t < T; t++)
            memset(out + (size_t)((b * T + t) * H + keep) * (size_t)D, 0, (size_t)((H - keep) * D) * sizeof(float));
    }
    return failed ? fg_fail(FG_ERR_BACKEND, "tome attention: sgemm failed") : FG_OK;
}

fg_status fg_tome_attention_forward(float *out, const float *q, const float *k, const float *v, const float *size,
                                    int64_t B, int64_t H, int64_t keep, int64_t T, int64_t D, float scale, void *ws,
                                    size_t ws_bytes) {
    return tome_attention(out, q, k, v, size, B, H, keep, T, D, scale, ws, ws_bytes, 0);
}

fg_status fg_tome_attention_forward_tokens(float *out, const float *q, const float *k, const float *v,
                                           const float *size, int64_t B, int64_t H, int64_t keep, int64_t T,
                                           int64_t D, float scale, void *ws, size_t ws_bytes) {
    return tome_attention(out, q, k, v, size, B, H, keep, T, D, scale, ws, ws_bytes, 1);
}

void fg_tome_attention_forward_naive(float *out, const float *q, const float *k, const float *v, const float *size,
                                     int64_t B, int64_t H, int64_t keep, int64_t T, int64_t D, float scale) {
    double *p = malloc((size_t)T * sizeof *p);
    FG_ASSERT(p);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            const size_t off = (size_t)(b * H + h) * (size_t)(T * D);
            for (int64_t i = 0; i < T; i++) {
                if (h >= keep) {
                    for (int64_t d = 0; d < D; d++) out[off + (size_t)(i * D + d)] = 0.0f;
                    continue;
                }
                double mx = -INFINITY, sum = 0.0;
                for (int64_t j = 0; j < T; j++) {
                    double s = 0.0;
                    for (int64_t d = 0; d < D; d++) s += (double)q[off + (size_t)(i * D + d)] * k[off + (size_t)(j * D + d)];
                    p[j] = scale * s + log((double)size[b * T + j]);
                    if (p[j] > mx) mx = p[j];
                }
                for (int64_t j = 0; j < T; j++) sum += (p[j] = exp(p[j] - mx));
                for (int64_t d = 0; d < D; d++) {
                    double o = 0.0;
                    for (int64_t j = 0; j < T; j++) o += p[j] * v[off + (size_t)(j * D + d)];
                    out[off + (size_t)(i * D + d)] = (float)(o / sum);
                }
            }
        }
    free(p);
}
