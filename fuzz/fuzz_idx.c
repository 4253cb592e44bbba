/* libFuzzer harness for the IDX reader: parses the input and, when it is accepted, checks the
 * promises of fg_idx_parse (dims multiply to numel, the length matches the header exactly, the
 * data equal the input's payload). A broken promise aborts. Build and run: scripts/fuzz.sh. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PROMISE(x)                                                                                 \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "fuzz_idx: broken promise: %s\n", #x);                                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fg_idx x;
    fg_status s = fg_idx_parse(data, size, "fuzz", &x);
    if (s != FG_OK) {
        PROMISE(x.data == NULL && x.numel == 0);
        PROMISE(s == FG_ERR_FORMAT || s == FG_ERR_OOM);
        PROMISE(fg_last_error()[0] != 0);
        return 0;
    }
    PROMISE(x.ndim >= 1 && x.ndim <= FG_MAX_DIMS && x.data != NULL);
    size_t numel = 1;
    for (int i = 0; i < x.ndim; i++) {
        PROMISE(x.dims[i] >= 0 && x.dims[i] <= 0xffffffffLL);
        numel *= (size_t)x.dims[i];
    }
    PROMISE(numel == x.numel);
    size_t head = 4 + 4 * (size_t)x.ndim;
    PROMISE(size == head + numel);
    PROMISE(numel == 0 || memcmp(x.data, data + head, numel) == 0);
    fg_idx_free(&x);
    PROMISE(x.data == NULL);
    return 0;
}
