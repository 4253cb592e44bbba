/* Does the value function stay within reach at large policy lag? GA3C in lockstep on CartPole
 * (32 agents, min training batch 0: an update per segment, ~25 updates of lag; lr 1e-3), for each
 * seed three ways: V-trace ending on the behaviour's value (the default), V-trace ending on the
 * trainer's own (IMPALA's, FG_GA3C_VTRACE_BOOT_CURRENT), no V-trace. After the run, the mean V on
 * 256 states 3 random steps from a reset: no discounted CartPole return exceeds 1/(1 - 0.99) = 100,
 * so a mean far above 100 is a value function that diverged. Lockstep runs are a function of the
 * seed (and the CPU's arithmetic), so this table repeats on a machine whatever its load.
 * Usage: rl_vtrace_value [--seeds N] [--frames F]   (defaults 8, 400000) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/frugal.h"
#include "frugal/rl.h"

/* mean V near the start after one run; NAN when the run failed (its message printed) */
static double value_near_start(int vtrace, fg_ga3c_vtrace_boot boot, uint64_t seed, int64_t frames, double *lag,
                               double *ret) {
    fg_ga3c_config c;
    fg_ga3c_config_init(&c);
    c.env = "cartpole";
    c.agents = 32;
    c.min_training_batch = 0;
    c.lr = 1e-3f;
    c.frames = frames;
    c.lockstep = 1;
    c.vtrace = vtrace;
    c.vtrace_boot = boot;
    c.seed = seed;
    fg_ga3c *r = NULL;
    if (fg_ga3c_create(&c, &r) != FG_OK || fg_ga3c_run(r) != FG_OK) {
        fprintf(stderr, "rl_vtrace_value: %s\n", fg_last_error());
        fg_ga3c_free(r);
        return NAN;
    }
    fg_ga3c_stats st;
    fg_ga3c_get_stats(r, &st);
    double n = 0, sum = 0;
    for (int l = 0; l < FG_GA3C_LAG_BINS; l++) n += (double)st.lag_hist[l], sum += (double)l * (double)st.lag_hist[l];
    *lag = n > 0 ? sum / n : NAN;
    *ret = st.mean_return_last100;
    enum { NS = 256 };
    float obs[NS * 4], rew[NS], values[NS];
    uint8_t done[NS];
    int32_t act[NS];
    fg_env_options eo;
    fg_env_options_init(&eo);
    fg_env_batch *b = NULL;
    double v = NAN;
    if (fg_env_batch_create("cartpole", NS, seed, &eo, &b) == FG_OK) {
        fg_env_batch_reset(b, obs);
        fg_rng rng;
        fg_rng_seed(&rng, seed);
        fg_status s = FG_OK;
        for (int k = 0; k < 3 && s == FG_OK; k++) {
            for (int i = 0; i < NS; i++) act[i] = (int32_t)fg_rng_below(&rng, 2);
            s = fg_env_batch_step(b, act, obs, rew, done);
        }
        if (s == FG_OK) s = fg_ga3c_policy(r, obs, NS, NULL, values);
        if (s == FG_OK) {
            double acc = 0;
            for (int i = 0; i < NS; i++) acc += values[i];
            v = acc / NS;
        } else {
            fprintf(stderr, "rl_vtrace_value: %s\n", fg_last_error());
        }
        fg_env_batch_destroy(b);
    }
    fg_ga3c_free(r);
    return v;
}

int main(int argc, char **argv) {
    int seeds = 8;
    int64_t frames = 400000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc) seeds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--frames") == 0 && i + 1 < argc) frames = atoll(argv[++i]);
        else {
            fprintf(stderr, "usage: rl_vtrace_value [--seeds N] [--frames F]\n");
            return 2;
        }
    }
    if (seeds < 1 || frames < 1) {
        fprintf(stderr, "rl_vtrace_value: --seeds and --frames must be >= 1\n");
        return 2;
    }
    printf("command: rl_vtrace_value --seeds %d --frames %lld   (GA3C lockstep, CartPole, 32 agents, min batch 0, "
           "lr 1e-3)\n\n", seeds, (long long)frames);
    printf("| seed | run | mean V near the start | mean policy lag | return (last 100) |\n|---|---|---|---|---|\n");
    const struct {
        const char *name;
        int vtrace;
        fg_ga3c_vtrace_boot boot;
    } runs[] = {{"V-trace (behaviour's bootstrap)", 1, FG_GA3C_VTRACE_BOOT_BEHAVIOUR},
                {"V-trace (IMPALA's: the trainer's bootstrap)", 1, FG_GA3C_VTRACE_BOOT_CURRENT},
                {"no V-trace", 0, FG_GA3C_VTRACE_BOOT_BEHAVIOUR}};
    int settled[3] = {0, 0, 0};
    for (int s = 1; s <= seeds; s++)
        for (int k = 0; k < 3; k++) {
            double lag = NAN, ret = NAN;
            double v = value_near_start(runs[k].vtrace, runs[k].boot, (uint64_t)s, frames, &lag, &ret);
            settled[k] += v < 200.0;
            printf("| %d | %s | %.1f | %.1f | %.1f |\n", s, runs[k].name, v, lag, ret);
            fflush(stdout);
        }
    printf("\nmean V below 200 after %lld frames: ", (long long)frames);
    for (int k = 0; k < 3; k++) printf("%s%s %d of %d", k ? ", " : "", runs[k].name, settled[k], seeds);
    printf("\n");
    return 0;
}
