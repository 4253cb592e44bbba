/* Word-level text corpora in the PTB format (io.h, "text corpora"): parse three texts into a
 * vocabulary and three id streams, load them from files.
 *
 * Each text is walked twice by the same tokenizer: the first walk validates every byte and
 * counts the ids (words plus one <eos> per line that has words), so each id array is allocated
 * once at its exact size and every error is found before any id is written; the second walk
 * interns train words and looks up valid/test words. The vocabulary is an open-addressing hash
 * table (linear probing, power-of-two capacity, at most half full) of word ids; it lives only
 * during the parse, since a trained model needs id -> word (kept) but rarely word -> id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/atomic_file.h"
#include "frugal/io.h"

static const char *const split_names[FG_CORPUS_SPLIT_COUNT] = {"train", "valid", "test"};

/* ---------------------------------------------------------------- tokenizer */

enum { TOK_END, TOK_WORD, TOK_EOS, TOK_BAD_BYTE, TOK_TOO_LONG };

typedef struct tok_iter {
    const unsigned char *p;
    size_t len, pos;
    size_t line_start;   /* offset of the current line's first byte, for columns in messages */
    int64_t line;        /* 1-based number of the line pos is on */
    int line_has_words;  /* whether the current line produced a word (then it ends with <eos>) */
} tok_iter;

/* Every byte but space, the control bytes 0x00-0x1f and DEL; tok_next takes the separators
 * (space, tab, CR, LF) before asking, so a non-word byte it meets is a bad one. */
static int is_word_byte(unsigned char c) { return c > 0x20 && c != 0x7f; }

/* Next item of the text: a word (*start, *n), the <eos> that ends a line with words, a bad byte
 * (at *start) or a word longer than FG_CORPUS_MAX_WORD (*start, *n), or the end. CR counts as a
 * space, so "\r\n" line ends need no case of their own. The last line has its <eos> whether or
 * not the text ends with a newline. */
static int tok_next(tok_iter *it, size_t *start, size_t *n) {
    while (it->pos < it->len) {
        unsigned char c = it->p[it->pos];
        if (c == '\n') {
            it->pos++;
            it->line++;
            it->line_start = it->pos;
            if (it->line_has_words) {
                it->line_has_words = 0;
                return TOK_EOS;
            }
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r') {
            it->pos++;
            continue;
        }
        if (!is_word_byte(c)) {
            *start = it->pos;
            return TOK_BAD_BYTE;
        }
        size_t b = it->pos;
        while (it->pos < it->len && is_word_byte(it->p[it->pos])) it->pos++;
        *start = b;
        *n = it->pos - b;
        it->line_has_words = 1;
        return *n > FG_CORPUS_MAX_WORD ? TOK_TOO_LONG : TOK_WORD;
    }
    if (it->line_has_words) {
        it->line_has_words = 0;
        return TOK_EOS;
    }
    return TOK_END;
}

static void tok_init(tok_iter *it, const char *text, size_t len) {
    memset(it, 0, sizeof *it);
    it->p = (const unsigned char *)text;
    it->len = len;
    it->line = 1;
}

/* ---------------------------------------------------------------- vocabulary */

/* The words live in the corpus being built (c->words, c->vocab_size); the table maps a word to
 * its id. hashes[id] keeps each word's hash so growing the table never rehashes the text. */
typedef struct vocab {
    fg_corpus *c;
    size_t words_cap;
    uint64_t *hashes; /* [words_cap] */
    int32_t *slots;   /* [cap], word id or -1 */
    size_t cap;       /* power of two */
} vocab;

/* FNV-1a, 64-bit: simple, and short words (the common case) hash in a few cycles. */
static uint64_t word_hash(const unsigned char *w, size_t n) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h ^= w[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Slot holding the word, or the empty slot where it would go. */
static size_t vocab_slot(const vocab *v, const unsigned char *w, size_t n, uint64_t h) {
    size_t mask = v->cap - 1, i = (size_t)h & mask;
    for (;;) {
        int32_t id = v->slots[i];
        if (id < 0) return i;
        const char *s = v->c->words[id];
        if (v->hashes[id] == h && strncmp(s, (const char *)w, n) == 0 && s[n] == 0) return i;
        i = (i + 1) & mask;
    }
}

static int32_t vocab_lookup(const vocab *v, const char *w, size_t n) {
    const unsigned char *u = (const unsigned char *)w;
    return v->slots[vocab_slot(v, u, n, word_hash(u, n))];
}

static fg_status vocab_grow_table(vocab *v, const char *what) {
    size_t ncap = v->cap ? v->cap * 2 : 1024;
    int32_t *ns = ncap <= SIZE_MAX / sizeof *ns ? malloc(ncap * sizeof *ns) : NULL;
    if (!ns) return fg_fail(FG_ERR_OOM, "%s: cannot allocate a vocabulary table of %zu slots", what, ncap);
    for (size_t i = 0; i < ncap; i++) ns[i] = -1;
    free(v->slots);
    v->slots = ns;
    v->cap = ncap;
    for (int32_t id = 0; id < v->c->vocab_size; id++) {
        size_t i = (size_t)v->hashes[id] & (ncap - 1);
        while (ns[i] >= 0) i = (i + 1) & (ncap - 1);
        ns[i] = id;
    }
    return FG_OK;
}

/* The id of the word, adding it when new. */
static fg_status vocab_intern(vocab *v, const char *w, size_t n, const char *what, int32_t *id) {
    const unsigned char *u = (const unsigned char *)w;
    uint64_t h = word_hash(u, n);
    size_t slot = vocab_slot(v, u, n, h);
    if (v->slots[slot] >= 0) {
        *id = v->slots[slot];
        return FG_OK;
    }
    fg_corpus *c = v->c;
    /* The caller has checked that the split holds at most INT32_MAX ids, hence as many words. */
    FG_ASSERT(c->vocab_size < INT32_MAX);
    if ((size_t)c->vocab_size == v->words_cap) {
        size_t ncap = v->words_cap ? v->words_cap * 2 : 1024;
        if (ncap > SIZE_MAX / sizeof(uint64_t))
            return fg_fail(FG_ERR_OOM, "%s: a vocabulary of %zu words does not fit in memory", what, ncap);
        char **nw = realloc(c->words, ncap * sizeof *nw);
        if (!nw) return fg_fail(FG_ERR_OOM, "%s: cannot allocate a vocabulary of %zu words", what, ncap);
        c->words = nw;
        uint64_t *nh = realloc(v->hashes, ncap * sizeof *nh);
        if (!nh) return fg_fail(FG_ERR_OOM, "%s: cannot allocate a vocabulary of %zu words", what, ncap);
        v->hashes = nh;
        v->words_cap = ncap;
    }
    char *copy = malloc(n + 1);
    if (!copy) return fg_fail(FG_ERR_OOM, "%s: cannot allocate %zu bytes for a word", what, n + 1);
    memcpy(copy, w, n);
    copy[n] = 0;
    int32_t nid = c->vocab_size++;
    c->words[nid] = copy;
    v->hashes[nid] = h;
    v->slots[slot] = nid;
    /* Keep the table at most half full, so probes stay short. */
    if ((size_t)c->vocab_size > v->cap / 2) FG_TRY(vocab_grow_table(v, what));
    *id = nid;
    return FG_OK;
}

static void vocab_release(vocab *v) {
    free(v->hashes);
    free(v->slots);
    memset(v, 0, sizeof *v);
}

/* ---------------------------------------------------------------- parse */

/* Quotes at most 40 bytes of a word for a message (the rest as "..."). */
static const char *word_excerpt(const char *w, size_t n, char *buf, size_t cap) {
    const size_t keep = 40;
    snprintf(buf, cap, "%.*s%s", (int)(n < keep ? n : keep), w, n > keep ? "..." : "");
    return buf;
}

static const char *byte_name(unsigned char c) {
    switch (c) {
    case 0: return " (NUL)";
    case 0x0b: return " (vertical tab)";
    case 0x0c: return " (form feed)";
    case 0x7f: return " (DEL)";
    default: return "";
    }
}

/* First walk: validates every byte and word length, counts the ids (words and <eos>). */
static fg_status split_count(const char *text, size_t len, const char *what, const char *split, int64_t *count) {
    tok_iter it;
    tok_init(&it, text, len);
    int64_t n_ids = 0;
    size_t start = 0, n = 0;
    char ex[64];
    for (;;) {
        int t = tok_next(&it, &start, &n);
        if (t == TOK_END) break;
        if (t == TOK_BAD_BYTE) {
            unsigned char c = it.p[start];
            return fg_fail(FG_ERR_FORMAT,
                           "%s.%s.txt:%lld: byte 0x%02x%s at column %zu, expected text (no NUL or control bytes "
                           "other than tab, CR and LF)",
                           what, split, (long long)it.line, (unsigned)c, byte_name(c), start - it.line_start + 1);
        }
        if (t == TOK_TOO_LONG)
            return fg_fail(FG_ERR_FORMAT, "%s.%s.txt:%lld: a word of %zu bytes ('%s'), expected at most %d bytes", what,
                           split, (long long)it.line, n, word_excerpt(text + start, n, ex, sizeof ex),
                           FG_CORPUS_MAX_WORD);
        if (++n_ids > INT32_MAX)
            return fg_fail(FG_ERR_FORMAT,
                           "%s.%s.txt:%lld: more than %d tokens (words and <eos>), expected at most that many (ids "
                           "are int32)",
                           what, split, (long long)it.line, INT32_MAX);
    }
    *count = n_ids;
    return FG_OK;
}

/* Second walk: writes the ids of split k. Train interns its words; valid and test look theirs
 * up, falling back on unk (-1: none). */
static fg_status split_fill(vocab *v, int k, const char *text, size_t len, const char *what, int32_t unk,
                            int32_t *ids, int64_t count) {
    tok_iter it;
    tok_init(&it, text, len);
    int64_t i = 0;
    size_t start = 0, n = 0;
    char ex[64];
    for (;;) {
        int t = tok_next(&it, &start, &n);
        if (t == TOK_END) break;
        FG_ASSERT(i < count && (t == TOK_WORD || t == TOK_EOS)); /* split_count saw the same text */
        int32_t id = 0;
        if (t == TOK_WORD) {
            if (k == FG_CORPUS_TRAIN) {
                FG_TRY(vocab_intern(v, text + start, n, what, &id));
            } else {
                id = vocab_lookup(v, text + start, n);
                if (id < 0) id = unk;
                if (id < 0)
                    return fg_fail(FG_ERR_FORMAT,
                                   "%s.%s.txt:%lld: word '%s' is not in the vocabulary of %s.train.txt, which has no "
                                   "<unk> to map it to (expected a closed vocabulary, or <unk> in train)",
                                   what, split_names[k], (long long)it.line,
                                   word_excerpt(text + start, n, ex, sizeof ex), what);
            }
        }
        ids[i++] = id;
    }
    FG_ASSERT(i == count);
    return FG_OK;
}

static fg_status corpus_build(const char *const texts[3], const size_t lens[3], const char *what, fg_corpus *out,
                              vocab *v) {
    v->c = out;
    FG_TRY(vocab_grow_table(v, what));
    int32_t eos;
    FG_TRY(vocab_intern(v, "<eos>", 5, what, &eos));
    FG_ASSERT(eos == 0);
    int32_t unk = -1;
    for (int k = 0; k < FG_CORPUS_SPLIT_COUNT; k++) {
        int64_t count = 0;
        FG_TRY(split_count(texts[k], lens[k], what, split_names[k], &count));
        if (k == FG_CORPUS_TRAIN && count == 0)
            return fg_fail(FG_ERR_FORMAT, "%s.train.txt: no words (%zu bytes), expected at least one line of text",
                           what, lens[k]);
        /* At least one element, so ids[k] is a valid pointer even for an empty split. */
        size_t bytes = (size_t)(count ? count : 1) * sizeof(int32_t);
        out->ids[k] = malloc(bytes);
        if (!out->ids[k])
            return fg_fail(FG_ERR_OOM, "%s.%s.txt: cannot allocate %lld token ids", what, split_names[k],
                           (long long)count);
        FG_TRY(split_fill(v, k, texts[k], lens[k], what, unk, out->ids[k], count));
        out->n[k] = count;
        if (k == FG_CORPUS_TRAIN) unk = vocab_lookup(v, "<unk>", 5);
    }
    return FG_OK;
}

fg_status fg_corpus_parse(const char *const texts[3], const size_t lens[3], const char *what, fg_corpus *out) {
    FG_ASSERT(texts && lens && out);
    for (int k = 0; k < FG_CORPUS_SPLIT_COUNT; k++) FG_ASSERT(texts[k] || lens[k] == 0);
    memset(out, 0, sizeof *out);
    if (!what) what = "corpus";
    vocab v = {0};
    fg_status s = corpus_build(texts, lens, what, out, &v);
    vocab_release(&v);
    if (s != FG_OK) {
        fg_corpus_free(out);
        return s;
    }
    /* Give back the unused tail of the word table; a failed shrink keeps the larger block. */
    char **fit = realloc(out->words, (size_t)out->vocab_size * sizeof *fit);
    if (fit) out->words = fit;
    return FG_OK;
}

fg_status fg_corpus_load(const char *dir, const char *prefix, fg_corpus *out) {
    FG_ASSERT(dir && prefix && out);
    memset(out, 0, sizeof *out);
    char what[4096], path[4200];
    int w = snprintf(what, sizeof what, "%s/%s", dir, prefix);
    if (w < 0 || (size_t)w >= sizeof what) return fg_fail(FG_ERR_INVALID, "corpus path %s/%s is too long", dir, prefix);
    unsigned char *buf[FG_CORPUS_SPLIT_COUNT] = {NULL, NULL, NULL};
    size_t lens[FG_CORPUS_SPLIT_COUNT] = {0, 0, 0};
    fg_status s = FG_OK;
    for (int k = 0; k < FG_CORPUS_SPLIT_COUNT && s == FG_OK; k++) {
        snprintf(path, sizeof path, "%s.%s.txt", what, split_names[k]);
        s = fg_file_read_all(path, &buf[k], &lens[k]);
    }
    if (s == FG_OK) {
        const char *texts[FG_CORPUS_SPLIT_COUNT] = {(const char *)buf[0], (const char *)buf[1], (const char *)buf[2]};
        s = fg_corpus_parse(texts, lens, what, out);
    }
    for (int k = 0; k < FG_CORPUS_SPLIT_COUNT; k++) free(buf[k]);
    return s;
}

void fg_corpus_free(fg_corpus *c) {
    if (!c) return;
    if (c->words)
        for (int32_t i = 0; i < c->vocab_size; i++) free(c->words[i]);
    free(c->words);
    for (int k = 0; k < FG_CORPUS_SPLIT_COUNT; k++) free(c->ids[k]);
    memset(c, 0, sizeof *c);
}

int32_t fg_corpus_find(const fg_corpus *c, const char *word) {
    FG_ASSERT(c && word);
    for (int32_t i = 0; i < c->vocab_size; i++)
        if (strcmp(c->words[i], word) == 0) return i;
    return -1;
}
