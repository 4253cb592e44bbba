/* The scores `frugal vit train / eval / profile` report (tools/vit_common.c), on hand-made logits
 * whose values are worked out here:
 *  - classification: accuracy, the predicted class the first of equal logits;
 *  - segmentation: per-class IoU = intersection / union of predicted and true pixels (a wrong
 *    pixel counts in the union of both its classes), mIoU the mean over the classes present in
 *    truth or prediction, -1 for a class in neither, and the item IoU of "some item" against
 *    background; the argmax over classes reads each pixel's logits across the class planes. */
#include <string.h>

#include "testutil.h"
#include "vit_common.h"

/* One-hot logits (items, K, px) from per-pixel predicted classes. */
static void one_hot(float *logits, const int32_t *pred, int64_t items, int32_t K, int64_t px) {
    memset(logits, 0, (size_t)(items * K * px) * sizeof(float));
    for (int64_t i = 0; i < items; i++)
        for (int64_t p = 0; p < px; p++) logits[(i * K + pred[i * px + p]) * px + p] = 1.0f;
}

static void near(const char *what, double got, double want) {
    if (!(got > want - 1e-12 && got < want + 1e-12)) {
        fprintf(stderr, "  %s: %.12f, expected %.12f\n", what, got, want);
        fg_test_failures++;
    }
}

static void test_segmentation(void) {
    /* one item, 2 x 2 labels, 4 classes: truth [0 1 / 2 2], prediction [0 1 / 1 2]:
     * class 0: 1 / 1; class 1: 1 / 2 (pixel 2 predicted 1, truly 2); class 2: 1 / 2; class 3:
     * absent; mIoU (1 + 0.5 + 0.5) / 3; items (label > 0): truth pixels 1, 2, 3, prediction 1,
     * 2, 3: item IoU 3 / 3 */
    vit_split s = {1, 1, 2, 2, 2, 2, 4, NULL, NULL, 0};
    const int32_t truth[4] = {0, 1, 2, 2}, pred[4] = {0, 1, 1, 2};
    float logits[4 * 4];
    one_hot(logits, pred, 1, 4, 4);
    vit_score sc;
    memset(&sc, 0, sizeof sc);
    sc.k = 4;
    vit_score_batch(&sc, &s, logits, truth, 1);
    near("mIoU", vit_score_value(&sc, 1), 2.0 / 3.0);
    near("IoU of class 0", vit_score_class_iou(&sc, 0), 1.0);
    near("IoU of class 1", vit_score_class_iou(&sc, 1), 0.5);
    near("IoU of class 2", vit_score_class_iou(&sc, 2), 0.5);
    near("IoU of class 3 (absent)", vit_score_class_iou(&sc, 3), -1.0);
    near("item IoU", vit_score_item_iou(&sc), 1.0);
    near("pixel accuracy", (double)sc.correct / (double)sc.total, 0.75);
    /* background predicted as an item: truth [0 1 / 2 2], prediction [1 1 / 1 2]: items truth
     * {1, 2, 3}, prediction {0, 1, 2, 3}: item IoU 3 / 4; class 0: 0 / 1 */
    const int32_t pred2[4] = {1, 1, 1, 2};
    one_hot(logits, pred2, 1, 4, 4);
    memset(&sc, 0, sizeof sc);
    sc.k = 4;
    vit_score_batch(&sc, &s, logits, truth, 1);
    near("item IoU, background taken for an item", vit_score_item_iou(&sc), 0.75);
    near("IoU of class 0, never predicted", vit_score_class_iou(&sc, 0), 0.0);
    near("mIoU, class 0 missed", vit_score_value(&sc, 1), (0.0 + 1.0 / 3.0 + 0.5) / 3.0);
    /* all logits equal: every pixel predicted class 0 (the first) */
    memset(logits, 0, sizeof logits);
    memset(&sc, 0, sizeof sc);
    sc.k = 4;
    vit_score_batch(&sc, &s, logits, truth, 1);
    near("ties: class 0's IoU", vit_score_class_iou(&sc, 0), 0.25);
    near("ties: item IoU", vit_score_item_iou(&sc), 0.0);
}

static void test_classification(void) {
    vit_split s = {3, 1, 2, 2, 0, 0, 3, NULL, NULL, 0};
    /* rows: argmax 2, 0 (a tie of 0 and 1 goes to 0), 1 */
    const float logits[9] = {0.1f, 0.2f, 0.9f, 0.5f, 0.5f, 0.1f, -1.0f, 3.0f, 2.0f};
    const int32_t y[3] = {2, 0, 0};
    vit_score sc;
    memset(&sc, 0, sizeof sc);
    sc.k = 3;
    vit_score_batch(&sc, &s, logits, y, 3);
    near("accuracy", vit_score_value(&sc, 0), 2.0 / 3.0);
    /* only the rows asked for count (a padded last batch) */
    memset(&sc, 0, sizeof sc);
    sc.k = 3;
    vit_score_batch(&sc, &s, logits, y, 2);
    near("accuracy over 2 rows", vit_score_value(&sc, 0), 1.0);
}

int main(void) {
    test_segmentation();
    test_classification();
    return fg_test_finish("test_tools_vit_score");
}
