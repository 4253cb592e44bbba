/* frugal file formats: safetensors (weights and checkpoints), IDX (MNIST-style data sets) and
 * PTB-style text corpora (word-level language modelling).
 *
 * Loaders parse from memory (fg_*_parse) so the fuzz harnesses exercise exactly the code that
 * reads files; fg_*_load reads a file and calls parse. Every loader rejects malformed input with
 * FG_ERR_FORMAT and a message that names the file and what was expected; none crashes.
 * Writers are atomic: temporary file in the same directory, fsync, rename (and fsync of the
 * directory), so a crash or a full disk never leaves a half-written file under the real name. */
#ifndef FRUGAL_IO_H
#define FRUGAL_IO_H

#include "frugal/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- safetensors
 * 8-byte little-endian header length N, N bytes of JSON
 *   {"__metadata__": {"k": "v", ...}, "name": {"dtype": "F32", "shape": [..],
 *    "data_offsets": [begin, end]}, ...}
 * then the data area; offsets are relative to the data area. */

typedef enum fg_st_dtype { FG_ST_F32, FG_ST_F16, FG_ST_BF16, FG_ST_F64, FG_ST_I64, FG_ST_I32,
                           FG_ST_I16, FG_ST_I8, FG_ST_U8, FG_ST_BOOL, FG_ST_U64, FG_ST_U32,
                           FG_ST_U16, FG_ST_DTYPE_COUNT } fg_st_dtype;

typedef struct fg_st_entry {
    const char *name;
    fg_st_dtype dtype;
    int ndim;
    int64_t shape[FG_MAX_DIMS];
    const void *data;   /* points into the file's buffer (not aligned in general: memcpy out);
                         * NULL from fg_st_load_header */
    size_t nbytes;
} fg_st_entry;

typedef struct fg_st_file fg_st_file;

/* Validates everything: header length within the buffer, JSON well formed, every entry has a
 * known dtype, a shape whose product times the dtype size equals end - begin, offsets within
 * the data area, no two entries overlapping, names unique. `what` names the source in messages.
 * The buffer is copied; the caller keeps ownership of buf. */
fg_status fg_st_parse(const void *buf, size_t len, const char *what, fg_st_file **out);
fg_status fg_st_load(const char *path, fg_st_file **out);
/* Reads only the length word and the JSON header (a model's metadata and shapes without its
 * weights) and checks them as fg_st_load does, the entries' offsets against the file's length; the
 * entries' data is NULL and fg_st_read_f32 with a destination refuses. */
fg_status fg_st_load_header(const char *path, fg_st_file **out);
void fg_st_free(fg_st_file *f);
size_t fg_st_count(const fg_st_file *f);
const fg_st_entry *fg_st_at(const fg_st_file *f, size_t i);
const fg_st_entry *fg_st_find(const fg_st_file *f, const char *name); /* NULL if absent */
const char *fg_st_meta(const fg_st_file *f, const char *key);         /* NULL if absent */
/* Typed metadata, for readers that need the key: its string, an integer in [lo, hi], an unsigned
 * 64-bit integer, or a number (C99 hex floats as "%a" writes them round-trip exactly; decimal is
 * accepted). A missing key or a value that does not parse is FG_ERR_FORMAT naming the source, the
 * key and the value. */
fg_status fg_st_meta_str(const fg_st_file *f, const char *key, const char **out);
fg_status fg_st_meta_i64(const fg_st_file *f, const char *key, int64_t lo, int64_t hi, int64_t *out);
fg_status fg_st_meta_u64(const fg_st_file *f, const char *key, uint64_t *out);
fg_status fg_st_meta_f64(const fg_st_file *f, const char *key, double *out);
/* A table of numbers in one metadata value, e.g. a training history: n records of `fields`
 * numbers each, "a,b,c;d,e,f" (',' between fields, ';' between records, nothing else; "" is no
 * record). fg_st_meta_table_text writes x[0 .. n*fields-1] as such a value, in C99 hex floats
 * (exact round trip), into a malloc'd string. fg_st_meta_table reads the key's value into a
 * malloc'd array of n * fields numbers (*out NULL when n is 0), at most max_records of them; a
 * missing key, a malformed value or more records is FG_ERR_FORMAT naming the source, the key, the
 * record and field and the text there. Both need fields >= 1 (and n, max_records >= 0): the
 * caller's constants, checked by assertion. */
fg_status fg_st_meta_table_text(const double *x, int64_t n, int fields, char **out);
fg_status fg_st_meta_table(const fg_st_file *f, const char *key, int fields, int64_t max_records, double **out,
                           int64_t *n);
/* Copies an F32 entry named `name` with exactly the expected shape into dst; a missing entry,
 * another dtype or another shape is FG_ERR_FORMAT naming the entry and both shapes. With dst
 * NULL it only checks (a loader that must read all or nothing checks every entry first). */
fg_status fg_st_read_f32(const fg_st_file *f, const char *name, int ndim, const int64_t *shape, float *dst);

typedef struct fg_st_writer fg_st_writer;
fg_status fg_st_writer_create(fg_st_writer **out);
void fg_st_writer_free(fg_st_writer *w);
/* Data is referenced, not copied: it must stay valid until fg_st_writer_save returns. */
fg_status fg_st_writer_add(fg_st_writer *w, const char *name, fg_st_dtype dtype, int ndim,
                           const int64_t *shape, const void *data);
fg_status fg_st_writer_meta(fg_st_writer *w, const char *key, const char *value);
/* Atomic write (temp file, fsync, rename). FG_ERR_IO with the reason (e.g. "No space left on
 * device") on failure, and the temp file removed. */
fg_status fg_st_writer_save(fg_st_writer *w, const char *path);
/* Whether `path` can be the target of one of the library's atomic writes (fg_st_writer_save and
 * every file it saves): absent, or an existing regular file. A directory, a name ending in '/', a
 * device, a pipe or a symbolic link is FG_ERR_INVALID naming the path and what it is (the write
 * renames a temporary file over the name, which would replace the link or the device node
 * itself); a path that cannot be examined is FG_ERR_IO. The directory's permissions are not
 * checked. Every atomic write checks this first; a program can check before long work. */
fg_status fg_output_path_check(const char *path);

/* ---------------------------------------------------------------- IDX
 * The original MNIST format: magic 0x0000 | type byte | ndim byte, then ndim big-endian u32
 * dims, then the data (big-endian for multi-byte types). Only unsigned byte data (0x08) is
 * accepted, which is what MNIST and Fashion-MNIST use. */
typedef struct fg_idx {
    int ndim;
    int64_t dims[FG_MAX_DIMS];
    uint8_t *data; /* owned; numel bytes */
    size_t numel;
} fg_idx;
fg_status fg_idx_parse(const void *buf, size_t len, const char *what, fg_idx *out);
fg_status fg_idx_load(const char *path, fg_idx *out);
void fg_idx_free(fg_idx *x);
/* Writes an IDX u8 file atomically. */
fg_status fg_idx_save(const char *path, int ndim, const int64_t *dims, const uint8_t *data);

/* ---------------------------------------------------------------- data sets */

/* An image classification set in memory: images (n, c, h, w) as float scaled to [0, 1]
 * then normalized with (x - mean) / std, labels int32. */
typedef struct fg_dataset {
    int64_t n, c, h, w;
    int32_t n_classes;
    float *images;
    int32_t *labels;
} fg_dataset;

/* Loads "<dir>/<prefix>-images-idx3-ubyte" and "<dir>/<prefix>-labels-idx1-ubyte"
 * (as written by scripts/fetch-data.sh), checks counts agree, normalizes with mean/std. */
fg_status fg_dataset_load_idx(const char *dir, const char *prefix, float mean, float std, fg_dataset *out);
void fg_dataset_free(fg_dataset *d);
/* The data directory: $FRUGAL_DATA, else $HOME/.cache/frugal. */
const char *fg_data_dir(char *buf, size_t cap);

/* ---------------------------------------------------------------- text corpora
 * Word-level language-modelling text in the format of Mikolov's PTB files (ptb.train.txt), as
 * scripts/fetch-data.sh writes the Brown corpus: "<dir>/<prefix>.train.txt", ".valid.txt" and
 * ".test.txt", one sentence per line, words separated by spaces or tabs, lines ending with \n or
 * \r\n. A line with words is followed by <eos> (id 0) in the id stream; a line without words adds
 * nothing. Any byte is allowed in a word except NUL and other control bytes (0x00-0x1f, 0x7f),
 * which are errors outside of tab, CR and LF; words are at most FG_CORPUS_MAX_WORD bytes and a
 * split at most INT32_MAX ids (with its <eos>).
 *
 * The vocabulary comes from the training text only: id 0 is <eos>, then every word in the order
 * of its first appearance in train, so the ids are a function of the train file alone. A valid or
 * test word that train lacks maps to <unk> when train contains "<unk>" (PTB's closed-vocabulary
 * convention) and is otherwise FG_ERR_FORMAT naming the file, the line and the word. A literal
 * "<eos>" in the text is id 0. Errors name "<what>.<split>.txt" and the line (1-based); load
 * passes "<dir>/<prefix>" as `what`, so the name is the file's path. */

#define FG_CORPUS_MAX_WORD 256 /* bytes; a longer "word" means the file is not text */

/* Index of a split in fg_corpus's ids and n. */
typedef enum fg_corpus_split {
    FG_CORPUS_TRAIN,
    FG_CORPUS_VALID,
    FG_CORPUS_TEST,
    FG_CORPUS_SPLIT_COUNT
} fg_corpus_split;

typedef struct fg_corpus {
    int32_t vocab_size; /* words incl. <eos> and <unk> (when train has it) */
    char **words;       /* id -> NUL-terminated word (owned); words[0] is "<eos>" */
    int32_t *ids[3];    /* train, valid, test token ids (owned; never NULL after a parse); <eos> after each line */
    int64_t n[3];       /* number of ids in each split; train's is at least 2 (a word and <eos>) */
} fg_corpus;

/* Parses the three texts (not NUL-terminated; texts[k] may be NULL when lens[k] is 0). An empty
 * train split is FG_ERR_FORMAT, empty valid and test splits are allowed. On failure *out is
 * zeroed and nothing is held. `what` names the source in messages (NULL: "corpus"). */
fg_status fg_corpus_parse(const char *const texts[3], const size_t lens[3], const char *what, fg_corpus *out);
/* Reads "<dir>/<prefix>.{train,valid,test}.txt" and parses them; a missing file is FG_ERR_IO
 * with its path and the reason. */
fg_status fg_corpus_load(const char *dir, const char *prefix, fg_corpus *out);
void fg_corpus_free(fg_corpus *c);
/* The id of `word`, -1 if absent. A linear scan (O(vocab_size)): for set-up and tests, not for
 * inner loops. */
int32_t fg_corpus_find(const fg_corpus *c, const char *word);

#ifdef __cplusplus
}
#endif
#endif
