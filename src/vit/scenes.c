/* "Digit scenes": the segmentation data of issue 14, made from MNIST or Fashion-MNIST. A scene is a
 * square canvas (size x size, one channel) on which a few source items (h x w each, 28 x 28 for
 * MNIST) are pasted at random positions; the label map says, per pixel, which class's item shows
 * there (source class c -> label c + 1) or background (0).
 *
 * Per scene, from the rng seeded with cfg->seed (one stream for the whole set, so scene i depends on
 * the seed and i only through the draws before it; the same call gives the same bytes):
 *   k = items_min + below(items_max - items_min + 1); then k times: an index first + below(count),
 *   a top-left corner y = below(size - h + 1), x = below(size - w + 1); the item's pixels above the
 *   threshold overwrite the canvas (intensity / 255) and the label, in order, so later items cover
 *   earlier ones. Pixels at or below the threshold are transparent: a background pixel is exactly 0.
 * Only source images in [first, first + count) are read, which is what keeps splits disjoint.
 *
 * With augmentation (cfg->scale_jitter or cfg->rotate_deg above 0) each item draws, after its index,
 * a scale f = 1 + jitter * (2u - 1) and an angle a = rotate_deg * (2u - 1) (u = fg_rng_uniform), and
 * covers the box ceil(f (h |cos a| + w |sin a|)) x ceil(f (w |cos a| + h |sin a|)) placed as above;
 * a box pixel's centre maps back through the inverse rotation and scale about the box's centre to a
 * point of the source, sampled bilinearly (zero outside it). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/vit.h"

/* the largest of f (a |cos t| + b |sin t|) over |t| <= r radians (r <= pi), f the largest scale */
static double extent_bound(double a, double b, double f, double r) {
    const double peak = atan2(b, a); /* where a cos t + b sin t peaks on [0, pi/2] */
    return f * (r >= peak ? sqrt(a * a + b * b) : a * cos(r) + b * sin(r));
}

/* The bilinear sample of the h x w u8 image at (y, x) (pixel centres at integers), zero outside. */
static double sample(const uint8_t *px, int64_t h, int64_t w, double y, double x) {
    const double fy = floor(y), fx = floor(x), ty = y - fy, tx = x - fx;
    const int64_t y0 = (int64_t)fy, x0 = (int64_t)fx;
    double v = 0;
    for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) {
            const int64_t yy = y0 + dy, xx = x0 + dx;
            if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
            v += (dy ? ty : 1 - ty) * (dx ? tx : 1 - tx) * px[yy * w + xx];
        }
    return v;
}

/* Pastes source image px (h x w, class cls) scaled by f and rotated by a radians, drawing its corner
 * from r: the augmented path of fg_vit_scenes_make. */
static void paste_affine(const uint8_t *px, int64_t h, int64_t w, int32_t cls, double f, double a, uint8_t threshold,
                         int64_t S, fg_rng *r, float *img, int32_t *lab) {
    const double c = cos(a), sn = sin(a);
    int64_t bh = (int64_t)ceil(f * (h * fabs(c) + w * fabs(sn)) - 1e-9);
    int64_t bw = (int64_t)ceil(f * (w * fabs(c) + h * fabs(sn)) - 1e-9);
    if (bh > S) bh = S;
    if (bw > S) bw = S;
    const int64_t y0 = (int64_t)fg_rng_below(r, (uint64_t)(S - bh + 1));
    const int64_t x0 = (int64_t)fg_rng_below(r, (uint64_t)(S - bw + 1));
    for (int64_t y = 0; y < bh; y++)
        for (int64_t x = 0; x < bw; x++) {
            const double dy = y + 0.5 - bh / 2.0, dx = x + 0.5 - bw / 2.0;
            const double u = (c * dx + sn * dy) / f, v = (-sn * dx + c * dy) / f;
            const double val = sample(px, h, w, v + h / 2.0 - 0.5, u + w / 2.0 - 0.5);
            if (!(val > threshold)) continue;
            const size_t o = (size_t)((y0 + y) * S + x0 + x);
            img[o] = (float)(val / 255.0);
            lab[o] = cls;
        }
}

fg_status fg_vit_scenes_make(const fg_idx *images, const fg_idx *labels, int32_t n_classes, int64_t first, int64_t count,
                             const fg_scenes_cfg *cfg, fg_scenes *out) {
    FG_ASSERT(images && labels && cfg && out);
    memset(out, 0, sizeof *out);
    if (images->ndim != 3 || labels->ndim != 1 || images->dims[0] != labels->dims[0])
        return fg_fail(FG_ERR_SHAPE, "scenes: images must be (N, h, w) and labels (N) with the same N (got %d and %d dims)",
                       images->ndim, labels->ndim);
    const int64_t N = images->dims[0], h = images->dims[1], w = images->dims[2], S = cfg->size;
    if (first < 0 || count < 1 || first > N || count > N - first)
        return fg_fail(FG_ERR_INVALID, "scenes: source range of %lld images from %lld is empty or outside the %lld "
                       "images", (long long)count, (long long)first, (long long)N);
    if (cfg->n < 1 || cfg->items_min < 1 || cfg->items_max < cfg->items_min || n_classes < 1)
        return fg_fail(FG_ERR_INVALID, "scenes: n = %lld, items %d..%d, %d classes: expected n >= 1, 1 <= items_min <= "
                       "items_max, classes >= 1", (long long)cfg->n, cfg->items_min, cfg->items_max, (int)n_classes);
    if (S < h || S < w)
        return fg_fail(FG_ERR_SHAPE, "scenes: canvas %lld x %lld is smaller than the %lld x %lld items", (long long)S,
                       (long long)S, (long long)h, (long long)w);
    const double jitter = cfg->scale_jitter, rot = cfg->rotate_deg * (M_PI / 180.0);
    const int augment = jitter > 0 || cfg->rotate_deg > 0;
    if (!(jitter >= 0 && jitter < 1) || !(cfg->rotate_deg >= 0 && cfg->rotate_deg <= 180))
        return fg_fail(FG_ERR_INVALID, "scenes: scale jitter %g and rotation %g degrees: expected 0 <= jitter < 1 and "
                       "0 <= rotation <= 180", (double)cfg->scale_jitter, (double)cfg->rotate_deg);
    if (augment) {
        const double eh = ceil(extent_bound((double)h, (double)w, 1 + jitter, rot) - 1e-9);
        const double ew = ceil(extent_bound((double)w, (double)h, 1 + jitter, rot) - 1e-9);
        if (eh > (double)S || ew > (double)S)
            return fg_fail(FG_ERR_SHAPE, "scenes: a %lld x %lld item scaled by up to %g and rotated by up to %g degrees "
                           "spans up to %.0f x %.0f pixels, more than the %lld x %lld canvas", (long long)h, (long long)w,
                           1 + jitter, (double)cfg->rotate_deg, eh, ew, (long long)S, (long long)S);
    }
    for (int64_t i = first; i < first + count; i++)
        if (labels->data[i] >= n_classes)
            return fg_fail(FG_ERR_INVALID, "scenes: label %d of source image %lld is not below %d classes",
                           (int)labels->data[i], (long long)i, (int)n_classes);
    const size_t plane = (size_t)(S * S);
    out->images = calloc((size_t)cfg->n * plane, sizeof(float));
    out->labels = calloc((size_t)cfg->n * plane, sizeof(int32_t));
    if (!out->images || !out->labels) {
        fg_vit_scenes_free(out);
        return fg_fail(FG_ERR_OOM, "scenes: out of host memory for %lld canvases of %lld x %lld", (long long)cfg->n,
                       (long long)S, (long long)S);
    }
    out->n = cfg->n;
    out->size = S;
    out->n_classes = n_classes + 1;
    fg_rng r;
    fg_rng_seed(&r, cfg->seed);
    for (int64_t s = 0; s < cfg->n; s++) {
        float *img = out->images + (size_t)s * plane;
        int32_t *lab = out->labels + (size_t)s * plane;
        const int k = cfg->items_min + (int)fg_rng_below(&r, (uint64_t)(cfg->items_max - cfg->items_min + 1));
        for (int it = 0; it < k; it++) {
            const int64_t src = first + (int64_t)fg_rng_below(&r, (uint64_t)count);
            if (augment) {
                const double f = 1 + jitter * (2.0 * fg_rng_uniform(&r) - 1);
                const double a = rot * (2.0 * fg_rng_uniform(&r) - 1);
                paste_affine(images->data + (size_t)src * (size_t)(h * w), h, w, (int32_t)labels->data[src] + 1, f, a,
                             cfg->threshold, S, &r, img, lab);
                continue;
            }
            const int64_t y0 = (int64_t)fg_rng_below(&r, (uint64_t)(S - h + 1));
            const int64_t x0 = (int64_t)fg_rng_below(&r, (uint64_t)(S - w + 1));
            const uint8_t *px = images->data + (size_t)src * (size_t)(h * w);
            const int32_t cls = (int32_t)labels->data[src] + 1;
            for (int64_t y = 0; y < h; y++)
                for (int64_t x = 0; x < w; x++) {
                    const uint8_t v = px[y * w + x];
                    if (v <= cfg->threshold) continue;
                    const size_t o = (size_t)((y0 + y) * S + x0 + x);
                    img[o] = (float)v / 255.0f;
                    lab[o] = cls;
                }
        }
    }
    return FG_OK;
}

void fg_vit_scenes_free(fg_scenes *s) {
    if (!s) return;
    free(s->images);
    free(s->labels);
    memset(s, 0, sizeof *s);
}

fg_status fg_vit_scenes_labels_at(const fg_scenes *s, int64_t factor, int32_t *out) {
    FG_ASSERT(s && out);
    if (factor < 1 || s->size % factor)
        return fg_fail(FG_ERR_INVALID, "scenes: factor %lld must be >= 1 and divide the canvas size %lld", (long long)factor,
                       (long long)s->size);
    const int64_t S = s->size, R = S / factor;
    for (int64_t i = 0; i < s->n; i++)
        for (int64_t y = 0; y < R; y++)
            for (int64_t x = 0; x < R; x++)
                out[(i * R + y) * R + x] = s->labels[(i * S + factor * y + factor / 2) * S + factor * x + factor / 2];
    return FG_OK;
}
