/* Inside the rl environments: the table each game fills (one file per game, src/rl/env_*.c),
 * the games' state structs, and the hooks the tests use to read and write a game's state and to
 * step one game directly. Not public: the batched interface is include/frugal/rl.h.
 *
 * Coordinates follow MinAtar: x is the column (0 left .. 9 right), y the row (0 top .. 9
 * bottom); an observation is (C, 10, 10) with cell (c, y, x) at c*100 + y*10 + x. Row bitmasks
 * (uint16_t per row) hold bit x for column x. */
#ifndef FG_RL_ENV_IMPL_H
#define FG_RL_ENV_IMPL_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "frugal/rl.h"

/* MinAtar's action_map order: no-op, left, up, right, down, fire. */
enum { FG_ACT_N = 0, FG_ACT_L, FG_ACT_U, FG_ACT_R, FG_ACT_D, FG_ACT_F, FG_ACT_COUNT };

typedef struct fg_env_game {
    const char *name;
    int channels;      /* C of the (C, 10, 10) observation; 0 for CartPole's vector */
    int obs_floats;    /* floats of one observation */
    int n_actions;     /* full action set */
    int n_minimal;     /* minimal action set, as full-set ids in MinAtar's order */
    int minimal[FG_ACT_COUNT];
    float default_sticky;
    size_t state_bytes;
    /* A new episode. ramping is MinAtar's difficulty_ramping (ignored by games without one). */
    void (*reset)(void *st, fg_rng *rng, int ramping);
    /* One step of the rules with a full-set action (sticky actions are applied by the caller).
     * Returns the reward and sets *done to an fg_env_done value. */
    float (*step)(void *st, int action, fg_rng *rng, int *done);
    /* Writes all C*100 cells of a grid game's observation as 0/1 bytes (zeros included); NULL
     * for a vector observation. Games clear with one memset and set the few cells that are on:
     * wide stores plus a handful of byte stores beat drawing bit planes and expanding every row
     * (three stores a row), which measured twice as slow. */
    void (*observe)(const void *st, uint8_t *obs);
    /* Writes the obs_floats floats of a vector observation (CartPole); NULL for grid games. */
    void (*observe_vec)(const void *st, float *obs);
    /* MinAtar's difficulty_ramp() (0 where the original returns None). */
    int (*ramp)(const void *st);
    /* fg_env_batch_step: the game's own copy of fg_env_step_loop (the actions' check, then every
     * env) with its step, observe and reset inlined (no indirect calls per env); NULL: env.c's
     * generic loop through the pointers above. */
    fg_status (*step_batch)(fg_env_batch *b, const int32_t *actions, void *obs, float *rewards, uint8_t *dones);
} fg_env_game;

extern const fg_env_game fg_env_game_breakout;
extern const fg_env_game fg_env_game_space_invaders;
extern const fg_env_game fg_env_game_freeway;
extern const fg_env_game fg_env_game_asterix;
extern const fg_env_game fg_env_game_seaquest;
extern const fg_env_game fg_env_game_cartpole;

/* The game named `name`, or NULL. */
const fg_env_game *fg_env_game_find(const char *name);


/* fg_rng_u64 (src/core/rng.c, xoshiro256**) inlined: the same numbers from the same state
 * (test_rl_env checks the two streams against each other), without a call into another
 * translation unit; a game step makes one to four draws and costs a few dozen nanoseconds. */
static inline uint64_t fg_env_u64(fg_rng *r) {
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5;
    uint64_t result = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/* fg_rng_uniform(r) < p for a threshold made by fg_env_threshold(p): the same 24 bits compared
 * as integers (u < p * 2^24 is u < ceil(p * 2^24) for an integer u). */
static inline uint32_t fg_env_threshold(double p) {
    double t = p * 16777216.0;
    uint32_t c = (uint32_t)t;
    return (double)c < t ? c + 1 : c;
}
static inline int fg_env_chance(fg_rng *r, uint32_t threshold) { return (uint32_t)(fg_env_u64(r) >> 40) < threshold; }
/* the games' two probabilities: fg_env_threshold(0.5) and fg_env_threshold(1.0f / 3.0f), the
 * float nearest 1/3 that the original's comparisons use (test_rl_env checks both) */
#define FG_ENV_P_HALF 8388608u
#define FG_ENV_P_THIRD 5592406u

/* Uniform integer in [0, n) without bias and, almost always, without a division (Lemire's
 * multiply-shift with rejection): the games draw a few of these per step and a 64-bit modulo
 * costs more than the rest of a step. */
static inline uint32_t fg_env_below(fg_rng *rng, uint32_t n) {
    uint64_t m = (fg_env_u64(rng) >> 32) * (uint64_t)n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (fg_env_u64(rng) >> 32) * (uint64_t)n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

/* v, hidden from the compiler by an empty asm: a condition built from 0/1 flags with & and |
 * stays one branch on the result instead of being split into a branch per flag, which brings
 * back the unpredictable ones (a mispredicted branch costs about as much as drawing a whole
 * observation). */
static inline int fg_env_opaque(int v) {
    __asm__("" : "+r"(v));
    return v;
}

/* c (0 or 1) ? a : b without a branch: the compiler otherwise turns a select whose operands it
 * must compute anyway back into a branch; the games use it where the random play makes the
 * condition unpredictable. */
static inline int fg_env_sel(int c, int a, int b) {
    int m = fg_env_opaque(-c);
    return (a & m) | (b & ~m);
}

/* MinAtar's Environment.act: with probability p the previous action is taken instead of a;
 * either way the taken action becomes the previous one. No draw when p <= 0. */
int fg_env_sticky(fg_rng *rng, float p, int *last, int a);

/* fg_env_sticky with p given as fg_env_threshold(p) (0 for p <= 0: no draw). */
static inline int fg_env_sticky_t(fg_rng *rng, uint32_t threshold, int *last, int a) {
    if (threshold) a = fg_env_sel(fg_env_chance(rng, threshold), *last, a);
    *last = a;
    return a;
}

/* Zeros n >= 32 bytes (n a constant: the stores unroll) with 32-byte stores, the last one
 * overlapping. A plain memset of a few hundred bytes compiles to `rep stos`, whose start-up cost
 * is about that of a whole game step. */
static inline __attribute__((always_inline)) void fg_env_clear(uint8_t *p, size_t n) {
    const __m256i z = _mm256_setzero_si256();
    size_t k = 0;
#pragma GCC unroll 32
    for (; k + 32 <= n; k += 32) _mm256_storeu_si256((__m256i *)(void *)(p + k), z);
    if (k < n) _mm256_storeu_si256((__m256i *)(void *)(p + n - 32), z);
}

/* Byte k of entry m is bit k of m: eight cells of a row in one 8-byte store (env.c). */
extern const uint64_t fg_env_row_bytes[256];

/* The ten cells of a row from its bitmask (bit x = column x), zeros included. The table lays
 * out bytes little-endian (byte k at the k-th address), the only byte order this runs on. */
static inline void fg_env_put_row(uint8_t *row, unsigned m) {
    memcpy(row, &fg_env_row_bytes[m & 0xFFu], 8);
    row[8] = (uint8_t)((m >> 8) & 1u);
    row[9] = (uint8_t)((m >> 9) & 1u);
}

/* The 32 cells p[0..31] from the bits of m (cell k is bit k), zeros included, in one 32-byte
 * store: every byte takes the byte of m that holds its bit (a shuffle within each 16-byte half;
 * both halves hold m), keeps that bit, and becomes 0xFF where it is set, then 1 (the absolute
 * value of -1). Three rows of ten cells in one go, where fg_env_put_row writes a row in three
 * stores after a table load. */
static inline void fg_env_put_bits32(uint8_t *p, uint32_t m) {
    const __m256i which = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                                           3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)m), which);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    _mm256_storeu_si256((__m256i *)(void *)p, _mm256_abs_epi8(v));
}

/* A grid game's observation of state st as C*100 bytes (what the batch writes for FG_U8). */
void fg_env_render_u8(const fg_env_game *g, const void *st, uint8_t *out);

/* Env i's game state (a pointer to the game's struct below) and its rng, for tests that set up
 * a hand-made situation inside a batch. The state pointer changes when env i's episode ends (the
 * next one runs in the other of its two slots). */
void *fg_env_batch_state(fg_env_batch *b, size_t i);
fg_rng *fg_env_batch_rng(fg_env_batch *b, size_t i);

/* ---------------------------------------------------------------- the batch */

/* One environment's bookkeeping, in one record so that a step reaches all of it from one pointer
 * (the batch loop's overhead is a visible share of a game step). Two state slots per env: `state`
 * is the running episode's; when an episode ends the next one starts in the other slot, so the
 * finished one's last state stays readable (the final observation) without a copy. */
typedef struct fg_env_slot {
    fg_rng rng;
    unsigned char *state; /* the running episode's slot: the batch's states + (2i + cur) * stride */
    int cur;              /* 0 or 1 */
    int last_action;      /* sticky actions: the previous full-set action taken */
    double ep_return, last_return;
    int64_t ep_length, last_length;
} fg_env_slot;

struct fg_env_batch {
    const fg_env_game *game;
    size_t n;
    size_t obs_size;   /* elements of one env's observation (the game's obs_floats) */
    float sticky;
    uint32_t sticky_threshold; /* fg_env_threshold(sticky); 0 when sticky <= 0 */
    int ramping;
    fg_dtype obs_dtype;
    int n_actions;
    int action_id[FG_ACT_COUNT]; /* index -> full-set action */
    size_t stride;               /* bytes per game state, rounded up to 16 */
    unsigned char *states;       /* 2n states, env i's at 2i and 2i + 1 */
    fg_env_slot *env;            /* n */
    int64_t episodes, steps;
};

/* The most observation bytes of a grid game (Seaquest's 10 channels). */
#define FG_ENV_MAX_CELLS 1000

/* fg_env_batch_step's error for env i's action a (out of [0, n_actions)). */
fg_status fg_env_bad_action(const fg_env_batch *b, size_t i, int32_t a);

/* The body of fg_env_batch_step: every action checked before any env moves, then for every env
 * the sticky rule, one step of the rules, the episode's accounting, the reset of a finished
 * episode (in the other state slot) and the observation. A game file instantiates it with its own
 * functions (constant arguments of an always-inlined function: the calls are direct and inlined),
 * env.c with the table's pointers. u8_only (a constant): obs is non-NULL and of FG_U8, so the
 * loop has no other observation path (FG_ENV_STEP_BATCH instantiates it twice: the u8 loop the
 * benchmarks and the byte-observation callers run, without the f32 path's 1000-byte scratch and
 * the registers its branches hold, and one for everything else). step_draw (NULL: none) is a
 * game's step that also writes the whole observation of the state it leaves (all cells), for
 * a game whose rules can draw as they go; the u8 loop uses it instead of step then observe. */
static inline __attribute__((always_inline)) fg_status
fg_env_step_loop(fg_env_batch *b, const int32_t *actions, void *obs, float *rewards, uint8_t *dones,
                 float (*step)(void *, int, fg_rng *, int *),
                 float (*step_draw)(void *, int, fg_rng *, int *, uint8_t *), void (*observe)(const void *, uint8_t *),
                 void (*observe_vec)(const void *, float *), void (*reset)(void *, fg_rng *, int), int u8_only) {
    const size_t n = b->n, of = b->obs_size;
    for (size_t i = 0; i < n; i++)
        if ((uint32_t)actions[i] >= (uint32_t)b->n_actions) /* negative ones wrap to huge */
            return fg_env_bad_action(b, i, actions[i]);
    const uint32_t threshold = b->sticky_threshold;
    for (size_t i = 0; i < n; i++) {
        fg_env_slot *e = &b->env[i];
        void *st = e->state;
        int a = fg_env_sticky_t(&e->rng, threshold, &e->last_action, b->action_id[actions[i]]);
        int done = FG_ENV_RUNNING;
        const int drawn = u8_only && step_draw; /* a constant */
        float r = drawn ? step_draw(st, a, &e->rng, &done, (uint8_t *)obs + i * of) : step(st, a, &e->rng, &done);
        e->ep_return += r;
        e->ep_length++;
        rewards[i] = r;
        dones[i] = (uint8_t)done;
        if (__builtin_expect(done != FG_ENV_RUNNING, 0)) {
            /* The reward above is the terminal step's; the episode's record includes it. MinAtar's
             * Environment keeps last_action across reset, and so do we (sticky actions can carry
             * the last action of one episode into the first step of the next). */
            e->last_return = e->ep_return;
            e->last_length = e->ep_length;
            e->ep_return = 0.0;
            e->ep_length = 0;
            b->episodes++;
            e->cur ^= 1;
            e->state = b->states + (2 * i + (size_t)e->cur) * b->stride;
            st = e->state;
            reset(st, &e->rng, b->ramping);
        }
        if (u8_only) {
            /* after a reset the new episode's first observation replaces the one drawn */
            if (!drawn || done != FG_ENV_RUNNING) observe(st, (uint8_t *)obs + i * of);
        } else if (!obs) {
            continue;
        } else if (observe_vec) {
            observe_vec(st, (float *)obs + i * of);
        } else if (b->obs_dtype == FG_U8) {
            observe(st, (uint8_t *)obs + i * of);
        } else {
            /* f32: the bytes through a scratch on the stack, widened (a loop the compiler
             * vectorizes) */
            uint8_t cells[FG_ENV_MAX_CELLS];
            observe(st, cells);
            float *dst = (float *)obs + i * of;
            for (size_t k = 0; k < of; k++) dst[k] = (float)cells[k];
        }
    }
    b->steps += (int64_t)n;
    return FG_OK;
}

/* A game's step and observe: inlined into its batch loop (a call and its register saves cost
 * more than many a step's work); the table's pointers still get an out-of-line copy. */
#define FG_ENV_HOT __attribute__((always_inline)) inline

/* A game file's step_batch: fg_env_step_loop with its functions (step_draw may be NULL), the u8
 * loop inline and the others (no observations, f32) in a function of their own. */
#define FG_ENV_STEP_BATCH(fname, step, step_draw, observe, reset)                                 \
    static __attribute__((noinline)) fg_status fname##_any(fg_env_batch *b, const int32_t *actions, void *obs, \
                                                           float *rewards, uint8_t *dones) {         \
        return fg_env_step_loop(b, actions, obs, rewards, dones, step, NULL, observe, NULL, reset, 0); \
    }                                                                                              \
    static fg_status fname(fg_env_batch *b, const int32_t *actions, void *obs, float *rewards, uint8_t *dones) { \
        if (!obs || b->obs_dtype != FG_U8) return fname##_any(b, actions, obs, rewards, dones);   \
        return fg_env_step_loop(b, actions, obs, rewards, dones, step, step_draw, observe, NULL, reset, 1); \
    }

/* ---------------------------------------------------------------- the games' states */

typedef struct fg_breakout {
    int ball_x, ball_y, ball_dir; /* dir 0 up-left, 1 up-right, 2 down-right, 3 down-left */
    int last_x, last_y;           /* the trail: where the ball was before this step */
    int pos;                      /* paddle column (row 9) */
    int strike;                   /* the ball hit a brick on the previous step */
    int terminal;
    uint16_t brick[10]; /* row bitmasks */
} fg_breakout;

typedef struct fg_space_invaders {
    int pos; /* cannon column (row 9) */
    uint16_t f_bullet[10], e_bullet[10], alien[10];
    int alien_dir; /* -1 left, +1 right */
    int enemy_move_interval, alien_move_timer, alien_shot_timer, shot_timer;
    int ramp_index, ramping, terminal;
} fg_space_invaders;

typedef struct fg_freeway_car {
    int x, y, timer, speed; /* speed: signed frames between moves, sign is the direction */
} fg_freeway_car;

typedef struct fg_freeway {
    fg_freeway_car cars[8];
    int pos; /* chicken row (column 4) */
    int move_timer, terminate_timer, terminal;
} fg_freeway;

/* Asterix's eight entities (enemies or gold), slot i on row i + 1, one array per field: the move
 * and the observation's cell numbers are plain loops over the eight that the compiler turns into
 * one 16-byte vector operation each (int16_t lanes). x is -1 or 10 once an entity has left the
 * board (then inactive). */
typedef struct fg_asterix {
    int16_t active[8], x[8], right[8], gold[8];
    int player_x, player_y;
    int spawn_speed, spawn_timer, move_speed, move_timer, ramp_timer, ramp_index;
    int ramping, terminal;
} fg_asterix;

/* Seaquest's lists keep MinAtar's order (append at the end, order-preserving removal) because
 * which of two coinciding enemies a bullet removes depends on it. The bounds follow from the
 * rules (spawns at most once a step, every enemy leaves within 66 steps) with room to spare;
 * overflowing one is a bug and asserts. */
#define FG_SEAQUEST_CAP 160
typedef struct fg_seaquest_obj {
    int x, y, right, move_timer, shot_timer; /* shot_timer: enemy subs only */
} fg_seaquest_obj;

typedef struct fg_seaquest {
    int oxygen, diver_count, sub_x, sub_y, sub_right;
    int e_spawn_speed, e_spawn_timer, d_spawn_timer, move_speed, ramp_index, shot_timer;
    int surface, ramping, terminal;
    int n_f_bullets, n_e_bullets, n_fish, n_subs, n_divers;
    fg_seaquest_obj f_bullets[FG_SEAQUEST_CAP], e_bullets[FG_SEAQUEST_CAP], fish[FG_SEAQUEST_CAP],
        subs[FG_SEAQUEST_CAP], divers[FG_SEAQUEST_CAP];
} fg_seaquest;

typedef struct fg_cartpole {
    double x, x_dot, theta, theta_dot;
    int steps; /* steps of this episode, for the 500-step limit */
} fg_cartpole;

#endif
