/* Is this machine steady? One thread pinned to each core runs a fixed unit of work over and
 * over for S seconds and times every unit; the table gives, per core, the median unit time and how
 * far the 1-second means stray from it. A register-bound FMA loop by default; --mem streams a
 * 64 MiB buffer instead (memory bandwidth, which other tenants of a host share).
 * Used to tell the host's noise from a benchmark's own: if these stay within a few per cent while
 * a benchmark's runs jump by 30 %, the jumps are the benchmark's.
 * Usage: cpu_steady [--seconds S] [--mem]   (default 60 s, every online core) */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frugal/frugal.h"

typedef struct {
    int core, mem;
    double seconds;
    double *unit, *at; /* each unit's time and when it ended, seconds */
    size_t n, cap;
    int failed;
} worker;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void *run(void *arg) {
    worker *w = arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(w->core, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        w->failed = 1;
        return NULL;
    }
    size_t len = w->mem ? (64u << 20) / sizeof(float) : 4096, reps = w->mem ? 4 : 20000;
    float *a = malloc(len * sizeof(float));
    if (!a) {
        w->failed = 1;
        return NULL;
    }
    for (size_t i = 0; i < len; i++) a[i] = 1e-3f * (float)(i % 97);
    volatile float sink = 0;
    double t0 = fg_time_now(), t = t0;
    while (t - t0 < w->seconds && w->n < w->cap) {
        double u0 = fg_time_now();
        float acc[8] = {0};
        for (size_t r = 0; r < reps; r++)
            for (size_t i = 0; i < len; i += 8)
                for (int k = 0; k < 8; k++) acc[k] += a[i + (size_t)k] * 1.0001f;
        for (int k = 0; k < 8; k++) sink += acc[k];
        t = fg_time_now();
        w->unit[w->n] = t - u0;
        w->at[w->n++] = t - t0;
    }
    free(a);
    return NULL;
}

int main(int argc, char **argv) {
    double seconds = 60;
    int mem = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--mem") == 0) mem = 1;
        else {
            fprintf(stderr, "usage: cpu_steady [--seconds S] [--mem]\n");
            return 2;
        }
    }
    if (!(seconds >= 1 && seconds <= 3600)) {
        fprintf(stderr, "cpu_steady: --seconds %g, expected 1 to 3600\n", seconds);
        return 2;
    }
    long ncores = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncores < 1) ncores = 1;
    worker *ws = calloc((size_t)ncores, sizeof *ws);
    pthread_t *th = calloc((size_t)ncores, sizeof *th);
    if (!ws || !th) return 1;
    for (long c = 0; c < ncores; c++) {
        ws[c] = (worker){.core = (int)c, .mem = mem, .seconds = seconds, .cap = 2000000};
        ws[c].unit = malloc(ws[c].cap * sizeof(double));
        ws[c].at = malloc(ws[c].cap * sizeof(double));
        if (!ws[c].unit || !ws[c].at || pthread_create(&th[c], NULL, run, &ws[c]) != 0) {
            fprintf(stderr, "cpu_steady: cannot start the thread for core %ld\n", c);
            return 1;
        }
    }
    for (long c = 0; c < ncores; c++) pthread_join(th[c], NULL);
    printf("command: cpu_steady --seconds %g%s   (%ld cores)\n\n", seconds, mem ? " --mem" : "", ncores);
    printf("| core | units | median unit, ms | p90, ms | slowest 1-s mean / median | fastest 1-s mean / median |\n");
    printf("|---:|---:|---:|---:|---:|---:|\n");
    int bad = 0;
    for (long c = 0; c < ncores; c++) {
        worker *w = &ws[c];
        if (w->failed || w->n == 0) {
            printf("| %ld | (could not pin or allocate) | | | | |\n", c);
            bad = 1;
            continue;
        }
        double *sorted = malloc(w->n * sizeof(double));
        if (!sorted) return 1;
        memcpy(sorted, w->unit, w->n * sizeof(double));
        qsort(sorted, w->n, sizeof(double), cmp_double);
        double med = sorted[w->n / 2], p90 = sorted[w->n * 9 / 10];
        double lo = 1e300, hi = 0, sum = 0;
        size_t cnt = 0;
        int sec = 0;
        for (size_t i = 0; i < w->n; i++) {
            sum += w->unit[i], cnt++;
            if (i + 1 == w->n || (int)w->at[i + 1] != sec) {
                double m = sum / (double)cnt / med;
                if (m < lo) lo = m;
                if (m > hi) hi = m;
                sum = 0, cnt = 0, sec = i + 1 < w->n ? (int)w->at[i + 1] : sec;
            }
        }
        printf("| %ld | %zu | %.3f | %.3f | %.3f | %.3f |\n", c, w->n, 1e3 * med, 1e3 * p90, hi, lo);
        free(sorted);
    }
    for (long c = 0; c < ncores; c++) free(ws[c].unit), free(ws[c].at);
    free(ws), free(th);
    return bad;
}
