/* Does the value function stay within reach at large policy lag? GA3C in lockstep on CartPole
 * (32 agents, min training batch 0: an update per segment, ~25 updates of lag; lr 1e-3), for each
 * seed three ways: V-trace ending on the behaviour's value (the default), V-trace ending on the
 * trainer's own (IMPALA's, FG_GA3C_VTRACE_BOOT_CURRENT), no V-trace. After the run, the mean V on
 * 256 states 3 random steps from a reset: no discounted CartPole return exceeds 1/(1 - 0.99) = 100,
 * so a mean far above 100 is a value function that diverged. Lockstep runs are a function of the
 * seed (and the CPU's arithmetic), so this table repeats on a machine whatever its load.
 * --grad-clip X sets fg_ga3c_config.grad_clip (default -1: fg_ga3c_grad_clip's choice, none at min
 * batch 0; --grad-clip 40 is the clip these runs had before 2026-12-07, under which the value
 * diverged in 3 seeds of 16 with the default bootstrap).
 * --min-batch M sets the min training batch (default 0), to see the clip where updates hold
 * several segments. It ends with each way's mean return over the seeds.
 * Usage: rl_vtrace_value [--seeds N] [--frames F] [--grad-clip X] [--min-batch M]
 *        (defaults 8, 400000, -1, 0) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/frugal.h"
#include "frugal/rl.h"

/* What every run of the table shares. */
typedef struct bench_cfg {
    int64_t frames;
    float grad_clip;
    int64_t min_batch;
} bench_cfg;

/* mean V near the start after one run; NAN when the run failed (its message printed) */
static double value_near_start(int vtrace, fg_ga3c_vtrace_boot boot, uint64_t seed, const bench_cfg *bc, double *lag,
                               double *ret) {
    fg_ga3c_config c;
    fg_ga3c_config_init(&c);
    c.env = "cartpole";
    c.agents = 32;
    c.min_training_batch = bc->min_batch;
    c.lr = 1e-3f;
    c.frames = bc->frames;
    c.lockstep = 1;
    c.vtrace = vtrace;
    c.vtrace_boot = boot;
    c.seed = seed;
    c.grad_clip = bc->grad_clip;
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
    bench_cfg bc = {400000, -1.0f, 0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc) seeds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--frames") == 0 && i + 1 < argc) bc.frames = atoll(argv[++i]);
        else if (strcmp(argv[i], "--grad-clip") == 0 && i + 1 < argc) bc.grad_clip = (float)atof(argv[++i]);
        else if (strcmp(argv[i], "--min-batch") == 0 && i + 1 < argc) bc.min_batch = atoll(argv[++i]);
        else {
            fprintf(stderr, "usage: rl_vtrace_value [--seeds N] [--frames F] [--grad-clip X] [--min-batch M]\n");
            return 2;
        }
    }
    if (seeds < 1 || bc.frames < 1 || bc.min_batch < 0) {
        fprintf(stderr, "rl_vtrace_value: --seeds and --frames must be >= 1, --min-batch >= 0\n");
        return 2;
    }
    fg_ga3c_config c;
    fg_ga3c_config_init(&c);
    c.min_training_batch = bc.min_batch;
    c.grad_clip = bc.grad_clip;
    printf("command: rl_vtrace_value --seeds %d --frames %lld --grad-clip %g --min-batch %lld   (GA3C lockstep, "
           "CartPole, 32 agents, lr 1e-3, gradient-norm clip %g: 0 = none)\n\n",
           seeds, (long long)bc.frames, (double)bc.grad_clip, (long long)bc.min_batch, (double)fg_ga3c_grad_clip(&c));
    printf("| seed | run | mean V near the start | mean policy lag | return (last 100) |\n|---|---|---|---|---|\n");
    const struct {
        const char *name;
        int vtrace;
        fg_ga3c_vtrace_boot boot;
    } runs[] = {{"V-trace (behaviour's bootstrap)", 1, FG_GA3C_VTRACE_BOOT_BEHAVIOUR},
                {"V-trace (IMPALA's: the trainer's bootstrap)", 1, FG_GA3C_VTRACE_BOOT_CURRENT},
                {"no V-trace", 0, FG_GA3C_VTRACE_BOOT_BEHAVIOUR}};
    int settled[3] = {0, 0, 0};
    double ret_sum[3] = {0, 0, 0};
    for (int s = 1; s <= seeds; s++)
        for (int k = 0; k < 3; k++) {
            double lag = NAN, ret = NAN;
            double v = value_near_start(runs[k].vtrace, runs[k].boot, (uint64_t)s, &bc, &lag, &ret);
            settled[k] += v < 200.0;
            ret_sum[k] += ret;
            printf("| %d | %s | %.1f | %.1f | %.1f |\n", s, runs[k].name, v, lag, ret);
            fflush(stdout);
        }
    printf("\nmean V below 200 after %lld frames: ", (long long)bc.frames);
    for (int k = 0; k < 3; k++) printf("%s%s %d of %d", k ? ", " : "", runs[k].name, settled[k], seeds);
    printf("\nmean return (last 100) over the seeds: ");
    for (int k = 0; k < 3; k++) printf("%s%s %.1f", k ? ", " : "", runs[k].name, ret_sum[k] / seeds);
    printf("\n");
    return 0;
}
