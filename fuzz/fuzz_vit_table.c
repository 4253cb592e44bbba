/* libFuzzer harness for the profile-table reader (fg_vit_table_parse, src/vit/table.c: the JSON
 * `frugal vit profile` writes, read back by `frugal vit run`) and the skip configurations' text
 * form. Checks the reader's promises: on failure FG_ERR_FORMAT (or FG_ERR_OOM) with a message and
 * an empty table; on success at least one entry in each list, every number finite and flops,
 * seconds >= 0, pareto flags 0 or 1, and every skip configuration formats to a text that parses
 * back to the same bytes. It also feeds the raw input to fg_vit_skip_parse with the same
 * round-trip promise. A broken promise aborts. Build and run: scripts/fuzz.sh. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/vit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PROMISE(x)                                                                                 \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "fuzz_vit_table: broken promise: %s\n", #x);                           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void round_trip(const fg_vit_skip *k) {
    char buf[4096];
    const size_t n = fg_vit_skip_format(k, buf, sizeof buf);
    PROMISE(n < sizeof buf && strlen(buf) == n);
    fg_vit_skip back;
    PROMISE(fg_vit_skip_parse(buf, &back) == FG_OK);
    PROMISE(memcmp(&back, k, sizeof back) == 0);
}

static void check_entries(const fg_vit_profile_entry *e, size_t n) {
    PROMISE(e != NULL && n >= 1);
    for (size_t i = 0; i < n; i++) {
        PROMISE(isfinite(e[i].flops) && e[i].flops >= 0);
        PROMISE(isfinite(e[i].seconds) && e[i].seconds >= 0);
        PROMISE(isfinite(e[i].metric));
        round_trip(&e[i].skip);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fg_vit_table t;
    fg_status s = fg_vit_table_parse(data, size, "fuzz", &t);
    if (s != FG_OK) {
        PROMISE(s == FG_ERR_FORMAT || s == FG_ERR_OOM);
        PROMISE(fg_last_error()[0] != 0);
        PROMISE(t.all == NULL && t.front == NULL && t.all_pareto == NULL && t.n_all == 0 && t.n_front == 0);
    } else {
        PROMISE(t.model[0] && t.data[0] && t.metric[0]);
        check_entries(t.all, t.n_all);
        check_entries(t.front, t.n_front);
        for (size_t i = 0; i < t.n_all; i++) PROMISE(t.all_pareto[i] <= 1);
        fg_vit_table_free(&t);
        PROMISE(t.all == NULL && t.front == NULL);
    }
    /* the raw bytes as a skip text (up to the first NUL) */
    char text[512];
    const size_t m = size < sizeof text - 1 ? size : sizeof text - 1;
    memcpy(text, data, m);
    text[m] = 0;
    fg_vit_skip k;
    if (fg_vit_skip_parse(text, &k) == FG_OK) round_trip(&k);
    return 0;
}
