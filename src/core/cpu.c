/* CPU feature detection and the ISA cap of frugal's run-time dispatched kernels (today the
 * IMPLICIT conv2d algorithm, src/ops/conv2d_direct.c). The cap mirrors oneDNN's
 * ONEDNN_MAX_CPU_ISA, so that one run on an AVX-512 machine with FRUGAL_MAX_CPU_ISA=AVX2 and
 * ONEDNN_MAX_CPU_ISA=AVX2 executes what an AVX2-only machine would. */
#include <cpuid.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "frugal/core.h"

/* -1: not read yet; else the fg_cpu_isa cap. Process-wide by nature, like oneDNN's. */
static atomic_int isa_max = -1;

fg_cpu_isa fg_cpu_isa_detected(void) {
    __builtin_cpu_init();
    int ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    return ok ? FG_ISA_AVX512 : FG_ISA_AVX2;
}

static int isa_from_env(void) {
    const char *v = getenv("FRUGAL_MAX_CPU_ISA");
    if (!v || !*v) return FG_ISA_AVX512;
    if (strcasecmp(v, "avx2") == 0) return FG_ISA_AVX2;
    if (strcasecmp(v, "avx512") == 0 || strcasecmp(v, "avx512_core") == 0 || strcasecmp(v, "all") == 0)
        return FG_ISA_AVX512;
    fg_log(FG_LOG_WARN, "FRUGAL_MAX_CPU_ISA=%s is not one of AVX2, AVX512: ignored", v);
    return FG_ISA_AVX512;
}

fg_cpu_isa fg_cpu_isa_active(void) {
    int cap = atomic_load_explicit(&isa_max, memory_order_relaxed);
    if (cap < 0) {
        int expected = -1;
        atomic_compare_exchange_strong(&isa_max, &expected, isa_from_env());
        cap = atomic_load(&isa_max);
    }
    fg_cpu_isa hw = fg_cpu_isa_detected();
    return (int)hw < cap ? hw : (fg_cpu_isa)cap;
}

fg_status fg_cpu_isa_set_max(fg_cpu_isa isa) {
    if ((int)isa < 0 || isa >= FG_ISA_COUNT)
        return fg_fail(FG_ERR_INVALID, "fg_cpu_isa_set_max: isa %d is not one of FG_ISA_AVX2, FG_ISA_AVX512", (int)isa);
    atomic_store(&isa_max, (int)isa);
    return FG_OK;
}

const char *fg_cpu_isa_name(fg_cpu_isa isa) {
    switch (isa) {
    case FG_ISA_AVX2: return "avx2";
    case FG_ISA_AVX512: return "avx512";
    default: return "unknown";
    }
}

const char *fg_cpu_model(char *buf, size_t cap) {
    unsigned r[12];
    if (cap == 0) return buf;
    buf[0] = '\0';
    if (__get_cpuid_max(0x80000000u, NULL) < 0x80000004u) return buf;
    for (unsigned i = 0; i < 3; i++) __get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
    char s[49];
    memcpy(s, r, 48);
    s[48] = '\0';
    const char *p = s;
    while (*p == ' ') p++;
    size_t n = strlen(p);
    while (n > 0 && p[n - 1] == ' ') n--;
    if (n >= cap) n = cap - 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return buf;
}
