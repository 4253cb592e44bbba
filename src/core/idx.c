/* IDX files (the original MNIST container; format in io.h): parse from memory, load, save.
 *
 * Layout: bytes 0-1 zero, byte 2 the element type, byte 3 the number of dims, then that many
 * big-endian u32 dims, then the elements in row-major order. Only unsigned bytes (type 0x08)
 * are accepted, and the length must be exactly header + product of dims: a file with trailing
 * bytes is as suspect as a truncated one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/atomic_file.h"
#include "frugal/io.h"

static const char *idx_type_name(unsigned t) {
    switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return "unknown";
    }
}

fg_status fg_idx_parse(const void *buf, size_t len, const char *what, fg_idx *out) {
    FG_ASSERT(out && (buf || len == 0));
    memset(out, 0, sizeof *out);
    if (!what) what = "idx";
    const unsigned char *b = buf;
    if (len < 4)
        return fg_fail(FG_ERR_FORMAT, "%s: %zu bytes, too short for an IDX file (expected a 4-byte magic)", what, len);
    if (b[0] != 0 || b[1] != 0)
        return fg_fail(FG_ERR_FORMAT, "%s: magic starts with 0x%02x%02x, expected 0x0000 (not an IDX file?)", what,
                       (unsigned)b[0], (unsigned)b[1]);
    if (b[2] != 0x08)
        return fg_fail(FG_ERR_FORMAT, "%s: element type 0x%02x (%s), expected 0x08 (unsigned byte)", what, (unsigned)b[2],
                       idx_type_name(b[2]));
    int ndim = b[3];
    if (ndim < 1 || ndim > FG_MAX_DIMS)
        return fg_fail(FG_ERR_FORMAT, "%s: %d dims, expected 1..%d", what, ndim, FG_MAX_DIMS);
    size_t head = 4 + 4 * (size_t)ndim;
    if (len < head)
        return fg_fail(FG_ERR_FORMAT, "%s: %zu bytes, too short for the %d dims the header announces (%zu bytes of header)",
                       what, len, ndim, head);
    uint64_t numel = 1;
    int overflow = 0;
    for (int i = 0; i < ndim; i++) {
        const unsigned char *p = b + 4 + 4 * i;
        uint64_t d = ((uint64_t)p[0] << 24) | ((uint64_t)p[1] << 16) | ((uint64_t)p[2] << 8) | p[3];
        out->dims[i] = (int64_t)d;
        if (d != 0 && numel > UINT64_MAX / d) overflow = 1;
        numel = overflow ? 0 : numel * d;
    }
    for (int i = 0; i < ndim; i++)
        if (out->dims[i] == 0) numel = 0, overflow = 0;
    if (overflow || numel > SIZE_MAX - head) {
        memset(out, 0, sizeof *out);
        return fg_fail(FG_ERR_FORMAT, "%s: dims overflow the size computation", what);
    }
    if (len != head + numel) {
        fg_status s = fg_fail(FG_ERR_FORMAT, "%s: %zu bytes, expected exactly %llu (%zu header + %llu data)%s", what, len,
                              (unsigned long long)(head + numel), head, (unsigned long long)numel,
                              len < head + numel ? " (truncated?)" : " (trailing bytes)");
        memset(out, 0, sizeof *out);
        return s;
    }
    out->data = malloc(numel ? (size_t)numel : 1);
    if (!out->data) {
        memset(out, 0, sizeof *out);
        return fg_fail(FG_ERR_OOM, "%s: cannot allocate %llu bytes", what, (unsigned long long)numel);
    }
    if (numel) memcpy(out->data, b + head, (size_t)numel);
    out->ndim = ndim;
    out->numel = (size_t)numel;
    return FG_OK;
}

fg_status fg_idx_load(const char *path, fg_idx *out) {
    FG_ASSERT(path && out);
    memset(out, 0, sizeof *out);
    unsigned char *buf;
    size_t len;
    FG_TRY(fg_file_read_all(path, &buf, &len));
    fg_status s = fg_idx_parse(buf, len, path, out);
    free(buf);
    return s;
}

void fg_idx_free(fg_idx *x) {
    if (!x) return;
    free(x->data);
    memset(x, 0, sizeof *x);
}

fg_status fg_idx_save(const char *path, int ndim, const int64_t *dims, const uint8_t *data) {
    FG_ASSERT(path);
    if (ndim < 1 || ndim > FG_MAX_DIMS || !dims)
        return fg_fail(FG_ERR_INVALID, "%s: IDX needs 1..%d dims, got %d", path, FG_MAX_DIMS, ndim);
    unsigned char head[4 + 4 * FG_MAX_DIMS] = {0, 0, 0x08, (unsigned char)ndim};
    uint64_t numel = 1;
    int zero = 0;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0 || dims[i] > (int64_t)UINT32_MAX)
            return fg_fail(FG_ERR_INVALID, "%s: IDX dim %d is %lld, expected 0..%lu", path, i, (long long)dims[i],
                           (unsigned long)UINT32_MAX);
        uint64_t d = (uint64_t)dims[i];
        if (d == 0) zero = 1;
        if (!zero && numel > SIZE_MAX / d) return fg_fail(FG_ERR_INVALID, "%s: IDX dims are too large", path);
        if (!zero) numel *= d;
        unsigned char *p = head + 4 + 4 * i;
        p[0] = (unsigned char)(d >> 24);
        p[1] = (unsigned char)(d >> 16);
        p[2] = (unsigned char)(d >> 8);
        p[3] = (unsigned char)d;
    }
    if (zero) numel = 0;
    if (numel && !data) return fg_fail(FG_ERR_INVALID, "%s: IDX data is NULL", path);
    fg_atomic_file af;
    fg_status s = fg_atomic_open(&af, path);
    if (s == FG_OK) s = fg_atomic_write(&af, head, 4 + 4 * (size_t)ndim);
    if (s == FG_OK && numel) s = fg_atomic_write(&af, data, (size_t)numel);
    if (s == FG_OK) s = fg_atomic_commit(&af);
    return s;
}
