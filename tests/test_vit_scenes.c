/* Tests of the digit-scenes data (src/vit/scenes.c) on a synthetic source whose every image has its
 * own intensity, so a canvas pixel tells which source image it came from:
 *  - the same seed gives the same bytes, another seed other scenes;
 *  - every labelled pixel shows an item of that label's class (intensity of a source image of class
 *    label - 1) and every background pixel is exactly 0;
 *  - only source images of the given range appear (disjoint splits), and never more items than
 *    items_max; the item counts cover [items_min, items_max], both ends;
 *  - the labels at 1/4 resolution are the cells' centre pixels;
 *  - augmentation: on a solid square item the labelled area follows the drawn scales (mean (28 f)^2)
 *    and the labelled box the drawn angles (mean side 28 * 4/pi for angles uniform in +-45 degrees),
 *    labelled pixels carry the item's class and background stays 0; a bar's tilt shows both signs
 *    (angles in [-r, r], not [0, r]);
 *  - bad ranges, canvases, labels, factors and augmentations are rejected with a message. */
#include <math.h>
#include <string.h>

#include "frugal/vit.h"
#include "testutil.h"

#define NSRC 20
#define HW 28

static uint8_t src_px[NSRC * HW * HW], src_lab[NSRC];

/* image i: a (6 + i % 7)-wide filled square at (3, 4) of intensity 100 + i, label i % 10 */
static void make_source(fg_idx *im, fg_idx *lb) {
    memset(src_px, 0, sizeof src_px);
    for (int i = 0; i < NSRC; i++) {
        const int side = 6 + i % 7;
        for (int y = 3; y < 3 + side; y++)
            for (int x = 4; x < 4 + side; x++) src_px[(i * HW + y) * HW + x] = (uint8_t)(100 + i);
        src_lab[i] = (uint8_t)(i % 10);
    }
    *im = (fg_idx){3, {NSRC, HW, HW}, src_px, sizeof src_px};
    *lb = (fg_idx){1, {NSRC}, src_lab, sizeof src_lab};
}

static void check_scenes(const fg_scenes *s, int64_t first, int64_t count, int items_max, const char *what) {
    const size_t plane = (size_t)(s->size * s->size);
    int64_t bad_bg = 0, bad_lab = 0, bad_src = 0, too_many = 0, labelled = 0;
    for (int64_t i = 0; i < s->n; i++) {
        int seen[NSRC] = {0}, distinct = 0;
        for (size_t p = 0; p < plane; p++) {
            const float v = s->images[(size_t)i * plane + p];
            const int32_t l = s->labels[(size_t)i * plane + p];
            if (l == 0) {
                bad_bg += v != 0.0f;
                continue;
            }
            labelled++;
            const int src = (int)(v * 255.0f + 0.5f) - 100;
            if (src < first || src >= first + count) {
                bad_src++;
                continue;
            }
            bad_lab += l != src % 10 + 1;
            if (!seen[src]++) distinct++;
        }
        too_many += distinct > items_max;
    }
    if (bad_bg || bad_lab || bad_src || too_many || !labelled) {
        fprintf(stderr, "  %s: %lld background pixels not 0, %lld labels not their item's class, %lld pixels from outside "
                        "[%lld, %lld), %lld scenes with more than %d items, %lld labelled pixels\n",
                what, (long long)bad_bg, (long long)bad_lab, (long long)bad_src, (long long)first,
                (long long)(first + count), (long long)too_many, items_max, (long long)labelled);
        fg_test_failures++;
    }
}

/* Scenes of one solid 28 x 28 item (intensity 200, class 3) at threshold 127 (half coverage): the
 * mean labelled area and the mean side of the labelled pixels' bounding box over the scenes. */
static void solid_stats(float jitter, float rotate, double *area, double *side) {
    static uint8_t px[HW * HW], lab[1] = {3};
    memset(px, 200, sizeof px);
    fg_idx im = {3, {1, HW, HW}, px, sizeof px}, lb = {1, {1}, lab, sizeof lab};
    fg_scenes_cfg cfg = {400, 64, 1, 1, 127, 5, jitter, rotate};
    fg_scenes s;
    *area = *side = 0;
    if (fg_vit_scenes_make(&im, &lb, 10, 0, 1, &cfg, &s) != FG_OK) {
        fprintf(stderr, "  augmented scenes: %s\n", fg_last_error());
        fg_test_failures++;
        return;
    }
    int64_t bad = 0;
    for (int64_t i = 0; i < s.n; i++) {
        int64_t n = 0, y0 = 64, y1 = -1, x0 = 64, x1 = -1;
        for (int64_t y = 0; y < 64; y++)
            for (int64_t x = 0; x < 64; x++) {
                const float v = s.images[(i * 64 + y) * 64 + x];
                const int32_t l = s.labels[(i * 64 + y) * 64 + x];
                if (l == 0) {
                    bad += v != 0.0f;
                    continue;
                }
                bad += l != 4 || !(v > 127.0f / 255.0f) || v > 200.0f / 255.0f + 1e-6f;
                n++;
                y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1, x0 = x < x0 ? x : x0, x1 = x > x1 ? x : x1;
            }
        *area += (double)n / (double)s.n;
        *side += 0.5 * (double)(y1 - y0 + 1 + x1 - x0 + 1) / (double)s.n;
    }
    if (bad) {
        fprintf(stderr, "  augmented scenes (jitter %g, rotate %g): %lld pixels with a wrong label or intensity\n",
                (double)jitter, (double)rotate, (long long)bad);
        fg_test_failures++;
    }
    fg_vit_scenes_free(&s);
}

static void check_near(const char *what, double got, double want, double rel) {
    if (fabs(got - want) > rel * want) {
        fprintf(stderr, "  %s: %.2f, expected %.2f within %.0f %%\n", what, got, want, 100 * rel);
        fg_test_failures++;
    }
}

/* Items per scene drawn in [items_min, items_max], both ends included: over 200 scenes of 1 to 3
 * small items (the synthetic sources, told apart by intensity) on a large canvas, every count
 * occurs, 3 included, and never more (a repeated source or an item covered whole by a later one
 * shows fewer). */
static void test_items_range(const fg_idx *im, const fg_idx *lb) {
    fg_scenes_cfg cfg = {200, 128, 1, 3, 0, 11, 0, 0};
    fg_scenes s;
    CHECK_OK(fg_vit_scenes_make(im, lb, 10, 0, NSRC, &cfg, &s));
    CHECK(s.n == 200);
    if (s.n != 200) {
        fg_vit_scenes_free(&s);
        return;
    }
    const size_t plane = (size_t)(s.size * s.size);
    int hist[NSRC + 1] = {0};
    for (int64_t i = 0; i < s.n; i++) {
        int seen[NSRC] = {0}, distinct = 0;
        for (size_t p = 0; p < plane; p++) {
            const float v = s.images[(size_t)i * plane + p];
            if (v == 0.0f) continue;
            const int src = (int)(v * 255.0f + 0.5f) - 100;
            if (src >= 0 && src < NSRC && !seen[src]++) distinct++;
        }
        hist[distinct]++;
    }
    fprintf(stderr, "  items per scene (1..3): %d x 1, %d x 2, %d x 3, %d x 0 or more than 3\n", hist[1], hist[2],
            hist[3], 200 - hist[1] - hist[2] - hist[3]);
    CHECK(hist[1] + hist[2] + hist[3] == 200);
    CHECK(hist[1] >= 40 && hist[2] >= 40 && hist[3] >= 40); /* about 67 each */
    /* items_min == items_max: that many, always */
    fg_vit_scenes_free(&s);
    fg_scenes_cfg two = {50, 128, 2, 2, 0, 12, 0, 0};
    CHECK_OK(fg_vit_scenes_make(im, lb, 10, 0, NSRC, &two, &s));
    int64_t more = 0, labelled = 0;
    for (size_t p = 0; p < (size_t)(s.n * s.size * s.size); p++) labelled += s.labels[p] != 0;
    for (int64_t i = 0; i < s.n; i++) {
        int seen[NSRC] = {0}, distinct = 0;
        for (size_t p = 0; p < plane; p++) {
            const float v = s.images[(size_t)i * plane + p];
            const int src = (int)(v * 255.0f + 0.5f) - 100;
            if (v != 0.0f && src >= 0 && src < NSRC && !seen[src]++) distinct++;
        }
        more += distinct > 2;
    }
    CHECK(labelled > 0 && more == 0);
    fg_vit_scenes_free(&s);
}

/* Angles drawn in [-rotate_deg, rotate_deg]: a horizontal bar (24 x 4) rotated by a shows as a
 * bar of slope tan a (rows grow downwards: the box's pixel (dx, dy) samples the source at
 * u = cos a dx + sin a dy, v = -sin a dx + cos a dy). The labelled pixels' orientation (second
 * moments) of each scene estimates its angle: over 200 scenes at +-30 degrees both tilts occur
 * about equally, the mean is near 0 and none is beyond 30 (plus the raster's error). */
static void test_rotation_sign(void) {
    static uint8_t px[HW * HW], lab[1] = {5};
    memset(px, 0, sizeof px);
    for (int y = 12; y < 16; y++)
        for (int x = 2; x < 26; x++) px[y * HW + x] = 200;
    fg_idx im = {3, {1, HW, HW}, px, sizeof px}, lb = {1, {1}, lab, sizeof lab};
    fg_scenes_cfg cfg = {200, 64, 1, 1, 127, 9, 0, 30};
    fg_scenes s;
    CHECK_OK(fg_vit_scenes_make(&im, &lb, 10, 0, 1, &cfg, &s));
    CHECK(s.n == 200);
    if (s.n != 200) {
        fg_vit_scenes_free(&s);
        return;
    }
    int pos = 0, neg = 0, beyond = 0;
    double mean = 0.0;
    for (int64_t i = 0; i < s.n; i++) {
        double n = 0, sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
        for (int64_t y = 0; y < 64; y++)
            for (int64_t x = 0; x < 64; x++)
                if (s.labels[(i * 64 + y) * 64 + x] != 0) {
                    n++;
                    sx += (double)x, sy += (double)y;
                    sxx += (double)(x * x), syy += (double)(y * y), sxy += (double)(x * y);
                }
        if (n < 10) {
            beyond++;
            continue;
        }
        const double vx = sxx / n - (sx / n) * (sx / n), vy = syy / n - (sy / n) * (sy / n);
        const double cxy = sxy / n - (sx / n) * (sy / n);
        const double deg = 0.5 * atan2(2.0 * cxy, vx - vy) * 180.0 / M_PI;
        mean += deg / (double)s.n;
        pos += deg > 2.0;
        neg += deg < -2.0;
        beyond += fabs(deg) > 33.0;
    }
    fprintf(stderr, "  bar rotated +-30: %d scenes tilted down, %d up, mean angle %.2f degrees\n", pos, neg, mean);
    CHECK(pos >= 70 && neg >= 70); /* about 93 each */
    CHECK(fabs(mean) < 4.0);
    CHECK(beyond == 0);
    fg_vit_scenes_free(&s);
}

int main(void) {
    fg_idx im, lb;
    make_source(&im, &lb);
    fg_scenes_cfg cfg = {50, 64, 2, 4, 0, 42, 0, 0};
    fg_scenes a, b, c;
    CHECK_OK(fg_vit_scenes_make(&im, &lb, 10, 0, 10, &cfg, &a));
    CHECK_OK(fg_vit_scenes_make(&im, &lb, 10, 0, 10, &cfg, &b));
    CHECK(a.n == 50 && a.size == 64 && a.n_classes == 11);
    fg_check_equal("scenes: same seed, same images", a.images, b.images, (size_t)(50 * 64 * 64));
    CHECK(memcmp(a.labels, b.labels, (size_t)(50 * 64 * 64) * sizeof(int32_t)) == 0);
    cfg.seed = 43;
    CHECK_OK(fg_vit_scenes_make(&im, &lb, 10, 0, 10, &cfg, &c));
    CHECK(memcmp(a.labels, c.labels, (size_t)(50 * 64 * 64) * sizeof(int32_t)) != 0);
    check_scenes(&a, 0, 10, 4, "train scenes from [0, 10)");
    fg_vit_scenes_free(&c);
    /* a disjoint split: only sources 10..19, on a larger canvas, one to six items */
    fg_scenes_cfg vc = {30, 96, 1, 6, 0, 7, 0, 0};
    CHECK_OK(fg_vit_scenes_make(&im, &lb, 10, 10, 10, &vc, &c));
    check_scenes(&c, 10, 10, 6, "val scenes from [10, 20)");
    fg_vit_scenes_free(&c);
    /* labels at 1/4: the centre pixel of every 4 x 4 cell */
    int32_t *q = malloc((size_t)(50 * 16 * 16) * sizeof(int32_t));
    CHECK_OK(fg_vit_scenes_labels_at(&a, 4, q));
    int64_t bad = 0;
    for (int64_t i = 0; i < 50; i++)
        for (int64_t y = 0; y < 16; y++)
            for (int64_t x = 0; x < 16; x++) bad += q[(i * 16 + y) * 16 + x] != a.labels[(i * 64 + 4 * y + 2) * 64 + 4 * x + 2];
    if (bad) {
        fprintf(stderr, "  labels at 1/4: %lld cells differ from their centre pixel\n", (long long)bad);
        fg_test_failures++;
    }
    CHECK_STATUS(fg_vit_scenes_labels_at(&a, 3, q), FG_ERR_INVALID);
    free(q);
    /* errors */
    fg_scenes d;
    CHECK_STATUS(fg_vit_scenes_make(&im, &lb, 10, 15, 10, &cfg, &d), FG_ERR_INVALID);
    CHECK(strstr(fg_last_error(), "10 images from 15") != NULL);
    CHECK_STATUS(fg_vit_scenes_make(&im, &lb, 10, INT64_MAX - 1, 4, &cfg, &d), FG_ERR_INVALID); /* first + count wrapped */
    fg_scenes_cfg small = {1, 20, 1, 1, 0, 1, 0, 0};
    CHECK_STATUS(fg_vit_scenes_make(&im, &lb, 10, 0, 10, &small, &d), FG_ERR_SHAPE);
    CHECK_STATUS(fg_vit_scenes_make(&im, &lb, 5, 0, 10, &cfg, &d), FG_ERR_INVALID); /* label 9 >= 5 classes */
    CHECK(strstr(fg_last_error(), "label") != NULL);
    fg_scenes_cfg noitems = {1, 64, 3, 2, 0, 1, 0, 0};
    CHECK_STATUS(fg_vit_scenes_make(&im, &lb, 10, 0, 10, &noitems, &d), FG_ERR_INVALID);
    /* augmentation: none at 0; scale and angle act as drawn */
    double area, side;
    solid_stats(0, 0, &area, &side);
    check_near("solid item, no augmentation: area", area, 784, 1e-9);
    solid_stats(0.3f, 0, &area, &side);
    check_near("scale jitter 0.3: mean area (E[(28 f)^2])", area, 784 * (1 + 0.09 / 3), 0.03);
    check_near("scale jitter 0.3: mean side (E[28 f])", side, 28, 0.03);
    solid_stats(0, 45, &area, &side);
    check_near("rotation +-45: mean area", area, 784, 0.03);
    check_near("rotation +-45: mean box side (28 * 4/pi)", side, 28 * 4 / M_PI, 0.03);
    fg_scenes_cfg aug = {20, 64, 2, 4, 0, 42, 0.2f, 30};
    fg_scenes e, f;
    CHECK_OK(fg_vit_scenes_make(&im, &lb, 10, 0, 10, &aug, &e));
    CHECK_OK(fg_vit_scenes_make(&im, &lb, 10, 0, 10, &aug, &f));
    fg_check_equal("augmented scenes: same seed, same images", e.images, f.images, (size_t)(20 * 64 * 64));
    fg_vit_scenes_free(&e);
    fg_vit_scenes_free(&f);
    fg_scenes_cfg big = {1, 32, 1, 1, 0, 1, 0.5f, 0};
    CHECK_STATUS(fg_vit_scenes_make(&im, &lb, 10, 0, 10, &big, &d), FG_ERR_SHAPE); /* up to 42 x 42 on 32 x 32 */
    CHECK(strstr(fg_last_error(), "42 x 42") != NULL);
    fg_scenes_cfg spin = {1, 39, 1, 1, 0, 1, 0, 45};
    CHECK_STATUS(fg_vit_scenes_make(&im, &lb, 10, 0, 10, &spin, &d), FG_ERR_SHAPE); /* the diagonal, 40 x 40 */
    CHECK(strstr(fg_last_error(), "40 x 40") != NULL);
    spin.size = 40;
    CHECK_OK(fg_vit_scenes_make(&im, &lb, 10, 0, 10, &spin, &d)); /* fits exactly */
    fg_vit_scenes_free(&d);
    spin.rotate_deg = 200;
    CHECK_STATUS(fg_vit_scenes_make(&im, &lb, 10, 0, 10, &spin, &d), FG_ERR_INVALID);
    spin.rotate_deg = 0;
    spin.scale_jitter = 1;
    CHECK_STATUS(fg_vit_scenes_make(&im, &lb, 10, 0, 10, &spin, &d), FG_ERR_INVALID);
    CHECK(strstr(fg_last_error(), "jitter") != NULL);
    test_items_range(&im, &lb);
    test_rotation_sign();
    fg_vit_scenes_free(&a);
    fg_vit_scenes_free(&b);
    return fg_test_finish("test_vit_scenes");
}
