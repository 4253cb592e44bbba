/* frugal's OpenMP default: OMP_WAIT_POLICY=PASSIVE, unless the user set OMP_WAIT_POLICY or
 * GOMP_SPINCOUNT. libgomp reads its environment once, in its constructor, before any function of
 * ours could run; and glibc installs the environment array only after the program's
 * pre-initializers, so a setenv() this early is lost (measured: OMP_DISPLAY_ENV=verbose showed
 * GOMP_SPINCOUNT 300000 after it). The hook therefore re-executes the program once, from its
 * .preinit_array (before any library constructor, so nothing has run that could be lost), with
 * OMP_WAIT_POLICY=PASSIVE and FRUGAL_OMP_DEFAULT=1 added to the environment; the second start
 * finds the variable set and goes on; once libgomp has read it, an ordinary constructor of this
 * file removes both variables again, so the program and its children (a benchmark's PyTorch peer,
 * say) see the user's environment. If the re-execution fails the program runs with libgomp's
 * default. Setting OMP_WAIT_POLICY or GOMP_SPINCOUNT yourself skips all of this.
 *
 * A shared object may not have a .preinit_array: this file is not in libfrugal.so but in
 * libfrugal.a and in libfrugal_preinit.a, which `pkg-config --libs frugal` links ahead of -lfrugal;
 * the linker flag --undefined=fg_omp_preinit_state pulls it out of the archive.
 *
 * Why passive: GOMP's default spins a waiting thread for about 300,000 iterations before it
 * sleeps. On cores another process also uses, a spinning thread burns the time slice that the
 * thread it waits for needs (docs/ARCHITECTURE.md "Threads"; measured in docs/BENCHMARKS.md). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* 0: the hook did not run or could not re-execute; 1: frugal's default is in effect; 2: the
 * user's setting was kept. Read by fg_threads_wait_policy (src/core/threads.c) through a weak
 * reference. */
int fg_omp_preinit_state = 0;

static int env_has(char **envp, const char *prefix) {
    size_t n = strlen(prefix);
    for (char **e = envp; e && *e; e++)
        if (strncmp(*e, prefix, n) == 0) return 1;
    return 0;
}

static void omp_preinit(int argc, char **argv, char **envp) {
    (void)argc;
    if (env_has(envp, "FRUGAL_OMP_DEFAULT=")) {
        fg_omp_preinit_state = 1;
        return;
    }
    if (env_has(envp, "OMP_WAIT_POLICY=") || env_has(envp, "GOMP_SPINCOUNT=")) {
        fg_omp_preinit_state = 2;
        return;
    }
    size_t n = 0;
    while (envp && envp[n]) n++;
    char **env = malloc((n + 3) * sizeof *env);
    if (!env) return;
    for (size_t i = 0; i < n; i++) env[i] = envp[i];
    env[n] = "OMP_WAIT_POLICY=PASSIVE";
    env[n + 1] = "FRUGAL_OMP_DEFAULT=1";
    env[n + 2] = NULL;
    execve("/proc/self/exe", argv, env); /* returns only on failure: keep libgomp's default */
    free(env);
}

/* Runs after every shared library's constructor (libgomp's included): the added variables have
 * done their work. */
__attribute__((constructor)) static void omp_env_restore(void) {
    if (fg_omp_preinit_state != 1) return;
    unsetenv("OMP_WAIT_POLICY");
    unsetenv("FRUGAL_OMP_DEFAULT");
}

__attribute__((used, section(".preinit_array"))) static void (*const omp_preinit_entry)(int, char **, char **) =
    omp_preinit;
