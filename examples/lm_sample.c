/* Text from a word-level LSTM language model trained by `frugal lm train --save FILE`,
 * through the library: the model's sizes are read off the file's tensors, the network is built
 * for one word at a time and its weights loaded by name, and words are drawn one by one, each
 * read back as the next input (what `frugal lm sample` does).
 *
 *   cc -std=c11 -O2 lm_sample.c $(pkg-config --cflags --libs frugal) -o lm_sample
 *   ./lm_sample lm.safetensors [WORDS [PRIME...]]      (from frugal lm train --save lm.safetensors)
 *
 * The model must have been trained on the Brown corpus (lm train's default), whose vocabulary is
 * read from the data directory ($FRUGAL_DATA, default ~/.cache/frugal; scripts/fetch-data.sh
 * brown). */
#include <stdio.h>
#include <stdlib.h>

#include <frugal/frugal.h>

static int fail(const char *what) {
    fprintf(stderr, "lm_sample: %s: %s\n", what, fg_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s CHECKPOINT [WORDS [PRIME...]]\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    int64_t words = argc > 2 ? atoll(argv[2]) : 30;
    if (words < 1) {
        fprintf(stderr, "lm_sample: WORDS '%s': expected a count >= 1\n", argv[2]);
        return 2;
    }

    /* the vocabulary: the ids are those of the training text */
    char buf[4096];
    fg_corpus corpus;
    if (fg_corpus_load(fg_data_dir(buf, sizeof buf), "brown", &corpus) != FG_OK) return fail("corpus");

    /* the model's sizes from its tensors; one word, one stream at a time */
    fg_st_file *f;
    fg_lm_cfg c = {0};
    if (fg_st_load(path, &f) != FG_OK) return fail("checkpoint");
    fg_status s = fg_lm_cfg_from_weights(f, path, &c);
    fg_st_free(f);
    if (s != FG_OK) return fail("checkpoint");
    if (c.vocab != corpus.vocab_size) {
        fprintf(stderr, "lm_sample: %s has %lld words, the corpus %d\n", path, (long long)c.vocab, corpus.vocab_size);
        return 1;
    }
    c.steps = c.batch = 1;

    fg_pool *pool;
    fg_graph *g;
    fg_lm_io io;
    fg_mem_policy policy;
    if (fg_pool_create(&pool, 0) != FG_OK || fg_graph_create(&g, "lm") != FG_OK) return fail("setup");
    if (fg_lm_build(g, &c, &io) != FG_OK || fg_policy_network_wide(&policy) != FG_OK ||
        fg_graph_build(g, io.loss, pool, &policy) != FG_OK)
        return fail("building the model");
    if (fg_graph_load(g, NULL, path) != FG_OK) return fail("loading the weights");

    /* the prime: words of the vocabulary, <unk> for the others */
    int32_t *prime = malloc(sizeof(int32_t) * (size_t)(argc > 3 ? argc - 3 : 1));
    int32_t *out = malloc(sizeof(int32_t) * (size_t)words);
    if (!prime || !out) {
        fprintf(stderr, "lm_sample: out of memory for %lld words\n", (long long)words);
        return 1;
    }
    int n_prime = 0;
    for (int i = 3; i < argc; i++) {
        int32_t id = fg_corpus_find(&corpus, argv[i]);
        prime[n_prime++] = id >= 0 ? id : fg_corpus_find(&corpus, "<unk>");
        if (prime[n_prime - 1] < 0) n_prime--; /* no <unk> in this vocabulary: leave the word out */
    }
    if (fg_lm_generate(g, &io, &c, prime, n_prime, words, 0.8, 1, out) != FG_OK) return fail("generating");

    for (int i = 0; i < n_prime; i++) printf("%s ", corpus.words[prime[i]]);
    for (int64_t i = 0; i < words; i++) {
        if (out[i] == 0) printf("\n"); /* <eos>: a sentence ends */
        else printf("%s ", corpus.words[out[i]]);
    }
    printf("\n");

    free(prime);
    free(out);
    fg_graph_free(g);
    fg_pool_destroy(pool);
    fg_corpus_free(&corpus);
    return 0;
}
