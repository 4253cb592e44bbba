/* Image classification data sets from IDX pairs, and where the data directory is.
 *
 * "<dir>/<prefix>-images-idx3-ubyte" holds (n, h, w) u8 pixels and "<dir>/<prefix>-labels-idx1-ubyte"
 * holds n u8 labels, as scripts/fetch-data.sh writes them. Pixels become floats
 * (x / 255 - mean) / std through a 256-entry table (the same float for the same byte, always);
 * labels become int32. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/io.h"

#define DATASET_MAX_CLASSES 10 /* MNIST and Fashion-MNIST; a larger label means a wrong file */

fg_status fg_dataset_load_idx(const char *dir, const char *prefix, float mean, float std, fg_dataset *out) {
    FG_ASSERT(dir && prefix && out);
    memset(out, 0, sizeof *out);
    if (!(std > 0.0f) || !isfinite(std) || !isfinite(mean))
        return fg_fail(FG_ERR_INVALID, "data set %s/%s: normalization mean %g, std %g; expected finite values and std > 0",
                       dir, prefix, (double)mean, (double)std);
    char ipath[4096], lpath[4096];
    int a = snprintf(ipath, sizeof ipath, "%s/%s-images-idx3-ubyte", dir, prefix);
    int b = snprintf(lpath, sizeof lpath, "%s/%s-labels-idx1-ubyte", dir, prefix);
    if (a < 0 || b < 0 || (size_t)a >= sizeof ipath || (size_t)b >= sizeof lpath)
        return fg_fail(FG_ERR_INVALID, "data set path %s/%s is too long", dir, prefix);

    fg_idx im = {0}, lb = {0};
    FG_TRY(fg_idx_load(ipath, &im));
    fg_status s = fg_idx_load(lpath, &lb);
    if (s != FG_OK) {
        fg_idx_free(&im);
        return s;
    }
    if (im.ndim != 3 || im.dims[0] < 1 || im.dims[1] < 1 || im.dims[2] < 1)
        s = fg_fail(FG_ERR_FORMAT, "%s: images have %d dims (first %lld), expected 3 non-empty dims (n, h, w)", ipath,
                    im.ndim, (long long)im.dims[0]);
    else if (lb.ndim != 1)
        s = fg_fail(FG_ERR_FORMAT, "%s: labels have %d dims, expected 1 (n)", lpath, lb.ndim);
    else if (lb.dims[0] != im.dims[0])
        s = fg_fail(FG_ERR_FORMAT, "%s has %lld labels but %s has %lld images, expected the same count", lpath,
                    (long long)lb.dims[0], ipath, (long long)im.dims[0]);
    int max_label = 0;
    for (size_t i = 0; s == FG_OK && i < lb.numel; i++) {
        if (lb.data[i] >= DATASET_MAX_CLASSES)
            s = fg_fail(FG_ERR_FORMAT, "%s: label %u at index %zu, expected 0..%d", lpath, (unsigned)lb.data[i], i,
                        DATASET_MAX_CLASSES - 1);
        else if (lb.data[i] > max_label)
            max_label = lb.data[i];
    }
    if (s == FG_OK) {
        size_t n = (size_t)im.dims[0];
        if (im.numel <= SIZE_MAX / sizeof(float)) {
            out->images = malloc(im.numel * sizeof *out->images);
            out->labels = malloc(n * sizeof *out->labels);
        }
        if (!out->images || !out->labels) {
            fg_dataset_free(out);
            s = fg_fail(FG_ERR_OOM, "data set %s/%s: cannot allocate %zu floats for the images", dir, prefix, im.numel);
        }
    }
    if (s == FG_OK) {
        float lut[256];
        for (int v = 0; v < 256; v++) lut[v] = ((float)v / 255.0f - mean) / std;
        for (size_t i = 0; i < im.numel; i++) out->images[i] = lut[im.data[i]];
        for (size_t i = 0; i < lb.numel; i++) out->labels[i] = lb.data[i];
        out->n = im.dims[0];
        out->c = 1;
        out->h = im.dims[1];
        out->w = im.dims[2];
        out->n_classes = max_label + 1 < 2 ? 2 : max_label + 1;
    }
    fg_idx_free(&im);
    fg_idx_free(&lb);
    return s;
}

void fg_dataset_free(fg_dataset *d) {
    if (!d) return;
    free(d->images);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

/* $FRUGAL_DATA when set and non-empty, else $HOME/.cache/frugal, else ./.cache/frugal (no home).
 * Truncated to cap - 1 bytes when cap is too small (4096 always suffices in practice). */
const char *fg_data_dir(char *buf, size_t cap) {
    FG_ASSERT(buf && cap > 0);
    const char *env = getenv("FRUGAL_DATA");
    if (env && env[0]) {
        snprintf(buf, cap, "%s", env);
        return buf;
    }
    const char *home = getenv("HOME");
    snprintf(buf, cap, "%s/.cache/frugal", (home && home[0]) ? home : ".");
    return buf;
}
