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
 * Only source images in [first, first + count) are read, which is what keeps splits disjoint. */
#include <stdlib.h>
#include <string.h>

#include "frugal/vit.h"

fg_status fg_vit_scenes_make(const fg_idx *images, const fg_idx *labels, int32_t n_classes, int64_t first, int64_t count,
                             const fg_scenes_cfg *cfg, fg_scenes *out) {
    FG_ASSERT(images && labels && cfg && out);
    memset(out, 0, sizeof *out);
    if (images->ndim != 3 || labels->ndim != 1 || images->dims[0] != labels->dims[0])
        return fg_fail(FG_ERR_SHAPE, "scenes: images must be (N, h, w) and labels (N) with the same N (got %d and %d dims)",
                       images->ndim, labels->ndim);
    const int64_t N = images->dims[0], h = images->dims[1], w = images->dims[2], S = cfg->size;
    if (first < 0 || count < 1 || first + count > N)
        return fg_fail(FG_ERR_INVALID, "scenes: source range [%lld, %lld) is empty or outside the %lld images",
                       (long long)first, (long long)(first + count), (long long)N);
    if (cfg->n < 1 || cfg->items_min < 1 || cfg->items_max < cfg->items_min || n_classes < 1)
        return fg_fail(FG_ERR_INVALID, "scenes: n = %lld, items %d..%d, %d classes: expected n >= 1, 1 <= items_min <= "
                       "items_max, classes >= 1", (long long)cfg->n, cfg->items_min, cfg->items_max, (int)n_classes);
    if (S < h || S < w)
        return fg_fail(FG_ERR_SHAPE, "scenes: canvas %lld x %lld is smaller than the %lld x %lld items", (long long)S,
                       (long long)S, (long long)h, (long long)w);
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
