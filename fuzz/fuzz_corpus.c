/* libFuzzer harness for the text corpus parser: the input is cut into the train, valid and test
 * texts at its first two 0xFF bytes (a missing cut leaves the later texts empty; 0xFF is an
 * ordinary word byte to the parser, so the texts may still hold it), parsed, and the promises of
 * fg_corpus_parse checked: on failure nothing held and a message; on success every id below
 * vocab_size, each non-empty split ending with <eos>, words non-NULL, non-empty, at most
 * FG_CORPUS_MAX_WORD bytes, <eos> first and the others in order of first appearance in train.
 * A broken promise aborts. Build and run: scripts/fuzz.sh. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PROMISE(x)                                                                                 \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "fuzz_corpus: broken promise: %s\n", #x);                              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *texts[3] = {(const char *)data, NULL, NULL};
    size_t lens[3] = {size, 0, 0};
    const uint8_t *cut1 = size ? memchr(data, 0xFF, size) : NULL;
    if (cut1) {
        lens[0] = (size_t)(cut1 - data);
        const uint8_t *rest = cut1 + 1;
        size_t rest_len = size - lens[0] - 1;
        const uint8_t *cut2 = rest_len ? memchr(rest, 0xFF, rest_len) : NULL;
        texts[1] = (const char *)rest;
        lens[1] = cut2 ? (size_t)(cut2 - rest) : rest_len;
        if (cut2) {
            texts[2] = (const char *)(cut2 + 1);
            lens[2] = rest_len - lens[1] - 1;
        }
    }
    if (lens[0] == 0) texts[0] = NULL; /* also exercises the NULL-with-zero-length case */

    fg_corpus c;
    fg_status s = fg_corpus_parse(texts, lens, "fuzz", &c);
    if (s != FG_OK) {
        PROMISE(c.vocab_size == 0 && c.words == NULL);
        for (int k = 0; k < 3; k++) PROMISE(c.ids[k] == NULL && c.n[k] == 0);
        PROMISE(s == FG_ERR_FORMAT || s == FG_ERR_OOM);
        PROMISE(fg_last_error()[0] != 0);
        return 0;
    }
    PROMISE(c.vocab_size >= 1 && c.words != NULL);
    PROMISE(c.words[0] != NULL && strcmp(c.words[0], "<eos>") == 0);
    for (int32_t i = 0; i < c.vocab_size; i++) {
        PROMISE(c.words[i] != NULL);
        size_t n = strlen(c.words[i]);
        PROMISE(n >= 1 && n <= FG_CORPUS_MAX_WORD);
    }
    PROMISE(c.n[0] >= 2);
    for (int k = 0; k < 3; k++) {
        PROMISE(c.ids[k] != NULL && c.n[k] >= 0);
        /* at most one id per byte plus the last line's <eos> */
        PROMISE((uint64_t)c.n[k] <= (uint64_t)lens[k] + 1);
        for (int64_t i = 0; i < c.n[k]; i++) PROMISE(c.ids[k][i] >= 0 && c.ids[k][i] < c.vocab_size);
        if (c.n[k] > 0) PROMISE(c.ids[k][c.n[k] - 1] == 0);
    }
    /* Vocabulary order: a train id other than <eos> is either one already seen or the next new
     * one, and train introduces every word. */
    int32_t next_new = 1;
    for (int64_t i = 0; i < c.n[0]; i++) {
        int32_t id = c.ids[0][i];
        if (id == next_new)
            next_new++;
        else
            PROMISE(id < next_new);
    }
    PROMISE(next_new == c.vocab_size);
    /* Lookups agree with the table (the scan is quadratic: only on small vocabularies). */
    if (c.vocab_size <= 64)
        for (int32_t i = 0; i < c.vocab_size; i++) PROMISE(fg_corpus_find(&c, c.words[i]) == i);
    fg_corpus_free(&c);
    PROMISE(c.words == NULL && c.vocab_size == 0);
    return 0;
}
