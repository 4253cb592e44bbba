/* Test helpers: checks that say what differed, by how much and where; finite-difference
 * gradient checks; the reader of PyTorch fixture files.
 *
 * Fixture files (files under tests/fixtures, written by tests/fixtures/gen_fixtures.py):
 *   magic "FGFX", u32 version (1), u32 count, then count records of
 *   u32 name_len, name bytes, u32 ndim, i64 dims[ndim], f32 data[prod dims]   (little-endian) */
#ifndef FG_TESTUTIL_H
#define FG_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>

#include "frugal/frugal.h"

extern int fg_test_failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                \
            fg_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)

#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        fg_status s_ = (expr);                                                                     \
        if (s_ != FG_OK) {                                                                         \
            fprintf(stderr, "%s:%d: %s returned %s: %s\n", __FILE__, __LINE__, #expr,               \
                    fg_status_name(s_), fg_last_error());                                          \
            fg_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)

/* Fails the test (and prints the message) when expr does not return `want`. */
#define CHECK_STATUS(expr, want)                                                                   \
    do {                                                                                           \
        fg_status s_ = (expr);                                                                     \
        if (s_ != (want)) {                                                                        \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (%s)\n", __FILE__, __LINE__, #expr, \
                    fg_status_name(s_), fg_status_name(want), fg_last_error());                    \
            fg_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)

/* Compares n floats: |a-b| <= atol + rtol*|b| everywhere. On failure prints the worst index,
 * both values and the max abs/rel error, counts a failure and returns 0. */
int fg_check_close(const char *what, const float *got, const float *want, size_t n, float rtol, float atol);
/* Small helpers of the op tests: fill with a constant; whether every element equals v; a float64
 * dot product; the tolerance of a float32 sum of `fan` products of O(1) values against a double
 * reference (2e-5 * sqrt(fan)). */
void fg_fill_const(float *x, size_t n, float v);
int fg_all_equal_to(const float *x, size_t n, float v);
double fg_dot_d(const float *a, const float *b, size_t n);
float fg_atol_for(double fan);

/* Bitwise equality of n floats; prints the first differing index. */
int fg_check_equal(const char *what, const float *got, const float *want, size_t n);

/* Finite-difference check: loss(user) is a scalar function of the n values at x (which it reads);
 * grad holds the analytic gradient. Checks `samples` coordinates chosen by the rng (all if
 * samples >= n) with central differences of step eps, in double precision accumulation.
 * Tolerance: |fd - g| <= atol + rtol * max(|fd|, |g|). */
typedef double (*fg_loss_fn)(void *user);
int fg_check_grad(const char *what, float *x, const float *grad, size_t n, fg_loss_fn loss, void *user,
                  size_t samples, float eps, float rtol, float atol, fg_rng *rng);

/* Fixture files. */
typedef struct fg_fixture fg_fixture;
/* path relative to the source tree's tests/fixtures/; aborts the test with a message on error */
fg_fixture *fg_fixture_open(const char *file);
void fg_fixture_close(fg_fixture *f);
/* Returns the data of tensor `name`, checking its element count equals `numel` (aborts
 * otherwise); ndim/dims may be NULL. */
const float *fg_fixture_get(fg_fixture *f, const char *name, size_t numel);
int fg_fixture_has(fg_fixture *f, const char *name);

/* Fills n floats with U(lo, hi). */
void fg_fill_uniform(float *x, size_t n, float lo, float hi, fg_rng *rng);
/* n floats followed by 16 guard values; fg_check_guard reports a write past the end. */
float *fg_alloc_guarded(size_t n);
void fg_check_guard(const char *what, const float *p, size_t n);
/* Reference weights of the transformer fixtures (tests/fixtures/gen_segformer.py, gen_vit.py): the
 * formula both sides compute, element j of tensor `name` from splitmix64(fnv1a64(name) + j), scaled
 * by the tensor's kind (see gen_segformer.py). */
void fg_test_formula_weights(float *dst, const char *name, int ndim, const int64_t *shape);
/* A state_dict entry list written by those generators ("name d0,d1,..." per line), read from
 * tests/fixtures/<file>; data NULL. Aborts the test with a message when the file is missing. */
typedef struct fg_test_entry {
    char name[FG_NAME_MAX];
    int ndim;
    int64_t shape[FG_MAX_DIMS];
    float *data;
} fg_test_entry;
fg_test_entry *fg_test_read_entries(const char *file, size_t *count);
/* Writes the entries (with data) to a safetensors file at path, plus an I64 scalar named
 * `counter` when it is not NULL (HF checkpoints' num_batches_tracked). */
void fg_test_write_entries(const char *path, const fg_test_entry *e, size_t n, const char *counter);

/* Prints "name: ok" / "name: N failures" and returns the exit code. */
int fg_test_finish(const char *name);

#endif
