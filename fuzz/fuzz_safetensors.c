/* libFuzzer harness for the safetensors reader: parses the input as a whole file and, when it
 * is accepted, checks what the reader promises about it (every entry's bytes readable and of the
 * size its dtype and shape say, names unique and found by fg_st_find, metadata readable,
 * fg_st_read_f32 consistent). A broken promise aborts, which libFuzzer reports as a crash.
 * Build and run: scripts/fuzz.sh. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fg_st_file *f = NULL;
    fg_status s = fg_st_parse(data, size, "fuzz", &f);
    if (s != FG_OK) {
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
    fg_st_free(f);
    return (int)(acc & 0); /* keep acc alive without affecting the result */
}
