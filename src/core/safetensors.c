/* safetensors reader and writer (format: io.h; reference: github.com/huggingface/safetensors).
 *
 * Reader: the whole file is held in one buffer (or, for fg_st_load_header, its length word and
 * header only, the data area judged by the file's length); the JSON header is parsed by the strict parser
 * in json.c and every entry is checked before any pointer into the data area is handed out:
 * known dtype, at most FG_MAX_DIMS non-negative dims whose product times the dtype size does not
 * overflow and equals end - begin, offsets inside the data area, names unique, metadata strings
 * only. Like the reference implementation, the entries sorted by offset must tile the data area
 * exactly (no overlap, no gap, nothing after the last tensor): that catches overlapping entries
 * as well as files truncated or extended by a bad copy.
 *
 * Writer: the header lists tensors in insertion order after "__metadata__"; it is padded with
 * spaces to a multiple of 8 bytes so the data area starts 8-aligned in the file. The data area
 * holds the tensors back to back (the reference loader rejects gaps), ordered by decreasing
 * element size and then insertion order, so every tensor starts at a multiple of its own element
 * size (8-byte types first, then 4, 2, 1). The file is written atomically (atomic_file.h). */
#include <errno.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/atomic_file.h"
#include "core/json_impl.h"
#include "frugal/io.h"

#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000) /* as the reference implementation */
#define ST_MAX_DEPTH 32                              /* the format needs 3 */

static const char *const dtype_names[FG_ST_DTYPE_COUNT] = {"F32", "F16", "BF16", "F64", "I64", "I32", "I16",
                                                            "I8",  "U8",  "BOOL", "U64", "U32", "U16"};
static const size_t dtype_sizes[FG_ST_DTYPE_COUNT] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 1, 8, 4, 2};

static int dtype_lookup(const char *s) {
    for (int i = 0; i < FG_ST_DTYPE_COUNT; i++)
        if (strcmp(s, dtype_names[i]) == 0) return i;
    return -1;
}

/* "[2, 3]" for messages; 160 bytes hold FG_MAX_DIMS dims of 20 digits */
typedef struct shape_buf {
    char s[160];
} shape_buf;

static const char *shape_text(shape_buf *b, int ndim, const int64_t *shape) {
    size_t k = 0;
    b->s[k++] = '[';
    for (int i = 0; i < ndim && i < FG_MAX_DIMS; i++) {
        int w = snprintf(b->s + k, sizeof b->s - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
        if (w < 0 || (size_t)w >= sizeof b->s - k - 1) break;
        k += (size_t)w;
    }
    b->s[k++] = ']';
    b->s[k] = 0;
    return b->s;
}

/* ---------------------------------------------------------------- reader */

struct fg_st_file {
    unsigned char *buf; /* the whole file, or its first 8 + header-length bytes when header_only */
    size_t len;         /* the file's length (buf holds fewer bytes when header_only) */
    int header_only;    /* fg_st_load_header: entries carry no data */
    fg_json_doc *doc; /* names and metadata strings point into it */
    fg_st_entry *entries; /* header order */
    size_t n;
    const fg_st_entry **by_name; /* sorted by name, for fg_st_find */
    const char **meta_keys, **meta_vals;
    size_t n_meta;
    char *what;
};

typedef struct span {
    uint64_t begin, end;
    size_t idx;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_entry_name(const void *a, const void *b) {
    const fg_st_entry *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static int cmp_str(const void *a, const void *b) {
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

/* A non-negative JSON integer, or -1. */
static int64_t json_nonneg(const fg_json *v) {
    return (v->kind == FG_JSON_NUMBER && v->is_int && v->i >= 0) ? v->i : -1;
}

static fg_status check_metadata(fg_st_file *f, const fg_json *m) {
    const char *what = f->what;
    if (m->kind == FG_JSON_NULL) return FG_OK; /* serializers may write null for "no metadata" */
    if (m->kind != FG_JSON_OBJECT)
        return fg_fail(FG_ERR_FORMAT, "%s: \"__metadata__\" is a JSON %s, expected an object of strings", what,
                       fg_json_kind_name(m->kind));
    for (size_t i = 0; i < m->len; i++)
        if (m->items[i].kind != FG_JSON_STRING)
            return fg_fail(FG_ERR_FORMAT, "%s: metadata key '%.200s' has a JSON %s value, expected a string", what,
                           m->keys[i], fg_json_kind_name(m->items[i].kind));
    f->n_meta = m->len;
    if (m->len == 0) return FG_OK;
    f->meta_keys = malloc(m->len * sizeof *f->meta_keys);
    f->meta_vals = malloc(m->len * sizeof *f->meta_vals);
    const char **sorted = malloc(m->len * sizeof *sorted);
    if (!f->meta_keys || !f->meta_vals || !sorted) {
        free(sorted);
        return fg_fail(FG_ERR_OOM, "%s: out of memory for %zu metadata keys", what, m->len);
    }
    for (size_t i = 0; i < m->len; i++) {
        f->meta_keys[i] = sorted[i] = m->keys[i];
        f->meta_vals[i] = m->items[i].str;
    }
    qsort(sorted, m->len, sizeof *sorted, cmp_str);
    for (size_t i = 1; i < m->len; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0) {
            fg_status s = fg_fail(FG_ERR_FORMAT, "%s: metadata key '%.200s' appears twice, expected unique keys", what,
                                  sorted[i]);
            free(sorted);
            return s;
        }
    free(sorted);
    return FG_OK;
}

/* Checks one tensor entry and fills e (data pointer excepted) and its span. */
static fg_status check_entry(const fg_st_file *f, const char *name, const fg_json *v, uint64_t data_size,
                             fg_st_entry *e, span *sp) {
    const char *what = f->what;
    if (v->kind != FG_JSON_OBJECT)
        return fg_fail(FG_ERR_FORMAT,
                       "%s: tensor '%.200s' is a JSON %s, expected an object with dtype, shape and data_offsets", what,
                       name, fg_json_kind_name(v->kind));
    const fg_json *dt = NULL, *sh = NULL, *off = NULL;
    for (size_t i = 0; i < v->len; i++) {
        const fg_json **slot = NULL;
        if (strcmp(v->keys[i], "dtype") == 0)
            slot = &dt;
        else if (strcmp(v->keys[i], "shape") == 0)
            slot = &sh;
        else if (strcmp(v->keys[i], "data_offsets") == 0)
            slot = &off;
        else
            return fg_fail(FG_ERR_FORMAT, "%s: tensor '%.200s' has unexpected key '%.100s' (expected dtype, shape, data_offsets)",
                           what, name, v->keys[i]);
        if (*slot) return fg_fail(FG_ERR_FORMAT, "%s: tensor '%.200s' has key '%s' twice", what, name, v->keys[i]);
        *slot = &v->items[i];
    }
    if (!dt || !sh || !off)
        return fg_fail(FG_ERR_FORMAT, "%s: tensor '%.200s' has no \"%s\" (expected dtype, shape, data_offsets)", what, name,
                       !dt ? "dtype" : !sh ? "shape" : "data_offsets");

    int d = dt->kind == FG_JSON_STRING ? dtype_lookup(dt->str) : -1;
    if (d < 0)
        return fg_fail(FG_ERR_FORMAT,
                       "%s: tensor '%.200s' has dtype %s%.40s%s, expected one of F32 F16 BF16 F64 I64 I32 I16 I8 U8 BOOL "
                       "U64 U32 U16",
                       what, name, dt->kind == FG_JSON_STRING ? "\"" : "a JSON ",
                       dt->kind == FG_JSON_STRING ? dt->str : fg_json_kind_name(dt->kind),
                       dt->kind == FG_JSON_STRING ? "\"" : "");
    size_t esize = dtype_sizes[d];

    if (sh->kind != FG_JSON_ARRAY)
        return fg_fail(FG_ERR_FORMAT, "%s: tensor '%.200s' has a JSON %s as shape, expected an array of dims", what, name,
                       fg_json_kind_name(sh->kind));
    if (sh->len > FG_MAX_DIMS)
        return fg_fail(FG_ERR_FORMAT, "%s: tensor '%.200s' has %zu dims, at most %d supported", what, name, sh->len,
                       FG_MAX_DIMS);
    memset(e, 0, sizeof *e);
    e->name = name;
    e->dtype = (fg_st_dtype)d;
    e->ndim = (int)sh->len;
    uint64_t numel = 1;
    int overflow = 0;
    for (size_t i = 0; i < sh->len; i++) {
        int64_t dim = json_nonneg(&sh->items[i]);
        if (dim < 0)
            return fg_fail(FG_ERR_FORMAT, "%s: tensor '%.200s' shape item %zu is not a non-negative integer", what, name, i);
        e->shape[i] = dim;
        if (dim != 0 && numel > UINT64_MAX / (uint64_t)dim) overflow = 1;
        numel = overflow ? 0 : numel * (uint64_t)dim;
    }
    /* a zero dim makes the product 0 even when other dims overflowed it */
    for (size_t i = 0; i < sh->len; i++)
        if (e->shape[i] == 0) numel = 0, overflow = 0;
    shape_buf sb;
    if (overflow || numel > SIZE_MAX / esize)
        return fg_fail(FG_ERR_FORMAT, "%s: tensor '%.200s' shape %s of %s overflows the size computation", what, name,
                       shape_text(&sb, e->ndim, e->shape), dtype_names[d]);
    uint64_t nbytes = numel * esize;

    if (off->kind != FG_JSON_ARRAY || off->len != 2)
        return fg_fail(FG_ERR_FORMAT, "%s: tensor '%.200s' data_offsets is not an array of 2 integers [begin, end]", what,
                       name);
    int64_t b = json_nonneg(&off->items[0]), en = json_nonneg(&off->items[1]);
    if (b < 0 || en < 0)
        return fg_fail(FG_ERR_FORMAT, "%s: tensor '%.200s' data_offsets must be two non-negative integers", what, name);
    if (b > en)
        return fg_fail(FG_ERR_FORMAT, "%s: tensor '%.200s' data_offsets [%lld, %lld] has begin > end", what, name,
                       (long long)b, (long long)en);
    if ((uint64_t)en > data_size)
        return fg_fail(FG_ERR_FORMAT,
                       "%s: tensor '%.200s' data_offsets [%lld, %lld] run past the data area of %llu bytes (truncated file?)",
                       what, name, (long long)b, (long long)en, (unsigned long long)data_size);
    if ((uint64_t)(en - b) != nbytes)
        return fg_fail(FG_ERR_FORMAT,
                       "%s: tensor '%.200s' shape %s of %s needs %llu bytes, but data_offsets [%lld, %lld] span %lld", what,
                       name, shape_text(&sb, e->ndim, e->shape), dtype_names[d], (unsigned long long)nbytes,
                       (long long)b, (long long)en, (long long)(en - b));
    e->nbytes = (size_t)nbytes;
    sp->begin = (uint64_t)b;
    sp->end = (uint64_t)en;
    return FG_OK;
}

/* Parses f->buf[0..f->len) into f; f owns the buffer already. */
static fg_status parse_into(fg_st_file *f) {
    const char *what = f->what;
    if (f->len < 8)
        return fg_fail(FG_ERR_FORMAT, "%s: %zu bytes, too short for a safetensors file (expected an 8-byte header length)",
                       what, f->len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->buf[i];
    if (hlen > ST_MAX_HEADER)
        return fg_fail(FG_ERR_FORMAT, "%s: header length %llu exceeds the limit of %llu bytes (not a safetensors file?)",
                       what, (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
    if (hlen > f->len - 8)
        return fg_fail(FG_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes follow the length)",
                       what, (unsigned long long)hlen, f->len - 8);
    const unsigned char *data = f->header_only ? NULL : f->buf + 8 + hlen;
    uint64_t data_size = (uint64_t)(f->len - 8 - (size_t)hlen);

    char jwhat[512];
    snprintf(jwhat, sizeof jwhat, "%s: header", what);
    FG_TRY(fg_json_parse((const char *)f->buf + 8, (size_t)hlen, ST_MAX_DEPTH, jwhat, &f->doc));
    const fg_json *root = fg_json_root(f->doc);
    if (root->kind != FG_JSON_OBJECT)
        return fg_fail(FG_ERR_FORMAT, "%s: header is a JSON %s, expected an object", what, fg_json_kind_name(root->kind));

    size_t n_meta_keys = 0;
    for (size_t i = 0; i < root->len; i++) n_meta_keys += strcmp(root->keys[i], "__metadata__") == 0;
    if (n_meta_keys > 1) return fg_fail(FG_ERR_FORMAT, "%s: \"__metadata__\" appears %zu times, expected at most once", what, n_meta_keys);
    size_t n = root->len - n_meta_keys;
    f->n = 0;
    f->entries = calloc(n ? n : 1, sizeof *f->entries);
    f->by_name = calloc(n ? n : 1, sizeof *f->by_name);
    span *spans = calloc(n ? n : 1, sizeof *spans);
    if (!f->entries || !f->by_name || !spans) {
        free(spans);
        return fg_fail(FG_ERR_OOM, "%s: out of memory for %zu tensor entries", what, n);
    }
    fg_status s = FG_OK;
    for (size_t i = 0; i < root->len && s == FG_OK; i++) {
        if (strcmp(root->keys[i], "__metadata__") == 0) {
            s = check_metadata(f, &root->items[i]);
            continue;
        }
        s = check_entry(f, root->keys[i], &root->items[i], data_size, &f->entries[f->n], &spans[f->n]);
        if (s == FG_OK) {
            spans[f->n].idx = f->n;
            f->by_name[f->n] = &f->entries[f->n];
            f->n++;
        }
    }
    if (s == FG_OK) {
        /* names unique */
        qsort(f->by_name, n, sizeof *f->by_name, cmp_entry_name);
        for (size_t i = 1; i < n && s == FG_OK; i++)
            if (strcmp(f->by_name[i - 1]->name, f->by_name[i]->name) == 0)
                s = fg_fail(FG_ERR_FORMAT, "%s: tensor name '%.200s' appears twice, expected unique names", what,
                            f->by_name[i]->name);
    }
    if (s == FG_OK) {
        /* entries tile the data area: sorted by offsets, each begins where the previous ended */
        qsort(spans, n, sizeof *spans, cmp_span);
        uint64_t cursor = 0;
        for (size_t i = 0; i < n && s == FG_OK; i++) {
            const fg_st_entry *e = &f->entries[spans[i].idx];
            if (spans[i].begin < cursor) {
                const fg_st_entry *prev = &f->entries[spans[i - 1].idx];
                s = fg_fail(FG_ERR_FORMAT,
                            "%s: tensors '%.200s' [%llu, %llu) and '%.200s' [%llu, %llu) overlap in the data area, expected "
                            "disjoint ranges",
                            what, prev->name, (unsigned long long)spans[i - 1].begin,
                            (unsigned long long)spans[i - 1].end, e->name, (unsigned long long)spans[i].begin,
                            (unsigned long long)spans[i].end);
            } else if (spans[i].begin > cursor) {
                s = fg_fail(FG_ERR_FORMAT,
                            "%s: tensor '%.200s' begins at data offset %llu, expected %llu (tensors must be contiguous: "
                            "%llu bytes unaccounted for)",
                            what, e->name, (unsigned long long)spans[i].begin, (unsigned long long)cursor,
                            (unsigned long long)(spans[i].begin - cursor));
            }
            cursor = spans[i].end;
        }
        if (s == FG_OK && cursor != data_size)
            s = fg_fail(FG_ERR_FORMAT,
                        "%s: data area is %llu bytes but the tensors cover %llu, expected them to end exactly at the end "
                        "of the file (trailing garbage?)",
                        what, (unsigned long long)data_size, (unsigned long long)cursor);
    }
    if (s == FG_OK)
        for (size_t i = 0; i < n; i++) f->entries[spans[i].idx].data = data ? data + spans[i].begin : NULL;
    free(spans);
    return s;
}

/* Takes ownership of buf (malloc'd, len bytes; with header_only, len is the file's length and buf
 * holds what fg_st_load_header read of it). */
static fg_status parse_owned(unsigned char *buf, size_t len, int header_only, const char *what, fg_st_file **out) {
    *out = NULL;
    fg_st_file *f = calloc(1, sizeof *f);
    size_t wl = strlen(what) + 1;
    char *w = malloc(wl);
    if (!f || !w) {
        free(f);
        free(w);
        free(buf);
        return fg_fail(FG_ERR_OOM, "%s: out of memory", what);
    }
    memcpy(w, what, wl);
    f->buf = buf;
    f->len = len;
    f->header_only = header_only;
    f->what = w;
    fg_status s = parse_into(f);
    if (s != FG_OK) {
        fg_st_free(f);
        return s;
    }
    *out = f;
    return FG_OK;
}

fg_status fg_st_parse(const void *buf, size_t len, const char *what, fg_st_file **out) {
    FG_ASSERT(out && (buf || len == 0));
    *out = NULL;
    if (!what) what = "safetensors";
    unsigned char *copy = malloc(len ? len : 1);
    if (!copy) return fg_fail(FG_ERR_OOM, "%s: cannot allocate %zu bytes", what, len);
    if (len) memcpy(copy, buf, len);
    return parse_owned(copy, len, 0, what, out);
}

fg_status fg_st_load(const char *path, fg_st_file **out) {
    FG_ASSERT(path && out);
    *out = NULL;
    unsigned char *buf;
    size_t len;
    FG_TRY(fg_file_read_all(path, &buf, &len));
    return parse_owned(buf, len, 0, path, out);
}

fg_status fg_st_load_header(const char *path, fg_st_file **out) {
    FG_ASSERT(path && out);
    *out = NULL;
    int fd;
    uint64_t size;
    FG_TRY(fg_file_open_read(path, &fd, &size));
    if ((uintmax_t)size > (uintmax_t)SIZE_MAX) {
        close(fd);
        return fg_fail(FG_ERR_FORMAT, "%s: %llu bytes, more than this machine can address", path,
                       (unsigned long long)size);
    }
    /* The length word, then as much of the header as the length asks for and the file holds;
     * parse_into judges both against the file's length exactly as it does for a whole file. */
    size_t n = size < 8 ? (size_t)size : 8;
    unsigned char len8[8] = {0};
    fg_status s = fg_file_pread_all(fd, path, 0, len8, n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | len8[i];
    if (s == FG_OK && n == 8 && hlen <= ST_MAX_HEADER && hlen <= size - 8) n = 8 + (size_t)hlen;
    unsigned char *buf = s == FG_OK ? malloc(n ? n : 1) : NULL;
    if (s == FG_OK && !buf) s = fg_fail(FG_ERR_OOM, "%s: cannot allocate %zu bytes for the header", path, n);
    if (s == FG_OK) {
        memcpy(buf, len8, n < 8 ? n : 8);
        if (n > 8) s = fg_file_pread_all(fd, path, 8, buf + 8, n - 8);
    }
    close(fd);
    if (s != FG_OK) {
        free(buf);
        return s;
    }
    return parse_owned(buf, (size_t)size, 1, path, out);
}

void fg_st_free(fg_st_file *f) {
    if (!f) return;
    fg_json_free(f->doc);
    free(f->entries);
    free(f->by_name);
    free(f->meta_keys);
    free(f->meta_vals);
    free(f->buf);
    free(f->what);
    free(f);
}

size_t fg_st_count(const fg_st_file *f) {
    FG_ASSERT(f);
    return f->n;
}

const fg_st_entry *fg_st_at(const fg_st_file *f, size_t i) {
    FG_ASSERT(f && i < f->n);
    return &f->entries[i];
}

const fg_st_entry *fg_st_find(const fg_st_file *f, const char *name) {
    FG_ASSERT(f && name);
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->by_name[mid]->name, name);
        if (c == 0) return f->by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *fg_st_meta(const fg_st_file *f, const char *key) {
    FG_ASSERT(f && key);
    for (size_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

fg_status fg_st_meta_str(const fg_st_file *f, const char *key, const char **out) {
    *out = fg_st_meta(f, key);
    if (!*out) return fg_fail(FG_ERR_FORMAT, "%s: metadata has no '%s' (not a frugal weights file or checkpoint?)", f->what, key);
    return FG_OK;
}

fg_status fg_st_meta_i64(const fg_st_file *f, const char *key, int64_t lo, int64_t hi, int64_t *out) {
    const char *v;
    FG_TRY(fg_st_meta_str(f, key, &v));
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return fg_fail(FG_ERR_FORMAT, "%s: metadata '%s' is '%.80s', expected an integer in [%lld, %lld]", f->what, key, v,
                       (long long)lo, (long long)hi);
    *out = x;
    return FG_OK;
}

fg_status fg_st_meta_u64(const fg_st_file *f, const char *key, uint64_t *out) {
    const char *v;
    FG_TRY(fg_st_meta_str(f, key, &v));
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-')
        return fg_fail(FG_ERR_FORMAT, "%s: metadata '%s' is '%.80s', expected an unsigned integer", f->what, key, v);
    *out = x;
    return FG_OK;
}

fg_status fg_st_meta_f64(const fg_st_file *f, const char *key, double *out) {
    const char *v;
    FG_TRY(fg_st_meta_str(f, key, &v));
    char *end;
    errno = 0;
    *out = strtod(v, &end);
    if (errno || end == v || *end)
        return fg_fail(FG_ERR_FORMAT, "%s: metadata '%s' is '%.80s', expected a number", f->what, key, v);
    return FG_OK;
}

fg_status fg_st_meta_table_text(const double *x, int64_t n, int fields, char **out) {
    FG_ASSERT(fields >= 1 && n >= 0 && (x || n == 0));
    const size_t cap = (size_t)n * (size_t)fields * 32 + 1; /* "%a" of a double: at most 24 characters */
    char *s = malloc(cap);
    if (!s) return fg_fail(FG_ERR_OOM, "metadata: out of host memory for a table of %lld x %d numbers", (long long)n, fields);
    size_t o = 0;
    s[0] = 0;
    for (int64_t r = 0; r < n; r++)
        for (int k = 0; k < fields; k++)
            o += (size_t)snprintf(s + o, cap - o, "%s%a", k ? "," : r ? ";" : "", x[r * fields + k]);
    *out = s;
    return FG_OK;
}

fg_status fg_st_meta_table(const fg_st_file *f, const char *key, int fields, int64_t max_records, double **out,
                           int64_t *n) {
    FG_ASSERT(fields >= 1 && max_records >= 0);
    const char *v;
    *out = NULL;
    *n = 0;
    FG_TRY(fg_st_meta_str(f, key, &v));
    if (!*v) return FG_OK;
    int64_t records = 1;
    for (const char *p = v; *p; p++) records += *p == ';';
    if (records > max_records)
        return fg_fail(FG_ERR_FORMAT, "%s: metadata '%s' has %lld records, expected at most %lld", f->what, key,
                       (long long)records, (long long)max_records);
    double *x = malloc((size_t)records * (size_t)fields * sizeof(double));
    if (!x) return fg_fail(FG_ERR_OOM, "%s: out of host memory for metadata '%s' (%lld records)", f->what, key,
                           (long long)records);
    const char *p = v;
    for (int64_t r = 0; r < records; r++)
        for (int k = 0; k < fields; k++) {
            char *end;
            x[r * fields + k] = strtod(p, &end);
            const char want = k < fields - 1 ? ',' : r < records - 1 ? ';' : 0;
            if (end == p || *end != want) {
                free(x);
                return fg_fail(FG_ERR_FORMAT, "%s: metadata '%s' is malformed near '%.40s' (record %lld of %lld, field "
                               "%d of %d: a number then '%s' expected)", f->what, key, p, (long long)r + 1,
                               (long long)records, k + 1, fields, want == ',' ? "," : want == ';' ? ";" : "the end");
            }
            p = *end ? end + 1 : end;
        }
    *out = x;
    *n = records;
    return FG_OK;
}

fg_status fg_st_read_f32(const fg_st_file *f, const char *name, int ndim, const int64_t *shape, float *dst) {
    FG_ASSERT(f && name && (shape || ndim == 0));
    if (ndim < 0 || ndim > FG_MAX_DIMS)
        return fg_fail(FG_ERR_INVALID, "%s: reading tensor '%s' with %d dims (expected 0..%d)", f->what, name, ndim,
                       FG_MAX_DIMS);
    shape_buf want, got;
    const fg_st_entry *e = fg_st_find(f, name);
    if (!e)
        return fg_fail(FG_ERR_FORMAT, "%s: no tensor '%s' (expected F32 %s)", f->what, name,
                       shape_text(&want, ndim, shape));
    int same = e->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = e->shape[i] == shape[i];
    if (e->dtype != FG_ST_F32 || !same)
        return fg_fail(FG_ERR_FORMAT, "%s: tensor '%s' is %s %s, expected F32 %s", f->what, name, dtype_names[e->dtype],
                       shape_text(&got, e->ndim, e->shape), shape_text(&want, ndim, shape));
    if (dst && e->nbytes && !e->data)
        return fg_fail(FG_ERR_INVALID, "%s: tensor '%s' asked for from a header-only read (fg_st_load_header), "
                       "expected fg_st_load", f->what, name);
    if (dst && e->nbytes) memcpy(dst, e->data, e->nbytes);
    return FG_OK;
}

/* ---------------------------------------------------------------- writer */

typedef struct st_item {
    char *name;
    fg_st_dtype dtype;
    int ndim;
    int64_t shape[FG_MAX_DIMS];
    const void *data;
    size_t nbytes;
} st_item;

struct fg_st_writer {
    st_item *items;
    size_t n, cap;
    char **mkeys, **mvals;
    size_t nm, mcap;
};

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

fg_status fg_st_writer_create(fg_st_writer **out) {
    FG_ASSERT(out);
    *out = calloc(1, sizeof **out);
    return *out ? FG_OK : fg_fail(FG_ERR_OOM, "safetensors writer: out of memory");
}

void fg_st_writer_free(fg_st_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) free(w->items[i].name);
    for (size_t i = 0; i < w->nm; i++) {
        free(w->mkeys[i]);
        free(w->mvals[i]);
    }
    free(w->items);
    free(w->mkeys);
    free(w->mvals);
    free(w);
}

fg_status fg_st_writer_add(fg_st_writer *w, const char *name, fg_st_dtype dtype, int ndim, const int64_t *shape,
                           const void *data) {
    FG_ASSERT(w);
    if (!name || !name[0]) return fg_fail(FG_ERR_INVALID, "safetensors writer: tensor name is empty");
    if (strcmp(name, "__metadata__") == 0)
        return fg_fail(FG_ERR_INVALID, "safetensors writer: '__metadata__' is reserved, not a tensor name");
    if (!fg_json_utf8_valid(name, strlen(name)))
        return fg_fail(FG_ERR_INVALID, "safetensors writer: tensor name '%.200s' is not valid UTF-8", name);
    if ((int)dtype < 0 || dtype >= FG_ST_DTYPE_COUNT)
        return fg_fail(FG_ERR_INVALID, "safetensors writer: tensor '%.200s' has unknown dtype %d", name, (int)dtype);
    if (ndim < 0 || ndim > FG_MAX_DIMS || (ndim > 0 && !shape))
        return fg_fail(FG_ERR_INVALID, "safetensors writer: tensor '%.200s' has %d dims, expected 0..%d", name, ndim,
                       FG_MAX_DIMS);
    uint64_t numel = 1;
    int zero = 0, overflow = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return fg_fail(FG_ERR_INVALID, "safetensors writer: tensor '%.200s' dim %d is %lld, expected >= 0", name, i,
                           (long long)shape[i]);
        if (shape[i] == 0) zero = 1;
        if (shape[i] != 0 && numel > UINT64_MAX / (uint64_t)shape[i]) overflow = 1;
        if (!overflow) numel *= (uint64_t)shape[i];
    }
    if (zero) numel = 0, overflow = 0;
    if (overflow || numel > SIZE_MAX / dtype_sizes[dtype])
        return fg_fail(FG_ERR_INVALID, "safetensors writer: tensor '%.200s' is too large", name);
    size_t nbytes = (size_t)numel * dtype_sizes[dtype];
    if (nbytes && !data) return fg_fail(FG_ERR_INVALID, "safetensors writer: tensor '%.200s' has no data", name);
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->items[i].name, name) == 0)
            return fg_fail(FG_ERR_INVALID, "safetensors writer: tensor '%.200s' added twice", name);
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        st_item *ni = realloc(w->items, cap * sizeof *ni);
        if (!ni) return fg_fail(FG_ERR_OOM, "safetensors writer: out of memory");
        w->items = ni;
        w->cap = cap;
    }
    st_item *it = &w->items[w->n];
    memset(it, 0, sizeof *it);
    it->name = dup_str(name);
    if (!it->name) return fg_fail(FG_ERR_OOM, "safetensors writer: out of memory");
    it->dtype = dtype;
    it->ndim = ndim;
    for (int i = 0; i < ndim; i++) it->shape[i] = shape[i];
    it->data = data;
    it->nbytes = nbytes;
    w->n++;
    return FG_OK;
}

/* A second call with the same key replaces the value (the file holds each key once). */
fg_status fg_st_writer_meta(fg_st_writer *w, const char *key, const char *value) {
    FG_ASSERT(w);
    if (!key || !value) return fg_fail(FG_ERR_INVALID, "safetensors writer: metadata key or value is NULL");
    if (!fg_json_utf8_valid(key, strlen(key)) || !fg_json_utf8_valid(value, strlen(value)))
        return fg_fail(FG_ERR_INVALID, "safetensors writer: metadata '%.200s' is not valid UTF-8", key);
    char *v = dup_str(value);
    if (!v) return fg_fail(FG_ERR_OOM, "safetensors writer: out of memory");
    for (size_t i = 0; i < w->nm; i++)
        if (strcmp(w->mkeys[i], key) == 0) {
            free(w->mvals[i]);
            w->mvals[i] = v;
            return FG_OK;
        }
    if (w->nm == w->mcap) {
        size_t cap = w->mcap ? w->mcap * 2 : 16;
        char **nk = realloc(w->mkeys, cap * sizeof *nk);
        if (nk) w->mkeys = nk;
        char **nv = nk ? realloc(w->mvals, cap * sizeof *nv) : NULL;
        if (nv) w->mvals = nv;
        if (!nk || !nv) {
            free(v);
            return fg_fail(FG_ERR_OOM, "safetensors writer: out of memory");
        }
        w->mcap = cap;
    }
    char *k = dup_str(key);
    if (!k) {
        free(v);
        return fg_fail(FG_ERR_OOM, "safetensors writer: out of memory");
    }
    w->mkeys[w->nm] = k;
    w->mvals[w->nm] = v;
    w->nm++;
    return FG_OK;
}

/* Growable text for the header. */
typedef struct strbuf {
    char *p;
    size_t n, cap;
    int oom;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->cap - b->n < n + 1) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->n < n + 1) {
            if (cap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            cap *= 2;
        }
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_puts(strbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_u64(strbuf *b, unsigned long long v) {
    char t[32];
    int k = snprintf(t, sizeof t, "%llu", v);
    sb_put(b, t, (size_t)k);
}

/* A JSON string literal: quotes, backslashes and control characters escaped; UTF-8 as is. */
static void sb_json_str(strbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        case '\b': sb_put(b, "\\b", 2); break;
        case '\f': sb_put(b, "\\f", 2); break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", (unsigned)*p);
                sb_put(b, esc, 6);
            } else {
                sb_put(b, (const char *)p, 1);
            }
        }
    }
    sb_put(b, "\"", 1);
}

fg_status fg_st_writer_save(fg_st_writer *w, const char *path) {
    FG_ASSERT(w && path);
    const uint16_t probe = 1;
    if (*(const unsigned char *)&probe != 1)
        return fg_fail(FG_ERR_UNSUPPORTED, "%s: writing safetensors on a big-endian host is not implemented", path);

    /* Data layout: decreasing element size, then insertion order (stable), back to back. */
    size_t *order = malloc((w->n ? w->n : 1) * sizeof *order);
    uint64_t *begin = malloc((w->n ? w->n : 1) * sizeof *begin);
    if (!order || !begin) {
        free(order);
        free(begin);
        return fg_fail(FG_ERR_OOM, "%s: out of memory", path);
    }
    size_t k = 0;
    static const size_t sizes_desc[] = {8, 4, 2, 1};
    for (size_t si = 0; si < 4; si++)
        for (size_t i = 0; i < w->n; i++)
            if (dtype_sizes[w->items[i].dtype] == sizes_desc[si]) order[k++] = i;
    FG_ASSERT(k == w->n);
    uint64_t total = 0;
    for (size_t j = 0; j < w->n; j++) {
        const st_item *it = &w->items[order[j]];
        begin[order[j]] = total;
        total += it->nbytes; /* each nbytes < SIZE_MAX; the sum of addressable arrays fits in 64 bits */
    }

    strbuf hb = {0};
    sb_puts(&hb, "{");
    int first = 1;
    if (w->nm) {
        sb_puts(&hb, "\"__metadata__\":{");
        for (size_t i = 0; i < w->nm; i++) {
            if (i) sb_puts(&hb, ",");
            sb_json_str(&hb, w->mkeys[i]);
            sb_puts(&hb, ":");
            sb_json_str(&hb, w->mvals[i]);
        }
        sb_puts(&hb, "}");
        first = 0;
    }
    for (size_t i = 0; i < w->n; i++) {
        const st_item *it = &w->items[i];
        if (!first) sb_puts(&hb, ",");
        first = 0;
        sb_json_str(&hb, it->name);
        sb_puts(&hb, ":{\"dtype\":\"");
        sb_puts(&hb, dtype_names[it->dtype]);
        sb_puts(&hb, "\",\"shape\":[");
        for (int d = 0; d < it->ndim; d++) {
            if (d) sb_puts(&hb, ",");
            sb_u64(&hb, (unsigned long long)it->shape[d]);
        }
        sb_puts(&hb, "],\"data_offsets\":[");
        sb_u64(&hb, (unsigned long long)begin[i]);
        sb_puts(&hb, ",");
        sb_u64(&hb, (unsigned long long)(begin[i] + it->nbytes));
        sb_puts(&hb, "]}");
    }
    sb_puts(&hb, "}");
    /* pad with spaces (JSON whitespace) so the data area starts at a multiple of 8 */
    while (!hb.oom && hb.n % 8 != 0) sb_puts(&hb, " ");
    if (hb.oom) {
        free(hb.p);
        free(order);
        free(begin);
        return fg_fail(FG_ERR_OOM, "%s: out of memory building the header", path);
    }
    if ((uint64_t)hb.n > ST_MAX_HEADER) {
        size_t hn = hb.n;
        free(hb.p);
        free(order);
        free(begin);
        return fg_fail(FG_ERR_INVALID, "%s: header would be %zu bytes, over the format's limit of %llu", path, hn,
                       (unsigned long long)ST_MAX_HEADER);
    }

    unsigned char len8[8];
    uint64_t hl = (uint64_t)hb.n;
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(hl >> (8 * i));
    fg_atomic_file af;
    fg_status s = fg_atomic_open(&af, path);
    if (s == FG_OK) s = fg_atomic_write(&af, len8, 8);
    if (s == FG_OK) s = fg_atomic_write(&af, hb.p, hb.n);
    for (size_t j = 0; s == FG_OK && j < w->n; j++) {
        const st_item *it = &w->items[order[j]];
        if (it->nbytes) s = fg_atomic_write(&af, it->data, it->nbytes);
    }
    if (s == FG_OK) s = fg_atomic_commit(&af);
    /* on failure fg_atomic_write/commit already removed the temporary file */
    free(hb.p);
    free(order);
    free(begin);
    return s;
}
