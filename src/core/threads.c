/* The thread-count setting and the clock. frugal's own kernels use OpenMP, and Debian's oneDNN
 * is built with OpenMP threading, so one omp_set_num_threads governs both. */
#include <omp.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "core/threads_impl.h"
#include "frugal/core.h"

/* oneDNN's OpenMP kernels (and frugal's column splits, src/ops/gemm.c) partition their work for
 * the threads they ask for; a team the runtime makes smaller (OMP_DYNAMIC=true under load, or
 * OMP_THREAD_LIMIT below the thread count) left part of a product undone in oneDNN 2.6 (measured:
 * half of an sgemm's columns zero under OMP_THREAD_LIMIT=1 with 2 threads asked). So the count
 * never exceeds the limit and teams are never shrunk: on the loading thread at load, on any
 * thread at its fg_threads_set, and on a thread the program started itself (which OpenMP gives the
 * environment's setting, not the loading thread's) at its first GEMM or oneDNN primitive
 * (fg_threads_ensure, from src/ops/gemm.c and dnnl_rt.c). */
static _Thread_local int threads_applied;

static void threads_apply(int n) {
    omp_set_dynamic(0);
    const int lim = omp_get_thread_limit();
    omp_set_num_threads(n < lim ? n : lim);
    threads_applied = 1;
}

__attribute__((constructor)) static void threads_at_load(void) { threads_apply(omp_get_max_threads()); }

void fg_threads_ensure(void) {
    /* inside any region (a one-thread region too, where omp_in_parallel is false) the setting
     * would be the region's and gone after it */
    if (threads_applied || omp_get_level() > 0) return;
    threads_apply(omp_get_max_threads());
}

void fg_threads_set(int n) {
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    threads_apply(n);
}

int fg_threads_get(void) { return omp_get_max_threads(); }

/* Defined by src/core/omp_preinit.c when the program carries the start-up hook. */
extern int fg_omp_preinit_state __attribute__((weak));

const char *fg_threads_wait_policy(void) {
    int st = &fg_omp_preinit_state ? fg_omp_preinit_state : 0;
    if (st == 1) return "passive (frugal default)";
    if (st == 2) return getenv("OMP_WAIT_POLICY") ? "user's (OMP_WAIT_POLICY)" : "user's (GOMP_SPINCOUNT)";
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return "user's (environment)";
    return "libgomp default (spinning: the program was not linked with frugal's start-up hook)";
}

static double clock_seconds(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double fg_time_now(void) { return clock_seconds(CLOCK_MONOTONIC); }

double fg_time_cpu(void) { return clock_seconds(CLOCK_PROCESS_CPUTIME_ID); }

double fg_time_thread_cpu(void) { return clock_seconds(CLOCK_THREAD_CPUTIME_ID); }
