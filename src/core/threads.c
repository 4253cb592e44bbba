/* The thread-count setting and the clock. frugal's own kernels use OpenMP, and Debian's oneDNN
 * is built with OpenMP threading, so one omp_set_num_threads governs both. */
#include <omp.h>
#include <time.h>
#include <unistd.h>

#include "frugal/core.h"

void fg_threads_set(int n) {
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    omp_set_num_threads(n);
}

int fg_threads_get(void) { return omp_get_max_threads(); }

double fg_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
