/* Test helpers; see testutil.h. */
#include "testutil.h"

#include <math.h>
#include <string.h>

int fg_test_failures = 0;

int fg_check_close(const char *what, const float *got, const float *want, size_t n, float rtol, float atol) {
    size_t worst = 0, bad = 0;
    double worst_excess = -1, max_abs = 0, max_rel = 0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i], d = fabs(g - w);
        double tol = atol + rtol * fabs(w);
        if (isnan(g) != isnan(w) || d > tol) bad++;
        if (d > max_abs) max_abs = d;
        if (fabs(w) > 0 && d / fabs(w) > max_rel) max_rel = d / fabs(w);
        double excess = isnan(g) ? 1e30 : d - tol;
        if (excess > worst_excess) {
            worst_excess = excess;
            worst = i;
        }
    }
    if (bad) {
        fprintf(stderr, "  %s: %zu of %zu values differ; worst at [%zu]: got %.9g want %.9g "
                        "(max abs err %.3g, max rel err %.3g, rtol %.1g atol %.1g)\n",
                what, bad, n, worst, got[worst], want[worst], max_abs, max_rel, rtol, atol);
        fg_test_failures++;
        return 0;
    }
    return 1;
}

int fg_check_equal(const char *what, const float *got, const float *want, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0) {
            fprintf(stderr, "  %s: not bit-identical at [%zu] of %zu: got %.9g want %.9g\n", what, i, n,
                    got[i], want[i]);
            fg_test_failures++;
            return 0;
        }
    }
    return 1;
}

int fg_check_grad(const char *what, float *x, const float *grad, size_t n, fg_loss_fn loss, void *user,
                  size_t samples, float eps, float rtol, float atol, fg_rng *rng) {
    size_t count = samples >= n ? n : samples;
    int ok = 1;
    for (size_t s = 0; s < count; s++) {
        size_t i = samples >= n ? s : (size_t)fg_rng_below(rng, n);
        float orig = x[i];
        x[i] = orig + eps;
        double lp = loss(user);
        x[i] = orig - eps;
        double lm = loss(user);
        x[i] = orig;
        double fd = (lp - lm) / (2.0 * (double)eps);
        double g = grad[i];
        double tol = atol + rtol * fmax(fabs(fd), fabs(g));
        if (fabs(fd - g) > tol || isnan(g)) {
            fprintf(stderr, "  %s: gradient at [%zu]: analytic %.7g, finite difference %.7g (diff %.3g > tol %.3g)\n",
                    what, i, g, fd, fabs(fd - g), tol);
            ok = 0;
        }
    }
    if (!ok) fg_test_failures++;
    return ok;
}

typedef struct fx_entry {
    char *name;
    size_t numel;
    float *data;
} fx_entry;

struct fg_fixture {
    fx_entry *e;
    size_t n;
    char path[512];
};

static void fx_die(const char *path, const char *why) {
    fprintf(stderr, "fixture %s: %s\n", path, why);
    exit(2);
}

fg_fixture *fg_fixture_open(const char *file) {
    fg_fixture *f = calloc(1, sizeof *f);
    const char *src = getenv("FRUGAL_SOURCE_DIR");
    snprintf(f->path, sizeof f->path, "%s/tests/fixtures/%s", src ? src : ".", file);
    FILE *fp = fopen(f->path, "rb");
    if (!fp) fx_die(f->path, "cannot open (run tests from the source tree or set FRUGAL_SOURCE_DIR)");
    char magic[4];
    uint32_t ver, count;
    if (fread(magic, 1, 4, fp) != 4 || memcmp(magic, "FGFX", 4) != 0) fx_die(f->path, "bad magic, expected FGFX");
    if (fread(&ver, 4, 1, fp) != 1 || ver != 1) fx_die(f->path, "unsupported version, expected 1");
    if (fread(&count, 4, 1, fp) != 1 || count > 100000) fx_die(f->path, "bad count");
    f->e = calloc(count, sizeof *f->e);
    f->n = count;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t len, ndim;
        if (fread(&len, 4, 1, fp) != 1 || len > 4096) fx_die(f->path, "bad name length");
        f->e[i].name = calloc(len + 1, 1);
        if (fread(f->e[i].name, 1, len, fp) != len) fx_die(f->path, "truncated name");
        if (fread(&ndim, 4, 1, fp) != 1 || ndim > 8) fx_die(f->path, "bad ndim");
        size_t numel = 1;
        for (uint32_t d = 0; d < ndim; d++) {
            int64_t dim;
            if (fread(&dim, 8, 1, fp) != 1 || dim < 0) fx_die(f->path, "bad dim");
            numel *= (size_t)dim;
        }
        f->e[i].numel = numel;
        f->e[i].data = malloc(numel * sizeof(float) + 1);
        if (fread(f->e[i].data, sizeof(float), numel, fp) != numel) fx_die(f->path, "truncated data");
    }
    fclose(fp);
    return f;
}

void fg_fixture_close(fg_fixture *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) {
        free(f->e[i].name);
        free(f->e[i].data);
    }
    free(f->e);
    free(f);
}

int fg_fixture_has(fg_fixture *f, const char *name) {
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->e[i].name, name) == 0) return 1;
    return 0;
}

const float *fg_fixture_get(fg_fixture *f, const char *name, size_t numel) {
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->e[i].name, name) == 0) {
            if (f->e[i].numel != numel) {
                fprintf(stderr, "fixture %s: tensor %s has %zu elements, test expects %zu\n", f->path, name,
                        f->e[i].numel, numel);
                exit(2);
            }
            return f->e[i].data;
        }
    fprintf(stderr, "fixture %s: no tensor named %s (regenerate with tests/fixtures/gen_fixtures.py)\n", f->path, name);
    exit(2);
}

void fg_fill_uniform(float *x, size_t n, float lo, float hi, fg_rng *rng) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * fg_rng_uniform(rng);
}

int fg_test_finish(const char *name) {
    if (fg_test_failures) {
        fprintf(stderr, "%s: %d failure(s)\n", name, fg_test_failures);
        return 1;
    }
    printf("%s: ok\n", name);
    return 0;
}

#define FG_GUARD 16
#define FG_GUARD_VAL 12345.0f

float *fg_alloc_guarded(size_t n) {
    float *p = malloc((n + FG_GUARD) * sizeof(float));
    FG_ASSERT(p);
    for (size_t i = 0; i < n + FG_GUARD; i++) p[i] = FG_GUARD_VAL;
    return p;
}

void fg_check_guard(const char *what, const float *p, size_t n) {
    for (size_t i = n; i < n + FG_GUARD; i++)
        if (p[i] != FG_GUARD_VAL) {
            fprintf(stderr, "  %s: wrote past the end: [%zu] (size %zu) = %g\n", what, i, n, p[i]);
            fg_test_failures++;
            return;
        }
}

void fg_fill_const(float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++) x[i] = v;
}

int fg_all_equal_to(const float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++)
        if (x[i] != v) return 0;
    return 1;
}

double fg_dot_d(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

float fg_atol_for(double fan) { return (float)(2e-5 * sqrt(fan > 1 ? fan : 1)); }

/* ---------------------------------------------------------------- transformer fixture weights */

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001B3ull;
    return h;
}

static uint64_t splitmix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

void fg_test_formula_weights(float *dst, const char *name, int ndim, const int64_t *shape) {
    size_t n = 1, fan_in = 1;
    for (int k = 0; k < ndim; k++) n *= (size_t)shape[k];
    for (int k = 1; k < ndim; k++) fan_in *= (size_t)shape[k];
    float scale, offset = 0.0f;
    const int norm = strstr(name, "layer_norm") || strstr(name, "batch_norm") || strstr(name, "layernorm");
    if (ends_with(name, "running_mean")) scale = 0.1f;
    else if (ends_with(name, "running_var")) scale = 0.25f, offset = 1.0f;
    else if (ends_with(name, "weight") && norm) scale = 0.2f, offset = 1.0f;
    else if (ends_with(name, "bias")) scale = 0.1f;
    else scale = (float)(1.0 / sqrt((double)fan_in));
    const uint64_t h0 = fnv1a64(name);
    for (size_t j = 0; j < n; j++) {
        const float u = (float)(splitmix64(h0 + j) >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
        dst[j] = u * scale + offset;
    }
}

fg_test_entry *fg_test_read_entries(const char *file, size_t *count) {
    const char *src = getenv("FRUGAL_SOURCE_DIR");
    char path[600];
    snprintf(path, sizeof path, "%s/tests/fixtures/%s", src ? src : ".", file);
    FILE *f = fopen(path, "r");
    if (!f) fx_die(path, "cannot open (run tests from the source tree or set FRUGAL_SOURCE_DIR)");
    size_t cap = 64, n = 0;
    fg_test_entry *e = calloc(cap, sizeof *e);
    char line[256];
    while (e && fgets(line, sizeof line, f)) {
        if (n == cap) {
            fg_test_entry *m = realloc(e, 2 * cap * sizeof *e);
            if (!m) break;
            memset(m + cap, 0, cap * sizeof *e);
            e = m, cap *= 2;
        }
        char dims[128];
        if (sscanf(line, "%63s %127s", e[n].name, dims) != 2) continue;
        char *p = dims;
        while (*p && e[n].ndim < FG_MAX_DIMS) {
            e[n].shape[e[n].ndim++] = strtoll(p, &p, 10);
            if (*p == ',') p++;
        }
        n++;
    }
    fclose(f);
    if (!e) fx_die(path, "out of memory");
    *count = n;
    return e;
}

void fg_test_write_entries(const char *path, const fg_test_entry *e, size_t n, const char *counter) {
    fg_st_writer *w;
    CHECK_OK(fg_st_writer_create(&w));
    for (size_t i = 0; i < n; i++) CHECK_OK(fg_st_writer_add(w, e[i].name, FG_ST_F32, e[i].ndim, e[i].shape, e[i].data));
    static const int64_t steps = 12345;
    if (counter) CHECK_OK(fg_st_writer_add(w, counter, FG_ST_I64, 0, NULL, &steps));
    CHECK_OK(fg_st_writer_save(w, path));
    fg_st_writer_free(w);
}
