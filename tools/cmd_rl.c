/* `frugal rl`: the RL system's commands. Today one: `rl bench-env`, which steps one of the
 * environments (include/frugal/rl.h) with a uniformly random policy over all actions until N
 * episodes have ended and reports steps per second per core (steps over the stepping thread's
 * CPU seconds, so other load on a shared machine does not count against it; wall-clock
 * steps per second beside it) and the mean and standard deviation of the episodes' returns and
 * lengths, the figures bench/rl_env.sh compares with the Python MinAtar. Every step writes the
 * next observation, as MinAtar's act() then state() does; by default one byte per cell, like
 * MinAtar's bool array (--obs f32 measures the float buffer a network takes).
 *
 * `rl train` runs the GA3C runtime (include/frugal/rl.h, src/rl/ga3c.c) for a number of frames:
 * a progress line every few seconds with the rates over the last interval (not since the start:
 * a learner's speed changes as episodes lengthen), the JSON of the run, the learning curve as a
 * gnuplot PNG and the weights as safetensors. `rl play` loads such weights and shows the agent
 * playing, one frame at a time, in the terminal. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "frugal/rl.h"
#include "plot.h"

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

/* count uniformly random actions in [0, n_actions) for the random policy: one 64-bit number gives
 * several by multiply-shift (the high part of u * n_actions is the action, the low part the
 * number for the next one), 8 from each number when n_actions <= 8 (at least 64 - 8 * 3 = 40 bits
 * are left for the last; count is a multiple of 8), else one each: the bias is below 8 / 2^40,
 * nothing for a random policy, and a step costs a few dozen nanoseconds, so a call per action
 * would show. */
static void draw_actions(int32_t *actions, size_t count, int n_actions, fg_rng *prng) {
    if (n_actions <= 8) {
        for (size_t k = 0; k < count; k += 8) {
            uint64_t u = fg_rng_u64(prng);
            for (int j = 0; j < 8; j++) {
                unsigned __int128 m = (unsigned __int128)u * (uint64_t)n_actions;
                actions[k + (size_t)j] = (int32_t)(uint64_t)(m >> 64);
                u = (uint64_t)m;
            }
        }
    } else {
        for (size_t k = 0; k < count; k++)
            actions[k] = (int32_t)(uint64_t)(((unsigned __int128)fg_rng_u64(prng) * (uint64_t)n_actions) >> 64);
    }
}

/* The episodes that ended on this step (dones) into the records, while their env's quota lasts;
 * returns the new count. Out of line: the timed loop only calls it on a step that ended one. */
static __attribute__((noinline)) size_t record_episodes(const fg_env_batch *b, const uint8_t *dones, size_t n,
                                                        size_t *quota, double *rets, double *lens, size_t got) {
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
    return got;
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
        {"sticky", CLI_FLOAT, &sticky, "P", "sticky-action probability, 0 to 1 (default: the game's, 0.1 MinAtar, 0 "
                                            "CartPole)", 0},
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
    /* the library takes any negative probability for "the game's default" */
    if (cli_find(opts, "sticky")->set && !(sticky >= 0 && sticky <= 1))
        return cli_usage_error(&cmd, "rl bench-env: --sticky %g: expected a probability in [0, 1]", sticky);

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
    /* the policy's actions for ACT_BLOCK steps of every env (see the loop) */
    enum { ACT_BLOCK = 64 };
    int32_t *actions = malloc(ACT_BLOCK * n * sizeof(int32_t));
    size_t *quota = malloc(n * sizeof(size_t));
    double *rets = malloc(total * sizeof(double)), *lens = malloc(total * sizeof(double));
    if (!obs || !rewards || !dones || !actions || !quota || !rets || !lens) {
        free(obs), free(rewards), free(dones), free(actions), free(quota), free(rets), free(lens);
        fg_env_batch_destroy(b);
        return cli_fail("rl bench-env", fg_fail(FG_ERR_OOM, "out of memory for %zu episodes", total));
    }
    for (size_t i = 0; i < n; i++) quota[i] = total / n + (i < total % n);
    /* touch the episode records before the clock starts: their first-touch page faults (about
     * 16 bytes an episode; a Breakout episode is 11 steps) are not the environment's time */
    memset(rets, 0, total * sizeof(double));
    memset(lens, 0, total * sizeof(double));
    fg_rng prng; /* the policy's own stream, apart from the environments' */
    fg_rng_seed(&prng, seed ^ 0x5eed0f9011c7ull);

    cli_progress prog;
    cli_progress_init(&prog);
    cli_sigint_install();
    fg_env_batch_reset(b, obs);
    size_t got = 0;
    int64_t steps = 0;
    double w0 = fg_time_now(), c0 = fg_time_thread_cpu();
    /* The policy's actions (draw_actions) are drawn for ACT_BLOCK steps at a time (the same
     * numbers in the same order: step t's action for env i is draw t * n + i), and the interrupt
     * flag and the progress line are looked at once a block; the block's steps are an inner loop
     * whose work per step is the call, the step count and a look at the done flags (the episode
     * records are kept out of line): the loop's own cost was 60 instructions a step, as many as
     * a Breakout step's rules and observation. */
    int64_t blocks = 0;
    while (got < total && s == FG_OK && !cli_stop_flag) {
        /* the clock every 1024 blocks (64 K steps of each env) */
        if (!quiet && (blocks++ & 1023) == 1023) {
            double now = fg_time_now();
            if (now - prog.last >= prog.interval) {
                char line[200];
                double cpu = fg_time_thread_cpu() - c0;
                snprintf(line, sizeof line, "%s: %zu/%zu episodes, %lld steps, %.3g steps/s per core", env, got,
                         total, (long long)steps, cpu > 0 ? (double)steps / cpu : 0.0);
                cli_progress_show(&prog, line, 0);
            }
        }
        draw_actions(actions, ACT_BLOCK * n, n_actions, &prng);
        for (size_t t = 0; t < ACT_BLOCK; t++) {
            s = fg_env_batch_step(b, actions + t * n, obs, rewards, dones);
            if (s != FG_OK) break;
            steps += (int64_t)n;
            uint8_t any = 0;
            for (size_t i = 0; i < n; i++) any |= dones[i];
            if (!any) continue;
            got = record_episodes(b, dones, n, quota, rets, lens, got);
            if (got == total) break;
        }
    }
    double cpu = fg_time_thread_cpu() - c0, wall = fg_time_now() - w0;
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

/* ---------------------------------------------------------------- rl train */

typedef struct train_progress {
    cli_progress prog;
    int quiet;
    double t;        /* previous report */
    int64_t frames, predictions, trainings;
} train_progress;

/* The GA3C progress callback (on fg_ga3c_run's thread): rates over the interval since the last
 * call; the stop flag of SIGINT ends the run. */
static void train_report(void *user, const fg_ga3c_stats *st) {
    train_progress *tp = user;
    double dt = st->seconds - tp->t;
    if (dt <= 0) dt = 1e-9;
    double fps = (double)(st->frames - tp->frames) / dt, pps = (double)(st->predictions - tp->predictions) / dt,
           tps = (double)(st->trainings - tp->trainings) / dt;
    tp->t = st->seconds;
    tp->frames = st->frames;
    tp->predictions = st->predictions;
    tp->trainings = st->trainings;
    if (tp->quiet) return;
    char line[240];
    snprintf(line, sizeof line,
             "%7.1f s  %10lld frames  FPS %7.0f  PPS %7.0f  TPS %7.0f  updates %7lld  episodes %6lld  return(100) %.2f"
             "  a/p/t %d/%d/%d",
             st->seconds, (long long)st->frames, fps, pps, tps, (long long)st->updates, (long long)st->episodes,
             st->mean_return_last100, st->agents, st->predictors, st->trainers);
    cli_progress_show(&tp->prog, line, 1);
    if (!tp->prog.tty) fflush(stderr);
}

/* The learning curve: mean return of the last 100 episodes against frames. */
static int plot_learning(const fg_ga3c_stats *st, const char *env, const char *png, char *why, size_t why_len) {
    char title[200];
    snprintf(title, sizeof title, "GA3C on %s: mean return of the last 100 episodes", env);
    return cli_plot_rl_curve(st, title, png, why, why_len);
}

static void json_hist(cli_json *j, const char *key, const int64_t *h, int n) {
    /* sparse: [[value, count], ...] for the non-zero bins */
    cli_json_arr_begin(j, key);
    for (int i = 0; i < n; i++)
        if (h[i]) {
            cli_json_arr_begin(j, NULL);
            cli_json_int(j, NULL, i);
            cli_json_int(j, NULL, (long long)h[i]);
            cli_json_arr_end(j);
        }
    cli_json_arr_end(j);
}

/* cpu: the process's CPU seconds over the run, every thread's (against st->seconds of wall time it
 * says how busy the cores were: idle waits in the queues show as cpu < cores x seconds) */
static fg_status write_train_json(const char *path, const fg_ga3c_config *c, const fg_ga3c_stats *st, double cpu) {
    cli_json j;
    FG_TRY(cli_json_open(&j, path));
    double sec = st->seconds > 0 ? st->seconds : 1e-9;
    cli_json_obj_begin(&j, NULL);
    cli_json_str(&j, "env", c->env);
    cli_json_str(&j, "algo", c->algo == FG_GA3C_ALGO_A3C ? "a3c" : "ga3c");
    cli_json_int(&j, "vtrace", c->vtrace);
    cli_json_int(&j, "lockstep", c->lockstep);
    cli_json_str(&j, "net", c->net == FG_GA3C_NET_ATARI ? "atari" : "minatar");
    cli_json_int(&j, "agents", c->agents);
    cli_json_int(&j, "envs_per_agent", c->envs_per_agent);
    cli_json_int(&j, "predictors", c->predictors);
    cli_json_int(&j, "trainers", c->trainers);
    cli_json_int(&j, "max_prediction_batch", c->max_prediction_batch);
    cli_json_int(&j, "min_training_batch", c->min_training_batch);
    cli_json_int(&j, "t_max", c->t_max);
    cli_json_num(&j, "discount", c->discount);
    cli_json_num(&j, "gae_lambda", c->gae_lambda);
    cli_json_num(&j, "beta", c->beta);
    cli_json_num(&j, "lr", c->lr);
    cli_json_num(&j, "lr_final", c->lr_final < 0 ? c->lr : c->lr_final);
    cli_json_num(&j, "rmsprop_decay", c->rmsprop_decay);
    cli_json_num(&j, "rmsprop_eps", c->rmsprop_eps);
    cli_json_int(&j, "seed", (long long)c->seed);
    cli_json_int(&j, "frames", (long long)st->frames);
    cli_json_num(&j, "seconds", st->seconds);
    cli_json_num(&j, "cpu_seconds", cpu);
    cli_json_num(&j, "fps", (double)st->frames / sec);
    cli_json_num(&j, "pps", (double)st->predictions / sec);
    cli_json_num(&j, "tps", (double)st->trainings / sec);
    cli_json_int(&j, "predictions", (long long)st->predictions);
    cli_json_int(&j, "trainings", (long long)st->trainings);
    cli_json_int(&j, "updates", (long long)st->updates);
    cli_json_int(&j, "episodes", (long long)st->episodes);
    cli_json_num(&j, "mean_return_last100", st->mean_return_last100);
    json_hist(&j, "prediction_batch_hist", st->pred_hist, st->pred_hist_len);
    json_hist(&j, "training_batch_hist", st->train_hist, st->train_hist_len);
    json_hist(&j, "policy_lag_hist", st->lag_hist, FG_GA3C_LAG_BINS);
    if (c->vtrace) {
        cli_json_str(&j, "vtrace_boot", c->vtrace_boot == FG_GA3C_VTRACE_BOOT_CURRENT ? "current" : "behaviour");
        cli_json_num(&j, "vtrace_rho_mean", st->rho_mean);
        cli_json_num(&j, "vtrace_rho_cut_frac", st->rho_cut_frac);
    }
    cli_json_str(&j, "tune", c->tune == FG_GA3C_TUNE_GA3C ? "ga3c" : c->tune == FG_GA3C_TUNE_OURS ? "ours" : "off");
    cli_json_int(&j, "final_agents", st->agents);
    cli_json_int(&j, "final_predictors", st->predictors);
    cli_json_int(&j, "final_trainers", st->trainers);
    cli_json_arr_begin(&j, "tune_log");
    for (size_t i = 0; i < st->tune_len; i++) {
        const fg_ga3c_tune_step *t = &st->tune_log[i];
        cli_json_obj_begin(&j, NULL);
        cli_json_num(&j, "seconds", t->seconds);
        cli_json_int(&j, "agents", t->agents);
        cli_json_int(&j, "predictors", t->predictors);
        cli_json_int(&j, "trainers", t->trainers);
        cli_json_num(&j, "tps", t->tps);
        cli_json_int(&j, "kept", t->kept);
        cli_json_obj_end(&j);
    }
    cli_json_arr_end(&j);
    cli_json_arr_begin(&j, "learning_curve");
    for (size_t i = 0; i < st->curve_len; i++) {
        cli_json_obj_begin(&j, NULL);
        cli_json_int(&j, "frames", (long long)st->curve[i].frames);
        cli_json_num(&j, "seconds", st->curve[i].seconds);
        cli_json_num(&j, "mean_return", st->curve[i].mean_return);
        cli_json_obj_end(&j);
    }
    cli_json_arr_end(&j);
    cli_json_obj_end(&j);
    return cli_json_close(&j);
}

/* The progress callback's context. It runs on fg_ga3c_run's thread every interval, which is also
 * where SIGINT's flag is looked at (a Ctrl-C ends the run within one interval). */
typedef struct train_ctx {
    train_progress tp;
    fg_ga3c *r;
} train_ctx;

static void train_progress_cb(void *user, const fg_ga3c_stats *st) {
    train_ctx *tc = user;
    train_report(&tc->tp, st);
    if (cli_stop_flag) fg_ga3c_stop(tc->r);
}

/* fg_ga3c_config's fields as the library's messages name them, and rl train's options for them */
static const char *const FIELD_OPTS[][2] = {
    {"agents", "agents"}, {"envs_per_agent", "envs"}, {"predictors", "predictors"}, {"trainers", "trainers"},
    {"max_prediction_batch", "max-predict-batch"}, {"min_training_batch", "min-train-batch"}, {"t_max", "t-max"},
    {"discount", "discount"}, {"gae_lambda", "lambda"}, {"beta", "beta"}, {"lr", "lr"}, {"lr_final", "lr-final"},
    {"rmsprop_decay", "rms-decay"}, {"rmsprop_eps", "rms-eps"}, {"grad_clip", "grad-clip"}, {"frames", "frames"},
    {"progress_seconds", "progress"}, {"tune_window", "tune-window"}, {"max_agents", "max-agents"},
    {"max_predictors", "max-predictors"}, {"max_trainers", "max-trainers"},
};

static int is_word(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'; }

/* msg into out with the configuration's field names as the user's options ("ga3c: t_max is 0" ->
 * "ga3c: --t-max is 0"): a name with '_' wherever it stands as a word, a plain word (agents, lr)
 * only where a range check names it ("ga3c: agents is"), since elsewhere it is English. */
static void option_names(const char *msg, char *out, size_t cap) {
    size_t k = 0;
    for (const char *p = msg; *p && k + 1 < cap;) {
        const char *opt = NULL;
        size_t n = 0;
        if (p == msg || !is_word(p[-1]))
            for (size_t i = 0; i < sizeof FIELD_OPTS / sizeof FIELD_OPTS[0] && !opt; i++) {
                n = strlen(FIELD_OPTS[i][0]);
                if (strncmp(p, FIELD_OPTS[i][0], n) != 0 || is_word(p[n])) continue;
                if (strchr(FIELD_OPTS[i][0], '_') || (p - msg >= 6 && strncmp(p - 6, "ga3c: ", 6) == 0 &&
                                                      strncmp(p + n, " is ", 4) == 0))
                    opt = FIELD_OPTS[i][1];
            }
        if (opt) {
            int w = snprintf(out + k, cap - k, "--%s", opt);
            k = w > 0 && (size_t)w < cap - k ? k + (size_t)w : cap - 1;
            p += n;
        } else {
            out[k++] = *p++;
        }
    }
    out[k < cap ? k : cap - 1] = 0;
}

static int rl_train(int argc, char **argv) {
    const char *env = NULL, *algo = "ga3c", *json = NULL, *plot = NULL, *save = NULL, *load = NULL, *resume = NULL, *net = "minatar",
               *vtrace_boot = "behaviour";
    const char *tuner = "ga3c";
    fg_ga3c_config c; /* the library's defaults are the options' (the help texts repeat them) */
    fg_ga3c_config_init(&c);
    double tune_window = c.tune_window;
    int max_agents = c.max_agents, max_predictors = c.max_predictors, max_trainers = c.max_trainers;
    int vtrace = 0, quiet = 0, tune = 0, lockstep = 0, agents = c.agents, predictors = c.predictors, trainers = c.trainers,
        envs = c.envs_per_agent, tmax = c.t_max, minb = c.min_training_batch, maxb = c.max_prediction_batch, no_clip = 0;
    int64_t frames = c.frames;
    uint64_t seed = c.seed;
    double lr = c.lr, lr_final = NAN, beta = c.beta, discount = c.discount, lambda = c.gae_lambda,
           grad_clip = c.grad_clip, progress = 5.0, rms_decay = c.rmsprop_decay, rms_eps = c.rmsprop_eps;
    char names[256];
    env_list(names, sizeof names);
    char env_help[400];
    snprintf(env_help, sizeof env_help, "environment: %s (required)", names);
    cli_opt opts[] = {
        {"env", CLI_STR, &env, "NAME", env_help, 0},
        {"algo", CLI_STR, &algo, "A", "ga3c (default) or a3c (the plain A3C baseline: each agent thread its own model "
                                     "copy; --predictors, --trainers, --min-train-batch do not apply)", 0},
        {"vtrace", CLI_FLAG, &vtrace, NULL, "V-trace correction of policy lag (IMPALA, rho_bar = c_bar = 1; ga3c only)", 0},
        {"vtrace-boot", CLI_STR, &vtrace_boot, "B",
         "V-trace's V of the state after a segment: behaviour (the predictor's when the agent acted; default) or "
         "current (IMPALA's: the trainer's forward)", 0},
        {"tune", CLI_FLAG, &tune, NULL, "tune the numbers of agents, predictors and trainers while training runs", 0},
        {"lockstep", CLI_FLAG, &lockstep, NULL,
         "one thread runs the agents in turn, each prediction at once, an update whenever a batch waits: the same "
         "seed gives the same run on any load (one core; ga3c only, one predictor and trainer, no --tune)", 0},
        {"tuner", CLI_STR, &tuner, "T", "ga3c (GA3C's random walk; default) or ours (paired windows, one count at a "
                                        "time)", 0},
        {"tune-window", CLI_FLOAT, &tune_window, "S", "seconds per tuner window (default 10)", 0},
        {"max-agents", CLI_INT, &max_agents, "N", "the tuner's most agents (default 32)", 0},
        {"max-predictors", CLI_INT, &max_predictors, "N", "the tuner's most predictors (default 4)", 0},
        {"max-trainers", CLI_INT, &max_trainers, "N", "the tuner's most trainers (default 4)", 0},
        {"agents", CLI_INT, &agents, "N", "agent threads (default 4)", 0},
        {"envs", CLI_INT, &envs, "N", "environments per agent, stepped as one batch (default 1)", 0},
        {"predictors", CLI_INT, &predictors, "N", "predictor threads (default 1)", 0},
        {"trainers", CLI_INT, &trainers, "N", "trainer threads (default 1)", 0},
        {"frames", CLI_I64, &frames, "F", "environment steps to run, all agents together (default 1000000)", 0},
        {"net", CLI_STR, &net, "N", "minatar (conv 16 3x3, fc 128; default) or atari (GA3C's, adapted to 10x10)", 0},
        {"t-max", CLI_INT, &tmax, "N", "steps of the n-step returns (default 5)", 0},
        {"min-train-batch", CLI_INT, &minb, "N", "experiences per update at least (default 32)", 0},
        {"max-predict-batch", CLI_INT, &maxb, "N", "states per prediction at most (default 128)", 0},
        {"lr", CLI_FLOAT, &lr, "X", "RMSProp learning rate (default 3e-4)", 0},
        {"lr-final", CLI_FLOAT, &lr_final, "X",
         "anneal the learning rate linearly from --lr to X over --frames, from the frames counted so far "
         "(the A3C paper's annealing is to 0; default: --lr, no annealing)", 0},
        {"beta", CLI_FLOAT, &beta, "X", "entropy bonus (default 0.01)", 0},
        {"discount", CLI_FLOAT, &discount, "X", "discount (default 0.99)", 0},
        {"lambda", CLI_FLOAT, &lambda, "X",
         "lambda of the returns: 1 = n-step (GA3C's; default), below 1 = lambda-returns over each segment from the "
         "behaviour values (MinAtar's actor-critic: 0.8); ga3c only, not with --vtrace", 0},
        {"grad-clip", CLI_FLOAT, &grad_clip, "X", "max gradient norm of an update, 0 = none (default: none for GA3C "
                                                   "at --min-train-batch 0, an update per segment; else 40)", 0},
        {"rms-decay", CLI_FLOAT, &rms_decay, "X", "RMSProp's decay of the squared-gradient average (default 0.99, GA3C's)", 0},
        {"rms-eps", CLI_FLOAT, &rms_eps, "X",
         "RMSProp's epsilon, added to the average inside the square root (default 0.1, GA3C's; it was tuned for "
         "GA3C's loss summed over the batch)", 0},
        {"no-reward-clip", CLI_FLAG, &no_clip, NULL, "do not clip rewards to [-1, 1] in the returns", 0},
        {"seed", CLI_U64, &seed, "S", "seed of weights, environments and sampling (default 1)", 0},
        {"load", CLI_STR, &load, "FILE", "start from these weights (safetensors from --save), a fresh RMSProp", 0},
        {"resume", CLI_STR, &resume, "FILE", "start from these weights and their RMSProp state (from --save); "
                                             "frames count from 0", 0},
        {"save", CLI_STR, &save, "FILE", "write the weights and the RMSProp state as safetensors at the end", 0},
        {"json", CLI_STR, &json, "FILE", "write the results as JSON", 0},
        {"plot", CLI_STR, &plot, "FILE", "learning-curve PNG (gnuplot)", 0},
        {"progress", CLI_FLOAT, &progress, "S", "seconds between progress lines (default 5)", 0},
        {"quiet", CLI_FLAG, &quiet, NULL, "no progress line", 0},
        {NULL, CLI_FLAG, NULL, NULL, NULL, 0},
    };
    cli_cmd cmd = {"rl train",
                   "frugal rl train --env NAME [--algo ga3c|a3c] [--vtrace] [--agents N --predictors N --trainers N | --tune] --frames F "
                   "[--json FILE] [--plot FILE.png] [--save FILE] [--resume FILE] [--seed S]",
                   "Trains a policy-value network with GA3C (agents, a prediction queue, predictors, a training "
                   "queue, trainers) for F frames; prints FPS, PPS (predictions/s) and TPS (trainings/s) over each "
                   "interval and the mean return of the last 100 episodes.",
                   opts, 0, 0, NULL};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc != CLI_CONTINUE) return rc;
    if (!env) return cli_usage_error(&cmd, "rl train: --env is required (one of: %s)", names);
    /* the library takes a negative clip for "its own choice", the default: not a value to give */
    if (cli_find(opts, "grad-clip")->set && !(grad_clip >= 0))
        return cli_usage_error(&cmd, "rl train: --grad-clip %g: expected a norm >= 0 (0 = none)", grad_clip);
    if (strcmp(algo, "ga3c") != 0 && strcmp(algo, "a3c") != 0)
        return cli_usage_error(&cmd, "rl train: --algo is ga3c or a3c, not '%s'", algo);
    if (strcmp(algo, "a3c") == 0) /* options of the queues A3C does not have */
        for (const char *const *o = (const char *const[]){"predictors", "trainers", "min-train-batch", NULL}; *o; o++)
            if (cli_find(opts, *o)->set)
                return cli_usage_error(&cmd, "rl train: --%s does not apply to --algo a3c (each agent trains its own "
                                       "model copy)", *o);
    if (!tune)
        for (const char *const *o = (const char *const[]){"tuner", "max-agents", "max-predictors", "max-trainers", NULL};
             *o; o++)
            if (cli_find(opts, *o)->set) return cli_usage_error(&cmd, "rl train: --%s applies with --tune", *o);
    if (plot) {
        rc = cli_plot_option_check(&cmd, plot);
        if (rc != CLI_CONTINUE) return rc;
    }
    c.env = env;
    c.algo = strcmp(algo, "a3c") == 0 ? FG_GA3C_ALGO_A3C : FG_GA3C_ALGO_GA3C;
    if (strcmp(net, "minatar") == 0) c.net = FG_GA3C_NET_MINATAR;
    else if (strcmp(net, "atari") == 0) c.net = FG_GA3C_NET_ATARI;
    else return cli_usage_error(&cmd, "rl train: --net is minatar or atari, not '%s'", net);
    c.agents = agents;
    c.envs_per_agent = envs;
    c.predictors = predictors;
    c.trainers = trainers;
    c.frames = frames;
    c.t_max = tmax;
    c.min_training_batch = minb;
    c.max_prediction_batch = maxb;
    c.lr = (float)lr;
    if (!isnan(lr_final)) {
        if (!(lr_final >= 0)) return cli_usage_error(&cmd, "rl train: --lr-final is %g, must be >= 0", lr_final);
        c.lr_final = (float)lr_final;
    }
    c.beta = (float)beta;
    c.discount = (float)discount;
    c.gae_lambda = (float)lambda;
    c.grad_clip = (float)grad_clip;
    c.rmsprop_decay = (float)rms_decay;
    c.rmsprop_eps = (float)rms_eps;
    c.clip_rewards = !no_clip;
    c.seed = seed;
    c.vtrace = vtrace;
    c.lockstep = lockstep;
    if (strcmp(vtrace_boot, "behaviour") == 0) c.vtrace_boot = FG_GA3C_VTRACE_BOOT_BEHAVIOUR;
    else if (strcmp(vtrace_boot, "current") == 0) c.vtrace_boot = FG_GA3C_VTRACE_BOOT_CURRENT;
    else return cli_usage_error(&cmd, "rl train: --vtrace-boot is behaviour or current, not '%s'", vtrace_boot);
    c.progress_seconds = progress;
    if (tune) {
        if (strcmp(tuner, "ga3c") == 0) c.tune = FG_GA3C_TUNE_GA3C;
        else if (strcmp(tuner, "ours") == 0) c.tune = FG_GA3C_TUNE_OURS;
        else return cli_usage_error(&cmd, "rl train: --tuner is ga3c or ours, not '%s'", tuner);
        c.tune_window = tune_window;
        c.max_agents = max_agents > agents ? max_agents : agents;
        c.max_predictors = max_predictors > predictors ? max_predictors : predictors;
        c.max_trainers = max_trainers > trainers ? max_trainers : trainers;
    }
    train_ctx tc;
    memset(&tc, 0, sizeof tc);
    cli_progress_init(&tc.tp.prog);
    tc.tp.quiet = quiet;
    c.progress = train_progress_cb;
    c.progress_user = &tc;
    fg_ga3c *r;
    fg_status s = fg_ga3c_create(&c, &r);
    if (s == FG_ERR_INVALID) {
        char msg[1024];
        option_names(fg_last_error(), msg, sizeof msg);
        return cli_usage_error(&cmd, "rl train: %s", msg);
    }
    if (s != FG_OK) return cli_fail("rl train", s);
    tc.r = r;
    if (load && resume) {
        fg_ga3c_free(r);
        return cli_usage_error(&cmd, "rl train: give --load or --resume, not both");
    }
    if (load || resume) {
        s = load ? fg_ga3c_load(r, load) : fg_ga3c_resume(r, resume);
        if (s != FG_OK) {
            fg_ga3c_free(r);
            return cli_fail(load ? "rl train: --load" : "rl train: --resume", s);
        }
    }
    if (!quiet) {
        fprintf(stderr, "rl train: %s on %s, %d agents x %d envs, %d predictors, %d trainers, %lld frames, seed %llu\n",
                algo, env, agents, envs, predictors, trainers, (long long)frames, (unsigned long long)seed);
        if (c.lr_final >= 0)
            fprintf(stderr, "rl train: learning rate %g falling linearly to %g at frame %lld\n", (double)c.lr,
                    (double)c.lr_final, (long long)frames);
    }
    cli_sigint_install();
    double cpu0 = fg_time_cpu();
    s = fg_ga3c_run(r);
    double cpu = fg_time_cpu() - cpu0;
    cli_sigint_restore();
    if (!quiet) cli_progress_clear(&tc.tp.prog);
    int exit_code = CLI_EXIT_OK;
    fg_ga3c_stats st;
    fg_ga3c_get_stats(r, &st);
    if (s != FG_OK) {
        exit_code = cli_fail("rl train", s);
    } else {
        double sec = st.seconds > 0 ? st.seconds : 1e-9;
        printf("%s: %lld frames in %.1f s: FPS %.0f, PPS %.0f, TPS %.0f; %lld updates, %lld episodes, mean return of "
               "the last 100 %.3f; CPU %.1f s (%.2f cores busy)\n",
               env, (long long)st.frames, st.seconds, (double)st.frames / sec, (double)st.predictions / sec,
               (double)st.trainings / sec, (long long)st.updates, (long long)st.episodes, st.mean_return_last100, cpu,
               cpu / sec);
        if (c.vtrace)
            printf("v-trace: mean truncated weight min(1, pi/mu) %.3f; %.1f %% of the experiences had pi < mu\n",
                   st.rho_mean, 100.0 * st.rho_cut_frac);
        if (cli_stop_flag) {
            fprintf(stderr, "frugal: rl train: interrupted\n");
            exit_code = CLI_EXIT_INTERRUPTED;
        }
        if (save) {
            s = fg_ga3c_save(r, save);
            if (s != FG_OK) exit_code = cli_fail("rl train: --save", s);
        }
        if (json) {
            s = write_train_json(json, &c, &st, cpu);
            if (s != FG_OK) exit_code = cli_fail("rl train: --json", s);
        }
        if (plot) {
            char why[300];
            if (!plot_learning(&st, env, plot, why, sizeof why)) {
                fprintf(stderr, "frugal: rl train: --plot: %s\n", why);
                exit_code = CLI_EXIT_FAIL;
            }
        }
    }
    fg_ga3c_free(r);
    return exit_code;
}

/* ---------------------------------------------------------------- rl play */

/* One frame of a grid game: a character per cell, the first channel set in it (MinAtar's channel
 * order, see docs/RL.md), '.' for none. */
static void draw_grid(const float *obs, int64_t C, int64_t step, double ret, int action) {
    static const char glyph[] = "#@*+ox%&=~";
    printf("step %lld  return %.0f  action %d\n", (long long)step, ret, action);
    for (int y = 0; y < 10; y++) {
        for (int x = 0; x < 10; x++) {
            char ch = '.';
            for (int64_t c = 0; c < C; c++)
                if (obs[(size_t)c * 100 + (size_t)y * 10 + (size_t)x] > 0.5f) {
                    ch = glyph[c % 10];
                    break;
                }
            putchar(ch);
            putchar(' ');
        }
        putchar('\n');
    }
}

static int rl_play(int argc, char **argv) {
    const char *env = NULL, *load = NULL, *net = "minatar";
    int64_t episodes = 1;
    double delay = 0.05;
    int sample = 0, no_render = 0;
    uint64_t seed = 1;
    char names[256];
    env_list(names, sizeof names);
    char env_help[400];
    snprintf(env_help, sizeof env_help, "environment: %s (required)", names);
    cli_opt opts[] = {
        {"env", CLI_STR, &env, "NAME", env_help, 0},
        {"load", CLI_STR, &load, "FILE", "weights from rl train --save (required)", 0},
        {"net", CLI_STR, &net, "N", "the network the weights were trained with: minatar (default) or atari", 0},
        {"episodes", CLI_I64, &episodes, "N", "episodes to play (default 1)", 0},
        {"delay", CLI_FLOAT, &delay, "S", "seconds between frames, 0 to 60 (default 0.05)", 0},
        {"sample", CLI_FLAG, &sample, NULL, "sample actions from the policy instead of taking the most likely", 0},
        {"no-render", CLI_FLAG, &no_render, NULL, "print only each episode's return", 0},
        {"seed", CLI_U64, &seed, "S", "seed of the environment (default 1)", 0},
        {NULL, CLI_FLAG, NULL, NULL, NULL, 0},
    };
    cli_cmd cmd = {"rl play", "frugal rl play --env NAME --load FILE [--episodes N] [--delay S]",
                   "Plays a trained agent in the terminal: each frame of a grid game as 10x10 characters (CartPole: "
                   "its state), the greedy action of the policy (GA3C's play mode), the return of each episode.",
                   opts, 0, 0, NULL};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc != CLI_CONTINUE) return rc;
    if (!env) return cli_usage_error(&cmd, "rl play: --env is required (one of: %s)", names);
    if (!load) return cli_usage_error(&cmd, "rl play: --load FILE is required (weights from rl train --save)");
    if (episodes < 1) return cli_usage_error(&cmd, "rl play: --episodes must be at least 1");
    /* a day's sleep per frame is a hang, and past time_t's range the conversion below is undefined */
    if (!(delay >= 0 && delay <= 60))
        return cli_usage_error(&cmd, "rl play: --delay %g: expected 0 to 60 seconds", delay);
    fg_ga3c_config c;
    fg_ga3c_config_init(&c);
    c.env = env;
    c.agents = 1;
    if (strcmp(net, "minatar") == 0) c.net = FG_GA3C_NET_MINATAR;
    else if (strcmp(net, "atari") == 0) c.net = FG_GA3C_NET_ATARI;
    else return cli_usage_error(&cmd, "rl play: --net is minatar or atari, not '%s'", net);
    c.min_training_batch = 1;
    fg_ga3c *r;
    fg_status s = fg_ga3c_create(&c, &r);
    if (s == FG_ERR_INVALID) return cli_usage_error(&cmd, "rl play: %s", fg_last_error());
    if (s != FG_OK) return cli_fail("rl play", s);
    s = fg_ga3c_load(r, load);
    if (s != FG_OK) {
        fg_ga3c_free(r);
        return cli_fail("rl play: --load", s);
    }
    fg_env_batch *b;
    s = fg_env_batch_create(env, 1, seed, &c.env_opts, &b);
    if (s != FG_OK) {
        fg_ga3c_free(r);
        return cli_fail("rl play", s);
    }
    int64_t shape[3];
    int nd = fg_env_batch_obs_shape(b, shape);
    size_t os = fg_env_batch_obs_size(b);
    int A = fg_ga3c_num_actions(r);
    float *obs = malloc(os * sizeof(float)), *p = malloc((size_t)A * sizeof(float));
    fg_rng rng;
    fg_rng_seed(&rng, seed ^ 0x91a7ull);
    int tty = isatty(STDOUT_FILENO) && !no_render;
    cli_sigint_install();
    fg_env_batch_reset(b, obs);
    double sum = 0.0;
    int64_t done_eps = 0, step = 0;
    while (done_eps < episodes && !cli_stop_flag && s == FG_OK && obs && p) {
        s = fg_ga3c_policy(r, obs, 1, p, NULL);
        if (s != FG_OK) break;
        int32_t a = 0;
        if (sample) {
            float u = fg_rng_uniform(&rng), acc = 0.0f;
            a = A - 1;
            for (int k = 0; k < A; k++)
                if (u < (acc += p[k])) {
                    a = k;
                    break;
                }
        } else {
            for (int k = 1; k < A; k++)
                if (p[k] > p[a]) a = k;
        }
        float rew;
        uint8_t dn;
        s = fg_env_batch_step(b, &a, obs, &rew, &dn);
        if (s != FG_OK) break;
        step++;
        double ret = 0.0;
        int64_t len = 0;
        if (!no_render) {
            if (tty) printf("\033[H\033[2J");
            if (nd == 3) {
                draw_grid(obs, shape[0], step, sum + rew, a);
            } else {
                printf("step %lld  action %d  x %+.3f  v %+.3f  angle %+.3f  omega %+.3f\n", (long long)step, a,
                       obs[0], obs[1], obs[2], obs[3]);
            }
            fflush(stdout);
            if (delay > 0) {
                struct timespec ts = {(time_t)delay, (long)((delay - (double)(time_t)delay) * 1e9)};
                nanosleep(&ts, NULL);
            }
        }
        sum += rew;
        if (dn) {
            fg_env_batch_last_episode(b, 0, &ret, &len);
            printf("episode %lld: return %.1f, %lld steps\n", (long long)done_eps + 1, ret, (long long)len);
            done_eps++;
            sum = 0.0;
            step = 0;
        }
    }
    cli_sigint_restore();
    int exit_code = CLI_EXIT_OK;
    if (!obs || !p) exit_code = cli_fail("rl play", fg_fail(FG_ERR_OOM, "out of host memory"));
    else if (s != FG_OK) exit_code = cli_fail("rl play", s);
    else if (cli_stop_flag) exit_code = CLI_EXIT_INTERRUPTED;
    free(obs), free(p);
    fg_env_batch_destroy(b);
    fg_ga3c_free(r);
    return exit_code;
}

typedef struct rl_subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} rl_subcommand;

static const rl_subcommand rl_subcommands[] = {
    {"bench-env", rl_bench_env, "step an environment with a random policy: steps/s per core, return and length"},
    {"train", rl_train, "train a policy with GA3C: FPS, PPS, TPS and the mean return as it learns"},
    {"play", rl_play, "show a trained agent playing in the terminal"},
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
