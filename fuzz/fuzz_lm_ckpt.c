/* libFuzzer harness for the LSTM language model's checkpoint reader (fg_lm_ckpt_read,
 * src/lstm/lm.c: the metadata `frugal lm train --checkpoint` writes and --resume reads). The input
 * is a whole safetensors file; when the safetensors reader accepts it, the checkpoint reader's
 * promises are checked: on failure FG_ERR_FORMAT (or FG_ERR_OOM) with a message and an empty info;
 * on success at least one epoch, T, B and chunks >= 1, and every epoch's entry numbered in order,
 * marked restored, sparse exactly when its drop is above 0. A broken promise aborts. Build and
 * run: scripts/fuzz.sh. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "frugal/lm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PROMISE(x)                                                                                 \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "fuzz_lm_ckpt: broken promise: %s\n", #x);                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fg_st_file *f = NULL;
    if (fg_st_parse(data, size, "fuzz", &f) != FG_OK) return 0; /* the safetensors reader's own harness */
    fg_lm_ckpt_info in;
    fg_status s = fg_lm_ckpt_read(f, "fuzz", &in);
    fg_st_free(f);
    if (s != FG_OK) {
        PROMISE(s == FG_ERR_FORMAT || s == FG_ERR_OOM);
        PROMISE(fg_last_error()[0] != 0);
        PROMISE(in.hist == NULL && in.epochs == 0);
        return 0;
    }
    PROMISE(in.epochs >= 1 && in.hist != NULL);
    PROMISE(in.steps >= 1 && in.batch >= 1 && in.chunks >= 1);
    for (int e = 0; e < in.epochs; e++) {
        PROMISE(in.hist[e].epoch == e && in.hist[e].restored == 1);
        PROMISE(in.hist[e].sparse == (in.hist[e].drop > 0));
    }
    fg_lm_ckpt_info_free(&in);
    PROMISE(in.hist == NULL && in.epochs == 0);
    return 0;
}
