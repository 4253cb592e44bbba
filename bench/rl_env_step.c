/* The cost of one environment step of each grid game, without the CLI around it: the loop of
 * `frugal rl bench-env` (a random action, fg_env_batch_step of one environment into a u8
 * observation) for N steps, repeated R times, the best repetition's CPU nanoseconds per step of
 * this thread, with and without writing observations. A profiling aid for the environments'
 * speed work (run it under `valgrind --tool=cachegrind` for instruction counts, which the load
 * of a shared machine does not move); the comparison with the Python original is
 * bench/rl_env.sh. usage: rl_env_step [STEPS [REPS]] (default 2000000 5). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/rl.h"

/* best ns per step over reps runs of steps steps; obs NULL: no observations */
static double run(const char *game, long steps, int reps, int with_obs, long *episodes) {
    fg_env_options o;
    fg_env_options_init(&o);
    o.obs_dtype = FG_U8;
    fg_env_batch *b;
    if (fg_env_batch_create(game, 1, 1, &o, &b) != FG_OK) {
        fprintf(stderr, "rl_env_step: %s\n", fg_last_error());
        exit(1);
    }
    static uint8_t obs[1000];
    float r;
    uint8_t d;
    int32_t a;
    fg_rng p;
    fg_rng_seed(&p, 5);
    double best = 1e30;
    *episodes = 0;
    for (int rep = 0; rep < reps; rep++) {
        double c0 = fg_time_thread_cpu();
        for (long t = 0; t < steps; t++) {
            a = (int32_t)(((fg_rng_u64(&p) >> 32) * 6u) >> 32);
            if (fg_env_batch_step(b, &a, with_obs ? obs : NULL, &r, &d) != FG_OK) exit(1);
            *episodes += d != 0;
        }
        double c = fg_time_thread_cpu() - c0;
        if (c < best) best = c;
    }
    fg_env_batch_destroy(b);
    return best / (double)steps * 1e9;
}

int main(int argc, char **argv) {
    long steps = argc > 1 ? atol(argv[1]) : 2000000;
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    if (steps < 1 || reps < 1) {
        fprintf(stderr, "usage: rl_env_step [STEPS [REPS]] (both at least 1)\n");
        return 2;
    }
    printf("command: rl_env_step %ld %d (one env, u8 observations, best of %d runs of %ld steps)\n", steps, reps,
           reps, steps);
    printf("| game | ns/step | ns/step without observations | episodes |\n|---|---:|---:|---:|\n");
    const char *games[] = {"breakout", "space_invaders", "freeway", "asterix", "seaquest"};
    for (int g = 0; g < 5; g++) {
        long e1, e0;
        double with = run(games[g], steps, reps, 1, &e1), without = run(games[g], steps, reps, 0, &e0);
        printf("| %s | %.1f | %.1f | %ld |\n", games[g], with, without, e1);
    }
    return 0;
}
