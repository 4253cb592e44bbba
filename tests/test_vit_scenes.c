/* Tests of the digit-scenes data (src/vit/scenes.c) on a synthetic source whose every image has its
 * own intensity, so a canvas pixel tells which source image it came from:
 *  - the same seed gives the same bytes, another seed other scenes;
 *  - every labelled pixel shows an item of that label's class (intensity of a source image of class
 *    label - 1) and every background pixel is exactly 0;
 *  - only source images of the given range appear (disjoint splits), and never more items than
 *    items_max;
 *  - the labels at 1/4 resolution are the cells' centre pixels;
 *  - bad ranges, canvases, labels and factors are rejected with a message. */
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

int main(void) {
    fg_idx im, lb;
    make_source(&im, &lb);
    fg_scenes_cfg cfg = {50, 64, 2, 4, 0, 42};
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
    fg_scenes_cfg vc = {30, 96, 1, 6, 0, 7};
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
    CHECK(strstr(fg_last_error(), "[15, 25)") != NULL);
    fg_scenes_cfg small = {1, 20, 1, 1, 0, 1};
    CHECK_STATUS(fg_vit_scenes_make(&im, &lb, 10, 0, 10, &small, &d), FG_ERR_SHAPE);
    CHECK_STATUS(fg_vit_scenes_make(&im, &lb, 5, 0, 10, &cfg, &d), FG_ERR_INVALID); /* label 9 >= 5 classes */
    CHECK(strstr(fg_last_error(), "label") != NULL);
    fg_scenes_cfg noitems = {1, 64, 3, 2, 0, 1};
    CHECK_STATUS(fg_vit_scenes_make(&im, &lb, 10, 0, 10, &noitems, &d), FG_ERR_INVALID);
    fg_vit_scenes_free(&a);
    fg_vit_scenes_free(&b);
    return fg_test_finish("test_vit_scenes");
}
