/* frugal rl: reinforcement-learning environments behind one batched interface (issue 13,
 * "Environments"). The games are C ports of the five MinAtar games (kenjyoung/MinAtar v1.0.15:
 * breakout, space_invaders, freeway, asterix, seaquest; 10x10xC boolean observations) and
 * classic-control CartPole (gym CartPole-v1 dynamics, 500-step limit, 4 floats).
 *
 * A batch holds n environments of one game, each with its own RNG stream derived from the seed,
 * so the same seed gives the same trajectories whatever else runs. fg_env_batch_step steps all n
 * at once into one observation buffer and resets finished environments in place: the reward of
 * the terminal step is reported on that step (never lost), dones[i] says how it ended, and the
 * observation written for that env is the first one of its next episode (the last one of the
 * finished episode stays readable through fg_env_batch_final_obs).
 *
 * Observation layout: (n, C, 10, 10) for the MinAtar games (channel order as MinAtar's state()),
 * (n, 4) for CartPole. Planar NCHW because that is the layout frugal's graph and conv ops take at
 * the API, so a batch's buffer is a network's input tensor with no transpose. The element type
 * is an option: float32 (FG_F32, the default: the buffer is a network input as it stands) or one
 * byte per cell (FG_U8, 0 or 1: MinAtar's own bool array, a quarter of the bytes to write and to
 * queue; the grid games only). CartPole's observation is always float32.
 *
 * Below the environments: the GA3C runtime (issue 13, "Runtime"; src/rl/ga3c*.c): agent threads
 * put states on a bounded prediction queue, predictor threads batch them through the policy-value
 * network and hand back policy and value, agents build n-step returns and put experiences on a
 * bounded training queue, trainer threads batch them and update the shared weights with RMSProp.
 * A run-time tuner changes the numbers of agents, predictors and trainers; a plain A3C baseline
 * runs on the same network; V-trace corrects for policy lag. See docs/RL.md. */
#ifndef FRUGAL_RL_H
#define FRUGAL_RL_H

#include <stddef.h>
#include <stdint.h>

#include "frugal/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How an environment's step ended. TRUNCATED is a time limit that is not part of the game's
 * rules as a terminal state (CartPole's 500 steps): a learner should bootstrap from the final
 * observation. Freeway's 2500-frame limit is a terminal in MinAtar's rules and is reported as
 * TERMINATED. */
typedef enum fg_env_done {
    FG_ENV_RUNNING = 0,
    FG_ENV_TERMINATED = 1,
    FG_ENV_TRUNCATED = 2,
    FG_ENV_DONE_COUNT
} fg_env_done;

typedef struct fg_env_options {
    /* Probability that the previous action is repeated instead of the chosen one (MinAtar's
     * sticky actions). Negative means the game's default: 0.1 for MinAtar, 0 for CartPole. */
    float sticky_prob;
    /* 1: action indices address the game's minimal action set (MinAtar's minimal_action_set()
     * order); 0: all actions (6 for MinAtar, 2 for CartPole). */
    int minimal_actions;
    /* Difficulty ramping as in MinAtar (space_invaders, asterix, seaquest; the others have none). */
    int ramping;
    /* Element type of the observations: FG_F32 or FG_U8 (grid games only). */
    fg_dtype obs_dtype;
} fg_env_options;

/* Defaults: sticky_prob -1 (the game's default), minimal_actions 0, ramping 1, obs_dtype FG_F32. */
void fg_env_options_init(fg_env_options *o);

/* The games, in a fixed order: "breakout", "space_invaders", "freeway", "asterix", "seaquest",
 * "cartpole". fg_env_name needs i < fg_env_count() (asserted), as the per-env and per-action
 * queries below need an index below the batch's size or action count. */
size_t fg_env_count(void);
const char *fg_env_name(size_t i);

typedef struct fg_env_batch fg_env_batch;

/* n_envs >= 1 environments of game `name` (opts may be NULL for the defaults). An unknown name
 * is FG_ERR_INVALID and the message lists the valid ones. The environments are reset. */
fg_status fg_env_batch_create(const char *name, size_t n_envs, uint64_t seed, const fg_env_options *opts,
                              fg_env_batch **out);
void fg_env_batch_destroy(fg_env_batch *b);

const char *fg_env_batch_name(const fg_env_batch *b);
size_t fg_env_batch_size(const fg_env_batch *b);
/* Number of valid action indices (6 or the minimal set's size for MinAtar; 2 for CartPole). */
int fg_env_batch_num_actions(const fg_env_batch *b);
/* The full-set action an index means (identity unless minimal_actions); 0 <= action <
 * fg_env_batch_num_actions (asserted). */
int fg_env_batch_action_id(const fg_env_batch *b, int action);
/* One environment's observation shape: returns ndim (3: C,10,10 or 1: 4) and fills shape. */
int fg_env_batch_obs_shape(const fg_env_batch *b, int64_t shape[3]);
/* Elements of one environment's observation (C*100 or 4); the step buffer holds n times this,
 * of the batch's obs_dtype. */
size_t fg_env_batch_obs_size(const fg_env_batch *b);
fg_dtype fg_env_batch_obs_dtype(const fg_env_batch *b);

/* Resets every environment (a new episode each; the RNG streams go on, they are not reseeded)
 * and writes the observations into obs (n * obs_size elements of obs_dtype; may be NULL). Clears
 * the episode statistics of the running episodes. */
void fg_env_batch_reset(fg_env_batch *b, void *obs);

/* Steps every environment with actions[i] (0 <= actions[i] < num_actions; checked for all before
 * any environment moves: FG_ERR_INVALID names the env and the action). Writes obs (n * obs_size
 * elements of obs_dtype, may be NULL), rewards[n] and dones[n] (fg_env_done values). A finished
 * environment is reset in place: see the header paragraph. */
fg_status fg_env_batch_step(fg_env_batch *b, const int32_t *actions, void *obs, float *rewards, uint8_t *dones);

/* After a step that ended env i's episode (dones[i] != 0): that episode's return (sum of its
 * rewards, the terminal one included) and length in steps. i < the batch's size (asserted). */
void fg_env_batch_last_episode(const fg_env_batch *b, size_t i, double *ret, int64_t *len);
/* The last observation of env i's most recently finished episode (obs_size elements of
 * obs_dtype); valid from the step that ended it until env i's next episode ends. */
void fg_env_batch_final_obs(const fg_env_batch *b, size_t i, void *out);
/* Episodes finished by all environments since create; steps taken (sum over environments). */
int64_t fg_env_batch_episodes(const fg_env_batch *b);
int64_t fg_env_batch_steps(const fg_env_batch *b);
/* MinAtar's difficulty_ramp(): env i's current ramp index (0 for games without ramping). */
int fg_env_batch_ramp(const fg_env_batch *b, size_t i);

/* ---------------------------------------------------------------- GA3C */

/* The policy-value network (built on the graph from the env's observation shape):
 * MINATAR: conv 16 3x3 stride 1 (no padding), ReLU, fc 128, ReLU, heads (MinAtar's examples);
 * ATARI: GA3C's NetworkVP (conv 16 8x8/4, conv 32 4x4/2, fc 256) adapted to 10x10 inputs as
 * conv 16 3x3/1 pad 1, conv 32 3x3/2 pad 1 (5x5 maps), fc 256 (8x8/4 would leave one pixel).
 * For CartPole's vector observation both are MLPs: fc 128 (MINATAR) or fc 256 (ATARI). */
typedef enum fg_ga3c_net { FG_GA3C_NET_MINATAR, FG_GA3C_NET_ATARI, FG_GA3C_NET_COUNT } fg_ga3c_net;

typedef enum fg_ga3c_algo { FG_GA3C_ALGO_GA3C, FG_GA3C_ALGO_A3C, FG_GA3C_ALGO_COUNT } fg_ga3c_algo;

/* The run-time tuner of the numbers of active agents, predictors and trainers (all three are
 * threads started at their maxima; the inactive ones sleep).
 * GA3C: GA3C's ThreadDynamicAdjustment: every window each of the three counts moves by a random
 *   -1, 0 or +1 (at least 1; redrawn until something changes) and the change is reverted when the
 *   trainings of the window are fewer than those of the window before it.
 * OURS: one count at a time, in the direction that last helped that count: agents double or
 *   halve (the best number is anywhere from 2 to 32, too far for unit steps in a run's windows),
 *   predictors and trainers move by +-1. The candidate's window is compared with a window of the
 *   kept setting measured just before it (paired, so that the run's drift, e.g. episodes growing
 *   longer, is not mistaken for the change) and kept only when trainings rise by more than 5 %; a
 *   kept move is tried again at once on the same count (its window is the next one's baseline),
 *   a rejected one is reverted and the next count is tried. */
typedef enum fg_ga3c_tune { FG_GA3C_TUNE_OFF, FG_GA3C_TUNE_GA3C, FG_GA3C_TUNE_OURS, FG_GA3C_TUNE_COUNT } fg_ga3c_tune;

/* One window of the tuner: the counts that ran in it, its trainings per second, and whether the
 * setting was kept afterwards (baseline windows of OURS are kept = 1). */
typedef struct fg_ga3c_tune_step {
    double seconds; /* end of the window, since the run started */
    int agents, predictors, trainers;
    double tps;
    int kept;
} fg_ga3c_tune_step;

/* A progress report, called on the thread inside fg_ga3c_run about every progress_seconds. */
typedef struct fg_ga3c_stats fg_ga3c_stats;
typedef void (*fg_ga3c_progress_fn)(void *user, const fg_ga3c_stats *st);

/* Where V-trace's recursion ends (V(x_n), the value of the state after a segment's last step):
 * BEHAVIOUR (default): the value the predictor gave x_n when the agent acted (the same number that
 *   bootstraps GA3C's n-step returns), so the value regression's bootstrap is as old as the data,
 *   like a target network. CURRENT: IMPALA's, V(x_n) from the trainer's own forward with the
 *   weights being updated. At large policy lag CURRENT let the value function diverge (mean V
 *   about 900 on CartPole, where no discounted return exceeds 100; docs/BENCHMARKS.md) under the
 *   gradient clip at 40 those runs had; without it (the default at min batch 0 since 2026-12-07,
 *   fg_ga3c_grad_clip) both settled in 8 seeds of 8 (bench/rl_vtrace_value). */
typedef enum fg_ga3c_vtrace_boot {
    FG_GA3C_VTRACE_BOOT_BEHAVIOUR,
    FG_GA3C_VTRACE_BOOT_CURRENT,
    FG_GA3C_VTRACE_BOOT_COUNT
} fg_ga3c_vtrace_boot;

typedef struct fg_ga3c_config {
    const char *env;           /* environment name (fg_env_name) */
    fg_env_options env_opts;   /* as fg_env_batch_create; obs_dtype must be FG_F32 */
    fg_ga3c_algo algo;         /* GA3C, or A3C: the plain baseline (each agent thread its own model copy
                                  and environments, gradients applied to the shared weights; the
                                  predictor, trainer, batch and queue fields do not apply) */
    fg_ga3c_net net;
    int agents;                /* agent threads (default 4) */
    int envs_per_agent;        /* environments each agent steps as one batch (default 1) */
    int predictors;            /* predictor threads (default 1) */
    int trainers;              /* trainer threads (default 1); they serialize on the one training graph */
    int max_prediction_batch;  /* states a predictor takes per forward at most (GA3C 128; default 128) */
    int min_training_batch;    /* experiences a trainer gathers before an update (default 32; GA3C's
                                  authors recommend 20-40, its Config.py says 0) */
    int t_max;                 /* n of the n-step returns (default 5) */
    size_t queue_size;         /* capacity of each queue, in requests or segments (GA3C 100) */
    float discount;            /* 0.99 */
    float gae_lambda;          /* lambda of the returns (default 1: GA3C's n-step returns). Below 1 each
                                  target is the lambda-return over the rest of its segment, from the
                                  behaviour values the predictor gave the agent (fg_ga3c_lambda_returns;
                                  the eligibility-trace lambda of MinAtar's actor-critic, 0.8). GA3C only,
                                  not with V-trace */
    int clip_rewards;          /* 1: rewards clipped to [-1, 1] in the returns (default 1) */
    float beta;                /* entropy bonus (0.01) */
    float log_epsilon;         /* floor under probabilities inside log (1e-6) */
    float lr;                  /* RMSProp learning rate (3e-4) */
    float lr_final;            /* the rate at `frames`: it falls linearly from lr to lr_final over the run,
                                  computed from the frames counted so far at each update (the A3C
                                  paper's annealing, to 0); negative (default -1): lr throughout */
    float rmsprop_decay;       /* 0.99 */
    float rmsprop_eps;         /* 0.1, inside the square root as TensorFlow (GA3C) */
    float grad_clip;           /* max global gradient norm of an update; 0 = no clipping; negative (default
                                  -1): fg_ga3c_grad_clip's choice, none for GA3C at min_training_batch 0
                                  (an update per segment), else 40 */
    int vtrace;                /* 1: IMPALA's V-trace correction of policy lag, rho_bar = c_bar = 1, the
                                  targets from the trainer's forward (GA3C only) */
    fg_ga3c_vtrace_boot vtrace_boot; /* V-trace's V(x_n): BEHAVIOUR (default) or CURRENT, see above */
    int64_t frames;            /* stop after this many environment steps (all agents; default 1e6) */
    uint64_t seed;             /* weights, environments, action sampling (default 1) */
    fg_ga3c_tune tune;         /* off by default */
    double tune_window;        /* seconds per tuner window (default 10; GA3C 20, after 10 s) */
    int max_agents, max_predictors, max_trainers; /* the tuner's bounds (defaults 32, 4, 4; at
                                  least the starting counts) */
    int ops_threads;           /* OpenMP/oneDNN threads inside each predictor's and trainer's forward and
                                  backward (default 1: the runtime's parallelism is its threads) */
    int lockstep;              /* 1: one thread (fg_ga3c_run's) runs everything in a fixed order: each
                                  round, the agents in id order take one step each, every prediction
                                  served at once, and after each agent's step an update for every
                                  min_training_batch experiences waiting. The same config and seed
                                  give the same run, bit for bit, on any load; the policy lag comes
                                  from the schedule (with 32 agents and min batch 0, ~25 updates),
                                  not from thread timing. GA3C only; no tuner; one predictor and one
                                  trainer (the counts must be 1); queue_size does not apply. For
                                  tests and reproducible experiments: it runs on one thread (one core
                                  at ops_threads 1) (default 0) */
    double progress_seconds;   /* interval of progress calls and learning-curve points (default 2) */
    fg_ga3c_progress_fn progress; /* may be NULL */
    void *progress_user;
    /* Test hook: when > 0, the first trainer fails with FG_ERR_INVALID after this many updates
     * (checks that a failure in one thread stops every thread with its message). */
    int64_t fail_after_updates;
} fg_ga3c_config;

/* The defaults above, env NULL. */
void fg_ga3c_config_init(fg_ga3c_config *c);

/* The gradient-norm clip a run applies: c->grad_clip when >= 0; when negative, 0 (none) for GA3C
 * with min_training_batch 0, else 40. Why none there: a clip rescales each update as a whole, and
 * with one segment per update that weights the segments by 1/norm, so the segments ending in a
 * termination (the largest value errors while V overestimates) count least; at large policy lag
 * the value regression then lost its anchor and V diverged (CartPole, lockstep, 32 agents: 3 seeds
 * of 16 with clip 40, none without; bench/rl_vtrace_value). GA3C's Config.py has no clipping at its
 * min batch 0; RMSProp bounds each weight's step to lr / sqrt(1 - decay) anyway. */
float fg_ga3c_grad_clip(const fg_ga3c_config *c);

/* The learning rate after `frames` environment steps: lr + (lr_final - lr) * min(frames, c->frames)
 * / c->frames, or lr when lr_final is negative. The trainers set it before every RMSProp step. */
float fg_ga3c_lr_at(const fg_ga3c_config *c, int64_t frames);

/* One point of the learning curve. */
typedef struct fg_ga3c_point {
    int64_t frames;
    double seconds;
    double mean_return; /* of the last 100 episodes (NAN before the first) */
} fg_ga3c_point;

enum { FG_GA3C_LAG_BINS = 64 }; /* policy-lag histogram: lags 0..62, and >= 63 in the last */

struct fg_ga3c_stats {
    int64_t frames;        /* environment steps, all agents (= sum of their batches' steps) */
    int64_t predictions;   /* states run through a predictor */
    int64_t trainings;     /* experiences trained on */
    int64_t updates;       /* optimizer steps (the weights' version) */
    int64_t episodes;
    int64_t experiences;   /* experiences put on the training queue: every frame becomes one (the
                              terminal step's included), less those in segments not yet flushed */
    double seconds;        /* since fg_ga3c_run started; once it has returned, how long it ran */
    double mean_return_last100; /* NAN before the first episode */
    double loss_last;      /* last update's A3C loss (sum over its batch) */
    /* histograms: pred_hist[k] = forwards with k states (k <= max_prediction_batch), train_hist[k]
     * = updates with k experiences (k < train_hist_len), lag_hist[l] = experiences trained l updates
     * after their prediction */
    const int64_t *pred_hist;
    int pred_hist_len;
    const int64_t *train_hist;
    int train_hist_len;
    int64_t lag_hist[FG_GA3C_LAG_BINS];
    /* V-trace only (NAN without): over the experiences trained on, the mean truncated importance
     * weight min(1, pi/mu) and the fraction with pi < mu (the policy moved away from the action
     * since it was sampled) */
    double rho_mean, rho_cut_frac;
    const fg_ga3c_point *curve;
    size_t curve_len;
    int agents, predictors, trainers; /* active now */
    const fg_ga3c_tune_step *tune_log;
    size_t tune_len;
};

typedef struct fg_ga3c fg_ga3c;

/* Checks the config, creates the environments and the networks (initialized from the seed);
 * starts no thread. FG_ERR_INVALID names a bad field. */
fg_status fg_ga3c_create(const fg_ga3c_config *cfg, fg_ga3c **out);
/* Runs agents, predictors and trainers until cfg->frames environment steps, fg_ga3c_stop, or a
 * failure in any thread (its status and message are returned). Joins every thread before it
 * returns. Once per handle. */
fg_status fg_ga3c_run(fg_ga3c *r);
/* From any thread (e.g. a progress callback or a signal-watching thread): asks the run to end. */
void fg_ga3c_stop(fg_ga3c *r);
/* A snapshot of the statistics; the pointers stay valid until the next call or fg_ga3c_free.
 * Call from the thread that runs fg_ga3c_run (its progress callback) or after run returned. */
void fg_ga3c_get_stats(fg_ga3c *r, fg_ga3c_stats *out);
/* Weights as safetensors (fg_graph_save / fg_graph_load: names "conv1.weight" ... "value.bias"),
 * with the RMSProp state ("optim.*"). load reads the weights only (play, or a fresh optimizer);
 * resume reads the weights and the RMSProp state (FG_ERR_FORMAT when the file has none). Neither
 * restores counters, histograms or the learning curve: a resumed run counts frames from 0. A file
 * saved from another environment is refused by resume (FG_ERR_INVALID naming both) and loaded
 * with a warning by load. */
fg_status fg_ga3c_save(fg_ga3c *r, const char *path);
fg_status fg_ga3c_load(fg_ga3c *r, const char *path);
fg_status fg_ga3c_resume(fg_ga3c *r, const char *path);
void fg_ga3c_free(fg_ga3c *r);
/* The current network on n states (n, obs...) f32: softmax policies (n, A) and values (n), either
 * may be NULL. Safe while fg_ga3c_run runs (it takes its turn with the trainers). */
fg_status fg_ga3c_policy(fg_ga3c *r, const float *obs, size_t n, float *probs, float *values);
int fg_ga3c_num_actions(const fg_ga3c *r);

/* The pieces, exposed for tests. */

/* n-step discounted returns of one segment of n steps: R_t = r_t + discount * R_{t+1}, from
 * R_n = bootstrap (V of the state after the last step; pass 0 when the segment ends the episode
 * by termination). Rewards are clipped to [-1, 1] first when clip. out may alias rewards. */
void fg_ga3c_returns(const float *rewards, size_t n, float bootstrap, float discount, int clip, float *out);

/* lambda-returns of one segment of n steps (the forward view of TD(lambda) cut at the segment's end):
 *   G_t = r_t + discount * ((1 - lambda) * V_{t+1} + lambda * G_{t+1}),  G_n = V_n = bootstrap,
 * values[t] = V(x_t) for t < n (the behaviour values: what the predictor gave when the agent acted).
 * lambda 1 is fg_ga3c_returns (same bits; values unused); lambda 0 the one-step TD targets.
 * Rewards are clipped to [-1, 1] first when clip. out may alias rewards, not values. */
void fg_ga3c_lambda_returns(const float *rewards, const float *values, size_t n, float bootstrap, float discount,
                            float lambda, int clip, float *out);

/* The A3C loss of GA3C's NetworkVP over a batch of B rows (summed, not averaged, as GA3C):
 *   L = sum_i [ -log(max(pi_i[a_i], eps)) * (R_i - V_i) - beta * H_i + 0.5 * (R_i - V_i)^2 ],
 *   H_i = -sum_k pi_i[k] * log(max(pi_i[k], eps)), pi_i = softmax(logits_i),
 * with the advantage (R - V) a constant in the policy term (not back-propagated into V).
 * logits (B, A), value (B), actions (B), returns (B). Writes dlogits (B, A) and dvalue (B)
 * (either may be NULL) and returns L. */
double fg_ga3c_loss(const float *logits, const float *value, const int32_t *actions, const float *returns, size_t B,
                    int A, float beta, float log_eps, float *dlogits, float *dvalue);
/* The same with the policy term's advantage given (advantages (B), a constant; NULL means R - V);
 * the value term stays 0.5 (R - V)^2. V-trace's loss. */
double fg_ga3c_loss_adv(const float *logits, const float *value, const int32_t *actions, const float *returns,
                        const float *advantages, size_t B, int A, float beta, float log_eps, float *dlogits,
                        float *dvalue);
/* V-trace targets of one segment of n steps (IMPALA, Espeholt et al. 2018): values V(x_t) (n) from
 * the current network and boot_value V(x_n) (0 after a termination; the runtime passes the
 * behaviour's or the current network's value, fg_ga3c_vtrace_boot), pi_a and mu_a the current
 * and the behaviour policy's probabilities of the actions taken; rho_t = min(rho_bar, pi/mu),
 * c_t = min(c_bar, pi/mu),
 *   v_t = V(x_t) + rho_t (r_t + discount V(x_{t+1}) - V(x_t)) + discount c_t (v_{t+1} - V(x_{t+1})),
 * v_n = V(x_n); adv_t = rho_t (r_t + discount v_{t+1} - V(x_t)). On-policy (pi = mu, bars 1) v_t
 * is the n-step return. Writes vs (n) and adv (n). */
void fg_ga3c_vtrace(const float *rewards, const float *values, float boot_value, const float *pi_a, const float *mu_a,
                    size_t n, float discount, float rho_bar, float c_bar, float *vs, float *adv);

#ifdef __cplusplus
}
#endif
#endif
