/* The batched environment interface (include/frugal/rl.h): n environments of one game in one
 * allocation, each with its own RNG stream, stepped together into one observation buffer, with
 * sticky actions, the minimal action set, auto-reset and episode accounting. The rules of each
 * game live in its own file (env_breakout.c ...); this file knows none of them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rl/env_impl.h"

/* Row expansion table: byte k of fg_env_row_bytes[m] is bit k of m (eight cells of a row in one
 * 8-byte store; the bytes are laid out little-endian, the only byte order this runs on). */
#define SPREAD(x)                                                                                  \
    ((uint64_t)((x) & 1) | (uint64_t)((x) >> 1 & 1) << 8 | (uint64_t)((x) >> 2 & 1) << 16 |                     \
     (uint64_t)((x) >> 3 & 1) << 24 | (uint64_t)((x) >> 4 & 1) << 32 | (uint64_t)((x) >> 5 & 1) << 40 |          \
     (uint64_t)((x) >> 6 & 1) << 48 | (uint64_t)((x) >> 7 & 1) << 56)
#define R4(b) SPREAD(b), SPREAD((b) + 1), SPREAD((b) + 2), SPREAD((b) + 3)
#define R16(b) R4(b), R4((b) + 4), R4((b) + 8), R4((b) + 12)
#define R64(b) R16(b), R16((b) + 16), R16((b) + 32), R16((b) + 48)
const uint64_t fg_env_row_bytes[256] = {R64(0), R64(64), R64(128), R64(192)};

static const fg_env_game *const games[] = {
    &fg_env_game_breakout, &fg_env_game_space_invaders, &fg_env_game_freeway,
    &fg_env_game_asterix,  &fg_env_game_seaquest,       &fg_env_game_cartpole,
};
#define N_GAMES (sizeof games / sizeof games[0])


void fg_env_options_init(fg_env_options *o) {
    o->sticky_prob = -1.0f;
    o->minimal_actions = 0;
    o->ramping = 1;
    o->obs_dtype = FG_F32;
}

size_t fg_env_count(void) { return N_GAMES; }

const char *fg_env_name(size_t i) {
    FG_ASSERT(i < N_GAMES);
    return games[i]->name;
}

const fg_env_game *fg_env_game_find(const char *name) {
    for (size_t i = 0; i < N_GAMES; i++)
        if (strcmp(games[i]->name, name) == 0) return games[i];
    return NULL;
}

int fg_env_sticky(fg_rng *rng, float p, int *last, int a) {
    return fg_env_sticky_t(rng, p > 0.0f ? fg_env_threshold((double)p) : 0, last, a);
}

static void *state_at(const fg_env_batch *b, size_t i, int slot) {
    return b->states + (2 * i + (size_t)slot) * b->stride;
}

fg_status fg_env_batch_create(const char *name, size_t n_envs, uint64_t seed, const fg_env_options *opts,
                              fg_env_batch **out) {
    *out = NULL;
    const fg_env_game *g = name ? fg_env_game_find(name) : NULL;
    if (!g) {
        char list[256] = "";
        for (size_t i = 0; i < N_GAMES; i++) {
            strncat(list, games[i]->name, sizeof list - strlen(list) - 1);
            if (i + 1 < N_GAMES) strncat(list, ", ", sizeof list - strlen(list) - 1);
        }
        return fg_fail(FG_ERR_INVALID, "unknown environment '%s' (valid: %s)", name ? name : "(null)", list);
    }
    FG_ASSERT(g->obs_floats <= FG_ENV_MAX_CELLS);
    if (n_envs == 0) return fg_fail(FG_ERR_INVALID, "env batch: n_envs must be at least 1");
    fg_env_options o;
    if (opts) o = *opts;
    else fg_env_options_init(&o);
    if (o.obs_dtype != FG_F32 && o.obs_dtype != FG_U8)
        return fg_fail(FG_ERR_INVALID, "env batch: observations are f32 or u8, not %s", fg_dtype_name(o.obs_dtype));
    if (o.obs_dtype == FG_U8 && g->channels == 0)
        return fg_fail(FG_ERR_INVALID, "env batch: %s's observation is a float vector; u8 is for the grid games",
                       g->name);
    if (isnan(o.sticky_prob) || o.sticky_prob > 1.0f)
        return fg_fail(FG_ERR_INVALID, "env batch: sticky_prob %g, expected at most 1 (negative: the game's default)",
                       (double)o.sticky_prob);

    /* Sizes first, then one allocation carved into the arrays. */
    size_t stride = (g->state_bytes + 15) & ~(size_t)15;
    size_t off_env = (sizeof(fg_env_batch) + 15) & ~(size_t)15;
    if (n_envs > (SIZE_MAX / 2 - off_env) / (sizeof(fg_env_slot) + 2 * stride + 16))
        return fg_fail(FG_ERR_INVALID, "env batch: %zu environments is more than memory can hold", n_envs);
    size_t off_states = (off_env + n_envs * sizeof(fg_env_slot) + 15) & ~(size_t)15;
    size_t total = off_states + 2 * n_envs * stride;
    unsigned char *mem = calloc(1, total);
    if (!mem) return fg_fail(FG_ERR_OOM, "env batch: cannot allocate %zu bytes for %zu environments", total, n_envs);
    fg_env_batch *b = (fg_env_batch *)mem;
    b->game = g;
    b->n = n_envs;
    b->obs_size = (size_t)g->obs_floats;
    b->sticky = o.sticky_prob < 0.0f ? g->default_sticky : o.sticky_prob;
    b->sticky_threshold = b->sticky > 0.0f ? fg_env_threshold((double)b->sticky) : 0;
    b->ramping = o.ramping != 0;
    b->obs_dtype = o.obs_dtype;
    b->stride = stride;
    b->states = mem + off_states;
    b->env = (fg_env_slot *)(mem + off_env);
    for (size_t i = 0; i < n_envs; i++) b->env[i].state = state_at(b, i, 0);
    if (o.minimal_actions) {
        b->n_actions = g->n_minimal;
        for (int a = 0; a < g->n_minimal; a++) b->action_id[a] = g->minimal[a];
    } else {
        b->n_actions = g->n_actions;
        for (int a = 0; a < g->n_actions; a++) b->action_id[a] = a;
    }
    /* Env i's stream is seeded by the i-th draw of a master stream: independent of n_envs, so
     * env 0 of a batch of 1 and of a batch of 64 play the same game for the same seed. */
    fg_rng master;
    fg_rng_seed(&master, seed);
    for (size_t i = 0; i < n_envs; i++) fg_rng_seed(&b->env[i].rng, fg_rng_u64(&master));
    fg_env_batch_reset(b, NULL);
    *out = b;
    return FG_OK;
}

void fg_env_batch_destroy(fg_env_batch *b) { free(b); }

const char *fg_env_batch_name(const fg_env_batch *b) { return b->game->name; }
size_t fg_env_batch_size(const fg_env_batch *b) { return b->n; }
int fg_env_batch_num_actions(const fg_env_batch *b) { return b->n_actions; }

int fg_env_batch_action_id(const fg_env_batch *b, int action) {
    FG_ASSERT(action >= 0 && action < b->n_actions);
    return b->action_id[action];
}

int fg_env_batch_obs_shape(const fg_env_batch *b, int64_t shape[3]) {
    if (b->game->channels == 0) {
        shape[0] = b->game->obs_floats;
        return 1;
    }
    shape[0] = b->game->channels;
    shape[1] = 10;
    shape[2] = 10;
    return 3;
}

size_t fg_env_batch_obs_size(const fg_env_batch *b) { return (size_t)b->game->obs_floats; }
fg_dtype fg_env_batch_obs_dtype(const fg_env_batch *b) { return b->obs_dtype; }

void fg_env_render_u8(const fg_env_game *g, const void *st, uint8_t *out) { g->observe(st, out); }

/* Env i's observation into slot i of obs, every cell written. The grid games write bytes; for
 * f32 they go through a byte scratch on the stack and are widened (a loop the compiler
 * vectorizes). */
static void observe(const fg_env_batch *b, const void *st, void *obs, size_t i) {
    const fg_env_game *g = b->game;
    size_t of = (size_t)g->obs_floats;
    if (g->observe_vec) {
        g->observe_vec(st, (float *)obs + i * of);
    } else if (b->obs_dtype == FG_U8) {
        g->observe(st, (uint8_t *)obs + i * of);
    } else {
        uint8_t cells[FG_ENV_MAX_CELLS];
        g->observe(st, cells);
        float *dst = (float *)obs + i * of;
        for (size_t k = 0; k < of; k++) dst[k] = (float)cells[k];
    }
}

void fg_env_batch_reset(fg_env_batch *b, void *obs) {
    for (size_t i = 0; i < b->n; i++) {
        fg_env_slot *e = &b->env[i];
        b->game->reset(e->state, &e->rng, b->ramping);
        e->ep_return = 0.0;
        e->ep_length = 0;
        if (obs) observe(b, e->state, obs, i);
    }
}

fg_status fg_env_bad_action(const fg_env_batch *b, size_t i, int32_t a) {
    return fg_fail(FG_ERR_INVALID, "%s env %zu: action %d out of range [0, %d)", b->game->name, i, (int)a,
                   b->n_actions);
}

/* The loop for a game without its own step_batch (CartPole): calls through the table. */
static fg_status generic_step(fg_env_batch *b, const int32_t *actions, void *obs, float *rewards, uint8_t *dones) {
    const fg_env_game *g = b->game;
    return fg_env_step_loop(b, actions, obs, rewards, dones, g->step, NULL, g->observe, g->observe_vec, g->reset, 0);
}

/* The actions are checked inside the game's loop (before any env moves): one call from here. */
fg_status fg_env_batch_step(fg_env_batch *b, const int32_t *actions, void *obs, float *rewards, uint8_t *dones) {
    if (b->game->step_batch) return b->game->step_batch(b, actions, obs, rewards, dones);
    return generic_step(b, actions, obs, rewards, dones);
}

void fg_env_batch_last_episode(const fg_env_batch *b, size_t i, double *ret, int64_t *len) {
    FG_ASSERT(i < b->n);
    if (ret) *ret = b->env[i].last_return;
    if (len) *len = b->env[i].last_length;
}

void fg_env_batch_final_obs(const fg_env_batch *b, size_t i, void *out) {
    FG_ASSERT(i < b->n);
    observe(b, state_at(b, i, b->env[i].cur ^ 1), out, 0);
}

int64_t fg_env_batch_episodes(const fg_env_batch *b) { return b->episodes; }
int64_t fg_env_batch_steps(const fg_env_batch *b) { return b->steps; }

int fg_env_batch_ramp(const fg_env_batch *b, size_t i) {
    FG_ASSERT(i < b->n);
    return b->game->ramp(b->env[i].state);
}

void *fg_env_batch_state(fg_env_batch *b, size_t i) {
    FG_ASSERT(i < b->n);
    return b->env[i].state;
}

fg_rng *fg_env_batch_rng(fg_env_batch *b, size_t i) {
    FG_ASSERT(i < b->n);
    return &b->env[i].rng;
}
