/* `frugal rl`: the RL system's commands. Today one: `rl bench-env`, which steps one of the
 * environments (include/frugal/rl.h) with a uniformly random policy over all actions until N
 * episodes have ended and reports steps per second per core (steps over the stepping thread's
 * CPU seconds, so other load on a shared machine does not count against it; wall-clock
 * steps per second beside it) and the mean and standard deviation of the episodes' returns and
 * lengths, the figures bench/rl_env.sh compares with the Python MinAtar. Every step writes the
 * next observation, as MinAtar's act() then state() does; by default one byte per cell, like
 * MinAtar's bool array (--obs f32 measures the float buffer a network takes). The subcommand table
 * below is where `rl train` and `rl play` (GA3C, issue 13's runtime) will slot in. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "frugal/rl.h"

static double thread_cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* mean and sample standard deviation (n - 1; 0 for n < 2) */
static void mean_sd(const double *x, size_t n, double *mean, double *sd) {
    double m = 0.0, ss = 0.0;
    for (size_t i = 0; i < n; i++) m += x[i];
    m = n ? m / (double)n : 0.0;
    for (size_t i = 0; i < n; i++) ss += (x[i] - m) * (x[i] - m);
    *mean = m;
    *sd = n > 1 ? sqrt(ss / (double)(n - 1)) : 0.0;
}

static void env_list(char *buf, size_t cap) {
    buf[0] = '\0';
    for (size_t i = 0; i < fg_env_count(); i++) {
        strncat(buf, fg_env_name(i), cap - strlen(buf) - 1);
        if (i + 1 < fg_env_count()) strncat(buf, ", ", cap - strlen(buf) - 1);
    }
}

static int rl_bench_env(int argc, char **argv) {
    const char *env = NULL, *policy = "random", *json = NULL, *obs_type = NULL;
    int64_t episodes = 1000, envs = 1;
    uint64_t seed = 1;
    double sticky = -1.0;
    int minimal = 0, no_ramping = 0, quiet = 0;
    char names[256];
    env_list(names, sizeof names);
    char env_help[400];
    snprintf(env_help, sizeof env_help, "environment: %s (required)", names);
    cli_opt opts[] = {
        {"env", CLI_STR, &env, "NAME", env_help, 0},
        {"policy", CLI_STR, &policy, "P", "policy: random (uniform over the actions; the only one so far)", 0},
        {"episodes", CLI_I64, &episodes, "N", "episodes to finish (default 1000)", 0},
        {"envs", CLI_I64, &envs, "N", "environments stepped as one batch; each finishes N/envs of the episodes "
                                      "(default 1)", 0},
        {"seed", CLI_U64, &seed, "S", "seed of the environments and of the policy (default 1)", 0},
        {"sticky", CLI_FLOAT, &sticky, "P", "sticky-action probability (default: the game's, 0.1 MinAtar, 0 CartPole)", 0},
        {"minimal", CLI_FLAG, &minimal, NULL, "use the game's minimal action set", 0},
        {"no-ramping", CLI_FLAG, &no_ramping, NULL, "turn MinAtar's difficulty ramping off", 0},
        {"obs", CLI_STR, &obs_type, "T", "observation element type: u8 (default for the MinAtar games) or f32", 0},
        {"json", CLI_STR, &json, "FILE", "write the results as JSON", 0},
        {"quiet", CLI_FLAG, &quiet, NULL, "no progress line", 0},
        {NULL, CLI_FLAG, NULL, NULL, NULL, 0},
    };
    cli_cmd cmd = {"rl bench-env", "frugal rl bench-env --env NAME [--policy random] [--episodes N] [--seed S] [--json FILE]",
                   "Steps an environment with a random policy on one thread until N episodes end; prints steps per "
                   "second per core and the mean and standard deviation of episode return and length.",
                   opts, 0, 0, NULL};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc != CLI_CONTINUE) return rc;
    if (!env) return cli_usage_error(&cmd, "rl bench-env: --env is required (one of: %s)", names);
    if (strcmp(policy, "random") != 0)
        return cli_usage_error(&cmd, "rl bench-env: unknown policy '%s' (only 'random' exists)", policy);
    if (episodes < 1) return cli_usage_error(&cmd, "rl bench-env: --episodes must be at least 1");
    if (envs < 1 || envs > episodes)
        return cli_usage_error(&cmd, "rl bench-env: --envs must be between 1 and --episodes (%lld)", (long long)episodes);

    fg_env_options eo;
    fg_env_options_init(&eo);
    if (obs_type && strcmp(obs_type, "u8") == 0) eo.obs_dtype = FG_U8;
    else if (obs_type && strcmp(obs_type, "f32") == 0) eo.obs_dtype = FG_F32;
    else if (obs_type) return cli_usage_error(&cmd, "rl bench-env: --obs is u8 or f32, not '%s'", obs_type);
    else eo.obs_dtype = strcmp(env, "cartpole") == 0 ? FG_F32 : FG_U8;
    eo.sticky_prob = (float)sticky;
    eo.minimal_actions = minimal;
    eo.ramping = !no_ramping;
    fg_env_batch *b;
    fg_status s = fg_env_batch_create(env, (size_t)envs, seed, &eo, &b);
    if (s != FG_OK) return cli_fail("rl bench-env", s);

    size_t n = (size_t)envs, total = (size_t)episodes;
    size_t of = fg_env_batch_obs_size(b);
    int n_actions = fg_env_batch_num_actions(b);
    /* Each env finishes its quota (episodes / envs, the remainder to the first ones) and its
     * later episodes go uncounted: stopping at the first N episodes of the whole batch would
     * favour short episodes. */
    void *obs = malloc(n * of * fg_dtype_size(eo.obs_dtype));
    float *rewards = malloc(n * sizeof(float));
    uint8_t *dones = malloc(n);
    int32_t *actions = malloc(n * sizeof(int32_t));
    size_t *quota = malloc(n * sizeof(size_t));
    double *rets = malloc(total * sizeof(double)), *lens = malloc(total * sizeof(double));
    if (!obs || !rewards || !dones || !actions || !quota || !rets || !lens) {
        free(obs), free(rewards), free(dones), free(actions), free(quota), free(rets), free(lens);
        fg_env_batch_destroy(b);
        return cli_fail("rl bench-env", fg_fail(FG_ERR_OOM, "out of memory for %zu episodes", total));
    }
    for (size_t i = 0; i < n; i++) quota[i] = total / n + (i < total % n);
    fg_rng prng; /* the policy's own stream, apart from the environments' */
    fg_rng_seed(&prng, seed ^ 0x5eed0f9011c7ull);

    cli_progress prog;
    cli_progress_init(&prog);
    cli_sigint_install();
    fg_env_batch_reset(b, obs);
    size_t got = 0;
    int64_t steps = 0;
    double w0 = fg_time_now(), c0 = thread_cpu_seconds();
    while (got < total && !cli_stop_flag) {
        /* multiply-shift instead of fg_rng_below's 64-bit modulo, which costs more than a step:
         * the bias is below n_actions / 2^32, nothing for a random policy */
        for (size_t i = 0; i < n; i++)
            actions[i] = (int32_t)(((fg_rng_u64(&prng) >> 32) * (uint64_t)n_actions) >> 32);
        s = fg_env_batch_step(b, actions, obs, rewards, dones);
        if (s != FG_OK) break;
        steps += (int64_t)n;
        for (size_t i = 0; i < n; i++) {
            if (!dones[i] || quota[i] == 0) continue;
            double ret;
            int64_t len;
            fg_env_batch_last_episode(b, i, &ret, &len);
            rets[got] = ret;
            lens[got] = (double)len;
            got++;
            quota[i]--;
        }
        if (!quiet && (steps & 0xFFFF) < (int64_t)n) {
            double now = fg_time_now();
            if (now - prog.last >= prog.interval) {
                char line[200];
                double cpu = thread_cpu_seconds() - c0;
                snprintf(line, sizeof line, "%s: %zu/%zu episodes, %lld steps, %.3g steps/s per core", env, got,
                         total, (long long)steps, cpu > 0 ? (double)steps / cpu : 0.0);
                cli_progress_show(&prog, line, 0);
            }
        }
    }
    double cpu = thread_cpu_seconds() - c0, wall = fg_time_now() - w0;
    cli_sigint_restore();
    if (!quiet) cli_progress_clear(&prog);
    int exit_code = CLI_EXIT_OK;
    if (s != FG_OK) {
        exit_code = cli_fail("rl bench-env", s);
    } else if (cli_stop_flag) {
        fprintf(stderr, "frugal: rl bench-env: interrupted after %zu of %zu episodes\n", got, total);
        exit_code = CLI_EXIT_INTERRUPTED;
    } else {
        double rm, rsd, lm, lsd;
        mean_sd(rets, got, &rm, &rsd);
        mean_sd(lens, got, &lm, &lsd);
        double sps = cpu > 0 ? (double)steps / cpu : 0.0, wsps = wall > 0 ? (double)steps / wall : 0.0;
        double se = sqrt((double)got);
        printf("%s: %zu episodes, random policy over %d actions, seed %llu, %s observations, %lld steps in %.3f s CPU "
               "(%.3f s wall)\n",
               env, got, n_actions, (unsigned long long)seed, fg_dtype_name(eo.obs_dtype), (long long)steps, cpu, wall);
        printf("  steps/s per core  %12.0f   (wall clock: %.0f)\n", sps, wsps);
        printf("  episode return    mean %10.4f  sd %10.4f  (standard error %.4f)\n", rm, rsd, rsd / se);
        printf("  episode length    mean %10.2f  sd %10.2f  (standard error %.2f)\n", lm, lsd, lsd / se);
        if (json) {
            cli_json j;
            s = cli_json_open(&j, json);
            if (s == FG_OK) {
                cli_json_obj_begin(&j, NULL);
                cli_json_str(&j, "env", env);
                cli_json_str(&j, "policy", policy);
                cli_json_int(&j, "episodes", (long long)got);
                cli_json_int(&j, "envs", (long long)n);
                cli_json_int(&j, "seed", (long long)seed);
                cli_json_int(&j, "num_actions", n_actions);
                cli_json_str(&j, "obs_dtype", fg_dtype_name(eo.obs_dtype));
                cli_json_int(&j, "steps", (long long)steps);
                cli_json_num(&j, "cpu_seconds", cpu);
                cli_json_num(&j, "wall_seconds", wall);
                cli_json_num(&j, "steps_per_second", sps);
                cli_json_num(&j, "wall_steps_per_second", wsps);
                cli_json_num(&j, "return_mean", rm);
                cli_json_num(&j, "return_sd", rsd);
                cli_json_num(&j, "length_mean", lm);
                cli_json_num(&j, "length_sd", lsd);
                cli_json_obj_end(&j);
                s = cli_json_close(&j);
            }
            if (s != FG_OK) exit_code = cli_fail("rl bench-env: --json", s);
        }
    }
    free(obs), free(rewards), free(dones), free(actions), free(quota), free(rets), free(lens);
    fg_env_batch_destroy(b);
    return exit_code;
}

typedef struct rl_subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} rl_subcommand;

static const rl_subcommand rl_subcommands[] = {
    {"bench-env", rl_bench_env, "step an environment with a random policy: steps/s per core, return and length"},
};
#define N_RL_SUBCOMMANDS (sizeof rl_subcommands / sizeof rl_subcommands[0])

static void rl_usage(FILE *f) {
    fprintf(f, "usage: frugal rl SUBCOMMAND [options]   (frugal rl SUBCOMMAND --help)\n\nsubcommands:\n");
    for (size_t i = 0; i < N_RL_SUBCOMMANDS; i++)
        fprintf(f, "  %-10s %s\n", rl_subcommands[i].name, rl_subcommands[i].summary);
}

int cmd_rl(int argc, char **argv) {
    if (argc < 1) {
        rl_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
        rl_usage(stdout);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < N_RL_SUBCOMMANDS; i++)
        if (strcmp(rl_subcommands[i].name, argv[0]) == 0) return rl_subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "frugal: rl: unknown subcommand '%s'\n", argv[0]);
    rl_usage(stderr);
    return CLI_EXIT_USAGE;
}
