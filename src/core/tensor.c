/* Tensor views and small formatting helpers (shapes, byte counts). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/core.h"

size_t fg_dtype_size(fg_dtype t) {
    switch (t) {
    case FG_F32: return 4;
    case FG_I32: return 4;
    case FG_U8: return 1;
    default: FG_ASSERT_MSG(0, "bad dtype"); return 0;
    }
}

const char *fg_dtype_name(fg_dtype t) { return t == FG_F32 ? "f32" : t == FG_I32 ? "i32" : t == FG_U8 ? "u8" : "?"; }

fg_tensor fg_tensor_make(const char *name, fg_dtype dtype, int ndim, const int64_t *shape, void *data) {
    FG_ASSERT(ndim >= 0 && ndim <= FG_MAX_DIMS);
    fg_tensor t;
    memset(&t, 0, sizeof t);
    t.ndim = ndim;
    t.dtype = dtype;
    t.layout = FG_LAYOUT_PLAIN;
    t.data = data;
    t.residence = data ? FG_RES_DEVICE : FG_RES_NONE;
    int64_t stride = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t.shape[i] = shape[i];
        t.strides[i] = stride;
        stride *= shape[i];
    }
    snprintf(t.name, sizeof t.name, "%s", name ? name : "");
    return t;
}

int64_t fg_tensor_numel(const fg_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t fg_tensor_bytes(const fg_tensor *t) {
    if (t->layout == FG_LAYOUT_NCHW16C && t->ndim == 4) {
        int64_t c16 = (t->shape[1] + 15) / 16 * 16;
        return (size_t)(t->shape[0] * c16 * t->shape[2] * t->shape[3]) * fg_dtype_size(t->dtype);
    }
    return (size_t)fg_tensor_numel(t) * fg_dtype_size(t->dtype);
}

int fg_tensor_same_shape(const fg_tensor *a, const fg_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

char *fg_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, k < cap ? cap - k : 0, "[");
    for (int i = 0; i < ndim; i++)
        k += (size_t)snprintf(buf + k, k < cap ? cap - k : 0, "%s%lld", i ? ", " : "", (long long)shape[i]);
    snprintf(buf + k, k < cap ? cap - k : 0, "]");
    return buf;
}

char *fg_bytes_str(char *buf, size_t cap, double bytes) {
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    double v = bytes;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (u == 0) snprintf(buf, cap, "%.0f B", v);
    else snprintf(buf, cap, "%.2f %s", v, units[u]);
    return buf;
}

fg_status fg_bytes_parse(const char *s, size_t *out) {
    if (!s || !*s) return fg_fail(FG_ERR_INVALID, "size: empty string, expected e.g. 8G, 512M, 1000000");
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || !(v >= 0)) /* NaN too */
        return fg_fail(FG_ERR_INVALID, "size '%s': expected a non-negative number with an optional unit K, M, G, T", s);
    double mul = 1;
    char u = (char)toupper((unsigned char)*end);
    if (u == 'K') mul = 1024.0;
    else if (u == 'M') mul = 1024.0 * 1024;
    else if (u == 'G') mul = 1024.0 * 1024 * 1024;
    else if (u == 'T') mul = 1024.0 * 1024 * 1024 * 1024;
    else if (u != 0 && u != 'B')
        return fg_fail(FG_ERR_INVALID, "size '%s': unknown unit '%s', expected K, M, G or T", s, end);
    if (u != 0) {
        end++;
        if (*end == 'i' || *end == 'I') end++;
        if (*end == 'b' || *end == 'B') end++;
        if (*end) return fg_fail(FG_ERR_INVALID, "size '%s': trailing characters '%s'", s, end);
    }
    double b = v * mul;
    if (!(b <= 1.8e19)) return fg_fail(FG_ERR_INVALID, "size '%s' is too large", s);
    *out = (size_t)b;
    return FG_OK;
}
