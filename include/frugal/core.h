/* frugal core: status codes and per-thread messages, always-on asserts, the log callback,
 * the seeded RNG, the thread-count setting, and tensor views.
 *
 * Two tiers of errors (docs/ARCHITECTURE.md, "Errors and logging"): FG_ASSERT for programmer bugs (prints file:line, aborts);
 * a returned fg_status plus a per-thread message (fg_last_error) for what a user can cause.
 * The library never calls exit(). */
#ifndef FRUGAL_CORE_H
#define FRUGAL_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- status */

typedef enum fg_status {
    FG_OK = 0,
    FG_ERR_INVALID,     /* bad argument from the caller (wrong option, bad value) */
    FG_ERR_SHAPE,       /* shapes do not agree */
    FG_ERR_OOM,         /* device pool or host allocation exhausted */
    FG_ERR_IO,          /* open/read/write/fsync/rename failed, disk full */
    FG_ERR_FORMAT,      /* a file is corrupt, truncated, or not what was expected */
    FG_ERR_UNSUPPORTED, /* a feature that is not implemented; the message says which */
    FG_ERR_BACKEND,     /* oneDNN returned an error */
    FG_STATUS_COUNT
} fg_status;

const char *fg_status_name(fg_status s);

/* Sets this thread's message (printf-style) and returns `s`, so callers write
 *   return fg_fail(FG_ERR_SHAPE, "conv2d: input has %d dims, expected 4", nd); */
fg_status fg_fail(fg_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* This thread's last message ("" when none). Valid until the next fg_fail on this thread. */
const char *fg_last_error(void);
void fg_clear_error(void);

/* Always-on assert for bugs: prints file, line and the expression, then aborts. */
void fg_assert_fail(const char *expr, const char *file, int line, const char *msg)
#if defined(__GNUC__)
    __attribute__((noreturn))
#endif
    ;
#define FG_ASSERT(x)                                                                               \
    do {                                                                                           \
        if (!(x)) fg_assert_fail(#x, __FILE__, __LINE__, NULL);                                    \
    } while (0)
#define FG_ASSERT_MSG(x, m)                                                                        \
    do {                                                                                           \
        if (!(x)) fg_assert_fail(#x, __FILE__, __LINE__, (m));                                     \
    } while (0)

/* Propagate a non-OK status. */
#define FG_TRY(expr)                                                                               \
    do {                                                                                           \
        fg_status fg_try_s_ = (expr);                                                              \
        if (fg_try_s_ != FG_OK) return fg_try_s_;                                                  \
    } while (0)

/* ---------------------------------------------------------------- log */

typedef enum fg_log_level { FG_LOG_DEBUG, FG_LOG_INFO, FG_LOG_WARN, FG_LOG_ERROR, FG_LOG_LEVEL_COUNT } fg_log_level;
typedef void (*fg_log_fn)(fg_log_level level, const char *msg, void *user);
/* The CLI installs a callback; the library default is silence. Set once at start-up. */
void fg_log_set_callback(fg_log_fn fn, void *user);
void fg_log(fg_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---------------------------------------------------------------- threads */

/* Number of threads used by frugal's own kernels (OpenMP) and by oneDNN (also OpenMP), on the
 * calling thread (OpenMP's setting is per thread). n <= 0 means "all cores". The count is held to
 * OMP_THREAD_LIMIT and dynamic teams are turned off (oneDNN 2.6 computes wrong products in a team
 * smaller than it asked for); a thread that never calls this gets the same at its first GEMM or
 * oneDNN primitive, with the thread count OpenMP gave it. */
void fg_threads_set(int n);
int fg_threads_get(void);

/* How OpenMP threads wait between parallel regions, as libgomp was told at start-up. frugal's
 * default is passive (OMP_WAIT_POLICY=PASSIVE: a waiting thread sleeps at once) because GOMP's
 * spinning default collapses when another process shares the cores (docs/ARCHITECTURE.md,
 * "Threads"); a user's OMP_WAIT_POLICY or GOMP_SPINCOUNT wins. libgomp reads its environment
 * before any library code runs, so the default is applied by a start-up hook (a .preinit_array
 * entry that re-executes the program once with OMP_WAIT_POLICY=PASSIVE; src/core/omp_preinit.c)
 * that programs linked with `pkg-config --libs frugal` or `pkg-config --libs frugal-static` carry
 * (linking libfrugal.a by hand needs -Wl,--undefined=fg_omp_preinit_state: the library refers to
 * the hook only weakly, so that a program on libfrugal.so links without it). Returns
 * "passive (frugal default)", "user's (OMP_WAIT_POLICY)" and the like, or "libgomp default
 * (spinning: ...)" when the hook did not run. */
const char *fg_threads_wait_policy(void);

/* Monotonic wall-clock seconds. */
double fg_time_now(void);
/* CPU seconds the process has used, all threads summed (CLOCK_PROCESS_CPUTIME_ID). */
double fg_time_cpu(void);
/* CPU seconds the calling thread has used (CLOCK_THREAD_CPUTIME_ID): leaves out the time it was
 * not running, e.g. preempted by other load on a shared machine. */
double fg_time_thread_cpu(void);

/* ---------------------------------------------------------------- CPU (src/core/cpu.c) */

/* Instruction sets frugal's own kernels are built for (oneDNN chooses its kernels itself). The
 * library is compiled for x86-64-v3 (AVX2 + FMA); kernels that need AVX-512 to be fast have a
 * second build that runs when the CPU has AVX-512 (F, BW, DQ, VL) and the maximum allows it. */
typedef enum fg_cpu_isa { FG_ISA_AVX2, FG_ISA_AVX512, FG_ISA_COUNT } fg_cpu_isa;
/* What this CPU supports. */
fg_cpu_isa fg_cpu_isa_detected(void);
/* What the dispatched kernels use: the detected ISA, capped by the maximum. The maximum starts as
 * FRUGAL_MAX_CPU_ISA (AVX2 or AVX512, as oneDNN's ONEDNN_MAX_CPU_ISA; other values are ignored
 * with a warning) and can be changed with fg_cpu_isa_set_max. */
fg_cpu_isa fg_cpu_isa_active(void);
/* Caps the ISA of the dispatched kernels, process-wide, effective at the next kernel call. */
fg_status fg_cpu_isa_set_max(fg_cpu_isa isa);
/* "avx2", "avx512" (or "unknown"). */
const char *fg_cpu_isa_name(fg_cpu_isa isa);
/* The CPU's brand string (CPUID), e.g. "AMD EPYC 9R14 96-Core Processor", into buf. */
const char *fg_cpu_model(char *buf, size_t cap);

/* ---------------------------------------------------------------- rng */

/* xoshiro256** seeded by splitmix64: same seed, same numbers, on every machine.
 * The generator state is plain data so checkpoints can save and restore it. */
typedef struct fg_rng {
    uint64_t s[4];
} fg_rng;

void fg_rng_seed(fg_rng *r, uint64_t seed);
uint64_t fg_rng_u64(fg_rng *r);
/* uniform in [0, 1) with 24 random bits (exactly representable as float) */
float fg_rng_uniform(fg_rng *r);
/* uniform integer in [0, n) without modulo bias; n >= 1 (asserted: [0, 0) is empty) */
uint64_t fg_rng_below(fg_rng *r, uint64_t n);
/* standard normal (Box-Muller) */
float fg_rng_normal(fg_rng *r);
/* Fisher-Yates shuffle of idx[0..n) */
void fg_rng_shuffle(fg_rng *r, int64_t *idx, size_t n);
/* Stateless hash -> [0,1): the same (seed, i) gives the same number in any order and on any
 * thread. Dropout uses it so masks are regenerated in backward instead of stored. */
float fg_hash_uniform(uint64_t seed, uint64_t i);

/* ---------------------------------------------------------------- tensors */

#define FG_MAX_DIMS 6
#define FG_NAME_MAX 64

typedef enum fg_dtype { FG_F32, FG_I32, FG_U8, FG_DTYPE_COUNT } fg_dtype;
size_t fg_dtype_size(fg_dtype t);
const char *fg_dtype_name(fg_dtype t);

/* Where the bytes of a tensor are right now (vDNN: device = cudaMalloc'd, host = pinned RAM). */
typedef enum fg_residence {
    FG_RES_NONE,   /* no storage (not yet allocated, or released) */
    FG_RES_DEVICE, /* in the device pool: ops may read/write it */
    FG_RES_HOST,   /* offloaded to the host tier */
    FG_RES_DISK,   /* spilled to the disk tier */
    FG_RES_COUNT
} fg_residence;

/* Memory layout of a 4-D activation. Plain is NCHW (row-major for other ranks). Blocked
 * layouts are what oneDNN's convolutions prefer; recording it on the tensor means no op can
 * misread it. */
typedef enum fg_layout { FG_LAYOUT_PLAIN, FG_LAYOUT_NCHW16C, FG_LAYOUT_COUNT } fg_layout;

/* A non-owning view. Memory belongs to the pool, the host tier or an arena, never to this. */
typedef struct fg_tensor {
    int ndim;
    int64_t shape[FG_MAX_DIMS];
    int64_t strides[FG_MAX_DIMS]; /* in elements; contiguous row-major unless a view says otherwise */
    fg_dtype dtype;
    fg_layout layout;
    fg_residence residence;
    void *data;
    char name[FG_NAME_MAX];
} fg_tensor;

/* A contiguous plain view over `data` (may be NULL) with the given shape. */
fg_tensor fg_tensor_make(const char *name, fg_dtype dtype, int ndim, const int64_t *shape, void *data);
int64_t fg_tensor_numel(const fg_tensor *t);
/* Bytes of storage: numel * dtype size for plain; channels padded to 16 for NCHW16C. */
size_t fg_tensor_bytes(const fg_tensor *t);
int fg_tensor_same_shape(const fg_tensor *a, const fg_tensor *b);
/* "[32, 3, 224, 224]" into buf; returns buf */
char *fg_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);
static inline float *fg_tensor_f32(const fg_tensor *t) { return (float *)t->data; }

/* Human-readable byte counts ("1.50 GiB") and parsing ("8G", "512M", "1.5GiB", "1000000"). The
 * suffixes are binary whether or not they carry "i" or "B": K = 1024, M = 1024^2, G = 1024^3,
 * T = 1024^4; anything after the suffix is an error. */
char *fg_bytes_str(char *buf, size_t cap, double bytes);
fg_status fg_bytes_parse(const char *s, size_t *out);

#ifdef __cplusplus
}
#endif
#endif
