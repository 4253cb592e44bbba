/* libFuzzer harness for the safetensors reader: parses the input as a whole file and, when it
 * is accepted, checks what the reader promises about it (every entry's bytes readable and of the
 * size its dtype and shape say, names unique and found by fg_st_find, metadata readable,
 * fg_st_read_f32 consistent), and that fg_st_load_header, which reads only the length word and
 * the header of the same bytes as a file, reaches the same verdict with the same message and the
 * same entries (without their data). A broken promise aborts, which libFuzzer reports as a crash.
 * Build and run: scripts/fuzz.sh. */
#define _GNU_SOURCE /* memfd_create */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "frugal/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const size_t esize[FG_ST_DTYPE_COUNT] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 1, 8, 4, 2};

#define PROMISE(x)                                                                                 \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "fuzz_safetensors: broken promise: %s\n", #x);                         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The same bytes as a file, read header-only: the verdict, message and entries must match f's
 * (f NULL and msg the message when the whole-buffer parse failed with s). */
static void check_header_only(const uint8_t *data, size_t size, fg_status s, const char *msg, const fg_st_file *f) {
    static int fd = -1;
    if (fd < 0) fd = memfd_create("fuzz.safetensors", 0);
    PROMISE(fd >= 0);
    PROMISE(ftruncate(fd, 0) == 0);
    for (size_t done = 0; done < size;) {
        ssize_t w = pwrite(fd, data + done, size - done, (off_t)done);
        PROMISE(w > 0);
        done += (size_t)w;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    fg_st_file *h = NULL;
    fg_status hs = fg_st_load_header(path, &h);
    PROMISE(hs == s);
    if (s != FG_OK) {
        PROMISE(h == NULL);
        /* messages name the source: "fuzz" for the buffer, the path for the file (compared whole
         * when neither reached the 1 KiB the error buffer holds) */
        const char *hm = fg_last_error();
        size_t pl = strlen(path);
        PROMISE(strncmp(hm, path, pl) == 0 && strncmp(msg, "fuzz", 4) == 0);
        if (strlen(hm) < 1000) PROMISE(strcmp(hm + pl, msg + 4) == 0);
        return;
    }
    PROMISE(fg_st_count(h) == fg_st_count(f));
    for (size_t i = 0; i < fg_st_count(f); i++) {
        const fg_st_entry *a = fg_st_at(f, i), *b = fg_st_at(h, i);
        PROMISE(strcmp(a->name, b->name) == 0 && a->dtype == b->dtype && a->ndim == b->ndim && a->nbytes == b->nbytes);
        PROMISE(memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) == 0);
        PROMISE(b->data == NULL);
    }
    fg_st_free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fg_st_file *f = NULL;
    fg_status s = fg_st_parse(data, size, "fuzz", &f);
    if (s != FG_OK) {
        if (s == FG_ERR_FORMAT) {
            char msg[2048];
            snprintf(msg, sizeof msg, "%s", fg_last_error());
            check_header_only(data, size, s, msg, NULL);
        }
        PROMISE(f == NULL);
        PROMISE(s == FG_ERR_FORMAT || s == FG_ERR_OOM);
        PROMISE(fg_last_error()[0] != 0);
        return 0;
    }
    unsigned acc = 0;
    size_t total = 0;
    for (size_t i = 0; i < fg_st_count(f); i++) {
        const fg_st_entry *e = fg_st_at(f, i);
        PROMISE(e->dtype >= 0 && e->dtype < FG_ST_DTYPE_COUNT);
        PROMISE(e->ndim >= 0 && e->ndim <= FG_MAX_DIMS);
        size_t numel = 1;
        for (int d = 0; d < e->ndim; d++) {
            PROMISE(e->shape[d] >= 0);
            numel *= (size_t)e->shape[d]; /* the reader checked the product cannot overflow */
        }
        PROMISE(e->nbytes == numel * esize[e->dtype]);
        for (size_t k = 0; k < e->nbytes; k++) acc += ((const unsigned char *)e->data)[k];
        total += e->nbytes;
        PROMISE(fg_st_find(f, e->name) == e);
        if (e->dtype == FG_ST_F32 && e->nbytes <= (1u << 20)) {
            float *dst = malloc(e->nbytes ? e->nbytes : 1);
            PROMISE(fg_st_read_f32(f, e->name, e->ndim, e->shape, dst) == FG_OK);
            PROMISE(e->nbytes == 0 || memcmp(dst, e->data, e->nbytes) == 0);
            free(dst);
        }
    }
    PROMISE(total <= size);
    /* metadata: look every key of a probe set up (absent keys must give NULL, not crash) */
    static const char *probe[] = {"format", "", "__metadata__", "k"};
    for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++) {
        const char *v = fg_st_meta(f, probe[i]);
        if (v) acc += (unsigned)strlen(v);
    }
    check_header_only(data, size, FG_OK, NULL, f);
    fg_st_free(f);
    return (int)(acc & 0); /* keep acc alive without affecting the result */
}
