/* Tests of the PTB-style text corpus loader (io.h, "text corpora"): ids, <eos> placement and
 * vocabulary order on small in-memory texts, separators and line ends, the <unk> fallback, every
 * error with the file and line it names, a vocabulary large enough to grow the hash table, loading
 * from files in a fresh directory under $TMPDIR (or /tmp). `test_corpus brown` (ctest's
 * test_corpus_brown) checks the sizes of the real Brown corpus files instead, and exits 77 (ctest:
 * skipped) when scripts/fetch-data.sh brown has not been run. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static char tmpdir[512];

static fg_status parse3(const char *train, const char *valid, const char *test, fg_corpus *c) {
    const char *texts[3] = {train, valid, test};
    size_t lens[3] = {strlen(train), strlen(valid), strlen(test)};
    return fg_corpus_parse(texts, lens, "mem", c);
}

/* Compares a split's ids with the expected ones; prints the first difference. */
static void check_ids(const char *what, const fg_corpus *c, int k, const int32_t *want, int64_t n) {
    if (c->n[k] != n) {
        fprintf(stderr, "%s: %lld ids, expected %lld\n", what, (long long)c->n[k], (long long)n);
        fg_test_failures++;
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        if (c->ids[k][i] != want[i]) {
            fprintf(stderr, "%s: id %d at index %lld, expected %d\n", what, c->ids[k][i], (long long)i, want[i]);
            fg_test_failures++;
            return;
        }
    }
}

/* The last message contains every one of the strings (NULL-terminated list). */
static void check_msg(const char *what, ...) {
    va_list ap;
    va_start(ap, what);
    const char *s;
    while ((s = va_arg(ap, const char *)) != NULL) {
        if (!strstr(fg_last_error(), s)) {
            fprintf(stderr, "%s: message '%s' lacks '%s'\n", what, fg_last_error(), s);
            fg_test_failures++;
        }
    }
    va_end(ap);
}

static int is_zeroed(const fg_corpus *c) {
    return c->vocab_size == 0 && !c->words && !c->ids[0] && !c->ids[1] && !c->ids[2] && !c->n[0] && !c->n[1] &&
           !c->n[2];
}

static void test_basic(void) {
    fg_corpus c;
    CHECK_OK(parse3("the cat sat\nthe dog\n", "the cat\n", "dog sat the\n", &c));
    CHECK(c.vocab_size == 5);
    const char *order[] = {"<eos>", "the", "cat", "sat", "dog"};
    for (int i = 0; i < 5 && i < c.vocab_size; i++) {
        if (strcmp(c.words[i], order[i]) != 0) {
            fprintf(stderr, "basic: word %d is '%s', expected '%s'\n", i, c.words[i], order[i]);
            fg_test_failures++;
        }
        CHECK(fg_corpus_find(&c, order[i]) == i);
    }
    CHECK(fg_corpus_find(&c, "mouse") == -1);
    CHECK(fg_corpus_find(&c, "th") == -1);     /* a prefix is not a match */
    CHECK(fg_corpus_find(&c, "<unk>") == -1);
    const int32_t train[] = {1, 2, 3, 0, 1, 4, 0}, valid[] = {1, 2, 0}, test[] = {4, 3, 1, 0};
    check_ids("basic train", &c, FG_CORPUS_TRAIN, train, 7);
    check_ids("basic valid", &c, FG_CORPUS_VALID, valid, 3);
    check_ids("basic test", &c, FG_CORPUS_TEST, test, 4);
    fg_corpus_free(&c);
    CHECK(is_zeroed(&c));
    fg_corpus_free(&c); /* twice is harmless */
}

/* Tabs, runs of spaces, leading and trailing blanks, CRLF, blank and whitespace-only lines (no
 * <eos>), a last line without a newline (still an <eos>), bytes >= 0x80 (UTF-8) inside words. */
static void test_separators(void) {
    fg_corpus c;
    const char *train = "\r\n  a\tb  \r\n\n \t \r\n\tcaf\xc3\xa9 a\r\nb";
    CHECK_OK(parse3(train, "", "\n\n", &c));
    CHECK(c.vocab_size == 4);
    const int32_t want[] = {1, 2, 0, 3, 1, 0, 2, 0};
    check_ids("separators train", &c, FG_CORPUS_TRAIN, want, 8);
    CHECK(c.vocab_size == 4 && strcmp(c.words[3], "caf\xc3\xa9") == 0);
    /* empty valid and test splits are allowed and still give a pointer */
    CHECK(c.n[FG_CORPUS_VALID] == 0 && c.ids[FG_CORPUS_VALID] != NULL);
    CHECK(c.n[FG_CORPUS_TEST] == 0 && c.ids[FG_CORPUS_TEST] != NULL);
    fg_corpus_free(&c);

    /* a literal <eos> is id 0; a word of exactly FG_CORPUS_MAX_WORD bytes is fine */
    char longw[FG_CORPUS_MAX_WORD + 3];
    memset(longw, 'x', FG_CORPUS_MAX_WORD);
    longw[FG_CORPUS_MAX_WORD] = '\n';
    longw[FG_CORPUS_MAX_WORD + 1] = 0;
    CHECK_OK(parse3(longw, "<eos>\n", "", &c));
    CHECK(c.vocab_size == 2 && strlen(c.words[1]) == FG_CORPUS_MAX_WORD);
    const int32_t v[] = {0, 0};
    check_ids("literal <eos>", &c, FG_CORPUS_VALID, v, 2);
    fg_corpus_free(&c);

    /* NULL texts with zero lengths are empty splits */
    const char *texts[3] = {"a\n", NULL, NULL};
    size_t lens[3] = {2, 0, 0};
    CHECK_OK(fg_corpus_parse(texts, lens, NULL, &c));
    CHECK(c.n[0] == 2 && c.n[1] == 0 && c.n[2] == 0);
    fg_corpus_free(&c);
}

static void test_unk(void) {
    fg_corpus c;
    /* train has <unk>: unseen words of valid and test map to it */
    CHECK_OK(parse3("a <unk> b\nb a\n", "a zzz\nqqq\n", "b <unk> c\n", &c));
    CHECK(c.vocab_size == 4);
    int32_t unk = fg_corpus_find(&c, "<unk>");
    CHECK(unk == 2);
    const int32_t valid[] = {1, 2, 0, 2, 0}, test[] = {3, 2, 2, 0};
    check_ids("unk valid", &c, FG_CORPUS_VALID, valid, 5);
    check_ids("unk test", &c, FG_CORPUS_TEST, test, 4);
    CHECK(fg_corpus_find(&c, "zzz") == -1); /* not added to the vocabulary */
    fg_corpus_free(&c);

    /* no <unk> in train: an unseen word is an error naming the file, the line and the word */
    memset(&c, 0x5a, sizeof c);
    CHECK_STATUS(parse3("a b\n", "a\n\nb c\n", "", &c), FG_ERR_FORMAT);
    check_msg("oov valid", "mem.valid.txt:3:", "'c'", "mem.train.txt", "<unk>", (const char *)NULL);
    CHECK(is_zeroed(&c));
    CHECK_STATUS(parse3("a b\n", "a\n", "b\r\nb a\r\nunseen\r\n", &c), FG_ERR_FORMAT);
    check_msg("oov test", "mem.test.txt:3:", "'unseen'", (const char *)NULL);
    CHECK(is_zeroed(&c));
    /* <unk> only in valid is just another unseen word */
    CHECK_STATUS(parse3("a b\n", "<unk>\n", "", &c), FG_ERR_FORMAT);
    check_msg("unk in valid only", "mem.valid.txt:1:", "'<unk>'", (const char *)NULL);
}

static void test_errors(void) {
    fg_corpus c;
    /* empty train, also when it has only blanks */
    CHECK_STATUS(parse3("", "a\n", "a\n", &c), FG_ERR_FORMAT);
    check_msg("empty train", "mem.train.txt", "no words", (const char *)NULL);
    CHECK(is_zeroed(&c));
    CHECK_STATUS(parse3("\n \t\r\n\n", "", "", &c), FG_ERR_FORMAT);
    check_msg("blank train", "mem.train.txt", "no words", (const char *)NULL);

    /* a NUL byte (lengths given explicitly), in train on line 2 */
    {
        const char train[] = "ab\ncd\0e\n";
        const char *texts[3] = {train, "", ""};
        size_t lens[3] = {sizeof train - 1, 0, 0};
        CHECK_STATUS(fg_corpus_parse(texts, lens, "mem", &c), FG_ERR_FORMAT);
        check_msg("nul", "mem.train.txt:2:", "0x00", "NUL", "column 3", (const char *)NULL);
        CHECK(is_zeroed(&c));
    }
    /* control bytes in valid and test, after the train vocabulary was built */
    CHECK_STATUS(parse3("a b\n", "a\nb\x01\n", "", &c), FG_ERR_FORMAT);
    check_msg("ctrl valid", "mem.valid.txt:2:", "0x01", (const char *)NULL);
    CHECK(is_zeroed(&c));
    CHECK_STATUS(parse3("a b\n", "a\n", "a\n\nb\x7f", &c), FG_ERR_FORMAT);
    check_msg("del test", "mem.test.txt:3:", "0x7f", "DEL", (const char *)NULL);
    CHECK_STATUS(parse3("a\x0b b\n", "", "", &c), FG_ERR_FORMAT);
    check_msg("vt", "mem.train.txt:1:", "0x0b", (const char *)NULL);
    CHECK_STATUS(parse3("a b\n", "a\fb\n", "", &c), FG_ERR_FORMAT);
    check_msg("ff", "mem.valid.txt:1:", "0x0c", (const char *)NULL);

    /* a word one byte too long, on line 2 of test */
    char longw[FG_CORPUS_MAX_WORD + 8];
    strcpy(longw, "a\n");
    memset(longw + 2, 'y', FG_CORPUS_MAX_WORD + 1);
    longw[FG_CORPUS_MAX_WORD + 3] = 0;
    CHECK_STATUS(parse3("a\n", "", longw, &c), FG_ERR_FORMAT);
    char n[32];
    snprintf(n, sizeof n, "%d bytes", FG_CORPUS_MAX_WORD + 1);
    check_msg("long word", "mem.test.txt:2:", n, "yyyy...", (const char *)NULL);
    CHECK(is_zeroed(&c));
    /* ... also when it is in train, where it would otherwise have been interned */
    CHECK_STATUS(parse3(longw, "", "", &c), FG_ERR_FORMAT);
    check_msg("long word train", "mem.train.txt:2:", (const char *)NULL);
}

/* 60,000 distinct words, several times over: the table grows many times while ids keep the
 * order of first appearance, and repeats find the same id. */
static void test_large_vocab(void) {
    const int nw = 60000, reps = 3;
    size_t cap = (size_t)nw * reps * 12 + 16;
    char *train = malloc(cap), *valid = malloc(64);
    if (!train || !valid) {
        fprintf(stderr, "large vocab: out of memory\n");
        fg_test_failures++;
        free(train);
        free(valid);
        return;
    }
    size_t len = 0;
    for (int r = 0; r < reps; r++)
        for (int i = 0; i < nw; i++)
            len += (size_t)snprintf(train + len, cap - len, "w%d%s", i, i % 7 == 6 ? "\n" : " ");
    snprintf(valid, 64, "w59999 w0 w31337\n");
    fg_corpus c;
    const char *texts[3] = {train, valid, ""};
    size_t lens[3] = {len, strlen(valid), 0};
    CHECK_OK(fg_corpus_parse(texts, lens, "big", &c));
    CHECK(c.vocab_size == nw + 1);
    int bad = 0;
    char w[32];
    for (int i = 0; i < nw && i + 1 < c.vocab_size; i++) {
        snprintf(w, sizeof w, "w%d", i);
        if (strcmp(c.words[i + 1], w) != 0 && bad++ < 3)
            fprintf(stderr, "large vocab: word %d is '%s', expected '%s'\n", i + 1, c.words[i + 1], w);
    }
    CHECK(bad == 0);
    /* each repetition of the word list gives the same ids */
    int64_t words_seen = 0, mismatches = 0;
    for (int64_t i = 0; i < c.n[0]; i++) {
        if (c.ids[0][i] == 0) continue;
        if (c.ids[0][i] != (int32_t)(words_seen % nw) + 1) mismatches++;
        words_seen++;
    }
    CHECK(words_seen == (int64_t)nw * reps && mismatches == 0);
    const int32_t v[] = {60000, 1, 31338, 0};
    check_ids("large vocab valid", &c, FG_CORPUS_VALID, v, 4);
    CHECK(fg_corpus_find(&c, "w12345") == 12346);
    fg_corpus_free(&c);
    free(train);
    free(valid);
}

static int write_text(const char *name, const char *text) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    if (!f) return 0;
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static void remove_in_tmp(const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    unlink(p);
}

static void test_load(void) {
    CHECK(write_text("small.train.txt", " the cat sat \n the dog \n"));
    CHECK(write_text("small.valid.txt", " the cat \n"));
    CHECK(write_text("small.test.txt", "dog\r\n"));
    fg_corpus c;
    CHECK_OK(fg_corpus_load(tmpdir, "small", &c));
    CHECK(c.vocab_size == 5 && c.n[0] == 7 && c.n[1] == 3 && c.n[2] == 2);
    const int32_t test[] = {4, 0};
    check_ids("load test", &c, FG_CORPUS_TEST, test, 2);
    fg_corpus_free(&c);

    /* errors name the file's path */
    CHECK(write_text("bad.train.txt", "a b\n"));
    CHECK(write_text("bad.valid.txt", "a\n"));
    CHECK(write_text("bad.test.txt", "b\nc\n"));
    CHECK_STATUS(fg_corpus_load(tmpdir, "bad", &c), FG_ERR_FORMAT);
    char want[1024];
    snprintf(want, sizeof want, "%s/bad.test.txt:2:", tmpdir);
    check_msg("load oov", want, "'c'", (const char *)NULL);
    CHECK(is_zeroed(&c));

    /* a missing file: FG_ERR_IO with the path and the reason */
    remove_in_tmp("bad.valid.txt");
    CHECK_STATUS(fg_corpus_load(tmpdir, "bad", &c), FG_ERR_IO);
    snprintf(want, sizeof want, "%s/bad.valid.txt", tmpdir);
    check_msg("load missing", want, strerror(ENOENT), (const char *)NULL);
    CHECK(is_zeroed(&c));
    CHECK_STATUS(fg_corpus_load(tmpdir, "nothere", &c), FG_ERR_IO);
    check_msg("load missing train", "nothere.train.txt", (const char *)NULL);

    const char *names[] = {"small.train.txt", "small.valid.txt", "small.test.txt", "bad.train.txt", "bad.test.txt"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) remove_in_tmp(names[i]);
}

/* The Brown corpus as scripts/fetch-data.sh brown converts it (files pinned by SHA-256, so the
 * counts are exact): 46,032 / 5,506 / 5,621 sentences of 810,986 / 101,172 / 101,161 words, plus
 * one <eos> per sentence. The vocabulary is exactly 10,002: the converter keeps the 10,000 most
 * frequent training words (each of them occurs in train by construction), replaces the other
 * 32,047 training words (and every unseen valid/test word) by <unk>, which therefore occurs in
 * train too, and the loader adds <eos>. "<unk>" cannot be one of the 10,000 (the converter rejects
 * it as a source word). */
static void test_brown(void) {
    char dir[4096], p[4200];
    fg_data_dir(dir, sizeof dir);
    snprintf(p, sizeof p, "%s/brown.train.txt", dir);
    if (access(p, R_OK) != 0) {
        printf("test_corpus brown: %s absent, skipped (bash scripts/fetch-data.sh brown)\n", p);
        exit(77);
    }
    fg_corpus c;
    CHECK_OK(fg_corpus_load(dir, "brown", &c));
    if (c.vocab_size == 0) return;
    printf("test_corpus: brown: %lld / %lld / %lld ids (train / valid / test, with <eos>), vocabulary %d\n",
           (long long)c.n[0], (long long)c.n[1], (long long)c.n[2], c.vocab_size);
    CHECK(c.vocab_size == 10002);
    CHECK(c.n[FG_CORPUS_TRAIN] == 810986 + 46032);
    CHECK(c.n[FG_CORPUS_VALID] == 101172 + 5506);
    CHECK(c.n[FG_CORPUS_TEST] == 101161 + 5621);
    CHECK(strcmp(c.words[0], "<eos>") == 0);
    CHECK(fg_corpus_find(&c, "the") == 1); /* ca01 opens with "The Fulton County Grand Jury" */
    CHECK(fg_corpus_find(&c, "<unk>") > 0);
    CHECK(fg_corpus_find(&c, "N") > 0);
    CHECK(fg_corpus_find(&c, ",") == -1); /* punctuation was dropped */
    for (int k = 0; k < FG_CORPUS_SPLIT_COUNT; k++) {
        int64_t bad = 0;
        for (int64_t i = 0; i < c.n[k]; i++)
            if (c.ids[k][i] < 0 || c.ids[k][i] >= c.vocab_size) bad++;
        CHECK(bad == 0);
        CHECK(c.n[k] > 0 && c.ids[k][c.n[k] - 1] == 0);
    }
    fg_corpus_free(&c);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "brown") == 0) {
        test_brown();
        return fg_test_finish("test_corpus brown");
    }
    if (argc != 1) {
        fprintf(stderr, "usage: test_corpus [brown]\n");
        return 2;
    }
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/fg_test_corpus.XXXXXX", (t && t[0]) ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "test_corpus: cannot create a temporary directory %s: %s\n", tmpdir, strerror(errno));
        return 1;
    }
    test_basic();
    test_separators();
    test_unk();
    test_errors();
    test_large_vocab();
    test_load();
    rmdir(tmpdir);
    return fg_test_finish("test_corpus");
}
