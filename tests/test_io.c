/* Tests of the file formats (io.h): safetensors round trips and every way a header can be
 * wrong, truncation and byte corruption at every position (no crash, clean failure), IDX round
 * trips and corrupt files, atomic writes (no temporary left behind, the old file intact when a
 * write fails), data sets from IDX pairs, and the data directory. Files go to a fresh directory
 * under $TMPDIR (or /tmp) that the test removes. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static char tmpdir[512];

static void path_in(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", tmpdir, name); }

/* Counts entries of tmpdir whose name contains ".tmp." (leftover temporary files). */
static int count_temp_files(void) {
    DIR *d = opendir(tmpdir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            chmod(p, 0700);
            remove_tree(p);
        } else {
            unlink(p);
        }
    }
    closedir(d);
    rmdir(dir);
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* A safetensors buffer from a header text and data_len bytes of data (values i & 0xff). */
static unsigned char *make_st(const char *header, size_t data_len, size_t *len) {
    size_t h = strlen(header);
    *len = 8 + h + data_len;
    unsigned char *b = malloc(*len);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    for (size_t i = 0; i < data_len; i++) b[8 + h + i] = (unsigned char)i;
    return b;
}

/* Expects fg_st_parse to fail with FG_ERR_FORMAT, a message naming the source and containing
 * `want` (when non-NULL). */
static void expect_bad_buf(const char *label, const unsigned char *b, size_t len, const char *want) {
    fg_st_file *f = (fg_st_file *)0x1;
    fg_status s = fg_st_parse(b, len, "case.safetensors", &f);
    const char *msg = fg_last_error();
    if (s != FG_ERR_FORMAT) {
        fprintf(stderr, "  %s: status %s (%s), expected bad format\n", label, fg_status_name(s), msg);
        fg_test_failures++;
        if (s == FG_OK) fg_st_free(f);
        return;
    }
    if (f != NULL) {
        fprintf(stderr, "  %s: *out not NULL on failure\n", label);
        fg_test_failures++;
    }
    if (!strstr(msg, "case.safetensors") || (want && !strstr(msg, want))) {
        fprintf(stderr, "  %s: message \"%s\" should name the file and contain \"%s\"\n", label, msg, want ? want : "");
        fg_test_failures++;
    }
}

static void expect_bad(const char *label, const char *header, size_t data_len, const char *want) {
    size_t len;
    unsigned char *b = make_st(header, data_len, &len);
    expect_bad_buf(label, b, len, want);
    free(b);
}

static void expect_good(const char *label, const char *header, size_t data_len, size_t n_entries) {
    size_t len;
    unsigned char *b = make_st(header, data_len, &len);
    fg_st_file *f = NULL;
    fg_status s = fg_st_parse(b, len, "good.safetensors", &f);
    if (s != FG_OK) {
        fprintf(stderr, "  %s: expected success, got %s: %s\n", label, fg_status_name(s), fg_last_error());
        fg_test_failures++;
    } else {
        if (fg_st_count(f) != n_entries) {
            fprintf(stderr, "  %s: %zu entries, expected %zu\n", label, fg_st_count(f), n_entries);
            fg_test_failures++;
        }
        fg_st_free(f);
    }
    free(b);
}

/* ---------------------------------------------------------------- safetensors round trip */

#define N_RT 7

static void test_st_roundtrip(void) {
    float a[6] = {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f};
    int64_t b[3] = {INT64_MIN, 42, INT64_MAX};
    uint8_t c[5] = {0, 1, 127, 128, 255};
    uint16_t h[3] = {0x3c00, 0xc000, 0x7bff};
    float scalar = 7.0f;
    float none[1] = {0};
    float odd[3] = {9.0f, 8.0f, 7.0f};
    const char *names[N_RT] = {"layer.0.weight", "counts", "bytes", "half \"quoted\" \\ name\n\xc3\xa9", "scalar",
                               "empty", "odd"};
    fg_st_dtype dts[N_RT] = {FG_ST_F32, FG_ST_I64, FG_ST_U8, FG_ST_F16, FG_ST_F32, FG_ST_F32, FG_ST_F32};
    int nds[N_RT] = {2, 1, 1, 1, 0, 2, 1};
    int64_t shapes[N_RT][2] = {{2, 3}, {3, 0}, {5, 0}, {3, 0}, {0, 0}, {0, 4}, {3, 0}};
    const void *datas[N_RT] = {a, b, c, h, &scalar, none, odd};
    size_t sizes[N_RT] = {sizeof a, sizeof b, sizeof c, sizeof h, sizeof scalar, 0, sizeof odd};
    size_t esz[N_RT] = {4, 8, 1, 2, 4, 4, 4};

    fg_st_writer *w = NULL;
    CHECK_OK(fg_st_writer_create(&w));
    for (int i = 0; i < N_RT; i++) CHECK_OK(fg_st_writer_add(w, names[i], dts[i], nds[i], shapes[i], datas[i]));
    CHECK_OK(fg_st_writer_meta(w, "format", "test"));
    CHECK_OK(fg_st_writer_meta(w, "note", "tab\there \"q\" \\ \x01 \xe2\x82\xac"));
    CHECK_OK(fg_st_writer_meta(w, "controls", "\x10 \x1b \x1f \x7f")); /* escaped: a reader refuses them raw */
    CHECK_OK(fg_st_writer_meta(w, "format", "test-v2")); /* replaces */
    CHECK_OK(fg_st_writer_meta(w, "n", "-42"));
    CHECK_OK(fg_st_writer_meta(w, "u", "18446744073709551615"));
    CHECK_OK(fg_st_writer_meta(w, "x", "0x1.999999999999ap-4")); /* 0.1 as "%a" writes it */
    /* tables: 3 records of 2 numbers written by fg_st_meta_table_text (a subnormal, -0, an
     * infinity among them), an empty one, and malformed ones */
    const double tab[6] = {0.1, -2.5, 4.9e-324, -0.0, 1e300 * 1e300, 3.0};
    char *tab_text = NULL;
    CHECK_OK(fg_st_meta_table_text(tab, 3, 2, &tab_text));
    if (tab_text) CHECK_OK(fg_st_writer_meta(w, "tab", tab_text));
    CHECK(tab_text && strchr(tab_text, ';') && !strchr(strrchr(tab_text, ';') + 1, ';'));
    free(tab_text);
    CHECK_OK(fg_st_writer_meta(w, "tab_empty", ""));
    CHECK_OK(fg_st_writer_meta(w, "tab_trailing", "1,2;3,4;"));
    CHECK_OK(fg_st_writer_meta(w, "tab_short", "1,2;3"));
    CHECK_OK(fg_st_writer_meta(w, "tab_word", "1,2;x,4"));
    CHECK_OK(fg_st_writer_meta(w, "tab_sep", "1,2,3,4"));
    CHECK_STATUS(fg_st_writer_add(w, "counts", FG_ST_F32, 1, shapes[1], a), FG_ERR_INVALID);
    CHECK_STATUS(fg_st_writer_add(w, "__metadata__", FG_ST_F32, 1, shapes[1], a), FG_ERR_INVALID);
    CHECK_STATUS(fg_st_writer_add(w, "", FG_ST_F32, 1, shapes[1], a), FG_ERR_INVALID);
    CHECK_STATUS(fg_st_writer_add(w, "bad\xff", FG_ST_F32, 1, shapes[1], a), FG_ERR_INVALID);
    int64_t neg[1] = {-1}, seven[7] = {1, 1, 1, 1, 1, 1, 1};
    CHECK_STATUS(fg_st_writer_add(w, "neg", FG_ST_F32, 1, neg, a), FG_ERR_INVALID);
    CHECK_STATUS(fg_st_writer_add(w, "seven", FG_ST_F32, 7, seven, a), FG_ERR_INVALID);
    CHECK_STATUS(fg_st_writer_add(w, "nodata", FG_ST_F32, 1, shapes[1], NULL), FG_ERR_INVALID);

    char path[1024];
    path_in(path, sizeof path, "rt.safetensors");
    CHECK_OK(fg_st_writer_save(w, path));
    fg_st_writer_free(w);
    CHECK(count_temp_files() == 0);

    /* layout: header length a multiple of 8; tensors contiguous, each at a multiple of its size */
    size_t flen;
    unsigned char *raw = read_file(path, &flen);
    CHECK(raw != NULL);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | raw[i];
    if (hl % 8 != 0) {
        fprintf(stderr, "  header length %llu is not a multiple of 8\n", (unsigned long long)hl);
        fg_test_failures++;
    }
    CHECK(raw[8] == '{');
    free(raw);

    fg_st_file *f = NULL;
    CHECK_OK(fg_st_load(path, &f));
    if (!f) return;
    CHECK(fg_st_count(f) == N_RT);
    for (int i = 0; i < N_RT && (size_t)i < fg_st_count(f); i++) {
        const fg_st_entry *e = fg_st_at(f, (size_t)i);
        if (strcmp(e->name, names[i]) != 0) {
            fprintf(stderr, "  entry %d is '%s', expected '%s' (insertion order)\n", i, e->name, names[i]);
            fg_test_failures++;
            continue;
        }
        CHECK(e->dtype == dts[i]);
        CHECK(e->ndim == nds[i]);
        for (int d = 0; d < nds[i]; d++) CHECK(e->shape[d] == shapes[i][d]);
        if (e->nbytes != sizes[i]) {
            fprintf(stderr, "  entry '%s': %zu bytes, expected %zu\n", names[i], e->nbytes, sizes[i]);
            fg_test_failures++;
        } else if (sizes[i] && memcmp(e->data, datas[i], sizes[i]) != 0) {
            fprintf(stderr, "  entry '%s': data differs after the round trip\n", names[i]);
            fg_test_failures++;
        }
        CHECK(fg_st_find(f, names[i]) == e);
    }
    /* alignment of each tensor within the file relative to the loaded buffer start: offsets are
     * what matters, recover them from the data pointers */
    const unsigned char *base = fg_st_at(f, 0)->data;
    for (size_t i = 0; i < fg_st_count(f); i++)
        if ((const unsigned char *)fg_st_at(f, i)->data < base) base = fg_st_at(f, i)->data;
    for (int i = 0; i < N_RT; i++) {
        size_t off = (size_t)((const unsigned char *)fg_st_at(f, (size_t)i)->data - base);
        if (sizes[i] && off % esz[i] != 0) {
            fprintf(stderr, "  entry '%s' at data offset %zu, not a multiple of its element size %zu\n", names[i], off,
                    esz[i]);
            fg_test_failures++;
        }
    }
    CHECK(fg_st_find(f, "missing") == NULL);
    const char *fmt = fg_st_meta(f, "format");
    CHECK(fmt && strcmp(fmt, "test-v2") == 0);
    const char *note = fg_st_meta(f, "note");
    CHECK(note && strcmp(note, "tab\there \"q\" \\ \x01 \xe2\x82\xac") == 0);
    const char *ctl = fg_st_meta(f, "controls");
    CHECK(ctl && strcmp(ctl, "\x10 \x1b \x1f \x7f") == 0);
    CHECK(fg_st_meta(f, "absent") == NULL);
    /* typed metadata: parsed values, and the missing key or the bad value named */
    int64_t iv;
    uint64_t uv;
    double xv;
    const char *sv;
    CHECK_OK(fg_st_meta_i64(f, "n", -100, 100, &iv));
    CHECK(iv == -42);
    CHECK_STATUS(fg_st_meta_i64(f, "n", 0, 100, &iv), FG_ERR_FORMAT);
    CHECK(strstr(fg_last_error(), "'n'") && strstr(fg_last_error(), "[0, 100]"));
    CHECK_STATUS(fg_st_meta_i64(f, "format", 0, 100, &iv), FG_ERR_FORMAT);
    CHECK_OK(fg_st_meta_u64(f, "u", &uv));
    CHECK(uv == UINT64_MAX);
    CHECK_STATUS(fg_st_meta_u64(f, "n", &uv), FG_ERR_FORMAT);
    CHECK_OK(fg_st_meta_f64(f, "x", &xv));
    CHECK(xv == 0.1);
    CHECK_STATUS(fg_st_meta_f64(f, "note", &xv), FG_ERR_FORMAT);
    CHECK_STATUS(fg_st_meta_str(f, "absent", &sv), FG_ERR_FORMAT);
    CHECK(strstr(fg_last_error(), "no 'absent'") != NULL);
    CHECK_OK(fg_st_meta_str(f, "format", &sv));
    CHECK(strcmp(sv, "test-v2") == 0);
    double *tv = NULL;
    int64_t tn = -1;
    CHECK_OK(fg_st_meta_table(f, "tab", 2, 3, &tv, &tn));
    CHECK(tn == 3 && tv && memcmp(tv, tab, sizeof tab) == 0); /* bit for bit, -0 and the subnormal too */
    free(tv);
    CHECK_OK(fg_st_meta_table(f, "tab_empty", 2, 3, &tv, &tn));
    CHECK(tn == 0 && tv == NULL);
    CHECK_STATUS(fg_st_meta_table(f, "tab", 2, 2, &tv, &tn), FG_ERR_FORMAT); /* more records than allowed */
    CHECK(tv == NULL && tn == 0 && strstr(fg_last_error(), "3 records") && strstr(fg_last_error(), "at most 2"));
    CHECK_STATUS(fg_st_meta_table(f, "tab", 3, 3, &tv, &tn), FG_ERR_FORMAT); /* 2 numbers a record, not 3 */
    CHECK_STATUS(fg_st_meta_table(f, "tab_trailing", 2, 9, &tv, &tn), FG_ERR_FORMAT);
    CHECK(strstr(fg_last_error(), "record 3 of 3") != NULL);
    CHECK_STATUS(fg_st_meta_table(f, "tab_short", 2, 9, &tv, &tn), FG_ERR_FORMAT);
    CHECK(strstr(fg_last_error(), "'tab_short'") && strstr(fg_last_error(), "record 2 of 2, field 1 of 2"));
    CHECK_STATUS(fg_st_meta_table(f, "tab_word", 2, 9, &tv, &tn), FG_ERR_FORMAT);
    CHECK(strstr(fg_last_error(), "near 'x,4'") != NULL);
    CHECK_STATUS(fg_st_meta_table(f, "tab_sep", 2, 9, &tv, &tn), FG_ERR_FORMAT);
    CHECK_STATUS(fg_st_meta_table(f, "absent", 2, 9, &tv, &tn), FG_ERR_FORMAT);
    CHECK(tv == NULL && tn == 0);

    /* fg_st_read_f32 */
    float got[6];
    CHECK_OK(fg_st_read_f32(f, "layer.0.weight", 2, shapes[0], got));
    fg_check_equal("read_f32", got, a, 6);
    int64_t wrong[2] = {3, 2};
    CHECK_STATUS(fg_st_read_f32(f, "layer.0.weight", 2, wrong, got), FG_ERR_FORMAT);
    const char *m = fg_last_error();
    if (!strstr(m, "layer.0.weight") || !strstr(m, "[2, 3]") || !strstr(m, "[3, 2]") || !strstr(m, "rt.safetensors")) {
        fprintf(stderr, "  shape mismatch message lacks the entry, a shape or the file: %s\n", m);
        fg_test_failures++;
    }
    /* every dimension counts, the last one too: a [2, 4] or [2, 2] read of the [2, 3] tensor, and
     * a rank-1 read of as many elements, are refused (the copy is sized by the file) */
    const int64_t last_more[2] = {2, 4}, last_less[2] = {2, 2}, flat[1] = {6};
    CHECK_STATUS(fg_st_read_f32(f, "layer.0.weight", 2, last_more, got), FG_ERR_FORMAT);
    CHECK_STATUS(fg_st_read_f32(f, "layer.0.weight", 2, last_less, got), FG_ERR_FORMAT);
    CHECK_STATUS(fg_st_read_f32(f, "layer.0.weight", 1, flat, got), FG_ERR_FORMAT);
    const int64_t odd4[1] = {4}, odd3[1] = {3};
    CHECK_STATUS(fg_st_read_f32(f, "odd", 1, odd4, got), FG_ERR_FORMAT);
    CHECK_OK(fg_st_read_f32(f, "odd", 1, odd3, got));
    CHECK(got[0] == 9.0f && got[2] == 7.0f);
    CHECK_STATUS(fg_st_read_f32(f, "counts", 1, shapes[1], got), FG_ERR_FORMAT);
    if (!strstr(fg_last_error(), "I64")) {
        fprintf(stderr, "  dtype mismatch message does not say I64: %s\n", fg_last_error());
        fg_test_failures++;
    }
    CHECK_STATUS(fg_st_read_f32(f, "nope", 2, shapes[0], got), FG_ERR_FORMAT);
    CHECK(strstr(fg_last_error(), "nope") != NULL);
    CHECK_OK(fg_st_read_f32(f, "scalar", 0, NULL, got));
    CHECK(got[0] == 7.0f);
    fg_st_free(f);

    /* overwrite an existing file: the new content replaces the old */
    CHECK_OK(fg_st_writer_create(&w));
    CHECK_OK(fg_st_writer_add(w, "only", FG_ST_F32, 1, shapes[6], odd));
    CHECK_OK(fg_st_writer_save(w, path));
    fg_st_writer_free(w);
    CHECK_OK(fg_st_load(path, &f));
    if (f) {
        CHECK(fg_st_count(f) == 1 && fg_st_find(f, "only") != NULL && fg_st_meta(f, "format") == NULL);
        fg_st_free(f);
    }
    CHECK(count_temp_files() == 0);

    /* an empty file (no tensors, no metadata) round-trips */
    CHECK_OK(fg_st_writer_create(&w));
    path_in(path, sizeof path, "empty.safetensors");
    CHECK_OK(fg_st_writer_save(w, path));
    fg_st_writer_free(w);
    CHECK_OK(fg_st_load(path, &f));
    if (f) {
        CHECK(fg_st_count(f) == 0);
        fg_st_free(f);
    }
}

/* ---------------------------------------------------------------- corrupt headers */

static void test_st_corrupt(void) {
    /* the reference implementation's documented example parses */
    expect_good("hf example", "{\"test\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16, 1);
    expect_good("metadata last, spaces, null metadata",
                " { \"b\" : {\"shape\":[1],\"dtype\":\"U8\",\"data_offsets\":[1,2]},\"a\":{\"dtype\":\"U8\",\"shape\":[],"
                "\"data_offsets\":[0,1]}, \"__metadata__\":null }   ",
                2, 2);
    expect_good("no tensors", "{}", 0, 0);
    expect_good("zero-size tensor", "{\"z\":{\"dtype\":\"F64\",\"shape\":[0,5],\"data_offsets\":[0,0]}}", 0, 1);

    expect_bad("bad JSON", "{\"a\":", 0, "invalid JSON");
    expect_bad("trailing comma", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},}", 1, "invalid JSON");
    expect_bad("garbage after JSON", "{} x", 0, "after the value");
    expect_bad("root is array", "[]", 0, "expected an object");
    expect_bad("offsets out of range", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "run past");
    expect_bad("overlapping",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               12, "overlap");
    expect_bad("gap", "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}", 4, "contiguous");
    expect_bad("trailing data", "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 3, "trailing");
    expect_bad("wrong nbytes", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "needs 12 bytes");
    expect_bad("unknown dtype", "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "F8_E4M3");
    expect_bad("dtype not a string", "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype");
    expect_bad("missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype");
    expect_bad("extra key", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":1}}", 1, "'x'");
    expect_bad("repeated key", "{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
               "twice");
    expect_bad("negative dim", "{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}}", 1, "non-negative");
    expect_bad("fractional dim", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1.0],\"data_offsets\":[0,1]}}", 1, "non-negative");
    expect_bad("too many dims", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
               "7 dims");
    expect_bad("shape overflow",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4611686018427387904],\"data_offsets\":[0,0]}}",
               0, "overflow");
    expect_bad("shape overflow by dtype", "{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}",
               0, "overflow");
    expect_bad("huge int", "{\"a\":{\"dtype\":\"U8\",\"shape\":[99999999999999999999],\"data_offsets\":[0,1]}}", 1,
               "non-negative");
    expect_bad("begin > end", "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,1]}}", 2, "begin > end");
    expect_bad("three offsets", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 2, "data_offsets");
    expect_bad("negative offset", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}", 2, "non-negative");
    expect_bad("duplicate names",
               "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
               "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
               2, "appears twice");
    expect_bad("non-string metadata", "{\"__metadata__\":{\"k\":1}}", 0, "expected a string");
    expect_bad("metadata not object", "{\"__metadata__\":[\"k\"]}", 0, "expected an object");
    expect_bad("duplicate metadata key", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "twice");
    expect_bad("two metadata", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "__metadata__");
    expect_bad("invalid UTF-8", "{\"\xc3\x28\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "UTF-8");
    expect_bad("overlong UTF-8", "{\"\xc0\xaf\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "UTF-8");
    expect_bad("NUL escape", "{\"a\\u0000\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "NUL");
    expect_bad("lone surrogate", "{\"\\ud800x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
               "surrogate");
    expect_bad("lone low surrogate", "{\"\\udc00\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
               "surrogate");
    expect_bad("raw UTF-8 surrogate", "{\"\xed\xa0\x80\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
               "UTF-8");
    expect_bad("raw newline in string", "{\"a\nb\":{}}", 0, "control");
    expect_bad("raw 0x1f in string", "{\"a\x1f\":{}}", 0, "control");
    expect_bad("raw 0x10 in string", "{\"a\x10\":{}}", 0, "control");
    expect_bad("leading zero", "{\"a\":{\"dtype\":\"U8\",\"shape\":[01],\"data_offsets\":[0,1]}}", 1, "leading zero");
    expect_bad("bad literal", "{\"__metadata__\":nul}", 0, "null");
    expect_bad("unterminated string", "{\"a", 0, "not terminated");

    /* an escaped surrogate pair is one code point: U+1F600 as F0 9F 98 80 */
    {
        size_t len;
        unsigned char *b = make_st("{\"\\ud83d\\ude00\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, &len);
        fg_st_file *f = NULL;
        CHECK_OK(fg_st_parse(b, len, "pair.safetensors", &f));
        CHECK(f && fg_st_find(f, "\xf0\x9f\x98\x80") != NULL);
        fg_st_free(f);
        free(b);
    }

    /* the nesting bound is exact: 32 containers parse (and fail on what the tensor holds), 33 do
     * not parse */
    for (int n = 32; n <= 33; n++) {
        char hdr[128];
        int o = snprintf(hdr, sizeof hdr, "{\"a\":");
        for (int i = 1; i < n; i++) hdr[o++] = '[';
        for (int i = 1; i < n; i++) hdr[o++] = ']';
        hdr[o++] = '}', hdr[o] = 0;
        size_t len;
        unsigned char *b = make_st(hdr, 0, &len);
        fg_st_file *f = NULL;
        CHECK(fg_st_parse(b, len, "depth.safetensors", &f) == FG_ERR_FORMAT);
        const int nesting = strstr(fg_last_error(), "nesting") != NULL;
        if (nesting != (n == 33)) {
            fprintf(stderr, "  %d nested containers: '%s'\n", n, fg_last_error());
            fg_test_failures++;
        }
        free(b);
    }

    /* nesting far beyond the bound: a clean error, no stack exhaustion */
    size_t deep = 100000;
    char *h = malloc(deep + 1);
    memset(h, '[', deep);
    h[deep] = 0;
    expect_bad("deep nesting", h, 0, "nesting");
    free(h);

    /* raw length field problems */
    unsigned char small[7] = {0};
    expect_bad_buf("7 bytes", small, sizeof small, "too short");
    expect_bad_buf("empty", small, 0, "too short");
    unsigned char past[16] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    expect_bad_buf("header length past end", past, sizeof past, "runs past the end");
    unsigned char huge[16] = {0, 0, 0, 0, 0, 0, 0, 0x80, '{', '}'};
    expect_bad_buf("header length 2^63", huge, sizeof huge, "exceeds");
    unsigned char allff[16];
    memset(allff, 0xff, sizeof allff);
    expect_bad_buf("all 0xff", allff, sizeof allff, "exceeds");
}

/* Every prefix of a valid file fails cleanly; every single-byte corruption either parses or
 * fails cleanly (ASan/UBSan builds catch any out-of-bounds access). */
/* A small file of two tensors and one metadata key: "w" F32 (2, 3) = 1..6, "u" U8 (3) = 4, 5, 6,
 * "k" = "v". Writes it to name in the temporary directory, its path into path, and returns its
 * bytes as read back (*len of them; NULL, counted as a failure, when they cannot be read). */
static const float SMALL_W[6] = {1, 2, 3, 4, 5, 6};
static const int64_t SMALL_W_SHAPE[2] = {2, 3};

static unsigned char *save_small(const char *name, char *path, size_t cap, size_t *len) {
    static const uint8_t u[3] = {4, 5, 6};
    const int64_t s3 = 3;
    fg_st_writer *w = NULL;
    CHECK_OK(fg_st_writer_create(&w));
    CHECK_OK(fg_st_writer_add(w, "w", FG_ST_F32, 2, SMALL_W_SHAPE, SMALL_W));
    CHECK_OK(fg_st_writer_add(w, "u", FG_ST_U8, 1, &s3, u));
    CHECK_OK(fg_st_writer_meta(w, "k", "v"));
    path_in(path, cap, name);
    CHECK_OK(fg_st_writer_save(w, path));
    fg_st_writer_free(w);
    unsigned char *buf = read_file(path, len);
    if (!buf) {
        fprintf(stderr, "  cannot read back %s\n", path);
        fg_test_failures++;
    }
    return buf;
}

static void test_st_truncation_and_flips(void) {
    char path[1024];
    size_t len;
    unsigned char *buf = save_small("small.safetensors", path, sizeof path, &len);
    if (!buf) return;
    fg_st_file *f = NULL;
    CHECK_OK(fg_st_parse(buf, len, "small", &f));
    fg_st_free(f);
    int bad_trunc = 0;
    for (size_t k = 0; k < len; k++) {
        f = (fg_st_file *)0x1;
        fg_status s = fg_st_parse(buf, k, "trunc", &f);
        if (s != FG_ERR_FORMAT || f != NULL || !fg_last_error()[0]) {
            if (bad_trunc++ < 5)
                fprintf(stderr, "  truncation to %zu of %zu bytes: %s (%s)\n", k, len, fg_status_name(s), fg_last_error());
            if (s == FG_OK) fg_st_free(f);
        }
    }
    fg_test_failures += bad_trunc;
    /* single-byte corruption: each position, a few values */
    static const unsigned char vals[] = {0x00, 0x01, 0x20, 0x22, 0x2c, 0x30, 0x39, 0x5b, 0x5d, 0x7b, 0x7d, 0x7f, 0x80, 0xff};
    unsigned char *mut = malloc(len);
    int ok_count = 0, fail_count = 0, other = 0;
    for (size_t i = 0; i < len; i++) {
        for (size_t v = 0; v < sizeof vals; v++) {
            memcpy(mut, buf, len);
            mut[i] = vals[v];
            f = NULL;
            fg_status s = fg_st_parse(mut, len, "flip", &f);
            if (s == FG_OK) {
                ok_count++;
                for (size_t e = 0; e < fg_st_count(f); e++) {
                    const fg_st_entry *en = fg_st_at(f, e);
                    volatile unsigned char sink = 0;
                    for (size_t q = 0; q < en->nbytes; q++) sink ^= ((const unsigned char *)en->data)[q];
                    (void)sink;
                }
                fg_st_free(f);
            } else if (s == FG_ERR_FORMAT) {
                fail_count++;
            } else {
                other++;
            }
        }
    }
    if (other) {
        fprintf(stderr, "  byte corruption: %d parses returned neither OK nor bad format\n", other);
        fg_test_failures++;
    }
    printf("  corruption sweep: %zu truncations rejected; %d single-byte mutations parsed, %d rejected\n", len,
           ok_count, fail_count);
    CHECK(fail_count > 0);
    free(mut);
    free(buf);
}

/* fg_st_load_header: the same entries and metadata as fg_st_load without the data, and the same
 * verdict and message as fg_st_load on every truncation of the file (the data area is judged by
 * the file's length, not read). */
static void test_st_header_only(void) {
    char path[1024];
    size_t len;
    unsigned char *buf = save_small("header.safetensors", path, sizeof path, &len);
    if (!buf) return;

    fg_st_file *full = NULL, *hdr = NULL;
    CHECK_OK(fg_st_load(path, &full));
    CHECK_OK(fg_st_load_header(path, &hdr));
    if (!full || !hdr) {
        fg_st_free(full);
        fg_st_free(hdr);
        free(buf);
        return;
    }
    CHECK(fg_st_count(hdr) == fg_st_count(full) && fg_st_count(hdr) == 2);
    for (size_t i = 0; i < fg_st_count(hdr) && i < fg_st_count(full); i++) {
        const fg_st_entry *h = fg_st_at(hdr, i), *e = fg_st_at(full, i);
        CHECK(strcmp(h->name, e->name) == 0 && h->dtype == e->dtype && h->ndim == e->ndim && h->nbytes == e->nbytes);
        for (int d = 0; d < h->ndim && d < e->ndim; d++) CHECK(h->shape[d] == e->shape[d]);
        CHECK(h->data == NULL && e->data != NULL);
    }
    CHECK(fg_st_meta(hdr, "k") && strcmp(fg_st_meta(hdr, "k"), "v") == 0);
    CHECK_OK(fg_st_read_f32(hdr, "w", 2, SMALL_W_SHAPE, NULL)); /* checking needs no data */
    float got[6] = {0};
    CHECK_STATUS(fg_st_read_f32(hdr, "w", 2, SMALL_W_SHAPE, got), FG_ERR_INVALID);
    if (!strstr(fg_last_error(), "header-only") || !strstr(fg_last_error(), "'w'")) {
        fprintf(stderr, "  data from a header-only read: message lacks the cause or the tensor: %s\n", fg_last_error());
        fg_test_failures++;
    }
    CHECK_OK(fg_st_read_f32(full, "w", 2, SMALL_W_SHAPE, got));
    CHECK(memcmp(got, SMALL_W, sizeof SMALL_W) == 0);
    fg_st_free(full);
    fg_st_free(hdr);
    char tpath[1024];
    path_in(tpath, sizeof tpath, "header-trunc.safetensors");
    int bad = 0;
    for (size_t k = 0; k < len; k++) {
        FILE *fp = fopen(tpath, "wb");
        if (!fp || (k && fwrite(buf, 1, k, fp) != k)) {
            if (fp) fclose(fp);
            fprintf(stderr, "  cannot write %s\n", tpath);
            fg_test_failures++;
            break;
        }
        fclose(fp);
        fg_st_file *f1 = (fg_st_file *)0x1, *f2 = (fg_st_file *)0x1;
        fg_status s1 = fg_st_load(tpath, &f1);
        char m1[1024];
        snprintf(m1, sizeof m1, "%s", fg_last_error());
        fg_status s2 = fg_st_load_header(tpath, &f2);
        if (s1 != FG_ERR_FORMAT || s2 != s1 || f2 != NULL || strcmp(m1, fg_last_error()) != 0) {
            if (bad++ < 5)
                fprintf(stderr, "  truncation to %zu of %zu bytes: load %s \"%s\", header-only %s \"%s\"\n", k, len,
                        fg_status_name(s1), m1, fg_status_name(s2), fg_last_error());
        }
        if (s1 == FG_OK) fg_st_free(f1);
        if (s2 == FG_OK) fg_st_free(f2);
    }
    fg_test_failures += bad;
    /* a header length beyond the limit is refused before anything is allocated for it */
    memset(buf, 0xff, 8);
    FILE *fp = fopen(tpath, "wb");
    if (fp) {
        CHECK(fwrite(buf, 1, len, fp) == len);
        fclose(fp);
        fg_st_file *f = NULL;
        CHECK_STATUS(fg_st_load_header(tpath, &f), FG_ERR_FORMAT);
        CHECK(strstr(fg_last_error(), "exceeds the limit") != NULL);
    }
    fg_st_file *f = NULL;
    CHECK_STATUS(fg_st_load_header(tmpdir, &f), FG_ERR_IO); /* a directory */
    free(buf);
}

/* ---------------------------------------------------------------- IO failures, atomicity */

static void test_st_io_errors(void) {
    float a[4] = {1, 2, 3, 4};
    int64_t s4 = 4;
    fg_st_writer *w = NULL;
    CHECK_OK(fg_st_writer_create(&w));
    CHECK_OK(fg_st_writer_add(w, "a", FG_ST_F32, 1, &s4, a));

    char path[1024];
    path_in(path, sizeof path, "no/such/dir/x.safetensors");
    CHECK_STATUS(fg_st_writer_save(w, path), FG_ERR_IO);
    if (!strstr(fg_last_error(), "no/such/dir") || !strstr(fg_last_error(), "No such file")) {
        fprintf(stderr, "  write into a missing directory: message lacks the path or reason: %s\n", fg_last_error());
        fg_test_failures++;
    }

    fg_st_file *f = NULL;
    path_in(path, sizeof path, "absent.safetensors");
    CHECK_STATUS(fg_st_load(path, &f), FG_ERR_IO);
    CHECK(f == NULL);
    if (!strstr(fg_last_error(), "absent.safetensors") || !strstr(fg_last_error(), "No such file")) {
        fprintf(stderr, "  load of a missing file: message lacks the path or reason: %s\n", fg_last_error());
        fg_test_failures++;
    }
    CHECK_STATUS(fg_st_load(tmpdir, &f), FG_ERR_IO); /* a directory */

    /* targets an atomic write would replace rather than write: a directory, a name ending in '/',
     * a symbolic link (the file it points to stays as it was, the link stays a link) */
    CHECK_STATUS(fg_st_writer_save(w, tmpdir), FG_ERR_INVALID);
    CHECK(strstr(fg_last_error(), "a directory") != NULL);
    path_in(path, sizeof path, "newdir/");
    CHECK_STATUS(fg_output_path_check(path), FG_ERR_INVALID);
    char target[1024], link_path[1024];
    path_in(target, sizeof target, "target.txt");
    path_in(link_path, sizeof link_path, "link.safetensors");
    FILE *tf = fopen(target, "w");
    CHECK(tf != NULL);
    if (tf) fputs("precious", tf), fclose(tf);
    CHECK(symlink(target, link_path) == 0);
    CHECK_STATUS(fg_st_writer_save(w, link_path), FG_ERR_INVALID);
    CHECK(strstr(fg_last_error(), "symbolic link") != NULL);
    struct stat lst;
    CHECK(lstat(link_path, &lst) == 0 && S_ISLNK(lst.st_mode));
    char back[16] = {0};
    tf = fopen(target, "r");
    if (tf) {
        CHECK(fread(back, 1, sizeof back - 1, tf) == 8);
        fclose(tf);
    }
    CHECK(strcmp(back, "precious") == 0);
    CHECK(fg_output_path_check("/dev/null") == FG_ERR_INVALID && strstr(fg_last_error(), "a device"));
    CHECK_OK(fg_output_path_check(target)); /* a regular file */
    path_in(path, sizeof path, "absent-output.safetensors");
    CHECK_OK(fg_output_path_check(path));
    unlink(link_path);
    unlink(target);

    /* A write that fails part way (file size limit: EFBIG, the same path as ENOSPC) leaves the
     * previous file intact and no temporary. Works as root too. */
    path_in(path, sizeof path, "limited.safetensors");
    CHECK_OK(fg_st_writer_save(w, path)); /* the previous version */
    size_t big_n = 1 << 16;
    float *big = calloc(big_n, sizeof *big);
    int64_t bs = (int64_t)big_n;
    fg_st_writer *w2 = NULL;
    CHECK_OK(fg_st_writer_create(&w2));
    CHECK_OK(fg_st_writer_add(w2, "big", FG_ST_F32, 1, &bs, big));
    struct rlimit old;
    if (getrlimit(RLIMIT_FSIZE, &old) == 0) {
        struct rlimit lim = old;
        lim.rlim_cur = 4096;
        void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
            fg_status s = fg_st_writer_save(w2, path);
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", fg_last_error());
            setrlimit(RLIMIT_FSIZE, &old);
            CHECK(s == FG_ERR_IO);
            if (!strstr(msg, "limited.safetensors") || !strstr(msg, "File too large")) {
                fprintf(stderr, "  failed write: message lacks the path or reason: %s\n", msg);
                fg_test_failures++;
            }
            CHECK(count_temp_files() == 0);
            CHECK_OK(fg_st_load(path, &f));
            if (f) {
                CHECK(fg_st_count(f) == 1 && fg_st_find(f, "a") != NULL);
                fg_st_free(f);
            }
            printf("  failed write (file size limit): %s\n", msg);
        } else {
            printf("  skipped the file-size-limit check: setrlimit failed (%s)\n", strerror(errno));
        }
        signal(SIGXFSZ, prev);
    }
    free(big);
    fg_st_writer_free(w2);

    /* read-only directory: creating the temporary fails */
    char rodir[768];
    path_in(rodir, sizeof rodir, "readonly");
    CHECK(mkdir(rodir, 0755) == 0);
    if (geteuid() == 0) {
        printf("  skipped the read-only directory check: running as root, where chmod does not deny writes\n");
    } else {
        CHECK(chmod(rodir, 0555) == 0);
        snprintf(path, sizeof path, "%s/x.safetensors", rodir);
        CHECK_STATUS(fg_st_writer_save(w, path), FG_ERR_IO);
        if (!strstr(fg_last_error(), "Permission denied")) {
            fprintf(stderr, "  read-only directory: message lacks the reason: %s\n", fg_last_error());
            fg_test_failures++;
        }
        chmod(rodir, 0755);
        DIR *d = opendir(rodir);
        int n = 0;
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) n += e->d_name[0] != '.';
        if (d) closedir(d);
        CHECK(n == 0);
    }
    fg_st_writer_free(w);
}

/* ---------------------------------------------------------------- IDX */

static void test_idx(void) {
    int64_t dims[3] = {3, 4, 5};
    uint8_t data[60];
    for (int i = 0; i < 60; i++) data[i] = (uint8_t)(i * 37 + 11);
    char path[1024];
    path_in(path, sizeof path, "t-images-idx3-ubyte");
    CHECK_OK(fg_idx_save(path, 3, dims, data));
    CHECK(count_temp_files() == 0);
    fg_idx x;
    CHECK_OK(fg_idx_load(path, &x));
    CHECK(x.ndim == 3 && x.dims[0] == 3 && x.dims[1] == 4 && x.dims[2] == 5 && x.numel == 60);
    CHECK(x.data && memcmp(x.data, data, 60) == 0);
    fg_idx_free(&x);

    size_t len;
    unsigned char *raw = read_file(path, &len);
    CHECK(raw && len == 4 + 12 + 60);
    if (raw) {
        static const unsigned char head[16] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5};
        CHECK(memcmp(raw, head, 16) == 0);
        int bad = 0;
        for (size_t k = 0; k < len; k++) { /* every truncation */
            fg_status s = fg_idx_parse(raw, k, "trunc.idx", &x);
            if (s != FG_ERR_FORMAT || x.data != NULL) bad++;
            if (s == FG_OK) fg_idx_free(&x);
        }
        if (bad) {
            fprintf(stderr, "  IDX: %d truncations not rejected\n", bad);
            fg_test_failures++;
        }
        unsigned char *longer = malloc(len + 1);
        memcpy(longer, raw, len);
        longer[len] = 0;
        CHECK_STATUS(fg_idx_parse(longer, len + 1, "long.idx", &x), FG_ERR_FORMAT);
        CHECK(strstr(fg_last_error(), "trailing") && strstr(fg_last_error(), "long.idx"));
        free(longer);
        unsigned char m[16];
        memcpy(m, raw, 16);
        m[0] = 1;
        CHECK_STATUS(fg_idx_parse(m, 16, "magic.idx", &x), FG_ERR_FORMAT);
        CHECK(strstr(fg_last_error(), "magic") != NULL);
        free(raw);
    }
    static const unsigned char f32type[8] = {0, 0, 0x0D, 1, 0, 0, 0, 0};
    CHECK_STATUS(fg_idx_parse(f32type, 8, "float.idx", &x), FG_ERR_FORMAT);
    CHECK(strstr(fg_last_error(), "0x0d") && strstr(fg_last_error(), "float"));
    static const unsigned char nd0[4] = {0, 0, 8, 0};
    CHECK_STATUS(fg_idx_parse(nd0, 4, "nd0.idx", &x), FG_ERR_FORMAT);
    static const unsigned char nd7[32] = {0, 0, 8, 7};
    CHECK_STATUS(fg_idx_parse(nd7, 32, "nd7.idx", &x), FG_ERR_FORMAT);
    unsigned char ovf[4 + 24] = {0, 0, 8, 6};
    memset(ovf + 4, 0xff, 24);
    CHECK_STATUS(fg_idx_parse(ovf, sizeof ovf, "ovf.idx", &x), FG_ERR_FORMAT);
    CHECK(strstr(fg_last_error(), "overflow") != NULL);
    /* a zero dim: an empty array, valid */
    static const unsigned char empty[12] = {0, 0, 8, 2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
    CHECK_OK(fg_idx_parse(empty, sizeof empty, "empty.idx", &x));
    CHECK(x.numel == 0 && x.dims[1] == 0xffffffffLL);
    fg_idx_free(&x);

    int64_t baddims[2] = {1, (int64_t)1 << 32};
    CHECK_STATUS(fg_idx_save(path, 2, baddims, data), FG_ERR_INVALID);
    CHECK_STATUS(fg_idx_save(path, 0, dims, data), FG_ERR_INVALID);
    path_in(path, sizeof path, "missing/dir/x-idx");
    CHECK_STATUS(fg_idx_save(path, 3, dims, data), FG_ERR_IO);
    CHECK_STATUS(fg_idx_load(path, &x), FG_ERR_IO);
}

/* ---------------------------------------------------------------- data sets */

static void save_pair(const char *prefix, int64_t n, int64_t h, int64_t w, const uint8_t *img, int nl,
                      const uint8_t *lab) {
    char p[1024], name[256];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
    path_in(p, sizeof p, name);
    int64_t d3[3] = {n, h, w};
    CHECK_OK(fg_idx_save(p, 3, d3, img));
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
    path_in(p, sizeof p, name);
    int64_t d1[1] = {nl};
    CHECK_OK(fg_idx_save(p, 1, d1, lab));
}

static void test_dataset(void) {
    uint8_t img[5 * 3 * 4];
    for (int i = 0; i < 60; i++) img[i] = (uint8_t)(i * 53);
    uint8_t lab[5] = {0, 4, 2, 1, 3};
    save_pair("ds", 5, 3, 4, img, 5, lab);
    fg_dataset d;
    const float mean = 0.1307f, sd = 0.3081f;
    CHECK_OK(fg_dataset_load_idx(tmpdir, "ds", mean, sd, &d));
    CHECK(d.n == 5 && d.c == 1 && d.h == 3 && d.w == 4 && d.n_classes == 5);
    if (d.images) {
        float want[60];
        for (int i = 0; i < 60; i++) want[i] = ((float)img[i] / 255.0f - mean) / sd;
        fg_check_close("dataset pixels", d.images, want, 60, 1e-6f, 1e-6f);
        for (int i = 0; i < 5; i++) CHECK(d.labels[i] == lab[i]);
    }
    fg_dataset_free(&d);
    CHECK(d.images == NULL);

    uint8_t zeros[5] = {0};
    save_pair("ones", 5, 3, 4, img, 5, zeros);
    CHECK_OK(fg_dataset_load_idx(tmpdir, "ones", 0.0f, 1.0f, &d));
    CHECK(d.n_classes == 2);
    fg_dataset_free(&d);

    save_pair("count", 5, 3, 4, img, 4, lab);
    CHECK_STATUS(fg_dataset_load_idx(tmpdir, "count", mean, sd, &d), FG_ERR_FORMAT);
    CHECK(strstr(fg_last_error(), "4 labels") && strstr(fg_last_error(), "5 images"));
    uint8_t big[5] = {0, 1, 10, 2, 3};
    save_pair("label10", 5, 3, 4, img, 5, big);
    CHECK_STATUS(fg_dataset_load_idx(tmpdir, "label10", mean, sd, &d), FG_ERR_FORMAT);
    CHECK(strstr(fg_last_error(), "label 10") != NULL);
    /* images that are not (n, h, w) */
    char p[1024];
    path_in(p, sizeof p, "flat-images-idx3-ubyte");
    int64_t d2[2] = {5, 12};
    CHECK_OK(fg_idx_save(p, 2, d2, img));
    path_in(p, sizeof p, "flat-labels-idx1-ubyte");
    int64_t d1 = 5;
    CHECK_OK(fg_idx_save(p, 1, &d1, lab));
    CHECK_STATUS(fg_dataset_load_idx(tmpdir, "flat", mean, sd, &d), FG_ERR_FORMAT);
    /* labels that are not (n): (5, 2) would be read past one label per image */
    path_in(p, sizeof p, "wide-images-idx3-ubyte");
    int64_t d3[3] = {5, 3, 4};
    CHECK_OK(fg_idx_save(p, 3, d3, img));
    path_in(p, sizeof p, "wide-labels-idx1-ubyte");
    int64_t dl[2] = {5, 2};
    uint8_t lab2[10] = {0};
    CHECK_OK(fg_idx_save(p, 2, dl, lab2));
    CHECK_STATUS(fg_dataset_load_idx(tmpdir, "wide", mean, sd, &d), FG_ERR_FORMAT);
    CHECK(strstr(fg_last_error(), "labels have 2 dims") != NULL);
    CHECK_STATUS(fg_dataset_load_idx(tmpdir, "nothere", mean, sd, &d), FG_ERR_IO);
    CHECK(strstr(fg_last_error(), "nothere-images-idx3-ubyte") != NULL);
    CHECK_STATUS(fg_dataset_load_idx(tmpdir, "ds", mean, 0.0f, &d), FG_ERR_INVALID);

    /* data directory */
    char buf[4096];
    const char *old = getenv("FRUGAL_DATA");
    char *saved = old ? strdup(old) : NULL;
    setenv("FRUGAL_DATA", "/some/where", 1);
    CHECK(strcmp(fg_data_dir(buf, sizeof buf), "/some/where") == 0);
    unsetenv("FRUGAL_DATA");
    const char *home = getenv("HOME");
    if (home && home[0]) {
        char want[4096];
        snprintf(want, sizeof want, "%s/.cache/frugal", home);
        CHECK(strcmp(fg_data_dir(buf, sizeof buf), want) == 0);
    }
    if (saved) {
        setenv("FRUGAL_DATA", saved, 1);
        free(saved);
    }
}

/* The writer lays the data out by falling element size (8, 4, 2, 1 bytes), so that each tensor
 * starts at a multiple of its element size from the data's start, whatever order it was added in:
 * 3 F32 values, then an F64, then a U8 and an I16. */
static void test_st_alignment(void) {
    char path[1024];
    path_in(path, sizeof path, "align.safetensors");
    const float a[3] = {1, 2, 3};
    const double b[1] = {4};
    const uint8_t c[1] = {5};
    const int16_t d[1] = {6};
    const int64_t s3 = 3, s1 = 1;
    fg_st_writer *w;
    CHECK_OK(fg_st_writer_create(&w));
    CHECK_OK(fg_st_writer_add(w, "a", FG_ST_F32, 1, &s3, a));
    CHECK_OK(fg_st_writer_add(w, "b", FG_ST_F64, 1, &s1, b));
    CHECK_OK(fg_st_writer_add(w, "c", FG_ST_U8, 1, &s1, c));
    CHECK_OK(fg_st_writer_add(w, "d", FG_ST_I16, 1, &s1, d));
    CHECK_OK(fg_st_writer_save(w, path));
    fg_st_writer_free(w);
    fg_st_file *f;
    CHECK_OK(fg_st_load(path, &f));
    const char *names[4] = {"a", "b", "c", "d"};
    const size_t size[4] = {4, 8, 1, 2};
    const fg_st_entry *e[4];
    uintptr_t base = UINTPTR_MAX;
    for (int i = 0; i < 4; i++) {
        e[i] = fg_st_find(f, names[i]);
        CHECK(e[i] && e[i]->data);
        if (e[i] && (uintptr_t)e[i]->data < base) base = (uintptr_t)e[i]->data;
    }
    for (int i = 0; i < 4; i++)
        if (e[i] && ((uintptr_t)e[i]->data - base) % size[i] != 0) {
            fprintf(stderr, "  writer layout: '%s' (%zu-byte elements) at data offset %zu\n", names[i], size[i],
                    (size_t)((uintptr_t)e[i]->data - base));
            fg_test_failures++;
        }
    double got;
    memcpy(&got, e[1]->data, sizeof got);
    CHECK(got == 4.0);
    fg_st_free(f);
}

int main(void) {
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/fg_test_io.XXXXXX", (t && t[0]) ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "test_io: cannot create a temporary directory %s: %s\n", tmpdir, strerror(errno));
        return 1;
    }
    test_st_roundtrip();
    test_st_corrupt();
    test_st_truncation_and_flips();
    test_st_header_only();
    test_st_io_errors();
    test_st_alignment();
    test_idx();
    test_dataset();
    remove_tree(tmpdir);
    return fg_test_finish("test_io");
}
