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
 * The GA3C runtime that uses this (agents, queues, predictors, trainers, tuner) is not built yet;
 * see docs/RL.md. */
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
 * "cartpole". */
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
/* The full-set action an index means (identity unless minimal_actions). */
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
 * rewards, the terminal one included) and length in steps. */
void fg_env_batch_last_episode(const fg_env_batch *b, size_t i, double *ret, int64_t *len);
/* The last observation of env i's most recently finished episode (obs_size elements of
 * obs_dtype); valid from the step that ended it until env i's next episode ends. */
void fg_env_batch_final_obs(const fg_env_batch *b, size_t i, void *out);
/* Episodes finished by all environments since create; steps taken (sum over environments). */
int64_t fg_env_batch_episodes(const fg_env_batch *b);
int64_t fg_env_batch_steps(const fg_env_batch *b);
/* MinAtar's difficulty_ramp(): env i's current ramp index (0 for games without ramping). */
int fg_env_batch_ramp(const fg_env_batch *b, size_t i);

#ifdef __cplusplus
}
#endif
#endif
