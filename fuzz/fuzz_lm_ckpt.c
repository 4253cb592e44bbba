/* libFuzzer harness for the LSTM language model's checkpoint readers (src/lstm/lm.c):
 * fg_lm_ckpt_read (the metadata `frugal lm train --checkpoint` writes and --resume reads) and
 * fg_lm_cfg_from_weights (the model's sizes off its tensors, for lm eval and lm sample). The input
 * is a whole safetensors file; when the safetensors reader accepts it, the promises are checked.
 * fg_lm_ckpt_read: on failure FG_ERR_FORMAT (or FG_ERR_OOM) with a message and an empty info; on
 * success at least one epoch, T, B and chunks >= 1, and every epoch's entry numbered in order,
 * marked restored, sparse exactly when its drop or its tau is above 0. fg_lm_cfg_from_weights: on
 * failure FG_ERR_FORMAT with a message and the configuration untouched; on success sizes >= 1 and
 * 1..FG_LM_MAX_LAYERS layers. A broken promise aborts. Build and run: scripts/fuzz.sh. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    fg_lm_cfg c, untouched;
    memset(&c, 0x5a, sizeof c);
    untouched = c;
    fg_status s = fg_lm_cfg_from_weights(f, "fuzz", &c);
    if (s != FG_OK) {
        PROMISE(s == FG_ERR_FORMAT && fg_last_error()[0] != 0);
        PROMISE(memcmp(&c, &untouched, sizeof c) == 0);
    } else {
        PROMISE(c.vocab >= 1 && c.embed >= 1 && c.hidden >= 1 && c.layers >= 1 && c.layers <= FG_LM_MAX_LAYERS);
    }
    fg_lm_ckpt_info in;
    s = fg_lm_ckpt_read(f, "fuzz", &in);
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
        PROMISE(in.hist[e].sparse == (in.hist[e].drop > 0 || in.hist[e].tau > 0));
    }
    fg_lm_ckpt_info_free(&in);
    PROMISE(in.hist == NULL && in.epochs == 0);
    return 0;
}
